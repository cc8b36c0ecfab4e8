/** `memgen demo`: the engine demo, a one-block GPT-2 learning to copy, with its loss curve. */
import { COPY_DEMO_DEFAULTS, runCopyDemo } from '../../demo/copy-demo';
import { RUNNER_OPTIONS, num, onInterrupt, parse, runnerOptions } from '../args';
import { textChart } from '../plot';
import { ProgressBar } from '../progress';

export const DEMO_HELP = `  demo      Train a one-block transformer from scratch on a copy task with the engine's own
            autodiff and print its loss curve.
            --steps N (${COPY_DEMO_DEFAULTS.steps})  --seed N  --lr X (${COPY_DEMO_DEFAULTS.lr})  --threads N  --provider cpu|cuda`;

export async function demoCommand(argv: string[]): Promise<number> {
  const v = parse(argv, { steps: { type: 'string' }, seed: { type: 'string' }, lr: { type: 'string' }, ...RUNNER_OPTIONS });
  const steps = num(v.steps, 'steps', COPY_DEMO_DEFAULTS.steps);
  let stop = false;
  const release = onInterrupt(() => {
    stop = true;
    process.stderr.write('\nstopping after this step (Ctrl-C again to abort)\n');
  });
  const bar = new ProgressBar('train', steps);
  console.log(`MemGen Lens engine demo: a one-block GPT-2 learns to copy ${COPY_DEMO_DEFAULTS.digits} digits (loss on the copied half).`);
  const r = await runCopyDemo({
    steps,
    seed: num(v.seed, 'seed', COPY_DEMO_DEFAULTS.seed),
    lr: num(v.lr, 'lr', COPY_DEMO_DEFAULTS.lr),
    runner: runnerOptions(v),
    onStep: (s, loss) => bar.update(s + 1, `loss ${loss.toFixed(4)}`),
    shouldStop: () => stop,
  });
  release();
  const mean = (a: number[]) => a.reduce((p, q) => p + q, 0) / a.length;
  const first = mean(r.losses.slice(0, 10));
  const last = mean(r.losses.slice(-10));
  console.log(`\n${r.paramCount.toLocaleString('en')} parameters, ${r.losses.length} steps in ${r.seconds.toFixed(1)} s (${Math.round(r.tokensPerSecond).toLocaleString('en')} tokens/s)`);
  console.log(textChart(r.losses, { label: 'step → (cross-entropy, log scale)' }));
  console.log(`loss: first 10 steps ${first.toFixed(4)}, last 10 steps ${last.toFixed(4)} (${(first / last).toFixed(0)}x lower)`);
  return stop ? 130 : 0;
}
