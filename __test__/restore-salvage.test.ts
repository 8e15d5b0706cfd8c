// Salvage: a backup with a part damaged at every destination restores everything else, names what
// it could not restore, and leaves those objects as the database has them. Real s3db.js (memory://
// databases, and one on the real RGW), real files, real parts damaged on disk.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import type { Manifest } from '../src/engine/manifest.js';
import type { RestoreReport } from '../src/engine/restore.js';
import { listObjects, type SourceEntry } from '../src/engine/s3db.js';
import { openDb, seedDatabase, settled, snapshot, type ObjectSnapshot } from './helpers/database.js';
import { createS3Database, deleteBucket, makeBucket, makeS3Client } from './helpers/s3.js';

const PASSPHRASE = 'salvage passphrase, long enough';
let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'salvage-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function plugin(directory: string): BackupPlugin {
  // small parts: each resource spans several, so one can be damaged alone
  return new BackupPlugin({ schedule: false, config: { directory }, encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, partSize: 2 * 1024 });
}

let n = 0;
const fresh = () => openDb(`memory://salvage-${process.pid}-${n++}/db`);

/** A new memory:// database seeded with `users` users (and a few other records), backed up by a plugin to `<work>/<name>`. */
async function seeded(name: string, users: number): Promise<{ dir: string; source: Awaited<ReturnType<typeof fresh>>; p: BackupPlugin }> {
  const dir = path.join(work, name);
  const source = await fresh();
  await seedDatabase(source, { users, orders: 3, perBehavior: 1 });
  const p = plugin(dir);
  await source.usePlugin(p);
  return { dir, source, p };
}

/** A plugin of its own (a fresh catalog) reading the backups in `directory`, attached to a scratch database. */
async function readerOf(directory: string): Promise<BackupPlugin> {
  const reader = plugin(directory);
  await (await fresh()).usePlugin(reader);
  return reader;
}

/** Flips a byte in the middle of a part (its GCM tag fails, and its SHA-256). */
async function damage(directory: string, partPath: string): Promise<void> {
  const file = path.join(directory, partPath);
  const bytes = await readFile(file);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x20;
  await writeFile(file, bytes);
}

/** A part of `group` with parts before and after it. */
function middlePart(manifest: Manifest, group: string) {
  const parts = manifest.parts.filter((p) => p.group === group);
  expect(parts.length).toBeGreaterThanOrEqual(3);
  return parts[1]!;
}

const keysOf = (s: ObjectSnapshot[]) => s.map((o) => o.key);

/**
 * Of the keys a salvage left missing in a new database, those it lost: not the partition references
 * of its lost records, which follow the record the target keeps (there: none), unless lost themselves.
 */
function lostOf(report: RestoreReport, missing: string[]): string[] {
  const named = new Set(report.lost.flatMap((l) => l.keys));
  const lostIds = new Set([...named].map((k) => /^resource=[^/]+\/data\/id=(.+)$/.exec(k)?.[1]).filter((x) => x !== undefined));
  return missing.filter((k) => named.has(k) || !lostIds.has(/^resource=[^/]+\/partition=.*\/id=(.+)$/.exec(k)?.[1] ?? ''));
}

