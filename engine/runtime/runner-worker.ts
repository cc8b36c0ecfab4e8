/**
 * Worker-thread entry: hosts Runners so that onnxruntime's synchronous native runs never block the
 * caller's event loop (the language server). Bundled to dist/runner-worker.js; spoken to by RunnerWorker.
 */
import { parentPort } from 'node:worker_threads';
import { Runner } from './runner';
import type { WorkerReply, WorkerRequest } from './worker';

const runners = new Map<number, Runner>();
let nextHandle = 1;

function transferables(out: Record<string, { data: ArrayBufferView }>): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const t of Object.values(out)) if (t.data.buffer instanceof ArrayBuffer) seen.add(t.data.buffer);
  return [...seen];
}

parentPort!.on('message', async (req: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    switch (req.kind) {
      case 'create': {
        const runner = await Runner.create(req.model, req.signature, req.options);
        const handle = nextHandle++;
        runners.set(handle, runner);
        reply = { id: req.id, ok: true, handle, provider: runner.provider };
        break;
      }
      case 'run': {
        const runner = runners.get(req.handle);
        if (!runner) throw new Error(`no model with handle ${req.handle} in this worker`);
        const outputs = await runner.run(req.feeds, req.outputs);
        parentPort!.postMessage({ id: req.id, ok: true, outputs } satisfies WorkerReply, transferables(outputs));
        return;
      }
      case 'release': {
        await runners.get(req.handle)?.release();
        runners.delete(req.handle);
        reply = { id: req.id, ok: true };
        break;
      }
    }
  } catch (e) {
    reply = { id: req.id, ok: false, error: (e as Error).message, errorName: (e as Error).name };
  }
  parentPort!.postMessage(reply);
});
