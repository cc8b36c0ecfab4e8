/**
 * Shape ops, gathers and reductions, with their gradients (g = dL/dy):
 *   reshape    dx = reshape(g, shape(x))
 *   transpose  dx = transpose(g, inverse(perm))
 *   slice      dx = pad(g) with zeros back to x's extent on the sliced axes (step 1)
 *   split      dx = concat(g_0 .. g_k) (zeros for outputs without gradient)
 *   concat     dx_i = the i-th slice of g along the axis
 *   unsqueeze  dx = squeeze(g);  squeeze: dx = unsqueeze(g)
 *   expand     dx = g summed back to x's shape
 *   gather     (axis 0, embedding lookup) dTable = ScatterND(zeros, ids, g, reduction = add); no gradient to ids
 *   reduceSum  dx = expand(g, shape(x));   reduceMean: dx = expand(g, shape(x)) / count
 */
import { type Dim, type DType, type Shape, type Tensor, fmtShape, isStatic, numel, typedArrayFor } from '../graph';
import { attr, fail, normAxis, reduceTo, shapeTensor } from './util';
import { div } from './elementwise';

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const out: Dim[] = shape.map((d, i) => (d === 0 ? x.shape[i] : d));
  const inferIdx = out.indexOf(-1);
  if (out.filter((d) => d === -1).length > 1) fail('Reshape', `more than one -1 in ${fmtShape(shape)}`);
  if (inferIdx >= 0) {
    if (isStatic(x.shape) && out.every((d, i) => i === inferIdx || typeof d === 'number')) {
      const known = out.reduce<number>((p, d, i) => (i === inferIdx ? p : p * (d as number)), 1);
      const total = numel(x.shape);
      if (known === 0 || total % known !== 0) fail('Reshape', `cannot reshape ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
      out[inferIdx] = total / known;
    } else out[inferIdx] = x.graph.fresh('dim');
  } else if (isStatic(x.shape) && isStatic(out) && numel(out) !== numel(x.shape)) {
    fail('Reshape', `cannot reshape ${fmtShape(x.shape)} (${numel(x.shape)} elements) to ${fmtShape(out)}`);
  }
  return reshapeTo(x, out, x.graph.ints(shape));
}

function reshapeTo(x: Tensor, shape: Shape, shapeT: Tensor): Tensor {
  return x.graph.addNode({
    op: 'Reshape',
    inputs: [x, shapeT],
    outputs: [{ shape, dtype: x.dtype }],
    grad: (n, [g]) => [g && reshapeTo(g, n.inputs[0].shape, shapeTensor(n.inputs[0])), undefined],
  }).outputs[0];
}

export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    fail('Transpose', `perm [${perm}] is not a permutation of the ${x.rank} axes of ${x}`);
  }
  return x.graph.addNode({
    op: 'Transpose',
    inputs: [x],
    outputs: [{ shape: perm.map((p) => x.shape[p]), dtype: x.dtype }],
    attrs: { perm: attr.ints(perm) },
    grad: (_n, [g]) => {
      if (!g) return [undefined];
      const inv = new Array<number>(perm.length);
      perm.forEach((p, i) => (inv[p] = i));
      return [transpose(g, inv)];
    },
  }).outputs[0];
}

/** Swaps the last two axes. */
export function transposeLast2(x: Tensor): Tensor {
  const perm = x.shape.map((_, i) => i);
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1], perm[x.rank - 2]];
  return transpose(x, perm);
}

/** x[starts:ends] along axes, step 1. Sliced axes must have static extents. */
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[], axes: readonly number[]): Tensor {
  const shape: Dim[] = [...x.shape];
  const begin: number[] = [];
  const end: number[] = [];
  axes.forEach((a0, k) => {
    const a = normAxis('Slice', a0, x.rank);
    const d = x.shape[a];
    if (typeof d !== 'number') fail('Slice', `axis ${a} of ${x} is symbolic`);
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    begin.push(clamp(starts[k]));
    end.push(Math.max(clamp(ends[k]), clamp(starts[k])));
    shape[a] = end[k] - begin[k];
  });
  const g = x.graph;
  return g.addNode({
    op: 'Slice',
    inputs: [x, g.ints(begin), g.ints(end), g.ints(axes.map((a) => normAxis('Slice', a, x.rank)))],
    outputs: [{ shape, dtype: x.dtype }],
    grad: (n, [gy]) => {
      if (!gy) return [undefined];
      const pads = new Array<number>(2 * x.rank).fill(0);
      axes.forEach((a0, k) => {
        const a = normAxis('Slice', a0, x.rank);
        pads[a] = begin[k];
        pads[x.rank + a] = (x.shape[a] as number) - end[k];
      });
      const dx = g.addNode({
        op: 'Pad',
        inputs: [gy, g.ints(pads)],
        outputs: [{ shape: n.inputs[0].shape, dtype: gy.dtype }],
        attrs: { mode: attr.string('constant') },
      }).outputs[0];
      return [dx];
    },
  }).outputs[0];
}

export function split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
  const a = normAxis('Split', axis, x.rank);
  const d = x.shape[a];
  if (typeof d === 'number' && sizes.reduce((p, s) => p + s, 0) !== d) {
    fail('Split', `sizes [${sizes}] do not add up to dim ${a} of ${x}`);
  }
  const g = x.graph;
  return [...g.addNode({
    op: 'Split',
    inputs: [x, g.ints(sizes)],
    outputs: sizes.map((s) => ({ shape: x.shape.map((dd, i) => (i === a ? s : dd)), dtype: x.dtype })),
    attrs: { axis: attr.int(a) },
    grad: (n, gs) => {
      if (gs.every((v) => !v)) return [undefined];
      return [concat(gs.map((v, i) => v ?? zerosLike(n.outputs[i])), a)];
    },
  }).outputs];
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) fail('Concat', 'no inputs');
  const rank = xs[0].rank;
  const a = normAxis('Concat', axis, rank);
  const shape: Dim[] = [...xs[0].shape];
  let total: Dim = 0;
  for (const x of xs) {
    if (x.rank !== rank || x.dtype !== xs[0].dtype) fail('Concat', `inputs differ: ${xs.map(String).join(', ')}`);
    x.shape.forEach((d, i) => {
      if (i !== a && typeof d === 'number' && typeof shape[i] === 'number' && d !== shape[i]) {
        fail('Concat', `dim ${i} differs: ${xs.map((t) => fmtShape(t.shape)).join(' vs ')}`);
      }
    });
    const d = x.shape[a];
    total = typeof d === 'number' && typeof total === 'number' ? total + d : x.graph.fresh('dim');
  }
  shape[a] = total;
  return xs[0].graph.addNode({
    op: 'Concat',
    inputs: xs,
    outputs: [{ shape, dtype: xs[0].dtype }],
    attrs: { axis: attr.int(a) },
    grad: (n, [g]) => {
      if (!g) return n.inputs.map(() => undefined);
      const sizes = n.inputs.map((t) => t.shape[a]);
      if (!sizes.every((s): s is number => typeof s === 'number')) fail('Concat', 'gradient needs static sizes on the concat axis');
      return split(g, sizes, a);
    },
  }).outputs[0];
}

export function unsqueeze(x: Tensor, axes: readonly number[]): Tensor {
  const rank = x.rank + axes.length;
  const norm = axes.map((a) => normAxis('Unsqueeze', a, rank)).sort((p, q) => p - q);
  const shape: Dim[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) shape.push(norm.includes(i) ? 1 : x.shape[j++]);
  const g = x.graph;
  return g.addNode({
    op: 'Unsqueeze',
    inputs: [x, g.ints(norm)],
    outputs: [{ shape, dtype: x.dtype }],
    grad: (_n, [gy]) => [gy && squeeze(gy, norm), undefined],
  }).outputs[0];
}

export function squeeze(x: Tensor, axes: readonly number[]): Tensor {
  const norm = axes.map((a) => normAxis('Squeeze', a, x.rank));
  for (const a of norm) if (x.shape[a] !== 1) fail('Squeeze', `axis ${a} of ${x} is not 1`);
  const g = x.graph;
  return g.addNode({
    op: 'Squeeze',
    inputs: [x, g.ints(norm)],
    outputs: [{ shape: x.shape.filter((_, i) => !norm.includes(i)), dtype: x.dtype }],
    grad: (_n, [gy]) => [gy && unsqueeze(gy, norm), undefined],
  }).outputs[0];
}

export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const g = x.graph;
  const out = shape.map((d, i) => {
    const xd = x.shape[i - (shape.length - x.rank)];
    return d === 1 && xd !== undefined ? xd : d;
  });
  return g.addNode({
    op: 'Expand',
    inputs: [x, g.ints(shape)],
    outputs: [{ shape: out, dtype: x.dtype }],
    grad: (n, [gy]) => [gy && reduceTo(gy, n.inputs[0]), undefined],
  }).outputs[0];
}

/** Rows of `table` picked by integer `ids` (axis 0): out shape = ids.shape ++ table.shape[1:]. */
export function gather(table: Tensor, ids: Tensor): Tensor {
  if (ids.dtype !== 'int64' && ids.dtype !== 'int32') fail('Gather', `indices must be int64/int32, got ${ids}`);
  const g = table.graph;
  const rest = table.shape.slice(1);
  return g.addNode({
    op: 'Gather',
    inputs: [table, ids],
    outputs: [{ shape: [...ids.shape, ...rest], dtype: table.dtype }],
    attrs: { axis: attr.int(0) },
    grad: (n, [gy]) => {
      if (!gy) return [undefined, undefined];
      const [tbl, idx] = n.inputs;
      if (!isStatic(tbl.shape)) fail('Gather', `gradient needs a static table shape, got ${tbl}`);
      const flatIds = reshape(idx.dtype === 'int64' ? idx : castInt64(idx), [-1, 1]);
      const flatG = reshape(gy, [-1, ...(rest as number[])]);
      const dTable = g.addNode({
        op: 'ScatterND',
        inputs: [zerosLike(tbl), flatIds, flatG],
        outputs: [{ shape: tbl.shape, dtype: tbl.dtype }],
        attrs: { reduction: attr.string('add') },
      }).outputs[0];
      return [dTable, undefined];
    },
  }).outputs[0];
}

function castInt64(x: Tensor): Tensor {
  return x.graph.addNode({ op: 'Cast', inputs: [x], outputs: [{ shape: x.shape, dtype: 'int64' }], attrs: { to: attr.int(7) } }).outputs[0];
}

/** Zeros with x's shape and dtype (ConstantOfShape). */
export function zerosLike(x: Tensor): Tensor {
  return filled(x.shape, x.dtype, 0, x);
}

export function filled(shape: Shape, dtype: DType, value: number, like?: Tensor): Tensor {
  const g = like?.graph;
  if (!g) fail('ConstantOfShape', 'needs a graph');
  const shapeT = isStatic(shape) ? g.ints(shape) : shapeTensor(like!);
  const v = typedArrayFor(dtype, [value]);
  return g.addNode({
    op: 'ConstantOfShape',
    inputs: [shapeT],
    outputs: [{ shape, dtype }],
    attrs: { value: { kind: 'tensor', value: { name: 'value', dtype, dims: [1], raw: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) } } },
  }).outputs[0];
}

function reduceShape(op: string, x: Tensor, axes: readonly number[], keepdims: boolean): { axes: number[]; shape: Dim[] } {
  const norm = axes.map((a) => normAxis(op, a, x.rank));
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!norm.includes(i)) shape.push(d);
    else if (keepdims) shape.push(1);
  });
  return { axes: norm, shape };
}

/** Gradient of a reduction: g (with or without kept dims) broadcast back over x. */
function expandBack(gy: Tensor, x: Tensor, axes: readonly number[], keepdims: boolean): Tensor {
  const kept = keepdims ? gy : unsqueeze(gy, axes);
  return x.graph.addNode({
    op: 'Expand',
    inputs: [kept, shapeTensor(x)],
    outputs: [{ shape: x.shape, dtype: x.dtype }],
    grad: (n, [g2]) => [g2 && reduceTo(g2, n.inputs[0]), undefined],
  }).outputs[0];
}

export function reduceSum(x: Tensor, axes: readonly number[], keepdims = true): Tensor {
  const r = reduceShape('ReduceSum', x, axes, keepdims);
  const g = x.graph;
  return g.addNode({
    op: 'ReduceSum',
    inputs: [x, g.ints(r.axes)],
    outputs: [{ shape: r.shape, dtype: x.dtype }],
    attrs: { keepdims: attr.int(keepdims ? 1 : 0) },
    grad: (n, [gy]) => [gy && expandBack(gy, n.inputs[0], r.axes, keepdims), undefined],
  }).outputs[0];
}

export function reduceMean(x: Tensor, axes: readonly number[], keepdims = true): Tensor {
  const r = reduceShape('ReduceMean', x, axes, keepdims);
  const dims = r.axes.map((a) => x.shape[a]);
  if (!dims.every((d): d is number => typeof d === 'number')) fail('ReduceMean', `reduced axes of ${x} must be static`);
  const count = dims.reduce((p, d) => p * d, 1);
  return x.graph.addNode({
    op: 'ReduceMean',
    inputs: [x],
    outputs: [{ shape: r.shape, dtype: x.dtype }],
    attrs: { axes: attr.ints(r.axes), keepdims: attr.int(keepdims ? 1 : 0) },
    grad: (n, [gy]) => [gy && div(expandBack(gy, n.inputs[0], r.axes, keepdims), count)],
  }).outputs[0];
}

/** Max over axes; no gradient (used for numerical stabilisation and evaluation only). */
export function reduceMax(x: Tensor, axes: readonly number[], keepdims = true): Tensor {
  const r = reduceShape('ReduceMax', x, axes, keepdims);
  return x.graph.addNode({
    op: 'ReduceMax',
    inputs: [x],
    outputs: [{ shape: r.shape, dtype: x.dtype }],
    attrs: { axes: attr.ints(r.axes), keepdims: attr.int(keepdims ? 1 : 0) },
  }).outputs[0];
}

export function argMax(x: Tensor, axis: number, keepdims = false): Tensor {
  const r = reduceShape('ArgMax', x, [axis], keepdims);
  return x.graph.addNode({
    op: 'ArgMax',
    inputs: [x],
    outputs: [{ shape: r.shape, dtype: 'int64' }],
    attrs: { axis: attr.int(r.axes[0]), keepdims: attr.int(keepdims ? 1 : 0) },
  }).outputs[0];
}

/** 0, 1, ..., n-1 as int64. */
export function range(g: Tensor['graph'], n: number): Tensor {
  return g.constant(Array.from({ length: n }, (_, i) => i), [n], 'int64');
}
