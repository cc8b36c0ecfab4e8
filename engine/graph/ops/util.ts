/**
 * Shared helpers of the op modules: attribute constructors, broadcasting, axis normalisation, and
 * reduceTo (summing a broadcast gradient back to an input's shape).
 *
 * Broadcasting (numpy rules): shapes are aligned on the right; a dim of 1 stretches to the other.
 * The gradient of a broadcast input is the output gradient summed over the stretched axes:
 *   dL/dx = ReduceSum(dL/dy, axes = leading extra axes + axes where x has 1 and y does not)
 */
import type { OnnxAttr } from '../onnx';
import { type Dim, GraphError, type Shape, type Tensor, fmtShape, isStatic } from '../graph';

export const attr = {
  int: (value: number): OnnxAttr => ({ kind: 'int', value }),
  float: (value: number): OnnxAttr => ({ kind: 'float', value }),
  string: (value: string): OnnxAttr => ({ kind: 'string', value }),
  ints: (value: readonly number[]): OnnxAttr => ({ kind: 'ints', value }),
};

export function fail(op: string, msg: string): never {
  throw new GraphError(`${op}: ${msg}`);
}

export function broadcastShapes(op: string, a: Shape, b: Shape): Dim[] {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else if (typeof da === 'number' && typeof db === 'number') {
      fail(op, `shapes ${fmtShape(a)} and ${fmtShape(b)} do not broadcast (dim ${i}: ${da} vs ${db})`);
    } else out.push(typeof da === 'number' ? da : db); // symbolic vs number: assume equal, ORT checks at run time
  }
  return out;
}

export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(op, `axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Shape as a tensor: a constant when static, a Shape node otherwise. */
export function shapeTensor(x: Tensor): Tensor {
  const g = x.graph;
  if (isStatic(x.shape)) return g.ints(x.shape);
  return g.addNode({ op: 'Shape', inputs: [x], outputs: [{ shape: [x.rank], dtype: 'int64' }] }).outputs[0];
}

/** Sums a gradient of broadcast shape back to the shape of `like`. */
export function reduceTo(grad: Tensor, like: Tensor): Tensor {
  const out = grad.shape;
  const target = like.shape;
  const lead = out.length - target.length;
  if (lead < 0) fail('reduceTo', `gradient ${fmtShape(out)} has lower rank than ${fmtShape(target)}`);
  const axes: number[] = [];
  for (let i = 0; i < lead; i++) axes.push(i);
  for (let i = 0; i < target.length; i++) if (target[i] === 1 && out[lead + i] !== 1) axes.push(lead + i);
  if (axes.length === 0) return grad;
  const g = grad.graph;
  const reducedShape = out.map((d, i) => (axes.includes(i) ? 1 : d));
  const summed = g.addNode({
    op: 'ReduceSum',
    inputs: [grad, g.ints(axes)],
    outputs: [{ shape: reducedShape, dtype: grad.dtype }],
    attrs: { keepdims: attr.int(1) },
  }).outputs[0];
  if (lead === 0) return summed;
  return g.addNode({ op: 'Reshape', inputs: [summed, shapeTensor(like)], outputs: [{ shape: target, dtype: grad.dtype }] }).outputs[0];
}

export function sameDType(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (t.dtype !== ts[0].dtype) fail(op, `dtype mismatch: ${ts.map(String).join(' vs ')}`);
}

/**
 * A composite op: build() appends standard ops (marked internal, skipped by the gradient pass); the
 * result is re-exposed through an Identity node that carries the composite's own gradient rule over
 * its logical inputs. Used where a closed-form gradient is cheaper or more exact than the chain of parts.
 */
export function compositeOp(
  inputs: readonly Tensor[],
  build: () => Tensor,
  grad: (gy: Tensor) => readonly (Tensor | undefined)[],
): Tensor {
  const g = inputs[0].graph;
  const body = g.composite(build);
  return g.addNode({
    op: 'Identity',
    inputs: [body],
    outputs: [{ shape: body.shape, dtype: body.dtype }],
    logicalInputs: inputs,
    grad: (_n, [gy]) => (gy ? grad(gy) : inputs.map(() => undefined)),
  }).outputs[0];
}
