/**
 * Probes for every layer of an analysis (method.md section 5): the paper's MLP probe and the
 * logistic baseline (probe.ts) trained on each layer's site vectors of the kept pairs, split by pair,
 * with held-out accuracy and its 95% Wilson interval; written to RUN/analysis/probes.json.
 * Chance is 0.5: every pair gives one gen and one mem member.
 *
 * The trained weights are kept too, in RUN/analysis/probes.safetensors, so that a new prompt can be
 * scored per layer without retraining (the editor's hover):
 *   {kind}.{layer}.fc{K}.weight [in, out], {kind}.{layer}.fc{K}.bias [out]   (probe.ts's names)
 *   {kind}.{layer}.mean [d], {kind}.{layer}.std [d]                          (train-split standardisation)
 *   metadata: format memgen-probe-weights/1, site, and per kind the widths as JSON
 * p(gen) of a raw site vector x = sigmoid(probeLogits(model, x)).
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import { ANALYSIS_FILES } from './files';
import { readNpy } from './npy';
import { type ProbeKind, type ProbeModel, type ProbeResult, trainProbe } from './probe';
import { type TensorToWrite, readSafeTensorsFile, tensorAsFloat32, writeSafeTensorsFile } from '../io/safetensors';
import { writeJSON } from '../runs/run';

/** The probe weights file beside probes.json. */
export const PROBE_WEIGHTS_FILE = 'probes.safetensors';

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
  const models: Partial<Record<ProbeKind, ProbeModel[]>> = {};
  for (const kind of opts.kinds ?? (['logistic', 'mlp'] as ProbeKind[])) {
    for (let l = 0; l < L; l++) {
      if (opts.shouldStop?.()) break;
      const data = { gen: layerRows(gen.data, P, L, d, l), mem: layerRows(mem.data, P, L, d, l), pairs: P, d };
      const r = await trainProbe(data, { kind, seed: opts.seed, threads: opts.threads, shouldStop: opts.shouldStop, keepModel: true });
      if (r.model) (models[kind] ??= []).push(r.model);
      file.split = { trainPairs: r.trainPairs, valPairs: r.valPairs, testPairs: r.testPairs };
      file[kind].push({ layer: l, site: siteNames[l], accuracy: r.accuracy, ci: r.ci, n: r.n, valAccuracy: r.valAccuracy, epochs: r.epochs, lr: r.lr });
      opts.onLayer?.(kind, l, r);
    }
  }
  writeJSON(path.join(dir, ANALYSIS_FILES.probes), file);
  saveProbeModels(dir, file.site, models);
  return file;
}

/** Writes RUN/analysis/probes.safetensors (see the header); layers must be complete from 0. */
export function saveProbeModels(dir: string, site: string, models: Partial<Record<ProbeKind, ProbeModel[]>>): void {
  const tensors: Record<string, TensorToWrite> = {};
  const metadata: Record<string, string> = { format: 'memgen-probe-weights/1', site };
  for (const [kind, list] of Object.entries(models) as [ProbeKind, ProbeModel[]][]) {
    metadata[`${kind}.widths`] = JSON.stringify(list[0]?.widths ?? []);
    metadata[`${kind}.layers`] = String(list.length);
    list.forEach((m, l) => {
      for (const [name, p] of m.params) tensors[`${kind}.${l}.${name}`] = { dtype: 'F32', shape: p.shape, data: p.data };
      tensors[`${kind}.${l}.mean`] = { dtype: 'F32', shape: [m.mean.length], data: m.mean };
      tensors[`${kind}.${l}.std`] = { dtype: 'F32', shape: [m.std.length], data: m.std };
    });
  }
  writeSafeTensorsFile(path.join(dir, PROBE_WEIGHTS_FILE), tensors, metadata);
}

/** Reads probes.safetensors of an analysis folder: per kind, one model per layer; null if absent. */
export function loadProbeModels(dir: string): Partial<Record<ProbeKind, ProbeModel[]>> | null {
  const file = path.join(dir, PROBE_WEIGHTS_FILE);
  if (!fs.existsSync(file)) return null;
  const st = readSafeTensorsFile(file);
  if (st.metadata.format !== 'memgen-probe-weights/1') throw new Error(`${file}: not a memgen probe weights file`);
  const out: Partial<Record<ProbeKind, ProbeModel[]>> = {};
  for (const kind of ['logistic', 'mlp'] as ProbeKind[]) {
    const widthsText = st.metadata[`${kind}.widths`];
    if (widthsText === undefined) continue;
    const widths = JSON.parse(widthsText) as number[];
    const layers = Number(st.metadata[`${kind}.layers`]);
    out[kind] = Array.from({ length: layers }, (_, l) => {
      const params = new Map<string, { shape: number[]; data: Float32Array }>();
      for (let k = 1; k < widths.length; k++) {
        for (const [suffix, shape] of [['weight', [widths[k - 1], widths[k]]], ['bias', [widths[k]]]] as const) {
          const name = `fc${k}.${suffix}`;
          const t = `${kind}.${l}.${name}`;
          if (!st.tensors.has(t)) throw new Error(`${file}: tensor ${t} is missing`);
          params.set(name, { shape: [...shape], data: tensorAsFloat32(st, t) });
        }
      }
      return { kind, widths, params, mean: tensorAsFloat32(st, `${kind}.${l}.mean`), std: tensorAsFloat32(st, `${kind}.${l}.std`) };
    });
  }
  return out;
}
