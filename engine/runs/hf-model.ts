/**
 * Any local Hugging Face model folder, not only our runs: what `memgen forward` and `memgen generate`
 * open (docs/runs.md, "Plain Hugging Face folders"). One dispatch, here:
 *
 *   a LLaMA export manifest.json with family 'llama' (`memgen export` of a LoRA run)
 *                  -> loadLlamaExportRun (llama-export-run.ts): the folder as a LLaMA, and its task
 *   a memgen run   config.json has a "memgen" section, or the folder has manifest.json
 *                  -> loadRun (run.ts), exactly as before (task, task tokenizer, classification)
 *   a plain model  anything else with config.json -> by config.json's model_type:
 *                    'gpt2'   GPT-2 (models/gpt2.ts); tensors named transformer.* (GPT2LMHeadModel's
 *                             save_pretrained) or without the prefix (the hub's gpt2 snapshots)
 *                    'llama'  LLaMA (models/llama-folder.ts, the loader of `--base`)
 *                  weights: model.safetensors or model.safetensors.index.json + shards (io/hf-folder.ts);
 *                  the prompt is tokenized with the folder's tokenizer.json (special tokens added as
 *                  the tokenizer's post-processor says: LLaMA-3 prepends <|begin_of_text|>, GPT-2 nothing).
 * A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors, models/lora.ts) may be
 * put on a plain LLaMA folder (`--adapter DIR`): inference then runs base + adapter, as PeftModel does.
 * Errors name the file and the fix: an unknown model_type, a missing tokenizer.json, missing weights.
 * The folder is only read.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HF_FILES, type HFTokenizer, checkLoadMemory, estimateLoadMemory, indexWeights, loadHFTokenizer, readHFConfig, readHFWeights } from '../io/hf-folder';
import type { ParamSet } from '../io/params';
import { type GPT2Config, fromHFConfig, gpt2ParamShapes } from '../models/gpt2';
import { GPT2Inference } from '../models/gpt2-infer';
import { DEFAULT_SITE, GPT2_SITES, type GPT2Site, type LlamaSite, parseLlamaSiteName, parseSiteName } from '../models/hooks';
import { type LlamaFolder, loadLlamaFolder } from '../models/llama-folder';
import { LlamaInference } from '../models/llama-infer';
import { type LoraConfig, loadAdapter } from '../models/lora';
import type { RunnerOptions } from '../runtime/runner';
import { type LoadedLlamaExport, isLlamaExportRun, loadLlamaExportRun } from './llama-export-run';
import { type LoadedLoraRun, isLoraRun, loadLoraRun } from './lora-run';
import { BASE_MANIFEST_FORMAT, type LoadedRun, RUN_FILES, RunError, loadRun } from './run';

export const HF_MODEL_TYPES = ['gpt2', 'llama'] as const;
export type HFModelFamily = (typeof HF_MODEL_TYPES)[number];

/** Hook sites a plain folder's forward reads and generate steers (LLaMA: the sites without an adapter). */
export const PLAIN_SITES: Record<HFModelFamily, readonly string[]> = {
  gpt2: GPT2_SITES,
  llama: ['resid_pre', 'mlp_in', 'resid_post'],
};
export const PLAIN_DEFAULT_SITE: Record<HFModelFamily, string> = { gpt2: DEFAULT_SITE, llama: 'resid_post' };

/** A plain (not memgen-trained) Hugging Face GPT-2 or LLaMA folder, loaded. */
export interface HFModel {
  dir: string;
  family: HFModelFamily;
  tokenizer: HFTokenizer;
  nLayer: number;
  /** Width of every plain site (n_embd / hidden_size). */
  hidden: number;
  vocabSize: number;
  /** Generation stops at any of these (config.json eos_token_id; none when absent). */
  eosIds: number[];
  gpt2?: { cfg: GPT2Config; params: ParamSet };
  llama?: LlamaFolder;
  /** A PEFT LoRA adapter on a LLaMA folder (withAdapter). */
  adapter?: { dir: string; config: LoraConfig; params: ParamSet };
}

/** `m` with the PEFT LoRA adapter in `dir` (LLaMA folders only; names and shapes checked against the base). */
export function withAdapter(m: HFModel, dir: string): HFModel {
  if (m.family !== 'llama') throw new RunError(`--adapter ${dir}: adapters are LoRA on LLaMA (q_proj, v_proj ...); ${m.dir} is a ${m.family} folder`);
  try {
    return { ...m, adapter: { dir, ...loadAdapter(dir, m.llama!.config) } };
  } catch (e) {
    throw new RunError(`--adapter ${dir}: ${(e as Error).message}`);
  }
}

/**
 * A LLaMA export and a LoRA run are both: a task (their run) and a LLaMA model (the export's folder; the
 * LoRA run's base with its kept adapter), opened as a plain folder's.
 */
