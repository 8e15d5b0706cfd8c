/**
 * The catalog: what backups exist, read from the destination(s), never from the database.
 * It works in a fresh process against an empty database with nothing but the destination config.
 *
 * - list(): every manifests/<id>.json of every destination (merged by id), newest first, with the
 *   latest on-demand verification result (verifications/<id>.json) applied; a corrupt manifest is
 *   left out (survey() names it), never hides the others, and neither does a destination that
 *   cannot be listed while another can (survey() names it).
 * - chainOf(): an incremental's ancestors, full first; a missing ancestor is a clear error.
 * - remove(): uncommits first (pending marker with deleting=true, then manifest), then deletes the
 *   parts, so a crash midway never leaves a manifest pointing at missing parts.
 * - recover(): puts back lost or corrupt manifests from the copies backups keep beside their parts
 *   (or from another destination that holds them)
 *   (index-repair.ts then puts back lost indexes, beside the manifests, which never change).
 * - cleanupLeftovers(): deletes the parts of backups that died before committing (their pending
 *   marker is stale: the heartbeat is older than staleAfterMs, or the pid is dead on this host).
 *
 * Whole manifests are cached by id (they never change once committed, but for one rewrite of the
 * destinations' statuses right after a commit one of them failed), at most MANIFEST_CACHE_BYTES
 * of them; listings hold ListedManifests (no part list, no s3db.json), so memory does not grow with
 * the catalog times the database. A verification record is read again whenever its change tag
 * differs (another process may have recorded a newer result); a listing learns the tags from one
 * listing of verifications/ per destination.
 */
import { hostname } from 'node:os';
import type { DestinationSet } from '../destinations/set.js';
import { readText, type Destination, type ObjectInfo } from '../destinations/types.js';
import { BackupError, errorMessage } from '../errors.js';
import type { PendingState } from './backup.js';
import type { IndexRepair } from './index-repair.js';
import { processSpace } from '../lease/process-space.js';
import { isOriginalPluginId, paths } from './layout.js';
import { definedResources, parseManifest, summarize, type BackupSummary, type Manifest, type ManifestHead, type VerificationResult } from './manifest.js';
import { mapOrdered } from './s3db.js';

/** Why a manifest is left out of a listing instead of failing it: corrupt, of a newer format, archived (an S3 lifecycle rule moved it to GLACIER), or unreadable at every destination. */
const UNLISTABLE: ReadonlySet<string> = new Set(['ERR_MANIFEST_CORRUPT', 'ERR_MANIFEST_VERSION', 'ERR_ARCHIVED_OBJECT', 'ERR_ALL_DESTINATIONS_FAILED']);
/** Manifests (and their verification records) read at once when listing. */
const CATALOG_READS = 16;

/**
 * A manifest as a listing holds it: without its part list and `s3dbJson`, which grow with the
 * database (a 500 GB backup's manifest is about 3 MB); `definedResources` is what listings need of
 * the latter. get() and require() read the whole manifest.
 */
export type ListedManifest = ManifestHead & { definedResources: string[] };

function listedOf(m: Manifest): ListedManifest {
  const { parts: _parts, s3dbJson, ...rest } = m;
  return { ...rest, definedResources: definedResources(s3dbJson) };
}

/** Bytes of whole manifests (by their JSON text) kept in memory at most; the least recently used go first. */
const MANIFEST_CACHE_BYTES = 64 * 1024 * 1024;

/** Whole manifests by id, least recently used evicted past `limit` bytes (manifests never change once written). */
export class ManifestCache {
  private readonly entries = new Map<string, { manifest: Manifest; bytes: number }>();
  private bytes = 0;

  constructor(private readonly limit = MANIFEST_CACHE_BYTES) {}

  get(id: string): Manifest | undefined {
    const hit = this.entries.get(id);
    if (!hit) return undefined;
    this.entries.delete(id);
    this.entries.set(id, hit);
    return hit.manifest;
  }

  set(id: string, manifest: Manifest, bytes: number): void {
    this.delete(id);
    this.entries.set(id, { manifest, bytes });
    this.bytes += bytes;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.limit || oldest === id) break;
      this.entries.delete(oldest);
      this.bytes -= entry.bytes;
    }
  }

  delete(id: string): void {
    const hit = this.entries.get(id);
    if (!hit) return;
    this.entries.delete(id);
    this.bytes -= hit.bytes;
  }
}

/** A backup as listings show it: its manifest's head and its summary as the manifest alone gives it. */
interface Listed {
  manifest: ListedManifest;
  summary: BackupSummary;
}

/** `summary` with the backup's latest verification (summarize()'s two verification fields). */
function withVerification(summary: BackupSummary, verification: VerificationResult | null): BackupSummary {
  return { ...summary, verified: verification?.verified === true, verification };
}

/** What became of a verification result given to Catalog.recordVerification. */
export type RecordOutcome = 'recorded' | 'superseded' | 'unwritten' | 'kept';

export class Catalog {
  private readonly manifests = new ManifestCache();
  /** Every listed backup's head, kept: a few kB each, so a listing re-reads no manifest (see the top comment). */
  private readonly heads = new Map<string, Listed>();
  /** Verification records read, by destination and path, with the change tag they had: read again only when it changes. */
  private readonly verifications = new Map<string, { tag: string; result: VerificationResult }>();

  /** `warn`: what the catalog could not write and the caller does not hear of (a verification record). */
  constructor(
    private readonly set: DestinationSet,
    private readonly warn: (message: string, id: string) => void = () => undefined,
  ) {}

  /** Ids of committed backups across all destinations. */
  async ids(unlisted?: (label: string, error: string) => void): Promise<string[]> {
    return [...(await this.holders(unlisted)).keys()];
  }

  /** Ids of committed backups, each with the destinations whose listing holds its manifest. */
  private async holders(unlisted?: (label: string, error: string) => void): Promise<Map<string, string[]>> {
    const listed = await this.set.listMerged(paths.manifestsPrefix, unlisted);
    return new Map(listed.filter((o) => o.path.endsWith('.json')).map((o) => [o.path.slice(paths.manifestsPrefix.length, -'.json'.length), o.labels]));
  }

