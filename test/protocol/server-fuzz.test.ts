/**
 * Fuzz of the language server over stdio (issue 15, "Fuzz: Language server"). A seeded generator
 * mutates the example prompt files (inserted / deleted / duplicated text, NUL and lone surrogates,
 * unclosed blocks, 1 MB lines, thousands of lines, absurd topN / alpha, `run:` naming missing, empty,
 * corrupt or foreign folders, and now and then a real run), opens each document in the built server
 * (lsp-harness.ts) as an editor does, edits it (textDocument/didChange, incremental and full), and
 * asks for what an editor and the panels ask: diagnostics (published), CodeLenses, hovers at random
 * positions, and the memgen/* requests that take a prompt or the document's run.
 *
 * Pass: the server never exits; every request is answered (a result, or a JSON-RPC error for memgen/*)
 * within 10 s; CodeLens and hover never fail (but as RequestCancelled); every version's diagnostics
 * are published with sane ranges, a closed document's are cleared and stay cleared; no answer says
 * the engine worker died; results carry the numbers the protocol promises; p99 latency <= 50 ms for
 * the parse-only requests (CodeLens, hover and diagnostics of documents whose `run:` names no
 * loadable model). docs/reliability.md, "Language server", has the figures and the bugs it found.
 *
 * Scale: 2,000 documents (MEMGEN_FUZZ_DOCS overrides), MEMGEN_SOAK=1 10,000 (`npm run soak`).
 * A failure names its seed and document and writes them (text, every edit, every request) to a file
 * whose path the message gives. Replay one document: MEMGEN_FUZZ_SEED=S MEMGEN_FUZZ_DOC=I.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CancellationToken, CancellationTokenSource, ResponseError } from 'vscode-jsonrpc/node';
import { TextDocument, type TextDocumentContentChangeEvent } from 'vscode-languageserver-textdocument';
import { Rng } from '../../engine/util/rng';
import { parseMemgen } from '../../engine/io/memgen-file';
import * as lsp from '../../server/src/protocol';
import { type LspServer, root, startServer } from './lsp-harness';

const SOAK = process.env.MEMGEN_SOAK === '1';
const DOCS = Number(process.env.MEMGEN_FUZZ_DOCS ?? (SOAK ? 10_000 : 2_000));
const SEED = Number(process.env.MEMGEN_FUZZ_SEED ?? 15);
const ONLY = process.env.MEMGEN_FUZZ_DOC === undefined ? null : Number(process.env.MEMGEN_FUZZ_DOC);
/** The share of documents naming a loadable run (their requests run the model). */
const LOADABLE_RATE = Number(process.env.MEMGEN_FUZZ_LOADABLE ?? 0.015);
const TIMEOUT_MS = 10_000;
/** LSP's RequestCancelled error code: the answer to a request the client cancelled. */
const REQUEST_CANCELLED = -32800;
const P99_MS = 50;

// ------------------------------------------------------------------------------------------
// The workspace: run folders that are empty, corrupt or foreign, and a few loadable ones.

const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-fuzz-'));
const runsDir = path.join(ws, 'runs');
const REAL = path.join(root, 'runs/arithmetic-tiny');

/** Folder name -> its files (a Buffer or string; null: a directory). */
function fixtures(): Record<string, Record<string, Buffer | string | null>> {
  const cfg = fs.readFileSync(path.join(REAL, 'config.json'), 'utf8');
  const manifest = fs.readFileSync(path.join(REAL, 'manifest.json'), 'utf8');
  const tokenizer = fs.readFileSync(path.join(REAL, 'tokenizer.json'), 'utf8');
  const model = fs.readFileSync(path.join(REAL, 'model.safetensors'));
  const rng = new Rng(SEED ^ 0x5eed);
  const garbage = (n: number) => Buffer.from(Array.from({ length: n }, () => rng.int(0, 255)));
  const realRun = { 'config.json': cfg, 'manifest.json': manifest, 'tokenizer.json': tokenizer };
  const cfgWith = (o: Record<string, unknown>) => JSON.stringify({ ...(JSON.parse(cfg) as object), ...o });
  const hugeHeader = Buffer.alloc(64);
  hugeHeader.writeBigUInt64LE(2n ** 53n, 0);
  const foreignSt = (() => {
    const header = Buffer.from(JSON.stringify({ 'bert.embeddings.weight': { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } }));
    const n = Buffer.alloc(8);
    n.writeBigUInt64LE(BigInt(header.length));
    return Buffer.concat([n, header, Buffer.alloc(16)]);
  })();
  const nanWeights = Buffer.from(model);
  nanWeights.fill(0xff, 8 + Number(model.readBigUInt64LE(0))); // every float NaN, the header intact
  return {
    empty: {},
    'garbage-config': { 'config.json': garbage(300) },
    'config-not-object': { 'config.json': '[1, 2, 3]' },
    'config-null': { 'config.json': 'null' },
    'config-dir': { 'config.json': null },
    'empty-config': { 'config.json': '' },
    'foreign': { 'README.md': '# not a run\n', 'photo.png': garbage(200), 'data.csv': 'a,b\n1,2\n' },
    'foreign-hf': { 'config.json': JSON.stringify({ model_type: 'bert', hidden_size: 768, num_hidden_layers: 12 }), 'model.safetensors': foreignSt },
    'no-memgen': { 'config.json': cfgWith({ memgen: undefined }), 'model.safetensors': model },
    'no-model': { ...realRun },
    'truncated-header': { ...realRun, 'model.safetensors': model.subarray(0, 1000) },
    'truncated-data': { ...realRun, 'model.safetensors': model.subarray(0, Math.floor(model.length * 0.9)) },
    'tiny-model': { ...realRun, 'model.safetensors': model.subarray(0, 5) },
    'huge-header': { ...realRun, 'model.safetensors': hugeHeader },
    'garbage-model': { ...realRun, 'model.safetensors': garbage(4096) },
    'absurd-layers': { ...realRun, 'config.json': cfgWith({ n_layer: 1_000_000_000 }), 'model.safetensors': model },
    'absurd-width': { ...realRun, 'config.json': cfgWith({ n_embd: 2 ** 40, n_head: 1 }), 'model.safetensors': model },
    'wrong-vocab': { ...realRun, 'config.json': cfgWith({ vocab_size: 9_007_199_254_740_991 }), 'model.safetensors': model },
    'unknown-task': { ...realRun, 'config.json': cfgWith({ memgen: { task: 'nope' } }), 'model.safetensors': model },
    // Loadable: a model of NaN weights; the real model beside a corrupt analysis (the model runs, the analysis is refused).
    'nan-weights': { ...realRun, 'model.safetensors': nanWeights },
    'bad-analysis': { ...realRun, 'model.safetensors': model, analysis: null, 'analysis/analysis.json': '{"site": 5', 'analysis/neurons.json': garbage(100), 'analysis/nmd.npy': garbage(50) },
  };
}

