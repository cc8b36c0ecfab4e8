/**
 * The MemGen language server: .memgen prompt files get diagnostics, CodeLenses and hovers; the
 * memgen/* requests (protocol.ts) steer, run, list runs and neurons, and run the long CLI jobs
 * (train, analyze, steer-eval) as child processes with LSP work-done progress and cancel.
 *
 * The engine lives in a worker thread (engine-worker.ts): this thread only parses, routes and
 * formats, so it answers at once while a model runs. Parse errors are published on every change;
 * model-backed diagnostics after `debounceMs` of quiet, and a newer version cancels the older
 * version's queued work. In an untrusted workspace (settings.trusted false) no model runs.
 * Start: `node dist/server.js --stdio` (or --node-ipc, as the client does).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  type CancellationToken,
  type CodeLens,
  CodeLensRefreshRequest,
  type Diagnostic,
  DiagnosticSeverity,
  type Hover,
  MarkupKind,
  ProposedFeatures,
  TextDocumentSyncKind,
  TextDocuments,
  createConnection,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { analysisPath } from '../../engine/analysis/files';
import { readPlainTask } from '../../engine/analysis/plain-task';
import { isMemgenRunFolder } from '../../engine/runs/hf-model';
import { isLoraRun } from '../../engine/runs/lora-run';
import { isGPT2Site } from '../../engine/models/hooks';
import type { EngineReply, EngineRequest, PromptJob } from './engine-worker';
import { type MemgenFile, type PromptEntry, type Range, parseMemgen, promptAt } from './memgen-file';
import * as panels from './panel-data';
import * as lsp from './protocol';
import { TrainWatch, readTrainLog } from './train-watch';

const connection = createConnection(ProposedFeatures.all);
const documents = new TextDocuments(TextDocument);
let settings: lsp.ServerSettings = { ...lsp.DEFAULT_SETTINGS };
let roots: string[] = [];

const log = (msg: string) => connection.console.log(`[memgen] ${msg}`);

// ------------------------------------------------------------------------------------------
// The engine worker.

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

class Engine {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private start(): Worker {
    if (this.worker) return this.worker;
    requireTrust(); // the last guard: no model file is read in an untrusted workspace
    const w = new Worker(path.join(__dirname, 'engine-worker.js'));
    log('engine worker started');
    w.on('message', (r: EngineReply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r.result);
      else p.reject(Object.assign(new Error(r.error), { cancelled: Boolean(r.cancelled), runError: Boolean(r.runError) }));
    });
    w.on('error', (e) => log(`engine worker error: ${e.message}`));
    w.on('exit', (code) => {
      this.worker = null;
      for (const p of this.pending.values()) p.reject(new Error(`the engine worker exited (${code})`));
      this.pending.clear();
    });
    this.worker = w;
    return w;
  }

  call<T>(req: WithoutId<EngineRequest>, token?: CancellationToken): Promise<T> {
    const id = this.nextId++;
    const w = this.start();
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      w.postMessage({ ...req, id });
      token?.onCancellationRequested(() => w.postMessage({ kind: 'cancel', target: id, id: 0 }));
    });
  }

  async stop(): Promise<void> {
    await this.worker?.terminate();
    this.worker = null;
  }
}

const engine = new Engine();

// ------------------------------------------------------------------------------------------
// Documents, runs and jobs.

const parsed = new Map<string, { version: number; file: MemgenFile }>();

function parse(doc: TextDocument): MemgenFile {
  const p = parsed.get(doc.uri);
  if (p && p.version === doc.version) return p.file;
  const file = parseMemgen(doc.getText());
  parsed.set(doc.uri, { version: doc.version, file });
  return file;
}

function docDir(uri: string): string | null {
  return uri.startsWith('file:') ? path.dirname(fileURLToPath(uri)) : null;
}

/** The longest `run:` value looked up: Windows' extended-length paths (32,767 characters); Linux's PATH_MAX is 4,096. */
const MAX_RUN_PATH = 32_767;
/** A path as messages show it: at most 200 characters. */
const shownPath = (p: string) => (p.length > 200 ? `${p.slice(0, 200)}… (${p.length} characters)` : p);

