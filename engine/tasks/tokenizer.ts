/**
 * A closed-vocabulary tokenizer for the synthetic tasks: every token is a whole string from a fixed
 * list, so each memorization token `<mem-xxxxxxxx>` is ONE id (method.md section 9, defect 5) and
 * the end-of-answer token is distinct from padding.
 *
 *   vocab  = ['<pad>', '<eoa>', ...task tokens]      (id 0 = pad, id 1 = end of answer)
 *   encode = split the text on whitespace; in each chunk repeatedly take the LONGEST vocabulary
 *            token that starts at the current position (a regex alternation of all tokens, longest
 *            first); text that no token matches throws an Error naming it
 *   decode = tokens joined left to right; a space goes before every token except the first and the
 *            "glue" tokens, which attach to the previous one (digits in arithmetic, '.' and '?' in
 *            incontext, letters and mem tokens in cipher). So decode(encode(s)) === s for text
 *            written with single spaces exactly where a non-glue token starts.
 *   encodeExample = encode(prompt) ++ encode(target) ++ [eoa]
 *
 * toHuggingFaceJSON writes the same tokenizer as a tokenizer.json (loads in @huggingface/tokenizers
 * and Python `tokenizers`, same ids):
 *   added_tokens  '<pad>', '<eoa>' (special) and the mem tokens (not special) matched before anything
 *   pre_tokenizer Sequence[WhitespaceSplit, Split(the same longest-first alternation, Isolated)]
 *   model         WordPiece over the whole vocabulary: every pre-token is a vocabulary entry, so it
 *                 maps to one id. Its unk_token '<unk>' is deliberately absent from the vocabulary:
 *                 Python refuses out-of-vocabulary text (as `encode` here throws), while
 *                 tokenizers.js maps it to an undefined id.
 *   decoder       Sequence[Replace('^tok$' -> '##tok') for each glue token, WordPiece('##'),
 *                 Replace('^##' -> '')]: the WordPiece decoder joins with spaces and glues '##'
 *                 pieces, which reproduces `decode` exactly.
 */
import type { Example, TaskTokenizer } from './task';

export const PAD_TOKEN = '<pad>';
export const EOA_TOKEN = '<eoa>';

export interface TokenSpec {
  readonly text: string;
  /** Written with no space before it (attaches to the previous token). */
  readonly glue?: boolean;
  /** An opaque symbol such as a mem token: a Hugging Face added token, never split. */
  readonly atomic?: boolean;
}

const SYNTAX = /[\\^$.*+?()[\]{}|/]/g;
/** Escape for both Oniguruma and JavaScript `u`-mode regexes (only syntax characters may be escaped in `u` mode). */
function escapeRegex(s: string): string {
  return s.replace(SYNTAX, '\\$&');
}

export class VocabTokenizer implements TaskTokenizer {
  readonly vocab: readonly string[];
  readonly padId = 0;
  readonly eoaId = 1;
  private readonly ids: ReadonlyMap<string, number>;
  private readonly glue: readonly boolean[];
  private readonly atomic: readonly boolean[];
  private readonly alternation: string;
  private readonly matcher: RegExp;

  /** `label` names the task in error messages. */
  constructor(
    readonly label: string,
    specs: readonly TokenSpec[],
  ) {
    const all: TokenSpec[] = [{ text: PAD_TOKEN }, { text: EOA_TOKEN }, ...specs];
    const ids = new Map<string, number>();
    all.forEach((s, i) => {
      if (s.text.length === 0 || /\s/.test(s.text)) throw new Error(`${label} tokenizer: bad token ${JSON.stringify(s.text)}`);
      if (ids.has(s.text)) throw new Error(`${label} tokenizer: duplicate token ${JSON.stringify(s.text)}`);
      ids.set(s.text, i);
    });
    this.vocab = all.map((s) => s.text);
    this.ids = ids;
    this.glue = all.map((s) => s.glue === true);
    this.atomic = all.map((s, i) => i < 2 || s.atomic === true);
    // Longest first, so that the alternation takes the longest token at each position
    // (ties broken by text so the order, and hence the tokenizer.json, is deterministic).
    const byLength = [...this.vocab].sort((a, b) => b.length - a.length || (a < b ? -1 : a > b ? 1 : 0));
    this.alternation = byLength.map(escapeRegex).join('|');
    this.matcher = new RegExp(`(?:${this.alternation})`, 'uy');
  }

