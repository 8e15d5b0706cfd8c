// The BackupPlugin's two API dialects and two install paths on the real s3db.js, with real
// filesystem destinations: s3db.js's own dialect (backup/restore/getBackupStatus, hooks, events)
// returns real numbers; both `db.usePlugin()` and `new S3db({ plugins })` work on file:// and
// memory:// without clobbering the user's s3db.json; invalid options fail in the constructor with
// ERR_INVALID_OPTION naming the option (and never echo a passphrase); the seed story's example
// configurations construct offline, and listBackups' filters work.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { inspect } from 'node:util';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupError, BackupPlugin, type BackupPluginOptions } from '../src/index.js';
import { openDb, seedDatabase, seededCopies, snapshot } from './helpers/database.js';

const SMALL = { users: 5, orders: 5, perBehavior: 1 };
const SECRET = 'Pa55phrase-that-must-never-leak-42';
let work: string;
let seq = 0;
const bucket = (name: string) => `memory://dia-${name}-${process.pid}-${++seq}/db`;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'plugin-dialects-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const copySeeded = seededCopies(SMALL, () => bucket('template'));
const seeded = (name: string) => copySeeded(bucket(name));

type Call = [string, string, Record<string, unknown>];
type Counted = { count(): Promise<number>; delete(id: string): Promise<unknown> };

