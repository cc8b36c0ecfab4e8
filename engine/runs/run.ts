/**
 * Run folders: the on-disk contract between training, analysis, the editor and Python users.
 *
 *   RUN/config.json          a valid Hugging Face GPT2Config, plus our fields under "memgen"
 *   RUN/model.safetensors    the kept model (best gen% x mem% on the test set), HF tensor names, F32
 *   RUN/tokenizer.json       the task's tokenizer (Hugging Face format)
 *   RUN/manifest.json        task, seed, preset, versions, git commit, data config, hashes, command
 *   RUN/train-log.jsonl      one JSON object per logged step or evaluation
 *   RUN/checkpoints/last/    state.safetensors (params + Adam moments) and state.json, for --resume
 * Every file is written atomically (temp + rename). A folder that exists is never overwritten
 * unless the caller asked (--resume continues it, --force replaces it).
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import { checkLoadMemory, estimateLoadMemory, indexWeights } from '../io/hf-folder';
import { loadParams, type ParamSet } from '../io/params';
import { fromHFConfig, gpt2ParamShapes, type GPT2Config } from '../models/gpt2';
import { ADAPTER_FILES } from '../models/lora';
import { TASK_NAMES, makeTask, taskOptions } from '../tasks';
import { parseJSONLimited, shortJSON } from '../util/json';
import type { StoryForm, Task, TaskName, TaskScale } from '../tasks/task';

export const RUN_FILES = {
  config: 'config.json',
  model: 'model.safetensors',
  tokenizer: 'tokenizer.json',
  manifest: 'manifest.json',
  log: 'train-log.jsonl',
  checkpoints: 'checkpoints',
} as const;

/**
 * The `format` of the manifest.json that `memgen pretrain` writes into a base (train/llama-pretrain.ts):
 * a base is a plain Hugging Face model folder with no task, not a run.
 */
export const BASE_MANIFEST_FORMAT = 'memgen-base/1';

export class RunError extends Error {}

/** Our fields inside config.json ("memgen" key). */
export interface RunMemgenConfig {
  task: TaskName;
  scale: TaskScale;
  seed: number;
  preset: string;
  memRate: number;
  contradictRate?: number;
  /** Absent in runs made before it was recorded (then 0.5: tasks/index.ts taskOptions). */
  memPatternRatio?: number;
  minOperand?: number;
  colorsPerName?: number;
  storyForm?: StoryForm;
  /** Absent in runs made before it was recorded (then 1: tasks/index.ts taskOptions). */
  memTagPieces?: number;
  /** LLaMA exports of arithmetic LoRA runs: the base corpus's partial-sum width (absent: 0). */
  sumDigits?: number;
}

/** What every run's manifest.json records (a GPT-2 run's Manifest, a LoRA run's LoraRunManifest). */
export interface ManifestCommon {
  status: 'training' | 'done' | 'interrupted';
  task: TaskName;
  taskDescription: string;
  scale: TaskScale;
  seed: number;
  command: string;
  train: Record<string, unknown>;
  data: Record<string, unknown>;
  versions: Record<string, string>;
  gitCommit: string | null;
  createdAt: string;
  updatedAt: string;
  steps: number;
  trainSeconds: number;
  best: { step: number; eval: Record<string, unknown> } | null;
  hashes: Record<string, string>;
}

export interface Manifest extends ManifestCommon {
  format: 'memgen-run/1';
  preset: string;
}

