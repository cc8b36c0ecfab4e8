/**
 * An independent cross-check of GPT-2 inference against PyTorch (optional: runs only where
 * `/usr/bin/python3 -c "import torch"` works, skipped otherwise; Debian: apt-get install python3-torch).
 *
 * A random model is saved as the run would be (model.safetensors + config.json from toHFConfig); a
 * Python GPT-2 written from the paper's formulas, in float64, reads both with a tiny safetensors
 * reader (8-byte little-endian header length, JSON header, raw little-endian bytes) and returns the
 * last-position logits, every layer's ln_2 output at the last position, and a greedy continuation
 * recomputed from scratch at each step. Ours must agree within 1e-4 and produce the same tokens.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { saveParams } from '../../engine/io/params';
import { type GPT2Config, initGPT2, toHFConfig } from '../../engine/models/gpt2';
import { GPT2Inference } from '../../engine/models/gpt2-infer';
import { Rng } from '../../engine/util/rng';

const PYTHON = '/usr/bin/python3';
const hasTorch = fs.existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore', timeout: 60_000 }).status === 0;

const TORCH_GPT2 = String.raw`
import json, math, struct, sys
import numpy as np
import torch

req = json.load(sys.stdin)
cfg = json.load(open(req["dir"] + "/config.json"))
raw = open(req["dir"] + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
W = {}
for name, info in header.items():
    if name == "__metadata__":
        continue
    assert info["dtype"] == "F32", info
    b, e = info["data_offsets"]
    W[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"]).astype(np.float64))

d, H, L, eps = cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
hd = d // H
assert cfg["activation_function"] == "gelu_new" and cfg["tie_word_embeddings"]

def ln(x, p):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * W[p + ".weight"] + W[p + ".bias"]

def gelu(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

def forward(ids):
    T = len(ids)
    h = W["transformer.wte.weight"][ids] + W["transformer.wpe.weight"][:T]          # (T, d)
    ln2 = []
    for i in range(L):
        p = "transformer.h.%d." % i
        qkv = ln(h, p + "ln_1") @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        q, k, v = (t.reshape(T, H, hd).transpose(0, 1) for t in qkv.split(d, dim=-1))  # (H, T, hd)
        att = q @ k.transpose(-2, -1) / math.sqrt(hd)
        att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        y = (att @ v).transpose(0, 1).reshape(T, d)
        h = h + y @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        m = ln(h, p + "ln_2")
        ln2.append(m[-1].tolist())
        h = h + gelu(m @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"]) @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    logits = ln(h[-1], "transformer.ln_f") @ W["transformer.wte.weight"].T
    return logits, ln2

out = []
for prompt in req["prompts"]:
    logits, ln2 = forward(prompt)
    seq, gen = list(prompt), []
    for _ in range(req["max_new"]):
        tok = int(torch.argmax(forward(seq)[0]))
        gen.append(tok)
        seq.append(tok)
    out.append({"logits": logits.tolist(), "ln2": ln2, "tokens": gen})
json.dump(out, sys.stdout)
`;

describe.skipIf(!hasTorch)('GPT-2 against an independent PyTorch forward', () => {
  it('last-position logits and every ln_2 output agree within 1e-4; greedy tokens match', async () => {
    const cfg: GPT2Config = { vocabSize: 37, nPositions: 24, nEmbd: 48, nLayer: 3, nHead: 4, layerNormEps: 1e-5 };
    const rng = new Rng(9);
    const params = initGPT2(cfg, rng);
    for (const [name, { data }] of params) {
      // Away from the initialisation (LayerNorm gains and biases too), so every tensor's role is tested.
      if (/\.ln_\w+\./.test(name)) for (let i = 0; i < data.length; i++) data[i] += 0.2 * rng.normal();
      else if (name.endsWith('.bias')) for (let i = 0; i < data.length; i++) data[i] = 0.1 * rng.normal();
      else for (let i = 0; i < data.length; i++) data[i] *= 6;
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-torch-'));
    try {
      saveParams(path.join(dir, 'model.safetensors'), params);
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(toHFConfig(cfg, { bosTokenId: 0, eosTokenId: 0 })));
      const prompts = [[1, 2, 3, 4, 5], [36, 0], Array.from({ length: 16 }, () => rng.int(0, 36))];
      const maxNew = 6;
      const py = spawnSync(PYTHON, ['-c', TORCH_GPT2], { input: JSON.stringify({ dir, prompts, max_new: maxNew }), encoding: 'utf8', timeout: 120_000 });
      if (py.status !== 0) throw new Error(`python failed (${py.status}): ${py.stderr}`);
      const torch = JSON.parse(py.stdout) as { logits: number[]; ln2: number[][]; tokens: number[] }[];

      const inf = await GPT2Inference.create(cfg, params, { site: 'ln2', runner: { threads: 1 } });
      try {
        const gen = await inf.generate(prompts, { maxNewTokens: maxNew, eosId: -1 });
        for (let i = 0; i < prompts.length; i++) {
          const ours = await inf.forward(prompts[i]);
          const diff = (a: ArrayLike<number>, b: number[]) => Math.max(...b.map((v, j) => Math.abs(a[j] - v)));
          expect(ours.logits.length).toBe(cfg.vocabSize);
          expect(diff(ours.logits, torch[i].logits)).toBeLessThan(1e-4);
          for (let l = 0; l < cfg.nLayer; l++) expect(diff(ours.hidden[l], torch[i].ln2[l])).toBeLessThan(1e-4);
          expect(gen.tokens[i]).toEqual(torch[i].tokens);
        }
      } finally {
        await inf.release();
      }
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });
});

describe.skipIf(!hasTorch)('`memgen forward` on a committed run against PyTorch', () => {
  const RUN = path.join(__dirname, '..', '..', 'runs', 'arithmetic-tiny');
  it.skipIf(!fs.existsSync(path.join(RUN, 'model.safetensors')))('logits and ln_2 vectors agree within 1e-4', async () => {
    const { main } = await import('../../engine/cli/main');
    const lines: string[] = [];
    const log = console.log;
    console.log = (s: string) => lines.push(s);
    let code: number;
    try {
      code = await main(['forward', '--run', RUN, '--prompt', '12+34+56+78=', '--json', '--threads', '1']);
    } finally {
      console.log = log;
    }
    expect(code).toBe(0);
    const ours = JSON.parse(lines.join('\n')) as { ids: number[]; logits: number[]; hidden: Record<string, number[]> };
    const py = spawnSync(PYTHON, ['-c', TORCH_GPT2], { input: JSON.stringify({ dir: RUN, prompts: [ours.ids], max_new: 0 }), encoding: 'utf8', timeout: 120_000 });
    if (py.status !== 0) throw new Error(`python failed (${py.status}): ${py.stderr}`);
    const [torch] = JSON.parse(py.stdout) as { logits: number[]; ln2: number[][] }[];
    const diff = (a: number[], b: number[]) => Math.max(...b.map((v, j) => Math.abs(a[j] - v)));
    expect(ours.logits.length).toBe(torch.logits.length);
    expect(diff(ours.logits, torch.logits)).toBeLessThan(1e-4);
    torch.ln2.forEach((v, l) => expect(diff(ours.hidden[`blocks.${l}.ln2`], v)).toBeLessThan(1e-4));
  });
});
