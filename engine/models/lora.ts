/**
 * LoRA adapters (Hu et al. 2021) on the projections of a LLaMA (llama.ts), saved and loaded in the
 * PEFT layout so Python users load them with `PeftModel.from_pretrained(base, dir)` unchanged.
 *
 *   proj(x) = x W^T + s * dropout(x) A^T B^T,   A [r, in], B [out, r],  W frozen
 *   s = alpha / r  (use_rslora: alpha / sqrt(r))
 *   init (PEFT's default, init_lora_weights = true): A ~ U(-1/sqrt(in), 1/sqrt(in))
 *        (kaiming_uniform with a = sqrt(5)), B = 0, so the adapted model starts equal to the base
 *   dropout (training only): x * m, m_i = 0 with probability p, else 1 / (1 - p); the keep/drop
 *        masks are bool graph inputs (1 byte per element, a quarter of a float mask's transfer) drawn
 *        from a seeded generator (loraDropoutFeeds), so a step is reproducible
 * Gradients: the base W lives in initializers (llamaParamInitializers), never in the graph's params,
 * so the backward pass computes gradients for A and B only:
 *   dL/dB = s * g^T (x A^T),   dL/dA = s * (g B)^T x      (g = dL/dproj, summed over rows)
 *
 * PEFT layout (peft 0.10+):
 *   DIR/adapter_config.json        {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r", "lora_alpha",
 *                                   "lora_dropout", "target_modules", "bias": "none", "use_rslora", ...}
 *   DIR/adapter_model.safetensors  base_model.model.{module path}.lora_A.weight [r, in]
 *                                  base_model.model.{module path}.lora_B.weight [out, r]
 *   module path as in the base model, e.g. model.layers.0.self_attn.q_proj (llama.projectionPath).
 * Loading also accepts PEFT's in-memory names (`.lora_A.default.weight`) and F16/BF16 tensors, and
 * refuses what the engine does not compute (DoRA, per-module rank/alpha patterns, fan_in_fan_out,
 * trained biases, modules_to_save) with a message naming the field.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Graph, ops } from '../graph';
import { writeFileAtomic } from '../io/atomic';
import type { ParamSet } from '../io/params';
import { readSafeTensorsFile, tensorAsFloat32, type TensorToWrite, writeSafeTensorsFile } from '../io/safetensors';
import type { HostTensor } from '../runtime/runner';
import { parseJSONLimited, shortJSON } from '../util/json';
import { Rng } from '../util/rng';
import { LLAMA_PROJECTIONS, type LlamaProjection } from './hooks';
import { type LlamaAdapters, type LlamaConfig, projectionPath, projectionShape } from './llama';

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  targetModules: LlamaProjection[];
  /** Seed of A's initialisation (and the default seed of the dropout masks). */
  seed: number;
  useRslora: boolean;
  /** Layers that get adapters (PEFT layers_to_transform); null = all. */
  layers: number[] | null;
}

/** The paper's adapter (method.md section 3): r 8, alpha 32, dropout 0.1 on q_proj and v_proj. */
export const LORA_DEFAULTS: LoraConfig = { r: 8, alpha: 32, dropout: 0.1, targetModules: ['q_proj', 'v_proj'], seed: 0, useRslora: false, layers: null };

export const ADAPTER_FILES = { config: 'adapter_config.json', model: 'adapter_model.safetensors' } as const;

export function loraScaling(c: LoraConfig): number {
  return c.useRslora ? c.alpha / Math.sqrt(c.r) : c.alpha / c.r;
}