describe('salvage restore', () => {
  let dir: string;
  let source: Awaited<ReturnType<typeof openDb>>;
  let p: BackupPlugin;
  let id: string;
  let manifest: Manifest;
  let original: ObjectSnapshot[];

  beforeAll(async () => {
    ({ dir, source, p } = await seeded('one', 14));
    id = (await p.createBackup()).id;
    manifest = (await p.getBackup(id))!.manifest;
    original = await snapshot(source);
    await damage(dir, middlePart(manifest, 'users').path);
  });

  it('without salvage the damaged backup is refused, and the error says salvage restores the rest', async () => {
    const target = await fresh();
    const before = await snapshot(target);
    const err = await p.restore({ backupId: id, destination: target }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_VERIFY_FAILED', message: expect.stringContaining('restore with salvage') });
    expect(await snapshot(target)).toEqual(before);
  });

  it('restores every object but those of the damaged part, and names each of those', async () => {
    const part = middlePart(manifest, 'users');
    const target = await fresh();
    const report = await p.restore({ backupId: id, destination: target, salvage: true });
    const restored = await snapshot(target);
    // every object restored is the backup's, byte for byte
    const byKey = new Map(original.map((o) => [o.key, o]));
    for (const o of restored) expect(o).toEqual(byKey.get(o.key));
    const missing = keysOf(original).filter((k) => !restored.some((o) => o.key === k));
    // exactly the part's objects are missing (all of users, one contiguous run of its keys), and
    // the partition references of its records, which follow the record the target keeps (none here)
    const lostKeys = lostOf(report, missing);
    expect(lostKeys.length).toBe(part.objects);
    expect(missing.filter((k) => !lostKeys.includes(k)).length).toBeGreaterThan(0);
    expect(lostKeys.every((k) => k.startsWith('resource=users/'))).toBe(true);
    expect(report.passedOver).toEqual([part.path]);
    expect(report.lost).toHaveLength(1);
    const [lost] = report.lost;
    expect(lost).toMatchObject({ resource: 'users', backupId: id, parts: [part.path], objects: lostKeys.length, keys: lostKeys.slice(0, 100) });
    expect(lost!.records).toBe(lostKeys.filter((k) => k.startsWith('resource=users/data/')).length);
    const usersKeys = keysOf(original).filter((k) => k.startsWith('resource=users/'));
    const first = usersKeys.indexOf(lostKeys[0]!);
    expect(lost!.after).toBe(usersKeys[first - 1]);
    expect(lost!.before).toBe(usersKeys[first + lostKeys.length]);
    const users = report.resources.find((r) => r.name === 'users')!;
    expect(users.lost).toBe(lostKeys.length);
    expect(report.restored.find((r) => r.name === 'users')).toMatchObject({ recordsRestored: users.records - lost!.records });
    expect(report.resources.filter((r) => r.name !== 'users').every((r) => r.lost === 0)).toBe(true);
    expect(report.warnings.some((w) => w.startsWith(`salvage: ${lostKeys.length} objects of users`) && w.includes(part.path))).toBe(true);
    // the damaged part is the report's passedOver, not a copy read elsewhere
    expect(report.sourceFailures).toEqual([]);
    // and the damage is recorded, as any restore's verification records it
    expect((await p.getBackup(id))!.verified).toBe(false);
  });

  it("mode 'replace' into the database itself: lost objects keep the database's version (never deleted or overwritten), the rest becomes the backup", async () => {
    // the database backed up, then damaged: a record of the lost run and one outside it changed, one record added
    const probe = await p.restore({ backupId: id, destination: await fresh(), salvage: true });
    const lostKey = probe.lost[0]!.keys.find((k) => k.startsWith('resource=users/data/'))!;
    const users = source.resources.users!;
    const lostId = lostKey.split('id=')[1]!;
    await users.update(lostId, { name: 'changed after the backup' });
    await users.update('u00000', { name: 'damaged' });
    await users.insert({ id: 'zz-new', name: 'new', email: 'n@example.com', password: 'x', plan: 'free' });
    const report = await p.restore({ backupId: id, mode: 'replace', salvage: true });
    expect((await users.get(lostId)).name).toBe('changed after the backup');
    expect((await users.get('u00000')).name).toBe('User 0');
    await expect(users.get('zz-new')).rejects.toThrow();
    expect(report.lost[0]!.keys).toContain(lostKey);
  });

  it("a lost record's partition references follow the version the database keeps: never the backup's, never deleted (review-31b F1)", async () => {
    const probe = await p.restore({ backupId: id, destination: await fresh(), salvage: true });
    const lostIds = probe.lost[0]!.keys.filter((k) => k.startsWith('resource=users/data/')).map((k) => k.split('id=')[1]!);
    expect(lostIds.length).toBeGreaterThanOrEqual(2);
    const users = source.resources.users!;
    const refsOf = async (recordId: string) => {
      const out: string[] = [];
      for await (const o of listObjects(source.client, { prefix: 'resource=users/partition=', pageSize: 1000 })) if (o.key.endsWith(`/id=${recordId}`)) out.push(o.key);
      return out;
    };
    for (const [i, mode] of (['replace', 'merge'] as const).entries()) {
      // a lost record moved to another partition since the backup
      const moved = lostIds[i === 0 ? 0 : lostIds.length - 1]!;
      await users.update(moved, { plan: 'gold' });
      await settled(source);
      const before = await refsOf(moved);
      expect(before).toContain(`resource=users/partition=byPlan/plan=gold/id=${moved}`);
      await p.restore({ backupId: id, mode, salvage: true });
      expect(await refsOf(moved)).toEqual(before);
      expect(await users.listIds({ partition: 'byPlan', partitionValues: { plan: 'gold' } })).toContain(moved);
    }
  });

  it('a dry run names the parts it would pass over', async () => {
    const part = middlePart(manifest, 'users');
    const report = await p.restore({ backupId: id, destination: await fresh(), salvage: true, dryRun: true });
    expect(report.passedOver).toEqual([part.path]);
    expect(report.lost).toEqual([]);
    expect(report.warnings.some((w) => w.startsWith('salvage: 1 damaged parts will be passed over') && w.includes(part.path))).toBe(true);
  });

  it('salvage with verify: false is refused (the verification finds the damaged parts)', async () => {
    await expect(p.restore({ backupId: id, destination: await fresh(), salvage: true, verify: false })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining('salvage') });
  });
});

