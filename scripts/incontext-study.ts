/**
 * Study: what makes a GPT-2 trained from scratch read an in-context story (docs/results.md,
 * "In-context: the two-hop rule"). Prior-free stories only (IncontextTask.plain: the context colour is
 * drawn from all colours, so only the context decides), the task's tiny scale unless --names.
 *
 * Levers:
 *   --drill P      with probability P a training story is a drill: the story, then a question about
 *                  every stated fact in random order (`What color is X? c.` for each stated colour,
 *                  `What is X? r.` for each stated role), then the two-hop `What color is T? C_S`;
 *                  the loss covers only the answer words and the end, so one story trains 2n answers
 *                  instead of one (dense supervision of the lookup the two-hop rule is made of).
 *   --pos-scale s  wpe initialised as sinusoids times s (Vaswani et al.: PE(p, 2i) = sin(p / 10000^(2i/d)),
 *                  PE(p, 2i+1) = cos(...)), so that an offset between positions is a linear map from the
 *                  start; 0 (default) keeps GPT-2's N(0, 0.02).
 * Printed every --eval-every steps: training loss, two-hop accuracy on 500 held-out prior-free stories
 * (the standard prompt, greedy) and one-hop accuracy (`What color is S?`), with guessing among the
 * story's colours.
 *
 *   node scripts/build.mjs && npx esbuild scripts/incontext-study.ts --bundle --platform=node \
 *     --external:onnxruntime-node --outfile=/tmp/ic.js && node /tmp/ic.js --steps 6000 --drill 0.5
 */
import { Graph, ops } from '../engine/graph';
import { GPT2Inference } from '../engine/models/gpt2-infer';
import { GPT2_PRESETS, type GPT2Config, gpt2Forward, gpt2ParamInputs, initGPT2 } from '../engine/models/gpt2';
import { type IncontextMeta, IncontextTask } from '../engine/tasks/incontext';
import type { Example } from '../engine/tasks/task';
import { IGNORE_INDEX } from '../engine/train/data';
import { evaluate } from '../engine/train/evaluate';
import { Adam, clipGradNorm } from '../engine/train/optim';
import { learningRate } from '../engine/train/schedule';
import { TrainStep } from '../engine/train/step';
import { Rng } from '../engine/util/rng';

