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
 * With --within-kind (for a base pretrained with --hop-within-kind) the argmax runs over the tokens of
 * the wanted token's kind only (names, roles or colours: HOP_KINDS), as that base's hops were scored.
 *
 *   node scripts/build.mjs && npx esbuild scripts/hop-lens.ts --bundle --platform=node \
 *     --external:onnxruntime-node --outfile=dist/hop-lens.js
 *   node dist/hop-lens.js BASE_FOLDER|BASE.partial [N] [--within-kind]
 */
import { LlamaInference } from '../engine/models/llama-infer';
import { BOS_TOKEN, CORPUS_DEFAULTS, CORPUS_FAMILIES, type CorpusOptions, corpusDoc } from '../engine/tasks/corpus';
import { HOP_KINDS, hopKindOf, hopToken } from '../engine/train/llama-pretrain';
import { Rng } from '../engine/util/rng';
import { loadBaseOrCheckpoint } from './base-load';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const withinKind = args.includes('--within-kind');
  const [dir, nArg] = args.filter((a) => a !== '--within-kind');
  const n = Number(nArg ?? 300);
  const base = loadBaseOrCheckpoint(dir);
  const { cfg, params, tok } = base;
  const d = cfg.hiddenSize, L = cfg.numLayers, V = cfg.vocabSize;
  const embed = params.get('model.embed_tokens.weight')!.data, norm = params.get('model.norm.weight')!.data;
  const [bos] = tok.encode(BOS_TOKEN, { addSpecialTokens: false });
  const first = (text: string) => hopToken(tok, text);
  const kindOf = hopKindOf(tok);
  const kinds = HOP_KINDS.map((words) => words.map(first));
  const everyToken = Array.from({ length: V }, (_, v) => v);
  // whether the lens's top token at h[off..] is `want`: over the vocabulary, or over want's kind
  const lensIs = (h: Float32Array, off: number, want: number): boolean => lens(h, off, withinKind ? kinds[kindOf.get(want) ?? -1] ?? everyToken : everyToken) === want;
  const lens = (h: Float32Array, off: number, among: readonly number[]): number => {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += h[off + i] * h[off + i];
    const r = 1 / Math.sqrt(ss / d + cfg.rmsNormEps);
    let best = -Infinity, arg = 0;
    for (const v of among) {
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
      // S (the name sharing T's role) by whether its role statement comes after T's: then the pair's link
      // sits on S's own role word, and `?` must read that word's own name, not its link
      const sAt = labels.indexOf(family === 'like' ? 'answer' : 'mate');
      const sLater = docs.map((x) => x.prompt.indexOf(` ${x.want[sAt]} is ${x.want[0]}.`) > x.prompt.indexOf(` ${x.want[labels.length - 1]} is ${x.want[0]}.`));
      const byOrder = Array.from({ length: L }, () => [0, 0]);
      docs.forEach((x, i) => {
        const want = x.want.map(first);
        for (let l = 0; l < L; l++) {
          const hit = want.map((w) => lensIs(res.hidden, (i * L + l) * d, w));
          hit.forEach((h, k) => (hits[l][k] += h ? 1 : 0));
          if (hit[sAt]) byOrder[l][sLater[i] ? 0 : 1]++;
        }
      });
      console.log(`${dir} (step ${base.step}): ${family === 'like' ? '"Who is like T?"' : 'two-hop "What color is T?"'}, ${n} held-out stories, the logit lens at "?" after each layer (top token${withinKind ? ' of its kind' : ''} = ...)`);
      const later = sLater.filter(Boolean).length;
      const share = (k: number, of: number) => `${((100 * k) / Math.max(1, of)).toFixed(1)}%`;
      hits.forEach((h, l) => console.log(`  layer ${l}: ${labels.map((lab, k) => `${lab} ${pct(h[k])}`).join('  ')}  (${labels[sAt]}: S's statement after T's ${share(byOrder[l][0], later)} of ${later}, before ${share(byOrder[l][1], n - later)})`));
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
        const share = (ids: number[]) => pct(ids.filter((w, i) => lensIs(res.hidden, (i * L + l) * d, w)).length);
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
