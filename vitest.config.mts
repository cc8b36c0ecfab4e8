import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // onnxruntime-node is a native addon: separate processes keep one test file's sessions from another's.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 600_000,
  },
});
