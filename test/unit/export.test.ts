/**
 * `memgen export` (engine/steer/export.ts): the baking rule, the exported folder, and cross-checks.
 *
 *   1. At every position: a forward of the baked weights equals a forward of the source weights with the
 *      shift added at the site at EVERY position (a test graph whose hook adds it everywhere), for each
 *      site, on every site activation and every logit; a rule shifted by one block (resid_pre of block l
 *      into block l's own c_proj.bias) fails the same check, so the check can fail.
 *   2. Runtime steering (gpt2-infer.ts: last prompt position + generated ones) and the baked model agree on
 *      one-token prompts (logits, site vectors, greedy tokens), and differ on longer prompts.
 *   3. model.onnx of the export gives the baked forward's logits at every position.
 *   4. The command on runs/arithmetic-tiny: the folder, its manifest, loadRun / eval on it, refusing an
 *      existing DIR, --force keeping the old one aside.
 *   5. Optional (python3 with torch / onnx, skipped otherwise): an independent float64 PyTorch GPT-2 reads
 *      the exported safetensors + config (Hugging Face names and shapes checked) and agrees with ours and
 *      with the source steered at every position; the onnx checker accepts model.onnx.
 *   6. A LoRA run (a synthetic LLaMA-3.2-shaped base, tied embeddings, + a one-step adapter with random B,
 *      a hand-written analysis at resid_post): the LLaMA rule (down_proj biases, zero gate/up biases, the
 *      merge, layer-0 resid_pre untying lm_head); on one-token prompts the merged model equals the adapter
 *      (1e-5) and the baked model unsteered equals runtime steering (1e-4, same tokens) at resid_post and
 *      resid_pre; the comparison runs both models; the command's folder (config = the base's + mlp_bias),
 *      manifest, model.onnx, and generate / forward / eval on it; optional: the PyTorch LLaMA of
 *      torch-llama.ts (transformers' exact tensor set for mlp_bias) reads it and agrees. transformers
 *      itself is not installed with Debian's python3-torch, so it is not run.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type NeuronsFile, analysisPath } from '../../engine/analysis/files';
import { writeNpy } from '../../engine/analysis/npy';
import { main } from '../../engine/cli/main';
import { loraRunConfigFromArgs } from '../../engine/cli/commands/train';
import { Graph, ops } from '../../engine/graph';
import { type ParamSet, cloneParams, loadParams, saveParams } from '../../engine/io/params';
import { type GPT2Config, type SiteHook, gpt2Head, gpt2ParamInitializers, gpt2ParamShapes, gpt2Trunk, initGPT2, toHFConfig } from '../../engine/models/gpt2';
import { GPT2Inference } from '../../engine/models/gpt2-infer';
import { GPT2_SITES, type GPT2Site, siteName } from '../../engine/models/hooks';
import type { LlamaConfig } from '../../engine/models/llama';
import { loadLlamaFolder } from '../../engine/models/llama-folder';
import { LlamaInference } from '../../engine/models/llama-infer';
import { writeSyntheticLlamaFolder } from '../../engine/models/llama-synthetic';
import { mergeLora, saveAdapter } from '../../engine/models/lora';
import { type LoadedLoraRun, llamaSteerModel, loadLoraRun, loraModelHash, loraRunModel } from '../../engine/runs/lora-run';
import { RUN_FILES, loadRun } from '../../engine/runs/run';
import { Runner } from '../../engine/runtime/runner';
import {
  EXPORT_FORMAT, ONNX_FILE, bakeLlamaSteering, compareBakedToRuntime, bakeSteering, bakeTarget, buildExportGraph, buildLlamaExportGraph, llamaBakeTarget, readExportInfo, writeExportOnnx,
} from '../../engine/steer/export';
import { trainLoraRun } from '../../engine/train/lora-trainer';
import { Rng } from '../../engine/util/rng';
import * as lsp from '../../server/src/protocol';
import { startServer } from '../protocol/lsp-harness';
import { torchRun } from './torch-llama';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-export-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// A random GPT-2 away from its initialisation (LayerNorm gains and biases too), and steering vectors on
// layers 0 and 2 (the first and the last), none on layer 1.
const cfg: GPT2Config = { vocabSize: 23, nPositions: 10, nEmbd: 16, nLayer: 3, nHead: 2, layerNormEps: 1e-5 };
const rng = new Rng(16);
const params = initGPT2(cfg, rng);
for (const [name, { data }] of params) {
  if (/\.ln_\w+\./.test(name)) for (let i = 0; i < data.length; i++) data[i] += 0.2 * rng.normal();
  else if (name.endsWith('.bias')) for (let i = 0; i < data.length; i++) data[i] = 0.1 * rng.normal();
  else for (let i = 0; i < data.length; i++) data[i] *= 6;
}
const vectors = [0, 1, 2].map((l) => Float32Array.from({ length: cfg.nEmbd }, () => (l === 1 ? 0 : 0.8 * rng.normal())));
const IDS = [[3, 7, 1, 22, 9, 4], [0, 5, 5, 12, 18, 2]];
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/**
 * Logits [B, T, V] and every site's activation [B, T, d] of `p` on IDS; with `steer`, its vectors are added
 * at its site at EVERY position (what the baked biases do), unlike gpt2-infer.ts's last position only.
 */
async function everyPosition(p: ParamSet, steer?: { site: GPT2Site; vectors: Float32Array[] }): Promise<Record<string, Float32Array>> {
  const g = new Graph('every_position');
  const w = gpt2ParamInitializers(g, cfg, p);
  const T = IDS[0].length;
  const ids = g.input('ids', [IDS.length, T], 'int64');
  const hook: SiteHook = (l, s, x) => {
    const y = steer && s === steer.site ? ops.add(x, g.constant(steer.vectors[l], [cfg.nEmbd])) : x;
    g.output(y, siteName(l, s));
    return y;
  };
  const { h } = gpt2Trunk(cfg, w, ids, ops.range(g, T), { hook });
  g.output(gpt2Head(cfg, w, h), 'logits');
  const runner = await Runner.fromGraph(g, { threads: 1 });
  try {
    const out = await runner.run({ ids: { data: BigInt64Array.from(IDS.flat(), BigInt), dims: [IDS.length, T] } });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await runner.release();
  }
}

