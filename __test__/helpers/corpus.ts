/**
 * Deterministic, fast test inputs for the codec suites (no files, nothing random between runs):
 * `jsonLines(bytes)` streams JSON-lines database records (compressible like real backups), cycling
 * through 16 seeded 1 MiB blocks (a 16 MiB period, longer than any codec window used here, so
 * zstd/brotli see realistic ratios) whose copies differ by a per-block counter; `noise(bytes, seed)`
 * streams incompressible bytes (AES-128-CTR keystream). Plus stream helpers to hash or collect
 * what a Transform outputs.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { mulberry32 } from '../../benches/corpus.js';

const BLOCK = 1024 * 1024;
export const MiB = 1024 * 1024;

const NAMES = ['ana', 'bruno', 'carla', 'diego', 'elisa', 'fabio', 'gina', 'hugo', 'iris', 'joao', 'kai', 'lara'];
const CITIES = ['Lisboa', 'Porto', 'Recife', 'Curitiba', 'Berlin', 'Austin', 'Osaka', 'Lyon'];

const BLOCKS = 16;
const cachedBlocks: Buffer[] = [];

/** Block `index` (0..15) of 1 MiB of JSON lines (users and orders), the same on every run. */
export function recordBlock(index = 0): Buffer {
  const cached = cachedBlocks[index];
  if (cached) return cached;
  const rand = mulberry32(0x5eed + index * 7919);
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < BLOCK; i++) {
    const name = NAMES[Math.floor(rand() * NAMES.length)];
    const rec =
      i % 3 === 0
        ? { id: `user-${i}`, name: `${name} ${Math.floor(rand() * 1e6)}`, email: `${name}${i}@example.com`, city: CITIES[Math.floor(rand() * CITIES.length)], active: rand() > 0.2, score: Math.round(rand() * 10000) / 100 }
        : { id: `order-${i}`, userId: `user-${i - (i % 3)}`, total: Math.round(rand() * 100000) / 100, items: Math.floor(rand() * 9) + 1, status: rand() > 0.5 ? 'paid' : 'pending', createdAt: new Date(1.7e12 + Math.floor(rand() * 3e10)).toISOString() };
    const line = JSON.stringify(rec) + '\n';
    lines.push(line);
    size += Buffer.byteLength(line);
  }
  cachedBlocks[index] = Buffer.from(lines.join('')).subarray(0, BLOCK);
  return cachedBlocks[index];
}

/** `bytes` of JSON lines in chunks of `chunk` bytes; block k carries counter k in its first bytes. */
export function* jsonLines(bytes: number, chunk = 256 * 1024): Generator<Buffer> {
  let produced = 0;
  let block = 0;
  while (produced < bytes) {
    const b = Buffer.from(recordBlock(block % BLOCKS));
    b.write(`{"block":${String(block).padStart(10, '0')}}`, 0, 'latin1');
    for (let off = 0; off < BLOCK && produced < bytes; off += chunk) {
      const n = Math.min(chunk, BLOCK - off, bytes - produced);
      yield b.subarray(off, off + n);
      produced += n;
    }
    block += 1;
  }
}

/** `bytes` of deterministic incompressible data. */
export function* noise(bytes: number, seed = 1, chunk = 256 * 1024): Generator<Buffer> {
  const key = Buffer.alloc(16, seed & 0xff);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(chunk);
  for (let produced = 0; produced < bytes; produced += chunk) {
    const n = Math.min(chunk, bytes - produced);
    yield cipher.update(zeros.subarray(0, n));
  }
}

export function concat(gen: Iterable<Buffer>): Buffer {
  return Buffer.concat([...gen]);
}

/** sha256 of a generator's bytes. */
export function digestOf(gen: Iterable<Buffer>): string {
  const h = createHash('sha256');
  for (const b of gen) h.update(b);
  return h.digest('hex');
}

/** Pipes `source` through the transforms and returns all output. */
export async function runToBuffer(source: Iterable<Buffer> | Buffer, ...stages: Transform[]): Promise<Buffer> {
  const out: Buffer[] = [];
  const src = Buffer.isBuffer(source) ? Readable.from([source]) : Readable.from(source);
  await pipeline([
    src,
    ...stages,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk);
        cb();
      },
    }),
  ]);
  return Buffer.concat(out);
}

/** Pipes `source` through the transforms and returns sha256 and length of the output (streamed). */
export async function runToDigest(source: Iterable<Buffer>, ...stages: Transform[]): Promise<{ sha256: string; length: number }> {
  const h = createHash('sha256');
  let length = 0;
  await pipeline([
    Readable.from(source),
    ...stages,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        h.update(chunk);
        length += chunk.length;
        cb();
      },
    }),
  ]);
  return { sha256: h.digest('hex'), length };
}

/** Runs a decoder over `stored` and returns the error it fails with, plus what it emitted first. */
export async function decodeFailure(
  stored: Buffer,
  decoder: Transform,
  chunkSize = stored.length,
): Promise<{ error: unknown; output: Buffer }> {
  const out: Buffer[] = [];
  const pieces: Buffer[] = [];
  for (let i = 0; i < stored.length; i += Math.max(1, chunkSize)) pieces.push(stored.subarray(i, i + chunkSize));
  try {
    await pipeline([
      Readable.from(pieces),
      decoder,
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          out.push(chunk);
          cb();
        },
      }),
    ]);
  } catch (error) {
    return { error, output: Buffer.concat(out) };
  }
  return { error: null, output: Buffer.concat(out) };
}
