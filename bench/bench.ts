/**
 * `npm run bench`: throughput figures measured on this machine, with a peer measured in the same run
 * where one is installed, written to bench/results/<date>-<host>.json and printed as a table.
 * Figures on shared machines swing 2-3x between runs: compare ratios from one file.
 *   GFLOP/s of MatMul [M,K]x[K,N] = 2 M K N / seconds / 1e9
 *   tokens/s of a training step = batch * T / seconds per step
 *   model FLOP/s of training = tokens/s * (6 N + 12 L T d)   (N = weights; the attention term per token)
 *   a train row's share of the MatMul row, three ways: its median over the row's median, its p90
 *   over the row's p90 (each side's faster runs), and round by round in alternation with the row
 *   (measure.ts alternateWithMatmulRow: both sides a few seconds apart, each round's two rates kept;
 *   the median of 5 rounds)
 *   the machine's FMA peak, measured before the rows and after them (bench/machine-peak.c, built with
 *   cc): the MatMul row and the train rows are also given as a share of it, and a MatMul row whose
 *   fastest run passes it is flagged, since no GEMM can (docs/performance.md)
 * Peers: numpy for MatMul (bench/peers/numpy_matmul.py), PyTorch (bench/peers/torch_gpt2.py,
 * torch_llama.py) for the GPT-2 and LLaMA rows, same shapes. How a row with a peer is measured
 * (bench/measure.ts): ours and the peer alternately, ours, peer, ours, peer, ... for 3 rounds
 * (--rounds N), the peer a long-lived process answering one round per request, so a noisy neighbour
 * hits both sides;
 *   value of each side = work / (median over rounds of the round's median seconds)
 *   spread of each side = p10-p90 and min-max of work / seconds over every timed run of every round
 *   ratio = ours / peer, printed only when the peer runs on an optimised BLAS: each peer reads the
 *           BLAS it actually loaded from /proc/self/maps after its first matmul (bench/peers/peer.py)
 *           and the row prints it beside the peer's figure; on Debian's reference BLAS
 *           (/usr/lib/<triplet>/blas/libblas.so.3, what python3-numpy / python3-torch get without
 *           libopenblas0-pthread) the row says "ratio withheld" and why.
 * The results file records per row both sides' value and spread, the peer's BLAS and ratio (or why
 * withheld), and in `peers` each peer library with its BLAS; `pairing` says the rounds and the peer
 * environment.
 * LLaMA rows (bench/llama.ts): a LoRA step on a tiny LLaMA, a forward of a LLaMA-3.2-1B shape.
 * Editor rows (bench/editor.ts): the bundled language server over stdio on runs/arithmetic-tiny.
 * Analysis rows (bench/analysis.ts): pairs/s of the extraction and steered generations/s on the
 * committed runs, one pass each (no spread); scale-out rows: analyze in 1 process vs --jobs 2.
 * Flags:
 *   --only SECTIONS   comma-separated: matmul, copy, gpt2 (= gpt2-tiny,gpt2-small), llama, editor,
 *                     analysis, scale-out; e.g. `npm run bench -- --only matmul,gpt2-tiny`
 *   --runs-from COMMIT  with analysis: also the analysis rows on the runs/ folder of an earlier commit
 *                     (git archive into a temporary folder), e.g. the runs before a retraining
 *   --rounds N        rounds of each pair (default 3)
 *   --peer-ld-library-path DIRS  LD_LIBRARY_PATH of the peers only (onnxruntime does not use a system
 *                     BLAS), e.g. /usr/lib/x86_64-linux-gnu/blas:/usr/lib/x86_64-linux-gnu/lapack puts
 *                     the peers on the reference BLAS to show the withheld ratio
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Graph, ops } from '../engine/graph';
import { runCopyDemo } from '../engine/demo/copy-demo';
import { writeFileAtomic } from '../engine/io/atomic';
import { gitCommit } from '../engine/runs/run';
import { analysisRows, scaleOutRows } from './analysis';
import { editorRows } from './editor';
import { llamaRows } from './llama';
import { GPT2_SHAPES, type GPT2Shape, MATMUL_SHAPE, type PeerResult, type Row, describePeerBlas, describeSpread, fmt, alternateWithMatmulRow, describeMachinePeak, type MachinePeak, matmulRunner, measureMachinePeak, measurePair, pairSettings, quantile, randomTrainBatch, rateSpread, shapeConfig, trainFlopsPerToken } from './measure';
import { GPT2Inference } from '../engine/models/gpt2-infer';
import { gpt2Forward, gpt2ParamInputs, initGPT2 } from '../engine/models/gpt2';
import { Adam } from '../engine/train/optim';
import { TrainStep } from '../engine/train/step';
import { Rng } from '../engine/util/rng';

const THREADS = Number(process.env.MEMGEN_BENCH_THREADS ?? 0) || os.cpus().length;

const NUMPY_SCRIPT = path.resolve(__dirname, '../bench/peers/numpy_matmul.py');

/** The peak measured before the rows, when it was. */
let peak: MachinePeak | undefined;
const ofPeak = (gflops: number): string | undefined => (peak ? `${((100 * gflops) / peak.gflops).toFixed(0)}% of the machine's FMA peak` : undefined);

