// The panels' data-to-picture formulas (webviews/src/lib): colour scales, the NMD map's column
// order and pixels, the view maths, histogram binning, axis ticks; on the committed run's real
// nmd.npy where the result depends on the data.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readNpy } from '../../engine/analysis/npy';
import { readNeurons } from '../../engine/analysis/files';
import { LUT_SIZE, buildLut, diverging, lutIndex, maxAbs, normalise, sequential } from '../../webviews/src/lib/colour-scale';
import { cellAt, clampView, columnOrder, fitView, inverseOrder, renderPixels, zoomAt } from '../../webviews/src/lib/heatmap-layout';
import { binCount, sharedHistogram } from '../../webviews/src/lib/histogram';
import { linearScale, niceTicks } from '../../webviews/src/lib/axis-scale';

const RUN = path.resolve(__dirname, '../../runs/arithmetic-tiny');
const nmd = readNpy(path.join(RUN, 'analysis/nmd.npy'));
const [L, D] = nmd.shape;

describe('colour scales', () => {
  it('normalises linear, sqrt and log onto [0, 1] with the ends fixed', () => {
    for (const k of ['linear', 'sqrt', 'log'] as const) {
      expect(normalise(0, k)).toBe(0);
      expect(normalise(1, k)).toBeCloseTo(1, 12);
      expect(normalise(2, k)).toBeCloseTo(1, 12); // clipped
    }
    expect(normalise(0.25, 'sqrt')).toBeCloseTo(0.5, 12);
    expect(normalise(0.01, 'log')).toBeCloseTo(Math.log(2) / Math.log(101), 12);
    // sqrt and log lift small values above linear
    expect(normalise(0.1, 'sqrt')).toBeGreaterThan(0.1);
    expect(normalise(0.1, 'log')).toBeGreaterThan(normalise(0.1, 'sqrt'));
  });

  it('viridis runs dark to yellow; diverging is blue for gen (+), orange for mem (-), neutral at 0', () => {
    expect(sequential(0)).toEqual([68, 1, 84]);
    expect(sequential(1)).toEqual([253, 231, 37]);
    expect(diverging(0, 'light')).toEqual([240, 240, 240]);
    expect(diverging(0, 'dark')).toEqual([48, 48, 48]);
    const gen = diverging(1, 'dark');
    const mem = diverging(-1, 'dark');
    expect(gen[2]).toBeGreaterThan(gen[0]); // blue
    expect(mem[0]).toBeGreaterThan(mem[2]); // orange
  });

  it('maps values to LUT entries symmetrically when signed', () => {
    const lut = buildLut(true, 'light');
    expect(lut.length).toBe((2 * LUT_SIZE - 1) * 3);
    expect(lutIndex(0, 1, 'linear', true)).toBe(LUT_SIZE - 1);
    expect(lutIndex(1, 1, 'linear', true)).toBe(2 * LUT_SIZE - 2);
    expect(lutIndex(-1, 1, 'linear', true)).toBe(0);
    expect(lutIndex(0.5, 1, 'linear', false)).toBe(Math.round(0.5 * (LUT_SIZE - 1)));
    expect(maxAbs([0, -3, 2])).toBe(3);
    expect(maxAbs([0, 0])).toBe(1);
  });
});

