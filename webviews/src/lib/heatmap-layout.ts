/**
 * The NMD map (the paper's figure): one row per layer, one column per neuron.
 *
 *   columns, 'sorted'   within each layer, neurons ordered by |NMD| descending (ties: lower index
 *                       first), so column c of layer l is that layer's (c+1)-th largest |NMD|;
 *            'index'    column c is neuron c (the original order).
 *   cell value          'absolute': |NMD|;  'signed': NMD (gen - mem: positive = larger on gen).
 *   pixels              an RGBA image of d x layers (one pixel per cell, row 0 = layer 0), coloured
 *                       through colour-scale.ts with vmax = max |NMD| over all layers, so that
 *                       layers compare; drawn scaled by the view (pan / zoom) without smoothing.
 *   view                screen x = offsetX + column * scaleX, screen y = offsetY + layer * scaleY;
 *                       zoom (along x) keeps the column under the cursor fixed; panning stops at
 *                       the map's ends (clampView).
 * All arrays are layer-major [layers * d] as nmd.npy.
 */
import { type ScaleKind, buildLut, lutIndex, maxAbs, type Theme } from './colour-scale';

export type ColumnOrder = 'sorted' | 'index';

/** order[layer * d + column] = the neuron index shown in that column. */
export function columnOrder(nmd: ArrayLike<number>, layers: number, d: number, mode: ColumnOrder): Int32Array {
  const order = new Int32Array(layers * d);
  const idx = Array.from({ length: d }, (_, i) => i);
  for (let l = 0; l < layers; l++) {
    const base = l * d;
    const cols = mode === 'index' ? idx : [...idx].sort((a, b) => Math.abs(nmd[base + b]) - Math.abs(nmd[base + a]) || a - b);
    order.set(cols, base);
  }
  return order;
}

/** The inverse: column[layer * d + neuron] = the column where that neuron is drawn. */
export function inverseOrder(order: Int32Array, layers: number, d: number): Int32Array {
  const col = new Int32Array(order.length);
  for (let l = 0; l < layers; l++) for (let c = 0; c < d; c++) col[l * d + order[l * d + c]] = c;
  return col;
}

export interface PixelOptions {
  signed: boolean;
  scale: ScaleKind;
  theme: Theme;
}

/** RGBA pixels (d wide, layers high) of the map; returns vmax too (the colour bar's end). */
export function renderPixels(nmd: ArrayLike<number>, order: Int32Array, layers: number, d: number, opts: PixelOptions): { pixels: Uint8ClampedArray; vmax: number } {
  const lut = buildLut(opts.signed, opts.theme);
  const vmax = maxAbs(nmd);
  const pixels = new Uint8ClampedArray(layers * d * 4);
  for (let l = 0; l < layers; l++) {
    for (let c = 0; c < d; c++) {
      const v = nmd[l * d + order[l * d + c]];
      const k = 3 * lutIndex(Number.isFinite(v) ? v : 0, vmax, opts.scale, opts.signed);
      const p = 4 * (l * d + c);
      pixels[p] = lut[k];
      pixels[p + 1] = lut[k + 1];
      pixels[p + 2] = lut[k + 2];
      pixels[p + 3] = 255;
    }
  }
  return { pixels, vmax };
}

export interface View {
  scaleX: number;
  scaleY: number;
  offsetX: number;
  offsetY: number;
}

/** The view that fits d x layers cells into width x height. */
export function fitView(layers: number, d: number, width: number, height: number): View {
  return { scaleX: width / d, scaleY: height / layers, offsetX: 0, offsetY: 0 };
}

/** The cell under screen point (x, y), or null outside the map. */
export function cellAt(view: View, layers: number, d: number, x: number, y: number): { layer: number; column: number } | null {
  const column = Math.floor((x - view.offsetX) / view.scaleX);
  const layer = Math.floor((y - view.offsetY) / view.scaleY);
  if (column < 0 || column >= d || layer < 0 || layer >= layers) return null;
  return { layer, column };
}

/** Zoom by `factor` along x (columns) around screen x = px; rows keep their height (few layers). */
export function zoomAt(view: View, factor: number, px: number, minScale: number, maxScale: number): View {
  const scaleX = Math.min(maxScale, Math.max(minScale, view.scaleX * factor));
  const f = scaleX / view.scaleX;
  return { ...view, scaleX, offsetX: px - (px - view.offsetX) * f };
}

/** Panning stops at the map's ends: zoomed in, the map covers the canvas; zoomed out, it stays inside. */
export function clampView(view: View, d: number, width: number): View {
  const w = d * view.scaleX;
  let offsetX = view.offsetX;
  if (w <= width) offsetX = Math.min(Math.max(offsetX, 0), width - w);
  else offsetX = Math.min(Math.max(offsetX, width - w), 0);
  if (!Number.isFinite(offsetX)) offsetX = 0;
  return { ...view, offsetX };
}
