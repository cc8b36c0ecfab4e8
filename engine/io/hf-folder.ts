/**
 * A Hugging Face model folder as users have it on disk (a `save_pretrained` or hub snapshot):
 *
 *   DIR/config.json                              the model's config
 *   DIR/model.safetensors                        one file, or
 *   DIR/model.safetensors.index.json             {"metadata": {...}, "weight_map": {tensor: shard file}}
 *   DIR/model-0000N-of-0000M.safetensors         with the shards it names
 *   DIR/tokenizer.json, DIR/tokenizer_config.json   (@huggingface/tokenizers)
 *   chat template: tokenizer_config.json "chat_template" (a string, or a list of {name, template},
 *                  "default" taken) or DIR/chat_template.jinja; rendered with @huggingface/jinja
 * Tensors are read with safetensors.ts (headers validated as untrusted input) and converted to
 * float32 (F32, F16 and BF16 accepted; BF16 is exact in float32). The folder is only read, never written.
 *
 * Memory estimate, before any weight is read (estimateLoadMemory):
 *   W      = weights as float32 = 4 bytes x parameters
 *   needed = 2 W (the JS arrays and onnxruntime's copy)
 *          + 3 W when W <= 64 MiB (the serialised ONNX model and onnxruntime's parse of it; larger
 *            models go through external-data files, io/onnx-external.ts, written from the arrays)
 *          + the largest shard file (read whole before conversion)
 *   measured on a 122M-parameter model (W = 490 MB, 2 shards of 123 MB): estimate 1.10 GB, peak RSS
 *   1.10 GB after creating the inference session. Training needs more (activations and gradients).
 *   available = MemAvailable of /proc/meminfo (os.freemem() elsewhere)
 * A model that does not fit is refused before loading, with needed vs available and the fixes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import type { ParamSet } from './params';
import { EXTERNAL_DATA_ABOVE } from './onnx-external';
import { parseJSONLimited, shortJSON } from '../util/json';
import { type SafeTensorsFile, readSafeTensorsFile, readSafeTensorsHeader, type SafeDType, tensorAsFloat32, tensorBytes } from './safetensors';

export const HF_FILES = {
  config: 'config.json',
  weights: 'model.safetensors',
  index: 'model.safetensors.index.json',
  tokenizer: 'tokenizer.json',
  tokenizerConfig: 'tokenizer_config.json',
  chatTemplate: 'chat_template.jinja',
} as const;

export class HFFolderError extends Error {
  override name = 'HFFolderError';
}

/** Which file holds each tensor, and the files' dtypes and element counts (headers only). */
export interface WeightIndex {
  files: string[];
  /** tensor name -> file (relative to the folder). */
  where: Map<string, string>;
  shapes: Map<string, number[]>;
  dtypes: Map<string, SafeDType>;
  /** Bytes of the largest file. */
  largestFile: number;
  parameters: number;
  /** Whether the files come from model.safetensors.index.json (else model.safetensors alone). */
  indexed?: boolean;
}

function readTextFile(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    throw new HFFolderError(`${what} ${file} is missing or unreadable`);
  }
}

function readJSONFile(file: string, what: string): unknown {
  const text = readTextFile(file, what);
  try {
    return parseJSONLimited(text);
  } catch (e) {
    throw new HFFolderError(`${file}: not valid JSON (${(e as Error).message}); restore the file or save the model again`);
  }
}

export function readHFConfig(dir: string): unknown {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new HFFolderError(`${dir} is not a folder`);
  return readJSONFile(path.join(dir, HF_FILES.config), 'the model config');
}

/** A shard name of an index's weight_map: a plain file name in the folder, ending in .safetensors. */
function isShardName(f: string): boolean {
  return f.endsWith('.safetensors') && f.length > '.safetensors'.length && !/[/\\\0]/.test(f) && !f.startsWith('.');
}

