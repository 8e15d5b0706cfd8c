// An encrypted backup's manifest is authenticated under its master key (FORMAT.md 1.1 `auth`,
// src/engine/manifest-auth.ts): on the real s3db.js and a real filesystem destination, manifests
// edited by hand, as someone who can write to the destination would (review-secrets F1), are
// refused by verification and by restores (with or without `verify`) before anything is written.
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import { paths } from '../src/engine/layout.js';
import { openDb, seedDatabase, snapshot } from './helpers/database.js';
import { warnInto } from './helpers/logger.js';

const PASSPHRASE = 'manifest-auth-passphrase';
let work: string;
let seq = 0;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'manifest-auth-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

type Part = { path: string; group: string; size: number; sha256: string; objects: number };
type StoredManifest = { id: string; auth?: string; copy: string; parts: Part[]; s3dbJson: { resources: Record<string, { currentVersion: string; versions: Record<string, { attributes: Record<string, unknown> }> }> } };

function plugin(directory: string, passphrase: string | null = PASSPHRASE, warnings: string[] = []): BackupPlugin {
  return new BackupPlugin({ schedule: false, config: { directory }, logger: warnInto(warnings), ...(passphrase ? { encryption: { passphrase, iterations: 100_000 } } : {}) });
}

/** Two full backups of one database, the users changed between them; a fresh plugin reads them. */
async function twoBackups(passphrase: string | null = PASSPHRASE) {
  const dir = path.join(work, `dest-${++seq}`);
  const db = await openDb(`memory://manifest-auth-${process.pid}-${seq}/db`);
  await seedDatabase(db, { users: 4, orders: 4, perBehavior: 1 });
  const maker = plugin(dir, passphrase);
  await db.usePlugin(maker, 'maker');
  const first = await maker.createBackup();
  await (db.resources.users as unknown as { update(id: string, v: object): Promise<unknown> }).update('u00001', { name: 'changed after the first backup' });
  const second = await maker.createBackup();
  await maker.stop();
  const file = path.join(dir, paths.manifest(second.id));
  const read = async (id: string) => JSON.parse(await readFile(path.join(dir, paths.manifest(id)), 'utf8')) as StoredManifest;
  return { dir, db, first: first.id, second: second.id, file, read };
}

async function emptyTarget() {
  const into = await openDb(`memory://manifest-auth-into-${process.pid}-${++seq}/db`);
  return { into, before: await snapshot(into) };
}

