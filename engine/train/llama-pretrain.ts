/**
 * `memgen pretrain`: a small LLaMA-architecture base model pretrained from scratch on the generated
 * corpus (tasks/corpus.ts), saved as an ordinary Hugging Face folder. It is a STAND-IN for
 * LLaMA-3.2 (which cannot be downloaded here), and its manifest and config say so.
 *
 * Training (all parameters, next-token prediction over the whole document):
 *   doc ids   = [<|begin_of_text|>] ++ BPE(prompt) ++ BPE(sep ++ answer) ++ [<|eot_id|>]
 *   rows      = documents packed one after another into rows of seq + 1 tokens (the last one cut),
 *               as GPT-style pretraining packs them: no padding is wasted (documents average ~25
 *               tokens, the longest ~80); with --no-pack one document a row, the rest padding (not
 *               scored), so no earlier story in the row gives the same name another colour; with
 *               --pack-isolated whole documents are packed (one that does not fit waits for the next
 *               row; the batch's last such one is dropped) and each attends only to itself (segment
 *               ids, models/llama.ts): no name leaks between stories and no row is half padding
 *   loss      = mean over the answer and end tokens of -log softmax(logits[b, t])[row_b[t + 1]]
 *               (as the task runs score them, train/data.ts): the prompts' random operands, names
 *               and letters cannot be predicted and only add noise to a small model's gradient
 *   curriculum= with --sums-first N, the documents of the first N steps are drawn from the adding
 *               families only (corpus.ts SUM_FAMILIES, by their weights; --first-families picks
 *               others, e.g. sum4 alone): the adder forms before the stories and tags compete for
 *               the model (docs/llama.md measures why)
 *   numbers   = with --digit-group 3 the tokenizer splits numbers as LLaMA-3's does, in runs of up to
 *               3 digits, each one token (corpus.ts, header: pre-tokens); default 1, a digit a token;
 *               with --split-capitals a run of capital letters is a token a letter (bpe.ts), as the
 *               cipher's letters must be for a tiny base to copy them; a stage turns it on by
 *               rewriting its parent's split regex (the vocabulary is unchanged)
 *   sums      = with --sum-digits D, every partial sum of the sum families is zero-padded to D
 *               digits before it is reversed (corpus.ts; recorded as corpus.sumDigits, which the
 *               LoRA arithmetic runs on the base follow); default 0, unpadded
 *   rounding  = with --round-operands P, each operand of a training sum is a multiple of 10 with
 *               probability P (corpus.ts CorpusOptions.roundOperands: without it the units digit of
 *               a sum is independent of each operand digit alone and the lookups are found only by
 *               chance); the held-out check draws uniform operands
 *   names     = with --names-schedule 2-3:1500,2-5:3000 the stories of steps 0..1499 have 2-3 names,
 *               of steps 1500..2999 2-5, then the corpus's 2-7 (CorpusOptions.names): a curriculum
 *               of story sizes for the lookup by name (docs/results.md, in-context)
 *   one hop   = with --direct-colour P, a colour story asks with probability P of a name whose colour
 *               it states (corpus.ts CorpusOptions.directColour: the two-hop question's last lookup
 *               pays alone); the held-out check asks the two-hop question
 *   mix       = --mix fam:w,... replaces the family weights after the first families (a stage's
 *               mixture, e.g. fewer sums and more stories once the base adds)
 *   stages    = with --init-from BASE (a base made by memgen pretrain, same preset), the weights
 *               start from BASE's (BF16, as saved), its tokenizer is copied, Adam starts fresh, the
 *               schedule, families and --sum-digits are this command's and the documents come from
 *               another stream (seed * 7919 + 32): a second stage, e.g. the whole mixture, or sums in
 *               another width, after a sums-only base.
 *               The manifest records `stages`, every stage's command in order, so the chain can be
 *               remade (reproduce --system lora --pretrain)
 *   grow      = --init-from a base of a shallower preset of the same width (tiny -> deep) grows it by
 *               block expansion (LLaMA Pro, Wu et al. 2024): each block of the grown model starts as
 *               a copy of one of the parent's L blocks, k = layers / L copies of each; every copy but
 *               the first has its o_proj and down_proj (weights and biases) zero, so it adds nothing to
 *               the residual stream and the grown model computes exactly the parent's function at
 *               step 0; the new blocks learn from there (their gradients reach q, k, v, gate, up once
 *               o_proj and down_proj leave zero). Order (--grow):
 *                 interleave  layer j = the parent's floor(j / k), silent unless j mod k = 0 (LLaMA Pro)
 *                 stack       layer j = the parent's j mod L, silent from j = L on: the parent's whole
 *                             stack once more on top, so a lookup can run again on what the first
 *                             pass found (docs/llama.md, "Depth and written hops")
 *   hops      = with --hop-layers 0,1,2 [--hop-weight W] what a composed question needs inside the
 *               model is scored too (corpus.ts Hop: a story's role words hold their names (level 0),
 *               the later of the pair's role words the earlier one's name (1); `Who is like T?` holds
 *               T's role at its last token (1), the two-hop colour question T's role (1) and S (2)):
 *               hop h's first token through the final RMSNorm and the tied head at the residual after
 *               layer L_level(h) (resid_post, 0-based), intermediate supervision of where each lookup's
 *               result must be, so that the next lookup can read it (docs/llama.md, "Hops supervised
 *               inside"):
 *                 loss = CE(logits, targets) + W * sum_k CE(lm_head(norm(h_{L_k})), hop_k)
 *               each CE the mean over its level's scored positions (0 where a batch has none); levels
 *               past the list are not scored. With --hop-within-kind each hop's CE is taken over the
 *               tokens of its kind only (the story's names, roles or colours: HOP_KINDS), the others'
 *               logits masked: the hop asks which name (role) the residual holds, without asking it to
 *               hold nothing else, such as its own word, which a later lookup may need to copy
 *   update    = gradients clipped to global norm `clip`, Adam with lr(s) of train/schedule.ts
 *               (linear warm-up, cosine decay to minLrFraction x lr)
 * The folder appears only when training is done: work happens in OUT.partial/ (its checkpoints/
 * make --resume exact: parameters, Adam moments, data RNG, step; every --checkpoint-every steps),
 * then the final files are written there, manifest.json last, the checkpoints removed and
 * OUT.partial renamed to OUT in one step. Ctrl-C checkpoints. --resume after a kill -9 continues
 * from the last checkpoint, or, when manifest.json is there (killed while finishing), only finishes
 * the folder.
 * The weights are saved as BF16 (round to nearest even), as LLaMA-3.2 ships; a held-out greedy
 * check per corpus family (exact-match accuracy of the answer) on those rounded weights goes into
 * the manifest.
 *
 * Presets (measured on the 2-core development machine; docs/llama.md):
 *   tiny   hidden 128, 4 layers, 4 heads / 2 KV heads (head_dim 32), MLP 384, tied embeddings
 *   deep   tiny's width and heads, 8 layers (grows from a tiny base: header, grow)
 *   small  hidden 256, 6 layers, 8 heads / 4 KV heads (head_dim 32), MLP 768, tied embeddings
 * rope: LLaMA-3.2's theta 500000 and llama3 scaling (factor 32), so the config reads like 3.2's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Graph, type Tensor, ops } from '../graph';
import { appendLine, removeStaleTemps, writeFileAtomic } from '../io/atomic';
import { HF_FILES, type HFTokenizer, loadHFTokenizer } from '../io/hf-folder';
import { type ParamSet, roundParamsToBF16, saveParams } from '../io/params';
import { type LlamaConfig, initLlama, llamaHead, llamaParamInputs, llamaTrunk, toHFLlamaConfig } from '../models/llama';
import { LlamaInference } from '../models/llama-infer';
import { loadLlamaFolder } from '../models/llama-folder';
import { LLAMA32_CHAT_TEMPLATE } from '../models/llama-synthetic';
import { BASE_MANIFEST_FORMAT, RunError, gitCommit, readJSON, sha256File, writeJSON } from '../runs/run';
import { llama3SplitRegex } from '../tasks/bpe';
import { withRunLock } from '../runs/lock';
import type { RunnerOptions } from '../runtime/runner';
import { BOS_TOKEN, CORPUS_DEFAULTS, CORPUS_FAMILIES, DEFAULT_MIX_FAMILIES, EOT_TOKEN, PAD_TOKEN_LLAMA, SUM_FAMILIES, type CorpusDoc, type CorpusOptions, baseTokenizerFiles, corpusDescription, corpusDoc, firstFamiliesCorpus, heldOutCorpus, UNORDERED_FAMILIES } from '../tasks/corpus';
import { COLOURS, NAMES, ROLES } from '../tasks/incontext';
import { Rng } from '../util/rng';
import { hasTrainState, loadTrainState, noCheckpointError, saveTrainState } from './checkpoint';
import { Adam } from './optim';
import { truncateLog } from './run-loop';
import { learningRate } from './schedule';
import { TrainStep } from './step';
import { IGNORE_INDEX } from './data';
import { MEMGEN_VERSION } from './trainer';

export const STAND_IN_NOTE = 'memgen stand-in for LLaMA-3.2: a small LLaMA-architecture model pretrained from scratch on a generated corpus (no pretrained weights can be downloaded here); not Meta\'s weights';

/** deep: tiny's width with twice its layers (room for lookups in a row: docs/llama.md, "All three lookups"). */
export type PretrainPreset = 'tiny' | 'deep' | 'small';
export const PRETRAIN_PRESETS: Record<PretrainPreset, { model: Pick<LlamaConfig, 'hiddenSize' | 'intermediateSize' | 'numLayers' | 'numHeads' | 'numKVHeads' | 'headDim'>; steps: number; batch: number; lr: number; merges: number }> = {
  tiny: { model: { hiddenSize: 128, intermediateSize: 384, numLayers: 4, numHeads: 4, numKVHeads: 2, headDim: 32 }, steps: 9000, batch: 32, lr: 3e-3, merges: 480 },
  deep: { model: { hiddenSize: 128, intermediateSize: 384, numLayers: 8, numHeads: 4, numKVHeads: 2, headDim: 32 }, steps: 9000, batch: 32, lr: 3e-3, merges: 480 },
  small: { model: { hiddenSize: 256, intermediateSize: 768, numLayers: 6, numHeads: 8, numKVHeads: 4, headDim: 32 }, steps: 6000, batch: 32, lr: 1.5e-3, merges: 480 },
};

