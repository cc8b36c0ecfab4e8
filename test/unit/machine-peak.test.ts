/**
 * The bench's machine-peak probe (bench/machine-peak.c through bench/measure.ts): it builds, reports
 * one rate per thread count for each vector width, and the peak it hands the bench is the wider
 * width's rate at the asked thread count. No speed is asserted (speed is the bench's business), only
 * what the numbers must satisfy on any machine. Optional: runs where a C compiler and x86-64 are.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { describeMachinePeak, measureMachinePeak } from '../../bench/measure';

const hasCc = (() => {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!hasCc || process.arch !== 'x64')('the machine-peak probe', () => {
  it('reports a rate per thread count and width, and the wider width at the asked threads as the peak', () => {
    const p = measureMachinePeak(2);
    if ('error' in p) throw new Error(p.error);
    expect(p.threads).toBe(2);
    expect(p.avx2).toHaveLength(2);
    for (const x of [...p.avx2, ...(p.avx512 ?? [])]) expect(x).toBeGreaterThan(0);
    expect(p.gflops).toBe(Math.max(p.avx2[1], p.avx512?.[1] ?? 0));
    expect(p.addsPerNs).toBeGreaterThan(0.3);
    expect(p.addsPerNs).toBeLessThan(10);
    expect(describeMachinePeak(p)).toMatch(/^\d+\.\d GFLOP\/s on 2 threads \(AVX2: 1 thread [\d.]+, 2 threads [\d.]+; AVX-512: /);
  });

  it('says why when it was not measured', () => {
    expect(describeMachinePeak({ error: 'no C compiler' })).toBe('not measured (no C compiler)');
  });
});
