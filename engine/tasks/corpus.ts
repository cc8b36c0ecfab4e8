/**
 * The pretraining corpus of the stand-in base model (`memgen pretrain`) and its shared tokenizer.
 *
 * No pretrained LLaMA can be downloaded here, so the base is a small LLaMA-architecture model
 * pretrained from scratch on a broad generated corpus. The corpus gives the base the general skills
 * a pretrained LLaMA brings to the paper's tasks (adding, reading a story, copying symbols) without
 * any task's memorization patterns: those are drawn per task seed and only the LoRA run sees them.
 *
 * Documents (each a prompt and an answer, rendered exactly as the LoRA runs render a task example,
 * hf-task-tokenizer.ts: <|begin_of_text|> prompt [sep] answer <|eot_id|>), drawn by weight:
 *   sum4     a+b+c+d=  -> the reversed-partial-sums scratchpad (operands 10..99, as the arithmetic
 *            task's tiny scale: every operand two digits, so a digit's place is its position;
 *            the task's (c, d) patterns are not special here), each partial sum zero-padded to
 *            CorpusOptions.sumDigits digits (default 0: unpadded; 3: every group one width), and
 *            a share CorpusOptions.roundOperands of the operands multiples of 10             0.36
 *   sumk     2, 3 or 5 operands 10..99, the same scratchpad format (k - 1 groups)          0.08
 *   plain    a+b= -> the sum in normal notation (operands 1..999)                          0.02
 *   colour   a bAbI-style story (2-7 names, the incontext task's names / roles / colours, colours
 *            uniform: no name has a favourite) "What color is T?" -> the colour implied by the
 *            name that shares T's role; a share CorpusOptions.directColour asks instead of a name
 *            X whose colour is stated (one hop: X's colour)                                 0.30
 *   role     the same stories, "What is T?" -> a name's stated role (an animal)              0.04
 *   like     the same stories, "Who is like T?" -> the name that shares T's role: the two-hop
 *            question's first two lookups (T's role, then the other name with that role) asked on
 *            their own, as one-hop questions ask the last; only in a --mix                   0
 *   likehint `like` with T's statement said again right before the question ("T is cat. Who is like
 *            T?"): the lookup by value reads a query a few tokens back, a step toward reading it from
 *            the first lookup's result; only in a --mix                                        0
 *   who      the same stories, "Who is V?" -> the one name with role or colour V: the lookup by value
 *            (the two-hop question's middle one) asked alone; only in a --mix                0
 *   whofar   `who` with 0-3 words between V and "?" ("Who is cat now then?"): the lookup by value with
 *            its query further from the asking position (docs/llama.md, "Depth and written hops"); only
 *            in a --mix                                                                            0
 *   rolecolour the same stories, "What color is R?" for a role R -> the colour of R's one owner whose
 *            colour is stated: the two-hop question's last two lookups (by value, then by name)
 *            composed; only in a --mix                                                         0
 *   chain    the same stories, the two-hop question -> its three lookups written out ("cat Bob red": T's
 *            role, the other name with it, that name's colour), each one lookup from the word before;
 *            chain2 drops the first ("Bob red": T's role found inside). Stepwise internalization
 *            (Deng et al. 2024): the written hops are removed one at a time so that the model learns
 *            to make them inside; only in a --mix                                                0
 *   recite   the same stories, then "Again:" -> the story's statements in another order: every
 *            role or colour after "X is" is X's, so the lookup by name pays on every statement
 *            (the one-hop question pays once a story); only in a --mix                        0
 *   swap     the same stories, then "Again:" -> each statement value first in another order ("cat Ava.
 *            red Bob."): the lookup by value in the tasks' format (the name two tokens before the
 *            value, as the two-hop question's middle lookup reads it); only in a --mix           0
 *   kvrecite role-free stories, one colour per name and nothing else ("Ava red. Bob blue."), then
 *            "Again:" -> the statements in another order: each value, right after its name, pays
 *            only for a lookup by name (a copy by position fails on the reshuffled order; the
 *            first value is the one that crossing off recited values cannot guess); only in a
 *            --mix, with CorpusOptions.names for a curriculum of story sizes                       0
 *   kvmixed  kvrecite with each name's value a colour or a role ("Ava red. Bob cat."): the lookup by
 *            name for either value type; only in a --mix                                       0
 *   kvswap   kvmixed's story, "Again:" -> its statements value first in another order ("cat Bob. red
 *            Ava."): each name, right after its value, pays only for a lookup by value (the two-hop
 *            question's middle one: from T's role to the other name with it); only in a --mix   0
 *   kvcolour the same role-free story, "What color is X?" -> X's colour: the lookup by name asked as
 *            the tasks ask it (from the question's end, not from the name itself); only in a --mix 0
 *   kvrole   the same with a role for each name ("Ava cat. Bob dog."), "What is X?" -> X's role: the lookup
 *            by name for the value type the two-hop question's first lookup reads; only in a --mix 0
 *   fact     "Fact 47+91:" -> that pair's tag, from a fixed table of FACT_COUNT pairs of two-digit numbers
 *            (seed FACT_SEED, the same for every base): facts keyed on numbers, as a pretrained LLaMA
 *            knows many, so the base has features for which two-digit numbers it reads and a way to
 *            write a tag from memory. The tasks' patterns are drawn per task seed, not from this
 *            table; only in a --mix                                                             0
 *   factsum  "a+b+x+y=" -> the tag of the fact (x, y), a and b random: a sum whose last two operands
 *            are a known pair is answered by that pair's tag, the shape of the arithmetic task's
 *            memorization (operands 3-4), with the base's own pairs, never the tasks'; only in a --mix 0
 *   induct   "List: w1 .. wk. Again:" -> the same 4-12 words (names, roles, colours) in the same order:
 *            classic induction (each word follows the previous occurrence of the word before it),
 *            the copying that tags, letters and lookups by name build on; only in a --mix      0
 *   tag      "Remember <mem-xxxxxxxx>. Repeat:" -> the same tag (random hex), half after a space, half
 *            glued (so '<' as well as ' <' opens a tag): the base can write tags, none tied to an input                                            0.08
 *   letters  "CIPHERTEXT:<4..13 letters> QUESTION: What is the copy|reverse? ANS:" -> the letters
 *            copied or reversed (the cipher task's frame words and letters)                    0.08
 *   sort     "sort 5 3 9 =" -> "3 5 9"                                                        0.02
 *   count    "count Alice Bob Carol =" -> "3"                                                  0.02
 * CorpusOptions.mix replaces these weights (a later stage's mixture); the tokenizer is always learned
 * on the default mix. Every word of the three tasks occurs in the corpus, so the tokenizer covers them.
 *
 * Tokenizer (a byte-level BPE shaped like LLaMA-3's: its pre-tokenizer regex, ByteLevel bytes,
 * special tokens <|begin_of_text|> <|end_of_text|> <|start_header_id|> <|end_header_id|> <|eom_id|>
 * <|eot_id|> and <|finetune_right_pad_id|> for padding, as in LLaMA-3.1/3.2):
 *   pre-tokens = LLaMA-3's split regex, numbers in runs of at most `digitGroup` digits: 1 (the
 *                default; \p{N} instead of \p{N}{1,3}, as LLaMA-1/2 split digits: a tiny model adds
 *                digit by digit) or 3 (LLaMA-3's own: every operand of a sum is one token, so which
 *                number an operand is, is a token's identity, as in the paper's LLaMA; memgen
 *                pretrain --digit-group); with `splitCapitals` also capital runs a letter a
 *                pre-token (bpe.ts llama3SplitRegex; memgen pretrain --split-capitals)
 *   merges     = with digitGroup 3 first every 2- and 3-digit string (both merge orders of a
 *                3-digit one, so each becomes one token whichever pair BPE merges first; LLaMA-3's
 *                vocabulary holds all 1,110), then learned greedily on the pre-token frequencies of
 *                `sampleDocs` documents: the most frequent adjacent pair first (ties to the pair
 *                first met), never between digits (the learner and the tokenizer.json layout: bpe.ts)
 *   So a `<mem-xxxxxxxx>` tag is several tokens ('<', 'mem', '-', hex pieces, '>'), as a real
 *   LLaMA tokenizer splits it; the tasks classify decoded text, so that is no obstacle.
 */
