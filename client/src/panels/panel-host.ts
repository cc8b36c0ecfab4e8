/**
 * One webview (a side-bar view or an editor panel) showing one MemGen panel: sets its options and
 * page (webview-html.ts), checks every message it sends with protocol.ts's parsePanelMessage
 * (anything else is dropped and logged), asks the server for the data and posts it, large arrays
 * decoded from bytes into typed arrays (VS Code transfers their buffers to the webview).
 * A panel may only name runs the server listed to it.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import * as lsp from '../../../server/src/protocol';
import type { CustomSet, PanelBus } from './panel-bus';
import { panelHtml, webviewOptions } from './webview-html';

export interface PanelDeps {
  client(): LanguageClient;
  output: vscode.LogOutputChannel;
  bus: PanelBus;
  extensionUri: vscode.Uri;
  /** The run a panel opens on: memgen.defaultRun as an absolute folder, else the run of the prompt file evaluated last, or null. */
  defaultRun(): string | null;
}

export const PANEL_TITLES: Record<lsp.PanelKind, string> = {
  neurons: 'Neurons',
  probes: 'Probes',
  steering: 'Steering',
  training: 'Training',
  activations: 'Activations',
};

/** VS Code's own inline default styles of every webview (its pre/index.html), which our style-src blocks. */
export function isVsCodeDefaultStyles(m: { directive: string; blocked: string; sample: string }): boolean {
  return m.blocked === 'inline' && m.directive.startsWith('style-src') && /^\s*@layer vscode-default\b/.test(m.sample);
}

export class PanelHost implements vscode.Disposable {
  private readonly subs: vscode.Disposable[] = [];
  private runs: lsp.RunInfo[] = [];
  private run: string | null = null;

  constructor(readonly webview: vscode.Webview, readonly kind: lsp.PanelKind, private readonly deps: PanelDeps) {
    webview.options = webviewOptions(deps.extensionUri);
    webview.html = panelHtml(webview, deps.extensionUri, kind, `MemGen ${PANEL_TITLES[kind]}`);
    this.subs.push(
      webview.onDidReceiveMessage((m: unknown) => void this.receive(m)),
      deps.bus.onCustomSet((c) => this.postCustom(c)),
      deps.bus.onSteer((result) => void this.post({ type: 'lastSteer', result })),
      deps.bus.onTrainPoint((point) => void this.post({ type: 'trainPoint', point })),
      deps.bus.onTrainState((state) => void this.post({ type: 'trainState', state })),
      deps.bus.onShowNeuron(() => void this.showPendingNeuron()),
    );
  }

  post(msg: lsp.HostToPanel): Thenable<boolean> {
    return this.webview.postMessage(msg);
  }

  /** Neurons panel with its run list: shows the neuron a hover link asked for (the panel picks its run, then inspects it). */
  private async showPendingNeuron(): Promise<void> {
    if (this.kind !== 'neurons' || this.runs.length === 0) return;
    const n = this.deps.bus.takeNeuron();
    if (!n) return;
    if (!this.runs.some((r) => path.resolve(r.dir) === path.resolve(n.run))) {
      await this.post({ type: 'error', message: `${n.run} is not among the runs the server lists (memgen.runsFolder)` });
      return;
    }
    const run = this.runs.find((r) => path.resolve(r.dir) === path.resolve(n.run))!.dir;
    await this.post({ type: 'showNeuron', run, layer: n.layer, index: n.index });
  }

  private postCustom(c: CustomSet | null): void {
    void this.post({ type: 'customSet', neurons: c && this.run && path.resolve(c.run) === path.resolve(this.run) ? c.neurons : [] });
  }

