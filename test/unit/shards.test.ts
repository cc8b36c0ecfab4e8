/**
 * Scale-out (docs/cluster.md): the block rule of engine/analysis/shards.ts, and on the committed
 * runs/arithmetic-tiny, `memgen analyze --shard i/N` for 2 and 3 shards merged by `memgen merge`
 * equal one unsharded `memgen analyze`: pairs.jsonl, counts, the stream state and the hidden rows
 * exactly, NMD / rho within 1e-6, the neurons and the probes; a --max-tries budget that ends inside a
 * block; `--jobs 2` (child processes of the built dist/cli.js); the coverage error naming the shard and
 * the command that extends it; and steer-eval and sweep shards merged equal to one unsharded
 * steer-eval and sweep.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANALYSIS_FILES, analysisPath } from '../../engine/analysis/files';
import { readNpy } from '../../engine/analysis/npy';
import { SHARD_BLOCK, nextOwned, ownsInput, parseShard } from '../../engine/analysis/shards';
import { analyzeCommand } from '../../engine/cli/commands/analyze';
import { mergeCommand } from '../../engine/cli/commands/merge';
import { steerEvalCommand, sweepCommand } from '../../engine/cli/commands/steer';
import { RUN_FILES } from '../../engine/runs/run';
import { quiet } from './quiet';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-shards-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('the block rule', () => {
  it('gives input t to shard floor(t / 128) mod N; parses 0-based i/N', () => {
    const s = { index: 1, count: 3 };
    expect([0, 127, 128, 255, 256, 383, 384, 511].map((t) => ownsInput(s, t))).toEqual([false, false, true, true, false, false, false, false]);
    expect(nextOwned(s, 0)).toBe(SHARD_BLOCK);
    expect(nextOwned(s, 200)).toBe(200);
    expect(nextOwned(s, 256)).toBe(4 * SHARD_BLOCK);
    expect(nextOwned({ index: 0, count: 1 }, 77)).toBe(77);
    expect(parseShard('2/3')).toEqual({ index: 2, count: 3 });
    expect(() => parseShard('3/3')).toThrow(/0 <= i < N/);
    expect(() => parseShard('1-3')).toThrow(/i\/N/);
  });
});

const REPO_RUN = path.join(__dirname, '..', '..', 'runs', 'arithmetic-tiny');
const haveRun = fs.existsSync(path.join(REPO_RUN, RUN_FILES.model)) && fs.existsSync(analysisPath(REPO_RUN, 'neurons'));

/** A fresh copy of the committed run's files (its analysis too with `analysis`: steering needs neurons). */
function copyRun(name: string, analysis = false): string {
  const to = path.join(tmp, name);
  fs.mkdirSync(to, { recursive: true });
  for (const f of [RUN_FILES.config, RUN_FILES.manifest, RUN_FILES.model, RUN_FILES.tokenizer]) fs.copyFileSync(path.join(REPO_RUN, f), path.join(to, f));
  if (analysis) fs.cpSync(path.join(REPO_RUN, 'analysis'), path.join(to, 'analysis'), { recursive: true });
  return to;
}


const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
const without = (o: Record<string, unknown>, keys: string[]) => Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));

/** Asserts that the analysis of `run` equals `ref`'s (see the header); `probes` compares probes.json too. */
function expectSameAnalysis(run: string, ref: string, probes: boolean): void {
  const f = (r: string, k: keyof typeof ANALYSIS_FILES) => analysisPath(r, k);
  expect(fs.readFileSync(f(run, 'pairs'), 'utf8')).toBe(fs.readFileSync(f(ref, 'pairs'), 'utf8'));
  const times = ['seconds', 'createdAt', 'updatedAt'];
  expect(without(readJson(f(run, 'state')), times)).toEqual(without(readJson(f(ref, 'state')), times));
  for (const k of ['hiddenGen', 'hiddenMem'] as const) expect(fs.readFileSync(f(run, k)).equals(fs.readFileSync(f(ref, k)))).toBe(true);
  for (const k of ['nmd', 'rho'] as const) {
    const a = readNpy(f(run, k)).data;
    const b = readNpy(f(ref, k)).data;
    expect(a.length).toBe(b.length);
    let worst = 0;
    for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j] - b[j]));
    expect(worst).toBeLessThan(1e-6);
  }
  expect(readJson(f(run, 'neurons'))).toEqual(readJson(f(ref, 'neurons')));
  expect(without(readJson(f(run, 'summary')), ['extractSeconds', 'createdAt'])).toEqual(without(readJson(f(ref, 'summary')), ['extractSeconds', 'createdAt']));
  if (probes) expect(readJson(f(run, 'probes'))).toEqual(readJson(f(ref, 'probes')));
}

