/**
 * Atomic file writes: write to a temp file in the same folder, fsync, then rename over the target,
 * so a reader never sees a half-written file and a crash never loses the previous version.
 * The temp file is `.NAME.<pid>.<stamp>.tmp`; a writer killed mid-write (kill -9, a crash) leaves it
 * behind, and removeStaleTemps, called by a job that resumes a folder, deletes those of dead writers.
 * A full disk, a quota or a read-only folder (STORAGE_ERRORS) becomes a StorageError naming the file
 * and the fix; the temporary file is removed and the target left as it was.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** What a full disk, a quota, a read-only or a forbidden folder means for the user. */
const STORAGE_ERRORS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is used up',
  EROFS: 'the folder is on a read-only file system',
  EACCES: 'the folder is not writable',
  EPERM: 'the folder is not writable',
};

/** A write that the storage refused (STORAGE_ERRORS): the message names the file and the fix. */
export class StorageError extends Error {
  constructor(readonly file: string, readonly code: string) {
    super(
      `cannot write ${file}: ${STORAGE_ERRORS[code]} (${code}). Nothing was replaced: its previous version, if any, is intact ` +
        '(writes go to a temporary file first). Free space or make the folder writable, then run the command again (a training: with --resume).',
    );
  }
}

/** `e` as a StorageError for `file` when the storage refused the write; else `e` unchanged. */
export const storageError = (file: string, e: unknown): unknown => {
  const code = (e as NodeJS.ErrnoException).code;
  return code && code in STORAGE_ERRORS ? new StorageError(file, code) : e;
};

export function writeFileAtomic(file: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  let fd: number;
  try {
    fs.mkdirSync(dir, { recursive: true });
    fd = fs.openSync(tmp, 'w');
  } catch (e) {
    throw storageError(file, e);
  }
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
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    try { fs.closeSync(fd); } catch { /* closed already */ }
    fs.rmSync(tmp, { force: true });
    throw storageError(file, e);
  }
}

/** Appends a line to a log (train-log.jsonl); a full disk or read-only folder is a StorageError. */
export function appendLine(file: string, line: string): void {
  try {
    fs.appendFileSync(file, line + '\n');
  } catch (e) {
    throw storageError(file, e);
  }
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
