/**
 * Experiment (docs/llama.md, "A story form the base never read"): a LoRA in-context adapter on a base
 * that reads the tasks' stories in exactly the form it was pretrained on has nothing to learn (loss
 * 0.01 at its first step, mem 0 %). A real LLaMA never read this task. This trains the same adapter
 * (`memgen train --base BASE --lora --task incontext ...`, every argument passed through) with the
 * stories rendered in another surface form, chosen by FORMAT:
 *   has   "Rose has role eagle. Rose has colour crimson. ... Which colour has Vicky?"
 *   rev   "eagle is Rose. crimson is Rose. ... What color is Vicky?"  (value before name)
 *   colon "Rose: eagle. Rose: crimson. ... Vicky: color?"  (since in the product: `memgen train --story-form colon`)
 *   ask   the statements as they are, the question "Which colour has Vicky?"
 * The task is otherwise the same (names, roles, colours, the story's rule, the classification).
 *
 *   npx esbuild scripts/incontext-format.ts --bundle --platform=node --external:onnxruntime-node \
 *     --outfile=dist/incontext-format.js
 *   FORMAT=has node dist/incontext-format.js --base runs/base-llama-tiny --lora --task incontext --out DIR ...
 */
import { trainCommand } from '../engine/cli/commands/train';
import { HFTaskTokenizer } from '../engine/tasks/hf-task-tokenizer';
import { COLOURS, IncontextTask } from '../engine/tasks/incontext';
import type { Example } from '../engine/tasks/task';

const FORMAT = process.env.FORMAT ?? 'has';
const statement = (s: string): string => {
  const m = /^([A-Za-z]+) is ([a-z]+)\.$/.exec(s);
  if (!m) return s;
  const [, who, what] = m;
  const colour = COLOURS.includes(what);
  if (FORMAT === 'has') return `${who} has ${colour ? 'colour' : 'role'} ${what}.`;
  if (FORMAT === 'rev') return `${what} is ${who}.`;
  if (FORMAT === 'colon') return `${who}: ${what}.`;
  if (FORMAT === 'ask') return s;
  throw new Error(`FORMAT must be has, rev, colon or ask, got ${FORMAT}`);
};
const question = (t: string): string => (FORMAT === 'has' || FORMAT === 'ask' ? `Which colour has ${t}?` : FORMAT === 'colon' ? `${t}: color?` : `What color is ${t}?`);

type WithStatements = (meta: { target: string }, statements: string[], sourceColour: string) => Example;
const proto = IncontextTask.prototype as unknown as { withStatements: WithStatements };
const original = proto.withStatements;
proto.withStatements = function (this: IncontextTask, meta, statements, sourceColour) {
  const ex = original.call(this, meta, statements, sourceColour);
  return { ...ex, prompt: `${statements.map(statement).join(' ')} ${question(meta.target)}` };
};
// the task's own vocabulary has no 'has' or ':': its separator (a space before the colour) is set here
HFTaskTokenizer.prototype.separator = () => ' ';
console.log(`incontext stories in the '${FORMAT}' form, e.g. ${statement('Rose is eagle.')} ${statement('Rose is crimson.')} ${question('Vicky')}`);
trainCommand(process.argv.slice(2)).then((code) => process.exit(code));
