/**
 * In-context colour inference, bAbI induction style (method.md 2.2).
 *
 *   prompt  shuffled statements `X is <role>.` / `X is <colour>.`, then `What color is T?`
 *           e.g. `Rose is eagle. Oscar is navy. Vicky is eagle. Rose is crimson. Oscar is elephant.
 *           What color is Vicky?`   (target `crimson`)
 *   target  one colour word
 *
 * Story with n names (scale 'paper': n in 4..8, the paper's; 'tiny': n in 3..5):
 *   T (target) and S (source) share a role R; S's colour C_S is stated, T's colour is not;
 *   the n-2 distractors each state their own role and their own colour. All n-1 roles are distinct
 *   (so S is the ONLY name sharing T's role) and all n-1 stated colours are distinct.
 *   Statements: T-role, S-role, S-colour and both of each distractor = 2n - 1, in random order.
 * Every name has one memorized colour drawn once from the seed (M_T for T).
 *   genAnswer = C_S (what the context implies);   memAnswer = M_T.
 *   Training: with probability 1 - contradictRate (default 0.1) C_S = M_T (both readings agree),
 *   else C_S != M_T and the answer is still the context colour C_S. Without contradicting stories a
 *   small model only memorizes (learnability.md).
 *   Test: C_S != M_T always.
 *   M_T never appears in the story except as C_S in an agreeing training story: distractor colours
 *   always avoid it. So in a test story the memorized colour is absent, and "answer some colour
 *   from the story" can never hit the mem answer by chance.
 *   meta.colours = the colours stated in the story; guessRate = 1 / their number (n - 1): the
 *   score of that shortcut, to set beside gen%.
 * Pair rule: reshuffle the statement order, always to a different order (there are >= 5 statements).
 * classify(output), trimmed: exactly C_S -> 'gen' (checked first: in agreeing stories C_S = M_T);
 *   exactly M_T -> 'mem'; else 'other' (empty, a different colour, a story colour that is not the
 *   answer, any extra word or punctuation). Case-sensitive.
 * `memRate` does not apply and is ignored.
 * Tokens: 26 names, 40 roles, 24 colours, 'What' 'color' 'is' and '.', '?' (which glue to the word
 * before them). Lengths: 4 tokens per statement + 5 for the question, so prompt <= 8n - 4 + 5;
 * with target and end: tiny <= 43, paper <= 67 (paper prompts average about 44).
 */
import { Rng } from '../util/rng';
import {
  deriveSeed,
  resolveCommon,
  resolveRate,
  sample,
  type Behaviour,
  type Example,
  type Task,
  type TaskOptions,
  type TaskScale,
} from './task';
import { VocabTokenizer } from './tokenizer';

export const NAMES: readonly string[] = [
  'Alice', 'Bob', 'Carol', 'Diana', 'Ethan', 'Fiona', 'George', 'Hannah', 'Ivan', 'Julia',
  'Kevin', 'Laura', 'Mason', 'Nora', 'Oscar', 'Paula', 'Quinn', 'Rose', 'Simon', 'Tina',
  'Uma', 'Victor', 'Wendy', 'Xavier', 'Yvonne', 'Zack',
];
export const ROLES: readonly string[] = [
  'wolf', 'eagle', 'elephant', 'tiger', 'lion', 'bear', 'fox', 'deer', 'rabbit', 'horse',
  'sheep', 'goat', 'cow', 'pig', 'dog', 'cat', 'mouse', 'rat', 'owl', 'hawk',
  'swan', 'duck', 'goose', 'frog', 'snake', 'lizard', 'turtle', 'shark', 'whale', 'dolphin',
  'seal', 'otter', 'beaver', 'badger', 'camel', 'zebra', 'giraffe', 'monkey', 'panda', 'koala',
];
export const COLOURS: readonly string[] = [
  'red', 'blue', 'green', 'yellow', 'orange', 'purple', 'pink', 'brown', 'black', 'white',
  'gray', 'crimson', 'navy', 'gold', 'indigo', 'silver', 'violet', 'teal', 'maroon', 'olive',
  'beige', 'cyan', 'magenta', 'ivory',
];
const FIXED_WORDS = ['What', 'color', 'is'] as const;

