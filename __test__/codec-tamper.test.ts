/**
 * Tampering with encrypted streams (FORMAT.md 2.5): bit flips in header and body, truncation at and
 * inside segment boundaries, swapped/duplicated/dropped segments, spliced foreign segments,
 * appended bytes and wrong keys. Each case must fail with its specific code and the FORMAT.md
 * message, whole or fed in small chunks, on both implementations, and whatever was emitted before
 * the error must be a verified prefix of the plaintext (never output that passes as good).
 */
import { describe, expect, it } from 'vitest';
import { BackupError } from '../src/errors.js';
import { createDecoder, createEncoder, keyFromBytes, type Compression, type Implementation } from '../src/codec/index.js';
import { concat, decodeFailure, jsonLines, runToBuffer } from './helpers/corpus.js';
import { IMPLS, OTHER_KEY, TEST_KEY } from './helpers/codec-impls.js';

const SEG = 1024;
const H = 87;
const S = 4 + SEG + 16; // one full stored segment
const INPUT = concat(jsonLines(3 * SEG + 512)); // 'none': segments 0..2 full, final segment 3 has 512 bytes
const seg = (i: number) => H + i * S;

const PREFIX: Record<string, string> = {
  ERR_TRUNCATED_HEADER: 'stream is truncated: it ends inside the 87-byte header',
  ERR_NOT_ENCRYPTED_STREAM: 'not an s3db-backup encrypted stream (bad magic)',
  ERR_UNSUPPORTED_VERSION: 'unsupported stream version/algorithm',
  ERR_COMPRESSION_MISMATCH: 'stream was written with compression',
  ERR_BAD_HEADER: 'invalid segment size',
  ERR_WRONG_KEY: 'wrong key: this stream was encrypted with another key',
  ERR_HEADER_TAMPERED: 'header authentication failed',
  ERR_TRUNCATED: 'stream is truncated: it ends after',
  ERR_TRUNCATED_SEGMENT: 'stream is truncated inside segment',
  ERR_BAD_SEGMENT_LENGTH: 'segment',
  ERR_SEGMENT_ORDER: 'segment',
  ERR_SEGMENT_AUTH: 'segment',
  ERR_TRAILING_DATA: 'unexpected data after the final segment',
  ERR_DECOMPRESS: 'data is corrupt',
};

function flip(buf: Buffer, offset: number, mask = 0x01): Buffer {
  const copy = Buffer.from(buf);
  copy[offset] ^= mask;
  return copy;
}

function withU32(buf: Buffer, offset: number, value: number): Buffer {
  const copy = Buffer.from(buf);
  copy.writeUInt32BE(value >>> 0, offset);
  return copy;
}

function segments(stored: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = H; off < stored.length; off += S) out.push(stored.subarray(off, Math.min(stored.length, off + S)));
  return out;
}

function reassemble(stored: Buffer, order: number[]): Buffer {
  const segs = segments(stored);
  return Buffer.concat([stored.subarray(0, H), ...order.map((i) => segs[i])]);
}

interface Case {
  name: string;
  make: (stored: Buffer, other: Buffer) => Buffer;
  code: string;
  message?: string;
  key?: Buffer;
  expect?: Compression;
}

