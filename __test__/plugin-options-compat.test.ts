// BackupPlugin options where the seed story and s3db.js's own BackupPlugin meet ours, on the real
// s3db.js (memory:// databases), real filesystem destinations in a temp dir and, for S3, the real
// Ceph RGW of global-setup:
// - encryption: a passphrase/key that is present but empty (an unset environment variable) fails in
//   the constructor instead of backing up unencrypted; unknown keys are refused; s3db.js's
//   documented keyDerivation { algorithm: 'PBKDF2', iterations, salt } is accepted (iterations apply);
// - schedule objects with unknown keys are refused ({}, { cron }, { interval } keep working);
// - filesystem config.path (s3db.js's only filesystem option, './backups/{date}/') is the directory
//   plus our pathTemplate; permissions / directoryPermissions set the modes of what is created;
// - multi: config.drivers (s3db.js docs) and config.concurrency (s3db.js code) are accepted;
// - s3 without a bucket is refused with what to add; an s3 config.path with variables maps like the
//   filesystem one (prefix + pathTemplate) instead of putting "{date}" into keys.
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { inspect } from 'node:util';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupError, BackupPlugin, type BackupPluginOptions } from '../src/index.js';
import { openDb, seededCopies, settled, snapshot } from './helpers/database.js';
import { deleteBucket, listKeys, makeBucket, makeS3Client, s3Env } from './helpers/s3.js';
import { warnInto } from './helpers/logger.js';

const SMALL = { users: 4, orders: 4, perBehavior: 1 };
const SECRET = 'compat-Secret-that-must-never-leak-7';
const UNSET = 'S3DB_BACKUP_TEST_PASSPHRASE_THAT_IS_NEVER_SET';
let work: string;
let seq = 0;
const bucket = (name: string) => `memory://compat-${name}-${process.pid}-${++seq}/db`;
const copySeeded = seededCopies(SMALL, () => bucket('template'));
const seeded = (name: string) => copySeeded(bucket(name));
const started: BackupPlugin[] = [];

beforeAll(async () => {
  delete process.env[UNSET];
  work = await mkdtemp(path.join(tmpdir(), 'plugin-options-compat-'));
});
afterAll(async () => {
  for (const p of started) await p.stop();
  await rm(work, { recursive: true, force: true });
});

function plugin(options: BackupPluginOptions): BackupPlugin {
  const p = new BackupPlugin({ schedule: false, ...options });
  started.push(p);
  return p;
}

/** The BackupError the constructor throws (fails the test when it does not throw). */
function refusal(options: BackupPluginOptions): BackupError {
  let caught: unknown = null;
  try {
    new BackupPlugin({ schedule: false, ...options });
  } catch (err) {
    caught = err;
  }
  expect(caught, JSON.stringify(options)).toBeInstanceOf(BackupError);
  expect((caught as BackupError).code).toBe('ERR_INVALID_OPTION');
  const e = caught as BackupError;
  expect([e.message, JSON.stringify(e.details)].join('\n')).not.toContain(SECRET);
  return e;
}

/** YYYY-MM-DD of a backup id (`<type>-<YYYYMMDDTHHMMSSmmmZ>-<hex>`, UTC). */
function dateOf(id: string): { year: string; month: string; day: string } {
  const stamp = id.split('-')[1]!;
  return { year: stamp.slice(0, 4), month: stamp.slice(4, 6), day: stamp.slice(6, 8) };
}

async function walk(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  const out = { files: [] as string[], dirs: [dir] };
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) {
      const sub = await walk(full);
      out.files.push(...sub.files);
      out.dirs.push(...sub.dirs);
    } else out.files.push(full);
  }
  return out;
}

