/**
 * Projection attribution (method.md section 7; the paper's Figure 5): for a LoRA run's pairs, the NMD
 * of each adapted projection's output (q_proj, v_proj by default) at the last prompt token, split into
 * the frozen base part and the adapter part (sites layers.{i}.{proj}.base and .lora, hooks.ts):
 *
 *   NMD_part[l, i] = mean_G part[l, i] - mean_M part[l, i]       part in {base, lora}   (nmd.ts, gen - mem)
 *   NMD_base + NMD_lora = the NMD of the projection's output (the parts add up exactly)
 *   per layer and projection: mean |NMD_base|, mean |NMD_lora| over the output features, and the
 *   adapter's share = mean |NMD_lora| / (mean |NMD_base| + mean |NMD_lora|)
 *
 * G and M are the gen and the mem members of the pairs in RUN/analysis/pairs.jsonl (their prompts are
 * run again through the base + adapter; greedy generation is deterministic, so the members are the
 * same inputs the extraction classified).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LlamaProjection, LlamaSite } from '../models/hooks';
import { LlamaInference } from '../models/llama-infer';
import type { LoadedLoraRun } from '../runs/lora-run';
import type { RunnerOptions } from '../runtime/runner';
import { writeJSON } from '../runs/run';
import { analysisDir, analysisPath } from './files';
import type { PairRecord } from './files';
import { momentsOf, nmd } from './nmd';

export const PROJECTIONS_FILE = 'projections.json';

export interface ProjectionLayer {
  layer: number;
  proj: LlamaProjection;
  /** layers.{l}.{proj}.base and .lora */
  sites: [string, string];
  meanAbsNmdBase: number;
  meanAbsNmdLora: number;
  loraShare: number;
}

export interface ProjectionsFile {
  format: 'memgen-projections/1';
  pairs: number;
  sign: 'gen - mem';
  perLayer: ProjectionLayer[];
}

/** Reads pairs.jsonl of a run's analysis. */
export function readPairs(runDir: string): PairRecord[] {
  const file = analysisPath(runDir, 'pairs');
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run \`memgen analyze --run ${runDir}\` first`);
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as PairRecord);
}

/** The attribution of the pairs (header); also written to RUN/analysis/projections.json when `write`. */
export async function projectionAttribution(run: LoadedLoraRun, pairs: readonly PairRecord[], opts: { runner?: RunnerOptions; write?: boolean; batchSize?: number } = {}): Promise<ProjectionsFile> {
  if (pairs.length === 0) throw new Error('no pairs: projection attribution needs gen/mem pairs');
  const projs = run.adapter.config.targetModules;
  const read: LlamaSite[] = projs.flatMap((p) => [`${p}.base`, `${p}.lora`] as LlamaSite[]);
  const inf = await LlamaInference.create(run.base.config, run.base.params, { adapter: run.adapter, readSites: read, runner: opts.runner, batchSize: opts.batchSize ?? 64 });
  const tok = run.task.tokenizer;
  const member = (p: PairRecord, which: 'gen' | 'mem') => ((p.genMember === 'input') === (which === 'gen') ? p.original : p.rephrasing).prompt;
  let gen: Map<LlamaSite, Float32Array>;
  let mem: Map<LlamaSite, Float32Array>;
  try {
    gen = (await inf.generate(pairs.map((p) => tok.encode(member(p, 'gen'))), { maxNewTokens: 1, eosId: tok.eoaId })).sites;
    mem = (await inf.generate(pairs.map((p) => tok.encode(member(p, 'mem'))), { maxNewTokens: 1, eosId: tok.eoaId })).sites;
  } finally {
    await inf.release();
  }
  const L = run.base.config.numLayers;
  const perLayer: ProjectionLayer[] = [];
  for (const proj of projs) {
    const parts = (['base', 'lora'] as const).map((part) => {
      const site = `${proj}.${part}` as LlamaSite;
      const g = gen.get(site)!;
      const width = g.length / (pairs.length * L);
      return { d: nmd(momentsOf(g, mem.get(site)!, L, width)), width };
    });
    for (let l = 0; l < L; l++) {
      const [b, a] = parts.map(({ d, width }) => {
        let s = 0;
        for (let i = 0; i < width; i++) s += Math.abs(d[l * width + i]);
        return s / width;
      });
      perLayer.push({ layer: l, proj, sites: [`layers.${l}.${proj}.base`, `layers.${l}.${proj}.lora`], meanAbsNmdBase: b, meanAbsNmdLora: a, loraShare: a / Math.max(1e-30, a + b) });
    }
  }
  const file: ProjectionsFile = { format: 'memgen-projections/1', pairs: pairs.length, sign: 'gen - mem', perLayer };
  if (opts.write) writeJSON(path.join(analysisDir(run.dir), PROJECTIONS_FILE), file);
  return file;
}
