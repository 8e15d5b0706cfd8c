/**
 * FORMAT.md 2.7 test vectors (__test__/fixtures/vectors/, written from the Rust core and
 * cross-checked against node:crypto there): both implementations must write the exact streams for
 * the fixed key/salt/nonce prefix, decode them, fail every tampered variant with the vector's code
 * and exact message, and unlock the vector key file to its master key. archive-index-sealed.json
 * pins sections 3, 4 and 1.1's `sealed` (the engine's writers must produce it, its readers read it).
 */
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BackupError } from '../src/errors.js';
import { createDecoder, createEncoder, keyFromBytes, unlockKeyFile, type Compression, type KeyFile } from '../src/codec/index.js';
import { decodeFailure, runToBuffer } from './helpers/corpus.js';
import { IMPLS } from './helpers/codec-impls.js';
import { ArchiveWriter, readArchive, type ArchiveHeader } from '../src/engine/archive.js';
import { IndexLineWriter } from '../src/engine/stored.js';
import type { IndexEntry } from '../src/engine/manifest.js';
import { unseal } from '../src/engine/sealed.js';

const dir = new URL('./fixtures/vectors/', import.meta.url);
const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, dir), 'utf8')) as T;

interface StreamVectors {
  compression: Compression;
  masterKey: string;
  keyCheck: string;
  salt: string;
  noncePrefix: string;
  segmentSize: number;
  cases: Array<{ name: string; plaintext: string; plaintextLength: number; stream: string }>;
}
interface ErrorVectors {
  cases: Array<{ name: string; code: string; message: string; key: string; expectedCompression: Compression; stream: string }>;
}
interface KeyFileVector {
  keyFile: KeyFile;
  passphrase: string;
  masterKey: string;
}

interface LayoutVectors {
  archive: { records: Array<{ header: ArchiveHeader; body: string }>; bytes: string };
  index: { entries: IndexEntry[]; text: string };
  sealed: { fields: unknown; sealed: string };
}

const streams = load<StreamVectors>('stream-none-1024.json');
const layout = load<LayoutVectors>('archive-index-sealed.json');
const errors = load<ErrorVectors>('stream-errors.json');
const keyFileVector = load<KeyFileVector>('keyfile.json');
const hex = (s: string) => Buffer.from(s, 'hex');

describe('FORMAT.md test vectors', () => {
  it('the vector files hold the expected cases', () => {
    expect(streams.cases.length).toBeGreaterThanOrEqual(5);
    expect(errors.cases.length).toBeGreaterThanOrEqual(15);
    expect(keyFromBytes(hex(streams.masterKey)).keyCheck).toBe(streams.keyCheck);
    // plaintextRule: byte i = (i * 31 + 7) mod 256
    for (const c of streams.cases) {
      const p = hex(c.plaintext);
      expect(p.length).toBe(c.plaintextLength);
      p.forEach((b, i) => expect(b).toBe((i * 31 + 7) % 256));
    }
  });

  for (const impl of IMPLS) {
    it(`${impl}: writes every stream vector byte for byte and decodes it`, async () => {
      const key = keyFromBytes(hex(streams.masterKey));
      for (const c of streams.cases) {
        const encoder = createEncoder({
          compression: streams.compression,
          key,
          segmentSize: streams.segmentSize,
          implementation: impl,
          testSalt: hex(streams.salt),
          testNoncePrefix: hex(streams.noncePrefix),
        });
        const stored = await runToBuffer([hex(c.plaintext)], encoder);
        expect(stored.toString('hex'), c.name).toBe(c.stream);
        const back = await runToBuffer([hex(c.stream)], createDecoder({ compression: streams.compression, key, implementation: impl }));
        expect(back.toString('hex'), c.name).toBe(c.plaintext);
      }
    });

    it(`${impl}: fails every error vector with its code and exact message`, async () => {
      for (const c of errors.cases) {
        for (const chunk of [Number.MAX_SAFE_INTEGER, 13]) {
          const decoder = createDecoder({ compression: c.expectedCompression, key: hex(c.key), implementation: impl });
          const { error } = await decodeFailure(hex(c.stream), decoder, chunk);
          expect(error, c.name).toBeInstanceOf(BackupError);
          expect((error as BackupError).code, c.name).toBe(c.code);
          expect((error as BackupError).message, c.name).toBe(c.message);
        }
      }
    });
  }

  it('unlocks the key-file vector to its master key', async () => {
    const key = await unlockKeyFile(keyFileVector.keyFile, keyFileVector.passphrase);
    expect(key.keyCheck).toBe(keyFromBytes(hex(keyFileVector.masterKey)).keyCheck);
    expect(key.keyCheck).toBe(keyFileVector.keyFile.keyCheck);
    await expect(unlockKeyFile(keyFileVector.keyFile, 'wrong')).rejects.toMatchObject({ code: 'ERR_WRONG_PASSPHRASE' });
  });

  it('archive, index and sealed vectors: written byte for byte, read back as given', async () => {
    const records = layout.archive.records.map((r) => ({ header: r.header, body: hex(r.body) }));
    const collect = async (items: unknown[], t: NodeJS.ReadWriteStream) => {
      const chunks: Buffer[] = [];
      for await (const c of Readable.from(items, { objectMode: true }).pipe(t as never) as unknown as AsyncIterable<Buffer | string>) chunks.push(Buffer.from(c));
      return Buffer.concat(chunks);
    };
    expect((await collect(records, new ArchiveWriter())).toString('hex')).toBe(layout.archive.bytes);
    const read = [];
    for await (const r of readArchive(Readable.from([hex(layout.archive.bytes)]), 'vector')) read.push({ header: r.header, body: r.body.toString('hex') });
    expect(read).toEqual(layout.archive.records);
    expect(read.map((r) => Object.keys(r.header).sort().join())).toContain('deleted,key,size'); // a tombstone is just that
    expect((await collect(layout.index.entries, new IndexLineWriter())).toString('utf8')).toBe(layout.index.text);
    expect(await unseal(layout.sealed.sealed, keyFromBytes(hex(streams.masterKey)))).toEqual(layout.sealed.fields);
  });
});
