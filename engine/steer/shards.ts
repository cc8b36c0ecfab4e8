/**
 * Shards of `memgen steer-eval` and `memgen sweep` (docs/cluster.md; the block rule is
 * analysis/shards.ts's): shard i/N draws the whole starting-input stream and generates, unsteered,
 * only its blocks of SHARD_BLOCK inputs, keeps every starting input it finds until both directions
 * have its quota (default ceil(1.1 n / N)) or the budget T (--max-tries, default 30 n) ends, runs every
 * cell on them, and writes
 *   steer-eval  RUN/analysis/shards/steer/<table>/<i>-of-<N>.json (SteerShardFile), <table> = the table's file without .json
 *   sweep       RUN/analysis/shards/sweep/<i>-of-<N>.json (SweepShardFile; a sweep has one file, sweep.json)
 * both with per input its unsteered class, and per starting input and cell its steered class and
 * first-token probabilities (steer-eval: and its output, for the table's examples); a baseline cell
 * pooling K random draws (--baseline-draws K) holds K rows per starting input, draw-major.
 *
 * The merge (mergeSteerShards, mergeSweepShards) writes the file one unsharded job writes:
 *   starts      the first n starting inputs per direction over all shards, in stream order
 *   tried       the unsharded job draws batches of `batch` (default 256) and stops after the batch in
 *               which both directions are full:  tried = min(T, (floor(C / batch) + 1) * batch),
 *               C = the later of the two directions' n-th starting input; T when one is short
 *   counts      summed over the shards' inputs below `tried` (every shard must have covered them)
 *   cells       counts, % and success summed from the per-input classes; pFirst the mean over the same
 *               inputs in the same order (pooled cells: each draw's rows of the picked inputs, draw
 *               after draw, as the unsharded job pools them); steer-eval's examples the first five
 * and builds the file with the unsharded job's own code (steer-eval.ts steeringFile, sweep.ts
 * sweepCell and sweepFile). Equal to the unsharded file when the model's per-row outputs do not depend
 * on which rows share a generate call (the cells of a shard batch its own starting inputs); the tests
 * check it on the tiny run. Only seconds and createdAt differ.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BehaviourCounts } from '../analysis/files';
import { SHARDS_DIR, analysisDir } from '../analysis/files';
import { SHARD_BLOCK, type Shard, completeShardSet, nextOwned, shardLabel, shardName } from '../analysis/shards';
import { readJSON, writeJSON } from '../runs/run';
import type { SteerAt } from '../models/hooks';
import type { Behaviour } from '../tasks/task';
import { type SteeringFile, type StartsInfo, type SweepCell, writeSteerFile } from './files';
import type { Direction, InterventionKind } from './intervention';
import { DIRECTIONS } from './intervention';
import { type CellResult, type SteerEvalResult, type SteerRun, type SteerSetup, type Starts, drawsCell, startSeed, startsInfo, steeringFile, steeringInterventions } from './steer-eval';
import { type SweepResult, sweepCell, sweepEntries, sweepFile } from './sweep';

/** RUN/analysis/shards/steer: one folder per table (named as its file, without .json). */
export const steerShardsDir = (run: string | { dir: string }): string => path.join(analysisDir(run), SHARDS_DIR, 'steer');

/** RUN/analysis/shards/sweep: the shard files of sweep.json. */
export const sweepShardsDir = (run: string | { dir: string }): string => path.join(analysisDir(run), SHARDS_DIR, 'sweep');

/** The shard file of `shard` for the table written to `out`. */
export const steerShardFile = (run: string | { dir: string }, out: string, shard: Shard): string =>
  path.join(steerShardsDir(run), path.basename(out, '.json'), `${shardName(shard)}.json`);

/** The shard file of `shard` of the sweep. */
export const sweepShardFile = (run: string | { dir: string }, shard: Shard): string => path.join(sweepShardsDir(run), `${shardName(shard)}.json`);

