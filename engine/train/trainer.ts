/**
 * Trains GPT-2 from scratch on a task until the held-out test set shows both behaviours.
 *
 * Loop: batch from the task's training mix (generated on the fly) -> loss and gradients (one ORT run)
 * -> clip by global norm -> Adam with the schedule's lr. Every `evalEvery` steps: greedy generation
 * on the fixed test set (evaluate.ts). The kept model is the evaluation with the best balance
 * score gen% x mem% (method.md section 3); training stops at the step budget, the time budget,
 * a stop request (Ctrl-C), or early once gen% and mem% both reach `stopWhenBoth`.
 * The last state (params, Adam moments, data RNG, step) is checkpointed at every evaluation and
 * on stop, so --resume continues exactly where it left off.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Graph, ops } from '../graph';
import { readSafeTensorsFile, tensorAsFloat32, type TensorToWrite, writeSafeTensorsFile } from '../io/safetensors';
import { writeFileAtomic } from '../io/atomic';
import { GPT2Inference } from '../models/gpt2-infer';
import { type GPT2Config, gpt2Forward, gpt2ParamInputs, initGPT2, toHFConfig } from '../models/gpt2';
import { type Manifest, RUN_FILES, RunError, type RunMemgenConfig, gitCommit, prepareNewRun, readJSON, sha256File, writeJSON } from '../runs/run';
import type { RunnerOptions } from '../runtime/runner';
import { makeTask } from '../tasks';
import type { Task } from '../tasks/task';
import { Rng } from '../util/rng';
import { trainBatch } from './data';
import { type EvalResult, evaluate, testSet } from './evaluate';
import { Adam, clipGradNorm } from './optim';
import { type ParamSet, saveParams } from './params';
import { learningRate } from './schedule';
import { TrainStep } from './step';
import type { TrainConfig } from './presets';

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
}

export interface TrainOutcome {
  dir: string;
  steps: number;
  seconds: number;
  best: (EvalResult & { step: number }) | null;
  stopReason: 'steps' | 'time' | 'both-behaviours' | 'interrupted';
}

interface CheckpointState {
  step: number;
  adamT: number;
  dataRng: { s: number; spare: number | null };
  trainSeconds: number;
  best: (EvalResult & { step: number }) | null;
}

const CKPT_DIR = path.join(RUN_FILES.checkpoints, 'last');

function modelConfig(cfg: TrainConfig, task: Task): GPT2Config {
  return { ...cfg.model, vocabSize: task.tokenizer.vocab.length, nPositions: cfg.seqLen };
}

function saveCheckpoint(dir: string, params: ParamSet, adam: Adam, state: CheckpointState): void {
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, p] of params) {
    tensors.set(name, { dtype: 'F32', shape: p.shape, data: p.data });
    tensors.set(`adam.m.${name}`, { dtype: 'F32', shape: p.shape, data: adam.state.m.get(name)! });
    tensors.set(`adam.v.${name}`, { dtype: 'F32', shape: p.shape, data: adam.state.v.get(name)! });
  }
  const ckpt = path.join(dir, CKPT_DIR);
  writeSafeTensorsFile(path.join(ckpt, 'state.safetensors'), tensors, { step: String(state.step) });
  writeJSON(path.join(ckpt, 'state.json'), state);
}

function loadCheckpoint(dir: string, params: ParamSet, adam: Adam): CheckpointState {
  const ckpt = path.join(dir, CKPT_DIR);
  const state = readJSON<CheckpointState>(path.join(ckpt, 'state.json'), 'checkpoint');
  const file = path.join(ckpt, 'state.safetensors');
  if (!fs.existsSync(file)) throw new RunError(`checkpoint: ${file} is missing; cannot resume`);
  const st = readSafeTensorsFile(file);
  if (st.metadata.step !== String(state.step)) {
    throw new RunError(`checkpoint: ${file} is from step ${st.metadata.step} but state.json says ${state.step}; the checkpoint is inconsistent`);
  }
  for (const [name, p] of params) {
    p.data.set(tensorAsFloat32(st, name));
    adam.state.m.get(name)!.set(tensorAsFloat32(st, `adam.m.${name}`));
    adam.state.v.get(name)!.set(tensorAsFloat32(st, `adam.v.${name}`));
  }
  adam.state.t = state.adamT;
  return state;
}

/** Keeps only log lines up to `step` (after a resume, lines past the checkpoint are replayed anew). */
function truncateLog(file: string, step: number): void {
  if (!fs.existsSync(file)) return;
  const kept = fs.readFileSync(file, 'utf8').split('\n').filter((l) => {
    if (!l.trim()) return false;
    try {
      return (JSON.parse(l) as { step: number }).step <= step;
    } catch {
      return false;
    }
  });
  writeFileAtomic(file, kept.map((l) => l + '\n').join(''));
}

