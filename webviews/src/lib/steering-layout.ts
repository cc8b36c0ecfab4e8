/**
 * The steering tables in the paper's layout (its Table 1: rows = direction x method, columns =
 * % gen, % mem, % other), ours with n beside the paper's cell for the same direction and method
 * ('custom' compares with the paper's 'targeted'), and the alpha x topN sweep as a grid.
 *
 *   success      mem->gen: % gen of the steered outputs;  gen->mem: % mem  (steer-eval.ts)
 *   sweep cell   success of the targeted method at (alpha, topN) for one direction; the margin is
 *                targeted success - the best baseline's success at the same (alpha, topN)
 *                (null without baselines). Cells missing from an interrupted sweep are null.
 */
import type { ClassPercent, Direction, SteerMethod, SteeringTable, SweepTable } from '../../../server/src/protocol';

export const DIRECTIONS: Direction[] = ['mem->gen', 'gen->mem'];
export const METHOD_ORDER: SteerMethod[] = ['targeted', 'custom', 'random-neurons', 'uniform'];
export const METHOD_LABEL: Record<SteerMethod, string> = {
  targeted: 'targeted (top-N by |rho|)',
  custom: 'custom set',
  'random-neurons': 'random neurons, same shifts',
  uniform: 'random neurons, uniform shifts',
};

export interface SteeringRow {
  direction: Direction;
  method: SteerMethod;
  label: string;
  n: number;
  ours: ClassPercent;
  success: number;
  paper: ClassPercent | null;
}

export function steeringRows(t: SteeringTable): SteeringRow[] {
  const rows: SteeringRow[] = [];
  for (const direction of DIRECTIONS) {
    for (const method of METHOD_ORDER) {
      const c = t.cells.find((x) => x.direction === direction && x.method === method);
      if (!c) continue;
      const pm = method === 'custom' ? 'targeted' : method;
      const p = t.paper?.cells.find((x) => x.direction === direction && x.method === pm)?.pct ?? null;
      rows.push({ direction, method, label: METHOD_LABEL[method], n: c.n, ours: c.pct, success: c.success, paper: p });
    }
  }
  return rows;
}

export interface SweepGrid {
  direction: Direction;
  alphas: number[];
  topNs: number[];
  /** success[topN row][alpha column], % (null: not measured). */
  success: (number | null)[][];
  margin: (number | null)[][];
  /** n of the targeted cells (the smallest, to state beside the grid). */
  minN: number | null;
}

export function sweepGrid(s: SweepTable, direction: Direction): SweepGrid {
  const alphas = [...s.alphas].sort((a, b) => a - b);
  const topNs = [...s.topNs].sort((a, b) => a - b);
  let minN: number | null = null;
  const at = (alpha: number, topN: number, method: string) => s.cells.find((c) => c.direction === direction && c.method === method && c.alpha === alpha && c.topN === topN) ?? null;
  const success = topNs.map((t) => alphas.map((a) => {
    const c = at(a, t, 'targeted');
    if (c) minN = minN === null ? c.n : Math.min(minN, c.n);
    return c ? c.success : null;
  }));
  const margin = topNs.map((t, i) => alphas.map((a, j) => {
    const own = success[i][j];
    const base = [at(a, t, 'random-neurons'), at(a, t, 'uniform')].filter((c) => c !== null).map((c) => c!.success);
    return own === null || base.length === 0 ? null : own - Math.max(...base);
  }));
  return { direction, alphas, topNs, success, margin, minN };
}

export const pct = (x: number | null | undefined) => (x === null || x === undefined ? '–' : `${x.toFixed(1)}`);
