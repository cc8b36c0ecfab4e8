// Builds every MemGen panel (Svelte 5) into ONE script and ONE stylesheet with fixed names,
// dist/webviews/panels.js and dist/webviews/panels.css, which the extension's webview host
// (client/src/panels/webview-html.ts) loads under a strict Content-Security-Policy with a nonce.
// One IIFE bundle: no module loading, no chunks, nothing fetched at run time. The panel to show is
// named by the host page (<div id="app" data-panel="neurons">).
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  plugins: [svelte({ configFile: false, compilerOptions: { css: 'external' } })],
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/webviews', import.meta.url)),
    // Fixed file names are overwritten in place: emptying the folder would open a window in which a
    // concurrent `vsce package` (npm run package) finds the files listed but gone.
    emptyOutDir: false,
    target: 'chrome120',
    sourcemap: false,
    minify: true,
    cssCodeSplit: false,
    lib: {
      entry: fileURLToPath(new URL('src/main.ts', import.meta.url)),
      formats: ['iife'],
      name: 'MemGenPanels',
      fileName: () => 'panels.js',
      cssFileName: 'panels',
    },
  },
});
