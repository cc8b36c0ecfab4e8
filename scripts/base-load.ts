/** A finished stand-in base, or a pretraining's last checkpoint (BASE.partial), for the diagnosis scripts. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type HFTokenizer, loadHFTokenizer } from '../engine/io/hf-folder';
import type { ParamSet } from '../engine/io/params';
import { type LlamaConfig, initLlama } from '../engine/models/llama';
import { loadLlamaFolder } from '../engine/models/llama-folder';
import { loadTrainState } from '../engine/train/checkpoint';
import { pretrainModelConfig } from '../engine/train/llama-pretrain';
import { Adam } from '../engine/train/optim';
import { Rng } from '../engine/util/rng';

export function loadBaseOrCheckpoint(dir: string): { tok: HFTokenizer; cfg: LlamaConfig; params: ParamSet; step: string } {
  const tok = loadHFTokenizer(dir);
  if (fs.existsSync(path.join(dir, 'pretrain.json'))) {
    const saved = JSON.parse(fs.readFileSync(path.join(dir, 'pretrain.json'), 'utf8'));
    const cfg = pretrainModelConfig(saved.preset, saved.vocabSize, saved.ids);
    const params = initLlama(cfg, new Rng(0));
    const step = String(loadTrainState<{ step: number; adamT: number }>(path.join(dir, 'checkpoints', 'last'), params, new Adam(params)).step);
    return { tok, cfg, params, step };
  }
  const m = loadLlamaFolder(dir);
  return { tok, cfg: m.config, params: m.params, step: 'final' };
}
