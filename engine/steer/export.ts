/**
 * Exporting a steered model (`memgen export`): the steering vectors of one intervention (intervention.ts,
 * built as `memgen steer-eval` builds them) become part of the weights, so the exported folder behaves
 * steered with no steering input: in memgen, in Hugging Face transformers, and as ONNX. Sources: a GPT-2
 * run, and a LoRA run (a LLaMA base + a PEFT adapter, runs/lora-run.ts).
 *
 * Baking rule. s_l is the steering vector of layer l ([d], zeros where none of l's neurons is kept) at the
 * analysis' site (hooks.ts); each is added to the bias that produces that site's activation:
 *
 *   GPT-2
 *   blocks.l.ln2          transformer.h.l.ln_2.bias          += s_l
 *                         ln_2(a) = LN(a) * w + b, so the MLP input becomes ln_2(a) + s_l while the
 *                         residual stream keeps a, as with runtime steering at ln2.
 *   blocks.l.resid_pre    l = 0:  transformer.wpe.weight[p]  += s_0   for every position p (every row):
 *                                 resid_pre of block 0 is wte[id] + wpe[p].
 *                         l > 0:  transformer.h.{l-1}.mlp.c_proj.bias += s_l:
 *                                 resid_pre of block l is resid_post of block l-1 = a + gelu(..) W + b.
 *   blocks.l.resid_post   transformer.h.l.mlp.c_proj.bias    += s_l
 *
 *   LLaMA (a LoRA run; LLaMA has no biases, so the export switches transformers' mlp_bias on)
 *   merge                 W' = W + (alpha / r) B A  (use_rslora: alpha / sqrt(r)) for every adapted
 *                         projection (lora.ts mergeLora, float32): the adapter becomes part of the weights
 *   mlp_bias: true        transformers' LlamaMLP then has a bias on gate_proj, up_proj AND down_proj of
 *                         every layer: all are written, zeros except the down_proj biases below
 *   layers.l.resid_post   model.layers.l.mlp.down_proj.bias      = s_l
 *                         resid_post of layer l = a + down_proj(..) = a + (..) W^T + b.
 *   layers.l.resid_pre    l > 0:  model.layers.{l-1}.mlp.down_proj.bias = s_l (resid_pre of layer l is
 *                                 resid_post of layer l-1)
 *                         l = 0:  model.embed_tokens.weight[t] += s_0 for every token t (every row):
 *                                 resid_pre of layer 0 is embed_tokens[id]. With tie_word_embeddings the
 *                                 LM head is that same matrix, so the export unties it: lm_head.weight =
 *                                 the unshifted embed_tokens, tie_word_embeddings false (the logits stay
 *                                 rms(h) embed^T, exactly the source's head).
 *   (mlp_in is not a site of the analysis files: sites.ts fileSite.)
 *
 * Each shift enters the computation where the runtime hook adds it, so with several steered layers the
 * baked shifts flow through the later blocks as the runtime's do. Sums are in float32, the tensors' own
 * precision; LLaMA exports are written in F32 whatever the base's dtype (a BF16 base's weights are exact
 * in F32; the merged and baked ones are not representable in BF16), recorded in the manifest.
 *
 * Where the two differ: runtime steering (gpt2-infer.ts, llama-infer.ts) adds s at the last prompt
 * position and at each generated position; a bias adds it at every position, the earlier prompt positions
 * too, whose keys and values the later positions attend to. On a one-token prompt the two are the same
 * computation (its only position is the last). On the task's prompts the difference is measured:
 *
 *   comparison   steer-eval's starting inputs (drawStarts: Rng(startSeed(seed)), the first n inputs whose
 *                unsteered output is the direction's starting behaviour, mem for mem->gen, gen for
 *                gen->mem), generated greedily (a) by the source model with runtime steering (a LoRA run:
 *                base + adapter unmerged) and (b) by the exported model unsteered. Per side: % gen / % mem
 *                / % other = count / n, success = % of the target behaviour, and steer-eval's mean
 *                p(first gen / mem answer token); and the number of inputs whose two outputs are the same text.
 *   warning      when baking loses the steering: baked success < runtime success - BAKING_LOSS_POINTS, or
 *                baked % other > runtime % other + BAKING_LOSS_POINTS (outputs that are neither behaviour);
 *                on the committed LoRA runs at their runtime settings baking lost up to 20 points, and a
 *                milder alpha / topN kept the task (docs/results.md, "Exported steered models")
 *
 * The export folder is a memgen run folder (docs/runs.md, "Exported steered models"):
 *
 *   DIR/config.json        GPT-2: the source run's config.json, unchanged (Hugging Face GPT2Config + "memgen")
 *                          LLaMA: the base's config.json with mlp_bias true, torch_dtype float32 (and
 *                          tie_word_embeddings false when untied, see above)
 *   DIR/tokenizer.json     the source run's (LLaMA: the base's, with tokenizer_config.json,
 *                          special_tokens_map.json, generation_config.json, chat_template.jinja if present)
 *   DIR/model.safetensors  the baked weights (Hugging Face names, F32)
 *   DIR/model.onnx         input_ids int64 [batch, seq] -> logits float32 [batch, seq, vocab], positions
 *                          0 .. seq-1, the baked weights as initializers (in weights.bin beside it, ONNX
 *                          external data, when they exceed EXTERNAL_DATA_ABOVE)
 *   DIR/manifest.json      a 'memgen-run/1' manifest (so every reader of runs opens it; best: null, since the
 *                          trainer's evaluation was of the source model) with "export": ExportInfo; a LLaMA
 *                          export's also has family 'llama' and the LoRA run's task options
 *                          (runs/llama-export-run.ts opens it)
 * written into DIR.partial, then renamed to DIR; an existing DIR is moved aside to DIR.replaced-<time>
 * only when asked (force), as prepareNewRun (runs/run.ts) does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { BehaviourCounts } from '../analysis/files';
import { Graph } from '../graph';
import { arange } from '../graph/ops/extra';
import { writeFileAtomic } from '../io/atomic';
import { HF_FILES, readHFConfig } from '../io/hf-folder';
import { EXTERNAL_DATA_ABOVE, EXTERNAL_DATA_FILE, writeOnnxExternal } from '../io/onnx-external';
import { type ParamSet, saveParams } from '../io/params';
import { type GPT2Config, gpt2Head, gpt2ParamInitializers, gpt2ParamShapes, gpt2Trunk } from '../models/gpt2';
import { GPT2Inference } from '../models/gpt2-infer';
import { type GPT2Site, llamaSiteName, siteName } from '../models/hooks';
import { type LlamaConfig, llamaHead, llamaParamInitializers, llamaParamShapes, llamaTrunk, projectionPath } from '../models/llama';
import { type LoraConfig, loraScaling, loraTargets, mergeLora } from '../models/lora';
import { llamaExportTaskFields } from '../runs/llama-export-run';
import { type LoraSteerRun, llamaSteerModel, loraRunModel } from '../runs/lora-run';
import { type LoadedRun, type Manifest, RUN_FILES, RunError, gitCommit, readJSON, sha256File, writeJSON } from '../runs/run';
import type { RunnerOptions } from '../runtime/runner';
import type { Behaviour, Task } from '../tasks/task';
import { MEMGEN_VERSION } from '../train/trainer';
import type { ClassPercent, FirstTokenP, NeuronSourceInfo, StartsInfo } from './files';
import { type Direction, type InterventionDescription, directionEnds } from './intervention';
import { type LoopControl, type SteerModel, type SteerSetup, drawStarts, meanFirst, methodIntervention, steeredOutputs, tally } from './steer-eval';

export const EXPORT_FORMAT = 'memgen-export/1';
export const ONNX_FILE = 'model.onnx';

// ---------------------------------------------------------------------------------------------
// Baking.

/** Where a layer's shift goes: the tensor, and whether every row of it gets the shift (an embedding). */
export interface BakeTarget {
  tensor: string;
  everyRow: boolean;
}

