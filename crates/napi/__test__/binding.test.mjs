// Tests of the N-API shell itself (part of `npm test`; alone: `node --test crates/napi/__test__/` after
// `npm run build:native`): the exported API, error codes on `err.code` via map_error, the
// concurrent-call guard, close(), and the FORMAT.md 2.7 vectors through the binding.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import test from 'node:test';
import zlib from 'node:zlib';

import {
  NativeDecoder,
  NativeEncoder,
  keyCheck,
  nativeVersion,
  pbkdf2Sha256,
  unwrapMasterKey,
  wrapMasterKey,
} from '../../../native/index.cjs';

const vectors = new URL('../../../__test__/fixtures/vectors/', import.meta.url);
const load = (name) => JSON.parse(readFileSync(new URL(name, vectors), 'utf8'));
const hex = (s) => Buffer.from(s, 'hex');
const KEY = Buffer.alloc(32, 0x42);

/** Every call resolves to its output as pieces in order: Buffers, none empty. */
async function run(codec, chunks) {
  const parts = [];
  const take = (pieces) => {
    assert.ok(Array.isArray(pieces));
    for (const p of pieces) {
      assert.ok(Buffer.isBuffer(p) && p.length > 0, 'a piece is a non-empty Buffer');
      parts.push(p);
    }
  };
  for (const c of chunks) take(await codec.write(c));
  take(await codec.finish());
  return Buffer.concat(parts);
}

function records(n) {
  let s = '';
  for (let i = 0; s.length < n; i++) s += JSON.stringify({ id: `usr_${i}`, name: `name ${i % 97}`, n: i * 7919 }) + '\n';
  return Buffer.from(s.slice(0, n));
}

test('nativeVersion is the crate version', () => {
  assert.match(nativeVersion(), /^\d+\.\d+\.\d+/);
});

test('round trip every codec, plain and encrypted', async () => {
  const data = records(3 * 1024 * 1024 + 7);
  for (const compression of ['gzip', 'deflate', 'brotli', 'zstd', 'none']) {
    for (const key of [undefined, KEY]) {
      const enc = await run(new NativeEncoder({ compression, key }), [data.subarray(0, 1 << 20), data.subarray(1 << 20)]);
      const dec = await run(new NativeDecoder({ compression, key }), [enc.subarray(0, 1000), enc.subarray(1000)]);
      assert.ok(dec.equals(data), `${compression} ${key ? 'encrypted' : 'plain'}`);
    }
  }
});

test('a gzip decoder hands over each member output as its own piece, unjoined', async () => {
  const data = records(5 * 1024 * 1024); // members of 2 MiB of input: 2 MiB, 2 MiB, 1 MiB
  for (const key of [undefined, KEY]) {
    const enc = await run(new NativeEncoder({ compression: 'gzip', key }), [data]);
    const d = new NativeDecoder({ compression: 'gzip', key });
    const pieces = [...(await d.write(enc)), ...(await d.finish())];
    assert.deepEqual(pieces.map((p) => p.length), [2 << 20, 2 << 20, 1 << 20], key ? 'encrypted' : 'plain');
    assert.ok(Buffer.concat(pieces).equals(data));
  }
});

