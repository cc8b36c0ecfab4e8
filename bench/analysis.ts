/**
 * Analysis rows of `npm run bench` on the committed runs (RUNS, those present), one thread count:
 *   pairs/s          memgen analyze's pair extraction (analysis/pairs.ts) into a temporary folder:
 *                    pairs kept per second; inputs tried per pair beside it (pairs need both behaviours
 *                    on one input and its rephrasing, so the yield decides the cost)
 *   generations/s    steer-eval's steered generations (steer/steer-eval.ts steeredOutputs) of 256
 *                    starting inputs under the run's committed steering (topN / alpha of steering.json),
 *                    greedy and with 5 beams
 * Scale-out rows (scaleOutRows, docs/cluster.md) on runs/arithmetic-tiny: `memgen analyze --pairs 200
 * --no-probes` as a child process (dist/cli.js, so build first), once in one process with 2 threads
 * and once with `--jobs 2` (2 shard processes of 1 thread, then the merge); pairs / wall seconds of
 * the whole command (start, model load, extraction, merge, statistics), and the speed-up.
 * No peer: nothing else extracts pairs or steers these models.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { extractPairs, pairSeed } from '../engine/analysis/pairs';
import { GPT2Inference } from '../engine/models/gpt2-infer';
import { loadRun, modelHash } from '../engine/runs/run';
import { drawStarts, methodIntervention, prepareSteering, steeredOutputs } from '../engine/steer/steer-eval';
import type { Row } from './measure';

const RUNS = ['arithmetic-tiny', 'incontext-tiny', 'arithmetic-small'] as const;

/** Rows for the runs under root/runs; `tag` goes after each run's name (e.g. ' at <commit>'). */
export async function analysisRows(root: string, threads: number, tag = ''): Promise<Row[]> {
  const rows: Row[] = [];
  for (const name of RUNS) {
    const dir = path.join(root, 'runs', name);
    if (!fs.existsSync(dir)) continue;
    const setup = prepareSteering(dir);
    const run = loadRun(dir);
    const site = setup.sourceInfo.site;
    const model = await GPT2Inference.create(run.cfg, run.params, { site, runner: { threads }, batchSize: 256 });
    try {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-bench-pairs-'));
      try {
        const r = await extractPairs({ dir: tmp, task: run.task, model, modelHash: modelHash(dir), seed: pairSeed(run.memgen.seed), maxPairs: 200, resume: false });
        rows.push({
          name: `pair extraction (${name}${tag}, ${site}, ${threads} threads)`, value: r.pairsPerSecond, unit: 'pairs/s',
          notes: `${r.pairs} pairs from ${r.tried} inputs (${(r.tried / r.pairs).toFixed(1)} inputs per pair) in ${r.seconds.toFixed(1)} s`,
        });
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
      const committed = JSON.parse(fs.readFileSync(path.join(dir, 'analysis', 'steering.json'), 'utf8')) as { topN: number; alpha: number };
      const starts = (await drawStarts(run.task, model, { n: 128, seed: 7 })).inputs;
      const inputs = [...starts['mem->gen'], ...starts['gen->mem']];
      const steer = methodIntervention(setup, committed.topN, undefined, committed.alpha, 'mem->gen').vectors;
      for (const beams of [1, 5]) {
        const t0 = performance.now();
        await steeredOutputs(run.task, model, inputs, steer, { beams });
        const sec = (performance.now() - t0) / 1000;
        rows.push({
          name: `steered generation (${name}${tag}, topN ${committed.topN}, alpha ${committed.alpha}, ${beams === 1 ? 'greedy' : `${beams} beams`}, ${threads} threads)`,
          value: inputs.length / sec, unit: 'generations/s', notes: `${inputs.length} starting inputs, one pass`,
        });
      }
    } finally {
      await model.release();
    }
  }
  return rows;
}

/** The scale-out rows (see the header): one process vs --jobs 2 on a copy of runs/arithmetic-tiny, `threads` in all. */
export function scaleOutRows(root: string, threads = 2, pairs = 200): Row[] {
  const src = path.join(root, 'runs', 'arithmetic-tiny');
  const cli = path.join(root, 'dist', 'cli.js');
  if (!fs.existsSync(src) || !fs.existsSync(cli)) return [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-bench-scale-'));
  try {
    const time = (name: string, extra: string[]) => {
      const run = path.join(tmp, name);
      fs.mkdirSync(run);
      for (const f of ['config.json', 'manifest.json', 'model.safetensors', 'tokenizer.json']) fs.copyFileSync(path.join(src, f), path.join(run, f));
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [cli, 'analyze', '--run', run, '--pairs', String(pairs), '--no-probes', '--threads', String(threads), ...extra], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`memgen analyze ${extra.join(' ')} failed (exit ${r.status}): ${(r.stderr || r.stdout).slice(-500)}`);
      return (performance.now() - t0) / 1000;
    };
    const one = time('one', []);
    const two = time('jobs2', ['--jobs', '2']);
    const what = `arithmetic-tiny, ln2, ${pairs} pairs, ${threads} threads in all, whole command`;
    return [
      { name: `analyze, 1 process (${what})`, value: pairs / one, unit: 'pairs/s', notes: `${one.toFixed(1)} s wall` },
      { name: `analyze --jobs 2 (${what})`, value: pairs / two, unit: 'pairs/s', notes: `${two.toFixed(1)} s wall: 2 shards of 1 thread (each keeps 10% over its share), merge` },
      { name: `analyze --jobs 2 speed-up over 1 process (${what})`, value: one / two, unit: 'x', notes: `on ${os.availableParallelism()} cores` },
    ];
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