/** What the options of every shard file hold: all shards of one file must agree on its options. */
interface CommonShardOptions {
  n: number;
  seed: number;
  maxTries: number;
  /** The unsharded job's --batch (it sets where that job stops drawing). */
  batch: number;
  beams: number;
  steerAt: SteerAt;
  layers: number[] | null;
  /** Random draws pooled in each baseline cell (absent in older shard files: 1). */
  baselineDraws?: number;
  neuronsFrom: string | null;
  allowStale: boolean;
}

/** The options of the steering table a shard belongs to. */
export interface SteerShardOptions extends CommonShardOptions {
  topN: number;
  picks: { layer: number; index: number }[] | null;
  alpha: number;
  /** The table's file. */
  out: string;
}

/** The options of the sweep a shard belongs to (alphas and topNs as sweep.ts sweepAxes returns them). */
export interface SweepShardOptions extends CommonShardOptions {
  alphas: number[];
  topNs: number[];
  baselines: boolean;
}

type P = { pGen: number; pMem: number | null };

/** What the shard files of steer-eval and sweep share: the shard and its starting inputs. */
interface StartsShard<O extends CommonShardOptions> {
  shard: Shard;
  block: number;
  options: O;
  modelHash: string;
  /** Stream inputs drawn: every owned input below was tried. */
  position: number;
  /** Every owned input tried, with its unsteered class. */
  log: { input: number; behaviour: Behaviour }[];
  starts: Record<Direction, ({ input: number; prompt: string; output: string } & P)[]>;
  seconds: number;
  createdAt: string;
}

export interface SteerShardFile extends StartsShard<SteerShardOptions> {
  format: 'memgen-steer-shard/1';
  /** Per cell, one entry per starting input of its direction (same order as starts); a pooled baseline cell: draw-major, draws x starts. */
  cells: { direction: Direction; method: InterventionKind; outputs: string[]; behaviours: Behaviour[]; probs: P[] }[];
}

export interface SweepShardFile extends StartsShard<SweepShardOptions> {
  format: 'memgen-sweep-shard/1';
  /** Per cell of the grid (sweep.ts sweepEntries' order), one entry per starting input of its direction (pooled: draw-major, as steer-eval's). */
  cells: { alpha: number; topN: number; direction: Direction; method: SweepCell['method']; behaviours: Behaviour[]; probs: P[] }[];
}

/** The parts of a shard file that a job's starting inputs make. */
function startsShard<O extends CommonShardOptions>(shard: Shard, options: O, modelHash: string, s: Starts, seconds: number, createdAt: string): StartsShard<O> {
  const starts = Object.fromEntries(DIRECTIONS.map((d) => [d, s.inputs[d].map((x) => ({ input: x.input, prompt: x.example.prompt, output: x.output, pGen: x.pGen, pMem: x.pMem }))])) as StartsShard<O>['starts'];
  return { shard: { index: shard.index, count: shard.count }, block: SHARD_BLOCK, options, modelHash, position: s.position, log: s.log, starts, seconds, createdAt };
}

function writeShard(file: string, value: SteerShardFile | SweepShardFile): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeJSON(file, value);
  return file;
}

/** Writes a shard's result (steerEval with opts.shard) to its file; returns the path. */
export function writeSteerShard(run: { dir: string }, shard: Shard, options: SteerShardOptions, modelHash: string, r: SteerEvalResult): string {
  return writeShard(steerShardFile(run, options.out, shard), {
    format: 'memgen-steer-shard/1', ...startsShard(shard, options, modelHash, r.starts, r.file.seconds, r.file.createdAt),
    cells: r.cells.map((c) => ({ direction: c.direction, method: c.method, outputs: c.outputs, behaviours: c.behaviours, probs: c.probs })),
  });
}

/** Writes a shard's result (sweep with opts.shard, complete) to its file; returns the path. */
export function writeSweepShard(run: { dir: string }, shard: Shard, options: SweepShardOptions, modelHash: string, r: SweepResult): string {
  if (!r.file.complete) throw new Error(`shard ${shardLabel(shard)} of the sweep was interrupted: a shard is written only with every cell`);
  return writeShard(sweepShardFile(run, shard), {
    format: 'memgen-sweep-shard/1', ...startsShard(shard, options, modelHash, r.starts, r.file.seconds, r.file.createdAt),
    cells: r.file.cells.map((c, i) => ({ alpha: c.alpha, topN: c.topN, direction: c.direction, method: c.method, behaviours: r.results[i].behaviours, probs: r.results[i].probs })),
  });
}

