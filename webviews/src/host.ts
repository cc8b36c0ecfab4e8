/**
 * The webview's side of the channel to the extension: typed post / receive (protocol.ts's
 * PanelToHost and HostToPanel; the extension validates every PanelToHost), the panel's saved state
 * (VS Code's getState / setState, kept while the panel is hidden and restored when it is shown
 * again), and Content-Security-Policy violations reported to the extension (which logs them).
 * Outside a webview (component tests) a local stand-in records what was posted.
 */
import type { HostToPanel, PanelToHost } from '../../server/src/protocol';

interface VsCodeApi {
  postMessage(msg: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}

declare const acquireVsCodeApi: (() => VsCodeApi) | undefined;

/** What the stand-in recorded (tests read it). */
export const posted: PanelToHost[] = [];
let localState: unknown = undefined;

const api: VsCodeApi = typeof acquireVsCodeApi === 'function'
  ? acquireVsCodeApi()
  : { postMessage: (m) => posted.push(m as PanelToHost), getState: () => localState, setState: (s) => (localState = s) };

export function post(msg: PanelToHost): void {
  api.postMessage(msg);
}

export function onMessage(handler: (msg: HostToPanel) => void): () => void {
  const listener = (e: MessageEvent) => {
    const m = e.data as HostToPanel;
    if (m && typeof m === 'object' && typeof m.type === 'string') handler(m);
  };
  window.addEventListener('message', listener);
  return () => window.removeEventListener('message', listener);
}

/** The saved state of this panel, merged over `defaults` (fields of another version are dropped). */
export function loadState<T extends object>(defaults: T): T {
  const s = api.getState();
  if (!s || typeof s !== 'object') return { ...defaults };
  const out = { ...defaults };
  for (const k of Object.keys(defaults) as (keyof T)[]) {
    const v = (s as Record<string, unknown>)[k as string];
    if (v !== undefined && typeof v === typeof defaults[k]) out[k] = v as T[keyof T];
  }
  return out;
}

export function saveState<T extends object>(state: T): void {
  api.setState(state);
}

export function reportCspViolations(): void {
  document.addEventListener('securitypolicyviolation', (e) =>
    post({ type: 'cspViolation', directive: e.violatedDirective.slice(0, 200), blocked: String(e.blockedURI).slice(0, 1000), sample: (e.sample ?? '').slice(0, 200) }));
}

/** The theme VS Code put on <body> (vscode-light / vscode-dark / vscode-high-contrast[-light]). */
export function themeOf(body: HTMLElement): 'light' | 'dark' {
  return body.classList.contains('vscode-light') || body.classList.contains('vscode-high-contrast-light') ? 'light' : 'dark';
}

/** Calls `cb` with the theme whenever VS Code changes it (the class of <body>); returns the stop function. */
export function watchTheme(cb: (t: 'light' | 'dark') => void): () => void {
  const mo = new MutationObserver(() => cb(themeOf(document.body)));
  mo.observe(document.body, { attributes: true, attributeFilter: ['class'] });
  return () => mo.disconnect();
}
