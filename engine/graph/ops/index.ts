/** Every op of the engine, each with its shape inference and gradient rule (see each module's header). */
export * from './elementwise';
export * from './shape';
export * from './linalg';
export * from './nn';
export { reduceTo } from './util';
