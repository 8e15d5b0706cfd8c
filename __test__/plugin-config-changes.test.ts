// A deployment's configuration changes between runs (review-config, session 14), on the real
// s3db.js (memory://) with real filesystem destinations:
// - destinations listed in another order by a newer instance (a rolling deploy) share the lease
//   with the older one, and an incremental whose chain was deleted meanwhile is never committed;
// - encryption turned on, and the key rotated, start a full backup instead of building on the
//   plaintext parent or failing every incremental with "wrong passphrase";
// - a second database given the same destination (a copied configuration) never chains onto the
//   first one's backups nor takes their retention slots, and is said loudly.
import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin, type BackupPluginOptions } from '../src/index.js';
import { FilesystemDestination } from '../src/destinations/filesystem.js';
import { LeaseGroup } from '../src/lease/group.js';
import { openDb, seededCopies, snapshot } from './helpers/database.js';
import { warnInto } from './helpers/logger.js';
import { runChildScript } from './helpers/child.js';

const SMALL = { users: 5, orders: 5, perBehavior: 1 };
let work: string;
let seq = 0;
const bucket = (name: string) => `memory://cfg-${name}-${process.pid}-${++seq}/db`;
const copySeeded = seededCopies(SMALL, () => bucket('template'));

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'plugin-config-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});


function plugin(extra: BackupPluginOptions): BackupPlugin {
  return new BackupPlugin({ schedule: false, lease: { ttlMs: 5_000 }, ...extra });
}

describe('destinations reordered or added by a newer instance', () => {
  it('the lease is taken at every destination in the order of their labels: [A, B] and [B, A] exclude each other, and so do [A] and [B, A]', async () => {
    const a = new FilesystemDestination({ directory: path.join(work, 'lease-A') });
    const b = new FilesystemDestination({ directory: path.join(work, 'lease-B') });
    const old = new LeaseGroup([a, b], { ttlMs: 5_000 });
    const reordered = new LeaseGroup([b, a], { ttlMs: 5_000 });
    const grown = new LeaseGroup([b, a], { ttlMs: 5_000 });
    const single = new LeaseGroup([a], { ttlMs: 5_000 });
    expect((await old.acquire('old-instance', 5_000)).acquired).toBe(true);
    expect(await reordered.acquire('new-instance', 5_000)).toMatchObject({ acquired: false, reason: 'held' });
    await old.release();
    expect((await single.acquire('single', 5_000)).acquired).toBe(true);
    expect(await grown.acquire('grown', 5_000)).toMatchObject({ acquired: false, reason: 'held' });
    // giving up after contention left nothing held at B: the old instance gets both at once
    await single.release();
    expect((await old.acquire('old-instance', 5_000)).acquired).toBe(true);
    await old.release();
  });

  it('an incremental whose chain another instance deleted while it ran is not committed (ERR_CHAIN_BROKEN); the next backup is a full', async () => {
    // Lease off: nothing keeps the two instances apart, as with instances that share no
    // destination that answers. The deletion is placed while Y reads the database by holding
    // Y's listing (a delay wrapper: the interleaving cannot be produced on demand otherwise).
    const dir = path.join(work, 'chain-gone');
    const conn = bucket('chain-gone');
    const dbX = await copySeeded(conn);
    const X = plugin({ config: { directory: dir }, lease: false });
    await dbX.usePlugin(X);
    const full = await X.createBackup({ type: 'full' });
    const dbY = await openDb(conn);
    const Y = plugin({ config: { directory: dir }, lease: false });
    await dbY.usePlugin(Y, 'y');
    const list = dbY.client.listObjects.bind(dbY.client);
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    let listing: () => void = () => undefined;
    const listed = new Promise<void>((r) => (listing = r));
    dbY.client.listObjects = (async (...args: Parameters<typeof list>) => {
      listing();
      await held;
      return list(...args);
    }) as typeof dbY.client.listObjects;
    const running = Y.createBackup({ type: 'incremental' }).then(
      () => null,
      (err: { code?: string; message: string }) => err,
    );
    await listed;
    await X.deleteBackup(full.id, { force: true });
    release();
    const err = await running;
    expect(err).toMatchObject({ code: 'ERR_CHAIN_BROKEN' });
    expect(err!.message).toContain(`${full.id}, a backup of the chain it builds on, was deleted`);
    dbY.client.listObjects = list;
    expect(await Y.listBackups()).toEqual([]);
    const next = await Y.createBackup({ type: 'incremental' });
    expect(next.type).toBe('full');
    const target = await openDb(bucket('chain-gone-restored'));
    await Y.restore({ backupId: next.id, destination: target });
    expect(await snapshot(target)).toEqual(await snapshot(dbY));
  }, 60_000);
});

