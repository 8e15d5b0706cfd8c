// Backup and restore on the real s3db.js (memory:// and file://) to a real filesystem destination:
// exact object-for-object round trips, every restore mode, dry runs, subsets, other databases,
// and the seed's 3 AM story in a separate process against an EMPTY database.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import { DATABASE_GROUP } from '../src/engine/layout.js';
import { FETCH_WINDOW_BYTES } from '../src/engine/backup.js';
import { WRITE_WINDOW_BYTES } from '../src/engine/restore.js';
import type { ProgressEvent } from '../src/engine/progress.js';
import { CHAIN_READ_AHEAD } from '../src/engine/stored.js';
import { failWritesOf, hookStore, openDb, putStored, seedDatabase, snapshot, storedMetadataOf, STORED_VALUES, type ObjectSnapshot } from './helpers/database.js';
import { warnInto } from './helpers/logger.js';

const run = promisify(execFile);
const PASSPHRASE = 'correct horse battery staple';
let work: string;
let bucketSeq = 0;
const bucket = (name: string) => `memory://${name}-${process.pid}-${++bucketSeq}/db`;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'engine-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function plugin(directory: string, extra: Record<string, unknown> = {}): BackupPlugin {
  return new BackupPlugin({ schedule: false, config: { directory }, encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, ...extra });
}

