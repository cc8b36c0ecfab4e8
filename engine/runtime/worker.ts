/**
 * RunnerWorker: Runners hosted in a worker thread (runner-worker.ts), with the same create/run/release
 * operations as Runner but asynchronous for real. Feeds are checked in the worker by the same Runner
 * code; errors come back as RunnerError with the worker's message.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Graph } from '../graph/graph';
import { type ExecutionProvider, type HostTensor, RunnerError, type RunnerOptions, type Signature } from './runner';

type SerializableRunnerOptions = Omit<RunnerOptions, 'onWarning'>;
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

export type WorkerRequest =
  | { id: number; kind: 'create'; model: Uint8Array; signature: Signature; options: SerializableRunnerOptions }
  | { id: number; kind: 'run'; handle: number; feeds: Record<string, HostTensor>; outputs?: string[] }
  | { id: number; kind: 'release'; handle: number };

export type WorkerReply =
  | { id: number; ok: true; handle?: number; provider?: ExecutionProvider; outputs?: Record<string, HostTensor> }
  | { id: number; ok: false; error: string; errorName: string };

/** Where the bundled worker script lives: beside this bundle in dist/, or dist/ from the sources. */
export function findWorkerScript(): string {
  const candidates = [path.join(__dirname, 'runner-worker.js'), path.resolve(__dirname, '../../dist/runner-worker.js')];
  const found = candidates.find((c) => fs.existsSync(c));
  if (!found) throw new Error(`runner-worker.js not found (looked in ${candidates.join(', ')}); run \`npm run build\` first`);
  return found;
}

export class RunnerWorker {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();

  constructor(script = findWorkerScript()) {
    this.worker = new Worker(script);
    this.worker.on('message', (r: WorkerReply) => {
      const p = this.pending.get(r.id);
      this.pending.delete(r.id);
      p?.resolve(r);
    });
    this.worker.on('error', (e) => this.failAll(e));
    this.worker.on('exit', (code) => this.failAll(new Error(`runner worker exited with code ${code}`)));
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private async call(req: WithoutId<WorkerRequest>, transfer: ArrayBuffer[] = []): Promise<WorkerReply & { ok: true }> {
    const id = this.nextId++;
    const reply = await new Promise<WorkerReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id }, transfer);
    });
    if (!reply.ok) throw new RunnerError(reply.error);
    return reply;
  }

  async create(model: Uint8Array, signature: Signature, options: SerializableRunnerOptions = {}): Promise<WorkerModel> {
    const r = await this.call({ kind: 'create', model, signature, options });
    return new WorkerModel(this, r.handle!, r.provider!, signature);
  }

  fromGraph(g: Graph, options: SerializableRunnerOptions = {}): Promise<WorkerModel> {
    return this.create(g.toOnnx(), { inputs: g.inputSpecs(), outputs: g.outputSpecs() }, options);
  }

  /** @internal */
  async runModel(handle: number, feeds: Record<string, HostTensor>, outputs?: readonly string[]): Promise<Record<string, HostTensor>> {
    const r = await this.call({ kind: 'run', handle, feeds, outputs: outputs ? [...outputs] : undefined });
    return r.outputs!;
  }

  /** @internal */
  async releaseModel(handle: number): Promise<void> {
    await this.call({ kind: 'release', handle });
  }

  async terminate(): Promise<void> {
    await this.worker.terminate();
  }
}

export class WorkerModel {
  constructor(
    private readonly host: RunnerWorker,
    readonly handle: number,
    readonly provider: ExecutionProvider,
    readonly signature: Signature,
  ) {}

  run(feeds: Record<string, HostTensor>, outputs?: readonly string[]): Promise<Record<string, HostTensor>> {
    return this.host.runModel(this.handle, feeds, outputs);
  }

  release(): Promise<void> {
    return this.host.releaseModel(this.handle);
  }
}