describe.skipIf(!haveRun)('analyze --shard i/N and merge on runs/arithmetic-tiny', () => {
  const common = ['--threads', '1'];
  const unsharded = (name: string, extra: string[]) => {
    const run = copyRun(name);
    return quiet(() => analyzeCommand(['--run', run, ...common, ...extra])).then((r) => ({ ...r, run }));
  };
  async function sharded(name: string, N: number, extra: string[], mergeExtra: string[] = ['--no-probes']): Promise<string> {
    const run = copyRun(name);
    for (let i = 0; i < N; i++) expect((await quiet(() => analyzeCommand(['--run', run, '--shard', `${i}/${N}`, ...common, ...extra]))).code).toBe(0);
    expect((await quiet(() => mergeCommand(['--run', run, ...common, ...mergeExtra]))).code).toBe(0);
    return run;
  }
  let ref: string;

  beforeAll(async () => {
    const r = await unsharded('one', ['--pairs', '30']);
    expect(r.code).toBe(0);
    ref = r.run;
  }, 60_000);

  it('2 shards merged equal the unsharded analysis (no probes)', async () => {
    const run = await sharded('two', 2, ['--pairs', '30', '--no-probes']);
    expectSameAnalysis(run, ref, false);
    const st = readJson(path.join(analysisPath(run, 'state')));
    expect(st.pairs).toBe(30);
    expect(st.sinceLastPair).toBe(0);
  }, 60_000);

  it('3 shards merged equal it too, probes trained after the merge', async () => {
    const run = await sharded('three', 3, ['--pairs', '30', '--no-probes'], []);
    expectSameAnalysis(run, ref, true);
  }, 60_000);

  it.skipIf(!fs.existsSync(path.join(__dirname, '..', '..', 'dist', 'cli.js')))('--jobs 2 runs the shards as child processes (dist/cli.js) and merges: the same analysis', async () => {
    const r = await unsharded('jobs', ['--pairs', '30', '--jobs', '2', '--no-probes']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/merged 2 shards: 30 pairs/);
    expectSameAnalysis(r.run, ref, false);
  }, 60_000);

  it('a --max-tries budget inside a block: fewer pairs, the same files', async () => {
    const one = await unsharded('budget-one', ['--pairs', '1000', '--max-tries', '300', '--no-probes']);
    expect(one.code).toBe(0);
    const run = await sharded('budget-two', 2, ['--pairs', '1000', '--max-tries', '300', '--no-probes']);
    expectSameAnalysis(run, one.run, false);
    expect(readJson(analysisPath(run, 'state')).tried).toBe(300);
  }, 60_000);

  it('refuses to merge what the shards do not cover, naming the shard and the command that extends it', async () => {
    const run = copyRun('short');
    for (const i of [0, 1]) await quiet(() => analyzeCommand(['--run', run, '--shard', `${i}/2`, '--pairs', '10', ...common]));
    await expect(mergeCommand(['--run', run, '--pairs', '40', '--no-probes'])).rejects.toThrow(/shard \d\/2 stopped at stream input \d+ .*extend it with `memgen analyze --run .* --shard \d\/2 --resume --pairs 80`/);
    await expect(mergeCommand(['--run', copyRun('none')])).rejects.toThrow(/holds no shards/);
    fs.rmSync(path.join(analysisPath(run, 'state'), '..', 'shards', '1-of-2'), { recursive: true });
    await expect(mergeCommand(['--run', run, '--no-probes'])).rejects.toThrow(/shards 1\/2 of 2 are missing; run `memgen analyze --run .* --shard 1\/2 --pairs P`/);
    // A shard is not the unsharded job: its --batch is fixed.
    await expect(analyzeCommand(['--run', run, '--shard', '0/2', '--batch', '64'])).rejects.toThrow(/one block of 128 inputs per call/);
  }, 60_000);
});

