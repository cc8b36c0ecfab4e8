/**
 * The alpha x topN grid of steering (the paper's grid search, appendix: "if topN or alpha are too
 * small the intervention does nothing; too large, it disrupts inference"):
 *
 *   for each topN:   re-rank ALL (layer, neuron) by |rho| from rho.npy / nmd.npy (rank.ts), keep
 *                    k = topCount(topN, L * d)  (not the list in neurons.json, which analyze cut at its
 *                    own topN);
 *   for each alpha:  for each direction, steer the SAME starting inputs (steer-eval.ts: drawStarts,
 *                    drawn once for the whole grid) with the targeted vectors and, unless
 *                    baselines = false, with both baselines (seeds: steer-eval.ts baselineSeed, which
 *                    depends on k, not alpha: along a row only the scale changes);
 *   cell:            success = % gen (mem->gen) or % mem (gen->mem), and % other, with n.
 *   best:            the (alpha, topN) whose worst direction has the largest margin,
 *                    margin = targeted success - max(baseline successes)  (without baselines: the
 *                    targeted success itself). Ties: smaller alpha, then smaller topN.
 * Cells run topN-major, alpha ascending (sweepEntries); when interrupted (SteerInterrupted between
 * generate calls) the result holds the finished cells and complete = false.
 *
 * Shards (steer/shards.ts, docs/cluster.md): with `shard`, the starting inputs are drawn as
 * steer-eval's shards draw them (steer-eval.ts drawStarts), every cell runs on all of them, and the
 * merge builds sweep.json from the per-input results with sweepCell and sweepFile below.
 */
import { rankNeurons } from '../analysis/rank';
import type { Shard } from '../analysis/shards';
import { familySiteName } from '../models/sites';
import type { SteerAt } from '../models/hooks';
import type { Behaviour } from '../tasks/task';
import {
  PAPER_GPT2_SETTING,
  PAPER_LLAMA_SETTING,
  type StartsInfo,
  type SweepBest,
  type SweepCell,
  type SweepFile,
} from './files';
import { BASELINES, DIRECTIONS, type Direction, type Intervention, directionEnds, targetedIntervention } from './intervention';
import {
  type CellResult,
  type SteerModel,
  type SteerRun,
  type SteerSetup,
  type Starts,
  SteerInterrupted,
  baselineDraws as baselineDrawsOf,
  drawStarts,
  meanFirst,
  runDraws,
  tally,
  steerAtNote,
} from './steer-eval';

export const SWEEP_ALPHAS: readonly number[] = [1, 5, 20, 60, 120];
export const SWEEP_TOPNS: readonly number[] = [0.01, 0.02, 0.05, 0.1, 0.2];

export interface SweepOptions {
  setup: SteerSetup<SteerRun>;
  /** A model of setup.run at the neurons' site. */
  model: SteerModel;
  alphas?: readonly number[];
  topNs?: readonly number[];
  /** Starting inputs per direction (default 100). */
  n?: number;
  seed: number;
  /** Also run the two baselines in every cell (default true). */
  baselines?: boolean;
  maxTries?: number;
  batch?: number;
  /** Beam width (1: greedy). */
  beams?: number;
  /** Where the shift applies (models/hooks.ts SteerAt; default 'all'). */
  steerAt?: SteerAt;
  /** Rank each topN (and draw the baselines) within these layers only (default: all). */
  layers?: number[];
  /** Random draws pooled in each baseline cell (steer-eval.ts header; default 1). */
  baselineDraws?: number;
  shouldStop?: () => boolean;
  onProgress?: (p: { phase: 'starts'; tried: number; found: number; wanted: number } | { phase: 'cells'; done: number; total: number; cell?: SweepCell }) => void;
  /** Starting inputs drawn before (e.g. by steer-eval with the same seed); drawn here when absent. */
  starts?: Starts;
  /** Run shard `index` of `count` only (steer-eval.ts drawStarts, steer/shards.ts); quota = starting inputs wanted per direction of it. */
  shard?: Shard & { quota: number };
}

export interface SweepResult {
  file: SweepFile;
  starts: Starts;
  /** Per cell of file.cells (same order): the steered outputs, classes and first-token probabilities of every starting input. */
  results: CellResult[];
}