/** The corpus options (corpus.ts CorpusOptions: sumDigits, roundOperands, directColour, mix; header: sums, rounding, one hop, mix) are flat fields. */
export interface PretrainConfig extends CorpusOptions {
  preset: PretrainPreset;
  out: string;
  seed: number;
  steps: number;
  batch: number;
  seq: number;
  lr: number;
  warmup: number;
  minLrFraction: number;
  clip: number;
  maxMinutes: number | null;
  /** End at this step of the `steps`-step schedule (the lr keeps the whole schedule's shape); null = steps. */
  stopAt: number | null;
  /** Steps at the start that see only the adding families (header: curriculum); 0 = none. */
  sumsFirst: number;
  /** The families the first `sumsFirst` steps draw (default the adding ones). */
  firstFamilies: readonly string[];
  /** Most digits in one number token (header: numbers): 1 or 3 (LLaMA-3's). A stage keeps its parent's tokenizer. */
  digitGroup: number;
  /** Capital runs a letter a token (header: numbers); a stage may turn it on, never off. */
  splitCapitals: boolean;
  /** Story sizes for the first steps (header: names): each range until its step, then `names`; [] = none. */
  namesSchedule: readonly NamesStage[];
  /** true: documents packed; false: one a row; 'isolated': packed, each attending only to itself (header: rows). */
  pack: PackRows;
  /** A base made by `memgen pretrain` to start from (header: stages), or null: random weights. */
  initFrom: string | null;
  /** Where the new blocks go when initFrom is shallower (header: grow). */
  grow: GrowOrder;
  /** Per hop level, the layer (resid_post, 0-based, increasing) whose residual must hold it (header: hops); [] = none. */
  hopLayers: readonly number[];
  /** W of the hop terms (header: hops). */
  hopWeight: number;
  /** Each hop scored among the tokens of its kind only (header: hops). */
  hopWithinKind: boolean;
  evalPerFamily: number;
  /** Held-out exact match per family every this many steps (train-log.jsonl `eval` rows); 0 = only at the end. */
  evalEvery: number;
  logEvery: number;
  checkpointEvery: number;
  resume: boolean;
  force: boolean;
  command: string;
  runner: RunnerOptions;
  /** Overrides of the preset's shape (tests use a smaller model). */
  model?: Partial<(typeof PRETRAIN_PRESETS)[PretrainPreset]['model']>;
}

