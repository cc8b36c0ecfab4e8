/**
 * What a report shows, read from a run folder (docs/runs.md) and its analysis folder
 * (engine/analysis/files.ts, engine/steer/files.ts). Tolerant by design: every file is optional
 * except manifest.json; a missing file leaves its section with a note saying how to make it, and an
 * unreadable one is listed in `problems` instead of failing the whole report.
 *
 * Staleness (listed in `stale`, shown at the top of the report):
 *   analysis.json   made for another model file than the run's current model.safetensors
 *   steering.json / sweep.json   made for another model file, or with neurons of another analysis
 *                   than the current one (same-run experiments: pairs or modelHash differ)
 *   steering-from-*.json (transfer tables: another run's neurons, Tables 3, 4)   made for another model file
 *   the other steering-*.json (the run's own neurons at another setting, e.g. --steer-at prompt)   made
 *                   for another model file
 * A LoRA run's analysis may also hold projections.json (projection attribution, the paper's Figure 5).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type AnalysisSummary, analysisPath, analysisStaleness } from '../analysis/files';
import { readNpy } from '../analysis/npy';
import type { ProbesFile } from '../analysis/probe-layers';
import { ADAPTER_FILES } from '../models/lora';
import { checkLoraManifest } from '../runs/lora-run';
import { type Manifest, RUN_FILES, RunError, checkManifestCommon, modelFile, modelHash, readJSON, readTrainLog, trainLogProblem } from '../runs/run';
import { type SteeringFile, type SweepFile, otherSteerFiles, steerPath } from '../steer/files';
import { PROJECTIONS_FILE, type ProjectionsFile } from '../analysis/projection-attribution';
import type { EvalPoint } from './figures';

export interface RunFileInfo {
  /** Path relative to the run folder, e.g. 'analysis/nmd.npy'. */
  rel: string;
  abs: string;
  what: string;
  exists: boolean;
  bytes: number;
  modified: string | null;
}

export interface ReportData {
  /** The run folder as given, and resolved. */
  runDir: string;
  absDir: string;
  manifest: Manifest;
  config: { n_layer?: number; n_embd?: number; n_head?: number; vocab_size?: number; n_positions?: number } | null;
  evals: EvalPoint[];
  summary: AnalysisSummary | null;
  nmd: { data: Float32Array; layers: number; d: number } | null;
  probes: ProbesFile | null;
  steering: SteeringFile | null;
  /** steer-eval with another run's neurons (steering-from-*.json; intra- / inter-task), by file name. */
  transfers: SteeringFile[];
  /** steer-eval with the run's own neurons at other settings (steering-*.json but transfers), with the file's name. */
  variants: { name: string; file: SteeringFile }[];
  /** Projection attribution of a LoRA run (analysis/projections.json). */
  projections: ProjectionsFile | null;
  sweep: SweepFile | null;
  /** sha256:<hex> of the model file now (null when the file is missing). */
  modelHash: string | null;
  /** 'lora' for a LoRA run (manifest.system), else 'gpt2'. */
  system: 'gpt2' | 'lora';
  /** The run's model file: model.safetensors, or adapter_model.safetensors of a LoRA run. */
  modelRel: string;
  stale: string[];
  problems: string[];
  files: RunFileInfo[];
  /** Extra lines from the caller (e.g. reproduce: "analysis failed: ..."). */
  notes: string[];
}

/** The model files of a GPT-2 run / of a LoRA run (whose base folder holds the model and tokenizer). */
const MODEL_FILES: Record<'gpt2' | 'lora', [string, string][]> = {
  gpt2: [
    [RUN_FILES.config, 'Hugging Face GPT2Config + memgen fields'],
    [RUN_FILES.model, 'the kept model (best gen% x mem%)'],
    [RUN_FILES.tokenizer, "the task's tokenizer"],
  ],
  lora: [
    [ADAPTER_FILES.config, 'PEFT adapter config (r, alpha, target modules)'],
    [ADAPTER_FILES.model, 'the kept adapter (best gen% x mem%), PEFT tensor names'],
  ],
};

