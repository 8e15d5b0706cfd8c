/**
 * JS twin, reader side of FORMAT.md 2.2-2.5: parses the header, then frame || ciphertext || tag
 * segment after segment, and returns a segment's plaintext only after its GCM tag has verified.
 * Errors are sticky (every later call throws the same BackupError). Memory: one segment.
 * Invariant: the checks run in the order of the FORMAT.md 2.5 table.
 */
import { createDecipheriv } from 'node:crypto';
import { BackupError } from '../../errors.js';
import { FRAME_LENGTH, HEADER_LENGTH, LAST_FLAG, MAX_SEGMENT_INDEX, REORDER_WINDOW, TAG_LENGTH } from '../format.js';
import { streamErrors } from '../errors.js';
import type { Compression } from '../types.js';
import { parseHeader, segmentNonce, type StreamKeys } from './header.js';

type State = 'header' | 'frame' | 'body' | 'done';

function tryOpen(key: Buffer, nonce: Buffer, frame: Buffer, body: Buffer): Buffer | null {
  const ctLength = body.length - TAG_LENGTH;
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(frame);
  decipher.setAuthTag(body.subarray(ctLength));
  const pt = decipher.update(body.subarray(0, ctLength));
  try {
    decipher.final();
  } catch {
    return null;
  }
  return pt;
}

export class SegmentOpener {
  private state: State = 'header';
  private error: BackupError | null = null;
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private need = HEADER_LENGTH;
  private keys: StreamKeys | null = null;
  private noncePrefix: Buffer = Buffer.alloc(0);
  private segmentSize = 0;
  private index = 0;
  private frame: Buffer = Buffer.alloc(FRAME_LENGTH);
  private last = false;

  constructor(
    private readonly master: Buffer,
    private readonly expected: Compression,
  ) {}

  /** Feeds stored bytes; returns verified plaintext (possibly none yet). */
  push(chunk: Buffer): Buffer[] {
    if (this.error) throw this.error;
    try {
      return this.consume(chunk);
    } catch (err) {
      this.error = err instanceof BackupError ? err : new BackupError('ERR_CODEC', String(err), { cause: err });
      throw this.error;
    }
  }

  /** Declares the end of the stored bytes: throws unless the final segment was read. */
  end(): void {
    if (this.error) throw this.error;
    let err: BackupError | null = null;
    if (this.state === 'header') err = streamErrors.truncatedHeader(this.pendingLength);
    else if (this.state === 'frame' && this.pendingLength === 0) err = streamErrors.truncated(this.index);
    else if (this.state !== 'done') err = streamErrors.truncatedSegment(this.index);
    if (err) {
      this.error = err;
      throw err;
    }
  }

  private consume(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.state === 'done') throw streamErrors.trailingData();
      const take = Math.min(this.need - this.pendingLength, chunk.length - offset);
      this.pending.push(chunk.subarray(offset, offset + take));
      this.pendingLength += take;
      offset += take;
      if (this.pendingLength < this.need) break;
      const whole = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingLength);
      this.pending = [];
      this.pendingLength = 0;
      if (this.state === 'header') this.onHeader(whole);
      else if (this.state === 'frame') this.onFrame(whole);
      else {
        const pt = this.onBody(whole);
        // Trailing bytes already in hand: refuse before releasing the final plaintext.
        if (this.last && offset < chunk.length) throw streamErrors.trailingData();
        if (pt.length > 0) out.push(pt);
      }
    }
    return out;
  }

  private onHeader(header: Buffer): void {
    const h = parseHeader(header, this.master, this.expected);
    this.keys = h.keys;
    this.noncePrefix = h.noncePrefix;
    this.segmentSize = h.segmentSize;
    this.state = 'frame';
    this.need = FRAME_LENGTH;
  }

  private onFrame(frame: Buffer): void {
    const word = frame.readUInt32BE(0);
    const last = word >= LAST_FLAG;
    const len = word & 0x7fff_ffff;
    const bad =
      len > this.segmentSize || (!last && len !== this.segmentSize) || (last && len === 0 && this.index > 0);
    if (bad) throw streamErrors.badSegmentLength(this.index, len, this.segmentSize);
    if (this.index > MAX_SEGMENT_INDEX) throw streamErrors.tooLong();
    this.frame = Buffer.from(frame);
    this.last = last;
    this.state = 'body';
    this.need = len + TAG_LENGTH;
  }

  private onBody(body: Buffer): Buffer {
    const key = (this.keys as StreamKeys).segmentKey;
    const pt = tryOpen(key, segmentNonce(this.noncePrefix, this.index, this.last), this.frame, body);
    if (pt === null) throw this.diagnose(key, body);
    this.index += 1;
    if (this.last) {
      this.state = 'done';
      this.need = 1;
    } else {
      this.state = 'frame';
      this.need = FRAME_LENGTH;
    }
    return pt;
  }

  /** The tag failed: is it another segment of this stream (reordered/duplicated) or just corrupt? */
  private diagnose(key: Buffer, body: Buffer): BackupError {
    const from = Math.max(0, this.index - REORDER_WINDOW);
    const to = Math.min(MAX_SEGMENT_INDEX, this.index + REORDER_WINDOW);
    for (let m = from; m <= to; m++) {
      if (m === this.index) continue;
      for (const flag of [false, true]) {
        if (tryOpen(key, segmentNonce(this.noncePrefix, m, flag), this.frame, body) !== null) {
          return streamErrors.segmentOrder(this.index, m);
        }
      }
    }
    return streamErrors.segmentAuth(this.index);
  }
}
