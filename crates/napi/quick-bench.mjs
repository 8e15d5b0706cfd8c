// Quick throughput check of the native binding against Node built-ins in the same run (not the
// official benchmark, which is `npm run bench`). Usage: node crates/napi/quick-bench.mjs FILE
// (JSON-lines records; ~64 MiB) [name regex]; REPS=3 best-of runs. nodeCpu/nativeCpu: MB per
// CPU-second of the whole process (all threads): meaningful even on a busy machine. Native calls get 1 MiB batches, one call in flight, as the TS
// wrapper does. MB/s are of uncompressed input.
import { readFileSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { NativeDecoder, NativeEncoder } from '../../native/index.cjs';

const data = readFileSync(process.argv[2]);
const MB = data.length / 1e6;
const KEY = crypto.randomBytes(32);
const chunks = (buf, size) => { const out = []; for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size)); return out; };

async function native(Codec, opts, input) {
  const c = new Codec(opts); const parts = [];
  for (const ch of chunks(input, 1 << 20)) parts.push(...(await c.write(ch)));
  parts.push(...(await c.finish()));
  return Buffer.concat(parts);
}
async function nodeStream(transforms, input) {
  const parts = [];
  await pipeline(Readable.from(chunks(input, 64 * 1024)), ...transforms, new Writable({ write(c, _e, cb) { parts.push(c); cb(); } }));
  return Buffer.concat(parts);
}
function gcmTransform(key) { // Node baseline: one createCipheriv per 1 MiB segment, 64 KiB updates
  const { Transform } = require_stream();
  let buf = [], len = 0, i = 0;
  const seal = (t, b) => { const iv = Buffer.alloc(12); iv.writeUInt32BE(i++, 7); const c = crypto.createCipheriv('aes-256-gcm', key, iv); t.push(c.update(b)); c.final(); t.push(c.getAuthTag()); };
  return new Transform({ transform(c, _e, cb) { buf.push(c); len += c.length; if (len >= 1 << 20) { seal(this, Buffer.concat(buf)); buf = []; len = 0; } cb(); }, flush(cb) { seal(this, Buffer.concat(buf)); cb(); } });
}
import * as streamMod from 'node:stream';
function require_stream() { return streamMod; }

let lastCpu = 0; // MB per CPU-second (all threads of this process) of the last timed call
async function time(fn) {
  const c0 = process.cpuUsage(); const t = performance.now(); const r = await fn();
  const c = process.cpuUsage(c0); lastCpu = MB / ((c.user + c.system) / 1e6);
  return [MB / ((performance.now() - t) / 1000), r];
}
const rows = [];
const only = process.argv[3] ? new RegExp(process.argv[3]) : null;
const REPS = Number(process.env.REPS ?? 3);
async function cmp(name, nodeFn, nativeFn) { // best of REPS, alternating, against machine noise
  if (only && !only.test(name)) return;
  let n = 0, r = 0, nout, rout, nc = 0, rc = 0;
  for (let i = 0; i < REPS; i++) {
    const [a, ao] = await time(nodeFn); nc = Math.max(nc, lastCpu);
    const [b, bo] = await time(nativeFn); rc = Math.max(rc, lastCpu);
    n = Math.max(n, a); r = Math.max(r, b); nout = ao; rout = bo;
  }
  rows.push({ name, node: n.toFixed(1), native: r.toFixed(1), speedup: (r / n).toFixed(2), nodeCpu: nc.toFixed(1), nativeCpu: rc.toFixed(1), nodeRatio: (data.length / nout.length).toFixed(4), nativeRatio: (data.length / rout.length).toFixed(4) });
}
const gz = zlib.gzipSync(data, { level: 6 });
const natGzEnc = await native(NativeEncoder, { compression: 'gzip', key: KEY }, data);
await cmp('gzip-6 compress', () => nodeStream([zlib.createGzip({ level: 6 })], data), () => native(NativeEncoder, { compression: 'gzip', level: 6 }, data));
await cmp('gzip-6 + AES-GCM', () => nodeStream([zlib.createGzip({ level: 6 }), gcmTransform(KEY)], data), () => native(NativeEncoder, { compression: 'gzip', level: 6, key: KEY }, data));
await cmp('gunzip', () => nodeStream([zlib.createGunzip()], gz), () => native(NativeDecoder, { compression: 'gzip' }, gz));
await cmp('decrypt + gunzip (native) / gunzip (node)', () => nodeStream([zlib.createGunzip()], gz), () => native(NativeDecoder, { compression: 'gzip', key: KEY }, natGzEnc));
await cmp('AES-256-GCM only', () => nodeStream([gcmTransform(KEY)], data), () => native(NativeEncoder, { compression: 'none', key: KEY }, data));
await cmp('brotli-4', () => nodeStream([zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } })], data), () => native(NativeEncoder, { compression: 'brotli', level: 4 }, data));
await cmp('brotli-4 (node sync, size known)', async () => zlib.brotliCompressSync(data, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length } }), () => native(NativeEncoder, { compression: 'brotli', level: 4 }, data));
await cmp('zstd-3 (vs node gzip-6 stream)', () => nodeStream([zlib.createGzip({ level: 6 })], data), () => native(NativeEncoder, { compression: 'zstd' }, data));
console.table(rows);
