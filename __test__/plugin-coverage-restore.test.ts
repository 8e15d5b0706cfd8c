// BackupPlugin behaviours around deleting, verifying and restoring that nothing else pinned, on
// the real s3db.js and real filesystem destinations: deleteBackup (alone, and with force over a
// chain of incrementals) removes the backup from the catalog AND its files; the events
// plg:backup:deleted / pruned / verified carry their documented payloads and never the passphrase;
// restore to a bare name lands in the database of that bucket name on the same storage (memory://
// and file://); a backup whose verification fails at creation commits nothing and reaches the
// onFailure webhook, the onBackupError hook and plg:backup:error with ERR_VERIFY_FAILED.
import type { EventEmitter } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin, FilesystemDestination, type BackupPluginOptions } from '../src/index.js';
import { hookStore, openDb, seededCopies, snapshot } from './helpers/database.js';
import { filesUnder } from './helpers/files.js';

const SMALL = { users: 5, orders: 5, perBehavior: 1 };
const SECRET = 'coverage-Passphrase-never-in-events-31';
let work: string;
let seq = 0;
const name = (what: string) => `cov-${what}-${process.pid}-${++seq}`;
const bucket = (what: string) => `memory://${name(what)}/db`;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'plugin-coverage-restore-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const copySeeded = seededCopies(SMALL, () => bucket('template'));
const seeded = (what: string) => copySeeded(bucket(what));

function plugin(directory: string, extra: BackupPluginOptions = {}): BackupPlugin {
  return new BackupPlugin({ schedule: false, config: { directory }, lease: { ttlMs: 5_000 }, encryption: { passphrase: SECRET, iterations: 100_000 }, ...extra });
}

/** The plugin's (only) destination, for a test that injects a fault into its deletes. */
function firstMember(p: BackupPlugin): { delete(paths: string[]): Promise<void> } {
  return (p as unknown as { destinations: { members: Array<{ delete(paths: string[]): Promise<void> }> } }).destinations.members[0]!;
}

/** Records every plg:backup:* event the plugin emits, with its payload. */
function recordEvents(p: BackupPlugin): [string, unknown][] {
  const seen: [string, unknown][] = [];
  // through the untyped emitter: every event is recorded, one missing from BackupPluginEvents too
  const emitter = p as unknown as EventEmitter;
  const emit = emitter.emit.bind(emitter);
  emitter.emit = (event: string | symbol, ...args: unknown[]) => {
    if (typeof event === 'string' && event.startsWith('plg:backup:')) seen.push([event, args[0]]);
    return emit(event, ...args);
  };
  return seen;
}

function noSecret(events: [string, unknown][]): void {
  expect(events.length).toBeGreaterThan(0);
  for (const [event, payload] of events) expect(inspect(payload, { depth: 10 }) + JSON.stringify(payload), event).not.toContain(SECRET);
}

type Users = { get(id: string): Promise<Record<string, unknown>>; count(): Promise<number>; update(id: string, v: Record<string, unknown>): Promise<unknown> };