export function checkLoraConfig(c: LoraConfig, model?: LlamaConfig): void {
  if (!Number.isSafeInteger(c.r) || c.r <= 0) throw new Error(`LoRA: r must be a positive integer, got ${c.r}`);
  if (!Number.isFinite(c.alpha) || c.alpha <= 0) throw new Error(`LoRA: alpha must be a positive number, got ${c.alpha}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new Error(`LoRA: dropout must be in [0, 1), got ${c.dropout}`);
  if (c.targetModules.length === 0) throw new Error('LoRA: target_modules is empty');
  for (const m of c.targetModules) {
    if (!(LLAMA_PROJECTIONS as readonly string[]).includes(m)) throw new Error(`LoRA: target module '${m}' is not a LLaMA projection (${LLAMA_PROJECTIONS.join(', ')})`);
  }
  if (model && c.layers) {
    for (const l of c.layers) if (!Number.isInteger(l) || l < 0 || l >= model.numLayers) throw new Error(`LoRA: layer ${l} does not exist (the model has layers 0..${model.numLayers - 1})`);
  }
}

/** One adapted projection. */
export interface LoraTarget {
  layer: number;
  proj: LlamaProjection;
  /** HF module path, e.g. model.layers.0.self_attn.q_proj. */
  path: string;
  inFeatures: number;
  outFeatures: number;
  /** PEFT tensor names. */
  aName: string;
  bName: string;
}

export const peftPrefix = (modulePath: string): string => `base_model.model.${modulePath}`;

export function loraTargets(model: LlamaConfig, c: LoraConfig): LoraTarget[] {
  checkLoraConfig(c, model);
  const out: LoraTarget[] = [];
  for (let layer = 0; layer < model.numLayers; layer++) {
    if (c.layers && !c.layers.includes(layer)) continue;
    for (const proj of LLAMA_PROJECTIONS) {
      if (!c.targetModules.includes(proj)) continue;
      const p = projectionPath(layer, proj);
      const [outFeatures, inFeatures] = projectionShape(model, proj);
      out.push({ layer, proj, path: p, inFeatures, outFeatures, aName: `${peftPrefix(p)}.lora_A.weight`, bName: `${peftPrefix(p)}.lora_B.weight` });
    }
  }
  return out;
}

export function loraParamShapes(model: LlamaConfig, c: LoraConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const t of loraTargets(model, c)) {
    m.set(t.aName, [c.r, t.inFeatures]);
    m.set(t.bName, [t.outFeatures, c.r]);
  }
  return m;
}

/** PEFT's initialisation, seeded: A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0. */
export function initLora(model: LlamaConfig, c: LoraConfig): ParamSet {
  const rng = new Rng(c.seed);
  const p: ParamSet = new Map();
  for (const t of loraTargets(model, c)) {
    const bound = 1 / Math.sqrt(t.inFeatures);
    const a = new Float32Array(c.r * t.inFeatures);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.uniform() - 1) * bound;
    p.set(t.aName, { shape: [c.r, t.inFeatures], data: a });
    p.set(t.bName, { shape: [t.outFeatures, c.r], data: new Float32Array(t.outFeatures * c.r) });
  }
  return p;
}

const dropoutName = (t: LoraTarget): string => `lora_dropout.${t.layer}.${t.proj}`;

/**
 * The adapters of a graph: as trainable params ('params', for training), baked in ('initializers',
 * for inference). With `dropoutBatch` (training, dropout > 0), each adapter also gets a mask input
 * lora_dropout.{layer}.{proj} [batch, seq, in], fed by loraDropoutFeeds.
 */
export function loraGraphTensors(
  g: Graph,
  model: LlamaConfig,
  c: LoraConfig,
  mode: 'params' | 'initializers',
  params?: ParamSet,
  dropoutBatch?: { batch: number; seq: number },
): LlamaAdapters {
  const adapters: LlamaAdapters = new Map();
  const scaling = loraScaling(c);
  for (const t of loraTargets(model, c)) {
    const tensor = (name: string, shape: number[]) => {
      if (mode === 'params') return g.param(name, shape);
      const p = params?.get(name);
      if (!p) throw new Error(`LoRA parameters: '${name}' is missing`);
      if (p.shape.length !== 2 || p.shape[0] !== shape[0] || p.shape[1] !== shape[1]) throw new Error(`LoRA parameters: '${name}' has shape [${p.shape}], expected [${shape}]`);
      return g.initializer(name, p.data, shape, 'float32');
    };
    const dropoutMask = dropoutBatch && c.dropout > 0
      ? ops.mul(ops.cast(g.input(dropoutName(t), [dropoutBatch.batch, dropoutBatch.seq, t.inFeatures], 'bool'), 'float32'), 1 / (1 - c.dropout))
      : undefined;
    adapters.set(t.path, { A: tensor(t.aName, [c.r, t.inFeatures]), B: tensor(t.bName, [t.outFeatures, c.r]), scaling, dropoutMask });
  }
  return adapters;
}

/**
 * Keep masks for one training step (false with probability p), from `rng`; with `keepAll`, all true
 * (evaluation: dropout off).
 */
export function loraDropoutFeeds(model: LlamaConfig, c: LoraConfig, batch: number, seq: number, rng: Rng, keepAll = false): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  if (c.dropout === 0) return feeds;
  for (const t of loraTargets(model, c)) {
    const m = new Uint8Array(batch * seq * t.inFeatures);
    if (keepAll) m.fill(1);
    else for (let i = 0; i < m.length; i++) m[i] = rng.uniform() < c.dropout ? 0 : 1;
    feeds[dropoutName(t)] = { data: m, dims: [batch, seq, t.inFeatures] };
  }
  return feeds;
}

// ---------------------------------------------------------------- PEFT files

/** adapter_config.json as PEFT writes it. */
export function toPeftConfig(c: LoraConfig, baseModel: string | null): Record<string, unknown> {
  checkLoraConfig(c);
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: c.layers,
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...c.targetModules],
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: c.useRslora,
  };
}

/** Reads a PEFT adapter_config.json (parsed); refuses what the engine does not compute. */
/** `model`, when given, resolves a regex target_modules to exact layers. */
export function fromPeftConfig(json: unknown, source: string = ADAPTER_FILES.config, model?: LlamaConfig): LoraConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${source}: expected a JSON object`);
  const j = json as Record<string, unknown>;
  const bad = (k: string, what: string): never => {
    throw new Error(`${source}: '${k}' = ${shortJSON(j[k])} is not supported (${what})`);
  };
  if (j.peft_type !== 'LORA') bad('peft_type', "only 'LORA'");
  if (j.task_type !== undefined && j.task_type !== null && j.task_type !== 'CAUSAL_LM') bad('task_type', "only 'CAUSAL_LM'");
  if (j.use_dora === true) bad('use_dora', 'DoRA is not implemented');
  if (j.fan_in_fan_out === true) bad('fan_in_fan_out', 'LLaMA projections are nn.Linear');
  if (j.bias !== undefined && j.bias !== 'none') bad('bias', "only 'none'");
  for (const k of ['rank_pattern', 'alpha_pattern']) {
    if (j[k] !== undefined && j[k] !== null && Object.keys(j[k] as object).length > 0) bad(k, 'one rank and alpha for every module');
  }
  if (Array.isArray(j.modules_to_save) && j.modules_to_save.length > 0) bad('modules_to_save', 'only adapter tensors are loaded');
  if (j.layers_pattern !== undefined && j.layers_pattern !== null && j.layers_pattern !== 'layers' && !(Array.isArray(j.layers_pattern) && j.layers_pattern.length === 0)) bad('layers_pattern', "only 'layers'");
  const num = (k: string, dflt?: number): number => {
    const v = j[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${source}: '${k}' must be a number, got ${shortJSON(j[k])}`);
    return v;
  };
  let targets: LlamaProjection[];
  const tm = j.target_modules;
  if (Array.isArray(tm)) {
    targets = tm.map((m) => {
      const name = typeof m === 'string' ? m.split('.').pop()! : ''; // PEFT matches by suffix: "self_attn.q_proj" targets q_proj
      if (!(LLAMA_PROJECTIONS as readonly string[]).includes(name)) throw new Error(`${source}: target module ${shortJSON(m)} is not a LLaMA projection (${LLAMA_PROJECTIONS.join(', ')})`);
      return name as LlamaProjection;
    });
  } else if (typeof tm === 'string') {
    // PEFT: a string is a regular expression that must match the whole module path. Without the
    // model the layers are unknown: the projections it matches in any of 256 layers are taken, and
    // loadAdapter (which knows the model) narrows the layers.
    const re = peftRegex(tm, source);
    targets = LLAMA_PROJECTIONS.filter((p) => Array.from({ length: model?.numLayers ?? 256 }, (_, l) => re.test(projectionPath(l, p))).some(Boolean));
    if (targets.length === 0) throw new Error(`${source}: target_modules regex '${tm}' matches no LLaMA projection path (such as model.layers.0.self_attn.q_proj)`);
  } else return bad('target_modules', 'a list of module names or a regex string');
  let layers: number[] | null = null;
  const lt = j.layers_to_transform;
  if (typeof lt === 'number') layers = [lt];
  else if (Array.isArray(lt)) layers = lt.map((v) => (typeof v === 'number' ? v : NaN));
  else if (lt !== undefined && lt !== null) bad('layers_to_transform', 'a layer index or a list of them');
  if (typeof tm === 'string' && model) {
    // The layers the regex selects must be the same for every selected projection (one LoraConfig).
    const re = peftRegex(tm, source);
    const per = targets.map((p) => Array.from({ length: model.numLayers }, (_, l) => l).filter((l) => re.test(projectionPath(l, p)) && (!layers || layers.includes(l))));
    if (per.some((ls) => ls.join() !== per[0].join())) throw new Error(`${source}: target_modules regex '${tm}' selects different layers for different projections, which is not supported`);
    layers = per[0].length === model.numLayers ? null : per[0];
  }
  if (layers && !layers.every((l) => Number.isSafeInteger(l) && l >= 0)) bad('layers_to_transform', 'layer indices are non-negative integers');
  const c: LoraConfig = {
    r: num('r', 8),
    alpha: num('lora_alpha', 8),
    dropout: num('lora_dropout', 0),
    targetModules: [...new Set(targets)],
    seed: 0,
    useRslora: j.use_rslora === true,
    layers,
  };
  try {
    checkLoraConfig(c, model);
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`);
  }
  return c;
}

