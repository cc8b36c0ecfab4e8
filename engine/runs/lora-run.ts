/**
 * The folder of a LoRA run (method.md section 3, the adapter run): a LoRA adapter on a frozen
 * pretrained LLaMA base (a Hugging Face folder, e.g. the stand-in from `memgen pretrain`), which is
 * only read: its files' sha256 are recorded and checked whenever the run is loaded. The training
 * that writes it is train/lora-trainer.ts (`memgen train --base --lora`).
 *
 * Run folder (a LoRA run; docs/llama.md):
 *   RUN/adapter_config.json, adapter_model.safetensors   the kept adapter (PEFT loads it on the base)
 *   RUN/manifest.json       format memgen-lora-run/1, system 'lora', base folder + its hashes, task,
 *                           seed, LoRA config, training config, data config, best evaluation
 *   RUN/train-log.jsonl     train and eval lines as for GPT-2 runs (docs/runs.md)
 *   RUN/checkpoints/last/   trainer.safetensors (adapter + Adam moments + dropout RNG) and state.json
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HF_FILES } from '../io/hf-folder';
import type { ParamSet } from '../io/params';
import type { LlamaConfig } from '../models/llama';
import { type LlamaFolder, loadLlamaFolder } from '../models/llama-folder';
import { LlamaInference } from '../models/llama-infer';
import { ADAPTER_FILES, type LoraConfig, checkLoraConfig, loadAdapter } from '../models/lora';
import type { RunnerOptions } from '../runtime/runner';
import { makeTask, taskOptions } from '../tasks';
import { type PromptFormat, RetokenizedTask } from '../tasks/hf-task-tokenizer';
import type { StoryForm, TaskName, TaskOptions, TaskScale } from '../tasks/task';
import { shortJSON } from '../util/json';
import { type ManifestCommon, RUN_FILES, RunError, checkManifestCommon, modelHash, readJSON, sha256File } from './run';

export interface LoraRunManifest extends ManifestCommon {
  format: 'memgen-lora-run/1';
  system: 'lora';
  /** dir: where it was trained from; relative: the same from the run folder (absent before stop 40), looked up first, so a moved or cloned pair of folders finds its own base. */
  base: { dir: string; relative?: string; hashes: Record<string, string>; note: string | null };
  memRate: number;
  contradictRate?: number;
  memPatternRatio?: number;
  colorsPerName?: number;
  storyForm?: StoryForm;
  /** arithmetic: the base corpus's partial-sum width (tasks/task.ts TaskOptions.sumDigits). */
  sumDigits?: number;
  promptFormat: PromptFormat;
  lora: LoraConfig;
  /** The trainer's settings (train/lora-trainer.ts LoraRunConfig, less paths and the LoRA config) and the sequence length. */
  train: Record<string, unknown> & { trainSize: number; epochs: number; batch: number; lr: number; seq: number };
}

/** sha256 of the base folder's config, tokenizer and weight files (to prove it unchanged, and to match runs to bases). */
export function baseHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir).sort()) {
    if (f === HF_FILES.config || f.startsWith('tokenizer') || f.endsWith('.safetensors') || f === HF_FILES.index) out[f] = `sha256:${sha256File(path.join(dir, f))}`;
  }
  return out;
}

/** The task of a LoRA run seen through its base's tokenizer. */
export function loraRunTask(base: LlamaFolder, m: TaskOptions & { task: TaskName; scale: TaskScale; seed: number; memRate: number; promptFormat: PromptFormat }): RetokenizedTask {
  if (!base.tokenizer) throw new RunError(`${base.dir} has no tokenizer.json`);
  const inner = makeTask(m.task, taskOptions(m));
  return new RetokenizedTask(inner, base.tokenizer, { format: m.promptFormat, vocabSize: base.config.vocabSize });
}

export interface LoadedLoraRun {
  dir: string;
  manifest: LoraRunManifest;
  base: LlamaFolder;
  adapter: { config: LoraConfig; params: ParamSet };
  task: RetokenizedTask;
}

/**
 * Checks a LoRA run's manifest (parsed): the common fields (runs/run.ts checkManifestCommon), then
 * system, base, the data options, prompt format and LoRA config. Throws a RunError naming the file.
 */