describe('encryption: a missing secret never becomes an unencrypted backup', () => {
  it("the story's `passphrase: process.env.BACKUP_PASSPHRASE` with the variable unset fails in the constructor", async () => {
    const dir = path.join(work, 'enc-unset');
    const cases: [Record<string, unknown>, string][] = [
      [{ passphrase: process.env[UNSET] }, 'encryption.passphrase'],
      [{ enabled: true, passphrase: process.env[UNSET] }, 'encryption.passphrase'],
      [{ passphrase: null }, 'encryption.passphrase'],
      [{ passphrase: '' }, 'encryption.passphrase'],
      [{ passphrase: '   ' }, 'encryption.passphrase'],
      [{ enabled: true }, 'encryption.passphrase'],
      [{ key: process.env[UNSET], algorithm: 'aes-256-gcm' }, 'encryption.key'],
      [{ key: '' }, 'encryption.key'],
      [{ passphrase: 12345 }, 'encryption.passphrase'],
      [{}, 'encryption.passphrase'],
    ];
    for (const [encryption, option] of cases) {
      const e = refusal({ config: { directory: dir }, encryption: encryption as BackupPluginOptions['encryption'] });
      expect(e.message).toContain(`"${option}"`);
      if (Object.keys(encryption).length > 0) expect(e.message).toMatch(/empty or undefined|whitespace|must be a string/);
      if ('passphrase' in encryption || 'key' in encryption) expect(e.message).toContain('environment variable');
    }
    // nothing was written anywhere
    await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a set variable encrypts; encryption null, false, absent or enabled: false back up unencrypted', async () => {
    const db = await seeded('enc-set');
    process.env.S3DB_BACKUP_TEST_SET = SECRET;
    const dir = path.join(work, 'enc-set');
    const p = plugin({ config: { directory: dir }, encryption: { enabled: true, passphrase: process.env.S3DB_BACKUP_TEST_SET, iterations: 100_000 } });
    delete process.env.S3DB_BACKUP_TEST_SET;
    await db.usePlugin(p);
    const b = await p.backup('full');
    expect(await p.getBackupStatus(b.id)).toMatchObject({ encrypted: true });
    expect(JSON.stringify(p.config)).not.toContain(SECRET);

    for (const [name, encryption] of [
      ['null', null],
      ['false', false],
      ['absent', undefined],
      ['disabled', { enabled: false, passphrase: process.env[UNSET] }],
    ] as const) {
      const q = plugin({ config: { directory: path.join(work, `enc-off-${name}`) }, encryption });
      expect(q.config.passphrase).toBeNull();
      await db.usePlugin(q, `backupOff_${name}`);
      const off = await q.backup('full');
      expect(await q.getBackupStatus(off.id)).toMatchObject({ encrypted: false });
    }
    // encryption dropped where encrypted backups are (the variable unset at the next deploy): the
    // unencrypted backup is written, with one warning per plugin
    const warnings: string[] = [];
    const dropped = plugin({ config: { directory: dir }, logger: warnInto(warnings) as never });
    await db.usePlugin(dropped, 'backupDropped');
    const plain = await dropped.backup('full');
    await dropped.backup('full');
    expect(warnings).toEqual([expect.stringMatching(new RegExp(`${plain.id} is not encrypted, while ${b.id} at the same destination is.*encryption option`))]);
  });

  it('unknown keys inside encryption are refused (a typo such as enabeld), without echoing the secret', () => {
    const e = refusal({ encryption: { passphrase: SECRET, enabeld: true } as BackupPluginOptions['encryption'] });
    expect(e.message).toContain('"encryption.enabeld"');
    expect(refusal({ encryption: { passphrase: SECRET, key: SECRET } }).message).toContain('"encryption.key"');
    expect(refusal({ encryption: { passphrase: SECRET, enabled: 'yes' as unknown as boolean } }).message).toContain('"encryption.enabled"');
  });

  it("s3db.js's keyDerivation { algorithm: 'PBKDF2', iterations, salt } is accepted: its iterations are used, and the backup restores", async () => {
    const dir = path.join(work, 'keyderivation');
    const db = await seeded('kd');
    const p = plugin({
      config: { directory: dir },
      encryption: { algorithm: 'AES-256-GCM', key: SECRET, keyDerivation: { algorithm: 'PBKDF2', iterations: 100_000, salt: 'backup-salt-2024' } },
    });
    await db.usePlugin(p);
    const expected = await settled(db);
    const b = await p.backup('full');
    expect(await p.getBackupStatus(b.id)).toMatchObject({ encrypted: true });
    const keyFile = JSON.parse(await readFile(path.join(dir, 'key.json'), 'utf8')) as { kdf: { name: string; iterations: number; salt: string } };
    expect(keyFile.kdf).toMatchObject({ name: 'pbkdf2-hmac-sha256', iterations: 100_000 });
    expect(keyFile.kdf.salt).not.toBe(Buffer.from('backup-salt-2024').toString('base64')); // a random salt, not the fixed one
    const target = await openDb(bucket('kd-target'));
    const reader = plugin({ config: { directory: dir }, encryption: { passphrase: SECRET } });
    await reader.restore({ backupId: b.id, destination: target });
    expect(await snapshot(target)).toEqual(expected);

    expect(refusal({ encryption: { key: SECRET, keyDerivation: { algorithm: 'scrypt' } } }).message).toContain('"encryption.keyDerivation.algorithm"');
    expect(refusal({ encryption: { key: SECRET, keyDerivation: { iterations: 1000 } } }).message).toContain('"encryption.keyDerivation.iterations"');
    expect(refusal({ encryption: { key: SECRET, iterations: 200_000, keyDerivation: { iterations: 300_000 } } }).message).toContain('"encryption.keyDerivation.iterations"');
    const unknown = { key: SECRET, keyDerivation: { keyLength: 32 } } as unknown as BackupPluginOptions['encryption'];
    expect(refusal({ encryption: unknown }).message).toContain('"encryption.keyDerivation.keyLength"');
  });
});

