/**
 * A synthetic pretrained LLaMA folder, shaped like meta-llama/Llama-3.2-1B-Instruct on disk but tiny:
 * config.json with every field of LLaMA-3.2's (llama3 rope_scaling, rope_theta 500000, grouped-query
 * attention, tied embeddings), seeded random weights in BF16 (or F16/F32) split into sharded
 * model-0000N-of-0000M.safetensors files with model.safetensors.index.json, a byte-level BPE
 * tokenizer.json (LLaMA-3's pre-tokenizer regex, special tokens <|begin_of_text|> ... <|eot_id|>)
 * and tokenizer_config.json with a LLaMA-3.2-style chat template. For tests and demos: nothing is
 * downloaded, and the loaders meet the same files a user's snapshot has.
 *
 *   weights: N(0, std) for every matrix (seeded Rng), norm weights 1 + normJitter * N(0, 1)
 *   BPE: 256 byte symbols (GPT-2's bytes_to_unicode), then `merges` merges learned greedily on a
 *        fixed corpus (most frequent adjacent pair first, ties to the first pair met; tasks/bpe.ts)
 *   shards: tensors in llamaParamShapes order, cut into `shards` files of nearly equal byte size
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import type { ParamSet } from '../io/params';
import { type TensorToWrite, float32ToBF16, float32ToF16, writeSafeTensorsFile } from '../io/safetensors';
import { byteLevelBpeTokenizer, bytesToUnicode, learnByteLevelMerges, llama3SplitRegex } from '../tasks/bpe';
import { Rng } from '../util/rng';
import { type LlamaConfig, initLlama, toHFLlamaConfig } from './llama';

export const LLAMA3_SPECIAL_TOKENS = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eom_id|>', '<|eot_id|>'] as const;

/** LLaMA-3's pre-tokenizer split pattern (tokenizer.json of Llama-3.x). */
const LLAMA3_SPLIT_REGEX = llama3SplitRegex(3).onig;

/** A LLaMA-3.2-style chat template (system header with dates, one header per message, generation prompt). */
export const LLAMA32_CHAT_TEMPLATE = `{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = strftime_now("%d %b %Y") %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
`;

const CORPUS = [
  'The quick brown fox jumps over the lazy dog.',
  'the cat sat on the mat, and the dog sat on the log.',
  '12 + 34 + 56 + 78 = 180. 1 + 2 = 3. the answer is the sum.',
  'Alice is a doctor. Bob is a teacher. What colour is the sky? The sky is blue.',
  'memorization and generalization: the model remembers or the model reasons.',
].join(' ');

/** The synthetic folder's merges: words split at spaces ('Ġ' = space prefix), each occurrence counted. */
function learnMerges(text: string, count: number): { vocab: string[]; merges: [string, string][] } {
  const b2u = bytesToUnicode();
  return learnByteLevelMerges(text.split(/(?= )/).map((w) => ({ sym: [...new TextEncoder().encode(w)].map((b) => b2u[b]), n: 1 })), count);
}

