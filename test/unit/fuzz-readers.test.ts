/**
 * Seeded fuzz of every file reader (issue 15, "File readers"; the figures are in docs/reliability.md):
 * safetensors, .npy, config.json (plain GPT-2 and LLaMA folders, memgen runs), tokenizer.json,
 * manifest.json, train-log.jsonl, PEFT adapters (adapter_config.json + adapter_model.safetensors)
 * and the sharded-weights index (model.safetensors.index.json).
 *
 * Each reader gets COUNT mutated files (5,000; MEMGEN_SOAK=1 multiplies by 10), each made from a
 * valid file written here by the engine's own writers: bit flips, byte edits, truncation, lying
 * lengths, shapes and dtypes, huge dimensions (2^40 elements), duplicated and overlapping tensor
 * ranges, negative / non-integer / non-finite numbers, deep and odd JSON. A mutation is tagged
 *   valid    it keeps the file valid (a flip in tensor data, re-ordered keys, other whitespace):
 *            the reader must accept it (and the unmutated originals);
 *   invalid  it breaks a rule of the format (a lying shape, a header length past the end): the
 *            reader must reject it;
 *   any      either, judged only by the rules below.
 * Every call must: return, or throw an Error that is not a TypeError / RangeError / SyntaxError /
 * ReferenceError (those come from deep inside) and whose message names the mutated file; take
 * under HANG_MS; allocate no typed array or Buffer larger than 2 x the bytes it reads + 64 KiB
 * (F16/BF16 weights double when converted to float32; counted by wrapping the typed-array
 * constructors and Buffer.alloc* while the reader runs, so a reader that sizes an array from a
 * lying header is caught even when the allocation would succeed). An accepted result is checked
 * for consistency (sizes = product of shapes, ...).
 *
 * Each case has its own seed: a failure prints `reader seed=S` and the mutation;
 * MEMGEN_FUZZ_REPLAY=reader:S runs that one case and prints what the reader did. MEMGEN_FUZZ_SEED
 * changes the base seed, MEMGEN_FUZZ_COUNT the count (before the soak factor); after a crash (the
 * worker killed, e.g. out of memory) MEMGEN_FUZZ_TRACE=FILE leaves the last case started in FILE.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forEachNpyChunk, readNpy, readNpyHeader, writeNpy } from '../../engine/analysis/npy';
import { indexWeights, loadHFTokenizer } from '../../engine/io/hf-folder';
import { saveParams } from '../../engine/io/params';
import {
  type SafeTensorsFile,
  type TensorToWrite,
  float32ToBF16,
  readSafeTensorsFile,
  readSafeTensorsHeader,
  serializeSafeTensors,
  tensorAsFloat32,
} from '../../engine/io/safetensors';
import { type GPT2Config, initGPT2, toHFConfig } from '../../engine/models/gpt2';
import { loadLlamaFolder } from '../../engine/models/llama-folder';
import { llama3TokenizerFiles, writeSyntheticLlamaFolder } from '../../engine/models/llama-synthetic';
import { LORA_DEFAULTS, type LoraConfig, initLora, loadAdapter, saveAdapter } from '../../engine/models/lora';
import { loadHFModel } from '../../engine/runs/hf-model';
import { baseHashes, loadLoraRun, readLoraManifest } from '../../engine/runs/lora-run';
import { loadRun, readTrainLog, trainLogProblem } from '../../engine/runs/run';
import { makeTask } from '../../engine/tasks';
import { truncateLog } from '../../engine/train/run-loop';
import { Rng } from '../../engine/util/rng';

const SOAK = process.env.MEMGEN_SOAK === '1' ? 10 : 1;
const SEED = Number(process.env.MEMGEN_FUZZ_SEED ?? 15);
const COUNT = Number(process.env.MEMGEN_FUZZ_COUNT ?? 5000) * SOAK;
const REPLAY = process.env.MEMGEN_FUZZ_REPLAY; // "reader:seed"
/** A file that gets each case's description before the reader runs: what killed the process, after a crash. */
const TRACE = process.env.MEMGEN_FUZZ_TRACE;
/** A single reader call slower than this is reported as a hang. */
const HANG_MS = 5000;
/** The wall-clock budget of one reader's loop (CI: 60 s on 2 cores). */
const LOOP_BUDGET_MS = 60_000 * SOAK;
const MEMORY = { availableBytes: 1e12 };

// ---------------------------------------------------------------- mutations

type Expect = 'valid' | 'invalid' | 'any';
interface Mutant {
  bytes: Uint8Array;
  what: string;
  expect: Expect;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(0, xs.length - 1)];
const chance = (rng: Rng, p: number): boolean => rng.uniform() < p;
const prod = (s: readonly number[]): number => s.reduce((p, d) => p * d, 1);
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

/** Byte-level edits anywhere in `b` (or in [lo, hi) when given): the generic mutations. */
function byteMutation(rng: Rng, b: Uint8Array, lo = 0, hi = b.length, expect: Expect = 'any'): Mutant {
  const out = b.slice();
  const at = () => rng.int(lo, Math.max(lo, hi - 1));
  const op = rng.int(0, 7);
  if (hi <= lo && op < 3) return { bytes: concat(b, new Uint8Array([0x41])), what: 'append 1 byte', expect };
  switch (op) {
    case 0: {
      const k = rng.int(1, 4);
      const where: string[] = [];
      for (let j = 0; j < k; j++) {
        const i = at();
        const bit = rng.int(0, 7);
        out[i] ^= 1 << bit;
        where.push(`${i}:${bit}`);
      }
      return { bytes: out, what: `flip bits ${where.join(' ')}`, expect };
    }
    case 1: {
      const i = at();
      const v = pick(rng, [0, 0xff, 0x7f, 0x80, 0x22, 0x7b, 0x5b, 0x2c, 0x2d, 0x39, 0x5c, 0x20, 0xc3, 0xed]);
      out[i] = v;
      return { bytes: out, what: `byte ${i} = 0x${v.toString(16)}`, expect };
    }
    case 2: {
      const i = at();
      const n = rng.int(1, 16);
      const rand = Uint8Array.from({ length: n }, () => rng.int(0, 255));
      return { bytes: concat(b.subarray(0, i), rand, b.subarray(i)), what: `insert ${n} random bytes at ${i}`, expect: expect === 'valid' ? 'any' : expect };
    }
    case 3: {
      if (expect === 'valid') return byteMutation(rng, b, lo, hi, expect);
      const n = rng.int(0, b.length - 1);
      return { bytes: b.slice(0, n), what: `truncate to ${n} of ${b.length} bytes`, expect: 'any' };
    }
    case 4: {
      const n = rng.int(1, 64);
      return { bytes: concat(b, Uint8Array.from({ length: n }, () => rng.int(0, 255))), what: `append ${n} random bytes`, expect: 'any' };
    }
    case 5: {
      const i = at();
      const n = rng.int(1, Math.min(32, b.length - i));
      return { bytes: concat(b.subarray(0, i), b.subarray(i + n)), what: `delete ${n} bytes at ${i}`, expect: 'any' };
    }
    case 6: {
      const i = at();
      const n = rng.int(1, Math.min(64, b.length - i));
      const j = rng.int(0, b.length);
      return { bytes: concat(b.subarray(0, j), b.subarray(i, i + n), b.subarray(j)), what: `copy ${n} bytes from ${i} to ${j}`, expect: 'any' };
    }
    default: {
      const i = at();
      const n = rng.int(1, Math.min(8, hi - i));
      for (let j = 0; j < n; j++) out[i + j] = rng.int(0, 255);
      return { bytes: out, what: `randomize ${n} bytes at ${i}`, expect };
    }
  }
}

// JSON: values are mutated as JS values, then written as text in which placeholder strings become
// what JSON.stringify cannot write (1e999, integers past 2^53, nesting 100,000 deep).
const DEEP = (n: number) => `__DEEP_${n}__`;
const RAW = (text: string) => `__RAW_${Buffer.from(text).toString('hex')}__`;
function jsonText(v: unknown, indent?: number | string): string {
  return JSON.stringify(v, null, indent)
    .replace(/"__DEEP_(\d+)__"/g, (_, n) => '['.repeat(Number(n)) + ']'.repeat(Number(n)))
    .replace(/"__RAW_([0-9a-f]*)__"/g, (_, h) => Buffer.from(h, 'hex').toString());
}
/** Depth a placeholder adds (for the MAX_JSON_DEPTH rule: past 100 levels a file is refused). */
const deepOf = (s: string): number => Math.max(0, ...[...s.matchAll(/__DEEP_(\d+)__/g)].map((m) => Number(m[1])));

type JPath = (string | number)[];
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A random node: descend while there are children and the coin says so. */
function randomPath(rng: Rng, root: unknown, descend = 0.65): JPath {
  const p: JPath = [];
  let v = root;
  for (;;) {
    const keys: (string | number)[] = Array.isArray(v) ? v.map((_, i) => i) : isObj(v) ? Object.keys(v) : [];
    if (keys.length === 0 || (p.length > 0 && !chance(rng, descend))) return p;
    const k = pick(rng, keys);
    p.push(k);
    v = (v as Record<string | number, unknown>)[k];
  }
}
const getAt = (root: unknown, p: JPath): unknown => p.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], root);
function setAt(root: unknown, p: JPath, value: unknown): unknown {
  if (p.length === 0) return value;
  const parent = getAt(root, p.slice(0, -1)) as Record<string | number, unknown>;
  Object.defineProperty(parent, p[p.length - 1], { value, enumerable: true, writable: true, configurable: true });
  return root;
}
function deleteAt(root: unknown, p: JPath): void {
  const parent = getAt(root, p.slice(0, -1));
  if (Array.isArray(parent)) parent.splice(p[p.length - 1] as number, 1);
  else delete (parent as Record<string, unknown>)[p[p.length - 1]];
}
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const showPath = (p: JPath) => (p.length === 0 ? '(root)' : p.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join(''));

