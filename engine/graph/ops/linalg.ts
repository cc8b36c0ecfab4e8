/**
 * Matrix products and their gradients (g = dL/dY):
 *   matmul  Y = A @ B (batched, batch dims broadcast)
 *           dA = g @ B^T  (summed back to A's shape),  dB = A^T @ g (summed back to B's shape)
 *           When B is a 2-D weight and A is batched, dB = A2^T @ g2 with A and g flattened to rows
 *           (one Gemm instead of a batched product followed by a sum).
 *   gemm    Y = alpha * op(A) @ op(B) + beta * C,  op(X) = X^T if transX else X  (2-D)
 *           dA = alpha * g @ op(B)^T  (transposed back when transA),  dB = alpha * op(A)^T @ g  (likewise),
 *           dC = beta * g summed back to C's shape
 */
import { type Dim, type Tensor, fmtShape } from '../graph';
import { attr, broadcastShapes, fail, reduceTo, sameDType } from './util';
import { mul } from './elementwise';
import { reshape, transposeLast2 } from './shape';

export function matmul(a: Tensor, b: Tensor): Tensor {
  sameDType('MatMul', a, b);
  if (a.rank < 2 || b.rank < 2) fail('MatMul', `inputs must have rank >= 2, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const [m, k1] = a.shape.slice(-2);
  const [k2, n] = b.shape.slice(-2);
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2) {
    fail('MatMul', `inner dimensions differ: A ${fmtShape(a.shape)} has ${k1} columns, B ${fmtShape(b.shape)} has ${k2} rows`);
  }
  const batch = broadcastShapes('MatMul (batch dims)', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const shape: Dim[] = [...batch, m, n];
  return a.graph.addNode({ op: 'MatMul', inputs: [a, b], outputs: [{ shape, dtype: a.dtype }], grad: matmulGrad }).outputs[0];
}

const matmulGrad = (node: { inputs: readonly Tensor[] }, [g]: readonly (Tensor | undefined)[]): (Tensor | undefined)[] => {
  if (!g) return [undefined, undefined];
  const [a, b] = node.inputs;
  const dA = reduceTo(matmul(g, transposeLast2(b)), a);
  let dB: Tensor;
  const k = a.shape[a.rank - 1];
  const n = b.shape[1];
  if (b.rank === 2 && a.rank > 2 && typeof k === 'number' && typeof n === 'number') {
    dB = gemm(reshape(a, [-1, k]), reshape(g, [-1, n]), { transA: true });
  } else {
    dB = reduceTo(matmul(transposeLast2(a), g), b);
  }
  return [dA, dB];
};

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
}

export function gemm(a: Tensor, b: Tensor, opts: GemmOptions = {}, c?: Tensor): Tensor {
  const { transA = false, transB = false, alpha = 1, beta = 1 } = opts;
  sameDType('Gemm', a, b, ...(c ? [c] : []));
  if (a.rank !== 2 || b.rank !== 2) fail('Gemm', `inputs must be 2-D, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const [m, k1] = transA ? [a.shape[1], a.shape[0]] : a.shape;
  const [k2, n] = transB ? [b.shape[1], b.shape[0]] : b.shape;
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2) {
    fail('Gemm', `inner dimensions differ: op(A) of ${fmtShape(a.shape)} has ${k1} columns, op(B) of ${fmtShape(b.shape)} has ${k2} rows`);
  }
  const shape = [m, n];
  if (c) broadcastShapes('Gemm (C)', shape, c.shape);
  return a.graph.addNode({
    op: 'Gemm',
    inputs: c ? [a, b, c] : [a, b],
    outputs: [{ shape, dtype: a.dtype }],
    attrs: { alpha: attr.float(alpha), beta: attr.float(beta), transA: attr.int(transA ? 1 : 0), transB: attr.int(transB ? 1 : 0) },
    grad: (node, [g]) => {
      if (!g) return node.inputs.map(() => undefined);
      const [A, B, C] = node.inputs;
      const dA = transA ? gemm(B, g, { transA: transB, transB: true, alpha }) : gemm(g, B, { transB: !transB, alpha });
      const dB = transB ? gemm(g, A, { transA: true, transB: transA, alpha }) : gemm(A, g, { transA: !transA, alpha });
      const grads: (Tensor | undefined)[] = [dA, dB];
      if (C) grads.push(reduceTo(beta === 1 ? g : mul(g, beta), C));
      return grads;
    },
  }).outputs[0];
}
