/**
 * NumPy .npy files of float32 (`'<f4'`, C order): what analysis writes for Python users
 * (`np.load`) and reads back itself.
 *
 * Format (NumPy's format.py, version 1.0):
 *   bytes 0-5   magic  \x93NUMPY
 *   bytes 6-7   version 1, 0
 *   bytes 8-9   header length H, uint16 little-endian
 *   H bytes     ASCII dict  {'descr': '<f4', 'fortran_order': False, 'shape': (r, l, d), }
 *               padded with spaces and ended by '\n' so that 10 + H is a multiple of 64 (NumPy's
 *               alignment: the data then starts 64-byte aligned)
 *   data        prod(shape) float32 values, little-endian, last index fastest
 * The reader also takes versions 2.0 and 3.0 (4-byte header length), which NumPy writes for huge
 * headers; it accepts only '<f4', fortran_order False, and a data length equal to prod(shape) * 4.
 *
 * Streaming (NpyAppender), for `[rows, ...rowShape]` arrays that grow a row at a time (method.md 9.6:
 * never re-read and re-write a whole file to add to it):
 *   - the header is reserved at STREAM_HEADER_BYTES (128, a multiple of 64; more for row shapes
 *     with many dims), space-padded, so the shape can be rewritten in place as rows are added;
 *   - append() writes rows at the end of the file (constant memory); flush() rewrites the header
 *     with the current row count and fsyncs; close() flushes. Between an append and the next flush
 *     the header may state fewer rows than the file holds, never more.
 *   - reopening (NpyAppender.open on an existing file) checks magic, version, dtype, order and row
 *     shape, takes the row count from the byte length (whole rows; a partial trailing row, left by
 *     a crash in mid-write, is cut off), and appends after it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { writeFileAtomic } from '../io/atomic';

export class NpyError extends Error {}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ALIGN = 64;
const F4 = 4;

/** The reserved header size of streaming files: room for a shape with 16-digit row counts. */
export const STREAM_HEADER_BYTES = 128;

function checkHostEndianness(): void {
  if (os.endianness() !== 'LE') throw new NpyError('npy: this host is big-endian; only little-endian hosts are supported');
}

function checkShape(shape: readonly number[], what: string): void {
  for (const n of shape) {
    if (!Number.isSafeInteger(n) || n < 0) throw new NpyError(`${what}: shape (${shape.join(', ')}) must hold non-negative integers`);
  }
}

const product = (shape: readonly number[]): number => shape.reduce((p, n) => p * n, 1);

