/**
 * `memgen reproduce`: the paper's GPT-2 pipeline on both of its tasks (arithmetic, incontext), end to
 * end, then a Table-1-style summary beside the paper's numbers.
 *
 * Per task, into DIR/<task>-<preset> (DIR default runs-reproduce/), stage by stage. From scratch on a CPU with
 * a core per task (each committed run trains on 1 thread), the tasks run at once, each one's whole chain in
 * a child process (a "lane": `memgen reproduce --task T --threads 1 --lane-file F`, output into
 * DIR/logs/<run>-lane.log, results back in F): the same files as one after the other, since training
 * keeps the committed run's thread count and the analysis and steering do not depend on it
 * (docs/performance.md); otherwise (--reuse, CUDA, one core, unbuilt sources) one task after the other here:
 *   train     from scratch with the preset's defaults (the train command's own config builder) plus
 *             TRAIN_ARGS[preset][task], as the committed runs were made, and the thread count the
 *             committed run FROM/<task>-<preset> records (a sum's reduction order depends on the threads,
 *             so another count trains another model); the stage then says whether the model equals the
 *             committed one (sha256 of model.safetensors), and the summary repeats it. Presets: tiny (the
 *             demo, 17-24 minutes on 2 cores: README) and small (6 layers, d = 256: the runs that reach the paper,
 *             up to ~1 hour of training each). Or with --reuse a copy of the committed run
 *             FROM/<task>-<preset> (model, config, tokenizer, manifest, log and analysis; not checkpoints/
 *             or report/); without --preset, the largest committed run of each task (small where there is
 *             one). FROM (default runs/) is never modified.
 *   analyze   `memgen analyze`, 2000 pairs from scratch; with --reuse the committed analysis is kept
 *             when its modelHash matches the model file, else 500 pairs (--force). In two calls, so that
 *             a model that seldom gives a pair ends in bounded time: first at most 5000 inputs without
 *             probes (the yield: inputs per pair; the committed runs need about 30), then --resume: up to
 *             the wanted pairs within 60 inputs per pair when the yield is at most 60, else only the
 *             pairs found (the summary says so); the second call computes the statistics and probes.
 *             The site and the steering setting are GPT2_SETTINGS[preset][task]'s (steer/files.ts): the
 *             residual stream before each block (resid_pre), not the paper's ln2, which moves them little.
 *   steer     `memgen steer-eval` at that setting (topN, alpha per task), n = 200, on starting inputs of
 *             seed 7, which the sweep (the run's seed) never drew; the summary shows the paper's numbers
 *             beside ours.
 *   sweep     `memgen sweep` (alpha x topN, both baselines), n = 100, so that the report shows it.
 *   report    `memgen report` (RUN/report/index.html).
 * A failing stage (e.g. analysis of a model that shows only one behaviour: NoPairsError) is reported,
 * the task's later stages are skipped except its report (which shows the failure), and the other task
 * goes on. The command functions are called in-process; what they print goes to DIR/logs/<run>-<stage>.log
 * while their progress bars (stderr) stay on screen. Ctrl-C stops after the current stage (the stage
 * itself stops cleanly: training saves a checkpoint, analysis keeps its pairs; no report is written
 * after it); a second Ctrl-C aborts.
 * Exit code: 0 all stages done, 1 a stage failed, 130 interrupted.
 * Hidden option for testing the pipeline quickly: --steps N overrides the training length (from scratch).
 * `--system lora` runs the LLaMA + LoRA pipeline instead (reproduce-lora.ts: Tables 2-4, Figure 5); the
 * stage runner, logging, Ctrl-C, two-phase analysis and table formatting of both are reproduce-stages.ts.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { analysisPath } from '../../analysis/files';
import { writeReport } from '../../report/html';
import { bestProbe, loadReportData } from '../../report/data';
import { directionVerdicts, steeringVerdict } from '../../report/verdict';
import { RUN_FILES, RunError, modelHash, prepareNewRun, readJSON, writeJSON } from '../../runs/run';
import { GPT2_SETTINGS, type ReproducePreset, type ReproduceTask } from '../../steer/files';
import type { TaskName } from '../../tasks/task';
import { formatEval } from '../../train/evaluate';
import type { TrainConfig } from '../../train/presets';
import { type TrainOutcome, train } from '../../train/trainer';
import { RUNNER_OPTIONS, UsageError, choice, num, parse, runnerOptions, str } from '../args';
import { ProgressBar, ProgressGroup, formatSeconds } from '../progress';
import { type StageOutcome, type StageResult as Stage, analyzeInTwoPhases, formatTable, interruptible, loggedCommand, runStage, stageEndLine } from '../reproduce-stages';
import { analyzeCommand, cliFile } from './analyze';
import { REPRODUCE_LORA_HELP, reproduceLoraCommand } from './reproduce-lora';
import { steerEvalCommand, sweepCommand } from './steer';
import { trainConfigFromArgs } from './train';

export const REPRODUCE_HELP = `  reproduce Train (or --reuse the committed runs), analyse, steer, sweep and report both of the paper's GPT-2
            tasks (arithmetic, incontext), then print a Table-1-style summary beside the paper's numbers.
            [--system gpt2 (default) | lora (see below)] [--preset tiny|small (tiny; --reuse: the largest committed)] [--reuse [--from DIR (runs)]]
            [--task arithmetic|incontext (only this one)] [--out DIR (runs-reproduce)] [--force (move existing run folders in DIR aside)] [--threads N]
            [--provider cpu|cuda]
${REPRODUCE_LORA_HELP}`;

const SYSTEMS = ['gpt2', 'lora'] as const;

/** `--system gpt2|lora` taken out of argv (default gpt2); the rest goes to that system's pipeline. */
function takeSystem(argv: string[]): { system: (typeof SYSTEMS)[number]; rest: string[] } {
  const rest: string[] = [];
  let system: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--system') system = argv[++i];
    else if (a.startsWith('--system=')) system = a.slice('--system='.length);
    else rest.push(a);
  }
  return { system: choice(system, 'system', SYSTEMS, 'gpt2'), rest };
}

