/**
 * The `MemGen:` commands. Each one asks the server (protocol.ts) and shows the answer; nothing
 * here computes. The lens commands (memgen.steer, memgen.run) show their result inline, after the
 * prompt's line, and in the output channel.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import * as lsp from '../../server/src/protocol';
import type { Config } from './config';
import type { PanelBus } from './panels/panel-bus';

export interface Ctx {
  client(): LanguageClient;
  config: Config;
  output: vscode.LogOutputChannel;
  /** The panels' shared state: the custom steering set the steer lens uses, the last steer result. */
  panels: PanelBus;
  restart(): Promise<void>;
  setStatus(s: lsp.ServerStatus): void;
}

const inline = vscode.window.createTextEditorDecorationType({
  after: { margin: '0 0 0 2em', color: new vscode.ThemeColor('editorCodeLens.foreground'), fontStyle: 'italic' },
});

/** Inline results by document and line, so that one prompt's result does not wipe another's. */
const inlineResults = new Map<string, Map<number, string>>();

function showInline(uri: string, line: number, text: string): void {
  const lines = inlineResults.get(uri) ?? new Map<number, string>();
  inlineResults.set(uri, lines.set(line, text));
  const editor = vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === uri);
  if (!editor) return;
  editor.setDecorations(inline, [...lines].filter(([l]) => l < editor.document.lineCount).map(([l, t]) => {
    const end = editor.document.lineAt(l).range.end;
    return { range: new vscode.Range(end, end), renderOptions: { after: { contentText: t } } };
  }));
}

/** Results refer to line numbers: an edit of the document drops them. */
export function clearInlineOnEdit(): vscode.Disposable {
  return vscode.workspace.onDidChangeTextDocument((e) => {
    if (e.contentChanges.length > 0) inlineResults.delete(e.document.uri.toString());
  });
}

