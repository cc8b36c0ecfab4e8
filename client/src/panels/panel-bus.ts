/**
 * What the panels share inside the extension: the custom steering set (kept in workspace state,
 * one set per run: its neurons are (layer, index) of that run's analysis), the last steer result,
 * and the training feed (memgen/trainCurve, memgen/trainState from the server). Panel hosts
 * subscribe; the steer command reads the custom set and reports its result here.
 */
import * as vscode from 'vscode';
import type { NeuronRef, PromptRef, SteerResult, TrainCurvePoint, TrainState } from '../../../server/src/protocol';

const CUSTOM_KEY = 'memgen.customSteeringSet';

/** A neuron of a run folder. */
export interface NeuronOfRun extends NeuronRef {
  run: string;
}

export interface CustomSet {
  run: string;
  neurons: NeuronRef[];
}

export class PanelBus implements vscode.Disposable {
  private readonly customEmitter = new vscode.EventEmitter<CustomSet | null>();
  private readonly steerEmitter = new vscode.EventEmitter<SteerResult>();
  private readonly pointEmitter = new vscode.EventEmitter<TrainCurvePoint>();
  private readonly stateEmitter = new vscode.EventEmitter<TrainState>();
  private readonly neuronEmitter = new vscode.EventEmitter<NeuronOfRun>();
  readonly onCustomSet = this.customEmitter.event;
  readonly onSteer = this.steerEmitter.event;
  readonly onTrainPoint = this.pointEmitter.event;
  readonly onTrainState = this.stateEmitter.event;
  /** A neuron to show in the Neurons panel (a hover link); `pendingNeuron` keeps it until a panel takes it. */
  readonly onShowNeuron = this.neuronEmitter.event;
  pendingNeuron: NeuronOfRun | null = null;
  lastSteer: SteerResult | null = null;
  /** The prompt last steered, or under the cursor last (the inspector steers one neuron on it). */
  lastPrompt: PromptRef | null = null;

  constructor(private readonly state: vscode.Memento) {}

  get custom(): CustomSet | null {
    return this.state.get<CustomSet | null>(CUSTOM_KEY, null);
  }

  /** Adds or removes a neuron of `run`; a neuron of another run starts a new set. */
  async updateCustom(run: string, action: 'add' | 'remove' | 'clear', n: NeuronRef): Promise<CustomSet | null> {
    const cur = this.custom;
    let neurons = cur && cur.run === run ? cur.neurons : [];
    const same = (x: NeuronRef) => x.layer === n.layer && x.index === n.index;
    if (action === 'clear') neurons = [];
    else if (action === 'add' && !neurons.some(same)) neurons = [...neurons, { layer: n.layer, index: n.index }];
    else if (action === 'remove') neurons = neurons.filter((x) => !same(x));
    const next = neurons.length > 0 ? { run, neurons } : null;
    await this.state.update(CUSTOM_KEY, next);
    this.customEmitter.fire(next);
    return next;
  }

  steered(r: SteerResult, ref: PromptRef): void {
    this.lastSteer = r;
    this.lastPrompt = { uri: ref.uri, line: ref.line };
    this.steerEmitter.fire(r);
  }

  showNeuron(n: NeuronOfRun): void {
    this.pendingNeuron = n;
    this.neuronEmitter.fire(n);
  }

  /** The pending neuron, once: the Neurons panel that shows it takes it. */
  takeNeuron(): NeuronOfRun | null {
    const n = this.pendingNeuron;
    this.pendingNeuron = null;
    return n;
  }

  trainPoint(p: TrainCurvePoint): void {
    this.pointEmitter.fire(p);
  }

  trainState(s: TrainState): void {
    this.stateEmitter.fire(s);
  }

  dispose(): void {
    for (const e of [this.customEmitter, this.steerEmitter, this.pointEmitter, this.stateEmitter, this.neuronEmitter]) e.dispose();
  }
}
