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
import { type LlamaFolder, loadLlamaFolder } from '../models/llama-folder';
import { LlamaInference } from '../models/llama-infer';
import { ADAPTER_FILES, type LoraConfig, loadAdapter } from '../models/lora';
import type { RunnerOptions } from '../runtime/runner';
import { makeTask, taskOptions } from '../tasks';
import { type PromptFormat, RetokenizedTask } from '../tasks/hf-task-tokenizer';
import type { TaskName, TaskOptions, TaskScale } from '../tasks/task';
import { type ManifestCommon, RUN_FILES, RunError, modelHash, readJSON, sha256File } from './run';

export interface LoraRunManifest extends ManifestCommon {
  format: 'memgen-lora-run/1';
  system: 'lora';
  base: { dir: string; hashes: Record<string, string>; note: string | null };
  memRate: number;
  contradictRate?: number;
  memPatternRatio?: number;
  colorsPerName?: number;
  promptFormat: PromptFormat;
  lora: LoraConfig;
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

/** Opens a LoRA run: its manifest, the base folder (hashes checked) and the kept adapter. */
export function loadLoraRun(dir: string): LoadedLoraRun {
  const manifest = readJSON<LoraRunManifest>(path.join(dir, RUN_FILES.manifest), 'run manifest');
  if (manifest.system !== 'lora') throw new RunError(`${dir} is not a LoRA run (manifest system ${String(manifest.system)})`);
  if (!fs.existsSync(manifest.base.dir)) throw new RunError(`${dir}: its base folder ${manifest.base.dir} is missing`);
  const hashes = baseHashes(manifest.base.dir);
  if (JSON.stringify(hashes) !== JSON.stringify(manifest.base.hashes)) throw new RunError(`${dir}: the base folder ${manifest.base.dir} is not the one this adapter was trained on (sha256 differs)`);
  const base = loadLlamaFolder(manifest.base.dir);
  if (!fs.existsSync(path.join(dir, ADAPTER_FILES.model))) throw new RunError(`${dir} has no kept adapter yet (${ADAPTER_FILES.model}); train or resume it`);
  const adapter = loadAdapter(dir, base.config);
  return { dir, manifest, base, adapter, task: loraRunTask(base, manifest) };
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

/**
 * The base + adapter as PairModel / SteerModel (analysis/pairs.ts, steer/steer-eval.ts): LlamaInference
 * with the adapter, steering and reading `site` (resid_pre or resid_post: the paper's LLaMA site).
 */
export async function loraRunModel(run: LoadedLoraRun, site: 'resid_pre' | 'resid_post', opts: { runner?: RunnerOptions; batchSize?: number } = {}): Promise<{
  site: 'resid_pre' | 'resid_post';
  family: 'llama';
  cfg: { nLayer: number; nEmbd: number };
  generate: LlamaInference['generate'];
  release(): Promise<void>;
}> {
  const inf = await LlamaInference.create(run.base.config, run.base.params, { site, adapter: run.adapter, runner: opts.runner, batchSize: opts.batchSize });
  return {
    site, family: 'llama', cfg: { nLayer: run.base.config.numLayers, nEmbd: run.base.config.hiddenSize },
    generate: (prompts, o) => inf.generate(prompts, o),
    release: () => inf.release(),
  };
}
