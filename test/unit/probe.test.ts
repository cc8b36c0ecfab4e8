/** Probes (engine/analysis/probe.ts) and the Wilson interval (engine/analysis/stats.ts). */
import { describe, expect, it } from 'vitest';
import { Graph } from '../../engine/graph';
import { Runner } from '../../engine/runtime/runner';
import { Rng } from '../../engine/util/rng';
import {
  type ProbeData,
  type ProbeModel,
  type ProbeResult,
  LOGISTIC_PROBE,
  PAPER_PROBE,
  bceWithLogits,
  gatherMembers,
  probeLogitRow,
  probeLogits,
  splitByPair,
  standardisation,
  trainProbe,
} from '../../engine/analysis/probe';
import { wilson } from '../../engine/analysis/stats';
import { probeLayers } from '../../engine/analysis/probe-layers';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gradCheck } from './gradcheck';

/** gen = N(+shift, 1), mem = N(-shift, 1) on the first `dims` features, N(0, 1) elsewhere. */
function synth(pairs: number, d: number, shift: number, dims: number, seed: number): ProbeData {
  const rng = new Rng(seed);
  const gen = new Float32Array(pairs * d);
  const mem = new Float32Array(pairs * d);
  for (let k = 0; k < pairs; k++) {
    for (let j = 0; j < d; j++) {
      const s = j < dims ? shift : 0;
      gen[k * d + j] = rng.normal() + s;
      mem[k * d + j] = rng.normal() - s;
    }
  }
  return { gen, mem, pairs, d };
}

/** Plain-JS forward of a trained probe on raw rows: an independent check of the inference graph. */
function jsLogits(model: ProbeModel, x: Float32Array): Float64Array {
  const d = model.widths[0];
  const rows = x.length / d;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let h = Array.from({ length: d }, (_, j) => (x[r * d + j] - model.mean[j]) / model.std[j]);
    for (let k = 0; k + 1 < model.widths.length; k++) {
      const [nIn, nOut] = [model.widths[k], model.widths[k + 1]];
      const w = model.params.get(`fc${k + 1}.weight`)!.data;
      const b = model.params.get(`fc${k + 1}.bias`)!.data;
      const next = Array.from({ length: nOut }, (_, o) => {
        let s = b[o];
        for (let i = 0; i < nIn; i++) s += h[i] * w[i * nOut + o];
        return k + 2 < model.widths.length ? Math.max(s, 0) : s;
      });
      h = next;
    }
    out[r] = h[0];
  }
  return out;
}

/** Raw rows and labels of the given pairs, gen member then mem member. */
function rawMembers(data: ProbeData, pairIdx: number[]): { x: Float32Array; y: number[] } {
  const { d } = data;
  const x = new Float32Array(2 * pairIdx.length * d);
  const y: number[] = [];
  pairIdx.forEach((k, j) => {
    x.set(data.gen.subarray(k * d, (k + 1) * d), 2 * j * d);
    x.set(data.mem.subarray(k * d, (k + 1) * d), (2 * j + 1) * d);
    y.push(1, 0);
  });
  return { x, y };
}

const accuracyOf = (z: ArrayLike<number>, y: number[]) => y.filter((t, i) => (z[i] >= 0 ? 1 : 0) === t).length / y.length;
const withoutTime = (r: ProbeResult) => ({ ...r, seconds: 0 });

describe('wilson', () => {
  it('matches known 95% intervals', () => {
    const [lo, hi] = wilson(8, 10);
    expect(lo).toBeCloseTo(0.4902, 4);
    expect(hi).toBeCloseTo(0.9433, 4);
    expect(wilson(50, 100)[0]).toBeCloseTo(0.4038, 4);
    expect(wilson(50, 100)[1]).toBeCloseTo(0.5962, 4);
    expect(wilson(0, 10)).toEqual([0, expect.closeTo(0.2775, 4)]);
    expect(wilson(10, 10)).toEqual([expect.closeTo(0.7225, 4), 1]);
    expect(wilson(0, 0)).toEqual([0, 1]);
    // z = 2.576 (99%) is wider than 95%
    expect(wilson(8, 10, 2.576)[0]).toBeLessThan(lo);
  });

  it('refuses impossible counts', () => {
    expect(() => wilson(11, 10)).toThrow(/successes/);
    expect(() => wilson(-1, 10)).toThrow(/successes/);
    expect(() => wilson(1, 2.5)).toThrow(/n must be/);
  });
});

