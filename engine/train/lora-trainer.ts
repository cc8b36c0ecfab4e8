/**
 * The training of a LoRA run (method.md section 3, the adapter run; its folder: runs/lora-run.ts): a
 * LoRA adapter trained on a frozen pretrained LLaMA base (a Hugging Face folder, e.g. the stand-in
 * from `memgen pretrain`) until the held-out test set shows both behaviours. The base folder is only
 * read (its files' sha256 are recorded and checked before and after).
 *
 *   data     a FIXED training set of `trainSize` examples drawn once from task.train (the paper trains
 *            epochs over a generated set); epoch e visits it in the order of a Fisher-Yates shuffle
 *            seeded deriveSeed(seed, 'lora/epoch/e'), in batches of `batch` (the last partial batch
 *            of an epoch is dropped)
 *   tokens   the base's tokenizer through RetokenizedTask (tasks/hf-task-tokenizer.ts): plain prompts
 *            <|begin_of_text|> prompt, answer then <|eot_id|>; targets = the next token on the answer
 *            and the end token, -100 on the prompt and the padding (data.ts's rule)
 *   update   LoraTrainer.step (lora-train.ts): adapter only, clip 1, Adam with lr(s) of schedule.ts
 *            (warm-up, cosine decay to minLrFraction x lr)
 *   keep     every `evalEvery` steps: greedy generation on the fixed test set (evaluate.ts,
 *            LlamaInference with the adapter); the adapter with the best gen% x mem% is saved in
 *            PEFT layout at RUN/adapter_config.json + RUN/adapter_model.safetensors
 * The loop itself (when to evaluate, keep, checkpoint and stop) is run-loop.ts, shared with GPT-2
 * runs (trainer.ts); RUN/checkpoints/last/ holds trainer.safetensors (adapter + Adam moments +
 * dropout RNG + the run state: step, seconds, the kept evaluation) and state.json (a readable copy of
 * the run state), for --resume.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { appendLine, removeStaleTemps } from '../io/atomic';
import { loadLlamaFolder } from '../models/llama-folder';
import { LlamaInference } from '../models/llama-infer';
import { ADAPTER_FILES, type LoraConfig, saveAdapter } from '../models/lora';
import { type LoraRunManifest, baseHashes, loraRunTask } from '../runs/lora-run';
import { RUN_FILES, RunError, gitCommit, prepareNewRun, readJSON, writeJSON } from '../runs/run';
import { withRunLock } from '../runs/lock';
import type { RunnerOptions } from '../runtime/runner';
import type { PromptFormat, RetokenizedTask } from '../tasks/hf-task-tokenizer';
import { type Example, type StoryForm, type TaskName, type TaskScale, deriveSeed } from '../tasks/task';
import { Rng } from '../util/rng';
import { IGNORE_INDEX } from './data';
import { type EvalResult, PLAIN_N, evaluateFresh, plainSet, testSet } from './evaluate';
import { checkpointState, noCheckpointError } from './checkpoint';
import { type BaseManifest, readBaseManifest } from './llama-pretrain';
import { LoraTrainer } from './lora-train';
import { type RunOutcome, finishManifest, runTrainingLoop, truncateLog } from './run-loop';
import { learningRate } from './schedule';
import { MEMGEN_VERSION } from './trainer';

export interface LoraRunConfig {
  base: string;
  task: TaskName;
  scale: TaskScale;
  seed: number;
  out: string;
  command: string;
  lora: LoraConfig;
  promptFormat: PromptFormat;
  memRate: number;
  contradictRate?: number;
  memPatternRatio: number;
  colorsPerName?: number;
  storyForm?: StoryForm;
  trainSize: number;
  epochs: number;
  batch: number;
  lr: number;
  warmup: number;
  minLrFraction: number;
  clip: number;
  evalEvery: number;
  evalN: number;
  evalBatch: number;
  logEvery: number;
  maxMinutes: number | null;
  stopWhenBoth: number | null;
  /** The keep and stop rules' plain-accuracy bar (run-loop.ts; undefined: MIN_PLAIN_ACCURACY, 0.9). */
  minPlainAccuracy?: number;
  resume: boolean;
  force: boolean;
  runner: RunnerOptions;
}

/**
 * The paper's recipe (method.md section 3): r 8, alpha 32, dropout 0.1 on q_proj/v_proj, batch 16,
 * mem rate 7%, epochs over a fixed set. lr: the paper's 5e-5 barely moves a tiny stand-in base in
 * a CPU budget (measured, docs/llama.md), so the default is PAPER_LORA_LR x LORA_LR_FACTOR; pass
 * --lr 5e-5 for the paper's value.
 */
export const PAPER_LORA_LR = 5e-5;
/** The run's fixed training set (header: data): `size` examples of task.train from the seed's own stream. */
export function loraTrainSet(task: { train(rng: Rng): Example }, seed: number, size: number): Example[] {
  const rng = new Rng(deriveSeed(seed, 'lora/train-set'));
  return Array.from({ length: size }, () => task.train(rng));
}