/** Where the shift of GPT-2 site `site` at `layer` goes (the rule in the header). */
export function bakeTarget(layer: number, site: GPT2Site): BakeTarget {
  siteName(layer, site); // validates both
  if (site === 'ln2') return { tensor: `transformer.h.${layer}.ln_2.bias`, everyRow: false };
  if (site === 'resid_post') return { tensor: `transformer.h.${layer}.mlp.c_proj.bias`, everyRow: false };
  if (layer === 0) return { tensor: 'transformer.wpe.weight', everyRow: true };
  return { tensor: `transformer.h.${layer - 1}.mlp.c_proj.bias`, everyRow: false };
}

/** The LLaMA sites a LoRA run's analysis is at (sites.ts fileSite). */
export type LlamaBakeSite = 'resid_pre' | 'resid_post';

/** Where the shift of LLaMA site `site` at `layer` goes (the rule in the header). */
export function llamaBakeTarget(layer: number, site: GPT2Site): BakeTarget {
  if (site !== 'resid_pre' && site !== 'resid_post') throw new Error(`LLaMA site ${site}: a LoRA run is steered at resid_pre or resid_post`);
  llamaSiteName(layer, site); // validates the layer
  if (site === 'resid_post') return { tensor: `${projectionPath(layer, 'down_proj')}.bias`, everyRow: false };
  if (layer === 0) return { tensor: 'model.embed_tokens.weight', everyRow: true };
  return { tensor: `${projectionPath(layer - 1, 'down_proj')}.bias`, everyRow: false };
}

