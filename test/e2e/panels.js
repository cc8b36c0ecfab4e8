// The MemGen panels in the real editor (code-server + Debian Chromium via playwright-core), on the
// committed analysed run the example file names (`run:`; examples/arithmetic.memgen: runs/arithmetic-small): opens the
// example (the panels open on its run), then each panel (side-bar views and editor tabs),
// checks what it shows against the run's files, hovers / clicks / zooms the NMD map, measures the
// map's frame rate while zooming and panning (on the run, and at 28 x 3072 with an array this
// script computes, for timing only), checks that a hidden panel restores its state, steers a
// prompt and sees the last steer and the activation shift, and finds no CSP violation or dropped
// message in the MemGen log. Screenshots: <screenshotDir>/panels-*.png; look at them.
// Usage: node panels.js <baseUrl> <workspaceFolder> <memgenFile> <screenshotDir> <logsDir>
const fs = require('node:fs');
const path = require('node:path');
const { launch, logger } = require('./lib/browser');
const { memgenLogFiles, memgenLogLines } = require('./lib/logs');
const [, , baseUrl, folder, fileName, shots, logsDir] = process.argv;
const log = logger('panels');
/** The run the example names, resolved as the server does: the workspace, its runs/, the file's folder. */
function exampleRun() {
  const file = path.join(folder, fileName);
  const m = /^\s*run:\s*([^#\s]+)/m.exec(fs.readFileSync(file, 'utf8'));
  if (!m) throw new Error(`${file} names no run`);
  const dir = [folder, path.join(folder, 'runs'), path.dirname(file)].map((b) => path.resolve(b, m[1])).find((d) => fs.existsSync(path.join(d, 'config.json')));
  if (!dir) throw new Error(`run: ${m[1]} of ${file} is not a run folder`);
  return dir;
}
const RUN = exampleRun();
const RUN_NAME = path.basename(RUN);
const { n_layer: L, n_embd: D } = JSON.parse(fs.readFileSync(path.join(RUN, 'config.json'), 'utf8'));
const LAST = L - 1;
const WAIT_MS = Number(process.env.MEMGEN_E2E_WAIT_MS || 150000);
const MIN_FPS = 30;

const readJson = (f) => JSON.parse(fs.readFileSync(path.join(RUN, f), 'utf8'));

(async () => {
  const browser = await launch();
  const context = await browser.newContext({ viewport: { width: 1500, height: 950 } });
  const webviewTraffic = recordWebviewTraffic(context, baseUrl);
  const page = await context.newPage();
  page.on('pageerror', (e) => log('pageerror', e.message.slice(0, 200)));
  page.on('console', (m) => webviewTraffic.console(m));
  let fails = 0;
  const shot = (name) => page.screenshot({ path: path.join(shots, `panels-${name}.png`) }).catch(() => {});
  const check = async (name, fn) => {
    try {
      const info = await fn();
      log('ok  ', name, info ? `— ${info}` : '');
      return true;
    } catch (e) {
      fails++;
      log('FAIL', name, String(e.message).split('\n')[0]);
      await shot(`fail-${name.replace(/\W+/g, '-').slice(0, 60)}`);
      return false;
    }
  };

  /** The webview frame showing panel `kind` (the inner frame with #app[data-panel=kind]). */
  async function panelFrame(kind, timeout = 60000) {
    const until = Date.now() + timeout;
    while (Date.now() < until) {
      for (const f of page.frames()) {
        try {
          if (await f.locator(`#app[data-panel="${kind}"]`).count()) return f;
        } catch { /* detached */ }
      }
      await page.waitForTimeout(300);
    }
    throw new Error(`no webview frame shows the ${kind} panel`);
  }

  /**
   * Quick access through the command center (the box atop the window): it opens wherever the
   * keyboard focus is (a webview, a closed editor). `>title` runs a command; a file name opens it.
   */
  async function quickAccess(query, rowLabel) {
    await page.keyboard.press('Escape');
    await page.click('.command-center .command-center-center', { timeout: 10000 }).catch(() => page.keyboard.press('F1'));
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(query);
    // Click the row whose label starts with rowLabel: Enter would take the first row, which is not
    // always it ("Preferences: Browse Color Themes in Marketplace" comes before "... Color Theme").
    const row = page.locator(`.quick-input-list .monaco-list-row[aria-label^="${rowLabel.replace(/"/g, '')}"]`).first();
    await row.waitFor({ timeout: 20000 });
    await page.waitForTimeout(300); // let file search's rows arrive: they reorder the list
    await row.click();
  }
  const command = (title) => quickAccess(`>${title}`, title);
  /**
   * Opens the example file by quick access and checks that its tab is the active one: the list
   * reorders while file search answers (recently opened rows first), so a click can land on a
   * neighbour (arithmetic-tiny.memgen); then it tries again.
   */
  async function openExample() {
    const active = page.locator(`.tab.active[aria-label*="${path.basename(fileName)}"]`);
    for (let attempt = 1; ; attempt++) {
      await quickAccess(fileName, path.basename(fileName));
      try {
        await active.waitFor({ timeout: 10000 });
        return;
      } catch (e) {
        if (attempt === 3) throw e;
      }
    }
  }

  // textContent, not innerText: SVG text has no innerText.
  const text = async (f, sel, timeout = WAIT_MS) => {
    const l = f.locator(sel).first();
    await l.waitFor({ timeout });
    return ((await l.textContent()) ?? '').replace(/\s+/g, ' ').trim();
  };
  /** Collapses an expanded side-bar view. */
  async function collapseView(name) {
    const h = page.locator(`.pane-header[aria-label*="${name}"]`).first();
    await h.waitFor({ timeout: 20000 });
    if ((await h.getAttribute('aria-expanded')) === 'true') await h.click();
  }
  /** Expands a collapsed side-bar view (a click on an expanded one would collapse it). */
  async function expandView(name) {
    const h = page.locator(`.pane-header[aria-label*="${name}"]`).first();
    await h.waitFor({ timeout: 20000 });
    if ((await h.getAttribute('aria-expanded')) === 'false') await h.click();
  }

  try {
    await page.goto(`${baseUrl}/?folder=${encodeURIComponent(folder)}`);
    await page.waitForSelector('.monaco-workbench', { timeout: 60000 });
    await page.waitForSelector('.explorer-folders-view .monaco-list-row', { timeout: 60000 });
    log('workbench loaded');

    // ── the example prompt file first, as a researcher opens it: the panels open on its run
    await check('opening the example file makes its run the one the panels show', async () => {
      await openExample();
      const status = page.locator('.statusbar-item', { hasText: `MemGen: ${RUN_NAME}` }).first();
      await status.waitFor({ timeout: WAIT_MS });
      return (await status.innerText()).replace(/\s+/g, ' ');
    });

    // ── side bar: the MemGen container with the Neurons view
    await check('the MemGen activity-bar container shows the Neurons view with the run', async () => {
      await page.click('.activitybar .action-item a[aria-label*="MemGen"]', { timeout: 30000 });
      const f = await panelFrame('neurons');
      const cap = await text(f, '[data-testid="neurons-caption"]');
      if (!cap.includes(RUN_NAME) || !cap.includes(`${L} layers × ${D} neurons`)) throw new Error(`caption: ${cap}`);
      await page.waitForTimeout(500);
      await shot('1-sidebar');
      return cap.slice(0, 120);
    });

    // ── editor tab: Neurons
    let neurons = null;
    await check('Open Neurons Panel in Editor: caption, toggles, tooltip on hover, inspector on click', async () => {
      await page.click('.activitybar .action-item a[aria-label*="Explorer"]').catch(() => {});
      await command('MemGen: Open Neurons Panel in Editor');
      await page.waitForSelector('.tab[aria-label*="MemGen: Neurons"]', { timeout: 30000 });
      neurons = await panelFrame('neurons');
      const cap = await text(neurons, '[data-testid="neurons-caption"]');
      const summary = readJson('analysis/analysis.json');
      if (!cap.includes(`${summary.pairs} pairs`)) throw new Error(`caption lacks ${summary.pairs} pairs: ${cap}`);
      const canvas = neurons.locator('canvas[data-testid="nmd-canvas"]');
      const box = await canvas.boundingBox();
      if (!box || box.width < 200) throw new Error(`canvas box ${JSON.stringify(box)}`);
      // hover column 0 of the last layer (sorted: that layer's largest |NMD|)
      await page.mouse.move(box.x + 2, box.y + box.height * 0.88);
      const tip = await text(neurons, '[data-testid="nmd-tooltip"]', 10000);
      if (!new RegExp(`blocks\\.${LAST}\\.(ln2|resid_pre|resid_post) · neuron \\d+`).test(tip) || !/NMD -?[\d.e-]+ \(gen − mem; \+ = higher on gen\)/.test(tip) || !/rho -?[\d.]+/.test(tip) || !tip.includes(` of ${L * D}`)) throw new Error(`tooltip: ${tip}`);
      await shot('2-neurons-tooltip');
      await page.mouse.click(box.x + 2, box.y + box.height * 0.88);
      const insp = await text(neurons, '[data-testid="neuron-inspector"]', 20000);
      if (!new RegExp(`blocks\\.${LAST}\\.(ln2|resid_pre|resid_post) · neuron \\d+`).test(insp) || !insp.includes(`${readJson('analysis/analysis.json').pairs} pairs`)) throw new Error(`inspector: ${insp}`);
      // the tooltip's neuron is the largest |NMD| of the last layer in nmd.npy
      const idx = Number(/neuron (\d+)/.exec(tip)[1]);
      const buf = fs.readFileSync(path.join(RUN, 'analysis/nmd.npy'));
      const off = 10 + buf.readUInt16LE(8);
      const nmd = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + L * D * 4));
      let best = 0;
      for (let i = 1; i < D; i++) if (Math.abs(nmd[LAST * D + i]) > Math.abs(nmd[LAST * D + best])) best = i;
      if (idx !== best) throw new Error(`tooltip neuron ${idx}, but the largest |NMD| of layer ${LAST} is neuron ${best}`);
      await neurons.locator('[data-testid="toggle-values"] [data-value="signed"]').click();
      await page.mouse.move(box.x + box.width / 2, box.y - 40);
      await page.waitForTimeout(400);
      await shot('3-neurons-signed-inspector');
      return `tooltip: ${tip}`;
    });

    await check(`NMD map frame rate while zooming and panning (${RUN_NAME})`, async () => {
      return fpsVerdict(await fpsTrials(neurons));
    });

    // ── Probes tab (Neurons is hidden meanwhile: its state must come back)
    await check(`Probes panel: both probes for ${L} layers, chance line, numbers of probes.json`, async () => {
      await command('MemGen: Open Probes Panel in Editor');
      const f = await panelFrame('probes');
      await text(f, '[data-testid="probes-caption"]');
      const dots = await f.locator('circle.dot').count();
      if (dots !== 2 * L) throw new Error(`${dots} dots, want ${2 * L}`);
      const rows = await f.locator('[data-testid="probe-table"] tbody tr').allInnerTexts();
      const probes = readJson('analysis/probes.json');
      if (!rows[LAST].includes(probes.logistic[LAST].accuracy.toFixed(3))) throw new Error(`row ${L} ${rows[LAST]} lacks ${probes.logistic[LAST].accuracy.toFixed(3)}`);
      await page.waitForTimeout(300);
      await shot('4-probes');
      return rows.map((r) => r.replace(/\s+/g, ' ')).join(' | ').slice(0, 200);
    });

    await check('the Neurons tab restores its state (toggle, selected neuron) when shown again', async () => {
      await page.click('.tab[aria-label*="MemGen: Neurons"]');
      const f = await panelFrame('neurons');
      const insp = await text(f, '[data-testid="neuron-inspector"]', 30000);
      const signed = await f.locator('[data-testid="toggle-values"] [data-value="signed"]').getAttribute('aria-checked');
      if (signed !== 'true') throw new Error('the signed toggle was not restored');
      neurons = f;
      return insp.slice(0, 60);
    });

    // ── Steering and Training tabs
    await check("Steering panel: the paper's layout with n and the paper's numbers", async () => {
      await command('MemGen: Open Steering Panel in Editor');
      const f = await panelFrame('steering');
      await text(f, '[data-testid="steering-caption"]');
      const rows = await f.locator('[data-testid="steering-table"] tbody tr').allInnerTexts();
      const st = readJson('analysis/steering.json');
      if (rows.length !== st.cells.length) throw new Error(`${rows.length} rows, steering.json has ${st.cells.length} cells`);
      const t = rows.find((r) => /mem->gen\s+targeted/.test(r));
      const cell = st.cells.find((c) => c.direction === 'mem->gen' && c.method === 'targeted');
      if (!t || !t.includes(String(cell.n)) || !t.includes('70.3')) throw new Error(`targeted row: ${t}`);
      await page.waitForTimeout(300);
      await shot('5-steering');
      return t.replace(/\s+/g, ' ');
    });

    await check('Training panel: curves of the run with the stop rule', async () => {
      await command('MemGen: Open Training Panel in Editor');
      const f = await panelFrame('training');
      const cap = await text(f, '[data-testid="training-caption"]');
      const { steps, stopWhenBoth } = readJson('manifest.json').train;
      if (!cap.includes(`of ${steps}`)) throw new Error(`caption ${cap} lacks "of ${steps}"`);
      if (stopWhenBoth != null) {
        const rule = await text(f, '[data-testid="eval-chart"] .rule-label');
        if (!rule.includes(`stop rule: gen and mem both ≥ ${stopWhenBoth}`)) throw new Error(`rule ${rule}`);
      } else if (!(await f.locator('p.muted', { hasText: 'No stop rule on gen and mem' }).count())) throw new Error('no line saying there is no stop rule');
      await page.waitForTimeout(300);
      await shot('6-training');
      return cap;
    });

    // ── Activations (side bar) and a steer
    await check('Activations view follows the cursor; a steer shows in Steering and as the shift', async () => {
      await command('View: Close All Editors');
      await openExample();
      await page.click('.activitybar .action-item a[aria-label*="MemGen"]');
      await collapseView('Neurons');
      await expandView('Activations');
      const steer = page.locator('.contentWidgets .codelens-decoration a', { hasText: 'Steer → generalize' }).first();
      // A reopened document sometimes shows no CodeLens: its first lens request was cancelled
      // while the model ran, and nothing asks again. An edit undone (space, backspace) asks again.
      const lensUntil = Date.now() + WAIT_MS;
      for (;;) {
        try {
          await steer.waitFor({ timeout: 20000 });
          break;
        } catch (e) {
          if (Date.now() > lensUntil) throw e;
          log('no CodeLens yet: an edit and its undo to ask again');
          await page.locator('.view-lines .view-line').first().click();
          await page.keyboard.press('End');
          await page.keyboard.type(' ');
          await page.keyboard.press('Backspace');
        }
      }
      const lensLine = await steer.evaluate((el) => el.closest('.codelens-decoration').getBoundingClientRect().bottom);
      // put the cursor on the prompt under that lens
      const promptLine = page.locator('.view-lines .view-line').filter({ hasText: /\d+\+\d+/ }).first();
      const pb = await promptLine.boundingBox();
      await page.mouse.click(pb.x + 30, Math.max(pb.y + pb.height / 2, lensLine + 8));
      const f = await panelFrame('activations');
      const cap = await text(f, '[data-testid="activations-caption"]', WAIT_MS);
      await steer.click();
      // the shift: the cursor moves away and back to the prompt after the steer
      await page.waitForTimeout(3000);
      await page.keyboard.press('End');
      await page.keyboard.press('Home');
      const until = Date.now() + WAIT_MS;
      let cap2 = '';
      while (Date.now() < until && !/steering shift overlaid/.test(cap2)) {
        await page.keyboard.press('ArrowRight');
        await page.waitForTimeout(1200);
        cap2 = await text(f, '[data-testid="activations-caption"]', 5000);
      }
      if (!/steering shift overlaid \(mem->gen/.test(cap2)) throw new Error(`no shift overlay: ${cap2}`);
      await shot('7-activations-steered');
      return `${cap.slice(0, 80)} → ${cap2.slice(-90)}`;
    });

    await check('the Steering view shows the last steer, steered vs unsteered', async () => {
      await expandView('Steering');
      const f = await panelFrame('steering');
      const t = await text(f, '[data-testid="last-steer"]', 30000);
      if (!/unsteered/.test(t) || !/steered mem->gen/.test(t)) throw new Error(t);
      await page.waitForTimeout(300);
      await shot('8-sidebar-last-steer');
      return t.slice(0, 160);
    });

    // ── themes: the panels take VS Code's colours (dark, high contrast); screenshots to look at
    // The theme through the palette's theme picker (Preferences: Color Theme), as a user would.
    await page.click('.activitybar .action-item a[aria-label*="Explorer"]').catch(() => {});
    for (const [theme, bodyClass] of [['Dark Modern', 'vscode-dark'], ['Dark High Contrast', 'vscode-high-contrast']]) {
      await check(`Neurons panel follows the ${theme} theme`, async () => {
        await command('Preferences: Color Theme');
        await page.waitForSelector('.quick-input-list .monaco-list-row[aria-label*="Light Modern"]', { timeout: 20000 });
        await page.keyboard.type(theme);
        const row = page.locator(`.quick-input-list .monaco-list-row[aria-label^="${theme}"]`).first();
        await row.waitFor({ timeout: 20000 });
        await row.click();
        await page.waitForTimeout(800);
        if (!(await page.locator('.tab[aria-label*="MemGen: Neurons"]').count())) await command('MemGen: Open Neurons Panel in Editor');
        else await page.click('.tab[aria-label*="MemGen: Neurons"]');
        const f = await panelFrame('neurons');
        await text(f, '[data-testid="neurons-caption"]');
        await f.locator(`body.${bodyClass}`).waitFor({ timeout: 10000 });
        await f.locator('[data-testid="toggle-values"] [data-value="signed"]').click();
        const box = await f.locator('canvas[data-testid="nmd-canvas"]').boundingBox();
        await page.mouse.click(box.x + box.width * 0.01, box.y + box.height * 0.3);
        await text(f, '[data-testid="neuron-inspector"]', 20000);
        await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.6);
        await text(f, '[data-testid="nmd-tooltip"]', 10000);
        await shot(`theme-${bodyClass}`);
        const fg = await f.evaluate(() => getComputedStyle(document.body).color);
        return `body ${bodyClass}, text colour ${fg}`;
      });
    }

    await check('the inspector steers one neuron alone on the prompt under the cursor', async () => {
      await page.click('.tab[aria-label*="MemGen: Neurons"]'); // the tab of the theme checks
      const f = await panelFrame('neurons');
      await text(f, '[data-testid="neurons-caption"]');
      const box = await f.locator('canvas[data-testid="nmd-canvas"]').boundingBox();
      await page.mouse.click(box.x + 2, box.y + box.height * 0.6);
      await text(f, '[data-testid="neuron-inspector"]', 20000);
      await f.locator('[data-testid="steer-alone-gen"]').click();
      await f.locator('[data-testid="steer-alone-result"], [data-testid="panel-error"]').first().waitFor({ timeout: WAIT_MS });
      if (await f.locator('[data-testid="panel-error"]').count()) throw new Error(`the panel says: ${await text(f, '[data-testid="panel-error"]')}`);
      const t = await text(f, '[data-testid="steer-alone-result"]', WAIT_MS);
      // alpha: the setting the run's steering.json was measured at (the editor's default).
      if (!/unsteered/.test(t) || !t.includes(`this neuron mem->gen, alpha ${readJson('analysis/steering.json').alpha}`)) throw new Error(t);
      await page.mouse.move(box.x + box.width / 2, box.y - 40);
      await shot('11-inspector-steer-alone');
      return t.slice(0, 200);
    });

    // ── frame rate at the size the issue names, with an array computed here (timing only)
    await check('NMD map frame rate at 28 layers x 3072 neurons', async () => {
      await page.click('.tab[aria-label*="MemGen: Neurons"]');
      const f = await panelFrame('neurons');
      await text(f, '[data-testid="neurons-caption"]');
      // The run's map again first, in the same tab and moment: what the editor around costs.
      const baseline = await fpsTrials(f);
      const baseFps = median(baseline);
      await f.evaluate(() => {
        const L = 28;
        const D = 3072;
        const nmd = Float32Array.from({ length: L * D }, (_, j) => Math.sin(j * 0.37) * ((j % 97) / 97) * (1 + Math.floor(j / D) / 10));
        const rho = nmd.map((v) => v / 2);
        const order = Array.from({ length: L * D }, (_, j) => j).sort((a, b) => Math.abs(rho[b]) - Math.abs(rho[a]) || a - b);
        const rank = new Int32Array(L * D);
        order.forEach((j, r) => (rank[j] = r + 1));
        const run = document.querySelector('select[data-testid="run-select"]').value;
        const siteNames = Array.from({ length: L }, (_, l) => `blocks.${l}.ln2`);
        window.dispatchEvent(new MessageEvent('message', { data: { type: 'neuronMap', data: { run, runName: 'computed 28 x 3072 array (frame-rate check only, not a run)', task: 'timing', site: 'ln2', siteNames, layers: L, d: D, pairs: 0, sign: 'gen - mem', nmd, rho, rank, topN: 0.1, kept: 8602 } } }));
      });
      await f.locator('[data-testid="neurons-caption"]', { hasText: '28 layers × 3072 neurons' }).waitFor({ timeout: 20000 });
      const trials = await fpsTrials(f);
      await shot('9-neurons-28x3072-framerate-check');
      // On a loaded shared machine the editor around the panel sets the pace: the size must not
      // (within 20% of the run's map measured just before in the same tab), and 30 fps must be
      // met whenever the machine lets the small map reach 37.5.
      const min = Math.min(MIN_FPS, 0.8 * baseFps);
      return `${fpsVerdict(trials, min)}; the ${L} x ${D} map just before in the same tab: median ${baseFps.toFixed(1)} fps`;
    });

    await check('every panel loaded only its own resources: 0 foreign requests, 0 CSP violations seen by the browser', async () => {
      const { requests, foreign, violations } = webviewTraffic;
      if (foreign.length || violations.length) throw new Error(`${foreign.length} foreign request(s): ${foreign.slice(0, 3).join(' ')}; ${violations.length} CSP violation(s): ${violations.slice(0, 3).join(' | ')}`.slice(0, 600));
      if (requests.length === 0) throw new Error('no webview request was recorded: the recorder is broken');
      const kinds = {};
      for (const u of requests) {
        const k = /^(data|blob):/.test(u) ? u.slice(0, 5) : new URL(u).hostname.endsWith('.vscode-cdn.net') ? 'extension files (webview resource)' : 'code-server webview host';
        kinds[k] = (kinds[k] || 0) + 1;
      }
      return `${requests.length} webview requests (${Object.entries(kinds).map(([k, n]) => `${k} ${n}`).join(', ')}); 0 violations`;
    });

    await check('no CSP violation, no dropped webview message, no panel error in the MemGen log', async () => {
      const files = memgenLogFiles(logsDir);
      const lines = memgenLogLines(logsDir).filter((l) => l.includes('[panels]'));
      const bad = lines.filter((l) => /Content-Security-Policy|dropped a message|\[error\]/i.test(l));
      if (bad.length) throw new Error(bad.slice(0, 3).join(' | ').slice(0, 400));
      return `${files.length} log file(s), ${lines.length} [panels] lines`;
    });
  } catch (e) {
    fails++;
    log('ERROR', String(e.message).split('\n')[0]);
  }
  await shot('10-final');
  await browser.close();
  log(fails === 0 ? 'all panel checks passed' : `${fails} panel check(s) failed`);
  process.exit(fails ? 1 : 0);

  /** Three measurements (the machine is shared: one slow trial says little); the median decides. */
  async function fpsTrials(f) {
    const out = [];
    for (let i = 0; i < 3; i++) out.push(await measureFps(f));
    return out;
  }

  function median(trials) {
    return trials.map((r) => r.fps).sort((a, b) => a - b)[Math.floor(trials.length / 2)];
  }

  function fpsVerdict(trials, min = MIN_FPS) {
    for (const r of trials) if (r.frames < 0.8 * r.steps) throw new Error(`only ${r.frames} frames drawn for ${r.steps} steps: the measurement is not valid`);
    const m = median(trials);
    const text = `median ${m.toFixed(1)} fps (trials ${trials.map((r) => r.fps.toFixed(1)).join(', ')}), ${trials[0].steps} zoom/pan steps each, ${trials.map((r) => r.drawMsAvg.toFixed(2)).join(' / ')} ms per draw`;
    if (m < min) throw new Error(`${text}: below ${min.toFixed(1)} fps`);
    return text;
  }

  /**
   * Frames per second of the NMD map while it zooms (wheel, alternating in and out) and pans (a
   * drag back and forth), one event per animation frame, every event changing the view; after a
   * small zoom-in (not timed) that leaves room to pan. Also the frames drawn and the mean draw time.
   */
  async function measureFps(f) {
    return f.evaluate(async () => {
      const c = document.querySelector('canvas[data-testid="nmd-canvas"]');
      const r = c.getBoundingClientRect();
      const stats = globalThis.__memgenHeatmapStats;
      // The next frame, then out of the frame's callbacks: where a real input event arrives, so
      // that the panel's own requestAnimationFrame draws that event in the following frame.
      const raf = () => new Promise((res) => requestAnimationFrame(() => setTimeout(res, 0)));
      const y = r.top + r.height / 2;
      const wheel = (deltaY) => c.dispatchEvent(new WheelEvent('wheel', { deltaY, clientX: r.left + r.width * 0.4, clientY: y, bubbles: true, cancelable: true }));
      document.querySelector('[data-testid="zoom"] [data-value="reset"]').click(); // start from "fit"
      await raf();
      for (let i = 0; i < 8; i++) {
        wheel(-40);
        await raf();
      }
      const N = 60;
      const f0 = stats.frames;
      const d0 = stats.drawMs;
      const t0 = performance.now();
      for (let i = 0; i < N; i++) {
        wheel(i % 2 ? 40 : -40);
        await raf();
      }
      const cx = r.left + r.width / 2;
      c.dispatchEvent(new PointerEvent('pointerdown', { clientX: cx, clientY: y, pointerId: 1, bubbles: true }));
      for (let i = 1; i <= N; i++) {
        c.dispatchEvent(new PointerEvent('pointermove', { clientX: cx + 40 * Math.sin(i / 4), clientY: y, pointerId: 1, bubbles: true }));
        await raf();
      }
      c.dispatchEvent(new PointerEvent('pointerup', { clientX: cx, clientY: y, pointerId: 1, bubbles: true }));
      const dt = performance.now() - t0;
      const frames = stats.frames - f0;
      return { fps: (2 * N) / (dt / 1000), steps: 2 * N, frames, drawMsAvg: frames ? (stats.drawMs - d0) / frames : 0 };
    });
  }
})();

