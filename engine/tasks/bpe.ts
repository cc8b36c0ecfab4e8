/**
 * Byte-level BPE (the tokenizers of GPT-2 and LLaMA-3): GPT-2's byte -> printable character map, a
 * greedy merge learner, and the tokenizer.json layout of a learned byte-level BPE. Shared by the
 * stand-in base's tokenizer (corpus.ts) and the synthetic LLaMA folder (models/llama-synthetic.ts).
 *
 *   symbols: 256 byte symbols (bytesToUnicode), then one per learned merge
 *   merges:  greedily, the adjacent pair with the largest total weight first (ties to the first pair
 *            met), until `count` merges or no pair occurs twice (learnByteLevelMerges)
 */

/**
 * LLaMA-3's pre-tokenizer split regex, numbers split into runs of at most `digitGroup` digits
 * (LLaMA-3: 3, `\p{N}{1,3}`; 1: one digit per pre-token, as LLaMA-1/2): `onig` for tokenizer.json
 * (Oniguruma), `js` the same in JavaScript syntax (no inline (?i:) group), for learning merges.
 * With `splitCapitals` a run of two or more capital letters is one pre-token a letter, and
 * punctuation right before such a run its own (`CIPHERTEXT:QWE` -> C I ... T : Q W E; `Rose`, a
 * capital before small letters, and ` QUESTION`, a run after a space, stay whole): LLaMA-3 merges
 * capital runs into pieces, which a 4-layer stand-in does not learn to copy (docs/llama.md).
 */
export function llama3SplitRegex(digitGroup: number, splitCapitals = false): { onig: string; js: RegExp } {
  const n = digitGroup === 1 ? '\\p{N}' : `\\p{N}{1,${digitGroup}}`;
  const caps = splitCapitals ? '\\p{Lu}(?=\\p{Lu})|[^\\s\\p{L}\\p{N}]+(?=\\p{Lu}\\p{Lu})|' : '';
  return {
    onig: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|${caps}[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|${n}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
    js: new RegExp(`'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|${caps}[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|${n}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`, 'gu'),
  };
}

/** GPT-2's reversible byte -> printable character map (used by ByteLevel pre-tokenizers). */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const map = new Array<string>(256);
  bs.forEach((b, i) => (map[b] = String.fromCodePoint(cs[i])));
  return map;
}

/**
 * Greedy byte-level BPE: starting from the 256 byte symbols, `count` times merge the adjacent pair
 * with the largest total weight sum(n) over `words` (ties: the first pair to reach it in order;
 * `mergeable` may forbid a pair), until no pair occurs twice. `words[k].sym` is rewritten in place.
 */
export function learnByteLevelMerges(words: { sym: string[]; n: number }[], count: number, mergeable: (a: string, b: string) => boolean = () => true): { vocab: string[]; merges: [string, string][] } {
  const vocab = [...bytesToUnicode()];
  const merges: [string, string][] = [];
  for (let m = 0; m < count; m++) {
    const counts = new Map<string, number>();
    let best = '';
    let bestN = 0;
    for (const w of words) {
      for (let i = 0; i + 1 < w.sym.length; i++) {
        if (!mergeable(w.sym[i], w.sym[i + 1])) continue;
        const k = `${w.sym[i]}\u0000${w.sym[i + 1]}`;
        const c = (counts.get(k) ?? 0) + w.n;
        counts.set(k, c);
        if (c > bestN) {
          bestN = c;
          best = k;
        }
      }
    }
    if (bestN < 2) break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    vocab.push(a + b);
    for (const w of words) {
      for (let i = 0; i + 1 < w.sym.length; i++) if (w.sym[i] === a && w.sym[i + 1] === b) w.sym.splice(i, 2, a + b);
    }
  }
  return { vocab, merges };
}

/**
 * tokenizer.json of a byte-level BPE (LLaMA-3's layout): `splitRegex` then byte-level pre-tokenizer,
 * the learned vocab and merges, `specials` appended as added tokens after the vocab, and a post
 * processor that prepends `bos`. Also returns the ids of the specials, the added_tokens_decoder of
 * tokenizer_config.json and the vocabulary size.
 */
export function byteLevelBpeTokenizer(
  bpe: { vocab: string[]; merges: [string, string][] },
  specials: readonly string[],
  splitRegex: string,
  bos: string,
): { tokenizer: Record<string, unknown>; addedDecoder: Record<string, unknown>; ids: Record<string, number>; vocabSize: number } {
  const vocab: Record<string, number> = {};
  bpe.vocab.forEach((t, i) => (vocab[t] = i));
  const ids: Record<string, number> = {};
  const added = specials.map((content, k) => {
    ids[content] = bpe.vocab.length + k;
    return { id: bpe.vocab.length + k, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: splitRegex }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { [bos]: { id: bos, ids: [ids[bos]], tokens: [bos] } },
        },
      ],
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges: bpe.merges.map(([x, y]) => `${x} ${y}`),
    },
  };
  const addedDecoder: Record<string, unknown> = {};
  for (const t of added) addedDecoder[String(t.id)] = { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  return { tokenizer, addedDecoder, ids, vocabSize: bpe.vocab.length + added.length };
}