describe('options of the wrong kind are refused, not silently ignored', () => {
  it('webhooks as a function or a URL, hooks that are not functions, unknown lease and trigger keys, a non-boolean includeMetadata, a non-string timezone', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ webhooks: () => undefined }, /"webhooks": must be an object of functions/], // no alert would ever be sent
      [{ webhooks: 'https://hooks.example.com/x' }, /"webhooks": must be an object/], // not "webhooks.0"
      [{ webhooks: [() => undefined] }, /"webhooks": must be an object/],
      [{ onBackupStart: 'notify' }, /"onBackupStart": must be a function/],
      [{ onRestoreError: 42 }, /"onRestoreError": must be a function/],
      [{ lease: { ttl: 1000 } }, /"lease.ttl": is not a lease option/],
      [{ includeMetadata: 'no' }, /"includeMetadata": "no" is not true or false/], // 'no' is truthy: metadata would be backed up
      [{ timezone: 5 }, /"timezone": 5 is not a string.*IANA/], // was UTC, silently
      [{ maxChainLength: '3' }, /"maxChainLength": "3" is not a positive integer/],
      // a misspelt condition would back up on every event
      [{ triggers: [{ event: 'afterBulkDelete', conditon: () => false }] }, /"triggers\[0\].conditon": is not a trigger field.*event, type, reason, condition/],
      [{ triggers: [{ event: 'deploy', reason: 5 }] }, /"triggers\[0\].reason": must be a string/],
    ];
    for (const [options, message] of cases) expect(refusal(options as BackupPluginOptions).message).toMatch(message);
    // null hooks stay allowed (s3db.js's defaults are null)
    expect(() => new BackupPlugin({ schedule: false, onBackupStart: null, config: { directory: path.join(work, 'null-hooks') } })).not.toThrow();
  });
});

describe('schedule objects', () => {
  it('unknown keys are refused instead of meaning "no timer"', () => {
    const bad: [BackupPluginOptions['schedule'] | Record<string, unknown>, string][] = [
      [{ daily: '0 2 * * *' }, 'schedule.daily'],
      [{ crom: '0 2 * * *' }, 'schedule.crom'],
      [{ cron: '0 2 * * *', interval: 60_000 }, 'schedule'],
      [{ enabled: true }, 'schedule.enabled'],
    ];
    for (const [schedule, option] of bad) {
      expect(refusal({ schedule: schedule as BackupPluginOptions['schedule'] }).message).toContain(`"${option}"`);
    }
    const perResource = { users: { schedule: { every: 'hour' } as unknown as string } };
    expect(refusal({ resources: perResource }).message).toContain('"resources.users.schedule.every"');
  });

  it('a per-resource schedule that turns its timer off (false, null, {}, { enabled: false }) is refused: the resource would be in no scheduled backup', () => {
    for (const schedule of [false, null, {}, { enabled: false }]) {
      const message = refusal({ resources: { users: { schedule: schedule as unknown as string } } }).message;
      expect(message).toContain('"resources.users.schedule"');
      expect(message).toContain('leave users out of every scheduled backup');
      expect(message).toContain('resources: { users: false }');
    }
  });

  it("s3db.js's {} (no timer), { cron }, { interval } and { enabled: false } keep working", () => {
    const cases: [BackupPluginOptions['schedule'], unknown][] = [
      [{}, false],
      [{ cron: '0 2 * * *' }, '0 2 * * *'],
      [{ interval: 60_000 }, 60_000],
      [{ cron: '0 2 * * *', enabled: false }, false],
      [{ interval: 60_000, enabled: true }, 60_000],
    ];
    for (const [schedule, expected] of cases) expect(new BackupPlugin({ schedule, config: { directory: path.join(work, 'sched') } }).config.schedule).toEqual(expected);
  });
});

