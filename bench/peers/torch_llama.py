"""PyTorch peer for `npm run bench` (bench/llama.ts): the same LLaMA shape, batch and sequence length.

Usage: torch_llama.py MODE LAYERS D HEADS KV_HEADS HEAD_DIM INTERMEDIATE VOCAB T BATCH STEPS [--serve]
  MODE lora     one LoRA step per iteration: r = 8, alpha = 32 on q_proj and v_proj, base frozen
                (requires_grad False), dropout 0.1 on the adapter input, Adam on A and B only
       forward  a forward pass (no grad) of the whole sequence
Prints one JSON line per round (peer.py): value = tokens/s (B*T per step or per forward) from the
median of STEPS timed repeats, every repeat's seconds, and the BLAS torch actually runs on.
Debian's python3-torch, MEMGEN_BENCH_THREADS threads (default 2, as the bench). Under CPU
contention torch with 2 threads fell to 1/8 of its 1-thread speed (OpenMP threads spin): compare on
a quiet machine.
Rotary embeddings use plain rope (theta 500000): llama3 rope scaling changes the frequencies, not the cost.
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from peer import run, timed_repeats, torch_setup

torch.set_num_threads(int(__import__("os").environ.get("MEMGEN_BENCH_THREADS") or 2))
torch.manual_seed(0)
mode = sys.argv[1]
L, D, H, KVH, HD, I, V, T, B, STEPS = map(int, sys.argv[2:12])
R, ALPHA = 8, 32


class LoRALinear(nn.Module):
    def __init__(self, i, o, lora):
        super().__init__()
        self.base = nn.Linear(i, o, bias=False)
        self.lora = lora
        if lora:
            self.A = nn.Parameter(torch.randn(R, i) * 0.01)
            self.B = nn.Parameter(torch.zeros(o, R))

    def forward(self, x):
        y = self.base(x)
        if self.lora:
            y = y + (F.dropout(x, 0.1, self.training) @ self.A.t() @ self.B.t()) * (ALPHA / R)
        return y


def rope(x, cos, sin):
    x1, x2 = x[..., : HD // 2], x[..., HD // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Block(nn.Module):
    def __init__(self, lora):
        super().__init__()
        self.w1, self.w2 = nn.Parameter(torch.ones(D)), nn.Parameter(torch.ones(D))
        self.q = LoRALinear(D, H * HD, lora)
        self.k = nn.Linear(D, KVH * HD, bias=False)
        self.v = LoRALinear(D, KVH * HD, lora)
        self.o = nn.Linear(H * HD, D, bias=False)
        self.gate, self.up = nn.Linear(D, I, bias=False), nn.Linear(D, I, bias=False)
        self.down = nn.Linear(I, D, bias=False)

    @staticmethod
    def norm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.norm(x, self.w1)
        q = self.q(h).view(b, t, H, HD).transpose(1, 2)
        k = self.k(h).view(b, t, KVH, HD).transpose(1, 2)
        v = self.v(h).view(b, t, KVH, HD).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k, v = k.repeat_interleave(H // KVH, 1), v.repeat_interleave(H // KVH, 1)
        att = ((q @ k.transpose(-2, -1)) / HD ** 0.5).masked_fill(~mask, float('-inf'))
        x = x + self.o((F.softmax(att, -1) @ v).transpose(1, 2).reshape(b, t, H * HD))
        h = self.norm(x, self.w2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, lora):
        super().__init__()
        self.emb = nn.Embedding(V, D)
        self.blocks = nn.ModuleList(Block(lora) for _ in range(L))
        self.wf = nn.Parameter(torch.ones(D))

    def forward(self, ids):
        t = ids.shape[1]
        inv = 1.0 / (500000 ** (torch.arange(0, HD, 2).float() / HD))
        ang = torch.outer(torch.arange(t).float(), inv)
        cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        x = self.emb(ids)
        for blk in self.blocks:
            x = blk(x, cos, sin, mask)
        return Block.norm(x, self.wf) @ self.emb.weight.t()  # tied embeddings


model = Llama(lora=(mode == 'lora'))
ids = torch.randint(0, V, (B, T))
targets = torch.randint(0, V, (B, T))
if mode == 'lora':
    for n, p in model.named_parameters():
        p.requires_grad = n.endswith('.A') or n.endswith('.B')
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-5)

    def step():
        loss = F.cross_entropy(model(ids).reshape(-1, V), targets.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
else:
    model.eval()

    def step():
        with torch.no_grad():
            model(ids)

step()
SETUP = torch_setup(torch)
run(B * T, 'tokens/s', lambda: timed_repeats(step, STEPS), SETUP)
