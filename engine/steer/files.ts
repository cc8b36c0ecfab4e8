/**
 * The steering files of a run, written next to the analysis (RUN/analysis/, engine/analysis/files.ts):
 *
 *   steering.json  SteeringFile: `memgen steer-eval`, the ITI table (method.md section 6): for each
 *                  direction (mem->gen, gen->mem) and method (targeted or custom, random-neurons,
 *                  uniform), % gen / % mem / % other of the steered outputs with n, plus the paper's
 *                  comparable numbers (method.md section 8) for a report to print beside ours.
 *   sweep.json     SweepFile: `memgen sweep`, the alpha x topN grid of the same cells.
 *   steering-from-<RUN2>.json  SteeringFile: `memgen steer-eval --neurons-from RUN2` (another run's
 *                  neurons: Tables 3, 4), named after RUN2's folder so that one run can hold its own
 *                  table and several transfer tables side by side (`--out FILE` names any other file).
 * Both are written atomically (writeJSON); percentages are 0..100 of the cell's n.
 *
 * The neurons may come from ANOTHER run's analysis (neuronsFrom): the paper's intra-task (Table 3:
 * same task, another training run) and inter-task (Table 4: another task) experiments. readNeuronSource
 * loads what steering needs from a run's analysis (neurons.json for the site and shape, nmd.npy and
 * rho.npy for re-ranking at any topN) and says how to make it when it is missing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type BehaviourCounts, type NeuronsFile, analysisDir, analysisPath, analysisStaleness, readNeurons } from '../analysis/files';
import { readNpy } from '../analysis/npy';
import type { GPT2Site, SteerAt } from '../models/hooks';
import type { SiteFamily } from '../models/sites';
import { isMemgenRunFolder } from '../runs/hf-model';
import { RUN_FILES, RunError, readJSON, writeJSON } from '../runs/run';
import type { TaskName } from '../tasks/task';
import type { Direction, InterventionDescription, InterventionKind } from './intervention';

export const STEER_FILES = {
  steering: 'steering.json',
  sweep: 'sweep.json',
} as const;

/** RUN/analysis/steering.json or RUN/analysis/sweep.json. */
export function steerPath(run: string | { dir: string }, file: keyof typeof STEER_FILES): string {
  return path.join(analysisDir(run), STEER_FILES[file]);
}

const TRANSFER_PREFIX = 'steering-from-';

/** RUN/analysis/steering-from-<source folder name>.json (characters other than letters, digits, . _ - become _). */
export function transferSteerPath(run: string | { dir: string }, sourceRun: string): string {
  const name = path.basename(path.resolve(sourceRun)).replace(/[^A-Za-z0-9._-]/g, '_');
  return path.join(analysisDir(run), `${TRANSFER_PREFIX}${name}.json`);
}

/** Where steer-eval writes: RUN/analysis/steering.json with the run's own neurons, else transferSteerPath. */
export function steeringOutPath(runDir: string, neuronsFrom?: string): string {
  return neuronsFrom === undefined || path.resolve(neuronsFrom) === path.resolve(runDir) ? steerPath(runDir, 'steering') : transferSteerPath(runDir, neuronsFrom);
}

/**
 * A run's steering tables beside steering.json (RUN/analysis/steering-*.json), sorted by name, from one
 * directory read: `transfers` (steering-from-*.json, another run's neurons) and `variants` (the run's
 * own neurons at another setting: `steer-eval --out RUN/analysis/steering-at-prompt.json`).
 */
export function otherSteerFiles(run: string | { dir: string }): { transfers: string[]; variants: string[] } {
  const dir = analysisDir(run);
  const names = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.startsWith('steering-') && f.endsWith('.json')).sort() : [];
  const of = (transfer: boolean) => names.filter((f) => f.startsWith(TRANSFER_PREFIX) === transfer).map((f) => path.join(dir, f));
  return { transfers: of(true), variants: of(false) };
}

/** Percentages (0..100) of the three classes. */
export interface ClassPercent {
  gen: number;
  mem: number;
  other: number;
}

/** Mean probabilities of the first gen / mem answer token at the last prompt position (mem: null when no input has a mem answer). */
export interface FirstTokenP {
  gen: number;
  mem: number | null;
}

/** How the neurons' run relates to the steered run. */
export type Experiment = 'same-run' | 'intra-task' | 'inter-task';