  get size(): number {
    return this.vocab.length;
  }

  /** The id of a single token, or an Error naming it. */
  id(token: string): number {
    const id = this.ids.get(token);
    if (id === undefined) throw new Error(`${this.label} tokenizer: ${JSON.stringify(token)} is not a token`);
    return id;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (const chunk of text.split(/\s+/u)) {
      let pos = 0;
      while (pos < chunk.length) {
        this.matcher.lastIndex = pos;
        const m = this.matcher.exec(chunk);
        if (m === null) {
          // the offending text: from here up to where a token matches again
          let end = pos + 1;
          for (; end < chunk.length; end++) {
            this.matcher.lastIndex = end;
            if (this.matcher.test(chunk)) break;
          }
          const sample = this.vocab.slice(2, 40).join(' ');
          throw new Error(
            `${this.label} tokenizer: cannot encode ${JSON.stringify(chunk.slice(pos, end))} ` +
              `(in the word ${JSON.stringify(chunk)} of ${JSON.stringify(text.length > 200 ? text.slice(0, 200) + '...' : text)}): ` +
              `not in the ${this.vocab.length}-token vocabulary (${sample}${this.vocab.length > 40 ? ' ...' : ''})`,
          );
        }
        out.push(this.ids.get(m[0])!);
        pos += m[0].length;
      }
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    let s = '';
    ids.forEach((id, i) => {
      const tok = this.vocab[id];
      if (!Number.isInteger(id) || tok === undefined) {
        throw new Error(`${this.label} tokenizer: id ${id} is outside the vocabulary (0..${this.vocab.length - 1})`);
      }
      if (i > 0 && !this.glue[id]) s += ' ';
      s += tok;
    });
    return s;
  }

  encodeExample(ex: Example): { ids: number[]; promptLength: number } {
    const prompt = this.encode(ex.prompt);
    return { ids: [...prompt, ...this.encodeAnswer(ex, ex.target), this.eoaId], promptLength: prompt.length };
  }

  /** The task's own tokens need no separator: an answer encodes alone. */
  encodeAnswer(_ex: Example, answer: string): number[] {
    return this.encode(answer);
  }

  toHuggingFaceJSON(): string {
    const vocab: Record<string, number> = {};
    this.vocab.forEach((t, i) => (vocab[t] = i));
    const json = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: this.vocab.flatMap((content, id) =>
        this.atomic[id]
          ? [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: id < 2 }]
          : [],
      ),
      normalizer: null,
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          { type: 'WhitespaceSplit' },
          { type: 'Split', pattern: { Regex: this.alternation }, behavior: 'Isolated', invert: false },
        ],
      },
      post_processor: null,
      decoder: {
        type: 'Sequence',
        decoders: [
          ...this.vocab.flatMap((t, i) =>
            this.glue[i] ? [{ type: 'Replace', pattern: { Regex: `^${escapeRegex(t)}$` }, content: `##${t}` }] : [],
          ),
          { type: 'WordPiece', prefix: '##', cleanup: false },
          { type: 'Replace', pattern: { Regex: '^##' }, content: '' },
        ],
      },
      model: {
        type: 'WordPiece',
        unk_token: '<unk>',
        continuing_subword_prefix: '##',
        max_input_chars_per_word: 100,
        vocab,
      },
    };
    return JSON.stringify(json, null, 2);
  }
}
