// @vitest-environment happy-dom
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/// <reference path="../../webviews/src/svelte.d.ts" />
// The Svelte panels in happy-dom, fed what the extension would post for the committed run
// runs/arithmetic-tiny: the server's panel data (server/src/panel-data.ts) decoded the way the
// client decodes it (client/src/panels/panel-host.ts). Checks what each panel shows and what it posts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { render, screen } from '@testing-library/svelte';
import { tick } from 'svelte';
import { afterEach, describe, expect, it } from 'vitest';
import * as panels from '../../server/src/panel-data';
import { type HostToPanel, type RunInfo, type SteerResult, decodeBinary } from '../../server/src/protocol';
import { posted } from '../../webviews/src/host';
import NeuronsPanel from '../../webviews/src/panels/NeuronsPanel.svelte';
import ProbesPanel from '../../webviews/src/panels/ProbesPanel.svelte';
import SteeringPanel from '../../webviews/src/panels/SteeringPanel.svelte';
import TrainingPanel from '../../webviews/src/panels/TrainingPanel.svelte';
import { readTrainLog } from '../../server/src/train-watch';

const RUN = path.resolve(__dirname, '../../runs/arithmetic-tiny');
const RUNS: RunInfo[] = [{ dir: RUN, name: 'arithmetic-tiny', task: 'arithmetic', analysed: true, plain: false }];
/** The committed analysis's site (analysis.json): every site name shown is blocks.{i}.{SITE}. */
const SUMMARY = JSON.parse(fs.readFileSync(path.join(RUN, 'analysis', 'analysis.json'), 'utf8')) as { site: string; pairs: number };
const SITE = SUMMARY.site;

async function send(msg: HostToPanel): Promise<void> {
  window.dispatchEvent(new MessageEvent('message', { data: msg }));
  await tick();
  await tick();
}

afterEach(() => {
  posted.length = 0;
});

describe('Neurons panel', () => {
  it('asks for the run, shows the caption with the sign convention, and inspects a neuron', async () => {
    const { container } = render(NeuronsPanel);
    await tick();
    expect(posted[0]).toEqual({ type: 'ready' });
    await send({ type: 'runs', runs: RUNS, selected: null });
    expect(posted).toContainEqual({ type: 'selectRun', run: RUN });
    const r = panels.neuronMap(RUN);
    await send({ type: 'neuronMap', data: { ...r, run: RUN, nmd: decodeBinary(r.nmd) as Float32Array, rho: decodeBinary(r.rho) as Float32Array, rank: decodeBinary(r.rank) as Int32Array } });
    const caption = screen.getByTestId('neurons-caption').textContent ?? '';
    expect(caption).toContain('arithmetic-tiny');
    expect(caption).toContain('4 layers × 128 neurons');
    expect(caption).toContain(`${SUMMARY.pairs} pairs`);
    expect(caption).toContain('mean(gen) − mean(mem)');
    expect(caption).toContain('neurons.json ranks the top 51 by |rho| (topN 0.1');
    expect(container.querySelector('canvas[data-testid="nmd-canvas"]')).not.toBeNull();
    expect(container.textContent).toContain(`blocks.3.${SITE}`);
    // toggles post nothing (they are local) but switch the chosen button
    const signed = container.querySelector('[data-testid="toggle-values"] [data-value="signed"]') as HTMLElement;
    signed.click();
    await tick();
    expect(signed.getAttribute('aria-checked')).toBe('true');
    expect(container.textContent).toContain('(gen)');

    const d = panels.neuronDetail(RUN, 2, 5);
    await send({ type: 'neuronDetail', data: { ...d, run: RUN, gen: decodeBinary(d.gen) as Float32Array, mem: decodeBinary(d.mem) as Float32Array } });
    const insp = screen.getByTestId('neuron-inspector').textContent ?? '';
    expect(insp).toContain(`blocks.2.${SITE} · neuron 5`);
    expect(insp).toContain(`rank ${d.rank} of 512`);
    expect(insp).toContain(`${SUMMARY.pairs} pairs`);
    (screen.getByTestId('steer-alone-gen') as HTMLElement).click();
    expect(posted).toContainEqual({ type: 'steerAlone', layer: 2, index: 5, direction: 'mem->gen' });
    (screen.getByTestId('custom-toggle') as HTMLElement).click();
    expect(posted).toContainEqual({ type: 'customSet', action: 'add', layer: 2, index: 5 });
    await send({ type: 'customSet', neurons: [{ layer: 2, index: 5 }] });
    expect(screen.getByTestId('custom-set').textContent).toContain(`blocks.2.${SITE}:5`);
  });

  it('shows the neuron a hover link names: on the run shown it asks for that neuron at once', async () => {
    render(NeuronsPanel);
    await tick();
    await send({ type: 'runs', runs: RUNS, selected: null });
    const r = panels.neuronMap(RUN);
    const map = { ...r, run: RUN, nmd: decodeBinary(r.nmd) as Float32Array, rho: decodeBinary(r.rho) as Float32Array, rank: decodeBinary(r.rank) as Int32Array };
    await send({ type: 'neuronMap', data: map });
    posted.length = 0;
    await send({ type: 'showNeuron', run: RUN, layer: 3, index: 58 });
    expect(posted).toEqual([{ type: 'inspect', run: RUN, layer: 3, index: 58 }]);
  });

  it('shows the neuron a hover link names: another run is picked first, then the neuron inspected when its map arrives', async () => {
    const OTHER = path.resolve(__dirname, '../../runs/incontext-tiny');
    render(NeuronsPanel);
    await tick();
    await send({ type: 'runs', runs: [...RUNS, { dir: OTHER, name: 'incontext-tiny', task: 'incontext', analysed: true, plain: false }], selected: RUN });
    posted.length = 0;
    await send({ type: 'showNeuron', run: OTHER, layer: 1, index: 7 });
    expect(posted).toEqual([{ type: 'selectRun', run: OTHER }]);
    const r = panels.neuronMap(OTHER);
    await send({ type: 'neuronMap', data: { ...r, run: OTHER, nmd: decodeBinary(r.nmd) as Float32Array, rho: decodeBinary(r.rho) as Float32Array, rank: decodeBinary(r.rank) as Int32Array } });
    expect(posted).toContainEqual({ type: 'inspect', run: OTHER, layer: 1, index: 7 });
  });
});

