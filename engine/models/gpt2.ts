/**
 * GPT-2 (Radford et al. 2019) as an engine graph, with Hugging Face GPT2LMHeadModel tensor names so
 * a saved run loads in transformers unchanged. One set of block functions serves training
 * (gpt2Forward, static shapes) and inference (gpt2-infer.ts: symbolic batch/sequence, a K/V cache,
 * steering through the site hooks of hooks.ts).
 *
 *   h_0     = wte[ids] + wpe[positions]
 *   block i: a = h + attn(ln_1(h));  h' = a + mlp(ln_2(a))          (pre-LN)
 *            sites: resid_pre = h, ln2 = ln_2(a), resid_post = h'   (hooks.ts)
 *   attn    = c_proj(softmax(causal(q k^T / sqrt(hd))) v), [q k v] = c_attn(x), heads split;
 *             with a cache, k and v are the past keys/values followed by the new ones
 *   mlp     = c_proj(gelu_tanh(c_fc(x)))
 *   logits  = ln_f(h_L) @ wte^T                                       (tied embeddings)
 * Conv1D weights are stored as HF does, [in, out], so x @ W + b needs no transpose.
 * Initialisation (GPT-2 / nanoGPT): weights N(0, 0.02), residual projections (attn.c_proj, mlp.c_proj)
 * N(0, 0.02 / sqrt(2 n_layer)), biases 0, LayerNorm weight 1 and bias 0.
 */
import { type Graph, type Tensor, ops } from '../graph';
import { causalMaskAny } from '../graph/ops/extra';
import type { ParamSet } from '../io/params';
import type { Rng } from '../util/rng';
import type { GPT2Site } from './hooks';

export interface GPT2Config {
  vocabSize: number;
  /** Longest sequence (learned positions). */
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  layerNormEps: number;
}

/**
 * Model sizes. gpt2 and gpt2-medium are OpenAI's 124M and 355M shapes (the paper's models); small
 * and tiny are for training from scratch on a 2-core CPU (the paper's tasks have small vocabularies,
 * so the size is in the blocks). Head size is d / heads: 64 for gpt2 and gpt2-medium, 32 for small and tiny.
 */
export const GPT2_PRESETS: Record<'tiny' | 'small' | 'gpt2' | 'gpt2-medium', Omit<GPT2Config, 'vocabSize' | 'nPositions'>> = {
  tiny: { nLayer: 4, nEmbd: 128, nHead: 4, layerNormEps: 1e-5 },
  small: { nLayer: 6, nEmbd: 256, nHead: 8, layerNormEps: 1e-5 },
  gpt2: { nLayer: 12, nEmbd: 768, nHead: 12, layerNormEps: 1e-5 },
  'gpt2-medium': { nLayer: 24, nEmbd: 1024, nHead: 16, layerNormEps: 1e-5 },
};

/**
 * The most layers a config may name (GPT-2 XL has 48). A config is untrusted input: its tensor list
 * (gpt2ParamShapes, 12 tensors a layer) is built before the model file is read, so a config.json
 * saying n_layer 1e9 would otherwise hang the reader.
 */
export const MAX_GPT2_LAYERS = 4096;

/** Throws, naming the field, when a config cannot describe a GPT-2. */
export function checkGPT2Config(cfg: GPT2Config): void {
  for (const k of ['vocabSize', 'nPositions', 'nEmbd', 'nLayer', 'nHead'] as const) {
    if (!Number.isSafeInteger(cfg[k]) || cfg[k] <= 0) throw new Error(`GPT-2 config: ${k} must be a positive integer, got ${cfg[k]}`);
  }
  if (cfg.nLayer > MAX_GPT2_LAYERS) throw new Error(`GPT-2 config: nLayer ${cfg.nLayer} is more than ${MAX_GPT2_LAYERS} layers`);
  if (cfg.nEmbd % cfg.nHead !== 0) throw new Error(`GPT-2 config: nEmbd ${cfg.nEmbd} is not divisible by nHead ${cfg.nHead}`);
  if (!(cfg.layerNormEps > 0)) throw new Error(`GPT-2 config: layerNormEps must be positive, got ${cfg.layerNormEps}`);
}