const LOADABLE = new Set([REAL, path.join(root, 'runs/incontext-tiny'), path.join(runsDir, 'bad-analysis'), path.join(runsDir, 'nan-weights')]);

function writeFixtures(): string[] {
  const names: string[] = [];
  for (const [name, files] of Object.entries(fixtures())) {
    const dir = path.join(runsDir, name);
    fs.mkdirSync(dir, { recursive: true });
    for (const [f, body] of Object.entries(files)) {
      if (body === null) fs.mkdirSync(path.join(dir, f), { recursive: true });
      else fs.writeFileSync(path.join(dir, f), body);
    }
    if (!LOADABLE.has(dir)) names.push(name); // loadable ones only through chooseRun's 'loadable' share
  }
  fs.writeFileSync(path.join(runsDir, 'a-file'), 'not a folder');
  return names;
}

// ------------------------------------------------------------------------------------------
// The generator.

const EXAMPLES = ['examples/arithmetic.memgen', 'examples/arithmetic-tiny.memgen', 'examples/incontext.memgen', 'test/e2e/fixture/workspace/arithmetic.memgen']
  .map((f) => fs.readFileSync(path.join(root, f), 'utf8'));

/** The prompts of examples/incontext.memgen (a block and a line), which the in-context run reads. */
const INCONTEXT_PROMPTS = parseMemgen(EXAMPLES[2]).prompts.map((p) => p.range.start.line === p.range.end.line ? p.text : `>>>\n${p.text}\n<<<`);
const SPECIAL = ['\0', '\uD800', '\uDFFF', '\uDBFF\uDFFF', '\u2028', '\u2029', '\uFEFF', '\r', '\r\n', '\n', '\t', '\u00a0', '😀', 'é', '=>', '>>>', '<<<', '#', ' #', ':', '+', '=', '\\', '"', '`', '%', '\u0301', '\x1b[31m'];
const ABSURD_NUMBERS = ['-1', '0', '-0', 'NaN', 'nan', 'Infinity', '-Infinity', '1e308', '-1e308', '1e309', '1e-400', '5e-324', '99999999999999999999999999999', '-99999999999999999999999', '9007199254740993', '0x10', '1_000', '1.0.0', '+.', 'e', '.', '--1', '1e', '0.1 0.2', '1/2', '', '1' + '0'.repeat(400), '0.' + '0'.repeat(400) + '1', '0.1', '1', '5', '0.5'];
const SITES_ANY = ['ln2', 'resid_pre', 'resid_post', 'LN2', 'attn', '', 'ln2 ln2', '__proto__'];
const KEYS = ['run', 'site', 'topN', 'alpha', 'topn', 'colour', '__proto__', 'constructor', 'toString', 'x'.repeat(300)];

interface RunChoice {
  kind: 'none' | 'missing' | 'fixture' | 'loadable' | 'odd';
  value: string | null;
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(0, xs.length - 1)];
}

