/**
 * Safetensors reader and writer (the Hugging Face format).
 *
 * Layout: [u64 little-endian N][N bytes of UTF-8 JSON header][data section].
 * The header is a JSON object mapping each tensor name to
 *   {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
 * with offsets relative to the start of the data section, plus an optional
 * "__metadata__": {string: string}. All numbers are little-endian, row-major.
 * When writing, the header is padded with spaces to a multiple of 8 bytes
 * (as the reference implementation does) and tensors are laid out sorted by name.
 *
 * Headers are untrusted. parseSafeTensors rejects, with a SafeTensorsError that
 * names the source and, where relevant, the tensor:
 *  - a file shorter than 8 bytes;
 *  - a header length above 100,000,000 or above the bytes that follow it;
 *  - a header that is not UTF-8, not JSON, or not a JSON object;
 *  - a tensor entry that is not an object, has an unknown dtype, a shape that is not
 *    an array of non-negative safe integers, or data_offsets that are not two of them;
 *  - begin > end, end past the data section, or end - begin != product(shape) * dtype size
 *    (computed without leaving the safe-integer range);
 *  - tensors that overlap or leave gaps: sorted by offset they must tile the whole
 *    data section exactly, from 0 to its last byte;
 *  - an "__metadata__" that is not an object of strings.
 * Nothing is allocated from a size read from the file before it has been checked: the header
 * length against the file's size, each tensor's byte range against its dtype size x product(shape)
 * and the data section. readSafeTensorsHeader applies the same checks reading only 8 + N bytes
 * (io/hf-folder.ts indexes a folder's shards with it); fs errors also name the file.
 * Fuzzed with mutated files: test/unit/fuzz-readers.test.ts, docs/reliability.md.
 */
import * as fs from 'node:fs';
import { parseJSONLimited, shortJSON } from '../util/json';
import { writeFileAtomic } from './atomic';

export type SafeDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export interface SafeTensorInfo {
  dtype: SafeDType;
  shape: number[];
  /** Byte offsets into `SafeTensorsFile.buffer`. */
  begin: number;
  end: number;
}

export interface SafeTensorsFile {
  metadata: Record<string, string>;
  tensors: Map<string, SafeTensorInfo>;
  /** The data section only, a view into the parsed bytes (not a copy). */
  buffer: Uint8Array;
  /** The file (or '<buffer>') the tensors came from, for messages. */
  source?: string;
}

export class SafeTensorsError extends Error {
  override name = 'SafeTensorsError';
}

export interface TensorToWrite {
  dtype: 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32';
  shape: number[];
  /** F16/BF16 take a Float32Array (converted, round to nearest even) or a Uint16Array of raw bits. */
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint16Array;
}

const MAX_HEADER_LENGTH = 100_000_000;

const DTYPE_SIZE: Record<SafeDType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------- reading

export function parseSafeTensors(bytes: Uint8Array, source = '<buffer>'): SafeTensorsFile {
  const headerLength = checkHeaderLength(bytes.length >= 8 ? new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true) : null, bytes.length, source);
  const buffer = bytes.subarray(8 + headerLength);
  const { metadata, tensors } = parseHeader(bytes.subarray(8, 8 + headerLength), buffer.length, source);
  return { metadata, tensors, buffer, source };
}

/** A safetensors file's header, read without its data section (8 + N bytes are read). */
export interface SafeTensorsHeader {
  metadata: Record<string, string>;
  /** begin/end relative to the data section, which starts at byte `dataOffset` of the file. */
  tensors: Map<string, SafeTensorInfo>;
  dataOffset: number;
  fileSize: number;
}

/**
 * Reads and validates only the length field and the JSON header of `path` (everything that
 * parseSafeTensors checks, the offsets against the file's size), without reading the tensor data.
 */
