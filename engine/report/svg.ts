/**
 * Small SVG chart primitives for the HTML report (engine/report/html.ts): a heatmap of rows of
 * values with a colour bar, a line chart with confidence bands and reference lines, and a grid of
 * annotated cells. Output is plain SVG 1.1 text: no scripts, no external fonts or images, no ids (so
 * several charts can be inlined in one HTML page), every text escaped. `standalone()` adds the XML
 * declaration for a .svg file.
 *
 * Heatmap size: rows are drawn as runs of equal colour. Values are quantised to COLOR_LEVELS levels
 * and neighbouring columns of the same level share one <rect>, so a row costs at most
 * min(columns, COLOR_LEVELS) rects when its values are sorted (figures.ts sorts them): a 28 x 400
 * heatmap stays near 100 KB.
 */

/** Levels of the sequential colour scale (and so the most rects per sorted heatmap row). */
export const COLOR_LEVELS = 64;

export const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif";

/** Escapes text for XML / HTML content and attribute values. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** A coordinate with at most one decimal (keeps the files small). */
const c = (x: number): string => String(Math.round(x * 10) / 10);

// ---------------------------------------------------------------------------------------------
// Colour scales.

type RGB = [number, number, number];

const hex = (h: string): RGB => [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
const toHex = (rgb: RGB): string => '#' + rgb.map((v) => Math.round(Math.max(0, Math.min(255, v))).toString(16).padStart(2, '0')).join('');

function ramp(stops: readonly string[]): (t: number) => string {
  const rgb = stops.map(hex);
  return (t: number) => {
    const x = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0)) * (rgb.length - 1);
    const i = Math.min(rgb.length - 2, Math.floor(x));
    const f = x - i;
    return toHex([0, 1, 2].map((k) => rgb[i][k] + f * (rgb[i + 1][k] - rgb[i][k])) as RGB);
  };
}

/** Sequential, light (0) to dark (1): matplotlib's magma reversed, readable on a white page. */
export const sequential = ramp(['#fcfdbf', '#fecf92', '#fe9f6d', '#f1605d', '#cd4071', '#9e2f7f', '#721f81', '#440f76', '#180f3d']);

/** Diverging, red (-1) through near-white (0) to blue (+1). */
export const diverging = ramp(['#b2182b', '#d6604d', '#f4a582', '#fddbc7', '#f7f7f7', '#d1e5f0', '#92c5de', '#4393c3', '#2166ac']);

/** The quantised level of t in [0, 1] (0 .. COLOR_LEVELS - 1). */
export const level = (t: number): number => Math.max(0, Math.min(COLOR_LEVELS - 1, Math.floor((Number.isFinite(t) ? t : 0) * COLOR_LEVELS)));

/** Black or white text, whichever reads better on `fill` (#rrggbb). */
export function textOn(fill: string): string {
  const [r, g, b] = hex(fill);
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? '#111' : '#fff';
}

// ---------------------------------------------------------------------------------------------
// Document and text helpers.

/** An <svg> element with a viewBox; `body` is its content. */
export function svgDoc(width: number, height: number, body: string, title?: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${c(width)}" height="${c(height)}" viewBox="0 0 ${c(width)} ${c(height)}" font-family="${esc(FONT)}" font-size="12" role="img">` +
    (title ? `<title>${esc(title)}</title>` : '') + `<rect width="${c(width)}" height="${c(height)}" fill="#fff"/>` + body + '</svg>';
}

