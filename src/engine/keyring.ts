/**
 * Keyring: turns the configured passphrase into master keys, once per key file and process.
 *
 * - Backing up: the destination's key.json is unlocked (created on the first encrypted backup; put
 *   back from the newest manifest's copy when lost) and copied to any member of the set that lacks
 *   it. Every backup's manifest also embeds the key file, so a backup stays restorable if key.json
 *   is lost. Every member's key.json must open with the passphrase (a wrapping only a retired
 *   passphrase opens would keep it working there: walk-28 F4).
 * - Restoring: the key whose keyCheck the manifest names is looked up in the cache, then in the
 *   destination's key.json (current passphrase, after a rewrap), then in the manifest's own copy
 *   (also when key.json is unreadable: a damaged key.json never blocks a restore), then in the
 *   copies other manifests of the same key embed, newest first: after a rewrap the older ones
 *   hold the old wrapping and the newer ones the new, so a backup restores with the passphrase
 *   any backup of its key was made with (its chain's full may predate the rewrap).
 *
 * Invariants: the passphrase and unlocked keys live only in this object's memory; they never reach
 * errors, logs, manifests or events (KeyHandle hides its material from inspection and JSON).
 */
import { createKeyFile, parseKeyFile, unlockKeyFile, type KeyFile, type KeyHandle } from '../codec/index.js';
import type { DestinationSet } from '../destinations/set.js';
import { readText, type Destination } from '../destinations/types.js';
import { BackupError, errorMessage } from '../errors.js';
import { paths } from './layout.js';
import type { Manifest, ManifestHead } from './manifest.js';

/**
 * A member's key.json: absent (keyFile null), parsed, unreadable (its bytes are not a key file:
 * the error; `foreign`: JSON of another tool), or not answered (the destination failed the
 * question: nothing is known of the file). `etag`: the file's, when it is there.
 */
interface FoundKeyFile {
  member: Destination;
  label: string;
  keyFile: KeyFile | null;
  unreadable?: unknown;
  foreign?: true;
  unanswered?: unknown;
  etag?: string;
}

/** What is wrong when `subject` (key.json at some destinations) wraps the master key so that this passphrase does not open it, while it opens `opened`. */
const staleWrappingProblem = (subject: string, plural: boolean, opened: string): string =>
  `${subject} ${plural ? 'wrap' : 'wraps'} the backups' master key as ${opened} does, but not with this passphrase, which opens ${opened}: the passphrase that opens ${plural ? 'them' : 'it'} still works there`;

/**
 * Whether `file`, which `passphrase` does not open, is `reference` (a wrapping of the same master
 * key that it opens) damaged rather than rewrapped: it differs from it, yet keeps its KDF salt or
 * its wrap nonce, both of which a rewrap draws anew (walk-33 F1: one character changed inside a
 * field leaves valid JSON, which was taken for another wrapping and never put back).
 */
function damagedCopyOf(file: KeyFile, reference: KeyFile): boolean {
  return file.keyCheck === reference.keyCheck && JSON.stringify(file) !== JSON.stringify(reference) && (file.kdf?.salt === reference.kdf.salt || file.wrap?.nonce === reference.wrap.nonce);
}

/** What puts a damaged key.json back (the runbook's step 6). */
const PUT_KEY_FILE_BACK = "recoverBackups() puts it back from another destination's key.json or the newest encrypted backup's manifest, whichever opens with the passphrase";

const STALE_WRAPPING_ADVICE =
  'if this passphrase is the current one, run s3db-backup rewrap again with the one that opens the others as the current (encryption.passphrase) and this one as the new (it rewraps only those), or copy the key.json this passphrase opens over theirs (same master key); if it is the retired one, set the current one in encryption.passphrase';

export class Keyring {
  private readonly cache = new Map<string, KeyHandle>();
  private readonly unlocked = new Map<string, Promise<KeyHandle>>();
  /** Key file contents (keyCheck:JSON) this passphrase has opened itself. */
  private readonly opened = new Set<string>();
  /** The backups at the destination (see consult()); none until set. */
  private catalog: () => Promise<ManifestHead[]> = async () => [];

  /** A true private field: never enumerable, never printed by util.inspect or JSON.stringify. */
  readonly #passphrase: string | null;

  constructor(
    passphrase: string | null,
    private readonly iterations: number,
  ) {
    this.#passphrase = passphrase;
  }