const ODD_VALUES: [unknown, string][] = [
  [null, 'null'], [true, 'true'], [false, 'false'], [0, '0'], [-1, '-1'], [-0.5, '-0.5'], [0.5, '0.5'], [1.5, '1.5'],
  [2 ** 31, '2^31'], [-(2 ** 31), '-2^31'], [2 ** 40, '2^40'], [RAW('9007199254740993'), '2^53+1'], [1e308, '1e308'],
  [RAW('1e999'), '1e999 (Infinity)'], [RAW('-1e999'), '-1e999'], ['', '""'], ['x', '"x"'], ['x'.repeat(20_000), 'a 20,000-char string'],
  [[], '[]'], [{}, '{}'], [new Array(5000).fill(0), '5,000 zeros'], ['\u0000', '"\\u0000"'], [RAW('"\\ud800"'), 'a lone surrogate'],
  [DEEP(30), '30-deep array'], [DEEP(20_000), "20,000-deep array"], [RAW('{"__proto__": {"polluted": 1}}'), '__proto__ object'],
  [RAW('-0'), '-0'], [RAW('1E400'), '1E400'], [RAW('0.1e-400'), '1e-401'], ['3', '"3"'], [RAW('{"a": 1, "a": 2}'), 'duplicate keys'],
];

interface JSONRules {
  /** Top-level keys whose deletion, or replacement by a value of another type, makes the file invalid. */
  required?: string[];
  /** Unknown top-level keys are ignored (adding one keeps the file valid). */
  extraKeysOk?: boolean;
  /** The top level must be an object (replacing it is invalid). */
  objectRoot?: boolean;
}

/** A mutated JSON file: structured edits of the parsed value, text edits, or byte edits. */
const parsedOriginals = new WeakMap<Uint8Array, { text: string; value: unknown }>();

function jsonMutation(rng: Rng, orig: Uint8Array, rules: JSONRules): Mutant {
  let parsed = parsedOriginals.get(orig);
  if (!parsed) parsedOriginals.set(orig, (parsed = { text: dec.decode(orig), value: JSON.parse(dec.decode(orig)) as unknown }));
  const { text, value } = parsed;
  const r = rng.int(0, 99);
  if (r < 12) return byteMutation(rng, orig);
  if (r < 20) {
    // valid re-writings
    const op = rng.int(0, 3);
    if (op === 0) return { bytes: enc.encode(jsonText(value, pick(rng, [undefined, 1, 4, '\t']))), what: 'whitespace re-written', expect: 'valid' };
    if (op === 1) return { bytes: enc.encode(jsonText(reorderKeys(rng, value))), what: 'keys re-ordered', expect: 'valid' };
    if (op === 2) return { bytes: enc.encode(text.replace(/\n/g, '\r\n') + (chance(rng, 0.5) ? '\n\n' : '')), what: 'CRLF line ends', expect: 'valid' };
    if (rules.extraKeysOk && isObj(value)) {
      return { bytes: enc.encode(jsonText({ ...value, fuzz_extra_key: pick(rng, [1, 'x', null, [1, 2], { a: 1 }]) })), what: 'an unknown top-level key added', expect: 'valid' };
    }
    return { bytes: enc.encode(` ${text} `), what: 'spaces around', expect: 'valid' };
  }
  if (r < 30) {
    // text that is not JSON, or a top level of another type
    const op = rng.int(0, 6);
    const cut = rng.int(0, text.trimEnd().length - 1);
    if (op === 0) return { bytes: enc.encode(text.slice(0, cut)), what: `JSON cut at char ${cut}`, expect: 'invalid' };
    if (op === 1) return { bytes: concat(new Uint8Array([0xef, 0xbb, 0xbf]), orig), what: 'UTF-8 BOM in front', expect: 'invalid' };
    if (op === 2) return { bytes: enc.encode(text.trimEnd() + pick(rng, ['x', '}', ']', ',', '{}', 'null'])), what: 'garbage after the JSON', expect: 'invalid' };
    if (op === 3) return { bytes: new Uint8Array(0), what: 'empty file', expect: 'invalid' };
    if (op === 4) return { bytes: enc.encode(jsonText(DEEP(rng.int(101, 30_000)))), what: 'a deep array as the whole file', expect: 'invalid' };
    const top = pick(rng, ['[]', '5', '"x"', 'null', 'true', '[{}]']);
    return { bytes: enc.encode(top), what: `top level ${top}`, expect: rules.objectRoot === false ? 'any' : 'invalid' };
  }
  if (r < 45 && rules.required && rules.required.length > 0 && isObj(value)) {
    const k = pick(rng, rules.required);
    const v = clone(value);
    if (chance(rng, 0.5)) {
      delete v[k];
      return { bytes: enc.encode(jsonText(v)), what: `required '${k}' deleted`, expect: 'invalid' };
    }
    const wrong = typeof v[k] === 'string' ? { fuzz: 1 } : 'fuzz';
    v[k] = wrong;
    return { bytes: enc.encode(jsonText(v)), what: `required '${k}' = ${JSON.stringify(wrong)}`, expect: 'invalid' };
  }
  // structured edit of a random node
  const v = clone(value);
  const p = randomPath(rng, v);
  const op = rng.int(0, 9);
  let what: string;
  let deep = 0;
  let out: unknown = v;
  if (op <= 3) {
    const [odd, name] = pick(rng, ODD_VALUES);
    out = setAt(v, p, odd);
    what = `${showPath(p)} = ${name}`;
    if (typeof odd === 'string') deep = deepOf(odd);
  } else if (op === 4 && p.length > 0) {
    deleteAt(v, p);
    what = `${showPath(p)} deleted`;
  } else if (op === 5) {
    const cur = getAt(v, p);
    if (typeof cur === 'number') {
      const [f, name] = pick(rng, [[(x: number) => -x, 'negated'], [(x: number) => x + 1, '+1'], [(x: number) => x * 2, 'x2'], [(x: number) => x / 2, '/2'], [(x: number) => x * 2 ** 20, 'x2^20'], [(x: number) => x + 0.5, '+0.5']] as const);
      out = setAt(v, p, f(cur));
      what = `${showPath(p)} ${name}`;
    } else if (typeof cur === 'string') {
      out = setAt(v, p, pick(rng, [cur + 'x', cur.slice(0, -1), cur.toUpperCase(), Number(cur.length)]));
      what = `${showPath(p)} string edited`;
    } else if (Array.isArray(cur) && cur.length > 0) {
      const i = rng.int(0, cur.length - 1);
      if (chance(rng, 0.5)) cur.splice(i, 0, clone(cur[i]));
      else cur.reverse();
      what = `${showPath(p)} array duplicated element / reversed`;
    } else {
      out = setAt(v, p, 'fuzz');
      what = `${showPath(p)} = "fuzz"`;
    }
  } else if (op === 6) {
    const cur = getAt(v, p);
    const swapped = Array.isArray(cur) ? Object.fromEntries(cur.map((x, i) => [String(i), x])) : isObj(cur) ? Object.values(cur) : typeof cur === 'number' ? String(cur) : typeof cur === 'string' && cur !== '' && Number.isFinite(Number(cur)) ? Number(cur) : [cur];
    out = setAt(v, p, swapped);
    what = `${showPath(p)} type swapped`;
  } else if (op === 7) {
    const n = rng.int(2, 150);
    out = setAt(v, p, DEEP(n));
    deep = n;
    what = `${showPath(p)} = ${n}-deep array`;
  } else if (op === 8) {
    // a key written twice in the text (JSON.parse keeps the last)
    const t = jsonText(v);
    const i = t.indexOf('{');
    const k = isObj(v) && Object.keys(v).length > 0 ? pick(rng, Object.keys(v)) : 'k';
    const [odd, name] = pick(rng, ODD_VALUES.slice(0, 20));
    const dup = chance(rng, 0.5) ? `${JSON.stringify(k)}: ${jsonText(odd)}, ` : '';
    const bytes = enc.encode(i < 0 ? t : `${t.slice(0, i + 1)}${dup}${t.slice(i + 1)}`);
    return { bytes, what: dup ? `key '${k}' written twice (first ${name})` : 'unchanged', expect: dup ? 'any' : 'valid' };
  } else {
    const cur = getAt(v, p);
    if (isObj(cur)) {
      const [odd, name] = pick(rng, ODD_VALUES);
      const key = pick(rng, ['fuzz', '__proto__', 'constructor', '', 'a'.repeat(300)]);
      Object.defineProperty(cur, key, { value: odd, enumerable: true, writable: true, configurable: true }); // an own key, even '__proto__'
      what = `${showPath(p)} got a key ${JSON.stringify(key.slice(0, 12))} = ${name}`;
      if (typeof odd === 'string') deep = deepOf(odd) + 1;
    } else {
      out = setAt(v, p, null);
      what = `${showPath(p)} = null`;
    }
  }
  // Depth: the root object is level 1, a value at path p adds its own levels after p.length of them.
  return { bytes: enc.encode(jsonText(out)), what, expect: p.length + deep > 100 ? 'invalid' : 'any' };
}

function reorderKeys(rng: Rng, v: unknown): unknown {
  if (Array.isArray(v)) return v.map((x) => reorderKeys(rng, x));
  if (!isObj(v)) return v;
  const out: Record<string, unknown> = {};
  for (const k of rng.shuffle(Object.keys(v))) Object.defineProperty(out, k, { value: reorderKeys(rng, v[k]), enumerable: true, writable: true, configurable: true });
  return out;
}

// ---------------------------------------------------------------- safetensors mutations

const DT_SIZE: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
type Entry = { dtype: string; shape: unknown; data_offsets: unknown };

