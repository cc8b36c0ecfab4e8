/**
 * The engine, hosted in a worker thread so that the language server never waits for a model.
 *
 * Messages (EngineRequest / EngineReply): predict, steer, activations; cancel(id) drops a queued
 * request (a stale one: the document changed) before it runs. Requests run one at a time, in order.
 * A run is loaded once per (run folder, site, provider, threads) and kept (its two onnxruntime
 * sessions, the analysis: neurons, NMD, per-neuron class means, probe weights); results are cached
 * per (run, prompt, settings). Semantics: docs/protocol.md, "Predictions".
 * A run is a memgen GPT-2 run, a LoRA run (its base with the kept adapter), a LLaMA export, or a plain
 * GPT-2 or LLaMA Hugging Face folder on the task of the document's `task:` header (or of its analysis;
 * runs/plain-run.ts, analysis/plain-task.ts). GPT-2 runs on GPT2Inference, LLaMA on LlamaInference,
 * both seen through EditorModel (the same generate / forward / site-vector layout).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parentPort } from 'node:worker_threads';
import { type AnalysisSummary, type NeuronEntry, analysisDir, analysisPath, analysisStaleness, readAnalysisSummary, readNeurons } from '../../engine/analysis/files';
import { readNpy } from '../../engine/analysis/npy';
import type { ProbesFile } from '../../engine/analysis/probe-layers';
import { loadProbeModels } from '../../engine/analysis/probe-layers';
import { type ProbeKind, type ProbeModel, probeLogitRow } from '../../engine/analysis/probe';
import { rankNeurons } from '../../engine/analysis/rank';
import { GPT2Inference } from '../../engine/models/gpt2-infer';
import type { GPT2Site, SteerAt } from '../../engine/models/hooks';
import { LlamaInference } from '../../engine/models/llama-infer';
import { ADAPTER_FILES } from '../../engine/models/lora';
import type { RunnerOptions } from '../../engine/runtime/runner';
import { type HFModel, PLAIN_SITES, openModelFolder } from '../../engine/runs/hf-model';
import { isLlamaExportRun } from '../../engine/runs/llama-export-run';
import { isLoraRun } from '../../engine/runs/lora-run';
import { type LoadedRun, RUN_FILES, RunError, loadRun, readJSON } from '../../engine/runs/run';
import { resolvePlainTask } from '../../engine/analysis/plain-task';
import { type PlainTaskRequest, isPlainFolder, plainSteerRun } from '../../engine/runs/plain-run';
import type { SteerModel } from '../../engine/steer/steer-eval';
import { PAPER_GPT2_SETTING, PAPER_LLAMA_SETTING, type SteeringFile, defaultAlpha, steerPath } from '../../engine/steer/files';
import { customIntervention, targetedIntervention } from '../../engine/steer/intervention';
import { formatFlips, robustness } from '../../engine/steer/robustness';
import { steeringVerdict } from '../../engine/report/verdict';
import { type Example, type Task, firstAnswerTokens } from '../../engine/tasks/task';
import { type ActivationsResult, type Direction, type LayerProbeReading, type NeuronPush, type NeuronRef, type Prediction, type Provider, type Robustness, type SteerOutcome, type SteerResult, encodeBinary } from './protocol';

export interface PromptJob {
  run: string;
  prompt: string;
  site: GPT2Site;
  provider: Provider;
  threads: number;
  expected: string | null;
  /** A plain folder's task from the document's task:, taskSeed:, taskScale: header lines (absent: none given). */
  task?: PlainTaskRequest;
}

/** What the worker runs: its folder, task and width, and the model (GPT-2 weights, or a LLaMA with its adapter). */
interface EditorRun {
  dir: string;
  task: Task;
  cfg: { nLayer: number; nEmbd: number };
  family: 'gpt2' | 'llama';
  /** Opens the model reading and steering `site`. */
  open(site: GPT2Site, runner: RunnerOptions): Promise<EditorModel>;
}