describe('the s3db.js dialect', () => {
  it('backup(type) / restore(id, { mode }) / getBackupStatus(id) return real values; hooks and events fire', async () => {
    const dir = path.join(work, 's3db-dialect');
    const db = await seeded('s3db');
    const calls: Call[] = [];
    const hook = (name: string) => (first: string, ctx: Record<string, unknown>) => void calls.push([name, first, ctx]);
    const p = new BackupPlugin({
      schedule: false,
      config: { directory: dir },
      onBackupStart: hook('onBackupStart'),
      onBackupComplete: hook('onBackupComplete'),
      onBackupError: hook('onBackupError'),
      onRestoreStart: hook('onRestoreStart'),
      onRestoreComplete: hook('onRestoreComplete'),
      onRestoreError: hook('onRestoreError'),
    });
    const events: [string, Record<string, unknown>][] = [];
    for (const name of ['start', 'complete', 'error', 'restore-start', 'restore-complete', 'restore-error'] as const) {
      p.on(`plg:backup:${name}`, (e: object) => events.push([name, { ...e }]));
    }
    await db.usePlugin(p);

    const b = await p.backup('full');
    expect(Object.keys(b)).toEqual(expect.arrayContaining(['id', 'type', 'size', 'duration', 'checksum', 'driverInfo']));
    expect(b.type).toBe('full');
    expect(b.size).toBeGreaterThan(0);
    expect(b.duration).toBeGreaterThanOrEqual(0);
    expect(b.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(b.driverInfo).toEqual([{ label: expect.stringContaining(dir), status: 'ok' }]);
    expect(calls.map((c) => c[0])).toEqual(['onBackupStart', 'onBackupComplete']);
    expect(calls[0]![1]).toBe('full');
    expect(calls[1]).toEqual(['onBackupComplete', 'full', expect.objectContaining({ backupId: b.id, size: b.size, duration: b.duration })]);
    expect(events.map((e) => e[0])).toEqual(['start', 'complete']);
    expect(events[1]![1]).toMatchObject({ id: b.id, type: 'full', size: b.size });

    const status = await p.getBackupStatus(b.id);
    expect(status).toMatchObject({ id: b.id, type: 'full', status: 'completed', size: b.size, checksum: b.checksum, encrypted: false, compressed: true, error: null, driverInfo: b.driverInfo });
    // s3db.js's metadata records also have updatedAt and s3db_version
    expect(Date.parse(status!.updatedAt)).toBeGreaterThanOrEqual(Date.parse(status!.createdAt));
    expect(status!.s3db_version).toMatch(/^\d+\.\d+\.\d+/);
    expect([...status!.resources].sort()).toEqual(Object.keys(db.resources).sort());
    // listBackups() and getBackup() name the same resources (no internal group): each restores
    expect([...(await p.getBackup(b.id))!.resources].sort()).toEqual(Object.keys(db.resources).sort());
    expect((await p.listBackups())[0]!.resources).toEqual((await p.getBackup(b.id))!.resources);
    await expect(p.restore({ backupId: b.id, resources: (await p.getBackup(b.id))!.resources, dryRun: true })).resolves.toMatchObject({ dryRun: true });
    // a new plugin instance (new process, same destination) knows it from the destination alone
    const fresh = new BackupPlugin({ schedule: false, config: { directory: dir } });
    expect(await fresh.getBackupStatus(b.id)).toMatchObject({ id: b.id, status: 'completed', size: b.size, checksum: b.checksum, driverInfo: b.driverInfo });
    expect(await fresh.getBackupStatus('full-20000101T000000000Z-000000')).toBeNull();

    // damage, then restore in s3db.js's dialect: counts are real (s3db.js's plugin reported 0)
    const users = db.resources.users as unknown as Counted;
    await users.delete('u00001');
    await users.delete('u00002');
    expect(await users.count()).toBe(3);
    calls.length = 0;
    events.length = 0;
    const restored = await p.restore(b.id, { mode: 'replace' });
    expect(restored.backupId).toBe(b.id);
    const byName = new Map(restored.restored.map((r) => [r.name, r]));
    expect(byName.get('users')).toEqual({ name: 'users', recordsRestored: 5, totalRecords: 5 });
    expect(byName.get('orders')).toEqual({ name: 'orders', recordsRestored: 5, totalRecords: 5 });
    expect(await users.count()).toBe(5);
    expect(calls.map((c) => [c[0], c[1]])).toEqual([
      ['onRestoreStart', b.id],
      ['onRestoreComplete', b.id],
    ]);
    expect(calls[1]![2].restored).toEqual(restored.restored);
    expect(events.map((e) => e[0])).toEqual(['restore-start', 'restore-complete']);

    // forced failures: a missing backup id (restore), an unwritable destination (backup)
    calls.length = 0;
    events.length = 0;
    await expect(p.restore('full-20000101T000000000Z-000000', { mode: 'merge' })).rejects.toMatchObject({ code: 'ERR_BACKUP_NOT_FOUND' });
    expect(calls.map((c) => [c[0], c[1]])).toEqual([
      ['onRestoreStart', 'full-20000101T000000000Z-000000'],
      ['onRestoreError', 'full-20000101T000000000Z-000000'],
    ]);
    expect(calls[1]![2].error).toMatchObject({ code: 'ERR_BACKUP_NOT_FOUND' });
    expect(events.map((e) => e[0])).toEqual(['restore-start', 'restore-error']);
    expect(events[1]![1]).toMatchObject({ code: 'ERR_BACKUP_NOT_FOUND' });
    await p.stop();
  });

  it('a failing backup calls onBackupError and emits plg:backup:error', async () => {
    const db = await seeded('s3db-fail');
    const file = path.join(work, 'not-a-dir');
    await writeFile(file, 'x');
    const calls: Call[] = [];
    const p = new BackupPlugin({
      schedule: false,
      config: { directory: path.join(file, 'backups') },
      onBackupStart: (t, c) => void calls.push(['onBackupStart', t, c]),
      onBackupError: (t, c) => void calls.push(['onBackupError', t, c]),
    });
    const events: Record<string, unknown>[] = [];
    p.on('plg:backup:error', (e) => events.push({ ...e }));
    await db.usePlugin(p);
    const err = await p.backup('full').then(() => null, (e: unknown) => e as BackupError);
    expect(err).toBeInstanceOf(BackupError);
    // the destination fails before the backup holds the lease: onBackupStart (which comes once it
    // does, right before reading) is not called, and the failure still reaches onBackupError
    expect(calls.map((c) => [c[0], c[1]])).toEqual([['onBackupError', 'full']]);
    expect(calls[0]![2].error).toBe(err);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'full', code: err!.code });
    await p.stop();
  });
});

