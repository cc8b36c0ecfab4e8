/**
 * What the panels show, read from a run folder's analysis (engine/analysis/files.ts,
 * engine/steer/files.ts) and shaped as protocol.ts's panel results. Large arrays go out as
 * BinaryArray (bytes, not JSON number lists). Reads are cached per file and modification time, so
 * switching panels does not re-read the hidden-state files.
 *
 * Rank: every (layer, neuron) ordered by |rho| descending, ties by layer then index (rank.ts with
 * topN = 1, i.e. all neurons kept); 1 = largest |rho|.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type AnalysisSummary, type NeuronsFile, analysisPath } from '../../engine/analysis/files';
import { readNpy, readNpyHeader } from '../../engine/analysis/npy';
import type { ProbesFile } from '../../engine/analysis/probe-layers';
import { rankNeurons } from '../../engine/analysis/rank';
import { type SteeringFile, type SweepFile, steerPath } from '../../engine/steer/files';
import { readJSON } from '../../engine/runs/run';
import * as lsp from './protocol';

const cache = new Map<string, { mtimeMs: number; value: unknown }>();

/** Reads `file` through `read` once per modification time. */
function cached<T>(file: string, read: (f: string) => T): T {
  const st = fs.statSync(file);
  const hit = cache.get(file);
  if (hit && hit.mtimeMs === st.mtimeMs) return hit.value as T;
  const value = read(file);
  cache.set(file, { mtimeMs: st.mtimeMs, value });
  return value;
}

