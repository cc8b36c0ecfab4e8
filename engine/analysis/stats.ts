/**
 * Confidence intervals for the analysis numbers.
 *
 * Wilson score interval (Wilson 1927) for a binomial proportion, k successes in n trials,
 * p = k / n, z the normal quantile (1.96 for 95%):
 *   centre = (p + z^2 / (2n)) / (1 + z^2 / n)
 *   half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))
 *   [lo, hi] = [centre - half, centre + half]
 * Unlike the normal (Wald) interval it stays inside [0, 1] and is not degenerate at k = 0 or k = n
 * (10/10 gives [0.722, 1], not [1, 1]), which matters for probe accuracies near 1 on small test sets.
 * n = 0 carries no information: the interval is [0, 1].
 */

export function wilson(successes: number, n: number, z = 1.96): [number, number] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`wilson: n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(successes) || successes < 0 || successes > n) {
    throw new RangeError(`wilson: successes must be an integer in [0, ${n}], got ${successes}`);
  }
  if (!(z > 0)) throw new RangeError(`wilson: z must be positive, got ${z}`);
  if (n === 0) return [0, 1];
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // At k = 0 (k = n) the lower (upper) end is exactly 0 (1); clamp away the rounding error.
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}
