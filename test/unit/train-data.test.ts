/** The keep rule (train/run-loop.ts isBetter), the task options a run records (tasks/index.ts taskOptions), training batches (train/data.ts). */
import { describe, expect, it } from 'vitest';
import { type ArithmeticTask, LEGACY_TASK_OPTIONS, makeTask, taskOptions } from '../../engine/tasks';
import { trainBatch } from '../../engine/train/data';
import { Rng } from '../../engine/util/rng';
import { type EvalResult, balanceScore } from '../../engine/train/evaluate';
import { MIN_PLAIN_ACCURACY, isBetter } from '../../engine/train/run-loop';

const ev = (gen: number, mem: number, plainAccuracy?: number | null): EvalResult => ({
  n: 100, counts: { gen: 100 * gen, mem: 100 * mem, other: 100 * (1 - gen - mem) }, gen, mem, other: 1 - gen - mem,
  pMem: 0, pGen: 0, guess: null, score: balanceScore(gen, mem), plainAccuracy,
});

describe('keep rule', () => {
  it('keeps the best gen x mem among checkpoints whose plain accuracy reaches the bar', () => {
    expect(MIN_PLAIN_ACCURACY).toBe(0.9);
    // a better balance that cannot add loses to one that can
    expect(isBetter(ev(0.4, 0.4, 0.8), ev(0.2, 0.2, 0.95))).toBe(false);
    expect(isBetter(ev(0.2, 0.2, 0.95), ev(0.4, 0.4, 0.8))).toBe(true);
    // among checkpoints that add (or that both do not), the balance decides
    expect(isBetter(ev(0.4, 0.4, 0.91), ev(0.3, 0.3, 0.99))).toBe(true);
    expect(isBetter(ev(0.3, 0.3, 0.5), ev(0.4, 0.4, 0.6))).toBe(false);
    expect(isBetter(ev(0.4, 0.4, 0.5), ev(0.3, 0.3, 0.6))).toBe(true);
    // no plain set (incontext): the balance alone; while both scores are 0, more gen + mem
    expect(isBetter(ev(0.4, 0.4, null), ev(0.3, 0.3, null))).toBe(true);
    expect(isBetter(ev(0.5, 0, null), ev(0.3, 0, null))).toBe(true);
    expect(isBetter(ev(0.1, 0.1), null)).toBe(true);
    // another bar
    expect(isBetter(ev(0.4, 0.4, 0.8), ev(0.2, 0.2, 0.95), 0.75)).toBe(true);
    // --stop-when-both F: a checkpoint showing both (>= F each) beats a better balance that does not
    expect(isBetter(ev(0.36, 0.2, null), ev(0.49, 0.153, null), 0, 0.2)).toBe(true);
    expect(isBetter(ev(0.49, 0.153, null), ev(0.36, 0.2, null), 0, 0.2)).toBe(false);
    expect(isBetter(ev(0.49, 0.153, null), ev(0.36, 0.2, null))).toBe(true);
    // ... but not one that cannot add
    expect(isBetter(ev(0.3, 0.3, 0.5), ev(0.5, 0.1, 0.95), 0.9, 0.2)).toBe(false);
  });
});

describe('taskOptions', () => {
  it('reads what a run recorded, and gives runs made before memPatternRatio their old data', () => {
    const now = { task: 'arithmetic', scale: 'tiny' as const, seed: 2, memRate: 0.05, memPatternRatio: 1, preset: 'tiny' };
    expect(taskOptions(now)).toEqual({ scale: 'tiny', seed: 2, memRate: 0.05, memPatternRatio: 1, memTagPieces: 1 });
    expect(taskOptions({ ...now, memTagPieces: 2 })).toEqual({ scale: 'tiny', seed: 2, memRate: 0.05, memPatternRatio: 1, memTagPieces: 2 });
    const old = { task: 'arithmetic', scale: 'tiny' as const, seed: 2, memRate: 0.15, preset: 'tiny' };
    expect(taskOptions(old)).toEqual({ ...LEGACY_TASK_OPTIONS, scale: 'tiny', seed: 2, memRate: 0.15 });
    const a = makeTask('arithmetic', taskOptions(old));
    expect(a.dataConfig).toMatchObject({ operandRange: [1, 99], memPatternRatio: 0.5 });
    expect(makeTask('incontext', taskOptions({ ...old, contradictRate: 0.2 })).dataConfig).toMatchObject({ colorsPerName: 1, contradictRate: 0.2 });
  });
});

describe('trainBatch', () => {
  it('masks all but the answer; the memorization warm-up draws only plain inputs', () => {
    const task = makeTask('arithmetic', { memRate: 0.5 });
    const T = task.maxSeqLen - 1;
    const memIds = new Set((task as ArithmeticTask).patterns.map((p) => task.tokenizer.encode(p.token)[0]));
    const count = (plainOnly: boolean) => {
      const { ids, targets } = trainBatch(task, new Rng(3), 200, T, plainOnly);
      let mem = 0;
      const t = targets.data as BigInt64Array;
      for (let i = 0; i < t.length; i++) if (memIds.has(Number(t[i]))) mem++;
      expect(ids.dims).toEqual([200, T]);
      return mem;
    };
    expect(count(false)).toBeGreaterThan(50); // memRate 0.5, ratio 1: about 100 mem targets
    expect(count(true)).toBe(0);
    // incontext's plain inputs are stories whose colour is drawn from all colours
    const ic = makeTask('incontext');
    const warm = trainBatch(ic, new Rng(3), 4, ic.maxSeqLen - 1, true).ids.data as BigInt64Array;
    const first = ic.tokenizer.encodeExample(ic.plain!(new Rng(3))).ids;
    expect([...warm.slice(0, first.length - 1)].map(Number)).toEqual(first.slice(0, -1));
    expect(warm).not.toEqual(trainBatch(ic, new Rng(3), 4, ic.maxSeqLen - 1, false).ids.data);
  });
});
