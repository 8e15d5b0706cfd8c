/**
 * Reading stored objects back: checksum tap + decoder, and the object-index stream format.
 *
 * Invariants:
 * - openDecoded() checks the stored bytes' size and SHA-256 against the manifest as they stream;
 *   a mismatch is an error raised before the decoded stream ends, so a consumer never completes on
 *   bad data.
 * - The index is JSON lines, one IndexEntry per line, sorted by key; readIndex() yields entries
 *   lazily (bounded memory) and fails on a bad checksum at the end.
 * - Manifests never change once written. An index rebuilt after the manifest's was lost is named
 *   by a reference beside it at each destination (indexRefAt, index-repair.ts), read afresh on
 *   every use, so a process that cached the manifest still finds it.
 * - readPartRecords() yields a part's records in key order, each once, resuming at the next
 *   destination after the last key it returned when one fails midway.
 */
import { createHash } from 'node:crypto';
import { PassThrough, Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecoder, type KeyHandle } from '../codec/index.js';
import type { DestinationSet } from '../destinations/set.js';
import { readText, type Destination } from '../destinations/types.js';
import { readArchive, type ArchiveRecord } from './archive.js';
import { paths } from './layout.js';
import { mapOrdered } from './s3db.js';
import { BackupError, errorMessage } from '../errors.js';
import type { IndexEntry, Manifest, ManifestHead, PartEntry } from './manifest.js';
import { compareKeys } from './sorted-merge.js';

export interface StoredRef {
  path: string;
  size: number;
  sha256: string;
}

/** Passes bytes through; fails at the end if size or SHA-256 differ from `expected`. */
export class ChecksumTap extends Transform {
  private readonly hash = createHash('sha256');
  private size = 0;

  constructor(
    private readonly expected: StoredRef,
    private readonly where: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }

  /** What is checked, for messages: an object index (indexes/...) or a part. */
  private kind(): string {
    return this.expected.path.startsWith('indexes/') ? 'the object index' : 'the part';
  }

  override _flush(cb: TransformCallback): void {
    const digest = this.hash.digest('hex');
    if (this.size !== this.expected.size) {
      return cb(new BackupError('ERR_PART_SIZE', `${this.expected.path} at ${this.where} has ${this.size} bytes, the manifest says ${this.expected.size}: ${this.kind()} is truncated or damaged`));
    }
    if (digest !== this.expected.sha256) {
      return cb(new BackupError('ERR_PART_CHECKSUM', `${this.expected.path} at ${this.where} fails its SHA-256 check: ${this.kind()} is corrupted`));
    }
    cb();
  }
}

export function codecOf(manifest: Manifest, key: KeyHandle | null): { compression: Manifest['codec']['compression']; key?: KeyHandle } {
  return key ? { compression: manifest.codec.compression, key } : { compression: manifest.codec.compression };
}

/** Stored bytes -> checksum tap -> decoder. Errors of any stage surface on the returned stream. */
export function openDecoded(stored: Readable, ref: StoredRef, where: string, codec: ReturnType<typeof codecOf>, threads?: number): Readable {
  const out = new PassThrough({ readableHighWaterMark: 1024 * 1024 });
  pipeline(stored, new ChecksumTap(ref, where), createDecoder(threads === undefined ? codec : { ...codec, threads }), out).catch((err: unknown) => {
    out.destroy(annotate(err, ref.path, where));
  });
  return out;
}

function annotate(err: unknown, path: string, where: string): Error {
  if (err instanceof BackupError && (err.message.includes(path) || err.code.startsWith('ERR_DESTINATION'))) return err;
  if (err instanceof BackupError) return new BackupError(err.code, `${path} at ${where}: ${err.message}`, { cause: err, details: err.details });
  return err instanceof Error ? err : new Error(String(err));
}

/** Object-mode IndexEntry in, JSON lines out. */
export class IndexLineWriter extends Transform {
  constructor() {
    super({ writableObjectMode: true, readableHighWaterMark: 256 * 1024 });
  }

  override _transform(entry: IndexEntry, _enc: BufferEncoding, cb: TransformCallback): void {
    cb(null, `${JSON.stringify(entry)}\n`);
  }
}