describe('an encrypted backup whose manifest was edited', () => {
  it("with another backup's part put in place and the part list edited to match: verification fails naming the manifest, restores (with and without verify) write nothing", async () => {
    const { dir, db, first, second, file, read } = await twoBackups();
    const [older, newer] = [await read(first), await read(second)];
    expect(newer.auth).toEqual(expect.any(String));
    const from = older.parts.find((p) => p.group === 'users')!;
    const to = newer.parts.find((p) => p.group === 'users')!;
    await copyFile(path.join(dir, from.path), path.join(dir, to.path));
    Object.assign(to, { size: from.size, sha256: from.sha256, objects: from.objects });
    // the manifest and its copy beside the parts (an intact copy would be used instead: below)
    for (const at of [file, path.join(dir, newer.copy)]) await writeFile(at, JSON.stringify(newer, null, 1));
    const p = plugin(dir);
    await db.usePlugin(p, 'reader');
    for (const level of ['quick', 'full'] as const) {
      const result = await p.verifyBackup(second, { level });
      expect(result.verified).toBe(false);
      expect(result.error).toContain(`the manifest of ${second} cannot be trusted: it was changed after its backup wrote it`);
    }
    for (const verify of [true, false]) {
      const { into, before } = await emptyTarget();
      await expect(p.restore({ backupId: second, destination: into, verify })).rejects.toMatchObject({ code: 'ERR_VERIFY_FAILED', message: expect.stringContaining('cannot be trusted') });
      expect(await snapshot(into)).toEqual(before);
    }
    await p.stop();
  });

  it("with a resource's definition edited (what a resources restore writes into s3db.json): refused before anything is written", async () => {
    const { dir, db, second, file, read } = await twoBackups();
    const m = await read(second);
    const users = m.s3dbJson.resources.users!;
    users.versions[users.currentVersion]!.attributes.evil = 'string';
    for (const at of [file, path.join(dir, m.copy)]) await writeFile(at, JSON.stringify(m, null, 1));
    const p = plugin(dir);
    await db.usePlugin(p, 'reader');
    const { into, before } = await emptyTarget();
    await expect(p.restore({ backupId: second, destination: into, resources: ['users'], verify: false })).rejects.toMatchObject({ code: 'ERR_VERIFY_FAILED' });
    expect(await snapshot(into)).toEqual(before);
    await p.stop();
  });

  it('untouched, it restores exactly; without its auth (as written before revision 8) it restores with a warning saying it is not authenticated', async () => {
    const { dir, db, second, file, read } = await twoBackups();
    const p = plugin(dir);
    await db.usePlugin(p, 'reader');
    const want = await snapshot(db);
    const { into } = await emptyTarget();
    const report = await p.restore({ backupId: second, destination: into });
    expect(report.warnings.join('\n')).not.toContain('authenticated');
    expect(await snapshot(into)).toEqual(want);
    await p.stop();
    // as written before revision 8: neither the manifest nor its copy beside the parts has it
    const { auth: _auth, ...stripped } = await read(second);
    for (const at of [file, path.join(dir, stripped.copy)]) await writeFile(at, JSON.stringify(stripped, null, 1));
    const logged: string[] = [];
    const q = plugin(dir, PASSPHRASE, logged);
    await db.usePlugin(q, 'stripped');
    const again = await emptyTarget();
    const warned = await q.restore({ backupId: second, destination: again.into });
    expect(warned.warnings).toContainEqual(expect.stringContaining('no authentication tag: it was written before manifests were authenticated (FORMAT.md revision 8), or the tag was stripped'));
    expect((await q.verifyBackup(second)).verified).toBe(true);
    expect(logged).toContainEqual(expect.stringContaining(`verification of ${second}: the manifest of ${second} has no authentication tag`));
    expect(await snapshot(again.into)).toEqual(want);
    await q.stop();
  });

  it("without its auth (as written before revision 8), an incremental whose part was replaced by its parent's (part list edited to match) fails verification (its index and parts disagree), so a restore writes nothing; without verify, the restore stops at the first object its index places elsewhere", async () => {
    const dir = path.join(work, `dest-${++seq}`);
    const db = await openDb(`memory://manifest-auth-${process.pid}-${seq}/db`);
    await seedDatabase(db, { users: 4, orders: 4, perBehavior: 1 });
    const maker = new BackupPlugin({ schedule: false, type: 'incremental', config: { directory: dir }, logger: warnInto([]), encryption: { passphrase: PASSPHRASE, iterations: 100_000 } });
    await db.usePlugin(maker, 'maker');
    await maker.createBackup();
    const users = db.resources.users as unknown as { update(id: string, v: object): Promise<unknown> };
    await users.update('u00001', { name: 'in the first incremental' });
    const i1 = await maker.createBackup();
    await users.update('u00002', { name: 'in the second incremental' });
    const i2 = await maker.createBackup();
    await maker.stop();
    const read = async (id: string) => JSON.parse(await readFile(path.join(dir, paths.manifest(id)), 'utf8')) as StoredManifest;
    const [m1, m2] = [await read(i1.id), await read(i2.id)];
    const from = m1.parts.find((p) => p.group === 'users')!;
    const to = m2.parts.find((p) => p.group === 'users')!;
    await copyFile(path.join(dir, from.path), path.join(dir, to.path));
    Object.assign(to, { size: from.size, sha256: from.sha256, objects: from.objects });
    delete m2.auth;
    for (const at of [paths.manifest(i2.id), m2.copy]) await writeFile(path.join(dir, at), JSON.stringify(m2, null, 1));
    const p = plugin(dir);
    await db.usePlugin(p, 'reader');
    // each part is a good stream of its counted records; the parent's part holds u00001's version, which i2's index places in i1
    const verdict = await p.verifyBackup(i2.id);
    expect(verdict).toMatchObject({ verified: false, error: expect.stringContaining(`the index and the parts of backup ${i2.id} disagree: its index names ${i1.id} for a key (not named: the backup is encrypted), and its own parts hold a version of it`) });
    expect(verdict.error).not.toContain('u0000'); // an encrypted backup's keys (record ids) are not named: results are stored in plaintext
    const { into, before } = await emptyTarget();
    const refused = await p.restore({ backupId: i2.id, destination: into }).then(() => null, (e: unknown) => e as Error & { code?: string });
    expect(refused).toMatchObject({ code: 'ERR_VERIFY_FAILED', message: expect.stringContaining('disagree') });
    expect(await snapshot(into)).toEqual(before);
    const failed = await p.restore({ backupId: i2.id, destination: into, verify: false }).then(() => null, (e: unknown) => e as Error & { code?: string });
    expect(failed).toMatchObject({ code: 'ERR_INDEX_CORRUPT', message: expect.stringContaining(`index says its version is stored by`) });
    // what was written came from the damaged backup: running it again would stop at the same place
    expect(failed!.message).toMatch(/objects were already written from it: the target is partly restored; restore another backup into it, mode 'replace'\)$/);
    await p.stop();
  });

  it("what a caller does to the listing's and getBackup()'s objects changes nothing the plugin believes was stored: the backup still verifies and restores", async () => {
    const { dir, db, second } = await twoBackups();
    const p = plugin(dir);
    await db.usePlugin(p, 'caller');
    const item = (await p.listBackups()).find((b) => b.id === second)!;
    item.tags.push('edited by the caller');
    (item.source as Record<string, unknown>).bucket = 'elsewhere';
    const got = (await p.getBackup(second))!;
    (got.destinations[0] as Record<string, unknown>).shownAs = 'primary';
    got.manifest.parts.reverse();
    expect((await p.verifyBackup(second)).verified).toBe(true);
    const { into } = await emptyTarget();
    await p.restore({ backupId: second, destination: into });
    expect((await p.getBackup(second))!.tags).not.toContain('edited by the caller');
    await p.stop();
  });

  it('quick verification with a passphrase set checks it: a wrong one is refused, as full verification does', async () => {
    const { dir, db, second } = await twoBackups();
    const p = plugin(dir, 'not the passphrase');
    await db.usePlugin(p, 'wrong');
    await expect(p.verifyBackup(second, { level: 'quick' })).rejects.toMatchObject({ code: 'ERR_WRONG_PASSPHRASE' });
    await p.stop();
  });

  it('a backup that is not encrypted (one put in place of an encrypted one, or taken before encryption), restored by a plugin with a passphrase: refused, dry run included; with allowPlaintext, restored with a warning that nothing authenticates it', async () => {
    const { dir, db, second } = await twoBackups(null);
    const p = plugin(dir);
    await db.usePlugin(p, 'with-key');
    const { into, before } = await emptyTarget();
    for (const dryRun of [true, false]) {
      await expect(p.restore({ backupId: second, destination: into, dryRun })).rejects.toMatchObject({ code: 'ERR_NOT_ENCRYPTED', message: expect.stringContaining('allowPlaintext: true') });
    }
    expect(await snapshot(into)).toEqual(before);
    const report = await p.restore({ backupId: second, destination: into, allowPlaintext: true });
    expect(report.warnings).toContainEqual(expect.stringContaining(`${second} is not encrypted, so nothing authenticates it`));
    expect(await snapshot(into)).toEqual(await snapshot(db));
    await p.stop();
  });
});

