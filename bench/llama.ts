/**
 * LLaMA rows of `npm run bench` (issue: the second system), same shapes as the PyTorch peer
 * (bench/peers/torch_llama.py), measured in the same run, alternately with it (measure.ts measurePair):
 *   tokens/s of a LoRA step = batch * T / seconds per step (adapter gradients, clipping and JS Adam
 *                             included; base weights frozen as initializers)
 *   tokens/s of a forward   = batch * T / seconds per forward (logits of every position)
 *   memory                  = this process's resident set after the row (MiB), which holds the JS
 *                             weights and onnxruntime's copy of them
 * Shapes: a tiny LLaMA (the size of a CPU stand-in base) and LLaMA-3.2-1B's (hidden 2048, 16 layers,
 * 32 heads, 8 KV heads, MLP 8192, vocabulary 128256, tied embeddings) with random weights, forward
 * only: its LoRA step graph with 1.2 B frozen float32 weights plus activations does not fit beside
 * the rest of the benchmark in 24 GiB.
 */
import * as path from 'node:path';
import { Graph } from '../engine/graph';
import { type LlamaConfig, initLlama, llamaForward, llamaParamInitializers } from '../engine/models/llama';
import { LORA_DEFAULTS } from '../engine/models/lora';
import { LoraTrainer } from '../engine/train/lora-train';
import { runnerForGraph } from '../engine/io/onnx-external';
import { Rng } from '../engine/util/rng';
import { type Row, measurePair } from './measure';

const PEER_SCRIPT = path.resolve(__dirname, '../bench/peers/torch_llama.py');

interface LlamaShape {
  label: string;
  L: number;
  D: number;
  H: number;
  KVH: number;
  HD: number;
  I: number;
  V: number;
  T: number;
  B: number;
}

const TINY: LlamaShape = { label: 'tiny', L: 4, D: 128, H: 4, KVH: 2, HD: 32, I: 344, V: 512, T: 64, B: 16 };
const LLAMA_1B: LlamaShape = { label: 'LLaMA-3.2-1B shape', L: 16, D: 2048, H: 32, KVH: 8, HD: 64, I: 8192, V: 128256, T: 128, B: 1 };

function config(s: LlamaShape): LlamaConfig {
  return {
    vocabSize: s.V, hiddenSize: s.D, intermediateSize: s.I, numLayers: s.L, numHeads: s.H, numKVHeads: s.KVH, headDim: s.HD,
    rmsNormEps: 1e-5, ropeTheta: 500000,
    ropeScaling: { ropeType: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    maxPositions: 131072, tieWordEmbeddings: true, bosTokenId: null, eosTokenIds: [0],
  };
}

const rssMiB = (): number => process.memoryUsage().rss / 2 ** 20;
const describe = (s: LlamaShape): string => `${s.label}: ${s.L} layers d=${s.D}, ${s.H}/${s.KVH} heads, MLP ${s.I}, vocab ${s.V}, batch ${s.B} x T=${s.T}`;

export async function llamaRows(threads: number): Promise<Row[]> {
  const rows: Row[] = [];
  const peer = (name: string, mode: string, s: LlamaShape, steps: number) =>
    ({ name, script: PEER_SCRIPT, args: [mode, s.L, s.D, s.H, s.KVH, s.HD, s.I, s.V, s.T, s.B, steps].map(String) });
  const randomIds = (rng: Rng, s: LlamaShape) => BigInt64Array.from({ length: s.B * s.T }, () => BigInt(rng.int(0, s.V - 1)));

  // LoRA step on the tiny shape: the paper's adapter (r 8, alpha 32, dropout 0.1, q_proj + v_proj), batch 16.
  {
    const s = TINY;
    const rng = new Rng(3);
    const cfg = config(s);
    const trainer = await LoraTrainer.create(cfg, initLlama(cfg, rng), LORA_DEFAULTS, { batch: s.B, seq: s.T, lr: 5e-5, runner: { threads } });
    const ids = randomIds(rng, s);
    const targets = randomIds(rng, s);
    const r = await measurePair({
      work: s.B * s.T, ours: () => trainer.step(ids, targets), warmup: 2, reps: 4,
      peer: peer('PyTorch (adapters only require grad)', 'lora', s, 2),
    });
    const mem = rssMiB();
    await trainer.release();
    rows.push({
      name: `LLaMA LoRA step (${describe(s)}), r 8 on q_proj/v_proj, incl. JS Adam`, value: r.value, unit: 'tokens/s', spread: r.spread, peer: r.peer,
      notes: `process RSS ${mem.toFixed(0)} MiB after the row`,
    });
  }

  // Forward of a LLaMA-3.2-1B-shaped model with random weights (external-data ONNX: over 2 GB).
  {
    const s = LLAMA_1B;
    const rng = new Rng(4);
    const cfg = config(s);
    const before = rssMiB();
    const g = new Graph('bench_llama_forward');
    const ids = g.input('input_ids', [s.B, s.T], 'int64');
    g.output(llamaForward(cfg, llamaParamInitializers(g, cfg, initLlama(cfg, rng)), ids), 'logits');
    const runner = await runnerForGraph(g, { threads, externalData: true });
    const feed = { input_ids: { data: randomIds(rng, s), dims: [s.B, s.T] } };
    const r = await measurePair({ work: s.B * s.T, ours: () => runner.run(feed), warmup: 1, reps: 1, peer: peer('PyTorch', 'forward', s, 1) });
    const mem = rssMiB();
    await runner.release();
    rows.push({
      name: `LLaMA forward (${describe(s)}), random weights, float32`, value: r.value, unit: 'tokens/s', spread: r.spread, peer: r.peer,
      notes: `process RSS ${mem.toFixed(0)} MiB after the row (${before.toFixed(0)} before it); LoRA training of this shape is not benchmarked (see the header)`,
    });
  }
  return rows;
}