/** A safetensors file from a header value and a data section (declared length: the padded header's unless given). */
function stBytes(header: unknown, data: Uint8Array, opts: { declared?: bigint; text?: string; pad?: number } = {}): Uint8Array {
  let json = opts.text ?? jsonText(header);
  const pad = opts.pad ?? (8 - (enc.encode(json).length % 8)) % 8;
  json += ' '.repeat(pad);
  const head = enc.encode(json);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, opts.declared ?? BigInt(head.length), true);
  return concat(len, head, data);
}

function stSplit(orig: Uint8Array): { header: Record<string, unknown>; data: Uint8Array; headerLength: number } {
  const n = Number(new DataView(orig.buffer, orig.byteOffset, 8).getBigUint64(0, true));
  return { header: JSON.parse(dec.decode(orig.subarray(8, 8 + n))) as Record<string, unknown>, data: orig.subarray(8 + n), headerLength: n };
}

/**
 * `model`: the file is a model's (adapter, shard), whose reader also checks the tensor names, shapes
 * and dtypes against a config: a change of those that keeps the format valid is 'any' there.
 */
function safetensorsMutation(rng: Rng, orig: Uint8Array, model = false): Mutant {
  const m = safetensorsFormatMutation(rng, orig);
  return model && m.expect === 'valid' && !/data section|re-ordered|re-indented|__metadata__|header length/.test(m.what) ? { ...m, expect: 'any' } : m;
}

function safetensorsFormatMutation(rng: Rng, orig: Uint8Array): Mutant {
  const { header, data, headerLength } = stSplit(orig);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const sized = names.filter((k) => (header[k] as { data_offsets: number[] }).data_offsets[1] > (header[k] as { data_offsets: number[] }).data_offsets[0]);
  const r = rng.int(0, 99);
  if (r < 14) return byteMutation(rng, orig);
  if (r < 16) return byteMutation(rng, orig, 8, 8 + headerLength);
  if (r < 24 && data.length > 0) {
    const m = byteMutation(rng, orig, 8 + headerLength, orig.length, 'valid');
    return { ...m, what: `data section: ${m.what}` };
  }
  if (r < 32) {
    const total = orig.length - 8;
    const [declared, name] = pick(rng, [
      [BigInt(headerLength + rng.int(1, 64)), 'header length too long'],
      [BigInt(Math.max(0, headerLength - rng.int(1, Math.max(1, headerLength)))), 'header length too short'],
      [BigInt(total + 1), 'header length = file size - 7'],
      [2n ** 63n, 'header length 2^63'],
      [2n ** 64n - 1n, 'header length 2^64 - 1'],
      [100_000_001n, 'header length 100,000,001'],
      [BigInt(2 ** 40), 'header length 2^40'],
    ] as [bigint, string][]);
    const out = orig.slice();
    new DataView(out.buffer).setBigUint64(0, declared, true);
    return { bytes: out, what: name, expect: declared === BigInt(headerLength) ? 'valid' : 'invalid' };
  }
  if (r < 38) {
    if (chance(rng, 0.5) && data.length > 0) {
      const k = rng.int(1, Math.min(data.length, 64));
      return { bytes: orig.slice(0, orig.length - k), what: `data section cut by ${k} bytes`, expect: 'invalid' };
    }
    const k = rng.int(1, 64);
    return { bytes: concat(orig, new Uint8Array(k)), what: `${k} bytes after the last tensor`, expect: 'invalid' };
  }
  const h = clone(header);
  const redo = (what: string, expect: Expect, extra: { declared?: bigint; text?: string; pad?: number } = {}): Mutant => ({ bytes: stBytes(h, data, extra), what, expect });
  const op = rng.int(0, 17);
  const name = names.length > 0 ? pick(rng, names) : null;
  const t = name ? (h[name] as Entry) : null;
  const shape = t && Array.isArray(t.shape) ? (t.shape as number[]) : [];
  const [b, e] = t ? (t.data_offsets as number[]) : [0, 0];
  const nbytes = e - b;
  switch (op) {
    case 0: {
      if (!t) break;
      // a lying shape: one dimension changed, the byte range kept
      if (shape.length === 0) {
        t.shape = [pick(rng, [2, 2 ** 40, 0])];
        return redo(`${name}: 0-d shape -> [${(t.shape as number[])[0]}]`, prod(t.shape as number[]) !== 1 ? 'invalid' : 'valid');
      }
      const i = rng.int(0, shape.length - 1);
      const d = shape[i];
      const nd = pick(rng, [d + 1, d * 2, 2 ** 40, Math.max(0, d - 1), 2 ** 26, 3 * d + 7]);
      const ns = [...shape];
      ns[i] = nd;
      t.shape = ns;
      return redo(`${name}: shape [${shape}] -> [${ns}] (lying shape)`, prod(ns) === prod(shape) ? 'valid' : 'invalid');
    }
    case 1: {
      if (!t) break;
      const [v, vname] = pick(rng, [[-1, '-1'], [1.5, '1.5'], ['3', '"3"'], [null, 'null'], [1e308, '1e308'], [2 ** 53, '2^53'], [RAW('1e999'), '1e999'], [RAW('9007199254740993'), '2^53+1'], [RAW('-0'), '-0'], [[2], '[2]']] as [unknown, string][]);
      const ns: unknown[] = shape.length > 0 ? [...shape] : [1];
      const i = rng.int(0, ns.length - 1);
      ns[i] = v;
      t.shape = ns;
      // -0 is an integer >= 0 as far as JSON numbers go: it stays valid where 0 would be.
      return redo(`${name}: shape element ${i} = ${vname}`, vname === '-0' ? (prod(ns.map((x) => (x === RAW('-0') ? 0 : (x as number)))) === prod(shape) ? 'valid' : 'invalid') : 'invalid');
    }
    case 2: {
      if (!t) break;
      const [ns, sname] = pick(rng, [[[2 ** 20, 2 ** 20, 2 ** 20], '2^60 elements'], [[2 ** 40], '2^40 elements'], [[2 ** 31, 2 ** 31], '2^62 elements'], [[2 ** 53 - 1, 2], 'overflowing'], [[...shape, 1], 'a trailing 1 added'], [[...shape, 2], 'a trailing 2 added'], [[1, ...shape], 'a leading 1 added']] as [number[], string][]);
      t.shape = ns;
      return redo(`${name}: shape [${shape}] -> ${sname}`, prod(ns) === prod(shape) && ns.every(Number.isSafeInteger) ? 'valid' : 'invalid');
    }
    case 3: {
      if (!t) break;
      const other = pick(rng, Object.keys(DT_SIZE).filter((d) => d !== t.dtype));
      const same = DT_SIZE[other] === DT_SIZE[t.dtype] || nbytes === 0;
      const old = t.dtype;
      t.dtype = other;
      return redo(`${name}: dtype ${old} -> ${other}`, same ? 'valid' : 'invalid');
    }
    case 4: {
      if (!t) break;
      const bad = pick(rng, ['F8_E4M3', 'f32', 'F 32', '', 'float32', 'I128', 'F32\u0000']);
      t.dtype = pick(rng, [bad, 4, null, ['F32']] as unknown[]) as string;
      return redo(`${name}: dtype ${JSON.stringify(t.dtype)}`, 'invalid');
    }
    case 5: {
      if (!t || nbytes === 0) break;
      const k = rng.int(1, 64);
      const [nb, ne, oname] = pick(rng, [[b, e + k, 'end too far'], [b + k, e + k, 'range shifted up'], [Math.max(0, b - k), Math.max(0, b - k) + nbytes, 'range shifted down'], [b, Math.max(b, e - k), 'end too short'], [e, b, 'begin/end swapped'], [b, data.length + k, 'end past the data section'], [b, 2 ** 40, 'end 2^40']] as [number, number, string][]);
      t.data_offsets = [nb, ne];
      return redo(`${name}: data_offsets [${b}, ${e}] -> [${nb}, ${ne}] (${oname})`, nb === b && ne === e ? 'valid' : 'invalid');
    }
    case 6: {
      if (!t) break;
      const v = pick(rng, [[b + 0.5, e], [-8, e], [b], [b, e, e], [String(b), e], [b, null], {}, null, [b, RAW('1e999')], [RAW('9007199254740993'), e]] as unknown[]);
      t.data_offsets = v;
      return redo(`${name}: data_offsets = ${jsonText(v)}`, 'invalid');
    }
    case 7: {
      // two tensors on the same bytes (duplicated range): the other one's shape and dtype copied too
      if (sized.length < 2 || !name || !sized.includes(name)) break;
      const o = pick(rng, sized.filter((x) => x !== name));
      h[name] = clone(h[o]);
      return redo(`${name}: duplicates the range of ${o}`, 'invalid');
    }
    case 8: {
      // overlapping ranges: the boundary between two neighbours moved (both shapes kept)
      if (sized.length < 2 || !t || nbytes === 0) break;
      const next = names.find((x) => (h[x] as { data_offsets: number[] }).data_offsets[0] === e && x !== name);
      if (!next) break;
      const n = h[next] as { data_offsets: number[] };
      const k = rng.int(1, 16);
      n.data_offsets = [n.data_offsets[0] - k, n.data_offsets[1]];
      return redo(`${next}: begins ${k} bytes inside ${name} (overlap)`, 'invalid');
    }
    case 9: {
      if (!name || nbytes === 0) break;
      delete h[name];
      return redo(`${name} removed from the header (its bytes left)`, 'invalid');
    }
    case 10: {
      const at = pick(rng, [0, data.length, b, e]);
      h['fuzz.zero'] = { dtype: pick(rng, ['F32', 'BF16', 'U8']), shape: pick(rng, [[0], [3, 0], [0, 2 ** 40]]), data_offsets: [at, at] };
      return redo(`an empty tensor added at ${at}`, 'valid');
    }
    case 11: {
      const k = rng.int(1, 16);
      const at = rng.int(0, Math.max(0, data.length - k));
      h['fuzz.overlap'] = { dtype: 'U8', shape: [k], data_offsets: [at, at + k] };
      return redo(`a ${k}-byte tensor added over bytes ${at}..${at + k}`, 'invalid'); // overlaps a tensor, or lies past the data section
    }
    case 12: {
      const meta = (isObj(h.__metadata__) ? h.__metadata__ : {}) as Record<string, unknown>;
      if (chance(rng, 0.5)) {
        meta[pick(rng, ['fuzz', 'format', '', '__proto__'])] = pick(rng, ['x', '', 'y'.repeat(1000)]);
        h.__metadata__ = meta;
        return redo('__metadata__ string added', 'valid');
      }
      const [v, vname] = pick(rng, [[1, '1'], [null, 'null'], [['x'], '["x"]'], [DEEP(rng.int(2, 20_000)), 'deep array'], [{ a: 'b' }, 'object']] as [unknown, string][]);
      meta.fuzz = v;
      h.__metadata__ = meta;
      return redo(`__metadata__ value ${vname}`, 'invalid');
    }
    case 13: {
      const v = pick(rng, [[], 'x', 5, null, ['a']] as unknown[]);
      h.__metadata__ = v;
      return redo(`__metadata__ = ${JSON.stringify(v)}`, 'invalid');
    }
    case 14:
      return { bytes: stBytes(reorderKeys(rng, h), data), what: 'header keys re-ordered', expect: 'valid' };
    case 15: {
      const pad = rng.int(0, 40);
      return { bytes: stBytes(h, data, { text: jsonText(h, pick(rng, [undefined, 1, 2, '\t'])), pad }), what: `header re-indented, ${pad} spaces of padding`, expect: 'valid' };
    }
    case 16: {
      const v = pick(rng, [[], 5, 'x', null, [h]] as unknown[]);
      return { bytes: stBytes(v, data), what: `header JSON ${JSON.stringify(v)?.slice(0, 20)}`, expect: 'invalid' };
    }
    default: {
      if (!t) break;
      (t as Record<string, unknown>)[pick(rng, ['extra', '__proto__', 'offsets'])] = pick(rng, [1, 'x', DEEP(rng.int(2, 20)), DEEP(rng.int(200, 20_000))]);
      const deep = deepOf(JSON.stringify(t));
      return redo(`${name}: unknown field added${deep ? ` (${deep} deep)` : ''}`, deep + 2 > 100 ? 'invalid' : 'valid');
    }
  }
  return byteMutation(rng, orig);
}

