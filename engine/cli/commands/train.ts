/** `memgen train`: GPT-2 from scratch on a task, into a run folder. */
import { TASK_NAMES, makeTask } from '../../tasks';
import { MEM_PATTERN_RATIO, MEM_TAG_PIECES, STORY_FORMS, type StoryForm, type TaskScale } from '../../tasks/task';
import { PRESET_NAMES, type TrainConfig, defaultTrainConfig } from '../../train/presets';
import { formatEval } from '../../train/evaluate';
import { train } from '../../train/trainer';
import type { RunOutcome, StepEval } from '../../train/run-loop';
import { RUNNER_OPTIONS, UsageError, choice, num, onInterrupt, parse, posInt, required, runnerOptions, share, str } from '../args';
import { ProgressBar } from '../progress';
import { LLAMA_PROJECTIONS, type LlamaProjection } from '../../models/hooks';
import { LORA_DEFAULTS } from '../../models/lora';
import { LORA_RUN_DEFAULTS, type LoraRunConfig, trainLoraRun } from '../../train/lora-trainer';
import type { PromptFormat } from '../../tasks/hf-task-tokenizer';

export const TRAIN_HELP = `  train     Train GPT-2 from scratch until the test set shows memorization and generalization.
            --task ${TASK_NAMES.join('|')}  --preset ${PRESET_NAMES.join('|')} (tiny)  --seed N (0)  --out RUN
            [--resume | --force] [--steps S] [--stop-at-step N (end at step N of the S-step schedule)] [--max-minutes M] [--lr X] [--batch B] [--mem-rate R]
            [--task-scale tiny|paper] [--mem-pattern-ratio R (1)] [--min-operand N (tiny 10)] [--colours-per-name K (5)] [--story-form is|colon (incontext: 'Rose is eagle.' as the paper, or 'Rose: eagle.'; is)] [--mem-tag-pieces 1|2 (2)]
            [--contradict-rate R] [--mem-warmup STEPS (arithmetic 1500; 0: patterns from the first step)] [--eval-every K (also the checkpoint interval)] [--eval-n N] [--log-every K (10)] [--save-evals] [--stop-when-both F (stop at the first checkpoint with gen% and mem% both >= F, and keep it over a better balance without)] [--threads N] [--provider cpu|cuda]
            With --base HF_FOLDER --lora: a LoRA adapter on a frozen pretrained LLaMA (the paper's second system):
            [--rank 8 --alpha 32 --dropout 0.1 --targets q_proj,v_proj] [--lr ${LORA_RUN_DEFAULTS.lr}] [--batch 16]
            [--mem-rate 0.07] [--epochs ${LORA_RUN_DEFAULTS.epochs}] [--train-size ${LORA_RUN_DEFAULTS.trainSize}] [--prompt-format plain|chat] [--log-every K (10)]
            [--min-plain-accuracy P (0.9: kept and stopping checkpoints must answer this share of the plain inputs; 0: any)]`;

const SCALES: readonly TaskScale[] = ['tiny', 'paper'];

/** --targets: comma-separated LLaMA projections (undefined: the paper's q_proj, v_proj); an unknown one is refused. */
export function loraTargets(v: string | undefined): LlamaProjection[] {
  const targets = (v === undefined ? LORA_DEFAULTS.targetModules : v.split(',').map((t) => t.trim())) as LlamaProjection[];
  for (const t of targets) if (!LLAMA_PROJECTIONS.includes(t)) throw new UsageError(`unknown --targets module '${t}'; choose from: ${LLAMA_PROJECTIONS.join(', ')}`);
  return targets;
}

