import { svelte } from '@sveltejs/vite-plugin-svelte';
import { svelteTesting } from '@testing-library/svelte/vite';
import { defineConfig } from 'vitest/config';

// Two projects: the engine / server / client tests in Node, and the webview tests
// (test/unit/webview-*.test.ts: the panels' data-to-picture logic and Svelte components) in
// happy-dom, with Svelte's browser build.
const WEBVIEW_TESTS = 'test/unit/webview-*.test.ts';

export default defineConfig({
  test: {
    // onnxruntime-node is a native addon: separate processes keep one test file's sessions from another's.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 600_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['test/**/*.test.ts'],
          // The real-VS-Code harness (test/e2e) has its own runner and dependencies: `npm run test:e2e`.
          exclude: ['**/node_modules/**', 'test/e2e/**', WEBVIEW_TESTS],
        },
      },
      {
        extends: true,
        plugins: [svelte({ configFile: false, compilerOptions: { css: 'injected' } }), svelteTesting()],
        test: {
          name: 'webviews',
          include: [WEBVIEW_TESTS],
          environment: 'happy-dom',
        },
      },
    ],
  },
});
