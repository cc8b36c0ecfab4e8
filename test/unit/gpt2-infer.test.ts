/**
 * GPT-2 inference (engine/models/gpt2-infer.ts): prefill against the training forward, the K/V cache
 * against full recomputation, batching against one-by-one, the steering rule, hook names, HF config.
 * The model is random with its weights scaled up (x6), so greedy outputs vary instead of repeating
 * the last token as a freshly initialised GPT-2 does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Graph, ops, type Tensor } from '../../engine/graph';
import { causalMaskAny, takeLast } from '../../engine/graph/ops/extra';
import { type ParamSet, paramFeeds } from '../../engine/io/params';
import {
  type GPT2Config, GPT2_PRESETS, fromHFConfig, gpt2Forward, gpt2Head, gpt2ParamInitializers, gpt2ParamInputs, gpt2Trunk, initGPT2, toHFConfig,
} from '../../engine/models/gpt2';
import { GPT2Inference, buildInferenceGraph } from '../../engine/models/gpt2-infer';
import { KVCache } from '../../engine/models/kv-cache';
import { GPT2_SITES, type GPT2Site, type SteerAt, parseSiteName, siteName } from '../../engine/models/hooks';
import { Runner } from '../../engine/runtime/runner';
import { Rng } from '../../engine/util/rng';

const cfg: GPT2Config = { vocabSize: 29, nPositions: 20, nEmbd: 32, nLayer: 3, nHead: 4, layerNormEps: 1e-5 };
const { nLayer: L, nEmbd: d, vocabSize: V } = cfg;
const RUNNER = { threads: 1 };

function randomModel(seed: number): ParamSet {
  const rng = new Rng(seed);
  const p = initGPT2(cfg, rng);
  for (const [name, { data }] of p) {
    if (/\.ln_\w+\./.test(name)) for (let i = 0; i < data.length; i++) data[i] += 0.1 * rng.normal();
    else if (name.endsWith('.bias')) for (let i = 0; i < data.length; i++) data[i] = 0.05 * rng.normal();
    else for (let i = 0; i < data.length; i++) data[i] *= 6;
  }
  return p;
}

const randomPrompt = (rng: Rng, len: number) => Array.from({ length: len }, () => rng.int(0, V - 1));
const randomVec = (rng: Rng, scale: number) => Float32Array.from({ length: d }, () => scale * rng.normal());
const steerAt = (layer: number, v: Float32Array) => Array.from({ length: L }, (_, l) => (l === layer ? v : new Float32Array(d)));
/** past.{l}.key / value feeds of an empty cache (a prefill). */
const emptyPast = () => new KVCache(L, cfg.nHead, d / cfg.nHead, 1, 0).feeds();
const argmax = (a: Float32Array) => a.reduce((b, v, j) => (v > a[b] ? j : b), 0);
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/**
 * The reference without a cache: logits at the last position of the whole sequence, recomputed from
 * scratch with a static graph; the steering rule applied by a hook at positions steerFrom..steerTo-1.
 */
async function referenceLogits(params: ParamSet, seq: number[], site: GPT2Site, steer?: Float32Array[], steerFrom = seq.length - 1, steerTo = Infinity): Promise<Float32Array> {
  const g = new Graph('reference');
  const w = gpt2ParamInitializers(g, cfg, params);
  const T = seq.length;
  const ids = g.input('ids', [1, T], 'int64');
  const mask = g.constant(Array.from({ length: T }, (_, t) => (t >= steerFrom && t < steerTo ? 1 : 0)), [T, 1], 'bool');
  const hook = (l: number, s: GPT2Site, x: Tensor) => (steer && s === site ? ops.where(mask, ops.add(x, g.constant(steer[l], [d])), x) : x);
  g.output(gpt2Head(cfg, w, gpt2Trunk(cfg, w, ids, ops.range(g, T), { hook }).h), 'logits'); // (1, T, V)
  const r = await Runner.fromGraph(g, RUNNER);
  const out = (await r.run({ ids: { data: BigInt64Array.from(seq, BigInt), dims: [1, T] } })).logits.data as Float32Array;
  await r.release();
  return out.subarray((T - 1) * V);
}