export const INCONTEXT_SCALES: Record<TaskScale, { minNames: number; maxNames: number }> = {
  tiny: { minNames: 3, maxNames: 5 },
  paper: { minNames: 4, maxNames: 8 },
};
export const DEFAULT_CONTRADICT_RATE = 0.1;

/** Meta of an incontext example. */
export interface IncontextMeta {
  target: string;
  source: string;
  role: string;
  /** Names in the story, target first, then source, then the distractors. */
  names: string[];
  /** The statements in prompt order. */
  statements: string[];
  /** Colours stated in the story (distinct). */
  colours: string[];
  /** Whether the context colour differs from the target's memorized colour. */
  contradict: boolean;
}

export class IncontextTask implements Task {
  readonly name = 'incontext' as const;
  readonly scale: TaskScale;
  readonly seed: number;
  readonly contradictRate: number;
  readonly minNames: number;
  readonly maxNames: number;
  /** Each name's memorized colour. */
  readonly memColour: Readonly<Record<string, string>>;
  readonly description: string;
  readonly dataConfig: Record<string, unknown>;
  readonly tokenizer: VocabTokenizer;
  readonly maxSeqLen: number;
  readonly maxAnswerTokens = 2;

  constructor(opts: TaskOptions = {}) {
    const { scale, seed } = resolveCommon('incontext', opts);
    this.scale = scale;
    this.seed = seed;
    this.contradictRate = resolveRate('incontext', 'contradictRate', opts.contradictRate, DEFAULT_CONTRADICT_RATE);
    ({ minNames: this.minNames, maxNames: this.maxNames } = INCONTEXT_SCALES[scale]);

    const prng = new Rng(deriveSeed(seed, 'incontext/memorized-colours'));
    const memColour: Record<string, string> = {};
    for (const n of NAMES) memColour[n] = COLOURS[prng.int(0, COLOURS.length - 1)];
    this.memColour = memColour;

    this.tokenizer = new VocabTokenizer('incontext', [
      ...[...NAMES, ...ROLES, ...COLOURS, ...FIXED_WORDS].map((text) => ({ text })),
      { text: '.', glue: true },
      { text: '?', glue: true },
    ]);
    const statements = 2 * this.maxNames - 1;
    this.maxSeqLen = 4 * statements + 5 + this.maxAnswerTokens;
    this.description =
      `incontext, ${scale} scale: stories of ${this.minNames}-${this.maxNames} names, ` +
      `${NAMES.length} names / ${ROLES.length} roles / ${COLOURS.length} colours, contradictRate ${this.contradictRate}`;
    this.dataConfig = {
      task: 'incontext',
      scale,
      seed,
      namesPerStory: [this.minNames, this.maxNames],
      contradictRate: this.contradictRate,
      names: [...NAMES],
      roles: [...ROLES],
      colours: [...COLOURS],
      memorizedColours: { ...memColour },
      story: 'T and S share a role, S colour stated, T colour not; distractors state own role and colour; roles and colours distinct; T memorized colour absent except as agreeing S colour',
    };
  }

  private story(rng: Rng, contradict: boolean): Example {
    const n = rng.int(this.minNames, this.maxNames);
    const names = sample(rng, NAMES, n);
    const [T, S] = names;
    const distractors = names.slice(2);
    const mem = this.memColour[T];
    const sourceColour = contradict ? sample(rng, COLOURS, 1, [mem])[0] : mem;
    const roles = sample(rng, ROLES, n - 1);
    const others = sample(rng, COLOURS, n - 2, [mem, sourceColour]);
    const statements = [`${T} is ${roles[0]}.`, `${S} is ${roles[0]}.`, `${S} is ${sourceColour}.`];
    distractors.forEach((d, i) => statements.push(`${d} is ${roles[i + 1]}.`, `${d} is ${others[i]}.`));
    rng.shuffle(statements);
    const meta: IncontextMeta = {
      target: T,
      source: S,
      role: roles[0],
      names,
      statements,
      colours: [sourceColour, ...others],
      contradict,
    };
    return this.withStatements(meta, statements, sourceColour);
  }

