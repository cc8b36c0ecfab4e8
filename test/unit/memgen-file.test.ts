import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HEADER_STEER_AT } from '../../engine/io/memgen-file';
import { STEER_AT } from '../../engine/models/hooks';
import { parseMemgen, promptAt } from '../../server/src/memgen-file';

const r = (line: number, a: number, b: number) => ({ start: { line, character: a }, end: { line, character: b } });

describe('.memgen parser', () => {
  it('reads the header, prompts, expectations and comments', () => {
    const f = parseMemgen(['# c', 'run: runs/x   # the run', 'site: ln2', 'topN: 0.2', 'alpha: -3', '', '  1+2+3+4=  => mem  # note', '5+6+7+8='].join('\n'));
    expect(f.errors).toEqual([]);
    expect(f.header.run).toEqual({ value: 'runs/x', range: r(1, 5, 11) });
    expect(f.header.site?.value).toBe('ln2');
    expect(f.header.topN?.value).toBe(0.2);
    expect(f.header.alpha?.value).toBe(-3);
    expect(f.prompts).toHaveLength(2);
    expect(f.prompts[0]).toMatchObject({ text: '1+2+3+4=', range: r(6, 2, 10), line: 6, expected: { value: 'mem', range: r(6, 15, 18) } });
    expect(f.prompts[1]).toMatchObject({ text: '5+6+7+8=', expected: null });
  });

  it('reads steerAt: all | prompt (the values of models/hooks.ts STEER_AT) and names the choices otherwise', () => {
    expect([...HEADER_STEER_AT]).toEqual([...STEER_AT]);
    expect(parseMemgen('steerAt: prompt\n1+2+3+4=').header.steerAt?.value).toBe('prompt');
    const bad = parseMemgen('steerAt: first\n1+2+3+4=');
    expect(bad.errors).toEqual([{ message: "unknown steerAt 'first'; the choices are all, prompt", range: r(0, 9, 14) }]);
  });

  it('joins block lines into one prompt and takes the expectation after <<<', () => {
    const f = parseMemgen(['run: a', '>>>', 'Kevin is blue.', '  What color is Kevin?', '<<< => blue'].join('\r\n'));
    expect(f.errors).toEqual([]);
    expect(f.prompts).toEqual([{ text: 'Kevin is blue. What color is Kevin?', range: { start: { line: 1, character: 0 }, end: { line: 4, character: 3 } }, line: 1, expected: { value: 'blue', range: r(4, 7, 11) } }]);
    expect(promptAt(f, 3)?.line).toBe(1);
    expect(promptAt(f, 0)).toBeUndefined();
  });

  it('gives each error its exact range and never throws', () => {
    const f = parseMemgen(['run:', 'site: mlp', 'topN: 0', 'alpha: x', 'colour: red', 'run: b', '1+1= =>', '=> gen', '<<<', '9+9=', 'site: ln2', '>>> junk', 'a'].join('\n'));
    const at = (s: string) => f.errors.find((e) => e.message.includes(s))?.range;
    expect(at("'run:' needs a value")).toEqual(r(0, 0, 4));
    expect(at('unknown site')).toEqual(r(1, 6, 9));
    expect(at('topN must be')).toEqual(r(2, 6, 7));
    expect(at('alpha must be')).toEqual(r(3, 7, 8));
    expect(at('unknown header key')).toEqual(r(4, 0, 6));
    expect(f.header.run?.value).toBe('b');
    expect(at("'=>' must be followed")).toEqual(r(6, 5, 7));
    expect(at('a prompt is missing')).toEqual(r(7, 0, 6));
    expect(at("'<<<' without")).toEqual(r(8, 0, 3));
    expect(at('after the first prompt')).toEqual(r(10, 0, 4));
    expect(at('stands alone')).toEqual(r(11, 4, 8));
    expect(at('never closed')).toEqual(r(11, 0, 3));
    expect(f.prompts.map((p) => p.text)).toEqual(['1+1=', '9+9=']);
  });

  it('survives arbitrary input', () => {
    for (const s of ['', '\n\n', '>>>', '<<<', '=>', ':', 'a:b:c', '#', ' # x', '>>>\n<<<', '\u0000\uffff']) expect(() => parseMemgen(s)).not.toThrow();
    expect(parseMemgen('>>>\n<<<').errors[0].message).toMatch(/empty block/);
  });

  it('parses the shipped examples without errors', () => {
    for (const name of ['arithmetic.memgen', 'incontext.memgen']) {
      const f = parseMemgen(fs.readFileSync(path.join(__dirname, '../../examples', name), 'utf8'));
      expect(f.errors, name).toEqual([]);
      expect(f.prompts.length, name).toBeGreaterThan(1);
    }
  });
});
