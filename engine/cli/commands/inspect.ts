/** `memgen generate`, `memgen forward`, `memgen eval`: look at what a trained run does. */
import * as fs from 'node:fs';
import { GPT2_SITES, type GPT2Site, type LlamaSite, parseSiteName } from '../../models/hooks';
import { GPT2Inference } from '../../models/gpt2-infer';
import { LlamaInference } from '../../models/llama-infer';
import { type HFModel, type OpenedModel, PLAIN_DEFAULT_SITE, PLAIN_SITES, hfModelInference, openModelFolder, parsePlainSiteName, withAdapter } from '../../runs/hf-model';
import type { RunnerOptions } from '../../runtime/runner';
import { formatExport, readExportInfo } from '../../steer/export';
import type { Task } from '../../tasks/task';
import { type EvalModel, PLAIN_N, evaluate, formatEval, plainAccuracy, plainSet, testSet } from '../../train/evaluate';
import { type OptionSpec, RUNNER_OPTIONS, UsageError, choice, num, parse, required, runnerOptions, str } from '../args';

/** New tokens `generate` writes on a plain Hugging Face folder unless --max-new-tokens says otherwise. */
export const PLAIN_MAX_NEW_TOKENS = 32;

export const INSPECT_HELP = `  generate  Greedy output of a run for one prompt, and its classification (gen / mem / other).
            --run RUN --prompt TEXT [--steer FILE.json] [--max-new-tokens N] [--json]
            FILE.json maps site names to vectors, e.g. {"blocks.3.ln2": [0.1, ...]} (one site kind per file).
  forward   Token ids, last-position logits and every layer's last-token vector at a site.
            --run RUN --prompt TEXT [--site ${GPT2_SITES.join('|')}] --json
            RUN may also be any local Hugging Face GPT-2 or LLaMA folder (config.json, model.safetensors or
            its sharded index, tokenizer.json): the prompt goes through its tokenizer.json, no task, no
            classification; generate writes --max-new-tokens (${PLAIN_MAX_NEW_TOKENS}); LLaMA sites: ${PLAIN_SITES.llama.join('|')} (default resid_post);
            [--adapter DIR] puts a PEFT LoRA adapter (adapter_config.json, adapter_model.safetensors) on a LLaMA folder.
  eval      Held-out test table of a run: % gen / % mem / % other; for a \`memgen export\` folder (GPT-2, or LLaMA
            from a LoRA run: generate and forward open those too, with the task) also its baked intervention and
            the baked vs runtime steering comparison recorded at export. A LoRA run (\`memgen train --lora\`) opens
            as its base with its kept adapter, with its task, in eval, generate and forward.
            --run RUN [--n N (500)] [--seed S (the run's)]`;

/** Reads a steering file: site name -> vector; returns the site kind and one vector per layer. */
export function readSteerFile<S extends string = GPT2Site>(
  file: string,
  run: { cfg: { nLayer: number; nEmbd: number } },
  parseName: (name: string) => { layer: number; site: S } = parseSiteName as unknown as (name: string) => { layer: number; site: S },
): { site: S | undefined; vectors: Float32Array[] } {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UsageError(`--steer ${file}: ${(e as Error).message}`);
  }
  const d = run.cfg.nEmbd;
  const vectors = Array.from({ length: run.cfg.nLayer }, () => new Float32Array(d));
  let site: S | undefined;
  for (const [name, vec] of Object.entries(json)) {
    const parsed = parseName(name);
    if (parsed.layer >= run.cfg.nLayer) throw new UsageError(`--steer ${file}: ${name} is past the model's ${run.cfg.nLayer} layers`);
    if (site && parsed.site !== site) throw new UsageError(`--steer ${file}: mixes sites ${site} and ${parsed.site}; use one`);
    site = parsed.site;
    if (!Array.isArray(vec) || vec.length !== d || !vec.every((x) => typeof x === 'number')) {
      throw new UsageError(`--steer ${file}: ${name} must be an array of ${d} numbers`);
    }
    vectors[parsed.layer].set(vec as number[]);
  }
  return { site, vectors };
}

const GENERATE_OPTIONS: OptionSpec = { run: { type: 'string' }, adapter: { type: 'string' }, prompt: { type: 'string' }, steer: { type: 'string' }, json: { type: 'boolean' }, 'max-new-tokens': { type: 'string' }, ...RUNNER_OPTIONS };

/**
 * A folder whose outputs generate and eval classify: a memgen GPT-2 run, or a LLaMA export (`memgen
 * export` of a LoRA run; runs/llama-export-run.ts): its task, and its model opened steered at a site.
 */
