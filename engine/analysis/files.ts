/**
 * The analysis folder of a run, RUN/analysis/: its file names and the shapes of its JSON files. The
 * on-disk contract between `memgen analyze` (pairs, NMD, correlation, ranking), the probes, the
 * steering code, the editor and Python users (every array is a NumPy .npy, `np.load` reads it).
 *
 *   hidden_gen.npy    float32 [P, L, d]  site vectors at the last prompt token, the gen member of pair k
 *   hidden_mem.npy    float32 [P, L, d]  the same for the mem member (row k of both = pair k)
 *   pairs.jsonl       one PairRecord per line, line k = pair k
 *   pairs-state.json  PairsState: where the input stream stands, so an extraction resumes exactly
 *   nmd.npy           float32 [L, d]  NMD = mean gen - mean mem (nmd.ts)
 *   rho.npy           float32 [L, d]  point-biserial correlation with gen = 1, mem = 0 (pearson.ts)
 *   neurons.json      NeuronsFile: the top fraction of (layer, neuron) by |rho| (rank.ts)
 *   analysis.json     AnalysisSummary: what was computed from what (written last: its presence means
 *                     nmd / rho / neurons are complete for `pairs` pairs)
 *   probes.json       written by the probes (engine/analysis/probe.ts owns its type)
 *   task.json         a plain Hugging Face folder's only: the task it is analysed on (analysis/plain-task.ts)
 *   shards/<i>-of-<N>/ one shard of a sharded extraction (analysis/shards.ts, docs/cluster.md): the same
 *                     four extraction files for the inputs it owns (PairRecord.input = the global stream
 *                     index), inputs.jsonl (InputRecord: the two classes of every owned input tried, so
 *                     that `memgen merge` recounts exactly), and pairs-state.json with `shard` set
 * L = n_layer, d = n_embd, P = pairs kept. Site names are hooks.ts's `blocks.{layer}.{site}` (LLaMA: `layers.{layer}.{site}`, family 'llama').
 * Staleness: analysis.json and pairs-state.json record modelHash, `sha256:<hex>` of the run's
 * model.safetensors (the manifest's format; runs/run.ts modelHash); retraining changes it, and
 * analysisStaleness says so.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GPT2Site } from '../models/hooks';
import type { SiteFamily } from '../models/sites';
import type { PlainTaskSpec } from '../runs/plain-run';
import { RunError, modelHash, readJSON } from '../runs/run';
import type { Behaviour, TaskName } from '../tasks/task';
import { type Shard, shardName } from './shards';

export const ANALYSIS_DIR = 'analysis';

export const ANALYSIS_FILES = {
  hiddenGen: 'hidden_gen.npy',
  hiddenMem: 'hidden_mem.npy',
  pairs: 'pairs.jsonl',
  state: 'pairs-state.json',
  nmd: 'nmd.npy',
  rho: 'rho.npy',
  neurons: 'neurons.json',
  summary: 'analysis.json',
  probes: 'probes.json',
} as const;

export type AnalysisFile = keyof typeof ANALYSIS_FILES;

/** The shards' folder, RUN/analysis/shards, and a shard's own file beside the extraction files. */
export const SHARDS_DIR = 'shards';
export const SHARD_INPUTS_FILE = 'inputs.jsonl';

/** RUN/analysis/shards/<i>-of-<N>. */
export function shardDir(run: string | { dir: string }, shard: Shard): string {
  return path.join(analysisDir(run), SHARDS_DIR, shardName(shard));
}

/** RUN/analysis for a run folder (or a LoadedRun). */
export function analysisDir(run: string | { dir: string }): string {
  return path.join(typeof run === 'string' ? run : run.dir, ANALYSIS_DIR);
}

/** The path of one analysis file of a run, e.g. analysisPath(run, 'nmd') = RUN/analysis/nmd.npy. */
export function analysisPath(run: string | { dir: string }, file: AnalysisFile): string {
  return path.join(analysisDir(run), ANALYSIS_FILES[file]);
}

/** One member of a pair: the prompt the model read, what it generated, and the class. */
export interface PairMember {
  prompt: string;
  output: string;
  behaviour: Behaviour;
}

/** One line of pairs.jsonl. */
export interface PairRecord {
  /** Row of hidden_gen.npy / hidden_mem.npy, 0-based. */
  index: number;
  /** Position of the input in the extraction's input stream, 0-based (inputs tried before it). */
  input: number;
  /** Inputs tried since the previous kept pair, this one included (>= 1). */
  tries: number;
  /** Which member was gen: the test input itself or its rephrasing (task.rephrase). */
  genMember: 'input' | 'rephrasing';
  /** The test input (task.test) and its rephrasing; one is 'gen', the other 'mem'. */
  original: PairMember;
  rephrasing: PairMember;
  /** The correct and the memorized answer (the same for both members). */
  genAnswer: string;
  memAnswer: string | null;
}

/** One line of a shard's inputs.jsonl: an owned input tried and the classes of its two members. */
export interface InputRecord {
  input: number;
  original: Behaviour;
  rephrasing: Behaviour;
}

