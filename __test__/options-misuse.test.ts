// Options and arguments given wrong, as review-options fuzzed them (session 19): a misspelt dry run,
// a `force: 'false'`, a second argument where none is read, a filter of the wrong kind, a
// retention in the wrong unit, an unset environment variable. Each is refused with
// ERR_INVALID_OPTION (or ERR_INVALID_RETENTION) naming the option, before anything is deleted,
// restored or backed up: on the real s3db.js and a real filesystem destination.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin, type BackupPluginOptions } from '../src/index.js';
import { openDb, seedDatabase, snapshot } from './helpers/database.js';

let work: string;
let seq = 0;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'options-misuse-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const invalid = (option: string) => expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining(`Invalid option "${option}"`) });
const make = (options: BackupPluginOptions) => () => new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'never') }, ...options });

/** A database with a full backup, an incremental on it and a second full; retention `count: 1` (a real prune deletes the first two). */
async function fixture(options: BackupPluginOptions = {}) {
  const db = await openDb(`memory://options-misuse-${process.pid}-${++seq}/db`);
  await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
  const plugin = (retention: BackupPluginOptions['retention']) =>
    new BackupPlugin({ schedule: false, config: { directory: path.join(work, `dest-${seq}`) }, retention, logger: { warn() {}, info() {}, error() {} }, ...options });
  // the backups are taken without retention (it runs after each backup); the plugin tested has it
  const maker = plugin(null);
  await db.usePlugin(maker, 'maker');
  const f1 = await maker.createBackup();
  await (db.resources.users as unknown as { update(id: string, v: object): Promise<unknown> }).update('u00001', { name: 'changed' });
  const i1 = await maker.createBackup({ type: 'incremental' });
  const f2 = await maker.createBackup();
  await maker.stop();
  const p = plugin({ count: 1 });
  await db.usePlugin(p, 'tested');
  const ids = async () => (await p.listBackups()).map((b) => b.id).sort();
  return { db, p, f1: f1.id, i1: i1.id, f2: f2.id, all: [f1.id, i1.id, f2.id].sort(), ids };
}