function need(file: string, how: string): string {
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: ${how}`);
  return file;
}

const analyzeHint = (run: string) => `run MemGen: Analyze Run (\`memgen analyze --run ${run}\`) first`;

function summaryOf(run: string): AnalysisSummary {
  return cached(need(analysisPath(run, 'summary'), analyzeHint(run)), (f) => readJSON<AnalysisSummary>(f, 'analysis summary'));
}

function arraysOf(run: string): { nmd: Float32Array; rho: Float32Array; rank: Int32Array; layers: number; d: number } {
  const s = summaryOf(run);
  const nmdFile = need(analysisPath(run, 'nmd'), analyzeHint(run));
  const rhoFile = need(analysisPath(run, 'rho'), analyzeHint(run));
  return cached(nmdFile, () => {
    const nmd = readNpy(nmdFile);
    const rho = readNpy(rhoFile);
    for (const [name, a] of [['nmd', nmd], ['rho', rho]] as const) {
      if (a.shape.length !== 2 || a.shape[0] !== s.layers || a.shape[1] !== s.d) throw new Error(`${name}.npy of ${run} has shape (${a.shape.join(', ')}), analysis.json says [${s.layers}, ${s.d}]`);
    }
    const rank = new Int32Array(s.layers * s.d);
    for (const n of rankNeurons(rho.data, nmd.data, s.layers, s.d, s.site, 1)) rank[n.layer * s.d + n.index] = n.rank;
    return { nmd: nmd.data, rho: rho.data, rank, layers: s.layers, d: s.d };
  });
}

export function neuronMap(run: string): lsp.NeuronMapResult {
  const s = summaryOf(run);
  const a = arraysOf(run);
  const nf = cached(need(analysisPath(run, 'neurons'), analyzeHint(run)), (f) => readJSON<NeuronsFile>(f, 'ranked neurons'));
  const shape = [s.layers, s.d];
  return {
    run,
    runName: path.basename(path.resolve(run)),
    task: s.taskDescription,
    site: s.site,
    siteNames: s.siteNames,
    layers: s.layers,
    d: s.d,
    pairs: s.pairs,
    sign: 'gen - mem',
    nmd: lsp.encodeBinary(a.nmd, shape),
    rho: lsp.encodeBinary(a.rho, shape),
    rank: lsp.encodeBinary(a.rank, shape),
    topN: nf.topN,
    kept: nf.count,
  };
}

export function probeTable(run: string): lsp.ProbeTableResult {
  const p = cached(need(analysisPath(run, 'probes'), `${analyzeHint(run)} (without --no-probes)`), (f) => readJSON<ProbesFile>(f, 'probes'));
  const rows = (xs: ProbesFile['mlp']): lsp.ProbeLayerRow[] => xs.map(({ layer, site, accuracy, ci, n }) => ({ layer, site, accuracy, ci: [ci[0], ci[1]], n }));
  return { run, runName: path.basename(path.resolve(run)), site: p.site, pairs: p.pairs, split: p.split, chance: p.chance, mlp: rows(p.mlp), logistic: rows(p.logistic) };
}

export function steeringTables(run: string): lsp.SteeringTablesResult {
  const missing: string[] = [];
  let steering: lsp.SteeringTable | null = null;
  let sweep: lsp.SweepTable | null = null;
  let task = '';
  const sf = steerPath(run, 'steering');
  if (fs.existsSync(sf)) {
    const f = cached(sf, (x) => readJSON<SteeringFile>(x, 'steering table'));
    task = f.taskDescription;
    steering = {
      topN: f.topN,
      alpha: f.alpha,
      count: f.count,
      site: f.site,
      experiment: f.neurons.experiment,
      cells: f.cells.map(({ direction, method, n, pct, success }) => ({ direction, method, n, pct, success })),
      paper: f.paper ? { table: f.paper.table, model: f.paper.model, topN: f.paper.topN, alpha: f.paper.alpha, note: f.paper.note, cells: f.paper.cells.map(({ direction, method, pct }) => ({ direction, method, pct })) } : null,
      warnings: f.warnings,
      createdAt: f.createdAt,
    };
  } else missing.push(`no ${sf}: run MemGen: Evaluate Steering (\`memgen steer-eval --run ${run}\`)`);
  const wf = steerPath(run, 'sweep');
  if (fs.existsSync(wf)) {
    const f = cached(wf, (x) => readJSON<SweepFile>(x, 'sweep'));
    task ||= f.taskDescription;
    sweep = {
      alphas: f.alphas,
      topNs: f.topNs,
      cells: f.cells.map(({ alpha, topN, direction, method, n, success }) => ({ alpha, topN, direction, method, n, success })),
      best: f.best ? { alpha: f.best.alpha, topN: f.best.topN } : null,
      paperSetting: f.paperSetting,
      complete: f.complete,
    };
  } else missing.push(`no ${wf}: run \`memgen sweep --run ${run}\` for the alpha x topN sweep`);
  return { run, runName: path.basename(path.resolve(run)), task, steering, sweep, missing };
}

/**
 * One neuron's values over the pairs: column (layer, index) of hidden_gen.npy and hidden_mem.npy
 * [P, L, d], read value by value at its byte offsets (the files can be gigabytes; nothing is kept).
 */
export function neuronDetail(run: string, layer: number, index: number): lsp.NeuronDetailResult {
  const a = arraysOf(run);
  // A negative or fractional index would read another neuron's column (or a misaligned one).
  const ok = (x: number, n: number) => Number.isInteger(x) && x >= 0 && x < n;
  if (!ok(layer, a.layers) || !ok(index, a.d)) throw new Error(`no neuron ${layer}:${index} in a [${a.layers}, ${a.d}] analysis`);
  const column = (file: string) => {
    const h = readNpyHeader(need(file, analyzeHint(run)));
    if (h.shape.length !== 3 || h.shape[1] !== a.layers || h.shape[2] !== a.d) throw new Error(`${file} has shape (${h.shape.join(', ')}), not [pairs, ${a.layers}, ${a.d}]`);
    const P = h.shape[0];
    const out = new Float32Array(P);
    const bytes = new Uint8Array(out.buffer);
    const fd = fs.openSync(file, 'r');
    try {
      for (let p = 0; p < P; p++) fs.readSync(fd, bytes, p * 4, 4, h.dataOffset + 4 * ((p * a.layers + layer) * a.d + index));
    } finally {
      fs.closeSync(fd);
    }
    return out;
  };
  const gen = column(analysisPath(run, 'hiddenGen'));
  const mem = column(analysisPath(run, 'hiddenMem'));
  const j = layer * a.d + index;
  return {
    run,
    site: summaryOf(run).siteNames[layer],
    layer,
    index,
    nmd: a.nmd[j],
    rho: a.rho[j],
    rank: a.rank[j],
    total: a.layers * a.d,
    gen: lsp.encodeBinary(gen, [gen.length]),
    mem: lsp.encodeBinary(mem, [mem.length]),
  };
}
