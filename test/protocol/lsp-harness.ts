/**
 * The protocol tests' client: spawns the built language server (`node dist/server.js --stdio`;
 * MEMGEN_SERVER overrides the path, e.g. to test an unpacked .vsix), connects over stdio as an
 * editor does and initializes it with one workspace folder. Needs `npm run build` first (npm test
 * does it).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type MessageConnection, StreamMessageReader, StreamMessageWriter, createMessageConnection } from 'vscode-jsonrpc/node';
import * as lsp from '../../server/src/protocol';

export const root = path.resolve(__dirname, '../..');
export const serverJs = process.env.MEMGEN_SERVER ?? path.join(root, 'dist/server.js');

export interface ServerOptions {
  /** The workspace folder (default: the repository). */
  workspace?: string;
  /** initializationOptions over DEFAULT_SETTINGS (default: one thread, 50 ms debounce). */
  settings?: Partial<lsp.ServerSettings>;
  /** The client's capabilities in `initialize`. */
  capabilities?: object;
  /** Handlers to register before the connection listens (they replace the defaults of the same method). */
  register?: (conn: MessageConnection) => void;
  /** 'pipe' keeps the server's stderr (the last 64 KiB, in `stderr()`) instead of passing it through. */
  stderr?: 'inherit' | 'pipe';
}

export interface LspServer {
  child: ChildProcess;
  conn: MessageConnection;
  /** The server's initialize result. */
  init: { capabilities: Record<string, unknown> };
  /** Set once the server process has exited (it never should before stop()). */
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  /** The tail of the server's stderr when started with stderr 'pipe'. */
  stderr(): string;
  /** shutdown + exit, then kill whatever is left. */
  stop(): Promise<void>;
}

export async function startServer(opts: ServerOptions = {}): Promise<LspServer> {
  if (!fs.existsSync(serverJs)) throw new Error(`${serverJs} is missing (run npm run build)`);
  const workspace = opts.workspace ?? root;
  // MEMGEN_SERVER_NODE_ARGS: Node options for the server, e.g. --cpu-prof to profile it.
  const nodeArgs = (process.env.MEMGEN_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, serverJs, '--stdio'], { stdio: ['pipe', 'pipe', opts.stderr ?? 'inherit'] });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => {
    err = (err + b.toString('utf8')).slice(-65536);
  });
  const conn = createMessageConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
  conn.onNotification('textDocument/publishDiagnostics', () => {});
  conn.onRequest('window/workDoneProgress/create', () => null);
  conn.onNotification('window/logMessage', () => {});
  conn.onNotification(lsp.status, () => {});
  opts.register?.(conn);
  conn.listen();
  const server: LspServer = {
    child,
    conn,
    init: { capabilities: {} },
    exit: null,
    stderr: () => err,
    async stop() {
      try {
        await conn.sendRequest('shutdown');
        await conn.sendNotification('exit');
        // Let it exit by itself (a --cpu-prof profile is written then); kill it after 2 s.
        if (server.exit === null) await new Promise((r) => setTimeout(r, 2000).unref() && child.once('exit', r));
      } catch { /* already gone */ }
      conn.dispose();
      child.kill();
    },
  };
  child.on('exit', (code, signal) => {
    server.exit = { code, signal };
  });
  server.init = await conn.sendRequest('initialize', {
    processId: process.pid, rootUri: pathToFileURL(workspace).toString(), capabilities: opts.capabilities ?? {},
    workspaceFolders: [{ uri: pathToFileURL(workspace).toString(), name: path.basename(workspace) }],
    initializationOptions: { ...lsp.DEFAULT_SETTINGS, threads: 1, debounceMs: 50, ...opts.settings },
  });
  await conn.sendNotification('initialized', {});
  return server;
}
