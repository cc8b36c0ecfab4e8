/**
 * LLaMA (Touvron et al. 2023; LLaMA-3 architecture, Dubey et al. 2024) as an engine graph, with
 * Hugging Face LlamaForCausalLM tensor names, so a pretrained folder loads unchanged. One set of
 * layer functions serves training (llamaForward, static shapes, the frozen base baked in as
 * initializers and only the LoRA adapters as graph inputs) and inference (llama-infer.ts: symbolic
 * batch/sequence, a K/V cache, steering through the hooks of hooks.ts).
 *
 *   h_0      = embed_tokens[ids]
 *   layer i: a = h + attn(rms(h; input_layernorm));  h' = a + mlp(rms(a; post_attention_layernorm))
 *            sites: resid_pre = h, mlp_in = rms(a; post_attention_layernorm), resid_post = h'
 *   rms(x; w) = x / sqrt(mean(x^2) + rms_norm_eps) * w                          (RMSNorm, last axis)
 *   proj(x)  = x W^T  [+ (alpha / r) B A dropout(x)  where a LoRA adapter targets proj (lora.ts)]
 *            sites: {proj}.base = x W^T, {proj}.lora = the adapter term; W is [out, in] as in HF
 *   attn(x)  = o_proj(concat_heads(softmax(causal(q k^T / sqrt(hd))) v)),
 *            q = rope(q_proj(x)) with H heads, k = rope(k_proj(x)), v = v_proj(x) with KVH heads
 *            (grouped-query attention: query head h reads key/value head floor(h / (H / KVH)));
 *            with a cache, k and v are the past keys/values (after rope) followed by the new ones;
 *            with segments (documents packed in a row), causal also masks keys of other segments
 *   rope     = rotary embeddings at the token positions (rope.ts, incl. llama3 rope_scaling)
 *   mlp(x)   = down_proj(silu(gate_proj(x)) * up_proj(x)),  silu(z) = z * sigmoid(z)   (SwiGLU)
 *            with mlp_bias (transformers' LlamaMLP: nn.Linear(bias=mlp_bias)), each of gate_proj,
 *            up_proj, down_proj adds its bias b [out]: proj(x) = x W^T + b (in the {proj}.base site);
 *            every LLaMA-3 checkpoint has mlp_bias false; `memgen export` writes true (steer/export.ts)
 *   logits   = rms(h_L; model.norm) @ lm_head^T, lm_head = embed_tokens when tie_word_embeddings
 * Only attention_bias = false (every LLaMA-3 checkpoint) and hidden_act silu are supported; other
 * config values are refused with a message naming the field.
 */
import { type Graph, type Tensor, ops } from '../graph';
import { causalMaskAny } from '../graph/ops/extra';
import type { ParamSet } from '../io/params';
import type { Rng } from '../util/rng';
import { LLAMA_PROJECTIONS, type LlamaProjection, type LlamaSite } from './hooks';
import { type Llama3RopeScaling, applyRope, ropeInvFreq, ropeTables } from './rope';

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKVHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | null;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  /** gate_proj, up_proj and down_proj carry a bias (config.json mlp_bias; absent = false). */
  mlpBias?: boolean;
  bosTokenId: number | null;
  /** One or more (LLaMA-3 Instruct stops at <|end_of_text|>, <|eom_id|> and <|eot_id|>). */
  eosTokenIds: number[];
}

/**
 * The most layers a config may name (LLaMA-3.1 405B has 126). A config is untrusted input: its tensor
 * list (llamaParamShapes, 9 tensors a layer) is built before the weights are read, so a config.json
 * saying num_hidden_layers 2^31 would otherwise exhaust the memory of the reader.
 */
export const MAX_LLAMA_LAYERS = 4096;

