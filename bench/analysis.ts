/**
 * Analysis rows of `npm run bench` on the committed runs (RUNS, those present), one thread count:
 *   pairs/s          memgen analyze's pair extraction (analysis/pairs.ts) into a temporary folder:
 *                    pairs kept per second; inputs tried per pair beside it (pairs need both behaviours
 *                    on one input and its rephrasing, so the yield decides the cost)
 *   generations/s    steer-eval's steered generations (steer/steer-eval.ts steeredOutputs) of 256
 *                    starting inputs under the run's committed steering (topN / alpha of steering.json),
 *                    greedy and with 5 beams
 * No peer: nothing else extracts pairs or steers these models.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
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