/**
 * Every request of every webview frame (and of the webview service worker), and every
 * securitypolicyviolation event of every frame (an init script runs in every frame, before the
 * panel's own code: a violation during load is caught too). Own = the code-server origin (the
 * workbench's webview host page and the extension's files it serves), the extension's files through
 * VS Code's webview resource authority (*.vscode-cdn.net with a path inside the installed
 * memgen-lens folder), data: and blob:. Anything else is foreign.
 */
function recordWebviewTraffic(context, baseUrl) {
  const origin = new URL(baseUrl).origin;
  const t = { requests: [], foreign: [], violations: [] };
  const isWebview = (u) => /\/webview\/|vscode-cdn\.net|vscode-resource|vscode-webview/.test(u);
  const own = (u) => {
    if (/^(data|blob):/.test(u)) return true;
    const url = new URL(u);
    if (url.origin === origin) return true;
    return url.hostname.endsWith('.vscode-cdn.net') && /\/memgen\.memgen-lens-[^/]+\//.test(decodeURIComponent(url.pathname));
  };
  context.on('request', (r) => {
    let frameUrl = '';
    try { frameUrl = r.frame().url(); } catch { frameUrl = 'service-worker'; }
    const u = r.url();
    if (!isWebview(frameUrl) && !isWebview(u) && frameUrl !== 'service-worker') return;
    if (frameUrl === 'service-worker' && !isWebview(u)) return; // the workbench's own worker
    t.requests.push(u);
    if (!own(u)) t.foreign.push(u.slice(0, 200));
  });
  context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`memgen-e2e-csp ${e.violatedDirective} ${e.blockedURI} at ${location.href.slice(0, 120)}`), true);
  });
  t.console = (m) => {
    const text = m.text();
    if (text.startsWith('memgen-e2e-csp ') && isWebview(text)) t.violations.push(text.slice(15, 300));
  };
  return t;
}
