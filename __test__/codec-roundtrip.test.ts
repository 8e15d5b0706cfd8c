/**
 * Round trips through createEncoder -> createDecoder for every codec x {plain, encrypted} x sizes
 * {0, 1, one segment, one segment + 1, many segments, 100 MiB} x {native, js}, on real streams.
 * "Exactly one segment" is hit exactly: the input is sized (per implementation) so that the
 * compressed stream is exactly segmentSize bytes, and the stored length proves it.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { createDecoder, createEncoder, keyFromBytes, nativeAvailable, type Compression, type Implementation } from '../src/codec/index.js';
import { concat, digestOf, jsonLines, MiB, noise, runToBuffer, runToDigest } from './helpers/corpus.js';
import { codecsOf, IMPLS, TEST_KEY } from './helpers/codec-impls.js';
import { MAX_OUTPUT_LIMIT, NativeCodecStream, outputLimit } from '../src/codec/native-stream.js';
import { nativeBinding, type NativeCodec } from '../src/codec/native-binding.js';

const SEG = 4096;
const HEADER = 87;
const OVERHEAD = 4 + 16;

function chunks(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

/** Waits until `count()` stops moving (10 polls of 20 ms alike); false if it still moves after 8 s. */
async function untilStill(count: () => number): Promise<boolean> {
  let last = -1;
  let still = 0;
  for (let i = 0; i < 400 && still < 10; i++) {
    await new Promise((r) => setTimeout(r, 20));
    still = count() === last ? still + 1 : 0;
    last = count();
  }
  return still === 10;
}

/** A Writable that takes everything at once, counting its bytes and hashing them (SHA-256). */
function countingSink() {
  const hash = createHash('sha256');
  const counted = {
    bytes: 0,
    sha256: () => hash.digest('hex'),
    sink: new Writable({
      write(c: Buffer, _e, cb) {
        counted.bytes += c.length;
        hash.update(c);
        cb();
      },
    }),
  };
  return counted;
}

async function roundTrip(impl: Implementation, compression: Compression, encrypted: boolean, input: Buffer) {
  const key = encrypted ? keyFromBytes(TEST_KEY) : undefined;
  const stored = await runToBuffer(chunks(input, 1000), createEncoder({ compression, key, segmentSize: SEG, implementation: impl }));
  const back = await runToBuffer(chunks(stored, 777), createDecoder({ compression, key, implementation: impl }));
  return { stored, back };
}

async function compressedLength(impl: Implementation, compression: Compression, n: number): Promise<number> {
  return (await runToBuffer(concat(noise(n)), createEncoder({ compression, implementation: impl }))).length;
}

/** Smallest input length whose compressed stream is exactly `target` bytes (noise input). */
async function inputForCompressedLength(impl: Implementation, compression: Compression, target: number): Promise<number> {
  let n = target;
  for (let i = 0; i < 12; i++) {
    const c = await compressedLength(impl, compression, n);
    if (c === target) break;
    n = Math.max(1, n + (target - c));
  }
  for (let d = -16; d <= 16; d++) if ((await compressedLength(impl, compression, n + d)) === target) return n + d;
  throw new Error(`no input length gives a ${compression} stream of exactly ${target} bytes`);
}

