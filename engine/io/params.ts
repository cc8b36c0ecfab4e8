/**
 * Parameter sets: named float32 tensors, keyed by their Hugging Face names, saved as safetensors.
 */
import { float32ToBF16, readSafeTensorsFile, tensorAsFloat32, writeSafeTensorsFile, type TensorToWrite } from './safetensors';
import type { HostTensor } from '../runtime/runner';

export interface Param {
  shape: number[];
  data: Float32Array;
}
export type ParamSet = Map<string, Param>;

export function countParams(p: ParamSet): number {
  let n = 0;
  for (const { data } of p.values()) n += data.length;
  return n;
}

export function cloneParams(p: ParamSet): ParamSet {
  return new Map([...p].map(([k, v]) => [k, { shape: [...v.shape], data: v.data.slice() }]));
}

export function paramFeeds(p: ParamSet): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const [name, { shape, data }] of p) feeds[name] = { data, dims: shape };
  return feeds;
}

export function saveParams(file: string, p: ParamSet, metadata: Record<string, string> = { format: 'pt' }, dtype: 'F32' | 'BF16' = 'F32'): void {
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, { shape, data }] of p) tensors.set(name, { dtype, shape, data });
  writeSafeTensorsFile(file, tensors, metadata);
}

/** Rounds every value to the nearest bfloat16 (ties to even), in place: what a BF16 file will hold. */
export function roundParamsToBF16(p: ParamSet): void {
  for (const { data } of p.values()) {
    const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
    float32ToBF16(data).forEach((h, i) => { bits[i] = h << 16; });
  }
}

/**
 * Loads the tensors named in `expected` (name -> shape) from a safetensors file, converting F16/BF16
 * to float32. A missing tensor or a shape mismatch is an error naming the file and the tensor.
 */
export function loadParams(file: string, expected: Map<string, number[]>): ParamSet {
  const st = readSafeTensorsFile(file);
  const out: ParamSet = new Map();
  for (const [name, shape] of expected) {
    const info = st.tensors.get(name);
    if (!info) throw new Error(`${file}: tensor '${name}' is missing`);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${file}: tensor '${name}' has shape [${info.shape}], expected [${shape}]`);
    }
    out.set(name, { shape: [...shape], data: tensorAsFloat32(st, name) });
  }
  return out;
}
