/**
 * A plain Hugging Face folder (runs/hf-model.ts: GPT-2 or LLaMA, not trained by memgen) seen as a run
 * of a task, so that `memgen analyze`, `steer-eval`, `sweep`, `robustness` and the editor work on it
 * (docs/runs.md, "Plain Hugging Face folders"). A plain model records no task: the caller names one
 * (PlainTaskSpec: `--task NAME --task-seed S --task-scale tiny|paper`, or the editor's `task:` header),
 * and analysis/plain-task.ts records it beside the analysis for the commands that follow.
 *
 *   task       makeTask(name, {seed, scale}) with the task's default data options (memRate, ...),
 *              seen through the folder's own tokenizer.json (tasks/hf-task-tokenizer.ts, RetokenizedTask,
 *              the path of a LoRA run's task):
 *                GPT-2  no bos before the prompt; the answer ends at config.json's eos_token_id
 *                       (else the tokenizer's <|endoftext|>)
 *                LLaMA  [<|begin_of_text|>] ++ prompt; the answer ends at <|eot_id|> (hf-task-tokenizer.ts)
 *   seeds      the task seed fixes the memorization patterns / name colours / cipher key; the pair
 *              stream is pairSeed(task seed) and steering's default seed is the task seed, as a run's
 *              are its training seed.
 *   modelHash  runs/run.ts modelHash of the folder (model.safetensors, or the shards of a sharded one).
 * Everything here only reads the folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GenerateOptions, GenerateResult } from '../models/gpt2-infer';
import { GPT2Inference } from '../models/gpt2-infer';
import type { GPT2Site } from '../models/hooks';
import { LlamaInference } from '../models/llama-infer';
import type { RunnerOptions } from '../runtime/runner';
import { TASK_NAMES, makeTask } from '../tasks';
import { RetokenizedTask } from '../tasks/hf-task-tokenizer';
import type { TaskName, TaskScale } from '../tasks/task';
import { type HFModel, PLAIN_SITES, isMemgenRunFolder, loadHFModel } from './hf-model';
import type { LoraSteerRun } from './lora-run';
import { RUN_FILES, RunError, modelHash } from './run';

/** The task a plain folder is analysed on: what decides the task's data. */
export interface PlainTaskSpec {
  task: TaskName;
  /** Memorization patterns / name colours / cipher key (default 0). */
  seed: number;
  scale: TaskScale;
}

/** What a command was given (--task, --task-seed, --task-scale); the absent parts come from the record or the defaults. */
export type PlainTaskRequest = Partial<PlainTaskSpec>;

export const PLAIN_TASK_DEFAULTS = { seed: 0, scale: 'tiny' } as const satisfies Omit<PlainTaskSpec, 'task'>;

/** Whether `dir` is a plain Hugging Face folder (config.json, and not a memgen run or LoRA run). */
export function isPlainFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, RUN_FILES.config)) && !isMemgenRunFolder(dir);
}

/** The task of `spec` seen through the plain folder's tokenizer (see the header). */
export function plainFolderTask(m: HFModel, spec: PlainTaskSpec): RetokenizedTask {
  if (!(TASK_NAMES as readonly string[]).includes(spec.task)) throw new RunError(`task '${spec.task}' is not one of ${TASK_NAMES.join(', ')}`);
  const inner = makeTask(spec.task, { seed: spec.seed, scale: spec.scale });
  try {
    if (m.family === 'llama') return new RetokenizedTask(inner, m.tokenizer, { vocabSize: m.vocabSize });
    const eos = m.eosIds[0] ?? m.tokenizer.tokenizer.token_to_id('<|endoftext|>');
    if (eos === undefined) throw new Error('config.json has no eos_token_id and the tokenizer no <|endoftext|>; add "eos_token_id" to config.json');
    return new RetokenizedTask(inner, m.tokenizer, { vocabSize: m.vocabSize, eoaId: eos, bos: false });
  } catch (e) {
    throw new RunError(`${m.dir}: the ${spec.task} task cannot be written with this folder's tokenizer (${(e as Error).message})`);
  }
}

/** A plain folder as analysis and steering see it (SteerRun of steer-eval.ts, like runs/lora-run.ts LoraSteerRun). */
export interface PlainSteerRun extends Omit<LoraSteerRun, 'family' | 'lora'> {
  family: 'gpt2' | 'llama';
  plainTask: PlainTaskSpec;
  hf: HFModel;
}

export function plainSteerRun(dir: string, spec: PlainTaskSpec): PlainSteerRun {
  const hf = loadHFModel(dir);
  return {
    dir, task: plainFolderTask(hf, spec), memgen: { seed: spec.seed }, cfg: { nLayer: hf.nLayer, nEmbd: hf.hidden },
    modelHash: modelHash(dir), family: hf.family, plainTask: spec, hf,
  };
}

/** The sites a plain folder is analysed and steered at, and the default (GPT-2: ln2, LLaMA: resid_post). */
export function plainSite(run: PlainSteerRun, site: GPT2Site | undefined): GPT2Site {
  const s = site ?? (run.family === 'llama' ? 'resid_post' : 'ln2');
  if (!PLAIN_SITES[run.family].includes(s)) throw new RunError(`${run.dir} is a plain ${run.family} folder: its sites are ${PLAIN_SITES[run.family].join(', ')}, not ${s}`);
  return s;
}

/** The folder's model as PairModel / SteerModel (analysis/pairs.ts, steer/steer-eval.ts), reading and steering `site` (default: plainSite's). */
export async function plainRunModel(run: PlainSteerRun, site: GPT2Site | undefined, opts: { runner?: RunnerOptions; batchSize?: number } = {}): Promise<{
  site: GPT2Site;
  family: 'gpt2' | 'llama';
  cfg: { nLayer: number; nEmbd: number };
  generate(prompts: readonly number[][], o: GenerateOptions): Promise<GenerateResult>;
  release(): Promise<void>;
}> {
  const s = plainSite(run, site);
  const { hf } = run;
  if (hf.family === 'gpt2') {
    const inf = await GPT2Inference.create(hf.gpt2!.cfg, hf.gpt2!.params, { site: s, runner: opts.runner, batchSize: opts.batchSize });
    return { site: s, family: 'gpt2', cfg: run.cfg, generate: (p, o) => inf.generate(p, o), release: () => inf.release() };
  }
  const inf = await LlamaInference.create(hf.llama!.config, hf.llama!.params, { site: s as 'resid_pre' | 'mlp_in' | 'resid_post', runner: opts.runner, batchSize: opts.batchSize });
  return { site: s, family: 'llama', cfg: run.cfg, generate: (p, o) => inf.generate(p, o), release: () => inf.release() };
}
