// A file:// database is listed by walking s3db.js's storage directly (src/engine/file-listing.ts),
// one directory at a time, where s3db.js's client reads and sorts every object first: the same
// entries as the client gives, in code-point order, with its key prefix or without, and lazily.
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listObjects, type S3dbClientLike, type SourceEntry } from '../src/engine/s3db.js';
import { openDb, putStored } from './helpers/database.js';
import { literal } from './helpers/text.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 's3db-backup-file-listing-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const KEYS = ['resource=a/data/id=1', 'resource=a/data/id=1-b', 'resource=a/data/id=1.b', 'resource=a-b/data/id=x', 'resource=a/data/id=é', 'resource=a/data/id=😀', 'resource=a/data/id=ｚ', 'plugin=x/state', 'resource=b/partition=p/v=1/id=2'];

async function collect(client: S3dbClientLike, prefix = ''): Promise<SourceEntry[]> {
  const out: SourceEntry[] = [];
  for await (const e of listObjects(client, { prefix })) out.push(e);
  return out;
}

/** The same client listed through s3db.js's own listObjects (a wrapper: the direct walk is for the class's own method only). */
function throughClient(client: S3dbClientLike): S3dbClientLike {
  const own = client.listObjects.bind(client);
  return Object.assign(Object.create(client) as S3dbClientLike, { listObjects: (p: Parameters<S3dbClientLike['listObjects']>[0]) => own(p) });
}

