// Retention as the plugin applies it, on the real s3db.js and a real filesystem destination, in
// the situations review-retention found it deleting what was still needed: a chain member whose
// manifest is lost (the backups on both sides of the hole are kept), two file:// databases backing
// up to one directory (each its own series), a clock that stepped back (the backup just taken is
// never removed by the prune that follows it), and deletions in chain order (children first).
// Manifests are rewritten by hand only to stand for what another host or a lost file leaves.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import { paths } from '../src/engine/layout.js';
import { openDb, seedDatabase, snapshot } from './helpers/database.js';
import { warnInto } from './helpers/logger.js';

let work: string;
let seq = 0;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'retention-plugin-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

type Options = ConstructorParameters<typeof BackupPlugin>[0];

function plugin(directory: string, extra: Options = {}): BackupPlugin {
  return new BackupPlugin({ schedule: false, config: { directory }, ...extra });
}

/** Rewrites backup `id`'s manifest and its copy beside the parts, as another host's writer would have left them. */
async function rewriteManifest(p: BackupPlugin, directory: string, id: string, change: (m: Record<string, unknown>) => void): Promise<void> {
  const copy = (await p.getBackup(id))!.manifest.copy!;
  for (const file of [paths.manifest(id), copy]) {
    const m = JSON.parse(await readFile(path.join(directory, file), 'utf8')) as Record<string, unknown>;
    change(m);
    await writeFile(path.join(directory, file), JSON.stringify(m, null, 2));
  }
}

const listed = async (p: BackupPlugin) => (await p.listBackups()).map((b) => b.id);

