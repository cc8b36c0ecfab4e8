/**
 * Optimisers over named float32 parameters (a JS loop: on CPU it was measured 2-4x faster than an
 * ONNX Adam graph, since onnxruntime does not fuse elementwise chains there). graph-adam.ts emits
 * the same update as graph nodes for GPU runs.
 *
 * Adam (Kingma & Ba), step t >= 1, gradient g:
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Weight decay wd: 'l2' adds wd * p to g (classic Adam); 'decoupled' (AdamW, Loshchilov & Hutter)
 * applies p -= lr * wd * p before the Adam step.
 * Gradient clipping by global norm: if ||g||_2 > c, every g is scaled by c / ||g||_2.
 *
 * The update runs in WebAssembly SIMD (adam.wat: the same f64 operations in the same order, so
 * bit-identical to the JS loop below, 2-4x faster): m, v and the gradients live in one WebAssembly
 * memory per optimiser (state.m / state.v are Float32Array views of it); each gradient is copied in
 * once (clipAndStep sums its squares there, in the JS loop's order, and scales it inside the update),
 * each parameter copied in and back. The JS loop serves where that memory would pass 2 GiB or
 * WebAssembly SIMD is missing, and for an odd last value.
 */
import type { ParamSet } from '../io/params';
import { ADAM_WASM_BASE64 } from './adam-wasm';

export interface AdamConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decay: 'l2' | 'decoupled';
}

export const ADAM_DEFAULTS: AdamConfig = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decay: 'decoupled' };

export interface AdamState {
  t: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

interface AdamExports {
  adam(p: number, g: number, m: number, v: number, n: number, lr: number, c1: number, c2: number, b1: number, b2: number, eps: number, l2: number, shrink: number, s: number): void;
  sumsq(g: number, n: number, acc: number): number;
}

let wasmModule: WebAssembly.Module | null | undefined;
/** The compiled adam.wat, or null where this runtime has no WebAssembly SIMD. */
function adamModule(): WebAssembly.Module | null {
  if (wasmModule === undefined) {
    try {
      wasmModule = new WebAssembly.Module(Buffer.from(ADAM_WASM_BASE64, 'base64'));
    } catch {
      wasmModule = null;
    }
  }
  return wasmModule;
}

const WASM_LIMIT_BYTES = 2 ** 31;
const PAGE = 65536;

/** m, v and the gradient of every parameter (and the scratch for one parameter) in a WebAssembly memory. */
interface WasmAdam {
  fns: AdamExports;
  memory: WebAssembly.Memory;
  /** Byte offsets of each parameter's m, v and gradient. */
  offsets: Map<string, { m: number; v: number; g: number }>;
  scratchP: number;
}

function wasmAdam(params: ParamSet): WasmAdam | null {
  const mod = adamModule();
  if (mod === null) return null;
  const align = (n: number) => Math.ceil(n / 4) * 4; // values, so that offsets stay 16-byte aligned
  let values = 0;
  let largest = 0;
  for (const p of params.values()) {
    values += 3 * align(p.data.length);
    largest = Math.max(largest, align(p.data.length));
  }
  const bytes = 4 * (values + largest);
  if (bytes > WASM_LIMIT_BYTES) return null;
  const memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / PAGE)) });
  const fns = new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as AdamExports;
  const offsets = new Map<string, { m: number; v: number; g: number }>();
  let at = 0;
  for (const [name, p] of params) {
    const n = 4 * align(p.data.length);
    offsets.set(name, { m: at, v: at + n, g: at + 2 * n });
    at += 3 * n;
  }
  return { fns, memory, offsets, scratchP: at };
}

export class Adam {
  readonly cfg: AdamConfig;
  state: AdamState;
  private readonly wasm: WasmAdam | null;

  /** `opts.wasm: false` keeps the JS loop (the tests' reference). */
  constructor(params: ParamSet, cfg: Partial<AdamConfig> = {}, opts: { wasm?: boolean } = {}) {
    this.cfg = { ...ADAM_DEFAULTS, ...cfg };
    this.wasm = opts.wasm === false ? null : wasmAdam(params);
    const w = this.wasm;
    const zeros = (which: 'm' | 'v') => new Map([...params].map(([k, p]) => [k, w ? new Float32Array(w.memory.buffer, w.offsets.get(k)![which], p.data.length) : new Float32Array(p.data.length)]));
    this.state = { t: 0, m: zeros('m'), v: zeros('v') };
  }

