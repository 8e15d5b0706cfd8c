/**
 * Key files (FORMAT.md 2.6) and key handles: create/unlock/rewrap round trips, a passphrase change
 * keeps old streams readable, wrong passphrase / weak KDF / damaged key file each give their code,
 * passphrases never appear in errors, and a KeyHandle never prints its material. Also checks the
 * native key primitives against node:crypto (both ways) so either implementation can unlock.
 */
import { createCipheriv, createHmac, pbkdf2Sync } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { BackupError } from '../src/errors.js';
import {
  createDecoder,
  createEncoder,
  createKeyFile,
  keyFromBytes,
  rewrapKeyFile,
  unlockKeyFile,
  type KeyFile,
} from '../src/codec/index.js';
import { nativeBinding } from '../src/codec/native-binding.js';
import { concat, jsonLines, runToBuffer } from './helpers/corpus.js';
import { TEST_KEY } from './helpers/codec-impls.js';

const ITER = 100_000; // the minimum; keeps the suite fast
const PASS = 'correct horse battery staple';

async function expectCode(p: Promise<unknown>, code: string): Promise<BackupError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BackupError);
  expect((err as BackupError).code).toBe(code);
  expect((err as BackupError).message).not.toContain(PASS);
  expect((err as BackupError).message).not.toContain('new passphrase 2');
  return err as BackupError;
}