const TASKS: readonly ReproduceTask[] = ['arithmetic', 'incontext'];
const PRESETS: readonly ReproducePreset[] = ['tiny', 'small'];
const STAGES = ['train', 'analyze', 'steer', 'sweep', 'report'] as const;
type StageName = (typeof STAGES)[number];

/** Pairs wanted (from scratch / re-analysis of a reused run), inputs per pair allowed, steering n. */
const PAIRS = 2000;
const REUSE_PAIRS = 500;
const MAX_TRIES_PER_PAIR = 60;
/** Inputs of the first extraction phase, which measures how often pairs come (see the header). */
const YIELD_INPUTS = 5000;
const STEER_N = 200;
/** The steering seed: starting inputs the sweep (the run's seed) never saw. */
const STEER_SEED = 7;

/**
 * What each task's training adds to the preset's defaults (the committed runs' commands):
 *   tiny arithmetic   seed 2, stop once both behaviours reach 30 % on a checkpoint that adds (plain accuracy
 *                     >= 0.9); the tiny adder clicks at a seed-dependent step (seed 0: plain accuracy 0.65
 *                     by step 3,000; seeds 1 and 2: 0.93 and 0.91 at the transition; docs/results.md)
 *   tiny incontext    the one-colour ablation (colours-per-name 1, contradict-rate 0.2): with the paper's five
 *                     colours per name the tiny preset learns no rule in the demo's budget (docs/results.md);
 *                     stopped at step 1,000 of its 2,500-step schedule: the full schedule keeps step 750 (no
 *                     later evaluation balances better), so the kept model is the same, in 40 % of the time
 *   small arithmetic  the tiny task (operands 10..99, memRate 0.05), batch 64, lr 1e-3, 1,500 steps of plain
 *                     sums, to step 2,750 of an 8,000-step schedule (the transition is over by then)
 * A preset without a task's entry has no run of it: no model trained here has learned the in-context
 * rule at the small preset yet (docs/results.md), so `--preset small` makes the arithmetic run only.
 */
