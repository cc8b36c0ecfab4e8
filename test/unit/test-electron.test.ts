/** `npm run test:electron` (test/electron/run.js): the options it hands runTests, and no hang offline. */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { electronOptions, preflight, OFFLINE_HINT } = require('../electron/run.js') as {
  electronOptions: (env: Record<string, string | undefined>, ud?: string) => Record<string, unknown> & { launchArgs: string[] };
  preflight: (env: Record<string, string | undefined>, lookup?: (h: string) => Promise<unknown>, timeoutMs?: number) => Promise<string | null>;
  OFFLINE_HINT: string;
};

const root = path.resolve(__dirname, '../..');

describe('test:electron', () => {
  it('runs the e2e suite against this repository, in the repository root as workspace', () => {
    const o = electronOptions({ MEMGEN_VSCODE_EXECUTABLE: '/opt/code/code' }, '/tmp/ud');
    expect(o.extensionDevelopmentPath).toBe(root);
    expect(o.extensionTestsPath).toBe(path.join(root, 'test/e2e/suite/index.js'));
    expect(o.launchArgs[0]).toBe(root);
    expect(o.launchArgs).toEqual(expect.arrayContaining(['--disable-extensions', '--disable-workspace-trust', '--user-data-dir=/tmp/ud']));
    expect(o.extensionTestsEnv).toEqual({ MEMGEN_E2E_FILE: 'arithmetic.memgen', MEMGEN_E2E_WAIT_MS: '150000' });
    expect(o.vscodeExecutablePath).toBe('/opt/code/code');
    expect('vscodeExecutablePath' in electronOptions({})).toBe(false); // download the latest stable
  });

  it('offline: answers at once with the way to the code-server e2e, never hangs', async () => {
    const t0 = Date.now();
    expect(await preflight({}, () => Promise.reject(new Error('ENOTFOUND')))).toBe(OFFLINE_HINT);
    expect(await preflight({}, () => new Promise(() => {}), 200)).toBe(OFFLINE_HINT); // a DNS that never answers
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(OFFLINE_HINT).toContain('npm run test:e2e');
    expect(await preflight({}, () => Promise.resolve({ address: '1.2.3.4' }))).toBeNull();
    expect(await preflight({ MEMGEN_VSCODE_EXECUTABLE: '/no/such/code' })).toMatch(/does not exist/);
  });
});