/** Counts of the classes over every generation of an extraction (2 per input tried). */
export type BehaviourCounts = Record<Behaviour, number>;

/** pairs-state.json: written atomically after each batch, after the rows and lines it counts. */
export interface PairsState {
  format: 'memgen-pairs-state/1';
  task: TaskName;
  site: GPT2Site;
  /** 'llama' for layers.{i}.{site} names (absent: GPT-2's blocks.{i}.{site}). */
  family?: SiteFamily;
  layers: number;
  d: number;
  /** Seed of the input stream (pairs.ts: pairSeed). */
  seed: number;
  modelHash: string;
  /** The input stream's Rng state after the last input tried. */
  rng: { s: number; spare: number | null };
  /** Inputs tried, pairs kept (= rows on disk), inputs tried since the last kept pair. */
  tried: number;
  pairs: number;
  sinceLastPair: number;
  counts: BehaviourCounts;
  /** Seconds spent extracting, over all sessions. */
  seconds: number;
  createdAt: string;
  updatedAt: string;
  /** A shard's state only (analysis/shards.ts); tried, pairs and counts are then over its own inputs. */
  shard?: ShardProgress;
}

/** Where a shard stands in the stream, and the targets of the whole job it is part of. */
export interface ShardProgress {
  index: number;
  count: number;
  /** Inputs per block (shards.ts SHARD_BLOCK). */
  block: number;
  /** Stream inputs drawn: every owned input below it was tried; rng is the stream state here. */
  position: number;
  /** --pairs P and --max-tries T of the whole job (T null: unlimited), as last given to this shard. */
  pairsWanted: number;
  maxTries: number | null;
}

/** One ranked neuron (rank.ts). */
export interface NeuronEntry {
  /** 1 = largest |rho|. */
  rank: number;
  layer: number;
  /** Neuron index within the layer's d-vector. */
  index: number;
  /** Hook name of the layer, e.g. 'blocks.3.ln2'. */
  site: string;
  /** mean gen - mean mem at this neuron. */
  nmd: number;
  /** Point-biserial correlation with gen = 1, mem = 0 (same sign as nmd). */
  rho: number;
}

/** neurons.json. */
export interface NeuronsFile {
  format: 'memgen-neurons/1';
  site: GPT2Site;
  family?: SiteFamily;
  layers: number;
  d: number;
  /** Fraction kept of all layers x d neurons, and the count it gives. */
  topN: number;
  count: number;
  /** Sign convention of nmd and rho. */
  sign: 'gen - mem';
  pairs: number;
  modelHash: string;
  neurons: NeuronEntry[];
}

/** Per-layer summary statistics, in layer order. */
export interface LayerSummary {
  layer: number;
  site: string;
  meanAbsNmd: number;
  maxAbsRho: number;
  /** Kept neurons (neurons.json) in this layer. */
  kept: number;
}

/** analysis.json. */
export interface AnalysisSummary {
  format: 'memgen-analysis/1';
  task: TaskName;
  taskDescription: string;
  site: GPT2Site;
  family?: SiteFamily;
  siteNames: string[];
  layers: number;
  d: number;
  pairs: number;
  inputsTried: number;
  /** inputsTried / pairs. */
  triesPerPair: number;
  /** Classes of all 2 x inputsTried generations. */
  counts: BehaviourCounts;
  seed: number;
  extractSeconds: number;
  topN: number;
  sign: 'gen - mem';
  modelHash: string;
  createdAt: string;
  perLayer: LayerSummary[];
  /** A plain Hugging Face folder's analysis only: the task it was made on (also in task.json, analysis/plain-task.ts). */
  plainTask?: PlainTaskSpec;
}

/** Reads analysis.json of a run; errors name the file and say how to make it. */
export function readAnalysisSummary(runDir: string): AnalysisSummary {
  const file = analysisPath(runDir, 'summary');
  if (!fs.existsSync(file)) throw new RunError(`${file} is missing: run \`memgen analyze --run ${runDir}\` first`);
  return readJSON<AnalysisSummary>(file, 'analysis summary');
}

/** Reads neurons.json of a run. */
export function readNeurons(runDir: string): NeuronsFile {
  const file = analysisPath(runDir, 'neurons');
  if (!fs.existsSync(file)) throw new RunError(`${file} is missing: run \`memgen analyze --run ${runDir}\` first`);
  return readJSON<NeuronsFile>(file, 'ranked neurons');
}

/**
 * Why the analysis no longer describes the run's model (a sentence), or null when it does.
 * Hashes the model file (about 1 s per 400 MB).
 */
export function analysisStaleness(runDir: string, recorded: { modelHash: string }): string | null {
  const now = modelHash(runDir);
  if (now === recorded.modelHash) return null;
  return `the analysis in ${analysisDir(runDir)} was made for another model (${recorded.modelHash.slice(0, 19)}…, now ${now.slice(0, 19)}…): the run was retrained since; rerun \`memgen analyze --run ${runDir} --force\``;
}
