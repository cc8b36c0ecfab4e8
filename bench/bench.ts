/**
 * `npm run bench`: throughput figures measured on this machine, with a peer measured in the same run
 * where one is installed, written to bench/results/<date>-<host>.json and printed as a table.
 * Figures on shared machines swing 2-3x between runs: compare ratios from one file.
 *   GFLOP/s of MatMul [M,K]x[K,N] = 2 M K N / seconds / 1e9
 *   tokens/s of a training step = batch * T / seconds per step
 *   model FLOP/s of training = tokens/s * (6 N + 12 L T d)   (N = weights; the attention term per token)
 * Peers: numpy for MatMul, PyTorch (bench/peers/torch_gpt2.py, torch_llama.py) for the GPT-2 and
 * LLaMA rows, same shapes.
 * LLaMA rows (bench/llama.ts): a LoRA step on a tiny LLaMA, a forward of a LLaMA-3.2-1B shape.
 * Editor rows (bench/editor.ts): the bundled language server over stdio on runs/arithmetic-tiny.
 * Analysis rows (bench/analysis.ts): pairs/s of the extraction and steered generations/s on the committed runs.
 * `npm run bench -- --only analysis [--runs-from COMMIT]`: the analysis rows alone, on the committed runs
 * and, with --runs-from, beside them on the runs/ folder of an earlier commit (git archive into a
 * temporary folder), e.g. the runs before a retraining.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Graph, ops } from '../engine/graph';
import { runCopyDemo } from '../engine/demo/copy-demo';
import { writeFileAtomic } from '../engine/io/atomic';
import { analysisRows } from './analysis';
import { editorRows } from './editor';
import { llamaRows } from './llama';
import { type Row, pythonPeer, timeRuns } from './measure';
import { GPT2Inference } from '../engine/models/gpt2-infer';
import { type GPT2Config, gpt2Forward, gpt2ParamInputs, initGPT2 } from '../engine/models/gpt2';
import { Runner } from '../engine/runtime/runner';
import { Adam, clipGradNorm } from '../engine/train/optim';
import { TrainStep } from '../engine/train/step';
import { Rng } from '../engine/util/rng';

const THREADS = Number(process.env.MEMGEN_BENCH_THREADS ?? 0) || os.cpus().length;

async function matmulRow(): Promise<Row> {
  const [M, K, N] = [512, 768, 3072];
  const rng = new Rng(1);
  const g = new Graph('matmul');
  const a = g.input('a', [M, K]);
  const w = g.initializer('w', Float32Array.from({ length: K * N }, () => rng.normal()), [K, N]);
  g.output(ops.matmul(a, w), 'y');
  const runner = await Runner.fromGraph(g, { threads: THREADS });
  const feeds = { a: { data: Float32Array.from({ length: M * K }, () => rng.normal()), dims: [M, K] } };
  const sec = await timeRuns(() => runner.run(feeds), 5, 30);
  await runner.release();
  const gflops = (2 * M * K * N) / sec / 1e9;
  const peer = pythonPeer(
    'numpy (Debian python3-numpy)',
    `import numpy as np, time
a=np.random.rand(${M},${K}).astype(np.float32); w=np.random.rand(${K},${N}).astype(np.float32)
for _ in range(5): a@w
ts=[]
for _ in range(30):
  t=time.perf_counter(); a@w; ts.append(time.perf_counter()-t)
ts.sort(); print(2*${M}*${K}*${N}/ts[15]/1e9)`,
  );
  return { name: `ORT MatMul [${M},${K}]x[${K},${N}] float32, ${THREADS} threads`, value: gflops, unit: 'GFLOP/s', peer, notes: 'weight as initializer; median of 30 runs' };
}

async function trainStepRow(): Promise<Row> {
  const steps = 60;
  // A first short run warms up onnxruntime; the second is timed.
  await runCopyDemo({ steps: 5, runner: { threads: THREADS } });
  const r = await runCopyDemo({ steps, runner: { threads: THREADS } });
  return {
    name: `train step, one-block GPT-2 d=64 (copy demo), batch 32 x T=16, ${THREADS} threads`,
    value: r.tokensPerSecond,
    unit: 'tokens/s',
    notes: `${r.paramCount} parameters; ${((r.seconds / steps) * 1000).toFixed(2)} ms/step including data and JS Adam`,
  };
}

interface GPT2Shape {
  label: string;
  L: number;
  D: number;
  H: number;
  T: number;
  B: number;
  V: number;
}

/** The shapes engine.md measured PyTorch on (vocab 64): the tiny and small presets' trunks. */
const GPT2_SHAPES: GPT2Shape[] = [
  { label: 'tiny', L: 4, D: 128, H: 4, T: 64, B: 32, V: 64 },
  { label: 'small', L: 6, D: 256, H: 8, T: 128, B: 32, V: 64 },
];

/** Training FLOPs per token: 6 N (forward + backward through N weights) + 12 L T D (attention scores). */
function trainFlopsPerToken(s: GPT2Shape): number {
  const n = s.L * 12 * s.D * s.D + s.V * s.D;
  return 6 * n + 12 * s.L * s.T * s.D;
}

const PEER_SCRIPT = path.resolve(__dirname, '../bench/peers/torch_gpt2.py');
const TORCH = 'PyTorch (Debian python3-torch, 2 threads)';