  get enabled(): boolean {
    return this.#passphrase !== null;
  }

  /** The passphrase ends with a line break (a file read as it is), which the command line drops. */
  get endsWithNewline(): boolean {
    return this.#passphrase !== null && /\r?\n$/.test(this.#passphrase);
  }

  /** Where keyForManifest finds the other manifests of a key (the plugin's catalog). */
  consult(catalog: () => Promise<ManifestHead[]>): void {
    this.catalog = catalog;
  }

  /**
   * The key for a new backup on `set`, with the key file to embed in its manifest. `embedded`: the
   * key file the newest encrypted backup's manifest embeds. When key.json is missing at every
   * destination it is put back from that copy if the passphrase opens it, so a deleted key.json
   * does not split the backups between two master keys. If it does not open (a new passphrase
   * after key.json was moved away on purpose, to rotate the key, or rewrapped and then lost), a new
   * master key is made and `warn` says so: the older backups keep needing their own passphrase.
   */
  async keyForBackup(set: DestinationSet, embedded: KeyFile | null = null, warn: (message: string) => void = () => undefined): Promise<{ key: KeyHandle; keyFile: KeyFile }> {
    const passphrase = this.requirePassphrase('create an encrypted backup');
    const found = await this.readKeyFiles(set);
    // a destination that cannot say what its key.json holds takes no part in this backup (under
    // 'all', or with none left, the backup fails: markFailed throws, with the destination's error)
    for (const f of found) if (f.unanswered && set.writers.includes(f.member)) set.markFailed(f.member, f.unanswered);
    const bad = found.find((f) => f.unreadable);
    if (bad) {
      // Never replaced by a new key: the old backups need the master key it wraps.
      throw new BackupError('ERR_BAD_KEY_FILE', `key.json at ${bad.label} is unreadable (${errorMessage(bad.unreadable)}), so no new backup is written there; if it is this plugin's, ${PUT_KEY_FILE_BACK} (or copy one by hand: every manifest embeds one, encryption.keyFile in manifests/<id>.json; take the newest backup's, as one older than a rewrap opens only with the passphrase before it; restores use these copies on their own)`, { cause: bad.unreadable });
    }
    const holder = found.find((f) => f.keyFile);
    let keyFile = holder?.keyFile ?? null;
    if (!keyFile && embedded) {
      const opened = await this.unlock(embedded, passphrase, "the key file embedded in the newest encrypted backup's manifest").then(
        () => true,
        (err: unknown) => {
          if (err instanceof BackupError && err.code === 'ERR_WRONG_PASSPHRASE') return false;
          throw err;
        },
      );
      if (opened) keyFile = embedded;
      else warn(`key.json is missing and the passphrase does not open the key file of the newest encrypted backup: a new master key is made (key rotation). Backups made before need the passphrase they were made with`);
    }
    if (!keyFile) {
      // a destination that did not answer may hold the backups' key: the new one made now is then
      // a second key, which that destination refuses once it answers (ERR_KEY_CONFLICT there, below).
      // Not refused here: under 'any' a first backup must be taken while one destination is down
      // (review-29 F2; a first version refused it, review-29b G2 and CI)
      const unanswered = found.filter((f) => f.unanswered && set.strategy !== 'priority');
      if (unanswered.length > 0) {
        warn(`key.json could not be read at ${unanswered.map((f) => f.label).join(', ')} (${errorMessage(unanswered[0]!.unanswered)}) and no destination that answered holds one: a new master key is made. If that destination holds the backups' key already, it refuses backups under the new one once it answers (ERR_KEY_CONFLICT, named in each backup's destination status): then move the newer key.json away where it stops them (backups made under it keep their key in their manifests)`);
      }
      const created = await createKeyFile(passphrase, { iterations: this.iterations });
      keyFile = created.keyFile;
      this.cache.set(created.key.keyCheck, created.key);
      this.opened.add(`${keyFile.keyCheck}:${JSON.stringify(keyFile)}`);
    }
    // key.json itself must open with this passphrase (not a key cached from another wrapping of
    // it: after a rewrap, the old passphrase opens the older manifests' copies, never key.json)
    const where = holder ? `key.json at ${holder.label}` : 'key.json at the destination';
    const key = await this.unlock(keyFile, passphrase, where, { exact: true }).catch(async (err: unknown) => {
      if (holder && err instanceof BackupError && err.code === 'ERR_BAD_KEY_FILE') {
        // it opens, but its keyCheck is not the key's: a changed character
        throw new BackupError('ERR_BAD_KEY_FILE', `${where} is damaged (${err.message}), so no new backup is written; ${PUT_KEY_FILE_BACK}`, { cause: err });
      }
      if (holder && embedded && embedded.keyCheck === keyFile!.keyCheck && err instanceof BackupError && err.code === 'ERR_WRONG_PASSPHRASE') {
        const embeddedOpens = await this.unlock(embedded, passphrase, 'the key file embedded in the newest manifest', { exact: true }).then(() => true, () => false);
        if (embeddedOpens && damagedCopyOf(keyFile!, embedded)) {
          throw new BackupError(
            'ERR_BAD_KEY_FILE',
            `${where} is damaged: the passphrase opens the key file the newest backup's manifest embeds, and ${where} keeps its salt or nonce (a rewrap draws both anew) but does not open; no new backup is written until it is put back: ${PUT_KEY_FILE_BACK}`,
            { cause: err },
          );
        }
        if (embeddedOpens) {
          throw new BackupError(
            'ERR_WRONG_PASSPHRASE',
            `the passphrase opens the backups' key (keyCheck ${keyFile!.keyCheck}) in the key file the newest backup's manifest embeds, but not ${where}: either key.json was rewrapped to a new passphrase (s3db-backup rewrap; then set that one in encryption.passphrase, in every instance), or it is damaged (then put it back: move it away and the next backup writes it again from the manifest's copy, or copy encryption.keyFile from the newest backup's manifests/<id>.json over it: an older one may be wrapped to a passphrase changed since)`,
            { cause: err, details: { explained: true } },
          );
        }
      }
      throw err;
    });
    // the other destinations' copies: one damaged inside a field is named so, not taken for a stale rewrap or another key (review-33b F4)
    await this.markDamaged(found, embedded, passphrase);
    const damaged = found.filter((f) => f.unreadable && !f.foreign);
    if (damaged.length > 0) {
      throw new BackupError('ERR_BAD_KEY_FILE', `key.json at ${damaged.map((f) => `${f.label} is damaged (${errorMessage(f.unreadable)})`).join('; at ')}, so no new backup is written; ${PUT_KEY_FILE_BACK}`, { cause: damaged[0]!.unreadable });
    }
    const stale = await this.otherWrappings(found, keyFile, passphrase);
    if (stale.length > 0) {
      throw new BackupError('ERR_WRONG_PASSPHRASE', `${staleWrappingProblem(`key.json at ${stale.join(', ')}`, stale.length > 1, where)}; no backup is written until they match: ${STALE_WRAPPING_ADVICE}`, { details: { explained: true } });
    }
    const body = Buffer.from(JSON.stringify(keyFile, null, 2));
    for (const member of set.writers) {
      const existing = found.find((f) => f.label === member.label)?.keyFile;
      if (existing && existing.keyCheck !== keyFile.keyCheck) {
        const conflict = new BackupError(
          'ERR_KEY_CONFLICT',
          `${member.label} already holds a key file for another master key (keyCheck ${existing.keyCheck}, expected ${keyFile.keyCheck}); point the destinations of one plugin at one key, or move the old key.json away`,
        );
        // under 'any' the others take the backup, and that destination says why it did not (review-29 F2)
        if (set.strategy !== 'any' || set.writers.length < 2) throw conflict;
        warn(`${conflict.message}: this backup is not written there`);
        set.markFailed(member, conflict);
        continue;
      }
      if (!existing && !found.find((f) => f.member === member)?.unanswered) {
        await member.createIfAbsent(paths.keyFile, body).catch((err: unknown) => set.markFailed(member, err));
      }
    }
    return { key, keyFile };
  }

