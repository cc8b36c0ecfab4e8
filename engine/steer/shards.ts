/**
 * Shards of `memgen steer-eval` (docs/cluster.md; the block rule is analysis/shards.ts's): shard i/N
 * draws the whole starting-input stream and generates, unsteered, only its blocks of SHARD_BLOCK
 * inputs, keeps every starting input it finds until both directions have its quota (default
 * ceil(1.1 n / N)) or the budget T (--max-tries, default 30 n) ends, runs every cell on them, and
 * writes RUN/analysis/shards/steer/<table>/<i>-of-<N>.json (SteerShardFile: per input its unsteered
 * class, per starting input and cell its steered output, class and first-token probabilities).
 *
 * mergeSteerShards writes the table one unsharded steer-eval writes (steer-eval.ts steeringFile):
 *   starts      the first n starting inputs per direction over all shards, in stream order
 *   tried       the unsharded job draws batches of `batch` (default 256) and stops after the batch in
 *               which both directions are full:  tried = min(T, (floor(C / batch) + 1) * batch),
 *               C = the later of the two directions' n-th starting input; T when one is short
 *   counts      summed over the shards' inputs below `tried` (every shard must have covered them)
 *   cells       counts, % and success summed from the per-input classes; pFirst the mean over the same
 *               inputs in the same order; examples the first five
 * Equal to the unsharded table when the model's per-row outputs do not depend on which rows share a
 * generate call (the cells of a shard batch its own starting inputs); the test checks it on the tiny run.
 * Only seconds and createdAt differ.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BehaviourCounts } from '../analysis/files';
import { SHARDS_DIR, analysisDir } from '../analysis/files';
import { SHARD_BLOCK, type Shard, completeShardSet, nextOwned, shardLabel, shardName } from '../analysis/shards';
import { readJSON, writeJSON } from '../runs/run';
import type { Behaviour } from '../tasks/task';
import { type SteeringFile, writeSteerFile } from './files';
import type { Direction, InterventionKind } from './intervention';
import { DIRECTIONS } from './intervention';
import { type CellResult, type SteerEvalResult, type SteerRun, type SteerSetup, cellResult, startSeed, startsInfo, steeringFile, steeringInterventions } from './steer-eval';

/** RUN/analysis/shards/steer: one folder per table (named as its file, without .json). */
export const steerShardsDir = (run: string | { dir: string }): string => path.join(analysisDir(run), SHARDS_DIR, 'steer');

/** The shard file of `shard` for the table written to `out`. */
export const steerShardFile = (run: string | { dir: string }, out: string, shard: Shard): string =>
  path.join(steerShardsDir(run), path.basename(out, '.json'), `${shardName(shard)}.json`);

/** The options of the table a shard belongs to: all shards of one table must agree on them. */
export interface SteerShardOptions {
  n: number;
  seed: number;
  maxTries: number;
  /** The unsharded job's --batch (it sets where that job stops drawing). */
  batch: number;
  topN: number;
  picks: { layer: number; index: number }[] | null;
  alpha: number;
  beams: number;
  neuronsFrom: string | null;
  allowStale: boolean;
  /** The table's file. */
  out: string;
}

type P = { pGen: number; pMem: number | null };

export interface SteerShardFile {
  format: 'memgen-steer-shard/1';
  shard: Shard;
  block: number;
  options: SteerShardOptions;
  modelHash: string;
  /** Stream inputs drawn: every owned input below was tried. */
  position: number;
  /** Every owned input tried, with its unsteered class. */
  log: { input: number; behaviour: Behaviour }[];
  starts: Record<Direction, ({ input: number; prompt: string; output: string } & P)[]>;
  /** Per cell, one entry per starting input of its direction (same order as starts). */
  cells: { direction: Direction; method: InterventionKind; outputs: string[]; behaviours: Behaviour[]; probs: P[] }[];
  seconds: number;
  createdAt: string;
}

/** Writes a shard's result (steerEval with opts.shard) to its file; returns the path. */
export function writeSteerShard(run: { dir: string }, shard: Shard, options: SteerShardOptions, modelHash: string, r: SteerEvalResult): string {
  const starts = Object.fromEntries(DIRECTIONS.map((d) => [d, r.starts.inputs[d].map((x) => ({ input: x.input, prompt: x.example.prompt, output: x.output, pGen: x.pGen, pMem: x.pMem }))])) as SteerShardFile['starts'];
  const file: SteerShardFile = {
    format: 'memgen-steer-shard/1', shard, block: SHARD_BLOCK, options, modelHash, position: r.starts.position, log: r.starts.log, starts,
    cells: r.cells.map((c) => ({ direction: c.direction, method: c.method, outputs: c.outputs, behaviours: c.behaviours, probs: c.probs })),
    seconds: r.file.seconds, createdAt: r.file.createdAt,
  };
  const out = steerShardFile(run, options.out, shard);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  writeJSON(out, file);
  return out;
}

