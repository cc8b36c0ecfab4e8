/**
 * Softmax of one row of logits, on the host (the graph's own softmax is ops.softmax, graph/ops/nn.ts).
 *
 *   softmax(z)_j    = exp(z_j - max z) / sum_k exp(z_k - max z)      (float32 out, sums in float64)
 *   logSoftmax(z)_j = z_j - max z - log sum_k exp(z_k - max z)      (float64 out: beam search scores)
 */

/** softmax of one row of logits (max subtracted first). */
export function softmax(logits: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  const out = new Float32Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i] - max);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** log softmax of row r of logits [rows, V] (float64). */
export function logSoftmaxRow(logits: Float32Array, r: number, V: number): Float64Array {
  let max = -Infinity;
  for (let j = 0; j < V; j++) max = Math.max(max, logits[r * V + j]);
  let sum = 0;
  for (let j = 0; j < V; j++) sum += Math.exp(logits[r * V + j] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(V);
  for (let j = 0; j < V; j++) out[j] = logits[r * V + j] - lse;
  return out;
}