async function matmulRow(): Promise<Row> {
  const [M, K, N] = MATMUL_SHAPE;
  const { runner, feeds, gflop } = await matmulRunner(THREADS);
  const r = await measurePair({
    work: gflop, ours: () => runner.run(feeds), warmup: 5, reps: 10,
    peer: { name: 'numpy (Debian python3-numpy)', script: NUMPY_SCRIPT, args: [M, K, N, 10].map(String) },
  });
  await runner.release();
  const fastest = r.spread?.max ?? r.value;
  const abovePeak = peak && fastest > peak.gflops
    ? `its fastest run (${fastest.toFixed(1)}) is above the machine's FMA peak: timings not to be trusted (the clock, or other hardware than the probe's)`
    : undefined;
  return {
    name: `ORT MatMul [${M},${K}]x[${K},${N}] float32, ${THREADS} threads`, value: r.value, unit: 'GFLOP/s', spread: r.spread, peer: r.peer,
    notes: ['weight as initializer', '10 runs per round', ofPeak(r.value), abovePeak].filter(Boolean).join('; '),
  };
}

async function trainStepRow(): Promise<Row> {
  const steps = 60;
  // A first short run warms up onnxruntime; the next ones are timed (one run of 60 steps per round).
  await runCopyDemo({ steps: 5, runner: { threads: THREADS } });
  const runs = [];
  for (let i = 0; i < pairSettings.rounds; i++) runs.push(await runCopyDemo({ steps, runner: { threads: THREADS } }));
  const seconds = runs.map((r) => r.seconds);
  const work = runs[0].tokensPerSecond * runs[0].seconds;
  const med = [...seconds].sort((x, y) => x - y)[Math.floor(seconds.length / 2)];
  return {
    name: `train step, one-block GPT-2 d=64 (copy demo), batch 32 x T=16, ${THREADS} threads`,
    value: work / med,
    unit: 'tokens/s',
    spread: rateSpread(seconds, work, runs.length),
    notes: `${runs[0].paramCount} parameters; ${((med / steps) * 1000).toFixed(2)} ms/step including data and JS Adam; spread over runs of ${steps} steps`,
  };
}

const PEER_SCRIPT = path.resolve(__dirname, '../bench/peers/torch_gpt2.py');
const TORCH = 'PyTorch (Debian python3-torch, 2 threads)';

/**
 * The GPT-2 rows. A train step's model FLOP/s is given as a share of the MatMul row three ways (by
 * the medians, at both rows' p90, in alternation) and of the machine's FMA peak: the row's 12 ms runs
 * swing by up to 1.5x within a minute while a step of about a second holds steady, so its median
 * may fall slow or fast (docs/performance.md, "Two speeds were two machines").
 */