/** Greedy generation by recomputing the whole sequence at every step (no cache); steerAt as GenerateOptions'. */
async function referenceGenerate(params: ParamSet, prompt: number[], maxNew: number, eos: number, site: GPT2Site = 'ln2', steer?: Float32Array[], steerAt: SteerAt = 'all') {
  const seq = [...prompt];
  const tokens: number[] = [];
  while (tokens.length < maxNew && seq.length <= cfg.nPositions) {
    const tok = argmax(await referenceLogits(params, seq, site, steer, prompt.length - 1, steerAt === 'prompt' ? prompt.length : Infinity));
    if (tok === eos) return { tokens, eos: true };
    tokens.push(tok);
    seq.push(tok);
  }
  return { tokens, eos: false };
}

const params = randomModel(5);
const inf = {} as Record<GPT2Site, GPT2Inference>;

beforeAll(async () => {
  for (const site of GPT2_SITES) inf[site] = await GPT2Inference.create(cfg, params, { site, runner: RUNNER, batchSize: 4 });
});
afterAll(async () => {
  for (const site of GPT2_SITES) await inf[site]?.release();
});

describe('GPT2Inference', () => {
  it('exposes its site names in layer order', () => {
    expect(inf.ln2.site).toBe('ln2');
    expect(inf.ln2.siteNames).toEqual(['blocks.0.ln2', 'blocks.1.ln2', 'blocks.2.ln2']);
    expect(inf.resid_pre.siteNames[2]).toBe('blocks.2.resid_pre');
  });

  it('prefill logits and site vectors equal the training forward at the last position', async () => {
    const rng = new Rng(1);
    const B = 3;
    const T = 7;
    const prompts = Array.from({ length: B }, () => randomPrompt(rng, T));
    // Training graph (static shapes, parameters as inputs) with every site's activation as an output.
    const g = new Graph('train_forward');
    const w = gpt2ParamInputs(g, cfg);
    const ids = g.input('ids', [B, T], 'int64');
    g.output(gpt2Forward(cfg, w, ids), 'logits'); // (B, T, V)
    gpt2Trunk(cfg, w, ids, ops.range(g, T), { hook: (l, s, x) => (g.output(x, siteName(l, s)), x) });
    const r = await Runner.fromGraph(g, RUNNER);
    const ref = await r.run({ ...paramFeeds(params), ids: { data: BigInt64Array.from(prompts.flat(), BigInt), dims: [B, T] } });
    await r.release();
    const refLogits = ref.logits.data as Float32Array;

    const gen = await inf.ln2.generate(prompts, { maxNewTokens: 0, eosId: 0 });
    expect(gen.tokens).toEqual([[], [], []]);
    for (let b = 0; b < B; b++) {
      const last = refLogits.subarray((b * T + T - 1) * V, (b * T + T) * V);
      expect(maxAbsDiff(gen.firstLogits.subarray(b * V, (b + 1) * V), last)).toBeLessThan(1e-4);
      for (const site of GPT2_SITES) {
        const f = await inf[site].forward(prompts[b]);
        expect(maxAbsDiff(f.logits, last)).toBeLessThan(1e-4);
        for (let l = 0; l < L; l++) {
          const refSite = (ref[siteName(l, site)].data as Float32Array).subarray((b * T + T - 1) * d, (b * T + T) * d);
          expect(maxAbsDiff(f.hidden[l], refSite)).toBeLessThan(1e-4);
          if (site === 'ln2') expect(maxAbsDiff(gen.hidden.subarray((b * L + l) * d, (b * L + l + 1) * d), refSite)).toBeLessThan(1e-4);
        }
      }
    }
  });

  it('generation with the K/V cache gives the tokens of full recomputation at every step', async () => {
    const rng = new Rng(2);
    const prompts = [randomPrompt(rng, 3), randomPrompt(rng, 5), randomPrompt(rng, 18)]; // the last reaches n_positions
    const res = await inf.ln2.generate(prompts, { maxNewTokens: 8, eosId: -1 });
    for (let i = 0; i < prompts.length; i++) {
      const ref = await referenceGenerate(params, prompts[i], 8, -1);
      expect(res.tokens[i]).toEqual(ref.tokens);
    }
    expect(res.tokens.map((t) => t.length)).toEqual([8, 8, cfg.nPositions - 18 + 1]);
    expect(new Set(res.tokens.flat()).size).toBeGreaterThan(3); // a model that does more than repeat itself
  });

  it('batched generation with mixed prompt lengths equals one-by-one generation, eos included', async () => {
    const rng = new Rng(3);
    const prompts = Array.from({ length: 11 }, () => randomPrompt(rng, rng.int(2, 6)));
    const free = await inf.ln2.generate(prompts, { maxNewTokens: 6, eosId: -1 });
    const eosId = free.tokens[0][2]; // a token that some sequences do produce, so some stop early
    const batched = await inf.ln2.generate(prompts, { maxNewTokens: 6, eosId });
    expect(batched.stoppedAtEos.some((s) => s)).toBe(true);
    expect(batched.stoppedAtEos.some((s) => !s)).toBe(true);
    for (let i = 0; i < prompts.length; i++) {
      const one = await inf.ln2.generate([prompts[i]], { maxNewTokens: 6, eosId });
      expect(batched.tokens[i]).toEqual(one.tokens[0]);
      expect(batched.stoppedAtEos[i]).toBe(one.stoppedAtEos[0]);
      expect(batched.tokens[i]).not.toContain(eosId);
      expect(maxAbsDiff(batched.hidden.subarray(i * L * d, (i + 1) * L * d), one.hidden)).toBeLessThan(1e-5);
      expect(maxAbsDiff(batched.firstLogits.subarray(i * V, (i + 1) * V), one.firstLogits)).toBeLessThan(1e-5);
    }
  });

  it('refuses bad prompts and bad steering vectors', async () => {
    await expect(inf.ln2.generate([[1, 2], []], { maxNewTokens: 1, eosId: 0 })).rejects.toThrow(/prompt 1 is empty/);
    await expect(inf.ln2.generate([[1, V]], { maxNewTokens: 1, eosId: 0 })).rejects.toThrow(/token 29 is not an id/);
    await expect(inf.ln2.forward(new Array(cfg.nPositions + 1).fill(1))).rejects.toThrow(/more than n_positions 20/);
    await expect(inf.ln2.forward([1], [new Float32Array(d)])).rejects.toThrow(/steer has 1 vectors; the model has 3 layers/);
    await expect(inf.ln2.forward([1], steerAt(1, new Float32Array(d + 1)))).rejects.toThrow(/steer\[1\] \(blocks.1.ln2\) must be a Float32Array of length 32/);
  });
});

