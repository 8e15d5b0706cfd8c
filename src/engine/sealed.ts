/**
 * The caller-given fields of an encrypted backup's manifest, sealed with its master key.
 *
 * A manifest is plaintext JSON (listing and planning never need the passphrase). What the caller
 * gives a backup, `reason`, `metadata` and a trigger's payload (whatever the application emitted,
 * e.g. a deleted record), is free-form and may hold anything, so an encrypted backup stores them as
 * `sealed`: base64 of a codec stream (FORMAT.md section 2.2, compression none) of their JSON,
 * under the backup's master key. The plaintext fields then hold null / {} / a null payload.
 * Invariant: a sealed text decodes only with the key (GCM tags checked); a damaged one is an error.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecoder, createEncoder, type KeyHandle } from '../codec/index.js';
import { errorMessage } from '../errors.js';
import type { ManifestHead } from './manifest.js';

export interface SealedFields {
  reason: string | null;
  metadata: Record<string, unknown>;
  payload: unknown;
}

export async function seal(fields: SealedFields, key: KeyHandle): Promise<string> {
  return sealBytes(Buffer.from(JSON.stringify(fields), 'utf8'), key);
}

export async function unseal(sealed: string, key: KeyHandle): Promise<SealedFields> {
  return JSON.parse((await unsealBytes(sealed, key)).toString('utf8')) as SealedFields;
}

/** `bytes` sealed under `key`: base64 of a codec stream (compression none). */
export async function sealBytes(bytes: Buffer, key: KeyHandle): Promise<string> {
  return (await through(bytes, createEncoder({ compression: 'none', key, implementation: 'js' }))).toString('base64');
}

/** What sealBytes sealed; throws when `sealed` is damaged or sealed under another key. */
export async function unsealBytes(sealed: string, key: KeyHandle): Promise<Buffer> {
  return through(Buffer.from(sealed, 'base64'), createDecoder({ compression: 'none', key, implementation: 'js' }));
}

/** `m` with its sealed fields in place (m itself when it has none). */
export async function withUnsealed<M extends ManifestHead>(m: M, key: KeyHandle): Promise<M> {
  if (m.sealed === undefined) return m;
  const f = await unseal(m.sealed, key);
  return { ...m, reason: f.reason, metadata: f.metadata, trigger: m.trigger ? { event: m.trigger.event, payload: f.payload } : null };
}

/**
 * For one listing: shows each manifest's sealed fields when `keyFor` opens its key, else the
 * manifest as stored (null fields) after `warn`. One try and one warning per key, however many
 * manifests ask at once (a wrong passphrase costs a PBKDF2 derivation per try).
 */
export function unsealer(keyFor: (m: ManifestHead) => Promise<KeyHandle>, warn: (m: ManifestHead, message: string) => void): <M extends ManifestHead>(m: M) => Promise<M> {
  const keys = new Map<string, Promise<KeyHandle | null>>(); // keyCheck -> the key, or null when it did not open
  return async (m) => {
    if (m.sealed === undefined || !m.encryption) return m;
    const keyCheck = m.encryption.keyCheck;
    let key = keys.get(keyCheck);
    if (!key) {
      key = keyFor(m).catch((err: unknown) => {
        warn(m, `the reason, metadata and trigger payload of the backups under key ${keyCheck} stay sealed: ${errorMessage(err)}`);
        return null;
      });
      keys.set(keyCheck, key);
    }
    const opened = await key;
    if (!opened) return m;
    try {
      return await withUnsealed(m, opened);
    } catch (err) {
      warn(m, `the reason, metadata and trigger payload of ${m.id} stay sealed: ${errorMessage(err)}`);
      return m;
    }
  };
}

async function through(input: Buffer, codec: NodeJS.ReadWriteStream): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from([input]), codec, new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) }));
  return Buffer.concat(out);
}
