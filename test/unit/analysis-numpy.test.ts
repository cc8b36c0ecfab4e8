/**
 * The analysis files against NumPy (skipped when /usr/bin/python3 has no numpy): np.load reads
 * hidden_gen.npy / hidden_mem.npy (streamed, with a resume in between), nmd.npy and rho.npy as we
 * write them, its own NMD and correlation from the two hidden files equal ours, and our reader
 * takes what np.save writes (and refuses what it cannot represent).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ANALYSIS_FILES } from '../../engine/analysis/files';
import { momentsOfFiles, nmd } from '../../engine/analysis/nmd';
import { NpyAppender, readNpy, writeNpy } from '../../engine/analysis/npy';
import { pointBiserial } from '../../engine/analysis/pearson';
import { Rng } from '../../engine/util/rng';

const PY = '/usr/bin/python3';
const hasNumpy = spawnSync(PY, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

function python(script: string, cwd: string): string {
  const r = spawnSync(PY, ['-c', script], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return r.stdout;
}

describe.skipIf(!hasNumpy)('analysis files with NumPy', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-npy-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const at = (k: keyof typeof ANALYSIS_FILES) => path.join(dir, ANALYSIS_FILES[k]);

  it('np.load reads our files; its NMD and rho from the hidden files equal ours within 1e-5', () => {
    const rng = new Rng(11);
    const P = 40;
    const L = 3;
    const d = 5;
    const row = (lift: number) => Float32Array.from({ length: L * d }, (_, j) => (j === 7 ? 2.5 : 3 + rng.normal() + (j % d === 1 ? lift : 0)));
    // Stream 25 pairs, close, reopen (resume) and stream 15 more. Neuron (1, 2) is constant.
    for (const [mode, n] of [['create', 25], ['append', 15]] as const) {
      const g = NpyAppender.open(at('hiddenGen'), [L, d], mode);
      const m = NpyAppender.open(at('hiddenMem'), [L, d], mode);
      for (let k = 0; k < n; k++) {
        g.append(row(0.8));
        m.append(row(0));
      }
      g.close();
      m.close();
    }
    const moments = momentsOfFiles(at('hiddenGen'), at('hiddenMem'), 7);
    writeNpy(at('nmd'), nmd(moments), [L, d]);
    writeNpy(at('rho'), pointBiserial(moments), [L, d]);

    const out = JSON.parse(python(`
import json, numpy as np
g = np.load('${ANALYSIS_FILES.hiddenGen}'); m = np.load('${ANALYSIS_FILES.hiddenMem}')
nmd = np.load('${ANALYSIS_FILES.nmd}'); rho = np.load('${ANALYSIS_FILES.rho}')
X = np.concatenate([g, m]).reshape(len(g) + len(m), -1).astype(np.float64)
y = np.r_[np.ones(len(g)), np.zeros(len(m))]
Xc = X - X.mean(0); yc = y - y.mean()
den = np.sqrt((Xc ** 2).sum(0) * (yc ** 2).sum())
r = np.where(den > 0, (Xc * yc[:, None]).sum(0) / np.where(den > 0, den, 1), 0.0).reshape(nmd.shape)
ref_nmd = g.astype(np.float64).mean(0) - m.astype(np.float64).mean(0)
with open('${ANALYSIS_FILES.hiddenGen}', 'rb') as f:
    major, minor = np.lib.format.read_magic(f)
    np.lib.format.read_array_header_1_0(f)
    offset = f.tell()
print(json.dumps({
  'shapes': [list(a.shape) for a in (g, m, nmd, rho)], 'dtypes': [str(a.dtype) for a in (g, m, nmd, rho)],
  'version': [major, minor], 'offset': offset,
  'nmd': float(np.abs(nmd - ref_nmd).max()), 'rho': float(np.abs(rho - r).max()),
  'constant': [float(nmd[1, 2]), float(rho[1, 2])], 'nan': bool(np.isnan(rho).any()),
  'sign': bool((np.sign(rho) == np.sign(nmd))[nmd != 0].all()),
}))
`, dir)) as Record<string, unknown>;
    expect(out.shapes).toEqual([[P, L, d], [P, L, d], [L, d], [L, d]]);
    expect(out.dtypes).toEqual(['float32', 'float32', 'float32', 'float32']);
    expect(out.version).toEqual([1, 0]);
    expect((out.offset as number) % 64).toBe(0);
    expect(out.nmd).toBeLessThan(1e-5);
    expect(out.rho).toBeLessThan(1e-5);
    expect(out.constant).toEqual([0, 0]);
    expect(out.nan).toBe(false);
    expect(out.sign).toBe(true);
  });

  it('reads what np.save writes, and names the file it refuses', () => {
    python(`
import numpy as np
a = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8
np.save('np-f4.npy', a)
np.save('np-1d.npy', np.array([1.5, -2.0], dtype=np.float32))
np.save('np-f8.npy', a.astype(np.float64))
np.save('np-fortran.npy', np.asfortranarray(a))
`, dir);
    const a = readNpy(path.join(dir, 'np-f4.npy'));
    expect(a.shape).toEqual([2, 3, 4]);
    expect(Array.from(a.data)).toEqual(Array.from({ length: 24 }, (_, i) => i / 8));
    expect(Array.from(readNpy(path.join(dir, 'np-1d.npy')).data)).toEqual([1.5, -2]);
    expect(() => readNpy(path.join(dir, 'np-f8.npy'))).toThrow(/np-f8\.npy: dtype '<f8' is not supported/);
    expect(() => readNpy(path.join(dir, 'np-fortran.npy'))).toThrow(/np-fortran\.npy: Fortran-order/);
  });
});
