/**
 * GPT-2 inference for a trained run: greedy batched generation with a K/V cache, the hook site's
 * vector at the last prompt token for every layer, and steering (method.md sections 4 and 6).
 *
 * One onnxruntime session per GPT2Inference, with the weights baked in as initializers (held once)
 * and symbolic dims. A prefill is the same graph with an empty cache (past = 0 positions), as in
 * llama-infer.ts, so one signature serves every batch size, prompt length and cache length:
 *   inputs   input_ids int64 [batch, seq], past.{i}.key / past.{i}.value [past, batch, H, hd],
 *            steer.{i} float32 [d]
 *   outputs  logits [batch, V] at the last position, blocks.{i}.{site} [batch, d] at the last position,
 *            new.{i}.key / new.{i}.value [seq, batch, H, hd]: the keys/values of the positions the
 *            call computed, which the host appends to its cache.
 *   positions of the call: past, past + 1, ..., past + seq - 1 (shared by the batch).
 * The cache is position-major so that appending is one copy and feeding the past is a view of a
 * preallocated buffer (kv-cache.ts, shared with LLaMA).
 * The blocks are gpt2.ts's, shared with training; the steering rule is the only addition:
 *
 *   h_site[last] += steer_i      for every layer i, at the site chosen for this object (hooks.ts),
 *                                at the last position of each call: the last prompt position in prefill
 *                                and every generated position; every other position is unchanged.
 *                                steer.{i} is a required input (zeros = no steering), so a forgotten
 *                                feed is refused, never defaulted. steerAt 'prompt' feeds zeros to
 *                                the generated positions: the last prompt position alone is shifted.
 * The site vectors returned are taken after steering. Steering at ln2 shifts only that block's MLP
 * input; at resid_pre / resid_post it shifts the residual stream, so later blocks see it too.
 *
 * Decoding is greedy by default: the next token is argmax of the logits, ties to the lowest id
 * (sampling is not implemented). Prompts are grouped by length, then cut into batches of `batchSize`;
 * a sequence stops at eosId (not returned), after maxNewTokens, or when its next token would need a
 * position past n_positions. Finished sequences are dropped from the batch (and its cache) as they finish.
 *
 * Beam search (`beams` K > 1, the reference evaluates with 5), as Hugging Face's with length_penalty 1
 * and early_stopping false: each prompt keeps its K best live hypotheses by summed log-probability;
 * every step ranks the extensions of all of them by every token and takes the best 2K: one ending
 * in eosId among the first K is a finished hypothesis, scored sum log p / (its token count, eos
 * included), and kept when it is among the K best finished; the first K others live on. A prompt is
 * done when it holds K finished hypotheses and the worst of them scores at least the best live one's
 * sum log p / its length; at the length limit the live ones join the finished (same score). The
 * output is the best finished hypothesis (ties: the one found first). The K live rows of every prompt
 * share one batch; the cache follows them by gathering rows (KVCache.keepRows). Steering is as in
 * greedy decoding: every call's last position (or the prefill's alone, steerAt 'prompt'). hidden and firstLogits are the prefill's, as in greedy.
 */
import { Graph, ops } from '../graph';
import { arange, dimOf, takeLast } from '../graph/ops/extra';
import type { ParamSet } from '../io/params';
import { type HostTensor, Runner, type RunnerOptions } from '../runtime/runner';
import { checkGPT2Config, type GPT2Config, type KV, type SiteHook, gpt2Head, gpt2ParamInitializers, gpt2Trunk } from './gpt2';
import { DEFAULT_SITE, GPT2_SITES, type GPT2Site, type SteerAt, isGPT2Site, siteName } from './hooks';
import { logSoftmaxRow } from '../util/softmax';
import { KVCache, type SteerFeeds, argmaxRow, newName, pastName, steerFeedsAt } from './kv-cache';

export interface GenerateOptions {
  maxNewTokens: number;
  eosId: number;
  /** Per layer, length d; absent = zeros. */
  steer?: Float32Array[];
  /** Beam width (1, the default: greedy; see the header). */
  beams?: number;
  /** Where steer applies: 'all' (default, the paper's) or 'prompt' (the last prompt position only; see the header). */
  steerAt?: SteerAt;
}

export interface GenerateResult {
  /** Generated ids per prompt, without the eos. */
  tokens: number[][];
  stoppedAtEos: boolean[];
  /** [n, nLayer, d]: site vectors at the last prompt token, steered. */
  hidden: Float32Array;
  /** [n, V]: logits at the last prompt position. */
  firstLogits: Float32Array;
}

/** Symbolic dims of the inference graphs. */
const BATCH = 'batch';
const SEQ = 'seq';
const PAST = 'past';

export const steerInputName = (layer: number): string => `steer.${layer}`;

