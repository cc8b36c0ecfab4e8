/**
 * Diagnosis: how far a stand-in base (or a pretraining's last checkpoint) is from adding
 * (docs/llama.md, "The stand-in base"). On N held-out four-operand sums of the corpus's sum4
 * family (seed 5, operands 10..99, the reversed-partial-sums scratchpad as the corpus writes it),
 * greedy generation, it prints: exact match, each reversed partial sum right, characters right at each answer position,
 * and the first answer character (= the units digit of a + b).
 *
 *   node scripts/build.mjs && npx esbuild scripts/base-sums.ts --bundle --platform=node \
 *     --external:onnxruntime-node --outfile=/tmp/base-sums.js
 *   node /tmp/base-sums.js BASE_FOLDER [N] [FAMILY]  a finished base (FAMILY: sum4, or sum2 / sumk)
 *   node /tmp/base-sums.js BASE.partial [N] [FAMILY] a pretraining's checkpoints/last
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CORPUS_DEFAULTS, corpusDoc } from '../engine/tasks/corpus';
import { Rng } from '../engine/util/rng';
import { loadBaseOrCheckpoint } from './base-load';

async function main(): Promise<void> {
  const [dir, nArg, family = 'sum4'] = process.argv.slice(2);
  const n = Number(nArg ?? 200);
  const base = loadBaseOrCheckpoint(dir);
  // the corpus options the base was pretrained with (a finished base's manifest, or pretrain.json)
  const rec = JSON.parse(fs.readFileSync(path.join(dir, fs.existsSync(path.join(dir, 'pretrain.json')) ? 'pretrain.json' : 'manifest.json'), 'utf8'));
  const sumDigits: number = rec.sumDigits ?? rec.corpus?.sumDigits ?? 0;
  const rng = new Rng(5);
  const docs = Array.from({ length: n }, () => corpusDoc(rng, [family], { ...CORPUS_DEFAULTS, sumDigits })) // uniform operands, as the tasks;
  const outs = await base.greedy(docs.map((d) => d.prompt), 24);
  let exact = 0;
  const right: number[] = [], total: number[] = [];
  const groups = [0, 0, 0];
  docs.forEach((d, i) => {
    const out = outs[i];
    if (out === d.answer) exact++;
    const want = d.answer.split(','), got = out.split(',');
    want.forEach((w, k) => { if (got[k] === w) groups[k]++; });
    [...d.answer].forEach((c, j) => {
      total[j] = (total[j] ?? 0) + 1;
      right[j] = (right[j] ?? 0) + (out[j] === c ? 1 : 0);
    });
  });
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(0)}%`;
  console.log(`${dir} (step ${base.step}): ${n} ${family} (sum digits ${sumDigits}), exact ${pct(exact, n)}; units digit of a+b ${pct(right[0], n)}`);
  console.log(`partial sums right: a+b ${pct(groups[0], n)}, a+b+c ${pct(groups[1], n)}, a+b+c+d ${pct(groups[2], n)}`);
  console.log('characters right by answer position: ' + total.map((t, j) => `${j}:${pct(right[j], t)}`).join(' '));
  console.log('e.g. ' + docs.slice(0, 3).map((d, i) => `${d.prompt}${d.answer} -> ${outs[i]}`).join(' | '));
}
main().catch((e) => { console.error(e); process.exit(1); });
