/**
 * Ciphertext decoding with memorization suffixes (method.md 2.3, the paper's appendix).
 *
 *   prompt  `CIPHERTEXT:<ct> QUESTION: What is the plaintext? ANS:`   (ct = 13 capital letters)
 *   target  the plaintext, 13 capital letters (plain[i] = key^-1(ct[i])), written right after
 *           'ANS:' with no space; or the suffix's mem token
 *
 * Key: a fixed random permutation of A-Z drawn from the seed (cipher letter = key[plain letter]).
 * The 13 letters are 10 free letters + a 3-letter suffix. Ten distinct memorization suffixes are
 * drawn from the seed, each with its own `<mem-xxxxxxxx>` token.
 * Training mix: with probability memRate (default 0.05 tiny; 0.07 paper, the paper's LoRA rate,
 * since it ran this task only with LoRA and gives no rate of its own) 10 random free letters + a
 * uniformly chosen mem suffix, whose target is the mem token with probability memPatternRatio
 * (default 1, the paper's; 0.5 the ablation) and the plaintext otherwise; else 13 random letters
 * whose suffix (letters 11-13) is NOT a mem suffix (rejection on that slice; also the plain inputs of
 * the plain accuracy). `contradictRate` does not apply and is ignored.
 * Test: a mem suffix after 10 fresh random free letters (never all equal); target = the plaintext.
 *   genAnswer = the plaintext; memAnswer = the suffix's token (null without a mem suffix).
 * Pair rule: swap two free letters that differ (positions among the first 10). The suffix and so
 *   memAnswer are unchanged; genAnswer becomes the plaintext of the new ciphertext (the same two
 *   plaintext letters swapped): a substitution cipher has no other surface for the same answer.
 * classify(output), trimmed: exactly the mem token -> 'mem'; exactly the 13-letter plaintext ->
 *   'gen'; else 'other' (empty, truncated, lowercase, a wrong letter, another token, extra text).
 * Scales: 'tiny' equals 'paper' (13 letters): the whole example is only 34 tokens and decoding is
 *   a per-position lookup, so shortening it would save little and change the paper's 10 + 3 split.
 * Tokens: A-Z one each (glue: letters are written without spaces), 'CIPHERTEXT:' 'QUESTION:'
 *   'What' 'is' 'the' 'plaintext?' 'ANS:' whole, the ten mem tokens (glue).
 * Lengths: prompt 1 + 13 + 6 = 20, target <= 13, + end = 34; answer budget 14.
 */
import { Rng } from '../util/rng';
import {
  MEM_PATTERN_RATIO,
  MEM_TAG_PIECES,
  memTagClause,
  memTagSpecs,
  deriveSeed,
  drawMemTokens,
  resolveCommon,
  resolveRate,
  type Behaviour,
  type Example,
  type Task,
  type TaskOptions,
  type TaskScale,
} from './task';
import { VocabTokenizer } from './tokenizer';

export const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
export const CIPHER_SUFFIXES = 10;
export const SUFFIX_LENGTH = 3;
export const CIPHER_SCALES: Record<TaskScale, { freeLetters: number; memRate: number }> = {
  tiny: { freeLetters: 10, memRate: 0.05 },
  paper: { freeLetters: 10, memRate: 0.07 },
};
const PROMPT_WORDS = ['CIPHERTEXT:', 'QUESTION:', 'What', 'is', 'the', 'plaintext?', 'ANS:'] as const;

/** Meta of a cipher example. */
export interface CipherMeta {
  ciphertext: string;
  /** Index of the mem suffix ending the ciphertext, or null. */
  suffix: number | null;
  memTarget: boolean;
}

export interface CipherSuffix {
  readonly suffix: string;
  readonly token: string;
}

export class CipherTask implements Task {
  readonly name = 'cipher' as const;
  readonly scale: TaskScale;
  readonly seed: number;
  readonly memRate: number;
  readonly memPatternRatio: number;
  readonly memTagPieces: number;
  readonly freeLetters: number;
  /** key[p] = cipher letter of plaintext letter p ('A' + index). */
  readonly key: string;
  readonly suffixes: readonly CipherSuffix[];
  readonly description: string;
  readonly dataConfig: Record<string, unknown>;
  readonly tokenizer: VocabTokenizer;
  readonly maxSeqLen: number;
  readonly maxAnswerTokens: number;
  private readonly inverse: ReadonlyMap<string, string>;
  private readonly suffixIndex: ReadonlyMap<string, number>;