/** One steered layer, as baked. */
export interface BakedTensor {
  /** The steered site, e.g. blocks.3.ln2 or layers.3.resid_post. */
  site: string;
  /** The tensor that carries its shift, and whether every row of it got the shift (wpe / embed_tokens). */
  tensor: string;
  everyRow: boolean;
  /** Nonzero entries of the layer's vector and their largest |shift|. */
  neurons: number;
  maxAbsShift: number;
}

/**
 * Adds each layer's vector to its target tensor in `params` (copied before the first change, so the arrays
 * `params` shared with its source are left unchanged); layers whose vector is all zeros are not touched.
 */
function addShifts(
  params: ParamSet,
  shapes: Map<string, number[]>,
  vectors: readonly Float32Array[],
  d: number,
  target: (layer: number) => BakeTarget,
  name: (layer: number) => string,
): BakedTensor[] {
  const baked: BakedTensor[] = [];
  vectors.forEach((s, l) => {
    if (!(s instanceof Float32Array) || s.length !== d) throw new Error(`steering vector of layer ${l} must be a Float32Array of length ${d}`);
    let neurons = 0;
    let maxAbsShift = 0;
    for (const x of s) {
      if (!Number.isFinite(x)) throw new Error(`steering vector of layer ${l} holds ${x}`);
      if (x !== 0) neurons++;
      maxAbsShift = Math.max(maxAbsShift, Math.abs(x));
    }
    if (neurons === 0) return;
    const { tensor, everyRow } = target(l);
    const p = params.get(tensor);
    const shape = shapes.get(tensor)!;
    if (!p || p.shape.length !== shape.length || p.shape.some((n, i) => n !== shape[i])) throw new Error(`parameters: '${tensor}' is missing or not [${shape}]`);
    const data = p.data.slice();
    const rows = everyRow ? shape[0] : 1;
    for (let r = 0; r < rows; r++) for (let i = 0; i < d; i++) data[r * d + i] += s[i]; // Float32Array: float32 sums
    params.set(tensor, { shape: [...p.shape], data });
    baked.push({ site: name(l), tensor, everyRow, neurons, maxAbsShift });
  });
  return baked;
}

const checkVectorCount = (vectors: readonly Float32Array[], nLayer: number): void => {
  if (vectors.length !== nLayer) throw new Error(`${vectors.length} steering vectors; the model has ${nLayer} layers (one per layer, zeros where unused)`);
};

/**
 * The parameters with the steering vectors (one [d] vector per layer, at `site`) added by the baking
 * rule; `params` is left unchanged. Layers whose vector is all zeros are not touched.
 */
export function bakeSteering(cfg: GPT2Config, params: ParamSet, site: GPT2Site, vectors: readonly Float32Array[]): { params: ParamSet; baked: BakedTensor[] } {
  checkVectorCount(vectors, cfg.nLayer);
  const out: ParamSet = new Map(params);
  const baked = addShifts(out, gpt2ParamShapes(cfg), vectors, cfg.nEmbd, (l) => bakeTarget(l, site), (l) => siteName(l, site));
  return { params: out, baked };
}

/** The adapter merge of a LLaMA export, as recorded in its manifest. */
export interface MergeInfo {
  rule: 'W + scaling * B A (float32)';
  r: number;
  alpha: number;
  useRslora: boolean;
  /** alpha / r (use_rslora: alpha / sqrt(r)). */
  scaling: number;
  /** The merged weights, e.g. model.layers.0.self_attn.q_proj.weight. */
  tensors: string[];
}

export interface LlamaBake {
  /** The export's config: the base's with mlpBias true (and tieWordEmbeddings false when untied). */
  cfg: LlamaConfig;
  params: ParamSet;
  baked: BakedTensor[];
  merge: MergeInfo | null;
  /** lm_head.weight written out because embed_tokens carries the layer-0 resid_pre shift (see the header). */
  untiedHead: boolean;
}

/**
 * A LLaMA (base + optional LoRA adapter) with the adapter merged and the steering vectors baked (the
 * rule in the header); `params` and the adapter are left unchanged.
 */
