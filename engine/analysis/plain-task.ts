/**
 * The task of a plain Hugging Face folder's analysis (runs/plain-run.ts), recorded beside it:
 *
 *   RUN/analysis/task.json   { format: 'memgen-plain-task/1', task, seed, scale }
 *
 * `memgen analyze --run DIR --task NAME [--task-seed S] [--task-scale tiny|paper]` writes it before it
 * extracts (a plain model records no task of its own; analysis.json copies it as `plainTask`), so that
 * the commands that follow on the same folder (analyze --resume, merge, steer-eval, sweep,
 * robustness) take the task from it when --task is omitted, and refuse a --task, --task-seed or
 * --task-scale that contradicts it (the neurons were found on that task's data).
 * Only files under RUN/analysis are written; the model's files are never touched.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type PlainTaskRequest, type PlainTaskSpec, PLAIN_TASK_DEFAULTS } from '../runs/plain-run';
import { RunError, readJSON, writeJSON } from '../runs/run';
import { TASK_NAMES } from '../tasks';
import { shortJSON } from '../util/json';
import { analysisDir } from './files';

export const PLAIN_TASK_FILE = 'task.json';

export interface PlainTaskRecord extends PlainTaskSpec {
  format: 'memgen-plain-task/1';
}

/** RUN/analysis/task.json. */
export const plainTaskPath = (dir: string): string => path.join(analysisDir(dir), PLAIN_TASK_FILE);

const describe = (s: PlainTaskSpec) => `${s.task} (task seed ${s.seed}, scale ${s.scale})`;

/** The recorded task of a plain folder's analysis, checked; null when there is none. */
export function readPlainTask(dir: string): PlainTaskSpec | null {
  const file = plainTaskPath(dir);
  if (!fs.existsSync(file)) return null;
  const r = readJSON<Record<string, unknown>>(file, 'the analysed task');
  const fix = `it is written by \`memgen analyze --run ${dir} --task NAME\`; delete it and analyse again with --force`;
  if (typeof r !== 'object' || r === null || r.format !== 'memgen-plain-task/1') throw new RunError(`${file}: not a memgen-plain-task/1 file (${shortJSON(r, 60)}); ${fix}`);
  if (!(TASK_NAMES as readonly unknown[]).includes(r.task)) throw new RunError(`${file}: task ${shortJSON(r.task)} is not one of ${TASK_NAMES.join(', ')}; ${fix}`);
  if (!Number.isSafeInteger(r.seed)) throw new RunError(`${file}: seed ${shortJSON(r.seed)} is not an integer; ${fix}`);
  if (r.scale !== 'tiny' && r.scale !== 'paper') throw new RunError(`${file}: scale ${shortJSON(r.scale)} is not 'tiny' or 'paper'; ${fix}`);
  return { task: r.task as PlainTaskSpec['task'], seed: r.seed as number, scale: r.scale };
}

/** Writes RUN/analysis/task.json (creating RUN/analysis). */
export function writePlainTask(dir: string, spec: PlainTaskSpec): void {
  fs.mkdirSync(analysisDir(dir), { recursive: true });
  writeJSON(plainTaskPath(dir), { format: 'memgen-plain-task/1', task: spec.task, seed: spec.seed, scale: spec.scale } satisfies PlainTaskRecord);
}

/**
 * The task to use on the plain folder `dir`: the request's parts, the rest from the recorded task
 * (`replacing`, analyze --force: a request naming a task starts over without it), else the defaults
 * (task seed 0, scale tiny).
 * Refuses a request without a task when none is recorded, and one that contradicts the record.
 * `how` words the fix for the caller: CLI flags, or the editor's header lines.
 */
export function resolvePlainTask(dir: string, req: PlainTaskRequest | undefined, opts: { how?: 'cli' | 'header'; replacing?: boolean } = {}): PlainTaskSpec {
  const header = opts.how === 'header';
  const flag = (k: 'task' | 'seed' | 'scale') => (header ? { task: 'task:', seed: 'taskSeed:', scale: 'taskScale:' }[k] : { task: '--task', seed: '--task-seed', scale: '--task-scale' }[k]);
  const recorded = opts.replacing && req?.task !== undefined ? null : readPlainTask(dir);
  if (recorded) {
    const clash = (['task', 'seed', 'scale'] as const).filter((k) => req?.[k] !== undefined && req[k] !== recorded[k]);
    if (clash.length > 0) {
      const given = clash.map((k) => `${flag(k)} ${req![k]}`).join(', ');
      throw new RunError(`${dir}: its analysis was made on the task ${describe(recorded)} (${plainTaskPath(dir)}), but ${given} ${clash.length > 1 ? 'contradict' : 'contradicts'} it. ` +
        (header ? `Fix the header (or drop it: the recorded task is used)` : `Drop ${clash.map(flag).join(' and ')} (the recorded task is used)`) +
        `, or analyse the folder on the other task: memgen analyze --run ${dir} --task ${req?.task ?? recorded.task}${req?.seed !== undefined ? ` --task-seed ${req.seed}` : ''}${req?.scale !== undefined ? ` --task-scale ${req.scale}` : ''} --force`);
    }
    return recorded;
  }
  if (req?.task === undefined) {
    throw new RunError(`${dir} is a plain Hugging Face model folder, which records no task: ` +
      (header
        ? `add a header line \`task: ${TASK_NAMES.join('|')}\` (and \`taskSeed: S\`, \`taskScale: tiny|paper\` unless ${PLAIN_TASK_DEFAULTS.seed} / ${PLAIN_TASK_DEFAULTS.scale})`
        : `add --task ${TASK_NAMES.join('|')} (and --task-seed S, --task-scale tiny|paper unless ${PLAIN_TASK_DEFAULTS.seed} / ${PLAIN_TASK_DEFAULTS.scale}); ` +
          `after \`memgen analyze --run ${dir} --task NAME\` the other commands take the task from ${plainTaskPath(dir)}`));
  }
  return { task: req.task, seed: req.seed ?? PLAIN_TASK_DEFAULTS.seed, scale: req.scale ?? PLAIN_TASK_DEFAULTS.scale };
}
