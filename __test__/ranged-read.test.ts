// Parallel ranged reads of stored parts (restore and verify use them): bytes come back whole and
// in order whatever the range size, memory stays at concurrency x range size, errors surface.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FilesystemDestination } from '../src/destinations/filesystem.js';
import type { Destination, ReadOptions } from '../src/destinations/types.js';
import { readRanged } from '../src/engine/stored.js';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('readRanged', () => {
  it('returns the exact bytes for objects smaller, equal and larger than a range, with ranges in flight in parallel', async () => {
    const d = new FilesystemDestination({ directory: await mkdtemp(path.join(tmpdir(), 'ranged-')) });
    const data = randomBytes(5 * 1024 * 1024 + 123);
    const { size, sha256 } = await d.write('p/part.000001', data);
    let inFlight = 0;
    let maxInFlight = 0;
    const ranges: string[] = [];
    // A destination that counts concurrent reads; the reads themselves are the real filesystem's.
    const counting: Destination = Object.assign(Object.create(d) as Destination, {
      async read(p: string, o?: ReadOptions) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        ranges.push(`${o?.start}-${o?.end}`);
        const s = await d.read(p, o);
        s.once('close', () => inFlight--);
        return s;
      },
    });
    for (const rangeSize of [1024 * 1024, 777_777, size, size * 2]) {
      ranges.length = 0;
      const got = await readAll(readRanged(counting, { path: 'p/part.000001', size, sha256 }, rangeSize, 3));
      expect(got.equals(data), `rangeSize ${rangeSize}`).toBe(true);
      expect(ranges.length).toBe(Math.ceil(size / rangeSize));
    }
    expect(maxInFlight).toBeGreaterThan(1);
    expect(maxInFlight).toBeLessThanOrEqual(3);
    expect(createHash('sha256').update(data).digest('hex')).toBe(sha256);
  });

  it('a missing object is an error on the stream naming the path', async () => {
    const d = new FilesystemDestination({ directory: await mkdtemp(path.join(tmpdir(), 'ranged-')) });
    await expect(readAll(readRanged(d, { path: 'nope.000001', size: 20 * 1024 * 1024, sha256: '' }))).rejects.toMatchObject({ code: 'ERR_DESTINATION_NOT_FOUND', message: expect.stringContaining('nope.000001') });
  });
});