  private async headOf(id: string): Promise<Listed | null> {
    const known = this.heads.get(id);
    if (known) return known;
    const manifest = await this.get(id);
    if (!manifest) return null;
    const head = { manifest: listedOf(manifest), summary: summarize(manifest, null) };
    this.heads.set(id, head);
    return head;
  }

  /** Whether some destination holds `path`: true at the first that answers so (one that hangs or fails does not hold the others up). */
  private heldAnywhere(path: string): Promise<boolean> {
    return new Promise((resolve) => {
      let pending = this.set.members.length;
      if (pending === 0) resolve(false);
      for (const member of this.set.members) {
        member.stat(path).then(
          (info) => (info ? resolve(true) : --pending === 0 && resolve(false)),
          () => --pending === 0 && resolve(false),
        );
      }
    });
  }

  /** Drops what is kept of backup `id` (deleted, or its manifest put back). */
  private forget(id: string): void {
    this.manifests.delete(id);
    this.heads.delete(id);
  }

  /**
   * The manifest of `id`, or null. `confirm`: a cached one is served only while some destination
   * still holds it (another process may have deleted the backup since: one stat per destination).
   */
  async get(id: string, options: { confirm?: boolean } = {}): Promise<Manifest | null> {
    const cached = this.manifests.get(id);
    if (cached && options.confirm && !(await this.heldAnywhere(paths.manifest(id)))) {
      this.forget(id);
      return null;
    }
    if (cached) return cached;
    if (!/^[A-Za-z0-9._-]+$/.test(id)) return null;
    try {
      const { value } = await this.set.readWithFallback(paths.manifest(id), async (stream, member) => {
        const chunks: Buffer[] = [];
        for await (const c of stream) chunks.push(c as Buffer);
        const text = Buffer.concat(chunks).toString('utf8');
        return { manifest: parseManifest(text, `${paths.manifest(id)} at ${member.label}`), bytes: text.length };
      });
      this.manifests.set(id, value.manifest, value.bytes);
      return value.manifest;
    } catch (err) {
      if (err instanceof BackupError && (err.code === 'ERR_DESTINATION_NOT_FOUND' || err.code === 'ERR_ALL_DESTINATIONS_FAILED') && !(await this.ids()).includes(id)) return null;
      throw err;
    }
  }

  /**
   * A copy of backup `id`'s manifest that `trusted` accepts, or null: the manifest at each
   * destination, then each copy beside the parts those name. Found, it replaces the one kept, so a
   * manifest edited at one destination of several does not hide an intact one at another (the
   * plugin asks only when the one kept is suspect: plugin.ts authenticChain).
   */
  async trustedCopy(id: string, trusted: (candidate: Manifest) => Promise<boolean>): Promise<Manifest | null> {
    const seen = new Set<string>();
    const copies = new Set<string>();
    const tryAt = async (member: Destination, path: string): Promise<Manifest | null> => {
      let candidate: Manifest;
      try {
        const text = await readText(member, path);
        if (seen.has(text)) return null;
        seen.add(text);
        candidate = parseManifest(text, `${path} at ${member.label}`);
        if (candidate.id !== id) return null;
        if (await trusted(candidate)) {
          this.forget(id);
          this.manifests.set(id, candidate, text.length);
          return candidate;
        }
      } catch {
        return null; // missing, unreadable or corrupt here: another copy may do
      }
      if (candidate.copy) copies.add(candidate.copy);
      return null;
    };
    for (const member of this.set.members) {
      const found = await tryAt(member, paths.manifest(id));
      if (found) return found;
    }
    for (const copy of copies) {
      for (const member of this.set.members) {
        const found = await tryAt(member, copy);
        if (found) return found;
      }
    }
    return null;
  }

  async require(id: string): Promise<Manifest> {
    if (typeof id !== 'string' || id === '') throw new BackupError('ERR_INVALID_OPTION', 'Invalid option "backupId": a backup id is required (see listBackups())');
    const m = await this.get(id, { confirm: true });
    if (!m && isOriginalPluginId(id)) {
      throw new BackupError(
        'ERR_BACKUP_NOT_FOUND',
        `backup ${id} does not exist at ${this.set.label}: its id is one of s3db.js's own BackupPlugin, whose backups no plugin can restore (they stored records as text, which damaged them; README "Switching from s3db.js's BackupPlugin"). listBackups() shows the backups this plugin made`,
      );
    }
    if (!m) throw new BackupError('ERR_BACKUP_NOT_FOUND', `backup ${id} does not exist at ${this.set.label}; listBackups() shows the ones that do`);
    return m;
  }

  /**
   * The latest recorded verification of `id`, or null. `listed`: the verification records each
   * destination held when a listing began (verificationRecords()), so that a listing asks no
   * destination about a backup that has none (a HEAD per backup on S3); a destination missing
   * from it is asked.
   * Each destination keeps the records written while it was among the verifier's destinations,
   * so their records differ when a verification ran over some of them only (the runbook's
   * `verify <id> --directory ...` beside a second destination) or some refused the write. The
   * answer weighs them all, whatever the destinations' order:
   * - an unreadable record counts as failing (it may say so): verify again;
   * - the newest record gives the verdict, and `destinations` the newest verdict on each copy
   *   across all records (so a copy found damaged since stays named: index repair reads it);
   * - a newest failure that judged copies only (every destination it checked failed) does not
   *   condemn the backup while a destination it did not check was last verified good in a record
   *   that verified the backup as a whole (walk-28 F1). A failure of the backup itself (its index
   *   and parts disagree while copies read well; a forged manifest judged good copies too) is
   *   never outweighed, nor is a newer failure at every destination (review-md R1, R2).
   */
  async latestVerification(id: string, listed?: Map<Destination, Map<string, ObjectInfo>>): Promise<VerificationResult | null> {
    const records: VerificationResult[] = [];
    for (const member of this.set.members) {
      const found = await this.verificationAt(member, id, listed);
      if (found?.unreadable) return found.record;
      if (found) records.push(found.record);
    }
    if (records.length === 0) return null;
    const newestFirst = records.sort((a, b) => Date.parse(b.startedAt ?? b.at) - Date.parse(a.startedAt ?? a.at));
    const newest = newestFirst[0]!;
    // the newest verdict on each copy, and the record it came from
    const latest = new Map<string, { verdict: VerificationResult['destinations'][number]; from: VerificationResult }>();
    for (const record of newestFirst) for (const d of record.destinations) if (!latest.has(d.label)) latest.set(d.label, { verdict: d, from: record });
    const destinations = [...latest.values()].map((l) => l.verdict);
    if (newest.verified) return { ...newest, destinations };
    const judgedCopiesOnly = newest.destinations.length > 0 && newest.destinations.every((d) => !d.verified);
    const checked = new Set(newest.destinations.map((d) => d.label));
    const vouched = judgedCopiesOnly && [...latest].some(([label, l]) => !checked.has(label) && l.verdict.verified && l.from.verified);
    return vouched ? { ...newest, verified: true, error: null, destinations } : { ...newest, destinations };
  }

