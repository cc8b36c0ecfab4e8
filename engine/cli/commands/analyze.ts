/**
 * `memgen analyze`: pairwise extraction, NMD, correlation and ranking for a trained run, into
 * RUN/analysis (engine/analysis/files.ts lists the files). An existing analysis is continued only
 * with --resume and replaced only with --force (the old folder is kept aside, never deleted).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ANALYSIS_FILES, type AnalysisSummary, type LayerSummary, type NeuronsFile, analysisDir } from '../../analysis/files';
import { nmd as neuronMeanDiff, momentsOfFiles } from '../../analysis/nmd';
import { writeNpy } from '../../analysis/npy';
import { type ExtractResult, extractPairs, hasExtraction, pairSeed, readPairsState } from '../../analysis/pairs';
import { pointBiserial } from '../../analysis/pearson';
import { probeLayers } from '../../analysis/probe-layers';
import { rankNeurons, topCount } from '../../analysis/rank';
import { GPT2Inference } from '../../models/gpt2-infer';
import { GPT2_SITES, type GPT2Site } from '../../models/hooks';
import { RunError, loadRun, modelHash, writeJSON } from '../../runs/run';
import { isLoraRun, loraRunModel, loraSteerRun } from '../../runs/lora-run';
import { PROJECTIONS_FILE, projectionAttribution, readPairs } from '../../analysis/projection-attribution';
import { type SiteFamily, familyField, familySiteName } from '../../models/sites';
import type { Task } from '../../tasks/task';
import { RUNNER_OPTIONS, UsageError, choice, num, onInterrupt, parse, required, runnerOptions, writesRun } from '../args';
import { ProgressBar } from '../progress';
import { removeStaleTemps } from '../../io/atomic';

export const ANALYZE_HELP = `  analyze   Pairs of inputs where the model memorizes one and generalizes the other, then per neuron
            NMD (gen - mem), correlation with gen, and the top neurons by |rho|, into RUN/analysis.
            --run RUN [--pairs N (2000)] [--max-tries N] [--site ${GPT2_SITES.join('|')} (ln2)] [--topn F (0.1)]
            [--resume | --force] [--batch N (128)] [--no-probes] [--threads N] [--provider cpu|cuda]
            Then trains per-layer probes (the paper's MLP and a logistic baseline) into probes.json.`;

export interface AnalyzeOptions {
  maxPairs: number;
  maxTries?: number;
  site?: GPT2Site;
  topN: number;
  batch: number;
  resume: boolean;
  force: boolean;
  /** Skip the per-layer probes (probes.json). */
  noProbes: boolean;
}

/** Fewer pairs than this leave the probes' validation or test split (15% each) nearly empty. */
const MIN_PROBE_PAIRS = 20;

const pct = (x: number, n: number) => `${((100 * x) / Math.max(1, n)).toFixed(1)}%`;

/**
 * Statistics of the extraction in `dir`: nmd.npy, rho.npy, neurons.json, then analysis.json (last:
 * its presence marks a complete analysis; an older one is deleted first). Streams the hidden files;
 * returns the summary.
 */