describe('the baking rule', () => {
  it('names the tensor of each site: ln_2.bias, the previous block\'s c_proj.bias (block 0: every row of wpe), the own c_proj.bias', () => {
    expect(bakeTarget(2, 'ln2')).toEqual({ tensor: 'transformer.h.2.ln_2.bias', everyRow: false });
    expect(bakeTarget(0, 'resid_pre')).toEqual({ tensor: 'transformer.wpe.weight', everyRow: true });
    expect(bakeTarget(2, 'resid_pre')).toEqual({ tensor: 'transformer.h.1.mlp.c_proj.bias', everyRow: false });
    expect(bakeTarget(2, 'resid_post')).toEqual({ tensor: 'transformer.h.2.mlp.c_proj.bias', everyRow: false });
    const { params: baked, baked: list } = bakeSteering(cfg, params, 'resid_pre', vectors);
    expect(list.map((b) => [b.site, b.tensor])).toEqual([['blocks.0.resid_pre', 'transformer.wpe.weight'], ['blocks.2.resid_pre', 'transformer.h.1.mlp.c_proj.bias']]);
    // Only those tensors changed; wpe in every row by s_0; the source parameters untouched.
    for (const [name, p] of baked) {
      const src = params.get(name)!.data;
      if (name === 'transformer.wpe.weight') for (let r = 0; r < cfg.nPositions; r++) for (let i = 0; i < cfg.nEmbd; i++) expect(p.data[r * cfg.nEmbd + i]).toBe(Math.fround(src[r * cfg.nEmbd + i] + vectors[0][i]));
      else if (name === 'transformer.h.1.mlp.c_proj.bias') for (let i = 0; i < cfg.nEmbd; i++) expect(p.data[i]).toBe(Math.fround(src[i] + vectors[2][i]));
      else expect(p.data).toEqual(src);
    }
    expect(params.get('transformer.wpe.weight')!.data).not.toEqual(baked.get('transformer.wpe.weight')!.data);
    expect(() => bakeSteering(cfg, params, 'ln2', vectors.slice(1))).toThrow(/2 steering vectors; the model has 3 layers/);
  });

  for (const site of GPT2_SITES) {
    it(`${site}: the baked forward equals the source steered at every position (every site activation, every logit)`, async () => {
      const steered = await everyPosition(params, { site, vectors });
      const baked = await everyPosition(bakeSteering(cfg, params, site, vectors).params);
      const plain = await everyPosition(params);
      for (const name of Object.keys(steered)) {
        // resid_pre of block l is resid_post of block l-1: the baked model carries block l's shift in that
        // tensor already, read at block l-1's resid_post hook, where the test graph adds it at block l's.
        const m = /^blocks\.(\d+)\.resid_post$/.exec(name);
        const want = site === 'resid_pre' && m && Number(m[1]) + 1 < cfg.nLayer ? steered[siteName(Number(m[1]) + 1, 'resid_pre')] : steered[name];
        const scale = Math.max(1, ...Array.from(want, Math.abs));
        expect(maxDiff(baked[name], want) / scale, name).toBeLessThan(1e-5);
      }
      expect(maxDiff(plain.logits, steered.logits)).toBeGreaterThan(1e-2); // the steering does something
      // The shift at its own site: activation = unsteered activation + s_l at every position (layer 0).
      const d = cfg.nEmbd;
      const a = baked[siteName(0, site)];
      const u = plain[siteName(0, site)];
      for (let j = 0; j < a.length; j++) expect(a[j]).toBeCloseTo(u[j] + vectors[0][j % d], 4);
    });
  }

  it('a rule one block off (resid_pre of block l into block l\'s own c_proj.bias) fails the same check', async () => {
    const wrong = cloneParams(params);
    wrong.get('transformer.wpe.weight')!.data.forEach((_, j, a) => (a[j] += vectors[0][j % cfg.nEmbd]));
    wrong.get('transformer.h.2.mlp.c_proj.bias')!.data.forEach((_, i, a) => (a[i] += vectors[2][i]));
    const steered = await everyPosition(params, { site: 'resid_pre', vectors });
    const bad = await everyPosition(wrong);
    expect(maxDiff(bad[siteName(2, 'resid_pre')], steered[siteName(2, 'resid_pre')])).toBeGreaterThan(0.1);
    expect(maxDiff(bad.logits, steered.logits)).toBeGreaterThan(1e-2);
  });
});

describe('baked vs runtime steering (gpt2-infer.ts)', () => {
  for (const site of GPT2_SITES) {
    it(`${site}: the same logits, site vectors and greedy tokens on one-token prompts; different on longer prompts`, async () => {
      const source = await GPT2Inference.create(cfg, params, { site, runner: { threads: 1 } });
      const baked = await GPT2Inference.create(cfg, bakeSteering(cfg, params, site, vectors).params, { site, runner: { threads: 1 } });
      try {
        const prompts = [[0], [7], [22]];
        const rt = await source.generate(prompts, { maxNewTokens: cfg.nPositions - 1, eosId: -1, steer: vectors });
        const bk = await baked.generate(prompts, { maxNewTokens: cfg.nPositions - 1, eosId: -1 });
        expect(bk.tokens).toEqual(rt.tokens);
        expect(rt.tokens[0]).toHaveLength(cfg.nPositions - 1);
        expect(maxDiff(bk.firstLogits, rt.firstLogits)).toBeLessThan(1e-4);
        expect(maxDiff(bk.hidden, rt.hidden)).toBeLessThan(1e-4);
        // Longer prompts: runtime shifts only the last prompt position, the baked model every one.
        const long = (await baked.forward(IDS[0])).logits;
        const runtime = (await source.forward(IDS[0], vectors)).logits;
        expect(maxDiff(long, runtime)).toBeGreaterThan(1e-3);
      } finally {
        await source.release();
        await baked.release();
      }
    });
  }
});