export function bakeLlamaSteering(
  cfg: LlamaConfig,
  params: ParamSet,
  adapter: { config: LoraConfig; params: ParamSet } | null,
  site: GPT2Site,
  vectors: readonly Float32Array[],
): LlamaBake {
  checkVectorCount(vectors, cfg.numLayers);
  llamaBakeTarget(0, site); // refuses a site other than resid_pre / resid_post before any work
  const out: ParamSet = adapter ? mergeLora(cfg, adapter.config, params, adapter.params) : new Map(params);
  const merge: MergeInfo | null = adapter
    ? {
      rule: 'W + scaling * B A (float32)', r: adapter.config.r, alpha: adapter.config.alpha, useRslora: adapter.config.useRslora,
      scaling: loraScaling(adapter.config), tensors: loraTargets(cfg, adapter.config).map((t) => `${t.path}.weight`),
    }
    : null;
  const untiedHead = site === 'resid_pre' && cfg.tieWordEmbeddings && vectors[0].some((x) => x !== 0);
  const baked: LlamaConfig = { ...cfg, mlpBias: true, tieWordEmbeddings: cfg.tieWordEmbeddings && !untiedHead };
  const shapes = llamaParamShapes(baked);
  for (const [name, shape] of shapes) if (name.endsWith('.bias') && !out.has(name)) out.set(name, { shape, data: new Float32Array(shape[0]) });
  if (untiedHead) {
    const embed = out.get('model.embed_tokens.weight')!;
    out.set('lm_head.weight', { shape: [...embed.shape], data: embed.data.slice() }); // the unshifted embedding: the source's head
  }
  const list = addShifts(out, shapes, vectors, cfg.hiddenSize, (l) => llamaBakeTarget(l, site), (l) => llamaSiteName(l, site as LlamaBakeSite));
  return { cfg: baked, params: out, baked: list, merge, untiedHead };
}

/**
 * The exported GPT-2's ONNX graph: input_ids int64 [batch, seq] -> logits float32 [batch, seq, vocab],
 * positions 0 .. seq-1, no cache and no steering input (the steering is in the weights), the weights as
 * initializers under their Hugging Face names.
 */
export function buildExportGraph(cfg: GPT2Config, params: ParamSet): Graph {
  const g = new Graph('gpt2_steered');
  const w = gpt2ParamInitializers(g, cfg, params);
  const ids = g.input('input_ids', ['batch', 'seq'], 'int64');
  const { h } = gpt2Trunk(cfg, w, ids, arange(ids, 1)); // (B, T, d)
  g.output(gpt2Head(cfg, w, h), 'logits'); // (B, T, V)
  return g;
}

/** The exported LLaMA's ONNX graph, with the same signature as buildExportGraph's (llama.ts's layers). */
export function buildLlamaExportGraph(cfg: LlamaConfig, params: ParamSet): Graph {
  const g = new Graph('llama_steered');
  const w = llamaParamInitializers(g, cfg, params);
  const ids = g.input('input_ids', ['batch', 'seq'], 'int64');
  const { h } = llamaTrunk(cfg, w, ids, arange(ids, 1)); // (B, T, d)
  g.output(llamaHead(cfg, w, h), 'logits'); // (B, T, V)
  return g;
}

/** Writes DIR/model.onnx of an export graph (and weights.bin past EXTERNAL_DATA_ABOVE bytes of weights); returns the files written. */
export function writeExportOnnx(dir: string, g: Graph): string[] {
  let bytes = 0;
  for (const { data } of g.initializers.values()) bytes += data.byteLength;
  if (bytes > EXTERNAL_DATA_ABOVE) {
    writeOnnxExternal(g, dir);
    return [ONNX_FILE, EXTERNAL_DATA_FILE];
  }
  writeFileAtomic(path.join(dir, ONNX_FILE), g.toOnnx());
  return [ONNX_FILE];
}

// ---------------------------------------------------------------------------------------------
// Baked vs runtime steering.

/** One side of the comparison: classes of the n outputs and the mean first-token probabilities. */
export interface ComparisonSide {
  counts: BehaviourCounts;
  pct: ClassPercent;
  /** % of the direction's target behaviour. */
  success: number;
  pFirst: FirstTokenP;
}

export interface ExportComparison {
  direction: Direction;
  /** Starting inputs compared (the direction's found starts). */
  n: number;
  /** The steering seed; the inputs are drawn with startSeed(seed), as steer-eval's. */
  seed: number;
  starts: StartsInfo;
  /** The source run with runtime steering (last prompt position + generated ones). */
  runtime: ComparisonSide;
  /** The exported model, unsteered (the shift at every position). */
  baked: ComparisonSide;
  /** Inputs whose runtime-steered and baked outputs are the same text. */
  sameOutput: number;
  /** Up to five inputs whose two outputs differ. */
  differing: { prompt: string; unsteered: string; runtime: string; runtimeBehaviour: Behaviour; baked: string; bakedBehaviour: Behaviour }[];
  seconds: number;
}