function checkGrid(values: readonly number[], what: string, ok: (x: number) => boolean, rule: string): number[] {
  if (values.length === 0) throw new Error(`the ${what} grid is empty`);
  for (const x of values) if (!ok(x)) throw new Error(`${what} ${x}: ${rule}`);
  return [...new Set(values)].sort((a, b) => a - b);
}

/** The best (alpha, topN) of a grid's cells; null when no (alpha, topN) has both directions. */
export function bestCell(cells: readonly SweepCell[], baselines: boolean): SweepBest | null {
  const keys = [...new Set(cells.map((c) => `${c.alpha}|${c.topN}`))];
  let best: SweepBest | null = null;
  let bestScore = -Infinity;
  for (const key of keys) {
    const [alpha, topN] = key.split('|').map(Number);
    const here = cells.filter((c) => c.alpha === alpha && c.topN === topN);
    const per = DIRECTIONS.map((dir) => {
      const t = here.find((c) => c.direction === dir && c.method === 'targeted');
      const b = here.filter((c) => c.direction === dir && c.method !== 'targeted');
      const base = baselines && b.length > 0 ? Math.max(...b.map((c) => c.success)) : null;
      return t ? { success: t.success, base, margin: t.success - (base ?? 0) } : null;
    });
    if (per.some((p) => p === null)) continue;
    const [mg, gm] = per as { success: number; base: number | null; margin: number }[];
    const score = Math.min(mg.margin, gm.margin);
    const better = score > bestScore || (score === bestScore && best !== null && (alpha < best.alpha || (alpha === best.alpha && topN < best.topN)));
    if (better) {
      bestScore = score;
      best = {
        alpha, topN,
        success: { 'mem->gen': mg.success, 'gen->mem': gm.success },
        baseline: { 'mem->gen': mg.base, 'gen->mem': gm.base },
        margin: { 'mem->gen': mg.margin, 'gen->mem': gm.margin },
      };
    }
  }
  return best;
}

/** The alpha and topN axes of a grid: checked, deduplicated, ascending. */
export function sweepAxes(opts: Pick<SweepOptions, 'alphas' | 'topNs'>): { alphas: number[]; topNs: number[] } {
  return {
    alphas: checkGrid(opts.alphas ?? SWEEP_ALPHAS, 'alpha', (x) => Number.isFinite(x), 'must be a finite number'),
    topNs: checkGrid(opts.topNs ?? SWEEP_TOPNS, 'topN', (x) => x > 0 && x <= 1, 'must be a fraction in (0, 1]'),
  };
}

/** One intervention of the grid, with its place in it. */
export interface SweepEntry {
  alpha: number;
  topN: number;
  /** Neurons kept at topN. */
  count: number;
  direction: Direction;
  intervention: Intervention;
  /** The interventions the cell pools: [intervention], or a baseline's baselineDraws random draws (steer-eval.ts header). */
  draws: Intervention[];
}

/**
 * The grid's interventions in the order of its cells (topN-major, alpha ascending, then direction,
 * then targeted and the baselines), made lazily: one ranking per topN, vectors one cell at a time.
 */
export function* sweepEntries(setup: SteerSetup<SteerRun>, grid: { alphas: readonly number[]; topNs: readonly number[] }, seed: number, baselines: boolean, layers?: readonly number[], baselineDraws = 1): Generator<SweepEntry> {
  const { source, sourceInfo } = setup;
  const shape = { layers: sourceInfo.layers, d: sourceInfo.d };
  for (const topN of grid.topNs) {
    const ranked = rankNeurons(source.rho, source.nmd, shape.layers, shape.d, sourceInfo.site, topN, sourceInfo.family, layers);
    for (const alpha of grid.alphas) {
      for (const direction of DIRECTIONS) {
        const targeted = targetedIntervention(ranked, source.nmd, shape, alpha, direction);
        yield { alpha, topN, count: ranked.length, direction, intervention: targeted, draws: [targeted] };
        if (!baselines) continue;
        for (const kind of BASELINES) {
          const draws = baselineDrawsOf(kind, targeted, shape, seed, direction, baselineDraws, layers);
          yield { alpha, topN, count: ranked.length, direction, intervention: draws[0], draws };
        }
      }
    }
  }
}