describe('encryption changed between backups', () => {
  it('encryption turned on: the next backup is a full, not an incremental on the plaintext full (logged)', async () => {
    const dir = path.join(work, 'enc-on');
    const db = await copySeeded(bucket('enc-on'));
    const plain = plugin({ config: { directory: dir } });
    await db.usePlugin(plain);
    await plain.createBackup({ type: 'full' });
    await plain.uninstall();
    const warnings: string[] = [];
    const encrypted = plugin({ config: { directory: dir }, encryption: { passphrase: 'now-encrypted-1' }, logger: warnInto(warnings) });
    await db.usePlugin(encrypted, 'encrypted');
    const next = await encrypted.createBackup({ type: 'incremental' });
    expect(next.type).toBe('full');
    expect(warnings.some((w) => w.includes('is not encrypted and encryption is now on'))).toBe(true);
    expect((await encrypted.getBackup(next.id))!.manifest.chain).toEqual([next.id]);
  }, 60_000);

  it('the key rotated (key.json moved away, a new passphrase): incrementals start a full under the new key instead of failing', async () => {
    const dir = path.join(work, 'rotated');
    const db = await copySeeded(bucket('rotated'));
    const before = plugin({ config: { directory: dir }, encryption: { passphrase: 'old-passphrase-1' } });
    await db.usePlugin(before);
    const oldFull = await before.createBackup({ type: 'full' });
    await before.createBackup({ type: 'incremental' });
    await before.uninstall();
    await rename(path.join(dir, 'key.json'), path.join(work, 'rotated-old-key.json'));
    const warnings: string[] = [];
    const after = plugin({ config: { directory: dir }, encryption: { passphrase: 'new-passphrase-2' }, logger: warnInto(warnings) });
    await db.usePlugin(after, 'after');
    const first = await after.createBackup({ type: 'incremental' });
    expect(first.type).toBe('full');
    expect(warnings.some((w) => w.includes('the key was rotated'))).toBe(true);
    const second = await after.createBackup({ type: 'incremental' });
    expect(second.type).toBe('incremental');
    const m = (await after.getBackup(second.id))!.manifest;
    expect(m.chain).toEqual([first.id, second.id]);
    // under the new master key: not the old full's (read from its manifest file, which needs no passphrase)
    const oldKeyCheck = (JSON.parse(await readFile(path.join(dir, 'manifests', `${oldFull.id}.json`), 'utf8')) as { encryption: { keyCheck: string } }).encryption.keyCheck;
    expect(typeof oldKeyCheck).toBe('string');
    expect(m.encryption!.keyCheck).not.toBe(oldKeyCheck);
    const target = await openDb(bucket('rotated-restored'));
    await after.restore({ backupId: second.id, destination: target });
    expect(await snapshot(target)).toEqual(await snapshot(db));
  }, 60_000);

  it('rewrapped A -> B, an incremental with B, then the key rotated to C: the incremental restores with B, the passphrase it was made with, though its full was made with A', async () => {
    const dir = path.join(work, 'rewrap-then-rotate');
    const db = await copySeeded(bucket('rewrap-then-rotate'));
    const withA = plugin({ config: { directory: dir }, encryption: { passphrase: 'passphrase-A-1', iterations: 100_000 } });
    await db.usePlugin(withA);
    const full = await withA.createBackup({ type: 'full' });
    await withA.uninstall();
    const { rewrapAll } = await import('../src/cli/rewrap.js');
    await rewrapAll(plugin({ config: { directory: dir }, encryption: { passphrase: 'passphrase-A-1', iterations: 100_000 } }), 'passphrase-A-1', 'passphrase-B-2');
    const withB = plugin({ config: { directory: dir }, encryption: { passphrase: 'passphrase-B-2', iterations: 100_000 } });
    await db.usePlugin(withB, 'withB');
    await db.resources.users!.insert({ id: 'after-rewrap', name: 'R', email: 'r@example.com', password: 'pw', plan: 'free' });
    const incremental = await withB.createBackup({ type: 'incremental' });
    expect(incremental.type).toBe('incremental');
    const want = await snapshot(db);
    await withB.uninstall();
    // runbook step 6: the key rotated (key.json moved away, passphrase C)
    await rename(path.join(dir, 'key.json'), path.join(work, 'rewrap-then-rotate-key.json'));
    const withC = plugin({ config: { directory: dir }, encryption: { passphrase: 'passphrase-C-3', iterations: 100_000 } });
    await db.usePlugin(withC, 'withC');
    await withC.createBackup({ type: 'full' });
    await withC.uninstall();

    const restorer = plugin({ config: { directory: dir }, encryption: { passphrase: 'passphrase-B-2', iterations: 100_000 } });
    const target = await openDb(bucket('rewrap-then-rotate-restored'));
    await target.usePlugin(restorer);
    await restorer.restore({ backupId: incremental.id, destination: target });
    expect(await snapshot(target)).toEqual(want);
    expect((await restorer.verifyBackup(full.id, { level: 'full' })).verified).toBe(true); // the full alone opens with B too
    await restorer.uninstall();
  }, 60_000);
});