export function checkLoraManifest(m: unknown, file: string): asserts m is LoraRunManifest {
  checkManifestCommon(m, file);
  const j = m as unknown as Record<string, unknown>;
  const fix = 'manifest.json is written by `memgen train --base --lora`: restore it from a backup or train the run again';
  const bad = (field: string, want: string, v: unknown): never => {
    throw new RunError(`${file}: '${field}' must be ${want}, got ${shortJSON(v)}; ${fix}`);
  };
  if (j.format !== 'memgen-lora-run/1') bad('format', "'memgen-lora-run/1' (a LoRA run)", j.format);
  if (j.system !== 'lora') bad('system', "'lora'", j.system);
  const b = j.base as Record<string, unknown> | null;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) return bad('base', 'an object {dir, hashes, note}', b);
  if (typeof b.dir !== 'string' || b.dir === '') bad('base.dir', 'the base folder', b.dir);
  const h = b.hashes;
  if (typeof h !== 'object' || h === null || Array.isArray(h) || !Object.values(h).every((x) => typeof x === 'string')) bad('base.hashes', 'an object of file -> "sha256:<hex>"', h);
  if (b.note !== null && b.note !== undefined && typeof b.note !== 'string') bad('base.note', 'a string or null', b.note);
  if (b.relative !== undefined && (typeof b.relative !== 'string' || b.relative === '')) bad('base.relative', 'the base folder relative to the run folder', b.relative);
  if (typeof j.memRate !== 'number' || !(j.memRate >= 0 && j.memRate <= 1)) bad('memRate', 'a number in [0, 1]', j.memRate);
  if (j.promptFormat !== 'plain' && j.promptFormat !== 'chat') bad('promptFormat', "'plain' or 'chat'", j.promptFormat);
  const t = j.train as Record<string, unknown>; // an object: checkManifestCommon
  for (const f of ['trainSize', 'epochs', 'batch', 'seq'] as const) if (!Number.isInteger(t[f]) || (t[f] as number) < 1) bad(`train.${f}`, 'a positive integer', t[f]);
  if (typeof t.lr !== 'number' || !(t.lr > 0)) bad('train.lr', 'a positive number', t.lr);
  const l = j.lora as Record<string, unknown> | null;
  if (typeof l !== 'object' || l === null || Array.isArray(l)) return bad('lora', 'the LoRA config object', l);
  if (!Array.isArray(l.targetModules) || !(l.layers === null || (Array.isArray(l.layers) && l.layers.every((x) => typeof x === 'number'))) || typeof l.useRslora !== 'boolean' || typeof l.seed !== 'number') {
    bad('lora', '{r, alpha, dropout, targetModules, seed, useRslora, layers}', l);
  }
  try {
    checkLoraConfig(l as unknown as LoraConfig);
  } catch (e) {
    bad('lora', `a valid LoRA config (${(e as Error).message})`, l);
  }
}

/** A LoRA run's manifest.json, read and checked (checkLoraManifest). */
export function readLoraManifest(manifestFile: string): LoraRunManifest {
  const manifest = readJSON<unknown>(manifestFile, 'run manifest');
  if (typeof manifest === 'object' && manifest !== null && !Array.isArray(manifest) && (manifest as { system?: unknown }).system !== 'lora') {
    throw new RunError(`${path.dirname(manifestFile)} is not a LoRA run (${manifestFile} has system ${shortJSON((manifest as { system?: unknown }).system)}, not 'lora')`);
  }
  checkLoraManifest(manifest, manifestFile);
  return manifest;
}

/** The files whose sha256 differ between two baseHashes records (key order does not matter). */
export function changedBaseFiles(recorded: Record<string, string>, now: Record<string, string>): string[] {
  return [...new Set([...Object.keys(recorded), ...Object.keys(now)])].filter((f) => !Object.hasOwn(recorded, f) || !Object.hasOwn(now, f) || recorded[f] !== now[f]).sort();
}

