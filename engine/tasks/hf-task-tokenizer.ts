/**
 * A task seen through a pretrained model's own tokenizer (a Hugging Face tokenizer.json), so the
 * tasks, the pairwise extraction and steering work unchanged on a LLaMA base + LoRA run.
 *
 * Rendering (a decision, documented in docs/llama.md): PLAIN text, not the chat template.
 *   prompt ids  = [<|begin_of_text|>] ++ BPE(prompt)
 *   example ids = prompt ids ++ BPE(sep ++ target) ++ [<|eot_id|>]          (eoaId = <|eot_id|>)
 *   sep         = ' ' where the task's own tokenizer writes a space between the prompt's last token
 *                 and the answer's first (incontext: "...What color is Nora? maroon"), else ''
 *   decode(ids) = the BPE decoding with special tokens skipped; the tasks' classify trims it
 * Why plain: the stand-in base (`memgen pretrain`) was pretrained on exactly this rendering, and
 * LLaMA-3.2's chat template adds ~30 tokens of system header to every prompt (a 2-3x longer
 * sequence on a 2-core CPU). `format: 'chat'` renders the prompt as one user turn of the folder's
 * chat template (with generation prompt) instead, for instruct models.
 * Padding uses <|finetune_right_pad_id|> where the tokenizer has it, else <|end_of_text|>; it is
 * never a target (train/data.ts masks it).
 *
 * Lengths: a BPE token is at least one byte, but bounds in bytes are loose, so maxSeqLen and
 * maxAnswerTokens are measured: the maximum over `probe` (default 2000) training and test examples
 * (targets, gen and mem answers), plus a margin of 4 tokens.
 * firstAnswerTokens: the first BPE id of sep ++ each of the task's answer texts (Task.answerTexts: the
 * whole gen output, so a BPE that groups digits, LLaMA-3's, gives `640` of a scratchpad where the
 * task's own vocabulary has `6`).
 */
import type { HFTokenizer } from '../io/hf-folder';
import { Rng } from '../util/rng';
import { type Behaviour, type Example, type Task, type TaskName, type TaskScale, type TaskTokenizer, memTagClause } from './task';

export type PromptFormat = 'plain' | 'chat';

export interface HFTaskTokenizerOptions {
  format?: PromptFormat;
  /** The model's vocabulary size (logit width); default the tokenizer's. */
  vocabSize?: number;
  /** The end-of-answer id (a plain GPT-2 folder: config.json's eos_token_id); default found by name (header). */
  eoaId?: number;
  /** false: no bos before the prompt (GPT-2 is trained without one); default: the tokenizer's bos if it has one. */
  bos?: boolean;
}

function specialId(hf: HFTokenizer, names: readonly string[]): number | null {
  for (const n of names) {
    const id = hf.tokenizer.token_to_id(n);
    if (id !== undefined) return id;
  }
  return null;
}

export class HFTaskTokenizer implements TaskTokenizer {
  readonly vocab: readonly string[];
  readonly padId: number;
  readonly eoaId: number;
  readonly bosId: number | null;
  readonly format: PromptFormat;
  private readonly special: ReadonlySet<number>;

  constructor(readonly hf: HFTokenizer, private readonly taskTok: TaskTokenizer, opts: HFTaskTokenizerOptions = {}) {
    this.format = opts.format ?? 'plain';
    const v = hf.tokenizer.get_vocab(true);
    let max = -1;
    for (const id of v.values()) max = Math.max(max, id);
    const size = opts.vocabSize ?? max + 1;
    if (size < max + 1) throw new Error(`the tokenizer has ids up to ${max}, more than the model's vocab_size ${size}`);
    const vocab = Array.from({ length: size }, (_, i) => `<unused-${i}>`);
    for (const [t, id] of v) vocab[id] = t;
    this.vocab = vocab;
    const eoa = opts.eoaId ?? specialId(hf, ['<|eot_id|>', ...(hf.eosToken ? [hf.eosToken] : []), '<|end_of_text|>', '</s>']);
    if (eoa === null) throw new Error('the tokenizer has no end token (<|eot_id|>, its eos_token, <|end_of_text|> or </s>)');
    if (!Number.isInteger(eoa) || eoa < 0 || eoa >= size) throw new Error(`the end token id ${eoa} is outside the vocabulary (0..${size - 1})`);
    this.eoaId = eoa;
    this.padId = specialId(hf, ['<|finetune_right_pad_id|>', '<|end_of_text|>', '<pad>']) ?? eoa;
    this.bosId = opts.bos === false ? null : hf.bosToken ? specialId(hf, [hf.bosToken]) : specialId(hf, ['<|begin_of_text|>', '<s>']);
    const special = new Set<number>([eoa, this.padId]);
    for (const [t, id] of v) if (/^<\|.*\|>$/.test(t) || t === hf.bosToken || t === hf.eosToken) special.add(id);
    this.special = special;
  }

  /** The prompt's ids (bos first). */
  encode(text: string): number[] {
    // A fixed date (HF's template default): the rendered prompt must not change from day to day.
    if (this.format === 'chat') return this.hf.encodeChat([{ role: 'user', content: text }], { addGenerationPrompt: true, extra: { date_string: '26 Jul 2024' } });
    const ids = this.hf.encode(text, { addSpecialTokens: false });
    return this.bosId === null ? ids : [this.bosId, ...ids];
  }

