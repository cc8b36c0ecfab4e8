/**
 * Inference-time intervention (method.md section 6): the steering vectors, one [d] vector per layer,
 * that gpt2-infer.ts / llama-infer.ts add at the hook site at the last prompt position and every
 * generated position (the paper's; steerAt 'prompt', steer-eval --steer-at prompt: the last prompt
 * position alone).
 *
 *   targeted   for each kept neuron (layer l, index i) of the ranking (rank.ts, top topN by |rho|):
 *                toward gen ('mem->gen'):  steer[l][i] = +alpha * NMD[l, i]
 *                toward mem ('gen->mem'):  steer[l][i] = -alpha * NMD[l, i]
 *              with NMD = mean gen - mean mem (nmd.ts), so +alpha * NMD = alpha * sign(rho) * |NMD|;
 *              zero at every other (layer, neuron). EVERY layer that holds a kept neuron is steered,
 *              the last one included (the reference code's hard-coded layer range skipped the last
 *              layers, method.md 9.1).
 *   custom     the same rule on a set of (layer, index) the user picked.
 *   baselines, seeded (an Rng of the caller's seed; the same seed gives the same vectors):
 *     'random-neurons'  (a) the SAME multiset of shift values as the targeted intervention, put on a
 *                       random neuron set of the same size, drawn uniformly over all L * d positions
 *                       without replacement (partial Fisher-Yates), value j going to the j-th drawn
 *                       position (the draw order is random, so the assignment is too).
 *     'uniform'         (b) shifts uniform in [-v, v] on a random neuron set of the same size (drawn as
 *                       in (a)), v = max |shift| of the targeted intervention.
 *   The random sets may overlap the targeted one (uniform over ALL positions, as the paper's; with
 *   `layers` given, as the targeted ranking was restricted to (steer-eval --layers), over those
 *   layers' positions only, so that the baselines steer where the method does).
 *
 * Everything is indexed layer-major, j = layer * d + index, as nmd.npy / rho.npy.
 */
import type { NeuronEntry } from '../analysis/files';
import type { GPT2Site } from '../models/hooks';
import { type SiteFamily, familyField, familySiteName, fileSite, parseFamilySiteName } from '../models/sites';
import { Rng } from '../util/rng';

/** Which behaviour the intervention pushes toward: mem->gen adds alpha * NMD, gen->mem subtracts it. */
export type Direction = 'mem->gen' | 'gen->mem';
export const DIRECTIONS: readonly Direction[] = ['mem->gen', 'gen->mem'];

export type BaselineKind = 'random-neurons' | 'uniform';
export const BASELINES: readonly BaselineKind[] = ['random-neurons', 'uniform'];

/** 'targeted' = the top-N ranking; 'custom' = a picked set; the others are the baselines. */
export type InterventionKind = 'targeted' | 'custom' | BaselineKind;

/** +1 toward gen (adds alpha * NMD), -1 toward mem. */
export const directionSign = (direction: Direction): 1 | -1 => (direction === 'mem->gen' ? 1 : -1);

/** The behaviour a direction starts from and the one it aims at. */
export function directionEnds(direction: Direction): { from: 'gen' | 'mem'; to: 'gen' | 'mem' } {
  return direction === 'mem->gen' ? { from: 'mem', to: 'gen' } : { from: 'gen', to: 'mem' };
}

/** Layers x neurons of the steered model (and of the NMD). */
export interface SteerShape {
  layers: number;
  d: number;
}

/** A short description of an intervention, for tables and steering.json. */
export interface InterventionDescription {
  kind: InterventionKind;
  direction: Direction;
  /** The scale of the NMD shifts (baselines: the targeted intervention's). */
  alpha: number;
  site: GPT2Site;
  /** 'llama': sites are named layers.{i}.{site} (absent: GPT-2). */
  family?: SiteFamily;
  /** Neurons with a (possibly zero) shift. */
  count: number;
  /** Layers holding at least one of them, ascending, and their site names. */
  layers: number[];
  sites: string[];
  /** Neurons per layer, [layers]. */
  perLayer: number[];
  /** max |shift| over the neurons (0 for an empty set). */
  maxAbsShift: number;
  /** The baseline's seed; null for targeted and custom (a pooled cell: its first draw's). */
  seed: number | null;
  /** A pooled baseline cell (steer-eval --baseline-draws): the random draws it pools (absent: 1). */
  draws?: number;
}

