/**
 * Evaluation of inference-time intervention (method.md section 6), the paper's Table 1 layout:
 *
 *   starting inputs   x ~ task.test(rng), rng = Rng(startSeed(seed)), startSeed = deriveSeed(seed,
 *                     'steer/starts'): a stream unrelated to training (Rng(seed * 7919 + 17)), the
 *                     test table (Rng(seed ^ 0x5eed7e57)) and the pairs (deriveSeed(seed,
 *                     'analysis/pairs')). Each input is generated UNSTEERED and classified; the first
 *                     n whose output is mem start the mem->gen direction, the first n whose output is
 *                     gen start gen->mem (one stream feeds both). Drawing stops when both have n or
 *                     after maxTries inputs (default 30 n); the real n per direction is reported.
 *                     Taking the first n in stream order makes a smaller n a prefix of a larger one.
 *   cells             for each direction and method (targeted or custom, random-neurons, uniform;
 *                     intervention.ts), generate greedily from the SAME starting inputs with that
 *                     method's steering vectors and classify:
 *                       % gen, % mem, % other = count / n,  success = % gen (mem->gen) or % mem (gen->mem)
 *                     and, a smooth signal beside the greedy classes, the mean over inputs of
 *                       p(gen first) / p(mem first) = softmax(logits at the last prompt position)[first
 *                       token of the gen / mem answer]   (firstAnswerTokens; as train/evaluate.ts)
 *                     for the steered outputs and for the same inputs unsteered.
 *   baseline seeds    baselineSeed(seed, kind, direction, k) = deriveSeed(seed, `steer/${kind}/${direction}/k${k}`),
 *                     k = neurons steered: independent per direction, and the same for every alpha
 *                     (a sweep changes only the scale along a row of its grid).
 *   baseline draws    with baselineDraws K > 1 (steer-eval --baseline-draws K) each baseline cell pools K
 *                     random draws: draw 0 is the seed above, draw r > 0 deriveSeed(seed,
 *                     `steer/${kind}/${direction}/k${k}/draw${r}`); the cell's counts are summed over the
 *                     K draws (n = K x starting inputs), so its percentages are the mean over draws.
 *
 * Shards (shards.ts, docs/cluster.md): with `shard`, drawStarts generates only the owned blocks of
 * SHARD_BLOCK starting inputs (the others are drawn and skipped), keeps every start it finds and stops
 * when both directions have `quota` or the budget ends; the cells then run on all of them, and
 * steer/shards.ts merges the shards into the table one unsharded job writes (steeringFile below).
 *
 * Neurons and NMD may come from another run (neuronsFrom): the steered model must then have the same
 * layers and d (checked: a neuron index has no meaning across shapes), and the experiment is named
 * 'intra-task' (same task) or 'inter-task'. Staleness policy (documented choice): an analysis made for
 * another model file than its run's current one is REFUSED, unless allowStale, which goes on with a
 * warning recorded in steering.json / sweep.json (the neurons may no longer describe the model).
 */
import * as path from 'node:path';
import type { BehaviourCounts } from '../analysis/files';
import { rankNeurons } from '../analysis/rank';
import type { GenerateOptions, GenerateResult } from '../models/gpt2-infer';
import type { GPT2Site, SteerAt } from '../models/hooks';
import { type SiteFamily, familyField, familySiteName } from '../models/sites';
import { type LoadedRun, RunError, loadRun, modelHash } from '../runs/run';
import { type Behaviour, type Example, type Task, deriveSeed, firstAnswerTokens } from '../tasks/task';
import { Rng } from '../util/rng';
import { softmax } from '../util/softmax';
import { SHARD_BLOCK, type Shard, nextOwned } from '../analysis/shards';
import {
  type ClassPercent,
  type Experiment,
  type FirstTokenP,
  type NeuronSource,
  type NeuronSourceInfo,
  type PaperReference,
  type SteerExample,
  type SteeringCell,
  type SteeringFile,
  type StartsInfo,
  paperCell,
  paperReference,
  readNeuronSource,
} from './files';
import {
  BASELINES,
  DIRECTIONS,
  type BaselineKind,
  type Direction,
  type Intervention,
  type InterventionKind,
  baselineIntervention,
  customIntervention,
  directionEnds,
  targetedIntervention,
} from './intervention';

