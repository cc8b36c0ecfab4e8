/** One writer per run (engine/runs/lock.ts): refused while another job holds the run, stale locks taken over. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireRunLock, lockFile } from '../../engine/runs/lock';
import { defaultPretrainConfig, pretrain } from '../../engine/train/llama-pretrain';

let tmp: string;
let sleeper: ChildProcess;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-lock-'));
  sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
});
afterAll(() => {
  sleeper.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

const plant = (run: string, owner: Record<string, unknown>) => fs.writeFileSync(lockFile(run), JSON.stringify(owner));
const liveOwner = () => ({ pid: sleeper.pid, host: os.hostname(), command: 'memgen train --out runs/x', startedAt: '2026-12-03T05:00:00.000Z' });

describe('run lock', () => {
  it('refuses a second writer in the same process until the first releases', () => {
    const run = path.join(tmp, 'a');
    const lock = acquireRunLock(run, 'memgen analyze --run a');
    expect(fs.existsSync(lockFile(run))).toBe(true);
    expect(() => acquireRunLock(run, 'memgen steer-eval --run a')).toThrow(/in use: this process already runs memgen analyze --run a/);
    lock.release();
    expect(fs.existsSync(lockFile(run))).toBe(false);
    acquireRunLock(run, 'memgen steer-eval --run a').release();
  });

  it('names the live process that holds the run, and leaves its lock alone', () => {
    const run = path.join(tmp, 'b');
    plant(run, liveOwner());
    expect(() => acquireRunLock(run, 'memgen analyze --run b')).toThrow(`is in use: memgen train --out runs/x (pid ${sleeper.pid} on ${os.hostname()}, since 2026-12-03T05:00:00.000Z) is writing it`);
    expect(JSON.parse(fs.readFileSync(lockFile(run), 'utf8')).pid).toBe(sleeper.pid);
  });

  it('takes over the lock of a dead process (kill -9) or an unreadable one, with a message', () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const run = path.join(tmp, 'c');
    plant(run, { ...liveOwner(), pid: Number(dead.stdout.toString()) });
    const said: string[] = [];
    const lock = acquireRunLock(run, 'memgen train --resume', (m) => said.push(m));
    expect(said[0]).toMatch(/taking over the stale lock .*c\.lock of memgen train --out runs\/x \(pid \d+ .*\), which is no longer running/);
    expect(JSON.parse(fs.readFileSync(lock.file, 'utf8'))).toMatchObject({ pid: process.pid, command: 'memgen train --resume' });
    lock.release();
    fs.writeFileSync(lockFile(run), '{"pid": 1');
    acquireRunLock(run, 'x', (m) => said.push(m)).release();
    expect(said[1]).toMatch(/\(unreadable\)/);
  });

  it('refuses a lock from another host and says which file to delete', () => {
    const run = path.join(tmp, 'd');
    plant(run, { ...liveOwner(), host: 'node-17.cluster' });
    expect(() => acquireRunLock(run, 'x')).toThrow(`; if that job is gone, delete ${lockFile(run)}`);
  });

  it('training and the CLI commands refuse a run another job writes, naming it on the last line', async () => {
    const run = path.join(tmp, 'e');
    plant(run, liveOwner());
    await expect(pretrain({ ...defaultPretrainConfig('tiny', run), steps: 1 })).rejects.toThrow(`pid ${sleeper.pid}`);
    for (const cmd of [['analyze', '--run', run], ['steer-eval', '--run', run], ['sweep', `--run=${run}`]]) {
      const r = spawnSync(process.execPath, [path.resolve('dist/cli.js'), ...cmd], { encoding: 'utf8' });
      expect(r.status).not.toBe(0);
      const last = r.stderr.trim().split('\n').pop() ?? '';
      expect(last).toContain(`is in use: memgen train --out runs/x (pid ${sleeper.pid}`);
    }
    expect(fs.existsSync(run)).toBe(false); // nothing was written
  });
});