function chooseRun(rng: Rng, fixtureNames: string[]): RunChoice {
  const u = rng.uniform();
  if (u < LOADABLE_RATE) return { kind: 'loadable', value: pick(rng, [REAL, REAL, path.join(root, 'runs/incontext-tiny'), 'runs/bad-analysis', 'bad-analysis', 'runs/nan-weights']) };
  if (u < LOADABLE_RATE + 0.085) return { kind: 'none', value: null };
  if (u < 0.3) return { kind: 'missing', value: pick(rng, ['runs/nope', 'nope', '/definitely/not/here', '../../nope', 'runs/a-file', 'runs', '.', '/', 'runs/foreign/README.md', '~/runs/x', 'file:///tmp', 'C:\\runs\\x']) };
  if (u < 0.85) {
    const name = pick(rng, fixtureNames);
    return { kind: 'fixture', value: pick(rng, [`runs/${name}`, name, path.join(runsDir, name), `./runs/${name}/`, `runs/../runs/${name}`]) };
  }
  // Odd values: NUL, lone surrogates, control characters, very long paths.
  return { kind: 'odd', value: pick(rng, ['runs/\0nul', 'runs/\uD800', 'runs/\uDFFFx', 'runs/\x01\x02', 'runs/' + 'x'.repeat(5000), 'runs/' + 'a/'.repeat(3000), '%2e%2e/%2e%2e', 'runs/empty\0/config.json', '\\\\?\\C:\\', '${HOME}', 'runs/*', 'runs/?']) };
}

function randomString(rng: Rng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    if (u < 0.15) s += pick(rng, SPECIAL);
    else if (u < 0.3) s += String.fromCharCode(rng.int(0, 0xffff));
    else if (u < 0.55) s += String(rng.int(0, 99));
    else s += String.fromCharCode(rng.int(32, 126));
  }
  return s;
}

function randomPrompt(rng: Rng): string {
  const u = rng.uniform();
  const op = () => (rng.uniform() < 0.1 ? pick(rng, ['0', '-5', '100', '99999999999999999999', '1e3', '', 'x']) : String(rng.int(10, 99)));
  if (u < 0.5) return `${op()}+${op()}+${op()}+${op()}=` + (rng.uniform() < 0.3 ? ` => ${pick(rng, ['gen', 'mem', 'other', '313', '', 'x'.repeat(rng.int(1, 50))])}` : '');
  if (u < 0.7) return `>>>\nKevin is horse. Kevin is blue.\nWhat color is Kevin?\n<<<${rng.uniform() < 0.5 ? ' => blue' : ''}`;
  if (u < 0.8) return 'Xavier is silver. Xavier is duck. What color is Xavier?';
  return randomString(rng, rng.int(1, 60));
}

function headerLine(rng: Rng): string {
  const key = pick(rng, KEYS);
  const v = key === 'site' ? pick(rng, SITES_ANY) : key === 'topN' || key === 'alpha' ? pick(rng, ABSURD_NUMBERS) : randomString(rng, rng.int(0, 20));
  return `${key}:${rng.uniform() < 0.8 ? ' ' : ''}${v}`;
}

/** A huge piece: a 1 MB line of some kind, or thousands of lines. */
function hugePiece(rng: Rng): string {
  const MB = 1 << 20;
  switch (rng.int(0, 9)) {
    case 0: return 'a'.repeat(MB);
    case 1: return ' '.repeat(MB) + '#';
    case 2: return '1+'.repeat(MB / 2) + '=';
    case 3: return '=>'.repeat(MB / 2);
    case 4: return 'run: ' + 'x'.repeat(MB);
    case 5: return '>>>\n' + 'Kevin is blue. '.repeat(MB / 15);
    case 6: return 'a'.repeat(MB) + ':';
    case 7: return Array.from({ length: 20_000 }, (_, i) => `${10 + (i % 90)}+11+12+13=`).join('\n');
    case 8: return '>>>\n<<<\n'.repeat(10_000);
    default: return (' \t'.repeat(MB / 4) + '\u2028').repeat(2);
  }
}

/** One mutation of `text`. */
function mutate(rng: Rng, text: string, allowHuge: boolean): string {
  const at = () => rng.int(0, text.length);
  const lines = () => text.split('\n');
  switch (rng.int(0, 11)) {
    case 0: { const i = at(); return text.slice(0, i) + pick(rng, SPECIAL) + text.slice(i); }
    case 1: { const i = at(); return text.slice(0, i) + randomString(rng, rng.int(1, 30)) + text.slice(i); }
    case 2: { const i = at(); return text.slice(0, i) + text.slice(Math.min(text.length, i + rng.int(1, 40))); }
    case 3: { const i = at(); const j = Math.min(text.length, i + rng.int(1, 80)); return text.slice(0, j) + text.slice(i, j) + text.slice(j); }
    case 4: { const ls = lines(); ls.splice(rng.int(0, ls.length), 0, headerLine(rng)); return ls.join('\n'); }
    case 5: { const ls = lines(); ls.splice(rng.int(0, ls.length), 0, randomPrompt(rng)); return ls.join('\n'); }
    case 6: return text.replace('<<<', rng.uniform() < 0.5 ? '' : '<<'); // unclosed block
    case 7: { const ls = lines(); ls.splice(rng.int(0, ls.length), 0, pick(rng, ['>>>', '<<<', '>>> x', '<<< y => z', '<<< =>', '=>', ' => gen'])); return ls.join('\n'); }
    case 8: { const ls = lines(); const i = rng.int(0, ls.length - 1); const j = rng.int(0, ls.length - 1); [ls[i], ls[j]] = [ls[j], ls[i]]; return ls.join('\n'); }
    case 9: { const i = at(); const c = text.charCodeAt(i); return Number.isNaN(c) ? text : text.slice(0, i) + String.fromCharCode(c ^ (1 << rng.int(0, 15))) + text.slice(i + 1); }
    case 10: if (allowHuge && rng.uniform() < 0.015) { const ls = lines(); ls.splice(rng.int(0, ls.length), 0, hugePiece(rng)); return ls.join('\n'); }
      return text.replace(/\r?\n/g, pick(rng, ['\r\n', '\r', '\n', '\n\n']));
    default: return text.split('\n').map((l) => (rng.uniform() < 0.2 ? l.trimEnd() + ' # ' + randomString(rng, 5) : l)).join('\n');
  }
}

