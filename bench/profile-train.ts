/**
 * `npm run profile:train`: where the time of a GPT-2 training run goes (issue 17, docs/performance.md).
 * The trainer's own step (engine/train/trainer.ts) on its task's batches, timed part by part over
 * --steps steps after 3 warm-up steps, one thread count, nothing else measured at the same time:
 *   data      trainBatch: drawing and encoding the batch in JS
 *   run       TrainStep.run: one onnxruntime session.run (forward, loss, every gradient), with the
 *             feeds wrapped and the outputs read back
 *   optim     Adam.clipAndStep: gradient clipping and Adam (WebAssembly, train/adam.wat)
 *   eval      one evaluation as the trainer runs it every --eval-every steps (evaluateFresh: the test
 *             set and the plain set, greedy), spread over the steps it covers:
 *             eval share = eval seconds / (evalEvery * step seconds + eval seconds)
 * Inside `run`, onnxruntime's own profile (RunnerOptions.profile) of the timed steps, summed by
 * operator type (after onnxruntime's fusions, so forward and backward nodes share types):
 *   kernel share of an op type = its summed node time / the summed `model_run` time
 *   forward share = seconds of a loss-only session on the same batches / seconds of `run`
 *   run overhead = session.run seconds (ours) - the profile's model_run time (feeds, output copies)
 *   the step's ceiling = model FLOPs of a step / the products' (Gemm, FusedMatMul, MatMul) kernel
 *   seconds: the model FLOP/s if everything but the products took no time
 * Efficiency: model FLOP/s = tokens/s * (6 N + 12 L T d) (measure.ts) against the MatMul row's
 * GFLOP/s measured in the same process, same threads.
 * Usage: node dist/profile-train.js [--task arithmetic] [--preset tiny|small] [--steps 20]
 *        [--threads 2] [--json FILE] [--nodes N: also print the N slowest nodes with their output shapes]
 *        [--shape tiny|small: the bench's train row instead (bench/measure.ts GPT2_SHAPES: random ids, no evaluation)]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Graph, ops } from '../engine/graph';
import { writeFileAtomic } from '../engine/io/atomic';
import { trainConfigFromArgs } from '../engine/cli/commands/train';
import { GPT2Inference } from '../engine/models/gpt2-infer';
import { gpt2Forward, gpt2ParamInputs, initGPT2 } from '../engine/models/gpt2';
import { paramFeeds } from '../engine/io/params';
import { Runner } from '../engine/runtime/runner';
import { makeTask, taskOptions } from '../engine/tasks';
import { trainBatch } from '../engine/train/data';
import { PLAIN_N, evaluateFresh, plainSet, testSet } from '../engine/train/evaluate';
import { Adam } from '../engine/train/optim';
import { TrainStep } from '../engine/train/step';
import { Rng } from '../engine/util/rng';
import { GPT2_SHAPES, matmulGflops, randomTrainBatch, shapeConfig, trainFlopsPerToken } from './measure';

interface ProfileEvent {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string; output_type_shape?: unknown };
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({ options: {
    task: { type: 'string', default: 'arithmetic' }, preset: { type: 'string', default: 'tiny' }, steps: { type: 'string', default: '20' },
    threads: { type: 'string', default: '2' }, json: { type: 'string' }, nodes: { type: 'string', default: '0' }, shape: { type: 'string' },
  } });
  const steps = Number(v.steps);
  const threads = Number(v.threads);
  const cfg = trainConfigFromArgs(['--task', v.task!, '--preset', v.preset!, '--threads', String(threads), '--out', os.tmpdir()]);
  const task = makeTask(cfg.task, taskOptions(cfg));
  const rng = new Rng(1);
  // the trainer's model and batches, or with --shape the bench's train row (random ids, no evaluation)
  const shape = v.shape === undefined ? undefined : GPT2_SHAPES.find((s) => s.label === v.shape);
  if (v.shape !== undefined && !shape) throw new Error(`--shape ${v.shape}: one of ${GPT2_SHAPES.map((s) => s.label).join(', ')}`);
  const model = shape ? shapeConfig(shape) : { ...cfg.model, vocabSize: task.tokenizer.vocab.length, nPositions: cfg.seqLen };
  const [batchSize, seqLen] = shape ? [shape.B, shape.T] : [cfg.batch, cfg.seqLen];
  const nextBatch = shape ? () => randomTrainBatch(shape, rng) : () => trainBatch(task, rng, batchSize, seqLen);
  const params = initGPT2(model, new Rng(cfg.seed));
  const adam = new Adam(params, { lr: cfg.lr, weightDecay: cfg.weightDecay });
  const prefix = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-profile-')), 'train');

  const g = new Graph('gpt2_train');
  const ids = g.input('ids', [batchSize, seqLen], 'int64');
  const targets = g.input('targets', [batchSize, seqLen], 'int64');
  const step = await TrainStep.compile(g, ops.crossEntropy(gpt2Forward(model, gpt2ParamInputs(g, model), ids), targets), { threads, profile: prefix });
  const parts = { data: 0, run: 0, optim: 0 };
  const oneStep = async (timed: boolean) => {
    let t = performance.now();
    const lap = (k: keyof typeof parts) => {
      const now = performance.now();
      if (timed) parts[k] += (now - t) / 1000;
      t = now;
    };
    const batch = nextBatch();
    lap('data');
    const { grads } = await step.run(params, batch);
    lap('run');
    adam.clipAndStep(params, grads, cfg.lr, cfg.clip);
    lap('optim');
  };
  for (let i = 0; i < 3; i++) await oneStep(false);
  for (let i = 0; i < steps; i++) await oneStep(true);
  step.endProfiling();
  await step.release();

  // onnxruntime's profile: the warm-up runs are in it too; keep the last `steps` model_run events and the nodes inside them
  const file = fs.readdirSync(path.dirname(prefix)).filter((f) => f.startsWith('train') && f.endsWith('.json')).map((f) => path.join(path.dirname(prefix), f))[0];
  const events = JSON.parse(fs.readFileSync(file, 'utf8')) as (ProfileEvent & { ts: number })[];
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(-steps);
  const from = runs[0].ts;
  const byOp = new Map<string, { seconds: number; nodes: number }>();
  const byNode = new Map<string, { op: string; seconds: number; shape: string }>();
  for (const e of events) {
    if (e.cat !== 'Node' || e.ts < from || !e.name.endsWith('_kernel_time')) continue;
    const op = e.args?.op_name ?? '?';
    const row = byOp.get(op) ?? { seconds: 0, nodes: 0 };
    row.seconds += e.dur / 1e6;
    row.nodes++;
    byOp.set(op, row);
    const node = byNode.get(e.name) ?? { op, seconds: 0, shape: JSON.stringify(e.args?.output_type_shape ?? '') };
    node.seconds += e.dur / 1e6;
    byNode.set(e.name, node);
  }
  const modelRun = runs.reduce((s, e) => s + e.dur / 1e6, 0);
  const kernels = [...byOp.values()].reduce((s, r) => s + r.seconds, 0);

  // the forward pass alone: the same graph with the loss as its only output
  const fg = new Graph('gpt2_forward');
  fg.output(ops.crossEntropy(gpt2Forward(model, gpt2ParamInputs(fg, model), fg.input('ids', [batchSize, seqLen], 'int64')), fg.input('targets', [batchSize, seqLen], 'int64')), 'loss');
  const forward = await Runner.fromGraph(fg, { threads });
  const batches = Array.from({ length: steps }, () => nextBatch());
  await forward.run({ ...paramFeeds(params), ...batches[0] });
  let forwardSeconds = 0;
  for (const b of batches) {
    const t = performance.now();
    await forward.run({ ...paramFeeds(params), ...b });
    forwardSeconds += (performance.now() - t) / 1000;
  }
  await forward.release();

  // one evaluation, as the trainer runs it
  const t0 = performance.now();
  if (!shape) await evaluateFresh(task, () => GPT2Inference.create(model, params, { runner: { threads }, batchSize: cfg.evalBatch }), testSet(task, cfg.evalN, cfg.seed), plainSet(task, PLAIN_N, cfg.seed));
  const evalSeconds = shape ? 0 : (performance.now() - t0) / 1000;

  const stepSeconds = (parts.data + parts.run + parts.optim) / steps;
  const tokensPerSecond = (batchSize * seqLen) / stepSeconds;
  const flops = tokensPerSecond * trainFlopsPerToken({ L: model.nLayer, D: model.nEmbd, T: seqLen, V: model.vocabSize });
  const mm = await matmulGflops(threads);
  const pct = (x: number, of: number) => `${((100 * x) / of).toFixed(1)}%`;
  const ops_ = [...byOp.entries()].sort((a, b) => b[1].seconds - a[1].seconds);
  const lines = [
    `GPT-2 ${shape ? `the bench's ${shape.label} train row, random ids, vocab ${shape.V}` : `${cfg.preset} on ${cfg.task}`} (${model.nLayer} x ${model.nEmbd}, batch ${batchSize} x T=${seqLen}), ${threads} threads, ${steps} steps`,
    `step ${(1000 * stepSeconds).toFixed(1)} ms = ${tokensPerSecond.toFixed(0)} tokens/s = ${(flops / 1e9).toFixed(1)} GFLOP/s of model FLOPs = ${pct(flops / 1e9, mm)} of MatMul [512,768]x[768,3072] (${mm.toFixed(1)} GFLOP/s, same threads)`,
    ...Object.entries(parts).map(([k, s]) => `  ${k.padEnd(6)} ${(1000 * s / steps).toFixed(2).padStart(8)} ms  ${pct(s, stepSeconds * steps)}`),
    `  in run: onnxruntime model_run ${(1000 * modelRun / steps).toFixed(2)} ms (${pct(modelRun, parts.run)} of run; the rest is feeds and output copies), kernels ${pct(kernels, modelRun)} of model_run`,
    `  forward alone (loss only): ${(1000 * forwardSeconds / steps).toFixed(2)} ms = ${pct(forwardSeconds, parts.run)} of run; backward the rest`,
    ...(shape ? [] : [`  evaluation every ${cfg.evalEvery} steps: ${evalSeconds.toFixed(1)} s = ${pct(evalSeconds, cfg.evalEvery * stepSeconds + evalSeconds)} of training time`]),
    '  op type: ms per step (share of model_run), nodes per step',
    ...ops_.slice(0, 14).map(([op, r]) => `    ${op.padEnd(26)} ${(1000 * r.seconds / steps).toFixed(2).padStart(7)}  (${pct(r.seconds, modelRun)})  ${(r.nodes / steps).toFixed(0)}`),
  ];
  // the ceiling: the model FLOPs over the products' kernel time alone, as if nothing else took time
  const products = ['Gemm', 'FusedMatMul', 'MatMul'].reduce((t, op) => t + (byOp.get(op)?.seconds ?? 0), 0) / steps;
  const productGflops = (flops / tokensPerSecond) * batchSize * seqLen / products / 1e9;
  lines.push(`  the products (Gemm, FusedMatMul, MatMul) ${(1000 * products).toFixed(2)} ms: model FLOPs over their time alone = ${productGflops.toFixed(1)} GFLOP/s = ${pct(productGflops, mm)} of the MatMul row (the step's ceiling)`);
  const slowest = [...byNode.entries()].sort((a, b) => b[1].seconds - a[1].seconds).slice(0, Number(v.nodes));
  if (slowest.length) lines.push(`  the ${slowest.length} slowest nodes: ms per step, op, node, output shape`,
    ...slowest.map(([name, r]) => `    ${(1000 * r.seconds / steps).toFixed(3).padStart(7)}  ${r.op.padEnd(12)} ${name.replace(/_kernel_time$/, '').slice(0, 48).padEnd(48)} ${r.shape.slice(0, 70)}`));
  console.log(lines.join('\n'));
  if (v.json) {
    writeFileAtomic(v.json, JSON.stringify({
      task: shape ? 'random ids' : cfg.task, preset: cfg.preset, shape: shape ?? null, batch: batchSize, seqLen, threads, steps, cpu: os.cpus()[0]?.model, stepSeconds, tokensPerSecond, modelGflops: flops / 1e9, matmulGflops: mm,
      parts: Object.fromEntries(Object.entries(parts).map(([k, s]) => [k, s / steps])), modelRunSeconds: modelRun / steps, kernelSeconds: kernels / steps,
      forwardSeconds: forwardSeconds / steps, evalSeconds, evalEvery: cfg.evalEvery, productSeconds: products, productGflops,
      ops: Object.fromEntries(ops_.map(([op, r]) => [op, { seconds: r.seconds / steps, nodes: r.nodes / steps }])),
    }, null, 2) + '\n');
  }
  fs.rmSync(path.dirname(prefix), { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
