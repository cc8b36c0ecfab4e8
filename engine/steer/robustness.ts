/**
 * Rephrasing robustness of a prompt: how fragile is its behaviour under the surface changes that the
 * paper's pairs show can flip it? The rephrasings are the task's own pair rule (Task.rephrase:
 * arithmetic swaps operands 1 and 2, the one order that keeps the pattern in place; incontext
 * shuffles the statements; cipher swaps two free letters), applied again and again:
 *   variants  = up to K distinct prompts of the walk x_{j+1} = rephrase(x_j, rng) from x_0 = the
 *               prompt (Rng(seed); at most 8K steps), the prompt itself excluded; arithmetic has one
 *   behaviour = task.classify of the greedy answer (as every evaluation here)
 *   flip rate = #{variants whose behaviour differs from the prompt's} / #variants
 *   neurons   = the top M (layer l, index i) by |mean_flip h[l][i] - mean_keep h[l][i]|, h the hook
 *               site's vector at the last prompt position (the site the steering uses), named
 *               blocks.{l}.{site}[i] (GPT-2) or layers.{l}.{site}[i] (LLaMA); only when some variants
 *               flip and some keep
 */
import type { Behaviour, Example, Task } from '../tasks/task';
import { Rng } from '../util/rng';
import { familySiteName } from '../models/sites';
import type { SteerModel } from './steer-eval';

export interface RephrasingOutcome {
  prompt: string;
  output: string;
  behaviour: Behaviour;
}

export interface NeuronDifference {
  /** e.g. blocks.3.ln2[17] */
  name: string;
  layer: number;
  index: number;
  /** mean over flipping variants minus mean over keeping ones. */
  diff: number;
}

export interface RobustnessResult {
  prompt: RephrasingOutcome;
  variants: RephrasingOutcome[];
  flips: number;
  flipRate: number | null;
  /** The behaviour most flips go to (null without flips). */
  flipsTo: Behaviour | null;
  neurons: NeuronDifference[];
}

/** Up to k distinct rephrasings of `ex` (header: the walk of the pair rule). */
export function rephrasings(task: Task, ex: Example, k: number, seed: number): Example[] {
  const rng = new Rng(seed);
  const seen = new Set([ex.prompt]);
  const out: Example[] = [];
  let x = ex;
  for (let step = 0; step < 8 * k && out.length < k; step++) {
    x = task.rephrase(x, rng);
    if (seen.has(x.prompt)) continue;
    seen.add(x.prompt);
    out.push(x);
  }
  return out;
}

/** The behaviour of `ex` and of up to k rephrasings, the flip rate and the neurons that differ most (header). */
export async function robustness(task: Task, model: SteerModel, ex: Example, opts: { k: number; seed: number; topNeurons: number }): Promise<RobustnessResult> {
  const tok = task.tokenizer;
  const all = [ex, ...rephrasings(task, ex, opts.k, opts.seed)];
  const res = await model.generate(all.map((e) => tok.encode(e.prompt)), { maxNewTokens: task.maxAnswerTokens, eosId: tok.eoaId });
  const outcomes = all.map((e, i): RephrasingOutcome => {
    const output = tok.decode(res.tokens[i]);
    return { prompt: e.prompt, output, behaviour: task.classify(e, output) };
  });
  const [first, ...variants] = outcomes;
  const flipped = variants.map((v) => v.behaviour !== first.behaviour);
  const flips = flipped.filter(Boolean).length;
  const to = new Map<Behaviour, number>();
  variants.forEach((v, i) => flipped[i] && to.set(v.behaviour, (to.get(v.behaviour) ?? 0) + 1));
  const flipsTo = flips ? [...to].sort((a, b) => b[1] - a[1])[0][0] : null;

  const { nLayer: L, nEmbd: d } = model.cfg;
  const neurons: NeuronDifference[] = [];
  if (flips > 0 && flips < variants.length) {
    const diff = new Float64Array(L * d);
    const keep = variants.length - flips;
    variants.forEach((_, i) => {
      const h = res.hidden.subarray((i + 1) * L * d, (i + 2) * L * d);
      const w = flipped[i] ? 1 / flips : -1 / keep;
      for (let j = 0; j < L * d; j++) diff[j] += w * h[j];
    });
    const order = [...diff.keys()].sort((a, b) => Math.abs(diff[b]) - Math.abs(diff[a])).slice(0, opts.topNeurons);
    for (const j of order) {
      const layer = Math.floor(j / d);
      const index = j % d;
      neurons.push({ name: `${familySiteName(layer, model.site, model.family)}[${index}]`, layer, index, diff: diff[j] });
    }
  }
  return { prompt: first, variants, flips, flipRate: variants.length ? flips / variants.length : null, flipsTo, neurons };
}

/** "3 of 8 rephrasings flip to mem" (or why there is no rate). */
export function formatFlips(r: RobustnessResult): string {
  if (r.variants.length === 0) return 'no rephrasing: the pair rule gives this prompt no other surface';
  const n = r.variants.length;
  return r.flips === 0 ? `0 of ${n} rephrasing${n === 1 ? '' : 's'} flip` : `${r.flips} of ${n} rephrasing${n === 1 ? '' : 's'} flip to ${r.flipsTo}`;
}