/**
 * The comparison of the header: `source` steered with `vectors` (at its site) against `baked` unsteered,
 * on the starting inputs of `direction`.
 */
export async function compareBakedToRuntime(
  task: Task,
  source: SteerModel,
  baked: SteerModel,
  vectors: Float32Array[],
  direction: Direction,
  opts: { n: number; seed: number; maxTries?: number; onFound?: (tried: number, found: number) => void } & LoopControl,
): Promise<ExportComparison> {
  const started = Date.now();
  const ctl: LoopControl = { batch: opts.batch, shouldStop: opts.shouldStop, beams: opts.beams };
  const starts = await drawStarts(task, source, { n: opts.n, seed: opts.seed, maxTries: opts.maxTries, onFound: opts.onFound, ...ctl });
  const inputs = starts.inputs[direction];
  const zeros = vectors.map((v) => new Float32Array(v.length));
  const rt = await steeredOutputs(task, source, inputs, vectors, ctl);
  const bk = await steeredOutputs(task, baked, inputs, zeros, ctl);
  const side = (r: typeof rt): ComparisonSide => {
    const { counts, pct, success } = tally(direction, r.behaviours);
    return { counts, pct, success, pFirst: meanFirst(r.probs) };
  };
  const differing: ExportComparison['differing'] = [];
  let sameOutput = 0;
  inputs.forEach((x, i) => {
    if (rt.outputs[i] === bk.outputs[i]) sameOutput++;
    else if (differing.length < 5) {
      differing.push({ prompt: x.example.prompt, unsteered: x.output, runtime: rt.outputs[i], runtimeBehaviour: rt.behaviours[i], baked: bk.outputs[i], bakedBehaviour: bk.behaviours[i] });
    }
  });
  return {
    direction, n: inputs.length, seed: opts.seed, starts: starts.info, runtime: side(rt), baked: side(bk), sameOutput, differing,
    seconds: (Date.now() - started) / 1000,
  };
}

// ---------------------------------------------------------------------------------------------
// The export folder.

/** manifest.json's "export" section. */
export interface ExportInfo {
  format: typeof EXPORT_FORMAT;
  /** 'llama': an export of a LoRA run (absent: GPT-2, whose manifests are unchanged). */
  family?: 'llama';
  /**
   * The run whose model was steered, its model file's hash (a LoRA run: its adapter's), and the command
   * that trained it; a LoRA run's base folder.
   */
  source: { run: string; modelHash: string; command: string; best: Manifest['best']; base?: string };
  /** Where the neurons came from (the source's own analysis, or --neurons-from's). */
  neurons: NeuronSourceInfo;
  /** The baked intervention (intervention.ts's description) and its topN (null: picked neurons). */
  intervention: InterventionDescription & { topN: number | null };
  baked: BakedTensor[];
  /** LLaMA: the adapter merge, and whether lm_head was untied from embed_tokens (layer-0 resid_pre). */
  merge?: MergeInfo | null;
  untiedHead?: boolean;
  /** LLaMA: the dtype written (F32) and the base's dtypes. */
  weights?: { dtype: 'F32'; baseDtypes: string[] };
  onnx: { file: string; externalData: string | null; inputs: string[]; outputs: string[] };
  /** Baked vs runtime steering (null: not measured, --no-compare). */
  comparison: ExportComparison | null;
  warnings: string[];
}

/** A run that can be exported: a GPT-2 run, or a LoRA run (runs/lora-run.ts). */
export type ExportSource = SteerSetup<LoadedRun> | SteerSetup<LoraSteerRun>;

export interface ExportOptions {
  setup: ExportSource;
  direction: Direction;
  /** Fraction of layers x d re-ranked from the analysis (ignored with picks). */
  topN: number;
  picks?: { layer: number; index: number }[];
  alpha: number;
  out: string;
  force?: boolean;
  /** The command that remakes the export, recorded in the manifest. */
  command: string;
  /** Measure baked vs runtime steering on n starting inputs (null: skip). */
  compare: ({ n: number; seed: number; maxTries?: number; onFound?: (tried: number, found: number) => void } & LoopControl) | null;
  runner?: RunnerOptions;
  batchSize?: number;
}

export interface ExportResult {
  dir: string;
  manifest: Manifest & { export: ExportInfo };
  /** Where an existing DIR was moved (force), or null. */
  replaced: string | null;
}