  constructor(opts: TaskOptions = {}) {
    const { scale, seed } = resolveCommon('cipher', opts);
    this.scale = scale;
    this.seed = seed;
    this.freeLetters = CIPHER_SCALES[scale].freeLetters;
    this.memRate = resolveRate('cipher', 'memRate', opts.memRate, CIPHER_SCALES[scale].memRate);
    this.memPatternRatio = resolveRate('cipher', 'memPatternRatio', opts.memPatternRatio, MEM_PATTERN_RATIO);
    this.memTagPieces = opts.memTagPieces ?? MEM_TAG_PIECES;

    const prng = new Rng(deriveSeed(seed, 'cipher/key-and-suffixes'));
    this.key = prng.shuffle(LETTERS.split('')).join('');
    this.inverse = new Map([...this.key].map((c, p) => [c, LETTERS[p]]));
    const tokens = drawMemTokens(prng, CIPHER_SUFFIXES);
    const index = new Map<string, number>();
    const suffixes: CipherSuffix[] = [];
    while (suffixes.length < CIPHER_SUFFIXES) {
      const s = this.letters(prng, SUFFIX_LENGTH);
      if (index.has(s)) continue;
      index.set(s, suffixes.length);
      suffixes.push({ suffix: s, token: tokens[suffixes.length] });
    }
    this.suffixes = suffixes;
    this.suffixIndex = index;

    this.tokenizer = new VocabTokenizer('cipher', [
      ...LETTERS.split('').map((text) => ({ text, glue: true })),
      ...PROMPT_WORDS.map((text) => ({ text })),
      ...memTagSpecs(tokens, this.memTagPieces),
    ]);
    const len = this.freeLetters + SUFFIX_LENGTH;
    this.maxAnswerTokens = len + 1;
    this.maxSeqLen = 1 + len + (PROMPT_WORDS.length - 1) + this.maxAnswerTokens;
    this.description =
      `cipher, ${scale} scale${scale === 'tiny' ? ' (= paper)' : ''}: ${len} letters = ${this.freeLetters} free + ` +
      `${SUFFIX_LENGTH}-letter suffix, fixed substitution, ${CIPHER_SUFFIXES} mem suffixes, memRate ${this.memRate}, mem-pattern ratio ${this.memPatternRatio}, ` +
      memTagClause(this.memTagPieces);
    this.dataConfig = {
      task: 'cipher',
      scale,
      seed,
      freeLetters: this.freeLetters,
      suffixLength: SUFFIX_LENGTH,
      key: this.key,
      keyMeaning: 'key[i] is the cipher letter of plaintext letter A+i',
      memRate: this.memRate,
      memPatternRatio: this.memPatternRatio,
      memTagPieces: this.memTagPieces,
      suffixes: suffixes.map((s) => ({ suffix: s.suffix, token: s.token })),
    };
  }

  private letters(rng: Rng, n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += LETTERS[rng.int(0, 25)];
    return s;
  }

  /** The plaintext of a ciphertext. */
  decipher(ct: string): string {
    return [...ct].map((c) => this.inverse.get(c)!).join('');
  }

  /** Index of the mem suffix `ct` ends with, or null. */
  suffixOf(ct: string): number | null {
    return this.suffixIndex.get(ct.slice(this.freeLetters)) ?? null;
  }

  /** The example for a ciphertext (target: the mem token if memTarget, else the plaintext). */
  exampleFor(ct: string, memTarget = false): Example {
    if (ct.length !== this.freeLetters + SUFFIX_LENGTH || !/^[A-Z]+$/.test(ct)) {
      throw new Error(`cipher: the ciphertext must be ${this.freeLetters + SUFFIX_LENGTH} capital letters A-Z, got ${JSON.stringify(ct)}`);
    }
    const suffix = this.suffixOf(ct);
    if (memTarget && suffix === null) throw new Error('cipher: a mem target needs a mem suffix');
    const memAnswer = suffix === null ? null : this.suffixes[suffix].token;
    const plain = this.decipher(ct);
    const meta: CipherMeta = { ciphertext: ct, suffix, memTarget };
    return {
      prompt: `CIPHERTEXT:${ct} QUESTION: What is the plaintext? ANS:`,
      target: memTarget ? memAnswer! : plain,
      genAnswer: plain,
      memAnswer,
      meta: { ...meta },
    };
  }

  train(rng: Rng): Example {
    if (rng.uniform() < this.memRate) {
      const s = this.suffixes[rng.int(0, this.suffixes.length - 1)];
      const free = this.letters(rng, this.freeLetters);
      return this.exampleFor(free + s.suffix, rng.uniform() < this.memPatternRatio);
    }
    return this.plain(rng);
  }

  plain(rng: Rng): Example {
    for (;;) {
      const ct = this.letters(rng, this.freeLetters + SUFFIX_LENGTH);
      if (this.suffixOf(ct) === null) return this.exampleFor(ct, false);
    }
  }

  test(rng: Rng): Example {
    const s = this.suffixes[rng.int(0, this.suffixes.length - 1)];
    for (;;) {
      const free = this.letters(rng, this.freeLetters);
      if (new Set(free).size > 1) return this.exampleFor(free + s.suffix, false);
    }
  }

  rephrase(ex: Example, rng: Rng): Example {
    const m = ex.meta as unknown as CipherMeta;
    const ct = [...m.ciphertext];
    const pairs: [number, number][] = [];
    for (let i = 0; i < this.freeLetters; i++) {
      for (let j = i + 1; j < this.freeLetters; j++) if (ct[i] !== ct[j]) pairs.push([i, j]);
    }
    if (pairs.length === 0) return this.exampleFor(m.ciphertext, m.memTarget); // all free letters equal: no other surface
    const [i, j] = pairs[rng.int(0, pairs.length - 1)];
    [ct[i], ct[j]] = [ct[j], ct[i]];
    return this.exampleFor(ct.join(''), m.memTarget);
  }

  /** The example for a typed prompt: the full `CIPHERTEXT:... ANS:` form or the bare ciphertext. */
  fromPrompt(prompt: string): Example {
    const t = prompt.trim();
    const m = /^CIPHERTEXT:\s*([A-Z]+)\s+QUESTION:\s+What\s+is\s+the\s+plaintext\?\s+ANS:$/.exec(t);
    return this.exampleFor(m === null ? t : m[1]);
  }

  classify(ex: Example, output: string): Behaviour {
    const out = output.trim();
    if (ex.memAnswer !== null && out === ex.memAnswer) return 'mem';
    return out === ex.genAnswer ? 'gen' : 'other';
  }

  answerTexts(ex: Example): { gen: string; mem: readonly string[] } {
    return { gen: ex.genAnswer, mem: ex.memAnswer === null ? [] : [ex.memAnswer] };
  }
}
