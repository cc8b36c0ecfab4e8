/**
 * `memgen analyze`: pairwise extraction, NMD, correlation and ranking for a trained run, into
 * RUN/analysis (engine/analysis/files.ts lists the files). An existing analysis is continued only
 * with --resume and replaced only with --force (the old folder is kept aside, never deleted).
 *
 * Scale-out (docs/cluster.md): `--shard i/N` extracts only shard i's blocks of the input stream
 * (engine/analysis/shards.ts) into RUN/analysis/shards/<i>-of-<N>/, without the run's lock (the
 * shards of a run write different folders and run at once) and without statistics; `memgen merge`
 * (merge.ts) then writes what one unsharded job writes, and finishAnalysis (below) continues as here.
 * `--jobs N` runs the N shards as child processes of this one, then merges.
 *
 * A plain Hugging Face folder (runs/plain-run.ts) is analysed on the task `--task` names (recorded in
 * RUN/analysis/task.json by analysis/plain-task.ts, which --resume, merge and the steering commands read).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ANALYSIS_FILES, type AnalysisSummary, type LayerSummary, type NeuronsFile, SHARDS_DIR, analysisDir, shardDir } from '../../analysis/files';
import { mergeExtraction } from '../../analysis/merge';
import { SHARD_BLOCK, type Shard, parseShard, shardLabel } from '../../analysis/shards';
import { nmd as neuronMeanDiff, momentsOfFiles } from '../../analysis/nmd';
import { writeNpy } from '../../analysis/npy';
import { type ExtractResult, extractPairs, hasExtraction, pairSeed, readPairsState } from '../../analysis/pairs';
import { pointBiserial } from '../../analysis/pearson';
import { probeLayers } from '../../analysis/probe-layers';
import { rankNeurons, topCount } from '../../analysis/rank';
import { GPT2Inference } from '../../models/gpt2-infer';
import { GPT2_SITES, type GPT2Site } from '../../models/hooks';
import { type LoadedRun, RunError, loadRun, modelHash, writeJSON } from '../../runs/run';
import { type LoraSteerRun, isLoraRun, loraRunModel, loraSteerRun } from '../../runs/lora-run';
import { type PlainSteerRun, type PlainTaskRequest, plainRunModel, plainSite } from '../../runs/plain-run';
import { PLAIN_TASK_FILE, writePlainTask } from '../../analysis/plain-task';
import { PROJECTIONS_FILE, projectionAttribution, readPairs } from '../../analysis/projection-attribution';
import { type SiteFamily, familyField, familySiteName } from '../../models/sites';
import type { Task } from '../../tasks/task';
import { RUNNER_OPTIONS, UsageError, choice, num, onInterrupt, parse, required, runnerOptions, writesRun } from '../args';
import { ProgressBar } from '../progress';
import { TASK_OPTIONS, TASK_OPTIONS_HELP, openPlainFolder, taskRequest } from '../plain-folder';
import { removeStaleTemps } from '../../io/atomic';

export const ANALYZE_HELP = `  analyze   Pairs of inputs where the model memorizes one and generalizes the other, then per neuron
            NMD (gen - mem), correlation with gen, and the top neurons by |rho|, into RUN/analysis.
            --run RUN [--pairs N (2000)] [--max-tries N] [--site ${GPT2_SITES.join('|')} (ln2)] [--topn F (0.1)]
            [--resume | --force] [--batch N (128)] [--no-probes] [--threads N] [--provider cpu|cuda]
            [--shard i/N (0-based: extract only shard i of N into RUN/analysis/shards/<i>-of-<N>; then memgen merge)]
            [--jobs N (run N shards here as child processes, --threads split among them, then merge)]
            ${TASK_OPTIONS_HELP}
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
  /** --shard i/N: this job extracts shard i only. */
  shard?: Shard;
  /** --jobs N: run N shards as child processes, then merge (1: no shards). */
  jobs: number;
}

/** Fewer pairs than this leave the probes' validation or test split (15% each) nearly empty. */
const MIN_PROBE_PAIRS = 20;

const pct = (x: number, n: number) => `${((100 * x) / Math.max(1, n)).toFixed(1)}%`;

/**
 * Statistics of the extraction in `dir`: nmd.npy, rho.npy, neurons.json, then analysis.json (last:
 * its presence marks a complete analysis; an older one is deleted first). Streams the hidden files;
 * returns the summary.
 */
