/**
 * `memgen merge`'s extraction part: the shards of a sharded extraction (shards.ts, pairs.ts with
 * opts.shard) combined into exactly the files one unsharded `memgen analyze --pairs P [--max-tries T]`
 * with the default batch writes from a fresh start: hidden_gen.npy, hidden_mem.npy, pairs.jsonl and
 * pairs-state.json in RUN/analysis (the statistics and probes then follow as after an extraction).
 *
 * The unsharded job draws the stream in batches of 128 = SHARD_BLOCK and stops right after the input
 * of its P-th pair (inside a batch), or after T inputs. So, with the shards' pairs sorted by input:
 *   if they hold >= P pairs:  C = input of the P-th pair; the job counted inputs 0..C (end = C + 1)
 *   else:                     the job counted inputs 0..T-1 (end = T) and kept every pair
 * and every shard must have tried all its owned inputs below `end` (else an error names the shard,
 * how far it got, and the command that extends it). Then, exactly:
 *   rows and lines    the first P pairs in stream order, re-indexed; tries = input - previous pair's input
 *   counts            summed over the inputs.jsonl records of inputs < end
 *   tried             end;  sinceLastPair = end - 1 - last pair's input
 *   rng               the stream state after `end` inputs, replayed from the seed (task.test, then
 *                     task.rephrase, per input: the draws of pairs.ts)
 * Only seconds (the shards' sum), createdAt (the earliest shard's) and updatedAt differ from an
 * unsharded job's. The hidden files are written to temporary files and renamed; pairs-state.json last.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { removeStaleTemps, writeFileAtomic } from '../io/atomic';
import { readJSON, writeJSON } from '../runs/run';
import type { Task } from '../tasks/task';
import { Rng } from '../util/rng';
import { ANALYSIS_FILES, type BehaviourCounts, type InputRecord, type PairRecord, type PairsState, SHARDS_DIR, SHARD_INPUTS_FILE } from './files';
import { NpyAppender, NpyRowReader } from './npy';
import { type ExtractResult, readPairRecords } from './pairs';
import { type Shard, completeShardSet, nextOwned, shardLabel } from './shards';

export interface MergeExtractionOptions {
  /** RUN (for the commands in messages) and its analysis folder RUN/analysis. */
  runDir: string;
  dir: string;
  task: Task;
  /** pairSeed(run seed): the seed the shards must have drawn from. */
  seed: number;
  /** The run's current modelHash: shards made for another model are refused. */
  modelHash: string;
  /** P and T of the merged job; default: the smallest --pairs and the largest --max-tries the shards were given. */
  pairs?: number;
  maxTries?: number;
}

export interface MergedExtraction extends ExtractResult {
  shards: number;
  state: PairsState;
}

/** The first `n` lines of a JSON-lines file, parsed. */
function readLines<T>(file: string, n: number): T[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  if (lines.length < n) throw new Error(`${file} holds ${lines.length} lines, its state records ${n} (damaged): rerun that shard with --resume, which cuts it back`);
  return lines.slice(0, n).map((l) => JSON.parse(l) as T);
}

