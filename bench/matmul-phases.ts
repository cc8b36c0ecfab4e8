/**
 * Probe (docs/performance.md, "The MatMul row's two speeds" and "Two speeds were two machines"): the
 * bench's MatMul row alone, no peer, every run printed, to see whether its slow runs come from the
 * peer or from the machine. Compare with the machine's FMA peak (bench/machine-peak.c).
 *   rounds of `reps` runs of [512,768] x [768,3072] (bench/measure.ts matmulRunner), each round after
 *   `pause` ms idle; GFLOP/s per run = 2 M K N / seconds / 1e9
 *
 *   npx esbuild bench/matmul-phases.ts --bundle --platform=node --external:onnxruntime-node \
 *     --outfile=dist/matmul-phases.js
 *   node dist/matmul-phases.js [threads 2] [pause ms 200] [rounds 4] [reps 10]
 */
import { matmulRunner } from './measure';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const [threads = 2, pause = 200, rounds = 4, reps = 10] = process.argv.slice(2).map(Number);
  const { runner, feeds, gflop } = await matmulRunner(threads);
  for (let i = 0; i < 5; i++) await runner.run(feeds);
  for (let r = 0; r < rounds; r++) {
    await sleep(pause);
    const rates: string[] = [];
    for (let i = 0; i < reps; i++) {
      const t = performance.now();
      await runner.run(feeds);
      rates.push((gflop / ((performance.now() - t) / 1000)).toFixed(0));
    }
    console.log(`${threads} thread(s), pause ${pause} ms, round ${r}: ${rates.join(' ')} GFLOP/s`);
  }
  await runner.release();
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
