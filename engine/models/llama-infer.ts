/**
 * LLaMA inference: greedy batched generation with a K/V cache, the hook sites' vectors at the last
 * prompt token for every layer, and steering (method.md sections 4 and 6), with an optional LoRA
 * adapter baked in beside the frozen base (lora.ts).
 *
 * One onnxruntime session per LlamaInference (the weights are held once): a prefill is the same
 * graph with an empty cache (past = 0 positions), so one signature serves both:
 *   inputs   input_ids int64 [batch, seq], past.{i}.key / past.{i}.value [past, batch, KVH, hd]
 *            (position-major, keys after rope), steer.{i} float32 [width of the steered site]
 *   outputs  logits [batch, V] at the last position; layers.{i}.{site} [batch, width] at the last
 *            position for every read site; new.{i}.key / new.{i}.value [seq, batch, KVH, hd]: the
 *            keys/values of the positions this call computed, which the host appends to its cache.
 *   positions of the call: past, past + 1, ..., past + seq - 1 (the rope angles and the causal mask
 *            follow from them).
 * The layers are llama.ts's, shared with training; the steering rule is the only addition:
 *
 *   h_site[last] += steer_i     for every layer i at the steered site (hooks.ts), at the last
 *                               position of each call: the last prompt position in prefill and every
 *                               generated position; other positions unchanged. steer.{i} is a
 *                               required input (zeros = no steering), so a forgotten feed is refused.
 *                               steerAt 'prompt' feeds zeros to the generated positions.
 * Site vectors are returned after steering. Decoding is greedy (argmax, ties to the lowest id);
 * prompts are grouped by length and cut into batches; a sequence stops at any of eosIds (not
 * returned), after maxNewTokens, or when its next position would pass max_position_embeddings.
 */
import { Graph, ops } from '../graph';
import { arange, dimOf, takeLast } from '../graph/ops/extra';
import { runnerForGraph } from '../io/onnx-external';
import type { ParamSet } from '../io/params';
import type { HostTensor, Runner, RunnerOptions } from '../runtime/runner';
import { DEFAULT_LLAMA_SITE, type LlamaSite, type SteerAt, isLlamaSite, llamaSiteName } from './hooks';
import { type LlamaConfig, type LlamaKV, type LlamaSiteHook, checkLlamaConfig, llamaHead, llamaParamInitializers, llamaSiteWidth, llamaTrunk } from './llama';
import { KVCache, type SteerFeeds, argmaxRow, newName, pastName, steerFeedsAt } from './kv-cache';
import { type LoraConfig, loraGraphTensors, loraTargets } from './lora';

export interface LlamaInferenceOptions {
  /** The steered site (also read); default resid_post, the paper's LLaMA site. */
  site?: LlamaSite;
  /** Further sites to read (e.g. q_proj.base and q_proj.lora for projection attribution). */
  readSites?: LlamaSite[];
  adapter?: { config: LoraConfig; params: ParamSet };
  runner?: RunnerOptions;
  /** Weights through ONNX external-data files: 'auto' (default) above 1 GiB of float32, needed past 2 GB. */
  externalData?: boolean | 'auto';
  batchSize?: number;
}

export interface LlamaGenerateOptions {
  maxNewTokens: number;
  /** Generation stops at any of these ids (default: the config's eos_token_id). */
  eosIds?: number[];
  /** One stop id, as GPT-2's GenerateOptions has it (added to eosIds). */
  eosId?: number;
  /** Per layer, the steered site's width; absent = zeros. */
  steer?: Float32Array[];
  /** Beam search is GPT-2's only (gpt2-infer.ts): anything but 1 is refused. */
  beams?: number;
  /** Where steer applies: 'all' (default, the paper's) or 'prompt' (the last prompt position only). */
  steerAt?: SteerAt;
}

export interface LlamaGenerateResult {
  tokens: number[][];
  stoppedAtEos: boolean[];
  /** [n, L, width]: the steered site's vectors at the last prompt token (steered). */
  hidden: Float32Array;
  /** Every read site: site -> [n, L, width]. */
  sites: Map<LlamaSite, Float32Array>;
  /** [n, V]: logits at the last prompt position. */
  firstLogits: Float32Array;
}

const BATCH = 'batch';
const SEQ = 'seq';
const PAST = 'past';
export const llamaSteerInputName = (layer: number): string => `steer.${layer}`;