/** Throws, naming the field, when a config cannot describe a LLaMA. */
export function checkLlamaConfig(cfg: LlamaConfig): void {
  for (const k of ['vocabSize', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKVHeads', 'headDim', 'maxPositions'] as const) {
    if (!Number.isSafeInteger(cfg[k]) || cfg[k] <= 0) throw new Error(`LLaMA config: ${k} must be a positive integer, got ${cfg[k]}`);
  }
  if (cfg.numLayers > MAX_LLAMA_LAYERS) throw new Error(`LLaMA config: num_hidden_layers ${cfg.numLayers} is more than ${MAX_LLAMA_LAYERS} layers`);
  if (cfg.numHeads % cfg.numKVHeads !== 0) throw new Error(`LLaMA config: num_attention_heads ${cfg.numHeads} is not a multiple of num_key_value_heads ${cfg.numKVHeads}`);
  if (cfg.headDim % 2 !== 0) throw new Error(`LLaMA config: head_dim ${cfg.headDim} must be even (rotary embeddings rotate pairs)`);
  if (!(cfg.rmsNormEps > 0)) throw new Error(`LLaMA config: rms_norm_eps must be positive, got ${cfg.rmsNormEps}`);
  if (!(cfg.ropeTheta > 0)) throw new Error(`LLaMA config: rope_theta must be positive, got ${cfg.ropeTheta}`);
  const s = cfg.ropeScaling;
  if (s) {
    if (!(s.factor > 0) || !(s.lowFreqFactor > 0) || !(s.highFreqFactor > s.lowFreqFactor) || !(s.originalMaxPositionEmbeddings > 0)) {
      throw new Error(`LLaMA config: rope_scaling ${JSON.stringify(s)} needs factor > 0, 0 < low_freq_factor < high_freq_factor, original_max_position_embeddings > 0`);
    }
  }
  for (const id of [cfg.bosTokenId ?? 0, ...cfg.eosTokenIds]) {
    if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) throw new Error(`LLaMA config: token id ${id} is outside the vocabulary (0..${cfg.vocabSize - 1})`);
  }
}