/** One shifted neuron. */
export interface Shift {
  layer: number;
  index: number;
  value: number;
}

export interface Intervention {
  /** Per layer, a Float32Array of length d (zeros where nothing is steered): gpt2-infer's `steer`. */
  vectors: Float32Array[];
  /** The shifted neurons, in the order they were given (targeted: rank order; baselines: draw order). */
  shifts: Shift[];
  description: InterventionDescription;
}

function checkShape(shape: SteerShape): void {
  if (!Number.isInteger(shape.layers) || shape.layers < 1 || !Number.isInteger(shape.d) || shape.d < 1) {
    throw new Error(`steering shape must be positive integers, got ${shape.layers} layers x ${shape.d}`);
  }
}

/** Vectors and description of a list of shifts (positions already validated and distinct). */
function build(shifts: Shift[], shape: SteerShape, meta: Omit<InterventionDescription, 'count' | 'layers' | 'sites' | 'perLayer' | 'maxAbsShift'>): Intervention {
  const vectors = Array.from({ length: shape.layers }, () => new Float32Array(shape.d));
  const perLayer = new Array<number>(shape.layers).fill(0);
  let maxAbsShift = 0;
  for (const s of shifts) {
    vectors[s.layer][s.index] = s.value;
    perLayer[s.layer]++;
    maxAbsShift = Math.max(maxAbsShift, Math.abs(s.value));
  }
  const layers = perLayer.flatMap((c, l) => (c > 0 ? [l] : []));
  return {
    vectors,
    shifts,
    description: { ...meta, count: shifts.length, layers, sites: layers.map((l) => familySiteName(l, meta.site, meta.family)), perLayer, maxAbsShift },
  };
}

/** The NMD shifts of a set of positions: value = sign(direction) * alpha * NMD[l, i], as float32. */
function nmdShifts(positions: readonly { layer: number; index: number }[], nmd: ArrayLike<number>, shape: SteerShape, alpha: number, direction: Direction, what: string): Shift[] {
  checkShape(shape);
  if (nmd.length !== shape.layers * shape.d) throw new Error(`NMD has ${nmd.length} values; the model needs layers x d = ${shape.layers} x ${shape.d} = ${shape.layers * shape.d}`);
  if (!Number.isFinite(alpha)) throw new Error(`alpha must be a finite number, got ${alpha}`);
  const sign = directionSign(direction);
  const seen = new Set<number>();
  return positions.map(({ layer, index }) => {
    if (!Number.isInteger(layer) || layer < 0 || layer >= shape.layers) throw new Error(`${what}: layer ${layer} does not exist; the model has layers 0..${shape.layers - 1}`);
    if (!Number.isInteger(index) || index < 0 || index >= shape.d) throw new Error(`${what}: neuron ${index} of layer ${layer} does not exist; layers have ${shape.d} neurons (0..${shape.d - 1})`);
    const j = layer * shape.d + index;
    if (seen.has(j)) throw new Error(`${what}: neuron ${index} of layer ${layer} is listed twice`);
    seen.add(j);
    const v = nmd[j];
    if (!Number.isFinite(v)) throw new Error(`${what}: NMD of layer ${layer} neuron ${index} is ${v}; recompute the analysis`);
    return { layer, index, value: Math.fround(sign * alpha * v) };
  });
}

/**
 * The targeted intervention of ranked neurons (NeuronEntry[] of one site, e.g. rankNeurons' output or
 * neurons.json's list): shifts from `nmd` ([layers * d], layer-major). The entries' site names fix
 * the site; they must all name the same one.
 */
export function targetedIntervention(neurons: readonly NeuronEntry[], nmd: ArrayLike<number>, shape: SteerShape, alpha: number, direction: Direction): Intervention {
  let site: GPT2Site | undefined;
  let family: SiteFamily = 'gpt2';
  const positions = neurons.map((e) => {
    const parsed = parseFamilySiteName(e.site);
    family = parsed.family;
    const parsedSite = fileSite(parsed.site, parsed.family);
    if (parsed.layer !== e.layer) throw new Error(`neuron of rank ${e.rank}: site ${e.site} disagrees with its layer ${e.layer}`);
    if (site !== undefined && parsedSite !== site) throw new Error(`the neurons mix sites ${site} and ${parsedSite}; steer one site at a time`);
    site = parsedSite;
    return { layer: e.layer, index: e.index };
  });
  if (site === undefined) throw new Error('no neurons to steer: the ranking is empty');
  const shifts = nmdShifts(positions, nmd, shape, alpha, direction, 'ranked neurons');
  return build(shifts, shape, { kind: 'targeted', direction, alpha, site, ...familyField(family), seed: null });
}

