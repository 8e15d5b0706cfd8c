// The less common recovery paths a 3 AM review walked, on the real s3db.js and a real filesystem
// destination (files damaged by hand, as a disk or an operator would): a verification that fails
// for want of the passphrase records nothing (a recorded failure would let retention delete a good
// backup); one corrupt manifest does not hide the other backups; a corrupt key.json does not block
// a restore (every manifest embeds the key file) but does stop a new backup from writing a new
// key; verifying an incremental checks the backups it needs; a damaged part is named; an
// encrypted backup's plaintext manifest names no object key; an empty list from a directory that
// does not exist, and a copy damaged at one of two destinations, are logged; lost or corrupt
// manifests come back from the copy each backup keeps beside its parts (also with a part lost:
// the damage is then recorded), never for a backup none of whose parts is there.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin, type BackupPluginOptions } from '../src/index.js';
import { openDb, seededCopies, snapshot } from './helpers/database.js';
import { filesUnder } from './helpers/files.js';
import { processSpace } from '../src/lease/process-space.js';
import { warnInto } from './helpers/logger.js';

const SMALL = { users: 5, orders: 8, perBehavior: 1 };
const PASSPHRASE = 'recovery-paths-passphrase-never-logged';
let work: string;
let seq = 0;
const bucket = (name: string) => `memory://recovery-${name}-${process.pid}-${++seq}/db`;
const copySeeded = seededCopies(SMALL, () => bucket('template'));

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'recovery-paths-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

type Orders = { insert(v: Record<string, unknown>): Promise<unknown> };
type Manifest = { id: string; copy?: string; parts: { path: string; size: number; sha256: string; group: string; firstKey: string | null }[] };

async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The destination `dir` alone lists exactly backup `id`, and restores it into an empty database equal to `db`. */
async function restoresAlone(db: Awaited<ReturnType<typeof openDb>>, dir: string, id: string): Promise<void> {
  const alone = new BackupPlugin({ schedule: false, config: { directory: dir } });
  await db.usePlugin(alone, `alone-${++seq}`);
  expect((await alone.listBackups()).map((x) => x.id)).toEqual([id]);
  const target = await openDb(bucket('alone-target'));
  await alone.restore({ backupId: id, destination: target });
  expect(await snapshot(target)).toEqual(await snapshot(db));
  await alone.stop();
}

/** A backed-up database: a full and an incremental, encrypted, in `dir`. */
async function fullAndIncremental(name: string, extra: BackupPluginOptions = {}) {
  const dir = path.join(work, name);
  const db = await copySeeded(bucket(name));
  const p = new BackupPlugin({ schedule: false, config: { directory: dir }, encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, ...extra });
  await db.usePlugin(p);
  const full = await p.backup('full');
  await (db.resources.orders as unknown as Orders).insert({ id: 'o-new', userId: 'u1', total: 1, status: 'new' });
  const inc = await p.backup('incremental');
  expect(inc.type).toBe('incremental');
  await p.stop();
  return { dir, db, full, inc };
}

/** A fresh plugin on the same directory (nothing cached), as a new process would have. */
async function reopen(dir: string, options: BackupPluginOptions = {}) {
  const db = await openDb(bucket('reader'));
  const p = new BackupPlugin({ schedule: false, config: { directory: dir }, ...options });
  await db.usePlugin(p);
  return { db, p };
}

const manifestPath = (dir: string, id: string) => path.join(dir, 'manifests', `${id}.json`);
const readManifest = async (dir: string, id: string) => JSON.parse(await readFile(manifestPath(dir, id), 'utf8')) as Manifest;

