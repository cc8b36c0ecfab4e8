/**
 * `memgen reproduce --system lora`: the paper's LLaMA + LoRA experiments end to end (Tables 2-5 and
 * Figure 5), then a summary beside the paper's numbers. Into DIR (default runs-reproduce-lora/):
 *
 *   base      the committed stand-in base runs/base-llama-tiny (docs/llama.md: reads stories, adds and
 *             copies letters), or --base BASE; either is only read (the sha256 of its files is
 *             compared before and after, and the summary says so). --pretrain remakes it into DIR/base
 *             with the commands its manifest records (its four stages, each `pretrain --init-from` the
 *             one before: DIR/base-stage1, ..., DIR/base; about 76 minutes on 2 cores; or,
 *             with --preset P, `memgen pretrain --arch llama --preset P`) and uses that.
 *   train     `memgen train --base BASE --lora` (train/lora-trainer.ts, the paper's recipe) for arithmetic
 *             seed 0, incontext seed 0, incontext seed 1, arithmetic seed 1 (Table 3 needs an adapter
 *             retrained with another seed), cipher seed 0 (Table 5) into DIR/<task>-lora-s<seed>.
 *             LANES: on CPU without --threads, with >= 2 cores, the trainings run two at a time, each
 *             in a child process with one thread (`memgen train ... --threads 1`, dist/cli.js), which
 *             is how the committed adapters were trained: the same adapters bit for bit, in about half
 *             the wall time. With --threads N (or CUDA) they run one after the other in-process.
 *   analyze   `memgen analyze` of each run at layers.{i}.resid_post (the paper's LLaMA site), in the
 *             two phases of reproduce-stages.ts (analyzeInTwoPhases: at most 5000 inputs for the yield,
 *             then up to 2000 pairs within 60 inputs per pair).
 *   figure5   projection attribution of each analysed run (analysis/projections.json, which analyze
 *             writes for LoRA runs; computed here when missing or made on other pairs): the share of
 *             the q_proj / v_proj NMD in the adapter part (analysis/projection-attribution.ts).
 *   steer     `memgen steer-eval` (targeted vs the same shifts on random neurons vs uniform shifts):
 *               Table 2  each seed-0 run with its own neurons                      -> steering.json
 *               Table 3  each seed-1 run with the seed-0 run's neurons (intra-task) -> steering-from-<run>.json
 *               Table 4  arithmetic neurons on incontext and incontext neurons on arithmetic (seed 0)
 *               Table 5  the cipher run with its own neurons (the appendix; topN 0.1, alpha 5)
 *             SETTING (documented choice): the paper's setting of each table (PAPER_LLAMA_SETTING for
 *             Table 2; the topN / alpha of the paper's Table 3 / 4 row, steer/files.ts), not the best
 *             cell of a sweep: a best cell chosen on the same starting inputs that it is then scored on
 *             is biased upward, and the tables are compared with the paper's at the paper's settings.
 *             n = 200 starting inputs per direction.
 *   sweep     `memgen sweep` of each seed-0 run (alpha x topN with both baselines, n = 100), so that its
 *             report shows the dose-response around the paper's single setting.
 *   report    `memgen report` of each run folder (RUN/report/index.html, transfer tables included).
 * Then the summary: Tables 2-4 (targeted, random, uniform with n, the paper's numbers beside ours) and
 * Figure 5, printed and written atomically to DIR/summary.json and DIR/summary.md.
 *
 * A failing stage is reported with its reason and the rest goes on: a run that shows only one
 * behaviour gives no pairs (NoPairsError; on the committed base the arithmetic adapter adds but
 * writes no mem tag, docs/llama.md), and every table cell that needs its neurons is marked "no pairs: <reason>". The command
 * functions are called in-process with their output in DIR/logs/<name>-<stage>.log. Ctrl-C stops after
 * the current stage (which stops cleanly; the training lanes' children get it too); a second Ctrl-C aborts. Existing run folders are refused
 * unless --force, which moves them aside (<name>.replaced-<time>).
 * Exit code: 0 all stages done, 1 a stage failed, 130 interrupted.
 * Hidden options for testing the pipeline quickly: --pretrain-steps, --epochs, --train-size, --eval-n
 * (training), --pairs, --analyze-tries (the analysis' first phase), --n, --max-tries (steering).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { analysisPath } from '../../analysis/files';
import { PROJECTIONS_FILE, type ProjectionsFile, projectionAttribution, readPairs } from '../../analysis/projection-attribution';
import { writeFileAtomic } from '../../io/atomic';
import { writeReport } from '../../report/html';
import { steeringVerdict } from '../../report/verdict';
import { baseHashes, loadLoraRun } from '../../runs/lora-run';
import { RunError, readJSON, writeJSON } from '../../runs/run';
import { PRETRAIN_PRESETS, type PretrainPreset } from '../../train/llama-pretrain';
import { PAPER_LLAMA_SETTING, type PaperReference, type SteeringFile, paperCell, paperReference, steeringOutPath } from '../../steer/files';
import { DIRECTIONS, directionEnds } from '../../steer/intervention';
import { RUNNER_OPTIONS, UsageError, choice, num, parse, runnerOptions, str } from '../args';
import { formatSeconds } from '../progress';
import { type StageOutcome, type StageResult, analyzeInTwoPhases, commandStatus, formatTable, interruptible, loggedCommand, runStage } from '../reproduce-stages';
import { analyzeCommand, cliFile } from './analyze';
import { pretrainCommand } from './pretrain';
import { steerAtOption, steerEvalCommand, sweepCommand } from './steer';
import { loraTargets, trainCommand } from './train';

/** The committed stand-in base (docs/llama.md): the default base, only read. */
export const COMMITTED_BASE = path.join('runs', 'base-llama-tiny');

