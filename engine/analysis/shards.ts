/**
 * Shards of an input stream (docs/cluster.md): N jobs share the work of one stream of inputs
 * (the analysis' pairs, pairs.ts; steering's starting inputs, steer/shards.ts) without talking to
 * each other, and `memgen merge` combines what they wrote into exactly what one unsharded job writes.
 *
 *   shard i/N (i = 0 .. N-1, 0-based as SLURM_ARRAY_TASK_ID with --array=0-(N-1) and Kubernetes'
 *   JOB_COMPLETION_INDEX) owns stream input t  iff  floor(t / B) mod N = i,   B = SHARD_BLOCK = 128
 *
 * Every shard draws the WHOLE stream from the same seed (drawing is cheap; generating is the cost)
 * and generates only for the blocks it owns, one block per generate call: the calls of an unsharded
 * job with its default batch of 128 from a fresh start, so the generated tokens and site vectors are
 * the same bits. B is a constant, not the batch size: shards of one run must agree on it.
 *
 * A shard's files go to RUN/analysis/shards/<i>-of-<N>/ (files.ts shardDir).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Inputs per block of the stream (one generate call of a shard). */
export const SHARD_BLOCK = 128;

/** Shard `index` of `count` (0-based). */
export interface Shard {
  index: number;
  count: number;
}

/** Parses `i/N` (0 <= i < N); throws with what was expected. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || !(count >= 1) || !(index < count)) {
    throw new Error(`--shard takes i/N with 0 <= i < N (0-based: the shards of 3 jobs are 0/3, 1/3, 2/3), got '${text}'`);
  }
  return { index, count };
}

export const shardName = (s: Shard): string => `${s.index}-of-${s.count}`;
export const shardLabel = (s: Shard): string => `${s.index}/${s.count}`;

/** Whether stream input `t` belongs to shard `s`. */
export const ownsInput = (s: Shard, t: number): boolean => Math.floor(t / SHARD_BLOCK) % s.count === s.index;

/** The first input >= t that shard `s` owns. */
export function nextOwned(s: Shard, t: number): number {
  if (ownsInput(s, t)) return t;
  const block = Math.floor(t / SHARD_BLOCK);
  const ahead = (s.index - (block % s.count) + s.count) % s.count;
  return (block + ahead) * SHARD_BLOCK;
}

/**
 * The shards under `dir`, by name <i>-of-<N> followed by `ext` (folders: '', files: e.g. '.json');
 * other entries are ignored.
 */
export function listShards(dir: string, ext = ''): { shard: Shard; dir: string }[] {
  if (!fs.existsSync(dir)) return [];
  const out: { shard: Shard; dir: string }[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = /^(\d+)-of-(\d+)(.*)$/.exec(name);
    if (m && m[3] === ext) out.push({ shard: { index: Number(m[1]), count: Number(m[2]) }, dir: path.join(dir, name) });
  }
  return out.sort((a, b) => a.shard.count - b.shard.count || a.shard.index - b.shard.index);
}

/**
 * The shards of one complete set in `dir`: all of 0..N-1 for one N. Throws naming what is missing or
 * mixed; `what` names the work (e.g. 'analysis') and `command` the shard command for the message.
 */
export function completeShardSet(dir: string, what: string, command: (s: Shard) => string, ext = ''): { shard: Shard; dir: string }[] {
  const all = listShards(dir, ext);
  if (all.length === 0) throw new Error(`${dir} holds no ${what} shards (<i>-of-<N> folders): run \`${command({ index: 0, count: 2 })}\` and the other shards first`);
  const counts = [...new Set(all.map((s) => s.shard.count))];
  if (counts.length > 1) throw new Error(`${dir} holds ${what} shards of ${counts.join(' and ')} jobs; keep one set (move the others away) and merge again`);
  const N = counts[0];
  const missing = Array.from({ length: N }, (_, i) => i).filter((i) => !all.some((s) => s.shard.index === i));
  if (missing.length > 0) {
    throw new Error(`${dir}: the ${what} shards ${missing.map((i) => `${i}/${N}`).join(', ')} of ${N} are missing; run ${missing.map((i) => `\`${command({ index: i, count: N })}\``).join(', ')}, then merge again`);
  }
  return all;
}
