/**
 * Ops for inference graphs with symbolic dims (batch, sequence, past length). None has a gradient
 * rule: they feed masks and indices, or pick rows of outputs, and the gradient pass never needs them.
 *   dimOf(x, a)        n = x.shape[a] as an int64 scalar (Shape with start/end, then Squeeze)
 *   arange(x, a, s)    [s, s + 1, ..., s + n - 1], n = x.shape[a], int64 [n] (Range)
 *   causalMaskAny(S)   S[..., q, k] = -inf where k > q + (Tk - Tq); like causalMask, also for symbolic T
 *                      (Tq = 1, one new token after a cache: nothing to mask, S unchanged)
 *   takeLast(x, a)     x[..., -1, ...] along axis a, the axis removed (Gather with index -1)
 *   cos(x), sin(x)     elementwise (Cos, Sin): the rotary tables of positions (rope.ts), never differentiated
 * Static dims take the constant path, so a static graph stays free of Shape nodes.
 */
import type { Tensor } from '../graph';
import { attr, normAxis } from './util';
import { add, greater, not, sub, where } from './elementwise';
import { causalMask } from './nn';
import { range, unsqueeze } from './shape';

export function dimOf(x: Tensor, axis: number): Tensor {
  const a = normAxis('dimOf', axis, x.rank);
  const d = x.shape[a];
  const g = x.graph;
  if (typeof d === 'number') return g.scalar(d, 'int64');
  const shape1 = g.addNode({
    op: 'Shape',
    inputs: [x],
    outputs: [{ shape: [1], dtype: 'int64' }],
    attrs: { start: attr.int(a), end: attr.int(a + 1) },
  }).outputs[0];
  return g.addNode({ op: 'Squeeze', inputs: [shape1, g.ints([0])], outputs: [{ shape: [], dtype: 'int64' }] }).outputs[0];
}

/** start, start + 1, ..., start + n - 1 (int64 [n]) with n = x.shape[axis]; start is an int64 scalar. */
export function arange(x: Tensor, axis: number, start?: Tensor): Tensor {
  const a = normAxis('arange', axis, x.rank);
  const g = x.graph;
  const n = x.shape[a];
  if (typeof n === 'number' && !start) return range(g, n);
  const s = start ?? g.scalar(0, 'int64');
  return g.addNode({
    op: 'Range',
    inputs: [s, add(s, dimOf(x, a)), g.scalar(1, 'int64')],
    outputs: [{ shape: [n], dtype: 'int64' }],
  }).outputs[0];
}

/** Causal mask over scores [..., Tq, Tk]: queries are the last Tq of Tk positions. */
export function causalMaskAny(scores: Tensor): Tensor {
  const [tq, tk] = scores.shape.slice(-2);
  if (typeof tq === 'number' && typeof tk === 'number') return causalMask(scores);
  if (tq === 1) return scores; // one query, the newest position: it sees every key
  const r = scores.rank;
  const q = arange(scores, r - 2, tq === tk ? undefined : sub(dimOf(scores, r - 1), dimOf(scores, r - 2))); // [Tq]
  const k = arange(scores, r - 1); // [Tk]
  const allowed = not(greater(unsqueeze(k, [0]), unsqueeze(q, [1]))); // [Tq, Tk]: k <= q
  return where(allowed, scores, -Infinity);
}

/** x[:, ..., -1, ...] along `axis`, that axis removed: [B, T, d] -> [B, d] for axis 1. */
export function takeLast(x: Tensor, axis: number): Tensor {
  const a = normAxis('takeLast', axis, x.rank);
  const g = x.graph;
  return g.addNode({
    op: 'Gather',
    inputs: [x, g.scalar(-1, 'int64')],
    outputs: [{ shape: x.shape.filter((_, i) => i !== a), dtype: x.dtype }],
    attrs: { axis: attr.int(a) },
  }).outputs[0];
}

/** Elementwise cosine (no gradient rule: used on positions only, see rope.ts). */
export function cos(x: Tensor): Tensor {
  return x.graph.addNode({ op: 'Cos', inputs: [x], outputs: [{ shape: x.shape, dtype: x.dtype }] }).outputs[0];
}

/** Elementwise sine (no gradient rule: used on positions only, see rope.ts). */
export function sin(x: Tensor): Tensor {
  return x.graph.addNode({ op: 'Sin', inputs: [x], outputs: [{ shape: x.shape, dtype: x.dtype }] }).outputs[0];
}
