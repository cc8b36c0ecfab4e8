/**
 * In-graph Adam (graph-adam.ts) against the JS optimiser (optim.ts), and the K-step ONNX Loop
 * (loop-step.ts) against K single in-graph steps, on a small one-block GPT-2 learning the copy task.
 */
import { describe, expect, it } from 'vitest';
import { Graph, ops } from '../../engine/graph';
import { copyDemoConfig, COPY_DEMO_DEFAULTS, type CopyDemoOptions } from '../../engine/demo/copy-demo';
import { cloneParams, type ParamSet } from '../../engine/io/params';
import { gpt2Forward, gpt2ParamShapes, initGPT2 } from '../../engine/models/gpt2';
import type { HostTensor } from '../../engine/runtime/runner';
import { copyBatch } from '../../engine/tasks/copy';
import { GraphAdamStep, initAdamState, type TrainModel } from '../../engine/train/graph-adam';
import { LoopTrainStep, buildLoopTrainGraph, stackBatches } from '../../engine/train/loop-step';
import { Adam, type AdamConfig, type AdamState, clipGradNorm } from '../../engine/train/optim';
import { TrainStep } from '../../engine/train/step';
import { Rng } from '../../engine/util/rng';

const SMALL: CopyDemoOptions = { ...COPY_DEMO_DEFAULTS, batch: 8, digits: 4, nEmbd: 16, nHead: 2 };
const RUNNER = { threads: 1 };

function copyModel(o: CopyDemoOptions): TrainModel {
  const cfg = copyDemoConfig(o);
  const T = 2 * o.digits;
  return {
    params: gpt2ParamShapes(cfg),
    batch: [
      { name: 'ids', shape: [o.batch, T], dtype: 'int64' },
      { name: 'targets', shape: [o.batch, T], dtype: 'int64' },
    ],
    loss: (w, b) => ops.crossEntropy(gpt2Forward(cfg, w, b.get('ids')!), b.get('targets')!),
  };
}

/** A 2-layer tanh MLP classifier: logits = tanh(x W1 + b1) W2 + b2, cross-entropy on int labels. */
const MLP = { batch: 16, inp: 8, hidden: 32, classes: 5 };
function mlpModel(): TrainModel {
  const { batch, inp, hidden, classes } = MLP;
  return {
    params: new Map([['w1', [inp, hidden]], ['b1', [hidden]], ['w2', [hidden, classes]], ['b2', [classes]]]),
    batch: [
      { name: 'x', shape: [batch, inp], dtype: 'float32' },
      { name: 'y', shape: [batch], dtype: 'int64' },
    ],
    loss: (w, b) => {
      const h = ops.tanh(ops.add(ops.matmul(b.get('x')!, w.get('w1')!), w.get('b1')!));
      return ops.crossEntropy(ops.add(ops.matmul(h, w.get('w2')!), w.get('b2')!), b.get('y')!);
    },
  };
}

function mlpInit(rng: Rng): ParamSet {
  const p: ParamSet = new Map();
  for (const [name, shape] of mlpModel().params) {
    const data = new Float32Array(shape.reduce((a, d) => a * d, 1));
    for (let i = 0; i < data.length; i++) data[i] = 0.3 * rng.normal();
    p.set(name, { shape: [...shape], data });
  }
  return p;
}

function mlpBatches(n: number, rng: Rng): Record<string, HostTensor>[] {
  const { batch, inp, classes } = MLP;
  return Array.from({ length: n }, () => ({
    x: { data: Float32Array.from({ length: batch * inp }, () => rng.normal()), dims: [batch, inp] },
    y: { data: BigInt64Array.from({ length: batch }, () => BigInt(rng.int(0, classes - 1))), dims: [batch] },
  }));
}

/** The reference: gradients from TrainStep, then clipGradNorm and the JS Adam. */
async function jsStep(model: TrainModel): Promise<TrainStep> {
  const g = new Graph('js_train');
  const params = new Map([...model.params].map(([n, s]) => [n, g.param(n, s)]));
  const batch = new Map(model.batch.map((s) => [s.name, g.input(s.name, s.shape, s.dtype)]));
  return TrainStep.compile(g, model.loss(params, batch), RUNNER);
}

function batches(n: number, seed = 7): Record<string, HostTensor>[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => copyBatch(rng, SMALL.batch, SMALL.digits));
}

const lrAt = (s: number) => 3e-3 * Math.min(1, (s + 1) / 3);

