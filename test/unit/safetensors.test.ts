import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  SafeTensorsError,
  float32ToBF16,
  float32ToF16,
  parseSafeTensors,
  readSafeTensorsFile,
  serializeSafeTensors,
  tensorAsFloat32,
  tensorBytes,
  writeSafeTensorsFile,
  type TensorToWrite,
} from '../../engine/io/safetensors';

const enc = new TextEncoder();

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** A file with the given header (JSON text or a value to stringify), data section and, optionally, a lying length field. */
function build(header: string | object, data: Uint8Array | number = 0, declared?: bigint): Uint8Array {
  const json = typeof header === 'string' ? enc.encode(header) : enc.encode(JSON.stringify(header));
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, declared ?? BigInt(json.length), true);
  return concat([len, json, typeof data === 'number' ? new Uint8Array(data) : data]);
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

/** Asserts parse fails with a SafeTensorsError whose message matches every pattern. */
function rejects(bytes: Uint8Array, ...patterns: RegExp[]): string {
  let err: unknown;
  try {
    parseSafeTensors(bytes);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SafeTensorsError);
  const msg = (err as Error).message;
  expect(msg).toContain('<buffer>');
  for (const p of patterns) expect(msg).toMatch(p);
  return msg;
}

const sample: Record<string, TensorToWrite> = {
  w32: { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, -0, 1e-30]) },
  w64: { dtype: 'F64', shape: [3], data: new Float64Array([Math.PI, -1e300, 5e-324]) },
  i64: { dtype: 'I64', shape: [2], data: new BigInt64Array([-(2n ** 63n), 2n ** 53n + 1n]) },
  i32: { dtype: 'I32', shape: [1, 2], data: new Int32Array([-7, 2 ** 31 - 1]) },
  h16: { dtype: 'F16', shape: [3], data: new Float32Array([1, -2.5, 65504]) },
  b16: { dtype: 'BF16', shape: [2], data: new Uint16Array([0x3f80, 0xc020]) }, // raw bits: 1, -2.5
  empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
};