describe('install paths', () => {
  for (const kind of ['file', 'memory'] as const) {
    it(`${kind}://: usePlugin after connect and new S3db({ plugins }) both work and never clobber s3db.json`, async () => {
      const conn = kind === 'file' ? `file://${path.join(work, 'install-db')}` : bucket('install');
      const dir = path.join(work, `install-${kind}`);
      // 1. the user's database, created without the plugin
      const first = await openDb(conn);
      await seedDatabase(first, { users: 3, orders: 3, perBehavior: 1 });
      const resourceNames = Object.keys(first.resources).sort();
      const s3dbJson = async (db: typeof first) => JSON.parse((await (await import('../src/engine/s3db.js')).bodyToBuffer((await db.client.getObject('s3db.json')).Body)).toString('utf8')) as { resources: unknown };
      const definitions = (await s3dbJson(first)).resources;
      const rawBefore = kind === 'file' ? await readFile(path.join(work, 'install-db', 's3db.json')) : null;

      // 2. usePlugin after connect
      const used = new BackupPlugin({ schedule: false, config: { directory: dir } });
      await first.usePlugin(used);
      expect((first.plugins as Record<string, unknown>).backup).toBe(used);
      const b1 = await used.createBackup();
      expect(b1.resources.sort()).toEqual([...resourceNames].sort()); // database-level objects are in the backup, under no resource name
      await used.stop();
      if (kind === 'file') await first.disconnect();

      // 3. reopen with the plugin in the constructor list
      const viaCtor = new BackupPlugin({ schedule: false, config: { directory: dir } });
      const second = await openDb(conn, [viaCtor]);
      expect((second.plugins as Record<string, unknown>).backup).toBe(viaCtor);
      expect(Object.keys(second.resources).sort()).toEqual(resourceNames);
      expect((await s3dbJson(second)).resources).toEqual(definitions);
      if (rawBefore) expect(await readFile(path.join(work, 'install-db', 's3db.json'))).toEqual(rawBefore);
      const users = second.resources.users as unknown as Counted;
      expect(await users.count()).toBe(3);

      // both instances see the same catalog; backup and restore work through the constructor path
      expect((await viaCtor.listBackups()).map((b) => b.id)).toEqual([b1.id]);
      const before = await snapshot(second);
      const b2 = await viaCtor.backup('full');
      await users.delete('u00000');
      const report = await viaCtor.restore(b2.id, { mode: 'replace' });
      expect(report.restored.find((r) => r.name === 'users')).toEqual({ name: 'users', recordsRestored: 3, totalRecords: 3 });
      expect(await snapshot(second)).toEqual(before);
      await viaCtor.stop();
      if (kind === 'file') await second.disconnect();
    });
  }
});