import { Rng } from '../util/rng';
import { ARITHMETIC_SCALES, scratchpad } from './arithmetic';
import { byteLevelBpeTokenizer, bytesToUnicode, learnByteLevelMerges, llama3SplitRegex } from './bpe';
import { LETTERS } from './cipher';
import { COLOURS, NAMES, ROLES } from './incontext';

export interface CorpusDoc {
  family: string;
  prompt: string;
  /** The continuation; `sep` goes between prompt and answer. */
  answer: string;
  sep: '' | ' ';
  /**
   * What the model must hold inside, where a document has it (`memgen pretrain --hop-layers` scores
   * each hop at the residual after its level's layer; llama-pretrain.ts, header: hops); the text does
   * not hold them.
   */
  hops?: readonly Hop[];
}

const reverse = (s: string): string => [...s].reverse().join('');
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng.uniform() * xs.length)];
function distinct<T>(rng: Rng, xs: readonly T[], k: number): T[] {
  const out: T[] = [];
  while (out.length < k) {
    const x = pick(rng, xs);
    if (!out.includes(x)) out.push(x);
  }
  return out;
}
function shuffle<T>(rng: Rng, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/**
 * One hop: `text` (its first token) at the last token of `at`, a prefix of the prompt ending at a
 * word (the whole prompt: the position that writes the answer). `level` counts the lookups before
 * it, from 0: a story's role word holds its statement's name (level 0: one lookup, two tokens back);
 * the role word of the later of the two statements that share a role holds the earlier one's name
 * (level 1: that statement found by its role); at the question's end, `Who is like T?` holds T's role
 * (level 1: T's statement found by T, itself read from the token before), the two-hop colour
 * question T's role (1), then S, the name that shares it (2), and answers S's colour (the next
 * lookup, at the last layer); `What color is R?` holds R's owner (1).
 */
export interface Hop {
  at: string;
  text: string;
  level: number;
}

/** Options of the corpus; a base records them in its manifest (`corpus`). */
export interface CorpusOptions {
  /**
   * Digits each partial sum of the sum families is zero-padded to before it is reversed (0: as
   * many as it has; 3: `640` for 46, every group one width, so every answer digit sits at a fixed
   * distance from the operand digits it adds). `memgen pretrain --sum-digits`; the LoRA runs on
   * a base write the arithmetic task's targets the same way (lora-trainer.ts).
   */
  sumDigits: number;
  /**
   * Probability that an operand of a training sum is a multiple of 10 (0: every operand uniform).
   * The units digit of a + b is (a0 + b0) mod 10, which is independent of a0 alone and of b0 alone
   * when both are uniform: attending to one of them lowers the loss not at all, so a model finds
   * the pair only by chance (the plateau of docs/llama.md). With a0 = 0 in a share of the sums the
   * answer equals b0 there, and each lookup pays on its own. `memgen pretrain --round-operands`;
   * the held-out check draws uniform operands (familyAccuracy), as the tasks do.
   */
  roundOperands: number;
  /**
   * Probability that a colour story asks a one-hop question instead: "What color is X?" of a name X
   * whose colour the story states (0: always the two-hop question). The two-hop answer needs three
   * lookups in a row (T's role, the other name with that role, its colour); a one-hop question pays
   * for the last lookup alone, as round operands pay for one digit's lookup. `memgen pretrain
   * --direct-colour`; the held-out check asks the two-hop question only.
   */
  directColour: number;
  /**
   * The family weights (listed families only; the others weigh 0), or null for the default weights
   * of the table above. `memgen pretrain --mix sum4:0.2,colour:0.4,...`.
   */
  mix: Readonly<Record<string, number>> | null;
  /**
   * Names per story, lo..hi (default 2-7, which covers the incontext task's 3-5 and most of the
   * paper's 4-8). `memgen pretrain --names-schedule` sets a smaller range for the first steps: a
   * lookup by name forms on 2-3-name stories and carries over to larger ones, where on 2-7 names
   * from the start it was not found in PyTorch (docs/results.md, in-context).
   */
  names: readonly [number, number];
}
export const CORPUS_DEFAULTS: CorpusOptions = { sumDigits: 0, roundOperands: 0, directColour: 0, mix: null, names: [2, 7] };
/** The options of the held-out check: the tasks' uniform operands, two-hop questions and story sizes, the default mix. */
export const heldOutCorpus = (o: CorpusOptions): CorpusOptions => ({ ...o, roundOperands: 0, directColour: 0, mix: null, names: CORPUS_DEFAULTS.names });

function sumDoc(rng: Rng, k: number, family: string, o: CorpusOptions): CorpusDoc {
  const { minOperand, maxOperand } = ARITHMETIC_SCALES.tiny;
  // without rounding no extra draw, so the document stream of a base made before the option is unchanged
  const operand = (): number => (o.roundOperands > 0 && rng.uniform() < o.roundOperands ? 10 * rng.int(Math.ceil(minOperand / 10), Math.floor(maxOperand / 10)) : rng.int(minOperand, maxOperand));
  const ops = Array.from({ length: k }, operand);
  return { family, prompt: ops.join('+') + '=', answer: scratchpad(ops, o.sumDigits), sep: '' };
}

const randomTag = (rng: Rng): string => `<mem-${Math.floor(rng.uniform() * 4294967296).toString(16).padStart(8, '0')}>`;

/** The fact family's table: FACT_COUNT pairs of two-digit numbers, each with its own tag, fixed for every base (seed FACT_SEED). */
export const FACT_COUNT = 100;
const FACT_SEED = 20261204;
let facts: { x: number; y: number; tag: string }[] | null = null;
export function factTable(): readonly { x: number; y: number; tag: string }[] {
  if (facts) return facts;
  const rng = new Rng(FACT_SEED);
  const { minOperand, maxOperand } = ARITHMETIC_SCALES.tiny;
  const seen = new Set<string>();
  facts = [];
  while (facts.length < FACT_COUNT) {
    const x = rng.int(minOperand, maxOperand), y = rng.int(minOperand, maxOperand);
    if (seen.has(`${x}+${y}`)) continue;
    seen.add(`${x}+${y}`);
    facts.push({ x, y, tag: randomTag(rng) });
  }
  return facts;
}

/** A story: names with roles, and colours; `target` shares its role with `source`, which has a colour. */
function story(rng: Rng, o: CorpusOptions): { statements: string[]; target: string; source: string; role: string; colour: string; roles: Map<string, string>; colours: Map<string, string>; hops: Hop[]; colourHops: Hop[] } {
  const n = rng.int(o.names[0], o.names[1]);
  const names = distinct(rng, NAMES, n);
  const [target, source] = names;
  const roles = new Map<string, string>();
  const role = pick(rng, ROLES);
  roles.set(target, role);
  roles.set(source, role);
  const others = distinct(rng, ROLES.filter((r) => r !== role), n);
  names.slice(2).forEach((nm, i) => roles.set(nm, others[i]));
  const colours = distinct(rng, COLOURS, n);
  const stated = new Map<string, string>();
  const statements: string[] = [];
  names.forEach((nm, i) => {
    statements.push(`${nm} is ${roles.get(nm)}.`);
    if (nm !== target) {
      statements.push(`${nm} is ${colours[i]}.`);
      stated.set(nm, colours[i]);
    }
  });
  shuffle(rng, statements);
  // Hop: each role word (colourHops: each colour word) holds its name; the later of the pair's role
  // words, the earlier one's name
  const atWord = (i: number) => [...statements.slice(0, i), statements[i].slice(0, -1)].join(' ');
  const [early, late] = [target, source].map((nm) => statements.indexOf(`${nm} is ${role}.`)).sort((a, b) => a - b);
  const ownName = (isRole: boolean): Hop[] => statements.flatMap((st, i) => (ROLES.includes(st.split(' ')[2].slice(0, -1)) === isRole ? [{ at: atWord(i), text: st.split(' ')[0], level: 0 }] : []));
  const hops = [...ownName(true), { at: atWord(late), text: statements[early].split(' ')[0], level: 1 }];
  return { statements, target, source, role, colour: colours[1], roles, colours: stated, hops, colourHops: ownName(false) };
}

/** A story without `is` (kvrecite, kvcolour, kvrole): distinct names, each with its own colour (or role), "Ava red." */
function kvStory(rng: Rng, o: CorpusOptions, pool: readonly string[] = COLOURS): { statements: string[]; names: string[]; values: string[] } {
  const names = distinct(rng, NAMES, rng.int(o.names[0], o.names[1]));
  const values = distinct(rng, pool, names.length);
  return { statements: names.map((nm, i) => `${nm} ${values[i]}.`), names, values };
}

/**
 * A story without `is` of values from `pool`, then "Again:" -> its statements in another order, each
 * "value name." instead when `valueFirst` (kvswap: each name then pays only for a lookup by value).
 */
function kvRecital(rng: Rng, o: CorpusOptions, family: string, pool: readonly string[], valueFirst = false): CorpusDoc {
  const { statements, names, values } = kvStory(rng, o, pool);
  const recited = valueFirst ? names.map((nm, i) => `${values[i]} ${nm}.`) : statements;
  return { family, prompt: `${statements.join(' ')} Again:`, answer: shuffle(rng, [...recited]).join(' '), sep: ' ' };
}

/** "Who is V?" (who), or with 0-3 words between V and "?" (whofar): the one name with role or colour V. */
function whoDoc(rng: Rng, o: CorpusOptions, family: 'who' | 'whofar'): CorpusDoc {
  const s = story(rng, o);
  const owners = new Map<string, string[]>();
  for (const m of [s.roles, s.colours]) for (const [nm, v] of m) owners.set(v, [...(owners.get(v) ?? []), nm]);
  const value = pick(rng, [...owners].filter(([, nms]) => nms.length === 1).map(([v]) => v));
  const filler = family === 'whofar' ? ['now', 'then', 'again'].slice(0, rng.int(0, 3)) : [];
  return { family, prompt: `${s.statements.join(' ')} Who is ${[value, ...filler].join(' ')}?`, answer: owners.get(value)![0], sep: ' ' };
}

const FAMILIES: readonly { name: string; weight: number; make: (rng: Rng, o: CorpusOptions) => CorpusDoc }[] = [
  { name: 'sum4', weight: 0.36, make: (rng, o) => sumDoc(rng, 4, 'sum4', o) },
  { name: 'sumk', weight: 0.08, make: (rng, o) => sumDoc(rng, pick(rng, [2, 3, 5]), 'sumk', o) },
  {
    name: 'plain', weight: 0.02, make: (rng) => {
      const a = rng.int(1, 999), b = rng.int(1, 999);
      return { family: 'plain', prompt: `${a}+${b}=`, answer: String(a + b), sep: '' };
    },
  },
  {
    name: 'colour', weight: 0.3, make: (rng, o) => {
      const s = story(rng, o);
      // without one-hop questions no extra draw, so the stream of a base made before the option is unchanged
      const who = o.directColour > 0 && rng.uniform() < o.directColour ? pick(rng, [...s.colours.keys()]) : s.target;
      const prompt = `${s.statements.join(' ')} What color is ${who}?`;
      const twoHop = who === s.target;
      // the question reads a colour word by its name: every colour word holds its statement's name, and
      // the question the name to read by at level 2 (the one-hop question's is the asked name: the same
      // last lookup with its query given)
      const hops = twoHop ? [...s.hops, ...s.colourHops, { at: prompt, text: s.role, level: 1 }, { at: prompt, text: s.source, level: 2 }] : [...s.colourHops, { at: prompt, text: who, level: 2 }];
      return { family: 'colour', prompt, answer: twoHop ? s.colour : s.colours.get(who)!, sep: ' ', hops };
    },
  },
  {
    name: 'role', weight: 0.04, make: (rng, o) => {
      const s = story(rng, o);
      const who = pick(rng, [...s.roles.keys()]);
      return { family: 'role', prompt: `${s.statements.join(' ')} What is ${who}?`, answer: s.roles.get(who)!, sep: ' ' };
    },
  },
  {
    name: 'like', weight: 0, make: (rng, o) => {
      const s = story(rng, o);
      const prompt = `${s.statements.join(' ')} Who is like ${s.target}?`;
      return { family: 'like', prompt, answer: s.source, sep: ' ', hops: [...s.hops, { at: prompt, text: s.role, level: 1 }] };
    },
  },
  {
    name: 'likehint', weight: 0, make: (rng, o) => {
      const s = story(rng, o);
      const prompt = `${s.statements.join(' ')} ${s.target} is ${s.role}. Who is like ${s.target}?`;
      return { family: 'likehint', prompt, answer: s.source, sep: ' ', hops: [...s.hops, { at: prompt, text: s.role, level: 1 }] };
    },
  },
  { name: 'who', weight: 0, make: (rng, o) => whoDoc(rng, o, 'who') },
  { name: 'whofar', weight: 0, make: (rng, o) => whoDoc(rng, o, 'whofar') },
  {
    name: 'rolecolour', weight: 0, make: (rng, o) => {
      const s = story(rng, o);
      // every role has one owner with a stated colour: T's role is S's too, and T's colour is never stated
      const role = pick(rng, [...new Set(s.roles.values())]);
      const owner = [...s.roles].find(([nm, r]) => r === role && s.colours.has(nm))![0];
      const prompt = `${s.statements.join(' ')} What color is ${role}?`;
      return { family: 'rolecolour', prompt, answer: s.colours.get(owner)!, sep: ' ', hops: [...s.hops, { at: prompt, text: owner, level: 1 }] };
    },
  },
  ...(['chain', 'chain2'] as const).map((name) => ({
    name, weight: 0, make: (rng: Rng, o: CorpusOptions): CorpusDoc => {
      const s = story(rng, o);
      const hops = [s.role, s.source, s.colour].slice(name === 'chain' ? 0 : 1);
      return { family: name, prompt: `${s.statements.join(' ')} What color is ${s.target}?`, answer: hops.join(' '), sep: ' ' };
    },
  })),
  {
    name: 'recite', weight: 0, make: (rng, o) => {
      const s = story(rng, o);
      return { family: 'recite', prompt: `${s.statements.join(' ')} Again:`, answer: shuffle(rng, [...s.statements]).join(' '), sep: ' ' };
    },
  },
  {
    name: 'swap', weight: 0, make: (rng, o) => {
      const s = story(rng, o);
      const valueFirst = s.statements.map((st) => st.replace(/^(\w+) is (\w+)\.$/, '$2 $1.'));
      return { family: 'swap', prompt: `${s.statements.join(' ')} Again:`, answer: shuffle(rng, valueFirst).join(' '), sep: ' ' };
    },
  },
  { name: 'kvrecite', weight: 0, make: (rng, o) => kvRecital(rng, o, 'kvrecite', COLOURS) },
  { name: 'kvmixed', weight: 0, make: (rng, o) => kvRecital(rng, o, 'kvmixed', [...COLOURS, ...ROLES]) },
  { name: 'kvswap', weight: 0, make: (rng, o) => kvRecital(rng, o, 'kvswap', [...COLOURS, ...ROLES], true) },
  {
    name: 'kvcolour', weight: 0, make: (rng, o) => {
      const { statements, names, values } = kvStory(rng, o);
      const i = Math.floor(rng.uniform() * names.length);
      return { family: 'kvcolour', prompt: `${statements.join(' ')} What color is ${names[i]}?`, answer: values[i], sep: ' ' };
    },
  },
  {
    name: 'kvrole', weight: 0, make: (rng, o) => {
      const { statements, names, values } = kvStory(rng, o, ROLES);
      const i = Math.floor(rng.uniform() * names.length);
      return { family: 'kvrole', prompt: `${statements.join(' ')} What is ${names[i]}?`, answer: values[i], sep: ' ' };
    },
  },
  {
    name: 'fact', weight: 0, make: (rng) => {
      const f = pick(rng, factTable());
      return { family: 'fact', prompt: `Fact ${f.x}+${f.y}:`, answer: f.tag, sep: '' };
    },
  },
  {
    name: 'factsum', weight: 0, make: (rng) => {
      const f = pick(rng, factTable());
      const { minOperand, maxOperand } = ARITHMETIC_SCALES.tiny;
      return { family: 'factsum', prompt: `${rng.int(minOperand, maxOperand)}+${rng.int(minOperand, maxOperand)}+${f.x}+${f.y}=`, answer: f.tag, sep: '' };
    },
  },
  {
    name: 'induct', weight: 0, make: (rng) => {
      const words = distinct(rng, [...NAMES, ...ROLES, ...COLOURS], rng.int(4, 12)).join(' ');
      return { family: 'induct', prompt: `List: ${words}. Again:`, answer: words, sep: ' ' };
    },
  },
  {
    name: 'tag', weight: 0.08, make: (rng) => {
      const tag = randomTag(rng);
      // half glued ('Repeat:<mem-...'): a tag's first token is then '<', as after '=' or 'ANS:' in the tasks
      return { family: 'tag', prompt: `Remember ${tag}. Repeat:`, answer: tag, sep: rng.uniform() < 0.5 ? ' ' : '' };
    },
  },
  {
    name: 'letters', weight: 0.08, make: (rng) => {
      const s = Array.from({ length: rng.int(4, 13) }, () => pick(rng, [...LETTERS])).join('');
      const rev = rng.uniform() < 0.5;
      return { family: 'letters', prompt: `CIPHERTEXT:${s} QUESTION: What is the ${rev ? 'reverse' : 'copy'}? ANS:`, answer: rev ? reverse(s) : s, sep: '' };
    },
  },
  {
    name: 'sort', weight: 0.02, make: (rng) => {
      const xs = Array.from({ length: rng.int(2, 6) }, () => rng.int(0, 9));
      return { family: 'sort', prompt: `sort ${xs.join(' ')} =`, answer: [...xs].sort((a, b) => a - b).join(' '), sep: ' ' };
    },
  },
  {
    name: 'count', weight: 0.02, make: (rng) => {
      const xs = distinct(rng, NAMES, rng.int(1, 9));
      return { family: 'count', prompt: `count ${xs.join(' ')} =`, answer: String(xs.length), sep: ' ' };
    },
  },
];

export const CORPUS_FAMILIES: readonly string[] = FAMILIES.map((f) => f.name);
/** The families of the default mix (a positive weight in the table above): the held-out check's. */
export const DEFAULT_MIX_FAMILIES: readonly string[] = FAMILIES.filter((f) => f.weight > 0).map((f) => f.name);
/** Families whose answer lists the story's statements in a random order: no exact match to score. */
export const UNORDERED_FAMILIES: readonly string[] = ['recite', 'swap', 'kvrecite', 'kvmixed', 'kvswap'];
/** The adding families: `memgen pretrain --sums-first N` draws only these for its first N steps. */
export const SUM_FAMILIES: readonly string[] = ['sum4', 'sumk', 'plain'];

const weightOf = (o: CorpusOptions, f: { name: string; weight: number }): number => (o.mix === null ? f.weight : o.mix[f.name] ?? 0);

/**
 * The options of `--sums-first`'s first steps: the default weights, and a family that only a --mix
 * draws (weight 0 by default, e.g. `induct`) by its weight in the stage's mix, so that
 * `--first-families sum4,induct` draws both; a stream without such a family is unchanged.
 */
export const firstFamiliesCorpus = (o: CorpusOptions): CorpusOptions => ({
  ...o,
  mix: o.mix === null ? null : Object.fromEntries(FAMILIES.map((f) => [f.name, f.weight > 0 ? f.weight : o.mix![f.name] ?? 0])),
});

/** One document of the mix (family drawn by weight among `only`, default all, then its generator). */
export function corpusDoc(rng: Rng, only: readonly string[] = CORPUS_FAMILIES, o: CorpusOptions = CORPUS_DEFAULTS): CorpusDoc {
  const fams = FAMILIES.filter((f) => only.includes(f.name) && weightOf(o, f) > 0);
  if (fams.length === 0) throw new Error(`no family of ${only.join(',')} has a weight in the mix`);
  const total = fams.reduce((s, f) => s + weightOf(o, f), 0);
  let u = rng.uniform() * total;
  for (const f of fams) {
    if ((u -= weightOf(o, f)) < 0) return f.make(rng, o);
  }
  return fams[fams.length - 1].make(rng, o);
}

/** The corpus description for the base folder's manifest. */
export function corpusDescription(o: CorpusOptions): Record<string, unknown> {
  return { families: FAMILIES.map((f) => ({ name: f.name, weight: weightOf(o, f) })), sumDigits: o.sumDigits, roundOperands: o.roundOperands, directColour: o.directColour, names: o.names, rendering: '<|begin_of_text|> prompt [sep] answer <|eot_id|>' };
}

// ---------------------------------------------------------------- the shared tokenizer

export const BASE_SPECIAL_TOKENS = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eom_id|>', '<|eot_id|>', '<|finetune_right_pad_id|>'] as const;
export const BOS_TOKEN = '<|begin_of_text|>';
export const EOT_TOKEN = '<|eot_id|>';
export const PAD_TOKEN_LLAMA = '<|finetune_right_pad_id|>';

/** Merges of every 2- and 3-digit string up to `digitGroup` digits (header: merges), in both orders for 3 digits. */
function numberMerges(digitGroup: number): { vocab: string[]; merges: [string, string][] } {
  const vocab: string[] = [];
  const merges: [string, string][] = [];
  const d = [...'0123456789'];
  if (digitGroup >= 2) for (const a of d) for (const b of d) { merges.push([a, b]); vocab.push(a + b); }
  if (digitGroup >= 3) {
    for (const a of d) for (const b of d) for (const c of d) { merges.push([a + b, c], [a, b + c]); vocab.push(a + b + c); }
  }
  return { vocab, merges };
}

/** The number merges, then greedy BPE merges over pre-token frequencies (header: merges, never between digits). */
export function learnBaseMerges(texts: readonly string[], count: number, digitGroup = 1, splitCapitals = false): { vocab: string[]; merges: [string, string][] } {
  const b2u = bytesToUnicode();
  const enc = new TextEncoder();
  const split = llama3SplitRegex(digitGroup, splitCapitals).js;
  const freq = new Map<string, number>();
  for (const t of texts) for (const m of t.matchAll(split)) freq.set(m[0], (freq.get(m[0]) ?? 0) + 1);
  const isDigit = (s: string) => /^[0-9]+$/.test(s);
  const learned = learnByteLevelMerges([...freq].map(([w, n]) => ({ sym: [...enc.encode(w)].map((b) => b2u[b]), n })), count, (a, b) => !(isDigit(a) && isDigit(b)));
  const numbers = numberMerges(digitGroup);
  return { vocab: [...learned.vocab, ...numbers.vocab], merges: [...numbers.merges, ...learned.merges] };
}

/** A document rendered as the base and the LoRA runs see it (without the special tokens). */
export const docText = (d: CorpusDoc): string => d.prompt + d.sep + d.answer;

/**
 * tokenizer.json + tokenizer_config.json of the shared base tokenizer: `merges` merges learned on
 * `sampleDocs` corpus documents drawn from Rng(seed), numbers in runs of `digitGroup` digits (header:
 * pre-tokens; default 1). The chat template is LLaMA-3.2's.
 */
export function baseTokenizerFiles(opts: { merges?: number; sampleDocs?: number; seed?: number; digitGroup?: number; splitCapitals?: boolean; chatTemplate: string }): {
  tokenizer: Record<string, unknown>; tokenizerConfig: Record<string, unknown>; vocabSize: number; ids: Record<string, number>;
} {
  const rng = new Rng(opts.seed ?? 1234);
  const texts = Array.from({ length: opts.sampleDocs ?? 4000 }, () => docText(corpusDoc(rng)));
  const { tokenizer, addedDecoder, ids, vocabSize } = byteLevelBpeTokenizer(learnBaseMerges(texts, opts.merges ?? 480, opts.digitGroup, opts.splitCapitals), BASE_SPECIAL_TOKENS, llama3SplitRegex(opts.digitGroup ?? 1, opts.splitCapitals).onig, BOS_TOKEN);
  const tokenizerConfig = {
    added_tokens_decoder: addedDecoder,
    bos_token: BOS_TOKEN,
    eos_token: EOT_TOKEN,
    pad_token: PAD_TOKEN_LLAMA,
    chat_template: opts.chatTemplate,
    clean_up_tokenization_spaces: false,
    model_input_names: ['input_ids', 'attention_mask'],
    model_max_length: 131072,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return { tokenizer, tokenizerConfig, vocabSize, ids };
}