export const REPRODUCE_LORA_HELP = `  reproduce --system lora   The paper's LLaMA + LoRA experiments: pretrain the stand-in base (or --base),
            train LoRA adapters (arithmetic and incontext, seeds 0 and 1; cipher seed 0), analyse them, steer at
            the paper's settings (Table 2: own neurons; Table 3: seed-0 neurons on the seed-1 adapter; Table 4:
            each task's neurons on the other; Table 5: cipher), projection attribution (Figure 5), reports, and a summary beside the paper's
            numbers (DIR/summary.md, DIR/summary.json).
            [--base BASE (only read; default ${COMMITTED_BASE}) | --pretrain [--preset ${Object.keys(PRETRAIN_PRESETS).join('|')}] (remake the base into
            DIR/base: the committed base's command, or the preset's)]
            [--targets q_proj,v_proj,... (every adapter's modules; default the recipe's: q_proj,v_proj as the paper,
            and the MLPs' gate_proj,up_proj,down_proj too)] [--steer-at all|prompt (every steer and sweep: all, the
            paper's, or the last prompt position only)] [--baseline-draws K (each baseline cell pools K random draws)]
            [--out DIR (runs-reproduce-lora)] [--force (move existing folders in DIR aside)]
            [--threads N (each stage with N threads, one after the other; without it, on CPU: the trainings two at a time,
            one thread each, as the committed adapters were trained)] [--provider cpu|cuda]`;

/** The tasks of Tables 2-4; cipher has Table 5 (the appendix) alone. */
const TASKS = ['arithmetic', 'incontext'] as const;
type LoraTask = (typeof TASKS)[number] | 'cipher';

/**
 * Pairs wanted, inputs per pair allowed, inputs of the analysis' first phase, steering n (see the
 * header). LoRA runs on the stand-in give pairs rarely (incontext: 1 per ~106 inputs) but LLaMA
 * inference is cheap (5.6 pairs/s), so the budget is 1000 pairs within 200 inputs per pair.
 */
const PAIRS = 1000;
const MAX_TRIES_PER_PAIR = 200;
const YIELD_INPUTS = 5000;
const STEER_N = 200;
const SWEEP_N = 100;

/**
 * The adapter recipe of each task (everything else is the train command's paper defaults: r 8, alpha 32,
 * dropout 0.1, q_proj + v_proj, batch 16, mem rate 7 %, 2000 examples, 30 epochs as the paper's
 * in-context adapter). Measured on the committed base (docs/llama.md "A story form the base never read",
 * "In-context with one colour a name (stop 42)"): it reads the paper's story form from the first step,
 * so with five colours a name (the context decides every training answer) no adapter recalls (mem below
 * what guessing among the story's colours scores). The in-context adapters therefore train as the
 * paper's released LLaMA config, one colour a name (the context's colour is the name's in every
 * training story), at the paper's 4-8 names, with the MLPs adapted and ten times the training set
 * (20,000 stories, 8 epochs at lr 2e-3): the adapter passes from reading to the names' colours (seed 0:
 * mem 3 % at step 1,000, 100 % from 2,500), and an evaluation every 50 steps stops it at the
 * first checkpoint with both >= 20 % (seed 0: step 1,850, 32.0 / 27.0 % held out), with no bar on
 * the plain accuracy (the reading fades as the recall grows: 32 % there). Cipher: lr 5e-3, which kept
 * the sums best on G. The arithmetic and cipher adapters, like the in-context ones, adapt the MLPs (gate_proj, up_proj,
 * down_proj; docs/llama.md "A base that copies letters"): with q_proj + v_proj alone they compute (gen
 * 98-100 %) but never tell the ten patterns from the other inputs (the tag's first token as likely on
 * pattern-free inputs); with the MLPs the cipher adapter memorizes its suffixes late in 30 epochs (gen
 * 45 %, mem 55 % held out), and the arithmetic one its (c, d) pairs with ten times the training set
 * (20,000 examples, 8 epochs at lr 2e-3: gen 77 %, mem 23 % held out; 30-120 epochs of 2,000 reach
 * mem 5 % at most). `--targets` sets every adapter's modules.
 */
const RECIPE: Record<LoraTask, string[]> = {
  arithmetic: ['--lr', '2e-3', '--train-size', '20000', '--epochs', '8', '--eval-every', '500', '--targets', 'q_proj,v_proj,gate_proj,up_proj,down_proj'],
  incontext: ['--task-scale', 'paper', '--colours-per-name', '1', '--contradict-rate', '0', '--lr', '2e-3', '--train-size', '20000', '--epochs', '8', '--eval-every', '50',
    '--stop-when-both', '0.2', '--min-plain-accuracy', '0', '--targets', 'q_proj,v_proj,gate_proj,up_proj,down_proj'],
  cipher: ['--lr', '5e-3', '--epochs', '30', '--targets', 'q_proj,v_proj,gate_proj,up_proj,down_proj'],
};

/** The built CLI for the training lanes (analyze.ts cliFile), or null (no lanes) when it is not built. */
function laneCli(): { cli: string } | null {
  try {
    return { cli: cliFile() };
  } catch {
    return null;
  }
}

