/**
 * Finite-difference gradient checking for the engine's ops.
 * loss = sum(op(x...) * r) with a fixed random r, so dloss/dy = r exercises every output element;
 * the analytic gradient from grad() is compared with central differences
 *   (loss(x + eps e_j) - loss(x - eps e_j)) / (2 eps)
 * element by element: |analytic - numeric| <= atol + rtol * |numeric|.
 */
import { Graph, type Tensor, type DType, grad, ops } from '../../engine/graph';
import { Runner, type HostTensor } from '../../engine/runtime/runner';
import { Rng } from '../../engine/util/rng';

export interface ParamSpec {
  shape: number[];
  /** 'signed' (default): normal; 'positive': in [0.5, 2]; 'awayFromZero': |x| in [0.2, 1.5]. */
  init?: 'signed' | 'positive' | 'awayFromZero';
  values?: number[];
}

export interface CheckOptions {
  dtype?: DType;
  eps?: number;
  atol?: number;
  rtol?: number;
  seed?: number;
}

export interface CheckResult {
  maxAbsErr: number;
  worst: string;
  checked: number;
}

const TOL: Record<string, { eps: number; atol: number; rtol: number }> = {
  float64: { eps: 1e-6, atol: 1e-7, rtol: 1e-5 },
  float32: { eps: 1e-2, atol: 3e-3, rtol: 3e-2 },
};

function arrayFor(dtype: DType, n: number): Float32Array | Float64Array {
  return dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
}

export async function gradCheck(
  specs: ParamSpec[],
  build: (xs: Tensor[], g: Graph) => Tensor,
  opts: CheckOptions = {},
): Promise<CheckResult> {
  const dtype = opts.dtype ?? 'float64';
  const tol = { ...TOL[dtype], ...opts };
  const rng = new Rng(opts.seed ?? 1234);
  const g = new Graph('gradcheck');
  const xs = specs.map((s, i) => g.param(`x${i}`, s.shape, dtype));
  const y = build(xs, g);
  if (!y.shape.every((d) => typeof d === 'number')) throw new Error('gradcheck needs static output shapes');
  const n = (y.shape as number[]).reduce((p, d) => p * d, 1);
  const r = g.constant(Array.from({ length: n }, () => rng.normal()), y.shape as number[], dtype);
  const loss = ops.reduceSum(ops.mul(y, r), y.shape.map((_, i) => i), false);
  const grads = grad(loss, xs);
  g.output(loss, 'loss');
  grads.forEach((gt, i) => g.output(gt, `grad_x${i}`));
  const runner = await Runner.fromGraph(g, { threads: 1 });

  const feeds: Record<string, HostTensor> = {};
  specs.forEach((s, i) => {
    const count = s.shape.reduce((p, d) => p * d, 1);
    const data = arrayFor(dtype, count);
    for (let j = 0; j < count; j++) {
      if (s.values) data[j] = s.values[j];
      else if (s.init === 'positive') data[j] = 0.5 + 1.5 * rng.uniform();
      else if (s.init === 'awayFromZero') data[j] = (rng.uniform() < 0.5 ? -1 : 1) * (0.2 + 1.3 * rng.uniform());
      else data[j] = rng.normal();
    }
    feeds[`x${i}`] = { data, dims: s.shape };
  });
  const analytic = await runner.run(feeds);
  const lossAt = async (): Promise<number> => Number((await runner.run(feeds, ['loss'])).loss.data[0]);

  let maxAbsErr = 0;
  let worst = '';
  let checked = 0;
  for (let i = 0; i < specs.length; i++) {
    const x = feeds[`x${i}`].data as Float32Array | Float64Array;
    const ga = analytic[`grad_x${i}`].data as Float32Array | Float64Array;
    if (ga.length !== x.length) throw new Error(`grad_x${i} has ${ga.length} values for ${x.length} inputs`);
    for (let j = 0; j < x.length; j++) {
      const orig = x[j];
      x[j] = orig + tol.eps;
      const up = await lossAt();
      x[j] = orig - tol.eps;
      const down = await lossAt();
      x[j] = orig;
      const numeric = (up - down) / (2 * tol.eps);
      const err = Math.abs(ga[j] - numeric);
      checked++;
      if (err > maxAbsErr) maxAbsErr = err;
      if (err > tol.atol + tol.rtol * Math.abs(numeric)) {
        worst = `x${i}[${j}]: analytic ${ga[j]} vs numeric ${numeric}`;
        await runner.release();
        throw new Error(`gradient mismatch at ${worst} (dtype ${dtype})`);
      }
    }
  }
  await runner.release();
  return { maxAbsErr, worst, checked };
}
