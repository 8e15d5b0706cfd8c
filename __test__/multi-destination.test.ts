/**
 * BackupPlugin with driver 'multi' over a real filesystem destination and a real S3 destination
 * (Ceph RGW on loopback, started by global-setup or CI), backing up the real s3db.js.
 *
 * Covers: strategy 'all' (both hold byte-identical objects, both recorded 'ok', listBackups merges
 * the catalogs); a part deleted at one destination and another corrupted at the other (verify
 * reports per destination and still passes, restore is exact from the other one, with and
 * without the pre-restore verification); 'any' with one destination broken (succeeds, records the
 * failure) versus 'all' with the same breakage (fails, commits nothing, calls onFailure);
 * 'priority' (the first usable destination only); and the option names of s3db.js's own plugin.
 *
 * Broken destinations are real, not mocks: a filesystem directory below a regular file (ENOTDIR;
 * chmod would not stop root) and an S3 bucket that does not exist.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import type { Destination } from '../src/destinations/types.js';
import { processSpace } from '../src/lease/process-space.js';
import { openDb, seedDatabase, snapshot, type ObjectSnapshot } from './helpers/database.js';
import { filesUnder } from './helpers/files.js';
import { warnInto } from './helpers/logger.js';
import { deleteBucket, listKeys, makeBucket, makeS3Client, s3Env } from './helpers/s3.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { literal } from './helpers/text.js';

const PASSPHRASE = 'multi destination passphrase';
let seq = 0;
const memoryUrl = (name: string) => `memory://${name}-${process.pid}-${++seq}/db`;

let admin: S3Client;
let bucket: string;
let work: string;
let source: Awaited<ReturnType<typeof openDb>>;
let expected: ObjectSnapshot[];
const plugins: BackupPlugin[] = [];

function s3Spec(prefix: string, bucketName = bucket): { driver: 's3'; config: Record<string, unknown> } {
  const env = s3Env();
  return {
    driver: 's3',
    config: { bucketName, endpoint: env.endpoint, region: env.region, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey }, prefix, maxAttempts: 2 },
  };
}

function fsSpec(directory: string): { driver: 'filesystem'; config: Record<string, unknown> } {
  return { driver: 'filesystem', config: { directory } };
}

function multi(destinations: unknown[], strategy: 'all' | 'any' | 'priority', extra: Record<string, unknown> = {}): BackupPlugin {
  const p = new BackupPlugin({ schedule: false, driver: 'multi', strategy, destinations, encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, ...extra } as never);
  plugins.push(p);
  return p;
}

/** A fresh plugin (same destinations) on an EMPTY database restores `id`; returns the report and the database's snapshot. */
async function restoreFresh(make: () => BackupPlugin, id: string, options: Record<string, unknown> = {}) {
  const empty = await openDb(memoryUrl('empty'));
  const p = make();
  await empty.usePlugin(p);
  const report = await p.restore({ backupId: id, destination: 'production', ...options });
  const snap = await snapshot(empty);
  await empty.disconnect();
  return { report, snap };
}

/** The manifest of `id` as stored in a filesystem destination at `dir`. */
async function readManifestAt(dir: string, id: string): Promise<{ parts: { path: string; group: string }[] }> {
  return JSON.parse(await readFile(path.join(dir, 'manifests', `${id}.json`), 'utf8')) as { parts: { path: string; group: string }[] };
}

async function sha256Of(stream: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const c of stream) h.update(c as Buffer);
  return h.digest('hex');
}

/**
 * Runs `fn` with a plugin on two filesystem destinations (strategy 'any') whose second refuses
 * writes into `folder` (made immutable, chattr +i: a real refusal, even for root).
 */
async function withRefusedFolder(folder: string, fn: (good: string, failing: string, p: BackupPlugin) => Promise<void>): Promise<void> {
  const [good, failing] = [path.join(work, `refused-good-${++refusals}`), path.join(work, `refused-${folder}-${refusals}`)];
  const refused = path.join(failing, folder);
  await mkdir(refused, { recursive: true });
  const { execFileSync } = await import('node:child_process');
  execFileSync('chattr', ['+i', refused]);
  try {
    const p = multi([fsSpec(good), fsSpec(failing)], 'any', { logger: { warn() {}, info() {}, error() {} } });
    await source.usePlugin(p, `refused-${refusals}`);
    await fn(good, failing, p);
    await p.stop();
  } finally {
    execFileSync('chattr', ['-i', refused]);
  }
}
let refusals = 0;

/** A directory path below a regular file: every write there fails with ENOTDIR, even for root. */
async function brokenDirectory(name: string): Promise<string> {
  const file = path.join(work, `${name}-not-a-dir`);
  await writeFile(file, 'a regular file');
  return path.join(file, 'backups');
}

/** Flips one byte in the middle of a users part of backup `id` at the filesystem destination `dir`; returns the part and its damaged bytes. */
async function damageUsersPart(dir: string, id: string): Promise<{ part: { path: string; group: string }; bytes: Buffer }> {
  const part = (await readManifestAt(dir, id)).parts.find((x) => x.group === 'users')!;
  const bytes = await readFile(path.join(dir, part.path));
  bytes[bytes.length >> 1] ^= 0xff;
  await writeFile(path.join(dir, part.path), bytes);
  return { part, bytes };
}

/**
 * Makes the directory (or folder) at `dir` stop answering: a symbolic link to itself in its place,
 * so every access fails (ELOOP), even for root; returns what puts it back.
 */
async function stopAnswering(dir: string): Promise<() => Promise<void>> {
  await rename(dir, `${dir}-away`);
  await symlink(path.basename(dir), dir);
  return async () => {
    await unlink(dir);
    await rename(`${dir}-away`, dir);
  };
}

beforeAll(async () => {
  admin = makeS3Client();
  bucket = await makeBucket(admin, 'multi');
  work = await mkdtemp(path.join(tmpdir(), 'multi-'));
  source = await openDb(memoryUrl('src'));
  await seedDatabase(source, { users: 9, orders: 9, perBehavior: 2 });
  expected = await snapshot(source);
});

