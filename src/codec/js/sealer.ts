/**
 * JS twin, writer side of FORMAT.md 2.2: cuts the (compressed) plaintext into segments of exactly
 * segmentSize bytes and seals each with AES-256-GCM. A full segment is sealed only when more data
 * arrives, so the final segment (flag set) is known at finish(): it holds 1..segmentSize bytes, or
 * 0 bytes only for the empty stream. Memory: one segment buffer.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { FRAME_LENGTH, LAST_FLAG, MAX_SEGMENT_INDEX, NONCE_PREFIX_LENGTH, SALT_LENGTH } from '../format.js';
import { streamErrors } from '../errors.js';
import type { Compression } from '../types.js';
import { buildHeader, deriveStreamKeys, segmentNonce, type StreamKeys } from './header.js';

export interface SealerOptions {
  master: Buffer;
  compression: Compression;
  segmentSize: number;
  testSalt: Buffer | null;
  testNoncePrefix: Buffer | null;
}

export class SegmentSealer {
  private readonly keys: StreamKeys;
  private readonly noncePrefix: Buffer;
  private readonly segmentSize: number;
  private header: Buffer | null;
  private buffer: Buffer;
  private filled = 0;
  private index = 0;
  private finished = false;

  constructor(o: SealerOptions) {
    const salt = o.testSalt ?? randomBytes(SALT_LENGTH);
    this.noncePrefix = o.testNoncePrefix ?? randomBytes(NONCE_PREFIX_LENGTH);
    this.keys = deriveStreamKeys(o.master, salt);
    this.segmentSize = o.segmentSize;
    this.header = buildHeader(o.master, this.keys, {
      compression: o.compression,
      segmentSize: o.segmentSize,
      salt,
      noncePrefix: this.noncePrefix,
    });
    this.buffer = Buffer.allocUnsafe(o.segmentSize);
  }

  /** Adds plaintext; returns the sealed bytes ready to go out (header first, once). */
  push(data: Buffer): Buffer[] {
    const out = this.takeHeader();
    let offset = 0;
    while (offset < data.length) {
      if (this.filled === this.segmentSize) out.push(...this.seal(false));
      const n = Math.min(this.segmentSize - this.filled, data.length - offset);
      data.copy(this.buffer, this.filled, offset, offset + n);
      this.filled += n;
      offset += n;
    }
    return out;
  }

  /** Seals the final segment. Must be called exactly once, after the last push(). */
  finish(): Buffer[] {
    if (this.finished) throw new Error('codec: internal error: SegmentSealer.finish called twice');
    const out = this.takeHeader();
    out.push(...this.seal(true));
    this.finished = true;
    return out;
  }

  private takeHeader(): Buffer[] {
    if (this.header === null) return [];
    const h = this.header;
    this.header = null;
    return [h];
  }

  private seal(last: boolean): Buffer[] {
    if (this.index > MAX_SEGMENT_INDEX) throw streamErrors.tooLong();
    const frame = Buffer.allocUnsafe(FRAME_LENGTH);
    frame.writeUInt32BE((last ? LAST_FLAG : 0) + this.filled, 0);
    const cipher = createCipheriv('aes-256-gcm', this.keys.segmentKey, segmentNonce(this.noncePrefix, this.index, last));
    cipher.setAAD(frame);
    const ct = cipher.update(this.buffer.subarray(0, this.filled));
    cipher.final();
    const tag = cipher.getAuthTag();
    this.index += 1;
    this.filled = 0;
    return [frame, ct, tag];
  }
}
