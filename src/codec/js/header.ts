/**
 * JS twin: the 87-byte stream header, the per-stream keys and the segment nonces (FORMAT.md
 * 2.3-2.4). parseHeader() applies the header checks of 2.5 in their normative order, so the first
 * failing check decides the error code.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import {
  ALGORITHM_AES_GCM_HKDF,
  COMPRESSION_IDS,
  FORMAT_VERSION,
  HEADER_LENGTH,
  HEADER_MAC_OFFSET,
  INFO_HEADER_MAC,
  INFO_SEGMENT_KEY,
  KEY_CHECK_LENGTH,
  MAGIC,
  MAX_SEGMENT_SIZE,
  MIN_SEGMENT_SIZE,
  NONCE_PREFIX_LENGTH,
  SALT_LENGTH,
  compressionFromId,
} from '../format.js';
import { streamErrors } from '../errors.js';
import { computeKeyCheck } from '../key.js';
import type { Compression } from '../types.js';

export interface StreamKeys {
  segmentKey: Buffer;
  headerKey: Buffer;
}

export interface StreamHeader {
  compression: Compression;
  segmentSize: number;
  salt: Buffer;
  noncePrefix: Buffer;
}

export function deriveStreamKeys(master: Buffer, salt: Buffer): StreamKeys {
  return {
    segmentKey: Buffer.from(hkdfSync('sha256', master, salt, INFO_SEGMENT_KEY, 32)),
    headerKey: Buffer.from(hkdfSync('sha256', master, salt, INFO_HEADER_MAC, 32)),
  };
}

function headerMac(headerKey: Buffer, first71: Buffer): Buffer {
  return createHmac('sha256', headerKey).update(first71).digest().subarray(0, 16);
}

/** nonce_i = nonce_prefix (7) || u32(i) || last (1). */
export function segmentNonce(prefix: Buffer, index: number, last: boolean): Buffer {
  const nonce = Buffer.allocUnsafe(12);
  prefix.copy(nonce, 0, 0, NONCE_PREFIX_LENGTH);
  nonce.writeUInt32BE(index, 7);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

export function buildHeader(master: Buffer, keys: StreamKeys, h: StreamHeader): Buffer {
  const header = Buffer.alloc(HEADER_LENGTH);
  MAGIC.copy(header, 0);
  header[8] = FORMAT_VERSION;
  header[9] = ALGORITHM_AES_GCM_HKDF;
  header[10] = COMPRESSION_IDS[h.compression];
  header[11] = 0;
  header.writeUInt32BE(h.segmentSize, 12);
  computeKeyCheck(master).copy(header, 16);
  h.salt.copy(header, 32, 0, SALT_LENGTH);
  h.noncePrefix.copy(header, 64, 0, NONCE_PREFIX_LENGTH);
  headerMac(keys.headerKey, header.subarray(0, HEADER_MAC_OFFSET)).copy(header, HEADER_MAC_OFFSET);
  return header;
}

/**
 * Checks a complete 87-byte header against the master key (and the expected compression) and
 * returns its fields and the stream keys. Throws the FORMAT.md 2.5 error of the first failing check.
 */
export function parseHeader(header: Buffer, master: Buffer, expected: Compression): StreamHeader & { keys: StreamKeys } {
  if (header.length < HEADER_LENGTH) throw streamErrors.truncatedHeader(header.length);
  if (!header.subarray(0, 8).equals(MAGIC)) throw streamErrors.badMagic();
  const version = header[8];
  const algorithm = header[9];
  const reserved = header[11];
  const compression = compressionFromId(header[10]);
  if (version !== FORMAT_VERSION || algorithm !== ALGORITHM_AES_GCM_HKDF || reserved !== 0) {
    throw streamErrors.unsupported(version, algorithm, reserved, header[10]);
  }
  // The caller always names a compression, so an unknown byte is a mismatch too (as in the core).
  if (compression !== expected) throw streamErrors.compressionMismatch(compression ?? `${header[10]} (unknown)`, expected);
  const segmentSize = header.readUInt32BE(12);
  if (segmentSize < MIN_SEGMENT_SIZE || segmentSize > MAX_SEGMENT_SIZE) throw streamErrors.badSegmentSize(segmentSize);
  if (!timingSafeEqual(header.subarray(16, 16 + KEY_CHECK_LENGTH), computeKeyCheck(master))) throw streamErrors.wrongKey();
  const salt = Buffer.from(header.subarray(32, 64));
  const noncePrefix = Buffer.from(header.subarray(64, 71));
  const keys = deriveStreamKeys(master, salt);
  const mac = headerMac(keys.headerKey, header.subarray(0, HEADER_MAC_OFFSET));
  if (!timingSafeEqual(mac, header.subarray(HEADER_MAC_OFFSET, HEADER_LENGTH))) throw streamErrors.headerTampered();
  return { compression, segmentSize, salt, noncePrefix, keys };
}
