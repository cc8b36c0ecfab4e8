/**
 * An independent cross-check of the LLaMA path against PyTorch (optional: runs only where
 * `/usr/bin/python3 -c "import torch, numpy"` works, skipped otherwise; Debian: apt-get install python3-torch).
 *
 * A synthetic folder with LLaMA-3.2's exact config fields (tiny sizes, 3 BF16 shards + index,
 * tokenizer files) is written; the engine loads it through loadLlamaFolder and runs LlamaInference.
 * A Python LLaMA written here from the formulas (plain torch, float64, no transformers) reads the
 * same folder with its own safetensors reader (BF16 = the top 16 bits of a float32) and its own
 * llama3 rope scaling, and returns the last-position logits, every layer's output (resid_post) at
 * the last position, and a greedy continuation recomputed from scratch at each step. Optionally a
 * PEFT adapter folder is applied as y += (alpha / r) (x A^T) B^T on its target modules.
 * Ours (float32) must agree within 1e-3 and produce the same tokens.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLlamaFolder } from '../../engine/models/llama-folder';
import { LlamaInference } from '../../engine/models/llama-infer';
import { writeSyntheticLlamaFolder } from '../../engine/models/llama-synthetic';
import { LORA_DEFAULTS, initLora, saveAdapter } from '../../engine/models/lora';
import { Rng } from '../../engine/util/rng';

const PYTHON = '/usr/bin/python3';
const hasTorch = fs.existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore', timeout: 120_000 }).status === 0;

const TORCH_LLAMA = String.raw`
import json, math, os, struct, sys
import numpy as np
import torch

req = json.load(sys.stdin)
D = req["dir"]
cfg = json.load(open(os.path.join(D, "config.json")))

def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = data[b:e]
        if info["dtype"] == "BF16":
            a = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] == "F16":
            a = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        elif info["dtype"] == "F32":
            a = np.frombuffer(buf, dtype="<f4")
        else:
            raise ValueError(info["dtype"])
        out[name] = torch.from_numpy(a.reshape(info["shape"]).astype(np.float64))
    return out

W = {}
index = os.path.join(D, "model.safetensors.index.json")
files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
for f in files:
    W.update(read_safetensors(os.path.join(D, f)))

d, L, H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
KVH = cfg.get("num_key_value_heads", H)
hd = cfg.get("head_dim", d // H)
eps = cfg["rms_norm_eps"]
assert cfg["hidden_act"] == "silu" and not cfg["attention_bias"] and not cfg["mlp_bias"]

inv = [1.0 / (cfg["rope_theta"] ** (j / hd)) for j in range(0, hd, 2)]
rs = cfg.get("rope_scaling")
if rs is not None and rs.get("rope_type", rs.get("type")) == "llama3":
    old = rs["original_max_position_embeddings"]
    lo, hi, factor = rs["low_freq_factor"], rs["high_freq_factor"], rs["factor"]
    scaled = []
    for f in inv:
        wl = 2 * math.pi / f
        if wl < old / hi:
            scaled.append(f)
        elif wl > old / lo:
            scaled.append(f / factor)
        else:
            s = (old / wl - lo) / (hi - lo)
            scaled.append((1 - s) * f / factor + s * f)
    inv = scaled
inv = torch.tensor(inv, dtype=torch.float64)

ADAPT = {}
if req.get("adapter"):
    acfg = json.load(open(os.path.join(req["adapter"], "adapter_config.json")))
    scale = acfg["lora_alpha"] / acfg["r"]
    for name, t in read_safetensors(os.path.join(req["adapter"], "adapter_model.safetensors")).items():
        module = name[len("base_model.model."):].rsplit(".lora_", 1)[0]
        ADAPT.setdefault(module, {})["A" if ".lora_A." in name else "B"] = t
    ADAPT = {m: (ab["A"], ab["B"], scale) for m, ab in ADAPT.items()}

def lin(x, module):
    y = x @ W[module + ".weight"].T
    if module in ADAPT:
        A, B, s = ADAPT[module]
        y = y + s * ((x @ A.T) @ B.T)
    return y

def rms(x, w):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w

def rope(x, pos):
    ang = pos[:, None] * inv[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1)
    sin = torch.cat([ang.sin(), ang.sin()], -1)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin

def forward(ids):
    T = len(ids)
    pos = torch.arange(T, dtype=torch.float64)
    h = W["model.embed_tokens.weight"][ids]
    resid = []
    for i in range(L):
        p = "model.layers.%d." % i
        x = rms(h, W[p + "input_layernorm.weight"])
        q = rope(lin(x, p + "self_attn.q_proj").view(T, H, hd).transpose(0, 1), pos)
        k = rope(lin(x, p + "self_attn.k_proj").view(T, KVH, hd).transpose(0, 1), pos)
        v = lin(x, p + "self_attn.v_proj").view(T, KVH, hd).transpose(0, 1)
        k = k.repeat_interleave(H // KVH, dim=0)
        v = v.repeat_interleave(H // KVH, dim=0)
        att = q @ k.transpose(-2, -1) / math.sqrt(hd)
        att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        y = (att @ v).transpose(0, 1).reshape(T, H * hd)
        h = h + lin(y, p + "self_attn.o_proj")
        m = rms(h, W[p + "post_attention_layernorm.weight"])
        h = h + lin(torch.nn.functional.silu(lin(m, p + "mlp.gate_proj")) * lin(m, p + "mlp.up_proj"), p + "mlp.down_proj")
        resid.append(h[-1].tolist())
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return rms(h[-1], W["model.norm.weight"]) @ head.T, resid

out = []
for prompt in req["prompts"]:
    logits, resid = forward(prompt)
    seq, gen = list(prompt), []
    for _ in range(req["max_new"]):
        tok = int(torch.argmax(forward(seq)[0]))
        gen.append(tok)
        seq.append(tok)
    out.append({"logits": logits.tolist(), "resid": resid, "tokens": gen})
json.dump(out, sys.stdout)
`;

interface TorchOut {
  logits: number[];
  resid: number[][];
  tokens: number[];
}

function torchRun(dir: string, prompts: number[][], maxNew: number, adapter?: string): TorchOut[] {
  const py = spawnSync(PYTHON, ['-c', TORCH_LLAMA], { input: JSON.stringify({ dir, prompts, max_new: maxNew, adapter }), encoding: 'utf8', timeout: 300_000 });
  if (py.status !== 0) throw new Error(`python failed (${py.status}): ${py.stderr}`);
  return JSON.parse(py.stdout) as TorchOut[];
}

const diff = (a: ArrayLike<number>, b: number[]) => {
  expect(a.length).toBe(b.length);
  return Math.max(...b.map((v, j) => Math.abs(a[j] - v)));
};

describe.skipIf(!hasTorch)('LLaMA against an independent PyTorch forward', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-llama-torch-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** Loads `dir`, runs ours and torch's on the prompts, checks logits/resid within 1e-3 and the tokens; returns the max diffs. */
  async function compare(dir: string, prompts: number[][], adapterDir?: string): Promise<{ logits: number; resid: number }> {
    const maxNew = 6;
    const m = loadLlamaFolder(dir);
    const torch = torchRun(dir, prompts, maxNew, adapterDir);
    const adapter = adapterDir ? (await import('../../engine/models/lora')).loadAdapter(adapterDir, m.config) : undefined;
    const inf = await LlamaInference.create(m.config, m.params, { site: 'resid_post', adapter, runner: { threads: 1 } });
    const worst = { logits: 0, resid: 0 };
    try {
      const gen = await inf.generate(prompts, { maxNewTokens: maxNew, eosIds: [] });
      for (let i = 0; i < prompts.length; i++) {
        const ours = await inf.forward(prompts[i]);
        worst.logits = Math.max(worst.logits, diff(ours.logits, torch[i].logits));
        for (let l = 0; l < m.config.numLayers; l++) worst.resid = Math.max(worst.resid, diff(ours.sites[`layers.${l}.resid_post`], torch[i].resid[l]));
        expect(gen.tokens[i], `prompt ${i}`).toEqual(torch[i].tokens);
      }
    } finally {
      await inf.release();
    }
    expect(worst.logits).toBeLessThan(1e-3);
    expect(worst.resid).toBeLessThan(1e-3);
    return worst;
  }

  it('LLaMA-3.2 config fields, 3 BF16 shards: logits and every layer output within 1e-3, same greedy tokens', async () => {
    const dir = path.join(tmp, 'llama32');
    writeSyntheticLlamaFolder(dir, { seed: 7, shards: 3, dtype: 'BF16', std: 0.15, normJitter: 0.2 });
    const tok = loadLlamaFolder(dir).tokenizer!;
    const prompts = [
      tok.encode('The quick brown fox jumps over the lazy dog.'),
      tok.encodeChat([{ role: 'user', content: 'What is 12 + 34?' }], { extra: { date_string: '26 Jul 2024' } }),
      tok.encode('12+34'),
    ];
    const worst = await compare(dir, prompts);
    console.log(`LLaMA-3.2-shaped synthetic vs torch: max |logit diff| ${worst.logits.toExponential(2)}, max |resid_post diff| ${worst.resid.toExponential(2)}`);
  });

  it('llama3 rope scaling where it matters (short original context, long prompt), untied head, MHA', async () => {
    const dir = path.join(tmp, 'scaled');
    writeSyntheticLlamaFolder(dir, {
      seed: 8, shards: 2, dtype: 'F16', std: 0.15, normJitter: 0.2,
      config: { ropeTheta: 10000, ropeScaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 24 }, tieWordEmbeddings: false, numKVHeads: 4 },
    });
    const rng = new Rng(2);
    const V = loadLlamaFolder(dir, { tokenizer: false }).config.vocabSize;
    const worst = await compare(dir, [Array.from({ length: 40 }, () => rng.int(0, V - 1)), [5, 6, 7]]);
    console.log(`llama3 scaling over 40 positions vs torch: max |logit diff| ${worst.logits.toExponential(2)}, max |resid_post diff| ${worst.resid.toExponential(2)}`);
  });

  it('with a PEFT adapter on q_proj and v_proj (alpha / r scaling)', async () => {
    const dir = path.join(tmp, 'adapted');
    const { config } = writeSyntheticLlamaFolder(dir, { seed: 9, shards: 2, std: 0.15, normJitter: 0.2 });
    const lc = { ...LORA_DEFAULTS, r: 4, alpha: 16, seed: 3 };
    const ad = initLora(config, lc);
    const rng = new Rng(4);
    for (const [name, p] of ad) if (name.includes('lora_B')) for (let i = 0; i < p.data.length; i++) p.data[i] = 0.2 * rng.normal();
    const adapterDir = path.join(tmp, 'adapter');
    saveAdapter(adapterDir, config, lc, ad, { baseDir: dir });
    const worst = await compare(dir, [[3, 4, 5, 6, 7, 8, 9], [100, 2]], adapterDir);
    console.log(`with a LoRA adapter vs torch: max |logit diff| ${worst.logits.toExponential(2)}`);
  });
});
