import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The real-VS-Code harness (test/e2e) has its own runner and dependencies: `npm run test:e2e`.
    exclude: ['**/node_modules/**', 'test/e2e/**'],
    // onnxruntime-node is a native addon: separate processes keep one test file's sessions from another's.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 600_000,
  },
});