  /**
   * The verification record of `id` at `member` (see latestVerification for `listed`), or null.
   * A record that is there and cannot be read may say the backup failed, so the backup is not
   * counted as good (retention would keep it in place of good ones): it reads as a failure that
   * says to verify again (`unreadable`).
   */
  private async verificationAt(member: Destination, id: string, listed?: Map<Destination, Map<string, ObjectInfo>>): Promise<{ record: VerificationResult; unreadable: boolean } | null> {
    const path = paths.verification(id);
    const known = listed?.get(member);
    const info = known ? known.get(path) : await member.stat(path).catch(() => null);
    if (!info) return null;
    const where = `${member.label}\0${path}`;
    const tag = info.etag !== undefined ? `${info.etag}\0${info.size}` : null;
    const cached = this.verifications.get(where);
    if (cached && cached.tag === tag) return { record: cached.result, unreadable: false };
    let result: VerificationResult;
    try {
      result = JSON.parse(await readText(member, path)) as VerificationResult;
      if (typeof result?.verified !== 'boolean') throw new Error('not a verification record');
    } catch (err) {
      const error = `its latest verification record (${path} at ${member.label}) is unreadable (${errorMessage(err)}): verify the backup again`;
      return { record: { verified: false, level: 'quick', at: new Date(0).toISOString(), error, destinations: [] }, unreadable: true };
    }
    if (tag !== null) this.verifications.set(where, { tag, result });
    return { record: result, unreadable: false };
  }

  /** The verification records at each destination, one listing each (a destination whose listing fails is left out: asked per backup). */
  private async verificationRecords(): Promise<Map<Destination, Map<string, ObjectInfo>>> {
    const out = new Map<Destination, Map<string, ObjectInfo>>();
    for (const member of this.set.members) {
      try {
        const found = new Map<string, ObjectInfo>();
        for await (const o of member.list(paths.verificationsPrefix)) found.set(o.path, o);
        out.set(member, found);
      } catch {
        // asked per backup instead
      }
    }
    return out;
  }

  /**
   * Records `result` (of a verification that began at `startedAt`) as the latest verification of
   * `id`, unless one that began later is recorded already: of two that overlap, the one begun
   * later saw the backup as it is now (e.g. the one recoverBackups() runs after repairing an index
   * that an earlier, slower one found missing). Says whether it did: 'superseded' when a later one
   * is recorded, 'unwritten' when no destination took the record (each failure is warned about),
   * 'kept' when a passing quick one leaves a passing full one recorded: the bytes it found are
   * those the full one decoded (the manifest's SHA-256), so the full verdict still holds, and
   * listings kept saying "verified (quick)" of a backup verified whole (walk-30 F7).
   */
  async recordVerification(id: string, result: VerificationResult, startedAt: number): Promise<RecordOutcome> {
    const latest = await this.latestVerification(id);
    if (latest && Date.parse(latest.startedAt ?? latest.at) > startedAt) return 'superseded';
    if (result.verified && result.level === 'quick' && latest?.verified === true && latest.level === 'full') return 'kept';
    const body = Buffer.from(JSON.stringify({ ...result, startedAt: new Date(startedAt).toISOString() }, null, 1));
    const written = await Promise.allSettled(this.set.members.map((m) => m.write(paths.verification(id), body)));
    written.forEach((w, i) => {
      if (w.status === 'fulfilled') return;
      const what = result.verified ? 'its last recorded result' : 'its last recorded result: retention and the next incremental do not know of the damage found';
      this.warn(`the verification of ${id} (verified: ${String(result.verified)}) could not be recorded at ${this.set.members[i]!.label} (${errorMessage(w.reason)}); listings there still show ${what}`, id);
    });
    return written.some((w) => w.status === 'fulfilled') ? 'recorded' : 'unwritten';
  }

  /** Summaries of every readable backup, newest first (see `survey`). */
  async list(): Promise<{ manifest: ListedManifest; summary: BackupSummary }[]> {
    return (await this.survey()).entries;
  }