/** The seed of the starting-input stream for a steering seed. */
export const startSeed = (seed: number): number => deriveSeed(seed, 'steer/starts');

/** The seed of a baseline's random draw. */
export const baselineSeed = (seed: number, kind: BaselineKind, direction: Direction, count: number, draw = 0): number =>
  deriveSeed(seed, `steer/${kind}/${direction}/k${count}${draw === 0 ? '' : `/draw${draw}`}`);

/** A baseline's `draws` random draws of the targeted intervention `of` (see the header: baseline draws). */
export function baselineDraws(kind: BaselineKind, of: Intervention, shape: { layers: number; d: number }, seed: number, direction: Direction, draws = 1, layers?: readonly number[]): Intervention[] {
  return Array.from({ length: draws }, (_, r) => baselineIntervention(kind, of, shape, baselineSeed(seed, kind, direction, of.shifts.length, r), layers));
}

/** What steering needs of a model: GPT2Inference satisfies it; a LoRA run's model (runs/lora-run.ts) too. */
export interface SteerModel {
  readonly site: GPT2Site;
  /** 'llama': sites named layers.{i}.{site}; absent: GPT-2. */
  readonly family?: SiteFamily;
  readonly cfg: { nLayer: number; nEmbd: number };
  generate(prompts: readonly number[][], opts: GenerateOptions): Promise<GenerateResult>;
}

/** Thrown by the loops when shouldStop() said so (checked between generate calls). */
export class SteerInterrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

/** Batching, Ctrl-C and progress of the generation loops. */
export interface LoopControl {
  /** Prompts per generate call (default 256); shouldStop is checked between calls. */
  batch?: number;
  shouldStop?: () => boolean;
  /** Called after each generate call with the prompts generated in this loop so far. */
  onGenerated?: (count: number) => void;
  /** Beam width of every generation (1, the default: greedy). */
  beams?: number;
  /** Where the shift applies (models/hooks.ts SteerAt; default 'all', the paper's). */
  steerAt?: SteerAt;
}

/** One starting input and its unsteered output. */
export interface StartInput {
  /** Position in the starting-input stream (0-based). */
  input: number;
  example: Example;
  ids: number[];
  output: string;
  behaviour: Behaviour;
  /** Unsteered probabilities of the first gen / mem answer token (mem: null without a mem answer). */
  pGen: number;
  pMem: number | null;
}

/** softmax(row)[gen first token] and [mem first token] of an example. */
function firstTokenProbs(task: Task, ex: Example, logits: Float32Array): { pGen: number; pMem: number | null } {
  const probs = softmax(logits);
  const first = firstAnswerTokens(task, ex);
  const p = (id: number) => probs[id];
  return { pGen: p(first.gen), pMem: first.mem.length === 0 ? null : first.mem.reduce((a, id) => a + p(id), 0) };
}

/** Mean first-token probabilities (mem: over the inputs that have one; null if none). */
export function meanFirst(xs: readonly { pGen: number; pMem: number | null }[]): FirstTokenP {
  const mems = xs.flatMap((x) => (x.pMem === null ? [] : [x.pMem]));
  return {
    gen: xs.length === 0 ? 0 : xs.reduce((a, x) => a + x.pGen, 0) / xs.length,
    mem: mems.length === 0 ? null : mems.reduce((a, x) => a + x, 0) / mems.length,
  };
}

export interface Starts {
  inputs: Record<Direction, StartInput[]>;
  info: StartsInfo;
  /** A shard's: stream inputs drawn, and every owned input tried with its unsteered class. */
  position: number;
  log: { input: number; behaviour: Behaviour }[];
}

const emptyCounts = (): BehaviourCounts => ({ gen: 0, mem: 0, other: 0 });

