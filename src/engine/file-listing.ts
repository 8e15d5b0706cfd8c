/**
 * Lists a file:// database as a stream, in code-point key order, reading s3db.js 21's
 * FileSystemStorage layout directly: an object is the file `<basePath>/<keyPrefix>/<key>`, its
 * metadata (ETag, expiry) beside it in `<file>.meta.json`. s3db.js's own client walks every file
 * under the prefix, reads every metadata file and sorts it all before it returns the first key
 * (0.5-2 KB held per object: GBs for a database of millions).
 *
 * Invariants:
 * - Memory holds the names of one directory per level of the walk (a resource's records share one
 *   directory, so about 100 bytes per record of the largest resource), and STAT_AT_ONCE entries.
 * - Entries are what the client's listing gives, keys relative to its key prefix: the body file's
 *   size, the ETag its metadata records, and as `lastModified` the latest of the two files' mtimes
 *   and the `lastModified` the metadata records (listedStamp). A file
 *   without a metadata file (a write's temporary file), or whose metadata is not JSON, and an
 *   expired object (TTL) are left out, as the client leaves them out (nothing is deleted here).
 *   Any other failure to read is thrown: a listing short of an object would have a backup leave
 *   it out, and an incremental record it as deleted.
 * - Used only where the layout is the one known and the client's `listObjects` is its class's own:
 *   a client whose listing was replaced (wrapped by the application, or by target.ts for a dry
 *   run) is listed through it.
 */
import type { Dir } from 'node:fs';
import { open, opendir, readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import type { S3dbClientLike, SourceEntry } from './s3db.js';
import { compareKeys } from './sorted-merge.js';

interface FileStorageLayout {
  /** The directory holding the database's objects (its key prefix's folder). */
  root: string;
  /** The file holding the object at relative key `key`. */
  fileOf(key: string): string;
  expired(metadata: { expiresAt: number | null }): boolean;
}

interface FileSystemClientShape {
  listObjects?: unknown;
  constructor?: { name?: string; prototype?: { listObjects?: unknown } };
  storage?: { basePath?: unknown; _keyToPath?(key: string): string; _isExpired?(metadata: unknown, now?: number): boolean };
}

/** Directory entries whose stat and metadata are read at once. */
const STAT_AT_ONCE = 32;

/**
 * The layout of `client` when it is s3db.js's file:// client as known, listed by its own class's
 * listObjects; else null. `folder` is the folder its key prefix names ('' or ending in '/', as
 * s3db.ts keyFolder gives it): s3db.js writes relative key `k` at the full key `folder + k`.
 */
export function fileStorageLayout(client: S3dbClientLike, folder: string): FileStorageLayout | null {
  const c = client as unknown as FileSystemClientShape;
  if (c.constructor?.name !== 'FileSystemClient' || c.listObjects !== c.constructor.prototype?.listObjects) return null;
  const storage = c.storage;
  if (typeof storage?.basePath !== 'string' || typeof storage._keyToPath !== 'function') return null;
  const basePath = storage.basePath;
  return {
    root: folder === '' ? basePath : storage._keyToPath(folder),
    fileOf: (key) => storage._keyToPath!(folder + key),
    expired: (metadata) => storage._isExpired?.(metadata, Date.now()) === true,
  };
}

/**
 * Every object whose relative key starts with `prefix`, in code-point order of keys, one directory
 * at a time. The walk starts inside the database's folder (a sibling database whose name begins
 * with its key prefix, `app2` beside `app`, is never read).
 */
export async function* listFileStorage(layout: FileStorageLayout, prefix: string): AsyncIterable<SourceEntry> {
  const cut = prefix.lastIndexOf('/') + 1;
  const base = prefix.slice(0, cut); // '' or ending in '/': the directory the walk starts in
  const dir = base === '' ? layout.root : layout.fileOf(base);
  let batch: { key: string; file: string }[] = [];
  for await (const found of walk(dir, base, prefix.slice(cut))) {
    batch.push(found);
    if (batch.length === STAT_AT_ONCE) {
      yield* await described(batch, layout);
      batch = [];
    }
  }
  yield* await described(batch, layout);
}

/** The files under `dir` (full key `base`), names starting with `namePrefix` at this level, in key order. */
async function* walk(dir: string, base: string, namePrefix: string): AsyncIterable<{ key: string; file: string }> {
  let handle: Dir;
  try {
    handle = await opendir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return; // nothing stored there
    throw err;
  }
  // names only (read one entry at a time: an array of a Dirent per record of a large resource
  // would hold several times as much); a directory sorts as its name and '/', which is how each
  // of its keys begins
  const names: string[] = [];
  for await (const entry of handle) {
    if (!entry.name.startsWith(namePrefix)) continue;
    if (entry.isDirectory()) names.push(`${entry.name}/`);
    else if (entry.isFile() && !entry.name.endsWith('.meta.json')) names.push(entry.name);
  }
  names.sort(compareKeys);
  for (const name of names) {
    if (name.endsWith('/')) yield* walk(path.join(dir, name), base + name, '');
    else yield { key: base + name, file: path.join(dir, name) };
  }
}

/** Bytes of a metadata file read for its ETag and expiry, which s3db.js writes before the rest. */
const HEAD_BYTES = 64 * 1024;

/** Tries of an open or stat that the process's descriptor limit refused (EMFILE, ENFILE). */
const FD_LIMIT_TRIES = 20;

/**
 * `io()`, or null when the file is not there (gone since the directory was read). Any other
 * failure is thrown, never taken for "no object": a listing short of an object would make a
 * backup leave it out, and an incremental record it as deleted. Refusals for want of descriptors
 * (STAT_AT_ONCE files are open at once; the application holds others) are waited out and tried
 * again, as s3db.js's own listing, which opens one file at a time, would have gone through.
 */
async function unlessGone<T>(io: () => Promise<T>): Promise<T | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await io();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      if ((code === 'EMFILE' || code === 'ENFILE') && attempt < FD_LIMIT_TRIES) {
        await new Promise((resolve) => setTimeout(resolve, 5 * attempt));
        continue;
      }
      throw err;
    }
  }
}

