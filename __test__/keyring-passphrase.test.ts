// What a passphrase opens, on the real s3db.js and a real filesystem destination (review-secrets):
// after a rewrap the old passphrase takes no backup at all (it took incrementals, answered by a
// key opened from an older manifest's copy, and failed only at the next full); a wrong passphrase
// is not reported as a key rotation; and a key.json the passphrase does not open, while the copy
// the newest manifest embeds does, is named with both ways out (rewrapped, or damaged).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import { rewrapAll } from '../src/cli/rewrap.js';
import { openDb, seedDatabase } from './helpers/database.js';
import { warnInto } from './helpers/logger.js';

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

  it('a key.json damaged in one byte of its wrapped key, which the passphrase no longer opens: the error says the manifest copy opens and how to put key.json back; once moved away, the next backup writes it again', async () => {
    const { dir, db } = await encryptedChain();
    const file = path.join(dir, 'key.json');
    const keyFile = JSON.parse(await readFile(file, 'utf8')) as { wrap: { ciphertext: string } };
    const bytes = Buffer.from(keyFile.wrap.ciphertext, 'base64');
    bytes[0]! ^= 0x01;
    keyFile.wrap.ciphertext = bytes.toString('base64');
    await writeFile(file, JSON.stringify(keyFile, null, 2));
    const p = plugin(dir, OLD);
    await db.usePlugin(p, 'after-damage');
    await expect(p.createBackup()).rejects.toMatchObject({ code: 'ERR_WRONG_PASSPHRASE', message: expect.stringMatching(/opens the backups' key .* but not key\.json at .*or it is damaged/) });
    await rm(file);
    expect((await p.createBackup()).verified).toBe(true);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ keyCheck: expect.any(String) });
    await p.stop();
  });
});
