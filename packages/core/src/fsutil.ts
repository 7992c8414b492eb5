// Crash-safe writes: a file or a whole directory appears complete under its name, or not at all.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

/** File contents: text (UTF-8), bytes, or a list of byte chunks written one after another. */
export type FileData = string | Uint8Array | readonly Uint8Array[];

// Node's fs refuses single writes above 2 GiB; larger chunks go in pieces.
const MAX_WRITE = 1 << 30;

function tmpName(target: string, kind: 'tmp' | 'old'): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${kind}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** The names tmpName gives: `.NAME.tmp-PID-HEX` (a write in progress) or `.NAME.old-PID-HEX` (a former NAME set aside). */
const LEFTOVER = /^\.(.+)\.(tmp|old)-(\d+)-[0-9a-f]{8}$/;

/** Whether the process `pid` exists on this machine (one of another user's counts: EPERM). */
function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return true; // not a pid we could have written: leave it alone
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Removes what interrupted writes (writeFileAtomic, writeDirAtomic, writeDirsAtomic) left in
 * `parent`, and returns the paths removed. Only names these functions create are considered
 * (`.NAME.tmp-PID-HEX`, `.NAME.old-PID-HEX`), and only those whose writer is gone: PID is not this
 * process and no process with that id runs on this machine (so a concurrent writer, in this process
 * or another, is never disturbed; a leftover whose pid was since reused waits for a later write).
 * - `tmp`: an unfinished write, or a finished one that was never renamed into place; either way it
 *   never became NAME, so it is removed.
 * - `old`: a former NAME set aside before its replacement was renamed in. Removed only when NAME
 *   exists; without NAME it is the last complete copy (loadModel's error message points to it), kept.
 * Writers on other machines sharing the folder (NFS) are not seen: their pids mean nothing here.
 * Best effort: a leftover that cannot be removed is skipped.
 */
export async function removeInterruptedWrites(parent: string): Promise<string[]> {
  const names = await fs.readdir(parent).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    const m = LEFTOVER.exec(name);
    if (!m) continue;
    const pid = Number(m[3]);
    if (pid === process.pid || processAlive(pid)) continue;
    if (m[2] === 'old') {
      const target = await fs.lstat(path.join(parent, m[1])).catch(() => undefined);
      if (!target) continue;
    }
    const p = path.join(parent, name);
    try {
      await fs.rm(p, { recursive: true, force: true });
      removed.push(p);
    } catch {
      // best effort
    }
  }
  return removed;
}