describe('recovery paths', () => {
  // A deletion whose marker cannot be written (a full disk) deletes the manifest last there: cut
  // short, the backup stays listed, to be deleted again; recoverBackups() never brings a deleted
  // one back from its copy, nor calls its leftover parts a lost backup.
  for (const [stoppedAt, refusedOf] of [
    ["the backup's folder (its parts and manifest copy)", (dir: string, m: Manifest) => [path.join(dir, path.dirname(m.parts[0]!.path))]],
    ['the index', (dir: string) => [path.join(dir, 'indexes')]],
  ] as const) {
    it(`a deletion that cannot write its marker and stops at ${stoppedAt} leaves the backup listed; deleted again, nothing of it is left or recovered`, async () => {
      const dir = path.join(work, `cut-delete-${++seq}`);
      const db = await copySeeded(bucket('cut-delete'));
      const p = new BackupPlugin({ schedule: false, config: { directory: dir }, logger: warnInto([]) });
      await db.usePlugin(p);
      const kept = await p.createBackup();
      const doomed = await p.createBackup();
      const manifest = (await p.getBackup(doomed.id))!.manifest as unknown as Manifest;
      // real refusals (chattr +i, even for root): pending/ takes no marker, and the deletion stops
      const refused = [path.join(dir, 'pending'), ...refusedOf(dir, manifest)];
      for (const d of refused) await mkdir(d, { recursive: true });
      const { execFileSync } = await import('node:child_process');
      execFileSync('chattr', ['+i', ...refused]);
      try {
        await expect(p.deleteBackup(doomed.id)).rejects.toThrow();
      } finally {
        execFileSync('chattr', ['-i', ...refused]);
      }
      expect((await p.listBackups()).map((b) => b.id)).toContain(doomed.id);
      expect((await p.recoverBackups()).recovered).toEqual([]);
      await p.deleteBackup(doomed.id); // once the disk takes writes again
      const report = await p.recoverBackups();
      expect(report.recovered).toEqual([]);
      expect(report.skipped).toEqual([]);
      expect((await p.listBackups()).map((b) => b.id)).toEqual([kept.id]);
      expect((await filesUnder(dir)).filter((f) => f.includes(doomed.id))).toEqual([]);
      await p.stop();
    });
  }

  it('recoverBackups() of a location holding nothing (a mistyped directory) says so (empty: true, a warning naming it) and creates nothing there', async () => {
    const db = await openDb(`memory://recover-empty-${process.pid}-${++seq}/db`);
    const typo = path.join(work, `bakcups-${seq}`);
    const warnings: string[] = [];
    const p = new BackupPlugin({ schedule: false, config: { directory: typo }, logger: warnInto(warnings) });
    await db.usePlugin(p);
    const report = await p.recoverBackups();
    expect(report).toEqual({ recovered: [], indexes: [], skipped: [], empty: true });
    expect(warnings).toEqual([`nothing to recover at filesystem:${typo}: it holds no backup, nor any part, index or key file of one (${typo} does not exist (no backup was ever written there): check config.directory)`]);
    expect(await readdir(typo).then(() => 'created', () => 'absent')).toBe('absent');
    await p.stop();
  });

  it('a verification that finds damage but cannot record it (verifications/ refuses writes) says so in a warning', async () => {
    const { dir, full } = await fullAndIncremental(`unrecorded-${++seq}`);
    const m = await readManifest(dir, full.id);
    const file = path.join(dir, m.parts[0]!.path);
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x20;
    await writeFile(file, bytes);
    const warnings: string[] = [];
    const { p } = await reopen(dir, { encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, logger: warnInto(warnings) });
    const records = path.join(dir, 'verifications');
    await mkdir(records, { recursive: true });
    const { execFileSync } = await import('node:child_process');
    execFileSync('chattr', ['+i', records]); // a real refusal, even for root (as a full disk refuses)
    try {
      expect((await p.verifyBackup(full.id, { level: 'quick' })).verified).toBe(false);
    } finally {
      execFileSync('chattr', ['-i', records]);
    }
    expect(warnings).toContainEqual(expect.stringMatching(new RegExp(`the verification of ${full.id} \\(verified: false\\) could not be recorded at .*retention and the next incremental do not know of the damage found`)));
    await p.stop();
  });

  it('a verification without the passphrase, or with a wrong one, is thrown and recorded nowhere', async () => {
    const { dir, full, inc } = await fullAndIncremental('noverify', { retention: { policy: 'gfs', last: 5 } });
    for (const passphrase of [undefined, 'not-the-passphrase']) {
      const { p } = await reopen(dir, passphrase ? { encryption: { passphrase, iterations: 100_000 } } : {});
      const verified: unknown[] = [];
      p.on('plg:backup:verified', (e) => verified.push(e));
      const err = await p.verifyBackup(inc.id).then(() => null, (e: unknown) => e as { code: string; message: string });
      expect(err?.code).toBe(passphrase ? 'ERR_WRONG_PASSPHRASE' : 'ERR_PASSPHRASE_REQUIRED');
      expect(err!.message).not.toContain(PASSPHRASE);
      expect(verified).toEqual([]);
      expect((await p.listBackups({ verified: true })).map((b) => b.id)).toEqual([inc.id, full.id]);
      await p.stop();
    }
    expect(await readdir(path.join(dir, 'verifications')).catch(() => [])).toEqual([]);
    // The production plugin's next backup applies retention: both earlier backups are still kept.
    const { p } = await reopen(dir, { encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, retention: { policy: 'gfs', last: 5 } });
    await p.createBackup();
    expect((await p.listBackups()).map((b) => b.id)).toEqual(expect.arrayContaining([inc.id, full.id]));
    await p.stop();
  });

  it('a part that cannot be read (an I/O error, not damage) is thrown, never recorded: retention keeps the backups', async () => {
    const { dir, full, inc } = await fullAndIncremental('io-error', { retention: { policy: 'simple', count: 5 } });
    const part = (await readManifest(dir, full.id)).parts[0]!;
    const file = path.join(dir, part.path);
    const bytes = await readFile(file);
    // A real I/O error on demand: the part's path is a directory (reading it fails with EISDIR).
    await rm(file);
    await mkdir(file);
    const { p } = await reopen(dir, { encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, retention: { policy: 'simple', count: 5 } });
    for (const id of [full.id, inc.id]) {
      await expect(p.verifyBackup(id)).rejects.toMatchObject({ code: 'ERR_VERIFY_INCOMPLETE', message: expect.stringContaining(part.path) });
    }
    expect(await readdir(path.join(dir, 'verifications')).catch(() => [])).toEqual([]);
    await rm(file, { recursive: true });
    await writeFile(file, bytes);
    await p.createBackup();
    expect((await p.listBackups()).map((b) => b.id)).toEqual(expect.arrayContaining([full.id, inc.id]));
    expect((await p.verifyBackup(inc.id)).verified).toBe(true);
    await p.stop();
  });

  it('a destination that cannot serve an object gets no more reads in that verification: each would wait out the same timeouts (~12 min a part on an S3 store that stopped answering)', async () => {
    const { dir, full } = await fullAndIncremental('io-all', { partSize: 1024 });
    const parts = (await readManifest(dir, full.id)).parts;
    expect(parts.length).toBeGreaterThan(4);
    // A real I/O error on demand: every part's path is a directory (reading it fails with EISDIR).
    for (const part of parts) {
      await rm(path.join(dir, part.path));
      await mkdir(path.join(dir, part.path));
    }
    const { p } = await reopen(dir, { encryption: { passphrase: PASSPHRASE, iterations: 100_000 } });
    // the reads asked of the destination, observed (not faked)
    const destination = p.destinations.members[0] as unknown as { read(at: string, range?: unknown): Promise<unknown> };
    const read = destination.read.bind(destination);
    const asked: string[] = [];
    destination.read = (at, range) => {
      asked.push(at);
      return read(at, range);
    };
    const failed = await p.verifyBackup(full.id).then(() => null, (e: unknown) => e as Error & { code?: string });
    expect(failed).toMatchObject({ code: 'ERR_VERIFY_INCOMPLETE', message: expect.stringContaining(parts[0]!.path) });
    const partReads = new Set(asked.filter((at) => parts.some((part) => part.path === at)));
    expect(partReads.size).toBeLessThanOrEqual(2); // those in flight when the first failed (concurrency 2)
    expect(await readdir(path.join(dir, 'verifications')).catch(() => [])).toEqual([]);
    await p.stop();
  });

  it("a running backup's parts are never cleaned up by a process in another pid namespace with the same host name", async () => {
    const dir = path.join(work, 'pidns');
    const db = await copySeeded(bucket('pidns'));
    const p = new BackupPlugin({ schedule: false, config: { directory: dir }, lease: false });
    await db.usePlugin(p);
    // The pending marker of a backup running in another container with the same host name (its pid
    // means nothing here). Written by hand: pid namespaces cannot be given free pids on demand.
    const exited = spawnSync(process.execPath, ['-e', '0']).pid!;
    const part = 'data/2026/12/01/full-20261201T000000000Z-abcdef/users.000001';
    const marker = { id: 'full-20261201T000000000Z-abcdef', type: 'full', startedAt: new Date().toISOString(), heartbeatAt: new Date().toISOString(), host: hostname(), pid: exited, parts: [part] };
    await mkdir(path.dirname(path.join(dir, part)), { recursive: true });
    await writeFile(path.join(dir, part), 'in progress');
    await mkdir(path.join(dir, 'pending'), { recursive: true });
    await writeFile(path.join(dir, 'pending', `${marker.id}.json`), JSON.stringify({ ...marker, space: `${processSpace()}-other` }));
    await p.createBackup();
    expect(await readFile(path.join(dir, part), 'utf8')).toBe('in progress');
    // The same marker from this pid namespace: that process is gone, so its leftovers go.
    await writeFile(path.join(dir, 'pending', `${marker.id}.json`), JSON.stringify({ ...marker, space: processSpace() }));
    await p.createBackup();
    expect((await filesUnder(dir)).filter((f) => f.includes(marker.id))).toEqual([]);
    await p.stop();
  });

  it("an encrypted backup's manifest (plaintext) names no object key: no record id, no partition value", async () => {
    const { dir, full, inc } = await fullAndIncremental('keys');
    for (const id of [full.id, inc.id]) {
      const text = await readFile(manifestPath(dir, id), 'utf8');
      expect(text).not.toMatch(/id=|u0000\d|o0000\d|plan=|status=completed/);
      expect((JSON.parse(text) as Manifest).parts.every((p) => p.firstKey === null)).toBe(true);
    }
    // A plain backup does record each part's key range.
    const db = await copySeeded(bucket('keys-plain'));
    const p = new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'keys-plain') } });
    await db.usePlugin(p);
    const plain = await p.backup('full');
    const m = await readManifest(path.join(work, 'keys-plain'), plain.id);
    expect(m.parts.some((x) => String(x.firstKey).startsWith('resource=users/'))).toBe(true);
    await p.stop();
  });

  it("an encrypted backup's manifest holds the caller's reason, metadata and trigger payload sealed: shown with the passphrase, never in plaintext", async () => {
    const dir = path.join(work, 'sealed');
    const db = await copySeeded(bucket('sealed'));
    const encryption = { passphrase: PASSPHRASE, iterations: 100_000 };
    const p = new BackupPlugin({ schedule: false, config: { directory: dir }, encryption, triggers: [{ event: 'user-deleted', reason: 'deleted user SSN-REASON' }] });
    await db.usePlugin(p);
    const manual = await p.createBackup({ reason: 'before deploy REASON-42', metadata: { dbPassword: 'hunter2-META' } });
    expect(manual).toMatchObject({ reason: 'before deploy REASON-42', metadata: { dbPassword: 'hunter2-META' } }); // the caller sees its own fields
    db.emit('user-deleted', { ssn: '123-45-6789', apiToken: 'tok_live_ABCDEF' });
    await waitFor(async () => (await p.listBackups()).length === 2);
    await p.stop(); // waits for the triggered backup to finish: its pending and temporary files are gone
    const [triggered] = await p.listBackups();
    for (const file of await filesUnder(dir)) {
      const text = await readFile(path.join(dir, file), 'latin1');
      for (const secret of ['REASON-42', 'hunter2-META', '123-45-6789', 'tok_live_ABCDEF', 'SSN-REASON']) expect(text, file).not.toContain(secret);
    }
    const stored = await readManifest(dir, triggered!.id);
    expect(stored).toMatchObject({ reason: null, metadata: {}, trigger: { event: 'user-deleted', payload: null }, sealed: expect.any(String) });
    // A new process with the passphrase sees them; without it they stay sealed (null).
    const reader = new BackupPlugin({ schedule: false, config: { directory: dir }, encryption });
    await db.usePlugin(reader, 'reader');
    expect((await reader.getBackup(manual.id))!).toMatchObject({ reason: 'before deploy REASON-42', metadata: { dbPassword: 'hunter2-META' } });
    expect((await reader.getBackup(triggered!.id))!.manifest.trigger).toEqual({ event: 'user-deleted', payload: { ssn: '123-45-6789', apiToken: 'tok_live_ABCDEF' } });
    expect((await reader.listBackups()).map((b) => b.reason)).toEqual(['deleted user SSN-REASON', 'before deploy REASON-42']);
    const blind = new BackupPlugin({ schedule: false, config: { directory: dir }, logger: { warn() {}, error() {}, info() {} } });
    await db.usePlugin(blind, 'blind');
    expect((await blind.listBackups()).map((b) => [b.reason, b.metadata])).toEqual([[null, {}], [null, {}]]);
    // a wrong passphrase: sealed as well, one try and one warning for the key, not one per backup
    const warnings: string[] = [];
    const wrong = new BackupPlugin({ schedule: false, config: { directory: dir }, encryption: { passphrase: 'not it', iterations: 100_000 }, logger: warnInto(warnings) });
    await db.usePlugin(wrong, 'wrong');
    expect((await wrong.listBackups()).map((b) => b.reason)).toEqual([null, null]);
    expect(warnings.filter((w) => w.includes('stay sealed'))).toHaveLength(1);
    for (const q of [reader, blind, wrong]) await q.stop();
  });

  it('an empty list from a directory that does not exist, or one level off the backup folder, says so (a typo looks like "no backups")', async () => {
    const warnings: string[] = [];
    const logger = warnInto(warnings);
    const { p } = await reopen(path.join(work, 'no-such-dir', 'backups'), { logger: logger as never, lease: false });
    expect(await p.listBackups()).toEqual([]);
    expect(warnings).toEqual([expect.stringMatching(/no backups listed: .*no-such-dir.*does not exist.*check config\.directory/)]);
    await p.stop();
    const empty = path.join(work, 'empty-dir');
    await mkdir(empty);
    warnings.length = 0;
    const again = await reopen(empty, { logger: logger as never, lease: false });
    expect(await again.p.listBackups()).toEqual([]);
    expect(warnings).toEqual([]); // an existing, empty directory is simply "no backups yet"
    await again.p.stop();
    // one level off: the parent of the backup folder, or its manifests/ folder
    const made = await fullAndIncremental('one-level-off');
    const dir = path.join(work, 'one-level-off-parent', 'backups'); // a parent holding this backup folder only
    cpSync(made.dir, dir, { recursive: true });
    for (const [where, hint] of [[path.dirname(dir), `but ${dir} does: if it holds this database's, set config.directory to it`], [path.join(dir, 'manifests'), `set config.directory to ${dir}`]] as const) {
      warnings.length = 0;
      const off = await reopen(where, { logger: logger as never, lease: false });
      expect(await off.p.listBackups()).toEqual([]);
      expect(warnings).toEqual([expect.stringContaining(hint)]);
      await off.p.stop();
    }
  });

  it('a copy damaged at one of two destinations: verified from the other, and the lost redundancy is logged', async () => {
    const db = await copySeeded(bucket('twocopies'));
    const dirs = [path.join(work, 'copy-a'), path.join(work, 'copy-b')];
    const warnings: string[] = [];
    const logger = warnInto(warnings);
    const p = new BackupPlugin({ schedule: false, driver: 'multi', destinations: dirs.map((directory) => ({ driver: 'filesystem' as const, config: { directory } })), logger: logger as never });
    await db.usePlugin(p);
    const b = await p.backup('full');
    const part = (await readManifest(dirs[0]!, b.id)).parts[0]!;
    const file = path.join(dirs[1]!, part.path);
    const bytes = await readFile(file);
    bytes[0] ^= 1;
    await writeFile(file, bytes);
    const result = await p.verifyBackup(b.id, { level: 'quick' });
    expect(result.verified).toBe(true);
    expect(result.destinations.map((d) => d.verified)).toEqual([true, false]);
    expect(warnings).toEqual([expect.stringContaining(`its copy at filesystem:${dirs[1]} is damaged`)]);
    await p.stop();
  });

  it('with verify: false, a damaged part met midway says the target is partly restored', async () => {
    const db = await copySeeded(bucket('partial'));
    const dir = path.join(work, 'partial');
    const p = new BackupPlugin({ schedule: false, config: { directory: dir } });
    await db.usePlugin(p);
    const b = await p.backup('full');
    // 'users' is restored after the other resources (groups in name order, the database last).
    const part = (await readManifest(dir, b.id)).parts.find((x) => x.group === 'users')!;
    await writeFile(path.join(dir, part.path), Buffer.from('not a gzip stream'));
    const target = await openDb(bucket('partial-target'));
    const err = await p.restore({ backupId: b.id, destination: target, verify: false }).then(() => null, (e: unknown) => e as { code: string; message: string });
    expect(err?.code).toBe('ERR_PART_UNREADABLE');
    expect(err!.message).toMatch(/\d+ objects were already written: the target is partly restored.*run the same restore again/);
    expect(err!.message.split(`filesystem:${dir}`).length - 1).toBe(1); // the destination named once
    expect((await snapshot(target)).length).toBeGreaterThan(0); // what the message says
    await p.stop();
  });

  it('a whole-database replace says, dry run included, what it drops beyond the per-resource counts', async () => {
    const db = await copySeeded(bucket('drops'));
    const dir = path.join(work, 'drops');
    const warnings: string[] = [];
    const logger = warnInto(warnings);
    const p = new BackupPlugin({ schedule: false, config: { directory: dir }, logger: logger as never });
    await db.usePlugin(p);
    const b = await p.backup('full');
    await db.createResource({ name: 'audit', attributes: { what: 'string' } });
    await db.client.putObject({ key: 's3db.json.corrupted.1764560000000.backup', body: Buffer.from('{"broken'), contentType: 'application/json' });
    const dry = await p.restore({ backupId: b.id, dryRun: true });
    expect(dry.warnings).toEqual([
      expect.stringMatching(/database-level objects the backup does not have are deleted: s3db\.json\.corrupted\.1764560000000\.backup$/),
      expect.stringMatching(/resources the backup does not define are dropped from s3db\.json .*: audit; restore with resources/),
    ]);
    expect(warnings).toEqual(dry.warnings.map((w) => `restore of ${b.id}: ${w}`));
    expect((await p.restore({ backupId: b.id, dryRun: true, resources: ['users'] })).warnings).toEqual([]);
    expect((await p.restore({ backupId: b.id, dryRun: true, mode: 'merge' })).warnings).toEqual([]);
    await p.stop();
  });

  it('one corrupt manifest is left out of listBackups and reported; the others are listed and restorable', async () => {
    const { dir, full, inc } = await fullAndIncremental('badmanifest');
    const text = await readFile(manifestPath(dir, inc.id), 'utf8');
    await writeFile(manifestPath(dir, inc.id), text.slice(0, 200));
    const { p } = await reopen(dir, { encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, logger: { warn() {}, error() {}, info() {} } as never });
    const unreadable: { id: string; error: string }[] = [];
    p.on('plg:backup:unreadable', (e: { id: string; error: string }) => unreadable.push(e));
    expect((await p.listBackups()).map((b) => b.id)).toEqual([full.id]);
    expect(unreadable).toEqual([{ id: inc.id, error: expect.stringContaining('not valid JSON') }]);
    const target = await openDb(bucket('badmanifest-target'));
    await p.restore({ backupId: full.id, destination: target });
    // The full's state: the seeded orders, not the order the (unreadable) incremental added.
    const keys = (await snapshot(target)).map((o) => o.key);
    expect(keys).toContain('resource=orders/data/id=o00001');
    expect(keys.some((k) => k.includes('id=o-new'))).toBe(false);
    await p.stop();
  });

  it('a manifest of a newer format version (a newer s3db-backup sharing the destination) is left out and named as such, not as corrupt, and left alone by recoverBackups()', async () => {
    const { dir, full, inc } = await fullAndIncremental('newer-manifest');
    const text = await readFile(manifestPath(dir, inc.id), 'utf8');
    const newer = text.replace(/"version": \d+/, '"version": 3');
    expect(newer).not.toBe(text);
    await writeFile(manifestPath(dir, inc.id), newer);
    const { p } = await reopen(dir, { encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, logger: { warn() {}, error() {}, info() {} } as never });
    const unreadable: { id: string; error: string }[] = [];
    p.on('plg:backup:unreadable', (e: { id: string; error: string }) => unreadable.push(e));
    expect((await p.listBackups()).map((b) => b.id)).toEqual([full.id]);
    expect(unreadable).toEqual([{ id: inc.id, error: expect.stringContaining('written by a newer s3db-backup (manifest format version 3') }]);
    await expect(p.restore({ backupId: inc.id, dryRun: true })).rejects.toMatchObject({ code: 'ERR_MANIFEST_VERSION' });
    await p.recoverBackups();
    expect(await readFile(manifestPath(dir, inc.id), 'utf8')).toBe(newer);
    await p.stop();
  });

  it('a corrupt key.json: restores use the key file every manifest embeds; a new backup refuses to replace it', async () => {
    const { dir, db, inc } = await fullAndIncremental('badkey');
    await writeFile(path.join(dir, 'key.json'), 'garbage');
    const { p } = await reopen(dir, { encryption: { passphrase: PASSPHRASE, iterations: 100_000 } });
    const target = await openDb(bucket('badkey-target'));
    await p.restore({ backupId: inc.id, destination: target });
    expect(await snapshot(target)).toEqual(await snapshot(db));
    await p.stop();
    const writer = new BackupPlugin({ schedule: false, config: { directory: dir }, encryption: { passphrase: PASSPHRASE, iterations: 100_000 } });
    await db.usePlugin(writer, 'writer');
    await expect(writer.createBackup()).rejects.toMatchObject({ code: 'ERR_BAD_KEY_FILE', message: expect.stringContaining('encryption.keyFile in manifests/<id>.json') });
    expect(await readFile(path.join(dir, 'key.json'), 'utf8')).toBe('garbage'); // not replaced by a new key
    // recoverBackups() puts it back from the newest manifest's copy, which opens with the passphrase (walk-28 F5)
    const recovered = await writer.recoverBackups();
    expect(recovered.keyFiles).toEqual({ mended: [{ destination: writer.destinations.members[0]!.label, from: "the key file the newest encrypted backup's manifest embeds" }], left: [] });
    const next = await writer.createBackup({ type: 'incremental' });
    expect(next.type).toBe('incremental'); // the same master key: the chain goes on
    // another tool's JSON file of that name (a service account's key): said to be not ours, and never written over
    const foreign = JSON.stringify({ type: 'service_account', private_key: '...' });
    await writeFile(path.join(dir, 'key.json'), foreign);
    await expect(writer.createBackup()).rejects.toMatchObject({ code: 'ERR_BAD_KEY_FILE', message: expect.stringContaining('not an s3db-backup key file') });
    expect((await writer.recoverBackups()).keyFiles?.left).toEqual([expect.objectContaining({ reason: expect.stringContaining('not an s3db-backup key file') })]);
    expect(await readFile(path.join(dir, 'key.json'), 'utf8')).toBe(foreign);
    await writer.stop();
  });

  it('a deleted key.json: the next backup puts it back from the newest manifest (same master key, no split); with another passphrase (a rotation) a new key is made, with a warning', async () => {
    const { dir, db, full } = await fullAndIncremental('lostkey');
    const original = await readFile(path.join(dir, 'key.json'), 'utf8');
    const rotated = path.join(work, 'lostkey-rotated');
    cpSync(dir, rotated, { recursive: true });
    await rm(path.join(dir, 'key.json'));
    const writer = new BackupPlugin({ schedule: false, config: { directory: dir }, encryption: { passphrase: PASSPHRASE, iterations: 100_000 } });
    await db.usePlugin(writer, 'writer');
    const next = await writer.createBackup();
    expect(JSON.parse(await readFile(path.join(dir, 'key.json'), 'utf8'))).toEqual(JSON.parse(original));
    const keyChecks = new Set([full.id, next.id].map((id) => (JSON.parse(readFileSync(manifestPath(dir, id), 'utf8')) as { encryption: { keyCheck: string } }).encryption.keyCheck));
    expect(keyChecks.size).toBe(1);
    await writer.stop();
    // key.json moved away on purpose and a new passphrase set: the documented way to rotate the key
    await rm(path.join(rotated, 'key.json'));
    const warnings: string[] = [];
    const fresh = new BackupPlugin({ schedule: false, config: { directory: rotated }, encryption: { passphrase: 'a new passphrase', iterations: 100_000 }, logger: warnInto(warnings) });
    await db.usePlugin(fresh, 'fresh');
    const first = await fresh.createBackup();
    expect(JSON.parse(readFileSync(manifestPath(rotated, first.id), 'utf8')).encryption.keyCheck).not.toBe(JSON.parse(original).keyCheck);
    expect(warnings).toContainEqual(expect.stringContaining('a new master key is made (key rotation)'));
    await fresh.stop();
  });

  it('verifying an incremental checks the backups it needs, and names the damaged part', async () => {
    const { dir, full, inc } = await fullAndIncremental('chain');
    // The full's users part is damaged, with its size and SHA-256 in the manifest forged to match
    // (so only decryption can tell): the incremental is not restorable, and verify must say so.
    const m = await readManifest(dir, full.id);
    const part = m.parts.find((x) => x.group === 'users')!;
    const file = path.join(dir, part.path);
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0x20;
    await writeFile(file, bytes);
    part.sha256 = createHash('sha256').update(bytes).digest('hex');
    // without its auth, as a manifest written before revision 8 (an edited one with it fails at
    // once: manifest-auth.test.ts), so that only the part's GCM tags can tell
    delete (m as { auth?: string }).auth;
    // (its copy beside the parts too: an authenticated copy would be used instead)
    for (const at of [manifestPath(dir, full.id), path.join(dir, m.copy!)]) await writeFile(at, JSON.stringify(m));
    const { p } = await reopen(dir, { encryption: { passphrase: PASSPHRASE, iterations: 100_000 } });
    const result = await p.verifyBackup(inc.id);
    expect(result.verified).toBe(false);
    expect(result.error).toContain(`it needs ${full.id}, which fails verification: ${part.path}`);
    expect(result.error).toMatch(/authentication/);
    const own = await p.verifyBackup(full.id);
    expect(own).toMatchObject({ verified: false, error: expect.stringContaining(part.path) });
    await p.stop();
    // What is recorded is each backup's own verdict: the incremental's own data is whole.
    expect((await p.getBackup(inc.id))!).toMatchObject({ verified: false, verification: { verified: true } });
    // Its full's manifest gone: the chain is broken. verify says so and points at
    // recoverBackups(), but records nothing (a lost manifest may come back, and a recorded failure
    // would let retention delete the incremental); the listing shows it unverified meanwhile.
    await rm(manifestPath(dir, full.id));
    const again = await reopen(dir, { encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, retention: { policy: 'simple', count: 10 } });
    expect(await again.p.verifyBackup(inc.id)).toMatchObject({ verified: false, error: expect.stringMatching(new RegExp(`needs ${full.id}, whose manifest is missing.*recoverBackups\\(\\)`)) });
    expect((await again.p.getBackup(inc.id))!).toMatchObject({ verified: false, verification: { verified: true } });
    expect((await again.p.listBackups({ verified: false })).map((b) => b.id)).toEqual([inc.id]);
    expect((await again.p.prune({ dryRun: true })).remove.map((r) => r.id)).toEqual([]);
    await again.p.stop();
  });
});