const FILES: [string, string][] = [
  [RUN_FILES.manifest, 'task, seed, command, training config, hashes'],
  [RUN_FILES.log, 'training loss and held-out evaluations'],
  ['analysis/analysis.json', 'analysis summary (pairs, per-layer statistics)'],
  ['analysis/pairs.jsonl', 'the kept pairs (prompt, output, class)'],
  ['analysis/nmd.npy', 'NMD [L, d] = mean gen - mean mem'],
  ['analysis/rho.npy', 'point-biserial correlation with gen [L, d]'],
  ['analysis/neurons.json', 'top neurons by |rho|'],
  ['analysis/probes.json', 'probe accuracy per layer'],
  ['analysis/steering.json', 'steering table (steer-eval)'],
  ['analysis/sweep.json', 'alpha x topN sweep'],
];

function readOptional<T>(file: string, what: string, problems: string[]): T | null {
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (e) {
    problems.push(`${what} ${file} is unreadable (${(e as Error).message}); its section is left out`);
    return null;
  }
}

/** The run's manifest.json (a GPT-2 or a LoRA run's), checked: the report cannot be made without it. */
function readReportManifest(file: string): Manifest {
  const m = readJSON<unknown>(file, 'run manifest');
  if ((m as { system?: unknown } | null)?.system === 'lora') checkLoraManifest(m, file);
  else checkManifestCommon(m, file);
  return m as unknown as Manifest;
}

function readEvals(file: string, problems: string[]): EvalPoint[] {
  const { lines, skipped } = readTrainLog(file);
  if (skipped.length > 0) problems.push(trainLogProblem(file, skipped));
  const num = (v: unknown): number | null => (typeof v === 'number' ? v : null); // finite: readTrainLog skips lines with other numbers
  const out: EvalPoint[] = [];
  for (const o of lines) {
    const gen = num(o.gen);
    const mem = num(o.mem);
    if (o.kind === 'eval' && gen !== null && mem !== null) out.push({ step: o.step, gen, mem, other: num(o.other) ?? 1 - gen - mem, guess: num(o.guess), memGuess: num(o.memGuess) });
  }
  return out;
}

