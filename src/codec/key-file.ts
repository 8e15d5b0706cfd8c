/**
 * Key files (FORMAT.md 2.6): a random 32-byte master key wrapped with AES-256-GCM under a key
 * derived from a passphrase by PBKDF2-HMAC-SHA256. PBKDF2 runs off the JS thread (native
 * pbkdf2Sha256 on its pool, else crypto.pbkdf2 on libuv's), once per key file, passphrase and
 * process (successful unlocks are cached). Invariant: passphrases and keys never appear in
 * errors; a wrong passphrase fails the wrap tag (ERR_WRONG_PASSPHRASE) before any data is read.
 */
import { createCipheriv, createDecipheriv, createHash, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { BackupError, optionError } from '../errors.js';
import { streamErrors } from './errors.js';
import { AAD_KEY_WRAP, KEY_LENGTH } from './format.js';
import { computeKeyCheck, KeyHandle } from './key.js';
import { nativeBinding } from './native-binding.js';
import type { KeyFile } from './types.js';

export const DEFAULT_KDF_ITERATIONS = 600_000;
export const MIN_KDF_ITERATIONS = 100_000;
/** Refuse absurd counts that would hang an unlock (about 50 s here). */
export const MAX_KDF_ITERATIONS = 100_000_000;
const KDF_SALT_LENGTH = 32;
const WRAP_NONCE_LENGTH = 12;
const WRAPPED_LENGTH = KEY_LENGTH + 16;

export interface KeyFileOptions {
  /** PBKDF2 iterations, >= 100 000 (default 600 000). */
  iterations?: number;
}

const unlockCache = new Map<string, Promise<KeyHandle>>();

function passphraseBytes(passphrase: string | Buffer | Uint8Array, option: string): Buffer {
  if (typeof passphrase === 'string') {
    if (passphrase.length === 0) throw optionError(option, 'must not be empty');
    return Buffer.from(passphrase, 'utf8');
  }
  if (passphrase instanceof Uint8Array) {
    if (passphrase.length === 0) throw optionError(option, 'must not be empty');
    return Buffer.from(passphrase);
  }
  throw optionError(option, 'must be a string or a Buffer');
}

function checkIterations(iterations: number): void {
  if (!Number.isInteger(iterations) || iterations < MIN_KDF_ITERATIONS) {
    throw new BackupError(
      'ERR_WEAK_KDF',
      `key file KDF iterations ${iterations} are too few: at least ${MIN_KDF_ITERATIONS} are required (default ${DEFAULT_KDF_ITERATIONS})`,
      { details: { iterations } },
    );
  }
  if (iterations > MAX_KDF_ITERATIONS) {
    throw new BackupError('ERR_BAD_KEY_FILE', `key file KDF iterations ${iterations} exceed the maximum ${MAX_KDF_ITERATIONS}`);
  }
}

/** PBKDF2-HMAC-SHA256 off the JS thread. */
async function deriveKek(passphrase: Buffer, salt: Buffer, iterations: number): Promise<Buffer> {
  const native = nativeBinding();
  if (native !== null && process.env.S3DB_BACKUP_NATIVE !== '0') {
    return native.pbkdf2Sha256(passphrase, salt, iterations, KEY_LENGTH);
  }
  return new Promise<Buffer>((resolve, reject) => {
    pbkdf2(passphrase, salt, iterations, KEY_LENGTH, 'sha256', (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function wrap(kek: Buffer, nonce: Buffer, master: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-gcm', kek, nonce);
  cipher.setAAD(Buffer.from(AAD_KEY_WRAP, 'utf8'));
  const ct = Buffer.concat([cipher.update(master), cipher.final()]);
  return Buffer.concat([ct, cipher.getAuthTag()]);
}

function unwrap(kek: Buffer, nonce: Buffer, wrapped: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', kek, nonce);
  decipher.setAAD(Buffer.from(AAD_KEY_WRAP, 'utf8'));
  decipher.setAuthTag(wrapped.subarray(KEY_LENGTH));
  const master = decipher.update(wrapped.subarray(0, KEY_LENGTH));
  try {
    decipher.final();
  } catch {
    throw streamErrors.wrongPassphrase();
  }
  return master;
}

function badKeyFile(field: string, problem: string): BackupError {
  return new BackupError('ERR_BAD_KEY_FILE', `invalid key file: ${field} ${problem}`, { details: { field } });
}

function b64(value: unknown, field: string, length: number): Buffer {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw badKeyFile(field, 'must be base64');
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length !== length) throw badKeyFile(field, `must decode to ${length} bytes, got ${bytes.length}`);
  return bytes;
}

interface ParsedKeyFile {
  file: KeyFile;
  salt: Buffer;
  iterations: number;
  nonce: Buffer;
  wrapped: Buffer;
  keyCheck: Buffer;
}

/** Validates a key file (object, JSON string or Buffer of JSON). */
export function parseKeyFile(input: KeyFile | string | Buffer): ParsedKeyFile {
  let raw: unknown = input;
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    try {
      raw = JSON.parse(input.toString());
    } catch {
      throw badKeyFile('document', 'is not JSON');
    }
  }
  const f = raw as Partial<Record<keyof KeyFile, unknown>> | null;
  if (typeof f !== 'object' || f === null) throw badKeyFile('document', 'must be a JSON object');
  if (f.format !== 's3db-backup-key') throw badKeyFile('format', 'must be "s3db-backup-key"');
  if (f.version !== 1) throw badKeyFile('version', `${JSON.stringify(f.version)} is not supported (expected 1)`);
  const kdf = f.kdf as Record<string, unknown> | undefined;
  if (typeof kdf !== 'object' || kdf === null || kdf.name !== 'pbkdf2-hmac-sha256') {
    throw badKeyFile('kdf.name', 'must be "pbkdf2-hmac-sha256"');
  }
  if (typeof kdf.iterations !== 'number') throw badKeyFile('kdf.iterations', 'must be a number');
  checkIterations(kdf.iterations);
  const salt = b64(kdf.salt, 'kdf.salt', KDF_SALT_LENGTH);
  const w = f.wrap as Record<string, unknown> | undefined;
  if (typeof w !== 'object' || w === null || w.name !== 'aes-256-gcm') throw badKeyFile('wrap.name', 'must be "aes-256-gcm"');
  const nonce = b64(w.nonce, 'wrap.nonce', WRAP_NONCE_LENGTH);
  const wrapped = b64(w.ciphertext, 'wrap.ciphertext', WRAPPED_LENGTH);
  if (typeof f.keyCheck !== 'string' || !/^[0-9a-f]{32}$/.test(f.keyCheck)) throw badKeyFile('keyCheck', 'must be 32 lowercase hex digits');
  if (typeof f.createdAt !== 'string') throw badKeyFile('createdAt', 'must be an ISO 8601 string');
  return { file: raw as KeyFile, salt, iterations: kdf.iterations, nonce, wrapped, keyCheck: Buffer.from(f.keyCheck, 'hex') };
}

function newKeyFile(master: Buffer, kek: Buffer, salt: Buffer, iterations: number, createdAt: string): KeyFile {
  const nonce = randomBytes(WRAP_NONCE_LENGTH);
  return {
    format: 's3db-backup-key',
    version: 1,
    kdf: { name: 'pbkdf2-hmac-sha256', iterations, salt: salt.toString('base64') },
    wrap: { name: 'aes-256-gcm', nonce: nonce.toString('base64'), ciphertext: wrap(kek, nonce, master).toString('base64') },
    keyCheck: computeKeyCheck(master).toString('hex'),
    createdAt,
  };
}

/** Creates a new random master key and its key file. Store `keyFile` (JSON); keep `key` for coding. */
export async function createKeyFile(
  passphrase: string | Buffer | Uint8Array,
  options: KeyFileOptions = {},
): Promise<{ keyFile: KeyFile; key: KeyHandle }> {
  const pass = passphraseBytes(passphrase, 'passphrase');
  const iterations = options.iterations ?? DEFAULT_KDF_ITERATIONS;
  checkIterations(iterations);
  const master = randomBytes(KEY_LENGTH);
  const salt = randomBytes(KDF_SALT_LENGTH);
  const kek = await deriveKek(pass, salt, iterations);
  const keyFile = newKeyFile(master, kek, salt, iterations, new Date().toISOString());
  return { keyFile, key: KeyHandle.fromOwnedBytes(master) };
}

async function unlockParsed(p: ParsedKeyFile, pass: Buffer): Promise<KeyHandle> {
  const kek = await deriveKek(pass, p.salt, p.iterations);
  const master = unwrap(kek, p.nonce, p.wrapped);
  if (!timingSafeEqual(computeKeyCheck(master), p.keyCheck)) {
    throw badKeyFile('keyCheck', 'does not match the unwrapped master key (the key file was modified)');
  }
  return KeyHandle.fromOwnedBytes(master);
}

/** Unlocks a key file with its passphrase. ERR_WRONG_PASSPHRASE, ERR_WEAK_KDF, ERR_BAD_KEY_FILE. */
export async function unlockKeyFile(keyFile: KeyFile | string | Buffer, passphrase: string | Buffer | Uint8Array): Promise<KeyHandle> {
  const p = parseKeyFile(keyFile);
  const pass = passphraseBytes(passphrase, 'passphrase');
  const id = createHash('sha256')
    .update(p.salt)
    .update(p.wrapped)
    .update(p.nonce)
    .update(String(p.iterations))
    .update(p.keyCheck) // (a key file whose keyCheck alone was changed is checked again, never answered from the cache: walk-33 F1)
    .update(pass)
    .digest('hex');
  let pending = unlockCache.get(id);
  if (pending === undefined) {
    pending = unlockParsed(p, pass);
    unlockCache.set(id, pending);
    pending.catch(() => unlockCache.delete(id));
  }
  return pending;
}

/** Re-wraps the same master key under a new passphrase (old backups stay readable). */
export async function rewrapKeyFile(
  keyFile: KeyFile | string | Buffer,
  oldPassphrase: string | Buffer | Uint8Array,
  newPassphrase: string | Buffer | Uint8Array,
  options: KeyFileOptions = {},
): Promise<KeyFile> {
  const p = parseKeyFile(keyFile);
  const oldPass = passphraseBytes(oldPassphrase, 'oldPassphrase');
  const newPass = passphraseBytes(newPassphrase, 'newPassphrase');
  const iterations = options.iterations ?? DEFAULT_KDF_ITERATIONS;
  checkIterations(iterations);
  const kekOld = await deriveKek(oldPass, p.salt, p.iterations);
  const master = unwrap(kekOld, p.nonce, p.wrapped);
  if (!timingSafeEqual(computeKeyCheck(master), p.keyCheck)) {
    throw badKeyFile('keyCheck', 'does not match the unwrapped master key (the key file was modified)');
  }
  const salt = randomBytes(KDF_SALT_LENGTH);
  const kek = await deriveKek(newPass, salt, iterations);
  return newKeyFile(master, kek, salt, iterations, p.file.createdAt);
}
