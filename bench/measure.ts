/**
 * What every benchmark row shares: the row itself, the timers, and the Python peer measured in
 * alternation with ours.
 *   a round          = `reps` timed runs (after `warmup` untimed ones before the first round)
 *   row value        = work / (median over rounds of each round's median seconds)
 *   spread           = p10-p90 (and min-max) of work / seconds over every timed run of every round
 *   pair             = ours and the peer, alternately: ours, peer, ours, peer, ... for `rounds` rounds
 *                      (default 3), each side after a short idle pause (PAUSE_MS) so the other side's
 *                      spinning threads go to sleep; a noisy neighbour then hits both sides
 *   peer             = a Python script of bench/peers/ run with --serve: it warms up, prints a ready line,
 *                      then one JSON line per round (peers/peer.py), naming the BLAS it actually runs on
 *   ratio            = ours / peer, withheld when the peer runs on the reference BLAS (such a peer
 *                      then runs one round only: its figure is printed, no ratio drawn from it)
 * Shared measures: the MatMul row's model [M,K]x[K,N] (GFLOP = 2 M K N / 1e9 per run), and the
 * training FLOPs of a GPT-2 per token, 6 N (forward + backward through N = 12 L d^2 + V d weights)
 * + 12 L T d (attention scores).
 * The machine's ceiling: its float32 FMA peak measured now by bench/machine-peak.c (compiled with
 * cc), the bound no GEMM passes on this machine.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { Graph, ops } from '../engine/graph';
import type { GPT2Config } from '../engine/models/gpt2';
import { type HostTensor, Runner } from '../engine/runtime/runner';
import { Rng } from '../engine/util/rng';

/** GPT-2 training FLOPs per token (see the header). */
export function trainFlopsPerToken(s: { L: number; D: number; T: number; V: number }): number {
  const n = s.L * 12 * s.D * s.D + s.V * s.D;
  return 6 * n + 12 * s.L * s.T * s.D;
}

/** A GPT-2 bench shape: layers, width, heads, sequence, batch, vocabulary. */
export interface GPT2Shape {
  label: string;
  L: number;
  D: number;
  H: number;
  T: number;
  B: number;
  V: number;
}

/** The shapes engine.md measured PyTorch on (vocab 64): the tiny and small presets' trunks. */
export const GPT2_SHAPES: GPT2Shape[] = [
  { label: 'tiny', L: 4, D: 128, H: 4, T: 64, B: 32, V: 64 },
  { label: 'small', L: 6, D: 256, H: 8, T: 128, B: 32, V: 64 },
];

/** The GPT-2 config of a bench shape (positions: T and 64 more). */
export function shapeConfig(s: GPT2Shape): GPT2Config {
  return { vocabSize: s.V, nPositions: s.T + 64, nEmbd: s.D, nLayer: s.L, nHead: s.H, layerNormEps: 1e-5 };
}

/** A training batch of a bench shape: random ids and targets, [B, T] each. */
export function randomTrainBatch(s: GPT2Shape, rng: Rng): Record<'ids' | 'targets', HostTensor> {
  const ids = () => ({ data: BigInt64Array.from({ length: s.B * s.T }, () => BigInt(rng.int(0, s.V - 1))), dims: [s.B, s.T] });
  return { ids: ids(), targets: ids() };
}

export const MATMUL_SHAPE = [512, 768, 3072] as const;

/** The MatMul row's session: [M,K] input times a [K,N] initializer; `gflop` per run. */
export async function matmulRunner(threads: number): Promise<{ runner: Runner; feeds: Record<string, HostTensor>; gflop: number }> {
  const [M, K, N] = MATMUL_SHAPE;
  const rng = new Rng(1);
  const g = new Graph('matmul');
  const a = g.input('a', [M, K]);
  const w = g.initializer('w', Float32Array.from({ length: K * N }, () => rng.normal()), [K, N]);
  g.output(ops.matmul(a, w), 'y');
  const runner = await Runner.fromGraph(g, { threads });
  return { runner, feeds: { a: { data: Float32Array.from({ length: M * K }, () => rng.normal()), dims: [M, K] } }, gflop: (2 * M * K * N) / 1e9 };
}

/** GFLOP/s of the MatMul row, ours only: the median of 10 runs after 5. */
export async function matmulGflops(threads: number): Promise<number> {
  const { runner, feeds, gflop } = await matmulRunner(threads);
  const times = await timeSamples(() => runner.run(feeds), 5, 10);
  await runner.release();
  return gflop / quantile(times, 0.5);
}