// ---------------------------------------------------------------- .npy mutations

function npyFile(dict: string, data: Uint8Array, opts: { version?: 1 | 2 | 3; declared?: number; pad?: boolean } = {}): Uint8Array {
  const version = opts.version ?? 1;
  const pre = version === 1 ? 10 : 12;
  let text = dict;
  if (opts.pad !== false) text = dict.padEnd(Math.ceil((pre + dict.length + 1) / 64) * 64 - pre - 1, ' ') + '\n';
  const head = enc.encode(text);
  const out = new Uint8Array(pre + head.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, Math.min(0xffff, opts.declared ?? head.length), true);
  else dv.setUint32(8, opts.declared ?? head.length, true);
  out.set(head, pre);
  return concat(out, data);
}

const pyTuple = (s: readonly (number | string)[]) => (s.length === 1 ? `(${s[0]},)` : `(${s.join(', ')})`);

function npyMutation(rng: Rng, orig: Uint8Array, shape: number[]): Mutant {
  const hlen = new DataView(orig.buffer, orig.byteOffset).getUint16(8, true);
  const data = orig.subarray(10 + hlen);
  const dict = (s: string, descr = "'<f4'", order = 'False', keys?: string[]) => {
    const parts: Record<string, string> = { descr: `'descr': ${descr}`, fortran_order: `'fortran_order': ${order}`, shape: `'shape': ${s}` };
    return `{${(keys ?? ['descr', 'fortran_order', 'shape']).map((k) => parts[k]).filter(Boolean).join(', ')}, }`;
  };
  const r = rng.int(0, 99);
  if (r < 15) return byteMutation(rng, orig);
  if (r < 20) return byteMutation(rng, orig, 0, 10 + hlen);
  if (r < 30 && data.length > 0) {
    const m = byteMutation(rng, orig, 10 + hlen, orig.length, 'valid');
    return { ...m, what: `data: ${m.what}` };
  }
  const op = rng.int(0, 11);
  switch (op) {
    case 0: {
      // the same values seen under another shape of the same size: valid
      const n = prod(shape);
      const ns = pick(rng, [[n], [1, n], [n, 1], n === 0 ? [0, 5] : [n], n % 2 === 0 ? [2, n / 2] : [n], [...shape, 1], [1, ...shape]]);
      return { bytes: npyFile(dict(pyTuple(ns)), data), what: `shape ${pyTuple(shape)} -> ${pyTuple(ns)} (same size)`, expect: 'valid' };
    }
    case 1: {
      const ns: (number | string)[] = shape.length > 0 ? [...shape] : [1];
      const i = rng.int(0, ns.length - 1);
      const [v, vname] = pick(rng, [[(ns[i] as number) + 1, '+1'], [(ns[i] as number) * 2 + 1, 'x2+1'], [2 ** 40, '2^40'], ['-1', '-1'], ['1.5', '1.5'], ['x', 'x'], ['99999999999999999999', '1e20'], ['0x10', '0x10'], [`${2 ** 26}`, '2^26']] as [number | string, string][]);
      ns[i] = v;
      const numeric = ns.every((x) => /^[0-9]+$/.test(String(x)) && Number.isSafeInteger(Number(x))); // (0, 10^20) is past int64 for NumPy too
      return { bytes: npyFile(dict(pyTuple(ns)), data), what: `shape element ${i} = ${vname}`, expect: numeric && prod(ns.map(Number)) === prod(shape) ? 'valid' : 'invalid' };
    }
    case 2: {
      const ns = pick(rng, [[2 ** 20, 2 ** 20, 2 ** 20], [2 ** 40], [2 ** 31, 2 ** 31], [2 ** 26, 2 ** 26, 2 ** 26, 2 ** 26]]);
      return { bytes: npyFile(dict(pyTuple(ns)), data), what: `shape ${pyTuple(ns)} (huge)`, expect: 'invalid' };
    }
    case 3: {
      const d = pick(rng, ["'<f8'", "'>f4'", "'<i4'", "'|b1'", "'<f2'", "'f4'", "'<U4'", '5', "'|O'"]);
      return { bytes: npyFile(dict(pyTuple(shape), d), data), what: `descr ${d}`, expect: 'invalid' };
    }
    case 4:
      return { bytes: npyFile(dict(pyTuple(shape), "'<f4'", 'True'), data), what: 'fortran_order True', expect: shape.filter((d) => d > 1).length <= 1 ? 'any' : 'invalid' };
    case 5: {
      const keys = rng.shuffle(['descr', 'fortran_order', 'shape']);
      const q = chance(rng, 0.5);
      let t = dict(pyTuple(shape), "'<f4'", 'False', keys);
      if (q) t = t.replace(/'/g, '"');
      return { bytes: npyFile(t, data), what: `dict keys ${keys.join(',')}${q ? ', double quotes' : ''}`, expect: 'valid' };
    }
    case 6: {
      const drop = pick(rng, ['descr', 'fortran_order', 'shape']);
      return { bytes: npyFile(dict(pyTuple(shape), "'<f4'", 'False', ['descr', 'fortran_order', 'shape'].filter((k) => k !== drop)), data), what: `no '${drop}'`, expect: 'invalid' };
    }
    case 7: {
      const v = pick(rng, [2, 3] as const);
      return { bytes: npyFile(dict(pyTuple(shape)), data, { version: v }), what: `version ${v}.0 layout`, expect: 'valid' };
    }
    case 8: {
      const out = orig.slice();
      const [i, val, vname] = pick(rng, [[6, 4, 'version 4.0'], [7, 1, 'version 1.1'], [6, 0, 'version 0.0'], [6, 2, 'version 2.0 bytes with a 2-byte length'], [0, 0x94, 'magic']] as [number, number, string][]);
      out[i] = val;
      return { bytes: out, what: vname, expect: 'invalid' };
    }
    case 9: {
      const out = orig.slice();
      const d = pick(rng, [hlen + 64, hlen - 64, hlen + 1, hlen - 1, 0xffff, 0]);
      new DataView(out.buffer).setUint16(8, Math.max(0, Math.min(0xffff, d)), true);
      return { bytes: out, what: `header length ${hlen} -> ${d}`, expect: 'invalid' };
    }
    case 10: {
      if (data.length > 0 && chance(rng, 0.5)) {
        const k = rng.int(1, Math.min(64, data.length));
        return { bytes: orig.slice(0, orig.length - k), what: `data cut by ${k} bytes`, expect: 'invalid' };
      }
      const k = rng.int(1, 64);
      return { bytes: concat(orig, new Uint8Array(k)), what: `${k} trailing bytes`, expect: 'invalid' };
    }
    default: {
      const t = pick(rng, ['[1, 2]', "{'descr': '<f4'", "'descr': '<f4', 'fortran_order': False, 'shape': (3,)", '', "{'shape': (2,), 'shape': (3,), 'descr': '<f4', 'fortran_order': False}"]);
      return { bytes: npyFile(t, data), what: `header text ${JSON.stringify(t).slice(0, 40)}`, expect: 'any' };
    }
  }
}

// ---------------------------------------------------------------- train-log.jsonl mutations

function trainLogMutation(rng: Rng, orig: Uint8Array): Mutant {
  const lines = dec.decode(orig).split('\n').filter((l) => l !== '');
  const i = rng.int(0, lines.length - 1);
  const o = JSON.parse(lines[i]) as Record<string, unknown>;
  const out = (ls: string[], what: string, expect: Expect, nl = '\n'): Mutant => ({ bytes: enc.encode(ls.join(nl) + nl), what, expect });
  const r = rng.int(0, 11);
  switch (r) {
    case 0:
      return byteMutation(rng, orig);
    case 1:
      return out(lines, 'CRLF line ends', 'valid', '\r\n');
    case 2: {
      const ls = [...lines];
      ls.splice(i, 0, pick(rng, ['', '   ', '\t']));
      return out(ls, `blank line at ${i + 1}`, 'valid');
    }
    case 3: {
      const ls = [...lines];
      ls[i] = jsonText(reorderKeys(rng, { ...o, fuzzExtra: pick(rng, [1, 'x', null, [1], { a: 1 }]) }), chance(rng, 0.3) ? 1 : undefined).replace(/\n/g, ' ');
      return out(ls, `line ${i + 1}: keys re-ordered, an extra field`, 'valid');
    }
    case 4: {
      const cut = rng.int(1, lines[lines.length - 1].length - 2);
      const ls = [...lines];
      ls[ls.length - 1] = ls[ls.length - 1].slice(0, cut);
      return { bytes: enc.encode(ls.join('\n')), what: `last line cut at ${cut} (a crash in mid-write)`, expect: 'invalid' };
    }
    case 5: {
      const ls = [...lines];
      const g = pick(rng, ['garbage', '{', '[]', 'null', '5', '"x"', '{}', '{"kind": "train"}', '{"step": 5}', '\u0000\u0000', '{"step": -1, "kind": "train"}', '{"step": 1.5, "kind": "eval"}', '{"step": "10", "kind": "train"}', '{"step": 10, "kind": 5}']);
      ls.splice(i, 0, g);
      return out(ls, `line ${i + 1} = ${JSON.stringify(g)}`, 'invalid');
    }
    case 6: {
      const k = pick(rng, Object.keys(o).filter((x) => typeof o[x] === 'number' && x !== 'step').concat(['loss']));
      const ls = [...lines];
      ls[i] = jsonText({ ...o, [k]: RAW(pick(rng, ['1e999', '-1e999'])) });
      return out(ls, `line ${i + 1}: ${k} = 1e999 (Infinity)`, 'invalid');
    }
    case 7: {
      const ls = [...lines];
      ls[i] = jsonText({ ...o, step: pick(rng, [-5, 0.5, '12', null, 2 ** 53 + 2, RAW('1e999')]) });
      return out(ls, `line ${i + 1}: step broken`, 'invalid');
    }
    case 8: {
      const ls = [...lines];
      ls[i] = jsonText({ ...o, [pick(rng, ['gen', 'mem', 'other', 'guess', 'loss', 'kind', 'counts'])]: pick(rng, ODD_VALUES)[0] });
      return out(ls, `line ${i + 1}: a field made odd`, deepOf(ls[i]) > 99 ? 'invalid' : 'any');
    }
    case 9: {
      const ls = [...lines];
      ls.splice(i, 0, jsonText(DEEP(rng.int(101, 20_000))));
      return out(ls, `line ${i + 1}: a deep array`, 'invalid');
    }
    case 10: {
      const ls = [...lines];
      ls.splice(i, 0, ...ls.slice(i, i + rng.int(1, 5)));
      return out(ls, `lines from ${i + 1} duplicated`, 'valid');
    }
    default: {
      const ls = [...lines];
      ls[i] = ls[i] + pick(rng, [' x', '}', ',', '{"step":1,"kind":"x"}']);
      return out(ls, `line ${i + 1}: text after the object`, 'invalid');
    }
  }
}

// ---------------------------------------------------------------- the harness

interface Target {
  /** The file that gets mutated. */
  file: string;
  original: Uint8Array;
  mutate(rng: Rng, orig: Uint8Array): Mutant;
  /** The reader call (synchronous). */
  read(): unknown;
  /** Throws when an accepted result is inconsistent. */
  check?(result: unknown): void;
  /** Bytes of the other files the reader reads (the allocation bound counts them too). */
  otherBytes: number;
  /** For tolerant readers (train-log): the problem message instead of a throw, or null when clean. */
  problem?(result: unknown): string | null;
  /** Relative frequency among the reader's targets (1). */
  weight?: number;
  /** A call slower than this is a hang (HANG_MS). */
  hangMs?: number;
}

function pickTarget(rng: Rng, ts: Target[]): Target {
  let u = rng.uniform() * ts.reduce((n, t) => n + (t.weight ?? 1), 0);
  for (const t of ts) if ((u -= t.weight ?? 1) < 0) return t;
  return ts[ts.length - 1];
}

const TRACKED_CTORS = ['ArrayBuffer', 'SharedArrayBuffer', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array'] as const;
const TRACKED_BUFFER = ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const;

/** Runs `fn` with every typed-array / ArrayBuffer construction and Buffer.alloc* counted (bytes). */
function tracked<T>(fn: () => T): { value?: T; error?: unknown; largest: number; total: number } {
  let largest = 0;
  let total = 0;
  const note = (n: number) => {
    if (!(n >= 0)) n = Infinity; // NaN / negative sizes: the construction throws, but the reader asked for it
    largest = Math.max(largest, n);
    total += n;
  };
  const g = globalThis as unknown as Record<string, unknown>;
  const savedCtors = TRACKED_CTORS.map((k) => g[k]);
  const savedBuffer = TRACKED_BUFFER.map((k) => Buffer[k]);
  TRACKED_CTORS.forEach((k, i) => {
    const target = savedCtors[i] as (new (...a: unknown[]) => unknown) & { BYTES_PER_ELEMENT?: number };
    const per = target.BYTES_PER_ELEMENT ?? 1;
    const proxy: unknown = new Proxy(target, {
      construct(t, args, newTarget) {
        const a = args[0];
        if (typeof a === 'number') note(a * per);
        else if (typeof a === 'object' && a !== null && !(a instanceof ArrayBuffer) && !(typeof SharedArrayBuffer !== 'undefined' && a instanceof SharedArrayBuffer)) {
          note(Number((a as { length?: number }).length ?? 0) * per);
        }
        return Reflect.construct(t, args, newTarget === proxy ? t : newTarget) as object;
      },
    });
    g[k] = proxy;
  });
  TRACKED_BUFFER.forEach((k, i) => {
    const orig = savedBuffer[i] as (size: number, ...rest: unknown[]) => Buffer;
    (Buffer as unknown as Record<string, unknown>)[k] = (size: number, ...rest: unknown[]) => {
      note(size);
      return orig.call(Buffer, size, ...rest);
    };
  });
  try {
    return { value: fn(), largest, total };
  } catch (error) {
    return { error, largest, total };
  } finally {
    TRACKED_CTORS.forEach((k, i) => (g[k] = savedCtors[i]));
    TRACKED_BUFFER.forEach((k, i) => ((Buffer as unknown as Record<string, unknown>)[k] = savedBuffer[i]));
  }
}

/** What makes a rejection unclean (null when it is clean). */
function uncleanWhy(e: unknown, file: string): string | null {
  if (!(e instanceof Error)) return `threw a non-Error ${String(e)}`;
  for (const c of [TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError]) {
    if (e instanceof c) return `threw a ${c.name} from inside: ${e.message.slice(0, 300)}\n${e.stack?.split('\n').slice(1, 6).join('\n')}`;
  }
  if (!e.message.includes(file)) return `error does not name ${file}: ${e.message.slice(0, 300)}`;
  return null;
}

interface Stats {
  reader: string;
  files: number;
  rejected: number;
  accepted: number;
  validAccepted: number;
  invalidRejected: number;
  ms: number;
  /** Time inside the reader calls (the rest: making, writing and checking the files). */
  readerMs: number;
  mutateMs: number;
  ioMs: number;
  checkMs: number;
  slowest: { ms: number; what: string };
  /** Largest single allocation / bytes read, over the cases reading 4 KiB or more. */
  worstAllocRatio: number;
  /** Largest single allocation (bytes) of the cases reading less (fixed-size buffers: fs's 8 KiB, headers). */
  smallFileAlloc: number;
}

function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
const caseSeed = (reader: string, i: number): number => (Math.imul(hash32(reader) ^ SEED, 0x9e3779b1) + Math.imul(i + 1, 0x85ebca6b)) >>> 0;

const ALLOC_SLACK = 64 * 1024;
const allStats: Stats[] = [];

/** Runs one case: mutates the target, calls the reader, judges the outcome; returns the failure or null. */
function runCase(reader: string, seed: number, targets: Target[], stats: Stats, verbose = false): string | null {
  const t0 = performance.now();
  const rng = new Rng(seed);
  const t = pickTarget(rng, targets);
  const m = t.mutate(rng, t.original);
  const t1 = performance.now();
  fs.writeFileSync(t.file, m.bytes);
  stats.mutateMs += t1 - t0;
  stats.ioMs += performance.now() - t1;
  const n = t.otherBytes + m.bytes.length;
  if (TRACE) fs.writeFileSync(TRACE, `${reader} seed=${seed} ${m.what}\n`);
  const started = performance.now();
  const r = tracked(() => t.read());
  const ms = performance.now() - started;
  stats.readerMs += ms;
  const where = `${reader} seed=${seed} (replay: MEMGEN_FUZZ_REPLAY=${reader}:${seed}) file ${path.basename(t.file)}, mutation: ${m.what} [${m.expect}]`;
  if (ms > stats.slowest.ms) stats.slowest = { ms, what: `${path.basename(t.file)}, ${m.what}` };
  let failure: string | null = null;
  const fail = (why: string) => (failure ??= `${where}: ${why}`);
  if (verbose) console.log(`${where}\n  -> ${r.error !== undefined ? `threw ${(r.error as Error)?.constructor?.name}: ${(r.error as Error)?.message}` : 'accepted'}; ${ms.toFixed(1)} ms; largest allocation ${r.largest} bytes for ${n} bytes read`);
  if (ms > (t.hangMs ?? HANG_MS)) fail(`took ${ms.toFixed(0)} ms (hang?)`);
  if (r.largest > 2 * n + ALLOC_SLACK) fail(`allocated ${r.largest} bytes at once reading ${n} bytes`);
  if (n >= 4096) stats.worstAllocRatio = Math.max(stats.worstAllocRatio, r.largest / n);
  else stats.smallFileAlloc = Math.max(stats.smallFileAlloc, r.largest);
  let rejected: boolean;
  if (r.error !== undefined) {
    rejected = true;
    const why = uncleanWhy(r.error, t.file);
    if (why) fail(why);
  } else if (t.problem) {
    const p = t.problem(r.value);
    rejected = p !== null;
    if (p !== null && !p.includes(t.file)) fail(`problem does not name ${t.file}: ${p}`);
  } else rejected = false;
  const t2 = performance.now();
  if (!rejected && t.check) {
    try {
      t.check(r.value);
    } catch (e) {
      fail(`accepted, but the result is inconsistent: ${(e as Error).message}`);
    }
  }
  if (rejected && m.expect === 'valid') fail(`a valid file was rejected: ${String((r.error as Error)?.message ?? (t.problem ? t.problem(r.value) : '')).slice(0, 400)}`);
  if (!rejected && m.expect === 'invalid') fail('a bad file was accepted');
  stats.files++;
  if (rejected) stats.rejected++;
  else stats.accepted++;
  if (!rejected && m.expect === 'valid') stats.validAccepted++;
  if (rejected && m.expect === 'invalid') stats.invalidRejected++;
  const t3 = performance.now();
  stats.checkMs += t3 - t2;
  fs.writeFileSync(t.file, t.original);
  stats.ioMs += performance.now() - t3;
  return failure;
}

function fuzzReader(reader: string, targets: () => Target[], count = COUNT): void {
  it(`${reader}: ${count} mutated files, each rejected with a clean error naming the file or read consistently`, () => {
    const ts = targets();
    const stats: Stats = { reader, files: 0, rejected: 0, accepted: 0, validAccepted: 0, invalidRejected: 0, ms: 0, readerMs: 0, mutateMs: 0, ioMs: 0, checkMs: 0, slowest: { ms: 0, what: '' }, worstAllocRatio: 0, smallFileAlloc: 0 };
    if (REPLAY) {
      const [name, seed] = REPLAY.split(':');
      if (name === reader) console.log(runCase(reader, Number(seed), ts, stats, true) ?? 'passed');
      return;
    }
    // The unmutated originals are read first: valid files are never rejected.
    for (const t of ts) {
      const r = tracked(() => t.read());
      expect(r.error, `${reader}: the valid original ${t.file} was rejected`).toBeUndefined();
      if (t.problem) expect(t.problem(r.value)).toBeNull();
      t.check?.(r.value);
    }
    const failures: string[] = [];
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const f = runCase(reader, caseSeed(reader, i), ts, stats);
      if (f) failures.push(f);
      if (failures.length >= 20) break;
    }
    stats.ms = performance.now() - started;
    allStats.push(stats);
    console.log(
      `fuzz ${reader}: ${stats.files} mutated files, ${stats.rejected} rejected with a clean error (${stats.invalidRejected} of them breaking a rule by construction), ` +
        `${stats.accepted} accepted (${stats.validAccepted} valid by construction); ${(stats.ms / 1000).toFixed(1)} s (reader calls ${(stats.readerMs / 1000).toFixed(1)} s, making files ${(stats.mutateMs / 1000).toFixed(1)} s, writing ${(stats.ioMs / 1000).toFixed(1)} s, checks ${(stats.checkMs / 1000).toFixed(1)} s, ` +
        `slowest ${stats.slowest.ms.toFixed(0)} ms: ${stats.slowest.what.slice(0, 80)}); largest allocation ` +
        `${stats.worstAllocRatio ? `${stats.worstAllocRatio.toFixed(2)} x the bytes read (reads of 4 KiB or more), ` : ''}${stats.smallFileAlloc} bytes on smaller reads; base seed ${SEED}`,
    );
    expect(failures, failures.join('\n\n')).toEqual([]);
    expect(stats.ms).toBeLessThan(LOOP_BUDGET_MS);
  });
}

// ---------------------------------------------------------------- fixtures

let root: string;
beforeAll(() => {
  // Two small writes a case: in memory (tmpfs) where there is one, 20x faster than a disk's temp folder.
  const shm = '/dev/shm';
  const tmpBase = fs.existsSync(shm) && fs.statSync(shm).isDirectory() && isWritable(shm) ? shm : os.tmpdir();
  root = fs.mkdtempSync(path.join(tmpBase, 'memgen-fuzz-'));
  // Warm up what loads once per process (the F16 table, the tokenizer library), outside the tracked calls.
  tensorAsFloat32({ metadata: {}, tensors: new Map([['t', { dtype: 'F16', shape: [1], begin: 0, end: 2 }]]), buffer: new Uint8Array(2) }, 't');
  const f16 = path.join(root, 'warm-up-f16');
  writeSyntheticLlamaFolder(f16, { seed: 1, shards: 1, dtype: 'F16', config: TINY_LLAMA });
  loadLlamaFolder(f16, { tokenizer: false, availableBytes: MEMORY.availableBytes }); // io/hf-folder.ts's F16 table, built once
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function isWritable(dir: string): boolean {
  try {
    fs.accessSync(dir, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
const sizeOf = (files: string[]): number => files.reduce((n, f) => n + fs.statSync(f).size, 0);
const filesIn = (dir: string): string[] => fs.readdirSync(dir).map((f) => path.join(dir, f)).filter((f) => fs.statSync(f).isFile());
const read = (f: string) => new Uint8Array(fs.readFileSync(f));
function jsonTarget(file: string, others: string[], rules: JSONRules, readFn: () => unknown, check?: (v: unknown) => void): Target {
  return { file, original: read(file), mutate: (rng, o) => jsonMutation(rng, o, rules), read: readFn, check, otherBytes: sizeOf(others.filter((f) => f !== file)) };
}

/** Consistency of an accepted safetensors file: byte ranges inside the data, sizes = dtype x product(shape). */
function checkSafeTensors(st: SafeTensorsFile): void {
  let sum = 0;
  for (const [name, t] of st.tensors) {
    const want = DT_SIZE[t.dtype] * prod(t.shape);
    if (!(t.begin >= 0 && t.begin <= t.end && t.end <= st.buffer.length)) throw new Error(`${name}: range [${t.begin}, ${t.end}] outside ${st.buffer.length} bytes`);
    if (t.end - t.begin !== want) throw new Error(`${name}: ${t.end - t.begin} bytes for ${want}`);
    sum += want;
    if (['F32', 'F16', 'BF16', 'F64'].includes(t.dtype) && tensorAsFloat32(st, name).length !== prod(t.shape)) throw new Error(`${name}: wrong float32 length`);
  }
  if (sum !== st.buffer.length) throw new Error(`tensors cover ${sum} of ${st.buffer.length} bytes`);
}

function safetensorsTargets(): Target[] {
  const dir = path.join(root, 'safetensors');
  fs.mkdirSync(dir);
  const rng = new Rng(SEED);
  return Array.from({ length: 7 }, (_, v) => {
    const tensors = new Map<string, TensorToWrite>();
    const dims = () => Array.from({ length: rng.int(0, 3) }, () => rng.int(v === 5 ? 0 : 1, 5));
    const f = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
    const s1 = dims();
    tensors.set(`layer.${v}.weight`, { dtype: 'F32', shape: s1, data: f(prod(s1)) });
    const s2 = dims();
    tensors.set('half', { dtype: pick(rng, ['F16', 'BF16'] as const), shape: s2, data: f(prod(s2)) });
    const s3 = dims();
    tensors.set('ids', v % 2 ? { dtype: 'I64', shape: s3, data: BigInt64Array.from({ length: prod(s3) }, (_, i) => BigInt(i)) } : { dtype: 'F64', shape: s3, data: Float64Array.from(f(prod(s3))) });
    if (v > 2) tensors.set('bf', { dtype: 'BF16', shape: [2, 3], data: float32ToBF16(f(6)) });
    if (v === 4) tensors.set('empty', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) });
    if (v === 6) {
      // a larger file (8 KiB), so the allocation bound is measured on more than headers
      tensors.set('big.f32', { dtype: 'F32', shape: [32, 32], data: f(1024) });
      tensors.set('big.f16', { dtype: 'F16', shape: [32, 64], data: f(2048) });
    }
    const file = path.join(dir, `v${v}.safetensors`);
    fs.writeFileSync(file, concat(...serializeSafeTensors(tensors, v % 3 === 0 ? undefined : { format: 'pt' })));
    return {
      file, original: read(file), mutate: safetensorsMutation, otherBytes: 0,
      read: () => {
        const st = readSafeTensorsFile(file);
        // what callers do next: float tensors as float32 (F16/BF16 double in size)
        for (const [name, t] of st.tensors) if (['F32', 'F16', 'BF16', 'F64'].includes(t.dtype)) tensorAsFloat32(st, name);
        // the header-only reader (how a folder's shards are indexed) must agree
        const h = readSafeTensorsHeader(file);
        return { st, h };
      },
      check: (v: unknown) => {
        const { st, h } = v as { st: SafeTensorsFile; h: ReturnType<typeof readSafeTensorsHeader> };
        checkSafeTensors(st);
        if (JSON.stringify([...h.tensors]) !== JSON.stringify([...st.tensors])) throw new Error('readSafeTensorsHeader disagrees with readSafeTensorsFile');
      },
    } satisfies Target;
  });
}

/** readSafeTensorsFile and readSafeTensorsHeader must also agree on rejections; checked in the safetensors reader's loop. */
function safetensorsAgreementTargets(): Target[] {
  return safetensorsTargets().map((t) => ({
    ...t,
    read: () => {
      let a: unknown;
      let b: unknown;
      try {
        readSafeTensorsFile(t.file);
      } catch (e) {
        a = e;
      }
      try {
        readSafeTensorsHeader(t.file);
      } catch (e) {
        b = e;
      }
      if ((a === undefined) !== (b === undefined)) throw new TypeError(`readSafeTensorsFile ${a ? 'rejects' : 'accepts'} but readSafeTensorsHeader ${b ? `rejects (${(b as Error).message})` : 'accepts'}: ${(a as Error)?.message}`);
      if (a) throw a;
      return t.read();
    },
  }));
}

function npyTargets(): Target[] {
  const dir = path.join(root, 'npy');
  fs.mkdirSync(dir);
  const rng = new Rng(SEED + 1);
  const shapes = [[3, 4], [5], [], [2, 3, 4], [0, 7], [7, 1]];
  return shapes.map((shape, v) => {
    const file = path.join(dir, `v${v}.npy`);
    writeNpy(file, Float32Array.from({ length: prod(shape) }, () => rng.normal()), shape);
    return {
      file, original: read(file), otherBytes: 0,
      mutate: (r: Rng, o: Uint8Array) => npyMutation(r, o, shape),
      read: () => {
        const a = readNpy(file);
        const h = readNpyHeader(file);
        let rows = 0;
        if (a.shape.length > 0) forEachNpyChunk(file, 2, (_, __, count) => (rows += count));
        return { a, h, rows };
      },
      check: (x: unknown) => {
        const { a, h, rows } = x as { a: { shape: number[]; data: Float32Array }; h: { shape: number[] }; rows: number };
        if (a.data.length !== prod(a.shape)) throw new Error(`data ${a.data.length} for shape ${a.shape}`);
        if (JSON.stringify(h.shape) !== JSON.stringify(a.shape)) throw new Error('readNpyHeader disagrees');
        if (a.shape.length > 0 && rows !== a.shape[0]) throw new Error(`forEachNpyChunk gave ${rows} rows`);
      },
    } satisfies Target;
  });
}

const TOK = llama3TokenizerFiles(24);
const TINY_LLAMA = { hiddenSize: 16, intermediateSize: 24, numLayers: 1, numHeads: 2, numKVHeads: 1, headDim: 8 };

/** A plain GPT-2 folder; its tokenizer.json is a task's word-level one (loads in 1 ms; the LLaMA BPE one is fuzzed on its own). */
function writeGPT2Folder(dir: string): void {
  const task = makeTask('cipher', { scale: 'tiny', seed: 1 });
  const cfg: GPT2Config = { vocabSize: task.tokenizer.vocab.length, nPositions: 16, nEmbd: 8, nLayer: 1, nHead: 2, layerNormEps: 1e-5 };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...toHFConfig(cfg, { bosTokenId: 0, eosTokenId: 1 }), architectures: ['GPT2LMHeadModel'] }, null, 2));
  saveParams(path.join(dir, 'model.safetensors'), initGPT2(cfg, new Rng(3)));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), task.tokenizer.toHuggingFaceJSON());
}

