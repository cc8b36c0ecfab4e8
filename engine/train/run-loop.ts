/**
 * The training loop shared by GPT-2 runs (trainer.ts) and LoRA runs (lora-trainer.ts): what to do
 * each step is theirs (`step`), when to evaluate, which model to keep and when to stop is this.
 *
 *   for s = start .. end - 1:     stop request -> 'interrupted'; time budget -> 'time'
 *                                 (end = min(total, stopAt): stopAt ends a run early at a fixed step
 *                                 without changing its schedule, which is made for `total` steps)
 *     step(s)                     one optimizer step; a non-finite loss is an error
 *     every evalEvery steps and at the last: evaluate; keep it when it is the best so far
 *       (isBetter: a checkpoint whose plain accuracy reaches minPlainAccuracy beats one that does
 *       not; then, with stopWhenBoth F, one with gen% and mem% both >= F beats one without; among
 *       equals, higher gen% x mem%, or, while both scores are 0, more gen% + mem%), so the kept
 *       model is the best balance among checkpoints that can add (when any can) and show both
 *       behaviours (when any does: the checkpoint that stops the run shows them), then
 *       checkpoint; both gen% and mem% >= stopWhenBoth at a checkpoint that reaches minPlainAccuracy
 *       -> 'both-behaviours'
 *   at the end: a run without an evaluation at its last step is evaluated (or, when interrupted,
 *   checkpointed), so that the kept model and --resume always match the step count. A checkpoint
 *   records the step of the last evaluation (lastEvalStep), so that a run resumed from its final
 *   checkpoint (killed while finishing its manifest) is not evaluated, and logged, a second time.
 * Steps are counted from 1 in the log and progress (`s` after the step).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import { type ManifestCommon, parseTrainLogLine, readJSON, sha256File, writeJSON } from '../runs/run';
import type { EvalResult } from './evaluate';

export type StepEval = EvalResult & { step: number };

export type StopReason = 'steps' | 'time' | 'both-behaviours' | 'interrupted';

/** What a finished (or stopped) training run reports: GPT-2 runs and LoRA runs alike. */
export interface RunOutcome {
  dir: string;
  steps: number;
  seconds: number;
  best: StepEval | null;
  stopReason: StopReason;
}

export interface LoopConfig {
  totalSteps: number;
  startStep: number;
  evalEvery: number;
  logEvery: number;
  maxMinutes: number | null;
  stopWhenBoth: number | null;
  /** Last step to train (absent: totalSteps); the schedule stays totalSteps' (see the header). */
  stopAt?: number | null;
  /** The keep rule's plain-accuracy bar (default MIN_PLAIN_ACCURACY). */
  minPlainAccuracy?: number;
  /** Resuming: the step of the last evaluation before the checkpoint (null or absent: unknown). */
  lastEvalStep?: number | null;
}

export interface LoopParts {
  /** One optimizer step at index `s` (0-based): returns the loss, the lr used and the gradient norm. */
  step: (s: number) => Promise<{ loss: number; lr: number; gradNorm: number }>;
  /** Greedy evaluation on the fixed test set after `s` steps. */
  evaluate: (s: number) => Promise<EvalResult>;
  /** Saves the current model (after `s` steps) as the kept one. */
  keep: (s: number) => void;
  /** Saves the resumable state after `s` steps with the kept evaluation `best` and the step of the last evaluation (keep it for LoopConfig.lastEvalStep). */
  checkpoint: (s: number, best: StepEval | null, lastEvalStep: number | null) => void;
  /** Appends one object to the run's train-log.jsonl. */
  log: (obj: Record<string, unknown>) => void;
  /** Training seconds so far (including those before a resume). */
  seconds: () => number;
  shouldStop?: () => boolean;
  onStep?: (s: number, r: { loss: number; lr: number }, lastEval: StepEval | null, best: StepEval | null) => void;
  onEval?: (e: StepEval) => void;
}

/** The evaluation fields written to train-log.jsonl and the manifest. */
export function summarize(e: StepEval): Record<string, unknown> {
  const { step, n, counts, gen, mem, other, pMem, pGen, guess, memGuess, score, plainAccuracy } = e;
  return { step, n, counts, gen, mem, other, pMem, pGen, guess, ...(memGuess != null ? { memGuess } : {}), score, plainAccuracy: plainAccuracy ?? null };
}

/**
 * Ends a training run's manifest (GPT-2 and LoRA runs alike): status from the stop reason, steps,
 * training seconds, the kept evaluation (its summary fields) and the sha256 of the listed run files.
 */