/**
 * A document on a loadable run: its header (absurd topN / alpha half the time) and a few prompts of
 * the run's task, some mutated. The model reads every prompt, so these stay short.
 */
function loadableDocument(rng: Rng, run: RunChoice): string {
  const lines = [`run: ${run.value}`];
  for (const key of ['topN', 'alpha', 'site'] as const) {
    if (rng.uniform() < 0.5) lines.push(`${key}: ${key === 'site' ? pick(rng, SITES_ANY) : pick(rng, ABSURD_NUMBERS)}`);
  }
  const incontext = run.value!.includes('incontext');
  for (let k = rng.int(1, 4); k > 0; k--) {
    lines.push(incontext
      ? pick(rng, [...INCONTEXT_PROMPTS, INCONTEXT_PROMPTS[0].replace('Carol?', 'Nobody?')])
      : `${rng.int(10, 99)}+${rng.int(10, 99)}+${pick(rng, ['94', '41', String(rng.int(10, 99))])}+${pick(rng, ['87', '52', String(rng.int(10, 99))])}=${rng.uniform() < 0.3 ? ` => ${pick(rng, ['gen', 'mem', 'other', '313'])}` : ''}`);
  }
  const text = lines.join('\n');
  return rng.uniform() < 0.3 ? mutate(rng, text, false) : text;
}

/** A document whose `run:` line names `run` (or has none). */
function makeDocument(rng: Rng, run: RunChoice, allowHuge: boolean): string {
  if (run.kind === 'loadable') return loadableDocument(rng, run);
  const base = pick(rng, EXAMPLES).replace(/^run:.*$/m, '').split('\n');
  if (rng.uniform() < 0.3) base.splice(rng.int(0, base.length), 0, headerLine(rng));
  for (const key of ['topN', 'alpha'] as const) if (rng.uniform() < 0.2) base.splice(rng.int(0, Math.min(3, base.length)), 0, `${key}: ${pick(rng, ABSURD_NUMBERS)}`);
  if (run.value !== null) base.splice(rng.int(0, Math.min(2, base.length)), 0, `run: ${run.value}`);
  for (let k = rng.int(0, 4); k > 0; k--) base.splice(rng.int(0, base.length), 0, randomPrompt(rng));
  let text = base.join('\n');
  for (let k = rng.int(0, 8); k > 0; k--) text = mutate(rng, text, allowHuge);
  if (allowHuge && rng.uniform() < 0.004) {
    const ls = text.split('\n');
    ls.splice(rng.int(0, ls.length), 0, hugePiece(rng));
    text = ls.join('\n');
  }
  return text;
}

/** An incremental change: a random range (sometimes past the end) replaced by random text. */
function randomChange(rng: Rng, doc: TextDocument, allowHuge: boolean): TextDocumentContentChangeEvent {
  const n = doc.getText().length;
  const a = rng.int(0, n + (rng.uniform() < 0.05 ? 10 : 0));
  const b = Math.min(n + 5, a + (rng.uniform() < 0.5 ? 0 : rng.int(0, 30)));
  const pos = (o: number) => (o <= n ? doc.positionAt(o) : { line: doc.lineCount - 1 + rng.int(0, 3), character: rng.int(0, 200) });
  const u = rng.uniform();
  const text = u < 0.3 ? '' : u < 0.5 ? pick(rng, SPECIAL) : u < 0.7 ? randomPrompt(rng) + '\n' : u < 0.8 ? headerLine(rng) + '\n' : allowHuge && u < 0.801 ? hugePiece(rng) : randomString(rng, rng.int(1, 12));
  return { range: { start: pos(a), end: pos(Math.max(a, b)) }, text };
}

// ------------------------------------------------------------------------------------------
// Driving the server.

interface Diag { range: { start: { line: number; character: number }; end: { line: number; character: number } }; message: string; severity?: number }
interface Published { version?: number; diagnostics: Diag[]; at: number }

class FuzzFailure extends Error {}

let server: LspServer;
let fixtureNames: string[];
const published = new Map<string, Published[]>();
/** Documents closed: their URI -> the document's number and how many publishes had arrived when the clear came. */
const closed = new Map<string, { doc: number; n: number }>();
const waiters = new Set<() => void>();
let exited: string | null = null;

