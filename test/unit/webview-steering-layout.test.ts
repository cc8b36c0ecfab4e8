// The Steering panel's layout (webviews/src/lib/steering-layout.ts) and the Training panel's curves
// (train-curves.ts): steering.json of the committed run in the paper's row order with the paper's
// cells beside; a sweep grid from cells this test writes (no sweep.json is committed); curves
// and the stop step of the committed train-log.jsonl.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as panels from '../../server/src/panel-data';
import type { SweepTable } from '../../server/src/protocol';
import { readTrainLog } from '../../server/src/train-watch';
import { steeringRows, sweepGrid } from '../../webviews/src/lib/steering-layout';
import { curves, stopStep, thin } from '../../webviews/src/lib/train-curves';

const RUN = path.resolve(__dirname, '../../runs/arithmetic-tiny');

describe('steering rows', () => {
  it("orders rows direction-major, targeted first, each with the paper's cell of the same method", () => {
    const t = panels.steeringTables(RUN).steering!;
    const rows = steeringRows(t);
    expect(rows.map((r) => `${r.direction} ${r.method}`)).toEqual([
      'mem->gen targeted', 'mem->gen random-neurons', 'mem->gen uniform',
      'gen->mem targeted', 'gen->mem random-neurons', 'gen->mem uniform',
    ]);
    expect(rows[0].paper).toEqual({ gen: 70.3, mem: 28.1, other: 1.6 });
    expect(rows[1].paper).toEqual({ gen: 6.3, mem: 92.1, other: 1.6 });
    expect(rows[2].paper).toBeNull(); // Table 1 has no uniform baseline
    for (const r of rows) expect(r.n).toBe(200);
    const sum = rows[3].ours.gen + rows[3].ours.mem + rows[3].ours.other;
    expect(sum).toBeCloseTo(100, 6);
  });
});

describe('sweep grid', () => {
  // Cells written here: success = alpha * 10 + topN * 100 for targeted, 5 for the baselines.
  const alphas = [1, 5, 10];
  const topNs = [0.05, 0.1];
  const cells: SweepTable['cells'] = [];
  for (const alpha of alphas) for (const topN of topNs) {
    if (alpha === 10 && topN === 0.1) continue; // an interrupted sweep
    cells.push({ alpha, topN, direction: 'mem->gen', method: 'targeted', n: 50, success: alpha * 10 + topN * 100 });
    cells.push({ alpha, topN, direction: 'mem->gen', method: 'random-neurons', n: 50, success: 5 });
    cells.push({ alpha, topN, direction: 'mem->gen', method: 'uniform', n: 40, success: 2 });
  }
  const sweep: SweepTable = { alphas: [10, 1, 5], topNs: [0.1, 0.05], cells, best: null, paperSetting: { topN: 0.1, alpha: 5 }, complete: false };

  it('puts topN on rows and alpha on columns, sorted, with the margin over the best baseline', () => {
    const g = sweepGrid(sweep, 'mem->gen');
    expect(g.alphas).toEqual([1, 5, 10]);
    expect(g.topNs).toEqual([0.05, 0.1]);
    expect(g.success[0]).toEqual([15, 55, 105]);
    expect(g.success[1]).toEqual([20, 60, null]);
    expect(g.margin[0]).toEqual([10, 50, 100]);
    expect(g.margin[1][2]).toBeNull();
    expect(g.minN).toBe(50);
    const other = sweepGrid(sweep, 'gen->mem');
    expect(other.success.flat().every((x) => x === null)).toBe(true);
  });
});

describe('training curves', () => {
  it('splits the log into loss and eval series and finds where the stop rule was met', () => {
    const log = readTrainLog(RUN);
    const c = curves(log.points);
    const evals = log.points.filter((p) => p.kind === 'eval');
    expect(c.gen).toHaveLength(evals.length);
    expect(c.lastStep).toBe(Math.max(...log.points.map((p) => p.step)));
    const met = stopStep(log.points, 0.3)!;
    const e = evals.find((p) => p.step === met)!;
    expect(e.gen! >= 0.3 && e.mem! >= 0.3).toBe(true);
    expect(evals.filter((p) => p.step < met).every((p) => !(p.gen! >= 0.3 && p.mem! >= 0.3))).toBe(true);
    expect(stopStep(log.points, null)).toBeNull();
  });

  it('thins long series to at most the limit, keeping the last point', () => {
    const xs = Array.from({ length: 2001 }, (_, i) => [i, i] as [number, number]);
    const t = thin(xs, 800);
    expect(t.length).toBeLessThanOrEqual(801);
    expect(t[t.length - 1]).toEqual([2000, 2000]);
    expect(thin(xs.slice(0, 5), 800)).toHaveLength(5);
  });
});
