/**
 * Pairwise extraction (method.md section 4): the two sets G and M of site vectors.
 *
 *   for each test input x (task.test) and its rephrasing x' = task.rephrase(x):
 *     generate greedily for both, classify both;
 *     keep the pair iff one member is 'gen' and the other 'mem';
 *     append the gen member's [L, d] site vectors at the last prompt token to hidden_gen.npy and
 *     the mem member's to hidden_mem.npy (row k of both = pair k), and a PairRecord to pairs.jsonl.
 *
 * Input stream: one Rng seeded with pairSeed(run seed) = deriveSeed(seed, 'analysis/pairs'), which
 * draws x then x' for each input in turn. It is unrelated to the training stream (Rng(seed * 7919 +
 * 17)) and to the evaluation set (Rng(seed ^ 0x5eed7e57), train/evaluate.ts), so the analysis does
 * not reuse the exact inputs of the test table. Inputs are not deduplicated (the space is large; a
 * repeated input adds a repeated pair, as in the paper's sampling).
 *
 * Batches: `batch` inputs (default 128) and their rephrasings go to one generate call. The stream
 * position is saved per input, so stopping in mid-batch (maxPairs reached) loses nothing.
 * After each batch, in this order: the npy rows and pairs.jsonl lines are written, the npy headers
 * rewritten and everything fsynced, then pairs-state.json is written atomically. The state is the
 * truth: resuming cuts the files back to state.pairs rows (a crash between the two steps leaves
 * extra rows, which the resumed stream regenerates) and continues the stream from state.rng.
 * Stops at maxPairs kept, maxTries inputs tried (both counted over all sessions), or when
 * shouldStop() says so (checked between batches). If no pair is kept after min(giveUpAfter (2000),
 * maxTries) inputs, NoPairsError says which behaviours the model showed instead.
 *
 * A shard (opts.shard; shards.ts, docs/cluster.md) draws the same stream but generates only for the
 * blocks of SHARD_BLOCK inputs it owns, one block per generate call (batch is then fixed); the inputs
 * of other blocks are drawn and skipped. It stops at maxPairs (its quota) or when its next block starts
 * at or after maxTries (a stream index, T of the whole job), only between blocks, so that it covers
 * every owned input below its state's shard.position. It also writes inputs.jsonl (InputRecord, each
 * owned input's two classes) for `memgen merge`, cut back with the rest on resume.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GPT2Site } from '../models/hooks';
import { type SiteFamily, familyField } from '../models/sites';
import type { GenerateOptions, GenerateResult } from '../models/gpt2-infer';
import { readJSON, writeJSON } from '../runs/run';
import { type Behaviour, type Example, type Task, deriveSeed } from '../tasks/task';
import { Rng } from '../util/rng';
import { ANALYSIS_FILES, type BehaviourCounts, type InputRecord, SHARD_INPUTS_FILE, type PairMember, type PairRecord, type PairsState } from './files';
import { NpyAppender } from './npy';
import { SHARD_BLOCK, type Shard, nextOwned } from './shards';

/** The seed of the input stream for a run seeded `runSeed`. */
export const pairSeed = (runSeed: number): number => deriveSeed(runSeed, 'analysis/pairs');

/** What extraction needs of a model: GPT2Inference satisfies it; a LoRA run's model (runs/lora-run.ts) too. */
export interface PairModel {
  readonly site: GPT2Site;
  /** 'llama': sites named layers.{i}.{site}; absent: GPT-2. */
  readonly family?: SiteFamily;
  readonly cfg: { nLayer: number; nEmbd: number };
  generate(prompts: readonly number[][], opts: GenerateOptions): Promise<GenerateResult>;
}

export interface PairsProgress {
  pairs: number;
  tried: number;
  counts: BehaviourCounts;
  /** Seconds of this session. */
  seconds: number;
}