function writeLlamaFolder(dir: string, shards: number): void {
  writeSyntheticLlamaFolder(dir, { seed: 5, shards, dtype: 'BF16', config: TINY_LLAMA });
}

/** A memgen GPT-2 run folder as `memgen train` leaves it (tiny model, random weights). */
function writeGPT2Run(dir: string): void {
  const memgen = { task: 'arithmetic', scale: 'tiny', seed: 2, preset: 'tiny', memRate: 0.05, memPatternRatio: 1, minOperand: 10, memTagPieces: 2 };
  const task = makeTask('arithmetic', memgen as never);
  const cfg: GPT2Config = { vocabSize: task.tokenizer.vocab.length, nPositions: 24, nEmbd: 8, nLayer: 1, nHead: 2, layerNormEps: 1e-5 };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...toHFConfig(cfg, { bosTokenId: task.tokenizer.eoaId, eosTokenId: task.tokenizer.eoaId }), memgen }, null, 2) + '\n');
  saveParams(path.join(dir, 'model.safetensors'), initGPT2(cfg, new Rng(4)));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), task.tokenizer.toHuggingFaceJSON());
  const now = '2026-01-01T00:00:00.000Z';
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({
    format: 'memgen-run/1', status: 'done', task: 'arithmetic', taskDescription: task.description, scale: 'tiny', seed: 2, preset: 'tiny',
    command: 'memgen train --task arithmetic --preset tiny', train: { steps: 30, batch: 4, lr: 0.003, stopWhenBoth: null }, data: task.dataConfig,
    versions: { memgen: '0.1.0', node: 'v20' }, gitCommit: null, createdAt: now, updatedAt: now, steps: 30, trainSeconds: 1.5,
    best: { step: 30, eval: { step: 30, n: 8, gen: 0.25, mem: 0.125, other: 0.625, guess: null, score: 0.03 } },
    hashes: { 'model.safetensors': 'sha256:00' },
  }, null, 2) + '\n');
  const log: string[] = [];
  for (let s = 10; s <= 30; s += 10) {
    log.push(JSON.stringify({ step: s, kind: 'train', loss: 2.5 / s, lr: 0.003, gradNorm: 1.25, seconds: s / 10 }));
    if (s % 20 === 0 || s === 30) log.push(JSON.stringify({ step: s, kind: 'eval', n: 8, counts: { gen: 2, mem: 1, other: 5 }, gen: 0.25, mem: 0.125, other: 0.625, guess: null, score: 0.03, plainAccuracy: null }));
  }
  fs.writeFileSync(path.join(dir, 'train-log.jsonl'), log.join('\n') + '\n');
}