describe("filesystem config.path (s3db.js's option)", () => {
  it("s3db.js's default shape '<dir>/{date}/' backs up under <dir> with {date} as a path level, and restores", async () => {
    const dir = path.join(work, 'fs-path');
    const db = await seeded('fs-path');
    const p = plugin({ config: { path: `${dir}/{date}/` } });
    expect(p.config.destinations[0]!.config).toMatchObject({ directory: dir, pathTemplate: '{year}-{month}-{day}/{id}' });
    await db.usePlugin(p);
    const expected = await settled(db);
    const b = await p.backup('full');
    const { year, month, day } = dateOf(b.id);
    const m = (await p.getBackup(b.id))!.manifest;
    expect(m.parts.length).toBeGreaterThan(0);
    for (const part of m.parts) {
      expect(part.path.startsWith(`data/${year}-${month}-${day}/${b.id}/`)).toBe(true);
      expect((await stat(path.join(dir, part.path))).size).toBe(part.size);
    }
    await stat(path.join(dir, 'manifests', `${b.id}.json`));
    const { files } = await walk(dir);
    expect(files.some((f) => f.includes('{'))).toBe(false);
    // a new instance given the same s3db.js option finds and restores it
    const target = await openDb(bucket('fs-path-target'));
    await plugin({ config: { path: `${dir}/{date}/` } }).restore({ backupId: b.id, destination: target });
    expect(await snapshot(target)).toEqual(expected);
  });

  it('{type}/{year}/{month}/{backupId} map onto ours; a path without variables is just the directory', async () => {
    const dir = path.join(work, 'fs-path-vars');
    const db = await seeded('fs-path-vars');
    const p = plugin({ config: { path: `${dir}/{type}/{year}/{month}/{backupId}` } });
    await db.usePlugin(p);
    const b = await p.backup('full');
    const { year, month } = dateOf(b.id);
    const parts = (await p.getBackup(b.id))!.manifest.parts;
    for (const part of parts) expect(part.path.startsWith(`data/full/${year}/${month}/${b.id}/`)).toBe(true);

    const plain = plugin({ config: { path: path.join(work, 'fs-plain') } });
    expect(plain.config.destinations[0]!.config).toEqual({ directory: path.join(work, 'fs-plain') });
    const multi = plugin({ driver: 'multi', destinations: [{ driver: 'filesystem', config: { path: `${path.join(work, 'fs-m')}/{date}` } }] });
    expect(multi.config.destinations[0]!.config).toMatchObject({ directory: path.join(work, 'fs-m'), pathTemplate: '{year}-{month}-{day}/{id}' });
  });

  it('variables without an equivalent, path with directory, and path with another pathTemplate are refused', () => {
    const time = refusal({ config: { path: `${work}/{date}/{time}/` } });
    expect(time.message).toContain('"config.path"');
    expect(time.message).toContain('{time}');
    expect(time.message).toContain('{timestamp}');
    expect(refusal({ config: { path: `${work}/{foo}` } }).message).toMatch(/"config\.path".*\{foo\}/);
    expect(refusal({ config: { path: `${work}/x`, directory: work } }).message).toContain('"config.path"');
    expect(refusal({ config: { path: `${work}/{date}` }, pathTemplate: '{id}' }).message).toContain('"config.path"');
    expect(refusal({ config: { path: `${work}/{date}/../x` } }).message).toContain('"config.path"');
    expect(refusal({ driver: 'multi', destinations: [{ driver: 'filesystem', config: { path: `${work}/{time}` } }] }).message).toContain('"destinations[0].config.path"');
  });

  it('permissions / directoryPermissions are the modes of the files and directories created', async () => {
    const dir = path.join(work, 'fs-modes', 'nested');
    const db = await seeded('fs-modes');
    const p = plugin({ config: { directory: dir, permissions: 0o600, directoryPermissions: 0o700 }, encryption: { passphrase: SECRET, iterations: 100_000 } });
    await db.usePlugin(p);
    await p.backup('full');
    const { files, dirs } = await walk(dir);
    expect(files.length).toBeGreaterThan(3); // parts, index, manifest, key file
    for (const f of files) expect([f, ((await stat(f)).mode & 0o777).toString(8)]).toEqual([f, '600']);
    for (const d of dirs) expect([d, ((await stat(d)).mode & 0o777).toString(8)]).toEqual([d, '700']);

    expect(refusal({ config: { directory: dir, permissions: 0o200 } }).message).toContain('"config.permissions"');
    expect(refusal({ config: { directory: dir, permissions: '644' as unknown as number } }).message).toContain('"config.permissions"');
    expect(refusal({ config: { directory: dir, directoryPermissions: 0o600 } }).message).toContain('"config.directoryPermissions"');
  });
});