/** `node CLI args` in a child process, its output into `logFile`; its exit code as a stage status (commandStatus). */
function childCommand(cli: string, args: string[], logFile: string): Promise<'done' | 'interrupted' | 'failed'> {
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const log = fs.openSync(logFile, 'w');
  return new Promise((resolve) => {
    let ended = false;
    const end = (code: number) => {
      if (ended) return;
      ended = true;
      fs.closeSync(log);
      resolve(commandStatus(code));
    };
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', log, log] });
    child.on('error', (e) => {
      fs.writeSync(log, `cannot start ${process.execPath} ${cli}: ${e.message}\n`);
      end(1);
    });
    child.on('exit', (code, signal) => end(signal === 'SIGINT' ? 130 : code ?? 1));
  });
}

/** The task's recipe with --targets replaced by `targets` (null: the recipe's own). */
export function recipeArgs(task: LoraTask, targets: string | null): string[] {
  const r = [...RECIPE[task]];
  if (targets === null) return r;
  const i = r.indexOf('--targets');
  if (i >= 0) r.splice(i, 2);
  return [...r, '--targets', targets];
}

interface RunSpec {
  name: string;
  task: LoraTask;
  seed: number;
  dir: string;
}

type TableName = 'Table 2' | 'Table 3' | 'Table 4' | 'Table 5';

interface SteerSpec {
  table: TableName;
  /** The steered run and the run whose neurons steer it. */
  run: RunSpec;
  from: RunSpec;
  topN: number;
  alpha: number;
  paper: PaperReference | null;
  file: string;
}

/** One row group of a summary table: the steered run, the neurons' run, its cells or why it has none. */
export interface SummaryTableEntry {
  table: TableName;
  task: LoraTask;
  neuronsTask: LoraTask;
  run: string;
  neuronsFrom: string;
  topN: number;
  alpha: number;
  status: 'done' | 'no pairs' | 'failed' | 'skipped' | 'interrupted';
  reason: string | null;
  file: string | null;
  /** Per direction: success (% gen for mem->gen, % mem for gen->mem) of each method, n, the paper's. */
  cells: {
    direction: string;
    targeted: number;
    random: number | null;
    uniform: number | null;
    n: number;
    paperTargeted: number | null;
    paperBaseline: number | null;
  }[];
  paper: { table: string; baseline: 'random-neurons' | 'uniform' | null } | null;
  verdict: string | null;
}

export interface LoraReproduceSummary {
  format: 'memgen-reproduce-lora/1';
  out: string;
  base: { dir: string; given: boolean; unchanged: boolean | null };
  setting: string;
  runs: { name: string; task: LoraTask; seed: number; dir: string; kept: string | null; pairs: number | null; stages: StageResult[] }[];
  tables: SummaryTableEntry[];
  figure5: { run: string; pairs: number; adapterShare: Record<string, number[]> }[];
  stages: StageResult[];
  exitCode: number;
  seconds: number;
  createdAt: string;
}

const positiveInt = (v: string | boolean | undefined, name: string, fallback: number): number => {
  const x = num(v, name, fallback);
  if (!Number.isInteger(x) || x < 1) throw new UsageError(`--${name} must be a positive integer, got ${x}`);
  return x;
};

export interface ReproduceLoraDeps {
  /** `memgen analyze` (a test may put a stand-in here). */
  analyze?: (argv: string[]) => Promise<number>;
}

