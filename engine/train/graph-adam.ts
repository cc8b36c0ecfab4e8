/**
 * In-graph Adam / AdamW: the update of optim.ts emitted as standard ONNX nodes, so that a whole
 * training step (forward, backward, clipping, optimiser) is one onnxruntime run. It exists for GPU
 * runs, where every run copies its inputs host-to-device and its outputs back: with the update in
 * the graph the parameters and moments make one round trip per step instead of two plus a JS loop
 * (and loop-step.ts makes it one round trip per K steps). On CPU the JS loop of optim.ts is faster:
 * onnxruntime runs every elementwise op of the chain below as a separate pass over the tensor.
 *
 * The same formula as optim.ts (Adam, Kingma & Ba), step t >= 1 (t already incremented), gradient g:
 *   g' = g + wd p                                   (only for decay 'l2')
 *   m  = b1 m + (1 - b1) g';   v = b2 v + (1 - b2) g'^2
 *   p  = p (1 - lr wd)                              (only for decay 'decoupled', AdamW)
 *   p -= (lr c1) m / (sqrt(v c2) + eps),   c1 = 1 / (1 - b1^t),  c2 = 1 / (1 - b2^t)
 * c1 and c2 are computed in float64 (Cast t, Pow, Sub, Div) and rounded once to the parameter dtype:
 * in float32, 1 - 0.999^1 is off by 1.3e-5 relative (0.999 is not a float32), which JS does not see.
 * lr is a graph input (a float scalar), so schedules need no recompilation; cfg.lr is not used here.
 *
 * Gradient clipping by global norm (clipGradNorm's rule): norm = sqrt(sum over all gradients of
 * sum g^2) (ReduceSumSquare per gradient, float32), every g is scaled by min(1, c / norm), written as
 * Where(norm > c, c / norm, 1) so a zero norm leaves the gradients as they are.
 */
import { Graph, GraphError, type InputSpec, type Tensor, grad as gradOf, ops } from '../graph';
import type { ParamSet } from '../io/params';
import { Runner, type HostTensor, type RunnerOptions } from '../runtime/runner';
import { ADAM_DEFAULTS, type AdamConfig, type AdamState } from './optim';

/** A model to train: its parameters, its per-step batch inputs, and how to build its scalar loss. */
export interface TrainModel {
  /** Parameter names and shapes (float32), in the order they are fed. */
  params: ReadonlyMap<string, readonly number[]>;
  /** The inputs of one step's batch (for loop-step.ts their shapes must be static). */
  batch: readonly InputSpec[];
  /** Appends the scalar loss, given graph tensors for the parameters and the batch (all in one graph). */
  loss(params: Map<string, Tensor>, batch: Map<string, Tensor>): Tensor;
}

export interface GraphAdamOptions {
  /** Adam hyper-parameters (ADAM_DEFAULTS otherwise); lr is the default rate of run(). */
  adam?: Partial<AdamConfig>;
  /** Global-norm gradient clipping threshold; undefined or Infinity: no clipping. */
  clipNorm?: number;
}

export const mName = (param: string): string => `m.${param}`;
export const vName = (param: string): string => `v.${param}`;
export const newName = (param: string): string => `new.${param}`;

export interface AdamUpdate {
  param: Tensor;
  m: Tensor;
  v: Tensor;
}

// c1, c2 and lr * c1 depend only on (t, lr, betas): built once per graph and shared by every parameter.
const scalarCache = new WeakMap<Tensor, Map<string, { c2: Tensor; stepSize: Tensor }>>();

function biasCorrected(t: Tensor, lr: Tensor, cfg: AdamConfig, dtype: Tensor['dtype']): { c2: Tensor; stepSize: Tensor } {
  let byKey = scalarCache.get(t);
  if (!byKey) scalarCache.set(t, (byKey = new Map()));
  const key = `${lr.name}|${cfg.beta1}|${cfg.beta2}|${dtype}`;
  let s = byKey.get(key);
  if (!s) {
    const g = t.graph;
    const t64 = ops.cast(t, 'float64');
    const corr = (b: number) => ops.cast(ops.div(1, ops.sub(1, ops.pow(g.scalar(b, 'float64'), t64))), dtype);
    s = { c2: corr(cfg.beta2), stepSize: ops.mul(lr, corr(cfg.beta1)) };
    byKey.set(key, s);
  }
  return s;
}

function checkScalar(what: string, x: Tensor): void {
  if (x.rank !== 0) throw new GraphError(`graph Adam: ${what} must be a scalar, got ${x}`);
}

