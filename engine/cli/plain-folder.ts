/**
 * The CLI side of plain Hugging Face folders (runs/plain-run.ts), shared by analyze, steer-eval, sweep
 * and robustness: `--task NAME [--task-seed S] [--task-scale tiny|paper]`, the task a plain folder is
 * run on. A memgen run has its own task, so the options are refused there; on a plain folder the
 * absent parts come from the task its analysis recorded (analysis/plain-task.ts), else the defaults.
 */
import { resolvePlainTask } from '../analysis/plain-task';
import { type PlainSteerRun, type PlainTaskRequest, PLAIN_TASK_DEFAULTS, isPlainFolder, plainSteerRun } from '../runs/plain-run';
import { type SteerSetup, prepareSteering } from '../steer/steer-eval';
import { TASK_NAMES } from '../tasks';
import { type OptionSpec, UsageError, choice, num } from './args';

export const TASK_OPTIONS = { task: { type: 'string' }, 'task-seed': { type: 'string' }, 'task-scale': { type: 'string' } } as const satisfies OptionSpec;

export const TASK_OPTIONS_HELP = `[--task ${TASK_NAMES.join('|')} [--task-seed S (${PLAIN_TASK_DEFAULTS.seed})] [--task-scale tiny|paper (${PLAIN_TASK_DEFAULTS.scale})] (a plain Hugging Face folder: the task to run it on; later commands take it from its analysis)]`;

/** The --task options given (undefined when none is). */
export function taskRequest(v: Record<string, string | boolean | undefined>): PlainTaskRequest | undefined {
  if (v.task === undefined && v['task-seed'] === undefined && v['task-scale'] === undefined) return undefined;
  const seed = num(v['task-seed'], 'task-seed', null);
  if (seed !== null && !Number.isSafeInteger(seed)) throw new UsageError(`--task-seed must be an integer, got ${seed}`);
  return {
    ...(v.task !== undefined ? { task: choice(v.task, 'task', TASK_NAMES) } : {}),
    ...(seed !== null ? { seed } : {}),
    ...(v['task-scale'] !== undefined ? { scale: choice(v['task-scale'], 'task-scale', ['tiny', 'paper'] as const) } : {}),
  };
}

/** Refuses --task options on a memgen run (its task is its own). */
export function refuseTaskOnRun(runDir: string, req: PlainTaskRequest | undefined): void {
  if (req !== undefined) throw new UsageError(`${runDir} is a memgen run: it was trained on its own task (config.json / manifest.json), so --task, --task-seed and --task-scale are for plain Hugging Face folders only; drop them`);
}

/**
 * A plain folder opened on its task (the request, else the recorded one; `replacing`, analyze --force:
 * a named task replaces the record), or null when `dir` is a memgen run (then --task is refused).
 */
export function openPlainFolder(dir: string, req: PlainTaskRequest | undefined, opts: { replacing?: boolean } = {}): PlainSteerRun | null {
  if (!isPlainFolder(dir)) {
    refuseTaskOnRun(dir, req);
    return null;
  }
  return plainSteerRun(dir, resolvePlainTask(dir, req, opts));
}

/** steer-eval / sweep on a plain folder: the steering setup (null for a memgen run). */
export function preparePlainSteering(dir: string, opts: { neuronsFrom?: string; allowStale?: boolean; task?: PlainTaskRequest }): SteerSetup<PlainSteerRun> | null {
  const plain = openPlainFolder(dir, opts.task);
  return plain && prepareSteering(dir, { ...opts, load: () => plain });
}