const LORA: LoraConfig = { ...LORA_DEFAULTS, r: 2, targetModules: ['q_proj', 'v_proj'] };

/** A LoRA run on `baseDir` (adapter_config.json, adapter_model.safetensors, manifest.json). */
function writeLoraRun(dir: string, baseDir: string): void {
  const base = loadLlamaFolder(baseDir, { tokenizer: false });
  saveAdapter(dir, base.config, LORA, initLora(base.config, LORA), { baseDir });
  const task = makeTask('arithmetic', { scale: 'tiny', seed: 1 });
  const now = '2026-01-01T00:00:00.000Z';
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({
    format: 'memgen-lora-run/1', system: 'lora', status: 'done', base: { dir: baseDir, hashes: baseHashes(baseDir), note: null },
    task: 'arithmetic', taskDescription: task.description, scale: 'tiny', seed: 1, memRate: 0.07, promptFormat: 'plain', lora: LORA,
    command: 'memgen train --base B --lora', train: { trainSize: 64, epochs: 1, batch: 16, lr: 2e-3, seq: 40 }, data: task.dataConfig, versions: { memgen: '0.1.0' }, gitCommit: null,
    createdAt: now, updatedAt: now, steps: 4, trainSeconds: 2, best: null, hashes: {},
  }, null, 2) + '\n');
}