describe('two databases pointed at one destination (a configuration copied from another environment)', () => {
  it("staging's backups never build on production's, retention counts each database apart, listings say which is which, and restoring the other's backup warns", async () => {
    const dir = path.join(work, 'two-dbs');
    const options = { config: { directory: dir }, type: 'incremental' as const, retention: { count: 2 } };
    const prodDb = await copySeeded(bucket('prod'));
    const prod = plugin(options);
    await prodDb.usePlugin(prod);
    const prodIds = [(await prod.createBackup()).id, (await prod.createBackup()).id];
    const stagingDb = await copySeeded(bucket('staging'));
    await stagingDb.resources.users!.insert({ id: 'staging-only', name: 'S', email: 's@example.com', password: 'pw', plan: 'free' });
    const warnings: string[] = [];
    const staging = plugin({ ...options, logger: warnInto(warnings) });
    await stagingDb.usePlugin(staging, 'staging');
    const s1 = await staging.createBackup();
    expect(s1.type).toBe('full');
    expect(warnings.some((w) => w.includes('also holds backups of another database (memory://cfg-prod-'))).toBe(true);
    const s2 = await staging.createBackup();
    const s3 = await staging.createBackup();
    expect((await staging.getBackup(s3.id))!.manifest.chain).toEqual([s1.id, s2.id, s3.id]);
    const next = await prod.createBackup();
    expect((await prod.getBackup(next.id))!.manifest.chain.slice(0, 2)).toEqual(prodIds);
    // each database keeps its own two newest (chains pinned): none of production's were pruned for staging's
    const listed = await prod.listBackups();
    const bySource = (db: string) => listed.filter((b) => b.source.bucket?.includes(db)).map((b) => b.id);
    expect(bySource('-prod-')).toContain(next.id);
    expect(bySource('-prod-')).toContain(prodIds[0]);
    expect(bySource('-staging-')).toContain(s3.id);
    // production's plugin restoring staging's newest backup (the top of the list) says so
    const report = await prod.restore({ backupId: s3.id, dryRun: true });
    expect(report.warnings.some((w) => w.includes(`backup ${s3.id} was taken from another database`))).toBe(true);
  }, 60_000);
});

describe("the runbook's scratch database", () => {
  it("a restore into a plugin's in-memory database of another database's backup warns that it wrote there, not into the database the backup came from (review-runbook 1)", async () => {
    const dir = path.join(work, 'scratch-backups');
    const prodDir = path.join(work, 'scratch-prod');
    const prodDb = await copySeeded(`file://${prodDir}`);
    const prod = plugin({ config: { directory: dir } });
    await prodDb.usePlugin(prod);
    const b = await prod.createBackup();
    await prod.stop();
    // step 2: a plugin on a scratch database, then steps 3 and 4 copied without a destination
    const scratchDb = await openDb(bucket('scratch'));
    const scratch = plugin({ config: { directory: dir } });
    await scratchDb.usePlugin(scratch);
    const memoryWarning = (w: string) => w.includes("which lives in this process's memory: to restore the database the backup came from, give its connection string as destination");
    for (const dryRun of [true, false]) {
      const report = await scratch.restore({ backupId: b.id, dryRun });
      expect(report.warnings.filter(memoryWarning)).toEqual([expect.stringContaining(`backup ${b.id} was taken from file://${prodDir}`)]);
    }
    // with the connection string, as step 2 says: no such warning
    const intoProduction = await scratch.restore({ backupId: b.id, destination: `file://${prodDir}`, dryRun: true });
    expect(intoProduction.warnings.filter(memoryWarning)).toEqual([]);
    await scratch.stop();
  });
});