/** Opens a LoRA run: its manifest, the base folder (hashes checked) and the kept adapter. */
export function loadLoraRun(dir: string): LoadedLoraRun {
  const manifestFile = path.join(dir, RUN_FILES.manifest);
  const manifest = readLoraManifest(manifestFile);
  // the base where it lies relative to the run (the pair of folders cloned or moved together), else where it was trained from
  const fromRun = manifest.base.relative === undefined ? null : path.resolve(dir, manifest.base.relative);
  const baseDir = fromRun !== null && fs.existsSync(fromRun) ? fromRun : manifest.base.dir;
  if (!fs.existsSync(baseDir)) throw new RunError(`${dir}: its base folder ${manifest.base.dir}${fromRun === null ? '' : ` (or ${fromRun}, the same from the run)`} is missing (${manifestFile} names it; put it back, or fix base.dir)`);
  const changed = changedBaseFiles(manifest.base.hashes, baseHashes(baseDir));
  if (changed.length > 0) {
    throw new RunError(`${dir}: the base folder ${baseDir} is not the one this adapter was trained on (sha256 of ${changed.slice(0, 3).join(', ')}${changed.length > 3 ? ', ...' : ''} differs from ${manifestFile})`);
  }
  const base = loadLlamaFolder(baseDir);
  if (!fs.existsSync(path.join(dir, ADAPTER_FILES.model))) throw new RunError(`${dir} has no kept adapter yet (${ADAPTER_FILES.model}); train or resume it`);
  const adapter = loadAdapter(dir, base.config);
  let task: RetokenizedTask;
  try {
    task = loraRunTask(base, manifest);
  } catch (e) {
    throw new RunError(`${manifestFile}: the task options do not describe a task on this base (${(e as Error).message})`);
  }
  return { dir, manifest, base, adapter, task };
}

/** Whether a run folder holds a LoRA run (manifest system 'lora'). */
export function isLoraRun(dir: string): boolean {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, RUN_FILES.manifest), 'utf8')).system === 'lora';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- analysis and steering of a LoRA run

/** A LoRA run as analysis and steering see it (SteerRun of steer-eval.ts): d = hidden_size, layers.{i}.* names. */
export interface LoraSteerRun {
  dir: string;
  task: RetokenizedTask;
  memgen: { seed: number };
  cfg: { nLayer: number; nEmbd: number };
  modelHash: string;
  family: 'llama';
  lora: LoadedLoraRun;
}

/** The adapter's hash: what identifies the steered model of a LoRA run (the base's hashes are checked on load). */
export const loraModelHash = (dir: string): string => modelHash(dir);

export function loraSteerRun(dir: string): LoraSteerRun {
  const lora = loadLoraRun(dir);
  return {
    dir, task: lora.task, memgen: { seed: lora.manifest.seed }, cfg: { nLayer: lora.base.config.numLayers, nEmbd: lora.base.config.hiddenSize },
    modelHash: loraModelHash(dir), family: 'llama', lora,
  };
}

/** A LLaMA as PairModel / SteerModel (analysis/pairs.ts, steer/steer-eval.ts), steering and reading `site`. */
export interface LlamaSteerModel {
  site: 'resid_pre' | 'resid_post';
  family: 'llama';
  cfg: { nLayer: number; nEmbd: number };
  generate: LlamaInference['generate'];
  release(): Promise<void>;
}

/** LlamaInference of (cfg, params), with an optional adapter, as a LlamaSteerModel. */
export async function llamaSteerModel(
  cfg: LlamaConfig,
  params: ParamSet,
  site: 'resid_pre' | 'resid_post',
  opts: { adapter?: { config: LoraConfig; params: ParamSet }; runner?: RunnerOptions; batchSize?: number } = {},
): Promise<LlamaSteerModel> {
  const inf = await LlamaInference.create(cfg, params, { site, adapter: opts.adapter, runner: opts.runner, batchSize: opts.batchSize });
  return {
    site, family: 'llama', cfg: { nLayer: cfg.numLayers, nEmbd: cfg.hiddenSize },
    generate: (prompts, o) => inf.generate(prompts, o),
    release: () => inf.release(),
  };
}

/**
 * The base + adapter as PairModel / SteerModel (analysis/pairs.ts, steer/steer-eval.ts): LlamaInference
 * with the adapter, steering and reading `site` (resid_pre or resid_post: the paper's LLaMA site).
 */
export function loraRunModel(run: LoadedLoraRun, site: 'resid_pre' | 'resid_post', opts: { runner?: RunnerOptions; batchSize?: number } = {}): Promise<LlamaSteerModel> {
  return llamaSteerModel(run.base.config, run.base.params, site, { ...opts, adapter: run.adapter });
}