describe("multi: s3db.js's config.drivers and config.concurrency", () => {
  it('config: { strategy, concurrency, drivers } writes every backup to each driver', async () => {
    const a = path.join(work, 'multi-a');
    const b = path.join(work, 'multi-b');
    const db = await seeded('multi-drivers');
    const p = plugin({
      driver: 'multi',
      config: { strategy: 'all', concurrency: 3, drivers: [{ driver: 'filesystem', config: { directory: a } }, { driver: 'filesystem', config: { path: b } }] },
    });
    expect(p.config.strategy).toBe('all');
    await db.usePlugin(p);
    const backup = await p.backup('full');
    expect(backup.driverInfo).toEqual([
      { label: `filesystem:${a}`, status: 'ok' },
      { label: `filesystem:${b}`, status: 'ok' },
    ]);
    const left = await readFile(path.join(a, 'manifests', `${backup.id}.json`));
    expect(await readFile(path.join(b, 'manifests', `${backup.id}.json`))).toEqual(left);
    // s3db.js's code form: config: { destinations, strategy, concurrency }
    const code = plugin({ driver: 'multi', config: { destinations: [{ driver: 'filesystem', config: { directory: a } }], strategy: 'any', concurrency: 2 } });
    expect(code.config.destinations).toHaveLength(1);
    expect(code.config.strategy).toBe('any');
  });

  it('two lists, a bad concurrency, an unknown multi key or destination field are refused', () => {
    const fs = (dir: string) => ({ driver: 'filesystem' as const, config: { directory: path.join(work, dir) } });
    expect(refusal({ driver: 'multi', config: { destinations: [fs('x')], drivers: [fs('y')] } }).message).toContain('"config.drivers"');
    expect(refusal({ driver: 'multi', destinations: [fs('x')], config: { drivers: [fs('y')] } }).message).toContain('"config.drivers"');
    expect(refusal({ driver: 'multi', config: { drivers: [fs('x')], concurrency: 0 } }).message).toContain('"config.concurrency"');
    expect(refusal({ driver: 'multi', config: { drivers: [fs('x')], stratgy: 'any' } }).message).toContain('"config.stratgy"');
    expect(refusal({ driver: 'multi', config: { drivers: [fs('x')], strategy: 'any' }, strategy: 'all' }).message).toContain('"config.strategy"');
    expect(refusal({ driver: 'multi', config: { drivers: [] } }).message).toContain('"config.drivers"');
    const typo = [{ driver: 'filesystem', confg: { directory: 'x' } }] as unknown as BackupPluginOptions['destinations'];
    expect(refusal({ driver: 'multi', destinations: typo }).message).toContain('"destinations[0].confg"');
  });
});

