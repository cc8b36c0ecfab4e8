/**
 * An independent cross-check of the LLaMA path against PyTorch (optional: runs only where
 * `/usr/bin/python3 -c "import torch, numpy"` works, skipped otherwise; Debian: apt-get install python3-torch).
 *
 * A synthetic folder with LLaMA-3.2's exact config fields (tiny sizes, 3 BF16 shards + index,
 * tokenizer files) is written; the engine loads it through loadLlamaFolder and runs LlamaInference.
 * A Python LLaMA written from the formulas (torch-llama.ts: plain torch, float64, no transformers) reads
 * the same folder with its own safetensors reader and its own llama3 rope scaling, and returns the
 * last-position logits, every layer's output (resid_post) at the last position, and a greedy
 * continuation recomputed from scratch at each step, optionally with a PEFT adapter.
 * Ours (float32) must agree within 1e-3 and produce the same tokens.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLlamaFolder } from '../../engine/models/llama-folder';
import { LlamaInference } from '../../engine/models/llama-infer';
import { writeSyntheticLlamaFolder } from '../../engine/models/llama-synthetic';
import { LORA_DEFAULTS, initLora, saveAdapter } from '../../engine/models/lora';
import { Rng } from '../../engine/util/rng';
import { hasTorch, torchRun } from './torch-llama';

const diff = (a: ArrayLike<number>, b: number[]) => {
  expect(a.length).toBe(b.length);
  return Math.max(...b.map((v, j) => Math.abs(a[j] - v)));
};

describe.skipIf(!hasTorch)('LLaMA against an independent PyTorch forward', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-llama-torch-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** Loads `dir`, runs ours and torch's on the prompts, checks logits/resid within 1e-3 and the tokens; returns the max diffs. */
  async function compare(dir: string, prompts: number[][], adapterDir?: string): Promise<{ logits: number; resid: number }> {
    const maxNew = 6;
    const m = loadLlamaFolder(dir);
    const torch = torchRun(dir, prompts, maxNew, adapterDir);
    const adapter = adapterDir ? (await import('../../engine/models/lora')).loadAdapter(adapterDir, m.config) : undefined;
    const inf = await LlamaInference.create(m.config, m.params, { site: 'resid_post', adapter, runner: { threads: 1 } });
    const worst = { logits: 0, resid: 0 };
    try {
      const gen = await inf.generate(prompts, { maxNewTokens: maxNew, eosIds: [] });
      for (let i = 0; i < prompts.length; i++) {
        const ours = await inf.forward(prompts[i]);
        worst.logits = Math.max(worst.logits, diff(ours.logits, torch[i].logits));
        for (let l = 0; l < m.config.numLayers; l++) worst.resid = Math.max(worst.resid, diff(ours.sites[`layers.${l}.resid_post`], torch[i].resid[l]));
        expect(gen.tokens[i], `prompt ${i}`).toEqual(torch[i].tokens);
      }
    } finally {
      await inf.release();
    }
    expect(worst.logits).toBeLessThan(1e-3);
    expect(worst.resid).toBeLessThan(1e-3);
    return worst;
  }

  it('LLaMA-3.2 config fields, 3 BF16 shards: logits and every layer output within 1e-3, same greedy tokens', async () => {
    const dir = path.join(tmp, 'llama32');
    writeSyntheticLlamaFolder(dir, { seed: 7, shards: 3, dtype: 'BF16', std: 0.15, normJitter: 0.2 });
    const tok = loadLlamaFolder(dir).tokenizer!;
    const prompts = [
      tok.encode('The quick brown fox jumps over the lazy dog.'),
      tok.encodeChat([{ role: 'user', content: 'What is 12 + 34?' }], { extra: { date_string: '26 Jul 2024' } }),
      tok.encode('12+34'),
    ];
    const worst = await compare(dir, prompts);
    console.log(`LLaMA-3.2-shaped synthetic vs torch: max |logit diff| ${worst.logits.toExponential(2)}, max |resid_post diff| ${worst.resid.toExponential(2)}`);
  });

  it('llama3 rope scaling where it matters (short original context, long prompt), untied head, MHA', async () => {
    const dir = path.join(tmp, 'scaled');
    writeSyntheticLlamaFolder(dir, {
      seed: 8, shards: 2, dtype: 'F16', std: 0.15, normJitter: 0.2,
      config: { ropeTheta: 10000, ropeScaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 24 }, tieWordEmbeddings: false, numKVHeads: 4 },
    });
    const rng = new Rng(2);
    const V = loadLlamaFolder(dir, { tokenizer: false }).config.vocabSize;
    const worst = await compare(dir, [Array.from({ length: 40 }, () => rng.int(0, V - 1)), [5, 6, 7]]);
    console.log(`llama3 scaling over 40 positions vs torch: max |logit diff| ${worst.logits.toExponential(2)}, max |resid_post diff| ${worst.resid.toExponential(2)}`);
  });

  it('with a PEFT adapter on q_proj and v_proj (alpha / r scaling)', async () => {
    const dir = path.join(tmp, 'adapted');
    const { config } = writeSyntheticLlamaFolder(dir, { seed: 9, shards: 2, std: 0.15, normJitter: 0.2 });
    const lc = { ...LORA_DEFAULTS, r: 4, alpha: 16, seed: 3 };
    const ad = initLora(config, lc);
    const rng = new Rng(4);
    for (const [name, p] of ad) if (name.includes('lora_B')) for (let i = 0; i < p.data.length; i++) p.data[i] = 0.2 * rng.normal();
    const adapterDir = path.join(tmp, 'adapter');
    saveAdapter(adapterDir, config, lc, ad, { baseDir: dir });
    const worst = await compare(dir, [[3, 4, 5, 6, 7, 8, 9], [100, 2]], adapterDir);
    console.log(`with a LoRA adapter vs torch: max |logit diff| ${worst.logits.toExponential(2)}`);
  });
});
