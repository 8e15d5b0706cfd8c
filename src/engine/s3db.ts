/**
 * The slice of s3db.js this package relies on, as structural types, plus the helpers that read and
 * write raw objects through the database's own client (`db.client`), so memory://, file://, s3://
 * and S3-compatible endpoints all work the same.
 *
 * Invariants:
 * - Keys handed out are relative to the database's key prefix (s3db's S3 client lists full keys,
 *   its memory and file clients list relative ones: both are normalised here).
 * - Listing is paged (`pageSize` keys per call) and lazy: memory stays bounded by one page, and
 *   keys come in code-point order (what S3 returns). file:// is read directly, one directory at
 *   a time (file-listing.ts). s3db's memory client is the exception: it walks and sorts every key
 *   on every call, so it is listed in ONE call and re-sorted by code point (it holds every object
 *   in memory anyway), as is a file:// client whose layout is not the one known (it sorts with
 *   localeCompare, whose order its own continuation tokens do not follow, so paging can skip keys).
 * - Object bodies are read whole: s3db objects are single records (metadata + a small body).
 * - A listed entry's `lastModified` moves on every write of the object, metadata-only ones
 *   included (change detection relies on it; file:// needs its metadata file's mtime for that).
 */
import { DeleteObjectsCommand, ListObjectsV2Command, type ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import { stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { BackupError, conciseCause, errorMessage } from '../errors.js';
import { fileStorageLayout, listedStamp, listFileStorage, storedHead } from './file-listing.js';
import { listInRanges } from './ranged-listing.js';
import { compareKeys } from './sorted-merge.js';

export interface ListedObject {
  Key?: string;
  Size?: number;
  ETag?: string;
  LastModified?: Date | string;
}

/** An object as read: body, metadata (decoded by s3db.js's client, or as stored: raw-objects.ts) and system headers. */
export interface ObjectRead {
  Body?: unknown;
  Metadata?: Record<string, string>;
  ContentType?: string;
  ContentEncoding?: string;
  CacheControl?: string;
  ContentDisposition?: string;
  ContentLanguage?: string;
  Expires?: Date | string;
  /** The AWS SDK's Expires header as sent (its `Expires` is a Date, Invalid Date for an unparseable one). */
  ExpiresString?: string;
  ETag?: string;
  ContentLength?: number;
  LastModified?: Date | string;
}

export interface S3dbClientLike {
  listObjects(params: { prefix?: string; maxKeys?: number; continuationToken?: string | null }): Promise<{
    Contents?: ListedObject[];
    IsTruncated?: boolean;
    NextContinuationToken?: string | null;
  }>;
  getObject(key: string): Promise<ObjectRead>;
  putObject(params: { key: string; metadata?: Record<string, string | null | undefined>; body?: Buffer; contentType?: string; contentEncoding?: string; ifMatch?: string; ifNoneMatch?: string }): Promise<unknown>;
  deleteObjects(keys: string[]): Promise<unknown>;
  exists?(key: string): Promise<boolean>;
  keyPrefix?: string;
  config?: { keyPrefix?: string; bucket?: string; endpoint?: string };
  bucket?: string;
  connectionString?: string;
}

export interface DatabaseLike {
  client: S3dbClientLike;
  resources: Record<string, unknown>;
  savedMetadata?: unknown;
  _resourcesMap?: Record<string, unknown>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  off?(event: string, listener: (...args: unknown[]) => void): unknown;
  removeListener?(event: string, listener: (...args: unknown[]) => void): unknown;
  emit(event: string, ...args: unknown[]): unknown;
  isConnected?(): boolean;
  connect?(): Promise<void>;
  disconnect?(): Promise<void>;
  version?: string;
  s3dbVersion?: string;
}

export interface SourceEntry {
  key: string;
  size: number;
  etag: string;
  lastModified: string;
  /** S3's StorageClass as listed (S3 stores only; absent elsewhere). */
  storageClass?: string;
}

export function isNotFound(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { name?: string; code?: string; statusCode?: number; $metadata?: { httpStatusCode?: number }; original?: unknown };
  if (e.name === 'NoSuchKey' || e.name === 'NotFound' || e.code === 'NoSuchKey' || e.statusCode === 404 || e.$metadata?.httpStatusCode === 404) return true;
  return e.original !== undefined && isNotFound(e.original);
}

function clientKeyPrefix(client: S3dbClientLike): string {
  return keyFolder(client.config?.keyPrefix ?? client.keyPrefix ?? '');
}

/**
 * The folder under which s3db.js writes the keys of a database with key prefix `raw`: it joins
 * them with path.posix.join, which collapses '//' and '.' segments ('app//x' writes 'app/x/...';
 * a leading '/' stays). '' for none; else ending in one '/'. Compared as written, 'app//x' kept
 * none of the keys listed: every backup was empty, and verified (review-paths P1).
 */
export function keyFolder(raw: string): string {
  if (!raw) return '';
  const joined = path.posix.join(raw, 'k');
  return joined.slice(0, -1);
}

/** True for s3db's in-process clients (memory://, file://), which list by walking everything. */
export function isLocalClient(client: S3dbClientLike): boolean {
  const kind = client.constructor?.name ?? '';
  return kind === 'MemoryClient' || kind === 'FileSystemClient';
}

const ALL_AT_ONCE = 2 ** 31 - 1;

/**
 * A key (relative to the database's prefix) `client` cannot address. With a key prefix, s3db.js's
 * clients join the key to it with path.join, which normalises empty, '.' and '..' segments away:
 * an object stored under such a key is listed, but a read gets another key (a record's, when
 * `data//id=x` sits beside `data/id=x`), and a delete may take another object. Empty segments
 * count at the start too (`pre/fix//s3db.json` reads and deletes `s3db.json`), and so does the
 * empty key (a folder marker `pre/fix/` reads and deletes the object `pre/fix`, beside the
 * database); a trailing '/' (a folder marker) is kept by path.join. Without a prefix, every key
 * is used as it is (s3db.js's CachePlugin writes `plugin=cache/cache//...` there): addressable.
 */
export function unaddressable(client: S3dbClientLike, key: string): boolean {
  if (clientKeyPrefix(client) === '') return false;
  return key === '' || key.split('/').some((segment, i, all) => segment === '.' || segment === '..' || (segment === '' && i < all.length - 1));
}

/**
 * Keys to name in a warning: how many, and the first few (memory stays bounded however many
 * keys a database holds).
 */
export class KeySample {
  count = 0;
  private readonly first: string[] = [];
  constructor(private readonly named = 10) {}

  add(key: string): void {
    this.count++;
    if (this.first.length < this.named) this.first.push(key);
  }

  /** The first keys, quoted, with '...' for the rest. */
  toString(): string {
    return this.first.map((k) => JSON.stringify(k)).join(', ') + (this.count > this.first.length ? ', ...' : '');
  }
}

/** Why objects under unaddressable keys are not backed up or restored. */
export const UNADDRESSABLE =
  "s3db.js's client cannot address their keys under the database's prefix: it joins a key to the prefix normalising empty, '.' and '..' segments away, so a read, write or delete of one reaches another object (another tool wrote them, or a plugin whose own key prefix ends in '/')";

/** What s3db.js's deleteObjects resolves to: { Deleted, Errors } (memory://, file://) or { deleted, notFound } (S3). */
interface DeleteReport {
  Deleted?: unknown[];
  Errors?: { Key?: string; Code?: string; Message?: string }[];
  deleted?: { Errors?: { Key?: string; Code?: string; Message?: string }[] }[];
  notFound?: { message?: string }[];
}

/**
 * Deletes `keys` from a database, or throws ERR_TARGET_WRITE naming what was not deleted.
 * s3db.js's deleteObjects resolves even when keys, or whole batches, were not deleted (their
 * errors are in its report, which it leaves to the caller), so the report is read here.
 */
export async function deleteKeys(client: S3dbClientLike, keys: string[], what: string): Promise<void> {
  if (keys.length === 0) return;
  let report: DeleteReport;
  try {
    report = ((await (deleteDirectly(client) ?? ((k: string[]) => client.deleteObjects(k)))(keys)) ?? {}) as DeleteReport;
  } catch (err) {
    throw new BackupError('ERR_TARGET_WRITE', `could not delete ${what} from the target database: ${conciseCause(errorMessage(err))}`, { cause: err });
  }
  const failures = [
    ...(report.Errors ?? []).map((e) => `${e.Key ?? '?'}: ${e.Code ?? ''} ${e.Message ?? ''}`.trim()),
    ...(report.deleted ?? []).flatMap((d) => d?.Errors ?? []).map((e) => `${e.Key ?? '?'}: ${e.Code ?? ''} ${e.Message ?? ''}`.trim()),
    ...(report.notFound ?? []).map((e) => conciseCause(e.message ?? 'a batch failed')),
  ];
  // in-process clients drop a batch that threw from both lists
  if (failures.length === 0 && Array.isArray(report.Deleted) && report.Deleted.length < keys.length) failures.push(`${keys.length - report.Deleted.length} of ${keys.length} not reported deleted`);
  // s3db's file:// client ignores a failed unlink (an immutable file, a read-only mount): what is
  // still there after a delete that "succeeded" is what says so. (S3 reports each key's failure.)
  if (failures.length === 0 && isLocalClient(client) && typeof client.exists === 'function') {
    for (let i = 0; i < keys.length; i += EXISTS_AT_ONCE) {
      const batch = keys.slice(i, i + EXISTS_AT_ONCE);
      const left = await Promise.all(batch.map((key) => client.exists!(key).catch(() => false)));
      failures.push(...batch.filter((_, j) => left[j]).map((key) => `${key}: still there after its delete`));
    }
  }
  if (failures.length > 0) {
    throw new BackupError('ERR_TARGET_WRITE', `could not delete ${what} from the target database (${failures.length} failed; first: ${failures[0]}); run the restore again once the target takes deletes (restores are idempotent)`);
  }
}

/** Keys per DeleteObjects request (S3's limit). */
const DELETE_BATCH = 1000;

/** s3db.js's S3 client reached as an AWS client: see awsAccess. */
export interface AwsAccess {
  /** Sends `command` through the client's own AWS client (its middleware and credentials; not its operation pool). */
  send(command: object): Promise<unknown>;
  bucket: string;
  /** The full key of relative key `key`, joined to the key prefix as s3db.js joins it (path.posix.join). */
  fullKey(key: string): string;
}

/** s3db.js's S3 client as an AWS client (its `sendCommand`, bucket and key prefix), or null for any other client. */
export function awsAccess(client: S3dbClientLike): AwsAccess | null {
  const remote = client as S3dbClientLike & { sendCommand?: (command: object) => Promise<unknown> };
  const send = remote.sendCommand;
  const bucket = remote.config?.bucket;
  if (remote.constructor?.name !== 'S3Client' || typeof send !== 'function' || typeof bucket !== 'string' || bucket === '') return null;
  withoutRequestMerging(client);
  const keyPrefix = typeof remote.config?.keyPrefix === 'string' ? remote.config.keyPrefix : '';
  return { send: (command) => send.call(client, command), bucket, fullKey: (key) => (keyPrefix ? path.posix.join(keyPrefix, key) : key) };
}

/**
 * s3db.js's own HTTP handler (recker, s3db.js 21.6.2) answers GET requests in flight at once to one
 * path with one response, whatever their query strings (its RequestDeduplicator keys on protocol,
 * host and path): ListObjectsV2 requests of one bucket differ only in their query, so listings at
 * once (ranges of one listing; the application's own beside a backup's) each got another's page,
 * seen as ERR_SOURCE_READ ("keys before StartAfter") or, worse, as keys silently missing (walk-unch
 * F1). It is turned off on the clients this package lists through: it only saved repeating a GET
 * already in flight, and the application's concurrent listings had the same mix-up.
 */
function withoutRequestMerging(client: S3dbClientLike): void {
  const handler = (client as { httpHandler?: { deduplicator?: unknown } | null }).httpHandler;
  if (handler && handler.deduplicator) handler.deduplicator = null;
}

/**
 * On S3, DeleteObjects sent past s3db.js's deleteObjects, which holds a slot of its operation
 * pool while it asks, in the same pool, whether each key exists (a HEAD per key it does not use):
 * with as many deletes at once as the pool has slots (10), every slot waits for a HEAD that can
 * never run, and a merge restore overwriting partitioned records hung for good (review-s3target
 * 2). Null for other clients.
 */
function deleteDirectly(client: S3dbClientLike): ((keys: string[]) => Promise<DeleteReport>) | null {
  const aws = awsAccess(client);
  if (!aws) return null;
  return async (keys) => {
    const Errors: NonNullable<DeleteReport['Errors']> = [];
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const Objects = keys.slice(i, i + DELETE_BATCH).map((key) => ({ Key: aws.fullKey(key) }));
      const answer = (await aws.send(new DeleteObjectsCommand({ Bucket: aws.bucket, Delete: { Objects, Quiet: true } }))) as { Errors?: DeleteReport['Errors'] } | undefined;
      Errors.push(...(answer?.Errors ?? []));
    }
    return { Errors };
  };
}

/** Existence checks in flight at once after a delete. */
const EXISTS_AT_ONCE = 16;

/**
 * s3db.js's listing errors say "Unknown error in listObjects" whatever happened; the S3 code and
 * HTTP status it keeps beside the message (AccessDenied 403, InternalError 500, ECONNRESET) are
 * what a user needs. A file:// walk's failure is Node's, whose message names the call and the file.
 */
function listingError(err: unknown): BackupError {
  const e = err as { code?: unknown; statusCode?: unknown; syscall?: unknown; $metadata?: { httpStatusCode?: unknown } };
  const status = e.statusCode ?? e.$metadata?.httpStatusCode;
  // a file system's error (the file:// walk) says what and which file in its message
  const what = typeof e.syscall === 'string' ? '' : [typeof e.code === 'string' ? e.code : null, typeof status === 'number' ? `HTTP ${status}` : null].filter(Boolean).join(', ');
  const access = e.code === 'AccessDenied' || status === 403 ? ': check the credentials and the permission to list the bucket' : '';
  const bucket = missingBucket(err) ? `: ${MISSING_BUCKET}` : '';
  return new BackupError('ERR_SOURCE_READ', `could not list the database's objects (${what || conciseCause(errorMessage(err))})${access}${bucket}`, { cause: err });
}

/** What to do when a database's bucket does not exist (said by listings here and by target.ts's open). */
export const MISSING_BUCKET = 'the bucket does not exist (s3db.js does not create buckets): create it, or check the bucket name in the connection string';

/** True when an error, or one it wraps (s3db.js keeps the AWS error as `original`), says the bucket does not exist. */
export function missingBucket(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 4) return false;
  const e = err as { code?: unknown; Code?: unknown; name?: unknown; original?: unknown; cause?: unknown };
  if ([e.code, e.Code, e.name].includes('NoSuchBucket')) return true;
  return missingBucket(e.original, depth + 1) || missingBucket(e.cause, depth + 1);
}