/** GPT2Inference and LlamaInference as the worker uses them: site vectors [n, L, d] at the last prompt token. */
interface EditorModel extends SteerModel {
  readonly family: 'gpt2' | 'llama';
  readonly siteNames: string[];
  forward(prompt: readonly number[]): Promise<{ hidden: Float32Array[] }>;
}

function gpt2EditorRun(dir: string, task: Task, cfg: LoadedRun['cfg'], params: LoadedRun['params']): EditorRun {
  const dims = { nLayer: cfg.nLayer, nEmbd: cfg.nEmbd };
  return {
    dir, task, cfg: dims, family: 'gpt2',
    open: async (site, runner) => {
      const inf = await GPT2Inference.create(cfg, params, { site, runner, batchSize: PREFETCH_BATCH });
      return { site, family: 'gpt2', cfg: dims, siteNames: inf.siteNames, generate: (p, o) => inf.generate(p, o), forward: (p) => inf.forward(p) };
    },
  };
}

/** A LLaMA (a LoRA run's base and adapter, an export, a plain folder) at one of its sites (PLAIN_SITES.llama). */
function llamaEditorRun(dir: string, task: Task, m: HFModel): EditorRun {
  const { config, params } = m.llama!;
  const cfg = { nLayer: config.numLayers, nEmbd: config.hiddenSize };
  return {
    dir, task, cfg, family: 'llama',
    open: async (site, runner) => {
      if (!PLAIN_SITES.llama.includes(site)) throw new RunError(`${dir} is a LLaMA model: its sites are ${PLAIN_SITES.llama.join(', ')}, not ${site}; set the header line \`site: resid_post\` (the paper's LLaMA site)`);
      const adapter = m.adapter ? { config: m.adapter.config, params: m.adapter.params } : undefined;
      const inf = await LlamaInference.create(config, params, { site: site as 'resid_pre' | 'resid_post', adapter, runner, batchSize: PREFETCH_BATCH });
      const siteNames = inf.siteNames();
      return {
        site, family: 'llama', cfg, siteNames,
        generate: (p, o) => inf.generate(p, o),
        forward: async (p) => {
          const r = await inf.forward(p);
          return { hidden: siteNames.map((n) => r.sites[n]) };
        },
      };
    },
  };
}

/** The identity of a job's run in the keys of the caches: its folder, and a plain folder's header task. */
const runId = (job: PromptJob) => (job.task ? `${path.resolve(job.run)}#${JSON.stringify(job.task)}` : path.resolve(job.run));

/** Opens the job's run; a header task on a run with a task of its own and a plain folder without a task are refused. */
function openEditorRun(job: PromptJob): EditorRun {
  const own = (what: string) => new RunError(`${job.run} is ${what}, trained on its own task: the task:, taskSeed: and taskScale: header lines are for plain Hugging Face folders; remove them`);
  const lora = isLoraRun(job.run);
  if (lora || isLlamaExportRun(job.run)) {
    if (job.task) throw own(lora ? 'a LoRA run' : 'a LLaMA export');
    const o = openModelFolder(job.run);
    if (o.kind !== 'lora' && o.kind !== 'llama-export') throw new RunError(`${job.run}: expected a LoRA run or a LLaMA export`);
    return llamaEditorRun(job.run, o.run.task, o.model);
  }
  if (!isPlainFolder(job.run)) {
    if (job.task) throw own('a memgen run');
    const run = loadRun(job.run);
    return gpt2EditorRun(run.dir, run.task, run.cfg, run.params);
  }
  const plain = plainSteerRun(job.run, resolvePlainTask(job.run, job.task, { how: 'header' }));
  return plain.family === 'gpt2' ? gpt2EditorRun(plain.dir, plain.task, plain.hf.gpt2!.cfg, plain.hf.gpt2!.params) : llamaEditorRun(plain.dir, plain.task, plain.hf);
}

export type EngineRequest =
  | { id: number; kind: 'predict'; job: PromptJob; fresh?: boolean }
  | { id: number; kind: 'prefetch'; jobs: PromptJob[] }
  | { id: number; kind: 'robustness'; job: PromptJob; k: number }
  | { id: number; kind: 'steer'; job: PromptJob; direction: Direction; topN: number | null; alpha: number | null; steerAt: SteerAt; custom?: NeuronRef[] }
  | { id: number; kind: 'activations'; job: PromptJob }
  | { id: number; kind: 'cancel'; target: number };