/** Reads a Hugging Face LlamaConfig (config.json, parsed). Errors name the field and what was expected. */
export function fromHFLlamaConfig(json: unknown): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('LLaMA config: expected a JSON object');
  const j = json as Record<string, unknown>;
  if (j.model_type !== undefined && j.model_type !== 'llama') throw new Error(`LLaMA config: model_type is '${String(j.model_type)}', expected 'llama'`);
  const num = (k: string, dflt?: number, integer = true): number => {
    const v = j[k] ?? dflt;
    if (v === undefined) throw new Error(`LLaMA config: field '${k}' is missing`);
    if (typeof v !== 'number' || !(v > 0) || (integer && !Number.isSafeInteger(v))) {
      throw new Error(`LLaMA config: '${k}' must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const refuse = (k: string, ok: (v: unknown) => boolean, what: string) => {
    if (j[k] !== undefined && j[k] !== null && !ok(j[k])) throw new Error(`LLaMA config: '${k}' = ${JSON.stringify(j[k])} is not supported (${what})`);
  };
  refuse('hidden_act', (v) => v === 'silu', 'only silu, the SwiGLU of LLaMA');
  refuse('attention_bias', (v) => v === false, 'only false: projections without bias');
  if (j.mlp_bias !== undefined && j.mlp_bias !== null && typeof j.mlp_bias !== 'boolean') throw new Error(`LLaMA config: 'mlp_bias' must be a boolean, got ${JSON.stringify(j.mlp_bias)}`);
  refuse('pretraining_tp', (v) => v === 1, 'only 1');
  const hiddenSize = num('hidden_size');
  const numHeads = num('num_attention_heads');
  if (j.head_dim === undefined && hiddenSize % numHeads !== 0) throw new Error(`LLaMA config: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads} (and head_dim is absent)`);
  const cfg: LlamaConfig = {
    vocabSize: num('vocab_size'),
    hiddenSize,
    intermediateSize: num('intermediate_size'),
    numLayers: num('num_hidden_layers'),
    numHeads,
    numKVHeads: num('num_key_value_heads', numHeads),
    headDim: num('head_dim', hiddenSize / numHeads),
    rmsNormEps: num('rms_norm_eps', 1e-6, false),
    ropeTheta: num('rope_theta', 10000, false),
    ropeScaling: parseRopeScaling(j.rope_scaling),
    maxPositions: num('max_position_embeddings', 2048),
    tieWordEmbeddings: j.tie_word_embeddings === undefined ? false : j.tie_word_embeddings === true,
    ...(j.mlp_bias === true ? { mlpBias: true } : {}),
    bosTokenId: null,
    eosTokenIds: [],
  };
  if (j.tie_word_embeddings !== undefined && typeof j.tie_word_embeddings !== 'boolean') throw new Error(`LLaMA config: 'tie_word_embeddings' must be a boolean, got ${JSON.stringify(j.tie_word_embeddings)}`);
  const id = (v: unknown, k: string): number => {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`LLaMA config: '${k}' must be a token id or a list of them, got ${JSON.stringify(j[k])}`);
    return v;
  };
  if (j.bos_token_id !== undefined && j.bos_token_id !== null) cfg.bosTokenId = id(j.bos_token_id, 'bos_token_id');
  if (j.eos_token_id !== undefined && j.eos_token_id !== null) {
    cfg.eosTokenIds = Array.isArray(j.eos_token_id) ? j.eos_token_id.map((v) => id(v, 'eos_token_id')) : [id(j.eos_token_id, 'eos_token_id')];
  }
  checkLlamaConfig(cfg);
  return cfg;
}

function parseRopeScaling(v: unknown): Llama3RopeScaling | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`LLaMA config: 'rope_scaling' must be an object or null, got ${JSON.stringify(v)}`);
  const r = v as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  if (type === 'default') return null;
  if (type !== 'llama3') throw new Error(`LLaMA config: rope_scaling type '${String(type)}' is not supported (only 'llama3' and 'default')`);
  const f = (k: string): number => {
    if (typeof r[k] !== 'number' || !((r[k] as number) > 0)) throw new Error(`LLaMA config: rope_scaling.${k} must be a positive number, got ${JSON.stringify(r[k])}`);
    return r[k] as number;
  };
  return {
    ropeType: 'llama3',
    factor: f('factor'),
    lowFreqFactor: f('low_freq_factor'),
    highFreqFactor: f('high_freq_factor'),
    originalMaxPositionEmbeddings: f('original_max_position_embeddings'),
  };
}

/** A Hugging Face LlamaConfig for this model (the fields of LLaMA-3.2's config.json). */
export function toHFLlamaConfig(cfg: LlamaConfig, dtype: 'bfloat16' | 'float16' | 'float32' = 'bfloat16'): Record<string, unknown> {
  checkLlamaConfig(cfg);
  const s = cfg.ropeScaling;
  return {
    architectures: ['LlamaForCausalLM'],
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: cfg.bosTokenId,
    eos_token_id: cfg.eosTokenIds.length === 1 ? cfg.eosTokenIds[0] : cfg.eosTokenIds,
    head_dim: cfg.headDim,
    hidden_act: 'silu',
    hidden_size: cfg.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: cfg.intermediateSize,
    max_position_embeddings: cfg.maxPositions,
    mlp_bias: cfg.mlpBias === true,
    model_type: 'llama',
    num_attention_heads: cfg.numHeads,
    num_hidden_layers: cfg.numLayers,
    num_key_value_heads: cfg.numKVHeads,
    pretraining_tp: 1,
    rms_norm_eps: cfg.rmsNormEps,
    rope_scaling: s
      ? { factor: s.factor, high_freq_factor: s.highFreqFactor, low_freq_factor: s.lowFreqFactor, original_max_position_embeddings: s.originalMaxPositionEmbeddings, rope_type: 'llama3' }
      : null,
    rope_theta: cfg.ropeTheta,
    tie_word_embeddings: cfg.tieWordEmbeddings,
    torch_dtype: dtype,
    transformers_version: '4.45.0',
    use_cache: true,
    vocab_size: cfg.vocabSize,
  };
}

/** The HF module path of a projection, e.g. model.layers.3.self_attn.q_proj (its weight is `${path}.weight`). */
export function projectionPath(layer: number, proj: LlamaProjection): string {
  const parent = proj === 'gate_proj' || proj === 'up_proj' || proj === 'down_proj' ? 'mlp' : 'self_attn';
  return `model.layers.${layer}.${parent}.${proj}`;
}

/** Whether a projection carries a bias in this model (mlp_bias: gate_proj, up_proj, down_proj). */
export function projectionHasBias(cfg: LlamaConfig, proj: LlamaProjection): boolean {
  return cfg.mlpBias === true && (proj === 'gate_proj' || proj === 'up_proj' || proj === 'down_proj');
}

/** [out, in] of a projection's weight. */
export function projectionShape(cfg: LlamaConfig, proj: LlamaProjection): [number, number] {
  const { hiddenSize: d, intermediateSize: I, numHeads: H, numKVHeads: KVH, headDim: hd } = cfg;
  switch (proj) {
    case 'q_proj': return [H * hd, d];
    case 'k_proj':
    case 'v_proj': return [KVH * hd, d];
    case 'o_proj': return [d, H * hd];
    case 'gate_proj':
    case 'up_proj': return [I, d];
    case 'down_proj': return [d, I];
  }
}

/** Width of a site's vector: d for the residual sites, the projection's out features otherwise. */
export function llamaSiteWidth(cfg: LlamaConfig, site: LlamaSite): number {
  if (site === 'resid_pre' || site === 'mlp_in' || site === 'resid_post') return cfg.hiddenSize;
  return projectionShape(cfg, site.split('.')[0] as LlamaProjection)[0];
}

export function llamaParamShapes(cfg: LlamaConfig): Map<string, number[]> {
  const d = cfg.hiddenSize;
  const m = new Map<string, number[]>([['model.embed_tokens.weight', [cfg.vocabSize, d]]]);
  for (let i = 0; i < cfg.numLayers; i++) {
    m.set(`model.layers.${i}.input_layernorm.weight`, [d]);
    for (const p of LLAMA_PROJECTIONS) {
      if (p === 'gate_proj') m.set(`model.layers.${i}.post_attention_layernorm.weight`, [d]);
      m.set(`${projectionPath(i, p)}.weight`, projectionShape(cfg, p));
      if (projectionHasBias(cfg, p)) m.set(`${projectionPath(i, p)}.bias`, [projectionShape(cfg, p)[0]]);
    }
  }
  m.set('model.norm.weight', [d]);
  if (!cfg.tieWordEmbeddings) m.set('lm_head.weight', [cfg.vocabSize, d]);
  return m;
}

/** Random weights (HF's LLaMA init: N(0, 0.02), norms 1, biases 0), for synthetic models and tests. */
export function initLlama(cfg: LlamaConfig, rng: Rng, std = 0.02): ParamSet {
  const params: ParamSet = new Map();
  for (const [name, shape] of llamaParamShapes(cfg)) {
    const data = new Float32Array(shape.reduce((p, s) => p * s, 1));
    if (name.endsWith('norm.weight')) data.fill(1);
    else if (!name.endsWith('.bias')) for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
    params.set(name, { shape, data });
  }
  return params;
}

/** Graph tensors of the base weights, by HF name. */
export type LlamaWeights = Map<string, Tensor>;

/** One LoRA adapter in a graph (lora.ts): A [r, in], B [out, r], the scaling, an optional dropout mask. */
export interface AdapterTensors {
  A: Tensor;
  B: Tensor;
  scaling: number;
  /** Multiplies the adapter's input (training with lora_dropout): 0 or 1 / (1 - p), broadcast to x. */
  dropoutMask?: Tensor;
}

/** Adapters by projection path (projectionPath). */
export type LlamaAdapters = Map<string, AdapterTensors>;

/** Keys and values of one layer's attention after rope, (B, KVH, T, hd). */
export interface LlamaKV {
  key: Tensor;
  value: Tensor;
}

/**
 * Reads or replaces a site's activation: called with every (layer, site) the forward pass meets, in
 * order, with the site's tensor (B, T, width); what it returns flows on. Identity = no hook.
 */
export type LlamaSiteHook = (layer: number, site: LlamaSite, x: Tensor) => Tensor;

interface Ctx {
  cfg: LlamaConfig;
  w: LlamaWeights;
  adapters?: LlamaAdapters;
  hook: LlamaSiteHook;
  /** The attention mask of documents packed in a row (LlamaRunOptions.segments). */
  sameDocument?: Tensor;
}

function weight(w: LlamaWeights, name: string): Tensor {
  const t = w.get(name);
  if (!t) throw new Error(`LLaMA weights: '${name}' is missing`);
  return t;
}

function rms(ctx: Ctx, x: Tensor, name: string): Tensor {
  return ops.rmsNorm(x, weight(ctx.w, `${name}.weight`), ctx.cfg.rmsNormEps);
}

/**
 * x W^T for x [..., in] and W [out, in] (HF's nn.Linear layout) as one Gemm with transB on the rows
 * of x: neither direction needs a transposed copy of W (MatMul(x, Transpose(W)) makes onnxruntime
 * fold W^T into a second initializer, and its gradient a third, doubling the frozen base's memory).
 * Leading dims may be symbolic (the output shape is then taken from x at run time; no gradient).
 */
export function linearT(x: Tensor, W: Tensor): Tensor {
  const [out, inF] = W.shape as number[];
  if (x.rank === 2) return ops.gemm(x, W, { transB: true });
  const lead = x.shape.slice(0, -1);
  const y = ops.gemm(ops.reshape(x, [-1, inF]), W, { transB: true }); // (N, out)
  if (lead.every((d): d is number => typeof d === 'number')) return ops.reshape(y, [...lead, out]);
  const g = x.graph;
  const leadShape = g.addNode({ op: 'Shape', inputs: [x], outputs: [{ shape: [lead.length], dtype: 'int64' }], attrs: { start: { kind: 'int', value: 0 }, end: { kind: 'int', value: lead.length } } }).outputs[0];
  const shape = g.addNode({ op: 'Concat', inputs: [leadShape, g.ints([out])], outputs: [{ shape: [x.rank], dtype: 'int64' }], attrs: { axis: { kind: 'int', value: 0 } } }).outputs[0];
  return g.addNode({ op: 'Reshape', inputs: [y, shape], outputs: [{ shape: [...lead, out], dtype: x.dtype }] }).outputs[0];
}

/** proj(x) = x W^T (+ b with mlp_bias) (+ the adapter's term), with the base and lora sites. */
function project(ctx: Ctx, layer: number, proj: LlamaProjection, x: Tensor): Tensor {
  const path = projectionPath(layer, proj);
  const xw = linearT(x, weight(ctx.w, `${path}.weight`));
  const base = ctx.hook(layer, `${proj}.base`, projectionHasBias(ctx.cfg, proj) ? ops.add(xw, weight(ctx.w, `${path}.bias`)) : xw);
  const ad = ctx.adapters?.get(path);
  if (!ad) return base;
  const xin = ad.dropoutMask ? ops.mul(x, ad.dropoutMask) : x;
  const lora = ops.mul(linearT(linearT(xin, ad.A), ad.B), ad.scaling);
  return ops.add(base, ctx.hook(layer, `${proj}.lora`, lora));
}

/**
 * Causal grouped-query self-attention of x (B, T, d) at rope tables for its T positions, after the
 * cached `past` (B, KVH, P, hd) when given; also returns the (roped) keys/values of x's T positions.
 * Queries are grouped by their key/value head, (B, KVH, rep, T, hd), so every group reads its shared
 * key/value head by broadcasting (no copies of k and v).
 */
function attention(ctx: Ctx, layer: number, x: Tensor, rope: { cos: Tensor; sin: Tensor }, past?: LlamaKV): { y: Tensor; kv: LlamaKV } {
  const { numHeads: H, numKVHeads: KVH, headDim: hd } = ctx.cfg;
  const rep = H / KVH;
  const q = ops.transpose(ops.reshape(project(ctx, layer, 'q_proj', x), [0, 0, KVH, rep, hd]), [0, 2, 3, 1, 4]); // (B, KVH, rep, T, hd)
  const kvHeads = (t: Tensor) => ops.transpose(ops.reshape(t, [0, 0, KVH, hd]), [0, 2, 1, 3]); // (B, KVH, T, hd)
  const kNew = applyRope(kvHeads(project(ctx, layer, 'k_proj', x)), rope);
  const vNew = kvHeads(project(ctx, layer, 'v_proj', x));
  const k = past ? ops.concat([past.key, kNew], 2) : kNew; // (B, KVH, P+T, hd)
  const v = past ? ops.concat([past.value, vNew], 2) : vNew;
  const qr = applyRope(q, rope);
  const scores = ops.mul(ops.matmul(qr, ops.transposeLast2(ops.unsqueeze(k, [2]))), 1 / Math.sqrt(hd)); // (B, KVH, rep, T, P+T)
  const causal = causalMaskAny(scores);
  const att = ops.softmax(ctx.sameDocument ? ops.where(ctx.sameDocument, causal, -Infinity) : causal);
  const heads = ops.matmul(att, ops.unsqueeze(v, [2])); // (B, KVH, rep, T, hd)
  const y = ops.reshape(ops.transpose(heads, [0, 3, 1, 2, 4]), [0, 0, H * hd]); // (B, T, H hd), head h = kvh * rep + r
  return { y: project(ctx, layer, 'o_proj', y), kv: { key: kNew, value: vNew } };
}

function mlp(ctx: Ctx, layer: number, x: Tensor): Tensor {
  return project(ctx, layer, 'down_proj', ops.mul(ops.silu(project(ctx, layer, 'gate_proj', x)), project(ctx, layer, 'up_proj', x)));
}

export interface LlamaRunOptions {
  adapters?: LlamaAdapters;
  hook?: LlamaSiteHook;
  /** Per layer, the cached keys/values of earlier positions. */
  past?: readonly LlamaKV[];
  /**
   * Documents packed in a row: segment ids int64 [B, T]; a query attends only to the keys of its own
   * segment (and, as always, of positions up to its own). Rotary scores depend on relative position
   * only, so a document anywhere in a row computes what it computes alone at position 0.
   */
  segments?: Tensor;
}

/**
 * The residual stream after the last layer, (B, T, d), for ids (B, T) at `positions` (int64 [T],
 * shared by the batch); kv = each layer's keys/values of these T positions (after rope).
 */
export function llamaTrunk(cfg: LlamaConfig, w: LlamaWeights, ids: Tensor, positions: Tensor, opts: LlamaRunOptions = {}): { h: Tensor; kv: LlamaKV[] } {
  // [B, 1, 1, T, T] against the scores (B, KVH, rep, T, T): key k is in query q's document
  const sameDocument = opts.segments && ops.unsqueeze(ops.equal(ops.unsqueeze(opts.segments, [2]), ops.unsqueeze(opts.segments, [1])), [1, 2]);
  const ctx: Ctx = { cfg, w, adapters: opts.adapters, hook: opts.hook ?? ((_l, _s, x) => x), sameDocument };
  const embed = weight(w, 'model.embed_tokens.weight');
  const rope = ropeTables(positions, ropeInvFreq(cfg.headDim, cfg.ropeTheta, cfg.ropeScaling), embed.dtype === 'float64' ? 'float64' : 'float32');
  let h = ops.gather(embed, ids); // (B, T, d)
  const kv: LlamaKV[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const x = ctx.hook(i, 'resid_pre', h);
    const att = attention(ctx, i, rms(ctx, x, `${p}.input_layernorm`), rope, opts.past?.[i]);
    const a = ops.add(x, att.y);
    const m = ctx.hook(i, 'mlp_in', rms(ctx, a, `${p}.post_attention_layernorm`));
    h = ctx.hook(i, 'resid_post', ops.add(a, mlp(ctx, i, m)));
    kv.push(att.kv);
  }
  return { h, kv };
}

/** Logits [..., V] of a final residual stream [..., d]: the final RMSNorm, then lm_head (or the tied embedding). */
export function llamaHead(cfg: LlamaConfig, w: LlamaWeights, h: Tensor): Tensor {
  const head = weight(w, cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
  return linearT(ops.rmsNorm(h, weight(w, 'model.norm.weight'), cfg.rmsNormEps), head);
}

/** Logits [B, T, V] for token ids [B, T] (static shapes), positions 0..T-1. */
export function llamaForward(cfg: LlamaConfig, w: LlamaWeights, ids: Tensor, opts: Omit<LlamaRunOptions, 'past'> = {}): Tensor {
  const [, T] = ids.shape as number[];
  if (typeof T !== 'number') throw new Error('llamaForward needs a static sequence length');
  if (T > cfg.maxPositions) throw new Error(`sequence of ${T} tokens is longer than max_position_embeddings ${cfg.maxPositions}`);
  return llamaHead(cfg, w, llamaTrunk(cfg, w, ids, ops.range(ids.graph, T), opts).h);
}

/** Checks that `params` holds every base weight with its shape; returns the missing/mismatched as an Error. */
export function checkLlamaParams(cfg: LlamaConfig, params: ParamSet, source = 'LLaMA parameters'): void {
  for (const [name, shape] of llamaParamShapes(cfg)) {
    const p = params.get(name);
    if (!p) throw new Error(`${source}: '${name}' is missing`);
    if (p.shape.length !== shape.length || p.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${source}: '${name}' has shape [${p.shape}], the config needs [${shape}]`);
    }
  }
}

/**
 * Bakes the base weights into the graph as initializers (frozen: no gradient is ever taken for them).
 * float64 is for gradient checks only (the whole graph then computes in double).
 */
export function llamaParamInitializers(g: Graph, cfg: LlamaConfig, params: ParamSet, dtype: 'float32' | 'float64' = 'float32'): LlamaWeights {
  checkLlamaParams(cfg, params);
  const w: LlamaWeights = new Map();
  for (const [name, shape] of llamaParamShapes(cfg)) {
    const data = params.get(name)!.data;
    w.set(name, g.initializer(name, dtype === 'float32' ? data : Float64Array.from(data), shape, dtype));
  }
  return w;
}

/** Declares every base weight as a graph parameter (for gradient checks of the base path only). */
export function llamaParamInputs(g: Graph, cfg: LlamaConfig): LlamaWeights {
  const w: LlamaWeights = new Map();
  for (const [name, shape] of llamaParamShapes(cfg)) w.set(name, g.param(name, shape));
  return w;
}
