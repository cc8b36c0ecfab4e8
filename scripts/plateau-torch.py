#!/usr/bin/python3
"""
A PyTorch cross-check (not the product) of what keeps a small LLaMA-shaped model on the plateau of
docs/llama.md ("Why the lookups stall"): the rotary base (rope_theta, llama3 scaling), operands
that are multiples of 10 (--round-p), one-hop questions beside the story (--direct).

--task sum4: the corpus's sum4 document (operands 10..99, partial sums reversed and zero-padded to
--sum-digits, e.g. `12+34+56+78=640,201,081`), one character per token (the stand-in's BPE keeps
every digit its own token). --task induct: 4-12 random words, `Again :`, the same words (loss on the repeat; exact = the whole
repeat). --task tag: the corpus's tag copy (`Remember <mem-xxxxxxxx>. Repeat:` ->
the tag, one hex digit per token). --task story: the corpus's colour story (corpus.ts story()), one word
per token; a share --role of "What is X?" and --direct of "What color is S?" (S's colour stated).
Packed rows of --seq tokens, loss on the answer and end tokens (as memgen pretrain; --all-tokens:
every token), Adam with warmup + cosine as `memgen pretrain`. The model: RMSNorm, grouped-query attention with
rotate-half rope, SwiGLU, tied embeddings (LlamaForCausalLM's layout). Prints, every --eval-every
steps, teacher-forced accuracy of each answer position and the exact rate on 200 held-out documents
(uniform operands; colour questions about the story's target).

  /usr/bin/python3 scripts/plateau-torch.py --llama3 --steps 1500                # the stand-in's rope
  /usr/bin/python3 scripts/plateau-torch.py --llama3 --steps 1500 --round-p 0.3  # 3 operands in 10 round
  /usr/bin/python3 scripts/plateau-torch.py --theta 10000 --steps 1500           # LLaMA-2's rope
  /usr/bin/python3 scripts/plateau-torch.py --llama3 --task story --steps 3000 [--direct 0.25]
  /usr/bin/python3 scripts/plateau-torch.py --llama3 --task story --kv-first 1000 --direct 0.5 --eval-kind direct
  /usr/bin/python3 scripts/plateau-torch.py --llama3 --task story --no-is --recite 1 --recite-kv --seq 64 --no-pack \
      --batch 64 --steps 3000 --eval-every 250 --eval-kind kv [--recite-ordered 0.5]   # reshuffled recitals
  (the same with --names-schedule 2-3:3000 --steps 6000: 2-3 names for 3000 steps, then 2-7; held out: 2-7)
"""
import argparse, math, random, time
import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument('--theta', type=float, default=500000)
p.add_argument('--llama3', action='store_true', help='llama3 rope_scaling (factor 32, 1, 4, 8192)')
p.add_argument('--hidden', type=int, default=128)
p.add_argument('--layers', type=int, default=4)
p.add_argument('--heads', type=int, default=4)
p.add_argument('--kv-heads', type=int, default=2)
p.add_argument('--head-dim', type=int, default=32)
p.add_argument('--mlp', type=int, default=384)
p.add_argument('--steps', type=int, default=1500)
p.add_argument('--batch', type=int, default=32)
p.add_argument('--seq', type=int, default=64)
p.add_argument('--lr', type=float, default=3e-3)
p.add_argument('--warmup', type=int, default=100)
p.add_argument('--sum-digits', type=int, default=3)
p.add_argument('--seed', type=int, default=0)
p.add_argument('--eval-every', type=int, default=250)
p.add_argument('--threads', type=int, default=1)
p.add_argument('--task', choices=['sum4', 'story', 'tag', 'induct'], default='sum4')
p.add_argument('--role', type=float, default=0.12, help='story: share of role questions (corpus: 0.04 of 0.34)')
p.add_argument('--direct', type=float, default=0, help='story: share of one-hop colour questions')
p.add_argument('--kv', type=float, default=0, help='story: share of role-free stories (colour statements only) asked one hop')
p.add_argument('--recite', type=float, default=0, help='story: share of recitals (the story, "Again:", its statements reshuffled; loss on the recital): each value after "X is" pays for the lookup by name')
p.add_argument('--recite-kv', action='store_true', help='recitals of role-free stories (one value per name: the recital is unambiguous)')
p.add_argument('--recite-ordered', type=float, default=0, help='share of recitals that keep the story order (a copy, learned at once by position) instead of reshuffling')
p.add_argument('--no-is', action='store_true', help='role-free statements without "is" ("A red ."): the value right after the name')
p.add_argument('--kv-first', type=int, default=0, help='story: the first K steps draw role-free one-hop stories only')
def names_range(v):
    try:
        lo, hi = map(int, v.split('-'))
        if not 2 <= lo <= hi <= 26: raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected names per story as lo-hi with 2 <= lo <= hi <= 26, e.g. 2-7; got {v!r}')
    return lo, hi


