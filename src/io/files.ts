// Reading and writing whole files (checkpoints, configs) with errors that say which file, what it
// was meant to be and what went wrong; writes are atomic, so a crash never leaves a half-written file.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";

/**
 * Writes bytes to path atomically: into a temporary file in the same directory (so the rename cannot
 * cross file systems), flushed to disk, then renamed over path. If anything fails, the temporary file
 * is removed and path is left as it was.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  let tempExists = false;
  try {
    const file = await open(temp, "wx");
    tempExists = true;
    try {
      await file.writeFile(bytes);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
    tempExists = false;
    await syncDirectory(dir);
  } catch (e) {
    if (tempExists) await unlink(temp).catch(() => { /* already gone: nothing to clean up */ });
    // Before the temporary file exists, the problem lies with the directory; after, with the file.
    const subject = tempExists ? "it" : `directory ${dir}`;
    throw new Error(`cannot write ${path}: ${subject} ${reason(e as NodeJS.ErrnoException)}`, { cause: e });
  }
}

// Makes the rename itself durable. Windows cannot open a directory for syncing, and does not need to.
async function syncDirectory(dir: string): Promise<void> {
  if (process.platform === "win32") return;
  const handle = await open(dir, "r");
  try { await handle.sync(); } finally { await handle.close(); }
}

/** The whole file; `what` says what it should be ("checkpoint", "config") for the error message. */
export async function readFileChecked(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: it ${reason(e as NodeJS.ErrnoException)}`, { cause: e });
  }
}

/** The file opened for reading (a descriptor to close) and its size; errors as readFileChecked's. */
export function openFileChecked(path: string, what: string): { fd: number; size: number } {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
    return { fd, size: stat.size };
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    throw new Error(`cannot read ${what} ${path}: it ${reason(e as NodeJS.ErrnoException)}`, { cause: e });
  }
}

/** The first `count` bytes of the file (fewer if it is shorter); errors as readFileChecked's. */
export function readFileStart(path: string, count: number, what: string): Uint8Array {
  const { fd, size } = openFileChecked(path, what);
  try {
    const bytes = new Uint8Array(Math.min(count, size));
    return bytes.subarray(0, readSync(fd, bytes, 0, bytes.length, 0));
  } finally {
    closeSync(fd);
  }
}

function reason(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case "ENOENT": return "does not exist";
    case "ENOTDIR": return "has a path component that is not a directory";
    case "EISDIR": return "is a directory";
    case "EACCES":
    case "EPERM": return "is not accessible (permission denied)";
    case "ENOSPC": return "is on a full disk";
    case "EROFS": return "is on a read-only file system";
    default: return `failed: ${err.message}`;
  }
}
