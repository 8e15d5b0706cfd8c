/**
 * The implementations every codec suite runs against. Both are always required: the native core is
 * built by `npm run build:native` (CI and `npm test` build it), so a missing binary makes the
 * native cases fail loudly with ERR_NATIVE_UNAVAILABLE instead of being skipped.
 */
import type { Compression, Implementation } from '../../src/codec/index.js';

export const IMPLS: readonly Implementation[] = ['js', 'native'];
export const CODECS: readonly Compression[] = ['gzip', 'deflate', 'brotli', 'zstd', 'none'];

/** Codecs an implementation can run (Node 20 has no zstd, so the JS twin lacks it). */
export function codecsOf(impl: Implementation): Compression[] {
  return CODECS.filter((c) => impl === 'native' || c !== 'zstd');
}

/** A fixed test master key (never a real one). */
export const TEST_KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
export const OTHER_KEY = Buffer.alloc(32, 0x42);