  /**
   * recoverBackups(): puts key.json back where it is there but unreadable (every backup there is
   * refused, ERR_BAD_KEY_FILE, and list and verify do not notice: walk-28 F5), from a copy that
   * opens with the passphrase as it is: another destination's key.json when one is readable (the
   * current wrapping: a manifest's copy may be wrapped to a passphrase a rewrap retired, which
   * must not come back, review-md R4), else `embedded` (the key file the newest encrypted
   * backup's manifest embeds). Never a new key: the backups need the master key the damaged file
   * wrapped. Says what it put back and what it could not. Another tool's JSON file named key.json
   * is left as it is, and named only to an encrypting plugin (the one it stops); so is a key.json
   * wrapping the same master key that the passphrase does not open beside one it opens (which
   * one is current is the operator's to say: walk-28 F4).
   */
  async mendKeyFiles(set: DestinationSet, embedded: KeyFile | null): Promise<{ mended: { destination: string; from: string }[]; left: { destination: string; reason: string }[] }> {
    const found = await this.readKeyFiles(set);
    if (this.#passphrase !== null) await this.markDamaged(found, embedded, this.#passphrase);
    const untouched = this.#passphrase === null ? [] : found.filter((f) => f.foreign).map((f) => ({ destination: f.label, reason: `${errorMessage(f.unreadable)}: left as it is` }));
    // a wrapping this passphrase does not open beside one it opens: which one is current is the
    // operator's to say (a rewrap not finished, or one this instance's passphrase missed), so
    // it is named, never overwritten (review-md R4)
    const opening = this.#passphrase === null ? undefined : await this.firstOpening(found, this.#passphrase);
    if (opening) {
      const stale = await this.otherWrappings(found, opening.keyFile!, this.#passphrase!);
      untouched.push(...stale.map((label) => ({ destination: label, reason: `${staleWrappingProblem('it', false, `key.json at ${opening.label}`)}; left as it is: ${STALE_WRAPPING_ADVICE}` })));
    }
    untouched.push(...found.filter((f) => f.unanswered).map((f) => ({ destination: f.label, reason: `key.json could not be read there (${errorMessage(f.unanswered)}), so it was not checked: run recover again once it answers` })));
    const bad = found.filter((f) => f.unreadable && !f.foreign);
    if (bad.length === 0) return { mended: [], left: untouched };
    const leave = (reason: string) => ({ mended: [], left: [...untouched, ...bad.map((b) => ({ destination: b.label, reason: `key.json is unreadable (${errorMessage(b.unreadable)}) and ${reason}` }))] });
    if (this.#passphrase === null) return leave('no passphrase was given to check a copy against: run recover with the passphrase the backups use');
    const current = found.filter((f) => f.keyFile).map((f) => ({ keyFile: f.keyFile!, from: `key.json at ${f.label}` }));
    const candidates = current.length > 0 ? current : embedded ? [{ keyFile: embedded, from: "the key file the newest encrypted backup's manifest embeds" }] : [];
    for (const { keyFile, from } of candidates) {
      const opens = await this.unlock(keyFile, this.#passphrase, from, { exact: true }).then(
        () => true,
        () => false,
      );
      if (!opens) continue;
      const body = Buffer.from(JSON.stringify(keyFile, null, 2));
      const mended: { destination: string; from: string }[] = [];
      const left: { destination: string; reason: string }[] = [...untouched];
      for (const b of bad) {
        // by compare-and-swap: a key.json written there meanwhile (a rewrap, by hand) is not overwritten
        const put = b.etag === undefined ? b.member.write(paths.keyFile, body).then(() => true) : b.member.replaceIfMatch(paths.keyFile, body, b.etag).then((r) => r.replaced);
        await put.then(
          (replaced) => (replaced ? mended.push({ destination: b.label, from }) : left.push({ destination: b.label, reason: 'key.json changed while recover ran (a rewrap, or by hand): left as it is; run recover again' })),
          (err: unknown) => left.push({ destination: b.label, reason: `key.json is unreadable and could not be written back (${errorMessage(err)})` }),
        );
      }
      return { mended, left };
    }
    if (candidates.length === 0) return leave('no other copy of it is at hand (no readable key.json elsewhere, no encrypted backup)');
    return leave(current.length > 0 ? `${current.map((c) => c.from).join(', ')} does not open with this passphrase (rewrapped to another? run recover with the passphrase key.json now takes)` : "the newest backup's key file does not open with this passphrase: copy encryption.keyFile from the newest manifest that opens with it");
  }

  /**
   * Marks unreadable the key.json copies of `found` that are damaged though well formed: one that
   * opens but whose keyCheck is not its key's, and one that does not open yet keeps the salt or
   * nonce of a wrapping the passphrase opens (another destination's key.json, else `embedded`):
   * damagedCopyOf. Another wrapping altogether (a rewrap) is left to the stale-wrapping rules.
   */
  private async markDamaged(found: FoundKeyFile[], embedded: KeyFile | null, passphrase: string): Promise<void> {
    const opening = await this.firstOpening(found, passphrase);
    const reference = opening?.keyFile ?? (embedded && (await this.unlock(embedded, passphrase, "the newest backup's key file", { exact: true }).then(() => true, () => false)) ? embedded : null);
    for (const f of found) {
      if (!f.keyFile || f === opening) continue;
      const failure = await this.unlock(f.keyFile, passphrase, `key.json at ${f.label}`, { exact: true }).then(() => null, (err: unknown) => err);
      if (failure instanceof BackupError && failure.code === 'ERR_BAD_KEY_FILE') {
        Object.assign(f, { keyFile: null, unreadable: failure });
      } else if (failure && reference && damagedCopyOf(f.keyFile, reference)) {
        Object.assign(f, { keyFile: null, unreadable: new Error(`it keeps the salt or nonce of ${opening ? `key.json at ${opening.label}` : "the newest backup's key file"}, which the passphrase opens (a rewrap draws both anew), but does not open: damaged`) });
      }
    }
  }

  /** The first member whose key.json opens with `passphrase` as it is. */
  private async firstOpening(found: FoundKeyFile[], passphrase: string): Promise<FoundKeyFile | undefined> {
    for (const f of found) {
      if (!f.keyFile) continue;
      const opens = await this.unlock(f.keyFile, passphrase, `key.json at ${f.label}`, { exact: true }).then(
        () => true,
        () => false,
      );
      if (opens) return f;
    }
    return undefined;
  }

  /**
   * Members whose key.json wraps `keyFile`'s master key (same keyCheck) in another wrapping that
   * `passphrase` does not open, while it opens `keyFile`: a rewrap that reached only some
   * destinations, or a key file put back from a manifest older than a rewrap. Such a key.json
   * keeps a passphrase the rewrap retired working there (walk-28 F4: only the first was checked).
   * One unwrap per distinct wrapping (cached).
   */
  private async otherWrappings(found: FoundKeyFile[], keyFile: KeyFile, passphrase: string): Promise<string[]> {
    const wrapping = JSON.stringify(keyFile);
    const stale: string[] = [];
    for (const f of found) {
      if (!f.keyFile || f.keyFile.keyCheck !== keyFile.keyCheck || JSON.stringify(f.keyFile) === wrapping) continue;
      const opens = await this.unlock(f.keyFile, passphrase, `key.json at ${f.label}`, { exact: true }).then(
        () => true,
        (err: unknown) => {
          if (err instanceof BackupError && err.code === 'ERR_WRONG_PASSPHRASE') return false;
          throw err;
        },
      );
      if (!opens) stale.push(f.label);
    }
    return stale;
  }

  /** The keyCheck of the master key in the destinations' key.json (the first readable one), or null when there is none. */
  async currentKeyCheck(set: DestinationSet): Promise<string | null> {
    return (await this.readKeyFiles(set)).find((f) => f.keyFile)?.keyFile?.keyCheck ?? null;
  }

  /** The master key of a backup, for verify and restore. */
  async keyForManifest(manifest: ManifestHead, set: DestinationSet): Promise<KeyHandle> {
    if (!manifest.encryption) throw new BackupError('ERR_INTERNAL', `backup ${manifest.id} is not encrypted`);
    const keyCheck = manifest.encryption.keyCheck;
    const cached = this.cache.get(keyCheck);
    if (cached) return cached;
    const passphrase = this.requirePassphrase(`read encrypted backup ${manifest.id}`);
    const candidates: { keyFile: KeyFile; where: string }[] = [];
    // An unreadable key.json is passed over: the manifest's own copy follows.
    for (const found of await this.readKeyFiles(set)) {
      if (found.keyFile?.keyCheck === keyCheck) candidates.push({ keyFile: found.keyFile, where: `key.json at ${found.label}` });
    }
    candidates.push({ keyFile: manifest.encryption.keyFile as KeyFile, where: `the key file in manifest ${manifest.id}` });
    let lastError: unknown = null;
    const tried = new Set<string>();
    const attempt = async (candidate: { keyFile: KeyFile; where: string }): Promise<KeyHandle | null> => {
      const wrapping = JSON.stringify(candidate.keyFile);
      if (tried.has(wrapping)) return null;
      tried.add(wrapping);
      try {
        return await this.unlock(candidate.keyFile, passphrase, candidate.where);
      } catch (err) {
        lastError = err;
        return null;
      }
    };
    for (const candidate of candidates) {
      const key = await attempt(candidate);
      if (key) return key;
    }
    // only after those fail: the other manifests are listed (and wrappings differ only after a rewrap)
    const others = (await this.catalog().catch(() => [] as Manifest[]))
      .filter((m) => m.id !== manifest.id && m.encryption?.keyCheck === keyCheck && m.encryption.keyFile)
      .sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0));
    for (const other of others) {
      const key = await attempt({ keyFile: other.encryption!.keyFile as KeyFile, where: `the key file in manifest ${other.id}` });
      if (key) return key;
    }
    throw lastError instanceof BackupError && lastError.code === 'ERR_WRONG_PASSPHRASE'
      ? new BackupError('ERR_WRONG_PASSPHRASE', `Decryption failed: incorrect passphrase for backup ${manifest.id} (neither the destination's key.json nor the key file of any backup of its key opens with it); check encryption.passphrase`)
      : (lastError as Error);
  }

  /**
   * The master key `keyFile` wraps. `exact`: only if this passphrase opens this key file (one
   * unwrap per key file content); otherwise a key already opened from another wrapping of the same
   * master key (its keyCheck) answers at once.
   */
  private async unlock(keyFile: KeyFile, passphrase: string, where: string, options: { exact?: boolean } = {}): Promise<KeyHandle> {
    const cacheKey = `${keyFile.keyCheck}:${JSON.stringify(keyFile)}`;
    const cached = this.cache.get(keyFile.keyCheck);
    if (cached && !(options.exact && !this.opened.has(cacheKey))) return cached;
    let pending = this.unlocked.get(cacheKey);
    if (!pending) {
      pending = unlockKeyFile(keyFile, passphrase).catch((err: unknown) => {
        this.unlocked.delete(cacheKey);
        if (err instanceof BackupError && err.code === 'ERR_WRONG_PASSPHRASE') {
          throw new BackupError('ERR_WRONG_PASSPHRASE', `Decryption failed: incorrect passphrase for ${where}; check encryption.passphrase`, { cause: err });
        }
        throw err;
      });
      this.unlocked.set(cacheKey, pending);
    }
    const key = await pending;
    this.cache.set(key.keyCheck, key);
    this.opened.add(cacheKey);
    return key;
  }

  /**
   * Each member's key.json (FoundKeyFile). A destination that fails the stat or the read is
   * `unanswered`, never "unreadable": a network error is not a damaged file (walk-28 F4: it was
   * reported so, with advice to put the file back, and recover would have written over it).
   */
  private async readKeyFiles(set: DestinationSet): Promise<FoundKeyFile[]> {
    const out: FoundKeyFile[] = [];
    for (const member of set.members) {
      const at = { member, label: member.label };
      let text: string;
      let etag: string | undefined;
      try {
        const info = await member.stat(paths.keyFile);
        if (!info) {
          out.push({ ...at, keyFile: null });
          continue;
        }
        etag = info.etag;
        text = await readText(member, paths.keyFile);
      } catch (err) {
        out.push({ ...at, keyFile: null, unanswered: err });
        continue;
      }
      let parsed: KeyFile;
      try {
        parsed = JSON.parse(text) as KeyFile;
      } catch (err) {
        out.push({ ...at, keyFile: null, unreadable: err, etag });
        continue;
      }
      if (typeof parsed?.keyCheck === 'string') {
        // a key file of this tool whose fields are not well formed (a character changed: still JSON) is damaged
        const malformed = (() => {
          try {
            parseKeyFile(parsed);
            return null;
          } catch (err) {
            return err;
          }
        })();
        out.push(malformed ? { ...at, keyFile: null, unreadable: malformed, etag } : { ...at, keyFile: parsed, etag });
      } else out.push({ ...at, keyFile: null, foreign: true, etag, unreadable: new Error("it is JSON, but not an s3db-backup key file (no keyCheck): another tool's file in this directory? Give the backups a directory or prefix of their own") });
    }
    return out;
  }

  private requirePassphrase(what: string): string {
    if (this.#passphrase === null) {
      throw new BackupError('ERR_PASSPHRASE_REQUIRED', `a passphrase is needed to ${what}; set encryption.passphrase (e.g. from process.env.BACKUP_PASSPHRASE)`);
    }
    return this.#passphrase;
  }
}
