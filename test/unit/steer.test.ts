/**
 * Steering (engine/steer/*): the intervention vectors on hand-made NMD (signs, zeros outside the kept
 * set, the last layer steered, the two baselines, seeded determinism), then steer-eval and sweep on a
 * real analysed run: the table's shape and n, the starting sets, alpha 0 = no change, the refusals
 * (no analysis, stale analysis, another shape), and both commands' files.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NeuronEntry, type NeuronsFile, analysisPath } from '../../engine/analysis/files';
import { writeNpy } from '../../engine/analysis/npy';
import { rankNeurons } from '../../engine/analysis/rank';
import { analyzeCommand } from '../../engine/cli/commands/analyze';
import { steerEvalCommand, sweepCommand } from '../../engine/cli/commands/steer';
import { GPT2Inference } from '../../engine/models/gpt2-infer';
import { RUN_FILES } from '../../engine/runs/run';
import { type SteeringFile, type SweepFile, defaultAlpha, paperReference, steerPath } from '../../engine/steer/files';
import {
  type Intervention,
  baselineIntervention,
  customIntervention,
  drawPositions,
  isZero,
  parsePicks,
  targetedIntervention,
} from '../../engine/steer/intervention';
import { type SteerSetup, drawStarts, formatSteeringTable, prepareSteering, runDraws, steerEval, steeringInterventions } from '../../engine/steer/steer-eval';
import { bestCell, formatSweep, sweep } from '../../engine/steer/sweep';
import { Rng } from '../../engine/util/rng';
import { quiet } from './quiet';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-steer-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// Hand-made NMD: 3 layers x 5 neurons, NMD[l, i] = (l + 1) * (i - 2) / 10 + 0.01 * l (all distinct,
// mixed signs). Kept: two neurons of layer 0 and two of the LAST layer (2); none in layer 1.
const L = 3;
const D = 5;
const shape = { layers: L, d: D };
const NMD = Float32Array.from({ length: L * D }, (_, j) => ((Math.floor(j / D) + 1) * ((j % D) - 2)) / 10 + 0.01 * Math.floor(j / D));
const entry = (rank: number, layer: number, index: number): NeuronEntry => ({ rank, layer, index, site: `blocks.${layer}.ln2`, nmd: NMD[layer * D + index], rho: Math.sign(NMD[layer * D + index]) * 0.5 });
const KEPT = [entry(1, 2, 4), entry(2, 0, 0), entry(3, 2, 1), entry(4, 0, 3)];
const keptSet = new Set(KEPT.map((e) => e.layer * D + e.index));
const at = (iv: Intervention, j: number) => iv.vectors[Math.floor(j / D)][j % D];
const nonzero = (iv: Intervention) => Array.from({ length: L * D }, (_, j) => j).filter((j) => at(iv, j) !== 0);
const values = (iv: Intervention) => iv.shifts.map((s) => s.value).sort((a, b) => a - b);

describe('intervention vectors', () => {
  it('toward gen adds alpha x NMD, toward mem subtracts it, zero outside the kept set, every kept layer steered (the last included)', () => {
    const alpha = 5;
    const g = targetedIntervention(KEPT, NMD, shape, alpha, 'mem->gen');
    const m = targetedIntervention(KEPT, NMD, shape, alpha, 'gen->mem');
    expect(g.vectors).toHaveLength(L);
    for (let j = 0; j < L * D; j++) {
      if (keptSet.has(j)) {
        expect(at(g, j)).toBe(Math.fround(alpha * NMD[j]));
        expect(at(m, j)).toBe(Math.fround(-alpha * NMD[j]));
        // = alpha * sign(rho) * |NMD| (method.md section 6)
        expect(at(g, j)).toBeCloseTo(alpha * Math.sign(KEPT.find((e) => e.layer * D + e.index === j)!.rho) * Math.abs(NMD[j]), 6);
      } else {
        expect(at(g, j)).toBe(0);
        expect(at(m, j)).toBe(0);
      }
    }
    expect(g.description).toMatchObject({ kind: 'targeted', direction: 'mem->gen', alpha, site: 'ln2', count: 4, layers: [0, 2], sites: ['blocks.0.ln2', 'blocks.2.ln2'], perLayer: [2, 0, 2], seed: null });
    expect(g.vectors[L - 1].some((x) => x !== 0)).toBe(true); // the last layer is steered (method.md 9.1)
    expect(g.description.maxAbsShift).toBeCloseTo(alpha * Math.max(...[...keptSet].map((j) => Math.abs(NMD[j]))), 6);
    expect(isZero(targetedIntervention(KEPT, NMD, shape, 0, 'mem->gen').vectors)).toBe(true);
  });

  it('steers the last layer when the ranking puts neurons there, and zero-variance neurons are never picked first', () => {
    // rho: the strongest neurons sit in the last layer; layer 1 is constant (rho = 0).
    const rho = Float32Array.from({ length: L * D }, (_, j) => (Math.floor(j / D) === 1 ? 0 : (Math.floor(j / D) + 1) * 0.1 * ((j % D) + 1) * (j % 2 ? -1 : 1)));
    const ranked = rankNeurons(rho, NMD, L, D, 'ln2', 0.2); // 3 neurons
    expect(ranked.every((e) => e.layer === 2)).toBe(true);
    const iv = targetedIntervention(ranked, NMD, shape, 1, 'mem->gen');
    expect(iv.description.layers).toEqual([2]);
    expect(nonzero(iv).every((j) => Math.floor(j / D) === 2)).toBe(true);
  });

  it('refuses a ranking that mixes sites, names a missing layer or neuron, or repeats one', () => {
    expect(() => targetedIntervention([...KEPT, { ...entry(5, 1, 1), site: 'blocks.1.resid_post' }], NMD, shape, 1, 'mem->gen')).toThrow(/mix sites ln2 and resid_post/);
    expect(() => targetedIntervention([entry(1, 3, 0)].map((e) => ({ ...e, site: 'blocks.3.ln2' })), NMD, shape, 1, 'mem->gen')).toThrow(/layer 3 does not exist/);
    expect(() => targetedIntervention([...KEPT, entry(5, 2, 4)], NMD, shape, 1, 'mem->gen')).toThrow(/listed twice/);
    expect(() => targetedIntervention([], NMD, shape, 1, 'mem->gen')).toThrow(/empty/);
    expect(() => targetedIntervention(KEPT, NMD.subarray(1), shape, 1, 'mem->gen')).toThrow(/NMD has 14 values/);
  });

  it('baseline (a) puts the same multiset of shifts on a random set of the same size; (b) draws uniform shifts bounded by v', () => {
    const t = targetedIntervention(KEPT, NMD, shape, 5, 'gen->mem');
    const a = baselineIntervention('random-neurons', t, shape, 123);
    expect(a.description).toMatchObject({ kind: 'random-neurons', direction: 'gen->mem', count: KEPT.length, seed: 123 });
    expect(values(a)).toEqual(values(t));
    expect(new Set(a.shifts.map((s) => s.layer * D + s.index)).size).toBe(KEPT.length); // distinct positions
    expect(new Set(nonzero(a))).not.toEqual(keptSet); // elsewhere
    for (const s of a.shifts) expect(at(a, s.layer * D + s.index)).toBe(s.value);
    expect(nonzero(a)).toHaveLength(KEPT.length);

    const b = baselineIntervention('uniform', t, shape, 123);
    const v = t.description.maxAbsShift;
    expect(b.shifts).toHaveLength(KEPT.length);
    expect(new Set(b.shifts.map((s) => s.layer * D + s.index)).size).toBe(KEPT.length);
    for (const s of b.shifts) expect(Math.abs(s.value)).toBeLessThanOrEqual(v);
    expect(values(b)).not.toEqual(values(t));
    expect(b.description.maxAbsShift).toBeLessThanOrEqual(v);

    // Positions: uniform over all L x d without replacement (every position is reachable).
    const rng = new Rng(7);
    const hits = new Array<number>(L * D).fill(0);
    for (let r = 0; r < 3000; r++) for (const j of drawPositions(L * D, 4, rng)) hits[j]++;
    for (const h of hits) expect(h / 3000).toBeGreaterThan(0.2); // 4/15 = 0.27 expected
    expect(() => drawPositions(5, 6, rng)).toThrow(/cannot draw 6/);
  });

  it('--layers: the ranking and both baselines stay within the given layers; all layers give the paper\'s draw', () => {
    const rho = Float32Array.from(NMD, (x) => x / 2);
    const within = rankNeurons(rho, NMD, L, D, 'ln2', 0.4, 'gpt2', [2]);
    expect(within).toHaveLength(2); // round(0.4 * 1 x 5)
    expect(within.map((e) => e.layer)).toEqual([2, 2]);
    expect(within.map((e) => e.index)).toEqual([4, 0]); // |rho| order within layer 2
    expect(rankNeurons(rho, NMD, L, D, 'ln2', 0.4, 'gpt2', [0, 1, 2])).toEqual(rankNeurons(rho, NMD, L, D, 'ln2', 0.4));
    expect(() => rankNeurons(rho, NMD, L, D, 'ln2', 0.4, 'gpt2', [3])).toThrow(/layer 3 does not exist/);
    expect(() => rankNeurons(rho, NMD, L, D, 'ln2', 0.4, 'gpt2', [1, 1])).toThrow(/repeats a layer/);
    const t = targetedIntervention(within, NMD, shape, 1, 'mem->gen');
    for (const kind of ['random-neurons', 'uniform'] as const) {
      for (let seed = 0; seed < 20; seed++) {
        expect(baselineIntervention(kind, t, shape, seed, [1, 2]).shifts.every((s) => s.layer === 1 || s.layer === 2)).toBe(true);
        // All layers listed = no list: the same draw as before the option existed.
        expect(baselineIntervention(kind, t, shape, seed, [0, 1, 2]).shifts).toEqual(baselineIntervention(kind, t, shape, seed).shifts);
      }
    }
  });

  it('is deterministic per seed', () => {
    const t = targetedIntervention(KEPT, NMD, shape, 5, 'mem->gen');
    for (const kind of ['random-neurons', 'uniform'] as const) {
      const x = baselineIntervention(kind, t, shape, 42);
      const y = baselineIntervention(kind, t, shape, 42);
      const z = baselineIntervention(kind, t, shape, 43);
      expect(x.vectors.map((v) => Array.from(v))).toEqual(y.vectors.map((v) => Array.from(v)));
      expect(x.vectors.map((v) => Array.from(v))).not.toEqual(z.vectors.map((v) => Array.from(v)));
    }
  });

  it('custom sets take their shifts from the NMD; picks parse from site:index lists', () => {
    const { site, picks } = parsePicks('blocks.2.ln2:3, blocks.0.ln2:1', shape);
    expect(site).toBe('ln2');
    expect(picks).toEqual([{ layer: 2, index: 3 }, { layer: 0, index: 1 }]);
    const c = customIntervention(picks, NMD, shape, site, 2, 'gen->mem');
    expect(c.description).toMatchObject({ kind: 'custom', count: 2, layers: [0, 2] });
    expect(at(c, 2 * D + 3)).toBe(Math.fround(-2 * NMD[2 * D + 3]));
    expect(nonzero(c)).toHaveLength(2);
    expect(() => parsePicks('blocks.3.ln2:1', shape)).toThrow(/layer 3 does not exist/);
    expect(() => parsePicks('blocks.0.ln2:5', shape)).toThrow(/neuron 5 does not exist/);
    expect(() => parsePicks('blocks.0.ln2:1,blocks.1.resid_pre:1', shape)).toThrow(/mix sites/);
    expect(() => parsePicks('ln2-7', shape)).toThrow(/site:index/);
    expect(() => customIntervention([{ layer: 0, index: 1 }, { layer: 0, index: 1 }], NMD, shape, 'ln2', 1, 'mem->gen')).toThrow(/listed twice/);
  });

  it('carries the paper numbers and settings per task and experiment', () => {
    expect(defaultAlpha('arithmetic')).toBe(5);
    expect(defaultAlpha('incontext')).toBe(1);
    expect(paperReference('arithmetic', 'arithmetic', 'same-run')?.cells).toContainEqual({ direction: 'mem->gen', method: 'targeted', pct: { gen: 70.3, mem: 28.1, other: 1.6 } });
    expect(paperReference('incontext', 'incontext', 'same-run')?.cells).toContainEqual({ direction: 'gen->mem', method: 'random-neurons', pct: { gen: 95.2, mem: 2.3, other: 2.5 } });
    expect(paperReference('incontext', 'arithmetic', 'inter-task')?.table).toBe('Table 4');
    expect(paperReference('arithmetic', 'arithmetic', 'intra-task')?.table).toBe('Table 3');
    expect(paperReference('cipher', 'cipher', 'same-run')).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------
// A real analysed run: runs/arithmetic-tiny when it has an analysis, else a copy of the dev run
// (a tiny GPT-2 on arithmetic, ~38% gen / ~38% mem) analysed here with 150 pairs.

const REPO_RUN = path.join(__dirname, '..', '..', 'runs', 'arithmetic-tiny');
const DEV_RUN = '/tmp/runs/arith-dev';
const repoAnalysed = fs.existsSync(analysisPath(REPO_RUN, 'neurons')) && fs.existsSync(path.join(REPO_RUN, RUN_FILES.model));
const haveRun = repoAnalysed || fs.existsSync(path.join(DEV_RUN, RUN_FILES.model));

/** Copies the run files (not checkpoints) of `from` to `to`; with `analysis`, its analysis too. */
function copyRun(from: string, to: string, analysis: boolean): void {
  fs.mkdirSync(to, { recursive: true });
  for (const f of [RUN_FILES.config, RUN_FILES.manifest, RUN_FILES.model, RUN_FILES.tokenizer]) fs.copyFileSync(path.join(from, f), path.join(to, f));
  if (analysis) fs.cpSync(path.join(from, 'analysis'), path.join(to, 'analysis'), { recursive: true });
}