export type PackRows = boolean | 'isolated';

/** Stories of `names` names (lo, hi) before step `until`. */
export interface NamesStage {
  names: readonly [number, number];
  until: number;
}

/** The corpus options of step s: the schedule's story sizes until its last stage ends (header: names). */
export const corpusAtStep = (corpus: CorpusOptions, schedule: readonly NamesStage[], s: number): CorpusOptions => {
  const stage = schedule.find((st) => s < st.until);
  return stage === undefined ? corpus : { ...corpus, names: stage.names };
};

export function defaultPretrainConfig(preset: PretrainPreset, out: string): PretrainConfig {
  const p = PRETRAIN_PRESETS[preset];
  return {
    preset, out, seed: 0, steps: p.steps, batch: p.batch, seq: 64, lr: p.lr, warmup: 100, minLrFraction: 0.1, clip: 1, maxMinutes: null, stopAt: null, sumsFirst: 0, firstFamilies: SUM_FAMILIES, ...CORPUS_DEFAULTS, namesSchedule: [], pack: true, digitGroup: 1, splitCapitals: false, initFrom: null, grow: 'interleave', hopLayers: [], hopWeight: 1, hopWithinKind: false,
    evalPerFamily: 50, evalEvery: 0, logEvery: 10, checkpointEvery: 250, resume: false, force: false, command: `memgen pretrain --preset ${preset} --out ${out}`, runner: {},
  };
}

export interface PretrainProgress {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
}

export interface PretrainOutcome {
  dir: string;
  steps: number;
  seconds: number;
  finalLoss: number;
  familyAccuracy: Record<string, number>;
  stopReason: 'steps' | 'time' | 'interrupted';
}

interface PretrainState {
  step: number;
  adamT: number;
  dataRng: { s: number; spare: number | null };
  trainSeconds: number;
  lastLoss: number;
}

/** `sum4 60%  colour 42%  ...` for logs. */
export const formatFamilyAccuracy = (acc: Record<string, number>): string => Object.entries(acc).map(([f, a]) => `${f} ${(100 * a).toFixed(0)}%`).join('  ');

export const partialDir = (out: string): string => `${out}.partial`;
/** The resumable state of a pretraining (train/checkpoint.ts), inside its work folder. */
const checkpointDir = (work: string): string => path.join(work, 'checkpoints', 'last');

/**
 * Token ids of a corpus document and its prompt length (bos + prompt): prompt and answer are encoded
 * separately, as the task runs encode them (hf-task-tokenizer.ts), so a pre-token never spans both.
 */
export function encodeDoc(tok: HFTokenizer, ids: { bos: number; eot: number }, d: CorpusDoc): { ids: number[]; promptLength: number } {
  const prompt = tok.encode(d.prompt, { addSpecialTokens: false });
  return { ids: [ids.bos, ...prompt, ...tok.encode(d.sep + d.answer, { addSpecialTokens: false }), ids.eot], promptLength: 1 + prompt.length };
}

/**
 * A packed batch (header): each row of seq + 1 tokens is filled with whole documents one after
 * another (the last one cut at the row's end); ids = row[0..seq), targets = row[t + 1] where that
 * token is an answer token or the end token, else -100. pack false: one document a row, padded;
 * 'isolated': whole documents only, the rest padded, and segments = each position's document in its
 * row (padding -1).
 */
/** What one pretraining batch holds: rows x tokens, drawn from `families` weighted by `corpus`, packed by `pack`, with `hopLevels` hop targets. */
export interface BatchShape {
  batch: number;
  seq: number;
  families?: readonly string[];
  corpus?: CorpusOptions;
  pack?: PackRows;
  hopLevels?: number;
}

export function pretrainBatch(tok: HFTokenizer, sp: { bos: number; eot: number; pad: number }, rng: Rng, shape: BatchShape): { ids: BigInt64Array; targets: BigInt64Array; hops: BigInt64Array[]; segments: BigInt64Array | null } {
  const { batch, seq, families = CORPUS_FAMILIES, corpus = CORPUS_DEFAULTS, pack = true, hopLevels = 0 } = shape;
  const ids = new BigInt64Array(batch * seq).fill(BigInt(sp.pad));
  const targets = new BigInt64Array(batch * seq).fill(BigInt(IGNORE_INDEX));
  const hops = Array.from({ length: hopLevels }, () => new BigInt64Array(batch * seq).fill(BigInt(IGNORE_INDEX)));
  const segments = pack === 'isolated' ? new BigInt64Array(batch * seq).fill(-1n) : null;
  type Drawn = { d: CorpusDoc; doc: ReturnType<typeof encodeDoc> };
  const draw = (): Drawn => {
    const d = corpusDoc(rng, families, corpus);
    return { d, doc: encodeDoc(tok, sp, d) };
  };
  let waiting: Drawn | null = null; // drawn, did not fit its row ('isolated')
  for (let b = 0; b < batch; b++) {
    const row: number[] = [];
    const scored: boolean[] = [];
    for (let k = 0; row.length < seq + 1; k++) {
      const next: Drawn = waiting ?? draw();
      waiting = null;
      const { d, doc } = next;
      if (segments && k > 0 && row.length + doc.ids.length > seq + 1) {
        waiting = next;
        break;
      }
      // header, hops: each at its prefix's last token (bos first), the whole prompt's being the one that writes the answer
      const scoredHops = (d.hops ?? []).filter((h) => h.level < hopLevels); // none without --hop-layers: no tokenizing
      const ends = scoredHops.length ? promptTokenEnds(tok, d.prompt, doc.ids.slice(1, doc.promptLength)) : [];
      for (const h of scoredHops) {
        const at = row.length + (h.at === d.prompt ? doc.promptLength - 1 : prefixTokens(tok, d.prompt, h.at, ends));
        if (at < seq) hops[h.level][b * seq + at] = BigInt(hopToken(tok, h.text));
      }
      for (let i = 0; i < doc.ids.length && segments && row.length + i < seq; i++) segments[b * seq + row.length + i] = BigInt(k);
      doc.ids.forEach((id, i) => {
        row.push(id);
        scored.push(i >= doc.promptLength);
      });
      while (!pack && row.length < seq + 1) {
        row.push(sp.pad);
        scored.push(false);
      }
    }
    for (let t = 0; t < seq; t++) {
      if (t < row.length) ids[b * seq + t] = BigInt(row[t]);
      if (scored[t + 1]) targets[b * seq + t] = BigInt(row[t + 1]);
    }
  }
  return { ids, targets, hops, segments };
}