/** tokenizer.json and tokenizer_config.json of a tiny LLaMA-3-style byte-level BPE tokenizer. */
export function llama3TokenizerFiles(merges = 48): { tokenizer: Record<string, unknown>; tokenizerConfig: Record<string, unknown>; vocabSize: number; ids: Record<string, number> } {
  const bos = LLAMA3_SPECIAL_TOKENS[0];
  const { tokenizer, addedDecoder, ids, vocabSize } = byteLevelBpeTokenizer(learnMerges(CORPUS, merges), LLAMA3_SPECIAL_TOKENS, LLAMA3_SPLIT_REGEX, bos);
  const tokenizerConfig = {
    added_tokens_decoder: addedDecoder,
    bos_token: bos,
    chat_template: LLAMA32_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: true,
    eos_token: '<|eot_id|>',
    model_input_names: ['input_ids', 'attention_mask'],
    model_max_length: 131072,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return { tokenizer, tokenizerConfig, vocabSize, ids };
}

export interface SyntheticLlamaOptions {
  seed?: number;
  shards?: number;
  dtype?: 'BF16' | 'F16' | 'F32';
  std?: number;
  normJitter?: number;
  /** Overrides of the tiny LLaMA-3.2 shape (hidden 64, 2 layers, 4 heads, 2 KV heads, head_dim 16). */
  config?: Partial<Omit<LlamaConfig, 'vocabSize'>>;
}

/** The tiny LLaMA-3.2-shaped config (vocabulary from the synthetic tokenizer). */
export function syntheticLlamaConfig(overrides: SyntheticLlamaOptions['config'] = {}): LlamaConfig {
  const tok = llama3TokenizerFiles();
  return {
    vocabSize: tok.vocabSize,
    hiddenSize: 64,
    intermediateSize: 160,
    numLayers: 2,
    numHeads: 4,
    numKVHeads: 2,
    headDim: 16,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: { ropeType: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    maxPositions: 131072,
    tieWordEmbeddings: true,
    bosTokenId: tok.ids['<|begin_of_text|>'],
    eosTokenIds: [tok.ids['<|end_of_text|>'], tok.ids['<|eom_id|>'], tok.ids['<|eot_id|>']],
    ...overrides,
  };
}

/** The value a float32 takes after storing it in `dtype` and reading it back. */
function roundTrip(data: Float32Array, dtype: 'BF16' | 'F16' | 'F32'): Float32Array {
  if (dtype === 'F32') return data;
  if (dtype === 'BF16') {
    const bits = float32ToBF16(data);
    const out = new Float32Array(data.length);
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
    return out;
  }
  const h = float32ToF16(data);
  const out = new Float32Array(data.length);
  for (let i = 0; i < h.length; i++) {
    const e = (h[i] >> 10) & 0x1f;
    const m = h[i] & 0x3ff;
    const s = h[i] & 0x8000 ? -1 : 1;
    out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1024 + m) * 2 ** (e - 25);
  }
  return out;
}

/**
 * Writes the folder (created; must not exist or be empty). Returns the config and the weights as
 * stored (rounded to the dtype), which a loader must reproduce exactly.
 */
export function writeSyntheticLlamaFolder(dir: string, opts: SyntheticLlamaOptions = {}): { config: LlamaConfig; params: ParamSet; files: string[] } {
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) throw new Error(`${dir} exists and is not empty`);
  const dtype = opts.dtype ?? 'BF16';
  const shards = opts.shards ?? 2;
  const cfg = syntheticLlamaConfig(opts.config);
  const rng = new Rng(opts.seed ?? 0);
  const params = initLlama(cfg, rng, opts.std ?? 0.02);
  const jitter = opts.normJitter ?? 0;
  for (const [name, p] of params) {
    if (jitter && name.endsWith('norm.weight')) for (let i = 0; i < p.data.length; i++) p.data[i] += jitter * rng.normal();
    p.data = roundTrip(p.data, dtype);
  }
  const tok = llama3TokenizerFiles();
  fs.mkdirSync(dir, { recursive: true });
  const hfConfig = toHFLlamaConfig(cfg, dtype === 'BF16' ? 'bfloat16' : dtype === 'F16' ? 'float16' : 'float32');
  writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(hfConfig, null, 2) + '\n');
  writeFileAtomic(path.join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: cfg.bosTokenId, eos_token_id: cfg.eosTokenIds, do_sample: false }, null, 2) + '\n');
  writeFileAtomic(path.join(dir, 'tokenizer.json'), JSON.stringify(tok.tokenizer));
  writeFileAtomic(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tok.tokenizerConfig, null, 2) + '\n');
  writeFileAtomic(path.join(dir, 'special_tokens_map.json'), JSON.stringify({ bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' }, null, 2) + '\n');

  const entries = [...params];
  const bytesPer = dtype === 'F32' ? 4 : 2;
  const total = entries.reduce((s, [, p]) => s + p.data.length * bytesPer, 0);
  const files: string[] = [];
  const name = (k: number) => (shards === 1 ? 'model.safetensors' : `model-${String(k + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`);
  const weightMap: Record<string, string> = {};
  let k = 0;
  let acc = 0;
  let cur = new Map<string, TensorToWrite>();
  const flush = () => {
    writeSafeTensorsFile(path.join(dir, name(k)), cur, { format: 'pt' });
    files.push(name(k));
    cur = new Map();
    k++;
  };
  for (const [n, p] of entries) {
    if (shards > 1 && cur.size > 0 && k < shards - 1 && acc >= ((k + 1) * total) / shards) flush();
    cur.set(n, { dtype, shape: p.shape, data: p.data });
    weightMap[n] = name(k);
    acc += p.data.length * bytesPer;
  }
  flush();
  if (files.length !== shards) throw new Error(`synthetic folder: wrote ${files.length} shards, asked for ${shards} (too few tensors?)`);
  if (shards > 1) writeFileAtomic(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
  return { config: cfg, params, files };
}
