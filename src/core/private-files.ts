// The data folder holds password and token hashes, the audit log, readings and queued messages: only the user
// Backhaul runs as may read it. The folder is made 0700 and each file in it is created 0600, with that mode given to
// open(2) itself, so a file is never wider, not even for a moment. SQLite gives its -wal, -shm and -journal files the
// mode of the main database file, so creating the main file first covers them.
// Not a process umask: it would also narrow files the operator places outside the data folder (a JSON-lines file
// another service reads), and a Hub embedded as a library would not get it.
// Files and folders that already exist are left as they are; `wideModes` finds those wider than this, to warn.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Create a folder (and missing parents) 0700; an existing one is left alone. */
export function makePrivateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/** Create an empty file 0600 unless it exists (an empty file is a valid empty SQLite database). */
export function createPrivateFile(path: string): void {
  closeSync(openSync(path, 'a', PRIVATE_FILE_MODE));
}

/** True when `path` is `dir` or inside it. */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(resolve(dir), resolve(path));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

export interface WideMode {
  readonly path: string;
  /** Permission bits, e.g. 0o644. */
  readonly mode: number;
  readonly kind: 'folder' | 'file';
}

/** Entries looked at, at most: a data folder set to a busy folder (`"data": "."`) must not stall a start. */
const MAX_ENTRIES = 10_000;
const MAX_DEPTH = 4;

/** The data folder and everything in it (symlinks not followed) that group or others may use. */
export function wideModes(dataDir: string): WideMode[] {
  const out: WideMode[] = [];
  let seen = 0;
  const visit = (path: string, depth: number): void => {
    if (seen++ >= MAX_ENTRIES) return;
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return; // gone, or not ours to read: nothing to say
    }
    if (st.isSymbolicLink()) return;
    const mode = st.mode & 0o777;
    const dir = st.isDirectory();
    if ((mode & 0o077) !== 0) out.push({ path, mode, kind: dir ? 'folder' : 'file' });
    if (!dir || depth >= MAX_DEPTH) return;
    let names: string[];
    try {
      names = readdirSync(path).sort();
    } catch {
      return;
    }
    for (const name of names) visit(join(path, name), depth + 1);
  };
  visit(resolve(dataDir), 0);
  return out;
}

export function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

/** One line per path for `check` and the start-up log. */
export function wideModeMessage(w: WideMode): string {
  const want = w.kind === 'folder' ? PRIVATE_DIR_MODE : PRIVATE_FILE_MODE;
  return (
    `data ${w.kind} ${w.path} is mode ${octal(w.mode)}, open to group or others (Backhaul makes ${octal(want)}): ` +
    `chmod ${want.toString(8)} ${shellWord(w.path)}`
  );
}

function shellWord(s: string): string {
  return /^[A-Za-z0-9_./@%+=:,-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

/**
 * Write `data` to `path` as a new 0600 file: written to a fresh temporary file beside it (created 0600, exclusively),
 * flushed, then renamed over `path`. A file replaced this way takes the new mode, however wide the old one was, and a
 * reader never sees half of it.
 */
export function writePrivateFile(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', PRIVATE_FILE_MODE);
  try {
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
