/**
 * Probe (docs/performance.md, "Two speeds were two machines"): the weight gradient's product in
 * three orientations, 2 threads, the bench small shape's rows (K = 32 x 128 = 4,096).
 *   A  dW = Gemm(X, G, transA)            [din, dout]  (what the matmul gradient rule writes)
 *   B  dW = Transpose(Gemm(G, X, transA)) [din, dout]  (the product's other orientation; same bits)
 *   C  dW = Gemm(X^T, G)                  X^T fed ready (an upper bound: no transpose anywhere)
 *   GFLOP/s = 2 K din dout / seconds / 1e9, each variant's median of 15 runs, in alternation, 3 rounds
 *   npx esbuild bench/weight-grad-gemm.ts --bundle --platform=node --external:onnxruntime-node \
 *     --outfile=dist/weight-grad-gemm.js && node dist/weight-grad-gemm.js
 */
import { Graph, ops } from '../engine/graph';
import { Runner } from '../engine/runtime/runner';
import { Rng } from '../engine/util/rng';
import { quantile, timeSamples } from './measure';

const K = 4096;
const SHAPES: [number, number][] = [[256, 1024], [1024, 256], [256, 768], [256, 256]];

async function main(): Promise<void> {
  const rng = new Rng(3);
  for (const [din, dout] of SHAPES) {
    const X = Float32Array.from({ length: K * din }, () => rng.normal());
    const G = Float32Array.from({ length: K * dout }, () => rng.normal());
    const XT = new Float32Array(K * din);
    for (let k = 0; k < K; k++) for (let i = 0; i < din; i++) XT[i * K + k] = X[k * din + i];
    const build = async (variant: 'A' | 'B' | 'C') => {
      const g = new Graph(`dw_${variant}`);
      const x = variant === 'C' ? g.input('x', [din, K]) : g.input('x', [K, din]);
      const gy = g.input('g', [K, dout]);
      const y = variant === 'A' ? ops.gemm(x, gy, { transA: true })
        : variant === 'B' ? ops.transpose(ops.gemm(gy, x, { transA: true }), [1, 0])
          : ops.gemm(x, gy);
      g.output(y, 'dw');
      const runner = await Runner.fromGraph(g, { threads: 2 });
      const feeds = { x: { data: variant === 'C' ? XT : X, dims: variant === 'C' ? [din, K] : [K, din] }, g: { data: G, dims: [K, dout] } };
      return { runner, feeds };
    };
    const variants = { A: await build('A'), B: await build('B'), C: await build('C') };
    const out = await Promise.all(Object.values(variants).map(async (v) => (await v.runner.run(v.feeds)).dw.data as Float32Array));
    const same = (a: Float32Array, b: Float32Array) => a.every((x, i) => Object.is(x, b[i]));
    const rates: Record<string, number[]> = { A: [], B: [], C: [] };
    for (let round = 0; round < 3; round++) {
      for (const [name, v] of Object.entries(variants)) {
        const t = quantile(await timeSamples(() => v.runner.run(v.feeds), 3, 15), 0.5);
        rates[name].push((2 * K * din * dout) / t / 1e9);
      }
    }
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' / ');
    console.log(`[${din}, ${dout}] K ${K}: A ${fmt(rates.A)}, B ${fmt(rates.B)}, C ${fmt(rates.C)} GFLOP/s; bits B = A: ${same(out[1], out[0])}, C = A: ${same(out[2], out[0])}`);
    for (const v of Object.values(variants)) await v.runner.release();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