/** The inference graph with the steering hook at `site` (inputs and outputs as in the header). */
export function buildInferenceGraph(cfg: GPT2Config, params: ParamSet, site: GPT2Site): Graph {
  checkGPT2Config(cfg);
  const { nLayer: L, nEmbd: d, nHead: H } = cfg;
  const g = new Graph('gpt2');
  const w = gpt2ParamInitializers(g, cfg, params);
  const ids = g.input('input_ids', [BATCH, SEQ], 'int64');
  // The cache is position-major, [P, B, H, hd], so the host appends a position with one copy.
  const cached = (name: string) => ops.transpose(g.input(name, [PAST, BATCH, H, d / H]), [1, 2, 0, 3]); // (B, H, P, hd)
  const past: KV[] = Array.from({ length: L }, (_, i) => ({ key: cached(pastName(i, 'key')), value: cached(pastName(i, 'value')) }));
  const P = dimOf(g.inputs.find((t) => t.name === pastName(0, 'key'))!, 0);
  const positions = arange(ids, 1, P); // [T]: P .. P + T - 1
  const steer = Array.from({ length: L }, (_, i) => g.input(steerInputName(i), [d]));

  // The steering rule: only the call's last position (isLast, [T, 1]).
  const isLast = ops.unsqueeze(ops.equal(positions, ops.sub(ops.add(P, dimOf(ids, 1)), 1)), [1]);
  const hook: SiteHook = (layer, s, x) => {
    if (s !== site) return x;
    const y = ops.where(isLast, ops.add(x, steer[layer]), x); // (B, T, d)
    g.output(takeLast(y, 1), siteName(layer, site)); // (B, d)
    return y;
  };

  const { h, kv } = gpt2Trunk(cfg, w, ids, positions, { past, hook }); // (B, T, d)
  g.output(gpt2Head(cfg, w, takeLast(h, 1)), 'logits'); // (B, V)
  kv.forEach(({ key, value }, i) => {
    g.output(ops.transpose(key, [2, 0, 1, 3]), newName(i, 'key')); // (T, B, H, hd)
    g.output(ops.transpose(value, [2, 0, 1, 3]), newName(i, 'value'));
  });
  return g;
}

const int64 = (xs: readonly number[]): BigInt64Array => BigInt64Array.from(xs, (x) => BigInt(x));

export class GPT2Inference {
  /** Site names in layer order, e.g. ['blocks.0.ln2', 'blocks.1.ln2', ...]. */
  readonly siteNames: string[];
  /** The new.{l}.key / new.{l}.value outputs, in layer order. */
  private readonly newNames: string[];

  private constructor(
    readonly cfg: GPT2Config,
    readonly site: GPT2Site,
    private readonly runner: Runner,
    private readonly batchSize: number,
  ) {
    this.siteNames = Array.from({ length: cfg.nLayer }, (_, i) => siteName(i, site));
    this.newNames = Array.from({ length: cfg.nLayer }, (_, l) => [newName(l, 'key'), newName(l, 'value')]).flat();
  }

  static async create(
    cfg: GPT2Config,
    params: ParamSet,
    opts: { site?: GPT2Site; runner?: RunnerOptions; batchSize?: number } = {},
  ): Promise<GPT2Inference> {
    const site = opts.site ?? DEFAULT_SITE;
    if (!isGPT2Site(site)) throw new Error(`unknown hook site '${site}'; the sites are ${GPT2_SITES.join(', ')}`);
    const batchSize = opts.batchSize ?? 64;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
    return new GPT2Inference(cfg, site, await Runner.fromGraph(buildInferenceGraph(cfg, params, site), opts.runner), batchSize);
  }

