/** The keep rule (train/run-loop.ts isBetter) and the task options a run records (tasks/index.ts taskOptions). */
import { describe, expect, it } from 'vitest';
import { LEGACY_TASK_OPTIONS, makeTask, taskOptions } from '../../engine/tasks';
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
  });
});

describe('taskOptions', () => {
  it('reads what a run recorded, and gives runs made before memPatternRatio their old data', () => {
    const now = { task: 'arithmetic', scale: 'tiny' as const, seed: 2, memRate: 0.05, memPatternRatio: 1, preset: 'tiny' };
    expect(taskOptions(now)).toEqual({ scale: 'tiny', seed: 2, memRate: 0.05, memPatternRatio: 1 });
    const old = { task: 'arithmetic', scale: 'tiny' as const, seed: 2, memRate: 0.15, preset: 'tiny' };
    expect(taskOptions(old)).toEqual({ ...LEGACY_TASK_OPTIONS, scale: 'tiny', seed: 2, memRate: 0.15 });
    const a = makeTask('arithmetic', taskOptions(old));
    expect(a.dataConfig).toMatchObject({ operandRange: [1, 99], memPatternRatio: 0.5 });
    expect(makeTask('incontext', taskOptions({ ...old, contradictRate: 0.2 })).dataConfig).toMatchObject({ colorsPerName: 1, contradictRate: 0.2 });
  });
});
