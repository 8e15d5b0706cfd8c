/**
 * The body of an S3 GET as a byte stream that survives connections cut mid-body: when the body
 * stream fails with a connection error (ECONNRESET, EPIPE, "aborted", "socket hang up"...), stalls
 * past the request timeout (the SDK's TimeoutError), or ends
 * short of Content-Length, the rest is fetched with a ranged GET from the byte where it stopped,
 * pinned to the first response's ETag (If-Match), so two versions of an object are never mixed.
 * Up to `maxAttempts` consecutive failures without progress, with full-jitter backoff.
 */
import { Readable } from 'node:stream';
import type { GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { BackupError, errorMessage } from '../errors.js';
import { asSdk } from './s3-errors.js';

const RETRYABLE_STREAM_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'ERR_STREAM_PREMATURE_CLOSE']);

export interface ResumableReadOptions {
  first: GetObjectCommandOutput;
  /** First byte of the first response. */
  start: number;
  /** GET from `offset` (inclusive) to the original end, with If-Match `etag`. */
  get: (offset: number, etag: string | undefined) => Promise<GetObjectCommandOutput>;
  maxAttempts: number;
  /** "<destination label>: <path>" for messages. */
  what: string;
  signal?: AbortSignal;
}

export function resumableBody(o: ResumableReadOptions): Readable {
  const etag = o.first.ETag;
  const expected = o.first.ContentLength;
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  async function* chunks(): AsyncGenerator<Buffer> {
    let response = o.first;
    let offset = o.start;
    let failures = 0;
    for (;;) {
      const progressAt = offset;
      try {
        for await (const chunk of response.Body as AsyncIterable<Uint8Array>) {
          const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
          offset += buf.length;
          yield buf;
        }
      } catch (err) {
        if (offset > progressAt) failures = 0;
        // a stalled body: the SDK's socket timeout destroys it with a TimeoutError that has no code
        const retryable = RETRYABLE_STREAM_CODES.has(asSdk(err).code ?? '') || (err as { name?: unknown }).name === 'TimeoutError' || /aborted|socket hang up|timed out/i.test(errorMessage(err));
        if (o.signal?.aborted || !retryable || ++failures >= o.maxAttempts) {
          throw new BackupError('ERR_DESTINATION_IO', `${o.what}: reading failed at byte ${offset}: ${errorMessage(err)}`, { cause: err });
        }
        await sleep(Math.random() * Math.min(20_000, 100 * 2 ** failures));
        response = await o.get(offset, etag);
        continue;
      }
      if (expected !== undefined && offset - o.start !== expected) {
        if (offset > progressAt) failures = 0;
        if (++failures >= o.maxAttempts) {
          throw new BackupError('ERR_DESTINATION_IO', `${o.what}: ended after ${offset - o.start} of ${expected} bytes`);
        }
        response = await o.get(offset, etag);
        continue;
      }
      return;
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}