/** PEFT's target_modules string: a regular expression matching the whole module path. */
function peftRegex(tm: string, source: string): RegExp {
  try {
    return new RegExp(`^(?:${tm})$`);
  } catch (e) {
    throw new Error(`${source}: target_modules ${shortJSON(tm)} is not a valid regular expression (${(e as Error).message}); list the modules instead, e.g. ["q_proj", "v_proj"]`);
  }
}

/**
 * Writes DIR/adapter_config.json and DIR/adapter_model.safetensors (F32, PEFT names), atomically.
 * Refuses to write into `baseDir` (the pretrained folder is never modified).
 */
export function saveAdapter(dir: string, model: LlamaConfig, c: LoraConfig, params: ParamSet, opts: { baseModel?: string | null; baseDir?: string } = {}): void {
  if (opts.baseDir && path.resolve(dir) === path.resolve(opts.baseDir)) {
    throw new Error(`refusing to write the adapter into the base model's folder ${opts.baseDir}; choose another folder`);
  }
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, shape] of loraParamShapes(model, c)) {
    const p = params.get(name);
    if (!p) throw new Error(`saveAdapter: '${name}' is missing`);
    if (p.data.length !== shape[0] * shape[1]) throw new Error(`saveAdapter: '${name}' has ${p.data.length} values, expected [${shape}]`);
    tensors.set(name, { dtype: 'F32', shape, data: p.data });
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafeTensorsFile(path.join(dir, ADAPTER_FILES.model), tensors, { format: 'pt' });
  writeFileAtomic(path.join(dir, ADAPTER_FILES.config), JSON.stringify(toPeftConfig(c, opts.baseModel ?? opts.baseDir ?? null), null, 2) + '\n');
}

