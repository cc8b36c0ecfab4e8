/**
 * A toy sequence-copy task for the engine's demo and end-to-end test (not one of the paper's tasks):
 *   tokens 0-9 are digits, 10 is the separator;  sequence = d_1 .. d_n SEP d_1 .. d_n
 * The model reads the sequence shifted by one and is scored only where it must copy (after SEP):
 * the first half is random, so loss there is masked (target = -100). Solving it needs attention
 * to the position n + 1 places back, which a one-block transformer learns.
 */
import type { HostTensor } from '../runtime/runner';
import type { Rng } from '../util/rng';

export const COPY_VOCAB = 11;
export const COPY_SEP = 10;
export const IGNORE = -100;

/** Inputs [batch, 2n] and targets [batch, 2n] (input sequence length 2n for n digits). */
export function copyBatch(rng: Rng, batch: number, n: number): { ids: HostTensor; targets: HostTensor } {
  const T = 2 * n;
  const ids = new BigInt64Array(batch * T);
  const targets = new BigInt64Array(batch * T);
  for (let b = 0; b < batch; b++) {
    const digits = Array.from({ length: n }, () => rng.int(0, 9));
    const seq = [...digits, COPY_SEP, ...digits];
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = BigInt(seq[t]);
      targets[b * T + t] = BigInt(t >= n ? seq[t + 1] : IGNORE);
    }
  }
  return { ids: { data: ids, dims: [batch, T] }, targets: { data: targets, dims: [batch, T] } };
}
