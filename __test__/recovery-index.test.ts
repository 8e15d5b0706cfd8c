// Lost object indexes: recoverBackups() copies an index from another destination that holds it, or
// rebuilds it from the backup's parts (and, for an incremental, its parent's index), on the real
// s3db.js and real filesystem destinations whose files are deleted or cut by hand, as a disk or an
// operator would. A rebuilt index must equal the lost one entry for entry (plain gzip indexes are
// read here with Node's zlib), the chain must restore exactly, and nothing is written when the
// index cannot be rebuilt faithfully (no passphrase, an entry count that does not match).
import { existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin, type BackupPluginOptions } from '../src/index.js';
import { openDb, seededCopies, snapshot } from './helpers/database.js';
import { filesUnder } from './helpers/files.js';
import { warnInto } from './helpers/logger.js';

const SMALL = { users: 5, orders: 8, perBehavior: 1 };
const PASSPHRASE = 'recovery-index-passphrase-never-logged';
const encrypted = { encryption: { passphrase: PASSPHRASE, iterations: 100_000 } };
const quiet = { warn() {}, error() {}, info() {} };
let work: string;
let seq = 0;
const bucket = (name: string) => `memory://recovery-index-${name}-${process.pid}-${++seq}/db`;
const copySeeded = seededCopies(SMALL, () => bucket('template'));

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'recovery-index-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

type Api = { update(id: string, v: Record<string, unknown>): Promise<unknown>; delete(id: string): Promise<unknown>; insert(v: Record<string, unknown>): Promise<unknown> };
type Manifest = { id: string; copy: string; index: { path: string; size: number; sha256: string; entries: number } };
type Ref = { format: string; version: number; id: string; path: string; size: number; sha256: string; entries: number; rebuiltAt: string };

/**
 * A full backup, then changes of every kind (an update, a delete, an insert, an order leaving the
 * `completed` filter), then an incremental: `options` chooses destinations, encryption, selection.
 */
async function changedChain(name: string, options: BackupPluginOptions) {
  const db = await copySeeded(bucket(name));
  const p = new BackupPlugin({ schedule: false, logger: quiet as never, ...options });
  await db.usePlugin(p);
  const full = await p.backup('full');
  await (db.resources.users as unknown as Api).update('u00001', { name: 'Renamed' });
  await (db.resources.orders as unknown as Api).delete('o00002');
  await (db.resources.orders as unknown as Api).insert({ id: 'o-new', userId: 'u00001', total: 9, status: 'completed' });
  await (db.resources.orders as unknown as Api).update('o00001', { status: 'pending' });
  const inc = await p.backup('incremental');
  expect(inc.type).toBe('incremental');
  await p.stop();
  return { db, full, inc, want: await snapshot(db) };
}

/**
 * A fresh plugin on the same destinations (nothing cached), as a new process would have; on an
 * empty database, or on `db` for one that goes on backing that database up (only a backup of the
 * same database is an incremental's parent).
 */
async function reopen(options: BackupPluginOptions, on?: string) {
  const db = await openDb(on ?? bucket('reader'));
  const p = new BackupPlugin({ schedule: false, logger: quiet as never, ...options });
  await db.usePlugin(p);
  return p;
}

const manifestOf = async (dir: string, id: string) => JSON.parse(await readFile(path.join(dir, 'manifests', `${id}.json`), 'utf8')) as Manifest;
const manifestText = (dir: string, id: string) => readFile(path.join(dir, 'manifests', `${id}.json`), 'utf8');
/** The reference to a rebuilt index (indexes/<id>.rebuilt.json), null when there is none. */
const refOf = async (dir: string, id: string) => JSON.parse(await readFile(path.join(dir, 'indexes', `${id}.rebuilt.json`), 'utf8').catch(() => 'null')) as Ref | null;
/** The index lines of a plain gzip backup as readers find them (a rebuilt one if named), read with Node's zlib. */
const indexLines = async (dir: string, id: string) => {
  const file = (await refOf(dir, id))?.path ?? (await manifestOf(dir, id)).index.path;
  return gunzipSync(await readFile(path.join(dir, file))).toString('utf8').split('\n').filter((l) => l !== '');
};
const indexFiles = async (dir: string) => (await filesUnder(dir)).filter((f) => f.startsWith('indexes/')).sort();

