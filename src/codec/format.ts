/**
 * Constants of the codec stream format (docs/FORMAT.md section 2), shared by option validation, the
 * JS twin and the native wrapper. Invariant: these values are the format; changing one is a new
 * format version.
 */
import type { Compression } from './types.js';

export const MAGIC = Buffer.from('S3DBBKUP', 'ascii');
export const FORMAT_VERSION = 1;
export const ALGORITHM_AES_GCM_HKDF = 1;
export const HEADER_LENGTH = 87;
export const HEADER_MAC_OFFSET = 71;
export const FRAME_LENGTH = 4;
export const TAG_LENGTH = 16;
export const SALT_LENGTH = 32;
export const NONCE_PREFIX_LENGTH = 7;
export const KEY_CHECK_LENGTH = 16;
export const KEY_LENGTH = 32;
export const LAST_FLAG = 0x8000_0000;

export const MIN_SEGMENT_SIZE = 1024;
export const MAX_SEGMENT_SIZE = 16 * 1024 * 1024;
export const DEFAULT_SEGMENT_SIZE = 1024 * 1024;
/** Segment indexes are u32: the counter must not exceed 2^32 - 1. */
export const MAX_SEGMENT_INDEX = 0xffff_ffff;
/** A failed segment is tried as segment M for M within N +- this window (FORMAT.md 2.5). */
export const REORDER_WINDOW = 64;

export const INFO_SEGMENT_KEY = 's3db-backup/v1/segment-key';
export const INFO_HEADER_MAC = 's3db-backup/v1/header-mac';
export const INFO_KEY_CHECK = 's3db-backup/v1/key-check';
export const AAD_KEY_WRAP = 's3db-backup/v1/key-wrap';

/** Compression byte of the header, by codec name. */
export const COMPRESSION_IDS: Readonly<Record<Compression, number>> = {
  none: 0,
  gzip: 1,
  deflate: 2,
  brotli: 3,
  zstd: 4,
};

export function compressionFromId(id: number): Compression | null {
  for (const [name, value] of Object.entries(COMPRESSION_IDS)) if (value === id) return name as Compression;
  return null;
}

/** Level ranges (Node semantics) and defaults, per codec. */
export const LEVELS: Readonly<Record<Compression, { min: number; max: number; default: number }>> = {
  gzip: { min: 1, max: 9, default: 6 },
  deflate: { min: 1, max: 9, default: 6 },
  brotli: { min: 0, max: 11, default: 4 },
  zstd: { min: 1, max: 22, default: 3 },
  none: { min: 0, max: 0, default: 0 },
};
