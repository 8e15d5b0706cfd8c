/**
 * Filesystem destination: backups under one directory (default ./backups).
 *
 * Invariants:
 * - write() streams into a temp file beside the target (`.s3db-backup-tmp-*`), fsyncs it, renames it
 *   over the target and fsyncs the directory: a reader sees the old object, or the whole new one.
 *   A failed or aborted write removes its temp file; temp files left by a crash (kill -9) are
 *   invisible to list() and removed by cleanupTempFiles() (at once when the writer's pid is dead on
 *   this host, else once they are older than the given age).
 * - createIfAbsent() is atomic across processes: the body is written to a temp file, then link()ed
 *   to the target, which fails with EEXIST if the target exists.
 * - replaceIfMatch() compares the object's tag (inode-size-mtime, which every rename changes) under
 *   a short-lived exclusive guard file (`<path>.cas`, linked into place with its taker's pid in
 *   it), so two processes cannot both succeed. A guard left by a crashed process is broken at once
 *   when that process ran in this process space, else after GUARD_STALE_MS.
 * - Paths are relative POSIX paths; "..", absolute paths and empty segments are refused, so nothing
 *   is ever read or written outside the directory.
 * - `permissions` / `directoryPermissions` (s3db.js's names) are the modes files and directories
 *   are created with (minus the process umask, as for any open/mkdir); unset, Node's defaults.
 *   The owner keeps read and write (files) and read, write and search (directories), since the
 *   plugin must read its own backups back.
 */
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type Dirent } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, statfs, unlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackupError, errorMessage, optionError } from '../errors.js';
import { processSpace } from '../lease/process-space.js';
import type { Destination, ObjectInfo, ReadOptions, WriteOptions, WriteResult } from './types.js';

export const TEMP_PREFIX = '.s3db-backup-tmp-';
/**
 * Temp names carry the writer's process space (host, boot, pid namespace: lease/process-space.ts)
 * and pid, so a crashed writer's files are recognised at once, and a live writer in another
 * container with the same host name is never mistaken for a dead one here.
 */
const SPACE_TAG = createHash('sha256').update(processSpace()).digest('hex').slice(0, 8);
export const GUARD_SUFFIX = '.cas';
/** Tries at making a write's directories (and at a small write) while another process removes them as empty. */
const MKDIR_ATTEMPTS = 5;
const GUARD_STALE_MS = 30_000;

export interface FilesystemDestinationConfig {
  /** Directory that holds the backups; created if missing. Default './backups'. */
  directory?: string;
  /** Call fsync on files and directories (default true). Tests may turn it off for speed. */
  fsync?: boolean;
  /** Mode of the files created, e.g. 0o600 (s3db.js default 0o644, which is Node's under umask 022). */
  permissions?: number;
  /** Mode of the directories created, e.g. 0o700 (s3db.js default 0o755). */
  directoryPermissions?: number;
}

export class FilesystemDestination implements Destination {
  readonly driver = 'filesystem';
  readonly label: string;
  readonly root: string;
  private readonly fsync: boolean;
  private readonly fileMode: number | undefined;
  private readonly dirMode: number | undefined;

  constructor(config: FilesystemDestinationConfig = {}) {
    // present but undefined: an unset environment variable, not "the default ./backups"
    for (const key of ['directory', 'path']) {
      if (key in config && (config as Record<string, unknown>)[key] === undefined) {
        throw optionError(`config.${key}`, 'is undefined (an unset environment variable?)', "Set it to the folder for backups, e.g. '/mnt/backups', or leave it out for ./backups");
      }
    }
    const directory = config.directory ?? './backups';
    if (typeof directory !== 'string' || directory.trim() === '') {
      throw optionError('config.directory', 'must be a non-empty path', "Set it to the folder for backups, e.g. '/mnt/backups'");
    }
    this.root = path.resolve(directory);
    this.label = `filesystem:${this.root}`;
    // fsync: 0 or '' from a config file must not turn durability off in silence
    if (config.fsync !== undefined && typeof config.fsync !== 'boolean') throw optionError('config.fsync', `must be true or false, not ${typeof config.fsync} ${JSON.stringify(config.fsync) ?? ''}`.trimEnd());
    this.fsync = config.fsync ?? true;
    this.fileMode = modeOption('config.permissions', config.permissions, 0o600, '0o640');
    this.dirMode = modeOption('config.directoryPermissions', config.directoryPermissions, 0o700, '0o750');
  }