const isNonEmptyDir = (dir: string): boolean => fs.existsSync(dir) && (!fs.statSync(dir).isDirectory() || fs.readdirSync(dir).length > 0);

/** Refuses an existing DIR without force, and DIR = the source run; call before any work. */
export function checkExportTarget(out: string, runDir: string, force: boolean): void {
  if (path.resolve(out) === path.resolve(runDir)) throw new RunError(`--out ${out} is the source run itself; export into a new folder`);
  if (isNonEmptyDir(out) && !force) {
    throw new RunError(`${out} already exists. Replace it with --force (the old folder is kept as ${path.basename(out)}.replaced-<time>)`);
  }
}

type Releasable = SteerModel & { release(): Promise<void> };

/** What differs between the families: the baked weights, the two models compared, the files, the manifest's fields. */
interface ExportPlan {
  baked: BakedTensor[];
  /** The source steered at runtime, and the export (no steering input). */
  openSource(): Promise<Releasable>;
  openBaked(): Promise<Releasable>;
  /** Writes the folder's model, config and tokenizer files into dir; returns their names. */
  writeFiles(dir: string): string[];
  graph(): Graph;
  /** The manifest's fields that come from the source run (task, training, data). */
  manifest: Omit<Manifest, 'command' | 'versions' | 'gitCommit' | 'createdAt' | 'updatedAt' | 'best' | 'hashes' | 'status' | 'format'> & Record<string, unknown>;
  info: Pick<ExportInfo, 'source'> & Partial<Pick<ExportInfo, 'family' | 'merge' | 'untiedHead' | 'weights'>>;
}

const copyFiles = (from: string, to: string, files: readonly string[]): void => files.forEach((f) => fs.copyFileSync(path.join(from, f), path.join(to, f)));

function gpt2Plan(setup: SteerSetup<LoadedRun>, vectors: Float32Array[], opts: ExportOptions): ExportPlan {
  const run = setup.run;
  const site = setup.sourceInfo.site;
  const { params, baked } = bakeSteering(run.cfg, run.params, site, vectors);
  const model = (p: ParamSet) => GPT2Inference.create(run.cfg, p, { site, runner: opts.runner, batchSize: opts.batchSize });
  const src = run.manifest;
  return {
    baked,
    openSource: () => model(run.params),
    openBaked: () => model(params),
    writeFiles: (dir) => {
      copyFiles(run.dir, dir, [RUN_FILES.config, RUN_FILES.tokenizer]);
      saveParams(path.join(dir, RUN_FILES.model), params, { format: 'pt', memgen: `steered export of ${run.dir} (${opts.direction})` });
      return [RUN_FILES.config, RUN_FILES.model, RUN_FILES.tokenizer];
    },
    graph: () => buildExportGraph(run.cfg, params),
    manifest: { task: src.task, taskDescription: src.taskDescription, scale: src.scale, seed: src.seed, preset: src.preset, train: src.train, data: src.data, steps: src.steps, trainSeconds: src.trainSeconds },
    info: { source: { run: run.dir, modelHash: setup.modelHash, command: src.command, best: src.best } },
  };
}

/** The base folder's files copied beside the weights when present (tokenizer.json is required). */
export const LLAMA_COPIED_FILES = [HF_FILES.tokenizer, HF_FILES.tokenizerConfig, 'special_tokens_map.json', 'generation_config.json', HF_FILES.chatTemplate] as const;

function llamaPlan(setup: SteerSetup<LoraSteerRun>, vectors: Float32Array[], opts: ExportOptions): ExportPlan {
  const lora = setup.run.lora;
  const base = lora.base;
  const site = setup.sourceInfo.site;
  if (site !== 'resid_pre' && site !== 'resid_post') throw new RunError(`the neurons of ${setup.sourceInfo.run} are at ${site}: a LoRA run is exported from an analysis at resid_pre or resid_post`);
  const bake = bakeLlamaSteering(base.config, base.params, lora.adapter, site, vectors);
  const m = lora.manifest;
  return {
    baked: bake.baked,
    openSource: () => loraRunModel(lora, site, { runner: opts.runner, batchSize: opts.batchSize }),
    openBaked: () => llamaSteerModel(bake.cfg, bake.params, site, { runner: opts.runner, batchSize: opts.batchSize }),
    writeFiles: (dir) => {
      const config = {
        ...(readHFConfig(base.dir) as Record<string, unknown>), mlp_bias: true, torch_dtype: 'float32',
        ...(bake.untiedHead ? { tie_word_embeddings: false } : {}),
      };
      writeJSON(path.join(dir, RUN_FILES.config), config);
      const copied = LLAMA_COPIED_FILES.filter((f) => fs.existsSync(path.join(base.dir, f)));
      if (!copied.includes(HF_FILES.tokenizer)) throw new RunError(`${base.dir} has no ${HF_FILES.tokenizer}: the export needs the base's tokenizer`);
      copyFiles(base.dir, dir, copied);
      saveParams(path.join(dir, RUN_FILES.model), bake.params, { format: 'pt', memgen: `steered export of ${lora.dir} on ${base.dir} (${opts.direction})` });
      return [RUN_FILES.config, RUN_FILES.model, ...copied];
    },
    graph: () => buildLlamaExportGraph(bake.cfg, bake.params),
    manifest: {
      task: m.task, taskDescription: m.taskDescription, scale: m.scale, seed: m.seed, preset: 'lora', train: m.train, data: m.data, steps: m.steps, trainSeconds: m.trainSeconds,
      family: 'llama', ...llamaExportTaskFields(m),
    },
    info: {
      family: 'llama', source: { run: lora.dir, modelHash: setup.modelHash, command: m.command, best: m.best, base: base.dir },
      merge: bake.merge, untiedHead: bake.untiedHead, weights: { dtype: 'F32', baseDtypes: [...base.dtypes].sort() },
    },
  };
}

