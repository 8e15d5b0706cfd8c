/**
 * Public types of `s3db-backup/codec`. Invariant: nothing here carries key material in a printable
 * field; keys travel as a KeyHandle (see key.ts) or as raw bytes the caller already holds.
 */
import type { KeyHandle } from './key.js';

export type Compression = 'gzip' | 'deflate' | 'brotli' | 'zstd' | 'none';
export type Implementation = 'native' | 'js';

export interface CodecOptions {
  /** Codec of the stream (default 'gzip'); `false` means 'none'. */
  compression?: Compression | false;
  /** Node-semantics level: gzip/deflate 1-9 (6), brotli 0-11 (4), zstd 1-22 (3). Ignored for 'none'. */
  level?: number;
  /** Master key: a KeyHandle from a key file or keyFromBytes, or raw 32 bytes. None = no encryption. */
  key?: KeyHandle | Buffer | Uint8Array;
  /** Worker threads of the native core (default: available cores). The JS twin is single-threaded. */
  threads?: number;
  /** Plaintext bytes per encrypted segment, 1024 ..= 16 MiB (default 1 MiB). Encoder only. */
  segmentSize?: number;
  /** 'auto' (default) = native when its binary loads and S3DB_BACKUP_NATIVE is not '0'. */
  implementation?: Implementation | 'auto';
  /** TEST ONLY: fixed 32-byte stream salt (reproduces FORMAT.md test vectors). Never use in production. */
  testSalt?: Buffer | Uint8Array;
  /** TEST ONLY: fixed 7-byte nonce prefix. Never use in production. */
  testNoncePrefix?: Buffer | Uint8Array;
}

/** Options after validation, shared by both implementations. */
export interface ResolvedCodecOptions {
  compression: Compression;
  level: number;
  key: KeyHandle | null;
  threads: number;
  segmentSize: number;
  implementation: Implementation;
  testSalt: Buffer | null;
  testNoncePrefix: Buffer | null;
}

/** The JSON key file of FORMAT.md 2.6. */
export interface KeyFile {
  format: 's3db-backup-key';
  version: 1;
  kdf: { name: 'pbkdf2-hmac-sha256'; iterations: number; salt: string };
  wrap: { name: 'aes-256-gcm'; nonce: string; ciphertext: string };
  keyCheck: string;
  createdAt: string;
}
