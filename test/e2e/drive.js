// UI checks in the real editor (code-server + Debian Chromium via playwright-core): open the
// example with Ctrl+P, see the CodeLens, hover a prompt, click "Steer → generalize" and see the
// steered output. Screenshots go to <screenshotDir>; look at them.
// The server must run WITHOUT the smoke-test driver (it hides notification toasts).
// Usage: node drive.js <baseUrl> <workspaceFolder> <fileName> <screenshotDir>
const fs = require('node:fs');
const path = require('node:path');
const { launch, logger } = require('./lib/browser');
const [, , baseUrl, folder, fileName, shots] = process.argv;
const log = logger('ui');
const LENS = /(memorize|generalize) 0\.\d\d · blocks\.\d+\.(ln2|resid_pre|resid_post)/;
const MODEL_WAIT_MS = Number(process.env.MEMGEN_E2E_WAIT_MS || 150000);

// The first prompt of the example, as the .memgen grammar defines it (not a comment, not a
// `key: value` header line, not a >>> block marker).
function firstPrompt(file) {
  for (const raw of fs.readFileSync(file, 'utf8').split(/\r?\n/)) {
    const t = raw.replace(/(^|\s)#.*$/, '').trim();
    if (t && !/^[A-Za-z]\w*\s*:/.test(t) && !t.startsWith('>>>') && !t.startsWith('<<<')) return t.split('=>')[0].trim();
  }
  throw new Error(`no prompt in ${file}`);
}

// Text that decorations put after/before a line (renderOptions.after.contentText): VS Code draws
// it with CSS ::after/::before `content`, so it is not in the DOM text; read the computed style.
const decorationTexts = (page) => page.evaluate(() => {
  const out = [];
  for (const el of document.querySelectorAll('.view-lines .view-line span')) {
    for (const pseudo of ['::after', '::before']) {
      const c = getComputedStyle(el, pseudo).content;
      if (c && c !== 'none' && c !== 'normal' && c !== '""') out.push(c.replace(/^"|"$/g, '').replace(/\\"/g, '"'));
    }
  }
  return out;
});

// Where a steered result shows: an inline decoration after the prompt (MemGen Lens), a
// notification, or a webview (the fixture); whichever appears first.
const STEERED = /steered\b.*→\s*(gen|mem|other)\b/i;
async function steeredOutput(page) {
  const toast = page.locator('.notification-toast', { hasText: STEERED }).first();
  const poll = async () => {
    const deco = (await decorationTexts(page)).find((t) => STEERED.test(t));
    if (deco) return `inline decoration: ${deco}`;
    if (await toast.isVisible().catch(() => false)) return `notification: ${(await toast.innerText()).replace(/\s+/g, ' ').slice(0, 300)}`;
    for (const f of page.frames()) {
      if (f === page.mainFrame()) continue;
      const body = await f.locator('body').innerText({ timeout: 200 }).catch(() => '');
      if (STEERED.test(body)) return `webview: ${body.replace(/\s+/g, ' ').slice(0, 300)}`;
    }
    return null;
  };
  const until = Date.now() + MODEL_WAIT_MS;
  let last = [];
  while (Date.now() < until) {
    const found = await poll();
    if (found) return found;
    last = await decorationTexts(page).catch(() => []);
    if (last.some((t) => /steer failed/i.test(t))) throw new Error(`the extension says: ${last.find((t) => /steer failed/i.test(t))}`);
    await page.waitForTimeout(500);
  }
  throw new Error(`no steered output (inline decoration, notification or webview) appeared; decorations: ${JSON.stringify(last)}`);
}

(async () => {
  const browser = await launch();
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 850 } })).newPage();
  page.on('pageerror', (e) => log('pageerror', e.message.slice(0, 200)));
  let fails = 0;
  const shot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`) }).catch(() => {});
  const check = async (name, fn) => {
    try {
      const info = await fn();
      log('ok  ', name, info ? `— ${info}` : '');
      return true;
    } catch (e) {
      fails++;
      log('FAIL', name, String(e.message).split('\n')[0]);
      await shot(`fail-${name.replace(/\W+/g, '-')}`);
      return false;
    }
  };
  try {
    const prompt = firstPrompt(path.join(folder, fileName));
    const base = path.basename(fileName);
    await page.goto(`${baseUrl}/?folder=${encodeURIComponent(folder)}`);
    await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
    await page.waitForSelector('.explorer-folders-view .monaco-list-row', { timeout: 60000 });
    log('workbench loaded');
    const opened = await check(`Ctrl+P opens ${fileName}`, async () => {
      await page.click('.monaco-workbench .part.editor');
      await page.keyboard.press('Control+P');
      await page.waitForSelector('.quick-input-widget input', { state: 'visible' });
      await page.keyboard.type(fileName);
      await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${base}"]`, { timeout: 20000 });
      await page.keyboard.press('Enter');
      await page.waitForSelector(`.tab[aria-label*="${base}"]`, { timeout: 20000 });
      const dir = path.dirname(fileName);
      if (dir !== '.') {
        const crumbs = (await page.locator('.breadcrumbs-control').first().innerText()).replace(/\s+/g, ' ');
        if (!crumbs.includes(path.basename(dir))) throw new Error(`opened the wrong file: breadcrumbs say ${crumbs}`);
      }
    });
    if (!opened) throw new Error('cannot go on without the document');
    const lensOk = await check('CodeLens shows behaviour, probability and site', async () => {
      // a lens without a command renders as <span>, one with a command as <a>
      const lens = page.locator('.contentWidgets .codelens-decoration > :is(a, span)', { hasText: LENS }).first();
      await lens.waitFor({ timeout: MODEL_WAIT_MS });
      const all = await page.locator('.contentWidgets .codelens-decoration').first().innerText();
      return all.replace(/\s+/g, ' ');
    });
    await page.mouse.move(5, 400);
    await shot('1-codelens');
    await check('hover on a prompt shows behaviour and site', async () => {
      const line = page.locator('.view-lines .view-line', { hasText: prompt }).first();
      const box = await line.boundingBox();
      if (!box) throw new Error(`prompt line "${prompt}" is not on screen`);
      const span = line.locator('span span').first();
      const sb = (await span.boundingBox()) || box;
      // The hover fills in parts: the diagnostic's message ("predicted to be memorized") first, the
      // server's MemGen part (with the site name) when it arrives; wait for the latter. A hover also
      // sometimes does not open on the first mouse move: move away and back a few times.
      const hover = page.locator('.monaco-hover:visible', { hasText: /MemGen: (memorize|generalize)[\s\S]*blocks\.\d+\./ }).first();
      for (let attempt = 1; ; attempt++) {
        await page.mouse.move(5, 400);
        await page.mouse.move(sb.x + Math.min(20, sb.width / 2), sb.y + sb.height / 2, { steps: 5 });
        try {
          await hover.waitFor({ timeout: 8000 });
          break;
        } catch (e) {
          if (attempt >= 4) throw e;
        }
      }
      const text = (await hover.innerText()).replace(/\s+/g, ' ');
      if (!/blocks\.\d+\.(ln2|resid_pre|resid_post)/.test(text)) throw new Error(`hover lacks a site name: ${text.slice(0, 200)}`);
      await shot('2-hover');
      return text.slice(0, 160);
    });
    await page.mouse.move(5, 400);
    await page.keyboard.press('Escape');
    if (lensOk) {
      await check('clicking "Steer → generalize" shows a steered output', async () => {
        await page.locator('.contentWidgets .codelens-decoration a', { hasText: 'Steer → generalize' }).first().click();
        const what = await steeredOutput(page);
        await page.waitForTimeout(500);
        await shot('3-steered');
        return what;
      });
    } else {
      fails++;
      log('FAIL', 'steer not tried (no CodeLens)');
    }
    await check('no error notifications', async () => {
      const errors = page.locator('.notification-toast:has(.codicon-error), .notifications-center .notification-list-item:has(.codicon-error)');
      const n = await errors.count();
      if (n) throw new Error((await errors.allInnerTexts()).map((t) => t.replace(/\s+/g, ' ')).join(' | ').slice(0, 400));
    });
    // Not a check: what the Problems panel lists, for the log and a screenshot.
    await page.keyboard.press('Control+Shift+M');
    await page.locator('.markers-panel').first().waitFor({ timeout: 10000 }).catch(() => {});
    await page.waitForTimeout(1000);
    const rows = await page.locator('.markers-panel .monaco-list-row').allInnerTexts().catch(() => []);
    log(`Problems panel: ${rows.length} rows`);
    for (const r of rows.slice(0, 15)) log('   ', r.replace(/\s+/g, ' ').slice(0, 200));
  } catch (e) {
    fails++;
    log('ERROR', String(e.message).split('\n')[0]);
  }
  await shot('4-final');
  await browser.close();
  log(fails === 0 ? 'all UI checks passed' : `${fails} UI check(s) failed`);
  process.exit(fails ? 1 : 0);
})();
