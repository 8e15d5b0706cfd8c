// Incremental chains on the real s3db.js: only new or changed objects are stored (metadata-only
// updates included), deletions are recorded, and restoring any point of the chain into an EMPTY
// database gives exactly the database as it was then.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import { openDb, seedDatabase, snapshot, type ObjectSnapshot } from './helpers/database.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'incremental-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

type Api = {
  insert(v: Record<string, unknown>): Promise<unknown>;
  update(id: string, v: Record<string, unknown>): Promise<unknown>;
  delete(id: string): Promise<unknown>;
};

describe('incremental chains', () => {
  it('stores only changes, records deletions, and restores every point of the chain exactly', async () => {
    const db = await openDb(`memory://incr-${process.pid}/db`);
    await seedDatabase(db, { users: 12, orders: 12, perBehavior: 2 });
    const plugin = new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'chain') }, type: 'incremental', encryption: { passphrase: 'p4ss-incremental', iterations: 100_000 } });
    await db.usePlugin(plugin);
    const users = db.resources.users as unknown as Api;
    const orders = db.resources.orders as unknown as Api;
    const points: { id: string; state: ObjectSnapshot[] }[] = [];

    const full = await plugin.createBackup();
    expect(full.type).toBe('full'); // no full yet: an incremental becomes a full
    points.push({ id: full.id, state: await snapshot(db) });

    // metadata-only update (users are body-overflow: a short name lives in S3 metadata), a new record, a deletion
    await users.update('u00003', { name: 'Renamed' });
    await users.insert({ id: 'u-new', name: 'New', email: 'n@x', password: 'pw', plan: 'pro' });
    await orders.delete('o00004');
    const inc1 = await plugin.createBackup();
    expect(inc1.type).toBe('incremental');
    const m1 = (await plugin.getBackup(inc1.id))!.manifest;
    expect(m1.parentId).toBe(full.id);
    expect(m1.chain).toEqual([full.id, inc1.id]);
    expect(m1.totals.stored).toBeGreaterThan(0);
    expect(m1.totals.stored).toBeLessThan(20); // the changed objects (+ s3db.json), not the database
    expect(m1.resources.users!.stored).toBeGreaterThanOrEqual(2); // u00003 rewritten, u-new added (+ partition refs)
    expect(m1.resources.orders!.deleted).toBeGreaterThanOrEqual(1);
    points.push({ id: inc1.id, state: await snapshot(db) });

    // deleted then re-created, and an untouched stretch
    await orders.insert({ id: 'o00004', userId: 'u00001', total: 1, status: 'pending' });
    await users.delete('u-new');
    const inc2 = await plugin.createBackup();
    points.push({ id: inc2.id, state: await snapshot(db) });

    const inc3 = await plugin.createBackup(); // nothing changed
    const m3 = (await plugin.getBackup(inc3.id))!.manifest;
    expect(m3.totals.deleted).toBe(0);
    expect(m3.totals.stored).toBeLessThanOrEqual(1); // at most s3db.json, if s3db rewrote it
    points.push({ id: inc3.id, state: await snapshot(db) });

    for (const [i, point] of points.entries()) {
      const empty = await openDb(`memory://incr-target-${process.pid}-${i}/db`);
      const report = await plugin.restore({ backupId: point.id, destination: empty });
      expect(report.chain[0]).toBe(full.id);
      expect(await snapshot(empty), `restore of point ${i}`).toEqual(point.state);
    }

    // the full cannot be deleted while incrementals need it
    await expect(plugin.deleteBackup(full.id)).rejects.toMatchObject({ code: 'ERR_BACKUP_HAS_DEPENDENTS' });
    await plugin.stop();
  });

  it('starts a new full after maxChainLength incrementals', async () => {
    const db = await openDb(`memory://incr-max-${process.pid}/db`);
    await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
    const plugin = new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'max') }, type: 'incremental', maxChainLength: 2, verify: 'quick' });
    await db.usePlugin(plugin);
    const types: string[] = [];
    for (let i = 0; i < 5; i++) types.push((await plugin.createBackup()).type);
    expect(types).toEqual(['full', 'incremental', 'incremental', 'full', 'incremental']);
    await plugin.stop();
  });
});