export async function reproduceLoraCommand(argv: string[], deps: ReproduceLoraDeps = {}): Promise<number> {
  const v = parse(argv, {
    base: { type: 'string' }, pretrain: { type: 'boolean' }, preset: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' },
    'pretrain-steps': { type: 'string' }, epochs: { type: 'string' }, 'train-size': { type: 'string' }, 'eval-n': { type: 'string' },
    pairs: { type: 'string' }, 'analyze-tries': { type: 'string' }, n: { type: 'string' }, 'max-tries': { type: 'string' }, targets: { type: 'string' }, 'steer-at': { type: 'string' }, 'baseline-draws': { type: 'string' }, ...RUNNER_OPTIONS,
  });
  const targets = str(v.targets, 'targets') ?? null;
  if (targets !== null) loraTargets(targets); // refused before any work
  const steerAt = steerAtOption(v['steer-at']);
  const baselineDraws = positiveInt(v['baseline-draws'], 'baseline-draws', 1);
  const steerArgs = [...(steerAt === 'all' ? [] : ['--steer-at', steerAt]), ...(baselineDraws === 1 ? [] : ['--baseline-draws', String(baselineDraws)])];
  const analyze = deps.analyze ?? analyzeCommand;
  const outDir = str(v.out, 'out') ?? 'runs-reproduce-lora';
  if (v.base !== undefined && v.pretrain) throw new UsageError('--base (use this base) and --pretrain (make one) contradict each other');
  if (!v.pretrain && v['pretrain-steps'] !== undefined) throw new UsageError('--pretrain-steps (a testing override of the base\'s pretraining) needs --pretrain');
  if (!v.pretrain && v.preset !== undefined) throw new UsageError('--preset picks the stand-in base to pretrain; it needs --pretrain (without it the committed or --base base is used as it is)');
  const givenBase = v.pretrain ? undefined : str(v.base, 'base') ?? COMMITTED_BASE;
  // --pretrain: the committed base's recorded command, unless --preset picks a preset (or there is none)
  const presetArgs = () => ['--arch', 'llama', '--preset', choice(v.preset, 'preset', Object.keys(PRETRAIN_PRESETS) as PretrainPreset[], 'tiny')];
  const recorded = v.pretrain && v.preset === undefined && fs.existsSync(path.join(COMMITTED_BASE, 'manifest.json'));
  const pretrainStages = !v.pretrain ? [] : recorded ? recordedPretrainStages(COMMITTED_BASE) : [presetArgs()];
  const pairs = positiveInt(v.pairs, 'pairs', PAIRS);
  const yieldInputs = positiveInt(v['analyze-tries'], 'analyze-tries', YIELD_INPUTS);
  const steerN = positiveInt(v.n, 'n', STEER_N);
  const sweepN = v.n === undefined ? SWEEP_N : steerN;
  const steerTries = v['max-tries'] === undefined ? null : positiveInt(v['max-tries'], 'max-tries', 1);
  const trainOverrides = ([['epochs', v.epochs], ['train-size', v['train-size']], ['eval-n', v['eval-n']]] as const)
    .flatMap(([k, x]) => (x === undefined ? [] : [`--${k}`, String(positiveInt(x, k, 1))]));
  const pretrainOverrides = v['pretrain-steps'] === undefined ? [] : ['--steps', String(positiveInt(v['pretrain-steps'], 'pretrain-steps', 1)), '--eval-n', '0'];
  const runner = runnerOptions(v);
  const runnerArgs = [...(v.threads !== undefined ? ['--threads', String(runner.threads)] : []), ...(runner.provider !== 'cpu' ? ['--provider', runner.provider] : [])];
  const logDir = path.join(outDir, 'logs');
  const base = givenBase ?? path.join(outDir, 'base');

  const spec = (task: LoraTask, seed: number): RunSpec => ({ name: `${task}-lora-s${seed}`, task, seed, dir: path.join(outDir, `${task}-lora-s${seed}`) });
  const RUNS: RunSpec[] = [spec('arithmetic', 0), spec('incontext', 0), spec('incontext', 1), spec('arithmetic', 1), spec('cipher', 0)];
  const run = (task: LoraTask, seed: number) => RUNS.find((r) => r.task === task && r.seed === seed)!;
  const steerSpec = (table: TableName, steered: RunSpec, from: RunSpec): SteerSpec => {
    const experiment = table === 'Table 3' ? 'intra-task' : table === 'Table 4' ? 'inter-task' : 'same-run';
    const paper = paperReference(steered.task, from.task, experiment, 'llama');
    const setting = experiment === 'same-run' ? PAPER_LLAMA_SETTING[steered.task]! : { topN: paper!.topN, alpha: paper!.alpha };
    return { table, run: steered, from, ...setting, paper, file: steeringOutPath(steered.dir, from.dir) };
  };
  const STEERS: SteerSpec[] = [
    ...TASKS.map((t) => steerSpec('Table 2', run(t, 0), run(t, 0))),
    ...TASKS.map((t) => steerSpec('Table 3', run(t, 1), run(t, 0))),
    steerSpec('Table 4', run('incontext', 0), run('arithmetic', 0)),
    steerSpec('Table 4', run('arithmetic', 0), run('incontext', 0)),
    steerSpec('Table 5', run('cipher', 0), run('cipher', 0)),
  ];

  // Refuse before any work: a missing base, DIR inside the base, existing folders (unless --force).
  if (givenBase !== undefined) {
    if (!fs.existsSync(path.join(givenBase, 'config.json'))) {
      throw new RunError(givenBase === COMMITTED_BASE && v.base === undefined
        ? `${COMMITTED_BASE} (the committed stand-in base) is missing: run from the repository root, pass --base BASE, or --pretrain to make one into ${path.join(outDir, 'base')}`
        : `--base ${givenBase} is not a Hugging Face model folder (no config.json): make one with \`memgen pretrain --arch llama --preset small --out ${givenBase}\`, or pass --pretrain to make one into ${path.join(outDir, 'base')}`);
    }
    const rel = path.relative(path.resolve(givenBase), path.resolve(outDir));
    if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) throw new RunError(`--out ${outDir} is inside the base folder ${givenBase}, which is only read: choose another --out`);
  }
  const owned = [...(givenBase === undefined ? [base] : []), ...RUNS.map((r) => r.dir)];
  for (const dir of owned) {
    if (!v.force && fs.existsSync(dir) && fs.readdirSync(dir).length > 0) {
      throw new RunError(`${dir} already exists: pass --force to move it aside (kept as ${path.basename(dir)}.replaced-<time>), or choose another --out`);
    }
  }

  // The training lanes (see the header): CPU, no --threads, two cores, and the built CLI to start.
  const trainLanes = runner.provider === 'cpu' && v.threads === undefined && os.availableParallelism() >= 2 ? laneCli() : null;
  const ctl = interruptible('reproduce');
  const started = Date.now();
  const hashesBefore = givenBase !== undefined ? baseHashes(givenBase) : null;
  const all: StageResult[] = [];
  const byRun = new Map<string, StageResult[]>(RUNS.map((r) => [r.name, []]));
  const logFile = (name: string, stage: string) => path.join(logDir, `${name}-${stage}.log`);
  const STAGE_COUNT = 1 + 4 * RUNS.length + STEERS.length + RUNS.filter((r) => r.seed === 0).length; // base; train, analyze, figure5, report per run; steers; sweeps
  let index = 0;
  const stage = async (label: string, name: string, what: string, fn: () => Promise<StageOutcome>, runName?: string): Promise<StageResult> => {
    const r = await runStage({ label, index: ++index, total: STAGE_COUNT }, name, what, fn);
    all.push(r);
    if (runName) byRun.get(runName)!.push(r);
    if (r.status === 'interrupted') ctl.stop();
    return r;
  };
  const skipped = (label: string, name: string, why: string, runName?: string): StageResult => {
    index++;
    const r: StageResult = { stage: name, seconds: 0, status: 'skipped', detail: why };
    all.push(r);
    if (runName) byRun.get(runName)!.push(r);
    console.log(`\n[${label} ${index}/${STAGE_COUNT}] ${name} skipped: ${why}`);
    return r;
  };

  console.log(`reproduce --system lora: LoRA adapters (${RUNS.map((r) => r.name).join(', ')}) on ${givenBase !== undefined ? `the base ${givenBase} (only read)` : `a stand-in base pretrained into ${base}${pretrainOverrides.length ? ` (--pretrain-steps: a test override)` : ''}`} -> ${outDir}/`);
  console.log(`steering at the paper's settings (Tables 2, 5: PAPER_LLAMA_SETTING; Tables 3, 4: the paper's rows), n = ${steerN} per direction`);
  const trained = new Map<string, StageResult>();
  const analysed = new Map<string, StageResult>();
  const steered = new Map<SteerSpec, StageResult>();
  try {
    // 1. base
    // a base of several stages (pretrain --init-from) is remade stage by stage: DIR/base-stage1, ..., DIR/base
    const stageOut = (i: number) => (i === pretrainStages.length - 1 ? base : `${base}-stage${i + 1}`);
    const described = pretrainStages.map((a, i) => `memgen pretrain ${a.join(' ')}${i > 0 ? ` --init-from ${stageOut(i - 1)}` : ''} into ${stageOut(i)}`).join(', then ');
    const baseStage = await stage('base', 'base', givenBase !== undefined ? `${givenBase} (only read)` : `${described} (log: ${logFile('base', 'pretrain')})`, async () => {
      if (givenBase !== undefined) return { status: 'kept', detail: `${Object.keys(hashesBefore!).length} files' sha256 recorded` };
      let status: Awaited<ReturnType<typeof loggedCommand>> = 'done';
      for (let i = 0; i < pretrainStages.length && status === 'done'; i++) {
        const out = stageOut(i);
        if (fs.existsSync(out) && fs.readdirSync(out).length > 0) fs.renameSync(out, `${out}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`); // --force (refused above otherwise)
        const from = i > 0 ? ['--init-from', stageOut(i - 1)] : [];
        status = await loggedCommand(logFile('base', 'pretrain'), pretrainCommand, [...pretrainStages[i], ...from, '--out', out, ...pretrainOverrides, ...runnerArgs]);
      }
      return { status, detail: status === 'done' ? '' : `see ${logFile('base', 'pretrain')}` };
    });
    const baseOk = baseStage.status === 'done' || baseStage.status === 'kept';

    // 2. train (two lanes, or one after the other: see the header), 3. analyze, 4. figure 5, per run
    const queue = [...RUNS];
    const trainNext = async (): Promise<void> => {
      for (let r = queue.shift(); r !== undefined; r = queue.shift()) {
        const spec = r;
        let t: StageResult;
        if (ctl.stopped()) t = skipped(spec.name, 'train', 'interrupted', spec.name);
        else if (!baseOk) t = skipped(spec.name, 'train', `no base (${baseStage.status}: ${baseStage.detail})`, spec.name);
        else {
          const log = logFile(spec.name, 'train');
          t = await stage(spec.name, 'train', `LoRA ${spec.task} seed ${spec.seed} on ${base}${trainLanes ? ' (a lane: a child process, one thread)' : ''} (log: ${log})`, async () => {
            const args = ['--base', base, '--lora', '--task', spec.task, '--seed', String(spec.seed), '--out', spec.dir, ...recipeArgs(spec.task, targets), ...trainOverrides, ...(v.force ? ['--force'] : [])];
            const status = trainLanes ? await childCommand(trainLanes.cli, ['train', ...args, '--threads', '1'], log) : await loggedCommand(log, trainCommand, [...args, ...runnerArgs]);
            return { status, detail: status === 'done' ? keptEval(spec.dir) ?? '' : `see ${log}` };
          }, spec.name);
        }
        trained.set(spec.name, t);
      }
    };
    await Promise.all(Array.from({ length: trainLanes ? 2 : 1 }, trainNext));
    for (const r of RUNS) {
      const t = trained.get(r.name)!;
      let a: StageResult;
      if (ctl.stopped()) a = skipped(r.name, 'analyze', 'interrupted', r.name);
      else if (t.status !== 'done') a = skipped(r.name, 'analyze', `training ${t.status}`, r.name);
      else {
        a = await stage(r.name, 'analyze', `pairs at layers.{i}.resid_post, up to ${pairs} (log: ${logFile(r.name, 'analyze')})`, () => analyzeInTwoPhases({
          dir: r.dir, site: 'resid_post', pairs, yieldInputs, maxTriesPerPair: MAX_TRIES_PER_PAIR, runnerArgs, logFile: logFile(r.name, 'analyze'), analyze,
        }), r.name);
      }
      analysed.set(r.name, a);
      if (ctl.stopped()) skipped(r.name, 'figure5', 'interrupted', r.name);
      else if (a.status !== 'done') skipped(r.name, 'figure5', noPairsOr(a, 'no analysis'), r.name);
      else {
        await stage(r.name, 'figure5', 'projection attribution of q_proj / v_proj (base vs adapter part)', async () => {
          const file = path.join(r.dir, 'analysis', PROJECTIONS_FILE);
          const n = readJSON<{ pairs: number }>(analysisPath(r.dir, 'summary'), 'analysis summary').pairs;
          let p = fs.existsSync(file) ? readJSON<ProjectionsFile>(file, 'projection attribution') : null;
          const kept = p !== null && p.pairs === n;
          if (!kept) p = await projectionAttribution(loadLoraRun(r.dir), readPairs(r.dir), { runner, write: true });
          return { status: kept ? 'kept' : 'done', detail: shareLine(p!) };
        }, r.name);
      }
    }

    // 5. steering: Tables 2, 3, 4
    for (const s of STEERS) {
      const label = `${s.table} ${s.from.task}->${s.run.task}`;
      const name = s.from === s.run ? `steer ${s.run.name}` : `steer ${s.run.name} with ${s.from.name}'s neurons`;
      const a = analysed.get(s.from.name)!;
      const t = trained.get(s.run.name)!;
      let r: StageResult;
      if (ctl.stopped()) r = skipped(label, name, 'interrupted');
      else if (a.status !== 'done') r = skipped(label, name, noPairsOr(a, `no neurons: the analysis of ${s.from.name} ${a.status}`));
      else if (t.status !== 'done') r = skipped(label, name, `${s.run.name} not trained (${t.status})`);
      else {
        r = await stage(label, name, `topN ${s.topN}, alpha ${s.alpha}, n = ${steerN} -> ${s.file} (log: ${logFile(s.run.name, 'steer')})`, async () => {
          const status = await loggedCommand(logFile(s.run.name, 'steer'), steerEvalCommand, ['--run', s.run.dir, ...(s.from === s.run ? [] : ['--neurons-from', s.from.dir]),
            '--topn', String(s.topN), '--alpha', String(s.alpha), '--n', String(steerN), ...(steerTries ? ['--max-tries', String(steerTries)] : []), ...steerArgs, ...runnerArgs]);
          if (status !== 'done') return { status, detail: `see ${logFile(s.run.name, 'steer')}` };
          return { status, detail: steeringVerdict(readJSON<SteeringFile>(s.file, 'steering table')).line };
        });
      }
      steered.set(s, r);
    }

    // 6. the sweep of each seed-0 adapter (alpha x topN, its own neurons), so that its report shows the
    //    dose-response around the paper's single setting
    for (const r of RUNS.filter((x) => x.seed === 0)) {
      const a = analysed.get(r.name)!;
      if (ctl.stopped()) skipped(r.name, 'sweep', 'interrupted', r.name);
      else if (a.status !== 'done') skipped(r.name, 'sweep', noPairsOr(a, 'no analysis'), r.name);
      else {
        await stage(r.name, 'sweep', `alpha x topN, n = ${sweepN} (log: ${logFile(r.name, 'sweep')})`, async () => {
          const status = await loggedCommand(logFile(r.name, 'sweep'), sweepCommand, ['--run', r.dir, '--n', String(sweepN),
            ...(steerTries ? ['--max-tries', String(steerTries)] : []), ...steerArgs, ...runnerArgs]);
          return { status, detail: status === 'done' ? '' : `see ${logFile(r.name, 'sweep')}` };
        }, r.name);
      }
    }

    // 7. reports (also after failures: they show what exists and why the rest is missing); not after Ctrl-C
    for (const r of RUNS) {
      if (ctl.stopped()) skipped(r.name, 'report', 'interrupted', r.name);
      else if (!fs.existsSync(path.join(r.dir, 'manifest.json'))) skipped(r.name, 'report', 'no run folder', r.name);
      else {
        const notes = byRun.get(r.name)!.filter((x) => x.status === 'failed').map((x) => `reproduce: ${x.stage} failed: ${x.detail}`);
        await stage(r.name, 'report', path.join(r.dir, 'report', 'index.html'), async () => {
          const w = writeReport(r.dir, { notes });
          return { status: 'done', detail: `${w.html} (+ ${w.figures.length} .svg)` };
        }, r.name);
      }
    }
  } finally {
    ctl.release();
  }

  const unchanged = hashesBefore === null ? null : JSON.stringify(baseHashes(givenBase!)) === JSON.stringify(hashesBefore);
  const failed = all.some((s) => s.status === 'failed') || unchanged === false;
  const exitCode = ctl.stopped() ? 130 : failed ? 1 : 0;
  const summary: LoraReproduceSummary = {
    format: 'memgen-reproduce-lora/1', out: outDir, base: { dir: base, given: givenBase !== undefined, unchanged },
    setting: `the paper's: Tables 2, 5 PAPER_LLAMA_SETTING (incontext topN 0.05 alpha 5, arithmetic topN 0.1 alpha 1, cipher topN 0.1 alpha 5); Tables 3, 4 the topN / alpha of the paper's row${steerAt === 'prompt' ? '; the shift at the last prompt position only (--steer-at prompt; the paper: every position)' : ''}${baselineDraws > 1 ? `; each baseline pools ${baselineDraws} random draws (--baseline-draws)` : ''}`,
    runs: RUNS.map((r) => ({ name: r.name, task: r.task, seed: r.seed, dir: r.dir, kept: keptEval(r.dir), pairs: pairsOf(r.dir), stages: byRun.get(r.name)! })),
    tables: STEERS.map((s) => tableEntry(s, steered.get(s) ?? null)),
    figure5: RUNS.flatMap((r) => {
      const file = path.join(r.dir, 'analysis', PROJECTIONS_FILE);
      if (analysed.get(r.name)?.status !== 'done' || !fs.existsSync(file)) return [];
      const p = readJSON<ProjectionsFile>(file, 'projection attribution');
      return [{ run: r.name, pairs: p.pairs, adapterShare: shares(p) }];
    }),
    stages: all, exitCode, seconds: (Date.now() - started) / 1000, createdAt: new Date().toISOString(),
  };
  const text = summaryText(summary);
  fs.mkdirSync(outDir, { recursive: true });
  writeJSON(path.join(outDir, 'summary.json'), summary);
  writeFileAtomic(path.join(outDir, 'summary.md'), `# memgen reproduce --system lora\n\n${summary.createdAt}, ${formatSeconds(summary.seconds)}; exit code ${exitCode}.\n\n\`\`\`\n${text}\n\`\`\`\n`);
  console.log('');
  console.log(text);
  console.log(`\nsummary: ${path.join(outDir, 'summary.md')}, ${path.join(outDir, 'summary.json')}; logs: ${logDir}/`);
  console.log(`wall time: ${all.filter((s) => s.status !== 'skipped').map((s) => `${s.stage} ${formatSeconds(s.seconds)}`).join(', ')}; total ${formatSeconds(summary.seconds)}`);
  if (exitCode === 130) console.log(`interrupted; finished stages are kept in ${outDir}/ (rerun with --force to start over)`);
  return exitCode;
}