  /** Absolute path of a destination-relative path; refuses anything that could leave the root. */
  resolve(relative: string): string {
    if (typeof relative !== 'string' || relative === '' || relative.startsWith('/') || relative.includes('\\')) {
      throw new BackupError('ERR_DESTINATION_PATH', `${this.label}: invalid object path "${relative}" (must be relative, with "/" separators)`);
    }
    const segments = relative.split('/');
    if (segments.some((s, i) => s === '..' || s === '.' || (s === '' && i !== segments.length - 1))) {
      throw new BackupError('ERR_DESTINATION_PATH', `${this.label}: object path "${relative}" escapes or is not normalised`);
    }
    const full = path.join(this.root, ...segments);
    if (full !== this.root && !full.startsWith(this.root + path.sep)) {
      throw new BackupError('ERR_DESTINATION_PATH', `${this.label}: object path "${relative}" escapes the directory`);
    }
    return full;
  }

  async write(relative: string, body: Readable | Buffer, options: WriteOptions = {}): Promise<WriteResult> {
    // A small write (a marker, a manifest) whose directory another process removed as empty
    // between its creation and the temp file's (removeEmptyParents) is made again (a stream
    // cannot be read twice; parts go to directories of their own backup, which nobody empties).
    for (let attempt = 1; Buffer.isBuffer(body) && attempt < MKDIR_ATTEMPTS; attempt++) {
      try {
        return await this.writeOnce(relative, body, options);
      } catch (err) {
        if (!(err instanceof BackupError && err.code === 'ERR_DESTINATION_NOT_FOUND')) throw err;
      }
    }
    return this.writeOnce(relative, body, options);
  }

  private async writeOnce(relative: string, body: Readable | Buffer, options: WriteOptions): Promise<WriteResult> {
    const target = this.resolve(relative);
    await this.makeParent(target, relative, 'write');
    const temp = this.tempPathFor(target);
    const hash = createHash('sha256');
    let size = 0;
    const measure = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
    const out = createWriteStream(temp, { flags: 'wx', mode: this.fileMode });
    try {
      await pipeline(source, measure, out, { signal: options.signal });
      if (this.fsync) await fsyncPath(temp);
      await rename(temp, target);
      if (this.fsync) await fsyncPath(path.dirname(target));
    } catch (err) {
      // A write stream destroyed before its file was open still opens (creates) it, then closes:
      // the temp file is removed only once the stream has closed, or it would outlive the failure.
      if (!out.closed) await once(out, 'close').catch(() => undefined);
      await rm(temp, { force: true });
      throw this.wrap(err, 'write', relative);
    }
    return { path: relative, size, sha256: hash.digest('hex') };
  }

  async explainEmpty(): Promise<{ why: string; certain: boolean } | null> {
    const s = await stat(this.root).catch(() => null);
    if (!s) return { why: `${this.root} does not exist (no backup was ever written there): check config.directory`, certain: true };
    if (!s.isDirectory()) return { why: `${this.root} is not a directory: check config.directory`, certain: true };
    // A directory one level off: inside the backup folder, or its parent.
    if (path.basename(this.root) === 'manifests' || path.basename(this.root) === 'data') {
      return { why: `${this.root} looks like a folder inside a backup destination: set config.directory to ${path.dirname(this.root)}`, certain: true };
    }
    const entries = await readdir(this.root, { withFileTypes: true }).catch(() => []);
    const below: string[] = [];
    for (const e of entries) {
      if (e.isDirectory() && (await stat(path.join(this.root, e.name, 'manifests')).catch(() => null))?.isDirectory()) below.push(path.join(this.root, e.name));
    }
    if (below.length > 0) {
      return { why: `${this.root} holds no backups itself, but ${below.join(', ')} ${below.length > 1 ? 'do' : 'does'}: if ${below.length > 1 ? 'one of them holds' : 'it holds'} this database's, set config.directory to it (a new database's directory looks the same until its first backup)`, certain: false };
    }
    return null;
  }

  async read(relative: string, options: ReadOptions = {}): Promise<Readable> {
    const full = this.resolve(relative);
    const handle = await open(full, 'r').catch((err: unknown) => {
      throw this.wrap(err, 'read', relative);
    });
    // The stream owns the handle and closes it; opening first turns ENOENT into a clear error now.
    return createReadStream('', { fd: handle, start: options.start, end: options.end, signal: options.signal });
  }

