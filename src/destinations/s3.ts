/**
 * S3 destination (AWS S3 and S3-compatible stores such as Ceph RGW, MinIO, R2): objects under
 * `s3://<bucketName>/<prefix><path>`.
 *
 * Invariants:
 * - write() streams through @aws-sdk/lib-storage `Upload`: parts of `partSize` bytes, `queueSize`
 *   in flight, so memory stays about partSize x queueSize, with no temp files. Each part is a Buffer,
 *   which is what lets the SDK retry a part; a body that fits in one part is sent as one PutObject
 *   with a Buffer body. SHA-256 and size are computed from the bytes as they stream by.
 * - A failed or aborted write leaves nothing: the first part that fails for good ends lib-storage's
 *   shared part feeder (so the rest of the source is not read), and the multipart upload is aborted
 *   (leavePartsOnError false). An upload orphaned by a retried CreateMultipartUpload (the
 *   first answer lost) is aborted right after the write; uploads left by a crashed process are
 *   found and aborted by abortStaleUploads().
 * - Retries: each request gets `maxAttempts` for 5xx, SlowDown/throttling and connection resets
 *   (ECONNRESET, EPIPE, ETIMEDOUT) with exponential backoff ('standard': s3-retry.ts, without the
 *   SDK's client-wide quota, riding out ~8-15 s of outage; 'adaptive': the SDK's). read() additionally resumes a body cut mid-stream with a ranged GET
 *   from the byte it stopped at (pinned to the first ETag, so it never mixes two versions).
 * - createIfAbsent = PutObject If-None-Match: * ; replaceIfMatch = PutObject If-Match: <etag> (sent
 *   unquoted once more when a store compares it without quotes, as Ceph RGW 16 does).
 *   A 412 after a retried request is checked against the stored bytes, so a lost response to our
 *   own successful PUT is not mistaken for someone else's object.
 * - storageClass applies to backup parts (`bulk` writes) only; catalog objects stay STANDARD.
 *   GLACIER / DEEP_ARCHIVE parts are written STANDARD and moved by archive() after verification.
 * - Objects in GLACIER / DEEP_ARCHIVE: read() fails with ERR_ARCHIVED_OBJECT naming the class;
 *   requestRestore() issues RestoreObject.
 * - A store found unreachable (after every retry) is asked again only every few seconds until it
 *   answers: the other requests fail at once meanwhile (s3-reachability.ts). Only on the client
 *   this destination makes.
 * - Labels and errors name the bucket, prefix and path, never credentials.
 * Options: s3-config.ts; error mapping: s3-errors.ts; resumable reads: s3-read.ts.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  RestoreObjectCommand,
  S3Client,
  type GetObjectCommandOutput,
  type PutObjectCommandInput,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { BackupError } from '../errors.js';
import { asSdk, httpStatus as status, s3Error, s3ReadError } from './s3-errors.js';
import { resumableBody } from './s3-read.js';
import { Reachability } from './s3-reachability.js';
import { PatientRetryStrategy } from './s3-retry.js';
import type { Destination, ObjectInfo, ReadOptions, WriteOptions, WriteResult } from './types.js';
import { normalizeS3Config, type S3DestinationConfig, type ResolvedS3Config } from './s3-config.js';

export type { S3DestinationConfig, S3StorageClass } from './s3-config.js';
export { S3_STORAGE_CLASSES } from './s3-config.js';

export interface StaleUpload {
  path: string;
  uploadId: string;
  initiated?: Date;
}

export type RestoreTier = 'Expedited' | 'Standard' | 'Bulk';

/** Classes whose objects cannot be read without a RestoreObject: parts go there only after verification. */
const ARCHIVE_CLASSES: ReadonlySet<string> = new Set(['GLACIER', 'DEEP_ARCHIVE']);
/** CopyObject requests in flight while moving parts into an archive class. */
const ARCHIVE_COPIES = 8;

/** Prefixes beside an empty one that explainEmpty() looks into for backups, at most. */
const EXPLAIN_CANDIDATES = 20;

export class S3Destination implements Destination {
  readonly driver = 's3';
  readonly label: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  /** Holds the credentials: #private, so util.inspect and JSON.stringify of a destination never show them. */
  readonly #config: ResolvedS3Config;
  private readonly ownsClient: boolean;
  /** Whether the store answers (s3-reachability.ts); null on an application's own client. */
  readonly reachability: Reachability | null = null;

