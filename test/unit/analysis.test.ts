/**
 * Analysis (engine/analysis/*): the .npy reader and streaming writer, NMD and the point-biserial
 * correlation on hand-made data with known answers, the ranking, and the pairwise extraction on the
 * development run (resume, re-generation of a kept pair, the "only one behaviour" error), plus the
 * `memgen analyze` command's refusals and output.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ANALYSIS_FILES, type AnalysisSummary, type NeuronsFile, analysisDir, analysisPath, analysisStaleness } from '../../engine/analysis/files';
import { addRows, emptyMoments, groupMean, momentsOf, momentsOfFiles, nmd } from '../../engine/analysis/nmd';
import { NpyAppender, NpyError, STREAM_HEADER_BYTES, forEachNpyChunk, readNpy, readNpyHeader, writeNpy } from '../../engine/analysis/npy';
import { NoPairsError, extractPairs, pairSeed, readPairRecords, readPairsState } from '../../engine/analysis/pairs';
import { pointBiserial } from '../../engine/analysis/pearson';
import { rankNeurons, topCount } from '../../engine/analysis/rank';
import { analyzeCommand } from '../../engine/cli/commands/analyze';
import { GPT2Inference } from '../../engine/models/gpt2-infer';
import { type LoadedRun, RunError, loadRun, modelHash } from '../../engine/runs/run';
import type { Task } from '../../engine/tasks/task';
import { Rng } from '../../engine/util/rng';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-analysis-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const file = (name: string) => path.join(tmp, name);
const seq = (n: number, from = 0) => Float32Array.from({ length: n }, (_, i) => from + i * 0.5);

describe('npy', () => {
  it('round-trips float32 arrays of any rank, with a NumPy v1.0 header aligned to 64 bytes', () => {
    for (const shape of [[2, 3, 4], [5], [0, 3], []]) {
      const f = file(`rt-${shape.join('x')}.npy`);
      const n = shape.reduce((p, x) => p * x, 1);
      writeNpy(f, seq(n), shape);
      const back = readNpy(f);
      expect(back.shape).toEqual(shape);
      expect(Array.from(back.data)).toEqual(Array.from(seq(n)));
    }
    const bytes = fs.readFileSync(file('rt-2x3x4.npy'));
    expect([...bytes.subarray(0, 8)]).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const headerLen = bytes.readUInt16LE(8);
    expect((10 + headerLen) % 64).toBe(0);
    const text = bytes.subarray(10, 10 + headerLen).toString('latin1');
    expect(text.endsWith('\n')).toBe(true);
    expect(text.trim()).toBe("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }");
    expect(bytes.length).toBe(10 + headerLen + 24 * 4);
    expect(fs.readFileSync(file('rt-5.npy')).toString('latin1')).toContain("'shape': (5,)");
    expect(() => writeNpy(file('bad.npy'), seq(5), [2, 3])).toThrow(/needs 6 values/);
  });

  it('streams rows: append, close, reopen and append more; the header tracks the shape in place', () => {
    const f = file('stream.npy');
    const w = NpyAppender.open(f, [2, 3], 'create');
    expect(w.rows).toBe(0);
    expect(readNpy(f).shape).toEqual([0, 2, 3]);
    w.append(seq(6, 0));
    w.append(seq(12, 10));
    w.close();
    expect(readNpyHeader(f)).toEqual({ shape: [3, 2, 3], dataOffset: STREAM_HEADER_BYTES });
    const bytes = fs.readFileSync(f);
    expect((10 + bytes.readUInt16LE(8)) % 64).toBe(0);
    expect(bytes[STREAM_HEADER_BYTES - 1]).toBe(0x0a);

    const again = NpyAppender.open(f, [2, 3], 'append');
    expect(again.rows).toBe(3);
    again.append(seq(6, 100));
    again.close();
    const all = readNpy(f);
    expect(all.shape).toEqual([4, 2, 3]);
    expect(Array.from(all.data)).toEqual([...seq(6, 0), ...seq(12, 10), ...seq(6, 100)]);

    // Rows written after the last header update (a crash): the header lags, readNpy refuses the
    // file; reopening counts the whole rows and cuts a partial trailing row.
    fs.appendFileSync(f, new Uint8Array(seq(6, 200).buffer));
    expect(() => readNpy(f)).toThrow(/stream\.npy.*trailing data, or a stream not closed/);
    fs.appendFileSync(f, Buffer.alloc(10));
    const w3 = NpyAppender.open(f, [2, 3], 'append');
    expect(w3.rows).toBe(5);
    expect(fs.statSync(f).size).toBe(STREAM_HEADER_BYTES + 5 * 6 * 4);
    expect(Array.from(readNpy(f).data.subarray(24))).toEqual(Array.from(seq(6, 200)));
    w3.truncate(4);
    w3.close();
    expect(readNpy(f).shape).toEqual([4, 2, 3]);
    expect(fs.statSync(f).size).toBe(STREAM_HEADER_BYTES + 4 * 6 * 4);

    const chunks: number[][] = [];
    forEachNpyChunk(f, 3, (rows, start, count) => chunks.push([start, count, rows.length]));
    expect(chunks).toEqual([[0, 3, 18], [3, 1, 6]]);
    expect(() => NpyAppender.open(f, [3, 2], 'append')).toThrow(/stream\.npy: holds rows of shape \(2, 3\), expected \(3, 2\)/);
    const closed = NpyAppender.open(f, [2, 3], 'append');
    closed.close();
    expect(() => closed.append(seq(6))).toThrow(/closed/);
    const w5 = NpyAppender.open(f, [2, 3], 'append');
    expect(() => w5.append(seq(5))).toThrow(/not whole rows/);
    w5.close();
  });

  it('rejects truncated, lying or unsupported files, naming the file', () => {
    const good = file('good.npy');
    writeNpy(good, seq(12), [3, 4]);
    const bytes = fs.readFileSync(good);
    const put = (name: string, b: Uint8Array) => {
      fs.writeFileSync(file(name), b);
      return file(name);
    };
    expect(() => readNpy(put('short.npy', bytes.subarray(0, bytes.length - 4)))).toThrow(/short\.npy.*needs 48 data bytes, the file holds 44 \(truncated\)/);
    expect(() => readNpy(put('stub.npy', bytes.subarray(0, 8)))).toThrow(/stub\.npy is not a \.npy file/);
    expect(() => readNpy(put('cut.npy', bytes.subarray(0, 40)))).toThrow(/cut\.npy: truncated header/);
    expect(() => readNpy(put('text.npy', Buffer.from('hello world, not numpy')))).toThrow(/text\.npy is not a \.npy file/);
    const swap = (from: string, to: string) => Buffer.from(bytes.toString('latin1').replace(from, to.padEnd(from.length, ' ')), 'latin1');
    expect(() => readNpy(put('lie.npy', swap('(3, 4)', '(4, 4)')))).toThrow(/lie\.npy: the header's shape \(4, 4\) needs 64 data bytes, the file holds 48/);
    expect(() => readNpy(put('f8.npy', swap("'<f4'", "'<f8'")))).toThrow(/f8\.npy: dtype '<f8' is not supported/);
    expect(() => readNpy(put('fortran.npy', swap('False', 'True ')))).toThrow(/fortran\.npy: Fortran-order/);
    expect(() => readNpy(put('noshape.npy', swap("'shape'", "'shope'")))).toThrow(/noshape\.npy: bad \.npy header \(no shape\)/);
    const v9 = Buffer.from(bytes);
    v9[6] = 9;
    expect(() => readNpy(put('v9.npy', v9))).toThrow(/v9\.npy: unsupported \.npy version 9\.0/);
    expect(() => readNpy(file('absent.npy'))).toThrow(/absent\.npy: cannot open \(ENOENT\)/);
    expect(() => readNpy(file('absent.npy'))).toThrow(NpyError);

    // A stream whose header states more rows than the file holds was damaged by something else.
    const s = file('damaged-stream.npy');
    const w = NpyAppender.open(s, [4], 'create');
    w.append(seq(12));
    w.close();
    fs.truncateSync(s, fs.statSync(s).size - 16);
    expect(() => NpyAppender.open(s, [4], 'append')).toThrow(/damaged-stream\.npy: the header states 3 rows but the file holds only 2 whole rows/);
    // A file written whole has a minimal header: a stream can continue it while the shape fits.
    const whole = file('whole.npy');
    writeNpy(whole, seq(8), [2, 4]);
    const cont = NpyAppender.open(whole, [4], 'append');
    cont.append(seq(4, 50));
    cont.close();
    expect(readNpy(whole).shape).toEqual([3, 4]);
  });
});

/** Pearson's r computed the textbook way (two passes), for comparison. */
function pearson(x: number[], y: number[]): number {
  const n = x.length;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxx === 0 ? 0 : sxy / Math.sqrt(sxx * syy);
}