/**
 * Appends one Adam/AdamW update of `param` and returns the new parameter and moments.
 * t: float scalar step number, already incremented (t >= 1); lr: float scalar learning rate.
 */
export function adamUpdate(
  g: Graph,
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  t: Tensor,
  lr: Tensor,
  cfg: AdamConfig,
): AdamUpdate {
  for (const x of [param, grad, m, v, t, lr]) {
    if (x.graph !== g) throw new GraphError(`graph Adam: ${x} belongs to another graph`);
  }
  for (const x of [grad, m, v]) {
    if (x.dtype !== param.dtype || x.rank !== param.rank || x.shape.some((d, i) => d !== param.shape[i])) {
      throw new GraphError(`graph Adam: ${x} does not match parameter ${param}`);
    }
  }
  checkScalar('t', t);
  checkScalar('lr', lr);
  const { beta1: b1, beta2: b2, eps, weightDecay: wd, decay } = cfg;
  const lrP = ops.cast(lr, param.dtype);
  const gi = decay === 'l2' && wd !== 0 ? ops.add(grad, ops.mul(param, wd)) : grad;
  const m1 = ops.add(ops.mul(m, b1), ops.mul(gi, 1 - b1));
  const v1 = ops.add(ops.mul(v, b2), ops.mul(ops.mul(gi, gi), 1 - b2));
  const { c2, stepSize } = biasCorrected(t, lrP, cfg, param.dtype);
  const den = ops.add(ops.sqrt(ops.mul(v1, c2)), eps);
  const p0 = decay === 'decoupled' && wd !== 0 ? ops.mul(param, ops.sub(1, ops.mul(lrP, wd))) : param;
  const p1 = ops.sub(p0, ops.div(ops.mul(m1, stepSize), den));
  return { param: p1, m: m1, v: v1 };
}

/**
 * Global-norm clipping (clipGradNorm's rule, in the graph): returns the scaled gradients and the
 * norm before scaling (a float scalar).
 */
export function clipByGlobalNorm(grads: readonly Tensor[], maxNorm: number): { grads: Tensor[]; norm: Tensor } {
  if (grads.length === 0) throw new GraphError('clipByGlobalNorm: no gradients');
  const g = grads[0].graph;
  const squares = grads.map((x) =>
    g.addNode({
      op: 'ReduceSumSquare',
      inputs: [x],
      outputs: [{ shape: [], dtype: x.dtype }],
      attrs: { keepdims: { kind: 'int', value: 0 } },
    }).outputs[0],
  );
  const norm = ops.sqrt(squares.reduce((p, q) => ops.add(p, q)));
  const scale = ops.where(ops.greater(norm, maxNorm), ops.div(maxNorm, norm), 1);
  return { grads: grads.map((x) => ops.mul(x, scale)), norm };
}

export interface AdamStepTensors {
  params: Map<string, Tensor>;
  m: Map<string, Tensor>;
  v: Map<string, Tensor>;
  /** Step number, already incremented (t >= 1). */
  t: Tensor;
  lr: Tensor;
  batch: Map<string, Tensor>;
}

export interface AdamStepResult {
  loss: Tensor;
  params: Map<string, Tensor>;
  m: Map<string, Tensor>;
  v: Map<string, Tensor>;
  /** The global gradient norm before clipping (only when clipping). */
  gradNorm?: Tensor;
}

/** Appends loss, gradients, optional clipping and the Adam update of every parameter of `model`. */
export function appendAdamTrainStep(g: Graph, model: TrainModel, x: AdamStepTensors, cfg: AdamConfig, clipNorm?: number): AdamStepResult {
  const names = [...model.params.keys()];
  const loss = model.loss(x.params, x.batch);
  if (loss.rank !== 0) throw new GraphError(`train step: the loss must be a scalar, got ${loss}`);
  let grads = gradOf(loss, names.map((n) => x.params.get(n)!));
  let gradNorm: Tensor | undefined;
  if (clipNorm !== undefined && Number.isFinite(clipNorm)) {
    const c = clipByGlobalNorm(grads, clipNorm);
    grads = c.grads;
    gradNorm = c.norm;
  }
  const out: AdamStepResult = { loss, params: new Map(), m: new Map(), v: new Map(), gradNorm };
  names.forEach((n, i) => {
    const u = adamUpdate(g, x.params.get(n)!, grads[i], x.m.get(n)!, x.v.get(n)!, x.t, x.lr, cfg);
    out.params.set(n, u.param);
    out.m.set(n, u.m);
    out.v.set(n, u.v);
  });
  return out;
}

