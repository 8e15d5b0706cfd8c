// What a passphrase opens, on the real s3db.js and a real filesystem destination (review-secrets):
// after a rewrap the old passphrase takes no backup at all (it took incrementals, answered by a
// key opened from an older manifest's copy, and failed only at the next full); a wrong passphrase
// is not reported as a key rotation; and a key.json the passphrase does not open, while the copy
// the newest manifest embeds does, is named with both ways out (rewrapped, or damaged); one
// damaged inside a field (still JSON) is told apart from a rewrap and put back by recover.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import { rewrapAll } from '../src/cli/rewrap.js';
import { openDb, seedDatabase } from './helpers/database.js';
import { warnInto } from './helpers/logger.js';

type KeyFileJson = { keyCheck: string; kdf: { salt: string; iterations: number }; wrap: { ciphertext: string } };

const OLD = 'keyring-old-passphrase';
const NEW = 'keyring-new-passphrase';
let work: string;
let seq = 0;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'keyring-passphrase-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function plugin(directory: string, passphrase: string, warnings: string[] = []): BackupPlugin {
  return new BackupPlugin({ schedule: false, type: 'incremental', config: { directory }, encryption: { passphrase, iterations: 100_000 }, logger: warnInto(warnings) });
}

async function encryptedChain() {
  const dir = path.join(work, `dest-${++seq}`);
  const db = await openDb(`memory://keyring-${process.pid}-${seq}/db`);
  await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
  const maker = plugin(dir, OLD);
  await db.usePlugin(maker, 'maker');
  const full = await maker.createBackup();
  await maker.createBackup();
  await maker.stop();
  return { dir, db, full };
}

