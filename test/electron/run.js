// `npm run test:electron`: the e2e's extension-host suite (test/e2e/suite/index.js) in a VS Code
// desktop build through @vscode/test-electron's runTests, with this repository as the extension under
// development (its built dist/, so `npm run build` first). Which VS Code:
//   MEMGEN_VSCODE_EXECUTABLE=/path/to/code   that build (no download), else
//   a download of the latest stable build into .vscode-test/ (needs internet).
// Offline without MEMGEN_VSCODE_EXECUTABLE it fails at once and points at `npm run test:e2e` (the same
// suite in code-server, offline). On a headless Linux machine run it under a display server:
// `xvfb-run -a npm run test:electron`.
const dns = require('node:dns');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../..');
const UPDATE_HOST = 'update.code.visualstudio.com';
const OFFLINE_HINT =
  `cannot reach ${UPDATE_HOST} to download VS Code, and MEMGEN_VSCODE_EXECUTABLE is not set. ` +
  'Offline, run the same suite in code-server with `npm run test:e2e`, or point MEMGEN_VSCODE_EXECUTABLE at a VS Code build.';

/** The options handed to runTests (exported for test/unit/test-electron.test.ts). */
function electronOptions(env = process.env, userDataDir = path.join(os.tmpdir(), 'memgen-electron-ud')) {
  return {
    extensionDevelopmentPath: ROOT,
    extensionTestsPath: path.join(ROOT, 'test/e2e/suite/index.js'),
    // the example's `run: runs/...` resolves from the repository root, as in the code-server e2e
    launchArgs: [ROOT, '--disable-extensions', '--disable-workspace-trust', '--skip-welcome', '--skip-release-notes', '--disable-gpu', `--user-data-dir=${userDataDir}`],
    extensionTestsEnv: { MEMGEN_E2E_FILE: env.MEMGEN_E2E_FILE || 'arithmetic.memgen', MEMGEN_E2E_WAIT_MS: env.MEMGEN_E2E_WAIT_MS || '150000' },
    ...(env.MEMGEN_VSCODE_EXECUTABLE ? { vscodeExecutablePath: env.MEMGEN_VSCODE_EXECUTABLE } : {}),
  };
}

/**
 * null when runTests can go on; else the reason to stop now. `lookup` resolves a host name (DNS),
 * `timeoutMs` bounds it, so an offline machine answers within seconds instead of hanging on a download.
 */
async function preflight(env = process.env, lookup = (host) => dns.promises.lookup(host), timeoutMs = 3000) {
  if (!fs.existsSync(path.join(ROOT, 'dist/extension.js'))) return 'dist/extension.js is missing: run `npm run build` first';
  if (env.MEMGEN_VSCODE_EXECUTABLE) return fs.existsSync(env.MEMGEN_VSCODE_EXECUTABLE) ? null : `MEMGEN_VSCODE_EXECUTABLE=${env.MEMGEN_VSCODE_EXECUTABLE} does not exist`;
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('timeout')), timeoutMs); });
  try {
    await Promise.race([lookup(UPDATE_HOST), timeout]);
    return null;
  } catch {
    return OFFLINE_HINT;
  } finally {
    clearTimeout(timer);
  }
}

async function main() {
  const stop = await preflight();
  if (stop) {
    console.error(`test:electron: ${stop}`);
    process.exit(1);
  }
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) console.warn('test:electron: no DISPLAY; on a headless machine use `xvfb-run -a npm run test:electron`');
  const { runTests } = require('@vscode/test-electron');
  const ud = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-electron-ud-'));
  let code = 1;
  try {
    code = await runTests(electronOptions(process.env, ud));
  } catch (e) {
    console.error(`test:electron: the suite failed: ${e && e.message ? e.message : e}`);
  }
  fs.rmSync(ud, { recursive: true, force: true });
  process.exit(code);
}

module.exports = { electronOptions, preflight, OFFLINE_HINT };
if (require.main === module) void main();
