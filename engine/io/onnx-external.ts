/**
 * ONNX models with external data: one protobuf message cannot exceed 2 GB, so a model whose frozen
 * weights are larger keeps them in a file beside the model (ONNX "external data").
 *
 *   DIR/model.onnx     the graph; every initializer of at least `threshold` bytes (default 1 KiB)
 *                      has external_data {location: "weights.bin", offset, length} instead of raw_data
 *   DIR/weights.bin    those initializers' little-endian bytes, each starting at an offset that is
 *                      a multiple of 4096 (a page, so onnxruntime may map the file instead of copying)
 * onnxruntime resolves `location` relative to the model file, so the session is created from the
 * path. The folder is temporary by default and removed once the session holds the weights.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Graph } from '../graph';
import { encodeModel, type OnnxTensor } from '../graph/onnx';
import { Runner, type RunnerOptions } from '../runtime/runner';

export const EXTERNAL_DATA_FILE = 'weights.bin';
const ALIGN = 4096;

/** Writes DIR/model.onnx and DIR/weights.bin; returns the model path and the byte counts. */
export function writeOnnxExternal(g: Graph, dir: string, opts: { threshold?: number } = {}): { modelPath: string; modelBytes: number; dataBytes: number; external: number } {
  const threshold = opts.threshold ?? 1024;
  const og = g.toOnnxGraph();
  fs.mkdirSync(dir, { recursive: true });
  const dataPath = path.join(dir, EXTERNAL_DATA_FILE);
  const fd = fs.openSync(dataPath, 'w');
  let offset = 0;
  let external = 0;
  const initializers: OnnxTensor[] = [];
  try {
    for (const t of og.initializers) {
      if (t.raw.byteLength < threshold) {
        initializers.push(t);
        continue;
      }
      const start = Math.ceil(offset / ALIGN) * ALIGN;
      let written = 0;
      while (written < t.raw.byteLength) written += fs.writeSync(fd, t.raw, written, t.raw.byteLength - written, start + written);
      offset = start + t.raw.byteLength;
      external++;
      initializers.push({ name: t.name, dtype: t.dtype, dims: t.dims, raw: new Uint8Array(0), external: { location: EXTERNAL_DATA_FILE, offset: start, length: t.raw.byteLength } });
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  const model = encodeModel({ ...og, initializers });
  const modelPath = path.join(dir, 'model.onnx');
  fs.writeFileSync(modelPath, model);
  return { modelPath, modelBytes: model.byteLength, dataBytes: offset, external };
}

/**
 * A Runner for `g` with its large initializers as external data, through a temporary folder that is
 * removed after the session is created (unless `keepDir` names a folder to write into and keep).
 */
export async function runnerWithExternalData(g: Graph, opts: RunnerOptions & { threshold?: number; keepDir?: string } = {}): Promise<Runner> {
  const dir = opts.keepDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-onnx-'));
  try {
    const { modelPath } = writeOnnxExternal(g, dir, { threshold: opts.threshold });
    return await Runner.create(modelPath, { inputs: g.inputSpecs(), outputs: g.outputSpecs() }, opts);
  } finally {
    if (!opts.keepDir) {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch (e) {
        // Windows refuses to delete a file onnxruntime has mapped; the folder is then left in the temp dir.
        opts.onWarning?.(`could not remove ${dir} (${(e as Error).message}); delete it after the session ends`);
      }
    }
  }
}

/**
 * Initializer bytes above which a graph goes through external data. Required past the 2 GB protobuf
 * limit, and better well before it: measured on a 122M-parameter LLaMA (490 MB of float32, 2 busy cores),
 * the session took 8.2 s and 1.10 GB peak RSS with external data, against 25.7 s and 2.14 GB inline
 * (serialising the model in memory alone took 16.6 s).
 */
export const EXTERNAL_DATA_ABOVE = 64 * 1024 ** 2;

/** Runner.fromGraph, or runnerWithExternalData when the graph's initializers exceed `above` bytes (or when forced). */
export async function runnerForGraph(g: Graph, opts: RunnerOptions & { externalData?: boolean | 'auto' } = {}): Promise<Runner> {
  let bytes = 0;
  for (const { data } of g.initializers.values()) bytes += data.byteLength;
  const ext = opts.externalData ?? 'auto';
  if (ext === true || (ext === 'auto' && bytes > EXTERNAL_DATA_ABOVE)) return runnerWithExternalData(g, opts);
  return Runner.fromGraph(g, opts);
}