describe('listing a file:// database by walking its storage', () => {
  for (const keyPrefix of ['', 'app/db']) {
    it(`gives what s3db.js's client lists, in code-point order, for every prefix (key prefix '${keyPrefix}')`, async () => {
      const dir = path.join(work, `same-${keyPrefix.replace(/\//g, '_') || 'none'}`);
      const db = await openDb(`file://${dir}${keyPrefix ? `/${keyPrefix}` : ''}`);
      for (const key of KEYS) await putStored(db, key, { v: key.length.toString() });
      // a large body (s3db.js copies it into the metadata file as a JSON array: read for its head only)
      await putStored(db, 'resource=a/data/id=1', { etag: 'a field named like the ETag', v: '1' }, Buffer.alloc(3 * 1024 * 1024, 7));
      const walked = await collect(db.client);
      const listed = await collect(throughClient(db.client));
      expect(walked.map((e) => e.key)).toEqual([...KEYS, 's3db.json'].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
      expect(walked).toEqual(listed);
      // a prefix is a prefix of keys, as S3 has it ('resource=a' holds 'resource=a-b/...'; the client walks only the directory it names)
      for (const prefix of ['resource=a/', 'resource=a', 'resource=a/data/id=1', 'plugin=', 'nothing/', 'resource=b/partition=p/']) {
        expect(await collect(db.client, prefix), prefix).toEqual(listed.filter((e) => e.key.startsWith(prefix)));
      }
      expect((await collect(db.client, 'resource=a/')).length).toBe(6);
      await db.disconnect();
    });
  }

  it("a key prefix without '/' ('?keyPrefix=app') lists its own objects only, not those of a sibling whose name begins with it (app2, app-old)", async () => {
    const dir = path.join(work, 'siblings');
    const app = await openDb(`file://${dir}?keyPrefix=app`);
    const app2 = await openDb(`file://${dir}?keyPrefix=app2`);
    const old = await openDb(`file://${dir}?keyPrefix=app-old`);
    for (const db of [app, app2, old]) await putStored(db, 'resource=a/data/id=1', { v: '1' });
    const walked = await collect(app.client);
    expect(walked.map((e) => e.key)).toEqual(['resource=a/data/id=1', 's3db.json']);
    expect(walked).toEqual(await collect(throughClient(app.client)));
    expect(await collect(app.client, 'resource=a/')).toEqual(walked.slice(0, 1));
    for (const db of [app, app2, old]) await db.disconnect();
  });

  it('an object whose metadata file cannot be opened for want of descriptors is waited for, never left out (the process holds all but 8)', async () => {
    const dir = path.join(work, 'descriptors');
    const db = await openDb(`file://${dir}`);
    for (let i = 0; i < 120; i++) await putStored(db, `resource=u/data/id=${String(i).padStart(3, '0')}`, { v: String(i) });
    const held: number[] = [];
    let keys: string[] = [];
    try {
      // what an application's sockets and files do to the limit, for real: taken until refused
      try {
        for (;;) held.push(openSync('/dev/null', 'r'));
      } catch {
        // EMFILE: the limit reached
      }
      for (let i = 0; i < 8; i++) closeSync(held.pop()!);
      keys = (await collect(db.client, 'resource=u/')).map((e) => e.key);
    } finally {
      for (const fd of held) closeSync(fd);
    }
    expect(keys.length).toBe(120);
    await db.disconnect();
  });

  it("with s3db.js's TTL on, an expiry the 64 KiB head cuts is read whole, not as a date in 1970 (large user metadata before it)", async () => {
    const dir = path.join(work, 'ttl');
    const S3db = (await import('s3db.js')).S3db as unknown as new (o: Record<string, unknown>) => { connect(): Promise<void>; disconnect(): Promise<void>; client: S3dbClientLike };
    const db = new S3db({ connectionString: `file://${dir}`, logLevel: 'silent', exitOnSignal: false, clientOptions: { ttl: { enabled: true, defaultTTL: 3_600_000, cleanupInterval: 0 } } });
    await db.connect();
    // metadata sized so that the head (64 KiB) ends inside the expiry's digits
    const probe = async (pad: number) => {
      await db.client.putObject({ key: 'resource=u/data/id=big', body: Buffer.from('x'), metadata: { pad: 'p'.repeat(pad) } });
      const text = await readFile(path.join(dir, 'resource=u', 'data', 'id=big.meta.json'), 'utf8');
      return Buffer.byteLength(text.slice(0, text.indexOf('"expiresAt": ') + '"expiresAt": '.length));
    };
    const at = await probe(60_000);
    expect(await probe(60_000 + 65_536 - at - 5)).toBe(65_536 - 5);
    expect((await collect(db.client, 'resource=u/')).map((e) => e.key)).toEqual(['resource=u/data/id=big']);
    await db.disconnect();
  });

  it('leaves out a file without metadata (a temporary file) and stamps an object with its metadata file\'s later mtime', async () => {
    const dir = path.join(work, 'odd');
    const db = await openDb(`file://${dir}`);
    await putStored(db, 'resource=a/data/id=1', { v: '1' });
    await writeFile(path.join(dir, 'resource=a', 'data', 'id=1.tmp.123'), 'half written');
    const later = new Date(Math.ceil(Date.now() / 1000) * 1000 + 60_000); // whole seconds: utimes takes them exactly
    await utimes(path.join(dir, 'resource=a', 'data', 'id=1.meta.json'), later, later);
    const walked = await collect(db.client, 'resource=a/');
    expect(walked.map((e) => e.key)).toEqual(['resource=a/data/id=1']);
    expect(Date.parse(walked[0]!.lastModified)).toBe(later.getTime());
    await db.disconnect();
  });

  it('stamps an object no earlier than the write time its metadata file records, which a read of it gives (file times cut to the second, or a lagging clock), walked or through the client', async () => {
    const dir = path.join(work, 'early-times');
    const db = await openDb(`file://${dir}`);
    await putStored(db, 'resource=a/data/id=1', { v: '1' });
    const recorded = (JSON.parse(await readFile(path.join(dir, 'resource=a', 'data', 'id=1.meta.json'), 'utf8')) as { lastModified: string }).lastModified;
    const earlier = new Date(Math.floor(Date.parse(recorded) / 1000) * 1000 - 5_000);
    for (const file of ['id=1', 'id=1.meta.json']) await utimes(path.join(dir, 'resource=a', 'data', file), earlier, earlier);
    const read = await db.client.getObject('resource=a/data/id=1');
    expect(new Date(read.LastModified as Date).toISOString()).toBe(recorded);
    for (const client of [db.client, throughClient(db.client)]) {
      const [entry] = await collect(client, 'resource=a/');
      expect(entry!.lastModified).toBe(recorded);
    }
    await db.disconnect();
  });

  it('is lazy: objects written into a directory the walk has not reached yet are listed (the client listed everything at its first call)', async () => {
    const dir = path.join(work, 'lazy');
    const db = await openDb(`file://${dir}`);
    const first = Array.from({ length: 40 }, (_, i) => `resource=a/data/id=${String(i).padStart(2, '0')}`); // over one batch of stats
    for (const key of first) await putStored(db, key, { v: '1' });
    await putStored(db, 'resource=c/data/id=1', { v: '1' });
    const seen: string[] = [];
    for await (const e of listObjects(db.client)) {
      seen.push(e.key);
      if (e.key === first[0]) await putStored(db, 'resource=c/data/id=2', { v: '2' });
    }
    expect(seen).toEqual([...first, 'resource=c/data/id=1', 'resource=c/data/id=2', 's3db.json']);
    await db.disconnect();
  });

  it('a metadata file that cannot be read for another reason fails the listing, naming the file (a symlink loop, a directory): never an object left out', async () => {
    // real faults: the tests run as root, which permissions cannot stop
    const dir = path.join(work, 'unreadable');
    const db = await openDb(`file://${dir}`);
    for (const id of ['1', '2', '3']) await putStored(db, `resource=a/data/id=${id}`, { v: id });
    const loop = path.join(dir, 'resource=a', 'data', 'id=2.meta.json');
    await rm(loop);
    await symlink(loop, loop);
    // (its stat and its open run at once: either one names the loop)
    await expect(collect(db.client, 'resource=a/')).rejects.toMatchObject({ code: 'ERR_SOURCE_READ', message: expect.stringMatching(new RegExp(`ELOOP: too many symbolic links encountered, (stat|open) '${literal(loop)}'`)) });
    await rm(loop);
    await mkdir(loop);
    await expect(collect(db.client, 'resource=a/')).rejects.toMatchObject({ code: 'ERR_SOURCE_READ', message: expect.stringContaining('EISDIR') });
    await db.disconnect();
  });

  it('a directory that does not exist lists nothing (the client walked its parent, listing a sibling database as ../<name>/...)', async () => {
    const sibling = await openDb(`file://${path.join(work, 'beside')}`);
    await putStored(sibling, 'resource=a/data/id=1', { v: '1' });
    const missing = await openDb(`file://${path.join(work, 'missing-parent', 'db')}`);
    await rm(path.join(work, 'missing-parent'), { recursive: true, force: true });
    expect(await collect(missing.client)).toEqual([]);
    await sibling.disconnect();
    await missing.disconnect();
  });
});
