/**
 * One writer per run: a job that writes into a run (train, train --lora, pretrain, analyze,
 * steer-eval, sweep) first takes the lock file `RUN.lock` beside the run folder (beside it, so that
 * creating, replacing or renaming the folder cannot lose it). The file holds its owner:
 *   { pid, host, command, startedAt }
 * and is created whole or not at all (written to a temporary file, then hard-linked to its name,
 * which fails if the name exists: POSIX link(2) is atomic, as git's index.lock creation).
 * A second job on the same run is refused with a message naming the owner. A lock whose owner is
 * gone (same host, pid not alive: kill -9, a crash, a power cut) is stale: it is taken over, and the
 * `onStale` callback says so. A lock from another host cannot be checked: it is refused, and the
 * message says which file to delete if that job is gone. An unreadable lock (torn by a crash
 * between writing and linking cannot happen, but a hand-edited one can) counts as stale.
 * The lock is removed when the job ends (release(), or the process's exit). The temporary files of
 * jobs killed while taking it (RUN.lock.<pid>.<random>.tmp) are deleted by the next job that takes it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { processAlive } from '../io/atomic';
import { RunError } from './run';

export interface LockOwner {
  pid: number;
  host: string;
  command: string;
  startedAt: string;
}

export interface RunLock {
  readonly file: string;
  release(): void;
}

export const lockFile = (runDir: string): string => `${path.resolve(runDir)}.lock`;

const held = new Set<string>();
let exitHook = false;

/** The lock's own temporary files (`RUN.lock.<pid>.<random>.tmp[.stale]`) that dead jobs left beside it. */
function removeStaleLockTemps(file: string): void {
  const name = path.basename(file);
  const mine = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d+)\\.[0-9a-z]+\\.tmp(\\.stale)?$`);
  let names: string[];
  try {
    names = fs.readdirSync(path.dirname(file));
  } catch {
    return;
  }
  for (const n of names) {
    const m = mine.exec(n);
    if (m && !processAlive(Number(m[1]))) fs.rmSync(path.join(path.dirname(file), n), { force: true });
  }
}

function readOwner(file: string): LockOwner | null {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
    return Number.isInteger(o.pid) && typeof o.host === 'string' ? o : null;
  } catch {
    return null;
  }
}

const describe = (o: LockOwner): string => `${o.command} (pid ${o.pid} on ${o.host}, since ${o.startedAt})`;

/**
 * Takes the run's lock or throws a RunError naming the job that holds it (header). `command` is what
 * this job is, for the other job's message.
 */
export function acquireRunLock(runDir: string, command: string, onStale: (message: string) => void = () => {}): RunLock {
  const file = lockFile(runDir);
  const me: LockOwner = { pid: process.pid, host: os.hostname(), command, startedAt: new Date().toISOString() };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(me) + '\n');
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        fs.linkSync(tmp, file);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        if (attempt > 5) throw new RunError(`could not take ${file}: other jobs keep taking it; try again`);
      }
      const o = readOwner(file);
      const stale = o === null || (o.host === me.host && o.pid !== process.pid && !processAlive(o.pid));
      if (!stale) {
        const who = o.pid === process.pid && o.host === me.host ? `this process already runs ${o.command}` : `${describe(o)} is writing it`;
        const gone = o.host === me.host ? '' : `; if that job is gone, delete ${file}`;
        throw new RunError(`${path.resolve(runDir)} is in use: ${who}. Wait for it to finish or stop it${gone}`);
      }
      // move the stale lock aside, then check it is the one judged stale (another job may have taken it over meanwhile)
      const aside = `${tmp}.stale`;
      try {
        fs.renameSync(file, aside);
      } catch {
        continue; // gone already: try to link again
      }
      const moved = readOwner(aside);
      if (o !== null && (moved?.pid !== o.pid || moved.startedAt !== o.startedAt)) {
        try { fs.linkSync(aside, file); } catch { /* a third job holds it now; the next attempt sees it */ }
        fs.rmSync(aside, { force: true });
        continue;
      }
      fs.rmSync(aside, { force: true });
      onStale(`taking over the stale lock ${file}${o ? ` of ${describe(o)}, which is no longer running` : ' (unreadable)'}`);
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  held.add(file);
  removeStaleLockTemps(file);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => held.forEach((f) => fs.rmSync(f, { force: true })));
  }
  return {
    file,
    release() {
      if (!held.delete(file)) return;
      if (readOwner(file)?.pid === process.pid) fs.rmSync(file, { force: true });
    },
  };
}

/** Runs `fn` holding the run's lock (acquireRunLock), released however `fn` ends. */
export async function withRunLock<T>(runDir: string, command: string, fn: () => Promise<T>, onStale?: (message: string) => void): Promise<T> {
  const lock = acquireRunLock(runDir, command, onStale);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
