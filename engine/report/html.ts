/**
 * The HTML report of a run: ONE self-contained file (inline CSS and inline SVG; no scripts, no
 * external fonts, images or style sheets; links only to the run's own files, relative), plus each
 * figure as a standalone .svg beside it. Sections:
 *
 *   1 the run          task and scale, model, seed, command, training time, kept checkpoint's
 *                      gen / mem / other with n (and the incontext guessing baseline), run files
 *   2 NMD by layer     the paper's Figure 2 (figures.ts: sorted, binned |NMD|), sign convention; for a
 *                      LoRA run also the projection attribution (Figure 5: base vs adapter part)
 *   3 probes by layer  the paper's Figures 3/4: logistic and MLP, 95% CIs, chance 0.5
 *   4 steering         the paper's Table 1 (GPT-2) / Table 2 (LoRA) layout, ours beside the paper's,
 *                      n, and the verdict (verdict.ts) in one line; then each transfer table
 *                      (steering-from-*.json: another run's neurons, Tables 3 and 4) in the same layout
 *   5 sweep            alpha x topN (sweep.json), else how to make it
 *   6 provenance       files, model hash, staleness
 * Every number that belongs to a layer is shown with its site name (blocks.{i}.{site}).
 * writeReport writes the figures, then the HTML, each atomically.
 */
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import type { ProjectionsFile } from '../analysis/projection-attribution';
import type { LoraRunManifest } from '../runs/lora-run';
import type { SteeringFile } from '../steer/files';
import { paperCell } from '../steer/files';
import { DIRECTIONS, type InterventionKind } from '../steer/intervention';
import { type ReportData, loadReportData } from './data';
import { binningNote, nmdFigure, probeFigure, sweepFigure, trainingFigure } from './figures';
import { esc, standalone } from './svg';
import { steeringVerdict } from './verdict';

export interface Figure {
  /** File name of the standalone .svg (beside the HTML). */
  file: string;
  title: string;
  svg: string;
}

export interface RenderedReport {
  html: string;
  figures: Figure[];
}

const CSS = `
:root { color-scheme: light; }
body { margin: 0; background: #f6f7f9; color: #1d2330; font: 15px/1.5 system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; box-shadow: 0 0 0 1px #e3e6ea; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-top: 12px; border-top: 1px solid #e3e6ea; }
h3 { font-size: 16px; margin: 20px 0 8px; }
p { margin: 8px 0; }
.sub { color: #4a5160; margin: 0 0 4px; }
.small { font-size: 13px; color: #4a5160; }
code, .mono { font: 13px/1.4 ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace; }
code { background: #f1f3f5; padding: 1px 4px; border-radius: 3px; }
a { color: #1f5fbf; }
nav { font-size: 14px; margin: 10px 0 4px; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
th, td { border: 1px solid #d9dde3; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f1f3f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { width: 190px; }
.paper { color: #6b7280; }
.hit { font-weight: 700; }
.box { border-radius: 6px; padding: 10px 14px; margin: 12px 0; border: 1px solid; }
.warn { background: #fff8e6; border-color: #f0c36d; }
.bad { background: #fdf0f0; border-color: #e6a1a1; }
.good { background: #eef8f0; border-color: #9fd3aa; }
.note { background: #f4f6f8; border-color: #d9dde3; }
.verdict { font-size: 16px; font-weight: 600; }
figure { margin: 10px 0 18px; }
figure svg { max-width: 100%; height: auto; display: block; border: 1px solid #e3e6ea; }
figcaption { font-size: 13px; color: #4a5160; margin-top: 6px; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #1f5fbf; }
footer { margin-top: 40px; font-size: 12px; color: #6b7280; }
`;

