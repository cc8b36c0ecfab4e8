/**
 * The report's figures, built from a run's files with the primitives of svg.ts:
 *
 *   nmdFigure       the paper's Figure 2: layers (site names) on the y axis, neurons sorted by |NMD|
 *                   within each layer on the x axis, colour = |NMD| (NMD = mean gen - mean mem).
 *                   Binning (binSortedAbs): each layer's |NMD| is sorted descending; when d exceeds
 *                   maxColumns (400), the sorted ranks are cut into `cols = maxColumns` bins of
 *                   floor/ceil(d / cols) neighbouring ranks, bin b = ranks [floor(b d / cols),
 *                   floor((b + 1) d / cols)), and a column shows the MAX |NMD| of its bin (so the
 *                   strongest neurons never vanish into an average). d <= 400: one column per neuron.
 *   probeFigure     the paper's Figures 3/4: held-out probe accuracy by layer, logistic and MLP, 95%
 *                   Wilson bands, chance line at 0.5, site names on the x axis.
 *   sweepFigure     sweep.json's alpha x topN grid per direction: targeted success and the best
 *                   baseline per cell, coloured by their difference (points); the paper's setting
 *                   outlined.
 *   trainingFigure  gen / mem / other % of the held-out evaluations during training, the kept
 *                   checkpoint marked (and the incontext guessing baseline where present).
 */
import type { ProbesFile } from '../analysis/probe-layers';
import type { SweepFile } from '../steer/files';
import { DIRECTIONS, directionEnds } from '../steer/intervention';
import { grid, heatmap, lineChart } from './svg';

/** Most columns of the NMD heatmap (see the header). */
export const MAX_COLUMNS = 400;

export interface BinnedRows {
  rows: number;
  /** Columns per row (= min(d, maxColumns)). */
  cols: number;
  /** Row-major [rows, cols]: column b of row l = max |value| of bin b of layer l's sorted |values|. */
  values: Float32Array;
  /** Neurons per column: the smallest and largest bin. */
  binSize: [number, number];
}

/** Per row: |values| sorted descending, then binned into at most maxColumns columns by max (see the header). */
export function binSortedAbs(values: ArrayLike<number>, rows: number, d: number, maxColumns = MAX_COLUMNS): BinnedRows {
  if (!Number.isInteger(rows) || !Number.isInteger(d) || rows < 1 || d < 1) throw new Error(`binSortedAbs: bad shape [${rows}, ${d}]`);
  if (values.length !== rows * d) throw new Error(`binSortedAbs: [${rows}, ${d}] needs ${rows * d} values, got ${values.length}`);
  if (!Number.isInteger(maxColumns) || maxColumns < 1) throw new Error(`binSortedAbs: maxColumns must be a positive integer, got ${maxColumns}`);
  const cols = Math.min(d, maxColumns);
  const out = new Float32Array(rows * cols);
  const sorted = new Float32Array(d);
  let minBin = Infinity;
  let maxBin = 0;
  for (let b = 0; b < cols; b++) {
    const size = Math.floor(((b + 1) * d) / cols) - Math.floor((b * d) / cols);
    minBin = Math.min(minBin, size);
    maxBin = Math.max(maxBin, size);
  }
  for (let l = 0; l < rows; l++) {
    for (let i = 0; i < d; i++) {
      const v = Math.abs(values[l * d + i]);
      sorted[i] = Number.isFinite(v) ? v : 0;
    }
    sorted.sort();
    sorted.reverse();
    for (let b = 0; b < cols; b++) {
      const lo = Math.floor((b * d) / cols);
      const hi = Math.floor(((b + 1) * d) / cols);
      let m = 0;
      for (let k = lo; k < hi; k++) m = Math.max(m, sorted[k]);
      out[l * cols + b] = m;
    }
  }
  return { rows, cols, values: out, binSize: [minBin, maxBin] };
}

/** The caption sentence that says how the columns were made. */
export function binningNote(d: number, binned: BinnedRows): string {
  if (binned.cols === d) return `one column per neuron (d = ${d})`;
  const [a, b] = binned.binSize;
  return `the d = ${d} sorted neurons of each layer are binned into ${binned.cols} columns of ${a === b ? a : `${a}-${b}`} neighbouring ranks; a column shows the largest |NMD| of its bin`;
}

export function nmdFigure(nmd: ArrayLike<number>, layers: number, d: number, siteNames: readonly string[]): { svg: string; binned: BinnedRows; vmax: number } {
  const binned = binSortedAbs(nmd, layers, d);
  let vmax = 0;
  for (const v of binned.values) vmax = Math.max(vmax, v);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const rank = f === 0 ? 1 : Math.round(f * d);
    return { at: f === 0 ? 0 : (binned.cols * rank) / d, label: String(rank) };
  });
  const svg = heatmap({
    title: `|NMD| per neuron, sorted within each layer (NMD = mean gen - mean mem), ${layers} x ${d}`,
    values: binned.values, rows: layers, cols: binned.cols,
    rowLabels: siteNames.length === layers ? [...siteNames] : Array.from({ length: layers }, (_, l) => `layer ${l}`),
    vmax, colorLabel: '|NMD|', yLabel: 'layer (site)',
    xLabel: `neuron rank by |NMD| within its layer (1 = largest)${binned.cols < d ? `, ${binned.cols} bins of max |NMD|` : ''}`,
    xTicks: ticks,
  });
  return { svg, binned, vmax };
}