export function writeStatistics(run: { task: Task; memgen: { seed: number }; plainTask?: PlainSteerRun['plainTask'] }, dir: string, extraction: ExtractResult, site: GPT2Site, topN: number, hash: string, family: SiteFamily = 'gpt2'): { summary: AnalysisSummary; neurons: NeuronsFile } {
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
    ...(run.plainTask ? { plainTask: run.plainTask } : {}),
  };
  writeJSON(file('summary'), summary);
  return { summary, neurons };
}

export function analyzeOptionsFromArgs(argv: string[]): AnalyzeOptions & { run: string; runner: ReturnType<typeof runnerOptions>; task?: PlainTaskRequest } {
  const v = parse(argv, {
    ...TASK_OPTIONS,
    run: { type: 'string' }, pairs: { type: 'string' }, 'max-tries': { type: 'string' }, site: { type: 'string' }, topn: { type: 'string' },
    resume: { type: 'boolean' }, force: { type: 'boolean' }, batch: { type: 'string' }, 'no-probes': { type: 'boolean' }, shard: { type: 'string' }, jobs: { type: 'string' },
    ...RUNNER_OPTIONS,
  });
  if (v.resume && v.force) throw new UsageError('--resume and --force contradict each other');
  let shard: Shard | undefined;
  try {
    shard = v.shard === undefined ? undefined : parseShard(String(v.shard));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const jobs = num(v.jobs, 'jobs', 1);
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`--jobs must be a positive integer, got ${jobs}`);
  if (shard && jobs > 1) throw new UsageError('--shard runs one shard; --jobs N runs N shards itself: give one of them');
  if ((shard || jobs > 1) && v.batch !== undefined) throw new UsageError(`shards generate one block of ${SHARD_BLOCK} inputs per call (the unsharded default): drop --batch`);
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
    shard,
    jobs,
    runner: runnerOptions(v),
    task: taskRequest(v),
  };
}

/** `memgen analyze`, holding the run's lock (args.ts writesRun), except a shard (see the header). */
const lockedAnalyze = writesRun('analyze', analyze);
export const analyzeCommand = (argv: string[]): Promise<number> =>
  (argv.some((a) => a === '--shard' || a.startsWith('--shard=')) ? analyze(argv) : lockedAnalyze(argv));

/**
 * The run an analysis is of: a GPT-2 run, a LoRA run (runs/lora-run.ts) analysed at layers.{i}.{site}
 * of its base + adapter, or a plain Hugging Face folder (runs/plain-run.ts) on a named task.
 */
export interface AnalysisRun {
  run: LoadedRun | LoraSteerRun | PlainSteerRun;
  gpt2: LoadedRun | null;
  lora: LoraSteerRun | null;
  plain: PlainSteerRun | null;
  family: SiteFamily;
  /** modelHash of the analysed model (a LoRA run: its adapter's). */
  hash: string;
}

/**
 * Opens the run of an analysis. `task`: the --task options, for a plain folder only (the absent parts
 * from its recorded task; `replacing`, analyze --force: a named task replaces the record).
 */
export function openAnalysisRun(runDir: string, task?: PlainTaskRequest, opts: { replacing?: boolean } = {}): AnalysisRun {
  const plain = openPlainFolder(runDir, task, opts);
  if (plain) return { run: plain, gpt2: null, lora: null, plain, family: plain.family, hash: plain.modelHash };
  const lora = isLoraRun(runDir) ? loraSteerRun(runDir) : null;
  const gpt2 = lora ? null : loadRun(runDir); // a missing model file: the loader's message names it
  const run = lora ?? gpt2!;
  return { run, gpt2, lora, plain: null, family: lora ? 'llama' : 'gpt2', hash: lora ? lora.modelHash : modelHash(run.dir) };
}

/** The previous analysis folder's name once --force moved it aside. */
const asideName = (dir: string) => `${dir}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`;

/**
 * Never overwrite silently: an extraction folder that holds files is continued with --resume or moved
 * aside with --force, else refused (naming both). Returns whether the extraction resumes.
 */