interface TaskRun {
  dir: string;
  task: Task;
  seed: number;
  cfg: { nLayer: number; nEmbd: number };
  /** A steering file's site name, as this family names it. */
  parseSite(name: string): { layer: number; site: string };
  open(site: string | undefined, runner: RunnerOptions): Promise<EvalModel & { generate(prompts: readonly number[][], opts: { maxNewTokens: number; eosId: number; steer?: Float32Array[] }): Promise<{ tokens: number[][]; stoppedAtEos: boolean[]; firstLogits: Float32Array }>; release(): Promise<void> }>;
}

function taskRun(opened: Exclude<OpenedModel, { kind: 'hf' }>): TaskRun {
  if (opened.kind === 'llama-export' || opened.kind === 'lora') {
    const { run, model } = opened;
    const llama = model.llama!;
    const c = llama.config;
    return {
      dir: run.dir, task: run.task, seed: run.manifest.seed, cfg: { nLayer: c.numLayers, nEmbd: c.hiddenSize },
      parseSite: (name) => parsePlainSiteName('llama', name),
      open: (site, runner) => LlamaInference.create(c, llama.params, { site: (site ?? PLAIN_DEFAULT_SITE.llama) as LlamaSite, adapter: model.adapter, runner }),
    };
  }
  const { run } = opened;
  return {
    dir: run.dir, task: run.task, seed: run.memgen.seed, cfg: run.cfg,
    parseSite: (name) => parseSiteName(name),
    open: (site, runner) => GPT2Inference.create(run.cfg, run.params, { site: site as GPT2Site | undefined, runner }),
  };
}

export async function generateCommand(argv: string[]): Promise<number> {
  const v = parse(argv, GENERATE_OPTIONS);
  const opened = openModelFolder(required(v.run, 'run'));
  if (opened.kind === 'hf') return generatePlain(plainWithAdapter(opened.model, v), v);
  refuseAdapter(v, opened);
  const run = taskRun(opened);
  const prompt = required(v.prompt, 'prompt');
  const example = run.task.fromPrompt(prompt);
  const steerFile = str(v.steer, 'steer');
  const steer = steerFile ? readSteerFile(steerFile, run, (n) => run.parseSite(n)) : undefined;
  const inf = await run.open(steer ? (steer.site ?? (opened.kind === 'run' ? 'ln2' : undefined)) : undefined, runnerOptions(v));
  try {
    const tok = run.task.tokenizer;
    const res = await inf.generate([tok.encode(example.prompt)], { maxNewTokens: num(v['max-new-tokens'], 'max-new-tokens', run.task.maxAnswerTokens), eosId: tok.eoaId, steer: steer?.vectors });
    const output = tok.decode(res.tokens[0]);
    const behaviour = run.task.classify(example, output);
    const answer = run.task.statedAnswer?.(output) ?? null;
    if (v.json) {
      console.log(JSON.stringify({ prompt: example.prompt, output, answer, behaviour, stoppedAtEos: res.stoppedAtEos[0], genAnswer: example.genAnswer, memAnswer: example.memAnswer, steered: Boolean(steer) }));
    } else {
      console.log(`${example.prompt}${output}${answer !== null ? `   (= ${answer})` : ''}`);
      console.log(`→ ${behaviour}   (correct: ${example.genAnswer}${example.memAnswer ? `, memorized: ${example.memAnswer}` : ''}${steer ? ', steered' : ''})`);
    }
  } finally {
    await inf.release();
  }
  return 0;
}

/** A plain folder with `--adapter DIR` when given. */
function plainWithAdapter(m: HFModel, v: Record<string, string | boolean | undefined>): HFModel {
  const dir = str(v.adapter, 'adapter');
  return dir === undefined ? m : withAdapter(m, dir);
}

/** --adapter is for plain LLaMA folders: a LoRA run or an export carries its adapter already. */
function refuseAdapter(v: Record<string, string | boolean | undefined>, opened: OpenedModel): void {
  const what = { run: 'run', lora: 'LoRA run', 'llama-export': 'export' } as const;
  if (v.adapter !== undefined && opened.kind !== 'hf') throw new UsageError(`--adapter puts a PEFT adapter on a plain LLaMA folder; ${opened.run.dir} is a memgen ${what[opened.kind]} (its adapter, if any, is in it already)`);
}