describe('salvage of an incremental chain', () => {
  it("keys a later backup stores again are restored from it; the lost ones are the damaged full part's others", async () => {
    const { dir, source, p } = await seeded('chain', 14);
    const full = (await p.createBackup()).id;
    const fullManifest = (await p.getBackup(full))!.manifest;
    const part = middlePart(fullManifest, 'users');
    // a salvage of a damaged copy of the backups tells which keys the part holds; then one of them changes
    const copy = path.join(work, 'chain-copy');
    await cp(dir, copy, { recursive: true });
    await damage(copy, part.path);
    const probe = await (await readerOf(copy)).restore({ backupId: full, destination: await fresh(), salvage: true });
    const inPart = probe.lost[0]!.keys.filter((k) => k.startsWith('resource=users/data/')).map((k) => k.split('id=')[1]!);
    expect(inPart.length).toBeGreaterThan(2);
    await source.resources.users!.update(inPart[1]!, { name: 'changed in the incremental' });
    const incremental = (await p.createBackup({ type: 'incremental' })).id;
    expect((await p.getBackup(incremental))!.manifest.chain).toEqual([full, incremental]);
    const expected = await snapshot(source);
    // then every record of the part: a later incremental holds every object of it
    expect(probe.lost[0]!.keys.every((k) => k.startsWith('resource=users/data/'))).toBe(true);
    for (const id of inPart) await source.resources.users!.update(id, { name: `rewritten ${id}` });
    const rewritten = (await p.createBackup({ type: 'incremental' })).id;
    expect((await p.getBackup(rewritten))!.manifest.chain).toEqual([full, incremental, rewritten]);
    await damage(dir, part.path);
    const target = await fresh();
    const report = await p.restore({ backupId: incremental, destination: target, salvage: true });
    expect((await target.resources.users!.get(inPart[1]!)).name).toBe('changed in the incremental');
    const restored = await snapshot(target);
    const byKey = new Map(expected.map((o) => [o.key, o]));
    for (const o of restored) expect(o).toEqual(byKey.get(o.key));
    const lostKeys = lostOf(report, keysOf(expected).filter((k) => !restored.some((o) => o.key === k)));
    expect(report.lost).toHaveLength(1);
    expect(report.lost[0]).toMatchObject({ backupId: full, parts: [part.path], objects: lostKeys.length });
    expect(lostKeys).not.toContain(`resource=users/data/id=${inPart[1]}`);
    expect(lostKeys.length).toBeGreaterThan(0);
    // where a later backup holds every object of the damaged part, nothing is lost (review-31b F3: a run of 0 was reported, and the command line exited 3)
    const whole = await p.restore({ backupId: rewritten, destination: await fresh(), salvage: true });
    expect(whole.passedOver).toEqual([part.path]);
    expect(whole.lost).toEqual([]);
    expect(whole.warnings.filter((w) => w.startsWith('salvage:'))).toEqual([]);
  });
});