/** Reads everything a report of `runDir` shows (see the header). */
export function loadReportData(runDir: string, notes: string[] = []): ReportData {
  const absDir = path.resolve(runDir);
  if (!fs.existsSync(absDir) || !fs.statSync(absDir).isDirectory()) throw new RunError(`run folder ${runDir} does not exist`);
  const problems: string[] = [];
  const manifestFile = path.join(absDir, RUN_FILES.manifest);
  if (!fs.existsSync(manifestFile)) throw new RunError(`${manifestFile} is missing: ${runDir} is not a memgen run folder (train one with \`memgen train\`)`);
  const manifest = readReportManifest(manifestFile);
  const config = readOptional<ReportData['config']>(path.join(absDir, RUN_FILES.config), 'run config', problems);
  const evals = readEvals(path.join(absDir, RUN_FILES.log), problems);
  const hash = modelFile(absDir) ? modelHash(absDir) : null;

  const summary = readOptional<AnalysisSummary>(analysisPath(absDir, 'summary'), 'analysis summary', problems);
  let nmd: ReportData['nmd'] = null;
  const nmdFile = analysisPath(absDir, 'nmd');
  if (summary && fs.existsSync(nmdFile)) {
    try {
      const { shape, data } = readNpy(nmdFile);
      if (shape.length !== 2 || shape[0] !== summary.layers || shape[1] !== summary.d) {
        problems.push(`${nmdFile} has shape (${shape.join(', ')}), analysis.json says [${summary.layers}, ${summary.d}]: the heatmap is left out (rerun \`memgen analyze --run ${runDir} --force\`)`);
      } else nmd = { data, layers: shape[0], d: shape[1] };
    } catch (e) {
      problems.push(`${nmdFile} is unreadable (${(e as Error).message})`);
    }
  }
  const probes = summary ? readOptional<ProbesFile>(analysisPath(absDir, 'probes'), 'probes', problems) : null;
  const steering = readOptional<SteeringFile>(steerPath(absDir, 'steering'), 'steering table', problems);
  const sweep = readOptional<SweepFile>(steerPath(absDir, 'sweep'), 'sweep', problems);
  const others = otherSteerFiles(absDir);
  const transfers = others.transfers.map((f) => readOptional<SteeringFile>(f, 'transfer steering table', problems)).filter((f): f is SteeringFile => f !== null);
  const variants = others.variants.flatMap((f) => {
    const file = readOptional<SteeringFile>(f, 'steering table', problems);
    return file ? [{ name: path.basename(f), file }] : [];
  });
  const projections = summary ? readOptional<ProjectionsFile>(path.join(absDir, 'analysis', PROJECTIONS_FILE), 'projection attribution', problems) : null;

  const stale: string[] = [];
  if (summary && hash && summary.modelHash !== hash) stale.push(analysisStaleness(runDir, summary) ?? `analysis.json was made for another model file`);
  for (const [name, f, cmd] of [['steering.json', steering, 'steer-eval'], ['sweep.json', sweep, 'sweep']] as const) {
    if (!f) continue;
    if (hash && f.modelHash !== hash) {
      stale.push(`${name} was made for another model file (${f.modelHash.slice(0, 19)}…, now ${hash.slice(0, 19)}…): rerun \`memgen ${cmd} --run ${runDir}\``);
    } else if (summary && f.neurons.experiment === 'same-run' && (f.neurons.pairs !== summary.pairs || f.neurons.modelHash !== summary.modelHash)) {
      stale.push(`${name} used an earlier analysis (${f.neurons.pairs} pairs; the current one has ${summary.pairs}): rerun \`memgen ${cmd} --run ${runDir}\``);
    }
    if (f.neurons.stale) stale.push(`${name} steered with stale neurons: ${f.neurons.stale}`);
  }
  for (const { name, file: f } of variants) {
    if (hash && f.modelHash !== hash) stale.push(`${name} was made for another model file: rerun the steer-eval that wrote it (\`memgen steer-eval --run ${runDir} --out ${path.join(runDir, 'analysis', name)}\` with its options)`);
  }
  for (const f of transfers) {
    if (hash && f.modelHash !== hash) stale.push(`the transfer table with the neurons of ${f.neurons.run} was made for another model file: rerun \`memgen steer-eval --run ${runDir} --neurons-from ${f.neurons.run}\``);
    if (f.neurons.stale) stale.push(`the transfer table with the neurons of ${f.neurons.run} steered with stale neurons: ${f.neurons.stale}`);
  }

  const system: ReportData['system'] = (manifest as { system?: string }).system === 'lora' ? 'lora' : 'gpt2';
  const modelRel = system === 'lora' ? ADAPTER_FILES.model : RUN_FILES.model;
  const files: RunFileInfo[] = [FILES[0], ...MODEL_FILES[system], ...FILES.slice(1)].map(([rel, what]) => {
    const abs = path.join(absDir, rel);
    const st = fs.existsSync(abs) ? fs.statSync(abs) : null;
    return { rel, abs, what, exists: st !== null, bytes: st?.size ?? 0, modified: st ? st.mtime.toISOString() : null };
  });
  return { runDir, absDir, manifest, config, evals, summary, nmd, probes, steering, transfers, variants, projections, sweep, modelHash: hash, system, modelRel, stale, problems, files, notes };
}

/** The probe with the highest held-out accuracy over layers and kinds, or null. */
export function bestProbe(p: ProbesFile | null): { kind: 'logistic' | 'mlp'; site: string; accuracy: number; ci: [number, number] } | null {
  if (!p) return null;
  let best: ReturnType<typeof bestProbe> = null;
  for (const kind of ['logistic', 'mlp'] as const) {
    for (const x of p[kind]) if (!best || x.accuracy > best.accuracy) best = { kind, site: x.site, accuracy: x.accuracy, ci: x.ci };
  }
  return best;
}
