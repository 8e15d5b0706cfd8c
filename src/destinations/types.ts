/**
 * The contract every backup destination implements (filesystem, S3). A destination is a flat
 * namespace of objects addressed by relative POSIX-style paths ("manifests/<id>.json").
 *
 * Invariants every implementation keeps:
 * - `write` is atomic: a reader sees either no object or the whole object, never a prefix
 *   (filesystem: temp file + fsync + rename; S3: a single PUT or a completed multipart upload; a
 *   failed write leaves nothing behind, multipart uploads are aborted).
 * - `write` streams: memory stays bounded (about part size x queue size for S3), whatever the size.
 * - `write` returns the size and SHA-256 of exactly the bytes stored.
 * - `createIfAbsent` is an atomic exclusive create (O_EXCL/link on a filesystem, If-None-Match: *
 *   on S3) and `replaceIfMatch` a compare-and-swap on the tag `createIfAbsent`/`stat` returned;
 *   the lease is built on these two.
 * - Paths never escape the destination root; implementations refuse ".." segments and absolute paths.
 * - Errors are BackupError with code ERR_DESTINATION_* and a message naming the destination and path;
 *   a missing object on read is ERR_DESTINATION_NOT_FOUND.
 */
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  /** Path relative to the destination root. */
  path: string;
  size: number;
  /** Opaque change tag (S3 ETag, or a filesystem tag): what replaceIfMatch compares. */
  etag?: string;
  lastModified?: Date;
  storageClass?: string;
}

export interface WriteResult {
  path: string;
  size: number;
  /** Lower-case hex SHA-256 of the bytes stored. */
  sha256: string;
}

export interface WriteOptions {
  contentType?: string;
  signal?: AbortSignal;
  /**
   * The object is a backup part (bulk data). A destination with a storage class stores only these
   * in it; catalog objects (manifests, indexes, key file, lease, records) stay in its default
   * class, so they are always readable at once and never billed an archive minimum.
   */
  bulk?: boolean;
}

export interface ReadOptions {
  /** First byte (inclusive), default 0. */
  start?: number;
  /** Last byte (inclusive), default end of object. */
  end?: number;
  signal?: AbortSignal;
}

export interface Destination {
  /** 'filesystem' | 's3' */
  readonly driver: string;
  /** Human label used in messages and per-destination reports, e.g. "filesystem:/mnt/backups". Never holds credentials. */
  readonly label: string;

  write(path: string, body: Readable | Buffer, options?: WriteOptions): Promise<WriteResult>;
  read(path: string, options?: ReadOptions): Promise<Readable>;
  /** Metadata of one object, or null when it does not exist. */
  stat(path: string): Promise<ObjectInfo | null>;
  /** Every object whose path starts with `prefix`, recursively, sorted by path. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Deletes the objects; paths that do not exist are ignored. */
  delete(paths: string[]): Promise<void>;
  /** Atomic exclusive create. created=false when the object already exists. */
  createIfAbsent(path: string, body: Buffer): Promise<{ created: boolean; etag?: string }>;
  /** Compare-and-swap: replaces the object only if its current tag equals `etag`. */
  replaceIfMatch(path: string, body: Buffer, etag: string): Promise<{ replaced: boolean; etag?: string }>;
  /**
   * Moves bulk objects into an archive class that cannot be read back at once (S3 GLACIER,
   * DEEP_ARCHIVE). Such a class would leave a new backup unverifiable, so `bulk` writes go to the
   * default class and the backup calls this after its verification, before its commit. Absent
   * where there is no such class.
   */
  archive?(paths: string[]): Promise<void>;
  /** Releases clients and sockets. */
  close(): Promise<void>;
  /**
   * Why listing found nothing, when the location looks wrong, or null. `certain`: it cannot hold
   * backups as given (a directory that does not exist, a folder inside a destination), as opposed
   * to one beside a location that holds some, which is also what a new database's looks like
   * until its first backup (the command line's list exits 1 only on a certain one).
   */
  explainEmpty?(): Promise<{ why: string; certain: boolean } | null>;
}

/** Reads a whole small object (manifest, key file, lease) as UTF-8 text. */
export async function readText(destination: Destination, path: string): Promise<string> {
  const stream = await destination.read(path);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks).toString('utf8');
}

/** `label: message` of a destination's error, without saying the label twice (its own errors start with it). */
export function failureAt(label: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.startsWith(`${label}: `) ? message : `${label}: ${message}`;
}
