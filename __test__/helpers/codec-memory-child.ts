/**
 * Child process of codec-memory.test.ts: streams N MiB of JSON lines through createEncoder ->
 * createDecoder (one pipeline, so encoder and decoder both run) and prints one JSON line with the
 * peak growth of RSS and of ArrayBuffer memory over the pre-stream baseline, sampled while it runs.
 *   node --expose-gc --import tsx __test__/helpers/codec-memory-child.ts <impl> <compression> <MiB> [threads]
 */
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecoder, createEncoder, keyFromBytes, type Compression, type Implementation } from '../../src/codec/index.js';
import { jsonLines, MiB } from './corpus.js';

const [impl, compression, mib, threadsArg] = process.argv.slice(2);
const bytes = Number(mib) * MiB;
const threads = threadsArg === undefined ? 2 : Number(threadsArg);
const key = keyFromBytes(Buffer.alloc(32, 1));
const gc = (globalThis as { gc?: () => void }).gc;

for (const _ of jsonLines(16 * MiB)); // build the corpus blocks before the baseline
gc?.();
const base = process.memoryUsage();
let peakRss = 0;
let peakAb = 0;
const sample = () => {
  const m = process.memoryUsage();
  peakRss = Math.max(peakRss, m.rss - base.rss);
  peakAb = Math.max(peakAb, m.arrayBuffers - base.arrayBuffers);
};
const timer = setInterval(sample, 20);

const hIn = createHash('sha256');
const hOut = createHash('sha256');
let out = 0;
let n = 0;
await pipeline(
  Readable.from(
    (function* () {
      for (const b of jsonLines(bytes, 64 * 1024)) {
        hIn.update(b);
        yield b;
      }
    })(),
  ),
  createEncoder({ compression: compression as Compression, key, threads, implementation: impl as Implementation, level: compression === 'gzip' ? 1 : undefined }),
  createDecoder({ compression: compression as Compression, key, threads, implementation: impl as Implementation }),
  new Writable({
    write(chunk: Buffer, _e, cb) {
      hOut.update(chunk);
      out += chunk.length;
      if (++n % 16 === 0) sample();
      cb();
    },
  }),
);
clearInterval(timer);
sample();
console.log(JSON.stringify({ bytes: out, intact: out === bytes && hIn.digest('hex') === hOut.digest('hex'), peakRssGrowth: peakRss, peakArrayBuffersGrowth: peakAb }));