export function writeStatistics(run: { task: Task; memgen: { seed: number } }, dir: string, extraction: ExtractResult, site: GPT2Site, topN: number, hash: string, family: SiteFamily = 'gpt2'): { summary: AnalysisSummary; neurons: NeuronsFile } {
  const file = (k: keyof typeof ANALYSIS_FILES) => path.join(dir, ANALYSIS_FILES[k]);
  // analysis.json marks the other files complete: it goes first (a kill while they are rewritten for more pairs leaves no marker, not a wrong one)
  fs.rmSync(file('summary'), { force: true });
  const moments = momentsOfFiles(file('hiddenGen'), file('hiddenMem'));
  const { layers: L, d } = moments;
  const nmd = neuronMeanDiff(moments);
  const rho = pointBiserial(moments);
  writeNpy(file('nmd'), nmd, [L, d]);
  writeNpy(file('rho'), rho, [L, d]);
  const ranked = rankNeurons(rho, nmd, L, d, site, topN, family);
  const neurons: NeuronsFile = {
    format: 'memgen-neurons/1', site, ...familyField(family), layers: L, d, topN, count: ranked.length, sign: 'gen - mem',
    pairs: extraction.pairs, modelHash: hash, neurons: ranked,
  };
  writeJSON(file('neurons'), neurons);
  const perLayer: LayerSummary[] = Array.from({ length: L }, (_, l) => {
    let sumAbs = 0;
    let maxAbs = 0;
    for (let i = 0; i < d; i++) {
      sumAbs += Math.abs(nmd[l * d + i]);
      maxAbs = Math.max(maxAbs, Math.abs(rho[l * d + i]));
    }
    return { layer: l, site: familySiteName(l, site, family), meanAbsNmd: sumAbs / d, maxAbsRho: maxAbs, kept: ranked.filter((n) => n.layer === l).length };
  });
  const summary: AnalysisSummary = {
    format: 'memgen-analysis/1', task: run.task.name, taskDescription: run.task.description, site, ...familyField(family),
    siteNames: perLayer.map((p) => p.site), layers: L, d, pairs: extraction.pairs, inputsTried: extraction.tried,
    triesPerPair: extraction.tried / extraction.pairs, counts: extraction.counts, seed: pairSeed(run.memgen.seed),
    extractSeconds: extraction.totalSeconds, topN, sign: 'gen - mem', modelHash: hash, createdAt: new Date().toISOString(), perLayer,
  };
  writeJSON(file('summary'), summary);
  return { summary, neurons };
}

export function analyzeOptionsFromArgs(argv: string[]): AnalyzeOptions & { run: string; runner: ReturnType<typeof runnerOptions> } {
  const v = parse(argv, {
    run: { type: 'string' }, pairs: { type: 'string' }, 'max-tries': { type: 'string' }, site: { type: 'string' }, topn: { type: 'string' },
    resume: { type: 'boolean' }, force: { type: 'boolean' }, batch: { type: 'string' }, 'no-probes': { type: 'boolean' }, ...RUNNER_OPTIONS,
  });
  if (v.resume && v.force) throw new UsageError('--resume and --force contradict each other');
  const positiveInt = (x: number, name: string) => {
    if (!Number.isInteger(x) || x < 1) throw new UsageError(`--${name} must be a positive integer, got ${x}`);
    return x;
  };
  const maxTries = num(v['max-tries'], 'max-tries', null);
  const topN = num(v.topn, 'topn', 0.1);
  if (!(topN > 0 && topN <= 1)) throw new UsageError(`--topn must be a fraction in (0, 1], got ${topN}`);
  return {
    run: required(v.run, 'run'),
    maxPairs: positiveInt(num(v.pairs, 'pairs', 2000), 'pairs'),
    maxTries: maxTries === null ? undefined : positiveInt(maxTries, 'max-tries'),
    site: v.site === undefined ? undefined : choice(v.site, 'site', GPT2_SITES),
    topN,
    batch: positiveInt(num(v.batch, 'batch', 128), 'batch'),
    resume: Boolean(v.resume),
    force: Boolean(v.force),
    noProbes: Boolean(v['no-probes']),
    runner: runnerOptions(v),
  };
}

/** `memgen analyze`, holding the run's lock (args.ts writesRun). */
export const analyzeCommand = writesRun('analyze', analyze);

