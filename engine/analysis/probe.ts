/**
 * Probes (method.md section 5): one classifier per layer that predicts, from a pair member's hidden
 * state, whether it is the generalising (gen, label 1) or the memorising (mem, label 0) member.
 * Held-out accuracy per layer says where the distinction becomes readable (paper: it rises with depth).
 *
 * Models (x [B, d] standardised features, z [B, 1] one logit, p(gen) = sigmoid(z)):
 *   'mlp'       the paper's probe: z = fc3(relu(fc2(relu(fc1(x))))), widths d -> 2d -> 2d -> 1
 *   'logistic'  the cheap baseline: z = fc1(x), widths d -> 1. If it matches the MLP, the signal is
 *               linear. Its default lr is 1e-2 (PAPER_PROBE's 1e-5 would leave a linear model near
 *               its initialisation for the whole run; 1e-2 is the usual Adam rate for logistic
 *               regression on standardised features and converges in a few epochs).
 *   fcK(h) = h @ W + b, W [in, out] (x @ W layout, like GPT-2's Conv1D; PyTorch's nn.Linear stores
 *   the transpose). Initialisation as PyTorch's nn.Linear (kaiming_uniform_ with a = sqrt(5)):
 *   W and b ~ U(-1/sqrt(in), 1/sqrt(in)), drawn from the seeded Rng, layer by layer, W then b.
 *
 * Loss: binary cross-entropy on the logit, written stably (never log(sigmoid)):
 *   L = mean_i softplus(z_i) - y_i z_i,  softplus(z) = max(z, 0) + log(1 + exp(-|z|))
 *   dL/dz_i = (sigmoid(z_i) - y_i) / B
 * bceWithLogits is a composite op: the forward is standard ops, the gradient is the closed form
 * above (one rule instead of the chain through Max/Abs/Exp/Log; checked against finite differences
 * in test/unit/probe.test.ts).
 *
 * Training, with the engine: a static [B, d] graph of forward + loss, grad() appends the backward,
 * TrainStep runs it (one onnxruntime run per batch), JS Adam (optim.ts) updates the weights.
 *   Split BY PAIR: the pair indices are shuffled with the seed and cut into train / val / test
 *     (default 0.7 / 0.15 / 0.15, rounded to whole pairs); both members of a pair land on the same
 *     side, so a probe can never score by recognising the other member of a pair it trained on.
 *     The split depends on the seed only, so an MLP and a logistic probe with one seed share it.
 *   Standardisation: every feature is mapped to (x - mean) / std with mean and (population) std
 *     over the TRAIN members only (a std of 0, a constant feature, becomes 1), then applied to
 *     val and test as well; no statistic of the held-out members leaks into training.
 *   Epoch: the train members are shuffled (seeded) and cut into batches of B; the last partial
 *     batch is dropped (so the graph keeps one static shape; each epoch drops different members).
 *     When the train split has fewer than B members, B shrinks to the train split.
 *   Early stopping: after every epoch the val accuracy is measured; the weights of the best val
 *     epoch (strictly better than every earlier one; epoch 0 = the initial weights) are kept, and
 *     training stops after `patience` epochs without improvement, at maxEpochs, or when
 *     shouldStop() returns true (checked before every batch; the epoch in progress is abandoned).
 *   Evaluation: one inference graph (the same forward, symbolic batch), logits thresholded at 0
 *     (sigmoid 0.5; a tie counts as gen). Test accuracy is over the 2 * testPairs held-out members,
 *     with a 95% Wilson interval (stats.ts).
 * Deterministic for a seed and a thread count (the default is 1 intra-op thread: at these sizes the
 * per-run overhead dominates and a second thread does not help).
 */
import { Graph, type Tensor, numel, ops } from '../graph';
import { compositeOp } from '../graph/ops/util';
import { type ParamSet, cloneParams, paramFeeds } from '../io/params';
import { Runner } from '../runtime/runner';
import { Adam } from '../train/optim';
import { TrainStep } from '../train/step';
import { Rng } from '../util/rng';
import { wilson } from './stats';

export type ProbeKind = 'mlp' | 'logistic';

/** One layer: gen and mem are [pairs, d] row-major; row k of each is pair k. */
export interface ProbeData {
  gen: Float32Array;
  mem: Float32Array;
  pairs: number;
  d: number;
}

export interface SplitFractions {
  train: number;
  val: number;
  test: number;
}

export interface ProbeEpoch {
  /** 0 = the initial weights (no training yet). */
  epoch: number;
  /** Mean training loss over the epoch's batches (NaN for epoch 0). */
  loss: number;
  valAccuracy: number;
}