/** NumPy's tuple syntax: (), (3,), (3, 4). */
function pyTuple(shape: readonly number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

/**
 * The 10-byte preamble + dict + padding for `shape`, `total` bytes long (a multiple of 64), or the
 * smallest such size when `total` is undefined.
 */
function encodeHeader(shape: readonly number[], total?: number): Uint8Array {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${pyTuple(shape)}, }`;
  const minTotal = Math.ceil((10 + dict.length + 1) / ALIGN) * ALIGN;
  const size = total ?? minTotal;
  if (size < minTotal) throw new NpyError(`npy: shape ${pyTuple(shape)} does not fit a ${size}-byte header`);
  if (size % ALIGN !== 0 || size - 10 > 0xffff) throw new NpyError(`npy: bad header size ${size}`);
  const out = new Uint8Array(size);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, size - 10, true);
  const text = dict.padEnd(size - 10 - 1, ' ') + '\n';
  for (let i = 0; i < text.length; i++) out[10 + i] = text.charCodeAt(i);
  return out;
}

export interface NpyHeader {
  shape: number[];
  /** Byte offset of the data (= header size). */
  dataOffset: number;
}

/** Parses and validates the header at the start of `fd`; errors name `file`. */
function readHeader(fd: number, file: string): NpyHeader {
  const pre = Buffer.alloc(12);
  const got = fs.readSync(fd, pre, 0, 12, 0);
  if (got < 10 || MAGIC.some((b, i) => pre[i] !== b)) throw new NpyError(`${file} is not a .npy file (no \\x93NUMPY magic)`);
  const major = pre[6];
  const minor = pre[7];
  let headerLen: number;
  let start: number;
  if (major === 1 && minor === 0) {
    headerLen = pre.readUInt16LE(8);
    start = 10;
  } else if ((major === 2 || major === 3) && minor === 0 && got >= 12) {
    headerLen = pre.readUInt32LE(8);
    start = 12;
  } else {
    throw new NpyError(`${file}: unsupported .npy version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`);
  }
  const size = fs.fstatSync(fd).size;
  if (start + headerLen > size) throw new NpyError(`${file}: truncated header (${headerLen} header bytes announced, file has ${size} bytes)`);
  const buf = Buffer.alloc(headerLen);
  fs.readSync(fd, buf, 0, headerLen, start);
  const text = buf.toString(major === 3 ? 'utf8' : 'latin1').trim();
  const bad = (why: string) => new NpyError(`${file}: bad .npy header (${why}): ${JSON.stringify(text.slice(0, 120))}`);
  if (!text.startsWith('{') || !text.endsWith('}')) throw bad('not a dict');
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(text);
  if (!descr) throw bad('no descr');
  if (descr[1] !== '<f4') throw new NpyError(`${file}: dtype '${descr[1]}' is not supported; only float32 '<f4' is`);
  const order = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  if (!order) throw bad('no fortran_order');
  if (order[1] !== 'False') throw new NpyError(`${file}: Fortran-order arrays are not supported; save it C-ordered (np.ascontiguousarray)`);
  const shapeM = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (!shapeM) throw bad('no shape');
  const parts = shapeM[1].split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (!parts.every((s) => /^[0-9]+$/.test(s))) throw bad('shape is not a tuple of integers');
  const shape = parts.map(Number);
  checkShape(shape, file);
  return { shape, dataOffset: start + headerLen };
}

function openRead(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (e) {
    throw new NpyError(`${file}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Reads `count` float32 values at byte `position` of `fd` into a new array. */
function readFloats(fd: number, position: number, count: number): Float32Array {
  const out = new Float32Array(count);
  const bytes = new Uint8Array(out.buffer);
  let off = 0;
  while (off < bytes.length) {
    const n = fs.readSync(fd, bytes, off, bytes.length - off, position + off);
    if (n === 0) throw new NpyError(`unexpected end of file at byte ${position + off}`);
    off += n;
  }
  return out;
}

/** Writes the whole array atomically (temp file + rename). `data.length` must equal prod(shape). */
export function writeNpy(file: string, data: Float32Array, shape: readonly number[]): void {
  checkHostEndianness();
  checkShape(shape, file);
  if (product(shape) !== data.length) throw new NpyError(`${file}: shape ${pyTuple(shape)} needs ${product(shape)} values, got ${data.length}`);
  writeFileAtomic(file, [encodeHeader(shape), new Uint8Array(data.buffer, data.byteOffset, data.byteLength)]);
}

/** The validated header of `file` and its data length check, without reading the data. */
export function readNpyHeader(file: string): NpyHeader {
  const fd = openRead(file);
  try {
    return checkedHeader(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

function checkedHeader(fd: number, file: string): NpyHeader {
  const h = readHeader(fd, file);
  const want = product(h.shape) * F4;
  const have = fs.fstatSync(fd).size - h.dataOffset;
  if (have !== want) {
    throw new NpyError(`${file}: the header's shape ${pyTuple(h.shape)} needs ${want} data bytes, the file holds ${have} (${have < want ? 'truncated' : 'trailing data, or a stream not closed'})`);
  }
  return h;
}

/** Reads a whole float32 array. */
export function readNpy(file: string): { shape: number[]; data: Float32Array } {
  checkHostEndianness();
  const fd = openRead(file);
  try {
    const h = checkedHeader(fd, file);
    return { shape: h.shape, data: readFloats(fd, h.dataOffset, product(h.shape)) };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Calls `fn(rows, start, count)` for consecutive blocks of at most `rowsPerChunk` rows of a
 * `[rows, ...]` file (constant memory); `rows` is a [count, ...rowShape] array.
 */
export function forEachNpyChunk(
  file: string,
  rowsPerChunk: number,
  fn: (rows: Float32Array, start: number, count: number) => void,
): NpyHeader {
  checkHostEndianness();
  if (!Number.isInteger(rowsPerChunk) || rowsPerChunk < 1) throw new NpyError(`rowsPerChunk must be a positive integer, got ${rowsPerChunk}`);
  const fd = openRead(file);
  try {
    const h = checkedHeader(fd, file);
    if (h.shape.length === 0) throw new NpyError(`${file}: a 0-d array has no rows`);
    const rowSize = product(h.shape.slice(1));
    for (let start = 0; start < h.shape[0]; start += rowsPerChunk) {
      const count = Math.min(rowsPerChunk, h.shape[0] - start);
      fn(readFloats(fd, h.dataOffset + start * rowSize * F4, count * rowSize), start, count);
    }
    return h;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Random access to the first `rows` rows of a `[rows, ...]` file that may be a stream killed before its
 * last flush (the header then states fewer rows than the file holds, never more): the header's rows,
 * or whole rows beyond it up to `rows`, are read as they are. Throws when fewer than `rows` exist.
 */
export class NpyRowReader {
  private readonly fd: number;
  readonly rowShape: number[];
  private readonly rowSize: number;
  private readonly dataOffset: number;

  constructor(readonly file: string, rows: number) {
    checkHostEndianness();
    this.fd = openRead(file);
    try {
      const h = readHeader(this.fd, file);
      if (h.shape.length === 0) throw new NpyError(`${file}: a 0-d array has no rows`);
      this.rowShape = h.shape.slice(1);
      this.rowSize = product(this.rowShape);
      this.dataOffset = h.dataOffset;
      const whole = this.rowSize === 0 ? h.shape[0] : Math.floor((fs.fstatSync(this.fd).size - h.dataOffset) / (this.rowSize * F4));
      if (whole < rows) throw new NpyError(`${file}: holds ${whole} whole rows, ${rows} expected (truncated)`);
    } catch (e) {
      fs.closeSync(this.fd);
      throw e;
    }
  }

  /** Row `i` as a new array of prod(rowShape) values. */
  row(i: number): Float32Array {
    return readFloats(this.fd, this.dataOffset + i * this.rowSize * F4, this.rowSize);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** A growing `[rows, ...rowShape]` float32 .npy file; see the header comment. */
export class NpyAppender {
  private constructor(
    readonly file: string,
    readonly rowShape: readonly number[],
    private fd: number | null,
    private count: number,
    private readonly dataOffset: number,
  ) {}

  /** Values per row. */
  get rowSize(): number {
    return product(this.rowShape);
  }

  /** Rows written (appended) so far. */
  get rows(): number {
    return this.count;
  }

  /**
   * Creates `file` with 0 rows ('create': any existing file is replaced), or ('append') continues an
   * existing file after validating it (a missing file is created).
   */
  static open(file: string, rowShape: readonly number[], mode: 'create' | 'append'): NpyAppender {
    checkHostEndianness();
    checkShape(rowShape, file);
    if (mode === 'create' || !fs.existsSync(file)) {
      // Room for any safe-integer row count (and at least STREAM_HEADER_BYTES).
      const reserve = Math.max(STREAM_HEADER_BYTES, encodeHeader([Number.MAX_SAFE_INTEGER, ...rowShape]).length);
      const fd = fs.openSync(file, 'w+');
      const w = new NpyAppender(file, [...rowShape], fd, 0, reserve);
      w.flush();
      return w;
    }
    const fd = fs.openSync(file, 'r+');
    try {
      const h = readHeader(fd, file);
      if (h.shape.length !== rowShape.length + 1 || h.shape.slice(1).some((n, i) => n !== rowShape[i])) {
        throw new NpyError(`${file}: holds rows of shape ${pyTuple(h.shape.slice(1))}, expected ${pyTuple(rowShape)}`);
      }
      const rowBytes = product(rowShape) * F4;
      const dataBytes = fs.fstatSync(fd).size - h.dataOffset;
      const whole = rowBytes === 0 ? h.shape[0] : Math.floor(dataBytes / rowBytes);
      if (h.shape[0] > whole) {
        throw new NpyError(`${file}: the header states ${h.shape[0]} rows but the file holds only ${whole} whole rows (truncated by something else)`);
      }
      encodeHeader([whole, ...rowShape], h.dataOffset); // throws if the shape cannot grow in this header
      if (rowBytes > 0 && dataBytes !== whole * rowBytes) fs.ftruncateSync(fd, h.dataOffset + whole * rowBytes); // a partial trailing row
      const w = new NpyAppender(file, [...rowShape], fd, whole, h.dataOffset);
      w.flush();
      return w;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  private handle(): number {
    if (this.fd === null) throw new NpyError(`${this.file}: the stream is closed`);
    return this.fd;
  }

  /** Appends whole rows: `data.length` must be a multiple of rowSize. */
  append(data: Float32Array): void {
    const fd = this.handle();
    const size = this.rowSize;
    if (size === 0 ? data.length !== 0 : data.length % size !== 0) {
      throw new NpyError(`${this.file}: ${data.length} values are not whole rows of ${pyTuple(this.rowShape)} (${size} values each)`);
    }
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let pos = this.dataOffset + this.count * size * F4;
    let off = 0;
    while (off < bytes.length) {
      const n = fs.writeSync(fd, bytes, off, bytes.length - off, pos);
      off += n;
      pos += n;
    }
    this.count += size === 0 ? 0 : data.length / size;
  }

  /** Keeps the first `rows` rows (rows <= this.rows) and flushes. */
  truncate(rows: number): void {
    const fd = this.handle();
    if (!Number.isInteger(rows) || rows < 0 || rows > this.count) throw new NpyError(`${this.file}: cannot truncate ${this.count} rows to ${rows}`);
    fs.ftruncateSync(fd, this.dataOffset + rows * this.rowSize * F4);
    this.count = rows;
    this.flush();
  }

  /** Rewrites the header with the current row count, then fsyncs. */
  flush(): void {
    const fd = this.handle();
    const header = encodeHeader([this.count, ...this.rowShape], this.dataOffset);
    fs.writeSync(fd, header, 0, header.length, 0);
    fs.fsyncSync(fd);
  }

  close(): void {
    if (this.fd === null) return;
    this.flush();
    fs.closeSync(this.fd);
    this.fd = null;
  }
}