/** The SVG as a standalone file (XML declaration, trailing newline). */
export function standalone(svg: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${svg}\n`;
}

export function text(x: number, y: number, s: string, opts: { anchor?: 'start' | 'middle' | 'end'; size?: number; weight?: string; fill?: string; rotate?: number; baseline?: 'middle' | 'hanging' } = {}): string {
  const attrs = [`x="${c(x)}"`, `y="${c(y)}"`];
  if (opts.anchor && opts.anchor !== 'start') attrs.push(`text-anchor="${opts.anchor}"`);
  if (opts.size) attrs.push(`font-size="${opts.size}"`);
  if (opts.weight) attrs.push(`font-weight="${opts.weight}"`);
  if (opts.fill) attrs.push(`fill="${opts.fill}"`);
  if (opts.baseline) attrs.push(`dominant-baseline="${opts.baseline === 'middle' ? 'central' : 'hanging'}"`);
  if (opts.rotate) attrs.push(`transform="rotate(${opts.rotate} ${c(x)} ${c(y)})"`);
  return `<text ${attrs.join(' ')}>${esc(s)}</text>`;
}

const line = (x1: number, y1: number, x2: number, y2: number, stroke: string, extra = ''): string =>
  `<line x1="${c(x1)}" y1="${c(y1)}" x2="${c(x2)}" y2="${c(y2)}" stroke="${stroke}"${extra ? ' ' + extra : ''}/>`;

/** Roughly the width of `s` at font size `size` (for layout only). */
export const textWidth = (s: string, size = 12): number => s.length * size * 0.58;

/** "Nice" tick values covering [lo, hi], about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** A tick label: no more digits than the step needs. */
export function tickLabel(v: number, ticks: readonly number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(v) || 1;
  let digits = 0;
  while (digits < 6 && Math.abs(Math.round(step * 10 ** digits) - step * 10 ** digits) > 1e-6 * 10 ** digits) digits++;
  return v.toFixed(digits);
}

// ---------------------------------------------------------------------------------------------
// Heatmap.

export interface HeatmapOptions {
  title: string;
  /** Row-major values, rows x cols. */
  values: ArrayLike<number>;
  rows: number;
  cols: number;
  /** One label per row (drawn on the left). */
  rowLabels: string[];
  /** Colour scale maximum (values are clamped to [0, vmax]); the bar goes from 0 to vmax. */
  vmax: number;
  colorLabel: string;
  xLabel: string;
  yLabel: string;
  /** Ticks on the x axis: column position (0 .. cols, fractional allowed) and label. */
  xTicks: { at: number; label: string }[];
  width?: number;
}

/** A heatmap with a colour bar; row 0 at the top. Equal neighbouring colours are merged (see the header). */
export function heatmap(o: HeatmapOptions): string {
  const width = o.width ?? 900;
  const labelW = Math.max(...o.rowLabels.map((l) => textWidth(l, 11)), 20) + 10;
  const left = 28 + labelW;
  const barW = 14;
  const right = 90;
  const top = 34;
  const rowH = Math.max(10, Math.min(40, 360 / Math.max(1, o.rows)));
  const plotW = width - left - right;
  const plotH = rowH * o.rows;
  const height = top + plotH + 56;
  const colW = plotW / Math.max(1, o.cols);
  const vmax = o.vmax > 0 ? o.vmax : 1;
  const parts: string[] = [text(left, 20, o.title, { size: 14, weight: '600' })];
  parts.push(`<g shape-rendering="crispEdges">`);
  for (let r = 0; r < o.rows; r++) {
    const y = top + r * rowH;
    let start = 0;
    let lv = level(o.values[r * o.cols] / vmax);
    for (let j = 1; j <= o.cols; j++) {
      const next = j < o.cols ? level(o.values[r * o.cols + j] / vmax) : -1;
      if (next !== lv) {
        // Edges on a shared grid of 0.1 px, so that neighbouring runs meet exactly (no hairline gaps).
        const x0 = Math.round((left + start * colW) * 10) / 10;
        const x1 = Math.round((left + j * colW) * 10) / 10;
        parts.push(`<rect x="${c(x0)}" y="${c(y)}" width="${c(Math.max(0.1, x1 - x0))}" height="${c(rowH)}" fill="${sequential((lv + 0.5) / COLOR_LEVELS)}"/>`);
        start = j;
        lv = next;
      }
    }
  }
  parts.push('</g>');
  parts.push(`<rect x="${c(left)}" y="${c(top)}" width="${c(plotW)}" height="${c(plotH)}" fill="none" stroke="#888"/>`);
  // Row labels: every row when they fit, else every k-th.
  const every = Math.max(1, Math.ceil(11 / rowH));
  for (let r = 0; r < o.rows; r++) {
    if (r % every !== 0 && r !== o.rows - 1) continue;
    parts.push(text(left - 6, top + (r + 0.5) * rowH, o.rowLabels[r], { anchor: 'end', size: 11, baseline: 'middle' }));
  }
  parts.push(text(14, top + plotH / 2, o.yLabel, { anchor: 'middle', size: 12, rotate: -90 }));
  for (const t of o.xTicks) {
    const x = left + t.at * colW;
    parts.push(line(x, top + plotH, x, top + plotH + 4, '#555'));
    parts.push(text(x, top + plotH + 16, t.label, { anchor: 'middle', size: 11 }));
  }
  parts.push(text(left + plotW / 2, top + plotH + 36, o.xLabel, { anchor: 'middle', size: 12 }));
  // Colour bar: stacked rects (no gradient ids), 0 at the bottom.
  const bx = left + plotW + 18;
  const steps = 32;
  const bh = plotH / steps;
  parts.push(`<g shape-rendering="crispEdges">`);
  for (let k = 0; k < steps; k++) {
    parts.push(`<rect x="${c(bx)}" y="${c(top + plotH - (k + 1) * bh)}" width="${barW}" height="${c(bh + 0.5)}" fill="${sequential((k + 0.5) / steps)}"/>`);
  }
  parts.push('</g>');
  parts.push(`<rect x="${c(bx)}" y="${c(top)}" width="${barW}" height="${c(plotH)}" fill="none" stroke="#888"/>`);
  const ticks = niceTicks(0, vmax, plotH > 150 ? 4 : 2).filter((v) => v <= vmax);
  for (const v of ticks) {
    const y = top + plotH - (v / vmax) * plotH;
    parts.push(line(bx + barW, y, bx + barW + 3, y, '#555'));
    parts.push(text(bx + barW + 5, y, tickLabel(v, ticks), { size: 10, baseline: 'middle' }));
  }
  parts.push(text(bx + barW / 2, top - 8, o.colorLabel, { anchor: 'middle', size: 11 }));
  return svgDoc(width, height, parts.join(''), o.title);
}

// ---------------------------------------------------------------------------------------------
// Line chart.

export interface Point {
  x: number;
  y: number;
  /** Optional band (e.g. a 95% CI). */
  lo?: number;
  hi?: number;
}

export interface Series {
  name: string;
  color: string;
  points: Point[];
  marker?: 'circle' | 'square' | 'none';
  dash?: string;
}

export interface LineChartOptions {
  title: string;
  series: Series[];
  xDomain: [number, number];
  yDomain: [number, number];
  xLabel: string;
  yLabel: string;
  /** Explicit x ticks (e.g. site names at layer positions); default: nice numbers. */
  xTicks?: { at: number; label: string }[];
  /** Horizontal reference lines (chance level, a baseline). */
  hLines?: { y: number; label: string; color?: string }[];
  /** Vertical markers (the kept checkpoint). */
  vLines?: { x: number; label: string; color?: string }[];
  /** Format of y tick labels. */
  yFormat?: (v: number) => string;
  width?: number;
  height?: number;
}

export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 900;
  const height = o.height ?? 320;
  const xTicks = o.xTicks ?? niceTicks(o.xDomain[0], o.xDomain[1], 8).map((v, _i, all) => ({ at: v, label: tickLabel(v, all) }));
  const rotate = xTicks.length > 8 && xTicks.some((t) => t.label.length > 4);
  const tickRoom = rotate ? Math.min(110, Math.max(...xTicks.map((t) => textWidth(t.label, 10))) * 0.72 + 12) : 18;
  const left = 62;
  const right = 20;
  const top = 52;
  const bottom = tickRoom + 34;
  const pw = width - left - right;
  const ph = height - top - bottom;
  const [x0, x1] = o.xDomain;
  const [y0, y1] = o.yDomain;
  const sx = (x: number) => left + (x1 === x0 ? pw / 2 : ((x - x0) / (x1 - x0)) * pw);
  const sy = (y: number) => top + ph - ((Math.max(y0, Math.min(y1, y)) - y0) / (y1 - y0 || 1)) * ph;
  const parts: string[] = [text(left, 20, o.title, { size: 14, weight: '600' })];
  // Legend, under the title.
  let lx = left;
  for (const s of o.series) {
    parts.push(line(lx, 38, lx + 18, 38, s.color, `stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}`));
    parts.push(text(lx + 23, 38, s.name, { size: 11, baseline: 'middle' }));
    lx += 40 + textWidth(s.name, 11);
  }
  // Grid and axes.
  const yTicks = niceTicks(y0, y1, 5);
  const yfmt = o.yFormat ?? ((v: number) => tickLabel(v, yTicks));
  for (const v of yTicks) {
    parts.push(line(left, sy(v), left + pw, sy(v), '#e5e5e5'));
    parts.push(text(left - 6, sy(v), yfmt(v), { anchor: 'end', size: 10, baseline: 'middle' }));
  }
  parts.push(`<rect x="${c(left)}" y="${c(top)}" width="${c(pw)}" height="${c(ph)}" fill="none" stroke="#888"/>`);
  for (const t of xTicks) {
    const x = sx(t.at);
    parts.push(line(x, top + ph, x, top + ph + 4, '#555'));
    parts.push(rotate
      ? text(x, top + ph + 10, t.label, { anchor: 'end', size: 10, rotate: -40, baseline: 'middle' })
      : text(x, top + ph + 16, t.label, { anchor: 'middle', size: 11 }));
  }
  parts.push(text(left + pw / 2, height - 8, o.xLabel, { anchor: 'middle', size: 12 }));
  parts.push(text(16, top + ph / 2, o.yLabel, { anchor: 'middle', size: 12, rotate: -90 }));
  // Labels above their lines, highest first; one that would touch the label above it goes below its line.
  let lastLabel = -Infinity;
  for (const h of [...(o.hLines ?? [])].sort((a, b) => b.y - a.y)) {
    if (h.y < y0 || h.y > y1) continue;
    parts.push(line(left, sy(h.y), left + pw, sy(h.y), h.color ?? '#666', 'stroke-dasharray="5 4"'));
    const at = sy(h.y) - 5 - lastLabel < 12 ? sy(h.y) + 13 : sy(h.y) - 5;
    parts.push(text(left + pw - 4, at, h.label, { anchor: 'end', size: 10, fill: h.color ?? '#444' }));
    lastLabel = at;
  }
  for (const v of o.vLines ?? []) {
    parts.push(line(sx(v.x), top, sx(v.x), top + ph, v.color ?? '#666', 'stroke-dasharray="2 3"'));
    // The label on the side with room (a marker at the right edge gets its label on the left).
    const onLeft = sx(v.x) + 8 + textWidth(v.label, 10) > left + pw;
    parts.push(text(sx(v.x) + (onLeft ? -4 : 4), top + 11, v.label, { size: 10, fill: v.color ?? '#444', anchor: onLeft ? 'end' : 'start' }));
  }
  // Bands first, then lines and markers on top.
  for (const s of o.series) {
    const band = s.points.filter((p) => p.lo !== undefined && p.hi !== undefined);
    if (band.length >= 2) {
      const pts = [...band.map((p) => `${c(sx(p.x))},${c(sy(p.hi as number))}`), ...band.reverse().map((p) => `${c(sx(p.x))},${c(sy(p.lo as number))}`)];
      parts.push(`<polygon points="${pts.join(' ')}" fill="${s.color}" fill-opacity="0.15" stroke="none"/>`);
    } else if (band.length === 1) {
      const p = band[0];
      parts.push(line(sx(p.x), sy(p.lo as number), sx(p.x), sy(p.hi as number), s.color, 'stroke-opacity="0.5" stroke-width="6"'));
    }
  }
  for (const s of o.series) {
    if (s.points.length >= 2) {
      parts.push(`<polyline points="${s.points.map((p) => `${c(sx(p.x))},${c(sy(p.y))}`).join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    }
    // A lone point has no line: it gets a marker even when the series has none.
    for (const p of s.marker === 'none' && s.points.length > 1 ? [] : s.points) {
      parts.push(s.marker === 'square'
        ? `<rect x="${c(sx(p.x) - 3.5)}" y="${c(sy(p.y) - 3.5)}" width="7" height="7" fill="${s.color}"/>`
        : `<circle cx="${c(sx(p.x))}" cy="${c(sy(p.y))}" r="3.5" fill="${s.color}"/>`);
    }
  }
  return svgDoc(width, height, parts.join(''), o.title);
}