/** Where the neurons and NMD came from. */
export interface NeuronSourceInfo {
  /** The run folder whose analysis gave the neurons (= the steered run for 'same-run'). */
  run: string;
  task: TaskName | null;
  /** modelHash recorded by that analysis. */
  modelHash: string;
  pairs: number;
  site: GPT2Site;
  family?: SiteFamily;
  layers: number;
  d: number;
  experiment: Experiment;
  /** analysisStaleness of the source (null: the analysis matches the source's model file). */
  stale: string | null;
}

/** One steered output, kept as an example. */
export interface SteerExample {
  prompt: string;
  /** Unsteered output and class (the starting behaviour), then steered. */
  before: string;
  after: string;
  behaviour: 'gen' | 'mem' | 'other';
}

/** One (direction, method) cell of the table. */
export interface SteeringCell {
  direction: Direction;
  method: InterventionKind;
  /** Starting inputs steered (the real n). */
  n: number;
  counts: BehaviourCounts;
  pct: ClassPercent;
  /** pct.gen for mem->gen, pct.mem for gen->mem. */
  success: number;
  /** Mean p(first gen / mem answer token) after steering; compare starts.pFirst (unsteered). */
  pFirst: FirstTokenP;
  intervention: InterventionDescription;
  /** The first few steered inputs. */
  examples: SteerExample[];
}

/** The starting inputs: drawn from task.test with startSeed, kept by their unsteered class. */
export interface StartsInfo {
  /** Rng seed of the input stream (steer-eval.ts: startSeed). */
  seed: number;
  /** Wanted per direction, and found (unsteered mem for mem->gen, unsteered gen for gen->mem). */
  wanted: number;
  found: Record<Direction, number>;
  /** Inputs tried and their unsteered classes; the try budget. */
  tried: number;
  counts: BehaviourCounts;
  maxTries: number;
  /** Whether both directions got `wanted` inputs within the budget. */
  complete: boolean;
  /** Mean p(first gen / mem answer token) of each direction's starting inputs, unsteered. */
  pFirst: Record<Direction, FirstTokenP>;
}

/** One cell of a paper table: % gen / % mem / % other. */
export interface PaperCell {
  direction: Direction;
  method: InterventionKind;
  pct: ClassPercent;
}

/** The paper's numbers comparable with a steering table (method.md section 8, the paper's tables). */
export interface PaperReference {
  table: string;
  model: string;
  /** The paper's setting for that table. */
  topN: number;
  alpha: number;
  note: string;
  cells: PaperCell[];
}

/** steering.json. */
export interface SteeringFile {
  format: 'memgen-steering/1';
  /** The steered run. */
  run: string;
  task: TaskName;
  taskDescription: string;
  modelHash: string;
  site: GPT2Site;
  siteNames: string[];
  neurons: NeuronSourceInfo;
  /** 'targeted' (top-N ranking) or 'custom' (picked neurons). */
  method: 'targeted' | 'custom';
  topN: number | null;
  count: number;
  alpha: number;
  /** The seed everything derives from (starts, baselines). */
  seed: number;
  /** Beam width of the generations (1: greedy; absent in files written before beams existed). */
  beams?: number;
  /** Where the shift applied (models/hooks.ts SteerAt; absent = 'all', files written before it existed). */
  steerAt?: SteerAt;
  /** The layers the ranking and the baselines were restricted to (--layers); null or absent: all. */
  layers?: number[] | null;
  /** Random draws pooled in each baseline cell (--baseline-draws; absent: 1). */
  baselineDraws?: number;
  starts: StartsInfo;
  cells: SteeringCell[];
  paper: PaperReference | null;
  warnings: string[];
  createdAt: string;
  seconds: number;
}

/** One (alpha, topN, direction, method) cell of a sweep. */
export interface SweepCell {
  alpha: number;
  topN: number;
  /** Neurons kept at topN. */
  count: number;
  direction: Direction;
  method: 'targeted' | 'random-neurons' | 'uniform';
  n: number;
  counts: BehaviourCounts;
  pct: ClassPercent;
  success: number;
  /** Mean p(first gen / mem answer token) after steering. */
  pFirst: FirstTokenP;
  maxAbsShift: number;
  layers: number[];
}

/** The (alpha, topN) with the largest worst-direction margin (targeted success minus best baseline). */
export interface SweepBest {
  alpha: number;
  topN: number;
  /** Per direction: targeted success, best baseline success (null without baselines), margin. */
  success: Record<Direction, number>;
  baseline: Record<Direction, number | null>;
  margin: Record<Direction, number>;
}

