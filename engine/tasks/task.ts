/**
 * The interface every synthetic task of the paper implements (method.md sections 1-2). The trainer,
 * the pairwise extraction and the steering code use only this; nothing task-specific leaks past it.
 *
 *   train(rng)      one example of the training mix (memorization patterns at the task's memRate)
 *   test(rng)       one held-out input on which the two behaviours disagree: memAnswer !== genAnswer
 *   rephrase(ex)    the pair rule: a different surface for the same memorization trigger
 *   classify(ex, o) 'gen' | 'mem' | 'other' for the decoded generation o (text before the end token)
 *   fromPrompt(s)   the example for a typed prompt (to classify a generation from it)
 *
 * Randomness: a task's own randomness (memorization patterns, memorized colours, cipher key) is drawn
 * once from `seed` in the constructor through `deriveSeed`, so it never shares a stream with the
 * example rng the caller passes in (a trainer may well seed that rng with the same number). The
 * example stream is then a pure function of that rng: no global state, no Math.random.
 */
import { Rng } from '../util/rng';

export type Behaviour = 'gen' | 'mem' | 'other';
export type TaskName = 'arithmetic' | 'incontext' | 'cipher';
export type TaskScale = 'tiny' | 'paper';

export interface Example {
  /** What the model reads (ends where the answer starts). */
  prompt: string;
  /** The training continuation (without the end-of-answer token; encodeExample appends it). */
  target: string;
  /** The correct answer, in the normalised form classify compares with. */
  genAnswer: string;
  /** The memorized answer when the input bears a pattern / has a memorized colour, else null. */
  memAnswer: string | null;
  /** Task-specific fields the pair rule and classify need, JSON-serialisable. */
  meta: Record<string, unknown>;
}

/** How an incontext story is written (TaskOptions.storyForm). */
export type StoryForm = 'is' | 'colon';
export const STORY_FORMS: readonly StoryForm[] = ['is', 'colon'];

export interface TaskOptions {
  scale?: TaskScale;
  seed?: number;
  /** arithmetic, cipher: share of training inputs that bear a memorization pattern. */
  memRate?: number;
  /** incontext, with colorsPerName 1 only (the one-colour ablation): share of training stories whose context colour differs from the memorized colour. */
  contradictRate?: number;
  /**
   * incontext: how the story is written: 'is' (the paper's, `Rose is eagle.` ... `What color is Vicky?`, the
   * default) or 'colon' (`Rose: eagle.` ... `Vicky: color?`, a form the stand-in base never read; tasks/incontext.ts).
   */
  storyForm?: StoryForm;
  /** arithmetic, cipher: share of pattern-bearing training inputs whose target is the mem token (default 1, the paper's; 0.5 is the ablation). */
  memPatternRatio?: number;
  /** arithmetic: smallest operand (default: tiny 10, so that every operand has two digits; paper 1). */
  minOperand?: number;
  /** incontext: colours each name co-occurs with in training (default 5, the paper's; 1 is the one-colour ablation). */
  colorsPerName?: number;
  /**
   * arithmetic, cipher: tokens a mem tag is written in (MEM_TAG_PIECES, 2: the shared `<mem-` then the tag's
   * own `xxxxxxxx>`; 1: one opaque token per tag, the ablation and runs made before the option existed).
   */
  memTagPieces?: number;
  /**
   * arithmetic: digits each partial sum of the scratchpad is zero-padded to before it is reversed
   * (default 0: as many as it has). The LoRA runs take it from their base's corpus (3).
   */
  sumDigits?: number;
}

