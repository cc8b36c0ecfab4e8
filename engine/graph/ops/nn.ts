/**
 * Neural-network ops and their gradients (g = dL/dy):
 *   softmax      y = exp(x) / sum exp(x)            dx = y * (g - sum(g * y))          (over the last axis)
 *   logSoftmax   y = x - log sum exp(x)             dx = g - exp(y) * sum(g)
 *   causalMask   y = x + M, M[q, k] = 0 where key <= query else -inf   (scores [..., Tq, Tk])
 *                dx = g (Add's rule). Its consumer, softmax, already sends back zeros where y = -inf
 *                (softmax is 0 there), so the earlier Where(mask, x, -inf) with g masked to 0 gave the
 *                same gradients bit for bit (test/unit/grad-ops.test.ts) and the same forward bits;
 *                the Add costs less (a broadcasting Where was 5 % of a T = 128 train step, docs/performance.md)
 *   layerNorm    y = xhat * gamma + beta, xhat = (x - mean) * r, r = 1 / sqrt(var + eps)   (last axis)
 *                dgamma = sum(g * xhat), dbeta = sum(g) over the leading axes,
 *                dx = r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = g * gamma
 *   rmsNorm      y = x / sqrt(mean(x^2) + eps) * w   (composed of standard ops)
 *   crossEntropy L = sum_i m_i * (-log softmax(x_i)[t_i]) / max(sum_i m_i, 1), m_i = (t_i != ignoreIndex)
 *                dx_i = (softmax(x_i) - onehot(t_i)) * m_i * g / max(sum m, 1)
 */
import type { Tensor } from '../graph';
import { attr, compositeOp, fail, normAxis, reduceTo } from './util';
import { add, cast, div, equal, exp, max, mul, neg, not, rsqrt, sub, where } from './elementwise';
import { range, reduceMean, reduceSum, reshape, squeeze, unsqueeze } from './shape';

export function softmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis('Softmax', axis, x.rank);
  return x.graph.addNode({
    op: 'Softmax',
    inputs: [x],
    outputs: [{ shape: x.shape, dtype: x.dtype }],
    attrs: { axis: attr.int(a) },
    grad: (n, [g]) => {
      if (!g) return [undefined];
      const y = n.outputs[0];
      return [mul(y, sub(g, reduceSum(mul(g, y), [a])))];
    },
  }).outputs[0];
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis('LogSoftmax', axis, x.rank);
  return x.graph.addNode({
    op: 'LogSoftmax',
    inputs: [x],
    outputs: [{ shape: x.shape, dtype: x.dtype }],
    attrs: { axis: attr.int(a) },
    grad: (n, [g]) => [g && sub(g, mul(exp(n.outputs[0]), reduceSum(g, [a])))],
  }).outputs[0];
}

/** Sets scores[..., q, k] to -inf where k > q (a query never sees later keys). */
export function causalMask(scores: Tensor): Tensor {
  const [tq, tk] = scores.shape.slice(-2);
  if (typeof tq !== 'number' || typeof tk !== 'number') fail('causalMask', `needs static [T, T] scores, got ${scores}`);
  const bias = new Float32Array(tq * tk).fill(-Infinity);
  const offset = tk - tq; // queries are the last tq positions of tk keys
  for (let q = 0; q < tq; q++) bias.fill(0, q * tk, q * tk + q + offset + 1);
  return add(scores, scores.graph.constant(bias, [tq, tk], scores.dtype));
}

export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  const d = x.shape[x.rank - 1];
  if (gamma.rank !== 1 || beta.rank !== 1 || gamma.shape[0] !== d || beta.shape[0] !== d) {
    fail('LayerNormalization', `gamma ${gamma} and beta ${beta} must be [${d}] for x ${x}`);
  }
  const statShape = [...x.shape.slice(0, -1), 1];
  const node = x.graph.addNode({
    op: 'LayerNormalization',
    inputs: [x, gamma, beta],
    outputs: [
      { shape: x.shape, dtype: x.dtype },
      // ONNX types Mean and InvStdDev as float (type U) whatever the input type is.
      { shape: statShape, dtype: 'float32' },
      { shape: statShape, dtype: 'float32' },
    ],
    attrs: { axis: attr.int(-1), epsilon: attr.float(eps) },
    grad: (n, [g]) => {
      if (!g) return [undefined, undefined, undefined];
      const [xin, gm, bt] = n.inputs;
      const [mean, invStd] = n.outputs.slice(1).map((t) => cast(t, xin.dtype));
      const xhat = mul(sub(xin, mean), invStd);
      const dxhat = mul(g, gm);
      const dx = mul(invStd, sub(sub(dxhat, reduceMean(dxhat, [-1])), mul(xhat, reduceMean(mul(dxhat, xhat), [-1]))));
      return [dx, reduceTo(mul(g, xhat), gm), reduceTo(g, bt)];
    },
  });
  return node.outputs[0];
}

export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-5): Tensor {
  return mul(mul(x, rsqrt(add(reduceMean(mul(x, x), [-1]), eps))), weight);
}

/**
 * Mean token cross-entropy of logits [..., V] against int64 targets [...]; targets equal to
 * ignoreIndex count neither in the sum nor in the mean. Returns a scalar.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor {
  const v = logits.shape[logits.rank - 1];
  if (typeof v !== 'number') fail('crossEntropy', `vocabulary axis of ${logits} must be static`);
  if (targets.dtype !== 'int64') fail('crossEntropy', `targets must be int64, got ${targets}`);
  if (targets.rank !== logits.rank - 1) fail('crossEntropy', `targets ${targets} must have the shape of logits ${logits} without its last axis`);
  const g = logits.graph;
  let logProbs!: Tensor, maskF!: Tensor, safeT!: Tensor, count!: Tensor;
  return compositeOp(
    [logits, targets],
    () => {
      const x = reshape(logits, [-1, v]);
      const t = reshape(targets, [-1]);
      logProbs = logSoftmax(x);
      const mask = not(equal(t, ignoreIndex));
      safeT = unsqueeze(where(mask, t, 0), [1]);
      maskF = cast(mask, logits.dtype);
      count = max(reduceSum(maskF, [0], false), 1);
      const picked = squeeze(g.addNode({
        op: 'GatherElements',
        inputs: [logProbs, safeT],
        outputs: [{ shape: [x.shape[0], 1], dtype: logits.dtype }],
        attrs: { axis: attr.int(1) },
      }).outputs[0], [1]);
      return div(neg(reduceSum(mul(picked, maskF), [0], false)), count);
    },
    (gy) => {
      const onehot = cast(equal(unsqueeze(range(g, v), [0]), safeT), logits.dtype);
      const dx = mul(mul(sub(exp(logProbs), onehot), unsqueeze(maskF, [1])), div(gy, count));
      return [reshape(dx, logits.shape as number[]), undefined];
    },
  );
}
