/**
 * `memgen`: the headless command line. Each command is a small function; usage errors exit 2,
 * failures exit 1, success 0.
 */
import { parseArgs } from 'node:util';
import { runCopyDemo, COPY_DEMO_DEFAULTS } from '../demo/copy-demo';
import type { ExecutionProvider } from '../runtime/runner';
import { ProgressBar } from './progress';
import { textChart } from './plot';

export class UsageError extends Error {}

const HELP = `memgen — train, analyse and steer memorization vs generalization

Usage: memgen <command> [options]

Commands:
  demo      Train a one-block transformer from scratch on a copy task with the engine's own
            autodiff and print its loss curve.
            --steps N (${COPY_DEMO_DEFAULTS.steps})  --seed N (${COPY_DEMO_DEFAULTS.seed})  --lr X (${COPY_DEMO_DEFAULTS.lr})
            --threads N (0 = all cores)  --provider cpu|cuda
  help      This text.
`;

function intOption(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
  return n;
}

function providerOption(v: string | undefined): ExecutionProvider {
  if (v === undefined || v === 'cpu' || v === 'cuda') return (v ?? 'cpu') as ExecutionProvider;
  throw new UsageError(`--provider must be cpu or cuda, got '${v}'`);
}

async function demo(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { steps: { type: 'string' }, seed: { type: 'string' }, lr: { type: 'string' }, threads: { type: 'string' }, provider: { type: 'string' } },
    strict: true,
  });
  const steps = intOption(values.steps, 'steps', COPY_DEMO_DEFAULTS.steps);
  let stop = false;
  const onSigint = () => {
    stop = true;
    process.stderr.write('\nstopping after this step (Ctrl-C again to abort)\n');
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', onSigint);
  const bar = new ProgressBar('train', steps);
  console.log(`MemGen Lens engine demo: a one-block GPT-2 learns to copy ${COPY_DEMO_DEFAULTS.digits} digits (loss on the copied half).`);
  const r = await runCopyDemo({
    steps,
    seed: intOption(values.seed, 'seed', COPY_DEMO_DEFAULTS.seed),
    lr: intOption(values.lr, 'lr', COPY_DEMO_DEFAULTS.lr),
    runner: { threads: intOption(values.threads, 'threads', 0), provider: providerOption(values.provider) },
    onStep: (s, loss) => bar.update(s + 1, `loss ${loss.toFixed(4)}`),
    shouldStop: () => stop,
  });
  process.removeListener('SIGINT', onSigint);
  const first = r.losses.slice(0, 10);
  const last = r.losses.slice(-10);
  const mean = (a: number[]) => a.reduce((p, q) => p + q, 0) / a.length;
  console.log(`\n${r.paramCount.toLocaleString('en')} parameters, ${r.losses.length} steps in ${r.seconds.toFixed(1)} s (${Math.round(r.tokensPerSecond).toLocaleString('en')} tokens/s)`);
  console.log(textChart(r.losses, { label: 'step → (cross-entropy, log scale)' }));
  console.log(`loss: first 10 steps ${mean(first).toFixed(4)}, last 10 steps ${mean(last).toFixed(4)} (${(mean(first) / mean(last)).toFixed(0)}x lower)`);
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'demo': await demo(rest); return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h': console.log(HELP); return cmd === undefined ? 2 : 0;
      default: throw new UsageError(`unknown command '${cmd}'. Commands: demo, help`);
    }
  } catch (e) {
    const err = e as Error;
    if (err instanceof UsageError || (err as NodeJS.ErrnoException).code?.startsWith?.('ERR_PARSE_ARGS')) {
      console.error(`memgen: ${err.message}\nRun \`memgen help\` for usage.`);
      return 2;
    }
    console.error(`memgen: ${err.message}`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