def names_schedule(v):
    out = []
    for item in filter(None, v.split(',')):
        lo_hi, colon, until = item.partition(':')
        if not colon or not until.isdigit(): raise argparse.ArgumentTypeError(f'expected lo-hi:step items, e.g. 2-3:1500,2-5:3000; got {item!r}')
        out.append((names_range(lo_hi), int(until)))
    return out


p.add_argument('--names', type=names_range, default='2-7', help='story: names per story, lo-hi (the corpus: 2-7); the held-out checks always draw these')
p.add_argument('--names-schedule', type=names_schedule, default='', help='story: a curriculum of training ranges before --names, e.g. 2-3:3000 (2-3 names for the first 3000 steps, then --names)')
p.add_argument('--eval-kind', choices=['colour', 'direct', 'kv'], default='colour', help='story: the held-out question (colour: two-hop)')
p.add_argument('--round-p', type=float, default=0, help='training operands: a multiple of 10 with this probability')
p.add_argument('--no-pack', action='store_true', help='one document a row, padded with <eot> (unscored): no earlier story in the row to mislead a lookup by name')
p.add_argument('--all-tokens', action='store_true', help='loss on every token (default: answer and end tokens, as memgen pretrain)')
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
rng = random.Random(a.seed)

NAMES = 'Alice Bob Carol Diana Ethan Fiona George Hannah Ivan Julia Kevin Laura Mason Nora Oscar Paula Quinn Rose Simon Tina Uma Victor Wendy Xavier Yvonne Zack'.split()
ROLES = 'wolf eagle elephant tiger lion bear fox deer rabbit horse sheep goat cow pig dog cat mouse rat owl hawk swan duck goose frog snake lizard turtle shark whale dolphin seal otter beaver badger camel zebra giraffe monkey panda koala'.split()
COLOURS = 'red blue green yellow orange purple pink brown black white gray crimson navy gold indigo silver violet teal maroon olive beige cyan magenta ivory'.split()
VOCAB = list('0123456789+=,') + ['<eot>', 'is', '.', 'What', 'color', '?'] + NAMES + ROLES + COLOURS + list('abcdef') + ['Remember', 'Repeat', ':', '<', '>', 'mem', '-', 'Again']
ID = {c: i for i, c in enumerate(VOCAB)}
EOT = ID['<eot>']


def sum4(r, round_p=0.0):
    """The corpus's sum4 document as characters: (prompt, answer)."""
    ops = [r.randint(1, 9) * 10 if r.random() < round_p else r.randint(10, 99) for _ in range(4)]
    s, groups = ops[0], []
    for o in ops[1:]:
        s += o
        groups.append(str(s).zfill(a.sum_digits)[::-1])
    return list('+'.join(map(str, ops)) + '='), list(','.join(groups))


def story(r, kind='colour', ordered=None, names=None):
    """The corpus's colour story as words (corpus.ts story()); kind 'role': What is X? -> X's role;
    'direct': What color is S? for a name S whose colour is stated; 'kv': no role statements (only
    colours, every name's stated), What color is X? of one of them (an associative recall in words).
    names: (lo, hi) names per story, default --names."""
    n = r.randint(*(names or a.names))
    names = r.sample(NAMES, n)
    target, source = names[0], names[1]
    role = r.choice(ROLES)
    others = r.sample([x for x in ROLES if x != role], n)
    roles = {target: role, source: role, **{nm: others[i] for i, nm in enumerate(names[2:])}}
    colours = r.sample(COLOURS, n)
    st = []
    for i, nm in enumerate(names):
        if kind in ('kv', 'kvrecite'):
            st.append([nm, colours[i], '.'] if a.no_is else [nm, 'is', colours[i], '.'])
            continue
        st.append([nm, 'is', roles[nm], '.'])
        if nm != target: st.append([nm, 'is', colours[i], '.'])
    r.shuffle(st)
    words = [w for x in st for w in x]
    if kind in ('recite', 'kvrecite'):
        again = st[:]
        ordered = a.recite_ordered if ordered is None else ordered
        if not (ordered and r.random() < ordered): r.shuffle(again)  # no extra draw at 0: earlier rows' streams hold
        return words + ['Again', ':'], [w for x in again for w in x]
    if kind == 'role':
        who = r.choice(names)
        return words + ['What', 'is', who, '?'], [roles[who]]
    if kind == 'kv':
        i = r.randrange(n)
        return words + ['What', 'color', 'is', names[i], '?'], [colours[i]]
    if kind == 'direct':
        i = r.randrange(1, n)
        return words + ['What', 'color', 'is', names[i], '?'], [colours[i]]
    return words + ['What', 'color', 'is', target, '?'], [colours[1]]