/**
 * A Hugging Face `GPT2Config` (config.json) for this model: with model.safetensors beside it,
 * `GPT2LMHeadModel.from_pretrained(dir)` loads the run. Dropout is 0 (the engine trains without it).
 */
export function toHFConfig(cfg: GPT2Config, special: { bosTokenId: number; eosTokenId: number }): Record<string, unknown> {
  checkGPT2Config(cfg);
  for (const [k, id] of Object.entries(special)) {
    if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) throw new Error(`toHFConfig: ${k} ${id} is not a token id (vocabulary of ${cfg.vocabSize})`);
  }
  return {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    vocab_size: cfg.vocabSize,
    n_positions: cfg.nPositions,
    n_embd: cfg.nEmbd,
    n_layer: cfg.nLayer,
    n_head: cfg.nHead,
    n_inner: null, // 4 * n_embd
    activation_function: 'gelu_new', // the tanh form, as ops.gelu
    layer_norm_epsilon: cfg.layerNormEps,
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
    initializer_range: 0.02,
    scale_attn_weights: true,
    tie_word_embeddings: true,
    bos_token_id: special.bosTokenId,
    eos_token_id: special.eosTokenId,
    torch_dtype: 'float32',
  };
}

/** Reads a Hugging Face GPT-2 config.json (parsed). Errors name the field and what was expected. */
export function fromHFConfig(json: unknown): GPT2Config {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('GPT-2 config: expected a JSON object');
  const j = json as Record<string, unknown>;
  if (j.model_type !== undefined && j.model_type !== 'gpt2') throw new Error(`GPT-2 config: model_type is '${String(j.model_type)}', expected 'gpt2'`);
  const int = (k: string): number => {
    const v = j[k];
    if (v === undefined) throw new Error(`GPT-2 config: field '${k}' is missing`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new Error(`GPT-2 config: '${k}' must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const cfg: GPT2Config = {
    vocabSize: int('vocab_size'),
    nPositions: int('n_positions'),
    nEmbd: int('n_embd'),
    nLayer: int('n_layer'),
    nHead: int('n_head'),
    layerNormEps: 1e-5, // HF's default when the field is absent
  };
  if (j.layer_norm_epsilon !== undefined) {
    const e = j.layer_norm_epsilon;
    if (typeof e !== 'number' || !(e > 0)) throw new Error(`GPT-2 config: 'layer_norm_epsilon' must be a positive number, got ${JSON.stringify(e)}`);
    cfg.layerNormEps = e;
  }
  if (j.n_inner !== undefined && j.n_inner !== null && j.n_inner !== 4 * cfg.nEmbd) {
    throw new Error(`GPT-2 config: 'n_inner' ${JSON.stringify(j.n_inner)} is not supported (only null = 4 * n_embd = ${4 * cfg.nEmbd})`);
  }
  const act = j.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') {
    throw new Error(`GPT-2 config: activation_function '${String(act)}' is not supported (only the tanh GELU: gelu_new, gelu_pytorch_tanh)`);
  }
  if (j.tie_word_embeddings === false) throw new Error("GPT-2 config: tie_word_embeddings false is not supported (the LM head is wte)");
  checkGPT2Config(cfg);
  return cfg;
}

export function gpt2ParamShapes(cfg: GPT2Config): Map<string, number[]> {
  const d = cfg.nEmbd;
  const m = new Map<string, number[]>([
    ['transformer.wte.weight', [cfg.vocabSize, d]],
    ['transformer.wpe.weight', [cfg.nPositions, d]],
  ]);
  for (let i = 0; i < cfg.nLayer; i++) {
    const p = `transformer.h.${i}`;
    m.set(`${p}.ln_1.weight`, [d]);
    m.set(`${p}.ln_1.bias`, [d]);
    m.set(`${p}.attn.c_attn.weight`, [d, 3 * d]);
    m.set(`${p}.attn.c_attn.bias`, [3 * d]);
    m.set(`${p}.attn.c_proj.weight`, [d, d]);
    m.set(`${p}.attn.c_proj.bias`, [d]);
    m.set(`${p}.ln_2.weight`, [d]);
    m.set(`${p}.ln_2.bias`, [d]);
    m.set(`${p}.mlp.c_fc.weight`, [d, 4 * d]);
    m.set(`${p}.mlp.c_fc.bias`, [4 * d]);
    m.set(`${p}.mlp.c_proj.weight`, [4 * d, d]);
    m.set(`${p}.mlp.c_proj.bias`, [d]);
  }
  m.set('transformer.ln_f.weight', [d]);
  m.set('transformer.ln_f.bias', [d]);
  return m;
}

export function initGPT2(cfg: GPT2Config, rng: Rng): ParamSet {
  const params: ParamSet = new Map();
  const residStd = 0.02 / Math.sqrt(2 * cfg.nLayer);
  for (const [name, shape] of gpt2ParamShapes(cfg)) {
    const data = new Float32Array(shape.reduce((p, s) => p * s, 1));
    if (/\.ln_\w+\.weight$/.test(name)) data.fill(1);
    else if (name.endsWith('.weight')) {
      const std = /c_proj\.weight$/.test(name) ? residStd : 0.02;
      for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
    }
    params.set(name, { shape, data });
  }
  return params;
}

/** Graph tensors for the parameters, by HF name. */
export type GPT2Weights = Map<string, Tensor>;

/** Keys and values of one block's attention, (B, H, T, hd). */
export interface KV {
  key: Tensor;
  value: Tensor;
}

/**
 * Reads or replaces a site's activation: called with every (layer, site) the forward pass meets, in
 * order, with the site's tensor (B, T, d); what it returns flows on. Identity = no hook.
 */
export type SiteHook = (layer: number, site: GPT2Site, x: Tensor) => Tensor;

function linear(x: Tensor, w: Tensor, b: Tensor): Tensor {
  return ops.add(ops.matmul(x, w), b);
}

function layerNorm(cfg: GPT2Config, w: GPT2Weights, x: Tensor, name: string): Tensor {
  return ops.layerNorm(x, w.get(`${name}.weight`)!, w.get(`${name}.bias`)!, cfg.layerNormEps);
}

/**
 * Causal self-attention of x (B, T, C), after the cached `past` (B, H, P, hd) when given; also returns
 * the keys/values of x's own T positions, for a cache to append. Shapes may be symbolic.
 */
function attention(cfg: GPT2Config, x: Tensor, w: GPT2Weights, p: string, past?: KV): { y: Tensor; kv: KV } {
  const C = cfg.nEmbd;
  const H = cfg.nHead;
  const hd = C / H;
  const qkv = linear(x, w.get(`${p}.attn.c_attn.weight`)!, w.get(`${p}.attn.c_attn.bias`)!); // (B, T, 3C)
  const heads = (t: Tensor) => ops.transpose(ops.reshape(t, [0, 0, H, hd]), [0, 2, 1, 3]); // (B, H, T, hd)
  const [q, kNew, vNew] = ops.split(qkv, [C, C, C], 2).map(heads);
  const k = past ? ops.concat([past.key, kNew], 2) : kNew; // (B, H, P+T, hd)
  const v = past ? ops.concat([past.value, vNew], 2) : vNew;
  const scores = ops.mul(ops.matmul(q, ops.transposeLast2(k)), 1 / Math.sqrt(hd)); // (B, H, T, P+T)
  const att = ops.softmax(causalMaskAny(scores));
  const y = ops.reshape(ops.transpose(ops.matmul(att, v), [0, 2, 1, 3]), [0, 0, C]); // (B, T, C)
  return { y: linear(y, w.get(`${p}.attn.c_proj.weight`)!, w.get(`${p}.attn.c_proj.bias`)!), kv: { key: kNew, value: vNew } };
}

function mlp(x: Tensor, w: GPT2Weights, p: string): Tensor {
  const h = ops.gelu(linear(x, w.get(`${p}.mlp.c_fc.weight`)!, w.get(`${p}.mlp.c_fc.bias`)!)); // (B, T, 4C)
  return linear(h, w.get(`${p}.mlp.c_proj.weight`)!, w.get(`${p}.mlp.c_proj.bias`)!);
}

/** Block `layer` on the residual stream h (B, T, C): the new stream and the keys/values of its T positions. */
export function gpt2Block(cfg: GPT2Config, w: GPT2Weights, layer: number, h: Tensor, opts: { past?: KV; hook?: SiteHook } = {}): { h: Tensor; kv: KV } {
  const p = `transformer.h.${layer}`;
  const hook = opts.hook ?? ((_l: number, _s: GPT2Site, x: Tensor) => x);
  const x = hook(layer, 'resid_pre', h);
  const att = attention(cfg, layerNorm(cfg, w, x, `${p}.ln_1`), w, p, opts.past);
  const a = ops.add(x, att.y);
  const m = hook(layer, 'ln2', layerNorm(cfg, w, a, `${p}.ln_2`));
  const out = hook(layer, 'resid_post', ops.add(a, mlp(m, w, p)));
  return { h: out, kv: att.kv };
}

/**
 * The residual stream after the last block, (B, T, C), for ids (B, T) at `positions` (int64 [T],
 * shared by the batch), each block attending to its cached `past` first when given; kv = each block's
 * keys/values of these T positions.
 */
export function gpt2Trunk(
  cfg: GPT2Config,
  w: GPT2Weights,
  ids: Tensor,
  positions: Tensor,
  opts: { past?: readonly KV[]; hook?: SiteHook } = {},
): { h: Tensor; kv: KV[] } {
  let h = ops.add(ops.gather(w.get('transformer.wte.weight')!, ids), ops.gather(w.get('transformer.wpe.weight')!, positions)); // (B, T, C)
  const kv: KV[] = [];
  for (let i = 0; i < cfg.nLayer; i++) {
    const b = gpt2Block(cfg, w, i, h, { past: opts.past?.[i], hook: opts.hook });
    h = b.h;
    kv.push(b.kv);
  }
  return { h, kv };
}

/** Logits [..., V] of a final residual stream [..., C]: ln_f, then the tied embedding. */
export function gpt2Head(cfg: GPT2Config, w: GPT2Weights, h: Tensor): Tensor {
  return ops.matmul(layerNorm(cfg, w, h, 'transformer.ln_f'), ops.transposeLast2(w.get('transformer.wte.weight')!));
}

/** Logits [B, T, V] for token ids [B, T] (static shapes). */
export function gpt2Forward(cfg: GPT2Config, w: GPT2Weights, ids: Tensor): Tensor {
  const [, T] = ids.shape as number[];
  if (T > cfg.nPositions) throw new Error(`sequence of ${T} tokens is longer than n_positions ${cfg.nPositions}`);
  return gpt2Head(cfg, w, gpt2Trunk(cfg, w, ids, ops.range(ids.graph, T)).h);
}

/** Declares every parameter as a trainable graph input. */
export function gpt2ParamInputs(g: Graph, cfg: GPT2Config): GPT2Weights {
  const w: GPT2Weights = new Map();
  for (const [name, shape] of gpt2ParamShapes(cfg)) w.set(name, g.param(name, shape));
  return w;
}

/** Bakes the parameters into the graph as initializers (frozen weights, for inference). */
export function gpt2ParamInitializers(g: Graph, cfg: GPT2Config, params: ParamSet): GPT2Weights {
  const w: GPT2Weights = new Map();
  for (const [name, shape] of gpt2ParamShapes(cfg)) {
    const p = params.get(name);
    if (!p) throw new Error(`GPT-2 parameters: '${name}' is missing`);
    if (p.shape.length !== shape.length || p.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`GPT-2 parameters: '${name}' has shape [${p.shape}], the config needs [${shape}]`);
    }
    w.set(name, g.initializer(name, p.data, shape, 'float32'));
  }
  return w;
}