/**
 * The character offset where each of the prompt's tokens ends, or null when the tokens do not spell
 * the prompt back one by one (a character split over two byte-level tokens).
 */
function promptTokenEnds(tok: HFTokenizer, prompt: string, ids: readonly number[]): number[] | null {
  let end = 0;
  const ends = ids.map((id) => (end += tok.decode([id]).length));
  return end === prompt.length ? ends : null;
}

/**
 * Tokens in a prefix of the prompt: those ending within it. A hop's prefix ends at a word, before the
 * `.` that is its own pre-token, so it tokenizes as the prompt's first tokens do (tokenizing each
 * prefix instead costs a story's length once a hop); a hop's `at` that is no prefix is tokenized.
 */
function prefixTokens(tok: HFTokenizer, prompt: string, prefix: string, ends: number[] | null): number {
  if (!ends || !prompt.startsWith(prefix)) return tok.encode(prefix, { addSpecialTokens: false }).length;
  let n = 0;
  while (n < ends.length && ends[n] <= prefix.length) n++;
  return n;
}

const hopTokens = new WeakMap<HFTokenizer, Map<string, number>>();

/** The token a hop's text is scored by (header: hops): its first, with the space a story word has; encoded once a tokenizer. */
export function hopToken(tok: HFTokenizer, text: string): number {
  let known = hopTokens.get(tok);
  if (!known) hopTokens.set(tok, (known = new Map()));
  let id = known.get(text);
  if (id === undefined) known.set(text, (id = tok.encode(' ' + text, { addSpecialTokens: false })[0]));
  return id;
}

/** The word kinds a hop is scored within (header: hops, --hop-within-kind): a story's names, roles and colours. */
export const HOP_KINDS: readonly (readonly string[])[] = [NAMES, ROLES, COLOURS];

/** Each kind's token (hopToken) -> its index in HOP_KINDS. */
export function hopKindOf(tok: HFTokenizer): Map<number, number> {
  return new Map(HOP_KINDS.flatMap((words, k) => words.map((w) => [hopToken(tok, w), k] as const)));
}

/** Per position, the kind of its hop's token (0 where there is no hop, as that position is not scored). */
export function hopKinds(hops: BigInt64Array, kindOf: ReadonlyMap<number, number>): BigInt64Array {
  return hops.map((t) => (t < 0n ? 0n : BigInt(kindOf.get(Number(t)) ?? HOP_KINDS.length)));
}

/**
 * The training loss (header: loss, hops): the next-token loss, plus the hop terms with --hop-layers
 * (inputs hop0, hop1, ...; with --hop-within-kind, kindOf given (hopKindOf), also hopkind0, ...: each position's kind, whose row of
 * `kindMask` (kinds x V: 0 for the kind's tokens, -1e9 for the others; a last row of zeros, the whole
 * vocabulary) is added to the lens logits).
 */
function pretrainLoss(model: LlamaConfig, g: Graph, ids: Tensor, targets: Tensor, cfg: Pick<PretrainConfig, 'hopLayers' | 'hopWeight' | 'batch' | 'seq' | 'pack'>, kindOf: ReadonlyMap<number, number> | null): Tensor {
  const beyond = cfg.hopLayers.find((l) => l >= model.numLayers);
  if (beyond !== undefined) throw new RunError(`--hop-layers ${cfg.hopLayers.join(',')}: the model has layers 0-${model.numLayers - 1}, not ${beyond}`);
  const w = llamaParamInputs(g, model);
  const inside = new Map<number, Tensor>();
  const hook = (layer: number, site: string, x: Tensor) => {
    if (site === 'resid_post' && cfg.hopLayers.includes(layer)) inside.set(layer, x);
    return x;
  };
  const segments = cfg.pack === 'isolated' ? g.input('segments', [cfg.batch, cfg.seq], 'int64') : undefined;
  let loss = ops.crossEntropy(llamaHead(model, w, llamaTrunk(model, w, ids, ops.range(g, cfg.seq), { hook, segments }).h), targets);
  const V = model.vocabSize;
  const kindMask = kindOf ? g.constant(Float32Array.from({ length: (HOP_KINDS.length + 1) * V }, (_, i) => (i >= HOP_KINDS.length * V || kindOf.get(i % V) === Math.floor(i / V) ? 0 : -1e9)), [HOP_KINDS.length + 1, V]) : null;
  cfg.hopLayers.forEach((layer, k) => {
    const lens = llamaHead(model, w, inside.get(layer)!);
    const logits = kindMask ? ops.add(lens, ops.gather(kindMask, g.input(`hopkind${k}`, [cfg.batch, cfg.seq], 'int64'))) : lens;
    const hop = ops.crossEntropy(logits, g.input(`hop${k}`, [cfg.batch, cfg.seq], 'int64'));
    loss = ops.add(loss, ops.mul(hop, cfg.hopWeight));
  });
  return loss;
}