/** Merges the shards in `opts.dir`/shards into `opts.dir`; see the header. */
export function mergeExtraction(opts: MergeExtractionOptions): MergedExtraction {
  const { dir, runDir } = opts;
  const shardCommand = (s: Shard) => `memgen analyze --run ${runDir} --shard ${shardLabel(s)}`;
  const shards = completeShardSet(path.join(dir, SHARDS_DIR), 'analysis', (s) => `${shardCommand(s)} --pairs P`).map((s) => {
    const file = path.join(s.dir, ANALYSIS_FILES.state);
    if (!fs.existsSync(file)) throw new Error(`${s.dir} has no ${ANALYSIS_FILES.state}: shard ${shardLabel(s.shard)} was stopped before its first block; run \`${shardCommand(s.shard)} --resume\``);
    return { ...s, state: readJSON<PairsState>(file, 'pairs state') };
  });

  // One stream, one model, one site: the shards must agree with each other and with the run.
  const first = shards[0].state;
  for (const s of shards) {
    const st = s.state;
    const problems: string[] = [];
    if (st.shard?.index !== s.shard.index || st.shard?.count !== s.shard.count) problems.push(`its state is of ${st.shard ? `shard ${st.shard.index}/${st.shard.count}` : 'an unsharded extraction'}`);
    if (st.seed !== opts.seed) problems.push(`input seed ${st.seed}, not the run's ${opts.seed}`);
    if (st.modelHash !== opts.modelHash) problems.push('it was made for another model (the run was retrained since)');
    if (st.task !== first.task || st.site !== first.site || st.layers !== first.layers || st.d !== first.d || st.family !== first.family) problems.push(`task ${st.task} at site ${st.site} [${st.layers}, ${st.d}] differs from shard 0's (${first.task} at ${first.site} [${first.layers}, ${first.d}])`);
    if (problems.length > 0) throw new Error(`cannot merge ${s.dir}: ${problems.join('; ')}. Run that shard again with --force`);
  }
  const P = opts.pairs ?? Math.min(...shards.map((s) => s.state.shard!.pairsWanted));
  const limits = shards.map((s) => s.state.shard!.maxTries);
  const T = opts.maxTries ?? (limits.some((t) => t === null) ? Infinity : Math.max(...(limits as number[])));

  // The pairs in stream order, and where the unsharded job would have stopped.
  const all = shards.flatMap((s, k) => readPairRecords(s.dir, s.state.pairs).map((r, row) => ({ r, shard: k, row })));
  all.sort((a, b) => a.r.input - b.r.input);
  const reached = all.length >= P;
  const end = reached ? all[P - 1].r.input + 1 : T;
  const short = shards.filter((s) => nextOwned(s.shard, s.state.shard!.position) < end);
  if (short.length > 0) {
    const need = reached ? `the first ${P} pairs end at stream input ${end - 1}` : `the shards hold ${all.length} of ${P} pairs, so every shard must reach ${Number.isFinite(T) ? `--max-tries ${T}` : `${P} pairs together (no --max-tries was given)`}`;
    const lines = short.map((s) => {
      const st = s.state;
      const extend = `${shardCommand(s.shard)} --resume --pairs ${2 * Math.max(P, st.shard!.pairsWanted)}${Number.isFinite(T) ? ` --max-tries ${T}` : ''}`;
      return `shard ${shardLabel(s.shard)} stopped at stream input ${st.shard!.position} (${st.pairs} pairs from ${st.tried} inputs); extend it with \`${extend}\``;
    });
    throw new Error(`cannot merge ${path.join(dir, SHARDS_DIR)} yet: ${need}, and ${lines.join('; ')}. Then run \`memgen merge --run ${runDir}\` again`);
  }
  if (!Number.isFinite(end)) throw new Error('internal: no end of the stream');

  // Counts over exactly the inputs the unsharded job tried.
  const counts: BehaviourCounts = { gen: 0, mem: 0, other: 0 };
  let counted = 0;
  for (const s of shards) {
    for (const rec of readLines<InputRecord>(path.join(s.dir, SHARD_INPUTS_FILE), s.state.tried)) {
      if (rec.input >= end) continue;
      counts[rec.original]++;
      counts[rec.rephrasing]++;
      counted++;
    }
  }
  if (counted !== end) throw new Error(`${path.join(dir, SHARDS_DIR)}: the shards' ${SHARD_INPUTS_FILE} hold ${counted} of the ${end} inputs below ${end} (damaged); rerun the shards with --resume`);

  const kept = all.slice(0, Math.min(P, all.length));
  const rng = new Rng(opts.seed);
  for (let t = 0; t < end; t++) opts.task.rephrase(opts.task.test(rng), rng);
  const lastInput = kept.length > 0 ? kept[kept.length - 1].r.input : -1;
  const now = new Date().toISOString();
  const seconds = shards.reduce((a, s) => a + s.state.seconds, 0);
  const state: PairsState = {
    format: 'memgen-pairs-state/1', task: first.task, site: first.site, ...(first.family ? { family: first.family } : {}), layers: first.layers, d: first.d,
    seed: opts.seed, modelHash: opts.modelHash, rng: rng.state, tried: end, pairs: kept.length, sinceLastPair: end - 1 - lastInput, counts,
    seconds, createdAt: shards.map((s) => s.state.createdAt).sort()[0], updatedAt: now,
  };

  // Write: the marker of complete statistics goes first, the state (the truth) last.
  fs.rmSync(path.join(dir, ANALYSIS_FILES.summary), { force: true });
  removeStaleTemps(dir);
  const rowShape = [first.layers, first.d];
  const temp = (name: string) => path.join(dir, `.${name}.${process.pid}.${Date.now().toString(36)}.tmp`);
  const outs = { gen: temp(ANALYSIS_FILES.hiddenGen), mem: temp(ANALYSIS_FILES.hiddenMem) };
  for (const which of ['gen', 'mem'] as const) {
    const name = which === 'gen' ? ANALYSIS_FILES.hiddenGen : ANALYSIS_FILES.hiddenMem;
    const readers = shards.map((s) => new NpyRowReader(path.join(s.dir, name), s.state.pairs));
    const w = NpyAppender.open(outs[which], rowShape, 'create');
    try {
      for (const k of kept) w.append(readers[k.shard].row(k.row));
    } finally {
      w.close();
      readers.forEach((r) => r.close());
    }
  }
  let prev = -1;
  const lines = kept.map((k, index) => {
    const rec: PairRecord = { ...k.r, index, tries: k.r.input - prev };
    prev = k.r.input;
    return JSON.stringify(rec) + '\n';
  });
  writeFileAtomic(path.join(dir, ANALYSIS_FILES.pairs), lines.join(''));
  fs.renameSync(outs.gen, path.join(dir, ANALYSIS_FILES.hiddenGen));
  fs.renameSync(outs.mem, path.join(dir, ANALYSIS_FILES.hiddenMem));
  writeJSON(path.join(dir, ANALYSIS_FILES.state), state);

  const wall = Math.max(...shards.map((s) => s.state.seconds));
  return {
    pairs: kept.length, resumedFrom: 0, tried: end, counts, stopReason: reached ? 'maxPairs' : 'maxTries', seconds: wall, totalSeconds: seconds,
    pairsPerSecond: wall > 0 ? kept.length / wall : 0, shards: shards.length, state,
  };
}