/**
 * An index line's key and holder (`k`, `b`), what verification joins on. Lines are written by
 * IndexLineWriter as `{"k":...,"e":...,"s":...,"m":...,"b":...}`; a key without a backslash (an
 * escape) and an id without a quote are read straight from that shape, a tenth of the cost of
 * JSON.parse (review verify-cost); any other line is parsed whole. Throws on a line that is not JSON.
 */
export function indexLineKeys(line: string): Pick<IndexEntry, 'k' | 'b'> {
  if (line.startsWith('{"k":"') && line.endsWith('"}')) {
    const end = line.indexOf('"', 6);
    const at = line.lastIndexOf(',"b":"');
    if (end > 0 && at > end && line.lastIndexOf('\\', end) < 6) {
      const b = line.slice(at + 6, -2);
      if (!b.includes('"')) return { k: line.slice(6, end), b };
    }
  }
  const { k, b } = JSON.parse(line) as IndexEntry;
  return { k, b };
}

/** The stored index a reader uses: the manifest's, or a rebuilt one (index-repair.ts). */
export interface IndexRef extends StoredRef {
  entries: number;
  /** Set on a rebuilt index: when it was rebuilt. */
  rebuiltAt?: string;
}

/**
 * The index of `manifest` at `member`: the rebuilt one that `indexes/<id>.rebuilt.json` names
 * there (FORMAT.md 4.1), else the manifest's own. A reference that does not parse, or names
 * another backup's file or another entry count, is ignored (recoverBackups() writes a new one).
 */
export async function indexRefAt(member: Destination, manifest: ManifestHead): Promise<IndexRef> {
  const own: IndexRef = manifest.index;
  if (!(await member.stat(paths.indexRef(manifest.id)))) return own;
  // A read that fails is thrown (the reference may well be fine); only a body that is not a
  // reference is ignored.
  const text = await readText(member, paths.indexRef(manifest.id));
  let ref: Partial<IndexRef>;
  try {
    ref = JSON.parse(text) as Partial<IndexRef>;
  } catch {
    return own;
  }
  const valid =
    typeof ref?.path === 'string' &&
    ref.path.startsWith(paths.indexFiles(manifest.id)) &&
    Number.isSafeInteger(ref.size) &&
    typeof ref.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(ref.sha256) &&
    ref.entries === manifest.index.entries;
  return valid ? { path: ref.path!, size: ref.size!, sha256: ref.sha256!, entries: ref.entries!, ...(typeof ref.rebuiltAt === 'string' ? { rebuiltAt: ref.rebuiltAt } : {}) } : own;
}

/** The key under which verification names the destination where a backup's index verified (restore reads it there). */
export function indexSource(id: string): string {
  return `(index of ${id})`;
}

/**
 * The index of `manifest` that readers use at `member` (indexRefAt), and why it cannot be read
 * there (null when it is there with its recorded size). Throws when `member` cannot be asked.
 */
export async function indexAt(member: Destination, manifest: ManifestHead): Promise<{ ref: IndexRef; lacking: string | null }> {
  const ref = await indexRefAt(member, manifest);
  const info = await member.stat(ref.path);
  if (!info) return { ref, lacking: `${ref.path} does not exist` };
  return { ref, lacking: info.size === ref.size ? null : `${ref.path} has ${info.size} bytes, ${ref.size} were written` };
}

/** True when one of `holders` has the index of `manifest` that its readers use, with its recorded size. */
export async function indexAvailable(holders: Destination[], manifest: ManifestHead): Promise<boolean> {
  for (const member of holders) {
    if ((await indexAt(member, manifest).catch(() => null))?.lacking === null) return true;
  }
  return false;
}

/** How a copy of an index failed when read whole (indexCopyFault). */
export interface IndexCopyFault {
  kind: 'damaged' | 'unread';
  error: string;
}

/**
 * `member`'s copy of `manifest`'s index read whole against its size and SHA-256: null when it
 * passes, else how it failed ('damaged': its bytes are not the ones written; 'unread': it could
 * not be read, which says nothing of the copy).
 */