describe('deleteBackup, prune, verifyBackup and their events', () => {
  it('deleteBackup(id): gone from listBackups and from the disk; plg:backup:deleted names it', async () => {
    const dir = path.join(work, 'delete-one');
    const db = await seeded('delete-one');
    const p = plugin(dir);
    const events = recordEvents(p);
    await db.usePlugin(p);
    const keep = await p.createBackup();
    const gone = await p.createBackup();
    const goneFiles = (await filesUnder(dir)).filter((f) => f.includes(gone.id));
    expect(goneFiles.length).toBeGreaterThan(3); // manifest, index, parts
    expect(await p.deleteBackup(gone.id)).toEqual({ deleted: [gone.id] });
    expect((await p.listBackups()).map((b) => b.id)).toEqual([keep.id]);
    expect(await p.getBackup(gone.id)).toBeNull();
    const after = await filesUnder(dir);
    expect(after.filter((f) => f.includes(gone.id))).toEqual([]);
    for (const part of (await p.getBackup(keep.id))!.manifest.parts) expect(after).toContain(part.path);
    expect(events.filter(([e]) => e === 'plg:backup:deleted')).toEqual([['plg:backup:deleted', { ids: [gone.id] }]]);
    await expect(p.deleteBackup(gone.id)).rejects.toMatchObject({ code: 'ERR_BACKUP_NOT_FOUND' });
    noSecret(events);
    await p.stop();
  });

  it('deleteBackup(full) refuses while incrementals need it; { force: true } deletes the whole chain, children first', async () => {
    const dir = path.join(work, 'delete-chain');
    const db = await seeded('delete-chain');
    const p = plugin(dir);
    const events = recordEvents(p);
    await db.usePlugin(p);
    const users = db.resources.users as unknown as Users;
    const full = await p.createBackup({ type: 'full' });
    await users.update('u00001', { name: 'changed once' });
    const inc1 = await p.createBackup({ type: 'incremental' });
    await users.update('u00002', { name: 'changed twice' });
    const inc2 = await p.createBackup({ type: 'incremental' });
    expect([inc1.type, inc1.parentId, inc2.type, inc2.parentId]).toEqual(['incremental', full.id, 'incremental', inc1.id]);
    const other = await p.createBackup({ type: 'full' });
    const filesBefore = await filesUnder(dir);

    const refused = await p.deleteBackup(full.id).then(() => null, (e: unknown) => e as Error & { code: string });
    expect(refused?.code).toBe('ERR_BACKUP_HAS_DEPENDENTS');
    expect(refused?.message).toContain(inc1.id);
    expect(refused?.message).toContain(inc2.id);
    expect(await filesUnder(dir)).toEqual(filesBefore); // refused: nothing touched

    const { deleted } = await p.deleteBackup(full.id, { force: true });
    expect([...deleted].sort()).toEqual([full.id, inc1.id, inc2.id].sort());
    expect(deleted[deleted.length - 1]).toBe(full.id);
    expect(deleted.indexOf(inc2.id)).toBeLessThan(deleted.indexOf(inc1.id));
    expect((await p.listBackups()).map((b) => b.id)).toEqual([other.id]);
    const after = await filesUnder(dir);
    for (const id of [full.id, inc1.id, inc2.id]) expect(after.filter((f) => f.includes(id)), id).toEqual([]);
    expect(events.filter(([e]) => e === 'plg:backup:deleted')).toEqual([['plg:backup:deleted', { ids: deleted }]]);
    // the remaining full still restores the current state
    const target = await openDb(bucket('delete-chain-dst'));
    await p.restore({ backupId: other.id, destination: target });
    expect(await snapshot(target)).toEqual(await snapshot(db));
    noSecret(events);
    await p.stop();
  });

  it('prune() with a retention policy deletes what it plans and emits plg:backup:pruned { deleted, kept }; dryRun emits nothing', async () => {
    const dir = path.join(work, 'prune');
    const db = await seeded('prune');
    const maker = plugin(dir);
    await db.usePlugin(maker);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await maker.createBackup()).id);
    await maker.stop();
    const p = plugin(dir, { retention: { policy: 'simple', count: 1 } });
    const events = recordEvents(p);
    await db.usePlugin(p, 'pruner');
    const dry = await p.prune({ dryRun: true });
    expect(dry.deleted).toEqual([]);
    expect(dry.remove.map((r) => r.id).sort()).toEqual([ids[0], ids[1]].sort());
    expect(events.filter(([e]) => e === 'plg:backup:pruned')).toEqual([]);
    expect((await p.listBackups()).length).toBe(3);

    const result = await p.prune();
    expect([...result.deleted].sort()).toEqual([ids[0], ids[1]].sort());
    expect((await p.listBackups()).map((b) => b.id)).toEqual([ids[2]]);
    const after = await filesUnder(dir);
    for (const id of [ids[0]!, ids[1]!]) expect(after.filter((f) => f.includes(id))).toEqual([]);
    const pruned = events.filter(([e]) => e === 'plg:backup:pruned');
    expect(pruned).toEqual([['plg:backup:pruned', { deleted: result.deleted, kept: [ids[2]] }]]);
    expect((await p.prune()).deleted).toEqual([]); // nothing left to remove: no second event
    expect(events.filter(([e]) => e === 'plg:backup:pruned')).toHaveLength(1);
    noSecret(events);
    await p.stop();
  });

  it('verifyBackup emits plg:backup:verified { id, verified, level, at, error, destinations }, good and damaged', async () => {
    const dir = path.join(work, 'verified');
    const db = await seeded('verified');
    const p = plugin(dir);
    const events = recordEvents(p);
    await db.usePlugin(p);
    const b = await p.createBackup();
    const label = `filesystem:${dir}`;
    for (const level of ['quick', 'full'] as const) {
      const r = await p.verifyBackup(b.id, { level });
      expect(r).toMatchObject({ verified: true, level, error: null, destinations: [{ label, verified: true, error: null }] });
      const last = events.filter(([e]) => e === 'plg:backup:verified').at(-1)!;
      expect(last[1]).toEqual({ id: b.id, ...r });
      expect(Number.isNaN(Date.parse(r.at))).toBe(false);
    }
    const part = (await p.getBackup(b.id))!.manifest.parts[1]!;
    const file = path.join(dir, part.path);
    const bytes = await readFile(file);
    bytes[bytes.length >> 1]! ^= 0x01; // real damage on disk
    await writeFile(file, bytes);
    const bad = await p.verifyBackup(b.id);
    expect(bad).toMatchObject({ verified: false, level: 'full', destinations: [{ label, verified: false }] });
    expect(bad.error).toContain(part.path);
    const last = events.filter(([e]) => e === 'plg:backup:verified').at(-1)!;
    expect(last[1]).toMatchObject({ id: b.id, verified: false, error: bad.error });
    expect(events.filter(([e]) => e === 'plg:backup:verified')).toHaveLength(3);
    expect((await p.listBackups())[0]!.verified).toBe(false);
    noSecret(events);
    await p.stop();
  });
});

