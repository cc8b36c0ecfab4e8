/**
 * ONNX writer: a hand-written protobuf encoder for the subset of onnx.proto the engine emits.
 *
 * Subset (field numbers from onnx/onnx.proto, IR version 8, opset 17):
 *   ModelProto      ir_version(1) producer_name(2) producer_version(3) graph(7) opset_import(8)
 *   GraphProto      node(1) name(2) initializer(5) input(11) output(12)
 *   NodeProto       input(1) output(2) name(3) op_type(4) attribute(5) domain(7)
 *   AttributeProto  name(1) f(2) i(3) s(4) t(5) g(6) floats(7) ints(8) type(20)
 *   TensorProto     dims(1) data_type(2) name(8) raw_data(9)  (raw_data is little-endian)
 *                   or, for a tensor stored outside the model (models over the 2 GB protobuf limit),
 *                   external_data(13) = StringStringEntryProto key(1) value(2) for location, offset,
 *                   length, and data_location(14) = 1 (EXTERNAL), without raw_data
 *   ValueInfoProto  name(1) type(2) -> TypeProto.tensor_type(1) -> elem_type(1) shape(2)
 *                   -> TensorShapeProto.dim(1) -> dim_value(1) | dim_param(2)
 *   OperatorSetIdProto domain(1) version(2)   (the default domain at ONNX_OPSET, com.microsoft at 1 where used)
 * Every graph input and output carries an element type and a shape (symbolic dims as dim_param).
 * Wire types used: 0 (varint) for ints, 5 (fixed32) for a single float, 2 (length-delimited)
 * for strings, bytes, sub-messages and packed repeated ints/floats.
 */

export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 17;

/** TensorProto.DataType codes. */
export const OnnxDataType = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
} as const;
export type OnnxDTypeName = keyof typeof OnnxDataType;

class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private cur: number[] = [];

  private flush(): void {
    if (this.cur.length) {
      this.chunks.push(Uint8Array.from(this.cur));
      this.cur = [];
    }
  }

  varint(v: number | bigint): void {
    let b = BigInt.asUintN(64, BigInt(v));
    while (b > 0x7fn) {
      this.cur.push(Number(b & 0x7fn) | 0x80);
      b >>= 7n;
    }
    this.cur.push(Number(b));
  }

  private tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  int(field: number, v: number | bigint): void {
    this.tag(field, 0);
    this.varint(v);
  }

  float(field: number, f: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, f, true);
    this.cur.push(...b);
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, 2);
    this.varint(b.length);
    if (b.length > 256) {
      this.flush();
      this.chunks.push(b);
    } else {
      for (let i = 0; i < b.length; i++) this.cur.push(b[i]);
    }
  }

  /**
   * A nested message: its bytes are appended as the writer's chunks, not copied, so a model is copied
   * once, by the outermost finish() (each nesting level used to copy every initializer again).
   */
  message(field: number, m: ProtoWriter): void {
    m.flush();
    const n = m.length;
    if (n <= 256) return this.bytes(field, m.finish()); // small: inline, fewer chunks
    this.tag(field, 2);
    this.varint(n);
    this.flush();
    for (const c of m.chunks) this.chunks.push(c);
  }

  /** Bytes written so far. */
  get length(): number {
    let n = this.cur.length;
    for (const c of this.chunks) n += c.length;
    return n;
  }

  str(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }

  packedInts(field: number, values: readonly (number | bigint)[]): void {
    const p = new ProtoWriter();
    for (const v of values) p.varint(v);
    this.bytes(field, p.finish());
  }

  packedFloats(field: number, values: readonly number[]): void {
    this.bytes(field, new Uint8Array(new Float32Array(values).buffer));
  }

  finish(): Uint8Array {
    this.flush();
    if (this.chunks.length === 1) return this.chunks[0];
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

export type OnnxDim = number | string;

export interface OnnxTensor {
  name: string;
  dtype: OnnxDTypeName;
  dims: readonly number[];
  /** Little-endian element bytes. */
  raw: Uint8Array;
  /** Where the bytes are instead, in a file beside the model (then raw is not written). */
  external?: { location: string; offset: number; length: number };
}

export type OnnxAttr =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'tensor'; value: OnnxTensor }
  | { kind: 'graph'; value: OnnxGraph };