describe("salvage of parts holding partition references (review-31b F1b)", () => {
  /** A seeded database, settled, backed up unencrypted (its manifest names each part's first and last keys) to `<work>/<name>`. */
  async function backedUpInClear(name: string) {
    const dir = path.join(work, name);
    const source = await fresh();
    await seedDatabase(source, { users: 14, orders: 3, perBehavior: 1 });
    await settled(source);
    const p = new BackupPlugin({ schedule: false, config: { directory: dir }, partSize: 2 * 1024 });
    await source.usePlugin(p);
    return { dir, source, p, id: (await p.createBackup()).id };
  }

  it("the references of records restored from other parts are written back from the index, in every mode; a lost record's are not", async () => {
    const { dir, source, p, id } = await backedUpInClear('refs');
    const original = await snapshot(source);
    const users = (await p.getBackup(id))!.manifest.parts.filter((x) => x.group === 'users');
    const isRef = (k: string | null) => k?.startsWith('resource=users/partition=') === true;
    // a part whose records end where the references begin, and one of references only after it
    const mixed = users.findIndex((x) => x.firstKey?.startsWith('resource=users/data/') && isRef(x.lastKey));
    expect(mixed).toBeGreaterThan(0);
    const refsOnly = users[mixed + 2]!;
    expect(isRef(refsOnly.firstKey) && isRef(refsOnly.lastKey)).toBe(true);
    for (const part of [users[mixed]!, refsOnly]) await damage(dir, part.path);
    const inPart = (part: (typeof users)[number]) => original.map((o) => o.key).filter((k) => k >= part.firstKey! && k <= part.lastKey!);
    const lostIds = new Set(inPart(users[mixed]!).filter((k) => k.startsWith('resource=users/data/')).map((k) => k.split('id=')[1]!));
    expect(lostIds.size).toBeGreaterThan(0);
    const ofLost = (k: string) => lostIds.has(k.split('id=')[1]!);
    const expected = original.filter((o) => !o.key.startsWith('resource=users/') || !ofLost(o.key));
    const rebuiltIn = (part: (typeof users)[number]) => inPart(part).filter((k) => isRef(k) && !ofLost(k)).length;
    expect(rebuiltIn(users[mixed]!)).toBeGreaterThan(0);
    const pro = (db: typeof source) => db.resources.users!.listIds({ partition: 'byPlan', partitionValues: { plan: 'pro' } }).then((ids: string[]) => ids.sort());
    const wanted = (await pro(source)).filter((x) => !lostIds.has(x));
    for (const mode of ['replace', 'merge', 'skip'] as const) {
      const target = await fresh();
      const report = await p.restore({ backupId: id, destination: target, mode, salvage: true });
      expect(await snapshot(target), mode).toEqual(expected);
      expect(await pro(target), mode).toEqual(wanted);
      const runs = report.lost.map((l) => ({ parts: l.parts, objects: l.objects, records: l.records, rebuilt: l.rebuilt }));
      const lostOfPart = (part: (typeof users)[number]) => inPart(part).filter(ofLost).length;
      expect(runs, mode).toEqual([
        { parts: [users[mixed]!.path], objects: lostOfPart(users[mixed]!), records: lostIds.size, rebuilt: rebuiltIn(users[mixed]!) },
        ...(lostOfPart(refsOnly) > 0 ? [{ parts: [refsOnly.path], objects: lostOfPart(refsOnly), records: 0, rebuilt: rebuiltIn(refsOnly) }] : []),
      ]);
      expect(report.resources.find((r) => r.name === 'users')!.lost, mode).toBe(lostOfPart(users[mixed]!) + lostOfPart(refsOnly));
      expect(report.warnings.find((w) => w.includes(users[mixed]!.path)), mode).toContain(`(besides ${rebuiltIn(users[mixed]!)} partition references of restored records, written back from the backup's index)`);
    }
  });

  it("a skip keeps the target's record, so a reference of a damaged part that its record no longer gives is neither written back nor counted so (review-33b F3)", async () => {
    const { dir, source, p, id } = await backedUpInClear('refs-skip');
    const original = (await snapshot(source)).map((o) => o.key);
    const isRef = (k: string | null) => k?.startsWith('resource=users/partition=byPlan/') === true;
    const refsOnly = (await p.getBackup(id))!.manifest.parts.find((x) => x.group === 'users' && isRef(x.firstKey) && isRef(x.lastKey))!;
    const inPart = original.filter((k) => k >= refsOnly.firstKey! && k <= refsOnly.lastKey!);
    // the target: the backup restored whole, then the records of the part's references moved to another plan by the application
    const target = await fresh();
    await p.restore({ backupId: id, destination: target });
    for (const k of inPart) await target.resources.users!.update(k.split('/id=')[1]!, { plan: 'moved' });
    await settled(target);
    await damage(dir, refsOnly.path);
    const report = await p.restore({ backupId: id, destination: target, mode: 'skip', salvage: true });
    const after = new Set((await snapshot(target)).map((o) => o.key));
    expect(inPart.filter((k) => after.has(k))).toEqual([]); // the records give plan=moved: the backup's references are not theirs
    expect(report.lost.filter((l) => l.parts.includes(refsOnly.path))).toEqual([]);
    expect(report.warnings.filter((w) => w.includes(refsOnly.path))).toEqual([]);
  });
});

