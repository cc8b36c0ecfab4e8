/**
 * The engine's demo: a one-block GPT-2 (engine/models/gpt2.ts) trained from scratch on the copy task
 * (engine/tasks/copy.ts) with the engine's own forward + backward graph and JS Adam.
 * Used by `memgen demo`, the end-to-end test and the benchmark.
 */
import { Graph, ops } from '../graph';
import { countParams, type ParamSet } from '../io/params';
import { type GPT2Config, gpt2Forward, gpt2ParamInputs, initGPT2 } from '../models/gpt2';
import type { RunnerOptions } from '../runtime/runner';
import { COPY_VOCAB, copyBatch } from '../tasks/copy';
import { Adam } from '../train/optim';
import { TrainStep } from '../train/step';
import { Rng } from '../util/rng';

export interface CopyDemoOptions {
  steps: number;
  batch: number;
  digits: number;
  lr: number;
  warmup: number;
  seed: number;
  nEmbd: number;
  nHead: number;
  runner?: RunnerOptions;
  onStep?: (step: number, loss: number) => void;
  shouldStop?: () => boolean;
}

export const COPY_DEMO_DEFAULTS: CopyDemoOptions = { steps: 300, batch: 32, digits: 8, lr: 3e-3, warmup: 20, seed: 1, nEmbd: 64, nHead: 4 };

export function copyDemoConfig(o: CopyDemoOptions): GPT2Config {
  return { vocabSize: COPY_VOCAB, nPositions: 2 * o.digits, nEmbd: o.nEmbd, nLayer: 1, nHead: o.nHead, layerNormEps: 1e-5 };
}

export async function buildCopyTrainStep(o: CopyDemoOptions): Promise<TrainStep> {
  const cfg = copyDemoConfig(o);
  const g = new Graph('gpt2_copy_train');
  const T = 2 * o.digits;
  const ids = g.input('ids', [o.batch, T], 'int64');
  const targets = g.input('targets', [o.batch, T], 'int64');
  const logits = gpt2Forward(cfg, gpt2ParamInputs(g, cfg), ids);
  return TrainStep.compile(g, ops.crossEntropy(logits, targets), o.runner);
}

export interface CopyDemoResult {
  losses: number[];
  params: ParamSet;
  paramCount: number;
  seconds: number;
  tokensPerSecond: number;
}

export async function runCopyDemo(partial: Partial<CopyDemoOptions> = {}): Promise<CopyDemoResult> {
  const o = { ...COPY_DEMO_DEFAULTS, ...partial };
  const rng = new Rng(o.seed);
  const params = initGPT2(copyDemoConfig(o), rng);
  const step = await buildCopyTrainStep(o);
  const adam = new Adam(params, { lr: o.lr });
  const losses: number[] = [];
  const t0 = performance.now();
  try {
    for (let s = 0; s < o.steps && !o.shouldStop?.(); s++) {
      const batch = copyBatch(rng, o.batch, o.digits);
      const { loss, grads } = await step.run(params, batch);
      adam.clipAndStep(params, grads, o.lr * Math.min(1, (s + 1) / o.warmup), 1.0);
      losses.push(loss);
      o.onStep?.(s, loss);
    }
  } finally {
    await step.release();
  }
  const seconds = (performance.now() - t0) / 1000;
  return { losses, params, paramCount: countParams(params), seconds, tokensPerSecond: (losses.length * o.batch * 2 * o.digits) / seconds };
}