export type OpenedModel =
  | { kind: 'run'; run: LoadedRun }
  | { kind: 'hf'; model: HFModel }
  | { kind: 'llama-export'; run: LoadedLlamaExport; model: HFModel }
  | { kind: 'lora'; run: LoadedLoraRun; model: HFModel };

/**
 * Whether `dir` is a memgen run (config.json with a "memgen" section, or a manifest.json) rather than a
 * plain HF folder. A base made by `memgen pretrain` has a manifest.json too, but it is a plain model
 * folder (no task): its manifest's format is BASE_MANIFEST_FORMAT.
 */
export function isMemgenRunFolder(dir: string): boolean {
  const manifest = path.join(dir, RUN_FILES.manifest);
  if (fs.existsSync(manifest)) {
    try {
      return (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { format?: unknown } | null)?.format !== BASE_MANIFEST_FORMAT;
    } catch {
      return true; // an unreadable manifest: the run loader names the file and the fix
    }
  }
  try {
    const c = JSON.parse(fs.readFileSync(path.join(dir, RUN_FILES.config), 'utf8')) as Record<string, unknown>;
    return typeof c === 'object' && c !== null && c.memgen !== undefined;
  } catch {
    return false;
  }
}

/** Opens a memgen run (run.ts, unchanged), a LoRA run, a LLaMA export, or any local GPT-2 / LLaMA Hugging Face folder. */
export function openModelFolder(dir: string): OpenedModel {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new RunError(`${dir} does not exist or is not a folder (a memgen run or a Hugging Face model folder)`);
  if (isLlamaExportRun(dir)) {
    const run = loadLlamaExportRun(dir);
    return { kind: 'llama-export', run, model: llamaHFModel(run.folder) };
  }
  if (isLoraRun(dir)) {
    const run = loadLoraRun(dir);
    return { kind: 'lora', run, model: { ...llamaHFModel(run.base), adapter: { dir, ...run.adapter } } };
  }
  if (isMemgenRunFolder(dir)) return { kind: 'run', run: loadRun(dir) };
  return { kind: 'hf', model: loadHFModel(dir) };
}

/** Loads a plain Hugging Face folder, dispatching on config.json's model_type. */
export function loadHFModel(dir: string, opts: { availableBytes?: number } = {}): HFModel {
  const configFile = path.join(dir, HF_FILES.config);
  if (!fs.existsSync(configFile)) throw new RunError(`${configFile} is missing: ${dir} is neither a memgen run nor a Hugging Face model folder (save one with model.save_pretrained(DIR) and tokenizer.save_pretrained(DIR))`);
  const raw = readHFConfig(dir) as Record<string, unknown>;
  const modelType = raw?.model_type;
  if (!(HF_MODEL_TYPES as readonly unknown[]).includes(modelType)) {
    throw new RunError(
      `${configFile}: model_type ${modelType === undefined ? 'is missing' : `'${String(modelType)}' is not supported`}; ` +
        `memgen opens GPT-2 (model_type "gpt2") and LLaMA (model_type "llama") folders. Fix: use a model of one of these architectures` +
        (modelType === undefined ? ', or add "model_type" to config.json if it is one' : ''),
    );
  }
  const family = modelType as HFModelFamily;
  const tokFile = path.join(dir, HF_FILES.tokenizer);
  if (!fs.existsSync(tokFile)) {
    throw new RunError(`${tokFile} is missing: the prompt is tokenized with the folder's own tokenizer. Fix: save it beside the weights, e.g. in Python AutoTokenizer.from_pretrained(NAME).save_pretrained("${dir}") (writes tokenizer.json)`);
  }
  if (!fs.existsSync(path.join(dir, HF_FILES.weights)) && !fs.existsSync(path.join(dir, HF_FILES.index))) {
    const bin = fs.existsSync(path.join(dir, 'pytorch_model.bin')) || fs.existsSync(path.join(dir, 'pytorch_model.bin.index.json'));
    throw new RunError(
      `${path.join(dir, HF_FILES.weights)} is missing (and there is no ${HF_FILES.index} with shards)${bin ? '; pytorch_model.bin pickles are not read' : ''}. ` +
        `Fix: save the weights as safetensors, in Python model.save_pretrained("${dir}", safe_serialization=True)`,
    );
  }
  if (family === 'llama') return llamaHFModel(loadLlamaFolder(dir, { availableBytes: opts.availableBytes }));
  let cfg: GPT2Config;
  try {
    cfg = fromHFConfig(raw);
  } catch (e) {
    throw new RunError(`${configFile}: ${(e as Error).message}`);
  }
  const index = indexWeights(dir);
  checkLoadMemory(dir, estimateLoadMemory(index, opts.availableBytes));
  const shapes = gpt2ParamShapes(cfg);
  // The hub's gpt2 snapshots hold GPT2Model's names (wte.weight, h.0...); GPT2LMHeadModel's save_pretrained prefixes transformer.
  const prefixed = index.shapes.has('transformer.wte.weight') || !index.shapes.has('wte.weight');
  const strip = (n: string) => (prefixed ? n : n.replace(/^transformer\./, ''));
  const { params: read } = readHFWeights(dir, new Map([...shapes].map(([n, s]) => [strip(n), s])), { index });
  const params: ParamSet = new Map([...shapes.keys()].map((n) => [n, read.get(strip(n))!]));
  const tokenizer = loadHFTokenizer(dir);
  const eos = raw.eos_token_id;
  const eosIds = (Array.isArray(eos) ? eos : eos === undefined || eos === null ? [] : [eos]).filter((x): x is number => Number.isInteger(x));
  return { dir, family, tokenizer, nLayer: cfg.nLayer, hidden: cfg.nEmbd, vocabSize: cfg.vocabSize, eosIds, gpt2: { cfg, params } };
}