const latency = { codeLens: [] as number[], hover: [] as number[], diagnostics: [] as number[] };
/** The slowest parse-only requests: what they were, for the summary. */
const slowest: { ms: number; what: string }[] = [];
function slow(ms: number, what: () => string): void {
  if (slowest.length < 8 || ms > slowest[slowest.length - 1].ms) {
    slowest.push({ ms, what: what() });
    slowest.sort((a, b) => b.ms - a.ms);
    slowest.length = Math.min(slowest.length, 8);
  }
}
const counts = { documents: 0, versions: 0, huge: 0, loadable: 0, requests: 0, results: 0, errors: 0, byMethod: new Map<string, { sent: number; errors: number }>() };

function notifyWaiters(): void {
  for (const w of [...waiters]) w();
}

async function until<T>(what: string, f: () => T | undefined, ms = TIMEOUT_MS): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (exited) throw new FuzzFailure(`the server exited (${exited}) while waiting for ${what}`);
    if (Date.now() - t0 > ms) throw new FuzzFailure(`no ${what} within ${ms} ms`);
    await new Promise<void>((resolve) => {
      const done = () => {
        waiters.delete(done);
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(done, 20);
      waiters.add(done);
    });
  }
}

/** Sends a request; a result or a JSON-RPC error within TIMEOUT_MS, else a failure. */
async function request<R>(log: unknown[], method: string, params: unknown, token?: CancellationToken): Promise<{ ok: true; result: R; ms: number } | { ok: false; error: ResponseError<unknown>; ms: number }> {
  log.push({ request: method, params: truncate(params) });
  const m = counts.byMethod.get(method) ?? { sent: 0, errors: 0 };
  counts.byMethod.set(method, m);
  m.sent++;
  counts.requests++;
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FuzzFailure(`${method} unanswered after ${TIMEOUT_MS} ms${exited ? ` (the server exited: ${exited})` : ''}`)), TIMEOUT_MS);
  });
  try {
    const result = await Promise.race([(token ? server.conn.sendRequest<R>(method, params, token) : server.conn.sendRequest<R>(method, params)), timeout]);
    counts.results++;
    return { ok: true, result, ms: performance.now() - t0 };
  } catch (e) {
    if (e instanceof ResponseError) {
      counts.errors++;
      m.errors++;
      log.push({ error: method, code: e.code, message: e.message.slice(0, 300) });
      return { ok: false, error: e, ms: performance.now() - t0 };
    }
    throw e instanceof FuzzFailure ? e : new FuzzFailure(`${method}: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

function truncate(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'string' && x.length > 2000 ? `${x.slice(0, 2000)}... (${x.length} chars)` : x)));
}

function checkRange(what: string, r: Diag['range'] | undefined): void {
  const ok = (p: { line: number; character: number } | undefined) => p !== undefined && Number.isInteger(p.line) && Number.isInteger(p.character) && p.line >= 0 && p.character >= 0;
  if (!r || !ok(r.start) || !ok(r.end) || r.start.line > r.end.line || (r.start.line === r.end.line && r.start.character > r.end.character)) {
    throw new FuzzFailure(`${what}: bad range ${JSON.stringify(r)}`);
  }
}

/** The numbers the protocol promises (a NaN or an infinity goes out as null). */
function checkNumbers(method: string, result: unknown): void {
  const r = result as Partial<lsp.Prediction & lsp.SteerResult>;
  const must: [string, unknown][] = [];
  if (method === lsp.predict.method || method === lsp.run.method) must.push(['probability', r.probability], ['pGenFirst', r.pGenFirst]);
  if (method === lsp.steer.method) must.push(['topN', r.topN], ['alpha', r.alpha], ['neurons', r.neurons], ['unsteered.pGenFirst', r.unsteered?.pGenFirst], ['steered.pGenFirst', r.steered?.pGenFirst]);
  for (const [k, v] of must) if (typeof v !== 'number' || !Number.isFinite(v)) throw new FuzzFailure(`${method}: ${k} is ${JSON.stringify(v)}, not a number`);
}

const WORKER_GONE = /engine worker exited/;

/** The text an editor shows for a response, checked for the worker's death. */
function checkAlive(what: string, text: string): void {
  if (WORKER_GONE.test(text)) throw new FuzzFailure(`${what}: ${text.slice(0, 200)}`);
}

/** Mirrors the server's resolveRun: the folder a `run:` value names, if it has a config.json. */
function resolves(value: string | undefined, docFile: string): string | null {
  if (!value) return null;
  const bases = path.isAbsolute(value) ? [''] : [ws, path.join(ws, 'runs'), path.dirname(docFile)];
  for (const b of bases) {
    const dir = path.resolve(b, value);
    try {
      if (fs.existsSync(path.join(dir, 'config.json'))) return dir;
    } catch { /* an odd path */ }
  }
  return null;
}

async function fuzzOne(i: number, log: unknown[]): Promise<void> {
  const rng = new Rng((Math.imul(SEED, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0);
  const run = chooseRun(rng, fixtureNames);
  const allowHuge = run.kind !== 'loadable';
  const docFile = path.join(ws, rng.uniform() < 0.1 ? 'sub' : '', `doc-${i}.memgen`);
  const uri = pathToFileURL(docFile).toString();
  let doc = TextDocument.create(uri, 'memgen', 1, makeDocument(rng, run, allowHuge));
  const conn = server.conn;
  log.push({ seed: SEED, doc: i, uri, run, open: doc.getText() });
  published.set(uri, []);
  let sentAt = performance.now();
  await conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'memgen', version: 1, text: doc.getText() } });
  counts.versions++;

  // Edits: most documents get a few; full replacements keep the run.
  const isHuge = (d: TextDocument) => d.getText().length > 200_000 || d.lineCount > 5_000;
  for (let k = rng.uniform() < 0.3 ? 0 : rng.int(1, isHuge(doc) ? 2 : 6); k > 0; k--) {
    const version = doc.version + 1;
    let changes: TextDocumentContentChangeEvent[];
    if (rng.uniform() < 0.15) changes = [{ text: makeDocument(rng, run, allowHuge) }];
    else changes = Array.from({ length: rng.int(1, 3) }, () => randomChange(rng, doc, allowHuge));
    // Apply one by one, as the server does: each change's range refers to the text after the previous.
    const ranged: TextDocumentContentChangeEvent[] = [];
    for (const c of changes) {
      ranged.push(c);
      doc = TextDocument.update(doc, [c], version);
    }
    log.push({ change: version, changes: truncate(ranged) });
    sentAt = performance.now();
    await conn.sendNotification('textDocument/didChange', { textDocument: { uri, version }, contentChanges: ranged });
    counts.versions++;
    if (rng.uniform() < 0.2) await new Promise((r) => setTimeout(r, rng.int(0, 5)));
  }
  const text = doc.getText();
  if (isHuge(doc)) counts.huge++;
  const file = parseMemgen(text);
  const runDir = resolves(file.header.run?.value, docFile);
  const loadable = runDir !== null && LOADABLE.has(runDir);
  if (loadable) counts.loadable++;
  log.push({ final: doc.version, loadable, runDir });

  // Diagnostics of the last version are published (parse errors at once).
  const parsedDiags = await until(`publishDiagnostics for version ${doc.version}`, () => published.get(uri)!.find((p) => p.version === doc.version));
  const describe = (m: string) => () => `${m} doc ${i} (run ${run.kind} ${JSON.stringify(run.value?.slice(0, 40))}, ${text.length} chars, ${doc.lineCount} lines, ${file.prompts.length} prompts)`;
  if (!loadable) {
    latency.diagnostics.push(parsedDiags.at - sentAt);
    slow(parsedDiags.at - sentAt, describe('diagnostics'));
  }
  const lines = text.split(/\r\n|\r|\n/);
  for (const d of parsedDiags.diagnostics) checkRange('diagnostic', d.range);

  // CodeLens.
  const lens = await request<{ range: Diag['range']; command?: { title: string } }[]>(log, 'textDocument/codeLens', { textDocument: { uri } });
  if (!lens.ok) throw new FuzzFailure(`codeLens failed: ${lens.error.message}`);
  if (!loadable) {
    latency.codeLens.push(lens.ms);
    slow(lens.ms, describe('codeLens'));
  }
  for (const l of lens.result) {
    checkRange('codeLens', l.range);
    checkAlive('codeLens', l.command?.title ?? '');
  }

  // Hovers: on prompt and header lines, and anywhere (past the end too).
  const promptLines = file.prompts.map((p) => p.line);
  for (let k = rng.int(1, 4); k > 0; k--) {
    const line = promptLines.length > 0 && rng.uniform() < 0.6 ? pick(rng, promptLines) : rng.int(0, lines.length + 2);
    const character = rng.int(0, (lines[line]?.length ?? 0) + 3);
    const h = await request<{ contents: { value: string }; range?: Diag['range'] } | null>(log, 'textDocument/hover', { textDocument: { uri }, position: { line, character } });
    if (!h.ok) throw new FuzzFailure(`hover failed at ${line}:${character}: ${h.error.message}`);
    if (!loadable) {
      latency.hover.push(h.ms);
      slow(h.ms, describe('hover'));
    }
    if (h.result) {
      checkAlive('hover', h.result.contents.value);
      if (h.result.range) checkRange('hover', h.result.range);
    }
  }

  // memgen/* on a prompt (or any line) of the document.
  const line = promptLines.length > 0 && rng.uniform() < 0.8 ? pick(rng, promptLines) : rng.int(0, lines.length + 2);
  const promptRequests: [string, object][] = [
    [lsp.predict.method, { uri, line }],
    [lsp.steer.method, { uri, line, direction: pick(rng, ['mem->gen', 'gen->mem'] as const), ...(rng.uniform() < 0.3 ? { custom: { run: file.header.run?.value ?? '', neurons: Array.from({ length: rng.int(0, 3) }, () => ({ layer: pick(rng, [0, 1, 3, 4, -1, 0.5, 1e9]), index: pick(rng, [0, 5, 127, 128, -1, 2.5]) })) } } : {}) }],
    [lsp.activations.method, { uri, line }],
    [lsp.run.method, { uri, line }],
  ];
  for (const [method, params] of promptRequests) {
    if (rng.uniform() < (loadable && method !== lsp.steer.method ? 0.35 : 0.5)) {
      const r = await request<unknown>(log, method, params);
      if (!r.ok) checkAlive(method, r.error.message);
      else checkNumbers(method, r.result);
    }
  }
  // memgen/* on the document's run (the panels' requests).
  const runValue = file.header.run?.value ?? 'runs/nope';
  const runRequests: [string, object][] = [
    [lsp.neurons.method, { run: runValue, limit: pick(rng, [undefined, 0, 5, -1, 1e9]) }],
    [lsp.neuronMap.method, { run: runValue }],
    [lsp.probeTable.method, { run: runValue }],
    [lsp.steeringTables.method, { run: runValue }],
    [lsp.trainLog.method, { run: runValue }],
    [lsp.neuronDetail.method, { run: runValue, layer: pick(rng, [0, 1, 3, -1, 1e9, 0.5]), index: pick(rng, [0, 7, 127, -1, 2 ** 31, 1.5]) }],
  ];
  for (const [method, params] of runRequests) {
    if (rng.uniform() >= 0.25) continue;
    const r = await request<unknown>(log, method, params);
    const p = params as { layer?: number; index?: number };
    const bad = (x: number | undefined) => x !== undefined && !(Number.isInteger(x) && x >= 0);
    if (r.ok && method === lsp.neuronDetail.method && (bad(p.layer) || bad(p.index))) throw new FuzzFailure(`memgen/neuronDetail answered neuron ${p.layer}:${p.index} (no such neuron) with a result`);
  }
  if (rng.uniform() < 0.02) await request<unknown>(log, lsp.listRuns.method, {});

  // As an editor while typing: requests in flight across an edit, some cancelled ($/cancelRequest).
  // Each is still answered (a result, or the RequestCancelled error).
  let modelRun = loadable;
  if (rng.uniform() < 0.1) {
    const cts = new CancellationTokenSource();
    const position = () => ({ line: rng.int(0, doc.lineCount), character: rng.int(0, 20) });
    const inflight: Promise<unknown>[] = [
      request(log, 'textDocument/codeLens', { textDocument: { uri } }, cts.token),
      request(log, 'textDocument/hover', { textDocument: { uri }, position: position() }, rng.uniform() < 0.5 ? cts.token : undefined),
    ];
    const change = randomChange(rng, doc, false);
    doc = TextDocument.update(doc, [change], doc.version + 1);
    log.push({ change: doc.version, changes: truncate([change]) });
    await conn.sendNotification('textDocument/didChange', { textDocument: { uri, version: doc.version }, contentChanges: [change] });
    inflight.push(request(log, 'textDocument/codeLens', { textDocument: { uri } }), request(log, 'textDocument/hover', { textDocument: { uri }, position: position() }));
    if (rng.uniform() < 0.7) cts.cancel();
    for (const r of (await Promise.all(inflight)) as Awaited<ReturnType<typeof request>>[]) {
      if (!r.ok && r.error.code !== REQUEST_CANCELLED) throw new FuzzFailure(`a request in flight across an edit failed: ${r.error.message}`);
    }
    await until(`publishDiagnostics for version ${doc.version}`, () => published.get(uri)!.find((p) => p.version === doc.version));
    const dir = resolves(parseMemgen(doc.getText()).header.run?.value, docFile);
    modelRun = dir !== null && LOADABLE.has(dir);
  }

  // A loadable document's model diagnostics come after the debounce: wait for them, so that the
  // next document's requests do not queue behind this one's model.
  if (modelRun) await until(`model diagnostics for version ${doc.version}`, () => (published.get(uri)!.filter((p) => p.version === doc.version).length >= 2 ? true : undefined), 60_000);

  // Close: the diagnostics are cleared.
  const before = published.get(uri)!.length;
  await conn.sendNotification('textDocument/didClose', { textDocument: { uri } });
  const cleared = await until('the diagnostics cleared on close', () => published.get(uri)!.slice(before).find((p) => p.diagnostics.length === 0 && p.version === undefined));
  closed.set(uri, { doc: i, n: published.get(uri)!.indexOf(cleared) + 1 });
  // A late request on the closed document (an editor's in-flight one): nothing, or an error.
  if (rng.uniform() < 0.05) {
    const lens = await request<unknown[]>(log, 'textDocument/codeLens', { textDocument: { uri } });
    const h = await request<unknown>(log, 'textDocument/hover', { textDocument: { uri }, position: { line: 0, character: 0 } });
    if (!lens.ok || lens.result.length > 0 || !h.ok || h.result !== null) throw new FuzzFailure(`a closed document still has lenses or a hover: ${JSON.stringify([lens, h]).slice(0, 300)}`);
    await request<unknown>(log, lsp.predict.method, { uri, line: 0 });
  }
  counts.documents++;
}

function percentile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
}

beforeAll(async () => {
  fixtureNames = writeFixtures();
  fs.mkdirSync(path.join(ws, 'sub'), { recursive: true });
  server = await startServer({
    workspace: ws,
    stderr: 'pipe',
    settings: { debounceMs: 20 },
    register: (c) => {
      c.onNotification('textDocument/publishDiagnostics', (p: { uri: string; version?: number; diagnostics: Diag[] }) => {
        const list = published.get(p.uri);
        if (list) list.push({ version: p.version, diagnostics: p.diagnostics, at: performance.now() });
        notifyWaiters();
      });
    },
  });
  server.child.on('exit', (code, signal) => {
    exited = `code ${code}, signal ${signal}`;
    notifyWaiters();
  });
});

afterAll(async () => {
  await server?.stop();
  fs.rmSync(ws, { recursive: true, force: true });
});

describe('language server fuzz over stdio', () => {
  it(`answers every request on ${ONLY === null ? DOCS.toLocaleString('en') : `document ${ONLY} of`} seeded mutated documents (seed ${SEED})`, async () => {
    const t0 = performance.now();
    const docs = ONLY === null ? Array.from({ length: DOCS }, (_, i) => i) : [ONLY];
    /** The logs of the last documents, for a failure found after a document is done. */
    const recent = new Map<number, unknown[]>();
    const fail = (i: number, message: string): never => {
      const out = path.join(os.tmpdir(), `memgen-fuzz-seed${SEED}-doc${i}.json`);
      const replay = `MEMGEN_FUZZ_SEED=${SEED} MEMGEN_FUZZ_DOC=${i} npx vitest run test/protocol/server-fuzz.test.ts`;
      fs.writeFileSync(out, JSON.stringify({ seed: SEED, doc: i, replay, error: message, log: recent.get(i) ?? null, serverStderr: server.stderr() }, null, 1));
      throw new Error(`seed ${SEED}, document ${i}: ${message}\n  the document, its edits and requests: ${out}\n  replay: ${replay}`);
    };
    /** Closed documents stay cleared: nothing is published after the clear. */
    const checkClosed = (uris: Iterable<string>) => {
      for (const uri of uris) {
        const c = closed.get(uri)!;
        const late = published.get(uri)!.slice(c.n).filter((p) => p.diagnostics.length > 0);
        if (late.length > 0) fail(c.doc, `diagnostics published after the document was closed: ${JSON.stringify(late[0]).slice(0, 500)}`);
      }
    };
    for (const i of docs) {
      const log: unknown[] = [];
      recent.set(i, log);
      recent.delete(i - 50);
      try {
        await fuzzOne(i, log);
      } catch (e) {
        if (!(e instanceof FuzzFailure)) throw e;
        fail(i, e.message);
      }
      if (process.env.MEMGEN_FUZZ_DUMP) fs.writeFileSync(path.join(os.tmpdir(), `memgen-fuzz-seed${SEED}-doc${i}.json`), JSON.stringify({ seed: SEED, doc: i, log }, null, 1));
      const uris = [...closed.keys()];
      checkClosed(uris.slice(-50));
      // Older documents keep an empty list: a late publication for them still shows at the end.
      const old = uris.at(-51);
      if (old !== undefined && closed.get(old)!.n > 0) {
        published.set(old, []);
        closed.set(old, { doc: closed.get(old)!.doc, n: 0 });
      }
    }
    await new Promise((r) => setTimeout(r, 500));
    checkClosed(closed.keys());
    expect(exited, `the server exited; stderr:\n${server.stderr()}`).toBeNull();
    const seconds = (performance.now() - t0) / 1000;
    const parseOnly = [...latency.codeLens, ...latency.hover, ...latency.diagnostics];
    const fmt = (xs: number[]) => `p50 ${percentile(xs, 0.5).toFixed(1)} ms, p99 ${percentile(xs, 0.99).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms (n ${xs.length})`;
    const methods = [...counts.byMethod].map(([m, c]) => `${m} ${c.sent}${c.errors ? ` (${c.errors} errors)` : ''}`).join(', ');
    console.log(
      `server fuzz (seed ${SEED}): ${counts.documents} documents (${counts.versions} versions, ${counts.huge} huge, ${counts.loadable} with a loadable run) in ${seconds.toFixed(1)} s; ` +
        `${counts.requests} requests, ${counts.results} results + ${counts.errors} JSON-RPC errors, 0 unanswered; ` +
        `parse-only latency: all ${fmt(parseOnly)}; codeLens ${fmt(latency.codeLens)}; hover ${fmt(latency.hover)}; diagnostics ${fmt(latency.diagnostics)}; by method: ${methods}; slowest: ${slowest.map((x) => `${x.ms.toFixed(0)} ms ${x.what}`).join('; ')}`,
    );
    if (ONLY === null) expect(percentile(parseOnly, 0.99), 'p99 latency of parse-only requests (ms)').toBeLessThanOrEqual(P99_MS);
  }, SOAK ? 3_600_000 : 600_000);
});