export type EngineReply =
  | { id: number; ok: true; result: unknown }
  /** runError: the run itself failed to load (the same answer for every prompt on it). */
  | { id: number; ok: false; error: string; cancelled?: boolean; runError?: boolean };

interface Analysis {
  summary: AnalysisSummary;
  /** This run's steer-eval (steering.json) when it was made on this analysis, else null. */
  measured: SteeringFile | null;
  dir: string;
  neurons: NeuronEntry[];
  nmd: Float32Array;
  rho: Float32Array;
  /** Per (layer, neuron): midpoint of the gen and mem class means. */
  mid: Float32Array;
  probesFile: ProbesFile | null;
  probeModels: Partial<Record<ProbeKind, ProbeModel[]>> | null;
  stale: string | null;
}

interface Loaded {
  run: EditorRun;
  inf: EditorModel;
  analysis: Analysis | null;
  analysisError: string | null;
}

const loaded = new Map<string, Promise<Loaded>>();
const cache = new Map<string, unknown>();
/** Predictions are a few kB: 20,000 keep a 10,000-prompt file's lenses and hovers in memory (tens of MB). */
const CACHE_MAX = 20_000;

function remember<T>(key: string, value: T): T {
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(key, value);
  return value;
}

/** steering.json when its targeted top-N setting was measured on this analysis (same site and model). */
function readMeasuredSteering(run: EditorRun, summary: AnalysisSummary): SteeringFile | null {
  const file = steerPath(run, 'steering');
  if (!fs.existsSync(file)) return null;
  const f = readJSON<SteeringFile>(file, 'steering');
  return f.method === 'targeted' && f.topN !== null && f.site === summary.site && f.modelHash === summary.modelHash ? f : null;
}

/**
 * Default topN / alpha of a steer click: the setting this run's steering was measured at, else the
 * paper's GPT-2 setting for the task; and the note shown beside the result, which says what is known.
 */
function steerDefaults(l: Loaded, a: Analysis): { topN: number; alpha: number; note: string } {
  const m = a.measured;
  if (m) {
    const verdict = steeringVerdict(m).line;
    return { topN: m.topN!, alpha: m.alpha, note: `Measured on this run at topN ${m.topN}, alpha ${m.alpha} (steering.json): ${verdict} One prompt's flip is an example, not evidence.` };
  }
  const task = l.run.task.name;
  const paper = (l.run.family === 'llama' ? PAPER_LLAMA_SETTING : PAPER_GPT2_SETTING)[task] ?? { topN: 0.1, alpha: defaultAlpha(task) };
  return { ...paper, note: 'This run has no steering measurement (memgen steer-eval --run RUN): read a flip as a single example, not as evidence.' };
}

function loadAnalysis(run: EditorRun, site: GPT2Site): Analysis {
  const summary = readAnalysisSummary(run.dir);
  if (summary.site !== site) throw new Error(`the analysis in ${analysisDir(run)} is at site ${summary.site}, not ${site}`);
  const L = run.cfg.nLayer;
  const d = run.cfg.nEmbd;
  const nmd = readNpy(analysisPath(run, 'nmd')).data;
  const rho = readNpy(analysisPath(run, 'rho')).data;
  const gen = readNpy(analysisPath(run, 'hiddenGen'));
  const mem = readNpy(analysisPath(run, 'hiddenMem'));
  const P = gen.shape[0];
  const mid = new Float32Array(L * d);
  for (let p = 0; p < P; p++) for (let j = 0; j < L * d; j++) mid[j] += (gen.data[p * L * d + j] + mem.data[p * L * d + j]) / (2 * P);
  const probesPath = analysisPath(run, 'probes');
  const probesFile = fs.existsSync(probesPath) ? readJSON<ProbesFile>(probesPath, 'probes') : null;
  let probeModels: Analysis['probeModels'] = null;
  try {
    probeModels = loadProbeModels(analysisDir(run));
  } catch {
    probeModels = null;
  }
  return { summary, measured: readMeasuredSteering(run, summary), dir: analysisDir(run), neurons: readNeurons(run.dir).neurons, nmd, rho, mid, probesFile, probeModels, stale: analysisStaleness(run.dir, summary) };
}