describe('passphrases and key.json', () => {
  it('after a rewrap, the old passphrase takes no incremental (and no full); the new one takes both and restores the old backups', async () => {
    const { dir, db, full } = await encryptedChain();
    const admin = plugin(dir, OLD);
    await db.usePlugin(admin, 'admin');
    await rewrapAll(admin, OLD, NEW);
    await admin.stop();
    const stale = plugin(dir, OLD);
    await db.usePlugin(stale, 'stale');
    await expect(stale.createBackup()).rejects.toMatchObject({ code: 'ERR_WRONG_PASSPHRASE', message: expect.stringContaining('rewrapped to a new passphrase') });
    await expect(stale.createBackup({ type: 'full' })).rejects.toMatchObject({ code: 'ERR_WRONG_PASSPHRASE' });
    await stale.stop();
    const current = plugin(dir, NEW);
    await db.usePlugin(current, 'current');
    expect((await current.createBackup()).type).toBe('incremental');
    expect((await current.verifyBackup(full.id)).verified).toBe(true);
    await current.stop();
  });

  it('a passphrase ending with a newline (a secret file read as it is) is warned about at install, without the passphrase in the warning', async () => {
    const warnings: string[] = [];
    const db = await openDb(`memory://keyring-newline-${process.pid}-${++seq}/db`);
    const p = plugin(path.join(work, `dest-${seq}`), 'secret-from-a-file\n', warnings);
    await db.usePlugin(p);
    expect(warnings).toContainEqual(expect.stringContaining('encryption.passphrase ends with a newline'));
    expect(warnings.join('\n')).not.toContain('secret-from-a-file');
    await p.stop();
  });

  it('a wrong passphrase on an incremental is refused without a warning that the key was rotated', async () => {
    const { dir, db } = await encryptedChain();
    const warnings: string[] = [];
    const wrong = plugin(dir, 'not the passphrase', warnings);
    await db.usePlugin(wrong, 'wrong');
    await expect(wrong.createBackup()).rejects.toMatchObject({ code: 'ERR_WRONG_PASSPHRASE' });
    expect(warnings.join('\n')).not.toContain('rotated');
    await wrong.stop();
  });

  // walk-33 F1: one character changed inside a field leaves valid JSON; each was taken for another
  // wrapping (or named without the way out), and recover said there was nothing to put back
  const damages: Record<string, (f: KeyFileJson) => void> = {
    'keyCheck, a digit made uppercase (no longer well formed)': (f) => (f.keyCheck = f.keyCheck.slice(0, 5) + 'A' + f.keyCheck.slice(6)),
    'keyCheck, another hex digit (opens, but is not its key)': (f) => (f.keyCheck = f.keyCheck.slice(0, 5) + (f.keyCheck[5] === '0' ? '1' : '0') + f.keyCheck.slice(6)),
    'one bit of the wrapped key': (f) => {
      const bytes = Buffer.from(f.wrap.ciphertext, 'base64');
      bytes[0]! ^= 0x01;
      f.wrap.ciphertext = bytes.toString('base64');
    },
    'one character of the salt': (f) => (f.kdf.salt = f.kdf.salt.slice(0, 5) + (f.kdf.salt[5] === 'A' ? 'B' : 'A') + f.kdf.salt.slice(6)),
    'the iteration count': (f) => (f.kdf.iterations += 1),
  };
  for (const [what, damage] of Object.entries(damages)) {
    it(`a key.json damaged in ${what}: backups are refused with ERR_BAD_KEY_FILE naming it and recover; recoverBackups() puts it back; backups go on`, async () => {
      const { dir, db } = await encryptedChain();
      const file = path.join(dir, 'key.json');
      const original = await readFile(file, 'utf8');
      const keyFile = JSON.parse(original) as KeyFileJson;
      damage(keyFile);
      await writeFile(file, JSON.stringify(keyFile, null, 2));
      const p = plugin(dir, OLD);
      await db.usePlugin(p, 'after-damage');
      await expect(p.createBackup()).rejects.toMatchObject({ code: 'ERR_BAD_KEY_FILE', message: expect.stringMatching(/^key\.json at filesystem:.* (is unreadable|is damaged).*recoverBackups\(\) puts it back/) });
      const label = p.destinations.members[0]!.label;
      expect((await p.recoverBackups()).keyFiles).toEqual({ mended: [{ destination: label, from: "the key file the newest encrypted backup's manifest embeds" }], left: [] });
      expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(JSON.parse(original));
      expect((await p.createBackup()).verified).toBe(true);
      await p.stop();
    });
  }

  describe('with two destinations', () => {
    const twoPlaces = (a: string, b: string, passphrase: string) =>
      new BackupPlugin({ schedule: false, type: 'incremental', driver: 'multi', destinations: [{ driver: 'filesystem', config: { directory: a } }, { driver: 'filesystem', config: { directory: b } }], encryption: { passphrase, iterations: 100_000 } });
    async function twoCopies() {
      const [a, b] = [path.join(work, `two-a-${++seq}`), path.join(work, `two-b-${seq}`)];
      const db = await openDb(`memory://keyring-two-${process.pid}-${seq}/db`);
      await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
      const maker = twoPlaces(a, b, OLD);
      await db.usePlugin(maker, 'maker');
      await maker.createBackup();
      await maker.stop();
      return { a, b, db };
    }

    for (const what of ['one bit of the wrapped key', 'keyCheck, another hex digit (opens, but is not its key)']) {
      it(`the second destination's key.json damaged in ${what}: named damaged, not a stale rewrap or another key; recover puts it back (review-33b F4)`, async () => {
        const { a, b, db } = await twoCopies();
        const file = path.join(b, 'key.json');
        const original = await readFile(file, 'utf8');
        const keyFile = JSON.parse(original) as KeyFileJson;
        damages[what]!(keyFile);
        await writeFile(file, JSON.stringify(keyFile, null, 2));
        const p = twoPlaces(a, b, OLD);
        await db.usePlugin(p, 'after-damage');
        const second = p.destinations.members[1]!.label;
        await expect(p.createBackup()).rejects.toMatchObject({ code: 'ERR_BAD_KEY_FILE', message: expect.stringMatching(new RegExp(`^key\\.json at ${second.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is damaged .*recoverBackups\\(\\) puts it back`)) });
        expect((await p.recoverBackups()).keyFiles?.mended).toEqual([{ destination: second, from: `key.json at ${p.destinations.members[0]!.label}` }]);
        expect(await readFile(file, 'utf8')).toBe(await readFile(path.join(a, 'key.json'), 'utf8'));
        expect((await p.createBackup()).verified).toBe(true);
        await p.stop();
      });
    }

    it('a rewrap that reached the first destination only is still told as one (a stale wrapping), never as damage; recover overwrites nothing', async () => {
      const { a, b, db } = await twoCopies();
      const before = await readFile(path.join(b, 'key.json'), 'utf8');
      const admin = twoPlaces(a, b, OLD);
      await db.usePlugin(admin, 'admin');
      await rewrapAll(admin, OLD, NEW);
      await admin.stop();
      await writeFile(path.join(b, 'key.json'), before); // (the rewrap never reached b)
      const rewrapped = await readFile(path.join(a, 'key.json'), 'utf8');
      const p = twoPlaces(a, b, NEW);
      await db.usePlugin(p, 'current');
      await expect(p.createBackup()).rejects.toMatchObject({ code: 'ERR_WRONG_PASSPHRASE', message: expect.stringContaining('run s3db-backup rewrap again') });
      expect((await p.recoverBackups()).keyFiles?.mended ?? []).toEqual([]);
      await p.stop();
      expect([await readFile(path.join(a, 'key.json'), 'utf8'), await readFile(path.join(b, 'key.json'), 'utf8')]).toEqual([rewrapped, before]);
    });
  });

  it('a key.json rewrapped to another passphrase is not taken for a damaged one: recover with the old passphrase leaves it, and the new one still opens it', async () => {
    const { dir, db } = await encryptedChain();
    const admin = plugin(dir, OLD);
    await db.usePlugin(admin, 'admin');
    await rewrapAll(admin, OLD, NEW);
    await admin.stop();
    const rewrapped = await readFile(path.join(dir, 'key.json'), 'utf8');
    const stale = plugin(dir, OLD);
    await db.usePlugin(stale, 'stale');
    expect((await stale.recoverBackups()).keyFiles?.mended ?? []).toEqual([]);
    await stale.stop();
    expect(await readFile(path.join(dir, 'key.json'), 'utf8')).toBe(rewrapped);
    const current = plugin(dir, NEW);
    await db.usePlugin(current, 'current');
    expect((await current.createBackup()).verified).toBe(true);
    await current.stop();
  });
});