/** A loaded LLaMA folder (with its tokenizer) as an HFModel. */
function llamaHFModel(llama: LlamaFolder): HFModel {
  const c = llama.config;
  if (!llama.tokenizer) throw new RunError(`${llama.dir}: tokenizer.json is missing`);
  return { dir: llama.dir, family: 'llama', tokenizer: llama.tokenizer, nLayer: c.numLayers, hidden: c.hiddenSize, vocabSize: c.vocabSize, eosIds: [...c.eosTokenIds], llama };
}

/** forward / generate over either family, with the site vectors named as the family names them. */
export interface HFModelInference {
  site: string;
  /** Site names in layer order, e.g. blocks.0.ln2 (GPT-2) or layers.0.resid_post (LLaMA). */
  siteNames: string[];
  forward(ids: readonly number[]): Promise<{ logits: Float32Array; hidden: Float32Array[] }>;
  /** Greedy; stops at the model's eos ids or after maxNewTokens. `steer`: one vector per layer at the site. */
  generate(ids: readonly number[], opts: { maxNewTokens: number; steer?: Float32Array[] }): Promise<{ tokens: number[]; stoppedAtEos: boolean }>;
  release(): Promise<void>;
}

export async function hfModelInference(m: HFModel, opts: { site?: string; runner?: RunnerOptions } = {}): Promise<HFModelInference> {
  const site = opts.site ?? PLAIN_DEFAULT_SITE[m.family];
  if (!PLAIN_SITES[m.family].includes(site)) throw new RunError(`site '${site}' is not a ${m.family} site; the sites are ${PLAIN_SITES[m.family].join(', ')}`);
  if (m.family === 'llama') {
    const adapter = m.adapter ? { config: m.adapter.config, params: m.adapter.params } : undefined;
    const inf = await LlamaInference.create(m.llama!.config, m.llama!.params, { site: site as LlamaSite, runner: opts.runner, adapter });
    const names = inf.siteNames();
    return {
      site, siteNames: names,
      forward: async (ids) => {
        const r = await inf.forward(ids);
        return { logits: r.logits, hidden: names.map((n) => r.sites[n]) };
      },
      generate: async (ids, o) => {
        const r = await inf.generate([[...ids]], { maxNewTokens: o.maxNewTokens, eosIds: m.eosIds, steer: o.steer });
        return { tokens: r.tokens[0], stoppedAtEos: r.stoppedAtEos[0] };
      },
      release: () => inf.release(),
    };
  }
  const inf = await GPT2Inference.create(m.gpt2!.cfg, m.gpt2!.params, { site: site as GPT2Site, runner: opts.runner });
  if (m.eosIds.length > 1) throw new RunError(`${m.dir}/config.json: GPT-2 generation stops at one eos_token_id; it lists ${m.eosIds.length}`);
  return {
    site, siteNames: inf.siteNames,
    forward: (ids) => inf.forward(ids),
    generate: async (ids, o) => {
      const r = await inf.generate([[...ids]], { maxNewTokens: o.maxNewTokens, eosId: m.eosIds[0] ?? -1, steer: o.steer });
      return { tokens: r.tokens[0], stoppedAtEos: r.stoppedAtEos[0] };
    },
    release: () => inf.release(),
  };
}

/** The layer and site of a steering-file key for `family` (blocks.3.ln2, layers.3.resid_post). */
export function parsePlainSiteName(family: HFModelFamily, name: string, nLayer?: number): { layer: number; site: string } {
  const r = family === 'gpt2' ? parseSiteName(name, nLayer) : parseLlamaSiteName(name, nLayer);
  if (!PLAIN_SITES[family].includes(r.site)) throw new RunError(`'${name}': site ${r.site} cannot be steered on a plain ${family} folder; the sites are ${PLAIN_SITES[family].join(', ')}`);
  return r;
}
