/**
 * Elementwise ops and their gradients (g = dL/dy, y = the op's output):
 *   add      y = a + b           da = g,              db = g
 *   sub      y = a - b           da = g,              db = -g
 *   mul      y = a * b           da = g * b,          db = g * a
 *   div      y = a / b           da = g / b,          db = -g * y / b
 *   neg      y = -x              dx = -g
 *   pow      y = x ^ p           dx = g * p * x^(p-1), dp = g * y * ln x
 *   sqrt     y = sqrt x          dx = g / (2 y)
 *   rsqrt    y = 1 / sqrt x      dx = -g * y^3 / 2
 *   recip    y = 1 / x           dx = -g * y^2
 *   exp      y = e^x             dx = g * y
 *   log      y = ln x            dx = g / x
 *   tanh     y = tanh x          dx = g * (1 - y^2)
 *   erf      y = erf x           dx = g * 2/sqrt(pi) * exp(-x^2)
 *   sigmoid  y = 1/(1+e^-x)      dx = g * y * (1 - y)
 *   silu     y = x * sigmoid x   (composed of mul and sigmoid)
 *   relu     y = max(x, 0)       dx = g where x > 0, else 0
 *   gelu     y = x/2 (1 + tanh u), u = c (x + 0.044715 x^3), c = sqrt(2/pi)   (GPT-2's tanh form)
 *                                dx = g * (0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2)), t = tanh u
 *   where    y = c ? a : b       da = c ? g : 0,      db = c ? 0 : g
 *   cast     y = x as T          dx = g as x's dtype (float to float only)
 * Binary ops broadcast; their gradients are summed back to each input's shape (util.reduceTo).
 */
import { type DType, type GradRule, type Tensor, isFloat } from '../graph';
import { attr, broadcastShapes, compositeOp, fail, reduceTo, sameDType } from './util';
import { OnnxDataType } from '../onnx';

type Operand = Tensor | number;

function lift(like: Tensor, v: Operand): Tensor {
  return typeof v === 'number' ? like.graph.scalar(v, like.dtype) : v;
}

function unary(op: string, x: Tensor, grad?: GradRule, dtype: DType = x.dtype): Tensor {
  return x.graph.addNode({ op, inputs: [x], outputs: [{ shape: x.shape, dtype }], grad }).outputs[0];
}