/** The folder's weight files, from model.safetensors or model.safetensors.index.json; headers only. */
export function indexWeights(dir: string): WeightIndex {
  const single = path.join(dir, HF_FILES.weights);
  const indexFile = path.join(dir, HF_FILES.index);
  const where = new Map<string, string>();
  let files: string[];
  const indexed = fs.existsSync(indexFile);
  if (indexed) {
    const idx = readJSONFile(indexFile, 'the weight index') as { weight_map?: unknown };
    const wm = idx?.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw new HFFolderError(`${indexFile}: 'weight_map' must be an object of tensor -> file`);
    for (const [t, f] of Object.entries(wm)) {
      if (typeof f !== 'string' || !isShardName(f)) {
        throw new HFFolderError(`${indexFile}: tensor '${t}' maps to ${shortJSON(f)}, not the name of a .safetensors file in the folder (e.g. "model-00001-of-00002.safetensors"); fix the weight_map or save the model again`);
      }
      where.set(t, f);
    }
    if (where.size === 0) throw new HFFolderError(`${indexFile}: 'weight_map' is empty; it must name the shard of every tensor (save the model again)`);
    files = [...new Set(where.values())].sort();
    for (const f of files) {
      const shard = path.join(dir, f);
      if (!fs.existsSync(shard)) throw new HFFolderError(`${indexFile} names ${f}, which is missing from ${dir} (download it, or save the model again)`);
      if (!fs.statSync(shard).isFile()) throw new HFFolderError(`${indexFile} names ${f}, which is not a file in ${dir}`);
    }
  } else if (fs.existsSync(single)) {
    files = [HF_FILES.weights];
  } else {
    const bin = fs.existsSync(path.join(dir, 'pytorch_model.bin')) || fs.existsSync(path.join(dir, 'pytorch_model.bin.index.json'));
    throw new HFFolderError(`${dir}: no ${HF_FILES.weights} or ${HF_FILES.index}${bin ? ' (pytorch_model.bin pickles are not read; convert with save_pretrained(safe_serialization=True))' : ''}`);
  }
  const shapes = new Map<string, number[]>();
  const dtypes = new Map<string, SafeDType>();
  let largestFile = 0;
  let parameters = 0;
  for (const f of files) {
    const file = path.join(dir, f);
    largestFile = Math.max(largestFile, fs.statSync(file).size);
    for (const [name, info] of readSafeTensorsHeader(file).tensors) {
      if (!indexed) where.set(name, f);
      else if (where.get(name) !== f) throw new HFFolderError(`${file} holds '${name}', which ${indexFile} places in ${where.get(name) ?? 'no file'}; fix the weight_map or save the model again`);
      shapes.set(name, info.shape);
      dtypes.set(name, info.dtype);
      parameters += info.shape.reduce((p, d) => p * d, 1);
    }
  }
  for (const [t, f] of where) if (!shapes.has(t)) throw new HFFolderError(`${indexFile} places '${t}' in ${f}, which does not hold it; fix the weight_map or save the model again`);
  return { files, where, shapes, dtypes, largestFile, parameters, indexed };
}

export interface MemoryEstimate {
  neededBytes: number;
  availableBytes: number;
  weightsFloat32Bytes: number;
}

/** Bytes the system can give without swapping: MemAvailable on Linux, os.freemem() elsewhere. */
export function availableMemory(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return os.freemem();
}

export function estimateLoadMemory(index: Pick<WeightIndex, 'parameters' | 'largestFile'>, available = availableMemory()): MemoryEstimate {
  const weightsFloat32Bytes = 4 * index.parameters;
  const serialised = weightsFloat32Bytes <= EXTERNAL_DATA_ABOVE ? 3 * weightsFloat32Bytes : 0;
  return { neededBytes: 2 * weightsFloat32Bytes + serialised + index.largestFile, availableBytes: available, weightsFloat32Bytes };
}

const GB = 1024 ** 3;
const gb = (b: number) => `${(b / GB).toFixed(2)} GB`;

/** Throws, with needed vs available and the fixes, when the model would not fit. */
export function checkLoadMemory(dir: string, est: MemoryEstimate): void {
  if (est.neededBytes > est.availableBytes) {
    throw new HFFolderError(
      `${dir}: loading needs about ${gb(est.neededBytes)} of memory (float32 weights ${gb(est.weightsFloat32Bytes)}, held twice or more while ` +
        `onnxruntime builds its session), but ${gb(est.availableBytes)} is available. Fixes: a machine with more memory or a GPU ` +
        '(--provider cuda), a smaller model, or half precision weights in the engine (not implemented yet).',
    );
  }
}