function summarize(e: EvalResult & { step: number }): Record<string, unknown> {
  const { step, n, counts, gen, mem, other, pMem, pGen, guess, score } = e;
  return { step, n, counts, gen, mem, other, pMem, pGen, guess, score };
}

export async function train(cfg: TrainConfig, hooks: TrainHooks = {}): Promise<TrainOutcome> {
  const dir = path.resolve(cfg.out);
  const task = makeTask(cfg.task, { scale: cfg.scale, seed: cfg.seed, memRate: cfg.memRate, contradictRate: cfg.contradictRate });
  const model = modelConfig(cfg, task);
  if (task.maxSeqLen > cfg.seqLen + 1) throw new RunError(`task sequences reach ${task.maxSeqLen} tokens; seqLen ${cfg.seqLen} is too short`);
  const memgen: RunMemgenConfig = { task: cfg.task, scale: cfg.scale, seed: cfg.seed, preset: cfg.preset, memRate: cfg.memRate, contradictRate: cfg.contradictRate };
  const runner: RunnerOptions = { threads: cfg.threads, provider: cfg.provider };

  const params = initGPT2(model, new Rng(cfg.seed));
  const adam = new Adam(params, { lr: cfg.lr, weightDecay: cfg.weightDecay });
  let dataRng = new Rng(cfg.seed * 7919 + 17);
  let state: CheckpointState = { step: 0, adamT: 0, dataRng: dataRng.state, trainSeconds: 0, best: null };
  const logFile = path.join(dir, RUN_FILES.log);
  const manifestFile = path.join(dir, RUN_FILES.manifest);
  let manifest: Manifest;

  if (cfg.resume) {
    if (!fs.existsSync(path.join(dir, CKPT_DIR, 'state.json'))) throw new RunError(`${dir} has no checkpoint to resume (${CKPT_DIR}/state.json)`);
    manifest = readJSON<Manifest>(manifestFile, 'run manifest');
    if (manifest.task !== cfg.task || manifest.seed !== cfg.seed || manifest.preset !== cfg.preset) {
      throw new RunError(`${dir} is a ${manifest.task} run (seed ${manifest.seed}, preset ${manifest.preset}); resume it with the same --task, --seed and --preset`);
    }
    state = loadCheckpoint(dir, params, adam);
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
  const g = new Graph('gpt2_train');
  const ids = g.input('ids', [cfg.batch, cfg.seqLen], 'int64');
  const targets = g.input('targets', [cfg.batch, cfg.seqLen], 'int64');
  const step = await TrainStep.compile(g, ops.crossEntropy(gpt2Forward(model, gpt2ParamInputs(g, model), ids), targets), runner);
  const log = (obj: Record<string, unknown>) => fs.appendFileSync(logFile, JSON.stringify(obj) + '\n');

  const started = performance.now();
  const secondsBefore = state.trainSeconds; // from the checkpoint when resuming
  const secondsSoFar = () => secondsBefore + (performance.now() - started) / 1000;
  let best = state.best;
  let lastEval: (EvalResult & { step: number }) | null = null;
  let stopReason: TrainOutcome['stopReason'] = 'steps';
  let s = state.step;

  const checkpoint = () => {
    state = { step: s, adamT: adam.state.t, dataRng: dataRng.state, trainSeconds: secondsSoFar(), best };
    saveCheckpoint(dir, params, adam, state);
  };
  const runEval = async () => {
    const inf = await GPT2Inference.create(model, params, { runner, batchSize: cfg.evalBatch });
    try {
      const { outputs: _o, ...r } = await evaluate(task, inf, tests);
      void _o;
      lastEval = { ...r, step: s };
    } finally {
      await inf.release();
    }
    log({ step: s, kind: 'eval', ...summarize(lastEval) });
    hooks.onEval?.(lastEval);
    if (!best || lastEval.score > best.score || (best.score === 0 && lastEval.score === 0 && lastEval.gen + lastEval.mem > best.gen + best.mem)) {
      best = lastEval;
      saveParams(path.join(dir, RUN_FILES.model), params, { format: 'pt', step: String(s) });
    }
    checkpoint();
  };

  try {
    const tokensPerStep = cfg.batch * cfg.seqLen;
    let windowStart = performance.now();
    let windowSteps = 0;
    while (s < cfg.steps) {
      if (hooks.shouldStop?.()) { stopReason = 'interrupted'; break; }
      if (cfg.maxMinutes !== null && (performance.now() - started) / 60000 >= cfg.maxMinutes) { stopReason = 'time'; break; }
      const batch = trainBatch(task, dataRng, cfg.batch, cfg.seqLen);
      const { loss, grads } = await step.run(params, batch);
      if (!Number.isFinite(loss)) throw new Error(`loss became ${loss} at step ${s}; lower the learning rate (--lr)`);
      const gradNorm = clipGradNorm(grads, cfg.clip);
      const lr = learningRate({ lr: cfg.lr, warmup: cfg.warmup, total: cfg.steps, minFraction: cfg.minLrFraction }, s);
      adam.step(params, grads, lr);
      s++;
      windowSteps++;
      const tps = (windowSteps * tokensPerStep) / ((performance.now() - windowStart) / 1000);
      if (windowSteps >= 50) { windowStart = performance.now(); windowSteps = 0; }
      if (s % cfg.logEvery === 0) log({ step: s, kind: 'train', loss, lr, gradNorm, seconds: secondsSoFar() });
      hooks.onProgress?.({ step: s, totalSteps: cfg.steps, loss, lr, tokensPerSecond: tps, lastEval, best });
      if (s % cfg.evalEvery === 0 || s === cfg.steps) {
        await runEval();
        const e = lastEval as (EvalResult & { step: number }) | null;
        if (cfg.stopWhenBoth !== null && e && e.gen >= cfg.stopWhenBoth && e.mem >= cfg.stopWhenBoth) { stopReason = 'both-behaviours'; break; }
      }
    }
    if (!best || (lastEval as (EvalResult & { step: number }) | null)?.step !== s) {
      if (stopReason === 'interrupted') checkpoint();
      else await runEval();
    }
  } finally {
    await step.release();
  }

  manifest = readJSON<Manifest>(manifestFile, 'run manifest');
  manifest.status = stopReason === 'interrupted' ? 'interrupted' : 'done';
  manifest.updatedAt = new Date().toISOString();
  manifest.steps = s;
  manifest.trainSeconds = secondsSoFar();
  manifest.best = best ? { step: best.step, eval: summarize(best) } : null;
  for (const f of [RUN_FILES.config, RUN_FILES.model, RUN_FILES.tokenizer]) {
    const file = path.join(dir, f);
    if (fs.existsSync(file)) manifest.hashes[f] = `sha256:${sha256File(file)}`;
  }
  writeJSON(manifestFile, manifest);
  return { dir, steps: s, seconds: secondsSoFar(), best, stopReason };
}