  /** Text of generated ids, special tokens skipped. */
  decode(ids: readonly number[]): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocab.length) throw new Error(`id ${id} is outside the vocabulary (0..${this.vocab.length - 1})`);
    }
    const kept = ids.filter((id) => !this.special.has(id));
    return this.hf.decode(kept, { skipSpecialTokens: true });
  }

  /** ' ' or '': what goes between prompt and answer (header). */
  separator(ex: Example): '' | ' ' {
    if (this.format === 'chat') return '';
    const p = this.taskTok.encode(ex.prompt);
    const t = this.taskTok.encode(ex.target);
    if (p.length === 0 || t.length === 0) return '';
    const two = this.taskTok.decode([p[p.length - 1], t[0]]);
    return two.length > this.taskTok.decode([p[p.length - 1]]).length + this.taskTok.decode([t[0]]).length ? ' ' : '';
  }

  /** Ids of an answer text as it follows the prompt. */
  encodeAnswer(ex: Example, answer: string): number[] {
    return this.hf.encode(this.separator(ex) + answer, { addSpecialTokens: false });
  }

  encodeExample(ex: Example): { ids: number[]; promptLength: number } {
    const prompt = this.encode(ex.prompt);
    return { ids: [...prompt, ...this.encodeAnswer(ex, ex.target), this.eoaId], promptLength: prompt.length };
  }

  toHuggingFaceJSON(): string {
    throw new Error('an HF task tokenizer is the base folder\'s tokenizer.json; copy that file');
  }
}

/** The task with the base model's tokenizer (header); everything else is the task's own. */
export class RetokenizedTask implements Task {
  readonly name: TaskName;
  readonly scale: TaskScale;
  readonly seed: number;
  readonly description: string;
  readonly dataConfig: Record<string, unknown>;
  readonly tokenizer: HFTaskTokenizer;
  readonly maxSeqLen: number;
  readonly maxAnswerTokens: number;
  readonly guessRate?: (ex: Example) => number;
  readonly memGuessRate?: (ex: Example) => number;
  readonly plain?: (rng: Rng) => Example;
  readonly statedAnswer?: (output: string) => string | null;

  constructor(readonly inner: Task, hf: HFTokenizer, opts: HFTaskTokenizerOptions & { probe?: number } = {}) {
    this.name = inner.name;
    this.scale = inner.scale;
    this.seed = inner.seed;
    this.dataConfig = { ...inner.dataConfig, promptFormat: opts.format ?? 'plain' };
    this.tokenizer = new HFTaskTokenizer(hf, inner.tokenizer, opts);
    if (inner.guessRate) this.guessRate = (ex) => inner.guessRate!(ex);
    if (inner.memGuessRate) this.memGuessRate = (ex) => inner.memGuessRate!(ex);
    if (inner.plain) this.plain = (rng) => inner.plain!(rng);
    if (inner.statedAnswer) this.statedAnswer = (output) => inner.statedAnswer!(output);
    const rng = new Rng(0x7e57);
    let seq = 0;
    let ans = 0;
    const tagLengths = new Set<number>();
    for (let i = 0; i < (opts.probe ?? 2000); i++) {
      const ex = i % 2 === 0 ? inner.train(rng) : inner.test(rng);
      const { ids, promptLength } = this.tokenizer.encodeExample(ex);
      seq = Math.max(seq, ids.length);
      for (const a of [ex.target, ex.genAnswer, ex.memAnswer]) {
        if (a !== null) {
          const n = this.tokenizer.encodeAnswer(ex, a).length + 1;
          if (a === ex.memAnswer) tagLengths.add(n - 1);
          ans = Math.max(ans, n);
          seq = Math.max(seq, promptLength + n);
        }
      }
    }
    this.maxSeqLen = seq + 4;
    this.maxAnswerTokens = ans + 4;
    // a mem tag's tokens are the base tokenizer's, not the task's own (arithmetic, cipher)
    const pieces = inner.memTagPieces;
    const [lo, hi] = [Math.min(...tagLengths), Math.max(...tagLengths)];
    const described = pieces === undefined || tagLengths.size === 0 ? inner.description : inner.description.replace(memTagClause(pieces), `mem tags in ${lo === hi ? lo : `${lo}-${hi}`} base tokens`);
    this.description = `${described}; base tokenizer, ${opts.format ?? 'plain'} prompts`;
  }

  train(rng: Rng): Example {
    return this.inner.train(rng);
  }
  test(rng: Rng): Example {
    return this.inner.test(rng);
  }
  rephrase(ex: Example, rng: Rng): Example {
    return this.inner.rephrase(ex, rng);
  }
  classify(ex: Example, output: string): Behaviour {
    return this.inner.classify(ex, output);
  }
  fromPrompt(prompt: string): Example {
    return this.inner.fromPrompt(prompt);
  }
  answerTexts(ex: Example): { gen: string; mem: readonly string[] } {
    return this.inner.answerTexts(ex);
  }
}