const pct1 = (x: number) => `${x.toFixed(1)}%`;
const arrow = (s: string) => esc(s).replace('-&gt;', ' &rarr; ');

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '-';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return `${m} min ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A relative link from the report's folder to `abs` (forward slashes, each segment URI-encoded). */
function href(fromDir: string, abs: string): string {
  return path.relative(fromDir, abs).split(path.sep).map(encodeURIComponent).join('/');
}

function figureHtml(fig: Figure, caption: string): string {
  return `<figure>${fig.svg}<figcaption>${caption} <a href="${encodeURIComponent(fig.file)}">${esc(fig.file)}</a></figcaption></figure>`;
}

const box = (kind: 'warn' | 'bad' | 'good' | 'note', inner: string) => `<div class="box ${kind}">${inner}</div>`;

// ---------------------------------------------------------------------------------------------
// Sections.

function runSection(d: ReportData, outDir: string, figs: Figure[], prefix: string): string {
  const m = d.manifest;
  const best = m.best;
  const e = best?.eval as { n?: number; counts?: Record<string, number>; gen?: number; mem?: number; other?: number; pMem?: number; pGen?: number; guess?: number | null } | undefined;
  const cfg = d.config;
  // A LoRA run's manifest (runs/lora-run.ts) names its base and adapter instead of a GPT-2 preset.
  const lora = d.system === 'lora' ? (m as unknown as LoraRunManifest) : null;
  const rows: [string, string][] = [
    ['Task', `${esc(m.taskDescription)}${m.scale === 'tiny' ? ` <span class="small">(tiny scale: smaller than the paper's task; <code>--task-scale paper</code> selects the paper's sizes)</span>` : ''}`],
    ['Model', lora
      ? `LLaMA base <code>${esc(lora.base.dir)}</code>${lora.base.note ? ` <span class="small">(${esc(lora.base.note)})</span>` : ''} + LoRA r ${lora.lora.r}, alpha ${lora.lora.alpha} on ${esc(lora.lora.targetModules.join(', '))}`
      : `GPT-2 preset <b>${esc(m.preset)}</b>${cfg ? `: ${cfg.n_layer} layers, d = ${cfg.n_embd}, ${cfg.n_head} heads, vocabulary ${cfg.vocab_size}, context ${cfg.n_positions}` : ''}`],
    ['Seed', String(m.seed)],
    ['Command', `<code>${esc(m.command)}</code>`],
    ['Training', `${m.steps} steps in ${duration(m.trainSeconds)} (status: ${esc(m.status)})`],
  ];
  if (best && e && e.counts) {
    const c = e.counts;
    rows.push(['Kept checkpoint', `step ${best.step}: <b>gen ${pct1(100 * (e.gen ?? 0))}</b> (${c.gen}), <b>mem ${pct1(100 * (e.mem ?? 0))}</b> (${c.mem}), other ${pct1(100 * (e.other ?? 0))} (${c.other}) of n = ${e.n} held-out test inputs` +
      (e.pMem !== undefined && e.pGen !== undefined ? `; mean p(first mem token) ${e.pMem.toFixed(3)}, p(first gen token) ${e.pGen.toFixed(3)}` : '')]);
    if (e.guess !== null && e.guess !== undefined) {
      const below = (e.gen ?? 0) <= e.guess;
      rows.push(['Guessing baseline', `${pct1(100 * e.guess)} (answering one of the story's colours at random)` +
        (below ? ` &mdash; <b>gen ${pct1(100 * (e.gen ?? 0))} is at or below it: not evidence of generalization</b>` : ` &mdash; gen is above it`)]);
    }
  } else rows.push(['Kept checkpoint', 'none yet (no evaluation finished)']);
  const links = d.files.filter((f) => f.exists && !f.rel.startsWith('analysis/')).map((f) => `<a href="${href(outDir, f.abs)}">${esc(f.rel)}</a>`);
  rows.push(['Run files', `${links.join(' &middot; ')} <span class="small">(the analysis files are listed in section 6)</span>`]);
  let html = `<section id="run"><h2>1. The run</h2><table class="kv">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('')}</table>`;
  if (d.evals.length > 0) {
    const fig: Figure = { file: `${prefix}training.svg`, title: 'training', svg: trainingFigure(d.evals, best?.step ?? null) };
    figs.push(fig);
    html += figureHtml(fig, `Held-out gen / mem / other during training (${d.evals.length} evaluation${d.evals.length === 1 ? '' : 's'} of n = ${e?.n ?? '?'}); the dotted line marks the kept checkpoint (best gen% &times; mem%).`);
  }
  return html + '</section>';
}

