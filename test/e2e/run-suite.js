// Runs test/e2e/suite/index.js inside code-server's Node extension host, the way
// @vscode/test-electron would: the server runs with --vscode-option enable-smoke-test-driver, the
// page gets ?payload= with extensionDevelopmentPath/extensionTestsPath, and the suite's exit code
// arrives through the page's codeAutomationExit.
// Usage: node run-suite.js <baseUrl> <workspaceFolder> <devExtFolder> <testsFile> <screenshotDir>
const { launch, logger } = require('./lib/browser');
const [, , baseUrl, folder, devPath, testsPath, shots] = process.argv;
const log = logger('suite-driver');
const TIMEOUT_MS = Number(process.env.MEMGEN_E2E_SUITE_TIMEOUT_MS || 240000);

(async () => {
  const authority = new URL(baseUrl).host;
  const payload = [
    ['extensionDevelopmentPath', `vscode-remote://${authority}${devPath}`],
    ['extensionTestsPath', `vscode-remote://${authority}${testsPath}`],
  ];
  const url = `${baseUrl}/?folder=${encodeURIComponent(folder)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1400, height: 850 } });
  let done;
  let forwarded = 0;
  const finished = new Promise((r) => (done = r));
  await page.exposeFunction('codeAutomationLog', (type, args) => {
    const text = (args || []).map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
    if (text.includes('[suite ')) {
      forwarded++;
      console.log('  ' + text.trim());
    }
  });
  await page.exposeFunction('codeAutomationExit', (code) => done(code));
  page.on('pageerror', (e) => log('pageerror', e.message.slice(0, 200)));
  if (process.env.MEMGEN_E2E_DEBUG) page.on('console', (m) => log(`[console.${m.type()}]`, m.text().slice(0, 400)));
  await page.goto(url);
  const code = await Promise.race([finished, new Promise((r) => setTimeout(() => r('timeout'), TIMEOUT_MS))]);
  log('extension host exited with', code);
  // Where the smoke-test driver did not forward the extension host's console, show the suite's file log.
  const file = process.env.MEMGEN_E2E_SUITE_LOG;
  if (!forwarded && file && require('node:fs').existsSync(file)) process.stdout.write(require('node:fs').readFileSync(file, 'utf8').replace(/^/gm, '  '));
  await page.screenshot({ path: `${shots}/suite-end.png` }).catch(() => {});
  await browser.close();
  process.exit(code === 0 ? 0 : 1);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