describe.skipIf(!haveRun)('steer-eval and sweep on an analysed run', () => {
  const run = path.join(tmp, 'run');
  let setup: SteerSetup;
  let model: GPT2Inference;

  beforeAll(async () => {
    if (repoAnalysed) copyRun(REPO_RUN, run, true);
    else {
      copyRun(DEV_RUN, run, false);
      const { code } = await quiet(() => analyzeCommand(['--run', run, '--pairs', '150', '--threads', '1', '--no-probes']));
      expect(code).toBe(0);
    }
    setup = prepareSteering(run);
    model = await GPT2Inference.create(setup.run.cfg, setup.run.params, { site: setup.sourceInfo.site, runner: { threads: 1 }, batchSize: 256 });
  });
  afterAll(async () => {
    await model?.release();
  });

  it('builds the Table 1 layout with n per cell from starting inputs of the right behaviour', async () => {
    const n = 30;
    const { file, cells, starts } = await steerEval({ setup, model, topN: 0.1, alpha: 5, n, seed: 3 });
    expect(file.cells.map((c) => `${c.direction} ${c.method}`)).toEqual([
      'mem->gen targeted', 'mem->gen random-neurons', 'mem->gen uniform',
      'gen->mem targeted', 'gen->mem random-neurons', 'gen->mem uniform',
    ]);
    expect(starts.info.found).toEqual({ 'mem->gen': n, 'gen->mem': n });
    for (const c of file.cells) {
      expect(c.n).toBe(n);
      expect(c.counts.gen + c.counts.mem + c.counts.other).toBe(n);
      expect(c.pct.gen + c.pct.mem + c.pct.other).toBeCloseTo(100, 6);
      expect(c.success).toBe(c.direction === 'mem->gen' ? c.pct.gen : c.pct.mem);
      expect(c.intervention.count).toBe(file.count);
    }
    const site = setup.sourceInfo.site;
    expect(file).toMatchObject({ format: 'memgen-steering/1', site, topN: 0.1, alpha: 5, seed: 3, method: 'targeted' });
    expect(file.count).toBe(Math.round(0.1 * setup.sourceInfo.layers * setup.sourceInfo.d));
    expect(file.neurons.experiment).toBe('same-run');
    expect(file.paper?.table).toBe('Table 1');
    expect(cells[0].outputs).toHaveLength(n);

    // The starting sets, checked independently: every mem->gen input's unsteered output is mem,
    // every gen->mem input's is gen.
    const task = setup.run.task;
    for (const [dir, want] of [['mem->gen', 'mem'], ['gen->mem', 'gen']] as const) {
      const inputs = starts.inputs[dir];
      const res = await model.generate(inputs.map((x) => x.ids), { maxNewTokens: task.maxAnswerTokens, eosId: task.tokenizer.eoaId });
      inputs.forEach((x, i) => expect(task.classify(x.example, task.tokenizer.decode(res.tokens[i]))).toBe(want));
    }

    // A smaller n is a prefix of a larger one (same seed).
    const fewer = await drawStarts(task, model, { n: 10, seed: 3 });
    expect(fewer.inputs['mem->gen'].map((x) => x.example.prompt)).toEqual(starts.inputs['mem->gen'].slice(0, 10).map((x) => x.example.prompt));

    const text = formatSteeringTable(file);
    expect(text).toMatch(/targeted +\|/);
    expect(text).toMatch(/random neurons +\|/);
    expect(text).toMatch(/uniform +\|/);
    expect(text).toContain(`blocks.0.${site}`);
    expect(text).toContain('(70.3)'); // the paper's arithmetic mem->gen targeted % gen
    expect(text).toMatch(/% gen +% mem +% other +n/);
    expect(text).toMatch(/unsteered +\| \d\.\d{3} \/ \d\.\d{3}/);
  });

  it('--baseline-draws K pools K random draws in each baseline cell; draw 0 is the one-draw table\'s', async () => {
    const opts = { setup, model, topN: 0.1, alpha: 5, n: 10, seed: 6 };
    const one = await steerEval(opts);
    const three = await steerEval({ ...opts, baselineDraws: 3 });
    expect(three.file.baselineDraws).toBe(3);
    const draws = steeringInterventions(setup, { ...opts, baselineDraws: 3 });
    for (const [i, c] of three.cells.entries()) {
      if (c.method === 'targeted') {
        expect(c.counts).toEqual(one.cells[i].counts);
        continue;
      }
      expect(c).toMatchObject({ n: 30, intervention: { draws: 3 } });
      const each = await Promise.all(draws[i].draws.map((iv) => runDraws(setup.run.task, model, three.starts.inputs[c.direction], [iv], {}, () => {})));
      expect(each[0].counts).toEqual(one.cells[i].counts);
      expect(new Set(each.map((e) => e.intervention.seed)).size).toBe(3); // three different draws
      for (const k of ['gen', 'mem', 'other'] as const) expect(c.counts[k]).toBe(each.reduce((s, e) => s + e.counts[k], 0));
    }
    expect(formatSteeringTable(three.file)).toContain('each cell pools 3 random draws');

    // The sweep pools the same way: its baseline cells at the table's setting are the table's.
    const sw = await sweep({ setup, model, alphas: [5], topNs: [0.1], n: 10, seed: 6, starts: three.starts, baselineDraws: 3 });
    expect(sw.file.baselineDraws).toBe(3);
    for (const c of sw.file.cells) {
      const same = three.file.cells.find((t) => t.direction === c.direction && t.method === c.method)!;
      expect([c.n, c.counts]).toEqual([same.n, same.counts]);
    }
    expect(formatSweep(sw.file)).toContain('each cell pools 3 random draws');
  });

  it('leaves every output unchanged at alpha 0 (steered == unsteered)', async () => {
    const { cells, starts } = await steerEval({ setup, model, topN: 0.1, alpha: 0, n: 15, seed: 4 });
    for (const c of cells) {
      expect(c.intervention.maxAbsShift).toBe(0);
      expect(c.outputs).toEqual(starts.inputs[c.direction].map((x) => x.output));
      expect(c.success).toBe(0);
      expect(c.pFirst.gen).toBeCloseTo(starts.info.pFirst[c.direction].gen, 5);
      expect(c.pFirst.mem).toBeCloseTo(starts.info.pFirst[c.direction].mem as number, 5);
    }
    // Unsteered: mem starts put more weight on the mem token first, gen starts on the gen token.
    expect(starts.info.pFirst['mem->gen'].mem as number).toBeGreaterThan(starts.info.pFirst['mem->gen'].gen);
    expect(starts.info.pFirst['gen->mem'].gen).toBeGreaterThan(starts.info.pFirst['gen->mem'].mem as number);
  });

  it('sweeps alpha x topN on shared starting inputs, re-ranking per topN', async () => {
    const { file } = await sweep({ setup, model, alphas: [5, 0], topNs: [0.05, 0.2], n: 8, seed: 5 });
    expect(file.alphas).toEqual([0, 5]);
    expect(file.cells).toHaveLength(2 * 2 * 2 * 3);
    const L2 = setup.sourceInfo.layers * setup.sourceInfo.d;
    for (const c of file.cells) {
      expect(c.n).toBe(8);
      expect(c.count).toBe(Math.round(c.topN * L2));
      if (c.alpha === 0) expect(c.success).toBe(0);
    }
    expect(file.complete).toBe(true);
    expect(file.best).not.toBeNull();
    expect(bestCell(file.cells, true)).toEqual(file.best);
    const text = formatSweep(file);
    expect(text).toMatch(/mem->gen: targeted, % gen \/ % other/);
    expect(text).toMatch(/alpha \\ topN +0\.05 +0\.2/);

    // Ctrl-C between generate calls: the finished cells, complete = false.
    let calls = 0;
    const cut = await sweep({ setup, model, alphas: [5, 0], topNs: [0.05, 0.2], n: 8, seed: 5, shouldStop: () => ++calls > 4 });
    expect(cut.file.complete).toBe(false);
    expect(cut.file.cells.length).toBeGreaterThan(0);
    expect(cut.file.cells.length).toBeLessThan(file.cells.length);
    expect(cut.file.cells).toEqual(file.cells.slice(0, cut.file.cells.length));
    expect(formatSweep(cut.file)).toMatch(/interrupted: \d+ cells finished/);
    await expect(steerEval({ setup, model, topN: 0.1, alpha: 5, n: 8, seed: 5, shouldStop: () => true })).rejects.toThrow(/interrupted/);
  });

  it('refuses a run with no analysis, a stale analysis, and neurons of another shape', async () => {
    const bare = path.join(tmp, 'bare');
    copyRun(run, bare, false);
    expect(() => prepareSteering(bare)).toThrow(/has no analysis.*run `memgen analyze --run .*bare` first/);
    await expect(steerEvalCommand(['--run', bare])).rejects.toThrow(/memgen analyze --run/);

    // Same model under another folder: same-run experiment (identical model hash).
    expect(prepareSteering(bare, { neuronsFrom: run }).sourceInfo.experiment).toBe('same-run');

    // Stale: the analysis records another model.
    const stale = path.join(tmp, 'stale');
    copyRun(run, stale, true);
    const nf = JSON.parse(fs.readFileSync(analysisPath(stale, 'neurons'), 'utf8')) as NeuronsFile;
    fs.writeFileSync(analysisPath(stale, 'neurons'), JSON.stringify({ ...nf, modelHash: 'sha256:0000' }));
    expect(() => prepareSteering(stale)).toThrow(/made for another model.*--allow-stale/);
    const allowed = prepareSteering(stale, { allowStale: true });
    expect(allowed.warnings.join(' ')).toMatch(/stale neurons/);

    // Neurons found on a model of another shape.
    const other = path.join(tmp, 'other-shape');
    fs.mkdirSync(path.join(other, 'analysis'), { recursive: true });
    fs.writeFileSync(path.join(other, RUN_FILES.model), 'not a model');
    fs.writeFileSync(analysisPath(other, 'neurons'), JSON.stringify({ ...nf, layers: 2, d: 8, neurons: [] }));
    writeNpy(analysisPath(other, 'nmd'), new Float32Array(16), [2, 8]);
    writeNpy(analysisPath(other, 'rho'), new Float32Array(16), [2, 8]);
    expect(() => prepareSteering(run, { neuronsFrom: other })).toThrow(/found on a model of 2 layers x 8/);
  });

  it('the commands write steering.json and sweep.json', async () => {
    const se = await quiet(() => steerEvalCommand(['--run', run, '--n', '10', '--threads', '1', '--seed', '1']));
    expect(se.code).toBe(0);
    const f = JSON.parse(fs.readFileSync(steerPath(run, 'steering'), 'utf8')) as SteeringFile;
    expect(f).toMatchObject({ format: 'memgen-steering/1', alpha: 5, topN: 0.1, seed: 1 });
    expect(f.cells).toHaveLength(6);
    expect(se.out).toContain('in parentheses: the paper\'s Table 1');

    const last = setup.sourceInfo.layers - 1;
    const pk = await quiet(() => steerEvalCommand(['--run', run, '--n', '5', '--threads', '1', '--pick', `blocks.${last}.${setup.sourceInfo.site}:7,blocks.0.${setup.sourceInfo.site}:1`, '--alpha', '2']));
    expect(pk.code).toBe(0);
    const p = JSON.parse(fs.readFileSync(steerPath(run, 'steering'), 'utf8')) as SteeringFile;
    expect(p).toMatchObject({ method: 'custom', count: 2, topN: null, alpha: 2 });
    expect(p.cells[0].intervention.layers).toEqual([0, last]);
    await expect(steerEvalCommand(['--run', run, '--pick', `blocks.9.${setup.sourceInfo.site}:1`])).rejects.toThrow(/--pick: .*layer 9 does not exist/);

    // --layers and --steer-at: recorded and printed; bad values refused before any generation.
    const ly = await quiet(() => steerEvalCommand(['--run', run, '--n', '5', '--threads', '1', '--layers', String(last), '--topn', '0.5', '--steer-at', 'prompt']));
    expect(ly.code).toBe(0);
    const lf = JSON.parse(fs.readFileSync(steerPath(run, 'steering'), 'utf8')) as SteeringFile;
    expect(lf).toMatchObject({ layers: [last], steerAt: 'prompt', count: Math.round(0.5 * setup.sourceInfo.d) });
    for (const c of lf.cells) expect(c.intervention.layers).toEqual([last]);
    expect(ly.out).toContain(`of layers ${last} (1 x ${setup.sourceInfo.d}) neurons`);
    expect(ly.out).toContain('shift at the last prompt position only');
    await expect(steerEvalCommand(['--run', run, '--layers', '9'])).rejects.toThrow(/--layers 9: layer 9 does not exist/);
    await expect(steerEvalCommand(['--run', run, '--steer-at', 'first'])).rejects.toThrow(/--steer-at must be one of all, prompt, got first/);
    await expect(steerEvalCommand(['--run', run, '--layers', '0', '--pick', `blocks.0.${setup.sourceInfo.site}:1`])).rejects.toThrow(/give one of them/);
    await expect(steerEvalCommand(['--run', run, '--baseline-draws', '0'])).rejects.toThrow(/--baseline-draws must be a positive integer/);

    const sw = await quiet(() => sweepCommand(['--run', run, '--n', '5', '--threads', '1', '--alphas', '1,5', '--topns', '0.1', '--no-baselines']));
    expect(sw.code).toBe(0);
    const s = JSON.parse(fs.readFileSync(steerPath(run, 'sweep'), 'utf8')) as SweepFile;
    expect(s).toMatchObject({ format: 'memgen-sweep/1', alphas: [1, 5], topNs: [0.1], baselines: false, complete: true });
    expect(s.cells).toHaveLength(2 * 2);
    expect(sw.out).toMatch(/alpha \\ topN/);
    expect(s).toMatchObject({ steerAt: 'all', layers: null });
  });
});
