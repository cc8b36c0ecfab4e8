/**
 * The WebAssembly Adam (engine/train/adam.wat, optim.ts): the committed bytes are the .wat's, and the
 * update is bit-identical to the JS loop (so committed runs, resumes and probes are unchanged).
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ParamSet } from '../../engine/io/params';
import { ADAM_WASM_BASE64 } from '../../engine/train/adam-wasm';
import { Adam, type AdamConfig, clipGradNorm } from '../../engine/train/optim';
import { Rng } from '../../engine/util/rng';
// @ts-expect-error: a plain .mjs build script, no types
import { compileWat } from '../../scripts/build-wasm.mjs';

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

function params(rng: Rng): ParamSet {
  // odd and even lengths, a single value, and magnitudes from 1e-6 to 10
  return new Map([1, 2, 7, 1000, 4097].map((n, k) => [`w${k}`, { shape: [n], data: new Float32Array(n).map(() => rng.normal() * 10 ** (k - 3)) }]));
}

describe('WebAssembly Adam', () => {
  it('the committed bytes are adam.wat compiled (rerun scripts/build-wasm.mjs after editing it)', async () => {
    const bytes: Buffer = await compileWat('engine/train/adam.wat');
    expect(bytes.toString('base64')).toBe(ADAM_WASM_BASE64);
    expect(fs.readFileSync('engine/train/adam-wasm.ts', 'utf8')).toContain(`(${bytes.length} bytes)`);
  });

  for (const cfg of [{}, { weightDecay: 0.01, decay: 'l2' }, { weightDecay: 0.1, decay: 'decoupled' }] as Partial<AdamConfig>[]) {
    it(`is bit-identical to the JS loop over 30 steps, with clipAndStep = clipGradNorm + step (${JSON.stringify(cfg)})`, () => {
      const a = params(new Rng(1)), b = params(new Rng(1));
      const wasm = new Adam(a, cfg), js = new Adam(b, cfg, { wasm: false });
      expect(wasm.usesWasm).toBe(true);
      expect(js.usesWasm).toBe(false);
      const rng = new Rng(2);
      for (let s = 0; s < 30; s++) {
        const grads = new Map([...a].map(([k, p]) => [k, new Float32Array(p.data.length).map(() => rng.normal() * (s % 3 === 0 ? 100 : 0.01))]));
        const gradsJs = new Map([...grads].map(([k, g]) => [k, g.slice()]));
        const lr = 1e-3 * (1 + Math.cos(s / 5));
        if (s % 2 === 0) {
          // clipping folded into the update (the gradients are scaled by 100 or 0.01: both sides of the clip)
          const unscaled = [...grads.values()].map((g) => bits(g));
          expect(wasm.clipAndStep(a, grads, lr, 1)).toBe(clipGradNorm(gradsJs, 1));
          expect([...grads.values()].map((g) => bits(g))).toEqual(unscaled); // the caller's gradients are left as they were
          js.step(b, gradsJs, lr);
        } else {
          wasm.step(a, grads, lr);
          js.step(b, gradsJs, lr);
        }
      }
      for (const k of a.keys()) {
        expect(bits(a.get(k)!.data)).toEqual(bits(b.get(k)!.data));
        expect(bits(wasm.state.m.get(k)!)).toEqual(bits(js.state.m.get(k)!));
        expect(bits(wasm.state.v.get(k)!)).toEqual(bits(js.state.v.get(k)!));
      }
    });
  }

  it('state.m / state.v are writable views (a checkpoint restored into them is used by the next step)', () => {
    const a = params(new Rng(3)), b = params(new Rng(3));
    const wasm = new Adam(a), js = new Adam(b, {}, { wasm: false });
    for (const k of a.keys()) {
      const fill = new Float32Array(a.get(k)!.data.length).fill(0.5);
      wasm.state.m.get(k)!.set(fill);
      js.state.m.get(k)!.set(fill);
    }
    wasm.state.t = js.state.t = 7;
    const g = new Map([...a].map(([k, p]) => [k, new Float32Array(p.data.length).fill(0.25)]));
    wasm.step(a, g);
    js.step(b, new Map([...g].map(([k, x]) => [k, x.slice()])));
    for (const k of a.keys()) expect(bits(a.get(k)!.data)).toEqual(bits(b.get(k)!.data));
  });
});
