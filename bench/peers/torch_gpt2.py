"""PyTorch peer for `npm run bench`: the same GPT-2 shape, batch and sequence length as our row.

Usage: torch_gpt2.py MODE LAYERS D HEADS T BATCH VOCAB STEPS [--serve]   (MODE: train | forward | generate)
Prints one JSON line per round (peer.py): value = tokens/s from the median of STEPS timed repeats
(train: B*T per step incl. Adam; forward: B*T per forward; generate: B*32 new tokens per call with a
K/V cache), every repeat's seconds, and the BLAS torch actually runs on. Debian's python3-torch,
2 threads.
"""
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from peer import run, timed_repeats, torch_setup

torch.set_num_threads(2)
torch.manual_seed(0)
mode = sys.argv[1]
L, D, H, T, B, V, STEPS = map(int, sys.argv[2:9])  # then optionally --serve


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.c_attn, self.c_proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.c_fc, self.mlp_proj = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

    def forward(self, x, past=None):
        b, t, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
        q, k, v = (z.view(b, t, H, D // H).transpose(1, 2) for z in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D // H)
        if t > 1:
            mask = torch.ones(t, k.shape[2], dtype=torch.bool).tril(k.shape[2] - t)
            att = att.masked_fill(~mask, float('-inf'))
        y = (F.softmax(att, -1) @ v).transpose(1, 2).reshape(b, t, D)
        x = x + self.c_proj(y)
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate='tanh'))
        return x, (k, v)


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, D), nn.Embedding(T + 64, D)
        self.h = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(D)

    def forward(self, ids, past=None, start=0):
        x = self.wte(ids) + self.wpe(torch.arange(start, start + ids.shape[1]))
        presents = []
        for i, blk in enumerate(self.h):
            x, kv = blk(x, None if past is None else past[i])
            presents.append(kv)
        return self.ln_f(x) @ self.wte.weight.T, presents


model = GPT()
ids = torch.randint(0, V, (B, T))


SETUP = torch_setup(torch)


def measure(fn, work, warmup=2):
    """Warm up, then one JSON line per round (run())."""
    for _ in range(warmup):
        fn()
    run(work, 'tokens/s', lambda: timed_repeats(fn, STEPS), SETUP)


if mode == 'train':
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    targets = torch.randint(0, V, (B, T))

    def step():
        logits, _ = model(ids)
        loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    measure(step, B * T)
elif mode == 'forward':
    with torch.no_grad():
        measure(lambda: model(ids), B * T)
else:
    NEW = 32

    def gen():
        logits, past = model(ids[:, :16])
        tok = logits[:, -1].argmax(-1, keepdim=True)
        for i in range(NEW - 1):
            logits, past = model(tok, past, 16 + i)
            tok = logits[:, -1].argmax(-1, keepdim=True)

    with torch.no_grad():
        measure(gen, B * NEW, warmup=1)