/** The run folder of a document: its `run:` header, else the default run; relative to a workspace root, else to the file. */
function resolveRun(doc: TextDocument, file: MemgenFile): { dir: string | null; range: Range | null; error: string | null } {
  const given = file.header.run?.value ?? (settings.defaultRun || null);
  const range = file.header.run?.range ?? null;
  if (!given) return { dir: null, range, error: 'no run: add a `run: runs/NAME` line at the top, or set memgen.defaultRun' };
  // No folder has such a name: say so without resolving it against every base (a 1 MB value took seconds).
  if (given.length > MAX_RUN_PATH || given.includes('\0')) return { dir: null, range, error: `run folder '${shownPath(given)}' cannot exist (${given.includes('\0') ? 'the path contains NUL' : `${given.length} characters, more than ${MAX_RUN_PATH}`})` };
  const bases = path.isAbsolute(given) ? [''] : [...roots, ...roots.map((r) => path.join(r, settings.runsFolder)), docDir(doc.uri) ?? ''];
  for (const b of bases) {
    const dir = path.resolve(b, given);
    if (isModelFolder(dir)) return { dir, range, error: null };
  }
  return { dir: null, range, error: `run folder '${shownPath(given)}' not found (looked in ${bases.map((b) => shownPath(path.resolve(b, given))).join(', ')})` };
}

/** A folder the editor can run: one with config.json (a memgen run, an export, a Hugging Face folder) or a LoRA run. */
const isModelFolder = (dir: string) => fs.existsSync(path.join(dir, 'config.json')) || isLoraRun(dir);

/** LLaMA folders (a LoRA run, an export, a plain folder) read resid_post unless told, the paper's LLaMA site; GPT-2 ones the setting's. */
function defaultSite(dir: string): lsp.Site {
  if (isLoraRun(dir)) return 'resid_post';
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { model_type?: unknown }).model_type === 'llama' ? 'resid_post' : settings.site;
  } catch {
    return settings.site; // the worker names what is wrong with the folder
  }
}

/** What the prompts of a document run on: its run folder and site, resolved once per request (not once per prompt). */
type Target = { run: string; site: lsp.Site; task?: PromptJob['task'] } | { error: string };

function targetFor(doc: TextDocument, file: MemgenFile): Target {
  const r = resolveRun(doc, file);
  if (!r.dir) return { error: r.error! };
  const h = file.header;
  // A plain Hugging Face folder's task (the worker refuses these lines on a memgen run).
  const task = h.task || h.taskSeed || h.taskScale ? { task: h.task?.value, seed: h.taskSeed?.value, scale: h.taskScale?.value } : undefined;
  return { run: r.dir, site: h.site?.value ?? analysisSite(r.dir) ?? defaultSite(r.dir), ...(task ? { task } : {}) };
}

function jobFor(doc: TextDocument, file: MemgenFile, prompt: PromptEntry, target: Target = targetFor(doc, file)): PromptJob | { error: string } {
  if ('error' in target) return target;
  return { run: target.run, prompt: prompt.text, site: target.site, provider: settings.provider, threads: settings.threads, expected: prompt.expected?.value ?? null, ...(target.task ? { task: target.task } : {}) };
}

/** The site of a run's analysis (RUN/analysis/analysis.json), or null when it has none or it is unreadable. */
function analysisSite(runDir: string): lsp.Site | null {
  try {
    const site = (JSON.parse(fs.readFileSync(analysisPath(runDir, 'summary'), 'utf8')) as { site?: unknown }).site;
    return typeof site === 'string' && isGPT2Site(site) ? site : null;
  } catch {
    return null;
  }
}

