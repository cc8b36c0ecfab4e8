/**
 * The `memgen.*` settings as typed getters (rust-analyzer's config.ts). `serverSettings` is what
 * the language server receives (protocol.ts ServerSettings); `needsRestart` names the settings
 * that only take effect on a new server (the engine worker keeps its sessions).
 */
import * as vscode from 'vscode';
import type { DiagnosticLevel, Provider, ServerSettings, Site } from '../../server/src/protocol';

const SECTION = 'memgen';

export const RESTART_SETTINGS = ['executionProvider', 'threads'] as const;

export class Config {
  private get cfg(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  get runsFolder(): string {
    return this.cfg.get<string>('runsFolder', 'runs');
  }
  get defaultRun(): string {
    return this.cfg.get<string>('defaultRun', '');
  }
  get provider(): Provider {
    return this.cfg.get<Provider>('executionProvider', 'cpu');
  }
  get threads(): number {
    return this.cfg.get<number>('threads', 1);
  }
  get topN(): number | null {
    return this.cfg.get<number | null>('topN', null);
  }
  get alpha(): number | null {
    return this.cfg.get<number | null>('alpha', null);
  }
  get site(): Site {
    return this.cfg.get<Site>('site', 'ln2');
  }
  get memorizedDiagnostics(): DiagnosticLevel {
    return this.cfg.get<DiagnosticLevel>('diagnostics.memorized', 'information');
  }
  get staleDiagnostics(): DiagnosticLevel {
    return this.cfg.get<DiagnosticLevel>('diagnostics.staleAnalysis', 'information');
  }
  get debounceMs(): number {
    return this.cfg.get<number>('debounceMs', 400);
  }

  get robustnessK(): number {
    return this.cfg.get<number>('robustness.k', 8);
  }
  get robustnessLensAbove(): number | null {
    return this.cfg.get<number | null>('robustness.lensAbove', null);
  }

  serverSettings(): ServerSettings {
    return {
      runsFolder: this.runsFolder,
      defaultRun: this.defaultRun,
      provider: this.provider,
      threads: this.threads,
      topN: this.topN,
      alpha: this.alpha,
      site: this.site,
      memorizedDiagnostics: this.memorizedDiagnostics,
      staleDiagnostics: this.staleDiagnostics,
      debounceMs: this.debounceMs,
      robustnessK: this.robustnessK,
      robustnessLensAbove: this.robustnessLensAbove,
      // In an untrusted workspace no model runs, whatever the workspace's settings say.
      trusted: vscode.workspace.isTrusted,
    };
  }

  needsRestart(e: vscode.ConfigurationChangeEvent): boolean {
    return RESTART_SETTINGS.some((k) => e.affectsConfiguration(`${SECTION}.${k}`));
  }

  async setDefaultRun(run: string): Promise<void> {
    await this.cfg.update('defaultRun', run, vscode.ConfigurationTarget.Workspace);
  }
}
