/**
 * The paper's three synthetic tasks behind one constructor (method.md section 2):
 *   makeTask('arithmetic' | 'incontext' | 'cipher', { scale, seed, memRate, contradictRate })
 * Defaults: scale 'tiny', seed 0; the rates default per task and scale (see each module's header).
 * Options a task does not use (memRate for incontext, contradictRate for the others) are ignored.
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
