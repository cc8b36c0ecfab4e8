/** `memgen pretrain`: the stand-in LLaMA base (train/llama-pretrain.ts), saved as a Hugging Face folder. */
import { GROW_ORDERS, type NamesStage, type PackRows, PRETRAIN_PRESETS, type PretrainPreset, STAND_IN_NOTE, defaultPretrainConfig, formatFamilyAccuracy, partialDir, pretrain } from '../../train/llama-pretrain';
import { CORPUS_DEFAULTS, CORPUS_FAMILIES } from '../../tasks/corpus';
import { RUNNER_OPTIONS, UsageError, choice, num, onInterrupt, parse, posInt, required, runnerOptions, share } from '../args';
import { ProgressBar } from '../progress';

const PRESETS = Object.keys(PRETRAIN_PRESETS) as PretrainPreset[];

export const PRETRAIN_HELP = `  pretrain  Pretrain a small LLaMA-architecture base on a generated corpus: a stand-in for LLaMA-3.2
            (no pretrained weights can be downloaded here), written as a Hugging Face folder.
            --arch llama  --preset ${PRESETS.join('|')} (tiny)  --out BASE  [--seed N] [--steps S] [--batch B]
            [--seq T] [--lr X] [--sums-first N [--first-families sum4,...]] [--sum-digits D (0: unpadded partial sums; 3: one width)] [--digit-group 1|3 (numbers a digit a token, or in LLaMA-3's runs of up to 3; a stage keeps its parent's)] [--split-capitals (a run of capital letters a token a letter, so a tiny base learns to copy the cipher's letters; a stage may turn it on)] [--round-operands P (a share P of the training sums' operands multiples of 10)] [--direct-colour P (a share P of the colour stories ask one hop)] [--mix fam:w,... (the family weights after the first families)] [--names-schedule 2-3:1500,2-5:3000 (stories of 2-3 names until step 1500, 2-5 until 3000, then 2-7)] [--no-pack (one document a row) | --pack-isolated (whole documents packed, each attending only to itself)] [--init-from BASE (a second stage: start from a base made by pretrain; a shallower base of the same width grows: tiny -> deep, [--grow interleave|stack] (each new block after its parent's, or the parent's blocks once more on top))] [--hop-layers 0,1,2 [--hop-weight W] [--hop-within-kind (each hop among the names, roles or colours only)] (score what a story and its question must hold inside, level k at the residual after the k-th listed layer)] [--stop-at-step N (end at step N of the S-step schedule)] [--max-minutes M] [--eval-n N] [--eval-every K] [--checkpoint-every K (250)]
            [--log-every K (10)] [--resume | --force] [--threads N] [--provider cpu|cuda]`;

function families(v: string | undefined, dflt: readonly string[]): readonly string[] {
  if (v === undefined) return dflt;
  const names = v.split(',').map((f) => f.trim()).filter((f) => f !== '');
  const bad = names.filter((f) => !CORPUS_FAMILIES.includes(f));
  if (names.length === 0 || bad.length > 0) throw new UsageError(`--first-families: ${bad.length > 0 ? `no corpus family ${bad.join(', ')}` : 'empty'}; the families are ${CORPUS_FAMILIES.join(',')}`);
  return names;
}

function sumDigits(v: string): number {
  if (!['0', '1', '2', '3'].includes(v)) throw new UsageError(`--sum-digits must be 0 (unpadded partial sums) or 1..3 (zero-padded to that many digits), got ${JSON.stringify(v)}`);
  return Number(v);
}


/** `--mix sum4:0.2,colour:0.5,...`: the family weights of the stage (unlisted families weigh 0). */
function mix(v: string | undefined): Record<string, number> | null {
  if (v === undefined) return null;
  const out: Record<string, number> = {};
  for (const item of v.split(',').filter((x) => x.trim() !== '')) {
    const [name, w, extra] = item.split(':').map((x) => x.trim());
    const weight = Number(w);
    if (!CORPUS_FAMILIES.includes(name) || extra !== undefined || w === undefined || w === '' || !(weight >= 0 && Number.isFinite(weight)) || name in out) {
      throw new UsageError(`--mix takes family:weight pairs, each family once, e.g. sum4:0.2,colour:0.5,tag:0.1 (the families are ${CORPUS_FAMILIES.join(',')}); ${JSON.stringify(item)} is not one`);
    }
    out[name] = weight;
  }
  if (!Object.values(out).some((w) => w > 0)) throw new UsageError(`--mix gives no family a positive weight: ${JSON.stringify(v)}`);
  return out;
}