type Prepare = (runDir: string, opts: { neuronsFrom?: string; allowStale?: boolean }) => SteerSetup<SteerRun>;
type Loaded<F> = { shard: Shard; dir: string; f: F };
/** A starting input picked by the merge: shard k's j-th of its direction. */
type Picked = { input: number; prompt: string; output: string; k: number; j: number } & P;

/**
 * The complete shard set in `dir` (files <i>-of-<N>.json), checked to share one set of options and
 * the run's current model; `command` names a shard's command for the messages.
 */
function readShardSet<F extends StartsShard<CommonShardOptions>>(runDir: string, dir: string, what: string, command: (s: Shard) => string, prepare: Prepare): { shards: Loaded<F>[]; setup: SteerSetup<SteerRun> } {
  const shards = completeShardSet(dir, what, command, '.json').map((s) => ({ ...s, f: readJSON<F>(s.dir, `${what} shard`) }));
  const o = shards[0].f.options;
  for (const s of shards) {
    if (JSON.stringify(s.f.options) !== JSON.stringify(o)) throw new Error(`${s.dir} was made with other options than ${shards[0].dir} (${JSON.stringify(s.f.options)} vs ${JSON.stringify(o)}): rerun it with the same options`);
  }
  const setup = prepare(runDir, { neuronsFrom: o.neuronsFrom ?? undefined, allowStale: o.allowStale });
  for (const s of shards) if (s.f.modelHash !== setup.modelHash) throw new Error(`${s.dir} was made for another model (the run was retrained since): rerun that shard`);
  return { shards, setup };
}

/** The merged starting inputs (see the header: starts, tried, counts); throws when a shard did not cover them. */
function mergeStarts(runDir: string, dir: string, shards: Loaded<StartsShard<CommonShardOptions>>[]): { picked: Record<Direction, Picked[]>; info: StartsInfo } {
  const o = shards[0].f.options;
  const picked = Object.fromEntries(DIRECTIONS.map((d) => {
    const all = shards.flatMap((s, k) => s.f.starts[d].map((x, j) => ({ ...x, k, j }))).sort((a, b) => a.input - b.input);
    return [d, all.slice(0, o.n)];
  })) as Record<Direction, Picked[]>;
  const full = DIRECTIONS.every((d) => picked[d].length >= o.n);
  const last = Math.max(...DIRECTIONS.map((d) => picked[d].at(-1)?.input ?? -1));
  const tried = full ? Math.min(o.maxTries, (Math.floor(last / o.batch) + 1) * o.batch) : o.maxTries;
  const short = shards.filter((s) => nextOwned(s.shard, s.f.position) < tried);
  if (short.length > 0) {
    throw new Error(`cannot merge ${dir} yet: the ${path.basename(dir)} file needs the starting inputs below ${tried}, and ${short.map((s) => `shard ${shardLabel(s.shard)} stopped at stream input ${s.f.position}; rerun it with a larger --shard-quota (e.g. ${2 * Math.max(...DIRECTIONS.map((d) => s.f.starts[d].length))}) and the same options`).join('; ')}. Then run \`memgen merge --run ${runDir}\` again`);
  }
  const counts: BehaviourCounts = { gen: 0, mem: 0, other: 0 };
  let counted = 0;
  for (const s of shards) for (const x of s.f.log) if (x.input < tried) { counts[x.behaviour]++; counted++; }
  if (counted !== tried) throw new Error(`${dir}: the shards tried ${counted} of the ${tried} inputs below ${tried} (damaged): rerun them`);
  return { picked, info: startsInfo(startSeed(o.seed), o.n, picked, tried, counts, o.maxTries) };
}

