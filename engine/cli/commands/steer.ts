/**
 * `memgen steer-eval` and `memgen sweep`: inference-time intervention on a run with the neurons of an
 * analysis (its own, or another run's with --neurons-from), into RUN/analysis/steering.json (with
 * --neurons-from RUN2: RUN/analysis/steering-from-<RUN2's folder name>.json, so that a run's own table
 * and its transfer tables do not overwrite each other; --out FILE names any file) and
 * RUN/analysis/sweep.json (engine/steer/*).
 *
 * A run without an analysis is told to run `memgen analyze --run RUN` first. An analysis made for
 * another model file (the run was retrained since) is refused; --allow-stale goes on with a warning
 * that the files record. Ctrl-C stops between generate calls: steer-eval then writes nothing (a
 * partial table would mislead a report); sweep writes the finished cells with "complete": false.
 *
 * `steer-eval --shard i/N` and `sweep --shard i/N` (docs/cluster.md, engine/steer/shards.ts) run one
 * shard of the starting inputs, without the run's lock, into
 * RUN/analysis/shards/steer/<table>/<i>-of-<N>.json and RUN/analysis/shards/sweep/<i>-of-<N>.json;
 * `memgen merge` writes the table and sweep.json. An interrupted shard writes nothing.
 */
import { GPT2Inference } from '../../models/gpt2-infer';
import { STEER_AT, type SteerAt } from '../../models/hooks';
import { type SweepCell, defaultAlpha, steeringOutPath, writeSteerFile } from '../../steer/files';
import { parsePicks } from '../../steer/intervention';
import type { LoadedRun } from '../../runs/run';
import * as path from 'node:path';
import { type LoraSteerRun, changedBaseFiles, isLoraRun, loraRunModel, loraSteerRun, readLoraManifest } from '../../runs/lora-run';
import { RUN_FILES, RunError } from '../../runs/run';
import type { RunnerOptions } from '../../runtime/runner';
import { type Starts, type SteerModel, type SteerRun, SteerInterrupted, type SteerSetup, formatSteeringTable, prepareSteering, steerEval } from '../../steer/steer-eval';
import { type Shard, parseShard, shardLabel } from '../../analysis/shards';
import { checkLayers } from '../../analysis/rank';
import { writeSteerShard, writeSweepShard } from '../../steer/shards';
import { SWEEP_ALPHAS, SWEEP_TOPNS, type SweepResult, formatSweep, sweep } from '../../steer/sweep';
import { RUNNER_OPTIONS, UsageError, num, onInterrupt, parse, required, runnerOptions, str, writesRun } from '../args';
import { ProgressBar } from '../progress';
import { TASK_OPTIONS, TASK_OPTIONS_HELP, preparePlainSteering, taskRequest } from '../plain-folder';
import { type PlainSteerRun, type PlainTaskRequest, plainRunModel } from '../../runs/plain-run';

export const STEER_HELP = `  steer-eval Steer a run with its top neurons (mem -> gen: + alpha x NMD; gen -> mem: - alpha x NMD) against
            two random baselines; prints % gen / % mem / % other with n beside the paper's numbers and writes
            RUN/analysis/steering.json (with --neurons-from RUN2: RUN/analysis/steering-from-<RUN2 folder>.json).
            Needs \`memgen analyze --run RUN\` first.
            --run RUN [--neurons-from RUN2 (another run's analysis: intra- / inter-task)] [--out FILE.json] [--topn F (0.1)]
            [--alpha A (paper: incontext 1, arithmetic 5)] [--n N (200)] [--seed S (the run's)] [--max-tries N (30 n)]
            [--pick blocks.3.ln2:71,... (steer these neurons instead of the top N)] [--allow-stale] [--batch N (256)]
            [--beams K (1: greedy; the reference decodes with 5)] [--steer-at all|prompt (all: the last prompt position and
            every generated one, the paper's; prompt: the last prompt position only)] [--layers 2,3 (rank within these
            layers; the baselines draw from them too)] [--baseline-draws K (1: each baseline cell pools K random draws)]
            [--threads N] [--provider cpu|cuda]
            [--shard i/N (0-based: one shard of the starting inputs, then memgen merge) [--shard-quota Q (ceil(1.1 n / N))]]
  sweep     The alpha x topN grid of steering, both directions, success and % other per cell, into
            RUN/analysis/sweep.json.
            --run RUN [--neurons-from RUN2] [--alphas ${SWEEP_ALPHAS.join(',')}] [--topns ${SWEEP_TOPNS.join(',')}] [--n N (100)]
            [--seed S] [--no-baselines] [--max-tries N] [--allow-stale] [--batch N (256)] [--beams K (1)] [--steer-at all|prompt] [--layers LIST] [--baseline-draws K] [--threads N]
            [--provider cpu|cuda]
            [--shard i/N (0-based: one shard of the starting inputs, then memgen merge) [--shard-quota Q (ceil(1.1 n / N))]]
            steer-eval and sweep: ${TASK_OPTIONS_HELP}`;

