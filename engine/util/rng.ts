/**
 * Seeded pseudo-random numbers (deterministic across platforms):
 *   uniform: SplitMix32-style mulberry32 on a 32-bit state, returns [0, 1)
 *   normal:  Box-Muller, mean 0, std 1
 * State is one 32-bit integer, so a generator can be saved and restored exactly (checkpoints).
 */
export class Rng {
  private s: number;
  private spare: number | undefined;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  get state(): { s: number; spare: number | null } {
    return { s: this.s, spare: this.spare ?? null };
  }

  static restore(st: { s: number; spare: number | null }): Rng {
    const r = new Rng(0);
    r.s = st.s >>> 0;
    r.spare = st.spare ?? undefined;
    return r;
  }

  uniform(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [lo, hi] inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.uniform() * (hi - lo + 1));
  }

  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(this.uniform() * (i + 1));
      [xs[i], xs[j]] = [xs[j], xs[i]];
    }
    return xs;
  }
}
