/** `memgen robustness`: how often rephrasings of a prompt flip its behaviour (steer/robustness.ts). */
import * as fs from 'node:fs';
import { readAnalysisSummary } from '../../analysis/files';
import { parseMemgen } from '../../io/memgen-file';
import { GPT2Inference } from '../../models/gpt2-infer';
import type { GPT2Site } from '../../models/hooks';
import { isLoraRun, loraRunModel, loraSteerRun } from '../../runs/lora-run';
import { RunError, loadRun } from '../../runs/run';
import { formatFlips, robustness } from '../../steer/robustness';
import type { SteerModel } from '../../steer/steer-eval';
import type { Task } from '../../tasks/task';
import { RUNNER_OPTIONS, UsageError, choice, num, parse, required, runnerOptions, str } from '../args';
import { TASK_OPTIONS, TASK_OPTIONS_HELP, openPlainFolder, taskRequest } from '../plain-folder';
import { plainRunModel } from '../../runs/plain-run';

export const ROBUSTNESS_HELP = `  robustness  How fragile a prompt's behaviour is: the task's pair rule rephrases it (arithmetic: operands
            1-2 swapped; incontext: statements shuffled; cipher: two letters swapped), and the flip rate
            and the neurons that differ most between flipping and keeping rephrasings are printed.
            --run RUN (--prompt P | --file F.memgen) [--k K (8)] [--seed S (0)] [--neurons M (10)]
            [--site resid_pre|ln2|resid_post (the analysis', else ln2; LoRA: resid_post)] [--json] [--threads N] [--provider cpu|cuda]
            ${TASK_OPTIONS_HELP}`;

const SITES = ['resid_pre', 'ln2', 'resid_post'] as const;

/** The prompts of --prompt, or of a .memgen file (its parse errors name the file and line). */
function promptsFrom(v: Record<string, string | boolean | undefined>): string[] {
  const prompt = str(v.prompt, 'prompt');
  const file = str(v.file, 'file');
  if ((prompt === undefined) === (file === undefined)) throw new UsageError('give one of --prompt P or --file F.memgen');
  if (prompt !== undefined) return [prompt];
  let text: string;
  try {
    text = fs.readFileSync(file!, 'utf8');
  } catch (e) {
    throw new RunError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const parsed = parseMemgen(text);
  if (parsed.errors.length) {
    const e = parsed.errors[0];
    throw new RunError(`${file}:${e.range.start.line + 1}:${e.range.start.character + 1}: ${e.message}`);
  }
  if (parsed.prompts.length === 0) throw new RunError(`${file} has no prompt`);
  return parsed.prompts.map((p) => p.text);
}

/** The run's task and its model at the hook site (GPT-2 run, LoRA run, or plain folder on --task / its analysed task). */
async function openRun(runDir: string, site: GPT2Site | undefined, v: Record<string, string | boolean | undefined>): Promise<{ task: Task; model: SteerModel & { release(): Promise<void> } }> {
  let analysed: GPT2Site | undefined;
  try {
    analysed = readAnalysisSummary(runDir).site;
  } catch {
    analysed = undefined; // no analysis: the family's default site
  }
  const plain = openPlainFolder(runDir, taskRequest(v));
  if (plain) return { task: plain.task, model: await plainRunModel(plain, site ?? analysed, { runner: runnerOptions(v) }) };
  if (isLoraRun(runDir)) {
    const s = site ?? analysed ?? 'resid_post';
    if (s === 'ln2') throw new UsageError('a LoRA run has the sites resid_pre and resid_post, not ln2');
    const run = loraSteerRun(runDir);
    return { task: run.task, model: await loraRunModel(run.lora, s, { runner: runnerOptions(v) }) };
  }
  const run = loadRun(runDir);
  return { task: run.task, model: await GPT2Inference.create(run.cfg, run.params, { site: site ?? analysed ?? 'ln2', runner: runnerOptions(v) }) };
}

export async function robustnessCommand(argv: string[]): Promise<number> {
  const v = parse(argv, {
    run: { type: 'string' }, prompt: { type: 'string' }, file: { type: 'string' }, k: { type: 'string' }, seed: { type: 'string' },
    neurons: { type: 'string' }, site: { type: 'string' }, json: { type: 'boolean' }, ...RUNNER_OPTIONS, ...TASK_OPTIONS,
  });
  const runDir = required(v.run, 'run');
  const prompts = promptsFrom(v);
  const k = num(v.k, 'k', 8);
  if (!Number.isInteger(k) || k < 1) throw new UsageError(`--k must be a positive integer, got ${k}`);
  const topNeurons = num(v.neurons, 'neurons', 10);
  const seed = num(v.seed, 'seed', 0);
  const site = v.site === undefined ? undefined : choice(v.site, 'site', SITES);
  const { task, model } = await openRun(runDir, site, v);
  try {
    const results = [];
    for (const p of prompts) {
      const r = await robustness(task, model, task.fromPrompt(p), { k, seed, topNeurons });
      results.push(r);
      if (v.json) continue;
      console.log(`${r.prompt.prompt}${r.prompt.output}   → ${r.prompt.behaviour}`);
      console.log(`  ${formatFlips(r)}`);
      for (const x of r.variants) console.log(`    ${x.behaviour === r.prompt.behaviour ? '    ' : 'flip'}  ${x.prompt}${x.output}   → ${x.behaviour}`);
      if (r.neurons.length) console.log(`  neurons (mean flipping - mean keeping, ${model.site}): ${r.neurons.map((n) => `${n.name} ${n.diff >= 0 ? '+' : ''}${n.diff.toFixed(2)}`).join(', ')}`);
    }
    if (v.json) console.log(JSON.stringify({ run: runDir, site: model.site, k, seed, results }));
  } finally {
    await model.release();
  }
  return 0;
}
