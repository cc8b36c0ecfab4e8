/**
 * The page of every MemGen webview: the built bundle (dist/webviews/panels.js and panels.css, from
 * webviews/ by Vite) under a strict Content-Security-Policy:
 *
 *   default-src 'none'                      nothing that is not listed below
 *   script-src 'nonce-N'                    only our one script tag (a fresh random nonce per page)
 *   style-src ${cspSource} 'nonce-N'        our stylesheet; the toolkit's components use constructed
 *     'report-sample'                       stylesheets (adoptedStyleSheets), which CSP allows. VS Code's
 *                                           own inline <style id="_defaultStyles"> (body font, colours,
 *                                           scrollbar) is blocked too: panels.css sets what we need, and
 *                                           panel-host.ts logs that one violation (recognised by its
 *                                           sample, "@layer vscode-default") as expected
 *   img-src ${cspSource} data:              (no remote images)
 *   font-src ${cspSource}
 * No connect-src, no frame-src: the page fetches nothing; all data arrives by postMessage.
 * <meta property="csp-nonce"> hands the nonce to the toolkit (FAST), whose :focus-visible probe
 * inserts a <style> element and reads the nonce from there.
 * localResourceRoots (webviewOptions) is dist/webviews only.
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { PanelKind } from '../../../server/src/protocol';

export const WEBVIEW_DIST = ['dist', 'webviews'];

export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(extensionUri, ...WEBVIEW_DIST)] };
}

export function newNonce(): string {
  return randomBytes(18).toString('base64').replace(/[^A-Za-z0-9]/g, '');
}

export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${cspSource} 'nonce-${nonce}' 'report-sample'`,
    `img-src ${cspSource} data:`,
    `font-src ${cspSource}`,
  ].join('; ');
}

export function panelHtml(webview: vscode.Webview, extensionUri: vscode.Uri, panel: PanelKind, title: string): string {
  const nonce = newNonce();
  const asset = (f: string) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, ...WEBVIEW_DIST, f)).toString();
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${contentSecurityPolicy(webview.cspSource, nonce)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta property="csp-nonce" content="${nonce}">
<link rel="stylesheet" nonce="${nonce}" href="${asset('panels.css')}">
<title>${title}</title>
</head>
<body>
<div id="app" data-panel="${panel}"></div>
<script nonce="${nonce}" src="${asset('panels.js')}"></script>
</body>
</html>`;
}