/**
 * Merges every table's shards under RUN/analysis/shards/steer (see the header) and writes the tables;
 * `prepare` loads the run and its neurons as steer-eval does. Returns the files written.
 */
export function mergeSteerShards(runDir: string, prepare: (runDir: string, opts: { neuronsFrom?: string; allowStale?: boolean }) => SteerSetup<SteerRun>): string[] {
  const root = steerShardsDir(runDir);
  const written: string[] = [];
  for (const table of fs.readdirSync(root).sort()) {
    const dir = path.join(root, table);
    if (!fs.statSync(dir).isDirectory()) continue;
    const command = (s: Shard) => `memgen steer-eval --run ${runDir} --shard ${shardLabel(s)} (with the other shards' options)`;
    const shards = completeShardSet(dir, 'steering', command, '.json').map((s) => ({ ...s, f: readJSON<SteerShardFile>(s.dir, 'steering shard') }));
    const o = shards[0].f.options;
    for (const s of shards) {
      if (JSON.stringify(s.f.options) !== JSON.stringify(o)) throw new Error(`${s.dir} was made with other options than ${shards[0].dir} (${JSON.stringify(s.f.options)} vs ${JSON.stringify(o)}): rerun it with the same options`);
    }
    const setup = prepare(runDir, { neuronsFrom: o.neuronsFrom ?? undefined, allowStale: o.allowStale });
    for (const s of shards) if (s.f.modelHash !== setup.modelHash) throw new Error(`${s.dir} was made for another model (the run was retrained since): rerun that shard`);

    // The first n starting inputs per direction, and where the unsharded job stopped drawing.
    const picked = Object.fromEntries(DIRECTIONS.map((d) => {
      const all = shards.flatMap((s, k) => s.f.starts[d].map((x, j) => ({ ...x, k, j }))).sort((a, b) => a.input - b.input);
      return [d, all.slice(0, o.n)];
    })) as Record<Direction, ({ input: number; prompt: string; output: string; k: number; j: number } & P)[]>;
    const full = DIRECTIONS.every((d) => picked[d].length >= o.n);
    const last = Math.max(...DIRECTIONS.map((d) => picked[d].at(-1)?.input ?? -1));
    const tried = full ? Math.min(o.maxTries, (Math.floor(last / o.batch) + 1) * o.batch) : o.maxTries;
    const short = shards.filter((s) => nextOwned(s.shard, s.f.position) < tried);
    if (short.length > 0) {
      throw new Error(`cannot merge ${dir} yet: the table needs the starting inputs below ${tried}, and ${short.map((s) => `shard ${shardLabel(s.shard)} stopped at stream input ${s.f.position}; rerun it with a larger --shard-quota (e.g. ${2 * Math.max(...DIRECTIONS.map((d) => s.f.starts[d].length))}) and the same options`).join('; ')}. Then run \`memgen merge --run ${runDir}\` again`);
    }
    const counts: BehaviourCounts = { gen: 0, mem: 0, other: 0 };
    let counted = 0;
    for (const s of shards) for (const x of s.f.log) if (x.input < tried) { counts[x.behaviour]++; counted++; }
    if (counted !== tried) throw new Error(`${dir}: the shards tried ${counted} of the ${tried} inputs below ${tried} (damaged): rerun them`);

    const info = startsInfo(startSeed(o.seed), o.n, picked, tried, counts, o.maxTries);
    const cells: CellResult[] = steeringInterventions(setup, { ...o, picks: o.picks ?? undefined }).map(({ method, intervention }) => {
      const d = intervention.description.direction;
      const per = shards.map((s) => s.f.cells.find((c) => c.method === method && c.direction === d));
      const at = (x: { k: number; j: number }) => {
        const c = per[x.k];
        if (!c) throw new Error(`${shards[x.k].dir} has no ${d} ${method} cell (damaged): rerun it`);
        return { output: c.outputs[x.j], behaviour: c.behaviours[x.j], p: c.probs[x.j] };
      };
      const rows = picked[d].map(at);
      return cellResult(intervention, picked[d], { outputs: rows.map((r) => r.output), behaviours: rows.map((r) => r.behaviour), probs: rows.map((r) => r.p) });
    });
    const file: SteeringFile = steeringFile(setup, { ...o, picks: o.picks ?? undefined }, info, cells, shards.reduce((a, s) => a + s.f.seconds, 0));
    written.push(writeSteerFile(runDir, 'steering', file, o.out));
  }
  return written;
}
