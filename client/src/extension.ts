/**
 * The MemGen Lens extension: starts the language server (dist/server.js, which hosts the engine in
 * a worker thread), registers the commands, shows a status-bar item. Thin by design: every number
 * comes from the server through protocol.ts.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { LanguageClient, type LanguageClientOptions, type ServerOptions, TransportKind } from 'vscode-languageclient/node';
import * as lsp from '../../server/src/protocol';
import { type Ctx, clearInlineOnEdit, registerCommands } from './commands';
import { Config } from './config';
import { PanelBus } from './panels/panel-bus';
import { registerPanels } from './panels/register';

let client: LanguageClient | undefined;

function createClient(context: vscode.ExtensionContext, config: Config, output: vscode.LogOutputChannel): LanguageClient {
  const module = context.asAbsolutePath(path.join('dist', 'server.js'));
  // The server is a Node program run over IPC; debug adds an inspector port.
  const serverOptions: ServerOptions = {
    run: { module, transport: TransportKind.ipc },
    debug: { module, transport: TransportKind.ipc, options: { execArgv: ['--nolazy', '--inspect=6011'] } },
  };
  const clientOptions: LanguageClientOptions = {
    // Only .memgen prompt files on disk (the engine reads runs relative to the workspace).
    documentSelector: [{ scheme: 'file', language: 'memgen' }],
    // Typed settings (protocol.ts ServerSettings); later changes go by memgen/configure.
    initializationOptions: config.serverSettings(),
    outputChannel: output,
    // Hover markdown may run one command: the neuron links that open the inspector.
    markdown: { isTrusted: { enabledCommands: [lsp.COMMANDS.inspectNeuron] } },
  };
  return new LanguageClient('memgen', 'MemGen Lens', serverOptions, clientOptions);
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const config = new Config();
  const output = vscode.window.createOutputChannel('MemGen', { log: true });
  const statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 10);
  statusItem.command = 'memgen.selectRun';
  // The run of the prompt file the server evaluated last: the panels show it when memgen.defaultRun is unset.
  let fileRun: string | null = null;
  const setStatus = (s: lsp.ServerStatus) => {
    if (s.run) fileRun = s.run;
    const run = s.run ? path.basename(s.run) : config.defaultRun || 'no run';
    const icon = s.state === 'busy' || s.state === 'loading' ? '$(sync~spin)' : s.state === 'error' ? '$(error)' : s.state === 'untrusted' ? '$(shield)' : '$(beaker)';
    statusItem.text = s.state === 'untrusted' ? `${icon} MemGen: untrusted workspace, no model runs` : `${icon} MemGen: ${run} · ${s.provider}`;
    statusItem.tooltip = `${s.message}\nClick to select the default run`;
    statusItem.show();
  };
  setStatus({ run: null, provider: config.provider, state: vscode.workspace.isTrusted ? 'idle' : 'untrusted', message: 'starting' });

  // The panels' shared state; the server's training feed goes to it.
  const panels = new PanelBus(context.workspaceState);
  const start = async () => {
    client = createClient(context, config, output);
    await client.start();
    client.onNotification(lsp.status, setStatus);
    client.onNotification(lsp.trainCurve, (p) => panels.trainPoint(p));
    client.onNotification(lsp.trainState, (s) => panels.trainState(s));
  };
  const ctx: Ctx = {
    client: () => {
      if (!client) throw new Error('the MemGen server is not running');
      return client;
    },
    config,
    output,
    panels,
    setStatus,
    restart: async () => {
      await client?.stop();
      await start();
    },
  };

  context.subscriptions.push(
    output,
    statusItem,
    ...registerCommands(ctx),
    panels,
    ...registerPanels({
      client: ctx.client,
      output,
      bus: panels,
      extensionUri: context.extensionUri,
      defaultRun: () => {
        const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
        return config.defaultRun ? path.resolve(root ?? '', config.defaultRun) : fileRun;
      },
    }),
    clearInlineOnEdit(),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!e.affectsConfiguration('memgen')) return;
      if (config.needsRestart(e)) await ctx.restart();
      else await client?.sendNotification(lsp.configure, config.serverSettings());
    }),
    // Trust granted: the server runs the model from now on (settings.trusted), no restart.
    vscode.workspace.onDidGrantWorkspaceTrust(() => client?.sendNotification(lsp.configure, config.serverSettings())),
  );
  await start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
