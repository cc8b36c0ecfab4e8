/**
 * Matrix products and their gradients (g = dL/dY):
 *   matmul  Y = op(A) @ op(B) (batched, batch dims broadcast), op(X) = X^T (last two axes) if transX else X
 *           dA = g @ op(B)^T, or op(B) @ g^T when transA  (summed back to A's shape)
 *           dB = op(A)^T @ g, or g^T @ op(A) when transB  (summed back to B's shape)
 *           Without trans flags the node is ONNX MatMul; with one it is onnxruntime's FusedMatMul
 *           (com.microsoft, transA/transB), the node onnxruntime's own MatmulTransposeFusion writes
 *           for MatMul(Transpose(X)): the same packed operands and GEMM kernel, so the same bits,
 *           without materialising the transpose (onnxruntime merges a last-two-axes transpose with
 *           the attention heads' transpose into one slow 4-D permutation, which it cannot fuse).
 *           When B is a 2-D weight and A is batched, dB = A2^T @ g2 with A and g flattened to rows
 *           (one Gemm instead of a batched product followed by a sum).
 *   gemm    Y = alpha * op(A) @ op(B) + beta * C  (2-D)
 *           dA = alpha * g @ op(B)^T  (transposed back when transA),  dB = alpha * op(A)^T @ g  (likewise),
 *           dC = beta * g summed back to C's shape
 */
import { type Dim, type Tensor, fmtShape } from '../graph';
import { attr, broadcastShapes, fail, reduceTo, sameDType } from './util';
import { mul } from './elementwise';
import { reshape } from './shape';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const { transA = false, transB = false } = opts;
  sameDType('MatMul', a, b);
  if (a.rank < 2 || b.rank < 2) fail('MatMul', `inputs must have rank >= 2, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  const last2 = (x: Tensor, trans: boolean) => (trans ? x.shape.slice(-2).reverse() : x.shape.slice(-2));
  const [m, k1] = last2(a, transA);
  const [k2, n] = last2(b, transB);
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2) {
    fail('MatMul', `inner dimensions differ: A${transA ? '^T of' : ''} ${fmtShape(a.shape)} has ${k1} columns, B${transB ? '^T of' : ''} ${fmtShape(b.shape)} has ${k2} rows`);
  }
  const batch = broadcastShapes('MatMul (batch dims)', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const shape: Dim[] = [...batch, m, n];
  const fused = transA || transB;
  return a.graph.addNode({
    op: fused ? 'FusedMatMul' : 'MatMul',
    domain: fused ? 'com.microsoft' : undefined,
    inputs: [a, b],
    outputs: [{ shape, dtype: a.dtype }],
    attrs: fused ? { alpha: attr.float(1), transA: attr.int(transA ? 1 : 0), transB: attr.int(transB ? 1 : 0) } : undefined,
    grad: (node, [g]) => {
      if (!g) return [undefined, undefined];
      const [A, B] = node.inputs;
      const dA = transA ? matmul(B, g, { transA: transB, transB: true }) : matmul(g, B, { transB: !transB });
      const [k, n] = [A.shape[A.rank - 1], B.shape[1]];
      let dB: Tensor;
      if (!fused && B.rank === 2 && A.rank > 2 && typeof k === 'number' && typeof n === 'number') {
        dB = gemm(reshape(A, [-1, k]), reshape(g, [-1, n]), { transA: true }); // a 2-D weight: one Gemm over the rows
      } else if (transB) {
        dB = matmul(g, A, { transA: true, transB: transA });
      } else {
        dB = matmul(A, g, { transA: !transA });
      }
      return [reduceTo(dA, A), reduceTo(dB, B)];
    },
  }).outputs[0];
}

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
