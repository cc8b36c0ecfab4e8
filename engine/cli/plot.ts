/**
 * A text line chart for terminals: values are averaged into `width` buckets and drawn on `height`
 * rows; log scale maps v to log10(v) so that a loss falling by 100x stays readable.
 */
export function textChart(values: readonly number[], opts: { width?: number; height?: number; log?: boolean; label?: string } = {}): string {
  const { width = 60, height = 12, log = true, label = '' } = opts;
  if (values.length === 0) return '(no values)';
  const buckets: number[] = [];
  for (let b = 0; b < Math.min(width, values.length); b++) {
    const lo = Math.floor((b * values.length) / Math.min(width, values.length));
    const hi = Math.max(lo + 1, Math.floor(((b + 1) * values.length) / Math.min(width, values.length)));
    const slice = values.slice(lo, hi);
    buckets.push(slice.reduce((p, q) => p + q, 0) / slice.length);
  }
  const f = (v: number) => (log ? Math.log10(Math.max(v, 1e-12)) : v);
  const ys = buckets.map(f);
  const top = Math.max(...ys);
  const bottom = Math.min(...ys);
  const span = top - bottom || 1;
  const rows: string[] = [];
  const fmt = (y: number) => (log ? 10 ** y : y).toPrecision(3).padStart(9);
  for (let r = 0; r < height; r++) {
    const yRow = top - (r / (height - 1)) * span;
    const cells = ys.map((y) => (Math.abs(y - yRow) <= span / (2 * (height - 1)) ? '•' : ' '));
    const axis = r === 0 || r === height - 1 || r === Math.floor(height / 2) ? fmt(yRow) : ' '.repeat(9);
    rows.push(`${axis} ┤${cells.join('')}`);
  }
  rows.push(`${' '.repeat(9)} └${'─'.repeat(ys.length)}`);
  rows.push(`${' '.repeat(11)}${label}`);
  return rows.join('\n');
}