/** Draws starting inputs (see the header); onGenerated counts inputs tried, onFound also the inputs kept. */
export async function drawStarts(
  task: Task,
  model: SteerModel,
  opts: { n: number; seed: number; maxTries?: number; onFound?: (tried: number, found: number) => void; shard?: Shard & { quota: number } } & LoopControl,
): Promise<Starts> {
  const { n } = opts;
  if (!Number.isInteger(n) || n < 1) throw new Error(`n must be a positive integer, got ${n}`);
  const maxTries = opts.maxTries ?? 30 * n;
  if (!Number.isInteger(maxTries) || maxTries < 1) throw new Error(`maxTries must be a positive integer, got ${maxTries}`);
  const batch = opts.batch ?? 256;
  const seed = startSeed(opts.seed);
  const rng = new Rng(seed);
  const tok = task.tokenizer;
  const inputs: Record<Direction, StartInput[]> = { 'mem->gen': [], 'gen->mem': [] };
  const counts = emptyCounts();
  let tried = 0;
  const { shard } = opts;
  const want = shard ? shard.quota : n;
  const full = () => inputs['mem->gen'].length >= want && inputs['gen->mem'].length >= want;
  let position = 0;
  const log: Starts['log'] = [];
  for (;;) {
    const first = shard ? nextOwned(shard, position) : tried;
    if (full() || first >= maxTries) break;
    if (opts.shouldStop?.()) throw new SteerInterrupted();
    for (; position < first; position++) task.test(rng); // a shard skips the blocks it does not own
    const examples = Array.from({ length: Math.min(shard ? SHARD_BLOCK : batch, maxTries - first) }, () => task.test(rng));
    position = first + examples.length;
    const ids = examples.map((e) => tok.encode(e.prompt));
    const res = await model.generate(ids, { maxNewTokens: task.maxAnswerTokens, eosId: tok.eoaId, beams: opts.beams });
    const V = tok.vocab.length;
    examples.forEach((example, i) => {
      const output = tok.decode(res.tokens[i]);
      const behaviour = task.classify(example, output);
      counts[behaviour]++;
      if (shard) log.push({ input: first + i, behaviour });
      const direction: Direction | null = behaviour === 'mem' ? 'mem->gen' : behaviour === 'gen' ? 'gen->mem' : null;
      if (direction && (shard || inputs[direction].length < n)) { // a shard keeps all: the merge picks the first n of all shards
        const p = firstTokenProbs(task, example, res.firstLogits.subarray(i * V, (i + 1) * V));
        inputs[direction].push({ input: first + i, example, ids: ids[i], output, behaviour, ...p });
      }
    });
    tried += examples.length;
    opts.onGenerated?.(tried);
    opts.onFound?.(tried, inputs['mem->gen'].length + inputs['gen->mem'].length);
  }
  return { inputs, info: startsInfo(seed, n, inputs, tried, counts, maxTries), position, log };
}

/** starts.info of the starting inputs `inputs` (at most n per direction) found in `tried` inputs. */
export function startsInfo(seed: number, n: number, inputs: Record<Direction, readonly { pGen: number; pMem: number | null }[]>, tried: number, counts: BehaviourCounts, maxTries: number): StartsInfo {
  return {
    seed, wanted: n, found: { 'mem->gen': inputs['mem->gen'].length, 'gen->mem': inputs['gen->mem'].length },
    tried, counts, maxTries, complete: inputs['mem->gen'].length >= n && inputs['gen->mem'].length >= n,
    pFirst: { 'mem->gen': meanFirst(inputs['mem->gen']), 'gen->mem': meanFirst(inputs['gen->mem']) },
  };
}

/** Outputs (greedy, or beam search with ctl.beams) and classes of the starting inputs under `steer` (one vector per layer). */
export async function steeredOutputs(
  task: Task,
  model: SteerModel,
  inputs: readonly StartInput[],
  steer: Float32Array[],
  ctl: LoopControl = {},
): Promise<Steered> {
  const batch = ctl.batch ?? 256;
  const tok = task.tokenizer;
  const V = tok.vocab.length;
  const outputs: string[] = [];
  const behaviours: Behaviour[] = [];
  const probs: { pGen: number; pMem: number | null }[] = [];
  for (let s = 0; s < inputs.length; s += batch) {
    if (ctl.shouldStop?.()) throw new SteerInterrupted();
    const chunk = inputs.slice(s, s + batch);
    const res = await model.generate(chunk.map((x) => x.ids), { maxNewTokens: task.maxAnswerTokens, eosId: tok.eoaId, steer, beams: ctl.beams, steerAt: ctl.steerAt });
    chunk.forEach((x, i) => {
      const output = tok.decode(res.tokens[i]);
      outputs.push(output);
      behaviours.push(task.classify(x.example, output));
      probs.push(firstTokenProbs(task, x.example, res.firstLogits.subarray(i * V, (i + 1) * V)));
    });
    ctl.onGenerated?.(s + chunk.length);
  }
  return { outputs, behaviours, probs };
}