describe('steering: h_site[last] += steer_i', () => {
  const rng = new Rng(4);
  const prompts = Array.from({ length: 6 }, () => randomPrompt(rng, 5));

  for (const site of GPT2_SITES) {
    it(`at ${site}: layers below are unchanged, layer i moves by exactly the vector, layers above move`, async () => {
      const m = inf[site];
      const v = randomVec(new Rng(30 + GPT2_SITES.indexOf(site)), 1);
      const i = 1;
      const base = await m.forward(prompts[0]);
      const steered = await m.forward(prompts[0], steerAt(i, v));
      expect(steered.hidden[0]).toEqual(base.hidden[0]);
      const moved = Float32Array.from(steered.hidden[i], (x, j) => x - base.hidden[i][j]);
      expect(maxAbsDiff(moved, v)).toBeLessThan(1e-5);
      expect(maxAbsDiff(steered.hidden[2], base.hidden[2])).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(steered.logits, base.logits)).toBeGreaterThan(1e-3);
    });
  }

  it('zero steering equals no steering', async () => {
    const zeros = Array.from({ length: L }, () => new Float32Array(d));
    const a = await inf.ln2.generate(prompts, { maxNewTokens: 5, eosId: -1 });
    const b = await inf.ln2.generate(prompts, { maxNewTokens: 5, eosId: -1, steer: zeros });
    expect(b.tokens).toEqual(a.tokens);
    expect(b.hidden).toEqual(a.hidden);
    expect(b.firstLogits).toEqual(a.firstLogits);
  });

  it('changes only the last prompt position in prefill: earlier keys and values are untouched', async () => {
    const r = await Runner.fromGraph(buildInferenceGraph(cfg, params, 'resid_pre'), RUNNER);
    const T = prompts[0].length;
    const ids = { data: BigInt64Array.from(prompts[0], BigInt), dims: [1, T] };
    const zeroFeeds = { ...emptyPast(), ...Object.fromEntries(Array.from({ length: L }, (_, l) => [`steer.${l}`, { data: new Float32Array(d), dims: [d] }])) };
    const a = await r.run({ input_ids: ids, ...zeroFeeds });
    const b = await r.run({ input_ids: ids, ...zeroFeeds, 'steer.0': { data: randomVec(new Rng(33), 1), dims: [d] } });
    await r.release();
    const hd = d / cfg.nHead;
    for (let l = 0; l < L; l++) {
      for (const kind of ['key', 'value']) {
        const ka = a[`new.${l}.${kind}`].data as Float32Array;
        const kb = b[`new.${l}.${kind}`].data as Float32Array;
        expect(a[`new.${l}.${kind}`].dims).toEqual([T, 1, cfg.nHead, hd]); // position-major
        const upToLast = (T - 1) * d;
        expect(kb.subarray(0, upToLast)).toEqual(ka.subarray(0, upToLast));
        expect(maxAbsDiff(ka.subarray(upToLast), kb.subarray(upToLast))).toBeGreaterThan(1e-4);
      }
    }
  });

  for (const site of ['ln2', 'resid_post'] as const) {
    it(`at ${site}, steered cached generation equals recomputation steered at the last prompt and every generated position`, async () => {
      const r = new Rng(40);
      const steer = Array.from({ length: L }, () => randomVec(r, 3));
      const res = await inf[site].generate(prompts.slice(0, 2), { maxNewTokens: 5, eosId: -1, steer });
      const plain = await inf[site].generate(prompts.slice(0, 2), { maxNewTokens: 5, eosId: -1 });
      const ref = await referenceGenerate(params, prompts[0], 5, -1, site, steer);
      // The vectors change what comes after the first token, so the decode steps' steering is checked too.
      expect(res.tokens[0].slice(1)).not.toEqual(plain.tokens[0].slice(1));
      expect(res.tokens[0]).toEqual(ref.tokens);
    });
  }

  for (const site of ['ln2', 'resid_post'] as const) {
    it(`at ${site}, steerAt 'prompt' equals recomputation steered at the last prompt position alone`, async () => {
      const r = new Rng(42);
      const steer = Array.from({ length: L }, () => randomVec(r, 3));
      const all = await inf[site].generate(prompts.slice(0, 2), { maxNewTokens: 5, eosId: -1, steer });
      const res = await inf[site].generate(prompts.slice(0, 2), { maxNewTokens: 5, eosId: -1, steer, steerAt: 'prompt' });
      const ref = await referenceGenerate(params, prompts[0], 5, -1, site, steer, 'prompt');
      expect(res.tokens[0]).toEqual(ref.tokens);
      // The prefill is steered alike (first token, site vectors, first logits); the decode steps differ.
      expect(res.tokens[0][0]).toBe(all.tokens[0][0]);
      expect(res.hidden).toEqual(all.hidden);
      expect(res.firstLogits).toEqual(all.firstLogits);
      expect(res.tokens[0]).not.toEqual(all.tokens[0]);
    });
  }

  it('large steering changes the generated tokens', async () => {
    const r = new Rng(41);
    const steer = Array.from({ length: L }, () => randomVec(r, 20));
    const a = await inf.ln2.generate(prompts, { maxNewTokens: 5, eosId: -1 });
    const b = await inf.ln2.generate(prompts, { maxNewTokens: 5, eosId: -1, steer });
    expect(b.tokens).not.toEqual(a.tokens);
  });

  it('a missing steer feed is refused by the Runner, not defaulted', async () => {
    const r = await Runner.fromGraph(buildInferenceGraph(cfg, params, 'ln2'), RUNNER);
    const feeds = { input_ids: { data: BigInt64Array.of(1n, 2n), dims: [1, 2] }, ...emptyPast() };
    await expect(r.run(feeds)).rejects.toThrow(/missing feed 'steer.0' \(float32\[32\]\)/);
    await r.release();
  });
});

