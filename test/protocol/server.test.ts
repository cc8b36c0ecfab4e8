/**
 * The language server over stdio, as an editor drives it: spawn `node dist/server.js --stdio`
 * (MEMGEN_SERVER overrides the path, e.g. to test an unpacked .vsix), initialize with the repo as
 * the workspace, open .memgen documents naming runs/arithmetic-tiny, and check CodeLens titles,
 * hover text, diagnostics and memgen/steer. Needs `npm run build` first (npm test does it).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancellationTokenSource, type MessageConnection, RequestType } from 'vscode-jsonrpc/node';
import * as lsp from '../../server/src/protocol';
import { type LspServer, root, startServer } from './lsp-harness';

interface Diag { range: { start: { line: number; character: number }; end: { line: number; character: number } }; message: string; severity: number }
const codeLens = new RequestType<{ textDocument: { uri: string } }, { range: unknown; command?: { title: string; command: string } }[], void>('textDocument/codeLens');
const hover = new RequestType<{ textDocument: { uri: string }; position: { line: number; character: number } }, { contents: { value: string } } | null, void>('textDocument/hover');

let server: LspServer;
let conn: MessageConnection;
const diagnostics = new Map<string, Diag[][]>();
/** Work-done progress the server created and reported ($/progress), as the client receives it. */
const progressTokens = new Set<string>();
const progress: { token: string; value: { kind: string; title?: string; message?: string; cancellable?: boolean } }[] = [];

function open(name: string, text: string): string {
  const uri = pathToFileURL(path.join(root, 'examples', name)).toString();
  void conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'memgen', version: 1, text } });
  return uri;
}

async function waitFor<T>(f: () => T | undefined, ms = 20_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  server = await startServer({
    capabilities: { window: { workDoneProgress: true } },
    register: (c) => {
      c.onNotification('textDocument/publishDiagnostics', (p: { uri: string; diagnostics: Diag[] }) => {
        diagnostics.set(p.uri, [...(diagnostics.get(p.uri) ?? []), p.diagnostics]);
      });
      c.onRequest('window/workDoneProgress/create', (p: { token: string }) => {
        progressTokens.add(p.token);
        return null;
      });
      c.onNotification('$/progress', (p: { token: string; value: { kind: string; title?: string; message?: string; cancellable?: boolean } }) => {
        progress.push(p);
      });
    },
  });
  conn = server.conn;
  expect(server.init).toHaveProperty('capabilities.hoverProvider', true);
});

afterAll(async () => {
  await server?.stop();
});

/** The site of the committed analysis (analysis.json), which the server's numbers are named by. */
const SITE = (JSON.parse(fs.readFileSync(path.join(root, 'runs/arithmetic-tiny/analysis/analysis.json'), 'utf8')) as { site: string }).site;

const DOC = ['# test', 'run: runs/arithmetic-tiny', '', '44+88+94+87= => mem', '88+44+94+87='].join('\n');

