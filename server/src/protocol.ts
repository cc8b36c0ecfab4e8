/**
 * Every MemGen extension to the Language Server Protocol, in one typed module shared by the client
 * (client/src) and the server (server/src), as rust-analyzer's lsp_ext.ts. docs/protocol.md
 * describes each one; a change here is a change there.
 *
 * Only plain JSON crosses: numbers, strings, arrays, records. Large numeric arrays (the panels' NMD,
 * rho, activations) cross as BinaryArray: the little-endian bytes of a typed array in base64, which
 * the client turns back into a Float32Array / Int32Array and posts to the webview as a typed array.
 * Positions are LSP's (0-based line, UTF-16 character). Site names are hooks.ts's `blocks.{layer}.{site}`.
 *
 * The last section, "Panels", also types the messages between the extension and its webviews
 * (PanelToHost, HostToPanel); every PanelToHost is checked by parsePanelMessage before it is used.
 */
import { NotificationType, RequestType } from 'vscode-jsonrpc';

export type Behaviour = 'gen' | 'mem' | 'other';
export type Direction = 'mem->gen' | 'gen->mem';
export type Site = 'resid_pre' | 'ln2' | 'resid_post';
export type Provider = 'cpu' | 'cuda';
export type DiagnosticLevel = 'off' | 'hint' | 'information' | 'warning';

/** Client -> server settings (initializationOptions and memgen/configure). */
export interface ServerSettings {
  /** Folder holding runs, relative to the workspace root or absolute ('runs'). */
  runsFolder: string;
  /** Run used by files without a `run:` header; '' = none. */
  defaultRun: string;
  provider: Provider;
  /** Intra-op threads of onnxruntime; 0 = one per core. */
  threads: number;
  /** Steering fraction of neurons and scale; null = the file header, else the setting the run's steering.json measured, else the paper's. */
  topN: number | null;
  alpha: number | null;
  /** Hook site for runs without an analysis when a file names none (else the analysis's site is used). */
  site: Site;
  /** Diagnostic level for prompts predicted to be memorized, and for stale analyses. */
  memorizedDiagnostics: DiagnosticLevel;
  staleDiagnostics: DiagnosticLevel;
  /** Wait after the last edit before the model runs for diagnostics (ms). */
  debounceMs: number;
  /** Rephrasings per prompt for the hover's flip rate (0: off), and the flip rate above which a lens says "fragile" (null: off). */
  robustnessK: number;
  robustnessLensAbove: number | null;
  /** false in an untrusted workspace: the server parses files but runs no model. */
  trusted: boolean;
}

export const DEFAULT_SETTINGS: ServerSettings = {
  runsFolder: 'runs',
  defaultRun: '',
  provider: 'cpu',
  threads: 1,
  topN: null,
  alpha: null,
  site: 'ln2',
  memorizedDiagnostics: 'information',
  staleDiagnostics: 'information',
  debounceMs: 400,
  robustnessK: 8,
  robustnessLensAbove: null,
  trusted: true,
};

/** How a prompt's behaviour holds under the pair rule's rephrasings (engine/steer/robustness.ts). */
export interface Robustness {
  k: number;
  behaviour: 'gen' | 'mem' | 'other';
  variants: { prompt: string; output: string; behaviour: 'gen' | 'mem' | 'other' }[];
  flips: number;
  /** flips / variants; null when the pair rule gives the prompt no other surface. */
  flipRate: number | null;
  flipsTo: 'gen' | 'mem' | 'other' | null;
  /** The site neurons that differ most between flipping and keeping rephrasings (mean difference). */
  neurons: { name: string; diff: number }[];
  /** "3 of 8 rephrasings flip to mem". */
  summary: string;
}

/** Names a prompt of an open .memgen document: its uri and the line its prompt starts on. */
export interface PromptRef {
  uri: string;
  line: number;
}

/** One layer's probe reading of the prompt's site vector. */
export interface LayerProbeReading {
  layer: number;
  site: string;
  /** sigmoid(logit) of the logistic / MLP probe: p(gen); null when that probe was not saved. */
  pGenLogistic: number | null;
  pGenMlp: number | null;
  /** Held-out accuracy of that layer's probes (probes.json). */
  accLogistic: number | null;
  accMlp: number | null;
}

/** A ranked neuron that pushes this prompt toward a behaviour: contribution = (x - midpoint) * sign. */
export interface NeuronPush {
  site: string;
  index: number;
  rank: number;
  rho: number;
  /** The prompt's activation at this neuron. */
  value: number;
  /** How far the activation sits on that behaviour's side (activation units; larger = stronger). */
  push: number;
}