describe('split by pair', () => {
  it('covers every pair once, sizes 0.7/0.15/0.15, deterministic for a seed', () => {
    const s = splitByPair(2000, 5);
    expect([s.train.length, s.val.length, s.test.length]).toEqual([1400, 300, 300]);
    expect([...s.train, ...s.val, ...s.test].sort((a, b) => a - b)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    expect(splitByPair(2000, 5)).toEqual(s);
    expect(splitByPair(2000, 6).test).not.toEqual(s.test);
    expect(() => splitByPair(4, 1, { train: 1, val: 0, test: 0 })).toThrow(/at least 1/);
  });

  it('never lets the two members of a pair straddle train / val / test', () => {
    const data = synth(57, 3, 0, 0, 1);
    const s = splitByPair(data.pairs, 9);
    const { mean, std } = standardisation(data, s.train);
    const sides = [s.train, s.val, s.test].map((idx) => gatherMembers(data, idx, mean, std));
    const pairsOf = sides.map((m) => new Set(m.pair));
    for (let a = 0; a < 3; a++) for (let b = a + 1; b < 3; b++) for (const k of pairsOf[a]) expect(pairsOf[b].has(k)).toBe(false);
    for (const m of sides) {
      for (let r = 0; r < m.y.length; r += 2) {
        expect(m.pair[r]).toBe(m.pair[r + 1]); // both members of the pair, side by side
        expect([m.y[r], m.y[r + 1]]).toEqual([1, 0]); // gen = 1, mem = 0
      }
    }
    expect(sides.reduce((n, m) => n + m.y.length, 0)).toBe(2 * data.pairs);
  });

  it('standardises with the train split only; a constant feature gets std 1', () => {
    const data = synth(40, 3, 0, 0, 2);
    for (let k = 0; k < 40; k++) data.gen[k * 3 + 2] = data.mem[k * 3 + 2] = 7; // constant feature
    const s = splitByPair(40, 3);
    const { mean, std } = standardisation(data, s.train);
    expect(std[2]).toBe(1);
    const train = gatherMembers(data, s.train, mean, std);
    for (let j = 0; j < 3; j++) {
      const col = Array.from({ length: train.y.length }, (_, r) => train.x[r * 3 + j]);
      const m = col.reduce((p, q) => p + q, 0) / col.length;
      const v = col.reduce((p, q) => p + (q - m) ** 2, 0) / col.length;
      expect(m).toBeCloseTo(0, 5);
      expect(v).toBeCloseTo(j === 2 ? 0 : 1, 4);
    }
  });
});

describe('bceWithLogits', () => {
  it('matches softplus(z) - y z and stays finite for large |z|', async () => {
    const zs = [-60, -1, 0, 2.5, 80];
    const ys = [1, 0, 1, 0, 1];
    const g = new Graph('bce');
    const z = g.input('z', [5, 1]);
    const y = g.input('y', [5, 1]);
    g.output(bceWithLogits(z, y), 'loss');
    const runner = await Runner.fromGraph(g, { threads: 1 });
    const out = await runner.run({ z: { data: Float32Array.from(zs), dims: [5, 1] }, y: { data: Float32Array.from(ys), dims: [5, 1] } });
    await runner.release();
    const ref = zs.reduce((s, v, i) => s + Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v))) - ys[i] * v, 0) / zs.length;
    expect(Number(out.loss.data[0])).toBeCloseTo(ref, 4); // (60 + 0.3133 + 0.6931 + 2.5789 + 0) / 5
  });

  it('gradient matches finite differences (float64)', async () => {
    const r = await gradCheck([{ shape: [6, 1], values: [-8, -1.5, -0.2, 0.3, 2, 9] }], ([z], g) =>
      bceWithLogits(z, g.constant([1, 0, 1, 1, 0, 0], [6, 1], 'float64')));
    expect(r.checked).toBe(6);
  });
});

