// An incremental is planned against its parent's object index (src/engine/parent-index.ts). A copy
// of that index damaged in place (same size: only reading it to its end finds it) used to fail the
// incremental at the end of its reading, and every incremental after it, until someone verified
// the parent. Now: with another destination holding the index, the incremental is planned again
// from there and commits; with none, the parent is recorded as failing verification (the next
// backup is a full one) and recoverBackups() rebuilds its index. On the real s3db.js (memory://)
// and real filesystem destinations, the damage made by editing the stored bytes.
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { BackupPlugin, type BackupPluginOptions } from '../src/index.js';
import { createEncoder, createKeyFile } from '../src/codec/index.js';
import { DestinationSet } from '../src/destinations/set.js';
import { FilesystemDestination } from '../src/destinations/filesystem.js';
import type { Manifest } from '../src/engine/manifest.js';
import { parentIndexEntries } from '../src/engine/parent-index.js';
import { editIndex, indexPathOf, onReads, rotIndex, rotStoredIndex, usersDatabase, type StoredManifest } from './helpers/edited-backups.js';
import { filesUnder } from './helpers/files.js';
import { warnInto } from './helpers/logger.js';
import { openDb, snapshot, type ObjectSnapshot } from './helpers/database.js';
import { literal } from './helpers/text.js';

let work: string;
let seq = 0;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'parent-index-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

type Failure = Error & { code?: string };
const failureOf = (p: Promise<unknown>): Promise<Failure | null> => p.then(() => null, (e: unknown) => e as Failure);

/**
 * An incremental, uncompressed plugin on `db` (`options` change that) writing to the filesystem
 * destinations `dirs` (one: a directory; more: 'multi', strategy 'all'), its warnings kept in `warnings`.
 */
async function incrementalPlugin(db: Awaited<ReturnType<typeof openDb>>, label: string, dirs: string[], options: Record<string, unknown> = {}, warnings: string[] = []): Promise<BackupPlugin> {
  const to = dirs.length === 1 ? { config: { directory: dirs[0] } } : { driver: 'multi', destinations: dirs.map((directory) => ({ driver: 'filesystem', config: { directory } })) };
  const plugin = new BackupPlugin({ schedule: false, type: 'incremental', compression: 'none', logger: warnInto(warnings), ...to, ...options } as unknown as BackupPluginOptions);
  await db.usePlugin(plugin, label);
  return plugin;
}

/**
 * An incremental plugin over two filesystem destinations (`incrementalPlugin`), a full backup of
 * `count` users taken, its index rotted in place at the first (`rotIndex`).
 */
async function fullRottedAtFirst(label: string, count: number, options: Record<string, unknown> = {}) {
  const { db, users } = await usersDatabase(label, count);
  const [a, b] = [path.join(work, `${label}-a`), path.join(work, `${label}-b`)];
  const warnings: string[] = [];
  const plugin = await incrementalPlugin(db, label, [a, b], options, warnings);
  const full = await plugin.createBackup();
  await rotIndex(a, full.id);
  return { db, users, a, b, warnings, plugin, full };
}

/** Backup `id` restored into a new empty database. */
async function restored(plugin: BackupPlugin, id: string): Promise<ObjectSnapshot[]> {
  const target = await openDb(`memory://pi-target-${process.pid}-${++seq}/db`);
  await plugin.restore({ backupId: id, destination: target });
  return snapshot(target);
}

