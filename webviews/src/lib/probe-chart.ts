/**
 * The probe chart's geometry: held-out accuracy by layer for the MLP and the logistic probe, each
 * with its 95% Wilson interval as a band, and the chance line.
 *
 *   x(layer)   layers evenly spaced; the two probes are drawn at layer -/+ OFFSET so that their
 *              intervals do not hide each other
 *   y range    [min(lower CI, chance) - 0.05, max(upper CI) + 0.05], clipped to [0, 1]
 *   band       the polygon through (x, ci[1]) left to right, then (x, ci[0]) right to left
 */
import type { ProbeLayerRow } from '../../../server/src/protocol';
import { type Scale, linearScale } from './axis-scale';

export const OFFSET = 0.08;

export interface ChartBox {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export function yDomain(series: ProbeLayerRow[][], chance: number): [number, number] {
  let lo = chance;
  let hi = chance;
  for (const rows of series) for (const r of rows) {
    lo = Math.min(lo, r.ci[0], r.accuracy);
    hi = Math.max(hi, r.ci[1], r.accuracy);
  }
  return [Math.max(0, lo - 0.05), Math.min(1, hi + 0.05)];
}

export function xScale(layers: number, box: ChartBox): Scale {
  return linearScale([-0.5, layers - 0.5], [box.left, box.width - box.right]);
}

export function yScale(domain: [number, number], box: ChartBox): Scale {
  return linearScale(domain, [box.height - box.bottom, box.top]);
}

/** SVG points of the accuracy line and of the CI band for one probe. */
export function seriesGeometry(rows: ProbeLayerRow[], x: Scale, y: Scale, shift: number): { line: string; band: string; points: { cx: number; cy: number; row: ProbeLayerRow }[] } {
  const pts = rows.map((r) => ({ cx: x(r.layer + shift), cy: y(r.accuracy), row: r }));
  const upper = rows.map((r) => `${x(r.layer + shift).toFixed(1)},${y(r.ci[1]).toFixed(1)}`);
  const lower = rows.map((r) => `${x(r.layer + shift).toFixed(1)},${y(r.ci[0]).toFixed(1)}`).reverse();
  return { line: pts.map((p) => `${p.cx.toFixed(1)},${p.cy.toFixed(1)}`).join(' '), band: [...upper, ...lower].join(' '), points: pts };
}