  constructor(config: S3DestinationConfig) {
    this.#config = normalizeS3Config(config);
    this.bucket = this.#config.bucketName;
    this.prefix = this.#config.prefix;
    const where = this.#config.endpoint ? ` at ${new URL(this.#config.endpoint).host}` : '';
    this.label = `s3://${this.bucket}/${this.prefix}${where}`;
    if (config.client) {
      this.client = config.client;
      this.ownsClient = false;
    } else {
      const c = this.#config;
      const clientConfig: S3ClientConfig = {
        region: c.region,
        maxAttempts: c.maxAttempts,
        retryMode: c.retryMode,
        // 'standard' without the SDK's client-wide retry quota (s3-retry.ts); 'adaptive' is the SDK's
        ...(c.retryMode === 'standard' ? { retryStrategy: new PatientRetryStrategy(c.maxAttempts) as unknown as NonNullable<S3ClientConfig['retryStrategy']> } : {}),
        requestHandler: {
          connectionTimeout: c.connectionTimeoutMs,
          // an idle socket fails the request (the SDK retries it); `requestTimeout` alone only
          // logs a warning in @smithy/node-http-handler 4 and would also cut a slow large upload
          socketTimeout: c.requestTimeoutMs,
          httpAgent: { keepAlive: true, maxSockets: Math.max(50, c.queueSize * 4) },
          httpsAgent: { keepAlive: true, maxSockets: Math.max(50, c.queueSize * 4) },
        },
        ...(c.endpoint ? { endpoint: c.endpoint } : {}),
        ...(c.forcePathStyle !== undefined ? { forcePathStyle: c.forcePathStyle } : {}),
        ...(c.credentials ? { credentials: c.credentials } : {}),
        ...(c.requestChecksumCalculation ? { requestChecksumCalculation: c.requestChecksumCalculation } : {}),
        ...(c.responseChecksumValidation ? { responseChecksumValidation: c.responseChecksumValidation } : {}),
      };
      this.client = new S3Client(clientConfig);
      // a store found unreachable is asked again only every few seconds (s3-reachability.ts); never
      // put on a client the application passed in, which it may use for other things
      this.reachability = new Reachability();
      this.reachability.guard(this.client);
      this.ownsClient = true;
    }
  }

  /** The S3 key of a destination-relative path; refuses anything that could leave the prefix. */
  key(relative: string): string {
    if (typeof relative !== 'string' || relative === '' || relative.startsWith('/') || relative.includes('\\')) {
      throw new BackupError('ERR_DESTINATION_PATH', `${this.label}: invalid object path "${relative}" (must be relative, with "/" separators)`);
    }
    if (relative.split('/').some((s, i, all) => s === '..' || s === '.' || (s === '' && i !== all.length - 1))) {
      throw new BackupError('ERR_DESTINATION_PATH', `${this.label}: object path "${relative}" escapes or is not normalised`);
    }
    return this.prefix + relative;
  }

  /** `bulk`: a backup part, stored in the configured class unless that class is an archive one (see archive()). */
  private putParams(key: string, contentType?: string, bulk = false): PutObjectCommandInput {
    const c = this.#config;
    return {
      Bucket: this.bucket,
      Key: key,
      ContentType: contentType ?? 'application/octet-stream',
      ...(bulk && c.storageClass && !ARCHIVE_CLASSES.has(c.storageClass) ? { StorageClass: c.storageClass } : {}),
      ...this.encryptionParams(),
    };
  }

  private encryptionParams(): Pick<PutObjectCommandInput, 'ServerSideEncryption' | 'SSEKMSKeyId'> {
    const c = this.#config;
    return { ...(c.serverSideEncryption ? { ServerSideEncryption: c.serverSideEncryption } : {}), ...(c.kmsKeyId ? { SSEKMSKeyId: c.kmsKeyId } : {}) };
  }