export function probeFigure(p: ProbesFile): string {
  const layers = Math.max(p.mlp.length, p.logistic.length);
  const names = (p.logistic.length >= p.mlp.length ? p.logistic : p.mlp).map((x) => x.site);
  const all = [...p.mlp, ...p.logistic];
  const lowest = Math.min(0.5, ...all.map((x) => x.ci[0]));
  const y0 = Math.max(0, Math.floor((lowest - 0.02) * 10) / 10);
  const every = Math.max(1, Math.ceil(layers / 28));
  return lineChart({
    title: `Probe accuracy by layer (held out: ${2 * p.split.testPairs} members of ${p.split.testPairs} pairs; 95% Wilson CI)`,
    series: [
      { name: 'logistic', color: '#1f77b4', marker: 'circle', points: p.logistic.map((x) => ({ x: x.layer, y: x.accuracy, lo: x.ci[0], hi: x.ci[1] })) },
      { name: 'MLP (paper: 2 x 2d, Adam 1e-5)', color: '#d62728', marker: 'square', dash: '6 3', points: p.mlp.map((x) => ({ x: x.layer, y: x.accuracy, lo: x.ci[0], hi: x.ci[1] })) },
    ],
    xDomain: [-0.3, Math.max(0.3, layers - 0.7)], yDomain: [y0, 1],
    xTicks: names.map((s, l) => ({ at: l, label: s })).filter((_, l) => l % every === 0 || l === layers - 1),
    hLines: [{ y: p.chance, label: `chance ${p.chance}`, color: '#555' }],
    xLabel: 'layer (site)', yLabel: 'held-out accuracy', height: 320,
  });
}

export function sweepFigure(f: SweepFile): string {
  const cell = (alpha: number, topN: number, dir: string, method: string) =>
    f.cells.find((x) => x.alpha === alpha && x.topN === topN && x.direction === dir && x.method === method);
  const margins = f.cells.filter((x) => x.method === 'targeted').map((t) => {
    const b = bestBaseline(t.alpha, t.topN, t.direction);
    return b === null ? t.success : t.success - b;
  });
  function bestBaseline(alpha: number, topN: number, dir: string): number | null {
    const bs = ['random-neurons', 'uniform'].map((m) => cell(alpha, topN, dir, m)).filter((x) => x !== undefined);
    return bs.length ? Math.max(...bs.map((b) => b.success)) : null;
  }
  const scale = Math.max(10, ...margins.map(Math.abs));
  const paper = f.paperSetting;
  return grid({
    title: `Steering sweep: targeted success by alpha x topN (n = ${f.starts.found['mem->gen']} / ${f.starts.found['gen->mem']} starting inputs)`,
    rowAxis: 'alpha', colAxis: 'topN (fraction of neurons)',
    legend: { label: `targeted minus best baseline (points), scale +-${scale.toFixed(0)}`, low: 'baseline better', high: 'targeted better' },
    note: paper ? `outlined: the paper's setting (topN ${paper.topN}, alpha ${paper.alpha})` : undefined,
    panels: DIRECTIONS.map((dir) => ({
      title: `${dir.replace('->', ' \u2192 ')}: % ${directionEnds(dir).to}, targeted (best baseline)`,
      rowLabels: f.alphas.map(String), colLabels: f.topNs.map(String),
      color: (r, j) => {
        const t = cell(f.alphas[r], f.topNs[j], dir, 'targeted');
        if (!t) return null;
        const b = bestBaseline(f.alphas[r], f.topNs[j], dir);
        return (t.success - (b ?? 0)) / scale;
      },
      label: (r, j) => {
        const t = cell(f.alphas[r], f.topNs[j], dir, 'targeted');
        if (!t) return ['-'];
        const b = bestBaseline(f.alphas[r], f.topNs[j], dir);
        return [`${t.success.toFixed(1)}%`, b === null ? `other ${t.pct.other.toFixed(0)}%` : `(${b.toFixed(0)}%) other ${t.pct.other.toFixed(0)}%`];
      },
      outline: (r, j) => paper !== null && f.alphas[r] === paper.alpha && f.topNs[j] === paper.topN,
    })),
  });
}

/** One held-out evaluation of train-log.jsonl. */
export interface EvalPoint {
  step: number;
  gen: number;
  mem: number;
  other: number;
  guess: number | null;
  /** mem% of the same guess (incontext); absent in logs written before it was recorded. */
  memGuess?: number | null;
}

export function trainingFigure(evals: readonly EvalPoint[], keptStep: number | null): string {
  const last = evals[evals.length - 1]?.step ?? 1;
  const guess = evals.find((e) => e.guess !== null)?.guess ?? null;
  const memGuess = evals.find((e) => e.memGuess != null)?.memGuess ?? null;
  return lineChart({
    title: 'Held-out evaluation during training (% of the test set)',
    series: [
      { name: 'gen', color: '#2ca02c', marker: 'circle', points: evals.map((e) => ({ x: e.step, y: 100 * e.gen })) },
      { name: 'mem', color: '#9467bd', marker: 'square', points: evals.map((e) => ({ x: e.step, y: 100 * e.mem })) },
      { name: 'other', color: '#8c8c8c', marker: 'none', dash: '4 3', points: evals.map((e) => ({ x: e.step, y: 100 * e.other })) },
    ],
    xDomain: [0, last], yDomain: [0, 100],
    hLines: [
      ...(guess === null ? [] : [{ y: 100 * guess, label: `guessing baseline ${(100 * guess).toFixed(1)}% (gen at or below it is not evidence of generalization)`, color: '#2ca02c' }]),
      ...(memGuess === null ? [] : [{ y: 100 * memGuess, label: `mem by the same guess ${(100 * memGuess).toFixed(1)}% (mem at or below it is not evidence of recall)`, color: '#9467bd' }]),
    ],
    vLines: keptStep === null ? [] : [{ x: keptStep, label: `kept: step ${keptStep}`, color: '#333' }],
    xLabel: 'training step', yLabel: '% of test inputs', height: 280,
    yFormat: (v) => `${v.toFixed(0)}%`,
  });
}
