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
