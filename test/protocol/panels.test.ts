/**
 * The panels' protocol: BinaryArray round trips, parsePanelMessage (the check every webview message
 * passes in the extension), and the server's panel requests over stdio on the committed runs
 * (memgen/neuronMap, probeTable, steeringTables, neuronDetail, trainLog, custom-set steering and
 * memgen/activations with the steer's shift). Needs `npm run build` first (npm test does it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MessageConnection } from 'vscode-jsonrpc/node';
import { readNeurons } from '../../engine/analysis/files';
import { readNpy } from '../../engine/analysis/npy';
import * as lsp from '../../server/src/protocol';
import { type LspServer, root, startServer } from './lsp-harness';

const RUN = 'runs/arithmetic-tiny';
/** The committed analysis's site (analysis.json): every site name is blocks.{i}.{SITE}. */
const SUMMARY = JSON.parse(fs.readFileSync(path.join(root, RUN, 'analysis', 'analysis.json'), 'utf8')) as { site: string; pairs: number };
const SITE = SUMMARY.site;

describe('BinaryArray', () => {
  it('round-trips float32 and int32 arrays bit for bit, and refuses a wrong shape', () => {
    const f = Float32Array.from([0, -1.5, Math.PI, 1e-30, -0]);
    const back = lsp.decodeBinary(lsp.encodeBinary(f, [5]));
    expect(back).toBeInstanceOf(Float32Array);
    expect(Array.from(back)).toEqual(Array.from(f));
    const i = Int32Array.from([1, -2, 2 ** 30]);
    expect(Array.from(lsp.decodeBinary(lsp.encodeBinary(i, [1, 3])))).toEqual([1, -2, 2 ** 30]);
    // a view into a larger buffer encodes only its own bytes
    const view = new Float32Array(new Float32Array([9, 8, 7, 6]).buffer, 4, 2);
    expect(Array.from(lsp.decodeBinary(lsp.encodeBinary(view, [2])))).toEqual([8, 7]);
    expect(() => lsp.encodeBinary(f, [2, 2])).toThrow(/shape/);
    expect(() => lsp.decodeBinary({ dtype: 'float32', shape: [3], base64: lsp.encodeBinary(f, [5]).base64 })).toThrow(/bytes/);
  });
});

describe('parsePanelMessage', () => {
  it('accepts each well-formed message', () => {
    const ok: lsp.PanelToHost[] = [
      { type: 'ready' },
      { type: 'selectRun', run: '/x/runs/a' },
      { type: 'inspect', run: '/x', layer: 3, index: 127 },
      { type: 'customSet', action: 'add', layer: 0, index: 0 },
      { type: 'trainControl', action: 'pause' },
      { type: 'steerAlone', layer: 1, index: 2, direction: 'gen->mem' },
      { type: 'cspViolation', directive: 'script-src', blocked: 'inline', sample: '' },
    ];
    for (const m of ok) expect(lsp.parsePanelMessage(JSON.parse(JSON.stringify(m)))).toEqual(m);
  });

  it('drops anything else: unknown types, extra or missing keys, wrong types, negative or fractional indices', () => {
    const bad: unknown[] = [
      null, 'ready', [], {}, { type: 'nope' }, { type: 'ready', extra: 1 },
      { type: 'selectRun' }, { type: 'selectRun', run: 5 }, { type: 'selectRun', run: 'x'.repeat(5000) },
      { type: 'inspect', run: 'r', layer: -1, index: 0 }, { type: 'inspect', run: 'r', layer: 0.5, index: 0 }, { type: 'inspect', run: 'r', layer: 0, index: '1' },
      { type: 'customSet', action: 'drop', layer: 0, index: 0 }, { type: 'trainControl', action: 'kill' },
      { type: 'steerAlone', layer: 1, index: 2, direction: 'sideways' }, { type: 'steerAlone', layer: 1, index: 2 },
      { type: 'inspect', run: 'r', layer: 0, index: 0, __proto__: { evil: 1 }, more: 2 },
    ];
    for (const m of bad) expect(lsp.parsePanelMessage(m)).toBeNull();
  });
});

let server: LspServer;
let conn: MessageConnection;

beforeAll(async () => {
  server = await startServer();
  conn = server.conn;
});

afterAll(async () => {
  await server?.stop();
});

