/**
 * What every benchmark row shares: the row itself, the median-of-runs timer and the Python peer.
 *   seconds of a run = median over `reps` timed runs after `warmup` untimed ones
 */
import { execFileSync } from 'node:child_process';

export interface Row {
  name: string;
  value: number;
  unit: string;
  peer?: { name: string; value: number } | { name: string; error: string };
  notes?: string;
}

/** Debian's python3 (python3-numpy / python3-torch), not a virtualenv's. */
export const PYTHON = '/usr/bin/python3';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function timeRuns(fn: () => Promise<unknown>, warmup: number, reps: number): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

/** A peer measurement in Python, when Debian's python3 has the module; otherwise the reason. */
export function pythonPeer(name: string, script: string, args: string[] = []): Row['peer'] {
  try {
    const argv = script.endsWith('.py') ? [script, ...args] : ['-c', script, ...args];
    const out = execFileSync(PYTHON, argv, { encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return { name, value: Number(out.trim().split('\n').pop()) };
  } catch (e) {
    const msg = String((e as { stderr?: string }).stderr ?? (e as Error).message).trim().split('\n').pop() ?? '';
    return { name, error: msg.slice(0, 200) };
  }
}