/**
 * Reads the tensors named in `expected` (name -> shape) as float32, converting F16/BF16. A missing
 * tensor, a shape mismatch or a dtype other than F32/F16/BF16 is an error naming the file and the
 * tensor; tensors the folder holds beyond `expected` are reported in `unused`.
 */
export function readHFWeights(dir: string, expected: Map<string, number[]>, opts: { index?: WeightIndex } = {}): { params: ParamSet; unused: string[]; dtypes: Set<SafeDType> } {
  const index = opts.index ?? indexWeights(dir);
  for (const [name, shape] of expected) {
    const got = index.shapes.get(name);
    if (!got) {
      const from = index.indexed ? `${path.join(dir, HF_FILES.index)} maps it to no shard` : `${path.join(dir, HF_FILES.weights)} does not hold it`;
      throw new HFFolderError(`${dir}: tensor '${name}' is missing (${from}), but ${path.join(dir, HF_FILES.config)} needs it; the config and the weights are of different models`);
    }
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new HFFolderError(`${path.join(dir, index.where.get(name)!)}: tensor '${name}' has shape [${got}], the config needs [${shape}] (${path.join(dir, HF_FILES.config)}); the config and the weights are of different models`);
    }
    const dt = index.dtypes.get(name)!;
    if (dt !== 'F32' && dt !== 'F16' && dt !== 'BF16') throw new HFFolderError(`${dir}/${index.where.get(name)}: tensor '${name}' is ${dt}; only F32, F16 and BF16 weights are read`);
  }
  const params: ParamSet = new Map();
  const dtypes = new Set<SafeDType>();
  for (const f of index.files) {
    const names = [...expected.keys()].filter((n) => index.where.get(n) === f);
    if (names.length === 0) continue;
    const st = readSafeTensorsFile(path.join(dir, f)); // one shard in memory at a time
    for (const n of names) {
      params.set(n, { shape: [...expected.get(n)!], data: fastFloat32(st, n) });
      dtypes.add(st.tensors.get(n)!.dtype);
    }
  }
  const unused = [...index.shapes.keys()].filter((n) => !expected.has(n));
  return { params, unused, dtypes };
}

let f16Table: Float32Array | undefined;

/**
 * tensorAsFloat32 with typed-array views instead of a DataView call per element: BF16 bits shifted
 * into the top half of a float32, F16 through a 65536-entry table filled by tensorAsFloat32 itself,
 * F32 copied. Same values, bit for bit (the loader tests compare with the stored values exactly);
 * unaligned data (never in files written by safetensors, whose offsets are multiples of 8 after
 * the header) falls back to tensorAsFloat32.
 */
function fastFloat32(st: SafeTensorsFile, name: string): Float32Array {
  const info = st.tensors.get(name)!;
  const b = tensorBytes(st, name);
  const little = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  if (!little || b.byteOffset % (info.dtype === 'F32' ? 4 : 2) !== 0) return tensorAsFloat32(st, name);
  if (info.dtype === 'F32') return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice();
  const src = new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
  const out = new Float32Array(src.length);
  if (info.dtype === 'BF16') {
    const bits = new Int32Array(out.buffer); // `<< 16` is an int32: stored as is
    for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
    return out;
  }
  if (info.dtype === 'F16') {
    if (!f16Table) {
      const all = new Uint16Array(65536).map((_, i) => i);
      const bytes = new Uint8Array(all.buffer);
      f16Table = tensorAsFloat32({ metadata: {}, tensors: new Map([['t', { dtype: 'F16', shape: [65536], begin: 0, end: bytes.length }]]), buffer: bytes }, 't');
    }
    for (let i = 0; i < src.length; i++) out[i] = f16Table[src[i]];
    return out;
  }
  return tensorAsFloat32(st, name);
}

// ---------------------------------------------------------------- tokenizer and chat template

export interface ChatMessage {
  role: string;
  content: string;
}

