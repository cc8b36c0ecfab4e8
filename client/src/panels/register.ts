/**
 * The MemGen panels: webview views in the "MemGen" activity-bar container (package.json
 * contributes.viewsContainers / views, ids memgen.panel.<kind>) and the same panels as editor tabs
 * (commands memgen.openPanel.<kind>, where more room helps). The Activations panel follows the
 * cursor in .memgen files: it asks the server for the prompt's site vectors (memgen/activations)
 * when the cursor rests on a prompt line.
 */
import * as vscode from 'vscode';
import * as lsp from '../../../server/src/protocol';
import { type PanelDeps, PANEL_TITLES, PanelHost } from './panel-host';

export const viewId = (kind: lsp.PanelKind) => `memgen.panel.${kind}`;
export const openCommandId = (kind: lsp.PanelKind) => `memgen.openPanel.${kind}`;

const CURSOR_DEBOUNCE_MS = 300;

export function registerPanels(deps: PanelDeps): vscode.Disposable[] {
  const hosts = new Set<PanelHost>();
  const subs: vscode.Disposable[] = [];
  const track = (h: PanelHost, visible: () => boolean) => {
    hosts.add(h);
    visibleOf.set(h, visible);
    return h;
  };
  const visibleOf = new Map<PanelHost, () => boolean>();

  for (const kind of lsp.PANEL_KINDS) {
    subs.push(vscode.window.registerWebviewViewProvider(viewId(kind), {
      resolveWebviewView(view) {
        const h = track(new PanelHost(view.webview, kind, deps), () => view.visible);
        view.onDidDispose(() => {
          hosts.delete(h);
          h.dispose();
        });
      },
    }));
    subs.push(vscode.commands.registerCommand(openCommandId(kind), () => {
      const panel = vscode.window.createWebviewPanel(`memgen.${kind}`, `MemGen: ${PANEL_TITLES[kind]}`, vscode.ViewColumn.Active, {});
      const h = track(new PanelHost(panel.webview, kind, deps), () => panel.visible);
      panel.onDidDispose(() => {
        hosts.delete(h);
        h.dispose();
      });
    }));
  }

  // A neuron link in the hover (protocol.ts inspectNeuronLink): the Neurons view shows its run and inspects it.
  subs.push(vscode.commands.registerCommand(lsp.COMMANDS.inspectNeuron, async (args: lsp.InspectNeuronArgs) => {
    const layer = /^\w+\.(\d+)\./.exec(args?.site ?? '')?.[1];
    if (typeof args?.run !== 'string' || layer === undefined || !Number.isInteger(args.index)) {
      deps.output.warn(`[panels] inspectNeuron: not a neuron: ${JSON.stringify(args)}`);
      return;
    }
    deps.bus.showNeuron({ run: args.run, layer: Number(layer), index: args.index });
    await vscode.commands.executeCommand(`${viewId('neurons')}.focus`);
  }));

  // Activations: the prompt under the cursor.
  let timer: NodeJS.Timeout | undefined;
  let lastKey = '';
  subs.push(vscode.window.onDidChangeTextEditorSelection((e) => {
    const doc = e.textEditor.document;
    if (doc.languageId !== 'memgen') return;
    deps.bus.lastPrompt = { uri: doc.uri.toString(), line: e.selections[0].active.line };
    const targets = [...hosts].filter((h) => h.kind === 'activations' && visibleOf.get(h)?.());
    if (targets.length === 0) return;
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const ref = { uri: doc.uri.toString(), line: e.selections[0].active.line };
      const key = `${ref.uri}:${ref.line}:${doc.version}:${deps.bus.lastSteer?.prompt ?? ''}`;
      if (key === lastKey) return;
      lastKey = key;
      try {
        const r = await deps.client().sendRequest(lsp.activations, ref);
        const { hidden, shift, ...meta } = r;
        const msg: lsp.HostToPanel = { type: 'activations', data: meta, hidden: lsp.decodeBinary(hidden) as Float32Array, shift: shift ? (lsp.decodeBinary(shift) as Float32Array) : null };
        for (const h of targets) await h.post(msg);
      } catch (err) {
        // A line without a prompt is not an error worth a message; anything else is shown.
        const text = (err as Error).message;
        if (!/no prompt on line/.test(text)) for (const h of targets) await h.post({ type: 'error', message: text });
      }
    }, CURSOR_DEBOUNCE_MS);
  }));
  subs.push({ dispose: () => clearTimeout(timer) });
  subs.push({ dispose: () => hosts.forEach((h) => h.dispose()) });
  return subs;
}