  async stat(relative: string): Promise<ObjectInfo | null> {
    try {
      const s = await stat(this.resolve(relative), { bigint: true });
      if (!s.isFile()) return null;
      return { path: relative, size: Number(s.size), etag: tagOf(s), lastModified: new Date(Number(s.mtimeMs)) };
    } catch (err) {
      if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')) return null;
      throw this.wrap(err, 'stat', relative);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // Walk only the deepest directory the prefix names, then filter by the rest of the prefix.
    const slash = prefix.lastIndexOf('/');
    const dirRel = slash >= 0 ? prefix.slice(0, slash) : '';
    const start = dirRel === '' ? this.root : this.resolve(dirRel);
    yield* this.walk(start, dirRel, prefix);
  }

  private async *walk(dir: string, dirRel: string, prefix: string): AsyncIterable<ObjectInfo> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')) return;
      throw this.wrap(err, 'list', dirRel || '.');
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX) || entry.name.endsWith(GUARD_SUFFIX)) continue;
      const rel = dirRel === '' ? entry.name : `${dirRel}/${entry.name}`;
      if (entry.isDirectory()) {
        // Descend only where the prefix can still match.
        if (prefix.startsWith(`${rel}/`) || `${rel}/`.startsWith(prefix)) yield* this.walk(path.join(dir, entry.name), rel, prefix);
      } else if (entry.isFile() && rel.startsWith(prefix)) {
        const info = await this.stat(rel);
        if (info) yield info;
      }
    }
  }

  async delete(paths: string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const relative of paths) {
      const full = this.resolve(relative);
      await unlink(full).catch((err: unknown) => {
        // not there: also when a directory on its path is a file (ENOTDIR), as stat() and read() say
        if (!isCode(err, 'ENOENT') && !isCode(err, 'ENOTDIR')) throw this.wrap(err, 'delete', relative);
      });
      dirs.add(path.dirname(full));
    }
    // Tidy up directories the deletes emptied (never the root itself).
    for (const dir of [...dirs].sort((a, b) => b.length - a.length)) await this.removeEmptyParents(dir);
  }

  async createIfAbsent(relative: string, body: Buffer): Promise<{ created: boolean; etag?: string }> {
    const target = this.resolve(relative);
    await this.makeParent(target, relative, 'create');
    const temp = this.tempPathFor(target);
    try {
      await writeDurable(temp, body, this.fsync, this.fileMode);
      await link(temp, target);
    } catch (err) {
      if (isCode(err, 'EEXIST')) return { created: false };
      throw this.wrap(err, 'create', relative);
    } finally {
      await rm(temp, { force: true });
    }
    if (this.fsync) await fsyncPath(path.dirname(target));
    const info = await this.stat(relative);
    return { created: true, etag: info?.etag };
  }

  async replaceIfMatch(relative: string, body: Buffer, etag: string): Promise<{ replaced: boolean; etag?: string }> {
    const target = this.resolve(relative);
    const guard = `${target}${GUARD_SUFFIX}`;
    if (!(await this.takeGuard(guard))) return { replaced: false };
    try {
      const current = await this.stat(relative);
      if (!current || current.etag !== etag) return { replaced: false };
      const temp = this.tempPathFor(target);
      try {
        await writeDurable(temp, body, this.fsync, this.fileMode);
        await rename(temp, target);
      } catch (err) {
        await rm(temp, { force: true });
        throw this.wrap(err, 'replace', relative);
      }
      if (this.fsync) await fsyncPath(path.dirname(target));
      const info = await this.stat(relative);
      return { replaced: true, etag: info?.etag };
    } finally {
      await rm(guard, { force: true });
    }
  }

  /**
   * Removes temp files that crashed writers left behind: those of a dead process on this host at
   * once, others once older than `olderThanMs`. Returns how many.
   */
  async cleanupTempFiles(olderThanMs = 60 * 60_000): Promise<number> {
    let removed = 0;
    const visit = async (dir: string): Promise<void> => {
      let entries: Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await visit(full);
        else if (entry.name.startsWith(TEMP_PREFIX)) {
          const s = await stat(full).catch(() => null);
          if (s && (writerIsDead(entry.name) || Date.now() - s.mtimeMs >= olderThanMs)) {
            await rm(full, { force: true });
            removed++;
            // a crashed backup's directory may hold nothing else by now (its parts were deleted first)
            await this.removeEmptyParents(dir);
          }
        }
      }
    };
    await visit(this.root);
    return removed;
  }

  async close(): Promise<void> {}

  private tempPathFor(target: string): string {
    return path.join(path.dirname(target), `${TEMP_PREFIX}${SPACE_TAG}-${process.pid}-${randomBytes(6).toString('hex')}-${path.basename(target)}`);
  }

  /**
   * Takes the guard file, which names its taker (`<process space>-<pid>`): one left by a process
   * of this process space that no longer runs (killed while it held it) is removed at once, any
   * other after GUARD_STALE_MS.
   */
  private async takeGuard(guard: string): Promise<boolean> {
    for (let attempt = 0; attempt < 50; attempt++) {
      // The guard appears with its taker named in it (a temp file linked to its name): created
      // first and written after, a process killed in between left an empty guard, which names no
      // taker, so it held every other process off for GUARD_STALE_MS.
      const temp = this.tempPathFor(guard);
      try {
        await writeFile(temp, `${SPACE_TAG}-${process.pid}`, { flag: 'wx', mode: this.fileMode });
        await link(temp, guard);
        return true;
      } catch (err) {
        if (!isCode(err, 'EEXIST')) throw this.wrap(err, 'lock', path.relative(this.root, guard));
        const s = await stat(guard).catch(() => null);
        const taker = await readFile(guard, 'utf8').catch(() => '');
        if (s && (Date.now() - s.mtimeMs > GUARD_STALE_MS || deadHere(taker))) await this.breakGuard(guard, s.ino, taker);
        else await new Promise((r) => setTimeout(r, 20));
      } finally {
        await rm(temp, { force: true });
      }
    }
    return false;
  }

  /**
   * Removes an abandoned guard, as one process at a time (under `<guard>.break.cas`) and only if it
   * is still the file judged abandoned (same inode and taker): a guard another process has taken
   * since is never removed.
   */
  private async breakGuard(guard: string, ino: number, taker: string): Promise<void> {
    const breaker = guard.slice(0, -GUARD_SUFFIX.length) + '.break' + GUARD_SUFFIX;
    try {
      await (await open(breaker, 'wx', this.fileMode)).close();
    } catch (err) {
      if (!isCode(err, 'EEXIST')) throw this.wrap(err, 'lock', path.relative(this.root, breaker));
      const s = await stat(breaker).catch(() => null);
      if (s && Date.now() - s.mtimeMs > GUARD_STALE_MS) await rm(breaker, { force: true });
      else await new Promise((r) => setTimeout(r, 20));
      return;
    }
    try {
      const now = await stat(guard).catch(() => null);
      if (now && now.ino === ino && (await readFile(guard, 'utf8').catch(() => null)) === taker) await rm(guard, { force: true });
    } finally {
      await rm(breaker, { force: true });
    }
  }

  private async removeEmptyParents(dir: string): Promise<void> {
    let current = dir;
    while (current.startsWith(this.root + path.sep)) {
      try {
        await rmdir(current);
      } catch {
        return;
      }
      current = path.dirname(current);
    }
  }

  /**
   * Creates the directories above `target`, with the destination's errors. Node's recursive mkdir
   * reports ENOENT when the real cause is a read-only or full device, so a plain mkdir of the
   * first missing level is asked for the real one.
   */
  private async makeParent(target: string, relative: string, op: string): Promise<void> {
    const dir = path.dirname(target);
    for (let attempt = 1; ; attempt++) {
      try {
        await mkdir(dir, { recursive: true, mode: this.dirMode });
        return;
      } catch (first) {
        // another process removing the empty directories above (removeEmptyParents: an instance
        // without the lease) while this one creates them: again, before the device is asked why
        if (isCode(first, 'ENOENT') && attempt < MKDIR_ATTEMPTS) continue;
        await this.makeParentError(first, dir, relative, op);
        return;
      }
    }
  }

  /** Why the directories above a write could not be made (thrown), or nothing when they now stand (a race with another process). */
  private async makeParentError(first: unknown, dir: string, relative: string, op: string): Promise<void> {
    const err = isCode(first, 'ENOENT') ? ((await firstLevelError(dir, this.dirMode)) ?? first) : first;
    // the directories stand now: another process made them meanwhile
    if ((isCode(err, 'EEXIST') || isCode(err, 'ENOENT')) && (await mkdir(dir, { recursive: true, mode: this.dirMode }).then(() => true, () => false))) return;
    if (isCode(err, 'ENOTDIR') || isCode(err, 'EEXIST')) {
      throw new BackupError('ERR_DESTINATION_PATH', `${this.label}: cannot ${op} ${relative}: a file stands where a directory of its path must be (${errorMessage(err)}); move that file away or choose another directory`, { cause: err });
    }
    if (isCode(err, 'ENOSPC')) {
      const fs = await statfs(this.root).catch(() => null);
      throw new BackupError('ERR_DESTINATION_FULL', `${this.label}: no space left on the device (${fs?.ffree === 0 ? 'no free inodes' : 'no free blocks'}) while writing ${relative}; free space or move the backup directory`, { cause: err });
    }
    throw this.wrap(err, op, relative);
  }

  private wrap(err: unknown, op: string, relative: string): BackupError {
    if (err instanceof BackupError) return err;
    if (isCode(err, 'ENOENT')) {
      return new BackupError('ERR_DESTINATION_NOT_FOUND', `${this.label}: ${relative} does not exist`, { cause: err, details: { path: relative } });
    }
    if (isCode(err, 'ENOSPC')) {
      return new BackupError('ERR_DESTINATION_FULL', `${this.label}: no space left on the device while writing ${relative}; free space or move the backup directory`, { cause: err });
    }
    if (isCode(err, 'EROFS')) {
      return new BackupError('ERR_DESTINATION_ACCESS', `${this.label}: the file system is read-only, so ${relative} cannot be ${op === 'delete' ? 'deleted' : 'written'}; remount it read-write or choose another directory (listing, verifying and restoring work read-only)`, { cause: err });
    }
    if (isCode(err, 'EACCES') || isCode(err, 'EPERM')) {
      return new BackupError('ERR_DESTINATION_ACCESS', `${this.label}: permission denied to ${op} ${relative}; check the directory's owner and mode`, { cause: err });
    }
    if (err instanceof Error && err.name === 'AbortError') {
      return new BackupError('ERR_ABORTED', `${this.label}: ${op} of ${relative} was aborted`, { cause: err });
    }
    return new BackupError('ERR_DESTINATION_IO', `${this.label}: could not ${op} ${relative}: ${errorMessage(err)}; check the path ${this.root} (a mount gone, a device failing, a link that leads nowhere)`, { cause: err });
  }
}