export interface ExtractOptions {
  /** Folder for the files (RUN/analysis). */
  dir: string;
  task: Task;
  model: PairModel;
  /** The run's modelHash (runs/run.ts), recorded so that resuming with another model is refused. */
  modelHash: string;
  /** Input stream seed: pairSeed(run seed). */
  seed: number;
  /** Stop when this many pairs are on disk. */
  maxPairs: number;
  /** Stop when this many inputs were tried (all sessions); default unlimited. */
  maxTries?: number;
  /** Inputs per generate call (each with its rephrasing: 2x prompts). Default 128. */
  batch?: number;
  /** Give up (NoPairsError) when no pair is kept after this many inputs. Default 2000. */
  giveUpAfter?: number;
  /** Continue the extraction in `dir` (its state must match); false: `dir` must hold none. */
  resume: boolean;
  onProgress?: (p: PairsProgress) => void;
  shouldStop?: () => boolean;
  /** Extract shard `index` of `count` only (see the header); pairsWanted = --pairs of the whole job. */
  shard?: Shard & { pairsWanted: number };
}

export interface ExtractResult {
  pairs: number;
  /** Pairs on disk before this session. */
  resumedFrom: number;
  tried: number;
  counts: BehaviourCounts;
  stopReason: 'maxPairs' | 'maxTries' | 'interrupted';
  /** Seconds of this session, and over all sessions. */
  seconds: number;
  totalSeconds: number;
  /** Pairs kept in this session per second of it. */
  pairsPerSecond: number;
}

/** The model never showed both behaviours within one pair. */
export class NoPairsError extends Error {}

/** Files of an extraction, absolute. */
function files(dir: string) {
  return {
    gen: path.join(dir, ANALYSIS_FILES.hiddenGen),
    mem: path.join(dir, ANALYSIS_FILES.hiddenMem),
    pairs: path.join(dir, ANALYSIS_FILES.pairs),
    state: path.join(dir, ANALYSIS_FILES.state),
    inputs: path.join(dir, SHARD_INPUTS_FILE),
  };
}

/** Whether `dir` holds any file of an extraction. */
export function hasExtraction(dir: string): boolean {
  return Object.values(files(dir)).some((f) => fs.existsSync(f));
}

/** Reads pairs-state.json of `dir` (null if absent). */
export function readPairsState(dir: string): PairsState | null {
  const file = files(dir).state;
  return fs.existsSync(file) ? readJSON<PairsState>(file, 'pairs state') : null;
}

/** Reads pairs.jsonl of `dir`, the first `limit` lines (default all). */
export function readPairRecords(dir: string, limit = Infinity): PairRecord[] {
  const text = fs.readFileSync(files(dir).pairs, 'utf8');
  const lines = text.split('\n').filter((l) => l !== '');
  return lines.slice(0, Math.min(limit, lines.length)).map((l) => JSON.parse(l) as PairRecord);
}

/** Byte length of the first `n` lines of `file` (read in blocks; null when it has fewer). */
function lineEnd(file: string, n: number): number | null {
  if (n === 0) return 0;
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    let pos = 0;
    let seen = 0;
    for (;;) {
      const got = fs.readSync(fd, buf, 0, buf.length, pos);
      if (got === 0) return null;
      for (let i = 0; i < got; i++) {
        if (buf[i] === 0x0a && ++seen === n) return pos + i + 1;
      }
      pos += got;
    }
  } finally {
    fs.closeSync(fd);
  }
}

function noPairsMessage(tried: number, c: BehaviourCounts): string {
  const n = c.gen + c.mem + c.other;
  const pct = (x: number) => `${x} (${((100 * x) / Math.max(1, n)).toFixed(1)}%)`;
  const seen = `gen ${pct(c.gen)}, mem ${pct(c.mem)}, other ${pct(c.other)} of ${n} generations`;
  const head = `no pair with one gen and one mem member in ${tried} inputs (each with its rephrasing): ${seen}.`;
  let why: string;
  if (c.gen === 0 && c.mem === 0) why = 'The model never produced either behaviour: it is undertrained (or not trained on this task).';
  else if (c.mem === 0) why = `The model shows only one behaviour: it never memorizes here (its other answers are ${c.gen > c.other ? 'correct' : 'mostly malformed or wrong: it is undertrained'}).`;
  else if (c.gen === 0) why = `The model shows only one behaviour: it never generalizes here (its other answers are ${c.mem > c.other ? 'the memorized ones' : 'mostly malformed or wrong: it is undertrained'}).`;
  else why = 'Both behaviours occur, but never within one pair: the model answers an input and its rephrasing alike.';
  return `${head} ${why} Pairs need both behaviours on the same input: train longer, or use another checkpoint whose test table (memgen eval --run RUN) shows both gen and mem.`;
}

