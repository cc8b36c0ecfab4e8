/** The CLI progress bar: rate and ETA count only this session's work, and follow the caller's fraction. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ProgressBar, ProgressGroup } from '../../engine/cli/progress';

describe('ProgressBar (non-terminal output)', () => {
  let lines: string[];
  beforeEach(() => {
    lines = [];
    vi.useFakeTimers();
    vi.setSystemTime(0);
    vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
      lines.push(String(s));
      return true;
    });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  it('a run resumed at step 3000 of 5000 measures its rate and ETA from the resume', () => {
    const bar = new ProgressBar('train', 5000);
    bar.update(3000);
    vi.setSystemTime(10_000);
    bar.update(3010); // 10 steps in 10 s: 1 step/s, 1990 steps left
    expect(lines.at(-1)).toContain('3010/5000 1.0 step/s ETA 33:10');
  });

  it('the ETA follows the caller fraction when another budget ends the work first', () => {
    const bar = new ProgressBar('pairs', 2000, 'pair');
    bar.update(100, '', 0.5);
    vi.setSystemTime(20_000);
    bar.update(150, '', 0.75); // a quarter of the work in 20 s, a quarter left
    expect(lines.at(-1)).toContain('150/2000 2.5 pair/s ETA 0:20');
  });

  it('bars of a group keep their own rates, each line apart off a terminal', () => {
    const group = new ProgressGroup();
    const a = group.bar('arithmetic train', 3000);
    const b = group.bar('incontext train', 1000);
    a.update(0);
    b.update(0);
    vi.setSystemTime(10_000);
    a.update(40); // 4 steps/s
    b.update(20); // 2 steps/s
    expect(lines.slice(-2)).toEqual([
      expect.stringMatching(/^arithmetic train .* 40\/3000 4\.0 step\/s ETA 12:20/),
      expect.stringMatching(/^incontext train .* 20\/1000 2\.0 step\/s ETA 8:10/),
    ]);
    group.end(); // off a terminal no line is left open
    expect(lines.at(-1)).toMatch(/^incontext/);
  });
});