describe('a backup being read is not deleted', () => {
  it('while a restore reads a chain, deleteBackup refuses it and retention keeps it; once the restore ends they may remove it', async () => {
    const dir = path.join(work, 'in-use');
    const db = await seeded('in-use');
    const p = plugin(dir, { type: 'incremental', retention: { policy: 'simple', count: 1 } });
    await db.usePlugin(p);
    const full = await p.createBackup();
    await (db.resources.orders as unknown as { insert(v: object): Promise<unknown> }).insert({ id: 'o-late', userId: 'u1', total: 2, status: 'new' });
    const inc = await p.createBackup();
    const want = await snapshot(db);
    // Fault injection: a slow target (a remote store), held at its first write until the deletes
    // below have run; the real timing cannot be had on demand.
    const target = await openDb(bucket('in-use-target'));
    let during: Promise<unknown> | null = null;
    const unhook = hookStore(target, {
      put: async (_key, write) => {
        during ??= (async () => {
          const refused = await p.deleteBackup(full.id, { force: true }).then(() => null, (e: unknown) => e);
          // a new full: the chain falls out of `count: 1`, but the restore is reading it
          const next = await p.createBackup({ type: 'full' });
          return { refused, next, listed: (await p.listBackups()).map((b) => b.id) };
        })();
        await during;
        return write();
      },
    });
    await p.restore({ backupId: inc.id, destination: target });
    const { refused, next, listed } = (await during) as unknown as { refused: unknown; next: { id: string }; listed: string[] };
    expect(refused).toMatchObject({ code: 'ERR_BACKUP_IN_USE', message: expect.stringContaining(full.id) });
    expect(listed.sort()).toEqual([full.id, inc.id, next.id].sort());
    unhook();
    expect(await snapshot(target)).toEqual(want);
    // the restore is over: the next prune removes the chain, and deleteBackup would have worked
    expect((await p.prune()).deleted.sort()).toEqual([full.id, inc.id].sort());
    await p.stop();
  });
});