/** Largest |a - b| / max(|b|, floor) (relative error; an absolute one for values below floor) over every element of every parameter. */
function maxRelErr(a: ParamSet, b: ParamSet, floor: number): number {
  let worst = 0;
  for (const [name, { data }] of b) {
    const x = a.get(name)!.data;
    for (let i = 0; i < data.length; i++) worst = Math.max(worst, Math.abs(x[i] - data[i]) / Math.max(Math.abs(data[i]), floor));
  }
  return worst;
}

const cloneState = (s: AdamState): AdamState => ({
  t: s.t,
  m: new Map([...s.m].map(([k, d]) => [k, d.slice()])),
  v: new Map([...s.v].map(([k, d]) => [k, d.slice()])),
});

const asParams = (m: Map<string, Float32Array>): ParamSet => new Map([...m].map(([k, data]) => [k, { shape: [data.length], data }]));

const CONFIGS: [string, Partial<AdamConfig>, number | undefined][] = [
  ['Adam', {}, undefined],
  ['AdamW (decoupled weight decay)', { weightDecay: 0.1, decay: 'decoupled' }, undefined],
  ['Adam with l2 weight decay', { weightDecay: 0.05, decay: 'l2' }, undefined],
  ['Adam with global-norm clipping', {}, 0.5],
];

/**
 * Runs `steps` steps of the JS reference (TrainStep + clipGradNorm + Adam) and of GraphAdamStep.
 * resync: before every in-graph step, copy the reference's parameters and state (checks each update
 * on its own; without it the two trajectories run freely from the same start).
 */
async function compareWithJs(
  model: TrainModel,
  init: ParamSet,
  data: Record<string, HostTensor>[],
  adamCfg: Partial<AdamConfig>,
  clip: number | undefined,
  resync: boolean,
): Promise<{ paramErr: number; mErr: number; vErr: number; lossErr: number; normErr: number; clipped: boolean; t: number }> {
  const ref = cloneParams(init);
  const js = await jsStep(model);
  const adam = new Adam(ref, adamCfg);
  let mine = cloneParams(init);
  let state = initAdamState(mine);
  const step = await GraphAdamStep.compile(model, { adam: adamCfg, clipNorm: clip, runner: RUNNER });
  let lossErr = 0;
  let normErr = 0;
  let clipped = false;
  try {
    for (let s = 0; s < data.length; s++) {
      if (resync) {
        mine = cloneParams(ref);
        state = cloneState(adam.state);
      }
      const { loss, grads } = await js.run(ref, data[s]);
      const norm = clip === undefined ? undefined : clipGradNorm(grads, clip);
      if (norm !== undefined && norm > clip!) clipped = true;
      adam.step(ref, grads, lrAt(s));
      const r = await step.run(mine, state, data[s], lrAt(s));
      lossErr = Math.max(lossErr, Math.abs(r.loss - loss) / Math.abs(loss));
      if (norm !== undefined) normErr = Math.max(normErr, Math.abs(r.gradNorm! - norm) / norm);
    }
  } finally {
    await js.release();
    await step.release();
  }
  return {
    paramErr: maxRelErr(mine, ref, 1e-3),
    mErr: maxRelErr(asParams(state.m), asParams(adam.state.m), 1e-4),
    vErr: maxRelErr(asParams(state.v), asParams(adam.state.v), 1e-6),
    lossErr,
    normErr,
    clipped,
    t: state.t,
  };
}

describe('in-graph Adam matches the JS Adam', () => {
  for (const [name, adamCfg, clip] of CONFIGS) {
    it(`${name}: same parameters after 5 steps (2-layer MLP)`, async () => {
      const rng = new Rng(3);
      const r = await compareWithJs(mlpModel(), mlpInit(rng), mlpBatches(5, rng), adamCfg, clip, false);
      expect(r.t).toBe(5);
      if (clip !== undefined) expect(r.clipped).toBe(true);
      expect(r.paramErr).toBeLessThanOrEqual(1e-5);
      expect(r.lossErr).toBeLessThanOrEqual(1e-5);
      expect(r.normErr).toBeLessThanOrEqual(1e-5);
      expect(r.mErr).toBeLessThanOrEqual(1e-4);
      expect(r.vErr).toBeLessThanOrEqual(1e-5);
    });

    it(`${name}: the same update at each of 5 steps (one-block GPT-2)`, async () => {
      const init = initGPT2(copyDemoConfig(SMALL), new Rng(3));
      const r = await compareWithJs(copyModel(SMALL), init, batches(5), adamCfg, clip, true);
      expect(r.t).toBe(5);
      if (clip !== undefined) expect(r.clipped).toBe(true);
      expect(r.paramErr).toBeLessThanOrEqual(1e-5);
      expect(r.lossErr).toBeLessThanOrEqual(1e-5);
      expect(r.normErr).toBeLessThanOrEqual(1e-5);
      expect(r.mErr).toBeLessThanOrEqual(1e-4);
      expect(r.vErr).toBeLessThanOrEqual(1e-5);
    });
  }
});

