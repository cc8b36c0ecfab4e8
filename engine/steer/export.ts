/**
 * Exporting a steered GPT-2 (`memgen export`): the steering vectors of one intervention (intervention.ts,
 * built as `memgen steer-eval` builds them) become part of the weights, so the exported folder behaves
 * steered with no steering input: in memgen, in Hugging Face transformers, and as ONNX.
 *
 * Baking rule. s_l is the steering vector of layer l ([d], zeros where none of l's neurons is kept) at the
 * analysis' site (hooks.ts); each is added to the bias that produces that site's activation:
 *
 *   blocks.l.ln2          transformer.h.l.ln_2.bias          += s_l
 *                         ln_2(a) = LN(a) * w + b, so the MLP input becomes ln_2(a) + s_l while the
 *                         residual stream keeps a, as with runtime steering at ln2.
 *   blocks.l.resid_pre    l = 0:  transformer.wpe.weight[p]  += s_0   for every position p (every row):
 *                                 resid_pre of block 0 is wte[id] + wpe[p].
 *                         l > 0:  transformer.h.{l-1}.mlp.c_proj.bias += s_l:
 *                                 resid_pre of block l is resid_post of block l-1 = a + gelu(..) W + b.
 *   blocks.l.resid_post   transformer.h.l.mlp.c_proj.bias    += s_l
 *
 * Each shift enters the computation where the runtime hook adds it, so with several steered layers the
 * baked shifts flow through the later blocks as the runtime's do. Sums are in float32, the tensors' own
 * precision. LLaMA / LoRA runs are not exported yet (a later step; their sites have no bias to carry a shift).
 *
 * Where the two differ: runtime steering (gpt2-infer.ts) adds s at the last prompt position and at each
 * generated position; a bias adds it at every position, the earlier prompt positions too, whose keys
 * and values the later positions attend to. On a one-token prompt the two are the same computation (its
 * only position is the last). On the task's prompts the difference is measured:
 *
 *   comparison   steer-eval's starting inputs (drawStarts: Rng(startSeed(seed)), the first n inputs whose
 *                unsteered output is the direction's starting behaviour, mem for mem->gen, gen for
 *                gen->mem), generated greedily (a) by the source model with runtime steering and (b) by
 *                the exported model unsteered. Per side: % gen / % mem / % other = count / n, success =
 *                % of the target behaviour, and steer-eval's mean p(first gen / mem answer token); and
 *                the number of inputs whose two outputs are the same text.
 *
 * The export folder is a memgen run folder (docs/runs.md, "Exported steered models"):
 *
 *   DIR/config.json        the source run's config.json, unchanged (Hugging Face GPT2Config + "memgen")
 *   DIR/tokenizer.json     the source run's, unchanged
 *   DIR/model.safetensors  the baked weights (Hugging Face names, F32)
 *   DIR/model.onnx         input_ids int64 [batch, seq] -> logits float32 [batch, seq, vocab], the baked
 *                          weights as initializers (in weights.bin beside it, ONNX external data, when they
 *                          exceed EXTERNAL_DATA_ABOVE)
 *   DIR/manifest.json      a 'memgen-run/1' manifest (so every reader of runs opens it; best: null, since the
 *                          trainer's evaluation was of the source model) with "export": ExportInfo
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
import { EXTERNAL_DATA_ABOVE, EXTERNAL_DATA_FILE, writeOnnxExternal } from '../io/onnx-external';
import { type ParamSet, cloneParams, saveParams } from '../io/params';
import { type GPT2Config, gpt2Head, gpt2ParamInitializers, gpt2ParamShapes, gpt2Trunk } from '../models/gpt2';
import { GPT2Inference } from '../models/gpt2-infer';
import { type GPT2Site, siteName } from '../models/hooks';
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

/** Where the shift of site `site` at `layer` goes (the rule in the header). */
export function bakeTarget(layer: number, site: GPT2Site): { tensor: string; everyRow: boolean } {
  siteName(layer, site); // validates both
  if (site === 'ln2') return { tensor: `transformer.h.${layer}.ln_2.bias`, everyRow: false };
  if (site === 'resid_post') return { tensor: `transformer.h.${layer}.mlp.c_proj.bias`, everyRow: false };
  if (layer === 0) return { tensor: 'transformer.wpe.weight', everyRow: true };
  return { tensor: `transformer.h.${layer - 1}.mlp.c_proj.bias`, everyRow: false };
}

/** One steered layer, as baked. */
export interface BakedTensor {
  /** The steered site, e.g. blocks.3.ln2. */
  site: string;
  /** The tensor that carries its shift, and whether every row of it got the shift (wpe: every position). */
  tensor: string;
  everyRow: boolean;
  /** Nonzero entries of the layer's vector and their largest |shift|. */
  neurons: number;
  maxAbsShift: number;
}

/**
 * The parameters with the steering vectors (one [d] vector per layer, at `site`) added by the baking
 * rule; `params` is left unchanged. Layers whose vector is all zeros are not touched.
 */
