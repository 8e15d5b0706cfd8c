/**
 * Archive records: how S3 objects (key, metadata, content type, body) are laid out inside the
 * plaintext of one backup part (docs/FORMAT.md section 3).
 *
 *   archive = "S3DBARC1" || record* || u32 0 || u64 record_count
 *   record  = u32 header_len (> 0) || header (UTF-8 JSON, ArchiveHeader) || body (header.size bytes)
 *
 * Invariants:
 * - The writer emits records in the order it is given them; the engine gives them sorted by key,
 *   so every part (and every group of parts) is a sorted run: restore merges runs without sorting.
 * - The reader never yields a record before its whole body has arrived, keeps at most one record
 *   plus one input chunk in memory, and rejects a missing end marker (truncation), a count that
 *   differs from the records seen, and bytes after the end marker. Yielded bodies own their bytes
 *   (never views of an input chunk), so holding records does not hold input chunks.
 * - A tombstone (`deleted: true`, size 0) records that the key did not exist at backup time
 *   (incremental backups only).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { BackupError } from '../errors.js';

export const ARCHIVE_MAGIC = Buffer.from('S3DBARC1', 'ascii');
/** Largest header we accept: S3 metadata is limited to 2 KiB, keys to 1 KiB; this leaves room. */
const MAX_HEADER_BYTES = 1024 * 1024;

/** HTTP headers an S3 object may carry besides its content type and encoding (another tool's: s3db.js sets none), kept as read (FORMAT.md 3, revision 13). */
export interface KeptHeaders {
  cacheControl?: string;
  contentDisposition?: string;
  contentLanguage?: string;
  /** As the store sent it (an HTTP date). */
  expires?: string;
}

/** The kept headers `h` has (a header's other fields left out). */
export function keptHeaders(h: KeptHeaders): KeptHeaders {
  const out: KeptHeaders = {};
  for (const name of ['cacheControl', 'contentDisposition', 'contentLanguage', 'expires'] as const) if (typeof h[name] === 'string') out[name] = h[name];
  return out;
}

export interface ArchiveHeader extends KeptHeaders {
  key: string;
  size: number;
  metadata?: Record<string, string>;
  contentType?: string;
  contentEncoding?: string;
  etag?: string;
  lastModified?: string;
  deleted?: boolean;
  /** A logical record (a selected resource's decoded record as JSON), see logical.ts. */
  logical?: boolean;
}

export interface ArchiveRecord {
  header: ArchiveHeader;
  body: Buffer;
}

/** Object-mode ArchiveRecord in, archive bytes out. */
export class ArchiveWriter extends Transform {
  private count = 0n;
  private started = false;
  /** Plaintext bytes emitted so far (what the part-size limit is measured against). */
  bytes = 0;

  constructor() {
    super({ writableObjectMode: true, readableHighWaterMark: 1024 * 1024 });
  }

  override _transform(record: ArchiveRecord, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.started) this.emitBytes(ARCHIVE_MAGIC);
    this.started = true;
    const header = Buffer.from(JSON.stringify({ ...record.header, size: record.body.length }), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(header.length);
    this.emitBytes(len);
    this.emitBytes(header);
    if (record.body.length > 0) this.emitBytes(record.body);
    this.count++;
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (!this.started) this.emitBytes(ARCHIVE_MAGIC);
    const end = Buffer.alloc(12);
    end.writeUInt32BE(0, 0);
    end.writeBigUInt64BE(this.count, 4);
    this.emitBytes(end);
    cb();
  }

  private emitBytes(b: Buffer): void {
    this.bytes += b.length;
    this.push(b);
  }
}

/**
 * Archive bytes in, records out, one at a time: the next input chunk is read only when the consumer
 * has taken every record of the current one (a decoder may emit chunks of many megabytes holding
 * hundreds of thousands of small records; pushing them all at once would hold them all).
 * `label` names the part in errors.
 */
