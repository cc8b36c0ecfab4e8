/**
 * The pieces shared by the `memgen reproduce` pipelines (commands/reproduce.ts: GPT-2, Table 1;
 * commands/reproduce-lora.ts: LLaMA + LoRA, Tables 2-4 and Figure 5):
 *
 *   logTo          console.log of an in-process command appended to a log file (progress bars on
 *                  stderr stay on screen)
 *   commandStatus  a command's exit code as a stage status: 0 done, 130 interrupted, else failed
 *   runStage       one timed stage: prints "[label k/N] name: what" and the outcome; an exception is
 *                  the stage's failure (its message the detail), never the pipeline's
 *   interruptible  the two-press Ctrl-C of the pipelines: the first stops after the current stage,
 *                  the second exits 130 at once
 *   analyzeInTwoPhases  the analysis stage: first at most `yieldInputs` inputs without probes (the
 *                  yield = inputs per pair), then --resume up to `pairs` within `maxTriesPerPair`
 *                  inputs per pair when the yield allows it, else only the pairs found; the second
 *                  call computes the statistics and probes
 *   formatTable    a plain-text table: columns padded to the widest cell, numeric ones right-aligned
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { format } from 'node:util';
import { analysisPath } from '../analysis/files';
import { NoPairsError } from '../analysis/pairs';
import { formatSeconds } from './progress';

export type StageStatus = 'done' | 'copied' | 'kept' | 'failed' | 'skipped' | 'interrupted';

export interface StageOutcome {
  status: StageStatus;
  detail: string;
  /** The stage failed because the model gave no gen/mem pair (NoPairsError). */
  noPairs?: boolean;
}

export interface StageResult<S extends string = string> extends StageOutcome {
  stage: S;
  seconds: number;
}

/** Runs `fn` with console.log appended to `file` instead of the terminal (progress bars use stderr). */
export async function logTo<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const original = console.log;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'a');
  console.log = (...args: unknown[]) => void fs.writeSync(fd, format(...args) + '\n');
  try {
    return await fn();
  } finally {
    console.log = original;
    fs.closeSync(fd);
  }
}

/** A command's exit code as a stage status. */
export const commandStatus = (code: number): 'done' | 'interrupted' | 'failed' => (code === 130 ? 'interrupted' : code === 0 ? 'done' : 'failed');

/** Calls a command in-process with its console.log going to `logFile`; returns its status. */
export async function loggedCommand(logFile: string, fn: (argv: string[]) => Promise<number>, args: string[]): Promise<'done' | 'interrupted' | 'failed'> {
  return commandStatus(await logTo(logFile, () => fn(args)));
}

/** One timed stage (see the header); returns its result (also its status for the caller's bookkeeping). */
export async function runStage<S extends string>(
  where: { label: string; index: number; total: number },
  name: S,
  what: string,
  fn: () => Promise<StageOutcome>,
): Promise<StageResult<S>> {
  const tag = `[${where.label}${where.label ? ' ' : ''}${where.index}/${where.total}]`;
  console.log(`\n${tag} ${name}: ${what}`);
  const t0 = Date.now();
  let r: StageOutcome;
  try {
    r = await fn();
  } catch (e) {
    r = e instanceof NoPairsError ? { status: 'failed', detail: e.message, noPairs: true } : { status: 'failed', detail: (e as Error).message };
  }
  const result = { stage: name, seconds: (Date.now() - t0) / 1000, ...r };
  console.log(stageEndLine(tag, result));
  return result;
}

/** The line that ends a stage: `[label i/n] stage done in m:ss: detail`. */
export function stageEndLine(tag: string, r: StageResult): string {
  return `${tag} ${r.stage} ${r.status === 'failed' ? 'FAILED' : r.status} in ${formatSeconds(r.seconds)}${r.detail ? `: ${r.detail}` : ''}`;
}

/** The pipelines' Ctrl-C (see the header); `release()` removes the handler. */
export function interruptible(what: string): { stopped: () => boolean; stop: () => void; release: () => void } {
  let stop = false;
  let presses = 0;
  const onSigint = () => {
    presses++;
    if (presses > 1) process.exit(130);
    stop = true;
    process.stderr.write(`\nCtrl-C: ${what} stops after the current stage (Ctrl-C again aborts at once)\n`);
  };
  process.on('SIGINT', onSigint);
  return { stopped: () => stop, stop: () => void (stop = true), release: () => void process.removeListener('SIGINT', onSigint) };
}

export interface TwoPhaseAnalysis {
  dir: string;
  site: string;
  pairs: number;
  yieldInputs: number;
  maxTriesPerPair: number;
  runnerArgs: string[];
  logFile: string;
  /** `memgen analyze` (commands/analyze.ts), or a stand-in in tests. */
  analyze: (argv: string[]) => Promise<number>;
}

/** The analysis stage (see the header); NoPairsError propagates (runStage reports it). */
export async function analyzeInTwoPhases(o: TwoPhaseAnalysis): Promise<StageOutcome> {
  const again = fs.existsSync(path.join(o.dir, 'analysis')) && fs.readdirSync(path.join(o.dir, 'analysis')).length > 0;
  const failed = (status: 'interrupted' | 'failed'): StageOutcome => ({ status, detail: status === 'interrupted' ? `pairs so far kept in ${path.join(o.dir, 'analysis')}` : `see ${o.logFile}` });
  const read = () => JSON.parse(fs.readFileSync(analysisPath(o.dir, 'summary'), 'utf8')) as { pairs: number; inputsTried: number };
  // Phase 1: how often do pairs come? (NoPairsError here when none in min(2000, yieldInputs) inputs.)
  let status = await loggedCommand(o.logFile, o.analyze, ['--run', o.dir, '--site', o.site, '--pairs', String(o.pairs), '--max-tries', String(o.yieldInputs), '--no-probes', ...(again ? ['--force'] : []), ...o.runnerArgs]);
  if (status !== 'done') return failed(status);
  const first = read();
  const perPair = first.inputsTried / first.pairs;
  const extend = first.pairs < o.pairs && perPair <= o.maxTriesPerPair;
  // Phase 2: extend to `pairs` when they come often enough, else analyse the pairs found; then the probes.
  status = await loggedCommand(o.logFile, o.analyze, ['--run', o.dir, '--resume', '--pairs', String(extend ? o.pairs : first.pairs),
    '--max-tries', String(extend ? o.maxTriesPerPair * o.pairs : first.inputsTried), ...o.runnerArgs]);
  if (status !== 'done') return failed(status);
  const s = read();
  const rare = first.pairs < o.pairs && !extend
    ? `; pairs are rare (${perPair.toFixed(0)} inputs per pair > ${o.maxTriesPerPair}): the model seldom shows both behaviours on an input and its rephrasing, so the ${first.pairs} pairs of the first ${first.inputsTried} inputs are analysed as they are`
    : '';
  return { status: 'done', detail: `${s.pairs} pairs from ${s.inputsTried} inputs (${(s.inputsTried / s.pairs).toFixed(1)} per pair)${rare}` };
}

/** A plain-text table (see the header): `numeric(j)` right-aligns column j. */
export function formatTable(head: readonly string[], rows: readonly (readonly string[])[], numeric: (j: number) => boolean = () => false): string[] {
  const widths = head.map((h, j) => Math.max(h.length, ...rows.map((row) => row[j].length)));
  const fmt = (row: readonly string[]) => row.map((x, j) => (numeric(j) ? x.padStart(widths[j]) : x.padEnd(widths[j]))).join('  ').trimEnd();
  return [fmt(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)];
}