/** Beam search (Hugging Face's: length_penalty 1, early_stopping false) by recomputing every hypothesis from scratch. */
async function referenceBeams(params: ParamSet, prompt: number[], maxNew: number, eos: number, K: number, steer?: Float32Array[]) {
  let live = [{ tokens: [] as number[], logp: 0 }];
  let finished: { tokens: number[]; score: number; order: number }[] = [];
  let order = 0;
  const finish = (tokens: number[], score: number) => {
    finished.push({ tokens, score, order: order++ });
    finished = finished.sort((a, b) => b.score - a.score || a.order - b.order).slice(0, K);
  };
  for (let generated = 1; ; generated++) {
    const cands: { tokens: number[]; tok: number; logp: number; row: number }[] = [];
    for (const [row, h] of live.entries()) {
      const z = await referenceLogits(params, [...prompt, ...h.tokens], 'resid_pre', steer, prompt.length - 1);
      const max = Math.max(...z);
      const lse = max + Math.log(z.reduce((a, v) => a + Math.exp(v - max), 0));
      z.forEach((v, tok) => cands.push({ tokens: h.tokens, tok, logp: h.logp + (v - lse), row }));
    }
    cands.sort((a, b) => b.logp - a.logp || a.row - b.row || a.tok - b.tok);
    const next: typeof live = [];
    cands.slice(0, 2 * K).forEach((c, rank) => {
      if (c.tok === eos) {
        if (rank < K) finish(c.tokens, c.logp / (c.tokens.length + 1));
      } else if (next.length < K) next.push({ tokens: [...c.tokens, c.tok], logp: c.logp });
    });
    const atLimit = generated >= maxNew || prompt.length + generated > cfg.nPositions;
    if (atLimit) for (const h of next) finish(h.tokens, h.logp / h.tokens.length);
    if (atLimit || (finished.length >= K && finished[K - 1].score >= next[0].logp / generated)) return finished[0].tokens;
    live = next;
  }
}