function prepareFolder(dir: string, opts: { resume: boolean; force: boolean; maxPairs: number }): boolean {
  const previous = readPairsState(dir);
  if (fs.existsSync(dir) && fs.readdirSync(dir).some((f) => f !== PLAIN_TASK_FILE)) { // a plain folder's task.json alone is no analysis
    if (opts.force) {
      const aside = asideName(dir);
      fs.renameSync(dir, aside);
      console.log(`--force: the previous analysis is kept as ${aside}`);
    } else if (!opts.resume) {
      const what = previous ? `${previous.pairs} pairs at site ${previous.site}, ${previous.tried} inputs tried` : 'files';
      const more = previous && opts.maxPairs <= previous.pairs ? 2 * previous.pairs : opts.maxPairs;
      throw new RunError(`${dir} already holds an analysis (${what}). Continue or extend it with --resume (e.g. --resume --pairs ${more}), or replace it with --force (the old folder is kept as ${path.basename(dir)}.replaced-<time>)`);
    }
  }
  const resuming = opts.resume && !opts.force && hasExtraction(dir);
  if (resuming) removeStaleTemps(dir); // of writers killed mid-write
  return resuming;
}

async function analyze(argv: string[]): Promise<number> {
  const opts = analyzeOptionsFromArgs(argv);
  if (opts.jobs > 1) return analyzeJobs(argv, opts);
  const ar = openAnalysisRun(opts.run, opts.task, { replacing: opts.force });
  const { run, gpt2, lora, plain, family, hash } = ar;
  const dir = opts.shard ? shardDir(run, opts.shard) : analysisDir(run);
  const resuming = prepareFolder(dir, opts);
  if (plain) writePlainTask(run.dir, plain.plainTask); // after prepareFolder: --force moved the old analysis aside
  const previous = resuming ? readPairsState(dir) : null;
  if (resuming && previous && opts.site && opts.site !== previous.site) {
    throw new RunError(`${dir} holds pairs at site ${previous.site}; --resume continues them there (drop --site), --force starts over at ${opts.site}`);
  }
  const site: GPT2Site = plain ? plainSite(plain, opts.site ?? (resuming && previous ? previous.site : undefined)) : opts.site ?? (resuming && previous ? previous.site : lora ? 'resid_post' : 'ln2');
  if (lora && site === 'ln2') throw new UsageError(`${opts.run} is a LoRA run: its sites are resid_post (the paper's LLaMA site, the default) and resid_pre`);
  // A shard keeps 10% more than its share of the pairs, so that the merge rarely needs to extend one.
  const maxPairs = opts.shard ? Math.ceil((1.1 * opts.maxPairs) / opts.shard.count) : opts.maxPairs;

  console.log(`analysing ${run.dir}: ${run.task.description}${opts.shard ? ` (shard ${shardLabel(opts.shard)}: blocks of ${SHARD_BLOCK} inputs, up to ${maxPairs} of the job's ${opts.maxPairs} pairs)` : ''}`);
  console.log(`site ${site} (${familySiteName(0, site, family)} .. ${familySiteName(run.cfg.nLayer - 1, site, family)}), up to ${maxPairs} pairs${opts.maxTries ? `, ${opts.maxTries} inputs` : ''} -> ${dir}`);
  if (resuming && previous) console.log(`resuming: ${previous.pairs} pairs on disk from ${previous.tried} inputs`);

  let stop = false;
  const release = onInterrupt(() => {
    stop = true;
    process.stderr.write('\nCtrl-C: saving the pairs of this batch, then stopping (Ctrl-C again aborts at once; saved pairs are kept)\n');
  });
  const inf = lora
    ? await loraRunModel(lora.lora, site === 'resid_pre' ? 'resid_pre' : 'resid_post', { runner: opts.runner, batchSize: 2 * opts.batch })
    : plain ? await plainRunModel(plain, site, { runner: opts.runner, batchSize: 2 * opts.batch })
      : await GPT2Inference.create(gpt2!.cfg, gpt2!.params, { site, runner: opts.runner, batchSize: 2 * opts.batch });
  let extraction: ExtractResult;
  try {
    // Done = pairs kept over all sessions; the share of the work is pairs or inputs, whichever budget ends it first.
    const bar = new ProgressBar('pairs', maxPairs, 'pair');
    const maxTries = opts.maxTries ?? Infinity;
    extraction = await extractPairs({
      dir, task: run.task, model: inf, modelHash: hash, seed: pairSeed(run.memgen.seed),
      maxPairs, maxTries: opts.maxTries, batch: opts.shard ? undefined : opts.batch, resume: resuming,
      shard: opts.shard && { ...opts.shard, pairsWanted: opts.maxPairs },
      shouldStop: () => stop,
      onProgress: (p) => {
        const n = p.counts.gen + p.counts.mem + p.counts.other;
        const per = p.pairs > 0 ? (p.tried / p.pairs).toFixed(1) : '-';
        bar.update(p.pairs, `| ${p.tried} inputs (${per}/pair) | gen ${pct(p.counts.gen, n)} mem ${pct(p.counts.mem, n)} other ${pct(p.counts.other, n)}`,
          Math.max(p.pairs / maxPairs, (opts.shard ? p.tried * opts.shard.count : p.tried) / maxTries));
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
  if (extraction.stopReason === 'maxTries' && extraction.pairs < maxPairs) {
    console.log(`stopped at --max-tries ${opts.maxTries} with ${extraction.pairs} of ${maxPairs} pairs`);
  }
  if (opts.shard) {
    console.log(`shard ${shardLabel(opts.shard)} done in ${dir}; when all ${opts.shard.count} shards are done: memgen merge --run ${opts.run}`);
    return 0;
  }
  await finishAnalysis(ar, dir, extraction, site, { ...opts, shouldStop: () => stop });
  return 0;
}

/**
 * After the extraction (or the merge of its shards) in `dir`: the statistics (writeStatistics), the
 * probes unless noProbes, the tables on stdout, and a LoRA run's projection attribution.
 */
export async function finishAnalysis(ar: AnalysisRun, dir: string, extraction: ExtractResult, site: GPT2Site,
  opts: { topN: number; noProbes: boolean; runner: ReturnType<typeof runnerOptions>; shouldStop?: () => boolean }): Promise<void> {
  const { run, lora, family, hash } = ar;
  const { summary, neurons } = writeStatistics(run, dir, extraction, site, opts.topN, hash, family);

  if (!opts.noProbes && extraction.pairs < MIN_PROBE_PAIRS) {
    console.log(`probes skipped: ${extraction.pairs} pairs are too few for a train/val/test split (need ${MIN_PROBE_PAIRS}; extract more with --resume --pairs N)`);
  } else if (!opts.noProbes) {
    const probes = await probeLayers(dir, summary.siteNames, { seed: run.memgen.seed, threads: opts.runner.threads || 1, shouldStop: opts.shouldStop });
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
}

/** The memgen CLI file: dist/cli.js (beside this code in the bundle; from the sources, the built one). */
export function cliFile(): string {
  const bundled = path.join(__dirname, 'cli.js');
  const file = fs.existsSync(bundled) ? bundled : path.resolve(__dirname, '..', '..', '..', 'dist', 'cli.js');
  if (!fs.existsSync(file)) throw new RunError(`${file} is missing; run \`npm run build\` (--jobs starts the shards as memgen processes)`);
  return file;
}

/** Pairs and inputs of the shards in `shardsDir` so far (their pairs-state.json files). */
function shardsProgress(shardsDir: string, N: number): { pairs: number; tried: number } {
  let pairs = 0;
  let tried = 0;
  for (let i = 0; i < N; i++) {
    try {
      const st = readPairsState(path.join(shardsDir, `${i}-of-${N}`));
      pairs += st?.pairs ?? 0;
      tried += st?.tried ?? 0;
    } catch {
      // being replaced: counted next time
    }
  }
  return { pairs, tried };
}

/**
 * `--jobs N`: N child processes `memgen analyze --shard i/N` (same process group: Ctrl-C reaches them,
 * and each saves its block and stops), each with threads / N threads; their combined progress from
 * their state files; then the merge and finishAnalysis in this process (which holds the run's lock).
 */
async function analyzeJobs(argv: string[], opts: ReturnType<typeof analyzeOptionsFromArgs>): Promise<number> {
  const N = opts.jobs;
  const ar = openAnalysisRun(opts.run, opts.task, { replacing: opts.force });
  const dir = analysisDir(ar.run);
  const resuming = prepareFolder(dir, opts);
  const plainTask = ar.plain?.plainTask;
  if (plainTask) writePlainTask(ar.run.dir, plainTask);
  const threads = Math.max(1, Math.floor((opts.runner.threads || os.availableParallelism()) / N));
  const cli = cliFile();
  const shared = ['--pairs', String(opts.maxPairs), ...(opts.maxTries ? ['--max-tries', String(opts.maxTries)] : []), ...(opts.site ? ['--site', opts.site] : []),
    '--threads', String(threads), '--provider', opts.runner.provider, ...(resuming ? ['--resume'] : []),
    ...(plainTask ? ['--task', plainTask.task, '--task-seed', String(plainTask.seed), '--task-scale', plainTask.scale] : [])];
  console.log(`analysing ${ar.run.dir} with ${N} shard processes (${threads} thread${threads > 1 ? 's' : ''} each) -> ${path.join(dir, SHARDS_DIR)}, then merging`);
  const start = Date.now();
  const before = shardsProgress(path.join(dir, SHARDS_DIR), N).pairs;
  let stop = false;
  const release = onInterrupt(() => {
    stop = true;
    process.stderr.write('\nCtrl-C: the shards save their block and stop (Ctrl-C again aborts at once)\n');
  });
  const bar = new ProgressBar('pairs', opts.maxPairs, 'pair');
  const timer = setInterval(() => {
    const p = shardsProgress(path.join(dir, SHARDS_DIR), N);
    bar.update(Math.min(p.pairs, opts.maxPairs), `| ${p.tried} inputs | ${N} shards`);
  }, 1000);
  let codes: { code: number; output: string }[];
  try {
    codes = await Promise.all(Array.from({ length: N }, (_, i) => new Promise<{ code: number; output: string }>((resolve) => {
      const child = spawn(process.execPath, [cli, 'analyze', '--run', opts.run, '--shard', `${i}/${N}`, ...shared], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      const keep = (b: Buffer) => void (output = (output + b.toString()).slice(-20000));
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      child.on('error', (e) => resolve({ code: 1, output: `${output}\n${e.message}` }));
      child.on('close', (code, signal) => resolve({ code: code ?? (signal === 'SIGINT' ? 130 : 1), output }));
    })));
  } finally {
    clearInterval(timer);
    release();
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  const again = argv.filter((a) => a !== '--force' && a !== '--resume');
  if (stop || codes.some((c) => c.code === 130)) {
    console.log(`interrupted: the shards' pairs are saved in ${path.join(dir, SHARDS_DIR)}; continue with: memgen analyze ${again.join(' ')} --resume`);
    return 130;
  }
  const failed = codes.map((c, i) => ({ ...c, i })).filter((c) => c.code !== 0);
  if (failed.length > 0) {
    const tail = (s: string) => s.trim().split('\n').filter((l) => !l.includes('\r')).slice(-5).join('\n    ');
    throw new RunError(`${failed.length} of ${N} shards failed:\n${failed.map((c) => `  shard ${c.i}/${N} (exit ${c.code}):\n    ${tail(c.output)}`).join('\n')}\nfix the cause, then: memgen analyze ${again.join(' ')} --resume`);
  }
  const merged = mergeExtraction({ runDir: opts.run, dir, task: ar.run.task, seed: pairSeed(ar.run.memgen.seed), modelHash: ar.hash, pairs: opts.maxPairs, maxTries: opts.maxTries });
  const wall = (Date.now() - start) / 1000;
  const extracted = shardsProgress(path.join(dir, SHARDS_DIR), N).pairs - before;
  reportMerged(merged);
  console.log(`this session: ${N} shards extracted ${extracted} pairs in ${wall.toFixed(1)} s wall (${(extracted / wall).toFixed(1)} pairs/s, shards and merge)`);
  await finishAnalysis(ar, dir, merged, merged.state.site, opts);
  return 0;
}

/** The merged extraction's line: pairs, inputs and classes, as after an unsharded extraction. */
export function reportMerged(m: ReturnType<typeof mergeExtraction>): void {
  const c = m.counts;
  const n = c.gen + c.mem + c.other;
  console.log(`merged ${m.shards} shards: ${m.pairs} pairs of ${m.tried} inputs tried (${(m.tried / Math.max(1, m.pairs)).toFixed(2)} inputs per pair); ` +
    `generations: gen ${pct(c.gen, n)}, mem ${pct(c.mem, n)}, other ${pct(c.other, n)} of ${n}; ${m.totalSeconds.toFixed(1)} s of extraction in all`);
}