/** A picked set of (layer, index) at `site`, shifted by the NMD rule like the targeted one. */
export function customIntervention(picks: readonly { layer: number; index: number }[], nmd: ArrayLike<number>, shape: SteerShape, site: GPT2Site, alpha: number, direction: Direction, family: SiteFamily = 'gpt2'): Intervention {
  if (picks.length === 0) throw new Error('no neurons picked');
  familySiteName(0, site, family); // validates the site
  const shifts = nmdShifts(picks, nmd, shape, alpha, direction, 'picked neurons');
  return build(shifts, shape, { kind: 'custom', direction, alpha, site, ...familyField(family), seed: null });
}

/** `k` distinct positions of 0..total-1, uniformly, in random order (partial Fisher-Yates). */
export function drawPositions(total: number, k: number, rng: Rng): number[] {
  if (!Number.isInteger(k) || k < 0 || k > total) throw new Error(`cannot draw ${k} distinct positions out of ${total}`);
  const pool = Array.from({ length: total }, (_, j) => j);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rng.uniform() * (total - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, k);
}

/**
 * A baseline of a targeted (or custom) intervention, seeded; see the header. `shape` must be the
 * targeted intervention's.
 */
export function baselineIntervention(kind: BaselineKind, of: Intervention, shape: SteerShape, seed: number, layers?: readonly number[]): Intervention {
  if (!BASELINES.includes(kind)) throw new Error(`unknown baseline '${kind as string}'; choose one of: ${BASELINES.join(', ')}`);
  checkShape(shape);
  if (of.vectors.length !== shape.layers || of.vectors.some((v) => v.length !== shape.d)) throw new Error(`the intervention's vectors are not ${shape.layers} x ${shape.d}`);
  const rng = new Rng(seed);
  const k = of.shifts.length;
  const pool = layers ?? Array.from({ length: shape.layers }, (_, l) => l);
  // Drawn over the pool's positions (all layers: j itself), then mapped to the layer they belong to.
  const positions = drawPositions(pool.length * shape.d, k, rng).map((p) => pool[Math.floor(p / shape.d)] * shape.d + (p % shape.d));
  const v = of.description.maxAbsShift;
  const values = kind === 'random-neurons'
    ? of.shifts.map((s) => s.value)
    : positions.map(() => Math.fround((2 * rng.uniform() - 1) * v));
  const shifts = positions.map((j, n) => ({ layer: Math.floor(j / shape.d), index: j % shape.d, value: values[n] }));
  return build(shifts, shape, { kind, direction: of.description.direction, alpha: of.description.alpha, site: of.description.site, ...familyField(of.description.family), seed });
}

/** Whether every vector is all zeros (alpha 0, or an all-zero NMD). */
export function isZero(vectors: readonly Float32Array[]): boolean {
  return vectors.every((v) => v.every((x) => x === 0));
}

/**
 * Parses a picked-neuron list `blocks.3.ln2:71,blocks.1.ln2:4` (site name, colon, neuron index);
 * all must name one site.
 */
export function parsePicks(text: string, shape: SteerShape): { site: GPT2Site; family: SiteFamily; picks: { layer: number; index: number }[] } {
  let site: GPT2Site | undefined;
  let family: SiteFamily = 'gpt2';
  const picks = text.split(',').map((s) => s.trim()).filter((s) => s !== '').map((item) => {
    const m = /^(.+):([0-9]+)$/.exec(item);
    if (!m) throw new Error(`'${item}' is not a neuron; write site:index, e.g. blocks.3.ln2:71`);
    const parsed = parseFamilySiteName(m[1], shape.layers);
    family = parsed.family;
    const parsedSite = fileSite(parsed.site, parsed.family);
    if (site !== undefined && parsedSite !== site) throw new Error(`the picked neurons mix sites ${site} and ${parsedSite}; use one`);
    site = parsedSite;
    const index = Number(m[2]);
    if (index >= shape.d) throw new Error(`'${item}': neuron ${index} does not exist; layers have ${shape.d} neurons (0..${shape.d - 1})`);
    return { layer: parsed.layer, index };
  });
  if (site === undefined) throw new Error('no neurons picked');
  return { site, family, picks };
}
