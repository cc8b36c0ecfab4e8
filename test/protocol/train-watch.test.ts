/**
 * The Training panel's feed (server/src/train-watch.ts): a real child process stands in for
 * `memgen train`; lines appended to RUN/train-log.jsonl (as the trainer writes them, a partial last
 * line included) come out as points in order; pause / resume / cancel reach the child as SIGSTOP /
 * SIGCONT / SIGINT; the state follows.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TrainCurvePoint, TrainState } from '../../server/src/protocol';
import { TrainWatch, curvePoint, readTrainLog } from '../../server/src/train-watch';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('curvePoint', () => {
  it('reads train and eval lines of train-log.jsonl and skips others', () => {
    expect(curvePoint('r', '{"step":10,"kind":"train","loss":2.43,"lr":0.0003}')).toEqual({ run: 'r', step: 10, kind: 'train', loss: 2.43, gen: null, mem: null, other: null });
    expect(curvePoint('r', '{"step":250,"kind":"eval","gen":0.012,"mem":0,"other":0.988}')).toMatchObject({ kind: 'eval', gen: 0.012, mem: 0, other: 0.988, loss: null });
    expect(curvePoint('r', 'not json')).toBeNull();
    expect(curvePoint('r', '{"kind":"train"}')).toBeNull();
    expect(curvePoint('r', '{"step":1,"kind":"resume"}')).toBeNull();
  });

  it('reads the committed run with its stop rule', () => {
    const log = readTrainLog(path.resolve(__dirname, '../../runs/arithmetic-tiny'));
    expect(log.stopWhenBoth).toBe(0.3);
    expect(log.steps).toBe(5000);
    const lines = fs.readFileSync(path.resolve(__dirname, '../../runs/arithmetic-tiny/train-log.jsonl'), 'utf8').trim().split('\n');
    expect(log.points.length).toBe(lines.length);
  });
});

describe('TrainWatch', () => {
  it('streams appended lines and controls the child', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-watch-'));
    const points: TrainCurvePoint[] = [];
    const states: TrainState[] = [];
    const w = new TrainWatch((p) => points.push(p), (s) => states.push(s));
    const child = spawn(process.execPath, ['-e', 'process.on("SIGINT", () => process.exit(130)); setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    await sleep(200);
    w.start(dir, child, 0.3);
    expect(w.state).toMatchObject({ state: 'running', stopWhenBoth: 0.3 });
    const log = path.join(dir, 'train-log.jsonl');
    fs.appendFileSync(log, '{"step":10,"kind":"train","loss":2.5}\n{"step":20,"kind":"train","lo');
    await sleep(900);
    expect(points.map((p) => p.step)).toEqual([10]);
    fs.appendFileSync(log, 'ss":2.1}\n{"step":250,"kind":"eval","gen":0.2,"mem":0.1,"other":0.7}\n');
    await sleep(900);
    expect(points.map((p) => [p.step, p.kind])).toEqual([[10, 'train'], [20, 'train'], [250, 'eval']]);
    expect(points[1].loss).toBe(2.1);
    expect(w.points).toHaveLength(3);

    expect(w.control('pause').state).toBe('paused');
    expect(w.control('resume').state).toBe('running');
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    w.control('cancel');
    expect(await exited).toBe(130);
    w.finish(130, true);
    expect(w.state.state).toBe('cancelled');
    expect(() => w.control('pause')).toThrow(/no training job/);
    expect(states.map((s) => s.state)).toEqual(['running', 'paused', 'running', 'running', 'cancelled']);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