/** The inference graph (inputs and outputs as in the header). */
export function buildLlamaInferenceGraph(
  cfg: LlamaConfig,
  params: ParamSet,
  opts: { site?: LlamaSite; readSites?: LlamaSite[]; adapter?: { config: LoraConfig; params: ParamSet } } = {},
): Graph {
  checkLlamaConfig(cfg);
  const site = opts.site ?? DEFAULT_LLAMA_SITE;
  const read = [...new Set([site, ...(opts.readSites ?? [])])];
  for (const s of read) {
    if (!isLlamaSite(s)) throw new Error(`unknown LLaMA hook site '${s}'`);
    if (s.endsWith('.lora')) {
      const proj = s.split('.')[0];
      if (!opts.adapter || !opts.adapter.config.targetModules.includes(proj as never)) throw new Error(`site ${s} needs a LoRA adapter on ${proj}; the adapter targets ${opts.adapter?.config.targetModules.join(', ') ?? 'nothing (none loaded)'}`);
      if (opts.adapter.config.layers) throw new Error(`site ${s}: the adapter covers only layers ${opts.adapter.config.layers.join(', ')}; per-layer lora sites need every layer adapted`);
    }
  }
  const { numLayers: L, numKVHeads: KVH, headDim: hd } = cfg;
  const g = new Graph('llama');
  const w = llamaParamInitializers(g, cfg, params);
  const adapters = opts.adapter ? loraGraphTensors(g, cfg, opts.adapter.config, 'initializers', opts.adapter.params) : undefined;
  const ids = g.input('input_ids', [BATCH, SEQ], 'int64');
  const cached = (name: string) => ops.transpose(g.input(name, [PAST, BATCH, KVH, hd]), [1, 2, 0, 3]); // (B, KVH, P, hd)
  const past: LlamaKV[] = Array.from({ length: L }, (_, i) => ({ key: cached(pastName(i, 'key')), value: cached(pastName(i, 'value')) }));
  const P = dimOf(g.inputs.find((t) => t.name === pastName(0, 'key'))!, 0);
  const positions = arange(ids, 1, P); // [T]: P .. P + T - 1
  const width = llamaSiteWidth(cfg, site);
  const steer = Array.from({ length: L }, (_, i) => g.input(llamaSteerInputName(i), [width]));
  const isLast = ops.unsqueeze(ops.equal(positions, ops.sub(ops.add(P, dimOf(ids, 1)), 1)), [1]); // [T, 1]
  const hook: LlamaSiteHook = (layer, s, x) => {
    if (!read.includes(s)) return x;
    const y = s === site ? ops.where(isLast, ops.add(x, steer[layer]), x) : x;
    g.output(takeLast(y, 1), llamaSiteName(layer, s)); // (B, width)
    return y;
  };
  const { h, kv } = llamaTrunk(cfg, w, ids, positions, { adapters, past, hook });
  g.output(llamaHead(cfg, w, takeLast(h, 1)), 'logits'); // (B, V)
  kv.forEach(({ key, value }, i) => {
    g.output(ops.transpose(key, [2, 0, 1, 3]), newName(i, 'key')); // (T, B, KVH, hd)
    g.output(ops.transpose(value, [2, 0, 1, 3]), newName(i, 'value'));
  });
  return g;
}

const int64 = (xs: readonly number[]): BigInt64Array => BigInt64Array.from(xs, (x) => BigInt(x));

export class LlamaInference {
  readonly site: LlamaSite;
  /** Every read site (the steered one first). */
  readonly readSites: LlamaSite[];
  private readonly newNames: string[];

  private constructor(
    readonly cfg: LlamaConfig,
    private readonly runner: Runner,
    site: LlamaSite,
    readSites: LlamaSite[],
    private readonly batchSize: number,
  ) {
    this.site = site;
    this.readSites = readSites;
    this.newNames = Array.from({ length: cfg.numLayers }, (_, l) => [newName(l, 'key'), newName(l, 'value')]).flat();
  }

  static async create(cfg: LlamaConfig, params: ParamSet, opts: LlamaInferenceOptions = {}): Promise<LlamaInference> {
    const site = opts.site ?? DEFAULT_LLAMA_SITE;
    const readSites = [...new Set([site, ...(opts.readSites ?? [])])];
    const batchSize = opts.batchSize ?? 16;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
    if (opts.adapter) loraTargets(cfg, opts.adapter.config); // validates the adapter against the model
    const g = buildLlamaInferenceGraph(cfg, params, { site, readSites, adapter: opts.adapter });
    return new LlamaInference(cfg, await runnerForGraph(g, { ...opts.runner, externalData: opts.externalData }), site, readSites, batchSize);
  }

  siteNames(site: LlamaSite = this.site): string[] {
    return Array.from({ length: this.cfg.numLayers }, (_, i) => llamaSiteName(i, site));
  }

  /** One prompt, no generation: logits at its last position and every read site's vectors, by site name. */
  async forward(prompt: readonly number[], steer?: Float32Array[]): Promise<{ logits: Float32Array; sites: Record<string, Float32Array> }> {
    this.checkPrompt(prompt, 'prompt');
    const names = this.readSites.flatMap((s) => this.siteNames(s));
    const out = await this.runner.run({ input_ids: { data: int64(prompt), dims: [1, prompt.length] }, ...new KVCache(this.cfg.numLayers, this.cfg.numKVHeads, this.cfg.headDim, 1, 0).feeds(), ...this.steerFeeds(steer) }, ['logits', ...names]);
    const sites: Record<string, Float32Array> = {};
    for (const n of names) sites[n] = out[n].data as Float32Array;
    return { logits: out.logits.data as Float32Array, sites };
  }