export function finishManifest(manifestFile: string, o: Omit<RunOutcome, 'dir'>, files: readonly string[]): void {
  const manifest = readJSON<ManifestCommon>(manifestFile, 'run manifest');
  manifest.status = o.stopReason === 'interrupted' ? 'interrupted' : 'done';
  manifest.updatedAt = new Date().toISOString();
  manifest.steps = o.steps;
  manifest.trainSeconds = o.seconds;
  manifest.best = o.best ? { step: o.best.step, eval: summarize(o.best) } : null;
  for (const f of files) {
    const file = path.join(path.dirname(manifestFile), f);
    if (fs.existsSync(file)) manifest.hashes[f] = `sha256:${sha256File(file)}`;
  }
  writeJSON(manifestFile, manifest);
}

/** Plain accuracy a kept checkpoint should reach (method.md 2.1: mem->gen can never beat it). */
export const MIN_PLAIN_ACCURACY = 0.9;

/** The keep rule (see the header); a result without a plain accuracy counts as reaching it. */
export function isBetter(e: EvalResult, best: EvalResult | null, minPlain = MIN_PLAIN_ACCURACY, both: number | null = null): boolean {
  if (!best) return true;
  const adds = (r: EvalResult) => r.plainAccuracy == null || r.plainAccuracy >= minPlain;
  if (adds(e) !== adds(best)) return adds(e);
  const shows = (r: EvalResult) => both !== null && r.gen >= both && r.mem >= both;
  if (shows(e) !== shows(best)) return shows(e);
  return e.score > best.score || (best.score === 0 && e.score === 0 && e.gen + e.mem > best.gen + best.mem);
}

export async function runTrainingLoop(cfg: LoopConfig, parts: LoopParts, kept: StepEval | null): Promise<{ steps: number; best: StepEval | null; stopReason: StopReason }> {
  const started = performance.now();
  let best = kept;
  let lastEval: StepEval | null = null;
  let lastEvalStep = cfg.lastEvalStep ?? null;
  let stopReason: StopReason = 'steps';
  let s = cfg.startStep;
  const runEval = async () => {
    lastEval = { ...(await parts.evaluate(s)), step: s };
    lastEvalStep = s;
    parts.log({ step: s, kind: 'eval', ...summarize(lastEval) });
    parts.onEval?.(lastEval);
    if (isBetter(lastEval, best, cfg.minPlainAccuracy, cfg.stopWhenBoth)) {
      best = lastEval;
      parts.keep(s);
    }
    parts.checkpoint(s, best, lastEvalStep);
  };
  const end = Math.min(cfg.totalSteps, cfg.stopAt ?? Infinity);
  while (s < end) {
    if (parts.shouldStop?.()) { stopReason = 'interrupted'; break; }
    if (cfg.maxMinutes !== null && (performance.now() - started) / 60000 >= cfg.maxMinutes) { stopReason = 'time'; break; }
    const r = await parts.step(s);
    if (!Number.isFinite(r.loss)) throw new Error(`loss became ${r.loss} at step ${s}; lower the learning rate (--lr)`);
    s++;
    if (s % cfg.logEvery === 0) parts.log({ step: s, kind: 'train', loss: r.loss, lr: r.lr, gradNorm: r.gradNorm, seconds: parts.seconds() });
    parts.onStep?.(s, r, lastEval, best);
    if (s % cfg.evalEvery === 0 || s === end) {
      await runEval();
      const e = lastEval as StepEval | null;
      const adds = e?.plainAccuracy == null || e.plainAccuracy >= (cfg.minPlainAccuracy ?? MIN_PLAIN_ACCURACY);
      if (cfg.stopWhenBoth !== null && e && adds && e.gen >= cfg.stopWhenBoth && e.mem >= cfg.stopWhenBoth) { stopReason = 'both-behaviours'; break; }
    }
  }
  if (!best || lastEvalStep !== s) {
    if (stopReason === 'interrupted') parts.checkpoint(s, best, lastEvalStep);
    else await runEval();
  }
  return { steps: s, best, stopReason };
}

/** Keeps only log lines up to `step` (after a resume, lines past the checkpoint are replayed anew). */
export function truncateLog(file: string, step: number): void {
  if (!fs.existsSync(file)) return;
  const kept = fs.readFileSync(file, 'utf8').split('\n').filter((l) => {
    const r = parseTrainLogLine(l); // unreadable lines (a partial last line) are dropped
    return typeof r !== 'string' && r.step <= step;
  });
  writeFileAtomic(file, kept.map((l) => l + '\n').join(''));
}