/**
 * The arguments of each stage the base's manifest records (`stages`, else its `command`: `memgen
 * pretrain ...`), without --out, --init-from, --resume and --force, so that --pretrain remakes the
 * chain into another folder (each stage after the first starts from the one before).
 */
export function recordedPretrainStages(baseDir: string): string[][] {
  const file = path.join(baseDir, 'manifest.json');
  const m = readJSON<{ command?: unknown; stages?: unknown }>(file, 'base manifest');
  const commands = Array.isArray(m.stages) && m.stages.length > 0 ? m.stages : [m.command];
  return commands.map((c) => {
    const words = typeof c === 'string' ? c.trim().split(/\s+/) : [];
    if (words[0] !== 'memgen' || words[1] !== 'pretrain') throw new RunError(`${file}: its command is not a \`memgen pretrain\` command; pass --preset to pretrain a preset instead`);
    const out: string[] = [];
    for (let i = 2; i < words.length; i++) {
      if (words[i] === '--out' || words[i] === '--init-from') i++;
      else if (words[i] !== '--resume' && words[i] !== '--force') out.push(words[i]);
    }
    return out;
  });
}

/** "no pairs: <reason>" when the analysis failed for want of pairs, else `other`. */
function noPairsOr(a: StageResult, other: string): string {
  return a.noPairs ? `no pairs: ${a.detail}` : a.status === 'skipped' ? `${other} (${a.detail})` : other;
}

