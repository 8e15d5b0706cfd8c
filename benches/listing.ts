/**
 * Listing benchmark (not a test): how fast a database on S3 is listed, one page after another (as
 * s3db.js's client lists, and as this plugin did up to 0.1.0) against in ranges (src/engine/
 * ranged-listing.ts), through a proxy that holds each request `--latency` ms: a distant S3's round
 * trip (AWS S3 answers a 1000-key ListObjectsV2 in tens of ms; the local RGW in a few, which would
 * hide the difference). Every backup lists the whole database, and an incremental of a database
 * that barely changed is mostly that listing, so this is its floor.
 *
 * Needs an S3 server: S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY (e.g. `scripts/rgw/start.sh`, then
 * `set -a; . <dir>/env; set +a`). It seeds `--keys` keys shaped as s3db.js writes them (two
 * resources with random ids, a partitioned one's references) into a new bucket, lists them both
 * ways (interleaved, `--runs` times each; the listings must agree key for key), prints keys/s and
 * the ratio, and deletes the bucket.
 *
 *   node --import tsx benches/listing.ts [--keys 20000] [--latency 30] [--runs 3] [--shape s3db|numbers|uuid] [--json]
 */
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { S3db, S3Client as S3dbClient } from 's3db.js/lite';
import { parseArgs } from 'node:util';
import { startFaultProxy } from '../__test__/helpers/fault-proxy.js';
import { listObjects, LIST_CONCURRENCY } from '../src/engine/s3db.js';
import { mulberry32 } from './corpus.js';

const { values } = parseArgs({ options: { keys: { type: 'string', default: '20000' }, latency: { type: 'string', default: '30' }, runs: { type: 'string', default: '3' }, shape: { type: 'string', default: 's3db' }, json: { type: 'boolean', default: false } } });
const KEYS = Number(values.keys);
const LATENCY = Number(values.latency);
const RUNS = Number(values.runs);
const SHAPE = values.shape;
if (!['s3db', 'numbers', 'uuid'].includes(SHAPE)) throw new Error(`--shape: s3db (s3db.js's random ids), numbers (sequential, zero-padded) or uuid, not ${SHAPE}`);
const endpoint = process.env.S3_ENDPOINT;
if (!endpoint) throw new Error('set S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY (scripts/rgw/start.sh writes them to <dir>/env)');
const credentials = { accessKeyId: process.env.S3_ACCESS_KEY ?? '', secretAccessKey: process.env.S3_SECRET_KEY ?? '' };
const awsAt = (url: string) => new S3Client({ endpoint: url, region: process.env.S3_REGION ?? 'us-east-1', forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED' });

const admin = awsAt(endpoint);
const bucket = `listing-bench-${process.pid}`;
const log = (line: string) => (values.json ? process.stderr : process.stdout).write(`${line}\n`);

function databaseKeys(): string[] {
  const random = mulberry32(5);
  const alphabet = '-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz';
  const draw = (chars: string, n: number) => Array.from({ length: n }, () => chars[Math.floor(random() * chars.length)]).join('');
  const hex = (n: number) => draw('0123456789abcdef', n);
  // ids as the application chose them: s3db.js's own (random, 64 characters), a counter, UUIDs
  let counter = 0;
  const id = SHAPE === 'numbers' ? () => String(counter++).padStart(10, '0') : SHAPE === 'uuid' ? () => `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}` : () => draw(alphabet, 16);
  const keys = ['s3db.json'];
  for (let i = 0; keys.length < KEYS; i++) {
    const r = i % 10;
    keys.push(r < 6 ? `resource=users/data/id=${id()}` : r < 8 ? `resource=orders/data/id=${id()}` : `resource=users/partition=byPlan/plan=${r === 8 ? 'free' : 'pro'}/id=${id()}`);
  }
  return keys;
}

async function seed(keys: string[]): Promise<void> {
  await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  for (let i = 0; i < keys.length; i += 64) {
    await Promise.all(keys.slice(i, i + 64).map((k) => admin.send(new PutObjectCommand({ Bucket: bucket, Key: `db/${k}`, Body: new Uint8Array(0) }))));
    if (i % 5120 === 0) log(`seeded ${i}/${keys.length}`);
  }
}

async function cleanUp(): Promise<void> {
  for (;;) {
    const page = await admin.send(new ListObjectsV2Command({ Bucket: bucket }));
    const objects = (page.Contents ?? []).map((c) => ({ Key: c.Key! }));
    if (objects.length === 0) break;
    await admin.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }));
  }
  await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
}

