/**
 * A restore leaves in place the objects the database still holds in the backup's version (same
 * ETag, size and LastModified, written before the backup that stored them began:
 * src/engine/same-version.ts) and writes the rest; `rewriteUnchanged` writes everything. Either
 * way the database ends equal to the backup, object for object.
 *
 * Real s3db.js on a real Ceph RGW (millisecond LastModified) and on file:// (where a file's mtime
 * set into the future gives a version written "after the backup began" on demand, with no fake).
 * Which objects were written is read from the store itself: an object left in place keeps its
 * LastModified; one written gets a new one.
 */
import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import type { RestoreReport } from '../src/engine/restore.js';
import { DATABASE_GROUP } from '../src/engine/layout.js';
import { listObjects, type DatabaseLike, type SourceEntry } from '../src/engine/s3db.js';
import { openDb, seedDatabase, snapshot } from './helpers/database.js';
import { createS3Database, deleteBucket, makeBucket, makeS3Client, type S3Database } from './helpers/s3.js';

const ON_RGW = { users: 6, orders: 6, perBehavior: 1 };

let admin: S3Client;
let work: string;
beforeAll(async () => {
  admin = makeS3Client();
  work = await mkdtemp(path.join(tmpdir(), 'restore-unchanged-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A seeded database on its own RGW bucket (prefix 'db'), with a plugin backing it up to a directory; both gone when the test ends. */
async function seededOnRgw(stem: string, options: Record<string, unknown> = {}): Promise<{ db: S3Database; plugin: BackupPlugin; bucket: string }> {
  const bucket = await makeBucket(admin, stem);
  onTestFinished(() => deleteBucket(admin, bucket));
  const db = await createS3Database(bucket, 'db');
  onTestFinished(() => db.disconnect());
  await seedDatabase(db, ON_RGW);
  const plugin = new BackupPlugin({ schedule: false, config: { directory: path.join(work, stem) }, verify: false, ...options });
  await db.usePlugin(plugin);
  onTestFinished(() => plugin.stop());
  return { db, plugin, bucket };
}

/** Every object as listed: key -> ETag, size, LastModified. */
async function listed(db: DatabaseLike): Promise<Map<string, SourceEntry>> {
  const out = new Map<string, SourceEntry>();
  for await (const o of listObjects(db.client, { pageSize: 1000 })) out.set(o.key, o);
  return out;
}

const sameListing = (a: SourceEntry | undefined, b: SourceEntry | undefined) => a !== undefined && b !== undefined && a.etag === b.etag && a.size === b.size && a.lastModified === b.lastModified;

/** Keys of resources' objects (database-level objects, s3db.json and plugin state, are always written). */
const isResourceKey = (key: string) => key.startsWith('resource=');

function sum(report: RestoreReport, field: 'created' | 'overwritten' | 'unchanged' | 'deleted'): number {
  return report.resources.reduce((n, r) => n + r[field], 0);
}

describe('restore over a database that still holds most of the backup', () => {
  it("replace leaves in place exactly the objects untouched since the backup, writes the others, and the database equals the backup", async () => {
    const { db, plugin, bucket } = await seededOnRgw('unchanged-replace');
    const backup = await plugin.createBackup({ type: 'full' });
    const atBackup = await snapshot(db);
    const listedAtBackup = await listed(db);

    // the damage: a metadata-only update, a body garbled, a record deleted, one inserted
    const users = db.resources.users!;
    await users.update('u00001', { name: 'Changed' });
    const orderKey = [...listedAtBackup.keys()].find((k) => k.startsWith('resource=orders/data/'))!;
    await admin.send(new PutObjectCommand({ Bucket: bucket, Key: `db/${orderKey}`, Body: 'garbage' }));
    const deletedKey = [...listedAtBackup.keys()].find((k) => k.startsWith('resource=b_body_only/data/'))!;
    await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: `db/${deletedKey}` }));
    await users.insert({ id: 'u09999', name: 'New', email: 'n@example.com', password: 'pw', plan: 'pro' });
    const listedDamaged = await listed(db);
    const untouched = [...listedAtBackup.keys()].filter((k) => isResourceKey(k) && sameListing(listedAtBackup.get(k), listedDamaged.get(k)));
    const touched = [...listedAtBackup.keys()].filter((k) => isResourceKey(k) && listedDamaged.has(k) && !untouched.includes(k));
    expect(touched.length).toBeGreaterThanOrEqual(2); // u00001 (and its partition reference's neighbours) and the garbled order
    expect(untouched.length).toBeGreaterThan(20);

    const plan = await plugin.restore({ backupId: backup.id, dryRun: true });
    expect(sum(plan, 'unchanged')).toBe(untouched.length);
    expect(plan.resources.find((r) => r.name === 'orders')).toMatchObject({ overwritten: 1, created: 0 });
    expect(plan.resources.find((r) => r.name === 'b_body_only')).toMatchObject({ overwritten: 0, created: 1 });

    const report = await plugin.restore({ backupId: backup.id });
    expect(await snapshot(db)).toEqual(atBackup);
    expect(report.resources).toEqual(plan.resources);
    const after = await listed(db);
    for (const key of untouched) expect(after.get(key)!.lastModified, key).toBe(listedAtBackup.get(key)!.lastModified);
    for (const key of touched) expect(after.get(key)!.lastModified, key).not.toBe(listedDamaged.get(key)!.lastModified);
    expect(report.objectsWritten).toBe(sum(plan, 'created') + sum(plan, 'overwritten'));
    expect(report.objectsDeleted).toBe(sum(plan, 'deleted'));

    // rewriteUnchanged: every object of the backup is written, and the result is the same
    const rewritten = await plugin.restore({ backupId: backup.id, rewriteUnchanged: true });
    expect(sum(rewritten, 'unchanged')).toBe(0);
    expect(rewritten.objectsWritten).toBe(atBackup.length);
    expect(await snapshot(db)).toEqual(atBackup);
    const afterRewrite = await listed(db);
    for (const key of after.keys()) expect(afterRewrite.get(key)!.lastModified, key).not.toBe(after.get(key)!.lastModified);
  });

  it("merge over partitioned resources: a record moved to another partition goes back, its stray reference is deleted, and the untouched records and references stay as they are", async () => {
    const { db, plugin } = await seededOnRgw('unchanged-merge');
    const backup = await plugin.createBackup({ type: 'full' });
    const atBackup = await snapshot(db);
    const listedAtBackup = await listed(db);
    const users = db.resources.users!;
    const moved = 'u00001'; // plan 'free' at the backup
    await users.update(moved, { plan: 'pro' });
    // s3db.js moves partition references after update() resolves (asyncPartitions)
    const movedRef = `resource=users/partition=byPlan/plan=pro/id=${moved}`;
    let listedDamaged = await listed(db);
    for (let i = 0; i < 100 && (!listedDamaged.has(movedRef) || listedDamaged.has(movedRef.replace('plan=pro', 'plan=free'))); i++) {
      await new Promise((r) => setTimeout(r, 100));
      listedDamaged = await listed(db);
    }
    expect(listedDamaged.has(movedRef)).toBe(true);

    const report = await plugin.restore({ backupId: backup.id, mode: 'merge' });
    expect(await snapshot(db)).toEqual(atBackup); // the stray plan=pro reference is gone
    const after = await listed(db);
    const untouched = [...listedAtBackup.keys()].filter((k) => isResourceKey(k) && sameListing(listedAtBackup.get(k), listedDamaged.get(k)));
    expect(sum(report, 'unchanged')).toBe(untouched.length);
    for (const key of untouched) expect(after.get(key)!.lastModified, key).toBe(listedAtBackup.get(key)!.lastModified);
    // u00001's data object and the references s3db.js rewrote with it (plan=pro's is not the backup's: deleted)
    const rewritten = [...listedAtBackup.keys()].filter((k) => k.startsWith('resource=users/') && listedDamaged.has(k) && !untouched.includes(k));
    expect(rewritten).toContain(`resource=users/data/id=${moved}`);
    expect(rewritten.every((k) => k.endsWith(`id=${moved}`))).toBe(true);
    expect(report.resources.find((r) => r.name === 'users')).toMatchObject({ overwritten: rewritten.length, created: 1 }); // plan=free's reference is created again
  });

  it('an incremental chain: objects the full holds are left in place; a small incremental, whose pass asks key by key rather than listing, writes its own again (and its plan says so)', async () => {
    const { db, plugin } = await seededOnRgw('unchanged-chain', { pageSize: 5 });
    await plugin.createBackup({ type: 'full' });
    const listedAtFull = await listed(db);
    await db.resources.orders!.update('o00002', { total: 1 });
    const inc = await plugin.createBackup({ type: 'incremental' });
    const atInc = await snapshot(db);
    const listedAtInc = await listed(db);
    const byFull = [...listedAtInc.keys()].filter((k) => isResourceKey(k) && sameListing(listedAtFull.get(k), listedAtInc.get(k)));
    const byInc = [...listedAtInc.keys()].filter((k) => isResourceKey(k) && !byFull.includes(k));
    expect(byInc.length).toBeGreaterThanOrEqual(1);

    // nothing changed since the incremental, yet its own versions are written again: with
    // pageSize 5, listing the target (~9 pages a resource) costs more requests than its 1-2 keys
    const plan = await plugin.restore({ backupId: inc.id, dryRun: true });
    expect(sum(plan, 'unchanged')).toBe(byFull.length);
    expect(sum(plan, 'overwritten')).toBe(byInc.length + plan.resources.find((r) => r.name === DATABASE_GROUP)!.overwritten);
    const report = await plugin.restore({ backupId: inc.id });
    expect(report.resources).toEqual(plan.resources);
    expect(await snapshot(db)).toEqual(atInc);
    const after = await listed(db);
    for (const key of byFull) expect(after.get(key)!.lastModified, key).toBe(listedAtInc.get(key)!.lastModified);
    for (const key of byInc) expect(after.get(key)!.lastModified, key).not.toBe(listedAtInc.get(key)!.lastModified);
  });
});

describe('a version whose LastModified is not safely before the backup began', () => {
  it('file://: an object stamped after the backup began is written again although its listing matches the backup', async () => {
    const dir = path.join(work, 'racy-db');
    const db = await openDb(`file://${dir}`);
    onTestFinished(() => db.disconnect());
    const notes = await db.createResource({ name: 'notes', attributes: { v: 'number' } });
    for (let i = 0; i < 5; i++) await notes.insert({ id: `n${i}`, v: i });
    // n3's stamp (the later mtime of its file and its .meta.json) 60 s ahead: as if written after the backup began
    const data = path.join(dir, 'resource=notes', 'data');
    const later = new Date(Math.ceil(Date.now() / 1000) * 1000 + 60_000);
    for (const name of (await readdir(data)).filter((n) => n.startsWith('id=n3'))) await utimes(path.join(data, name), later, later);
    const plugin = new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'racy-backups') }, verify: false });
    await db.usePlugin(plugin);
    onTestFinished(() => plugin.stop());
    const backup = await plugin.createBackup({ type: 'full' });
    const before = await listed(db);
    const atBackup = await snapshot(db);

    const plan = await plugin.restore({ backupId: backup.id, dryRun: true });
    expect(plan.resources.find((r) => r.name === 'notes')).toMatchObject({ objects: 5, unchanged: 4, overwritten: 1, created: 0, deleted: 0 });
    await plugin.restore({ backupId: backup.id });
    const after = await listed(db);
    expect(await snapshot(db)).toEqual(atBackup);
    for (const [key, entry] of before) {
      if (!isResourceKey(key)) continue;
      if (key.endsWith('id=n3')) expect(after.get(key)!.lastModified).not.toBe(entry.lastModified);
      else expect(after.get(key)!.lastModified, key).toBe(entry.lastModified);
    }
  });
});