function nmdSection(d: ReportData, figs: Figure[], prefix: string): string {
  let html = `<section id="nmd"><h2>2. Neurons: NMD by layer (the paper's Figure 2)</h2>`;
  const s = d.summary;
  if (!s) {
    return html + box('note', `<p>No analysis yet. Make one with <code>memgen analyze --run ${esc(d.runDir)}</code> (pairs, NMD, correlation, probes).</p>`) + '</section>';
  }
  const c = s.counts;
  const n = c.gen + c.mem + c.other;
  html += `<p><b>Sign convention: NMD = mean over the gen members &minus; mean over the mem members</b> of the ${s.pairs} pairs (positive: the neuron is higher when the model generalizes). ` +
    `Representations: the site <code>${esc(s.site)}</code> (${esc(s.siteNames[0])} &hellip; ${esc(s.siteNames[s.siteNames.length - 1])}) at the last prompt token. ` +
    `Pairs: ${s.pairs} kept from ${s.inputsTried} inputs tried (${s.triesPerPair.toFixed(1)} per pair); all generations: gen ${pct1((100 * c.gen) / n)}, mem ${pct1((100 * c.mem) / n)}, other ${pct1((100 * c.other) / n)} of ${n}.</p>`;
  if (d.nmd) {
    const { svg, binned, vmax } = nmdFigure(d.nmd.data, d.nmd.layers, d.nmd.d, s.siteNames);
    const fig: Figure = { file: `${prefix}nmd-heatmap.svg`, title: 'NMD heatmap', svg };
    figs.push(fig);
    html += figureHtml(fig, `Each row is one layer's site; its neurons are sorted by |NMD|, largest on the left: ${esc(binningNote(d.nmd.d, binned))}. Colour = |NMD| on one scale for all layers (0 to ${vmax.toPrecision(3)}); the sign is in nmd.npy.`);
    const per = s.perLayer.map((p) => {
      let maxNmd = 0;
      for (let i = 0; i < s.d; i++) maxNmd = Math.max(maxNmd, Math.abs(d.nmd!.data[p.layer * s.d + i]));
      return `<tr><td class="mono">${esc(p.site)}</td><td class="num">${p.meanAbsNmd.toFixed(4)}</td><td class="num">${maxNmd.toFixed(4)}</td><td class="num">${p.maxAbsRho.toFixed(3)}</td><td class="num">${p.kept}</td></tr>`;
    });
    html += `<table><tr><th>site</th><th class="num">mean |NMD|</th><th class="num">max |NMD|</th><th class="num">max |rho|</th><th class="num">kept neurons</th></tr>${per.join('')}</table>` +
      `<p class="small">rho: point-biserial correlation with gen = 1, mem = 0 over all ${2 * s.pairs} pair members (same sign as NMD). Kept: the top ${(100 * s.topN).toFixed(0)}% of all ${s.layers} &times; ${s.d} neurons by |rho|, ranked across layers (neurons.json).</p>`;
  } else {
    html += box('warn', `<p>nmd.npy is missing or unreadable; rerun <code>memgen analyze --run ${esc(d.runDir)} --force</code>.</p>`);
  }
  if (d.projections) html += projectionTable(d.projections);
  return html + '</section>';
}