/** sweep.json. */
export interface SweepFile {
  format: 'memgen-sweep/1';
  run: string;
  task: TaskName;
  taskDescription: string;
  modelHash: string;
  site: GPT2Site;
  neurons: NeuronSourceInfo;
  alphas: number[];
  topNs: number[];
  baselines: boolean;
  seed: number;
  /** Beam width (1: greedy). */
  beams?: number;
  /** Where the shift applied (absent = 'all'). */
  steerAt?: SteerAt;
  /** The layers each topN was ranked within (--layers); null or absent: all. */
  layers?: number[] | null;
  /** Random draws pooled in each baseline cell (--baseline-draws; absent: 1). */
  baselineDraws?: number;
  starts: StartsInfo;
  cells: SweepCell[];
  best: SweepBest | null;
  /** The paper's setting for this task and experiment (null when it has none). */
  paperSetting: { topN: number; alpha: number } | null;
  /** False when interrupted: `cells` holds the cells finished. */
  complete: boolean;
  warnings: string[];
  createdAt: string;
  seconds: number;
}

// ---------------------------------------------------------------------------------------------
// The paper's numbers (method.md section 8; full rows from the paper's tables 1-5).

const cell = (direction: Direction, method: InterventionKind, gen: number, mem: number, other: number): PaperCell => ({ direction, method, pct: { gen, mem, other } });

/** Table 1 (GPT-2 from scratch); "Random" = baseline (a), the same shifts on random neurons. */
const TABLE1: Partial<Record<TaskName, PaperReference>> = {
  incontext: {
    table: 'Table 1', model: 'GPT-2 (medium, from scratch)', topN: 0.1, alpha: 1, note: 'random = the same shifts on random neurons',
    cells: [
      cell('mem->gen', 'targeted', 83.7, 4.0, 12.3), cell('mem->gen', 'random-neurons', 8.4, 86.8, 4.8),
      cell('gen->mem', 'targeted', 33.8, 35.8, 30.4), cell('gen->mem', 'random-neurons', 95.2, 2.3, 2.5),
    ],
  },
  arithmetic: {
    table: 'Table 1', model: 'GPT-2 (small, from scratch)', topN: 0.1, alpha: 5, note: 'random = the same shifts on random neurons',
    cells: [
      cell('mem->gen', 'targeted', 70.3, 28.1, 1.6), cell('mem->gen', 'random-neurons', 6.3, 92.1, 1.6),
      cell('gen->mem', 'targeted', 14.7, 67.6, 17.7), cell('gen->mem', 'random-neurons', 100, 0, 0),
    ],
  },
};

/** Table 2 (LLaMA-3.2 + LoRA, neurons of the same adapter); "Random" = the same shift magnitude on random neurons. */
const TABLE2: Partial<Record<TaskName, PaperReference>> = {
  incontext: {
    table: 'Table 2', model: 'LLaMA-3.2-3B + LoRA', topN: 0.05, alpha: 5, note: 'LLaMA adapters; random = the same shifts on random neurons',
    cells: [
      cell('mem->gen', 'targeted', 65.9, 19.5, 14.6), cell('mem->gen', 'random-neurons', 73.2, 12.2, 14.6),
      cell('gen->mem', 'targeted', 19.3, 50.9, 29.8), cell('gen->mem', 'random-neurons', 96.4, 1.8, 1.8),
    ],
  },
  arithmetic: {
    table: 'Table 2', model: 'LLaMA-3.2-3B + LoRA', topN: 0.1, alpha: 1, note: 'LLaMA adapters; random = the same shifts on random neurons',
    cells: [
      cell('mem->gen', 'targeted', 92.3, 0, 7.7), cell('mem->gen', 'random-neurons', 0, 0, 100),
      cell('gen->mem', 'targeted', 0, 66.7, 33.3), cell('gen->mem', 'random-neurons', 0, 0, 100),
    ],
  },
};

/** Table 5 (appendix: the cipher task on LLaMA-3.2 + LoRA, the adapter's own neurons); random = the same shift magnitude on random neurons. */
const TABLE5_CIPHER: PaperReference = {
  table: 'Table 5', model: 'LLaMA-3.2 + LoRA (cipher, appendix)', topN: 0.1, alpha: 5, note: 'LLaMA adapters; random = the same shift magnitude on random neurons',
  cells: [
    cell('mem->gen', 'targeted', 30.8, 25.6, 43.6), cell('mem->gen', 'random-neurons', 25.6, 0, 74.4),
    cell('gen->mem', 'targeted', 44.1, 29.4, 26.5), cell('gen->mem', 'random-neurons', 55.9, 0, 44.1),
  ],
};