describe('a backup being deleted is not read', () => {
  it('a restore or verification that starts while retention removes the backup is refused before it writes anything (deleteBackup claims the same way)', async () => {
    const dir = path.join(work, 'removing');
    const db = await seeded('removing');
    const p = plugin(dir, { retention: { policy: 'simple', count: 1 } });
    await db.usePlugin(p);
    const old = await p.createBackup();
    // Fault injection: a slow destination, held at its first delete until the reads below have
    // been tried (the real timing cannot be had on demand).
    const member = firstMember(p);
    const remove = member.delete.bind(member);
    let gate!: () => void;
    const held = new Promise<void>((r) => (gate = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    member.delete = async (paths: string[]) => {
      if (paths.some((f) => f.includes(old.id))) {
        entered();
        await held;
      }
      return remove(paths);
    };
    const newer = p.createBackup(); // its retention starts removing `old`, and waits at the delete
    await inside;
    const target = await openDb(bucket('removing-target'));
    await expect(p.restore({ backupId: old.id, destination: target })).rejects.toMatchObject({ code: 'ERR_BACKUP_NOT_FOUND', message: expect.stringContaining('being deleted') });
    await expect(p.verifyBackup(old.id)).rejects.toMatchObject({ code: 'ERR_BACKUP_NOT_FOUND' });
    expect((await snapshot(target)).filter((o) => o.key.startsWith('resource='))).toEqual([]);
    gate();
    await newer;
    member.delete = remove;
    expect((await p.listBackups()).map((b) => b.id)).toEqual([(await newer).id]);
    await p.stop();
  });
});

describe('deletion leaves the chain of a backup being read', () => {
  type Catalog = { require(id: string): Promise<unknown>; remove(m: { id: string }): Promise<void> };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it("retention that meets a restore of an incremental keeps the incremental's full, even when the restore had not yet read the manifest", async () => {
    const dir = path.join(work, 'prune-chain');
    const db = await seeded('prune-chain');
    const setup = plugin(dir);
    await db.usePlugin(setup, 'setup');
    const full1 = await setup.createBackup({ type: 'full' });
    await (db.resources.orders as unknown as { insert(v: object): Promise<unknown> }).insert({ id: 'o-chain', userId: 'u1', total: 1, status: 'new' });
    const inc = await setup.createBackup({ type: 'incremental' });
    const full2 = await setup.createBackup({ type: 'full' });
    await (db.resources.orders as unknown as { insert(v: object): Promise<unknown> }).insert({ id: 'o-chain-2', userId: 'u1', total: 2, status: 'new' });
    const inc2 = await setup.createBackup({ type: 'incremental' });
    await setup.createBackup({ type: 'full' });
    await setup.stop();
    const p = plugin(dir, { retention: { policy: 'simple', count: 1 } });
    await db.usePlugin(p, 'pruner');
    // Fault injection: a slow manifest read and a slow removal (a remote store), so that the
    // restore of `inc` starts while retention removes inc2 (children go first) and has pinned
    // only inc's id.
    const catalog = (p as unknown as { catalog: Catalog }).catalog;
    const [require, remove] = [catalog.require.bind(catalog), catalog.remove.bind(catalog)];
    let restoring: Promise<unknown> | null = null;
    catalog.require = async (id: string) => (await sleep(200), require(id));
    catalog.remove = async (m: { id: string }) => {
      if (m.id === inc2.id) restoring ??= p.restore({ backupId: inc.id, destination: await openDb(bucket('prune-chain-target')) });
      await sleep(150);
      return remove(m);
    };
    const pruned = await p.prune();
    await expect(restoring).resolves.toMatchObject({ objectsWritten: expect.any(Number) });
    catalog.require = require;
    catalog.remove = remove;
    expect(pruned.deleted).toEqual([inc2.id, full2.id]);
    expect((await p.listBackups()).map((b) => b.id)).toEqual(expect.arrayContaining([inc.id, full1.id]));
    await p.stop();
  });

  it('the leftovers of a deletion that died midway are not cleaned up under a restore of that backup', async () => {
    const dir = path.join(work, 'leftover-pinned');
    const db = await seeded('leftover-pinned');
    const p = plugin(dir);
    await db.usePlugin(p);
    const b = await p.createBackup({ type: 'full' });
    const want = await snapshot(db);
    // Fault injection: the deletion fails once at the manifest (a transient 503), leaving its marker
    const member = firstMember(p);
    const del = member.delete.bind(member);
    let failOnce = true;
    member.delete = async (paths: string[]) => {
      if (failOnce && paths.some((f) => f.startsWith('manifests/'))) {
        failOnce = false;
        throw new Error('transient 503');
      }
      return del(paths);
    };
    await expect(p.deleteBackup(b.id)).rejects.toThrow();
    member.delete = del;
    // a slow target keeps the restore running while the next backup cleans up leftovers
    const target = await openDb(bucket('leftover-pinned-target'));
    const unhook = hookStore(target, { put: async (_key, write) => (await sleep(20), write()) });
    const restoring = p.restore({ backupId: b.id, destination: target, verify: false });
    await sleep(100);
    await p.createBackup({ type: 'full' });
    await restoring;
    unhook();
    expect(await snapshot(target)).toEqual(want);
    await p.stop();
  });
});

describe('restore to a bare name', () => {
  it("memory://: 'name' is memory://name/<same prefix>; that database then holds the source's records", async () => {
    const dir = path.join(work, 'bare-memory');
    const db = await seeded('bare-memory');
    const p = plugin(dir);
    await db.usePlugin(p);
    const b = await p.createBackup();
    const target = name('restore');
    const report = await p.restore({ backupId: b.id, destination: target });
    expect(report.restored.find((r) => r.name === 'users')).toEqual({ name: 'users', recordsRestored: 5, totalRecords: 5 });
    const opened = await openDb(`memory://${target}/db`);
    expect(await snapshot(opened)).toEqual(await snapshot(db));
    const users = opened.resources.users as unknown as Users;
    expect(await users.count()).toBe(5);
    expect((await users.get('u00003')).password).toBe('pw-3'); // secrets decrypt with the database passphrase
    await p.stop();
  });

  it("file://: 'name' is the sibling directory <parent>/name; that database then holds the source's records", async () => {
    const parent = path.join(work, 'bare-file');
    const srcDir = path.join(parent, 'source-db');
    const db = await copySeeded(`file://${srcDir}`);
    const expected = await snapshot(db);
    const p = plugin(path.join(work, 'bare-file-backups'));
    await db.usePlugin(p);
    const b = await p.createBackup();
    await p.restore({ backupId: b.id, destination: 'test-restore' });
    await p.stop();
    expect((await readdir(parent)).sort()).toEqual(['source-db', 'test-restore']);
    const opened = await openDb(`file://${path.join(parent, 'test-restore')}`);
    expect(await snapshot(opened)).toEqual(expected);
    const users = opened.resources.users as unknown as Users;
    expect(await users.count()).toBe(5);
    expect((await users.get('u00004')).password).toBe('pw-4');
  });
});

describe('a verification failure while creating a backup', () => {
  for (const verify of [true, 'quick'] as const) {
    it(`verify: ${String(verify)}: nothing committed; onFailure, onBackupError and plg:backup:error get ERR_VERIFY_FAILED`, async () => {
      const dir = path.join(work, `verify-fail-${String(verify)}`);
      const db = await seeded(`verify-fail-${String(verify)}`);
      const failures: Error[] = [];
      const hookErrors: unknown[] = [];
      const p = plugin(dir, { verify, webhooks: { onFailure: (e) => void failures.push(e) }, onBackupError: (_t, ctx) => void hookErrors.push(ctx.error) });
      const events = recordEvents(p);
      // INJECTED FAULT (a fake, on purpose): a real disk does not flip a byte of a file between
      // its write and the read-back on demand. The plugin's own FilesystemDestination instance
      // gets a write() that stores the part as usual, reports the true size and SHA-256 of what it
      // was given, then flips one byte of the stored file: silent corruption at rest, which only
      // verification can catch. No src/ seam is needed: `plugin.destinations.members` is public.
      const member = p.destinations.members[0] as FilesystemDestination;
      expect(member).toBeInstanceOf(FilesystemDestination);
      const realWrite = member.write.bind(member);
      const damaged: string[] = [];
      member.write = async (rel, body, options) => {
        const result = await realWrite(rel, body, options);
        if (rel.startsWith('data/') && damaged.length === 0) {
          const file = member.resolve(rel);
          const bytes = await readFile(file);
          bytes[bytes.length >> 1]! ^= 0x20;
          await writeFile(file, bytes);
          damaged.push(rel);
        }
        return result;
      };
      await db.usePlugin(p);
      const err = await p.createBackup().then(() => null, (e: unknown) => e as Error & { code: string });
      expect(damaged).toHaveLength(1);
      expect(err?.code).toBe('ERR_VERIFY_FAILED');
      expect(err?.message).toContain(damaged[0]);
      expect(await p.listBackups()).toEqual([]);
      const left = await filesUnder(dir);
      expect(left.filter((f) => /^(manifests|data|indexes|pending)\//.test(f))).toEqual([]);
      expect(failures).toEqual([err]);
      expect(hookErrors).toEqual([err]);
      const errorEvents = events.filter(([e]) => e === 'plg:backup:error');
      expect(errorEvents).toHaveLength(1);
      expect(errorEvents[0]![1]).toMatchObject({ type: 'full', code: 'ERR_VERIFY_FAILED', error: err!.message });
      expect(events.some(([e]) => e === 'plg:backup:complete')).toBe(false);
      noSecret(events);
      // with the fault gone, the next backup commits and verifies
      member.write = realWrite;
      const ok = await p.createBackup();
      expect(ok.verified).toBe(true);
      expect((await p.listBackups()).map((b) => b.id)).toEqual([ok.id]);
      await p.stop();
    });
  }
});