/** What an object's metadata file records of it: its ETag, expiry and write time (`lastModified`, ISO; '' when not recorded). */
export interface StoredHead {
  etag: string;
  expiresAt: number | null;
  lastModified: string;
}

/**
 * The stamp an object of s3db.js's file:// client is listed with: the latest of its body file's
 * mtime, its metadata file's mtime (a metadata-only write rewrites only that file) and the
 * `lastModified` that file records, which is what a read of the object gives (the time s3db.js
 * took before writing). A read of the version listed then never gives a later stamp, which
 * same-version.ts versionRead relies on: file times alone can be earlier than that recorded time
 * (a file system keeping whole seconds, a copy by tar or zip, or the kernel's coarse clock,
 * which lags by up to a tick), and such an object was taken for one rewritten while the backup
 * read it, and stored again by every incremental (review-read F1). Change detection relies on
 * the stamp moving on every write, which each of the three does.
 */
export function listedStamp(bodyMs: number, metaMs: number | null, recorded: string): string {
  const written = Date.parse(recorded);
  return new Date(Math.max(bodyMs, metaMs ?? bodyMs, Number.isFinite(written) ? written : bodyMs)).toISOString();
}

/**
 * The ETag, expiry and recorded write time of the object whose metadata file is `metaFile`; null
 * when it is gone, or is not JSON (the client leaves such an object out too). s3db.js writes that
 * file as `JSON.stringify(meta, null, 2)` with the object's body last (a copy of it as a JSON array
 * of numbers: a 4 MB body makes ~14 MB of JSON), so the top-level fields (two spaces in; the user's
 * metadata fields are four), each whole up to its line's end, are read from its head; a file
 * written otherwise, or whose head ends before them, is parsed whole.
 */
export async function storedHead(metaFile: string): Promise<StoredHead | null> {
  const head = await unlessGone(async () => {
    const handle = await open(metaFile, 'r');
    try {
      const buffer = Buffer.allocUnsafe(HEAD_BYTES);
      const { bytesRead } = await handle.read(buffer, 0, HEAD_BYTES, 0);
      return buffer.subarray(0, bytesRead).toString('utf8');
    } finally {
      await handle.close();
    }
  });
  if (head === null) return null;
  // (each up to its line's end, never the end of the head: a value the head cuts is not taken)
  const etag = /^ {2}"etag": "([^"\\]*)",?\n/m.exec(head);
  const expiry = /^ {2}"expiresAt": (\d+|null),?\n/m.exec(head);
  const written = /^ {2}"lastModified": "([^"\\]*)",?\n/m.exec(head);
  if (etag && expiry && written) return { etag: etag[1]!, expiresAt: expiry[1] === 'null' ? null : Number(expiry[1]), lastModified: written[1]! };
  const text = await unlessGone(() => readFile(metaFile, 'utf8'));
  if (text === null) return null;
  try {
    const whole = JSON.parse(text) as { etag?: unknown; expiresAt?: unknown; lastModified?: unknown };
    return { etag: String(whole.etag ?? ''), expiresAt: typeof whole.expiresAt === 'number' ? whole.expiresAt : null, lastModified: typeof whole.lastModified === 'string' ? whole.lastModified : '' };
  } catch {
    return null;
  }
}

/** Listing entries of `found` (in its order), those without readable metadata or expired left out. */
async function described(found: { key: string; file: string }[], layout: FileStorageLayout): Promise<SourceEntry[]> {
  const entries = await Promise.all(
    found.map(async ({ key, file }): Promise<SourceEntry | null> => {
      const metaFile = `${file}.meta.json`;
      const [body, meta, metadata] = await Promise.all([unlessGone(() => stat(file)), unlessGone(() => stat(metaFile)), storedHead(metaFile)]);
      // gone since, a file s3db.js did not write as an object (no metadata), or metadata that is
      // not JSON: the client leaves it out too
      if (!body || !meta || !metadata) return null;
      if (layout.expired(metadata)) return null;
      // (the body's `mtime`, which Node rounds to the millisecond, as the client lists it)
      return { key, size: body.size, etag: metadata.etag.replace(/"/g, ''), lastModified: listedStamp(body.mtime.getTime(), meta.mtimeMs, metadata.lastModified) };
    }),
  );
  return entries.filter((e): e is SourceEntry => e !== null);
}