describe('full backup and restore', () => {
  it('restores an identical database: secrets, timestamps, partitions, every behavior, plugin state', async () => {
    const dir = path.join(work, 'exact');
    const source = await openDb(bucket('src'));
    await seedDatabase(source);
    const p = plugin(dir);
    await source.usePlugin(p);
    const before = await snapshot(source);
    const backup = await p.createBackup({ reason: 'test', metadata: { ticket: 'T-1' } });
    expect(backup.verified).toBe(true);
    expect(backup.objects).toBe(before.length);
    expect(backup.reason).toBe('test');
    expect(backup.metadata).toEqual({ ticket: 'T-1' });
    expect(backup.encrypted).toBe(true);

    const target = await openDb(bucket('dst'));
    const report = await p.restore({ backupId: backup.id, destination: target });
    expect(report.objectsWritten).toBe(before.length);
    expect(await snapshot(target)).toEqual(before);
    // The live target sees the restored resources without reconnecting, and decrypts secrets.
    const users = target.resources.users as { get(id: string): Promise<Record<string, unknown>>; count(): Promise<number> };
    const u = await users.get('u00003');
    expect(u.password).toBe('pw-3');
    expect(u.createdAt).toBe((await (source.resources.users as typeof users).get('u00003')).createdAt);
    expect(await users.count()).toBe(60);
    const byPlan = await (target.resources.users as unknown as { listIds(o: unknown): Promise<string[]> }).listIds({ partition: 'byPlan', partitionValues: { plan: 'pro' } });
    expect(byPlan).toHaveLength(20);
    await p.stop();
  });

  it("a database without a key prefix: keys with empty segments (s3db.js's CachePlugin writes 'plugin=cache/cache//...') are addressable, backed up and restored, without a warning", async () => {
    const url = `memory://noprefix-${process.pid}-${++bucketSeq}`;
    const source = await openDb(url);
    expect((source.client as { keyPrefix?: string }).keyPrefix ?? '').toBe('');
    await seedDatabase(source, { users: 2, orders: 2, perBehavior: 1 });
    for (const key of ['plugin=cache/cache//resource=users/action=get/u00001.json.gz', '/leading/slash']) {
      await source.client.putObject({ key, body: Buffer.from(`cached ${key}`), metadata: { kind: 'cache' } });
    }
    const warnings: string[] = [];
    const p = plugin(path.join(work, 'noprefix'), { logger: warnInto(warnings) });
    await source.usePlugin(p);
    const before = await snapshot(source);
    const backup = await p.createBackup();
    expect(backup.objects).toBe(before.length);
    expect(warnings.filter((w) => w.includes('cannot address'))).toEqual([]);
    const target = await openDb(`memory://noprefix-into-${process.pid}-${++bucketSeq}`);
    await p.restore({ backupId: backup.id, destination: target });
    expect(await snapshot(target)).toEqual(before);
    await p.stop();
  });

  it('restore modes: replace makes the resource exactly the backup, merge keeps others, skip only fills gaps', async () => {
    const dir = path.join(work, 'modes');
    const db = await openDb(bucket('modes'));
    await seedDatabase(db, { users: 10, orders: 10, perBehavior: 2 });
    const p = plugin(dir);
    await db.usePlugin(p);
    const original = await snapshot(db);
    const { id } = await p.createBackup();
    const users = db.resources.users as { update(id: string, v: unknown): Promise<unknown>; insert(v: unknown): Promise<unknown>; delete(id: string): Promise<unknown> };
    await users.update('u00001', { name: 'changed' });
    await users.insert({ id: 'extra1', name: 'Extra', email: 'e@x', password: 'p', plan: 'free' });
    await users.delete('u00002');
    const changed = await snapshot(db);

    // dry run: reports, writes nothing
    const dry = await p.restore({ backupId: id, mode: 'replace', dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect(dry.objectsWritten).toBe(0);
    const usersRow = dry.resources.find((r) => r.name === 'users')!;
    expect(usersRow.created).toBeGreaterThanOrEqual(2); // u00002 data + partition refs
    expect(usersRow.deleted).toBeGreaterThanOrEqual(2); // extra1 data + partition refs
    expect(await snapshot(db)).toEqual(changed);

    // skip: only missing keys are written (u00002 comes back, u00001 stays changed, extra1 stays),
    // and what it keeps that is not the backup's is said, the dry run's too (walk-30 F1)
    expect((await p.restore({ backupId: id, mode: 'skip', dryRun: true })).warnings).toContain(
      "mode 'skip' would keep 1 record written since the backup read it (users: 1: changed, damaged, or put back by a restore; their listing does not tell which); restore with mode 'replace' (or 'merge', which keeps records the backup lacks) to put the backup's versions back",
    );
    await p.restore({ backupId: id, mode: 'skip' });
    const afterSkip = await snapshot(db);
    expect(afterSkip.some((o) => o.key.includes('id=extra1'))).toBe(true);
    expect(afterSkip.some((o) => o.key === 'resource=users/data/id=u00002')).toBe(true);
    expect(afterSkip.find((o) => o.key === 'resource=users/data/id=u00001')).toEqual(changed.find((o) => o.key === 'resource=users/data/id=u00001'));

    // merge: backup objects overwrite, others stay
    await p.restore({ backupId: id, mode: 'merge' });
    const afterMerge = await snapshot(db);
    expect(afterMerge.find((o) => o.key === 'resource=users/data/id=u00001')).toEqual(original.find((o) => o.key === 'resource=users/data/id=u00001'));
    expect(afterMerge.some((o) => o.key.includes('id=extra1'))).toBe(true);

    // replace: exactly the backup
    const replaced = await p.restore(id, { mode: 'replace' });
    expect(replaced.objectsDeleted).toBeGreaterThanOrEqual(2);
    expect(await snapshot(db)).toEqual(original);
    await p.stop();
  });

  it('restores a subset of resources into another database, merging their definitions', async () => {
    const dir = path.join(work, 'subset');
    const db = await openDb(bucket('subset'));
    await seedDatabase(db, { users: 8, orders: 8, perBehavior: 2 });
    const p = plugin(dir);
    await db.usePlugin(p);
    const { id } = await p.createBackup();
    const target = await openDb(bucket('subset-dst'));
    const report = await p.restore({ backupId: id, destination: target, resources: ['orders'] });
    expect(report.restored).toEqual([{ name: 'orders', recordsRestored: 8, totalRecords: 8 }]);
    expect(Object.keys(target.resources)).toEqual(['orders']);
    const keys = (await snapshot(target)).map((o) => o.key);
    expect(keys.every((k) => k.startsWith('resource=orders/') || k === 's3db.json')).toBe(true);
    const source = (await snapshot(db)).filter((o) => o.key.startsWith('resource=orders/'));
    expect((await snapshot(target)).filter((o) => o.key.startsWith('resource=orders/'))).toEqual(source);
    // said before the chain is read to verify it (walk-30 F4: after, on a 500 GB chain hours later)
    const phases: string[] = [];
    p.on('plg:backup:progress', (e: { phase: string }) => phases.push(e.phase));
    await expect(p.restore({ backupId: id, resources: ['nope'] })).rejects.toMatchObject({ code: 'ERR_RESOURCE_NOT_IN_BACKUP', message: expect.stringMatching(/^Resource 'nope' does not exist in backup \S+; it has: '[^']+'(, '[^']+')*$/) });
    expect(phases).toEqual([]);
    await p.restore({ backupId: id, destination: target, resources: ['orders'] });
    expect(phases).toContain('verify'); // (the events this watches for)
    await p.stop();
  });

  it('selects resources with include/exclude and records per-resource counts in the manifest', async () => {
    const dir = path.join(work, 'select');
    const db = await openDb(bucket('select'));
    await seedDatabase(db, { users: 5, orders: 7, perBehavior: 1 });
    const p = plugin(dir, { exclude: ['orders'] });
    await db.usePlugin(p);
    const b = await p.createBackup();
    const full = await p.getBackup(b.id);
    expect(full!.manifest.resources.orders).toBeUndefined();
    expect(full!.manifest.resources.users!.records).toBe(5);
    expect(full!.manifest.resources[DATABASE_GROUP]!.objects).toBe(3); // s3db.json + 2 plugin objects
    const only = await p.createBackup({ resources: ['orders'] });
    expect(only.resources).toEqual(['orders']);
    expect(Object.keys((await p.getBackup(only.id))!.manifest.resources).sort()).toEqual([DATABASE_GROUP, 'orders']);
    expect((await p.listBackups({ resource: 'orders' })).map((x) => x.id)).toEqual([only.id]);
    await p.stop();
  });
});

describe('s3db.json and resources without records', () => {
  type Api = { insert(v: Record<string, unknown>): Promise<unknown>; count(): Promise<number> };

  it('a resource with no record at backup time is in the backup: a replace empties it, and it can be restored by name', async () => {
    const dir = path.join(work, 'empty-resource');
    const source = await openDb(bucket('empty-src'));
    const users = (await source.createResource({ name: 'users', attributes: { name: 'string' } })) as unknown as Api;
    await users.insert({ id: 'u1', name: 'one' });
    await source.createResource({ name: 'sessions', attributes: { token: 'string' } });
    const p = plugin(dir);
    await source.usePlugin(p);
    const before = await snapshot(source);
    const backup = await p.createBackup();
    expect((await p.getBackup(backup.id))!.manifest.resources.sessions).toMatchObject({ objects: 0, records: 0 });
    const sessions = source.resources.sessions as unknown as Api;
    await sessions.insert({ id: 's1', token: 'later' });
    const dry = await p.restore({ backupId: backup.id, dryRun: true });
    expect(dry.resources.find((r) => r.name === 'sessions')).toMatchObject({ objects: 0, deleted: 1 });
    await p.restore({ backupId: backup.id });
    expect(await snapshot(source)).toEqual(before);
    expect(await (source.resources.sessions as unknown as Api).count()).toBe(0);
    await (source.resources.sessions as unknown as Api).insert({ id: 's2', token: 'again' });
    const report = await p.restore({ backupId: backup.id, resources: ['sessions'], mode: 'replace' });
    expect(report.resources.map((r) => r.name)).toEqual(['sessions']);
    expect(await (source.resources.sessions as unknown as Api).count()).toBe(0);
    await p.stop();
  });

  it('a whole-database merge keeps the definitions of resources created after the backup; a skip into an empty database defines what it restored', async () => {
    const dir = path.join(work, 'merge-schema');
    const source = await openDb(bucket('merge-schema-src'));
    await seedDatabase(source, { users: 3, orders: 3, perBehavior: 1 });
    const p = plugin(dir);
    await source.usePlugin(p);
    const before = await snapshot(source);
    const backup = await p.createBackup();
    const defined = Object.keys(source.resources);
    const newer = (await source.createResource({ name: 'invoices', attributes: { amount: 'number' } })) as unknown as Api;
    await newer.insert({ id: 'i1', amount: 10 });
    const report = await p.restore({ backupId: backup.id, mode: 'merge' });
    expect(report.warnings).toEqual([]);
    expect(Object.keys(source.resources).sort()).toEqual([...defined, 'invoices'].sort());
    expect(Object.keys((JSON.parse(await readS3dbJson(source)) as { resources: object }).resources).sort()).toEqual([...defined, 'invoices'].sort());
    expect(await (source.resources.invoices as unknown as Api).count()).toBe(1);
    const empty = await openDb(bucket('merge-schema-skip'));
    expect((await p.restore({ backupId: backup.id, destination: empty, mode: 'skip' })).warnings.join(' ')).not.toContain("mode 'skip'"); // nothing there to keep
    expect(await snapshot(empty)).toEqual(before);
    // again: every record is there, and in another database the backup cannot tell whether they differ
    const again = await p.restore({ backupId: backup.id, destination: empty, mode: 'skip' });
    expect(again.warnings.join(' ')).toMatch(/^mode 'skip' kept \d+ records the database already holds \(.*; it is not the database the backup was taken from, so whether they differ from the backup's is not known\); restore with mode 'replace'/);
    expect(Object.keys(empty.resources).sort()).toEqual([...defined].sort());
    await p.stop();
  });
});

describe("the target's stored s3db.json", () => {
  type Api = { insert(v: Record<string, unknown>): Promise<unknown>; count(): Promise<number> };

  it('a whole-database merge keeps resources another process defined after this one connected', async () => {
    const url = bucket('other-process');
    const restorer = await openDb(url);
    const p = plugin(path.join(work, 'other-process'));
    await restorer.usePlugin(p);
    const app = await openDb(url);
    await (app.createResource({ name: 'users', attributes: { name: 'string' } }) as unknown as Promise<Api>).then((u) => u.insert({ id: 'u1', name: 'a' }));
    const backup = await p.createBackup();
    await (app.createResource({ name: 'invoices', attributes: { amount: 'number' } }) as unknown as Promise<Api>).then((i) => i.insert({ id: 'i1', amount: 1 }));
    expect(Object.keys(restorer.resources)).toEqual([]); // this process has not seen either
    const report = await p.restore({ backupId: backup.id, mode: 'merge' });
    expect(report.warnings).toEqual([]);
    const reader = await openDb(url);
    expect(Object.keys(reader.resources).sort()).toEqual(['invoices', 'users']);
    expect(await (reader.resources.invoices as unknown as Api).count()).toBe(1);
    await p.stop();
  });

  it('a corrupt s3db.json: a whole-database restore puts it back, partition lists right; a subset restore refuses before writing', async () => {
    const db = await openDb(bucket('corrupt-metadata'));
    await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
    const p = plugin(path.join(work, 'corrupt-metadata'));
    await db.usePlugin(p);
    const before = await snapshot(db);
    const backup = await p.createBackup();
    type Users = { update(id: string, v: object): Promise<unknown> };
    await (db.resources.users as unknown as Users).update('u00000', { plan: 'free' }); // was pro
    const moved = (keys: string[]) => keys.includes('resource=users/partition=byPlan/plan=free/id=u00000') && !keys.includes('resource=users/partition=byPlan/plan=pro/id=u00000');
    for (let i = 0; i < 100 && !moved((await snapshot(db)).map((o) => o.key)); i++) await new Promise((r) => setTimeout(r, 20)); // users has async partitions
    const damaged = await snapshot(db);
    expect(moved(damaged.map((o) => o.key))).toBe(true);
    await db.client.putObject({ key: 's3db.json', body: Buffer.from('{ not json'), contentType: 'application/json' });
    for (const mode of ['merge', 'replace'] as const) {
      await expect(p.restore({ backupId: backup.id, resources: ['users'], mode })).rejects.toMatchObject({
        code: 'ERR_TARGET_METADATA',
        message: expect.stringContaining("nothing was restored. A whole-database restore puts the backup's s3db.json back"),
      });
    }
    expect((await snapshot(db)).filter((o) => o.key !== 's3db.json')).toEqual(damaged.filter((o) => o.key !== 's3db.json'));
    await p.restore({ backupId: backup.id, mode: 'merge' });
    expect(await snapshot(db)).toEqual(before); // partition references included: u00000 listed under pro only
    await p.stop();
  });

  it('a restore destination given by connection string whose s3db.json is damaged is not opened (s3db.js would replace it with an empty one) unless the restore replaces the whole database', async () => {
    const db = await openDb(bucket('target-damaged-src'));
    await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
    const p = plugin(path.join(work, 'target-damaged'));
    await db.usePlugin(p);
    const backup = await p.createBackup();
    const targetUrl = bucket('target-damaged');
    const target = await openDb(targetUrl);
    await seedDatabase(target, { users: 2, orders: 2, perBehavior: 1 });
    const garbage = Buffer.from('{ "resources": { "users": { truncated');
    await target.client.putObject({ key: 's3db.json', body: garbage, contentType: 'application/json' });
    const untouched = await snapshot(target);
    for (const options of [{ dryRun: true }, { mode: 'merge' as const }, { resources: ['users'] }]) {
      await expect(p.restore({ backupId: backup.id, destination: targetUrl, ...options })).rejects.toMatchObject({
        code: 'ERR_TARGET_METADATA',
        message: expect.stringContaining("s3db.js would replace it with an empty one on connecting. Put its schema back first: write the newest backup's manifest.s3dbJson"),
      });
      expect(await snapshot(target)).toEqual(untouched); // no s3db.json.corrupted.* copy, the bytes as they were
    }
    await p.restore({ backupId: backup.id, destination: targetUrl });
    expect((await snapshot(target)).find((o) => o.key === 's3db.json')?.sha256).toBe((await snapshot(db)).find((o) => o.key === 's3db.json')?.sha256);
    await p.stop();
  });

  it("an s3db.json that parses but that s3db.js would empty or cut down on connecting (unreadable through the client, or of the wrong shape) is refused too, a dry run included; what s3db.js only stamps (no lastUpdated, no s3dbVersion) is not", async () => {
    const db = await openDb(bucket('shape-src'));
    await seedDatabase(db, { users: 2, orders: 2, perBehavior: 1 });
    const p = plugin(path.join(work, 'shape'));
    await db.usePlugin(p);
    const backup = await p.createBackup();
    const good = JSON.parse(await bodyText(db, 's3db.json')) as { resources: Record<string, { currentVersion: string; versions: Record<string, Record<string, unknown>> }> };
    const users = good.resources.users!;
    const damaged: Record<string, unknown> = {
      null: null,
      'an array': [],
      'resources an array': { ...good, resources: [] },
      'a resource without versions': { ...good, resources: { ...good.resources, users: { ...users, versions: {} } } },
      'a current version without attributes': { ...good, resources: { ...good.resources, users: { ...users, versions: { [users.currentVersion]: { ...users.versions[users.currentVersion], attributes: null } } } } },
      'a current version that is missing': { ...good, resources: { ...good.resources, users: { ...users, currentVersion: 'v9' } } },
    };
    for (const [what, value] of Object.entries(damaged)) {
      const url = bucket('shape-target');
      const target = await openDb(url);
      await seedDatabase(target, { users: 1, orders: 1, perBehavior: 1 });
      await target.client.putObject({ key: 's3db.json', body: Buffer.from(JSON.stringify(value)), contentType: 'application/json' });
      const untouched = await snapshot(target);
      // a dry run says so before it verifies the backup (which takes as long as reading it whole)
      const verifying: ProgressEvent[] = [];
      const onProgress = (e: ProgressEvent) => e.phase === 'verify' && verifying.push(e);
      p.on('plg:backup:progress', onProgress);
      await expect(p.restore({ backupId: backup.id, destination: url, dryRun: true }), what).rejects.toMatchObject({ code: 'ERR_TARGET_METADATA' });
      p.off('plg:backup:progress', onProgress);
      expect(verifying, what).toEqual([]);
      await expect(p.restore({ backupId: backup.id, destination: url, mode: 'merge' }), what).rejects.toMatchObject({ code: 'ERR_TARGET_METADATA' });
      expect(await snapshot(target), what).toEqual(untouched);
    }

    // file://: s3db.json whole, its .meta.json torn (a crash while s3db.js's file client wrote it)
    const dir = path.join(work, 'torn-meta-target');
    const fileDb = await openDb(`file://${dir}`);
    await seedDatabase(fileDb, { users: 1, orders: 1, perBehavior: 1 });
    await fileDb.disconnect();
    const { readdir } = await import('node:fs/promises');
    const sidecar = (await readdir(dir, { recursive: true })).find((f) => path.basename(String(f)).startsWith('s3db.json.meta'))!;
    const schemaFile = (await readdir(dir, { recursive: true })).find((f) => path.basename(String(f)) === 's3db.json')!;
    const schemaBefore = await readFile(path.join(dir, String(schemaFile)), 'utf8');
    await writeFile(path.join(dir, String(sidecar)), '{{garbage');
    await expect(p.restore({ backupId: backup.id, destination: `file://${dir}`, dryRun: true })).rejects.toMatchObject({ code: 'ERR_TARGET_METADATA', message: expect.stringContaining('s3db.json is there but could not be read') });
    expect(await readFile(path.join(dir, String(schemaFile)), 'utf8')).toBe(schemaBefore);

    // healthy, only missing what s3db.js adds without dropping anything: opened and restored into
    const stamped = bucket('shape-stamped');
    const plain = await openDb(stamped);
    const { lastUpdated: _l, s3dbVersion: _v, ...unstamped } = good as unknown as Record<string, unknown>;
    await plain.client.putObject({ key: 's3db.json', body: Buffer.from(JSON.stringify(unstamped)), contentType: 'application/json' });
    await p.restore({ backupId: backup.id, destination: stamped, mode: 'merge' });
    await p.stop();
  });

  it('stored headers come back as stored, "undefined" values included (s3db.js decodes them to undefined, which JSON would drop)', async () => {
    const srcDir = path.join(work, 'raw-headers-src');
    const dstDir = path.join(work, 'raw-headers-dst');
    const db = await openDb(`file://${srcDir}`);
    await db.createResource({ name: 'notes', behavior: 'body-overflow', attributes: { title: 'string', body: 'string|optional', tag: 'string|optional' } });
    const notes = db.resources.notes as unknown as { insert(v: object): Promise<unknown> };
    await notes.insert({ id: 'n1', title: 'with everything', body: 'text', tag: 'a' });
    await notes.insert({ id: 'n2', title: 'without the optional ones', body: undefined, tag: undefined });
    await notes.insert({ id: 'n3', title: 'null', tag: 'null' });
    const p = plugin(path.join(work, 'raw-headers-backups'));
    await db.usePlugin(p);
    const backup = await p.createBackup();
    await p.restore({ backupId: backup.id, destination: `file://${dstDir}` });
    // what s3db.js's file client stored: each object's .meta.json, read raw
    const { readdir } = await import('node:fs/promises');
    const headers = async (dir: string) => {
      const out: Record<string, unknown> = {};
      for (const f of (await readdir(dir, { recursive: true })).map(String).filter((f) => f.includes('resource=notes/data/') && f.endsWith('.meta.json'))) {
        out[f] = (JSON.parse(await readFile(path.join(dir, f), 'utf8')) as { metadata: unknown }).metadata;
      }
      return out;
    };
    const before = await headers(srcDir);
    expect(Object.keys(before)).toHaveLength(3);
    expect(JSON.stringify(before)).toContain('"undefined"'); // the case at hand is there
    expect(await headers(dstDir)).toEqual(before);
    await p.stop();
  });

  it("metadata another tool stored comes back byte for byte, values that look like s3db.js's encodings included (its client decodes and encodes them again: 'b:!!!' came back empty, 'constructor' as a function's source), through an incremental too", async () => {
    for (const kind of ['memory', 'file'] as const) {
      const at = (name: string) => (kind === 'memory' ? `memory://${name}-${process.pid}-${++bucketSeq}/db` : `file://${path.join(work, `${name}-${++bucketSeq}`)}`);
      const db = await openDb(at('foreign-meta-src'));
      await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
      // another tool writes straight to the store (past s3db.js's encoder), as it would with PutObject
      for (const [i, value] of STORED_VALUES.entries()) await putStored(db, `foreign/meta/o${i}`, { v: value, plain: 'x' });
      await putStored(db, 'foreign/meta/non-ascii', { v: 'ação 😀' });
      const p = plugin(path.join(work, `foreign-meta-backups-${kind}`));
      await db.usePlugin(p);
      const full = await p.createBackup();
      await putStored(db, 'foreign/meta/o0', { v: 'b:!!!', changed: 'u:%E9' });
      const incremental = await p.createBackup({ type: 'incremental' });
      expect(incremental.type).toBe('incremental');
      for (const backup of [full, incremental]) {
        const into = await openDb(at('foreign-meta-into'));
        const before = await storedMetadataOf(db);
        if (backup === full) before['foreign/meta/o0'] = { v: STORED_VALUES[0]!, plain: 'x' };
        await p.restore({ backupId: backup.id, destination: into });
        expect(await storedMetadataOf(into)).toEqual(before);
        await into.disconnect();
      }
      await p.stop();
      await db.disconnect();
    }
  }, 120_000);

  it('a restore into the backups\' own directory (or one inside it) is refused before anything is written there', async () => {
    const db = await openDb(bucket('overlap-src'));
    await seedDatabase(db, { users: 1, orders: 1, perBehavior: 1 });
    const dir = path.join(work, 'overlap-backups');
    const p = plugin(dir);
    await db.usePlugin(p);
    const backup = await p.createBackup();
    const { filesUnder } = await import('./helpers/files.js');
    const files = async () => (await filesUnder(dir)).filter((f) => !f.startsWith('verifications/')); // the restore's verification is recorded
    const before = await files();
    for (const into of [dir, path.join(dir, 'data')]) {
      await expect(p.restore({ backupId: backup.id, destination: `file://${into}` })).rejects.toMatchObject({
        code: 'ERR_INVALID_OPTION',
        message: expect.stringContaining('Restore into another database'),
      });
      expect(await files()).toEqual(before); // no s3db.json written there by connecting
    }
    await p.stop();
  });

  it('a dry run into a location with no database writes nothing there (no directory, no s3db.json) and says it would create one', async () => {
    const db = await openDb(bucket('dry-absent-src'));
    await seedDatabase(db, { users: 2, orders: 2, perBehavior: 1 });
    const p = plugin(path.join(work, 'dry-absent'));
    await db.usePlugin(p);
    const backup = await p.createBackup();
    // a database next to it: s3db.js's file client lists a missing directory's parent, its objects as '../sibling/...'
    const sibling = await openDb(`file://${path.join(work, 'sibling-db')}`);
    await seedDatabase(sibling, { users: 1, orders: 1, perBehavior: 1 });
    await sibling.disconnect();
    const typo = path.join(work, 'typo-target');
    // observed, not faked: s3db.js's file client lists a missing directory's parent, reading every
    // object's metadata there (a database of millions beside it); the dry run must not ask it to
    // (review-scale F4)
    const { FileSystemClient } = (await import('s3db.js')) as unknown as { FileSystemClient: { prototype: { listObjects: (...a: unknown[]) => Promise<unknown> } } };
    const listing = FileSystemClient.prototype.listObjects;
    const listed: string[] = [];
    FileSystemClient.prototype.listObjects = function (this: { basePath?: string }, ...a: unknown[]) {
      listed.push(String(this.basePath));
      return listing.apply(this, a);
    };
    const report = await p.restore({ backupId: backup.id, destination: `file://${typo}`, dryRun: true }).finally(() => {
      FileSystemClient.prototype.listObjects = listing;
    });
    expect(listed.filter((base) => base.startsWith(typo))).toEqual([]);
    const { existsSync } = await import('node:fs');
    expect(existsSync(typo)).toBe(false);
    expect(report.warnings).toEqual([expect.stringContaining('there is no database at')]);
    expect(report.resources.every((r) => r.deleted === 0 && r.overwritten === 0)).toBe(true);
    const users = report.resources.find((r) => r.name === 'users')!;
    expect(users).toMatchObject({ records: 2, overwritten: 0, deleted: 0 });
    expect(users.created).toBe(users.objects); // everything would be created
    // a database whose s3db.json alone was deleted: its objects are there, and the warning says so (review-runbook 7)
    const schemaLost = path.join(work, 'schema-lost');
    const lost = await openDb(`file://${schemaLost}`);
    await seedDatabase(lost, { users: 2, orders: 2, perBehavior: 1 });
    await lost.disconnect();
    await rm(path.join(schemaLost, 's3db.json'));
    const again = await p.restore({ backupId: backup.id, destination: `file://${schemaLost}`, dryRun: true });
    expect(again.warnings).toEqual([expect.stringMatching(new RegExp(`^there is no s3db.json at file://${schemaLost}, though it holds objects of the backup's resources \\(\\d+ of them would be overwritten, left as they are, kept or deleted\\): a database whose schema was lost`))]);
    // the restore does what its dry run said: s3db.js's connect() writing an empty s3db.json there
    // first does not turn the backup's "created" into "overwritten" (review-s3target F4)
    const done = await p.restore({ backupId: backup.id, destination: `file://${schemaLost}` });
    const counts = (r: typeof again) => r.resources.map(({ name, created, overwritten, skipped, deleted }) => ({ name, created, overwritten, skipped, deleted }));
    expect(counts(done)).toEqual(counts(again));
    expect(done.resources.find((r) => r.name === '_database')).toMatchObject({ created: 1 }); // s3db.json
    await p.stop();
  });

  it("a subset restore into a database whose s3db.json lost the other resources' definitions (s3db.js replaced a corrupt one) warns, naming them", async () => {
    const db = await openDb(bucket('healed-metadata'));
    await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
    const p = plugin(path.join(work, 'healed-metadata'));
    await db.usePlugin(p);
    const backup = await p.createBackup();
    const json = JSON.parse((await bodyText(db, 's3db.json'))) as { resources: Record<string, unknown> };
    await db.client.putObject({ key: 's3db.json', body: Buffer.from(JSON.stringify({ ...json, resources: {} })), contentType: 'application/json' });
    const report = await p.restore({ backupId: backup.id, resources: ['users'], mode: 'replace' });
    expect(report.warnings).toContainEqual(expect.stringMatching(/does not define 'b_body_only', .*'orders'.*Restore them too/));
    expect(report.warnings.join(' ')).not.toContain("'users'");
    await p.stop();
  });
});

describe('large objects', () => {
  it('a backup reads at most FETCH_WINDOW_BYTES of bodies ahead (by listed size), and a restore writes at most WRITE_WINDOW_BYTES at once, not `concurrency` whole objects', async () => {
    const db = await openDb(bucket('large-objects'));
    const size = 8 * 1024 * 1024;
    for (let i = 0; i < 12; i++) await db.client.putObject({ key: `resource=blobs/data/id=${i}`, body: Buffer.alloc(size, i), metadata: {} });
    // Count the object reads in flight, each given 20 ms of latency as S3 has (memory:// answers at once).
    let inFlight = 0;
    let peak = 0;
    hookStore(db, {
      get: async (key, read) => {
        if (key.startsWith('resource=blobs/')) peak = Math.max(peak, ++inFlight);
        try {
          await new Promise((r) => setTimeout(r, 20));
          return await read();
        } finally {
          if (key.startsWith('resource=blobs/')) inFlight--;
        }
      },
    });
    const p = plugin(path.join(work, 'large-objects'), { concurrency: 64, compression: 'none' });
    await db.usePlugin(p);
    const b = await p.createBackup();
    expect(b.objects).toBeGreaterThanOrEqual(12);
    expect(peak).toBeLessThanOrEqual(FETCH_WINDOW_BYTES / size);
    expect(peak).toBeGreaterThan(1);
    // and a restore writes at most WRITE_WINDOW_BYTES of them at once, not `concurrency` whole objects
    const into = await openDb(bucket('large-objects-into'));
    let writing = 0;
    let most = 0;
    hookStore(into, {
      put: async (key, write) => {
        if (key.startsWith('resource=blobs/')) most = Math.max(most, ++writing);
        try {
          await new Promise((r) => setTimeout(r, 300)); // a slow store: the reads get ahead of the writes
          return await write();
        } finally {
          if (key.startsWith('resource=blobs/')) writing--;
        }
      },
    });
    await p.restore({ backupId: b.id, destination: into });
    expect(most).toBeLessThanOrEqual(WRITE_WINDOW_BYTES / size);
    expect(most).toBeGreaterThan(1);
    expect((await snapshot(into)).filter((o) => o.key.startsWith('resource=blobs/'))).toEqual((await snapshot(db)).filter((o) => o.key.startsWith('resource=blobs/')));
    await p.stop();
  });
});

describe('backups of many parts', () => {
  it('list their parts in the pending marker ahead, a few writes in all, not a rewrite of the whole marker per part', async () => {
    const { randomBytes } = await import('node:crypto');
    const db = await openDb(bucket('many-parts'));
    for (let i = 0; i < 300; i++) await db.client.putObject({ key: `resource=blobs/data/id=${String(i).padStart(4, '0')}`, body: randomBytes(2048), metadata: {} });
    const p = plugin(path.join(work, 'many-parts'), { partSize: 4096, compression: 'none' });
    await db.usePlugin(p);
    // Count the marker writes (observation only).
    const member = (p as unknown as { destinations: { members: { write(path: string, body: unknown, o?: unknown): Promise<unknown> }[] } }).destinations.members[0]!;
    const write = member.write.bind(member);
    let markerWrites = 0;
    let listed = new Set<string>();
    const unlisted: string[] = [];
    member.write = async (file: string, body: unknown, o?: unknown) => {
      if (file.startsWith('pending/') && file.endsWith('.json') && Buffer.isBuffer(body)) {
        markerWrites++;
        listed = new Set((JSON.parse(body.toString('utf8')) as { parts: string[] }).parts);
      } else if (file.startsWith('data/') && !listed.has(file)) unlisted.push(file); // a crash now would leave it behind
      return write(file, body, o);
    };
    const b = await p.createBackup();
    const manifest = (await p.getBackup(b.id))!.manifest;
    expect(manifest.parts.length).toBeGreaterThan(100);
    expect(unlisted).toEqual([]);
    expect(markerWrites).toBeLessThan(20);
    await p.stop();
  });

  it('and of many resources with a part each: about one listed path per part, not 256 per resource', async () => {
    const db = await openDb(bucket('many-resources'));
    for (let r = 0; r < 40; r++) await db.client.putObject({ key: `resource=r${String(r).padStart(3, '0')}/data/id=1`, body: Buffer.from('x'), metadata: {} });
    const p = plugin(path.join(work, 'many-resources'), { compression: 'none' });
    await db.usePlugin(p);
    const member = (p as unknown as { destinations: { members: { write(path: string, body: unknown, o?: unknown): Promise<unknown> }[] } }).destinations.members[0]!;
    const write = member.write.bind(member);
    let listedPaths = 0;
    member.write = async (file: string, body: unknown, o?: unknown) => {
      if (file.startsWith('pending/') && Buffer.isBuffer(body)) listedPaths = (JSON.parse(body.toString('utf8')) as { parts: string[] }).parts.length;
      return write(file, body, o);
    };
    const b = await p.createBackup();
    const parts = (await p.getBackup(b.id))!.manifest.parts.length;
    expect(parts).toBeGreaterThanOrEqual(40);
    expect(listedPaths).toBeLessThanOrEqual(parts + 2); // + the manifest copy, + a reservation of the last group
    await p.stop();
  });
});

describe('restoring a long chain', () => {
  it("reads each chain member's part 2 x 1 MiB ahead (a part of every member is open at once), and restores exactly", async () => {
    const { randomBytes } = await import('node:crypto');
    const db = await openDb(bucket('chain-read-ahead'));
    const put = (i: number) => db.client.putObject({ key: `resource=blobs/data/id=${String(i).padStart(3, '0')}`, body: randomBytes(1024 * 1024), metadata: {} });
    for (let i = 0; i < 12; i++) await put(i);
    const p = plugin(path.join(work, 'chain-read-ahead'), { compression: 'none', type: 'incremental', partSize: 64 * 1024 * 1024 });
    await db.usePlugin(p);
    await p.createBackup({ type: 'full' });
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 12; i++) await put(i); // every object changes: each incremental's part is ~12 MiB
      await p.createBackup({ type: 'incremental' });
    }
    const newest = (await p.listBackups())[0]!;
    expect(newest.type).toBe('incremental');
    const expected = await snapshot(db);
    // Count each part's ranged reads in flight (observation only).
    const member = (p as unknown as { destinations: { members: { read(path: string, range?: { start: number; end: number }): Promise<NodeJS.ReadableStream> }[] } }).destinations.members[0]!;
    const read = member.read.bind(member);
    const inFlight = new Map<string, number>();
    let peakPerPart = 0;
    let largestRange = 0;
    member.read = async (file: string, range?: { start: number; end: number }) => {
      const stream = await read(file, range);
      if (!range || !file.startsWith('data/')) return stream;
      largestRange = Math.max(largestRange, range.end - range.start + 1);
      inFlight.set(file, (inFlight.get(file) ?? 0) + 1);
      peakPerPart = Math.max(peakPerPart, inFlight.get(file)!);
      stream.on('end', () => inFlight.set(file, inFlight.get(file)! - 1));
      return stream;
    };
    await db.client.deleteObject('resource=blobs/data/id=000');
    await p.restore({ backupId: newest.id, verify: false });
    expect(largestRange).toBe(CHAIN_READ_AHEAD.rangeSize);
    expect(CHAIN_READ_AHEAD).toMatchObject({ rangeSize: 1024 * 1024, concurrency: 2, decoderThreads: 1 });
    expect(peakPerPart).toBeLessThanOrEqual(2);
    expect(await snapshot(db)).toEqual(expected);
    await p.stop();
  });
});

describe("backups taken after s3db.js replaced a corrupt s3db.json with an empty one (the story's 3 AM)", () => {
  it('say so, keep retention from removing the backups that still define the resources, and warn at restore; the advised way back restores the newest data readable', async () => {
    const url = bucket('healed-backups');
    const dir = path.join(work, 'healed-backups');
    const warnings: string[] = [];
    const options = { retention: { policy: 'simple', count: 2 }, logger: warnInto(warnings) };
    const app = await openDb(url);
    await seedDatabase(app, { users: 4, orders: 4, perBehavior: 1 });
    const p = plugin(dir, options);
    await app.usePlugin(p);
    const good = await p.createBackup();
    // s3db.json is damaged; the application restarts and s3db.js heals it to an empty definition list
    await app.client.putObject({ key: 's3db.json', body: Buffer.from('{ "resources": { garbage'), contentType: 'application/json' });
    await p.stop();
    const restarted = await openDb(url);
    expect(JSON.parse(await bodyText(restarted, 's3db.json')).resources).toEqual({}); // what s3db.js did
    type Users = { insert(v: Record<string, unknown>): Promise<unknown>; get(id: string): Promise<Record<string, unknown>> };
    await (app.resources.users as unknown as Users).insert({ id: 'u-late', name: 'written after the damage', email: 'late@example.com', password: 'pw-late', plan: 'pro' });
    const q = plugin(dir, options);
    await restarted.usePlugin(q);
    const after = [await q.createBackup(), await q.createBackup(), await q.createBackup()];
    expect(warnings.filter((w) => /holds objects of .*'users'.* but not their definitions/.test(w))).toHaveLength(3);
    expect(warnings.some((w) => w.includes(`backup ${good.id} is the newest that defines them`))).toBe(true);
    const listed = await q.listBackups();
    expect(listed.find((b) => b.id === good.id)?.undefinedResources).toEqual([]);
    expect(listed.find((b) => b.id === after[2]!.id)?.undefinedResources).toEqual(expect.arrayContaining(['users', 'orders']));
    expect(listed.map((b) => b.id)).toContain(good.id); // count: 2 would have removed it: the three newer ones "passed"

    // Restoring the newest alone says what it lacks
    const scratch = await openDb(bucket('healed-scratch'));
    const r = plugin(dir);
    await scratch.usePlugin(r);
    const report = await r.restore({ backupId: after[2]!.id, dryRun: true });
    expect(report.warnings).toContainEqual(expect.stringMatching(/holds objects of .*'users'.* but not their definitions/));
    // The way back the warning gives: the whole database from the backup that defines them, then
    // the newest with mode 'merge': the late record is there and readable.
    await r.restore({ backupId: good.id, mode: 'replace' });
    const merged = await r.restore({ backupId: after[2]!.id, mode: 'merge' });
    expect(merged.warnings.join(' ')).not.toContain('but not their definitions');
    const reader = await openDb(scratch.connectionString as string);
    expect((await (reader.resources.users as unknown as Users).get('u-late')).name).toBe('written after the damage');
    await q.stop();
    await r.stop();
  });
});

async function bodyText(db: { client: { getObject(key: string): Promise<unknown> } }, key: string): Promise<string> {
  const object = (await db.client.getObject(key)) as { Body: { transformToString(): Promise<string> } };
  return object.Body.transformToString();
}

describe('schema versions created after the backup', () => {
  type Api = { insert(v: Record<string, unknown>): Promise<unknown>; get(id: string): Promise<Record<string, unknown>> };

  for (const variant of ['whole database', 'resource subset'] as const) {
    it(`a merge restore (${variant}) keeps records written under a newer schema version readable`, async () => {
      const dir = path.join(work, `versions-${variant.replace(' ', '-')}`);
      const connection = bucket('versions');
      const db = await openDb(connection);
      await db.createResource({ name: 'users', attributes: { name: 'string' } });
      await (db.resources.users as unknown as Api).insert({ id: 'u1', name: 'a' });
      const p = plugin(dir);
      await db.usePlugin(p);
      const backup = await p.backup('full');
      await db.createResource({ name: 'users', attributes: { name: 'string', country: 'string|optional' } }); // v2
      await (db.resources.users as unknown as Api).insert({ id: 'u2', name: 'b', country: 'PT' });
      await p.restore(backup.id, variant === 'whole database' ? {} : { resources: ['users'], mode: 'merge' });
      const after = await (db.resources.users as unknown as Api).get('u2');
      expect({ country: after.country, name: after.name }).toEqual({ country: 'PT', name: 'b' });
      const reopened = await openDb(connection); // as the application sees it after a reconnect
      expect((await (reopened.resources.users as unknown as Api).get('u2')).country).toBe('PT');
      expect(Object.keys((JSON.parse(await readS3dbJson(db)) as { resources: { users: { versions: object } } }).resources.users.versions).sort()).toEqual(['v1', 'v2']);
      expect((await (db.resources.users as unknown as Api).get('u1')).name).toBe('a');
      await p.stop();
    });
  }
});

describe('subset replace into a database whose schema diverged', () => {
  type Api = { insert(v: Record<string, unknown>): Promise<unknown>; get(id: string): Promise<Record<string, unknown>>; count(): Promise<number> };

  it("takes the backup's definition: every record of the resource is the backup's, and reads right", async () => {
    const prod = await openDb(bucket('diverged-prod'));
    await prod.createResource({ name: 'users', attributes: { name: 'string', email: 'string' } });
    await (prod.resources.users as unknown as Api).insert({ id: 'u1', name: 'a', email: 'a@x' });
    const p = plugin(path.join(work, 'diverged'));
    await prod.usePlugin(p);
    const backup = await p.createBackup();
    // staging: the same resource name, at a newer version with another attribute
    const staging = await openDb(bucket('diverged-staging'));
    await staging.createResource({ name: 'users', attributes: { name: 'string' } });
    await staging.createResource({ name: 'users', attributes: { name: 'string', phone: 'string|optional' } });
    await (staging.resources.users as unknown as Api).insert({ id: 's1', name: 's', phone: '555' });
    await p.restore({ backupId: backup.id, destination: staging, resources: ['users'], mode: 'replace' });
    const users = staging.resources.users as unknown as Api;
    expect(await users.count()).toBe(1);
    const u1 = await users.get('u1');
    expect({ name: u1.name, email: u1.email }).toEqual({ name: 'a', email: 'a@x' });
    await p.stop();
  });
});

describe('restoring into the live database', () => {
  type Hooked = { insert(v: Record<string, unknown>): Promise<unknown>; get(id: string): Promise<Record<string, unknown>>; addHook(event: string, fn: (d: Record<string, unknown>) => unknown): void };

  it('resources whose definition the restore leaves unchanged keep their objects and hooks; rebuilt ones are named in warnings', async () => {
    const dir = path.join(work, 'hooks');
    const db = await openDb(bucket('hooks'));
    const users = (await db.createResource({ name: 'users', attributes: { name: 'string' } })) as unknown as Hooked;
    const orders = (await db.createResource({ name: 'orders', attributes: { total: 'number' } })) as unknown as Hooked;
    users.addHook('beforeInsert', (data) => ({ ...data, name: String(data.name).toUpperCase() }));
    await users.insert({ id: 'u1', name: 'alice' });
    await orders.insert({ id: 'o1', total: 1 });
    const p = plugin(dir);
    await db.usePlugin(p);
    const backup = await p.createBackup();
    const subset = await p.restore({ backupId: backup.id, resources: ['orders'], mode: 'merge' });
    const whole = await p.restore({ backupId: backup.id, mode: 'replace' });
    expect(db.resources.users).toBe(users);
    expect(db.resources.orders).toBe(orders);
    expect([...subset.warnings, ...whole.warnings]).toEqual([]);
    await (db.resources.users as unknown as Hooked).insert({ id: 'u2', name: 'bob' });
    expect((await users.get('u2')).name).toBe('BOB'); // the hook still runs
    // A backup from before a schema change: restoring it changes the definition, and says so.
    await db.createResource({ name: 'orders', attributes: { total: 'number', note: 'string|optional' } });
    const changed = await p.restore({ backupId: backup.id, mode: 'replace' });
    expect(changed.warnings).toEqual([expect.stringContaining('the restore changed the definition of orders')]);
    await p.stop();
  });
});

describe("restoring behind s3db.js's CachePlugin", () => {
  type Api = { insert(v: object): Promise<unknown>; update(id: string, v: object): Promise<unknown>; get(id: string): Promise<{ name: string }>; list(): Promise<{ name: string }[]> };

  /** A database behind CachePlugin: users `ids` named 'original', backed up; then u1 renamed 'bad-deploy' and read (so cached). */
  async function cachedAfterBackup(name: string, ids: string[]) {
    const { CachePlugin } = (await import('s3db.js')) as unknown as { CachePlugin: new (o: object) => object };
    const db = await openDb(bucket(name));
    await db.usePlugin(new CachePlugin({ driver: 'memory', ttl: 3_600_000 }) as never);
    const users = (await db.createResource({ name: 'users', attributes: { name: 'string' } })) as unknown as Api;
    for (const id of ids) await users.insert({ id, name: 'original' });
    const p = plugin(path.join(work, name));
    await db.usePlugin(p);
    const backup = await p.createBackup();
    await users.update('u1', { name: 'bad-deploy' });
    expect((await users.get('u1')).name).toBe('bad-deploy'); // now cached
    expect((await users.list()).map((r) => r.name)).toEqual(['bad-deploy', ...ids.slice(1).map(() => 'original')]);
    return { db, p, backup };
  }

  it('a restore into the live database clears the cache of the restored resources: reads return the restored data', async () => {
    const { db, p, backup } = await cachedAfterBackup('cached', ['u1']);
    await p.restore({ backupId: backup.id, mode: 'replace' });
    expect((await (db.resources.users as unknown as Api).get('u1')).name).toBe('original');
    expect((await (db.resources.users as unknown as Api).list()).map((r) => r.name)).toEqual(['original']);
    await p.stop();
  });

  it('a restore that fails midway clears the cache too: reads show what was restored so far', async () => {
    const { db, p, backup } = await cachedAfterBackup('cached-fail', ['u1', 'u2']);
    const repair = failWritesOf(db, 'resource=users/data/id=u2'); // fault injection: writing u2 fails, after u1
    await expect(p.restore({ backupId: backup.id, mode: 'replace' })).rejects.toMatchObject({ code: 'ERR_TARGET_WRITE' });
    repair();
    expect((await (db.resources.users as unknown as Api).list()).map((r) => r.name)).toEqual(['original', 'original']);
    expect((await (db.resources.users as unknown as Api).get('u1')).name).toBe('original');
    await p.stop();
  });
});

describe('a restore that fails', () => {
  it('reports the failure only once the writes it had in flight have landed or failed (review-runbook 5)', async () => {
    const db = await openDb(bucket('inflight'));
    await seedDatabase(db, { users: 40, orders: 40, perBehavior: 2 });
    const p = plugin(path.join(work, 'inflight'), { concurrency: 16 });
    await db.usePlugin(p);
    const b = await p.createBackup();
    const into = await openDb(bucket('inflight-into'));
    // Fault injection (a real store cannot be made to fail on demand): every write is slow, and
    // the fifth fails at once while others are still being written.
    let started = 0;
    let pending = 0;
    let pendingAtFailure = 0;
    hookStore(into, {
      put: async (key, write) => {
        if (!key.startsWith('resource=')) return write();
        if (++started === 5) {
          pendingAtFailure = pending;
          throw new Error(`injected: connection reset writing ${key}`);
        }
        pending++;
        try {
          await new Promise((r) => setTimeout(r, 150));
          return await write();
        } finally {
          pending--;
        }
      },
    });
    const failed = await p.restore({ backupId: b.id, destination: into }).then(() => null, (e: unknown) => e as Error & { code: string });
    expect(failed?.code).toBe('ERR_TARGET_WRITE');
    expect(pendingAtFailure).toBeGreaterThan(0); // others were in flight when the write failed
    expect(pending).toBe(0); // and none is still writing once the caller is told
    await p.stop();
  });
});

async function readS3dbJson(db: Awaited<ReturnType<typeof openDb>>): Promise<string> {
  const res = await db.client.getObject('s3db.json');
  const chunks: Buffer[] = [];
  for await (const c of res.Body as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString('utf8');
}

describe('the 3 AM story, in a separate process against an empty database', () => {
  it('a new process lists and restores with nothing but the destination and the passphrase', async () => {
    const dir = path.join(work, 'story-backups');
    const srcDir = path.join(work, 'story-src');
    const source = await openDb(`file://${srcDir}`);
    await seedDatabase(source, { users: 30, orders: 30, perBehavior: 3 });
    const p = plugin(dir);
    await source.usePlugin(p);
    const backup = await p.createBackup({ type: 'full', reason: 'Before major deployment' });
    const expected = await snapshot(source);
    await p.stop();
    await source.disconnect();

    const dstDir = path.join(work, 'story-dst');
    const out = path.join(work, 'story-snapshot.json');
    const script = path.join(work, 'story-restore.mts');
    await writeFile(
      script,
      `import { BackupPlugin } from ${JSON.stringify(path.resolve('src/index.ts'))};
       import { openDb, snapshot } from ${JSON.stringify(path.resolve('__test__/helpers/database.ts'))};
       import { writeFile } from 'node:fs/promises';
       try {
       const db = await openDb(${JSON.stringify(`file://${dstDir}`)});
       const plugin = new BackupPlugin({ schedule: false, config: { directory: ${JSON.stringify(dir)} }, encryption: { passphrase: ${JSON.stringify(PASSPHRASE)} } });
       await db.usePlugin(plugin);
       const backups = await plugin.listBackups({ limit: 24 });
       const good = backups.find((b) => b.verified === true);
       await plugin.restore({ backupId: good.id, destination: 'production', verify: true });
       const users = db.resources.users;
       const count = await users.count();
       const u = await users.get('u00007');
       await writeFile(${JSON.stringify(out)}, JSON.stringify({ id: good.id, count, password: u.password, snapshot: await snapshot(db) }));
       await plugin.stop();
       process.exit(0);
       } catch (err) { process.stderr.write(String(err?.stack ?? err)); process.exit(3); }`,
    );
    await run(process.execPath, ['--import', 'tsx', script], { cwd: path.resolve('.'), timeout: 120_000 }).catch((err: { stderr?: string }) => {
      throw new Error(`restore process failed: ${err.stderr ?? String(err)}`);
    });
    const result = JSON.parse(await readFile(out, 'utf8')) as { id: string; count: number; password: string; snapshot: ObjectSnapshot[] };
    expect(result.id).toBe(backup.id);
    expect(result.count).toBe(30);
    expect(result.password).toBe('pw-7');
    expect(result.snapshot).toEqual(expected);
  });
});
