/**
 * Probes for every layer of an analysis (method.md section 5): the paper's MLP probe and the
 * logistic baseline (probe.ts) trained on each layer's site vectors of the kept pairs, split by pair,
 * with held-out accuracy and its 95% Wilson interval; written to RUN/analysis/probes.json.
 * Chance is 0.5: every pair gives one gen and one mem member.
 */
import * as path from 'node:path';
import { ANALYSIS_FILES } from './files';
import { readNpy } from './npy';
import { type ProbeKind, type ProbeResult, trainProbe } from './probe';
import { writeJSON } from '../runs/run';

export interface LayerProbe {
  layer: number;
  site: string;
  accuracy: number;
  ci: [number, number];
  n: number;
  valAccuracy: number;
  epochs: number;
  lr: number;
}

/** probes.json. */
export interface ProbesFile {
  format: 'memgen-probes/1';
  site: string;
  pairs: number;
  split: { trainPairs: number; valPairs: number; testPairs: number };
  chance: 0.5;
  seed: number;
  mlp: LayerProbe[];
  logistic: LayerProbe[];
}

/** One layer's rows [P, d] out of hidden [P, L, d]. */
function layerRows(all: Float32Array, P: number, L: number, d: number, layer: number): Float32Array {
  const out = new Float32Array(P * d);
  for (let p = 0; p < P; p++) out.set(all.subarray((p * L + layer) * d, (p * L + layer + 1) * d), p * d);
  return out;
}

export async function probeLayers(
  dir: string,
  siteNames: readonly string[],
  opts: { seed: number; threads?: number; kinds?: ProbeKind[]; shouldStop?: () => boolean; onLayer?: (kind: ProbeKind, layer: number, r: ProbeResult) => void },
): Promise<ProbesFile> {
  const gen = readNpy(path.join(dir, ANALYSIS_FILES.hiddenGen));
  const mem = readNpy(path.join(dir, ANALYSIS_FILES.hiddenMem));
  const [P, L, d] = gen.shape;
  const file: ProbesFile = {
    format: 'memgen-probes/1', site: siteNames[0]?.replace(/^blocks\.\d+\./, '') ?? '', pairs: P,
    split: { trainPairs: 0, valPairs: 0, testPairs: 0 }, chance: 0.5, seed: opts.seed, mlp: [], logistic: [],
  };
  for (const kind of opts.kinds ?? (['logistic', 'mlp'] as ProbeKind[])) {
    for (let l = 0; l < L; l++) {
      if (opts.shouldStop?.()) break;
      const data = { gen: layerRows(gen.data, P, L, d, l), mem: layerRows(mem.data, P, L, d, l), pairs: P, d };
      const r = await trainProbe(data, { kind, seed: opts.seed, threads: opts.threads, shouldStop: opts.shouldStop });
      file.split = { trainPairs: r.trainPairs, valPairs: r.valPairs, testPairs: r.testPairs };
      file[kind].push({ layer: l, site: siteNames[l], accuracy: r.accuracy, ci: r.ci, n: r.n, valAccuracy: r.valAccuracy, epochs: r.epochs, lr: r.lr });
      opts.onLayer?.(kind, l, r);
    }
  }
  writeJSON(path.join(dir, ANALYSIS_FILES.probes), file);
  return file;
}
