/** The `.memgen` format lives in engine/io/memgen-file.ts (the CLI reads prompt files too). */
export * from '../../engine/io/memgen-file';