export interface Prediction {
  prompt: string;
  run: string;
  runName: string;
  task: string;
  /** The greedy unsteered output (decoded, before the end token) and its class by the task. */
  output: string;
  /** The answer the output states when the task writes a working (arithmetic: the scratchpad's final sum; never the output itself), else null. */
  answer: string | null;
  behaviour: Behaviour;
  /** The lens' verdict: mem or gen by the first answer token, normalised over the two. */
  predicted: 'mem' | 'gen';
  probability: number;
  /** Raw softmax probabilities of the first gen / mem answer token (mem: null without a mem answer). */
  pGenFirst: number;
  pMemFirst: number | null;
  genAnswer: string;
  memAnswer: string | null;
  /** The site shown on the lens: the layer whose probe has the best held-out accuracy. */
  bestSite: string;
  /** Per layer; empty when the analysis has no probes. */
  probes: LayerProbeReading[];
  /** Why probes is empty or partial, else null. */
  probesNote: string | null;
  towardGen: NeuronPush[];
  towardMem: NeuronPush[];
  /** Where the numbers come from. */
  analysis: { dir: string; site: Site; pairs: number; createdAt: string; stale: string | null } | null;
  expected: string | null;
  /** Whether the output matches the file's expected answer / behaviour; null when none. */
  expectedMet: boolean | null;
  millis: number;
}

export interface SteerParams extends PromptRef {
  direction: Direction;
  /**
   * The panels' custom steering set: these neurons of `run`'s analysis instead of the top-N ranking;
   * ignored (the ranking is used) when the prompt's run is another folder.
   */
  custom?: { run: string; neurons: NeuronRef[] };
}

export interface SteerOutcome {
  output: string;
  /** The answer the output states when the task writes a working (arithmetic: the scratchpad's final sum; never the output itself), else null. */
  answer: string | null;
  behaviour: Behaviour;
  pGenFirst: number;
  pMemFirst: number | null;
}

export interface SteerResult {
  prompt: string;
  runName: string;
  direction: Direction;
  /** 'custom': the panels' custom set was steered (topN then does not apply); else the top-N ranking. */
  method: 'targeted' | 'custom';
  topN: number;
  alpha: number;
  /** Where the shift went: 'all' (the last prompt position and every generated one) or 'prompt' (the last prompt position only; the header's steerAt:). */
  steerAt: 'all' | 'prompt';
  /** Neurons shifted and the sites they live in. */
  neurons: number;
  sites: string[];
  unsteered: SteerOutcome;
  steered: SteerOutcome;
  /** A sentence on what the measured steering of this run does (docs/results.md). */
  note: string;
  millis: number;
}

export interface ActivationsResult {
  siteNames: string[];
  /** float32 [layers, d]: site vectors at the last prompt token, unsteered. */
  hidden: BinaryArray;
  /** float32 [layers, d]: the shift the active steer adds (null: no steer of this prompt yet). */
  shift: BinaryArray | null;
  /** The steer the shift belongs to (direction, topN, alpha), or null. */
  steer: { direction: Direction; topN: number; alpha: number; neurons: number } | null;
  prompt: string;
  runName: string;
}

export interface RunInfo {
  dir: string;
  name: string;
  /** The run's task; a plain Hugging Face folder's is the one its analysis recorded, else '?'. */
  task: string;
  analysed: boolean;
  /** A plain Hugging Face folder (not trained by memgen): analysing it needs a task. */
  plain: boolean;
}

export interface NeuronsResult {
  run: string;
  site: Site;
  topN: number;
  count: number;
  neurons: { rank: number; site: string; index: number; nmd: number; rho: number }[];
}

/** Long jobs run by the server as a `memgen` CLI child process. */
export interface TrainParams {
  task: string;
  preset: string;
  seed: number;
  out: string;
  /** Stop early once held-out gen% and mem% both reach this fraction (`--stop-when-both`); absent: all steps. */
  stopWhenBoth?: number;
  /** LSP work-done token created by the client (window/workDoneProgress/create), optional. */
  workDoneToken?: string;
}

export interface AnalyzeParams {
  run: string;
  pairs?: number;
  force?: boolean;
  /** For a plain Hugging Face folder: the task to analyse it on (`--task`, `--task-seed`). */
  task?: string;
  taskSeed?: number;
  workDoneToken?: string;
}

export interface SteerEvalParams {
  run: string;
  topN?: number;
  alpha?: number;
  workDoneToken?: string;
}

export interface JobResult {
  exitCode: number;
  /** The run folder the job wrote. */
  run: string;
  /** Last lines of the CLI's output. */
  tail: string;
  cancelled: boolean;
}