export function readSafeTensorsHeader(path: string): SafeTensorsHeader {
  return withFile(path, (fd) => {
    const fileSize = fs.fstatSync(fd).size;
    const len = new Uint8Array(8);
    const got = fileSize >= 8 ? readFully(fd, len, 0, path) : 0;
    const headerLength = checkHeaderLength(got === 8 ? new DataView(len.buffer).getBigUint64(0, true) : null, fileSize, path);
    const head = new Uint8Array(headerLength); // <= the file's size (checked above)
    readFully(fd, head, 8, path);
    const { metadata, tensors } = parseHeader(head, fileSize - 8 - headerLength, path);
    return { metadata, tensors, dataOffset: 8 + headerLength, fileSize };
  });
}

/** The header length of a file of `fileSize` bytes whose length field reads `declared` (null: no 8 bytes). */
function checkHeaderLength(declared: bigint | null, fileSize: number, source: string): number {
  const fail = (msg: string): never => {
    throw new SafeTensorsError(`${source}: ${msg}`);
  };
  if (declared === null) return fail(`file is ${fileSize} bytes, shorter than the 8-byte header length (truncated, or not a safetensors file)`);
  if (declared > BigInt(MAX_HEADER_LENGTH)) fail(`header length ${declared} exceeds the limit of ${MAX_HEADER_LENGTH} bytes (not a safetensors file, or a corrupt length field)`);
  const headerLength = Number(declared);
  if (headerLength > fileSize - 8) {
    fail(`header length ${headerLength} exceeds the ${fileSize - 8} bytes after the length field (truncated file? copy or download it again)`);
  }
  return headerLength;
}

/**
 * Validates the JSON header (`head`, without the length field) of a file whose data section is
 * `dataLength` bytes: the rules of this module's header comment.
 */
function parseHeader(head: Uint8Array, dataLength: number, source: string): Pick<SafeTensorsFile, 'metadata' | 'tensors'> {
  const fail = (msg: string): never => {
    throw new SafeTensorsError(`${source}: ${msg}`);
  };
  let text: string;
  try {
    // ignoreBOM keeps a BOM in the text so JSON.parse rejects it, as the reference reader does.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(head);
  } catch {
    return fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = parseJSONLimited(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header)) return fail('header JSON is not an object');

  const tensors = new Map<string, SafeTensorInfo>();
  let metadata: Record<string, string> = {};

  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isPlainObject(entry)) fail('__metadata__ is not an object of strings');
      for (const [k, v] of Object.entries(entry as object)) {
        if (typeof v !== 'string') fail(`__metadata__ value for key ${JSON.stringify(k)} is not a string`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const bad = (msg: string): never => fail(`tensor ${JSON.stringify(name)}: ${msg}`);
    if (!isPlainObject(entry)) bad('entry is not an object');
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;

    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_SIZE, dtype)) {
      bad(dtype === undefined ? 'missing dtype' : `unknown dtype ${shortJSON(dtype)} (known: ${Object.keys(DTYPE_SIZE).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every(isSize)) bad(`shape ${shortJSON(shape)} must be an array of non-negative safe integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSize)) {
      bad(`data_offsets ${shortJSON(offsets)} must be an array of two non-negative safe integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) bad(`data_offsets [${begin}, ${end}] has begin > end`);
    if (end > dataLength) bad(`data_offsets end ${end} is past the ${dataLength}-byte data section (truncated file?)`);

    const size = DTYPE_SIZE[dtype as SafeDType];
    const nbytes = byteSize(shape as number[], size);
    if (nbytes === undefined) bad(`shape [${(shape as number[]).join(', ')}] times dtype size ${size} overflows`);
    if (nbytes !== end - begin) {
      bad(`data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${nbytes}`);
    }
    tensors.set(name, { dtype: dtype as SafeDType, shape: shape as number[], begin, end });
  }

  // The tensors must tile the data section: no overlap, no gap, nothing after the last one.
  const byOffset = [...tensors].sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const [name, t] of byOffset) {
    if (t.begin !== cursor) {
      fail(`tensor ${JSON.stringify(name)}: data_offsets begin ${t.begin} should be ${cursor} (${t.begin < cursor ? 'overlaps the previous tensor' : 'leaves a gap'})`);
    }
    cursor = t.end;
  }
  if (cursor !== dataLength) {
    fail(`data section is ${dataLength} bytes but the tensors' data_offsets cover only ${cursor}`);
  }
  return { metadata, tensors };
}

