/**
 * Diagnosis (docs/llama.md, "Steering at the last prompt position"): what a shift at ONE layer's
 * resid_post, at the last prompt position only, can do for a LoRA run's pairs, beside what the mean
 * shift does. For the first N pairs of RUN/analysis (pairs.jsonl, hidden_gen.npy, hidden_mem.npy:
 * resid_post at the last prompt token, unsteered), and each layer l:
 *   patch   the mem member generated with steer[l] = h_gen[l] - h_mem[l] (its own pair's gen member's
 *           vector put in place of its own at layer l; the earlier positions stay its own)
 *   mean    the mem member generated with steer[l] = NMD[l] = mean over pairs of h_gen[l] - h_mem[l]
 * and the same toward mem on the gen member (- the difference). Prints % gen / mem / other per layer
 * and direction.
 *
 *   node scripts/build.mjs && npx esbuild scripts/arith-patch.ts --bundle --platform=node \
 *     --external:onnxruntime-node --outfile=dist/arith-patch.js
 *   node dist/arith-patch.js RUN [N 200]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readNpy } from '../engine/analysis/npy';
import { LlamaInference } from '../engine/models/llama-infer';
import { loadLoraRun } from '../engine/runs/lora-run';

interface PairLine {
  original: { prompt: string; behaviour: string };
  rephrasing: { prompt: string; behaviour: string };
}

async function main(): Promise<void> {
  const [dir, nArg = '200'] = process.argv.slice(2);
  const run = loadLoraRun(dir);
  const pairs = fs.readFileSync(path.join(dir, 'analysis', 'pairs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as PairLine);
  const g = readNpy(path.join(dir, 'analysis', 'hidden_gen.npy'));
  const m = readNpy(path.join(dir, 'analysis', 'hidden_mem.npy'));
  const [P, L, d] = g.shape;
  const n = Math.min(Number(nArg), P);
  const at = (h: Float32Array, i: number, l: number) => h.subarray((i * L + l) * d, (i * L + l + 1) * d);
  const nmd = Array.from({ length: L }, (_, l) => {
    const v = new Float32Array(d);
    for (let i = 0; i < P; i++) for (let j = 0; j < d; j++) v[j] += (at(g.data, i, l)[j] - at(m.data, i, l)[j]) / P;
    return v;
  });
  const inf = await LlamaInference.create(run.base.config, run.base.params, { adapter: run.adapter, batchSize: 1 });
  const tok = run.task.tokenizer;
  const zeros = () => Array.from({ length: L }, () => new Float32Array(d));
  const classify = async (prompt: string, steer: Float32Array[]) => {
    const res = await inf.generate([tok.encode(prompt)], { maxNewTokens: run.task.maxAnswerTokens, eosId: tok.eoaId, steer, steerAt: 'prompt' });
    return run.task.classify(run.task.fromPrompt(prompt), tok.decode(res.tokens[0]));
  };
  for (const dir of ['mem->gen', 'gen->mem'] as const) {
    const sign = dir === 'mem->gen' ? 1 : -1;
    for (let l = 0; l < L; l++) {
      const counts = { patch: { gen: 0, mem: 0, other: 0 }, mean: { gen: 0, mem: 0, other: 0 } };
      for (let i = 0; i < n; i++) {
        const p = pairs[i];
        const member = p.original.behaviour === (dir === 'mem->gen' ? 'mem' : 'gen') ? p.original : p.rephrasing;
        const own = zeros();
        own[l] = Float32Array.from(at(g.data, i, l), (x, j) => sign * (x - at(m.data, i, l)[j]));
        const mean = zeros();
        mean[l] = Float32Array.from(nmd[l], (x) => sign * x);
        counts.patch[await classify(member.prompt, own)]++;
        counts.mean[await classify(member.prompt, mean)]++;
      }
      const pct = (c: { gen: number; mem: number; other: number }) => `gen ${((100 * c.gen) / n).toFixed(1)} / mem ${((100 * c.mem) / n).toFixed(1)} / other ${((100 * c.other) / n).toFixed(1)}`;
      console.log(`${dir} layer ${l} (layers.${l}.resid_post), n = ${n}: patch (own pair) ${pct(counts.patch)} | mean (NMD) ${pct(counts.mean)}`);
    }
  }
  await inf.release();
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