/** --pick: the picked neurons, which must be at the analysis' site (undefined without --pick). */
export function pickOption(text: string | undefined, setup: SteerSetup<SteerRun>): { layer: number; index: number }[] | undefined {
  if (text === undefined) return undefined;
  try {
    const parsed = parsePicks(text, { layers: setup.sourceInfo.layers, d: setup.sourceInfo.d });
    if (parsed.site !== setup.sourceInfo.site) throw new Error(`the picked neurons are at site ${parsed.site}; the analysis is at ${setup.sourceInfo.site}`);
    return parsed.picks;
  } catch (e) {
    throw new UsageError(`--pick: ${(e as Error).message}`);
  }
}

/** --steer-at all|prompt (models/hooks.ts SteerAt). */
export function steerAtOption(v: string | boolean | undefined): SteerAt {
  const s = str(v, 'steer-at') ?? 'all';
  if (!(STEER_AT as readonly string[]).includes(s)) throw new UsageError(`--steer-at must be one of ${STEER_AT.join(', ')}, got ${s}`);
  return s as SteerAt;
}

/** --layers 2,3: the layers the top-N ranking and the baselines are restricted to (undefined: all). */
export function layersOption(v: string | boolean | undefined, setup: SteerSetup<SteerRun>): number[] | undefined {
  const s = str(v, 'layers');
  if (s === undefined) return undefined;
  const layers = s.split(',').map((x) => x.trim()).filter((x) => x !== '').map(Number);
  try {
    checkLayers(layers, setup.sourceInfo.layers);
  } catch (e) {
    throw new UsageError(`--layers ${s}: ${(e as Error).message} (0-based, comma-separated, e.g. --layers ${setup.sourceInfo.layers - 1})`);
  }
  return layers;
}

export const positiveInt = (x: number, name: string): number => {
  if (!Number.isInteger(x) || x < 1) throw new UsageError(`--${name} must be a positive integer, got ${x}`);
  return x;
};

export function fraction(x: number, name: string): number {
  if (!(x > 0 && x <= 1)) throw new UsageError(`--${name} must be a fraction in (0, 1], got ${x}`);
  return x;
}

/** A comma-separated list of numbers. */
function numList(v: string | boolean | undefined, name: string, fallback: readonly number[]): number[] {
  const s = str(v, name);
  if (s === undefined) return [...fallback];
  const xs = s.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (xs.length === 0) throw new UsageError(`--${name} needs at least one number`);
  return xs.map((p) => num(p, name, 0));
}

const COMMON = {
  run: { type: 'string' }, 'neurons-from': { type: 'string' }, n: { type: 'string' }, seed: { type: 'string' },
  'max-tries': { type: 'string' }, 'allow-stale': { type: 'boolean' }, batch: { type: 'string' }, beams: { type: 'string' }, 'steer-at': { type: 'string' }, layers: { type: 'string' }, 'baseline-draws': { type: 'string' }, ...RUNNER_OPTIONS, ...TASK_OPTIONS,
} as const;

