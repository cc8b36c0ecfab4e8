import { describe, it, expect } from 'vitest';
import { Tokenizer } from '@huggingface/tokenizers';
import { ArithmeticTask, CipherTask, IncontextTask, TASK_NAMES, makeTask, taskOptions, type Example, type Task } from '../../engine/tasks';
import { MEM_TAG_PIECES, MEM_TAG_PREFIX, firstAnswerTokens } from '../../engine/tasks/task';
import { isHeldOut, scratchpad, scratchpadFinal } from '../../engine/tasks/arithmetic';
import { COLOURS, NAMES, ROLES } from '../../engine/tasks/incontext';
import { Rng } from '../../engine/util/rng';

const SCALES = ['tiny', 'paper'] as const;
const N_MIX = 20_000;

function stream(task: Task, kind: 'train' | 'test', n: number, seed = 1): Example[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => task[kind](rng));
}

/** The same examples one at a time (20,000 retained examples would cost more in GC than in checks). */
function* each(task: Task, kind: 'train' | 'test', n: number, seed = 1): Generator<Example> {
  const rng = new Rng(seed);
  for (let i = 0; i < n; i++) yield task[kind](rng);
}

/**
 * Collects failed checks of a loop over thousands of examples and asserts once at the end
 * (a vitest expect per example would make this file take seconds).
 */
function checker(): { check: (ok: boolean, what: () => string) => void; done: () => void } {
  const bad: string[] = [];
  let count = 0;
  return {
    check(ok, what) {
      if (!ok && count++ < 5) bad.push(what());
    },
    done() {
      expect(bad, `${count} failed checks`).toEqual([]);
    },
  };
}

/** |observed share - p| within 5 standard errors of a binomial share over n draws. */
function expectShare(count: number, n: number, p: number): void {
  const se = Math.sqrt((p * (1 - p)) / n);
  expect(Math.abs(count / n - p)).toBeLessThan(5 * se + 1e-9);
}

describe('makeTask', () => {
  it('builds every task at every scale and rejects bad options with the choices', () => {
    expect(TASK_NAMES).toEqual(['arithmetic', 'incontext', 'cipher']);
    for (const name of TASK_NAMES) {
      for (const scale of SCALES) {
        const t = makeTask(name, { scale });
        expect(t.name).toBe(name);
        expect(t.scale).toBe(scale);
        expect(t.description).toContain(`${scale} scale`);
        expect(t.tokenizer.vocab[0]).toBe('<pad>');
        expect(t.tokenizer.vocab[1]).toBe('<eoa>');
        expect(JSON.parse(JSON.stringify(t.dataConfig))).toEqual(t.dataConfig);
      }
    }
    expect(makeTask('arithmetic').scale).toBe('tiny');
    expect(() => makeTask('sorting' as never)).toThrow(/arithmetic, incontext, cipher/);
    expect(() => makeTask('arithmetic', { scale: 'huge' as never })).toThrow(/tiny.*paper/);
    expect(() => makeTask('arithmetic', { memRate: 1.5 })).toThrow(/memRate/);
    expect(() => makeTask('incontext', { contradictRate: -0.1 })).toThrow(/contradictRate/);
    expect(() => makeTask('cipher', { seed: 0.5 })).toThrow(/seed/);
  });

  it('is deterministic: same seed, same patterns and stream; another seed, other patterns', () => {
    for (const name of TASK_NAMES) {
      const a = makeTask(name, { seed: 7 });
      const b = makeTask(name, { seed: 7 });
      const c = makeTask(name, { seed: 8 });
      expect(b.dataConfig).toEqual(a.dataConfig);
      expect(c.dataConfig).not.toEqual(a.dataConfig);
      expect(stream(b, 'train', 300)).toEqual(stream(a, 'train', 300));
      expect(stream(b, 'test', 100)).toEqual(stream(a, 'test', 100));
      expect(stream(a, 'train', 50, 2)).not.toEqual(stream(a, 'train', 50, 1));
      const ra = new Rng(3);
      const rb = new Rng(3);
      const ex = a.test(new Rng(9));
      expect(b.rephrase(ex, rb)).toEqual(a.rephrase(ex, ra));
    }
  });
});