  /** Whether the update runs in WebAssembly (see the header). */
  get usesWasm(): boolean {
    return this.wasm !== null;
  }

  /** One update of every parameter that has a gradient; lr overrides the configured rate (schedules). */
  step(params: ParamSet, grads: Map<string, Float32Array>, lr = this.cfg.lr): void {
    this.update(params, grads, lr, 1, false);
  }

  /**
   * clipGradNorm(grads, maxNorm) then step(params, grads, lr), to the same bits, with one copy of
   * each gradient into WebAssembly memory; the caller's gradients are left unscaled. Returns the
   * norm before clipping.
   */
  clipAndStep(params: ParamSet, grads: Map<string, Float32Array>, lr: number, maxNorm: number): number {
    const w = this.wasm;
    if (w === null) {
      const norm = clipGradNorm(grads, maxNorm);
      this.step(params, grads, lr);
      return norm;
    }
    let sq = 0;
    for (const [name, g] of grads) {
      const o = w.offsets.get(name);
      if (!o) throw new Error(`Adam: no parameter named '${name}'`);
      new Float32Array(w.memory.buffer, o.g, g.length).set(g);
      sq = w.fns.sumsq(o.g, g.length, sq);
    }
    const norm = Math.sqrt(sq);
    this.update(params, grads, lr, Number.isFinite(maxNorm) && norm > maxNorm ? maxNorm / norm : 1, true);
    return norm;
  }

  /** The update with every gradient scaled by `scale` first (g = f32(g scale), as clipGradNorm stores it). */
  private update(params: ParamSet, grads: Map<string, Float32Array>, lr: number, scale: number, copied: boolean): void {
    const { beta1: b1, beta2: b2, eps, weightDecay: wd, decay } = this.cfg;
    const t = ++this.state.t;
    const c1 = 1 / (1 - b1 ** t);
    const c2 = 1 / (1 - b2 ** t);
    const l2 = decay === 'l2' ? wd : 0;
    const shrink = decay === 'decoupled' ? 1 - lr * wd : 1;
    const w = this.wasm;
    for (const [name, g] of grads) {
      const p = params.get(name)?.data;
      const m = this.state.m.get(name);
      const v = this.state.v.get(name);
      if (!p || !m || !v) throw new Error(`Adam: no parameter named '${name}'`);
      if (g.length !== p.length) throw new Error(`Adam: gradient of '${name}' has ${g.length} values, parameter ${p.length}`);
      let from = 0;
      if (w !== null) {
        const o = w.offsets.get(name)!;
        const even = p.length - (p.length % 2);
        if (!copied) new Float32Array(w.memory.buffer, o.g, even).set(g.subarray(0, even));
        const wp = new Float32Array(w.memory.buffer, w.scratchP, even);
        wp.set(p.subarray(0, even));
        w.fns.adam(w.scratchP, o.g, o.m, o.v, even, lr, c1, c2, b1, b2, eps, l2, shrink, scale);
        p.set(wp);
        from = even;
      }
      for (let i = from; i < p.length; i++) {
        const gi = (scale === 1 ? g[i] : Math.fround(g[i] * scale)) + l2 * p[i];
        const mi = (m[i] = b1 * m[i] + (1 - b1) * gi);
        const vi = (v[i] = b2 * v[i] + (1 - b2) * gi * gi);
        p[i] = p[i] * shrink - (lr * mi * c1) / (Math.sqrt(vi * c2) + eps);
      }
    }
  }
}

/** Scales gradients in place so that their global L2 norm is at most maxNorm; returns the norm before. */
export function clipGradNorm(grads: Map<string, Float32Array>, maxNorm: number): number {
  let sq = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  const norm = Math.sqrt(sq);
  if (Number.isFinite(maxNorm) && norm > maxNorm) {
    const s = maxNorm / norm;
    for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] *= s;
  }
  return norm;
}