/** An accepted model's tensors: every array the size its shape says. */
function checkParams(params: Map<string, { shape: number[]; data: Float32Array }>): void {
  for (const [n, p] of params) if (p.data.length !== prod(p.shape)) throw new Error(`${n}: ${p.data.length} values for [${p.shape}]`);
}

function configTargets(): Target[] {
  const gpt2 = path.join(root, 'config-gpt2');
  writeGPT2Folder(gpt2);
  const llama = path.join(root, 'config-llama');
  writeLlamaFolder(llama, 1);
  const run = path.join(root, 'config-run');
  writeGPT2Run(run);
  const modelCheck = (v: unknown) => {
    const m = v as Awaited<ReturnType<typeof loadHFModel>>;
    checkParams(m.gpt2?.params ?? m.llama!.params);
    m.tokenizer.encode('A B C');
  };
  return [
    jsonTarget(path.join(gpt2, 'config.json'), filesIn(gpt2), { required: ['model_type', 'vocab_size', 'n_embd', 'n_layer', 'n_head', 'n_positions'], extraKeysOk: true }, () => loadHFModel(gpt2, MEMORY), modelCheck),
    jsonTarget(path.join(llama, 'config.json'), filesIn(llama), { required: ['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size'], extraKeysOk: true }, () => loadLlamaFolder(llama, { tokenizer: false, ...MEMORY }), (v) => checkParams((v as ReturnType<typeof loadLlamaFolder>).params)),
    // through the dispatch on model_type (and the folder's tokenizer), less often: it is slower
    { ...jsonTarget(path.join(llama, 'config.json'), filesIn(llama), { required: ['model_type', 'vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size'], extraKeysOk: true }, () => loadHFModel(llama, MEMORY), modelCheck), weight: 0.25 },
    jsonTarget(path.join(run, 'config.json'), filesIn(run), { required: ['memgen', 'vocab_size', 'n_embd', 'n_layer', 'n_head', 'n_positions'], extraKeysOk: true }, () => loadRun(run, MEMORY), (v) => checkParams((v as ReturnType<typeof loadRun>).params)),
  ];
}

