/**
 * Every op with a gradient rule, checked against central finite differences (see gradcheck.ts).
 * float64 wherever onnxruntime's CPU build has a double kernel; float32 (looser tolerance) otherwise.
 */
import { describe, expect, it } from 'vitest';
import { Graph as GraphClass, grad, ops, type Graph, type Tensor, type DType } from '../../engine/graph';
import { gradCheck, type ParamSpec } from './gradcheck';
import { Runner, type HostTensor } from '../../engine/runtime/runner';
import { Rng } from '../../engine/util/rng';

type Case = [name: string, specs: ParamSpec[], build: (xs: Tensor[], g: Graph) => Tensor, dtype?: DType];

const cases: Case[] = [
  ['add (same shape)', [{ shape: [2, 3] }, { shape: [2, 3] }], ([a, b]) => ops.add(a, b)],
  ['add (broadcast [2,3] + [3])', [{ shape: [2, 3] }, { shape: [3] }], ([a, b]) => ops.add(a, b)],
  ['add (broadcast [2,1,3] + [4,1])', [{ shape: [2, 1, 3] }, { shape: [4, 1] }], ([a, b]) => ops.add(a, b)],
  ['sub (broadcast [3] - [2,3])', [{ shape: [3] }, { shape: [2, 3] }], ([a, b]) => ops.sub(a, b)],
  ['mul (broadcast [2,3] * [2,1])', [{ shape: [2, 3] }, { shape: [2, 1] }], ([a, b]) => ops.mul(a, b)],
  ['mul (scalar constant)', [{ shape: [4] }], ([a]) => ops.mul(a, 2.5)],
  ['div (broadcast [2,3] / [3])', [{ shape: [2, 3] }, { shape: [3], init: 'positive' }], ([a, b]) => ops.div(a, b)],
  ['neg', [{ shape: [5] }], ([a]) => ops.neg(a)],
  ['pow (constant exponent 3)', [{ shape: [5] }], ([a]) => ops.pow(a, 3)],
  ['pow (tensor exponent, broadcast)', [{ shape: [2, 3], init: 'positive' }, { shape: [3] }], ([a, b]) => ops.pow(a, b)],
  ['sqrt', [{ shape: [5], init: 'positive' }], ([a]) => ops.sqrt(a)],
  ['rsqrt', [{ shape: [5], init: 'positive' }], ([a]) => ops.rsqrt(a)],
  ['reciprocal', [{ shape: [5], init: 'positive' }], ([a]) => ops.reciprocal(a)],
  ['exp', [{ shape: [5] }], ([a]) => ops.exp(a)],
  ['log', [{ shape: [5], init: 'positive' }], ([a]) => ops.log(a)],
  ['tanh', [{ shape: [5] }], ([a]) => ops.tanh(a)],
  ['erf', [{ shape: [6] }], ([a]) => ops.erf(a), 'float32'],
  ['sigmoid', [{ shape: [5] }], ([a]) => ops.sigmoid(a)],
  ['silu', [{ shape: [5] }], ([a]) => ops.silu(a)],
  ['relu', [{ shape: [6], init: 'awayFromZero' }], ([a]) => ops.relu(a)],
  ['gelu (tanh form)', [{ shape: [7] }], ([a]) => ops.gelu(a)],
  ['abs', [{ shape: [6], init: 'awayFromZero' }], ([a]) => ops.abs(a)],
  ['max (broadcast)', [{ shape: [2, 3] }, { shape: [3] }], ([a, b]) => ops.max(a, b)],
  ['where (broadcast)', [{ shape: [2, 3] }, { shape: [3] }], ([a, b], g) => ops.where(g.constant([1, 0, 1, 0, 0, 1], [2, 3], 'bool'), a, b)],
  ['cast float32 -> float64 -> float32', [{ shape: [4] }], ([a]) => ops.cast(ops.mul(ops.cast(a, 'float64'), ops.cast(a, 'float64')), 'float32'), 'float32'],
  ['identity', [{ shape: [3] }], ([a]) => ops.identity(a)],
  ['reshape', [{ shape: [2, 6] }], ([a]) => ops.mul(ops.reshape(a, [3, -1]), ops.reshape(a, [3, 4]))],
  ['transpose', [{ shape: [2, 3, 4] }], ([a]) => ops.transpose(a, [2, 0, 1])],
  ['slice', [{ shape: [4, 5] }], ([a]) => ops.slice(a, [1, -3], [3, 5], [0, 1])],
  ['split', [{ shape: [2, 5] }], ([a]) => { const [p, q] = ops.split(a, [2, 3], 1); return ops.mul(ops.reduceSum(p, [1]), q); }],
  ['split (one output unused)', [{ shape: [2, 5] }], ([a]) => ops.split(a, [2, 3], 1)[1]],
  ['concat', [{ shape: [2, 2] }, { shape: [2, 3] }], ([a, b]) => ops.concat([a, b, a], 1)],
  ['unsqueeze + squeeze', [{ shape: [3, 2] }], ([a]) => ops.squeeze(ops.mul(ops.unsqueeze(a, [1]), ops.unsqueeze(a, [1])), [1])],
  ['expand', [{ shape: [3, 1] }], ([a]) => ops.expand(a, [2, 3, 4])],
  ['gather (embedding, repeated ids)', [{ shape: [5, 3] }], ([t], g) => ops.gather(t, g.constant([0, 2, 2, 4, 0, 1], [2, 3], 'int64'))],
  ['reduceSum (keepdims)', [{ shape: [2, 3, 4] }], ([a]) => ops.reduceSum(a, [0, 2])],
  ['reduceSum (no keepdims)', [{ shape: [2, 3, 4] }], ([a]) => ops.reduceSum(a, [1], false)],
  ['reduceMean (keepdims)', [{ shape: [2, 3, 4] }], ([a]) => ops.reduceMean(a, [-1])],
  ['reduceMean (no keepdims)', [{ shape: [2, 3, 4] }], ([a]) => ops.reduceMean(a, [0, 1], false)],
  ['matmul 2-D', [{ shape: [3, 4] }, { shape: [4, 2] }], ([a, b]) => ops.matmul(a, b)],
  ['matmul batched', [{ shape: [2, 3, 4] }, { shape: [2, 4, 5] }], ([a, b]) => ops.matmul(a, b)],
  ['matmul batched x 2-D weight', [{ shape: [2, 3, 4] }, { shape: [4, 5] }], ([a, b]) => ops.matmul(a, b)],
  ['matmul broadcast batch [2,1,3,4] x [3,4,2]', [{ shape: [2, 1, 3, 4] }, { shape: [3, 4, 2] }], ([a, b]) => ops.matmul(a, b)],
  ['matmul transB batched (FusedMatMul)', [{ shape: [2, 3, 4] }, { shape: [2, 5, 4] }], ([a, b]) => ops.matmul(a, b, { transB: true })],
  ['matmul transA batched x 2-D', [{ shape: [2, 4, 3] }, { shape: [4, 5] }], ([a, b]) => ops.matmul(a, b, { transA: true })],
  ['matmul transA transB broadcast [2,1,4,3] x [3,2,4]', [{ shape: [2, 1, 4, 3] }, { shape: [3, 2, 4] }], ([a, b]) => ops.matmul(a, b, { transA: true, transB: true })],
  ['gemm', [{ shape: [3, 4] }, { shape: [4, 2] }, { shape: [2] }], ([a, b, c]) => ops.gemm(a, b, { alpha: 0.7, beta: 1.3 }, c)],
  ['gemm transA', [{ shape: [4, 3] }, { shape: [4, 2] }], ([a, b]) => ops.gemm(a, b, { transA: true, alpha: 1.5 })],
  ['gemm transB', [{ shape: [3, 4] }, { shape: [2, 4] }, { shape: [3, 2] }], ([a, b, c]) => ops.gemm(a, b, { transB: true }, c)],
  ['gemm transA transB', [{ shape: [4, 3] }, { shape: [2, 4] }], ([a, b]) => ops.gemm(a, b, { transA: true, transB: true, alpha: 0.5 })],
  ['softmax', [{ shape: [2, 5] }], ([a]) => ops.softmax(a)],
  ['softmax over axis 0', [{ shape: [3, 2] }], ([a]) => ops.softmax(a, 0)],
  ['softmax with causal mask', [{ shape: [2, 4, 4] }], ([a]) => ops.softmax(ops.causalMask(a))],
  ['logSoftmax', [{ shape: [3, 4] }], ([a]) => ops.logSoftmax(a)],
  ['layerNorm', [{ shape: [2, 3, 5] }, { shape: [5] }, { shape: [5] }], ([x, w, b]) => ops.layerNorm(x, w, b, 1e-5)],
  ['rmsNorm', [{ shape: [3, 6] }, { shape: [6] }], ([x, w]) => ops.rmsNorm(x, w, 1e-6)],
  ['crossEntropy with ignore mask', [{ shape: [5, 4] }], ([x], g) => ops.crossEntropy(x, g.constant([3, -100, 0, 2, -100], [5], 'int64'))],
  ['crossEntropy over [B,T,V]', [{ shape: [2, 3, 4] }], ([x], g) => ops.crossEntropy(x, g.constant([1, 2, 3, 0, -100, 1], [2, 3], 'int64'))],
];