/** Counts, percentages and success of a cell's classes. */
export function tally(direction: Direction, behaviours: readonly Behaviour[]): { n: number; counts: BehaviourCounts; pct: ClassPercent; success: number } {
  const counts = emptyCounts();
  for (const b of behaviours) counts[b]++;
  const n = behaviours.length;
  const p = (x: number) => (n === 0 ? 0 : (100 * x) / n);
  const pct = { gen: p(counts.gen), mem: p(counts.mem), other: p(counts.other) };
  return { n, counts, pct, success: pct[directionEnds(direction).to] };
}

/** A cell with every steered output and its first-token probabilities (steering.json keeps only the first few as examples). */
export interface CellResult extends SteeringCell {
  outputs: string[];
  behaviours: Behaviour[];
  probs: { pGen: number; pMem: number | null }[];
}

/** A cell's steered outputs, classes and first-token probabilities, per starting input in stream order. */
export type Steered = { outputs: string[]; behaviours: Behaviour[]; probs: { pGen: number; pMem: number | null }[] };

/**
 * The cell of `draws` (one intervention, or a baseline's random draws) from each draw's steered
 * outputs; pooled (see the header): counts over all draws (n = draws x starting inputs), p(first token)
 * their mean, the first draw's intervention and examples, `draws` set. steerEval's and the shard merge's.
 */
export function drawsCell(draws: readonly Intervention[], starts: readonly { prompt: string; output: string }[], drawn: readonly Steered[], examples = 5): CellResult {
  if (drawn.length === 1) return cellResult(draws[0], starts, drawn[0], examples);
  // Draw-major, so the examples are the first draw's: its outputs come first, beside the starts' own.
  const steered = { outputs: drawn.flatMap((c) => c.outputs), behaviours: drawn.flatMap((c) => c.behaviours), probs: drawn.flatMap((c) => c.probs) };
  return cellResult({ ...draws[0], description: { ...draws[0].description, draws: drawn.length } }, starts, steered, examples);
}

/**
 * Runs a cell's draws (one intervention, or a baseline's pooled random draws) on the starting inputs
 * of its direction, one after the other; `progress(k)` after k more generations.
 */
export async function runDraws(task: Task, model: SteerModel, starts: readonly StartInput[], draws: readonly Intervention[], ctl: LoopControl, progress: (k: number) => void, examples = 5): Promise<CellResult> {
  const drawn: Steered[] = [];
  for (const [r, iv] of draws.entries()) {
    const before = r * starts.length;
    drawn.push(await steeredOutputs(task, model, starts, iv.vectors, { ...ctl, onGenerated: (k) => progress(before + k) }));
    progress(before + starts.length);
  }
  return drawsCell(draws, starts.map((x) => ({ prompt: x.example.prompt, output: x.output })), drawn, examples);
}

/** The cell of `intervention` from the steered outputs of its starting inputs (in stream order). */
export function cellResult(intervention: Intervention, starts: readonly { prompt: string; output: string }[],
  steered: Steered, examples = 5): CellResult {
  const { direction } = intervention.description;
  const { outputs, behaviours, probs } = steered;
  const t = tally(direction, behaviours);
  const ex: SteerExample[] = starts.slice(0, examples).map((x, i) => ({ prompt: x.prompt, before: x.output, after: outputs[i], behaviour: behaviours[i] }));
  return { direction, method: intervention.description.kind, ...t, pFirst: meanFirst(probs), intervention: intervention.description, examples: ex, outputs, behaviours, probs };
}

// ---------------------------------------------------------------------------------------------
// The run, its neurons, and whether they fit.

/** The steered run, the source of its neurons, and how they relate. */
/** What steering needs of a run: a GPT-2 LoadedRun, or a LoRA run's view (runs/lora-run.ts: loraSteerRun). */
export interface SteerRun {
  dir: string;
  task: Task;
  memgen: { seed: number };
  cfg: { nLayer: number; nEmbd: number };
  /** The model's hash when it is not RUN/model.safetensors's (a LoRA run: its adapter's). */
  modelHash?: string;
  family?: SiteFamily;
}

