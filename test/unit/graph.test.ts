import { describe, expect, it } from 'vitest';
import { Graph, GraphError, grad, ops } from '../../engine/graph';
import { Runner } from '../../engine/runtime/runner';

describe('shape inference', () => {
  it('a mismatched matmul names the op and both shapes', () => {
    const g = new Graph();
    const a = g.input('a', [2, 3]);
    const b = g.input('b', [4, 5]);
    expect(() => ops.matmul(a, b)).toThrow(GraphError);
    expect(() => ops.matmul(a, b)).toThrow(/MatMul: inner dimensions differ: A \[2,3\] has 3 columns, B \[4,5\] has 4 rows/);
  });

  it('broadcast, reshape, concat and gemm errors are named', () => {
    const g = new Graph();
    const a = g.input('a', [2, 3]);
    expect(() => ops.add(a, g.input('b', [4]))).toThrow(/Add: shapes \[2,3\] and \[4\] do not broadcast/);
    expect(() => ops.reshape(a, [4, 2])).toThrow(/Reshape: cannot reshape \[2,3\]/);
    expect(() => ops.concat([a, g.input('c', [3, 3])], 1)).toThrow(/Concat: dim 0 differs/);
    expect(() => ops.gemm(a, g.input('d', [2, 2]))).toThrow(/Gemm: inner dimensions differ/);
    expect(() => ops.add(a, g.input('e', [2, 3], 'float64'))).toThrow(/dtype mismatch/);
  });

  it('infers shapes through a batched attention product with symbolic dims', () => {
    const g = new Graph();
    const q = g.input('q', ['B', 4, 'T', 8]);
    const k = g.input('k', ['B', 4, 'T', 8]);
    const s = ops.matmul(q, ops.transposeLast2(k));
    expect(s.shape).toEqual(['B', 4, 'T', 'T']);
  });
});

describe('grad', () => {
  it('refuses a non-scalar loss and integer targets', () => {
    const g = new Graph();
    const x = g.param('x', [3]);
    expect(() => grad(ops.mul(x, 2), [x])).toThrow(/loss must be a scalar/);
    const i = g.input('i', [3], 'int64');
    expect(() => grad(ops.reduceSum(x, [0], false), [i])).toThrow(/not a float tensor/);
  });

  it('names the op without a gradient rule', () => {
    const g = new Graph();
    const x = g.param('x', [3]);
    expect(() => grad(ops.reduceMax(x, [0], false), [x])).toThrow(/no gradient rule for ReduceMax/);
  });

  it('gives zeros for a parameter the loss does not use', async () => {
    const g = new Graph();
    const x = g.param('x', [2]);
    const y = g.param('y', [3]);
    const [, gy] = grad(ops.reduceSum(ops.mul(x, x), [0], false), [x, y]);
    g.output(gy, 'gy');
    const r = await Runner.fromGraph(g);
    const out = await r.run({ x: { data: new Float32Array([1, 2]), dims: [2] }, y: { data: new Float32Array(3), dims: [3] } });
    expect(Array.from(out.gy.data as Float32Array)).toEqual([0, 0, 0]);
  });
});

describe('ONNX output', () => {
  it('only emits the nodes the outputs need', () => {
    const g = new Graph();
    const x = g.input('x', [2]);
    ops.exp(x); // unused
    g.output(ops.neg(x), 'y');
    const onnx = g.toOnnxGraph();
    expect(onnx.nodes.map((n) => n.opType)).toEqual(['Neg', 'Identity']);
  });
});
