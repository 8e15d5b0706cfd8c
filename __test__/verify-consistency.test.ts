// A full verification checks a backup's index against its own parts and its parent's index
// (src/engine/index-consistency.ts), on the real s3db.js (memory://) and a real filesystem
// destination: backups edited by hand so that every object still verifies on its own (the
// manifest's sizes and checksums updated; unencrypted, so no authentication stands in the way)
// fail verification naming the disagreement, and a restore refuses them before writing anything,
// where it used to stop after some writes. What the index leaves out of the parts still verifies
// (the index wins: a restore leaves it out with a warning).
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin, type BackupPluginOptions } from '../src/index.js';
import { createEncoder, createKeyFile } from '../src/codec/index.js';
import { FilesystemDestination } from '../src/destinations/filesystem.js';
import { disagreements, exactProblems, IndexTally, PartTally, tallyIndex } from '../src/engine/index-consistency.js';
import type { IndexEntry, Manifest, PartEntry } from '../src/engine/manifest.js';
import { indexLineKeys, readLineBatches, readPartRecords } from '../src/engine/stored.js';
import { ArchiveWriter, type ArchiveRecord } from '../src/engine/archive.js';
import { editIndex, editManifest, editPart, onReads, rotIndex, usersDatabase } from './helpers/edited-backups.js';
import { warnInto } from './helpers/logger.js';
import { openDb, snapshot } from './helpers/database.js';

let work: string;
let seq = 0;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'verify-consistency-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

type Failure = Error & { code?: string };
const failureOf = (p: Promise<unknown>): Promise<Failure | null> => p.then(() => null, (e: unknown) => e as Failure);
const line = (lines: string[], id: string) => lines.find((l) => l.includes(`"resource=users/data/id=${id}"`))!;

/** An uncompressed, unencrypted plugin at a new directory (its index is plain JSON lines: editIndex). */
async function plainPlugin(db: Awaited<ReturnType<typeof openDb>>, options: Record<string, unknown> = {}) {
  const dir = path.join(work, `dest-${++seq}`);
  const plugin = new BackupPlugin({ schedule: false, config: { directory: dir }, compression: 'none', ...options });
  await db.usePlugin(plugin, `p${seq}`);
  return { dir, plugin };
}

/** A restore (with verification, the default) of `backupId` into a new empty database: refused, nothing written. */
async function expectRefused(plugin: BackupPlugin, backupId: string, disagreement: string): Promise<void> {
  const target = await openDb(`memory://refused-${process.pid}-${++seq}/db`);
  const before = await snapshot(target);
  const refused = await failureOf(plugin.restore({ backupId, destination: target }));
  expect(refused).toMatchObject({ code: 'ERR_VERIFY_FAILED', message: expect.stringContaining(disagreement) });
  expect(refused!.message).toMatch(/nothing was restored/);
  expect(await snapshot(target)).toEqual(before);
}

/** A restore without verification of `backupId` into a new empty database: how it stopped, and whether it wrote anything first. */
async function unverifiedRestore(plugin: BackupPlugin, backupId: string): Promise<{ stopped: Failure | null; wrote: boolean }> {
  const target = await openDb(`memory://unverified-${process.pid}-${++seq}/db`);
  const before = await snapshot(target);
  const stopped = await failureOf(plugin.restore({ backupId, destination: target, verify: false }));
  return { stopped, wrote: JSON.stringify(await snapshot(target)) !== JSON.stringify(before) };
}

/** A plain backup of six users whose 'users' part is rewritten through `edit` (editPart), with a new reader of it. */
async function usersPartEdited(label: string, edit: (records: ArchiveRecord[]) => ArchiveRecord[]) {
  const { db } = await usersDatabase(label, 6);
  const { dir, plugin } = await plainPlugin(db);
  const backup = await plugin.createBackup();
  await editPart(dir, backup.id, 'users', 1, edit);
  return { dir, plugin, backup, reader: await readerOf(dir) };
}

/**
 * A new plugin, on a new empty database, over the backups at `at` (a directory, or plugin
 * options): it reads their manifests afresh (a plugin keeps the manifests it read, so each edit
 * needs a new one).
 */
async function readerOf(at: string | BackupPluginOptions): Promise<BackupPlugin> {
  const reader = new BackupPlugin(typeof at === 'string' ? { schedule: false, config: { directory: at } } : at);
  await (await openDb(`memory://vc-reader-${process.pid}-${++seq}/db`)).usePlugin(reader, `reader-${seq}`);
  return reader;
}

/** A users database and uncompressed plugin options writing to two filesystem destinations, `a` and `b` (strategy 'all'). */
async function twoDestinations(label: string, extra: Record<string, unknown> = {}) {
  const { db, users } = await usersDatabase(label, 6);
  const [a, b] = [path.join(work, `${label}-a-${++seq}`), path.join(work, `${label}-b-${seq}`)];
  const options = { schedule: false, compression: 'none', driver: 'multi', strategy: 'all', destinations: [a, b].map((directory) => ({ driver: 'filesystem', config: { directory } })), logger: warnInto([]), ...extra } as unknown as BackupPluginOptions;
  const plugin = new BackupPlugin(options);
  await db.usePlugin(plugin, label);
  return { db, users, a, b, options, plugin };
}