async function gpt2Rows(matmulGflops: number): Promise<Row[]> {
  const rows: Row[] = [];
  for (const s of GPT2_SHAPES) {
    const cfg: GPT2Config = { vocabSize: s.V, nPositions: s.T + 64, nEmbd: s.D, nLayer: s.L, nHead: s.H, layerNormEps: 1e-5 };
    const rng = new Rng(2);
    const params = initGPT2(cfg, rng);
    const shape = `${s.label}: ${s.L} layers d=${s.D}, batch ${s.B} x T=${s.T}, vocab ${s.V}`;
    const randomIds = (n: number) => BigInt64Array.from({ length: n }, () => BigInt(rng.int(0, s.V - 1)));
    const args = (mode: string, steps: number) => [mode, s.L, s.D, s.H, s.T, s.B, s.V, steps].map(String);

    const g = new Graph('bench_train');
    const ids = g.input('ids', [s.B, s.T], 'int64');
    const targets = g.input('targets', [s.B, s.T], 'int64');
    const step = await TrainStep.compile(g, ops.crossEntropy(gpt2Forward(cfg, gpt2ParamInputs(g, cfg), ids), targets), { threads: THREADS });
    const adam = new Adam(params, { lr: 1e-3 });
    const batch = { ids: { data: randomIds(s.B * s.T), dims: [s.B, s.T] }, targets: { data: randomIds(s.B * s.T), dims: [s.B, s.T] } };
    const trainSec = await timeRuns(async () => {
      const { grads } = await step.run(params, batch);
      clipGradNorm(grads, 1);
      adam.step(params, grads);
    }, 2, s.label === 'tiny' ? 20 : 8);
    await step.release();
    const trainTps = (s.B * s.T) / trainSec;
    const achieved = (trainTps * trainFlopsPerToken(s)) / 1e9;
    rows.push({
      name: `GPT-2 train step (${shape}), incl. JS Adam`, value: trainTps, unit: 'tokens/s',
      peer: pythonPeer(TORCH, PEER_SCRIPT, args('train', s.label === 'tiny' ? 10 : 4)),
      notes: `${achieved.toFixed(1)} GFLOP/s of model FLOPs = ${((100 * achieved) / matmulGflops).toFixed(0)}% of the MatMul row`,
    });

    const inf = await GPT2Inference.create(cfg, params, { runner: { threads: THREADS }, batchSize: s.B });
    const prompts = (len: number) => Array.from({ length: s.B }, () => Array.from({ length: len }, () => rng.int(0, s.V - 1)));
    const full = prompts(s.T);
    const fwdSec = await timeRuns(() => inf.generate(full, { maxNewTokens: 1, eosId: -1 }), 2, 10);
    rows.push({ name: `GPT-2 forward (${shape})`, value: (s.B * s.T) / fwdSec, unit: 'tokens/s', peer: pythonPeer(TORCH, PEER_SCRIPT, args('forward', 10)) });
    const short = prompts(16);
    const genSec = await timeRuns(() => inf.generate(short, { maxNewTokens: 32, eosId: -1 }), 1, 3);
    rows.push({
      name: `GPT-2 greedy generation with K/V cache (${s.label}: batch ${s.B}, prompt 16, 32 new tokens)`, value: (s.B * 32) / genSec, unit: 'tokens/s',
      peer: pythonPeer(TORCH, PEER_SCRIPT, args('generate', 3)),
      notes: 'new tokens per second, prefill included',
    });
    await inf.release();
  }
  return rows;
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    host: os.hostname(),
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.arch()} ${os.release()}`,
    node: process.version,
    onnxruntime: ort.env.versions.node ?? ort.env.versions.common,
  };
}

/** Every row, in order. */
async function allRows(root: string, print: (row: Row) => void): Promise<void> {
  const mm = await matmulRow();
  print(mm);
  print(await trainStepRow());
  for (const row of await gpt2Rows(mm.value)) print(row);
  for (const row of await llamaRows(THREADS)) print(row);
  for (const row of await editorRows(root, THREADS)) print(row);
  for (const row of await analysisRows(root, THREADS)) print(row);
}

async function main(): Promise<void> {
  const started = new Date();
  const rows: Row[] = [];
  const print = (row: Row) => {
    rows.push(row);
    const peer = row.peer ? ('value' in row.peer ? `${row.peer.name}: ${row.peer.value.toFixed(1)} (ours ${(row.value / row.peer.value).toFixed(1)}x)` : `${row.peer.name}: not run (${row.peer.error})`) : '';
    console.log(`${row.name}\n    ${row.value.toFixed(1)} ${row.unit}   ${peer}${row.notes ? `\n    ${row.notes}` : ''}`);
  };
  const argv = process.argv.slice(2);
  const flag = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const root = path.resolve(__dirname, '..');
  if (flag('--only') === 'analysis') {
    const from = flag('--runs-from');
    if (from !== undefined) {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-bench-runs-'));
      try {
        execFileSync('sh', ['-c', `git archive ${JSON.stringify(from)} runs | tar -x -C ${JSON.stringify(tmp)}`], { cwd: root });
        for (const row of await analysisRows(tmp, THREADS, ` at ${from}`)) print(row);
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
    for (const row of await analysisRows(root, THREADS)) print(row);
  } else {
    await allRows(root, print);
  }
  const result = { date: started.toISOString(), machine: machine(), rows };
  const stamp = started.toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const file = path.resolve('bench/results', `${stamp}-${os.hostname()}.json`);
  writeFileAtomic(file, JSON.stringify(result, null, 2) + '\n');
  console.log(`\nwritten ${path.relative(process.cwd(), file)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
