/**
 * Training batches from a task, generated on the fly.
 * Each example is tokenised as prompt ++ target ++ <eoa> and padded with <pad> to T + 1 tokens.
 *   ids[b, t]     = seq[t]                       t = 0 .. T-1
 *   targets[b, t] = seq[t + 1] if t + 1 >= promptLength (an answer token or <eoa>), else -100
 * so the loss covers exactly the answer and the end-of-answer token (the model learns to stop),
 * never the prompt and never padding.
 * `plainOnly` (the memorization warm-up of a run): every example is task.plain (no pattern), for
 * tasks that have plain inputs; the others draw their usual mix.
 */
import type { HostTensor } from '../runtime/runner';
import type { Task } from '../tasks/task';
import type { Rng } from '../util/rng';

export const IGNORE_INDEX = -100;

export function trainBatch(task: Task, rng: Rng, batch: number, T: number, plainOnly = false): { ids: HostTensor; targets: HostTensor } {
  const draw = plainOnly && task.plain ? (r: Rng) => task.plain!(r) : (r: Rng) => task.train(r);
  const ids = new BigInt64Array(batch * T);
  const targets = new BigInt64Array(batch * T).fill(BigInt(IGNORE_INDEX));
  const pad = BigInt(task.tokenizer.padId);
  for (let b = 0; b < batch; b++) {
    const { ids: seq, promptLength } = task.tokenizer.encodeExample(draw(rng));
    if (seq.length > T + 1) throw new Error(`example of ${seq.length} tokens exceeds the training length ${T + 1}`);
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = t < seq.length ? BigInt(seq[t]) : pad;
      if (t + 1 >= promptLength && t + 1 < seq.length) targets[b * T + t] = BigInt(seq[t + 1]);
    }
  }
  return { ids: { data: ids, dims: [batch, T] }, targets: { data: targets, dims: [batch, T] } };
}