export function trainConfigFromArgs(argv: string[]): TrainConfig {
  const v = parse(argv, {
    task: { type: 'string' }, preset: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' },
    resume: { type: 'boolean' }, force: { type: 'boolean' }, steps: { type: 'string' }, 'stop-at-step': { type: 'string' }, 'max-minutes': { type: 'string' },
    lr: { type: 'string' }, batch: { type: 'string' }, 'mem-rate': { type: 'string' }, 'contradict-rate': { type: 'string' },
    ...DATA_OPTIONS, 'mem-warmup': { type: 'string' }, 'task-scale': { type: 'string' }, 'eval-every': { type: 'string' }, 'eval-n': { type: 'string' }, 'stop-when-both': { type: 'string' },
    'save-evals': { type: 'boolean' }, 'log-every': { type: 'string' }, ...RUNNER_OPTIONS,
  });
  const taskName = choice(v.task, 'task', TASK_NAMES);
  const preset = choice(v.preset, 'preset', PRESET_NAMES, 'tiny');
  if (v.resume && v.force) throw new UsageError('--resume and --force contradict each other');
  const base = defaultTrainConfig(taskName, preset, 0);
  const scale = choice(v['task-scale'], 'task-scale', SCALES, base.scale);
  const memRate = num(v['mem-rate'], 'mem-rate', base.memRate);
  const contradictRate = v['contradict-rate'] === undefined ? base.contradictRate : num(v['contradict-rate'], 'contradict-rate', 0);
  const seed = num(v.seed, 'seed', 0);
  const data = dataOptions(v);
  const task = makeTask(taskName, { scale, seed, memRate, contradictRate, ...data });
  return {
    ...base,
    ...data,
    scale,
    seed,
    out: required(v.out, 'out'),
    command: `memgen train ${argv.join(' ')}`,
    seqLen: task.maxSeqLen - 1,
    steps: num(v.steps, 'steps', base.steps),
    memWarmup: num(v['mem-warmup'], 'mem-warmup', base.memWarmup ?? 0),
    stopAt: num(v['stop-at-step'], 'stop-at-step', null),
    maxMinutes: num(v['max-minutes'], 'max-minutes', null),
    lr: num(v.lr, 'lr', base.lr),
    batch: num(v.batch, 'batch', base.batch),
    memRate,
    contradictRate,
    evalEvery: num(v['eval-every'], 'eval-every', base.evalEvery),
    evalN: num(v['eval-n'], 'eval-n', base.evalN),
    logEvery: posInt(v['log-every'], 'log-every', base.logEvery),
    saveEvals: Boolean(v['save-evals']),
    stopWhenBoth: num(v['stop-when-both'], 'stop-when-both', base.stopWhenBoth),
    resume: Boolean(v.resume),
    force: Boolean(v.force),
    ...runnerOptions(v),
  };
}

export function loraRunConfigFromArgs(argv: string[]): LoraRunConfig {
  const v = parse(argv, {
    base: { type: 'string' }, lora: { type: 'boolean' }, task: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' },
    resume: { type: 'boolean' }, force: { type: 'boolean' }, rank: { type: 'string' }, alpha: { type: 'string' }, dropout: { type: 'string' },
    targets: { type: 'string' }, lr: { type: 'string' }, batch: { type: 'string' }, 'mem-rate': { type: 'string' }, 'contradict-rate': { type: 'string' },
    epochs: { type: 'string' }, 'train-size': { type: 'string' }, 'task-scale': { type: 'string' }, 'eval-every': { type: 'string' },
    'eval-n': { type: 'string' }, 'stop-when-both': { type: 'string' }, 'max-minutes': { type: 'string' }, 'prompt-format': { type: 'string' },
    'min-plain-accuracy': { type: 'string' }, 'log-every': { type: 'string' }, ...DATA_OPTIONS, ...RUNNER_OPTIONS,
  });
  if (!v.lora) throw new UsageError('--base trains a LoRA adapter; add --lora');
  const task = choice(v.task, 'task', TASK_NAMES);
  if (v.resume && v.force) throw new UsageError('--resume and --force contradict each other');
  const targets = loraTargets(str(v.targets, 'targets'));
  const seed = num(v.seed, 'seed', 0);
  const trainSize = num(v['train-size'], 'train-size', LORA_RUN_DEFAULTS.trainSize);
  const batch = num(v.batch, 'batch', LORA_RUN_DEFAULTS.batch);
  return {
    base: required(v.base, 'base'),
    task,
    scale: choice(v['task-scale'], 'task-scale', SCALES, 'tiny'),
    seed,
    out: required(v.out, 'out'),
    command: `memgen train ${argv.join(' ')}`,
    lora: { ...LORA_DEFAULTS, r: num(v.rank, 'rank', LORA_DEFAULTS.r), alpha: num(v.alpha, 'alpha', LORA_DEFAULTS.alpha), dropout: num(v.dropout, 'dropout', LORA_DEFAULTS.dropout), targetModules: targets, seed },
    promptFormat: choice(v['prompt-format'], 'prompt-format', ['plain', 'chat'] as PromptFormat[], 'plain'),
    memRate: num(v['mem-rate'], 'mem-rate', LORA_RUN_DEFAULTS.memRate),
    // unset: the task's own (incontext: 0 with five colours a name, method.md 2.2; 0.1 for the one-colour ablation)
    contradictRate: v['contradict-rate'] === undefined ? undefined : num(v['contradict-rate'], 'contradict-rate', 0),
    ...dataOptions(v),
    trainSize,
    epochs: num(v.epochs, 'epochs', LORA_RUN_DEFAULTS.epochs),
    batch,
    lr: num(v.lr, 'lr', LORA_RUN_DEFAULTS.lr),
    warmup: LORA_RUN_DEFAULTS.warmup,
    minLrFraction: 0.1,
    clip: 1,
    evalEvery: num(v['eval-every'], 'eval-every', Math.max(1, Math.floor(trainSize / batch))),
    evalN: num(v['eval-n'], 'eval-n', LORA_RUN_DEFAULTS.evalN),
    evalBatch: 128,
    logEvery: posInt(v['log-every'], 'log-every', 10),
    maxMinutes: num(v['max-minutes'], 'max-minutes', null),
    stopWhenBoth: num(v['stop-when-both'], 'stop-when-both', null),
    ...(v['min-plain-accuracy'] === undefined ? {} : { minPlainAccuracy: share(v['min-plain-accuracy'], 'min-plain-accuracy', 0) }),
    resume: Boolean(v.resume),
    force: Boolean(v.force),
    runner: runnerOptions(v),
  };
}