const CASES: Case[] = [
  { name: 'empty input', make: () => Buffer.alloc(0), code: 'ERR_TRUNCATED_HEADER' },
  { name: 'cut inside the header (50 bytes)', make: (s) => s.subarray(0, 50), code: 'ERR_TRUNCATED_HEADER' },
  { name: 'cut one byte short of the header', make: (s) => s.subarray(0, H - 1), code: 'ERR_TRUNCATED_HEADER' },
  { name: 'bit flip in the magic', make: (s) => flip(s, 3), code: 'ERR_NOT_ENCRYPTED_STREAM' },
  { name: 'unencrypted data given to an encrypted decoder', make: () => Buffer.from(INPUT), code: 'ERR_NOT_ENCRYPTED_STREAM' },
  { name: 'version byte 2', make: (s) => flip(s, 8, 0x03), code: 'ERR_UNSUPPORTED_VERSION' },
  { name: 'algorithm byte changed', make: (s) => flip(s, 9, 0x02), code: 'ERR_UNSUPPORTED_VERSION' },
  { name: 'reserved byte set', make: (s) => flip(s, 11), code: 'ERR_UNSUPPORTED_VERSION' },
  {
    name: 'unknown compression byte',
    make: (s) => flip(s, 10, 0x40),
    code: 'ERR_COMPRESSION_MISMATCH',
    message: 'stream was written with compression 64 (unknown), but the reader expects none',
  },
  {
    name: 'compression byte changed to gzip',
    make: (s) => flip(s, 10, 0x01),
    code: 'ERR_COMPRESSION_MISMATCH',
    message: 'stream was written with compression gzip, but the reader expects none',
  },
  { name: 'decoder expects another compression', make: (s) => s, code: 'ERR_COMPRESSION_MISMATCH', expect: 'gzip' },
  { name: 'segment size 100 in the header', make: (s) => withU32(s, 12, 100), code: 'ERR_BAD_HEADER' },
  { name: 'segment size 32 MiB in the header', make: (s) => withU32(s, 12, 32 * 1024 * 1024), code: 'ERR_BAD_HEADER' },
  { name: 'valid but altered segment size', make: (s) => withU32(s, 12, 2048), code: 'ERR_HEADER_TAMPERED' },
  { name: 'bit flip in key_check', make: (s) => flip(s, 20), code: 'ERR_WRONG_KEY' },
  { name: 'decoding with another key', make: (s) => s, code: 'ERR_WRONG_KEY', key: OTHER_KEY },
  { name: 'bit flip in the salt', make: (s) => flip(s, 40), code: 'ERR_HEADER_TAMPERED' },
  { name: 'bit flip in the nonce prefix', make: (s) => flip(s, 66), code: 'ERR_HEADER_TAMPERED' },
  { name: 'bit flip in header_mac', make: (s) => flip(s, 80), code: 'ERR_HEADER_TAMPERED' },
  {
    name: 'cut right after the header',
    make: (s) => s.subarray(0, H),
    code: 'ERR_TRUNCATED',
    message: 'stream is truncated: it ends after the header without its final segment',
  },
  {
    name: 'cut at the boundary after segment 0',
    make: (s) => s.subarray(0, seg(1)),
    code: 'ERR_TRUNCATED',
    message: 'stream is truncated: it ends after segment 0 without its final segment',
  },
  {
    name: 'final segment dropped (cut at the last boundary)',
    make: (s) => s.subarray(0, seg(3)),
    code: 'ERR_TRUNCATED',
    message: 'stream is truncated: it ends after segment 2 without its final segment',
  },
  { name: 'cut inside a frame', make: (s) => s.subarray(0, seg(1) + 2), code: 'ERR_TRUNCATED_SEGMENT', message: 'stream is truncated inside segment 1' },
  { name: 'cut inside a ciphertext', make: (s) => s.subarray(0, seg(2) + 500), code: 'ERR_TRUNCATED_SEGMENT', message: 'stream is truncated inside segment 2' },
  { name: 'cut inside the final tag', make: (s) => s.subarray(0, s.length - 1), code: 'ERR_TRUNCATED_SEGMENT', message: 'stream is truncated inside segment 3' },
  { name: 'non-final segment shorter than segment_size', make: (s) => withU32(s, seg(0), 1000), code: 'ERR_BAD_SEGMENT_LENGTH', message: 'segment 0 has an invalid length' },
  { name: 'segment longer than segment_size', make: (s) => withU32(s, seg(1), 2000), code: 'ERR_BAD_SEGMENT_LENGTH', message: 'segment 1 has an invalid length' },
  { name: 'final segment longer than segment_size', make: (s) => withU32(s, seg(3), 0x80000000 + SEG + 1), code: 'ERR_BAD_SEGMENT_LENGTH' },
  {
    name: 'empty final segment after data',
    make: (s) => Buffer.concat([s.subarray(0, seg(3)), withU32(Buffer.alloc(20), 0, 0x80000000)]),
    code: 'ERR_BAD_SEGMENT_LENGTH',
    message: 'segment 3 has an invalid length',
  },
  {
    name: 'bit flip in a ciphertext',
    make: (s) => flip(s, seg(1) + 100),
    code: 'ERR_SEGMENT_AUTH',
    message: 'segment 1 failed authentication: the data is corrupted or was tampered with',
  },
  { name: 'bit flip in a tag', make: (s) => flip(s, seg(2) + S - 3), code: 'ERR_SEGMENT_AUTH', message: 'segment 2 failed authentication' },
  { name: 'bit flip in the final segment', make: (s) => flip(s, seg(3) + 10), code: 'ERR_SEGMENT_AUTH', message: 'segment 3 failed authentication' },
  { name: 'last flag set on a full non-final segment', make: (s) => flip(s, seg(0), 0x80), code: 'ERR_SEGMENT_AUTH', message: 'segment 0 failed authentication' },
  {
    name: 'segment from another stream with the same key spliced in',
    make: (s, other) => Buffer.concat([s.subarray(0, seg(1)), other.subarray(seg(1), seg(2)), s.subarray(seg(2))]),
    code: 'ERR_SEGMENT_AUTH',
    message: 'segment 1 failed authentication',
  },
  {
    name: 'segments 0 and 1 swapped',
    make: (s) => reassemble(s, [1, 0, 2, 3]),
    code: 'ERR_SEGMENT_ORDER',
    message: 'segment 0 is out of order: it is segment 1 (segments reordered or duplicated)',
  },
  { name: 'segment 0 duplicated', make: (s) => reassemble(s, [0, 0, 1, 2, 3]), code: 'ERR_SEGMENT_ORDER', message: 'segment 1 is out of order: it is segment 0' },
  { name: 'segment 1 dropped', make: (s) => reassemble(s, [0, 2, 3]), code: 'ERR_SEGMENT_ORDER', message: 'segment 1 is out of order: it is segment 2' },
  { name: 'final segment moved forward', make: (s) => reassemble(s, [0, 3, 1, 2]), code: 'ERR_SEGMENT_ORDER', message: 'segment 1 is out of order: it is segment 3' },
  { name: 'one byte appended', make: (s) => Buffer.concat([s, Buffer.from([0])]), code: 'ERR_TRAILING_DATA' },
  { name: 'final segment repeated', make: (s) => Buffer.concat([s, s.subarray(seg(3))]), code: 'ERR_TRAILING_DATA' },
];

