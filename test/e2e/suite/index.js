// Extension-host test suite (plain JS, no mocha): loaded by VS Code as extensionTestsPath inside
// code-server's Node extension host, next to the INSTALLED MemGen Lens .vsix (or the harness's
// fixture). Opens the example document through the `vscode` API, waits for the language server,
// and checks the CodeLens and hover providers. A rejected run() makes VS Code exit with code 1,
// which the smoke-test driver hands to the page's codeAutomationExit (test/e2e/run-suite.js).
const vscode = require('vscode');
const fs = require('node:fs');

const FILE = process.env.MEMGEN_E2E_FILE || 'arithmetic.memgen';
const LENS = /(memorize|generalize) 0\.\d\d · blocks\.\d+\.(ln2|resid_pre|resid_post)/;
const WAIT_MS = Number(process.env.MEMGEN_E2E_WAIT_MS || 150000);
const t0 = Date.now();
const lines = [];
const log = (s) => {
  const line = `[suite ${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}`;
  lines.push(line);
  console.log(line);
  if (process.env.MEMGEN_E2E_SUITE_LOG) fs.appendFileSync(process.env.MEMGEN_E2E_SUITE_LOG, line + '\n');
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hoverText = (hovers) => (hovers || []).flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : c.value))).join('\n');

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const ctx = {};

test('the example document opens as language memgen', async () => {
  const found = await vscode.workspace.findFiles(`**/${FILE}`, '**/node_modules/**', 5);
  if (found.length === 0) throw new Error(`no ${FILE} in the workspace ${vscode.workspace.workspaceFolders?.map((f) => f.uri.fsPath)}`);
  ctx.doc = await vscode.workspace.openTextDocument(found[0]);
  await vscode.window.showTextDocument(ctx.doc);
  if (ctx.doc.languageId !== 'memgen') throw new Error(`languageId is '${ctx.doc.languageId}', expected 'memgen'`);
  ctx.promptLine = [...Array(ctx.doc.lineCount).keys()].find((i) => {
    const t = ctx.doc.lineAt(i).text.trim();
    return t !== '' && !t.startsWith('#') && !/^[A-Za-z]\w*\s*:/.test(t);
  });
  if (ctx.promptLine === undefined) throw new Error('the example has no prompt line');
  log(`opened ${ctx.doc.uri.fsPath}; first prompt on line ${ctx.promptLine + 1}: ${ctx.doc.lineAt(ctx.promptLine).text.trim()}`);
});

test('the extension that contributes language memgen activates', async () => {
  const ext = vscode.extensions.all.find((e) => (e.packageJSON.contributes?.languages || []).some((l) => l.id === 'memgen'));
  if (!ext) throw new Error('no installed extension contributes language memgen');
  await ext.activate();
  log(`active: ${ext.id} ${ext.packageJSON.version} (${ext.extensionPath})`);
});

test('CodeLenses come back from the language server', async () => {
  const until = Date.now() + WAIT_MS;
  let titles = [];
  while (Date.now() < until) {
    const lenses = (await vscode.commands.executeCommand('vscode.executeCodeLensProvider', ctx.doc.uri, 100)) || [];
    titles = lenses.map((l) => l.command?.title ?? '(unresolved)');
    ctx.lenses = lenses;
    if (titles.some((t) => LENS.test(t))) break;
    await sleep(1000);
  }
  log(`lenses: ${JSON.stringify(titles)}`);
  if (!titles.some((t) => LENS.test(t))) throw new Error(`no lens title matches ${LENS} after ${WAIT_MS / 1000}s: ${JSON.stringify(titles)}`);
  const steer = ctx.lenses.find((l) => l.command?.title === 'Steer → generalize');
  if (!steer || !steer.command.command) throw new Error("no 'Steer → generalize' lens with a command");
  if (!ctx.lenses.some((l) => l.range.start.line === ctx.promptLine)) throw new Error(`no lens on the first prompt's line ${ctx.promptLine + 1}`);
});

test('the hover on a prompt names the behaviour and a site', async () => {
  const pos = new vscode.Position(ctx.promptLine, ctx.doc.lineAt(ctx.promptLine).firstNonWhitespaceCharacterIndex + 1);
  const text = hoverText(await vscode.commands.executeCommand('vscode.executeHoverProvider', ctx.doc.uri, pos));
  log(`hover: ${JSON.stringify(text.slice(0, 400))}`);
  if (!/(memorize|generalize)/.test(text)) throw new Error(`hover lacks the behaviour: ${JSON.stringify(text)}`);
  if (!/blocks\.\d+\.(ln2|resid_pre|resid_post)/.test(text)) throw new Error(`hover lacks a site name: ${JSON.stringify(text)}`);
});

test('no error diagnostics on the example', async () => {
  const errors = vscode.languages.getDiagnostics(ctx.doc.uri).filter((d) => d.severity === vscode.DiagnosticSeverity.Error);
  log(`diagnostics: ${JSON.stringify(vscode.languages.getDiagnostics(ctx.doc.uri).map((d) => `${d.severity}:${d.range.start.line + 1}: ${d.message}`))}`);
  if (errors.length) throw new Error(`error diagnostics: ${errors.map((d) => `${d.range.start.line + 1}: ${d.message}`).join('; ')}`);
});

exports.run = async () => {
  let passed = 0;
  for (const [i, t] of tests.entries()) {
    try {
      await t.fn();
      passed++;
      log(`ok   ${t.name}`);
    } catch (e) {
      log(`FAIL ${t.name}: ${e && e.message}`);
      if (i < 2) break; // without the document and the extension nothing after can pass
    }
  }
  log(`${passed}/${tests.length} passed`);
  if (passed < tests.length) throw new Error(`${tests.length - passed} of ${tests.length} extension-host tests failed or did not run`);
};