describe('language server over stdio', () => {
  it('gives four CodeLenses per prompt: the prediction and three actions', async () => {
    const uri = open('t1.memgen', DOC);
    const lenses = await conn.sendRequest(codeLens, { textDocument: { uri } });
    const titles = lenses.map((l) => l.command?.title ?? '');
    expect(titles).toHaveLength(8);
    for (const k of [0, 4]) {
      expect(titles[k]).toMatch(/^(memorize|generalize) 0\.\d\d · blocks\.\d+\.(ln2|resid_pre|resid_post)$/);
      expect(titles[k].endsWith(`.${SITE}`)).toBe(true);
      expect(titles.slice(k + 1, k + 4)).toEqual(['Steer → generalize', 'Steer → memorize', 'Run']);
    }
    expect(lenses[1].command!.command).toBe('memgen.steer');
  });

  it('hovers with the behaviour, the output, site names and the run', async () => {
    const uri = open('t2.memgen', DOC);
    const h = await conn.sendRequest(hover, { textDocument: { uri }, position: { line: 3, character: 2 } });
    const text = h!.contents.value;
    if (process.env.MEMGEN_SHOW) console.log(text);
    expect(text).toMatch(/MemGen: (memorize|generalize)/);
    expect(text).toContain('unsteered output');
    expect(text).toMatch(/→ \*\*(gen|mem|other)\*\*/);
    expect(text).toContain(`blocks.3.${SITE}`);
    // Every neuron pushing the prompt links to the Neurons panel's inspector, naming its run.
    const link = /\[(blocks\.\d+\.\w+):(\d+)\]\(command:memgen\.inspectNeuron\?([^)]+)\)/.exec(text);
    expect(link).not.toBeNull();
    expect(JSON.parse(decodeURIComponent(link![3]))).toEqual({ run: path.join(root, 'runs', 'arithmetic-tiny'), site: link![1], index: Number(link![2]) });
    expect(text).toContain('arithmetic-tiny');
    expect(text).toMatch(new RegExp(`\\| blocks\\.0\\.${SITE} \\| 0\\.\\d\\d \\| 0\\.\\d\\d \\|`)); // per-layer probe p(gen) from probes.safetensors
    // A scratchpad output is followed by the sum it states; the memorized prompt's token is not.
    const swapped = (await conn.sendRequest(hover, { textDocument: { uri }, position: { line: 4, character: 2 } }))!.contents.value;
    expect(swapped).toMatch(/unsteered output: `\d+,\d+,\d+` \(= 313\) → \*\*gen\*\*/);
    expect(text).toMatch(/unsteered output: `<mem-[0-9a-f]{8}>` → \*\*mem\*\*/);
    expect(await conn.sendRequest(hover, { textDocument: { uri }, position: { line: 0, character: 1 } })).toBeNull();
  });

  it('hovers with how the pair rule\'s rephrasings change the behaviour, and can lens fragile prompts', async () => {
    const uri = open('t2r.memgen', DOC);
    // the memorized prompt's one rephrasing (operands 1-2 swapped) is the generalizing line below it
    const text = (await conn.sendRequest(hover, { textDocument: { uri }, position: { line: 3, character: 2 } }))!.contents.value;
    expect(text).toContain("**Rephrasings** (the task's pair rule): 1 of 1 rephrasing flip to gen");
    expect(text).toMatch(/- \*\*flips\*\* → gen: `88\+44\+94\+87=` \d+,\d+,\d+/);
    const fragile = async () => (await conn.sendRequest(codeLens, { textDocument: { uri } })).map((l) => l.command?.title ?? '').filter((t) => t.startsWith('fragile'));
    expect(await fragile()).toEqual([]); // off by default
    await conn.sendNotification(lsp.configure, { ...lsp.DEFAULT_SETTINGS, threads: 1, debounceMs: 50, robustnessLensAbove: 0.5 });
    try {
      expect(await fragile()).toEqual(['fragile: 1 of 1 rephrasing flip to gen', 'fragile: 1 of 1 rephrasing flip to mem']);
    } finally {
      await conn.sendNotification(lsp.configure, { ...lsp.DEFAULT_SETTINGS, threads: 1, debounceMs: 50 });
    }
  });

  it('reports a parse error at its exact range, and a bad prompt at the prompt', async () => {
    const uri = open('t3.memgen', ['run: runs/arithmetic-tiny', 'topN: 2', 'colour: red', '1+2+3+4= =>', '1+2+3= # too few operands'].join('\n'));
    const all = await waitFor(() => diagnostics.get(uri)?.find((ds) => ds.some((d) => d.message.startsWith('arithmetic:'))));
    const msg = (s: string) => all.find((d) => d.message.includes(s))!;
    expect(msg('topN must be').range).toEqual({ start: { line: 1, character: 6 }, end: { line: 1, character: 7 } });
    expect(msg('unknown header key').range).toEqual({ start: { line: 2, character: 0 }, end: { line: 2, character: 6 } });
    expect(msg("'=>' must be followed").range).toEqual({ start: { line: 3, character: 9 }, end: { line: 3, character: 11 } });
    expect(msg('arithmetic:').range).toEqual({ start: { line: 4, character: 0 }, end: { line: 4, character: 6 } });
    expect(msg('topN must be').severity).toBe(1);
  });

  it('flags memorized prompts at information level', async () => {
    const uri = open('t4.memgen', DOC);
    const all = await waitFor(() => diagnostics.get(uri)?.find((ds) => ds.length > 0));
    // 44+88+94+87= replays its memorized token (the CLI's `generate` agrees); its swap generalises.
    expect(all).toHaveLength(1);
    expect(all[0].message).toMatch(/^predicted to be memorized \(p = 0\.\d\d\): the model answers <mem-[0-9a-f]{8}> \(mem\)$/);
    expect(all[0].range).toEqual({ start: { line: 3, character: 0 }, end: { line: 3, character: 12 } });
    expect(all[0].severity).toBe(3);
  });

  it('reads block prompts of the incontext example', async () => {
    const text = fs.readFileSync(path.join(root, 'examples/incontext.memgen'), 'utf8');
    const uri = open('incontext.memgen', text);
    const lenses = await conn.sendRequest(codeLens, { textDocument: { uri } });
    const titles = lenses.map((l) => l.command?.title ?? '');
    expect(titles).toHaveLength(8);
    expect(titles[0]).toMatch(/^(memorize 0\.\d\d|generalize (0\.\d\d|· no memorized answer)) · blocks\.\d+\.(ln2|resid_pre|resid_post)$/);
    const h = await conn.sendRequest(hover, { textDocument: { uri }, position: { line: 6, character: 3 } });
    expect(h!.contents.value).toContain('incontext-tiny');
  });

  it('steers: memgen/steer returns steered and unsteered outputs', async () => {
    const uri = open('t5.memgen', DOC);
    const r = await conn.sendRequest(lsp.steer.method, { uri, line: 3, direction: 'mem->gen' }) as lsp.SteerResult;
    // No topN / alpha in the file or settings: the setting the run's steering.json was measured at.
    const measured = JSON.parse(fs.readFileSync(path.join(root, 'runs/arithmetic-tiny/analysis/steering.json'), 'utf8')) as { topN: number; alpha: number };
    expect([r.topN, r.alpha]).toEqual([measured.topN, measured.alpha]);
    expect(r.note).toContain(`Measured on this run at topN ${measured.topN}, alpha ${measured.alpha}`);
    expect(r.neurons).toBeGreaterThan(0);
    expect(typeof r.unsteered.output).toBe('string');
    expect(typeof r.steered.output).toBe('string');
    expect(r.unsteered.answer).toBeNull(); // a mem token states no sum
    if (r.steered.behaviour === 'gen') expect(r.steered.answer).toBe('313');
    expect(['gen', 'mem', 'other']).toContain(r.steered.behaviour);
    const runs = await conn.sendRequest(lsp.listRuns.method, {}) as lsp.RunInfo[];
    expect(runs.map((x) => x.name)).toContain('arithmetic-tiny');
    expect(runs.find((x) => x.name === 'arithmetic-tiny')).toMatchObject({ task: 'arithmetic', plain: false });
  });

  it('steers at the last prompt position only with the header\'s steerAt: prompt', async () => {
    const uri = open('t5b.memgen', DOC.replace('run: runs/arithmetic-tiny', 'run: runs/arithmetic-tiny\nsteerAt: prompt'));
    const r = await conn.sendRequest(lsp.steer.method, { uri, line: 4, direction: 'mem->gen' }) as lsp.SteerResult;
    expect(r.steerAt).toBe('prompt');
    const all = await conn.sendRequest(lsp.steer.method, { uri: open('t5c.memgen', DOC), line: 3, direction: 'mem->gen' }) as lsp.SteerResult;
    expect(all.steerAt).toBe('all');
    // The same prompt and shift: the first steered token is decided at the last prompt position either way.
    expect(r.steered.pGenFirst).toBeCloseTo(all.steered.pGenFirst, 6);
  });

  it('refuses a steer whose alpha overflows the activations, instead of answering NaN as null', async () => {
    const uri = open('t7.memgen', DOC.replace('run: runs/arithmetic-tiny', 'run: runs/arithmetic-tiny\nalpha: 1e308'));
    await expect(conn.sendRequest(lsp.steer.method, { uri, line: 4, direction: 'mem->gen' })).rejects.toThrow(/alpha 1e\+308 overflows/);
  });

  it('answers a 1 MB run: value at once, and names it in 200 characters', async () => {
    const uri = open('t8.memgen', `run: ${'x'.repeat(1 << 20)}\n12+34+56+78=`);
    const all = await waitFor(() => diagnostics.get(uri)?.at(-1));
    const msg = all.find((d) => d.message.startsWith('run folder'))!.message;
    expect(msg).toMatch(/cannot exist \(1048576 characters, more than 32767\)/);
    expect(msg.length).toBeLessThan(400);
  });
});