/** Writes `data` to `file` (which must not exist yet) and flushes it to disk before returning. */
export async function writeFileDurable(file: string, data: FileData): Promise<void> {
  const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  const fh = await fs.open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    for (const chunk of chunks) {
      for (let at = 0; at < chunk.byteLength; ) {
        const { bytesWritten } = await fh.write(chunk, at, Math.min(MAX_WRITE, chunk.byteLength - at));
        at += bytesWritten;
      }
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// Makes a rename durable. Some filesystems refuse to fsync a directory; that is not an error here.
async function syncDir(dir: string): Promise<void> {
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(dir, constants.O_RDONLY);
    await fh.sync();
  } catch {
    // best effort
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** Writes `file` atomically: a temporary file in the same directory, flushed, then renamed over it. */
export async function writeFileAtomic(file: string, data: FileData): Promise<void> {
  const tmp = tmpName(file, 'tmp');
  try {
    await writeFileDurable(tmp, data);
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
  await syncDir(path.dirname(file));
  await removeInterruptedWrites(path.dirname(file));
}

/**
 * Creates or replaces the directory `dir` atomically. `fill` writes the contents into an empty
 * temporary sibling directory, which is then renamed to `dir`. An existing `dir` is first renamed
 * aside (`.NAME.old-*`) and removed only once the new one is in place, so at every moment either
 * the old or the new directory is complete on disk. If `fill` throws, the temporary directory is
 * removed and `dir` is untouched. After a successful write, what interrupted writes left in dir's
 * parent is removed (removeInterruptedWrites).
 */
export async function writeDirAtomic(dir: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  await fs.mkdir(parent, { recursive: true });
  const existing = await fs.lstat(target).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (existing?.isSymbolicLink()) throw new Error(`${target} is a symbolic link; refusing to replace it (write to the directory it points to)`);
  if (existing && !existing.isDirectory()) throw new Error(`${target} exists and is not a directory; refusing to replace it`);

  const tmp = tmpName(target, 'tmp');
  await fs.mkdir(tmp);
  try {
    await fill(tmp);
    await syncDir(tmp);
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }

  if (!existing) {
    try {
      await fs.rename(tmp, target);
    } catch (e) {
      await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
    await syncDir(parent);
    await removeInterruptedWrites(parent);
    return;
  }
  const old = tmpName(target, 'old');
  try {
    await fs.rename(target, old);
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
  try {
    await fs.rename(tmp, target);
  } catch (e) {
    // Put the old one back; keep the new one where it is only if that fails too.
    await fs.rename(old, target).then(
      () => fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined),
      () => undefined,
    );
    throw e;
  }
  await syncDir(parent);
  await fs.rm(old, { recursive: true, force: true });
  await removeInterruptedWrites(parent);
}

/**
 * Leftovers of interrupted writeDirAtomic calls for `dir`: a former directory set aside (`old`)
 * or a new one that was complete or not (`tmp`). For error messages when `dir` is missing.
 */
export async function interruptedWrites(dir: string): Promise<{ old: string[]; tmp: string[] }> {
  const target = path.resolve(dir);
  const prefix = `.${path.basename(target)}.`;
  const names = await fs.readdir(path.dirname(target)).catch(() => [] as string[]);
  const pick = (kind: string) =>
    names.filter((n) => n.startsWith(prefix + kind + '-')).map((n) => path.join(path.dirname(target), n));
  return { old: pick('old'), tmp: pick('tmp') };
}

/**
 * Creates or replaces several sibling directories of `parent` as one unit: `names[0]` (the head,
 * e.g. PPO's final/) marks the unit complete, and while the head exists every other member is the
 * one written with it. `fill(tmp)` writes each member as the directory `tmp/NAME` (tmp is an empty
 * temporary sibling, `.HEAD.tmp-*`); once all are written, an existing head is renamed aside
 * (`.HEAD.old-*`), each other member replaces its former self as writeDirAtomic does, and the head
 * is renamed in last. A process killed midway leaves either the complete new unit, or no head (its
 * former self at `.HEAD.old-*`, which loadModel's error message names) beside members that may be
 * old or new: a head never stands beside a member of another unit. If `fill` throws, nothing in
 * `parent` changes. Leftovers of interrupted writes are removed afterwards (removeInterruptedWrites).
 */
export async function writeDirsAtomic(parent: string, names: readonly string[], fill: (tmp: string) => Promise<void>): Promise<void> {
  if (names.length === 0) throw new Error('writeDirsAtomic: no directories to write');
  for (const n of names)
    if (n === '' || n === '.' || n === '..' || n !== path.basename(n)) throw new Error(`writeDirsAtomic: ${JSON.stringify(n)} is not a plain directory name`);
  if (new Set(names).size !== names.length) throw new Error(`writeDirsAtomic: a name is given twice (${names.join(', ')})`);
  const dir = path.resolve(parent);
  await fs.mkdir(dir, { recursive: true });
  const targets = names.map((n) => path.join(dir, n));
  const present: boolean[] = [];
  for (const target of targets) {
    const st = await fs.lstat(target).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (st?.isSymbolicLink()) throw new Error(`${target} is a symbolic link; refusing to replace it (write to the directory it points to)`);
    if (st && !st.isDirectory()) throw new Error(`${target} exists and is not a directory; refusing to replace it`);
    present.push(st !== undefined);
  }

  const tmp = tmpName(targets[0], 'tmp');
  await fs.mkdir(tmp);
  try {
    await fill(tmp);
    for (const n of names) {
      const st = await fs.lstat(path.join(tmp, n)).catch(() => undefined);
      if (!st?.isDirectory()) throw new Error(`writeDirsAtomic: the fill wrote no directory ${JSON.stringify(n)}`);
      await syncDir(path.join(tmp, n));
    }
    await syncDir(tmp);
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }

  const olds: string[] = [];
  const headOld = present[0] ? tmpName(targets[0], 'old') : undefined;
  let replaced = 0;
  try {
    if (headOld) {
      await fs.rename(targets[0], headOld);
      await syncDir(dir);
      olds.push(headOld);
    }
    for (let i = 1; i < names.length; i++) {
      const old = present[i] ? tmpName(targets[i], 'old') : undefined;
      if (old) await fs.rename(targets[i], old);
      try {
        await fs.rename(path.join(tmp, names[i]), targets[i]);
      } catch (e) {
        if (old) await fs.rename(old, targets[i]).catch(() => undefined);
        throw e;
      }
      if (old) olds.push(old);
      replaced++;
    }
    await syncDir(dir);
    await fs.rename(path.join(tmp, names[0]), targets[0]);
  } catch (e) {
    // No member replaced yet: the former head goes back. Otherwise the head stays absent.
    if (headOld && replaced === 0) await fs.rename(headOld, targets[0]).catch(() => undefined);
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
  await syncDir(dir);
  for (const old of olds) await fs.rm(old, { recursive: true, force: true });
  await fs.rm(tmp, { recursive: true, force: true });
  await removeInterruptedWrites(dir);
}
