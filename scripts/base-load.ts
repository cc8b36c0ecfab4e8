/** A finished stand-in base, or a pretraining's last checkpoint (BASE.partial), for the diagnosis scripts. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type HFTokenizer, loadHFTokenizer } from '../engine/io/hf-folder';
import type { ParamSet } from '../engine/io/params';
import { type LlamaConfig, initLlama } from '../engine/models/llama';
import { loadLlamaFolder } from '../engine/models/llama-folder';
import { loadTrainState } from '../engine/train/checkpoint';
import { BOS_TOKEN, EOT_TOKEN } from '../engine/tasks/corpus';
import { greedyAnswers, pretrainModelConfig } from '../engine/train/llama-pretrain';
import { Adam } from '../engine/train/optim';
import { Rng } from '../engine/util/rng';

export interface LoadedBase {
  tok: HFTokenizer;
  cfg: LlamaConfig;
  params: ParamSet;
  step: string;
  /** Greedy continuations of plain prompts (bos + prompt, up to eot), decoded and trimmed. */
  greedy: (prompts: readonly string[], maxNewTokens: number) => Promise<string[]>;
}

export function loadBaseOrCheckpoint(dir: string): LoadedBase {
  const tok = loadHFTokenizer(dir);
  const [bos] = tok.encode(BOS_TOKEN, { addSpecialTokens: false }), [eot] = tok.encode(EOT_TOKEN, { addSpecialTokens: false });
  const loaded = (cfg: LlamaConfig, params: ParamSet, step: string): LoadedBase => ({
    tok, cfg, params, step, greedy: (prompts, maxNewTokens) => greedyAnswers(cfg, params, tok, { bos, eot }, prompts, maxNewTokens),
  });
  if (fs.existsSync(path.join(dir, 'pretrain.json'))) {
    const saved = JSON.parse(fs.readFileSync(path.join(dir, 'pretrain.json'), 'utf8'));
    const cfg = pretrainModelConfig(saved.preset, saved.vocabSize, saved.ids);
    const params = initLlama(cfg, new Rng(0));
    const step = String(loadTrainState<{ step: number; adamT: number }>(path.join(dir, 'checkpoints', 'last'), params, new Adam(params)).step);
    return loaded(cfg, params, step);
  }
  const m = loadLlamaFolder(dir);
  return loaded(m.config, m.params, 'final');
}
