/**
 * A full disk or a read-only folder in the middle of a training (engine/io/atomic.ts StorageError):
 * the job stops with a message naming the file and the fix, the kept model is untouched, no
 * temporary file or lock is left, and --resume continues once the storage is back. The storage
 * errors are injected into node:fs (writeSync of a file whose name matches, or openSync), as a full
 * tmpfs or a read-only bind mount would raise them.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { StorageError } from '../../engine/io/atomic';
import { lockFile } from '../../engine/runs/lock';
import { train } from '../../engine/train/trainer';
import { tinyConfig } from './tiny-train';

const fault = vi.hoisted(() => ({ code: null as string | null, match: /$^/, on: 'write' as 'write' | 'open', fds: new Map<number, string>() }));
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const refuse = (p: string) => Object.assign(new Error(`${fault.code}: injected, ${fault.on} '${p}'`), { code: fault.code });
  const openSync = (p: fs.PathLike, ...rest: unknown[]) => {
    if (fault.code && fault.on === 'open' && fault.match.test(String(p))) throw refuse(String(p));
    const fd = (real.openSync as (...a: unknown[]) => number)(p, ...rest);
    fault.fds.set(fd, String(p));
    return fd;
  };
  const writeSync = (fd: number, ...rest: unknown[]) => {
    const p = fault.fds.get(fd) ?? '';
    if (fault.code && fault.on === 'write' && fault.match.test(p)) throw refuse(p);
    return (real.writeSync as (...a: unknown[]) => number)(fd, ...rest);
  };
  const appendFileSync = (p: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
    if (fault.code && fault.match.test(String(p))) throw refuse(String(p));
    return (real.appendFileSync as (...a: unknown[]) => void)(p, ...rest);
  };
  const mocked = { ...real, openSync, writeSync, appendFileSync };
  return { ...mocked, default: mocked };
});

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'memgen-diskfull-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const temps = (dir: string) => fs.readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.tmp'));

describe('a full disk or a read-only folder during training', () => {
  for (const c of [
    { code: 'ENOSPC', on: 'write' as const, match: /model\.safetensors|state\.safetensors/, says: /no space left on the device \(ENOSPC\)/ },
    { code: 'EROFS', on: 'open' as const, match: /\.tmp$/, says: /read-only file system \(EROFS\)/ },
    { code: 'ENOSPC', on: 'write' as const, match: /train-log\.jsonl/, says: /train-log\.jsonl: no space left/ },
  ]) {
    it(`${c.code} on ${c.on} of ${c.match.source}: stops naming the file and the fix; the kept model is intact; --resume then finishes`, async () => {
      const dir = path.join(root, `${c.code}-${c.on}-${c.match.source.length}`);
      await train(tinyConfig(dir, { steps: 12, stopAt: 6 }));
      const model = path.join(dir, 'model.safetensors');
      const before = sha(model);
      Object.assign(fault, { code: c.code, on: c.on, match: c.match });
      try {
        const err = await train(tinyConfig(dir, { steps: 12, resume: true })).then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(StorageError);
        expect((err as Error).message).toMatch(c.says);
        expect((err as Error).message).toMatch(/^cannot write \/.*: .* Nothing was replaced: its previous version, if any, is intact .*Free space or make the folder writable, then run the command again \(a training: with --resume\)\.$/);
      } finally {
        fault.code = null;
      }
      expect(sha(model)).toBe(before);
      expect(temps(dir)).toEqual([]);
      expect(fs.existsSync(lockFile(dir))).toBe(false);
      const out = await train(tinyConfig(dir, { steps: 12, resume: true }));
      expect(out.steps).toBe(12);
    });
  }
});
