/**
 * Diagnosis: how far a stand-in base (or a pretraining's last checkpoint) is from reading a story
 * (docs/llama.md, "A stories stage"). N held-out colour stories of the corpus (seed 6, 2-7 names),
 * greedy, each asked twice: the two-hop question of the corpus ("What color is T?", T's colour
 * implied by the name S that shares T's role) and a one-hop one ("What color is X?" of a name X whose
 * colour the story states, --direct-colour's question). Prints exact match of each by the number of
 * names, beside guessing (1 / the number of stated colours), and how often the answer is one of the
 * story's colours at all. Then N / 3 recitals (the `recite` family: the story, "Again:"), greedy: of the
 * statements "X is V." the output makes, how many give X one of its own values (its role or colour),
 * beside a value drawn from the story at random. Then N role-free recitals (the `kvrecite` family, 2-7
 * names) cut after "Again: X" for a random name X of the story: is the next word X's colour, the
 * lookup by name alone (nothing recited yet to cross off), beside 1 / the number of names; and N
 * role-free stories asked "What color is X?" (the `kvcolour` family), the same lookup as a question;
 * and N stories asked "Who is like T?" (the `like` family: the two-hop question's first two lookups),
 * beside 1 / the number of other names; and N asked "Who is V?" (the `who` family: the lookup by value
 * alone), beside 1 / the number of names; and N asked "What is X?" (the `role` family), split by
 * whether X's role is the one two names share; and N asked "What color is R?" for a role R (`rolecolour`: the
 * last two lookups composed), beside 1 / the number of stated colours; then the same lookup for roles without `is`: recitals
 * of colours and roles (`kvmixed`) cut after "Again: X", and stories of roles asked "What is X?" (`kvrole`);
 * then the lookup by value: value-first recitals without `is` (`kvswap`) and of the tasks' stories (`swap`) cut
 * after "Again: V", is the next word V's name; last, the two-hop question's answer read as the `chain`
 * families write their hops (how many in each form, each hop right or not), and `Who is V?` with 0-3
 * words between V and "?" (`whofar`), by the gap.
 *
 *   node scripts/build.mjs && npx esbuild scripts/base-stories.ts --bundle --platform=node \
 *     --external:onnxruntime-node --outfile=dist/base-stories.js
 *   node dist/base-stories.js BASE_FOLDER|BASE.partial [N]
 */
import { CORPUS_DEFAULTS, CORPUS_FAMILIES, corpusDoc } from '../engine/tasks/corpus';
import { COLOURS, ROLES } from '../engine/tasks/incontext';
import { Rng } from '../engine/util/rng';
import { type LoadedBase, loadBaseOrCheckpoint } from './base-load';