describe('trainProbe', () => {
  const easy = synth(300, 16, 1, 4, 11); // Bayes accuracy Phi(2) = 0.977 per member

  it('both probes separate separable data (> 0.9 held out)', async () => {
    // The MLP at the paper's lr 1e-5 needs far more steps than 13 batches per epoch give; 1e-3 here.
    const mlp = await trainProbe(easy, { kind: 'mlp', seed: 1, lr: 1e-3, threads: 1 });
    const lin = await trainProbe(easy, { kind: 'logistic', seed: 1, threads: 1 });
    for (const r of [mlp, lin]) {
      expect(r.accuracy).toBeGreaterThan(0.9);
      expect(r.ci[0]).toBeGreaterThan(0.8);
      expect(r.n).toBe(2 * r.testPairs);
      expect([r.trainPairs, r.valPairs, r.testPairs]).toEqual([210, 45, 45]);
    }
    expect(lin.lr).toBe(LOGISTIC_PROBE.lr);
  });

  it('stays near chance on pure noise (the CI contains 0.5)', async () => {
    const noise = synth(400, 16, 0, 0, 12);
    for (const kind of ['mlp', 'logistic'] as const) {
      const r = await trainProbe(noise, { kind, seed: 2, lr: kind === 'mlp' ? 1e-3 : undefined, threads: 1 });
      expect(r.ci[0]).toBeLessThanOrEqual(0.5);
      expect(r.ci[1]).toBeGreaterThanOrEqual(0.5);
    }
  });

  it('is deterministic for a seed', async () => {
    const opts = { kind: 'mlp' as const, seed: 3, lr: 1e-3, maxEpochs: 4, threads: 1 };
    const a = await trainProbe(easy, opts);
    const b = await trainProbe(easy, opts);
    expect(withoutTime(a)).toEqual(withoutTime(b));
    const c = await trainProbe(easy, { ...opts, seed: 4 });
    expect(c.history).not.toEqual(a.history);
  });

  it('stops early on easy data and keeps the best validation weights', async () => {
    const r = await trainProbe(easy, { kind: 'logistic', seed: 5, patience: 4, keepModel: true, threads: 1 });
    expect(r.stopReason).toBe('early');
    expect(r.epochs).toBeLessThan(LOGISTIC_PROBE.maxEpochs);
    expect(r.epochs - r.bestEpoch).toBe(4);
    const vals = r.history.map((h) => h.valAccuracy);
    expect(r.valAccuracy).toBe(Math.max(...vals));
    expect(vals.indexOf(r.valAccuracy)).toBe(r.bestEpoch);

    // The returned weights are the best epoch's, not the last's: recompute val and test accuracy in plain JS.
    const model = r.model!;
    const s = splitByPair(easy.pairs, 5);
    const val = rawMembers(easy, s.val);
    const test = rawMembers(easy, s.test);
    expect(accuracyOf(jsLogits(model, val.x), val.y)).toBe(r.valAccuracy);
    expect(accuracyOf(jsLogits(model, test.x), test.y)).toBe(r.accuracy);
  });

  it('restores the best epoch when later epochs are worse (MLP, noisy data)', async () => {
    const data = synth(200, 8, 0.3, 2, 13);
    const r = await trainProbe(data, { kind: 'mlp', seed: 8, lr: 1e-2, patience: 5, keepModel: true, threads: 1 });
    const last = r.history[r.history.length - 1].valAccuracy;
    expect(last).toBeLessThan(r.valAccuracy); // the precondition that makes this test meaningful
    const val = rawMembers(data, splitByPair(data.pairs, 8).val);
    const js = jsLogits(r.model!, val.x);
    expect(accuracyOf(js, val.y)).toBe(r.valAccuracy);
    const viaGraph = await probeLogits(r.model!, val.x);
    viaGraph.forEach((z, i) => expect(z).toBeCloseTo(js[i], 4));
    // The editor's one-row JS forward (probeLogitRow) agrees with both.
    const d = r.model!.widths[0];
    js.forEach((z, i) => expect(probeLogitRow(r.model!, val.x.subarray(i * d, (i + 1) * d))).toBeCloseTo(z, 9));
  });

  it('can be interrupted between epochs', async () => {
    let seen = 0;
    const r = await trainProbe(easy, {
      kind: 'mlp', seed: 7, lr: 1e-3, threads: 1,
      onEpoch: () => { seen++; },
      shouldStop: () => seen >= 3, // epoch 0 (initial weights) + 2 trained epochs
    });
    expect(r.stopReason).toBe('interrupted');
    expect(r.epochs).toBe(2);
    expect(r.history.length).toBe(3);
    expect(r.accuracy).toBeGreaterThan(0);
  });

  it('uses the paper preset by default for the MLP', async () => {
    expect(PAPER_PROBE).toMatchObject({ kind: 'mlp', lr: 1e-5, batch: 32, maxEpochs: 100 });
    const tiny = synth(12, 4, 1, 2, 14);
    const r = await trainProbe(tiny, { kind: 'mlp', seed: 1, maxEpochs: 1, threads: 1 });
    expect(r.lr).toBe(1e-5);
    expect(r.batch).toBe(16); // 8 train pairs = 16 members < 32: the batch shrinks to the train split
  });

  it('refuses malformed data', async () => {
    await expect(trainProbe({ gen: new Float32Array(10), mem: new Float32Array(12), pairs: 5, d: 2 }, { kind: 'mlp', seed: 1 }))
      .rejects.toThrow(/mem has 12 values, expected pairs x d = 5 x 2/);
    const bad = synth(10, 2, 0, 0, 1);
    bad.gen[7] = NaN;
    await expect(trainProbe(bad, { kind: 'logistic', seed: 1 })).rejects.toThrow(/gen\[pair 3, 1\] is NaN/);
  });
});

describe('probeLayers on the committed run', () => {
  const runAnalysis = path.join(__dirname, '..', '..', 'runs', 'arithmetic-tiny', 'analysis');
  it.skipIf(!fs.existsSync(path.join(runAnalysis, 'hidden_gen.npy')))('writes probes.json with one entry per layer', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-probes-'));
    for (const f of ['hidden_gen.npy', 'hidden_mem.npy']) fs.copyFileSync(path.join(runAnalysis, f), path.join(dir, f));
    const sites = [0, 1, 2, 3].map((l) => `blocks.${l}.ln2`);
    const out = await probeLayers(dir, sites, { seed: 0, threads: 1, kinds: ['logistic'] });
    const file = JSON.parse(fs.readFileSync(path.join(dir, 'probes.json'), 'utf8'));
    expect(file).toEqual(JSON.parse(JSON.stringify(out)));
    expect(file.logistic.map((p: { site: string }) => p.site)).toEqual(sites);
    for (const p of file.logistic) {
      expect(p.n).toBe(2 * file.split.testPairs);
      expect(p.ci[0]).toBeLessThanOrEqual(p.accuracy);
      expect(p.ci[1]).toBeGreaterThanOrEqual(p.accuracy);
    }
    fs.rmSync(dir, { recursive: true });
  });
});