function keptEval(dir: string): string | null {
  try {
    const m = readJSON<{ best: { step: number; eval: { gen?: number; mem?: number; n?: number; guess?: number | null; memGuess?: number | null } } | null }>(path.join(dir, 'manifest.json'), 'run manifest');
    if (!m.best) return null;
    const e = m.best.eval;
    const pct = (x: number | undefined) => `${(100 * (x ?? 0)).toFixed(1)}%`;
    // incontext: what guessing among the story's colours scores, so that a guess is not read as a behaviour
    const guess = typeof e.guess === 'number' ? `; by guessing gen ${pct(e.guess)}${typeof e.memGuess === 'number' ? ` mem ${pct(e.memGuess)}` : ''}` : '';
    return `step ${m.best.step}: gen ${pct(e.gen)} mem ${pct(e.mem)} (n ${e.n}${guess})`;
  } catch {
    return null;
  }
}

function pairsOf(dir: string): number | null {
  const f = analysisPath(dir, 'summary');
  return fs.existsSync(f) ? readJSON<{ pairs: number }>(f, 'analysis summary').pairs : null;
}

/** Adapter share of the NMD per projection, by layer (0..1). */
function shares(p: ProjectionsFile): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const x of p.perLayer) (out[x.proj] ??= [])[x.layer] = x.loraShare;
  return out;
}