describe('one database spelled two ways', () => {
  it("a key prefix written with or without its trailing '/' is the same database: the chain goes on", async () => {
    const dir = path.join(work, 'slash');
    const name = `cfg-slash-${process.pid}-${++seq}`;
    const db = await copySeeded(`memory://${name}/app`);
    const before = plugin({ config: { directory: dir } });
    await db.usePlugin(before);
    await before.createBackup({ type: 'full' });
    await before.stop();
    const again = await openDb(`memory://${name}/app/`);
    const warnings: string[] = [];
    const after = plugin({ config: { directory: dir }, logger: warnInto(warnings) });
    await again.usePlugin(after, 'after');
    expect((await after.createBackup({ type: 'incremental' })).type).toBe('incremental');
    expect(warnings.filter((w) => w.includes('another database'))).toEqual([]);
    await after.stop();
  }, 60_000);
});

describe('backups placed inside the database they back up', () => {
  it("a filesystem destination inside a file:// database's directory (or around it) is refused at install, naming the option", async () => {
    const root = path.join(work, 'fs-inside');
    const db = await openDb(`file://${path.join(root, 'db')}`);
    await db.createResource({ name: 'notes', attributes: { text: 'string' } });
    for (const [directory, where] of [[path.join(root, 'db', 'backups'), 'inside'], [root, 'around']] as const) {
      const p = plugin({ config: { directory } });
      await expect(db.usePlugin(p, `p-${where}`)).rejects.toMatchObject({
        code: 'ERR_INVALID_OPTION',
        message: expect.stringContaining(`lies ${where} the database's directory ${path.join(root, 'db')}`),
      });
    }
    const beside = plugin({ config: { directory: path.join(root, 'backups') } });
    await db.usePlugin(beside, 'beside');
    expect((await beside.createBackup()).objects).toBeGreaterThan(0);
    await beside.stop();
    await db.disconnect();
  }, 60_000);
});

describe('a backup to several destinations stopped midway', () => {
  it('aborting it raises no uncaught exception (an application with s3db.js defaults would exit on one)', () => {
    // A child process: an uncaught exception must be counted, not caught by the test runner.
    const child = `
      let uncaught = 0;
      process.on('uncaughtException', () => { uncaught += 1; });
      const { S3db } = await import('s3db.js');
      const { BackupPlugin } = await import('./src/index.ts');
      const { seedDatabase } = await import('./__test__/helpers/database.ts');
      const db = new S3db({ connectionString: 'memory://cfg-abort-${process.pid}/db', logLevel: 'silent', exitOnSignal: false });
      await db.connect();
      await seedDatabase(db, { users: 8, orders: 200, perBehavior: 8 });
      const dir = process.env.DEST;
      const p = new BackupPlugin({ schedule: false, driver: 'multi', strategy: 'all', verify: false, progressIntervalMs: 10, lease: false,
        destinations: [{ driver: 'filesystem', config: { directory: dir + '/a' } }, { driver: 'filesystem', config: { directory: dir + '/b' } }] });
      await db.usePlugin(p);
      const stop = new AbortController();
      p.on('plg:backup:progress', () => stop.abort());
      const code = await p.createBackup({ signal: stop.signal }).then(() => 'completed', (e) => e.code);
      await new Promise((r) => setTimeout(r, 500));
      console.log(JSON.stringify({ code, uncaught }));
      process.exit(0);
    `;
    const result = runChildScript(child, { DEST: path.join(work, 'abort-multi') });
    expect(result).toEqual({ code: 'ERR_ABORTED', uncaught: 0 });
  }, 150_000);
});
