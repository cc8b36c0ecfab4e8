/**
 * Training a LoRA adapter on a frozen LLaMA (method.md section 3, the "adapter" run): the base
 * weights are initializers of the step graph, the adapter's A and B its only parameters, so one
 * onnxruntime run returns the loss and the adapter gradients and nothing crosses the boundary for
 * the base. The update runs in JS (optim.ts) between runs.
 *
 *   loss = mean over targets != -100 of -log softmax(logits[b, t])[targets[b, t]]   (ops.crossEntropy)
 *   g    = dloss/d{A, B} (models/lora.ts header), clipped to global norm `clip`
 *   Adam(W) step on A and B with learning rate lr (weight decay decoupled)
 * Dropout (lora_dropout > 0) draws fresh masks from the trainer's seeded generator at every step;
 * evaluate() runs the same graph with dropout off (masks of ones) and no update.
 * Checkpoint (saveCheckpoint / loadCheckpoint): one safetensors file with the adapter (PEFT names),
 * adam.m.{name} and adam.v.{name}, and metadata {step, adamT, dropoutRng}, so a resumed run
 * continues exactly (same parameters, moments and dropout masks as an uninterrupted one); the
 * caller's run state rides in the same file (metadata `state`), so that one atomic write replaces
 * both (train/checkpoint.ts says why).
 */
import { Graph, type Tensor, ops } from '../graph';
import { runnerForGraph } from '../io/onnx-external';
import { type ParamSet, cloneParams, paramFeeds } from '../io/params';
import { readSafeTensorsFile, tensorAsFloat32, type TensorToWrite, writeSafeTensorsFile } from '../io/safetensors';
import { type LlamaConfig, llamaForward, llamaParamInitializers } from '../models/llama';
import { type LoraConfig, initLora, loraDropoutFeeds, loraGraphTensors } from '../models/lora';
import type { HostTensor, Runner, RunnerOptions } from '../runtime/runner';
import { Rng } from '../util/rng';
import { exactState } from './checkpoint';
import { Adam } from './optim';
import { addLossAndGradients, gradName } from './step';

/** The step graph: inputs input_ids / targets int64 [batch, seq], the adapter as params, the base as initializers. */
export function buildLoraTrainGraph(model: LlamaConfig, base: ParamSet, lora: LoraConfig, shape: { batch: number; seq: number }): { graph: Graph; loss: Tensor } {
  const g = new Graph('llama_lora_train');
  const w = llamaParamInitializers(g, model, base);
  const adapters = loraGraphTensors(g, model, lora, 'params', undefined, shape);
  const ids = g.input('input_ids', [shape.batch, shape.seq], 'int64');
  const targets = g.input('targets', [shape.batch, shape.seq], 'int64');
  const loss = ops.crossEntropy(llamaForward(model, w, ids, { adapters }), targets);
  return { graph: g, loss };
}

export interface LoraTrainOptions {
  batch: number;
  seq: number;
  lr?: number;
  clip?: number;
  weightDecay?: number;
  runner?: RunnerOptions;
  /** Base weights through ONNX external-data files: 'auto' (default) above 1 GiB of float32. */
  externalData?: boolean | 'auto';
  /** Starting adapter (default: initLora, seeded by lora.seed). */
  adapter?: ParamSet;
}

export class LoraTrainer {
  private dropoutRng: Rng;
  /** Updates applied so far. */
  steps = 0;

  private constructor(
    readonly model: LlamaConfig,
    readonly lora: LoraConfig,
    readonly adapter: ParamSet,
    private readonly runner: Runner,
    private readonly paramNames: string[],
    private readonly adam: Adam,
    private readonly opts: Required<Pick<LoraTrainOptions, 'batch' | 'seq' | 'clip'>>,
  ) {
    this.dropoutRng = new Rng((lora.seed ^ 0x5bd1e995) >>> 0);
  }

  static async create(model: LlamaConfig, base: ParamSet, lora: LoraConfig, opts: LoraTrainOptions): Promise<LoraTrainer> {
    const adapter = opts.adapter ? cloneParams(opts.adapter) : initLora(model, lora);
    const { graph, loss } = buildLoraTrainGraph(model, base, lora, opts);
    addLossAndGradients(graph, loss); // gradients of graph.params: the adapter only
    const runner = await runnerForGraph(graph, { ...opts.runner, externalData: opts.externalData });
    const adam = new Adam(adapter, { lr: opts.lr ?? 5e-5, weightDecay: opts.weightDecay ?? 0 });
    return new LoraTrainer(model, lora, adapter, runner, graph.params.map((p) => p.name), adam, { batch: opts.batch, seq: opts.seq, clip: opts.clip ?? 1 });
  }