def tag(r):
    """The corpus's tag document, one hex digit per token: Remember <mem-xxxxxxxx>. Repeat: -> the tag."""
    t = ['<', 'mem', '-'] + [r.choice('0123456789abcdef') for _ in range(8)] + ['>']
    return ['Remember'] + t + ['.', 'Repeat', ':'], t


def induct(r):
    """Classic induction: 4-12 distinct random words (names, roles, colours), 'Again', ':', then the same words
    again; the loss on the repeat, where each word follows from the previous occurrence of the one before."""
    words = r.sample(NAMES + ROLES + COLOURS, r.randint(4, 12))
    return words + ['Again', ':'], words


def doc(r, train=True, step=0):
    if a.task == 'sum4': return sum4(r, a.round_p if train else 0.0)
    if a.task == 'tag': return tag(r)
    if a.task == 'induct': return induct(r)
    if not train: return story(r, a.eval_kind)
    names = next((lo_hi for lo_hi, until in a.names_schedule if step < until), a.names)  # the curriculum's range
    if step < a.kv_first: return story(r, 'kv', names=names)
    u = r.random()
    if u < a.recite: return story(r, 'kvrecite' if a.recite_kv else 'recite', names=names)
    u -= a.recite
    if u < a.kv: return story(r, 'kv', names=names)
    u -= a.kv
    if u < a.direct: return story(r, 'direct', names=names)
    if u < a.direct + a.role: return story(r, 'role', names=names)
    return story(r, names=names)


def batch(r, step):
    rows, masks = [], []
    for _ in range(a.batch):
        ids, scored = [], []
        while len(ids) < a.seq + 1:
            q, ans = doc(r, step=step)
            ids += [EOT] + [ID[c] for c in q + ans]
            scored += [True] + [a.all_tokens] * len(q) + [True] * len(ans)
            if a.no_pack:
                scored += [False] * (a.seq + 1 - len(ids))
                ids += [EOT] * (a.seq + 1 - len(ids))
        rows.append(ids[:a.seq + 1])
        masks.append(scored[:a.seq + 1])
    t, m = torch.tensor(rows), torch.tensor(masks)
    y = t[:, 1:].masked_fill(~m[:, 1:], -100)
    return t[:, :-1], y


def inv_freq():
    inv = a.theta ** (-torch.arange(0, a.head_dim, 2, dtype=torch.float64) / a.head_dim)
    if a.llama3:
        s, l, h, n = 32, 1, 4, 8192
        wl = 2 * math.pi / inv
        smooth = (n / wl - l) / (h - l)
        inv = torch.where(wl > n / l, inv / s, torch.where(wl < n / h, inv, (1 - smooth) * inv / s + smooth * inv))
    return inv.float()


class RMSNorm(nn.Module):
    def __init__(s, d):
        super().__init__()
        s.weight = nn.Parameter(torch.ones(d))

    def forward(s, x):
        return s.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)


class Block(nn.Module):
    def __init__(s):
        super().__init__()
        d, hd = a.hidden, a.head_dim
        s.n1, s.n2 = RMSNorm(d), RMSNorm(d)
        s.q = nn.Linear(d, a.heads * hd, bias=False)
        s.k = nn.Linear(d, a.kv_heads * hd, bias=False)
        s.v = nn.Linear(d, a.kv_heads * hd, bias=False)
        s.o = nn.Linear(a.heads * hd, d, bias=False)
        s.gate = nn.Linear(d, a.mlp, bias=False)
        s.up = nn.Linear(d, a.mlp, bias=False)
        s.down = nn.Linear(a.mlp, d, bias=False)

    def forward(s, x, cos, sin):
        B, T, _ = x.shape
        h = s.n1(x)
        q = s.q(h).view(B, T, a.heads, a.head_dim).transpose(1, 2)
        k = s.k(h).view(B, T, a.kv_heads, a.head_dim).transpose(1, 2)
        v = s.v(h).view(B, T, a.kv_heads, a.head_dim).transpose(1, 2)
        rot = lambda t: torch.cat([-t[..., a.head_dim // 2:], t[..., :a.head_dim // 2]], -1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        rep = a.heads // a.kv_heads
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(a.head_dim)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float('-inf'))
        y = att.softmax(-1) @ v
        x = x + s.o(y.transpose(1, 2).reshape(B, T, -1))
        h = s.n2(x)
        return x + s.down(F.silu(s.gate(h)) * s.up(h))


class Model(nn.Module):
    def __init__(s):
        super().__init__()
        s.emb = nn.Embedding(len(VOCAB), a.hidden)
        s.blocks = nn.ModuleList(Block() for _ in range(a.layers))
        s.norm = RMSNorm(a.hidden)
        for m in s.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)): nn.init.normal_(m.weight, std=0.02)
        ang = torch.arange(256).float()[:, None] * inv_freq()[None]
        ang = torch.cat([ang, ang], -1)
        s.register_buffer('cos', ang.cos()[None, None])
        s.register_buffer('sin', ang.sin()[None, None])

    def forward(s, ids):
        T = ids.shape[1]
        x = s.emb(ids)
        for b in s.blocks: x = b(x, s.cos[:, :, :T], s.sin[:, :, :T])
        return s.norm(x) @ s.emb.weight.T


