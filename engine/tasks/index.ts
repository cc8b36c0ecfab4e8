/**
 * The paper's three synthetic tasks behind one constructor (method.md section 2):
 *   makeTask('arithmetic' | 'incontext' | 'cipher', { scale, seed, memRate, contradictRate, memPatternRatio, minOperand, colorsPerName, storyForm })
 * Defaults: scale 'tiny', seed 0; the rates default per task and scale (see each module's header).
 * Options a task does not use (memRate for incontext, contradictRate and storyForm for the others) are ignored.
 * taskOptions(record) picks the task options out of a run's config or manifest; a record written
 * before memPatternRatio existed (no such key) gets that data's settings back: memPatternRatio 0.5,
 * minOperand 1, colorsPerName 1, so an old run is evaluated on the data it was trained on; a record
 * without memTagPieces was written when every mem tag was one token (memTagPieces 1).
 */
import { ArithmeticTask } from './arithmetic';
import { CipherTask } from './cipher';
import { IncontextTask } from './incontext';
import type { Task, TaskName, TaskOptions } from './task';

export type { Behaviour, Example, Task, TaskName, TaskOptions, TaskScale, TaskTokenizer } from './task';
export { ArithmeticTask } from './arithmetic';
export { IncontextTask } from './incontext';
export { CipherTask } from './cipher';
export { VocabTokenizer, PAD_TOKEN, EOA_TOKEN } from './tokenizer';

export const TASK_NAMES: readonly TaskName[] = ['arithmetic', 'incontext', 'cipher'];

const OPTION_KEYS = ['scale', 'seed', 'memRate', 'contradictRate', 'memPatternRatio', 'minOperand', 'colorsPerName', 'storyForm', 'memTagPieces', 'sumDigits'] as const;

/** The data settings of runs made before memPatternRatio was recorded. */
export const LEGACY_TASK_OPTIONS: TaskOptions = { memPatternRatio: 0.5, minOperand: 1, colorsPerName: 1, memTagPieces: 1 };

/** The task options recorded in `m` (a run's memgen config or manifest); see the header for old runs. */
export function taskOptions(m: TaskOptions): TaskOptions {
  const out: Record<string, unknown> = m.memPatternRatio === undefined ? { ...LEGACY_TASK_OPTIONS } : { memTagPieces: 1 };
  for (const k of OPTION_KEYS) if (m[k] !== undefined && m[k] !== null) out[k] = m[k];
  return out as TaskOptions;
}

export function makeTask(name: TaskName, opts: TaskOptions = {}): Task {
  switch (name) {
    case 'arithmetic':
      return new ArithmeticTask(opts);
    case 'incontext':
      return new IncontextTask(opts);
    case 'cipher':
      return new CipherTask(opts);
    default:
      throw new Error(`unknown task ${JSON.stringify(name)}; choose one of: ${TASK_NAMES.join(', ')}`);
  }
}