export interface OnnxNode {
  name: string;
  opType: string;
  domain?: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs: Readonly<Record<string, OnnxAttr>>;
}

export interface OnnxValueInfo {
  name: string;
  dtype: OnnxDTypeName;
  shape: readonly OnnxDim[];
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  initializers: readonly OnnxTensor[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
}

function tensorMessage(t: OnnxTensor): ProtoWriter {
  const p = new ProtoWriter();
  p.packedInts(1, t.dims);
  p.int(2, OnnxDataType[t.dtype]);
  p.str(8, t.name);
  if (!t.external) {
    p.bytes(9, t.raw);
    return p;
  }
  for (const [key, value] of [['location', t.external.location], ['offset', String(t.external.offset)], ['length', String(t.external.length)]]) {
    const e = new ProtoWriter();
    e.str(1, key);
    e.str(2, value);
    p.message(13, e);
  }
  p.int(14, 1);
  return p;
}

function valueInfoMessage(v: OnnxValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(1, d);
    else dim.str(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter();
  tensorType.int(1, OnnxDataType[v.dtype]);
  tensorType.message(2, shape);
  const type = new ProtoWriter();
  type.message(1, tensorType);
  const vi = new ProtoWriter();
  vi.str(1, v.name);
  vi.message(2, type);
  return vi;
}

/** AttributeProto.AttributeType codes. */
const ATTR_TYPE = { float: 1, int: 2, string: 3, tensor: 4, graph: 5, floats: 6, ints: 7 } as const;

function attrMessage(name: string, a: OnnxAttr): ProtoWriter {
  const p = new ProtoWriter();
  p.str(1, name);
  switch (a.kind) {
    case 'float': p.float(2, a.value); break;
    case 'int': p.int(3, a.value); break;
    case 'string': p.str(4, a.value); break;
    case 'tensor': p.message(5, tensorMessage(a.value)); break;
    case 'graph': p.message(6, graphMessage(a.value)); break;
    case 'floats': p.packedFloats(7, a.value); break;
    case 'ints': p.packedInts(8, a.value); break;
  }
  p.int(20, ATTR_TYPE[a.kind]);
  return p;
}

function nodeMessage(n: OnnxNode): ProtoWriter {
  const p = new ProtoWriter();
  for (const i of n.inputs) p.str(1, i);
  for (const o of n.outputs) p.str(2, o);
  p.str(3, n.name);
  p.str(4, n.opType);
  for (const [k, v] of Object.entries(n.attrs)) p.message(5, attrMessage(k, v));
  if (n.domain) p.str(7, n.domain);
  return p;
}

function graphMessage(g: OnnxGraph): ProtoWriter {
  const p = new ProtoWriter();
  for (const n of g.nodes) p.message(1, nodeMessage(n));
  p.str(2, g.name);
  for (const t of g.initializers) p.message(5, tensorMessage(t));
  for (const i of g.inputs) p.message(11, valueInfoMessage(i));
  for (const o of g.outputs) p.message(12, valueInfoMessage(o));
  return p;
}

export function encodeGraph(g: OnnxGraph): Uint8Array {
  return graphMessage(g).finish();
}

/** The non-default domains of g's nodes and of its subgraphs' (a Loop body), each imported at version 1. */
function contribDomains(g: OnnxGraph, into = new Set<string>()): Set<string> {
  for (const n of g.nodes) {
    if (n.domain) into.add(n.domain);
    for (const a of Object.values(n.attrs)) if (a.kind === 'graph') contribDomains(a.value, into);
  }
  return into;
}

export function encodeModel(g: OnnxGraph, opts: { producerVersion?: string } = {}): Uint8Array {
  const p = new ProtoWriter();
  p.int(1, ONNX_IR_VERSION);
  p.str(2, 'memgen-lens');
  p.str(3, opts.producerVersion ?? '0');
  p.message(7, graphMessage(g));
  const opset = new ProtoWriter();
  opset.str(1, '');
  opset.int(2, ONNX_OPSET);
  p.message(8, opset);
  for (const domain of contribDomains(g)) {
    const contrib = new ProtoWriter();
    contrib.str(1, domain);
    contrib.int(2, 1);
    p.message(8, contrib);
  }
  return p.finish();
}