  /**
   * Every backup, newest first, and the ids whose manifest is corrupt or archived: those are left out of
   * `entries` (and so never deleted by retention) instead of hiding every other backup, since
   * listing is what a user needs first when things are broken.
   */
  async survey(): Promise<{ entries: { manifest: ListedManifest; summary: BackupSummary }[]; unreadable: { id: string; error: string }[]; unlisted: { label: string; error: string }[] }> {
    const entries: { manifest: ListedManifest; summary: BackupSummary }[] = [];
    const unreadable: { id: string; error: string }[] = [];
    const unlisted: { label: string; error: string }[] = [];
    const holders = await this.holders((label, error) => unlisted.push({ label, error }));
    const ids = [...holders.keys()];
    // a manifest stored at a destination (by its own record) that lists without it: lost there
    const answered = new Set(this.set.members.map((m) => m.label).filter((label) => !unlisted.some((u) => u.label === label)));
    const missingAt = (summary: BackupSummary): string[] =>
      this.set.members.length < 2 ? [] : summary.destinations.filter((d) => d.status === 'ok' && answered.has(d.label) && !(holders.get(summary.id) ?? []).includes(d.label)).map((d) => d.label);
    // (heads of backups deleted since, by another process too, are dropped)
    const current = new Set(ids);
    for (const id of this.heads.keys()) if (!current.has(id)) this.heads.delete(id);
    const records = await this.verificationRecords();
    async function* each() {
      yield* ids;
    }
    // Manifests and verification records are read CATALOG_READS at a time: one after another,
    // a catalog of 1000 backups on S3 took minutes per listing (and a backup lists it twice).
    type Read = { kind: 'listed'; head: Listed; verification: VerificationResult | null } | { kind: 'unreadable'; id: string; error: string };
    const read = async (id: string): Promise<Read | undefined> => {
      try {
        const head = await this.headOf(id);
        return head ? { kind: 'listed', head, verification: await this.latestVerification(id, records) } : undefined;
      } catch (err) {
        // Left out, never hiding the others (and never deleted by retention, which sees only entries).
        if (!(err instanceof BackupError && UNLISTABLE.has(err.code))) throw err;
        return { kind: 'unreadable', id, error: err.message };
      }
    };
    for await (const r of mapOrdered(each(), CATALOG_READS, read)) {
      if (r.kind === 'unreadable') unreadable.push({ id: r.id, error: r.error });
      else {
        const summary = withVerification(r.head.summary, r.verification ?? r.head.manifest.verification);
        const lost = missingAt(summary);
        // "only at": every destination answered (one not listed may hold it: review-29 F7), and one
        // lacks it that the backup did not skip by design ('priority' writes one destination)
        const held = holders.get(summary.id) ?? [];
        const skipped = new Set(summary.destinations.filter((d) => d.status === 'skipped').map((d) => d.label));
        const never = this.set.members.length > 1 && unlisted.length === 0 && [...answered].some((label) => !held.includes(label) && !lost.includes(label) && !skipped.has(label));
        entries.push({ manifest: r.head.manifest, summary: { ...summary, ...(lost.length > 0 ? { manifestMissingAt: lost } : {}), ...(never ? { onlyAt: held } : {}) } });
      }
    }
    entries.sort((a, b) => (a.manifest.startedAt < b.manifest.startedAt ? 1 : a.manifest.startedAt > b.manifest.startedAt ? -1 : a.manifest.id < b.manifest.id ? 1 : -1));
    return { entries, unreadable, unlisted };
  }

  /** The chain of `manifest`, its full first. */
  async chainOf(manifest: Manifest): Promise<Manifest[]> {
    const chain: Manifest[] = [];
    for (const id of manifest.chain) {
      const m = id === manifest.id ? manifest : await this.get(id);
      if (!m) {
        throw new BackupError(
          'ERR_CHAIN_BROKEN',
          `backup ${manifest.id} is an incremental that needs ${id}, whose manifest is missing or unreadable. If only the manifest was lost, recoverBackups() puts it back from its copy beside the parts (then run this again; a backup of s3db-backup 0.1.0 has no copy); if ${id} was deleted, restore a full backup or a complete chain`,
        );
      }
      chain.push(m);
    }
    return chain;
  }

  /** Backups that need `id` to be restored (incrementals built on it). */
  async dependentsOf(id: string): Promise<string[]> {
    const out: string[] = [];
    for (const other of await this.ids()) {
      if (other === id) continue;
      const m = await this.get(other);
      if (m?.chain.includes(id)) out.push(other);
    }
    return out;
  }

  async remove(manifest: Manifest): Promise<void> {
    const marker: PendingState = {
      id: manifest.id,
      type: manifest.type,
      startedAt: manifest.startedAt,
      heartbeatAt: new Date(0).toISOString(),
      host: hostname(),
      pid: 0,
      parts: [...manifest.parts.map((p) => p.path), ...(manifest.copy ? [manifest.copy] : [])],
      deleting: true,
    };
    const body = Buffer.from(JSON.stringify(marker));
    const marked = await Promise.allSettled(this.set.members.map((m) => m.write(paths.pending(manifest.id), body)));
    const rest = [...marker.parts, ...(await this.indexFiles(manifest.id)), paths.verification(manifest.id)];
    // Where the marker could not be written (a full disk), nothing would tell a deletion cut short
    // from a lost manifest (recoverBackups() would put the deleted backup back from its copy, or
    // call its parts a lost backup): there the manifest goes last, so a deletion cut short leaves
    // the backup listed (damaged), to be deleted again. If any of it fails, the manifest stays.
    const unmarked = this.set.members.filter((_, i) => marked[i]!.status === 'rejected');
    await Promise.all(unmarked.map((m) => m.delete(rest)));
    await this.set.delete([paths.manifest(manifest.id)]);
    this.forget(manifest.id);
    await this.set.delete([...rest, paths.pending(manifest.id)]);
  }

  /** Every file of backup `id` under indexes/ at any destination: its index, and a rebuilt one with its reference. */
  private async indexFiles(id: string): Promise<string[]> {
    const found = new Set([paths.index(id)]);
    for (const member of this.set.members) {
      try {
        for await (const o of member.list(paths.indexFiles(id))) found.add(o.path);
      } catch {
        // an unlistable destination fails the delete that follows, which says why
      }
    }
    return [...found];
  }

