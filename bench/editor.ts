/**
 * Editor benchmark rows (`npm run bench`): the bundled language server driven over stdio as an editor
 * would, on the committed tiny arithmetic run. Latencies are wall times of LSP requests:
 *   CodeLens of a 100-prompt file (each prompt generated once: uncached), hover p50 / p95 (uncached
 *   prompts, one per request), steer click to result p50, and the server's resident memory (VmRSS).
 * The hover and steer rows give p10-p90 of their requests as spread; the start and CodeLens rows are one run each.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type MessageConnection, RequestType, StreamMessageReader, StreamMessageWriter, createMessageConnection } from 'vscode-jsonrpc/node';
import * as lsp from '../server/src/protocol';
import { Rng } from '../engine/util/rng';
import { type Row, valueSpread } from './measure';


const codeLens = new RequestType<{ textDocument: { uri: string } }, unknown[], void>('textDocument/codeLens');
const hover = new RequestType<{ textDocument: { uri: string }; position: { line: number; character: number } }, unknown, void>('textDocument/hover');

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

/** Prompts of runs/arithmetic-tiny's task (tiny scale: operands 10..99; steering refuses others). */
function prompts(rng: Rng, n: number): string[] {
  return Array.from({ length: n }, () => `${rng.int(10, 99)}+${rng.int(10, 99)}+${rng.int(10, 99)}+${rng.int(10, 99)}=`);
}

export async function editorRows(root: string, threads: number): Promise<Row[]> {
  const serverJs = path.join(root, 'dist/server.js');
  if (!fs.existsSync(path.join(root, 'runs/arithmetic-tiny/model.safetensors'))) return [];
  const child: ChildProcess = spawn(process.execPath, [serverJs, '--stdio'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const conn: MessageConnection = createMessageConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
  conn.onNotification('textDocument/publishDiagnostics', () => {});
  conn.onNotification('window/logMessage', () => {});
  conn.onRequest('window/workDoneProgress/create', () => null);
  conn.listen();
  const rows: Row[] = [];
  try {
    const t0 = performance.now();
    await conn.sendRequest('initialize', {
      processId: process.pid, rootUri: pathToFileURL(root).toString(), capabilities: {},
      workspaceFolders: [{ uri: pathToFileURL(root).toString(), name: 'bench' }],
      initializationOptions: { ...lsp.DEFAULT_SETTINGS, threads },
    });
    await conn.sendNotification('initialized', {});
    const rng = new Rng(4242);
    let doc = 0;
    const open = (lines: string[]) => {
      const uri = pathToFileURL(path.join(root, 'examples', `bench-${doc++}.memgen`)).toString();
      void conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'memgen', version: 1, text: ['run: runs/arithmetic-tiny', ...lines].join('\n') } });
      return uri;
    };
    // Warm-up: the first request loads the run into the worker.
    await conn.sendRequest(codeLens, { textDocument: { uri: open(prompts(rng, 1)) } });
    rows.push({ name: 'editor: server start + run load + first CodeLens (1 prompt)', value: performance.now() - t0, unit: 'ms' });

    let t = performance.now();
    await conn.sendRequest(codeLens, { textDocument: { uri: open(prompts(rng, 100)) } });
    rows.push({ name: 'editor: CodeLens for a 100-prompt file (uncached)', value: performance.now() - t, unit: 'ms', notes: 'goal <= 2000 ms' });

    const hoverTimes: number[] = [];
    for (let i = 0; i < 40; i++) {
      const uri = open(prompts(rng, 1));
      t = performance.now();
      await conn.sendRequest(hover, { textDocument: { uri }, position: { line: 1, character: 2 } });
      hoverTimes.push(performance.now() - t);
    }
    rows.push({ name: 'editor: hover p50 (uncached prompt)', value: quantile(hoverTimes, 0.5), unit: 'ms', spread: valueSpread(hoverTimes) });
    rows.push({ name: 'editor: hover p95 (uncached prompt)', value: quantile(hoverTimes, 0.95), unit: 'ms', spread: valueSpread(hoverTimes), notes: 'goal p95 <= 100 ms' });

    const steerTimes: number[] = [];
    for (let i = 0; i < 10; i++) {
      const uri = open(prompts(rng, 1));
      t = performance.now();
      await conn.sendRequest(lsp.steer.method, { uri, line: 1, direction: 'mem->gen' });
      steerTimes.push(performance.now() - t);
    }
    rows.push({ name: 'editor: steer click to result p50 (memgen/steer)', value: quantile(steerTimes, 0.5), unit: 'ms', spread: valueSpread(steerTimes), notes: 'goal <= 2000 ms' });

    const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN) / 1024;
    rows.push({ name: 'editor: server resident memory after loading the run', value: rss, unit: 'MiB' });
  } finally {
    try {
      await conn.sendRequest('shutdown');
      await conn.sendNotification('exit');
    } catch { /* gone */ }
    conn.dispose();
    child.kill();
  }
  return rows;
}