function lookup(ref: lsp.PromptRef): { doc: TextDocument; file: MemgenFile; prompt: PromptEntry; job: PromptJob } {
  const doc = documents.get(ref.uri);
  if (!doc) throw new Error(`${ref.uri} is not open`);
  const file = parse(doc);
  const prompt = promptAt(file, ref.line);
  if (!prompt) throw new Error(`no prompt on line ${ref.line + 1}`);
  const job = jobFor(doc, file, prompt);
  if ('error' in job) throw new Error(job.error);
  return { doc, file, prompt, job };
}

function requireTrust(): void {
  if (!settings.trusted) throw new Error('MemGen runs no model in an untrusted workspace (trust the workspace to enable predictions and steering)');
}

const predictFor = (job: PromptJob, token?: CancellationToken, fresh = false) => engine.call<lsp.Prediction>({ kind: 'predict', job, fresh }, token);
const robustnessFor = (job: PromptJob, token?: CancellationToken) => engine.call<lsp.Robustness>({ kind: 'robustness', job, k: settings.robustnessK }, token);

/** The hover's rephrasing section (settings.robustnessK rephrasings, computed on hover; '' when off or failed). */
async function robustnessMarkdown(job: PromptJob, token: CancellationToken): Promise<string> {
  if (settings.robustnessK <= 0) return '';
  let r: lsp.Robustness;
  try {
    r = await robustnessFor(job, token);
  } catch (e) {
    return token.isCancellationRequested ? '' : `\n\nRephrasings: ${(e as Error).message}`;
  }
  const cut = (t: string) => (t.length > 90 ? `…${t.slice(-89)}` : t);
  const rows = r.variants.map((v) => `- ${v.behaviour === r.behaviour ? 'keeps' : '**flips**'} → ${v.behaviour}: \`${cut(v.prompt)}\` ${v.output}`);
  const neurons = r.neurons.length ? `\n\nNeurons that differ most (flipping − keeping): ${r.neurons.map((n) => `${n.name} ${n.diff >= 0 ? '+' : ''}${n.diff.toFixed(2)}`).join(', ')}` : '';
  return `\n\n**Rephrasings** (the task's pair rule): ${r.summary}\n\n${rows.join('\n')}${neurons}`;
}

// ------------------------------------------------------------------------------------------
// Formatting.

