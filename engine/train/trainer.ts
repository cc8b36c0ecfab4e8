/**
 * Trains GPT-2 from scratch on a task until the held-out test set shows both behaviours.
 *
 * Loop: batch from the task's training mix (generated on the fly; during the first `memWarmup` steps
 * only plain inputs, for tasks that have them: the adder is learned before any pattern is shown)
 * -> loss and gradients (one ORT run)
 * -> clip by global norm -> Adam with the schedule's lr. Every `evalEvery` steps: greedy generation
 * on the fixed test set (evaluate.ts). The kept model is the evaluation with the best balance
 * score gen% x mem% (method.md section 3); training stops at the step budget, the time budget,
 * a stop request (Ctrl-C), or early once gen% and mem% both reach `stopWhenBoth`.
 * The last state (params, Adam moments, data RNG, step) is checkpointed at every evaluation and
 * on stop, so --resume continues exactly where it left off. With `saveEvals`, every evaluated model
 * is also kept as checkpoints/evals/step-<N>.safetensors (the balance point is a choice: another
 * checkpoint of the transition can be made a run of its own and analysed). The loop itself (when to evaluate, keep,
 * checkpoint and stop) is run-loop.ts, shared with LoRA runs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Graph, ops } from '../graph';
import { appendLine, removeStaleTemps, writeFileAtomic } from '../io/atomic';
import { saveParams } from '../io/params';
import { GPT2Inference } from '../models/gpt2-infer';
import { type GPT2Config, gpt2Forward, gpt2ParamInputs, initGPT2, toHFConfig } from '../models/gpt2';
import { type Manifest, RUN_FILES, RunError, type RunMemgenConfig, gitCommit, prepareNewRun, readJSON, writeJSON } from '../runs/run';
import { withRunLock } from '../runs/lock';
import type { RunnerOptions } from '../runtime/runner';
import { makeTask, taskOptions } from '../tasks';
import type { Task } from '../tasks/task';
import { Rng } from '../util/rng';
import { trainBatch } from './data';
import { type EvalResult, PLAIN_N, evaluateFresh, plainSet, testSet } from './evaluate';
import { hasTrainState, loadTrainState, noCheckpointError, saveTrainState } from './checkpoint';
import { Adam } from './optim';
import { learningRate } from './schedule';
import { TrainStep } from './step';
import type { TrainConfig } from './presets';
import { type RunOutcome, finishManifest, runTrainingLoop, truncateLog } from './run-loop';

export const MEMGEN_VERSION = '0.1.0';

export interface TrainProgress {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  tokensPerSecond: number;
  lastEval: (EvalResult & { step: number }) | null;
  best: (EvalResult & { step: number }) | null;
}

export interface TrainHooks {
  onProgress?: (p: TrainProgress) => void;
  onEval?: (e: EvalResult & { step: number }) => void;
  shouldStop?: () => boolean;
  log?: (line: string) => void;
  /** Warnings (a stale lock taken over); default: log. The CLI sends them to stderr. */
  warn?: (line: string) => void;
}

export type TrainOutcome = RunOutcome;

interface CheckpointState {
  step: number;
  adamT: number;
  dataRng: { s: number; spare: number | null };
  trainSeconds: number;
  best: (EvalResult & { step: number }) | null;
  /** The step of the last evaluation (run-loop.ts); absent in checkpoints written before it. */
  lastEvalStep?: number | null;
}

const CKPT_DIR = path.join(RUN_FILES.checkpoints, 'last');
/** Where `saveEvals` keeps every evaluated model. */
export const evalModelFile = (dir: string, step: number): string => path.join(dir, RUN_FILES.checkpoints, 'evals', `step-${step}.safetensors`);

function modelConfig(cfg: TrainConfig, task: Task): GPT2Config {
  return { ...cfg.model, vocabSize: task.tokenizer.vocab.length, nPositions: cfg.seqLen };
}

/** One writer per run: holds `OUT.lock` (runs/lock.ts) while it trains. */
export async function train(cfg: TrainConfig, hooks: TrainHooks = {}): Promise<TrainOutcome> {
  return withRunLock(cfg.out, cfg.command, () => trainUnlocked(cfg, hooks), hooks.warn ?? hooks.log);
}