  /**
   * Puts back the manifest of every backup whose manifests/<id>.json is missing or corrupt at a
   * destination, from the byte-identical copy the backup wrote beside its parts (Manifest.copy),
   * or, lost with that copy, from another destination that holds it; and writes back copies that
   * are missing or damaged from their manifests. A copy is used only when it names itself (`copy`
   * equals its path); nothing is put back while a pending marker says the backup is unfinished or
   * being deleted, or when none of its parts is there. What is not put back is reported in
   * `skipped` (`lost` for a manifest with no copy). A lost index does not stop it: index-repair.ts
   * rebuilds that from the parts. Checksums are not read here: verifyBackup() does that.
   */
  async recover(staleAfterMs: number): Promise<Pick<RecoveryReport, 'recovered' | 'skipped' | 'copies'> & { damaged: { id: string; destination: string; damage: string }[] }> {
    const recovered = new Set<string>();
    const rewritten: { id: string; destination: string }[] = [];
    const damaged: { id: string; destination: string; damage: string }[] = [];
    const skipped: RecoveryReport['skipped'] = [];
    const lost: (RecoveryReport['skipped'][number] & { member: Destination })[] = [];
    const putBackAt = (member: Destination, outcome: { id: string; damage: string | null }) => {
      recovered.add(outcome.id);
      this.forget(outcome.id);
      if (outcome.damage !== null) damaged.push({ id: outcome.id, destination: member.label, damage: outcome.damage });
    };
    for (const member of this.set.members) {
      // a backup committed at another destination but not here (a kill between the manifest
      // writes) is finished here as the next cleanup would finish it (review-32a F2: recover
      // refused it, and said the cleanup would remove it)
      for (const id of await this.halfCommittedAt(member, staleAfterMs)) {
        const finished = await this.finishHalfCommitted(member, id);
        if ('failed' in finished) skipped.push({ id, path: paths.manifest(id), destination: member.label, reason: finished.failed, lost: 'here' });
        if (!('at' in finished)) continue;
        await member.delete([paths.pending(id)]).catch(() => undefined); // (the next cleanup removes a marker left beside a manifest)
        putBackAt(member, { id, damage: null });
      }
      const copies: string[] = [];
      try {
        for await (const o of member.list(paths.dataPrefix)) if (o.path.endsWith('.json')) copies.push(o.path);
      } catch (err) {
        skipped.push({ id: null, path: paths.dataPrefix, destination: member.label, reason: `could not list: ${errorMessage(err)}` });
        continue;
      }
      const withCopy = new Set<string>();
      for (const path of copies) {
        const outcome = await recoverFromCopy(member, path);
        if (outcome === null) continue;
        if (outcome.id !== null) withCopy.add(outcome.id);
        if ('damage' in outcome) putBackAt(member, outcome);
        else skipped.push({ ...outcome, path, destination: member.label });
      }
      lost.push(...(await withoutCopies(member, withCopy)).map((entry) => ({ ...entry, member })));
      // a copy written back is no longer one "not used" (an unreadable copy of a good manifest)
      for (const c of await rewriteCopies(member)) {
        rewritten.push({ id: c.id, destination: c.destination });
        const i = skipped.findIndex((s) => s.destination === member.label && s.path === c.path);
        if (i >= 0) skipped.splice(i, 1);
      }
    }
    // A manifest the listing misses at a destination whose index is gone too (no copy and no index
    // named it above: a cleanup before review-31a F1 deleted a committed backup's second copy
    // there) is looked for as well: the copy below says why it cannot come back
    for (const { summary } of (await this.survey()).entries) {
      for (const label of summary.manifestMissingAt ?? []) {
        const member = this.set.members.find((m) => m.label === label);
        if (!member || recovered.has(summary.id) || lost.some((l) => l.id === summary.id && l.member === member)) continue;
        lost.push({ id: summary.id, path: paths.manifest(summary.id), destination: label, reason: NO_COPY, lost: 'everywhere', member });
      }
    }
    // A manifest missing at one destination while another holds it is no loss of the backup: it
    // is copied from there (the manifest and its copy beside the parts), as lost indexes are
    for (const { member, ...entry } of lost) {
      const holder = entry.id === null ? undefined : await this.holderOf(entry.id, member);
      if (holder === undefined) {
        skipped.push(entry);
        continue;
      }
      const outcome = await copyManifest(holder, member, entry.id!).catch((err: unknown) => ({ id: entry.id!, reason: errorMessage(err) }));
      if ('damage' in outcome) putBackAt(member, outcome);
      else skipped.push({ ...entry, lost: 'here', reason: `${NO_COPY_HERE} from a copy; ${holder.label} holds it (the backup is listed and restored from there), but it was not copied here: ${outcome.reason}` });
    }
    return { recovered: [...recovered].sort(), skipped, damaged, ...(rewritten.length > 0 ? { copies: rewritten } : {}) };
  }

  /**
   * The manifest of backup `id` at a destination other than `member` (text, parsed, and where);
   * `{ none }` when no other holds one (a manifest beside a deletion's marker does not count: the
   * backup is being deleted there); `{ unknown }`, why, when one could not be asked or its manifest
   * not read.
   */
  private async committedElsewhere(id: string, member: Destination): Promise<{ text: string; manifest: Manifest; at: string } | { none: true } | { unknown: string }> {
    let unknown: string | null = null;
    for (const other of this.set.members) {
      if (other === member) continue;
      let text: string;
      try {
        if (!(await other.stat(paths.manifest(id)))) continue;
        if (await other.stat(paths.pending(id))) {
          const marker = JSON.parse(await readText(other, paths.pending(id))) as Partial<PendingState>;
          if (marker.deleting) continue;
        }
        text = await readText(other, paths.manifest(id));
      } catch (err) {
        unknown ??= `${other.label} could not be asked (${errorMessage(err)})`;
        continue;
      }
      try {
        return { text, manifest: parseManifest(text, `${paths.manifest(id)} at ${other.label}`), at: other.label };
      } catch (err) {
        unknown ??= `its manifest at ${other.label} cannot be read (${errorMessage(err)}; recoverBackups() puts it back from its copy)`;
      }
    }
    return unknown !== null ? { unknown } : { none: true };
  }