describe('panel requests over stdio', () => {
  it('memgen/neuronMap sends nmd.npy and rho.npy as bytes, and ranks every neuron as neurons.json does', async () => {
    const r = await conn.sendRequest(lsp.neuronMap, { run: RUN });
    expect([r.layers, r.d, r.pairs, r.sign, r.kept]).toEqual([4, 128, SUMMARY.pairs, 'gen - mem', 51]);
    const nmd = lsp.decodeBinary(r.nmd);
    expect(Array.from(nmd)).toEqual(Array.from(readNpy(path.join(root, RUN, 'analysis/nmd.npy')).data));
    const rank = lsp.decodeBinary(r.rank);
    expect([...rank].sort((a, b) => a - b)).toEqual(Array.from({ length: 512 }, (_, i) => i + 1));
    for (const n of readNeurons(path.join(root, RUN)).neurons) expect(rank[n.layer * 128 + n.index]).toBe(n.rank);
  });

  it('memgen/probeTable, steeringTables and trainLog read the run', async () => {
    const p = await conn.sendRequest(lsp.probeTable, { run: RUN });
    expect(p.mlp).toHaveLength(4);
    expect(p.logistic[3].site).toBe(`blocks.3.${SITE}`);
    const s = await conn.sendRequest(lsp.steeringTables, { run: RUN });
    expect(s.steering?.cells.length).toBeGreaterThanOrEqual(4);
    expect(s.steering?.paper?.table).toBe('Table 1');
    expect(s.missing.every((m) => /sweep/.test(m))).toBe(true);
    const log = await conn.sendRequest(lsp.trainLog, { run: RUN });
    expect(log.stopWhenBoth).toBe(0.3);
    expect(log.points.filter((x) => x.kind === 'eval').length).toBeGreaterThan(3);
    await expect(conn.sendRequest(lsp.neuronMap, { run: 'runs/no-such-run' })).rejects.toThrow(/missing/);
  });

  it('memgen/neuronDetail gives the column of the hidden states whose mean difference is the NMD', async () => {
    const r = await conn.sendRequest(lsp.neuronDetail, { run: RUN, layer: 1, index: 7 });
    const gen = lsp.decodeBinary(r.gen);
    const mem = lsp.decodeBinary(r.mem);
    expect(gen.length).toBe(SUMMARY.pairs);
    const mean = (a: ArrayLike<number>) => Array.from(a).reduce((x, y) => x + y, 0) / a.length;
    expect(mean(gen) - mean(mem)).toBeCloseTo(r.nmd, 5);
    expect(r.site).toBe(`blocks.1.${SITE}`);
    await expect(conn.sendRequest(lsp.neuronDetail, { run: RUN, layer: 4, index: 0 })).rejects.toThrow(/no neuron/);
    // Negative or fractional indices named another neuron's column (found by the server fuzz).
    for (const [layer, index] of [[1, -1], [-1, 7], [0.5, 0], [0, 1.5]]) await expect(conn.sendRequest(lsp.neuronDetail, { run: RUN, layer, index })).rejects.toThrow(/no neuron/);
  });

  it('steers a custom set, and memgen/activations then carries that shift', async () => {
    const uri = pathToFileURL(path.join(root, 'examples', 'panels-t.memgen')).toString();
    await conn.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'memgen', version: 1, text: `run: ${RUN}\n16+93+66+94=\n` } });
    const neurons = [{ layer: 2, index: 5 }, { layer: 3, index: 0 }];
    const st = await conn.sendRequest(lsp.steer, { uri, line: 1, direction: 'mem->gen', custom: { run: RUN, neurons } });
    expect(st.method).toBe('custom');
    expect(st.neurons).toBe(2);
    const a = await conn.sendRequest(lsp.activations, { uri, line: 1 });
    expect(a.hidden.shape).toEqual([4, 128]);
    const shift = lsp.decodeBinary(a.shift!);
    const nmd = readNpy(path.join(root, RUN, 'analysis/nmd.npy')).data;
    const nonzero = [...shift.keys()].filter((j) => shift[j] !== 0);
    expect(nonzero).toEqual([2 * 128 + 5, 3 * 128]);
    expect(shift[2 * 128 + 5]).toBeCloseTo(st.alpha * nmd[2 * 128 + 5], 6);
    // a custom set of another run is ignored: the top-N ranking is steered
    const other = await conn.sendRequest(lsp.steer, { uri, line: 1, direction: 'mem->gen', custom: { run: 'runs/incontext-tiny', neurons } });
    expect(other.method).toBe('targeted');
  });
});