describe('methods that delete or write refuse what they would misread', () => {
  it('prune: a misspelt or mistyped dry run is refused, and nothing is deleted; cleanupBackups() takes no options', async () => {
    const { p, all, ids } = await fixture();
    for (const options of [{ dryrun: true }, { dry: true }, { dryRun: 'false' }, { dryRun: 1 }]) await expect(p.prune(options as never)).rejects.toEqual(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    for (const options of [true, 'dry-run', null]) await expect(p.prune(options as never)).rejects.toEqual(invalid('options'));
    await expect((p.cleanupBackups as (o: unknown) => Promise<unknown>)({ dryRun: true })).rejects.toEqual(expect.objectContaining({ message: expect.stringContaining('prune({ dryRun: true })') }));
    expect(await ids()).toEqual(all);
    expect((await p.prune({ dryRun: true })).deleted).toEqual([]);
    expect(await ids()).toEqual(all);
    await p.stop();
  });

  it("deleteBackup: force must be true itself ('false', 'no' and 1 are refused, deleting nothing); options must be an object", async () => {
    const { p, f1, all, ids } = await fixture();
    for (const force of ['false', 'no', 1]) await expect(p.deleteBackup(f1, { force } as never)).rejects.toEqual(invalid('force'));
    await expect(p.deleteBackup(f1, null as never)).rejects.toEqual(invalid('options'));
    await expect(p.deleteBackup(f1, { forse: true } as never)).rejects.toEqual(invalid('forse'));
    expect(await ids()).toEqual(all);
    await p.stop();
  });

  it('restore: a second argument to the object form, two different ids, non-boolean switches and an empty resource list are refused before anything is written', async () => {
    const { db, p, f1, f2 } = await fixture();
    const before = await snapshot(db);
    await expect(p.restore({ backupId: f1 }, { dryRun: true })).rejects.toEqual(invalid('options'));
    await expect(p.restore(f1, { backupId: f2, dryRun: true })).rejects.toEqual(invalid('backupId'));
    for (const [key, value] of [['dryRun', 'true'], ['verify', 0], ['allowPlaintext', 'yes']] as const) {
      await expect(p.restore({ backupId: f1, [key]: value } as never)).rejects.toEqual(invalid(key));
    }
    await expect(p.restore({ backupId: f1, resources: [] })).rejects.toEqual(invalid('resources'));
    await expect(p.restore({ backupId: f1, resources: ['_database'] })).rejects.toEqual(invalid('resources'));
    await expect(p.restore({ backupId: f1, destination: 'file://relative/tmp/x' })).rejects.toEqual(invalid('destination'));
    // s3db.js's own relative form stays accepted (a dry run: nothing is written there)
    expect((await p.restore({ backupId: f1, destination: `file://./options-misuse-${process.pid}-nothing-here`, dryRun: true })).dryRun).toBe(true);
    expect(await snapshot(db)).toEqual(before);
    await p.stop();
  });

  it('listBackups, verifyBackup, getBackup, createBackup and backup: values of the wrong kind are refused, never read as "nothing matches" or as the default', async () => {
    const { p, f2 } = await fixture();
    await expect(p.listBackups({ verified: 'true' } as never)).rejects.toEqual(invalid('verified'));
    await expect(p.listBackups({ type: 'ful' } as never)).rejects.toEqual(invalid('type'));
    await expect(p.listBackups({ resource: 5 } as never)).rejects.toEqual(invalid('resource'));
    await expect(p.listBackups(null as never)).rejects.toEqual(invalid('options'));
    await expect(p.verifyBackup(f2, 'quick' as never)).rejects.toEqual(invalid('options'));
    await expect(p.verifyBackup(f2, { levl: 'quick' } as never)).rejects.toEqual(invalid('levl'));
    await expect(p.getBackup(Symbol('x') as never)).rejects.toEqual(invalid('backupId'));
    await expect(p.getBackupStatus(Symbol('x') as never)).rejects.toEqual(invalid('backupId'));
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    for (const [options, option] of [
      [null, 'options'],
      [{ metadata: circular }, 'metadata'],
      [{ metadata: { n: 1n } }, 'metadata'],
      [{ metadata: 'x' }, 'metadata'],
      [{ reason: 5 }, 'reason'],
      [{ resources: [] }, 'resources'],
      [{ resources: ['users', '_database'] }, 'resources'],
      [{ signal: {} }, 'signal'],
      [{ onStart: () => undefined }, 'onStart'],
      [{ alsoExclude: ['users'] }, 'alsoExclude'],
    ] as const) {
      await expect(p.createBackup(options as never)).rejects.toEqual(invalid(option));
    }
    await expect(p.backup('full', null as never)).rejects.toEqual(invalid('options'));
    expect((await p.listBackups()).length).toBe(3);
    await p.stop();
  });
});

describe('plugin options refused at construction, where they would fail every tick or do nothing in silence', () => {
  it('resource selections: a filter that is an array or a Buffer, a resource given as an array, a misspelt key', () => {
    for (const filter of [['active'], Buffer.from('x'), new Date()]) expect(make({ resources: { users: { filter } } as never })).toThrow(invalid('resources.users.filter'));
    expect(make({ resources: { users: [] } as never })).toThrow(invalid('resources.users'));
    for (const key of ['schedul', 'filtr', 'feilds']) expect(make({ resources: { users: { [key]: 'hourly' } } as never })).toThrow(invalid(`resources.users.${key}`));
  });

  it('a misspelt name is answered with the name it is a typo of, then the known ones; a name near none gets the list alone (walk-30 F10)', async () => {
    const { closestName } = await import('../src/known-names.js');
    const { validateRetentionPolicy } = await import('../src/retention/index.js');
    const hint = (build: () => unknown) => {
      try {
        build();
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('not refused');
    };
    expect(hint(make({ compresion: 'gzip' } as never))).toMatch(/Invalid option "compresion": is not a BackupPlugin option\. Did you mean 'compression'\? Known options: .*verification/);
    expect(hint(make({ config: { directry: '/x' } } as never))).toContain("Did you mean 'directory'? Known: directory, path");
    expect(hint(make({ resources: { users: { feilds: ['a'] } } } as never))).toContain("Did you mean 'fields'? Known: filter, fields, limit, schedule");
    expect(hint(() => validateRetentionPolicy({ policy: 'gfs', hourli: 24 }))).toContain("Did you mean 'hourly'? Known keys: policy,");
    expect(hint(make({ frobnicate: true } as never))).toMatch(/is not a BackupPlugin option\. Known options: /);
    expect(closestName('Compression', ['compression', 'compressionLevel'])).toBe('compression'); // case
    expect(closestName('retry_delay_ms', ['retryDelayMs'])).toBe('retryDelayMs'); // snake_case
    expect(closestName('dirctory', ['directory', 'db'])).toBe('directory'); // a dropped letter
    expect(closestName('verfiy', ['verify', 'verbose'])).toBe('verify'); // two letters swapped
    expect(closestName('db', ['s3', 'json'])).toBeNull(); // short names: one edit at most
    expect(closestName('type', ['type', 'tape'])).toBeNull(); // a known name is no typo
  });

  it('a selection of nothing: include: [], a resource both included and excluded', () => {
    expect(make({ include: [] })).toThrow(invalid('include'));
    expect(make({ include: ['users'], exclude: ['users'] })).toThrow(invalid('exclude'));
    expect(make({ include: ['users'], resources: { users: false } })).toThrow(invalid('exclude'));
    // the name of the group a backup keeps the database's own objects in (review-paths P7)
    expect(make({ include: ['_database'] })).toThrow(invalid('include'));
    expect(make({ resources: { _database: { schedule: 'hourly' } } })).toThrow(invalid('resources._database'));
  });

  it('a schedule field left undefined or null (an unset environment variable), or a schedule that is a Date', () => {
    expect(make({ schedule: { cron: process.env.S3DB_BACKUP_TEST_UNSET_VARIABLE } as never })).toThrow(invalid('schedule.cron'));
    expect(make({ schedule: { interval: null } as never })).toThrow(invalid('schedule.interval'));
    expect(make({ schedule: new Date() as never })).toThrow(invalid('schedule'));
    expect(make({ schedule: { cron: '0 2 * * *', enabled: undefined } as never })).not.toThrow();
  });

  it('numbers past what the plugin can use: threads, lease.ttlMs, PBKDF2 iterations; a retention written as a small number (milliseconds)', () => {
    expect(make({ threads: 257 })).toThrow(invalid('threads'));
    expect(make({ lease: { ttlMs: 1e16 } })).toThrow(invalid('lease.ttlMs'));
    expect(make({ encryption: { passphrase: 'options misuse', iterations: 100_000_001 } })).toThrow(invalid('encryption.iterations'));
    for (const retention of [{ policy: 'gfs', within: 7 }, { policy: 'gfs', withinDaily: 30 }, { maxAge: 30, count: 1 }]) {
      expect(make({ retention } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_RETENTION', message: expect.stringContaining('milliseconds') }));
    }
    expect(make({ retention: { policy: 'gfs', within: '7d' } } as never)).not.toThrow();
  });

  it("an option given under both its names (the story's and s3db.js's) with two values is refused: which one would win is a guess", () => {
    expect(make({ verify: false, verification: true } as never)).toThrow(invalid('verification'));
    expect(make({ level: 1, compressionLevel: 9 } as never)).toThrow(invalid('compressionLevel'));
    expect(make({ concurrency: 1, parallelism: 64 } as never)).toThrow(invalid('parallelism'));
    expect(make({ level: 6, compressionLevel: 6 } as never)).not.toThrow();
    expect(make({ verify: 'full', verification: true } as never)).not.toThrow(); // one meaning, two spellings
    // a wrong value is named as it was written (review-options #23)
    expect(make({ verification: 42 } as never)).toThrow(invalid('verification'));
    expect(make({ parallelism: 'x' } as never)).toThrow(invalid('parallelism'));
    // s3db.js's plugin-base options have no effect here, but a value of the wrong kind is said (#24)
    expect(make({ slug: 42 } as never)).toThrow(invalid('slug'));
    expect(make({ logLevel: {} } as never)).toThrow(invalid('logLevel'));
    expect(make({ verbose: 'yes' } as never)).toThrow(invalid('verbose'));
    expect(make({ slug: 'backups', namespace: 'prod', verbose: true, logLevel: 'info' } as never)).not.toThrow();
  });

  it('a destination directory present but undefined (an unset environment variable) is refused, not read as ./backups', () => {
    expect(() => new BackupPlugin({ schedule: false, config: { directory: process.env.S3DB_BACKUP_TEST_UNSET_VARIABLE } })).toThrow(invalid('config.directory'));
    expect(() => new BackupPlugin({ schedule: false, config: { path: process.env.S3DB_BACKUP_TEST_UNSET_VARIABLE } as never })).toThrow(invalid('config.path'));
    expect(() => new BackupPlugin({ schedule: false, driver: 'multi', destinations: [{ driver: 'filesystem', config: { directory: undefined } }] })).toThrow(expect.objectContaining({ message: expect.stringContaining('directory') }));
  });

  it("a staleAfterMs under two heartbeats (seconds meant as milliseconds) is warned about at install: another instance could delete a running backup's parts", async () => {
    const warnings: string[] = [];
    const db = await openDb(`memory://options-misuse-stale-${process.pid}/db`);
    const p = new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'stale') }, staleAfterMs: 60, logger: { warn: (_o: unknown, m: string) => void warnings.push(m), info() {}, error() {} } });
    await db.usePlugin(p);
    expect(warnings).toContainEqual(expect.stringContaining('staleAfterMs is 60 ms (milliseconds), under two heartbeats'));
    await p.stop();
  });

  it('a hookTimeoutMs under a second (seconds meant as milliseconds) is warned about at install: every start hook would refuse its backup', async () => {
    const warnings: string[] = [];
    const db = await openDb(`memory://options-misuse-hook-${process.pid}/db`);
    const p = new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'hook') }, hookTimeoutMs: 30, logger: { warn: (_o: unknown, m: string) => void warnings.push(m), info() {}, error() {} } });
    await db.usePlugin(p);
    expect(warnings).toContainEqual(expect.stringContaining('hookTimeoutMs is 30 ms (milliseconds), under a second: an onBackupStart or onRestoreStart hook still running after it refuses'));
    await p.stop();
    // a second is not warned about
    const quiet: string[] = [];
    const second = new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'hook') }, hookTimeoutMs: 1000, logger: { warn: (_o: unknown, m: string) => void quiet.push(m), info() {}, error() {} } });
    await (await openDb(`memory://options-misuse-hook-second-${process.pid}/db`)).usePlugin(second);
    expect(quiet.filter((w) => w.startsWith('hookTimeoutMs'))).toEqual([]);
    await second.stop();
  });

  it('fsync that is not a boolean (0, "", NaN from a config file) is refused, not read as off', () => {
    for (const fsync of [0, '', Number.NaN, 'false']) {
      expect(() => new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'fsync'), fsync } as never })).toThrow(invalid('config.fsync'));
    }
  });

  it('a logger without info, warn and error is refused; one that throws does not fail the backups that log', async () => {
    for (const logger of [42, {}, { info() {}, error() {} }]) expect(make({ logger } as never)).toThrow(invalid('logger'));
    for (const logger of [null, false]) expect(make({ logger } as never)).not.toThrow(); // none of its own: s3db.js's
    const db = await openDb(`memory://options-misuse-logger-${process.pid}/db`);
    await seedDatabase(db, { users: 2, orders: 2, perBehavior: 1 });
    let thrown = 0;
    const sinkDown = () => {
      thrown++;
      throw new Error('log sink down');
    };
    const throwing = { info: sinkDown, error: sinkDown, warn: sinkDown };
    const p = new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'logger') }, include: ['users'], exclude: [], logger: throwing as never, retention: { count: 1 } });
    await db.usePlugin(p);
    await p.createBackup();
    const second = await p.createBackup({ tags: ['after'] });
    expect((await p.listBackups()).map((b) => b.id)).toEqual([second.id]);
    expect(thrown).toBeGreaterThan(0);
    await p.stop();
  });
});

describe('a function filter', () => {
  it("is read as truthy, as Array.prototype.filter reads it (r => r.age kept the records with an age, where it kept none); one that returns a Promise fails the backup naming it", async () => {
    const db = await openDb(`memory://options-misuse-filter-${process.pid}/db`);
    const people = await db.createResource({ name: 'people', attributes: { name: 'string', age: 'number|optional' } });
    await people.insert({ id: 'p1', name: 'with an age', age: 40 });
    await people.insert({ id: 'p2', name: 'without' });
    const p = new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'filter') }, resources: { people: { filter: (r: Record<string, unknown>) => r.age } } });
    await db.usePlugin(p);
    const backup = await p.createBackup();
    expect((await p.getBackup(backup.id))!.manifest.resources.people!.records).toBe(1);
    await p.stop();
    const asynchronous = new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'filter-async') }, resources: { people: { filter: async () => true } } });
    await db.usePlugin(asynchronous, 'async');
    await expect(asynchronous.createBackup()).rejects.toEqual(expect.objectContaining({ message: expect.stringContaining('resources.people.filter') }));
    await asynchronous.stop();
  });
});