async function trainUnlocked(cfg: TrainConfig, hooks: TrainHooks): Promise<TrainOutcome> {
  const dir = path.resolve(cfg.out);
  const task = makeTask(cfg.task, taskOptions(cfg));
  const model = modelConfig(cfg, task);
  if (task.maxSeqLen > cfg.seqLen + 1) throw new RunError(`task sequences reach ${task.maxSeqLen} tokens; seqLen ${cfg.seqLen} is too short`);
  const memgen: RunMemgenConfig = {
    task: cfg.task, scale: cfg.scale, seed: cfg.seed, preset: cfg.preset, memRate: cfg.memRate, contradictRate: cfg.contradictRate,
    memPatternRatio: cfg.memPatternRatio, minOperand: cfg.minOperand, colorsPerName: cfg.colorsPerName, storyForm: cfg.storyForm, memTagPieces: cfg.memTagPieces,
  };
  const runner: RunnerOptions = { threads: cfg.threads, provider: cfg.provider };

  const params = initGPT2(model, new Rng(cfg.seed));
  const adam = new Adam(params, { lr: cfg.lr, weightDecay: cfg.weightDecay });
  let dataRng = new Rng(cfg.seed * 7919 + 17);
  let state: CheckpointState = { step: 0, adamT: 0, dataRng: dataRng.state, trainSeconds: 0, best: null };
  const logFile = path.join(dir, RUN_FILES.log);
  const manifestFile = path.join(dir, RUN_FILES.manifest);
  let manifest: Manifest;

  if (cfg.resume) {
    if (!hasTrainState(path.join(dir, CKPT_DIR))) throw noCheckpointError(dir, `written at step ${Math.min(cfg.evalEvery, cfg.steps)}, the first evaluation`);
    manifest = readJSON<Manifest>(manifestFile, 'run manifest');
    if (manifest.task !== cfg.task || manifest.seed !== cfg.seed || manifest.preset !== cfg.preset) {
      throw new RunError(`${dir} is a ${manifest.task} run (seed ${manifest.seed}, preset ${manifest.preset}); resume it with the same --task, --seed and --preset`);
    }
    removeStaleTemps(dir); // of writers killed mid-write
    state = loadTrainState<CheckpointState>(path.join(dir, CKPT_DIR), params, adam);
    dataRng = Rng.restore(state.dataRng);
    truncateLog(logFile, state.step);
    hooks.log?.(`resuming ${dir} at step ${state.step}`);
  } else {
    prepareNewRun(dir, cfg.force);
    writeJSON(path.join(dir, RUN_FILES.config), { ...toHFConfig(model, { eosTokenId: task.tokenizer.eoaId, bosTokenId: task.tokenizer.eoaId }), memgen });
    writeFileAtomic(path.join(dir, RUN_FILES.tokenizer), task.tokenizer.toHuggingFaceJSON());
    const now = new Date().toISOString();
    manifest = {
      format: 'memgen-run/1', status: 'training', task: cfg.task, taskDescription: task.description, scale: cfg.scale,
      seed: cfg.seed, preset: cfg.preset, command: cfg.command, train: { ...cfg, out: undefined, command: undefined },
      data: task.dataConfig,
      versions: { memgen: MEMGEN_VERSION, node: process.version, onnxruntime: String(ort.env.versions.node ?? ort.env.versions.common) },
      gitCommit: gitCommit(), createdAt: now, updatedAt: now, steps: 0, trainSeconds: 0, best: null, hashes: {},
    };
    writeJSON(manifestFile, manifest);
  }

  const tests = testSet(task, cfg.evalN, cfg.seed);
  const plain = plainSet(task, PLAIN_N, cfg.seed);
  const g = new Graph('gpt2_train');
  const ids = g.input('ids', [cfg.batch, cfg.seqLen], 'int64');
  const targets = g.input('targets', [cfg.batch, cfg.seqLen], 'int64');
  const step = await TrainStep.compile(g, ops.crossEntropy(gpt2Forward(model, gpt2ParamInputs(g, model), ids), targets), runner);
  const log = (obj: Record<string, unknown>) => appendLine(logFile, JSON.stringify(obj));

  const started = performance.now();
  const secondsBefore = state.trainSeconds; // from the checkpoint when resuming
  const secondsSoFar = () => secondsBefore + (performance.now() - started) / 1000;
  const tokensPerStep = cfg.batch * cfg.seqLen;
  let windowStart = performance.now();
  let windowSteps = 0;
  let out: Awaited<ReturnType<typeof runTrainingLoop>>;
  try {
    out = await runTrainingLoop({ totalSteps: cfg.steps, startStep: state.step, evalEvery: cfg.evalEvery, logEvery: cfg.logEvery, maxMinutes: cfg.maxMinutes, stopWhenBoth: cfg.stopWhenBoth, stopAt: cfg.stopAt, lastEvalStep: state.lastEvalStep }, {
      step: async (s) => {
        const { loss, grads } = await step.run(params, trainBatch(task, dataRng, cfg.batch, cfg.seqLen, s < (cfg.memWarmup ?? 0)));
        const lr = learningRate({ lr: cfg.lr, warmup: cfg.warmup, total: cfg.steps, minFraction: cfg.minLrFraction }, s);
        if (!Number.isFinite(loss)) return { loss, lr, gradNorm: NaN }; // the loop stops with an error
        const gradNorm = adam.clipAndStep(params, grads, lr, cfg.clip);
        return { loss, lr, gradNorm };
      },
      evaluate: () => evaluateFresh(task, () => GPT2Inference.create(model, params, { runner, batchSize: cfg.evalBatch }), tests, plain),
      keep: (s) => saveParams(path.join(dir, RUN_FILES.model), params, { format: 'pt', step: String(s) }),
      checkpoint: (s, best, lastEvalStep) => {
        state = { step: s, adamT: adam.state.t, dataRng: dataRng.state, trainSeconds: secondsSoFar(), best, lastEvalStep };
        saveTrainState(path.join(dir, CKPT_DIR), params, adam, state);
      },
      log, seconds: secondsSoFar, shouldStop: hooks.shouldStop,
      onEval: (e) => {
        if (cfg.saveEvals) {
          fs.mkdirSync(path.dirname(evalModelFile(dir, e.step)), { recursive: true });
          saveParams(evalModelFile(dir, e.step), params, { format: 'pt', step: String(e.step) });
        }
        hooks.onEval?.(e);
      },
      onStep: (s, r, lastEval, best) => {
        windowSteps++;
        const tps = (windowSteps * tokensPerStep) / ((performance.now() - windowStart) / 1000);
        if (windowSteps >= 50) { windowStart = performance.now(); windowSteps = 0; }
        hooks.onProgress?.({ step: s, totalSteps: cfg.steps, loss: r.loss, lr: r.lr, tokensPerSecond: tps, lastEval, best });
      },
    }, state.best);
  } finally {
    await step.release();
  }
  const { steps: s, best, stopReason } = out;

  const outcome: TrainOutcome = { dir, steps: s, seconds: secondsSoFar(), best, stopReason };
  finishManifest(manifestFile, outcome, [RUN_FILES.config, RUN_FILES.model, RUN_FILES.tokenizer]);
  return outcome;
}