/** Bit rot: one byte of `file` flipped, its size unchanged; returns the bytes it had. */
async function rot(file: string): Promise<Buffer> {
  const whole = await readFile(file);
  const rotten = Buffer.from(whole);
  rotten[rotten.length >> 1] ^= 0xff;
  await writeFile(file, rotten);
  return whole;
}

/** A changed chain at two filesystem destinations, its full's index rotted at the second; a fresh plugin on them. */
async function rottedAtSecond(name: string) {
  const dirs = [path.join(work, `${name}-a`), path.join(work, `${name}-b`)];
  const options: BackupPluginOptions = { driver: 'multi', destinations: dirs.map((directory) => ({ driver: 'filesystem' as const, config: { directory } })) };
  const chain = await changedChain(name, options);
  const file = path.join(dirs[1]!, (await manifestOf(dirs[1]!, chain.full.id)).index.path);
  const whole = await rot(file);
  const q = await reopen(options);
  const [a, b] = q.destinations.members.map((d) => d.label) as [string, string];
  return { ...chain, file, whole, q, a, b };
}

async function restoresExactly(p: BackupPlugin, id: string, want: unknown, name: string) {
  const target = await openDb(bucket(`${name}-target`));
  await p.restore({ backupId: id, destination: target });
  expect(await snapshot(target)).toEqual(want);
}

/**
 * Fault injection, for what a real destination cannot do on demand (fail one read, or be slow at
 * one instant): `hook` runs before each read of the plugin's first destination; it may throw or wait.
 */
function beforeReads(p: BackupPlugin, hook: (where: string) => Promise<void> | void): void {
  const member = p.destinations.members[0]!;
  const read = member.read.bind(member);
  member.read = async (where, options) => {
    await hook(where);
    return read(where, options);
  };
}

/** A gate for the reads it is asked to hold: `reached` once one waits at it, `open()` lets all through. */
function gate() {
  let open!: () => void;
  let reach!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const reached = new Promise<void>((r) => (reach = r));
  return {
    reached,
    open: () => open(),
    pass: () => {
      reach();
      return opened;
    },
  };
}

/** A logger that keeps its warnings. */
function collectingWarnings() {
  const warnings: string[] = [];
  return { warnings, logger: warnInto(warnings) as never };
}