async function gpt2Rows(shapes: GPT2Shape[], matmul: Row | undefined): Promise<Row[]> {
  const rows: Row[] = [];
  for (const s of shapes) {
    const cfg = shapeConfig(s);
    const rng = new Rng(2);
    const params = initGPT2(cfg, rng);
    const shape = `${s.label}: ${s.L} layers d=${s.D}, batch ${s.B} x T=${s.T}, vocab ${s.V}`;
    const peer = (mode: string, steps: number) => ({ name: TORCH, script: PEER_SCRIPT, args: [mode, s.L, s.D, s.H, s.T, s.B, s.V, steps].map(String) });
    const tiny = s.label === 'tiny';

    const g = new Graph('bench_train');
    const ids = g.input('ids', [s.B, s.T], 'int64');
    const targets = g.input('targets', [s.B, s.T], 'int64');
    const step = await TrainStep.compile(g, ops.crossEntropy(gpt2Forward(cfg, gpt2ParamInputs(g, cfg), ids), targets), { threads: THREADS });
    const adam = new Adam(params, { lr: 1e-3 });
    const batch = randomTrainBatch(s, rng);
    const trainStep = async () => {
      const { grads } = await step.run(params, batch);
      adam.clipAndStep(params, grads, adam.cfg.lr, 1);
    };
    const train = await measurePair({ work: s.B * s.T, ours: trainStep, warmup: 2, reps: tiny ? 7 : 3, peer: peer('train', tiny ? 4 : 2) });
    const gflops = (tokensPerS: number) => (tokensPerS * trainFlopsPerToken(s)) / 1e9;
    const rounds = await alternateWithMatmulRow(trainStep, (s.B * s.T * trainFlopsPerToken(s)) / 1e9, THREADS);
    await step.release();
    const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
    const share = (ours: number, row: number) => pct(ours / row);
    const fast = matmul?.spread ? `, ${share(gflops(train.spread.p90), matmul.spread.p90)} at both rows' p90` : '';
    rows.push({
      name: `GPT-2 train step (${shape}), incl. JS Adam`, value: train.value, unit: 'tokens/s', spread: train.spread, peer: train.peer,
      notes: `${gflops(train.value).toFixed(1)} GFLOP/s of model FLOPs${matmul ? ` = ${share(gflops(train.value), matmul.value)} of the MatMul row${fast}` : ''}${peak ? `, ${ofPeak(gflops(train.value))}` : ''}; `
        + `in alternation with the MatMul row (${rounds.length} rounds, each side's median in a round): ${pct(quantile(rounds.map((r) => r.share), 0.5))} of it `
        + `(rounds: ${rounds.map((r) => `${pct(r.share)} = ${r.stepGflops.toFixed(0)} / ${r.matmulGflops.toFixed(0)}`).join(', ')} GFLOP/s)`,
      alternationWithMatmulRow: rounds,
    });

    const inf = await GPT2Inference.create(cfg, params, { runner: { threads: THREADS }, batchSize: s.B });
    const prompts = (len: number) => Array.from({ length: s.B }, () => Array.from({ length: len }, () => rng.int(0, s.V - 1)));
    const full = prompts(s.T);
    const fwd = await measurePair({ work: s.B * s.T, ours: () => inf.generate(full, { maxNewTokens: 1, eosId: -1 }), warmup: 2, reps: 4, peer: peer('forward', 4) });
    rows.push({ name: `GPT-2 forward (${shape})`, value: fwd.value, unit: 'tokens/s', spread: fwd.spread, peer: fwd.peer });
    const short = prompts(16);
    const gen = await measurePair({ work: s.B * 32, ours: () => inf.generate(short, { maxNewTokens: 32, eosId: -1 }), warmup: 1, reps: 2, peer: peer('generate', 2) });
    rows.push({
      name: `GPT-2 greedy generation with K/V cache (${s.label}: batch ${s.B}, prompt 16, 32 new tokens)`, value: gen.value, unit: 'tokens/s',
      spread: gen.spread, peer: gen.peer, notes: 'new tokens per second, prefill included',
    });
    await inf.release();
  }
  return rows;
}