export interface SteerSetup<R extends SteerRun = LoadedRun> {
  run: R;
  /** modelHash of the steered run's model file. */
  modelHash: string;
  source: NeuronSource;
  sourceInfo: NeuronSourceInfo;
  warnings: string[];
}

/**
 * Loads the run to steer and the analysis giving the neurons (its own, or neuronsFrom's); checks that
 * the shapes match and applies the staleness policy (see the header).
 */
export function prepareSteering(runDir: string, opts?: { neuronsFrom?: string; allowStale?: boolean }): SteerSetup;
export function prepareSteering<R extends SteerRun>(runDir: string, opts: { neuronsFrom?: string; allowStale?: boolean; load: (dir: string) => R }): SteerSetup<R>;
export function prepareSteering(runDir: string, opts: { neuronsFrom?: string; allowStale?: boolean; load?: (dir: string) => SteerRun } = {}): SteerSetup<SteerRun> {
  const run: SteerRun = opts.load ? opts.load(runDir) : loadRun(runDir);
  const sourceDir = opts.neuronsFrom ?? runDir;
  const source = readNeuronSource(sourceDir);
  const hash = run.modelHash ?? modelHash(run.dir);
  const warnings: string[] = [];
  if ((run.family ?? 'gpt2') !== (source.neurons.family ?? 'gpt2')) {
    throw new RunError(`cannot steer ${runDir} (${run.family ?? 'gpt2'}) with neurons found on a ${source.neurons.family ?? 'gpt2'} model (${sourceDir})`);
  }
  const nf = source.neurons;
  const L = run.cfg.nLayer;
  const d = run.cfg.nEmbd;
  const from = path.resolve(sourceDir) === path.resolve(runDir) ? 'its own analysis' : `the analysis of ${sourceDir}`;
  if (nf.layers !== L || nf.d !== d) {
    throw new RunError(`cannot steer ${runDir} (${L} layers x ${d}) with neurons from ${from}, found on a model of ${nf.layers} layers x ${nf.d}: ` +
      `a (layer, neuron) index means nothing across shapes; use a run of the same preset (same n_layer and n_embd)`);
  }
  if (source.stale) {
    if (!opts.allowStale) throw new RunError(`${source.stale}. (--allow-stale steers with these neurons anyway)`);
    warnings.push(`stale neurons (--allow-stale): ${source.stale}`);
  }
  let experiment: Experiment;
  if (path.resolve(sourceDir) === path.resolve(runDir) || nf.modelHash === hash) experiment = 'same-run';
  else experiment = source.task === run.task.name ? 'intra-task' : 'inter-task';
  if (experiment === 'inter-task') warnings.push(`inter-task: neurons found on ${source.task ?? 'an unknown task'} (${sourceDir}) steer a ${run.task.name} model`);
  const sourceInfo: NeuronSourceInfo = {
    run: sourceDir, task: source.task, modelHash: nf.modelHash, pairs: nf.pairs, site: nf.site, ...familyField(nf.family), layers: nf.layers, d: nf.d,
    experiment, stale: source.stale,
  };
  return { run, modelHash: hash, source, sourceInfo, warnings };
}

// ---------------------------------------------------------------------------------------------
// The whole table.

export interface SteerEvalOptions extends LoopControl {
  setup: SteerSetup<SteerRun>;
  /** A model of setup.run at the neurons' site (GPT2Inference.create(..., { site: setup.sourceInfo.site })). */
  model: SteerModel;
  /** Fraction of all layers x d neurons, re-ranked from rho.npy / nmd.npy (ignored with picks). */
  topN: number;
  /** Steer these neurons instead of the top-N ('custom'). */
  picks?: { layer: number; index: number }[];
  alpha: number;
  /** Rank (and draw the baselines) within these layers only (--layers; absent: all layers, the paper's). */
  layers?: number[];
  /** Random draws pooled in each baseline cell (see the header; default 1, the paper's). */
  baselineDraws?: number;
  /** Starting inputs wanted per direction. */
  n: number;
  seed: number;
  maxTries?: number;
  /** Run shard `index` of `count` only (see the header); quota = starting inputs wanted per direction of it. */
  shard?: Shard & { quota: number };
  /** Progress of the two phases: starts (inputs tried) and cells (steered generations). */
  onProgress?: (p: { phase: 'starts'; tried: number; found: number; wanted: number } | { phase: 'cells'; done: number; total: number }) => void;
}

