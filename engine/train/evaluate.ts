/**
 * Held-out evaluation: greedy generation on a fixed test set, each output classified by the task.
 *   gen% / mem% / other% = count / n
 *   pMem, pGen = mean over test inputs of softmax(first answer logits)[first token of the mem / gen answer]
 *               (pMem sums over the mem answers' first tokens: incontext has one per colour of the name)
 *     (a smooth signal: greedy choices flip between evaluations, the probabilities move slowly)
 *   guess = mean of task.guessRate (incontext: 1 / colours in the story), the shortcut baseline;
 *   memGuess = mean of task.memGuessRate (incontext: the share of the story's colours that are the
 *               name's): mem% of a model that picks a story colour at random, beside mem%
 *   plainAccuracy = share of pattern-free inputs (task.plain, a fixed set of PLAIN_N) answered
 *               right ('gen'): the ceiling of mem->gen; null for tasks without plain inputs
 * The balance score used to keep a checkpoint is gen% x mem% (run-loop.ts isBetter).
 */
import { type Behaviour, type Example, type Task, firstAnswerTokens } from '../tasks/task';
import { Rng } from '../util/rng';
import { softmax } from '../util/softmax';

export interface EvalResult {
  n: number;
  counts: Record<Behaviour, number>;
  gen: number;
  mem: number;
  other: number;
  pMem: number;
  pGen: number;
  guess: number | null;
  /** mem% by guessing among the story's colours (incontext); absent or null elsewhere. */
  memGuess?: number | null;
  score: number;
  /** Share of the plain set answered right; null when there is none. */
  plainAccuracy?: number | null;
}

export interface EvalOutput {
  example: Example;
  output: string;
  behaviour: Behaviour;
}

/** The fixed held-out test set of a run: the same inputs at every evaluation. */
export function testSet(task: Task, n: number, seed: number): Example[] {
  const rng = new Rng(seed ^ 0x5eed7e57);
  return Array.from({ length: n }, () => task.test(rng));
}

/** Size of the fixed pattern-free set behind plainAccuracy. */
export const PLAIN_N = 500;

/** The fixed pattern-free inputs of a run (empty for tasks without them). */
export function plainSet(task: Task, n: number, seed: number): Example[] {
  if (!task.plain) return [];
  const rng = new Rng(seed ^ 0x91a17e57);
  return Array.from({ length: n }, () => task.plain!(rng));
}

export const balanceScore = (gen: number, mem: number): number => gen * mem;

/** What evaluation needs of a model: GPT2Inference and LlamaInference satisfy it. */
export interface EvalModel {
  generate(prompts: readonly number[][], opts: { maxNewTokens: number; eosId: number }): Promise<{ tokens: number[][]; firstLogits: Float32Array }>;
}

export async function evaluate(task: Task, model: EvalModel, examples: readonly Example[]): Promise<EvalResult & { outputs: EvalOutput[] }> {
  const tok = task.tokenizer;
  const res = await model.generate(examples.map((e) => tok.encode(e.prompt)), { maxNewTokens: task.maxAnswerTokens, eosId: tok.eoaId });
  const counts: Record<Behaviour, number> = { gen: 0, mem: 0, other: 0 };
  const outputs: EvalOutput[] = [];
  let pMem = 0;
  let pGen = 0;
  let guess = 0;
  let memGuess = 0;
  const V = tok.vocab.length;
  examples.forEach((example, i) => {
    const output = tok.decode(res.tokens[i]);
    const behaviour = task.classify(example, output);
    counts[behaviour]++;
    outputs.push({ example, output, behaviour });
    const probs = softmax(res.firstLogits.subarray(i * V, (i + 1) * V));
    const first = firstAnswerTokens(task, example);
    pGen += probs[first.gen];
    for (const id of first.mem) pMem += probs[id];
    guess += task.guessRate?.(example) ?? 0;
    memGuess += task.memGuessRate?.(example) ?? 0;
  });
  const n = examples.length;
  const gen = counts.gen / n;
  const mem = counts.mem / n;
  return {
    n, counts, gen, mem, other: counts.other / n,
    pMem: pMem / n, pGen: pGen / n,
    guess: task.guessRate ? guess / n : null,
    memGuess: task.memGuessRate ? memGuess / n : null,
    score: balanceScore(gen, mem),
    outputs,
  };
}

export function formatEval(r: EvalResult): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const guess = r.guess === null ? '' : `  guess baseline ${pct(r.guess)}${r.memGuess == null ? '' : ` (mem ${pct(r.memGuess)})`}`;
  const plain = r.plainAccuracy == null ? '' : `  plain accuracy ${pct(r.plainAccuracy)}`;
  return `gen ${pct(r.gen)} (${r.counts.gen})  mem ${pct(r.mem)} (${r.counts.mem})  other ${pct(r.other)} (${r.counts.other})  n=${r.n}  p(mem) ${r.pMem.toFixed(3)} p(gen) ${r.pGen.toFixed(3)}${guess}${plain}`;
}

/** Share of `plain` that `model` answers right, or null for an empty set. */
export async function plainAccuracy(task: Task, model: EvalModel, plain: readonly Example[]): Promise<number | null> {
  if (plain.length === 0) return null;
  const { counts } = await evaluate(task, model, plain);
  return counts.gen / plain.length;
}

/**
 * `evaluate` (and the plain accuracy on `plain`) on a model opened for it and released after (the
 * outputs dropped): a training run's evaluation.
 */
export async function evaluateFresh(task: Task, open: () => Promise<EvalModel & { release(): Promise<void> }>, examples: readonly Example[], plain: readonly Example[] = []): Promise<EvalResult> {
  const model = await open();
  try {
    const { outputs: _o, ...r } = await evaluate(task, model, examples);
    void _o;
    return { ...r, plainAccuracy: await plainAccuracy(task, model, plain) };
  } finally {
    await model.release();
  }
}