/** The cell of a grid entry from the steered classes and first-token probabilities of its starting inputs (in stream order). */
export function sweepCell(e: SweepEntry, behaviours: readonly Behaviour[], probs: readonly { pGen: number; pMem: number | null }[]): SweepCell {
  const iv = e.intervention.description;
  const t = tally(e.direction, behaviours);
  return {
    alpha: e.alpha, topN: e.topN, count: e.count, direction: e.direction, method: iv.kind as SweepCell['method'],
    n: t.n, counts: t.counts, pct: t.pct, success: t.success, pFirst: meanFirst(probs), maxAbsShift: iv.maxAbsShift, layers: iv.layers,
  };
}

/** sweep.json's content from the starts and the cells (sweep's, or the merge of its shards', steer/shards.ts). */
export function sweepFile(setup: SteerSetup<SteerRun>, opts: { alphas: number[]; topNs: number[]; baselines: boolean; seed: number; beams?: number; steerAt?: SteerAt; layers?: number[] | null; baselineDraws?: number },
  starts: StartsInfo, cells: SweepCell[], complete: boolean, seconds: number): SweepFile {
  const { run, sourceInfo } = setup;
  const task = run.task;
  const warnings = [...setup.warnings];
  for (const dir of DIRECTIONS) {
    const found = starts.found[dir];
    if (found < starts.wanted) warnings.push(`${dir}: only ${found} of ${starts.wanted} starting inputs (unsteered ${directionEnds(dir).from}) in ${starts.tried} inputs tried`);
  }
  const paperSetting = sourceInfo.experiment === 'same-run' ? (sourceInfo.family === 'llama' ? PAPER_LLAMA_SETTING : PAPER_GPT2_SETTING)[task.name] ?? null : null;
  return {
    format: 'memgen-sweep/1', run: run.dir, task: task.name, taskDescription: task.description, modelHash: setup.modelHash,
    site: sourceInfo.site, neurons: sourceInfo, alphas: opts.alphas, topNs: opts.topNs, baselines: opts.baselines, seed: opts.seed, beams: opts.beams ?? 1,
    steerAt: opts.steerAt ?? 'all', layers: opts.layers ?? null, baselineDraws: opts.baselineDraws ?? 1, starts, cells, best: bestCell(cells, opts.baselines), paperSetting, complete, warnings,
    createdAt: new Date().toISOString(), seconds,
  };
}

/** Runs the grid; see the header. Returns sweep.json's content (not written). */
export async function sweep(opts: SweepOptions): Promise<SweepResult> {
  const { setup, model } = opts;
  const { sourceInfo } = setup;
  const task = setup.run.task;
  const grid = sweepAxes(opts);
  const n = opts.n ?? 100;
  const withBaselines = opts.baselines ?? true;
  if (model.site !== sourceInfo.site) throw new Error(`the model hooks site ${model.site}, the neurons are at ${sourceInfo.site}`);
  const ctl = { batch: opts.batch, shouldStop: opts.shouldStop, beams: opts.beams, steerAt: opts.steerAt };
  const started = Date.now();

  const starts = opts.starts ?? await drawStarts(task, model, {
    n, seed: opts.seed, maxTries: opts.maxTries, shard: opts.shard, ...ctl,
    onFound: (tried, found) => opts.onProgress?.({ phase: 'starts', tried, found, wanted: 2 * (opts.shard?.quota ?? n) }),
  });

  const draws = opts.baselineDraws ?? 1;
  const methods = withBaselines ? 1 + BASELINES.length * draws : 1;
  const perCell = DIRECTIONS.reduce((s, dir) => s + starts.inputs[dir].length, 0) * methods;
  const total = grid.alphas.length * grid.topNs.length * perCell;
  let done = 0;
  opts.onProgress?.({ phase: 'cells', done, total }); // starts the clock of the cells' ETA
  const cells: SweepCell[] = [];
  const results: CellResult[] = [];
  let complete = true;
  try {
    for (const e of sweepEntries(setup, grid, opts.seed, withBaselines, opts.layers, draws)) {
      const inputs = starts.inputs[e.direction];
      const before = done;
      const r = await runDraws(task, model, inputs, e.draws, ctl, (k) => opts.onProgress?.({ phase: 'cells', done: before + k, total }), 0);
      done = before + e.draws.length * inputs.length;
      const cell = sweepCell(e, r.behaviours, r.probs);
      cells.push(cell);
      results.push(r);
      opts.onProgress?.({ phase: 'cells', done, total, cell });
    }
  } catch (e) {
    if (!(e instanceof SteerInterrupted)) throw e;
    complete = false;
  }
  const file = sweepFile(setup, { ...grid, baselines: withBaselines, seed: opts.seed, beams: opts.beams, steerAt: opts.steerAt, layers: opts.layers, baselineDraws: draws }, starts.info, cells, complete, (Date.now() - started) / 1000);
  return { file, starts, results };
}

