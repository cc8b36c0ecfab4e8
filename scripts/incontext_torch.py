"""Peer check for the in-context study (docs/results.md, "In-context: the two-hop rule"): does a
PyTorch GPT-2 of the tiny preset's shape learn to read the same prior-free stories that our engine's
model does not? Same story rule as engine/tasks/incontext.ts (plain stories: T and S share a role, S's
colour stated, distractors state their own role and colour, roles and colours distinct, statements
shuffled), word-level tokens, loss on the answer word and the end token only, GPT-2 pre-LN blocks with
learned positions, tied embeddings, N(0, 0.02) init (residual projections 0.02 / sqrt(2 L)), Adam,
warm-up 100 then cosine to 10 %, clip 1. Not part of the product.

  python3 scripts/incontext_torch.py --steps 3000 --hop 2 [--names 3-5] [--lr 2e-3] [--layers 4 --d 128] [--pos rope]
--drill makes every training story a drill: before the final question, a one-hop question on every
stated colour (`What color is X? c`, shuffled), each answer scored (n - 1 more answers a story);
evaluation stays on plain stories.
--pos rope drops wpe and rotates queries and keys (RoPE, as LLaMA): the positions the stand-in base has.
"""
import argparse
import json
import math
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

NAMES = "Alice Bob Carol Diana Ethan Fiona George Hannah Ivan Julia Kevin Laura Mason Nora Oscar Paula Quinn Rose Simon Tina Uma Victor Wendy Xavier Yvonne Zack".split()
ROLES = ("wolf eagle elephant tiger lion bear fox deer rabbit horse sheep goat cow pig dog cat mouse rat owl hawk "
         "swan duck goose frog snake lizard turtle shark whale dolphin seal otter beaver badger camel zebra giraffe monkey panda koala").split()
COLOURS = "red blue green yellow orange purple pink brown black white gray crimson navy gold indigo silver violet teal maroon olive beige cyan magenta ivory".split()
VOCAB = ["<pad>", "<eoa>"] + NAMES + ROLES + COLOURS + ["What", "color", "is", ".", "?"]
ID = {w: i for i, w in enumerate(VOCAB)}


def story(rng, lo, hi, hop, drill=False):
    n = rng.randint(lo, hi)
    names = rng.sample(NAMES, n)
    T, S = names[0], names[1]
    roles = rng.sample(ROLES, n - 1)
    colours = rng.sample(COLOURS, n - 1)
    st = [[T, "is", roles[0], "."], [S, "is", roles[0], "."], [S, "is", colours[0], "."]]
    for i, d in enumerate(names[2:]):
        st += [[d, "is", roles[i + 1], "."], [d, "is", colours[i + 1], "."]]
    rng.shuffle(st)
    ask = T if hop == 2 else S
    toks = [w for s in st for w in s]
    drilled = []  # (index of the answer word in toks, its id): scored like the final answer
    if drill:
        facts = [(s[0], s[2]) for s in st if s[2] in COLOURS]
        rng.shuffle(facts)
        for who, c in facts:
            toks += ["What", "color", "is", who, "?", c]
            drilled.append((len(toks) - 1, ID[c]))
    toks += ["What", "color", "is", ask, "?"]
    return [ID[w] for w in toks], ID[colours[0]], 1.0 / (n - 1), drilled


def rotate(x, T):
    """RoPE (Su et al.), theta 10000, on the last dim of x (B, H, T, hd): pairs (i, i + hd/2) rotated by p * theta^(-2i/hd)."""
    hd = x.shape[-1]
    inv = 10000 ** (-torch.arange(0, hd // 2, dtype=torch.float32) * 2 / hd)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Block(nn.Module):
    def __init__(self, d, h, rope=False):
        super().__init__()
        self.rope = rope
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)
        self.h = h

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.attn(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
        if self.rope:
            q, k = rotate(q, T), rotate(k, T)
        w = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.h)
        w = w.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        a = w.softmax(-1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V, T, d, L, h, rope=False):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, d), nn.Embedding(T, d)
        self.rope = rope
        self.blocks = nn.ModuleList(Block(d, h, rope) for _ in range(L))
        self.lnf = nn.LayerNorm(d)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, 0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids):
        x = self.wte(ids) if self.rope else self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for b in self.blocks:
            x = b(x)
        return self.lnf(x) @ self.wte.weight.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--hop", type=int, default=2)
    ap.add_argument("--names", default="3-5")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--drill", action="store_true")
    ap.add_argument("--pos", choices=["learned", "rope"], default="learned")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    lo, hi = map(int, a.names.split("-"))
    rng = random.Random(a.seed)
    T = 4 * (2 * hi - 1) + 5 + 2 + (6 * (hi - 1) if a.drill else 0)
    model = GPT(len(VOCAB), T, a.d, a.layers, a.heads, a.pos == "rope")
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    erng = random.Random(12345)
    test = [story(erng, lo, hi, a.hop) for _ in range(500)]
    guess = sum(t[2] for t in test) / len(test)
    print(json.dumps({"hop": a.hop, "drill": a.drill, "names": [lo, hi], "lr": a.lr, "layers": a.layers, "d": a.d, "pos": a.pos, "guess": round(100 * guess, 1)}), flush=True)

    def batch(exs):
        ids = torch.zeros(len(exs), T, dtype=torch.long)
        tgt = torch.full((len(exs), T), -100, dtype=torch.long)
        for b, (p, ans, _, drilled) in enumerate(exs):
            seq = p + [ans, ID["<eoa>"]]
            ids[b, : len(seq) - 1] = torch.tensor(seq[:-1])
            for i, c in drilled:
                tgt[b, i - 1] = c
            tgt[b, len(p) - 1] = ans
            tgt[b, len(p)] = ID["<eoa>"]
        return ids, tgt

    t0, acc_loss = time.time(), 0.0
    for s in range(a.steps):
        lr = a.lr * (s + 1) / 100 if s < 100 else a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 100) / max(1, a.steps - 100))))
        for g in opt.param_groups:
            g["lr"] = lr
        ids, tgt = batch([story(rng, lo, hi, a.hop, a.drill) for _ in range(a.batch)])
        loss = F.cross_entropy(model(ids).reshape(-1, len(VOCAB)), tgt.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        acc_loss += loss.item()
        if (s + 1) % a.eval_every == 0:
            with torch.no_grad():
                right = 0
                for p, ans, _, _ in test:
                    right += int(model(torch.tensor([p]))[0, -1].argmax().item() == ans)
            print(json.dumps({"step": s + 1, "loss": round(acc_loss / a.eval_every, 4), "acc": round(100 * right / len(test), 1), "seconds": round(time.time() - t0)}), flush=True)
            acc_loss = 0.0


if __name__ == "__main__":
    main()
