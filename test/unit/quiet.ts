/** Runs a CLI command function in-process with console.log captured and stderr (progress) silenced. */
import { vi } from 'vitest';

export async function quiet(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((s: string) => void out.push(s));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    return { code: await fn(), out: out.join('\n') };
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
}
