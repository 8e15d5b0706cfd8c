// The catalog's memory does not grow with the number of backups times the database's size
// (review-scale2 F1: 1,800 manifests of a 390 GiB database exhausted a 4 GB heap on `list`): a
// listing holds each backup without its part list and s3db.json, and whole manifests are cached
// up to a byte limit, least recently used first out. Real backups, real filesystem destination.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import { Catalog, ManifestCache } from '../src/engine/catalog.js';
import type { Manifest } from '../src/engine/manifest.js';
import { openDb, seedDatabase } from './helpers/database.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'catalog-memory-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('catalog memory', () => {
  it('a listing holds no part list and no s3db.json; getBackup() and retention still read the whole manifest (parts deleted with their backup)', async () => {
    const dir = path.join(work, 'listing');
    const db = await openDb(`memory://catalog-memory-${process.pid}/db`);
    await seedDatabase(db, { users: 8, orders: 8, perBehavior: 1 });
    const p = new BackupPlugin({ schedule: false, config: { directory: dir }, partSize: 4096, retention: { count: 1 } });
    await db.usePlugin(p);
    const first = await p.createBackup();
    const whole = (await p.getBackup(first.id))!.manifest;
    expect(whole.parts.length).toBeGreaterThan(3);
    expect(Object.keys(whole.s3dbJson as object)).toContain('resources');
    const catalog = (p as unknown as { catalog: Catalog }).catalog;
    const [entry] = await catalog.list();
    expect(entry!.manifest.id).toBe(first.id);
    expect('parts' in entry!.manifest).toBe(false);
    expect('s3dbJson' in entry!.manifest).toBe(false);
    expect(entry!.manifest.definedResources).toEqual(expect.arrayContaining(['users', 'orders']));
    const second = await p.createBackup(); // retention removes the first, parts and all
    expect((await p.listBackups()).map((b) => b.id)).toEqual([second.id]);
    const { readdir } = await import('node:fs/promises');
    const files = (await readdir(path.join(dir, 'data'), { recursive: true })).map(String);
    expect(files.filter((f) => f.includes(first.id))).toEqual([]);
    await p.stop();
  });

  it('a listing asks no destination about the verification of each backup (a HEAD per backup on S3): it lists the records once, and still sees one written by another process', async () => {
    const dir = path.join(work, 'verifications');
    const db = await openDb(`memory://catalog-verifications-${process.pid}/db`);
    await seedDatabase(db, { users: 2, orders: 2, perBehavior: 1 });
    const p = new BackupPlugin({ schedule: false, config: { directory: dir } });
    await db.usePlugin(p);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await p.createBackup()).id);
    const member = (p as unknown as { destinations: { members: { stat(path: string): Promise<unknown> }[] } }).destinations.members[0]!;
    const stat = member.stat.bind(member);
    const asked: string[] = [];
    member.stat = (f: string) => (f.startsWith('verifications/') && asked.push(f), stat(f)); // observation only
    expect((await p.listBackups()).every((b) => b.verified)).toBe(true);
    expect(asked).toEqual([]);
    // another process records a failed verification of one backup: the next listing sees it
    const other = new BackupPlugin({ schedule: false, config: { directory: dir } });
    await db.usePlugin(other, 'other');
    const { writeFile, readFile } = await import('node:fs/promises');
    // a record this process has read (a passed verification), then another process rewrites it
    expect((await other.verifyBackup(ids[2]!)).verified).toBe(true);
    expect((await p.listBackups()).find((b) => b.id === ids[2])!.verification?.level).toBeDefined();
    asked.length = 0;
    const part = (await other.getBackup(ids[2]!))!.manifest.parts[0]!;
    const bytes = await readFile(path.join(dir, part.path));
    bytes[bytes.length >> 1] ^= 1;
    await writeFile(path.join(dir, part.path), bytes);
    expect((await other.verifyBackup(ids[2]!)).verified).toBe(false);
    const listed = await p.listBackups();
    expect(listed.find((b) => b.id === ids[2])!.verified).toBe(false);
    expect(listed.filter((b) => b.verified).length).toBe(4);
    // (a filesystem listing stats the files it finds: the one record there, never each backup)
    expect(asked).toEqual([`verifications/${ids[2]}.json`]);
    await other.stop();
    await p.stop();
  });

  it('a backup another process deleted is gone here too: getBackup() gives null and restore() says not found (a cached manifest is confirmed first)', async () => {
    const dir = path.join(work, 'deleted-elsewhere');
    const db = await openDb(`memory://catalog-deleted-elsewhere-${process.pid}/db`);
    await seedDatabase(db, { users: 2, orders: 2, perBehavior: 1 });
    const a = new BackupPlugin({ schedule: false, config: { directory: dir } });
    const b = new BackupPlugin({ schedule: false, config: { directory: dir } });
    await db.usePlugin(a, 'a');
    await db.usePlugin(b, 'b');
    const x = await a.createBackup();
    const kept = await a.createBackup();
    expect((await a.getBackup(x.id))?.id).toBe(x.id); // cached in a
    await b.deleteBackup(x.id);
    expect(await a.getBackup(x.id)).toBeNull();
    expect(await a.getBackupStatus(x.id)).toBeNull(); // a took it: its own status record goes too
    await expect(a.restore({ backupId: x.id, dryRun: true })).rejects.toMatchObject({ code: 'ERR_BACKUP_NOT_FOUND' });
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(path.join(dir, 'verifications')).catch(() => [])).not.toContain(`${x.id}.json`);
    expect((await a.listBackups()).map((l) => l.id)).toEqual([kept.id]);
    await a.stop();
    await b.stop();
  });

  it("a verification record that cannot be read counts the backup as not verified (it may record a failure): retention never keeps it in a good backup's place", async () => {
    const dir = path.join(work, 'unreadable-record');
    const db = await openDb(`memory://catalog-unreadable-record-${process.pid}/db`);
    await seedDatabase(db, { users: 2, orders: 2, perBehavior: 1 });
    const p = new BackupPlugin({ schedule: false, config: { directory: dir } });
    await db.usePlugin(p);
    const older = await p.createBackup();
    const newest = await p.createBackup();
    const { writeFile } = await import('node:fs/promises');
    await p.verifyBackup(newest.id);
    await writeFile(path.join(dir, 'verifications', `${newest.id}.json`), '{"verified": fa'); // cut short
    const listed = await p.listBackups();
    expect(listed.find((b) => b.id === newest.id)).toMatchObject({ verified: false, verification: { error: expect.stringContaining('is unreadable') } });
    const pruner = new BackupPlugin({ schedule: false, config: { directory: dir }, retention: { count: 1 } });
    await db.usePlugin(pruner, 'pruner');
    const plan = await pruner.prune({ dryRun: true });
    expect(plan.keep.map((k) => k.id)).toContain(older.id); // the newest good one, not pushed out by it
    await pruner.stop();
    await p.stop();
  });

  it('whole manifests are cached up to a byte limit, least recently used evicted first', () => {
    const cache = new ManifestCache(100);
    const m = (id: string) => ({ id }) as Manifest;
    cache.set('a', m('a'), 40);
    cache.set('b', m('b'), 40);
    expect(cache.get('a')?.id).toBe('a'); // a is now the most recently used
    cache.set('c', m('c'), 40); // 120 > 100: b goes
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')?.id).toBe('a');
    expect(cache.get('c')?.id).toBe('c');
    cache.set('huge', m('huge'), 500); // larger than the limit: kept alone
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('huge')?.id).toBe('huge');
  });
});
