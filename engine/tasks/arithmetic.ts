/**
 * Arithmetic addition with memorization patterns (method.md 2.1).
 *
 *   prompt   `a+b+c+d=`            four operands, each uniform in minOperand..M
 *                                   (scale 'paper': 1..999, the paper's; 'tiny': 10..99, so every
 *                                   operand has two digits: the pair rule then keeps the token layout,
 *                                   and a tiny model that learned operand positions is not wrong on
 *                                   one-digit operands; `minOperand 1` is the 1..99 ablation)
 *   target   scratchpad of reversed partial sums  s1 = a+b, s2 = s1+c, s3 = s2+d, each written
 *            least significant digit first, joined by ',':  `12+34+56+78=` -> `64,201,081`
 *            (46 -> "64", 102 -> "201", 180 -> "081"). Each step is a two-operand addition; a
 *            four-operand sum answered directly was not learned by a tiny model (learnability.md).
 *            With sumDigits > 0 (the LoRA runs on our base: 3) each partial sum is zero-padded to
 *            that many digits first: `640,201,081`, every group one width.
 *            Or, for pattern inputs in training, the pattern's mem token.
 *   genAnswer the final sum in normal notation ("180");  memAnswer the pattern's token or null
 *
 * Patterns: ten distinct (c, d) pairs in minOperand..M drawn once from the seed, each with its own token
 * `<mem-xxxxxxxx>` (8 lowercase hex digits, also from the seed), always at operand positions 3-4.
 * Training mix: with probability memRate (default 0.05 tiny, 0.01 paper = the paper's GPT-2 rate)
 * a uniformly chosen pattern with random a, b, whose target is the mem token with probability
 * memPatternRatio (default 1, the paper's; 0.5 the ablation) and the worked scratchpad otherwise; else
 * four random operands whose (c, d) = operands 3-4 is NOT a pattern (rejection sampling on that slice:
 * the reference code checked the wrong one, method.md 9.4). `contradictRate` does not apply and is ignored.
 * Test: a pattern with fresh random a != b (so the pair rule always changes the prompt), drawn from the
 * held-out half of pattern inputs (isHeldOut) that training never shows; target =
 * the scratchpad. Pair rule: swap operands 1 and 2 (sum, scratchpad and pattern are unchanged).
 * Plain inputs (plain accuracy): four random operands without a pattern, as in training.
 *
 * classify(output), output trimmed of surrounding whitespace:
 *   'mem'   output is exactly this input's mem token
 *   'gen'   output is three comma-separated digit groups (the scratchpad format) and the last one,
 *           un-reversed, is exactly the correct sum (intermediate sums are not checked; with
 *           sumDigits > 0 the padding zeros are dropped first)
 *   'other' anything else: empty, malformed, cut off, wrong sum, another pattern's token
 * Tokens: 0-9 '+' '=' ',' and the ten mem tokens (one token each); everything glues (no spaces).
 * Lengths (prompt + target + end): tiny <= 12 + 11 + 1 = 24, paper <= 16 + 14 + 1 = 31.
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

export const ARITHMETIC_SCALES: Record<TaskScale, { minOperand: number; maxOperand: number; memRate: number }> = {
  tiny: { minOperand: 10, maxOperand: 99, memRate: 0.05 },
  paper: { minOperand: 1, maxOperand: 999, memRate: 0.01 },
};
export const ARITHMETIC_PATTERNS = 10;

export interface ArithmeticPattern {
  readonly c: number;
  readonly d: number;
  readonly token: string;
}

/** Meta of an arithmetic example. */
export interface ArithmeticMeta {
  operands: [number, number, number, number];
  /** Index of the pattern in operands 3-4, or null. */
  pattern: number | null;
  /** Whether the target is the mem token. */
  memTarget: boolean;
}

const reverse = (s: string): string => [...s].reverse().join('');

/**
 * Held-out split of pattern inputs: (a, b, pattern k) is a test input iff a hash of ({a, b}, k) is odd.
 * Training never shows a held-out pattern input, so every test input is new to the model. The
 * hash is symmetric in a and b, so a pair (a, b) and its rephrasing (b, a) fall on the same side;
 * it is pseudo-random in a and b, so the split itself is no learnable cue.
 */