async function pickRunInfo(ctx: Ctx, title: string): Promise<lsp.RunInfo | undefined> {
  const runs = await ctx.client().sendRequest(lsp.listRuns, {});
  if (runs.length === 0) {
    void vscode.window.showWarningMessage(`No runs in '${ctx.config.runsFolder}'. Train one with MemGen: Train Model...`);
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(
    runs.map((r) => ({ label: r.name, description: `${r.plain ? 'Hugging Face folder · ' : ''}${r.task}${r.analysed ? ' · analysed' : ' · not analysed'}`, detail: r.dir, run: r })),
    { title },
  );
  return pick?.run;
}

async function pickRun(ctx: Ctx, title: string): Promise<string | undefined> {
  return (await pickRunInfo(ctx, title))?.dir;
}

/** The task a plain Hugging Face folder is analysed on (it records none of its own); null: cancelled. */
async function askTask(run: lsp.RunInfo): Promise<{ task: string; taskSeed: number } | null> {
  const task = await vscode.window.showQuickPick(['arithmetic', 'incontext', 'cipher'], { title: `MemGen: ${run.name} is a plain Hugging Face folder: analyse it on which task?` });
  if (!task) return null;
  const seed = await vscode.window.showInputBox({
    title: 'MemGen: task seed (it decides the memorized patterns / colours; the seed the model was trained with)', value: '0',
    validateInput: (v) => (/^\d+$/.test(v) ? null : 'a non-negative integer'),
  });
  return seed === undefined ? null : { task, taskSeed: Number(seed) };
}

function relToWorkspace(dir: string): string {
  const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  return root && dir.startsWith(root) ? path.relative(root, dir) : dir;
}

async function job(what: string, send: (token: vscode.CancellationToken) => Promise<lsp.JobResult>): Promise<lsp.JobResult | undefined> {
  // The server reports LSP work-done progress (with its own cancel button); this token cancels the request.
  const cts = new vscode.CancellationTokenSource();
  try {
    const r = await send(cts.token);
    if (r.cancelled) void vscode.window.showInformationMessage(`MemGen: ${what} stopped (${r.run}).`);
    else if (r.exitCode === 0) void vscode.window.showInformationMessage(`MemGen: ${what} finished: ${r.run}`);
    else void vscode.window.showErrorMessage(`MemGen: ${what} failed (exit ${r.exitCode}): ${r.tail.split('\n').slice(-1)[0] ?? ''}`);
    return r;
  } catch (e) {
    void vscode.window.showErrorMessage(`MemGen: ${what}: ${(e as Error).message}`);
    return undefined;
  } finally {
    cts.dispose();
  }
}

export function registerCommands(ctx: Ctx): vscode.Disposable[] {
  const reg = (id: string, fn: (...args: never[]) => unknown) => vscode.commands.registerCommand(id, fn as (...args: unknown[]) => unknown);
  return [
    reg(lsp.COMMANDS.steer, async (p: lsp.SteerParams) => {
      showInline(p.uri, p.line, `steering ${p.direction}…`);
      try {
        const custom = ctx.panels.custom;
        const r = await ctx.client().sendRequest(lsp.steer, { uri: p.uri, line: p.line, direction: p.direction, ...(custom ? { custom } : {}) });
        ctx.panels.steered(r, p);
        const text = `${r.method === 'custom' ? 'custom set ' : ''}steered ${r.direction} → ${r.steered.behaviour} (${r.steered.output}${r.steered.answer !== null ? ` = ${r.steered.answer}` : ''})  ·  unsteered → ${r.unsteered.behaviour}  ·  topN ${r.topN}, alpha ${r.alpha}, ${r.neurons} neurons${r.steerAt === 'prompt' ? ', at the last prompt position only' : ''}`;
        showInline(p.uri, p.line, text);
        ctx.output.appendLine(`[steer] ${r.prompt}\n  ${text}\n  ${r.note}`);
      } catch (e) {
        showInline(p.uri, p.line, `steer failed: ${(e as Error).message}`);
      }
    }),
    reg(lsp.COMMANDS.run, async (p: lsp.PromptRef) => {
      showInline(p.uri, p.line, 'running…');
      try {
        const r = await ctx.client().sendRequest(lsp.run, p);
        showInline(p.uri, p.line, `→ ${r.output} (${r.behaviour}), p(gen first) ${r.pGenFirst.toFixed(3)}${r.pMemFirst === null ? '' : `, p(mem first) ${r.pMemFirst.toFixed(3)}`} · ${r.millis} ms`);
      } catch (e) {
        showInline(p.uri, p.line, `run failed: ${(e as Error).message}`);
      }
    }),
    reg('memgen.selectRun', async () => {
      const dir = await pickRun(ctx, 'MemGen: default run for files without a run: header');
      if (dir) await ctx.config.setDefaultRun(relToWorkspace(dir));
    }),
    reg('memgen.train', async () => {
      const task = await vscode.window.showQuickPick(['arithmetic', 'incontext', 'cipher'], { title: 'MemGen: task' });
      if (!task) return;
      const preset = await vscode.window.showQuickPick(['tiny', 'small', 'gpt2', 'gpt2-medium'], { title: 'MemGen: model preset' });
      if (!preset) return;
      const seed = await vscode.window.showInputBox({ title: 'MemGen: seed', value: '0', validateInput: (v) => (/^\d+$/.test(v) ? null : 'a non-negative integer') });
      if (seed === undefined) return;
      const out = await vscode.window.showInputBox({ title: 'MemGen: output folder (relative to the workspace)', value: path.join(ctx.config.runsFolder, `${task}-${preset}-s${seed}`) });
      if (!out) return;
      const stop = await vscode.window.showInputBox({
        title: 'MemGen: stop early once held-out gen and mem both reach (a fraction; empty: train every step)',
        value: task === 'arithmetic' ? '0.3' : '',
        validateInput: (v) => (v === '' || (Number(v) > 0 && Number(v) <= 1) ? null : 'a fraction in (0, 1], or empty'),
      });
      if (stop === undefined) return;
      void vscode.commands.executeCommand('memgen.panel.training.focus');
      await job('training', (t) => ctx.client().sendRequest(lsp.train, { task, preset, seed: Number(seed), out, ...(stop ? { stopWhenBoth: Number(stop) } : {}) }, t));
    }),
    reg('memgen.analyze', async () => {
      const run = await pickRunInfo(ctx, 'MemGen: analyse which run?');
      if (!run) return;
      const task = run.plain && run.task === '?' ? await askTask(run) : {};
      if (task) await job('analysis', (t) => ctx.client().sendRequest(lsp.analyze, { run: run.dir, ...task }, t));
    }),
    reg('memgen.evaluateSteering', async () => {
      const run = await pickRun(ctx, 'MemGen: evaluate steering of which run?');
      if (run) await job('steering evaluation', (t) => ctx.client().sendRequest(lsp.steerEval, { run, topN: ctx.config.topN ?? undefined, alpha: ctx.config.alpha ?? undefined }, t));
    }),
    reg('memgen.openReport', async () => {
      const run = await pickRun(ctx, 'MemGen: open the report of which run?');
      if (!run) return;
      for (const f of ['analysis/steering.json', 'analysis/analysis.json', 'manifest.json']) {
        try {
          const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(path.join(run, f)));
          await vscode.window.showTextDocument(doc, { preview: false });
          return;
        } catch {
          /* try the next */
        }
      }
    }),
    reg('memgen.showNeurons', async () => {
      const run = await pickRun(ctx, 'MemGen: neurons of which run?');
      if (!run) return;
      const n = await ctx.client().sendRequest(lsp.neurons, { run, limit: 50 });
      const lines = [`# Neurons of ${path.basename(run)}`, '', `site ${n.site}, top ${n.topN * 100}% = ${n.count} neurons by |rho| (sign: gen - mem)`, '', '| rank | site | neuron | NMD | rho |', '|---|---|---|---|---|',
        ...n.neurons.map((x) => `| ${x.rank} | ${x.site} | ${x.index} | ${x.nmd.toFixed(4)} | ${x.rho.toFixed(3)} |`)];
      const doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: lines.join('\n') });
      await vscode.window.showTextDocument(doc, { preview: true });
    }),
    reg('memgen.restartServer', () => ctx.restart()),
    reg('memgen.showLogs', () => ctx.output.show()),
  ];
}
