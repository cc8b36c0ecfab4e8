/** The trainer and run folders: layout, resume exactness, refusal to overwrite, clear errors. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../engine/cli/main';
import { readSafeTensorsFile, tensorAsFloat32 } from '../../engine/io/safetensors';
import { loadRun } from '../../engine/runs/run';
import { train } from '../../engine/train/trainer';
import { tinyConfig } from './tiny-train';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-trainer-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function checkpointParams(dir: string): Map<string, Float32Array> {
  const st = readSafeTensorsFile(path.join(dir, 'checkpoints/last/state.safetensors'));
  return new Map([...st.tensors.keys()].map((k) => [k, tensorAsFloat32(st, k)]));
}

describe('train()', () => {
  it('writes the run folder contract', async () => {
    const dir = path.join(root, 'layout');
    const t0 = performance.now();
    const out = await train(tinyConfig(dir));
    const wall = (performance.now() - t0) / 1000;
    expect(out.steps).toBe(12);
    expect(out.seconds).toBeLessThanOrEqual(wall);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'manifest.json', 'train-log.jsonl', 'checkpoints/last/state.json']) {
      expect(fs.existsSync(path.join(dir, f)), f).toBe(true);
    }
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_layer: 1, n_embd: 32, memgen: { task: 'arithmetic', seed: 5 } });
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ status: 'done', task: 'arithmetic', seed: 5, steps: 12 });
    expect(manifest.hashes['model.safetensors']).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(manifest.trainSeconds).toBeLessThanOrEqual(wall);
    expect(manifest.best.eval.n).toBe(16);
    const lines = fs.readFileSync(path.join(dir, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.kind === 'eval').map((l) => l.step)).toEqual([6, 12]);
    expect(lines.filter((l) => l.kind === 'train').length).toBe(6);
    const run = loadRun(dir);
    expect(run.cfg.nLayer).toBe(1);
    expect(run.params.get('transformer.h.0.ln_2.weight')!.shape).toEqual([32]);
  });

  it('--resume continues exactly: stop at step 6 + resume = one uninterrupted run', async () => {
    const straight = path.join(root, 'straight');
    const split = path.join(root, 'split');
    await train(tinyConfig(straight, { saveEvals: true }));
    let steps = 0;
    const first = await train(tinyConfig(split), { shouldStop: () => steps >= 5, onProgress: (p) => (steps = p.step) });
    expect(first.stopReason).toBe('interrupted');
    expect(JSON.parse(fs.readFileSync(path.join(split, 'manifest.json'), 'utf8')).status).toBe('interrupted');
    await train(tinyConfig(split, { resume: true }));
    const a = checkpointParams(straight);
    const b = checkpointParams(split);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [k, v] of a) expect(b.get(k), k).toEqual(v);
    // --save-evals kept every evaluated model; the last one is the final state's
    expect(fs.readdirSync(path.join(straight, 'checkpoints/evals')).sort()).toEqual(['step-12.safetensors', 'step-6.safetensors']);
    expect(fs.existsSync(path.join(split, 'checkpoints/evals'))).toBe(false);
    const last = readSafeTensorsFile(path.join(straight, 'checkpoints/evals/step-12.safetensors'));
    for (const k of last.tensors.keys()) expect(tensorAsFloat32(last, k), k).toEqual(a.get(k));
    // --stop-at-step 6 ends at step 6 of the same 12-step schedule: the straight run's step-6 model
    const early = path.join(root, 'early');
    expect((await train(tinyConfig(early, { stopAt: 6 }))).steps).toBe(6);
    const six = readSafeTensorsFile(path.join(straight, 'checkpoints/evals/step-6.safetensors'));
    const e = checkpointParams(early);
    for (const k of six.tensors.keys()) expect(e.get(k), k).toEqual(tensorAsFloat32(six, k));
    const logA = fs.readFileSync(path.join(straight, 'train-log.jsonl'), 'utf8').split('\n').map((l) => l && JSON.parse(l).loss);
    const logB = fs.readFileSync(path.join(split, 'train-log.jsonl'), 'utf8').split('\n').map((l) => l && JSON.parse(l).loss);
    expect(logB).toEqual(logA);
  });

  it('refuses an existing folder unless asked, and --force keeps the old one aside', async () => {
    const dir = path.join(root, 'exists');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'precious.txt'), 'keep me');
    await expect(train(tinyConfig(dir, { steps: 2 }))).rejects.toThrow(/already exists.*--resume.*--force/);
    await train(tinyConfig(dir, { steps: 2, evalEvery: 2, force: true }));
    const aside = fs.readdirSync(root).filter((f) => f.startsWith('exists.replaced-'));
    expect(aside.length).toBe(1);
    expect(fs.readFileSync(path.join(root, aside[0], 'precious.txt'), 'utf8')).toBe('keep me');
  });
});

describe('run folder errors name the file', () => {
  it('missing model, corrupt config', async () => {
    const dir = path.join(root, 'broken');
    await train(tinyConfig(dir, { steps: 2, evalEvery: 2 }));
    fs.renameSync(path.join(dir, 'model.safetensors'), path.join(dir, 'model.bak'));
    expect(() => loadRun(dir)).toThrow(/model\.safetensors is missing/);
    fs.renameSync(path.join(dir, 'model.bak'), path.join(dir, 'model.safetensors'));
    expect(() => loadRun(dir, { availableBytes: 1000 })).toThrow(/broken: loading needs about .* GB of memory .* but 0\.00 GB is available/);
    fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "gpt2", ');
    expect(() => loadRun(dir)).toThrow(/config\.json is corrupt/);
    expect(() => loadRun(path.join(root, 'nope'))).toThrow(/does not exist/);
  });
});

describe('memgen CLI', () => {
  it('usage errors exit 2 and list the choices', async () => {
    const errors: string[] = [];
    const orig = console.error;
    console.error = (m: string) => errors.push(m);
    try {
      expect(await main(['train', '--task', 'poetry', '--out', path.join(root, 'x')])).toBe(2);
      expect(errors.join('\n')).toMatch(/unknown task 'poetry'; choose one of: arithmetic, incontext, cipher/);
      expect(await main(['train', '--task', 'arithmetic', '--preset', 'huge', '--out', path.join(root, 'x')])).toBe(2);
      expect(errors.join('\n')).toMatch(/unknown preset 'huge'; choose one of: tiny, small, gpt2, gpt2-medium/);
      expect(await main(['frobnicate'])).toBe(2);
      expect(await main(['eval', '--run', path.join(root, 'nope')])).toBe(1);
      expect(errors.join('\n')).toMatch(/does not exist/);
    } finally {
      console.error = orig;
    }
  });
});