/** The error of a plain mkdir of the first level of `dir` that does not exist (null if it worked). */
async function firstLevelError(dir: string, mode: number | undefined): Promise<unknown> {
  let missing = dir;
  for (;;) {
    const parent = path.dirname(missing);
    if (parent === missing || (await stat(parent).then(() => true, () => false))) break;
    missing = parent;
  }
  try {
    await mkdir(missing, { mode });
    return null;
  } catch (err) {
    return err;
  }
}

/** True when a temp file was written on this host by a process that no longer runs. */
function writerIsDead(name: string): boolean {
  return deadHere(name.slice(TEMP_PREFIX.length));
}

/** True for `<process space>-<pid>[-...]` naming a process of this process space that no longer runs. */
function deadHere(tag: string): boolean {
  const [host, pid] = tag.split('-');
  if (host !== SPACE_TAG || !/^\d+$/.test(pid ?? '')) return false;
  const n = Number(pid);
  if (n === process.pid) return false;
  try {
    process.kill(n, 0);
    return false;
  } catch (err) {
    return (err as { code?: string }).code === 'ESRCH';
  }
}

/** A file or directory mode option: an integer 0..0o777 that keeps the owner's `ownerNeeds` bits. */
function modeOption(name: string, value: unknown, ownerNeeds: number, example: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0o777) {
    throw optionError(name, `${JSON.stringify(value)} is not a file mode`, `Use an octal number such as ${example}`);
  }
  if ((value & ownerNeeds) !== ownerNeeds) {
    throw optionError(name, `0o${value.toString(8)} would lock the plugin out of its own backups`, `The owner needs 0o${ownerNeeds.toString(8)}, e.g. ${example}`);
  }
  return value;
}

function tagOf(s: { ino: bigint; size: bigint; mtimeNs: bigint }): string {
  return `${s.ino.toString(16)}-${s.size.toString(16)}-${s.mtimeNs.toString(16)}`;
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

async function writeDurable(file: string, body: Buffer, fsync: boolean, mode: number | undefined): Promise<void> {
  const handle = await open(file, 'wx', mode);
  try {
    await handle.writeFile(body);
    if (fsync) await handle.sync();
  } finally {
    await handle.close();
  }
}

async function fsyncPath(p: string): Promise<void> {
  const handle = await open(p, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