export interface ProbeOptions {
  kind: ProbeKind;
  seed: number;
  lr?: number;
  batch?: number;
  maxEpochs?: number;
  /** Epochs without a better val accuracy before stopping. */
  patience?: number;
  split?: SplitFractions;
  /** onnxruntime intra-op threads (default 1). */
  threads?: number;
  shouldStop?: () => boolean;
  /** Called after every epoch (progress). */
  onEpoch?: (e: ProbeEpoch) => void;
  /** Return the trained weights and the standardisation in result.model (default false: they can be large). */
  keepModel?: boolean;
}

/** The hyperparameters a preset fixes. */
export interface ProbeHyperparameters {
  kind: ProbeKind;
  lr: number;
  batch: number;
  maxEpochs: number;
  patience: number;
  split: Readonly<SplitFractions>;
}

const DEFAULT_SPLIT: Readonly<SplitFractions> = Object.freeze({ train: 0.7, val: 0.15, test: 0.15 });

/** The paper's probe: MLP d -> 2d -> 2d -> 1 with ReLU, Adam lr 1e-5, batch 32, <= 100 epochs, BCE, early stopping on val accuracy. */
export const PAPER_PROBE: Readonly<ProbeHyperparameters> = Object.freeze({
  kind: 'mlp',
  lr: 1e-5,
  batch: 32,
  maxEpochs: 100,
  patience: 10, // not given by the paper
  split: DEFAULT_SPLIT,
});

/** The linear baseline: the same trainer without hidden layers, at lr 1e-2 (see the header). */
export const LOGISTIC_PROBE: Readonly<ProbeHyperparameters> = Object.freeze({ ...PAPER_PROBE, kind: 'logistic', lr: 1e-2 });

export const PROBE_DEFAULTS: Readonly<Record<ProbeKind, Readonly<ProbeHyperparameters>>> = Object.freeze({
  mlp: PAPER_PROBE,
  logistic: LOGISTIC_PROBE,
});

export interface ProbeModel {
  kind: ProbeKind;
  /** Layer widths, input first: [d, 2d, 2d, 1] or [d, 1]. */
  widths: number[];
  /** fcK.weight [in, out] and fcK.bias [out], K = 1, 2, ... */
  params: ParamSet;
  /** Standardisation from the train split: x' = (x - mean) / std. */
  mean: Float32Array;
  std: Float32Array;
}

export interface ProbeResult {
  kind: ProbeKind;
  /** Accuracy on the held-out test members (both members of every test pair). */
  accuracy: number;
  /** 95% Wilson interval of `accuracy`. */
  ci: [number, number];
  /** Held-out test members (2 * testPairs). */
  n: number;
  correct: number;
  /** Val accuracy of the kept (best) weights. */
  valAccuracy: number;
  /** Training epochs completed. */
  epochs: number;
  /** The epoch whose weights were kept (0: none beat the initial weights). */
  bestEpoch: number;
  stopReason: 'early' | 'maxEpochs' | 'interrupted';
  trainPairs: number;
  valPairs: number;
  testPairs: number;
  lr: number;
  /** The batch actually used (smaller than asked when the train split is smaller). */
  batch: number;
  seconds: number;
  history: ProbeEpoch[];
  model?: ProbeModel;
}

// ---------------------------------------------------------------------------------------------
// Loss

/** Mean binary cross-entropy of logits z against labels y (same static shape), stable; see the header. */
export function bceWithLogits(z: Tensor, y: Tensor): Tensor {
  if (z.shape.length !== y.shape.length || z.shape.some((d, i) => d !== y.shape[i])) {
    throw new Error(`bceWithLogits: logits ${z} and labels ${y} must have one shape`);
  }
  const count = numel(z.shape);
  const axes = z.shape.map((_, i) => i);
  return compositeOp(
    [z, y],
    () => {
      const softplus = ops.add(ops.relu(z), ops.log(ops.add(ops.exp(ops.neg(ops.abs(z))), 1)));
      return ops.reduceMean(ops.sub(softplus, ops.mul(y, z)), axes, false);
    },
    (gy) => [ops.mul(ops.sub(ops.sigmoid(z), y), ops.div(gy, count)), undefined],
  );
}

// ---------------------------------------------------------------------------------------------
// Model

export function probeWidths(kind: ProbeKind, d: number): number[] {
  return kind === 'mlp' ? [d, 2 * d, 2 * d, 1] : [d, 1];
}

