/**
 * Atomic file writes: write to a temp file in the same folder, fsync, then rename over the target,
 * so a reader never sees a half-written file and a crash never loses the previous version.
 * The temp file is `.NAME.<pid>.<stamp>.tmp`; a writer killed mid-write (kill -9, a crash) leaves it
 * behind, and removeStaleTemps, called by a job that resumes a folder, deletes those of dead writers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export function writeFileAtomic(file: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    const parts = typeof data === 'string' || data instanceof Uint8Array ? [data] : data;
    for (const part of parts) {
      if (typeof part === 'string') fs.writeSync(fd, part);
      else {
        let off = 0;
        while (off < part.byteLength) off += fs.writeSync(fd, part, off, part.byteLength - off);
      }
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

/** writeFileAtomic's temporary file names: `.NAME.<pid>.<stamp>.tmp`. */
const TEMP_NAME = /^\..+\.(\d+)\.[0-9a-z]+\.tmp$/;

/** Whether process `pid` is running (on this host). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

/**
 * Deletes the temporary files of writeFileAtomic that dead writers left in `dir` and its subfolders
 * (those of a running process, this one included, are left alone). Returns the paths deleted.
 */
export function removeStaleTemps(dir: string): string[] {
  const removed: string[] = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return removed; // no folder: nothing to clean
  }
  for (const e of entries) {
    const file = path.join(dir, e.name);
    if (e.isDirectory()) removed.push(...removeStaleTemps(file));
    else {
      const m = TEMP_NAME.exec(e.name);
      if (m && !processAlive(Number(m[1]))) {
        fs.rmSync(file, { force: true });
        removed.push(file);
      }
    }
  }
  return removed;
}