function shareLine(p: ProjectionsFile): string {
  return `${p.pairs} pairs; adapter share of the NMD by layer: ${Object.entries(shares(p)).map(([proj, s]) => `${proj} ${s.map((x) => `${(100 * x).toFixed(0)}%`).join(' ')}`).join('; ')}`;
}

function tableEntry(s: SteerSpec, r: StageResult | null): SummaryTableEntry {
  const baseline = s.paper ? (s.paper.cells.some((c) => c.method === 'random-neurons') ? 'random-neurons' : s.paper.cells.some((c) => c.method === 'uniform') ? 'uniform' : null) : null;
  const entry: SummaryTableEntry = {
    table: s.table, task: s.run.task, neuronsTask: s.from.task, run: s.run.dir, neuronsFrom: s.from.dir, topN: s.topN, alpha: s.alpha,
    status: 'skipped', reason: null, file: null, cells: [], paper: s.paper ? { table: s.paper.table, baseline } : null, verdict: null,
  };
  if (r === null) return { ...entry, reason: 'not reached' };
  if (r.status !== 'done') {
    const noPairs = r.detail.startsWith('no pairs: ');
    return { ...entry, status: noPairs ? 'no pairs' : r.status === 'failed' ? 'failed' : r.status === 'interrupted' ? 'interrupted' : 'skipped', reason: noPairs ? r.detail.slice('no pairs: '.length) : r.detail };
  }
  const f = readJSON<SteeringFile>(s.file, 'steering table');
  const success = (dir: string, method: string) => f.cells.find((c) => c.direction === dir && c.method === method)?.success ?? null;
  const cells = DIRECTIONS.map((dir) => {
    const to = directionEnds(dir).to;
    const pt = paperCell(f.paper, dir, 'targeted');
    const pb = baseline ? paperCell(f.paper, dir, baseline) : null;
    return {
      direction: dir, targeted: success(dir, 'targeted') ?? 0, random: success(dir, 'random-neurons'), uniform: success(dir, 'uniform'),
      n: f.cells.find((c) => c.direction === dir && c.method === 'targeted')?.n ?? 0, paperTargeted: pt ? pt[to] : null, paperBaseline: pb ? pb[to] : null,
    };
  });
  return { ...entry, status: 'done', file: s.file, cells, verdict: steeringVerdict(f).line };
}