test('a decoder with outputLimit stops each call near it; more() says when to call again with no input', async () => {
  const zeros = Buffer.alloc(48 << 20); // brotli: ~1 KB of stream, one call would inflate all 48 MiB
  const limit = 1 << 20;
  for (const key of [undefined, KEY]) {
    const enc = await run(new NativeEncoder({ compression: 'brotli', key }), [zeros]);
    const e = new NativeEncoder({ compression: 'gzip' });
    await e.write(zeros);
    assert.equal(e.more(), false, 'an encoder never has more');
    const d = new NativeDecoder({ compression: 'brotli', key, outputLimit: limit });
    let bytes = 0;
    let largest = 0;
    let again = 0;
    const take = (pieces) => {
      const n = pieces.reduce((sum, p) => sum + p.length, 0);
      assert.ok(pieces.every((p) => p.every((b) => b === 0)));
      bytes += n;
      largest = Math.max(largest, n);
    };
    take(await d.write(enc));
    while (d.more()) {
      again++;
      take(await d.write(Buffer.alloc(0)));
    }
    take(await d.finish());
    while (d.more()) {
      again++;
      take(await d.finish());
    }
    assert.equal(bytes, zeros.length, key ? 'encrypted' : 'plain');
    assert.ok(largest <= limit + 65536, `one call gave ${largest} bytes`);
    assert.ok(again >= 40, `${again} calls because of more()`);
    // Without the limit, one call inflates it all: the stream above is a real bomb.
    const free = new NativeDecoder({ compression: 'brotli', key });
    const all = [...(await free.write(enc)), ...(await free.finish())];
    assert.ok(Math.max(...all.map((p) => p.length)) > 24 << 20);
    assert.equal(free.more(), false);
  }
  // A limit that is not a whole number of bytes from 1 to 2^32 - 1 is refused, never wrapped
  // (2^32 + 4096 would have become 4096; -1, 4 GiB; 1.5, 1).
  for (const outputLimit of [0, -1, 2 ** 32 + 4096, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => new NativeDecoder({ compression: 'gzip', outputLimit }), (err) => err.code === 'ERR_INVALID_OPTION' && /outputLimit/.test(err.message));
  }
});

test('an encrypting encoder hands over the header and each sealed segment as pieces, unjoined', async () => {
  const data = records(3 * 1024 * 1024 + 7);
  const e = new NativeEncoder({ compression: 'none', key: KEY });
  const pieces = [...(await e.write(data)), ...(await e.finish())];
  // FORMAT.md 2.2: an 87-byte header, then segments of 4 bytes of frame + plaintext + 16 of tag.
  assert.deepEqual(pieces.map((p) => p.length), [87, (1 << 20) + 20, (1 << 20) + 20, (1 << 20) + 20, 7 + 20]);
  assert.ok((await run(new NativeDecoder({ compression: 'none', key: KEY }), [Buffer.concat(pieces)])).equals(data));
});

test('plain output is read by node:zlib', async () => {
  const data = records(2_500_000);
  assert.ok(zlib.gunzipSync(await run(new NativeEncoder({ compression: 'gzip', level: 6 }), [data])).equals(data));
  assert.ok(zlib.inflateSync(await run(new NativeEncoder({ compression: 'deflate' }), [data])).equals(data));
  assert.ok(zlib.brotliDecompressSync(await run(new NativeEncoder({ compression: 'brotli' }), [data])).equals(data));
});

test('the stream vectors come out byte for byte and decode', async () => {
  const v = load('stream-none-1024.json');
  for (const c of v.cases) {
    const opts = { compression: 'none', key: hex(v.masterKey), segmentSize: 1024, testSalt: hex(v.salt), testNoncePrefix: hex(v.noncePrefix) };
    const s = await run(new NativeEncoder(opts), [hex(c.plaintext)]);
    assert.equal(s.toString('hex'), c.stream, c.name);
    const p = await run(new NativeDecoder({ compression: 'none', key: hex(v.masterKey) }), [hex(c.stream)]);
    assert.equal(p.toString('hex'), c.plaintext, c.name);
  }
});

test('every error vector rejects with its code on err.code and the core message', async () => {
  const v = load('stream-errors.json');
  for (const c of v.cases) {
    const d = new NativeDecoder({ compression: c.expectedCompression, key: hex(c.key) });
    await assert.rejects(run(d, [hex(c.stream)]), (err) => {
      assert.ok(err instanceof Error);
      assert.equal(err.code, c.code, c.name);
      assert.equal(err.message, c.message, c.name);
      return true;
    });
    // Sticky: the next call fails the same way.
    await assert.rejects(d.finish(), (err) => err.code === c.code);
  }
});

