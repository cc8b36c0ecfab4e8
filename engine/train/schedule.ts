/**
 * Learning-rate schedule: linear warm-up, then cosine decay to a floor.
 *   lr(s) = lrMax * (s + 1) / warmup                                      for s < warmup
 *   lr(s) = lrMin + (lrMax - lrMin) * (1 + cos(pi * p)) / 2,  p = (s - warmup) / (total - warmup)   after
 * with lrMin = minFraction * lrMax; p is clamped to [0, 1] (training past `total` stays at lrMin).
 */
export interface Schedule {
  lr: number;
  warmup: number;
  total: number;
  minFraction: number;
}

export function learningRate(s: Schedule, step: number): number {
  if (step < s.warmup) return (s.lr * (step + 1)) / s.warmup;
  const span = Math.max(1, s.total - s.warmup);
  const p = Math.min(1, Math.max(0, (step - s.warmup) / span));
  const lrMin = s.minFraction * s.lr;
  return lrMin + ((s.lr - lrMin) * (1 + Math.cos(Math.PI * p))) / 2;
}
