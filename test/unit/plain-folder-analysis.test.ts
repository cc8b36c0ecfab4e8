/**
 * analyze / steer-eval / robustness on a plain Hugging Face folder (runs/plain-run.ts,
 * analysis/plain-task.ts): a copy of the committed run runs/arithmetic-tiny without its "memgen"
 * section or manifest (config.json, model.safetensors, tokenizer.json: our closed-vocabulary task
 * tokenizer, which loads as a Hugging Face tokenizer.json) is analysed with --task arithmetic
 * --task-seed 2 (the run's seed). The retokenized task writes the same ids (no bos, <eoa> =
 * eos_token_id), so the plain copy gives exactly the run's pairs, hidden vectors, steering table and
 * robustness flips. Also: the refusal without --task, the task taken from the analysis, a --task
 * that contradicts it, --task on a memgen run, one analyze call on a synthetic LLaMA folder, and the
 * editor: a .memgen document whose `run:` names the plain folder (language server over stdio; needs
 * `npm run build`) gets the run's CodeLens predictions with `task:` headers, a diagnostic without.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestType } from 'vscode-jsonrpc/node';
import { main } from '../../engine/cli/main';
import { HEADER_TASKS } from '../../engine/io/memgen-file';
import { writeSyntheticLlamaFolder } from '../../engine/models/llama-synthetic';
import { TASK_NAMES } from '../../engine/tasks';
import { startServer } from '../protocol/lsp-harness';

const RUN = path.resolve(__dirname, '../../runs/arithmetic-tiny');

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error, warn } = console;
  const write = process.stderr.write;
  console.log = (s: string) => out.push(String(s));
  console.error = (s: string) => err.push(String(s));
  console.warn = () => {};
  process.stderr.write = () => true; // progress bars
  try {
    const code = await main([...argv, '--threads', '1']);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    Object.assign(console, { log, error, warn });
    process.stderr.write = write;
  }
}

const read = (f: string) => fs.readFileSync(f, 'utf8');

/** A copy of the run as a plain folder: config.json without "memgen", the weights and the tokenizer. */
function writePlainCopy(dir: string): void {
  fs.mkdirSync(dir);
  const config = JSON.parse(read(path.join(RUN, 'config.json')));
  delete config.memgen;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  for (const f of ['model.safetensors', 'tokenizer.json']) fs.copyFileSync(path.join(RUN, f), path.join(dir, f));
}

const codeLens = new RequestType<{ textDocument: { uri: string } }, { command?: { title: string } }[], void>('textDocument/codeLens');