export async function indexCopyFault(member: Destination, manifest: Manifest): Promise<IndexCopyFault | null> {
  try {
    const found = await indexAt(member, manifest);
    if (found.lacking !== null) return { kind: 'damaged', error: found.lacking };
    await pipeline(await member.read(found.ref.path), new ChecksumTap(found.ref, member.label), new Writable({ write: (_chunk, _enc, cb) => cb() }));
    return null;
  } catch (err) {
    const code = err instanceof BackupError ? err.code : '';
    return { kind: code === 'ERR_PART_SIZE' || code === 'ERR_PART_CHECKSUM' ? 'damaged' : 'unread', error: errorMessage(err) };
  }
}

/** What to do about a lost or damaged object index (index-repair.ts). */
export const INDEX_REPAIR_HINT = "recoverBackups() puts a lost, cut-short or corrupt object index back (from another destination or the backup's parts; a corrupt one once a verification has found it)";

/**
 * The first of `members` whose copy of `manifest`'s index passes its SHA-256, read whole (`at`,
 * undefined when none does), and how each one before it failed: where a reader goes on after a
 * copy turned out damaged (an incremental's parent index, a restore's plan).
 */
export async function nextWholeIndex(members: Destination[], manifest: Manifest): Promise<{ at: string | undefined; faults: (IndexCopyFault & { label: string })[] }> {
  const faults: (IndexCopyFault & { label: string })[] = [];
  for (const member of members) {
    const fault = await indexCopyFault(member, manifest);
    if (fault === null) return { at: member.label, faults };
    faults.push({ label: member.label, ...fault });
  }
  return { at: undefined, faults };
}

/** How readIndex reads an index: where first, and who hears where it is read. */
export interface IndexReading {
  /** The destination read first (where the index verified, or a read of it checked it whole). */
  preferred?: string | undefined;
  /** Told the label of the destination the index is read from, once it is open there. */
  opened?: (label: string) => void;
}

/**
 * The sorted object index of `manifest`, read lazily from the first of `from`'s members
 * (`reading.preferred` first) whose index is there with its recorded size. The checksum is
 * checked when the last line has been read.
 */
export async function* readIndex(from: Pick<DestinationSet, 'members'>, manifest: Manifest, key: KeyHandle | null, reading: IndexReading = {}): AsyncIterable<IndexEntry> {
  for await (const batch of readIndexBatches(from, manifest, key, reading)) yield* batch;
}

/**
 * readIndex's entries, a decoded chunk's worth at a time (each line through `parse`): for a reader
 * that goes through every entry (verification's join), one await per chunk instead of several per entry.
 */
export async function* readIndexBatches<T = IndexEntry>(
  from: Pick<DestinationSet, 'members'>,
  manifest: Manifest,
  key: KeyHandle | null,
  reading: IndexReading = {},
  parse?: (line: string) => T,
): AsyncIterable<T[]> {
  let ref: IndexRef = manifest.index;
  let stream: Readable | null = null;
  let where = '';
  const errors: string[] = [];
  for (const member of preferredFirst(from.members, reading.preferred)) {
    try {
      const found = await indexAt(member, manifest);
      if (found.lacking !== null) throw new Error(found.lacking);
      stream = await member.read(found.ref.path);
      ref = found.ref;
      where = member.label;
      reading.opened?.(where);
      break;
    } catch (err) {
      errors.push(`${member.label}: ${(err as Error).message}`);
    }
  }
  if (!stream) throw new BackupError('ERR_INDEX_MISSING', `the object index of backup ${manifest.id} is missing or cut short: ${errors.join('; ')}; ${INDEX_REPAIR_HINT}`);
  const decoded = openDecoded(stream, ref, where, codecOf(manifest, key));
  const parseLine = parse ?? ((line: string) => indexEntry(line, `the object index of backup ${manifest.id} at ${where}`) as T);
  let count = 0;
  try {
    for await (const lines of readLineBatches(decoded)) {
      const entries = lines.filter((line) => line !== '').map(parseLine);
      count += entries.length;
      yield entries;
    }
  } finally {
    decoded.destroy();
  }
  if (count !== manifest.index.entries) {
    throw new BackupError('ERR_INDEX_CORRUPT', `the object index of backup ${manifest.id} at ${where} has ${count} entries, the manifest says ${manifest.index.entries}`);
  }
}

