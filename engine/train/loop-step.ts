/**
 * K training steps (forward, backward, clipping, in-graph Adam of graph-adam.ts) in ONE onnxruntime
 * run, with an ONNX Loop (opset 16/17 semantics):
 *
 *   parent inputs:  every parameter, m.<name>, v.<name>, t (float scalar: steps done so far),
 *                   lr [K] (one rate per step), and each batch input stacked as [K, ...shape]
 *   Loop(M = K, cond = true, carried = params..., m..., v..., t)
 *     body inputs:  iter (int64 scalar), cond (bool scalar), the carried values in the same order
 *     body:         t1 = t + 1; batch_i = Gather(batch_stacked, iter); lr_i = Gather(lr, iter);
 *                   one train step with Adam at step t1
 *     body outputs: cond, new params..., new m..., new v..., t1, then scan outputs loss (and grad_norm)
 *   parent outputs: new.<name>, new.m.<name>, new.v.<name>, new.t, losses [K] (, grad_norms [K])
 * The stacked batch and lr are read by the body from the outer scope (parent graph inputs, which
 * toOnnxGraph always emits; an outer reference to a parent node output or initializer would be
 * pruned, since the parent's pruning does not look inside subgraphs).
 *
 * Names: ONNX wants every value name unique across a model, subgraphs included, but every Graph
 * numbers its fresh names from 0 (`const_0`, `Add_1`, ...), so body and parent would collide. The
 * emitted body is therefore renamed: every name the body defines (inputs, initializers, node outputs,
 * node names) gets the prefix `body/`; outer-scope names are left alone.
 */
import { Graph, GraphError, type InputSpec, type Tensor, ops } from '../graph';
import type { OnnxAttr, OnnxGraph } from '../graph/onnx';
import type { ParamSet } from '../io/params';
import { Runner, type HostTensor, type RunnerOptions } from '../runtime/runner';
import { ADAM_DEFAULTS, type AdamConfig, type AdamState } from './optim';
import {
  type GraphAdamOptions,
  type TrainModel,
  adamStateFeeds,
  appendAdamTrainStep,
  copyBackAdamState,
  mName,
  newName,
  vName,
} from './graph-adam';

export const BODY_PREFIX = 'body/';

/**
 * Renames every name an ONNX graph defines (inputs, initializers, node outputs, node names) to
 * prefix + name; references to names it does not define (outer scope) are kept. Nested subgraphs
 * are renamed too, their references to this graph's names following the rename.
 */
export function prefixGraphNames(g: OnnxGraph, prefix: string, outer: ReadonlyMap<string, string> = new Map()): OnnxGraph {
  const map = new Map(outer);
  const define = (n: string) => {
    if (n !== '') map.set(n, prefix + n);
  };
  for (const i of g.inputs) define(i.name);
  for (const t of g.initializers) define(t.name);
  for (const n of g.nodes) for (const o of n.outputs) define(o);
  const ref = (n: string) => map.get(n) ?? n;
  return {
    name: g.name,
    inputs: g.inputs.map((i) => ({ ...i, name: ref(i.name) })),
    outputs: g.outputs.map((o) => ({ ...o, name: ref(o.name) })),
    initializers: g.initializers.map((t) => ({ ...t, name: ref(t.name) })),
    nodes: g.nodes.map((n) => {
      const attrs: Record<string, OnnxAttr> = {};
      for (const [k, a] of Object.entries(n.attrs)) {
        attrs[k] = a.kind === 'graph' ? { kind: 'graph', value: prefixGraphNames(a.value, prefix, map) } : a;
      }
      return { ...n, name: prefix + n.name, inputs: n.inputs.map(ref), outputs: n.outputs.map(ref), attrs };
    }),
  };
}

export interface LoopTrainOptions extends GraphAdamOptions {
  runner?: RunnerOptions;
}

function staticShape(spec: InputSpec): readonly number[] {
  if (!spec.shape.every((d): d is number => typeof d === 'number')) {
    throw new GraphError(`loop train step: batch input '${spec.name}' needs a static shape, got [${spec.shape.join(',')}]`);
  }
  return spec.shape;
}

