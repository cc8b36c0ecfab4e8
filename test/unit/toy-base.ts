/**
 * Test helpers for LoRA runs: a toy stand-in base (2 layers x 32, pretrained for a few steps) and the
 * sha256 of every file of a folder (to check that a base is never modified).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sha256File } from '../../engine/runs/run';
import { type PretrainConfig, defaultPretrainConfig, pretrain } from '../../engine/train/llama-pretrain';

export const hashFolder = (dir: string): Record<string, string> =>
  Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, sha256File(path.join(dir, f))]));

export async function pretrainToyBase(dir: string, steps: number, over: Partial<PretrainConfig> = {}): Promise<void> {
  await pretrain({
    ...defaultPretrainConfig('tiny', dir), model: { hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2, numKVHeads: 1, headDim: 16 },
    steps, batch: 8, seq: 32, warmup: 5, evalPerFamily: 0, runner: { threads: 1 }, ...over,
  });
}