/**
 * Every object under `prefix`, sorted by key (code points), one page at a time. On S3 several
 * ranges of the key space are listed at once (`ranges: false`, one page after another and none
 * ahead, for a caller that wants a key or two: it would start requests it never reads).
 */
export async function* listObjects(client: S3dbClientLike, options: { prefix?: string; pageSize?: number; ranges?: boolean } = {}): AsyncIterable<SourceEntry> {
  const keyPrefix = clientKeyPrefix(client);
  const fileLayout = fileStorageLayout(client, keyPrefix);
  if (fileLayout) {
    try {
      yield* listFileStorage(fileLayout, options.prefix ?? '');
    } catch (err) {
      throw listingError(err); // (the walk's own failures: a consumer that stops early returns, it does not throw here)
    }
    return;
  }
  const local = isLocalClient(client);
  const aws = local ? null : awsAccess(client);
  if (aws) {
    yield* listS3(aws, keyPrefix, options.prefix ?? '', options.pageSize ?? 1000, options.ranges !== false);
    return;
  }
  let token: string | null | undefined = null;
  do {
    let page: Awaited<ReturnType<S3dbClientLike['listObjects']>>;
    try {
      page = await client.listObjects({
        prefix: options.prefix ?? '',
        maxKeys: local ? ALL_AT_ONCE : (options.pageSize ?? 1000),
        continuationToken: token,
      });
    } catch (err) {
      throw listingError(err);
    }
    const entries: SourceEntry[] = [];
    for (const item of page.Contents ?? []) {
      if (!item.Key) continue;
      // s3db's S3 client lists `Prefix: keyPrefix` without its '/', so a sibling database's keys
      // come too ('app/db2/...' under 'app/db'): not this database's. (In-process clients list
      // keys without the prefix.)
      if (keyPrefix && !local && !item.Key.startsWith(keyPrefix)) continue;
      const key = keyPrefix && item.Key.startsWith(keyPrefix) ? item.Key.slice(keyPrefix.length) : item.Key;
      entries.push({
        key,
        size: item.Size ?? 0,
        etag: String(item.ETag ?? '').replace(/"/g, ''),
        lastModified: item.LastModified ? new Date(item.LastModified).toISOString() : '',
      });
    }
    if (local) entries.sort((a, b) => compareKeys(a.key, b.key));
    const metadataFile = metadataFileOf(client);
    if (metadataFile) yield* withMetadataStamps(entries, metadataFile);
    else yield* entries;
    token = !local && page.IsTruncated ? page.NextContinuationToken : null;
  } while (token);
}

/** ListObjectsV2 requests in flight at once while listing one database on S3. */
export const LIST_CONCURRENCY = 8;

/** How a database on S3 is listed in ranges (ranged-listing.ts): 16 pages held at most (~3 MB), ranges of ~2 pages, none cut in a listing of up to 4 pages. */
export const RANGED_LISTING = { concurrency: LIST_CONCURRENCY, maxPages: 2 * LIST_CONCURRENCY, maxRanges: 4 * LIST_CONCURRENCY, cutAfterPages: 4, pagesPerRange: 2, cutsPerPage: 0.5 } as const;

/**
 * The keys under `keyPrefix + prefix` on S3 (relative to `keyPrefix`), LIST_CONCURRENCY ranges of
 * the key space at a time (ranged-listing.ts), through the client's own AWS client. The Prefix
 * ends in the database's folder, so a sibling database's keys ('app/db2/...' under 'app/db') are
 * not listed, where s3db.js's listObjects asks for 'app/db' and filters them out.
 */
async function* listS3(aws: AwsAccess, keyPrefix: string, prefix: string, pageSize: number, ranges: boolean): AsyncIterable<SourceEntry> {
  const Prefix = keyPrefix + prefix;
  const pages = listInRanges<SourceEntry>({
    prefix: Prefix,
    key: (entry) => entry.key,
    ...RANGED_LISTING,
    ...(ranges ? {} : { concurrency: 1, maxPages: 1, maxRanges: 1 }),
    fetch: async ({ startAfter, prefix: within }) => {
      const page = (await aws.send(new ListObjectsV2Command({ Bucket: aws.bucket, Prefix: within, MaxKeys: pageSize, ...(startAfter === undefined ? {} : { StartAfter: startAfter }) }))) as ListObjectsV2CommandOutput;
      // S3 echoes the request's Prefix and StartAfter: a page that echoes another request's is
      // another range's answer (something between merged the requests, as s3db.js's own HTTP
      // handler did: walk-unch F1), which would pass for an empty range and lose its keys unseen
      if ((page.Prefix !== undefined && page.Prefix !== within) || (startAfter !== undefined && page.StartAfter !== undefined && page.StartAfter !== startAfter)) {
        throw new Error(`the store answered a listing request (Prefix ${JSON.stringify(within)}, StartAfter ${JSON.stringify(startAfter ?? null)}) with the page of another (Prefix ${JSON.stringify(page.Prefix)}, StartAfter ${JSON.stringify(page.StartAfter ?? null)}): a client, proxy or cache between merged requests`);
      }
      const items: SourceEntry[] = [];
      for (const item of page.Contents ?? []) {
        if (!item.Key?.startsWith(Prefix)) continue;
        items.push({
          key: item.Key,
          size: item.Size ?? 0,
          etag: String(item.ETag ?? '').replace(/"/g, ''),
          lastModified: item.LastModified ? new Date(item.LastModified).toISOString() : '',
          ...(item.StorageClass ? { storageClass: String(item.StorageClass) } : {}),
        });
      }
      return { items, truncated: page.IsTruncated === true };
    },
  });
  try {
    for await (const page of pages) {
      for (const entry of page) yield { ...entry, key: entry.key.slice(keyPrefix.length) };
    }
  } catch (err) {
    throw listingError(err);
  }
}

/**
 * s3db's file:// client lists the body file's mtime as an object's LastModified, but keeps the
 * object's metadata (where most records' values live) in `<file>.meta.json`: a metadata-only update
 * (`patch`, a copy of the object onto itself) rewrites only that file, and a put writes it after the
 * body. For file:// the stamp is the one file-listing.ts listedStamp gives (where this listing is
 * the client's own, wrapped: file-listing.ts walks the files otherwise). Null for other clients, or
 * when the client's layout is not the one known (s3db.js 21): the listed stamp is then used as it is.
 */
function metadataFileOf(client: S3dbClientLike): ((key: string) => string) | null {
  if (client.constructor?.name !== 'FileSystemClient') return null;
  const c = client as unknown as { storage?: { _getMetadataPath?(key: string): string }; _applyKeyPrefix?(key: string): string };
  const storage = c.storage;
  if (typeof storage?._getMetadataPath !== 'function' || typeof c._applyKeyPrefix !== 'function') return null;
  return (key) => storage._getMetadataPath!(c._applyKeyPrefix!(key));
}

const STAT_BATCH = 32;

/** `entries` with each stamp as listedStamp gives it from its metadata file (lazily, STAT_BATCH files at a time). */
async function* withMetadataStamps(entries: SourceEntry[], metadataFile: (key: string) => string): AsyncIterable<SourceEntry> {
  for (let i = 0; i < entries.length; i += STAT_BATCH) {
    const batch = entries.slice(i, i + STAT_BATCH);
    await Promise.all(
      batch.map(async (entry) => {
        // gone since the listing, or unreadable: its read decides
        const file = metadataFile(entry.key);
        const [meta, head] = await Promise.all([stat(file).catch(() => null), storedHead(file).catch(() => null)]);
        if (!meta && !head) return;
        const body = Date.parse(entry.lastModified);
        entry.lastModified = listedStamp(Number.isFinite(body) ? body : 0, meta?.mtimeMs ?? null, head?.lastModified ?? '');
      }),
    );
    yield* batch;
  }
}

/**
 * Writes s3db.json only if it is still the version read (`etag`; `existed` false: only if there is
 * none), so another writer's definitions (the application creating a resource) are never
 * overwritten. False when it changed meanwhile: read it again and retry. A client that gave no
 * ETag for an existing s3db.json gets an unconditional write (nothing to compare with).
 */
export async function writeStoredMetadata(db: DatabaseLike, value: unknown, etag: string | null, existed: boolean, previous: string | null = null): Promise<boolean> {
  const put = async (condition: { ifMatch?: string; ifNoneMatch?: string }): Promise<boolean> => {
    try {
      await db.client.putObject({ key: 's3db.json', body: Buffer.from(JSON.stringify(value, null, 2)), contentType: 'application/json', ...condition });
      return true;
    } catch (err) {
      if (isPreconditionFailed(err)) return false;
      throw await failedSchemaWrite(db, err, previous);
    }
  };
  if (!existed) return put({ ifNoneMatch: '*' });
  if (etag === null) return put({});
  if (await put({ ifMatch: etag })) return true;
  // Ceph RGW 16 compares If-Match with the ETag without its quotes (as destinations/s3.ts notes):
  // when the stored version is still the one read, ask once more unquoted.
  const unquoted = etag.replace(/"/g, '');
  if (unquoted === etag) return false;
  const now = await db.client.getObject('s3db.json').then(async (res) => (await bodyToBuffer(res.Body), res.ETag ?? null), () => null); // the body drained: no socket left waiting
  return now === etag && (await put({ ifMatch: unquoted }));
}

/**
 * The error of a failed write of s3db.json, once what was there before (`previous`, its text) is
 * back: s3db.js's file:// client deletes an object whose `.meta.json` write fails (a full disk),
 * and the database's next connect() would then write an empty s3db.json, every definition gone.
 * When it cannot be put back either, its text is saved in a file the error names.
 */
async function failedSchemaWrite(db: DatabaseLike, err: unknown, previous: string | null): Promise<BackupError> {
  const failed = `could not write the target database's s3db.json (${conciseCause(errorMessage(err))})`;
  const rerun = 'Records were written, the definitions were not: fix the cause (free space, access), then run the same restore again';
  if (previous === null) return new BackupError('ERR_TARGET_WRITE', `${failed}. ${rerun}`, { cause: err });
  const now = await db.client.getObject('s3db.json').then(
    async (res) => (await bodyToBuffer(res.Body)).toString('utf8'),
    (e: unknown) => (isNotFound(e) ? null : undefined),
  );
  if (now === undefined) {
    return new BackupError('ERR_TARGET_WRITE', `${failed}, and whether the previous one is still there could not be checked: look at the database's s3db.json before the application connects (README runbook, step 4); then run the same restore again`, { cause: err });
  }
  if (now !== null) {
    // still there (as it was, or as another writer left it): nothing to put back
    return new BackupError('ERR_TARGET_WRITE', `${failed}; it is left as it was. ${rerun}`, { cause: err });
  }
  try {
    await db.client.putObject({ key: 's3db.json', body: Buffer.from(previous, 'utf8'), contentType: 'application/json' });
    return new BackupError('ERR_TARGET_WRITE', `${failed}, and the client deleted it; it was put back as it was before the restore. ${rerun}`, { cause: err });
  } catch (putBack) {
    const saved = path.join(tmpdir(), `s3db-backup-s3db.json-before-restore-${Date.now()}.json`);
    const kept = await writeFile(saved, previous, { mode: 0o600 }).then(() => `its text is saved in ${saved}`, (e: unknown) => `its text could not be saved either (${errorMessage(e)})`);
    return new BackupError(
      'ERR_TARGET_METADATA',
      `${failed}, and the client deleted it; putting it back failed too (${conciseCause(errorMessage(putBack))}), so the database has no s3db.json: ${kept}. Before the application or anything else connects to it (s3db.js would write an empty s3db.json, every definition gone), fix the cause and copy that text back as s3db.json (README runbook, step 4); then run the same restore again`,
      { cause: err },
    );
  }
}

/** Whether `err` is a refused conditional write (412 PreconditionFailed), as s3db's clients and S3 report it. */
export function isPreconditionFailed(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { name?: string; code?: string; statusCode?: number; $metadata?: { httpStatusCode?: number }; original?: unknown; cause?: unknown };
  if (e.name === 'PreconditionFailed' || e.code === 'PreconditionFailed' || e.statusCode === 412 || e.$metadata?.httpStatusCode === 412) return true;
  return (e.original !== undefined && isPreconditionFailed(e.original)) || (e.cause !== undefined && e.cause !== err && isPreconditionFailed(e.cause));
}

/** Whether any object's key starts with `prefix` (one listing request of one key). */
export async function hasObjects(client: S3dbClientLike, prefix: string): Promise<boolean> {
  for await (const _ of listObjects(client, { prefix, pageSize: 1, ranges: false })) return true;
  return false;
}

export async function bodyToBuffer(body: unknown): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const withBytes = body as { transformToByteArray?: () => Promise<Uint8Array> };
  if (typeof withBytes.transformToByteArray === 'function') {
    const bytes = await withBytes.transformToByteArray();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of body as Readable) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** The s3db.js version of a database instance, when it tells. */
export function s3dbVersionOf(db: DatabaseLike): string | null {
  return db.s3dbVersion ?? db.version ?? null;
}

/**
 * Ordered parallel map: runs `fn` on up to `concurrency` items at once and yields results in input
 * order. Memory: at most `concurrency` results are held, and with `bytes` at most `budget` of
 * their weight (or one item heavier than that). `undefined` results are dropped.
 */
export async function* mapOrdered<T, R>(
  items: AsyncIterable<T>,
  concurrency: number,
  fn: (item: T) => Promise<R | undefined>,
  bytes?: { weight: (item: T) => number; budget: number },
): AsyncIterable<R> {
  // Each item in the window holds its weight (e.g. an object's size: its body is read whole) until
  // it is handed on; a new item starts only while the window's weight stays within the budget, or
  // when the window is empty (one item larger than the budget still goes, alone).
  const window: { result: Promise<R | undefined>; weight: number }[] = [];
  let weight = 0;
  let waiting: T | null = null;
  const iterator = items[Symbol.asyncIterator]();
  let done = false;
  try {
    while (!done || waiting !== null || window.length > 0) {
      while (window.length < concurrency) {
        let item: T;
        if (waiting !== null) item = waiting;
        else if (done) break;
        else {
          const next = await iterator.next();
          if (next.done) {
            done = true;
            break;
          }
          item = next.value;
        }
        const given = bytes ? bytes.weight(item) : 0;
        const w = Number.isFinite(given) ? Math.max(0, given) : 0; // a NaN would switch the budget off for good
        if (bytes && window.length > 0 && weight + w > bytes.budget) {
          waiting = item;
          break;
        }
        waiting = null;
        const result = fn(item);
        result.catch(() => undefined); // observed when awaited below; avoids unhandled rejection while queued
        window.push({ result, weight: w });
        weight += w;
      }
      if (window.length > 0) {
        const head = window.shift()!;
        const value = await head.result;
        weight -= head.weight;
        if (value !== undefined) yield value;
      }
    }
  } finally {
    if (!done) await iterator.return?.();
  }
}

/** The database's s3db.json as stored, parsed; null when it has none; ERR_TARGET_METADATA when it is not JSON. */
export async function readStoredMetadata<T = Record<string, unknown>>(db: DatabaseLike): Promise<T | null> {
  return (await readStoredMetadataVersion<T>(db)).value;
}

/** readStoredMetadata with the ETag of the version read (null when there is none), for writeStoredMetadata. */
export async function readStoredMetadataVersion<T = Record<string, unknown>>(db: DatabaseLike): Promise<{ value: T | null; etag: string | null; text: string | null }> {
  let text: string;
  let etag: string | null;
  try {
    const res = await db.client.getObject('s3db.json');
    text = (await bodyToBuffer(res.Body)).toString('utf8');
    etag = res.ETag ?? null;
  } catch (err) {
    if (isNotFound(err)) return { value: null, etag: null, text: null };
    throw err;
  }
  try {
    return { value: JSON.parse(text) as T, etag, text };
  } catch (err) {
    throw new BackupError(
      'ERR_TARGET_METADATA',
      `the target database's s3db.json is not valid JSON (${errorMessage(err)}); nothing was restored. A whole-database restore puts the backup's s3db.json back: mode 'merge' keeps records newer than the backup, 'replace' makes every resource exactly the backup (s3db.js also moves a corrupt s3db.json aside when it connects)`,
      { cause: err },
    );
  }
}