/** The Loop graph described in the header, for `steps` (K) steps per run. */
export function buildLoopTrainGraph(model: TrainModel, steps: number, opts: GraphAdamOptions = {}): Graph {
  if (!Number.isInteger(steps) || steps < 1) throw new GraphError(`loop train step: steps must be a positive integer, got ${steps}`);
  const cfg: AdamConfig = { ...ADAM_DEFAULTS, ...opts.adam };
  const K = steps;
  const names = [...model.params.keys()];
  const shapeOf = (n: string) => model.params.get(n)!;
  const clips = opts.clipNorm !== undefined && Number.isFinite(opts.clipNorm);

  // The body: inputs in ONNX order (iter, cond, carried...).
  const body = new Graph('train_step_body');
  const iter = body.input('iter', [], 'int64');
  const cond = body.input('cond', [], 'bool');
  const params = new Map(names.map((n) => [n, body.param(n, shapeOf(n))]));
  const m = new Map(names.map((n) => [n, body.input(mName(n), shapeOf(n))]));
  const v = new Map(names.map((n) => [n, body.input(vName(n), shapeOf(n))]));
  const tIn = body.input('t', [], 'float32');
  const t1 = ops.add(tIn, 1);
  const lr = ops.gather(body.outer('lr', [K], 'float32'), iter);
  const batch = new Map<string, Tensor>();
  for (const s of model.batch) batch.set(s.name, ops.gather(body.outer(s.name, [K, ...staticShape(s)], s.dtype), iter));
  const r = appendAdamTrainStep(body, model, { params, m, v, t: t1, lr, batch }, cfg, opts.clipNorm);
  body.output(cond, 'cond_out');
  const outs = [...names.map((n) => r.params.get(n)!), ...names.map((n) => r.m.get(n)!), ...names.map((n) => r.v.get(n)!), t1, r.loss];
  if (r.gradNorm) outs.push(r.gradNorm);
  // Unnamed outputs keep their producers' names (no Identity copies); a tensor used twice would need one.
  const seen = new Set<string>();
  for (const o of outs) {
    if (seen.has(o.name) || body.inputs.includes(o)) body.output(ops.identity(o));
    else body.output(o);
    seen.add(o.name);
  }
  const bodyOnnx = prefixGraphNames(body.toOnnxGraph(), BODY_PREFIX);

  // The parent.
  const g = new Graph('loop_train');
  const carried: Tensor[] = [
    ...names.map((n) => g.input(n, shapeOf(n))),
    ...names.map((n) => g.input(mName(n), shapeOf(n))),
    ...names.map((n) => g.input(vName(n), shapeOf(n))),
    g.input('t', [], 'float32'),
  ];
  g.input('lr', [K], 'float32');
  for (const s of model.batch) g.input(s.name, [K, ...staticShape(s)], s.dtype);
  const loopOuts = [
    ...carried.map((c) => ({ shape: c.shape, dtype: c.dtype, name: newName(c.name) })),
    { shape: [K], dtype: 'float32' as const, name: 'losses' },
    ...(clips ? [{ shape: [K], dtype: 'float32' as const, name: 'grad_norms' }] : []),
  ];
  const loop = g.addNode({
    op: 'Loop',
    inputs: [g.scalar(K, 'int64'), g.scalar(1, 'bool'), ...carried],
    outputs: loopOuts,
    attrs: { body: { kind: 'graph', value: bodyOnnx } },
  });
  for (const o of loop.outputs) g.output(o);
  return g;
}

/** Stacks K per-step batches into [K, ...shape] tensors. */
export function stackBatches(batches: readonly Record<string, HostTensor>[], specs: readonly InputSpec[]): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const s of specs) {
    const shape = staticShape(s);
    const n = shape.reduce((p, d) => p * d, 1);
    const parts = batches.map((b, i) => {
      const f = b[s.name];
      if (!f) throw new Error(`stackBatches: batch ${i} has no '${s.name}'`);
      if (f.data.length !== n || f.dims.length !== shape.length || f.dims.some((d, j) => d !== shape[j])) {
        throw new Error(`stackBatches: '${s.name}' of batch ${i} has dims [${f.dims}], expected [${shape}]`);
      }
      return f.data;
    });
    const Ctor = parts[0].constructor as new (n: number) => HostTensor['data'];
    const data = new Ctor(n * batches.length);
    parts.forEach((p, i) => (data as { set(a: ArrayLike<unknown>, o: number): void }).set(p as ArrayLike<unknown>, i * n));
    out[s.name] = { data, dims: [batches.length, ...shape] };
  }
  return out;
}

/** K steps per onnxruntime run (see the header). */
export class LoopTrainStep {
  private constructor(
    private readonly runner: Runner,
    readonly paramNames: string[],
    readonly steps: number,
    readonly batchSpecs: readonly InputSpec[],
    readonly cfg: AdamConfig,
    readonly clips: boolean,
  ) {}

  static async compile(model: TrainModel, steps: number, opts: LoopTrainOptions = {}): Promise<LoopTrainStep> {
    const g = buildLoopTrainGraph(model, steps, opts);
    const clips = opts.clipNorm !== undefined && Number.isFinite(opts.clipNorm);
    return new LoopTrainStep(await Runner.fromGraph(g, opts.runner), [...model.params.keys()], steps, model.batch, { ...ADAM_DEFAULTS, ...opts.adam }, clips);
  }

  /**
   * Runs `steps` steps; updates params and state (t, m, v) in place. batches: K per-step batches, or
   * one record already stacked as [K, ...]; lr: one rate for all steps or one per step.
   */
  async run(
    params: ParamSet,
    state: AdamState,
    batches: readonly Record<string, HostTensor>[] | Record<string, HostTensor>,
    lr: number | readonly number[] = this.cfg.lr,
  ): Promise<{ losses: number[]; gradNorms?: number[] }> {
    const K = this.steps;
    let stacked: Record<string, HostTensor>;
    if (Array.isArray(batches)) {
      if (batches.length !== K) throw new Error(`LoopTrainStep: ${batches.length} batches given for ${K} steps`);
      stacked = stackBatches(batches, this.batchSpecs);
    } else stacked = batches as Record<string, HostTensor>;
    const rates = typeof lr === 'number' ? new Array<number>(K).fill(lr) : lr;
    if (rates.length !== K) throw new Error(`LoopTrainStep: ${rates.length} learning rates given for ${K} steps`);
    const out = await this.runner.run({
      ...adamStateFeeds(this.paramNames, params, state),
      t: { data: new Float32Array([state.t]), dims: [] },
      lr: { data: Float32Array.from(rates), dims: [K] },
      ...stacked,
    });
    copyBackAdamState(this.paramNames, out, params, state);
    state.t = Number(out['new.t'].data[0]);
    return {
      losses: Array.from(out.losses.data as Float32Array),
      gradNorms: this.clips ? Array.from(out.grad_norms.data as Float32Array) : undefined,
    };
  }

  release(): Promise<void> {
    return this.runner.release();
  }
}