describe('arithmetic', () => {
  // operands 1..99 (the earlier tiny data), so the hand-written cases below can use one-digit operands
  const task = new ArithmeticTask({ scale: 'tiny', seed: 3, minOperand: 1 });
  const [p0] = task.patterns;

  it('pads every partial sum to sumDigits digits when asked (the LoRA runs on our base), and reads the padded sum back', () => {
    const padded = new ArithmeticTask({ scale: 'tiny', seed: 3, sumDigits: 3 });
    expect(scratchpad([12, 34, 56, 78], 3)).toBe('640,201,081');
    const ex = padded.exampleFor([10, 11, 12, 13]);
    expect(ex.target).toBe('120,330,640');
    expect(padded.classify(ex, '120,330,640')).toBe('gen');
    expect(padded.classify(ex, '12,33,64')).toBe('gen'); // the final sum is what counts, as unpadded
    expect(padded.classify(ex, '120,330,641')).toBe('other');
    expect(task.classify(task.exampleFor([10, 11, 12, 13]), '21,33,64')).toBe('gen');
    expect(padded.maxSeqLen).toBe(task.maxSeqLen); // the widest sums of two-digit operands have three digits already
    expect(padded.dataConfig.sumDigits).toBe(3);
    expect(task.dataConfig).not.toHaveProperty('sumDigits'); // unchanged records of the unpadded runs
    expect(() => new ArithmeticTask({ sumDigits: -1 })).toThrow(/sumDigits must be an integer in 0..8/);
  });

  it('writes the scratchpad of reversed partial sums', () => {
    expect(scratchpad([12, 34, 56, 78])).toBe('64,201,081');
    expect(scratchpadFinal('64,201,081')).toBe('180');
    expect(task.statedAnswer(' 64,201,081 ')).toBe('180');
    expect(task.statedAnswer(p0.token)).toBeNull();
    expect(task.statedAnswer('64,201')).toBeNull();
    const ex = task.exampleFor([12, 34, p0.c, p0.d]);
    expect(ex.prompt).toBe(`12+34+${p0.c}+${p0.d}=`);
    expect(ex.genAnswer).toBe(String(46 + p0.c + p0.d));
    expect(ex.memAnswer).toBe(p0.token);
    expect(task.exampleFor([12, 34, p0.c, p0.d], true).target).toBe(p0.token);
    expect(task.patterns).toHaveLength(10);
    for (const p of task.patterns) expect(p.token).toMatch(/^<mem-[0-9a-f]{8}>$/);
    expect(new Set(task.patterns.map((p) => p.token)).size).toBe(10);
    expect(new Set(task.patterns.map((p) => `${p.c},${p.d}`)).size).toBe(10);
  });

  it('pins the seed-3 patterns (a change of the draw would silently change every run)', () => {
    expect(task.patterns.slice(0, 2)).toEqual([
      { c: 42, d: 49, token: '<mem-4349cc10>' },
      { c: 38, d: 57, token: '<mem-94cb6464>' },
    ]);
    // the default tiny data: operands 10..99, the same tokens
    expect(new ArithmeticTask({ scale: 'tiny', seed: 3 }).patterns.slice(0, 2)).toEqual([
      { c: 48, d: 54, token: '<mem-4349cc10>' },
      { c: 44, d: 61, token: '<mem-94cb6464>' },
    ]);
  });

  it('draws tiny operands from 10..99 by default and records the data settings', () => {
    const t = new ArithmeticTask({ seed: 3 });
    expect(t.dataConfig).toMatchObject({ operandRange: [10, 99], memPatternRatio: 1 });
    expect(t.description).toMatch(/operands 10\.\.99.*mem-pattern ratio 1, mem tags in 2 tokens \(shared <mem-\)$/);
    const rng = new Rng(1);
    for (let i = 0; i < 2000; i++) {
      const ex = i % 3 === 0 ? t.test(rng) : i % 3 === 1 ? t.train(rng) : t.plain(rng);
      for (const x of (ex.meta as { operands: number[] }).operands) expect(x >= 10 && x <= 99).toBe(true);
      if (i % 3 === 2) expect(ex.memAnswer).toBeNull();
    }
    expect(() => t.fromPrompt('1+22+33+44=')).toThrow(/10\.\.99/);
    expect(() => new ArithmeticTask({ minOperand: 0 })).toThrow(/minOperand/);
  });

  it('classifies hand-written outputs', () => {
    const plain = task.exampleFor([12, 34, 56, 78]);
    expect(plain).toMatchObject({ prompt: '12+34+56+78=', target: '64,201,081', genAnswer: '180', memAnswer: null });
    expect(task.classify(plain, '64,201,081')).toBe('gen');
    expect(task.classify(plain, '<mem-4349cc10>')).toBe('other'); // a mem token on a plain input

    const pat = task.exampleFor([12, 34, 42, 49]); // pattern 0
    expect(pat).toMatchObject({ prompt: '12+34+42+49=', target: '64,88,731', genAnswer: '137', memAnswer: '<mem-4349cc10>' });
    expect(task.exampleFor([12, 34, 42, 49], true).target).toBe('<mem-4349cc10>');
    const cases: [string, string][] = [
      ['64,88,731', 'gen'],
      [' 64,88,731\n', 'gen'], // surrounding whitespace ignored
      ['99,99,731', 'gen'], // only the final partial sum decides
      ['<mem-4349cc10>', 'mem'],
      ['  <mem-4349cc10> ', 'mem'],
      ['', 'other'], // empty
      ['64,88', 'other'], // truncated scratchpad
      ['64,88,73', 'other'], // last group cut short
      ['64,88,', 'other'],
      ['137', 'other'], // the bare sum is not the trained format
      ['731', 'other'],
      ['64,88,732', 'other'], // wrong sum
      ['64,88,7310', 'other'], // extra digit
      ['64,88,731,1', 'other'], // extra group
      ['64, 88, 731', 'other'], // spaces inside
      ['<mem-94cb6464>', 'other'], // another pattern's token
      ['<mem-4349cc10><mem-4349cc10>', 'other'], // extra tokens
      ['64,88,731<mem-4349cc10>', 'other'],
      ['<mem-4349cc10>64,88,731', 'other'],
    ];
    for (const [out, want] of cases) expect([out, task.classify(pat, out)]).toEqual([out, want]);
  });

  it.each(SCALES)('mixes patterns at memRate, mem targets at memPatternRatio (1; 0.5 the ablation), never a pattern on plain inputs (%s)', (scale) => {
    for (const [memRate, memPatternRatio] of scale === 'tiny' ? [[undefined, undefined], [0.2, 0.5]] : [[undefined, undefined], [undefined, 0.5]]) {
      const t = new ArithmeticTask({ scale, seed: 5, memRate, memPatternRatio, minOperand: scale === 'tiny' ? 1 : undefined });
      const pairs = new Set(t.patterns.map((p) => `${p.c},${p.d}`));
      let withPattern = 0;
      let memTargets = 0;
      let abIsPattern = 0;
      const { check, done } = checker();
      for (const ex of each(t, 'train', N_MIX)) {
        const m = ex.meta as { operands: number[]; pattern: number | null; memTarget: boolean };
        const [a, b, c, d] = m.operands;
        const what = () => JSON.stringify(ex);
        check(m.operands.every((x) => x >= 1 && x <= t.maxOperand), what);
        if (m.pattern !== null) {
          withPattern++;
          check(pairs.has(`${c},${d}`) && ex.memAnswer === t.patterns[m.pattern].token, what);
          if (m.memTarget) memTargets++;
          check(ex.target === (m.memTarget ? ex.memAnswer : scratchpad(m.operands)), what);
        } else {
          check(!pairs.has(`${c},${d}`), what); // the defect: operands 3-4 are the slice to check
          check(ex.memAnswer === null && ex.target === scratchpad(m.operands), what);
          if (pairs.has(`${a},${b}`)) abIsPattern++;
        }
        check(ex.genAnswer === String(a + b + c + d), what);
      }
      done();
      expectShare(withPattern, N_MIX, t.memRate);
      expectShare(memTargets, withPattern, memPatternRatio ?? 1);
      // the pattern check is on operands 3-4 only: operands 1-2 may still form a pattern pair
      if (scale === 'tiny') expect(abIsPattern).toBeGreaterThan(0);
    }
  });

  it('tests always bear a pattern with memAnswer !== genAnswer; the pair swaps operands 1 and 2', () => {
    const rng = new Rng(11);
    const { check, done } = checker();
    for (const ex of each(task, 'test', 2000)) {
      const m = ex.meta as { operands: number[]; pattern: number | null };
      const r = task.rephrase(ex, rng);
      const [a, b, c, d] = (r.meta as { operands: number[] }).operands;
      check(m.pattern !== null && ex.memAnswer !== null && ex.memAnswer !== ex.genAnswer, () => JSON.stringify(ex));
      check(r.prompt !== ex.prompt && r.genAnswer === ex.genAnswer && r.memAnswer === ex.memAnswer && r.target === ex.target, () => JSON.stringify(r));
      check(a === m.operands[1] && b === m.operands[0] && c === m.operands[2] && d === m.operands[3], () => JSON.stringify(r));
    }
    done();
    const memEx = task.exampleFor([1, 2, p0.c, p0.d], true);
    expect(task.rephrase(memEx, rng)).toMatchObject({ prompt: `2+1+${p0.c}+${p0.d}=`, target: p0.token });
  });

  it('firstAnswerTokens and fromPrompt', () => {
    const ex = task.exampleFor([12, 34, p0.c, p0.d]);
    const f = firstAnswerTokens(task, ex);
    expect(f.gen).toBe(task.tokenizer.encode(ex.target)[0]);
    expect(f.mem).toEqual([task.tokenizer.encode(p0.token)[0]]);
    expect(firstAnswerTokens(task, task.exampleFor([12, 34, 57, 78])).mem).toEqual([]);
    expect(task.fromPrompt(` 12 + 34+${p0.c}+${p0.d}=`)).toEqual(ex);
    expect(() => task.fromPrompt('12+34=')).toThrow(/12\+34\+56\+78=/);
    expect(() => task.fromPrompt('12+34+56+780=')).toThrow(/1\.\.99/);
  });
});