const f2 = (x: number | null) => (x === null ? '–' : x.toFixed(2));
const f3 = (x: number | null) => (x === null ? '–' : x.toFixed(3));
const word = (b: 'mem' | 'gen') => (b === 'mem' ? 'memorize' : 'generalize');
const code = (s: string) => '`' + (s === '' ? '(empty)' : s.replace(/`/g, "'")) + '`';

export function lensTitle(p: lsp.Prediction): string {
  if (p.pMemFirst === null) return `generalize · no memorized answer · ${p.bestSite}`;
  return `${word(p.predicted)} ${Math.min(p.probability, 0.99).toFixed(2)} · ${p.bestSite}`;
}

function hoverMarkdown(p: lsp.Prediction, runDir: string): string {
  const out: string[] = [];
  out.push(`**MemGen: ${word(p.predicted)}** (${p.pMemFirst === null ? 'no memorized answer for this input' : `p = ${p.probability.toFixed(2)}`}) · ${p.bestSite}`);
  out.push('');
  out.push(`first answer token, raw softmax: p(gen) = ${f3(p.pGenFirst)}, p(mem) = ${f3(p.pMemFirst)}`);
  out.push('');
  out.push(`unsteered output: ${code(p.output)}${stated(p)} → **${p.behaviour}** (gen answer ${code(p.genAnswer)}${p.memAnswer ? `, mem answer ${code(p.memAnswer)}` : ''})`);
  if (p.expected !== null) out.push(`\nexpected ${code(p.expected)}: ${p.expectedMet ? 'met' : '**not met**'}`);
  out.push('');
  if (p.probes.length > 0) {
    out.push('| site | p(gen) logistic | p(gen) MLP | held-out acc. (log. / MLP) |');
    out.push('|---|---|---|---|');
    for (const r of p.probes) out.push(`| ${r.site}${r.site === p.bestSite ? ' ★' : ''} | ${f2(r.pGenLogistic)} | ${f2(r.pGenMlp)} | ${f2(r.accLogistic)} / ${f2(r.accMlp)} |`);
    out.push('');
  }
  if (p.probesNote) out.push(`_probes: ${p.probesNote}_\n`);
  // Each neuron links to the Neurons panel's inspector (COMMANDS.inspectNeuron).
  const neuron = (n: lsp.NeuronPush) => `[${n.site}:${n.index}](${lsp.inspectNeuronLink({ run: runDir, site: n.site, index: n.index })})`;
  const pushes = (xs: lsp.NeuronPush[]) => (xs.length === 0 ? 'none' : xs.map((n) => `${neuron(n)} (${n.push.toFixed(2)})`).join(', '));
  if (p.analysis) {
    out.push(`neurons pushing toward gen: ${pushes(p.towardGen)}`);
    out.push('');
    out.push(`neurons pushing toward mem: ${pushes(p.towardMem)}`);
    out.push('');
  }
  out.push(`run **${p.runName}** (${p.task})`);
  out.push('');
  out.push(p.analysis ? `analysis ${p.analysis.dir}: site ${p.analysis.site}, ${p.analysis.pairs} pairs, ${p.analysis.createdAt}${p.analysis.stale ? ` — **stale**: ${p.analysis.stale}` : ''}` : 'no analysis');
  out.push('');
  out.push('_How well steering works on this run: the Steering panel (`analysis/steering.json`)._');
  return out.join('\n');
}

function steerMarkdown(s: lsp.SteerResult): string {
  return `${s.direction} (topN ${s.topN}, alpha ${s.alpha}, ${s.neurons} neurons${s.steerAt === 'prompt' ? ', at the last prompt position only' : ''}): unsteered ${s.unsteered.output}${stated(s.unsteered)} → ${s.unsteered.behaviour} | steered ${s.steered.output}${stated(s.steered)} → ${s.steered.behaviour}`;
}

/** ` (= 180)` after an output that is a working (arithmetic's scratchpad), else nothing. */
const stated = (o: { answer: string | null }): string => (o.answer === null ? '' : ` (= ${o.answer})`);

// ------------------------------------------------------------------------------------------
// Diagnostics.

const SEVERITY: Record<Exclude<lsp.DiagnosticLevel, 'off'>, DiagnosticSeverity> = {
  hint: DiagnosticSeverity.Hint,
  information: DiagnosticSeverity.Information,
  warning: DiagnosticSeverity.Warning,
};

const timers = new Map<string, NodeJS.Timeout>();
const versionTokens = new Map<string, { cancelled: boolean; listeners: (() => void)[] }>();

function parseDiagnostics(file: MemgenFile, r: ReturnType<typeof resolveRun>): Diagnostic[] {
  const diags: Diagnostic[] = file.errors.map((e) => ({ range: e.range, message: e.message, severity: DiagnosticSeverity.Error, source: 'memgen' }));
  if (r.error) diags.push({ range: r.range ?? { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, message: r.error, severity: DiagnosticSeverity.Error, source: 'memgen' });
  return diags;
}

/** Stops a document's pending model diagnostics: the debounce timer and the queued or running predictions. */
function cancelModelDiagnostics(uri: string): void {
  clearTimeout(timers.get(uri));
  timers.delete(uri);
  const old = versionTokens.get(uri);
  versionTokens.delete(uri);
  if (old) {
    old.cancelled = true;
    old.listeners.forEach((l) => l());
  }
}

function validate(doc: TextDocument): void {
  const file = parse(doc);
  const run = resolveRun(doc, file);
  if (run.dir) lastRun = run.dir;
  const base = parseDiagnostics(file, run);
  void connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics: base });
  cancelModelDiagnostics(doc.uri);
  if (!settings.trusted || run.error) return;
  const state = { cancelled: false, listeners: [] as (() => void)[] };
  versionTokens.set(doc.uri, state);
  const token: CancellationToken = {
    get isCancellationRequested() {
      return state.cancelled;
    },
    onCancellationRequested: (l: () => void) => {
      state.listeners.push(l);
      return { dispose() {} };
    },
  } as CancellationToken;
  timers.set(doc.uri, setTimeout(() => void modelDiagnostics(doc, file, base, token), settings.debounceMs));
}

const PREFETCH_CHUNK = 512;

async function modelDiagnostics(doc: TextDocument, file: MemgenFile, base: Diagnostic[], token: CancellationToken): Promise<void> {
  const diags = [...base];
  let staleShown = false;
  sendStatus('busy', `predicting ${file.prompts.length} prompts`);
  const target = targetFor(doc, file);
  /** The run's load error, once the worker gave one: the same for every prompt, so asked once. */
  let runError: string | null = null;
  // Batched generations fill the worker's cache first (PREFETCH_CHUNK prompts a request, so that an
  // edit cancels between requests); the loop below then reads each prompt's prediction from it.
  const jobs = file.prompts.map((p) => jobFor(doc, file, p, target)).filter((j): j is PromptJob => !('error' in j));
  for (let i = 0; i < jobs.length && !token.isCancellationRequested; i += PREFETCH_CHUNK) {
    try {
      await engine.call<number>({ kind: 'prefetch', jobs: jobs.slice(i, i + PREFETCH_CHUNK) }, token);
    } catch {
      break; // a run that does not load: the loop below reports it once
    }
  }
  for (const prompt of file.prompts) {
    if (token.isCancellationRequested) return;
    const job = jobFor(doc, file, prompt, target);
    if ('error' in job) return;
    if (runError !== null) {
      diags.push({ range: prompt.range, message: runError, severity: DiagnosticSeverity.Error, source: 'memgen' });
      continue;
    }
    try {
      const p = await predictFor(job, token);
      if (p.analysis?.stale && !staleShown && settings.staleDiagnostics !== 'off') {
        staleShown = true;
        diags.push({ range: file.header.run?.range ?? prompt.range, message: `stale analysis: ${p.analysis.stale}`, severity: SEVERITY[settings.staleDiagnostics], source: 'memgen' });
      }
      if (p.predicted === 'mem' && p.pMemFirst !== null && settings.memorizedDiagnostics !== 'off') {
        diags.push({ range: prompt.range, message: `predicted to be memorized (p = ${p.probability.toFixed(2)}): the model answers ${p.output} (${p.behaviour})`, severity: SEVERITY[settings.memorizedDiagnostics], source: 'memgen' });
      }
      if (p.expectedMet === false && prompt.expected) {
        diags.push({ range: prompt.expected.range, message: `expected ${prompt.expected.value}, the model gives ${p.output} (${p.behaviour})`, severity: DiagnosticSeverity.Warning, source: 'memgen' });
      }
    } catch (e) {
      if ((e as { cancelled?: boolean }).cancelled || token.isCancellationRequested) return;
      if ((e as { runError?: boolean }).runError) runError = (e as Error).message;
      diags.push({ range: prompt.range, message: (e as Error).message, severity: DiagnosticSeverity.Error, source: 'memgen' });
    }
  }
  if (token.isCancellationRequested) return;
  sendStatus('idle', 'ready');
  void connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics: diags });
  // Every prompt's prediction is now cached: ask for the lenses again, since VS Code does not
  // re-ask after a CodeLens request it cancelled (and then shows none).
  if (codeLensRefresh) void connection.sendRequest(CodeLensRefreshRequest.type);
}

