/**
 * Every MemGen extension to the Language Server Protocol, in one typed module shared by the client
 * (client/src) and the server (server/src), as rust-analyzer's lsp_ext.ts. docs/protocol.md
 * describes each one; a change here is a change there.
 *
 * Only plain JSON crosses: numbers, strings, arrays, records. Positions are LSP's (0-based line,
 * UTF-16 character). Site names are hooks.ts's `blocks.{layer}.{site}`.
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
  /** Steering fraction of neurons and scale; null = the file header, else the task's paper default. */
  topN: number | null;
  alpha: number | null;
  /** Hook site used when a file names none; must match the run's analysis to show probes. */
  site: Site;
  /** Diagnostic level for prompts predicted to be memorized, and for stale analyses. */
  memorizedDiagnostics: DiagnosticLevel;
  staleDiagnostics: DiagnosticLevel;
  /** Wait after the last edit before the model runs for diagnostics (ms). */
  debounceMs: number;
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
  trusted: true,
};

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
}

export interface SteerOutcome {
  output: string;
  behaviour: Behaviour;
  pGenFirst: number;
  pMemFirst: number | null;
}

export interface SteerResult {
  prompt: string;
  runName: string;
  direction: Direction;
  topN: number;
  alpha: number;
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
  /** [layers][d] site vectors at the last prompt token, unsteered. */
  hidden: number[][];
}

export interface RunInfo {
  dir: string;
  name: string;
  task: string;
  analysed: boolean;
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
  /** LSP work-done token created by the client (window/workDoneProgress/create), optional. */
  workDoneToken?: string;
}

export interface AnalyzeParams {
  run: string;
  pairs?: number;
  force?: boolean;
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

/** Client-side command ids the server's CodeLenses invoke (arguments: PromptRef fields, direction). */
export const COMMANDS = {
  steer: 'memgen.steer',
  run: 'memgen.run',
} as const;