type Client = Parameters<typeof listObjects>[0];

/** s3db.js's own listing, one page after another (continuation tokens). */
async function onePageAfterAnother(client: Client): Promise<string[]> {
  const keys: string[] = [];
  let token: string | null | undefined = null;
  do {
    const page = await client.listObjects({ prefix: '', maxKeys: 1000, continuationToken: token });
    for (const c of page.Contents ?? []) keys.push(c.Key!.slice('db/'.length));
    token = page.IsTruncated ? page.NextContinuationToken : null;
  } while (token);
  return keys;
}

async function inRanges(client: Client): Promise<string[]> {
  const keys: string[] = [];
  for await (const e of listObjects(client)) keys.push(e.key);
  return keys;
}

const keys = databaseKeys();
await seed(keys);
const proxy = await startFaultProxy({ target: endpoint, latencyMs: LATENCY });
const dbClient = new S3dbClient({ connectionString: `${proxy.url.replace('//', `//${encodeURIComponent(credentials.accessKeyId)}:${encodeURIComponent(credentials.secretAccessKey)}@`)}/${bucket}/db`, AwsS3Client: awsAt(proxy.url), logLevel: 'warn' });
const db = new S3db({ client: dbClient as never, logLevel: 'warn' });
const client = db.client as unknown as Client;
const seconds: Record<'one page after another' | 'in ranges', number[]> = { 'one page after another': [], 'in ranges': [] };
const requests: Record<keyof typeof seconds, number> = { 'one page after another': 0, 'in ranges': 0 };
try {
  const sorted = [...keys].sort();
  for (let run = 0; run < RUNS; run++) {
    for (const [name, list] of [['one page after another', onePageAfterAnother], ['in ranges', inRanges]] as const) {
      const before = proxy.total();
      const t0 = performance.now();
      const listed = await list(client);
      seconds[name].push((performance.now() - t0) / 1000);
      requests[name] = proxy.total() - before;
      if (listed.join('\n') !== sorted.join('\n')) throw new Error(`${name}: the listing differs from the seeded keys (${listed.length} keys against ${sorted.length})`);
    }
  }
} finally {
  await proxy.close();
  await cleanUp();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows = (Object.keys(seconds) as (keyof typeof seconds)[]).map((name) => ({ name, seconds: median(seconds[name]), keysPerSecond: Math.round(KEYS / median(seconds[name])), requests: requests[name] }));
const speedup = rows[0]!.seconds / rows[1]!.seconds;
if (values.json) {
  process.stdout.write(`${JSON.stringify({ keys: KEYS, shape: SHAPE, latencyMs: LATENCY, concurrency: LIST_CONCURRENCY, runs: RUNS, cases: rows, speedup })}\n`);
} else {
  log(`\n${KEYS} keys (ids: ${SHAPE}), ${LATENCY} ms per request, ${LIST_CONCURRENCY} requests at once, median of ${RUNS}`);
  for (const r of rows) log(`${r.name.padEnd(24)} ${r.seconds.toFixed(2).padStart(7)} s ${String(r.keysPerSecond).padStart(8)} keys/s ${String(r.requests).padStart(6)} requests`);
  log(`in ranges / one page after another: ${speedup.toFixed(2)}x`);
}
