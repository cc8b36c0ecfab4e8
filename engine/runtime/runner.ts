/**
 * Runs ONNX models on onnxruntime-node, refusing bad feeds loudly.
 *
 * onnxruntime silently ignores unknown feed names and feeds for inputs that have initializers, so
 * before every run the feeds are checked against the model's signature: every input fed, no unknown
 * name, dtype and shape as declared (a symbolic dim must take one value across all inputs).
 * Execution providers: 'cpu' (default, inside the npm package) or 'cuda' (needs the provider
 * libraries: see README, "GPU"). session.run is a synchronous native call; callers that must stay
 * responsive use RunnerWorker (worker.ts), which hosts Runners in a worker thread.
 */
import * as ort from 'onnxruntime-node';
import { type AnyTypedArray, type DType, type Dim, type Graph, type InputSpec, fmtShape } from '../graph/graph';

export type ExecutionProvider = 'cpu' | 'cuda';
export type OptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface RunnerOptions {
  provider?: ExecutionProvider;
  /** Intra-op threads; 0 lets onnxruntime choose (one per core). */
  threads?: number;
  optimization?: OptimizationLevel;
  /** When CUDA is asked for but cannot load, run on CPU instead of failing. */
  allowCpuFallback?: boolean;
  /** Called with a warning (for example the CUDA fallback). */
  onWarning?: (message: string) => void;
  /** onnxruntime's per-node profile: written to `<profile>_<time>.json` by endProfiling() (bench/profile-train.ts). */
  profile?: string;
}

export interface Signature {
  inputs: InputSpec[];
  outputs: InputSpec[];
}

/** A value to feed or a value returned: element data plus dims. */
export interface HostTensor {
  data: AnyTypedArray;
  dims: readonly number[];
}

export class RunnerError extends Error {}

export const CUDA_INSTALL_HINT =
  'The CUDA execution provider is not installed. On a machine with CUDA 12 and cuDNN 9, run ' +
  '`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install` in the extension or project folder (needs internet once; `npm rebuild` skips it: package.json allowScripts denies the download at install), or use provider "cpu".';

const ORT_TYPE: Record<DType, ort.Tensor.Type> = {
  float32: 'float32', float64: 'float64', float16: 'float16', int64: 'int64', int32: 'int32', bool: 'bool', uint8: 'uint8',
};

const ARRAY_OF: Record<DType, string> = {
  float32: 'Float32Array', float64: 'Float64Array', float16: 'Uint16Array', int64: 'BigInt64Array', int32: 'Int32Array', bool: 'Uint8Array', uint8: 'Uint8Array',
};

export function checkFeeds(sig: Signature, feeds: Record<string, HostTensor>, known: readonly string[]): void {
  const expected = new Set(sig.inputs.map((i) => i.name));
  for (const name of Object.keys(feeds)) {
    if (!expected.has(name) || !known.includes(name)) {
      throw new RunnerError(`unknown feed '${name}'; the model's inputs are: ${sig.inputs.map((i) => i.name).join(', ')}`);
    }
  }
  const bound = new Map<string, { value: number; by: string }>();
  for (const spec of sig.inputs) {
    const f = feeds[spec.name];
    if (!f) throw new RunnerError(`missing feed '${spec.name}' (${spec.dtype}${fmtShape(spec.shape)})`);
    if (f.data.constructor.name !== ARRAY_OF[spec.dtype]) {
      throw new RunnerError(`feed '${spec.name}': expected ${spec.dtype} data (${ARRAY_OF[spec.dtype]}), got ${f.data.constructor.name}`);
    }
    const count = f.dims.reduce((p, d) => p * d, 1);
    if (count !== f.data.length) {
      throw new RunnerError(`feed '${spec.name}': dims ${fmtShape(f.dims)} need ${count} values, data has ${f.data.length}`);
    }
    const bad = () => new RunnerError(`feed '${spec.name}': shape ${fmtShape(f.dims)} does not match the declared ${fmtShape(spec.shape)}`);
    if (f.dims.length !== spec.shape.length) throw bad();
    spec.shape.forEach((d: Dim, i) => {
      const got = f.dims[i];
      if (typeof d === 'number') {
        if (d !== got) throw bad();
        return;
      }
      const prev = bound.get(d);
      if (prev && prev.value !== got) {
        throw new RunnerError(`feed '${spec.name}': dim '${d}' is ${got} here but ${prev.value} in '${prev.by}'`);
      }
      bound.set(d, { value: got, by: spec.name });
    });
  }
}