/**
 * Loads a PEFT adapter folder for `model`: its config and the A/B tensors as float32, keyed by the
 * saved PEFT names. Every expected tensor must be present with its shape; unknown tensors are refused.
 */
export function loadAdapter(dir: string, model: LlamaConfig): { config: LoraConfig; params: ParamSet } {
  const cfgFile = path.join(dir, ADAPTER_FILES.config);
  if (!fs.existsSync(cfgFile)) throw new Error(`${dir} is not a PEFT adapter folder: ${ADAPTER_FILES.config} is missing`);
  let json: unknown;
  try {
    json = parseJSONLimited(fs.readFileSync(cfgFile, 'utf8'));
  } catch (e) {
    throw new Error(`${cfgFile}: not valid JSON (${(e as Error).message}); save the adapter again (PEFT save_pretrained)`);
  }
  const config = fromPeftConfig(json, cfgFile, model);
  const file = path.join(dir, ADAPTER_FILES.model);
  if (!fs.existsSync(file)) {
    const bin = path.join(dir, 'adapter_model.bin');
    throw new Error(`${file} is missing${fs.existsSync(bin) ? ' (adapter_model.bin, a pickle, is not read: save with safe_serialization=True)' : ''}`);
  }
  const st = readSafeTensorsFile(file);
  // PEFT saves without the adapter name; accept the in-memory form (.lora_A.default.weight) too.
  const byName = new Map<string, string>();
  for (const name of st.tensors.keys()) byName.set(name.replace(/\.(lora_[AB])\.[^.]+\.weight$/, '.$1.weight'), name);
  const expected = loraParamShapes(model, config);
  for (const name of byName.keys()) {
    if (!expected.has(name)) throw new Error(`${file}: tensor '${byName.get(name)}' does not belong to a LoRA adapter on ${config.targetModules.join(', ')} of this model (as ${cfgFile} configures it)`);
  }
  const params: ParamSet = new Map();
  for (const [name, shape] of expected) {
    const stored = byName.get(name);
    if (!stored) throw new Error(`${file}: tensor '${name}' is missing (${cfgFile} targets ${config.targetModules.join(', ')}${config.layers ? ` in layers ${config.layers.join(', ')}` : ''})`);
    const info = st.tensors.get(stored)!;
    if (info.shape.length !== 2 || info.shape[0] !== shape[0] || info.shape[1] !== shape[1]) {
      throw new Error(`${file}: tensor '${stored}' has shape [${info.shape}], expected [${shape}] (from ${cfgFile}, r ${config.r}, on this base); the config and the weights are of different adapters, or the adapter is for another base`);
    }
    if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16' && info.dtype !== 'F64') throw new Error(`${file}: tensor '${stored}' is ${info.dtype}; adapter weights are read as F32, F16, BF16 or F64`);
    params.set(name, { shape, data: tensorAsFloat32(st, stored) });
  }
  return { config, params };
}

/** Adapter weights folded into the base: W' = W + s B A (for comparison and export; training keeps them apart). */
export function mergeLora(model: LlamaConfig, c: LoraConfig, base: ParamSet, adapter: ParamSet): ParamSet {
  const merged: ParamSet = new Map([...base].map(([k, v]) => [k, { shape: v.shape, data: v.data }]));
  const s = loraScaling(c);
  for (const t of loraTargets(model, c)) {
    const W = base.get(`${t.path}.weight`)!.data;
    const A = adapter.get(t.aName)!.data;
    const B = adapter.get(t.bName)!.data;
    const out = W.slice();
    for (let o = 0; o < t.outFeatures; o++) {
      for (let k = 0; k < c.r; k++) {
        const b = s * B[o * c.r + k];
        if (b === 0) continue;
        for (let i = 0; i < t.inFeatures; i++) out[o * t.inFeatures + i] += b * A[k * t.inFeatures + i];
      }
    }
    merged.set(`${t.path}.weight`, { shape: [t.outFeatures, t.inFeatures], data: out });
  }
  return merged;
}