describe.skipIf(!haveRun)('steer-eval --shard i/N and merge on runs/arithmetic-tiny', () => {
  it.each([1, 2])('3 shards merged equal one unsharded steer-eval (starts, counts, cells, examples), --baseline-draws %i', async (draws) => {
    const args = ['--n', '100', '--batch', '128', '--threads', '1', '--seed', '1', '--baseline-draws', String(draws)];
    const one = copyRun(`steer-one-${draws}`, true);
    expect((await quiet(() => steerEvalCommand(['--run', one, ...args]))).code).toBe(0);
    const run = copyRun(`steer-three-${draws}`, true);
    fs.rmSync(path.join(run, 'analysis', 'steering.json'));
    for (let i = 0; i < 3; i++) expect((await quiet(() => steerEvalCommand(['--run', run, '--shard', `${i}/3`, ...args]))).code).toBe(0);
    const m = await quiet(() => mergeCommand(['--run', run]));
    expect(m.code).toBe(0);
    expect(m.out).toMatch(/merged the steering shards into .*steering\.json/);
    // Equal but for the times and the run's folder name.
    const table = (r: string) => without(JSON.parse(fs.readFileSync(path.join(r, 'analysis', 'steering.json'), 'utf8').replaceAll(r, 'RUN')) as Record<string, unknown>, ['seconds', 'createdAt']);
    expect(table(run)).toEqual(table(one));
    expect((table(one).starts as { tried: number }).tried).toBeGreaterThan(256); // more than one unsharded batch, so that all 3 shards took part
    expect((table(one).cells as { method: string; n: number }[]).filter((c) => c.method !== 'targeted').every((c) => c.n === draws * 100)).toBe(true);
  }, 60_000);
});

/** Asserts a equals b: integers (counts, n, tried) exactly, other numbers (percentages, probabilities) within 1e-6. */
function expectClose(a: unknown, b: unknown, at = ''): void {
  if (typeof a === 'number' && typeof b === 'number' && !(Number.isInteger(a) && Number.isInteger(b))) {
    expect(Math.abs(a - b), at).toBeLessThan(1e-6);
  } else if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    expect(Object.keys(a).sort(), at).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(a)) expectClose((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${at}.${k}`);
  } else {
    expect(a, at).toEqual(b);
  }
}

describe.skipIf(!haveRun)('sweep --shard i/N and merge on runs/arithmetic-tiny', () => {
  it('2 shards merged equal one unsharded sweep (starts, counts, every cell, best), baselines pooled over 2 draws', async () => {
    const args = ['--n', '50', '--batch', '128', '--threads', '1', '--seed', '1', '--alphas', '5,20', '--topns', '0.02,0.1', '--baseline-draws', '2'];
    const one = copyRun('sweep-one', true);
    expect((await quiet(() => sweepCommand(['--run', one, ...args]))).code).toBe(0);
    const run = copyRun('sweep-two', true);
    fs.rmSync(path.join(run, 'analysis', 'sweep.json'));
    for (let i = 0; i < 2; i++) expect((await quiet(() => sweepCommand(['--run', run, '--shard', `${i}/2`, ...args]))).code).toBe(0);
    const m = await quiet(() => mergeCommand(['--run', run]));
    expect(m.code).toBe(0);
    expect(m.out).toMatch(/merged the sweep shards into .*sweep\.json/);
    const file = (r: string) => without(JSON.parse(fs.readFileSync(path.join(r, 'analysis', 'sweep.json'), 'utf8').replaceAll(r, 'RUN')) as Record<string, unknown>, ['seconds', 'createdAt']);
    const merged = file(run);
    expectClose(merged, file(one));
    expect((merged.cells as unknown[]).length).toBe(2 * 2 * 2 * 3);
    expect((merged.cells as { method: string; n: number }[]).filter((c) => c.method !== 'targeted').every((c) => c.n === 2 * 50)).toBe(true);
    expect((merged.starts as { tried: number }).tried).toBeGreaterThan(128); // more than one block, so that both shards took part
  }, 60_000);
});