async function main(): Promise<void> {
  const [dir, nArg] = process.argv.slice(2);
  const n = Number(nArg ?? 300);
  const base = loadBaseOrCheckpoint(dir);
  const rng = new Rng(6);
  const questions = Array.from({ length: n }, () => {
    const twoHop = corpusDoc(rng, ['colour']);
    const story = twoHop.prompt.slice(0, twoHop.prompt.lastIndexOf(' What color is'));
    const stated = [...story.matchAll(/(\w+) is (\w+)\./g)];
    const colours = new Map(stated.filter(([, , w]) => COLOURS.includes(w)).map(([, who, w]) => [who, w]));
    const names = new Set(stated.map(([, who]) => who)).size;
    const who = [...colours.keys()][Math.floor(rng.uniform() * colours.size)];
    const storyColours = [...colours.values()];
    return [
      { kind: 'two-hop', names, prompt: twoHop.prompt, answer: twoHop.answer, storyColours },
      { kind: 'one-hop', names, prompt: `${story} What color is ${who}?`, answer: colours.get(who)!, storyColours },
    ];
  }).flat();
  const outs = await base.greedy(questions.map((q) => q.prompt), 4);
  const rows = new Map<string, { right: number; colour: number; all: number; guess: number }>();
  questions.forEach((q, i) => {
    const out = outs[i];
    for (const key of [`${q.kind} all`, `${q.kind} ${q.names} names`]) {
      const r = rows.get(key) ?? { right: 0, colour: 0, all: 0, guess: 0 };
      r.right += out === q.answer ? 1 : 0;
      r.colour += q.storyColours.includes(out) ? 1 : 0;
      r.guess += 1 / q.storyColours.length;
      r.all++;
      rows.set(key, r);
    }
  });
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(0)}%`;
  console.log(`${dir} (step ${base.step}): ${n} held-out colour stories, each asked two-hop and one-hop`);
  for (const [key, r] of [...rows].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))) {
    console.log(`${key.padEnd(20)} n ${String(r.all).padStart(4)}  exact ${pct(r.right, r.all).padStart(4)}  (guessing ${pct(r.guess, r.all).padStart(4)})  a story colour ${pct(r.colour, r.all).padStart(4)}`);
  }
  await recitals(dir, Math.max(1, Math.round(n / 3)), base);
  await kvRecitals(dir, n, base);
}

/** The share of hits, beside picking one of each probe's `names` at random. */
const line = (xs: readonly { names: number }[], hits: boolean[]) => `${((100 * hits.filter(Boolean).length) / xs.length).toFixed(1)}% (at random ${((100 * xs.reduce((s, p) => s + 1 / p.names, 0)) / xs.length).toFixed(1)}%)`;

/** How many names a story with `is` has. */
const storyNames = (prompt: string): number => new Set([...prompt.matchAll(/(\w+) is \w+\./g)].map(([, who]) => who)).size;

/** A story value's type: the lines split by it. */
const valueType = (v: string): 'colour' | 'role' => (ROLES.includes(v) ? 'role' : 'colour');

/**
 * n recitals of a family, each cut after `Again: X` for a random name X of its story (kvrecite,
 * kvmixed: is the next word X's value), or after `Again: V` for a value V only one name has (value
 * first: kvswap without `is`, swap with it: is the next word V's name).
 */
function cutRecitals(rng: Rng, family: string, n: number): { prompt: string; value: string; next: string; names: number }[] {
  const statement = family === 'swap' ? /(\w+) is (\w+)\./g : /(\w+) (\w+)\./g;
  const valueFirst = family === 'swap' || family === 'kvswap';
  return Array.from({ length: n }, () => {
    const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { [family]: 1 } });
    const stated = [...d.prompt.matchAll(statement)];
    // (without `is` every value is one name's, so this keeps every statement)
    const unique = stated.filter(([, , v]) => stated.filter(([, , w]) => w === v).length === 1);
    const [, who, value] = unique[Math.floor(rng.uniform() * unique.length)];
    const names = new Set(stated.map(([, nm]) => nm)).size;
    return valueFirst ? { prompt: `${d.prompt} ${value}`, value, next: who, names } : { prompt: `${d.prompt} ${who}`, value, next: value, names };
  });
}

/** Role-free recitals cut after their first name: the share whose next word is that name's colour. */
async function kvRecitals(dir: string, n: number, base: LoadedBase): Promise<void> {
  const rng = new Rng(9);
  const probes = cutRecitals(rng, 'kvrecite', n);
  const outs = await base.greedy(probes.map((p) => p.prompt), 3);
  const ok = probes.map((p, i) => outs[i].split(/[ .]/)[0] === p.next);
  console.log(`${dir}: ${n} role-free recitals cut after "Again: X": X's colour next ${line(probes, ok)}`);
  for (let k = 2; k <= 7; k++) {
    const at = probes.flatMap((p, i) => (p.names === k ? [i] : []));
    if (at.length > 0) console.log(`  ${k} names: n ${String(at.length).padStart(3)}  ${line(at.map((i) => probes[i]), at.map((i) => ok[i]))}`);
  }
  const questions = Array.from({ length: n }, () => corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { kvcolour: 1 } }));
  const answers = await base.greedy(questions.map((q) => q.prompt), 3);
  const asked = questions.map((q) => ({ names: q.prompt.split('.').length - 1 }));
  console.log(`${dir}: ${n} role-free stories asked "What color is X?": right ${line(asked, questions.map((q, i) => answers[i] === q.answer))}`);
  const likes = Array.from({ length: n }, () => corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { like: 1 } }));
  const named = await base.greedy(likes.map((q) => q.prompt), 3);
  // guessing: any other name of the story
  const others = likes.map((q) => ({ names: storyNames(q.prompt) - 1 }));
  console.log(`${dir}: ${n} stories asked "Who is like T?" (the two-hop question's first two lookups): right ${line(others, likes.map((q, i) => named[i] === q.answer))}; T itself ${likes.filter((q, i) => q.prompt.endsWith(` like ${named[i]}?`)).length}`);
  const whos = Array.from({ length: n }, () => corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { who: 1 } }));
  const owners = await base.greedy(whos.map((q) => q.prompt), 3);
  const everyone = whos.map((q) => ({ names: storyNames(q.prompt) }));
  console.log(`${dir}: ${n} stories asked "Who is V?" (the lookup by value, the middle one): right ${line(everyone, whos.map((q, i) => owners[i] === q.answer))}`);
  for (const kind of ['colour', 'role']) {
    const at = whos.flatMap((q, i) => (valueType(q.prompt.slice(q.prompt.lastIndexOf(' ') + 1, -1)) === kind ? [i] : []));
    const wrongNames = at.filter((i) => owners[i] !== whos[i].answer && new RegExp(`\\b${owners[i]} is`).test(whos[i].prompt)).length;
    console.log(`  V a ${kind}: right ${line(at.map((i) => everyone[i]), at.map((i) => owners[i] === whos[i].answer))}; wrong but a name of the story ${wrongNames}`);
  }
  // "What color is R?" for a role R: the two-hop question's last two lookups composed (rng4: the rows above do not move)
  const rng4 = new Rng(23);
  const roleColours = Array.from({ length: n }, () => corpusDoc(rng4, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { rolecolour: 1 } }));
  const rcAnswers = await base.greedy(roleColours.map((q) => q.prompt), 3);
  const storyColours = roleColours.map((q) => ({ names: [...q.prompt.matchAll(/ is (\w+)\./g)].filter(([, v]) => COLOURS.includes(v)).length }));
  console.log(`${dir}: ${n} stories asked "What color is R?" for a role R (the last two lookups): right ${line(storyColours, roleColours.map((q, i) => rcAnswers[i] === q.answer))}`);
  // "What is X?": the lookup by name for a role; a base that answers the role two names share (T's and
  // S's, what the two-hop question turns on) whoever is asked is right only when X is T or S
  const roleQs = Array.from({ length: n }, () => corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { role: 1 } }));
  const roles = await base.greedy(roleQs.map((q) => q.prompt), 3);
  const shared = roleQs.map((q) => [...q.prompt.matchAll(/ is (\w+)\./g)].filter(([, v]) => v === q.answer).length > 1);
  for (const [label, want] of [['shared with another name (X is T or S)', true], ['its own', false]] as const) {
    const at = roleQs.flatMap((_, i) => (shared[i] === want ? [i] : []));
    console.log(`${dir}: "What is X?", X's role ${label}: right ${at.filter((i) => roles[i] === roleQs[i].answer).length} of ${at.length}`);
  }
  // the lookup by name for roles without `is`: recitals of colours and roles cut after "Again: X", and "What is X?"
  const rng2 = new Rng(13);
  const mixed = cutRecitals(rng2, 'kvmixed', n);
  const nexts = await base.greedy(mixed.map((p) => p.prompt), 3);
  // one line per value type (colour, role): is the word after the cut the probe's next word
  const byValueType = (label: string, probes: readonly { value: string; next: string; names: number }[], outs: readonly string[]): void => {
    for (const kind of ['colour', 'role']) {
      const at = probes.flatMap((p, i) => (valueType(p.value) === kind ? [i] : []));
      console.log(`${dir}: ${at.length} ${label.replace('KIND', kind)} ${line(at.map((i) => probes[i]), at.map((i) => outs[i].split(/[ .]/)[0] === probes[i].next))}`);
    }
  };
  byValueType('recitals of colours and roles cut after "Again: X", X\'s value a KIND: next', mixed, nexts);
  // the lookup by value without `is`: value-first recitals (kvswap) cut after "Again: V", is the next word V's name
  const swaps = cutRecitals(new Rng(17), 'kvswap', n);
  const owned = await base.greedy(swaps.map((p) => p.prompt), 3);
  byValueType('value-first recitals cut after "Again: V", V a KIND: V\'s name next', swaps, owned);
  // the same in the tasks' format (roles, `is`): value-first recitals (swap) cut after "Again: V" for a value V only one name has
  const isSwaps = cutRecitals(new Rng(19), 'swap', n);
  const isOwned = await base.greedy(isSwaps.map((p) => p.prompt), 3);
  byValueType('value-first recitals of stories with is cut after "Again: V", V a KIND: V\'s name next', isSwaps, isOwned);
  const kvRoles = Array.from({ length: n }, () => corpusDoc(rng2, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { kvrole: 1 } }));
  const kvAnswers = await base.greedy(kvRoles.map((q) => q.prompt), 3);
  console.log(`${dir}: ${n} stories of roles without is asked "What is X?": right ${line(kvRoles.map((q) => ({ names: q.prompt.split('.').length - 1 })), kvRoles.map((q, i) => kvAnswers[i] === q.answer))}`);
  await chains(dir, n, base);
  await whoFar(dir, n, base);
}