test('a flipped ciphertext bit is ERR_SEGMENT_AUTH', async () => {
  const s = await run(new NativeEncoder({ compression: 'gzip', key: KEY, segmentSize: 4096 }), [records(100_000)]);
  s[87 + 4 + 100] ^= 1;
  await assert.rejects(run(new NativeDecoder({ compression: 'gzip', key: KEY }), [s]), { code: 'ERR_SEGMENT_AUTH' });
});

test('options are validated with ERR_INVALID_OPTION naming the option', () => {
  assert.throws(() => new NativeEncoder({ compression: 'lz4' }), { code: 'ERR_INVALID_OPTION', message: /compression/ });
  assert.throws(() => new NativeEncoder({ compression: 'gzip', level: 12 }), { code: 'ERR_INVALID_OPTION', message: /level/ });
  assert.throws(() => new NativeEncoder({ compression: 'gzip', key: Buffer.alloc(16) }), { code: 'ERR_INVALID_OPTION', message: /key/ });
  assert.throws(() => new NativeEncoder({ compression: 'gzip', key: KEY, segmentSize: 10 }), { code: 'ERR_INVALID_OPTION', message: /segmentSize/ });
});

test('a second call while one is in flight throws ERR_CONCURRENT_CALL', async () => {
  const e = new NativeEncoder({ compression: 'gzip' });
  const first = e.write(records(4 << 20));
  assert.throws(() => e.write(Buffer.from('x')), { code: 'ERR_CONCURRENT_CALL' });
  await first;
  await e.write(Buffer.from('x'));
  await e.finish();
  await assert.rejects(e.finish(), { code: 'ERR_STREAM_FINISHED' });
});

test('close() frees a stream: later calls throw ERR_STREAM_CLOSED; a call in flight still settles; twice is fine', async () => {
  const e = new NativeEncoder({ compression: 'gzip', key: KEY, threads: 2 });
  const first = e.write(records(4 << 20));
  e.close(); // while the write runs: freed once it has ended
  const pieces = await first;
  assert.ok(Array.isArray(pieces));
  assert.throws(() => e.write(Buffer.from('x')), { code: 'ERR_STREAM_CLOSED', message: /write\(\) was called after close\(\)/ });
  assert.throws(() => e.finish(), { code: 'ERR_STREAM_CLOSED' });
  assert.equal(e.more(), false);
  e.close();
  const d = new NativeDecoder({ compression: 'gzip' });
  d.close();
  assert.throws(() => d.writeChunks([Buffer.from('x')]), { code: 'ERR_STREAM_CLOSED' });
});

test('key file primitives match the key-file vector', async () => {
  const v = load('keyfile.json');
  const kf = v.keyFile;
  const kek = await pbkdf2Sha256(Buffer.from(v.passphrase), Buffer.from(kf.kdf.salt, 'base64'), kf.kdf.iterations, 32);
  assert.equal(kek.toString('hex'), v.kek);
  const nonce = Buffer.from(kf.wrap.nonce, 'base64');
  assert.equal(wrapMasterKey(kek, nonce, hex(v.masterKey)).toString('base64'), kf.wrap.ciphertext);
  assert.equal(unwrapMasterKey(kek, nonce, Buffer.from(kf.wrap.ciphertext, 'base64')).toString('hex'), v.masterKey);
  assert.equal(keyCheck(hex(v.masterKey)).toString('hex'), kf.keyCheck);
  const wrongKek = await pbkdf2Sha256(Buffer.from('wrong'), Buffer.from(kf.kdf.salt, 'base64'), 1000, 32);
  assert.throws(() => unwrapMasterKey(wrongKek, nonce, Buffer.from(kf.wrap.ciphertext, 'base64')), { code: 'ERR_WRONG_PASSPHRASE' });
  await assert.rejects(pbkdf2Sha256(Buffer.from('x'), Buffer.from('y'), 0, 32), { code: 'ERR_INVALID_OPTION' });
});