/** Thrown when a run folder fails to load (not a prompt's own error). */
class RunLoadError extends Error {}

/**
 * Runs that failed to load, with the state of their files then: such a run is not read again until
 * one of them changes (a broken folder named by a document of thousands of prompts was re-read per prompt).
 */
const failed = new Map<string, { stamp: string; error: RunLoadError }>();

/** The size, modification time and inode of a run folder's files: a change means a reload is worth trying. */
function runStamp(dir: string): string {
  return [RUN_FILES.config, RUN_FILES.manifest, RUN_FILES.model, RUN_FILES.tokenizer, ADAPTER_FILES.model]
    .map((f) => {
      try {
        const st = fs.statSync(path.join(dir, f));
        return `${st.size}:${st.mtimeMs}:${st.ino}`;
      } catch {
        return '-';
      }
    })
    .join('|');
}

function getLoaded(job: PromptJob): Promise<Loaded> {
  const key = JSON.stringify([runId(job), job.site, job.provider, job.threads]);
  let p = loaded.get(key);
  if (!p) {
    const stamp = runStamp(job.run);
    const f = failed.get(key);
    if (f && f.stamp === stamp) return Promise.reject(f.error);
    failed.delete(key);
    p = (async () => {
      const run = openEditorRun(job);
      const inf = await run.open(job.site, { provider: job.provider, threads: job.threads });
      let analysis: Analysis | null = null;
      let analysisError: string | null = null;
      try {
        analysis = loadAnalysis(run, job.site);
      } catch (e) {
        analysisError = (e as Error).message;
      }
      return { run, inf, analysis, analysisError };
    })().catch((e: unknown) => {
      const error = new RunLoadError((e as Error).message);
      loaded.delete(key);
      failed.set(key, { stamp, error });
      throw error;
    });
    loaded.set(key, p);
  }
  return p;
}

/** The softmax mass of `logits` on each group of ids (null for an empty group). */
function softmaxAt(logits: Float32Array, groups: (readonly number[])[]): (number | null)[] {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  return groups.map((ids) => (ids.length === 0 ? null : ids.reduce((a, id) => a + Math.exp(logits[id] - max) / sum, 0)));
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

function example(l: Loaded, prompt: string): Example {
  return l.run.task.fromPrompt(prompt);
}

/** Greedy generations of `exs` in one batched call: output, classification, first-token p and site vectors. */
async function generate(l: Loaded, exs: readonly Example[], steer?: { vectors: Float32Array[]; alpha: number; steerAt: SteerAt }) {
  const tok = l.run.task.tokenizer;
  const res = await l.inf.generate(exs.map((ex) => tok.encode(ex.prompt)), { maxNewTokens: l.run.task.maxAnswerTokens, eosId: tok.eoaId, steer: steer?.vectors, steerAt: steer?.steerAt });
  // A huge alpha (the header allows any finite number, e.g. 1e308) overflows the activations: the
  // probabilities would be NaN, sent as null where the protocol promises numbers.
  const bad = res.firstLogits.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    const v = res.firstLogits[bad];
    throw new Error(steer ? `steering at alpha ${steer.alpha} overflows this model's activations (logit ${bad} is ${v}); use an alpha of smaller magnitude` : `the model's logit ${bad} is ${v}: its weights are not finite`);
  }
  const V = tok.vocab.length;
  const Ld = l.run.cfg.nLayer * l.run.cfg.nEmbd;
  return exs.map((ex, i) => {
    const output = tok.decode(res.tokens[i]);
    const first = firstAnswerTokens(l.run.task, ex);
    const [pGen, pMem] = softmaxAt(res.firstLogits.subarray(i * V, (i + 1) * V), [[first.gen], first.mem]);
    return { output, answer: l.run.task.statedAnswer?.(output) ?? null, behaviour: l.run.task.classify(ex, output), pGenFirst: pGen as number, pMemFirst: pMem, hidden: res.hidden.subarray(i * Ld, (i + 1) * Ld) };
  });
}
type Generated = Awaited<ReturnType<typeof generate>>[number];

