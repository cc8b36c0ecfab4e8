/**
 * A compiled training step: one onnxruntime session that takes the parameters and a batch and
 * returns the loss and the gradient of every parameter (graph outputs 'loss' and 'grad.<name>').
 * The optimiser update runs in JS (optim.ts) between steps.
 */
import { type Graph, type Tensor, grad } from '../graph';
import { paramFeeds, type ParamSet } from '../io/params';
import { Runner, type HostTensor, type RunnerOptions } from '../runtime/runner';

export const gradName = (param: string): string => `grad.${param}`;

/** Appends the gradients of `loss` w.r.t. every graph parameter and marks loss and gradients as outputs. */
export function addLossAndGradients(g: Graph, loss: Tensor): void {
  const grads = grad(loss, g.params);
  g.output(loss, 'loss');
  g.params.forEach((p, i) => g.output(grads[i], gradName(p.name)));
}

export class TrainStep {
  private constructor(private readonly runner: Runner, readonly paramNames: string[]) {}

  /** Compiles a graph whose parameters are g.params and whose scalar loss is `loss`. */
  static async compile(g: Graph, loss: Tensor, opts: RunnerOptions = {}): Promise<TrainStep> {
    addLossAndGradients(g, loss);
    return new TrainStep(await Runner.fromGraph(g, opts), g.params.map((p) => p.name));
  }

  async run(params: ParamSet, batch: Record<string, HostTensor>): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
    const out = await this.runner.run({ ...paramFeeds(params), ...batch });
    const grads = new Map<string, Float32Array>();
    for (const name of this.paramNames) grads.set(name, out[gradName(name)].data as Float32Array);
    return { loss: Number(out.loss.data[0]), grads };
  }

  /** See Runner.endProfiling. */
  endProfiling(): void {
    this.runner.endProfiling();
  }

  release(): Promise<void> {
    return this.runner.release();
  }
}
