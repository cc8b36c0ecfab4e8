/**
 * Reverse-mode automatic differentiation over a Graph.
 *
 * grad(loss, wrt) appends, to the same graph, nodes computing dloss/dw for every w in wrt:
 *   dL/dL = 1; walking the forward nodes in reverse topological order, each node whose outputs
 *   carry a gradient and whose (logical) inputs depend on some w applies its rule
 *   dL/dinput_j = rule_j(node, dL/doutputs); gradients reaching one tensor along several paths are summed.
 * Only nodes on a path from wrt to loss are differentiated. Inner nodes of composite ops are
 * skipped: the composite's rule covers them. A w that the loss does not depend on gets zeros.
 */
import { GraphError, type Tensor, isFloat } from './graph';
import { add } from './ops/elementwise';
import { zerosLike } from './ops/shape';

export function grad(loss: Tensor, wrt: readonly Tensor[], seed?: Tensor): Tensor[] {
  const g = loss.graph;
  if (!seed && loss.rank !== 0) throw new GraphError(`grad: loss must be a scalar, got ${loss} (pass a seed gradient otherwise)`);
  for (const w of wrt) {
    if (w.graph !== g) throw new GraphError(`grad: ${w} belongs to another graph`);
    if (!isFloat(w.dtype)) throw new GraphError(`grad: cannot differentiate with respect to ${w} (not a float tensor)`);
  }
  const forward = g.nodes.slice(); // gradient nodes appended below are not revisited
  const logical = (n: (typeof forward)[number]) => n.logicalInputs ?? n.inputs;

  // Tensors that depend on some w.
  const dependsOnWrt = new Set<string>(wrt.map((w) => w.name));
  for (const n of forward) {
    if (logical(n).some((t) => dependsOnWrt.has(t.name)) || n.inputs.some((t) => dependsOnWrt.has(t.name))) {
      for (const o of n.outputs) dependsOnWrt.add(o.name);
    }
  }
  if (!dependsOnWrt.has(loss.name)) return wrt.map(zerosLike);

  const pending = new Map<string, Tensor[]>();
  const accumulate = (t: Tensor, gt: Tensor) => {
    const list = pending.get(t.name);
    if (list) list.push(gt);
    else pending.set(t.name, [gt]);
  };
  const total = (t: Tensor): Tensor | undefined => {
    const list = pending.get(t.name);
    if (!list) return undefined;
    const sum = list.reduce((p, q) => add(p, q));
    pending.set(t.name, [sum]);
    return sum;
  };
  accumulate(loss, seed ?? g.scalar(1, loss.dtype));

  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i];
    if (node.internal) continue;
    const ins = logical(node);
    if (!ins.some((t) => dependsOnWrt.has(t.name))) continue;
    const gOut = node.outputs.map(total);
    if (gOut.every((x) => !x)) continue;
    if (!node.grad) {
      throw new GraphError(`grad: no gradient rule for ${node.op} (node ${node.name}), which lies between the loss and ${wrt.map((w) => w.name).join(', ')}`);
    }
    const gIn = node.grad(node, gOut);
    ins.forEach((t, j) => {
      const gt = gIn[j];
      if (gt && dependsOnWrt.has(t.name)) accumulate(t, gt);
    });
  }
  return wrt.map((w) => total(w) ?? zerosLike(w));
}