function checkExpected(expected: string | null, output: string, behaviour: string): boolean | null {
  if (expected === null) return null;
  if (expected === 'gen' || expected === 'mem' || expected === 'other') return expected === behaviour;
  return expected.trim() === output.trim();
}

const predictionKey = (job: PromptJob) => JSON.stringify(['predict', runId(job), job.prompt, job.site, job.provider, job.expected]);

async function predict(job: PromptJob, fresh: boolean): Promise<Prediction> {
  const key = predictionKey(job);
  if (!fresh && cache.has(key)) return cache.get(key) as Prediction;
  const t0 = Date.now();
  const l = await getLoaded(job);
  const ex = example(l, job.prompt);
  return remember(key, prediction(job, l, ex, (await generate(l, [ex]))[0], t0));
}

/**
 * Predictions of many prompts of one run in batched generations (PREFETCH_BATCH a call), into the
 * cache, so that a document's diagnostics and lenses then read them: one prompt at a time, 10,000
 * prompts took minutes. Prompts that fail (a typo the task cannot read) are left for predict(),
 * which reports them one by one.
 */
const PREFETCH_BATCH = 64;
async function prefetch(jobs: readonly PromptJob[]): Promise<number> {
  const todo = jobs.filter((j) => !cache.has(predictionKey(j)));
  if (todo.length === 0) return 0;
  const t0 = Date.now();
  const l = await getLoaded(todo[0]);
  const readable: { job: PromptJob; ex: Example }[] = [];
  for (const job of todo) {
    try {
      readable.push({ job, ex: example(l, job.prompt) });
    } catch { /* predict() reports it */ }
  }
  for (let i = 0; i < readable.length; i += PREFETCH_BATCH) {
    const chunk = readable.slice(i, i + PREFETCH_BATCH);
    const gs = await generate(l, chunk.map((c) => c.ex));
    chunk.forEach((c, k) => remember(predictionKey(c.job), prediction(c.job, l, c.ex, gs[k], t0)));
  }
  return readable.length;
}

