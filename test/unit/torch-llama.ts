/**
 * An independent LLaMA in plain PyTorch (float64, no transformers), written from the formulas, for the
 * optional cross-checks (llama-torch.test.ts, export.test.ts): runs only where
 * `/usr/bin/python3 -c "import torch, numpy"` works (Debian: apt-get install python3-torch).
 *
 * It reads a Hugging Face LLaMA folder with its own safetensors reader (BF16 = the top 16 bits of a
 * float32; F16; F32) and its own llama3 rope scaling, checks that the folder holds exactly the tensors
 * LlamaForCausalLM has for its config.json (with mlp_bias: a bias on gate_proj, up_proj and down_proj of
 * every layer, which it adds as transformers' nn.Linear(bias=True) does), and returns per prompt the
 * last-position logits, every layer's output (resid_post) at the last position, and a greedy
 * continuation recomputed from scratch at each step. Optionally a PEFT adapter folder is applied as
 * y += (alpha / r) (x A^T) B^T on its target modules.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

export const PYTHON = '/usr/bin/python3';
export const hasTorch = fs.existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore', timeout: 120_000 }).status === 0;

export const TORCH_LLAMA = String.raw`
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
assert cfg["hidden_act"] == "silu" and not cfg.get("attention_bias", False)
MLP_BIAS = cfg.get("mlp_bias", False)
# The tensors LlamaForCausalLM has for this config, no more and no fewer (transformers would start a
# missing one from random values and drop an unexpected one with only a warning).
want = {"model.embed_tokens.weight", "model.norm.weight"} | (set() if cfg["tie_word_embeddings"] else {"lm_head.weight"})
for i in range(L):
    p = "model.layers.%d." % i
    want |= {p + "input_layernorm.weight", p + "post_attention_layernorm.weight"}
    want |= {p + "self_attn.%s.weight" % m for m in ("q_proj", "k_proj", "v_proj", "o_proj")}
    want |= {p + "mlp.%s.weight" % m for m in ("gate_proj", "up_proj", "down_proj")}
    if MLP_BIAS:
        want |= {p + "mlp.%s.bias" % m for m in ("gate_proj", "up_proj", "down_proj")}
W = {k: v for k, v in W.items() if not k.endswith("rotary_emb.inv_freq")}
assert set(W) == want, sorted(set(W) ^ want)
KVH = cfg.get("num_key_value_heads", H)
hd = cfg.get("head_dim", d // H)
eps = cfg["rms_norm_eps"]

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
    if module + ".bias" in W:
        y = y + W[module + ".bias"]
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

export interface TorchOut {
  logits: number[];
  resid: number[][];
  tokens: number[];
}

export function torchRun(dir: string, prompts: number[][], maxNew: number, adapter?: string): TorchOut[] {
  const py = spawnSync(PYTHON, ['-c', TORCH_LLAMA], { input: JSON.stringify({ dir, prompts, max_new: maxNew, adapter }), encoding: 'utf8', timeout: 300_000 });
  if (py.status !== 0) throw new Error(`python failed (${py.status}): ${py.stderr}`);
  return JSON.parse(py.stdout) as TorchOut[];
}