/**
 * Per draw and picked starting input (draw-major, as steer-eval.ts runDraws pools them), its shard's
 * cell (the one `match` finds) and its row there: draw r of shard k's j-th start is row r x (shard k's
 * starts of that direction) + j.
 */
function rowsOf<C>(shards: Loaded<{ cells: C[]; starts: Record<Direction, unknown[]> }>[], picked: readonly Picked[], direction: Direction, draws: number, match: (c: C) => boolean, name: string): { cell: C; j: number }[][] {
  const per = shards.map((s) => s.f.cells.find(match));
  return Array.from({ length: draws }, (_, r) => picked.map((x) => {
    const cell = per[x.k];
    if (!cell) throw new Error(`${shards[x.k].dir} has no ${name} cell (damaged): rerun it`);
    return { cell, j: r * shards[x.k].f.starts[direction].length + x.j };
  }));
}

const sumSeconds = (shards: Loaded<{ seconds: number }>[]) => shards.reduce((a, s) => a + s.f.seconds, 0);

/**
 * Merges every table's shards under RUN/analysis/shards/steer (see the header) and writes the tables;
 * `prepare` loads the run and its neurons as steer-eval does. Returns the files written.
 */
export function mergeSteerShards(runDir: string, prepare: Prepare): string[] {
  const root = steerShardsDir(runDir);
  const written: string[] = [];
  for (const table of fs.readdirSync(root).sort()) {
    const dir = path.join(root, table);
    if (!fs.statSync(dir).isDirectory()) continue;
    const command = (s: Shard) => `memgen steer-eval --run ${runDir} --shard ${shardLabel(s)} (with the other shards' options)`;
    const { shards, setup } = readShardSet<SteerShardFile>(runDir, dir, 'steering', command, prepare);
    const o = shards[0].f.options;
    const { picked, info } = mergeStarts(runDir, dir, shards);
    const opts = { ...o, picks: o.picks ?? undefined, layers: o.layers ?? undefined };
    const cells: CellResult[] = steeringInterventions(setup, opts).map(({ method, intervention, draws }) => {
      const d = intervention.description.direction;
      const drawn = rowsOf(shards, picked[d], d, draws.length, (c) => c.method === method && c.direction === d, `${d} ${method}`)
        .map((rows) => ({ outputs: rows.map((r) => r.cell.outputs[r.j]), behaviours: rows.map((r) => r.cell.behaviours[r.j]), probs: rows.map((r) => r.cell.probs[r.j]) }));
      return drawsCell(draws, picked[d], drawn);
    });
    const file: SteeringFile = steeringFile(setup, opts, info, cells, sumSeconds(shards));
    written.push(writeSteerFile(runDir, 'steering', file, o.out));
  }
  return written;
}

/** Merges the sweep's shards under RUN/analysis/shards/sweep (see the header) and writes sweep.json; returns its path. */
export function mergeSweepShards(runDir: string, prepare: Prepare): string {
  const dir = sweepShardsDir(runDir);
  const command = (s: Shard) => `memgen sweep --run ${runDir} --shard ${shardLabel(s)} (with the other shards' options)`;
  const { shards, setup } = readShardSet<SweepShardFile>(runDir, dir, 'sweep', command, prepare);
  const o = shards[0].f.options;
  const { picked, info } = mergeStarts(runDir, dir, shards);
  const cells: SweepCell[] = [];
  for (const e of sweepEntries(setup, o, o.seed, o.baselines, o.layers ?? undefined, o.baselineDraws)) {
    const method = e.intervention.description.kind;
    const rows = rowsOf(shards, picked[e.direction], e.direction, e.draws.length, (c) => c.alpha === e.alpha && c.topN === e.topN && c.direction === e.direction && c.method === method, `alpha ${e.alpha} topN ${e.topN} ${e.direction} ${method}`).flat();
    cells.push(sweepCell(e, rows.map((r) => r.cell.behaviours[r.j]), rows.map((r) => r.cell.probs[r.j])));
  }
  return writeSteerFile(runDir, 'sweep', sweepFile(setup, o, info, cells, true, sumSeconds(shards)));
}
