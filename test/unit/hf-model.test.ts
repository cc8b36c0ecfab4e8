/**
 * `memgen forward` / `memgen generate` on any local Hugging Face folder (runs/hf-model.ts): a random
 * GPT-2 folder without a "memgen" section (transformer.* names, and the hub's unprefixed names) and
 * a synthetic LLaMA-3.2-shaped folder (models/llama-synthetic.ts), both written here. Through the CLI
 * the logits, site vectors and greedy tokens equal those of the model loaded directly; a base made by
 * `memgen pretrain` (it has a manifest.json) opens as a plain LLaMA folder; the errors for
 * an unknown model_type, a missing tokenizer.json and missing weights name the file and the fix.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../engine/cli/main';
import { loadHFTokenizer } from '../../engine/io/hf-folder';
import { type ParamSet, saveParams } from '../../engine/io/params';
import { type GPT2Config, initGPT2 } from '../../engine/models/gpt2';
import { GPT2Inference } from '../../engine/models/gpt2-infer';
import { loadLlamaFolder } from '../../engine/models/llama-folder';
import { LlamaInference } from '../../engine/models/llama-infer';
import { LORA_DEFAULTS, initLora, loadAdapter, saveAdapter } from '../../engine/models/lora';
import { llama3TokenizerFiles, writeSyntheticLlamaFolder } from '../../engine/models/llama-synthetic';
import { isMemgenRunFolder, loadHFModel } from '../../engine/runs/hf-model';
import { Rng } from '../../engine/util/rng';
import { pretrainToyBase } from './toy-base';

const RUNNER = { threads: 1 };
const PROMPT = 'the cat sat on the mat';

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (s: string) => out.push(String(s));
  console.error = (s: string) => err.push(String(s));
  try {
    const code = await main([...argv, '--threads', '1']);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const tok = llama3TokenizerFiles();

/** A random GPT-2 folder as transformers writes it: config.json (no memgen section), model.safetensors, tokenizer.json. */
function writeGPT2Folder(dir: string, opts: { unprefixed?: boolean; modelType?: string } = {}): { cfg: GPT2Config; params: ParamSet } {
  const cfg: GPT2Config = { vocabSize: tok.vocabSize, nPositions: 64, nEmbd: 32, nLayer: 2, nHead: 4, layerNormEps: 1e-5 };
  const params = initGPT2(cfg, new Rng(7));
  for (const p of params.values()) for (let i = 0; i < p.data.length; i++) p.data[i] *= 5; // less uniform logits
  fs.mkdirSync(dir, { recursive: true });
  const config = {
    model_type: opts.modelType ?? 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: cfg.vocabSize, n_positions: cfg.nPositions, n_embd: cfg.nEmbd,
    n_layer: cfg.nLayer, n_head: cfg.nHead, n_inner: null, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, bos_token_id: tok.ids['<|begin_of_text|>'],
    eos_token_id: tok.ids['<|eot_id|>'], torch_dtype: 'float32',
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const stored: ParamSet = new Map([...params].map(([n, p]) => [opts.unprefixed ? n.replace(/^transformer\./, '') : n, p]));
  if (!opts.unprefixed) stored.set('lm_head.weight', params.get('transformer.wte.weight')!); // tied, as GPT2LMHeadModel saves it
  saveParams(path.join(dir, 'model.safetensors'), stored);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok.tokenizer));
  return { cfg, params };
}

type ForwardJSON = { ids: number[]; logits: number[]; hidden: Record<string, number[]> };
type GenerateJSON = { ids: number[]; tokens: number[]; output: string; stoppedAtEos: boolean; model: { family: string } };

