/**
 * Authentication of an encrypted backup's manifest (FORMAT.md 1.1, `auth`; revision 8).
 *
 * A manifest is plaintext JSON (listing and planning need no passphrase), so whoever can write to
 * the destination could edit it: point its part list at another backup's parts (sizes and SHA-256s
 * edited to match), or change the definitions a `resources` restore writes into s3db.json. Each
 * part's stream is authenticated by GCM, but nothing bound the parts to their backup. `auth`
 * seals the SHA-256 of the manifest's canonical text under the backup's master key, so only a
 * holder of that key can write a manifest that verifies.
 *
 * Canonical text: JSON.stringify of the manifest without `auth`, keys in stored order (`auth` is
 * written last, over the manifest as it is stored).
 * Invariant: a manifest is checked as it was parsed from storage: parseManifest notes the digest
 * of what it parsed (noteParsed), so what a caller later does to the object it was handed (a
 * listing's `tags` sorted in place) never makes a good backup look forged.
 * What it cannot do: a manifest without `auth` (written before revision 8, or stripped by an
 * attacker) or an unencrypted one is not authenticated; restores and verification say so.
 */
import { createHash } from 'node:crypto';
import type { KeyHandle } from '../codec/index.js';
import { errorMessage } from '../errors.js';
import type { Manifest } from './manifest.js';
import { sealBytes, unsealBytes } from './sealed.js';

/** The `auth` of `manifest` (every other field final) under its master key. */
export async function manifestAuth(manifest: Manifest, key: KeyHandle): Promise<string> {
  return sealBytes(canonicalDigest(manifest), key);
}

/**
 * Why `manifest`'s `auth` does not authenticate it under `key`, as the one sentence verification
 * and restores report, or null (also when it has none).
 */
export async function authProblem(manifest: Manifest, key: KeyHandle): Promise<string | null> {
  if (manifest.auth === undefined) return null;
  let why: string | null;
  try {
    const sealed = await unsealBytes(manifest.auth, key);
    why = sealed.equals(canonicalDigest(manifest)) ? null : 'it was changed after its backup wrote it (its authentication tag does not match its content)';
  } catch (err) {
    why = `its authentication tag does not open under the backup's key (${errorMessage(err)})`;
  }
  return why && `the manifest of ${manifest.id} cannot be trusted: ${why}. Its parts, index and definitions may not be this backup's: restore another backup`;
}

/** Why a restore of `manifest` cannot rely on its manifest, when nothing authenticates it (null when `auth` does). */
export function unauthenticated(manifest: Manifest, encryptionConfigured: boolean): string | null {
  if (manifest.encryption && manifest.auth === undefined) {
    return `the manifest of ${manifest.id} has no authentication tag: it was written before manifests were authenticated (FORMAT.md revision 8), or the tag was stripped by whoever could write to the destination; its part list and definitions are trusted as stored`;
  }
  if (!manifest.encryption && encryptionConfigured) {
    return `${manifest.id} is not encrypted, so nothing authenticates it: whoever can write to the destination could have replaced it (a plugin with encryption takes only encrypted backups since the key was set)`;
  }
  return null;
}

/** Digests of manifests as parsed from storage (see the top comment). */
const parsedDigests = new WeakMap<object, Buffer>();

/** Notes the digest of `manifest` as just parsed from storage (before anyone holds it). */
export function noteParsed(manifest: object): void {
  parsedDigests.set(manifest, digestOf(manifest as Manifest));
}

function canonicalDigest(manifest: Manifest): Buffer {
  return parsedDigests.get(manifest) ?? digestOf(manifest);
}

function digestOf(manifest: Manifest): Buffer {
  const { auth: _auth, ...stored } = manifest;
  return createHash('sha256').update(JSON.stringify(stored), 'utf8').digest();
}