// ---------------------------------------------------------------------------------------------
// Annotated grid (e.g. a sweep: rows alpha, columns topN).

export interface GridPanel {
  title: string;
  rowLabels: string[];
  colLabels: string[];
  /** Cell colour value in [-1, 1] (diverging scale) or null (grey: no data). */
  color: (r: number, c: number) => number | null;
  /** One or two lines of text per cell. */
  label: (r: number, c: number) => [string, string?];
  /** Cells drawn with a thick outline (e.g. the paper's setting). */
  outline?: (r: number, c: number) => boolean;
}

export interface GridOptions {
  title: string;
  panels: GridPanel[];
  rowAxis: string;
  colAxis: string;
  /** Legend of the colour scale: label and the meaning of -1 and +1. */
  legend: { label: string; low: string; high: string };
  note?: string;
  width?: number;
}

/** The font size, at most `size`, at which `s` fits in `room` pixels (never below 6). */
function fitSize(s: string, size: number, room: number): number {
  const w = textWidth(s, size);
  return w <= room ? size : Math.max(6, Math.floor((size * room * 10) / w) / 10);
}

export function grid(o: GridOptions): string {
  const width = o.width ?? 900;
  const gap = 36;
  const left = 70;
  const top = 56;
  const cellH = 38;
  const panelW = (width - left - gap * (o.panels.length - 1) - 20) / o.panels.length;
  const rows = Math.max(...o.panels.map((p) => p.rowLabels.length));
  const height = top + rows * cellH + 96;
  const parts: string[] = [text(20, 20, o.title, { size: 14, weight: '600' })];
  o.panels.forEach((p, k) => {
    const px = left + k * (panelW + gap);
    const cw = panelW / p.colLabels.length;
    parts.push(text(px + panelW / 2, 44, p.title, { anchor: 'middle', size: 12, weight: '600' }));
    for (let r = 0; r < p.rowLabels.length; r++) {
      for (let j = 0; j < p.colLabels.length; j++) {
        const v = p.color(r, j);
        const fill = v === null ? '#eeeeee' : diverging((v + 1) / 2);
        const x = px + j * cw;
        const y = top + r * cellH;
        parts.push(`<rect x="${c(x)}" y="${c(y)}" width="${c(cw)}" height="${cellH}" fill="${fill}" stroke="#fff"/>`);
        const [a, b] = p.label(r, j);
        const ink = textOn(fill);
        parts.push(text(x + cw / 2, y + (b ? 15 : 19), a, { anchor: 'middle', size: 12, weight: '600', fill: ink, baseline: 'middle' }));
        if (b) parts.push(text(x + cw / 2, y + 29, b, { anchor: 'middle', size: fitSize(b, 9.5, cw - 6), fill: ink, baseline: 'middle' }));
        if (p.outline?.(r, j)) parts.push(`<rect x="${c(x + 1.5)}" y="${c(y + 1.5)}" width="${c(cw - 3)}" height="${cellH - 3}" fill="none" stroke="#111" stroke-width="2.5"/>`);
      }
      if (k === 0) parts.push(text(px - 8, top + (r + 0.5) * cellH, p.rowLabels[r], { anchor: 'end', size: 11, baseline: 'middle' }));
    }
    for (let j = 0; j < p.colLabels.length; j++) parts.push(text(px + (j + 0.5) * cw, top + p.rowLabels.length * cellH + 15, p.colLabels[j], { anchor: 'middle', size: 11 }));
    parts.push(text(px + panelW / 2, top + p.rowLabels.length * cellH + 32, o.colAxis, { anchor: 'middle', size: 11 }));
  });
  parts.push(text(16, top + (rows * cellH) / 2, o.rowAxis, { anchor: 'middle', size: 12, rotate: -90 }));
  // Legend: a small diverging bar.
  const ly = top + rows * cellH + 52;
  const lw = 160;
  parts.push(text(left, ly + 5, o.legend.low, { anchor: 'start', size: 10, baseline: 'middle' }));
  const bx = left + textWidth(o.legend.low, 10) + 8;
  for (let k = 0; k < 16; k++) parts.push(`<rect x="${c(bx + (k * lw) / 16)}" y="${c(ly)}" width="${c(lw / 16 + 0.5)}" height="10" fill="${diverging((k + 0.5) / 16)}"/>`);
  parts.push(text(bx + lw + 8, ly + 5, o.legend.high, { size: 10, baseline: 'middle' }));
  parts.push(text(bx + lw / 2, ly + 24, o.legend.label, { anchor: 'middle', size: 10 }));
  if (o.note) parts.push(text(width - 20, ly + 24, o.note, { anchor: 'end', size: 10, fill: '#444' }));
  return svgDoc(width, height, parts.join(''), o.title);
}