/** The base's LlamaConfig: the preset's shape (or `over`), LLaMA-3.2's rope, norm and special ids. */
export function pretrainModelConfig(preset: PretrainPreset, vocabSize: number, sp: Record<string, number>, over: PretrainConfig['model'] = {}): LlamaConfig {
  return {
    ...PRETRAIN_PRESETS[preset].model,
    ...over,
    vocabSize,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: { ropeType: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    maxPositions: 131072,
    tieWordEmbeddings: true,
    bosTokenId: sp[BOS_TOKEN],
    eosTokenIds: [sp['<|end_of_text|>'], sp['<|eom_id|>'], sp[EOT_TOKEN]],
  };
}

/**
 * Exact-match greedy accuracy per family on `n` held-out documents each (answers after the prompt;
 * heldOutCorpus: uniform operands, two-hop stories): the default mix's families, then those only the
 * stage's --mix draws (`like`, `who`, ...), except the recitals, whose answers are in a random order.
 */
export async function familyAccuracy(cfg: LlamaConfig, params: ParamSet, tok: HFTokenizer, sp: { bos: number; eot: number }, n: number, runner: RunnerOptions = {}, corpus: CorpusOptions = CORPUS_DEFAULTS): Promise<Record<string, number>> {
  const rng = new Rng(0xacc);
  const byFamily = new Map<string, CorpusDoc[]>(DEFAULT_MIX_FAMILIES.map((f) => [f, []]));
  for (let guard = 0; guard < 200 * n && [...byFamily.values()].some((d) => d.length < n); guard++) {
    const d = corpusDoc(rng, CORPUS_FAMILIES, heldOutCorpus(corpus));
    const list = byFamily.get(d.family)!;
    if (list.length < n) list.push(d);
  }
  const mixOnly = Object.entries(corpus.mix ?? {}).filter(([f, w]) => w > 0 && !DEFAULT_MIX_FAMILIES.includes(f) && !UNORDERED_FAMILIES.includes(f)).map(([f]) => f);
  for (const f of mixOnly) byFamily.set(f, Array.from({ length: n }, () => corpusDoc(rng, CORPUS_FAMILIES, { ...heldOutCorpus(corpus), mix: { [f]: 1 } })));
  const docs = [...byFamily.values()].flat();
  const outs = await greedyAnswers(cfg, params, tok, sp, docs.map((d) => d.prompt), 24, runner);
  const acc: Record<string, number> = {};
  docs.forEach((d, i) => {
    acc[d.family] = (acc[d.family] ?? 0) + (outs[i] === d.answer ? 1 / n : 0);
  });
  return acc;
}

/** The base's greedy continuations of plain prompts (bos + prompt, at most maxNewTokens, up to eot), decoded and trimmed. */
export async function greedyAnswers(cfg: LlamaConfig, params: ParamSet, tok: HFTokenizer, sp: { bos: number; eot: number }, prompts: readonly string[], maxNewTokens: number, runner: RunnerOptions = {}): Promise<string[]> {
  const inf = await LlamaInference.create(cfg, params, { runner, batchSize: 64 });
  try {
    const res = await inf.generate(prompts.map((p) => [sp.bos, ...tok.encode(p, { addSpecialTokens: false })]), { maxNewTokens, eosIds: [sp.eot] });
    return res.tokens.map((t) => tok.decode(t, { skipSpecialTokens: true }).trim());
  } finally {
    await inf.release();
  }
}

export interface PretrainHooks {
  onProgress?: (p: PretrainProgress) => void;
  shouldStop?: () => boolean;
  log?: (l: string) => void;
  /** Warnings (a stale lock taken over); default: log. The CLI sends them to stderr. */
  warn?: (l: string) => void;
}

/** One writer per run: holds `OUT.lock` (runs/lock.ts) while it trains. */
export async function pretrain(cfg: PretrainConfig, hooks: PretrainHooks = {}): Promise<PretrainOutcome> {
  return withRunLock(cfg.out, cfg.command, () => pretrainUnlocked(cfg, hooks), hooks.warn ?? hooks.log);
}

async function pretrainUnlocked(cfg: PretrainConfig, hooks: PretrainHooks): Promise<PretrainOutcome> {
  const out = path.resolve(cfg.out);
  const work = partialDir(out);
  if (cfg.resume) {
    // Killed while finishing: manifest.json is the last file written into the work folder, so the
    // base is complete and only the clean-up and the rename are left (the checkpoints may be gone).
    if (fs.existsSync(path.join(work, BASE_MANIFEST))) {
      const m = readBaseManifest(work);
      hooks.log?.(`resuming ${work} at step ${m.train.steps}: its training is done; finishing the folder`);
      removeStaleTemps(work);
      finishBaseFolder(work, out);
      return baseOutcome(out, m, cfg);
    }
    if (!fs.existsSync(work) && fs.existsSync(path.join(out, BASE_MANIFEST))) {
      hooks.log?.(`${out} is complete already (${BASE_MANIFEST}); nothing to resume`);
      return baseOutcome(out, readBaseManifest(out), cfg);
    }
  }
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0) {
    if (!cfg.force) throw new RunError(`${out} already exists; pass --force to replace it (the old folder is kept as ${path.basename(out)}.replaced-<time>)`);
  }
  if (cfg.resume) {
    if (!hasTrainState(checkpointDir(work))) throw noCheckpointError(work, `step ${Math.min(cfg.checkpointEvery, cfg.steps)}`, `it deletes ${path.basename(work)}`);
  } else {
    if (fs.existsSync(work)) {
      if (!cfg.force) throw new RunError(`${work} holds an unfinished pretraining; continue it with --resume, or start anew with --force`);
      fs.rmSync(work, { recursive: true, force: true });
    }
    const parent = cfg.initFrom === null ? null : parentBase(cfg.initFrom, cfg);
    fs.mkdirSync(work, { recursive: true });
    if (parent === null) {
      const tf = baseTokenizerFiles({ merges: PRETRAIN_PRESETS[cfg.preset].merges, seed: cfg.seed + 1234, digitGroup: cfg.digitGroup, splitCapitals: cfg.splitCapitals, chatTemplate: LLAMA32_CHAT_TEMPLATE });
      writeFileAtomic(path.join(work, HF_FILES.tokenizer), JSON.stringify(tf.tokenizer));
      writeFileAtomic(path.join(work, HF_FILES.tokenizerConfig), JSON.stringify(tf.tokenizerConfig, null, 2) + '\n');
      writeJSON(path.join(work, 'pretrain.json'), { ...cfg, runner: undefined, vocabSize: tf.vocabSize, ids: tf.ids, stages: [] });
    } else {
      for (const f of [HF_FILES.tokenizer, HF_FILES.tokenizerConfig]) fs.copyFileSync(path.join(parent.dir, f), path.join(work, f));
      const digitGroup = parent.manifest.tokenizer.digitGroup ?? 1;
      const splitCapitals = (parent.manifest.tokenizer.splitCapitals ?? false) || cfg.splitCapitals;
      if (splitCapitals && !parent.manifest.tokenizer.splitCapitals) splitCapitalsInStage(path.join(work, HF_FILES.tokenizer), parent.dir, digitGroup);
      writeJSON(path.join(work, 'pretrain.json'), { ...cfg, runner: undefined, vocabSize: parent.manifest.tokenizer.vocabSize, ids: parent.ids, digitGroup, splitCapitals, stages: parent.manifest.stages ?? [parent.manifest.command] });
    }
  }
  const saved = readJSON<{ vocabSize: number; ids: Record<string, number>; preset: PretrainPreset; seed: number } & Partial<CorpusOptions> & { initFrom?: string | null; stages?: string[]; digitGroup?: number; splitCapitals?: boolean; namesSchedule?: NamesStage[]; pack?: PackRows; hopLayers?: number[]; hopWeight?: number; hopWithinKind?: boolean }>(path.join(work, 'pretrain.json'), 'pretrain settings');
  const digitGroup = saved.digitGroup ?? 1; // the tokenizer's (a stage's is its parent's)
  const splitCapitals = saved.splitCapitals ?? false;
  if (cfg.splitCapitals && !splitCapitals) throw new RunError(`${work} was started without --split-capitals; resume without it, or start anew with --force`);
  // recorded since each option exists; before, the corpus had its defaults
  // the stories' size after any --names-schedule is always the corpus's (no flag sets it)
  const savedCorpus: CorpusOptions = { ...CORPUS_DEFAULTS, sumDigits: saved.sumDigits ?? 0, roundOperands: saved.roundOperands ?? 0, directColour: saved.directColour ?? 0, mix: saved.mix ?? null };
  const corpus: CorpusOptions = { ...CORPUS_DEFAULTS, sumDigits: cfg.sumDigits, roundOperands: cfg.roundOperands, directColour: cfg.directColour, mix: cfg.mix };
  const savedRows = { namesSchedule: saved.namesSchedule ?? [], pack: saved.pack ?? true, hopLayers: saved.hopLayers ?? [], hopWeight: saved.hopWeight ?? 1, hopWithinKind: saved.hopWithinKind ?? false };
  if (saved.preset !== cfg.preset || saved.seed !== cfg.seed || JSON.stringify(savedCorpus) !== JSON.stringify(corpus) || JSON.stringify(savedRows) !== JSON.stringify({ namesSchedule: cfg.namesSchedule, pack: cfg.pack, hopLayers: cfg.hopLayers, hopWeight: cfg.hopWeight, hopWithinKind: cfg.hopWithinKind })) {
    const mix = savedCorpus.mix === null ? '' : ` --mix ${Object.entries(savedCorpus.mix).map(([f, w]) => `${f}:${w}`).join(',')}`;
    const names = savedRows.namesSchedule.length === 0 ? '' : ` --names-schedule ${formatNamesSchedule(savedRows.namesSchedule)}`;
    throw new RunError(`${work} was started with --preset ${saved.preset} --seed ${saved.seed} --sum-digits ${savedCorpus.sumDigits} --round-operands ${savedCorpus.roundOperands} --direct-colour ${savedCorpus.directColour}${mix}${names}${savedRows.pack === true ? '' : savedRows.pack ? ' --pack-isolated' : ' --no-pack'}${savedRows.hopLayers.length === 0 ? '' : ` --hop-layers ${savedRows.hopLayers.join(',')} --hop-weight ${savedRows.hopWeight}${savedRows.hopWithinKind ? ' --hop-within-kind' : ''}`}; resume with the same`);
  }
  const tok = loadHFTokenizer(work);
  const sp = { bos: saved.ids[BOS_TOKEN], eot: saved.ids[EOT_TOKEN], pad: saved.ids[PAD_TOKEN_LLAMA] };
  const model = pretrainModelConfig(cfg.preset, saved.vocabSize, saved.ids, cfg.model);

  const seq = cfg.seq;
  const params = initLlama(model, new Rng(cfg.seed));
  const initFrom = saved.initFrom ?? null;
  if (initFrom !== null && !cfg.resume) {
    const parent = loadLlamaFolder(initFrom, { tokenizer: false });
    if (parent.config.numLayers !== model.numLayers) hooks.log?.(`growing ${initFrom} from ${parent.config.numLayers} to ${model.numLayers} layers by block expansion (${cfg.grow}; the new blocks start silent)`);
    for (const [name, data] of grownWeights(parent.params, parent.config.numLayers, model.numLayers, cfg.grow)) params.get(name)!.data.set(data);
  }
  const adam = new Adam(params, { lr: cfg.lr, weightDecay: 0 });
  let dataRng = new Rng(cfg.seed * 7919 + (initFrom === null ? 31 : 32));
  let state: PretrainState = { step: 0, adamT: 0, dataRng: dataRng.state, trainSeconds: 0, lastLoss: NaN };
  const logFile = path.join(work, 'train-log.jsonl');
  if (cfg.resume) {
    removeStaleTemps(work); // of writers killed mid-write
    state = loadTrainState<PretrainState>(checkpointDir(work), params, adam);
    dataRng = Rng.restore(state.dataRng);
    truncateLog(logFile, state.step); // lines past the checkpoint are written again
    hooks.log?.(`resuming ${work} at step ${state.step}`);
  }

  const g = new Graph('llama_pretrain');
  const ids = g.input('ids', [cfg.batch, seq], 'int64');
  const targets = g.input('targets', [cfg.batch, seq], 'int64');
  const kindOf = cfg.hopWithinKind ? hopKindOf(tok) : null; // --hop-within-kind only
  const step = await TrainStep.compile(g, pretrainLoss(model, g, ids, targets, cfg, kindOf), cfg.runner);
  const started = performance.now();
  const before = state.trainSeconds;
  const seconds = () => before + (performance.now() - started) / 1000;
  let s = state.step;
  let loss = state.lastLoss;
  let stopReason: PretrainOutcome['stopReason'] = 'steps';
  const checkpoint = () => {
    state = { step: s, adamT: adam.state.t, dataRng: dataRng.state, trainSeconds: seconds(), lastLoss: loss };
    saveTrainState(checkpointDir(work), params, adam, state);
  };
  try {
    const end = Math.min(cfg.steps, cfg.stopAt ?? cfg.steps);
    while (s < end) {
      if (hooks.shouldStop?.()) { stopReason = 'interrupted'; break; }
      if (cfg.maxMinutes !== null && (performance.now() - started) / 60000 >= cfg.maxMinutes) { stopReason = 'time'; break; }
      // the first families draw by their default weights (a mix-only family by the mix's), the stage's mix after them
      const stepCorpus = corpusAtStep(corpus, cfg.namesSchedule, s);
      const b = pretrainBatch(tok, sp, dataRng, {
        batch: cfg.batch, seq, families: s < cfg.sumsFirst ? cfg.firstFamilies : CORPUS_FAMILIES,
        corpus: s < cfg.sumsFirst ? firstFamiliesCorpus(stepCorpus) : stepCorpus, pack: cfg.pack, hopLevels: cfg.hopLayers.length,
      });
      const feeds = { ids: { data: b.ids, dims: [cfg.batch, seq] }, targets: { data: b.targets, dims: [cfg.batch, seq] }, ...Object.fromEntries(b.hops.map((h, k) => [`hop${k}`, { data: h, dims: [cfg.batch, seq] }])), ...(kindOf && Object.fromEntries(b.hops.map((h, k) => [`hopkind${k}`, { data: hopKinds(h, kindOf), dims: [cfg.batch, seq] }]))), ...(b.segments && { segments: { data: b.segments, dims: [cfg.batch, seq] } }) };
      const r = await step.run(params, feeds);
      if (!Number.isFinite(r.loss)) throw new Error(`loss became ${r.loss} at step ${s}; lower the learning rate (--lr)`);
      const lr = learningRate({ lr: cfg.lr, warmup: cfg.warmup, total: cfg.steps, minFraction: cfg.minLrFraction }, s);
      const gradNorm = adam.clipAndStep(params, r.grads, lr, cfg.clip);
      s++;
      loss = r.loss;
      if (s % cfg.logEvery === 0) appendLine(logFile, JSON.stringify({ step: s, kind: 'train', loss, lr, gradNorm, seconds: seconds() }));
      hooks.onProgress?.({ step: s, totalSteps: end, loss, lr });
      if (s % cfg.checkpointEvery === 0) checkpoint();
      if (cfg.evalEvery > 0 && s % cfg.evalEvery === 0 && s < end) {
        const acc = await familyAccuracy(model, params, tok, sp, cfg.evalPerFamily, cfg.runner, corpus);
        appendLine(logFile, JSON.stringify({ step: s, kind: 'eval', heldOutAccuracy: acc, seconds: seconds() }));
        hooks.log?.(`step ${s}: held-out exact match ${formatFamilyAccuracy(acc)}`);
      }
    }
  } finally {
    await step.release();
  }
  checkpoint();
  if (stopReason === 'interrupted') return { dir: work, steps: s, seconds: seconds(), finalLoss: loss, familyAccuracy: {}, stopReason };

  roundParamsToBF16(params); // the folder holds BF16 weights, as LLaMA-3.2's; the check below measures those
  const acc = cfg.evalPerFamily > 0 ? await familyAccuracy(model, params, tok, sp, cfg.evalPerFamily, cfg.runner, corpus) : {};
  const hf = { ...toHFLlamaConfig(model, 'bfloat16'), _name_or_path: `memgen-stand-in-llama-3.2-${cfg.preset}`, memgen_note: STAND_IN_NOTE };
  writeJSON(path.join(work, HF_FILES.config), hf);
  writeJSON(path.join(work, 'generation_config.json'), { bos_token_id: model.bosTokenId, eos_token_id: model.eosTokenIds, do_sample: false });
  writeJSON(path.join(work, 'special_tokens_map.json'), { bos_token: BOS_TOKEN, eos_token: EOT_TOKEN, pad_token: PAD_TOKEN_LLAMA });
  saveParams(path.join(work, HF_FILES.weights), params, { format: 'pt' }, 'BF16');
  const hashes: Record<string, string> = {};
  for (const f of [HF_FILES.config, HF_FILES.weights, HF_FILES.tokenizer, HF_FILES.tokenizerConfig]) hashes[f] = `sha256:${sha256File(path.join(work, f))}`;
  writeJSON(path.join(work, BASE_MANIFEST), { // last: its presence marks a complete base (resume finishes the folder)
    format: BASE_MANIFEST_FORMAT,
    standIn: STAND_IN_NOTE,
    architecture: 'LlamaForCausalLM (LLaMA-3.2 layout: RMSNorm, rope theta 500000 + llama3 scaling, GQA, SwiGLU, tied embeddings)',
    preset: cfg.preset, seed: cfg.seed, command: cfg.command, stages: [...(saved.stages ?? []), cfg.command],
    train: { steps: s, scheduleSteps: cfg.steps, batch: cfg.batch, seq, lr: cfg.lr, warmup: cfg.warmup, minLrFraction: cfg.minLrFraction, clip: cfg.clip, sumsFirst: cfg.sumsFirst, firstFamilies: cfg.firstFamilies, namesSchedule: cfg.namesSchedule, pack: cfg.pack, hopLayers: cfg.hopLayers, hopWeight: cfg.hopWeight, hopWithinKind: cfg.hopWithinKind },
    corpus: corpusDescription(corpus),
    tokenizer: { type: `byte-level BPE, LLaMA-3 pre-tokenizer with ${digitGroup === 1 ? 'single digits' : `numbers in runs of up to ${digitGroup} digits`}${splitCapitals ? ', capital runs a letter a token' : ''}`, vocabSize: model.vocabSize, merges: PRETRAIN_PRESETS[cfg.preset].merges, digitGroup, splitCapitals },
    finalLoss: loss, trainSeconds: seconds(), dtype: 'bfloat16', heldOutAccuracy: acc, evalPerFamily: cfg.evalPerFamily,
    versions: { memgen: MEMGEN_VERSION, node: process.version, onnxruntime: String(ort.env.versions.node ?? ort.env.versions.common) },
    gitCommit: gitCommit(), createdAt: new Date().toISOString(), hashes,
  });
  finishBaseFolder(work, out);
  return { dir: out, steps: s, seconds: seconds(), finalLoss: loss, familyAccuracy: acc, stopReason };
}