describe('s3 destinations', () => {
  it("without a bucket: refused with what to add (no fallback to the database's bucket)", () => {
    for (const config of [{}, { region: 'us-east-1' }, { path: 'backups/{date}/' }]) {
      const e = refusal({ driver: 's3', config });
      expect(e.message).toContain('"config.bucketName"');
      expect(e.message).toContain('config.client');
      expect(e.message).toContain('config.credentials');
    }
    const multi = refusal({ driver: 'multi', destinations: [{ driver: 'filesystem', config: { directory: path.join(work, 's3-m') } }, { driver: 's3', config: {} }] });
    expect(multi.message).toContain('"destinations[1].config.bucketName"');
    expect(refusal({ driver: 's3', config: { bucketName: 'my-backups', path: 'backups/{date}/', prefix: 'other/' } }).message).toContain('"config.path"');
    // a connection string pasted as the bucket: refused without echoing its credentials
    expect(refusal({ driver: 's3', config: { bucketName: 's3://AKIAEXAMPLE:SECRETCANARY/x+y@my-backups' } }).message).not.toContain('SECRETCANARY');
    expect(refusal({ driver: 's3', config: { bucketName: 'AKIAEXAMPLE:SECRETCANARY@my-backups' } }).message).not.toContain('SECRETCANARY');
    const mapped = new BackupPlugin({ schedule: false, driver: 's3', config: { bucketName: 'my-backups', path: './backups/{type}/{backupId}' } });
    expect(mapped.config.destinations[0]!.config).toMatchObject({ prefix: 'backups', pathTemplate: '{type}/{id}' });
  });

  it('credentials are never shown by plugin.options, plugin.config or util.inspect(plugin); a webhook error quoting a URL with credentials is redacted', async () => {
    const creds = { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'SECRETCANARY/with/slash+plus', sessionToken: 'SESSIONCANARY' };
    const failures: unknown[] = [];
    const p = plugin({
      driver: 'multi',
      destinations: [
        { driver: 'filesystem', config: { directory: path.join(work, 'creds-fs') } },
        { driver: 's3', config: { bucketName: 'creds-bucket', endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials: creds, maxAttempts: 1 } },
      ],
      strategy: 'any',
      encryption: { passphrase: SECRET },
      webhooks: {
        onSuccess: () => {
          throw new Error('Request cannot be constructed from a URL that includes credentials: https://hookuser:TOKENCANARY@hooks.example/x');
        },
      },
    });
    p.on('plg:backup:webhook-error', (e: unknown) => failures.push(e));
    const shown = [inspect(p, { depth: 12, showHidden: true }), JSON.stringify(p.options), JSON.stringify(p.config), inspect(p.config, { depth: 12 })].join('\n');
    for (const secret of [creds.secretAccessKey, creds.sessionToken, SECRET]) expect(shown).not.toContain(secret);
    expect(JSON.stringify(p.options)).toContain('creds-bucket'); // the rest of the options stays readable
    const db = await seeded('creds');
    await db.usePlugin(p);
    await p.createBackup(); // the filesystem member takes it (strategy any); onSuccess throws
    expect(failures).toHaveLength(1);
    expect(JSON.stringify(failures)).not.toContain('TOKENCANARY');
    expect(JSON.stringify(failures)).toContain('hooks.example');
  });

  describe('on the real S3 server', () => {
    let admin: S3Client;
    let s3Bucket: string;
    beforeAll(async () => {
      admin = makeS3Client();
      s3Bucket = await makeBucket(admin, 'compat');
    });
    afterAll(async () => {
      await deleteBucket(admin, s3Bucket);
      admin.destroy();
    });

    it("config.path 'backups/{date}/' (s3db.js's S3 default) is the prefix plus {date} as a path level, never a literal {date} key", async () => {
      const env = s3Env();
      const db = await seeded('s3-path');
      const p = plugin({
        driver: 's3',
        config: { bucketName: s3Bucket, path: 'backups/{date}/', endpoint: env.endpoint, region: env.region, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } },
      });
      await db.usePlugin(p);
      const b = await p.backup('full');
      const { year, month, day } = dateOf(b.id);
      const keys = await listKeys(admin, s3Bucket);
      expect(keys).toContain(`backups/manifests/${b.id}.json`);
      const parts = keys.filter((k) => k.startsWith('backups/data/'));
      expect(parts.length).toBeGreaterThan(0);
      for (const k of parts) expect(k.startsWith(`backups/data/${year}-${month}-${day}/${b.id}/`)).toBe(true);
      expect(keys.some((k) => k.includes('{'))).toBe(false);
    });
  });
});