export interface SteerEvalResult {
  file: SteeringFile;
  cells: CellResult[];
  starts: Starts;
}

/** The steering vectors of the targeted (or custom) method for a direction. */
export function methodIntervention(setup: SteerSetup<SteerRun>, topN: number, picks: { layer: number; index: number }[] | undefined, alpha: number, direction: Direction, layers?: readonly number[]): Intervention {
  const { source } = setup;
  const shape = { layers: source.neurons.layers, d: source.neurons.d };
  if (picks) return customIntervention(picks, source.nmd, shape, source.neurons.site, alpha, direction, source.neurons.family);
  const ranked = rankNeurons(source.rho, source.nmd, shape.layers, shape.d, source.neurons.site, topN, source.neurons.family, layers);
  return targetedIntervention(ranked, source.nmd, shape, alpha, direction);
}

/** Starts, then every (direction, method) cell; returns steering.json's content (not written). */
export async function steerEval(opts: SteerEvalOptions): Promise<SteerEvalResult> {
  const { setup, model } = opts;
  const { run, sourceInfo } = setup;
  const task = run.task;
  if (model.site !== sourceInfo.site) throw new Error(`the model hooks site ${model.site}, the neurons are at ${sourceInfo.site}: create it with { site: '${sourceInfo.site}' }`);
  if (model.cfg.nLayer !== sourceInfo.layers || model.cfg.nEmbd !== sourceInfo.d) throw new Error(`the model is ${model.cfg.nLayer} x ${model.cfg.nEmbd}, the neurons ${sourceInfo.layers} x ${sourceInfo.d}`);
  const start = Date.now();
  const ctl = { batch: opts.batch, shouldStop: opts.shouldStop, beams: opts.beams, steerAt: opts.steerAt };

  const starts = await drawStarts(task, model, {
    n: opts.n, seed: opts.seed, maxTries: opts.maxTries, shard: opts.shard, ...ctl,
    onFound: (tried, found) => opts.onProgress?.({ phase: 'starts', tried, found, wanted: 2 * (opts.shard?.quota ?? opts.n) }),
  });
  const interventions = steeringInterventions(setup, opts);
  const total = interventions.reduce((s, c) => s + c.draws.length * starts.inputs[c.intervention.description.direction].length, 0);
  let done = 0;
  opts.onProgress?.({ phase: 'cells', done, total }); // starts the clock of the cells' ETA
  const cells: CellResult[] = [];
  for (const { intervention, draws } of interventions) {
    const inputs = starts.inputs[intervention.description.direction];
    const before = done;
    cells.push(await runDraws(task, model, inputs, draws, ctl, (k) => opts.onProgress?.({ phase: 'cells', done: before + k, total })));
    done = before + draws.length * inputs.length;
  }
  return { file: steeringFile(setup, opts, starts.info, cells, (Date.now() - start) / 1000), cells, starts };
}

/**
 * The interventions of the table's cells, in its order: per direction, the method (targeted or
 * custom), then the baselines; `draws` = the interventions a cell pools (one, or a baseline's
 * baselineDraws random draws, the first of them `intervention`).
 */
export function steeringInterventions(setup: SteerSetup<SteerRun>, opts: Pick<SteerEvalOptions, 'topN' | 'picks' | 'alpha' | 'seed' | 'layers' | 'baselineDraws'>): { method: InterventionKind; intervention: Intervention; draws: Intervention[] }[] {
  const shape = { layers: setup.sourceInfo.layers, d: setup.sourceInfo.d };
  const methods: InterventionKind[] = [opts.picks ? 'custom' : 'targeted', ...BASELINES];
  return DIRECTIONS.flatMap((direction) => {
    const main = methodIntervention(setup, opts.topN, opts.picks, opts.alpha, direction, opts.layers);
    return methods.map((method) => {
      if (method === 'targeted' || method === 'custom') return { method, intervention: main, draws: [main] };
      const draws = baselineDraws(method, main, shape, opts.seed, direction, opts.baselineDraws, opts.layers);
      return { method, intervention: draws[0], draws };
    });
  });
}