describe('lost object indexes: recoverBackups()', () => {
  it("both indexes of a chain deleted: rebuilt from the parts entry for entry (the incremental's from its parent's), named beside the untouched manifests; the chain restores exactly", async () => {
    const dir = path.join(work, 'lost-both');
    const { full, inc, want } = await changedChain('lost-both', { config: { directory: dir } });
    const before = new Map<string, { manifest: string; lines: string[] }>();
    for (const id of [full.id, inc.id]) before.set(id, { manifest: await manifestText(dir, id), lines: await indexLines(dir, id) });
    // The incremental's index names the full for unchanged objects, and has no deleted order.
    const incLines = before.get(inc.id)!.lines.map((l) => JSON.parse(l) as { k: string; b: string });
    expect(incLines.some((e) => e.b === full.id)).toBe(true);
    expect(incLines.some((e) => e.k.includes('o00002'))).toBe(false);
    await rm(path.join(dir, 'indexes'), { recursive: true });

    const p = await reopen({ config: { directory: dir } });
    const err = await p.restore({ backupId: inc.id, destination: await openDb(bucket('lost-both-early')) }).then(() => null, (e: unknown) => e as { code: string; message: string });
    // restore verifies first: the failure names the index and what puts it back
    expect(err?.code).toBe('ERR_VERIFY_FAILED');
    expect(err!.message).toContain(`indexes/${full.id}.index does not exist`);
    expect(err!.message).toContain('recoverBackups() puts a lost, cut-short or corrupt object index back');
    const unverified = await p.restore({ backupId: inc.id, destination: await openDb(bucket('lost-both-early2')), verify: false }).then(() => null, (e: unknown) => e as { code: string; message: string });
    expect(unverified?.code).toBe('ERR_INDEX_MISSING');
    expect(unverified!.message).toContain('recoverBackups() puts a lost, cut-short or corrupt object index back');
    const events: unknown[] = [];
    p.on('plg:backup:recovered', (e) => events.push(e));
    const progress: { id: string; phase: string; objects: number; done: boolean }[] = [];
    p.on('plg:backup:progress', (e: { id: string; phase: string; objects: number; done: boolean }) => progress.push(e));
    const report = await p.recoverBackups();
    // a rebuild reads every record of the backup's parts, and says so
    const partObjects = async (id: string) => (JSON.parse(await readFile(path.join(dir, 'manifests', `${id}.json`), 'utf8')) as { parts: { objects: number }[] }).parts.reduce((n, x) => n + x.objects, 0);
    expect(progress.filter((e) => e.phase === 'repair' && e.done).map((e) => [e.id, e.objects])).toEqual([
      [full.id, await partObjects(full.id)],
      [inc.id, await partObjects(inc.id)],
    ]);
    const label = p.destinations.members[0]!.label;
    expect(report).toEqual({
      recovered: [],
      indexes: [
        { id: full.id, action: 'rebuilt', destinations: [label], verified: true },
        { id: inc.id, action: 'rebuilt', destinations: [label], verified: true },
      ],
      skipped: [],
    });
    expect(events).toEqual([report]);
    for (const id of [full.id, inc.id]) {
      const { manifest, lines } = before.get(id)!;
      expect(await manifestText(dir, id)).toBe(manifest); // manifests never change
      const ref = await refOf(dir, id);
      expect(ref).toMatchObject({ format: 's3db-backup-index-ref', version: 1, id, path: expect.stringMatching(new RegExp(`^indexes/${id}\\.rebuilt-\\d{8}T\\d{9}Z\\.index$`)), entries: lines.length, rebuiltAt: expect.any(String) });
      expect(await indexLines(dir, id)).toEqual(lines);
    }
    expect((await p.listBackups({ verified: true })).map((b) => b.id)).toEqual([inc.id, full.id]);
    expect((await p.verifyBackup(inc.id, { level: 'full' })).verified).toBe(true);
    await restoresExactly(p, inc.id, want, 'lost-both');
    expect(await p.recoverBackups()).toEqual({ recovered: [], indexes: [], skipped: [] });
    // Deleting the chain leaves no index file behind.
    await p.deleteBackup(full.id, { force: true });
    expect(await indexFiles(dir)).toEqual([]);
    await p.stop();
  });

  it('an encrypted index cut short: without the passphrase it is reported and nothing changes; with it, rebuilt and restorable', async () => {
    const dir = path.join(work, 'cut-encrypted');
    const { full, inc, want } = await changedChain('cut-encrypted', { config: { directory: dir }, ...encrypted });
    const m = await manifestOf(dir, full.id);
    await truncate(path.join(dir, m.index.path), Math.floor(m.index.size / 2));
    const filesBefore = await filesUnder(dir);

    const { warnings, logger } = collectingWarnings();
    const locked = await reopen({ config: { directory: dir }, logger });
    const report = await locked.recoverBackups();
    expect(report.indexes).toEqual([]);
    expect(report.skipped).toEqual([{ id: full.id, path: m.index.path, destination: locked.destinations.members[0]!.label, reason: expect.stringContaining('a passphrase is needed'), lost: 'everywhere' }]);
    expect(report.skipped[0]!.reason).toContain('could not be put back');
    expect(warnings).toEqual([expect.stringContaining(`the index of backup ${full.id}`)]);
    expect(warnings.join('\n')).not.toContain(PASSPHRASE);
    expect(await filesUnder(dir)).toEqual(filesBefore);
    await locked.stop();

    const p = await reopen({ config: { directory: dir }, ...encrypted });
    expect(await p.recoverBackups()).toEqual({ recovered: [], indexes: [{ id: full.id, action: 'rebuilt', destinations: [p.destinations.members[0]!.label], verified: true }], skipped: [] });
    // the damaged index is gone; the incremental's (intact) was left alone
    const rebuilt = (await refOf(dir, full.id))!.path;
    expect(await indexFiles(dir)).toEqual([rebuilt, `indexes/${full.id}.rebuilt.json`, `indexes/${inc.id}.index`].sort());
    expect(await refOf(dir, inc.id)).toBeNull();
    expect((await p.verifyBackup(inc.id, { level: 'full' })).verified).toBe(true);
    await restoresExactly(p, inc.id, want, 'cut-encrypted');
    await p.stop();
  });

  it('manifests and indexes both lost: the manifests come back from their copies, then the indexes from the parts; a rebuilt index lost again is rebuilt under a new name', async () => {
    const dir = path.join(work, 'lost-all');
    const { full, inc, want } = await changedChain('lost-all', { config: { directory: dir }, ...encrypted });
    await rm(path.join(dir, 'manifests'), { recursive: true });
    await rm(path.join(dir, 'indexes'), { recursive: true });
    const p = await reopen({ config: { directory: dir }, ...encrypted });
    const report = await p.recoverBackups();
    expect(report.recovered).toEqual([full.id, inc.id].sort());
    expect(report.indexes.map((r) => [r.id, r.action, r.verified])).toEqual([
      [full.id, 'rebuilt', true],
      [inc.id, 'rebuilt', true],
    ]);
    expect(report.skipped).toEqual([]);
    await restoresExactly(p, inc.id, want, 'lost-all');
    const first = (await refOf(dir, inc.id))!.path;
    await rm(path.join(dir, first));
    await new Promise((r) => setTimeout(r, 5)); // a new name per rebuild (millisecond stamp)
    expect((await p.recoverBackups()).indexes).toEqual([{ id: inc.id, action: 'rebuilt', destinations: [p.destinations.members[0]!.label], verified: true }]);
    const second = (await refOf(dir, inc.id))!.path;
    expect(second).not.toBe(first);
    expect((await indexFiles(dir)).filter((f) => f.startsWith(`indexes/${inc.id}`))).toEqual([second, `indexes/${inc.id}.rebuilt.json`]);
    await restoresExactly(p, inc.id, want, 'lost-all-again');
    await p.stop();
  });

  it('an index lost at one of two destinations is copied from the other, byte for byte; lost at both, the rebuilt one at each destination serves restores alone', async () => {
    const dirs = [path.join(work, 'multi-a'), path.join(work, 'multi-b')];
    const options: BackupPluginOptions = { driver: 'multi', destinations: dirs.map((directory) => ({ driver: 'filesystem' as const, config: { directory } })) };
    const { full, inc, want } = await changedChain('multi', options);
    const m = await manifestOf(dirs[1]!, full.id);
    const bytes = await readFile(path.join(dirs[0]!, m.index.path));
    await writeFile(path.join(dirs[1]!, m.index.path), bytes.subarray(0, 10));
    const p = await reopen(options);
    const [a, b] = p.destinations.members.map((d) => d.label);
    expect(await p.recoverBackups()).toEqual({ recovered: [], indexes: [{ id: full.id, action: 'copied', destinations: [b], verified: true }], skipped: [] });
    expect((await readFile(path.join(dirs[1]!, m.index.path))).equals(bytes)).toBe(true);
    expect(await refOf(dirs[1]!, full.id)).toBeNull();

    for (const dir of dirs) await rm(path.join(dir, 'indexes'), { recursive: true });
    expect((await p.recoverBackups()).indexes).toEqual([
      { id: full.id, action: 'rebuilt', destinations: [a, b], verified: true },
      { id: inc.id, action: 'rebuilt', destinations: [a, b], verified: true },
    ]);
    await p.stop();
    // The first destination gone: the second has everything a restore needs on its own.
    await rm(dirs[0]!, { recursive: true });
    const survivor = await reopen(options);
    await restoresExactly(survivor, inc.id, want, 'multi');
    await survivor.stop();
  });

  it('a process that cached the manifests before another repaired the index finds the rebuilt one; a failed verification recorded before the repair is replaced', async () => {
    const dir = path.join(work, 'stale');
    const { db, full, inc, want } = await changedChain('stale', { config: { directory: dir } });
    const running = await reopen({ config: { directory: dir } }, db.connectionString);
    expect((await running.listBackups()).map((b) => b.id)).toEqual([inc.id, full.id]); // manifests now cached there
    await rm(path.join(dir, 'indexes', `${inc.id}.index`));
    expect((await running.verifyBackup(inc.id)).verified).toBe(false); // recorded: retention would delete it
    expect((await running.listBackups({ verified: true })).map((b) => b.id)).toEqual([full.id]);

    const operator = await reopen({ config: { directory: dir } });
    expect((await operator.recoverBackups()).indexes).toEqual([{ id: inc.id, action: 'rebuilt', destinations: [operator.destinations.members[0]!.label], verified: true }]);
    await operator.stop();

    expect((await running.listBackups({ verified: true })).map((b) => b.id)).toEqual([inc.id, full.id]);
    expect((await running.verifyBackup(inc.id, { level: 'full' })).verified).toBe(true);
    await restoresExactly(running, inc.id, want, 'stale');
    const next = await running.createBackup({ type: 'incremental' });
    expect(next).toMatchObject({ type: 'incremental', parentId: inc.id });
    await running.stop();
  });

  it('a reference that cannot be read for a moment is not taken for a lost index: verification records nothing', async () => {
    const dir = path.join(work, 'ref-transient');
    const { inc, want } = await changedChain('ref-transient', { config: { directory: dir } });
    await rm(path.join(dir, 'indexes', `${inc.id}.index`));
    const p = await reopen({ config: { directory: dir } });
    expect((await p.recoverBackups()).indexes.map((r) => [r.id, r.verified])).toEqual([[inc.id, true]]);
    // Fault injection (a real disk cannot fail one read on demand): reading the reference fails once.
    let failures = 1;
    beforeReads(p, (where) => {
      if (where.endsWith('.rebuilt.json') && failures-- > 0) throw Object.assign(new Error('injected: EIO'), { code: 'EIO' });
    });
    await expect(p.verifyBackup(inc.id)).rejects.toMatchObject({ code: 'ERR_VERIFY_INCOMPLETE' });
    expect((await p.listBackups({ verified: true })).map((b) => b.id)).toContain(inc.id);
    await restoresExactly(p, inc.id, want, 'ref-transient');
    await p.stop();
  });

  for (const [timing, name] of [['after the repair', 'verify-race-after'], ["during the repair's own verification", 'verify-race-during']] as const) {
    it(`a verification that began before a repair and ends ${timing} does not replace the repair's result`, async () => {
      const dir = path.join(work, name);
      const { inc } = await changedChain(name, { config: { directory: dir } });
      await rm(path.join(dir, 'indexes', `${inc.id}.index`));
      const reference = path.join(dir, 'indexes', `${inc.id}.rebuilt.json`);
      // Fault injection (timing): `slow` reads the incremental's parts only when let through, after
      // it looked up the (missing) index; the repair's own verification (its reads of the parts
      // once the reference exists) waits as well when `slow` must end during it.
      const [slowGate, repairGate] = [gate(), gate()];
      const slow = await reopen({ config: { directory: dir } });
      const operator = await reopen({ config: { directory: dir } });
      const ofIncremental = (where: string) => where.startsWith('data/') && where.includes(inc.id);
      beforeReads(slow, (where) => (ofIncremental(where) ? slowGate.pass() : undefined));
      beforeReads(operator, (where) => (ofIncremental(where) && existsSync(reference) && timing !== 'after the repair' ? repairGate.pass() : undefined));
      const late = slow.verifyBackup(inc.id, { level: 'quick' });
      await slowGate.reached;
      const repair = operator.recoverBackups();
      if (timing === 'after the repair') await repair;
      else await repairGate.reached;
      slowGate.open();
      expect((await late).verified).toBe(false); // it saw the index missing
      repairGate.open();
      expect((await repair).indexes.map((r) => [r.id, r.verified])).toEqual([[inc.id, true]]);
      expect((await slow.listBackups({ verified: true })).map((b) => b.id)).toContain(inc.id); // the repair's result stays
      await Promise.all([slow.stop(), operator.stop()]);
    });
  }

  it('the verification recorded after a repair covers the chain: an incremental whose full is damaged stays unverified', async () => {
    const dir = path.join(work, 'chain-verdict');
    const { full, inc } = await changedChain('chain-verdict', { config: { directory: dir } });
    const part = (JSON.parse(await readFile(path.join(dir, 'manifests', `${full.id}.json`), 'utf8')) as { parts: { path: string }[] }).parts[0]!.path;
    const bytes = await readFile(path.join(dir, part));
    bytes[bytes.length >> 1] ^= 0xff; // bit rot, same size
    await writeFile(path.join(dir, part), bytes);
    await rm(path.join(dir, 'indexes', `${inc.id}.index`));
    const p = await reopen({ config: { directory: dir } });
    expect((await p.recoverBackups()).indexes.map((r) => [r.id, r.action, r.verified])).toEqual([[inc.id, 'rebuilt', false]]);
    expect((await p.listBackups({ verified: true })).map((b) => b.id)).not.toContain(inc.id);
    await p.stop();
  });

  it('with two destinations, a restore reads the index where it is whole: cut short or corrupt at the first, no repair needed', async () => {
    const dirs = [path.join(work, 'first-bad-a'), path.join(work, 'first-bad-b')];
    const options: BackupPluginOptions = { driver: 'multi', destinations: dirs.map((directory) => ({ driver: 'filesystem' as const, config: { directory } })) };
    const { inc, want } = await changedChain('first-bad', options);
    const file = path.join(dirs[0]!, (await manifestOf(dirs[0]!, inc.id)).index.path);
    const bytes = await readFile(file);
    const p = await reopen(options);
    await writeFile(file, bytes.subarray(0, bytes.length - 3)); // cut short: skipped by size, verification or not
    await restoresExactly(p, inc.id, want, 'first-bad-cut');
    const unverified = await openDb(bucket('first-bad-unverified'));
    await p.restore({ backupId: inc.id, destination: unverified, verify: false });
    expect(await snapshot(unverified)).toEqual(want);
    const corrupt = Buffer.from(bytes);
    corrupt[corrupt.length >> 1] ^= 0xff; // same size: verification finds the good copy
    await writeFile(file, corrupt);
    await restoresExactly(p, inc.id, want, 'first-bad-corrupt');
    await p.stop();
  });

  it("a corrupt index of the right size: once a verification has found it (the incremental's, for its full), recoverBackups() rebuilds it (one destination) or copies it from where it is whole (two)", async () => {
    const dir = path.join(work, 'rot-one');
    const { full, inc, want } = await changedChain('rot-one', { config: { directory: dir } });
    const m = await manifestOf(dir, full.id);
    await rot(path.join(dir, m.index.path));
    const p = await reopen({ config: { directory: dir } });
    // Unverified, nothing tells it from a whole index but reading it: left alone.
    expect((await p.recoverBackups()).indexes).toEqual([]);
    // Verifying the incremental (what a user restores) finds the full's index and records the
    // full's own verdict too: that record is what recoverBackups() goes by.
    const verdict = await p.verifyBackup(inc.id);
    expect(verdict.verified).toBe(false);
    expect(verdict.error).toContain(`it needs ${full.id}, which fails verification`);
    expect((await p.listBackups({ verified: true })).map((b) => b.id)).toEqual([]);
    expect(verdict.error).toContain(`${m.index.path} at `);
    expect(verdict.error).toContain('fails its SHA-256 check');
    expect(verdict.error).toContain('recoverBackups() puts a lost, cut-short or corrupt object index back');
    expect(await p.recoverBackups()).toEqual({ recovered: [], indexes: [{ id: full.id, action: 'rebuilt', destinations: [p.destinations.members[0]!.label], verified: true }], skipped: [] });
    // The incremental's record is its own verdict (whole), not "its full fails": with the full
    // repaired it is verified again at once (a derived failure would stay, and retention would
    // delete a restorable backup).
    expect((await p.listBackups({ verified: true })).map((b) => b.id)).toEqual([inc.id, full.id]);
    // the corrupt file is gone, the rebuilt one named beside the untouched manifest
    expect(await indexFiles(dir)).toEqual([(await refOf(dir, full.id))!.path, `indexes/${full.id}.rebuilt.json`, `indexes/${inc.id}.index`].sort());
    expect((await p.verifyBackup(inc.id, { level: 'full' })).verified).toBe(true);
    expect((await p.listBackups({ verified: true })).map((b) => b.id)).toEqual([inc.id, full.id]);
    await restoresExactly(p, inc.id, want, 'rot-one');
    await p.stop();

    const two = await rottedAtSecond('rot-two');
    const { q, a, b, file, whole } = two;
    const seen = await q.verifyBackup(two.full.id);
    expect(seen.verified).toBe(true); // whole at the first destination
    expect(seen.destinations).toEqual([
      { label: a, verified: true, error: null },
      { label: b, verified: false, error: expect.stringContaining('fails its SHA-256 check') },
    ]);
    expect(await q.recoverBackups()).toEqual({ recovered: [], indexes: [{ id: two.full.id, action: 'copied', destinations: [b], verified: true }], skipped: [] });
    expect((await readFile(file)).equals(whole)).toBe(true);
    expect((await q.verifyBackup(two.full.id)).destinations.every((d) => d.verified)).toBe(true);
    await q.stop();
  });

  it("a restore without verification of a backup whose index is corrupt (right size) stops before writing anything, and says what mends it: verifyBackup(), then recoverBackups()", async () => {
    const dir = path.join(work, 'rot-unverified');
    const { inc, want } = await changedChain('rot-unverified', { config: { directory: dir } });
    await rot(path.join(dir, (await manifestOf(dir, inc.id)).index.path));
    const p = await reopen({ config: { directory: dir } });
    const target = await openDb(bucket('rot-unverified-target'));
    const before = await snapshot(target);
    const failed = await p.restore({ backupId: inc.id, destination: target, verify: false }).then(() => null, (e: unknown) => e as Error & { code?: string });
    expect(failed).toMatchObject({ code: expect.stringMatching(/^ERR_(PART_CHECKSUM|DECOMPRESS)$/) });
    expect(failed!.message).toContain(`Nothing was written. verifyBackup('${inc.id}') records the damage, and recoverBackups() then puts the index back`);
    expect(await snapshot(target)).toEqual(before);
    expect((await p.verifyBackup(inc.id)).verified).toBe(false);
    expect((await p.recoverBackups()).indexes).toEqual([expect.objectContaining({ id: inc.id, action: 'rebuilt', verified: true })]);
    await p.restore({ backupId: inc.id, destination: target, verify: false });
    expect(await snapshot(target)).toEqual(want);
    await p.stop();
  });

  it('a restore without verification whose index is corrupt at the first of two destinations is planned again from the second (its copy read whole first), restores exactly, and reports the damaged copy', async () => {
    const dirs = [path.join(work, 'rot-unverified-a'), path.join(work, 'rot-unverified-b')];
    const options: BackupPluginOptions = { driver: 'multi', destinations: dirs.map((directory) => ({ driver: 'filesystem' as const, config: { directory } })) };
    const { inc, want } = await changedChain('rot-unverified-two', options);
    const m = await manifestOf(dirs[0]!, inc.id);
    await rot(path.join(dirs[0]!, m.index.path));
    const p = await reopen(options);
    const target = await openDb(bucket('rot-unverified-two-target'));
    const report = await p.restore({ backupId: inc.id, destination: target, verify: false });
    expect(await snapshot(target)).toEqual(want);
    expect(report.sourceFailures).toContainEqual({ label: p.destinations.members[0]!.label, path: m.index.path, error: expect.stringContaining('fails its SHA-256 check') });
    await p.stop();
  });

  it('a restore records what its verification found: recoverBackups() then repairs a corrupt index without a verifyBackup() between (a failed restore at one destination, a restore served by the other copy at two); a selective restore records only a failure', async () => {
    const dir = path.join(work, 'rot-restore');
    const { full, inc, want } = await changedChain('rot-restore', { config: { directory: dir } });
    await rot(path.join(dir, (await manifestOf(dir, full.id)).index.path));
    const p = await reopen({ config: { directory: dir } });
    const target = await openDb(bucket('rot-restore-failed'));
    await expect(p.restore({ backupId: inc.id, destination: target })).rejects.toMatchObject({ code: 'ERR_VERIFY_FAILED' });
    expect((await snapshot(target)).map((o) => o.key)).toEqual(['s3db.json']); // nothing restored
    // Neither is `verified`: the incremental's own record is its backup's, but its chain holds a
    // backup recorded as failing, so it cannot be restored.
    expect((await p.listBackups({ verified: true })).map((b) => b.id)).toEqual([]);
    expect((await p.getBackup(inc.id))?.verified).toBe(false);
    expect((await p.getBackup(inc.id))?.verification?.verified).toBe(true);
    expect((await p.getBackup(full.id))?.verification?.error).toContain('fails its SHA-256 check');
    expect(await p.recoverBackups()).toEqual({ recovered: [], indexes: [{ id: full.id, action: 'rebuilt', destinations: [p.destinations.members[0]!.label], verified: true }], skipped: [] });
    await restoresExactly(p, inc.id, want, 'rot-restore');
    // That restore read every part of the chain: both are recorded verified, at level full.
    expect((await p.listBackups({ verified: true })).map((b) => [b.id, b.verification?.level])).toEqual([
      [inc.id, 'full'],
      [full.id, 'full'],
    ]);
    // A selective restore read only some parts: its success is not recorded.
    const before = (await p.getBackup(full.id))?.verification;
    await p.restore({ backupId: full.id, destination: await openDb(bucket('rot-restore-users')), resources: ['users'] });
    expect((await p.getBackup(full.id))?.verification).toEqual(before);
    await p.stop();

    const two = await rottedAtSecond('rot-restore-two');
    const { q, a, b, file, whole } = two;
    await restoresExactly(q, two.inc.id, two.want, 'rot-restore-two'); // served by the whole copy
    expect((await q.getBackup(two.full.id))?.verification?.destinations).toEqual([
      { label: a, verified: true, error: null },
      { label: b, verified: false, error: expect.stringContaining('fails its SHA-256 check') },
    ]);
    expect(await q.recoverBackups()).toEqual({ recovered: [], indexes: [{ id: two.full.id, action: 'copied', destinations: [b], verified: true }], skipped: [] });
    expect((await readFile(file)).equals(whole)).toBe(true);
    await q.stop();
  });

  it('while an index is lost, the next incremental becomes a full (with a warning) instead of failing on it', async () => {
    const dir = path.join(work, 'parent-lost');
    const { db, inc } = await changedChain('parent-lost', { config: { directory: dir } });
    await rm(path.join(dir, 'indexes', `${inc.id}.index`));
    const { warnings, logger } = collectingWarnings();
    const p = await reopen({ config: { directory: dir }, logger }, db.connectionString);
    const next = await p.createBackup({ type: 'incremental' });
    expect(next.type).toBe('full');
    expect(warnings).toContainEqual(expect.stringContaining(`the next backup is a full one: the object index of ${inc.id} is missing (recoverBackups() puts`));
    await p.stop();
  });

  it('a deletion that died midway is finished by the next backup, rebuilt index and its reference included', async () => {
    const dir = path.join(work, 'delete-crash');
    const { inc } = await changedChain('delete-crash', { config: { directory: dir } });
    await rm(path.join(dir, 'indexes', `${inc.id}.index`));
    const p = await reopen({ config: { directory: dir }, lease: false });
    expect((await p.recoverBackups()).indexes.map((r) => r.id)).toEqual([inc.id]);
    // Fault injection (a kill -9 cannot be timed to this instant): the deletion stops after the
    // manifest is gone, before the parts and indexes are.
    const member = p.destinations.members[0]!;
    const remove = member.delete.bind(member);
    member.delete = async (paths) => {
      if (paths.some((f) => f.startsWith('data/'))) throw new Error('injected: process died');
      return remove(paths);
    };
    await expect(p.deleteBackup(inc.id)).rejects.toThrow(/injected/);
    await p.stop();
    expect((await indexFiles(dir)).filter((f) => f.startsWith(`indexes/${inc.id}`))).toHaveLength(2);
    const next = await reopen({ config: { directory: dir } });
    await next.createBackup();
    expect((await filesUnder(dir)).filter((f) => f.includes(inc.id))).toEqual([]);
    await next.stop();
  });

  it('parts that do not give the entry count the manifest records: reported, nothing written', async () => {
    const dir = path.join(work, 'count');
    const { full } = await changedChain('count', { config: { directory: dir } });
    const file = path.join(dir, 'manifests', `${full.id}.json`);
    const m = JSON.parse(await readFile(file, 'utf8')) as Manifest;
    m.index.entries += 1;
    await writeFile(file, JSON.stringify(m, null, 1));
    await rm(path.join(dir, m.index.path));
    const p = await reopen({ config: { directory: dir } });
    const report = await p.recoverBackups();
    expect(report.indexes).toEqual([]);
    expect(report.skipped).toEqual([expect.objectContaining({ id: full.id, reason: expect.stringContaining(`the parts give ${m.index.entries - 1} index entries, the manifest records ${m.index.entries}; nothing was written`) })]);
    expect((await indexFiles(dir)).filter((f) => f.startsWith(`indexes/${full.id}`))).toEqual([]);
    await p.stop();
  });

  it('a filtered resource: entries of records that left the filter are not inherited from the parent, as the backup wrote it', async () => {
    const dir = path.join(work, 'logical');
    const selection = { resources: { users: true, orders: { filter: { status: 'completed' } } } };
    const { full, inc } = await changedChain('logical', { config: { directory: dir }, ...selection });
    const keysOf = (lines: string[]) => lines.map((l) => JSON.parse(l) as { k: string; b: string }).map((e) => `${e.k} ${e.b}`);
    const before = new Map<string, string[]>();
    for (const id of [full.id, inc.id]) before.set(id, keysOf(await indexLines(dir, id)));
    // o00001 left the filter (completed -> pending): in the full's index, not in the incremental's
    expect(before.get(full.id)!.some((k) => k.includes('orders/data/id=o00001'))).toBe(true);
    expect(before.get(inc.id)!.some((k) => k.includes('orders/data/id=o00001'))).toBe(false);
    await rm(path.join(dir, 'indexes'), { recursive: true });
    const p = await reopen({ config: { directory: dir }, ...selection });
    expect((await p.recoverBackups()).indexes.map((r) => r.id)).toEqual([full.id, inc.id]);
    for (const id of [full.id, inc.id]) expect(keysOf(await indexLines(dir, id))).toEqual(before.get(id));
    await p.stop();
  });
});
