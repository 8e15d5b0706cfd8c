/**
 * `s3db-backup rewrap`: changes the passphrase that opens the backups' master key. key.json at
 * every destination is unwrapped with the current passphrase and wrapped again with the new one
 * (codec rewrapKeyFile: same master key, new salt), then written back by compare-and-swap, so a
 * backup writing key.json meanwhile is never overwritten. The backups themselves are unchanged.
 *
 * Invariants: nothing is written unless every key.json found opens with the current passphrase,
 * or already with the new one (a rewrap killed between destinations is finished by running it
 * again), and all are of one master key; both passphrases stay in memory only. Every key.json
 * rewrapped gets the same new wrapping (one salt), so it is unwrapped once per process whatever
 * the number of destinations; a rewrap run again after an interruption writes the wrapping the
 * first run left (when its PBKDF2 count is high enough). The PBKDF2 count is the highest of
 * encryption.iterations and the key files' own: a rewrap never lowers it.
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
  // every key file first (a wrong passphrase: nothing written); those that open with the current
  // passphrase all get ONE new wrapping, so a backup later unwraps it once, not once per
  // destination (review-29 F8: each got its own salt, and the check that every key.json opens
  // with the passphrase paid a PBKDF2 for each)
  const iterations = Math.max(plugin.config.iterations, ...found.map((f) => parseKeyFile(f.text).iterations));
  const settled = await Promise.allSettled(
    found.map(async (f) => {
      const opens = await unlockKeyFile(f.text, oldPassphrase).then(
        () => true,
        (err: unknown) => {
          if (!isWrongPassphrase(err)) throw err;
          return false;
        },
      );
      if (opens) return { ...f, current: true };
      if (await unlockKeyFile(f.text, newPassphrase).then(() => true, () => false)) return { ...f, current: false };
      throw new BackupError('ERR_WRONG_PASSPHRASE', `key.json at ${f.member.label} opens with neither the current passphrase nor the new one; nothing was rewritten`);
    }),
  );
  // the first failure in destination order (not the first to settle): the same message every run
  const checked = settled.map((r) => {
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  });
  const first = checked.find((f) => f.current);
  // a rewrap run again after it was interrupted: the wrapping it already wrote is the one for the
  // rest too, unless its PBKDF2 count is below what this one asks (review-29b G6: each run made
  // its own, and the first key.json kept the earlier one)
  const resumed = checked.find((f) => !f.current && parseKeyFile(f.text).iterations >= iterations);
  const body = !first ? null : resumed ? Buffer.from(resumed.text) : Buffer.from(JSON.stringify(await rewrapKeyFile(first.text, oldPassphrase, newPassphrase, { iterations }), null, 2));
  const planned = checked.map((f) => ({ ...f, body: f.current ? body : null }));
  for (const f of planned) {
    if (f.body === null) continue;
    const { replaced } = await f.member.replaceIfMatch(paths.keyFile, f.body, f.etag);
    if (!replaced) throw new BackupError('ERR_KEY_CONFLICT', `key.json at ${f.member.label} changed while it was rewrapped (a backup running?); run rewrap again`);
  }
  return { rewrapped: planned.filter((f) => f.body !== null).map((f) => f.member.label), alreadyNew: planned.filter((f) => f.body === null).map((f) => f.member.label), withoutKeyFile };
}