describe("an incremental whose parent's index is damaged where it reads it", () => {
  for (const [what, options] of [
    ['gzip', { compression: 'gzip' }],
    ['encrypted', { compression: 'gzip', encryption: { passphrase: 'parent-index-passphrase-never-logged', iterations: 100_000 } }],
  ] as const) {
    it(`one destination (${what}): it fails naming the damage, the parent is recorded as failing, the next backup is a full one, and recoverBackups() rebuilds the index so the parent restores exactly`, async () => {
      const { db, users } = await usersDatabase(`pi-one-${what}`, 12);
      const dir = path.join(work, `one-${what}`);
      const warnings: string[] = [];
      const plugin = await incrementalPlugin(db, `one-${what}`, [dir], options, warnings);
      const full = await plugin.createBackup();
      const atFull = await snapshot(db);
      await rotStoredIndex(dir, full.id);
      const before = await filesUnder(dir);
      await users.update('u01', { name: 'changed' });

      const failed = await failureOf(plugin.createBackup());
      expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', message: expect.stringContaining(`the object index of ${full.id}, which this incremental is planned against, is damaged wherever it is stored`) });
      expect(failed!.message).toContain(`${full.id} is now recorded as failing verification, so the next backup will be a full one; recoverBackups()`);
      expect(failed!.message).not.toContain('passphrase-never-logged');
      // the attempt left nothing behind but the parent's verification record
      expect((await filesUnder(dir)).filter((f) => !before.includes(f))).toEqual([`verifications/${full.id}.json`]);
      expect((await plugin.listBackups()).find((b) => b.id === full.id)).toMatchObject({ verified: false });

      // the next backup does not build on it
      const next = await plugin.createBackup();
      expect(next.type).toBe('full');
      // recoverBackups() reads the index whole (its verification failed) and rebuilds it from the parts
      const report = await plugin.recoverBackups();
      expect(report.indexes).toEqual([expect.objectContaining({ id: full.id, action: 'rebuilt', verified: true })]);
      expect(await plugin.verifyBackup(full.id)).toMatchObject({ verified: true });
      expect(await restored(plugin, full.id)).toEqual(atFull);
      await plugin.stop();
    });
  }

  it('two destinations, the first copy damaged midway (a key out of order, found before its end): the incremental is planned again from the second, commits, verifies and restores exactly; the first copy is read by planning and once whole, the parent not recorded as failing', async () => {
    // (800 records: an index of several read chunks, so the key out of order shows before its checksum)
    const { db, users, a, warnings, plugin, full } = await fullRottedAtFirst('pi-two', 800); // (rotIndex: u30 read as u40, out of order)
    const indexPath = await indexPathOf(a, full.id);
    let readsAtFirst = 0;
    onReads(plugin, (at, read) => {
      if (at === indexPath) readsAtFirst++;
      return read();
    });
    await users.update('u01', { name: 'changed' });
    await users.delete('u02');

    const inc = await plugin.createBackup();
    expect({ type: inc.type, parentId: inc.parentId, verified: inc.verified }).toEqual({ type: 'incremental', parentId: full.id, verified: true });
    // planning read the first copy and stopped, then read it whole (its SHA-256 fails: damage, not
    // an index written out of order); the second attempt and the verification's join read the second
    expect(readsAtFirst).toBe(2);
    const [first] = plugin.destinations.members;
    expect(warnings).toContainEqual(expect.stringMatching(new RegExp(`could not be read at ${literal(first!.label)} \\(.*listed "resource=users/data/id=u300" after "resource=users/data/id=u40".*\\): planning it again`)));
    expect((await plugin.listBackups()).find((x) => x.id === full.id)?.verified).not.toBe(false);
    expect(await restored(plugin, inc.id)).toEqual(await snapshot(db));
    await plugin.stop();
  });

  it('an attempt that could not delete what it wrote is not followed by another with the same id (one writing fewer parts would leave the rest unlisted): it fails, and the next backup cleans up and commits, leaving nothing behind', async () => {
    // (the failed attempt's leftovers are cleaned by the next backup once stale: at once here)
    const { users, b, warnings, plugin, full } = await fullRottedAtFirst('pi-leftovers', 6, { staleAfterMs: 1 });
    await users.update('u1', { name: 'changed' });
    // the failed attempt's deletion fails at the second destination, once: a fault a real
    // destination cannot produce on demand, injected at its delete
    const second = plugin.destinations.members[1] as unknown as { delete(paths: string[]): Promise<void> };
    const remove = second.delete.bind(second);
    let refuse = true;
    second.delete = (paths) => (refuse ? ((refuse = false), Promise.reject(new Error('EIO: i/o error, unlink'))) : remove(paths));
    const failed = await failureOf(plugin.createBackup());
    expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', message: expect.stringContaining('could not be read at') });
    expect(warnings.filter((w) => w.includes('planning it again'))).toEqual([]);
    const inc = await plugin.createBackup();
    expect({ type: inc.type, parentId: inc.parentId }).toEqual({ type: 'incremental', parentId: full.id });
    // only the two backups' files (and no part, marker or copy of the failed attempt) remain
    const manifests = await Promise.all([full.id, inc.id].map((id) => readFile(path.join(b, 'manifests', `${id}.json`), 'utf8').then((t) => JSON.parse(t) as StoredManifest & { copy: string })));
    const expected = manifests.flatMap((m) => [...m.parts.map((p) => p.path), m.index.path, m.copy, `manifests/${m.id as string}.json`]);
    expect((await filesUnder(b)).filter((f) => !f.startsWith('locks/'))).toEqual(expected.sort());
    await plugin.stop();
  });

  it('stop() while the first attempt reads a damaged copy: no second attempt begins (stop() waits for this backup); the backup fails naming the copy', async () => {
    const { users, a, warnings, plugin, full } = await fullRottedAtFirst('pi-stop', 6);
    const indexPath = await indexPathOf(a, full.id);
    let stopping: Promise<void> | null = null;
    onReads(plugin, (at, read) => {
      if (at === indexPath) stopping ??= plugin.stop();
      return read();
    });
    await users.update('u1', { name: 'changed' });
    const failed = await failureOf(plugin.createBackup());
    expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', message: expect.stringContaining(`could not be read at ${plugin.destinations.members[0]!.label}`) });
    expect(warnings.filter((w) => w.includes('planning it again'))).toEqual([]);
    await stopping;
  });

  it('a read of the only copy that fails (a disk error, not damage) fails the backup without recording the parent as failing: the next incremental builds on it', async () => {
    const { db, users } = await usersDatabase('pi-eio', 4);
    const dir = path.join(work, 'eio');
    const plugin = await incrementalPlugin(db, 'pi-eio', [dir]);
    const full = await plugin.createBackup();
    const indexPath = await indexPathOf(dir, full.id);
    // the index opens, then its stream fails as a disk that went away would: a fault a real
    // destination cannot produce on demand, injected at its read
    let failing = true;
    onReads(plugin, (at, read) =>
      at === indexPath && failing
        ? Promise.resolve(new Readable({ read() { this.destroy(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })); } }))
        : read(),
    );
    await users.update('u1', { name: 'changed' });
    const failed = await failureOf(plugin.createBackup());
    expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', message: expect.stringContaining(`the object index of ${full.id}, which this incremental is planned against, could be read whole at no destination (`) });
    expect(failed!.message).toContain('EIO');
    expect(failed!.message).toContain('Nothing was recorded, since a copy that could not be read may be whole: the next incremental tries again');
    expect((await plugin.listBackups()).find((x) => x.id === full.id)?.verified).not.toBe(false);
    failing = false;
    const inc = await plugin.createBackup();
    expect({ type: inc.type, parentId: inc.parentId }).toEqual({ type: 'incremental', parentId: full.id });
    await plugin.stop();
  });

  it("an encrypted parent's index out of key order (a writer's defect: its segments authenticate) is reported without the keys it holds, which a recorded verdict would store in plaintext", async () => {
    const destination = new FilesystemDestination({ directory: path.join(work, 'encrypted-order') });
    const { key } = await createKeyFile('parent-index-passphrase-never-logged', { iterations: 100_000 });
    const lines = ['b', 'a'].map((id) => `${JSON.stringify({ k: `resource=users/data/id=secret-${id}@example.com`, e: 'x', s: 1, m: '', b: 'full-x' })}\n`);
    const stored = await buffer(Readable.from([Buffer.from(lines.join(''))]).pipe(createEncoder({ compression: 'none', key })));
    await destination.write('indexes/full-x.index', stored);
    const index = { path: 'indexes/full-x.index', size: stored.length, sha256: createHash('sha256').update(stored).digest('hex'), entries: 2 };
    const parent = { id: 'full-x', index, codec: { compression: 'none', encrypted: true }, encryption: {}, destinations: [{ label: destination.label, status: 'ok' }] } as unknown as Manifest;
    const read = async () => {
      for await (const _entry of parentIndexEntries(new DestinationSet([destination]), parent, key, { preferred: undefined, passOver: [], opened: () => undefined }));
    };
    const failed = await failureOf(read());
    // (its bytes are the ones written: the order is the writer's)
    expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', details: { parentIndex: { label: destination.label, kind: 'as-written', error: 'its entries are not in key order' } } });
    expect(failed!.message).not.toContain('secret');
  });

  it('a copy that could not be read (a symlink loop where the index was: an I/O error) beside a damaged one: the backup fails, and nothing is recorded; once it reads, the next incremental builds on it', async () => {
    const { db, users } = await usersDatabase('pi-unread', 6);
    const [a, b] = [path.join(work, 'unread-a'), path.join(work, 'unread-b')];
    const plugin = await incrementalPlugin(db, 'pi-unread', [a, b]);
    const full = await plugin.createBackup();
    const file = path.join(a, await indexPathOf(a, full.id));
    const whole = await readFile(file);
    await rm(file);
    await symlink(file, file);
    await rotIndex(b, full.id);
    await users.update('u1', { name: 'changed' });
    const failed = await failureOf(plugin.createBackup());
    expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', message: expect.stringContaining('could be read whole at no destination') });
    expect(failed!.message).toContain('ELOOP');
    expect(failed!.message).toContain('fails its SHA-256 check');
    expect((await plugin.listBackups()).find((x) => x.id === full.id)?.verified).not.toBe(false);
    await rm(file);
    await writeFile(file, whole);
    const inc = await plugin.createBackup();
    expect({ type: inc.type, parentId: inc.parentId }).toEqual({ type: 'incremental', parentId: full.id });
    await plugin.stop();
  });

  it('three destinations, the first two damaged: the second is found damaged by reading it whole, before the backup is planned again on it, so the backup runs twice, not three times', async () => {
    const { db, users } = await usersDatabase('pi-three', 6);
    const dirs = ['a', 'b', 'c'].map((x) => path.join(work, `three-${x}`));
    const warnings: string[] = [];
    const plugin = await incrementalPlugin(db, 'pi-three', dirs, {}, warnings);
    const full = await plugin.createBackup();
    for (const dir of dirs.slice(0, 2)) await rotIndex(dir, full.id);
    await users.update('u1', { name: 'changed' });
    const inc = await plugin.createBackup();
    expect({ type: inc.type, parentId: inc.parentId, verified: inc.verified }).toEqual({ type: 'incremental', parentId: full.id, verified: true });
    const [, , third] = plugin.destinations.members;
    expect(warnings.filter((w) => w.includes('planning it again'))).toEqual([expect.stringContaining(`planning it again from the start, reading the index at ${third!.label}, where it is whole`)]);
    await plugin.stop();
  });

  it("an index whose bytes are as written (its SHA-256 passes) but out of key order: not read again elsewhere (every copy holds it), recorded as a full verification records it, and the next backup is a full", async () => {
    const { db, users } = await usersDatabase('pi-written', 6);
    const dir = path.join(work, 'written');
    const plugin = await incrementalPlugin(db, 'pi-written', [dir]);
    const full = await plugin.createBackup();
    await editIndex(dir, full.id, (lines) => [...lines].reverse()); // the manifest's size and SHA-256 to match
    await users.update('u1', { name: 'changed' });
    const failed = await failureOf(plugin.createBackup());
    expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', message: expect.stringContaining(`${full.id} cannot be built on: the index of backup ${full.id} is not one a restore can follow, as written`) });
    expect(failed!.message).toContain('nothing mends it: restore another backup');
    expect(failed!.message).toContain('so the next backup will be a full one');
    expect((await plugin.getBackup(full.id))?.verification).toMatchObject({ verified: false, level: 'full' });
    expect((await plugin.createBackup()).type).toBe('full');
    await plugin.stop();
  });

  it('a line whose key field a flipped bit renamed (JSON that parses) is damage, not a TypeError: recorded, the next backup a full', async () => {
    const { db, users } = await usersDatabase('pi-flip', 800); // (an index of several read chunks: its first line is parsed before its checksum fails)
    const dir = path.join(work, 'flip');
    const plugin = await incrementalPlugin(db, 'pi-flip', [dir]);
    const full = await plugin.createBackup();
    const file = path.join(dir, await indexPathOf(dir, full.id));
    const bytes = await readFile(file);
    bytes[bytes.indexOf('{"k"') + 2] ^= 0x01; // "k" -> "j", on the first line
    await writeFile(file, bytes);
    await users.update('u01', { name: 'changed' });
    const failed = await failureOf(plugin.createBackup());
    expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', message: expect.stringContaining('is damaged wherever it is stored') });
    expect(failed!.message).toContain('holds a line that is not an index entry');
    expect((await plugin.createBackup()).type).toBe('full');
    await plugin.stop();
  });

  it('a verdict that no destination takes is not said to be recorded: the error says the next incremental meets it again', async () => {
    const { db, users } = await usersDatabase('pi-unwritten', 6);
    const dir = path.join(work, 'unwritten');
    const plugin = await incrementalPlugin(db, 'pi-unwritten', [dir], { compression: 'gzip' });
    const full = await plugin.createBackup();
    await rotStoredIndex(dir, full.id);
    await rm(path.join(dir, 'verifications'), { recursive: true, force: true });
    await writeFile(path.join(dir, 'verifications'), 'not a directory'); // every record write fails (a real fault)
    await users.update('u1', { name: 'changed' });
    const failed = await failureOf(plugin.createBackup());
    expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', message: expect.stringContaining(`This could not be recorded at any destination (logged), so the next incremental will meet it again: verifyBackup('${full.id}')`) });
    await plugin.stop();
  });

  it('an index whose bytes are as written (its SHA-256 passes) with a line that parses but is not an entry (no holder): as written, not damage; recorded as a full verification records it, and no incremental is built on it', async () => {
    const { db, users } = await usersDatabase('pi-written-entry', 6);
    const dir = path.join(work, 'written-entry');
    const plugin = await incrementalPlugin(db, 'pi-written-entry', [dir]);
    const full = await plugin.createBackup();
    // the manifest's size and SHA-256 to match: a writer's defect, not damage
    await editIndex(dir, full.id, (lines) => lines.map((l, i) => (i === 1 ? l.replace('"b":', '"x":') : l)));
    await users.update('u1', { name: 'changed' });
    const failed = await failureOf(plugin.createBackup());
    expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', message: expect.stringContaining(`${full.id} cannot be built on: the index of backup ${full.id} is not one a restore can follow, as written`) });
    expect(failed!.message).toContain('holds a line that is not an index entry');
    expect((await plugin.getBackup(full.id))?.verification).toMatchObject({ verified: false, level: 'full' });
    expect((await plugin.createBackup()).type).toBe('full');
    await plugin.stop();
  });

  it("an index line that is JSON but not an object ('null', its SHA-256 matched) is ERR_INDEX_CORRUPT, not a TypeError: as written, recorded, the next backup a full", async () => {
    const { db, users } = await usersDatabase('pi-written-null', 6);
    const dir = path.join(work, 'written-null');
    const plugin = await incrementalPlugin(db, 'pi-written-null', [dir]);
    const full = await plugin.createBackup();
    await editIndex(dir, full.id, (lines) => lines.map((l, i) => (i === 1 ? 'null' : l)));
    await users.update('u1', { name: 'changed' });
    const failed = await failureOf(plugin.createBackup());
    expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', message: expect.stringContaining(`${full.id} cannot be built on`) });
    expect(failed!.message).toContain('holds a line that is not an index entry');
    expect((await plugin.createBackup()).type).toBe('full');
    await plugin.stop();
  });

  it('a verdict that a verification begun since supersedes is not said to be recorded: the error says that one decides', async () => {
    const { db, users } = await usersDatabase('pi-superseded', 6);
    const dir = path.join(work, 'superseded');
    const plugin = await incrementalPlugin(db, 'pi-superseded', [dir], { compression: 'gzip' });
    const full = await plugin.createBackup();
    await rotStoredIndex(dir, full.id);
    // a verification of the parent that began after this backup will have (as one running beside it would)
    await mkdir(path.join(dir, 'verifications'), { recursive: true });
    const later = new Date(Date.now() + 3_600_000).toISOString();
    await writeFile(path.join(dir, 'verifications', `${full.id}.json`), JSON.stringify({ verified: true, level: 'quick', at: later, startedAt: later, destinations: [] }));
    await users.update('u1', { name: 'changed' });
    const failed = await failureOf(plugin.createBackup());
    expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', message: expect.stringContaining(`A verification of ${full.id} begun since is recorded instead, and decides what the next backup builds on`) });
    expect(failed!.message).not.toContain('is now recorded as failing verification');
    await plugin.stop();
  });

  it("an abort while the other copies are checked starts no attempt: the backup is not planned again", async () => {
    const { users, b, warnings, plugin, full } = await fullRottedAtFirst('pi-abort', 6);
    const indexPath = await indexPathOf(b, full.id);
    const controller = new AbortController();
    let readsAtSecond = 0;
    // the second destination's copy: its first read is the whole-copy check, during which the caller aborts
    const second = plugin.destinations.members[1] as unknown as { read(at: string, range?: unknown): Promise<unknown> };
    const read = second.read.bind(second);
    second.read = (at, range) => {
      if (at === indexPath && ++readsAtSecond === 1) controller.abort(new Error('stopped by the caller'));
      return read(at, range);
    };
    await users.update('u1', { name: 'changed' });
    const failed = await failureOf(plugin.createBackup({ signal: controller.signal }));
    expect(failed).not.toBeNull();
    expect(warnings.filter((w) => w.includes('planning it again'))).toEqual([]);
    expect(readsAtSecond).toBe(1);
    await plugin.stop();
  });

  it('a copy that could not be read: the error carries every copy in details.parentIndexFailures (a list), told unread', async () => {
    const { db, users } = await usersDatabase('pi-eio-details', 4);
    const dir = path.join(work, 'eio-details');
    const plugin = await incrementalPlugin(db, 'pi-eio-details', [dir]);
    const full = await plugin.createBackup();
    const indexPath = await indexPathOf(dir, full.id);
    onReads(plugin, (at, read) =>
      at === indexPath ? Promise.resolve(new Readable({ read() { this.destroy(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })); } })) : read(),
    );
    await users.update('u1', { name: 'changed' });
    const failed = await failureOf(plugin.createBackup());
    expect(failed).toMatchObject({ code: 'ERR_PARENT_INDEX', details: { parentIndexFailures: [expect.objectContaining({ label: plugin.destinations.members[0]!.label, kind: 'unread' })] } });
    await plugin.stop();
  });
});