describe('codec round trips', () => {
  it('the native core is built and loads (npm run build:native)', () => {
    expect(nativeAvailable()).toBe(true);
  });

  for (const impl of IMPLS) {
    for (const compression of codecsOf(impl)) {
      for (const encrypted of [false, true]) {
        const label = `${impl} ${compression} ${encrypted ? 'encrypted' : 'plain'}`;
        it(`${label}: sizes 0, 1, segment, segment + 1, 300 KiB`, async () => {
          for (const size of [0, 1, SEG, SEG + 1, 300 * 1024]) {
            const input = concat(jsonLines(size));
            const { stored, back } = await roundTrip(impl, compression, encrypted, input);
            expect(back.equals(input), `${label} size ${size}`).toBe(true);
            if (encrypted) {
              expect(stored.subarray(0, 8).toString('latin1')).toBe('S3DBBKUP');
              if (size === 0 && compression === 'none') expect(stored.length).toBe(HEADER + OVERHEAD);
            } else if (compression === 'none') {
              expect(stored.equals(input)).toBe(true);
            }
            // Compressed JSON is smaller than the input; encrypted output never shows the plaintext.
            if (size >= SEG && compression !== 'none') expect(stored.length).toBeLessThan(input.length);
            if (encrypted && size >= 64) expect(stored.includes(input.subarray(0, 64))).toBe(false);
          }
        });

        if (encrypted) {
          it(`${label}: compressed stream of exactly one segment, and one segment + 1`, async () => {
            const key = keyFromBytes(TEST_KEY);
            const exact = await inputForCompressedLength(impl, compression, SEG);
            for (const [n, expectedStored] of [
              [exact, HEADER + OVERHEAD + SEG],
              [await inputForCompressedLength(impl, compression, SEG + 1), HEADER + OVERHEAD + SEG + OVERHEAD + 1],
            ] as const) {
              const input = concat(noise(n));
              const stored = await runToBuffer([input], createEncoder({ compression, key, segmentSize: SEG, implementation: impl }));
              expect(stored.length).toBe(expectedStored);
              // Frame of segment 0: the final flag is set only when it is the only segment.
              const frame0 = stored.readUInt32BE(HEADER);
              expect(frame0 & 0x7fffffff).toBe(SEG);
              expect(frame0 >>> 31).toBe(expectedStored === HEADER + OVERHEAD + SEG ? 1 : 0);
              const back = await runToBuffer(chunks(stored, SEG + OVERHEAD), createDecoder({ compression, key, implementation: impl }));
              expect(back.equals(input)).toBe(true);
            }
          });
        }
      }
    }
  }

  it('the JS twin refuses zstd with ERR_CODEC_UNAVAILABLE (Node 20 has no zstd)', () => {
    expect(() => createEncoder({ compression: 'zstd', implementation: 'js' })).toThrow(
      expect.objectContaining({ code: 'ERR_CODEC_UNAVAILABLE' }),
    );
    expect(() => createDecoder({ compression: 'zstd', implementation: 'js' })).toThrow(/needs the native core/);
  });

  const big: Array<[Implementation, Compression, number | undefined]> = [
    ['js', 'gzip', 1],
    ['js', 'none', undefined],
    ['native', 'gzip', 6],
    ['native', 'zstd', 3],
  ];
  for (const [impl, compression, level] of big) {
    it(`${impl} ${compression} encrypted: 100 MiB streamed end to end`, async () => {
      const size = 100 * MiB;
      const key = keyFromBytes(TEST_KEY);
      let stored = 0;
      const head: Buffer[] = [];
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          if (head.length === 0) head.push(Buffer.from(chunk.subarray(0, 8)));
          stored += chunk.length;
          cb(null, chunk);
        },
      });
      const out = await runToDigest(
        jsonLines(size),
        createEncoder({ compression, level, key, implementation: impl }),
        tap,
        createDecoder({ compression, key, implementation: impl }),
      );
      expect(out.length).toBe(size);
      expect(out.sha256).toBe(digestOf(jsonLines(size)));
      expect(head[0].toString('latin1')).toBe('S3DBBKUP');
      if (compression === 'none') expect(stored).toBe(87 + size + 100 * 20);
      else expect(stored).toBeLessThan(size / 2);
    });
  }

  for (const impl of IMPLS) {
    it(`${impl}: back-pressure holds the source while nobody reads the output`, async () => {
      let produced = 0;
      const total = 512 * MiB;
      const source = Readable.from(
        (function* () {
          for (const b of noise(total, 7, 64 * 1024)) {
            produced += b.length;
            yield b;
          }
        })(),
      );
      const encoder = createEncoder({ compression: 'none', key: keyFromBytes(TEST_KEY), implementation: impl });
      source.pipe(encoder);
      // Let the pipe run until the source stops being pulled (the encoder's buffers are full).
      expect(await untilStill(() => produced)).toBe(true);
      expect(produced).toBeLessThan(32 * MiB);
      // Now drain it: everything comes through and decodes.
      let stored = 0;
      const decoder = createDecoder({ compression: 'none', key: keyFromBytes(TEST_KEY), implementation: impl });
      const plain = countingSink();
      await pipeline(
        encoder,
        new Transform({
          transform(c: Buffer, _e, cb) {
            stored += c.length;
            cb(null, c);
          },
        }),
        decoder,
        plain.sink,
      );
      expect(plain.bytes).toBe(total);
      expect(stored).toBe(87 + total + (total / MiB) * 20);
    });
  }

  // A source slower than the codec (an S3 read, a network) must not let output pile up: the
  // native stream pushes a call's output after the write that started it has returned, which
  // Node's Transform does not count as back-pressure, so it holds writes itself (native-stream.ts).
  for (const impl of IMPLS) {
    for (const side of ['encoder', 'decoder'] as const) {
      it(`${impl}: ${side === 'encoder' ? 'an encoder' : 'a decoder'} fed slowly with nobody reading holds the source, at most about two batches of output waiting`, async () => {
        const key = keyFromBytes(TEST_KEY);
        const total = 48 * MiB;
        const batch = 2 * MiB; // the native stream's: threads 2 x 1 MiB segments
        const input = side === 'encoder' ? concat(noise(total, 5, 256 * 1024)) : await runToBuffer(noise(total, 5, 256 * 1024), createEncoder({ compression: 'none', key, implementation: impl }));
        let fed = 0;
        const source = Readable.from(
          (async function* () {
            for (const c of chunks(input, 256 * 1024)) {
              await new Promise((r) => setTimeout(r, 2));
              fed += c.length;
              yield c;
            }
          })(),
        );
        const stage = side === 'encoder' ? createEncoder({ compression: 'none', key, threads: 2, implementation: impl }) : createDecoder({ compression: 'none', key, threads: 2, implementation: impl });
        source.pipe(stage); // nobody reads its output
        expect(await untilStill(() => fed)).toBe(true);
        expect(fed).toBeLessThan(total / 2);
        // Less than one batch when a call starts, plus that call's output: for the native encoder
        // up to 2 x threads sealed segments (it hands over those still in flight from earlier calls).
        expect(stage.readableLength).toBeLessThanOrEqual(3 * batch + 64 * 1024);
        const out = countingSink();
        await pipeline(stage, out.sink);
        expect(out.bytes).toBe(side === 'encoder' ? 87 + total + (total / MiB) * 20 : total);
      });
    }
  }

  // Data that compresses 1000x and more (zeros; one record repeated does nearly as well): a few
  // KiB of stream inflate to a whole part. With nobody reading, a decoder must stop near its
  // bound, not inflate everything it was given: the native core stops each call at its output
  // limit (4 batches) and says `more()`; the JS twin pauses node:zlib mid-chunk. Without either,
  // every case here queued 64-128 MiB.
  const BOMB = 128 * MiB;
  const bombs = new Map<string, Buffer>();
  const zeros = Buffer.alloc(BOMB);
  const zerosDigest = createHash('sha256').update(zeros).digest('hex');
  for (const impl of IMPLS) {
    for (const compression of codecsOf(impl).filter((c) => c !== 'none')) {
      for (const encrypted of [false, true]) {
        it(`${impl} ${compression} ${encrypted ? 'encrypted' : 'plain'}: 128 MiB of zeros with nobody reading queues a bounded output, then all of it comes through`, async () => {
          const key = encrypted ? keyFromBytes(TEST_KEY) : undefined;
          const name = `${compression} ${encrypted}`;
          // Written by the native core (each implementation reads the other's streams).
          if (!bombs.has(name)) bombs.set(name, await runToBuffer([zeros], createEncoder({ compression, key, implementation: 'native' })));
          const stream = bombs.get(name) as Buffer;
          expect(stream.length * 300).toBeLessThan(BOMB);
          const decoder = createDecoder({ compression, key, threads: 2, implementation: impl });
          Readable.from(chunks(stream, 64 * 1024)).pipe(decoder); // nobody reads the decoder
          // Still at a length above zero (NaN never equals itself): a native call inflating all
          // it was given shows nothing until it returns.
          expect(await untilStill(() => decoder.readableLength || Number.NaN)).toBe(true);
          // Native: one batch (2 MiB) waits when a call starts, plus that call's output: the limit
          // (8 MiB; soft, a gzip member or a step over). JS: node:zlib's buffer and a chunk.
          const bound = impl === 'native' ? 20 * MiB : 2 * MiB;
          expect(decoder.readableLength).toBeLessThanOrEqual(bound);
          const out = countingSink();
          await pipeline(decoder, out.sink);
          expect(out.bytes).toBe(BOMB);
          expect(out.sha256()).toBe(zerosDigest);
        });
      }
    }
  }

  // The output limit is 4 batches, and a batch is threads x 1 MiB: without a cap a 32-core host
  // would let one call inflate 128 MiB (the whole stream here). Capped at 16 MiB, what waits is
  // one batch (32 MiB here, the threads x segment) plus one call's output.
  it('native, 32 threads: a decoder call still stops at 16 MiB, the output limit does not grow with the cores', async () => {
    expect([outputLimit(2 * MiB), outputLimit(4 * MiB), outputLimit(32 * MiB)]).toEqual([8 * MiB, 16 * MiB, MAX_OUTPUT_LIMIT]);
    const stream = await runToBuffer([zeros], createEncoder({ compression: 'brotli', implementation: 'native' }));
    const decoder = createDecoder({ compression: 'brotli', threads: 32, implementation: 'native' });
    Readable.from(chunks(stream, 64 * 1024)).pipe(decoder); // nobody reads the decoder
    expect(await untilStill(() => decoder.readableLength || Number.NaN)).toBe(true);
    expect(decoder.readableLength).toBeLessThanOrEqual(32 * MiB + MAX_OUTPUT_LIMIT);
    const out = countingSink();
    await pipeline(decoder, out.sink);
    expect(out.bytes).toBe(BOMB);
    expect(out.sha256()).toBe(zerosDigest);
  });

  // After destroy, pushes are dropped, so there is always "room": without a check the stream would
  // go on inflating everything the decoder still holds (here 128 MiB) for nobody. The real
  // NativeDecoder is wrapped only to count its calls.
  it('native: a decoder destroyed by its consumer makes no further native calls', async () => {
    const native = nativeBinding();
    expect(native, 'native core must load').not.toBeNull();
    const stream = await runToBuffer([zeros], createEncoder({ compression: 'brotli', implementation: 'native' }));
    const real = new native!.NativeDecoder({ compression: 'brotli', threads: 2, outputLimit: outputLimit(2 * MiB) });
    let calls = 0;
    const counted: NativeCodec = {
      write: (c) => (calls++, real.write(c)),
      writeChunks: (cs) => (calls++, real.writeChunks(cs)),
      finish: () => (calls++, real.finish()),
      more: () => real.more(),
      close: () => real.close(),
    };
    const decoder = new NativeCodecStream(counted, 2 * MiB, { decoding: true, compression: 'brotli' });
    Readable.from(chunks(stream, 64 * 1024)).pipe(decoder);
    let taken = 0;
    await new Promise<void>((resolve) => {
      decoder.on('data', (c: Buffer) => {
        taken += c.length;
        if (taken >= 4 * MiB && !decoder.destroyed) {
          decoder.destroy();
          resolve();
        }
      });
    });
    const atDestroy = calls;
    expect(await untilStill(() => calls)).toBe(true);
    expect(calls - atDestroy).toBeLessThanOrEqual(1); // the call in flight at the time, if any
    expect(atDestroy).toBeLessThan(8); // 128 MiB would take 16 calls of 8 MiB
  });

  // The native stream keeps encoding while its consumer (an upload, a file) has not yet taken the
  // output: input stops only once one batch of output waits. With Node's default 16 KiB it
  // stopped at the first call's output (about batch / ratio), so codec and consumer took turns.
  // (A fast source here; the slow one is above.)
  it('native: an encoder queues about one batch of output for a slow consumer, and no more', async () => {
    const total = 96 * MiB;
    const batch = 2 * MiB; // threads 2 x 1 MiB segments
    let fed = 0;
    const source = Readable.from(
      (function* () {
        for (const c of jsonLines(total, 64 * 1024)) {
          fed += c.length;
          yield c;
        }
      })(),
    );
    const encoder = createEncoder({ compression: 'gzip', key: keyFromBytes(TEST_KEY), threads: 2, implementation: 'native' });
    source.pipe(encoder); // nobody reads the encoder: the stalled consumer
    expect(await untilStill(() => fed)).toBe(true);
    // Calls give about batch / 4.5 each (JSON lines): several ran while the first output waited.
    expect(encoder.readableLength).toBeGreaterThanOrEqual(batch);
    expect(encoder.readableLength).toBeLessThanOrEqual(3 * batch);
    // Input runs ahead of output by the ratio (~4.5) and the blocks and segments in flight: held
    // long before the end all the same.
    expect(fed).toBeLessThan(total / 2);
    // Then drained: everything comes through and decodes.
    const plain = countingSink();
    await pipeline(encoder, createDecoder({ compression: 'gzip', key: keyFromBytes(TEST_KEY), implementation: 'native' }), plain.sink);
    expect(plain.bytes).toBe(total);
    expect(plain.sha256()).toBe(digestOf(jsonLines(total, 64 * 1024)));
  });
});