describe('salvage at the edges, and what it still refuses', () => {
  let dir: string;
  let p: BackupPlugin;
  let id: string;
  let manifest: Manifest;
  let original: ObjectSnapshot[];

  beforeAll(async () => {
    let source: Awaited<ReturnType<typeof fresh>>;
    ({ dir, p, source } = await seeded('refused', 12));
    await settled(source); // s3db.js writes partition references after insert() resolves
    id = (await p.createBackup()).id;
    manifest = (await p.getBackup(id))!.manifest;
    original = await snapshot(source);
  });

  async function whileDamaged(at: string | string[], run: () => Promise<void>): Promise<void> {
    const files = [at].flat().map((a) => path.join(dir, a));
    const bytes = await Promise.all(files.map((f) => readFile(f)));
    for (const a of [at].flat()) await damage(dir, a);
    try {
      await run();
    } finally {
      for (const [i, f] of files.entries()) await writeFile(f, bytes[i]!);
    }
  }

  it("a resource's first and last parts damaged: one run of lost keys from its start; the last part's partition references, to the resource's end, written back", async () => {
    const users = manifest.parts.filter((x) => x.group === 'users');
    const [first, last] = [users[0]!, users[users.length - 1]!];
    await whileDamaged([first.path, last.path], async () => {
      const target = await fresh();
      const report = await p.restore({ backupId: id, destination: target, salvage: true });
      expect(report.passedOver).toEqual([first.path, last.path]);
      // the first part holds records; the last, references only (they sort after the records), of records restored from other parts
      expect(report.lost).toMatchObject([{ resource: 'users', parts: [first.path], after: null, objects: first.objects, rebuilt: 0 }]);
      expect(report.lost[0]!.before).toEqual(expect.any(String));
      expect(report.lost[0]!.keys.every((k) => k.startsWith('resource=users/data/'))).toBe(true);
      expect(report.warnings.filter((w) => w.includes(last.path))).toEqual([
        `salvage: ${last.objects} partition references of users in the part ${last.path} of backup ${id}, damaged at every destination, were written back from the backup's index (a reference is its key and an empty body); nothing else of it was lost`,
      ]);
      // every object but the first part's records and their references, as backed up (the written-back references too, byte for byte)
      const lostIds = new Set(report.lost[0]!.keys.map((k) => k.split('id=')[1]!));
      const expected = original.filter((o) => !report.lost[0]!.keys.includes(o.key) && !(o.key.startsWith('resource=users/partition=') && lostIds.has(o.key.split('/id=')[1]!)));
      expect(await snapshot(target)).toEqual(expected);
    });
  });

  it('a damaged index: recoverBackups() first (and a restore without salvage does not suggest it)', async () => {
    await whileDamaged(manifest.index.path, async () => {
      const target = await fresh();
      const before = await snapshot(target);
      await expect(p.restore({ backupId: id, destination: target, salvage: true })).rejects.toMatchObject({ code: 'ERR_VERIFY_FAILED', message: expect.stringContaining('recoverBackups() puts it back') });
      const plain = await p.restore({ backupId: id, destination: target }).then(() => null, (e: Error) => e);
      expect(plain).toMatchObject({ code: 'ERR_VERIFY_FAILED' });
      expect(plain?.message).not.toContain('restore with salvage');
      expect(await snapshot(target)).toEqual(before);
    });
  });

  it('an edited manifest: nothing it names is trusted, salvage or not', async () => {
    const edited = JSON.parse(await readFile(path.join(dir, 'manifests', `${id}.json`), 'utf8')) as Manifest;
    edited.parts = edited.parts.filter((x) => x !== edited.parts.find((y) => y.group === 'users')); // a part "lost" by editing
    const files = [path.join(dir, 'manifests', `${id}.json`), path.join(dir, manifest.copy!)];
    const originals = await Promise.all(files.map((f) => readFile(f)));
    for (const f of files) await writeFile(f, JSON.stringify(edited));
    try {
      const reader = await readerOf(dir); // a fresh catalog: the edited manifest is read
      const target = await fresh();
      const refused = await reader.restore({ backupId: id, destination: target, salvage: true }).then(() => null, (e: Error) => e);
      expect(refused).toMatchObject({ code: 'ERR_VERIFY_FAILED', message: expect.stringContaining('cannot be trusted: it was changed after its backup wrote it') });
      expect(refused?.message).not.toContain('restore with salvage');
    } finally {
      for (const [i, f] of files.entries()) await writeFile(f, originals[i]!);
    }
  });

  it("a damaged part of the database's own objects (s3db.json)", async () => {
    const part = manifest.parts.find((x) => x.group === '_database')!;
    await whileDamaged(part.path, async () => {
      const target = await fresh();
      const before = await snapshot(target);
      await expect(p.restore({ backupId: id, destination: target, salvage: true })).rejects.toMatchObject({ code: 'ERR_VERIFY_FAILED', message: expect.stringContaining('s3db.json') });
      expect(await snapshot(target)).toEqual(before);
      // the resources alone, without that part: restored whole
      const report = await p.restore({ backupId: id, destination: target, resources: ['users'], salvage: true });
      expect(report.lost).toEqual([]);
      expect(report.passedOver).toEqual([]);
    });
  });
});