export const LORA_RUN_DEFAULTS = { lr: 2e-3, batch: 16, memRate: 0.07, trainSize: 2000, epochs: 10, evalN: 300, warmup: 30 } as const;

const CKPT = path.join(RUN_FILES.checkpoints, 'last');

interface LoraState {
  step: number;
  trainSeconds: number;
  best: (EvalResult & { step: number }) | null;
  /** The step of the last evaluation (run-loop.ts); absent in checkpoints written before it. */
  lastEvalStep?: number | null;
}

/** ids/targets [batch, seq] of examples (header: prompt and padding masked). */
export function loraBatch(task: RetokenizedTask, examples: readonly Example[], seq: number): { ids: BigInt64Array; targets: BigInt64Array } {
  const n = examples.length;
  const ids = new BigInt64Array(n * seq).fill(BigInt(task.tokenizer.padId));
  const targets = new BigInt64Array(n * seq).fill(BigInt(IGNORE_INDEX));
  examples.forEach((ex, b) => {
    const { ids: s, promptLength } = task.tokenizer.encodeExample(ex);
    if (s.length > seq + 1) throw new Error(`example of ${s.length} tokens exceeds the training length ${seq + 1}`);
    for (let t = 0; t < seq; t++) {
      if (t < s.length) ids[b * seq + t] = BigInt(s[t]);
      if (t + 1 >= promptLength && t + 1 < s.length) targets[b * seq + t] = BigInt(s[t + 1]);
    }
  });
  return { ids, targets };
}

