/**
 * The report (engine/report/*, `memgen report`): the heatmap binning (sorted per layer, max per bin,
 * shapes, size at 28 x 3072), well-formed SVG (parsed by Python's xml.dom.minidom where python3
 * exists, and a tag-balance check always), the steering verdict, and the HTML report of a copy of the
 * committed runs/arithmetic-tiny: section titles, site names, the paper's numbers, no external
 * references, staleness and missing-file notes. Plus the refusals of `memgen reproduce` (its end-to-end
 * run takes minutes: measured by hand, see the report of the task).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { reportCommand } from '../../engine/cli/commands/report';
import { reproduceCommand } from '../../engine/cli/commands/reproduce';
import type { ProbesFile } from '../../engine/analysis/probe-layers';
import { MAX_COLUMNS, binSortedAbs, nmdFigure, probeFigure, sweepFigure, trainingFigure } from '../../engine/report/figures';
import { writeReport } from '../../engine/report/html';
import { COLOR_LEVELS, esc, niceTicks, textWidth, tickLabel } from '../../engine/report/svg';
import { steeringVerdict, twoProportionZ } from '../../engine/report/verdict';
import { RunError } from '../../engine/runs/run';
import type { SteeringFile, SweepCell, SweepFile } from '../../engine/steer/files';
import { Rng } from '../../engine/util/rng';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-report-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const PYTHON = ['/usr/bin/python3', 'python3'].find((p) => {
  try {
    execFileSync(p, ['-c', 'import xml.dom.minidom'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
});

/** Parses every file with xml.dom.minidom (throws with Python's message on the first bad one). */
function parseXml(files: string[]): void {
  if (!PYTHON) return;
  execFileSync(PYTHON, ['-c', 'import sys, xml.dom.minidom\nfor f in sys.argv[1:]: xml.dom.minidom.parse(f)', ...files], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Tags balance (weak, but needs no Python): every opened element is closed in order. */
function balanced(svg: string): boolean {
  const stack: string[] = [];
  for (const m of svg.replace(/<\?xml[^>]*\?>/, '').matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    if (m[3] === '/') continue;
    if (m[1] === '/') {
      if (stack.pop() !== m[2]) return false;
    } else stack.push(m[2]);
  }
  return stack.length === 0;
}

describe('NMD heatmap binning', () => {
  it('sorts |values| descending within each layer; one column per neuron when d <= the column limit', () => {
    const v = Float32Array.from([0.1, -0.5, 0.3, 0, /* layer 1 */ -2, 1, -0.25, 4]);
    const b = binSortedAbs(v, 2, 4);
    expect(b.rows).toBe(2);
    expect(b.cols).toBe(4);
    expect(b.binSize).toEqual([1, 1]);
    expect(Array.from(b.values.subarray(0, 4))).toEqual([0.5, 0.3, 0.1, 0].map(Math.fround));
    expect(Array.from(b.values.subarray(4, 8))).toEqual([4, 2, 1, 0.25]);
  });

  it('bins the sorted ranks into at most maxColumns columns, each the max |NMD| of its bin', () => {
    // d = 10 into 4 bins: ranks [0,2) [2,5) [5,7) [7,10)
    const row = [1, -10, 3, 7, -2, 5, 9, -4, 6, 8];
    const b = binSortedAbs(row, 1, 10, 4);
    expect(b.cols).toBe(4);
    expect(b.binSize).toEqual([2, 3]);
    expect(Array.from(b.values)).toEqual([10, 8, 5, 3]); // sorted: 10 9 | 8 7 6 | 5 4 | 3 2 1
    // non-finite values count as 0, never NaN
    expect(Array.from(binSortedAbs([NaN, 2, Infinity], 1, 3).values)).toEqual([2, 0, 0]);
    expect(() => binSortedAbs([1, 2, 3], 2, 2)).toThrow(/needs 4 values/);
  });

  it('keeps 28 x 3072 small: 400 columns, non-increasing rows, column 0 = the layer max, a compact SVG', () => {
    const L = 28;
    const d = 3072;
    const rng = new Rng(7);
    const v = Float32Array.from({ length: L * d }, (_, j) => rng.normal() * 0.01 * (1 + Math.floor(j / d) / 4));
    const b = binSortedAbs(v, L, d);
    expect(b.cols).toBe(MAX_COLUMNS);
    expect(b.values.length).toBe(L * MAX_COLUMNS);
    expect(b.binSize).toEqual([7, 8]);
    for (let l = 0; l < L; l++) {
      let max = 0;
      for (let i = 0; i < d; i++) max = Math.max(max, Math.abs(v[l * d + i]));
      expect(b.values[l * b.cols]).toBe(max);
      for (let k = 1; k < b.cols; k++) expect(b.values[l * b.cols + k]).toBeLessThanOrEqual(b.values[l * b.cols + k - 1]);
    }
    const names = Array.from({ length: L }, (_, l) => `blocks.${l}.ln2`);
    const { svg } = nmdFigure(v, L, d, names);
    const rects = (svg.match(/<rect /g) ?? []).length;
    expect(rects).toBeLessThanOrEqual(L * COLOR_LEVELS + 40);
    expect(svg.length).toBeLessThan(250_000);
    expect(svg).toContain('blocks.27.ln2');
    expect(svg).toContain('bins of max |NMD|');
    expect(balanced(svg)).toBe(true);
    const file = path.join(tmp, 'big.svg');
    fs.writeFileSync(file, svg);
    parseXml([file]);
  });
});

// ---------------------------------------------------------------------------------------------
// Hand-made files.

function probesFixture(L: number): ProbesFile {
  const layer = (l: number, acc: number) => ({ layer: l, site: `blocks.${l}.ln2`, accuracy: acc, ci: [acc - 0.08, acc + 0.07] as [number, number], n: 150, valAccuracy: acc, epochs: 10, lr: 1e-5 });
  return {
    format: 'memgen-probes/1', site: 'ln2', pairs: 500, split: { trainPairs: 350, valPairs: 75, testPairs: 75 }, chance: 0.5, seed: 0,
    mlp: Array.from({ length: L }, (_, l) => layer(l, 0.5 + 0.02 * l)), logistic: Array.from({ length: L }, (_, l) => layer(l, 0.55 + 0.03 * l)),
  };
}

function sweepFixture(): SweepFile {
  const cells: SweepCell[] = [];
  for (const alpha of [1, 5]) {
    for (const topN of [0.1, 0.2]) {
      for (const direction of ['mem->gen', 'gen->mem'] as const) {
        for (const method of ['targeted', 'random-neurons', 'uniform'] as const) {
          const success = method === 'targeted' ? alpha * topN * 40 : 2;
          const to = direction === 'mem->gen' ? 'gen' : 'mem';
          const pct = { gen: 0, mem: 0, other: 1, [to]: success };
          cells.push({ alpha, topN, count: 10, direction, method, n: 50, counts: { gen: 0, mem: 0, other: 0 }, pct: pct as SweepCell['pct'], success, pFirst: { gen: 0.2, mem: 0.6 }, maxAbsShift: 0.1, layers: [0, 1] });
        }
      }
    }
  }
  const starts = { seed: 1, wanted: 50, found: { 'mem->gen': 50, 'gen->mem': 50 }, tried: 200, counts: { gen: 90, mem: 80, other: 30 }, maxTries: 1500, complete: true, pFirst: { 'mem->gen': { gen: 0.2, mem: 0.6 }, 'gen->mem': { gen: 0.7, mem: 0.2 } } };
  return {
    format: 'memgen-sweep/1', run: 'x', task: 'arithmetic', taskDescription: 'arithmetic <tiny> & "quoted"', modelHash: 'sha256:00', site: 'ln2',
    neurons: { run: 'x', task: 'arithmetic', modelHash: 'sha256:00', pairs: 500, site: 'ln2', layers: 4, d: 128, experiment: 'same-run', stale: null },
    alphas: [1, 5], topNs: [0.1, 0.2], baselines: true, seed: 0, starts, cells, best: null, paperSetting: { topN: 0.1, alpha: 5 }, complete: true, warnings: [], createdAt: '', seconds: 1,
  };
}

function steeringFixture(t: [number, number], b: [number, number], n = 200): SteeringFile {
  const cell = (direction: 'mem->gen' | 'gen->mem', method: 'targeted' | 'random-neurons' | 'uniform', success: number) => ({
    direction, method, n, counts: { gen: 0, mem: 0, other: 0 }, success, pFirst: { gen: 0, mem: 0 }, examples: [],
    pct: direction === 'mem->gen' ? { gen: success, mem: 100 - success, other: 0 } : { gen: 100 - success, mem: success, other: 0 },
    intervention: { kind: method, direction, alpha: 5, site: 'ln2', seed: null, count: 51, layers: [0], sites: ['blocks.0.ln2'], perLayer: [51], maxAbsShift: 0.1 },
  });
  return {
    paper: { table: 'Table 1', model: 'GPT-2', topN: 0.1, alpha: 5, note: '', cells: [
      { direction: 'mem->gen', method: 'targeted', pct: { gen: 70.3, mem: 28.1, other: 1.6 } }, { direction: 'mem->gen', method: 'random-neurons', pct: { gen: 6.3, mem: 92.1, other: 1.6 } },
      { direction: 'gen->mem', method: 'targeted', pct: { gen: 14.7, mem: 67.6, other: 17.7 } }, { direction: 'gen->mem', method: 'random-neurons', pct: { gen: 100, mem: 0, other: 0 } },
    ] },
    cells: [cell('mem->gen', 'targeted', t[0]), cell('mem->gen', 'random-neurons', b[0]), cell('mem->gen', 'uniform', 0), cell('gen->mem', 'targeted', t[1]), cell('gen->mem', 'random-neurons', b[1]), cell('gen->mem', 'uniform', 0)],
  } as unknown as SteeringFile;
}

describe('figures and verdict', () => {
  it('every figure is well-formed SVG with escaped text', () => {
    const files: Record<string, string> = {
      'probes.svg': probeFigure(probesFixture(12)),
      'sweep.svg': sweepFigure(sweepFixture()),
      'training.svg': trainingFigure([{ step: 0, gen: 0, mem: 0, other: 1, guess: 0.356, memGuess: 0.169 }, { step: 250, gen: 0.2, mem: 0.4, other: 0.4, guess: 0.356, memGuess: 0.169 }], 250),
      'nmd.svg': nmdFigure(Float32Array.from({ length: 4 * 8 }, (_, j) => Math.sin(j)), 4, 8, ['blocks.0.<ln2>', 'b&1', 'b"2', "b'3"]).svg,
    };
    for (const [name, svg] of Object.entries(files)) {
      expect(balanced(svg), name).toBe(true);
      expect(svg).not.toMatch(/<script|href=|xlink/);
      fs.writeFileSync(path.join(tmp, name), svg);
    }
    expect(files['nmd.svg']).toContain('blocks.0.&lt;ln2&gt;');
    expect(files['probes.svg']).toContain('blocks.11.ln2');
    expect(files['probes.svg']).toContain('chance 0.5');
    expect(files['training.svg']).toContain('guessing baseline 35.6%');
    expect(files['training.svg']).toContain('mem by the same guess 16.9%');
    expect(files['sweep.svg']).toContain('the paper&#39;s setting (topN 0.1, alpha 5)');
    parseXml(Object.keys(files).map((f) => path.join(tmp, f)));
    expect(esc(`<a href="x">&'`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&#39;');
  });

  it('every line of a sweep cell fits inside its cell, also in a 5 x 5 grid', () => {
    const f = sweepFixture();
    const alphas = [1, 5, 20, 60, 120];
    const topNs = [0.01, 0.02, 0.05, 0.1, 0.2];
    const cells = alphas.flatMap((alpha) => topNs.flatMap((topN) => f.cells.slice(0, 6).map((c) => ({ ...c, alpha, topN, success: 100, pct: { gen: 100, mem: 100, other: 100 } }))));
    const svg = sweepFigure({ ...f, alphas, topNs, cells });
    const width = Number(/<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)" height="38"/.exec(svg)![1]);
    const lines = [...svg.matchAll(/<text [^>]*font-size="([\d.]+)"[^>]*>([^<]*)<\/text>/g)].filter((m) => m[2].includes('other'));
    expect(lines.length).toBe(50);
    for (const [, size, s] of lines) expect(textWidth(s, Number(size)), s).toBeLessThanOrEqual(width - 6);
  });

  it('axis ticks are round numbers with as many digits as their step needs', () => {
    const t = niceTicks(0, 1, 4);
    expect(t).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(t.map((v) => tickLabel(v, t))).toEqual(['0.00', '0.25', '0.50', '0.75', '1.00']);
    const u = niceTicks(0, 0.0297, 2);
    expect(u).toEqual([0, 0.02]);
    expect(u.map((v) => tickLabel(v, u))).toEqual(['0.00', '0.02']);
    expect(niceTicks(0, 3000, 8).map((v, _i, all) => tickLabel(v, all))).toEqual(['0', '500', '1000', '1500', '2000', '2500', '3000']);
  });

  it('the verdict says targeted is not better than random unless the two-proportion z clears 1.96', () => {
    expect(twoProportionZ(0.5, 200, 0.5, 200)).toBe(0);
    expect(twoProportionZ(0, 200, 0, 200)).toBe(0);
    expect(twoProportionZ(70.3, 200, 6.3, 200)).toBeGreaterThan(10);
    const none = steeringVerdict(steeringFixture([0.5, 1], [0.5, 0]));
    expect(none.works).toBe(false);
    expect(none.line).toMatch(/^Targeted steering is not better than random here: mem → gen 0.5% gen vs 0.5% \(best baseline\); gen → mem 1.0% mem vs 0.0%/);
    expect(none.line).toContain('n = 200 per cell');
    expect(none.line).toContain('The paper (Table 1): 70.3% vs 6.3% and 67.6% vs 0.0%.');
    const one = steeringVerdict(steeringFixture([1, 48], [0.5, 0]));
    expect(one.line).toMatch(/^Targeted steering beats random only for gen → mem/);
    expect(steeringVerdict(steeringFixture([70, 60], [6, 0])).works).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// The report of a copy of the committed run.

const COMMITTED = 'runs/arithmetic-tiny';
const HAS_COMMITTED = fs.existsSync(path.join(COMMITTED, 'analysis', 'steering.json')) && fs.existsSync(path.join(COMMITTED, 'analysis', 'nmd.npy'));

/** A copy without checkpoints/, hidden vectors and probe weights (the report does not read them), and without sweep.json (the report then says how to make it). */
function copyCommitted(name: string): string {
  const dest = path.join(tmp, name);
  const skip = new Set(['checkpoints', 'report', 'hidden_gen.npy', 'hidden_mem.npy', 'probes.safetensors', 'sweep.json']);
  fs.cpSync(COMMITTED, dest, { recursive: true, filter: (s) => !skip.has(path.basename(s)) });
  return dest;
}

const SECTIONS = ['1. The run', '2. Neurons: NMD by layer', "3. Probe accuracy by layer", "4. Steering (the paper's Table 1)", '5. Sweep: alpha &times; topN', '6. Where the numbers came from'];

describe.skipIf(!HAS_COMMITTED)(`the HTML report of a copy of ${COMMITTED}`, () => {
  it('has every section, the site names, the paper\'s numbers and the verdict, and references nothing outside', async () => {
    const run = copyCommitted('arith');
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      expect(await reportCommand(['--run', run])).toBe(0);
    } finally {
      log.mockRestore();
    }
    const file = path.join(run, 'report', 'index.html');
    const html = fs.readFileSync(file, 'utf8');
    for (const s of SECTIONS) expect(html).toContain(s);
    const site = (JSON.parse(fs.readFileSync(path.join(run, 'analysis', 'analysis.json'), 'utf8')) as { site: string }).site;
    for (let l = 0; l < 4; l++) expect(html).toContain(`blocks.${l}.${site}`);
    for (const p of ['70.3', '6.3', '67.6', '28.1', '92.1', '14.7']) expect(html).toContain(`>${p}<`);
    expect(html).toContain('NMD = mean over the gen members &minus; mean over the mem members');
    // The committed steering (resid_pre, topN 0.05, alpha 60): 18.0 % vs 0 % and 63.0 % vs 0 % (docs/results.md).
    expect(html).toContain('Targeted steering beats random in both directions');
    expect(html).toContain('memgen sweep --run'); // no sweep.json yet: how to make it
    expect(html).toContain('chance 0.5');
    expect(html).toContain('step 3000');
    // self-contained: no external references, no scripts
    expect(html).not.toMatch(/src="http|<script|href="http|@import|url\(/i);
    expect(html).not.toMatch(/src=/i);
    expect((html.match(/<svg /g) ?? []).length).toBe(3); // training, NMD, probes
    const svgs = ['training.svg', 'nmd-heatmap.svg', 'probes.svg'].map((f) => path.join(run, 'report', f));
    for (const f of svgs) expect(fs.existsSync(f), f).toBe(true);
    parseXml(svgs);
    // links to the run's own files, relative
    expect(html).toContain('href="../manifest.json"');
    expect(html).toContain('href="../analysis/nmd.npy"');
    expect(fs.readdirSync(path.join(run, 'report')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('shows a sweep when sweep.json exists, warns when the analysis is stale, and --out puts the figures beside the file', () => {
    const run = copyCommitted('arith-stale');
    const summaryFile = path.join(run, 'analysis', 'analysis.json');
    const summary = JSON.parse(fs.readFileSync(summaryFile, 'utf8'));
    fs.writeFileSync(summaryFile, JSON.stringify({ ...summary, modelHash: 'sha256:' + '0'.repeat(64) }));
    fs.writeFileSync(path.join(run, 'analysis', 'sweep.json'), JSON.stringify({ ...sweepFixture(), modelHash: JSON.parse(fs.readFileSync(path.join(run, 'analysis', 'steering.json'), 'utf8')).modelHash }));
    const out = path.join(tmp, 'elsewhere', 'arith.html');
    const r = writeReport(run, { out, notes: ['reproduce: sweep <failed> here'] });
    expect(r.html).toBe(out);
    const html = fs.readFileSync(out, 'utf8');
    expect(html).toContain('<b>Stale:</b>');
    expect(html).toContain('was made for another model');
    expect(html).toContain('reproduce: sweep &lt;failed&gt; here');
    expect(html).toContain('href="arith-sweep.svg"');
    expect(fs.existsSync(path.join(tmp, 'elsewhere', 'arith-sweep.svg'))).toBe(true);
    expect(fs.existsSync(path.join(tmp, 'elsewhere', 'arith-nmd-heatmap.svg'))).toBe(true);
    expect((html.match(/<svg /g) ?? []).length).toBe(4);
  });

  it('shows a steering table at another setting (steer-eval --out analysis/steering-*.json) with its setting', () => {
    const run = copyCommitted('arith-variant');
    const steering = JSON.parse(fs.readFileSync(path.join(run, 'analysis', 'steering.json'), 'utf8'));
    fs.writeFileSync(path.join(run, 'analysis', 'steering-at-prompt.json'), JSON.stringify({ ...steering, steerAt: 'prompt', layers: [3], alpha: 7, baselineDraws: 5 }));
    const html = fs.readFileSync(writeReport(run, {}).html, 'utf8');
    expect(html).toContain('The same neurons at another setting (<code>analysis/steering-at-prompt.json</code>)');
    expect(html).toContain('alpha 7, the shift at the last prompt position only, layers 3');
    expect(html).toContain('at the last prompt position only (<code>--steer-at prompt</code>');
    expect(html).toContain('of layer 3 (1 &times; ');
    expect(html).toContain('Each baseline cell pools 5 random draws');
    expect(html).not.toContain('<b>Stale:</b>');
  });

  it('a run without an analysis gets a report that says how to make one', () => {
    const run = copyCommitted('arith-bare');
    fs.rmSync(path.join(run, 'analysis'), { recursive: true });
    const html = fs.readFileSync(writeReport(run).html, 'utf8');
    expect(html).toContain(`memgen analyze --run ${run}`);
    expect(html).toContain('No steering table');
    for (const s of SECTIONS) expect(html).toContain(s);
  });
});

describe('memgen reproduce refusals (before any work)', () => {
  it('refuses presets it has no runs for, and existing run folders without --force', async () => {
    await expect(reproduceCommand(['--preset', 'gpt2'])).rejects.toThrow(/unknown preset 'gpt2'; choose one of: tiny, small/);
    await expect(reproduceCommand(['--reuse', '--steps', '5'])).rejects.toThrow(/--steps/);
    const out = path.join(tmp, 'repro');
    fs.mkdirSync(path.join(out, 'arithmetic-tiny'), { recursive: true });
    fs.writeFileSync(path.join(out, 'arithmetic-tiny', 'x'), '');
    await expect(reproduceCommand(['--reuse', '--preset', 'tiny', '--out', out])).rejects.toThrow(RunError);
    await expect(reproduceCommand(['--reuse', '--out', path.join(tmp, 'repro2'), '--from', path.join(tmp, 'nowhere')])).rejects.toThrow(/not a run folder/);
    await expect(reproduceCommand(['--reuse', '--force', '--out', 'runs'])).rejects.toThrow(/onto itself/); // never touches runs/
  });
});