describe('memgen forward / generate on a plain Hugging Face folder', () => {
  let root: string;
  let gpt2Dir: string;
  let llamaDir: string;
  let gpt2: { cfg: GPT2Config; params: ParamSet };
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-hf-model-'));
    gpt2Dir = path.join(root, 'gpt2');
    gpt2 = writeGPT2Folder(gpt2Dir);
    llamaDir = path.join(root, 'llama');
    writeSyntheticLlamaFolder(llamaDir, { seed: 3, shards: 2, dtype: 'BF16', std: 0.2 });
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('tells plain folders from memgen runs', () => {
    expect(isMemgenRunFolder(gpt2Dir)).toBe(false);
    expect(isMemgenRunFolder(llamaDir)).toBe(false);
    const run = path.join(root, 'runlike');
    fs.mkdirSync(run);
    fs.writeFileSync(path.join(run, 'config.json'), JSON.stringify({ model_type: 'gpt2', memgen: { task: 'arithmetic' } }));
    expect(isMemgenRunFolder(run)).toBe(true);
  });

  it('a base made by memgen pretrain (manifest.json of format memgen-base/1) opens as a plain LLaMA folder', async () => {
    const base = path.join(root, 'base');
    await pretrainToyBase(base, 4);
    expect(isMemgenRunFolder(base)).toBe(false);
    const r = await cli(['generate', '--run', base, '--prompt', '12+34+56+78=', '--max-new-tokens', '3']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/plain llama folder: no task/);
    fs.writeFileSync(path.join(base, 'manifest.json'), '{ not json');
    expect(isMemgenRunFolder(base)).toBe(true); // unreadable: left to the run loader, which names the file
  });

  it('GPT-2: forward and generate equal GPT2Inference on the weights loaded directly', async () => {
    const ids = loadHFTokenizer(gpt2Dir).encode(PROMPT);
    const inf = await GPT2Inference.create(gpt2.cfg, gpt2.params, { site: 'resid_post', runner: RUNNER });
    let direct: { logits: Float32Array; hidden: Float32Array[] };
    let gen: number[];
    try {
      direct = await inf.forward(ids);
      gen = (await inf.generate([ids], { maxNewTokens: 5, eosId: tok.ids['<|eot_id|>'] })).tokens[0];
    } finally {
      await inf.release();
    }
    const f = await cli(['forward', '--run', gpt2Dir, '--prompt', PROMPT, '--site', 'resid_post', '--json']);
    expect(f.err).toBe('');
    expect(f.code).toBe(0);
    const fj = JSON.parse(f.out) as ForwardJSON;
    expect(fj.ids).toEqual(ids);
    expect(fj.logits).toEqual(Array.from(direct.logits));
    expect(Object.keys(fj.hidden)).toEqual(['blocks.0.resid_post', 'blocks.1.resid_post']);
    expect(fj.hidden['blocks.1.resid_post']).toEqual(Array.from(direct.hidden[1]));
    const g = await cli(['generate', '--run', gpt2Dir, '--prompt', PROMPT, '--max-new-tokens', '5', '--json']);
    expect(g.code).toBe(0);
    const gj = JSON.parse(g.out) as GenerateJSON;
    expect(gj.model.family).toBe('gpt2');
    expect(gj.ids).toEqual(ids);
    expect(gj.tokens).toEqual(gen);
    expect(gj.output).toBe(loadHFTokenizer(gpt2Dir).decode(gen, { skipSpecialTokens: true }));
    const text = await cli(['generate', '--run', gpt2Dir, '--prompt', PROMPT, '--max-new-tokens', '5']);
    expect(text.code).toBe(0);
    expect(text.out).toContain(PROMPT);
  });

  it("GPT-2: the hub's unprefixed tensor names load to the same model", async () => {
    const d = path.join(root, 'gpt2-hub');
    writeGPT2Folder(d, { unprefixed: true });
    const m = loadHFModel(d);
    for (const [n, p] of gpt2.params) expect(m.gpt2!.params.get(n)!.data).toEqual(p.data);
    const a = JSON.parse((await cli(['forward', '--run', d, '--prompt', PROMPT, '--json'])).out) as ForwardJSON;
    const b = JSON.parse((await cli(['forward', '--run', gpt2Dir, '--prompt', PROMPT, '--json'])).out) as ForwardJSON;
    expect(a.logits).toEqual(b.logits);
    expect(Object.keys(a.hidden)[0]).toBe('blocks.0.ln2');
  });

  it('LLaMA: forward and generate equal LlamaInference on loadLlamaFolder', async () => {
    const folder = loadLlamaFolder(llamaDir);
    const ids = folder.tokenizer!.encode(PROMPT);
    expect(ids[0]).toBe(tok.ids['<|begin_of_text|>']);
    const inf = await LlamaInference.create(folder.config, folder.params, { runner: RUNNER });
    let direct: { logits: Float32Array; sites: Record<string, Float32Array> };
    let gen: number[];
    try {
      direct = await inf.forward(ids);
      gen = (await inf.generate([ids], { maxNewTokens: 6 })).tokens[0];
    } finally {
      await inf.release();
    }
    const f = await cli(['forward', '--run', llamaDir, '--prompt', PROMPT, '--json']);
    expect(f.err).toBe('');
    expect(f.code).toBe(0);
    const fj = JSON.parse(f.out) as ForwardJSON;
    expect(fj.ids).toEqual(ids);
    expect(fj.logits).toEqual(Array.from(direct.logits));
    expect(Object.keys(fj.hidden)).toEqual(['layers.0.resid_post', 'layers.1.resid_post']);
    expect(fj.hidden['layers.1.resid_post']).toEqual(Array.from(direct.sites['layers.1.resid_post']));
    const g = await cli(['generate', '--run', llamaDir, '--prompt', PROMPT, '--max-new-tokens', '6', '--json']);
    expect(g.code).toBe(0);
    const gj = JSON.parse(g.out) as GenerateJSON;
    expect(gj.model.family).toBe('llama');
    expect(gj.tokens).toEqual(gen);
    // a GPT-2 site on a LLaMA folder is a usage error naming the LLaMA sites
    const bad = await cli(['forward', '--run', llamaDir, '--prompt', PROMPT, '--site', 'ln2', '--json']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/resid_pre, mlp_in, resid_post/);
  });

  it('--adapter: a PEFT adapter on a plain LLaMA folder runs as LlamaInference with that adapter; refused elsewhere', async () => {
    const folder = loadLlamaFolder(llamaDir);
    const lora = { ...LORA_DEFAULTS, r: 2 };
    const adapter = initLora(folder.config, lora);
    const rng = new Rng(5);
    for (const p of adapter.values()) p.data.forEach((_, i) => (p.data[i] = 0.05 * rng.normal())); // B nonzero: the adapter acts
    const adapterDir = path.join(root, 'adapter');
    saveAdapter(adapterDir, folder.config, lora, adapter, { baseDir: llamaDir });
    const loaded = loadAdapter(adapterDir, folder.config); // as written (BF16), as the CLI reads it
    const ids = folder.tokenizer!.encode(PROMPT);
    const inf = await LlamaInference.create(folder.config, folder.params, { runner: RUNNER, adapter: loaded });
    let direct: Float32Array;
    try {
      direct = (await inf.forward(ids)).logits;
    } finally {
      await inf.release();
    }
    const f = JSON.parse((await cli(['forward', '--run', llamaDir, '--adapter', adapterDir, '--prompt', PROMPT, '--json'])).out) as ForwardJSON;
    expect(f.logits).toEqual(Array.from(direct));
    const plain = JSON.parse((await cli(['forward', '--run', llamaDir, '--prompt', PROMPT, '--json'])).out) as ForwardJSON;
    expect(plain.logits).not.toEqual(f.logits);
    const g = JSON.parse((await cli(['generate', '--run', llamaDir, '--adapter', adapterDir, '--prompt', PROMPT, '--max-new-tokens', '3', '--json'])).out) as GenerateJSON & { model: { adapter: string } };
    expect(g.model.adapter).toBe(adapterDir);
    const onGpt2 = await cli(['forward', '--run', gpt2Dir, '--adapter', adapterDir, '--prompt', PROMPT, '--json']);
    expect(onGpt2.code).not.toBe(0);
    expect(onGpt2.err).toMatch(/adapters are LoRA on LLaMA/);
    const notAdapter = await cli(['forward', '--run', llamaDir, '--adapter', gpt2Dir, '--prompt', PROMPT, '--json']);
    expect(notAdapter.err).toMatch(/adapter_config\.json is missing/);
  });

  it('generate --steer on a plain LLaMA folder: zeros change nothing, a large vector changes the output', async () => {
    const base = JSON.parse((await cli(['generate', '--run', llamaDir, '--prompt', PROMPT, '--max-new-tokens', '4', '--json'])).out) as GenerateJSON;
    const zeros = path.join(root, 'zeros.json');
    fs.writeFileSync(zeros, JSON.stringify({ 'layers.1.resid_post': new Array(64).fill(0) }));
    const z = await cli(['generate', '--run', llamaDir, '--prompt', PROMPT, '--max-new-tokens', '4', '--steer', zeros, '--json']);
    expect(z.code).toBe(0);
    expect((JSON.parse(z.out) as GenerateJSON).tokens).toEqual(base.tokens);
    const big = path.join(root, 'big.json');
    fs.writeFileSync(big, JSON.stringify({ 'layers.1.resid_post': Array.from({ length: 64 }, (_, i) => (i % 2 ? 50 : -50)) }));
    const b = await cli(['generate', '--run', llamaDir, '--prompt', PROMPT, '--max-new-tokens', '4', '--steer', big, '--json']);
    expect(b.code).toBe(0);
    expect((JSON.parse(b.out) as GenerateJSON & { steered: boolean }).steered).toBe(true);
    expect(JSON.parse(b.out).tokens).not.toEqual(base.tokens);
  });

  it('errors name the file and the fix', async () => {
    const unknown = path.join(root, 'bert');
    writeGPT2Folder(unknown, { modelType: 'bert' });
    const u = await cli(['forward', '--run', unknown, '--prompt', PROMPT, '--json']);
    expect(u.code).toBe(1);
    expect(u.err).toContain(path.join(unknown, 'config.json'));
    expect(u.err).toMatch(/model_type 'bert' is not supported.*"gpt2".*"llama"/);

    const noTok = path.join(root, 'no-tokenizer');
    writeSyntheticLlamaFolder(noTok, { seed: 1, shards: 1 });
    fs.rmSync(path.join(noTok, 'tokenizer.json'));
    const t = await cli(['generate', '--run', noTok, '--prompt', PROMPT]);
    expect(t.code).toBe(1);
    expect(t.err).toContain(`${path.join(noTok, 'tokenizer.json')} is missing`);
    expect(t.err).toMatch(/Fix: .*save_pretrained/);

    const noWeights = path.join(root, 'no-weights');
    writeGPT2Folder(noWeights);
    fs.rmSync(path.join(noWeights, 'model.safetensors'));
    const w = await cli(['forward', '--run', noWeights, '--prompt', PROMPT, '--json']);
    expect(w.code).toBe(1);
    expect(w.err).toContain(`${path.join(noWeights, 'model.safetensors')} is missing`);
    expect(w.err).toMatch(/safe_serialization=True/);
  });
});

describe('memgen runs still open as runs', () => {
  const RUN = path.join(__dirname, '..', '..', 'runs', 'arithmetic-tiny');
  it.skipIf(!fs.existsSync(path.join(RUN, 'model.safetensors')))('forward on a committed run uses its task tokenizer', async () => {
    const { loadRun } = await import('../../engine/runs/run');
    const run = loadRun(RUN);
    const ids = run.task.tokenizer.encode('12+34+56+78=');
    const inf = await GPT2Inference.create(run.cfg, run.params, { runner: RUNNER });
    let logits: Float32Array;
    try {
      logits = (await inf.forward(ids)).logits;
    } finally {
      await inf.release();
    }
    const f = await cli(['forward', '--run', RUN, '--prompt', '12+34+56+78=', '--json']);
    expect(f.code).toBe(0);
    const fj = JSON.parse(f.out) as ForwardJSON;
    expect(fj.ids).toEqual(ids);
    expect(fj.logits).toEqual(Array.from(logits));
    const g = await cli(['generate', '--run', RUN, '--prompt', '12+34+56+78=', '--json']);
    expect(g.code).toBe(0);
    expect(JSON.parse(g.out)).toHaveProperty('behaviour');
  });
});
