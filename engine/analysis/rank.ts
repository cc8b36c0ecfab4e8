/**
 * Ranking of neurons for steering (method.md section 6):
 *
 *   order every (layer, neuron) of ALL layers by |rho| descending; ties by layer, then by index,
 *   ascending (deterministic); keep the first  k = max(1, round(topN * layers * d))  for 0 < topN <= 1.
 *
 * With `layers` (steer-eval / sweep --layers) the ranking is the same within those layers alone:
 * k = max(1, round(topN * |layers| * d)).
 *
 * Ranks are 1-based. No layer is left out (the reference code's hard-coded layer range skipped the
 * last layers, method.md 9.1). rho must be finite: pearson.ts gives 0 for a constant neuron, so a NaN
 * here means a damaged rho.npy, and it is refused rather than ranked (method.md 9.2).
 */
import type { GPT2Site } from '../models/hooks';
import { type SiteFamily, familySiteName } from '../models/sites';
import type { NeuronEntry } from './files';

/** How many neurons topN keeps out of `total`. */
export function topCount(topN: number, total: number): number {
  if (!(topN > 0 && topN <= 1)) throw new Error(`topN must be a fraction in (0, 1], got ${topN}`);
  return Math.min(total, Math.max(1, Math.round(topN * total)));
}

/** Refuses a layer list that is empty, repeats a layer or names one the model lacks. */
export function checkLayers(only: readonly number[], layers: number): void {
  if (only.length === 0) throw new Error('the layer list is empty');
  for (const l of only) if (!Number.isInteger(l) || l < 0 || l >= layers) throw new Error(`layer ${l} does not exist: the model has layers 0..${layers - 1}`);
  if (new Set(only).size !== only.length) throw new Error(`the layer list ${only.join(',')} repeats a layer`);
}

/**
 * The kept neurons, best first. `rho` and `nmd` are [layers * d], layer-major (as in rho.npy and
 * nmd.npy); `site` names the layers (blocks.{layer}.{site}; family 'llama': layers.{layer}.{site}).
 */
export function rankNeurons(rho: ArrayLike<number>, nmd: ArrayLike<number>, layers: number, d: number, site: GPT2Site, topN: number, family: SiteFamily = 'gpt2', only?: readonly number[]): NeuronEntry[] {
  const total = layers * d;
  if (only) checkLayers(only, layers);
  if (rho.length !== total || nmd.length !== total) throw new Error(`rho (${rho.length}) and nmd (${nmd.length}) must each hold layers x d = ${total} values`);
  for (let j = 0; j < total; j++) {
    if (!Number.isFinite(rho[j])) throw new Error(`rho of ${familySiteName(Math.floor(j / d), site, family)} neuron ${j % d} is ${rho[j]}; a correlation is finite (zero variance gives 0): recompute the analysis`);
  }
  const k = topCount(topN, (only?.length ?? layers) * d);
  // j = layer * d + index, so ordering ties by j orders them by layer, then index.
  const order = Array.from({ length: total }, (_, j) => j).filter((j) => !only || only.includes(Math.floor(j / d)));
  order.sort((a, b) => Math.abs(rho[b]) - Math.abs(rho[a]) || a - b);
  return order.slice(0, k).map((j, r) => {
    const layer = Math.floor(j / d);
    return { rank: r + 1, layer, index: j % d, site: familySiteName(layer, site, family), nmd: nmd[j], rho: rho[j] };
  });
}