describe('beam search', () => {
  it('equals beam search by full recomputation, for mixed prompt lengths and with steering; beams 1 is greedy', async () => {
    const m = await GPT2Inference.create(cfg, params, { site: 'resid_pre', runner: RUNNER, batchSize: 3 });
    try {
      const rng = new Rng(21);
      const prompts = [3, 5, 3, 4, 5].map((n) => randomPrompt(rng, n));
      const steer = steerAt(1, randomVec(rng, 2));
      let differs = false;
      for (const s of [undefined, steer]) {
        const greedy = await m.generate(prompts, { maxNewTokens: 6, eosId: 2, steer: s });
        expect(await m.generate(prompts, { maxNewTokens: 6, eosId: 2, steer: s, beams: 1 })).toEqual(greedy);
        const beam = await m.generate(prompts, { maxNewTokens: 6, eosId: 2, steer: s, beams: 3 });
        expect(beam.firstLogits).toEqual(greedy.firstLogits);
        for (const [i, p] of prompts.entries()) expect(beam.tokens[i]).toEqual(await referenceBeams(params, p, 6, 2, 3, s));
        differs ||= beam.tokens.some((t, i) => JSON.stringify(t) !== JSON.stringify(greedy.tokens[i]));
      }
      expect(differs).toBe(true); // the test sees beam search choose otherwise than greedy
      await expect(m.generate(prompts, { maxNewTokens: 2, eosId: 2, beams: 0 })).rejects.toThrow(/beams must be a positive integer/);
    } finally {
      await m.release();
    }
  });
});

describe('inference ops (engine/graph/ops/extra.ts)', () => {
  it('causalMaskAny with symbolic dims equals causalMask; takeLast picks the last row', async () => {
    for (const [tq, tk] of [[3, 3], [2, 5]]) {
      const g = new Graph('mask');
      const x = g.input('x', ['q', 'k']);
      g.output(causalMaskAny(x), 'masked');
      g.output(takeLast(x, 0), 'last');
      const st = new Graph('mask_static');
      st.output(ops.causalMask(st.input('x', [tq, tk])), 'masked');
      const [a, b] = [await Runner.fromGraph(g, RUNNER), await Runner.fromGraph(st, RUNNER)];
      const feed = { x: { data: Float32Array.from({ length: tq * tk }, (_, i) => i + 1), dims: [tq, tk] } };
      const [ra, rb] = [await a.run(feed), await b.run(feed)];
      await a.release();
      await b.release();
      expect(ra.masked.data).toEqual(rb.masked.data);
      expect(Array.from(ra.last.data as Float32Array)).toEqual(Array.from({ length: tk }, (_, j) => (tq - 1) * tk + j + 1));
    }
  });
});