/** Whether the client takes workspace/codeLens/refresh (capabilities.workspace.codeLens.refreshSupport). */
let codeLensRefresh = false;

let lastRun: string | null = null;
function sendStatus(state: lsp.ServerStatus['state'], message: string): void {
  void connection.sendNotification(lsp.status, { run: lastRun, provider: settings.provider, state: settings.trusted ? state : 'untrusted', message });
}

// ------------------------------------------------------------------------------------------
// Long jobs: the memgen CLI as a child process.

function cliPath(): string {
  const p = path.join(__dirname, 'cli.js');
  if (!fs.existsSync(p)) throw new Error(`${p} is missing; run \`npm run build\``);
  return p;
}

function workspaceRoot(): string {
  return roots[0] ?? process.cwd();
}

/** The Training panel's feed: train-log.jsonl points and the job's state, as they happen. */
const trainWatch = new TrainWatch(
  (p) => void connection.sendNotification(lsp.trainCurve, p),
  (s) => void connection.sendNotification(lsp.trainState, s),
);

async function runJob(job: lsp.JobProgress['job'], title: string, args: string[], runDir: string, token: CancellationToken, watch?: { stopWhenBoth: number | null }): Promise<lsp.JobResult> {
  requireTrust();
  const reporter = await connection.window.createWorkDoneProgress();
  reporter.begin(title, 0, args.join(' '), true);
  const child: ChildProcess = spawn(process.execPath, [cliPath(), ...args], { cwd: workspaceRoot(), env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let cancelled = false;
  const cancel = () => {
    cancelled = true;
    child.kill('SIGINT'); // the CLI saves a checkpoint on Ctrl-C
  };
  token.onCancellationRequested(cancel);
  reporter.token.onCancellationRequested(cancel);
  if (watch) trainWatch.start(runDir, child, watch.stopWhenBoth);
  const tail: string[] = [];
  const onData = (buf: Buffer) => {
    for (const line of buf.toString('utf8').split(/[\r\n]+/).map((l) => l.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').trim()).filter(Boolean)) {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      const m = /(\d+)\s*\/\s*(\d+)/.exec(line);
      const percentage = m && Number(m[2]) > 0 ? Math.min(100, (100 * Number(m[1])) / Number(m[2])) : undefined;
      reporter.report(percentage ?? 0, line.slice(0, 200));
      void connection.sendNotification(lsp.trainProgress, { job, line, percentage });
      log(`${job}: ${line}`);
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exitCode = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  reporter.done();
  if (watch) trainWatch.finish(exitCode, cancelled);
  return { exitCode, run: runDir, tail: tail.join('\n'), cancelled };
}

const absRun = (p: string) => (path.isAbsolute(p) ? p : path.resolve(workspaceRoot(), p));

// ------------------------------------------------------------------------------------------
// Handlers.

connection.onInitialize((params) => {
  roots = (params.workspaceFolders ?? []).flatMap((f) => (f.uri.startsWith('file:') ? [fileURLToPath(f.uri)] : []));
  if (roots.length === 0 && params.rootUri?.startsWith('file:')) roots = [fileURLToPath(params.rootUri)];
  settings = { ...lsp.DEFAULT_SETTINGS, ...((params.initializationOptions as Partial<lsp.ServerSettings> | undefined) ?? {}) };
  codeLensRefresh = params.capabilities.workspace?.codeLens?.refreshSupport === true;
  return {
    capabilities: {
      textDocumentSync: TextDocumentSyncKind.Incremental,
      hoverProvider: true,
      codeLensProvider: { resolveProvider: false },
    },
    serverInfo: { name: 'memgen-lens', version: '0.1.0' },
  };
});

connection.onNotification(lsp.configure, (s) => {
  settings = { ...lsp.DEFAULT_SETTINGS, ...s };
  log(`settings: ${JSON.stringify(settings)}`);
  sendStatus('idle', settings.trusted ? 'settings applied' : 'untrusted workspace: MemGen parses prompt files but runs no model');
  documents.all().forEach(validate);
});

documents.onDidChangeContent((e) => {
  if (e.document.languageId !== 'memgen' && !e.document.uri.endsWith('.memgen')) return;
  validate(e.document);
});
documents.onDidClose((e) => {
  parsed.delete(e.document.uri);
  // A prediction still running for the closed document must not publish after the clear below.
  cancelModelDiagnostics(e.document.uri);
  void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
});

connection.onCodeLens(async (params, token): Promise<CodeLens[]> => {
  const doc = documents.get(params.textDocument.uri);
  if (!doc) return [];
  const file = parse(doc);
  const lenses: CodeLens[] = [];
  const target = settings.trusted ? targetFor(doc, file) : { error: 'untrusted' };
  /** The run's load error, once the worker gave one: the same for every prompt, so asked once. */
  let runError: string | null = null;
  for (const prompt of file.prompts) {
    const range = { start: { line: prompt.line, character: 0 }, end: { line: prompt.line, character: 0 } };
    const args = { uri: doc.uri, line: prompt.line };
    if (!settings.trusted) {
      lenses.push({ range, command: { title: 'MemGen: trust this workspace to run the model', command: '' } });
      continue;
    }
    const job = jobFor(doc, file, prompt, target);
    if ('error' in job) continue;
    if (runError !== null) {
      lenses.push({ range, command: { title: runError, command: '' } });
      continue;
    }
    let title: string;
    try {
      title = lensTitle(await predictFor(job, token));
    } catch (e) {
      if (token.isCancellationRequested) return [];
      title = `MemGen: ${(e as Error).message.slice(0, 120)}`;
      if ((e as { runError?: boolean }).runError) runError = title;
      lenses.push({ range, command: { title, command: '' } });
      continue;
    }
    lenses.push({ range, command: { title, command: '' } });
    if (settings.robustnessLensAbove !== null && settings.robustnessK > 0) {
      const r = await robustnessFor(job, token).catch(() => null);
      if (token.isCancellationRequested) return [];
      if (r?.flipRate != null && r.flipRate > settings.robustnessLensAbove) lenses.push({ range, command: { title: `fragile: ${r.summary}`, command: '' } });
    }
    lenses.push({ range, command: { title: 'Steer → generalize', command: lsp.COMMANDS.steer, arguments: [{ ...args, direction: 'mem->gen' }] } });
    lenses.push({ range, command: { title: 'Steer → memorize', command: lsp.COMMANDS.steer, arguments: [{ ...args, direction: 'gen->mem' }] } });
    lenses.push({ range, command: { title: 'Run', command: lsp.COMMANDS.run, arguments: [args] } });
  }
  return lenses;
});

connection.onHover(async (params, token): Promise<Hover | null> => {
  const doc = documents.get(params.textDocument.uri);
  if (!doc) return null;
  const file = parse(doc);
  const prompt = promptAt(file, params.position.line);
  if (!prompt) return null;
  if (!settings.trusted) return { contents: { kind: MarkupKind.Markdown, value: 'MemGen runs no model in an untrusted workspace.' } };
  const job = jobFor(doc, file, prompt);
  if ('error' in job) return { contents: { kind: MarkupKind.Markdown, value: job.error } };
  try {
    const md = hoverMarkdown(await predictFor(job, token), job.run);
    return { contents: { kind: MarkupKind.Markdown, value: md + (await robustnessMarkdown(job, token)) }, range: prompt.range };
  } catch (e) {
    return { contents: { kind: MarkupKind.Markdown, value: `MemGen: ${(e as Error).message}` }, range: prompt.range };
  }
});

connection.onRequest(lsp.predict, (ref, token) => {
  requireTrust();
  return predictFor(lookup(ref).job, token);
});
connection.onRequest(lsp.run, (ref, token) => {
  requireTrust();
  return predictFor(lookup(ref).job, token, true);
});
connection.onRequest(lsp.steer, async (p, token) => {
  requireTrust();
  const { job, file } = lookup(p);
  const r = await engine.call<lsp.SteerResult>({ kind: 'steer', job, direction: p.direction, topN: file.header.topN?.value ?? settings.topN, alpha: file.header.alpha?.value ?? settings.alpha, steerAt: file.header.steerAt?.value ?? 'all', custom: p.custom && path.resolve(absRun(p.custom.run)) === path.resolve(job.run) ? p.custom.neurons : undefined }, token);
  log(`steer ${r.prompt}: ${steerMarkdown(r)}`);
  return r;
});
connection.onRequest(lsp.activations, (ref, token) => {
  requireTrust();
  return engine.call<lsp.ActivationsResult>({ kind: 'activations', job: lookup(ref).job }, token);
});
connection.onRequest(lsp.listRuns, () => {
  const out: lsp.RunInfo[] = [];
  for (const root of roots.length ? roots : [process.cwd()]) {
    const folder = path.resolve(root, settings.runsFolder);
    if (!fs.existsSync(folder)) continue;
    for (const name of fs.readdirSync(folder).sort()) {
      const dir = path.join(folder, name);
      const cfgFile = path.join(dir, 'config.json');
      const lora = isLoraRun(dir);
      if (!lora && !fs.existsSync(cfgFile)) continue;
      const plain = !lora && !isMemgenRunFolder(dir);
      let task = '?';
      try {
        // a LoRA run's task is in its manifest; a memgen GPT-2 run's in config.json; a plain folder's in its analysis
        if (lora) task = (JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { task?: string }).task ?? '?';
        else task = plain ? readPlainTask(dir)?.task ?? '?' : (JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as { memgen?: { task?: string } }).memgen?.task ?? '?';
      } catch {
        /* listed as '?' */
      }
      out.push({ dir, name, task, analysed: fs.existsSync(analysisPath(dir, 'summary')), plain });
    }
  }
  return out;
});
connection.onRequest(lsp.neurons, ({ run, limit }) => {
  const file = analysisPath(absRun(run), 'neurons');
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run MemGen: Analyze Run first`);
  const nf = JSON.parse(fs.readFileSync(file, 'utf8')) as lsp.NeuronsResult & { neurons: lsp.NeuronsResult['neurons'] };
  return { run, site: nf.site, topN: nf.topN, count: nf.count, neurons: nf.neurons.slice(0, limit ?? 50).map(({ rank, site, index, nmd, rho }) => ({ rank, site, index, nmd, rho })) };
});
connection.onRequest(lsp.train, (p, token) =>
  runJob('train', 'MemGen: training', ['train', '--task', p.task, '--preset', p.preset, '--seed', String(p.seed), '--out', p.out, ...(p.stopWhenBoth ? ['--stop-when-both', String(p.stopWhenBoth)] : []), '--threads', String(settings.threads), '--provider', settings.provider], absRun(p.out), token, { stopWhenBoth: p.stopWhenBoth ?? null }));
connection.onRequest(lsp.trainControl, ({ action }) => trainWatch.control(action));
connection.onRequest(lsp.trainHistory, () => ({ state: trainWatch.state, points: trainWatch.points }));
connection.onRequest(lsp.trainLog, ({ run }) => readTrainLog(absRun(run)));

// The panels' data (panel-data.ts): files of a run's analysis, arrays as bytes.
connection.onRequest(lsp.neuronMap, ({ run }) => panels.neuronMap(absRun(run)));
connection.onRequest(lsp.probeTable, ({ run }) => panels.probeTable(absRun(run)));
connection.onRequest(lsp.steeringTables, ({ run }) => panels.steeringTables(absRun(run)));
connection.onRequest(lsp.neuronDetail, ({ run, layer, index }) => panels.neuronDetail(absRun(run), layer, index));
connection.onRequest(lsp.analyze, (p, token) =>
  runJob('analyze', 'MemGen: analysing', ['analyze', '--run', p.run, ...(p.pairs ? ['--pairs', String(p.pairs)] : []), ...(p.force ? ['--force'] : []),
    ...(p.task ? ['--task', p.task] : []), ...(p.taskSeed !== undefined ? ['--task-seed', String(p.taskSeed)] : []), '--threads', String(settings.threads), '--provider', settings.provider], absRun(p.run), token));
connection.onRequest(lsp.steerEval, (p, token) =>
  runJob('steerEval', 'MemGen: evaluating steering', ['steer-eval', '--run', p.run, ...(p.topN ? ['--topn', String(p.topN)] : []), ...(p.alpha !== undefined ? ['--alpha', String(p.alpha)] : []), '--threads', String(settings.threads), '--provider', settings.provider], absRun(p.run), token));

connection.onShutdown(() => engine.stop());

documents.listen(connection);
connection.listen();