  /** Names of the graph's trainable parameters: the adapter's, never a base weight. */
  get trainableNames(): string[] {
    return [...this.paramNames];
  }

  /** One step on ids/targets [batch, seq] (targets -100 = ignored); returns the loss before the update. */
  async step(ids: BigInt64Array, targets: BigInt64Array, lr?: number): Promise<{ loss: number; gradNorm: number }> {
    const { batch, seq } = this.opts;
    if (ids.length !== batch * seq || targets.length !== batch * seq) throw new Error(`LoRA step: ids and targets must hold batch x seq = ${batch * seq} values`);
    const feeds: Record<string, HostTensor> = {
      input_ids: { data: ids, dims: [batch, seq] },
      targets: { data: targets, dims: [batch, seq] },
      ...loraDropoutFeeds(this.model, this.lora, batch, seq, this.dropoutRng),
    };
    const out = await this.runner.run({ ...paramFeeds(this.adapter), ...feeds });
    const grads = new Map(this.paramNames.map((n) => [n, out[gradName(n)].data as Float32Array]));
    const loss = Number(out.loss.data[0]);
    const gradNorm = this.adam.clipAndStep(this.adapter, grads, lr ?? this.adam.cfg.lr, this.opts.clip);
    this.steps++;
    return { loss, gradNorm };
  }

  /** The loss on ids/targets with dropout off, without updating anything. */
  async evaluate(ids: BigInt64Array, targets: BigInt64Array): Promise<number> {
    const { batch, seq } = this.opts;
    const ones = loraDropoutFeeds(this.model, this.lora, batch, seq, new Rng(0), true);
    const out = await this.runner.run({ ...paramFeeds(this.adapter), input_ids: { data: ids, dims: [batch, seq] }, targets: { data: targets, dims: [batch, seq] }, ...ones }, ['loss']);
    return Number(out.loss.data[0]);
  }

  /** Writes the adapter, Adam's moments and the step/RNG state to one safetensors file (atomically). */
  /** `runState`: the caller's state of the run, kept as metadata `state` (train/checkpoint.ts exactState) beside the trainer's. */
  saveCheckpoint(file: string, runState?: object): void {
    const tensors = new Map<string, TensorToWrite>();
    for (const [name, p] of this.adapter) {
      tensors.set(name, { dtype: 'F32', shape: p.shape, data: p.data });
      tensors.set(`adam.m.${name}`, { dtype: 'F32', shape: p.shape, data: this.adam.state.m.get(name)! });
      tensors.set(`adam.v.${name}`, { dtype: 'F32', shape: p.shape, data: this.adam.state.v.get(name)! });
    }
    const metadata: Record<string, string> = { step: String(this.steps), adamT: String(this.adam.state.t), dropoutRng: JSON.stringify(this.dropoutRng.state) };
    if (runState !== undefined) metadata.state = exactState(runState);
    writeSafeTensorsFile(file, tensors, metadata);
  }

  /** Restores a checkpoint written by saveCheckpoint for the same model and LoRA config; returns its metadata. */
  loadCheckpoint(file: string): Record<string, string> {
    const st = readSafeTensorsFile(file);
    const { step, adamT, dropoutRng } = st.metadata;
    if (step === undefined || adamT === undefined || dropoutRng === undefined) throw new Error(`${file}: not a LoRA trainer checkpoint (metadata step/adamT/dropoutRng missing)`);
    for (const [name, p] of this.adapter) {
      for (const [key, dst] of [[name, p.data], [`adam.m.${name}`, this.adam.state.m.get(name)!], [`adam.v.${name}`, this.adam.state.v.get(name)!]] as const) {
        const info = st.tensors.get(key);
        if (!info || info.shape.join(',') !== p.shape.join(',')) throw new Error(`${file}: tensor '${key}' is missing or has another shape (expected [${p.shape}])`);
        dst.set(tensorAsFloat32(st, key));
      }
    }
    this.steps = Number(step);
    this.adam.state.t = Number(adamT);
    this.dropoutRng = Rng.restore(JSON.parse(dropoutRng) as { s: number; spare: number | null });
    return st.metadata;
  }

  release(): Promise<void> {
    return this.runner.release();
  }
}