/**
 * An index line as an entry: ERR_INDEX_CORRUPT for one that is not JSON or lacks a string key or
 * holder (a flipped bit can leave JSON that parses), naming neither its text nor its keys.
 */
function indexEntry(line: string, where: string): IndexEntry {
  let entry: Partial<IndexEntry> | null = null;
  try {
    entry = JSON.parse(line) as Partial<IndexEntry> | null;
  } catch {
    // (told below)
  }
  if (typeof entry?.k !== 'string' || typeof entry.b !== 'string') throw new BackupError('ERR_INDEX_CORRUPT', `${where} holds a line that is not an index entry`);
  return entry as IndexEntry;
}

/**
 * Failures that say the bytes a copy gave are not the bytes written: a checksum that fails over
 * the whole size, a stream that does not decode, records out of key order (as written, they are
 * sorted) (a copy cut short, or missing, says only that the rest is not there: what it gave
 * before was right).
 */
const ALTERED_CODES = new Set(['ERR_PART_CHECKSUM', 'ERR_DECOMPRESS', 'ERR_ARCHIVE_CORRUPT', 'ERR_BAD_HEADER', 'ERR_COMPRESSION_MISMATCH', 'ERR_KEY_ORDER']);

/** `members` with the one labelled `preferred` (where an object verified) first. */
export function preferredFirst(members: Destination[], preferred: string | undefined): Destination[] {
  return preferred ? [...members.filter((m) => m.label === preferred), ...members.filter((m) => m.label !== preferred)] : members;
}

/**
 * The records of one part, read from the first of `holders` that serves it whole; when one fails
 * midway, the next resumes after the last key returned (records are sorted: a copy whose records
 * are not fails there, ERR_KEY_ORDER, rather than have one passed over). `onFailure` hears of
 * each destination that failed; ERR_PART_UNREADABLE when none could, or when a copy of a backup
 * that is not encrypted turns out damaged after records were taken from it: nothing vouched for
 * those (its SHA-256 is checked at its end; without encryption no segment is authenticated before
 * its records are released), and what was taken cannot be taken back (review-s22 F3).
 */
export async function* readPartRecords(
  holders: Destination[],
  manifest: Manifest,
  part: PartEntry,
  key: KeyHandle | null,
  onFailure?: (label: string, error: string) => void,
  readAhead: ReadAhead = DEFAULT_READ_AHEAD,
): AsyncIterable<ArchiveRecord> {
  let lastKey: string | null = null;
  const errors: string[] = [];
  for (const member of holders) {
    let taken = 0;
    try {
      const decoded = openDecoded(readRanged(member, part, readAhead.rangeSize, readAhead.concurrency), part, member.label, codecOf(manifest, key), readAhead.decoderThreads);
      let previous: string | null = null; // (in this copy)
      for await (const record of readArchive(decoded, `${part.path} at ${member.label}`)) {
        const at = record.header.key;
        if (previous !== null && compareKeys(previous, at) >= 0) {
          const name = (k: string) => (manifest.encryption ? 'a key' : JSON.stringify(k));
          throw new BackupError('ERR_KEY_ORDER', `part ${part.path} of backup ${manifest.id} at ${member.label} holds ${name(at)} after ${name(previous)}: its records are not in key order`);
        }
        previous = at;
        if (lastKey !== null && compareKeys(lastKey, at) >= 0) continue; // already returned from another destination
        lastKey = at;
        taken++;
        yield record;
      }
      return;
    } catch (err) {
      const message = errorMessage(err);
      if (taken > 0 && !manifest.encryption && err instanceof BackupError && ALTERED_CODES.has(err.code)) {
        throw new BackupError(
          'ERR_PART_UNREADABLE',
          `part ${part.path} of backup ${manifest.id} at ${member.label} turned out damaged after ${taken} of its records had been taken from it (${message}): the backup is not encrypted, so nothing had vouched for them. Run the restore again with verification on (the default), which reads each part where it verified whole`,
          { cause: err },
        );
      }
      errors.push(message.includes(member.label) ? message : `${member.label}: ${message}`); // (most errors name it already)
      onFailure?.(member.label, message);
    }
  }
  throw new BackupError('ERR_PART_UNREADABLE', `part ${part.path} of backup ${manifest.id} could not be read from any destination: ${errors.join('; ')}`);
}