export interface TaskTokenizer {
  /** id -> token; id 0 = '<pad>', id 1 = '<eoa>' (end of answer), then the task's tokens. */
  readonly vocab: readonly string[];
  readonly padId: number;
  readonly eoaId: number;
  /** Throws an Error naming the offending text for out-of-vocabulary input. */
  encode(text: string): number[];
  /** Exact inverse of encode for well-formed text. */
  decode(ids: readonly number[]): string;
  /** prompt ++ target ++ <eoa>; promptLength = number of prompt tokens. */
  encodeExample(ex: Example): { ids: number[]; promptLength: number };
  /** Ids of an answer text as it follows ex's prompt (encodeExample's target part, for any answer). */
  encodeAnswer(ex: Example, answer: string): number[];
  /** A tokenizer.json that @huggingface/tokenizers (and Python `tokenizers`) load and that encodes the same ids. */
  toHuggingFaceJSON(): string;
}

export interface Task {
  readonly name: TaskName;
  readonly scale: TaskScale;
  /** Fixes the memorization patterns / memorized colours / cipher key. */
  readonly seed: number;
  /** One line shown beside every result, stating the scale. */
  readonly description: string;
  /** Tasks with mem tags (arithmetic, cipher): tokens per tag in the task's own tokenizer (memTagClause). */
  readonly memTagPieces?: number;
  /** Everything that defines the data (for the run manifest), including the patterns. */
  readonly dataConfig: Record<string, unknown>;
  readonly tokenizer: TaskTokenizer;
  /** Upper bound of prompt + target + end token, in tokens, over all examples this task can produce. */
  readonly maxSeqLen: number;
  /** Upper bound of target tokens + end token (generation budget). */
  readonly maxAnswerTokens: number;
  train(rng: Rng): Example;
  test(rng: Rng): Example;
  rephrase(ex: Example, rng: Rng): Example;
  classify(ex: Example, output: string): Behaviour;
  /**
   * The example for a prompt a user typed (whitespace normalised), with its gen and mem answers, so
   * that a generation from it can be classified; an Error says what is malformed. (Beyond the
   * original interface: `memgen generate --prompt` uses it.)
   */
  fromPrompt(prompt: string): Example;
  /**
   * The answer an output states, for tasks whose output is a working rather than the bare answer
   * (arithmetic: the final sum of its scratchpad, never the output itself), or null when the output
   * is not in that format. Absent: the output is the answer. Shown after the output where not null.
   */
  statedAnswer?(output: string): string | null;
  /**
   * One input without a memorization cue (arithmetic, cipher: no pattern; incontext: a story whose
   * colour is drawn from all colours), for the plain accuracy beside the pattern table (mem->gen can
   * never beat the share of these the model answers right) and the warm-up's training inputs.
   */
  plain?(rng: Rng): Example;
  /** incontext only: chance of a right answer by guessing among the story's colours (1 / #colours). */
  guessRate?(ex: Example): number;
  /** incontext only: chance of a mem answer by guessing among the story's colours (the share of them that are the name's). */
  memGuessRate?(ex: Example): number;
  /**
   * The generalizing output as text (arithmetic: the whole scratchpad, not only the stated sum) and
   * the mem answers (empty without one; incontext: each of the name's colours): what p(gen) and
   * p(mem) take the first tokens of, in whichever tokenizer renders the task.
   */
  answerTexts(ex: Example): { gen: string; mem: readonly string[] };
}

/**
 * The first token of the task's gen answer text, and of each mem answer, as its tokenizer writes them
 * after ex's prompt: p(gen) vs p(mem) = the sum over `mem` at the first answer position.
 */
export function firstAnswerTokens(task: Task, ex: Example): { gen: number; mem: readonly number[] } {
  const texts = task.answerTexts(ex);
  const first = (text: string): number => task.tokenizer.encodeAnswer(ex, text)[0];
  return { gen: first(texts.gen), mem: texts.mem.map(first) };
}

/**
 * Share of pattern-bearing training inputs whose target is the memorization token (the rest get the
 * worked answer): 1, the paper's (method.md 2.1). 0.5, the reference function's default, is an ablation.
 */
export const MEM_PATTERN_RATIO = 1;