  /**
   * A deletion cut short after its marker landed at some destinations only (remove() writes them
   * at once) is a deletion everywhere: its marker is written where the backup's manifest is and no
   * marker is, so the cleanup finishes it there too, not only where the marker landed (review-32a
   * F3: the backup stayed listed from the other, "manifest missing", and recoverBackups() put the
   * deleted copy back).
   */
  private async spreadDeletions(failed: (message: string) => void): Promise<void> {
    for (const member of this.set.members) {
      const deleting: { path: string; text: string; id: string }[] = [];
      try {
        for await (const o of member.list(paths.pendingPrefix)) {
          if (!o.path.endsWith('.json') || o.path.endsWith('.probe.json')) continue;
          const text = await readText(member, o.path).catch(() => null);
          const state = text === null ? null : parsedMarker(text);
          if (state?.deleting === true && typeof state.id === 'string') deleting.push({ path: o.path, text: text!, id: state.id });
        }
      } catch {
        continue; // (an unlistable destination: the cleanup below passes it over too)
      }
      for (const { path, text, id } of deleting) {
        for (const other of this.set.members) {
          if (other === member) continue;
          try {
            if (!(await other.stat(paths.manifest(id))) || (await other.stat(path))) continue;
            await other.write(path, Buffer.from(text));
          } catch (err) {
            failed(`could not mark backup ${id} as being deleted at ${other.label} too (its deletion was cut short, marked at ${member.label}): ${errorMessage(err)}; it stays listed from there until it is deleted again`);
          }
        }
      }
    }
  }

  /** Backups whose stale pending marker at `member` is not a deletion's and whose manifest is missing there: unfinished, or committed elsewhere only. */
  private async halfCommittedAt(member: Destination, staleAfterMs: number): Promise<string[]> {
    const ids: string[] = [];
    try {
      for await (const o of member.list(paths.pendingPrefix)) {
        if (!o.path.endsWith('.json') || o.path.endsWith('.probe.json')) continue;
        const text = await readText(member, o.path).catch(() => null); // (unreadable: the cleanup says so)
        const state = text === null ? null : (parsedMarker(text) as PendingState | null);
        if (typeof state?.id !== 'string' || state.deleting || !isStale(state, staleAfterMs)) continue;
        if (!(await member.stat(paths.manifest(state.id)))) ids.push(state.id);
      }
    } catch {
      // (a listing that fails: the copies below meet the same failure and report it)
    }
    return ids;
  }

  /**
   * Finishes at `member` backup `id` when it committed at another destination but not here (a kill
   * between the destinations' manifest writes: review-31a F1): its manifest written here, if its
   * parts and index here are whole (completeHere). `at`: where it had committed; `no`: nowhere
   * else, or not whole here; `unknown`: another destination could not be asked; `failed`: the
   * write here failed (a full or read-only destination), said in a sentence naming the backup.
   */
  private async finishHalfCommitted(member: Destination, id: string): Promise<{ at: string } | { no: true } | { unknown: string } | { failed: string }> {
    const elsewhere = await this.committedElsewhere(id, member);
    if ('unknown' in elsewhere) return elsewhere;
    if (!('manifest' in elsewhere)) return { no: true };
    try {
      return (await completeHere(member, elsewhere.manifest, elsewhere.text)) ? { at: elsewhere.at } : { no: true };
    } catch (err) {
      return { failed: `could not finish backup ${id} at ${member.label}, committed at ${elsewhere.at} (the process ended between the two manifest writes): writing its manifest there failed (${errorMessage(err)}); its parts there are kept, and the next cleanup or recoverBackups() tries again once ${member.label} takes writes` };
    }
  }

  /** Another destination than `except` whose manifest of `id` reads, if any. */
  private async holderOf(id: string, except: Destination): Promise<Destination | undefined> {
    for (const member of this.set.members) if (member !== except && (await manifestReadable(member, id))) return member;
    return undefined;
  }

  /**
   * Deletes what crashed or abandoned backups left; returns the ids cleaned up. `claim` (in-use.ts)
   * is asked for each backup first: one a restore or verification is reading (a deletion that
   * died midway left it listed) is left for a later run.
   */
  async cleanupLeftovers(
    staleAfterMs: number,
    claim: (ids: string[]) => (() => void) | false,
    failed: (message: string) => void = () => undefined,
    completed: (message: string) => void = () => undefined,
  ): Promise<Leftover[]> {
    const cleaned = new Map<string, Leftover>();
    await this.spreadDeletions(failed);
    for (const member of this.set.members) {
      const markers: string[] = [];
      const probes: string[] = [];
      try {
        for await (const o of member.list(paths.pendingPrefix)) {
          // a priority backup's start probe, written and deleted at once: one a kill left (review-32a F4)
          if (o.path.endsWith('.probe.json')) {
            if (o.lastModified && Date.now() - o.lastModified.getTime() > staleAfterMs) probes.push(o.path);
          } else if (o.path.endsWith('.json')) markers.push(o.path);
        }
      } catch {
        continue;
      }
      if (probes.length > 0) await member.delete(probes).catch((err: unknown) => failed(`could not delete ${probes.join(', ')} at ${member.label} (start probes a killed backup left): ${errorMessage(err)}`));
      for (const path of markers) {
        let state: PendingState;
        try {
          state = JSON.parse(await readText(member, path)) as PendingState;
        } catch {
          continue;
        }
        let committed = !state.deleting && (await member.stat(paths.manifest(state.id)).catch(() => null)) !== null;
        if (!committed && !isStale(state, staleAfterMs)) continue;
        if (!committed && !state.deleting) {
          // A kill between the destinations' manifest writes (backup.ts writes them at once) leaves
          // a committed backup without its manifest here: finished here, never deleted (review-31a F1)
          const finished = await this.finishHalfCommitted(member, state.id);
          if ('unknown' in finished) {
            failed(`left the leftovers of backup ${state.id} at ${member.label} for a later cleanup: ${finished.unknown}, so whether the backup committed there is not known (deleting them could delete a committed backup's second copy)`);
            continue;
          }
          if ('failed' in finished) {
            // (its leftovers are a committed backup's: kept; the other markers are still processed: review-32a F1)
            failed(finished.failed);
            continue;
          }
          if ('at' in finished) {
            committed = true;
            completed(`backup ${state.id} had committed at ${finished.at} but not at ${member.label} (the process ended between the two manifest writes); its parts there are whole, so its manifest was written there too`);
          }
        }
        const release = claim([state.id]);
        if (!release) continue;
        try {
          if (!committed) {
            const indexes = [paths.index(state.id)];
            // a deletion that died midway may leave a rebuilt index and its reference (index-repair.ts)
            if (state.deleting) for await (const o of member.list(paths.indexFiles(state.id))) indexes.push(o.path);
            await member.delete([...state.parts, ...indexes, paths.manifest(state.id), paths.verification(state.id)]);
          }
          await member.delete([path]);
          if (!committed) cleaned.set(state.id, { id: state.id, deletion: state.deleting === true || cleaned.get(state.id)?.deletion === true });
        } catch (err) {
          // told, and passed over: one marker that cannot be processed (a path the destination
          // refuses) must not keep every later crash's leftovers there for ever (review-paths P4)
          failed(`could not clean up the leftovers of backup ${state.id} at ${member.label}: ${errorMessage(err)}`);
        } finally {
          release();
        }
      }
      const withTemp = member as { cleanupTempFiles?: (olderThanMs: number) => Promise<number>; abortStaleUploads?: (olderThanMs: number) => Promise<unknown> };
      await withTemp.cleanupTempFiles?.(staleAfterMs).catch(() => undefined);
      await withTemp.abortStaleUploads?.(staleAfterMs).catch(() => undefined);
    }
    return [...cleaned.values()];
  }
}