  private withStatements(meta: IncontextMeta, statements: string[], sourceColour: string): Example {
    return {
      prompt: `${statements.join(' ')} What color is ${meta.target}?`,
      target: sourceColour,
      genAnswer: sourceColour,
      memAnswer: this.memColour[meta.target],
      meta: { ...meta, statements: [...statements], names: [...meta.names], colours: [...meta.colours] },
    };
  }

  train(rng: Rng): Example {
    return this.story(rng, rng.uniform() < this.contradictRate);
  }

  test(rng: Rng): Example {
    return this.story(rng, true);
  }

  rephrase(ex: Example, rng: Rng): Example {
    const meta = ex.meta as unknown as IncontextMeta;
    const before = meta.statements;
    const order = [...before];
    for (let tries = 0; tries < 8 && order.every((s, i) => s === before[i]); tries++) rng.shuffle(order);
    if (order.every((s, i) => s === before[i]) && order.length > 1) [order[0], order[1]] = [order[1], order[0]];
    return this.withStatements(meta, order, ex.genAnswer);
  }

  /**
   * The example for a typed story `X is Y. ... What color is T?` (whitespace normalised). T must
   * have a stated role shared by exactly one other name with a stated colour, and no colour of its
   * own; an Error says what is wrong otherwise.
   */
  fromPrompt(prompt: string): Example {
    const text = prompt.trim().replace(/\s+/g, ' ');
    const fail = (why: string): never => {
      throw new Error(`incontext: ${why} in ${JSON.stringify(prompt)}; expected "X is <role>. X is <colour>. ... What color is T?"`);
    };
    const q = /(?:^| )What color is ([A-Za-z]+)\?$/.exec(text);
    if (q === null) return fail('no closing question "What color is T?"');
    const T = q[1];
    const body = text.slice(0, q.index).trim();
    const statements = body === '' ? [] : body.split(/(?<=\.) /);
    const role = new Map<string, string>();
    const colour = new Map<string, string>();
    const names: string[] = [];
    for (const st of statements) {
      const m = /^([A-Za-z]+) is ([a-z]+)\.$/.exec(st);
      if (m === null) return fail(`cannot read the statement ${JSON.stringify(st)}`);
      const [, who, what] = m;
      if (!NAMES.includes(who)) return fail(`unknown name ${JSON.stringify(who)}`);
      if (!names.includes(who)) names.push(who);
      if (ROLES.includes(what)) role.set(who, what);
      else if (COLOURS.includes(what)) colour.set(who, what);
      else return fail(`${JSON.stringify(what)} is neither a role nor a colour`);
    }
    if (!NAMES.includes(T)) return fail(`unknown name ${JSON.stringify(T)}`);
    const R = role.get(T);
    if (R === undefined) return fail(`no role is stated for ${T}`);
    if (colour.has(T)) return fail(`the story states ${T}'s own colour`);
    const sources = names.filter((n) => n !== T && role.get(n) === R && colour.has(n));
    if (sources.length !== 1) return fail(`${sources.length} names share ${T}'s role and state a colour (need exactly 1)`);
    const S = sources[0];
    const sourceColour = colour.get(S)!;
    const meta: IncontextMeta = {
      target: T,
      source: S,
      role: R,
      names: [T, S, ...names.filter((n) => n !== T && n !== S)],
      statements,
      colours: [...new Set(colour.values())],
      contradict: sourceColour !== this.memColour[T],
    };
    return this.withStatements(meta, statements, sourceColour);
  }

  classify(ex: Example, output: string): Behaviour {
    const out = output.trim();
    if (out === ex.genAnswer) return 'gen';
    if (ex.memAnswer !== null && out === ex.memAnswer) return 'mem';
    return 'other';
  }

  guessRate(ex: Example): number {
    return 1 / (ex.meta as unknown as IncontextMeta).colours.length;
  }

  firstAnswerTokens(ex: Example): { gen: number; mem: number | null } {
    return {
      gen: this.tokenizer.id(ex.genAnswer),
      mem: ex.memAnswer === null ? null : this.tokenizer.id(ex.memAnswer),
    };
  }
}