describe('NMD and the point-biserial correlation', () => {
  // One layer, three neurons; two gen and two mem members.
  //   neuron 0: gen 1, 3 | mem 0, 2  -> NMD +1; all: mean 1.5, var 1.25 -> rho = 1 * 0.5 / sqrt(1.25)
  //   neuron 1: constant 5           -> NMD 0, rho 0 (not NaN)
  //   neuron 2: gen 2, 4 | mem 6, 8  -> NMD -4; all: mean 5, var 5      -> rho = -4 * 0.5 / sqrt(5)
  const gen = Float32Array.from([1, 5, 2, 3, 5, 4]);
  const mem = Float32Array.from([0, 5, 6, 2, 5, 8]);

  it('gives the known answers on hand-made data, gen - mem, a constant neuron 0', () => {
    const m = momentsOf(gen, mem, 1, 3);
    expect(Array.from(nmd(m))).toEqual([1, 0, -4]);
    const rho = pointBiserial(m);
    expect(rho[0]).toBeCloseTo(0.5 / Math.sqrt(1.25), 6);
    expect(rho[1]).toBe(0);
    expect(rho[2]).toBeCloseTo(-2 / Math.sqrt(5), 6);
    expect(Array.from(groupMean(m, 'gen'))).toEqual([2, 5, 3]);
    expect(Array.from(groupMean(m, 'mem'))).toEqual([1, 5, 7]);
  });

  it('equals textbook Pearson with labels gen = 1, mem = 0; its sign is the sign of NMD', () => {
    const rng = new Rng(7);
    const L = 2;
    const d = 6;
    const nG = 9;
    const nM = 5; // unequal groups exercise p != 0.5
    const draw = (n: number, lift: number) => Float32Array.from({ length: n * L * d }, (_, k) => 100 + rng.normal() + (k % d === 0 ? lift : 0) + (k % d === 1 ? 0 : 0.3 * (k % d)));
    const g = draw(nG, 1.5);
    const mm = draw(nM, 0);
    for (let k = 3; k < g.length; k += L * d) g[k] = 42; // neuron 3 of layer 0 constant in both groups
    for (let k = 3; k < mm.length; k += L * d) mm[k] = 42;
    const m = momentsOf(g, mm, L, d);
    const n = nmd(m);
    const rho = pointBiserial(m);
    for (let j = 0; j < L * d; j++) {
      const x = [...Array.from({ length: nG }, (_, r) => g[r * L * d + j]), ...Array.from({ length: nM }, (_, r) => mm[r * L * d + j])];
      const y = [...new Array<number>(nG).fill(1), ...new Array<number>(nM).fill(0)];
      expect(rho[j]).toBeCloseTo(pearson(x, y), 5);
      expect(Number.isNaN(rho[j])).toBe(false);
      if (n[j] !== 0) expect(Math.sign(rho[j])).toBe(Math.sign(n[j]));
    }
    expect(rho[3]).toBe(0);
    expect(n[3]).toBe(0);
    expect(rho[0]).toBeGreaterThan(0.5);
  });

  it('streams the moments from .npy files in blocks, equal to the in-memory result', () => {
    const rng = new Rng(3);
    const g = Float32Array.from({ length: 7 * 2 * 4 }, () => rng.normal());
    const mm = Float32Array.from({ length: 7 * 2 * 4 }, () => rng.normal() + 0.2);
    writeNpy(file('g.npy'), g, [7, 2, 4]);
    writeNpy(file('m.npy'), mm, [7, 2, 4]);
    const a = momentsOfFiles(file('g.npy'), file('m.npy'), 3);
    const b = momentsOf(g, mm, 2, 4);
    expect(Array.from(nmd(a))).toEqual(Array.from(nmd(b)));
    expect(Array.from(pointBiserial(a))).toEqual(Array.from(pointBiserial(b)));
    writeNpy(file('m3.npy'), mm.subarray(0, 7 * 8 - 7 * 2), [7, 6]);
    expect(() => momentsOfFiles(file('g.npy'), file('m3.npy'))).toThrow(/m3\.npy: shape \(7, 6\) does not match/);
    const empty = emptyMoments(1, 2);
    addRows(empty, 'gen', Float32Array.from([1, 2]));
    expect(() => nmd(empty)).toThrow(/needs gen and mem members \(have 1 gen, 0 mem\)/);
    expect(() => pointBiserial(empty)).toThrow(/needs gen and mem members/);
  });
});

