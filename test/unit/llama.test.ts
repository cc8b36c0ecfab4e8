/**
 * LLaMA (engine/models/llama.ts, llama-infer.ts, rope.ts, llama-folder.ts, io/hf-folder.ts): the HF
 * config, llama3 rope scaling, a synthetic LLaMA-3.2-shaped folder (sharded BF16 + index + tokenizer)
 * loaded back bit-exactly and left unmodified, the tokenizer and chat template, the memory refusal,
 * prefill against the training forward, the K/V cache against full recomputation, grouped-query
 * attention against the equivalent multi-head model, steering and hook names.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Graph, ops, type Tensor } from '../../engine/graph';
import { HFFolderError, checkLoadMemory, estimateLoadMemory } from '../../engine/io/hf-folder';
import { LLAMA_SITES, type LlamaSite, llamaSiteName, parseLlamaSiteName } from '../../engine/models/hooks';
import { type LlamaConfig, fromHFLlamaConfig, llamaForward, llamaHead, llamaParamInitializers, llamaParamShapes, llamaTrunk, toHFLlamaConfig } from '../../engine/models/llama';
import { loadLlamaFolder } from '../../engine/models/llama-folder';
import { LlamaInference, buildLlamaInferenceGraph } from '../../engine/models/llama-infer';
import { writeOnnxExternal } from '../../engine/io/onnx-external';
import type { ParamSet } from '../../engine/io/params';
import { writeSyntheticLlamaFolder } from '../../engine/models/llama-synthetic';
import { applyRope, ropeInvFreq, ropeTables } from '../../engine/models/rope';
import { buildLoraTrainGraph } from '../../engine/train/lora-train';
import { Runner } from '../../engine/runtime/runner';
import { addLossAndGradients } from '../../engine/train/step';
import { Rng } from '../../engine/util/rng';
import { gradCheck } from './gradcheck';

const RUNNER = { threads: 1 };

/** meta-llama/Llama-3.2-1B-Instruct's config.json, verbatim. */
const LLAMA32_1B_INSTRUCT = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.45.0.dev0',
  use_cache: true,
  vocab_size: 128256,
};

const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const hashFolder = (dir: string) => Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, sha(path.join(dir, f))]));
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const argmax = (a: ArrayLike<number>) => {
  let b = 0;
  for (let j = 1; j < a.length; j++) if (a[j] > a[b]) b = j;
  return b;
};