export interface HFTokenizer {
  tokenizer: Tokenizer;
  config: Record<string, unknown>;
  /** The chat template's source, or null when the folder has none. */
  chatTemplate: string | null;
  bosToken: string | null;
  eosToken: string | null;
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** The chat template rendered as text (special tokens included as text; encode without adding them). */
  renderChat(messages: readonly ChatMessage[], opts?: { addGenerationPrompt?: boolean; extra?: Record<string, unknown> }): string;
  /** Token ids of a rendered chat (the template writes bos itself, so no special tokens are added). */
  encodeChat(messages: readonly ChatMessage[], opts?: { addGenerationPrompt?: boolean; extra?: Record<string, unknown> }): number[];
}

function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The tokenizer text the loader encodes once, so that a tokenizer.json that loads but cannot encode is refused at load. */
const TOKENIZER_PROBE = 'Hello, world! 12 + 34 = 46.';

export function loadHFTokenizer(dir: string): HFTokenizer {
  const tokFile = path.join(dir, HF_FILES.tokenizer);
  const tokJson = readJSONFile(tokFile, 'the tokenizer');
  const fix = 'save it again with tokenizer.save_pretrained(DIR) in Python';
  if (!isObject(tokJson) || !isObject(tokJson.model)) throw new HFFolderError(`${tokFile}: not a Hugging Face tokenizer (a JSON object with a "model" object); ${fix}`);
  const cfgFile = path.join(dir, HF_FILES.tokenizerConfig);
  const cfgJson = fs.existsSync(cfgFile) ? readJSONFile(cfgFile, 'the tokenizer config') : {};
  if (!isObject(cfgJson)) throw new HFFolderError(`${cfgFile}: not a JSON object; ${fix}`);
  const config = cfgJson;
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokJson, config);
    tokenizer.encode(TOKENIZER_PROBE); // a tokenizer that loads but cannot encode fails here, not in the middle of a run
  } catch (e) {
    throw new HFFolderError(`${tokFile}: @huggingface/tokenizers cannot load it (${String((e as Error)?.message ?? e).slice(0, 300)}); ${fix}`);
  }
  let chatTemplate: string | null = null;
  const ct = config.chat_template;
  if (typeof ct === 'string') chatTemplate = ct;
  else if (Array.isArray(ct)) {
    if (!ct.every((t) => isObject(t) && typeof t.template === 'string')) {
      throw new HFFolderError(`${cfgFile}: chat_template must be a string or a list of {"name", "template"} objects with string templates`);
    }
    const named = ct as { name?: unknown; template: string }[];
    chatTemplate = (named.find((t) => t.name === 'default') ?? named[0])?.template ?? null;
  } else if (ct !== undefined && ct !== null) {
    throw new HFFolderError(`${cfgFile}: chat_template must be a string or a list of {"name", "template"} objects, got ${typeof ct}`);
  } else if (fs.existsSync(path.join(dir, HF_FILES.chatTemplate))) chatTemplate = readTextFile(path.join(dir, HF_FILES.chatTemplate), 'the chat template');
  let compiled: Template | null = null;
  const bosToken = tokenText(config.bos_token);
  const eosToken = tokenText(config.eos_token);
  const render = (messages: readonly ChatMessage[], opts: { addGenerationPrompt?: boolean; extra?: Record<string, unknown> } = {}): string => {
    if (chatTemplate === null) throw new HFFolderError(`${dir}: no chat template (tokenizer_config.json has no chat_template and there is no ${HF_FILES.chatTemplate})`);
    if (!compiled) {
      try {
        compiled = new Template(chatTemplate);
      } catch (e) {
        throw new HFFolderError(`${dir}: the chat template does not parse (${(e as Error).message})`);
      }
    }
    return compiled.render({
      messages,
      bos_token: bosToken ?? '',
      eos_token: eosToken ?? '',
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      ...opts.extra,
    });
  };
  return {
    tokenizer,
    config,
    chatTemplate,
    bosToken,
    eosToken,
    encode: (text, opts = {}) => tokenizer.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids,
    // tokenizers.js refuses an empty list; an empty generation (eos first) decodes to ''
    decode: (ids, opts = {}) => (ids.length === 0 ? '' : tokenizer.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false })),
    renderChat: render,
    encodeChat: (messages, opts) => tokenizer.encode(render(messages, opts), { add_special_tokens: false }).ids,
  };
}