  /**
   * With storageClass GLACIER or DEEP_ARCHIVE, moves the parts (written STANDARD, then verified)
   * into it: an in-place CopyObject per part (server side; parts are at most 4 GiB, under
   * CopyObject's 5 GiB), ARCHIVE_COPIES at a time. A no-op for every other class.
   */
  async archive(paths: string[]): Promise<void> {
    const storageClass = this.#config.storageClass;
    if (!storageClass || !ARCHIVE_CLASSES.has(storageClass)) return;
    const queue = [...paths];
    const worker = async (): Promise<void> => {
      for (let relative = queue.shift(); relative !== undefined; relative = queue.shift()) {
        const key = this.key(relative);
        try {
          await this.client.send(
            new CopyObjectCommand({ Bucket: this.bucket, Key: key, CopySource: `${this.bucket}/${encodeURIComponent(key).replace(/%2F/g, '/')}`, StorageClass: storageClass, MetadataDirective: 'COPY', ...this.encryptionParams() }),
          );
        } catch (err) {
          throw this.error(err, 'write', `${relative} (moving it to ${storageClass})`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(ARCHIVE_COPIES, queue.length) }, worker));
  }

  async write(relative: string, body: Readable | Buffer, options: WriteOptions = {}): Promise<WriteResult> {
    const key = this.key(relative);
    const { signal } = options;
    if (signal?.aborted) throw this.error(signal.reason ?? new Error('aborted'), 'write', relative, 'ERR_ABORTED');
    const hash = createHash('sha256');
    let size = 0;

    if (Buffer.isBuffer(body) && body.length <= this.#config.partSize) {
      hash.update(body);
      try {
        await this.client.send(new PutObjectCommand({ ...this.putParams(key, options.contentType, options.bulk), Body: body }), { abortSignal: signal });
      } catch (err) {
        throw this.error(err, 'write', relative);
      }
      return { path: relative, size: body.length, sha256: hash.digest('hex') };
    }

    const source = Buffer.isBuffer(body) ? Readable.from([body], { objectMode: false }) : body;
    const measure = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    source.on('error', (err) => measure.destroy(err));
    source.pipe(measure);
    const onAbort = (): void => {
      measure.destroy(Object.assign(new Error(`write of ${relative} was aborted`), { name: 'AbortError' }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    const upload = new Upload({
      client: this.client,
      params: { ...this.putParams(key, options.contentType, options.bulk), Body: measure },
      partSize: this.#config.partSize,
      queueSize: this.#config.queueSize,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (err) {
      source.unpipe(measure);
      if (!source.destroyed && source !== body) source.destroy();
      if (size >= this.#config.partSize) await this.abortOrphanUploads(key);
      throw this.error(signal?.aborted ? (signal.reason ?? err) : err, 'write', relative, signal?.aborted ? 'ERR_ABORTED' : undefined);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (size >= this.#config.partSize) await this.abortOrphanUploads(key);
    return { path: relative, size, sha256: hash.digest('hex') };
  }

  /**
   * Aborts every incomplete multipart upload of exactly `key`. A CreateMultipartUpload whose answer
   * was lost (connection reset after the server created it) is retried by the SDK and leaves an
   * upload nobody knows the id of; S3 bills its parts until it is aborted. Part paths are unique
   * and written by one backup at a time (the lease), so once our own write of `key` has completed
   * or failed, any upload left for that key is such an orphan. Best effort: a failure here never
   * fails the write (abortStaleUploads() catches what is left on the next backup).
   */
  private async abortOrphanUploads(key: string): Promise<void> {
    try {
      const page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: key }));
      for (const u of page.Uploads ?? []) {
        if (u.Key !== key || !u.UploadId) continue;
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: u.UploadId })).catch(() => undefined);
      }
    } catch {
      // best effort, see above
    }
  }

  async read(relative: string, options: ReadOptions = {}): Promise<Readable> {
    const key = this.key(relative);
    const start = options.start ?? 0;
    const end = options.end;
    if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
      throw new BackupError('ERR_DESTINATION_RANGE', `${this.label}: invalid byte range ${start}-${end ?? ''} for ${relative}`);
    }
    const get = async (from: number, ifMatch?: string): Promise<GetObjectCommandOutput> => {
      const range = from === 0 && end === undefined ? undefined : `bytes=${from}-${end ?? ''}`;
      try {
        return await this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range, IfMatch: ifMatch }),
          { abortSignal: options.signal },
        );
      } catch (err) {
        throw await s3ReadError(this, err, relative, async () => (await this.stat(relative))?.storageClass);
      }
    };
    const first = await get(start);
    return resumableBody({ first, start, get, maxAttempts: this.#config.maxAttempts, what: `${this.label}: ${relative}`, signal: options.signal });
  }

  async stat(relative: string): Promise<ObjectInfo | null> {
    const key = this.key(relative);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return {
        path: relative,
        size: head.ContentLength ?? 0,
        etag: head.ETag,
        lastModified: head.LastModified,
        storageClass: head.StorageClass ?? 'STANDARD',
      };
    } catch (err) {
      if (status(err) === 404 && asSdk(err).name !== 'NoSuchBucket') return null;
      throw this.error(err, 'stat', relative);
    }
  }

  /**
   * Why nothing is listed, when the prefix looks wrong: one that names a folder inside a backup
   * destination, or one beside prefixes that do hold backups (the bucket typed alone, whose
   * default prefix is `backups/`; a mistyped prefix). Looks one level up, at most
   * EXPLAIN_CANDIDATES prefixes there; null when nothing there holds backups either.
   */
  async explainEmpty(): Promise<{ why: string; certain: boolean } | null> {
    const trimmed = this.prefix.replace(/\/+$/, '');
    const leaf = trimmed.slice(trimmed.lastIndexOf('/') + 1);
    const parent = trimmed.includes('/') ? trimmed.slice(0, trimmed.lastIndexOf('/') + 1) : '';
    if (leaf === 'manifests' || leaf === 'data') return { why: `${this.label} looks like a folder inside a backup destination: set the prefix to "${parent}"`, certain: true };
    const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: parent, Delimiter: '/', MaxKeys: 1000 }));
    const candidates = [...(parent !== this.prefix ? [parent] : []), ...(page.CommonPrefixes ?? []).map((c) => c.Prefix ?? '').filter((p) => p !== '' && p !== this.prefix)].slice(0, EXPLAIN_CANDIDATES);
    const holding: string[] = [];
    for (const candidate of candidates) {
      const found = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${candidate}manifests/`, MaxKeys: 1 }));
      if ((found.Contents ?? []).length > 0) holding.push(candidate === '' ? '(the bucket root)' : `"${candidate}"`);
    }
    if (holding.length === 0) return null;
    const which = holding.length > 1 ? 'one of them holds' : 'it holds';
    return { why: `s3://${this.bucket}/${this.prefix} holds no backups, but prefix ${holding.join(', ')} of the same bucket ${holding.length > 1 ? 'do' : 'does'}: if ${which} this database's backups, set the prefix to it (a new database's prefix looks the same until its first backup)`, certain: false };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    if (prefix !== '' && (prefix.startsWith('/') || prefix.split('/').some((s) => s === '..' || s === '.'))) {
      throw new BackupError('ERR_DESTINATION_PATH', `${this.label}: invalid list prefix "${prefix}"`);
    }
    let ContinuationToken: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken }),
        );
      } catch (err) {
        throw this.error(err, 'list', prefix || '(root)');
      }
      for (const o of page.Contents ?? []) {
        if (!o.Key || !o.Key.startsWith(this.prefix)) continue;
        yield {
          path: o.Key.slice(this.prefix.length),
          size: o.Size ?? 0,
          etag: o.ETag,
          lastModified: o.LastModified,
          storageClass: o.StorageClass ?? 'STANDARD',
        };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  async delete(paths: string[]): Promise<void> {
    const keys = paths.map((p) => this.key(p));
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      let result;
      try {
        result = await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
        );
      } catch (err) {
        throw this.error(err, 'delete', `${batch.length} object(s) from ${paths[i]}`);
      }
      const errors = (result.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (errors.length > 0) {
        const list = errors.slice(0, 5).map((e) => `${e.Key?.slice(this.prefix.length)} (${e.Code}: ${e.Message})`).join(', ');
        throw new BackupError('ERR_DESTINATION_IO', `${this.label}: could not delete ${errors.length} object(s): ${list}`);
      }
    }
  }

  async createIfAbsent(relative: string, body: Buffer): Promise<{ created: boolean; etag?: string }> {
    const key = this.key(relative);
    try {
      const out = await this.client.send(new PutObjectCommand({ ...this.putParams(key, 'application/json'), Body: body, IfNoneMatch: '*' }));
      return { created: true, etag: out.ETag };
    } catch (err) {
      if (status(err) === 412 || status(err) === 409) {
        const mine = await this.retriedAndStoredIs(err, key, body);
        return mine ? { created: true, etag: mine } : { created: false };
      }
      throw this.error(err, 'create', relative);
    }
  }

  async replaceIfMatch(relative: string, body: Buffer, etag: string): Promise<{ replaced: boolean; etag?: string }> {
    const key = this.key(relative);
    const put = (ifMatch: string) =>
      this.client.send(new PutObjectCommand({ ...this.putParams(key, 'application/json'), Body: body, IfMatch: ifMatch }));
    try {
      const out = await put(etag);
      return { replaced: true, etag: out.ETag };
    } catch (err) {
      if (status(err) === 412 || status(err) === 409 || status(err) === 404) {
        const mine = await this.retriedAndStoredIs(err, key, body);
        if (mine) return { replaced: true, etag: mine };
        // Ceph RGW (16.x) compares a PUT's If-Match with the ETag *without* its quotes, so a correct
        // quoted tag fails there. When the current tag really equals ours, ask again unquoted: still
        // a conditional PUT, so the compare-and-swap stays atomic.
        const bare = etag.replace(/^"|"$/g, '');
        if (status(err) === 412 && bare !== etag) {
          const current = await this.stat(relative).catch(() => null);
          if (current?.etag?.replace(/^"|"$/g, '') === bare) {
            try {
              const out = await put(bare);
              return { replaced: true, etag: out.ETag };
            } catch (again) {
              if (status(again) !== 412 && status(again) !== 409 && status(again) !== 404) throw this.error(again, 'replace', relative);
            }
          }
        }
        return { replaced: false };
      }
      throw this.error(err, 'replace', relative);
    }
  }

  /**
   * After a conditional PUT failed with 412 on a retried request, our own first attempt may have
   * succeeded with its answer lost. Returns the stored ETag when the stored bytes are exactly ours.
   */
  private async retriedAndStoredIs(err: unknown, key: string, body: Buffer): Promise<string | undefined> {
    if ((asSdk(err).$metadata?.attempts ?? 1) <= 1) return undefined;
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const stored = Buffer.from(await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
      return stored.equals(body) ? got.ETag : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Aborts the incomplete multipart uploads of backup files (data/ and indexes/ under this
   * destination's prefix) that were started more than `olderThanMs` ago: leftovers of crashed or
   * killed runs, which S3 bills until aborted. Other uploads under the prefix (another plugin's
   * with a longer prefix, another application's) are not this plugin's to abort: only paths shaped
   * as this plugin writes them are (isOwnUploadPath).
   */
  async abortStaleUploads(olderThanMs: number): Promise<StaleUpload[]> {
    const cutoff = Date.now() - olderThanMs;
    const aborted: StaleUpload[] = [];
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix || undefined, KeyMarker, UploadIdMarker }),
        );
      } catch (err) {
        throw this.error(err, 'list multipart uploads under', this.prefix || '(root)');
      }
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || (u.Initiated && u.Initiated.getTime() > cutoff)) continue;
        if (!u.Key.startsWith(this.prefix) || !isOwnUploadPath(u.Key.slice(this.prefix.length))) continue;
        try {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }));
        } catch (err) {
          if (asSdk(err).name !== 'NoSuchUpload') throw this.error(err, 'abort the multipart upload of', u.Key);
        }
        aborted.push({ path: u.Key.slice(this.prefix.length), uploadId: u.UploadId, initiated: u.Initiated });
      }
      if (!page.IsTruncated) return aborted;
      KeyMarker = page.NextKeyMarker;
      UploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /**
   * Asks S3 to restore an archived object (GLACIER / DEEP_ARCHIVE) for `days` days. Restores take
   * minutes (Expedited) to hours (Standard: 3-5 h, Bulk: 5-12 h; DEEP_ARCHIVE up to 48 h).
   * Returns 'started', or 'in-progress' when a restore was already requested.
   */
  async requestRestore(relative: string, days = 7, tier: RestoreTier = 'Standard'): Promise<'started' | 'in-progress'> {
    const key = this.key(relative);
    try {
      await this.client.send(
        new RestoreObjectCommand({ Bucket: this.bucket, Key: key, RestoreRequest: { Days: days, GlacierJobParameters: { Tier: tier } } }),
      );
      return 'started';
    } catch (err) {
      if (asSdk(err).name === 'RestoreAlreadyInProgress' || status(err) === 409) return 'in-progress';
      throw this.error(err, 'request a restore of', relative);
    }
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.client.destroy();
  }

  private error(err: unknown, op: string, relative: string, forced?: 'ERR_ABORTED'): BackupError {
    return s3Error(this, err, op, relative, forced);
  }
}

/**
 * Whether `path` (under the prefix) is shaped as a file this plugin uploads in parts: a backup
 * part (`data/...<name>.NNNNNN`) or an object index (`indexes/<id>.index`). Another application's
 * `data/exports/dump.parquet`, or a plugin nested under `data/` (its own `.../data/...` or
 * `.../indexes/...` below), is not (review-paths P3b: with the destination at the bucket root,
 * those were aborted).
 */
export function isOwnUploadPath(path: string): boolean {
  if (/^indexes\/[A-Za-z0-9._-]+\.index$/.test(path)) return true;
  if (!/^data\/.+\.\d{6}$/.test(path)) return false;
  return !path.slice('data/'.length).split('/').some((segment) => segment === 'data' || segment === 'indexes');
}