// A native stream's worker threads and buffers went only with a garbage collection: a chain
// restore or a verification left dozens of idle decoders behind (review chain-memory). Counted as
// the kernel counts this process's threads, with every stream still referenced (no GC can help).
describe.runIf(process.platform === 'linux')('native streams free their threads when they end or are destroyed', () => {
  const threads = () => Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);

  it('ended and destroyed decoders and encoders hold no worker thread, with no garbage collection', async () => {
    expect(nativeAvailable(), 'native core must load').toBe(true);
    const options = { compression: 'gzip' as const, key: TEST_KEY, threads: 2, implementation: 'native' as const };
    const input = Buffer.concat([...jsonLines(32 * MiB)]); // enough segments and members for the decoder's workers
    const stored = await runToBuffer([input], createEncoder(options));
    await runToBuffer([stored], createDecoder(options)); // the libuv pool and the like, started once
    const before = threads();
    const kept: Transform[] = [];
    for (let i = 0; i < 4; i++) {
      const decoder = createDecoder(options);
      kept.push(decoder);
      expect((await runToBuffer(chunks(stored, 256 * 1024), decoder)).equals(input)).toBe(true);
      const encoder = createEncoder(options);
      kept.push(encoder);
      await runToBuffer([input], encoder);
    }
    for (let i = 0; i < 4; i++) {
      // half a stream, then destroyed (by its reader, a failure), maybe with a call in flight:
      // that call frees it when it ends
      const decoder = createDecoder(options);
      kept.push(decoder);
      decoder.write(stored.subarray(0, Math.floor(stored.length / 2)));
      await new Promise((resolve) => setTimeout(resolve, 20));
      decoder.destroy();
    }
    expect(await untilStill(threads)).toBe(true);
    expect(threads()).toBeLessThanOrEqual(before + 2); // 2 per stream, 24 in all, before
    expect(kept.length).toBe(12);
  });
});