/** One line of a job's output, with progress where the CLI printed a fraction. */
export interface JobProgress {
  job: 'train' | 'analyze' | 'steerEval';
  line: string;
  percentage?: number;
}

export interface ServerStatus {
  /** The run of the active document, or the default run. */
  run: string | null;
  provider: Provider;
  state: 'idle' | 'loading' | 'busy' | 'error' | 'untrusted';
  message: string;
}

/** Every custom method, grouped as rust-analyzer's lsp_ext. */
export const predict = new RequestType<PromptRef, Prediction, void>('memgen/predict');
/** Runs the prompt anew (cache bypassed) and returns the same as predict. */
export const run = new RequestType<PromptRef, Prediction, void>('memgen/run');
export const steer = new RequestType<SteerParams, SteerResult, void>('memgen/steer');
export const activations = new RequestType<PromptRef, ActivationsResult, void>('memgen/activations');
export const listRuns = new RequestType<Record<string, never>, RunInfo[], void>('memgen/listRuns');
export const neurons = new RequestType<{ run: string; limit?: number }, NeuronsResult, void>('memgen/neurons');
export const train = new RequestType<TrainParams, JobResult, void>('memgen/train');
export const analyze = new RequestType<AnalyzeParams, JobResult, void>('memgen/analyze');
export const steerEval = new RequestType<SteerEvalParams, JobResult, void>('memgen/steerEval');

export const configure = new NotificationType<ServerSettings>('memgen/configure');
export const trainProgress = new NotificationType<JobProgress>('memgen/trainProgress');
export const status = new NotificationType<ServerStatus>('memgen/status');

/**
 * Client-side command ids the server invokes: the CodeLenses (arguments: PromptRef fields,
 * direction) and the hover's neuron links (inspectNeuron, argument InspectNeuronArgs; the client
 * trusts hover markdown for this command only).
 */
export const COMMANDS = {
  steer: 'memgen.steer',
  run: 'memgen.run',
  inspectNeuron: 'memgen.inspectNeuron',
} as const;

/** A neuron of a run, as a hover link names it: site name `blocks.3.resid_pre` and index. */
export interface InspectNeuronArgs {
  run: string;
  site: string;
  index: number;
}

/** The `command:` link that opens the Neurons panel's inspector on a neuron. */
export function inspectNeuronLink(args: InspectNeuronArgs): string {
  return `command:${COMMANDS.inspectNeuron}?${encodeURIComponent(JSON.stringify(args))}`;
}

// ------------------------------------------------------------------------------------------
// Panels (the Svelte webviews, webviews/): what the server sends for them, and the messages
// between the extension and a webview.

/** A numeric array as bytes: little-endian float32 / int32, C order, base64. */
export interface BinaryArray {
  dtype: 'float32' | 'int32';
  shape: number[];
  base64: string;
}

