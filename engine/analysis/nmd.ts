/**
 * Neuron-wise mean difference (method.md section 5), and the per-neuron moments it and the
 * correlation (pearson.ts) are computed from.
 *
 *   NMD[l, i] = mean_G h[l, i] - mean_M h[l, i]
 *
 * G = the gen members of the pairs, M = the mem members; h[l, i] = neuron i of the site vector of
 * layer l at the last prompt token. SIGN: gen - mem, everywhere in the product (positive NMD = the
 * neuron is higher when the model generalizes; steering toward gen adds alpha * NMD). The reference
 * code used mem - gen.
 *
 * Moments, one pass over the members in float64, per neuron j = (l, i):
 *   n            members in the group
 *   K[j]         a shift shared by both groups (the first gen member's vector)
 *   S[j] = sum (h[j] - K[j]),   Q[j] = sum (h[j] - K[j])^2
 * so mean = K + S / n. The shift keeps sums of squares free of cancellation (a constant neuron gives
 * S = Q = 0 exactly) without a second pass. Files are read in blocks of rows (constant memory).
 */
import { NpyError, forEachNpyChunk, readNpyHeader } from './npy';

/** Shifted sums of one group of members. */
export interface GroupMoments {
  n: number;
  /** S: sum of (h - shift), per neuron. */
  sum: Float64Array;
  /** Q: sum of (h - shift)^2, per neuron. */
  sumSq: Float64Array;
}

/** Moments of the gen and the mem members, with their shared shift; neurons are layer-major [L, d]. */
export interface PairMoments {
  layers: number;
  d: number;
  shift: Float64Array;
  gen: GroupMoments;
  mem: GroupMoments;
}

const group = (size: number): GroupMoments => ({ n: 0, sum: new Float64Array(size), sumSq: new Float64Array(size) });

/** Empty moments for [layers, d] site vectors; `shift` (length layers * d) defaults to zeros. */
export function emptyMoments(layers: number, d: number, shift?: ArrayLike<number>): PairMoments {
  const size = layers * d;
  const k = new Float64Array(size);
  if (shift) {
    if (shift.length !== size) throw new Error(`shift has ${shift.length} values, expected ${size}`);
    k.set(Array.from(shift));
  }
  return { layers, d, shift: k, gen: group(size), mem: group(size) };
}

/** Adds `rows` ([count, layers * d], row-major) to one group. */
export function addRows(m: PairMoments, which: 'gen' | 'mem', rows: Float32Array): void {
  const size = m.layers * m.d;
  if (rows.length % size !== 0) throw new Error(`${rows.length} values are not whole rows of ${m.layers} x ${m.d}`);
  const g = m[which];
  const { shift: k } = m;
  const { sum, sumSq } = g;
  for (let off = 0; off < rows.length; off += size) {
    for (let j = 0; j < size; j++) {
      const y = rows[off + j] - k[j];
      sum[j] += y;
      sumSq[j] += y * y;
    }
  }
  g.n += rows.length / size;
}

/** Moments of in-memory gen and mem rows, each [count, layers, d]. */
export function momentsOf(gen: Float32Array, mem: Float32Array, layers: number, d: number): PairMoments {
  const m = emptyMoments(layers, d, gen.length >= layers * d ? gen.subarray(0, layers * d) : undefined);
  addRows(m, 'gen', gen);
  addRows(m, 'mem', mem);
  return m;
}

/** Moments of hidden_gen.npy and hidden_mem.npy ([P, L, d] each), streamed in blocks of rows. */
export function momentsOfFiles(genFile: string, memFile: string, rowsPerChunk = 256): PairMoments {
  const hg = readNpyHeader(genFile);
  const hm = readNpyHeader(memFile);
  if (hg.shape.length !== 3) throw new NpyError(`${genFile}: expected [pairs, layers, d], got shape (${hg.shape.join(', ')})`);
  if (hm.shape.length !== 3 || hm.shape[1] !== hg.shape[1] || hm.shape[2] !== hg.shape[2]) {
    throw new NpyError(`${memFile}: shape (${hm.shape.join(', ')}) does not match ${genFile}'s (${hg.shape.join(', ')})`);
  }
  const [, layers, d] = hg.shape;
  let m: PairMoments | undefined;
  forEachNpyChunk(genFile, rowsPerChunk, (rows) => {
    m ??= emptyMoments(layers, d, rows.subarray(0, layers * d));
    addRows(m, 'gen', rows);
  });
  m ??= emptyMoments(layers, d);
  const moments = m;
  forEachNpyChunk(memFile, rowsPerChunk, (rows) => addRows(moments, 'mem', rows));
  return moments;
}

/** Group mean per neuron: K + S / n (NaN-free: an empty group is an error). */
export function groupMean(m: PairMoments, which: 'gen' | 'mem'): Float64Array {
  const g = m[which];
  if (g.n === 0) throw new Error(`no ${which} members: the mean is undefined`);
  return Float64Array.from(g.sum, (s, j) => m.shift[j] + s / g.n);
}

/** NMD = mean_G - mean_M per neuron, [layers * d] layer-major (float32, as stored in nmd.npy). */
export function nmd(m: PairMoments): Float32Array {
  const { gen, mem } = m;
  if (gen.n === 0 || mem.n === 0) throw new Error(`NMD needs gen and mem members (have ${gen.n} gen, ${mem.n} mem)`);
  // The shift cancels: (K + Sg/ng) - (K + Sm/nm) = Sg/ng - Sm/nm.
  return Float32Array.from(gen.sum, (s, j) => s / gen.n - mem.sum[j] / mem.n);
}