async function analyze(argv: string[]): Promise<number> {
  const opts = analyzeOptionsFromArgs(argv);
  // A LoRA run (runs/lora-run.ts) is analysed at layers.{i}.{site} of its base + adapter; a GPT-2 run at blocks.{i}.{site}.
  const lora = isLoraRun(opts.run) ? loraSteerRun(opts.run) : null;
  const gpt2 = lora ? null : loadRun(opts.run); // a missing model file: the loader's message names it
  const run = lora ?? gpt2!;
  const family: SiteFamily = lora ? 'llama' : 'gpt2';
  const dir = analysisDir(run);
  const previous = readPairsState(dir);

  // Never overwrite silently: --resume continues, --force moves the old folder aside.
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) {
    if (opts.force) {
      const aside = `${dir}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      fs.renameSync(dir, aside);
      console.log(`--force: the previous analysis is kept as ${aside}`);
    } else if (!opts.resume) {
      const what = previous ? `${previous.pairs} pairs at site ${previous.site}, ${previous.tried} inputs tried` : 'files';
      const more = previous && opts.maxPairs <= previous.pairs ? 2 * previous.pairs : opts.maxPairs;
      throw new RunError(`${dir} already holds an analysis (${what}). Continue or extend it with --resume (e.g. --resume --pairs ${more}), or replace it with --force (the old folder is kept as analysis.replaced-<time>)`);
    }
  }
  const resuming = opts.resume && !opts.force && hasExtraction(dir);
  if (resuming) removeStaleTemps(dir); // of writers killed mid-write
  if (resuming && previous && opts.site && opts.site !== previous.site) {
    throw new RunError(`${dir} holds pairs at site ${previous.site}; --resume continues them there (drop --site), --force starts over at ${opts.site}`);
  }
  const site: GPT2Site = opts.site ?? (resuming && previous ? previous.site : lora ? 'resid_post' : 'ln2');
  if (lora && site === 'ln2') throw new UsageError(`${opts.run} is a LoRA run: its sites are resid_post (the paper's LLaMA site, the default) and resid_pre`);
  const hash = lora ? lora.modelHash : modelHash(run.dir);

  console.log(`analysing ${run.dir}: ${run.task.description}`);
  console.log(`site ${site} (${familySiteName(0, site, family)} .. ${familySiteName(run.cfg.nLayer - 1, site, family)}), up to ${opts.maxPairs} pairs${opts.maxTries ? `, ${opts.maxTries} inputs` : ''} -> ${dir}`);
  if (resuming && previous) console.log(`resuming: ${previous.pairs} pairs on disk from ${previous.tried} inputs`);

  let stop = false;
  const release = onInterrupt(() => {
    stop = true;
    process.stderr.write('\nCtrl-C: saving the pairs of this batch, then stopping (Ctrl-C again aborts at once; saved pairs are kept)\n');
  });
  const inf = lora
    ? await loraRunModel(lora.lora, site === 'resid_pre' ? 'resid_pre' : 'resid_post', { runner: opts.runner, batchSize: 2 * opts.batch })
    : await GPT2Inference.create(gpt2!.cfg, gpt2!.params, { site, runner: opts.runner, batchSize: 2 * opts.batch });
  let extraction: ExtractResult;
  try {
    // Done = pairs kept over all sessions; the share of the work is pairs or inputs, whichever budget ends it first.
    const bar = new ProgressBar('pairs', opts.maxPairs, 'pair');
    const maxTries = opts.maxTries ?? Infinity;
    extraction = await extractPairs({
      dir, task: run.task, model: inf, modelHash: hash, seed: pairSeed(run.memgen.seed),
      maxPairs: opts.maxPairs, maxTries: opts.maxTries, batch: opts.batch, resume: resuming,
      shouldStop: () => stop,
      onProgress: (p) => {
        const n = p.counts.gen + p.counts.mem + p.counts.other;
        const per = p.pairs > 0 ? (p.tried / p.pairs).toFixed(1) : '-';
        bar.update(p.pairs, `| ${p.tried} inputs (${per}/pair) | gen ${pct(p.counts.gen, n)} mem ${pct(p.counts.mem, n)} other ${pct(p.counts.other, n)}`,
          Math.max(p.pairs / opts.maxPairs, p.tried / maxTries));
      },
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
  } finally {
    release();
    await inf.release();
  }

  const c = extraction.counts;
  const n = c.gen + c.mem + c.other;
  console.log(`pairs kept: ${extraction.pairs} of ${extraction.tried} inputs tried (${(extraction.tried / extraction.pairs).toFixed(2)} inputs per pair); ` +
    `generations: gen ${pct(c.gen, n)}, mem ${pct(c.mem, n)}, other ${pct(c.other, n)} of ${n}`);
  console.log(`this session: ${extraction.pairs - extraction.resumedFrom} pairs in ${extraction.seconds.toFixed(1)} s (${extraction.pairsPerSecond.toFixed(1)} pairs/s)`);
  if (extraction.stopReason === 'interrupted') {
    const again = argv.filter((a) => a !== '--force' && a !== '--resume');
    console.log(`interrupted: ${extraction.pairs} pairs saved in ${dir}; continue with: memgen analyze ${again.join(' ')} --resume`);
    return 130;
  }
  if (extraction.stopReason === 'maxTries' && extraction.pairs < opts.maxPairs) {
    console.log(`stopped at --max-tries ${opts.maxTries} with ${extraction.pairs} of ${opts.maxPairs} pairs`);
  }

  const { summary, neurons } = writeStatistics(run, dir, extraction, site, opts.topN, hash, family);

  if (!opts.noProbes && extraction.pairs < MIN_PROBE_PAIRS) {
    console.log(`probes skipped: ${extraction.pairs} pairs are too few for a train/val/test split (need ${MIN_PROBE_PAIRS}; extract more with --resume --pairs N)`);
  } else if (!opts.noProbes) {
    const probes = await probeLayers(dir, summary.siteNames, { seed: run.memgen.seed, threads: opts.runner.threads || 1, shouldStop: () => stop });
    console.log('');
    console.log(`probes: held-out accuracy by layer (${probes.split.testPairs} test pairs = ${2 * probes.split.testPairs} members, split by pair; chance 0.5; 95% Wilson CI)`);
    const w0 = Math.max(...summary.siteNames.map((s) => s.length), 4);
    console.log(`${'site'.padEnd(w0)}  logistic             MLP (paper: 2 x 2d, Adam 1e-5)`);
    const cell = (p?: { accuracy: number; ci: [number, number] }) => (p ? `${p.accuracy.toFixed(3)} [${p.ci[0].toFixed(2)}, ${p.ci[1].toFixed(2)}]` : '-').padEnd(21);
    summary.siteNames.forEach((site, l) => console.log(`${site.padEnd(w0)}  ${cell(probes.logistic[l])}${cell(probes.mlp[l])}`));
  }

  console.log('');
  console.log(`per layer (NMD = mean gen - mean mem; rho = correlation with gen; ${neurons.count} neurons kept = top ${opts.topN * 100}% of ${summary.layers} x ${summary.d})`);
  const w = Math.max(...summary.siteNames.map((s) => s.length), 4);
  console.log(`${'site'.padEnd(w)}  mean |NMD|  max |rho|  kept`);
  for (const l of summary.perLayer) {
    console.log(`${l.site.padEnd(w)}  ${l.meanAbsNmd.toFixed(4).padStart(10)}  ${l.maxAbsRho.toFixed(3).padStart(9)}  ${String(l.kept).padStart(4)}`);
  }
  console.log('');
  console.log(`top ${Math.min(10, neurons.count)} neurons by |rho| (of ${topCount(opts.topN, summary.layers * summary.d)} kept):`);
  console.log(`rank  ${'site'.padEnd(w)}  neuron       NMD     rho`);
  for (const e of neurons.neurons.slice(0, 10)) {
    const sgn = (x: number, digits: number) => (x >= 0 ? '+' : '') + x.toFixed(digits);
    console.log(`${String(e.rank).padStart(4)}  ${e.site.padEnd(w)}  ${String(e.index).padStart(6)}  ${sgn(e.nmd, 4).padStart(8)}  ${sgn(e.rho, 3).padStart(6)}`);
  }
  if (lora && extraction.pairs > 0) {
    // Figure 5 of the paper: the NMD of the adapted projections, frozen base part vs adapter part.
    const proj = await projectionAttribution(lora.lora, readPairs(run.dir), { runner: opts.runner, write: true });
    console.log('');
    console.log(`projection attribution (mean |NMD| over output features of the adapted projections, gen - mem; ${proj.pairs} pairs) -> ${PROJECTIONS_FILE}`);
    console.log(`${'projection'.padEnd(24)}  base part  adapter part  adapter share`);
    for (const p of proj.perLayer) {
      console.log(`${`layers.${p.layer}.${p.proj}`.padEnd(24)}  ${p.meanAbsNmdBase.toFixed(4).padStart(9)}  ${p.meanAbsNmdLora.toFixed(4).padStart(12)}  ${(100 * p.loraShare).toFixed(1).padStart(12)}%`);
    }
  }
  console.log('');
  console.log(`wrote ${ANALYSIS_FILES.hiddenGen}, ${ANALYSIS_FILES.hiddenMem} [${summary.pairs}, ${summary.layers}, ${summary.d}], ${ANALYSIS_FILES.pairs}, ` +
    `${ANALYSIS_FILES.nmd}, ${ANALYSIS_FILES.rho} [${summary.layers}, ${summary.d}], ${ANALYSIS_FILES.neurons}, ${ANALYSIS_FILES.summary} in ${dir}`);
  return 0;
}