/** The Prediction of a generated prompt: the first-token decision, probes by layer, the neurons that push. */
function prediction(job: PromptJob, l: Loaded, ex: Example, g: Generated, t0: number): Prediction {
  const { nLayer: L, nEmbd: d } = l.run.cfg;
  const a = l.analysis;

  let predicted: 'mem' | 'gen' = 'gen';
  let probability = 1;
  if (g.pMemFirst !== null) {
    const s = g.pMemFirst + g.pGenFirst;
    const pm = s > 0 ? g.pMemFirst / s : 0.5;
    predicted = pm > 0.5 ? 'mem' : 'gen';
    probability = predicted === 'mem' ? pm : 1 - pm;
  }

  const probes: LayerProbeReading[] = [];
  let probesNote: string | null = null;
  let bestSite = l.inf.siteNames[L - 1];
  if (!a) probesNote = `no analysis: ${l.analysisError}`;
  else if (!a.probesFile) probesNote = `no probes in ${a.dir} (run \`memgen analyze\` without --no-probes)`;
  else {
    if (!a.probeModels) probesNote = `probe weights (probes.safetensors) are missing in ${a.dir}: accuracies only; rerun \`memgen analyze --run ${job.run} --force\` to save them`;
    for (let layer = 0; layer < L; layer++) {
      const x = g.hidden.subarray(layer * d, (layer + 1) * d);
      const pl = a.probeModels?.logistic?.[layer];
      const pm = a.probeModels?.mlp?.[layer];
      probes.push({
        layer,
        site: l.inf.siteNames[layer],
        pGenLogistic: pl ? sigmoid(probeLogitRow(pl, x)) : null,
        pGenMlp: pm ? sigmoid(probeLogitRow(pm, x)) : null,
        accLogistic: a.probesFile.logistic[layer]?.accuracy ?? null,
        accMlp: a.probesFile.mlp[layer]?.accuracy ?? null,
      });
    }
    let best = -1;
    for (const p of probes) {
      const acc = Math.max(p.accLogistic ?? -1, p.accMlp ?? -1);
      if (acc > best) {
        best = acc;
        bestSite = p.site;
      }
    }
  }

  const towardGen: NeuronPush[] = [];
  const towardMem: NeuronPush[] = [];
  if (a) {
    const pushes = a.neurons.map((n) => {
      const j = n.layer * d + n.index;
      const value = g.hidden[j];
      return { site: n.site, index: n.index, rank: n.rank, rho: n.rho, value, push: (value - a.mid[j]) * Math.sign(a.nmd[j]) };
    });
    towardGen.push(...pushes.filter((p) => p.push > 0).sort((x, y) => y.push - x.push).slice(0, 5));
    towardMem.push(...pushes.filter((p) => p.push < 0).sort((x, y) => x.push - y.push).slice(0, 5).map((p) => ({ ...p, push: -p.push })));
  }

  const result: Prediction = {
    prompt: ex.prompt,
    run: l.run.dir,
    runName: path.basename(path.resolve(l.run.dir)),
    task: l.run.task.description,
    output: g.output,
    answer: g.answer,
    behaviour: g.behaviour,
    predicted,
    probability,
    pGenFirst: g.pGenFirst,
    pMemFirst: g.pMemFirst,
    genAnswer: ex.genAnswer,
    memAnswer: ex.memAnswer,
    bestSite,
    probes,
    probesNote,
    towardGen,
    towardMem,
    analysis: a ? { dir: a.dir, site: a.summary.site, pairs: a.summary.pairs, createdAt: a.summary.createdAt, stale: a.stale } : null,
    expected: job.expected,
    expectedMet: checkExpected(job.expected, g.output, g.behaviour),
    millis: Date.now() - t0,
  };
  return result;
}

/** The prompt's behaviour under k rephrasings of the pair rule (steer/robustness.ts), seed 0, cached. */
async function rephrasingRobustness(job: PromptJob, k: number): Promise<Robustness> {
  const key = JSON.stringify(['robustness', runId(job), job.prompt, job.site, job.provider, k]);
  if (cache.has(key)) return cache.get(key) as Robustness;
  const l = await getLoaded(job);
  const r = await robustness(l.run.task, l.inf, example(l, job.prompt), { k, seed: 0, topNeurons: 5 });
  return remember(key, {
    k, behaviour: r.prompt.behaviour, variants: r.variants, flips: r.flips, flipRate: r.flipRate, flipsTo: r.flipsTo,
    neurons: r.neurons.map((n) => ({ name: n.name, diff: n.diff })), summary: formatFlips(r),
  });
}

/** The last steer of each (run, prompt): its shift vectors, for the Activations panel's overlay. */
const lastShift = new Map<string, { vectors: Float32Array[]; steer: NonNullable<ActivationsResult['steer']> }>();
const shiftKey = (job: PromptJob) => JSON.stringify([runId(job), job.prompt, job.site]);

