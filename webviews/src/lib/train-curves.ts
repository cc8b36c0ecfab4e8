/**
 * Training curves from train-log.jsonl points (TrainCurvePoint): the loss of logged steps, and
 * the held-out gen / mem / other fractions of each evaluation.
 *
 *   thinning  at most MAX_POINTS per line: every k-th point, k = ceil(n / MAX_POINTS), the last
 *             point always kept (a live curve's end is what one watches)
 *   stop rule training stops early once gen >= stopWhenBoth AND mem >= stopWhenBoth (trainer.ts):
 *             drawn as one horizontal line on the gen / mem chart; the first evaluation meeting
 *             it is reported (null when none)
 */
import type { TrainCurvePoint } from '../../../server/src/protocol';

export const MAX_POINTS = 800;
export type XY = [number, number];

export function thin(xs: XY[], max = MAX_POINTS): XY[] {
  if (xs.length <= max) return xs;
  const k = Math.ceil(xs.length / max);
  const out = xs.filter((_, i) => i % k === 0);
  if (out[out.length - 1] !== xs[xs.length - 1]) out.push(xs[xs.length - 1]);
  return out;
}

export interface Curves {
  loss: XY[];
  gen: XY[];
  mem: XY[];
  other: XY[];
  lastStep: number;
}

export function curves(points: TrainCurvePoint[]): Curves {
  const c: Curves = { loss: [], gen: [], mem: [], other: [], lastStep: 0 };
  for (const p of points) {
    c.lastStep = Math.max(c.lastStep, p.step);
    if (p.kind === 'train' && p.loss !== null) c.loss.push([p.step, p.loss]);
    if (p.kind === 'eval') {
      if (p.gen !== null) c.gen.push([p.step, p.gen]);
      if (p.mem !== null) c.mem.push([p.step, p.mem]);
      if (p.other !== null) c.other.push([p.step, p.other]);
    }
  }
  return { ...c, loss: thin(c.loss) };
}

/** The step of the first evaluation where gen and mem both reach `threshold`, or null. */
export function stopStep(points: TrainCurvePoint[], threshold: number | null): number | null {
  if (threshold === null) return null;
  for (const p of points) if (p.kind === 'eval' && p.gen !== null && p.mem !== null && p.gen >= threshold && p.mem >= threshold) return p.step;
  return null;
}
