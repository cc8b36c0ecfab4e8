/**
 * Diagnosis: where a stand-in base holds each hop of a composed question (docs/llama.md, "Hops
 * supervised inside"). N held-out stories (seed 17) asked `Who is like T?` (hop: T's role) and N asked
 * the two-hop `What color is T?` (hops: T's role, then S, the name sharing it); at the question's last
 * token (the position that writes the answer), the residual stream after each layer (resid_post) read
 * through the final RMSNorm and the tied head (the logit lens, as `memgen pretrain --hop-layers` scores
 * it): the share of stories whose top token there is each hop's first token, the answer's, and T's
 * (the asked name, which the lookup by value must pass over). Then the story's own hops (corpus.ts Hop):
 * the prompt cut after a role word and after a colour word (is the lens there its statement's name)
 * and after the later role word of the pair that shares a role (the earlier statement's name: the
 * link a story can hold before any question).
 *
 *   lens_l = argmax_v E[v] . (g * h_l / rms(h_l))     g = model.norm.weight, E = embed_tokens (tied)
 *
 *   node scripts/build.mjs && npx esbuild scripts/hop-lens.ts --bundle --platform=node \
 *     --external:onnxruntime-node --outfile=dist/hop-lens.js
 *   node dist/hop-lens.js BASE_FOLDER|BASE.partial [N]
 */
import { LlamaInference } from '../engine/models/llama-infer';
import { BOS_TOKEN, CORPUS_DEFAULTS, CORPUS_FAMILIES, type CorpusOptions, corpusDoc } from '../engine/tasks/corpus';
import { hopToken } from '../engine/train/llama-pretrain';
import { Rng } from '../engine/util/rng';
import { loadBaseOrCheckpoint } from './base-load';

async function main(): Promise<void> {
  const [dir, nArg] = process.argv.slice(2);
  const n = Number(nArg ?? 300);
  const base = loadBaseOrCheckpoint(dir);
  const { cfg, params, tok } = base;
  const d = cfg.hiddenSize, L = cfg.numLayers, V = cfg.vocabSize;
  const embed = params.get('model.embed_tokens.weight')!.data, norm = params.get('model.norm.weight')!.data;
  const [bos] = tok.encode(BOS_TOKEN, { addSpecialTokens: false });
  const first = (text: string) => hopToken(tok, text);
  const lens = (h: Float32Array, off: number): number => {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += h[off + i] * h[off + i];
    const r = 1 / Math.sqrt(ss / d + cfg.rmsNormEps);
    let best = -Infinity, arg = 0;
    for (let v = 0; v < V; v++) {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += embed[v * d + i] * norm[i] * h[off + i];
      if (dot * r > best) [best, arg] = [dot * r, v];
    }
    return arg;
  };
  const inf = await LlamaInference.create(cfg, params, { batchSize: 64 });
  try {
    const rng = new Rng(17);
    const pct = (k: number) => `${((100 * k) / n).toFixed(1)}%`;
    for (const family of ['like', 'colour'] as const) {
      const docs: { prompt: string; want: string[] }[] = [];
      while (docs.length < n) {
        const doc = corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, mix: { [family]: 1 } });
        // the question's hops by level, the answer, and T (the asked name, last word of the prompt)
        if (doc.hops) docs.push({ prompt: doc.prompt, want: [...doc.hops.filter((h) => h.at === doc.prompt).map((h) => h.text), doc.answer, doc.prompt.match(/ (\w+)\?$/)![1]] });
      }
      const res = await inf.generate(docs.map((x) => [bos, ...tok.encode(x.prompt, { addSpecialTokens: false })]), { maxNewTokens: 0 });
      const labels = [...(family === 'like' ? ['role'] : ['role', 'mate']), 'answer', 'T'];
      const hits = Array.from({ length: L }, () => labels.map(() => 0));
      docs.forEach((x, i) => {
        const want = x.want.map(first);
        for (let l = 0; l < L; l++) {
          const top = lens(res.hidden, (i * L + l) * d);
          want.forEach((w, k) => (hits[l][k] += top === w ? 1 : 0));
        }
      });
      console.log(`${dir} (step ${base.step}): ${family === 'like' ? '"Who is like T?"' : 'two-hop "What color is T?"'}, ${n} held-out stories, the logit lens at "?" after each layer (top token = ...)`);
      hits.forEach((h, l) => console.log(`  layer ${l}: ${labels.map((lab, k) => `${lab} ${pct(h[k])}`).join('  ')}`));
    }
    // the story's hops: its last role word, the later of the pair's role words, its last colour word
    // (a one-hop colour question's hops are the colour words')
    for (const [level, word] of [[0, 'role'], [1, 'role'], [0, 'colour']] as const) {
      const mix: Partial<CorpusOptions> = word === 'role' ? { mix: { like: 1 } } : { mix: { colour: 1 }, directColour: 1 };
      const hops = Array.from({ length: n }, () => corpusDoc(rng, CORPUS_FAMILIES, { ...CORPUS_DEFAULTS, ...mix }).hops!.filter((h) => h.level === level && h.at.endsWith('?') === false).pop()!);
      const res = await inf.generate(hops.map((h) => [bos, ...tok.encode(h.at, { addSpecialTokens: false })]), { maxNewTokens: 0 });
      // at random: one of the names stated so far, other than the statement's own for the pair's link
      const random = hops.reduce((sum, h) => {
        const names = h.at.split('. ').map((st) => st.split(' ')[0]);
        return sum + 1 / new Set(level === 0 ? names : names.filter((nm) => nm !== names[names.length - 1])).size;
      }, 0) / n;
      console.log(`${dir} (step ${base.step}): ${n} held-out stories cut after ${level === 0 ? `its last ${word} word; the lens there = its statement's name` : 'the later role word of the pair; the lens there = the earlier statement\'s name'} (a name stated so far at random ${(100 * random).toFixed(1)}%)`);
      // each hop's token and its statement's own name's, tokenized once a story
      const want = hops.map((h) => first(h.text)), own = hops.map((h) => first(h.at.split('. ').pop()!.split(' ')[0]));
      for (let l = 0; l < L; l++) {
        const tops = hops.map((_, i) => lens(res.hidden, (i * L + l) * d));
        const share = (ids: number[]) => pct(tops.filter((top, i) => top === ids[i]).length);
        console.log(`  layer ${l}: ${share(want)}${level === 1 ? `  (its own name ${share(own)})` : ''}`);
      }
    }
  } finally {
    await inf.release();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
