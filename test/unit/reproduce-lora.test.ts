/**
 * `memgen reproduce --system lora` (engine/cli/commands/reproduce-lora.ts) end to end at toy sizes on
 * a toy stand-in base (2 layers x 32, 60 pretraining steps): five LoRA runs, their analyses, Figure 5,
 * the seven steer-evals of Tables 2-5, the reports and the summary.
 *
 * A toy model gives no gen/mem pairs, so the analysis of the incontext and cipher runs is a stand-in that writes
 * an analysis as `memgen analyze` would (pairs of real test inputs, seeded random representations,
 * then the real writeStatistics): steering, the transfer tables, Figure 5 and the reports then run for
 * real. The arithmetic runs go through the real `memgen analyze`, which finds no pair on the toy model:
 * that NoPairsError must be reported (not thrown), and Table 3 arithmetic and Table 4 arithmetic ->
 * incontext marked "no pairs".
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANALYSIS_FILES, analysisDir } from '../../engine/analysis/files';
import type { PairRecord } from '../../engine/analysis/files';
import { writeNpy } from '../../engine/analysis/npy';
import { UsageError } from '../../engine/cli/args';
import { analyzeCommand, writeStatistics } from '../../engine/cli/commands/analyze';
import { COMMITTED_BASE, type LoraReproduceSummary, recipeArgs, recordedPretrainStages, reproduceLoraCommand } from '../../engine/cli/commands/reproduce-lora';
import { reproduceCommand } from '../../engine/cli/commands/reproduce';
import { loraSteerRun } from '../../engine/runs/lora-run';
import { RunError, sha256File } from '../../engine/runs/run';
import { Rng } from '../../engine/util/rng';
import { hashFolder, pretrainToyBase } from './toy-base';

let tmp: string;
let base: string;

/** An analysis as `memgen analyze` writes it, with `P` pairs of real test inputs and seeded random representations. */
function plantAnalysis(runDir: string, P = 24): void {
  const run = loraSteerRun(runDir);
  const dir = analysisDir(runDir);
  fs.mkdirSync(dir, { recursive: true });
  const L = run.cfg.nLayer;
  const d = run.cfg.nEmbd;
  const rng = new Rng(7);
  const gen = new Float32Array(P * L * d).map(() => rng.normal() + 0.5);
  const mem = new Float32Array(P * L * d).map(() => rng.normal());
  writeNpy(path.join(dir, ANALYSIS_FILES.hiddenGen), gen, [P, L, d]);
  writeNpy(path.join(dir, ANALYSIS_FILES.hiddenMem), mem, [P, L, d]);
  const records: PairRecord[] = Array.from({ length: P }, (_, i) => {
    const ex = run.task.test(rng);
    const re = run.task.rephrase(ex, rng);
    return {
      index: i, input: i, tries: 1, genMember: 'input', original: { prompt: ex.prompt, output: ex.genAnswer, behaviour: 'gen' },
      rephrasing: { prompt: re.prompt, output: re.memAnswer ?? '?', behaviour: 'mem' }, genAnswer: ex.genAnswer, memAnswer: ex.memAnswer,
    };
  });
  fs.writeFileSync(path.join(dir, ANALYSIS_FILES.pairs), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeStatistics(run, dir, { pairs: P, resumedFrom: 0, tried: P, counts: { gen: P, mem: P, other: 0 }, stopReason: 'maxPairs', seconds: 0, totalSeconds: 0, pairsPerSecond: 0 },
    'resid_post', 0.1, run.modelHash, 'llama');
}

/** The analysis stand-in (see the header): the real analyze for arithmetic, a planted analysis for the others. */
const analyze = async (argv: string[]): Promise<number> => {
  const runDir = argv[argv.indexOf('--run') + 1];
  if (path.basename(runDir).startsWith('arithmetic')) return analyzeCommand(argv);
  if (!argv.includes('--resume')) plantAnalysis(runDir);
  return 0;
};

const TOY = ['--epochs', '1', '--train-size', '16', '--eval-n', '8', '--pairs', '24', '--analyze-tries', '40', '--n', '3', '--max-tries', '40', '--threads', '1'];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-reproduce-lora-'));
  base = path.join(tmp, 'base');
  await pretrainToyBase(base, 60);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('memgen reproduce --system lora', () => {
  it('runs every stage, reports the NoPairs failure with its dependants, writes the summary, and leaves the base unchanged', async () => {
    const before = hashFolder(base);
    const out = path.join(tmp, 'repro');
    const code = await reproduceLoraCommand(['--base', base, '--out', out, ...TOY], { analyze });
    expect(code).toBe(1); // the arithmetic analyses failed (no pairs)
    expect(hashFolder(base)).toEqual(before);

    const s = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as LoraReproduceSummary;
    expect(s.base).toMatchObject({ given: true, unchanged: true });
    expect(s.runs.map((r) => r.name)).toEqual(['arithmetic-lora-s0', 'incontext-lora-s0', 'incontext-lora-s1', 'arithmetic-lora-s1', 'cipher-lora-s0']);
    for (const r of s.runs) {
      expect(fs.existsSync(path.join(r.dir, 'adapter_model.safetensors'))).toBe(true);
      expect(fs.existsSync(path.join(r.dir, 'report', 'index.html'))).toBe(true);
    }
    // the in-context adapters' kept line says what guessing among the story's colours scores
    expect(s.runs[1].kept).toMatch(/^step \d+: gen [\d.]+% mem [\d.]+% \(n 8; by guessing gen [\d.]+% mem [\d.]+%\)$/);
    expect(s.runs[0].kept).toMatch(/^step \d+: gen [\d.]+% mem [\d.]+% \(n 8\)$/);
    const arith = s.runs[0].stages.find((x) => x.stage === 'analyze')!;
    expect(arith).toMatchObject({ status: 'failed', noPairs: true });
    expect(arith.detail).toMatch(/no pair/);

    const entry = (table: string, neurons: string, task: string) => s.tables.find((e) => e.table === table && e.neuronsTask === neurons && e.task === task)!;
    // Done: Table 2 incontext, Table 3 incontext, Table 4 incontext -> arithmetic; each with both directions and n.
    for (const e of [entry('Table 2', 'incontext', 'incontext'), entry('Table 3', 'incontext', 'incontext'), entry('Table 4', 'incontext', 'arithmetic'), entry('Table 5', 'cipher', 'cipher')]) {
      expect(e.status).toBe('done');
      expect(e.cells.map((c) => c.direction)).toEqual(['mem->gen', 'gen->mem']);
      for (const c of e.cells) {
        expect(Number.isInteger(c.n)).toBe(true);
        expect(c.n).toBeLessThanOrEqual(3);
      }
      expect(fs.existsSync(e.file!)).toBe(true);
    }
    expect(entry('Table 2', 'incontext', 'incontext').cells[0].paperTargeted).toBe(65.9);
    expect(entry('Table 3', 'incontext', 'incontext')).toMatchObject({ topN: 0.05, alpha: 3 });
    expect(entry('Table 5', 'cipher', 'cipher')).toMatchObject({ topN: 0.1, alpha: 5 });
    expect(entry('Table 5', 'cipher', 'cipher').cells.map((c) => c.paperTargeted)).toEqual([30.8, 29.4]);
    expect(entry('Table 4', 'incontext', 'arithmetic').cells[1].paperTargeted).toBe(9.3);
    // The transfer tables do not overwrite the run's own table.
    expect(entry('Table 4', 'incontext', 'arithmetic').file).toBe(path.join(out, 'arithmetic-lora-s0', 'analysis', 'steering-from-incontext-lora-s0.json'));
    expect(fs.existsSync(path.join(out, 'incontext-lora-s1', 'analysis', 'steering-from-incontext-lora-s0.json'))).toBe(true);
    // Blocked by the arithmetic NoPairs: marked "no pairs" with the reason.
    for (const e of [entry('Table 2', 'arithmetic', 'arithmetic'), entry('Table 3', 'arithmetic', 'arithmetic'), entry('Table 4', 'arithmetic', 'incontext')]) {
      expect(e.status).toBe('no pairs');
      expect(e.reason).toMatch(/no pair/);
    }
    // The seed-0 adapter with an analysis is swept; the one without pairs is not.
    expect(fs.existsSync(path.join(out, 'incontext-lora-s0', 'analysis', 'sweep.json'))).toBe(true);
    expect(s.runs[0].stages.find((x) => x.stage === 'sweep')).toMatchObject({ status: 'skipped' });
    // Figure 5 for the two analysed runs.
    expect(s.figure5.map((f) => f.run)).toEqual(['incontext-lora-s0', 'incontext-lora-s1', 'cipher-lora-s0']);
    expect(Object.keys(s.figure5[0].adapterShare)).toEqual(['q_proj', 'v_proj', 'gate_proj', 'up_proj', 'down_proj']); // every adapted module
    expect(s.figure5[0].adapterShare.q_proj).toHaveLength(2);

    const md = fs.readFileSync(path.join(out, 'summary.md'), 'utf8');
    for (const t of ['Table 2', 'Table 3', 'Table 4', 'Table 5', 'Figure 5', 'paper targeted / random', 'paper targeted / uniform', 'no pairs (see below)']) expect(md).toContain(t);
    expect(fs.readdirSync(path.join(out, 'logs')).length).toBeGreaterThan(0);
    // The report shows the transfer table.
    const html = fs.readFileSync(path.join(out, 'incontext-lora-s1', 'report', 'index.html'), 'utf8');
    expect(html).toContain('With the neurons of');
    expect(html).toContain('Table 3');
    // A LoRA run's provenance lists its adapter files, not a GPT-2 run's model files.
    expect(html).toContain('adapter_model.safetensors');
    expect(html).not.toContain('Hugging Face GPT2Config');
    expect(fs.readFileSync(path.join(out, 'incontext-lora-s0', 'report', 'index.html'), 'utf8')).toContain("the paper's Figure 5");

    // Refused without --force (before any work); --force moves the old folders aside.
    await expect(reproduceLoraCommand(['--base', base, '--out', out, ...TOY], { analyze })).rejects.toThrow(RunError);
    await expect(reproduceLoraCommand(['--base', base, '--out', out, '--force', ...TOY.slice(0, 6), '--threads', '1'], { analyze: async () => { throw new RunError('stop here'); } })).resolves.toBe(1);
    expect(fs.readdirSync(out).some((f) => /^incontext-lora-s0\.replaced-/.test(f))).toBe(true);
    expect(hashFolder(base)).toEqual(before);
  });

  it.skipIf(!fs.existsSync(path.join(__dirname, '..', '..', 'dist', 'cli.js')) || os.availableParallelism() < 2)('without --threads the trainings run two at a time in child processes with one thread: the same adapters as one after the other', async () => {
    const out = path.join(tmp, 'lanes');
    const code = await reproduceLoraCommand(['--base', base, '--out', out, ...TOY.slice(0, -2)], { analyze });
    expect(code).toBe(1); // as the run one after the other: the arithmetic analyses find no pairs
    const s = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as LoraReproduceSummary;
    for (const r of s.runs) {
      expect(r.stages.find((x) => x.stage === 'train')).toMatchObject({ status: 'done' });
      const adapter = (dir: string) => sha256File(path.join(dir, 'adapter_model.safetensors'));
      expect(adapter(r.dir)).toBe(adapter(path.join(tmp, 'repro', r.name)));
      expect(fs.readFileSync(path.join(out, 'logs', `${r.name}-train.log`), 'utf8')).toMatch(/kept step \d+/);
    }
  });

  it('--pretrain remakes a base with the commands its manifest records (every stage), without --out / --init-from / --resume / --force', () => {
    const dir = path.join(tmp, 'recorded');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ command: 'memgen pretrain --arch llama --preset small --out /elsewhere/base --steps 3000 --lr 3e-3 --resume --threads 1' }));
    expect(recordedPretrainStages(dir)).toEqual([['--arch', 'llama', '--preset', 'small', '--steps', '3000', '--lr', '3e-3', '--threads', '1']]);
    const second = 'memgen pretrain --arch llama --preset small --init-from /elsewhere/base --out /elsewhere/base2 --steps 2000 --force';
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ command: second, stages: ['memgen pretrain --arch llama --preset small --out /elsewhere/base --steps 3000', second] }));
    expect(recordedPretrainStages(dir)).toEqual([['--arch', 'llama', '--preset', 'small', '--steps', '3000'], ['--arch', 'llama', '--preset', 'small', '--steps', '2000']]);
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ command: 'memgen train --task arithmetic' }));
    expect(() => recordedPretrainStages(dir)).toThrow(/not a `memgen pretrain` command/);
  });

  it('the default base is the committed runs/base-llama-tiny, and --pretrain remakes its four stages in order (the last splits capital runs)', () => {
    expect(COMMITTED_BASE).toBe(path.join('runs', 'base-llama-tiny'));
    const root = path.resolve(__dirname, '../..');
    const stages = recordedPretrainStages(path.join(root, COMMITTED_BASE));
    expect(stages).toHaveLength(4);
    for (const s of stages) expect(s.slice(0, 4)).toEqual(['--arch', 'llama', '--preset', 'tiny']);
    for (const s of stages) expect(s).toEqual(expect.arrayContaining(['--pack-isolated', '--hop-within-kind']));
    expect(stages.map((s) => s[s.indexOf('--mix') + 1])).toEqual(['like:1', 'like:0.5,colour:1', 'sum4:0.5,colour:0.4,like:0.1', 'sum4:0.35,colour:0.25,like:0.05,tag:0.1,letters:0.25']);
    expect(stages.map((s) => s.includes('--split-capitals'))).toEqual([false, false, false, true]);
  });

  it('every recipe adapts the MLPs too; in-context as the paper\'s released config (one colour a name); --targets sets every adapter\'s modules', async () => {
    for (const task of ['arithmetic', 'incontext', 'cipher'] as const) expect(recipeArgs(task, null)).toEqual(expect.arrayContaining(['--targets', 'q_proj,v_proj,gate_proj,up_proj,down_proj']));
    expect(recipeArgs('incontext', null).join(' ')).toContain('--task-scale paper --colours-per-name 1 --contradict-rate 0');
    for (const task of ['arithmetic', 'incontext', 'cipher'] as const) {
      const r = recipeArgs(task, 'q_proj,v_proj');
      expect(r.filter((x) => x === '--targets')).toHaveLength(1);
      expect(r[r.indexOf('--targets') + 1]).toBe('q_proj,v_proj');
    }
    await expect(reproduceCommand(['--system', 'lora', '--base', base, '--targets', 'q_proj,wq'])).rejects.toThrow(/unknown --targets module 'wq'; choose from: q_proj/);
    await expect(reproduceCommand(['--system', 'lora', '--base', base, '--steer-at', 'generated'])).rejects.toThrow(/--steer-at must be one of all, prompt, got generated/);
    await expect(reproduceCommand(['--system', 'lora', '--base', base, '--baseline-draws', '0'])).rejects.toThrow(/--baseline-draws must be a positive integer, got 0/);
  });

  it('refuses bad arguments before any work; --system gpt2 stays the default', async () => {
    await expect(reproduceCommand(['--system', 'bert'])).rejects.toThrow(UsageError);
    await expect(reproduceCommand(['--system', 'lora', '--base', path.join(tmp, 'nowhere'), '--out', path.join(tmp, 'x')])).rejects.toThrow(/config\.json/);
    await expect(reproduceCommand(['--system', 'lora', '--base', base, '--out', path.join(base, 'inside')])).rejects.toThrow(/inside the base/);
    await expect(reproduceCommand(['--system', 'lora', '--base', base, '--pretrain-steps', '3'])).rejects.toThrow(/--pretrain-steps/);
    await expect(reproduceCommand(['--system', 'lora', '--base', base, '--preset', 'small'])).rejects.toThrow(/--preset picks the stand-in base to pretrain/);
    await expect(reproduceCommand(['--system', 'lora', '--pretrain', '--preset', 'huge'])).rejects.toThrow(/unknown preset 'huge'; choose one of: tiny, deep, small/);
    await expect(reproduceCommand(['--system', 'lora', '--base', base, '--pretrain'])).rejects.toThrow(/contradict/);
    await expect(reproduceCommand(['--system=gpt2', '--reuse', '--steps', '5'])).rejects.toThrow(/--steps/); // the GPT-2 pipeline's own refusal
  });
});