describe('greedy choice', () => {
  it('breaks ties toward the lowest id', async () => {
    // All weights 0 (LayerNorm gains 1): every logit is 0, so each step is a V-way tie.
    const zero: ParamSet = new Map([...params].map(([k, v]) => [k, { shape: v.shape, data: new Float32Array(v.data.length).fill(/\.ln_\w+\.weight$/.test(k) ? 1 : 0) }]));
    const m = await GPT2Inference.create(cfg, zero, { runner: RUNNER });
    const res = await m.generate([[3, 4]], { maxNewTokens: 3, eosId: -1 });
    await m.release();
    expect(res.firstLogits.every((x) => x === 0)).toBe(true);
    expect(res.tokens).toEqual([[0, 0, 0]]);
  });
});

describe('hook names', () => {
  it('round-trip for every layer and site', () => {
    for (const site of GPT2_SITES) for (const layer of [0, 7, 23]) expect(parseSiteName(siteName(layer, site))).toEqual({ layer, site });
    expect(siteName(7, 'ln2')).toBe('blocks.7.ln2');
  });

  it('errors name the valid forms', () => {
    const forms = /valid names are blocks\.\{layer\}\.\{site\} with site one of resid_pre, ln2, resid_post/;
    expect(() => parseSiteName('blocks.7.hook_resid_post')).toThrow(/unknown site 'hook_resid_post'/);
    expect(() => parseSiteName('blocks.7.ln_2')).toThrow(forms);
    expect(() => parseSiteName('layers.7.ln2')).toThrow(forms);
    expect(() => parseSiteName('blocks.x.ln2')).toThrow(forms);
    expect(() => parseSiteName('blocks.07.ln2')).toThrow(/not a hook name/);
    expect(() => parseSiteName('blocks.3.ln2', 3)).toThrow(/layer 3 does not exist; the model has layers 0..2/);
    expect(() => siteName(-1, 'ln2')).toThrow(/non-negative integer/);
    expect(() => siteName(0, 'ln_2' as GPT2Site)).toThrow(/unknown hook site 'ln_2'; the sites are resid_pre, ln2, resid_post/);
  });
});

describe('Hugging Face config', () => {
  it('round-trips and carries the fields transformers needs', () => {
    const full = { ...GPT2_PRESETS.gpt2, vocabSize: 50257, nPositions: 1024 };
    const hf = toHFConfig(full, { bosTokenId: 50256, eosTokenId: 50256 });
    expect(hf).toMatchObject({
      model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12,
      n_inner: null, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0,
      tie_word_embeddings: true, bos_token_id: 50256, eos_token_id: 50256,
    });
    expect(fromHFConfig(JSON.parse(JSON.stringify(hf)))).toEqual(full);
    expect(GPT2_PRESETS['gpt2-medium']).toMatchObject({ nLayer: 24, nEmbd: 1024, nHead: 16 });
  });

  it('names missing and invalid fields', () => {
    const hf = toHFConfig(cfg, { bosTokenId: 0, eosTokenId: 1 });
    const without = (k: string) => Object.fromEntries(Object.entries(hf).filter(([key]) => key !== k));
    expect(() => fromHFConfig(without('n_embd'))).toThrow(/field 'n_embd' is missing/);
    expect(() => fromHFConfig({ ...hf, n_head: 2.5 })).toThrow(/'n_head' must be a positive integer, got 2.5/);
    expect(() => fromHFConfig({ ...hf, n_head: 5 })).toThrow(/nEmbd 32 is not divisible by nHead 5/);
    expect(() => fromHFConfig({ ...hf, model_type: 'llama' })).toThrow(/model_type is 'llama', expected 'gpt2'/);
    expect(() => fromHFConfig({ ...hf, activation_function: 'relu' })).toThrow(/activation_function 'relu' is not supported/);
    expect(() => fromHFConfig({ ...hf, layer_norm_epsilon: '1e-5' })).toThrow(/'layer_norm_epsilon' must be a positive number/);
    expect(() => fromHFConfig({ ...hf, n_inner: 100 })).toThrow(/'n_inner' 100 is not supported/);
    expect(() => fromHFConfig({ ...hf, tie_word_embeddings: false })).toThrow(/tie_word_embeddings/);
    expect(() => fromHFConfig([])).toThrow(/expected a JSON object/);
    expect(() => toHFConfig(cfg, { bosTokenId: 0, eosTokenId: V })).toThrow(/eosTokenId 29 is not a token id/);
  });
});