/**
 * UTF-8 lines of a byte stream, one at a time (pull-based: the next chunk is read only when every
 * line of the current one was taken). Unlike readline, a huge input chunk never becomes one huge
 * string split into hundreds of thousands of queued lines.
 */
export async function* readLines(source: AsyncIterable<Buffer | Uint8Array>): AsyncIterable<string> {
  for await (const lines of readLineBatches(source)) yield* lines;
}

/**
 * The UTF-8 lines of a byte stream, the complete lines of each chunk read at once, at most
 * LINE_BATCH at a time (a decoder's chunk can hold a hundred thousand short lines; a line split
 * between chunks waits for its end: lines are cut at byte 0x0A, so a character is never split).
 */
export async function* readLineBatches(source: AsyncIterable<Buffer | Uint8Array>): AsyncIterable<string[]> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const piece of source) {
    const chunk = rest.length > 0 ? Buffer.concat([rest, piece as Buffer]) : Buffer.isBuffer(piece) ? piece : Buffer.from(piece);
    let lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      lines.push(chunk.toString('utf8', start, nl));
      start = nl + 1;
      if (lines.length === LINE_BATCH) {
        yield lines;
        lines = [];
      }
    }
    rest = Buffer.from(chunk.subarray(start));
    if (lines.length > 0) yield lines;
  }
  if (rest.length > 0) yield [rest.toString('utf8')];
}

/** Lines readLineBatches gives at most at once. */
const LINE_BATCH = 1024;

/** Ranged reads: 8 MiB ranges, 4 in flight (memory: 32 MiB per part being read). */
export const RANGE_SIZE = 8 * 1024 * 1024;
export const RANGE_CONCURRENCY = 4;

/** How far a part is read ahead of its decoder: `concurrency` ranges of `rangeSize` bytes. */
export interface ReadAhead {
  rangeSize: number;
  concurrency: number;
  /** Threads of the part's decoder (default: the codec's, one per core); its batches grow with them. */
  decoderThreads?: number;
}
const DEFAULT_READ_AHEAD: ReadAhead = { rangeSize: RANGE_SIZE, concurrency: RANGE_CONCURRENCY };
/**
 * A restore of an incremental reads its resources one backup of the chain at a time
 * (restore.ts writeMembersInTurn), and its database-level objects from every backup that holds
 * some at once (a k-way merge, mergeChain). Each part read reads 2 x 1 MiB ahead instead of
 * 4 x 8 MiB and decodes on one thread: a read holds about 14-16 MB even so (whole 2 MiB gzip
 * members in the decoder's output and the stream stages, 1 MiB segments in the native decoder;
 * review chain-memory), and the larger read-ahead gained no time one member at a time (+30 MB,
 * chain-memory3).
 */
export const CHAIN_READ_AHEAD: ReadAhead = { rangeSize: 1024 * 1024, concurrency: 2, decoderThreads: 1 };

/**
 * The stored bytes of `ref` from `member`, fetched as parallel ranged reads (GETs with a Range on
 * S3) and yielded in order; a part no larger than one range is a single read. Memory is bounded
 * by `concurrency` x `rangeSize`. Errors (missing object, short range) surface on the stream; the
 * checksum tap downstream catches any range that came back wrong.
 */
export function readRanged(member: Destination, ref: StoredRef, rangeSize = RANGE_SIZE, concurrency = RANGE_CONCURRENCY): Readable {
  async function* whole(): AsyncIterable<Buffer> {
    for await (const chunk of await member.read(ref.path)) yield chunk as Buffer;
  }
  async function* ranges(): AsyncIterable<{ start: number; end: number }> {
    for (let start = 0; start < ref.size; start += rangeSize) yield { start, end: Math.min(ref.size, start + rangeSize) - 1 };
  }
  async function* ranged(): AsyncIterable<Buffer> {
    yield* mapOrdered(ranges(), concurrency, async (range) => {
      const chunks: Buffer[] = [];
      for await (const chunk of await member.read(ref.path, range)) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    });
  }
  return Readable.from(ref.size <= rangeSize ? whole() : ranged(), { objectMode: false });
}