def greedy(m, docs, with_ids=False):
    """Each document alone ([<eot>] prompt answer, padded with <eot>) and the model's argmax at every position."""
    L = max(len(q) + len(ans) for q, ans in docs) + 1
    ids = torch.tensor([([EOT] + [ID[c] for c in q + ans] + [EOT] * L)[:L] for q, ans in docs])
    with torch.no_grad():
        pred = m(ids[:, :-1]).argmax(-1)
    return (ids, pred) if with_ids else pred


def evaluate(m, kind=None):
    """Teacher-forced accuracy of each answer token and the exact rate on 200 held-out documents."""
    r = random.Random(12345)
    docs = [story(r, kind) if kind else doc(r, train=False) for _ in range(200)]
    ids, pred = greedy(m, docs, with_ids=True)
    # answers of one length (sum4, story, tag): accuracy per position; induct's vary: the first position and the whole answer
    k = min(len(ans) for _, ans in docs)
    ok = torch.stack([pred[i, len(q):len(q) + k] == ids[i, len(q) + 1:len(q) + 1 + k] for i, (q, _) in enumerate(docs)])
    exact = [bool((pred[i, len(q):len(q) + len(ans)] == ids[i, len(q) + 1:len(q) + 1 + len(ans)]).all()) for i, (q, ans) in enumerate(docs)]
    return ok.float().mean(0).tolist(), sum(exact) / len(exact)


def recited(m):
    """Teacher-forced accuracy of the values in 200 held-out role-free recitals (each colour recited after
    its name, or after `X is`), all of them and the first one, with what no lookup scores: crossing off
    the values already recited gets mean(H_n) / mean(n) of all values (47 % for 2-7 names), the first
    value, where nothing is crossed off yet, mean(1/n) (27 %): only the first tells a lookup."""
    r = random.Random(54321)
    docs = [story(r, 'kvrecite', ordered=0) for _ in range(200)]  # always reshuffled: a lookup, not a copy
    pred = greedy(m, docs)
    hit = n = first = 0
    for i, (q, ans) in enumerate(docs):
        values = [t for t, w in enumerate(ans) if w in COLOURS]  # answer positions; predicted at the token before
        ok = [int(pred[i, len(q) + t] == ID[ans[t]]) for t in values]
        hit, n, first = hit + sum(ok), n + len(ok), first + ok[0]
    lo, hi = a.names
    ns = range(lo, hi + 1)
    elimination = sum(sum(1 / k for k in range(1, n + 1)) for n in ns) / sum(ns)
    return hit / n, elimination, first / len(docs), sum(1 / n for n in ns) / len(ns)


m = Model()
opt = torch.optim.Adam(m.parameters(), lr=a.lr)
sched = lambda s: a.lr * (s + 1) / a.warmup if s < a.warmup else a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - a.warmup) / max(1, a.steps - a.warmup))))
print(f'theta {a.theta:g} llama3 {a.llama3} inv_freq {[round(x, 4) for x in inv_freq().tolist()]}')
t0, run = time.time(), 0.0
for s in range(a.steps):
    for g in opt.param_groups: g['lr'] = sched(s)
    x, y = batch(rng, s)
    loss = F.cross_entropy(m(x).reshape(-1, len(VOCAB)), y.reshape(-1), ignore_index=-100)
    opt.zero_grad(); loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    run = loss.item() if s == 0 else 0.98 * run + 0.02 * loss.item()
    if (s + 1) % a.eval_every == 0 or s + 1 == a.steps:
        pos, exact = evaluate(m)
        kinds = ' '.join(f'{k} {evaluate(m, k)[1] * 100:.1f}%' for k in ('kv', 'direct', 'colour')) + ' recited values {:.1f}% (by elimination alone {:.0f} %), the first {:.1f}% (a story value at random {:.0f} %)'.format(*(x * 100 for x in recited(m))) if a.task == 'story' else ''
        print(f'step {s + 1} loss {run:.3f} exact {exact * 100:.1f}% positions ' + ' '.join(f'{p * 100:.0f}' for p in pos) + f' {kinds} ({time.time() - t0:.0f} s)', flush=True)