function checkSample(file: ReturnType<typeof parseSafeTensors>): void {
  expect(file.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
  expect([...file.tensors.keys()]).toEqual(['b16', 'empty', 'h16', 'i32', 'i64', 'w32', 'w64']);
  expect(file.tensors.get('w32')).toMatchObject({ dtype: 'F32', shape: [2, 3] });
  expect(Array.from(tensorAsFloat32(file, 'w32'))).toEqual(Array.from(new Float32Array([1, -2, 3.5, 0, -0, 1e-30])));
  expect(Object.is(tensorAsFloat32(file, 'w32')[4], -0)).toBe(true);
  expect(Array.from(tensorAsFloat32(file, 'w64'))).toEqual(Array.from(new Float32Array([Math.PI, -Infinity, 0])));
  expect(new Float64Array(tensorBytes(file, 'w64').slice().buffer)).toEqual(new Float64Array([Math.PI, -1e300, 5e-324]));
  expect(new BigInt64Array(tensorBytes(file, 'i64').slice().buffer)).toEqual(new BigInt64Array([-(2n ** 63n), 2n ** 53n + 1n]));
  expect(new Int32Array(tensorBytes(file, 'i32').slice().buffer)).toEqual(new Int32Array([-7, 2 ** 31 - 1]));
  expect(Array.from(tensorAsFloat32(file, 'h16'))).toEqual([1, -2.5, 65504]);
  expect(Array.from(tensorAsFloat32(file, 'b16'))).toEqual([1, -2.5]);
  expect(tensorAsFloat32(file, 'empty').length).toBe(0);
}

describe('round trip', () => {
  it('serialize + parse keeps every dtype, sorted by name and contiguous', () => {
    const chunks = serializeSafeTensors(sample, { format: 'pt', note: 'ünïcode' });
    expect(chunks).toHaveLength(1 + Object.keys(sample).length);
    const bytes = concat(chunks);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    expect(chunks[0].length).toBe(8 + headerLength);

    const file = parseSafeTensors(bytes);
    checkSample(file);
    let cursor = 0;
    for (const [, t] of file.tensors) {
      expect(t.begin).toBe(cursor);
      cursor = t.end;
    }
    expect(cursor).toBe(file.buffer.length);
    // zero-copy: the data section is a view into the input
    expect(file.buffer.buffer).toBe(bytes.buffer);
  });

  it('accepts a Map and omits __metadata__ when none is given', () => {
    const bytes = concat(serializeSafeTensors(new Map([['x', sample.w32]])));
    const file = parseSafeTensors(bytes);
    expect(file.metadata).toEqual({});
    expect(new TextDecoder().decode(bytes.subarray(8, 8 + 13))).toBe('{"x":{"dtype"');
  });

  it('writeSafeTensorsFile + readSafeTensorsFile', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'safetensors-'));
    try {
      const file = path.join(dir, 'sub', 'model.safetensors');
      writeSafeTensorsFile(file, sample, { format: 'pt', note: 'ünïcode' });
      expect(fs.readdirSync(path.dirname(file))).toEqual(['model.safetensors']); // no temp file left behind
      checkSample(readSafeTensorsFile(file));

      const bad = path.join(dir, 'bad.safetensors');
      fs.writeFileSync(bad, new Uint8Array(3));
      expect(() => readSafeTensorsFile(bad)).toThrow(SafeTensorsError);
      expect(() => readSafeTensorsFile(bad)).toThrow(bad);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads tensors at unaligned offsets (file at an odd byteOffset, F32 after an odd-sized tensor)', () => {
    const bytes = concat(serializeSafeTensors({
      a: { dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
      b: { dtype: 'F32', shape: [2], data: new Float32Array([1.25, -3]) },
    }));
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const file = parseSafeTensors(shifted.subarray(1));
    expect(file.tensors.get('b')!.begin).toBe(2);
    expect(Array.from(tensorAsFloat32(file, 'b'))).toEqual([1.25, -3]);
  });

  it('handles awkward tensor names', () => {
    const names = ['__proto__', 'constructor', 'a"b\\c', 'é', ''];
    const bytes = concat(serializeSafeTensors(new Map(names.map((n) => [n, sample.i32] as const))));
    const file = parseSafeTensors(bytes);
    expect([...file.tensors.keys()].sort()).toEqual([...names].sort());
    expect(new Int32Array(tensorBytes(file, '__proto__').slice().buffer)).toEqual(new Int32Array([-7, 2 ** 31 - 1]));
  });
});

describe('byte layout matches the reference implementation', () => {
  const u64 = (n: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
    return b;
  };

  it('single F32 tensor, header already a multiple of 8', () => {
    const json = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    expect(json.length).toBe(64);
    const expected = concat([u64(64), enc.encode(json), f32Bytes([0, 1, 2, 3, 4, 5])]);
    const got = concat(serializeSafeTensors({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } }));
    expect(got).toEqual(expected);
    expect(Array.from(tensorAsFloat32(parseSafeTensors(expected), 'attn.0'))).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('header padded with spaces to 8 bytes', () => {
    const json = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    const expected = concat([u64(72), enc.encode(json + ' '.repeat(72 - json.length)), f32Bytes([0, 1, 2, 3, 4, 5])]);
    const got = concat(serializeSafeTensors({ attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } }));
    expect(got).toEqual(expected);
    expect(parseSafeTensors(expected).tensors.get('attn0')).toEqual({ dtype: 'F32', shape: [1, 1, 2, 3], begin: 0, end: 24 });
  });

  it('empty file, with and without metadata; __metadata__ comes first', () => {
    expect(concat(serializeSafeTensors({}))).toEqual(concat([u64(8), enc.encode('{}      ')]));
    const withMeta = concat([u64(40), enc.encode('{"__metadata__":{"framework":"pt"}}     ')]);
    expect(concat(serializeSafeTensors({}, { framework: 'pt' }))).toEqual(withMeta);
    const parsed = parseSafeTensors(withMeta);
    expect(parsed.metadata).toEqual({ framework: 'pt' });
    expect(parsed.tensors.size).toBe(0);

    const [head] = serializeSafeTensors({ b: sample.i32, a: sample.i32 }, { k: 'v' });
    expect(new TextDecoder().decode(head.subarray(8)).trimEnd()).toBe(
      '{"__metadata__":{"k":"v"},"a":{"dtype":"I32","shape":[1,2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[1,2],"data_offsets":[8,16]}}',
    );
  });

  it('parses a bare {} header', () => {
    const file = parseSafeTensors(build('{}'));
    expect(file.tensors.size).toBe(0);
    expect(file.metadata).toEqual({});
    expect(file.buffer.length).toBe(0);
  });
});

