/**
 * The tensor graph: named inputs (with shapes and dtypes), parameters, constants and nodes that map
 * one to one onto ONNX nodes. Ops (ops/*.ts) append nodes with inferred output shapes; grad.ts walks
 * the nodes backwards and appends gradient nodes to the same graph; toOnnx() serialises it.
 *
 * Shapes: every dim is a number or a symbolic name (string); symbolic dims become ONNX dim_params.
 * Nodes are appended in creation order, which is therefore a topological order.
 */
import { encodeModel, type OnnxAttr, type OnnxDim, type OnnxGraph, type OnnxNode, type OnnxTensor } from './onnx';

export type DType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'bool' | 'uint8';
export type Dim = number | string;
export type Shape = readonly Dim[];

export type TypedArrayOf<D extends DType> = D extends 'float32' ? Float32Array
  : D extends 'float64' ? Float64Array
  : D extends 'int64' ? BigInt64Array
  : D extends 'int32' ? Int32Array
  : D extends 'float16' ? Uint16Array
  : Uint8Array;
export type AnyTypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint16Array | Uint8Array;

export const isFloat = (d: DType): boolean => d === 'float32' || d === 'float64' || d === 'float16';

export function typedArrayFor(dtype: DType, values: ArrayLike<number> | number): AnyTypedArray {
  const n = typeof values === 'number' ? values : values.length;
  const src = typeof values === 'number' ? undefined : values;
  switch (dtype) {
    case 'float32': return src ? Float32Array.from(src) : new Float32Array(n);
    case 'float64': return src ? Float64Array.from(src) : new Float64Array(n);
    case 'int32': return src ? Int32Array.from(src) : new Int32Array(n);
    case 'int64': return src ? BigInt64Array.from(Array.from(src, (v) => BigInt(Math.trunc(v)))) : new BigInt64Array(n);
    case 'bool':
    case 'uint8': return src ? Uint8Array.from(src) : new Uint8Array(n);
    case 'float16': throw new Error('float16 constants must be given as raw Uint16Array bits');
  }
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') throw new Error(`numel of a symbolic shape [${shape.join(',')}]`);
    n *= d;
  }
  return n;
}

export const fmtShape = (s: Shape): string => `[${s.join(',')}]`;
export const isStatic = (s: Shape): s is readonly number[] => s.every((d) => typeof d === 'number');

export class GraphError extends Error {}

/** A value in the graph: a graph input, an initializer or a node output. */
export class Tensor {
  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly shape: Shape,
    readonly dtype: DType,
    readonly producer?: Node,
  ) {}
  get rank(): number {
    return this.shape.length;
  }
  toString(): string {
    return `${this.name}:${this.dtype}${fmtShape(this.shape)}`;
  }
}

/** Gradient rule: given the gradients of the node's outputs (undefined = no gradient flows there),
 * return the gradient for each of its (logical) inputs, or undefined where none is defined. */
export type GradRule = (node: Node, gOut: readonly (Tensor | undefined)[]) => readonly (Tensor | undefined)[];

export interface Node {
  readonly name: string;
  readonly op: string;
  readonly domain?: string;
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly attrs: Readonly<Record<string, OnnxAttr>>;
  /** Gradient rule for this node; composite ops put theirs on their last node. */
  readonly grad?: GradRule;
  /** For the last node of a composite op: the composite's inputs, which its grad rule differentiates. */
  readonly logicalInputs?: readonly Tensor[];
  /** Set on the inner nodes of a composite op; the gradient pass skips them. */
  internal?: boolean;
}

