/**
 * The committed LoRA adapters on runs/base-llama-tiny (docs/llama.md "A base that copies letters"):
 * each loads from wherever the repository is cloned (its base found relative to the run) and shows
 * both behaviours on held-out inputs, as its manifest and analysis record.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LlamaInference } from '../../engine/models/llama-infer';
import { loadLoraRun } from '../../engine/runs/lora-run';
import { evaluate, testSet } from '../../engine/train/evaluate';

const RUNS = path.join(__dirname, '..', '..', 'runs');

describe.each(['cipher-lora', 'arithmetic-lora', 'incontext-lora'])('runs/%s', (name) => {
  it('loads on the committed base and shows both behaviours on 100 held-out inputs (>= 15 % each)', async () => {
    const dir = path.join(RUNS, name);
    const run = loadLoraRun(dir);
    expect(path.resolve(run.base.dir)).toBe(path.resolve(RUNS, 'base-llama-tiny'));
    expect(run.adapter.config.targetModules).toEqual(['q_proj', 'v_proj', 'gate_proj', 'up_proj', 'down_proj']);
    const model = await LlamaInference.create(run.base.config, run.base.params, { adapter: run.adapter, batchSize: 50, runner: { threads: 1 } });
    try {
      const r = await evaluate(run.task, model, testSet(run.task, 100, run.manifest.seed));
      expect(r.gen).toBeGreaterThanOrEqual(0.15);
      expect(r.mem).toBeGreaterThanOrEqual(0.15);
    } finally {
      await model.release();
    }
    const steering = JSON.parse(fs.readFileSync(path.join(dir, 'analysis', 'steering.json'), 'utf8'));
    expect(steering.topN).toBe(name === 'incontext-lora' ? 0.05 : 0.1); // the paper's setting (Tables 5 and 2)
  });
});