describe('model.onnx', () => {
  it('input_ids [batch, seq] -> logits [batch, seq, vocab] equal to the baked forward at every position', async () => {
    const { params: baked } = bakeSteering(cfg, params, 'ln2', vectors);
    const dir = path.join(tmp, 'onnx');
    fs.mkdirSync(dir);
    expect(writeExportOnnx(dir, buildExportGraph(cfg, baked))).toEqual([ONNX_FILE]);
    const g = buildExportGraph(cfg, baked);
    expect(g.inputSpecs()).toEqual([{ name: 'input_ids', shape: ['batch', 'seq'], dtype: 'int64' }]);
    const runner = await Runner.create(path.join(dir, ONNX_FILE), { inputs: g.inputSpecs(), outputs: g.outputSpecs() }, { threads: 1 });
    try {
      const T = IDS[0].length;
      const out = await runner.run({ input_ids: { data: BigInt64Array.from(IDS.flat(), BigInt), dims: [IDS.length, T] } });
      expect(out.logits.dims).toEqual([IDS.length, T, cfg.vocabSize]);
      const want = await everyPosition(baked);
      expect(maxDiff(out.logits.data as Float32Array, want.logits)).toBeLessThan(1e-4);
    } finally {
      await runner.release();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The command on the committed tiny run.

const REPO_RUN = path.join(__dirname, '..', '..', 'runs', 'arithmetic-tiny');
const haveRun = fs.existsSync(analysisPath(REPO_RUN, 'neurons')) && fs.existsSync(path.join(REPO_RUN, RUN_FILES.model));
const OUT = path.join(tmp, 'steered');

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const errs: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((s: string) => void out.push(s));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  const error = vi.spyOn(console, 'error').mockImplementation((s: string) => void errs.push(s));
  try {
    return { code: await main(argv), out: out.join('\n'), err: errs.join('') };
  } finally {
    log.mockRestore();
    err.mockRestore();
    error.mockRestore();
  }
}

describe.skipIf(!haveRun)('memgen export on runs/arithmetic-tiny', () => {
  it('writes a run folder that loadRun, eval and generate open, with the manifest of the export', async () => {
    const r = await cli(['export', '--run', REPO_RUN, '--out', OUT, '--n', '12', '--seed', '7', '--threads', '1']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/runtime steering of the source +[\d.]+ +[\d.]+ +[\d.]+ +12/);
    expect(r.out).toMatch(/this export, unsteered +[\d.]+ +[\d.]+ +[\d.]+ +12/);
    expect(fs.readdirSync(OUT).sort()).toEqual([RUN_FILES.config, RUN_FILES.manifest, RUN_FILES.model, ONNX_FILE, RUN_FILES.tokenizer].sort());
    expect(fs.existsSync(`${OUT}.partial`)).toBe(false);
    expect(fs.existsSync(`${OUT}.lock`)).toBe(false);
    expect(fs.readFileSync(path.join(OUT, RUN_FILES.config), 'utf8')).toBe(fs.readFileSync(path.join(REPO_RUN, RUN_FILES.config), 'utf8'));
    expect(fs.readFileSync(path.join(OUT, RUN_FILES.tokenizer), 'utf8')).toBe(fs.readFileSync(path.join(REPO_RUN, RUN_FILES.tokenizer), 'utf8'));

    const run = loadRun(OUT);
    const src = loadRun(REPO_RUN);
    expect(run.manifest).toMatchObject({ format: 'memgen-run/1', status: 'done', task: 'arithmetic', seed: src.manifest.seed, best: null });
    expect(run.manifest.command).toBe(`memgen export --run ${REPO_RUN} --direction 'mem->gen' --topn 0.1 --alpha 5 --n 12 --seed 7 --out ${OUT}`);
    const info = readExportInfo(OUT)!;
    expect(info.format).toBe(EXPORT_FORMAT);
    expect(info.source.run).toBe(REPO_RUN);
    expect(info.source.modelHash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(info.intervention).toMatchObject({ kind: 'targeted', direction: 'mem->gen', alpha: 5, topN: 0.1, site: 'resid_pre', count: Math.round(0.1 * 4 * 128) });
    const c = info.comparison!;
    expect(c.n).toBe(12);
    expect(c.runtime.counts.gen + c.runtime.counts.mem + c.runtime.counts.other).toBe(12);
    expect(c.baked.counts.gen + c.baked.counts.mem + c.baked.counts.other).toBe(12);
    expect(c.sameOutput).toBeLessThanOrEqual(12);
    expect(readExportInfo(REPO_RUN)).toBeNull();

    // The weights differ from the source exactly in the baked tensors.
    const changed = [...run.params].filter(([name, p]) => maxDiff(p.data, src.params.get(name)!.data) > 0).map(([name]) => name).sort();
    expect(changed).toEqual(info.baked.map((b) => b.tensor).sort());
    expect(changed.length).toBeGreaterThan(0);

    const ev = await cli(['eval', '--run', OUT, '--n', '20', '--threads', '1']);
    expect(ev.code).toBe(0);
    expect(ev.out).toContain(`steered export of ${REPO_RUN}`);
    expect(ev.out).toMatch(/same output on \d+ of 12 inputs/);
    const gen = await cli(['generate', '--run', OUT, '--prompt', '12+34+56+78=', '--threads', '1']);
    expect(gen.code).toBe(0);
    expect(gen.out).toMatch(/→ (gen|mem|other)/);
  });

  it('refuses an existing DIR without --force, keeps it aside with --force, and refuses the source itself', async () => {
    const again = await cli(['export', '--run', REPO_RUN, '--out', OUT, '--no-compare', '--threads', '1']);
    expect(again.code).toBe(1);
    const before = fs.readFileSync(path.join(OUT, RUN_FILES.manifest), 'utf8');
    const forced = await cli(['export', '--run', REPO_RUN, '--out', OUT, '--no-compare', '--direction', 'gen->mem', '--force', '--threads', '1']);
    expect(forced.code).toBe(0);
    const aside = fs.readdirSync(tmp).filter((f) => f.startsWith('steered.replaced-'));
    expect(aside).toHaveLength(1);
    expect(fs.readFileSync(path.join(tmp, aside[0], RUN_FILES.manifest), 'utf8')).toBe(before);
    const info = readExportInfo(OUT)!;
    expect(info.intervention.direction).toBe('gen->mem');
    expect(info.comparison).toBeNull();
    expect(forced.out).toContain('not measured');
    expect((await cli(['export', '--run', REPO_RUN, '--out', REPO_RUN, '--force'])).code).toBe(1);
    expect((await cli(['export', '--run', REPO_RUN, '--out', OUT, '--topn', '0.1', '--pick', 'blocks.0.resid_pre:1'])).code).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------
// Optional: an independent PyTorch GPT-2 and the onnx checker.

const PYTHON = '/usr/bin/python3';
const hasPython = (mods: string) => fs.existsSync(PYTHON) && spawnSync(PYTHON, ['-c', `import ${mods}`], { stdio: 'ignore', timeout: 60_000 }).status === 0;
const hasTorch = hasPython('torch, numpy');
const hasOnnx = hasPython('onnx');

/**
 * Reads a folder as transformers would: config.json fields of GPT2Config and the safetensors tensors of
 * GPT2LMHeadModel (names and shapes spelled here from Hugging Face's module tree, Conv1D weights [in, out],
 * the LM head tied to wte so absent), then a float64 forward: logits at every position of each prompt,
 * with `steer` (site -> per-layer vectors) added at every position when given.
 */
const TORCH_GPT2 = String.raw`
import json, math, struct, sys
import numpy as np
import torch

req = json.load(sys.stdin)

def load(d):
    cfg = json.load(open(d + "/config.json"))
    assert cfg["model_type"] == "gpt2" and cfg["architectures"] == ["GPT2LMHeadModel"], cfg
    assert cfg["activation_function"] == "gelu_new" and cfg["tie_word_embeddings"] and cfg["n_inner"] is None
    raw = open(d + "/model.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    E, L, V, P = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"], cfg["n_positions"]
    want = {"transformer.wte.weight": [V, E], "transformer.wpe.weight": [P, E], "transformer.ln_f.weight": [E], "transformer.ln_f.bias": [E]}
    for i in range(L):
        for mod, shapes in [("ln_1", ([E], [E])), ("attn.c_attn", ([E, 3 * E], [3 * E])), ("attn.c_proj", ([E, E], [E])),
                            ("ln_2", ([E], [E])), ("mlp.c_fc", ([E, 4 * E], [4 * E])), ("mlp.c_proj", ([4 * E, E], [E]))]:
            want["transformer.h.%d.%s.weight" % (i, mod)] = shapes[0]
            want["transformer.h.%d.%s.bias" % (i, mod)] = shapes[1]
    got = {k: v for k, v in header.items() if k != "__metadata__"}
    assert set(got) == set(want), sorted(set(got) ^ set(want))
    W = {}
    for name, info in got.items():
        assert info["dtype"] == "F32" and info["shape"] == want[name], (name, info)
        b, e = info["data_offsets"]
        W[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"]).astype(np.float64))
    return cfg, W

def forward(cfg, W, ids, steer):
    d, H, L, eps = cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
    hd = d // H
    site, vec = (steer["site"], [torch.tensor(v, dtype=torch.float64) for v in steer["vectors"]]) if steer else (None, None)
    add = lambda s, i, x: x + vec[i] if s == site else x
    ln = lambda x, p: (x - x.mean(-1, keepdim=True)) / torch.sqrt(((x - x.mean(-1, keepdim=True)) ** 2).mean(-1, keepdim=True) + eps) * W[p + ".weight"] + W[p + ".bias"]
    gelu = lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    T = len(ids)
    h = W["transformer.wte.weight"][ids] + W["transformer.wpe.weight"][:T]
    for i in range(L):
        p = "transformer.h.%d." % i
        h = add("resid_pre", i, h)
        qkv = ln(h, p + "ln_1") @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        q, k, v = (t.reshape(T, H, hd).transpose(0, 1) for t in qkv.split(d, dim=-1))
        att = (q @ k.transpose(-2, -1) / math.sqrt(hd)).masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        h = h + (att @ v).transpose(0, 1).reshape(T, d) @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        m = add("ln2", i, ln(h, p + "ln_2"))
        h = add("resid_post", i, h + gelu(m @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"]) @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"])
    return (ln(h, "transformer.ln_f") @ W["transformer.wte.weight"].T).tolist()

out = []
for job in req:
    cfg, W = load(job["dir"])
    out.append([forward(cfg, W, ids, job.get("steer")) for ids in job["prompts"]])
json.dump(out, sys.stdout)
`;

function torch(jobs: { dir: string; prompts: number[][]; steer?: { site: GPT2Site; vectors: number[][] } }[]): number[][][][] {
  const py = spawnSync(PYTHON, ['-c', TORCH_GPT2], { input: JSON.stringify(jobs), encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 28 });
  if (py.status !== 0) throw new Error(`python failed (${py.status}): ${py.stderr}`);
  return JSON.parse(py.stdout) as number[][][][];
}

function writeFolder(dir: string, p: ParamSet): void {
  fs.mkdirSync(dir, { recursive: true });
  saveParams(path.join(dir, RUN_FILES.model), p);
  fs.writeFileSync(path.join(dir, RUN_FILES.config), JSON.stringify(toHFConfig(cfg, { bosTokenId: 0, eosTokenId: 0 })));
}

describe.skipIf(!hasTorch)('against an independent PyTorch GPT-2 (float64)', () => {
  it('per site: torch(baked) = torch(source steered at every position) = our baked forward, within 1e-4', async () => {
    writeFolder(path.join(tmp, 'torch-source'), params);
    const jobs: Parameters<typeof torch>[0] = [];
    const ours: Float32Array[] = [];
    for (const site of GPT2_SITES) {
      const baked = bakeSteering(cfg, params, site, vectors).params;
      writeFolder(path.join(tmp, `torch-${site}`), baked);
      jobs.push({ dir: path.join(tmp, `torch-${site}`), prompts: IDS });
      jobs.push({ dir: path.join(tmp, 'torch-source'), prompts: IDS, steer: { site, vectors: vectors.map((v) => Array.from(v)) } });
      ours.push((await everyPosition(baked)).logits);
    }
    const res = torch(jobs);
    GPT2_SITES.forEach((site, s) => {
      const bakedT = res[2 * s].flat(2);
      const steeredT = res[2 * s + 1].flat(2);
      expect(maxDiff(bakedT, steeredT), site).toBeLessThan(1e-4);
      expect(maxDiff(ours[s], bakedT), site).toBeLessThan(1e-4);
    });
  });

  it.skipIf(!haveRun)('reads the exported arithmetic-tiny folder as a Hugging Face GPT-2 and agrees with our forward', async () => {
    const dir = fs.existsSync(path.join(OUT, RUN_FILES.model)) ? OUT : path.join(tmp, 'torch-export');
    if (dir !== OUT) expect((await cli(['export', '--run', REPO_RUN, '--out', dir, '--no-compare', '--threads', '1'])).code).toBe(0);
    const run = loadRun(dir);
    const ids = run.task.tokenizer.encode('12+34+56+78=');
    const [[logits]] = torch([{ dir, prompts: [ids] }]);
    const inf = await GPT2Inference.create(run.cfg, run.params, { runner: { threads: 1 } });
    try {
      expect(maxDiff((await inf.forward(ids)).logits, logits[ids.length - 1])).toBeLessThan(1e-4);
    } finally {
      await inf.release();
    }
    expect(loadParams(path.join(dir, RUN_FILES.model), gpt2ParamShapes(run.cfg)).size).toBe(gpt2ParamShapes(run.cfg).size);
  });
});

describe.skipIf(!hasOnnx)('model.onnx against the onnx checker (python3-onnx)', () => {
  it('accepts the exported graph with full shape inference', () => {
    const dir = path.join(tmp, 'onnx-check');
    fs.mkdirSync(dir);
    writeExportOnnx(dir, buildExportGraph(cfg, bakeSteering(cfg, params, 'resid_post', vectors).params));
    const py = spawnSync(PYTHON, ['-c', `import onnx, sys
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
print('ok', [i.name for i in m.graph.input], [o.name for o in m.graph.output], len(m.graph.initializer))`, path.join(dir, ONNX_FILE)], { encoding: 'utf8', timeout: 120_000 });
    expect(py.stderr).toBe('');
    const [, count] = /^ok \['input_ids'\] \['logits'\] (\d+)$/.exec(py.stdout.trim()) ?? [];
    expect(Number(count)).toBeGreaterThanOrEqual(gpt2ParamShapes(cfg).size); // the weights, and the graph's constants
  });
});

// ---------------------------------------------------------------------------------------------
// LoRA runs (a LLaMA base + a PEFT adapter): the adapter merged, mlp_bias biases carrying the shifts.

describe('memgen export of a LoRA run (LLaMA)', () => {
  const base = path.join(tmp, 'llama-base');
  const loraDir = path.join(tmp, 'lora-run');
  const LOUT = path.join(tmp, 'llama-steered');
  // A LLaMA-3.2-shaped synthetic base (tied embeddings, BF16) and a LoRA run on it trained one step,
  // its B then set away from zero so that the merge matters; an analysis at resid_post written by hand
  // (what `memgen analyze` would: neurons.json, nmd.npy, rho.npy), so the picked neurons' shifts are
  // alpha x NMD.
  let run: LoadedLoraRun;
  let lvectors: Float32Array[];
  const PICK = 'layers.0.resid_post:3,layers.0.resid_post:40,layers.1.resid_post:7';
  const ONE = [[5], [77], [201]];

  beforeAll(async () => {
    writeSyntheticLlamaFolder(base, { seed: 21, shards: 1, std: 0.15, normJitter: 0.2 });
    await trainLoraRun({
      ...loraRunConfigFromArgs(['--base', base, '--lora', '--task', 'arithmetic', '--out', loraDir, '--rank', '4']),
      trainSize: 8, epochs: 1, batch: 8, evalEvery: 1, evalN: 2, runner: { threads: 1 },
    });
    const r0 = loadLoraRun(loraDir);
    const r = new Rng(3);
    const ad = new Map([...r0.adapter.params].map(([n, p]) => [n, { shape: p.shape, data: n.includes('lora_B') ? Float32Array.from(p.data, () => 0.3 * r.normal()) : p.data }]));
    saveAdapter(loraDir, r0.base.config, r0.adapter.config, ad, { baseDir: base });
    run = loadLoraRun(loraDir);
    const { numLayers: L, hiddenSize: d } = run.base.config;
    fs.mkdirSync(path.dirname(analysisPath(loraDir, 'neurons')), { recursive: true });
    const nmd = Float32Array.from({ length: L * d }, () => r.normal());
    writeNpy(analysisPath(loraDir, 'nmd'), nmd, [L, d]);
    writeNpy(analysisPath(loraDir, 'rho'), Float32Array.from({ length: L * d }, () => r.normal()), [L, d]);
    const neurons: NeuronsFile = { format: 'memgen-neurons/1', site: 'resid_post', family: 'llama', layers: L, d, topN: 0.1, count: 0, sign: 'gen - mem', pairs: 0, modelHash: loraModelHash(loraDir), neurons: [] };
    fs.writeFileSync(analysisPath(loraDir, 'neurons'), JSON.stringify(neurons));
    lvectors = Array.from({ length: L }, () => new Float32Array(d));
    for (const [l, i] of [[0, 3], [0, 40], [1, 7]]) lvectors[l][i] = 2 * nmd[l * d + i]; // alpha 2, mem->gen: + alpha x NMD
  }, 120_000);

  /** Logits at the last position and greedy tokens of `prompts` through LlamaInference. */
  async function llamaRun(cfg: LlamaConfig, p: ParamSet, prompts: number[][], opts: { adapter?: LoadedLoraRun['adapter']; steer?: Float32Array[]; site?: 'resid_pre' | 'resid_post' } = {}) {
    const inf = await LlamaInference.create(cfg, p, { site: opts.site ?? 'resid_post', adapter: opts.adapter, runner: { threads: 1 } });
    try {
      const g = await inf.generate(prompts, { maxNewTokens: 6, eosIds: [], steer: opts.steer });
      return { logits: g.firstLogits, tokens: g.tokens };
    } finally {
      await inf.release();
    }
  }
  const rel = (a: Float32Array, b: Float32Array) => maxDiff(a, b) / Math.max(1, ...Array.from(b, Math.abs));

  it('the rule: down_proj biases (layer 0 resid_pre: every row of embed_tokens, lm_head untied), zero gate/up biases, the adapter merged', () => {
    expect(llamaBakeTarget(1, 'resid_post')).toEqual({ tensor: 'model.layers.1.mlp.down_proj.bias', everyRow: false });
    expect(llamaBakeTarget(1, 'resid_pre')).toEqual({ tensor: 'model.layers.0.mlp.down_proj.bias', everyRow: false });
    expect(llamaBakeTarget(0, 'resid_pre')).toEqual({ tensor: 'model.embed_tokens.weight', everyRow: true });
    expect(() => llamaBakeTarget(0, 'ln2')).toThrow(/resid_pre or resid_post/);
    const cfg0 = run.base.config;
    expect(cfg0.tieWordEmbeddings).toBe(true);
    const zero: Float32Array[] = lvectors.map((v) => new Float32Array(v.length));
    zero[1] = lvectors[1];
    const b = bakeLlamaSteering(cfg0, run.base.params, run.adapter, 'resid_post', zero);
    expect(b.cfg).toEqual({ ...cfg0, mlpBias: true });
    expect(b.untiedHead).toBe(false);
    expect(b.baked.map((x) => [x.site, x.tensor])).toEqual([['layers.1.resid_post', 'model.layers.1.mlp.down_proj.bias']]);
    expect(b.merge).toMatchObject({ r: 4, alpha: 32, scaling: 8, tensors: ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.v_proj.weight', 'model.layers.1.self_attn.q_proj.weight', 'model.layers.1.self_attn.v_proj.weight'] });
    const merged = mergeLora(cfg0, run.adapter.config, run.base.params, run.adapter.params);
    for (const [name, p] of b.params) {
      if (name === 'model.layers.1.mlp.down_proj.bias') expect(p.data).toEqual(lvectors[1]);
      else if (name.endsWith('.bias')) expect(p.data.every((x) => x === 0), name).toBe(true);
      else expect(p.data, name).toEqual(merged.get(name)!.data);
    }
    expect([...b.params.keys()].filter((n) => n.endsWith('.bias')).length).toBe(3 * cfg0.numLayers);
    expect(maxDiff(merged.get('model.layers.0.self_attn.q_proj.weight')!.data, run.base.params.get('model.layers.0.self_attn.q_proj.weight')!.data)).toBeGreaterThan(1e-3);
    // resid_pre with a layer-0 shift on tied embeddings: embed_tokens shifted in every row, lm_head = the unshifted embedding.
    const pre = bakeLlamaSteering(cfg0, run.base.params, null, 'resid_pre', lvectors);
    expect(pre.untiedHead).toBe(true);
    expect(pre.cfg.tieWordEmbeddings).toBe(false);
    expect(pre.params.get('lm_head.weight')!.data).toEqual(run.base.params.get('model.embed_tokens.weight')!.data);
    const d = cfg0.hiddenSize;
    const e = pre.params.get('model.embed_tokens.weight')!.data;
    const e0 = run.base.params.get('model.embed_tokens.weight')!.data;
    for (const row of [0, 17, cfg0.vocabSize - 1]) for (let i = 0; i < d; i++) expect(e[row * d + i]).toBe(Math.fround(e0[row * d + i] + lvectors[0][i]));
    expect(run.base.params.get('lm_head.weight')).toBeUndefined(); // the source is left unchanged
  });

  it('one-token prompts: the merged model = the adapter (1e-5); the baked model unsteered = runtime steering (1e-4, same greedy tokens), at resid_post and resid_pre', async () => {
    const cfg0 = run.base.config;
    const zeros = lvectors.map((v) => new Float32Array(v.length));
    const merged = bakeLlamaSteering(cfg0, run.base.params, run.adapter, 'resid_post', zeros);
    const adapted = await llamaRun(cfg0, run.base.params, ONE, { adapter: run.adapter });
    const plain = await llamaRun(merged.cfg, merged.params, ONE);
    expect(rel(plain.logits, adapted.logits)).toBeLessThan(1e-5);
    expect(plain.tokens).toEqual(adapted.tokens);
    for (const site of ['resid_post', 'resid_pre'] as const) {
      const b = bakeLlamaSteering(cfg0, run.base.params, run.adapter, site, lvectors);
      const runtime = await llamaRun(cfg0, run.base.params, ONE, { adapter: run.adapter, steer: lvectors, site });
      const baked = await llamaRun(b.cfg, b.params, ONE);
      expect(rel(baked.logits, runtime.logits), site).toBeLessThan(1e-4);
      expect(baked.tokens, site).toEqual(runtime.tokens);
      expect(rel(runtime.logits, adapted.logits), site).toBeGreaterThan(1e-3); // the steering does something
    }
  });

  it('the comparison runs the LoRA run steered at runtime and the baked model on the same starting inputs', async () => {
    // The toy's outputs are all 'other': a task whose every output counts as mem gives n starting inputs.
    const task: LoadedLoraRun['task'] = Object.assign(Object.create(run.task) as LoadedLoraRun['task'], { classify: () => 'mem' as const });
    const b = bakeLlamaSteering(run.base.config, run.base.params, run.adapter, 'resid_post', lvectors);
    const source = await loraRunModel(run, 'resid_post', { runner: { threads: 1 } });
    const baked = await llamaSteerModel(b.cfg, b.params, 'resid_post', { runner: { threads: 1 } });
    try {
      const c = await compareBakedToRuntime(task, source, baked, lvectors, 'mem->gen', { n: 4, seed: 1 });
      expect(c.n).toBe(4);
      expect([c.runtime.counts.mem, c.baked.counts.mem]).toEqual([4, 4]);
      expect(c.sameOutput + c.differing.length).toBe(4);
      for (const x of c.differing) {
        const ids = [task.tokenizer.encode(x.prompt)];
        const gen = (m: typeof source, steer?: Float32Array[]) => m.generate(ids, { maxNewTokens: task.maxAnswerTokens, eosId: task.tokenizer.eoaId, steer });
        expect(x.runtime).toBe(task.tokenizer.decode((await gen(source, lvectors)).tokens[0]));
        expect(x.baked).toBe(task.tokenizer.decode((await gen(baked)).tokens[0]));
      }
    } finally {
      await source.release();
      await baked.release();
    }
  });

  it('the command: a Hugging Face LLaMA folder (mlp_bias), its manifest and comparison; generate, forward and eval open it; model.onnx agrees', async () => {
    const r = await cli(['export', '--run', loraDir, '--out', LOUT, '--pick', PICK, '--alpha', '2', '--n', '3', '--max-tries', '12', '--seed', '4', '--threads', '1']);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/this export, unsteered/);
    expect(r.out).toMatch(/adapter merged, W \+ 8 B A \(r 4, alpha 32\) into 4 weights/);
    expect(fs.readdirSync(LOUT).sort()).toEqual([RUN_FILES.config, 'generation_config.json', RUN_FILES.manifest, RUN_FILES.model, ONNX_FILE, 'special_tokens_map.json', RUN_FILES.tokenizer, 'tokenizer_config.json'].sort());
    const config = JSON.parse(fs.readFileSync(path.join(LOUT, RUN_FILES.config), 'utf8'));
    const baseConfig = JSON.parse(fs.readFileSync(path.join(base, RUN_FILES.config), 'utf8'));
    expect(config).toEqual({ ...baseConfig, mlp_bias: true, torch_dtype: 'float32' });
    expect(fs.readFileSync(path.join(LOUT, RUN_FILES.tokenizer), 'utf8')).toBe(fs.readFileSync(path.join(base, RUN_FILES.tokenizer), 'utf8'));
    const m = JSON.parse(fs.readFileSync(path.join(LOUT, RUN_FILES.manifest), 'utf8'));
    expect(m).toMatchObject({ format: 'memgen-run/1', family: 'llama', task: 'arithmetic', memRate: 0.07, promptFormat: run.manifest.promptFormat, best: null });
    const info = readExportInfo(LOUT)!;
    expect(info).toMatchObject({ family: 'llama', untiedHead: false, weights: { dtype: 'F32', baseDtypes: ['BF16'] }, merge: { r: 4, scaling: 8 } });
    expect(info.source).toMatchObject({ run: loraDir, base, modelHash: loraModelHash(loraDir) });
    expect(info.intervention).toMatchObject({ kind: 'custom', family: 'llama', site: 'resid_post', count: 3, topN: null, alpha: 2 });
    expect(info.baked.map((b) => b.tensor)).toEqual(['model.layers.0.mlp.down_proj.bias', 'model.layers.1.mlp.down_proj.bias']);
    const c = info.comparison!;
    expect(c.runtime.counts.gen + c.runtime.counts.mem + c.runtime.counts.other).toBe(c.n);
    expect(c.baked.counts.gen + c.baked.counts.mem + c.baked.counts.other).toBe(c.n);

    // The folder loads as a plain LLaMA folder; unsteered on one-token prompts it is the LoRA run steered at runtime.
    const folder = loadLlamaFolder(LOUT);
    expect(folder.config.mlpBias).toBe(true);
    const runtime = await llamaRun(run.base.config, run.base.params, ONE, { adapter: run.adapter, steer: lvectors });
    const exported = await llamaRun(folder.config, folder.params, ONE);
    expect(rel(exported.logits, runtime.logits)).toBeLessThan(1e-4);
    expect(exported.tokens).toEqual(runtime.tokens);

    // model.onnx: logits at every position; the last equals LlamaInference's.
    const g = buildLlamaExportGraph(folder.config, folder.params);
    const runner = await Runner.create(path.join(LOUT, ONNX_FILE), { inputs: g.inputSpecs(), outputs: g.outputSpecs() }, { threads: 1 });
    try {
      const ids = [3, 9, 27, 81, 243];
      const out = await runner.run({ input_ids: { data: BigInt64Array.from(ids, BigInt), dims: [1, ids.length] } });
      const V = folder.config.vocabSize;
      expect(out.logits.dims).toEqual([1, ids.length, V]);
      const last = (out.logits.data as Float32Array).subarray((ids.length - 1) * V);
      const inf = await LlamaInference.create(folder.config, folder.params, { runner: { threads: 1 } });
      try {
        expect(rel(last, (await inf.forward(ids)).logits)).toBeLessThan(1e-4);
      } finally {
        await inf.release();
      }
    } finally {
      await runner.release();
    }

    const ev = await cli(['eval', '--run', LOUT, '--n', '4', '--threads', '1']);
    expect(ev.code, ev.out).toBe(0);
    expect(ev.out).toMatch(/^gen +\d+/m);
    expect(ev.out).toContain(`steered export of ${loraDir}`);
    const gen = await cli(['generate', '--run', LOUT, '--prompt', '12+34+56+78=', '--max-new-tokens', '3', '--threads', '1']);
    expect(gen.code, gen.out).toBe(0);
    expect(gen.out).toMatch(/→ (gen|mem|other)/);
    const fwd = await cli(['forward', '--run', LOUT, '--prompt', '12+34', '--json', '--threads', '1']);
    expect(fwd.code).toBe(0);
    expect(Object.keys(JSON.parse(fwd.out).hidden)).toEqual(['layers.0.resid_post', 'layers.1.resid_post']);
  });

  it('a LoRA run opens in eval, generate and forward as its base with its kept adapter, with its task', async () => {
    const ev = await cli(['eval', '--run', loraDir, '--n', '4', '--threads', '1']);
    expect(ev.code, ev.out).toBe(0);
    expect(ev.out).toMatch(/^gen +\d+/m);
    const gen = await cli(['generate', '--run', loraDir, '--prompt', '12+34+56+78=', '--max-new-tokens', '3', '--threads', '1']);
    expect(gen.out).toMatch(/→ (gen|mem|other) {3}\(correct: 180/);
    const logits = async (argv: string[]) => JSON.parse((await cli(['forward', ...argv, '--prompt', '12+34', '--json', '--threads', '1'])).out).logits as number[];
    const viaRun = await logits(['--run', loraDir]);
    expect(viaRun).toEqual(await logits(['--run', base, '--adapter', loraDir])); // the same model as the base + --adapter
    expect(viaRun).not.toEqual(await logits(['--run', base])); // and the adapter is on
    const twice = await cli(['generate', '--run', loraDir, '--adapter', loraDir, '--prompt', '1+2+3+4=']);
    expect(twice.code).not.toBe(0);
    expect(twice.err).toMatch(/is a memgen LoRA run \(its adapter, if any, is in it already\)/);
  });

  it('the editor: run: a LoRA run predicts as `memgen generate --run` does, at layers.{i}.resid_post; a plain LLaMA folder with task: headers too', async () => {
    const P = '12+34+56+78=';
    const cliOut = JSON.parse((await cli(['generate', '--run', loraDir, '--prompt', P, '--json', '--threads', '1'])).out) as { output: string };
    const server = await startServer({ workspace: tmp, settings: { threads: 1, debounceMs: 50 } });
    try {
      const open = (name: string, lines: string[]) => {
        const uri = `file://${path.join(tmp, name)}`;
        void server.conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'memgen', version: 1, text: lines.join('\n') } });
        return uri;
      };
      const predict = (uri: string, line: number) => server.conn.sendRequest(lsp.predict.method, { uri, line }) as Promise<lsp.Prediction>;
      const lora = await predict(open('lora.memgen', [`run: ${loraDir}`, P]), 1);
      expect(lora.output).toBe(cliOut.output);
      expect(lora.task).toMatch(/^arithmetic.*mem tags in \d+(-\d+)? base tokens; base tokenizer, plain prompts$/);
      expect(lora.bestSite).toBe('layers.1.resid_post');
      const plain = await predict(open('base.memgen', [`run: ${base}`, 'task: arithmetic', P]), 2);
      expect(plain.bestSite).toBe('layers.1.resid_post');
      expect(['gen', 'mem', 'other']).toContain(plain.behaviour);
      // a LoRA run refuses the plain folders' task lines, naming them
      const refused = await predict(open('lora-task.memgen', [`run: ${loraDir}`, 'task: arithmetic', P]), 2).then(() => null, (e: Error) => e.message);
      expect(refused).toMatch(/is a LoRA run, trained on its own task: the task:, taskSeed: and taskScale: header lines are for plain Hugging Face folders/);
      await server.conn.sendNotification('memgen/configure', { threads: 1, debounceMs: 50, runsFolder: '.' });
      const runs = (await server.conn.sendRequest(lsp.listRuns.method, {})) as lsp.RunInfo[];
      expect(runs.find((r) => r.name === path.basename(loraDir))).toMatchObject({ task: 'arithmetic', plain: false });
    } finally {
      await server.stop();
    }
  });

  it.skipIf(!hasTorch)('an independent PyTorch LLaMA (transformers\' tensor set for mlp_bias) reads the export and agrees with ours and with runtime steering', async () => {
    const dir = fs.existsSync(path.join(LOUT, RUN_FILES.model)) ? LOUT : path.join(tmp, 'llama-torch-export');
    if (dir !== LOUT) expect((await cli(['export', '--run', loraDir, '--out', dir, '--pick', PICK, '--alpha', '2', '--no-compare', '--threads', '1'])).code).toBe(0);
    const folder = loadLlamaFolder(dir);
    const prompts = [...ONE, [3, 9, 27, 81, 243]];
    const t = torchRun(dir, prompts, 4);
    const inf = await LlamaInference.create(folder.config, folder.params, { runner: { threads: 1 } });
    try {
      for (const [i, p] of prompts.entries()) expect(maxDiff((await inf.forward(p)).logits, t[i].logits)).toBeLessThan(1e-3);
    } finally {
      await inf.release();
    }
    const runtime = await llamaRun(run.base.config, run.base.params, ONE, { adapter: run.adapter, steer: lvectors });
    ONE.forEach((_, i) => expect(t[i].tokens).toEqual(runtime.tokens[i].slice(0, 4)));
  });
});