describe('a plain Hugging Face folder analysed on a named task', () => {
  let root: string;
  let plain: string;
  let run: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-plain-'));
    plain = path.join(root, 'plain');
    run = path.join(root, 'run');
    writePlainCopy(plain);
    fs.mkdirSync(run);
    for (const f of ['config.json', 'manifest.json', 'model.safetensors', 'tokenizer.json']) fs.copyFileSync(path.join(RUN, f), path.join(run, f));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('refuses a plain folder without --task, naming the fix', async () => {
    for (const cmd of ['analyze', 'steer-eval', 'robustness']) {
      const r = await cli([cmd, '--run', plain, ...(cmd === 'robustness' ? ['--prompt', '12+34+56+78='] : [])]);
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(/plain Hugging Face model folder, which records no task: add --task arithmetic\|incontext\|cipher/);
    }
    expect(fs.existsSync(path.join(plain, 'analysis'))).toBe(false);
  });

  it('analyze --task arithmetic --task-seed 2 gives the run\'s own pairs and vectors', async () => {
    const before = Object.fromEntries(fs.readdirSync(plain).map((f) => [f, read(path.join(plain, f))]));
    const a = await cli(['analyze', '--run', plain, '--task', 'arithmetic', '--task-seed', '2', '--pairs', '12', '--no-probes']);
    expect(a.err).toBe('');
    expect(a.code).toBe(0);
    const b = await cli(['analyze', '--run', run, '--pairs', '12', '--no-probes']);
    expect(b.code).toBe(0);
    const pa = path.join(plain, 'analysis');
    const pb = path.join(run, 'analysis');
    expect(read(path.join(pa, 'pairs.jsonl'))).toBe(read(path.join(pb, 'pairs.jsonl')));
    expect(read(path.join(pa, 'pairs.jsonl')).trim().split('\n')).toHaveLength(12);
    expect(fs.readFileSync(path.join(pa, 'hidden_gen.npy')).equals(fs.readFileSync(path.join(pb, 'hidden_gen.npy')))).toBe(true);
    expect(fs.readFileSync(path.join(pa, 'rho.npy')).equals(fs.readFileSync(path.join(pb, 'rho.npy')))).toBe(true);
    const sa = JSON.parse(read(path.join(pa, 'analysis.json')));
    const sb = JSON.parse(read(path.join(pb, 'analysis.json')));
    expect(sa.plainTask).toEqual({ task: 'arithmetic', seed: 2, scale: 'tiny' });
    expect(sb.plainTask).toBeUndefined();
    expect([sa.seed, sa.counts, sa.inputsTried, sa.modelHash]).toEqual([sb.seed, sb.counts, sb.inputsTried, sb.modelHash]);
    expect(JSON.parse(read(path.join(pa, 'task.json')))).toEqual({ format: 'memgen-plain-task/1', task: 'arithmetic', seed: 2, scale: 'tiny' });
    // only analysis/ was added; the model's files are untouched
    expect(fs.readdirSync(plain).sort()).toEqual([...Object.keys(before), 'analysis'].sort());
    for (const [f, text] of Object.entries(before)) expect(read(path.join(plain, f))).toBe(text);
  });

  it('steer-eval and robustness take the task from the analysis and match the run', async () => {
    const a = await cli(['steer-eval', '--run', plain, '--n', '4']);
    expect(a.err).toBe('');
    expect(a.code).toBe(0);
    const b = await cli(['steer-eval', '--run', run, '--n', '4']);
    expect(b.code).toBe(0);
    const table = (dir: string) => JSON.parse(read(path.join(dir, 'analysis', 'steering.json')));
    const cells = (dir: string) => table(dir).cells.map((c: Record<string, unknown>) => [c.direction, c.method, c.n, c.counts, c.pFirst]);
    expect(cells(plain)).toEqual(cells(run));
    expect(cells(plain).length).toBe(6);
    expect(table(plain).starts.found).toEqual(table(run).starts.found);
    expect(table(plain).cells.reduce((a: number, c: { n: number }) => a + c.n, 0)).toBeGreaterThan(0);

    const prompt = ['--prompt', '12+34+56+78=', '--k', '4', '--json'];
    const ra = await cli(['robustness', '--run', plain, ...prompt]);
    const rb = await cli(['robustness', '--run', run, ...prompt]);
    expect(ra.code).toBe(0);
    const results = (r: { out: string }) => JSON.parse(r.out).results;
    expect(results(ra)).toEqual(results(rb));
  });

  it('refuses a --task that contradicts the analysis, and --task on a memgen run', async () => {
    const t = await cli(['steer-eval', '--run', plain, '--task', 'incontext', '--n', '2']);
    expect(t.code).not.toBe(0);
    expect(t.err).toMatch(/its analysis was made on the task arithmetic \(task seed 2, scale tiny\).*--task incontext contradicts it\. Drop --task/);
    const s = await cli(['robustness', '--run', plain, '--task', 'arithmetic', '--task-seed', '0', '--prompt', '12+34+56+78=']);
    expect(s.err).toMatch(/--task-seed 0 contradicts it/);
    // agreeing options are fine
    const ok = await cli(['robustness', '--run', plain, '--task', 'arithmetic', '--task-seed', '2', '--prompt', '12+34+56+78=', '--k', '2']);
    expect(ok.code).toBe(0);
    const r = await cli(['steer-eval', '--run', run, '--task', 'arithmetic', '--n', '2']);
    expect(r.err).toMatch(/is a memgen run: .*--task, --task-seed and --task-scale are for plain Hugging Face folders only/);
  });

  it('analyses a synthetic LLaMA folder through its own tokenizer', async () => {
    const llama = path.join(root, 'llama');
    writeSyntheticLlamaFolder(llama, { seed: 3, shards: 2, dtype: 'BF16', std: 0.2 });
    // An untrained model shows neither behaviour: the extraction runs (bos + BPE prompts, <|eot_id|> ends) and says so.
    const a = await cli(['analyze', '--run', llama, '--task', 'arithmetic', '--max-tries', '3', '--batch', '3', '--no-probes']);
    expect(a.code).not.toBe(0);
    expect(a.err).toMatch(/no pair with one gen and one mem member in 3 inputs/);
    const state = JSON.parse(read(path.join(llama, 'analysis', 'pairs-state.json')));
    expect([state.family, state.site, state.tried]).toEqual(['llama', 'resid_post', 3]);
    expect(state.modelHash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(JSON.parse(read(path.join(llama, 'analysis', 'task.json'))).task).toBe('arithmetic');
  });

  it('the editor: run: a plain folder with task: headers predicts as the run does; without, a diagnostic', async () => {
    expect([...HEADER_TASKS]).toEqual([...TASK_NAMES]);
    const bare = path.join(root, 'bare');
    writePlainCopy(bare);
    const diags = new Map<string, { message: string }[]>();
    const server = await startServer({
      workspace: root, settings: { threads: 1, debounceMs: 50 },
      register: (c) => c.onNotification('textDocument/publishDiagnostics', (p: { uri: string; diagnostics: { message: string }[] }) => void diags.set(p.uri, p.diagnostics)),
    });
    try {
      let version = 0;
      const open = (name: string, lines: string[]) => {
        const uri = `file://${path.join(root, name)}`;
        void server.conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'memgen', version: ++version, text: lines.join('\n') } });
        return uri;
      };
      const prompts = ['44+88+94+87=', '12+34+56+78='];
      const titles = async (uri: string) => (await server.conn.sendRequest(codeLens, { textDocument: { uri } })).map((l) => l.command?.title ?? '');
      const ofPlain = await titles(open('plain.memgen', [`run: ${plain}`, 'task: arithmetic', 'taskSeed: 2', ...prompts]));
      const ofRun = await titles(open('run.memgen', [`run: ${run}`, ...prompts]));
      expect(ofPlain).toEqual(ofRun);
      expect(ofPlain[0]).toMatch(/^(memorize|generalize) 0\.\d\d · blocks\.\d+\.ln2$/);
      const none = open('bare.memgen', [`run: ${bare}`, ...prompts]);
      const d = await (async () => {
        for (const t0 = Date.now(); Date.now() - t0 < 20_000; await new Promise((r) => setTimeout(r, 50))) if (diags.get(none)?.length) return diags.get(none)!;
        throw new Error('no diagnostics');
      })();
      expect(d[0].message).toMatch(/plain Hugging Face model folder, which records no task: add a header line `task: arithmetic\|incontext\|cipher`/);
      // The Analyze command's run list: plain folders say so, with the task their analysis recorded (the client then asks for one when it is '?')
      await server.conn.sendNotification('memgen/configure', { threads: 1, debounceMs: 50, runsFolder: '.' });
      const runs = (await server.conn.sendRequest('memgen/listRuns', {})) as { name: string; task: string; plain: boolean }[];
      expect(runs.filter((r) => ['bare', 'plain', 'run'].includes(r.name)).map(({ name, task, plain }) => ({ name, task, plain }))).toEqual([
        { name: 'bare', task: '?', plain: true }, { name: 'plain', task: 'arithmetic', plain: true }, { name: 'run', task: 'arithmetic', plain: false },
      ]);
    } finally {
      await server.stop();
    }
  });
});
