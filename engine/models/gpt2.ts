/**
 * GPT-2 (Radford et al. 2019) as an engine graph, with Hugging Face GPT2LMHeadModel tensor names so
 * a saved run loads in transformers unchanged.
 *
 *   h_0     = wte[ids] + wpe[0..T)
 *   block i: a = h + attn(ln_1(h));  h' = a + mlp(ln_2(a))          (pre-LN)
 *   attn    = c_proj(softmax(causal(q k^T / sqrt(hd))) v), [q k v] = c_attn(x), heads split
 *   mlp     = c_proj(gelu_tanh(c_fc(x)))
 *   logits  = ln_f(h_L) @ wte^T                                       (tied embeddings)
 * Conv1D weights are stored as HF does, [in, out], so x @ W + b needs no transpose.
 * Initialisation (GPT-2 / nanoGPT): weights N(0, 0.02), residual projections (attn.c_proj, mlp.c_proj)
 * N(0, 0.02 / sqrt(2 n_layer)), biases 0, LayerNorm weight 1 and bias 0.
 */
import { type Graph, type Tensor, ops } from '../graph';
import type { ParamSet } from '../train/params';
import type { Rng } from '../util/rng';

export interface GPT2Config {
  vocabSize: number;
  /** Longest sequence (learned positions). */
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  layerNormEps: number;
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

function linear(x: Tensor, w: Tensor, b: Tensor): Tensor {
  return ops.add(ops.matmul(x, w), b);
}

function attention(cfg: GPT2Config, x: Tensor, w: GPT2Weights, p: string): Tensor {
  const [B, T, C] = x.shape as number[];
  const H = cfg.nHead;
  const hd = C / H;
  const qkv = linear(x, w.get(`${p}.attn.c_attn.weight`)!, w.get(`${p}.attn.c_attn.bias`)!); // (B, T, 3C)
  const heads = (t: Tensor) => ops.transpose(ops.reshape(t, [B, T, H, hd]), [0, 2, 1, 3]); // (B, H, T, hd)
  const [q, k, v] = ops.split(qkv, [C, C, C], 2).map(heads);
  const scores = ops.mul(ops.matmul(q, ops.transposeLast2(k)), 1 / Math.sqrt(hd)); // (B, H, T, T)
  const att = ops.softmax(ops.causalMask(scores));
  const y = ops.reshape(ops.transpose(ops.matmul(att, v), [0, 2, 1, 3]), [B, T, C]); // (B, T, C)
  return linear(y, w.get(`${p}.attn.c_proj.weight`)!, w.get(`${p}.attn.c_proj.bias`)!);
}

function mlp(x: Tensor, w: GPT2Weights, p: string): Tensor {
  const h = ops.gelu(linear(x, w.get(`${p}.mlp.c_fc.weight`)!, w.get(`${p}.mlp.c_fc.bias`)!));
  return linear(h, w.get(`${p}.mlp.c_proj.weight`)!, w.get(`${p}.mlp.c_proj.bias`)!);
}

/** Logits [B, T, V] for token ids [B, T] (static shapes). */
export function gpt2Forward(cfg: GPT2Config, w: GPT2Weights, ids: Tensor): Tensor {
  const [, T] = ids.shape as number[];
  if (T > cfg.nPositions) throw new Error(`sequence of ${T} tokens is longer than n_positions ${cfg.nPositions}`);
  const g = ids.graph;
  const pos = ops.range(g, T);
  let h = ops.add(ops.gather(w.get('transformer.wte.weight')!, ids), ops.gather(w.get('transformer.wpe.weight')!, pos));
  const ln = (x: Tensor, name: string) => ops.layerNorm(x, w.get(`${name}.weight`)!, w.get(`${name}.bias`)!, cfg.layerNormEps);
  for (let i = 0; i < cfg.nLayer; i++) {
    const p = `transformer.h.${i}`;
    h = ops.add(h, attention(cfg, ln(h, `${p}.ln_1`), w, p));
    h = ops.add(h, mlp(ln(h, `${p}.ln_2`), w, p));
  }
  return ops.matmul(ln(h, 'transformer.ln_f'), ops.transposeLast2(w.get('transformer.wte.weight')!));
}

/** Declares every parameter as a trainable graph input. */
export function gpt2ParamInputs(g: Graph, cfg: GPT2Config): GPT2Weights {
  const w: GPT2Weights = new Map();
  for (const [name, shape] of gpt2ParamShapes(cfg)) w.set(name, g.param(name, shape));
  return w;
}
