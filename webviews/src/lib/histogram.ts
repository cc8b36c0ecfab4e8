/**
 * Histograms of one neuron's values over the gen members and the mem members of the pairs (the
 * neuron inspector), on SHARED bins so that the two compare:
 *
 *   lo = min over both samples, hi = max over both; bins k = clamp(ceil(sqrt(n)), 8, 50) with
 *   n = the larger sample (the square-root rule); width w = (hi - lo) / k; value x goes to bin
 *   min(k - 1, floor((x - lo) / w)). All values equal (hi = lo): one bin [lo - 0.5, lo + 0.5].
 *   Non-finite values are skipped and counted apart.
 *   Densities: count / (n * w), so that each histogram integrates to 1 whatever its n.
 */

export interface SharedHistogram {
  edges: number[];
  gen: number[];
  mem: number[];
  genDensity: number[];
  memDensity: number[];
  skipped: number;
  /** Means of the finite values (their difference is the neuron's NMD, gen - mem). */
  genMean: number;
  memMean: number;
}

export function binCount(n: number): number {
  return Math.min(50, Math.max(8, Math.ceil(Math.sqrt(n))));
}

export function sharedHistogram(gen: ArrayLike<number>, mem: ArrayLike<number>, bins?: number): SharedHistogram {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of [gen, mem]) {
    for (let i = 0; i < s.length; i++) {
      const x = s[i];
      if (!Number.isFinite(x)) continue;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
  }
  if (lo === Infinity) {
    lo = 0;
    hi = 1;
  }
  let k = bins ?? binCount(Math.max(gen.length, mem.length));
  if (hi === lo) {
    k = 1;
    lo -= 0.5;
    hi += 0.5;
  }
  const w = (hi - lo) / k;
  const edges = Array.from({ length: k + 1 }, (_, i) => lo + i * w);
  let skipped = 0;
  const count = (s: ArrayLike<number>) => {
    const c = new Array<number>(k).fill(0);
    let sum = 0;
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      const x = s[i];
      if (!Number.isFinite(x)) {
        skipped++;
        continue;
      }
      c[Math.min(k - 1, Math.floor((x - lo) / w))]++;
      sum += x;
      n++;
    }
    return { c, mean: n > 0 ? sum / n : NaN, n };
  };
  const g = count(gen);
  const m = count(mem);
  const density = (c: number[], n: number) => c.map((x) => (n > 0 ? x / (n * w) : 0));
  return { edges, gen: g.c, mem: m.c, genDensity: density(g.c, g.n), memDensity: density(m.c, m.n), skipped, genMean: g.mean, memMean: m.mean };
}
