/**
 * Linear scales and axis ticks of the panels' charts (probe accuracy, training curves).
 *
 *   scale(x) = r0 + (x - d0) * (r1 - r0) / (d1 - d0)     (d0 = d1: the middle of the range)
 *   nice ticks: step = the one of {1, 2, 5, 10} x 10^e, e = floor(log10(span / count)), whose
 *   interval count span / step is closest to `count` (ties: the larger step); ticks are the
 *   multiples of step in [lo, hi] (rounded to the step's decimals).
 */

export type Scale = (x: number) => number;

export function linearScale(domain: [number, number], range: [number, number]): Scale {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  if (d1 === d0) return () => (r0 + r1) / 2;
  const k = (r1 - r0) / (d1 - d0);
  return (x) => r0 + (x - d0) * k;
}

export function tickStep(lo: number, hi: number, count: number): number {
  const span = Math.abs(hi - lo);
  if (!(span > 0) || count < 1) return 1;
  const raw = span / count;
  const e = Math.floor(Math.log10(raw));
  let best = 10 ** (e + 1);
  for (const m of [10, 5, 2, 1]) {
    const step = m * 10 ** e;
    if (Math.abs(span / step - count) < Math.abs(span / best - count)) best = step;
  }
  return best;
}

export function niceTicks(lo: number, hi: number, count = 5): number[] {
  const step = tickStep(lo, hi, count);
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  const out: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toFixed(decimals)));
  return out;
}

/** [min, max] of finite values, or `fallback` when there are none. */
export function extent(values: Iterable<number>, fallback: [number, number] = [0, 1]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo === Infinity ? fallback : [lo, hi];
}
