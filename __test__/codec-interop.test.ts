/**
 * Interoperability: each implementation decodes the other's output byte for byte; with a fixed
 * salt and nonce prefix both write identical encrypted bytes; unencrypted output is a standard
 * stream that Node's zlib and the gzip/zstd command-line tools read; the native compressor stays
 * within FORMAT.md's 1.5 % of Node's output size at the same level.
 */
import { spawnSync } from 'node:child_process';
import type { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { createDecoder, createEncoder, keyFromBytes, type Compression, type Implementation } from '../src/codec/index.js';
import { generateCorpus } from '../benches/corpus.js';
import { concat, jsonLines, MiB, noise, runToBuffer } from './helpers/corpus.js';
import { IMPLS, TEST_KEY } from './helpers/codec-impls.js';

const INPUT = concat(jsonLines(5 * MiB + 12345)); // several native blocks and batches
const SALT = Buffer.alloc(32, 0xa5);
const PREFIX = Buffer.from('01020304050607', 'hex');

function chunks(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

function other(impl: Implementation): Implementation {
  return impl === 'js' ? 'native' : 'js';
}

describe('codec interoperability', () => {
  for (const impl of IMPLS) {
    for (const compression of ['gzip', 'deflate', 'brotli', 'none'] as const) {
      for (const encrypted of [false, true]) {
        it(`${impl} encodes ${compression} ${encrypted ? 'encrypted' : 'plain'} -> ${other(impl)} decodes it byte for byte`, async () => {
          const key = encrypted ? keyFromBytes(TEST_KEY) : undefined;
          const stored = await runToBuffer(chunks(INPUT, 64 * 1024), createEncoder({ compression, key, segmentSize: 64 * 1024, implementation: impl }));
          const back = await runToBuffer(chunks(stored, 100_000), createDecoder({ compression, key, implementation: other(impl) }));
          expect(back.length).toBe(INPUT.length);
          expect(back.equals(INPUT)).toBe(true);
        });
      }
    }
  }

  it('with a fixed salt and nonce prefix both implementations write identical encrypted bytes', async () => {
    for (const size of [0, 1, 1024, 1025, 5000, 300_000]) {
      const input = concat(noise(size, 3));
      const outs: Buffer[] = [];
      for (const impl of IMPLS) {
        outs.push(
          await runToBuffer([input], createEncoder({ compression: 'none', key: TEST_KEY, segmentSize: 1024, implementation: impl, testSalt: SALT, testNoncePrefix: PREFIX })),
        );
      }
      expect(outs[0].length).toBe(87 + Math.max(1, Math.ceil(size / 1024)) * 20 + size);
      expect(outs[1].equals(outs[0]), `size ${size}`).toBe(true);
    }
  });

  it('the same compressed plaintext gives identical encrypted streams (gzip compressed, then sealed)', async () => {
    // The compressors differ (zlib vs the native core), so compare sealing of identical compressed bytes:
    // the native gzip output, sealed by both as 'none', must match exactly.
    const compressed = await runToBuffer([INPUT], createEncoder({ compression: 'gzip', implementation: 'native' }));
    const outs: Buffer[] = [];
    for (const impl of IMPLS) {
      outs.push(await runToBuffer(chunks(compressed, 4096), createEncoder({ compression: 'none', key: TEST_KEY, implementation: impl, testSalt: SALT, testNoncePrefix: PREFIX })));
    }
    expect(outs[1].equals(outs[0])).toBe(true);
  });

  for (const impl of IMPLS) {
    it(`${impl}: unencrypted gzip/deflate/brotli are standard streams for Node's zlib`, async () => {
      const readers: Record<string, (b: Buffer) => Buffer> = {
        gzip: (b) => zlib.gunzipSync(b),
        deflate: (b) => zlib.inflateSync(b),
        brotli: (b) => zlib.brotliDecompressSync(b),
      };
      for (const [compression, read] of Object.entries(readers)) {
        for (const input of [Buffer.alloc(0), INPUT]) {
          const stored = await runToBuffer([input], createEncoder({ compression: compression as Compression, implementation: impl }));
          expect(read(stored).equals(input), `${compression} of ${input.length} bytes`).toBe(true);
        }
      }
    });

    it(`${impl}: unencrypted gzip is read by \`gzip -d\` (a standard gzip file)`, async () => {
      const stored = await runToBuffer([INPUT], createEncoder({ compression: 'gzip', level: 6, implementation: impl }));
      const test = spawnSync('gzip', ['-t'], { input: stored });
      expect(test.status, String(test.stderr)).toBe(0);
      const out = spawnSync('gzip', ['-d', '-c'], { input: stored, maxBuffer: 64 * MiB });
      expect(out.status, String(out.stderr)).toBe(0);
      expect(out.stdout.equals(INPUT)).toBe(true);
    });
  }

  it('native zstd output is read by `zstd -d`', async () => {
    const stored = await runToBuffer([INPUT], createEncoder({ compression: 'zstd', implementation: 'native' }));
    expect(stored.readUInt32LE(0)).toBe(0xfd2fb528); // zstd frame magic
    const out = spawnSync('zstd', ['-d', '-c', '-q'], { input: stored, maxBuffer: 64 * MiB });
    expect(out.status, String(out.stderr)).toBe(0);
    expect(out.stdout.equals(INPUT)).toBe(true);
  });

  it("native compressed output is at most 1.5 % larger than Node's streaming encoder at the same level (benchmark corpus)", async () => {
    const corpus = Buffer.concat(generateCorpus(8 * MiB));
    const quality = (level: number) => ({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level } });
    // FORMAT.md 2.1: the reference is what Node streams (64 KiB chunks), i.e. the JS twin.
    const cases: Array<[Compression, number, (level: number) => Transform]> = [
      // Every gzip level: each maps to its own libdeflate level schedule (crates/core/src/compress/levels.rs).
      ...[1, 2, 3, 4, 5, 6, 7, 8, 9].map((l): [Compression, number, (level: number) => Transform] => ['gzip', l, (level) => zlib.createGzip({ level })]),
      ['deflate', 6, (level) => zlib.createDeflate({ level })],
      ['brotli', 1, (level) => zlib.createBrotliCompress(quality(level))],
      ['brotli', 4, (level) => zlib.createBrotliCompress(quality(level))],
      ['brotli', 6, (level) => zlib.createBrotliCompress(quality(level))],
      ['brotli', 7, (level) => zlib.createBrotliCompress(quality(level))],
    ];
    const report: string[] = [];
    for (const [compression, level, node] of cases) {
      const nodeSize = (await runToBuffer(chunks(corpus, 64 * 1024), node(level))).length;
      const nativeSize = (await runToBuffer(chunks(corpus, 64 * 1024), createEncoder({ compression, level, implementation: 'native' }))).length;
      report.push(`${compression}-${level}: native ${nativeSize} / node ${nodeSize} = ${(nativeSize / nodeSize).toFixed(4)}`);
      expect(nativeSize / nodeSize, report.join('\n')).toBeLessThanOrEqual(1.015);
    }
  });

  it('native brotli at every level 0-9 on the input that crashed quality 2 is read back by Node (C brotli)', async () => {
    // Bytes 44-46 MiB of the benchmark corpus: at quality 2 with a custom dictionary the brotli
    // crate panicked on them (index out of bounds in StoreCommandExtra); a backup at level 2
    // failed with "a codec worker thread stopped". Two blocks: the second is primed by the first.
    const corpus = Buffer.concat(generateCorpus(46 * MiB));
    const input = corpus.subarray(44 * MiB);
    for (let level = 0; level <= 9; level++) {
      const stored = await runToBuffer(chunks(input, 64 * 1024), createEncoder({ compression: 'brotli', level, implementation: 'native' }));
      expect(zlib.brotliDecompressSync(stored).equals(input), `level ${level}`).toBe(true);
    }
  });
});