/** Figure 5 as a table: per adapted projection and layer, mean |NMD| of the base and adapter parts. */
function projectionTable(p: ProjectionsFile): string {
  const rows = p.perLayer.map((x) => `<tr><td class="mono">layers.${x.layer}.${esc(x.proj)}</td><td class="num">${x.meanAbsNmdBase.toFixed(4)}</td><td class="num">${x.meanAbsNmdLora.toFixed(4)}</td><td class="num">${pct1(100 * x.loraShare)}</td></tr>`);
  return `<h3>Projection attribution (the paper's Figure 5)</h3><p>NMD (gen &minus; mem) of each adapted projection's output over the ${p.pairs} pairs, split into the frozen base part <code>x W<sup>T</sup></code> and the adapter part <code>(alpha/r) B A x</code>; the parts add up to the projection's NMD. ` +
    `The paper finds the high-NMD neurons overwhelmingly in the base, the adapter's share small.</p>` +
    `<table><tr><th>projection</th><th class="num">base mean |NMD|</th><th class="num">adapter mean |NMD|</th><th class="num">adapter share</th></tr>${rows.join('')}</table>`;
}

function probeSection(d: ReportData, figs: Figure[], prefix: string): string {
  let html = `<section id="probes"><h2>3. Probe accuracy by layer (the paper's Figures 3 and 4)</h2>`;
  const p = d.probes;
  if (!d.summary) return html + box('note', '<p>No analysis yet (see section 2).</p>') + '</section>';
  if (!p) {
    return html + box('note', `<p>No probes (probes.json): they need at least 20 pairs and are skipped by <code>--no-probes</code>. Make them with <code>memgen analyze --run ${esc(d.runDir)} --force</code>.</p>`) + '</section>';
  }
  const fig: Figure = { file: `${prefix}probes.svg`, title: 'probes', svg: probeFigure(p) };
  figs.push(fig);
  html += figureHtml(fig, `One classifier per layer predicts gen vs mem from the site vector; split by pair (train ${p.split.trainPairs}, validation ${p.split.valPairs}, test ${p.split.testPairs} pairs), so both members of a pair fall on the same side. Shaded: 95% Wilson intervals of the test accuracy; chance is ${p.chance} (every pair gives one gen and one mem member). The paper reports accuracy rising with depth.`);
  const layers = Math.max(p.logistic.length, p.mlp.length);
  const cell = (x?: { accuracy: number; ci: [number, number]; n: number }) => (x ? `${x.accuracy.toFixed(3)} <span class="small">[${x.ci[0].toFixed(2)}, ${x.ci[1].toFixed(2)}]</span>` : '-');
  const rows = Array.from({ length: layers }, (_, l) => {
    const lg = p.logistic[l];
    const ml = p.mlp[l];
    return `<tr><td class="mono">${esc(lg?.site ?? ml?.site ?? `layer ${l}`)}</td><td class="num">${cell(lg)}</td><td class="num">${cell(ml)}</td><td class="num">${lg?.n ?? ml?.n ?? '-'}</td></tr>`;
  });
  html += `<table><tr><th>site</th><th class="num">logistic [95% CI]</th><th class="num">MLP [95% CI]</th><th class="num">test members</th></tr>${rows.join('')}</table>`;
  return html + '</section>';
}

const METHOD_LABEL: Record<InterventionKind, string> = {
  targeted: 'Targeted', custom: 'Custom (picked neurons)', 'random-neurons': 'Random (same shifts, random neurons)', uniform: 'Random (uniform shifts, random neurons)',
};

