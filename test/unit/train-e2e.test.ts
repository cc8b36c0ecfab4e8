/** End to end: models trained only with the engine (forward + grad graphs, JS Adam) learn. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Graph, ops } from '../../engine/graph';
import { runCopyDemo } from '../../engine/demo/copy-demo';
import { loadParams, saveParams, type ParamSet } from '../../engine/io/params';
import { gpt2ParamShapes, initGPT2 } from '../../engine/models/gpt2';
import { Adam, clipGradNorm } from '../../engine/train/optim';
import { TrainStep } from '../../engine/train/step';
import { Rng } from '../../engine/util/rng';

const mean = (a: number[]) => a.reduce((p, q) => p + q, 0) / a.length;

describe('end-to-end training with the engine', () => {
  it('a 2-layer MLP fits a nonlinear regression (loss falls by 10x)', async () => {
    const rng = new Rng(7);
    const N = 64;
    const H = 32;
    const g = new Graph('mlp');
    const x = g.input('x', [N, 2]);
    const y = g.input('y', [N, 1]);
    const w1 = g.param('w1', [2, H]);
    const b1 = g.param('b1', [H]);
    const w2 = g.param('w2', [H, 1]);
    const b2 = g.param('b2', [1]);
    const pred = ops.add(ops.matmul(ops.tanh(ops.add(ops.matmul(x, w1), b1)), w2), b2);
    const err = ops.sub(pred, y);
    const step = await TrainStep.compile(g, ops.reduceMean(ops.mul(err, err), [0, 1], false), { threads: 1 });
    const params: ParamSet = new Map([
      ['w1', { shape: [2, H], data: Float32Array.from({ length: 2 * H }, () => rng.normal()) }],
      ['b1', { shape: [H], data: new Float32Array(H) }],
      ['w2', { shape: [H, 1], data: Float32Array.from({ length: H }, () => rng.normal() / Math.sqrt(H)) }],
      ['b2', { shape: [1], data: new Float32Array(1) }],
    ]);
    const xs = Float32Array.from({ length: 2 * N }, () => rng.uniform() * 4 - 2);
    const ys = Float32Array.from({ length: N }, (_, i) => Math.sin(xs[2 * i]) * Math.cos(xs[2 * i + 1]));
    const adam = new Adam(params, { lr: 0.02 });
    const losses: number[] = [];
    for (let s = 0; s < 400; s++) {
      const { loss, grads } = await step.run(params, { x: { data: xs, dims: [N, 2] }, y: { data: ys, dims: [N, 1] } });
      adam.step(params, grads);
      losses.push(loss);
    }
    await step.release();
    expect(mean(losses.slice(-10))).toBeLessThan(mean(losses.slice(0, 10)) / 10);
  });

  it('a one-block transformer learns to copy (loss falls by 10x)', async () => {
    const r = await runCopyDemo({ steps: 150, seed: 3, runner: { threads: 1 } });
    const first = mean(r.losses.slice(0, 10));
    const last = mean(r.losses.slice(-10));
    expect(first).toBeGreaterThan(2); // ~ln(11) at initialisation
    expect(last).toBeLessThan(first / 10);
  });

  it('is deterministic for a seed', async () => {
    const a = await runCopyDemo({ steps: 5, seed: 11, runner: { threads: 1 } });
    const b = await runCopyDemo({ steps: 5, seed: 11, runner: { threads: 1 } });
    expect(a.losses).toEqual(b.losses);
  });
});

describe('parameters', () => {
  it('initialise as GPT-2 does and round-trip through safetensors with HF names', () => {
    const cfg = { vocabSize: 11, nPositions: 8, nEmbd: 16, nLayer: 2, nHead: 2, layerNormEps: 1e-5 };
    const p = initGPT2(cfg, new Rng(1));
    expect([...p.keys()]).toContain('transformer.h.1.attn.c_attn.weight');
    expect(p.get('transformer.h.0.attn.c_attn.weight')!.shape).toEqual([16, 48]); // Conv1D: [in, out]
    const std = (a: Float32Array) => Math.sqrt(mean(Array.from(a, (v) => v * v)));
    expect(std(p.get('transformer.h.0.mlp.c_fc.weight')!.data)).toBeCloseTo(0.02, 2);
    expect(std(p.get('transformer.h.0.mlp.c_proj.weight')!.data)).toBeCloseTo(0.02 / Math.sqrt(4), 2);
    expect(Array.from(p.get('transformer.h.0.ln_2.weight')!.data).every((v) => v === 1)).toBe(true);
    expect(Array.from(p.get('transformer.h.0.ln_2.bias')!.data).every((v) => v === 0)).toBe(true);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-params-'));
    const file = path.join(dir, 'model.safetensors');
    saveParams(file, p);
    const q = loadParams(file, gpt2ParamShapes(cfg));
    for (const [k, v] of p) expect(q.get(k)!.data).toEqual(v.data);
    expect(() => loadParams(file, new Map([['transformer.wte.weight', [12, 16]]]))).toThrow(/has shape \[11,16\], expected \[12,16\]/);
    expect(() => loadParams(file, new Map([['lm_head.weight', [11, 16]]]))).toThrow(/'lm_head.weight' is missing/);
    fs.rmSync(dir, { recursive: true });
  });

  it('clipGradNorm scales to the max norm and returns the norm before', () => {
    const g = new Map([['a', new Float32Array([3, 4])]]);
    expect(clipGradNorm(g, 1)).toBeCloseTo(5);
    expect(Array.from(g.get('a')!)).toEqual([expect.closeTo(0.6, 6), expect.closeTo(0.8, 6)]);
  });

  it('Adam takes the first step of size lr in the gradient sign direction', () => {
    const p: ParamSet = new Map([['w', { shape: [2], data: new Float32Array([1, 1]) }]]);
    const adam = new Adam(p, { lr: 0.1 });
    adam.step(p, new Map([['w', new Float32Array([2, -0.5])]]));
    expect(p.get('w')!.data[0]).toBeCloseTo(0.9, 5);
    expect(p.get('w')!.data[1]).toBeCloseTo(1.1, 5);
  });
});
