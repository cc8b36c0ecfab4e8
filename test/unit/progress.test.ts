/** The CLI progress bar: rate and ETA count only this session's work, and follow the caller's fraction. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ProgressBar, ProgressGroup, formatSeconds } from '../../engine/cli/progress';

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

  it('a group of jobs prints each job\'s text when it changes, at most every 5 s a job, off a terminal', () => {
    const group = new ProgressGroup(20);
    group.show('arithmetic', 'train 40/3000');
    group.show('incontext', 'train 20/1000');
    group.show('arithmetic', 'train 41/3000'); // within 5 s: not printed
    vi.setSystemTime(6_000);
    group.show('arithmetic', 'analyze: 2000 pairs (log: runs-reproduce/logs/x.log)');
    group.show('incontext', 'train 20/1000'); // unchanged: not printed
    group.show('incontext', 'done', true); // final: printed at once
    expect(lines).toEqual(['arithmetic: train 40/3000\n', 'incontext: train 20/1000\n', 'arithmetic: analyze: 2000 pairs…\n', 'incontext: done\n']);
    group.end(); // off a terminal no line is left open
    expect(lines).toHaveLength(4);
  });

  it('formats seconds as m:ss, rounding whole seconds first', () => {
    expect([formatSeconds(59.6), formatSeconds(125), formatSeconds(0.4), formatSeconds(NaN)]).toEqual(['1:00', '2:05', '0:00', '--:--']);
  });
});
