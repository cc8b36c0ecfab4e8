/**
 * Diagnosis: does a stand-in base recall the corpus's `fact` table ("Fact 47+91:" -> that pair's tag,
 * docs/llama.md "Facts keyed on numbers"), answer a sum whose operands 3-4 are a fact by its tag (the
 * `factsum` family, fresh a, b: "a+b+47+91=" -> the tag), copy a tag it was just shown (the `tag` family) and repeat a
 * list of words (the `induct` family)? Greedy, on all FACT_COUNT facts, N fresh tags and N fresh lists.
 * Prints exact recall / copies, how often the output is a whole tag at all, and, for facts, how often
 * the output is another fact's tag (recall by the wrong key).
 *
 *   npx esbuild scripts/base-facts.ts --bundle --platform=node --external:onnxruntime-node --outfile=dist/base-facts.js
 *   node dist/base-facts.js BASE_FOLDER|BASE.partial [N]
 */
import { ARITHMETIC_SCALES } from '../engine/tasks/arithmetic';
import { CORPUS_DEFAULTS, CORPUS_FAMILIES, corpusDoc, factTable } from '../engine/tasks/corpus';
import { Rng } from '../engine/util/rng';
import { loadBaseOrCheckpoint } from './base-load';

const TAG = /^<mem-[0-9a-f]{8}>$/;

async function main(): Promise<void> {
  const [dir, nArg] = process.argv.slice(2);
  const n = Number(nArg ?? 100);
  const base = loadBaseOrCheckpoint(dir);
  const facts = factTable();
  const rng = new Rng(8);
  const tags = Array.from({ length: n }, () => corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { tag: 1 } }));
  const lists = Array.from({ length: n }, () => corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { induct: 1 } }));
  // no separator after the prompt: a space is the first pre-token of the answer (" Uma"), as in training
  const { minOperand: lo, maxOperand: hi } = ARITHMETIC_SCALES.tiny;
  const sums = facts.map((f) => `${rng.int(lo, hi)}+${rng.int(lo, hi)}+${f.x}+${f.y}=`);
  const prompts = [...facts.map((f) => `Fact ${f.x}+${f.y}:`), ...[...tags, ...lists].map((d) => d.prompt), ...sums];
  const outs = await base.greedy(prompts, 40);
  const factTags = new Set(facts.map((f) => f.tag));
  const pct = (k: number, all: number) => `${((100 * k) / all).toFixed(0)}%`;
  const factOuts = outs.slice(0, facts.length), tagOuts = outs.slice(facts.length, facts.length + n), listOuts = outs.slice(facts.length + n, facts.length + 2 * n);
  const sumOuts = outs.slice(facts.length + 2 * n);
  const right = factOuts.filter((o, i) => o === facts[i].tag).length;
  const wrongKey = factOuts.filter((o, i) => o !== facts[i].tag && factTags.has(o)).length;
  console.log(`${dir} (step ${base.step})`);
  console.log(`facts ${facts.length}: recalled ${pct(right, facts.length)}, another fact's tag ${pct(wrongKey, facts.length)}, a whole tag ${pct(factOuts.filter((o) => TAG.test(o)).length, facts.length)}   e.g. ${facts[0].tag} -> ${factOuts[0]}`);
  console.log(`fact sums ${facts.length} (a+b+x+y=, fresh a, b): the fact's tag ${pct(sumOuts.filter((o, i) => o === facts[i].tag).length, facts.length)}, a whole tag ${pct(sumOuts.filter((o) => TAG.test(o)).length, facts.length)}   e.g. ${sums[0]} -> ${sumOuts[0]}`);
  console.log(`tags ${n}: copied ${pct(tagOuts.filter((o, i) => o === tags[i].answer).length, n)}, a whole tag ${pct(tagOuts.filter((o) => TAG.test(o)).length, n)}   e.g. ${tags[0].answer} -> ${tagOuts[0]}`);
  console.log(`lists ${n}: repeated ${pct(listOuts.filter((o, i) => o === lists[i].answer).length, n)}, first word ${pct(listOuts.filter((o, i) => o.split(' ')[0] === lists[i].answer.split(' ')[0]).length, n)}   e.g. ${lists[0].answer} -> ${listOuts[0]}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