describe('an edited manifest with an intact copy elsewhere', () => {
  /** Edits backup `id`'s manifest as stored at `dir`: its users part replaced by `from`'s (part list edited to match), or only a definition. */
  async function forge(dir: string, id: string, from: string | null): Promise<StoredManifest> {
    const read = async (of: string) => JSON.parse(await readFile(path.join(dir, paths.manifest(of)), 'utf8')) as StoredManifest;
    const m = await read(id);
    if (from) {
      const source = (await read(from)).parts.find((p) => p.group === 'users')!;
      const to = m.parts.find((p) => p.group === 'users')!;
      await copyFile(path.join(dir, source.path), path.join(dir, to.path));
      Object.assign(to, { size: source.size, sha256: source.sha256, objects: source.objects });
    }
    const users = m.s3dbJson.resources.users!;
    users.versions[users.currentVersion]!.attributes.evil = 'string';
    return m;
  }

  it('with two destinations, edited at the one read first (its part list, and the copy beside the parts its definitions): the intact manifest at the other is used; verification names both edited copies, the restore writes the backup as it was taken', async () => {
    const dirs = [path.join(work, `multi-${++seq}-a`), path.join(work, `multi-${seq}-b`)] as const;
    const multi = () =>
      new BackupPlugin({ schedule: false, driver: 'multi', destinations: dirs.map((directory) => ({ driver: 'filesystem', config: { directory } })), encryption: { passphrase: PASSPHRASE, iterations: 100_000 } });
    const db = await openDb(`memory://manifest-auth-multi-${process.pid}-${seq}/db`);
    await seedDatabase(db, { users: 4, orders: 4, perBehavior: 1 });
    const maker = multi();
    await db.usePlugin(maker, 'maker');
    const first = await maker.createBackup();
    await (db.resources.users as unknown as { update(id: string, v: object): Promise<unknown> }).update('u00001', { name: 'changed after the first backup' });
    const second = await maker.createBackup();
    await maker.stop();
    const definitionOnly = await forge(dirs[0], second.id, null);
    const edited = await forge(dirs[0], second.id, first.id);
    await writeFile(path.join(dirs[0], paths.manifest(second.id)), JSON.stringify(edited, null, 1));
    await writeFile(path.join(dirs[0], edited.copy), JSON.stringify(definitionOnly, null, 1));

    const p = multi();
    await db.usePlugin(p, 'reader');
    const result = await p.verifyBackup(second.id, { level: 'full' });
    expect(result.verified).toBe(true);
    expect(result.damagedCopies).toEqual([
      expect.objectContaining({ backupId: second.id, label: expect.stringContaining(dirs[0]), error: expect.stringMatching(/\/users\.\d+ at .* has \d+ bytes, the manifest says \d+/) }),
      expect.objectContaining({ backupId: second.id, label: expect.stringContaining(dirs[0]), error: expect.stringContaining(`${paths.manifest(second.id)} differs from the one verified`) }),
      expect.objectContaining({ backupId: second.id, label: expect.stringContaining(dirs[0]), error: expect.stringContaining(`${edited.copy} does not authenticate`) }),
    ]);
    const { into } = await emptyTarget();
    await p.restore({ backupId: second.id, destination: into });
    expect(await snapshot(into)).toEqual(await snapshot(db));
    expect(JSON.stringify((into as unknown as { savedMetadata: unknown }).savedMetadata)).not.toContain('evil');
    await p.stop();
  });

  it("with two destinations, edited at the one read first with its auth stripped (as if older than revision 8), or with its key check edited: the intact manifest at the other is used, and recoverBackups() does not spread the stripped one over the authentic copy (review-s19 F1, F2)", async () => {
    for (const damage of ['stripped', 'key check'] as const) {
      const dirs = [path.join(work, `strip-${++seq}-a`), path.join(work, `strip-${seq}-b`)] as const;
      const multi = () =>
        new BackupPlugin({ schedule: false, driver: 'multi', destinations: dirs.map((directory) => ({ driver: 'filesystem', config: { directory } })), encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, logger: { warn() {}, info() {}, error() {} } });
      const db = await openDb(`memory://manifest-auth-strip-${process.pid}-${seq}/db`);
      await seedDatabase(db, { users: 4, orders: 4, perBehavior: 1 });
      const maker = multi();
      await db.usePlugin(maker, 'maker');
      const backup = await maker.createBackup();
      await maker.stop();
      const file = path.join(dirs[0], paths.manifest(backup.id));
      const edited = (await forge(dirs[0], backup.id, null)) as StoredManifest & { encryption: { keyCheck: string; keyFile: { keyCheck: string } } };
      if (damage === 'stripped') delete edited.auth;
      else edited.encryption.keyCheck = edited.encryption.keyFile.keyCheck = Buffer.alloc(32, 7).toString('base64');
      await writeFile(file, JSON.stringify(edited, null, 1));
      const copyBefore = await readFile(path.join(dirs[0], edited.copy), 'utf8');

      const p = multi();
      await db.usePlugin(p, 'reader');
      const result = await p.verifyBackup(backup.id, { level: 'full' });
      expect(result.verified, damage).toBe(true);
      expect(result.damagedCopies, damage).toContainEqual(
        expect.objectContaining({ label: expect.stringContaining(dirs[0]), error: expect.stringContaining(`${paths.manifest(backup.id)} does not authenticate under the backup's key (edited after its backup wrote it): delete it, and recoverBackups() puts it back from the copy beside the parts there`) }),
      );
      const { into } = await emptyTarget();
      await p.restore({ backupId: backup.id, destination: into, resources: ['users'] });
      expect(JSON.stringify((into as unknown as { savedMetadata: unknown }).savedMetadata), damage).not.toContain('evil');
      // recover cannot tell which of the manifest and its copy was edited (no key): it leaves the copy;
      // deleting the edited manifest, as verification said, puts the authentic one back
      await p.recoverBackups();
      expect(await readFile(path.join(dirs[0], edited.copy), 'utf8'), damage).toBe(copyBefore);
      await rm(file);
      await p.recoverBackups();
      expect(await readFile(file, 'utf8'), damage).toBe(copyBefore);
      await p.stop();
    }
  });

  it('with one destination, the manifest made to look unencrypted (encryption and auth dropped) and its copy intact: the copy is used, and the restore goes on', async () => {
    const { dir, db, second, file } = await twoBackups();
    const { encryption: _encryption, auth: _auth, ...plain } = JSON.parse(await readFile(file, 'utf8')) as StoredManifest & { encryption: unknown };
    await writeFile(file, JSON.stringify(plain, null, 1));
    const p = plugin(dir);
    await db.usePlugin(p, 'reader');
    const { into } = await emptyTarget();
    const report = await p.restore({ backupId: second, destination: into });
    expect(report.warnings.join('\n')).not.toContain('not encrypted');
    expect(await snapshot(into)).toEqual(await snapshot(db));
    await p.stop();
  });

  it('with one destination, the manifest edited and its copy beside the parts intact: the copy is used, and verification names the edited manifest', async () => {
    const { dir, db, second, file } = await twoBackups();
    await writeFile(file, JSON.stringify(await forge(dir, second, null), null, 1));
    const p = plugin(dir);
    await db.usePlugin(p, 'reader');
    const result = await p.verifyBackup(second, { level: 'quick' });
    expect(result).toMatchObject({ verified: true, damagedCopies: [{ backupId: second, error: expect.stringContaining(`${paths.manifest(second)} does not authenticate`) }] });
    const { into } = await emptyTarget();
    await p.restore({ backupId: second, destination: into, resources: ['users'] });
    expect(JSON.stringify((into as unknown as { savedMetadata: unknown }).savedMetadata)).not.toContain('evil');
    await p.stop();
  });
});