function binary(op: string, a: Tensor, b: Tensor, grad?: GradRule, dtype?: DType): Tensor {
  sameDType(op, a, b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  return a.graph.addNode({ op, inputs: [a, b], outputs: [{ shape, dtype: dtype ?? a.dtype }], grad }).outputs[0];
}

function operands(a: Operand, b: Operand): [Tensor, Tensor] {
  if (typeof a === 'number' && typeof b === 'number') fail('binary op', 'at least one operand must be a tensor');
  const like = (typeof a === 'number' ? b : a) as Tensor;
  return [lift(like, a), lift(like, b)];
}

export function add(a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  return binary('Add', x, y, (n, [g]) => [g && reduceTo(g, n.inputs[0]), g && reduceTo(g, n.inputs[1])]);
}

export function sub(a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  return binary('Sub', x, y, (n, [g]) => [g && reduceTo(g, n.inputs[0]), g && reduceTo(neg(g), n.inputs[1])]);
}

export function mul(a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  return binary('Mul', x, y, (n, [g]) => {
    const [p, q] = n.inputs;
    return [g && reduceTo(mul(g, q), p), g && reduceTo(mul(g, p), q)];
  });
}

export function div(a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  return binary('Div', x, y, (n, [g]) => {
    const [p, q] = n.inputs;
    const out = n.outputs[0];
    return [g && reduceTo(div(g, q), p), g && reduceTo(neg(div(mul(g, out), q)), q)];
  });
}

export function neg(x: Tensor): Tensor {
  return unary('Neg', x, (_n, [g]) => [g && neg(g)]);
}

export function pow(x: Tensor, p: Operand): Tensor {
  const e = lift(x, p);
  return binary('Pow', x, e, (n, [g]) => {
    if (!g) return [undefined, undefined];
    const [base, exp] = n.inputs;
    const dx = mul(mul(g, exp), pow(base, sub(exp, 1)));
    const dp = mul(mul(g, n.outputs[0]), log(base));
    return [reduceTo(dx, base), reduceTo(dp, exp)];
  });
}

export function sqrt(x: Tensor): Tensor {
  return unary('Sqrt', x, (n, [g]) => [g && div(mul(g, 0.5), n.outputs[0])]);
}

export function reciprocal(x: Tensor): Tensor {
  return unary('Reciprocal', x, (n, [g]) => {
    const y = n.outputs[0];
    return [g && neg(mul(g, mul(y, y)))];
  });
}

/** 1/sqrt(x): not an ONNX op, so it is Reciprocal(Sqrt(x)) and differentiates through both. */
export function rsqrt(x: Tensor): Tensor {
  return reciprocal(sqrt(x));
}

export function exp(x: Tensor): Tensor {
  return unary('Exp', x, (n, [g]) => [g && mul(g, n.outputs[0])]);
}

export function log(x: Tensor): Tensor {
  return unary('Log', x, (n, [g]) => [g && div(g, n.inputs[0])]);
}

export function tanh(x: Tensor): Tensor {
  return unary('Tanh', x, (n, [g]) => {
    const y = n.outputs[0];
    return [g && mul(g, sub(1, mul(y, y)))];
  });
}

export function erf(x: Tensor): Tensor {
  return unary('Erf', x, (n, [g]) => {
    const v = n.inputs[0];
    return [g && mul(g, mul(2 / Math.sqrt(Math.PI), exp(neg(mul(v, v)))))];
  });
}

export function sigmoid(x: Tensor): Tensor {
  return unary('Sigmoid', x, (n, [g]) => {
    const y = n.outputs[0];
    return [g && mul(g, mul(y, sub(1, y)))];
  });
}

export function silu(x: Tensor): Tensor {
  return mul(x, sigmoid(x));
}

export function relu(x: Tensor): Tensor {
  return unary('Relu', x, (n, [g]) => [g && where(greater(n.inputs[0], 0), g, 0)]);
}

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_K = 0.044715;

/** GPT-2's GELU, tanh form, as standard ops; one closed-form gradient rule for the whole composite. */
export function gelu(x: Tensor): Tensor {
  let t!: Tensor;
  return compositeOp(
    [x],
    () => {
      const x3 = mul(mul(x, x), x);
      t = tanh(mul(add(x, mul(x3, GELU_K)), GELU_C));
      return mul(mul(x, 0.5), add(t, 1));
    },
    (gy) => {
      const dt = mul(mul(mul(x, 0.5), sub(1, mul(t, t))), mul(add(mul(mul(x, x), 3 * GELU_K), 1), GELU_C));
      return [mul(gy, add(mul(add(t, 1), 0.5), dt))];
    },
  );
}

export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  if (cond.dtype !== 'bool') fail('Where', `condition must be bool, got ${cond}`);
  const [x, y] = operands(a, b);
  sameDType('Where', x, y);
  const shape = broadcastShapes('Where', broadcastShapes('Where', cond.shape, x.shape), y.shape);
  return cond.graph.addNode({
    op: 'Where',
    inputs: [cond, x, y],
    outputs: [{ shape, dtype: x.dtype }],
    grad: (n, [g]) => {
      if (!g) return [undefined, undefined, undefined];
      const [c, p, q] = n.inputs;
      return [undefined, reduceTo(where(c, g, 0), p), reduceTo(where(c, 0, g), q)];
    },
  }).outputs[0];
}

export function cast(x: Tensor, to: DType): Tensor {
  if (x.dtype === to) return x;
  return x.graph.addNode({
    op: 'Cast',
    inputs: [x],
    outputs: [{ shape: x.shape, dtype: to }],
    attrs: { to: attr.int(OnnxDataType[to]) },
    grad: (n, [g]) => [g && isFloat(n.inputs[0].dtype) && isFloat(to) ? cast(g, n.inputs[0].dtype) : undefined],
  }).outputs[0];
}

// Comparisons and logic: no gradient.
const compare = (op: string) => (a: Operand, b: Operand): Tensor => {
  const [x, y] = operands(a, b);
  return binary(op, x, y, undefined, 'bool');
};
export const equal = compare('Equal');
export const greater = compare('Greater');
export const less = compare('Less');

export function not(x: Tensor): Tensor {
  return unary('Not', x, undefined, 'bool');
}

export function abs(x: Tensor): Tensor {
  return unary('Abs', x, (n, [g]) => [g && where(less(n.inputs[0], 0), neg(g), g)]);
}

export function max(a: Operand, b: Operand): Tensor {
  const [x, y] = operands(a, b);
  return binary('Max', x, y, (n, [g]) => {
    if (!g) return [undefined, undefined];
    const [p, q] = n.inputs;
    const pWins = not(less(p, q));
    return [reduceTo(where(pWins, g, 0), p), reduceTo(where(pWins, 0, g), q)];
  });
}

export function identity(x: Tensor): Tensor {
  return unary('Identity', x, (_n, [g]) => [g]);
}

