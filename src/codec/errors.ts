/**
 * The codec's error vocabulary (FORMAT.md 2.5 and 2.6) and the one place where foreign errors
 * (native core, node:zlib, node:crypto) become BackupError with a stable `code`. Invariant: no
 * message built here contains key material or a passphrase.
 */
import { BackupError } from '../errors.js';
import { HEADER_LENGTH, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE } from './format.js';

/** Codes the stream reader and the key-file helpers can give (FORMAT.md). */
export const CODEC_ERROR_CODES = [
  'ERR_TRUNCATED_HEADER',
  'ERR_NOT_ENCRYPTED_STREAM',
  'ERR_UNSUPPORTED_VERSION',
  'ERR_COMPRESSION_MISMATCH',
  'ERR_BAD_HEADER',
  'ERR_WRONG_KEY',
  'ERR_HEADER_TAMPERED',
  'ERR_TRUNCATED',
  'ERR_TRUNCATED_SEGMENT',
  'ERR_BAD_SEGMENT_LENGTH',
  'ERR_SEGMENT_ORDER',
  'ERR_SEGMENT_AUTH',
  'ERR_TRAILING_DATA',
  'ERR_DECOMPRESS',
  'ERR_WRONG_PASSPHRASE',
  'ERR_WEAK_KDF',
  'ERR_BAD_KEY_FILE',
  'ERR_CODEC_UNAVAILABLE',
  'ERR_NATIVE_UNAVAILABLE',
  'ERR_INVALID_OPTION',
  'ERR_STREAM_TOO_LONG',
] as const;
export type CodecErrorCode = (typeof CODEC_ERROR_CODES)[number];

const KNOWN = new Set<string>(CODEC_ERROR_CODES);

export const streamErrors = {
  truncatedHeader: (got: number) =>
    new BackupError('ERR_TRUNCATED_HEADER', `stream is truncated: it ends inside the ${HEADER_LENGTH}-byte header`, {
      details: { got },
    }),
  badMagic: () =>
    new BackupError(
      'ERR_NOT_ENCRYPTED_STREAM',
      'not an s3db-backup encrypted stream (bad magic)',
    ),
  unsupported: (version: number, algorithm: number, reserved: number, compression: number) =>
    new BackupError(
      'ERR_UNSUPPORTED_VERSION',
      `unsupported stream version/algorithm: version ${version}, algorithm ${algorithm}, reserved ${reserved}, compression ${compression} (this reader knows version 1, algorithm 1, reserved 0, compression 0-4)`,
      { details: { version, algorithm, reserved, compression } },
    ),
  compressionMismatch: (actual: string, expected: string) =>
    new BackupError(
      'ERR_COMPRESSION_MISMATCH',
      `stream was written with compression ${actual}, but the reader expects ${expected}`,
      { details: { actual, expected } },
    ),
  badSegmentSize: (size: number) =>
    new BackupError(
      'ERR_BAD_HEADER',
      `invalid segment size ${size} in the stream header (allowed: ${MIN_SEGMENT_SIZE} to ${MAX_SEGMENT_SIZE})`,
    ),
  wrongKey: () =>
    new BackupError('ERR_WRONG_KEY', 'wrong key: this stream was encrypted with another key'),
  headerTampered: () =>
    new BackupError(
      'ERR_HEADER_TAMPERED',
      'header authentication failed: the stream header was modified or corrupted',
    ),
  truncated: (segments: number) =>
    new BackupError(
      'ERR_TRUNCATED',
      segments === 0
        ? 'stream is truncated: it ends after the header without its final segment'
        : `stream is truncated: it ends after segment ${segments - 1} without its final segment`,
      { details: { segments } },
    ),
  truncatedSegment: (index: number) =>
    new BackupError('ERR_TRUNCATED_SEGMENT', `stream is truncated inside segment ${index}`, {
      details: { segment: index },
    }),
  badSegmentLength: (index: number, len: number, segmentSize: number) =>
    new BackupError(
      'ERR_BAD_SEGMENT_LENGTH',
      `segment ${index} has an invalid length (${len} bytes)`,
      { details: { segment: index, len, segmentSize } },
    ),
  segmentOrder: (index: number, actual: number) =>
    new BackupError(
      'ERR_SEGMENT_ORDER',
      `segment ${index} is out of order: it is segment ${actual} (segments reordered or duplicated)`,
      { details: { segment: index, actual } },
    ),
  segmentAuth: (index: number) =>
    new BackupError(
      'ERR_SEGMENT_AUTH',
      `segment ${index} failed authentication: the data is corrupted or was tampered with`,
      { details: { segment: index } },
    ),
  trailingData: () => new BackupError('ERR_TRAILING_DATA', 'unexpected data after the final segment'),
  tooLong: () =>
    new BackupError('ERR_STREAM_TOO_LONG', 'stream is too long: more than 2^32 segments; use a larger segmentSize'),
  wrongPassphrase: () =>
    new BackupError(
      'ERR_WRONG_PASSPHRASE',
      'wrong passphrase: the key file could not be unlocked (authentication of the wrapped key failed)',
    ),
  decompress: (codec: string, cause: unknown) =>
    new BackupError('ERR_DECOMPRESS', `${codec} data is corrupt: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    }),
};

/**
 * Normalises any error met while coding (native core, zlib, crypto, our own) to a BackupError.
 * Native errors carry `code` = a FORMAT.md code and keep it; zlib errors become ERR_DECOMPRESS
 * when decoding. Anything else keeps its message under ERR_CODEC.
 */
export function toBackupError(err: unknown, context: { decoding: boolean; compression: string }): BackupError {
  if (err instanceof BackupError) return err;
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (code !== undefined && KNOWN.has(code)) return new BackupError(code, message, { cause: err });
  if (code !== undefined && code.startsWith('Z_') && context.decoding) {
    return streamErrors.decompress(context.compression, err);
  }
  if (code === 'ERR__ZLIB_INITIALIZATION_FAILED' || (code !== undefined && code.startsWith('Z_'))) {
    return new BackupError('ERR_CODEC', `${context.compression} codec failed: ${message}`, { cause: err });
  }
  return new BackupError(code !== undefined && code.startsWith('ERR_') ? code : 'ERR_CODEC', message, { cause: err });
}