/** Progress of the two phases on stderr: starting inputs found, then steered generations. */
function progressPrinter(wantedStarts: number) {
  const startBar = new ProgressBar('starts  ', wantedStarts, 'input');
  let cellBar: ProgressBar | undefined;
  return (p: { phase: 'starts'; tried: number; found: number; wanted: number } | { phase: 'cells'; done: number; total: number; cell?: SweepCell }) => {
    if (p.phase === 'starts') {
      startBar.update(Math.min(p.found, wantedStarts), `| ${p.tried} inputs tried`);
      return;
    }
    cellBar ??= new ProgressBar('steering', Math.max(1, p.total), 'gen');
    const c = p.cell;
    cellBar.update(p.done, c ? `| alpha ${c.alpha} topN ${c.topN} ${c.direction} ${c.method}: ${c.success.toFixed(1)}%` : '');
  };
}

/** The run to steer: a GPT-2 run, a LoRA run (runs/lora-run.ts) steered at layers.{i}.{site}, or a plain folder (--task; runs/plain-run.ts). */
export function prepare(runDir: string, opts: { neuronsFrom?: string; allowStale?: boolean; task?: PlainTaskRequest }): SteerSetup<SteerRun> {
  const plain = preparePlainSteering(runDir, opts);
  if (plain) return plain;
  if (!isLoraRun(runDir)) return prepareSteering(runDir, opts);
  const setup = prepareSteering(runDir, { ...opts, load: loraSteerRun });
  // Neurons of another adapter (Tables 3, 4) index the same base's layers only if it is the same base.
  if (opts.neuronsFrom && isLoraRun(opts.neuronsFrom)) {
    const other = readLoraManifest(path.join(opts.neuronsFrom, RUN_FILES.manifest));
    if (changedBaseFiles(other.base.hashes, setup.run.lora.manifest.base.hashes).length > 0) {
      throw new RunError(`the neurons of ${opts.neuronsFrom} were found with another base model (${other.base.dir}) than ${runDir}'s (${setup.run.lora.manifest.base.dir}): intra- and inter-task steering needs adapters on the same base`);
    }
  }
  return setup;
}

/** The steered model at the neurons' site. */
async function steerModel(setup: SteerSetup<SteerRun>, runner: RunnerOptions, batchSize: number): Promise<SteerModel & { release(): Promise<void> }> {
  const site = setup.sourceInfo.site;
  if ('plainTask' in setup.run) return plainRunModel(setup.run as PlainSteerRun, site, { runner, batchSize });
  if (setup.run.family === 'llama') {
    if (site === 'ln2') throw new UsageError('the neurons are at ln2, which a LoRA run does not have');
    return loraRunModel((setup.run as LoraSteerRun).lora, site, { runner, batchSize });
  }
  const run = setup.run as LoadedRun;
  return GPT2Inference.create(run.cfg, run.params, { site, runner, batchSize });
}

function describeSetup(s: SteerSetup<SteerRun>): void {
  const src = s.sourceInfo;
  console.log(`${s.run.dir}: ${s.run.task.description}`);
  if (src.experiment !== 'same-run') {
    console.log(`neurons from ${src.run} (${src.task ?? 'unknown task'}, ${src.pairs} pairs): ${src.experiment} experiment (the paper's ${src.experiment === 'intra-task' ? 'Table 3' : 'Table 4'})`);
  }
  for (const w of s.warnings) console.log(`warning: ${w}`);
}

/** A command holding the run's lock (args.ts writesRun), except a shard (shards write only their own file). */
function lockedUnlessShard(name: string, fn: (argv: string[]) => Promise<number>): (argv: string[]) => Promise<number> {
  const locked = writesRun(name, fn);
  return (argv) => (argv.some((a) => a === '--shard' || a.startsWith('--shard=')) ? fn(argv) : locked(argv));
}

const SHARD_OPTIONS = { shard: { type: 'string' }, 'shard-quota': { type: 'string' } } as const;