afterAll(async () => {
  for (const p of plugins) await p.uninstall().catch(() => undefined);
  await source?.disconnect();
  if (bucket) await deleteBucket(admin, bucket);
  admin?.destroy();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("strategy 'all' over filesystem + S3", () => {
  it('both destinations hold byte-identical objects, both are recorded ok, and listBackups merges their catalogs', async () => {
    const dir = path.join(work, 'all');
    const specs = () => [fsSpec(dir), s3Spec('all/')];
    const p = multi(specs(), 'all');
    await source.usePlugin(p);
    const backup = await p.createBackup();
    expect(backup.verified).toBe(true);
    const [fsDest, s3Dest] = p.destinations.members as [Destination, Destination];
    expect(fsDest.driver).toBe('filesystem');
    expect(s3Dest.driver).toBe('s3');
    const manifest = (await p.getBackup(backup.id))!.manifest;
    expect(manifest.destinations).toEqual([
      { label: fsDest.label, status: 'ok' },
      { label: s3Dest.label, status: 'ok' },
    ]);
    expect(manifest.verification?.destinations.map((d) => [d.label, d.verified])).toEqual([
      [fsDest.label, true],
      [s3Dest.label, true],
    ]);
    for (const ref of [...manifest.parts, manifest.index]) {
      expect(await sha256Of(await fsDest.read(ref.path)), ref.path).toBe(ref.sha256);
      expect(await sha256Of(await s3Dest.read(ref.path)), ref.path).toBe(ref.sha256);
    }
    const manifestPath = `manifests/${backup.id}.json`;
    expect(await sha256Of(await s3Dest.read(manifestPath))).toBe(await sha256Of(await fsDest.read(manifestPath)));

    // a second backup only at the filesystem (a single-destination plugin on the same directory),
    // and the first backup's manifest gone from the filesystem: each is now listed by one catalog
    const single = new BackupPlugin({ schedule: false, config: { directory: dir }, encryption: { passphrase: PASSPHRASE, iterations: 100_000 } });
    plugins.push(single);
    const db2 = await openDb(memoryUrl('second'));
    await seedDatabase(db2, { users: 2, orders: 2, perBehavior: 1 });
    await db2.usePlugin(single);
    const onlyFs = await single.createBackup();
    await unlink(path.join(dir, manifestPath));
    const merged = multi(specs(), 'all');
    expect((await merged.listBackups()).map((b) => b.id).sort()).toEqual([backup.id, onlyFs.id].sort());
    expect((await single.listBackups()).map((b) => b.id)).toEqual([onlyFs.id]);
    // and the backup whose manifest only S3 still has restores exactly
    const { snap } = await restoreFresh(() => multi(specs(), 'all'), backup.id);
    expect(snap).toEqual(expected);
    await db2.disconnect();
  });

  describe('a part deleted at one destination, another corrupted at the other', () => {
    const dir = () => path.join(work, 'damaged');
    const specs = () => [fsSpec(dir()), s3Spec('damaged/')];
    let id: string;
    let deleted: string; // missing at S3
    let corrupted: string; // corrupted on the filesystem
    let fsLabel: string;
    let s3Label: string;
    let want: ObjectSnapshot[];

    beforeAll(async () => {
      const db = await openDb(memoryUrl('damaged'));
      await seedDatabase(db, { users: 9, orders: 9, perBehavior: 2 });
      want = await snapshot(db);
      const p = multi(specs(), 'all', { partSize: 4096 });
      await db.usePlugin(p);
      const backup = await p.createBackup();
      id = backup.id;
      const manifest = (await p.getBackup(id))!.manifest;
      const big = [...manifest.parts].sort((a, b) => b.objects - a.objects);
      expect(big.length).toBeGreaterThanOrEqual(2);
      deleted = big[0]!.path;
      corrupted = big[1]!.path;
      const [fsDest, s3Dest] = p.destinations.members as [Destination, Destination];
      fsLabel = fsDest.label;
      s3Label = s3Dest.label;
      await s3Dest.delete([deleted]);
      const file = path.join(dir(), corrupted);
      const bytes = await readFile(file);
      bytes[Math.floor(bytes.length / 2)]! ^= 0x5a;
      await writeFile(file, bytes);
      await db.disconnect();
    });

    it('verifyBackup reports each destination with its failing object, and the backup is still verified', async () => {
      const p = multi(specs(), 'all');
      for (const level of ['quick', 'full'] as const) {
        const result = await p.verifyBackup(id, { level });
        expect(result.verified, level).toBe(true);
        const byLabel = new Map(result.destinations.map((d) => [d.label, d]));
        expect(byLabel.get(fsLabel)).toMatchObject({ verified: false, error: expect.stringContaining(corrupted) });
        expect(byLabel.get(s3Label)).toMatchObject({ verified: false, error: expect.stringContaining(deleted) });
        expect(byLabel.get(s3Label)!.error).toMatch(/does not exist|NoSuchKey|not found/i);
      }
      // the stored verification result is what listBackups shows
      const listed = (await p.listBackups()).find((b) => b.id === id)!;
      expect(listed.verified).toBe(true);
    });

    it('restore is exact, reading each part from the destination where it is good (with and without pre-verification)', async () => {
      const verified = await restoreFresh(() => multi(specs(), 'all'), id);
      expect(verified.snap).toEqual(want);
      // without the pre-restore verification, the corrupted filesystem part fails while being
      // decoded and restore falls back to S3 for it; the deleted S3 part is read from the filesystem
      const unverified = await restoreFresh(() => multi(specs(), 'all'), id, { verify: false });
      expect(unverified.snap).toEqual(want);
    });

    it('the restore report names the destination that failed, and for which part', async () => {
      for (const verify of [true, false]) {
        const { report } = await restoreFresh(() => multi(specs(), 'all'), id, { verify });
        const text = JSON.stringify(report);
        expect(text, `verify: ${verify}`).toContain(fsLabel);
        expect(text, `verify: ${verify}`).toContain(corrupted);
        // one entry per failing object, with its path (the verification names both damages)
        expect(report.sourceFailures, `verify: ${verify}`).toContainEqual(expect.objectContaining({ label: fsLabel, path: corrupted }));
        if (verify) expect(report.sourceFailures).toContainEqual(expect.objectContaining({ label: s3Label, path: deleted }));
      }
    });
  });
});

describe('a plaintext backup damaged in place at one of two destinations', () => {
  it('a restore without verification stops once the damage shows, naming the part, never keeping records it took from the damaged copy; with verification it is exact', async () => {
    const [a, b] = [path.join(work, 'plain-a'), path.join(work, 'plain-b')];
    const plain = () => new BackupPlugin({ schedule: false, driver: 'multi', strategy: 'all', destinations: [fsSpec(a), fsSpec(b)], compression: 'none', logger: warnInto([]) } as never);
    const db = await openDb(memoryUrl('plain'));
    const docs = (await db.createResource({ name: 'docs', attributes: { body: 'string' }, behavior: 'body-only' })) as unknown as { insert(v: object): Promise<unknown> };
    const id = (i: number) => `d${String(i).padStart(4, '0')}`;
    for (let i = 0; i < 400; i++) await docs.insert({ id: id(i), body: `BODY-${id(i)}-${randomBytes(1500).toString('hex')}` });
    const want = await snapshot(db);
    const maker = plain();
    await db.usePlugin(maker);
    const backup = await maker.createBackup();
    await maker.stop();
    // One letter of a record's body late in the docs part (1.2 MB) at the first destination: same
    // size, so only the part's SHA-256, checked at its end, tells, after the records before it
    // were taken (nothing authenticates a record of a plaintext backup before it is released).
    const part = (await readManifestAt(a, backup.id)).parts.find((p) => p.group === 'docs')!;
    const file = path.join(a, part.path);
    const bytes = await readFile(file);
    const at = bytes.indexOf(`BODY-${id(350)}-`);
    expect(at).toBeGreaterThan(0);
    bytes[at + 20] = bytes[at + 20]! ^ 0x01;
    await writeFile(file, bytes);
    const unverified = await restoreFresh(plain, backup.id, { verify: false }).then(() => null, (e: unknown) => e as Error & { code?: string });
    expect(unverified).toMatchObject({ code: 'ERR_PART_UNREADABLE', message: expect.stringContaining(`part ${part.path} of backup ${backup.id} at `) });
    expect(unverified!.message).toMatch(/turned out damaged after \d+ of its records had been taken from it .*Run the restore again with verification on/);
    const verified = await restoreFresh(plain, backup.id);
    expect(verified.snap).toEqual(want);
    await db.disconnect();
  });
});

describe("'any' versus 'all' with one destination broken", () => {
  it("'any' succeeds and records the failed destination; the backup restores from the other", async () => {
    const broken = await brokenDirectory('any');
    const specs = () => [s3Spec('any/'), fsSpec(broken)];
    const failures: Error[] = [];
    const p = multi(specs(), 'any', { webhooks: { onFailure: (e: Error) => failures.push(e) } });
    await source.usePlugin(p);
    const backup = await p.createBackup();
    expect(backup.verified).toBe(true);
    expect(failures).toEqual([]);
    const [s3Dest, fsDest] = p.destinations.members as [Destination, Destination];
    const manifest = (await p.getBackup(backup.id))!.manifest;
    expect(manifest.destinations).toEqual([
      { label: s3Dest.label, status: 'ok' },
      { label: fsDest.label, status: 'failed', error: expect.stringMatching(/not a directory|ENOTDIR/i) },
    ]);
    expect(backup.destinations).toEqual(manifest.destinations);
    expect(await listKeys(admin, bucket, `any/manifests/${backup.id}.json`)).toHaveLength(1);
    const { snap } = await restoreFresh(() => multi(specs(), 'any'), backup.id);
    expect(snap).toEqual(expected);
  });

  it("'any': a destination that fails midway (its index refused) keeps none of the backup's parts once the backup is stored at the other", async () => {
    // indexes/ refused: parts go in, the index does not
    await withRefusedFolder('indexes', async (good, failing, p) => {
      const backup = await p.createBackup();
      expect(backup.destinations.map((d) => d.status)).toEqual(['ok', 'failed']);
      expect((await filesUnder(good)).some((f) => f.startsWith('data/'))).toBe(true);
      expect((await filesUnder(failing)).filter((f) => f.startsWith('data/') || f.startsWith('pending/'))).toEqual([]);
    });
  });

  it('a manifest lost or edited at one of two destinations is reported by verification as a damaged copy (redundancy lost), naming that destination', async () => {
    const [a, b] = [path.join(work, `two-a-${Date.now()}`), path.join(work, `two-b-${Date.now()}`)];
    const p = multi([fsSpec(a), fsSpec(b)], 'all', { logger: { warn() {}, info() {}, error() {} } });
    await source.usePlugin(p, `two-copies-${Date.now()}`);
    const backup = await p.createBackup();
    const label = p.destinations.members[1]!.label;
    const file = path.join(b, 'manifests', `${backup.id}.json`);
    const text = await readFile(file, 'utf8');
    for (const [damage, expected] of [[() => unlink(file), 'is missing'], [() => writeFile(file, JSON.stringify({ ...JSON.parse(text), parts: [] })), 'differs from the one verified']] as const) {
      await damage();
      const result = await p.verifyBackup(backup.id, { level: 'quick' });
      expect(result.verified).toBe(true);
      expect(result.damagedCopies).toContainEqual(expect.objectContaining({ backupId: backup.id, label, error: expect.stringContaining(`manifests/${backup.id}.json ${expected}`) }));
      await writeFile(file, text);
    }
    expect((await p.verifyBackup(backup.id, { level: 'quick' })).damagedCopies).toBeUndefined();
    await p.stop();
  });

  /** A multi plugin on `source` over two new directories, its warnings collected. */
  async function twoDirectories(name: string, strategy: 'all' | 'any', extra: Record<string, unknown> = {}) {
    const b = path.join(work, `${name}-b-${Date.now()}`);
    const warnings: string[] = [];
    const p = multi([fsSpec(path.join(work, `${name}-a-${Date.now()}`)), fsSpec(b)], strategy, { logger: warnInto(warnings), ...extra });
    await source.usePlugin(p, `${name}-${Date.now()}`);
    return { b, warnings, p };
  }

  /** A full backup over two new directories a and b ('all'), then one byte of a users part flipped at a (`bytes`: the damaged part). */
  async function damagedAtA(name: string) {
    const [a, b] = [path.join(work, `${name}-a-${Date.now()}`), path.join(work, `${name}-b-${Date.now()}`)];
    const p = multi([fsSpec(a), fsSpec(b)], 'all', { logger: { warn() {}, info() {}, error() {} } });
    await source.usePlugin(p, `${name}-${Date.now()}`);
    const full = await p.createBackup();
    const { part, bytes } = await damageUsersPart(a, full.id);
    return { a, b, p, full, part, bytes };
  }

  it('a destination with a damaged copy and one it could not read says which is which, in the backup\'s order (review-29b G6: both were "damaged")', async () => {
    const { a, b, p, full, part } = await damagedAtA('which');
    const orders = (await readManifestAt(a, full.id)).parts.find((x) => x.group === 'orders')!;
    const [damaged, unread] = [orders, part]; // orders first in the manifest, users after
    const bytes = await readFile(path.join(a, damaged.path));
    bytes[bytes.length >> 1] ^= 0xff;
    await writeFile(path.join(a, damaged.path), bytes);
    await writeFile(path.join(a, unread.path), await readFile(path.join(b, unread.path))); // mend users: damagedAtA flipped it
    const answerAgain = await stopAnswering(path.join(a, unread.path)); // that file alone: ELOOP
    const result = await p.verifyBackup(full.id);
    expect(result.verified).toBe(true); // from b's copies
    const atA = result.destinations[0]!.error!;
    expect(atA.startsWith(`${damaged.path} at`), atA).toBe(true);
    expect(atA).toContain(`(and 1 more not read: ${unread.path})`);
    await answerAgain();
    await p.stop();
  });

  it("a verification run with one of the two destinations (the runbook's verify --directory) that finds its copy damaged does not mark the backup damaged while the other copy was last verified good (walk-28 F1)", async () => {
    const { a, b, p, full, part, bytes } = await damagedAtA('partial');
    const both = await p.verifyBackup(full.id);
    expect(both.verified).toBe(true); // from b's copy; a's named damaged
    expect(both.destinations.map((d) => d.verified)).toEqual([false, true]);
    // the runbook's command, over a alone: its copy is damaged, and it says so
    const alone = new BackupPlugin({ schedule: false, config: { directory: a }, encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, logger: { warn() {}, info() {}, error() {} } } as never);
    plugins.push(alone);
    expect((await alone.verifyBackup(full.id)).verified).toBe(false);
    // the plugin over both still lists it verified, and builds the next incremental on it
    const listed = (await p.listBackups()).find((b) => b.id === full.id)!;
    expect(listed.verified).toBe(true);
    const next = await p.createBackup({ type: 'incremental' });
    expect(next.type).toBe('incremental');
    // once b's copy is found damaged too, nothing vouches for it
    await writeFile(path.join(b, part.path), bytes);
    expect((await p.verifyBackup(full.id)).verified).toBe(false);
    expect((await p.listBackups()).find((b) => b.id === full.id)!.verified).toBe(false);
    await p.stop();
  });

  it("a newer failure at every destination is not outweighed by an older good record that one destination keeps because it refused the newer one (review-md R1)", async () => {
    const { a, b, p, full, part, bytes } = await damagedAtA('stale');
    // (both copies good at the first verification, so each destination holds a good record)
    await writeFile(path.join(a, part.path), await readFile(path.join(b, part.path)));
    expect((await p.verifyBackup(full.id)).verified).toBe(true);
    await writeFile(path.join(a, part.path), bytes);
    await writeFile(path.join(b, part.path), bytes);
    const { execFileSync } = await import('node:child_process');
    execFileSync('chattr', ['+i', path.join(b, 'verifications')]); // b refuses the next record (a real refusal)
    try {
      expect((await p.verifyBackup(full.id)).verified).toBe(false); // recorded at a only
    } finally {
      execFileSync('chattr', ['-i', path.join(b, 'verifications')]);
    }
    expect((await p.listBackups()).find((x) => x.id === full.id)!.verified).toBe(false);
    expect((await p.createBackup({ type: 'incremental' })).type).toBe('full');
    await p.stop();
  });

  it("a copy found damaged by a verification at its destination alone stays named damaged, so recoverBackups() puts its index back (review-md R1)", async () => {
    const { a, b, p, full, part } = await damagedAtA('index');
    await writeFile(path.join(a, part.path), await readFile(path.join(b, part.path))); // the part whole again
    expect((await p.verifyBackup(full.id)).verified).toBe(true);
    const index = (JSON.parse(await readFile(path.join(b, 'manifests', `${full.id}.json`), 'utf8')) as { index: { path: string } }).index.path;
    const damaged = await readFile(path.join(a, index));
    damaged[damaged.length >> 1] ^= 0xff; // the same size
    await writeFile(path.join(a, index), damaged);
    const alone = new BackupPlugin({ schedule: false, config: { directory: a }, encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, logger: { warn() {}, info() {}, error() {} } } as never);
    plugins.push(alone);
    expect((await alone.verifyBackup(full.id)).verified).toBe(false);
    const repaired = await p.recoverBackups();
    expect(repaired.indexes.map((i) => [i.id, i.action, i.destinations])).toEqual([[full.id, 'copied', [p.destinations.members[0]!.label]]]);
    expect(Buffer.compare(await readFile(path.join(a, index)), await readFile(path.join(b, index)))).toBe(0);
    await p.stop();
  });

  it('a backup that failed as a whole (its index and parts disagree, every copy read well) is not vouched for by a destination after a later check of the other (review-md R2)', async () => {
    const { a, b, p, full } = await damagedAtA('whole');
    const [la, lb] = p.destinations.members.map((m) => m.label);
    // records as verifyManifest writes them (written by hand: a disagreement cannot be made on demand)
    const record = (startedAt: string, destinations: { label: string; verified: boolean }[]) =>
      JSON.stringify({ verified: false, level: 'full', at: startedAt, startedAt, error: `the index and the parts of backup ${full.id} disagree`, destinations: destinations.map((d) => ({ ...d, error: null })) });
    const whole = record('2026-01-01T00:00:00.000Z', [{ label: la!, verified: true }, { label: lb!, verified: true }]);
    for (const dir of [a, b]) await mkdir(path.join(dir, 'verifications'), { recursive: true });
    await writeFile(path.join(a, 'verifications', `${full.id}.json`), record('2026-01-02T00:00:00.000Z', [{ label: la!, verified: false }]));
    await writeFile(path.join(b, 'verifications', `${full.id}.json`), whole);
    expect((await p.listBackups()).find((x) => x.id === full.id)!.verified).toBe(false);
    await p.stop();
  });

  it("a destination configured under another spelling (here a directory reached through a symbolic link) still serves its good copy when the other's is damaged (walk-28 F2)", async () => {
    const { a, b, p, full, part } = await damagedAtA('spelt');
    // the operator's configuration names b by another path: another label than the manifest's
    const b2 = `${b}-link`;
    await symlink(b, b2);
    const other = multi([fsSpec(a), fsSpec(b2)], 'all', { logger: { warn() {}, info() {}, error() {} } });
    expect(other.destinations.members[1]!.label).not.toBe(p.destinations.members[1]!.label);
    const verified = await other.verifyBackup(full.id);
    expect({ verified: verified.verified, destinations: verified.destinations.map((d) => d.verified) }).toEqual({ verified: true, destinations: [false, true] });
    const { report, snap } = await restoreFresh(() => multi([fsSpec(a), fsSpec(b2)], 'all'), full.id);
    expect(report.sourceFailures.map((f) => f.path)).toContain(part.path);
    expect(snap).toEqual(expected);
    await p.stop();
  });

  it("with one of two destinations ('any') not answering, the next backup is still an incremental on the chain the other holds; once it answers again, lacking that incremental, the next is a full (walk-28 F3)", async () => {
    const { b, warnings, p } = await twoDirectories('down', 'any');
    const full = await p.createBackup();
    const answerAgain = await stopAnswering(b);
    const during = await p.createBackup({ type: 'incremental' });
    expect(during.type).toBe('incremental');
    expect(during.destinations.map((d) => d.status)).toEqual(['ok', 'failed']);
    const label = p.destinations.members[1]!.label;
    expect(warnings).toContainEqual(expect.stringContaining(`could not ask ${label} whether it holds ${full.id}`));
    await answerAgain();
    const after = await p.createBackup({ type: 'incremental' });
    expect(after.type).toBe('full');
    expect(warnings).toContainEqual(expect.stringContaining(`${label} does not hold every backup of the chain of ${during.id}`));
    await p.stop();
  });

  it("('any') with an S3 destination whose store stopped answering, a backup asks it once: the first request's retries, then none, and the backup is an incremental at the other (walk-28 F3: each planning request spent its whole retry budget, ~4 min)", async () => {
    // the store behind a TCP forwarder on loopback, so it can stop answering (its port closed: a real refused connection)
    const proxy = await startTcpProxy(s3Env().endpoint);
    const dir = path.join(work, `unreachable-${Date.now()}`);
    const warnings: string[] = [];
    const s3Behind = s3Spec(`unreachable-${Date.now()}/`);
    s3Behind.config.endpoint = proxy.url;
    const p = multi([fsSpec(dir), s3Behind], 'any', { logger: warnInto(warnings) });
    await source.usePlugin(p, `unreachable-${Date.now()}`);
    const full = await p.createBackup();
    await proxy.down();
    const s3 = p.destinations.members[1] as Destination & { client: S3Client };
    let sent = 0;
    s3.client.middlewareStack.add(
      (next) => async (args) => {
        sent++;
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'testAttemptCounter' },
    );
    const during = await p.createBackup({ type: 'incremental' });
    expect({ type: during.type, statuses: during.destinations.map((d) => d.status) }).toEqual({ type: 'incremental', statuses: ['ok', 'failed'] });
    expect(sent).toBe(2); // s3Spec's maxAttempts: one request's attempts
    expect(warnings.filter((w) => w.includes(`could not ask ${s3.label} whether it holds ${full.id}`))).toHaveLength(1);
    // said as soon as it was found so, once
    expect(warnings.filter((w) => w.includes(`${s3.label} could not be reached (`))).toEqual([expect.stringMatching(/could not be reached \(connect ECONNREFUSED [\d.:]+\) after its retries: until it answers, its requests fail at once but for one every 5 s, which asks it again$/)]);
    expect(during.destinations[1]!.error).toMatch(/ECONNREFUSED.*not sent: the store could not be reached/);
    await p.listBackups();
    expect(sent).toBe(2);
    await p.stop();
  });

  it("a verification that cannot read the one good copy (its store stopped answering) says the copy it read is damaged, and names the rebuilt-index look it began with as what it is (walk-28 F6)", async () => {
    const proxy = await startTcpProxy(s3Env().endpoint);
    const dir = path.join(work, `outage-${Date.now()}`);
    const s3Behind = s3Spec(`outage-${Date.now()}/`);
    s3Behind.config.endpoint = proxy.url;
    const p = multi([fsSpec(dir), s3Behind], 'all', { logger: { warn() {}, info() {}, error() {} } });
    await source.usePlugin(p, `outage-${Date.now()}`);
    const full = await p.createBackup();
    const { part } = await damageUsersPart(dir, full.id);
    await proxy.close();
    const [fsLabel, s3Label] = p.destinations.members.map((m) => m.label) as [string, string];
    const recorded = (await p.getBackup(full.id))!.verification;
    for (const attempt of [() => p.verifyBackup(full.id), () => restoreFresh(() => multi([fsSpec(dir), s3Behind], 'all'), full.id)]) {
      const err = await attempt().then(() => null, (e: unknown) => e as Error & { code: string });
      expect(err?.code).toBe('ERR_VERIFY_INCOMPLETE');
      expect(err?.message).toContain(`${part.path} could not be read at ${s3Label} (not asked for: the look for a rebuilt index of indexes/${full.id}.index (indexes/${full.id}.rebuilt.json, there only if one was made) failed there before, `);
      expect(err?.message).toMatch(/ECONNREFUSED/);
      expect(err?.message).toContain(`; the copy at ${fsLabel} fails (`);
      expect(err?.message).toContain(`), so only ${s3Label} may hold a good one; nothing was recorded`);
    }
    expect((await p.getBackup(full.id))!.verification).toEqual(recorded);
    await p.stop();
  });

  it('a verification that could read none of several copies but a damaged one names every destination it could not read (review-29 F6: the last one only)', async () => {
    const [a, b, c] = ['a', 'b', 'c'].map((n) => path.join(work, `unread-${n}-${Date.now()}`)) as [string, string, string];
    const p = multi([a, b, c].map(fsSpec), 'all', { logger: { warn() {}, info() {}, error() {} } });
    await source.usePlugin(p, `unread-${Date.now()}`);
    const full = await p.createBackup();
    const { part } = await damageUsersPart(c, full.id);
    const answerAgain = [await stopAnswering(a), await stopAnswering(b)];
    const [la, lb, lc] = p.destinations.members.map((m) => m.label) as [string, string, string];
    const err = await p.verifyBackup(full.id).then(() => null, (e: unknown) => e as Error & { code: string });
    expect(err?.code).toBe('ERR_VERIFY_INCOMPLETE');
    // what was not asked for, said once; each destination's failure after its label, said once (review-29b G6: three times)
    expect(err?.message).toContain(`${part.path} could not be read at ${la}, ${lb} (not asked for: the look for a rebuilt index of indexes/${full.id}.index (indexes/${full.id}.rebuilt.json, there only if one was made) failed there before: ${la}: could not stat `);
    expect(err?.message).toContain(`; ${lb}: could not stat `);
    for (const label of [la, lb]) expect(err?.message.split(`${label}:`)).toHaveLength(2);
    expect(err?.message).toContain(`; the copy at ${lc} fails (`);
    expect(err?.message).toContain(`so only ${la} or ${lb} may hold a good one; nothing was recorded (a restore it ran for wrote nothing): once one of them can be read`);
    for (const again of answerAgain) await again();
    await p.stop();
  });

  it("('any') a destination that cannot be asked about the chain but still takes writes fails that backup alone; the others commit it as an incremental (review-md R3)", async () => {
    const { b, p } = await twoDirectories('unasked', 'any');
    await p.createBackup();
    // b's manifests/ stops answering: its parts go in, every question about a manifest fails
    const answerAgain = await stopAnswering(path.join(b, 'manifests'));
    try {
      for (let i = 0; i < 2; i++) {
        const next = await p.createBackup({ type: 'incremental' });
        expect({ type: next.type, statuses: next.destinations.map((d) => d.status) }).toEqual({ type: 'incremental', statuses: ['ok', 'failed'] });
      }
    } finally {
      await answerAgain();
    }
    await p.stop();
  });

  it("recoverBackups() puts back an unreadable key.json only from the wrapping the other destination's key.json holds: a passphrase a rewrap retired does not come back (review-md R4)", async () => {
    const [a, b] = [path.join(work, `rewrapped-a-${Date.now()}`), path.join(work, `rewrapped-b-${Date.now()}`)];
    const quiet = { logger: { warn() {}, info() {}, error() {} } };
    const p = multi([fsSpec(a), fsSpec(b)], 'all', quiet);
    await source.usePlugin(p, `rewrapped-${Date.now()}`);
    await p.createBackup();
    const { rewrapAll } = await import('../src/cli/rewrap.js');
    const onlyA = new BackupPlugin({ schedule: false, config: { directory: a }, encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, ...quiet } as never);
    plugins.push(onlyA);
    await rewrapAll(onlyA, PASSPHRASE, 'the new passphrase'); // a rewrap that reached a only
    await writeFile(path.join(b, 'key.json'), '{"keyCheck": "tru'); // then b's damaged
    const report = await p.recoverBackups(); // an instance still on the old passphrase
    expect(report.keyFiles?.mended).toEqual([]);
    expect(report.keyFiles?.left).toEqual([{ destination: p.destinations.members[1]!.label, reason: expect.stringContaining('does not open with this passphrase (rewrapped to another?') }]);
    expect(await readFile(path.join(b, 'key.json'), 'utf8')).toBe('{"keyCheck": "tru');
    // with the passphrase key.json now takes, it is put back from a's
    const current = multi([fsSpec(a), fsSpec(b)], 'all', { ...quiet, encryption: { passphrase: 'the new passphrase', iterations: 100_000 } });
    await source.usePlugin(current, `rewrapped-new-${Date.now()}`);
    expect((await current.recoverBackups()).keyFiles?.mended).toEqual([{ destination: current.destinations.members[1]!.label, from: `key.json at ${current.destinations.members[0]!.label}` }]);
    expect(await readFile(path.join(b, 'key.json'), 'utf8')).toBe(await readFile(path.join(a, 'key.json'), 'utf8'));
    await p.stop();
    await current.stop();
  });

  it("a key.json at the second destination that the passphrase does not open, beside one it opens at the first, stops the backup, naming it, and recover names it too; a rewrap run again as the message says mends it (walk-28 F4: only the first key.json was checked, so a retired passphrase kept working at the other)", async () => {
    const [a, b] = [path.join(work, `stale-a-${Date.now()}`), path.join(work, `stale-b-${Date.now()}`)];
    const quiet = { logger: { warn() {}, info() {}, error() {} } };
    const NEW = 'the passphrase after the rewrap';
    const withPassphrase = (passphrase: string, dirs = [a, b]) => multi(dirs.map(fsSpec), 'all', { ...quiet, encryption: { passphrase, iterations: 100_000 } });
    const p = withPassphrase(PASSPHRASE);
    await source.usePlugin(p, `stale-${Date.now()}`);
    const first = await p.createBackup();
    const { rewrapAll } = await import('../src/cli/rewrap.js');
    await rewrapAll(p, PASSPHRASE, NEW);
    // one new wrapping for both, unwrapped once by the check below (review-29 F8: one salt each)
    expect(await readFile(path.join(b, 'key.json'), 'utf8')).toBe(await readFile(path.join(a, 'key.json'), 'utf8'));
    // the README's old advice followed with the oldest manifest: b's key.json is the wrapping before the rewrap
    const oldWrapping = `${JSON.stringify(JSON.parse(await readFile(path.join(b, 'manifests', `${first.id}.json`), 'utf8')).encryption.keyFile, null, 2)}`;
    await writeFile(path.join(b, 'key.json'), oldWrapping);
    const current = withPassphrase(NEW);
    await source.usePlugin(current, `stale-new-${Date.now()}`);
    const [labelA, labelB] = current.destinations.members.map((m) => m.label) as [string, string];
    const refused = await current.createBackup({ type: 'incremental' }).then(() => null, (e: unknown) => e as Error & { code: string });
    expect(refused?.code).toBe('ERR_WRONG_PASSPHRASE');
    expect(refused?.message).toContain(`key.json at ${labelB} wraps the backups' master key as key.json at ${labelA} does, but not with this passphrase`);
    expect(refused?.message).toContain('run s3db-backup rewrap again');
    // the retired passphrase opens b's, whichever destination comes first
    const swapped = withPassphrase(PASSPHRASE, [b, a]);
    await source.usePlugin(swapped, `stale-swapped-${Date.now()}`);
    const retired = await swapped.createBackup().then(() => null, (e: unknown) => e as Error & { code: string });
    expect(retired?.code).toBe('ERR_WRONG_PASSPHRASE');
    expect((await p.listBackups()).map((x) => x.id)).toEqual([first.id]);
    const report = await current.recoverBackups();
    expect(report.keyFiles?.left).toEqual([{ destination: labelB, reason: expect.stringContaining('left as it is: if this passphrase is the current one, run s3db-backup rewrap again') }]);
    expect(await readFile(path.join(b, 'key.json'), 'utf8')).toBe(oldWrapping);
    // the advice: the passphrase that opens b's as the current one, the new one as the new
    expect(await rewrapAll(p, PASSPHRASE, NEW)).toEqual({ rewrapped: [labelB], alreadyNew: [labelA], withoutKeyFile: [] });
    expect(await readFile(path.join(b, 'key.json'), 'utf8')).toBe(await readFile(path.join(a, 'key.json'), 'utf8'));
    expect((await current.createBackup({ type: 'incremental' })).type).toBe('incremental');
    for (const q of [p, current, swapped]) await q.stop();
  });

  it("a key.json that cannot be read (an I/O error, not damage) fails the backup at that destination only under 'any' (the whole backup under 'all'), and recover names it unchecked without writing over it (walk-28 F4: it counted as absent, and the backup went on there)", async () => {
    const { b, p } = await twoDirectories('keyio', 'any');
    await p.createBackup();
    // b's key.json a symbolic link to itself: every question about it fails (ELOOP), its bytes are unknown
    await rm(path.join(b, 'key.json'));
    await symlink('key.json', path.join(b, 'key.json'));
    const labelB = p.destinations.members[1]!.label;
    const next = await p.createBackup({ type: 'incremental' });
    expect({ type: next.type, statuses: next.destinations.map((d) => d.status) }).toEqual({ type: 'incremental', statuses: ['ok', 'failed'] });
    expect(next.destinations[1]!.error).toMatch(/key\.json.*ELOOP/);
    const report = await p.recoverBackups();
    expect(report.keyFiles?.left).toEqual([{ destination: labelB, reason: expect.stringMatching(/^key\.json could not be read there \(.*ELOOP.*\), so it was not checked: run recover again once it answers$/) }]);
    expect(report.keyFiles?.mended).toEqual([]);
    const all = multi(p.destinations.members.map((m) => fsSpec(m.label.replace(/^filesystem:/, ''))), 'all', { logger: { warn() {}, info() {}, error() {} } });
    await source.usePlugin(all, `keyio-all-${Date.now()}`);
    const failed = await all.createBackup({ type: 'incremental' }).then(() => null, (e: unknown) => e as Error & { code: string });
    expect(failed?.code).toBe('ERR_DESTINATION_IO');
    expect(failed?.message).toContain(`${labelB} failed`);
    expect(failed?.message).not.toMatch(/unreadable|restore it from a copy/);
    await p.stop();
    await all.stop();
  });

  it("('any') while the destination holding key.json does not answer, beside a new one, the backup is taken there under a new key, with a warning; once the first answers, the new one refuses its key and the backups go on at the first, each saying why (review-29 F2: every backup failed ERR_KEY_CONFLICT)", async () => {
    const [a, b, c] = ['a', 'b', 'c'].map((n) => path.join(work, `keysplit-${n}-${Date.now()}`)) as [string, string, string];
    const warnings: string[] = [];
    const first = multi([fsSpec(a), fsSpec(b)], 'any', { logger: { warn() {}, info() {}, error() {} } });
    await source.usePlugin(first, `keysplit-1-${Date.now()}`);
    await first.createBackup();
    const keyCheckOf = async (dir: string) => (JSON.parse(await readFile(path.join(dir, 'key.json'), 'utf8')) as { keyCheck: string }).keyCheck;
    // a stops answering; c replaces b
    const answerAgain = await stopAnswering(a);
    const p = multi([fsSpec(a), fsSpec(c)], 'any', { logger: warnInto(warnings) });
    await source.usePlugin(p, `keysplit-2-${Date.now()}`);
    const [la, lc] = p.destinations.members.map((m) => m.label) as [string, string];
    const during = await p.createBackup();
    expect(during.destinations.map((d) => d.status)).toEqual(['failed', 'ok']);
    expect(warnings).toContainEqual(expect.stringContaining(`key.json could not be read at ${la} (`));
    expect(warnings).toContainEqual(expect.stringContaining('a new master key is made. If that destination holds the backups\' key already, it refuses backups under the new one once it answers'));
    await answerAgain();
    expect(await keyCheckOf(c)).not.toBe(await keyCheckOf(a));
    const after = await p.createBackup();
    expect(after.destinations.map((d) => d.status)).toEqual(['ok', 'failed']);
    expect(after.destinations[1]!.error).toContain(`${lc} already holds a key file for another master key`);
    expect(warnings).toContainEqual(expect.stringContaining('this backup is not written there'));
    // what c took meanwhile keeps its own key: it verifies with the passphrase
    expect((await p.verifyBackup(during.id)).verified).toBe(true);
    await first.stop();
    await p.stop();
  });

  it("a backup is noted 'only at' where every destination answered and one never got it; not while one could not be listed, which may hold it (walk-28 F7, review-29 F7)", async () => {
    const [a, b, c] = ['a', 'b', 'c'].map((n) => path.join(work, `onlyat-${n}-${Date.now()}`)) as [string, string, string];
    const quiet = { logger: { warn() {}, info() {}, error() {} } };
    const two = multi([fsSpec(a), fsSpec(b)], 'all', quiet);
    await source.usePlugin(two, `onlyat-2-${Date.now()}`);
    const both = await two.createBackup();
    const three = multi([fsSpec(a), fsSpec(b), fsSpec(c)], 'all', quiet);
    await source.usePlugin(three, `onlyat-3-${Date.now()}`);
    const [la, lb] = three.destinations.members.map((m) => m.label) as [string, string];
    expect((await three.listBackups()).find((x) => x.id === both.id)?.onlyAt).toEqual([la, lb]);
    // b cannot be listed: it may hold the backup too, so nothing is said
    const answerAgain = await stopAnswering(b);
    expect((await three.listBackups()).find((x) => x.id === both.id)?.onlyAt).toBeUndefined();
    await answerAgain();
    await two.stop();
    await three.stop();
  });

  it("the first encrypted backup to a 'priority' primary is taken while the standby does not answer, with no warning about a second key: a standby holds a key only after a failover (review-29b G2)", async () => {
    const [a, b] = ['a', 'b'].map((n) => path.join(work, `standby-${n}-${Date.now()}`)) as [string, string];
    await mkdir(path.dirname(b), { recursive: true });
    await symlink(path.basename(b), b); // the standby: every question fails (ELOOP)
    const warnings: string[] = [];
    const p = multi([fsSpec(a), fsSpec(b)], 'priority', { logger: warnInto(warnings) });
    await source.usePlugin(p, `standby-${Date.now()}`);
    const backup = await p.createBackup();
    expect(backup.destinations.map((d) => d.status)).toEqual(['ok', 'skipped']);
    expect(backup.encrypted).toBe(true);
    expect(warnings.filter((w) => w.includes('a new master key is made'))).toEqual([]); // the standby is not a key holder to wait for
    await unlink(b);
    await p.stop();
  });

  it("an unencrypted plugin's recoverBackups() says nothing of another tool's key.json, which stops no backup of it (review-md R5)", async () => {
    const dir = path.join(work, `foreign-${Date.now()}`);
    const p = new BackupPlugin({ schedule: false, config: { directory: dir }, logger: { warn() {}, info() {}, error() {} } } as never);
    plugins.push(p);
    await source.usePlugin(p, `foreign-${Date.now()}`);
    await p.createBackup();
    await writeFile(path.join(dir, 'key.json'), JSON.stringify({ type: 'service_account' }));
    expect((await p.recoverBackups()).keyFiles).toBeUndefined();
    expect((await p.createBackup({ type: 'incremental' })).type).toBe('incremental');
  });

  it('a destination that cannot be listed while the other can: listBackups() shows what the other holds and warns, naming the one it could not list', async () => {
    const { b, warnings, p } = await twoDirectories('unlisted', 'all');
    const backup = await p.createBackup();
    // a real listing failure: b's manifests/ stops answering
    await stopAnswering(path.join(b, 'manifests'));
    const listed = await p.listBackups();
    expect(listed.map((l) => l.id)).toEqual([backup.id]);
    const label = p.destinations.members[1]!.label;
    expect(warnings).toContainEqual(expect.stringMatching(new RegExp(`^a destination could not be listed \\(${literal(label)}: .*\\): the backups shown are those the others hold`)));
    await p.stop();
  });

  it("a manifest lost at one destination while another holds it: listBackups() names that destination, and a warning says recoverBackups() puts it back (review-runbook 9)", async () => {
    const { b, warnings, p } = await twoDirectories('missing', 'all');
    const backup = await p.createBackup();
    expect((await p.listBackups())[0]!.manifestMissingAt).toBeUndefined();
    await rm(path.join(b, 'manifests'), { recursive: true });
    const label = p.destinations.members[1]!.label;
    const [listed] = await p.listBackups();
    expect(listed).toMatchObject({ id: backup.id, manifestMissingAt: [label] });
    expect(warnings).toContainEqual(`the manifests of 1 backup stored at ${label} are missing there (${backup.id}): listed from the other destinations; recoverBackups() puts them back`);
    expect((await p.recoverBackups()).recovered).toEqual([backup.id]);
    expect((await p.listBackups())[0]!.manifestMissingAt).toBeUndefined();
    await p.stop();
  });

  it("a backup whose process died between its two manifest writes (committed at one destination, not the other) is finished at the other by the next cleanup, never deleted there (review-31a F1: its parts, index and copy were deleted, for good)", async () => {
    const [a, b] = [path.join(work, `split-a-${Date.now()}`), path.join(work, `split-b-${Date.now()}`)];
    const infos: string[] = [];
    const logger = { warn() {}, error() {}, info: (_o: unknown, m: string) => infos.push(m) };
    const p = multi([fsSpec(a), fsSpec(b)], 'all', { logger });
    await source.usePlugin(p, `split-${Date.now()}`);
    const backup = await p.createBackup();
    const manifest = (await p.getBackup(backup.id))!.manifest;
    // The state a SIGKILL leaves between the two writes (backup.ts writes the manifest at every
    // destination at once, then removes the markers): built on disk, since a kill cannot be aimed
    // at that instant on demand (review-31a hit it only with a write delayed by hand). The marker is
    // a dead process's on this host.
    await killedBetweenManifestWrites(a, b, manifest);
    const filesAtB = (await filesUnder(b)).filter((f) => !f.startsWith('pending/') && !f.startsWith('verifications/'));
    await p.createBackup(); // its cleanup finds both markers stale
    expect(infos.some((m) => m.includes(`backup ${backup.id} had committed at ${p.destinations.members[0]!.label} but not at ${p.destinations.members[1]!.label}`))).toBe(true);
    const after = await filesUnder(b);
    for (const f of [...filesAtB, `manifests/${backup.id}.json`]) expect(after).toContain(f);
    expect(after.filter((f) => f.startsWith('pending/'))).toEqual([]);
    expect((await p.listBackups()).find((x) => x.id === backup.id)!.manifestMissingAt).toBeUndefined();
    // b alone holds it whole
    const alone = multi([fsSpec(b)], 'all');
    await (await openDb(memoryUrl('split-reader'))).usePlugin(alone);
    expect(await alone.verifyBackup(backup.id, { level: 'full' })).toMatchObject({ verified: true });
    await p.stop();
  });

  /** Backup `id` at directory `b` as a SIGKILL between the manifest writes leaves it there (a dead process's marker, no manifest), and at `a` its marker alone (a's manifest landed). */
  const killedBetweenManifestWrites = async (a: string, b: string, manifest: { id: string; startedAt: string; parts: { path: string }[]; copy?: string }) => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const marker = { id: manifest.id, type: 'full', startedAt: manifest.startedAt, heartbeatAt: manifest.startedAt, host: hostname(), pid: dead, space: processSpace(), parts: [...manifest.parts.map((x) => x.path), manifest.copy] };
    for (const dir of [a, b]) {
      await mkdir(path.join(dir, 'pending'), { recursive: true });
      await writeFile(path.join(dir, 'pending', `${manifest.id}.json`), JSON.stringify(marker));
    }
    await unlink(path.join(b, 'manifests', `${manifest.id}.json`));
  };

  it("recoverBackups() finishes a backup killed between its manifest writes as the next cleanup would, where it refused (review-32a F2: it said the cleanup would remove it, and the command line exited 4)", async () => {
    const [a, b] = [path.join(work, `split-recover-a-${Date.now()}`), path.join(work, `split-recover-b-${Date.now()}`)];
    const p = multi([fsSpec(a), fsSpec(b)], 'any', { logger: { warn() {}, error() {}, info() {} } });
    await source.usePlugin(p, `split-recover-${Date.now()}`);
    const backup = await p.createBackup();
    await killedBetweenManifestWrites(a, b, (await p.getBackup(backup.id))!.manifest); // (built on disk, as above)
    expect((await p.listBackups()).find((x) => x.id === backup.id)!.manifestMissingAt).toEqual([p.destinations.members[1]!.label]);
    const report = await p.recoverBackups();
    expect(report.recovered).toContain(backup.id);
    expect(report.skipped).toEqual([]);
    expect(await readFile(path.join(b, 'manifests', `${backup.id}.json`), 'utf8')).toBe(await readFile(path.join(a, 'manifests', `${backup.id}.json`), 'utf8'));
    expect((await filesUnder(b)).filter((f) => f.startsWith('pending/'))).toEqual([]);
    expect((await p.listBackups()).find((x) => x.id === backup.id)!.manifestMissingAt).toBeUndefined();
    await p.stop();
  });

  it("a destination that refuses the manifest of a backup killed between its manifest writes: the cleanup says so, keeps its parts there, and goes on with the other leftovers (review-32a F1: the failure stopped the whole cleanup, for good)", async () => {
    const [a, b] = [path.join(work, `split-refused-a-${Date.now()}`), path.join(work, `split-refused-b-${Date.now()}`)];
    const warnings: string[] = [];
    const p = multi([fsSpec(a), fsSpec(b)], 'any', { retention: { count: 100 }, logger: { warn: (_o: unknown, m: string) => warnings.push(m), error() {}, info() {} } });
    await source.usePlugin(p, `split-refused-${Date.now()}`);
    const backup = await p.createBackup();
    await killedBetweenManifestWrites(a, b, (await p.getBackup(backup.id))!.manifest);
    // at b also an unfinished backup's leftovers, whose marker sorts after the committed one's
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const unfinished = 'zz-unfinished';
    await writeFile(path.join(b, 'pending', `${unfinished}.json`), JSON.stringify({ id: unfinished, type: 'full', startedAt: new Date(0).toISOString(), heartbeatAt: new Date(0).toISOString(), host: hostname(), pid: dead, space: processSpace(), parts: ['data/zz-unfinished.part'] }));
    await writeFile(path.join(b, 'data', 'zz-unfinished.part'), 'leftover');
    const filesAtB = (await filesUnder(b)).filter((f) => f.includes(backup.id) && !f.startsWith('pending/'));
    const { execFileSync } = await import('node:child_process');
    execFileSync('chattr', ['+i', path.join(b, 'manifests')]); // b refuses the manifest write (a real refusal, even for root)
    try {
      await p.prune(); // (its cleanup)
    } finally {
      execFileSync('chattr', ['-i', path.join(b, 'manifests')]);
    }
    expect(warnings).toContainEqual(expect.stringMatching(new RegExp(`^cleanup of leftovers: could not finish backup ${backup.id} at ${literal(p.destinations.members[1]!.label)}, committed at ${literal(p.destinations.members[0]!.label)} \\(the process ended between the two manifest writes\\): writing its manifest there failed \\(.+\\); its parts there are kept`)));
    const after = await filesUnder(b);
    for (const f of filesAtB) expect(after).toContain(f);
    expect(after.filter((f) => f.includes('zz-unfinished'))).toEqual([]); // the other marker's leftovers went
    await p.prune(); // b takes writes again: finished there
    expect(await readFile(path.join(b, 'manifests', `${backup.id}.json`), 'utf8')).toBe(await readFile(path.join(a, 'manifests', `${backup.id}.json`), 'utf8'));
    await p.stop();
  });

  it("a priority backup's start probe a kill left behind is deleted by the cleanup once stale, not kept for ever (review-32a F4)", async () => {
    const [a, b] = [path.join(work, `probe-a-${Date.now()}`), path.join(work, `probe-b-${Date.now()}`)];
    const p = multi([fsSpec(a), fsSpec(b)], 'priority', { retention: { count: 100 }, staleAfterMs: 60_000, logger: { warn() {}, error() {}, info() {} } });
    await source.usePlugin(p, `probe-${Date.now()}`);
    await p.createBackup();
    // as a SIGKILL between the probe's write and its deletion leaves it (backup.ts beginBackup; built on disk)
    const [old, fresh] = ['pending/old.probe.json', 'pending/fresh.plan.probe.json'].map((f) => path.join(a, f)) as [string, string];
    await mkdir(path.join(a, 'pending'), { recursive: true });
    await writeFile(old, 'probe');
    await writeFile(fresh, 'probe');
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(old, hourAgo, hourAgo);
    await p.prune(); // (its cleanup)
    expect((await filesUnder(a)).filter((f) => f.startsWith('pending/'))).toEqual(['pending/fresh.plan.probe.json']);
    await p.stop();
  });

  it("a deletion killed after its marker landed at one destination only is finished at every destination by the next cleanup, not at that one alone (review-32a F3: the backup stayed listed from the other, 'manifest missing')", async () => {
    const [a, b] = [path.join(work, `half-deleted-a-${Date.now()}`), path.join(work, `half-deleted-b-${Date.now()}`)];
    const p = multi([fsSpec(a), fsSpec(b)], 'all', { logger: { warn() {}, error() {}, info() {} } }); // (no retention: no prune follows)
    await source.usePlugin(p, `half-deleted-${Date.now()}`);
    const full = await p.createBackup({ type: 'full' });
    const manifest = (await p.getBackup(full.id))!.manifest;
    // what remove() leaves when killed after its marker landed at a, before b's (built on disk: a
    // kill cannot be aimed at that instant on demand)
    const parts = [...manifest.parts.map((x) => x.path), manifest.copy];
    await mkdir(path.join(a, 'pending'), { recursive: true });
    await writeFile(path.join(a, 'pending', `${full.id}.json`), JSON.stringify({ id: full.id, type: 'full', startedAt: manifest.startedAt, heartbeatAt: new Date(0).toISOString(), host: hostname(), pid: 0, parts, deleting: true }));
    const next = await p.createBackup({ type: 'full' }); // its cleanup
    expect((await p.listBackups()).map((x) => x.id)).toEqual([next.id]);
    for (const dir of [a, b]) expect((await filesUnder(dir)).filter((f) => f.includes(full.id))).toEqual([]);
    expect((await p.recoverBackups()).recovered).toEqual([]);
    await p.stop();
  });

  it("a copy killed between the manifest writes is not finished from a destination where the backup's deletion was cut short: the deletion is finished at both (review-31b F2)", async () => {
    const [a, b] = [path.join(work, `deleting-a-${Date.now()}`), path.join(work, `deleting-b-${Date.now()}`)];
    const p = multi([fsSpec(a), fsSpec(b)], 'all', { retention: { count: 100 }, logger: { warn() {}, error() {}, info() {} } });
    await source.usePlugin(p, `deleting-${Date.now()}`);
    const backup = await p.createBackup();
    const manifest = (await p.getBackup(backup.id))!.manifest;
    // built on disk (no kill can be aimed at these instants): at a, a dead process's marker and no
    // manifest (killed between the manifest writes); at b, the marker of a deletion of it that died
    // before deleting anything (a could not be marked)
    const parts = [...manifest.parts.map((x) => x.path), manifest.copy];
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await mkdir(path.join(a, 'pending'), { recursive: true });
    await writeFile(path.join(a, 'pending', `${backup.id}.json`), JSON.stringify({ id: backup.id, type: 'full', startedAt: manifest.startedAt, heartbeatAt: manifest.startedAt, host: hostname(), pid: dead, space: processSpace(), parts }));
    await unlink(path.join(a, 'manifests', `${backup.id}.json`));
    await mkdir(path.join(b, 'pending'), { recursive: true });
    await writeFile(path.join(b, 'pending', `${backup.id}.json`), JSON.stringify({ id: backup.id, type: 'full', startedAt: manifest.startedAt, heartbeatAt: new Date(0).toISOString(), host: hostname(), pid: 0, parts, deleting: true }));
    const pruned = await p.prune();
    expect(pruned.deleted).toContain(backup.id);
    expect((await p.listBackups()).find((x) => x.id === backup.id)).toBeUndefined();
    for (const dir of [a, b]) expect((await filesUnder(dir)).filter((f) => f.includes(backup.id))).toEqual([]);
    await p.stop();
  });

  it("a committed backup's second copy deleted whole (as cleanups before review-31a F1 could): recoverBackups() says it cannot come back there, where it said nothing", async () => {
    const { b, p } = await twoDirectories('legacy-split', 'all');
    const backup = await p.createBackup();
    const manifest = (await p.getBackup(backup.id))!.manifest;
    for (const f of [...manifest.parts.map((x) => x.path), manifest.index.path, manifest.copy!, `manifests/${backup.id}.json`]) await unlink(path.join(b, f));
    const label = p.destinations.members[1]!.label;
    const report = await p.recoverBackups();
    expect(report.recovered).toEqual([]);
    expect(report.skipped).toContainEqual(expect.objectContaining({ id: backup.id, destination: label, lost: 'here', reason: expect.stringContaining('none of its parts is there') }));
    await p.stop();
  });

  it('a prune while a destination cannot be listed warns that what it removes stays there (review-retention 5)', async () => {
    const { b, warnings, p } = await twoDirectories('unlisted-prune', 'any', { retention: { count: 1 } });
    await p.createBackup();
    const newest = await p.createBackup();
    // a real listing failure: b's manifests/ stops answering
    await stopAnswering(path.join(b, 'manifests'));
    const plan = await p.prune({ dryRun: true });
    expect(plan.keep.map((k) => k.id)).toEqual([newest.id]);
    const label = p.destinations.members[1]!.label;
    expect(warnings).toContainEqual(expect.stringContaining(`a destination could not be listed (${label}: `));
    expect(warnings).toContainEqual(expect.stringContaining(`retention applies to the backups the others hold, and what it removes stays at ${label} until a prune after it answers again`));
    await p.stop();
  });

  it("'any': a destination that fails at the manifest write itself is recorded as failed in the manifest the others store, not 'ok'", async () => {
    // manifests/ refused: everything else goes in, the commit does not
    await withRefusedFolder('manifests', async (good, failing, p) => {
      const backup = await p.createBackup();
      expect(backup.destinations.map((d) => d.status)).toEqual(['ok', 'failed']);
      const stored = JSON.parse(await readFile(path.join(good, 'manifests', `${backup.id}.json`), 'utf8')) as { destinations: { status: string }[]; copy: string };
      expect(stored.destinations.map((d) => d.status)).toEqual(['ok', 'failed']);
      expect(await readFile(path.join(good, stored.copy), 'utf8')).toBe(await readFile(path.join(good, 'manifests', `${backup.id}.json`), 'utf8'));
      const fresh = multi([fsSpec(good), fsSpec(failing)], 'any');
      await source.usePlugin(fresh, `commit-fails-reader-${Date.now()}`);
      expect((await fresh.getBackup(backup.id))!.manifest.destinations.map((d) => d.status)).toEqual(['ok', 'failed']);
      const verified = await fresh.verifyBackup(backup.id);
      expect(verified.verified).toBe(true);
      expect(verified.damagedCopies).toBeUndefined();
      await fresh.stop();
    });
  });

  it("'all' fails with the same breakage, commits nothing, and calls onFailure", async () => {
    const broken = await brokenDirectory('all');
    const failures: Error[] = [];
    const p = multi([s3Spec('all-broken/'), fsSpec(broken)], 'all', { webhooks: { onFailure: (e: Error) => failures.push(e) } });
    await source.usePlugin(p);
    const err = await p.createBackup().then(
      () => null,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(err).not.toBeNull();
    expect(err!.message).toMatch(/not a directory|ENOTDIR/i);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.message).toBe(err!.message);
    const left = await listKeys(admin, bucket, 'all-broken/');
    expect(left.filter((k) => /^all-broken\/(manifests|data|indexes|pending)\//.test(k))).toEqual([]);
    expect(await p.listBackups()).toEqual([]);
  });
});

describe("strategy 'priority'", () => {
  it('writes only to the first destination when it works', async () => {
    const dir = path.join(work, 'priority-first');
    const p = multi([fsSpec(dir), s3Spec('priority-second/')], 'priority');
    await source.usePlugin(p);
    const backup = await p.createBackup();
    const [fsDest, s3Dest] = p.destinations.members as [Destination, Destination];
    expect(backup.destinations).toEqual([
      { label: fsDest.label, status: 'ok' },
      { label: s3Dest.label, status: 'skipped' },
    ]);
    expect(await filesUnder(path.join(dir, 'manifests'))).toEqual([`${backup.id}.json`]);
    expect((await listKeys(admin, bucket, 'priority-second/')).filter((k) => /\/(manifests|data|indexes)\//.test(k))).toEqual([]);
    // at one destination by design: not noted "only at" (review-29 F7)
    expect((await p.listBackups()).map((b) => b.onlyAt)).toEqual([undefined]);
  });

  for (const lease of [false, true]) {
    it(`goes to the second destination only when the first is broken (lease ${lease ? 'on' : 'off'})`, async () => {
      const dir = path.join(work, `priority-fallback-${String(lease)}`);
      await mkdir(dir, { recursive: true });
      const specs = () => [s3Spec('nowhere/', `missing-bucket-${process.pid}-${String(lease)}`), fsSpec(dir)];
      const p = multi(specs(), 'priority', lease ? {} : { lease: false });
      await source.usePlugin(p);
      const backup = await p.createBackup();
      const [s3Dest, fsDest] = p.destinations.members as [Destination, Destination];
      expect(backup.destinations).toEqual([
        { label: s3Dest.label, status: 'skipped' },
        { label: fsDest.label, status: 'ok' },
      ]);
      expect(await filesUnder(path.join(dir, 'manifests'))).toEqual([`${backup.id}.json`]);
      const { snap } = await restoreFresh(() => multi(specs(), 'priority', lease ? {} : { lease: false }), backup.id);
      expect(snap).toEqual(expected);
    });
  }
});

describe('option names', () => {
  it("takes `destinations` + `strategy` at the top level, and s3db.js's own `config: { destinations, strategy }`", () => {
    const dir = path.join(work, 'names');
    const top = multi([fsSpec(dir), s3Spec('names/')], 'any');
    expect(top.destinations.strategy).toBe('any');
    expect(top.destinations.members.map((m) => m.driver)).toEqual(['filesystem', 's3']);
    // s3db.js's BackupPlugin: new BackupPlugin({ driver: 'multi', config: { strategy, destinations } })
    const s3dbStyle = new BackupPlugin({ schedule: false, driver: 'multi', config: { strategy: 'any', destinations: [fsSpec(dir), s3Spec('names/')] } } as never);
    plugins.push(s3dbStyle);
    expect(s3dbStyle.destinations.strategy).toBe('any');
    expect(s3dbStyle.destinations.members.map((m) => m.label)).toEqual(top.destinations.members.map((m) => m.label));
  });
});
