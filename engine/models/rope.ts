/**
 * Rotary position embeddings (Su et al. 2021, RoFormer) as LLaMA uses them, in Hugging Face's
 * "rotate half" layout (LlamaRotaryEmbedding, apply_rotary_pos_emb), with the llama3 rope_scaling
 * of LLaMA-3.1/3.2 (transformers' _compute_llama3_parameters).
 *
 *   inv_freq_j = theta^(-2j / hd),  j = 0 .. hd/2 - 1                        (theta = rope_theta)
 *   llama3 scaling (factor s, low_freq_factor l, high_freq_factor h, original context N):
 *     wavelen_j = 2 pi / inv_freq_j
 *     wavelen_j > N / l            (low frequencies):    inv_freq_j / s
 *     wavelen_j < N / h            (high frequencies):   inv_freq_j unchanged
 *     otherwise (medium):          (1 - a_j) inv_freq_j / s + a_j inv_freq_j,  a_j = (N / wavelen_j - l) / (h - l)
 *   angle[p, j] = p * inv_freq_j  (float32, as HF computes it);  emb[p] = [angle[p], angle[p]]   ([hd])
 *   rope(x)[p]  = x[p] * cos(emb[p]) + rotate_half(x[p]) * sin(emb[p]),
 *                 rotate_half([x1, x2]) = [-x2, x1]   (x1, x2 the two halves of the head dimension)
 * Applied to queries and keys of every head, before keys are cached. The attention scaling of the
 * default and llama3 rope types is 1, so cos and sin are not rescaled.
 * The gradient of rope(x) with respect to x flows through Split, Neg, Concat and Mul (their rules);
 * the tables depend on positions only and are never differentiated.
 */
import { type Tensor, ops } from '../graph';
import { cos, sin } from '../graph/ops/extra';

export interface Llama3RopeScaling {
  ropeType: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/** The rotary inverse frequencies, length headDim / 2, in float64 (rounded to float32 when baked in). */
export function ropeInvFreq(headDim: number, theta: number, scaling: Llama3RopeScaling | null): Float64Array {
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) throw new Error(`rope: head_dim must be a positive even integer, got ${headDim}`);
  if (!(theta > 0)) throw new Error(`rope: rope_theta must be positive, got ${theta}`);
  const half = headDim / 2;
  const inv = new Float64Array(half);
  // HF: 1 / theta ** (arange(0, hd, 2).float() / hd), the exponent in float32.
  for (let j = 0; j < half; j++) inv[j] = 1 / theta ** Math.fround((2 * j) / headDim);
  if (!scaling) return inv;
  const { factor: s, lowFreqFactor: l, highFreqFactor: h, originalMaxPositionEmbeddings: N } = scaling;
  const lowWavelen = N / l;
  const highWavelen = N / h;
  for (let j = 0; j < half; j++) {
    const wavelen = (2 * Math.PI) / inv[j];
    if (wavelen > lowWavelen) inv[j] = inv[j] / s;
    else if (wavelen >= highWavelen) {
      const a = (N / wavelen - l) / (h - l);
      inv[j] = ((1 - a) * inv[j]) / s + a * inv[j];
    }
  }
  return inv;
}

/** cos and sin tables [T, hd] for int64 positions [T] (T may be symbolic), in float32 (or float64 for gradient checks). */
export function ropeTables(positions: Tensor, invFreq: Float64Array, dtype: 'float32' | 'float64' = 'float32'): { cos: Tensor; sin: Tensor } {
  const g = positions.graph;
  const inv = g.constant(dtype === 'float32' ? Float32Array.from(invFreq) : invFreq, [invFreq.length], dtype);
  const angle = ops.mul(ops.unsqueeze(ops.cast(positions, dtype), [1]), inv); // [T, hd/2]
  const emb = ops.concat([angle, angle], 1); // [T, hd]
  return { cos: cos(emb), sin: sin(emb) };
}

/** rope(x) for x [..., T, hd] with tables [T, hd] (broadcast over the leading axes). */
export function applyRope(x: Tensor, tables: { cos: Tensor; sin: Tensor }): Tensor {
  const hd = x.shape[x.rank - 1];
  if (typeof hd !== 'number' || hd % 2 !== 0) throw new Error(`rope: the head axis of ${x} must be static and even`);
  const [x1, x2] = ops.split(x, [hd / 2, hd / 2], -1);
  const rotated = ops.concat([ops.neg(x2), x1], -1);
  return ops.add(ops.mul(x, tables.cos), ops.mul(rotated, tables.sin));
}