/** Runs (or continues) an extraction; see the header. */
export async function extractPairs(opts: ExtractOptions): Promise<ExtractResult> {
  const { dir, task, model } = opts;
  const { shard } = opts;
  if (shard && opts.batch !== undefined && opts.batch !== SHARD_BLOCK) throw new Error(`a shard generates one block of ${SHARD_BLOCK} inputs per call; batch ${opts.batch} cannot be used`);
  const batch = shard ? SHARD_BLOCK : opts.batch ?? 128;
  const maxTries = opts.maxTries ?? Infinity;
  const giveUpAfter = opts.giveUpAfter ?? 2000;
  if (!Number.isInteger(opts.maxPairs) || opts.maxPairs < 1) throw new Error(`maxPairs must be a positive integer, got ${opts.maxPairs}`);
  if (!(maxTries >= 1)) throw new Error(`maxTries must be at least 1, got ${maxTries}`);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be a positive integer, got ${batch}`);
  const L = model.cfg.nLayer;
  const d = model.cfg.nEmbd;
  const rowSize = L * d;
  const f = files(dir);
  fs.mkdirSync(dir, { recursive: true });

  // Open or create the files, reconciled with the state.
  const existing = opts.resume ? readPairsState(dir) : null;
  const { state, gen, mem } = existing ? reopen(dir, existing, opts, L, d) : create(dir, opts, L, d);
  const resumedFrom = state.pairs;
  const secondsBefore = state.seconds;
  const start = Date.now();
  const elapsed = () => (Date.now() - start) / 1000;
  const tok = task.tokenizer;
  const rng = Rng.restore(state.rng);
  const lines = fs.openSync(f.pairs, 'a');
  const inputLines = shard ? fs.openSync(f.inputs, 'a') : null;
  if (state.shard && shard) {
    state.shard.pairsWanted = shard.pairsWanted;
    state.shard.maxTries = Number.isFinite(maxTries) ? maxTries : null;
  }
  /** The stream index of the next input to generate: the next owned block's first for a shard. */
  const nextInput = () => (state.shard ? nextOwned(state.shard, state.shard.position) : state.tried);
  let stopReason: ExtractResult['stopReason'];

  const save = () => {
    gen.flush();
    mem.flush();
    fs.fsyncSync(lines);
    if (inputLines !== null) fs.fsyncSync(inputLines);
    state.seconds = secondsBefore + elapsed();
    state.updatedAt = new Date().toISOString();
    writeJSON(f.state, state);
  };
  const progress = () => opts.onProgress?.({ pairs: state.pairs, tried: state.tried, counts: { ...state.counts }, seconds: elapsed() });

  try {
    progress();
    for (;;) {
      if (state.pairs >= opts.maxPairs) {
        stopReason = 'maxPairs';
        break;
      }
      if (nextInput() >= maxTries) {
        stopReason = 'maxTries';
        break;
      }
      if (opts.shouldStop?.()) {
        stopReason = 'interrupted';
        break;
      }

      // Draw the batch, remembering the stream position after each input (a shard first draws and skips the inputs it does not own).
      const first = nextInput();
      if (state.shard) {
        for (let t = state.shard.position; t < first; t++) task.rephrase(task.test(rng), rng);
      }
      const n = Math.min(batch, maxTries - first);
      const inputs: Example[] = [];
      const rephrased: Example[] = [];
      const after: PairsState['rng'][] = [];
      for (let i = 0; i < n; i++) {
        inputs.push(task.test(rng));
        rephrased.push(task.rephrase(inputs[i], rng));
        after.push(rng.state);
      }
      const prompts = [...inputs, ...rephrased].map((e) => tok.encode(e.prompt));
      const res = await model.generate(prompts, { maxNewTokens: task.maxAnswerTokens, eosId: tok.eoaId });

      for (let i = 0; i < n; i++) {
        const member = (ex: Example, j: number): PairMember => {
          const output = tok.decode(res.tokens[j]);
          return { prompt: ex.prompt, output, behaviour: task.classify(ex, output) };
        };
        const a = member(inputs[i], i);
        const b = member(rephrased[i], n + i);
        state.counts[a.behaviour]++;
        state.counts[b.behaviour]++;
        state.tried++;
        state.sinceLastPair++;
        state.rng = after[i];
        if (inputLines !== null) fs.writeSync(inputLines, JSON.stringify({ input: first + i, original: a.behaviour, rephrasing: b.behaviour } satisfies InputRecord) + '\n');
        const kinds = new Set<Behaviour>([a.behaviour, b.behaviour]);
        if (kinds.has('gen') && kinds.has('mem')) {
          const genRow = a.behaviour === 'gen' ? i : n + i;
          const memRow = a.behaviour === 'gen' ? n + i : i;
          gen.append(res.hidden.subarray(genRow * rowSize, (genRow + 1) * rowSize));
          mem.append(res.hidden.subarray(memRow * rowSize, (memRow + 1) * rowSize));
          const record: PairRecord = {
            index: state.pairs, input: first + i, tries: state.sinceLastPair,
            genMember: a.behaviour === 'gen' ? 'input' : 'rephrasing',
            original: a, rephrasing: b,
            genAnswer: inputs[i].genAnswer, memAnswer: inputs[i].memAnswer,
          };
          fs.writeSync(lines, JSON.stringify(record) + '\n');
          state.pairs++;
          state.sinceLastPair = 0;
          if (state.pairs >= opts.maxPairs && !state.shard) break; // a shard finishes its block
        }
      }
      if (state.shard) state.shard.position = first + n;
      save();
      progress();
      if (state.pairs === 0 && state.tried >= Math.min(giveUpAfter, maxTries)) throw new NoPairsError(noPairsMessage(state.tried, state.counts));
    }
  } finally {
    fs.closeSync(lines);
    if (inputLines !== null) fs.closeSync(inputLines);
    gen.close();
    mem.close();
  }
  const seconds = elapsed();
  return {
    pairs: state.pairs, resumedFrom, tried: state.tried, counts: state.counts, stopReason, seconds,
    totalSeconds: secondsBefore + seconds,
    pairsPerSecond: seconds > 0 ? (state.pairs - resumedFrom) / seconds : 0,
  };
}

interface OpenExtraction {
  state: PairsState;
  gen: NpyAppender;
  mem: NpyAppender;
}

/**
 * A new extraction in `dir` (which must hold none, or, when resuming, only the files of a creation
 * killed before its state was written): empty files, then the initial state.
 */
function create(dir: string, opts: ExtractOptions, L: number, d: number): OpenExtraction {
  const f = files(dir);
  // killed while creating (before pairs-state.json was first written, so before any pair): nothing is recorded, start again
  const unrecorded = opts.resume && !fs.existsSync(f.state) && (!fs.existsSync(f.pairs) || fs.statSync(f.pairs).size === 0);
  if (hasExtraction(dir) && !unrecorded) {
    throw new Error(opts.resume
      ? `${dir} holds extraction files but no ${ANALYSIS_FILES.state} (damaged); start over with --force`
      : `${dir} already holds an extraction; continue it (resume) or remove it first (--force)`);
  }
  const now = new Date().toISOString();
  const state: PairsState = {
    format: 'memgen-pairs-state/1', task: opts.task.name, site: opts.model.site, ...familyField(opts.model.family), layers: L, d, seed: opts.seed, modelHash: opts.modelHash,
    rng: new Rng(opts.seed).state, tried: 0, pairs: 0, sinceLastPair: 0, counts: { gen: 0, mem: 0, other: 0 },
    seconds: 0, createdAt: now, updatedAt: now,
    ...(opts.shard ? { shard: { index: opts.shard.index, count: opts.shard.count, block: SHARD_BLOCK, position: 0, pairsWanted: opts.shard.pairsWanted, maxTries: opts.maxTries ?? null } } : {}),
  };
  const gen = NpyAppender.open(f.gen, [L, d], 'create');
  const mem = NpyAppender.open(f.mem, [L, d], 'create');
  fs.writeFileSync(f.pairs, '');
  if (opts.shard) fs.writeFileSync(f.inputs, '');
  writeJSON(f.state, state);
  return { state, gen, mem };
}

/** The extraction in `dir` recorded by `state`, checked against `opts` and cut back to state.pairs. */
function reopen(dir: string, state: PairsState, opts: ExtractOptions, L: number, d: number): OpenExtraction {
  const f = files(dir);
  const mismatch: string[] = [];
  if (state.format !== 'memgen-pairs-state/1') mismatch.push(`format ${state.format}`);
  if (state.task !== opts.task.name) mismatch.push(`task ${state.task}, not ${opts.task.name}`);
  if (state.site !== opts.model.site) mismatch.push(`site ${state.site}, not ${opts.model.site}`);
  if (state.layers !== L || state.d !== d) mismatch.push(`[${state.layers}, ${state.d}] vectors, not [${L}, ${d}]`);
  if (state.seed !== opts.seed) mismatch.push(`input seed ${state.seed}, not ${opts.seed}`);
  if (state.modelHash !== opts.modelHash) mismatch.push('another model (the run was retrained since)');
  const shardText = (s?: Shard) => (s ? `shard ${s.index}/${s.count}` : 'no shard');
  if ((state.shard?.index ?? -1) !== (opts.shard?.index ?? -1) || (state.shard?.count ?? -1) !== (opts.shard?.count ?? -1)) mismatch.push(`${shardText(state.shard)}, not ${shardText(opts.shard)}`);
  if (state.shard && state.shard.block !== SHARD_BLOCK) mismatch.push(`blocks of ${state.shard.block} inputs, not ${SHARD_BLOCK}`);
  if (mismatch.length > 0) throw new Error(`cannot resume the extraction in ${dir}: it was made with ${mismatch.join('; ')}. Start over with --force`);
  const damaged = (why: string) => new Error(`cannot resume the extraction in ${dir}: ${ANALYSIS_FILES.state} records ${state.pairs} pairs, but ${why} (damaged). Start over with --force`);
  if (!fs.existsSync(f.gen) || !fs.existsSync(f.mem) || !fs.existsSync(f.pairs)) throw damaged('files are missing');
  const cut = lineEnd(f.pairs, state.pairs);
  if (cut === null) throw damaged(`${ANALYSIS_FILES.pairs} holds fewer lines`);
  const inputsCut = state.shard ? (fs.existsSync(f.inputs) ? lineEnd(f.inputs, state.tried) : null) : 0;
  if (inputsCut === null) throw damaged(`${SHARD_INPUTS_FILE} is missing or holds fewer than the ${state.tried} inputs tried`);
  const opened: NpyAppender[] = [];
  try {
    for (const file of [f.gen, f.mem]) {
      const w = NpyAppender.open(file, [L, d], 'append');
      opened.push(w);
      if (w.rows < state.pairs) throw damaged(`${path.basename(file)} holds only ${w.rows} rows`);
    }
  } catch (e) {
    opened.forEach((w) => w.close());
    throw e;
  }
  fs.truncateSync(f.pairs, cut);
  if (state.shard) fs.truncateSync(f.inputs, inputsCut);
  opened.forEach((w) => w.truncate(state.pairs));
  return { state, gen: opened[0], mem: opened[1] };
}