/** Table 3 (intra-task: neurons of one LoRA adapter applied to a retrained one); random = baseline (b). */
const TABLE3: Partial<Record<TaskName, PaperReference>> = {
  incontext: {
    table: 'Table 3', model: 'LLaMA-3.2-3B + LoRA (intra-task)', topN: 0.05, alpha: 3, note: 'LLaMA adapters, not GPT-2; random = uniform shifts on random neurons',
    cells: [
      cell('mem->gen', 'targeted', 62.5, 35.7, 1.8), cell('gen->mem', 'targeted', 38.1, 54.8, 7.1),
      cell('mem->gen', 'uniform', 0, 0, 100), cell('gen->mem', 'uniform', 0, 0, 100),
    ],
  },
  arithmetic: {
    table: 'Table 3', model: 'LLaMA-3.2-3B + LoRA (intra-task)', topN: 0.05, alpha: 1, note: 'LLaMA adapters, not GPT-2; random = uniform shifts on random neurons',
    cells: [
      cell('mem->gen', 'targeted', 77.1, 22.9, 0), cell('gen->mem', 'targeted', 40.7, 57.4, 1.9),
      cell('mem->gen', 'uniform', 0, 0, 100), cell('gen->mem', 'uniform', 0, 0, 100),
    ],
  },
};

/** Table 4 (inter-task), keyed `${neuron task}->${steered task}`. */
const TABLE4: Record<string, PaperReference> = {
  'arithmetic->incontext': {
    table: 'Table 4', model: 'LLaMA-3.2-3B + LoRA (inter-task: arithmetic neurons on in-context)', topN: 0.05, alpha: 8, note: 'LLaMA adapters, not GPT-2; random = uniform shifts on random neurons',
    cells: [
      cell('mem->gen', 'targeted', 65.9, 29.3, 4.8), cell('gen->mem', 'targeted', 63.2, 22.8, 14.0),
      cell('mem->gen', 'uniform', 0, 0, 100), cell('gen->mem', 'uniform', 0, 0, 100),
    ],
  },
  'incontext->arithmetic': {
    table: 'Table 4', model: 'LLaMA-3.2-3B + LoRA (inter-task: in-context neurons on arithmetic)', topN: 0.05, alpha: 1, note: 'LLaMA adapters, not GPT-2; random = uniform shifts on random neurons',
    cells: [
      cell('mem->gen', 'targeted', 15.4, 69.2, 15.4), cell('gen->mem', 'targeted', 87.0, 9.3, 3.7),
      cell('mem->gen', 'uniform', 0, 0, 100), cell('gen->mem', 'uniform', 0, 0, 100),
    ],
  },
};

/** The paper's LLaMA + LoRA setting per task (method.md section 6). */
export const PAPER_LLAMA_SETTING: Partial<Record<TaskName, { topN: number; alpha: number }>> = {
  incontext: { topN: 0.05, alpha: 5 },
  arithmetic: { topN: 0.1, alpha: 1 },
  cipher: { topN: 0.1, alpha: 5 }, // the appendix's Table 5
};

/** The paper's GPT-2 setting per task (method.md section 6); cipher has none (LLaMA only). */
export const PAPER_GPT2_SETTING: Partial<Record<TaskName, { topN: number; alpha: number }>> = {
  incontext: { topN: 0.1, alpha: 1 },
  arithmetic: { topN: 0.1, alpha: 5 },
};

/** The presets `memgen reproduce` makes runs of (their committed runs: runs/<task>-<preset>). */
export type ReproducePreset = 'tiny' | 'small';
export type ReproduceTask = 'arithmetic' | 'incontext';
export interface SteerSetting {
  site: GPT2Site;
  topN: number;
  alpha: number;
}

/**
 * Our setting per preset and task (site, topN, alpha), which `memgen reproduce` uses: the residual
 * stream before each block (resid_pre); the paper's site (ln2) moves these models little. Chosen from
 * the sweep of each committed run and then checked on starting inputs the sweep did not see (another
 * seed); the measurements are in docs/results.md.
 */
export const GPT2_SETTINGS: Record<ReproducePreset, Partial<Record<ReproduceTask, SteerSetting>>> = {
  tiny: {
    // sweep of runs/arithmetic-tiny (seed 2): mem->gen 67 %, gen->mem 82 % (n = 100); fresh starts: 51 / 75 %
    arithmetic: { site: 'resid_pre', topN: 0.02, alpha: 20 },
    incontext: { site: 'resid_pre', topN: 0.05, alpha: 20 },
  },
  small: {
    // the paper's own setting; the sweep of runs/arithmetic-small gives it 72 / 78 % (n = 100), tied for the
    // best worst direction with topN 0.3, alpha 3; fresh starts: 75.0 / 82.0 %
    arithmetic: { site: 'resid_pre', topN: 0.1, alpha: 5 },
  },
};

