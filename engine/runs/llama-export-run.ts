/**
 * A steered LLaMA export (`memgen export` of a LoRA run; steer/export.ts writes it) opened as a run of
 * its task, so that `memgen generate`, `forward` and `eval` classify its outputs as they do a run's
 * (docs/runs.md, "Exported steered models"):
 *
 *   DIR/config.json        a Hugging Face LlamaConfig: the base's, with mlp_bias true (the biases that
 *                          carry the steering) and torch_dtype float32; no "memgen" section
 *   DIR/model.safetensors  the merged + baked weights (F32), tokenizer.json etc. copied from the base
 *   DIR/manifest.json      memgen-run/1 with family 'llama' and the LoRA run's task options (memRate,
 *                          promptFormat, ...: LLAMA_EXPORT_TASK_FIELDS), "export" (steer/export.ts)
 *
 *   task  = loraRunTask(this folder, manifest): the LoRA run's task seen through this folder's
 *           tokenizer.json, which is the base's, so the prompts are the LoRA run's token for token.
 * Everything here only reads the folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type LlamaFolder, loadLlamaFolder } from '../models/llama-folder';
import type { PromptFormat, RetokenizedTask } from '../tasks/hf-task-tokenizer';
import { shortJSON } from '../util/json';
import { type LoraRunManifest, loraRunTask } from './lora-run';
import { type Manifest, RUN_FILES, RunError, type RunMemgenConfig, checkManifestCommon, readJSON } from './run';

/** The LoRA run's manifest fields that decide its task's data, copied into the export's manifest when present. */
export const LLAMA_EXPORT_TASK_FIELDS = ['memRate', 'contradictRate', 'memPatternRatio', 'minOperand', 'colorsPerName', 'storyForm', 'memTagPieces', 'sumDigits', 'promptFormat'] as const;

export interface LlamaExportManifest extends Manifest, Pick<RunMemgenConfig, 'memRate' | 'contradictRate' | 'memPatternRatio' | 'minOperand' | 'colorsPerName' | 'storyForm' | 'memTagPieces' | 'sumDigits'> {
  family: 'llama';
  promptFormat: PromptFormat;
}

/** The task fields of a LoRA run's manifest, for the export's (absent ones stay absent: taskOptions' defaults depend on it). */
export function llamaExportTaskFields(m: LoraRunManifest): Pick<LlamaExportManifest, (typeof LLAMA_EXPORT_TASK_FIELDS)[number]> {
  const src = m as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of LLAMA_EXPORT_TASK_FIELDS) if (src[k] !== undefined && src[k] !== null) out[k] = src[k];
  return out as Pick<LlamaExportManifest, (typeof LLAMA_EXPORT_TASK_FIELDS)[number]>;
}

/** Whether `dir` holds a LLaMA export (manifest.json of format memgen-run/1 with family 'llama'). */
export function isLlamaExportRun(dir: string): boolean {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, RUN_FILES.manifest), 'utf8')) as Record<string, unknown>;
    return m.format === 'memgen-run/1' && m.family === 'llama';
  } catch {
    return false;
  }
}

/** A LLaMA export's manifest.json, read and checked; errors name the file, the field and the fix. */
export function readLlamaExportManifest(file: string): LlamaExportManifest {
  const m = readJSON<unknown>(file, 'run manifest');
  checkManifestCommon(m, file);
  const j = m as unknown as Record<string, unknown>;
  const bad = (field: string, want: string): never => {
    throw new RunError(`${file}: '${field}' must be ${want}, got ${shortJSON(j[field])}; this manifest is written by \`memgen export\` of a LoRA run: export it again`);
  };
  if (j.format !== 'memgen-run/1') bad('format', "'memgen-run/1'");
  if (j.family !== 'llama') bad('family', "'llama' (a LLaMA export)");
  if (typeof j.memRate !== 'number' || !(j.memRate >= 0 && j.memRate <= 1)) bad('memRate', 'a number in [0, 1]');
  if (j.promptFormat !== 'plain' && j.promptFormat !== 'chat') bad('promptFormat', "'plain' or 'chat'");
  return m as unknown as LlamaExportManifest;
}

export interface LoadedLlamaExport {
  dir: string;
  manifest: LlamaExportManifest;
  folder: LlamaFolder;
  task: RetokenizedTask;
}

/** Opens a LLaMA export: its manifest, the folder (models/llama-folder.ts) and the task (see the header). */
export function loadLlamaExportRun(dir: string, opts: { availableBytes?: number } = {}): LoadedLlamaExport {
  const file = path.join(dir, RUN_FILES.manifest);
  const manifest = readLlamaExportManifest(file);
  const folder = loadLlamaFolder(dir, { availableBytes: opts.availableBytes }); // its errors name the folder's files
  let task: RetokenizedTask;
  try {
    task = loraRunTask(folder, manifest);
  } catch (e) {
    throw new RunError(`${file}: the task options do not describe a task on this folder's tokenizer (${(e as Error).message})`);
  }
  return { dir, manifest, folder, task };
}