async function encode(impl: Implementation): Promise<Buffer> {
  return runToBuffer([INPUT], createEncoder({ compression: 'none', key: keyFromBytes(TEST_KEY), segmentSize: SEG, implementation: impl }));
}

describe('tampered encrypted streams', () => {
  for (const impl of IMPLS) {
    it(`${impl}: the reference stream has the expected layout and decodes`, async () => {
      const stored = await encode(impl);
      expect(stored.length).toBe(H + 3 * S + 4 + 512 + 16);
      const back = await runToBuffer([stored], createDecoder({ compression: 'none', key: TEST_KEY, implementation: impl }));
      expect(back.equals(INPUT)).toBe(true);
    });

    for (const c of CASES) {
      it(`${impl}: ${c.name} -> ${c.code}`, async () => {
        const stored = await encode(impl);
        const other = await encode(impl);
        const bad = c.make(stored, other);
        for (const chunkSize of [bad.length, 100, 7, 1044]) {
          const decoder = createDecoder({ compression: c.expect ?? 'none', key: c.key ?? TEST_KEY, implementation: impl });
          const { error, output } = await decodeFailure(bad, decoder, chunkSize);
          expect(error, `${c.name}: must not decode (chunks of ${chunkSize})`).toBeInstanceOf(BackupError);
          const e = error as BackupError;
          expect(e.code).toBe(c.code);
          expect(e.message.startsWith(c.message ?? PREFIX[c.code]), e.message).toBe(true);
          // Only verified plaintext may have been released: a prefix of the real input (a strict one,
          // except for trailing data, which a streaming reader can only see after the final segment).
          if (c.code !== 'ERR_TRAILING_DATA') expect(output.length).toBeLessThan(INPUT.length);
          expect(output.equals(INPUT.subarray(0, output.length))).toBe(true);
        }
      });
    }
  }

  it('both implementations give the same code and message for every case', async () => {
    const storedJs = await encode('js');
    const otherJs = await encode('js');
    for (const c of CASES) {
      const bad = c.make(storedJs, otherJs);
      const results = [];
      for (const impl of IMPLS) {
        const { error } = await decodeFailure(bad, createDecoder({ compression: c.expect ?? 'none', key: c.key ?? TEST_KEY, implementation: impl }));
        const e = error as BackupError;
        results.push(`${e.code}: ${e.message}`);
      }
      expect(results[1], c.name).toBe(results[0]);
    }
  });

  it('errors are sticky: writes after a failure keep failing with the same code', async () => {
    for (const impl of IMPLS) {
      const decoder = createDecoder({ compression: 'none', key: TEST_KEY, implementation: impl });
      const failures: string[] = [];
      decoder.on('error', (e: BackupError) => failures.push(e.code));
      decoder.write(flip(await encode(impl), 3));
      decoder.end();
      await new Promise((r) => decoder.once('close', r));
      expect(failures).toEqual(['ERR_NOT_ENCRYPTED_STREAM']);
    }
  });

  for (const impl of IMPLS) {
    for (const compression of ['gzip', 'deflate', 'brotli'] as const) {
      it(`${impl}: corrupt unencrypted ${compression} data -> ERR_DECOMPRESS`, async () => {
        const input = concat(jsonLines(200_000));
        const stored = await runToBuffer([input], createEncoder({ compression, implementation: impl }));
        const cases = [stored.subarray(0, Math.floor(stored.length / 2)), Buffer.concat([stored.subarray(0, 10), Buffer.alloc(5000, 0xff)])];
        for (const bad of cases) {
          const { error } = await decodeFailure(bad, createDecoder({ compression, implementation: impl }));
          expect(error).toBeInstanceOf(BackupError);
          expect((error as BackupError).code).toBe('ERR_DECOMPRESS');
          expect((error as BackupError).message.startsWith(`${compression} data is corrupt`)).toBe(true);
        }
      });
    }
    it(`${impl}: gzip-compressed encrypted stream with a flipped ciphertext bit -> ERR_SEGMENT_AUTH, no plaintext out`, async () => {
      const input = concat(jsonLines(100_000));
      const stored = await runToBuffer([input], createEncoder({ compression: 'gzip', key: TEST_KEY, implementation: impl }));
      const { error, output } = await decodeFailure(flip(stored, 200), createDecoder({ compression: 'gzip', key: TEST_KEY, implementation: impl }));
      expect((error as BackupError).code).toBe('ERR_SEGMENT_AUTH');
      expect(output.length).toBe(0);
    });
  }
});
