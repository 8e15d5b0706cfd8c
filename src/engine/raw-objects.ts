/**
 * Objects read and written with their metadata exactly as stored, past s3db.js's metadata codec,
 * and how a restore writes an archive's objects back (objectWriter).
 *
 * s3db.js's clients decode every metadata value on a read (`u:`, `b:`, `d:`, `z:` prefixes) and
 * encode it again on a write (adding its own dictionary compression), and decode→encode is not
 * the identity for values other tools stored: `b:!!!` comes back empty, `constructor` as a
 * function's source, `u:abc` as `abc`. Backups read and restores write the stored bytes instead,
 * so a restore gives back each object as it was, whoever wrote it.
 *
 * Invariants:
 * - Keys are relative to the database's key prefix and joined to it exactly as the client itself
 *   joins them (its own `_applyKeyPrefix` on memory:// and file://, s3db.ts awsAccess on S3), so a
 *   raw read or write reaches the object the client's listing and deletes reach.
 * - `rawObjects()` returns null for a client it does not know how to reach past the codec (another
 *   s3db.js client kind, or internals changed in another version): callers then use the client's
 *   own decoded reads and writes, and the manifest says which form its archives hold.
 * - Errors are the client's own (the S3 client maps AWS errors as its getObject/putObject do; the
 *   local storages throw the same errors their clients pass on), so NotFound and
 *   PreconditionFailed are told apart the same way.
 */
import { createHash } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { metadataDecode, metadataEncode } from 's3db.js/concerns/metadata-encoding';
import type { KeptHeaders } from './archive.js';
import { awsAccess, bodyToBuffer, type ObjectRead, type S3dbClientLike } from './s3db.js';

export interface RawPut {
  key: string;
  /** Values exactly as they are to be stored. */
  metadata: Record<string, string>;
  body: Buffer;
  contentType?: string | undefined;
  contentEncoding?: string | undefined;
  /** Written where the target keeps them (S3, written past the client); memory:// and file:// have no place for them. */
  headers?: KeptHeaders;
  ifNoneMatch?: string;
}

/** The kept headers of an object as read (only those it has). */
export function keptHeadersOf(read: ObjectRead): KeptHeaders {
  const expires = read.ExpiresString ?? (typeof read.Expires === 'string' ? read.Expires : read.Expires instanceof Date && !Number.isNaN(read.Expires.getTime()) ? read.Expires.toUTCString() : undefined);
  return {
    ...(read.CacheControl ? { cacheControl: read.CacheControl } : {}),
    ...(read.ContentDisposition ? { contentDisposition: read.ContentDisposition } : {}),
    ...(read.ContentLanguage ? { contentLanguage: read.ContentLanguage } : {}),
    ...(expires ? { expires } : {}),
  };
}

export interface RawObjects {
  get(key: string): Promise<ObjectRead>;
  put(params: RawPut): Promise<void>;
  /**
   * Whether a header `name` with `value` can be stored as it is: S3 carries metadata in HTTP
   * headers, which take printable ASCII only (a value another tool stored in a local database may
   * hold more).
   */
  storable(name: string, value: string): boolean;
}

/** What s3db.js's memory:// and file:// clients keep objects in (their `storage`). */
interface LocalStorage {
  get(fullKey: string): Promise<ObjectRead>;
  put(fullKey: string, params: { body: Buffer; metadata: Record<string, string>; contentType?: string | undefined; contentEncoding?: string | undefined; ifNoneMatch?: string | undefined }): Promise<unknown>;
}

interface LocalClient {
  storage?: Partial<LocalStorage>;
  _applyKeyPrefix?: (key: string) => string;
}

const HEADER_SAFE = /^[\x20-\x7e]*$/;
/** HTTP trims a header value's leading and trailing spaces: S3 would store such a value trimmed (fidelity-32 F2). */
const EDGE_SPACE = /^ | $/;

/** Raw access to `client`'s objects, or null when this client cannot be reached past its codec. */
export function rawObjects(client: S3dbClientLike, options: { torn?: (key: string) => void } = {}): RawObjects | null {
  const kind = client.constructor?.name ?? '';
  if (kind === 'MemoryClient' || kind === 'FileSystemClient') {
    const local = client as unknown as LocalClient;
    const storage = local.storage;
    const applyPrefix = local._applyKeyPrefix;
    if (typeof storage?.get !== 'function' || typeof storage.put !== 'function' || typeof applyPrefix !== 'function') return null;
    const fullKey = (key: string) => applyPrefix.call(client, key);
    const read = (key: string) => storage.get!.call(storage, fullKey(key));
    return {
      // (a compressing file storage stores the MD5 of the compressed bytes: such a read is not checked; README)
      get: kind === 'FileSystemClient' && !(storage as { enableCompression?: boolean }).enableCompression ? (key) => wholeFileRead(() => read(key), () => options.torn?.(key)) : read,
      put: async (p) => {
        await storage.put!.call(storage, fullKey(p.key), { body: p.body, metadata: p.metadata, contentType: p.contentType, contentEncoding: p.contentEncoding, ifNoneMatch: p.ifNoneMatch });
      },
      storable: () => true,
    };
  }
  if (kind === 'S3Client') {
    const aws = awsAccess(client);
    if (!aws) return null;
    return {
      get: async (key) => (await aws.send(new GetObjectCommand({ Bucket: aws.bucket, Key: aws.fullKey(key) }))) as ObjectRead,
      put: async (p) => {
        await aws.send(
          withoutExpectContinue(new PutObjectCommand({
            Bucket: aws.bucket,
            Key: aws.fullKey(p.key),
            Metadata: p.metadata,
            Body: p.body,
            ...(p.contentType !== undefined ? { ContentType: p.contentType } : {}),
            ...(p.contentEncoding !== undefined ? { ContentEncoding: p.contentEncoding } : {}),
            ...(p.headers?.cacheControl !== undefined ? { CacheControl: p.headers.cacheControl } : {}),
            ...(p.headers?.contentDisposition !== undefined ? { ContentDisposition: p.headers.contentDisposition } : {}),
            ...(p.headers?.contentLanguage !== undefined ? { ContentLanguage: p.headers.contentLanguage } : {}),
            // (an Expires that does not parse as a date is left out: the SDK sends a Date)
            ...(p.headers?.expires !== undefined && !Number.isNaN(Date.parse(p.headers.expires)) ? { Expires: new Date(p.headers.expires) } : {}),
            ...(p.ifNoneMatch !== undefined ? { IfNoneMatch: p.ifNoneMatch } : {}),
          })),
        );
      },
      storable: (name, value) => HEADER_SAFE.test(name) && HEADER_SAFE.test(value) && !EDGE_SPACE.test(value),
    };
  }
  return null;
}