const BASE_MANIFEST = 'manifest.json';

/** `2-3:1500,2-5:3000`, as --names-schedule takes it. */
export const formatNamesSchedule = (schedule: readonly NamesStage[]): string => schedule.map((st) => `${st.names[0]}-${st.names[1]}:${st.until}`).join(',');

/** What `memgen pretrain` records in a base folder's manifest.json (the fields read back). */
export interface BaseManifest {
  standIn: string;
  command: string;
  /** Every stage's command in order (absent in bases made before --init-from: the command alone). */
  stages?: string[];
  preset: PretrainPreset;
  corpus: { sumDigits?: number };
  tokenizer: { vocabSize: number; digitGroup?: number; splitCapitals?: boolean };
  train: { steps: number };
  finalLoss: number;
  trainSeconds: number;
  heldOutAccuracy: Record<string, number>;
}

export const readBaseManifest = (dir: string): BaseManifest => readJSON<BaseManifest>(path.join(dir, BASE_MANIFEST), 'base manifest');

const baseOutcome = (out: string, m: BaseManifest, cfg: PretrainConfig): PretrainOutcome => ({
  dir: out, steps: m.train.steps, seconds: m.trainSeconds, finalLoss: m.finalLoss, familyAccuracy: m.heldOutAccuracy, stopReason: m.train.steps >= Math.min(cfg.steps, cfg.stopAt ?? cfg.steps) ? 'steps' : 'time',
});