describe('ranking', () => {
  it('ranks |rho| across all layers, ties by layer then index, keeps round(topN * total)', () => {
    //           layer 0: 0     1     2      layer 1: 0    1    2
    const rho = [0.5, -0.9, 0.1, 0.9, -0.5, 0];
    const n = [1, -2, 3, 4, -5, 6];
    const r = rankNeurons(rho, n, 2, 3, 'ln2', 0.7); // round(4.2) = 4
    expect(r.map((e) => [e.rank, e.layer, e.index, e.site, e.nmd, e.rho])).toEqual([
      [1, 0, 1, 'blocks.0.ln2', -2, -0.9],
      [2, 1, 0, 'blocks.1.ln2', 4, 0.9],
      [3, 0, 0, 'blocks.0.ln2', 1, 0.5],
      [4, 1, 1, 'blocks.1.ln2', -5, -0.5],
    ]);
    expect(rankNeurons(rho, n, 2, 3, 'resid_post', 0.01).map((e) => e.site)).toEqual(['blocks.0.resid_post']);
    expect(rankNeurons(rho, n, 2, 3, 'ln2', 1)).toHaveLength(6);
    expect(topCount(0.1, 512)).toBe(51);
    expect(() => topCount(0, 10)).toThrow(/topN must be a fraction/);
    expect(() => rankNeurons([0.1, NaN, 0], [0, 0, 0], 1, 3, 'ln2', 0.5)).toThrow(/rho of blocks\.0\.ln2 neuron 1 is NaN/);
  });
});