describe('the K-step Loop matches K single in-graph steps', () => {
  it('same per-step losses and final parameters (K = 4, AdamW, clipping, per-step lr)', async () => {
    const K = 4;
    const model = copyModel(SMALL);
    const opts = { adam: { weightDecay: 0.1 }, clipNorm: 0.5, runner: RUNNER };
    const init = initGPT2(copyDemoConfig(SMALL), new Rng(5));
    const data = batches(K, 11);
    const rates = data.map((_, s) => lrAt(s));

    const single = cloneParams(init);
    const sState = initAdamState(single);
    const step = await GraphAdamStep.compile(model, opts);
    const sLosses: number[] = [];
    const sNorms: number[] = [];
    for (let s = 0; s < K; s++) {
      const r = await step.run(single, sState, data[s], rates[s]);
      sLosses.push(r.loss);
      sNorms.push(r.gradNorm!);
    }
    await step.release();

    const looped = cloneParams(init);
    const lState = initAdamState(looped);
    const loop = await LoopTrainStep.compile(model, K, opts);
    const { losses, gradNorms } = await loop.run(looped, lState, data, rates);
    await loop.release();

    expect(lState.t).toBe(K);
    expect(losses).toHaveLength(K);
    losses.forEach((l, i) => expect(Math.abs(l - sLosses[i])).toBeLessThanOrEqual(1e-6 * Math.abs(sLosses[i])));
    gradNorms!.forEach((n, i) => expect(Math.abs(n - sNorms[i])).toBeLessThanOrEqual(1e-6 * sNorms[i]));
    expect(maxRelErr(looped, single, 1e-3)).toBeLessThanOrEqual(1e-6);
    expect(maxRelErr(asParams(lState.m), asParams(sState.m), 1e-4)).toBeLessThanOrEqual(1e-6);
    expect(maxRelErr(asParams(lState.v), asParams(sState.v), 1e-6)).toBeLessThanOrEqual(1e-6);

    // Two runs of a K = 2 loop (pre-stacked batches): t and the moments carry over between runs.
    const twice = cloneParams(init);
    const tState = initAdamState(twice);
    const loop2 = await LoopTrainStep.compile(model, 2, opts);
    const first = await loop2.run(twice, tState, stackBatches(data.slice(0, 2), model.batch), rates.slice(0, 2));
    const second = await loop2.run(twice, tState, stackBatches(data.slice(2, 4), model.batch), rates.slice(2, 4));
    await expect(loop2.run(twice, tState, data.slice(0, 3), rates.slice(0, 2))).rejects.toThrow(/3 batches given for 2 steps/);
    await loop2.release();
    expect(tState.t).toBe(4);
    [...first.losses, ...second.losses].forEach((l, i) => expect(Math.abs(l - sLosses[i])).toBeLessThanOrEqual(1e-6 * Math.abs(sLosses[i])));
    expect(maxRelErr(twice, single, 1e-3)).toBeLessThanOrEqual(1e-6);
  });

  it('the body is renamed so that no name clashes with the parent graph', () => {
    const g = buildLoopTrainGraph(copyModel(SMALL), 2);
    const og = g.toOnnxGraph();
    const parentNames = new Set([...og.inputs.map((i) => i.name), ...og.initializers.map((t) => t.name), ...og.nodes.flatMap((n) => n.outputs)]);
    const loop = og.nodes.find((n) => n.opType === 'Loop')!;
    const body = loop.attrs.body;
    if (body.kind !== 'graph') throw new Error('no body');
    const defined = [...body.value.inputs.map((i) => i.name), ...body.value.initializers.map((t) => t.name), ...body.value.nodes.flatMap((n) => n.outputs)];
    expect(defined.filter((n) => parentNames.has(n))).toEqual([]);
    expect(new Set(defined).size).toBe(defined.length);
    // Outer-scope references: exactly the stacked batch and the per-step rates, all parent inputs.
    const outerRefs = new Set(body.value.nodes.flatMap((n) => n.inputs).filter((n) => n !== '' && !defined.includes(n)));
    expect([...outerRefs].sort()).toEqual(['ids', 'lr', 'targets']);
  });
});
