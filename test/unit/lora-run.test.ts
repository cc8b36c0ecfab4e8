/**
 * The LoRA run (engine/train/lora-trainer.ts, its folder engine/runs/lora-run.ts, `memgen train
 * --base --lora`): batches mask the prompt, the run folder holds a PEFT adapter that round-trips, the
 * base folder is never modified (sha256 of every file before and after), the kept adapter is the
 * best gen% x mem% evaluation, resume is exact, and a run inside the base folder is refused.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loraRunConfigFromArgs } from '../../engine/cli/commands/train';
import { loadLlamaFolder } from '../../engine/models/llama-folder';
import { LORA_DEFAULTS, loadAdapter } from '../../engine/models/lora';
import { loadLoraRun, loraRunModel, loraRunTask, loraSteerRun } from '../../engine/runs/lora-run';
import { rankNeurons } from '../../engine/analysis/rank';
import { projectionAttribution } from '../../engine/analysis/projection-attribution';
import type { PairRecord } from '../../engine/analysis/files';
import { initLora } from '../../engine/models/lora';
import { familySiteName, parseFamilySiteName } from '../../engine/models/sites';
import { baselineIntervention, parsePicks, targetedIntervention } from '../../engine/steer/intervention';
import { IGNORE_INDEX } from '../../engine/train/data';
import { type LoraRunConfig, epochOrder, loraBatch, trainLoraRun } from '../../engine/train/lora-trainer';
import { Rng } from '../../engine/util/rng';
import { hashFolder, pretrainToyBase } from './toy-base';

let tmp: string;
let base: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-lora-run-'));
  base = path.join(tmp, 'base');
  await pretrainToyBase(base, 30, { sumDigits: 3 }); // a base whose corpus pads partial sums: the arithmetic runs follow it
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const config = (out: string, over: Partial<LoraRunConfig> = {}): LoraRunConfig => ({
  ...loraRunConfigFromArgs(['--base', base, '--lora', '--task', 'arithmetic', '--out', out]),
  trainSize: 32, epochs: 2, batch: 8, evalEvery: 4, evalN: 12, lr: 5e-3, runner: { threads: 1 }, ...over,
});

describe('LoRA run', () => {
  it('uses the paper recipe as CLI defaults', () => {
    const c = loraRunConfigFromArgs(['--base', 'B', '--lora', '--task', 'incontext', '--out', 'R']);
    expect(c.lora).toMatchObject({ r: 8, alpha: 32, dropout: 0.1, targetModules: ['q_proj', 'v_proj'] });
    expect(c.batch).toBe(16);
    expect(c.memRate).toBe(0.07);
    expect(c.contradictRate).toBeUndefined(); // the task's own: 0 with five colours a name
    expect(c.minPlainAccuracy).toBeUndefined(); // the loop's 0.9
    const colon = loraRunConfigFromArgs(['--base', 'B', '--lora', '--task', 'incontext', '--out', 'R', '--story-form', 'colon', '--min-plain-accuracy', '0']);
    expect(colon).toMatchObject({ storyForm: 'colon', minPlainAccuracy: 0 });
    expect(() => loraRunConfigFromArgs(['--base', 'B', '--lora', '--task', 'incontext', '--out', 'R', '--min-plain-accuracy', '1.5'])).toThrow(/between 0 and 1/);
    expect(() => loraRunConfigFromArgs(['--base', 'B', '--lora', '--task', 'incontext', '--out', 'R', '--story-form', 'dash'])).toThrow(/story-form/);
    const d = loraRunConfigFromArgs(['--base', 'B', '--lora', '--task', 'arithmetic', '--out', 'R', '--rank', '4', '--targets', 'q_proj,k_proj', '--lr', '5e-5']);
    expect(d.lora).toMatchObject({ r: 4, targetModules: ['q_proj', 'k_proj'] });
    expect(d.lr).toBe(5e-5);
    expect(() => loraRunConfigFromArgs(['--base', 'B', '--task', 'arithmetic', '--out', 'R'])).toThrow(/--lora/);
    expect(() => loraRunConfigFromArgs(['--base', 'B', '--lora', '--task', 'arithmetic', '--out', 'R', '--targets', 'x_proj'])).toThrow(/x_proj/);
  });

  it('batches score only the answer and the end token; epochs are permutations', () => {
    const b = loadLlamaFolder(base);
    const task = loraRunTask(b, { task: 'arithmetic', scale: 'tiny', seed: 0, memRate: 0.07, promptFormat: 'plain' });
    const ex = task.test(new Rng(2));
    const seq = task.maxSeqLen - 1;
    const { ids, targets } = loraBatch(task, [ex], seq);
    const enc = task.tokenizer.encodeExample(ex);
    for (let t = 0; t < seq; t++) {
      const expected = t + 1 >= enc.promptLength && t + 1 < enc.ids.length ? enc.ids[t + 1] : IGNORE_INDEX;
      expect(Number(targets[t])).toBe(expected);
      expect(Number(ids[t])).toBe(t < enc.ids.length ? enc.ids[t] : task.tokenizer.padId);
    }
    expect(Number(targets[enc.ids.length - 2])).toBe(task.tokenizer.eoaId);
    const o = epochOrder(0, 3, 50);
    expect([...o].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(epochOrder(0, 4, 50)).not.toEqual(o);
  });

  it('saves the best adapter in PEFT layout, logs evaluations, never touches the base', async () => {
    const before = hashFolder(base);
    const out = path.join(tmp, 'run');
    const r = await trainLoraRun(config(out));
    expect(r.steps).toBe(8);
    expect(hashFolder(base)).toEqual(before);
    const files = fs.readdirSync(out).sort();
    expect(files).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'checkpoints', 'manifest.json', 'train-log.jsonl']);
    const peft = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(peft).toMatchObject({ peft_type: 'LORA', r: 8, lora_alpha: 32, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: base });
    const m = loadLlamaFolder(base);
    const a = loadAdapter(out, m.config);
    expect(a.config).toMatchObject({ r: LORA_DEFAULTS.r, alpha: LORA_DEFAULTS.alpha, targetModules: LORA_DEFAULTS.targetModules });
    let nonzeroB = 0;
    for (const [n, p] of a.params) if (n.includes('lora_B')) nonzeroB += p.data.some((x) => x !== 0) ? 1 : 0;
    expect(nonzeroB).toBe(4); // 2 layers x q_proj, v_proj: B moved from its zero init
    const evals = fs.readFileSync(path.join(out, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.kind === 'eval');
    expect(evals.map((e) => e.step)).toEqual([4, 8]);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    // the targets are written as the base's corpus writes sums: three digits per partial sum
    expect(manifest).toMatchObject({ format: 'memgen-lora-run/1', system: 'lora', status: 'done', task: 'arithmetic', memRate: 0.07, steps: 8, sumDigits: 3 });
    expect(manifest.base.note).toMatch(/stand-in for LLaMA-3\.2/);
    expect(manifest.best.eval.score).toBe(Math.max(...evals.map((e) => e.score)));
    const loaded = loadLoraRun(out);
    expect(loaded.task.name).toBe('arithmetic');
    expect(loaded.task.test(new Rng(1)).target).toMatch(/^\d{3},\d{3},\d{3}$/);
    expect(loaded.adapter.params.size).toBe(8);
  });

  it('a cloned pair of folders: the base is found relative to the run first, then at its recorded path', () => {
    const clone = path.join(tmp, 'clone');
    fs.cpSync(base, path.join(clone, 'base'), { recursive: true });
    fs.cpSync(path.join(tmp, 'run'), path.join(clone, 'runs', 'run'), { recursive: true });
    const file = path.join(clone, 'runs', 'run', 'manifest.json');
    const m = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(m.base.relative).toBe(path.join('..', 'base'));
    fs.writeFileSync(file, JSON.stringify({ ...m, base: { ...m.base, dir: path.join(tmp, 'gone'), relative: path.join('..', '..', 'base') } }));
    expect(loadLoraRun(path.join(clone, 'runs', 'run')).base.dir).toBe(path.join(clone, 'base'));
    fs.writeFileSync(file, JSON.stringify({ ...m, base: { ...m.base, relative: path.join('..', 'nowhere') } }));
    expect(loadLoraRun(path.join(clone, 'runs', 'run')).base.dir).toBe(base); // the recorded path, the relative one being absent
    fs.writeFileSync(file, JSON.stringify({ ...m, base: { ...m.base, dir: path.join(tmp, 'gone'), relative: path.join('..', 'nowhere') } }));
    expect(() => loadLoraRun(path.join(clone, 'runs', 'run'))).toThrow(/its base folder .*gone \(or .*nowhere, the same from the run\) is missing/);
  });

  it('resumes exactly and refuses a run folder inside the base', async () => {
    const a = path.join(tmp, 'ra');
    const b = path.join(tmp, 'rb');
    await trainLoraRun(config(a));
    let n = 0;
    const r1 = await trainLoraRun(config(b), { shouldStop: () => n++ >= 3 });
    expect(r1.stopReason).toBe('interrupted');
    expect(r1.steps).toBe(3);
    await trainLoraRun(config(b, { resume: true }));
    const ck = (d: string) => fs.readFileSync(path.join(d, 'checkpoints', 'last', 'trainer.safetensors'));
    expect(Buffer.compare(ck(a), ck(b))).toBe(0);
    await expect(trainLoraRun(config(path.join(base, 'adapter')))).rejects.toThrow(/must not be inside the base/);
  });

  it('analysis and steering name LLaMA sites layers.{i}.{site}; GPT-2 files keep no family field', async () => {
    expect(familySiteName(2, 'resid_post', 'llama')).toBe('layers.2.resid_post');
    expect(familySiteName(2, 'resid_post')).toBe('blocks.2.resid_post');
    expect(parseFamilySiteName('layers.1.resid_pre')).toEqual({ family: 'llama', layer: 1, site: 'resid_pre' });
    const rng = new Rng(5);
    const rho = Float32Array.from({ length: 2 * 8 }, () => rng.normal());
    const nmd = Float32Array.from({ length: 2 * 8 }, () => rng.normal());
    const shape = { layers: 2, d: 8 };
    const llama = rankNeurons(rho, nmd, 2, 8, 'resid_post', 0.25, 'llama');
    const gpt2 = rankNeurons(rho, nmd, 2, 8, 'resid_post', 0.25);
    expect(llama.map((e) => e.site.replace('layers.', 'blocks.'))).toEqual(gpt2.map((e) => e.site));
    expect(llama.every((e) => e.site.startsWith('layers.'))).toBe(true);
    const t = targetedIntervention(llama, nmd, shape, 2, 'mem->gen');
    const g = targetedIntervention(gpt2, nmd, shape, 2, 'mem->gen');
    expect(t.description.family).toBe('llama');
    expect('family' in g.description).toBe(false);
    expect(t.vectors).toEqual(g.vectors);
    expect(t.description.sites.every((x) => x.startsWith('layers.'))).toBe(true);
    expect(baselineIntervention('random-neurons', t, shape, 1).description.family).toBe('llama');
    expect(parsePicks('layers.1.resid_post:3', shape)).toEqual({ site: 'resid_post', family: 'llama', picks: [{ layer: 1, index: 3 }] });
    expect(() => parsePicks('layers.1.mlp_in:3', shape)).toThrow(/resid_pre or resid_post/);

    const run = loraSteerRun(path.join(tmp, 'run'));
    expect(run).toMatchObject({ family: 'llama', cfg: { nLayer: 2, nEmbd: 32 }, memgen: { seed: 0 } });
    expect(run.modelHash).toMatch(/^sha256:/);
    const model = await loraRunModel(run.lora, 'resid_post', { runner: { threads: 1 } });
    try {
      const ex = run.task.test(new Rng(1));
      const res = await model.generate([run.task.tokenizer.encode(ex.prompt)], { maxNewTokens: 4, eosId: run.task.tokenizer.eoaId });
      expect(res.hidden.length).toBe(2 * 32);
      expect(model).toMatchObject({ site: 'resid_post', family: 'llama' });
    } finally {
      await model.release();
    }
  });

  it('projection attribution: base + adapter parts of q_proj / v_proj NMD; a zero adapter has no part', async () => {
    const run = loadLoraRun(path.join(tmp, 'run'));
    const rng = new Rng(8);
    const pairs: PairRecord[] = Array.from({ length: 6 }, (_, k) => {
      const x = run.task.test(rng);
      const y = run.task.test(rng);
      return {
        index: k, input: k, tries: 1, genMember: 'input', genAnswer: x.genAnswer, memAnswer: x.memAnswer,
        original: { prompt: x.prompt, output: '', behaviour: 'gen' }, rephrasing: { prompt: y.prompt, output: '', behaviour: 'mem' },
      };
    });
    const trained = await projectionAttribution(run, pairs, { runner: { threads: 1 } });
    expect(trained.perLayer.map((p) => `${p.layer}.${p.proj}`)).toEqual(['0.q_proj', '1.q_proj', '0.v_proj', '1.v_proj']);
    // every prompt ends with '=': layer 0 sees the same token at the last position in both groups
    for (const p of trained.perLayer.filter((q) => q.layer === 0)) expect(p.meanAbsNmdBase + p.meanAbsNmdLora).toBe(0);
    const l1 = trained.perLayer.filter((q) => q.layer === 1);
    expect(l1.every((p) => p.meanAbsNmdBase > 0 && p.meanAbsNmdLora > 0 && p.loraShare > 0 && p.loraShare < 1)).toBe(true);
    const zero = await projectionAttribution({ ...run, adapter: { config: run.adapter.config, params: initLora(run.base.config, run.adapter.config) } }, pairs, { runner: { threads: 1 } });
    for (const p of zero.perLayer) expect(p.meanAbsNmdLora).toBe(0);
    expect(zero.perLayer[1].meanAbsNmdBase).toBeGreaterThan(0);
  });
});