const weightName = (k: number) => `fc${k + 1}.weight`;
const biasName = (k: number) => `fc${k + 1}.bias`;

/** nn.Linear's default initialisation: W, b ~ U(-1/sqrt(in), 1/sqrt(in)). */
export function initProbe(widths: readonly number[], rng: Rng): ParamSet {
  const p: ParamSet = new Map();
  for (let k = 0; k + 1 < widths.length; k++) {
    const [fanIn, fanOut] = [widths[k], widths[k + 1]];
    const bound = 1 / Math.sqrt(fanIn);
    const u = () => (2 * rng.uniform() - 1) * bound;
    p.set(weightName(k), { shape: [fanIn, fanOut], data: Float32Array.from({ length: fanIn * fanOut }, u) });
    p.set(biasName(k), { shape: [fanOut], data: Float32Array.from({ length: fanOut }, u) });
  }
  return p;
}

/** Declares the probe's parameters on g and returns the logits [rows, 1] of x [rows, d]. */
function probeForward(g: Graph, x: Tensor, widths: readonly number[]): Tensor {
  let h = x;
  const layers = widths.length - 1;
  for (let k = 0; k < layers; k++) {
    const w = g.param(weightName(k), [widths[k], widths[k + 1]]);
    const b = g.param(biasName(k), [widths[k + 1]]);
    h = ops.gemm(h, w, {}, b); // [rows, out]
    if (k < layers - 1) h = ops.relu(h);
  }
  return h;
}

/** Logits of standardised rows x [rows, d], one inference graph with a symbolic batch. */
class ProbeScorer {
  private constructor(private readonly runner: Runner, private readonly d: number) {}

  static async create(widths: readonly number[], threads: number): Promise<ProbeScorer> {
    const g = new Graph('probe-infer');
    const x = g.input('x', ['rows', widths[0]]);
    g.output(probeForward(g, x, widths), 'logits');
    return new ProbeScorer(await Runner.fromGraph(g, { threads }), widths[0]);
  }

  async logits(params: ParamSet, x: Float32Array): Promise<Float32Array> {
    const rows = x.length / this.d;
    const out = await this.runner.run({ ...paramFeeds(params), x: { data: x, dims: [rows, this.d] } }, ['logits']);
    return out.logits.data as Float32Array;
  }

  /** Members classified correctly: logit >= 0 predicts gen (label 1). */
  async correct(params: ParamSet, set: MemberSet): Promise<number> {
    const z = await this.logits(params, set.x);
    let c = 0;
    for (let i = 0; i < z.length; i++) if ((z[i] >= 0 ? 1 : 0) === set.y[i]) c++;
    return c;
  }

  release(): Promise<void> {
    return this.runner.release();
  }
}

/** Logits p(gen) = sigmoid(z) of raw (unstandardised) rows x [rows, d] under a trained probe. */
export async function probeLogits(model: ProbeModel, x: Float32Array, threads = 1): Promise<Float32Array> {
  const d = model.widths[0];
  if (x.length % d !== 0) throw new Error(`probeLogits: ${x.length} values is not a whole number of rows of ${d}`);
  const xs = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) xs[i] = (x[i] - model.mean[i % d]) / model.std[i % d];
  const scorer = await ProbeScorer.create(model.widths, threads);
  try {
    return await scorer.logits(model.params, xs);
  } finally {
    await scorer.release();
  }
}

/**
 * The same logit for ONE raw row x [d], computed in plain JS (float64): standardise, then fcK with
 * ReLU between, one logit. For the editor's per-prompt reading, where building a session per call
 * would cost more than the arithmetic of these small widths.
 */
export function probeLogitRow(model: ProbeModel, x: ArrayLike<number>): number {
  let h: Float64Array = Float64Array.from({ length: model.widths[0] }, (_, i) => (x[i] - model.mean[i]) / model.std[i]);
  for (let k = 1; k < model.widths.length; k++) {
    const W = model.params.get(`fc${k}.weight`)!.data;
    const b = model.params.get(`fc${k}.bias`)!.data;
    const [nin, nout] = [model.widths[k - 1], model.widths[k]];
    const o = Float64Array.from(b.subarray(0, nout));
    for (let i = 0; i < nin; i++) {
      const hi = h[i];
      if (hi === 0) continue;
      for (let j = 0; j < nout; j++) o[j] += hi * W[i * nout + j];
    }
    if (k < model.widths.length - 1) for (let j = 0; j < nout; j++) o[j] = Math.max(0, o[j]);
    h = o;
  }
  return h[0];
}

// ---------------------------------------------------------------------------------------------
// Data