/** steering.json's content from the starts and the cells (steerEval's, or the merge of its shards'). */
export function steeringFile(setup: SteerSetup<SteerRun>, opts: Pick<SteerEvalOptions, 'topN' | 'picks' | 'alpha' | 'seed' | 'n' | 'beams' | 'steerAt' | 'layers' | 'baselineDraws'>, starts: StartsInfo, cells: CellResult[], seconds: number): SteeringFile {
  const { run, sourceInfo } = setup;
  const task = run.task;
  const warnings = [...setup.warnings];
  for (const dir of DIRECTIONS) {
    const found = starts.found[dir];
    if (found < opts.n) {
      warnings.push(`${dir}: only ${found} of ${opts.n} starting inputs (unsteered ${directionEnds(dir).from}) in ${starts.tried} inputs tried (budget ${starts.maxTries}); the ${dir} cells have n = ${found}`);
    }
  }
  const main = cells.filter((c) => c.method === 'targeted' || c.method === 'custom').at(-1)?.intervention;
  const paper = paperReference(task.name, sourceInfo.task, sourceInfo.experiment, sourceInfo.family);
  const file: SteeringFile = {
    format: 'memgen-steering/1', run: run.dir, task: task.name, taskDescription: task.description, modelHash: setup.modelHash,
    site: sourceInfo.site, siteNames: Array.from({ length: sourceInfo.layers }, (_, l) => familySiteName(l, sourceInfo.site, sourceInfo.family)),
    neurons: sourceInfo, method: opts.picks ? 'custom' : 'targeted', topN: opts.picks ? null : opts.topN,
    count: main?.count ?? 0, alpha: opts.alpha, seed: opts.seed, beams: opts.beams ?? 1, steerAt: opts.steerAt ?? 'all', layers: opts.layers ?? null, baselineDraws: opts.baselineDraws ?? 1, starts,
    cells: cells.map(({ outputs: _o, behaviours: _b, probs: _p, ...c }) => c),
    paper, warnings, createdAt: new Date().toISOString(), seconds,
  };
  return file;
}

// ---------------------------------------------------------------------------------------------
// Printing.

const METHOD_LABEL: Record<InterventionKind, string> = {
  targeted: 'targeted', custom: 'custom', 'random-neurons': 'random neurons', uniform: 'uniform',
};

const fmt = (x: number) => x.toFixed(1);

/** The printed note of a file's steerAt: nothing for the paper's 'all'. */
export const steerAtNote = (at: SteerAt | undefined): string => (at === 'prompt' ? 'shift at the last prompt position only (--steer-at prompt); ' : '');

/**
 * The table: rows = methods (targeted or custom, random neurons, uniform); per direction the columns
 * % gen, % mem, % other, n; each percentage followed by the paper's in parentheses when it has one.
 */