/** fs errors name the path and the code (fs's own messages omit the path for some, e.g. EISDIR). */
function fsError(path: string, e: unknown): SafeTensorsError {
  const code = (e as NodeJS.ErrnoException).code;
  return new SafeTensorsError(`${path}: cannot read (${code === 'ENOENT' ? 'missing' : code === 'EISDIR' ? 'a folder, not a file' : (code ?? (e as Error).message)})`);
}

function withFile<T>(path: string, fn: (fd: number) => T): T {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw fsError(path, e);
  }
  try {
    return fn(fd);
  } catch (e) {
    if (e instanceof SafeTensorsError) throw e;
    throw fsError(path, e);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads `into.length` bytes at `position`; a short read (the file shrank) is an error naming the file. */
function readFully(fd: number, into: Uint8Array, position: number, path: string): number {
  let off = 0;
  while (off < into.length) {
    const n = fs.readSync(fd, into, off, into.length - off, position + off);
    if (n === 0) throw new SafeTensorsError(`${path}: unexpected end of file at byte ${position + off} (the file changed while it was read?)`);
    off += n;
  }
  return off;
}

export function readSafeTensorsFile(path: string): SafeTensorsFile {
  let b: Buffer;
  try {
    b = fs.readFileSync(path);
  } catch (e) {
    throw fsError(path, e);
  }
  // A plain Uint8Array view, so callers get typed-array semantics (Buffer#slice does not copy).
  return parseSafeTensors(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), path);
}

/** The tensor's raw little-endian bytes, a view into `file.buffer`. */
export function tensorBytes(file: SafeTensorsFile, name: string): Uint8Array {
  const t = lookup(file, name);
  return file.buffer.subarray(t.begin, t.end);
}