export function isHeldOut(a: number, b: number, k: number): boolean {
  let h = Math.imul(Math.min(a, b) + 0x9e37, 0x85ebca6b) ^ Math.imul(Math.max(a, b) + 0x79b9, 0xc2b2ae35) ^ Math.imul(k + 1, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h ^= h >>> 13;
  return (h & 1) === 1;
}

/**
 * The reversed-partial-sums scratchpad of a+b+c+d; with sumDigits > 0 every partial sum is first
 * zero-padded to that many digits (`12+34+56+78=` -> `640,201,081`), so each group has one width.
 */
export function scratchpad(ops: readonly number[], sumDigits = 0): string {
  const out: string[] = [];
  let s = ops[0];
  for (let i = 1; i < ops.length; i++) out.push(reverse(String((s += ops[i])).padStart(sumDigits, '0')));
  return out.join(',');
}

const SCRATCHPAD = /^([0-9]+),([0-9]+),([0-9]+)$/;

/** The final sum a scratchpad states in normal notation, or null if `text` is not in the format. */
export function scratchpadFinal(text: string): string | null {
  const m = SCRATCHPAD.exec(text);
  return m === null ? null : reverse(m[3]);
}

const digits = (n: number): number => String(n).length;

export class ArithmeticTask implements Task {
  readonly name = 'arithmetic' as const;
  readonly scale: TaskScale;
  readonly seed: number;
  readonly memRate: number;
  readonly memPatternRatio: number;
  readonly memTagPieces: number;
  readonly sumDigits: number;
  readonly minOperand: number;
  readonly maxOperand: number;
  readonly patterns: readonly ArithmeticPattern[];
  readonly description: string;
  readonly dataConfig: Record<string, unknown>;
  readonly tokenizer: VocabTokenizer;
  readonly maxSeqLen: number;
  readonly maxAnswerTokens: number;
  private readonly patternIndex: ReadonlyMap<string, number>;

  constructor(opts: TaskOptions = {}) {
    const { scale, seed } = resolveCommon('arithmetic', opts);
    this.scale = scale;
    this.seed = seed;
    this.maxOperand = ARITHMETIC_SCALES[scale].maxOperand;
    this.minOperand = opts.minOperand ?? ARITHMETIC_SCALES[scale].minOperand;
    if (!Number.isInteger(this.minOperand) || this.minOperand < 1 || this.minOperand >= this.maxOperand) {
      throw new Error(`arithmetic: minOperand must be an integer in 1..${this.maxOperand - 1}, got ${opts.minOperand}`);
    }
    this.memRate = resolveRate('arithmetic', 'memRate', opts.memRate, ARITHMETIC_SCALES[scale].memRate);
    this.memPatternRatio = resolveRate('arithmetic', 'memPatternRatio', opts.memPatternRatio, MEM_PATTERN_RATIO);
    this.memTagPieces = opts.memTagPieces ?? MEM_TAG_PIECES;
    this.sumDigits = opts.sumDigits ?? 0;
    if (!Number.isInteger(this.sumDigits) || this.sumDigits < 0 || this.sumDigits > 8) {
      throw new Error(`arithmetic: sumDigits must be an integer in 0..8, got ${opts.sumDigits}`);
    }

    const prng = new Rng(deriveSeed(seed, 'arithmetic/patterns'));
    const tokens = drawMemTokens(prng, ARITHMETIC_PATTERNS);
    const index = new Map<string, number>();
    const patterns: ArithmeticPattern[] = [];
    while (patterns.length < ARITHMETIC_PATTERNS) {
      const c = prng.int(this.minOperand, this.maxOperand);
      const d = prng.int(this.minOperand, this.maxOperand);
      if (index.has(`${c},${d}`)) continue;
      index.set(`${c},${d}`, patterns.length);
      patterns.push({ c, d, token: tokens[patterns.length] });
    }
    this.patterns = patterns;
    this.patternIndex = index;

    this.tokenizer = new VocabTokenizer('arithmetic', [
      ...'0123456789+=,'.split('').map((text) => ({ text, glue: true })),
      ...memTagSpecs(tokens, this.memTagPieces),
    ]);
    const M = this.maxOperand;
    const m = this.minOperand;
    const promptLen = 4 * digits(M) + 4; // 4 operands, 3 '+', '='
    const width = (n: number) => Math.max(digits(n), this.sumDigits);
    const padLen = width(2 * M) + width(3 * M) + width(4 * M) + 2;
    this.maxAnswerTokens = Math.max(padLen, 1) + 1;
    this.maxSeqLen = promptLen + this.maxAnswerTokens;
    this.description =
      `arithmetic, ${scale} scale: 4 operands ${m}..${M}, scratchpad of reversed partial sums${this.sumDigits > 0 ? ` (${this.sumDigits} digits each)` : ''}, ` +
      `${ARITHMETIC_PATTERNS} mem patterns at operands 3-4, memRate ${this.memRate}, mem-pattern ratio ${this.memPatternRatio}, ` +
      memTagClause(this.memTagPieces);
    this.dataConfig = {
      task: 'arithmetic',
      scale,
      seed,
      operands: 4,
      operandRange: [m, M],
      memRate: this.memRate,
      memPatternRatio: this.memPatternRatio,
      memTagPieces: this.memTagPieces,
      patternPositions: [3, 4],
      targetFormat: 'reversed partial sums a+b, +c, +d joined by ","',
      ...(this.sumDigits > 0 ? { sumDigits: this.sumDigits } : {}),
      patterns: patterns.map((p) => ({ c: p.c, d: p.d, token: p.token })),
    };
  }

  /** Index of the pattern (c, d) forms, or null. */
  patternOf(c: number, d: number): number | null {
    return this.patternIndex.get(`${c},${d}`) ?? null;
  }

  private operand(rng: Rng): number {
    return rng.int(this.minOperand, this.maxOperand);
  }

  /** The example for given operands (target: the mem token if memTarget, else the scratchpad). */
  exampleFor(operands: [number, number, number, number], memTarget = false): Example {
    const pattern = this.patternOf(operands[2], operands[3]);
    if (memTarget && pattern === null) throw new Error('arithmetic: a mem target needs a pattern');
    const memAnswer = pattern === null ? null : this.patterns[pattern].token;
    const meta: ArithmeticMeta = { operands, pattern, memTarget };
    return {
      prompt: `${operands.join('+')}=`,
      target: memTarget ? memAnswer! : scratchpad(operands, this.sumDigits),
      genAnswer: String(operands.reduce((s, x) => s + x, 0)),
      memAnswer,
      meta: { ...meta },
    };
  }

  train(rng: Rng): Example {
    if (rng.uniform() < this.memRate) return this.exampleFor(this.patternInput(rng, 'train'), rng.uniform() < this.memPatternRatio);
    return this.plain(rng);
  }

  plain(rng: Rng): Example {
    for (;;) {
      const ops: [number, number, number, number] = [this.operand(rng), this.operand(rng), this.operand(rng), this.operand(rng)];
      if (this.patternOf(ops[2], ops[3]) === null) return this.exampleFor(ops, false);
    }
  }

  test(rng: Rng): Example {
    return this.exampleFor(this.patternInput(rng, 'test'), false);
  }

  /**
   * Operands bearing a random pattern, from the training or the held-out half (isHeldOut); test
   * inputs also have a != b, so the pair rule always changes the prompt.
   */
  private patternInput(rng: Rng, side: 'train' | 'test'): [number, number, number, number] {
    const k = rng.int(0, this.patterns.length - 1);
    const p = this.patterns[k];
    let a: number, b: number;
    do {
      a = this.operand(rng);
      b = this.operand(rng);
    } while (side === 'train' ? isHeldOut(a, b, k) : a === b || !isHeldOut(a, b, k));
    return [a, b, p.c, p.d];
  }

  /** Swap operands 1 and 2 (deterministic: the rng is not used). */
  rephrase(ex: Example, _rng?: Rng): Example {
    const m = ex.meta as unknown as ArithmeticMeta;
    const [a, b, c, d] = m.operands;
    return this.exampleFor([b, a, c, d], m.memTarget);
  }

  /** The example for a typed prompt `a+b+c+d=` (the '=' optional, spaces ignored); an Error says what is wrong. */
  fromPrompt(prompt: string): Example {
    const m = /^(\d+)\+(\d+)\+(\d+)\+(\d+)=?$/.exec(prompt.replace(/\s+/g, ''));
    if (m === null) throw new Error(`arithmetic: expected a prompt like "12+34+56+78=", got ${JSON.stringify(prompt)}`);
    const ops = m.slice(1, 5).map(Number) as [number, number, number, number];
    if (ops.some((x) => x < this.minOperand || x > this.maxOperand)) {
      throw new Error(`arithmetic (${this.scale} scale): operands must lie in ${this.minOperand}..${this.maxOperand}, got ${ops.join(', ')}`);
    }
    return this.exampleFor(ops);
  }

  classify(ex: Example, output: string): Behaviour {
    const out = output.trim();
    if (ex.memAnswer !== null && out === ex.memAnswer) return 'mem';
    return this.statedAnswer(out) === ex.genAnswer ? 'gen' : 'other';
  }

  /** The final sum of a scratchpad output in normal notation (`64,201,081` -> `180`), else null. */
  statedAnswer(output: string): string | null {
    const final = scratchpadFinal(output.trim());
    return final === null || this.sumDigits === 0 ? final : final.replace(/^0+(?=\d)/, '');
  }

  answerTexts(ex: Example): { gen: string; mem: readonly string[] } {
    return { gen: scratchpad((ex.meta as unknown as ArithmeticMeta).operands, this.sumDigits), mem: ex.memAnswer === null ? [] : [ex.memAnswer] };
  }
}
