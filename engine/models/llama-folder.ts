/**
 * Loads a pretrained LLaMA from a local Hugging Face folder (io/hf-folder.ts): config.json as a
 * LlamaConfig, the base weights as float32 under their HF names, the tokenizer and chat template.
 * Memory is estimated from the safetensors headers before any weight is read; a model that would not
 * fit is refused with needed vs available and the fixes. The folder is only read.
 */
import { type HFTokenizer, checkLoadMemory, estimateLoadMemory, type MemoryEstimate, indexWeights, loadHFTokenizer, readHFConfig, readHFWeights } from '../io/hf-folder';
import type { ParamSet } from '../io/params';
import type { SafeDType } from '../io/safetensors';
import { type LlamaConfig, fromHFLlamaConfig, llamaParamShapes } from './llama';

export interface LlamaFolder {
  dir: string;
  config: LlamaConfig;
  params: ParamSet;
  /** Dtypes the weights were stored in (converted to float32). */
  dtypes: Set<SafeDType>;
  /** Tensors of the folder the model does not use (e.g. rotary_emb.inv_freq of old exports). */
  unused: string[];
  tokenizer: HFTokenizer | null;
  memory: MemoryEstimate;
}

export function loadLlamaFolder(dir: string, opts: { availableBytes?: number; tokenizer?: boolean } = {}): LlamaFolder {
  const raw = readHFConfig(dir);
  let config: LlamaConfig;
  try {
    config = fromHFLlamaConfig(raw);
  } catch (e) {
    throw new Error(`${dir}/config.json: ${(e as Error).message}`);
  }
  const index = indexWeights(dir);
  const memory = estimateLoadMemory(index, opts.availableBytes);
  checkLoadMemory(dir, memory);
  const { params, unused, dtypes } = readHFWeights(dir, llamaParamShapes(config), { index });
  const tokenizer = opts.tokenizer === false ? null : loadHFTokenizer(dir);
  return { dir, config, params, dtypes, unused, tokenizer, memory };
}