/**
 * The CPU as /proc/cpuinfo names it (Linux): family, model and the vector extensions that decide the
 * FMA peak. A VM keeps its host name and model name ("AMD EPYC") across hosts of different kinds;
 * these tell them apart (docs/performance.md, "Two speeds were two machines").
 */
interface CpuId {
  vendor: string | undefined;
  family: number;
  model: number;
  stepping: number;
  vector: string[];
}

function cpuId(): CpuId | undefined {
  let text: string;
  try {
    text = fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1];
  const flags = new Set((field('flags') ?? '').split(' '));
  return {
    vendor: field('vendor_id'), family: Number(field('cpu family')), model: Number(field('model')), stepping: Number(field('stepping')),
    vector: ['avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_tile'].filter((f) => flags.has(f)),
  };
}

function machine() {
  const cpus = os.cpus();
  return {
    host: os.hostname(),
    cpu: cpus[0]?.model ?? 'unknown',
    cpuId: cpuId(),
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.arch()} ${os.release()}`,
    node: process.version,
    onnxruntime: ort.env.versions.node ?? ort.env.versions.common,
  };
}

const SECTIONS = ['matmul', 'copy', 'gpt2-tiny', 'gpt2-small', 'llama', 'editor', 'analysis', 'scale-out'] as const;
type Section = (typeof SECTIONS)[number];

/** The rows of the chosen sections, in order; `runsFrom`: the analysis rows also on an earlier commit's runs. */
async function rowsOf(sections: Set<Section>, root: string, runsFrom: string | undefined, print: (row: Row) => void): Promise<void> {
  let matmul: Row | undefined;
  if (sections.has('matmul')) {
    matmul = await matmulRow();
    print(matmul);
  }
  if (sections.has('copy')) print(await trainStepRow());
  const shapes = GPT2_SHAPES.filter((s) => sections.has(`gpt2-${s.label}` as Section));
  for (const row of await gpt2Rows(shapes, matmul)) print(row);
  if (sections.has('llama')) for (const row of await llamaRows(THREADS)) print(row);
  if (sections.has('editor')) for (const row of await editorRows(root, THREADS)) print(row);
  if (sections.has('analysis')) {
    if (runsFrom !== undefined) {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-bench-runs-'));
      try {
        execFileSync('sh', ['-c', `git archive ${JSON.stringify(runsFrom)} runs | tar -x -C ${JSON.stringify(tmp)}`], { cwd: root });
        for (const row of await analysisRows(tmp, THREADS, ` at ${runsFrom}`)) print(row);
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
    for (const row of await analysisRows(root, THREADS)) print(row);
  }
  if (sections.has('scale-out')) for (const row of scaleOutRows(root)) print(row);
}

function parseSections(only: string | undefined): Set<Section> {
  if (only === undefined) return new Set(SECTIONS);
  const out = new Set<Section>();
  for (const word of only.split(',').map((w) => w.trim()).filter(Boolean)) {
    if (word === 'gpt2') {
      out.add('gpt2-tiny');
      out.add('gpt2-small');
    } else if ((SECTIONS as readonly string[]).includes(word)) {
      out.add(word as Section);
    } else {
      throw new Error(`--only: unknown section '${word}' (known: ${SECTIONS.join(', ')}, gpt2)`);
    }
  }
  return out;
}

/** One line per row: ours with its spread, then the peer with its BLAS and the ratio or why there is none. */
function formatRow(row: Row): string {
  const lines = [row.name, `    ours: ${fmt(row.value)} ${row.unit}${row.unit === 'MiB' ? '' : ` (${describeSpread(row.spread)})`}`];
  if (row.peer) {
    if ('error' in row.peer) {
      lines.push(`    ${row.peer.name}: not run (${row.peer.error})`);
    } else {
      const p: PeerResult = row.peer;
      const verdict = p.ratio !== undefined ? `${describePeerBlas(p)}; ours ${p.ratio.toFixed(1)}x` : `ratio withheld: ${p.ratioWithheld}`;
      lines.push(`    ${p.name}: ${fmt(p.value)} ${row.unit} (${describeSpread(p.spread)})`);
      lines.push(`      ${verdict}${p.incomplete ? `; ${p.incomplete}` : ''}`);
    }
  }
  if (row.notes) lines.push(`    ${row.notes}`);
  return lines.join('\n');
}

/** The `peers` section of the results: each peer library once, with the BLAS it ran on and its rows. */
function peersSection(rows: Row[]): Record<string, unknown> {
  const out: Record<string, { library?: string; threads?: number; blas?: unknown; otherBlas?: unknown[]; rows: string[] }> = {};
  for (const row of rows) {
    if (!row.peer || 'error' in row.peer) continue;
    const key = row.peer.library ?? row.peer.name;
    const entry = (out[key] ??= { library: row.peer.library, threads: row.peer.threads, blas: row.peer.blas, rows: [] });
    entry.rows.push(row.name);
    if (row.peer.blas?.path !== (entry.blas as { path?: string } | undefined)?.path) (entry.otherBlas ??= []).push(row.peer.blas);
  }
  return out;
}

/** Whether tracked files differ from HEAD (null outside a git checkout). */
function uncommittedChanges(): boolean | null {
  try {
    return execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const started = new Date();
  const rows: Row[] = [];
  const print = (row: Row) => {
    rows.push(row);
    console.log(formatRow(row));
  };
  const argv = process.argv.slice(2);
  const flag = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const root = path.resolve(__dirname, '..');
  const sections = parseSections(flag('--only'));
  if (flag('--rounds') !== undefined) pairSettings.rounds = Math.max(1, Math.floor(Number(flag('--rounds'))) || 1);
  const ldPath = flag('--peer-ld-library-path');
  if (ldPath !== undefined) pairSettings.peerEnv.LD_LIBRARY_PATH = ldPath;
  const host = machine();
  const id = host.cpuId;
  console.log(`machine: ${host.cpu}, ${host.cores} cores${id ? `, family ${id.family} model ${id.model} (${id.vector.join(' ')})` : ''}`);
  const peakBefore = measureMachinePeak(THREADS);
  console.log(`machine FP32 FMA peak before the rows (bench/machine-peak.c): ${describeMachinePeak(peakBefore)}`);
  if (!('error' in peakBefore)) peak = peakBefore;
  await rowsOf(sections, root, flag('--runs-from'), print);
  const peakAfter = measureMachinePeak(THREADS);
  console.log(`machine FP32 FMA peak after the rows: ${describeMachinePeak(peakAfter)}`);
  const result = {
    date: started.toISOString(),
    machine: { ...host, fmaPeak: { before: peakBefore, after: peakAfter } },
    // the code measured: HEAD, and whether tracked files differed from it
    code: { commit: gitCommit(), uncommittedChanges: uncommittedChanges() },
    args: argv,
    pairing: { rounds: pairSettings.rounds, order: 'ours, peer, ours, peer, ...', peerEnv: pairSettings.peerEnv },
    peers: peersSection(rows),
    rows,
  };
  const stamp = started.toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const file = path.resolve('bench/results', `${stamp}-${os.hostname()}.json`);
  writeFileAtomic(file, JSON.stringify(result, null, 2) + '\n');
  console.log(`\nwritten ${path.relative(process.cwd(), file)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
