/**
 * Colour scales of the panels' heatmaps (NMD map, sweep grid, activation strip).
 *
 *   normalise   t = f(|v| / vmax) in [0, 1], vmax = max |v| over what is drawn (> 0), with
 *                 linear  f(u) = u
 *                 sqrt    f(u) = sqrt(u)                   (lifts small values)
 *                 log     f(u) = ln(1 + K u) / ln(1 + K),  K = 100
 *               values beyond vmax clip to 1.
 *   absolute    colour = SEQUENTIAL(t): viridis (perceptually uniform, colour-blind safe), 9 stops,
 *               linear RGB interpolation between stops; dark = 0, yellow = vmax.
 *   signed      colour = DIVERGING(sign(v) * t): t = 0 is the neutral centre (theme dependent: light
 *               grey on light themes, dark grey on dark / high-contrast ones), positive (v > 0:
 *               larger on the GEN member, the NMD sign convention gen - mem) toward blue, negative
 *               (larger on the MEM member) toward orange; blue/orange stays distinct for red-green
 *               colour blindness.
 * A lookup table of LUT_SIZE entries per scale (RGB bytes) makes the per-cell cost one index.
 */

export type ScaleKind = 'linear' | 'sqrt' | 'log';
export type Theme = 'light' | 'dark';
export type Rgb = [number, number, number];

export const LOG_K = 100;
export const LUT_SIZE = 256;

const VIRIDIS: Rgb[] = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [253, 231, 37],
];
const GEN_END: Rgb = [33, 102, 172];
const GEN_MID: Rgb = [103, 169, 207];
const MEM_MID: Rgb = [244, 165, 96];
const MEM_END: Rgb = [202, 92, 0];
const CENTRE: Record<Theme, Rgb> = { light: [240, 240, 240], dark: [48, 48, 48] };

/** t in [0, 1] after the normalisation of `kind` (u = |v| / vmax, clipped). */
export function normalise(u: number, kind: ScaleKind): number {
  const x = Math.min(1, Math.max(0, u));
  if (kind === 'sqrt') return Math.sqrt(x);
  if (kind === 'log') return Math.log1p(LOG_K * x) / Math.log1p(LOG_K);
  return x;
}

function interpolate(stops: Rgb[], t: number): Rgb {
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = stops[i];
  const b = stops[i + 1];
  return [Math.round(a[0] + f * (b[0] - a[0])), Math.round(a[1] + f * (b[1] - a[1])), Math.round(a[2] + f * (b[2] - a[2]))];
}

/** Viridis at t in [0, 1]. */
export function sequential(t: number): Rgb {
  return interpolate(VIRIDIS, t);
}

/** The diverging scale at s in [-1, 1] (positive = gen side, blue). */
export function diverging(s: number, theme: Theme): Rgb {
  const c = CENTRE[theme];
  return s >= 0 ? interpolate([c, GEN_MID, GEN_END], s) : interpolate([c, MEM_MID, MEM_END], -s);
}

/**
 * RGB lookup table: absolute: LUT_SIZE entries for t = i / (LUT_SIZE - 1); signed: 2 * LUT_SIZE - 1
 * entries for s = (i - (LUT_SIZE - 1)) / (LUT_SIZE - 1), i.e. index LUT_SIZE - 1 is zero.
 */
export function buildLut(signed: boolean, theme: Theme): Uint8ClampedArray {
  const n = signed ? 2 * LUT_SIZE - 1 : LUT_SIZE;
  const lut = new Uint8ClampedArray(n * 3);
  for (let i = 0; i < n; i++) {
    const rgb = signed ? diverging((i - (LUT_SIZE - 1)) / (LUT_SIZE - 1), theme) : sequential(i / (LUT_SIZE - 1));
    lut.set(rgb, i * 3);
  }
  return lut;
}

/** The LUT index of value v under vmax (> 0), for a LUT built with the same `signed`. */
export function lutIndex(v: number, vmax: number, kind: ScaleKind, signed: boolean): number {
  const t = normalise(Math.abs(v) / vmax, kind);
  const k = Math.round(t * (LUT_SIZE - 1));
  if (!signed) return k;
  return v < 0 ? LUT_SIZE - 1 - k : LUT_SIZE - 1 + k;
}

/** max |v| over `values`, or 1 when all are zero or not finite (so that t is defined). */
export function maxAbs(values: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]);
    if (a > m && Number.isFinite(a)) m = a;
  }
  return m > 0 ? m : 1;
}

export function rgbCss([r, g, b]: Rgb): string {
  return `rgb(${r}, ${g}, ${b})`;
}