describe('a destination lost at the commit', () => {
  it("under 'any', a destination that fails writing the manifest is recorded failed in the result, and retention does not prune there: its older backup stays restorable", async () => {
    const db = await copySeeded(bucket('commit-window'));
    const [d1, d2] = [path.join(work, 'commit-window-1'), path.join(work, 'commit-window-2')];
    const p = new BackupPlugin({
      schedule: false,
      driver: 'multi',
      strategy: 'any',
      retention: { policy: 'simple', count: 1 },
      destinations: [{ driver: 'filesystem', config: { directory: d1 } }, { driver: 'filesystem', config: { directory: d2 } }],
    } as BackupPluginOptions);
    await db.usePlugin(p);
    const older = await p.createBackup({ reason: 'older' });
    // Fault injection (a destination cannot be made to fail at one chosen write on demand): the
    // second destination goes away when the next backup writes its manifest, its commit
    const second = p.destinations.members[1]!;
    const write = second.write.bind(second);
    second.write = async (...args: Parameters<typeof second.write>) => {
      if (args[0].startsWith('manifests/')) throw new Error('the second destination went away');
      return write(...args);
    };
    const newer = await p.createBackup({ reason: 'newer' });
    second.write = write;
    expect(newer.destinations.find((d) => d.label === second.label)?.status).toBe('failed');
    // the second destination has no manifest of the newer backup: the older one must still be whole there
    const alone = new BackupPlugin({ schedule: false, config: { directory: d2 } });
    const target = await openDb(bucket('commit-window-target'));
    await target.usePlugin(alone);
    expect((await alone.listBackups()).map((b) => b.id)).toEqual([older.id]);
    expect((await alone.verifyBackup(older.id)).verified).toBe(true);
    await alone.stop();
    await p.stop();
  });
});