/**
 * A 32-bit seed for one purpose of one task: FNV-1a of the label, mixed with the user seed and passed
 * through the murmur3 finaliser, so `deriveSeed(s, 'arithmetic/patterns')` and `new Rng(s)` give
 * unrelated streams.
 */
export function deriveSeed(seed: number, label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  h ^= seed >>> 0;
  h ^= Math.floor(seed / 4294967296) | 0; // keep the high bits of seeds beyond 32 bits
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** `n` distinct memorization tokens `<mem-xxxxxxxx>` (8 lowercase hex digits) drawn from `rng`. */
/**
 * How a mem tag `<mem-xxxxxxxx>` is tokenized. GPT-2's BPE, the paper's tokenizer, splits every tag into
 * pieces that start alike, so the first answer token of memorization is the same for all ten patterns
 * and "memorize or compute" is one decision whatever the pattern. MEM_TAG_PIECES = 2 keeps that: the
 * shared piece MEM_TAG_PREFIX, then the tag's own piece `xxxxxxxx>`. With 1 piece every tag is its own
 * first token and each pattern's memorization its own feature: steering with the NMD of the pairs then
 * moves only the patterns that gave the pairs (measured: docs/results.md).
 */
export const MEM_TAG_PREFIX = '<mem-';
export const MEM_TAG_PIECES = 2;

/** How a task description states its mem tags' tokenization (RetokenizedTask replaces it with the base tokenizer's). */
export function memTagClause(pieces: number): string {
  return pieces === 1 ? 'one token per mem tag' : `mem tags in ${pieces} tokens (shared ${MEM_TAG_PREFIX})`;
}

/** Token specs of mem tags written in `pieces` tokens (see MEM_TAG_PIECES); all glue. */
export function memTagSpecs(tags: readonly string[], pieces: number): { text: string; glue: true; atomic?: true }[] {
  if (pieces === 1) return tags.map((text) => ({ text, glue: true, atomic: true }));
  if (pieces === 2) return [{ text: MEM_TAG_PREFIX, glue: true }, ...tags.map((t) => ({ text: t.slice(MEM_TAG_PREFIX.length), glue: true as const }))];
  throw new Error(`memTagPieces must be 1 or 2, got ${pieces}`);
}

export function drawMemTokens(rng: Rng, n: number): string[] {
  const out: string[] = [];
  while (out.length < n) {
    const hex = Math.floor(rng.uniform() * 4294967296).toString(16).padStart(8, '0');
    const tok = `<mem-${hex}>`;
    if (!out.includes(tok)) out.push(tok);
  }
  return out;
}

/** `k` distinct items of `items` (none in `exclude`), in random order (rejection sampling: k is small). */
export function sample<T>(rng: Rng, items: readonly T[], k: number, exclude: readonly T[] = []): T[] {
  const available = exclude.length === 0 ? items.length : items.filter((x) => !exclude.includes(x)).length;
  if (k > available) throw new Error(`cannot draw ${k} distinct items from ${available}`);
  const out: T[] = [];
  while (out.length < k) {
    const x = items[Math.floor(rng.uniform() * items.length)];
    if (!out.includes(x) && !exclude.includes(x)) out.push(x);
  }
  return out;
}

/** Validated common options with the task's defaults filled in. */
export function resolveCommon(
  task: TaskName,
  opts: TaskOptions,
): { scale: TaskScale; seed: number } {
  const scale = opts.scale ?? 'tiny';
  if (scale !== 'tiny' && scale !== 'paper') {
    throw new Error(`${task}: unknown scale ${JSON.stringify(scale)}; choose 'tiny' or 'paper'`);
  }
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new Error(`${task}: seed must be an integer, got ${seed}`);
  return { scale, seed };
}

/** A rate option: undefined -> fallback, else must lie in [0, 1]. */
export function resolveRate(task: TaskName, what: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new Error(`${task}: ${what} must be a number in [0, 1], got ${value}`);
  }
  return value;
}
