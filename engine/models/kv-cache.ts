/**
 * The host side of K/V-cached greedy decoding, shared by GPT-2 (gpt2-infer.ts) and LLaMA
 * (llama-infer.ts).
 *
 * KVCache: one batch's keys and values per layer, position-major [P, B, KVH, hd] (KVH = the key/value
 * heads: H for GPT-2, num_key_value_heads for LLaMA) in buffers with room for `capacity` positions.
 * The graphs return new.{l}.key / new.{l}.value [t, B, KVH, hd] for the t positions they computed;
 * appending them is one copy, and the past is fed as past.{l}.key / past.{l}.value views of the filled
 * part, without copying (fetching the whole cache back at every step, HF's `present`, cost 2/3 of a
 * GPT-2 decode step at batch 64). Rows of finished sequences are dropped with keepRows.
 *
 * argmaxRow: greedy choice, the index of the largest logit of a row, ties to the lowest id.
 * SteerFeeds: the steer.{i} feeds of a prefill and of the decode steps after it (hooks.ts SteerAt).
 */
import type { HostTensor } from '../runtime/runner';
import type { SteerAt } from './hooks';

/** The steer feeds of a prefill (`prompt`) and of the decode steps after it (`decode`: zeros with steerAt 'prompt'). */
export interface SteerFeeds {
  prompt: Record<string, HostTensor>;
  decode: Record<string, HostTensor>;
}

/** The feeds of `steer` where steerAt puts them; `feedsOf(undefined)` gives the zero feeds. */
export function steerFeedsAt(feedsOf: (steer?: Float32Array[]) => Record<string, HostTensor>, steer: Float32Array[] | undefined, at: SteerAt = 'all'): SteerFeeds {
  const feeds = feedsOf(steer);
  return { prompt: feeds, decode: at === 'all' ? feeds : feedsOf(undefined) };
}

export const pastName = (layer: number, kind: 'key' | 'value'): string => `past.${layer}.${kind}`;
export const newName = (layer: number, kind: 'key' | 'value'): string => `new.${layer}.${kind}`;

export class KVCache {
  private bufs: Float32Array[];
  length = 0;
  private readonly width: number;

  constructor(
    private readonly layers: number,
    private readonly kvHeads: number,
    private readonly headDim: number,
    private batch: number,
    private readonly capacity: number,
  ) {
    this.width = kvHeads * headDim;
    this.bufs = Array.from({ length: 2 * layers }, () => new Float32Array(capacity * batch * this.width));
  }

  /** Appends the new.{l}.key / new.{l}.value outputs of a run, [t, B, KVH, hd] each. */
  append(out: Record<string, HostTensor>): void {
    const t = out[newName(0, 'key')].dims[0];
    if (this.length + t > this.capacity) throw new Error(`K/V cache overflow: ${this.length} + ${t} > ${this.capacity} positions`);
    const at = this.length * this.batch * this.width;
    for (let l = 0; l < this.layers; l++) {
      this.bufs[2 * l].set(out[newName(l, 'key')].data as Float32Array, at);
      this.bufs[2 * l + 1].set(out[newName(l, 'value')].data as Float32Array, at);
    }
    this.length += t;
  }

  /** past.{l}.key / past.{l}.value feeds: views of the filled part (zero positions before the first append). */
  feeds(): Record<string, HostTensor> {
    const dims = [this.length, this.batch, this.kvHeads, this.headDim];
    const n = this.length * this.batch * this.width;
    const f: Record<string, HostTensor> = {};
    for (let l = 0; l < this.layers; l++) {
      f[pastName(l, 'key')] = { data: this.bufs[2 * l].subarray(0, n), dims };
      f[pastName(l, 'value')] = { data: this.bufs[2 * l + 1].subarray(0, n), dims };
    }
    return f;
  }

  /** Keeps batch rows `rows` (in that order), drops the others. */
  keepRows(rows: readonly number[]): void {
    const w = this.width;
    this.bufs = this.bufs.map((src) => {
      const dst = new Float32Array(this.capacity * rows.length * w);
      for (let p = 0; p < this.length; p++) {
        rows.forEach((r, k) => dst.set(src.subarray((p * this.batch + r) * w, (p * this.batch + r + 1) * w), (p * rows.length + k) * w));
      }
      return dst;
    });
    this.batch = rows.length;
  }
}

/** Greedy choice: the index of the largest of row r of logits [rows, V], ties to the lowest. */
export function argmaxRow(logits: Float32Array, r: number, V: number): number {
  let best = 0;
  let bestV = logits[r * V];
  for (let j = 1; j < V; j++) {
    const v = logits[r * V + j];
    if (v > bestV) {
      bestV = v;
      best = j;
    }
  }
  return best;
}