/** What cleanupLeftovers() removed: a backup that never committed, or one whose deletion was cut short (`deletion`). */
export interface Leftover {
  id: string;
  deletion: boolean;
}

export interface RecoveryReport {
  /** Backups whose manifest was put back (at one destination at least). */
  recovered: string[];
  /** Object indexes put back: copied from another destination or rebuilt from the parts (index-repair.ts). */
  indexes: IndexRepair[];
  /**
   * Copies that were not used, and why (id null when the copy itself is unreadable); and, with
   * `lost`, manifests missing at a destination with no copy to put back, or indexes that could not
   * be put back (rebuilt or copied): `'everywhere'` when no destination holds a good one (the
   * backup cannot be restored as it is), `'here'` when another does.
   */
  skipped: { id: string | null; path: string; destination: string; reason: string; lost?: 'everywhere' | 'here' }[];
  /** Manifest copies beside the parts written back (missing or damaged) from their manifests; absent when none. */
  copies?: { id: string; destination: string }[];
  /** key.json put back where it was unreadable (Keyring.mendKeyFiles), and where it could not be; absent when none was. */
  keyFiles?: { mended: { destination: string; from: string }[]; left: { destination: string; reason: string }[] };
  /** True when no destination holds anything (a mistyped location?): nothing was looked for, nothing written. */
  empty?: true;
}

/**
 * One manifest copy at one destination: the id it recovered (with the parts missing or cut short
 * there, if any), null when that backup's manifest is fine there, or why the copy was not used.
 * A committed backup with some parts damaged is put back all the same: its other resources can
 * still be restored, and its chain's incrementals need it (the caller verifies it, which records
 * the damage). A copy none of whose parts is there is left alone (a deletion whose marker is gone).
 */
async function recoverFromCopy(member: Destination, path: string): Promise<null | { id: string; damage: string | null } | { id: string | null; reason: string }> {
  let text: string;
  let copy: Manifest;
  try {
    text = await readText(member, path);
    copy = parseManifest(text, `${path} at ${member.label}`);
  } catch (err) {
    return { id: null, reason: `not a readable manifest copy: ${errorMessage(err)}` };
  }
  const id = copy.id;
  if (copy.copy !== path) return { id, reason: `names ${String(copy.copy)} as its copy, not this path; left alone` };
  if (await manifestReadable(member, id)) return null;
  return putBack(member, copy, text);
}

/**
 * Writes `text` (the manifest of `manifest.id`, read from a copy) as the manifest at `member`,
 * unless a pending marker says the backup is unfinished or being deleted, or none of its parts
 * is there (a deleted backup); parts missing or cut short are returned as its damage.
 */
async function putBack(member: Destination, manifest: Manifest, text: string): Promise<{ id: string; damage: string | null } | { id: string; reason: string }> {
  const id = manifest.id;
  if (await member.stat(paths.pending(id))) {
    return { id, reason: `${paths.pending(id)} exists: the backup did not finish or is being deleted, and the next backup's cleanup removes it` };
  }
  const damage: string[] = [];
  let missing = 0;
  for (const stored of manifest.parts) {
    const info = await member.stat(stored.path);
    if (!info) {
      damage.push(`${stored.path} is missing`);
      missing++;
    } else if (info.size !== stored.size) damage.push(`${stored.path} has ${info.size} bytes, the manifest says ${stored.size}`);
  }
  if (manifest.parts.length > 0 && missing === manifest.parts.length) return { id, reason: 'none of its parts is there (a deleted backup), so nothing could be restored from it' };
  await member.write(paths.manifest(id), Buffer.from(text));
  return { id, damage: damage.length > 0 ? damage.join('; ') : null };
}

/**
 * Writes back, from each readable manifest at `member`, its copy beside the parts where that copy
 * is missing, damaged, or another backup's: the copy is what puts the manifest back when it is lost.
 */
async function rewriteCopies(member: Destination): Promise<{ id: string; destination: string; path: string }[]> {
  const out: { id: string; destination: string; path: string }[] = [];
  for await (const o of member.list(paths.manifestsPrefix)) {
    const id = /^manifests\/([^/]+)\.json$/.exec(o.path)?.[1];
    if (id === undefined) continue;
    let text: string;
    let manifest: Manifest;
    try {
      text = await readText(member, o.path);
      manifest = parseManifest(text, `${o.path} at ${member.label}`);
    } catch {
      continue; // a corrupt one was put back from its copy above, or is reported
    }
    if (!manifest.copy || (await member.stat(paths.pending(id)))) continue;
    const copy = (await member.stat(manifest.copy)) ? await readText(member, manifest.copy).catch(() => null) : null;
    // A copy of this backup that differs is left alone: one of the two was edited, and without the
    // key this cannot tell which (verification names it; the copy may be the authentic one, which
    // verification and restores then use: review-s19 F1). Delete the wrong one and run this again.
    if (copy === text || (copy !== null && copyOf(copy) === id)) continue;
    await member.write(manifest.copy, Buffer.from(text));
    out.push({ id, destination: member.label, path: manifest.copy });
  }
  return out;
}