describe("a full verification checks a backup's index against its parts", () => {
  it('an index naming a version no part holds fails full verification (quick passes: every object is as the manifest says); a restore writes nothing, and the next backup is a full', async () => {
    const { db } = await usersDatabase('vc-unheld', 5);
    const { dir, plugin } = await plainPlugin(db, { type: 'incremental' });
    const backup = await plugin.createBackup();
    await editIndex(dir, backup.id, (lines) => {
      const at = lines.indexOf(line(lines, 'u1'));
      return [...lines.slice(0, at + 1), lines[at]!.replace('id=u1"', 'id=u1x"'), ...lines.slice(at + 1)]; // sorts between u1 and u2
    });
    expect(await plugin.verifyBackup(backup.id, { level: 'quick' })).toMatchObject({ verified: true });
    const verdict = await plugin.verifyBackup(backup.id);
    expect(verdict).toMatchObject({ verified: false, level: 'full' });
    expect(verdict.error).toBe(
      `the index and the parts of backup ${backup.id} disagree: 'users': its index names 6 objects stored by ${backup.id}, and its parts hold 5 of them. Its objects are as its backup wrote them, so nothing mends it: restore another backup (a restore of this one stops)`,
    );
    await expectRefused(plugin, backup.id, `'users': its index names 6 objects stored by ${backup.id}, and its parts hold 5 of them`);
    // recorded: listed as failing, and never built on
    expect((await plugin.listBackups()).find((b) => b.id === backup.id)).toMatchObject({ verified: false });
    expect((await plugin.createBackup()).type).toBe('full');
    await plugin.stop();
  });

  it("an incremental's index naming a backup outside its chain, a version its parent's index places elsewhere, one its own parts hold for another backup, or one its parts delete: each fails full verification, and a restore writes nothing", async () => {
    const { db, users } = await usersDatabase('vc-chain', 6);
    const { dir, plugin } = await plainPlugin(db, { type: 'incremental' });
    const full = await plugin.createBackup();
    await users.update('u1', { name: 'first' });
    const i1 = await plugin.createBackup();
    await users.update('u2', { name: 'second' });
    await users.delete('u4'); // i2 holds its deletion
    const i2 = await plugin.createBackup();
    expect([i1.type, i2.type]).toEqual(['incremental', 'incremental']);
    const entry = (l: string, b: string) => l.replace(/"b":"[^"]+"/, `"b":"${b}"`);
    const edits: { what: string; edit: (lines: string[]) => string[]; says: string }[] = [
      {
        what: 'a backup outside the chain',
        edit: (lines) => lines.map((l) => (l === line(lines, 'u3') ? entry(l, 'full-20200101T000000000Z-000000') : l)),
        says: `its index names full-20200101T000000000Z-000000 for "resource=users/data/id=u3", which is not in its chain (${full.id}, ${i1.id}, ${i2.id})`,
      },
      {
        // what a restore reads in i1 (which does not hold it): its parent's index places it in the full
        what: "a version its parent's index places elsewhere",
        edit: (lines) => lines.map((l) => (l === line(lines, 'u3') ? entry(l, i1.id) : l)),
        says: `its index names ${i1.id} for "resource=users/data/id=u3", where the index of its parent ${i1.id} names ${full.id}`,
      },
      {
        // i2's parts hold u2's new version: a restore would find a newer version than the index says
        what: 'a version its own parts hold, for another backup',
        edit: (lines) => lines.map((l) => (l === line(lines, 'u2') ? entry(l, i1.id) : l)),
        says: `its index names ${i1.id} for "resource=users/data/id=u2", and its own parts hold a version of it`,
      },
      {
        what: 'a version its parts delete',
        edit: (lines) => {
          const u3 = line(lines, 'u3');
          const at = lines.indexOf(u3);
          return [...lines.slice(0, at + 1), entry(u3.replace('id=u3"', 'id=u4"'), i2.id), ...lines.slice(at + 1)];
        },
        says: `its index names it for "resource=users/data/id=u4", and its parts hold its deletion`,
      },
    ];
    let original: string[] = [];
    await editIndex(dir, i2.id, (lines) => (original = lines));
    for (const { what, edit, says } of edits) {
      await editIndex(dir, i2.id, () => edit(original));
      const reader = await readerOf(dir);
      const verdict = await reader.verifyBackup(i2.id);
      expect({ what, verified: verdict.verified, error: verdict.error }).toEqual({ what, verified: false, error: expect.stringContaining(says) });
      expect(verdict.error).toMatch(new RegExp(`^the index and the parts of backup ${i2.id} disagree: `));
      await expectRefused(reader, i2.id, says);
      await reader.stop();
    }
    // put back as it was written, it verifies and restores exactly
    await editIndex(dir, i2.id, () => original);
    const reader = await readerOf(dir);
    expect(await reader.verifyBackup(i2.id)).toMatchObject({ verified: true });
    const target = await openDb(`memory://vc-chain-back-${process.pid}/db`);
    await reader.restore({ backupId: i2.id, destination: target });
    expect(await snapshot(target)).toEqual(await snapshot(db));
    await reader.stop();
    await plugin.stop();
  });

  it("parts listed out of key order fail full verification (each part alone verifies); a restore writes nothing, where it stopped with ERR_KEY_ORDER after some writes", async () => {
    const { db } = await usersDatabase('vc-order', 30, (id) => `name ${id} ${'x'.repeat(200)}`);
    const { dir, plugin } = await plainPlugin(db, { partSize: 1024 });
    const backup = await plugin.createBackup();
    await editManifest(dir, backup.id, (m) => {
      const mine = m.parts.filter((p) => p.group === 'users');
      expect(mine.length).toBeGreaterThan(2);
      m.parts = [...m.parts.filter((p) => p.group !== 'users'), ...mine.reverse()];
    });
    const reader = await readerOf(dir);
    const verdict = await reader.verifyBackup(backup.id);
    expect(verdict.verified).toBe(false);
    expect(verdict.error).toMatch(/disagree: part \S+ begins with "resource=users\/data\/id=u\d+", not after "resource=users\/data\/id=u\d+", where part \S+ ends \(parts out of key order\)/);
    await expectRefused(reader, backup.id, 'parts out of key order');
    await reader.stop();
    await plugin.stop();
  });

  it("a part whose records are out of key order inside: full verification fails (and a group that also disagrees is not read again, which would stop on the order); a restore without verification stops at the record, where it passed it over", async () => {
    const swapped = (records: ArchiveRecord[]) => {
      const at = records.findIndex((r) => r.header.key.endsWith('id=u2'));
      return [...records.slice(0, at), records[at + 1]!, records[at]!, ...records.slice(at + 2)]; // u0 u1 u3 u2 u4 u5
    };
    const { dir, plugin, backup, reader } = await usersPartEdited('vc-inpart', swapped);
    expect(await reader.verifyBackup(backup.id)).toMatchObject({ verified: false, error: expect.stringContaining('holds "resource=users/data/id=u2" after "resource=users/data/id=u3" (not in key order)') });
    await expectRefused(reader, backup.id, 'not in key order');
    const { stopped, wrote } = await unverifiedRestore(reader, backup.id);
    expect(stopped).toMatchObject({ code: 'ERR_PART_UNREADABLE', message: expect.stringContaining('holds "resource=users/data/id=u2" after "resource=users/data/id=u3": its records are not in key order') });
    expect(stopped!.message).toContain('Run the restore again with verification on');
    // u0, u1 and u3 were written before it stopped, and the message says so
    expect(wrote).toBe(true);
    expect(stopped!.message).toMatch(/\(\d+ objects were already written: the target is partly restored/);
    await reader.stop();
    // the same part with a record of a key its index does not name, too: its group is inexact, yet not read again
    await editPart(dir, backup.id, 'users', 1, (records) => records.map((r) => (r.header.key.endsWith('id=u5') ? { ...r, header: { ...r.header, key: r.header.key.replace('u5', 'u5x') } } : r)));
    const again = await readerOf(dir);
    expect(await again.verifyBackup(backup.id)).toMatchObject({ verified: false, error: expect.stringContaining('(not in key order)') });
    await again.stop();
    await plugin.stop();
  });

  it('a part holding one key twice (not strictly in key order): full verification fails, and a restore without verification stops at the record rather than pass the second over', async () => {
    const twice = (records: ArchiveRecord[]) => {
      const at = records.findIndex((r) => r.header.key.endsWith('id=u2'));
      return [...records.slice(0, at + 1), records[at]!, ...records.slice(at + 1)]; // u0 u1 u2 u2 u3 ...
    };
    const { plugin, backup, reader } = await usersPartEdited('vc-inpart-twice', twice);
    expect(await reader.verifyBackup(backup.id)).toMatchObject({ verified: false, error: expect.stringContaining('(not in key order)') });
    const { stopped } = await unverifiedRestore(reader, backup.id);
    expect(stopped).toMatchObject({ code: 'ERR_PART_UNREADABLE', message: expect.stringContaining('holds "resource=users/data/id=u2" after "resource=users/data/id=u2": its records are not in key order') });
    await reader.stop();
    await plugin.stop();
  });

  it("an encrypted part whose records are out of key order (a writer's defect: its segments authenticate) is reported without the keys it holds", async () => {
    const destination = new FilesystemDestination({ directory: path.join(work, 'encrypted-part-order') });
    const { key } = await createKeyFile('part-order-passphrase-never-logged', { iterations: 100_000 });
    const records = ['b', 'a'].map((id) => ({ header: { key: `resource=users/data/id=secret-${id}@example.com`, size: 2 }, body: Buffer.from('{}') }));
    const archive = await buffer(Readable.from(records, { objectMode: true }).pipe(new ArchiveWriter()));
    const stored = await buffer(Readable.from([archive]).pipe(createEncoder({ compression: 'none', key })));
    await destination.write('parts/full-x/users-1.part', stored);
    const part = { path: 'parts/full-x/users-1.part', group: 'users', seq: 1, size: stored.length, sha256: createHash('sha256').update(stored).digest('hex'), plainBytes: archive.length, objects: 2 } as unknown as PartEntry;
    const manifest = { id: 'full-x', codec: { compression: 'none', encrypted: true }, encryption: {}, parts: [part] } as unknown as Manifest;
    const failed = await failureOf((async () => {
      for await (const _record of readPartRecords([destination], manifest, part, key));
    })());
    expect(failed).toMatchObject({ code: 'ERR_PART_UNREADABLE', message: expect.stringContaining('its records are not in key order') });
    expect(failed!.message).not.toContain('secret');
  });

  it('a restore without verification of a backup whose index is out of key order (as written: its SHA-256 passes) stops before writing anything, and says so', async () => {
    const { db } = await usersDatabase('vc-unverified-order', 6);
    const { dir, plugin } = await plainPlugin(db);
    const backup = await plugin.createBackup();
    await editIndex(dir, backup.id, (lines) => [...lines].reverse());
    const reader = await readerOf(dir);
    const { stopped, wrote } = await unverifiedRestore(reader, backup.id);
    expect(stopped).toMatchObject({ code: 'ERR_KEY_ORDER', message: expect.stringContaining(`the object index of ${backup.id} listed`) });
    expect(stopped!.message).toContain('Nothing was written.');
    expect(wrote).toBe(false);
    await reader.stop();
    await plugin.stop();
  });


  it("an incremental whose index drops a key its parent's has, without a deletion, fails full verification (a restore would leave the object out without a word); written by 0.1.0, whose incrementals could, it verifies", async () => {
    const { db, users } = await usersDatabase('vc-dropped', 5);
    const { dir, plugin } = await plainPlugin(db, { type: 'incremental' });
    await plugin.createBackup();
    await users.update('u1', { name: 'changed' });
    await users.delete('u4');
    const inc = await plugin.createBackup();
    expect(inc.type).toBe('incremental');
    await plugin.stop();
    await editIndex(dir, inc.id, (lines) => lines.filter((l) => l !== line(lines, 'u2')));
    const reader = await readerOf(dir);
    const verdict = await reader.verifyBackup(inc.id);
    expect(verdict).toMatchObject({ verified: false, error: expect.stringContaining(`disagree: 'users': its index drops 2 of its parent's objects, and its parts record 1 deletions: an object dropped without its deletion is missing from the backup`) });
    await expectRefused(reader, inc.id, "its index drops 2 of its parent's objects");
    await reader.stop();
    await editManifest(dir, inc.id, (m) => void delete m.keepsUndefinedHeaders); // as 0.1.0 wrote it
    const older = await readerOf(dir);
    expect(await older.verifyBackup(inc.id)).toMatchObject({ verified: true });
    await older.stop();
  });

  it('a part the manifest lists twice fails full verification (a restore would read it twice)', async () => {
    const { db } = await usersDatabase('vc-twice', 20, (id) => `name ${id} ${'x'.repeat(200)}`);
    const { dir, plugin } = await plainPlugin(db, { partSize: 1024 });
    const backup = await plugin.createBackup();
    await plugin.stop();
    let twice = '';
    await editManifest(dir, backup.id, (m) => {
      const at = m.parts.findIndex((p) => p.group === 'users');
      twice = m.parts[at]!.path;
      m.parts.splice(at + 1, 0, { ...m.parts[at]! });
    });
    const reader = await readerOf(dir);
    expect(await reader.verifyBackup(backup.id)).toMatchObject({ verified: false, error: expect.stringContaining(`its manifest lists part ${twice} more than once`) });
    await expectRefused(reader, backup.id, 'more than once');
    await reader.stop();
  });

  it("with two destinations and the parent's index damaged at the first, its child still verifies (the parent's index is read where it verified) and restores exactly, and the next incremental on it commits", async () => {
    const { db, users, a, options, plugin } = await twoDestinations('vc-two', { type: 'incremental' });
    const full = await plugin.createBackup();
    await users.update('u1', { name: 'changed' });
    const inc = await plugin.createBackup();
    await plugin.stop();
    await rotIndex(a, full.id);
    const reader = await readerOf(options);
    const verdict = await reader.verifyBackup(inc.id);
    expect(verdict).toMatchObject({ verified: true, damagedCopies: [expect.objectContaining({ backupId: full.id, error: expect.stringContaining('index') })] });
    const target = await openDb(`memory://vc-two-target-${process.pid}/db`);
    await reader.restore({ backupId: inc.id, destination: target });
    expect(await snapshot(target)).toEqual(await snapshot(db));
    await reader.stop();
    // the next incremental, built on the full (its verification is recorded: whole at the second
    // destination only), reads the full's index there too: before, it read the first's and failed
    // at its end (ERR_PART_CHECKSUM), backup after backup
    const again = new BackupPlugin({ ...options, type: 'full' });
    await db.usePlugin(again, 'two-again');
    await again.deleteBackup(inc.id);
    await users.update('u2', { name: 'changed too' });
    const next = await again.createBackup({ type: 'incremental' });
    expect({ type: next.type, parentId: next.parentId }).toEqual({ type: 'incremental', parentId: full.id });
    await again.stop();
  });

  it("the parent's index failing to read for the join (it verified just before) leaves the child checked without it, not unreadable", async () => {
    const { db, users } = await usersDatabase('vc-parent-read', 4);
    const { plugin } = await plainPlugin(db, { type: 'incremental' });
    const full = await plugin.createBackup();
    await users.update('u1', { name: 'changed' });
    await users.delete('u2'); // a deletion: without the join, the parent's keys it drops are not known, so not compared with it
    const inc = await plugin.createBackup();
    const indexPath = (await plugin.getBackup(full.id))!.manifest.index.path;
    // the full's index reads once (its own verification), then fails as a disk that went away would
    let reads = 0;
    onReads(plugin, (at, read) => (at === indexPath && ++reads > 1 ? Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })) : read()));
    expect(await plugin.verifyBackup(inc.id)).toMatchObject({ verified: true, error: null });
    expect(reads).toBeGreaterThan(1); // the join asked for it
    await plugin.stop();
  });

  it("with two destinations and the parent's index damaged at the first, a child whose index drops a parent's key without its deletion still fails (the join reads the parent's index where it verified, not skipping it)", async () => {
    const { users, a, b, options, plugin } = await twoDestinations('vc-two-drop', { type: 'incremental' });
    const full = await plugin.createBackup();
    await users.update('u1', { name: 'changed' });
    const inc = await plugin.createBackup();
    await plugin.stop();
    await rotIndex(a, full.id);
    for (const dir of [a, b]) await editIndex(dir, inc.id, (lines) => lines.filter((l) => l !== line(lines, 'u2')));
    const reader = await readerOf(options);
    expect(await reader.verifyBackup(inc.id)).toMatchObject({ verified: false, error: expect.stringContaining("its index drops 1 of its parent's objects, and its parts record 0 deletions") });
    await expectRefused(reader, inc.id, "its index drops 1 of its parent's objects");
    await reader.stop();
  });

  it("with two destinations and a backup's own index damaged at the first, a group checked exactly reads the index where it verified (it verifies, the damaged copy reported)", async () => {
    const { a, b, options, plugin } = await twoDestinations('vc-two-exact');
    const full = await plugin.createBackup();
    await plugin.stop();
    // the index lacks u2 (the index wins: 'users' is checked exactly, and passes), at both destinations
    for (const dir of [a, b]) await editIndex(dir, full.id, (lines) => lines.filter((l) => l !== line(lines, 'u2')));
    await rotIndex(a, full.id);
    const reader = await readerOf(options);
    expect(await reader.verifyBackup(full.id)).toMatchObject({ verified: true, damagedCopies: [expect.objectContaining({ backupId: full.id, label: expect.stringContaining(a) })] });
    await reader.stop();
  });

  it("an incremental's verification before its commit joins its index with its parent's (the parent's index is read once more than with quick verification)", async () => {
    const counts: number[] = [];
    for (const verify of ['full', 'quick'] as const) {
      const { db, users } = await usersDatabase(`vc-precommit-${verify}`, 4);
      const { plugin } = await plainPlugin(db, { type: 'incremental', verify });
      const full = await plugin.createBackup();
      const indexPath = (await plugin.getBackup(full.id))!.manifest.index.path;
      let reads = 0;
      onReads(plugin, (at, read) => {
        if (at === indexPath) reads++;
        return read();
      });
      await users.update('u1', { name: 'changed' });
      expect((await plugin.createBackup()).type).toBe('incremental');
      counts.push(reads);
      await plugin.stop();
    }
    expect(counts[0]).toBe(counts[1]! + 1);
  });

  it("a child of a parent that fails verification is not joined with the parent's index: the failure is told as the parent's, not as a disagreement of the child's own", async () => {
    const { db, users } = await usersDatabase('vc-bad-parent', 6);
    const { dir, plugin } = await plainPlugin(db, { type: 'incremental' });
    await plugin.createBackup();
    await users.update('u1', { name: 'first' });
    const i1 = await plugin.createBackup();
    await users.update('u2', { name: 'second' });
    const i2 = await plugin.createBackup();
    await plugin.stop();
    // i1's index drops u3 without its deletion (rule 5): i1 fails; i2's index, written from i1's as it was, still names the full for u3
    await editIndex(dir, i1.id, (lines) => lines.filter((l) => l !== line(lines, 'u3')));
    const reader = await readerOf(dir);
    const verdict = await reader.verifyBackup(i2.id);
    expect(verdict).toMatchObject({ verified: false, error: expect.stringContaining(`it needs ${i1.id}, which fails verification`) });
    expect(verdict.error).not.toContain(`the index and the parts of backup ${i2.id} disagree`);
    await reader.stop();
  });

  it('an index holding a line that is not an entry (not JSON, or a key that is not a string) fails full verification as damage (ERR_INDEX_CORRUPT), not as a read that failed', async () => {
    const { db } = await usersDatabase('vc-not-entry', 4);
    const { dir, plugin } = await plainPlugin(db);
    const backup = await plugin.createBackup();
    await plugin.stop();
    let original: string[] = [];
    await editIndex(dir, backup.id, (lines) => (original = lines));
    for (const bad of ['not json', '{"k":1,"e":"","s":0,"m":"","b":"x"}']) {
      await editIndex(dir, backup.id, () => [...original.slice(0, 1), bad, ...original.slice(1)]);
      const reader = await readerOf(dir);
      const verdict = await reader.verifyBackup(backup.id); // (a read that failed throws ERR_VERIFY_INCOMPLETE)
      expect({ bad, verdict }).toMatchObject({ bad, verdict: { verified: false, error: expect.stringContaining('holds a line that is not an index entry') } });
      await reader.stop();
    }
  });

  it('a version the parts hold and the index lacks (a deletion an earlier build missed) still verifies: the index wins, a restore leaves it out with a warning', async () => {
    const { db } = await usersDatabase('vc-extra', 4);
    const { dir, plugin } = await plainPlugin(db);
    const backup = await plugin.createBackup();
    await plugin.stop();
    await editIndex(dir, backup.id, (lines) => lines.filter((l) => l !== line(lines, 'u2')));
    const reader = await readerOf(dir);
    expect(await reader.verifyBackup(backup.id)).toMatchObject({ verified: true, error: null });
    const target = await openDb(`memory://vc-extra-target-${process.pid}/db`);
    const report = await reader.restore({ backupId: backup.id, destination: target });
    expect(report.warnings).toEqual([expect.stringContaining('1 objects held by the chain')]);
    expect((await snapshot(target)).map((o) => o.key)).not.toContain('resource=users/data/id=u2');
    await reader.stop();
  });

  it("a restore of some resources verifies only theirs: another resource's disagreement does not stop it", async () => {
    const { db } = await usersDatabase('vc-scope', 3);
    const notes = (await db.createResource({ name: 'notes', attributes: { text: 'string' } })) as unknown as { insert(v: object): Promise<unknown> };
    await notes.insert({ id: 'n1', text: 'kept' });
    const { dir, plugin } = await plainPlugin(db);
    const backup = await plugin.createBackup();
    await editIndex(dir, backup.id, (lines) => {
      const at = lines.indexOf(line(lines, 'u1'));
      return [...lines.slice(0, at + 1), lines[at]!.replace('id=u1"', 'id=u1x"'), ...lines.slice(at + 1)];
    });
    const target = await openDb(`memory://vc-scope-target-${process.pid}/db`);
    await plugin.restore({ backupId: backup.id, destination: target, resources: ['notes'] });
    expect((await snapshot(target)).filter((o) => o.key.startsWith('resource=notes/data/')).length).toBe(1);
    await expectRefused(plugin, backup.id, "'users': its index names 4 objects");
    await plugin.stop();
  });
});

