/**
 * The `encryption` option: which passphrase (if any) encrypts backups, and with how many PBKDF2
 * iterations its key file is made. Never echoes a secret in an error.
 *
 * - `{ passphrase }` without `enabled` means enabled; `{ key }` (s3db.js dialect) is a passphrase.
 * - A `passphrase`/`key` property that is present but empty (an unset environment variable) fails:
 *   a missing secret must never turn into an unencrypted backup. Only `encryption: null/false`,
 *   no `encryption`, or `enabled: false` mean no encryption. Unknown keys are refused.
 * - s3db.js's documented `keyDerivation: { algorithm: 'PBKDF2', iterations, salt }` is accepted:
 *   iterations apply; the salt is not used (every key file gets its own random 32-byte salt,
 *   FORMAT.md 2.6).
 */
import { optionError } from './errors.js';
import { MAX_KDF_ITERATIONS } from './codec/key-file.js';
import { knownHint } from './known-names.js';

const ENCRYPTION_KEYS = ['enabled', 'passphrase', 'key', 'algorithm', 'iterations', 'keyDerivation'];
const KEY_DERIVATION_KEYS = ['algorithm', 'iterations', 'salt'];

export interface EncryptionOption {
  enabled?: boolean;
  /** `undefined` (an unset environment variable) is refused at run time: see the top comment. */
  passphrase?: string | null | undefined;
  key?: string | null | undefined;
  algorithm?: string;
  iterations?: number;
  /** s3db.js's documented shape; only PBKDF2 (the salt is not used, see the top comment). */
  keyDerivation?: { algorithm?: string; iterations?: number; salt?: string };
}

export /** The passphrase (null = not encrypted) and PBKDF2 iterations; see the top comment. Never echoes a secret. */
function encryptionOption(value: unknown): { passphrase: string | null; iterations: number } {
  const none = { passphrase: null, iterations: 600_000 };
  if (value === undefined || value === null || value === false) return none;
  if (typeof value !== 'object' || Array.isArray(value)) throw optionError('encryption', 'must be an object { passphrase }', 'or null/false for no encryption');
  const enc = value as EncryptionOption & Record<string, unknown>;
  for (const key of Object.keys(enc)) {
    if (!ENCRYPTION_KEYS.includes(key)) throw optionError(`encryption.${key}`, 'is not an encryption option', `Known: ${ENCRYPTION_KEYS.join(', ')}`);
  }
  if (enc.enabled !== undefined && typeof enc.enabled !== 'boolean') throw optionError('encryption.enabled', 'must be true or false');
  if (enc.algorithm !== undefined && String(enc.algorithm).toLowerCase() !== 'aes-256-gcm') {
    throw optionError('encryption.algorithm', `"${String(enc.algorithm)}" is not supported`, "Use 'aes-256-gcm'");
  }
  let iterations = none.iterations;
  if (enc.iterations !== undefined) iterations = iterationsOption('encryption.iterations', enc.iterations);
  if (enc.keyDerivation !== undefined) {
    const kd = enc.keyDerivation as Record<string, unknown> | null;
    if (typeof kd !== 'object' || kd === null || Array.isArray(kd)) throw optionError('encryption.keyDerivation', "must be { algorithm: 'PBKDF2', iterations }");
    for (const key of Object.keys(kd)) {
      if (!KEY_DERIVATION_KEYS.includes(key)) throw optionError(`encryption.keyDerivation.${key}`, 'is not a key derivation option', knownHint(key, KEY_DERIVATION_KEYS));
    }
    if (kd.algorithm !== undefined && !/^pbkdf2(-hmac)?(-sha256)?$/i.test(String(kd.algorithm))) {
      throw optionError('encryption.keyDerivation.algorithm', `"${String(kd.algorithm)}" is not supported`, "Keys are derived with PBKDF2-HMAC-SHA256; use 'PBKDF2' or leave it out");
    }
    if (kd.salt !== undefined && typeof kd.salt !== 'string') throw optionError('encryption.keyDerivation.salt', 'must be a string (it is not used: each key file has its own random salt)');
    if (kd.iterations !== undefined) {
      const n = iterationsOption('encryption.keyDerivation.iterations', kd.iterations);
      if (enc.iterations !== undefined && n !== iterations) throw optionError('encryption.keyDerivation.iterations', 'and "encryption.iterations" differ', 'Give the iteration count once');
      iterations = n;
    }
  }
  const fields = (['passphrase', 'key'] as const).filter((f) => f in enc);
  if (fields.length > 1) throw optionError('encryption.key', 'and "encryption.passphrase" are both set', 'Give the passphrase once');
  if (enc.enabled === false) return { passphrase: null, iterations };
  const field = fields[0] ?? 'passphrase';
  if (fields.length === 0 && enc.enabled !== true) {
    throw optionError('encryption.passphrase', 'is missing', 'Set encryption: { passphrase: ... }, or encryption: null for unencrypted backups');
  }
  const secret = enc[field];
  if (typeof secret !== 'string' || secret.trim() === '') {
    const what = secret === undefined || secret === null || secret === '' ? 'is empty or undefined' : typeof secret === 'string' ? 'is only whitespace' : `must be a string (got ${typeof secret})`;
    throw optionError(
      `encryption.${field}`,
      `${what}, so this backup cannot be encrypted`,
      'Is the environment variable set (e.g. BACKUP_PASSPHRASE)? For unencrypted backups remove encryption or set encryption: { enabled: false }',
    );
  }
  return { passphrase: secret, iterations };
}

function iterationsOption(name: string, value: unknown): number {
  // (a key file asking for more is refused as damaged: every backup would fail, from the first tick)
  if (!Number.isInteger(value) || (value as number) < 100_000 || (value as number) > MAX_KDF_ITERATIONS) {
    throw optionError(name, `must be an integer from 100000 to ${MAX_KDF_ITERATIONS}`, 'The default, 600000, follows OWASP');
  }
  return value as number;
}