const argv = process.argv.slice(2);
const arg = (name: string, def: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const steps = Number(arg('steps', '6000'));
const lr = Number(arg('lr', '1e-3'));
const batch = Number(arg('batch', '64'));
const drill = Number(arg('drill', '0'));
const posScale = Number(arg('pos-scale', '0'));
const seed = Number(arg('seed', '0'));
const evalEvery = Number(arg('eval-every', '500'));
const preset = arg('preset', 'tiny') as 'tiny' | 'small';
const threads = Number(arg('threads', '1'));
const [minNames, maxNames] = arg('names', '3-5').split('-').map(Number);

const task = new IncontextTask({ scale: 'tiny', seed, colorsPerName: 5 });
Object.assign(task, { minNames, maxNames });
const tok = task.tokenizer;

/** A drill (see the header) or the plain story: token ids and the loss mask. */
function example(rng: Rng): { ids: number[]; answer: boolean[] } {
  const ex = task.plain(rng);
  const m = ex.meta as unknown as IncontextMeta;
  const ids: number[] = [];
  const answer: boolean[] = [];
  const put = (text: string, isAnswer: boolean) => {
    for (const id of tok.encode(text)) { ids.push(id); answer.push(isAnswer); }
  };
  put(m.statements.join(' '), false);
  if (rng.uniform() < drill) {
    const qa: [string, string][] = [];
    for (const st of m.statements) {
      const [, who, what] = /^(\S+) is (\S+)\.$/.exec(st)!;
      qa.push(m.colours.includes(what) ? [`What color is ${who}?`, what] : [`What is ${who}?`, what]);
    }
    rng.shuffle(qa);
    for (const [q, a] of qa) { put(` ${q}`, false); put(` ${a}`, true); put('.', false); }
  }
  put(` What color is ${m.target}?`, false);
  put(` ${ex.target}`, true);
  ids.push(tok.eoaId); answer.push(true);
  return { ids, answer };
}

const probe = (() => { const r = new Rng(seed + 99); return Array.from({ length: 200 }, () => example(r).ids.length); })();
const seqLen = Math.max(...probe) + 8;
const cfg: GPT2Config = { ...GPT2_PRESETS[preset], vocabSize: tok.vocab.length, nPositions: seqLen };

function batchOf(rng: Rng) {
  const ids = new BigInt64Array(batch * seqLen).fill(BigInt(tok.padId));
  const targets = new BigInt64Array(batch * seqLen).fill(BigInt(IGNORE_INDEX));
  for (let b = 0; b < batch; b++) {
    const e = example(rng);
    const n = Math.min(e.ids.length, seqLen + 1);
    for (let t = 0; t < n - 1; t++) {
      ids[b * seqLen + t] = BigInt(e.ids[t]);
      if (e.answer[t + 1]) targets[b * seqLen + t] = BigInt(e.ids[t + 1]);
    }
  }
  return { ids: { data: ids, dims: [batch, seqLen] }, targets: { data: targets, dims: [batch, seqLen] } };
}

function oneHop(ex: Example): Example {
  const m = ex.meta as unknown as IncontextMeta;
  return { ...ex, prompt: `${m.statements.join(' ')} What color is ${m.source}?` };
}

async function main() {
  const params = initGPT2(cfg, new Rng(seed));
  if (posScale > 0) {
    const wpe = params.get('transformer.wpe.weight')!.data;
    const d = cfg.nEmbd;
    for (let p = 0; p < seqLen; p++) {
      for (let i = 0; i < d; i += 2) {
        const a = p / Math.pow(10000, i / d);
        wpe[p * d + i] = posScale * Math.sin(a);
        wpe[p * d + i + 1] = posScale * Math.cos(a);
      }
    }
  }
  const adam = new Adam(params, { lr, weightDecay: 0 });
  const g = new Graph('ic_study');
  const idsIn = g.input('ids', [batch, seqLen], 'int64');
  const tgtIn = g.input('targets', [batch, seqLen], 'int64');
  const step = await TrainStep.compile(g, ops.crossEntropy(gpt2Forward(cfg, gpt2ParamInputs(g, cfg), idsIn), tgtIn), { threads });
  const evalRng = new Rng(seed ^ 0x91a17e57);
  const two = Array.from({ length: 500 }, () => task.plain(evalRng));
  const one = two.map(oneHop);
  const guess = two.reduce((s, e) => s + task.guessRate(e), 0) / two.length;
  const rng = new Rng(seed * 7919 + 17);
  console.log(JSON.stringify({ preset, steps, lr, batch, drill, posScale, names: [minNames, maxNames], seqLen, guess: +(100 * guess).toFixed(1) }));
  const t0 = performance.now();
  let lossSum = 0;
  for (let s = 0; s < steps; s++) {
    const { loss, grads } = await step.run(params, batchOf(rng));
    lossSum += loss;
    clipGradNorm(grads, 1);
    adam.step(params, grads, learningRate({ lr, warmup: 100, total: steps, minFraction: 0.1 }, s));
    if ((s + 1) % evalEvery === 0 || s + 1 === steps) {
      const inf = await GPT2Inference.create(cfg, params, { runner: { threads } });
      const acc2 = (await evaluate(task, inf, two)).gen;
      const acc1 = (await evaluate(task, inf, one)).gen;
      await inf.release();
      console.log(JSON.stringify({ step: s + 1, loss: +(lossSum / evalEvery).toFixed(4), twoHop: +(100 * acc2).toFixed(1), oneHop: +(100 * acc1).toFixed(1), seconds: Math.round((performance.now() - t0) / 1000) }));
      lossSum = 0;
    }
  }
  await step.release();
}
main().catch((e) => { console.error(e); process.exit(1); });