describe('salvage into the S3 database the backup was taken from (RGW)', () => {
  it('tells which lost objects the database still holds as backed up (intact), and keeps a changed one as it is', async () => {
    const admin = makeS3Client();
    const bucket = await makeBucket(admin, 'salvage-intact');
    onTestFinished(() => deleteBucket(admin, bucket));
    const db = await createS3Database(bucket, 'db');
    onTestFinished(() => db.disconnect());
    await seedDatabase(db, { users: 14, orders: 3, perBehavior: 1 });
    await settled(db); // s3db.js writes partition references after insert() resolves
    const dir = path.join(work, 'intact');
    const p = plugin(dir);
    await db.usePlugin(p);
    const id = (await p.createBackup()).id;
    const manifest = (await p.getBackup(id))!.manifest;
    const atBackup = new Map<string, SourceEntry>();
    for await (const o of listObjects(db.client, { pageSize: 1000 })) atBackup.set(o.key, o);
    await damage(dir, middlePart(manifest, 'users').path);
    // the restore's own rule for "the backup's version" (same-version.ts): the listing as the backup's, its stamp before the backup began
    // (a whole-second stamp, about one in a thousand on RGW, 61 s before it)
    const before = (key: string) => {
      const t = Date.parse(atBackup.get(key)!.lastModified);
      return t % 1000 === 0 ? t + 61_000 <= Date.parse(manifest.startedAt) : t < Date.parse(manifest.startedAt);
    };
    const first = await p.restore({ backupId: id, mode: 'replace', salvage: true });
    expect(first.lost).toHaveLength(1);
    const lost = first.lost[0]!;
    expect(lost.objects).toBeGreaterThan(2);
    expect(lost.intact).toBe(lost.keys.filter(before).length);
    expect(lost.intact).toBeGreaterThan(0);
    // a lost record changed since: no longer intact, and kept as the database has it
    const changed = lost.keys.find((k) => k.startsWith('resource=users/data/') && before(k))!;
    const changedId = changed.split('id=')[1]!;
    await db.resources.users!.update(changedId, { name: 'changed since the backup' });
    await settled(db);
    const second = await p.restore({ backupId: id, mode: 'replace', salvage: true });
    expect(second.lost[0]).toMatchObject({ objects: lost.objects, intact: lost.intact - 1 });
    expect(second.warnings.some((w) => w.includes(`(${lost.intact - 1} of them as the backup has them: nothing of those is missing): restore the others from another backup`))).toBe(true);
    expect((await db.resources.users!.get(changedId)).name).toBe('changed since the backup');
  });
});