/** The base --init-from names, checked against this pretraining (same preset); its special-token ids. */
function parentBase(dir: string, cfg: PretrainConfig): { dir: string; manifest: BaseManifest; ids: Record<string, number> } {
  const d = path.resolve(dir);
  if (!fs.existsSync(path.join(d, BASE_MANIFEST))) throw new RunError(`--init-from ${dir}: no ${BASE_MANIFEST}; it must be a finished base made by \`memgen pretrain\``);
  const manifest = readBaseManifest(d);
  if (manifest.preset !== cfg.preset && !canGrow(manifest.preset, cfg.preset)) {
    const growable = (Object.keys(PRETRAIN_PRESETS) as PretrainPreset[]).filter((p) => p !== manifest.preset && canGrow(manifest.preset, p));
    throw new RunError(`--init-from ${dir} is a ${manifest.preset} base; pass --preset ${manifest.preset}${growable.length ? ` (or ${growable.join(' / ')} to grow it by block expansion)` : ''}`);
  }
  const tok = readJSON<{ added_tokens: { id: number; content: string }[] }>(path.join(d, HF_FILES.tokenizer), 'tokenizer');
  return { dir: d, manifest, ids: Object.fromEntries(tok.added_tokens.map((t) => [t.content, t.id])) };
}

/** A stage's copy of its parent's tokenizer.json with capital runs split (header: numbers): the parent's regex must be the one pretrain writes. */
function splitCapitalsInStage(file: string, parentDir: string, digitGroup: number): void {
  const tok = readJSON<{ pre_tokenizer?: { pretokenizers?: { type: string; pattern?: { Regex?: string } }[] } }>(file, 'tokenizer');
  const split = tok.pre_tokenizer?.pretokenizers?.find((p) => p.type === 'Split')?.pattern;
  if (split?.Regex !== llama3SplitRegex(digitGroup).onig) throw new RunError(`--split-capitals: ${path.join(parentDir, HF_FILES.tokenizer)} does not split text with the regex memgen pretrain writes; start the stage from a base made by memgen pretrain, or leave --split-capitals out`);
  split.Regex = llama3SplitRegex(digitGroup, true).onig;
  writeFileAtomic(file, JSON.stringify(tok));
}