describe('key files and key handles', () => {
  it('createKeyFile -> unlockKeyFile gives the same master key; the key file follows FORMAT.md 2.6', async () => {
    const { keyFile, key } = await createKeyFile(PASS, { iterations: ITER });
    expect(keyFile.format).toBe('s3db-backup-key');
    expect(keyFile.version).toBe(1);
    expect(keyFile.kdf).toMatchObject({ name: 'pbkdf2-hmac-sha256', iterations: ITER });
    expect(Buffer.from(keyFile.kdf.salt, 'base64').length).toBe(32);
    expect(Buffer.from(keyFile.wrap.nonce, 'base64').length).toBe(12);
    expect(Buffer.from(keyFile.wrap.ciphertext, 'base64').length).toBe(48);
    expect(keyFile.keyCheck).toMatch(/^[0-9a-f]{32}$/);
    expect(keyFile.keyCheck).toBe(key.keyCheck);
    expect(Number.isNaN(Date.parse(keyFile.createdAt))).toBe(false);

    const unlocked = await unlockKeyFile(JSON.stringify(keyFile), PASS);
    expect(unlocked.keyCheck).toBe(key.keyCheck);
    // Same key: a stream encoded with one decodes with the other.
    const input = concat(jsonLines(50_000));
    const stored = await runToBuffer([input], createEncoder({ key, implementation: 'js' }));
    const back = await runToBuffer([stored], createDecoder({ key: unlocked, implementation: 'js' }));
    expect(back.equals(input)).toBe(true);
  });

  it('the default is 600 000 iterations', async () => {
    const { keyFile } = await createKeyFile(PASS);
    expect(keyFile.kdf.iterations).toBe(600_000);
  });

  it('the key file unwraps with an independent PBKDF2 + AES-GCM computation (node:crypto, by hand)', async () => {
    const { keyFile, key } = await createKeyFile(PASS, { iterations: ITER });
    const kek = pbkdf2Sync(Buffer.from(PASS), Buffer.from(keyFile.kdf.salt, 'base64'), ITER, 32, 'sha256');
    const wrapped = Buffer.from(keyFile.wrap.ciphertext, 'base64');
    const { createDecipheriv } = await import('node:crypto');
    const d = createDecipheriv('aes-256-gcm', kek, Buffer.from(keyFile.wrap.nonce, 'base64'));
    d.setAAD(Buffer.from('s3db-backup/v1/key-wrap'));
    d.setAuthTag(wrapped.subarray(32));
    const master = Buffer.concat([d.update(wrapped.subarray(0, 32)), d.final()]);
    const check = createHmac('sha256', master).update('s3db-backup/v1/key-check').digest().subarray(0, 16).toString('hex');
    expect(check).toBe(key.keyCheck);
    expect(keyFromBytes(master).keyCheck).toBe(key.keyCheck);
  });

  it('a wrong passphrase is refused with ERR_WRONG_PASSPHRASE, before any data is read', async () => {
    const { keyFile } = await createKeyFile(PASS, { iterations: ITER });
    const err = await expectCode(unlockKeyFile(keyFile, 'correct horse battery stapler'), 'ERR_WRONG_PASSPHRASE');
    expect(err.message.startsWith('wrong passphrase')).toBe(true);
  });

  it('rewrapKeyFile changes the passphrase; the master key (and old streams) stay the same', async () => {
    const { keyFile, key } = await createKeyFile(PASS, { iterations: ITER });
    const input = concat(jsonLines(20_000));
    const stored = await runToBuffer([input], createEncoder({ key, compression: 'brotli', implementation: 'js' }));
    const rewrapped = await rewrapKeyFile(keyFile, PASS, 'new passphrase 2', { iterations: ITER + 1 });
    expect(rewrapped.kdf.salt).not.toBe(keyFile.kdf.salt);
    expect(rewrapped.wrap.ciphertext).not.toBe(keyFile.wrap.ciphertext);
    expect(rewrapped.kdf.iterations).toBe(ITER + 1);
    expect(rewrapped.keyCheck).toBe(keyFile.keyCheck);
    await expectCode(unlockKeyFile(rewrapped, PASS), 'ERR_WRONG_PASSPHRASE');
    const unlocked = await unlockKeyFile(rewrapped, 'new passphrase 2');
    const back = await runToBuffer([stored], createDecoder({ key: unlocked, compression: 'brotli', implementation: 'js' }));
    expect(back.equals(input)).toBe(true);
    await expectCode(rewrapKeyFile(keyFile, 'not it', 'x'.repeat(12), { iterations: ITER }), 'ERR_WRONG_PASSPHRASE');
  });

  it('fewer than 100 000 iterations -> ERR_WEAK_KDF (creating and reading)', async () => {
    await expectCode(createKeyFile(PASS, { iterations: 99_999 }), 'ERR_WEAK_KDF');
    const { keyFile } = await createKeyFile(PASS, { iterations: ITER });
    const weak: KeyFile = { ...keyFile, kdf: { ...keyFile.kdf, iterations: 10_000 } };
    await expectCode(unlockKeyFile(weak, PASS), 'ERR_WEAK_KDF');
  });

  it('damaged key files -> ERR_BAD_KEY_FILE naming the field, also once the intact file was opened (its unlock is cached); a modified wrap -> ERR_WRONG_PASSPHRASE', async () => {
    const { keyFile } = await createKeyFile(PASS, { iterations: ITER });
    await unlockKeyFile(keyFile, PASS); // (walk-33 F1: a changed keyCheck alone was answered from this cache, unchecked)
    const otherCheck = keyFile.keyCheck.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const bad: Array<[unknown, string]> = [
      ['{not json', 'document'],
      [{ ...keyFile, format: 'something-else' }, 'format'],
      [{ ...keyFile, version: 2 }, 'version'],
      [{ ...keyFile, kdf: { ...keyFile.kdf, name: 'scrypt' } }, 'kdf.name'],
      [{ ...keyFile, kdf: { ...keyFile.kdf, salt: 'AAAA' } }, 'kdf.salt'],
      [{ ...keyFile, wrap: { ...keyFile.wrap, nonce: Buffer.alloc(8).toString('base64') } }, 'wrap.nonce'],
      [{ ...keyFile, wrap: { ...keyFile.wrap, ciphertext: Buffer.alloc(32).toString('base64') } }, 'wrap.ciphertext'],
      [{ ...keyFile, keyCheck: 'zz' }, 'keyCheck'],
      [{ ...keyFile, keyCheck: otherCheck }, 'keyCheck'],
    ];
    for (const [file, field] of bad) {
      const err = await expectCode(unlockKeyFile(file as KeyFile, PASS), 'ERR_BAD_KEY_FILE');
      expect(err.message, field).toContain(field);
    }
    const ct = Buffer.from(keyFile.wrap.ciphertext, 'base64');
    ct[5] ^= 1;
    await expectCode(unlockKeyFile({ ...keyFile, wrap: { ...keyFile.wrap, ciphertext: ct.toString('base64') } }, PASS), 'ERR_WRONG_PASSPHRASE');
  });

  it('a KeyHandle never shows its material (inspect, JSON, String, spread)', async () => {
    const key = keyFromBytes(TEST_KEY);
    const hex = TEST_KEY.toString('hex');
    const b64 = TEST_KEY.toString('base64');
    const renderings = [inspect(key, { showHidden: true, depth: 10 }), JSON.stringify(key), String(key), JSON.stringify({ ...key }), inspect({ options: { key } })];
    for (const r of renderings) {
      expect(r).not.toContain(hex);
      expect(r).not.toContain(b64);
      expect(r).not.toContain(TEST_KEY.subarray(0, 8).toString('hex'));
    }
    expect(JSON.parse(JSON.stringify(key))).toEqual({ keyCheck: key.keyCheck });
    // keyFromBytes copies: wiping the caller's buffer does not change the key.
    const raw = Buffer.from(TEST_KEY);
    const k2 = keyFromBytes(raw);
    raw.fill(0);
    expect(k2.keyCheck).toBe(key.keyCheck);
  });

  it('passphrases must be non-empty strings or buffers (ERR_INVALID_OPTION naming it)', async () => {
    await expect(createKeyFile('')).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining('passphrase') });
    const { keyFile } = await createKeyFile(Buffer.from(PASS), { iterations: ITER });
    expect((await unlockKeyFile(keyFile, PASS)).keyCheck).toBe(keyFile.keyCheck);
  });

  it('raw keys must be exactly 32 bytes', () => {
    expect(() => keyFromBytes(Buffer.alloc(16))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => createEncoder({ key: Buffer.alloc(31) })).toThrow(/"key"/);
  });

  it('native key primitives agree with node:crypto (pbkdf2, key check, wrap/unwrap both ways)', async () => {
    const native = nativeBinding();
    expect(native, 'native core must load (npm run build:native)').not.toBeNull();
    if (native === null) return;
    const salt = Buffer.alloc(32, 7);
    const kek = await native.pbkdf2Sha256(Buffer.from(PASS), salt, ITER, 32);
    expect(kek.equals(pbkdf2Sync(Buffer.from(PASS), salt, ITER, 32, 'sha256'))).toBe(true);
    expect(native.keyCheck(TEST_KEY).toString('hex')).toBe(keyFromBytes(TEST_KEY).keyCheck);
    const nonce = Buffer.alloc(12, 9);
    const c = createCipheriv('aes-256-gcm', kek, nonce);
    c.setAAD(Buffer.from('s3db-backup/v1/key-wrap'));
    const jsWrapped = Buffer.concat([c.update(TEST_KEY), c.final(), c.getAuthTag()]);
    expect(native.wrapMasterKey(kek, nonce, TEST_KEY).equals(jsWrapped)).toBe(true);
    expect(native.unwrapMasterKey(kek, nonce, jsWrapped).equals(TEST_KEY)).toBe(true);
    const tampered = Buffer.from(jsWrapped);
    tampered[0] ^= 1;
    expect(() => native.unwrapMasterKey(kek, nonce, tampered)).toThrow(expect.objectContaining({ code: 'ERR_WRONG_PASSPHRASE' }));
  });
});