export interface InputSpec {
  name: string;
  shape: Shape;
  dtype: DType;
}

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Tensor[] = [];
  readonly params: Tensor[] = [];
  readonly outerValues: Tensor[] = [];
  readonly outputs: { name: string; tensor: Tensor }[] = [];
  readonly initializers = new Map<string, { tensor: Tensor; data: AnyTypedArray }>();
  private names = new Set<string>();
  private counter = 0;
  private scalarCache = new Map<string, Tensor>();

  constructor(readonly name = 'memgen') {}

  fresh(hint: string): string {
    let n: string;
    do n = `${hint}_${this.counter++}`;
    while (this.names.has(n));
    return n;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new GraphError(`duplicate tensor name '${name}'`);
    this.names.add(name);
    return name;
  }

  /** A graph input that the caller feeds on every run. */
  input(name: string, shape: Shape, dtype: DType = 'float32'): Tensor {
    const t = new Tensor(this, this.claim(name), [...shape], dtype);
    this.inputs.push(t);
    return t;
  }

  /** A trainable parameter: a graph input (fed each run) that gradients can be taken against. */
  param(name: string, shape: Shape, dtype: DType = 'float32'): Tensor {
    const t = this.input(name, shape, dtype);
    this.params.push(t);
    return t;
  }

  /**
   * A value this graph uses from an enclosing graph (ONNX outer scope): only meaningful for graphs
   * used as subgraphs (Loop/If bodies). It is neither an input nor an initializer of this graph.
   */
  outer(name: string, shape: Shape, dtype: DType = 'float32'): Tensor {
    const t = new Tensor(this, this.claim(name), [...shape], dtype);
    this.outerValues.push(t);
    return t;
  }

  /** A named tensor baked into the model (frozen weights, constants). */
  initializer(name: string, data: AnyTypedArray, shape: readonly number[], dtype?: DType): Tensor {
    const dt = dtype ?? dtypeOfArray(data);
    if (numel(shape) !== data.length) {
      throw new GraphError(`initializer '${name}': ${data.length} values for shape ${fmtShape(shape)}`);
    }
    const t = new Tensor(this, this.claim(name), [...shape], dt);
    this.initializers.set(name, { tensor: t, data });
    return t;
  }

  constant(values: ArrayLike<number> | AnyTypedArray, shape: readonly number[], dtype: DType = 'float32'): Tensor {
    const data = ArrayBuffer.isView(values) && dtypeOfArray(values as AnyTypedArray) === dtype
      ? (values as AnyTypedArray)
      : typedArrayFor(dtype, values as ArrayLike<number>);
    return this.initializer(this.fresh('const'), data, shape, dtype);
  }

  /** A scalar constant of the given dtype, shared across uses. */
  scalar(value: number, dtype: DType = 'float32'): Tensor {
    const key = `${dtype}:${Object.is(value, -0) ? '-0' : value}`;
    let t = this.scalarCache.get(key);
    if (!t) {
      t = this.constant([value], [], dtype);
      this.scalarCache.set(key, t);
    }
    return t;
  }

  /** A 1-D int64 constant (axes, shapes, starts, ...). */
  ints(values: readonly number[]): Tensor {
    return this.constant(values, [values.length], 'int64');
  }

  addNode(spec: {
    op: string;
    inputs: readonly Tensor[];
    outputs: readonly { shape: Shape; dtype: DType; name?: string }[];
    attrs?: Record<string, OnnxAttr>;
    domain?: string;
    grad?: GradRule;
    logicalInputs?: readonly Tensor[];
  }): Node {
    for (const t of spec.inputs) {
      if (t.graph !== this) throw new GraphError(`${spec.op}: input ${t.name} belongs to another graph`);
    }
    const outputs: Tensor[] = [];
    const node: Node = {
      name: this.fresh(spec.op),
      op: spec.op,
      domain: spec.domain,
      inputs: spec.inputs,
      outputs,
      attrs: spec.attrs ?? {},
      grad: spec.grad,
      logicalInputs: spec.logicalInputs,
    };
    for (const o of spec.outputs) {
      outputs.push(new Tensor(this, this.claim(o.name ?? this.fresh(spec.op.toLowerCase())), [...o.shape], o.dtype, node));
    }
    this.nodes.push(node);
    return node;
  }

  /** Marks a tensor as a graph output under the given name (an Identity node renames it). */
  output(tensor: Tensor, name?: string): Tensor {
    let t = tensor;
    const isInputOrInit = this.inputs.includes(t) || this.initializers.has(t.name);
    if ((name && name !== t.name) || isInputOrInit) {
      t = this.addNode({ op: 'Identity', inputs: [tensor], outputs: [{ shape: tensor.shape, dtype: tensor.dtype, name }], grad: (_n, g) => [g[0]] }).outputs[0];
    }
    if (this.outputs.some((o) => o.name === t.name)) throw new GraphError(`duplicate graph output '${t.name}'`);
    this.outputs.push({ name: t.name, tensor: t });
    return t;
  }

  /** Runs build() and marks every node it appends as internal to a composite op. */
  composite<T>(build: () => T): T {
    const start = this.nodes.length;
    const result = build();
    for (let i = start; i < this.nodes.length; i++) this.nodes[i].internal = true;
    return result;
  }

  /** The graph's signature: the inputs a caller must feed. */
  inputSpecs(): InputSpec[] {
    return this.inputs.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype }));
  }

  outputSpecs(): InputSpec[] {
    return this.outputs.map((o) => ({ name: o.name, shape: o.tensor.shape, dtype: o.tensor.dtype }));
  }

  toOnnxGraph(): OnnxGraph {
    if (this.outputs.length === 0) throw new GraphError('graph has no outputs');
    // Only nodes an output depends on are emitted.
    const needed = new Set<string>(this.outputs.map((o) => o.name));
    const keep: Node[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i];
      if (n.outputs.some((o) => needed.has(o.name))) {
        keep.push(n);
        for (const t of n.inputs) needed.add(t.name);
        for (const a of Object.values(n.attrs)) if (a.kind === 'graph') for (const name of freeNames(a.value)) needed.add(name);
      }
    }
    keep.reverse();
    const nodes: OnnxNode[] = keep.map((n) => ({
      name: n.name,
      opType: n.op,
      domain: n.domain,
      inputs: n.inputs.map((t) => t.name),
      outputs: n.outputs.map((t) => t.name),
      attrs: n.attrs,
    }));
    const initializers: OnnxTensor[] = [];
    for (const [name, { tensor, data }] of this.initializers) {
      if (!needed.has(name)) continue;
      initializers.push({ name, dtype: tensor.dtype, dims: tensor.shape as number[], raw: rawBytes(data) });
    }
    const dim = (d: Dim): OnnxDim => d;
    return {
      name: this.name,
      nodes,
      initializers,
      inputs: this.inputs.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape.map(dim) })),
      outputs: this.outputs.map((o) => ({ name: o.name, dtype: o.tensor.dtype, shape: o.tensor.shape.map(dim) })),
    };
  }

  toOnnx(): Uint8Array {
    return encodeModel(this.toOnnxGraph());
  }
}

/** Names a subgraph uses from its enclosing scope (used by none of its own inputs, initializers, node outputs). */
function freeNames(sub: OnnxGraph): string[] {
  const own = new Set<string>([...sub.inputs.map((i) => i.name), ...sub.initializers.map((t) => t.name)]);
  const free: string[] = [];
  for (const n of sub.nodes) {
    for (const i of n.inputs) if (i && !own.has(i)) free.push(i);
    for (const a of Object.values(n.attrs)) if (a.kind === 'graph') free.push(...freeNames(a.value).filter((x) => !own.has(x)));
    for (const o of n.outputs) own.add(o);
  }
  return free;
}

export function dtypeOfArray(a: AnyTypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Uint16Array) return 'float16';
  return 'uint8';
}

/** Little-endian bytes of a typed array (all supported hosts are little-endian; checked once). */
function rawBytes(a: AnyTypedArray): Uint8Array {
  if (!LITTLE_ENDIAN) throw new Error('big-endian hosts are not supported');
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
