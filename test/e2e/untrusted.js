// Workspace trust in the real editor (code-server with workspace trust ON, a fresh profile, so the
// folder opens untrusted in Restricted Mode): opening the example gives parse results only, no
// engine worker starts (the server logs "engine worker started" when it does; the worker is the
// only reader of model files), the status bar says why; then the folder is trusted through the
// editor's own Manage Workspace Trust editor and the model's CodeLens appears without a restart.
// Usage: node untrusted.js <baseUrl> <workspaceFolder> <fileName> <screenshotDir> <logsDir>
const path = require('node:path');
const { launch, logger } = require('./lib/browser');
const { memgenLogLines } = require('./lib/logs');
const [, , baseUrl, folder, fileName, shots, logsDir] = process.argv;
const log = logger('trust');
const LENS = /(memorize|generalize) 0\.\d\d · blocks\.\d+\.(ln2|resid_pre|resid_post)/;
const MODEL_WAIT_MS = Number(process.env.MEMGEN_E2E_WAIT_MS || 150000);

(async () => {
  const browser = await launch();
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 850 } })).newPage();
  let fails = 0;
  const shot = (name) => page.screenshot({ path: path.join(shots, `trust-${name}.png`) }).catch(() => {});
  const check = async (name, fn) => {
    try {
      log('ok  ', name, `— ${await fn()}`);
      return true;
    } catch (e) {
      fails++;
      log('FAIL', name, String(e.message).split('\n')[0]);
      await shot(`fail-${name.replace(/\W+/g, '-').slice(0, 60)}`);
      return false;
    }
  };
  const statusText = async () => (await page.locator('.statusbar-item', { hasText: 'MemGen' }).first().innerText({ timeout: 30000 })).replace(/\s+/g, ' ');
  const lenses = async () => (await page.locator('.contentWidgets .codelens-decoration').allInnerTexts()).join(' | ').replace(/\s+/g, ' ');

  try {
    await page.goto(`${baseUrl}/?folder=${encodeURIComponent(folder)}`);
    await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
    await page.waitForSelector('.explorer-folders-view .monaco-list-row', { timeout: 60000 });
    log('workbench loaded');
    await page.click('.monaco-workbench .part.editor');
    await page.keyboard.press('Control+P');
    await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
    await page.keyboard.type(fileName);
    await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${path.basename(fileName)}"]`, { timeout: 20000 });
    await page.keyboard.press('Enter');
    await page.waitForSelector(`.tab[aria-label*="${path.basename(fileName)}"]`, { timeout: 20000 });

    await check('untrusted: the CodeLens asks for trust, the status bar says no model runs', async () => {
      await page.locator('.contentWidgets .codelens-decoration', { hasText: 'trust this workspace' }).first().waitFor({ timeout: 60000 });
      const s = await statusText();
      if (!/untrusted workspace, no model runs/.test(s)) throw new Error(`status bar: ${s}`);
      await page.waitForTimeout(5000); // time in which a trusted workspace would start loading the model
      const l = await lenses();
      if (LENS.test(l)) throw new Error(`a model lens showed in an untrusted workspace: ${l}`);
      return `status "${s}"; lenses "${l.slice(0, 120)}"`;
    });
    await shot('1-untrusted');
    await check('untrusted: no engine worker started, so no model file was read', async () => {
      const lines = memgenLogLines(logsDir);
      if (lines.length === 0) throw new Error(`no MemGen log under ${logsDir}`);
      const started = lines.filter((l) => l.includes('engine worker started'));
      if (started.length) throw new Error(`the server started its engine worker: ${started[0]}`);
      return `${lines.length} MemGen log lines, none says "engine worker started"`;
    });

    const trusted = await check('Manage Workspace Trust → Trust', async () => {
      await page.keyboard.press('Escape');
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input');
      await input.waitFor({ state: 'visible' });
      await input.fill('>Manage Workspace Trust');
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Manage Workspace Trust' }).first().click({ timeout: 20000 });
      const button = page.locator('.workspace-trust-editor .monaco-button', { hasText: /^Trust/ }).first();
      await button.click({ timeout: 20000 });
      // a confirmation dialog may follow (parent folder / authors)
      const confirm = page.locator('.monaco-dialog-box .monaco-button', { hasText: /^(Yes|Trust)/ }).first();
      if (await confirm.isVisible({ timeout: 3000 }).catch(() => false)) await confirm.click();
      return 'trusted through the editor';
    });
    if (!trusted) throw new Error('cannot go on without trust');
    await check('trusted: the model runs without a restart (CodeLens with behaviour and site)', async () => {
      await page.keyboard.press('Escape'); // the trust editor (a modal editor) goes; the prompt file is behind it
      await page.locator('.contentWidgets .codelens-decoration > :is(a, span)', { hasText: LENS }).first().waitFor({ timeout: MODEL_WAIT_MS });
      const started = memgenLogLines(logsDir).filter((l) => l.includes('engine worker started')).length;
      if (started < 1) throw new Error("no \"engine worker started\" in the MemGen log after trust");
      return `${(await lenses()).slice(0, 160)}; status "${await statusText()}"`;
    });
    await shot('2-trusted');
  } catch (e) {
    fails++;
    log('ERROR', String(e.message).split('\n')[0]);
    await shot('fail-untrusted');
  }
  await browser.close();
  log(fails === 0 ? 'all trust checks passed' : `${fails} trust check(s) failed`);
  process.exit(fails ? 1 : 0);
})();