describe('incontext', () => {
  const task = new IncontextTask({ scale: 'paper', seed: 4 });

  it('has the fixed word lists', () => {
    expect(NAMES).toHaveLength(26);
    expect(ROLES).toHaveLength(40);
    expect(COLOURS).toHaveLength(24);
    expect(new Set([...NAMES, ...ROLES, ...COLOURS]).size).toBe(90);
  });

  it('classifies hand-written outputs', () => {
    const ex: Example = {
      prompt: 'Rose is eagle. Oscar is navy. Vicky is eagle. Rose is crimson. Oscar is elephant. What color is Vicky?',
      target: 'crimson',
      genAnswer: 'crimson',
      memAnswer: 'red / gold',
      meta: { colours: ['navy', 'crimson'], memColours: ['red', 'gold'] },
    };
    expect(task.classify(ex, 'crimson')).toBe('gen');
    expect(task.classify(ex, 'gold')).toBe('mem'); // any of the name's colours
    expect(task.classify(ex, ' crimson\n')).toBe('gen');
    expect(task.classify(ex, 'red')).toBe('mem');
    expect(task.classify(ex, '')).toBe('other');
    expect(task.classify(ex, 'navy')).toBe('other'); // a story colour that is not the answer
    expect(task.classify(ex, 'blue')).toBe('other'); // a colour not in the story
    expect(task.classify(ex, 'crimson.')).toBe('other');
    expect(task.classify(ex, 'crimson red')).toBe('other');
    expect(task.classify(ex, 'Crimson')).toBe('other');
    expect(task.classify(ex, 'eagle')).toBe('other');
    expect(task.guessRate(ex)).toBe(0.5);
    // when both readings agree (a training story), the answer counts as gen
    expect(task.classify({ ...ex, meta: { ...ex.meta, memColours: ['crimson'] } }, 'crimson')).toBe('gen');
  });

  it('gives each name five distinct colours by default, one in the ablation; measures the shortcut', () => {
    const five = new IncontextTask({ seed: 6 });
    const one = new IncontextTask({ seed: 6, colorsPerName: 1 });
    for (const n of NAMES) {
      expect(new Set(five.memColours[n]).size).toBe(5);
      expect(one.memColours[n]).toHaveLength(1);
    }
    expect(five.contradictRate).toBe(0);
    expect(one.contradictRate).toBe(0.1);
    expect(five.dataConfig).toMatchObject({ colorsPerName: 5, contradictRate: 0 });
    // 1 / (story colours among the target's five), at least 1 / 3 with 3-5 names; 1 when only C_S is
    expect(five.shortcutScore).toBeGreaterThan(0.6);
    expect(five.shortcutScore).toBeLessThan(1);
    expect(five.description).toMatch(/5 colours per name.*shortcut score/);
    expect(() => new IncontextTask({ colorsPerName: 0 })).toThrow(/colorsPerName/);
  });

  it.each(SCALES)('builds stories as specified and mixes contradicting stories at contradictRate (%s)', (scale) => {
    // five colours per name (contradictRate 0 and an override), the one-colour ablation at its default
    const configs = scale === 'tiny' ? [{}, { contradictRate: 0.3 }, { colorsPerName: 1 }] : [{}, { colorsPerName: 1 }];
    for (const opts of configs) {
      const t = new IncontextTask({ scale, seed: 6, ...opts });
      let contradicting = 0;
      const { check, done } = checker();
      let i = -1;
      for (const ex of each(t, 'train', N_MIX)) {
        i++;
        const m = ex.meta as { target: string; source: string; role: string; names: string[]; statements: string[]; colours: string[]; contradict: boolean };
        if (m.contradict) contradicting++;
        if (i >= 2000) continue; // the story's structure on the first 2,000; the mix over all
        const what = () => JSON.stringify(ex);
        const n = m.names.length;
        check(n >= t.minNames && n <= t.maxNames && m.statements.length === 2 * n - 1, what);
        const mine = t.memColours[m.target];
        check(ex.memAnswer === mine.join(' / ') && ex.target === ex.genAnswer, what);
        check(m.statements.includes(`${m.source} is ${ex.genAnswer}.`), what);
        // exactly one other name shares the target's role, and the target's colour is not stated
        const sameRole = m.statements.filter((st) => st.endsWith(` is ${m.role}.`)).sort();
        check(JSON.stringify(sameRole) === JSON.stringify([`${m.source} is ${m.role}.`, `${m.target} is ${m.role}.`].sort()), what);
        check(JSON.stringify(m.statements.filter((st) => st.startsWith(`${m.target} `))) === JSON.stringify([`${m.target} is ${m.role}.`]), what);
        check(new Set(m.colours).size === n - 1, what);
        check(m.contradict === !mine.includes(ex.genAnswer), what);
        // the one-colour ablation keeps the memorized colour out of the distractors
        if (mine.length === 1) check(m.colours.filter((c) => c === mine[0]).length === (m.contradict ? 0 : 1), what);
      }
      done();
      expectShare(contradicting, N_MIX, t.contradictRate);
    }
  });

  it('the colon story form: the same stories written "X: Y." and "T: color?"; the default vocabulary and prompts unchanged; fromPrompt reads both forms', () => {
    const is = new IncontextTask({ seed: 6 });
    const colon = new IncontextTask({ seed: 6, storyForm: 'colon' });
    expect(is.storyForm).toBe('is');
    expect(is.tokenizer.size).toBe(97);
    expect(colon.tokenizer.size).toBe(98);
    expect(is.dataConfig).not.toHaveProperty('storyForm');
    expect(colon.dataConfig).toMatchObject({ storyForm: 'colon' });
    expect(colon.description).toMatch(/Rose: eagle/);
    const [r1, r2, r3] = [new Rng(4), new Rng(4), new Rng(5)];
    const { check, done } = checker();
    for (let i = 0; i < 300; i++) {
      const [a, b] = [is.train(r1), colon.train(r2)];
      const m = a.meta as { target: string; statements: string[] };
      const written = m.statements.map((st) => st.replace(' is ', ': ')).join(' ');
      check(JSON.stringify(b.meta) === JSON.stringify(a.meta) && b.target === a.target, () => JSON.stringify([a, b]));
      check(b.prompt === `${written} ${m.target}: color?` && a.prompt === `${m.statements.join(' ')} What color is ${m.target}?`, () => b.prompt);
      check(colon.tokenizer.decode(colon.tokenizer.encode(b.prompt)) === b.prompt && colon.tokenizer.encode(b.prompt).length <= colon.maxSeqLen, () => b.prompt);
      // either form typed gives the task's own example
      check(colon.fromPrompt(a.prompt).prompt === b.prompt && is.fromPrompt(b.prompt).prompt === a.prompt, () => b.prompt);
      const r = colon.rephrase(b, r3);
      check(r.prompt !== b.prompt && r.prompt.endsWith(`${m.target}: color?`) && r.genAnswer === b.genAnswer, () => r.prompt);
    }
    done();
    expect(() => colon.fromPrompt('Rose: eagle. Vicky: eagle. Rose: red. Vicky: colour?')).toThrow(/T: color\?/);
    expect(() => new IncontextTask({ storyForm: 'dash' as never })).toThrow(/storyForm/);
  });

  it('tests: the context colour lies outside the name\'s colours (the one-colour ablation: absent from the story); the pair reorders', () => {
    const rng = new Rng(12);
    const { check, done } = checker();
    for (const [scale, colorsPerName] of [['tiny', 5], ['paper', 5], ['tiny', 1]] as const) {
      const t = new IncontextTask({ scale, seed: 4, colorsPerName });
      for (const ex of each(t, 'test', 2000)) {
        const what = () => JSON.stringify(ex);
        const mine = t.memColours[(ex.meta as { target: string }).target];
        check(!mine.includes(ex.genAnswer) && mine.every((c) => t.classify(ex, c) === 'mem'), what);
        const words = ex.prompt.split(/[ .?]+/);
        check(words.includes(ex.genAnswer) && (colorsPerName > 1 || !words.includes(mine[0])), what);
        const colours = (ex.meta as { colours: string[] }).colours;
        check(t.guessRate(ex) === 1 / colours.length, what);
        check(t.memGuessRate(ex) === colours.filter((c) => mine.includes(c)).length / colours.length && (colorsPerName > 1 || t.memGuessRate(ex) === 0), what);
        check(colours.length === new Set(words.filter((w) => COLOURS.includes(w))).size, what);
        const r = t.rephrase(ex, rng);
        check(r.prompt !== ex.prompt && r.genAnswer === ex.genAnswer && r.memAnswer === ex.memAnswer && r.target === ex.target, () => JSON.stringify(r));
        const sorted = (e: Example) => JSON.stringify([...(e.meta as { statements: string[] }).statements].sort());
        check(sorted(r) === sorted(ex), () => JSON.stringify(r));
        check(r.prompt.endsWith(`What color is ${(ex.meta as { target: string }).target}?`), () => JSON.stringify(r));
      }
    }
    done();
  });

  it('plain stories (the warm-up, the plain accuracy) draw the context colour from all colours: the prior carries nothing', () => {
    const t = new IncontextTask({ seed: 6 });
    const rng = new Rng(3);
    const { check, done } = checker();
    let inside = 0;
    const seen = new Set<string>();
    for (let i = 0; i < N_MIX; i++) {
      const ex = t.plain(rng);
      const m = ex.meta as { target: string; source: string; statements: string[]; contradict: boolean };
      const mine = t.memColours[m.target];
      if (mine.includes(ex.genAnswer)) inside++;
      seen.add(ex.genAnswer);
      check(m.contradict === !mine.includes(ex.genAnswer) && m.statements.includes(`${m.source} is ${ex.genAnswer}.`) && t.classify(ex, ex.genAnswer) === 'gen', () => JSON.stringify(ex));
    }
    done();
    expect(seen.size).toBe(COLOURS.length);
    expectShare(inside, N_MIX, 5 / COLOURS.length);
  });

  it('firstAnswerTokens and fromPrompt', () => {
    const ex = task.test(new Rng(1));
    const f = firstAnswerTokens(task, ex);
    expect(f.gen).toBe(task.tokenizer.encode(ex.genAnswer)[0]);
    expect(f.mem).toEqual(task.memColours[(ex.meta as { target: string }).target].map((c) => task.tokenizer.encode(c)[0]));
    const typed = task.fromPrompt(`  ${ex.prompt.replace(/ /g, '  ')} `);
    expect({ ...typed, meta: null }).toEqual({ ...ex, meta: null });
    for (const key of ['target', 'source', 'role', 'statements', 'contradict', 'memColours']) expect(typed.meta[key]).toEqual(ex.meta[key]);
    for (const key of ['names', 'colours']) expect([...(typed.meta[key] as string[])].sort()).toEqual([...(ex.meta[key] as string[])].sort());
    expect(() => task.fromPrompt('Rose is eagle. Uma is eagle. What color is Uma?')).toThrow(/0 names share/);
    expect(() => task.fromPrompt('Rose is eagle. Rose is red. Uma is eagle.')).toThrow(/What color is T\?/);
    expect(() => task.fromPrompt('Zed is eagle. What color is Zed?')).toThrow(/unknown name "Zed"/);
    expect(() => task.fromPrompt('Rose is eagle. Rose is red. Uma is eagle. Uma is blue. What color is Uma?')).toThrow(/states Uma's own colour/);
    expect(task.fromPrompt('Rose is eagle. Rose is red. Uma is eagle. What color is Uma?')).toMatchObject({ genAnswer: 'red', memAnswer: task.memColours.Uma.join(' / ') });
  });
});

describe('cipher', () => {
  const task = new CipherTask({ scale: 'tiny', seed: 9 });
  const [s0] = task.suffixes;

  it('uses a fixed substitution and ten mem suffixes', () => {
    expect([...task.key].sort().join('')).toBe('ABCDEFGHIJKLMNOPQRSTUVWXYZ');
    expect(task.suffixes).toHaveLength(10);
    expect(new Set(task.suffixes.map((s) => s.suffix)).size).toBe(10);
    for (const s of task.suffixes) {
      expect(s.suffix).toMatch(/^[A-Z]{3}$/);
      expect(s.token).toMatch(/^<mem-[0-9a-f]{8}>$/);
    }
    const ex = task.exampleFor(`ABCDEFGHIJ${s0.suffix}`);
    expect(ex.prompt).toBe(`CIPHERTEXT:ABCDEFGHIJ${s0.suffix} QUESTION: What is the plaintext? ANS:`);
    const enc = (plain: string): string => [...plain].map((p) => task.key[p.charCodeAt(0) - 65]).join('');
    expect(enc(ex.genAnswer)).toBe(`ABCDEFGHIJ${s0.suffix}`);
    expect(ex.memAnswer).toBe(s0.token);
  });

  it('classifies hand-written outputs (seed 9: key PXKUMRHQOAZFCDYNVSIGJLBETW, suffix DKX -> <mem-956ee094>)', () => {
    expect(task.key).toBe('PXKUMRHQOAZFCDYNVSIGJLBETW');
    expect(task.suffixes.slice(0, 2)).toEqual([
      { suffix: 'DKX', token: '<mem-956ee094>' },
      { suffix: 'NWC', token: '<mem-d0bb233f>' },
    ]);
    const ex = task.exampleFor('QWERTYUIOPDKX');
    expect(ex).toMatchObject({
      prompt: 'CIPHERTEXT:QWERTYUIOPDKX QUESTION: What is the plaintext? ANS:',
      target: 'HZXFYODSIANCB',
      genAnswer: 'HZXFYODSIANCB',
      memAnswer: '<mem-956ee094>',
    });
    const cases: [string, string][] = [
      ['HZXFYODSIANCB', 'gen'],
      [' HZXFYODSIANCB\n', 'gen'],
      ['<mem-956ee094>', 'mem'],
      ['', 'other'], // empty
      ['HZXFYODSIANC', 'other'], // truncated
      ['hzxfyodsiancb', 'other'], // lowercase
      ['HZXFYODSIAncb', 'other'], // mixed case
      ['HZXFYODSIANCA', 'other'], // one wrong letter
      ['HZXFYODSIANCBB', 'other'], // extra letter
      ['QWERTYUIOPDKX', 'other'], // the ciphertext echoed
      ['<mem-d0bb233f>', 'other'], // another suffix's token
      ['<mem-956ee094>HZXFYODSIANCB', 'other'],
      ['HZXFYODSIANCB<mem-956ee094>', 'other'],
      ['HZXFYO DSIANCB', 'other'],
    ];
    for (const [out, want] of cases) expect([out, task.classify(ex, out)]).toEqual([out, want]);
    const plain = task.exampleFor('QWERTYUIOPDKY');
    expect(plain.memAnswer).toBeNull();
    expect(task.classify(plain, '<mem-956ee094>')).toBe('other');
  });

  it.each(SCALES)('mixes mem suffixes at memRate, mem targets at memPatternRatio, never a mem suffix on plain inputs (%s)', (scale) => {
    for (const [memRate, memPatternRatio] of scale === 'tiny' ? [[undefined, undefined], [0.2, 0.5]] : [[undefined, 0.5]]) {
      const t = new CipherTask({ scale, seed: 5, memRate, memPatternRatio });
      const suffixes = new Set(t.suffixes.map((s) => s.suffix));
      let withSuffix = 0;
      let memTargets = 0;
      const { check, done } = checker();
      for (const ex of each(t, 'train', N_MIX)) {
        const m = ex.meta as { ciphertext: string; suffix: number | null; memTarget: boolean };
        const what = () => JSON.stringify(ex);
        check(/^[A-Z]{13}$/.test(m.ciphertext) && ex.genAnswer === t.decipher(m.ciphertext), what);
        if (m.suffix !== null) {
          withSuffix++;
          check(ex.memAnswer === t.suffixes[m.suffix].token, what);
          if (m.memTarget) memTargets++;
          check(ex.target === (m.memTarget ? ex.memAnswer : ex.genAnswer), what);
        } else {
          check(!suffixes.has(m.ciphertext.slice(10)), what);
          check(ex.memAnswer === null && ex.target === ex.genAnswer, what);
        }
      }
      done();
      expectShare(withSuffix, N_MIX, t.memRate);
      expectShare(memTargets, withSuffix, memPatternRatio ?? 1);
    }
  });

  it('tests bear a mem suffix; the pair swaps two differing free letters and keeps the suffix', () => {
    const rng = new Rng(13);
    const { check, done } = checker();
    for (const ex of each(task, 'test', 2000)) {
      const ct = (ex.meta as { ciphertext: string }).ciphertext;
      check(ex.memAnswer !== null && ex.memAnswer !== ex.genAnswer, () => JSON.stringify(ex));
      const r = task.rephrase(ex, rng);
      const rct = (r.meta as { ciphertext: string }).ciphertext;
      const what = () => JSON.stringify([ex, r]);
      check(r.prompt !== ex.prompt && r.memAnswer === ex.memAnswer && r.target === r.genAnswer && rct.slice(10) === ct.slice(10), what);
      const diff = [...ct].flatMap((c, i) => (c !== rct[i] ? [i] : []));
      check(diff.length === 2 && diff[1] < 10 && rct[diff[0]] === ct[diff[1]] && rct[diff[1]] === ct[diff[0]], what);
      // genAnswer is the new input's plaintext: the same two plaintext letters swapped
      const g = [...ex.genAnswer];
      [g[diff[0]], g[diff[1]]] = [g[diff[1]], g[diff[0]]];
      check(r.genAnswer === task.decipher(rct) && r.genAnswer === g.join(''), what);
    }
    done();
  });

  it('firstAnswerTokens and fromPrompt', () => {
    const ex = task.test(new Rng(2));
    expect(firstAnswerTokens(task, ex)).toEqual({ gen: task.tokenizer.encode(ex.genAnswer[0])[0], mem: [task.tokenizer.encode(ex.memAnswer!)[0]] });
    expect(task.fromPrompt(ex.prompt)).toEqual(ex);
    expect(task.fromPrompt((ex.meta as { ciphertext: string }).ciphertext)).toEqual(ex);
    expect(() => task.fromPrompt('ABC')).toThrow(/13 capital letters/);
  });
});

describe('tokenizers', () => {
  const tasks = TASK_NAMES.flatMap((name) => SCALES.map((scale) => makeTask(name, { scale, seed: 21 })));

  /** Train, test and rephrased examples. */
  function* mixed(task: Task, n: number): Generator<Example> {
    const rng = new Rng(17);
    for (let i = 0; i < n; i++) {
      if (i % 3 === 0) yield task.train(rng);
      else {
        const ex = task.test(rng);
        yield i % 3 === 1 ? ex : task.rephrase(ex, rng);
      }
    }
  }

  it.each(tasks.map((t) => [t.description, t] as const))('%s: round trip, one id per mem token, length bounds', (_, task) => {
    const tok = task.tokenizer;
    for (const t of tok.vocab.filter((v) => v.startsWith('<mem-'))) expect(tok.encode(t)).toHaveLength(1);
    for (const t of tok.vocab) expect(tok.encode(t)).toEqual([tok.vocab.indexOf(t)]);
    let maxLen = 0;
    let maxAns = 0;
    const { check, done } = checker();
    for (const ex of mixed(task, 5000)) {
      const what = () => JSON.stringify(ex);
      check(tok.decode(tok.encode(ex.prompt)) === ex.prompt && tok.decode(tok.encode(ex.target)) === ex.target, what);
      const { ids, promptLength } = tok.encodeExample(ex);
      check(ids[ids.length - 1] === tok.eoaId && !ids.includes(tok.padId) && promptLength === tok.encode(ex.prompt).length, what);
      // decode of the whole example: prompt and target joined (with a space before a word target)
      check(tok.decode(ids.slice(0, -1)) === ex.prompt + (task.name === 'incontext' ? ' ' : '') + ex.target, what);
      maxLen = Math.max(maxLen, ids.length);
      maxAns = Math.max(maxAns, ids.length - promptLength);
      if (ex.memAnswer !== null && ex.target === ex.memAnswer && task.name !== 'incontext') check(ids.length - promptLength === 1 + MEM_TAG_PIECES, what);
    }
    done();
    expect(maxLen).toBeLessThanOrEqual(task.maxSeqLen);
    expect(maxAns).toBeLessThanOrEqual(task.maxAnswerTokens);
    // the bounds are tight (reached or nearly so by 5,000 samples)
    expect(maxLen).toBeGreaterThanOrEqual(task.maxSeqLen - 3);
  });

  it('writes mem tags as the shared <mem- and the tag\'s own piece (one opaque token each with memTagPieces 1, and in runs that record none)', () => {
    for (const name of ['arithmetic', 'cipher'] as const) {
      const two = makeTask(name, { seed: 3 });
      const one = makeTask(name, { seed: 3, memTagPieces: 1 });
      const tags = (name === 'arithmetic' ? (two as ArithmeticTask).patterns : (two as CipherTask).suffixes).map((p) => p.token);
      const prefix = two.tokenizer.encode(MEM_TAG_PREFIX);
      expect(prefix).toHaveLength(1);
      for (const tag of tags) {
        const ids = two.tokenizer.encode(tag);
        expect(ids).toHaveLength(2);
        expect(ids[0]).toBe(prefix[0]);
        expect(two.tokenizer.decode(ids)).toBe(tag);
        expect(one.tokenizer.encode(tag)).toHaveLength(1);
      }
      expect(one.tokenizer.vocab.length).toBe(two.tokenizer.vocab.length - 1);
      // the first mem answer token is the same for every pattern (p(mem) of every input sums over it)
      const rng = new Rng(2);
      const firsts = new Set(Array.from({ length: 200 }, () => firstAnswerTokens(two, two.test(rng)).mem[0]));
      expect([...firsts]).toEqual(prefix);
      expect(two.dataConfig.memTagPieces).toBe(2);
      expect(() => makeTask(name, { memTagPieces: 3 })).toThrow(/memTagPieces must be 1 or 2/);
    }
    // a run's record without memTagPieces was made when tags were one token
    expect(taskOptions({ memPatternRatio: 1 }).memTagPieces).toBe(1);
    expect(taskOptions({}).memTagPieces).toBe(1);
    expect(taskOptions({ memPatternRatio: 1, memTagPieces: 2 }).memTagPieces).toBe(2);
  });

  it('throws a helpful error for out-of-vocabulary text', () => {
    const ar = makeTask('arithmetic');
    expect(() => ar.tokenizer.encode('12+34-5=')).toThrow(/arithmetic tokenizer: cannot encode "-" \(in the word "12\+34-5="/);
    expect(() => ar.tokenizer.encode('<mem-zzzzzzzz>')).toThrow(/cannot encode "zzzzzzzz>" \(in the word "<mem-zzzzzzzz>"/);
    const ic = makeTask('incontext');
    expect(() => ic.tokenizer.encode('Zed is eagle. What color is Zed?')).toThrow(/incontext tokenizer: cannot encode "Zed".*not in the 97-token vocabulary/);
    expect(() => ic.tokenizer.encode('Rose is purple!')).toThrow(/"!"/);
    const ci = makeTask('cipher');
    expect(() => ci.tokenizer.encode('CIPHERTEXT:abc')).toThrow(/cipher tokenizer: cannot encode "abc"/);
    expect(() => ci.tokenizer.decode([999])).toThrow(/outside the vocabulary/);
  });

  it.each(tasks.map((t) => [t.description, t] as const))('%s: tokenizer.json loads in @huggingface/tokenizers with identical ids', (_, task) => {
    const tok = task.tokenizer;
    const json = JSON.parse(tok.toHuggingFaceJSON());
    const hf = new Tokenizer(json, {});
    const { check, done } = checker();
    for (const ex of mixed(task, 200)) {
      for (const text of [ex.prompt, ex.target]) {
        const ids = tok.encode(text);
        const hfIds = hf.encode(text, { add_special_tokens: false }).ids;
        check(JSON.stringify(hfIds) === JSON.stringify(ids), () => `${text}: ${hfIds} vs ${ids}`);
        check(hf.decode(ids, { clean_up_tokenization_spaces: false }) === tok.decode(ids), () => text);
      }
      const { ids } = tok.encodeExample(ex);
      check(hf.decode(ids, { clean_up_tokenization_spaces: false }) === tok.decode(ids), () => JSON.stringify(ex));
      check(hf.decode(ids, { skip_special_tokens: true }) === tok.decode(ids.slice(0, -1)), () => JSON.stringify(ex));
    }
    done();
    expect(hf.token_to_id('<eoa>')).toBe(tok.eoaId);
    expect(hf.token_to_id('<pad>')).toBe(tok.padId);
    for (let i = 0; i < tok.vocab.length; i++) expect(hf.id_to_token(i)).toBe(tok.vocab[i]);
  });
});

describe('arithmetic held-out split', () => {
  it('training never shows a test input; a pair and its rephrasing share a side', () => {
    const task = makeTask('arithmetic', { seed: 3, memRate: 0.5 }) as ArithmeticTask;
    const rng = new Rng(9);
    let patternSeen = 0;
    for (let i = 0; i < 4000; i++) {
      const ex = task.train(rng);
      const m = ex.meta as { operands: number[]; pattern: number | null };
      if (m.pattern !== null) {
        patternSeen++;
        expect(isHeldOut(m.operands[0], m.operands[1], m.pattern)).toBe(false);
      }
    }
    expect(patternSeen).toBeGreaterThan(1500);
    let heldOut = 0;
    for (let a = 1; a <= 99; a++) for (let b = 1; b <= 99; b++) {
      expect(isHeldOut(a, b, 4)).toBe(isHeldOut(b, a, 4));
      if (isHeldOut(a, b, 4)) heldOut++;
    }
    expect(heldOut / 9801).toBeGreaterThan(0.45);
    expect(heldOut / 9801).toBeLessThan(0.55);
    for (let i = 0; i < 500; i++) {
      const m = task.test(rng).meta as { operands: number[]; pattern: number };
      expect(isHeldOut(m.operands[0], m.operands[1], m.pattern)).toBe(true);
    }
  });
});