describe('index-consistency rules, on their own', () => {
  const manifest = (encrypted: boolean, chain = ['m']): Manifest => ({ id: chain[chain.length - 1]!, chain, encryption: encrypted ? { keyCheck: '', keyFile: null } : null, resources: {}, parts: [], keepsUndefinedHeaders: true }) as unknown as Manifest;
  const entries = async function* (list: Partial<IndexEntry>[]): AsyncIterable<IndexEntry> {
    for (const e of list) yield { e: '', s: 0, m: '', ...e } as IndexEntry;
  };
  /** `list` as an index is read: a decoded chunk's worth of entries at a time (here two). */
  const batches = async function* (list: Partial<IndexEntry>[]): AsyncIterable<IndexEntry[]> {
    for (let i = 0; i < list.length; i += 2) yield list.slice(i, i + 2).map((e) => ({ e: '', s: 0, m: '', ...e }) as IndexEntry);
  };
  const headers = async function* (keys: [string, boolean?][]) {
    for (const [key, deleted] of keys) yield { key, deleted };
  };

  it("a part's records out of order, or of another group, are told; an encrypted backup's keys never are", () => {
    for (const encrypted of [false, true]) {
      const tally = new PartTally({ path: 'data/p1', group: 'users', at: 0 }, encrypted);
      for (const key of ['resource=users/data/id=b', 'resource=users/data/id=a', 'resource=orders/data/id=c']) tally.add({ key });
      const told = tally.problems.toString();
      expect(told).toContain('(not in key order)');
      expect(told).toContain("of 'orders'");
      expect(told.includes('id=a')).toBe(!encrypted);
    }
  });

  it('an index out of order is told, read to its end (its count), with its keys named only when not encrypted', async () => {
    for (const encrypted of [false, true]) {
      const tally: IndexTally = await tallyIndex(manifest(encrypted), batches([{ k: 'resource=u/data/id=b', b: 'm' }, { k: 'resource=u/data/id=a', b: 'm' }, { k: 'resource=u/data/id=c', b: 'm' }]), null, null);
      expect(tally.entries).toBe(3);
      expect(tally.problems.toString()).toMatch(/^the index of m is not in key order/);
      expect(tally.problems.toString().includes('id=a')).toBe(!encrypted);
    }
  });

  it("an incremental's index joined with its parent's across chunks: its own versions and the parent's keys it drops match its parts, or the group is checked exactly", async () => {
    const m = manifest(false, ['f', 'i']);
    const k = (id: string) => `resource=u/data/id=${id}`;
    const parent = [{ k: k('a'), b: 'f' }, { k: k('b'), b: 'f' }, { k: k('c'), b: 'f' }, { k: k('d'), b: 'f' }, { k: k('g'), b: 'f' }, { k: k('h'), b: 'f' }];
    // a kept, b deleted, c changed, d deleted, e new, g kept, h deleted (after the incremental's last key)
    const own = [{ k: k('a'), b: 'f' }, { k: k('c'), b: 'i' }, { k: k('e'), b: 'i' }, { k: k('g'), b: 'f' }];
    const parts = (records: [string, boolean?][]) => {
      const tally = new PartTally({ path: 'data/p1', group: 'u', at: 0 }, false);
      for (const [id, deleted] of records) tally.add({ key: k(id), deleted });
      return [tally];
    };
    const joined = await tallyIndex(m, batches(own), { id: 'f', batches: batches(parent) }, null);
    expect(joined.problems.empty).toBe(true);
    expect(disagreements(m, parts([['b', true], ['c'], ['d', true], ['e'], ['h', true]]), joined, null).inexact.map((g) => g.group)).toEqual([]);
    // d or h dropped without its deletion (the index wins: a restore leaves it out), or c's version missing: checked exactly
    expect(disagreements(m, parts([['b', true], ['c'], ['e'], ['h', true]]), joined, null).inexact).toEqual([{ group: 'u', droppedUnrecorded: expect.stringContaining("'u': its index drops 3 of its parent's objects, and its parts record 2 deletions") }]);
    expect(disagreements(m, parts([['b', true], ['c'], ['d', true], ['e']]), joined, null).inexact.map((g) => g.group)).toEqual(['u']);
    expect(disagreements(m, parts([['b', true], ['d', true], ['e'], ['h', true]]), joined, null).inexact).toEqual([{ group: 'u', droppedUnrecorded: null }]);
    // a parent's index out of order is told, not taken for entries it lacks
    const disordered = await tallyIndex(m, batches(own), { id: 'f', batches: batches([parent[1]!, parent[0]!, ...parent.slice(2)]) }, null);
    // (told when met: "a" was asked before the parent's "b" passed, so it was not there yet)
    expect(disordered.problems.toString()).toContain(`the index of its parent f is not in key order ("${k('a')}" after "${k('b')}")`);
    expect(disordered.entries).toBe(own.length);
    // an entry naming the parent where the parent's index names another backup, or has none
    const wrong = await tallyIndex(m, batches([{ k: k('a'), b: 'f' }, { k: k('aa'), b: 'f' }]), { id: 'f', batches: batches(parent) }, null);
    expect(wrong.problems.toString()).toBe(`its index names f for "${k('aa')}", where the index of its parent f has no entry`);
  });

  it("an index line's key and holder are read as JSON.parse reads them, escapes, quotes and lone surrogates included", () => {
    const keys = ['resource=u/data/id=a', 'a"b\\c', 'é😀 "', 'has,"b":"inside', '\ud800lone', ''];
    for (const k of keys) {
      for (const e of ['', '"etag"', ',"b":"x']) {
        const line = JSON.stringify({ k, e, s: 1, m: '2026-12-03T00:00:00.000Z', b: 'incremental-1' });
        expect(indexLineKeys(line)).toEqual({ k, b: 'incremental-1' });
      }
    }
    expect(indexLineKeys('{"b":"q","k":"w","e":""}')).toEqual({ k: 'w', b: 'q' }); // another shape: parsed whole
    expect(() => indexLineKeys('{"k":"a","b":"x"')).toThrow();
  });

  it('a key repeated (in a part, across two parts, in the index or in its parent\'s) is out of order, and parts are taken in the manifest\'s order whatever order their checks ended in', async () => {
    const k = (id: string) => `resource=u/data/id=${id}`;
    const part = (at: number, ids: string[]) => {
      const tally = new PartTally({ path: `data/p${at}`, group: 'u', at }, false);
      for (const id of ids) tally.add({ key: k(id) });
      return tally;
    };
    expect(part(0, ['a', 'a']).problems.toString()).toContain('(not in key order)');
    const m = manifest(false);
    const index = await tallyIndex(m, batches([{ k: k('a'), b: 'm' }, { k: k('b'), b: 'm' }, { k: k('c'), b: 'm' }, { k: k('d'), b: 'm' }]), null, null);
    expect(index.problems.empty).toBe(true);
    expect(disagreements(m, [part(0, ['a', 'b']), part(1, ['b', 'd'])], index, null).problems.toString()).toContain('(parts out of key order)');
    // checks end in any order (two at a time): the second part's tally may come first
    expect(disagreements(m, [part(1, ['c', 'd']), part(0, ['a', 'b'])], index, null)).toEqual({ problems: expect.objectContaining({ empty: true }), inexact: [] });
    const repeated = await tallyIndex(m, batches([{ k: k('a'), b: 'm' }, { k: k('a'), b: 'm' }]), null, null);
    expect(repeated.problems.toString()).toMatch(/^the index of m is not in key order/);
    const inc = manifest(false, ['f', 'i']);
    const parentRepeated = await tallyIndex(inc, batches([{ k: k('c'), b: 'i' }]), { id: 'f', batches: batches([{ k: k('a'), b: 'f' }, { k: k('a'), b: 'f' }]) }, null);
    expect(parentRepeated.problems.toString()).toContain('the index of its parent f is not in key order');
  });

  it("a group stored as logical records: an entry naming another backup is told, even one its parent's index names the same", async () => {
    const k = (id: string) => `resource=u/data/id=${id}`;
    const m = { ...manifest(false, ['f', 'i']), resources: { u: { logical: true } } } as unknown as Manifest;
    const tally = await tallyIndex(m, batches([{ k: k('a'), b: 'f' }]), { id: 'f', batches: batches([{ k: k('a'), b: 'f' }]) }, null);
    expect(tally.problems.toString()).toContain("which it stores as logical records");
    // its parent's keys it lacks are not drops (a logical group is stored whole each time): no exact check
    const own = await tallyIndex(m, batches([{ k: k('b'), b: 'i' }]), { id: 'f', batches: batches([{ k: k('a'), b: 'f' }]) }, null);
    const part = new PartTally({ path: 'data/p0', group: 'u', at: 0 }, false);
    part.add({ key: k('b') });
    expect(disagreements(m, [part], own, null)).toEqual({ problems: expect.objectContaining({ empty: true }), inexact: [] });
  });

  it('readLineBatches gives every line once, at most 1024 at a time, the last one without its newline too', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `line ${i}`);
    const source = async function* () {
      yield Buffer.from(`${lines.slice(0, 2500).join('\n')}\n${lines[2500]!.slice(0, 3)}`); // one big chunk, a line cut short
      yield Buffer.from(`${lines[2500]!.slice(3)}\n${lines.slice(2501).join('\n')}`); // the last line has no newline
    };
    const got: string[][] = [];
    for await (const batch of readLineBatches(source())) got.push([...batch]);
    expect(got.flat()).toEqual(lines);
    expect(Math.max(...got.map((b) => b.length))).toBeLessThanOrEqual(1024);
  });

  it('the exact check passes a version the index lacks, and tells one it names that the parts lack or delete', async () => {
    const m = manifest(false);
    const ok = await exactProblems(m, 'u', headers([['resource=u/data/id=a'], ['resource=u/data/id=b'], ['resource=u/data/id=c', true]]), entries([{ k: 'resource=u/data/id=a', b: 'm' }]));
    expect(ok.empty).toBe(true);
    const lacking = await exactProblems(m, 'u', headers([['resource=u/data/id=a']]), entries([{ k: 'resource=u/data/id=a', b: 'm' }, { k: 'resource=u/data/id=b', b: 'm' }, { k: 's3db.json', b: 'm' }]));
    expect(lacking.toString()).toBe("'u': its index names 2 objects stored by m, and its parts hold 1 of them");
    const deleted = await exactProblems(m, 'u', headers([['resource=u/data/id=a', true]]), entries([{ k: 'resource=u/data/id=a', b: 'm' }]));
    expect(deleted.toString()).toContain('its index names it for "resource=u/data/id=a", and its parts hold its deletion');
  });
});