/** --shard i/N and --shard-quota Q (default ceil(1.1 n / N)): the shard with its quota, or undefined. */
function shardOption(v: { shard?: string | boolean; 'shard-quota'?: string | boolean }, n: number): (Shard & { quota: number }) | undefined {
  if (v['shard-quota'] !== undefined && v.shard === undefined) throw new UsageError('--shard-quota goes with --shard i/N');
  if (v.shard === undefined) return undefined;
  let shard: Shard;
  try {
    shard = parseShard(String(v.shard));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return { ...shard, quota: positiveInt(num(v['shard-quota'], 'shard-quota', Math.ceil((1.1 * n) / shard.count)), 'shard-quota') };
}

/** The last lines of a shard job: what it wrote, and the merge. */
function reportShard(shard: Shard & { quota: number }, r: { starts: Starts }, what: string, file: string, runDir: string): void {
  console.log('');
  console.log(`shard ${shardLabel(shard)}: ${r.starts.inputs['mem->gen'].length} mem->gen and ${r.starts.inputs['gen->mem'].length} gen->mem starting inputs from ${r.starts.info.tried} inputs, ${what} -> ${file}`);
  console.log(`when all ${shard.count} shards are done: memgen merge --run ${runDir}`);
}

/** --baseline-draws K (1: the paper's one draw). */
const baselineDrawsOption = (v: string | boolean | undefined): number => positiveInt(num(v, 'baseline-draws', 1), 'baseline-draws');

/** `memgen steer-eval`, holding the run's lock (args.ts writesRun), except a shard. */
export const steerEvalCommand = lockedUnlessShard('steer-eval', steerEvalCli);

async function steerEvalCli(argv: string[]): Promise<number> {
  const v = parse(argv, {
    ...COMMON, topn: { type: 'string' }, alpha: { type: 'string' }, pick: { type: 'string' }, out: { type: 'string' }, ...SHARD_OPTIONS,
  });
  const runDir = required(v.run, 'run');
  const outFile = str(v.out, 'out');
  if (outFile !== undefined && !outFile.endsWith('.json')) throw new UsageError(`--out names the steering table's JSON file (FILE.json), got ${outFile}`);
  const n = positiveInt(num(v.n, 'n', 200), 'n');
  const topN = fraction(num(v.topn, 'topn', 0.1), 'topn');
  const maxTries = num(v['max-tries'], 'max-tries', null);
  const batch = positiveInt(num(v.batch, 'batch', 256), 'batch');
  const setup = prepare(runDir, { neuronsFrom: str(v['neurons-from'], 'neurons-from'), allowStale: Boolean(v['allow-stale']), task: taskRequest(v) });
  const alpha = num(v.alpha, 'alpha', defaultAlpha(setup.run.task.name));
  const seed = num(v.seed, 'seed', setup.run.memgen.seed);
  const picks = pickOption(str(v.pick, 'pick'), setup);
  const shard = shardOption(v, n);
  const beams = positiveInt(num(v.beams, 'beams', 1), 'beams');
  const steerAt = steerAtOption(v['steer-at']);
  const layers = layersOption(v.layers, setup);
  if (layers && picks) throw new UsageError('--layers restricts the top-N ranking; --pick names the neurons itself: give one of them');
  const baselineDraws = baselineDrawsOption(v['baseline-draws']);
  describeSetup(setup);

  let stop = false;
  const release = onInterrupt(() => {
    stop = true;
    process.stderr.write('\nCtrl-C: stopping after this batch; the steering table is not written (Ctrl-C again aborts at once)\n');
  });
  const model = await steerModel(setup, runnerOptions(v), batch);
  try {
    const r = await steerEval({
      setup, model, topN, picks, alpha, n, seed, maxTries: maxTries === null ? undefined : positiveInt(maxTries, 'max-tries'), batch, beams, steerAt, layers, baselineDraws,
      shard, shouldStop: () => stop, onProgress: progressPrinter(2 * (shard?.quota ?? n)),
    });
    if (shard) {
      const out = outFile ?? steeringOutPath(setup.run.dir, setup.sourceInfo.run);
      const neuronsFrom = str(v['neurons-from'], 'neurons-from') ?? null;
      const file = writeSteerShard(setup.run, shard, {
        n, seed, maxTries: r.file.starts.maxTries, batch, topN, picks: picks ?? null, alpha, beams, steerAt, layers: layers ?? null, baselineDraws, neuronsFrom, allowStale: Boolean(v['allow-stale']), out,
      }, setup.modelHash, r);
      reportShard(shard, r, 'every cell run', file, runDir);
      return 0;
    }
    const file = writeSteerFile(setup.run.dir, 'steering', r.file, outFile ?? steeringOutPath(setup.run.dir, setup.sourceInfo.run));
    console.log('');
    console.log(formatSteeringTable(r.file));
    console.log(`wrote ${file}`);
    return 0;
  } catch (e) {
    if (e instanceof SteerInterrupted) {
      console.log('interrupted: nothing written');
      return 130;
    }
    throw e;
  } finally {
    release();
    await model.release();
  }
}

/** `memgen sweep`, holding the run's lock (args.ts writesRun), except a shard. */
export const sweepCommand = lockedUnlessShard('sweep', sweepCli);

async function sweepCli(argv: string[]): Promise<number> {
  const v = parse(argv, { ...COMMON, alphas: { type: 'string' }, topns: { type: 'string' }, 'no-baselines': { type: 'boolean' }, ...SHARD_OPTIONS });
  const runDir = required(v.run, 'run');
  const n = positiveInt(num(v.n, 'n', 100), 'n');
  const alphas = numList(v.alphas, 'alphas', SWEEP_ALPHAS);
  const topNs = numList(v.topns, 'topns', SWEEP_TOPNS).map((t) => fraction(t, 'topns'));
  const maxTries = num(v['max-tries'], 'max-tries', null);
  const batch = positiveInt(num(v.batch, 'batch', 256), 'batch');
  const setup = prepare(runDir, { neuronsFrom: str(v['neurons-from'], 'neurons-from'), allowStale: Boolean(v['allow-stale']), task: taskRequest(v) });
  const seed = num(v.seed, 'seed', setup.run.memgen.seed);
  const shard = shardOption(v, n);
  const beams = positiveInt(num(v.beams, 'beams', 1), 'beams');
  const steerAt = steerAtOption(v['steer-at']);
  const layers = layersOption(v.layers, setup);
  const baselineDraws = baselineDrawsOption(v['baseline-draws']);
  const baselines = !v['no-baselines'];
  describeSetup(setup);

  let stop = false;
  const release = onInterrupt(() => {
    stop = true;
    process.stderr.write(`\nCtrl-C: stopping after this batch; ${shard ? 'a shard writes nothing' : 'the finished cells are written'} (Ctrl-C again aborts at once)\n`);
  });
  const model = await steerModel(setup, runnerOptions(v), batch);
  let r: SweepResult;
  try {
    r = await sweep({
      setup, model, alphas, topNs, n, seed, baselines, batch, beams, steerAt, layers, baselineDraws,
      maxTries: maxTries === null ? undefined : positiveInt(maxTries, 'max-tries'),
      shard, shouldStop: () => stop, onProgress: progressPrinter(2 * (shard?.quota ?? n)),
    });
  } catch (e) {
    if (e instanceof SteerInterrupted) {
      console.log('interrupted while drawing the starting inputs: nothing written');
      return 130;
    }
    throw e;
  } finally {
    release();
    await model.release();
  }
  const result = r.file;
  if (shard) {
    if (!result.complete) {
      console.log(`interrupted: shard ${shardLabel(shard)} is not written (a shard is written with every cell; run it again)`);
      return 130;
    }
    const file = writeSweepShard(setup.run, shard, {
      n, seed, maxTries: result.starts.maxTries, batch, beams, steerAt, layers: layers ?? null, baselineDraws, neuronsFrom: str(v['neurons-from'], 'neurons-from') ?? null, allowStale: Boolean(v['allow-stale']),
      alphas: result.alphas, topNs: result.topNs, baselines,
    }, setup.modelHash, r);
    reportShard(shard, r, `${result.cells.length} cells run`, file, runDir);
    return 0;
  }
  const file = writeSteerFile(setup.run.dir, 'sweep', result);
  console.log('');
  console.log(formatSweep(result));
  console.log(`wrote ${file}${result.complete ? '' : ' (incomplete)'}`);
  return result.complete ? 0 : 130;
}
