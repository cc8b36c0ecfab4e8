/**
 * The stand-in base (engine/tasks/corpus.ts, engine/tasks/hf-task-tokenizer.ts,
 * engine/train/llama-pretrain.ts): the shared tokenizer covers every task and round-trips the corpus,
 * the task adapter renders prompts/answers as documented and classifies decoded generations, and
 * `pretrain` writes a loadable HF folder atomically, lowers the loss, says it is a stand-in, and
 * resumes exactly.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHFTokenizer } from '../../engine/io/hf-folder';
import type { ParamSet } from '../../engine/io/params';
import { readSafeTensorsFile } from '../../engine/io/safetensors';
import { UsageError } from '../../engine/cli/args';
import { pretrainCommand } from '../../engine/cli/commands/pretrain';
import { loadLlamaFolder } from '../../engine/models/llama-folder';
import { LLAMA32_CHAT_TEMPLATE, writeSyntheticLlamaFolder } from '../../engine/models/llama-synthetic';
import { TASK_NAMES, makeTask } from '../../engine/tasks';
import { scratchpad } from '../../engine/tasks/arithmetic';
import { BOS_TOKEN, CORPUS_DEFAULTS, CORPUS_FAMILIES, DEFAULT_MIX_FAMILIES, EOT_TOKEN, FACT_COUNT, PAD_TOKEN_LLAMA, SUM_FAMILIES, baseTokenizerFiles, corpusDescription, corpusDoc, docText, factTable, firstFamiliesCorpus, heldOutCorpus } from '../../engine/tasks/corpus';
import { RetokenizedTask } from '../../engine/tasks/hf-task-tokenizer';
import { HOP_KINDS, PRETRAIN_PRESETS, type PretrainConfig, STAND_IN_NOTE, corpusAtStep, defaultPretrainConfig, encodeDoc, greedyAnswers, grownWeights, hopKindOf, hopKinds, partialDir, pretrain, pretrainBatch } from '../../engine/train/llama-pretrain';
import { Rng } from '../../engine/util/rng';
import { ROLES } from '../../engine/tasks/incontext';
import { firstAnswerTokens } from '../../engine/tasks/task';

const SMALL = { hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 2, numKVHeads: 1, headDim: 16 };
let tmp: string;
let tokDir: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-pretrain-'));
  tokDir = path.join(tmp, 'tok');
  fs.mkdirSync(tokDir);
  const tf = baseTokenizerFiles({ chatTemplate: LLAMA32_CHAT_TEMPLATE });
  fs.writeFileSync(path.join(tokDir, 'tokenizer.json'), JSON.stringify(tf.tokenizer));
  fs.writeFileSync(path.join(tokDir, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('corpus and shared tokenizer', () => {
  it('draws every family, and the scratchpad of k operands is the reversed partial sums', () => {
    const rng = new Rng(3);
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) seen.add(corpusDoc(rng).family);
    expect([...seen].sort()).toEqual([...DEFAULT_MIX_FAMILIES].sort());
    expect(CORPUS_FAMILIES.filter((f) => !DEFAULT_MIX_FAMILIES.includes(f))).toEqual(['like', 'likehint', 'who', 'whofar', 'rolecolour', 'chain', 'chain2', 'recite', 'swap', 'kvrecite', 'kvmixed', 'kvswap', 'kvcolour', 'kvrole', 'fact', 'factsum', 'induct']); // only in a --mix
    expect(scratchpad([12, 30])).toBe('24');
    expect(scratchpad([1, 53, 98, 96])).toBe('45,251,842');
    expect(scratchpad([9, 9, 90, 5, 5])).toBe('81,801,311,811');
    expect(scratchpad([9, 9, 90, 5, 5], 3)).toBe('810,801,311,811');
  });

  it('writes the partial sums unpadded by default and with sumDigits digits when asked (one width per group)', () => {
    const [plain, padded] = [new Rng(5), new Rng(5)];
    for (let i = 0; i < 300; i++) {
      const d = corpusDoc(plain, ['sum4', 'sumk']);
      const p = corpusDoc(padded, ['sum4', 'sumk'], { ...CORPUS_DEFAULTS, sumDigits: 3 });
      expect(p.prompt).toBe(d.prompt); // the same draws
      const ops = d.prompt.slice(0, -1).split('+').map(Number);
      expect(d.answer).toBe(scratchpad(ops));
      expect(p.answer).toBe(scratchpad(ops, 3));
      for (const g of p.answer.split(',')) expect(g).toHaveLength(3);
    }
  });

  it('--round-operands makes that share of the training operands multiples of 10; 0 leaves the stream as it was', () => {
    const [a, b] = [new Rng(6), new Rng(6)];
    for (let i = 0; i < 50; i++) expect(corpusDoc(a, ['sum4'], { ...CORPUS_DEFAULTS, roundOperands: 0 })).toEqual(corpusDoc(b, ['sum4']));
    const rng = new Rng(7);
    let round = 0, all = 0;
    for (let i = 0; i < 2000; i++) {
      const d = corpusDoc(rng, ['sum4'], { ...CORPUS_DEFAULTS, roundOperands: 0.3 });
      const ops = d.prompt.slice(0, -1).split('+').map(Number);
      expect(d.answer).toBe(scratchpad(ops));
      for (const x of ops) {
        expect(x).toBeGreaterThanOrEqual(10);
        expect(x).toBeLessThanOrEqual(99);
        round += x % 10 === 0 ? 1 : 0;
        all++;
      }
    }
    // 0.3 rounded + 0.7 x 9/90 uniform operands that happen to end in 0 = 0.37
    expect(round / all).toBeGreaterThan(0.34);
    expect(round / all).toBeLessThan(0.40);
  });

  it('--direct-colour asks that share of the colour stories of a name whose colour they state; 0 leaves the stream as it was', () => {
    const [a, b] = [new Rng(8), new Rng(8)];
    for (let i = 0; i < 50; i++) expect(corpusDoc(a, ['colour'], { ...CORPUS_DEFAULTS, directColour: 0 })).toEqual(corpusDoc(b, ['colour']));
    const rng = new Rng(9);
    let oneHop = 0;
    for (let i = 0; i < 1000; i++) {
      const d = corpusDoc(rng, ['colour'], { ...CORPUS_DEFAULTS, directColour: 0.3 });
      const asked = /What color is (\w+)\?$/.exec(d.prompt)![1];
      const statements = [...d.prompt.matchAll(/(\w+) is (\w+)\./g)];
      const stated = statements.filter(([, who]) => who === asked).map(([, , what]) => what);
      const atWord = (st: RegExpMatchArray) => d.prompt.slice(0, st.index! + st[0].length - 1);
      const ownNames = (roles: boolean) => statements.filter(([, , what]) => ROLES.includes(what) === roles).map((st) => ({ at: atWord(st), text: st[1], level: 0 }));
      if (stated.includes(d.answer)) {
        oneHop++; // the answer stands beside the asked name: a one-hop question
        expect(stated).toHaveLength(2); // its role and its colour
        expect(d.hops).toEqual([
          ...ownNames(false), // each colour word holds its name
          { at: d.prompt, text: asked, level: 2 }, // and the question the name to read by
        ]);
      } else {
        expect(stated).toHaveLength(1); // the two-hop target: its role only
        const pair = statements.filter(([, , what]) => what === stated[0]);
        const mate = pair.map(([, who]) => who).filter((who) => who !== asked);
        expect(d.hops).toEqual([
          ...ownNames(true), // each role word holds its name
          { at: atWord(pair[1]), text: pair[0][1], level: 1 }, // the later of the pair's role words, the earlier one's name
          ...ownNames(false), // each colour word holds its name
          { at: d.prompt, text: stated[0], level: 1 }, // then at the question: T's role
          { at: d.prompt, text: mate[0], level: 2 }, // and the name that shares it
        ]);
      }
    }
    expect(oneHop / 1000).toBeGreaterThan(0.26);
    expect(oneHop / 1000).toBeLessThan(0.34);
  });

  it('--mix replaces the family weights: unlisted families never come, the listed ones by their weights', () => {
    const rng = new Rng(10);
    const count: Record<string, number> = {};
    for (let i = 0; i < 4000; i++) {
      const f = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { colour: 3, tag: 1, sort: 0 } }).family;
      count[f] = (count[f] ?? 0) + 1;
    }
    expect(Object.keys(count).sort()).toEqual(['colour', 'tag']);
    expect(count.colour / 4000).toBeCloseTo(0.75, 1);
    expect(() => corpusDoc(rng, ['sum4'], { ...CORPUS_DEFAULTS, mix: { colour: 1 } })).toThrow(/no family of sum4 has a weight/);
    const [a, b] = [new Rng(11), new Rng(11)]; // the default weights written out draw the default stream
    const defaults = Object.fromEntries((corpusDescription(CORPUS_DEFAULTS).families as { name: string; weight: number }[]).map((f) => [f.name, f.weight]));
    for (let i = 0; i < 200; i++) expect(corpusDoc(a, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: defaults })).toEqual(corpusDoc(b));
  });

  it('recite (only in a --mix): the story, "Again:", then the same statements in another order', () => {
    const rng = new Rng(12);
    let reordered = 0;
    for (let i = 0; i < 200; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { recite: 1 } });
      expect(d.family).toBe('recite');
      expect(d.prompt.endsWith(' Again:')).toBe(true);
      const story = d.prompt.slice(0, -' Again:'.length).match(/\w+ is \w+\./g)!;
      const again = d.answer.match(/\w+ is \w+\./g)!;
      expect(again.join(' ')).toBe(d.answer);
      expect([...again].sort()).toEqual([...story].sort());
      if (again.join(' ') !== story.join(' ')) reordered++;
    }
    expect(reordered).toBeGreaterThan(150);
  });

  it.each(['kvrecite', 'kvmixed'])('%s (only in a --mix): statements "Name value." without is, "Again:", the same in another order; CorpusOptions.names sizes the stories', (family) => {
    const rng = new Rng(16);
    let reordered = 0;
    const sizes = new Set<number>();
    const values = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { [family]: 1 }, names: [2, 3] });
      const story = d.prompt.slice(0, -' Again:'.length).split(/(?<=\.) /);
      const again = d.answer.split(/(?<=\.) /);
      for (const st of story) expect(st).toMatch(/^[A-Z]\w+ [a-z]+\.$/);
      expect(new Set(story.map((st) => st.split(' ')[0])).size).toBe(story.length); // one value per name
      expect([...again].sort()).toEqual([...story].sort());
      sizes.add(story.length);
      for (const st of story) values.add(ROLES.includes(st.split(' ')[1].slice(0, -1)) ? 'role' : 'colour');
      if (again.join(' ') !== story.join(' ')) reordered++;
    }
    expect([...sizes].sort()).toEqual([2, 3]);
    expect(reordered).toBeGreaterThan(60); // 2-name stories keep their order half the time
    expect([...values].sort()).toEqual(family === 'kvmixed' ? ['colour', 'role'] : ['colour']);
  });

  it('rolecolour (only in a --mix): "What color is R?" -> the colour of the one name with role R and a stated colour', () => {
    const rng = new Rng(41);
    for (let i = 0; i < 100; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { rolecolour: 1 } });
      const [, story, role] = d.prompt.match(/^(.*) What color is (\w+)\?$/)!;
      expect(ROLES).toContain(role);
      const stated = [...story.matchAll(/(\w+) is (\w+)\./g)];
      const owners = stated.filter(([, , v]) => v === role).map(([, name]) => name);
      const coloured = owners.filter((nm) => stated.some(([, who, v]) => who === nm && !ROLES.includes(v)));
      expect(coloured).toHaveLength(1);
      expect(stated.find(([, who, v]) => who === coloured[0] && !ROLES.includes(v))![2]).toBe(d.answer);
    }
  });

  it('likehint (only in a --mix): `like` with T\'s statement said again right before the question', () => {
    const rng = new Rng(47);
    for (let i = 0; i < 50; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { likehint: 1 } });
      const [, story, target, role, asked] = d.prompt.match(/^(.*) (\w+) is (\w+)\. Who is like (\w+)\?$/)!;
      expect(asked).toBe(target);
      expect(story).toContain(`${target} is ${role}.`);
      expect(story).toContain(`${d.answer} is ${role}.`);
      expect(d.answer).not.toBe(target);
    }
  });

  it('whofar (only in a --mix): `who` with 0-3 words between the value and the question mark', () => {
    const rng = new Rng(53);
    const gaps = new Set<number>();
    for (let i = 0; i < 100; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { whofar: 1 } });
      const [, story, value, filler] = d.prompt.match(/^(.*) Who is (\w+)((?: \w+)*)\?$/)!;
      const owners = [...story.matchAll(/(\w+) is (\w+)\./g)].filter(([, , v]) => v === value).map(([, who]) => who);
      expect(owners).toEqual([d.answer]);
      gaps.add(filler.split(' ').length - 1);
    }
    expect([...gaps].sort()).toEqual([0, 1, 2, 3]);
  });

  it('chain / chain2 (only in a --mix): the two-hop question answered with its hops written out, T\'s role, the name sharing it, that name\'s colour (chain2 without the role)', () => {
    const rng = new Rng(43);
    for (let i = 0; i < 100; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { chain: 1, chain2: 1 } });
      const [, story, target] = d.prompt.match(/^(.*) What color is (\w+)\?$/)!;
      const stated = [...story.matchAll(/(\w+) is (\w+)\./g)];
      const role = stated.find(([, who, v]) => who === target && ROLES.includes(v))![2];
      const mate = stated.find(([, who, v]) => who !== target && v === role)![1];
      const colour = stated.find(([, who, v]) => who === mate && !ROLES.includes(v))![2];
      expect(d.answer).toBe(d.family === 'chain' ? `${role} ${mate} ${colour}` : `${mate} ${colour}`);
    }
  });

  it.each([
    ['swap', 'a story with roles and `is`'],
    ['kvswap', 'kvmixed\'s story (no `is`)'],
  ])('%s (only in a --mix): %s, "Again:", each statement value first in another order', (family) => {
    const rng = new Rng(family === 'swap' ? 37 : 31);
    for (let i = 0; i < 100; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { [family]: 1 } });
      const story = [...d.prompt.slice(0, -' Again:'.length).matchAll(/([A-Z]\w+) (?:is )?([a-z]+)\./g)].map(([, name, value]) => `${name} ${value}`);
      if (family === 'kvswap') expect(d.prompt).not.toContain(' is ');
      const again = [...d.answer.matchAll(/([a-z]+) ([A-Z]\w+)\./g)].map(([, value, name]) => `${name} ${value}`);
      expect(d.answer.split('. ')).toHaveLength(story.length);
      expect([...again].sort()).toEqual([...story].sort());
    }
  });

  it('kvcolour (only in a --mix): a role-free story asked one name\'s colour', () => {
    const rng = new Rng(17);
    for (let i = 0; i < 100; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { kvcolour: 1 } });
      const [, story, who] = d.prompt.match(/^(.*) What color is (\w+)\?$/)!;
      const colours = new Map([...story.matchAll(/(\w+) (\w+)\./g)].map(([, name, colour]) => [name, colour]));
      expect(colours.get(who)).toBe(d.answer);
    }
  });

  it('kvrole (only in a --mix): a story of roles without `is` asked one name\'s role', () => {
    const rng = new Rng(29);
    for (let i = 0; i < 100; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { kvrole: 1 } });
      const [, story, who] = d.prompt.match(/^(.*) What is (\w+)\?$/)!;
      const roles = new Map([...story.matchAll(/(\w+) (\w+)\./g)].map(([, name, role]) => [name, role]));
      expect(ROLES).toContain(d.answer);
      expect(roles.get(who)).toBe(d.answer);
    }
  });

  it('like (only in a --mix): "Who is like T?" -> the one other name with T\'s role', () => {
    const rng = new Rng(19);
    for (let i = 0; i < 100; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { like: 1 } });
      const [, story, target] = d.prompt.match(/^(.*) Who is like (\w+)\?$/)!;
      const roles = new Map([...story.matchAll(/(\w+) is (\w+)\./g)].filter(([, , w]) => ROLES.includes(w)).map(([, name, role]) => [name, role]));
      expect([...roles].filter(([name, role]) => name !== target && role === roles.get(target)).map(([name]) => name)).toEqual([d.answer]);
      expect(d.hops!.filter((h) => h.at === d.prompt)).toEqual([{ at: d.prompt, text: roles.get(target), level: 1 }]);
    }
  });

  it('who (only in a --mix): "Who is V?" -> the one name whose role or colour is V', () => {
    const rng = new Rng(23);
    for (let i = 0; i < 100; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { who: 1 } });
      const [, story, value] = d.prompt.match(/^(.*) Who is (\w+)\?$/)!;
      expect([...story.matchAll(/(\w+) is (\w+)\./g)].filter(([, , v]) => v === value).map(([, name]) => name)).toEqual([d.answer]);
    }
  });

  it('--names-schedule: each range until its step, then the corpus\'s; --no-pack puts one document in a row', () => {
    const schedule = [{ names: [2, 3] as const, until: 10 }, { names: [2, 5] as const, until: 20 }];
    expect(corpusAtStep(CORPUS_DEFAULTS, schedule, 0).names).toEqual([2, 3]);
    expect(corpusAtStep(CORPUS_DEFAULTS, schedule, 10).names).toEqual([2, 5]);
    expect(corpusAtStep(CORPUS_DEFAULTS, schedule, 20)).toBe(CORPUS_DEFAULTS);
    const hf = loadHFTokenizer(tokDir);
    const sp = { bos: hf.encode(BOS_TOKEN, { addSpecialTokens: false })[0], eot: hf.encode(EOT_TOKEN, { addSpecialTokens: false })[0], pad: hf.encode(PAD_TOKEN_LLAMA, { addSpecialTokens: false })[0] };
    const corpus = { ...CORPUS_DEFAULTS, mix: { kvrecite: 1 }, names: [2, 2] as const };
    const { ids, targets } = pretrainBatch(hf, sp, new Rng(1), { batch: 4, seq: 64, corpus, pack: false });
    for (let b = 0; b < 4; b++) {
      const row = [...ids.slice(b * 64, (b + 1) * 64)].map(Number);
      expect(row[0]).toBe(sp.bos);
      expect(row.filter((id) => id === sp.bos)).toHaveLength(1);
      const end = row.indexOf(sp.eot);
      expect(row.slice(end + 1).every((id) => id === sp.pad)).toBe(true);
      expect([...targets.slice(b * 64 + end, (b + 1) * 64)].every((t) => t === -100n)).toBe(true);
      expect(Number(targets[b * 64 + end - 1])).toBe(sp.eot); // the end token is scored
    }
    const packed = pretrainBatch(hf, sp, new Rng(1), { batch: 4, seq: 64, corpus });
    expect([...packed.ids.slice(0, 64)].filter((id) => Number(id) === sp.bos).length).toBeGreaterThan(1);
  });

  it('--pack-isolated: whole documents packed in the stream\'s order, one that does not fit opens the next row; segments mark each position\'s document, padding -1', () => {
    const hf = loadHFTokenizer(tokDir);
    const sp = { bos: hf.encode(BOS_TOKEN, { addSpecialTokens: false })[0], eot: hf.encode(EOT_TOKEN, { addSpecialTokens: false })[0], pad: hf.encode(PAD_TOKEN_LLAMA, { addSpecialTokens: false })[0] };
    const corpus = { ...CORPUS_DEFAULTS, mix: { like: 1, colour: 1 }, directColour: 0.3 };
    const seq = 96;
    const b = pretrainBatch(hf, sp, new Rng(3), { batch: 6, seq, corpus, pack: 'isolated', hopLevels: 2 });
    expect(pretrainBatch(hf, sp, new Rng(3), { batch: 6, seq, corpus }).segments).toBeNull();
    const docs = new Rng(3);
    let next = corpusDoc(docs, CORPUS_FAMILIES, corpus);
    let perRow = 0;
    for (let r = 0; r < 6; r++) {
      const row = [...b.ids.slice(r * seq, (r + 1) * seq)].map(Number);
      const seg = [...b.segments!.slice(r * seq, (r + 1) * seq)].map(Number);
      let at = 0;
      for (let k = 0; ; k++) {
        const ids = encodeDoc(hf, sp, next).ids;
        if (at + ids.length > seq + 1) break; // no room: the next row's first
        expect(row.slice(at, at + ids.length)).toEqual(ids.slice(0, seq - at));
        expect(seg.slice(at, at + ids.length)).toEqual(ids.slice(0, seq - at).map(() => k));
        expect(Number(b.targets[r * seq + at + ids.length - 2])).toBe(sp.eot); // its end token is scored
        at += ids.length;
        perRow++;
        next = corpusDoc(docs, CORPUS_FAMILIES, corpus);
      }
      expect(row.slice(at)).toEqual(row.slice(at).map(() => sp.pad));
      expect(seg.slice(at)).toEqual(seg.slice(at).map(() => -1));
      expect([...b.targets.slice(r * seq + at, (r + 1) * seq)].every((t) => t === -100n)).toBe(true);
    }
    expect(perRow).toBeGreaterThan(6); // more than a document a row
  });

  it('hops: each a target at its prefix\'s last token (the whole prompt\'s: where the answer is written), at its level, nowhere else; the stream is unchanged', () => {
    const hf = loadHFTokenizer(tokDir);
    const sp = { bos: hf.encode(BOS_TOKEN, { addSpecialTokens: false })[0], eot: hf.encode(EOT_TOKEN, { addSpecialTokens: false })[0], pad: hf.encode(PAD_TOKEN_LLAMA, { addSpecialTokens: false })[0] };
    const corpus = { ...CORPUS_DEFAULTS, mix: { like: 1, colour: 1 }, directColour: 0.3 };
    const plain = pretrainBatch(hf, sp, new Rng(2), { batch: 8, seq: 64, corpus });
    const b = pretrainBatch(hf, sp, new Rng(2), { batch: 8, seq: 64, corpus, hopLevels: 2 }); // levels 0 and 1 scored
    expect(b.ids).toEqual(plain.ids);
    expect(b.targets).toEqual(plain.targets);
    expect(plain.hops).toEqual([]);
    const docs = new Rng(2);
    const seen = new Set<string>();
    for (let r = 0; r < 8; r++) {
      const want = [0, 1].map(() => new Array<bigint>(64).fill(-100n));
      let at = 0;
      while (at < 65) {
        const d = corpusDoc(docs, CORPUS_FAMILIES, corpus);
        for (const h of d.hops ?? []) {
          const pos = at + hf.encode(h.at, { addSpecialTokens: false }).length; // bos, then the prefix
          if (pos >= 64 || h.level > 1) continue;
          expect(hf.decode([Number(plain.ids[r * 64 + pos])])).toBe(h.at === d.prompt ? '?' : ' ' + h.at.split(' ').pop()); // the prefix's last word
          if (h.at === d.prompt) expect(plain.targets[r * 64 + pos]).not.toBe(-100n); // where the answer's first token is scored
          want[h.level][pos] = BigInt(hf.encode(' ' + h.text, { addSpecialTokens: false })[0]);
          seen.add(`${h.at === d.prompt ? 'question' : 'story'} ${h.level}`);
        }
        at += 1 + hf.encode(d.prompt, { addSpecialTokens: false }).length + hf.encode(d.sep + d.answer, { addSpecialTokens: false }).length + 1;
      }
      for (const k of [0, 1]) expect([...b.hops[k].slice(r * 64, (r + 1) * 64)]).toEqual(want[k]);
    }
    expect([...seen].sort()).toEqual(['question 1', 'story 0', 'story 1']);
    // --hop-within-kind: each scored position's kind is its token's (names 0, roles 1), unscored ones 0
    const kindOf = hopKindOf(hf);
    expect(kindOf.size).toBe(HOP_KINDS.flat().length);
    for (const k of [0, 1]) {
      const kinds = hopKinds(b.hops[k], kindOf);
      b.hops[k].forEach((t, i) => expect(kinds[i]).toBe(t < 0n ? 0n : BigInt(HOP_KINDS.findIndex((words) => words.some((w) => hf.encode(' ' + w, { addSpecialTokens: false })[0] === Number(t))))));
      expect(new Set([...kinds].filter((_, i) => b.hops[k][i] >= 0n))).toEqual(new Set(k === 0 ? [0n] : [0n, 1n])); // level 1: the link (a name) and T's role
    }
  });

  it('fact (only in a --mix): a fixed table of two-digit pairs, each with its own tag, the same for every stream', () => {
    const table = factTable();
    expect(table).toHaveLength(FACT_COUNT);
    expect(new Set(table.map((f) => `${f.x}+${f.y}`)).size).toBe(FACT_COUNT);
    expect(new Set(table.map((f) => f.tag)).size).toBe(FACT_COUNT);
    const rng = new Rng(13);
    for (let i = 0; i < 200; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { fact: 1 } });
      const [, x, y] = d.prompt.match(/^Fact (\d\d)\+(\d\d):$/)!.map(Number);
      expect(d.answer).toMatch(/^<mem-[0-9a-f]{8}>$/);
      expect(table.find((f) => f.x === x && f.y === y)?.tag).toBe(d.answer);
    }
  });

  it('factsum (only in a --mix): a+b+x+y= with a fact (x, y) at operands 3-4 is answered by that fact\'s tag', () => {
    const table = factTable();
    const rng = new Rng(15);
    const firsts = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { factsum: 1 } });
      const [, a, b, x, y] = d.prompt.match(/^(\d\d)\+(\d\d)\+(\d\d)\+(\d\d)=$/)!.map(Number);
      firsts.add(`${a}+${b}`);
      expect(d.sep).toBe('');
      expect(table.find((f) => f.x === x && f.y === y)?.tag).toBe(d.answer);
    }
    expect(firsts.size).toBeGreaterThan(150); // a and b are random, not part of the key
  });

  it('induct (only in a --mix): 4-12 distinct words, "Again:", the same words in the same order', () => {
    const rng = new Rng(14);
    for (let i = 0; i < 200; i++) {
      const d = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { induct: 1 } });
      const words = d.answer.split(' ');
      expect(d.prompt).toBe(`List: ${d.answer}. Again:`);
      expect(words.length).toBeGreaterThanOrEqual(4);
      expect(words.length).toBeLessThanOrEqual(12);
      expect(new Set(words).size).toBe(words.length);
    }
  });

  it('--sums-first draws only the adding families, with two-digit operands as the arithmetic task', () => {
    const rng = new Rng(4);
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const d = corpusDoc(rng, SUM_FAMILIES);
      seen.add(d.family);
      if (d.family !== 'plain') for (const x of d.prompt.slice(0, -1).split('+')) expect(Number(x)).toBeGreaterThanOrEqual(10);
    }
    expect([...seen].sort()).toEqual([...SUM_FAMILIES].sort());
  });

  it('--first-families draws a mix-only family by its mix weight, the others as without a mix', () => {
    const mix = { sum4: 0.1, colour: 0.5, induct: 0.1 };
    const first = firstFamiliesCorpus({ ...CORPUS_DEFAULTS, mix });
    const rng = new Rng(15);
    const counts = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const f = corpusDoc(rng, ['sum4', 'induct'], first).family;
      counts.set(f, (counts.get(f) ?? 0) + 1);
    }
    // sum4 keeps its default 0.36 against induct's 0.1 from the mix
    expect(counts.get('induct')! / 1000).toBeCloseTo(0.1 / 0.46, 1);
    // a stage without a mix-only family draws its first steps exactly as before the option
    const [a, b] = [new Rng(16), new Rng(16)];
    const plain = firstFamiliesCorpus({ ...CORPUS_DEFAULTS, mix: { colour: 1 } });
    for (let i = 0; i < 200; i++) expect(corpusDoc(a, SUM_FAMILIES, plain)).toEqual(corpusDoc(b, SUM_FAMILIES));
  });

  it('round-trips the corpus, splits digits and mem tags, keeps the tasks\' words whole', () => {
    const hf = loadHFTokenizer(tokDir);
    const rng = new Rng(4);
    for (let i = 0; i < 300; i++) {
      const t = docText(corpusDoc(rng));
      expect(hf.decode(hf.encode(t, { addSpecialTokens: false }))).toBe(t);
    }
    const tok = hf.tokenizer as Tokenizer;
    expect(tok.encode('40+76=', { add_special_tokens: false }).tokens).toEqual(['4', '0', '+', '7', '6', '=']);
    expect(tok.encode('<mem-2d9ba299>', { add_special_tokens: false }).ids.length).toBeGreaterThan(4);
    for (const w of [' Alice', ' What', ' color', ' is', ' maroon', ' wolf']) expect(tok.encode(w, { add_special_tokens: false }).ids.length).toBe(1);
  });

  it('--digit-group 3 splits numbers as LLaMA-3 (runs of up to 3 digits), each run one token; the default is unchanged', () => {
    const dir = path.join(tmp, 'tok3');
    fs.mkdirSync(dir);
    const tf = baseTokenizerFiles({ chatTemplate: LLAMA32_CHAT_TEMPLATE, digitGroup: 3 });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tf.tokenizer));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tf.tokenizerConfig));
    const hf = loadHFTokenizer(dir);
    const tok = hf.tokenizer as Tokenizer;
    const pieces = (t: string) => tok.encode(t, { add_special_tokens: false }).tokens;
    expect(pieces('47+91+23+56=')).toEqual(['47', '+', '91', '+', '23', '+', '56', '=']);
    expect(pieces('640,201,081')).toEqual(['640', ',', '201', ',', '081']);
    expect(pieces('1234567')).toEqual(['123', '456', '7']);
    for (let n = 0; n < 1000; n++) for (const t of [String(n), String(n).padStart(3, '0')]) expect(pieces(t)).toEqual([t]);
    expect(tf.vocabSize).toBe(baseTokenizerFiles({ chatTemplate: LLAMA32_CHAT_TEMPLATE }).vocabSize + 1100);
    const rng = new Rng(4);
    for (let i = 0; i < 200; i++) {
      const t = docText(corpusDoc(rng));
      expect(hf.decode(hf.encode(t, { addSpecialTokens: false }))).toBe(t);
    }
    // the first gen token of an arithmetic answer is the first digit run of the scratchpad, not its first digit
    const task = new RetokenizedTask(makeTask('arithmetic', { seed: 1, sumDigits: 3 }), hf, { probe: 50 });
    const ex = task.test(new Rng(1));
    expect(task.tokenizer.decode([firstAnswerTokens(task, ex).gen])).toBe(ex.target.split(',')[0]);
    // also where the target is the mem tag: gen's first token is still the scratchpad's
    const rng2 = new Rng(2);
    const tagged = Array.from({ length: 400 }, () => task.train(rng2)).find((e) => e.target === e.memAnswer)!;
    expect(task.tokenizer.decode([firstAnswerTokens(task, tagged).gen])).toBe(task.answerTexts(tagged).gen.split(',')[0]);
  });
});

describe('RetokenizedTask (a task through the base tokenizer)', () => {
  it('renders bos + prompt, sep + answer + <|eot_id|>, and classifies decoded answers', () => {
    const hf = loadHFTokenizer(tokDir);
    expect(hf.decode([])).toBe(''); // an empty generation (eos first): tokenizers.js alone throws on []
    for (const name of TASK_NAMES) {
      const task = new RetokenizedTask(makeTask(name, { seed: 1 }), hf, { probe: 300 });
      const tok = task.tokenizer;
      expect(tok.vocab.length).toBe(hf.tokenizer.get_vocab(true).size);
      expect(tok.vocab[tok.eoaId]).toBe('<|eot_id|>');
      expect(tok.vocab[tok.padId]).toBe('<|finetune_right_pad_id|>');
      const rng = new Rng(9);
      for (let i = 0; i < 50; i++) {
        const ex = i % 2 ? task.train(rng) : task.test(rng);
        const { ids, promptLength } = tok.encodeExample(ex);
        expect(ids[0]).toBe(tok.bosId);
        expect(tok.decode([])).toBe('');
        expect(tok.decode([tok.eoaId])).toBe('');
        expect(ids[ids.length - 1]).toBe(tok.eoaId);
        expect(tok.decode(ids.slice(0, promptLength))).toBe(ex.prompt);
        const answer = tok.decode(ids.slice(promptLength, -1));
        expect(answer).toBe(tok.separator(ex) + ex.target);
        expect(ids.length).toBeLessThanOrEqual(task.maxSeqLen);
        if (i % 2 === 0) expect(task.classify(ex, answer)).toBe('gen'); // test inputs: the target is the generalization
        // the mem answers: incontext's name has several colours (memAnswer shows them joined)
        const mems = ex.memAnswer === null ? [] : ((ex.meta as { memColours?: string[] }).memColours ?? [ex.memAnswer]).filter((m) => m !== ex.genAnswer);
        for (const m of mems) expect(task.classify(ex, tok.decode(tok.encodeAnswer(ex, m)))).toBe('mem');
        if (mems.length > 0 && ex.memAnswer !== ex.genAnswer) {
          expect(firstAnswerTokens(task, ex).mem).toEqual(((ex.meta as { memColours?: string[] }).memColours ?? [ex.memAnswer!]).map((m) => tok.encodeAnswer(ex, m)[0]));
        }
      }
    }
    // incontext answers follow a space, arithmetic and cipher answers are glued
    const inc = new RetokenizedTask(makeTask('incontext'), hf, { probe: 50 });
    expect(inc.tokenizer.separator(inc.test(new Rng(1)))).toBe(' ');
    const ar = new RetokenizedTask(makeTask('arithmetic'), hf, { probe: 50 });
    expect(ar.tokenizer.separator(ar.test(new Rng(1)))).toBe('');
    // the description counts a mem tag in the base tokenizer's tokens, not the task's own two
    const tagTokens = hf.encode('<mem-2d9ba299>', { addSpecialTokens: false }).length;
    expect(makeTask('arithmetic').description).toMatch(/mem tags in 2 tokens \(shared <mem-\)$/);
    expect(ar.description).toMatch(/mem tags in (\d+)(-\d+)? base tokens; base tokenizer, plain prompts$/);
    const [lo, hi = lo] = ar.description.match(/mem tags in (\d+)(?:-(\d+))? base tokens/)!.slice(1).filter(Boolean).map(Number);
    expect(lo).toBeLessThanOrEqual(tagTokens);
    expect(hi).toBeGreaterThanOrEqual(tagTokens);
    expect(inc.description).toBe(`${makeTask('incontext').description}; base tokenizer, plain prompts`);
  });

  it('renders a chat prompt through a LLaMA-3.2 folder\'s template (--prompt-format chat)', () => {
    const dir = path.join(tmp, 'synthetic');
    writeSyntheticLlamaFolder(dir);
    const hf = loadHFTokenizer(dir);
    const task = new RetokenizedTask(makeTask('incontext'), hf, { format: 'chat', probe: 50 });
    const ex = task.test(new Rng(2));
    const { ids, promptLength } = task.tokenizer.encodeExample(ex);
    const prompt = hf.decode(ids.slice(0, promptLength));
    expect(prompt).toContain('<|start_header_id|>user<|end_header_id|>');
    expect(prompt).toContain(ex.prompt);
    expect(prompt.endsWith('<|start_header_id|>assistant<|end_header_id|>\n\n')).toBe(true);
    expect(prompt).toContain('Today Date: 26 Jul 2024');
    expect(task.tokenizer.decode(ids.slice(promptLength, -1))).toBe(ex.target);
    expect(task.tokenizer.vocab[task.tokenizer.eoaId]).toBe('<|eot_id|>');
    expect(task.tokenizer.vocab[task.tokenizer.padId]).toBe('<|end_of_text|>');
  });
});

describe('pretrain', () => {
  const cfg = (out: string, over: Partial<PretrainConfig> = {}): PretrainConfig => ({
    ...defaultPretrainConfig('tiny', out), model: SMALL, steps: 40, batch: 8, seq: 32, lr: 3e-3, warmup: 5, evalPerFamily: 2, checkpointEvery: 10, runner: { threads: 1 }, ...over,
  });

  it('writes a loadable HF folder atomically, lowers the loss, names itself a stand-in', async () => {
    const out = path.join(tmp, 'base');
    const r = await pretrain(cfg(out));
    expect(r.stopReason).toBe('steps');
    expect(fs.existsSync(partialDir(out))).toBe(false);
    expect(fs.readdirSync(out).sort()).toEqual(['config.json', 'generation_config.json', 'manifest.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', 'train-log.jsonl']);
    const m = loadLlamaFolder(out);
    expect(m.config.hiddenSize).toBe(32);
    expect(m.config.ropeScaling?.ropeType).toBe('llama3');
    expect(m.tokenizer!.renderChat([{ role: 'user', content: '1+2=' }], { extra: { date_string: '1 Jan 2026' } })).toContain('<|start_header_id|>assistant');
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.standIn).toBe(STAND_IN_NOTE);
    expect(manifest.standIn).toMatch(/stand-in for LLaMA-3\.2/);
    const hf = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    expect(hf.memgen_note).toBe(STAND_IN_NOTE);
    // BF16 as LLaMA-3.2 ships, and the check measured the rounded weights the folder holds
    expect(hf.torch_dtype).toBe('bfloat16');
    expect([...readSafeTensorsFile(path.join(out, 'model.safetensors')).tensors.values()].every((t) => t.dtype === 'BF16')).toBe(true);
    expect(manifest.dtype).toBe('bfloat16');
    const rounded = [...m.params.values()][0].data;
    expect(Array.from(new Uint32Array(rounded.buffer, rounded.byteOffset, rounded.length)).every((u) => (u & 0xffff) === 0)).toBe(true);
    expect(Object.keys(manifest.heldOutAccuracy).sort()).toEqual([...DEFAULT_MIX_FAMILIES].sort());
    const log = fs.readFileSync(path.join(out, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log[log.length - 1].loss).toBeLessThan(log[0].loss - 0.5);
    await expect(pretrain(cfg(out))).rejects.toThrow(/already exists/);
  });

  it('--first-families takes corpus families only; --stop-at-step a positive step; --sum-digits 0..3; --round-operands a share', async () => {
    const out = path.join(tmp, 'never');
    await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--sums-first', '5', '--first-families', 'sum4,sums'])).rejects.toThrow(/--first-families: no corpus family sums; the families are sum4,sumk,plain,colour/);
    await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--first-families', ','])).rejects.toThrow(UsageError);
    await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--stop-at-step', '0'])).rejects.toThrow(/--stop-at-step must be a positive integer/);
    await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--sum-digits', '4'])).rejects.toThrow(/--sum-digits must be 0 \(unpadded partial sums\) or 1..3/);
    for (const bad of ['1', '1.5', 'x', '']) await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--round-operands', bad])).rejects.toThrow(/--round-operands must be a share in \[0, 1\)/);
    await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--direct-colour', '1'])).rejects.toThrow(/--direct-colour must be a share in \[0, 1\)/);
    await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--grow', 'stack'])).rejects.toThrow(/--grow places the new blocks when --init-from names a shallower base/);
    await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--hop-within-kind'])).rejects.toThrow(/--hop-within-kind scores the hops of --hop-layers; pass --hop-layers too/);
    await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--no-pack', '--pack-isolated'])).rejects.toThrow(/--no-pack \(one document a row\) and --pack-isolated .* contradict each other; pass one/);
    await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--init-from', out, '--grow', 'top'])).rejects.toThrow(/unknown grow 'top'; choose one of: interleave, stack/);
    for (const bad of ['sum4', 'sum4:x', 'sums:1', 'sum4:1,sum4:2', 'sum4:-1', 'sum4:1:2']) await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--mix', bad])).rejects.toThrow(/--mix takes family:weight pairs, each family once/);
    await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--mix', 'sum4:0,tag:0'])).rejects.toThrow(/--mix gives no family a positive weight/);
    for (const bad of ['2-3', '1-3:10', '2-8:10', '3-2:10', '2-3:10,2-5:10', '2-3:0']) await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--names-schedule', bad])).rejects.toThrow(/--names-schedule takes lo-hi:until items/);
    for (const bad of ['2,1', '1,1', '4', '1,', '1.5', 'x', '']) await expect(pretrainCommand(['--arch', 'llama', '--out', out, '--hop-layers', bad])).rejects.toThrow(/--hop-layers takes increasing layer numbers 0-3/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('--stop-at-step ends inside the schedule: the first N steps of the longer run, recorded', async () => {
    const whole = path.join(tmp, 'sched-whole'), part = path.join(tmp, 'sched-part');
    await pretrain(cfg(whole, { steps: 20, evalPerFamily: 0 }));
    const r = await pretrain(cfg(part, { steps: 20, stopAt: 10, evalPerFamily: 0 }));
    expect(r).toMatchObject({ steps: 10, stopReason: 'steps' });
    const m = JSON.parse(fs.readFileSync(path.join(part, 'manifest.json'), 'utf8'));
    expect(m.train).toMatchObject({ steps: 10, scheduleSteps: 20 });
    const line = (dir: string) => fs.readFileSync(path.join(dir, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).find((x) => x.step === 10);
    expect(line(part).lr).toBe(line(whole).lr);
    expect(line(part).loss).toBe(line(whole).loss);
  });

  it('--hop-layers adds W x each hop\'s loss at its layer to the next-token loss: weight 0 leaves the step\'s loss as it was', async () => {
    const over = { steps: 3, evalPerFamily: 0, logEvery: 1, mix: { like: 1, colour: 1 } };
    const firstLoss = async (name: string, o: Partial<PretrainConfig>) => {
      await pretrain(cfg(path.join(tmp, name), { ...over, ...o }));
      return JSON.parse(fs.readFileSync(path.join(tmp, name, 'train-log.jsonl'), 'utf8').split('\n')[0]).loss as number;
    };
    const plain = await firstLoss('hops-none', {});
    expect(await firstLoss('hops-w0', { hopLayers: [0, 1], hopWeight: 0 })).toBeCloseTo(plain, 5);
    const full = await firstLoss('hops-w1', { hopLayers: [0, 1], hopWeight: 1 });
    expect(full).toBeGreaterThan(plain + 1); // two more cross-entropies over the vocabulary
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'hops-w1', 'manifest.json'), 'utf8')).train).toMatchObject({ hopLayers: [0, 1], hopWeight: 1, hopWithinKind: false });
    // within its kind: a softmax over 26 names or 40 roles, not the whole vocabulary, so each hop term is smaller
    const kind = await firstLoss('hops-kind', { hopLayers: [0, 1], hopWeight: 1, hopWithinKind: true });
    expect(kind).toBeGreaterThan(plain + 0.5);
    expect(kind).toBeLessThan(full - 0.5);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'hops-kind', 'manifest.json'), 'utf8')).train.hopWithinKind).toBe(true);
    await expect(pretrain(cfg(path.join(tmp, 'hops-deep'), { ...over, hopLayers: [2] }))).rejects.toThrow(/--hop-layers 2: the model has layers 0-1, not 2/);
  });

  it('--pack-isolated trains with each document attending only to itself, is recorded, and a resume must keep it', async () => {
    const over = { steps: 12, evalPerFamily: 0, logEvery: 1, seq: 96, mix: { like: 1, colour: 1 } };
    const isolated = path.join(tmp, 'isolated');
    let n = 0;
    await pretrain(cfg(isolated, { ...over, pack: 'isolated' }), { shouldStop: () => n++ >= 10 });
    await expect(pretrain(cfg(isolated, { ...over, resume: true }))).rejects.toThrow(/--direct-colour 0 --mix like:1,colour:1 --pack-isolated; resume with the same/);
    await pretrain(cfg(isolated, { ...over, pack: 'isolated', resume: true }));
    const packed = path.join(tmp, 'packed-mixed');
    await pretrain(cfg(packed, over));
    const read = (dir: string, f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
    expect(JSON.parse(read(isolated, 'manifest.json')).train.pack).toBe('isolated');
    const losses = (dir: string) => read(dir, 'train-log.jsonl').trim().split('\n').map((l) => JSON.parse(l).loss as number);
    expect(losses(isolated)).toHaveLength(12);
    expect(losses(isolated)[11]).toBeLessThan(losses(isolated)[0]);
    expect(losses(isolated)[0]).not.toBeCloseTo(losses(packed)[0], 3); // other rows (whole documents) and a mask
  });

  it('the deep preset: the tiny preset\'s width and heads, twice its layers', () => {
    const { tiny, deep } = PRETRAIN_PRESETS;
    expect(deep).toEqual({ ...tiny, model: { ...tiny.model, numLayers: 2 * tiny.model.numLayers } });
  });

  it('--init-from starts a second stage from a finished base: its weights and tokenizer, every stage recorded', async () => {
    const first = path.join(tmp, 'stage1'), second = path.join(tmp, 'stage2'), scratch = path.join(tmp, 'stage2-scratch');
    await pretrain(cfg(first, { steps: 30, evalPerFamily: 0, command: 'memgen pretrain --first' }));
    await pretrain(cfg(second, { steps: 5, evalPerFamily: 0, logEvery: 1, initFrom: first, command: 'memgen pretrain --second', mix: { colour: 2, tag: 1 }, directColour: 0.5 }));
    await pretrain(cfg(scratch, { steps: 5, evalPerFamily: 0, logEvery: 1 }));
    const read = (dir: string, f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
    expect(read(second, 'tokenizer.json')).toBe(read(first, 'tokenizer.json'));
    const m = JSON.parse(read(second, 'manifest.json'));
    expect(m.stages).toEqual(['memgen pretrain --first', 'memgen pretrain --second']);
    expect(m.corpus.directColour).toBe(0.5); // the stage's corpus, its mix as the family weights
    expect(m.corpus.families.filter((f: { weight: number }) => f.weight > 0)).toEqual([{ name: 'colour', weight: 2 }, { name: 'tag', weight: 1 }]);
    const firstLoss = (dir: string) => JSON.parse(read(dir, 'train-log.jsonl').split('\n')[0]).loss;
    expect(firstLoss(second)).toBeLessThan(firstLoss(scratch) - 0.5); // it starts where the first stage ended
    await expect(pretrain(cfg(path.join(tmp, 'x'), { initFrom: first, preset: 'small' }))).rejects.toThrow(/is a tiny base; pass --preset tiny \(or deep to grow it by block expansion\)/);
    await expect(pretrain(cfg(path.join(tmp, 'y'), { initFrom: tmp }))).rejects.toThrow(/no manifest\.json; it must be a finished base/);
  });

  it('--split-capitals: a run of capital letters a token a letter (a fresh base, or a stage rewriting its parent\'s regex); words and names unchanged', async () => {
    const pieces = (dir: string, t: string) => (loadHFTokenizer(dir).tokenizer as Tokenizer).encode(t, { add_special_tokens: false }).tokens;
    const cipher = 'CIPHERTEXT:QWERTYUIOPASD QUESTION: What is the plaintext? ANS:';
    const parent = path.join(tmp, 'caps-parent'), stage = path.join(tmp, 'caps-stage'), fresh = path.join(tmp, 'caps-fresh');
    await pretrain(cfg(parent, { steps: 2, evalPerFamily: 0 }));
    await pretrain(cfg(stage, { steps: 2, evalPerFamily: 0, initFrom: parent, splitCapitals: true }));
    await pretrain(cfg(fresh, { steps: 2, evalPerFamily: 0, splitCapitals: true }));
    expect(pieces(parent, cipher).slice(0, 4)).not.toEqual(['C', 'I', 'P', 'H']); // BPE merges capital runs
    for (const dir of [stage, fresh]) {
      const p = pieces(dir, cipher);
      expect(p.slice(0, 24)).toEqual([...'CIPHERTEXT', ':', ...'QWERTYUIOPASD']);
      expect(p[24]).toBe('ĠQUESTION'); // a run after a space stays whole
      expect(pieces(dir, 'HELLO')).toEqual([...'HELLO']);
      const m = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
      expect(m.tokenizer).toMatchObject({ splitCapitals: true, type: expect.stringMatching(/capital runs a letter a token$/) });
    }
    for (const t of [' Rose is eagle. Vicky is red. What color is Vicky?', '12+34+567+8=', '<mem-2d9ba299>']) expect(pieces(stage, t)).toEqual(pieces(parent, t));
    const parentTok = JSON.parse(fs.readFileSync(path.join(parent, 'tokenizer.json'), 'utf8')), stageTok = JSON.parse(fs.readFileSync(path.join(stage, 'tokenizer.json'), 'utf8'));
    expect({ ...stageTok, pre_tokenizer: null }).toEqual({ ...parentTok, pre_tokenizer: null }); // the vocabulary is the parent's
    // a later stage keeps it without the flag
    const later = path.join(tmp, 'caps-later');
    await pretrain(cfg(later, { steps: 1, evalPerFamily: 0, initFrom: stage }));
    expect(pieces(later, 'HELLO')).toEqual([...'HELLO']);
    // a parent whose split regex is not pretrain's is refused
    const foreign = path.join(tmp, 'caps-foreign');
    fs.cpSync(parent, foreign, { recursive: true });
    fs.writeFileSync(path.join(foreign, 'tokenizer.json'), JSON.stringify({ ...parentTok, pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Isolated', invert: false }] } }));
    await expect(pretrain(cfg(path.join(tmp, 'caps-x'), { steps: 1, evalPerFamily: 0, initFrom: foreign, splitCapitals: true }))).rejects.toThrow(/--split-capitals: .*caps-foreign\/tokenizer\.json does not split text with the regex memgen pretrain writes/);
  });

  it('--init-from a shallower base of the same width grows it: the grown model starts as the parent\'s function, then trains', async () => {
    const parent = path.join(tmp, 'grow-parent'), same = path.join(tmp, 'grow-same'), grown = path.join(tmp, 'grow-deep');
    await pretrain(cfg(parent, { steps: 30, evalPerFamily: 0 }));
    await pretrain(cfg(same, { steps: 5, evalPerFamily: 0, logEvery: 1, initFrom: parent }));
    await pretrain(cfg(grown, { steps: 5, evalPerFamily: 0, logEvery: 1, initFrom: parent, preset: 'deep', model: { ...SMALL, numLayers: 2 * SMALL.numLayers } }));
    const losses = (dir: string) => fs.readFileSync(path.join(dir, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((x) => x.loss !== undefined).map((x) => x.loss as number);
    const [a, b] = [losses(same), losses(grown)];
    expect(b[0]).toBeCloseTo(a[0], 4); // step 0: the same batch through the same function
    expect(b[b.length - 1]).not.toBe(a[a.length - 1]); // the new blocks train
    const p = loadLlamaFolder(parent).params, g = loadLlamaFolder(grown).params;
    expect(g.size).toBe(2 * p.size - 2); // every layer's tensors twice; embed_tokens and the final norm once
    await expect(pretrain(cfg(path.join(tmp, 'shrink'), { initFrom: grown, model: SMALL }))).rejects.toThrow(/is a deep base; pass --preset deep$/);
  });

  it('grownWeights: interleave puts each silent copy after its block (LLaMA Pro), stack puts the parent\'s blocks once more on top', () => {
    const parent: ParamSet = new Map([['model.embed_tokens.weight', { shape: [1], data: Float32Array.of(9) }]]);
    for (const i of [0, 1]) for (const t of ['self_attn.q_proj', 'self_attn.o_proj', 'mlp.down_proj']) parent.set(`model.layers.${i}.${t}.weight`, { shape: [1], data: Float32Array.of(i + 1) });
    const layout = (order: 'interleave' | 'stack') => {
      const g = grownWeights(parent, 2, 4, order);
      return [0, 1, 2, 3].map((j) => ['q_proj', 'o_proj', 'down_proj'].map((t) => g.get(`model.layers.${j}.${t === 'down_proj' ? 'mlp' : 'self_attn'}.${t}.weight`)![0]));
    };
    // [q, o, down] per layer: the parent's block number (1 or 2), 0 where silent
    expect(layout('interleave')).toEqual([[1, 1, 1], [1, 0, 0], [2, 2, 2], [2, 0, 0]]);
    expect(layout('stack')).toEqual([[1, 1, 1], [2, 2, 2], [1, 0, 0], [2, 0, 0]]);
    expect(grownWeights(parent, 2, 4).get('model.embed_tokens.weight')![0]).toBe(9);
    expect(() => grownWeights(parent, 2, 3)).toThrow(/cannot grow 2 layers into 3/);
  });

  it('the held-out check also scores the stage\'s mix-only families, except recitals (no order to match)', async () => {
    const out = path.join(tmp, 'mix-eval');
    await pretrain(cfg(out, { steps: 2, evalPerFamily: 1, mix: { sum4: 1, like: 1, who: 1, kvrecite: 1 } }));
    const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(Object.keys(m.heldOutAccuracy).sort()).toEqual([...DEFAULT_MIX_FAMILIES, 'like', 'who'].sort());
  });

  it('resumes exactly: stopped at step 10 and resumed == uninterrupted', async () => {
    const a = path.join(tmp, 'a');
    const b = path.join(tmp, 'b');
    await pretrain(cfg(a, { steps: 20, evalPerFamily: 0 }));
    let n = 0;
    const r1 = await pretrain(cfg(b, { steps: 20, evalPerFamily: 0 }), { shouldStop: () => n++ >= 10 });
    expect(r1.stopReason).toBe('interrupted');
    expect(fs.existsSync(b)).toBe(false);
    expect(fs.existsSync(partialDir(b))).toBe(true);
    await expect(pretrain(cfg(b, { steps: 20, evalPerFamily: 0, resume: true, sumDigits: 3 }))).rejects.toThrow(/started with --preset tiny --seed 0 --sum-digits 0 --round-operands 0 --direct-colour 0; resume with the same/);
    await expect(pretrain(cfg(b, { steps: 20, evalPerFamily: 0, resume: true, roundOperands: 0.3 }))).rejects.toThrow(/--round-operands 0 --direct-colour 0; resume with the same/);
    await expect(pretrain(cfg(b, { steps: 20, evalPerFamily: 0, resume: true, mix: { sum4: 1 } }))).rejects.toThrow(/--direct-colour 0; resume with the same/);
    await pretrain(cfg(b, { steps: 20, evalPerFamily: 0, resume: true }));
    expect(Buffer.compare(fs.readFileSync(path.join(a, 'model.safetensors')), fs.readFileSync(path.join(b, 'model.safetensors')))).toBe(0);
  });
});

describe('the committed base that reads stories and adds (runs/base-llama-tiny)', () => {
  it('answers the two-hop colour question, `Who is like T?` and four-operand sums on held-out documents (docs/llama.md, K5: 98.3 % two-hop of 300, 100 % of 200 sums)', async () => {
    const dir = path.join(__dirname, '..', '..', 'runs', 'base-llama-tiny');
    const base = loadLlamaFolder(dir);
    const tok = loadHFTokenizer(dir);
    const sp = { bos: tok.encode(BOS_TOKEN, { addSpecialTokens: false })[0], eot: tok.encode(EOT_TOKEN, { addSpecialTokens: false })[0] };
    const rng = new Rng(99); // not the training streams (seed * 7919 + 31 / 32)
    const sumDigits = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')).corpus.sumDigits;
    expect(sumDigits).toBe(3); // the LoRA arithmetic runs on it pad their partial sums the same way
    for (const family of ['colour', 'like', 'sum4']) {
      const docs = Array.from({ length: 60 }, () => corpusDoc(rng, CORPUS_FAMILIES, { ...heldOutCorpus({ ...CORPUS_DEFAULTS, sumDigits }), mix: { [family]: 1 } }));
      const outs = await greedyAnswers(base.config, base.params, tok, sp, docs.map((d) => d.prompt), 24, { threads: 1 });
      expect(outs.filter((o, i) => o === docs[i].answer).length).toBeGreaterThanOrEqual(51); // >= 85 %; stories guessed ~40 %
    }
  });
});