/** The backup id of the manifest `text`, or null when it is none (unparseable, damaged). */
function copyOf(text: string): string | null {
  try {
    return parseManifest(text, 'a manifest copy').id;
  } catch {
    return null;
  }
}

/** Puts the manifest of `id` back at `to` from `from`'s, with its copy beside the parts (see putBack). */
async function copyManifest(from: Destination, to: Destination, id: string): Promise<{ id: string; damage: string | null } | { id: string; reason: string }> {
  const text = await readText(from, paths.manifest(id));
  const manifest = parseManifest(text, `${paths.manifest(id)} at ${from.label}`);
  const outcome = await putBack(to, manifest, text);
  if ('damage' in outcome && manifest.copy) await to.write(manifest.copy, Buffer.from(text));
  return outcome;
}

/**
 * Writes `text`, the manifest of a backup committed at another destination, at `member` when the
 * backup was written whole there (not recorded as failed there; every part and the index of their
 * recorded sizes), with its copy beside the parts if that is missing; false, writing nothing, otherwise.
 */
async function completeHere(member: Destination, manifest: Manifest, text: string): Promise<boolean> {
  if (manifest.destinations.find((d) => d.label === member.label)?.status === 'failed') return false;
  for (const stored of [...manifest.parts, manifest.index]) {
    const info = await member.stat(stored.path);
    if (!info || info.size !== stored.size) return false;
  }
  if (manifest.copy && !(await member.stat(manifest.copy))) await member.write(manifest.copy, Buffer.from(text));
  await member.write(paths.manifest(manifest.id), Buffer.from(text));
  return true;
}

/**
 * Backups at `member` whose manifest is lost with no copy to put back: their index is there, no
 * pending marker says they are unfinished, and no copy of theirs was found (`withCopy`). Backups
 * written by s3db-backup 0.1.0 keep no copy; said here so that `recover` does not end as if
 * nothing were missing.
 */
async function withoutCopies(member: Destination, withCopy: Set<string>): Promise<RecoveryReport['skipped']> {
  const out: RecoveryReport['skipped'] = [];
  const seen = new Set<string>();
  try {
    // indexes/<id>.index, or the files of a rebuilt one (<id>.rebuilt.json, <id>.rebuilt-<at>.index)
    for await (const o of member.list('indexes/')) {
      const id = /^indexes\/([^/.]+)\./.exec(o.path)?.[1];
      if (id === undefined || seen.has(id) || withCopy.has(id)) continue;
      seen.add(id);
      if ((await manifestReadable(member, id)) || (await member.stat(paths.pending(id)))) continue;
      out.push({ id, path: paths.manifest(id), destination: member.label, reason: NO_COPY, lost: 'everywhere' });
    }
  } catch (err) {
    out.push({ id: null, path: 'indexes/', destination: member.label, reason: `could not list: ${errorMessage(err)}` });
  }
  return out;
}

const NO_COPY_HERE = "the manifest is missing here and no copy of it is beside the backup's parts (lost with it, or never written: s3db-backup 0.1.0 wrote none), so it cannot be put back";
const NO_COPY = `${NO_COPY_HERE}: this backup, and the incrementals built on it, cannot be restored from the destinations given. If another holds it (a second destination, a synced copy of this one), recover with that one given too (driver 'multi'; the command line's --config); else restore an older full backup or a complete chain (runbook step 6)`;

/** When `member` holds parts but no manifest: what to do about it, and whether manifests were lost (not only an unfinished backup's parts); null otherwise. */
export async function explainPartsWithoutManifests(member: Destination): Promise<{ why: string; manifestsLost: boolean } | null> {
  for await (const o of member.list(paths.pendingPrefix)) {
    if (!o.path.endsWith('.json')) continue;
    const why = `${member.label} holds the parts of an unfinished backup (${o.path}: one running now, or cut short by a crash, a stop or a full disk), not a backup: the next backup, prune() or deleteBackup() deletes them once that one is known to be dead (at once on the same host, else once its heartbeat is older than staleAfterMs, 15 minutes by default); recoverBackups() does not use them`;
    return { why, manifestsLost: false };
  }
  for await (const o of member.list(paths.dataPrefix)) {
    const why = `${member.label} holds backup parts (${o.path}) but no manifest in ${paths.manifestsPrefix}: if manifests were lost or deleted, recoverBackups() puts them back from the copies beside the parts (backups of s3db-backup 0.1.0 have none: it says which)`;
    return { why, manifestsLost: true };
  }
  return null;
}

/** True when manifests/<id>.json exists at `member` and parses (or is of a newer format: not ours to replace). */
async function manifestReadable(member: Destination, id: string): Promise<boolean> {
  if (!(await member.stat(paths.manifest(id)))) return false;
  try {
    parseManifest(await readText(member, paths.manifest(id)), paths.manifest(id));
    return true;
  } catch (err) {
    return err instanceof BackupError && err.code === 'ERR_MANIFEST_VERSION';
  }
}

/** A pending marker's state, or null when `text` is not JSON (a torn write). */
function parsedMarker(text: string): Partial<PendingState> | null {
  try {
    return JSON.parse(text) as Partial<PendingState> | null;
  } catch {
    return null;
  }
}

function isStale(state: PendingState, staleAfterMs: number): boolean {
  if (state.deleting) return true;
  if (state.host === hostname() && state.space === processSpace() && state.pid !== process.pid && !pidAlive(state.pid)) return true;
  return Date.now() - Date.parse(state.heartbeatAt) > staleAfterMs;
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}