export const TRAIN_ARGS: Record<ReproducePreset, Partial<Record<ReproduceTask, readonly string[]>>> = {
  tiny: {
    arithmetic: ['--seed', '2', '--stop-when-both', '0.3'],
    incontext: ['--seed', '0', '--colours-per-name', '1', '--contradict-rate', '0.2', '--stop-at-step', '1000'],
  },
  small: {
    arithmetic: ['--seed', '0', '--task-scale', 'tiny', '--mem-rate', '0.05', '--batch', '64', '--lr', '1e-3', '--mem-warmup', '1500', '--steps', '8000', '--stop-at-step', '2750'],
  },
};
const SWEEP_N = 100;

type StageResult = Stage<StageName>;

interface TaskResult {
  task: TaskName;
  dir: string;
  stages: StageResult[];
  failed: string | null;
  /** Whether a run trained from scratch equals the committed one (null: not compared). */
  remade?: string;
}

interface CommittedManifest {
  command?: string;
  train?: { threads?: number };
  hashes?: Record<string, string>;
}

/** The manifest of the committed run at `dir`, or null when there is none (or it cannot be read). */
function committedManifest(dir: string): CommittedManifest | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, RUN_FILES.manifest), 'utf8')) as CommittedManifest;
  } catch {
    return null;
  }
}

/** Whether the model the run at `dir` kept is the committed one (sha256 in the manifests). */
function sameModel(dir: string, committed: CommittedManifest): boolean {
  const ours = committedManifest(dir)?.hashes?.[RUN_FILES.model];
  return ours !== undefined && ours === committed.hashes?.[RUN_FILES.model];
}

/** Copies a committed run into `dest` (without checkpoints/, report/ and moved-aside analyses). */
function copyRun(src: string, dest: string): void {
  const skip = (rel: string) => rel === RUN_FILES.checkpoints || rel.startsWith(RUN_FILES.checkpoints + path.sep) || rel === 'report' ||
    rel.startsWith('report' + path.sep) || /^analysis\.replaced-/.test(rel) || /(^|[\\/])\.[^\\/]*\.tmp$/.test(rel);
  fs.cpSync(src, dest, { recursive: true, filter: (s) => !skip(path.relative(src, s)) });
}