describe('Probes panel', () => {
  it('draws both probes per layer with the chance line and lists the numbers of probes.json', async () => {
    const { container } = render(ProbesPanel);
    await send({ type: 'runs', runs: RUNS, selected: RUN });
    const p = panels.probeTable(RUN);
    await send({ type: 'probes', data: { ...p, run: RUN } });
    expect(container.querySelectorAll('circle.dot.mlp').length).toBe(4);
    expect(container.querySelectorAll('circle.dot.logistic').length).toBe(4);
    expect(container.querySelectorAll('polygon.band').length).toBe(2);
    expect(container.querySelector('.chance-label')?.textContent).toBe('chance 0.5');
    const rows = [...container.querySelectorAll('[data-testid="probe-table"] tbody tr')].map((tr) => tr.textContent);
    expect(rows).toHaveLength(4);
    expect(rows[3]).toContain(p.logistic[3].accuracy.toFixed(3));
    expect(rows[0]).toContain(p.mlp[0].accuracy.toFixed(3));
  });
});

describe('Steering panel', () => {
  it("lays steering.json out as the paper's table, ours with n beside the paper's", async () => {
    const { container } = render(SteeringPanel);
    await send({ type: 'runs', runs: RUNS, selected: RUN });
    const s = panels.steeringTables(RUN);
    await send({ type: 'steering', data: { ...s, run: RUN } });
    const rows = [...container.querySelectorAll('[data-testid="steering-table"] tbody tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim()));
    expect(rows.length).toBe(s.steering!.cells.length);
    const targeted = rows.find((r) => r[0] === 'mem->gen' && r[1]!.startsWith('targeted'))!;
    const cell = s.steering!.cells.find((c) => c.direction === 'mem->gen' && c.method === 'targeted')!;
    expect(targeted[2]).toBe(String(cell.n));
    expect(targeted.slice(3, 6)).toEqual([cell.pct.gen, cell.pct.mem, cell.pct.other].map((x) => x.toFixed(1)));
    expect(targeted.slice(6, 9)).toEqual(['70.3', '28.1', '1.6']); // the paper's Table 1, engine/steer/files.ts
    expect(screen.getByTestId('no-last-steer')).toBeTruthy();
    if (!s.sweep) expect(container.textContent).toContain('memgen sweep');
  });

  it('shows the last steer: a scratchpad output with the sum it states, a mem token as it is', async () => {
    const { container } = render(SteeringPanel);
    await send({ type: 'runs', runs: RUNS, selected: RUN });
    const outcome = (output: string, answer: string | null, behaviour: 'gen' | 'mem') => ({ output, answer, behaviour, pGenFirst: 0.5, pMemFirst: 0.4 });
    const result: SteerResult = {
      prompt: '12+34+56+78=', runName: 'arithmetic-tiny', direction: 'mem->gen', method: 'targeted', topN: 0.05, alpha: 60, steerAt: 'all', neurons: 26,
      sites: ['blocks.3.resid_pre'], unsteered: outcome('<mem-0000abcd>', null, 'mem'), steered: outcome('64,201,081', '180', 'gen'), note: '', millis: 1,
    };
    await send({ type: 'lastSteer', result });
    const cells = [...container.querySelectorAll('td.mono')].map((td) => td.textContent);
    expect(cells).toEqual(['<mem-0000abcd>', '64,201,081 = 180']);
  });
});

describe('Training panel', () => {
  it("draws the committed run's curves with its stop rule", async () => {
    const { container } = render(TrainingPanel);
    await send({ type: 'runs', runs: RUNS, selected: RUN });
    const log = readTrainLog(RUN);
    await send({ type: 'trainLog', data: { ...log, run: RUN } });
    const caption = screen.getByTestId('training-caption').textContent ?? '';
    const last = log.points[log.points.length - 1];
    expect(caption).toContain(`step ${last.step} of 5000`);
    expect(container.querySelector('[data-testid="eval-chart"] .rule-label')?.textContent).toBe('stop rule: gen and mem both ≥ 0.3');
    expect(container.querySelectorAll('polyline.line').length).toBe(4);
  });
});