export function bakeSteering(cfg: GPT2Config, params: ParamSet, site: GPT2Site, vectors: readonly Float32Array[]): { params: ParamSet; baked: BakedTensor[] } {
  const d = cfg.nEmbd;
  if (vectors.length !== cfg.nLayer) throw new Error(`${vectors.length} steering vectors; the model has ${cfg.nLayer} layers (one per layer, zeros where unused)`);
  const shapes = gpt2ParamShapes(cfg);
  const out = cloneParams(params);
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
    const { tensor, everyRow } = bakeTarget(l, site);
    const p = out.get(tensor);
    const shape = shapes.get(tensor)!;
    if (!p || p.shape.length !== shape.length || p.shape.some((n, i) => n !== shape[i])) throw new Error(`GPT-2 parameters: '${tensor}' is missing or not [${shape}]`);
    const rows = everyRow ? shape[0] : 1;
    for (let r = 0; r < rows; r++) for (let i = 0; i < d; i++) p.data[r * d + i] += s[i]; // Float32Array: float32 sums
    baked.push({ site: siteName(l, site), tensor, everyRow, neurons, maxAbsShift });
  });
  return { params: out, baked };
}

/**
 * The exported model's ONNX graph: input_ids int64 [batch, seq] -> logits float32 [batch, seq, vocab],
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

/** Writes DIR/model.onnx (and weights.bin past EXTERNAL_DATA_ABOVE bytes of weights); returns the files written. */
export function writeExportOnnx(dir: string, cfg: GPT2Config, params: ParamSet): string[] {
  const g = buildExportGraph(cfg, params);
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
  /** The run whose model was steered, its model file's hash, and the command that trained it. */
  source: { run: string; modelHash: string; command: string; best: Manifest['best'] };
  /** Where the neurons came from (the source's own analysis, or --neurons-from's). */
  neurons: NeuronSourceInfo;
  /** The baked intervention (intervention.ts's description) and its topN (null: picked neurons). */
  intervention: InterventionDescription & { topN: number | null };
  baked: BakedTensor[];
  onnx: { file: string; externalData: string | null; inputs: string[]; outputs: string[] };
  /** Baked vs runtime steering (null: not measured, --no-compare). */
  comparison: ExportComparison | null;
  warnings: string[];
}

export interface ExportOptions {
  setup: SteerSetup<LoadedRun>;
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

/** Bakes, measures (unless compare is null), and writes the export folder (see the header). */
export async function exportSteered(opts: ExportOptions): Promise<ExportResult> {
  const { setup, direction, out } = opts;
  const run = setup.run;
  checkExportTarget(out, run.dir, Boolean(opts.force));
  if ((setup.sourceInfo.family ?? 'gpt2') !== 'gpt2') throw new RunError(`the neurons of ${setup.sourceInfo.run} are LLaMA sites: exporting a steered model covers GPT-2 runs only (LLaMA is a later step)`);
  const site = setup.sourceInfo.site;
  const intervention = methodIntervention(setup, opts.topN, opts.picks, opts.alpha, direction);
  const { params, baked } = bakeSteering(run.cfg, run.params, site, intervention.vectors);

  let comparison: ExportComparison | null = null;
  if (opts.compare) {
    const model = (p: ParamSet) => GPT2Inference.create(run.cfg, p, { site, runner: opts.runner, batchSize: opts.batchSize });
    const source = await model(run.params);
    try {
      const bakedModel = await model(params);
      try {
        comparison = await compareBakedToRuntime(run.task, source, bakedModel, intervention.vectors, direction, opts.compare);
      } finally {
        await bakedModel.release();
      }
    } finally {
      await source.release();
    }
  }

  const partial = `${out}.partial`;
  fs.rmSync(partial, { recursive: true, force: true }); // a dead export's leftovers (the CLI holds DIR's lock)
  fs.mkdirSync(partial, { recursive: true });
  fs.copyFileSync(path.join(run.dir, RUN_FILES.config), path.join(partial, RUN_FILES.config));
  fs.copyFileSync(path.join(run.dir, RUN_FILES.tokenizer), path.join(partial, RUN_FILES.tokenizer));
  saveParams(path.join(partial, RUN_FILES.model), params, { format: 'pt', memgen: `steered export of ${run.dir} (${direction})` });
  const onnxFiles = writeExportOnnx(partial, run.cfg, params);
  const hashed = [RUN_FILES.config, RUN_FILES.model, RUN_FILES.tokenizer, ...onnxFiles];
  const hashes = Object.fromEntries(hashed.map((f) => [f, `sha256:${sha256File(path.join(partial, f))}`]));

  const src = run.manifest;
  const now = new Date().toISOString();
  const info: ExportInfo = {
    format: EXPORT_FORMAT,
    source: { run: run.dir, modelHash: setup.modelHash, command: src.command, best: src.best },
    neurons: setup.sourceInfo,
    intervention: { ...intervention.description, topN: opts.picks ? null : opts.topN },
    baked,
    onnx: { file: ONNX_FILE, externalData: onnxFiles.includes(EXTERNAL_DATA_FILE) ? EXTERNAL_DATA_FILE : null, inputs: ['input_ids'], outputs: ['logits'] },
    comparison,
    warnings: [...setup.warnings],
  };
  const manifest: Manifest & { export: ExportInfo } = {
    format: 'memgen-run/1', status: 'done', task: src.task, taskDescription: src.taskDescription, scale: src.scale, seed: src.seed, preset: src.preset,
    command: opts.command, train: src.train, data: src.data,
    versions: { memgen: MEMGEN_VERSION, node: process.version, onnxruntime: String(ort.env.versions.node ?? ort.env.versions.common) },
    gitCommit: gitCommit(), createdAt: now, updatedAt: now, steps: src.steps, trainSeconds: src.trainSeconds, best: null, hashes,
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