/** LLaMA-3's byte-level BPE (with tokenizer_config.json and its chat template), and a task's word-level tokenizer. */
function tokenizerTargets(): Target[] {
  const bpe = path.join(root, 'tokenizer-bpe');
  fs.mkdirSync(bpe);
  fs.writeFileSync(path.join(bpe, 'tokenizer.json'), JSON.stringify(TOK.tokenizer));
  fs.writeFileSync(path.join(bpe, 'tokenizer_config.json'), JSON.stringify(TOK.tokenizerConfig, null, 2));
  const word = path.join(root, 'tokenizer-word');
  fs.mkdirSync(word);
  fs.writeFileSync(path.join(word, 'tokenizer.json'), makeTask('arithmetic', { scale: 'tiny', seed: 1 }).tokenizer.toHuggingFaceJSON());
  const check = (v: unknown) => {
    (v as ReturnType<typeof loadHFTokenizer>).encode('The cat sat on the mat. 12 + 34 = 46');
  };
  const rules: JSONRules = { required: ['model'], extraKeysOk: true };
  return [
    { ...jsonTarget(path.join(bpe, 'tokenizer.json'), filesIn(bpe), rules, () => loadHFTokenizer(bpe), check), weight: 3 },
    jsonTarget(path.join(bpe, 'tokenizer_config.json'), filesIn(bpe), { extraKeysOk: true }, () => loadHFTokenizer(bpe), check),
    { ...jsonTarget(path.join(word, 'tokenizer.json'), filesIn(word), rules, () => loadHFTokenizer(word), check), weight: 3 },
  ];
}

function manifestTargets(): Target[] {
  const run = path.join(root, 'manifest-run');
  writeGPT2Run(run);
  const base = path.join(root, 'manifest-base');
  writeLlamaFolder(base, 1);
  const lora = path.join(root, 'manifest-lora');
  writeLoraRun(lora, base);
  const common = ['format', 'status', 'task', 'seed', 'steps', 'hashes', 'train', 'data', 'versions', 'scale', 'command', 'createdAt', 'trainSeconds'];
  return [
    jsonTarget(path.join(run, 'manifest.json'), filesIn(run), { required: [...common, 'preset'], extraKeysOk: true }, () => loadRun(run, MEMORY), (v) => checkParams((v as ReturnType<typeof loadRun>).params)),
    jsonTarget(path.join(lora, 'manifest.json'), [], { required: [...common, 'system', 'base', 'memRate', 'promptFormat', 'lora'], extraKeysOk: true }, () => readLoraManifest(path.join(lora, 'manifest.json'))),
    // the whole LoRA run (base folder, hashes, adapter, the task through the base's tokenizer: 0.1-1 s), rarely
    { ...jsonTarget(path.join(lora, 'manifest.json'), [...filesIn(lora), ...filesIn(base)], { required: [...common, 'system', 'base', 'memRate', 'promptFormat', 'lora'], extraKeysOk: true }, () => loadLoraRun(lora), (v) => checkParams((v as ReturnType<typeof loadLoraRun>).adapter.params)), weight: 0.004, hangMs: 30_000 },
  ];
}

function trainLogTargets(): Target[] {
  const run = path.join(root, 'trainlog-run');
  writeGPT2Run(run);
  const file = path.join(run, 'train-log.jsonl');
  const copy = path.join(run, 'truncated.jsonl');
  const target = (truncate: boolean): Target => ({
    file, original: read(file), otherBytes: 0, mutate: trainLogMutation, weight: truncate ? 0.1 : 1,
    read: () => {
      const log = readTrainLog(file);
      if (!truncate) return { log, kept: { lines: [], skipped: [] } };
      // resume's truncation (an atomic rewrite, fsync'd: less often) keeps exactly the readable lines up to the step
      fs.copyFileSync(file, copy);
      truncateLog(copy, 20);
      const kept = readTrainLog(copy);
      return { log, kept };
    },
    problem: (v: unknown) => {
      const { log } = v as { log: ReturnType<typeof readTrainLog> };
      return log.skipped.length > 0 ? trainLogProblem(file, log.skipped) : null;
    },
    check: (v: unknown) => {
      const { log, kept } = v as { log: ReturnType<typeof readTrainLog>; kept: ReturnType<typeof readTrainLog> };
      for (const l of log.lines) {
        if (!Number.isSafeInteger(l.step) || l.step < 0 || typeof l.kind !== 'string') throw new Error(`line ${JSON.stringify(l).slice(0, 80)}`);
        for (const x of Object.values(l)) if (typeof x === 'number' && !Number.isFinite(x)) throw new Error('a non-finite number');
      }
      if (kept.skipped.length > 0 || kept.lines.some((l) => l.step > 20)) throw new Error('truncateLog kept an unreadable line or a later step');
    },
  });
  return [target(false), target(true)];
}

function adapterTargets(): Target[] {
  const base = path.join(root, 'adapter-base');
  writeLlamaFolder(base, 1);
  const model = loadLlamaFolder(base, { tokenizer: false }).config;
  const dir = path.join(root, 'adapter');
  saveAdapter(dir, model, LORA, initLora(model, LORA), { baseDir: base });
  const files = filesIn(dir);
  const load = () => loadAdapter(dir, model);
  const check = (v: unknown) => checkParams((v as ReturnType<typeof loadAdapter>).params);
  const st = path.join(dir, 'adapter_model.safetensors');
  return [
    jsonTarget(path.join(dir, 'adapter_config.json'), files, { required: ['peft_type', 'target_modules'], extraKeysOk: true }, load, check),
    { file: st, original: read(st), mutate: (r, o) => safetensorsMutation(r, o, true), read: load, check, otherBytes: sizeOf(files.filter((f) => f !== st)) },
  ];
}

function indexTargets(): Target[] {
  const dir = path.join(root, 'index');
  writeLlamaFolder(dir, 2);
  const files = filesIn(dir);
  const load = () => {
    const idx = indexWeights(dir);
    const f = loadLlamaFolder(dir, { tokenizer: false, availableBytes: MEMORY.availableBytes });
    return { idx, f };
  };
  const check = (v: unknown) => checkParams((v as { f: ReturnType<typeof loadLlamaFolder> }).f.params);
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  const shardNames = files.map((f) => path.basename(f)).filter((f) => f.endsWith('.safetensors'));
  const mutateIndex = (rng: Rng, o: Uint8Array): Mutant => {
    const idx = JSON.parse(dec.decode(o)) as { metadata: Record<string, unknown>; weight_map: Record<string, string> };
    const tensors = Object.keys(idx.weight_map);
    const t = pick(rng, tensors);
    const r = rng.int(0, 9);
    const out = (what: string, expect: Expect): Mutant => ({ bytes: enc.encode(jsonText(idx)), what, expect });
    if (r === 0) {
      const other = shardNames.find((s) => s !== idx.weight_map[t])!;
      idx.weight_map[t] = other;
      return out(`${t} placed in the other shard`, 'invalid');
    }
    if (r === 1) {
      delete idx.weight_map[t];
      return out(`${t} left out of the weight_map`, 'invalid');
    }
    if (r === 2) {
      idx.weight_map['model.layers.99.fuzz.weight'] = pick(rng, shardNames);
      return out('a tensor no shard holds', 'invalid');
    }
    if (r === 3) {
      const bad = pick(rng, ['../model-00001-of-00002.safetensors', '/etc/passwd', '', '.', '..', 'model.safetensors.index.json', 'missing-00003.safetensors', 'model-00001-of-00002.safetensors\u0000', '.hidden.safetensors', 'sub/x.safetensors', 'C:\\x.safetensors']);
      idx.weight_map[t] = bad;
      return out(`${t} -> ${JSON.stringify(bad)}`, 'invalid');
    }
    if (r === 4) {
      idx.metadata = pick(rng, [{}, { total_size: -1 }, { total_size: 'x' }, { total_size: 2 ** 60 }]) as Record<string, unknown>;
      return out('metadata changed (unused)', 'valid');
    }
    return jsonMutation(rng, o, { required: ['weight_map'], extraKeysOk: true });
  };
  return [
    { file: indexFile, original: read(indexFile), mutate: mutateIndex, read: load, check, otherBytes: sizeOf(files.filter((f) => f !== indexFile)) },
    { file: indexFile, original: read(indexFile), mutate: mutateIndex, read: load, check, otherBytes: sizeOf(files.filter((f) => f !== indexFile)) },
    ...shardNames.map((s) => {
      const file = path.join(dir, s);
      return { file, original: read(file), mutate: (r: Rng, o: Uint8Array) => safetensorsMutation(r, o, true), read: load, check, otherBytes: sizeOf(files.filter((f) => f !== file)) };
    }),
  ];
}

describe('fuzzed file readers (seeded; docs/reliability.md)', () => {
  fuzzReader('safetensors', safetensorsAgreementTargets);
  fuzzReader('npy', npyTargets);
  fuzzReader('config.json', configTargets);
  fuzzReader('tokenizer.json', tokenizerTargets);
  fuzzReader('manifest.json', manifestTargets);
  fuzzReader('train-log.jsonl', trainLogTargets);
  fuzzReader('adapter', adapterTargets);
  fuzzReader('index', indexTargets);

  it('rejects a lying shape before allocating: a 2^40-element header in a 100-byte file', () => {
    const file = path.join(root, 'lying.safetensors');
    const header = { w: { dtype: 'F32', shape: [2 ** 20, 2 ** 20], data_offsets: [0, 2 ** 42] } };
    fs.writeFileSync(file, stBytes(header, new Uint8Array(16)));
    const r = tracked(() => readSafeTensorsFile(file));
    expect((r.error as Error).message).toContain(file);
    expect(r.largest).toBeLessThan(1024);
    const npy = path.join(root, 'lying.npy');
    fs.writeFileSync(npy, npyFile(`{'descr': '<f4', 'fortran_order': False, 'shape': (${2 ** 40},), }`, new Uint8Array(16)));
    const n = tracked(() => readNpy(npy));
    expect((n.error as Error).message).toContain(npy);
    expect(n.largest).toBeLessThan(1024);
  });

  afterAll(() => {
    if (allStats.length > 0) console.log(`fuzz total: ${allStats.reduce((n, s) => n + s.files, 0)} files over ${allStats.length} readers in ${(allStats.reduce((n, s) => n + s.ms, 0) / 1000).toFixed(1)} s`);
  });
});