describe('half precision', () => {
  const f16 = (...v: number[]) => Array.from(float32ToF16(new Float32Array(v)));
  const bf16 = (...v: number[]) => Array.from(float32ToBF16(new Float32Array(v)));

  it('float32ToF16', () => {
    expect(f16(1, -2.5, 65504, 0, -0)).toEqual([0x3c00, 0xc100, 0x7bff, 0x0000, 0x8000]);
    expect(f16(Infinity, -Infinity, 1e5, 65520)).toEqual([0x7c00, 0xfc00, 0x7c00, 0x7c00]); // 65520 is a tie, rounds to even = overflow
    expect(f16(2 ** -14, 2 ** -24, 1e-7)).toEqual([0x0400, 0x0001, 0x0002]); // min normal, min subnormal, 1e-7 ≈ 1.68 * 2^-24
    expect(f16(2 ** -25, 1.5 * 2 ** -25, 2 ** -26, 1e-30)).toEqual([0, 1, 0, 0]);
    expect(f16(1023.5 * 2 ** -24)).toEqual([0x0400]); // subnormal tie rounds up into the normal range
    const [nan] = f16(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
    // round to nearest even: 1 + 2^-11 is halfway between 0x3c00 and 0x3c01
    expect(f16(1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20)).toEqual([0x3c00, 0x3c02, 0x3c01]);
  });

  it('float32ToBF16', () => {
    expect(bf16(1, -2.5, 0, -0, Infinity, -Infinity)).toEqual([0x3f80, 0xc020, 0, 0x8000, 0x7f80, 0xff80]);
    expect(bf16(65504, 3.4028234663852886e38)).toEqual([0x4780, 0x7f80]);
    expect(bf16(1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20)).toEqual([0x3f80, 0x3f82, 0x3f81]);
    const nanLowBits = new Float32Array(new Uint32Array([0x7f800001]).buffer);
    for (const h of [...float32ToBF16(nanLowBits), ...bf16(NaN)]) {
      expect(h & 0x7f80).toBe(0x7f80);
      expect(h & 0x7f).not.toBe(0);
    }
  });

  it('F16 and BF16 survive a write and read back', () => {
    const values = [1, -2.5, 65504, 1e-7, Infinity, -Infinity, NaN, 2 ** -24];
    const data = new Float32Array(values);
    const file = parseSafeTensors(concat(serializeSafeTensors({
      h: { dtype: 'F16', shape: [values.length], data },
      b: { dtype: 'BF16', shape: [values.length], data },
    })));
    expect(Array.from(tensorAsFloat32(file, 'h'))).toEqual([1, -2.5, 65504, 2 ** -23, Infinity, -Infinity, NaN, 2 ** -24]);
    const b = tensorAsFloat32(file, 'b');
    expect(Array.from(b.subarray(0, 2))).toEqual([1, -2.5]);
    expect(b[2]).toBe(65536);
    expect(Number.isNaN(b[6])).toBe(true);
    expect(Math.abs(b[3] - 1e-7) / 1e-7).toBeLessThan(2 ** -8);
  });
});

describe('rejects untrusted headers', () => {
  const t = (extra: object = {}) => ({ dtype: 'F32', shape: [2], data_offsets: [0, 8], ...extra });

  it('short files and bad header lengths', () => {
    rejects(new Uint8Array(0), /shorter than/);
    rejects(new Uint8Array(7), /shorter than/);
    rejects(build('{}', 0, 9n), /header length 9/);
    rejects(build('{}', 0, 100_000_001n), /header length 100000001 exceeds the limit/);
    rejects(build('{}', 0, 2n ** 53n), /header length 9007199254740992/);
    rejects(build('{}', 0, 2n ** 64n - 1n), /header length/);
  });

  it('headers that are not UTF-8 JSON objects', () => {
    const len = new Uint8Array([4, 0, 0, 0, 0, 0, 0, 0]);
    rejects(concat([len, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])]), /UTF-8/);
    rejects(concat([new Uint8Array([5, 0, 0, 0, 0, 0, 0, 0]), new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])]), /JSON/); // BOM
    rejects(build('{"a": '), /not valid JSON/);
    rejects(build(''), /not valid JSON/);
    for (const h of ['[]', 'null', '"x"', '3']) rejects(build(h), /not an object/);
  });

  it('malformed tensor entries name the tensor', () => {
    rejects(build({ w: 3 }, 8), /"w"/, /not an object/);
    rejects(build({ w: [] }, 8), /not an object/);
    rejects(build({ w: { shape: [2], data_offsets: [0, 8] } }, 8), /"w"/, /missing dtype/);
    rejects(build({ w: t({ dtype: 'F8_E4M3' }) }, 8), /unknown dtype "F8_E4M3"/);
    rejects(build({ w: t({ dtype: 'f32' }) }, 8), /unknown dtype/);
    rejects(build({ w: t({ dtype: 'toString' }) }, 8), /unknown dtype/);
    rejects(build({ w: t({ dtype: 4 }) }, 8), /unknown dtype/);
    rejects(build({ w: t({ shape: undefined }) }, 8), /"w"/, /shape/);
    for (const shape of [[-1], [1.5], ['2'], [2 ** 53], 2, null]) rejects(build({ w: t({ shape }) }, 8), /shape/);
    rejects(build({ w: t({ data_offsets: undefined }) }, 8), /"w"/, /data_offsets/);
    for (const data_offsets of [[0], [0, 8, 8], [-8, 0], [0, '8'], [0, 8.5], [0, 2 ** 53], '0,8']) {
      rejects(build({ w: t({ data_offsets }) }, 8), /data_offsets/);
    }
  });

  it('offsets that disagree with the shape or the buffer', () => {
    rejects(build({ w: t({ data_offsets: [8, 0] }) }, 8), /"w"/, /data_offsets/, /begin > end/);
    rejects(build({ w: t({ data_offsets: [0, 16] }) }, 8), /"w"/, /data_offsets/, /past the 8-byte data section/);
    rejects(build({ w: t({ shape: [3] }) }, 8), /"w"/, /data_offsets/, /needs 12/);
    rejects(build({ w: t({ dtype: 'F64' }) }, 8), /data_offsets/, /needs 16/);
    rejects(build({ w: t({ shape: [2 ** 26, 2 ** 26, 2 ** 26] }) }, 8), /"w"/, /overflows/);
    rejects(build({ w: t({ shape: [2 ** 51] }) }, 8), /overflows/); // 2^51 elements * 4 bytes > 2^53
    // a zero dimension makes the tensor empty however large the other dimensions are
    expect(parseSafeTensors(build({ w: t({ shape: [2 ** 40, 0, 2 ** 40], data_offsets: [0, 0] }) })).tensors.get('w')!.end).toBe(0);
  });

  it('overlaps, gaps and uncovered bytes', () => {
    rejects(build({ a: t(), b: t({ data_offsets: [4, 12] }) }, 12), /"b"/, /overlaps/);
    rejects(build({ a: t(), b: t({ data_offsets: [0, 8] }) }, 8), /overlaps/); // same bytes twice
    rejects(build({ a: t(), b: t({ data_offsets: [12, 20] }) }, 20), /"b"/, /gap/);
    rejects(build({ a: t({ data_offsets: [4, 12] }) }, 12), /"a"/, /gap/);
    rejects(build({ a: t() }, 9), /cover only 8/);
    rejects(build({}, 1), /cover only 0/);
    // out of order in the JSON is fine as long as the offsets tile the buffer; so are empty tensors
    const ok = parseSafeTensors(build({ b: t({ data_offsets: [8, 16] }), z: t({ shape: [0], data_offsets: [8, 8] }), a: t() }, 16));
    expect(ok.tensors.size).toBe(3);
  });

  it('__metadata__ must map strings to strings', () => {
    for (const m of [[], 'x', null, { a: 1 }, { a: ['x'] }, { a: null }]) rejects(build({ __metadata__: m }), /__metadata__/);
    expect(parseSafeTensors(build({ __metadata__: { a: '1', __proto__x: '' } })).metadata).toEqual({ a: '1', __proto__x: '' });
  });

  it('a truncated file', () => {
    const bytes = concat(serializeSafeTensors(sample));
    rejects(bytes.subarray(0, bytes.length - 1), /data_offsets|cover/);
    rejects(bytes.subarray(0, bytes.length - 8), /data_offsets|cover/);
    rejects(bytes.subarray(0, 20), /header length/);
    rejects(bytes.subarray(0, 5), /shorter than/);
  });

  it('names the source when given', () => {
    expect(() => parseSafeTensors(new Uint8Array(3), '/models/x.safetensors')).toThrow(/^\/models\/x\.safetensors: /);
  });
});