describe('option errors', () => {
  const cases: [string, BackupPluginOptions, string][] = [
    ['unknown option', { shedule: 'daily' } as BackupPluginOptions, 'shedule'],
    ['bad compression', { compression: 'lz4' as 'gzip' }, 'compression'],
    ['encryption enabled without passphrase', { encryption: { enabled: true } }, 'encryption.passphrase'],
    ['encryption with an empty passphrase', { encryption: { enabled: true, passphrase: '' } }, 'encryption.passphrase'],
    ['schedule in words', { schedule: 'every tuesday' }, 'schedule'],
    ['schedule too short', { schedule: 50 }, 'schedule'],
    ['negative schedule', { schedule: -1000 }, 'schedule'],
    ['bad per-resource schedule', { resources: { users: { schedule: 'sometimes' } } }, 'resources.users.schedule'],
    ['pathTemplate escaping the directory', { pathTemplate: '../x/{id}' }, 'pathTemplate'],
    ['absolute pathTemplate', { pathTemplate: '/etc/{id}' }, 'pathTemplate'],
    ['pathTemplate without {id} or {timestamp}', { pathTemplate: '{year}/{month}/backup' }, 'pathTemplate'],
    ['pathTemplate in a destination config', { config: { directory: 'x', pathTemplate: 'a/../../{id}' } }, 'pathTemplate'],
    ['multi without destinations', { driver: 'multi' }, 'destinations'],
    ['multi with an empty list', { driver: 'multi', destinations: [] }, 'destinations'],
    ['unknown driver', { driver: 'ftp' as 's3' }, 'driver'],
    ['bad verify', { verify: 'sometimes' as 'quick' }, 'verify'],
    ['bad type', { type: 'differential' as 'full' }, 'type'],
    ['gzip level above 9', { compression: 'gzip', level: 15 }, 'level'],
    ['gzip level 0', { compression: 'gzip', level: 0 }, 'level'],
    ['brotli level above 11', { compression: 'brotli', level: 12 }, 'level'],
    ['zstd level 23 (s3db.js spelling)', { compression: 'zstd', compressionLevel: 23 }, 'compressionLevel'],
    ['fractional level', { level: 4.5 }, 'level'],
  ];
  for (const [what, options, option] of cases) {
    it(`${what}: ERR_INVALID_OPTION naming "${option}"`, () => {
      let caught: unknown = null;
      try {
        new BackupPlugin({ schedule: false, ...options });
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(BackupError);
      expect((caught as BackupError).code).toBe('ERR_INVALID_OPTION');
      expect((caught as BackupError).message).toContain(`"${option}"`);
    });
  }

  it('a schedule error names the shortest interval the plugin takes (1000 ms), for numbers and words alike', () => {
    for (const schedule of [50, 'every tuesday']) {
      expect(() => new BackupPlugin({ schedule })).toThrow(/1000/);
    }
  });

  it("s3db.js's base-Plugin options (slug, namespace, instanceId, customName, logLevel) are accepted", () => {
    for (const extra of [{ slug: 'backup' }, { namespace: 'nightly' }, { instanceId: 'nightly' }, { customName: 'b' }, { logLevel: 'warn' }]) {
      expect(() => new BackupPlugin({ schedule: false, ...extra })).not.toThrow();
    }
  });

  it('a passphrase never appears in an error message, its details or its cause', () => {
    const bad: BackupPluginOptions[] = [
      { encryption: { passphrase: SECRET, iterations: 10 } },
      { encryption: { passphrase: SECRET, algorithm: 'des-ede3' } },
      { encryption: { key: SECRET, iterations: 1.5 } },
      { encryption: { passphrase: SECRET }, compression: 'lz4' as 'gzip' },
      { encryption: { passphrase: SECRET }, bogus: 1 } as BackupPluginOptions,
      { encryption: { passphrase: SECRET }, schedule: 'sometimes' },
      { encryption: { passphrase: SECRET }, pathTemplate: '../{id}' },
      { encryption: { passphrase: SECRET }, retention: { policy: 'gfs', dayly: 7 } },
      { encryption: { passphrase: SECRET }, driver: 'multi', destinations: [{ driver: 'filesystem', config: { directory: 'x', passphrase: SECRET } }] },
    ];
    for (const options of bad) {
      let caught: unknown = null;
      try {
        new BackupPlugin({ schedule: false, ...options });
      } catch (err) {
        caught = err;
      }
      expect(caught, JSON.stringify(Object.keys(options))).toBeInstanceOf(BackupError);
      const e = caught as BackupError;
      const text = [e.message, e.stack ?? '', JSON.stringify(e.details), String(e.cause ?? '')].join('\n');
      expect(text).not.toContain(SECRET);
    }
    // and the exposed options are redacted
    const ok = new BackupPlugin({ schedule: false, encryption: { passphrase: SECRET, iterations: 100_000 } });
    expect(JSON.stringify(ok.options)).not.toContain(SECRET);
    expect(JSON.stringify(ok.config)).not.toContain(SECRET);
    expect(inspect(ok, { depth: 8 })).not.toContain(SECRET); // console.log(plugin) in an app's logs
  });
});

describe('the seed story', () => {
  it('its example configurations construct without network or side effects', () => {
    const hadMnt = existsSync('/mnt/backups');
    const examples: BackupPluginOptions[] = [
      // Example 1: simple daily backups
      { driver: 's3', schedule: 'daily', retention: { policy: 'simple', count: 30 }, config: { bucketName: 'my-app-backups', region: 'us-west-2' } },
      // Example 2: enterprise setup with GFS
      {
        driver: 'multi',
        schedule: 'hourly',
        type: 'full',
        compression: 'gzip',
        verify: true,
        encryption: { enabled: true, passphrase: SECRET },
        retention: { policy: 'gfs', hourly: 24, daily: 7, weekly: 4, monthly: 12 },
        destinations: [
          { driver: 'filesystem', config: { directory: '/mnt/backups/local', pathTemplate: '{year}/{month}/{resource}-{timestamp}.backup.gz' } },
          { driver: 's3', config: { bucketName: 'production-backups-us', region: 'us-west-2', storageClass: 'GLACIER_IR' } },
          { driver: 's3', config: { bucketName: 'production-backups-eu', region: 'eu-central-1', storageClass: 'GLACIER_IR' } },
        ],
        webhooks: { onSuccess: async () => undefined, onFailure: async () => undefined },
      },
      // the opening example
      {
        driver: 'multi',
        schedule: 'hourly',
        retention: { policy: 'gfs', hourly: 24, daily: 7, weekly: 4, monthly: 12 },
        compression: 'gzip',
        encryption: { enabled: true, passphrase: SECRET },
        destinations: [
          { driver: 'filesystem', config: { directory: '/mnt/backups' } },
          { driver: 's3', config: { bucketName: 'my-backups', region: 'us-west-2', storageClass: 'GLACIER_IR' } },
        ],
        verify: true,
        includeMetadata: true,
      },
      // triggers, filtering, schedules per resource
      {
        triggers: [
          { event: 'beforeDeploy', type: 'full', reason: 'Pre-deployment safety backup' },
          { event: 'afterBulkDelete', type: 'incremental', condition: (c) => (c as { deletedCount: number }).deletedCount > 100 },
        ],
      },
      { resources: { users: true, sessions: false, orders: { filter: { status: 'completed' }, fields: ['id', 'total', 'date'] }, logs: { filter: { level: 'error' }, limit: 10000 } } },
      { schedule: 'hourly', resources: { users: { schedule: 'hourly' }, analytics: { schedule: 'daily' } } },
      { schedule: '0 */6 * * *' },
      { schedule: 60000 },
      {},
    ];
    for (const options of examples) expect(() => new BackupPlugin(options)).not.toThrow();
    expect(new BackupPlugin().config.schedule).toBe('daily');
    expect(existsSync('/mnt/backups')).toBe(hadMnt); // constructing writes nothing
  });

  it('listBackups({ resource, limit, verified, type }) filters, newest first', async () => {
    const dir = path.join(work, 'list');
    const db = await seeded('list');
    const p = new BackupPlugin({ schedule: false, config: { directory: dir } });
    await db.usePlugin(p);
    const all = await p.createBackup({ reason: 'all' });
    const ordersOnly = await p.createBackup({ resources: ['orders'] });
    const unverifiedPlugin = new BackupPlugin({ schedule: false, config: { directory: dir }, verify: false });
    await db.usePlugin(unverifiedPlugin, 'backupUnverified');
    const unverified = await unverifiedPlugin.createBackup({ resources: ['users'] });
    await unverifiedPlugin.stop();

    const ids = async (o?: Parameters<BackupPlugin['listBackups']>[0]) => (await p.listBackups(o)).map((b) => b.id);
    expect(await ids()).toEqual([unverified.id, ordersOnly.id, all.id]);
    expect(await ids({ resource: 'users' })).toEqual([unverified.id, all.id]);
    expect(await ids({ resource: 'orders' })).toEqual([ordersOnly.id, all.id]);
    expect(await ids({ resource: 'users', verified: true })).toEqual([all.id]);
    expect(await ids({ verified: false })).toEqual([unverified.id]);
    expect(await ids({ limit: 2 })).toEqual([unverified.id, ordersOnly.id]);
    expect(await ids({ verified: true, limit: 1 })).toEqual([ordersOnly.id]);
    expect(await ids({ type: 'full' })).toEqual([unverified.id, ordersOnly.id, all.id]);
    expect(await ids({ type: 'incremental' })).toEqual([]);
    expect(await ids({ resource: 'nope' })).toEqual([]);
    const listed = (await p.listBackups({ limit: 1 }))[0]!;
    expect(listed).toMatchObject({ id: unverified.id, verified: false, type: 'full' });
    expect(typeof listed.timestamp).toBe('string');
    expect(listed.size).toBeGreaterThan(0);
    await expect(p.listBackups({ limit: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining('"limit"') });
    await p.stop();
  });
});
