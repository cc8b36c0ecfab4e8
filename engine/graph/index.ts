/** The tensor-graph engine: build forward graphs, differentiate them, emit ONNX. */
export * from './graph';
export { grad } from './grad';
export { encodeModel, ONNX_IR_VERSION, ONNX_OPSET } from './onnx';
export * as ops from './ops';