/** Points of success lost, or of "other" gained, by baking beyond which the export warns (see the header). */
export const BAKING_LOSS_POINTS = 10;

/** The warning an export gets when baking loses the steering it bakes (see the header), or null. */
export function bakingLossWarning(c: ExportComparison): string | null {
  const lost = c.runtime.success - c.baked.success;
  const broken = c.baked.pct.other - c.runtime.pct.other;
  if (lost <= BAKING_LOSS_POINTS && broken <= BAKING_LOSS_POINTS) return null;
  const { to } = directionEnds(c.direction);
  return `baking loses the steering here (% ${to} ${fmt(c.runtime.success)} at runtime, ${fmt(c.baked.success)} baked; % other ${fmt(c.runtime.pct.other)} -> ${fmt(c.baked.pct.other)}): `
    + 'the baked shift reaches every prompt token, runtime steering only the last and the generated ones; a milder --alpha or --topn may keep it (measure both with memgen eval)';
}

/** Runs `use` with the two models open, releasing both whatever happens. */
async function withModels<T>(plan: ExportPlan, use: (source: SteerModel, baked: SteerModel) => Promise<T>): Promise<T> {
  const source = await plan.openSource();
  try {
    const baked = await plan.openBaked();
    try {
      return await use(source, baked);
    } finally {
      await baked.release();
    }
  } finally {
    await source.release();
  }
}