/** `--names-schedule 2-3:1500,2-5:3000`: story sizes, each until its step, the steps increasing. */
function namesSchedule(v: string | undefined): NamesStage[] {
  if (v === undefined) return [];
  const [lo, hi] = CORPUS_DEFAULTS.names;
  const out: NamesStage[] = [];
  for (const item of v.split(',')) {
    const m = /^\s*(\d+)-(\d+):(\d+)\s*$/.exec(item);
    const [a, b, until] = m === null ? [NaN, NaN, NaN] : m.slice(1).map(Number);
    if (!(a >= lo && a <= b && b <= hi && until > (out.at(-1)?.until ?? 0))) {
      throw new UsageError(`--names-schedule takes lo-hi:until items, names within ${lo}-${hi}, the steps increasing, e.g. 2-3:1500,2-5:3000; ${JSON.stringify(item)} is not one`);
    }
    out.push({ names: [a, b], until });
  }
  return out;
}

/** `--hop-layers 0,1,2`: the layer of each hop level (0-based resid_post), increasing, below the preset's layer count. */
function hopLayers(v: string | undefined, layers: number): number[] {
  if (v === undefined) return [];
  const items = v.split(',');
  const out = items.map(Number);
  if (items.some((item, i) => !/^\d+$/.test(item) || out[i] >= layers || (i > 0 && out[i] <= out[i - 1]))) {
    throw new UsageError(`--hop-layers takes increasing layer numbers 0-${layers - 1} (the preset's layers, 0-based), one a hop level, e.g. 0,1,2; ${JSON.stringify(v)} is not one`);
  }
  return out;
}

function packRows(noPack: boolean | undefined, isolated: boolean | undefined): PackRows {
  if (noPack && isolated) throw new UsageError('--no-pack (one document a row) and --pack-isolated (documents packed, each attending only to itself) contradict each other; pass one');
  return isolated ? 'isolated' : !noPack;
}