describe('finite-difference gradient check of every op', () => {
  for (const [name, specs, build, dtype] of cases) {
    it(`${name} (${dtype ?? 'float64'})`, async () => {
      const r = await gradCheck(specs, build, { dtype: dtype ?? 'float64' });
      expect(r.checked).toBeGreaterThan(0);
    });
  }

  it('fails on a wrong gradient rule (the checker can fail)', async () => {
    const { Graph: G } = await import('../../engine/graph');
    void G;
    await expect(
      gradCheck([{ shape: [4] }], ([a], g) =>
        g.addNode({ op: 'Exp', inputs: [a], outputs: [{ shape: a.shape, dtype: a.dtype }], grad: (_n, [gy]) => [gy] }).outputs[0],
      ),
    ).rejects.toThrow(/gradient mismatch/);
  });

  it('float32 graphs check too (composite transformer pieces)', async () => {
    await gradCheck([{ shape: [2, 3, 4] }, { shape: [4] }, { shape: [4] }, { shape: [4, 6] }], ([x, w, b, m]) =>
      ops.gelu(ops.matmul(ops.layerNorm(x, w, b), m)), { dtype: 'float32' });
  });
});

describe('a chain used in several places sums its gradients', () => {
  it('x * x + exp(x) * x', async () => {
    await gradCheck([{ shape: [3] }], ([x]) => ops.add(ops.mul(x, x), ops.mul(ops.exp(x), x)));
  });
});