/** `train` here, its log lines into `logFile`. */
async function trainInProcess(cfg: TrainConfig, logFile: string, bar: ProgressBar, shouldStop: () => boolean): Promise<TrainOutcome> {
  const log = fs.openSync(logFile, 'w');
  try {
    fs.writeSync(log, `${cfg.command}\n`);
    const out = await train(cfg, {
      shouldStop,
      log: (l) => fs.writeSync(log, l + '\n'),
      onEval: (e) => fs.writeSync(log, `[step ${e.step}] ${formatEval(e)}\n`),
      onProgress: (p) => {
        const e = p.lastEval;
        bar.update(p.step, `loss ${p.loss.toFixed(3)}${e ? ` | step ${e.step}: gen ${(100 * e.gen).toFixed(0)}% mem ${(100 * e.mem).toFixed(0)}%` : ''}`);
      },
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    fs.writeSync(log, `stopped: ${out.stopReason} after ${out.steps} steps; ${out.best ? `kept step ${out.best.step}: ${formatEval(out.best)}` : 'no evaluation'}\n`);
    return out;
  } finally {
    fs.closeSync(log);
  }
}

/** The last non-empty line of a log (its last 4 KiB), '' when there is none yet. */
function lastLine(file: string): string {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const buf = Buffer.alloc(Math.min(4096, size));
      fs.readSync(fd, buf, 0, buf.length, size - buf.length);
      return buf.toString('utf8').split(/[\r\n]/).map((l) => l.trim()).filter((l) => l !== '').pop() ?? '';
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

/**
 * The lanes (see the header): `memgen reproduce --task T --threads 1 --lane-file F ARGS` per task, at once,
 * each one's output into LOGDIR/<run>-lane.log; a status line shows each lane's latest line, and each
 * lane's results come back in F (written also after Ctrl-C, which reaches the children too: they share
 * this process group, and each stops after its current stage).
 */
async function runLanes(cli: string, lanes: readonly { task: ReproduceTask; dir: string }[], args: readonly string[], logDir: string): Promise<TaskResult[]> {
  fs.mkdirSync(logDir, { recursive: true });
  const status = new ProgressGroup();
  const results = await Promise.all(lanes.map(({ task, dir }) => new Promise<TaskResult[]>((resolve) => {
    const logFile = path.join(logDir, `${path.basename(dir)}-lane.log`);
    const resultFile = path.join(logDir, `${path.basename(dir)}-lane.json`);
    fs.rmSync(resultFile, { force: true });
    console.log(`[${task}] train, analyze, steer, sweep and report in a child process, one thread (log: ${logFile})`);
    const log = fs.openSync(logFile, 'w');
    const child = spawn(process.execPath, [cli, 'reproduce', '--task', task, '--threads', '1', '--lane-file', resultFile, ...args], { stdio: ['ignore', log, log] });
    const poll = setInterval(() => status.show(task, lastLine(logFile)), 1000);
    let ended = false;
    const end = (why: string | null) => {
      if (ended) return;
      ended = true;
      clearInterval(poll);
      fs.closeSync(log);
      status.show(task, why ?? 'done', true);
      try {
        resolve(readJSON<TaskResult[]>(resultFile, 'reproduce lane result'));
      } catch {
        resolve([{ task, dir, stages: [], failed: `its child process ended (${why ?? 'exit code 0'}) without ${resultFile}: see ${logFile}` }]);
      }
    };
    child.on('error', (e) => end(`cannot start ${process.execPath} ${cli}: ${e.message}`));
    child.on('exit', (code, signal) => end(signal ? `killed by ${signal}` : code === 0 ? null : `exit code ${code}`));
  })));
  status.end();
  for (const r of results.flat()) {
    console.log('');
    for (const st of r.stages.filter((x) => x.status !== 'skipped')) console.log(stageEndLine(`[${r.task} ${STAGES.indexOf(st.stage as StageName) + 1}/${STAGES.length}]`, st));
  }
  return results.flat();
}

export async function reproduceCommand(argvWithSystem: string[]): Promise<number> {
  const { system, rest: argv } = takeSystem(argvWithSystem);
  if (system === 'lora') return reproduceLoraCommand(argv);
  const v = parse(argv, {
    preset: { type: 'string' }, reuse: { type: 'boolean' }, from: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' },
    steps: { type: 'string' }, task: { type: 'string' }, 'lane-file': { type: 'string' }, ...RUNNER_OPTIONS,
  });
  const reuse = Boolean(v.reuse);
  const only = v.task === undefined ? null : choice(v.task, 'task', TASKS);
  const laneFile = str(v['lane-file'], 'lane-file');
  if (v.from !== undefined && !reuse) throw new UsageError('--from names the runs to copy with --reuse');
  const from = str(v.from, 'from') ?? 'runs';
  const chosen = v.preset === undefined ? null : choice(v.preset, 'preset', PRESETS);
  // per task: the chosen preset; --reuse without one: the largest committed run (small where there is one)
  const presetOf = (task: ReproduceTask): ReproducePreset =>
    chosen ?? (reuse && fs.existsSync(path.join(from, `${task}-small`, RUN_FILES.manifest)) ? 'small' : 'tiny');
  if (v.steps !== undefined && reuse) throw new UsageError('--steps (a testing override of the training length) has no meaning with --reuse');
  const steps = v.steps === undefined ? null : num(v.steps, 'steps', 0);
  if (steps !== null && (!Number.isInteger(steps) || steps < 1)) throw new UsageError(`--steps must be a positive integer, got ${steps}`);
  const outDir = str(v.out, 'out') ?? 'runs-reproduce';
  const runner = runnerOptions(v);
  const runnerArgs = [...(v.threads !== undefined ? ['--threads', String(runner.threads)] : []), ...(runner.provider !== 'cpu' ? ['--provider', runner.provider] : [])];
  const logDir = path.join(outDir, 'logs');

  // Refuse before any work: existing run folders (unless --force), missing committed runs.
  const tasks = TASKS.filter((t) => TRAIN_ARGS[presetOf(t)][t] !== undefined && (only === null || t === only));
  if (tasks.length === 0) throw new UsageError(`preset ${chosen} has no ${only} run (no model has learned it at that size yet: docs/results.md)`);
  const runDir = (task: ReproduceTask) => path.join(outDir, `${task}-${presetOf(task)}`);
  const committedDir = (task: ReproduceTask) => path.join(from, `${task}-${presetOf(task)}`);
  for (const task of tasks) {
    const dir = runDir(task);
    if (reuse && path.resolve(dir) === path.resolve(committedDir(task))) {
      throw new UsageError(`--out ${outDir} would put the copy of ${committedDir(task)} onto itself; choose another --out (the committed runs are never modified)`);
    }
    if (!v.force && fs.existsSync(dir) && fs.readdirSync(dir).length > 0) {
      throw new RunError(`${dir} already exists: pass --force to move it aside (kept as ${path.basename(dir)}.replaced-<time>), or choose another --out`);
    }
    if (reuse && !fs.existsSync(path.join(committedDir(task), RUN_FILES.manifest))) {
      throw new RunError(`--reuse: ${committedDir(task)} is not a run folder (no ${RUN_FILES.manifest}); name the committed runs' folder with --from`);
    }
  }
  const presetsUsed = [...new Set(tasks.map(presetOf))].join(' / ');

  const ctl = interruptible('reproduce');

  const started = Date.now();
  const results: TaskResult[] = [];
  const without = TASKS.filter((t) => !tasks.includes(t));
  if (without.length > 0) console.log(`reproduce: preset ${chosen} has no ${without.join(', ')} run (no model has learned it at that size yet: docs/results.md)`);
  console.log(`reproduce: ${tasks.map((t) => `${t} (${presetOf(t)})`).join(', ')}, ${reuse ? `reusing the committed runs in ${from}/` : `trained from scratch${steps !== null ? ` (--steps ${steps}: a test override, not the preset's schedule)` : ''}`} -> ${outDir}/`);
  // Each task's chain: train (or copy), analyze, steer, sweep, report, one stage after the other.
  const runTask = async (task: ReproduceTask): Promise<void> => {
    const dir = runDir(task);
    const preset = presetOf(task);
    const setting = GPT2_SETTINGS[preset][task]!;
    const res: TaskResult = { task, dir, stages: [], failed: null };
    results.push(res);
    const notes: string[] = [];
    const logFile = (stage: StageName) => path.join(logDir, `${path.basename(dir)}-${stage}.log`);
    const stage = async (name: StageName, what: string, fn: () => Promise<StageOutcome>): Promise<boolean> => {
      const r = await runStage({ label: task, index: STAGES.indexOf(name) + 1, total: STAGES.length }, name, what, fn);
      res.stages.push(r);
      if (r.status === 'failed') {
        res.failed ??= `${name} failed: ${r.detail}`;
        notes.push(`reproduce: ${name} failed: ${r.detail}`);
      }
      if (r.status === 'interrupted') ctl.stop();
      return r.status !== 'failed' && r.status !== 'interrupted';
    };
    const command = (name: StageName, fn: (argv: string[]) => Promise<number>, args: string[]) => loggedCommand(logFile(name), fn, args);
    const skip = (name: StageName, why: string) => res.stages.push({ stage: name, seconds: 0, status: 'skipped', detail: why });

    // 1. train (or copy), with the thread count the committed run records
    const trained = await stage('train', reuse ? `copy ${committedDir(task)}` : `GPT-2 ${preset} from scratch`, async () => {
      if (reuse) {
        prepareNewRun(dir, Boolean(v.force));
        copyRun(committedDir(task), dir);
        return { status: 'copied', detail: `${committedDir(task)} -> ${dir} (without checkpoints/)` };
      }
      const committed = committedManifest(committedDir(task));
      const threads = committed?.train?.threads;
      const trainRunnerArgs = typeof threads === 'number' ? ['--threads', String(threads), ...(runner.provider !== 'cpu' ? ['--provider', runner.provider] : [])] : runnerArgs;
      const cfg = trainConfigFromArgs(['--task', task, '--preset', preset, ...trainRunnerArgs, ...TRAIN_ARGS[preset][task]!,
        ...(steps !== null ? ['--steps', String(steps)] : []), ...(v.force ? ['--force'] : []), '--out', dir]);
      fs.mkdirSync(logDir, { recursive: true });
      const out = await trainInProcess(cfg, logFile('train'), new ProgressBar(`${task} train`, Math.min(cfg.steps, cfg.stopAt ?? Infinity)), ctl.stopped);
      const kept = out.best ? `kept step ${out.best.step}: ${formatEval(out.best)}` : 'no evaluation';
      if (out.stopReason === 'interrupted') return { status: 'interrupted', detail: `checkpoint saved at step ${out.steps}; continue with: memgen ${cfg.command.replace(/^memgen /, '').replace(' --force', '').replace(' --resume', '')} --resume` };
      if (committed) {
        const same = sameModel(dir, committed);
        res.remade = same ? `remade ${committedDir(task)} exactly (model.safetensors sha256 equal, ${cfg.threads} thread${cfg.threads === 1 ? '' : 's'})`
          : `differs from the committed ${committedDir(task)} (model.safetensors sha256 differs; its command: ${committed.command})`;
        notes.push(`reproduce: ${res.remade}`);
      }
      return { status: 'done', detail: `${out.steps} steps (${out.stopReason}); ${kept}${res.remade ? `; ${res.remade}` : ''}` };
    });

    // 2. analyze (or keep the committed analysis)
    let analysed = false;
    if (trained && !ctl.stopped()) {
      const summaryFile = analysisPath(dir, 'summary');
      let keep = false;
      if (reuse && fs.existsSync(summaryFile)) {
        const recorded = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as { modelHash?: string; site?: string };
        keep = recorded.modelHash === modelHash(dir) && recorded.site === setting.site;
      }
      const pairs = reuse ? REUSE_PAIRS : PAIRS;
      analysed = await stage('analyze', keep ? 'the committed analysis (its modelHash matches the model file, its site is the setting\'s)' : `${pairs} pairs (log: ${logFile('analyze')})`, async () => {
        if (keep) {
          const s = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as { pairs: number; triesPerPair: number };
          return { status: 'kept', detail: `${s.pairs} pairs (${s.triesPerPair.toFixed(1)} inputs per pair)` };
        }
        return analyzeInTwoPhases({ dir, site: setting.site, pairs, yieldInputs: YIELD_INPUTS, maxTriesPerPair: MAX_TRIES_PER_PAIR, runnerArgs, logFile: logFile('analyze'), analyze: analyzeCommand });
      });
    } else if (!trained) skip('analyze', 'training did not finish');

    // 3-4. steering at the paper's setting, then the sweep
    let steered = false;
    if (analysed && !ctl.stopped()) {
      steered = await stage('steer', `steer-eval at blocks.{i}.${setting.site}, topN ${setting.topN}, alpha ${setting.alpha}, n = ${STEER_N} (log: ${logFile('steer')})`, async () => {
        const status = await command('steer', steerEvalCommand, ['--run', dir, '--topn', String(setting.topN), '--alpha', String(setting.alpha), '--n', String(STEER_N), '--seed', String(STEER_SEED), ...runnerArgs]);
        if (status !== 'done') return { status, detail: `see ${logFile('steer')}` };
        const d = loadReportData(dir);
        return { status: 'done', detail: d.steering ? steeringVerdict(d.steering).line : '' };
      });
    } else if (!analysed) skip('steer', 'no analysis');
    if (steered && !ctl.stopped()) {
      await stage('sweep', `alpha x topN, n = ${SWEEP_N} (log: ${logFile('sweep')})`, async () => {
        const status = await command('sweep', sweepCommand, ['--run', dir, '--n', String(SWEEP_N), ...runnerArgs]);
        return { status, detail: status === 'done' ? '' : `see ${logFile('sweep')}` };
      });
    } else if (!steered) skip('sweep', 'no steering');

    // 5. the report, also after a failure (it shows what exists and the failure); not after Ctrl-C
    if (ctl.stopped()) skip('report', 'interrupted');
    else if (fs.existsSync(path.join(dir, RUN_FILES.manifest))) {
      await stage('report', path.join(dir, 'report', 'index.html'), async () => {
        const r = writeReport(dir, { notes });
        return { status: 'done', detail: `${r.html} (+ ${r.figures.length} .svg)` };
      });
    } else skip('report', 'no run folder');
  };

  // Lanes: from scratch on CPU, each task's whole chain in its own child process (`memgen reproduce --task T
  // --threads 1`) when the cores hold one lane each; the same files as one after the other (training keeps the
  // committed run's thread count, the analysis and steering do not depend on it: docs/performance.md).
  const cliEntry = (() => {
    try {
      return cliFile();
    } catch {
      return undefined; // unbuilt sources: the tasks run here, one after the other
    }
  })();
  const threadsOf = (task: ReproduceTask) => committedManifest(committedDir(task))?.train?.threads ?? 1;
  const lanes = !reuse && laneFile === undefined && tasks.length > 1 && cliEntry !== undefined && runner.provider === 'cpu' &&
    tasks.reduce((n, t) => n + Math.max(1, threadsOf(t)), 0) <= os.availableParallelism();

  try {
    if (lanes) {
      const laneArgs = [...(chosen ? ['--preset', chosen] : []), ...(steps !== null ? ['--steps', String(steps)] : []), ...(v.force ? ['--force'] : []), '--out', outDir];
      results.push(...await runLanes(cliEntry!, tasks.map((task) => ({ task, dir: runDir(task) })), laneArgs, logDir));
    } else {
      for (const task of tasks) {
        if (ctl.stopped()) break;
        await runTask(task);
      }
    }
  } finally {
    ctl.release();
  }
  if (laneFile !== undefined) { // a lane: its parent prints the summary and writes reproduce.json
    writeJSON(laneFile, results);
    return ctl.stopped() ? 130 : results.some((r) => r.failed) ? 1 : 0;
  }

  console.log('');
  console.log(summaryTable(results, presetsUsed));
  const reports = results.map((r) => path.join(r.dir, 'report', 'index.html')).filter((f) => fs.existsSync(f));
  if (reports.length > 0) console.log(`\nreports: ${reports.join(', ')}`);
  console.log(`logs: ${logDir}/; stage times: ${path.join(outDir, 'reproduce.json')}`);
  const total = (Date.now() - started) / 1000;
  const timing = results.map((r) => `${r.task}: ${r.stages.filter((s) => s.status !== 'skipped').map((s) => `${s.stage} ${formatSeconds(s.seconds)}${s.status === 'done' ? '' : ` (${s.status})`}`).join(', ')}`);
  writeJSON(path.join(outDir, 'reproduce.json'), {
    format: 'memgen-reproduce/1', command: `memgen reproduce ${argvWithSystem.join(' ')}`.trim(), lanes, seconds: total,
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), node: process.version }, finishedAt: new Date().toISOString(),
    tasks: results.map((r) => ({ task: r.task, dir: r.dir, remade: r.remade ?? null, failed: r.failed, stages: r.stages.map(({ stage, seconds, status }) => ({ stage, seconds, status })) })),
  });
  if (ctl.stopped()) {
    console.log(`interrupted; finished stages are kept in ${outDir}/ (rerun with --force to start over)`);
    console.log(`wall time: ${timing.join('; ')}; total ${formatSeconds(total)}`);
    return 130;
  }
  console.log(`wall time: ${timing.join('; ')}; total ${formatSeconds(total)}`);
  return results.some((r) => r.failed) ? 1 : 0;
}

/** The Table-1-style summary of both tasks (see the header). */
function summaryTable(results: readonly TaskResult[], preset: string): string {
  const lines: string[] = [];
  lines.push(`Table 1 (GPT-2 from scratch): ours on preset ${preset} vs the paper. Steering: success = % gen for mem->gen, % mem for gen->mem.`);
  const head = ['task', 'kept checkpoint: gen / mem (n)', 'pairs', 'best probe (chance 0.5)', 'direction', 'targeted', 'random', 'uniform', 'n', 'paper targeted / random'];
  const rows: string[][] = [];
  const verdicts: string[] = [];
  for (const r of results) {
    let kept = '-';
    let pairs = '-';
    let probe = '-';
    let data: ReturnType<typeof loadReportData> | null = null;
    try {
      data = loadReportData(r.dir);
    } catch {
      data = null;
    }
    if (data) {
      const e = data.manifest.best?.eval as { gen?: number; mem?: number; n?: number; guess?: number | null } | undefined;
      if (data.manifest.best && e) kept = `step ${data.manifest.best.step}: ${(100 * (e.gen ?? 0)).toFixed(1)} / ${(100 * (e.mem ?? 0)).toFixed(1)} % (${e.n})${e.guess != null ? `, guess ${(100 * e.guess).toFixed(1)}%` : ''}`;
      if (data.summary) pairs = String(data.summary.pairs);
      const b = bestProbe(data.probes);
      if (b) probe = `${b.accuracy.toFixed(3)} ${b.kind} ${b.site}`;
    }
    const ds = data?.steering ? directionVerdicts(data.steering) : [];
    const cell = (dir: string, method: string) => {
      const c = data?.steering?.cells.find((x) => x.direction === dir && x.method === method);
      return c ? c.success.toFixed(1) : '-';
    };
    if (ds.length === 0) {
      const failedStage = r.stages.find((s) => s.status === 'failed' || s.status === 'interrupted');
      rows.push([r.task, kept, pairs, probe, failedStage ? `(${failedStage.stage} ${failedStage.status}: see below)` : '-', '-', '-', '-', '-', '-']);
    }
    ds.forEach((d, k) => {
      const paper = d.paper ? `${d.paper.targeted.toFixed(1)} / ${d.paper.random === null ? '-' : d.paper.random.toFixed(1)}` : '-';
      rows.push([k === 0 ? r.task : '', k === 0 ? kept : '', k === 0 ? pairs : '', k === 0 ? probe : '', d.direction, d.targeted.toFixed(1),
        cell(d.direction, 'random-neurons'), cell(d.direction, 'uniform'), String(d.n), paper]);
    });
    const interrupted = r.stages.find((s) => s.status === 'interrupted');
    if (r.remade) verdicts.push(`${r.task}: ${r.remade}`);
    if (r.failed) verdicts.push(`${r.task}: ${r.failed}`);
    else if (interrupted) verdicts.push(`${r.task}: ${interrupted.stage} interrupted: ${interrupted.detail}`);
    else if (data?.steering) verdicts.push(`${r.task}: ${steeringVerdict(data.steering).line}`);
  }
  lines.push(...formatTable(head, rows, (j) => j >= 5 && j <= 8));
  lines.push('random: the same shifts on random neurons (the paper\'s "Random"); uniform: uniform shifts in [-v, v] on random neurons; paper: Table 1 (GPT-2).');
  lines.push('', ...verdicts);
  return lines.join('\n');
}
