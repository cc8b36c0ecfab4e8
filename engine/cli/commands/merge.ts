/**
 * `memgen merge`: combines the shards of a run (docs/cluster.md) into exactly the files one
 * unsharded job writes. The analysis shards (`analyze --shard`, RUN/analysis/shards/<i>-of-<N>/) go
 * through engine/analysis/merge.ts, then the statistics and probes as `memgen analyze` makes them
 * (analyze.ts finishAnalysis). The steering shards (`steer-eval --shard`, `sweep --shard`) go through
 * engine/steer/shards.ts. Holds the run's lock (the shards themselves run without it).
 *
 * RUN/analysis holding an extraction already (a previous merge, or an unsharded analyze) is replaced
 * only with --force, which moves its files (not the shards) into RUN/analysis.replaced-<time>/.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ANALYSIS_FILES, SHARDS_DIR, analysisDir } from '../../analysis/files';
import { mergeExtraction } from '../../analysis/merge';
import { pairSeed } from '../../analysis/pairs';
import { listShards } from '../../analysis/shards';
import { RunError } from '../../runs/run';
import { mergeSteerShards, mergeSweepShards, steerShardsDir, sweepShardsDir } from '../../steer/shards';
import { RUNNER_OPTIONS, UsageError, num, parse, required, runnerOptions, writesRun } from '../args';
import { finishAnalysis, openAnalysisRun, reportMerged } from './analyze';
import { prepare } from './steer';

export const MERGE_HELP = `  merge     Combines the shards of \`analyze --shard i/N\`, \`steer-eval --shard i/N\` and \`sweep --shard i/N\` into
            exactly the files one unsharded job writes, then NMD, rho, neurons and probes as analyze does (docs/cluster.md).
            --run RUN [--pairs P] [--max-tries T] (default: the smallest --pairs and largest --max-tries the shards got)
            [--topn F (0.1)] [--no-probes] [--force (replace an existing analysis; its files are kept in analysis.replaced-<time>)]
            [--threads N]`;

/** `memgen merge`, holding the run's lock (args.ts writesRun). */
export const mergeCommand = writesRun('merge', merge);

async function merge(argv: string[]): Promise<number> {
  const v = parse(argv, {
    run: { type: 'string' }, pairs: { type: 'string' }, 'max-tries': { type: 'string' }, topn: { type: 'string' },
    'no-probes': { type: 'boolean' }, force: { type: 'boolean' }, ...RUNNER_OPTIONS,
  });
  const runDir = required(v.run, 'run');
  const positive = (x: number | null, name: string) => {
    if (x !== null && (!Number.isInteger(x) || x < 1)) throw new UsageError(`--${name} must be a positive integer, got ${x}`);
    return x ?? undefined;
  };
  const pairs = positive(num(v.pairs, 'pairs', null), 'pairs');
  const maxTries = positive(num(v['max-tries'], 'max-tries', null), 'max-tries');
  const topN = num(v.topn, 'topn', 0.1);
  if (!(topN > 0 && topN <= 1)) throw new UsageError(`--topn must be a fraction in (0, 1], got ${topN}`);
  const runner = runnerOptions(v);
  const ar = openAnalysisRun(runDir);
  const dir = analysisDir(ar.run);
  const haveAnalysis = listShards(path.join(dir, SHARDS_DIR)).length > 0;
  const haveSteering = fs.existsSync(steerShardsDir(ar.run));
  const haveSweep = fs.existsSync(sweepShardsDir(ar.run));
  if (!haveAnalysis && !haveSteering && !haveSweep) {
    throw new RunError(`${dir} holds no shards: run \`memgen analyze --run ${runDir} --shard i/N\` (or steer-eval / sweep with --shard i/N) for i = 0 .. N-1 first (docs/cluster.md)`);
  }

  // Merged already, and no shard changed since (the analysis' marker is newer than every shard's state): only the steering / sweep shards are new.
  const marker = path.join(dir, ANALYSIS_FILES.summary);
  const mtime = (file: string) => fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? Infinity;
  const upToDate = haveAnalysis && !v.force && fs.existsSync(path.join(dir, ANALYSIS_FILES.state)) &&
    listShards(path.join(dir, SHARDS_DIR)).every((s) => mtime(path.join(s.dir, ANALYSIS_FILES.state)) < (fs.existsSync(marker) ? mtime(marker) : -Infinity));
  if (upToDate) console.log(`${dir}: the analysis shards are merged already (no shard changed since)`);
  if (haveAnalysis && !upToDate) {
    if (fs.existsSync(path.join(dir, ANALYSIS_FILES.state))) {
      if (!v.force) throw new RunError(`${dir} already holds an extraction (${ANALYSIS_FILES.state}); replace it with the merged shards with --force (its files are kept in ${path.basename(dir)}.replaced-<time>/)`);
      const aside = `${dir}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      fs.mkdirSync(aside);
      for (const name of fs.readdirSync(dir)) if (name !== SHARDS_DIR) fs.renameSync(path.join(dir, name), path.join(aside, name));
      console.log(`--force: the previous analysis files are kept in ${aside}`);
    }
    const merged = mergeExtraction({ runDir, dir, task: ar.run.task, seed: pairSeed(ar.run.memgen.seed), modelHash: ar.hash, pairs, maxTries });
    reportMerged(merged);
    if (merged.pairs === 0) throw new RunError(`the shards kept no pair in ${merged.tried} inputs: the model never showed gen and mem within one input and its rephrasing (memgen eval --run ${runDir} shows its behaviours)`);
    await finishAnalysis(ar, dir, merged, merged.state.site, { topN, noProbes: Boolean(v['no-probes']), runner });
  }
  if (haveSteering) for (const file of mergeSteerShards(runDir, prepare)) console.log(`merged the steering shards into ${file}`);
  if (haveSweep) console.log(`merged the sweep shards into ${mergeSweepShards(runDir, prepare)}`);
  return 0;
}
