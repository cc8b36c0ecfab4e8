/**
 * `memgen export`: a GPT-2 run, or a LoRA run (its adapter merged into the LLaMA base), with one steering
 * intervention baked into its biases, written as a new run folder (Hugging Face GPT-2 / LLaMA +
 * model.onnx) that behaves steered with no steering input, and the baked model measured against runtime
 * steering on steer-eval's starting inputs (engine/steer/export.ts). The neurons and defaults are
 * steer-eval's (the run's analysis, topN 0.1, the task's alpha, the run's seed).
 */
import { withRunLock } from '../../runs/lock';
import { type LoraSteerRun, isLoraRun } from '../../runs/lora-run';
import { defaultAlpha } from '../../steer/files';
import { DIRECTIONS } from '../../steer/intervention';
import { type ExportSource, checkExportTarget, exportSteered, formatExport } from '../../steer/export';
import { type SteerSetup, prepareSteering } from '../../steer/steer-eval';
import { RUNNER_OPTIONS, UsageError, choice, num, parse, required, runnerOptions, str } from '../args';
import { ProgressBar } from '../progress';
import { fraction, pickOption, positiveInt, prepare } from './steer';

export const EXPORT_HELP = `  export    Bake a steering intervention into a run's weights. GPT-2: ln2 -> ln_2.bias; resid_pre -> the previous
            block's mlp.c_proj.bias, block 0: every row of wpe; resid_post -> the block's mlp.c_proj.bias. LoRA run:
            the adapter merged into the base (W + alpha/r B A), mlp_bias true, resid_post -> the layer's
            mlp.down_proj.bias; resid_pre -> the previous layer's, layer 0: every row of embed_tokens (lm_head untied).
            A new run folder DIR (config.json, tokenizer.json, model.safetensors, model.onnx, manifest.json) that
            generate, eval and transformers open (the editor: GPT-2), steered with no steering input. Measures the
            export (unsteered) against runtime steering of RUN on steer-eval's n starting inputs; \`memgen eval --run
            DIR\` prints it. Needs \`memgen analyze --run RUN\` first.
            --run RUN --out DIR [--direction mem->gen|gen->mem (mem->gen)] [--topn F (0.1)] [--alpha A (paper: incontext 1,
            arithmetic 5)] [--pick blocks.3.ln2:71,... (these neurons instead of the top N)] [--neurons-from RUN2] [--allow-stale]
            [--n N (200)] [--seed S (the run's)] [--max-tries N (30 n)] [--no-compare] [--force (the old DIR is kept
            as DIR.replaced-<time>)] [--batch N (256)] [--threads N] [--provider cpu|cuda]`;

const OPTIONS = {
  run: { type: 'string' }, out: { type: 'string' }, direction: { type: 'string' }, topn: { type: 'string' }, alpha: { type: 'string' },
  pick: { type: 'string' }, 'neurons-from': { type: 'string' }, 'allow-stale': { type: 'boolean' }, n: { type: 'string' }, seed: { type: 'string' },
  'max-tries': { type: 'string' }, 'no-compare': { type: 'boolean' }, force: { type: 'boolean' }, batch: { type: 'string' }, ...RUNNER_OPTIONS,
} as const;

/** `word` as a POSIX shell reads it: bare when it holds only safe characters, else in single quotes. */
export const shellQuote = (word: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);

/** `memgen export`, holding DIR's lock (runs/lock.ts) while it writes DIR.partial and renames it. */
export async function exportCommand(argv: string[]): Promise<number> {
  const v = parse(argv, OPTIONS);
  const runDir = required(v.run, 'run');
  const out = required(v.out, 'out');
  const direction = choice(v.direction, 'direction', DIRECTIONS, 'mem->gen');
  if (v.pick !== undefined && v.topn !== undefined) throw new UsageError('--topn and --pick exclude each other: --pick steers the listed neurons');
  const topN = fraction(num(v.topn, 'topn', 0.1), 'topn');
  const n = positiveInt(num(v.n, 'n', 200), 'n');
  const batch = positiveInt(num(v.batch, 'batch', 256), 'batch');
  const maxTries = num(v['max-tries'], 'max-tries', null);
  const neuronsFrom = str(v['neurons-from'], 'neurons-from');
  checkExportTarget(out, runDir, Boolean(v.force)); // before the work
  const prepareOpts = { neuronsFrom, allowStale: Boolean(v['allow-stale']) };
  const setup: ExportSource = isLoraRun(runDir) ? (prepare(runDir, prepareOpts) as SteerSetup<LoraSteerRun>) : prepareSteering(runDir, prepareOpts);
  const alpha = num(v.alpha, 'alpha', defaultAlpha(setup.run.task.name));
  const seed = num(v.seed, 'seed', setup.run.memgen.seed);
  const pickText = str(v.pick, 'pick') ?? '';
  const picks = pickOption(str(v.pick, 'pick'), setup);
  const compare = !v['no-compare'];
  // The command that remakes this export, with every default resolved (quoted for a POSIX shell: mem->gen holds a '>').
  const command = ['memgen', 'export', '--run', runDir, '--direction', direction, ...(picks ? ['--pick', pickText] : ['--topn', String(topN)]), '--alpha', String(alpha),
    ...(neuronsFrom ? ['--neurons-from', neuronsFrom] : []), ...(v['allow-stale'] ? ['--allow-stale'] : []),
    ...(compare ? ['--n', String(n), '--seed', String(seed), ...(maxTries !== null ? ['--max-tries', String(maxTries)] : [])] : ['--no-compare']), '--out', out].map(shellQuote).join(' ');
  for (const w of setup.warnings) console.log(`warning: ${w}`);

  const startBar = new ProgressBar('starts  ', 2 * n, 'input');
  return withRunLock(out, command, async () => {
    const r = await exportSteered({
      setup, direction, topN, picks, alpha, out, force: Boolean(v.force), command, runner: runnerOptions(v), batchSize: batch,
      compare: compare
        ? { n, seed, batch, maxTries: maxTries === null ? undefined : positiveInt(maxTries, 'max-tries'), onFound: (tried, found) => startBar.update(Math.min(found, 2 * n), `| ${tried} inputs tried`) }
        : null,
    });
    console.log(formatExport(r.manifest.export));
    if (r.replaced) console.log(`the previous ${out} is kept as ${r.replaced}`);
    console.log(`wrote ${r.dir} (${Object.keys(r.manifest.hashes).join(', ')}, manifest.json)`);
    return 0;
  }, (m) => console.warn(m));
}