/** Bakes, measures (unless compare is null), and writes the export folder (see the header). */
export async function exportSteered(opts: ExportOptions): Promise<ExportResult> {
  const { setup, direction, out } = opts;
  const run = setup.run;
  checkExportTarget(out, run.dir, Boolean(opts.force));
  const intervention = methodIntervention(setup, opts.topN, opts.picks, opts.alpha, direction);
  const llama = 'lora' in run;
  if (!llama && (setup.sourceInfo.family ?? 'gpt2') !== 'gpt2') throw new RunError(`the neurons of ${setup.sourceInfo.run} are LLaMA sites; ${run.dir} is a GPT-2 run`);
  const plan = llama ? llamaPlan(setup as SteerSetup<LoraSteerRun>, intervention.vectors, opts) : gpt2Plan(setup as SteerSetup<LoadedRun>, intervention.vectors, opts);

  const compare = opts.compare;
  const comparison = compare ? await withModels(plan, (source, baked) => compareBakedToRuntime(run.task, source, baked, intervention.vectors, direction, compare)) : null;
  const lossWarning = comparison && bakingLossWarning(comparison);

  const partial = `${out}.partial`;
  fs.rmSync(partial, { recursive: true, force: true }); // a dead export's leftovers (the CLI holds DIR's lock)
  fs.mkdirSync(partial, { recursive: true });
  const files = plan.writeFiles(partial);
  const onnxFiles = writeExportOnnx(partial, plan.graph());
  const hashed = [...files, ...onnxFiles];
  const hashes = Object.fromEntries(hashed.map((f) => [f, `sha256:${sha256File(path.join(partial, f))}`]));

  const now = new Date().toISOString();
  const info: ExportInfo = {
    format: EXPORT_FORMAT,
    ...plan.info,
    neurons: setup.sourceInfo,
    intervention: { ...intervention.description, topN: opts.picks ? null : opts.topN },
    baked: plan.baked,
    onnx: { file: ONNX_FILE, externalData: onnxFiles.includes(EXTERNAL_DATA_FILE) ? EXTERNAL_DATA_FILE : null, inputs: ['input_ids'], outputs: ['logits'] },
    comparison,
    warnings: [...setup.warnings, ...(lossWarning ? [lossWarning] : [])],
  };
  const manifest: Manifest & { export: ExportInfo } = {
    format: 'memgen-run/1', status: 'done', ...plan.manifest,
    command: opts.command,
    versions: { memgen: MEMGEN_VERSION, node: process.version, onnxruntime: String(ort.env.versions.node ?? ort.env.versions.common) },
    gitCommit: gitCommit(), createdAt: now, updatedAt: now, best: null, hashes,
    export: info,
  };
  writeJSON(path.join(partial, RUN_FILES.manifest), manifest);

  let replaced: string | null = null;
  if (fs.existsSync(out)) {
    if (isNonEmptyDir(out)) {
      replaced = `${out}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      fs.renameSync(out, replaced);
    } else fs.rmdirSync(out);
  }
  fs.renameSync(partial, out);
  return { dir: out, manifest, replaced };
}

/** The "export" section of a run's manifest.json, or null when the run is not an export. */
export function readExportInfo(runDir: string): ExportInfo | null {
  const m = readJSON<{ export?: unknown }>(path.join(runDir, RUN_FILES.manifest), 'run manifest');
  const e = m.export as Partial<ExportInfo> | undefined;
  if (typeof e !== 'object' || e === null || e.format !== EXPORT_FORMAT) return null;
  return e as ExportInfo;
}

// ---------------------------------------------------------------------------------------------
// Printing.

const fmt = (x: number) => x.toFixed(1);

/** The intervention, the baked tensors and (when measured) baked vs runtime side by side. */
export function formatExport(info: ExportInfo): string {
  const iv = info.intervention;
  const lines: string[] = [];
  const what = iv.topN === null ? `${iv.count} picked neurons` : `top ${fmt(100 * iv.topN)}% by |rho| = ${iv.count} neurons`;
  lines.push(`steered export of ${info.source.run} (${info.source.modelHash.slice(0, 19)}…): ${iv.direction}, ${what} at ${iv.site}, alpha ${iv.alpha}`);
  lines.push(`baked into: ${info.baked.map((b) => `${b.site} -> ${b.tensor}${b.everyRow ? ' (every row)' : ''}`).join(', ')}`);
  if (info.family === 'llama') {
    const mg = info.merge;
    lines.push(`LLaMA on the base ${info.source.base}: ${mg ? `adapter merged, W + ${mg.scaling} B A (r ${mg.r}, alpha ${mg.alpha}) into ${mg.tensors.length} weights` : 'no adapter'}; ` +
      `mlp_bias true (zero gate_proj / up_proj biases)${info.untiedHead ? '; lm_head untied from embed_tokens' : ''}; weights ${info.weights?.dtype ?? 'F32'}${info.weights ? ` (base ${info.weights.baseDtypes.join(', ')})` : ''}`);
  }
  const c = info.comparison;
  if (!c) {
    lines.push('baked vs runtime steering: not measured (exported with --no-compare)');
    return lines.join('\n');
  }
  const { from, to } = directionEnds(c.direction);
  lines.push(`baked (shift at every position) vs runtime steering (last prompt position + generated ones), on the same ${c.n} starting inputs`);
  lines.push(`(unsteered ${from}, steer-eval's draw with seed ${c.seed}):`);
  const w = 9;
  lines.push(`${''.padEnd(34)}${'% gen'.padStart(w)}${'% mem'.padStart(w)}${'% other'.padStart(w)}${'n'.padStart(6)}   p(gen) / p(mem) first token`);
  const row = (label: string, s: ComparisonSide) => `${label.padEnd(34)}${fmt(s.pct.gen).padStart(w)}${fmt(s.pct.mem).padStart(w)}${fmt(s.pct.other).padStart(w)}${String(c.n).padStart(6)}   ${s.pFirst.gen.toFixed(3)} / ${s.pFirst.mem === null ? '-' : s.pFirst.mem.toFixed(3)}`;
  lines.push(row('runtime steering of the source', c.runtime));
  lines.push(row('this export, unsteered', c.baked));
  lines.push(`success (% ${to}): runtime ${fmt(c.runtime.success)}, baked ${fmt(c.baked.success)} (${c.baked.success - c.runtime.success >= 0 ? '+' : ''}${fmt(c.baked.success - c.runtime.success)} points); same output on ${c.sameOutput} of ${c.n} inputs`);
  for (const w2 of info.warnings) lines.push(`warning: ${w2}`);
  return lines.join('\n');
}
