/**
 * Gzip as self-sized members (docs/FORMAT.md 2.1): both readers refuse a plain gzip stream cut
 * between members (the last-member flag is missing), both read member streams mixed with gzip
 * from other writers, both read a stream whose member length field is wrong but whose data is
 * intact (the length is a hint, the data the truth: as Node's gunzip reads it), and damage inside
 * a member is ERR_DECOMPRESS for both.
 */
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { createDecoder, createEncoder } from '../src/codec/index.js';
import { concat, jsonLines, MiB, runToBuffer } from './helpers/corpus.js';
import { IMPLS } from './helpers/codec-impls.js';

const INPUT = concat(jsonLines(5 * MiB + 4321)); // three members of 2 MiB of input

/** Start offsets of the members after the first, from their `S3` length fields. */
function boundaries(gz: Buffer): number[] {
  const starts: number[] = [];
  for (let at = 0; at < gz.length; at += gz.readUInt32LE(at + 16)) {
    expect(gz.subarray(at, at + 4).equals(Buffer.from([0x1f, 0x8b, 8, 4]))).toBe(true);
    expect(gz.subarray(at + 12, at + 14).toString()).toBe('S3');
    if (at > 0) starts.push(at);
  }
  return starts;
}

async function decode(impl: (typeof IMPLS)[number], stored: Buffer): Promise<Buffer> {
  return runToBuffer([stored], createDecoder({ compression: 'gzip', implementation: impl }));
}

describe('gzip members', async () => {
  const stored = await runToBuffer([INPUT], createEncoder({ compression: 'gzip', implementation: 'native' }));
  const cuts = boundaries(stored);

  it('the native writer makes one member per 2 MiB of input, each a gzip file of its own', () => {
    expect(cuts.length).toBe(2);
    const starts = [0, ...cuts, stored.length];
    for (let i = 0; i + 1 < starts.length; i++) {
      const member = zlib.gunzipSync(stored.subarray(starts[i], starts[i + 1]));
      expect(member.equals(INPUT.subarray(i * 2 * MiB, Math.min(INPUT.length, (i + 1) * 2 * MiB)))).toBe(true);
    }
    // The flag byte: only the last member is marked last.
    expect(starts.slice(0, -1).map((at) => stored[at + 20])).toEqual([0, 0, 1]);
  });

  for (const impl of IMPLS) {
    it(`${impl}: a stream cut between members is refused as truncated (Node's gunzip would return less)`, async () => {
      for (const cut of cuts) {
        const prefix = stored.subarray(0, cut);
        expect(zlib.gunzipSync(prefix).length).toBeLessThan(INPUT.length); // what a plain gunzip makes of it
        await expect(decode(impl, prefix)).rejects.toMatchObject({ code: 'ERR_DECOMPRESS', message: expect.stringContaining('truncated') });
      }
    });

    it(`${impl}: member streams concatenated with gzip from Node read whole, in order`, async () => {
      const node = zlib.gzipSync(INPUT.subarray(0, 100_000));
      const mixed = Buffer.concat([stored, node, stored]);
      const back = await decode(impl, mixed);
      expect(back.equals(Buffer.concat([INPUT, INPUT.subarray(0, 100_000), INPUT]))).toBe(true);
    });

    it(`${impl}: a wrong member length is not trusted: the data reads whole, as Node's gunzip reads it`, async () => {
      const cases: Array<[number, number]> = [[0, -1], [cuts[0], 1], [cuts[0], 1000], [cuts[1], -1000], [0, cuts[1] - cuts[0]]];
      for (const [at, delta] of cases) {
        const bad = Buffer.from(stored);
        bad.writeUInt32LE(bad.readUInt32LE(at + 16) + delta, at + 16);
        expect(zlib.gunzipSync(bad).equals(INPUT)).toBe(true);
        const back = await decode(impl, bad);
        expect({ at, delta, length: back.length, same: back.equals(INPUT) }).toEqual({ at, delta, length: INPUT.length, same: true });
      }
    });

    it(`${impl}: a flipped bit inside a member is ERR_DECOMPRESS`, async () => {
      const bad = Buffer.from(stored);
      bad[cuts[0] + 5000] ^= 0x04;
      await expect(decode(impl, bad)).rejects.toMatchObject({ code: 'ERR_DECOMPRESS' });
    });
  }
});
