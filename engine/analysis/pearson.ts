/**
 * Correlation of each neuron with the behaviour label (method.md section 5): Pearson's r between
 * h[l, i] and y (gen = 1, mem = 0) over all members of all pairs, i.e. the point-biserial
 * correlation, in closed form from the moments of nmd.ts (one pass, float64, vectorised):
 *
 *   rho = (mean_G - mean_M) * sqrt(p * (1 - p)) / std_all
 *
 *   p       = n_G / (n_G + n_M)   the share of gen members (0.5 for pairs)
 *   std_all = population standard deviation of h over all N = n_G + n_M members:
 *             var_all = (Q_G + Q_M) / N - ((S_G + S_M) / N)^2     (S, Q: shifted sums, nmd.ts)
 *
 * Sign: that of mean_G - mean_M = NMD (gen - mem). |rho| ranks like |NMD| / std_all.
 * A neuron with zero variance (var_all <= 0, e.g. constant over all members) has rho = 0, never NaN:
 * the reference code's NaN correlations sorted first and wasted the top-N budget (method.md 9.2).
 * Rounding can push |rho| a hair past 1; it is clamped to [-1, 1].
 */
import type { PairMoments } from './nmd';

/** rho per neuron, [layers * d] layer-major (float32, as stored in rho.npy). */
export function pointBiserial(m: PairMoments): Float32Array {
  const { gen, mem } = m;
  if (gen.n === 0 || mem.n === 0) throw new Error(`the correlation needs gen and mem members (have ${gen.n} gen, ${mem.n} mem)`);
  const N = gen.n + mem.n;
  const p = gen.n / N;
  const spread = Math.sqrt(p * (1 - p));
  const out = new Float32Array(gen.sum.length);
  for (let j = 0; j < out.length; j++) {
    const mean = (gen.sum[j] + mem.sum[j]) / N;
    const variance = (gen.sumSq[j] + mem.sumSq[j]) / N - mean * mean;
    if (!(variance > 0)) continue; // zero variance (or rounding below it): rho = 0
    const r = ((gen.sum[j] / gen.n - mem.sum[j] / mem.n) * spread) / Math.sqrt(variance);
    out[j] = Math.max(-1, Math.min(1, r));
  }
  return out;
}