describe('accessors and writer checks', () => {
  const file = parseSafeTensors(concat(serializeSafeTensors(sample)));

  it('tensorAsFloat32 refuses integer dtypes and unknown names', () => {
    expect(() => tensorAsFloat32(file, 'i32')).toThrow(SafeTensorsError);
    expect(() => tensorAsFloat32(file, 'i32')).toThrow(/dtype I32/);
    expect(() => tensorAsFloat32(file, 'i64')).toThrow(/dtype I64/);
    expect(() => tensorAsFloat32(file, 'nope')).toThrow(/no tensor named "nope"/);
    expect(() => tensorBytes(file, 'nope')).toThrow(SafeTensorsError);
  });

  it('tensorAsFloat32 returns a copy, tensorBytes a view', () => {
    const a = tensorAsFloat32(file, 'w32');
    a[0] = 42;
    expect(tensorAsFloat32(file, 'w32')[0]).toBe(1);
    expect(tensorBytes(file, 'w32').buffer).toBe(file.buffer.buffer);
  });

  it('serialize checks names, shapes, data types and lengths', () => {
    const bad = (t: Record<string, unknown>, re: RegExp) =>
      expect(() => serializeSafeTensors(t as unknown as Record<string, TensorToWrite>)).toThrow(re);
    bad({ w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }, /"w".*3 elements.*2/);
    bad({ w: { dtype: 'F32', shape: [2], data: new Float64Array(2) } }, /F32 needs a Float32Array, got Float64Array/);
    bad({ w: { dtype: 'I64', shape: [2], data: new Int32Array(2) } }, /BigInt64Array/);
    bad({ w: { dtype: 'F16', shape: [2], data: new Int32Array(2) } }, /Uint16Array or Float32Array/);
    bad({ w: { dtype: 'U8', shape: [2], data: new Uint8Array(2) } }, /unsupported dtype/);
    bad({ w: { dtype: 'F32', shape: [-1], data: new Float32Array(0) } }, /shape/);
    bad({ __metadata__: { dtype: 'F32', shape: [0], data: new Float32Array(0) } }, /reserved/);
    expect(() => serializeSafeTensors({}, { a: 1 } as unknown as Record<string, string>)).toThrow(/metadata/);
  });

  it('writes subarray views without their neighbours', () => {
    const big = new Float32Array([9, 1, 2, 9]);
    const f = parseSafeTensors(concat(serializeSafeTensors({ v: { dtype: 'F32', shape: [2], data: big.subarray(1, 3) } })));
    expect(Array.from(tensorAsFloat32(f, 'v'))).toEqual([1, 2]);
  });
});