function steeringTable(f: SteeringFile): string {
  const methods = [...new Set(f.cells.map((c) => c.method))];
  const head = `<tr><th rowspan="2">Target direction</th><th rowspan="2">Intervention</th><th colspan="2" class="num">% Gen</th><th colspan="2" class="num">% Mem</th><th colspan="2" class="num">% Other</th><th rowspan="2" class="num">n</th></tr>` +
    `<tr>${['', '', ''].map(() => '<th class="num">ours</th><th class="num paper">paper</th>').join('')}</tr>`;
  const rows: string[] = [];
  for (const dir of DIRECTIONS) {
    const cells = methods.map((m) => f.cells.find((c) => c.direction === dir && c.method === m)).filter((c) => c !== undefined);
    cells.forEach((c, k) => {
      const p = paperCell(f.paper, dir, c.method);
      const to = dir === 'mem->gen' ? 'gen' : 'mem';
      const td = (key: 'gen' | 'mem' | 'other') =>
        `<td class="num${key === to ? ' hit' : ''}">${c.pct[key].toFixed(1)}</td><td class="num paper">${p ? p[key].toFixed(1) : '&ndash;'}</td>`;
      rows.push(`<tr>${k === 0 ? `<td rowspan="${cells.length}"><b>${arrow(dir)}</b></td>` : ''}<td>${METHOD_LABEL[c.method]}</td>${td('gen')}${td('mem')}${td('other')}<td class="num">${c.n}</td></tr>`);
    });
  }
  return `<table>${head}${rows.join('')}</table>`;
}

function steeringSection(d: ReportData): string {
  const table = d.steering?.paper?.table ?? (d.system === 'lora' ? 'Table 2' : 'Table 1');
  let html = `<section id="steering"><h2>4. Steering (the paper's ${table})</h2>`;
  const f = d.steering;
  if (!f) {
    const how = d.summary ? `<code>memgen steer-eval --run ${esc(d.runDir)}</code> (the paper's setting, n = 200 starting inputs per direction)` : `first <code>memgen analyze --run ${esc(d.runDir)}</code>, then <code>memgen steer-eval --run ${esc(d.runDir)}</code>`;
    html += box('note', `<p>No steering table (steering.json). Make it with ${how}.</p>`);
  } else html += steeringBody(f);
  for (const { name, file } of d.variants) {
    html += `<h3>The same neurons at another setting (<code>analysis/${esc(name)}</code>): topN ${file.topN ?? 'picked'}, alpha ${file.alpha}${file.steerAt === 'prompt' ? ', the shift at the last prompt position only' : ''}${file.layers ? `, layers ${file.layers.join(', ')}` : ''}</h3>` + steeringBody(file);
  }
  for (const t of d.transfers) {
    html += `<h3>With the neurons of ${esc(t.neurons.run)} (${esc(t.neurons.task ?? '?')}, ${t.neurons.experiment}${t.paper ? `: the paper's ${esc(t.paper.table)}` : ''})</h3>` + steeringBody(t);
  }
  return html + '</section>';
}

