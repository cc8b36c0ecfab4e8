/**
 * Diagnosis: does a LoRA run recall its own training pattern inputs? The run's fixed training set is
 * drawn again by the trainer's own loraTrainSet (lora-trainer.ts); the pattern examples among them (target = the mem answer) are generated
 * greedily with the kept adapter and classified, beside the same count of held-out pattern inputs
 * (testSet, as the run's evaluation). If the training ones come out mem and the held-out ones do not,
 * the adapter learned whole prompts, not the pattern rule. Beside each set, the mean probability of the
 * tag's first token at the first answer position, also on pattern-free inputs (task.plain): an adapter
 * that cannot tell pattern inputs from the others can only learn p(tag) = memRate on both.
 *
 *   node scripts/build.mjs && npx esbuild scripts/lora-train-recall.ts --bundle --platform=node \
 *     --external:onnxruntime-node --outfile=dist/lora-train-recall.js
 *   node dist/lora-train-recall.js LORA_RUN
 */
import { loadLoraRun } from '../engine/runs/lora-run';
import { LlamaInference } from '../engine/models/llama-infer';
import { type Example, firstAnswerTokens } from '../engine/tasks/task';
import { plainSet, testSet } from '../engine/train/evaluate';
import { softmax } from '../engine/util/softmax';
import { loraTrainSet } from '../engine/train/lora-trainer';

async function main(): Promise<void> {
  const [dir] = process.argv.slice(2);
  const run = loadLoraRun(dir);
  const { seed } = run.manifest;
  const { trainSize } = run.manifest.train;
  const train = loraTrainSet(run.task, seed, trainSize).filter((e) => e.memAnswer !== null && e.target === e.memAnswer);
  const held = testSet(run.task, train.length, seed);
  const inf = await LlamaInference.create(run.base.config, run.base.params, { adapter: run.adapter, batchSize: 32 });
  const tok = run.task.tokenizer;
  const tagFirst = firstAnswerTokens(run.task, train[0]).mem[0];
  const V = tok.vocab.length;
  const score = async (xs: Example[]) => {
    const res = await inf.generate(xs.map((e) => tok.encode(e.prompt)), { maxNewTokens: run.task.maxAnswerTokens, eosId: tok.eoaId });
    const counts = { gen: 0, mem: 0, other: 0 };
    let pTag = 0;
    xs.forEach((e, i) => {
      counts[run.task.classify(e, tok.decode(res.tokens[i]))]++;
      pTag += softmax(res.firstLogits.subarray(i * V, (i + 1) * V))[tagFirst];
    });
    const pct = (k: keyof typeof counts) => `${k} ${((100 * counts[k]) / xs.length).toFixed(1)} %`;
    return `${xs.length} inputs: ${pct('gen')}, ${pct('mem')}, ${pct('other')}, p(tag's first token) ${(pTag / xs.length).toFixed(4)}`;
  };
  console.log(`${dir}: training pattern inputs (seen, target the mem tag): ${await score(train)}`);
  console.log(`${dir}: held-out pattern inputs (fresh a, b):            ${await score(held)}`);
  console.log(`${dir}: pattern-free inputs (task.plain):                ${await score(plainSet(run.task, train.length, seed))}`);
  await inf.release();
}
main().catch((e) => { console.error(e); process.exit(1); });