export interface PairSplit {
  train: number[];
  val: number[];
  test: number[];
}

/** Shuffles the pair indices 0..pairs-1 with the seed and cuts them train / val / test (whole pairs). */
export function splitByPair(pairs: number, seed: number, fractions: SplitFractions = DEFAULT_SPLIT): PairSplit {
  const { train, val, test } = fractions;
  const sum = train + val + test;
  if (![train, val, test].every((f) => Number.isFinite(f) && f >= 0) || !(sum > 0)) {
    throw new Error(`probe split: fractions must be non-negative with a positive sum, got ${JSON.stringify(fractions)}`);
  }
  const nTest = Math.round((test / sum) * pairs);
  const nVal = Math.round((val / sum) * pairs);
  const nTrain = pairs - nVal - nTest;
  if (nTrain < 1 || nVal < 1 || nTest < 1) {
    throw new Error(`probe split: ${pairs} pairs at ${train}/${val}/${test} give ${nTrain}/${nVal}/${nTest} train/val/test pairs; each side needs at least 1`);
  }
  const idx = new Rng(seed).shuffle(Array.from({ length: pairs }, (_, i) => i));
  return { train: idx.slice(0, nTrain), val: idx.slice(nTrain, nTrain + nVal), test: idx.slice(nTrain + nVal) };
}

/** Members of a set of pairs: row 2j is pair j's gen member (y = 1), row 2j + 1 its mem member (y = 0). */
export interface MemberSet {
  x: Float32Array; // [2 * pairs, d]
  y: Float32Array; // [2 * pairs]
  pair: Int32Array; // [2 * pairs]: the pair each row came from
}

/** Per-feature mean and population std over the members of the given pairs (std 0 -> 1). */
export function standardisation(data: ProbeData, pairIdx: readonly number[]): { mean: Float32Array; std: Float32Array } {
  const { d } = data;
  const s = new Float64Array(d);
  const s2 = new Float64Array(d);
  for (const src of [data.gen, data.mem]) {
    for (const k of pairIdx) {
      const o = k * d;
      for (let j = 0; j < d; j++) s[j] += src[o + j];
    }
  }
  const n = 2 * pairIdx.length;
  const mean = new Float64Array(d);
  for (let j = 0; j < d; j++) mean[j] = s[j] / n;
  for (const src of [data.gen, data.mem]) {
    for (const k of pairIdx) {
      const o = k * d;
      for (let j = 0; j < d; j++) {
        const c = src[o + j] - mean[j];
        s2[j] += c * c;
      }
    }
  }
  const std = new Float32Array(d);
  for (let j = 0; j < d; j++) {
    const v = Math.sqrt(s2[j] / n);
    std[j] = v > 0 && Number.isFinite(v) ? v : 1;
  }
  return { mean: Float32Array.from(mean), std };
}

export function gatherMembers(data: ProbeData, pairIdx: readonly number[], mean: Float32Array, std: Float32Array): MemberSet {
  const { d } = data;
  const rows = 2 * pairIdx.length;
  const x = new Float32Array(rows * d);
  const y = new Float32Array(rows);
  const pair = new Int32Array(rows);
  pairIdx.forEach((k, j) => {
    for (const [m, src] of [[0, data.gen], [1, data.mem]] as const) {
      const r = 2 * j + m;
      const o = k * d;
      for (let i = 0; i < d; i++) x[r * d + i] = (src[o + i] - mean[i]) / std[i];
      y[r] = m === 0 ? 1 : 0;
      pair[r] = k;
    }
  });
  return { x, y, pair };
}