/** generate on a plain Hugging Face folder: the folder's tokenizer, no task (so no classification). */
async function generatePlain(m: HFModel, v: Record<string, string | boolean | undefined>): Promise<number> {
  const prompt = required(v.prompt, 'prompt');
  const maxNewTokens = num(v['max-new-tokens'], 'max-new-tokens', PLAIN_MAX_NEW_TOKENS);
  const steerFile = str(v.steer, 'steer');
  const steer = steerFile ? readSteerFile(steerFile, { cfg: { nLayer: m.nLayer, nEmbd: m.hidden } }, (n) => parsePlainSiteName(m.family, n)) : undefined;
  const ids = m.tokenizer.encode(prompt);
  const inf = await hfModelInference(m, { site: steer?.site, runner: runnerOptions(v) });
  try {
    const res = await inf.generate(ids, { maxNewTokens, steer: steer?.vectors });
    const output = m.tokenizer.decode(res.tokens, { skipSpecialTokens: true });
    if (v.json) {
      console.log(JSON.stringify({ prompt, model: { dir: m.dir, family: m.family, adapter: m.adapter?.dir ?? null }, ids, tokens: res.tokens, output, stoppedAtEos: res.stoppedAtEos, steered: Boolean(steer) }));
    } else {
      console.log(`${prompt}${output}`);
      console.log(`→ ${res.tokens.length} new tokens${res.stoppedAtEos ? ', stopped at eos' : ''}   (plain ${m.family} folder: no task, so no gen / mem classification${steer ? '; steered' : ''})`);
    }
  } finally {
    await inf.release();
  }
  return 0;
}

export async function forwardCommand(argv: string[]): Promise<number> {
  const v = parse(argv, { run: { type: 'string' }, adapter: { type: 'string' }, prompt: { type: 'string' }, site: { type: 'string' }, json: { type: 'boolean' }, ...RUNNER_OPTIONS });
  if (!v.json) throw new UsageError('forward prints JSON only; pass --json');
  const opened = openModelFolder(required(v.run, 'run'));
  refuseAdapter(v, opened);
  let ids: number[];
  let inf: { siteNames: string[]; forward(ids: readonly number[]): Promise<{ logits: Float32Array; hidden: Float32Array[] }>; release(): Promise<void> };
  if (opened.kind === 'run') {
    const run = opened.run;
    const site = choice(v.site, 'site', GPT2_SITES, 'ln2');
    ids = run.task.tokenizer.encode(required(v.prompt, 'prompt'));
    inf = await GPT2Inference.create(run.cfg, run.params, { site, runner: runnerOptions(v) });
  } else {
    const m = plainWithAdapter(opened.model, v);
    const site = choice(v.site, 'site', PLAIN_SITES[m.family], PLAIN_DEFAULT_SITE[m.family]);
    ids = m.tokenizer.encode(required(v.prompt, 'prompt'));
    inf = await hfModelInference(m, { site, runner: runnerOptions(v) });
  }
  try {
    const r = await inf.forward(ids);
    const hidden: Record<string, number[]> = {};
    r.hidden.forEach((h, i) => (hidden[inf.siteNames[i]] = Array.from(h)));
    console.log(JSON.stringify({ ids, logits: Array.from(r.logits), hidden }));
  } finally {
    await inf.release();
  }
  return 0;
}

export async function evalCommand(argv: string[]): Promise<number> {
  const v = parse(argv, { run: { type: 'string' }, n: { type: 'string' }, seed: { type: 'string' }, ...RUNNER_OPTIONS });
  const dir = required(v.run, 'run');
  const opened = openModelFolder(dir);
  if (opened.kind === 'hf') throw new UsageError(`${dir} is a plain Hugging Face folder: it has no task, so no held-out table (eval reads memgen runs and \`memgen export\` folders)`);
  const run = taskRun(opened);
  const n = num(v.n, 'n', 500);
  const inf = await run.open(undefined, runnerOptions(v));
  try {
    const seed = num(v.seed, 'seed', run.seed);
    const r = await evaluate(run.task, inf, testSet(run.task, n, seed));
    const plain = await plainAccuracy(run.task, inf, plainSet(run.task, PLAIN_N, seed));
    console.log(`${run.dir}: ${run.task.description}`);
    console.log(`behaviour   count     %   (held-out pattern inputs)`);
    for (const b of ['gen', 'mem', 'other'] as const) console.log(`${b.padEnd(9)} ${String(r.counts[b]).padStart(7)} ${(100 * r[b]).toFixed(1).padStart(6)}`);
    if (plain !== null) console.log(`plain    ${String(PLAIN_N).padStart(7)} ${(100 * plain).toFixed(1).padStart(6)}   (pattern-free inputs answered right: the ceiling of mem->gen)`);
    console.log(formatEval({ ...r, plainAccuracy: plain }));
    const exported = readExportInfo(run.dir);
    if (exported) console.log(`\n${formatExport(exported)}`);
  } finally {
    await inf.release();
  }
  return 0;
}