/**
 * Default alpha of a steered task: the paper's GPT-2 setting; cipher (no GPT-2 setting in the paper)
 * takes arithmetic's 5, the other task whose memorized answer is a single token.
 */
export function defaultAlpha(task: TaskName): number {
  return PAPER_GPT2_SETTING[task]?.alpha ?? 5;
}

/** The paper's table comparable with steering `task` with neurons of `sourceTask`, or null. */
export function paperReference(task: TaskName, sourceTask: TaskName | null, experiment: Experiment, family: SiteFamily = 'gpt2'): PaperReference | null {
  if (experiment === 'same-run') return family === 'llama' ? (task === 'cipher' ? TABLE5_CIPHER : TABLE2[task] ?? null) : TABLE1[task] ?? null;
  if (experiment === 'intra-task') return TABLE3[task] ?? null;
  return sourceTask === null ? null : TABLE4[`${sourceTask}->${task}`] ?? null;
}

/** The paper's cell for (direction, method), or null. */
export function paperCell(ref: PaperReference | null, direction: Direction, method: InterventionKind): ClassPercent | null {
  const m = method === 'custom' ? 'targeted' : method;
  return ref?.cells.find((c) => c.direction === direction && c.method === m)?.pct ?? null;
}

// ---------------------------------------------------------------------------------------------
// Reading the neurons of a run's analysis.

/** Everything steering needs from an analysis. */
export interface NeuronSource {
  /** The run folder of the analysis. */
  run: string;
  neurons: NeuronsFile;
  task: TaskName | null;
  /** [layers * d], layer-major. */
  nmd: Float32Array;
  rho: Float32Array;
  /** analysisStaleness: null when the analysis matches the run's model file. */
  stale: string | null;
}

/**
 * Reads the analysis of `runDir`. A missing analysis is a RunError saying to run `memgen analyze`
 * first; a missing or misshapen nmd.npy / rho.npy is one too.
 */
export function readNeuronSource(runDir: string): NeuronSource {
  const neuronsFile = analysisPath(runDir, 'neurons');
  if (!fs.existsSync(neuronsFile)) {
    const task = isMemgenRunFolder(runDir) ? '' : ' --task arithmetic|incontext|cipher'; // a plain folder has no task of its own
    throw new RunError(`${runDir} has no analysis (${neuronsFile} is missing): run \`memgen analyze --run ${runDir}${task}\` first`);
  }
  const neurons = readNeurons(runDir);
  const arrays = (['nmd', 'rho'] as const).map((k) => {
    const file = analysisPath(runDir, k);
    if (!fs.existsSync(file)) throw new RunError(`${file} is missing (the analysis is incomplete): rerun \`memgen analyze --run ${runDir} --resume\``);
    const { shape, data } = readNpy(file);
    if (shape.length !== 2 || shape[0] !== neurons.layers || shape[1] !== neurons.d) {
      throw new RunError(`${file} has shape (${shape.join(', ')}), but ${neuronsFile} says [${neurons.layers}, ${neurons.d}]: rerun \`memgen analyze --run ${runDir} --force\``);
    }
    return data;
  });
  // The task: from analysis.json, else from the run's config.json (memgen.task).
  const summaryFile = analysisPath(runDir, 'summary');
  const configFile = path.join(runDir, RUN_FILES.config);
  const task = fs.existsSync(summaryFile)
    ? readJSON<{ task: TaskName }>(summaryFile, 'analysis summary').task
    : fs.existsSync(configFile) ? (readJSON<{ memgen?: { task?: TaskName } }>(configFile, 'run config').memgen?.task ?? null) : null;
  return { run: runDir, neurons, task, nmd: arrays[0], rho: arrays[1], stale: analysisStaleness(runDir, neurons) };
}

/** Writes steering.json or sweep.json of `runDir` (or `file`, e.g. steeringOutPath's) atomically; returns the path. */
export function writeSteerFile(runDir: string, which: 'steering', value: SteeringFile, file?: string): string;
export function writeSteerFile(runDir: string, which: 'sweep', value: SweepFile): string;
export function writeSteerFile(runDir: string, which: keyof typeof STEER_FILES, value: SteeringFile | SweepFile, file = steerPath(runDir, which)): string {
  writeJSON(file, value);
  return file;
}