/** One steering table with its verdict, setting, paper reference, first-token probabilities, examples and warnings. */
function steeringBody(f: SteeringFile): string {
  let html = '';
  const v = steeringVerdict(f);
  html += box(v.works ? 'good' : 'bad', `<p class="verdict">${esc(v.line).replace(/-&gt;/g, '&rarr;')}</p>` +
    `<p class="small">Better = the targeted success exceeds the best baseline (random neurons or uniform) by a two-proportion z of at least 1.96 (5%, two-sided).</p>`);
  const src = f.neurons;
  const main = f.cells.find((c) => c.method === 'targeted' || c.method === 'custom');
  const what = f.method === 'custom' ? `${f.count} picked neurons` : `the top ${(100 * (f.topN ?? 0)).toFixed(0)}% by |rho| = ${f.count} of ${f.layers ? `layer${f.layers.length > 1 ? 's' : ''} ${f.layers.join(', ')} (${f.layers.length}` : src.layers} &times; ${src.d}${f.layers ? ')' : ''} neurons${f.layers ? ' (the baselines draw from the same layers)' : ''}`;
  const from = src.experiment === 'same-run' ? "this run's analysis" : `${esc(src.run)} (${esc(src.task ?? '?')}, ${src.experiment})`;
  html += `<p>Ours: ${what} from ${from} (${src.pairs} pairs), alpha ${f.alpha}, site <code>${esc(f.site)}</code>` +
    (main ? ` (steered: ${main.intervention.sites.map((s, i) => `<span class="mono">${esc(s)}</span> ${main.intervention.perLayer[main.intervention.layers[i]]}`).join(', ')}; max |shift| ${main.intervention.maxAbsShift.toPrecision(3)})` : '') +
    `. Mem &rarr; gen adds alpha &times; NMD at the kept neurons, gen &rarr; mem subtracts it, ${f.steerAt === 'prompt' ? 'at the last prompt position only (<code>--steer-at prompt</code>; the paper: every generated position too)' : 'at the last prompt position and every generated one'}. ` +
    `Starting inputs: ${f.starts.found['mem->gen']} whose unsteered output is mem, ${f.starts.found['gen->mem']} whose unsteered output is gen, drawn from ${f.starts.tried} test inputs.</p>`;
  html += `<p>${f.paper ? `Paper: ${esc(f.paper.table)}, ${esc(f.paper.model)}, topN ${f.paper.topN}, alpha ${f.paper.alpha} (${esc(f.paper.note)}); the paper has no uniform baseline.` : `The paper has no comparable numbers for ${esc(f.task)} (${src.experiment}).`}</p>`;
  html += steeringTable(f);
  if ((f.baselineDraws ?? 1) > 1) html += `<p class="small">Each baseline cell pools ${f.baselineDraws} random draws (<code>--baseline-draws ${f.baselineDraws}</code>): its n is ${f.baselineDraws} &times; the starting inputs, its percentages the mean over the draws.</p>`;
  html += `<p class="small">Bold: the class steered toward. Percentages of n starting inputs per cell, greedy decoding; "other" = neither the correct nor the memorized answer.</p>`;
  // The smooth signal beside the greedy classes.
  const pf = (p?: { gen: number; mem: number | null }) => (p ? `${p.gen.toFixed(3)} / ${p.mem === null ? '-' : p.mem.toFixed(3)}` : '-');
  const methods = [...new Set(f.cells.map((c) => c.method))];
  html += `<details><summary>Mean p(first gen token) / p(first mem token), unsteered and steered</summary><table><tr><th></th>${DIRECTIONS.map((dir) => `<th class="num">${arrow(dir)}</th>`).join('')}</tr>` +
    `<tr><td>unsteered</td>${DIRECTIONS.map((dir) => `<td class="num">${pf(f.starts.pFirst?.[dir])}</td>`).join('')}</tr>` +
    methods.map((m) => `<tr><td>${METHOD_LABEL[m]}</td>${DIRECTIONS.map((dir) => `<td class="num">${pf(f.cells.find((c) => c.method === m && c.direction === dir)?.pFirst)}</td>`).join('')}</tr>`).join('') +
    `</table><p class="small">Probability of the first token of the correct / memorized answer at the last prompt position: it moves before the greedy class does.</p></details>`;
  const ex = f.cells.filter((c) => c.method === 'targeted' || c.method === 'custom').flatMap((c) => c.examples.slice(0, 4).map((x) => ({ dir: c.direction, ...x })));
  if (ex.length > 0) {
    html += `<details><summary>Examples of targeted steering (${ex.length})</summary><table><tr><th>direction</th><th>prompt</th><th>unsteered</th><th>steered</th><th>class</th></tr>` +
      ex.map((x) => `<tr><td>${arrow(x.dir)}</td><td class="mono">${esc(x.prompt)}</td><td class="mono">${esc(x.before)}</td><td class="mono">${esc(x.after)}</td><td>${x.behaviour}</td></tr>`).join('') + '</table></details>';
  }
  for (const w of f.warnings) html += box('warn', `<p>${esc(w)}</p>`);
  return html;
}

function sweepSection(d: ReportData, figs: Figure[], prefix: string): string {
  let html = `<section id="sweep"><h2>5. Sweep: alpha &times; topN</h2>`;
  const f = d.sweep;
  if (!f) {
    return html + box('note', `<p>No sweep yet (sweep.json). Make one with <code>memgen sweep --run ${esc(d.runDir)}</code> (alpha ${'0.5, 1, 2, 5, 10'} &times; topN 0.01, 0.05, 0.1, 0.2, both directions, both baselines; <code>--n 50</code> for a quick look), then rerun <code>memgen report --run ${esc(d.runDir)}</code>.</p>`) + '</section>';
  }
  const fig: Figure = { file: `${prefix}sweep.svg`, title: 'sweep', svg: sweepFigure(f) };
  figs.push(fig);
  html += figureHtml(fig, `Each cell: targeted success (large) and, in parentheses, the best of the two baselines (random neurons, uniform) at the same alpha and topN, then % other. Colour: targeted minus best baseline, in points (red: the baseline did better). Neurons re-ranked by |rho| for each topN${f.layers ? ` within layers ${f.layers.join(', ')}` : ''}; site <code>${esc(f.site)}</code>${f.steerAt === 'prompt' ? '; the shift at the last prompt position only' : ''}${(f.baselineDraws ?? 1) > 1 ? `; each baseline pools ${f.baselineDraws} random draws` : ''}.`);
  if (f.best) {
    const b = f.best;
    const worst = Math.min(b.margin['mem->gen'], b.margin['gen->mem']);
    const part = (dir: 'mem->gen' | 'gen->mem') => `${arrow(dir)} ${pct1(b.success[dir])}${b.baseline[dir] === null ? '' : ` (best baseline ${pct1(b.baseline[dir] as number)})`}`;
    html += `<p>${worst > 0 ? 'Best cell (largest worst-direction margin)' : `<b>No (alpha, topN) beats ${f.baselines ? 'the baselines' : '0%'} in both directions</b>; the least bad`}: alpha ${b.alpha}, topN ${b.topN}: ${part('mem->gen')}; ${part('gen->mem')}.</p>`;
  }
  if (!f.complete) html += box('warn', `<p>The sweep was interrupted: ${f.cells.length} cells finished.</p>`);
  for (const w of f.warnings) html += box('warn', `<p>${esc(w)}</p>`);
  return html + '</section>';
}

function provenanceSection(d: ReportData, outDir: string): string {
  let html = `<section id="provenance"><h2>6. Where the numbers came from</h2>`;
  const m = d.manifest;
  const recorded = m.hashes?.[d.modelRel];
  const rows: [string, string][] = [
    ['Model file now', d.modelHash ? `<code>${esc(d.modelHash)}</code>` : `<b>${esc(d.modelRel)} is missing</b>`],
    ['Model in manifest.json', recorded ? `<code>${esc(recorded)}</code>${d.modelHash && recorded !== d.modelHash ? ' <b>(differs: the model file changed after training)</b>' : ''}` : '-'],
  ];
  if (d.summary) rows.push(['Analysis made for', `<code>${esc(d.summary.modelHash)}</code> (${esc(d.summary.createdAt)}, ${d.summary.pairs} pairs, seed ${d.summary.seed}, ${d.summary.extractSeconds.toFixed(0)} s extraction)`]);
  if (d.steering) rows.push(['Steering made for', `<code>${esc(d.steering.modelHash)}</code> (${esc(d.steering.createdAt)}, seed ${d.steering.seed}, ${d.steering.seconds.toFixed(1)} s)`]);
  if (d.sweep) rows.push(['Sweep made for', `<code>${esc(d.sweep.modelHash)}</code> (${esc(d.sweep.createdAt)}, seed ${d.sweep.seed}, ${d.sweep.seconds.toFixed(1)} s)`]);
  rows.push(['Staleness', d.stale.length === 0 ? 'none: every analysis file matches the current model file' : `<b>${d.stale.map(esc).join('<br>')}</b>`]);
  rows.push(['Versions', Object.entries(m.versions ?? {}).map(([k, v]) => `${esc(k)} ${esc(v)}`).join(', ') + (m.gitCommit ? `; git commit <code>${esc(m.gitCommit.slice(0, 12))}</code>` : '')]);
  html += `<table class="kv">${rows.map(([k, v]) => `<tr><th>${k}</th><td>${v}</td></tr>`).join('')}</table>`;
  html += `<table><tr><th>file</th><th>what</th><th class="num">size</th><th>modified</th></tr>` +
    d.files.map((f) => f.exists
      ? `<tr><td class="mono"><a href="${href(outDir, f.abs)}">${esc(f.rel)}</a></td><td>${esc(f.what)}</td><td class="num">${bytes(f.bytes)}</td><td class="small">${esc(f.modified ?? '')}</td></tr>`
      : `<tr><td class="mono">${esc(f.rel)}</td><td>${esc(f.what)}</td><td colspan="2" class="small">not made yet</td></tr>`).join('') + '</table>';
  return html + '</section>';
}

// ---------------------------------------------------------------------------------------------

/**
 * The report as HTML text and its figures. `outDir` is the folder the HTML will be written to (links
 * are relative to it); `prefix` goes before each figure's file name.
 */
export function renderReport(d: ReportData, outDir: string, prefix = ''): RenderedReport {
  const figs: Figure[] = [];
  const name = path.basename(d.absDir);
  const sections = [
    runSection(d, outDir, figs, prefix),
    nmdSection(d, figs, prefix),
    probeSection(d, figs, prefix),
    steeringSection(d),
    sweepSection(d, figs, prefix),
    provenanceSection(d, outDir),
  ];
  const alerts = [
    ...d.notes.map((n) => box('bad', `<p>${esc(n)}</p>`)),
    ...d.stale.map((s) => box('warn', `<p><b>Stale:</b> ${esc(s)}</p>`)),
    ...d.problems.map((p) => box('warn', `<p>${esc(p)}</p>`)),
  ];
  const verdict = d.steering ? steeringVerdict(d.steering) : null;
  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MemGen Lens report: ${esc(name)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>MemGen Lens report: ${esc(name)}</h1>
<p class="sub">${esc(d.manifest.taskDescription)}</p>
<p class="small">Run folder <code>${esc(d.runDir)}</code>; report made ${esc(new Date().toISOString())}. Method: <i>Neuron-Level Differentiation of Memorization and Generalization in Large Language Models</i> (Huang et al.); our numbers beside the paper's.</p>
${verdict ? `<p class="small">Steering in one line: ${esc(verdict.line).replace(/-&gt;/g, '&rarr;')}</p>` : ''}
<nav><a href="#run">1 The run</a><a href="#nmd">2 NMD</a><a href="#probes">3 Probes</a><a href="#steering">4 Steering</a><a href="#sweep">5 Sweep</a><a href="#provenance">6 Provenance</a></nav>
${alerts.join('\n')}
${sections.join('\n')}
<footer>Made by <code>memgen report</code>. Self-contained: inline CSS and SVG, no scripts, no external resources; each figure is also a standalone .svg file beside this one.</footer>
</main>
</body>
</html>
`;
  return { html, figures: figs };
}

export interface WriteReportOptions {
  /** The HTML file (default RUN/report/index.html); figures go beside it. */
  out?: string;
  /** Lines shown at the top (e.g. why a stage failed). */
  notes?: string[];
}

/** Renders and writes the report and its figures (atomically, figures first); returns the paths. */
export function writeReport(runDir: string, opts: WriteReportOptions = {}): { html: string; figures: string[]; data: ReportData } {
  const data = loadReportData(runDir, opts.notes);
  const out = path.resolve(opts.out ?? path.join(runDir, 'report', 'index.html'));
  const outDir = path.dirname(out);
  const stem = path.basename(out).replace(/\.html?$/i, '');
  const prefix = stem === 'index' ? '' : `${stem}-`;
  const { html, figures } = renderReport(data, outDir, prefix);
  const written: string[] = [];
  for (const f of figures) {
    const file = path.join(outDir, f.file);
    writeFileAtomic(file, standalone(f.svg));
    written.push(file);
  }
  writeFileAtomic(out, html);
  return { html: out, figures: written, data };
}