/** p10-p90 and min-max of a row's measurements, in the row's unit; n timed runs over `rounds` rounds. */
export interface Spread {
  p10: number;
  p90: number;
  min: number;
  max: number;
  n: number;
  rounds: number;
}

/** The BLAS a peer actually runs on (bench/peers/peer.py blas_in_use). */
export interface PeerBlas {
  kind: string; // openblas | mkl | blis | atlas | flexiblas | accelerate | reference | unknown | builtin
  name: string;
  path: string | null;
  libraries: string[];
  config?: string;
  threads?: number;
}

export interface PeerResult {
  name: string;
  value: number;
  spread: Spread;
  library?: string;
  threads?: number;
  blas?: PeerBlas;
  /** ours / peer, absent when withheld. */
  ratio?: number;
  /** Why there is no ratio (the peer on the reference BLAS). */
  ratioWithheld?: string;
  /** The peer died after some rounds. */
  incomplete?: string;
}

export interface Row {
  name: string;
  value: number;
  unit: string;
  /** Absent for rows measured once (said so when printed). */
  spread?: Spread;
  peer?: PeerResult | { name: string; error: string };
  notes?: string;
  /** A train row's model FLOP/s beside the MatMul row's, round by round in alternation (alternateWithMatmulRow). */
  alternationWithMatmulRow?: AlternationRound[];
}

/** Debian's python3 (python3-numpy / python3-torch), not a virtualenv's. */
export const PYTHON = '/usr/bin/python3';

/** Settings of every pair, set once by bench.ts from its flags. */
export const pairSettings = {
  rounds: 3,
  /** Added to the peers' environment only (e.g. LD_LIBRARY_PATH to force a BLAS). */
  peerEnv: {} as Record<string, string>,
};

/** Idle time before each side of a round. */
const PAUSE_MS = 200;

export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

const median = (xs: number[]): number => quantile(xs, 0.5);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Spread of a rate work / seconds over timed runs (a short time is a high rate). */
export function rateSpread(seconds: number[], work: number, rounds: number): Spread {
  return { p10: work / quantile(seconds, 0.9), p90: work / quantile(seconds, 0.1), min: work / Math.max(...seconds), max: work / Math.min(...seconds), n: seconds.length, rounds };
}

/** Spread of measured values themselves (latencies). */
export function valueSpread(values: number[], rounds = 1): Spread {
  return { p10: quantile(values, 0.1), p90: quantile(values, 0.9), min: Math.min(...values), max: Math.max(...values), n: values.length, rounds };
}

/** Seconds of each of `reps` timed runs after `warmup` untimed ones. */
export async function timeSamples(fn: () => Promise<unknown>, warmup: number, reps: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return times;
}

/** One round of a step in alternation with the MatMul row: each side's median GFLOP/s, and their ratio. */
export interface AlternationRound {
  matmulGflops: number;
  stepGflops: number;
  share: number;
}

/**
 * A step's GFLOP/s as a share of the MatMul row measured beside it, round by round. After 5 runs of
 * a new MatMul session, each round times the row (2 runs, then 8 timed) and then the step (1 run,
 * then `steps` timed), each after a pair's idle pause; share = (stepGflop / the step's median
 * seconds) / the row's median GFLOP/s. The row's 12 ms runs swing by up to 1.5x within a minute
 * (3x on some hosts) while a step of about a second holds steady (docs/performance.md), so each round
 * keeps both sides' rates, and a reader sees which side moved. Returns every round.
 */
export async function alternateWithMatmulRow(step: () => Promise<unknown>, stepGflop: number, threads: number, rounds = 5, steps = 3): Promise<AlternationRound[]> {
  const mm = await matmulRunner(threads);
  await timeSamples(() => mm.runner.run(mm.feeds), 5, 0); // a new session's first runs are slow
  const out: AlternationRound[] = [];
  for (let r = 0; r < rounds; r++) {
    await sleep(PAUSE_MS);
    const matmulGflops = mm.gflop / median(await timeSamples(() => mm.runner.run(mm.feeds), 2, 8));
    await sleep(PAUSE_MS);
    const stepGflops = stepGflop / median(await timeSamples(step, 1, steps));
    out.push({ matmulGflops, stepGflops, share: stepGflops / matmulGflops });
  }
  await mm.runner.release();
  return out;
}