function checkData(data: ProbeData): void {
  const { gen, mem, pairs, d } = data;
  if (!Number.isInteger(pairs) || pairs < 3) throw new Error(`probe: need at least 3 pairs (train, val, test), got ${pairs}`);
  if (!Number.isInteger(d) || d < 1) throw new Error(`probe: d must be a positive integer, got ${d}`);
  for (const [name, a] of [['gen', gen], ['mem', mem]] as const) {
    if (a.length !== pairs * d) throw new Error(`probe: ${name} has ${a.length} values, expected pairs x d = ${pairs} x ${d}`);
    for (let i = 0; i < a.length; i++) {
      if (!Number.isFinite(a[i])) throw new Error(`probe: ${name}[pair ${Math.floor(i / d)}, ${i % d}] is ${a[i]}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Training

const INIT_SALT = 0x1f123bb5;
const SHUFFLE_SALT = 0x6a09e667;

export async function trainProbe(data: ProbeData, opts: ProbeOptions): Promise<ProbeResult> {
  const t0 = performance.now();
  const hp = PROBE_DEFAULTS[opts.kind];
  if (!hp) throw new Error(`probe: unknown kind '${String(opts.kind)}' (mlp or logistic)`);
  const lr = opts.lr ?? hp.lr;
  const maxEpochs = opts.maxEpochs ?? hp.maxEpochs;
  const patience = opts.patience ?? hp.patience;
  const threads = opts.threads ?? 1;
  if (!(lr > 0)) throw new Error(`probe: lr must be positive, got ${lr}`);
  if (!Number.isInteger(maxEpochs) || maxEpochs < 0) throw new Error(`probe: maxEpochs must be a non-negative integer, got ${maxEpochs}`);
  if (!Number.isInteger(patience) || patience < 1) throw new Error(`probe: patience must be a positive integer, got ${patience}`);
  checkData(data);

  const { d } = data;
  const split = splitByPair(data.pairs, opts.seed, opts.split ?? hp.split);
  const { mean, std } = standardisation(data, split.train);
  const train = gatherMembers(data, split.train, mean, std);
  const val = gatherMembers(data, split.val, mean, std);
  const test = gatherMembers(data, split.test, mean, std);
  const members = train.y.length;
  const batch = Math.min(opts.batch ?? hp.batch, members);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`probe: batch must be a positive integer, got ${opts.batch}`);

  const widths = probeWidths(opts.kind, d);
  const params = initProbe(widths, new Rng((opts.seed ^ INIT_SALT) >>> 0));
  const shuffleRng = new Rng((opts.seed ^ SHUFFLE_SALT) >>> 0);

  const g = new Graph('probe-train');
  const x = g.input('x', [batch, d]);
  const y = g.input('y', [batch, 1]);
  const step = await TrainStep.compile(g, bceWithLogits(probeForward(g, x, widths), y), { threads });
  const scorer = await ProbeScorer.create(widths, threads);
  try {
    const adam = new Adam(params, { lr });
    const xb = new Float32Array(batch * d);
    const yb = new Float32Array(batch);
    const feeds = { x: { data: xb, dims: [batch, d] }, y: { data: yb, dims: [batch, 1] } };
    const order = Array.from({ length: members }, (_, i) => i);
    const stepsPerEpoch = Math.floor(members / batch);

    const history: ProbeEpoch[] = [];
    const valAcc = async () => (await scorer.correct(params, val)) / val.y.length;
    let best = { epoch: 0, valAccuracy: await valAcc(), params: cloneParams(params) };
    history.push({ epoch: 0, loss: NaN, valAccuracy: best.valAccuracy });
    opts.onEpoch?.(history[0]);

    let stopReason: ProbeResult['stopReason'] = 'maxEpochs';
    let epochs = 0;
    let sinceBest = 0;
    epochLoop: for (let epoch = 1; epoch <= maxEpochs; epoch++) {
      shuffleRng.shuffle(order);
      let lossSum = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        if (opts.shouldStop?.()) {
          stopReason = 'interrupted';
          break epochLoop;
        }
        for (let r = 0; r < batch; r++) {
          const m = order[s * batch + r];
          xb.set(train.x.subarray(m * d, (m + 1) * d), r * d);
          yb[r] = train.y[m];
        }
        const { loss, grads } = await step.run(params, feeds);
        adam.step(params, grads);
        lossSum += loss;
      }
      epochs = epoch;
      const record = { epoch, loss: lossSum / stepsPerEpoch, valAccuracy: await valAcc() };
      history.push(record);
      opts.onEpoch?.(record);
      if (record.valAccuracy > best.valAccuracy) {
        best = { epoch, valAccuracy: record.valAccuracy, params: cloneParams(params) };
        sinceBest = 0;
      } else if (++sinceBest >= patience) {
        stopReason = 'early';
        break;
      }
    }

    const correct = await scorer.correct(best.params, test);
    const n = test.y.length;
    return {
      kind: opts.kind,
      accuracy: correct / n,
      ci: wilson(correct, n),
      n,
      correct,
      valAccuracy: best.valAccuracy,
      epochs,
      bestEpoch: best.epoch,
      stopReason,
      trainPairs: split.train.length,
      valPairs: split.val.length,
      testPairs: split.test.length,
      lr,
      batch,
      seconds: (performance.now() - t0) / 1000,
      history,
      ...(opts.keepModel ? { model: { kind: opts.kind, widths, params: best.params, mean, std } } : {}),
    };
  } finally {
    await step.release();
    await scorer.release();
  }
}
