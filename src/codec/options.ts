/**
 * Validates codec options once, for both implementations, and picks the implementation.
 * Invariant: every invalid option fails here with ERR_INVALID_OPTION naming it, before any
 * stream exists; a codec an implementation lacks fails with ERR_CODEC_UNAVAILABLE.
 */
import { availableParallelism } from 'node:os';
import { BackupError, optionError } from '../errors.js';
import { DEFAULT_SEGMENT_SIZE, LEVELS, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, NONCE_PREFIX_LENGTH, SALT_LENGTH } from './format.js';
import { isKeyHandle, keyFromBytes, type KeyHandle } from './key.js';
import { nativeBinding, nativeLoadError } from './native-binding.js';
import type { CodecOptions, Compression, Implementation, ResolvedCodecOptions } from './types.js';
import { knownHint } from '../known-names.js';

const COMPRESSIONS: readonly Compression[] = ['gzip', 'deflate', 'brotli', 'zstd', 'none'];
const OPTION_NAMES = new Set([
  'compression',
  'level',
  'key',
  'threads',
  'segmentSize',
  'implementation',
  'testSalt',
  'testNoncePrefix',
]);
export const MAX_THREADS = 256;

/** True when the native addon loaded. */
export function nativeAvailable(): boolean {
  return nativeBinding() !== null;
}

/** What `implementation: 'auto'` resolves to right now (env S3DB_BACKUP_NATIVE=0 forces 'js'). */
export function activeImplementation(): Implementation {
  if (process.env.S3DB_BACKUP_NATIVE === '0') return 'js';
  return nativeAvailable() ? 'native' : 'js';
}

/**
 * What `implementation: 'auto'` runs and why, said once when the plugin is installed: a warning
 * when the native core did not load (a platform without a prebuilt binary, e.g. an image whose
 * libc differs from the one node_modules was installed for), which makes every backup and restore
 * several times slower and zstd unavailable.
 */
export function implementationNotice(compression: Compression): { level: 'info' | 'warn'; implementation: Implementation; message: string } {
  if (activeImplementation() === 'native') {
    return { level: 'info', implementation: 'native', message: 'codec: the native core (Rust, all cores) compresses and encrypts' };
  }
  // (asked for with S3DB_BACKUP_NATIVE=0: information, unless zstd cannot run)
  const asked = process.env.S3DB_BACKUP_NATIVE === '0';
  const zstd = compression === 'zstd' ? "; compression 'zstd' needs the native core, so backups fail with ERR_CODEC_UNAVAILABLE" : '';
  return {
    level: asked && zstd === '' ? 'info' : 'warn',
    implementation: 'js',
    message: `codec: the JS implementation (node:zlib, node:crypto, one core) runs because ${whyJs()}: backups and restores are several times slower${zstd}. README "Platforms and Docker" lists the platforms with a prebuilt native core`,
  };
}

/** Why the JS implementation runs (when activeImplementation() is 'js'). */
export function whyJs(): string {
  // asked for by S3DB_BACKUP_NATIVE=0: said as the reason, whether or not a binary is there
  if (process.env.S3DB_BACKUP_NATIVE === '0') return 'S3DB_BACKUP_NATIVE=0 is set';
  return `the native core did not load (${nativeLoadError() ?? 'unknown reason'})`;
}

function resolveCompression(value: CodecOptions['compression']): Compression {
  if (value === undefined) return 'gzip';
  if (value === false) return 'none';
  if (typeof value === 'string' && (COMPRESSIONS as readonly string[]).includes(value)) return value as Compression;
  throw optionError('compression', `got ${JSON.stringify(value)}`, `Use one of ${COMPRESSIONS.join(', ')} (or false for none)`);
}

function resolveKey(value: CodecOptions['key']): KeyHandle | null {
  if (value === undefined || value === null) return null;
  if (isKeyHandle(value)) return value;
  if (value instanceof Uint8Array) return keyFromBytes(value);
  throw optionError('key', 'must be a KeyHandle (from unlockKeyFile/createKeyFile/keyFromBytes) or a raw 32-byte Buffer');
}

function resolveInteger(name: string, value: number | undefined, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw optionError(name, `got ${JSON.stringify(value)}`, `Use an integer from ${min} to ${max}`);
  }
  return value;
}

function resolveTestBytes(name: string, value: Buffer | Uint8Array | undefined, length: number): Buffer | null {
  if (value === undefined) return null;
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw optionError(name, `must be exactly ${length} bytes (test-only option)`);
  }
  return Buffer.from(value);
}

function resolveImplementation(value: CodecOptions['implementation'], compression: Compression): Implementation {
  if (value !== undefined && value !== 'auto' && value !== 'native' && value !== 'js') {
    throw optionError('implementation', `got ${JSON.stringify(value)}`, "Use 'native', 'js' or 'auto'");
  }
  const chosen: Implementation = value === undefined || value === 'auto' ? activeImplementation() : value;
  if (chosen === 'native' && !nativeAvailable()) {
    throw new BackupError(
      'ERR_NATIVE_UNAVAILABLE',
      `implementation 'native' was requested but the native core did not load (${nativeLoadError() ?? 'unknown reason'}). Run \`npm run build:native\` or use implementation 'auto'/'js'`,
    );
  }
  if (chosen === 'js' && compression === 'zstd') {
    throw new BackupError(
      'ERR_CODEC_UNAVAILABLE',
      "compression 'zstd' needs the native core (Node 20 has no zstd); the JS implementation is in use" +
        (value === 'js' ? ' because implementation is js' : nativeAvailable() ? ' because S3DB_BACKUP_NATIVE=0' : ` because the native core did not load: ${nativeLoadError() ?? 'unknown reason'}`) +
        '. Use gzip, deflate or brotli, or install the native core',
    );
  }
  return chosen;
}

export function resolveCodecOptions(options: CodecOptions | undefined): ResolvedCodecOptions {
  const o = options ?? {};
  if (typeof o !== 'object') throw optionError('options', 'must be an object');
  for (const name of Object.keys(o)) {
    if (!OPTION_NAMES.has(name)) throw optionError(name, 'is not a codec option', knownHint(name, [...OPTION_NAMES], 'Known options'));
  }
  const compression = resolveCompression(o.compression);
  const range = LEVELS[compression];
  const level = compression === 'none' ? 0 : resolveInteger('level', o.level, range.min, range.max, range.default);
  const key = resolveKey(o.key);
  const threads = resolveInteger('threads', o.threads, 1, MAX_THREADS, Math.max(1, availableParallelism()));
  const segmentSize = resolveInteger('segmentSize', o.segmentSize, MIN_SEGMENT_SIZE, MAX_SEGMENT_SIZE, DEFAULT_SEGMENT_SIZE);
  const testSalt = resolveTestBytes('testSalt', o.testSalt, SALT_LENGTH);
  const testNoncePrefix = resolveTestBytes('testNoncePrefix', o.testNoncePrefix, NONCE_PREFIX_LENGTH);
  const implementation = resolveImplementation(o.implementation, compression);
  return { compression, level, key, threads, segmentSize, implementation, testSalt, testNoncePrefix };
}