export async function pretrainCommand(argv: string[]): Promise<number> {
  const v = parse(argv, {
    arch: { type: 'string' }, preset: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, steps: { type: 'string' },
    batch: { type: 'string' }, seq: { type: 'string' }, lr: { type: 'string' }, 'max-minutes': { type: 'string' }, 'eval-n': { type: 'string' },
    'sums-first': { type: 'string' }, 'stop-at-step': { type: 'string' }, 'first-families': { type: 'string' }, 'sum-digits': { type: 'string' }, 'digit-group': { type: 'string' }, 'split-capitals': { type: 'boolean' }, 'round-operands': { type: 'string' }, 'direct-colour': { type: 'string' }, mix: { type: 'string' }, 'names-schedule': { type: 'string' }, 'no-pack': { type: 'boolean' }, 'pack-isolated': { type: 'boolean' }, 'init-from': { type: 'string' }, grow: { type: 'string' }, 'hop-layers': { type: 'string' }, 'hop-weight': { type: 'string' }, 'hop-within-kind': { type: 'boolean' }, 'eval-every': { type: 'string' }, 'checkpoint-every': { type: 'string' }, 'log-every': { type: 'string' }, resume: { type: 'boolean' }, force: { type: 'boolean' }, ...RUNNER_OPTIONS,
  });
  choice(v.arch, 'arch', ['llama'] as const, 'llama');
  if (v.grow !== undefined && v['init-from'] === undefined) throw new UsageError('--grow places the new blocks when --init-from names a shallower base; pass --init-from BASE');
  if (v['hop-within-kind'] && v['hop-layers'] === undefined) throw new UsageError('--hop-within-kind scores the hops of --hop-layers; pass --hop-layers too, e.g. --hop-layers 0,1,2');
  const preset = choice(v.preset, 'preset', PRESETS, 'tiny');
  if (v.resume && v.force) throw new UsageError('--resume and --force contradict each other');
  const out = required(v.out, 'out');
  const d = defaultPretrainConfig(preset, out);
  const cfg = {
    ...d,
    seed: num(v.seed, 'seed', 0),
    steps: num(v.steps, 'steps', d.steps),
    batch: num(v.batch, 'batch', d.batch),
    seq: num(v.seq, 'seq', d.seq),
    lr: num(v.lr, 'lr', d.lr),
    maxMinutes: num(v['max-minutes'], 'max-minutes', null),
    stopAt: v['stop-at-step'] === undefined ? null : posInt(v['stop-at-step'], 'stop-at-step', 1),
    evalPerFamily: num(v['eval-n'], 'eval-n', d.evalPerFamily),
    sumsFirst: num(v['sums-first'], 'sums-first', d.sumsFirst),
    firstFamilies: families(v['first-families'] as string | undefined, d.firstFamilies),
    sumDigits: v['sum-digits'] === undefined ? d.sumDigits : sumDigits(v['sum-digits'] as string),
    digitGroup: Number(choice(v['digit-group'], 'digit-group', ['1', '3'] as const, '1')),
    splitCapitals: v['split-capitals'] === true,
    roundOperands: share(v['round-operands'], 'round-operands', d.roundOperands, { below1: true, example: '0.3 (three operands in ten multiples of 10)' }),
    directColour: share(v['direct-colour'], 'direct-colour', d.directColour, { below1: true, example: '0.3 (three colour stories in ten ask of a name whose colour they state)' }),
    mix: mix(v.mix as string | undefined),
    namesSchedule: namesSchedule(v['names-schedule'] as string | undefined),
    pack: packRows(v['no-pack'] as boolean | undefined, v['pack-isolated'] as boolean | undefined),
    initFrom: (v['init-from'] as string | undefined) ?? null,
    grow: choice(v.grow, 'grow', GROW_ORDERS, 'interleave'),
    hopLayers: hopLayers(v['hop-layers'] as string | undefined, PRETRAIN_PRESETS[preset].model.numLayers),
    hopWeight: num(v['hop-weight'], 'hop-weight', d.hopWeight),
    hopWithinKind: Boolean(v['hop-within-kind']),
    evalEvery: num(v['eval-every'], 'eval-every', d.evalEvery),
    checkpointEvery: posInt(v['checkpoint-every'], 'checkpoint-every', d.checkpointEvery),
    logEvery: posInt(v['log-every'], 'log-every', d.logEvery),
    resume: Boolean(v.resume),
    force: Boolean(v.force),
    command: `memgen pretrain ${argv.join(' ')}`,
    runner: runnerOptions(v),
  };
  let stop = false;
  const release = onInterrupt(() => {
    stop = true;
    process.stderr.write('\nCtrl-C: saving a checkpoint after this step (Ctrl-C again to abort without saving)\n');
  });
  console.log(`pretraining the ${preset} stand-in base (${STAND_IN_NOTE}) -> ${out}`);
  const bar = new ProgressBar('pretrain', Math.min(cfg.steps, cfg.stopAt ?? cfg.steps));
  const r = await pretrain(cfg, {
    shouldStop: () => stop,
    log: (l) => console.log(l),
    warn: (l) => console.warn(l),
    onProgress: (p) => bar.update(p.step, `loss ${p.loss.toFixed(3)} lr ${p.lr.toExponential(1)}`),
  });
  release();
  if (r.stopReason === 'interrupted') {
    console.log(`\ninterrupted at step ${r.steps}; the unfinished base is ${partialDir(out)}; continue with: memgen pretrain ${argv.filter((a) => a !== '--force' && a !== '--resume').join(' ')} --resume`);
    return 130;
  }
  console.log(`\n${r.stopReason === 'time' ? 'time budget reached' : 'done'}: ${r.steps} steps, ${r.seconds.toFixed(0)} s, final loss ${r.finalLoss.toFixed(3)} -> ${r.dir}`);
  const acc = formatFamilyAccuracy(r.familyAccuracy);
  if (acc) console.log(`held-out exact match per corpus family: ${acc}`);
  return 0;
}