/** A fresh, aligned Float32Array; F64, F16 and BF16 are converted. */
export function tensorAsFloat32(file: SafeTensorsFile, name: string): Float32Array {
  const t = lookup(file, name);
  const bytes = file.buffer.subarray(t.begin, t.end);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.length / DTYPE_SIZE[t.dtype];
  const out = new Float32Array(n);
  switch (t.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToNumber(view.getUint16(2 * i, true));
      return out;
    case 'BF16': {
      const bits = new Uint32Array(out.buffer); // bf16 is the top half of an f32
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    default:
      throw new SafeTensorsError(`${file.source ?? '<buffer>'}: tensor ${JSON.stringify(name)} has dtype ${t.dtype}, which cannot be read as float32 (store it as F32, F16, BF16 or F64)`);
  }
}

function lookup(file: SafeTensorsFile, name: string): SafeTensorInfo {
  const t = file.tensors.get(name);
  if (!t) throw new SafeTensorsError(`${file.source ?? '<buffer>'}: no tensor named ${JSON.stringify(name)}`);
  return t;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** product(shape) * elementSize, or undefined when it leaves the safe-integer range. */
function byteSize(shape: readonly number[], elementSize: number): number | undefined {
  if (shape.includes(0)) return 0;
  let n = elementSize;
  for (const d of shape) {
    n *= d; // both factors are safe, so an out-of-range product still compares as > MAX_SAFE_INTEGER
    if (n > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return n;
}

function f16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

// ---------------------------------------------------------------- writing

/**
 * The file as chunks: the length field and padded header first, then each tensor's bytes.
 * On little-endian hosts the tensor chunks are views of the caller's arrays (no copy),
 * so the arrays must not change until the chunks are written.
 */
export function serializeSafeTensors(
  tensors: Record<string, TensorToWrite> | Map<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array[] {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafeTensorsError(`metadata value for key ${JSON.stringify(k)} is not a string`);
    }
    header.__metadata__ = metadata;
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    const bytes = tensorChunk(name, t);
    // defineProperty so a tensor named "__proto__" becomes a key instead of a prototype.
    Object.defineProperty(header, name, {
      value: { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] },
      enumerable: true,
    });
    offset += bytes.length;
    chunks.push(bytes);
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_LENGTH) throw new SafeTensorsError(`header length ${padded} exceeds the limit of ${MAX_HEADER_LENGTH} bytes`);
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return [head, ...chunks];
}

export function writeSafeTensorsFile(
  path: string,
  tensors: Record<string, TensorToWrite> | Map<string, TensorToWrite>,
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(path, serializeSafeTensors(tensors, metadata));
}

function tensorChunk(name: string, t: TensorToWrite): Uint8Array {
  const bad = (msg: string): never => {
    throw new SafeTensorsError(`tensor ${JSON.stringify(name)}: ${msg}`);
  };
  if (name === '__metadata__') bad('the name __metadata__ is reserved');
  if (!Array.isArray(t.shape) || !t.shape.every(isSize)) bad('shape must be an array of non-negative safe integers');
  const numel = byteSize(t.shape, 1);
  if (numel === undefined) return bad(`shape [${t.shape.join(', ')}] is too large`);

  let data = t.data;
  if ((t.dtype === 'F16' || t.dtype === 'BF16') && data instanceof Float32Array) {
    data = t.dtype === 'F16' ? float32ToF16(data) : float32ToBF16(data);
  }
  const expected = { F32: Float32Array, F64: Float64Array, I64: BigInt64Array, I32: Int32Array, F16: Uint16Array, BF16: Uint16Array }[t.dtype];
  if (expected === undefined) return bad(`unsupported dtype ${JSON.stringify(t.dtype)}`);
  if (!(data instanceof expected)) {
    const also = t.dtype === 'F16' || t.dtype === 'BF16' ? ' or Float32Array' : '';
    bad(`dtype ${t.dtype} needs a ${expected.name}${also}, got ${data?.constructor?.name ?? typeof data}`);
  }
  if (data.length !== numel) bad(`shape [${t.shape.join(', ')}] has ${numel} elements but data has ${data.length}`);
  return littleEndianBytes(data);
}

function littleEndianBytes(a: TensorToWrite['data']): Uint8Array {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN_HOST) return bytes;
  const k = a.BYTES_PER_ELEMENT;
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += k) for (let j = 0; j < k; j++) out[i + j] = bytes[i + k - 1 - j];
  return out;
}

// ---------------------------------------------------------------- half precision

/** IEEE binary16 bits, round to nearest even; overflow gives ±Infinity, tiny values become subnormals or ±0. */
export function float32ToF16(x: Float32Array): Uint16Array {
  const src = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < src.length; i++) {
    const u = src[i];
    const sign = (u >>> 16) & 0x8000;
    const exp = ((u >>> 23) & 0xff) - 127;
    const mant = u & 0x7fffff;
    let h: number;
    if (exp === 128) {
      h = mant ? 0x7e00 : 0x7c00; // NaN (quiet) or Infinity
    } else if (exp > 15) {
      h = 0x7c00;
    } else if (exp >= -14) {
      // Normal: keep 10 of 23 mantissa bits; a carry out of the mantissa correctly bumps the exponent (up to Infinity).
      h = ((exp + 15) << 10) | (mant >>> 13);
      const rest = mant & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
    } else if (exp >= -25) {
      // Subnormal: units of 2^-24; the full significand (with its implicit 1) is shifted right.
      const sig = mant | 0x800000;
      const shift = -exp - 1; // 14..24
      h = sig >>> shift;
      const rest = sig & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rest > halfway || (rest === halfway && h & 1)) h++;
    } else {
      h = 0;
    }
    out[i] = sign | h;
  }
  return out;
}

/** bfloat16 bits (the top half of a float32), round to nearest even; NaN stays NaN. */
export function float32ToBF16(x: Float32Array): Uint16Array {
  const src = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < src.length; i++) {
    const u = src[i];
    if ((u & 0x7fffffff) > 0x7f800000) out[i] = (u >>> 16) | 0x40; // keep it NaN even if the payload was in the low bits
    else out[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
  return out;
}
