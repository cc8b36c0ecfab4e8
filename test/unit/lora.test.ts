/**
 * LoRA (engine/models/lora.ts, engine/train/lora-train.ts): PEFT names and files, save/load round
 * trip without touching the base folder, loading an adapter written the way PEFT writes it, the
 * adapter's effect against the merged weights W + (alpha / r) B A, the base/lora hook sites,
 * finite-difference checks of the adapter gradients through a whole LLaMA, no gradient for the base,
 * and a training run whose loss falls.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Graph } from '../../engine/graph';
import type { ParamSet } from '../../engine/io/params';
import { writeSafeTensorsFile } from '../../engine/io/safetensors';
import { type LlamaConfig, type LlamaAdapters, llamaForward, llamaParamInitializers, llamaParamShapes } from '../../engine/models/llama';
import { loadLlamaFolder } from '../../engine/models/llama-folder';
import { LlamaInference } from '../../engine/models/llama-infer';
import { writeSyntheticLlamaFolder } from '../../engine/models/llama-synthetic';
import { LORA_DEFAULTS, type LoraConfig, fromPeftConfig, initLora, loadAdapter, loraParamShapes, loraScaling, loraTargets, mergeLora, saveAdapter } from '../../engine/models/lora';
import { LoraTrainer, buildLoraTrainGraph } from '../../engine/train/lora-train';
import { Rng } from '../../engine/util/rng';
import { gradCheck } from './gradcheck';

const RUNNER = { threads: 1 };
const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const hashFolder = (dir: string) => Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, sha(path.join(dir, f))]));
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
function randomizeB(p: ParamSet, seed: number, scale = 0.3): ParamSet {
  const rng = new Rng(seed);
  for (const [name, t] of p) if (name.endsWith('lora_B.weight')) for (let i = 0; i < t.data.length; i++) t.data[i] = scale * rng.normal();
  return p;
}

let tmp: string;
let baseDir: string;
let model: LlamaConfig;
let base: ParamSet;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-lora-'));
  baseDir = path.join(tmp, 'base');
  writeSyntheticLlamaFolder(baseDir, { seed: 21, shards: 2, std: 0.15, normJitter: 0.1 });
  const m = loadLlamaFolder(baseDir, { tokenizer: false });
  model = m.config;
  base = m.params;
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('PEFT layout', () => {
  it('tensor names, shapes and the default config (r 8, alpha 32, dropout 0.1, q_proj + v_proj)', () => {
    const shapes = loraParamShapes(model, LORA_DEFAULTS);
    expect(shapes.size).toBe(2 * 2 * model.numLayers);
    expect(shapes.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')).toEqual([8, 64]);
    expect(shapes.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')).toEqual([64, 8]);
    expect(shapes.get('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight')).toEqual([32, 8]);
    expect(loraScaling(LORA_DEFAULTS)).toBe(4);
    expect(loraScaling({ ...LORA_DEFAULTS, useRslora: true })).toBeCloseTo(32 / Math.sqrt(8), 12);
    const a = initLora(model, LORA_DEFAULTS);
    const A = a.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!.data;
    expect(Math.max(...A.map(Math.abs))).toBeLessThanOrEqual(1 / 8); // U(-1/sqrt(64), 1/sqrt(64))
    expect(Math.max(...A.map(Math.abs))).toBeGreaterThan(0.1);
    expect(a.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')!.data.every((v) => v === 0)).toBe(true);
    expect(initLora(model, LORA_DEFAULTS).get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!.data).toEqual(A); // seeded
  });

  it('round-trips through adapter_config.json + adapter_model.safetensors; the base folder is never modified', () => {
    const before = hashFolder(baseDir);
    const c: LoraConfig = { ...LORA_DEFAULTS, r: 4, alpha: 16, dropout: 0.05, targetModules: ['q_proj', 'v_proj', 'o_proj'], seed: 5 };
    const p = randomizeB(initLora(model, c), 1);
    const out = path.join(tmp, 'adapter-rt');
    saveAdapter(out, model, c, p, { baseDir });
    expect(fs.readdirSync(out).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(json).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['q_proj', 'v_proj', 'o_proj'], bias: 'none', use_rslora: false, use_dora: false, fan_in_fan_out: false, base_model_name_or_path: baseDir });
    const back = loadAdapter(out, model);
    expect(back.config).toEqual({ ...c, seed: 0 });
    expect([...back.params.keys()].sort()).toEqual([...p.keys()].sort());
    for (const [k, v] of p) expect(back.params.get(k)!.data).toEqual(v.data);
    expect(() => saveAdapter(baseDir, model, c, p, { baseDir })).toThrow(/refusing to write the adapter into the base model's folder/);
    expect(hashFolder(baseDir)).toEqual(before);
  });

  it('loads an adapter written as PEFT writes it (extra fields, BF16 tensors, other module order)', () => {
    const dir = path.join(tmp, 'peft-made');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({
      alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: 'meta-llama/Llama-3.2-1B-Instruct', bias: 'none', eva_config: null,
      exclude_modules: null, fan_in_fan_out: false, inference_mode: true, init_lora_weights: true, layer_replication: null,
      layers_pattern: null, layers_to_transform: null, loftq_config: {}, lora_alpha: 32, lora_bias: false, lora_dropout: 0.1,
      megatron_config: null, megatron_core: 'megatron.core', modules_to_save: null, peft_type: 'LORA', r: 8, rank_pattern: {},
      revision: null, target_modules: ['v_proj', 'q_proj'], task_type: 'CAUSAL_LM', use_dora: false, use_rslora: false,
    }));
    const rng = new Rng(3);
    const tensors = new Map<string, { dtype: 'BF16'; shape: number[]; data: Float32Array }>();
    for (const [name, shape] of loraParamShapes(model, LORA_DEFAULTS)) tensors.set(name, { dtype: 'BF16', shape, data: Float32Array.from({ length: shape[0] * shape[1] }, () => rng.normal()) });
    writeSafeTensorsFile(path.join(dir, 'adapter_model.safetensors'), tensors);
    const { config, params } = loadAdapter(dir, model);
    expect(config).toMatchObject({ r: 8, alpha: 32, dropout: 0.1, useRslora: false, layers: null });
    expect(new Set(config.targetModules)).toEqual(new Set(['q_proj', 'v_proj']));
    for (const [name, t] of tensors) expect(maxAbsDiff(params.get(name)!.data, t.data)).toBeLessThan(0.02 * Math.max(...t.data.map(Math.abs)));
  });

  it('refuses what it does not compute and tensors that do not fit, naming them', () => {
    const base = { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj'] };
    expect(fromPeftConfig(base).targetModules).toEqual(['q_proj']);
    expect(fromPeftConfig({ ...base, target_modules: '.*\\.(q_proj|v_proj)' }).targetModules).toEqual(['q_proj', 'v_proj']);
    expect(fromPeftConfig({ ...base, target_modules: 'model\\.layers\\.1\\.self_attn\\.(q_proj|k_proj)' }, 'c', model)).toMatchObject({ targetModules: ['q_proj', 'k_proj'], layers: [1] });
    expect(() => fromPeftConfig({ ...base, target_modules: 'model\\.layers\\.0\\.self_attn\\.q_proj|model\\.layers\\.1\\.self_attn\\.v_proj' }, 'c', model)).toThrow(/different layers/);
    expect(() => fromPeftConfig({ ...base, target_modules: 'q_proj' })).toThrow(/matches no LLaMA projection path/); // PEFT matches the whole path
    expect(() => fromPeftConfig({ ...base, use_dora: true })).toThrow(/use_dora/);
    expect(() => fromPeftConfig({ ...base, rank_pattern: { q_proj: 4 } })).toThrow(/rank_pattern/);
    expect(() => fromPeftConfig({ ...base, peft_type: 'IA3' })).toThrow(/peft_type/);
    expect(() => fromPeftConfig({ ...base, target_modules: ['embed_tokens'] })).toThrow(/not a LLaMA projection/);
    const dir = path.join(tmp, 'wrong-shape');
    const c = { ...LORA_DEFAULTS, r: 4 };
    saveAdapter(dir, model, c, initLora(model, c));
    const other = { ...model, hiddenSize: 32, headDim: 8 };
    expect(() => loadAdapter(dir, other)).toThrow(/has shape \[4,64\], expected \[4,32\]/);
    expect(() => loadAdapter(path.join(tmp, 'nowhere'), model)).toThrow(/adapter_config.json is missing/);
  });
});

describe('the adapter in the forward pass', () => {
  it('B = 0 leaves the base model unchanged; trained B equals the merged weights W + s B A; base + lora sites add up', async () => {
    const c: LoraConfig = { ...LORA_DEFAULTS, seed: 2 };
    const zero = initLora(model, c);
    const trained = randomizeB(initLora(model, c), 9, 0.5);
    const prompt = [12, 40, 7, 99, 3, 250];
    const sites = ['q_proj.base', 'q_proj.lora', 'v_proj.base', 'v_proj.lora'] as const;
    const run = async (params: ParamSet, adapter?: { config: LoraConfig; params: ParamSet }) => {
      const inf = await LlamaInference.create(model, params, { adapter, readSites: adapter ? [...sites] : ['q_proj.base', 'v_proj.base'], runner: RUNNER });
      try {
        return await inf.forward(prompt);
      } finally {
        await inf.release();
      }
    };
    const plain = await run(base);
    const withZero = await run(base, { config: c, params: zero });
    expect(maxAbsDiff(withZero.logits, plain.logits)).toBe(0);
    const adapted = await run(base, { config: c, params: trained });
    const merged = await run(mergeLora(model, c, base, trained));
    expect(maxAbsDiff(adapted.logits, plain.logits)).toBeGreaterThan(1e-2);
    expect(maxAbsDiff(adapted.logits, merged.logits)).toBeLessThan(1e-4);
    for (let l = 0; l < model.numLayers; l++) {
      for (const proj of ['q_proj', 'v_proj']) {
        const sum = adapted.sites[`layers.${l}.${proj}.base`].map((v, j) => v + adapted.sites[`layers.${l}.${proj}.lora`][j]);
        expect(maxAbsDiff(sum, merged.sites[`layers.${l}.${proj}.base`])).toBeLessThan(1e-4);
      }
    }
    await expect(LlamaInference.create(model, base, { readSites: ['q_proj.lora'] })).rejects.toThrow(/needs a LoRA adapter on q_proj/);
  });
});

describe('gradients', () => {
  const cfg: LlamaConfig = {
    vocabSize: 11, hiddenSize: 8, intermediateSize: 12, numLayers: 2, numHeads: 2, numKVHeads: 1, headDim: 4, rmsNormEps: 1e-5,
    ropeTheta: 100, ropeScaling: { ropeType: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8 },
    maxPositions: 16, tieWordEmbeddings: true, bosTokenId: 0, eosTokenIds: [1],
  };
  const rng = new Rng(17);
  const tinyBase: ParamSet = new Map([...llamaParamShapes(cfg)].map(([name, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return [name, { shape, data: Float32Array.from({ length: n }, () => (name.endsWith('norm.weight') ? 1 + 0.2 * rng.normal() : 0.5 * rng.normal())) }];
  }));
  const lc: LoraConfig = { ...LORA_DEFAULTS, r: 2, alpha: 3, targetModules: ['q_proj', 'v_proj'], layers: [1] };

  it('adapter gradients through the whole model match finite differences (float64, with a dropout mask)', async () => {
    const targets = loraTargets(cfg, lc);
    const specs = targets.flatMap((t) => [{ shape: [lc.r, t.inFeatures] }, { shape: [t.outFeatures, lc.r] }]);
    const r = await gradCheck(specs, (xs, g: Graph) => {
      const w = llamaParamInitializers(g, cfg, tinyBase, 'float64');
      const adapters: LlamaAdapters = new Map();
      const mrng = new Rng(5);
      targets.forEach((t, k) => {
        const mask = g.constant(Float64Array.from({ length: 3 * t.inFeatures }, () => (mrng.uniform() < 0.3 ? 0 : 1 / 0.7)), [1, 3, t.inFeatures], 'float64');
        adapters.set(t.path, { A: xs[2 * k], B: xs[2 * k + 1], scaling: loraScaling(lc), dropoutMask: k === 0 ? mask : undefined });
      });
      return llamaForward(cfg, w, g.constant([3, 7, 2], [1, 3], 'int64'), { adapters });
    });
    expect(r.checked).toBe(16 + 16 + 16 + 8); // q: A 2x8, B 8x2; v: A 2x8, B 4x2
  });

  it('the training graph has the adapter as its only parameters: the base gets no gradient', () => {
    const { graph } = buildLoraTrainGraph(cfg, tinyBase, { ...lc, dropout: 0.1 }, { batch: 2, seq: 3 });
    expect(graph.params.map((p) => p.name).sort()).toEqual([...loraParamShapes(cfg, lc).keys()].sort());
    for (const name of llamaParamShapes(cfg).keys()) {
      expect(graph.initializers.has(name), name).toBe(true);
      expect(graph.inputs.some((t) => t.name === name)).toBe(false);
    }
    expect(graph.inputs.map((t) => t.name).filter((n) => n.startsWith('lora_dropout.'))).toEqual(['lora_dropout.1.q_proj', 'lora_dropout.1.v_proj']);
    // No op reorders a base weight (onnxruntime would fold each into a second copy: measured 1.99x the base's bytes before).
    const reorders = graph.nodes.filter((n) => n.op === 'Transpose' && graph.initializers.has(n.inputs[0].name) && llamaParamShapes(cfg).has(n.inputs[0].name));
    expect(reorders.map((n) => n.inputs[0].name)).toEqual([]);
  });

  it('training the adapter lowers the loss; the base weights do not change', async () => {
    const snapshot = new Map([...base].map(([k, v]) => [k, v.data.slice()]));
    const c: LoraConfig = { ...LORA_DEFAULTS, r: 4, alpha: 16, dropout: 0.1, seed: 1 };
    const batch = 4;
    const seq = 8;
    const trainer = await LoraTrainer.create(model, base, c, { batch, seq, lr: 1e-2, runner: RUNNER });
    expect(trainer.trainableNames.sort()).toEqual([...loraParamShapes(model, c).keys()].sort());
    const drng = new Rng(6);
    const rows = Array.from({ length: batch }, () => Array.from({ length: seq + 1 }, () => drng.int(0, model.vocabSize - 1)));
    const ids = BigInt64Array.from(rows.flatMap((r) => r.slice(0, seq)), BigInt);
    const targets = BigInt64Array.from(rows.flatMap((r) => r.slice(1)), BigInt);
    const losses: number[] = [];
    try {
      for (let s = 0; s < 30; s++) losses.push((await trainer.step(ids, targets)).loss);
    } finally {
      await trainer.release();
    }
    expect(losses.at(-1)!).toBeLessThan(0.7 * losses[0]);
    for (const [k, v] of base) expect(v.data, k).toEqual(snapshot.get(k));
    // A checkpoint after 3 steps resumes exactly: 2 more steps match an uninterrupted run of 5.
    const ck = path.join(tmp, 'ckpt.safetensors');
    const runFor = async (n: number, resumeFrom?: string, saveAt?: number) => {
      const t = await LoraTrainer.create(model, base, c, { batch, seq, lr: 1e-2, runner: RUNNER });
      try {
        if (resumeFrom) t.loadCheckpoint(resumeFrom);
        const ls: number[] = [];
        while (t.steps < n) {
          ls.push((await t.step(ids, targets)).loss);
          if (t.steps === saveAt) t.saveCheckpoint(ck);
        }
        return { ls, adapter: t.adapter, evalLoss: await t.evaluate(ids, targets) };
      } finally {
        await t.release();
      }
    };
    const straight = await runFor(5, undefined, 3);
    const resumed = await runFor(5, ck);
    expect(resumed.ls).toEqual(straight.ls.slice(3));
    for (const [k, v] of straight.adapter) expect(resumed.adapter.get(k)!.data, k).toEqual(v.data);
    expect(resumed.evalLoss).toBe(straight.evalLoss);
    expect(straight.evalLoss).toBeLessThan(straight.ls[0]);
    // The same first step with the base weights in an external-data file (the path for models over 2 GB).
    const ext = await LoraTrainer.create(model, base, c, { batch, seq, lr: 1e-2, runner: RUNNER, externalData: true });
    try {
      expect((await ext.step(ids, targets)).loss).toBe(losses[0]);
    } finally {
      await ext.release();
    }
    console.log(`LoRA training on a fixed batch: loss ${losses[0].toFixed(3)} -> ${losses.at(-1)!.toFixed(3)} in 30 steps`);
  });
});
