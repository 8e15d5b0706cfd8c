/**
 * `npm run bench`: native core vs Node's built-ins (zlib, crypto), measured in the same run on the
 * same deterministic JSON-lines corpus (benches/corpus.js). MB/s are MB (10^6 bytes) of
 * UNCOMPRESSED data per second; ratio = uncompressed / stored bytes; speedup = native / node.
 * Node baselines are what an app would write: createGzip & co. streaming 64 KiB chunks,
 * createCipheriv('aes-256-gcm') in chunks. Each case runs at least `reps` times and at least
 * --min-seconds per implementation (fast cases repeat more; at most 25 runs), alternating
 * implementations; the best run counts (the machine is shared and noisy).
 * The two "file to file" cases are whole pipelines as a backup runs them (read a file, encode,
 * write a file; and back), the way docs/BENCHMARKS.md's Node baselines were first measured.
 *
 *   node benches/benchmark.js [--size MiB (default 128)] [--quick] [--json] [--reps N] [--min-seconds S] [--only TEXT]
 *
 * --json prints only one JSON document on stdout:
 *   {"node": "...", "cpus": N, "cases": [{"name", "impl": "native"|"node", "mbps", "ratio"}]}
 * The codec is loaded from src/ through tsx (no build step needed).
 */
import { createCipheriv, createDecipheriv, pbkdf2, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { tsImport } from 'tsx/esm/api';
import { generateCorpus } from './corpus.js';

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;

function parseArgs(argv) {
  const o = { size: 128, quick: false, json: false, reps: 3, minSeconds: 2, only: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') o.json = true;
    else if (a === '--quick') o.quick = true;
    else if (a === '--size') o.size = Number(argv[++i]);
    else if (a === '--reps') o.reps = Number(argv[++i]);
    else if (a === '--only') o.only = argv[++i];
    else if (a === '--min-seconds') o.minSeconds = Number(argv[++i]);
    else if (a === '--help' || a === '-h') {
      console.log('usage: node benches/benchmark.js [--size MiB] [--quick] [--json] [--reps N] [--min-seconds S] [--only TEXT (cases whose name contains TEXT)]');
      process.exit(0);
    } else {
      console.error(`unknown argument ${a}`);
      process.exit(2);
    }
  }
  if (o.quick) {
    if (!argv.includes('--size')) o.size = 16;
    if (!argv.includes('--reps')) o.reps = 1;
    if (!argv.includes('--min-seconds')) o.minSeconds = 0;
  }
  if (!Number.isFinite(o.size) || o.size <= 0) throw new Error('--size must be a positive number of MiB');
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const log = opts.json ? () => {} : (...a) => console.error(...a);

const codec = await tsImport('../src/codec/index.ts', import.meta.url);
const nativeOk = codec.nativeAvailable();
if (!nativeOk) console.error('warning: the native core did not load (npm run build:native); measuring Node only');

/** 64 KiB views of a list of buffers. */
function chunked(buffers) {
  const out = [];
  for (const b of buffers) for (let i = 0; i < b.length; i += CHUNK) out.push(b.subarray(i, i + CHUNK));
  return out;
}

/** Streams `input` (array of chunks) through the stages; returns output bytes (and optionally the output). */
async function run(input, stages, keep = false) {
  let bytes = 0;
  const kept = [];
  await pipeline([
    Readable.from(input, { objectMode: false, highWaterMark: CHUNK }),
    ...stages,
    new Writable({
      highWaterMark: CHUNK,
      write(chunk, _e, cb) {
        bytes += chunk.length;
        if (keep) kept.push(chunk);
        cb();
      },
    }),
  ]);
  return { bytes, output: keep ? Buffer.concat(kept) : null };
}

/**
 * File to file: streams the file `input` through the stages into a new scratch file (the caller
 * removed the previous run's, untimed); returns bytes written.
 */
async function runFiles(input, stages) {
  const out = createWriteStream(join(scratch, 'out'), { flags: 'wx' });
  await pipeline([createReadStream(input), ...stages, out]);
  return { bytes: out.bytesWritten, output: null };
}

const scratch = mkdtempSync(join(tmpdir(), 's3db-backup-bench-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

log(`generating ${opts.size} MiB of JSON-lines records ...`);
const plainBuffers = generateCorpus(opts.size * MiB);
const plain = chunked(plainBuffers);
const plainBytes = opts.size * MiB;
const key = randomBytes(32);
const keyHandle = codec.keyFromBytes(key);
const iv = randomBytes(12);
const brotli = (q) => ({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: q, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: 0 } });

log('preparing inputs of the decode cases ...');
// Node's own gzip-6 stream (input of both gunzip cases) and its encrypted form (node decrypt case).
const nodeGzip = (await run(plain, [zlib.createGzip({ level: 6 })], true)).output;
const nodeSealed = (() => {
  const c = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([c.update(nodeGzip), c.final()]);
  return { ct, tag: c.getAuthTag() };
})();
const nativeSealed = nativeOk
  ? (await run(plain, [codec.createEncoder({ compression: 'gzip', level: 6, key: keyHandle, implementation: 'native' })], true)).output
  : null;

// Files of the file-to-file pipelines: the corpus, and each implementation's encrypted gzip-6 stream.
const files = { plain: join(scratch, 'plain'), nodeSealed: join(scratch, 'node.sealed'), nativeSealed: join(scratch, 'native.sealed') };
writeFileSync(files.plain, Buffer.concat(plainBuffers));
writeFileSync(files.nodeSealed, nodeSealed.ct);
if (nativeSealed) writeFileSync(files.nativeSealed, nativeSealed);

const native = (o) => codec.createEncoder({ ...o, implementation: 'native' });
const nativeDec = (o) => codec.createDecoder({ ...o, implementation: 'native' });

/**
 * Cases: name, and per impl a function returning { input, stages } for one run. `plainSide` says
 * whether the uncompressed bytes are the input (encode) or the output (decode).
 */
const CASES = [
  { name: 'gzip-1 compress', node: () => [plain, [zlib.createGzip({ level: 1 })]], native: () => [plain, [native({ compression: 'gzip', level: 1 })]] },
  { name: 'gzip-6 compress', node: () => [plain, [zlib.createGzip({ level: 6 })]], native: () => [plain, [native({ compression: 'gzip', level: 6 })]] },
  { name: 'gzip-9 compress', node: () => [plain, [zlib.createGzip({ level: 9 })]], native: () => [plain, [native({ compression: 'gzip', level: 9 })]] },
  { name: 'deflate-6 compress', node: () => [plain, [zlib.createDeflate({ level: 6 })]], native: () => [plain, [native({ compression: 'deflate', level: 6 })]] },
  { name: 'brotli-1 compress', node: () => [plain, [zlib.createBrotliCompress(brotli(1))]], native: () => [plain, [native({ compression: 'brotli', level: 1 })]] },
  { name: 'brotli-4 compress', node: () => [plain, [zlib.createBrotliCompress(brotli(4))]], native: () => [plain, [native({ compression: 'brotli', level: 4 })]] },
  { name: 'zstd-3 compress', native: () => [plain, [native({ compression: 'zstd', level: 3 })]] },
  { name: 'aes-256-gcm encrypt', node: () => [plain, [createCipheriv('aes-256-gcm', key, iv)]], native: () => [plain, [native({ compression: 'none', key: keyHandle })]] },
  {
    name: 'gzip-6 + aes-256-gcm (backup)',
    node: () => [plain, [zlib.createGzip({ level: 6 }), createCipheriv('aes-256-gcm', key, iv)]],
    native: () => [plain, [native({ compression: 'gzip', level: 6, key: keyHandle })]],
  },
  {
    name: 'decrypt + gunzip (restore)',
    decode: true,
    node: () => {
      const d = createDecipheriv('aes-256-gcm', key, iv);
      d.setAuthTag(nodeSealed.tag);
      return [chunked([nodeSealed.ct]), [d, zlib.createGunzip()]];
    },
    native: () => [chunked([nativeSealed]), [nativeDec({ compression: 'gzip', key: keyHandle })]],
    stored: { node: () => nodeSealed.ct.length + 16, native: () => nativeSealed.length },
  },
  {
    name: 'backup pipeline, file to file (gzip-6 + aes-256-gcm)',
    node: () => [files.plain, [zlib.createGzip({ level: 6 }), createCipheriv('aes-256-gcm', key, iv)]],
    native: () => [files.plain, [native({ compression: 'gzip', level: 6, key: keyHandle })]],
  },
  {
    name: 'restore pipeline, file to file (decrypt + gunzip)',
    decode: true,
    node: () => {
      const d = createDecipheriv('aes-256-gcm', key, iv);
      d.setAuthTag(nodeSealed.tag);
      return [files.nodeSealed, [d, zlib.createGunzip()]];
    },
    native: () => [files.nativeSealed, [nativeDec({ compression: 'gzip', key: keyHandle })]],
    stored: { node: () => nodeSealed.ct.length + 16, native: () => nativeSealed.length },
  },
  {
    name: 'gunzip',
    decode: true,
    node: () => [chunked([nodeGzip]), [zlib.createGunzip()]],
    native: () => [chunked([nodeGzip]), [nativeDec({ compression: 'gzip' })]],
    stored: { node: () => nodeGzip.length, native: () => nodeGzip.length },
  },
];

/** Targets of issue 2 (speedup native / node on 2 cores). */
const TARGETS = {
  'gzip-6 + aes-256-gcm (backup)': 4,
  'decrypt + gunzip (restore)': 5,
  'backup pipeline, file to file (gzip-6 + aes-256-gcm)': 4,
  'restore pipeline, file to file (decrypt + gunzip)': 5,
  'gzip-6 compress': 3,
  gunzip: 2.5,
  'aes-256-gcm encrypt': 2.5,
  'brotli-4 compress': 1.8,
};

/** Upper bound of runs per case and implementation, whatever --min-seconds asks. */
const MAX_RUNS = 25;

async function timeOne(make, decode) {
  const [input, stages] = make();
  // A file case writes a new file each run. Rewriting the previous run's file would time ext4's
  // replace-via-truncate flush (auto_da_alloc: closing a truncated-and-rewritten file starts its
  // writeback, and the next truncation waits for it), a cost of this loop, not of the pipeline.
  if (typeof input === 'string') rmSync(join(scratch, 'out'), { force: true });
  const t0 = process.hrtime.bigint();
  const { bytes } = typeof input === 'string' ? await runFiles(input, stages) : await run(input, stages);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (decode && bytes !== plainBytes) throw new Error(`decode produced ${bytes} bytes, expected ${plainBytes}`);
  return { seconds, stored: decode ? null : bytes };
}

const results = [];
for (const c of CASES) {
  if (opts.only && !c.name.includes(opts.only)) continue;
  const impls = ['node', 'native'].filter((i) => c[i] && (i === 'node' || nativeOk));
  if (impls.length === 0) {
    log(`${c.name}: skipped (native core not loaded)`);
    continue;
  }
  const best = {};
  const spent = Object.fromEntries(impls.map((i) => [i, 0]));
  const enough = (rep) => rep >= opts.reps && impls.every((i) => spent[i] >= opts.minSeconds);
  for (let rep = 0; !enough(rep) && rep < MAX_RUNS; rep++) {
    for (const impl of rep % 2 === 0 ? impls : [...impls].reverse()) {
      const r = await timeOne(c[impl], c.decode);
      spent[impl] += r.seconds;
      if (!best[impl] || r.seconds < best[impl].seconds) best[impl] = r;
    }
  }
  for (const impl of impls) {
    const stored = c.decode ? c.stored[impl]() : best[impl].stored;
    const mbps = plainBytes / 1e6 / best[impl].seconds;
    results.push({ name: c.name, impl, mbps: Math.round(mbps * 10) / 10, ratio: Math.round((plainBytes / stored) * 1000) / 1000 });
  }
  const line = impls.map((i) => `${i} ${results.find((r) => r.name === c.name && r.impl === i).mbps} MB/s`).join(', ');
  log(`${c.name}: ${line}`);
}

// PBKDF2-HMAC-SHA256, 600 000 iterations: "mbps" holds derivations per second for this case.
if (!opts.only || 'pbkdf2-sha256 600k'.includes(opts.only)) {
  const nativeCore = nativeOk ? (await tsImport('../src/codec/native-binding.ts', import.meta.url)).nativeBinding() : null;
  const salt = randomBytes(32);
  const pass = Buffer.from('correct horse battery staple');
  const derive = {
    node: () => new Promise((res, rej) => pbkdf2(pass, salt, 600_000, 32, 'sha256', (e, k) => (e ? rej(e) : res(k)))),
    native: nativeCore ? () => nativeCore.pbkdf2Sha256(pass, salt, 600_000, 32) : null,
  };
  for (const impl of ['node', 'native']) {
    if (!derive[impl]) continue;
    let best = Infinity;
    for (let rep = 0; rep < Math.max(3, opts.reps); rep++) {
      const t0 = process.hrtime.bigint();
      await derive[impl]();
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    results.push({ name: 'pbkdf2-sha256 600k', impl, mbps: Math.round((1 / best) * 100) / 100, ratio: null, unit: 'derivations/s' });
  }
}

const doc = {
  node: process.version,
  cpus: availableParallelism(),
  cpu: cpus()[0]?.model ?? 'unknown',
  sizeMiB: opts.size,
  native: nativeOk ? codec.nativeVersion() : null,
  cases: results,
};

if (opts.json) {
  process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
} else {
  const names = [...new Set(results.map((r) => r.name))];
  const rows = [['case', 'node MB/s', 'native MB/s', 'speedup', 'target', 'node ratio', 'native ratio']];
  for (const name of names) {
    const n = results.find((r) => r.name === name && r.impl === 'node');
    const v = results.find((r) => r.name === name && r.impl === 'native');
    const speedup = n && v ? v.mbps / n.mbps : null;
    const target = TARGETS[name];
    rows.push([
      name + (n?.unit ? ` (${n.unit})` : ''),
      n ? String(n.mbps) : '-',
      v ? String(v.mbps) : '-',
      speedup === null ? '-' : `${speedup.toFixed(2)}x`,
      target === undefined ? '' : `>= ${target}x ${speedup === null ? '?' : speedup >= target ? 'ok' : 'MISSED'}`,
      n?.ratio == null ? '-' : n.ratio.toFixed(3),
      v?.ratio == null ? '-' : v.ratio.toFixed(3),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const fmt = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(`\nNode ${doc.node}, ${doc.cpus} CPUs (${doc.cpu}), ${opts.size} MiB corpus, best of >= ${opts.reps} runs and >= ${opts.minSeconds} s per case; native ${doc.native ?? 'NOT LOADED (npm run build:native)'}`);
  console.log(fmt(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) console.log(fmt(r));
  console.log('MB/s = 10^6 bytes of uncompressed data per second; ratio = uncompressed / stored.');
}