  private async receive(raw: unknown): Promise<void> {
    const m = lsp.parsePanelMessage(raw);
    if (!m) {
      this.deps.output.warn(`[panels] ${this.kind}: dropped a message that is not a valid PanelToHost: ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    try {
      await this.handle(m);
    } catch (e) {
      this.deps.output.error(`[panels] ${this.kind}: ${m.type}: ${(e as Error).message}`);
      await this.post({ type: 'error', message: (e as Error).message });
    }
  }

  private knownRun(run: string): string {
    if (!this.runs.some((r) => r.dir === run)) throw new Error(`'${run}' is not a run the server listed`);
    return run;
  }

  private async handle(m: lsp.PanelToHost): Promise<void> {
    const client = this.deps.client();
    switch (m.type) {
      case 'ready': {
        this.runs = await client.sendRequest(lsp.listRuns, {});
        await this.post({ type: 'runs', runs: this.runs, selected: this.deps.defaultRun() });
        await this.showPendingNeuron();
        if (this.kind === 'steering' && this.deps.bus.lastSteer) await this.post({ type: 'lastSteer', result: this.deps.bus.lastSteer });
        if (this.kind === 'training') {
          const h = await client.sendRequest(lsp.trainHistory, {});
          await this.post({ type: 'trainState', state: h.state });
          for (const point of h.points) await this.post({ type: 'trainPoint', point });
        }
        return;
      }
      case 'selectRun': {
        const run = this.knownRun(m.run);
        this.run = run;
        if (this.kind === 'neurons') {
          const r = await client.sendRequest(lsp.neuronMap, { run });
          const data = { ...r, run, nmd: lsp.decodeBinary(r.nmd) as Float32Array, rho: lsp.decodeBinary(r.rho) as Float32Array, rank: lsp.decodeBinary(r.rank) as Int32Array };
          await this.post({ type: 'neuronMap', data });
          this.postCustom(this.deps.bus.custom);
        } else if (this.kind === 'probes') {
          await this.post({ type: 'probes', data: { ...(await client.sendRequest(lsp.probeTable, { run })), run } });
        } else if (this.kind === 'steering') {
          await this.post({ type: 'steering', data: { ...(await client.sendRequest(lsp.steeringTables, { run })), run } });
        } else if (this.kind === 'training') {
          await this.post({ type: 'trainLog', data: { ...(await client.sendRequest(lsp.trainLog, { run })), run } });
        }
        return;
      }
      case 'inspect': {
        const run = this.knownRun(m.run);
        const r = await client.sendRequest(lsp.neuronDetail, { run, layer: m.layer, index: m.index });
        await this.post({ type: 'neuronDetail', data: { ...r, run, gen: lsp.decodeBinary(r.gen) as Float32Array, mem: lsp.decodeBinary(r.mem) as Float32Array } });
        return;
      }
      case 'customSet': {
        if (!this.run) throw new Error('pick a run first');
        const c = await this.deps.bus.updateCustom(this.run, m.action, { layer: m.layer, index: m.index });
        this.deps.output.info(`[panels] custom steering set: ${c ? `${c.neurons.length} neurons of ${c.run}` : 'empty (the Steer lenses use the top-N ranking)'}`);
        return;
      }
      case 'steerAlone': {
        // The neuron alone (a custom set of one) on the prompt last steered or under the cursor.
        const ref = this.deps.bus.lastPrompt;
        if (!this.run) throw new Error('pick a run first');
        if (!ref) throw new Error('to steer one neuron, put the cursor on a prompt of a .memgen file (or steer one) first');
        const result = await client.sendRequest(lsp.steer, { ...ref, direction: m.direction, custom: { run: this.run, neurons: [{ layer: m.layer, index: m.index }] } });
        if (result.method !== 'custom') throw new Error(`the prompt "${result.prompt}" belongs to run ${result.runName}, not to the run shown: open a .memgen file of this run`);
        await this.post({ type: 'steerAlone', layer: m.layer, index: m.index, result });
        return;
      }
      case 'trainControl': {
        const s = await client.sendRequest(lsp.trainControl, { action: m.action });
        await this.post({ type: 'trainState', state: s });
        return;
      }
      case 'cspViolation':
        if (isVsCodeDefaultStyles(m)) this.deps.output.debug(`[panels] ${this.kind}: the strict style-src blocks VS Code's own default styles, as expected (panels.css replaces them)`);
        else this.deps.output.warn(`[panels] ${this.kind}: Content-Security-Policy blocked ${m.blocked} (${m.directive}): ${m.sample}`);
        return;
    }
  }

  dispose(): void {
    for (const d of this.subs) d.dispose();
  }
}
