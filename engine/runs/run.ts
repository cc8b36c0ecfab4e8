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
import { makeTask, taskOptions } from '../tasks';
import type { Task, TaskName, TaskScale } from '../tasks/task';

export const RUN_FILES = {
  config: 'config.json',
  model: 'model.safetensors',
  tokenizer: 'tokenizer.json',
  manifest: 'manifest.json',
  log: 'train-log.jsonl',
  checkpoints: 'checkpoints',
} as const;

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
  /** Absent in runs made before it was recorded (then 1: tasks/index.ts taskOptions). */
  memTagPieces?: number;
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
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new RunError(`${what}: ${file} is corrupt (${(e as Error).message})`);
  }
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
 * trained (its base's files are checked against the run's manifest whenever the run is loaded).
 */
export function modelHash(runDir: string): string {
  return `sha256:${sha256File(modelFile(runDir) ?? path.join(runDir, RUN_FILES.model))}`;
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
  if (!memgen || typeof memgen.task !== 'string') throw new RunError(`${configFile} has no "memgen" section naming the task; was this run made by memgen?`);
  const manifest = readJSON<Manifest>(path.join(dir, RUN_FILES.manifest), 'run manifest');
  const modelFile = path.join(dir, RUN_FILES.model);
  if (!fs.existsSync(modelFile)) throw new RunError(`${modelFile} is missing (the run has no kept model yet; train it, or resume it with --resume)`);
  checkLoadMemory(dir, estimateLoadMemory(indexWeights(dir), opts.availableBytes));
  let params: ParamSet;
  try {
    params = loadParams(modelFile, gpt2ParamShapes(cfg));
  } catch (e) {
    throw new RunError(`${modelFile}: ${(e as Error).message}`);
  }
  const task = makeTask(memgen.task, taskOptions(memgen));
  if (task.tokenizer.vocab.length !== cfg.vocabSize) {
    throw new RunError(`${configFile}: vocab_size ${cfg.vocabSize} does not match the ${memgen.task} task's ${task.tokenizer.vocab.length} tokens`);
  }
  return { dir, cfg, memgen, task, params, manifest };
}