describe('NMD map layout on runs/arithmetic-tiny', () => {
  it('sorts each layer by |NMD| descending, and the inverse order finds every neuron', () => {
    const order = columnOrder(nmd.data, L, D, 'sorted');
    const col = inverseOrder(order, L, D);
    for (let l = 0; l < L; l++) {
      const row = Array.from(order.subarray(l * D, (l + 1) * D));
      expect(new Set(row).size).toBe(D);
      for (let c = 1; c < D; c++) expect(Math.abs(nmd.data[l * D + row[c - 1]])).toBeGreaterThanOrEqual(Math.abs(nmd.data[l * D + row[c]]));
      for (let i = 0; i < D; i++) expect(row[col[l * D + i]]).toBe(i);
    }
    // The largest |NMD| of each layer is in column 0; agrees with a direct arg-max.
    for (let l = 0; l < L; l++) {
      let best = 0;
      for (let i = 1; i < D; i++) if (Math.abs(nmd.data[l * D + i]) > Math.abs(nmd.data[l * D + best])) best = i;
      expect(Math.abs(nmd.data[l * D + order[l * D]])).toBe(Math.abs(nmd.data[l * D + best]));
    }
    expect(Array.from(columnOrder(nmd.data, L, D, 'index').subarray(0, 5))).toEqual([0, 1, 2, 3, 4]);
  });

  it('draws one opaque pixel per cell, the largest |NMD| overall in the brightest viridis colour', () => {
    const order = columnOrder(nmd.data, L, D, 'sorted');
    const { pixels, vmax } = renderPixels(nmd.data, order, L, D, { signed: false, scale: 'linear', theme: 'dark' });
    expect(pixels.length).toBe(L * D * 4);
    expect(vmax).toBe(maxAbs(nmd.data));
    let jmax = 0;
    for (let j = 0; j < L * D; j++) if (Math.abs(nmd.data[j]) > Math.abs(nmd.data[jmax])) jmax = j;
    const layer = Math.floor(jmax / D);
    const p = 4 * (layer * D); // column 0 of that layer
    expect([pixels[p], pixels[p + 1], pixels[p + 2], pixels[p + 3]]).toEqual([253, 231, 37, 255]);
    for (let i = 3; i < pixels.length; i += 4) expect(pixels[i]).toBe(255);
    // signed: a positive NMD (gen) is bluer than red, a negative one (mem) redder than blue
    const signed = renderPixels(nmd.data, columnOrder(nmd.data, L, D, 'index'), L, D, { signed: true, scale: 'linear', theme: 'light' }).pixels;
    const jp = Array.from(nmd.data).findIndex((v) => v > vmax / 2);
    const jn = Array.from(nmd.data).findIndex((v) => v < -vmax / 2);
    expect(signed[4 * jp + 2]).toBeGreaterThan(signed[4 * jp]);
    expect(signed[4 * jn]).toBeGreaterThan(signed[4 * jn + 2]);
  });

  it('agrees with neurons.json: the rank-1 neuron has the same sign of NMD as its rho', () => {
    const top = readNeurons(RUN).neurons[0];
    expect(Math.sign(nmd.data[top.layer * D + top.index])).toBe(Math.sign(top.rho));
  });

  it('keeps the column under the cursor fixed when zooming, and clamps panning', () => {
    const v = fitView(L, D, 512, 120);
    expect(v.scaleX).toBe(512 / D);
    expect(cellAt(v, L, D, 0, 0)).toEqual({ layer: 0, column: 0 });
    expect(cellAt(v, L, D, 511, 119)).toEqual({ layer: L - 1, column: D - 1 });
    expect(cellAt(v, L, D, 513, 10)).toBeNull();
    const z = zoomAt(v, 4, 300, v.scaleX, 40);
    expect((300 - z.offsetX) / z.scaleX).toBeCloseTo((300 - v.offsetX) / v.scaleX, 9);
    expect(clampView({ ...z, offsetX: 100 }, D, 512).offsetX).toBe(0);
    expect(clampView({ ...z, offsetX: -1e6 }, D, 512).offsetX).toBeCloseTo(512 - D * z.scaleX, 9);
  });

  it('builds a 28 x 3072 picture (the size the panel must stay smooth at; its frame rate is measured in test/e2e/panels.js)', () => {
    // Data computed here (a deterministic pattern) at a LLaMA-3B-like size.
    const L = 28;
    const D = 3072;
    const big = new Float32Array(L * D).map((_, j) => Math.sin(j * 0.37) * ((j % 97) / 97));
    const order = columnOrder(big, L, D, 'sorted');
    const { pixels, vmax } = renderPixels(big, order, L, D, { signed: true, scale: 'sqrt', theme: 'dark' });
    expect(pixels.length).toBe(L * D * 4);
    expect(vmax).toBe(maxAbs(big));
    // Column 0 of every layer holds that layer's largest |value|.
    for (const l of [0, 13, 27]) {
      const row = big.subarray(l * D, (l + 1) * D);
      expect(Math.abs(big[l * D + order[l * D]])).toBe(maxAbs(row));
    }
  });
});

describe('histogram binning', () => {
  it('puts both samples on shared bins, counts every finite value, densities integrate to 1', () => {
    const gen = [0, 0.1, 0.2, 0.9, 1];
    const mem = [0.5, 0.5, NaN];
    const h = sharedHistogram(gen, mem, 4);
    expect(h.edges).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(h.gen).toEqual([3, 0, 0, 2]);
    expect(h.mem).toEqual([0, 0, 2, 0]);
    expect(h.skipped).toBe(1);
    const w = 0.25;
    expect(h.genDensity.reduce((a, b) => a + b * w, 0)).toBeCloseTo(1, 12);
    expect(h.memDensity.reduce((a, b) => a + b * w, 0)).toBeCloseTo(1, 12);
    expect(h.genMean - h.memMean).toBeCloseTo(0.44 - 0.5, 12);
  });

  it('uses the square-root rule within [8, 50] and one bin for a constant neuron', () => {
    expect(binCount(10)).toBe(8);
    expect(binCount(500)).toBe(23);
    expect(binCount(1e6)).toBe(50);
    const h = sharedHistogram([2, 2], [2]);
    expect(h.edges).toEqual([1.5, 2.5]);
    expect(h.gen).toEqual([2]);
  });

  it('means on the real hidden states reproduce nmd.npy for a neuron', () => {
    const gen = readNpy(path.join(RUN, 'analysis/hidden_gen.npy'));
    const mem = readNpy(path.join(RUN, 'analysis/hidden_mem.npy'));
    const top = readNeurons(RUN).neurons[0];
    const P = gen.shape[0];
    const col = (a: Float32Array) => Float32Array.from({ length: P }, (_, p) => a[(p * L + top.layer) * D + top.index]);
    const h = sharedHistogram(col(gen.data), col(mem.data));
    expect(h.genMean - h.memMean).toBeCloseTo(nmd.data[top.layer * D + top.index], 5);
    expect(h.gen.reduce((a, b) => a + b, 0)).toBe(P);
  });
});

describe('axis scales', () => {
  it('maps linearly and picks 1-2-5 ticks', () => {
    const s = linearScale([0, 10], [100, 200]);
    expect(s(5)).toBe(150);
    expect(niceTicks(0.42, 0.69, 5)).toEqual([0.45, 0.5, 0.55, 0.6, 0.65]);
    expect(niceTicks(0, 5000, 5)).toEqual([0, 1000, 2000, 3000, 4000, 5000]);
  });
});
