/**
 * `npm run bench`: throughput figures measured on this machine, with a peer measured in the same run
 * where one is installed, written to bench/results/<date>-<host>.json and printed as a table.
 * Figures on shared machines swing 2-3x between runs: compare ratios from one file.
 *   GFLOP/s of MatMul [M,K]x[K,N] = 2 M K N / seconds / 1e9
 *   tokens/s of a training step = batch * T / seconds per step
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Graph, ops } from '../engine/graph';
import { runCopyDemo } from '../engine/demo/copy-demo';
import { writeFileAtomic } from '../engine/io/atomic';
import { Runner } from '../engine/runtime/runner';
import { Rng } from '../engine/util/rng';

interface Row {
  name: string;
  value: number;
  unit: string;
  peer?: { name: string; value: number } | { name: string; error: string };
  notes?: string;
}

const THREADS = Number(process.env.MEMGEN_BENCH_THREADS ?? 0) || os.cpus().length;
const PYTHON = '/usr/bin/python3';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timeRuns(fn: () => Promise<unknown>, warmup: number, reps: number): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

/** A peer measurement in Python, when Debian's python3 has the module; otherwise the reason. */
function pythonPeer(name: string, script: string): Row['peer'] {
  try {
    const out = execFileSync(PYTHON, ['-c', script], { encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return { name, value: Number(out.trim().split('\n').pop()) };
  } catch (e) {
    const msg = String((e as { stderr?: string }).stderr ?? (e as Error).message).trim().split('\n').pop() ?? '';
    return { name, error: msg.slice(0, 200) };
  }
}

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

async function main(): Promise<void> {
  const started = new Date();
  const rows: Row[] = [];
  for (const make of [matmulRow, trainStepRow]) {
    const row = await make();
    rows.push(row);
    const peer = row.peer ? ('value' in row.peer ? `${row.peer.name}: ${row.peer.value.toFixed(1)}` : `${row.peer.name}: not run (${row.peer.error})`) : '';
    console.log(`${row.name.padEnd(80)} ${row.value.toFixed(1).padStart(10)} ${row.unit.padEnd(9)} ${peer}`);
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
