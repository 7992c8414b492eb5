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
}

/**
 * Creates or replaces the directory `dir` atomically. `fill` writes the contents into an empty
 * temporary sibling directory, which is then renamed to `dir`. An existing `dir` is first renamed
 * aside (`.NAME.old-*`) and removed only once the new one is in place, so at every moment either
 * the old or the new directory is complete on disk. If `fill` throws, the temporary directory is
 * removed and `dir` is untouched.
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