describe('retention never deletes what a kept backup needs', () => {
  it("a chain member whose manifest is lost: the chain's full and the incrementals before the hole are kept, with a warning; once recoverBackups() puts the manifest back, the newest restores exactly", async () => {
    const dir = path.join(work, `hole-${++seq}`);
    const db = await openDb(`memory://retention-hole-${process.pid}-${seq}/db`);
    await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
    const warnings: string[] = [];
    const p = plugin(dir, { type: 'incremental', retention: { count: 1 }, logger: warnInto(warnings) });
    await db.usePlugin(p);
    const users = db.resources.users as unknown as { update(id: string, v: object): Promise<unknown> };
    const chain: string[] = [];
    for (let i = 0; i < 4; i++) {
      if (i > 0) await users.update('u00000', { name: `version ${i}` });
      chain.push((await p.createBackup()).id);
    }
    const [full, i1, i2, i3] = chain as [string, string, string, string];
    expect((await p.getBackup(i3))!.manifest.chain).toEqual(chain);
    const state = await snapshot(db);
    await rm(path.join(dir, paths.manifest(i2)));
    const result = await p.prune();
    expect(result.deleted).toEqual([]);
    expect((await listed(p)).sort()).toEqual([full, i1, i3].sort());
    expect(warnings).toContainEqual(expect.stringContaining(`retention: backup ${i3} needs ${i2}, which is not in the list (a lost or unreadable manifest?`));
    expect((await p.recoverBackups()).recovered).toEqual([i2]);
    const into = await openDb(`memory://retention-hole-into-${process.pid}-${seq}/db`);
    await p.restore({ backupId: i3, destination: into });
    expect(await snapshot(into)).toEqual(state);
    await p.stop();
  });

  it('two file:// databases backing up to one directory are counted apart: one database\'s backups never take the other\'s slots', async () => {
    const dir = path.join(work, `two-dbs-${++seq}`);
    const app1 = await openDb(`file://${path.join(work, `app1-${seq}`)}`);
    const app2 = await openDb(`file://${path.join(work, `app2-${seq}`)}`);
    const p1 = plugin(dir, { retention: { count: 2 }, logger: warnInto([]) });
    const p2 = plugin(dir, { retention: { count: 2 }, logger: warnInto([]) });
    await app1.usePlugin(p1);
    await app2.usePlugin(p2);
    const only = await p1.createBackup();
    await p2.createBackup();
    await p2.createBackup();
    await p2.createBackup();
    expect(await listed(p1)).toContain(only.id);
    expect(await listed(p1)).toHaveLength(3); // app1's one, app2's newest two
    await p1.stop();
    await p2.stop();
  });

  it('a clock that stepped back: the backup just taken, dated before one a fast clock stamped, is not removed by the prune after it, and the warning says why', async () => {
    const dir = path.join(work, `clock-${++seq}`);
    const db = await openDb(`memory://retention-clock-${process.pid}-${seq}/db`);
    await seedDatabase(db, { users: 2, orders: 2, perBehavior: 1 });
    const warnings: string[] = [];
    const before = plugin(dir, { logger: warnInto([]) });
    await db.usePlugin(before, 'before');
    const fast = await before.createBackup();
    // taken while the host's clock ran two hours fast (since corrected)
    await rewriteManifest(before, dir, fast.id, (m) => void (m.startedAt = new Date(Date.now() + 2 * 3_600_000).toISOString()));
    await before.stop();
    const p = plugin(dir, { retention: { count: 1 }, logger: warnInto(warnings) });
    await db.usePlugin(p, 'after');
    await (db.resources.users as unknown as { update(id: string, v: object): Promise<unknown> }).update('u00000', { name: 'the newest data' });
    const state = await snapshot(db);
    const next = await p.createBackup();
    expect((await listed(p)).sort()).toEqual([fast.id, next.id].sort());
    expect(warnings).toContainEqual(expect.stringContaining(`backup ${next.id}, just taken, is dated before backups listed as newer (${fast.id}`));
    const into = await openDb(`memory://retention-clock-into-${process.pid}-${seq}/db`);
    await p.restore({ backupId: next.id, destination: into });
    expect(await snapshot(into)).toEqual(state);
    await p.stop();
  });

  it('deletes an incremental before its full even when a stepped-back clock dated it earlier, so a prune cut short never leaves an incremental listed without its parent', async () => {
    const dir = path.join(work, `order-${++seq}`);
    const db = await openDb(`memory://retention-order-${process.pid}-${seq}/db`);
    await seedDatabase(db, { users: 2, orders: 2, perBehavior: 1 });
    const before = plugin(dir, { type: 'incremental', logger: warnInto([]) });
    await db.usePlugin(before, 'before');
    const full = await before.createBackup({ type: 'full' });
    const incremental = await before.createBackup();
    expect(incremental.type).toBe('incremental');
    const fullStarted = (await before.getBackup(full.id))!.manifest.startedAt;
    await rewriteManifest(before, dir, incremental.id, (m) => void (m.startedAt = new Date(Date.parse(fullStarted) - 3_600_000).toISOString()));
    await before.stop();
    const p = plugin(dir, { type: 'incremental', retention: { count: 1 }, logger: warnInto([]) });
    await db.usePlugin(p, 'after');
    const pruned: string[][] = [];
    p.on('plg:backup:pruned', (e) => pruned.push(e.deleted));
    const next = await p.createBackup({ type: 'full' });
    expect(pruned).toEqual([[incremental.id, full.id]]);
    expect(await listed(p)).toEqual([next.id]);
    await p.stop();
  });

  it("a kept incremental's chain is kept when its parent falls in another series: a full an earlier release wrote (no database directory in its manifest), then a newer one of that release", async () => {
    const dir = path.join(work, `cross-${++seq}`);
    const db = await openDb(`file://${path.join(work, `cross-db-${seq}`)}`);
    await seedDatabase(db, { users: 2, orders: 2, perBehavior: 1 });
    const earlier = plugin(dir, { type: 'incremental', logger: warnInto([]) });
    await db.usePlugin(earlier, 'earlier');
    const old = await earlier.createBackup();
    await rewriteManifest(earlier, dir, old.id, (m) => void delete (m.source as Record<string, unknown>).path);
    await earlier.stop();
    const upgraded = plugin(dir, { type: 'incremental', logger: warnInto([]) });
    await db.usePlugin(upgraded, 'upgraded');
    await (db.resources.users as unknown as { update(id: string, v: object): Promise<unknown> }).update('u00000', { name: 'after the upgrade' });
    const state = await snapshot(db);
    const incremental = await upgraded.createBackup();
    expect((await upgraded.getBackup(incremental.id))!.manifest.parentId).toBe(old.id);
    // an instance still on the earlier release takes a full of the same database afterwards
    const newerOld = await upgraded.createBackup({ type: 'full' });
    await rewriteManifest(upgraded, dir, newerOld.id, (m) => void delete (m.source as Record<string, unknown>).path);
    await upgraded.stop();
    const p = plugin(dir, { retention: { count: 1 }, logger: warnInto([]) });
    await db.usePlugin(p, 'pruning');
    const result = await p.prune();
    expect(result.deleted).toEqual([]);
    expect((await listed(p)).sort()).toEqual([old.id, incremental.id, newerOld.id].sort());
    const into = await openDb(`memory://retention-cross-into-${process.pid}-${seq}/db`);
    await p.restore({ backupId: incremental.id, destination: into });
    expect(await snapshot(into)).toEqual(state);
    await p.stop();
  });
});