/** A typed array as a BinaryArray (Node's Buffer: server and client both run on Node). */
export function encodeBinary(data: Float32Array | Int32Array, shape: number[]): BinaryArray {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new Error(`shape [${shape.join(', ')}] holds ${n} values, the array ${data.length}`);
  const dtype = data instanceof Float32Array ? 'float32' : 'int32';
  return { dtype, shape, base64: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') };
}

/** A BinaryArray back as a typed array (a fresh, aligned copy); the length must match the shape. */
export function decodeBinary(b: BinaryArray): Float32Array | Int32Array {
  const bytes = Buffer.from(b.base64, 'base64');
  const n = b.shape.reduce((x, y) => x * y, 1);
  if (bytes.byteLength !== n * 4) throw new Error(`binary array: ${bytes.byteLength} bytes for shape [${b.shape.join(', ')}] of ${b.dtype}`);
  const buf = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(buf).set(bytes);
  return b.dtype === 'float32' ? new Float32Array(buf) : new Int32Array(buf);
}

/** One neuron: its layer and its index within the layer's d-vector. */
export interface NeuronRef {
  layer: number;
  index: number;
}

export interface RunParams {
  /** Run folder, absolute or relative to the first workspace root. */
  run: string;
}

/** memgen/neuronMap: NMD and rho of every (layer, neuron), for the heatmap. */
export interface NeuronMapResult<A = BinaryArray, R = BinaryArray> {
  run: string;
  runName: string;
  task: string;
  site: Site;
  siteNames: string[];
  layers: number;
  d: number;
  pairs: number;
  /** Sign convention of nmd and rho: positive = larger on the gen member. */
  sign: 'gen - mem';
  /** float32 [layers, d]: NMD = mean gen - mean mem (nmd.npy). */
  nmd: A;
  /** float32 [layers, d]: point-biserial rho, gen = 1 (rho.npy). */
  rho: A;
  /** int32 [layers, d]: rank over all layers by |rho| (1 = largest; rank.ts order). */
  rank: R;
  /** The analysis' steering fraction and the neurons it keeps (ranks 1..kept). */
  topN: number;
  kept: number;
}

/** One layer's held-out probe accuracy (probes.json). */
export interface ProbeLayerRow {
  layer: number;
  site: string;
  accuracy: number;
  /** 95% Wilson interval of the accuracy. */
  ci: [number, number];
  n: number;
}

/** memgen/probeTable: the per-layer probes of a run. */
export interface ProbeTableResult {
  run: string;
  runName: string;
  site: string;
  pairs: number;
  split: { trainPairs: number; valPairs: number; testPairs: number };
  chance: number;
  mlp: ProbeLayerRow[];
  logistic: ProbeLayerRow[];
}

export type SteerMethod = 'targeted' | 'custom' | 'random-neurons' | 'uniform';
export interface ClassPercent {
  gen: number;
  mem: number;
  other: number;
}

/** One (direction, method) cell of steering.json, or of the paper's table (n null). */
export interface SteeringCellRow {
  direction: Direction;
  method: SteerMethod;
  n: number;
  pct: ClassPercent;
  success: number;
}

export interface SteeringTable {
  topN: number | null;
  alpha: number;
  count: number;
  site: string;
  experiment: string;
  cells: SteeringCellRow[];
  /** The paper's comparable table (engine/steer/files.ts), or null. */
  paper: { table: string; model: string; topN: number; alpha: number; note: string; cells: { direction: Direction; method: SteerMethod; pct: ClassPercent }[] } | null;
  warnings: string[];
  createdAt: string;
}

/** One (alpha, topN, direction, method) cell of sweep.json. */
export interface SweepCellRow {
  alpha: number;
  topN: number;
  direction: Direction;
  method: 'targeted' | 'random-neurons' | 'uniform';
  n: number;
  success: number;
}

export interface SweepTable {
  alphas: number[];
  topNs: number[];
  cells: SweepCellRow[];
  best: { alpha: number; topN: number } | null;
  paperSetting: { topN: number; alpha: number } | null;
  complete: boolean;
}

/** memgen/steeringTables: steering.json and sweep.json of a run (each null when not made yet, with why). */
export interface SteeringTablesResult {
  run: string;
  runName: string;
  task: string;
  steering: SteeringTable | null;
  sweep: SweepTable | null;
  /** How to make what is missing ('run MemGen: Evaluate Steering', `memgen sweep --run ...`). */
  missing: string[];
}

export interface NeuronDetailParams extends RunParams, NeuronRef {}

/** memgen/neuronDetail: one neuron's activations over the pairs, for the inspector. */
export interface NeuronDetailResult<A = BinaryArray> {
  run: string;
  site: string;
  layer: number;
  index: number;
  nmd: number;
  rho: number;
  rank: number;
  total: number;
  /** float32 [pairs]: the neuron's value on the gen member / the mem member of each pair. */
  gen: A;
  mem: A;
}

/** memgen/trainCurve: one line of a training run's train-log.jsonl, as it is written. */
export interface TrainCurvePoint {
  run: string;
  step: number;
  kind: 'train' | 'eval';
  loss: number | null;
  /** Eval only: fractions 0..1 of held-out outputs that are gen / mem / other. */
  gen: number | null;
  mem: number | null;
  other: number | null;
}

/** memgen/trainState: a training job's state (the panel's buttons act on it). */
export interface TrainState {
  run: string | null;
  state: 'idle' | 'running' | 'paused' | 'finished' | 'cancelled' | 'failed';
  /** The stop rule: training stops early once gen and mem both reach this fraction (null: none). */
  stopWhenBoth: number | null;
  steps: number | null;
  message: string;
}

export type TrainControl = 'pause' | 'resume' | 'cancel';

/** memgen/trainLog: the whole train-log.jsonl of a run, with its step budget and stop rule (manifest.json). */
export interface TrainLogResult {
  run: string;
  points: TrainCurvePoint[];
  steps: number | null;
  stopWhenBoth: number | null;
}

export const neuronMap = new RequestType<RunParams, NeuronMapResult, void>('memgen/neuronMap');
export const probeTable = new RequestType<RunParams, ProbeTableResult, void>('memgen/probeTable');
export const steeringTables = new RequestType<RunParams, SteeringTablesResult, void>('memgen/steeringTables');
export const neuronDetail = new RequestType<NeuronDetailParams, NeuronDetailResult, void>('memgen/neuronDetail');
export const trainControl = new RequestType<{ action: TrainControl }, TrainState, void>('memgen/trainControl');
export const trainHistory = new RequestType<Record<string, never>, { state: TrainState; points: TrainCurvePoint[] }, void>('memgen/trainHistory');
export const trainLog = new RequestType<RunParams, TrainLogResult, void>('memgen/trainLog');
export const trainCurve = new NotificationType<TrainCurvePoint>('memgen/trainCurve');
export const trainState = new NotificationType<TrainState>('memgen/trainState');

/** The webview panels. */
export type PanelKind = 'neurons' | 'probes' | 'steering' | 'training' | 'activations';
export const PANEL_KINDS: readonly PanelKind[] = ['neurons', 'probes', 'steering', 'training', 'activations'];

/** Webview -> extension. Validated by parsePanelMessage; anything else is dropped and logged. */
export type PanelToHost =
  | { type: 'ready' }
  | { type: 'selectRun'; run: string }
  | { type: 'inspect'; run: string; layer: number; index: number }
  | { type: 'customSet'; action: 'add' | 'remove' | 'clear'; layer: number; index: number }
  | { type: 'trainControl'; action: TrainControl }
  | { type: 'steerAlone'; layer: number; index: number; direction: Direction }
  | { type: 'cspViolation'; directive: string; blocked: string; sample: string };

/** Extension -> webview (typed arrays arrive as typed arrays: VS Code transfers their buffers). */
export type HostToPanel =
  | { type: 'runs'; runs: RunInfo[]; selected: string | null }
  | { type: 'neuronMap'; data: NeuronMapResult<Float32Array, Int32Array> }
  | { type: 'probes'; data: ProbeTableResult }
  | { type: 'steering'; data: SteeringTablesResult }
  | { type: 'lastSteer'; result: SteerResult }
  | { type: 'neuronDetail'; data: NeuronDetailResult<Float32Array> }
  /** Show this run and inspect this neuron (a neuron link in the hover). */
  | { type: 'showNeuron'; run: string; layer: number; index: number }
  | { type: 'customSet'; neurons: NeuronRef[] }
  | { type: 'trainPoint'; point: TrainCurvePoint }
  | { type: 'trainState'; state: TrainState }
  | { type: 'trainLog'; data: TrainLogResult }
  | { type: 'steerAlone'; layer: number; index: number; result: SteerResult }
  | { type: 'activations'; data: Omit<ActivationsResult, 'hidden' | 'shift'>; hidden: Float32Array; shift: Float32Array | null }
  | { type: 'error'; message: string };

const isInt = (x: unknown, max = 1e9): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x < max;
const isStr = (x: unknown, max = 4096): x is string => typeof x === 'string' && x.length <= max;

/** The message if it is a well-formed PanelToHost (no extra keys), else null. */
export function parsePanelMessage(x: unknown): PanelToHost | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return null;
  const m = x as Record<string, unknown>;
  const keys = Object.keys(m).sort().join(',');
  switch (m.type) {
    case 'ready':
      return keys === 'type' ? { type: 'ready' } : null;
    case 'selectRun':
      return keys === 'run,type' && isStr(m.run) ? { type: 'selectRun', run: m.run } : null;
    case 'inspect':
      return keys === 'index,layer,run,type' && isStr(m.run) && isInt(m.layer, 4096) && isInt(m.index) ? { type: 'inspect', run: m.run, layer: m.layer, index: m.index } : null;
    case 'customSet':
      return keys === 'action,index,layer,type' && (m.action === 'add' || m.action === 'remove' || m.action === 'clear') && isInt(m.layer, 4096) && isInt(m.index)
        ? { type: 'customSet', action: m.action, layer: m.layer, index: m.index } : null;
    case 'trainControl':
      return keys === 'action,type' && (m.action === 'pause' || m.action === 'resume' || m.action === 'cancel') ? { type: 'trainControl', action: m.action } : null;
    case 'steerAlone':
      return keys === 'direction,index,layer,type' && (m.direction === 'mem->gen' || m.direction === 'gen->mem') && isInt(m.layer, 4096) && isInt(m.index)
        ? { type: 'steerAlone', layer: m.layer, index: m.index, direction: m.direction } : null;
    case 'cspViolation':
      return keys === 'blocked,directive,sample,type' && isStr(m.directive, 200) && isStr(m.blocked, 1000) && isStr(m.sample, 200)
        ? { type: 'cspViolation', directive: m.directive, blocked: m.blocked, sample: m.sample } : null;
    default:
      return null;
  }
}