export function formatSteeringTable(f: SteeringFile): string {
  const lines: string[] = [];
  const ref: PaperReference | null = f.paper;
  const src = f.neurons;
  const what = f.method === 'custom' ? `${f.count} picked neurons` : `top ${fmt(100 * (f.topN ?? 0))}% by |rho| = ${f.count} of ${f.layers ? `layers ${f.layers.join(',')} (${f.layers.length}` : `${src.layers}`} x ${src.d}${f.layers ? ')' : ''} neurons`;
  const from = src.experiment === 'same-run' ? 'this run\'s analysis' : `${src.run} (${src.task ?? '?'}, ${src.experiment})`;
  lines.push(`steering ${f.run}: ${f.taskDescription}`);
  lines.push(`site ${f.site} (${f.siteNames[0]} .. ${f.siteNames[f.siteNames.length - 1]}); ${what}, from ${from} (${src.pairs} pairs); alpha ${f.alpha}`);
  const main = f.cells.find((c) => c.method === 'targeted' || c.method === 'custom');
  if (main) lines.push(`steered sites: ${main.intervention.sites.map((s, i) => `${s} (${main.intervention.perLayer[main.intervention.layers[i]]})`).join(', ')}; max |shift| ${main.intervention.maxAbsShift.toPrecision(3)}`);
  if ((f.baselineDraws ?? 1) > 1) lines.push(`baselines: each cell pools ${f.baselineDraws} random draws (its n = ${f.baselineDraws} x the starting inputs; its % = the mean over draws)`);
  lines.push(`${(f.beams ?? 1) > 1 ? `beam search, ${f.beams} beams; ` : 'greedy decoding; '}${steerAtNote(f.steerAt)}starting inputs (seed ${f.starts.seed}): ${f.starts.found['mem->gen']} unsteered mem, ${f.starts.found['gen->mem']} unsteered gen, from ${f.starts.tried} tried (gen ${f.starts.counts.gen}, mem ${f.starts.counts.mem}, other ${f.starts.counts.other})`);
  lines.push('');
  const w = 14;
  const methods = [...new Set(f.cells.map((c) => c.method))];
  const head1 = ''.padEnd(16) + DIRECTIONS.map((d) => `| ${d.replace('->', ' -> ')}`.padEnd(3 * w + 8)).join('');
  const head2 = 'method'.padEnd(16) + DIRECTIONS.map(() => `| ${'% gen'.padStart(w - 2)}${'% mem'.padStart(w)}${'% other'.padStart(w)}${'n'.padStart(6)} `).join('');
  lines.push(head1, head2);
  for (const m of methods) {
    let row = METHOD_LABEL[m].padEnd(16);
    for (const dir of DIRECTIONS) {
      const c = f.cells.find((x) => x.method === m && x.direction === dir);
      const p = paperCell(ref, dir, m);
      const val = (k: keyof ClassPercent, width: number) => {
        if (!c) return '-'.padStart(width);
        const ours = fmt(c.pct[k]);
        return (p ? `${ours} (${fmt(p[k])})` : ours).padStart(width);
      };
      row += `| ${val('gen', w - 2)}${val('mem', w)}${val('other', w)}${String(c?.n ?? 0).padStart(6)} `;
    }
    lines.push(row);
  }
  lines.push('');
  // The smooth signal: mean p(first gen / mem answer token), unsteered and per method.
  const pf = (p: FirstTokenP | undefined) => (p ? `${p.gen.toFixed(3)} / ${p.mem === null ? '-' : p.mem.toFixed(3)}` : '-').padEnd(3 * w + 8);
  lines.push('p(first token)'.padEnd(16) + DIRECTIONS.map(() => `| p(gen) / p(mem)`.padEnd(3 * w + 8)).join(''));
  lines.push('unsteered'.padEnd(16) + DIRECTIONS.map((dir) => `| ${pf(f.starts.pFirst?.[dir])}`).join(''));
  for (const m of methods) lines.push(METHOD_LABEL[m].padEnd(16) + DIRECTIONS.map((dir) => `| ${pf(f.cells.find((x) => x.method === m && x.direction === dir)?.pFirst)}`).join(''));
  lines.push('');
  const succ = DIRECTIONS.map((dir) => {
    const t = f.cells.find((c) => c.direction === dir && (c.method === 'targeted' || c.method === 'custom'));
    const bases = f.cells.filter((c) => c.direction === dir && (BASELINES as readonly string[]).includes(c.method));
    if (!t) return `${dir}: -`;
    const best = bases.length ? Math.max(...bases.map((b) => b.success)) : null;
    return `${dir} ${fmt(t.success)}% ${directionEnds(dir).to}${best === null ? '' : ` (${(t.success - best >= 0 ? '+' : '') + fmt(t.success - best)} points over the best baseline)`}`;
  });
  lines.push(`success: ${succ.join('; ')}`);
  lines.push('p(first token): mean probability of the first token of the gen / mem answer at the last prompt position');
  if (ref) lines.push(`in parentheses: the paper's ${ref.table}, ${ref.model}, topN ${ref.topN} alpha ${ref.alpha} (${ref.note})`);
  else lines.push(`the paper has no comparable numbers for ${f.task} (${src.experiment})`);
  for (const wmsg of f.warnings) lines.push(`warning: ${wmsg}`);
  return lines.join('\n');
}