  /** Greedy generation; batches internally (grouped by prompt length); results in input order. */
  async generate(prompts: readonly number[][], opts: GenerateOptions): Promise<GenerateResult> {
    const { nLayer: L, nEmbd: d, vocabSize: V } = this.cfg;
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) throw new Error(`maxNewTokens must be a non-negative integer, got ${opts.maxNewTokens}`);
    if (!Number.isInteger(opts.eosId)) throw new Error(`eosId must be an integer, got ${opts.eosId}`);
    const beams = opts.beams ?? 1;
    if (!Number.isInteger(beams) || beams < 1) throw new Error(`beams must be a positive integer, got ${opts.beams}`);
    prompts.forEach((p, i) => this.checkPrompt(p, `prompt ${i}`));
    const steer = steerFeedsAt((v) => this.steerFeeds(v), opts.steer, opts.steerAt);
    const n = prompts.length;
    const res: GenerateResult = {
      tokens: prompts.map(() => []),
      stoppedAtEos: new Array<boolean>(n).fill(false),
      hidden: new Float32Array(n * L * d),
      firstLogits: new Float32Array(n * V),
    };
    const byLength = new Map<number, number[]>();
    prompts.forEach((p, i) => byLength.set(p.length, [...(byLength.get(p.length) ?? []), i]));
    for (const group of byLength.values()) {
      for (let s = 0; s < group.length; s += this.batchSize) {
        const rows = group.slice(s, s + this.batchSize);
        if (beams === 1) await this.generateBatch(prompts, rows, opts, steer, res);
        else await this.beamBatch(prompts, rows, opts, beams, steer, res);
      }
    }
    return res;
  }

  /** One prompt, no generation: logits at its last position and the site vector of every layer. */
  async forward(prompt: readonly number[], steer?: Float32Array[]): Promise<{ logits: Float32Array; hidden: Float32Array[] }> {
    this.checkPrompt(prompt, 'prompt');
    const empty = new KVCache(this.cfg.nLayer, this.cfg.nHead, this.cfg.nEmbd / this.cfg.nHead, 1, 0);
    const out = await this.runner.run({ input_ids: { data: int64(prompt), dims: [1, prompt.length] }, ...empty.feeds(), ...this.steerFeeds(steer) }, ['logits', ...this.siteNames]);
    return { logits: out.logits.data as Float32Array, hidden: this.siteNames.map((s) => out[s].data as Float32Array) };
  }

  async release(): Promise<void> {
    await this.runner.release();
  }

  /** Prompts `rows` (all of one length T): prefill, then decode steps until every row has stopped. */
  private async generateBatch(
    prompts: readonly number[][],
    rows: readonly number[],
    opts: GenerateOptions,
    steer: SteerFeeds,
    res: GenerateResult,
  ): Promise<void> {
    const { vocabSize: V, nPositions } = this.cfg;
    const pre = await this.prefill(prompts, rows, opts.maxNewTokens, steer.prompt, res);
    if (opts.maxNewTokens === 0) return;
    const { T, cache } = pre;
    let logits = pre.logits; // [B, V]
    let live = [...rows]; // prompt index of each batch row
    for (let generated = 1; ; generated++) {
      // Take each live row's next token; keep the rows that go on.
      const keep: number[] = [];
      const next: number[] = [];
      live.forEach((i, r) => {
        const tok = argmaxRow(logits, r, V);
        if (tok === opts.eosId) {
          res.stoppedAtEos[i] = true;
          return;
        }
        res.tokens[i].push(tok);
        if (generated < opts.maxNewTokens && T + generated <= nPositions) {
          keep.push(r);
          next.push(tok);
        }
      });
      if (keep.length === 0) return;
      if (keep.length < live.length) {
        cache.keepRows(keep);
        live = keep.map((r) => live[r]);
      }
      const step = await this.runner.run({ input_ids: { data: int64(next), dims: [next.length, 1] }, ...cache.feeds(), ...steer.decode }, ['logits', ...this.newNames]);
      cache.append(step);
      logits = step.logits.data as Float32Array;
    }
  }

  /** Prefill of prompts `rows` (all of one length): hidden and firstLogits into res; the cache and logits. */
  private async prefill(prompts: readonly number[][], rows: readonly number[], maxNewTokens: number, steer: Record<string, HostTensor>, res: GenerateResult) {
    const { nLayer: L, nEmbd: d, vocabSize: V, nPositions } = this.cfg;
    const T = prompts[rows[0]].length;
    // Positions fed: the prompt's T, then each generated token but the last, up to n_positions.
    const cache = new KVCache(L, this.cfg.nHead, d / this.cfg.nHead, rows.length, maxNewTokens === 0 ? 0 : Math.min(T + maxNewTokens - 1, nPositions));
    const wanted = ['logits', ...this.siteNames, ...(maxNewTokens > 0 ? this.newNames : [])];
    const out = await this.runner.run({ input_ids: { data: int64(rows.flatMap((i) => prompts[i])), dims: [rows.length, T] }, ...cache.feeds(), ...steer }, wanted);
    rows.forEach((i, r) => {
      this.siteNames.forEach((s, l) => res.hidden.set((out[s].data as Float32Array).subarray(r * d, (r + 1) * d), (i * L + l) * d));
      res.firstLogits.set((out.logits.data as Float32Array).subarray(r * V, (r + 1) * V), i * V);
    });
    if (maxNewTokens > 0) cache.append(out);
    return { T, cache, logits: out.logits.data as Float32Array };
  }

  /** Beam search for prompts `rows` (all of one length T); see the header. */
  private async beamBatch(
    prompts: readonly number[][],
    rows: readonly number[],
    opts: GenerateOptions,
    K: number,
    steer: SteerFeeds,
    res: GenerateResult,
  ): Promise<void> {
    const { vocabSize: V, nPositions } = this.cfg;
    const pre = await this.prefill(prompts, rows, opts.maxNewTokens, steer.prompt, res);
    if (opts.maxNewTokens === 0) return;
    const { T, cache } = pre;
    let logits = pre.logits;
    interface Hyp { tokens: number[]; logp: number }
    let live: { prompt: number; hyp: Hyp }[] = rows.map((_, k) => ({ prompt: k, hyp: { tokens: [], logp: 0 } }));
    const finished: { tokens: number[]; score: number }[][] = rows.map(() => []);
    /** Adds a finished hypothesis when it is among the K best (the list stays sorted, best first; ties keep the earlier). */
    const finish = (k: number, tokens: number[], score: number) => {
      const f = finished[k];
      if (f.length >= K && score <= f[K - 1].score) return;
      let at = f.length;
      while (at > 0 && f[at - 1].score < score) at--;
      f.splice(at, 0, { tokens, score });
      if (f.length > K) f.pop();
    };
    const done = rows.map(() => false);
    for (let generated = 1; ; generated++) {
      const nextLive: { prompt: number; hyp: Hyp; row: number; tok: number }[] = [];
      for (let k = 0; k < rows.length; k++) {
        if (done[k]) continue;
        const cands: { hyp: Hyp; row: number; tok: number; logp: number }[] = [];
        live.forEach((b, r) => {
          if (b.prompt !== k) return;
          const ls = logSoftmaxRow(logits, r, V);
          for (let j = 0; j < V; j++) cands.push({ hyp: b.hyp, row: r, tok: j, logp: b.hyp.logp + ls[j] });
        });
        cands.sort((a, b) => b.logp - a.logp || a.row - b.row || a.tok - b.tok);
        const mine: typeof nextLive = [];
        for (const [rank, c] of cands.slice(0, 2 * K).entries()) {
          if (c.tok === opts.eosId) {
            if (rank < K) finish(k, c.hyp.tokens, c.logp / (c.hyp.tokens.length + 1));
          } else if (mine.length < K) mine.push({ prompt: k, hyp: { tokens: [...c.hyp.tokens, c.tok], logp: c.logp }, row: c.row, tok: c.tok });
        }
        const atLimit = generated >= opts.maxNewTokens || T + generated > nPositions;
        const f = finished[k];
        if (atLimit) for (const b of mine) finish(k, b.hyp.tokens, b.hyp.logp / b.hyp.tokens.length);
        if (atLimit || mine.length === 0 || (f.length >= K && f[K - 1].score >= mine[0].hyp.logp / generated)) {
          done[k] = true;
          const i = rows[k];
          res.tokens[i] = f[0].tokens;
          res.stoppedAtEos[i] = !(atLimit && mine.some((b) => b.hyp.tokens === f[0].tokens));
        } else nextLive.push(...mine);
      }
      if (nextLive.length === 0) return;
      cache.keepRows(nextLive.map((b) => b.row));
      live = nextLive.map((b) => ({ prompt: b.prompt, hyp: b.hyp }));
      const step = await this.runner.run({ input_ids: { data: int64(nextLive.map((b) => b.tok)), dims: [nextLive.length, 1] }, ...cache.feeds(), ...steer.decode }, ['logits', ...this.newNames]);
      cache.append(step);
      logits = step.logits.data as Float32Array;
    }
  }

  private checkPrompt(p: readonly number[], what: string): void {
    const { vocabSize: V, nPositions } = this.cfg;
    if (p.length === 0) throw new Error(`${what} is empty`);
    if (p.length > nPositions) throw new Error(`${what} has ${p.length} tokens, more than n_positions ${nPositions}`);
    const bad = p.find((t) => !Number.isInteger(t) || t < 0 || t >= V);
    if (bad !== undefined) throw new Error(`${what}: token ${bad} is not an id of the vocabulary (0..${V - 1})`);
  }

  /** steer.{i} feeds: the given vectors, or zeros. */
  private steerFeeds(steer: Float32Array[] | undefined): Record<string, HostTensor> {
    const { nLayer: L, nEmbd: d } = this.cfg;
    if (steer && steer.length !== L) throw new Error(`steer has ${steer.length} vectors; the model has ${L} layers (give one per layer, zeros where unused)`);
    const zeros = new Float32Array(d);
    const feeds: Record<string, HostTensor> = {};
    for (let l = 0; l < L; l++) {
      const v = steer?.[l] ?? zeros;
      if (!(v instanceof Float32Array) || v.length !== d) throw new Error(`steer[${l}] (${this.siteNames[l]}) must be a Float32Array of length ${d}`);
      feeds[steerInputName(l)] = { data: v, dims: [d] };
    }
    return feeds;
  }
}