const DATA_OPTIONS = { 'mem-pattern-ratio': { type: 'string' }, 'min-operand': { type: 'string' }, 'colours-per-name': { type: 'string' }, 'story-form': { type: 'string' }, 'mem-tag-pieces': { type: 'string' } } as const;

/** --mem-pattern-ratio, --min-operand, --colours-per-name, --mem-tag-pieces (undefined: the task's defaults). */
function dataOptions(v: Record<string, unknown>): { memPatternRatio: number; minOperand?: number; colorsPerName?: number; storyForm?: StoryForm; memTagPieces: number } {
  return {
    memPatternRatio: num(v['mem-pattern-ratio'] as string | undefined, 'mem-pattern-ratio', MEM_PATTERN_RATIO),
    memTagPieces: num(v['mem-tag-pieces'] as string | undefined, 'mem-tag-pieces', MEM_TAG_PIECES),
    minOperand: num(v['min-operand'] as string | undefined, 'min-operand', null) ?? undefined,
    colorsPerName: num(v['colours-per-name'] as string | undefined, 'colours-per-name', null) ?? undefined,
    storyForm: v['story-form'] === undefined ? undefined : choice(v['story-form'] as string, 'story-form', STORY_FORMS),
  };
}

/** The progress bar's evaluation suffix. */
const evalSuffix = (e: StepEval | null): string => (e ? ` | gen ${(100 * e.gen).toFixed(0)}% mem ${(100 * e.mem).toFixed(0)}% other ${(100 * e.other).toFixed(0)}%` : '');

/**
 * Runs a training (GPT-2 or LoRA) for the CLI: Ctrl-C checkpoints after the current step, evaluations
 * are printed as they come, and the outcome decides the exit code (130 after Ctrl-C, with the resume
 * command).
 */
async function runTraining(argv: string[], start: (hooks: { shouldStop: () => boolean; log: (l: string) => void; warn: (l: string) => void; onEval: (e: StepEval) => void }) => Promise<RunOutcome>): Promise<number> {
  let stop = false;
  const release = onInterrupt(() => {
    stop = true;
    process.stderr.write('\nCtrl-C: saving a checkpoint after this step (Ctrl-C again to abort without saving)\n');
  });
  let outcome: RunOutcome;
  try {
    outcome = await start({ shouldStop: () => stop, log: (l) => console.log(l), warn: (l) => console.warn(l), onEval: (e) => process.stderr.write(`\n[step ${e.step}] ${formatEval(e)}\n`) });
  } finally {
    release();
  }
  console.log(`\nstopped: ${outcome.stopReason} after ${outcome.steps} steps, ${outcome.seconds.toFixed(0)} s`);
  if (outcome.best) console.log(`kept step ${outcome.best.step}: ${formatEval(outcome.best)}`);
  if (outcome.stopReason === 'interrupted') {
    console.log(`checkpoint saved; continue with: memgen train ${argv.filter((a) => a !== '--force' && a !== '--resume').join(' ')} --resume`);
    return 130;
  }
  return 0;
}

async function trainLoraCommand(argv: string[]): Promise<number> {
  const cfg = loraRunConfigFromArgs(argv);
  console.log(`training a LoRA adapter (r ${cfg.lora.r}, alpha ${cfg.lora.alpha}, ${cfg.lora.targetModules.join(',')}) on ${cfg.base} for ${cfg.task} (${cfg.scale} scale), seed ${cfg.seed} -> ${cfg.out}`);
  let bar: ProgressBar | null = null;
  return runTraining(argv, (hooks) => trainLoraRun(cfg, {
    ...hooks,
    onProgress: (p) => {
      bar ??= new ProgressBar('lora', p.totalSteps);
      bar.update(p.step, `epoch ${p.epoch + 1} loss ${p.loss.toFixed(3)}${evalSuffix(p.lastEval)}`);
    },
  }));
}

export async function trainCommand(argv: string[]): Promise<number> {
  if (argv.includes('--lora') || argv.includes('--base') || argv.some((a) => a.startsWith('--base='))) return trainLoraCommand(argv);
  const cfg = trainConfigFromArgs(argv);
  console.log(`training ${cfg.preset} GPT-2 on ${cfg.task} (${cfg.scale} scale), seed ${cfg.seed} -> ${cfg.out}`);
  const bar = new ProgressBar('train', Math.min(cfg.steps, cfg.stopAt ?? Infinity));
  return runTraining(argv, (hooks) => train(cfg, {
    ...hooks,
    onProgress: (p) => bar.update(p.step, `loss ${p.loss.toFixed(3)} ${Math.round(p.tokensPerSecond)} tok/s${evalSuffix(p.lastEval)}`),
  }));
}