describe('LLaMA config', () => {
  it("reads LLaMA-3.2-1B-Instruct's config.json and writes the same fields back", () => {
    const c = fromHFLlamaConfig(LLAMA32_1B_INSTRUCT);
    expect(c).toMatchObject({
      vocabSize: 128256, hiddenSize: 2048, intermediateSize: 8192, numLayers: 16, numHeads: 32, numKVHeads: 8, headDim: 64,
      rmsNormEps: 1e-5, ropeTheta: 500000, maxPositions: 131072, tieWordEmbeddings: true, bosTokenId: 128000, eosTokenIds: [128001, 128008, 128009],
      ropeScaling: { ropeType: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    });
    const back = toHFLlamaConfig(c);
    for (const [k, v] of Object.entries(LLAMA32_1B_INSTRUCT)) if (k !== 'transformers_version') expect(back[k], k).toEqual(v);
    expect(Object.keys(back).sort()).toEqual(Object.keys(LLAMA32_1B_INSTRUCT).sort());
    // 1.24B parameters with tied embeddings (the published size).
    const n = [...llamaParamShapes(c).values()].reduce((s, sh) => s + sh.reduce((p, d) => p * d, 1), 0);
    expect(n).toBe(1_235_814_400);
  });

  it('defaults as HF: num_key_value_heads = heads, head_dim = hidden / heads, no rope scaling, untied', () => {
    const c = fromHFLlamaConfig({ model_type: 'llama', vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 });
    expect(c).toMatchObject({ numKVHeads: 2, headDim: 4, ropeScaling: null, tieWordEmbeddings: false, ropeTheta: 10000, rmsNormEps: 1e-6 });
    expect(llamaParamShapes(c).get('lm_head.weight')).toEqual([10, 8]);
  });

  it('refuses what it does not compute, naming the field', () => {
    const bad = (patch: Record<string, unknown>) => () => fromHFLlamaConfig({ ...LLAMA32_1B_INSTRUCT, ...patch });
    expect(bad({ rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(/rope_scaling type 'yarn'/);
    expect(bad({ attention_bias: true })).toThrow(/attention_bias/);
    expect(bad({ hidden_act: 'gelu' })).toThrow(/hidden_act/);
    expect(bad({ num_key_value_heads: 5 })).toThrow(/not a multiple of num_key_value_heads/);
    expect(bad({ model_type: 'gpt2' })).toThrow(/model_type/);
    expect(bad({ vocab_size: undefined })).toThrow(/'vocab_size' is missing/);
    expect(bad({ rope_scaling: { ...LLAMA32_1B_INSTRUCT.rope_scaling, factor: 'x' } })).toThrow(/rope_scaling.factor/);
  });
});

describe('rotary embeddings', () => {
  it('llama3 scaling: low frequencies divided by the factor, high kept, medium interpolated', () => {
    const s = { ropeType: 'llama3' as const, factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    const plain = ropeInvFreq(16, 500000, null);
    const scaled = ropeInvFreq(16, 500000, s);
    // wavelengths 2 pi / inv: 6.3, 32.5, 168, 873 (< 2048: high, kept); 4520 (medium); 23k.. (> 8192: low)
    for (let j = 0; j < 4; j++) expect(scaled[j]).toBe(plain[j]);
    const wl = (2 * Math.PI) / plain[4];
    expect(wl).toBeGreaterThan(2048);
    expect(wl).toBeLessThan(8192);
    const a = (8192 / wl - 1) / 3;
    expect(scaled[4]).toBeCloseTo((1 - a) * (plain[4] / 32) + a * plain[4], 15);
    for (let j = 5; j < 8; j++) expect(scaled[j]).toBeCloseTo(plain[j] / 32, 18);
    expect(plain[1]).toBeCloseTo(500000 ** (-2 / 16), 12);
  });

  it('rope makes q.k depend on the position difference only', async () => {
    const g = new Graph('rope');
    const inv = ropeInvFreq(8, 10000, null);
    const pos = g.input('pos', [4], 'int64');
    const x = g.input('x', [4, 8]);
    g.output(applyRope(x, ropeTables(pos, inv)), 'y');
    const r = await Runner.fromGraph(g, RUNNER);
    const rng = new Rng(3);
    const q = Float32Array.from({ length: 8 }, () => rng.normal());
    const k = Float32Array.from({ length: 8 }, () => rng.normal());
    const xs = new Float32Array(32);
    xs.set(q, 0);
    xs.set(k, 8);
    xs.set(q, 16);
    xs.set(k, 24);
    const y = (await r.run({ pos: { data: BigInt64Array.from([5n, 2n, 105n, 102n]), dims: [4] }, x: { data: xs, dims: [4, 8] } })).y.data as Float32Array;
    await r.release();
    const dot = (a: number, b: number) => Array.from({ length: 8 }, (_, i) => y[a * 8 + i] * y[b * 8 + i]).reduce((s, v) => s + v, 0);
    expect(Math.abs(dot(0, 1) - dot(2, 3))).toBeLessThan(1e-4);
    expect(Math.abs(dot(0, 1) - q.reduce((s, v, i) => s + v * k[i], 0))).toBeGreaterThan(1e-3); // rope did rotate
  });

  it('gradient of rope(x) by finite differences (float64)', async () => {
    const inv = ropeInvFreq(6, 100, { ropeType: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 });
    const r = await gradCheck([{ shape: [2, 3, 6] }], ([x], g) => applyRope(x, ropeTables(g.constant([1, 4, 9], [3], 'int64'), inv, 'float64')));
    expect(r.checked).toBe(36);
  });
});

describe('hook names', () => {
  it('layers.{i}.{site} round-trips and refuses unknown forms', () => {
    for (const s of LLAMA_SITES) expect(parseLlamaSiteName(llamaSiteName(3, s))).toEqual({ layer: 3, site: s });
    expect(llamaSiteName(0, 'resid_post')).toBe('layers.0.resid_post');
    expect(llamaSiteName(1, 'q_proj.lora')).toBe('layers.1.q_proj.lora');
    expect(() => parseLlamaSiteName('layers.2.resid_post', 2)).toThrow(/layers 0..1/);
    expect(() => parseLlamaSiteName('blocks.0.ln2')).toThrow(/valid names/);
    expect(() => parseLlamaSiteName('layers.0.q_proj.delta')).toThrow(/unknown site/);
  });
});

describe('a synthetic LLaMA-3.2-shaped Hugging Face folder', () => {
  let dir: string;
  let written: ReturnType<typeof writeSyntheticLlamaFolder>;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-llama-'));
    written = writeSyntheticLlamaFolder(path.join(dir, 'base'), { seed: 1, shards: 3, dtype: 'BF16', std: 0.1 });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('has the files of a hub snapshot: 3 BF16 shards, index, config, tokenizer', () => {
    const base = path.join(dir, 'base');
    expect(fs.readdirSync(base).sort()).toEqual([
      'config.json', 'generation_config.json', 'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors',
      'model.safetensors.index.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json',
    ]);
    const cfg = JSON.parse(fs.readFileSync(path.join(base, 'config.json'), 'utf8'));
    expect(Object.keys(cfg).sort()).toEqual(Object.keys(LLAMA32_1B_INSTRUCT).sort());
    expect(cfg.rope_scaling).toEqual(LLAMA32_1B_INSTRUCT.rope_scaling);
    const index = JSON.parse(fs.readFileSync(path.join(base, 'model.safetensors.index.json'), 'utf8'));
    expect(new Set(Object.values(index.weight_map)).size).toBe(3);
    expect(index.weight_map['model.layers.0.self_attn.q_proj.weight']).toMatch(/^model-0000\d-of-00003\.safetensors$/);
  });

  it('loads bit-exactly (BF16 -> float32), with tokenizer, and leaves the folder unmodified', () => {
    const base = path.join(dir, 'base');
    const before = hashFolder(base);
    const m = loadLlamaFolder(base);
    expect(m.config).toEqual(written.config);
    expect([...m.dtypes]).toEqual(['BF16']);
    expect(m.unused).toEqual([]);
    expect([...m.params.keys()].sort()).toEqual([...written.params.keys()].sort());
    for (const [name, p] of written.params) expect(maxAbsDiff(m.params.get(name)!.data, p.data), name).toBe(0);
    expect(hashFolder(base)).toEqual(before);
  });

  it('F16 in one model.safetensors and F32 load too', () => {
    for (const dtype of ['F16', 'F32'] as const) {
      const d = path.join(dir, `one-${dtype}`);
      const w = writeSyntheticLlamaFolder(d, { seed: 2, shards: 1, dtype, std: 0.1 });
      expect(fs.existsSync(path.join(d, 'model.safetensors'))).toBe(true);
      const m = loadLlamaFolder(d, { tokenizer: false });
      expect([...m.dtypes]).toEqual([dtype]);
      for (const [name, p] of w.params) expect(maxAbsDiff(m.params.get(name)!.data, p.data)).toBe(0);
    }
  });

  it('errors name the file and tensor: a shard listed in the index but missing, a wrong shape', () => {
    const d = path.join(dir, 'broken');
    writeSyntheticLlamaFolder(d, { seed: 3, shards: 2 });
    fs.rmSync(path.join(d, 'model-00002-of-00002.safetensors'));
    expect(() => loadLlamaFolder(d)).toThrow(/names model-00002-of-00002.safetensors, which is missing/);
    const d2 = path.join(dir, 'shape');
    writeSyntheticLlamaFolder(d2, { seed: 3, shards: 1 });
    const cfg = JSON.parse(fs.readFileSync(path.join(d2, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(d2, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 128 }));
    expect(() => loadLlamaFolder(d2)).toThrow(/gate_proj.weight' has shape \[160,64\], the config needs \[128,64\]/);
  });

  it('refuses a model that does not fit, with needed vs available and the fixes', () => {
    const base = path.join(dir, 'base');
    expect(() => loadLlamaFolder(base, { availableBytes: 100_000 })).toThrow(/needs about .* GB of memory .* but 0\.00 GB is available\. Fixes: .*GPU.*smaller model.*half precision/);
    // LLaMA-3.2-1B: 1.24e9 parameters = 4.94 GB as float32, past the protobuf limit, so external data (no serialised copy).
    const est = estimateLoadMemory({ parameters: 1_235_814_400, largestFile: 2_471_645_608 }, 8 * 1024 ** 3);
    expect(est.neededBytes).toBe(2 * 4 * 1_235_814_400 + 2_471_645_608);
    expect(() => checkLoadMemory('/m', est)).toThrow(HFFolderError);
    expect(() => checkLoadMemory('/m', est)).toThrow(/needs about 11\.51 GB of memory .* but 8\.00 GB is available/);
    expect(() => checkLoadMemory('/m', { ...est, availableBytes: 16 * 1024 ** 3 })).not.toThrow();
    expect(estimateLoadMemory({ parameters: 1000, largestFile: 10 }, 1).neededBytes).toBe(5 * 4000 + 10); // small: serialised inline too
  });

  it('tokenizer: bos first, byte-level BPE round trip, special tokens as single ids, chat template', () => {
    const { tokenizer: tok, config } = loadLlamaFolder(path.join(dir, 'base'));
    const text = 'The quick brown fox jumps over 12 lazy dogs, naïvely!';
    const ids = tok!.encode(text);
    expect(ids[0]).toBe(config.bosTokenId);
    expect(ids.length).toBeLessThan(new TextEncoder().encode(text).length); // merges applied
    expect(tok!.decode(ids, { skipSpecialTokens: true })).toBe(text);
    const chat = tok!.renderChat([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is 2+2?' }], { extra: { date_string: '26 Jul 2024' } });
    expect(chat).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    const chatIds = tok!.encodeChat([{ role: 'user', content: 'hi' }]);
    expect(chatIds.filter((t) => t === config.bosTokenId)).toHaveLength(1);
    expect(chatIds[0]).toBe(config.bosTokenId);
    expect(chatIds).toContain(tok!.tokenizer.token_to_id('<|eot_id|>'));
    expect(tok!.renderChat([{ role: 'user', content: 'hi' }])).toMatch(/Today Date: \d\d \w\w\w \d{4}/); // strftime_now
  });
});

// ---------------------------------------------------------------- forward, cache, GQA, steering

const tiny = (over: Partial<LlamaConfig> = {}): LlamaConfig => ({
  vocabSize: 23, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKVHeads: 2, headDim: 8, rmsNormEps: 1e-5,
  ropeTheta: 100, ropeScaling: { ropeType: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 },
  maxPositions: 24, tieWordEmbeddings: false, bosTokenId: 0, eosTokenIds: [1], ...over,
});

function randomParams(cfg: LlamaConfig, seed: number): ParamSet {
  const rng = new Rng(seed);
  const p: ParamSet = new Map();
  for (const [name, shape] of llamaParamShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: n }, () => (name.endsWith('norm.weight') ? 1 + 0.2 * rng.normal() : 0.3 * rng.normal()));
    p.set(name, { shape, data });
  }
  return p;
}

/** Logits [T, V] of one sequence with the static training graph; a hook adds `steer` at positions from..to-1 (to: the end). */
async function staticLogits(cfg: LlamaConfig, params: ParamSet, seq: number[], steer?: { site: LlamaSite; vecs: Float32Array[]; from: number; to?: number }): Promise<Float32Array> {
  const g = new Graph('static');
  const w = llamaParamInitializers(g, cfg, params);
  const T = seq.length;
  const ids = g.input('ids', [1, T], 'int64');
  const mask = steer && g.constant(Array.from({ length: T }, (_, t) => (t >= steer.from && t < (steer.to ?? Infinity) ? 1 : 0)), [T, 1], 'bool');
  const hook = (l: number, s: LlamaSite, x: Tensor) => (steer && s === steer.site ? ops.where(mask!, ops.add(x, g.constant(steer.vecs[l], [steer.vecs[l].length])), x) : x);
  g.output(steer ? llamaHead(cfg, w, llamaTrunk(cfg, w, ids, ops.range(g, T), { hook }).h) : llamaForward(cfg, w, ids), 'logits');
  const r = await Runner.fromGraph(g, RUNNER);
  const out = (await r.run({ ids: { data: BigInt64Array.from(seq, BigInt), dims: [1, T] } })).logits.data as Float32Array;
  await r.release();
  return out;
}

describe('LLaMA inference', () => {
  const cfg = tiny();
  const params = randomParams(cfg, 11);
  let inf: LlamaInference;
  beforeAll(async () => {
    inf = await LlamaInference.create(cfg, params, { runner: RUNNER, batchSize: 3, readSites: ['mlp_in', 'q_proj.base', 'v_proj.base'] });
  });
  afterAll(async () => inf.release());

  it('prefill logits equal the static training forward at every prompt length', async () => {
    const rng = new Rng(4);
    for (const T of [1, 2, 5, 9]) {
      const seq = Array.from({ length: T }, () => rng.int(0, cfg.vocabSize - 1));
      const full = await staticLogits(cfg, params, seq);
      const ours = await inf.forward(seq);
      expect(maxAbsDiff(ours.logits, full.subarray((T - 1) * cfg.vocabSize))).toBeLessThan(1e-5);
      expect(ours.sites['layers.1.q_proj.base']).toHaveLength(cfg.numHeads * cfg.headDim);
      expect(ours.sites['layers.0.v_proj.base']).toHaveLength(cfg.numKVHeads * cfg.headDim);
      expect(ours.sites['layers.1.resid_post']).toHaveLength(cfg.hiddenSize);
    }
  });

  it('K/V-cache greedy generation equals recomputing the full sequence at every step; batching changes nothing', async () => {
    const rng = new Rng(8);
    const prompts = [[3, 4, 5], [7, 8, 9], [2], Array.from({ length: 6 }, () => rng.int(2, 22)), [10, 11, 12]];
    const maxNew = 8;
    const gen = await inf.generate(prompts, { maxNewTokens: maxNew, eosIds: [] });
    expect(new Set(gen.tokens.flat()).size).toBeGreaterThan(4); // the model is not degenerate
    for (let i = 0; i < prompts.length; i++) {
      const seq = [...prompts[i]];
      const want: number[] = [];
      for (let k = 0; k < maxNew; k++) {
        const logits = await staticLogits(cfg, params, seq);
        const tok = argmax(logits.subarray((seq.length - 1) * cfg.vocabSize));
        want.push(tok);
        seq.push(tok);
      }
      expect(gen.tokens[i], `prompt ${i}`).toEqual(want);
    }
    const one = await inf.generate([prompts[3]], { maxNewTokens: maxNew, eosIds: [] });
    expect(one.tokens[0]).toEqual(gen.tokens[3]);
    expect(maxAbsDiff(one.hidden, gen.hidden.subarray(3 * cfg.numLayers * cfg.hiddenSize, 4 * cfg.numLayers * cfg.hiddenSize))).toBeLessThan(1e-5);
  });

  it('stops at an eos id (not returned) and at max_position_embeddings', async () => {
    const free = await inf.generate([[3, 4]], { maxNewTokens: 5, eosIds: [] });
    const eos = free.tokens[0][2];
    const stopped = await inf.generate([[3, 4]], { maxNewTokens: 5, eosIds: [eos] });
    expect(stopped.tokens[0]).toEqual(free.tokens[0].slice(0, free.tokens[0].indexOf(eos)));
    expect(stopped.stoppedAtEos[0]).toBe(true);
    expect((await inf.generate([[3, 4]], { maxNewTokens: 5, eosId: eos })).tokens).toEqual(stopped.tokens); // GPT-2's option name
    const long = await inf.generate([Array.from({ length: 20 }, (_, i) => 2 + (i % 20))], { maxNewTokens: 50, eosIds: [] });
    expect(long.tokens[0]).toHaveLength(cfg.maxPositions - 20 + 1);
  });

  it('steering at resid_post adds the vector at the last prompt position and every generated one', async () => {
    const rng = new Rng(12);
    const vecs = [new Float32Array(cfg.hiddenSize), Float32Array.from({ length: cfg.hiddenSize }, () => 2 * rng.normal())];
    const prompt = [5, 6, 7, 8];
    const ours = await inf.generate([prompt], { maxNewTokens: 4, eosIds: [], steer: vecs });
    const plain = await inf.forward(prompt);
    const steered = await inf.forward(prompt, vecs);
    expect(maxAbsDiff(steered.sites['layers.1.resid_post'], plain.sites['layers.1.resid_post'].map((v, j) => v + vecs[1][j]))).toBeLessThan(1e-5);
    expect(maxAbsDiff(steered.logits, plain.logits)).toBeGreaterThan(1e-2);
    // Reference: recompute everything, steering positions >= the last prompt position.
    const seq = [...prompt];
    for (let k = 0; k < 4; k++) {
      const logits = await staticLogits(cfg, params, seq, { site: 'resid_post', vecs, from: prompt.length - 1 });
      seq.push(argmax(logits.subarray((seq.length - 1) * cfg.vocabSize)));
    }
    expect(ours.tokens[0]).toEqual(seq.slice(prompt.length));
    await expect(inf.generate([prompt], { maxNewTokens: 1, steer: [vecs[0]] })).rejects.toThrow(/2 layers/);
    // steerAt 'prompt': the last prompt position alone (larger vectors, so that the decode steps' steering shows).
    const big = vecs.map((v) => v.map((x) => 4 * x));
    const atAll = await inf.generate([prompt], { maxNewTokens: 4, eosIds: [], steer: big });
    const atPrompt = await inf.generate([prompt], { maxNewTokens: 4, eosIds: [], steer: big, steerAt: 'prompt' });
    const seq2 = [...prompt];
    for (let k = 0; k < 4; k++) {
      const logits = await staticLogits(cfg, params, seq2, { site: 'resid_post', vecs: big, from: prompt.length - 1, to: prompt.length });
      seq2.push(argmax(logits.subarray((seq2.length - 1) * cfg.vocabSize)));
    }
    expect(atPrompt.tokens[0]).toEqual(seq2.slice(prompt.length));
    expect(atPrompt.firstLogits).toEqual(atAll.firstLogits);
    expect(atPrompt.tokens[0]).not.toEqual(atAll.tokens[0]);
  });

  it('grouped-query attention equals multi-head attention with each key/value head repeated', async () => {
    const mha = tiny({ numKVHeads: cfg.numHeads });
    const rep = cfg.numHeads / cfg.numKVHeads;
    const hd = cfg.headDim;
    const p2: ParamSet = new Map(params);
    for (let l = 0; l < cfg.numLayers; l++) {
      for (const proj of ['k_proj', 'v_proj']) {
        const name = `model.layers.${l}.self_attn.${proj}.weight`;
        const src = params.get(name)!.data; // [KVH hd, d]
        const dst = new Float32Array(cfg.numHeads * hd * cfg.hiddenSize);
        for (let h = 0; h < cfg.numHeads; h++) dst.set(src.subarray(Math.floor(h / rep) * hd * cfg.hiddenSize, (Math.floor(h / rep) + 1) * hd * cfg.hiddenSize), h * hd * cfg.hiddenSize);
        p2.set(name, { shape: [cfg.numHeads * hd, cfg.hiddenSize], data: dst });
      }
    }
    const seq = [4, 9, 2, 17, 3, 8];
    expect(maxAbsDiff(await staticLogits(mha, p2, seq), await staticLogits(cfg, params, seq))).toBeLessThan(1e-5);
  });

  it('through ONNX external data (the path for models over 2 GB) the outputs are identical', async () => {
    const g = buildLlamaInferenceGraph(cfg, params);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-ext-'));
    try {
      const w = writeOnnxExternal(g, dir);
      const weightBytes = [...params.values()].reduce((s, p) => s + 4 * p.data.length, 0);
      expect(w.external).toBe(params.size - 2 * cfg.numLayers - 1); // every matrix; the [d] norm weights (128 bytes) stay inline
      expect(w.dataBytes).toBeGreaterThanOrEqual(weightBytes - (2 * cfg.numLayers + 1) * 4 * cfg.hiddenSize);
      expect(w.modelBytes).toBeLessThan(g.toOnnx().byteLength - 0.9 * weightBytes); // the weights left the protobuf
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
    const ext = await LlamaInference.create(cfg, params, { runner: RUNNER, externalData: true, readSites: ['mlp_in'] });
    try {
      const prompt = [4, 8, 15, 16, 23 % cfg.vocabSize, 2];
      const a = await ext.forward(prompt);
      const b = await inf.forward(prompt);
      expect(maxAbsDiff(a.logits, b.logits)).toBe(0);
      expect(maxAbsDiff(a.sites['layers.1.mlp_in'], b.sites['layers.1.mlp_in'])).toBe(0);
      expect((await ext.generate([prompt], { maxNewTokens: 5, eosIds: [] })).tokens).toEqual((await inf.generate([prompt], { maxNewTokens: 5, eosIds: [] })).tokens);
    } finally {
      await ext.release();
    }
  });

  it('tied embeddings use embed_tokens as the head; llama3 scaling changes the logits', async () => {
    const tied = tiny({ tieWordEmbeddings: true });
    const pt = randomParams(tied, 5);
    const pu: ParamSet = new Map(pt);
    pu.set('lm_head.weight', pt.get('model.embed_tokens.weight')!);
    const seq = [1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22];
    expect(maxAbsDiff(await staticLogits(tied, pt, seq), await staticLogits(tiny(), pu, seq))).toBe(0);
    expect(maxAbsDiff(await staticLogits(tiny({ ropeScaling: null }), pu, seq), await staticLogits(tiny(), pu, seq))).toBeGreaterThan(1e-3);
  });

  it('documents packed in a row with segment ids: each computes what it computes alone; without them the later one reads the earlier', async () => {
    const cfg = tiny();
    const params = randomParams(cfg, 8);
    const a = [1, 5, 9, 13, 17], b = [2, 6, 10, 14, 18, 22, 3];
    const T = a.length + b.length + 2; // two padding positions, a segment of their own
    const g = new Graph('packed');
    const w = llamaParamInitializers(g, cfg, params);
    const ids = g.input('ids', [1, T], 'int64');
    const segments = g.input('segments', [1, T], 'int64');
    g.output(llamaForward(cfg, w, ids), 'mixed');
    g.output(llamaHead(cfg, w, llamaTrunk(cfg, w, ids, ops.range(g, T), { segments }).h), 'isolated');
    const r = await Runner.fromGraph(g, RUNNER);
    const out = await r.run({ ids: { data: BigInt64Array.from([...a, ...b, 0, 0], BigInt), dims: [1, T] }, segments: { data: BigInt64Array.from([...a.map(() => 0), ...b.map(() => 1), -1, -1], BigInt), dims: [1, T] } });
    await r.release();
    const V = cfg.vocabSize;
    const [isolated, mixed] = [out.isolated.data, out.mixed.data] as Float32Array[];
    expect(maxAbsDiff(isolated.slice(0, a.length * V), await staticLogits(cfg, params, a))).toBeLessThan(1e-4);
    expect(maxAbsDiff(isolated.slice(a.length * V, (a.length + b.length) * V), await staticLogits(cfg, params, b))).toBeLessThan(1e-4); // rotary: the shift to position 5 changes nothing
    expect(maxAbsDiff(mixed.slice(a.length * V, (a.length + b.length) * V), await staticLogits(cfg, params, b))).toBeGreaterThan(1e-2);
  });
});

// ---------------------------------------------------------------- ONNX validity (optional: python3-onnx)

const PY = '/usr/bin/python3';
const hasOnnx = fs.existsSync(PY) && spawnSync(PY, ['-c', 'import onnx'], { stdio: 'ignore', timeout: 60_000 }).status === 0;

describe.skipIf(!hasOnnx)('LLaMA ONNX files pass the onnx checker (full shape inference)', () => {
  const check = (file: string) => {
    const py = spawnSync(PY, ['-c', `import onnx, sys
onnx.checker.check_model(sys.argv[1], full_check=True)
m = onnx.load(sys.argv[1], load_external_data=False)
print('ok', m.ir_version, m.opset_import[0].version, sum(1 for t in m.graph.initializer if t.data_location == 1))`, file], { encoding: 'utf8', timeout: 120_000 });
    if (py.status !== 0) throw new Error(py.stderr);
    return py.stdout;
  };

  it('the LoRA training graph (forward + adapter gradients) and the external-data inference model', () => {
    const cfg = tiny();
    const params = randomParams(cfg, 3);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-llama-onnx-'));
    try {
      const lc = { r: 2, alpha: 4, dropout: 0.1, targetModules: ['q_proj', 'v_proj'] as ('q_proj' | 'v_proj')[], seed: 0, useRslora: false, layers: null };
      const { graph, loss } = buildLoraTrainGraph(cfg, params, lc, { batch: 2, seq: 5 });
      addLossAndGradients(graph, loss);
      fs.writeFileSync(path.join(dir, 'train.onnx'), graph.toOnnx());
      expect(check(path.join(dir, 'train.onnx'))).toMatch(/^ok 8 17 0/);
      const w = writeOnnxExternal(buildLlamaInferenceGraph(cfg, params, { readSites: ['q_proj.base'] }), path.join(dir, 'ext'));
      expect(check(w.modelPath)).toBe(`ok 8 17 ${w.external}\n`);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });
});
