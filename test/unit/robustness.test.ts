/** Rephrasing robustness (engine/steer/robustness.ts): the walk of the pair rule, flip counting, the neurons that differ. */
import { describe, expect, it } from 'vitest';
import { type RobustnessResult, formatFlips, rephrasings, robustness } from '../../engine/steer/robustness';
import type { SteerModel } from '../../engine/steer/steer-eval';
import { makeTask } from '../../engine/tasks';
import type { GenerateOptions, GenerateResult } from '../../engine/models/gpt2-infer';
import { Rng } from '../../engine/util/rng';

describe('rephrasing robustness', () => {
  it('walks the pair rule to k distinct surfaces (arithmetic has exactly one), seeded', () => {
    const ar = makeTask('arithmetic', { seed: 0 });
    const ex = ar.test(new Rng(1));
    const [only, ...more] = rephrasings(ar, ex, 8, 0);
    expect(more).toEqual([]);
    expect(only.prompt).not.toBe(ex.prompt);
    expect(only.genAnswer).toBe(ex.genAnswer);
    const ic = makeTask('incontext', { seed: 0 });
    const story = ic.test(new Rng(2));
    const v = rephrasings(ic, story, 8, 3);
    expect(v).toHaveLength(8);
    expect(new Set([story.prompt, ...v.map((x) => x.prompt)]).size).toBe(9);
    expect(rephrasings(ic, story, 8, 3).map((x) => x.prompt)).toEqual(v.map((x) => x.prompt));
    expect(v.every((x) => x.genAnswer === story.genAnswer)).toBe(true);
  });

  it('counts flips against the prompt and ranks the neurons by mean flipping - mean keeping', async () => {
    const task = makeTask('incontext', { seed: 0 });
    const ex = task.test(new Rng(5));
    const [L, d] = [2, 4];
    // the prompt and variants 2, 4 memorize; variants 1, 3, 5.. generalize; neuron (1, 2) is 1 on generalizing inputs
    const model: SteerModel = {
      site: 'ln2', cfg: { nLayer: L, nEmbd: d },
      async generate(prompts: readonly number[][], _o: GenerateOptions): Promise<GenerateResult> {
        const gen = (i: number) => i % 2 === 1;
        const hidden = new Float32Array(prompts.length * L * d);
        prompts.forEach((_, i) => { hidden[i * L * d + 1 * d + 2] = gen(i) ? 1 : 0; hidden[i * L * d + 3] = 0.25 * i; });
        return {
          tokens: prompts.map((_, i) => task.tokenizer.encode(gen(i) ? ex.genAnswer : ex.memAnswer!.split(' / ')[0])),
          stoppedAtEos: prompts.map(() => true), hidden, firstLogits: new Float32Array(0),
        };
      },
    };
    const r: RobustnessResult = await robustness(task, model, ex, { k: 6, seed: 0, topNeurons: 2 });
    expect(r.prompt.behaviour).toBe('mem');
    expect(r.variants.map((x) => x.behaviour)).toEqual(['gen', 'mem', 'gen', 'mem', 'gen', 'mem']);
    expect([r.flips, r.flipRate, r.flipsTo]).toEqual([3, 0.5, 'gen']);
    expect(r.neurons[0]).toMatchObject({ name: 'blocks.1.ln2[2]', layer: 1, index: 2, diff: 1 });
    expect(r.neurons[1]).toMatchObject({ name: 'blocks.0.ln2[3]' });
    expect(r.neurons[1].diff).toBeCloseTo(-0.25, 6); // variants 1,3,5 (0.25 i: 0.75 mean) vs 2,4,6 (1.0 mean)
    expect(formatFlips(r)).toBe('3 of 6 rephrasings flip to gen');
  });
});