describe('filling what a salvage lost from an older backup', () => {
  it("an older backup restored first, then the damaged one with salvage over it: the newest version everywhere but the lost records, which hold the older one", async () => {
    const { dir, source, p } = await seeded('fill', 12);
    const older = (await p.createBackup()).id;
    const users = source.resources.users!;
    const ids = (await users.listIds()) as string[];
    for (const id of ids) await users.update(id, { name: `renamed ${id}` });
    await source.resources.orders!.delete('o00001'); // deleted since the older backup: must not come back
    const newer = (await p.createBackup()).id;
    const expected = await snapshot(source);
    await damage(dir, middlePart((await p.getBackup(newer))!.manifest, 'users').path);
    const target = await fresh();
    await p.restore({ backupId: older, destination: target });
    const report = await p.restore({ backupId: newer, destination: target, salvage: true });
    const lostIds = new Set(report.lost.flatMap((l) => l.keys).filter((k) => k.startsWith('resource=users/data/')).map((k) => k.split('id=')[1]!));
    expect(lostIds.size).toBeGreaterThan(0);
    for (const id of ids) expect((await target.resources.users!.get(id)).name).toBe(lostIds.has(id) ? `User ${Number(id.slice(1))}` : `renamed ${id}`);
    // everything outside the lost run is the newer backup's, byte for byte (the deleted order included)
    const lostKeys = new Set(report.lost.flatMap((l) => l.keys));
    const restored = (await snapshot(target)).filter((o) => !lostKeys.has(o.key));
    expect(restored).toEqual(expected.filter((o) => !lostKeys.has(o.key)));
  });
});
