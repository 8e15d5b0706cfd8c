/**
 * `s3db-backup/codec`: streaming compression and segmented AES-256-GCM encryption in the format of
 * docs/FORMAT.md section 2, by the native core (napi-rs, multi-threaded) or its JS twin
 * (node:zlib + node:crypto). Both write identical formats and read each other's output.
 * Invariants: options are validated before a stream exists; every error is a BackupError with a
 * FORMAT.md code; decoders release plaintext only after its segment authenticated.
 */
import type { Transform } from 'node:stream';
import { toBackupError } from './errors.js';
import { JsDecoder } from './js/decoder.js';
import { JsEncoder } from './js/encoder.js';
import { keyMaterial } from './key.js';
import { nativeBinding, type NativeCodecOptions } from './native-binding.js';
import { MIN_NATIVE_BATCH, NativeCodecStream, outputLimit } from './native-stream.js';
import { resolveCodecOptions } from './options.js';
import type { CodecOptions, ResolvedCodecOptions } from './types.js';

export type { CodecOptions, Compression, Implementation, KeyFile } from './types.js';
export { KeyHandle, keyFromBytes, isKeyHandle } from './key.js';
export {
  createKeyFile,
  unlockKeyFile,
  rewrapKeyFile,
  parseKeyFile,
  DEFAULT_KDF_ITERATIONS,
  MIN_KDF_ITERATIONS,
  type KeyFileOptions,
} from './key-file.js';
export { nativeAvailable, activeImplementation } from './options.js';
export { CODEC_ERROR_CODES, type CodecErrorCode } from './errors.js';
export { DEFAULT_SEGMENT_SIZE, MIN_SEGMENT_SIZE, MAX_SEGMENT_SIZE, HEADER_LENGTH } from './format.js';

/** Version of the loaded native core, or null when the JS twin is the only implementation. */
export function nativeVersion(): string | null {
  return nativeBinding()?.nativeVersion() ?? null;
}

function nativeOptions(o: ResolvedCodecOptions, encoding: boolean, batchSize: number): NativeCodecOptions {
  const n: NativeCodecOptions = { compression: o.compression, threads: o.threads };
  if (!encoding) n.outputLimit = outputLimit(batchSize);
  if (o.key !== null) n.key = keyMaterial(o.key);
  if (encoding) {
    if (o.compression !== 'none') n.level = o.level;
    n.segmentSize = o.segmentSize;
    if (o.testSalt !== null) n.testSalt = o.testSalt;
    if (o.testNoncePrefix !== null) n.testNoncePrefix = o.testNoncePrefix;
  }
  return n;
}

function nativeStream(o: ResolvedCodecOptions, encoding: boolean): Transform {
  const native = nativeBinding();
  if (native === null) throw new Error('codec: internal error: native implementation chosen but not loaded');
  const context = { decoding: !encoding, compression: o.compression };
  try {
    const Ctor = encoding ? native.NativeEncoder : native.NativeDecoder;
    const batchSize = Math.max(MIN_NATIVE_BATCH, o.threads * o.segmentSize);
    const codec = new Ctor(nativeOptions(o, encoding, batchSize));
    return new NativeCodecStream(codec, batchSize, context);
  } catch (err) {
    throw toBackupError(err, context);
  }
}

/** Compresses and (with `key`) encrypts: write plaintext, read the stored stream. */
export function createEncoder(options?: CodecOptions): Transform {
  const o = resolveCodecOptions(options);
  return o.implementation === 'native' ? nativeStream(o, true) : new JsEncoder(o);
}

/**
 * Decrypts (with `key`) and decompresses: write the stored stream, read plaintext. `compression`
 * must be the one the stream was written with (ERR_COMPRESSION_MISMATCH for encrypted streams).
 */
export function createDecoder(options?: CodecOptions): Transform {
  const o = resolveCodecOptions(options);
  return o.implementation === 'native' ? nativeStream(o, false) : new JsDecoder(o);
}