describe('jobs and trust over stdio', () => {
  it('trains from memgen/train with work-done progress, and a cancel stops it with a checkpoint', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-train-job-'));
    const run = path.join(out, 'run');
    const lines: string[] = [];
    conn.onNotification(lsp.trainProgress.method, (p: lsp.JobProgress) => {
      lines.push(p.line);
    });
    const cts = new CancellationTokenSource();
    const job = conn.sendRequest<lsp.JobResult>(lsp.train.method, { task: 'arithmetic', preset: 'tiny', seed: 0, out: run }, cts.token);
    // Cancel once training is under way (a step of the progress bar has been reported).
    await waitFor(() => (lines.some((l) => /^train .*\d+\/5000/.test(l)) ? true : undefined), 120_000);
    cts.cancel();
    const r = await job;
    expect(r.cancelled).toBe(true);
    expect(r.exitCode).toBe(130); // the CLI's Ctrl-C exit: a checkpoint was saved
    expect(r.tail).toMatch(/checkpoint saved/);
    expect(fs.existsSync(path.join(run, 'checkpoints', 'last', 'state.json'))).toBe(true);
    const mine = progress.filter((p) => progressTokens.has(p.token));
    expect(mine.find((p) => p.value.kind === 'begin')?.value).toMatchObject({ title: 'MemGen: training', cancellable: true });
    expect(mine.some((p) => p.value.kind === 'report' && /\d+\/5000/.test(p.value.message ?? ''))).toBe(true);
    expect(mine.at(-1)?.value.kind).toBe('end');
    fs.rmSync(out, { recursive: true, force: true });
  }, 180_000);

  it('runs no model in an untrusted workspace: lenses and hover say so, jobs are refused', async () => {
    await conn.sendNotification(lsp.configure, { ...lsp.DEFAULT_SETTINGS, threads: 1, debounceMs: 50, trusted: false });
    try {
      const uri = open('t6.memgen', DOC);
      const lenses = await conn.sendRequest(codeLens, { textDocument: { uri } });
      expect(lenses.map((l) => l.command?.title)).toEqual(['MemGen: trust this workspace to run the model', 'MemGen: trust this workspace to run the model']);
      const h = await conn.sendRequest(hover, { textDocument: { uri }, position: { line: 3, character: 2 } });
      expect(h!.contents.value).toBe('MemGen runs no model in an untrusted workspace.');
      await expect(conn.sendRequest(lsp.steer.method, { uri, line: 3, direction: 'mem->gen' })).rejects.toThrow(/untrusted workspace/);
      await expect(conn.sendRequest(lsp.analyze.method, { run: 'runs/arithmetic-tiny' })).rejects.toThrow(/untrusted workspace|trust/);
    } finally {
      await conn.sendNotification(lsp.configure, { ...lsp.DEFAULT_SETTINGS, threads: 1, debounceMs: 50 });
    }
  });
});
