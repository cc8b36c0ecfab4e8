/**
 * Live training for the Training panel: while a `memgen train` child runs, RUN/train-log.jsonl
 * (one JSON object per logged step or evaluation, engine/runs/run.ts) is read as it grows and each
 * new line goes to the client as a TrainCurvePoint; pause / resume / cancel act on the child
 * (SIGSTOP / SIGCONT / SIGINT, on which the CLI saves a checkpoint).
 *
 * The file is polled (every POLL_MS) from the byte offset reached so far; a partial last line waits
 * for its newline. A --force run truncates the file first: a shorter file starts over at 0.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TrainControl, TrainCurvePoint, TrainLogResult, TrainState } from './protocol';

const POLL_MS = 500;

/** A train-log.jsonl line as a point, or null for lines of another kind. */
export function curvePoint(run: string, line: string): TrainCurvePoint | null {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
  const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  const step = num(o.step);
  if (step === null || (o.kind !== 'train' && o.kind !== 'eval')) return null;
  return { run, step, kind: o.kind, loss: num(o.loss), gen: num(o.gen), mem: num(o.mem), other: num(o.other) };
}

/** steps and stopWhenBoth of a run's manifest.json (train section), null while it is not written. */
export function trainSettings(runDir: string): { steps: number | null; stopWhenBoth: number | null } | null {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(runDir, 'manifest.json'), 'utf8')) as { train?: { steps?: number; stopWhenBoth?: number | null } };
    return { steps: m.train?.steps ?? null, stopWhenBoth: m.train?.stopWhenBoth ?? null };
  } catch {
    return null;
  }
}

/** A finished (or running) run's whole curve, for the Training panel's run picker. */
export function readTrainLog(runDir: string): TrainLogResult {
  const file = path.join(runDir, 'train-log.jsonl');
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: this run has not been trained (MemGen: Train Model...)`);
  const points = fs.readFileSync(file, 'utf8').split('\n').flatMap((l) => curvePoint(runDir, l) ?? []);
  const t = trainSettings(runDir);
  return { run: runDir, points, steps: t?.steps ?? null, stopWhenBoth: t?.stopWhenBoth ?? null };
}

export class TrainWatch {
  private child: ChildProcess | null = null;
  private timer: NodeJS.Timeout | null = null;
  private offset = 0;
  private rest = '';
  private current: TrainState = { run: null, state: 'idle', stopWhenBoth: null, steps: null, message: 'no training job' };
  /** Every point of the current run so far, so that a panel opened late draws the whole curve. */
  readonly points: TrainCurvePoint[] = [];

  constructor(private readonly onPoint: (p: TrainCurvePoint) => void, private readonly onState: (s: TrainState) => void) {}

  get state(): TrainState {
    return this.current;
  }

  start(runDir: string, child: ChildProcess, stopWhenBoth: number | null): void {
    this.stopTimer();
    this.child = child;
    this.offset = 0;
    this.rest = '';
    this.points.length = 0;
    const file = path.join(runDir, 'train-log.jsonl');
    this.setState({ run: runDir, state: 'running', stopWhenBoth, steps: null, message: `training ${path.basename(runDir)}` });
    this.timer = setInterval(() => this.poll(runDir, file), POLL_MS);
  }

  /** The child exited: read what is left and report how it ended. */
  finish(exitCode: number, cancelled: boolean): void {
    if (this.current.run) this.poll(this.current.run, path.join(this.current.run, 'train-log.jsonl'));
    this.stopTimer();
    this.child = null;
    this.setState({ ...this.current, state: cancelled ? 'cancelled' : exitCode === 0 ? 'finished' : 'failed', message: cancelled ? 'stopped (checkpoint saved)' : exitCode === 0 ? 'finished' : `exit code ${exitCode}` });
  }

  control(action: TrainControl): TrainState {
    const c = this.child;
    if (!c || c.exitCode !== null) throw new Error('no training job is running');
    if (action === 'pause' && this.current.state === 'running') {
      c.kill('SIGSTOP');
      this.setState({ ...this.current, state: 'paused', message: 'paused' });
    } else if (action === 'resume' && this.current.state === 'paused') {
      c.kill('SIGCONT');
      this.setState({ ...this.current, state: 'running', message: 'running' });
    } else if (action === 'cancel') {
      if (this.current.state === 'paused') c.kill('SIGCONT');
      c.kill('SIGINT');
      this.setState({ ...this.current, message: 'stopping: saving a checkpoint' });
    }
    return this.current;
  }

  private setState(s: TrainState): void {
    this.current = s;
    this.onState(s);
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private poll(run: string, file: string): void {
    let size: number;
    try {
      size = fs.statSync(file).size;
    } catch {
      return; // not written yet
    }
    if (size < this.offset) {
      this.offset = 0;
      this.rest = '';
    }
    if (this.current.steps === null) {
      const t = trainSettings(run);
      if (t) this.setState({ ...this.current, steps: t.steps, stopWhenBoth: this.current.stopWhenBoth ?? t.stopWhenBoth });
    }
    if (size === this.offset) return;
    const fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(size - this.offset);
    try {
      fs.readSync(fd, buf, 0, buf.length, this.offset);
    } finally {
      fs.closeSync(fd);
    }
    this.offset = size;
    const lines = (this.rest + buf.toString('utf8')).split('\n');
    this.rest = lines.pop() ?? '';
    for (const line of lines) {
      const p = curvePoint(run, line);
      if (!p) continue;
      this.points.push(p);
      this.onPoint(p);
    }
  }
}