/**
 * `command` without the `Expect: 100-continue` the AWS SDK adds to a body of 2 MiB or more:
 * s3db.js's HTTP handler (recker, on undici) refuses every request that has it ("expect header not
 * supported"), so no such object could be written through it. The header only spares sending a
 * body the store would refuse; it is never signed (SigV4 leaves it out), so it can go after the
 * SDK has set it.
 */
function withoutExpectContinue(command: PutObjectCommand): PutObjectCommand {
  command.middlewareStack.add(
    (next) => async (args) => {
      const headers = (args.request as { headers?: Record<string, string> }).headers;
      for (const name of Object.keys(headers ?? {})) if (name.toLowerCase() === 'expect') delete headers![name];
      return next(args);
    },
    { step: 'finalizeRequest', name: 'withoutExpectContinue' },
  );
  return command;
}

/** Writes one object; with `ifNoneMatch: '*'`, refused (PreconditionFailed) where the key exists. */
export type ObjectWriter = (put: RawPut) => Promise<unknown>;

/**
 * How a restore writes objects to `client`, given the form the archive keeps metadata in. Kept as
 * stored (`asStored`, the manifest's metadataAsStored): written as it is where the client can be
 * written past its codec, a value S3 cannot carry in a header in s3db.js's encoding (storableForm);
 * where it cannot (another kind of client, a header name S3 cannot carry), the values are decoded
 * as s3db.js's client would decode them and written through the client, which encodes them again.
 * Either way s3db.js reads the same values. Kept decoded: written through the client.
 */
export function objectWriter(client: S3dbClientLike, asStored: boolean): ObjectWriter {
  const raw = asStored ? rawObjects(client) : null;
  return (p) => {
    const storable = raw ? storableForm(raw, p.metadata) : null;
    if (raw && storable) return raw.put({ ...p, metadata: storable });
    const metadata = asStored ? Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, metadataDecode(v) as string | null | undefined])) : p.metadata;
    return client.putObject({ ...p, metadata });
  };
}

/**
 * `metadata` as `raw` can store it: each value as it is where it can be, else (a value an S3
 * header cannot carry) in s3db.js's encoding of its decoded value, which s3db.js reads the same;
 * where that encoding would still not carry it (s3db.js leaves leading and trailing spaces as they
 * are, which HTTP trims), its 'u:' form, which s3db.js decodes to the same string. Null when a
 * header name cannot be stored.
 */
function storableForm(raw: RawObjects, metadata: Record<string, string>): Record<string, string> | null {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(metadata)) {
    let stored = value;
    if (!raw.storable(name, stored)) {
      const decoded = metadataDecode(value);
      stored = metadataEncode(decoded).encoded;
      if (!raw.storable(name, stored) && typeof decoded === 'string') stored = `u:${encodeURIComponent(decoded)}`;
    }
    if (!raw.storable(name, stored)) return null;
    out[name] = stored;
  }
  return out;
}

/** Reads of one file:// object before it is taken as read (each a file's worth; ~50 ms in all). */
const WHOLE_READ_ATTEMPTS = 10;

/**
 * A file:// object read whole. s3db.js's file storage reads `<key>.meta.json`, then the body
 * file, while a write renames the body into place first and the metadata after: a write in
 * between gives the old metadata (and ETag) with the new body, a record that was never written
 * (review-consistency F1: on a busy database, a few per backup). The read is repeated until the
 * body's MD5 is the ETag read with it (s3db.js stores the MD5 of the bytes it stores, which are
 * the body's when the storage does not compress). Two reads that agree are not enough: a writer
 * between its two renames tears every read the same way. The body is a Buffer already (the
 * storage reads the file whole).
 */
/** Whether `etag` (quoted or not) is the MD5 of `body`: a plain ETag of it (not a multipart or SSE-KMS one). */
export function isBodyOf(body: Buffer, etag: string): boolean {
  return createHash('md5').update(body).digest('hex') === etag.replace(/"/g, '');
}

async function wholeFileRead(read: () => Promise<ObjectRead>, torn: () => void): Promise<ObjectRead> {
  for (let attempt = 1; ; attempt++) {
    const response = await read();
    const body = await bodyToBuffer(response.Body);
    const whole = isBodyOf(body, String(response.ETag ?? ''));
    // A writer stalled between its renames (a slow disk) tears every read: the object is taken
    // as read and told (`torn`), rather than failing the backup; its listed stamps are the old
    // metadata's, so the next incremental stores it again.
    if (!whole && attempt >= WHOLE_READ_ATTEMPTS) torn();
    if (whole || attempt >= WHOLE_READ_ATTEMPTS) return { ...response, Body: body };
    await new Promise((r) => setTimeout(r, attempt));
  }
}