/**
 * A complete train step with in-graph Adam.
 *   inputs:  every parameter (by name), m.<name>, v.<name>, t (float scalar, the step number of this
 *            update, >= 1), lr (float scalar), then the batch inputs
 *   outputs: loss, new.<name>, new.m.<name>, new.v.<name>, and grad_norm when clipping
 */
export function buildAdamTrainGraph(model: TrainModel, opts: GraphAdamOptions = {}, g = new Graph('adam_train_step')): Graph {
  const cfg = { ...ADAM_DEFAULTS, ...opts.adam };
  const names = [...model.params.keys()];
  const params = new Map(names.map((n) => [n, g.param(n, model.params.get(n)!)]));
  const m = new Map(names.map((n) => [n, g.input(mName(n), model.params.get(n)!)]));
  const v = new Map(names.map((n) => [n, g.input(vName(n), model.params.get(n)!)]));
  const t = g.input('t', [], 'float32');
  const lr = g.input('lr', [], 'float32');
  const batch = new Map(model.batch.map((s) => [s.name, g.input(s.name, s.shape, s.dtype)]));
  const r = appendAdamTrainStep(g, model, { params, m, v, t, lr, batch }, cfg, opts.clipNorm);
  g.output(r.loss, 'loss');
  for (const n of names) g.output(r.params.get(n)!, newName(n));
  for (const n of names) g.output(r.m.get(n)!, newName(mName(n)));
  for (const n of names) g.output(r.v.get(n)!, newName(vName(n)));
  if (r.gradNorm) g.output(r.gradNorm, 'grad_norm');
  return g;
}

/** Zero moments and t = 0 for every parameter (the state optim.ts's Adam starts from). */
export function initAdamState(params: ParamSet): AdamState {
  const zeros = () => new Map([...params].map(([k, p]) => [k, new Float32Array(p.data.length)]));
  return { t: 0, m: zeros(), v: zeros() };
}

/** Feeds of parameters and moments, checked against the model's parameter list. */
export function adamStateFeeds(names: readonly string[], params: ParamSet, state: AdamState): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const n of names) {
    const p = params.get(n);
    const m = state.m.get(n);
    const v = state.v.get(n);
    if (!p) throw new Error(`graph Adam: no parameter named '${n}'`);
    if (!m || !v) throw new Error(`graph Adam: no Adam state for '${n}'`);
    feeds[n] = { data: p.data, dims: p.shape };
    feeds[mName(n)] = { data: m, dims: p.shape };
    feeds[vName(n)] = { data: v, dims: p.shape };
  }
  return feeds;
}

/** Copies new.<name>, new.m.<name>, new.v.<name> back into the caller's arrays. */
export function copyBackAdamState(names: readonly string[], out: Record<string, HostTensor>, params: ParamSet, state: AdamState): void {
  for (const n of names) {
    params.get(n)!.data.set(out[newName(n)].data as Float32Array);
    state.m.get(n)!.set(out[newName(mName(n))].data as Float32Array);
    state.v.get(n)!.set(out[newName(vName(n))].data as Float32Array);
  }
}

/** One compiled step (forward, backward, clipping, Adam) per onnxruntime run. */
export class GraphAdamStep {
  private constructor(
    private readonly runner: Runner,
    readonly paramNames: string[],
    readonly cfg: AdamConfig,
    readonly clips: boolean,
  ) {}

  static async compile(model: TrainModel, opts: GraphAdamOptions & { runner?: RunnerOptions } = {}): Promise<GraphAdamStep> {
    const g = buildAdamTrainGraph(model, opts);
    const clips = opts.clipNorm !== undefined && Number.isFinite(opts.clipNorm);
    return new GraphAdamStep(await Runner.fromGraph(g, opts.runner), [...model.params.keys()], { ...ADAM_DEFAULTS, ...opts.adam }, clips);
  }

  /** One step: updates params and state (t, m, v) in place; returns the loss (and the norm before clipping). */
  async run(params: ParamSet, state: AdamState, batch: Record<string, HostTensor>, lr = this.cfg.lr): Promise<{ loss: number; gradNorm?: number }> {
    const t = state.t + 1;
    const feeds: Record<string, HostTensor> = {
      ...adamStateFeeds(this.paramNames, params, state),
      t: { data: new Float32Array([t]), dims: [] },
      lr: { data: new Float32Array([lr]), dims: [] },
      ...batch,
    };
    const out = await this.runner.run(feeds);
    copyBackAdamState(this.paramNames, out, params, state);
    state.t = t;
    return { loss: Number(out.loss.data[0]), gradNorm: this.clips ? Number(out.grad_norm.data[0]) : undefined };
  }

  release(): Promise<void> {
    return this.runner.release();
  }
}
