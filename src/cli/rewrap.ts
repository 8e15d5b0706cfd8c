/**
 * `s3db-backup rewrap`: changes the passphrase that opens the backups' master key. key.json at
 * every destination is unwrapped with the current passphrase and wrapped again with the new one
 * (codec rewrapKeyFile: same master key, new salt), then written back by compare-and-swap, so a
 * backup writing key.json meanwhile is never overwritten. The backups themselves are unchanged.
 *
 * Invariants: nothing is written unless every key.json found opens with the current passphrase,
 * or already with the new one (a rewrap killed between destinations is finished by running it
 * again), and all are of one master key; both passphrases stay in memory only. The PBKDF2 count
 * is encryption.iterations or the key file's own, whichever is higher: a rewrap never lowers it.
 * A rewrap does not revoke the old passphrase: every manifest embeds the key file as it was
 * wrapped when the backup was made (README runbook, step 6).
 */
import { parseKeyFile, rewrapKeyFile, unlockKeyFile } from '../codec/index.js';
import { readText } from '../destinations/types.js';
import { paths } from '../engine/layout.js';
import { BackupError } from '../errors.js';
import type { BackupPlugin } from '../plugin.js';

export interface RewrapReport {
  rewrapped: string[];
  /** Destinations whose key.json opened with the new passphrase already (an earlier, interrupted rewrap). */
  alreadyNew: string[];
  withoutKeyFile: string[];
}

const isWrongPassphrase = (err: unknown) => err instanceof BackupError && err.code === 'ERR_WRONG_PASSPHRASE';

export async function rewrapAll(plugin: BackupPlugin, oldPassphrase: string, newPassphrase: string): Promise<RewrapReport> {
  const found: { member: BackupPlugin['destinations']['members'][number]; etag: string; text: string }[] = [];
  const withoutKeyFile: string[] = [];
  for (const member of plugin.destinations.members) {
    const info = await member.stat(paths.keyFile);
    if (!info) {
      withoutKeyFile.push(member.label);
      continue;
    }
    if (info.etag === undefined) throw new BackupError('ERR_LEASE_UNSUPPORTED', `${member.label} gives no change tag for key.json, so it cannot be rewritten safely`);
    found.push({ member, etag: info.etag, text: await readText(member, paths.keyFile) });
  }
  if (found.length === 0) throw new BackupError('ERR_BAD_KEY_FILE', `no key.json at ${withoutKeyFile.join(', ')}: there are no encrypted backups here to rewrap`);
  if (oldPassphrase === newPassphrase) throw new BackupError('ERR_INVALID_OPTION', 'the new passphrase is the current one: nothing to rewrap');
  const keyChecks = new Set(found.map((f) => parseKeyFile(f.text).file.keyCheck));
  if (keyChecks.size > 1) throw new BackupError('ERR_KEY_CONFLICT', `the key.json files at ${found.map((f) => f.member.label).join(', ')} are of ${keyChecks.size} different master keys; rewrap one plugin's destinations, which share one key`);
  // every key file first (a wrong passphrase: nothing written)
  const settled = await Promise.allSettled(
    found.map(async (f) => {
      const iterations = Math.max(plugin.config.iterations, parseKeyFile(f.text).iterations);
      try {
        return { ...f, body: Buffer.from(JSON.stringify(await rewrapKeyFile(f.text, oldPassphrase, newPassphrase, { iterations }), null, 2)) };
      } catch (err) {
        if (!isWrongPassphrase(err)) throw err;
        if (await unlockKeyFile(f.text, newPassphrase).then(() => true, () => false)) return { ...f, body: null };
        throw new BackupError('ERR_WRONG_PASSPHRASE', `key.json at ${f.member.label} opens with neither the current passphrase nor the new one; nothing was rewritten`);
      }
    }),
  );
  // the first failure in destination order (not the first to settle): the same message every run
  const planned = settled.map((r) => {
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  });
  for (const f of planned) {
    if (f.body === null) continue;
    const { replaced } = await f.member.replaceIfMatch(paths.keyFile, f.body, f.etag);
    if (!replaced) throw new BackupError('ERR_KEY_CONFLICT', `key.json at ${f.member.label} changed while it was rewrapped (a backup running?); run rewrap again`);
  }
  return { rewrapped: planned.filter((f) => f.body !== null).map((f) => f.member.label), alreadyNew: planned.filter((f) => f.body === null).map((f) => f.member.label), withoutKeyFile };
}
