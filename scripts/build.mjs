// Bundles the CLI, the runner worker, the benchmark and the editor (extension client, language
// server, engine worker) with esbuild (CommonJS, Node 20). onnxruntime-node stays external: it loads
// its native library from node_modules (the .vsix ships it); `vscode` is provided by the editor.
// Then the Svelte panels with Vite (webviews/vite.config.mts): dist/webviews/panels.{js,css}.
import { build } from 'esbuild';
import { build as viteBuild } from 'vite';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'linked',
  external: ['onnxruntime-node', 'vscode'],
  logLevel: 'warning',
};

await Promise.all([
  build({ ...common, entryPoints: ['engine/cli/main.ts'], outfile: 'dist/cli.js', banner: { js: '#!/usr/bin/env node' } }),
  build({ ...common, entryPoints: ['engine/runtime/runner-worker.ts'], outfile: 'dist/runner-worker.js' }),
  build({ ...common, entryPoints: ['bench/bench.ts'], outfile: 'dist/bench.js' }),
  build({ ...common, entryPoints: ['bench/profile-train.ts'], outfile: 'dist/profile-train.js' }),
  build({ ...common, entryPoints: ['client/src/extension.ts'], outfile: 'dist/extension.js' }),
  build({ ...common, entryPoints: ['server/src/server.ts'], outfile: 'dist/server.js' }),
  build({ ...common, entryPoints: ['server/src/engine-worker.ts'], outfile: 'dist/engine-worker.js' }),
  viteBuild({ configFile: 'webviews/vite.config.mts' }),
]);
