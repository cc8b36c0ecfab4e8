/** A GPT-2 training small enough for a unit test (one layer, d 32, 12 steps of batch 8): shared by the trainer tests. */
import { makeTask } from '../../engine/tasks';
import { defaultTrainConfig, type TrainConfig } from '../../engine/train/presets';

export function tinyConfig(out: string, over: Partial<TrainConfig> = {}): TrainConfig {
  const task = makeTask('arithmetic', { scale: 'tiny', seed: 5 });
  return {
    ...defaultTrainConfig('arithmetic', 'tiny', task.maxSeqLen - 1),
    model: { nEmbd: 32, nLayer: 1, nHead: 2, layerNormEps: 1e-5 },
    seed: 5, out, command: 'test', steps: 12, batch: 8, warmup: 4, evalEvery: 6, evalN: 16, evalBatch: 16, logEvery: 2, threads: 1,
    ...over,
  };
}