async function steer(job: PromptJob, direction: Direction, topNIn: number | null, alphaIn: number | null, steerAt: SteerAt, custom: NeuronRef[] | undefined): Promise<SteerResult> {
  const t0 = Date.now();
  const l = await getLoaded(job);
  const a = l.analysis;
  if (!a) throw new Error(`cannot steer: ${l.analysisError}`);
  const defaults = steerDefaults(l, a);
  const topN = topNIn ?? defaults.topN;
  const alpha = alphaIn ?? defaults.alpha;
  const key = JSON.stringify(['steer', runId(job), job.prompt, job.site, job.provider, direction, topN, alpha, steerAt, custom ?? null]);
  const { nLayer: L, nEmbd: d } = l.run.cfg;
  // The panels' custom set (customIntervention: the same NMD rule on picked neurons), else the top-N ranking.
  const iv = custom && custom.length > 0
    ? customIntervention(custom, a.nmd, { layers: L, d }, a.summary.site, alpha, direction)
    : targetedIntervention(Math.abs(topN - a.summary.topN) < 1e-12 ? a.neurons : rankNeurons(a.rho, a.nmd, L, d, a.summary.site, topN), a.nmd, { layers: L, d }, alpha, direction);
  lastShift.set(shiftKey(job), { vectors: iv.vectors, steer: { direction, topN, alpha, neurons: iv.description.count } });
  if (cache.has(key)) return cache.get(key) as SteerResult;
  const ex = example(l, job.prompt);
  const [un] = await generate(l, [ex]);
  const [st] = await generate(l, [ex], { vectors: iv.vectors, alpha, steerAt });
  const outcome = (g: typeof un): SteerOutcome => ({ output: g.output, answer: g.answer, behaviour: g.behaviour, pGenFirst: g.pGenFirst, pMemFirst: g.pMemFirst });
  return remember(key, {
    prompt: ex.prompt,
    runName: path.basename(path.resolve(l.run.dir)),
    direction,
    method: custom && custom.length > 0 ? 'custom' : 'targeted',
    topN,
    alpha,
    steerAt,
    neurons: iv.description.count,
    sites: iv.description.sites,
    unsteered: outcome(un),
    steered: outcome(st),
    note: defaults.note,
    millis: Date.now() - t0,
  });
}

async function activations(job: PromptJob): Promise<ActivationsResult> {
  const l = await getLoaded(job);
  const ex = example(l, job.prompt);
  const f = await l.inf.forward(l.run.task.tokenizer.encode(ex.prompt));
  const { nLayer: L, nEmbd: d } = l.run.cfg;
  const hidden = new Float32Array(L * d);
  f.hidden.forEach((h, layer) => hidden.set(h.subarray(0, d), layer * d));
  const last = lastShift.get(shiftKey(job));
  let shift: Float32Array | null = null;
  if (last) {
    shift = new Float32Array(L * d);
    last.vectors.forEach((v, layer) => shift!.set(v.subarray(0, d), layer * d));
  }
  return {
    siteNames: l.inf.siteNames,
    hidden: encodeBinary(hidden, [L, d]),
    shift: shift ? encodeBinary(shift, [L, d]) : null,
    steer: last?.steer ?? null,
    prompt: ex.prompt,
    runName: path.basename(path.resolve(l.run.dir)),
  };
}

// ------------------------------------------------------------------------------------------
// The queue: one request at a time; cancel drops a queued one.

const queue: Exclude<EngineRequest, { kind: 'cancel' }>[] = [];
let running = false;

function reply(r: EngineReply): void {
  parentPort!.postMessage(r);
}

async function pump(): Promise<void> {
  if (running) return;
  running = true;
  try {
    for (let req = queue.shift(); req; req = queue.shift()) {
      try {
        let result: unknown;
        if (req.kind === 'predict') result = await predict(req.job, Boolean(req.fresh));
        else if (req.kind === 'prefetch') result = await prefetch(req.jobs);
        else if (req.kind === 'robustness') result = await rephrasingRobustness(req.job, req.k);
        else if (req.kind === 'steer') result = await steer(req.job, req.direction, req.topN, req.alpha, req.steerAt, req.custom);
        else result = await activations(req.job);
        reply({ id: req.id, ok: true, result });
      } catch (e) {
        reply({ id: req.id, ok: false, error: (e as Error).message, runError: e instanceof RunLoadError });
      }
    }
  } finally {
    running = false;
  }
}

if (parentPort) {
  parentPort.on('message', (req: EngineRequest) => {
    if (req.kind === 'cancel') {
      const i = queue.findIndex((q) => q.id === req.target);
      if (i >= 0) {
        queue.splice(i, 1);
        reply({ id: req.target, ok: false, error: 'cancelled', cancelled: true });
      }
      return;
    }
    queue.push(req);
    void pump();
  });
}