/**
 * The committed run once its training is done (while it trains, its model changes under the test),
 * else the development run (a copied-out snapshot whose manifest was never finalised).
 */
function pickRun(): string | undefined {
  const hasModel = (d: string) => fs.existsSync(path.join(d, 'model.safetensors'));
  const committed = 'runs/arithmetic-tiny';
  if (hasModel(committed)) {
    try {
      if ((JSON.parse(fs.readFileSync(path.join(committed, 'manifest.json'), 'utf8')) as { status?: string }).status === 'done') return committed;
    } catch {
      // a manifest being rewritten: fall through
    }
  }
  return hasModel('/tmp/runs/arith-dev') ? '/tmp/runs/arith-dev' : undefined;
}
const RUN_DIR = pickRun();

describe.skipIf(!RUN_DIR)(`pairwise extraction on ${RUN_DIR ?? '(skipped: no run with a model; runs/arithmetic-tiny is absent or still training, /tmp/runs/arith-dev is absent)'}`, () => {
  let run: LoadedRun;
  let inf: GPT2Inference;
  let hash: string;
  const base = () => ({ task: run.task, model: inf, modelHash: hash, seed: pairSeed(run.memgen.seed), batch: 64 });

  beforeAll(async () => {
    run = loadRun(RUN_DIR!);
    inf = await GPT2Inference.create(run.cfg, run.params, { runner: { threads: 1 }, batchSize: 128 });
    hash = modelHash(run.dir);
  });
  afterAll(async () => inf?.release());

  it('keeps only gen/mem pairs, streams [P, L, d] rows, resumes the same input stream', async () => {
    const { nLayer: L, nEmbd: d } = run.cfg;
    const dir = file('pairs-a');
    const seen: number[] = [];
    const first = await extractPairs({ ...base(), dir, maxPairs: 20, resume: false, onProgress: (p) => seen.push(p.pairs) });
    expect(first).toMatchObject({ pairs: 20, resumedFrom: 0, stopReason: 'maxPairs' });
    expect(seen.at(-1)).toBe(20);
    const genFile = path.join(dir, ANALYSIS_FILES.hiddenGen);
    const memFile = path.join(dir, ANALYSIS_FILES.hiddenMem);
    expect(readNpy(genFile).shape).toEqual([20, L, d]);
    expect(readNpy(memFile).shape).toEqual([20, L, d]);
    const recs = readPairRecords(dir);
    expect(recs).toHaveLength(20);
    for (const r of recs) {
      expect([r.original.behaviour, r.rephrasing.behaviour].sort()).toEqual(['gen', 'mem']);
      expect(r.genMember === 'input' ? r.original.behaviour : r.rephrasing.behaviour).toBe('gen');
    }
    expect(recs.map((r) => r.index)).toEqual([...Array(20).keys()]);
    expect(recs.reduce((s, r) => s + r.tries, 0)).toBe(recs[19].input + 1); // stopped right at the 20th pair
    const st = readPairsState(dir)!;
    expect(st).toMatchObject({ pairs: 20, tried: first.tried, sinceLastPair: 0, site: 'ln2', layers: L, d });
    expect(st.counts.gen + st.counts.mem + st.counts.other).toBe(2 * st.tried);

    await expect(extractPairs({ ...base(), dir, maxPairs: 30, resume: false })).rejects.toThrow(/already holds an extraction/);
    await expect(extractPairs({ ...base(), dir, maxPairs: 30, resume: true, seed: 1 })).rejects.toThrow(/input seed .* not 1\. Start over with --force/);

    // A crash after rows were appended but before the state was saved leaves extra rows and lines:
    // resuming cuts them off and regenerates from the saved stream position.
    const head = fs.readFileSync(genFile).subarray(STREAM_HEADER_BYTES);
    for (const f of [genFile, memFile]) {
      const w = NpyAppender.open(f, [L, d], 'append');
      w.append(new Float32Array(L * d).fill(9));
      w.close();
      fs.appendFileSync(f, Buffer.alloc(7));
    }
    fs.appendFileSync(path.join(dir, ANALYSIS_FILES.pairs), '{"junk":true}\n{"ha');
    const second = await extractPairs({ ...base(), dir, maxPairs: 30, resume: true });
    expect(second).toMatchObject({ pairs: 30, resumedFrom: 20, stopReason: 'maxPairs' });
    expect(readNpy(genFile).shape).toEqual([30, L, d]);
    expect(readNpy(memFile).shape).toEqual([30, L, d]);
    expect(Buffer.compare(fs.readFileSync(genFile).subarray(STREAM_HEADER_BYTES, STREAM_HEADER_BYTES + head.length), head)).toBe(0);
    const all = readPairRecords(dir);
    expect(all.slice(0, 20)).toEqual(recs);
    expect(all.map((r) => r.index)).toEqual([...Array(30).keys()]);

    // One uninterrupted extraction to 30 meets the same inputs.
    const fresh = file('pairs-b');
    await extractPairs({ ...base(), dir: fresh, maxPairs: 30, resume: false, batch: 100 });
    expect(readPairRecords(fresh).map((r) => [r.input, r.original.prompt, r.genMember])).toEqual(all.map((r) => [r.input, r.original.prompt, r.genMember]));
    expect(readPairsState(fresh)!.tried).toBe(readPairsState(dir)!.tried);

    // Re-generating a kept pair: one gen and one mem member, the same outputs, the stored vectors.
    const k = 7;
    const r = all[k];
    const tok = run.task.tokenizer;
    const exA = run.task.fromPrompt(r.original.prompt);
    const exB = run.task.fromPrompt(r.rephrasing.prompt);
    const res = await inf.generate([tok.encode(exA.prompt), tok.encode(exB.prompt)], { maxNewTokens: run.task.maxAnswerTokens, eosId: tok.eoaId });
    const outs = res.tokens.map((t) => tok.decode(t));
    expect(outs).toEqual([r.original.output, r.rephrasing.output]);
    expect([run.task.classify(exA, outs[0]), run.task.classify(exB, outs[1])]).toEqual([r.original.behaviour, r.rephrasing.behaviour]);
    const genRow = readNpy(genFile).data.subarray(k * L * d, (k + 1) * L * d);
    const memRow = readNpy(memFile).data.subarray(k * L * d, (k + 1) * L * d);
    const [gi, mi] = r.genMember === 'input' ? [0, 1] : [1, 0];
    let diff = 0;
    for (let j = 0; j < L * d; j++) {
      diff = Math.max(diff, Math.abs(res.hidden[gi * L * d + j] - genRow[j]), Math.abs(res.hidden[mi * L * d + j] - memRow[j]));
    }
    expect(diff).toBeLessThan(1e-4);
  });

  it('says why when the model shows only one behaviour', async () => {
    // The run's task with classify forced to 'gen': every generation is one behaviour.
    const onlyGen: Task = Object.create(run.task, { classify: { value: () => 'gen' } });
    const dir = file('pairs-none');
    const err = await extractPairs({ ...base(), task: onlyGen, dir, maxPairs: 5, maxTries: 40, batch: 16, resume: false }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(NoPairsError);
    expect((err as Error).message).toMatch(/no pair with one gen and one mem member in 40 inputs .*gen 80 \(100\.0%\), mem 0 \(0\.0%\), other 0 \(0\.0%\) of 80 generations\. The model shows only one behaviour: it never memorizes here \(its other answers are correct\)\..*train longer/);
    expect(readPairsState(dir)).toMatchObject({ tried: 40, pairs: 0 });
  });

  it('memgen analyze: writes the analysis, refuses to overwrite it, resumes, replaces only with --force', async () => {
    const runCopy = file('run-copy');
    fs.mkdirSync(runCopy);
    for (const f of ['config.json', 'manifest.json', 'model.safetensors', 'tokenizer.json']) fs.copyFileSync(path.join(RUN_DIR!, f), path.join(runCopy, f));
    const out: string[] = [];
    const log = vi.spyOn(console, 'log').mockImplementation((s: string) => void out.push(s));
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await analyzeCommand(['--run', runCopy, '--pairs', '6', '--threads', '1', '--batch', '64', '--topn', '0.05'])).toBe(0);
      const summary = JSON.parse(fs.readFileSync(analysisPath(runCopy, 'summary'), 'utf8')) as AnalysisSummary;
      const { nLayer: L, nEmbd: d } = run.cfg;
      expect(summary).toMatchObject({ format: 'memgen-analysis/1', site: 'ln2', pairs: 6, layers: L, d, topN: 0.05, sign: 'gen - mem', modelHash: hash });
      expect(summary.triesPerPair).toBeCloseTo(summary.inputsTried / 6, 10);
      expect(summary.perLayer.map((l) => l.site)).toEqual(Array.from({ length: L }, (_, l) => `blocks.${l}.ln2`));
      const neurons = JSON.parse(fs.readFileSync(analysisPath(runCopy, 'neurons'), 'utf8')) as NeuronsFile;
      expect(neurons.count).toBe(Math.round(0.05 * L * d));
      expect(neurons.neurons[0].rank).toBe(1);
      expect(readNpy(analysisPath(runCopy, 'nmd')).shape).toEqual([L, d]);
      expect(readNpy(analysisPath(runCopy, 'rho')).shape).toEqual([L, d]);
      expect(analysisStaleness(runCopy, summary)).toBeNull();
      const text = out.join('\n');
      expect(text).toMatch(/pairs kept: 6 of \d+ inputs tried/);
      expect(text).toMatch(/blocks\.0\.ln2 +\d+\.\d{4} +\d\.\d{3}/);
      expect(text).toMatch(/top 10 neurons by \|rho\|/);

      await expect(analyzeCommand(['--run', runCopy, '--pairs', '8'])).rejects.toThrow(/already holds an analysis \(6 pairs at site ln2.*--resume.*--force/);
      await expect(analyzeCommand(['--run', runCopy, '--resume', '--force'])).rejects.toThrow(/contradict/);
      await expect(analyzeCommand(['--run', runCopy, '--site', 'mlp'])).rejects.toThrow(/unknown site 'mlp'/);

      expect(await analyzeCommand(['--run', runCopy, '--pairs', '8', '--resume', '--threads', '1', '--batch', '64'])).toBe(0);
      expect(readNpy(analysisPath(runCopy, 'hiddenGen')).shape).toEqual([8, L, d]);
      expect(JSON.parse(fs.readFileSync(analysisPath(runCopy, 'summary'), 'utf8')).pairs).toBe(8);

      expect(await analyzeCommand(['--run', runCopy, '--pairs', '3', '--force', '--threads', '1', '--site', 'resid_post'])).toBe(0);
      expect(readNpy(analysisPath(runCopy, 'hiddenGen')).shape).toEqual([3, L, d]);
      expect(fs.readdirSync(runCopy).filter((f) => f.startsWith('analysis.replaced-'))).toHaveLength(1);
      expect(JSON.parse(fs.readFileSync(analysisPath(runCopy, 'neurons'), 'utf8')).neurons[0].site).toMatch(/^blocks\.\d+\.resid_post$/);

      fs.rmSync(path.join(runCopy, 'model.safetensors'));
      await expect(analyzeCommand(['--run', runCopy])).rejects.toThrow(RunError);
      await expect(analyzeCommand(['--run', runCopy])).rejects.toThrow(/model\.safetensors is missing/);
      expect(analysisDir(runCopy)).toBe(path.join(runCopy, 'analysis'));
    } finally {
      log.mockRestore();
      stderr.mockRestore();
    }
  });
});