describe('lost or corrupt manifests: recoverBackups()', () => {
  const quiet = { warn() {}, error() {}, info() {} };
  const encrypted = { encryption: { passphrase: PASSPHRASE, iterations: 100_000 } };

  it("verifyBackup() names a manifest copy that is missing or damaged (recoverBackups() could not use it), while the backup itself verifies", async () => {
    const { dir, full, inc } = await fullAndIncremental('badcopy');
    const fullCopy = (JSON.parse(await readFile(manifestPath(dir, full.id), 'utf8')) as Manifest).copy!;
    const incCopy = (JSON.parse(await readFile(manifestPath(dir, inc.id), 'utf8')) as Manifest).copy!;
    await writeFile(path.join(dir, fullCopy), '{"truncated');
    await rm(path.join(dir, incCopy));
    const { p } = await reopen(dir, { ...encrypted, logger: quiet as never });
    const result = await p.verifyBackup(inc.id);
    expect(result.verified).toBe(true);
    expect(result.damagedCopies).toEqual([
      expect.objectContaining({ backupId: full.id, error: expect.stringContaining(`its manifest copy ${fullCopy} cannot be read`) }),
      expect.objectContaining({ backupId: inc.id, error: expect.stringContaining(`its manifest copy ${incCopy} is missing`) }),
    ]);
    // recoverBackups() writes both back from their manifests
    const report = await p.recoverBackups();
    expect(report).toEqual({ recovered: [], indexes: [], skipped: [], copies: expect.arrayContaining([{ id: full.id, destination: `filesystem:${dir}` }, { id: inc.id, destination: `filesystem:${dir}` }]) });
    expect(report.copies).toHaveLength(2);
    expect(await readFile(path.join(dir, incCopy), 'utf8')).toBe(await readFile(manifestPath(dir, inc.id), 'utf8'));
    expect((await p.verifyBackup(inc.id)).damagedCopies ?? []).toEqual([]);
    expect(await p.recoverBackups()).toEqual({ recovered: [], indexes: [], skipped: [] }); // nothing left to do
    await p.stop();
  });

  it("parts an unfinished backup left (its pending marker there) are named as such in the empty listing's warning, not as lost manifests to recover; the next backup deletes them", async () => {
    const dir = path.join(work, `unfinished-${++seq}`);
    const db = await copySeeded(bucket('unfinished'));
    // what a backup killed midway leaves: its pending marker (a dead pid on this host) and a part
    const id = 'full-20261202T000000000Z-dead01';
    const part = `data/2026/12/02/${id}/users.000001`;
    await mkdir(path.join(dir, path.dirname(part)), { recursive: true });
    await writeFile(path.join(dir, part), 'a part cut short');
    await mkdir(path.join(dir, 'pending'), { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await writeFile(path.join(dir, 'pending', `${id}.json`), JSON.stringify({ id, type: 'full', startedAt: new Date().toISOString(), heartbeatAt: new Date().toISOString(), host: hostname(), pid: dead, space: processSpace(), parts: [part] }));
    const warnings: string[] = [];
    const p = new BackupPlugin({ schedule: false, config: { directory: dir }, logger: warnInto(warnings) });
    await db.usePlugin(p);
    expect(await p.listBackups()).toEqual([]);
    expect(warnings).toEqual([expect.stringMatching(/holds the parts of an unfinished backup \(pending\/.*\.json.*not a backup: the next backup.*deletes them/)]);
    expect(await filesUnder(dir)).toContain(part);
    await p.createBackup();
    expect(await filesUnder(dir)).not.toContain(part);
    expect(await filesUnder(dir)).not.toContain(`pending/${id}.json`);
    await p.stop();
  });

  it('manifests/ deleted: both manifests come back byte for byte from their copies, and the incremental restores exactly', async () => {
    const { dir, db, full, inc } = await fullAndIncremental('lostmanifests');
    const originals = new Map<string, string>();
    for (const id of [full.id, inc.id]) {
      const text = await readFile(manifestPath(dir, id), 'utf8');
      originals.set(id, text);
      const copy = (JSON.parse(text) as Manifest).copy!;
      expect(copy).toMatch(new RegExp(`^data/\\d{4}/\\d{2}/\\d{2}/${id}/manifest\\.json$`));
      expect(await readFile(path.join(dir, copy), 'utf8')).toBe(text);
    }
    await rm(path.join(dir, 'manifests'), { recursive: true });

    const warnings: string[] = [];
    const { p } = await reopen(dir, { ...encrypted, logger: { ...quiet, warn: (_o: unknown, msg: string) => void warnings.push(msg) } as never });
    expect(await p.listBackups()).toEqual([]);
    expect(warnings).toEqual([expect.stringMatching(/holds backup parts .* but no manifest .*recoverBackups\(\)/)]);
    const events: unknown[] = [];
    p.on('plg:backup:recovered', (e) => events.push(e));
    const report = await p.recoverBackups();
    expect(report).toEqual({ recovered: [full.id, inc.id].sort(), indexes: [], skipped: [] });
    expect(events).toEqual([report]);
    for (const [id, text] of originals) expect(await readFile(manifestPath(dir, id), 'utf8')).toBe(text);
    expect((await p.listBackups()).map((b) => b.id)).toEqual([inc.id, full.id]);
    expect((await p.verifyBackup(inc.id)).verified).toBe(true);
    const target = await openDb(bucket('lostmanifests-target'));
    await p.restore({ backupId: inc.id, destination: target });
    expect(await snapshot(target)).toEqual(await snapshot(db));
    expect(await p.recoverBackups()).toEqual({ recovered: [], indexes: [], skipped: [] }); // nothing left to do
    await p.stop();
  });

  it('a manifest lost with its copy is named as lost by recoverBackups(), its index rebuilt before or not; at one of two destinations, it is copied from the other', async () => {
    const { dir, full, inc } = await fullAndIncremental('lostwithcopy');
    const { p } = await reopen(dir, { ...encrypted, logger: quiet as never });
    // a rebuilt index first: the backup's index files are then named `<id>.rebuilt...`
    await rm(path.join(dir, 'indexes', `${full.id}.index`));
    expect((await p.recoverBackups()).indexes).toEqual([expect.objectContaining({ id: full.id, action: 'rebuilt' })]);
    expect((await readdir(path.join(dir, 'indexes'))).filter((f) => f.startsWith(full.id))).toEqual(expect.arrayContaining([expect.stringMatching(/\.rebuilt-.*\.index$/)]));
    const copy = (await readManifest(dir, full.id)).copy!;
    await rm(manifestPath(dir, full.id));
    await rm(path.join(dir, copy));
    const report = await p.recoverBackups();
    expect(report.recovered).toEqual([]);
    expect(report.skipped).toEqual([expect.objectContaining({ id: full.id, lost: 'everywhere', reason: expect.stringContaining(`cannot be put back: this backup, and the incrementals built on it, cannot be restored from the destinations given. If another holds it (a second destination, a synced copy of this one), recover with that one given too`) })]);
    await p.stop();

    const db = await copySeeded(bucket('lostatone'));
    const dirs = [path.join(work, 'lost-a'), path.join(work, 'lost-b')];
    const two = new BackupPlugin({ schedule: false, driver: 'multi', destinations: dirs.map((directory) => ({ driver: 'filesystem' as const, config: { directory } })), logger: quiet as never });
    await db.usePlugin(two, 'two');
    const b = await two.backup('full');
    const copyPath = (await readManifest(dirs[0]!, b.id)).copy!;
    const text = await readFile(manifestPath(dirs[0]!, b.id), 'utf8');
    await rm(manifestPath(dirs[1]!, b.id));
    await rm(path.join(dirs[1]!, copyPath));
    // copied from the destination that holds it, with its copy beside the parts
    expect(await two.recoverBackups()).toEqual({ recovered: [b.id], indexes: [], skipped: [] });
    expect(await readFile(manifestPath(dirs[1]!, b.id), 'utf8')).toBe(text);
    expect(await readFile(path.join(dirs[1]!, copyPath), 'utf8')).toBe(text);
    // where the parts are gone too, it is not copied, and that is said
    await rm(manifestPath(dirs[1]!, b.id));
    await rm(path.join(dirs[1]!, 'data'), { recursive: true });
    expect((await two.recoverBackups()).skipped).toEqual([
      expect.objectContaining({ id: b.id, destination: `filesystem:${dirs[1]}`, lost: 'here', reason: expect.stringMatching(new RegExp(`filesystem:${dirs[0]} holds it \\(the backup is listed and restored from there\\), but it was not copied here: none of its parts is there`)) }),
    ]);
    expect((await two.listBackups()).map((x) => x.id)).toEqual([b.id]);
    await two.stop();
    void inc;
  });

  it('a corrupt manifest is replaced by its copy; a good one is left alone', async () => {
    const { dir, full, inc } = await fullAndIncremental('corruptmanifest');
    const good = await readFile(manifestPath(dir, inc.id), 'utf8');
    await writeFile(manifestPath(dir, inc.id), good.slice(0, 100));
    const fullBefore = await readFile(manifestPath(dir, full.id), 'utf8');
    const { p } = await reopen(dir, { ...encrypted, logger: quiet as never });
    expect((await p.listBackups()).map((b) => b.id)).toEqual([full.id]);
    expect(await p.recoverBackups()).toEqual({ recovered: [inc.id], indexes: [], skipped: [] });
    expect(await readFile(manifestPath(dir, inc.id), 'utf8')).toBe(good);
    expect(await readFile(manifestPath(dir, full.id), 'utf8')).toBe(fullBefore);
    expect((await p.listBackups()).map((b) => b.id)).toEqual([inc.id, full.id]);
    await p.stop();
  });

  it('a copy whose backup lost a part (or has one cut short) is put back all the same, its damage recorded by a verification: the other resources restore; a copy with none of its parts is not used', async () => {
    const { dir, db, full, inc } = await fullAndIncremental('incomplete');
    const fullParts = (await readManifest(dir, full.id)).parts;
    const incParts = (await readManifest(dir, inc.id)).parts;
    await rm(path.join(dir, fullParts[0]!.path));
    await writeFile(path.join(dir, incParts[0]!.path), 'short');
    await rm(path.join(dir, 'manifests'), { recursive: true });
    const warnings: string[] = [];
    const { p } = await reopen(dir, { ...encrypted, logger: { ...quiet, warn: (_o: unknown, msg: string) => void warnings.push(msg) } as never });
    const report = await p.recoverBackups();
    expect(report.recovered).toEqual([full.id, inc.id].sort());
    expect(warnings).toContainEqual(expect.stringContaining(`the manifest of backup ${full.id} was put back at filesystem:${dir} although ${fullParts[0]!.path} is missing`));
    expect(warnings).toContainEqual(expect.stringContaining(`although ${incParts[0]!.path} has 5 bytes, the manifest says ${incParts[0]!.size}`));
    // recorded: the listing shows both unverified, and each record names its own damage
    expect((await p.listBackups()).map((b) => [b.id, b.verified])).toEqual([[inc.id, false], [full.id, false]]);
    expect((await p.getBackup(full.id))!.verification!.error).toContain(fullParts[0]!.path);
    // a resource whose parts are whole in both restores exactly from the incremental
    const damagedGroups = new Set([fullParts[0]!.group, incParts[0]!.group]);
    const resource = ['users', 'orders'].find((r) => !damagedGroups.has(r))!;
    const target = await openDb(bucket('incomplete-target'));
    await p.restore({ backupId: inc.id, resources: [resource], destination: target });
    const only = (list: { key: string }[]) => list.filter((o) => o.key.startsWith(`resource=${resource}/`));
    expect(only(await snapshot(target))).toEqual(only(await snapshot(db)));
    await p.stop();
    // a copy none of whose parts is there (a deleted backup whose marker is gone) is left alone
    const gone = await fullAndIncremental('incomplete-gone');
    const goneFull = await readManifest(gone.dir, gone.full.id);
    for (const part of goneFull.parts) await rm(path.join(gone.dir, part.path));
    await rm(manifestPath(gone.dir, gone.full.id));
    const again = await reopen(gone.dir, { ...encrypted, logger: quiet as never });
    const second = await again.p.recoverBackups();
    expect(second.recovered).toEqual([]);
    expect(second.skipped).toEqual([expect.objectContaining({ id: gone.full.id, reason: expect.stringContaining('none of its parts is there') })]);
    await again.p.stop();
  });

  it('a crash between the copy and the manifest: the copy is not used, and the next backup cleans it up with the parts', async () => {
    const dir = path.join(work, 'crash-at-commit');
    const crashed = path.join(work, 'crash-at-commit-disk');
    const db = await copySeeded(bucket('crash-at-commit'));
    const p = new BackupPlugin({ schedule: false, config: { directory: dir }, lease: false, ...encrypted });
    await db.usePlugin(p);
    // Fault injection (a kill -9 cannot be timed to this instant): when the manifest is about to be
    // written, the directory is copied as it is on disk; that copy is what a crash there leaves.
    const member = p.destinations.members[0]!;
    const write = member.write.bind(member);
    member.write = async (where, body, options) => {
      if (where.startsWith('manifests/')) cpSync(dir, crashed, { recursive: true });
      return write(where, body, options);
    };
    const done = await p.createBackup();
    await p.stop();
    const left = await filesUnder(crashed);
    expect(left).toEqual(expect.arrayContaining([`pending/${done.id}.json`, expect.stringMatching(new RegExp(`${done.id}/manifest\\.json$`))]));
    expect(left.filter((f) => f.startsWith('manifests/'))).toEqual([]);

    const reader = await reopen(crashed, { ...encrypted, logger: quiet as never });
    const report = await reader.p.recoverBackups();
    expect(report).toEqual({ recovered: [], indexes: [], skipped: [expect.objectContaining({ id: done.id, reason: expect.stringContaining(`pending/${done.id}.json exists`) })] });
    await reader.p.stop();

    await new Promise((r) => setTimeout(r, 20));
    const next = await reopen(crashed, { ...encrypted, staleAfterMs: 10 });
    const ok = await next.p.createBackup();
    await next.p.stop();
    const after = await filesUnder(crashed);
    expect(after.filter((f) => f.includes(done.id))).toEqual([]);
    expect(after.filter((f) => f.startsWith('manifests/'))).toEqual([`manifests/${ok.id}.json`]);
  });

  it("retention keeps an incremental whose full's manifest is corrupt, so recoverBackups() can make the chain whole again", async () => {
    const { dir, db, full, inc } = await fullAndIncremental('retention-corrupt-full');
    const want = await snapshot(db);
    await writeFile(manifestPath(dir, full.id), 'garbage');
    const { p } = await reopen(dir, { ...encrypted, logger: quiet as never, retention: { policy: 'simple', count: 2 } });
    const next = await p.createBackup({ type: 'incremental' });
    expect(next.type).toBe('full'); // the chain is not whole: no incremental on it
    expect((await p.listBackups()).map((b) => b.id)).toEqual([next.id, inc.id]);
    expect(await p.recoverBackups()).toEqual({ recovered: [full.id], indexes: [], skipped: [] });
    const target = await openDb(bucket('retention-corrupt-full-target'));
    await p.restore({ backupId: inc.id, destination: target });
    expect(await snapshot(target)).toEqual(want);
    await p.stop();
  });

  it('deleting backups removes their manifest copies with the parts: nothing is left under data/', async () => {
    const { dir, full, inc } = await fullAndIncremental('deletecopies');
    const { p } = await reopen(dir, encrypted);
    expect(await p.deleteBackup(full.id, { force: true })).toEqual({ deleted: [inc.id, full.id] });
    expect((await filesUnder(dir)).filter((f) => /^(data|manifests|indexes|pending)\//.test(f))).toEqual([]);
    expect(await p.recoverBackups()).toEqual({ recovered: [], indexes: [], skipped: [] });
    await p.stop();
  });
});

describe('priority failover', () => {
  it("'priority': when the first destination stops taking writes, the next backup fails over to the second as a full, not an incremental whose chain only the first holds", async () => {
    const [a, b] = [path.join(work, 'prio-a'), path.join(work, 'prio-b')];
    const db = await copySeeded(bucket('prio'));
    const p = new BackupPlugin({ schedule: false, driver: 'multi', strategy: 'priority', destinations: [{ driver: 'filesystem', config: { directory: a } }, { driver: 'filesystem', config: { directory: b } }], type: 'incremental', lease: false, logger: { warn() {}, error() {}, info() {} } });
    await db.usePlugin(p);
    expect((await p.createBackup()).type).toBe('full');
    // Fault injection (a full disk cannot be made on demand here, and root ignores permissions):
    // the first destination refuses every write from now on, its backups still readable.
    const first = p.destinations.members[0]!;
    first.write = async () => {
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    };
    const next = await p.createBackup();
    expect(next.type).toBe('full');
    await restoresAlone(db, b, next.id);
    await p.stop();
  });
});

describe('what a chain makes of `verified`', () => {
  it('an incremental on a full taken with verify: false is not listed as verified (the full was never checked)', async () => {
    const dir = path.join(work, 'unverified-full');
    const db = await copySeeded(bucket('unverified-full'));
    const off = new BackupPlugin({ schedule: false, config: { directory: dir }, verify: false });
    await db.usePlugin(off, 'off');
    const full = await off.createBackup({ type: 'full' });
    await off.stop();
    await (db.resources.orders as unknown as Orders).insert({ id: 'o-more', userId: 'u1', total: 2, status: 'new' });
    const on = new BackupPlugin({ schedule: false, config: { directory: dir }, verify: 'quick', type: 'incremental' });
    await db.usePlugin(on, 'on');
    const inc = await on.createBackup();
    expect(inc).toMatchObject({ type: 'incremental', verification: { verified: true } });
    expect((await on.getBackup(inc.id))!.verified).toBe(false);
    expect((await on.listBackups({ verified: true })).map((b) => b.id)).toEqual([]);
    await on.verifyBackup(full.id, { level: 'quick' });
    expect((await on.listBackups({ verified: true })).map((b) => b.id)).toEqual([inc.id, full.id]);
    await on.stop();
  });

  it('a chain with a missing manifest before a failed backup: retention still counts the later ones as failing', async () => {
    const { dir, db, full, inc } = await fullAndIncremental('missing-then-failed', { type: 'incremental' });
    const p = new BackupPlugin({ schedule: false, config: { directory: dir }, encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, type: 'incremental', retention: { policy: 'simple', count: 1 } });
    await db.usePlugin(p, 'more');
    await (db.resources.orders as unknown as Orders).insert({ id: 'o-later', userId: 'u1', total: 3, status: 'new' });
    const later = await p.createBackup();
    expect(later.type).toBe('incremental');
    const part = (await readManifest(dir, inc.id)).parts[0]!;
    const bytes = await readFile(path.join(dir, part.path));
    bytes[bytes.length >> 1] ^= 0xff;
    await writeFile(path.join(dir, part.path), bytes);
    expect((await p.verifyBackup(inc.id, { level: 'full' })).verified).toBe(false); // recorded for inc itself
    await rm(manifestPath(dir, full.id));
    const plan = await p.prune({ dryRun: true });
    expect(plan.keep.find((k) => k.id === later.id)?.reasons.join(' ')).toContain('unverified');
    await p.stop();
  });
});

describe('changed circumstances: the next incremental becomes a full instead of failing or depending on what is not there', () => {
  it('encryption turned off: the encrypted parent cannot be read, so the next backup is a full (logged once) and the new chain goes on', async () => {
    const { dir, db, inc } = await fullAndIncremental('encryption-off');
    const warnings: string[] = [];
    const p = new BackupPlugin({ schedule: false, config: { directory: dir }, type: 'incremental', logger: warnInto(warnings) });
    await db.usePlugin(p, 'plain');
    const next = await p.createBackup();
    expect(next).toMatchObject({ type: 'full', encrypted: false });
    // each once, not once per look: the full, and the plaintext beside encrypted backups
    expect(warnings).toEqual([expect.stringContaining(`${inc.id} is encrypted and encryption is now off`), expect.stringContaining(`${next.id} is not encrypted, while`)]);
    expect((await p.createBackup()).type).toBe('incremental'); // the new chain goes on unencrypted
    await p.stop();
  });

  it('a destination of two emptied (replaced disk): the next backup is a full written to both, not an incremental whose chain only the other holds', async () => {
    const [a, b] = [path.join(work, 'two-a'), path.join(work, 'two-b')];
    const db = await copySeeded(bucket('two'));
    const options: BackupPluginOptions = { schedule: false, driver: 'multi', destinations: [{ driver: 'filesystem', config: { directory: a } }, { driver: 'filesystem', config: { directory: b } }], type: 'incremental' };
    const p = new BackupPlugin({ ...options, logger: { warn() {}, error() {}, info() {} } });
    await db.usePlugin(p);
    expect((await p.createBackup()).type).toBe('full');
    expect((await p.createBackup()).type).toBe('incremental');
    await p.stop();
    await rm(a, { recursive: true });
    const warnings: string[] = [];
    const q = new BackupPlugin({ ...options, logger: warnInto(warnings) });
    await db.usePlugin(q, 'again');
    const next = await q.createBackup();
    expect(next.type).toBe('full');
    expect(warnings).toContainEqual(expect.stringContaining(`${a} does not hold every backup of the chain`));
    await restoresAlone(db, a, next.id); // A alone (B lost later)
    await q.stop();
  });
});
