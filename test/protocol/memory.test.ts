/**
 * A prompt file with 10,000 prompts on runs/arithmetic-tiny is annotated (every prompt's prediction
 * computed, the memorized ones flagged, a CodeLens per prompt) without the language server's
 * resident memory passing 1 GiB: its peak (VmHWM of /proc/PID/status, which covers the engine
 * worker thread, the same process) is read after the annotation. Linux only (/proc).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { RequestType } from 'vscode-jsonrpc/node';
import { afterAll, describe, expect, it } from 'vitest';
import { type LspServer, root, startServer } from './lsp-harness';

interface Diag { message: string }
const codeLens = new RequestType<{ textDocument: { uri: string } }, { command?: { title: string } }[], void>('textDocument/codeLens');
const N = 10_000;
const GiB = 1024 ** 3;

/** kB fields of /proc/PID/status as bytes. */
function procStatus(pid: number): { rss: number; peak: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => 1024 * Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)![1]);
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

let server: LspServer | undefined;
afterAll(async () => {
  await server?.stop();
});

describe.runIf(process.platform === 'linux')('server memory', () => {
  it(`annotates ${N.toLocaleString('en')} prompts under 1 GiB of resident memory`, async () => {
    const diagnostics: Diag[][] = [];
    server = await startServer({ stderr: 'pipe', register: (c) => c.onNotification('textDocument/publishDiagnostics', (p: { diagnostics: Diag[] }) => { diagnostics.push(p.diagnostics); }) });
    const pid = server.child.pid!;
    const before = procStatus(pid);
    // the memorized prompt of server.test.ts among 9,999 seeded others (operands 10..99, as the task's)
    let s = 12345;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) % 90) + 10;
    const prompts = ['44+88+94+87=', ...Array.from({ length: N - 1 }, () => `${rand()}+${rand()}+${rand()}+${rand()}=`)];
    const uri = pathToFileURL(path.join(root, 'examples', 'memory-10k.memgen')).toString();
    const t0 = Date.now();
    await server.conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'memgen', version: 1, text: ['run: runs/arithmetic-tiny', ...prompts].join('\n') } });
    for (;;) {
      if (diagnostics.some((ds) => ds.some((d) => /^predicted to be memorized/.test(d.message)))) break;
      if (server.exit) throw new Error(`the server exited: ${JSON.stringify(server.exit)}: ${server.stderr().slice(-2000)}`);
      if (Date.now() - t0 > 240_000) throw new Error('no model diagnostics after 240 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    const lenses = await server.conn.sendRequest(codeLens, { textDocument: { uri } });
    expect(lenses.filter((l) => /^(memorize|generalize) (0\.\d\d|· no memorized answer) · blocks\.\d+\./.test(l.command?.title ?? ''))).toHaveLength(N);
    const after = procStatus(pid);
    console.log(`memory: ${N} prompts annotated in ${((Date.now() - t0) / 1000).toFixed(1)} s; server RSS ${(before.rss / 2 ** 20).toFixed(0)} MiB at start, ${(after.rss / 2 ** 20).toFixed(0)} MiB after, peak ${(after.peak / 2 ** 20).toFixed(0)} MiB`);
    expect(after.peak).toBeLessThan(GiB);
  }, 300_000);
});