export async function* readArchive(source: AsyncIterable<Buffer | Uint8Array>, label: string): AsyncIterable<ArchiveRecord> {
  const parser = new ArchiveParser(label);
  for await (const chunk of source) {
    parser.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    for (let record = parser.next(); record !== null; record = parser.next()) yield record;
  }
  parser.end();
}

/** Incremental parser of the archive format: push() bytes, next() at most one record at a time. */
export class ArchiveParser {
  private readonly queue = new ByteQueue();
  private state: 'magic' | 'length' | 'header' | 'body' | 'count' | 'done' = 'magic';
  private need = ARCHIVE_MAGIC.length;
  private header: ArchiveHeader | null = null;
  private seen = 0n;

  constructor(private readonly label: string) {}

  push(chunk: Buffer): void {
    if (this.state === 'done' && chunk.length > 0) throw this.corrupt('has data after its end marker');
    this.queue.push(chunk);
  }

  /** The next complete record, or null when more bytes are needed (or the archive has ended). */
  next(): ArchiveRecord | null {
    while (this.queue.length >= this.need && this.state !== 'done') {
      const bytes = this.queue.take(this.need);
      switch (this.state) {
        case 'magic':
          if (!bytes.equals(ARCHIVE_MAGIC)) throw this.corrupt('does not start with the archive magic');
          this.expect('length', 4);
          break;
        case 'length': {
          const len = bytes.readUInt32BE(0);
          if (len === 0) this.expect('count', 8);
          else if (len > MAX_HEADER_BYTES) throw this.corrupt(`has a record header of ${len} bytes`);
          else this.expect('header', len);
          break;
        }
        case 'header': {
          const header = parseHeader(bytes);
          if (!header) throw this.corrupt('has an unreadable record header');
          this.header = header;
          if (header.size === 0) return this.record(Buffer.alloc(0));
          this.expect('body', header.size);
          break;
        }
        case 'body':
          // Own copy: a view would pin the decoder's whole output chunk for as long as the record lives.
          return this.record(Buffer.from(bytes));
        case 'count': {
          const count = bytes.readBigUInt64BE(0);
          if (count !== this.seen) throw this.corrupt(`says it holds ${count} records but ${this.seen} were read`);
          this.state = 'done';
          break;
        }
      }
    }
    if (this.state === 'done' && this.queue.length > 0) throw this.corrupt('has data after its end marker');
    return null;
  }

  /** The input has ended: anything but a complete archive is an error. */
  end(): void {
    if (this.state !== 'done') throw this.corrupt('ends before its end marker (truncated)', 'ERR_ARCHIVE_TRUNCATED');
  }

  private record(body: Buffer): ArchiveRecord {
    this.seen++;
    const record = { header: this.header!, body };
    this.header = null;
    this.expect('length', 4);
    return record;
  }

  private expect(state: ArchiveParser['state'], need: number): void {
    this.state = state;
    this.need = need;
  }

  private corrupt(problem: string, code = 'ERR_ARCHIVE_CORRUPT'): BackupError {
    return new BackupError(code, `backup part ${this.label} ${problem}; the part is damaged, restore from another backup or destination`);
  }
}

function parseHeader(bytes: Buffer): ArchiveHeader | null {
  try {
    const h = JSON.parse(bytes.toString('utf8')) as Partial<ArchiveHeader>;
    if (typeof h.key !== 'string' || typeof h.size !== 'number' || !Number.isSafeInteger(h.size) || h.size < 0) return null;
    return h as ArchiveHeader;
  } catch {
    return null;
  }
}

/** FIFO of byte chunks: take(n) without re-concatenating everything on every push. */
class ByteQueue {
  private chunks: Buffer[] = [];
  private offset = 0;
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  take(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
      this.length -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const available = chunk.length - this.offset;
      const used = Math.min(available, n - filled);
      chunk.copy(out, filled, this.offset, this.offset + used);
      filled += used;
      this.offset += used;
      if (this.offset === chunk.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    this.length -= n;
    return out;
  }
}