export function readJSON<T>(file: string, what: string): T {
  if (!fs.existsSync(file)) throw new RunError(`${what}: ${file} is missing`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new RunError(`${what}: ${file} is unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return parseJSONLimited(text) as T;
  } catch (e) {
    throw new RunError(`${what}: ${file} is corrupt (${(e as Error).message})`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The manifest formats this version reads (a GPT-2 run's, a LoRA run's). */
export const MANIFEST_FORMATS = ['memgen-run/1', 'memgen-lora-run/1'] as const;

/**
 * Checks the fields every manifest has (ManifestCommon, plus preset for 'memgen-run/1'); a LoRA run's
 * own fields are checked by runs/lora-run.ts. Throws a RunError naming the file, the field and the fix.
 */
export function checkManifestCommon(m: unknown, file: string): asserts m is ManifestCommon & { format: string } {
  const fix = 'manifest.json is written by `memgen train`: restore it from a backup or train the run again';
  const bad = (field: string, want: string, v: unknown): never => {
    throw new RunError(`${file}: '${field}' must be ${want}, got ${shortJSON(v)}; ${fix}`);
  };
  if (!isObject(m)) return bad('(top level)', 'a JSON object', m);
  if (!(MANIFEST_FORMATS as readonly unknown[]).includes(m.format)) bad('format', `one of ${MANIFEST_FORMATS.join(', ')} (a newer memgen may have written it)`, m.format);
  if (m.status !== 'training' && m.status !== 'done' && m.status !== 'interrupted') bad('status', "'training', 'done' or 'interrupted'", m.status);
  if (!(TASK_NAMES as readonly unknown[]).includes(m.task)) bad('task', `one of ${TASK_NAMES.join(', ')}`, m.task);
  if (m.scale !== 'tiny' && m.scale !== 'paper') bad('scale', "'tiny' or 'paper'", m.scale);
  if (!Number.isSafeInteger(m.seed)) bad('seed', 'an integer', m.seed);
  if (!Number.isSafeInteger(m.steps) || (m.steps as number) < 0) bad('steps', 'a non-negative integer', m.steps);
  if (typeof m.trainSeconds !== 'number' || !(m.trainSeconds >= 0) || m.trainSeconds === Infinity) bad('trainSeconds', 'a non-negative number', m.trainSeconds);
  for (const k of ['command', 'taskDescription', 'createdAt', 'updatedAt']) if (typeof m[k] !== 'string') bad(k, 'a string', m[k]);
  if (m.gitCommit !== null && typeof m.gitCommit !== 'string') bad('gitCommit', 'a string or null', m.gitCommit);
  for (const k of ['train', 'data', 'versions']) if (!isObject(m[k])) bad(k, 'an object', m[k]);
  if (!isObject(m.hashes) || !Object.values(m.hashes).every((h) => typeof h === 'string')) bad('hashes', 'an object of file -> "sha256:<hex>"', m.hashes);
  const best = m.best;
  if (best !== null && (!isObject(best) || !Number.isSafeInteger(best.step) || (best.step as number) < 0 || !isObject(best.eval))) {
    bad('best', 'null or {"step": a non-negative integer, "eval": an object}', best);
  }
  if (m.format === 'memgen-run/1' && typeof m.preset !== 'string') bad('preset', 'a string', m.preset);
}

/** A GPT-2 run's manifest.json, read and checked (checkManifestCommon). */
export function readManifest(file: string): Manifest {
  const m = readJSON<unknown>(file, 'run manifest');
  checkManifestCommon(m, file);
  if (m.format !== 'memgen-run/1') throw new RunError(`${file}: format ${shortJSON(m.format)} is not a GPT-2 run's (memgen-run/1); this is a LoRA run, opened with its base folder`);
  return m as Manifest;
}

/** One line of train-log.jsonl: a JSON object with a step and a kind; other fields as written. */
export interface TrainLogLine {
  step: number;
  kind: string;
  [field: string]: unknown;
}

/**
 * A train-log.jsonl line, or why it is unreadable: not JSON, not an object, no non-negative integer
 * step, no string kind, or a top-level number that is not finite (1e999 parses as Infinity).
 */
export function parseTrainLogLine(line: string): TrainLogLine | string {
  let o: unknown;
  try {
    o = parseJSONLimited(line);
  } catch (e) {
    return `not JSON (${(e as Error).message})`;
  }
  if (!isObject(o)) return 'not a JSON object';
  if (!Number.isSafeInteger(o.step) || (o.step as number) < 0) return `step ${shortJSON(o.step, 30)} is not a non-negative integer`;
  if (typeof o.kind !== 'string') return `kind ${shortJSON(o.kind, 30)} is not a string`;
  for (const [k, v] of Object.entries(o)) if (typeof v === 'number' && !Number.isFinite(v)) return `'${k.slice(0, 30)}' is not a finite number`;
  return o as TrainLogLine;
}

/**
 * Reads train-log.jsonl, tolerantly: a run that stopped in mid-write leaves a partial last line, so
 * unreadable lines are skipped and listed (1-based line numbers) for the caller to report; blank
 * lines are ignored. A missing file is an empty log.
 */
export function readTrainLog(file: string): { lines: TrainLogLine[]; skipped: { line: number; why: string }[] } {
  if (!fs.existsSync(file)) return { lines: [], skipped: [] };
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new RunError(`${file}: unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const lines: TrainLogLine[] = [];
  const skipped: { line: number; why: string }[] = [];
  text.split('\n').forEach((l, i) => {
    if (!l.trim()) return;
    const r = parseTrainLogLine(l);
    if (typeof r === 'string') skipped.push({ line: i + 1, why: r });
    else lines.push(r);
  });
  return { lines, skipped };
}

/** The message for the skipped lines of readTrainLog, naming the file. */
export function trainLogProblem(file: string, skipped: readonly { line: number; why: string }[]): string {
  const first = skipped[0];
  return `${file}: ${skipped.length} unreadable line(s) skipped (first: line ${first.line}, ${first.why}); a run stopped in mid-write leaves a partial last line, other damage needs the file restored`;
}

export function writeJSON(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

export function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** The run's model file: model.safetensors, or a LoRA run's adapter_model.safetensors; null when neither exists. */
export function modelFile(runDir: string): string | null {
  return [RUN_FILES.model, ADAPTER_FILES.model].map((f) => path.join(runDir, f)).find((f) => fs.existsSync(f)) ?? null;
}

/**
 * `sha256:<hex>` of the run's model file (the format of manifest.hashes): model.safetensors, or for a
 * LoRA run (runs/lora-run.ts, no model.safetensors) its adapter_model.safetensors, the part that is
 * trained (its base's files are checked against the run's manifest whenever the run is loaded). A
 * plain Hugging Face folder with sharded weights (runs/plain-run.ts): the sha256 of its index's
 * shard names and their own sha256, one "name sha256" line per shard in name order.
 */
export function modelHash(runDir: string): string {
  const file = modelFile(runDir);
  const index = path.join(runDir, 'model.safetensors.index.json');
  if (file === null && fs.existsSync(index)) {
    const map = readJSON<{ weight_map?: Record<string, string> }>(index, 'weights index').weight_map ?? {};
    const lines = [...new Set(Object.values(map))].sort().map((f) => `${f} ${sha256File(path.join(runDir, f))}\n`);
    return `sha256:${createHash('sha256').update(lines.join('')).digest('hex')}`;
  }
  return `sha256:${sha256File(file ?? path.join(runDir, RUN_FILES.model))}`;
}

export function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: __dirname, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || null;
  } catch {
    return null;
  }
}

/**
 * Prepares `dir` for a new run. An existing non-empty folder is refused unless `force`
 * (which moves it aside to DIR.replaced-<time> rather than deleting anything).
 */
export function prepareNewRun(dir: string, force: boolean): void {
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) {
    if (!force) {
      throw new RunError(`${dir} already exists. Continue it with --resume, or replace it with --force (the old folder is kept as ${path.basename(dir)}.replaced-<time>)`);
    }
    fs.renameSync(dir, `${dir}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  }
  fs.mkdirSync(dir, { recursive: true });
}

export interface LoadedRun {
  dir: string;
  cfg: GPT2Config;
  memgen: RunMemgenConfig;
  task: Task;
  params: ParamSet;
  manifest: Manifest;
}

/**
 * Opens a run folder, naming any missing or corrupt file; a model that would not fit in memory is
 * refused before any weight is read, with needed vs available (`availableBytes` overrides the
 * machine's, for tests).
 */
export function loadRun(dir: string, opts: { availableBytes?: number } = {}): LoadedRun {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new RunError(`run folder ${dir} does not exist`);
  const configFile = path.join(dir, RUN_FILES.config);
  const config = readJSON<Record<string, unknown>>(configFile, 'run config');
  let cfg: GPT2Config;
  try {
    cfg = fromHFConfig(config);
  } catch (e) {
    throw new RunError(`${configFile}: ${(e as Error).message}`);
  }
  const memgen = config.memgen as RunMemgenConfig | undefined;
  if (!isObject(memgen) || typeof memgen.task !== 'string') throw new RunError(`${configFile} has no "memgen" section naming the task; was this run made by memgen?`);
  if (!(TASK_NAMES as readonly string[]).includes(memgen.task)) throw new RunError(`${configFile}: memgen.task ${shortJSON(memgen.task)} is not one of ${TASK_NAMES.join(', ')}`);
  const manifest = readManifest(path.join(dir, RUN_FILES.manifest));
  const modelFile = path.join(dir, RUN_FILES.model);
  if (!fs.existsSync(modelFile)) throw new RunError(`${modelFile} is missing (the run has no kept model yet; train it, or resume it with --resume)`);
  checkLoadMemory(dir, estimateLoadMemory(indexWeights(dir), opts.availableBytes));
  let params: ParamSet;
  try {
    params = loadParams(modelFile, gpt2ParamShapes(cfg));
  } catch (e) {
    const msg = (e as Error).message;
    throw new RunError(msg.includes(modelFile) ? `${msg} (${configFile} describes another model, or the file is damaged)` : `${modelFile}: ${msg}`);
  }
  let task: Task;
  try {
    task = makeTask(memgen.task, taskOptions(memgen));
  } catch (e) {
    throw new RunError(`${configFile}: the "memgen" section does not describe a task (${(e as Error).message})`);
  }
  if (task.tokenizer.vocab.length !== cfg.vocabSize) {
    throw new RunError(`${configFile}: vocab_size ${cfg.vocabSize} does not match the ${memgen.task} task's ${task.tokenizer.vocab.length} tokens`);
  }
  return { dir, cfg, memgen, task, params, manifest };
}
