/**
 * The one-line verdict on a steering table: does targeted steering beat random here?
 *
 * Per direction: t = targeted (or custom) success, b = the best baseline's success (random neurons
 * or uniform, whichever is higher), each over its own n starting inputs. Two-proportion z test with
 * the pooled proportion:
 *   p = (t n_t + b n_b) / (n_t + n_b),  z = (t - b) / sqrt(p (1 - p) (1 / n_t + 1 / n_b))
 * (z = 0 when p is 0 or 1). "Better" means z >= 1.96 (two-sided 5%), "worse" z <= -1.96; anything else
 * is "not better": a gap inside the noise of n inputs is not evidence that the neurons steer.
 */
import { type SteeringFile, paperCell } from '../steer/files';
import { BASELINES, DIRECTIONS, type Direction, directionEnds } from '../steer/intervention';

export interface DirectionVerdict {
  direction: Direction;
  /** The class steered toward. */
  to: 'gen' | 'mem';
  /** Percentages 0..100. */
  targeted: number;
  n: number;
  baseline: number | null;
  baselineMethod: string | null;
  baselineN: number;
  z: number | null;
  outcome: 'better' | 'not better' | 'worse' | 'no baseline' | 'no data';
  /** The paper's targeted and random (same shifts on random neurons) success, when it has them. */
  paper: { targeted: number; random: number | null } | null;
}

export interface SteeringVerdict {
  directions: DirectionVerdict[];
  /** True when targeted beats the best baseline in both directions. */
  works: boolean;
  line: string;
}

/** Two-proportion z statistic of percentages a (of na) and b (of nb); 0 when undefined. */
export function twoProportionZ(a: number, na: number, b: number, nb: number): number {
  if (na < 1 || nb < 1) return 0;
  const pa = a / 100;
  const pb = b / 100;
  const p = (pa * na + pb * nb) / (na + nb);
  const se = Math.sqrt(p * (1 - p) * (1 / na + 1 / nb));
  return se > 0 ? (pa - pb) / se : 0;
}

const pct = (x: number) => `${x.toFixed(1)}%`;
const arrow = (d: Direction) => d.replace('->', ' \u2192 ');

export function directionVerdicts(f: SteeringFile): DirectionVerdict[] {
  return DIRECTIONS.map((direction) => {
    const to = directionEnds(direction).to;
    const t = f.cells.find((c) => c.direction === direction && (c.method === 'targeted' || c.method === 'custom'));
    const bases = f.cells.filter((c) => c.direction === direction && (BASELINES as readonly string[]).includes(c.method));
    const best = bases.length ? bases.reduce((a, b) => (b.success > a.success ? b : a)) : null;
    const pt = paperCell(f.paper, direction, 'targeted');
    const pr = paperCell(f.paper, direction, 'random-neurons');
    const paper = pt ? { targeted: pt[to], random: pr ? pr[to] : null } : null;
    if (!t || t.n === 0) {
      return { direction, to, targeted: 0, n: 0, baseline: null, baselineMethod: null, baselineN: 0, z: null, outcome: 'no data', paper };
    }
    if (!best) {
      return { direction, to, targeted: t.success, n: t.n, baseline: null, baselineMethod: null, baselineN: 0, z: null, outcome: 'no baseline', paper };
    }
    const z = twoProportionZ(t.success, t.n, best.success, best.n);
    const outcome = z >= 1.96 ? 'better' : z <= -1.96 ? 'worse' : 'not better';
    return { direction, to, targeted: t.success, n: t.n, baseline: best.success, baselineMethod: best.method, baselineN: best.n, z, outcome, paper };
  });
}

/** The verdict (see the header), with the paper's numbers in the same sentence. */
export function steeringVerdict(f: SteeringFile): SteeringVerdict {
  const ds = directionVerdicts(f);
  const part = (d: DirectionVerdict) => d.baseline === null
    ? `${arrow(d.direction)} ${pct(d.targeted)} ${d.to} (no baseline)`
    : `${arrow(d.direction)} ${pct(d.targeted)} ${d.to} vs ${pct(d.baseline)} (best baseline)`;
  const better = ds.filter((d) => d.outcome === 'better');
  const usable = ds.filter((d) => d.outcome !== 'no data');
  const ns = [...new Set(usable.map((d) => d.n))];
  const nText = ns.length === 1 ? `n = ${ns[0]} per cell` : `n = ${usable.map((d) => `${d.n} (${arrow(d.direction)})`).join(', ')}`;
  let head: string;
  if (usable.length === 0) head = 'No steering cells to judge';
  else if (usable.every((d) => d.outcome === 'no baseline')) head = 'Targeted steering was run without baselines, so it cannot be judged against random';
  else if (better.length === usable.length) head = 'Targeted steering beats random in both directions';
  else if (better.length > 0) head = `Targeted steering beats random only for ${better.map((d) => arrow(d.direction)).join(', ')}`;
  else if (ds.some((d) => d.outcome === 'worse')) head = 'Targeted steering is not better than random here (worse in one direction)';
  else head = 'Targeted steering is not better than random here';
  const paper = ds.filter((d) => d.paper).map((d) => `${pct(d.paper!.targeted)} vs ${d.paper!.random === null ? '-' : pct(d.paper!.random)}`);
  const paperText = paper.length === ds.length && f.paper ? ` The paper (${f.paper.table}): ${paper.join(' and ')}.` : '';
  const line = usable.length === 0 ? `${head}.` : `${head}: ${usable.map(part).join('; ')}; ${nText}.${paperText}`;
  return { directions: ds, works: usable.length > 0 && better.length === usable.length, line };
}
