/** Option parsing shared by the CLI commands: typed getters with usage errors that name the option. */
import { parseArgs } from 'node:util';
import type { ExecutionProvider } from '../runtime/runner';

import { withRunLock } from '../runs/lock';

export class UsageError extends Error {}

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

export function parse(argv: string[], options: OptionSpec): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export function num(v: string | boolean | undefined, name: string, fallback: number): number;
export function num(v: string | boolean | undefined, name: string, fallback: number | null): number | null;
export function num(v: string | boolean | undefined, name: string, fallback: number | null): number | null {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
  return n;
}

/** A whole number >= 1 (a step count or interval). */
export function posInt(v: string | boolean | undefined, name: string, fallback: number): number {
  const n = num(v, name, fallback);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got '${v}'`);
  return n;
}

export function str(v: string | boolean | undefined, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new UsageError(`--${name} needs a value`);
  return v;
}

/** A share: a number in [0, 1] ([0, 1) with `below1`); `example` goes into the error. */
export function share(v: string | boolean | undefined, name: string, fallback: number, o: { below1?: boolean; example?: string } = {}): number {
  if (v === undefined) return fallback;
  const p = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !(p >= 0 && (o.below1 ? p < 1 : p <= 1))) {
    throw new UsageError(`--${name} must be a share ${o.below1 ? 'in [0, 1)' : 'between 0 and 1'}${o.example ? `, e.g. ${o.example}` : ''}, got ${JSON.stringify(v)}`);
  }
  return p;
}

export function required(v: string | boolean | undefined, name: string): string {
  const s = str(v, name);
  if (s === undefined) throw new UsageError(`--${name} is required`);
  return s;
}

export function choice<T extends string>(v: string | boolean | undefined, name: string, choices: readonly T[], fallback?: T): T {
  if (v === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required; choose one of: ${choices.join(', ')}`);
    return fallback;
  }
  if (typeof v !== 'string' || !choices.includes(v as T)) throw new UsageError(`unknown ${name} '${v}'; choose one of: ${choices.join(', ')}`);
  return v as T;
}

export const PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'cuda'];
export const RUNNER_OPTIONS: OptionSpec = { threads: { type: 'string' }, provider: { type: 'string' } };

export function runnerOptions(v: Record<string, string | boolean | undefined>): { threads: number; provider: ExecutionProvider } {
  return { threads: num(v.threads, 'threads', 0), provider: choice(v.provider, 'provider', PROVIDERS, 'cpu') };
}

/** Runs `onStop` on the first Ctrl-C; a second one aborts at once. */
export function onInterrupt(onStop: () => void): () => void {
  const handler = () => {
    onStop();
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', handler);
  return () => process.removeListener('SIGINT', handler);
}

/**
 * A command that writes into `--run RUN`, wrapped so that it holds the run's lock while it works
 * (runs/lock.ts: a second writer is refused with a message naming this one).
 */
export function writesRun(name: string, command: (argv: string[]) => Promise<number>): (argv: string[]) => Promise<number> {
  return (argv) => {
    const i = argv.findIndex((a) => a === '--run' || a.startsWith('--run='));
    const run = i < 0 ? undefined : argv[i].startsWith('--run=') ? argv[i].slice(6) : argv[i + 1];
    if (!run || run.startsWith('--')) return command(argv); // the command's own usage error
    return withRunLock(run, `memgen ${name} ${argv.join(' ')}`, () => command(argv), (m) => console.warn(m));
  };
}