/**
 * Faster forms of the attention's backward (docs/performance.md) must give the earlier forms' bits,
 * so that the committed runs still train to the same bits: a product with a transposed operand as
 * FusedMatMul against MatMul on the materialised transpose; the causal mask as an Add of 0 / -inf
 * against Where(mask, x, -inf) with Where's masked gradient. float32, attention-sized, 2 threads.
 */
describe('the attention backward gives the bits of its earlier form', () => {
  const rng = new Rng(3);
  const feed = (dims: number[]) => ({ data: Float32Array.from({ length: dims.reduce((x, y) => x * y) }, () => rng.normal()), dims });
  const bits = (t: HostTensor) => Buffer.from((t.data as Float32Array).buffer);

  it.each([[false, true], [true, false], [true, true]])('FusedMatMul transA %s, transB %s = MatMul(Transpose)', async (transA, transB) => {
    const g = new GraphClass('trans');
    const a = g.input('a', transA ? [3, 8, 32, 30] : [3, 8, 30, 32]);
    const b = g.input('b', transB ? [3, 8, 30, 32] : [3, 8, 32, 30]);
    const at = transA ? ops.transposeLast2(a) : a;
    const bt = transB ? ops.transposeLast2(b) : b;
    g.output(ops.matmul(a, b, { transA, transB }), 'fused');
    g.output(ops.matmul(at, bt), 'plain');
    // the transposes as outputs too: with a second consumer onnxruntime cannot fuse them into the product
    if (transA) g.output(at, 'at');
    if (transB) g.output(bt, 'bt');
    expect(g.nodes.map((n) => n.op)).toContain('FusedMatMul');
    const r = await Runner.fromGraph(g, { threads: 2 });
    const out = await r.run({ a: feed(a.shape as number[]), b: feed(b.shape as number[]) });
    await r.release();
    expect(bits(out.fused).equals(bits(out.plain))).toBe(true);
  });

  it('causal attention: the gradients of q, k and v with the Add mask and FusedMatMul = with Where and MatMul(Transpose)', async () => {
    const [B, H, T, hd] = [2, 4, 30, 16];
    const build = (g: Graph, q: Tensor, k: Tensor, v: Tensor, w: Tensor, earlier: boolean) => {
      const scores = ops.mul(earlier ? ops.matmul(q, ops.transposeLast2(k)) : ops.matmul(q, k, { transB: true }), 1 / Math.sqrt(hd));
      let masked: Tensor;
      if (earlier) {
        const allowed = new Uint8Array(T * T);
        for (let i = 0; i < T; i++) allowed.fill(1, i * T, i * T + i + 1);
        masked = ops.where(g.constant(allowed, [T, T], 'bool'), scores, -Infinity);
      } else {
        masked = ops.causalMask(scores);
      }
      return ops.reduceSum(ops.mul(ops.matmul(ops.softmax(masked), v), w), [0, 1, 2, 3], false);
    };
    const feeds = { q: feed([B, H, T, hd]), k: feed([B, H, T, hd]), v: feed([B, H, T, hd]), w: feed([B, H, T, hd]) };
    const grads = async (earlier: boolean) => {
      const g = new GraphClass('attention');
      const [q, k, v, w] = ['q', 'k', 'v', 'w'].map((n) => g.input(n, [B, H, T, hd]));
      const loss = build(g, q, k, v, w, earlier);
      grad(loss, [q, k, v]).forEach((t, i) => g.output(t, `d${'qkv'[i]}`));
      const r = await Runner.fromGraph(g, { threads: 2 });
      const out = await r.run(feeds);
      await r.release();
      return out;
    };
    const [before, now] = [await grads(true), await grads(false)];
    for (const name of ['dq', 'dk', 'dv']) expect(bits(now[name]).equals(bits(before[name]))).toBe(true);
  });
});