const fmt = (x: number) => x.toFixed(1);

/**
 * The grid as text: per direction, rows alpha, columns topN, cells "success% / other%" of the
 * targeted intervention; with baselines, a second grid per direction of the best baseline's success;
 * then the best (alpha, topN).
 */
export function formatSweep(f: SweepFile): string {
  const lines: string[] = [];
  lines.push(`sweep of ${f.run}: ${f.taskDescription}`);
  const src = f.neurons;
  const from = src.experiment === 'same-run' ? 'this run\'s analysis' : `${src.run} (${src.task ?? '?'}, ${src.experiment})`;
  lines.push(`site ${f.site} (${familySiteName(0, f.site, src.family)} .. ${familySiteName(src.layers - 1, f.site, src.family)}); neurons re-ranked by |rho| from ${from} (${src.pairs} pairs) for each topN${f.layers ? `, within layers ${f.layers.join(',')} (the baselines' neurons too)` : ''}`);
  if ((f.baselineDraws ?? 1) > 1) lines.push(`baselines: each cell pools ${f.baselineDraws} random draws (the best baseline is the mean over draws)`);
  lines.push(`${steerAtNote(f.steerAt)}starting inputs (seed ${f.starts.seed}): ${f.starts.found['mem->gen']} unsteered mem, ${f.starts.found['gen->mem']} unsteered gen, from ${f.starts.tried} tried`);
  const w = 15;
  const cellOf = (alpha: number, topN: number, dir: Direction, pred: (m: SweepCell['method']) => boolean) =>
    f.cells.filter((c) => c.alpha === alpha && c.topN === topN && c.direction === dir && pred(c.method));
  for (const dir of DIRECTIONS) {
    const to = directionEnds(dir).to;
    const grids: [string, (a: number, t: number) => string][] = [
      [`${dir}: targeted, % ${to} / % other`, (a, t) => {
        const c = cellOf(a, t, dir, (m) => m === 'targeted')[0];
        return c ? `${fmt(c.success)} / ${fmt(c.pct.other)}` : '-';
      }],
    ];
    if (f.baselines) {
      grids.push([`${dir}: best baseline (random neurons | uniform), % ${to}`, (a, t) => {
        const bs = cellOf(a, t, dir, (m) => m !== 'targeted');
        const r = bs.find((c) => c.method === 'random-neurons');
        const u = bs.find((c) => c.method === 'uniform');
        return r && u ? `${fmt(r.success)} | ${fmt(u.success)}` : '-';
      }]);
    }
    for (const [title, val] of grids) {
      lines.push('');
      lines.push(`${title}   (n = ${f.starts.found[dir]})`);
      lines.push('alpha \\ topN'.padEnd(13) + f.topNs.map((t) => String(t).padStart(w)).join(''));
      for (const a of f.alphas) lines.push(String(a).padEnd(13) + f.topNs.map((t) => val(a, t).padStart(w)).join(''));
    }
  }
  lines.push('');
  if (f.best) {
    const b = f.best;
    const part = (dir: Direction) => `${dir} ${fmt(b.success[dir])}%${b.baseline[dir] === null ? '' : ` (best baseline ${fmt(b.baseline[dir] as number)}%, margin ${fmt(b.margin[dir])})`}`;
    const worst = Math.min(b.margin['mem->gen'], b.margin['gen->mem']);
    const head = worst > 0 ? 'best (largest worst-direction margin)' : `no (alpha, topN) beats ${f.baselines ? 'the baselines' : '0%'} in both directions; the least bad`;
    lines.push(`${head}: alpha ${b.alpha}, topN ${b.topN}: ${part('mem->gen')}; ${part('gen->mem')}`);
  }
  if (f.paperSetting) lines.push(`the paper's ${f.neurons.family === 'llama' ? 'LLaMA + LoRA' : 'GPT-2'} setting for ${f.task}: topN ${f.paperSetting.topN}, alpha ${f.paperSetting.alpha}`);
  if (!f.complete) lines.push(`interrupted: ${f.cells.length} cells finished`);
  for (const wmsg of f.warnings) lines.push(`warning: ${wmsg}`);
  return lines.join('\n');
}