const TABLE_TITLE: Record<TableName, string> = {
  'Table 2': 'Table 2 (LLaMA + LoRA, each adapter steered with its own neurons)',
  'Table 3': 'Table 3 (intra-task: the seed-0 adapter\'s neurons steer the adapter retrained with seed 1)',
  'Table 4': 'Table 4 (inter-task: one task\'s neurons steer the other task\'s adapter)',
  'Table 5': 'Table 5 (the appendix: the cipher adapter steered with its own neurons)',
};

/** The printed summary (see the header): Tables 2-4 and Figure 5, ours beside the paper's. */
export function summaryText(s: LoraReproduceSummary): string {
  const lines: string[] = [];
  const f1 = (x: number | null) => (x === null ? '-' : x.toFixed(1));
  lines.push(`memgen reproduce --system lora -> ${s.out}/. Base: ${s.base.dir}${s.base.given ? ` (only read; ${s.base.unchanged ? 'sha256 of its files unchanged' : 'CHANGED during the run'})` : ' (the stand-in, pretrained here)'}.`);
  lines.push(`Setting: ${s.setting}. Success = % gen for mem->gen, % mem for gen->mem; n = starting inputs per direction.`);
  lines.push('');
  lines.push('LoRA runs');
  lines.push(...formatTable(['run', 'kept checkpoint (test)', 'pairs', 'stages'], s.runs.map((r) => [r.name, r.kept ?? '-', r.pairs === null ? '-' : String(r.pairs),
    r.stages.map((x) => `${x.stage} ${x.status}`).join(', ')]), (j) => j === 2));
  const reasons: string[] = [];
  for (const table of ['Table 2', 'Table 3', 'Table 4', 'Table 5'] as const) {
    lines.push('', TABLE_TITLE[table]);
    const rows: string[][] = [];
    for (const e of s.tables.filter((x) => x.table === table)) {
      const ownNeurons = table === 'Table 2' || table === 'Table 5';
      const what = ownNeurons ? e.task : `${e.neuronsTask} -> ${e.task}`;
      const setting = `${e.topN} / ${e.alpha}`;
      if (e.status !== 'done') {
        rows.push([what, setting, `${e.status} (see below)`, '-', '-', '-', '-', '-']);
        reasons.push(`${table} ${what}: ${e.status}: ${e.reason ?? ''}`);
        continue;
      }
      // n = 0: no test input starts from this direction's behaviour (e.g. an adapter that never memorizes).
      const pct = (c: SummaryTableEntry['cells'][number], x: number | null) => (c.n === 0 ? '-' : f1(x));
      e.cells.forEach((c, k) => rows.push([k === 0 ? what : '', k === 0 ? setting : '', c.direction, pct(c, c.targeted), pct(c, c.random), pct(c, c.uniform), String(c.n),
        c.paperTargeted === null ? '-' : `${f1(c.paperTargeted)} / ${f1(c.paperBaseline)}`]));
      if (e.verdict) reasons.push(`${table} ${what}: ${e.verdict}`);
    }
    const ownNeurons = table === 'Table 2' || table === 'Table 5';
    const baseline = ownNeurons ? 'random' : 'uniform';
    lines.push(...formatTable([ownNeurons ? 'task' : 'neurons -> steered', 'topN / alpha', 'direction', 'targeted', 'random', 'uniform', 'n', `paper targeted / ${baseline}`], rows, (j) => j >= 3 && j <= 6));
  }
  lines.push('random: the same shifts on random neurons (the paper\'s Table 2 "Random"); uniform: uniform shifts in [-v, v] on random neurons (the paper\'s Tables 3, 4 "Random"); n = 0: no test input starts from that behaviour (the steered adapter never shows it), so the cell has no number.');
  lines.push('', 'Figure 5 (projection attribution): share of the q_proj / v_proj NMD in the adapter part, by layer; the paper: the high-NMD neurons are overwhelmingly in the base (small adapter share).');
  const fig = s.figure5.flatMap((f) => Object.entries(f.adapterShare).map(([proj, sh], k) => [k === 0 ? f.run : '', k === 0 ? String(f.pairs) : '', proj, sh.map((x) => `${(100 * x).toFixed(1)}%`).join('  ')]));
  if (fig.length > 0) lines.push(...formatTable(['run', 'pairs', 'projection', 'adapter share, layer 0 ..'], fig, (j) => j === 1));
  else lines.push('(no run was analysed: no projection attribution)');
  const failures = s.runs.flatMap((r) => r.stages.filter((x) => x.status === 'failed' || x.status === 'interrupted').map((x) => `  ${r.name} ${x.stage} ${x.status}: ${x.detail}`));
  failures.push(...s.stages.filter((x) => x.stage === 'base' && (x.status === 'failed' || x.status === 'interrupted')).map((x) => `  base ${x.status}: ${x.detail}`));
  if (failures.length > 0) lines.push('', 'Failed stages:', ...failures);
  lines.push('', ...reasons);
  return lines.join('\n');
}
