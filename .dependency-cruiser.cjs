// The import rules of docs/architecture.md ("Layers (enforced)"), checked by `npm run lint:deps`
// (dependency-cruiser; part of `npm test`). Type-only imports count: a type is an arrow too.

/**
 * engine/ folders from the ground floor up. A folder may import itself and the folders of the
 * layers below its own; folders sharing a layer do not import each other.
 */
const ENGINE_LAYERS = [
  ['util'], //      seeded RNG
  ['graph'], //     Graph, ops, autodiff, ONNX encoder
  ['runtime'], //   onnxruntime Runner (runs graphs), worker thread
  ['io'], //        safetensors, parameter sets, HF folders, atomic writes, ONNX external data
  ['tasks'], //     data generators, tokenizers, byte-level BPE
  ['models'], //    GPT-2, LLaMA, LoRA: graphs, inference, hook sites
  ['runs'], //      run folders: layout, manifests, loaders
  ['train'], //     optimisers, train steps, training loops that write run folders
  ['analysis'], //  pairs, NMD, correlation, ranking, probes (trained with train/)
  ['steer'], //     interventions, steering evaluation and sweeps
  ['report', 'demo'], // HTML report; the copy-task demo
  ['cli'], //       `memgen`
];

const known = ENGINE_LAYERS.flat();
const alt = (xs) => xs.map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');

const layerRules = ENGINE_LAYERS.flatMap((layer, i) =>
  layer.map((folder) => {
    const allowed = [folder, ...ENGINE_LAYERS.slice(0, i).flat()];
    return {
      name: `engine-${folder}-imports-downward`,
      comment: `engine/${folder}/ may import only ${allowed.map((f) => `engine/${f}/`).join(', ')} (layer order: docs/architecture.md)`,
      severity: 'error',
      from: { path: `^engine/${folder}/` },
      to: { path: '^engine/', pathNot: `^engine/(${alt(allowed)})/` },
    };
  }),
);

// npm packages of the editor side: the engine runs headless too (CLI, cluster).
const EDITOR_PACKAGES = '(^|/)(@types/)?(vscode|vscode-languageserver[^/]*|vscode-languageclient|vscode-jsonrpc)(/|$)';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles, anywhere.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'engine-folder-unlisted',
      comment: `Every engine/ module lives in a folder of the layer list (${known.join(', ')}): add a new folder to ENGINE_LAYERS.`,
      severity: 'error',
      from: { path: '^engine/', pathNot: `^engine/(${alt(known)})/` },
      to: {},
    },
    ...layerRules,
    {
      name: 'engine-not-to-editor',
      comment: 'The engine never imports vscode, the language server/client packages, server/, client/ or webviews/.',
      severity: 'error',
      from: { path: '^engine/' },
      to: { path: [`^(server|client|webviews)/`, EDITOR_PACKAGES] },
    },
    {
      name: 'client-not-to-engine',
      comment: 'The extension client reaches the engine only through the language server.',
      severity: 'error',
      from: { path: '^client/' },
      to: { path: '^engine/' },
    },
    {
      name: 'client-to-server-only-protocol',
      comment: 'client/ and server/ share one typed protocol module (server/src/protocol.ts); nothing else crosses.',
      severity: 'error',
      from: { path: '^client/' },
      to: { path: '^server/', pathNot: '^server/src/protocol\\.ts$' },
    },
    {
      name: 'server-not-to-client-or-webviews',
      comment: 'The language server knows neither the extension client nor the panels.',
      severity: 'error',
      from: { path: '^server/' },
      to: { path: '^(client|webviews)/' },
    },
    {
      name: 'webviews-only-protocol',
      comment: 'The panels import their own files, npm packages and the shared protocol module (server/src/protocol.ts), nothing else (no engine, no Node core modules).',
      severity: 'error',
      from: { path: '^webviews/src/' },
      to: { pathNot: ['^(webviews/src/|server/src/protocol\\.ts$)', '(^|/)node_modules/'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|test/e2e)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
      extensions: ['.ts', '.mts', '.js', '.mjs', '.cjs', '.svelte', '.d.ts', '.json'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
