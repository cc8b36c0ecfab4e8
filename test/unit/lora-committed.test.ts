/**
 * The committed cipher adapter (runs/cipher-lora on runs/base-llama-tiny; docs/llama.md "A base that
 * copies letters"): it loads from wherever the repository is cloned (its base found relative to the
 * run) and shows both behaviours on held-out inputs, as its manifest and analysis record.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LlamaInference } from '../../engine/models/llama-infer';
import { loadLoraRun } from '../../engine/runs/lora-run';
import { evaluate, testSet } from '../../engine/train/evaluate';

const RUN = path.join(__dirname, '..', '..', 'runs', 'cipher-lora');

describe('runs/cipher-lora', () => {
  it('loads on the committed base and shows both behaviours on 100 held-out inputs (>= 20 % each)', async () => {
    const run = loadLoraRun(RUN);
    expect(path.resolve(run.base.dir)).toBe(path.resolve(RUN, '..', 'base-llama-tiny'));
    expect(run.adapter.config.targetModules).toEqual(['q_proj', 'v_proj', 'gate_proj', 'up_proj', 'down_proj']);
    const model = await LlamaInference.create(run.base.config, run.base.params, { adapter: run.adapter, batchSize: 50, runner: { threads: 1 } });
    try {
      const r = await evaluate(run.task, model, testSet(run.task, 100, run.manifest.seed));
      expect(r.gen).toBeGreaterThanOrEqual(0.2);
      expect(r.mem).toBeGreaterThanOrEqual(0.2);
    } finally {
      await model.release();
    }
    const steering = JSON.parse(fs.readFileSync(path.join(RUN, 'analysis', 'steering.json'), 'utf8'));
    expect(steering.topN).toBe(0.1); // Table 5's setting
  });
});