  async generate(prompts: readonly number[][], opts: LlamaGenerateOptions): Promise<LlamaGenerateResult> {
    const { numLayers: L, vocabSize: V } = this.cfg;
    if ((opts.beams ?? 1) !== 1) throw new Error(`beam search (beams ${opts.beams}) is implemented for GPT-2 runs only; LLaMA generation is greedy`);
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) throw new Error(`maxNewTokens must be a non-negative integer, got ${opts.maxNewTokens}`);
    const eos = [...(opts.eosIds ?? (opts.eosId === undefined ? this.cfg.eosTokenIds : []))];
    if (opts.eosId !== undefined) {
      if (!Number.isInteger(opts.eosId)) throw new Error(`eosId must be an integer, got ${opts.eosId}`);
      eos.push(opts.eosId);
    }
    prompts.forEach((p, i) => this.checkPrompt(p, `prompt ${i}`));
    const steer = steerFeedsAt((v) => this.steerFeeds(v), opts.steer, opts.steerAt);
    const n = prompts.length;
    const sites = new Map(this.readSites.map((s) => [s, new Float32Array(n * L * llamaSiteWidth(this.cfg, s))]));
    const res: LlamaGenerateResult = {
      tokens: prompts.map(() => []),
      stoppedAtEos: new Array<boolean>(n).fill(false),
      hidden: sites.get(this.site)!,
      sites,
      firstLogits: new Float32Array(n * V),
    };
    const byLength = new Map<number, number[]>();
    prompts.forEach((p, i) => byLength.set(p.length, [...(byLength.get(p.length) ?? []), i]));
    for (const group of byLength.values()) {
      for (let s = 0; s < group.length; s += this.batchSize) await this.generateBatch(prompts, group.slice(s, s + this.batchSize), opts.maxNewTokens, eos, steer, res);
    }
    return res;
  }

  async release(): Promise<void> {
    await this.runner.release();
  }

  private async generateBatch(prompts: readonly number[][], rows: readonly number[], maxNew: number, eos: readonly number[], steer: SteerFeeds, res: LlamaGenerateResult): Promise<void> {
    const { numLayers: L, vocabSize: V, maxPositions, numKVHeads, headDim } = this.cfg;
    const T = prompts[rows[0]].length;
    const cache = new KVCache(L, numKVHeads, headDim, rows.length, Math.min(T + Math.max(maxNew - 1, 0), maxPositions));
    const names = this.readSites.map((s) => this.siteNames(s));
    const out = await this.runner.run(
      { input_ids: { data: int64(rows.flatMap((i) => prompts[i])), dims: [rows.length, T] }, ...cache.feeds(), ...steer.prompt },
      ['logits', ...names.flat(), ...(maxNew > 0 ? this.newNames : [])],
    );
    rows.forEach((i, r) => {
      this.readSites.forEach((s, k) => {
        const wd = llamaSiteWidth(this.cfg, s);
        const dst = res.sites.get(s)!;
        names[k].forEach((nm, l) => dst.set((out[nm].data as Float32Array).subarray(r * wd, (r + 1) * wd), (i * L + l) * wd));
      });
      res.firstLogits.set((out.logits.data as Float32Array).subarray(r * V, (r + 1) * V), i * V);
    });
    if (maxNew === 0) return;
    cache.append(out);
    let logits = out.logits.data as Float32Array;
    let live = [...rows];
    for (let generated = 1; ; generated++) {
      const keep: number[] = [];
      const next: number[] = [];
      live.forEach((i, r) => {
        const tok = argmaxRow(logits, r, V);
        if (eos.includes(tok)) {
          res.stoppedAtEos[i] = true;
          return;
        }
        res.tokens[i].push(tok);
        if (generated < maxNew && T + generated <= maxPositions) {
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

  private checkPrompt(p: readonly number[], what: string): void {
    const { vocabSize: V, maxPositions } = this.cfg;
    if (p.length === 0) throw new Error(`${what} is empty`);
    if (p.length > maxPositions) throw new Error(`${what} has ${p.length} tokens, more than max_position_embeddings ${maxPositions}`);
    const bad = p.find((t) => !Number.isInteger(t) || t < 0 || t >= V);
    if (bad !== undefined) throw new Error(`${what}: token ${bad} is not an id of the vocabulary (0..${V - 1})`);
  }

  private steerFeeds(steer: Float32Array[] | undefined): Record<string, HostTensor> {
    const L = this.cfg.numLayers;
    const w = llamaSiteWidth(this.cfg, this.site);
    if (steer && steer.length !== L) throw new Error(`steer has ${steer.length} vectors; the model has ${L} layers (give one per layer, zeros where unused)`);
    const zeros = new Float32Array(w);
    const feeds: Record<string, HostTensor> = {};
    for (let l = 0; l < L; l++) {
      const v = steer?.[l] ?? zeros;
      if (!(v instanceof Float32Array) || v.length !== w) throw new Error(`steer[${l}] (${llamaSiteName(l, this.site)}) must be a Float32Array of length ${w}`);
      feeds[llamaSteerInputName(l)] = { data: v, dims: [w] };
    }
    return feeds;
  }
}
