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
 * Each name co-occurs with colorsPerName colours (K, default 5, the paper's appendix), drawn once from
 * the seed: colours(T). genAnswer = C_S (what the context implies) always.
 *   Training: C_S is drawn uniformly from colours(T), so the context decides every answer while the
 *   prior narrows to K colours; with probability contradictRate (default 0 for K > 1) C_S lies
 *   outside colours(T) instead. Distractor colours are drawn from all colours but C_S (the
 *   reference's rule), so "answer the story colour that is one of T's K" is no sure shortcut: its
 *   expected training score (1 / the number of story colours in colours(T)) is measured at
 *   construction on 2,000 training stories and recorded as `shortcutScore`.
 *   Test: C_S lies outside colours(T).
 *   Plain (no prior; the warm-up's stories and the plain accuracy): C_S uniform over all colours, so
 *   only the context decides and the name's colours carry nothing. A tiny-scale curriculum (the first
 *   `memWarmup` steps, as arithmetic's plain sums): the two-hop rule is learned before the prior.
 *   memAnswer = colours(T) joined by ' / ' (shown; classify reads meta.memColours).
 * Story forms (storyForm): 'is' (the paper's, above) or 'colon': the same story and question written
 *   `Rose: eagle. Oscar: navy. ... Vicky: color?`. The stand-in LLaMA base was pretrained on the 'is'
 *   form, so an adapter on it has nothing to learn there (it reads the stories from the first step);
 *   LLaMA-3.2 never read this task, and the colon form puts the adapters where it stood
 *   (docs/llama.md "A story form the base never read"). meta.statements keep the 'is' form; fromPrompt
 *   reads either form and writes the task's.
 * The one-colour ablation (K = 1: today's earlier task, `--colours-per-name 1 --contradict-rate R`,
 *   default R 0.1): each name has one memorized colour M_T; training C_S = M_T with probability 1 - R,
 *   else C_S != M_T; distractor colours avoid M_T, so a test story never states it.
 *   meta.colours = the colours stated in the story; guessRate = 1 / their number (n - 1): the
 *   score of guessing among them, to set beside gen%; memGuessRate = the share of them that are
 *   colours(T): mem% of the same guess (with K = 5 a test story often states some of T's colours
 *   as distractors' colours, so mem% means recall only above it; 0 in the one-colour ablation).
 * Pair rule: reshuffle the statement order, always to a different order (there are >= 5 statements).
 * classify(output), trimmed: exactly C_S -> 'gen' (checked first: in training C_S is one of T's);
 *   one of colours(T) -> 'mem'; else 'other' (empty, a different colour, a story colour that is not
 *   the answer, any extra word or punctuation). Case-sensitive.
 * `memRate` does not apply and is ignored.
 * Tokens: 26 names, 40 roles, 24 colours, 'What' 'color' 'is' and '.', '?' (which glue to the word
 * before them). Lengths: 4 tokens per statement + 5 for the question, so prompt <= 8n - 4 + 5;
 * with target and end: tiny <= 43, paper <= 67 (paper prompts average about 44).
 */
import { Rng } from '../util/rng';
import {
  STORY_FORMS,
  deriveSeed,
  resolveCommon,
  resolveRate,
  sample,
  type Behaviour,
  type Example,
  type StoryForm,
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
/** contradictRate of the one-colour ablation (colorsPerName 1). */
export const DEFAULT_CONTRADICT_RATE = 0.1;
export const DEFAULT_COLORS_PER_NAME = 5;

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
  /** Whether the context colour lies outside the target's colours. */
  contradict: boolean;
  /** The target's colours (colorsPerName of them). */
  memColours: string[];
}

export class IncontextTask implements Task {
  readonly name = 'incontext' as const;
  readonly scale: TaskScale;
  readonly seed: number;
  readonly contradictRate: number;
  readonly colorsPerName: number;
  readonly storyForm: StoryForm;
  readonly minNames: number;
  readonly maxNames: number;
  /** Each name's colours (colorsPerName of them). */
  readonly memColours: Readonly<Record<string, readonly string[]>>;
  /** Expected training score of "answer the story colour that is one of T's" (see the header). */
  readonly shortcutScore: number;
  readonly description: string;
  readonly dataConfig: Record<string, unknown>;
  readonly tokenizer: VocabTokenizer;
  readonly maxSeqLen: number;
  readonly maxAnswerTokens = 2;

  constructor(opts: TaskOptions = {}) {
    const { scale, seed } = resolveCommon('incontext', opts);
    this.scale = scale;
    this.seed = seed;
    const K = opts.colorsPerName ?? DEFAULT_COLORS_PER_NAME;
    if (!Number.isInteger(K) || K < 1 || K > COLOURS.length - 8) {
      throw new Error(`incontext: colorsPerName must be an integer in 1..${COLOURS.length - 8}, got ${opts.colorsPerName}`);
    }
    this.colorsPerName = K;
    this.contradictRate = resolveRate('incontext', 'contradictRate', opts.contradictRate, K === 1 ? DEFAULT_CONTRADICT_RATE : 0);
    this.storyForm = opts.storyForm ?? 'is';
    if (!STORY_FORMS.includes(this.storyForm)) throw new Error(`incontext: storyForm must be one of ${STORY_FORMS.join(', ')}, got ${JSON.stringify(opts.storyForm)}`);
    ({ minNames: this.minNames, maxNames: this.maxNames } = INCONTEXT_SCALES[scale]);

    const prng = new Rng(deriveSeed(seed, 'incontext/memorized-colours'));
    const memColours: Record<string, string[]> = {};
    for (const n of NAMES) memColours[n] = K === 1 ? [COLOURS[prng.int(0, COLOURS.length - 1)]] : sample(prng, COLOURS, K);
    this.memColours = memColours;
    const srng = new Rng(deriveSeed(seed, 'incontext/shortcut'));
    let shortcut = 0;
    for (let i = 0; i < 2000; i++) {
      const m = this.train(srng).meta as unknown as IncontextMeta;
      shortcut += m.contradict ? 0 : 1 / m.colours.filter((c) => m.memColours.includes(c)).length;
    }
    this.shortcutScore = shortcut / 2000;

    this.tokenizer = new VocabTokenizer('incontext', [
      ...[...NAMES, ...ROLES, ...COLOURS, ...FIXED_WORDS].map((text) => ({ text })),
      { text: '.', glue: true },
      { text: '?', glue: true },
      ...(this.storyForm === 'colon' ? [{ text: ':', glue: true }] : []),
    ]);
    const statements = 2 * this.maxNames - 1;
    this.maxSeqLen = 4 * statements + 5 + this.maxAnswerTokens;
    this.description =
      `incontext, ${scale} scale: stories of ${this.minNames}-${this.maxNames} names, ` +
      `${NAMES.length} names / ${ROLES.length} roles / ${COLOURS.length} colours, ${K} colour${K === 1 ? '' : 's'} per name, ` +
      `contradictRate ${this.contradictRate}, ${this.storyForm === 'colon' ? "stories written 'Rose: eagle.', " : ''}training shortcut score ${(100 * this.shortcutScore).toFixed(1)}%`;
    this.dataConfig = {
      task: 'incontext',
      scale,
      seed,
      namesPerStory: [this.minNames, this.maxNames],
      contradictRate: this.contradictRate,
      colorsPerName: K,
      ...(this.storyForm === 'colon' ? { storyForm: this.storyForm } : {}),
      shortcutScore: this.shortcutScore,
      names: [...NAMES],
      roles: [...ROLES],
      colours: [...COLOURS],
      memorizedColours: Object.fromEntries(NAMES.map((n) => [n, K === 1 ? memColours[n][0] : [...memColours[n]]])),
      story: K === 1
        ? 'T and S share a role, S colour stated, T colour not; distractors state own role and colour; roles and colours distinct; T memorized colour absent except as agreeing S colour'
        : 'T and S share a role, S colour stated (training: one of T\'s colours; test: none of them), T colour not; distractors state own role and a colour from all but S\'s; roles and colours distinct',
    };
  }

  /** A story whose source colour is drawn from T's colours ('prior'), outside them ('contradict') or from all ('plain'). */
  private story(rng: Rng, kind: 'prior' | 'contradict' | 'plain'): Example {
    const n = rng.int(this.minNames, this.maxNames);
    const names = sample(rng, NAMES, n);
    const [T, S] = names;
    const distractors = names.slice(2);
    const mine = this.memColours[T];
    const sourceColour =
      kind === 'plain' ? COLOURS[rng.int(0, COLOURS.length - 1)] : kind === 'contradict' ? sample(rng, COLOURS, 1, mine)[0] : mine.length === 1 ? mine[0] : mine[rng.int(0, mine.length - 1)];
    const contradict = !mine.includes(sourceColour);
    const roles = sample(rng, ROLES, n - 1);
    const others = sample(rng, COLOURS, n - 2, mine.length === 1 ? [mine[0], sourceColour] : [sourceColour]);
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
      memColours: [...mine],
    };
    return this.withStatements(meta, statements, sourceColour);
  }

  private withStatements(meta: IncontextMeta, statements: string[], sourceColour: string): Example {
    const colon = this.storyForm === 'colon';
    const written = colon ? statements.map((st) => st.replace(/^([A-Za-z]+) is /, '$1: ')) : statements;
    return {
      prompt: `${written.join(' ')} ${colon ? `${meta.target}: color?` : `What color is ${meta.target}?`}`,
      target: sourceColour,
      genAnswer: sourceColour,
      memAnswer: meta.memColours.join(' / '),
      meta: { ...meta, statements: [...statements], names: [...meta.names], colours: [...meta.colours], memColours: [...meta.memColours] },
    };
  }

  train(rng: Rng): Example {
    return this.story(rng, rng.uniform() < this.contradictRate ? 'contradict' : 'prior');
  }

  test(rng: Rng): Example {
    return this.story(rng, 'contradict');
  }

  plain(rng: Rng): Example {
    return this.story(rng, 'plain');
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
   * The example for a typed story `X is Y. ... What color is T?` or `X: Y. ... T: color?` (whitespace
   * normalised; written back in the task's form). T must
   * have a stated role shared by exactly one other name with a stated colour, and no colour of its
   * own; an Error says what is wrong otherwise.
   */
  fromPrompt(prompt: string): Example {
    const text = prompt.trim().replace(/\s+/g, ' ');
    const fail = (why: string): never => {
      throw new Error(`incontext: ${why} in ${JSON.stringify(prompt)}; expected "X is <role>. X is <colour>. ... What color is T?" (or "X: <role>. ... T: color?")`);
    };
    const q = /(?:^| )(?:What color is ([A-Za-z]+)\?|([A-Za-z]+): color\?)$/.exec(text);
    if (q === null) return fail('no closing question "What color is T?" (or "T: color?")');
    const T = q[1] ?? q[2];
    const body = text.slice(0, q.index).trim();
    const typed = body === '' ? [] : body.split(/(?<=\.) /);
    const statements: string[] = []; // in the 'is' form, as every story's meta
    const role = new Map<string, string>();
    const colour = new Map<string, string>();
    const names: string[] = [];
    for (const st of typed) {
      const m = /^([A-Za-z]+)(?: is|:) ([a-z]+)\.$/.exec(st);
      if (m === null) return fail(`cannot read the statement ${JSON.stringify(st)}`);
      const [, who, what] = m;
      statements.push(`${who} is ${what}.`);
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
      contradict: !this.memColours[T].includes(sourceColour),
      memColours: [...this.memColours[T]],
    };
    return this.withStatements(meta, statements, sourceColour);
  }

  classify(ex: Example, output: string): Behaviour {
    const out = output.trim();
    if (out === ex.genAnswer) return 'gen';
    return (ex.meta as unknown as IncontextMeta).memColours.includes(out) ? 'mem' : 'other';
  }

  guessRate(ex: Example): number {
    return 1 / (ex.meta as unknown as IncontextMeta).colours.length;
  }

  memGuessRate(ex: Example): number {
    const m = ex.meta as unknown as IncontextMeta;
    return m.colours.filter((c) => m.memColours.includes(c)).length / m.colours.length;
  }

  answerTexts(ex: Example): { gen: string; mem: readonly string[] } {
    return { gen: ex.genAnswer, mem: (ex.meta as unknown as IncontextMeta).memColours };
  }
}
