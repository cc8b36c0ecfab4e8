/**
 * Our one door to @vscode/webview-ui-toolkit (archived upstream in 2025): it registers the few
 * web components the panels use. The panels never name a toolkit element themselves; they use
 * Button.svelte, Toggle.svelte and Select.svelte in this folder, so swapping the toolkit for
 * another component set (or plain elements) means changing this folder only.
 */
import { provideVSCodeDesignSystem, vsCodeButton, vsCodeCheckbox, vsCodeDropdown, vsCodeOption } from '@vscode/webview-ui-toolkit';

let registered = false;

export function registerToolkit(): void {
  if (registered) return;
  registered = true;
  provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeCheckbox(), vsCodeDropdown(), vsCodeOption());
}
