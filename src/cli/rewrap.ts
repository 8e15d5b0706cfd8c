/**
 * `s3db-backup rewrap`: changes the passphrase that opens the backups' master key. key.json at
 * every destination is unwrapped with the current passphrase and wrapped again with the new one
 * (codec rewrapKeyFile: same master key, new salt), then written back by compare-and-swap, so a
 * backup writing key.json meanwhile is never overwritten. The backups themselves are unchanged.
 *
 * Invariants: nothing is written unless the current passphrase opens every key.json found; both
 * passphrases stay in memory only. A rewrap does not revoke the old passphrase: every manifest
 * embeds the key file as it was wrapped when the backup was made (README runbook, step 6).
 */
import { rewrapKeyFile } from '../codec/index.js';
import { readText } from '../destinations/types.js';
import { paths } from '../engine/layout.js';
import { BackupError } from '../errors.js';
import type { BackupPlugin } from '../plugin.js';

export interface RewrapReport {
  rewrapped: string[];
  withoutKeyFile: string[];
}

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
  // every key file first (a wrong passphrase, a key file of another key: nothing written)
  const rewrapped = await Promise.all(found.map(async (f) => ({ ...f, body: Buffer.from(JSON.stringify(await rewrapKeyFile(f.text, oldPassphrase, newPassphrase), null, 2)) })));
  for (const f of rewrapped) {
    const { replaced } = await f.member.replaceIfMatch(paths.keyFile, f.body, f.etag);
    if (!replaced) throw new BackupError('ERR_KEY_CONFLICT', `key.json at ${f.member.label} changed while it was rewrapped (a backup running?); run rewrap again`);
  }
  return { rewrapped: rewrapped.map((f) => f.member.label), withoutKeyFile };
}