/** The machine's float32 FMA peak (bench/machine-peak.c): GFLOP/s for 1..threads threads. */
export interface MachinePeak {
  threads: number;
  avx2: number[];
  avx512: number[] | null;
  /** Dependent adds per nanosecond: the core clock in GHz. */
  addsPerNs: number;
  /** At `threads` threads, the wider of AVX2 and AVX-512. */
  gflops: number;
}

const PEAK_SOURCE = path.resolve(__dirname, '../bench/machine-peak.c');

/** Compiles (once per source version, into the temp folder) and runs the peak probe, or says why not. */
export function measureMachinePeak(threads: number): MachinePeak | { error: string } {
  if (process.arch !== 'x64') return { error: `the probe is x86-64 only (this is ${process.arch})` };
  const source = fs.readFileSync(PEAK_SOURCE);
  const exe = path.join(os.tmpdir(), `memgen-machine-peak-${createHash('sha256').update(source).digest('hex').slice(0, 12)}`);
  const tmp = `${exe}.${process.pid}`; // built here, then renamed: a half-written probe is never run
  try {
    if (!fs.existsSync(exe)) {
      execFileSync('cc', ['-O2', '-pthread', '-o', tmp, PEAK_SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
      fs.renameSync(tmp, exe);
    }
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') return { error: 'no C compiler to build bench/machine-peak.c (apt-get install gcc)' };
    return { error: `cc bench/machine-peak.c failed: ${String(err.stderr ?? err.message).slice(0, 200)}` };
  }
  try {
    const r = JSON.parse(execFileSync(exe, [String(threads)], { encoding: 'utf8' })) as Omit<MachinePeak, 'gflops'>;
    return { ...r, gflops: Math.max(r.avx2[threads - 1], r.avx512?.[threads - 1] ?? 0) };
  } catch (e) {
    return { error: `bench/machine-peak.c: ${(e as Error).message.slice(0, 200)}` };
  }
}

/** One line: the peak at each thread count, both widths, the clock. */
export function describeMachinePeak(p: MachinePeak | { error: string }): string {
  if ('error' in p) return `not measured (${p.error})`;
  const series = (xs: number[]) => xs.map((x, i) => `${i + 1} thread${i ? 's' : ''} ${x.toFixed(1)}`).join(', ');
  return `${p.gflops.toFixed(1)} GFLOP/s on ${p.threads} threads (AVX2: ${series(p.avx2)}; AVX-512: ${p.avx512 ? series(p.avx512) : 'absent'}); dependent adds ${p.addsPerNs.toFixed(2)}/ns`;
}

interface PeerLine {
  ready?: boolean;
  value?: number;
  median_s?: number;
  times_s?: number[];
  blas?: PeerBlas;
  library?: string;
  threads?: number;
}

/** A peer script in --serve mode: one round per request. */
class PeerProcess {
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private waiting: (() => void) | undefined;
  private stderr = '';
  private exited: string | undefined;

  constructor(script: string, args: string[]) {
    // No __pycache__ beside the peer scripts (bench/peers/peer.py is imported).
    const env = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', ...pairSettings.peerEnv };
    this.child = spawn(PYTHON, [script, ...args, '--serve'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      if (l.trimStart().startsWith('{')) this.lines.push(l);
      this.waiting?.();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    const done = (why: string) => {
      this.exited ??= why;
      this.waiting?.();
    };
    this.child.on('error', (e) => done(e.message));
    this.child.on('exit', (code, sig) => done(`exited (${sig ?? code})`));
    this.child.stdin!.on('error', () => {});
  }

  /** The next JSON line; throws with the last line of stderr if the peer died. */
  async next(timeoutMs = 300_000): Promise<PeerLine> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.exited !== undefined) throw new Error(this.stderr.trim().split('\n').pop() || this.exited);
      if (Date.now() > deadline) {
        this.close();
        throw new Error(`no answer in ${timeoutMs / 1000} s`);
      }
      await new Promise<void>((r) => {
        this.waiting = r;
        setTimeout(r, 1000);
      });
      this.waiting = undefined;
    }
    return JSON.parse(this.lines.shift()!) as PeerLine;
  }

  async round(): Promise<PeerLine> {
    this.child.stdin!.write('\n');
    return this.next();
  }

  close(): void {
    this.child.stdin!.end();
    if (this.exited === undefined) setTimeout(() => this.exited === undefined && this.child.kill(), 10_000).unref();
  }
}

/** The peer's words for its BLAS, e.g. "torch 1.13 on OpenBLAS 0.3.21 (/usr/lib/.../libopenblasp-r0.3.21.so)". */
export function describePeerBlas(p: PeerResult): string {
  const b = p.blas;
  if (!b) return 'BLAS not reported';
  return `${p.library ?? p.name} on ${b.name}${b.path ? ` (${b.path})` : ''}`;
}

/** ours / peer, or why not: no ratio against the reference BLAS. */
function judge(ours: number, peer: PeerResult): PeerResult {
  if (peer.blas?.kind === 'reference') {
    const lib = (peer.library ?? peer.name).split(' ')[0];
    return { ...peer, ratioWithheld: `${lib} runs on the reference BLAS (${peer.blas.path}); apt-get install libopenblas0-pthread` };
  }
  return { ...peer, ratio: ours / peer.value };
}

export interface PairSpec {
  /** Work per timed call of ours (the row's value is work / seconds). */
  work: number;
  ours: () => Promise<unknown>;
  /** Untimed calls before the first round. */
  warmup: number;
  /** Timed calls per round. */
  reps: number;
  /** The peer: a script of bench/peers/ and its arguments (its STEPS = timed repeats per round); its work per repeat may differ. */
  peer?: { name: string; script: string; args: string[] };
}

export interface PairResult {
  value: number;
  spread: Spread;
  peer?: Row['peer'];
}

/** Ours and the peer alternately, `pairSettings.rounds` rounds; each side's value is its median over rounds. */
export async function measurePair(spec: PairSpec): Promise<PairResult> {
  const rounds = Math.max(1, pairSettings.rounds);
  for (let i = 0; i < spec.warmup; i++) await spec.ours();
  let proc: PeerProcess | undefined;
  let peerError: string | undefined;
  let peerRounds = rounds;
  if (spec.peer) {
    try {
      proc = new PeerProcess(spec.peer.script, spec.peer.args);
      const ready = await proc.next(); // set up and warmed up
      // No ratio is drawn against the reference BLAS, so its (slow) figure needs one round only.
      if (ready.blas?.kind === 'reference') peerRounds = 1;
    } catch (e) {
      peerError = (e as Error).message.slice(0, 200);
      proc?.close();
      proc = undefined;
    }
  }
  const ours: number[][] = [];
  const peer: PeerLine[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      await sleep(PAUSE_MS);
      ours.push(await timeSamples(spec.ours, 0, spec.reps));
      if (proc && peer.length < peerRounds) {
        await sleep(PAUSE_MS);
        try {
          peer.push(await proc.round());
        } catch (e) {
          peerError = (e as Error).message.slice(0, 200);
          proc.close();
          proc = undefined;
        }
      }
    }
  } finally {
    proc?.close();
  }
  const value = spec.work / median(ours.map(median));
  const result: PairResult = { value, spread: rateSpread(ours.flat(), spec.work, rounds) };
  if (spec.peer) {
    if (peer.length === 0) {
      result.peer = { name: spec.peer.name, error: peerError ?? 'no result' };
    } else {
      // The peer's work per repeat: value = work / median_s of its round.
      const work = peer[0].value! * peer[0].median_s!;
      const last = peer[peer.length - 1];
      const p: PeerResult = {
        name: spec.peer.name,
        value: work / median(peer.map((l) => l.median_s!)),
        spread: rateSpread(peer.flatMap((l) => l.times_s!), work, peer.length),
        library: last.library,
        threads: last.threads,
        blas: last.blas,
      };
      if (peerError !== undefined) p.incomplete = `stopped after ${peer.length} of ${peerRounds} rounds: ${peerError}`;
      result.peer = judge(value, p);
    }
  }
  return result;
}

/** A figure as the bench prints it: one decimal, two significant digits below 1. */
export const fmt = (x: number): string => (Math.abs(x) >= 1 ? x.toFixed(1) : x.toPrecision(2));

export function describeSpread(s: Spread | undefined): string {
  if (!s) return 'one run, no spread';
  const rounds = s.rounds > 1 ? `${s.rounds} rounds, ` : '';
  return `p10-p90 ${fmt(s.p10)}-${fmt(s.p90)}, min-max ${fmt(s.min)}-${fmt(s.max)} over ${rounds}${s.n} runs`;
}
