/**
 * Listing a database on S3 in ranges (src/engine/ranged-listing.ts, s3db.ts listS3) against the
 * real server (Ceph RGW): the keys come out exactly as one listing after another gives them (same
 * keys, sizes, ETags, order) for s3db.js's layouts and for keys no split point foresees; several
 * requests are in flight, never more than LIST_CONCURRENCY; a consumer that stalls or stops early
 * stops the requests; a request refused midway, or an answer that would repeat or lose keys, fails
 * the listing with what happened; and a backup
 * and restore of a database listed in many small ranges is exact.
 *
 * Requests are watched through a middleware on the real AWS client (it only counts). The fakes are
 * the fault proxy's answers to a later range's request (a refusal; a store ignoring StartAfter; an
 * empty page that says more follow), which RGW cannot be made to give.
 */
import { ListObjectsV2Command, PutObjectCommand, type ListObjectsV2CommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import { Alphabet, interpolatedPoints } from '../src/engine/ranged-listing.js';
import { LIST_CONCURRENCY, listObjects, type SourceEntry } from '../src/engine/s3db.js';
import { compareKeys } from '../src/engine/sorted-merge.js';
import { openDb, seedDatabase, snapshot } from './helpers/database.js';
import type { UsersApi } from './helpers/edited-backups.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { createS3Database, deleteBucket, makeBucket, makeS3Client, s3dbConnectionString, s3Env, type S3Database } from './helpers/s3.js';
import { mulberry32 } from '../benches/corpus.js';

const ID_ALPHABET = '-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz';

/** Keys shaped as s3db.js writes them, and some no split point foresees. */
function seededKeys(): string[] {
  const random = mulberry32(7);
  const id = (n: number) => Array.from({ length: n }, () => ID_ALPHABET[Math.floor(random() * ID_ALPHABET.length)]).join('');
  const keys = new Set<string>();
  for (let i = 0; i < 900; i++) keys.add(`resource=users/data/id=${id(12)}`);
  for (let i = 0; i < 300; i++) keys.add(`resource=orders/data/id=${String(i).padStart(8, '0')}`);
  for (let i = 0; i < 150; i++) keys.add(`resource=users/partition=byRegion/region=${['eu', 'us', 'ap'][i % 3]}/id=${id(12)}`);
  for (const odd of ['é', 'éé', 'ÿz', '😀', '😀a', '中文', '~', '~~', '~~~a', ' space', 'a b', '}{', "'", '"', '%20', 'x'.repeat(200)]) {
    keys.add(`resource=notes/data/id=${odd}`);
    keys.add(`resource=notes/data/id=${odd}~`);
  }
  for (const k of ['a', 'b', 'bO', 'bOA', 'bOB', 'c', 'd', 'e', 'f', 'g']) keys.add(`resource=f1/${k}`);
  keys.add('plugin=cache/state.json');
  keys.add('s3db.json');
  return [...keys];
}

/** Keys beside the database that its listing must not hold. */
const SIBLINGS = ['app/db2/resource=users/data/id=a', 'app/dbx', 'app/db', 'app/da/x', 'app/dc', 'app/db~'];

let admin: S3Client;
let bucket: string;
let keys: string[];

async function putAll(client: S3Client, bucketName: string, fullKeys: string[]): Promise<void> {
  for (let i = 0; i < fullKeys.length; i += 32) {
    await Promise.all(
      fullKeys.slice(i, i + 32).map((Key, j) => client.send(new PutObjectCommand({ Bucket: bucketName, Key, Body: Buffer.alloc((i + j) % 97, Key) }))),
    );
  }
}

/** Every object under `prefix`, one page after another (continuation tokens, as a plain client lists). */
async function listedOneByOne(prefix: string): Promise<SourceEntry[]> {
  const entries: SourceEntry[] = [];
  let token: string | undefined;
  do {
    const page: ListObjectsV2CommandOutput = await admin.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const c of page.Contents ?? []) {
      entries.push({ key: c.Key!.slice('app/db/'.length), size: c.Size ?? 0, etag: String(c.ETag).replace(/"/g, ''), lastModified: new Date(c.LastModified!).toISOString(), ...(c.StorageClass ? { storageClass: c.StorageClass } : {}) });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return entries;
}

interface Watched {
  db: S3Database;
  /** ListObjectsV2 requests started, in flight now, in flight at most; keys their answers held. */
  counts: { started: number; inFlight: number; maxInFlight: number; keys: number };
}

/** The database under app/db, through an AWS client whose ListObjectsV2 requests are counted. */
async function watchedDatabase(endpoint?: string): Promise<Watched> {
  const aws = makeS3Client(endpoint ? { endpoint, maxAttempts: 1 } : {});
  const counts = { started: 0, inFlight: 0, maxInFlight: 0, keys: 0 };
  aws.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== 'ListObjectsV2Command') return next(args);
      counts.started++;
      counts.maxInFlight = Math.max(counts.maxInFlight, ++counts.inFlight);
      try {
        const answer = await next(args);
        counts.keys += (answer.output as ListObjectsV2CommandOutput).Contents?.length ?? 0;
        return answer;
      } finally {
        counts.inFlight--;
      }
    },
    { step: 'initialize', name: 'countListings' },
  );
  const db = await createS3Database(bucket, 'app/db', endpoint ? { endpoint } : {}, aws);
  onTestFinished(() => db.disconnect());
  return { db, counts };
}

async function collect(entries: AsyncIterable<SourceEntry>): Promise<SourceEntry[]> {
  const all: SourceEntry[] = [];
  for await (const e of entries) all.push(e);
  return all;
}

/** The count of requests started once it stays the same for 300 ms: the listing asks for nothing more. */
async function settled(counts: Watched['counts']): Promise<number> {
  for (let seen = -1; ; ) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    if (counts.started === seen && counts.inFlight === 0) return seen;
    seen = counts.started;
  }
}

beforeAll(async () => {
  admin = makeS3Client();
  bucket = await makeBucket(admin, 'ranges');
  keys = seededKeys();
  await putAll(admin, bucket, [...keys.map((k) => `app/db/${k}`), ...SIBLINGS]);
}, 120_000);

afterAll(async () => {
  if (bucket) await deleteBucket(admin, bucket);
});

describe('interpolatedPoints', () => {
  /** The page of `pageSize` keys after the `from`-th of `keys` (sorted), its alphabet as the listing learns it, and the points cutting what follows it. */
  const pointsAfter = (keys: string[], from: number, pageSize: number, upTo: string | null, pagesEach: number, count: number) => {
    const page = keys.slice(from, from + pageSize);
    const alphabet = new Alphabet();
    let varies = 0;
    while (page[0]![varies] === page[page.length - 1]![varies]) varies++;
    for (const k of page) alphabet.add(k, varies);
    return { last: page[page.length - 1]!, points: interpolatedPoints('app/db/', alphabet, page[0]!, page[page.length - 1]!, page.length, upTo, pagesEach, count) };
  };
  /** How many of `keys` each range (last, p1], (p1, p2], ... holds. */
  const rangeSizes = (keys: string[], last: string, points: string[]) => {
    const bounds = [last, ...points];
    return points.map((p, i) => keys.filter((k) => compareKeys(k, bounds[i]!) > 0 && compareKeys(k, p) <= 0).length);
  };

  it('cuts what follows a page into ranges of about the pages asked for: sequential numbers (carried into coarser digits), hex, s3db.js ids', () => {
    const random = mulberry32(3);
    const draw = (alphabet: string, n: number) => Array.from({ length: n }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
    const shapes: Record<string, string[]> = {
      numbers: Array.from({ length: 20_000 }, (_, i) => `app/db/resource=events/data/id=e${String(i).padStart(7, '0')}`),
      hex: Array.from({ length: 20_000 }, () => `app/db/resource=events/data/id=${draw('0123456789abcdef', 32)}`),
      s3db: Array.from({ length: 20_000 }, () => `app/db/resource=users/data/id=${draw(ID_ALPHABET, 22)}`),
    };
    for (const [shape, unsorted] of Object.entries(shapes)) {
      const keys = [...new Set(unsorted)].sort(compareKeys);
      for (const from of [0, 5_000]) {
        const { last, points } = pointsAfter(keys, from, 500, null, 2, 6);
        // 2 pages of 500 each, give or take the randomness of the ids (and a base-11 carry for the numbers)
        expect({ shape, from, sizes: rangeSizes(keys, last, points).map((n) => n >= 500 && n <= 1_800) }).toEqual({ shape, from, sizes: new Array(6).fill(true) });
      }
    }
    // the numbers: "e0000000".."e0000499" puts the first point in "e0001...", carried into the thousands
    expect(pointsAfter(shapes.numbers!, 0, 500, null, 2, 1).points).toEqual([expect.stringMatching(/^app\/db\/resource=events\/data\/id=e0001[0-9]+$/)]);
  });

  it("never carries through a character the page's alphabet lacks (the separators of s3db.js's layout), past its range's bound, or from a page that ends on it", () => {
    const twoLetters = [...'abcdefghijklmnopqrstuvwxyz'].flatMap((a) => [...'abcdefghijklmnopqrstuvwxyz'].map((b) => `app/db/resource=r/id=${a}${b}`));
    // the page ran through the whole of "id=": what follows '=' is not known
    expect(pointsAfter(twoLetters, 0, twoLetters.length, null, 2, 4).points).toEqual([]);
    // bounded: no point at or past the bound
    const bounded = pointsAfter(twoLetters, 0, 26, 'app/db/resource=r/id=d', 2, 10);
    expect(bounded.points.length).toBeGreaterThan(0);
    for (const p of bounded.points) expect(compareKeys(p, 'app/db/resource=r/id=d')).toBeLessThan(0);
    // a page that ends on its range's bound leaves nothing to cut (review-ranges F1: a point past
    // the bound overlapped the next range, and keys came twice at pageSize 1)
    const alphabet = new Alphabet();
    alphabet.add('app/db/bO', 7);
    expect(interpolatedPoints('app/db/', alphabet, 'app/db/bA', 'app/db/bO', 2, 'app/db/bO', 2, 4)).toEqual([]);
  });

  it("never gives a point longer than S3's longest key (1,024 bytes): keys near it are left to one listing (review-33)", () => {
    // keys of 1,020 bytes whose last characters vary: a point would add up to 8 characters to the part they share
    const head = `app/db/resource=r/data/id=${'é'.repeat(495)}`; // (2 bytes each: 1,016 in all)
    const long = Array.from({ length: 200 }, (_, i) => `${head}${String(i).padStart(4, '0')}`);
    expect(Buffer.byteLength(long[0]!)).toBeLessThanOrEqual(1024);
    const { points } = pointsAfter(long, 0, 100, null, 2, 6);
    for (const p of points) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(1024);
    // and where there is room, points are given
    expect(pointsAfter(long.map((k) => k.replace('é'.repeat(495), 'e'.repeat(400))), 0, 100, null, 2, 6).points.length).toBeGreaterThan(0);
  });

  it('never gives a point outside (last, bound), out of order, or that is not printable ASCII after a prefix of a listed key', () => {
    const random = mulberry32(11);
    const chars = ['a', 'b', 'z', '~', ' ', '0', '/', '=', 'é', '😀', '\u007f', '\uffff', '9', 'A'];
    const word = () => Array.from({ length: 1 + Math.floor(random() * 6) }, () => chars[Math.floor(random() * chars.length)]).join('');
    let some = 0;
    for (let i = 0; i < 5000; i++) {
      const [a, b, c] = [word(), word(), word()].sort(compareKeys) as [string, string, string];
      if (compareKeys(a, b) === 0 || compareKeys(b, c) === 0) continue;
      const bound = random() < 0.3 ? null : c;
      const alphabet = new Alphabet();
      for (const k of [a, b, word()]) alphabet.add(k, Math.floor(random() * 3));
      const points = interpolatedPoints('', alphabet, a, b, 2 + Math.floor(random() * 1000), bound, 0.2 + random() * 4, 1 + Math.floor(random() * 8));
      some += points.length;
      for (const [j, p] of points.entries()) {
        expect(compareKeys(p, j === 0 ? b : points[j - 1]!)).toBeGreaterThan(0);
        if (bound !== null) expect(compareKeys(p, bound)).toBeLessThan(0);
        expect(() => encodeURIComponent(p)).not.toThrow(); // no lone surrogate: it can be sent as StartAfter
        let shared = 0;
        while (shared < p.length && p[shared] === b[shared]) shared++;
        expect(p.slice(shared)).toMatch(/^[\x20-\x7e]*$/); // (what follows the prefix it shares with the listed key)
      }
    }
    expect(some).toBeGreaterThan(1000);
  });
});

describe('listing a database on S3 in ranges', () => {
  it('gives the same objects in the same order as one listing after another, whatever the page size and prefix', async () => {
    const { db, counts } = await watchedDatabase();
    const expected = await listedOneByOne('app/db/');
    expect(expected.length).toBeGreaterThanOrEqual(keys.length);
    for (const pageSize of [7, 50, 1000]) {
      const before = counts.keys;
      const listed = await collect(listObjects(db.client as never, { pageSize }));
      expect(listed).toEqual(expected);
      // each range listed under the prefix its keys share: little is listed past a range's end
      // (1.5-1.7 times the keys here; listed under the database's prefix alone, 2.8-2.9 times)
      expect(counts.keys - before).toBeLessThan(2.25 * listed.length);
    }
    // pages of one key, so pages end on split points (review-ranges F1 found keys listed twice
    // there; interpolatedPoints' own tests pin the cause)
    for (const prefix of ['resource=f1/', 'resource=notes/']) {
      const one = await collect(listObjects(db.client as never, { prefix, pageSize: 1 }));
      expect(one).toEqual(expected.filter((e) => e.key.startsWith(prefix)));
    }
    // several ranges were listed at once, and never more than LIST_CONCURRENCY
    expect(counts.maxInFlight).toBeGreaterThan(1);
    expect(counts.maxInFlight).toBeLessThanOrEqual(LIST_CONCURRENCY);
    const users = await collect(listObjects(db.client as never, { prefix: 'resource=users/', pageSize: 9 }));
    expect(users).toEqual(expected.filter((e) => e.key.startsWith('resource=users/')));
    const notes = await collect(listObjects(db.client as never, { prefix: 'resource=notes/data/id=', pageSize: 3 }));
    expect(notes.map((e) => e.key)).toEqual(expected.filter((e) => e.key.startsWith('resource=notes/')).map((e) => e.key));
    expect(notes.length).toBe(keys.filter((k) => k.startsWith('resource=notes/')).length);
  }, 120_000);

  it("gives the same listing through s3db.js's own client (a database opened by connection string), whose HTTP handler answered requests in flight at once to one path with one response (walk-unch F1)", async () => {
    const db = await openDb(s3dbConnectionString(bucket, 'app/db'));
    onTestFinished(() => db.disconnect());
    const expected = await listedOneByOne('app/db/');
    expect(await collect(listObjects(db.client as never, { pageSize: 7 }))).toEqual(expected);
  }, 120_000);

  it('stops asking for pages while its consumer stalls, and after it stops early', async () => {
    const { db, counts } = await watchedDatabase();
    const pages = Math.ceil(keys.length / 7);
    const listing = listObjects(db.client as never, { pageSize: 7 })[Symbol.asyncIterator]();
    expect((await listing.next()).done).toBe(false);
    // pages listed ahead are bounded (2 x LIST_CONCURRENCY held; empty ranges' answers are dropped)
    const stalled = await settled(counts);
    expect(stalled).toBeLessThan(pages / 2);
    let taken = 1;
    while (taken < 100 && !(await listing.next()).done) taken++;
    await listing.return?.(undefined);
    const atReturn = counts.started;
    // no request starts once the consumer has stopped (those in flight finish and are dropped)
    expect(await settled(counts)).toBe(atReturn);
    expect(atReturn).toBeLessThan(pages / 2);
  }, 60_000);

  it('fails with what to do when a later range is refused, not with part of the keys', async () => {
    const proxy = await startFaultProxy({
      target: s3Env().endpoint,
      intercept: (req) =>
        req.method === 'GET' && req.url.includes('list-type=2') && req.url.includes('start-after=')
          ? { status: 403, body: '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>' }
          : undefined,
    });
    onTestFinished(() => proxy.close());
    const { db } = await watchedDatabase(proxy.url);
    const failure = await collect(listObjects(db.client as never, { pageSize: 7 })).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 'ERR_SOURCE_READ', message: expect.stringMatching(/could not list the database's objects \(AccessDenied, HTTP 403\): check the credentials/) });
  }, 60_000);

  it.each([
    ['ignores StartAfter (lists from the start again)', '<Contents><Key>app/db/resource=a</Key><LastModified>2026-12-03T00:00:00.000Z</LastModified><ETag>"0"</ETag><Size>0</Size></Contents>', 'false', /does not support StartAfter/],
    ['answers an empty page that says more follow', '', 'true', /no keys that says more follow/],
    // a page of another range (its keys past this range's bound) would pass for an empty range: walk-unch F1, through s3db.js's request merging
    ["answers with another request's page", '<StartAfter>app/db/zzz</StartAfter>', 'false', /with the page of another .*merged requests/],
  ])('fails, rather than repeat or lose keys, with a store that %s', async (_, contents, truncated, message) => {
    const proxy = await startFaultProxy({
      target: s3Env().endpoint,
      intercept: (req) =>
        req.method === 'GET' && req.url.includes('list-type=2') && req.url.includes('start-after=')
          ? { status: 200, body: `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${bucket}</Name><Prefix>${new URL(req.url, 'http://x').searchParams.get('prefix')}</Prefix><MaxKeys>7</MaxKeys><IsTruncated>${truncated}</IsTruncated>${contents}</ListBucketResult>` }
          : undefined,
    });
    onTestFinished(() => proxy.close());
    const { db } = await watchedDatabase(proxy.url);
    const failure = await collect(listObjects(db.client as never, { pageSize: 7 })).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 'ERR_SOURCE_READ', message: expect.stringMatching(message) });
  }, 60_000);

  it('backs up a database listed in many small ranges and restores it exactly, incrementals and deletions included', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ranged-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const srcBucket = await makeBucket(admin, 'rsrc');
    const dstBucket = await makeBucket(admin, 'rdst');
    onTestFinished(() => deleteBucket(admin, srcBucket));
    onTestFinished(() => deleteBucket(admin, dstBucket));
    const db = await createS3Database(srcBucket, 'shop');
    onTestFinished(() => db.disconnect());
    await seedDatabase(db, { users: 15, orders: 15, perBehavior: 2 });
    const plugin = new BackupPlugin({ schedule: false, config: { directory: dir }, pageSize: 5 });
    await db.usePlugin(plugin);
    const full = await plugin.createBackup({ type: 'full' });
    const users = db.resources.users as unknown as UsersApi;
    await users.delete('u00001');
    await users.update('u00002', { name: 'changed after the full' });
    await users.insert({ id: 'u-new', name: 'New', email: 'n@x', password: 'pw', plan: 'pro' });
    const incremental = await plugin.createBackup({ type: 'incremental' });
    expect([full.verified, incremental.verified]).toEqual([true, true]);
    const want = await snapshot(db as never);

    const target = await createS3Database(dstBucket, 'restored');
    onTestFinished(() => target.disconnect());
    const report = await plugin.restore({ backupId: incremental.id, destination: target as never });
    expect(report.objectsWritten).toBe(want.length);
    expect(await snapshot(target as never)).toEqual(want);
  }, 180_000);
});