export class Runner {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly signature: Signature,
    readonly provider: ExecutionProvider,
  ) {}

  static async fromGraph(g: Graph, opts: RunnerOptions = {}): Promise<Runner> {
    return Runner.create(g.toOnnx(), { inputs: g.inputSpecs(), outputs: g.outputSpecs() }, opts);
  }

  /** `model`: the serialised model, or the path of a model file (needed when it has external-data files beside it). */
  static async create(model: Uint8Array | string, signature: Signature, opts: RunnerOptions = {}): Promise<Runner> {
    const provider = opts.provider ?? 'cpu';
    const sessionOpts: ort.InferenceSession.SessionOptions = {
      executionProviders: [provider],
      graphOptimizationLevel: opts.optimization ?? 'all',
      intraOpNumThreads: opts.threads ?? 0,
      interOpNumThreads: 1,
      logSeverityLevel: provider === 'cuda' ? 4 : 3, // a missing CUDA library is reported by us, with the fix
      ...(opts.profile !== undefined ? { enableProfiling: true, profileFilePrefix: opts.profile } : {}),
    };
    let session: ort.InferenceSession;
    try {
      session = typeof model === 'string' ? await ort.InferenceSession.create(model, sessionOpts) : await ort.InferenceSession.create(model, sessionOpts);
    } catch (e) {
      const msg = (e as Error).message;
      if (provider === 'cuda' && /shared librar|cuda|CUDA|provider/i.test(msg)) {
        if (!opts.allowCpuFallback) throw new RunnerError(`${CUDA_INSTALL_HINT}\n(onnxruntime said: ${firstLine(msg)})`);
        opts.onWarning?.(`CUDA unavailable, running on CPU. ${CUDA_INSTALL_HINT}`);
        return Runner.create(model, signature, { ...opts, provider: 'cpu' });
      }
      throw new RunnerError(`onnxruntime could not load the model: ${firstLine(msg)}`);
    }
    const missing = signature.inputs.filter((i) => !session.inputNames.includes(i.name)).map((i) => i.name);
    const extra = session.inputNames.filter((n) => !signature.inputs.some((i) => i.name === n));
    if (missing.length || extra.length) {
      throw new RunnerError(`model inputs disagree with the signature: missing in model [${missing}], undeclared [${extra}]`);
    }
    return new Runner(session, signature, provider);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Runs the model; returns the requested outputs (all by default). */
  async run(feeds: Record<string, HostTensor>, outputs?: readonly string[]): Promise<Record<string, HostTensor>> {
    checkFeeds(this.signature, feeds, this.session.inputNames);
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const spec of this.signature.inputs) {
      const f = feeds[spec.name];
      ortFeeds[spec.name] = new ort.Tensor(ORT_TYPE[spec.dtype], f.data as never, f.dims as number[]);
    }
    for (const o of outputs ?? []) {
      if (!this.session.outputNames.includes(o)) throw new RunnerError(`unknown output '${o}'; outputs: ${this.session.outputNames.join(', ')}`);
    }
    const res = outputs ? await this.session.run(ortFeeds, [...outputs]) : await this.session.run(ortFeeds);
    const out: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(res)) out[name] = { data: t.data as AnyTypedArray, dims: t.dims };
    return out;
  }

  /** Ends onnxruntime's profile (RunnerOptions.profile) and writes its file. */
  endProfiling(): void {
    this.session.endProfiling();
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 400);
}