/** Whether a base of preset `from` grows into preset `to` (header: grow): the same shape but a multiple of its layers. */
export function canGrow(from: PretrainPreset, to: PretrainPreset): boolean {
  const a = PRETRAIN_PRESETS[from].model, b = PRETRAIN_PRESETS[to].model;
  return JSON.stringify({ ...a, numLayers: 0 }) === JSON.stringify({ ...b, numLayers: 0 }) && b.numLayers > a.numLayers && b.numLayers % a.numLayers === 0;
}

export const GROW_ORDERS = ['interleave', 'stack'] as const;
export type GrowOrder = (typeof GROW_ORDERS)[number];

/** The parent's weights as a model of `layers` layers (header: grow; layers = parentLayers: the parent's as they are). */
export function grownWeights(parent: ParamSet, parentLayers: number, layers: number, order: GrowOrder = 'interleave'): Map<string, Float32Array> {
  if (layers % parentLayers !== 0) throw new RunError(`cannot grow ${parentLayers} layers into ${layers}: the layers must be a multiple of the parent's`);
  const k = layers / parentLayers;
  const out = new Map<string, Float32Array>();
  for (const [name, p] of parent) {
    const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
    if (m === null) {
      out.set(name, p.data);
      continue;
    }
    const i = Number(m[1]);
    for (let r = 0; r < k; r++) {
      const silent = r > 0 && /^(self_attn\.o_proj|mlp\.down_proj)\./.test(m[2]);
      out.set(`model.layers.${order === 'interleave' ? i * k + r : r * parentLayers + i}.${m[2]}`, silent ? new Float32Array(p.data.length) : p.data);
    }
  }
  return out;
}

/** The last part of a pretraining, once its manifest is written: drops the checkpoints, then OUT.partial becomes OUT. */
function finishBaseFolder(work: string, out: string): void {
  fs.rmSync(path.join(work, 'checkpoints'), { recursive: true, force: true });
  fs.rmSync(path.join(work, 'pretrain.json'), { force: true });
  if (fs.existsSync(out)) fs.renameSync(out, `${out}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  fs.renameSync(work, out);
}