/** Epoch e's visiting order of the fixed set (header). */
export function epochOrder(seed: number, epoch: number, n: number): number[] {
  const rng = new Rng(deriveSeed(seed, `lora/epoch/${epoch}`));
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

export interface LoraRunHooks {
  onProgress?: (p: { step: number; totalSteps: number; epoch: number; loss: number; lr: number; lastEval: (EvalResult & { step: number }) | null }) => void;
  onEval?: (e: EvalResult & { step: number }) => void;
  shouldStop?: () => boolean;
  log?: (line: string) => void;
  /** Warnings (a stale lock taken over); default: log. The CLI sends them to stderr. */
  warn?: (line: string) => void;
}

export type LoraRunOutcome = RunOutcome;

/** The manifest `memgen pretrain` writes into a base folder, or null (a base from elsewhere has none). */
function pretrainManifest(baseDir: string): Partial<BaseManifest> | null {
  try {
    return readBaseManifest(baseDir);
  } catch {
    return null;
  }
}

/** One writer per run: holds `OUT.lock` (runs/lock.ts) while it trains. */
export async function trainLoraRun(cfg: LoraRunConfig, hooks: LoraRunHooks = {}): Promise<LoraRunOutcome> {
  return withRunLock(cfg.out, cfg.command, () => trainLoraRunUnlocked(cfg, hooks), hooks.warn ?? hooks.log);
}

async function trainLoraRunUnlocked(cfg: LoraRunConfig, hooks: LoraRunHooks): Promise<LoraRunOutcome> {
  const dir = path.resolve(cfg.out);
  const baseDir = path.resolve(cfg.base);
  if (dir === baseDir || dir.startsWith(baseDir + path.sep)) throw new RunError(`the run folder ${dir} must not be inside the base folder ${baseDir} (the base is never modified)`);
  const base = loadLlamaFolder(baseDir);
  const hashesBefore = baseHashes(baseDir);
  const baseManifest = pretrainManifest(baseDir);
  // the arithmetic targets are written as the base learned to add: its corpus's partial-sum width
  const sumDigits = cfg.task === 'arithmetic' ? baseManifest?.corpus?.sumDigits : undefined;
  const task = loraRunTask(base, { ...cfg, sumDigits });
  const seq = task.maxSeqLen - 1;
  const manifestFile = path.join(dir, RUN_FILES.manifest);
  const logFile = path.join(dir, RUN_FILES.log);
  const ckptFile = path.join(dir, CKPT, 'trainer.safetensors');
  let state: LoraState = { step: 0, trainSeconds: 0, best: null };
  const baseNote = baseManifest?.standIn ?? null;

  if (cfg.resume) {
    if (!fs.existsSync(ckptFile)) throw noCheckpointError(dir, `written at step ${cfg.evalEvery}, the first evaluation`);
    const m = readJSON<LoraRunManifest>(manifestFile, 'run manifest');
    if (m.task !== cfg.task || m.seed !== cfg.seed || path.resolve(m.base.dir) !== baseDir) {
      throw new RunError(`${dir} is a ${m.task} run (seed ${m.seed}) on ${m.base.dir}; resume it with the same --task, --seed and --base`);
    }
    if (JSON.stringify(m.base.hashes) !== JSON.stringify(hashesBefore)) throw new RunError(`the base folder ${baseDir} changed since the run started (sha256 differs)`);
  } else {
    prepareNewRun(dir, cfg.force);
    const now = new Date().toISOString();
    const manifest: LoraRunManifest = {
      format: 'memgen-lora-run/1', system: 'lora', status: 'training',
      base: { dir: baseDir, relative: path.relative(path.resolve(dir), baseDir), hashes: hashesBefore, note: baseNote },
      task: cfg.task, taskDescription: task.description, scale: cfg.scale, seed: cfg.seed, memRate: cfg.memRate, contradictRate: cfg.contradictRate,
      memPatternRatio: cfg.memPatternRatio, colorsPerName: cfg.colorsPerName, storyForm: cfg.storyForm, sumDigits,
      promptFormat: cfg.promptFormat, lora: cfg.lora, command: cfg.command,
      train: { ...cfg, out: undefined, command: undefined, base: undefined, lora: undefined, runner: undefined, seq },
      data: task.dataConfig,
      versions: { memgen: MEMGEN_VERSION, node: process.version, onnxruntime: String(ort.env.versions.node ?? ort.env.versions.common) },
      gitCommit: gitCommit(), createdAt: now, updatedAt: now, steps: 0, trainSeconds: 0, best: null, hashes: {},
    };
    writeJSON(manifestFile, manifest);
  }

  const trainSet = loraTrainSet(task, cfg.seed, cfg.trainSize);
  const tests = testSet(task, cfg.evalN, cfg.seed);
  const plain = plainSet(task, PLAIN_N, cfg.seed);
  const perEpoch = Math.floor(cfg.trainSize / cfg.batch);
  if (perEpoch < 1) throw new RunError(`--train-size ${cfg.trainSize} is smaller than one batch (${cfg.batch})`);
  const totalSteps = perEpoch * cfg.epochs;
  const trainer = await LoraTrainer.create(base.config, base.params, cfg.lora, { batch: cfg.batch, seq, lr: cfg.lr, clip: cfg.clip, runner: cfg.runner });
  const log = (obj: Record<string, unknown>) => appendLine(logFile, JSON.stringify(obj));
  if (cfg.resume) {
    // the run state rides in trainer.safetensors (one atomic write); state.json is its readable copy
    removeStaleTemps(dir); // of writers killed mid-write
    state = checkpointState<LoraState>(ckptFile, trainer.loadCheckpoint(ckptFile));
    truncateLog(logFile, state.step);
    hooks.log?.(`resuming ${dir} at step ${state.step}`);
  }

  const started = performance.now();
  const before = state.trainSeconds;
  const seconds = () => before + (performance.now() - started) / 1000;
  let order: number[] = [];
  let orderEpoch = -1;
  let out: Awaited<ReturnType<typeof runTrainingLoop>>;
  try {
    out = await runTrainingLoop({ totalSteps, startStep: state.step, evalEvery: cfg.evalEvery, logEvery: cfg.logEvery, maxMinutes: cfg.maxMinutes, stopWhenBoth: cfg.stopWhenBoth, minPlainAccuracy: cfg.minPlainAccuracy, lastEvalStep: state.lastEvalStep }, {
      step: async (s) => {
        const epoch = Math.floor(s / perEpoch);
        if (epoch !== orderEpoch) {
          order = epochOrder(cfg.seed, epoch, cfg.trainSize);
          orderEpoch = epoch;
        }
        const k = s % perEpoch;
        const b = loraBatch(task, order.slice(k * cfg.batch, (k + 1) * cfg.batch).map((i) => trainSet[i]), seq);
        const lr = learningRate({ lr: cfg.lr, warmup: cfg.warmup, total: totalSteps, minFraction: cfg.minLrFraction }, s);
        const { loss, gradNorm } = await trainer.step(b.ids, b.targets, lr);
        return { loss, lr, gradNorm };
      },
      evaluate: () => evaluateFresh(task, () => LlamaInference.create(base.config, base.params, { adapter: { config: cfg.lora, params: trainer.adapter }, runner: cfg.runner, batchSize: cfg.evalBatch }), tests, plain),
      keep: () => saveAdapter(dir, base.config, cfg.lora, trainer.adapter, { baseDir, baseModel: baseDir }),
      checkpoint: (s, best, lastEvalStep) => {
        state = { step: s, trainSeconds: seconds(), best, lastEvalStep };
        trainer.saveCheckpoint(ckptFile, state);
        writeJSON(path.join(dir, CKPT, 'state.json'), state);
      },
      log, seconds, shouldStop: hooks.shouldStop, onEval: hooks.onEval,
      onStep: (s, r, lastEval) => hooks.onProgress?.({ step: s, totalSteps, epoch: Math.floor((s - 1) / perEpoch), loss: r.loss, lr: r.lr, lastEval }),
    }, state.best);
  } finally {
    await trainer.release();
  }
  const { steps: s, best, stopReason } = out;

  const hashesAfter = baseHashes(baseDir);
  if (JSON.stringify(hashesAfter) !== JSON.stringify(hashesBefore)) throw new RunError(`the base folder ${baseDir} changed during training (sha256 differs): something else wrote to it`);
  const outcome: LoraRunOutcome = { dir, steps: s, seconds: seconds(), best, stopReason };
  finishManifest(manifestFile, outcome, [ADAPTER_FILES.config, ADAPTER_FILES.model]);
  return outcome;
}
