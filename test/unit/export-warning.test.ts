/**
 * The export's warning when baking loses the steering it bakes (engine/steer/export.ts
 * bakingLossWarning): the thresholds on success lost and on "other" gained, with the numbers that
 * `memgen export` measured on the committed LoRA runs (docs/results.md, "Exported steered models").
 */
import { describe, expect, it } from 'vitest';
import { BAKING_LOSS_POINTS, type ComparisonSide, type ExportComparison, bakingLossWarning } from '../../engine/steer/export';
import type { Direction } from '../../engine/steer/intervention';

function side(gen: number, mem: number, other: number, success: number): ComparisonSide {
  return { counts: { gen: 2 * gen, mem: 2 * mem, other: 2 * other }, pct: { gen, mem, other }, success, pFirst: { gen: 0.1, mem: 0.5 } };
}

function comparison(direction: Direction, runtime: ComparisonSide, baked: ComparisonSide): ExportComparison {
  const p = { gen: 0.1, mem: 0.5 };
  const starts = {
    seed: 7, wanted: 200, found: { 'mem->gen': 200, 'gen->mem': 200 }, tried: 1000, counts: { gen: 500, mem: 400, other: 100 },
    maxTries: 6000, complete: true, pFirst: { 'mem->gen': p, 'gen->mem': p },
  };
  return { direction, n: 200, seed: 0, starts, runtime, baked, sameOutput: 100, differing: [], seconds: 1 };
}

describe('the warning of an export whose baking loses the steering', () => {
  it('warns on runs/arithmetic-lora gen->mem at topN 0.1 / alpha 1 (28.0 -> 8.0 % mem)', () => {
    const w = bakingLossWarning(comparison('gen->mem', side(12, 28, 60, 28), side(7, 8, 85, 8)));
    expect(w).toMatch(/^baking loses the steering here \(% mem 28\.0 at runtime, 8\.0 baked; % other 60\.0 -> 85\.0\)/);
    expect(w).toMatch(/a milder --alpha or --topn/);
  });

  it('warns when the outputs break although success holds (% other up by more than the threshold)', () => {
    expect(bakingLossWarning(comparison('mem->gen', side(30, 60, 10, 30), side(30, 45, 10 + BAKING_LOSS_POINTS + 1, 30)))).toMatch(/% gen 30\.0 at runtime, 30\.0 baked; % other 10\.0 -> 21\.0/);
  });

  it('stays silent within the threshold: runs/cipher-lora (-3.0 / -4.0 points) and the GPT-2 runs (+6.5 on arithmetic-tiny)', () => {
    expect(bakingLossWarning(comparison('mem->gen', side(28.5, 0, 71.5, 28.5), side(25.5, 0, 74.5, 25.5)))).toBeNull();
    expect(bakingLossWarning(comparison('gen->mem', side(6.5, 20, 73.5, 20), side(6.5, 16, 77.5, 16)))).toBeNull();
    expect(bakingLossWarning(comparison('mem->gen', side(51, 35, 14, 51), side(57.5, 27, 15.5, 57.5)))).toBeNull();
    // exactly at the threshold: no warning
    expect(bakingLossWarning(comparison('mem->gen', side(40, 50, 10, 40), side(30, 50, 20, 30)))).toBeNull();
  });
});