/** `Who is V?` with 0-3 words between V and "?" (the `whofar` family): right by the gap, beside 1 / the number of names. */
async function whoFar(dir: string, n: number, base: LoadedBase): Promise<void> {
  const rng = new Rng(13);
  const docs = Array.from({ length: n }, () => corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { whofar: 1 } }));
  const outs = await base.greedy(docs.map((d) => d.prompt), 3);
  for (let gap = 0; gap <= 3; gap++) {
    const at = docs.flatMap((d, i) => (d.prompt.match(/ Who is \w+((?: \w+)*)\?$/)![1].split(' ').length - 1 === gap ? [i] : []));
    console.log(`${dir}: "Who is V?" with ${gap} word${gap === 1 ? '' : 's'} before "?": n ${at.length}, right ${line(at.map((i) => ({ names: storyNames(docs[i].prompt) })), at.map((i) => outs[i] === docs[i].answer))}`);
  }
}

/**
 * The two-hop question once more, its answer read as the chain families write it (`chain`: "role
 * mate colour", `chain2`: "mate colour", the corpus's two-hop family: "colour"): how many answers
 * come in each form, and of the hops written, how many are right; the last word is the answer.
 */
async function chains(dir: string, n: number, base: LoadedBase): Promise<void> {
  const rng = new Rng(11);
  const docs = Array.from({ length: n }, () => corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { chain: 1 } }));
  const outs = await base.greedy(docs.map((d) => d.prompt), 12);
  const forms = new Map<number, { n: number; hops: number[] }>();
  docs.forEach((d, i) => {
    const hops = d.answer.split(' '), said = outs[i].trim().split(/\s+/);
    const f = forms.get(said.length) ?? { n: 0, hops: Array(said.length).fill(0) };
    f.n++;
    // the words said line up with the last hops (chain2 leaves out the role, the answer alone both)
    said.forEach((w, k) => (f.hops[k] += w === hops[hops.length - said.length + k] ? 1 : 0));
    forms.set(said.length, f);
  });
  for (const [len, f] of [...forms].sort(([a], [b]) => a - b)) {
    const names = ['role', 'mate', 'colour'].slice(Math.max(0, 3 - len));
    console.log(`${dir}: two-hop answered in ${len} word${len === 1 ? '' : 's'}: ${f.n} of ${n}; right: ${f.hops.map((h, k) => `${names[k] ?? `word ${k + 1}`} ${((100 * h) / f.n).toFixed(1)}%`).join(', ')}`);
  }
}

/** Greedy recitals of held-out stories: the share of recited statements that give a name one of its own values. */
async function recitals(dir: string, n: number, base: LoadedBase): Promise<void> {
  const rng = new Rng(7);
  const docs = Array.from({ length: n }, () => corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { recite: 1 } }));
  const outs = await base.greedy(docs.map((d) => d.prompt), 100);
  let made = 0, own = 0, chance = 0;
  docs.forEach((d, i) => {
    const stated = [...d.prompt.matchAll(/(\w+) is (\w+)\./g)];
    const values = new Map<string, string[]>();
    for (const [, who, v] of stated) values.set(who, [...(values.get(who) ?? []), v]);
    for (const [, who, v] of outs[i].matchAll(/(\w+) is (\w+)\./g)) {
      if (!values.has(who)) continue;
      made++;
      own += values.get(who)!.includes(v) ? 1 : 0;
      chance += values.get(who)!.length / stated.length;
    }
  });
  console.log(`${dir}: ${n} recitals, ${made} statements about the story's names: own value ${((100 * own) / Math.max(1, made)).toFixed(0)}% (a story value at random ${((100 * chance) / Math.max(1, made)).toFixed(0)}%)`);
}
main().catch((e) => { console.error(e); process.exit(1); });
