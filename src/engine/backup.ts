/**
 * Taking a backup: a physical, object-level copy of an s3db database.
 *
 * Algorithm:
 *  1. Write pending/<id>.json (the leftovers record), open the key, read s3db.json.
 *  2. List every object under the database's prefix (sorted, paged) and keep the selected ones.
 *     For an incremental, merge-join the listing with the parent's object index: an object whose
 *     (ETag, size, LastModified) is unchanged is only indexed; a new or changed one is stored; a key the parent had
 *     and the listing lacks gets a tombstone.
 *  3. Fetch stored objects with bounded concurrency, in listing order, and write them as archive
 *     records into parts: one run of parts per resource group, a new part when the current one
 *     passes `partSize` plaintext bytes. Every object also gets an index line. Then read
 *     s3db.json again: the manifest keeps that later one (laterDefinitions), which defines every
 *     record read even when the application changed a schema during the backup.
 *  4. Verify what was written (when asked), move the parts to an archive storage class if the
 *     destination has one, write the manifest's copy beside the parts, then the
 *     manifest to every destination that holds all parts: that is the commit point. Remove
 *     pending/<id>.json.
 *  On failure, parts written so far are deleted; a crash leaves pending/<id>.json, which
 *  cleanupLeftovers() (run before each backup) uses to delete the parts.
 *
 * Guarantees: memory is bounded by page size + concurrency x object size + part pipeline buffers,
 * whatever the number of objects, on S3. file:// is listed from its storage one directory at a
 * time (file-listing.ts: the names of the largest resource's records are held); memory:// in one
 * page (s3db.js's client walks and sorts everything on each listing, so paging it would cost
 * O(n^2)): there the listing, 0.5-2 KB an object, is held whole (README, Large). Not guaranteed: a point-in-time snapshot of a database that is
 * written during the backup (S3 has no snapshots): each object is copied as it is when read.
 */
import { hostname } from 'node:os';
import { processSpace } from '../lease/process-space.js';
import type { KeyFile } from '../codec/index.js';
import type { DestinationSet } from '../destinations/set.js';
import { BackupError, conciseCause, errorMessage } from '../errors.js';
import { PUT_SCHEMA_BACK, schemaDamage } from '../damaged-schema.js';
import { ArchiveWriter, type ArchiveRecord } from './archive.js';
import { DATABASE_GROUP, newBackupId, paths, resourceOfKey, type PathTemplate } from './layout.js';
import { definedResources, type BackupType, type Compression, type IndexEntry, type Manifest, type PartEntry, type ResourceStats, type VerificationResult } from './manifest.js';
import type { Keyring } from './keyring.js';
import { bodyToBuffer, hasObjects, isLocalClient, isNotFound, listObjects, mapOrdered, s3dbVersionOf, KeySample, unaddressable, UNADDRESSABLE, type DatabaseLike, type ObjectRead, type SourceEntry } from './s3db.js';
import { keptHeadersOf, rawObjects, type RawObjects } from './raw-objects.js';
import { manifestAuth } from './manifest-auth.js';
import { seal } from './sealed.js';
import { redactSecrets, secretNames } from './secrets.js';
import { redactPayload } from '../redact.js';
import { EncodedSink } from './sink.js';
import type { ParentRef } from './verify.js';
import { IndexLineWriter } from './stored.js';
import { parentIndexEntries } from './parent-index.js';
import { ProgressMeter, type ProgressEvent } from './progress.js';
import { LogicalReader, recordIdOf } from './logical.js';
import { mergeByKey } from './sorted-merge.js';
import { sameVersion, versionRead, type VersionClock } from './same-version.js';
import type { ResourceSelection } from '../options.js';

export interface BackupRunOptions {
  db: DatabaseLike;
  set: DestinationSet;
  keyring: Keyring;
  /** The key file embedded in the newest encrypted backup's manifest (Keyring.keyForBackup puts a lost key.json back from it). */
  embeddedKeyFile?: unknown;
  /** Something the caller should log (a new master key made: Keyring.keyForBackup). */
  warn?: (message: string) => void;
  type: BackupType;
  /** Parent for an incremental (the newest backup of the chain); null makes it a full. */
  parent: Manifest | null;
  /** A destination where the parent's latest verification found everything whole: its index is read there first. */
  parentIndexAt?: string;
  /** Destinations whose copy of the parent's index failed an earlier attempt (parent-index.ts): not read. */
  parentIndexPassOver?: readonly string[];
  reason: string | null;
  metadata: Record<string, unknown>;
  /** Labels for retention's tags rules (plaintext in the manifest). */
  tags?: string[];
  trigger: { event: string; payload: unknown } | null;
  include: string[] | null;
  exclude: string[];
  /** Resources backed up as logical records (filter / fields / limit), see logical.ts. */
  selections: Record<string, ResourceSelection>;
  includeMetadata: boolean;
  compression: Compression;
  level: number | null;
  segmentSize: number;
  threads: number | undefined;
  partSize: number;
  concurrency: number;
  pageSize: number;
  template: PathTemplate;
  /** Verify after writing, before committing: false, 'quick' or 'full'. */
  verify: false | 'quick' | 'full';
  /** `parent`: an incremental's parent and its key (a full verification joins their indexes, index-consistency.ts). */
  verifyBackup: (manifest: Manifest, level: 'quick' | 'full', parent: ParentRef | null) => Promise<VerificationResult>;
  signal?: AbortSignal;
  /** Called right before the manifest is written; throwing aborts the commit (e.g. the lease was lost). */
  beforeCommit?: () => void;
  onProgress?: (event: ProgressEvent) => void;
  progressIntervalMs?: number;
  now?: () => Date;
  /** The id the caller already announced (made by `newBackupId` with the type this backup gets); default: a new one. */
  id?: string;
}

interface Action {
  entry: SourceEntry;
  group: string;
  /**
   * store: fetch and archive; keep: unchanged since parent (index only); tombstone: deleted since
   * parent; logical: read the record through the resource API, filter and project it.
   */
  kind: 'store' | 'keep' | 'tombstone' | 'logical';
  /** For keep: the backup holding the object's bytes. */
  holder?: string;
  /** For store: the parent backup had this key (if it is gone when read, a tombstone records that). */
  inParent?: boolean;
}

interface Fetched extends Action {
  record: ArchiveRecord | null;
}

export async function runBackup(o: BackupRunOptions): Promise<Manifest> {
  const now = o.now ?? (() => new Date());
  const started = now();
  const parent = o.type === 'incremental' ? o.parent : null;
  const type: BackupType = parent ? 'incremental' : 'full';
  const id = o.id ?? newBackupId(type, started);
  if (!id.startsWith(`${type}-`)) throw new BackupError('ERR_INTERNAL', `backup id ${id} does not name its type ${type}`);
  const set = o.set;
  let s3dbJson = await readS3dbJson(o.db);
  await refuseUnknownResources(o, s3dbJson);
  await set.beginBackup(paths.pending(`${id}.probe`));

  const written: string[] = [];
  const pending = new PendingRecord(set, id, type, started);
  // Objects being written; a failure aborts them first, so no temp file or upload outlives it.
  const open = new Set<Pick<EncodedSink<unknown>, 'abort'>>();
  let committed = false;
  /** The manifest's write began: a failure from here may have stored it all the same (an answer lost). */
  let committing = false;
  try {
    await pending.save();
    const keyInfo = o.keyring.enabled ? await o.keyring.keyForBackup(set, (o.embeddedKeyFile ?? null) as KeyFile | null, o.warn) : null;
    const key = keyInfo?.key ?? null;
    const codec = { compression: o.compression, level: o.level ?? undefined, key: key ?? undefined, segmentSize: o.segmentSize, threads: o.threads };
    const parentKey = parent?.encryption ? await o.keyring.keyForManifest(parent, set) : null;

    const stats: Record<string, ResourceStats> = {};
    const parts: PartEntry[] = [];
    const meter = new ProgressMeter(id, 'backup', parent ? parent.totals.objects : null, o.onProgress, o.progressIntervalMs);
    const indexSink = new EncodedSink<IndexEntry>(set, paths.index(id), new IndexLineWriter(), codec);
    open.add(indexSink);
    written.push(paths.index(id));
    let indexEntries = 0;
    // `queued` counts archive bytes handed to the part (records may wait in the writer's buffer), so
    // a part never passes partSize by more than one object.
    let part: { sink: EncodedSink<ArchiveRecord>; head: ArchiveWriter; entry: PartEntry; queued: number } | null = null;

    let reserve = { group: '', count: 0 };
    const closePart = async () => {
      if (!part) return;
      const result = await part.sink.close();
      open.delete(part.sink);
      part.entry.size = result.size;
      part.entry.sha256 = result.sha256;
      part.entry.plainBytes = part.head.bytes;
      parts.push(part.entry);
      part = null;
    };

    const openPart = async (group: string) => {
      const seq = parts.length + 1;
      const path = o.template.partPath({ id, type, at: started, group }, seq);
      written.push(path);
      // Listed in the pending marker before it is written (a crash leaves nothing unlisted), with
      // the next paths of the same group reserved, twice as many each time up to MAX_RESERVED_PARTS
      // and one again for a new group (many resources of one part each list a path per part):
      // rewriting the whole marker for every part cost O(parts^2) bytes (1.8 GB at 7600 parts).
      if (!pending.lists(path)) {
        reserve = reserve.group === group ? { group, count: Math.min(reserve.count * 2, MAX_RESERVED_PARTS) } : { group, count: 1 };
        await pending.addParts(Array.from({ length: reserve.count }, (_, i) => o.template.partPath({ id, type, at: started, group }, seq + i)));
      }
      const head = new ArchiveWriter();
      part = { sink: new EncodedSink<ArchiveRecord>(set, path, head, codec, { bulk: true }), head, queued: 0, entry: { path, group, seq, size: 0, sha256: '', plainBytes: 0, objects: 0, firstKey: key ? null : '', lastKey: key ? null : '' } };
      open.add(part.sink);
    };

    const logical = new LogicalReader(o.db, o.selections, key !== null);
    // metadata as stored where the client can be read past its codec, else as it decodes it
    // (objects a writer held between its two renames through every read: file://, raw-objects.ts)
    const torn = new KeySample();
    const raw = rawObjects(o.db.client, { torn: (k) => torn.add(k) });
    // where planning opened the parent's index: read to its end, its checksum checked, before the
    // verification below runs, whose join reads it there
    let parentIndexRead: string | undefined;
    const parentIndex = parent && parentIndexEntries(set, parent, parentKey, { preferred: o.parentIndexAt, passOver: o.parentIndexPassOver ?? [], opened: (label) => (parentIndexRead = label) });
    const actions = planActions(o, parentIndex);
    // Bodies are read whole: the window holds at most FETCH_WINDOW_BYTES of them (by listed size),
    // so memory does not grow with concurrency x object size (64 objects of 100 MB would be 6.4 GB).
    const fetched = mapOrdered(actions, o.concurrency, (a) => (a.kind === 'logical' ? logical.fetch(a) : fetchAction(o.db, raw, a, !isLocalClient(o.db.client))), {
      weight: (a) => (a.kind === 'store' || a.kind === 'logical' ? a.entry.size : 0),
      budget: FETCH_WINDOW_BYTES,
    });
    // a spell with no object read is told: a store that stopped answering shows as a wait
    await meter.watching(async () => {
      for await (const item of fetched) {
        if (o.signal?.aborted) throw abortedBy(o.signal, id, 'was aborted');
        const s = (stats[item.group] ??= { objects: 0, records: 0, stored: 0, deleted: 0, bytes: 0 });
        if (item.kind === 'logical') {
          if (!logical.admit(item.group)) continue;
          s.logical = true;
        }
        if (item.kind !== 'tombstone') {
          await indexSink.write({ k: item.entry.key, e: item.entry.etag, s: item.entry.size, m: item.entry.lastModified, b: item.kind === 'keep' ? item.holder! : id });
          indexEntries++;
          s.objects++;
          if (isRecordKey(item.entry.key)) s.records++;
        }
        if (item.kind === 'keep') {
          meter.add(1, 0);
          continue;
        }
        const record = item.record!;
        const current = part as { entry: PartEntry; queued: number } | null;
        const recordBytes = record.body.length + Buffer.byteLength(record.header.key) + 256;
        if (!current || current.entry.group !== item.group || (current.queued > 0 && current.queued + recordBytes > o.partSize)) {
          await closePart();
          await openPart(item.group);
        }
        const p = part!;
        p.queued += recordBytes;
        await p.sink.write(record);
        p.entry.objects++;
        // The manifest is plaintext: an encrypted backup must not name object keys there (they hold
        // record ids and partition values, e.g. an email), so only a plain backup records them.
        if (!key) {
          if (p.entry.firstKey === '') p.entry.firstKey = item.entry.key;
          p.entry.lastKey = item.entry.key;
        }
        if (item.kind === 'tombstone') s.deleted++;
        else {
          s.stored++;
          s.bytes += record.body.length;
        }
        // a tombstone is a deletion recorded, not an object of the backup: progress counts what list shows
        meter.add(item.kind === 'tombstone' ? 0 : 1, record.body.length);
      }
    });
    await closePart();
    if (torn.count > 0) {
      o.warn?.(`${torn.count} objects read with a body whose MD5 is not the ETag stored with their metadata, read after read (${torn}): written throughout the reads (a stalled disk between s3db.js's two renames: the next backup stores them again, whole), or changed outside s3db.js; they are in this backup as read`);
    }
    // The definitions restores use must cover every record read, and the application may have
    // created a resource or changed a schema while the backup listed: read them again now.
    s3dbJson = laterDefinitions(s3dbJson, await readS3dbJson(o.db));
    // Resources s3db.json defines that had no object: in the backup all the same (with 0 objects),
    // so a restore covers them (a replace empties them) and can name them.
    for (const name of definedResources(s3dbJson)) {
      const group = selected(o, `resource=${name}/`);
      if (group !== null && !stats[group]) stats[group] = { objects: 0, records: 0, stored: 0, deleted: 0, bytes: 0, ...(o.selections[group] ? { logical: true } : {}) };
    }
    const index = await indexSink.close();
    open.delete(indexSink);
    meter.finish();

    const totals = {
      objects: indexEntries,
      records: sum(stats, 'records'),
      stored: sum(stats, 'stored'),
      deleted: sum(stats, 'deleted'),
      plainBytes: parts.reduce((n, p) => n + p.plainBytes, 0),
      storedBytes: parts.reduce((n, p) => n + p.size, 0) + index.size,
      parts: parts.length,
    };
    const completed = now();
    const manifest: Manifest = {
      format: 's3db-backup-manifest',
      // 2: metadata as stored, which a version-1 reader would write back through s3db.js's
      // encoder, changing it: such readers refuse the manifest instead (ERR_MANIFEST_VERSION)
      version: raw ? 2 : 1,
      id,
      type,
      parentId: parent?.id ?? null,
      chain: parent ? [...parent.chain, id] : [id],
      status: 'completed',
      // encrypted: the caller's free-form fields are sealed below, never plaintext in the manifest
      reason: key ? null : o.reason,
      metadata: key ? {} : o.metadata,
      // unencrypted: a payload read through s3db's resource API holds secret attributes decrypted,
      // and an application's event may carry credentials (a connection string, a secretAccessKey):
      // neither is stored in plaintext (walk-29 F-A)
      trigger: o.trigger && { event: o.trigger.event, payload: key ? null : redactSecrets(redactPayload(o.trigger.payload), secretNames(o.db)) },
      ...(o.tags && o.tags.length > 0 ? { tags: o.tags } : {}),
      startedAt: started.toISOString(),
      completedAt: completed.toISOString(),
      durationMs: completed.getTime() - started.getTime(),
      source: describeSource(o.db),
      codec: { compression: o.compression, level: o.level, segmentSize: o.segmentSize, encrypted: key !== null },
      encryption: keyInfo ? { keyCheck: keyInfo.key.keyCheck, keyFile: keyInfo.keyFile } : null,
      resources: stats,
      parts,
      index: { path: index.path, size: index.size, sha256: index.sha256, entries: indexEntries },
      totals,
      s3dbJson,
      selection: { include: o.include, exclude: o.exclude, includeMetadata: o.includeMetadata, logical: describeSelections(o.selections) },
      verification: null,
      destinations: set.status(),
      keepsUndefinedHeaders: true,
      ...(raw ? { metadataAsStored: true as const } : {}),
      ...(key ? { sealed: await seal({ reason: o.reason, metadata: o.metadata, payload: o.trigger?.payload ?? null }, key) } : {}),
    };
    if (o.verify) {
      // (a parent's index gone meanwhile, its chain deleted by another instance, leaves the join out: assertChainPresent below says so)
      manifest.verification = await o.verifyBackup(manifest, o.verify, parent ? { manifest: parent, key: parentKey, indexAt: parentIndexRead ?? o.parentIndexAt } : null);
      if (!manifest.verification.verified) {
        throw new BackupError('ERR_VERIFY_FAILED', `backup ${id} failed verification and was not committed: ${manifest.verification.error}`);
      }
    }
    // Parts go to an archive class only now, verified (Destination.archive: S3 GLACIER, DEEP_ARCHIVE).
    await set.archive(parts.map((p) => p.path));
    manifest.destinations = set.status();
    const committedAt = now();
    manifest.completedAt = committedAt.toISOString();
    manifest.durationMs = committedAt.getTime() - started.getTime();
    if (o.signal?.aborted) throw abortedBy(o.signal, id, 'was aborted before its commit');
    if (parent) {
      await assertChainPresent(set, parent, id);
      manifest.destinations = set.status();
    }
    // The copy beside the parts goes first (listed in the pending marker, so a crash before the
    // commit cleans it up with the parts); both hold the same bytes.
    manifest.copy = o.template.manifestCopyPath({ id, type, at: started });
    if (key) manifest.auth = await manifestAuth(manifest, key); // over every other field, as stored
    const body = Buffer.from(JSON.stringify(manifest, null, 1));
    written.push(manifest.copy);
    await pending.addPart(manifest.copy);
    await set.write(manifest.copy, body);
    o.beforeCommit?.();
    committing = true;
    await set.write(paths.manifest(id), body);
    committed = true;
    // A destination that failed writing the copy or the manifest (under 'any') was recorded 'ok'
    // in them: the stored manifest is written once more, copy first, with the statuses as they
    // ended, so no reader counts on a copy that was never committed. (Best effort: the backup stands.)
    const ended = set.status();
    if (JSON.stringify(ended) !== JSON.stringify(manifest.destinations)) {
      manifest.destinations = ended;
      if (key) manifest.auth = await manifestAuth(manifest, key);
      const final = Buffer.from(JSON.stringify(manifest, null, 1));
      await set.write(manifest.copy, final).then(() => set.write(paths.manifest(id), final)).catch(() => undefined);
    }
    // Committed: removing the pending marker is housekeeping; a failure here never fails the backup
    // (a marker whose backup has a manifest is simply removed by the next cleanup).
    await pending.remove().catch(() => undefined);
    // A destination that failed (under 'any') keeps nothing of this backup: its parts would fill it
    // (a full disk is the usual cause) until its pending marker there went stale.
    const failed = new Set(set.status().filter((d) => d.status === 'failed').map((d) => d.label));
    await Promise.all(set.members.filter((m) => failed.has(m.label)).map((m) => m.delete([...written, paths.manifest(id), paths.pending(id)]).catch(() => undefined)));
    // The caller gets its own fields back in place (the stored manifest holds them sealed), and
    // the destinations as they ended: one that failed writing the manifest's copy or the manifest
    // itself (under 'any') holds no usable backup of this one, and retention must not prune there.
    return { ...manifest, destinations: set.status(), reason: o.reason, metadata: o.metadata, trigger: o.trigger };
  } catch (err) {
    pending.stop();
    const reason = err instanceof Error ? err : new Error(String(err));
    await Promise.all([...open].map((sink) => sink.abort(reason)));
    const cleaned = committed || (await set.delete([...written, paths.manifest(id), paths.pending(id)]).then(() => true, () => false));
    const error = err instanceof BackupError ? err : new BackupError('ERR_BACKUP_FAILED', `backup ${id} failed: ${errorMessage(err)}`, { cause: err });
    // (what it wrote is left for the next backup's cleanup, by its pending marker: no attempt with the same id may run before)
    if (!cleaned) error.details.leftovers = true;
    if (committing && !cleaned) {
      // the store may have taken the manifest and lost only its answer, and it could not be removed
      throw new BackupError(error.code, `${error.message}. Backup ${id} may be stored all the same: its manifest was being written when this failed, and it could not be removed; once the destination answers, listBackups() shows it if it was stored, else the next backup removes what it left`, { cause: err, details: { ...error.details, mayBeStored: id } });
    }
    throw error;
  }
}

function describeSelections(selections: Record<string, ResourceSelection>): Record<string, { filter: unknown; fields: string[] | null; limit: number | null }> {
  return Object.fromEntries(
    Object.entries(selections).map(([name, sel]) => [
      name,
      { filter: typeof sel.filter === 'function' ? `function ${sel.filter.name || '(anonymous)'}` : (sel.filter ?? null), fields: sel.fields ?? null, limit: sel.limit ?? null },
    ]),
  );
}

function isRecordKey(key: string): boolean {
  return /^resource=[^/]+\/data\//.test(key);
}

function sum(stats: Record<string, ResourceStats>, field: 'objects' | 'records' | 'stored' | 'deleted' | 'bytes'): number {
  return Object.values(stats).reduce((n, s) => n + s[field], 0);
}

function selected(o: BackupRunOptions, key: string): string | null {
  const resource = resourceOfKey(key);
  if (resource === null) return o.includeMetadata || key === 's3db.json' ? DATABASE_GROUP : null;
  if (o.include && !o.include.includes(resource)) return null;
  if (o.exclude.includes(resource)) return null;
  return resource;
}

/**
 * The chain an incremental builds on must still be there when it commits, at every destination it
 * was written to. Another instance's retention or deleteBackup() may have removed it meanwhile
 * (the lease keeps instances apart only where they share a destination that answers, and not at
 * all with `lease: false`); committed anyway, the incremental could never be restored
 * and, being the newest, would take a good backup's retention slot.
 */
async function assertChainPresent(set: DestinationSet, parent: Manifest, id: string): Promise<void> {
  const written = new Set(set.status().filter((d) => d.status === 'ok').map((d) => d.label));
  for (const member of set.members.filter((m) => written.has(m.label))) {
    for (const ancestor of parent.chain) {
      // a destination that cannot be asked fails this backup there, as a failed write would (the
      // others, under 'any', still commit it: review-md R3); under 'all' the backup fails
      const held = await member.stat(paths.manifest(ancestor)).catch((err: unknown) => {
        set.markFailed(member, err);
        return 'failed' as const;
      });
      if (held === 'failed') break;
      if (held) continue;
      throw new BackupError(
        'ERR_CHAIN_BROKEN',
        `backup ${id} was not committed: ${ancestor}, a backup of the chain it builds on, was deleted at ${member.label} while it ran (by another instance's retention or deleteBackup?); the next backup will be a full one`,
      );
    }
  }
}

/** Listing (merge-joined with the parent index for incrementals) -> actions, in key order. */
async function* planActions(o: BackupRunOptions, parentIndex: AsyncIterable<IndexEntry> | null): AsyncIterable<Action> {
  const steps = mergeByKey<IndexEntry, SourceEntry>(
    { items: parentIndex ?? empty(), key: (e) => e.k, name: 'the parent backup index' },
    { items: listObjects(o.db.client, { pageSize: o.pageSize }), key: (e) => e.key, name: 'the database client' },
  );
  // a version is kept if it was safely written before the parent began (same-version.ts)
  const clock: VersionClock = { since: o.parent ? Date.parse(o.parent.startedAt) : 0, remote: !isLocalClient(o.db.client) };
  const left = new KeySample();
  const nested = new KeySample();
  for await (const { left: prior, right: entry } of steps) {
    if (!entry) {
      yield* tombstone(o, prior as IndexEntry);
      continue;
    }
    const group = selected(o, entry.key);
    if (group === null) continue;
    const inside = group === DATABASE_GROUP ? nestedRoot(entry.key) : null;
    if (inside !== null) nested.add(inside);
    if (unaddressable(o.db.client, entry.key)) {
      // Never read through the client: it would read the key it normalises to (a record's), and
      // an older backup's copy of it must not come back with this one
      left.add(entry.key);
      if (prior) yield* tombstone(o, prior);
      continue;
    }
    if (o.selections[group]) {
      // a selected resource keeps only its records, read through s3db (partition refs are rebuilt on restore)
      if (recordIdOf(entry.key) !== null) yield { entry, group, kind: 'logical' };
      continue;
    }
    if (prior && sameVersion(prior, entry, clock)) yield { entry, group, kind: 'keep', holder: prior.b };
    else yield { entry, group, kind: 'store', inParent: prior !== undefined };
  }
  if (left.count > 0) o.warn?.(`${left.count} objects are not in the backup: ${UNADDRESSABLE}. Copy them under plain keys if they are data: ${left}`);
  if (nested.count > 0) {
    o.warn?.(
      `another s3db.js database or s3db-backup destination lives inside this database's keys (${nested}): its objects are backed up as this database's, and a restore of the whole database writes the backup's copies over them and deletes what the backup lacks there (reverting it). Give each database and each backup destination a key prefix of its own, outside this one's`,
    );
  }
}

/**
 * The folder of another database (its `s3db.json`) or backup destination (its lease file) that
 * `key`, a database-level key of this database, shows lives inside this one's keys, or null.
 */
function nestedRoot(key: string): string | null {
  const m = /^(.+\/)(?:s3db\.json|locks\/backup\.lease)$/.exec(key);
  return m ? m[1]! : null;
}

async function* empty<T>(): AsyncIterable<T> {}

/** Bytes of object bodies read ahead of the archive writer at most (one larger object goes alone). */
export const FETCH_WINDOW_BYTES = 32 * 1024 * 1024;
/** Most part paths reserved in the pending marker at once (see openPart). */
const MAX_RESERVED_PARTS = 256;

function* tombstone(o: BackupRunOptions, gone: IndexEntry): Iterable<Action> {
  const group = selected(o, gone.k);
  if (group !== null && !o.selections[group]) yield { entry: { key: gone.k, size: 0, etag: '', lastModified: '' }, group, kind: 'tombstone' };
}

/** Reads of one source object before the backup fails on it (each request also retried by the client). */
const SOURCE_READ_ATTEMPTS = 4;

/**
 * Why a body read in full is not the object's whole body, or null. Its response's Content-Length
 * is checked on every client; on a remote store the listed size too, when the response's ETag says
 * it is the version listed: a proxy or middlebox that rewrites Content-Length cuts a body short
 * with a well-formed response, which only the listing contradicts. (Local clients are not
 * compared with their listing: s3db's file client lists the size on disk, compressed or not.)
 */
function shortRead(entry: SourceEntry, response: { ETag?: string; ContentLength?: number }, read: number, remote: boolean): string | null {
  if (typeof response.ContentLength === 'number' && read !== response.ContentLength) return `the body ended after ${read} of the ${response.ContentLength} bytes its response announced`;
  const sameVersion = entry.etag !== '' && String(response.ETag ?? '').replace(/"/g, '') === entry.etag;
  if (remote && sameVersion && read !== entry.size) return `read ${read} bytes, but the listing gives ${entry.size} bytes for the same version (ETag ${entry.etag}): something between here and the store (a proxy?) cut or padded the body`;
  return null;
}

/**
 * An object's metadata as the archive keeps it: as stored (read raw), or, where the client cannot
 * be read past its codec, as s3db.js's client decoded it, except a header whose stored value is
 * "undefined" (s3db.js writes a missing value so and decodes it to undefined, which JSON would
 * drop): kept as the string "undefined", which s3db.js's client encodes back to the same stored
 * value, so the restored object has the header too.
 */
function storedMetadata(metadata: Record<string, string | undefined> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata ?? {})) out[k] = v === undefined ? 'undefined' : v;
  return out;
}

async function fetchAction(db: DatabaseLike, raw: RawObjects | null, a: Action, remote: boolean): Promise<Fetched | undefined> {
  if (a.kind === 'keep') return { ...a, record: null };
  if (a.kind === 'tombstone') return tombstoneOf(a);
  let response: ObjectRead;
  let body: Buffer;
  // The client retries a failed request, not a body cut mid-stream (a reset connection): the
  // object is read again, a few times, before the backup fails on it.
  for (let attempt = 1; ; attempt++) {
    try {
      response = raw ? await raw.get(a.entry.key) : await db.client.getObject(a.entry.key);
      body = await bodyToBuffer(response.Body);
      const short = shortRead(a.entry, response, body.length, remote);
      if (short !== null) throw new BackupError('ERR_SOURCE_READ', short);
      break;
    } catch (err) {
      // Deleted between listing and reading: not in the snapshot. If the parent had it, a tombstone
      // says so; without one, a restore would bring back the parent's copy.
      if (isNotFound(err)) return a.inParent ? tombstoneOf(a) : undefined;
      if (attempt >= SOURCE_READ_ATTEMPTS) throw new BackupError('ERR_SOURCE_READ', `could not read ${a.entry.key} from the database (${attempt} attempts): ${conciseCause(errorMessage(err))}`, { cause: err });
      await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    }
  }
  // the version read, which the index records: a later one than listed if written in between
  const entry = versionRead(a.entry, { etag: response.ETag, size: body.length, lastModified: response.LastModified });
  const header = {
    key: a.entry.key,
    size: body.length,
    metadata: storedMetadata(response.Metadata),
    contentType: response.ContentType,
    contentEncoding: response.ContentEncoding,
    ...keptHeadersOf(response),
    etag: entry.etag,
    lastModified: entry.lastModified || undefined,
  };
  return { ...a, entry, record: { header, body } };
}

/**
 * Refuses (ERR_UNKNOWN_RESOURCE, before anything is written) a backup whose `include` names a
 * resource the database neither defines nor holds objects of: a typo, or a resource dropped since,
 * would otherwise give a "successful" backup without the data the caller believes it holds.
 * A resource with objects but no definition (a damaged s3db.json) is backed up.
 */
async function refuseUnknownResources(o: BackupRunOptions, s3dbJson: unknown): Promise<void> {
  // what s3db.json defines, and what this process's database has loaded (s3db.json may be missing)
  const defined = [...new Set([...definedResources(s3dbJson), ...Object.keys(o.db.resources ?? {})])];
  const known = async (name: string) => defined.includes(name) || (await hasObjects(o.db.client, `resource=${name}/`));
  const unknownOf = async (names: string[]) => {
    const out: string[] = [];
    for (const name of names) if (!(await known(name))) out.push(name);
    return out;
  };
  const listed = (names: string[]) => names.map((n) => `'${n}'`).join(', ');
  const defines = `it defines: ${[...defined].sort().join(', ') || 'no resource'}`;
  // Named to be backed up (include), or to be backed up filtered or projected (a typo there would
  // back the whole resource up, the very data `fields` or `filter` meant to leave out): refused.
  const selected = Object.keys(o.selections).filter((name) => !o.exclude.includes(name) && (!o.include || o.include.includes(name)));
  const unknown = await unknownOf([...new Set([...(o.include ?? []), ...selected])]);
  if (unknown.length > 0) {
    throw new BackupError(
      'ERR_UNKNOWN_RESOURCE',
      `the backup names ${listed(unknown)}, which the database neither defines nor holds objects of (${defines}). Nothing was backed up. Fix the name in the plugin's include or resources option (or in createBackup({ resources })), or remove a resource that was dropped`,
      { details: { unknown, defined } },
    );
  }
  // Named to be left out: nothing is lost by a wrong name there but what it meant to leave out.
  const unknownExcluded = await unknownOf(o.exclude);
  if (unknownExcluded.length > 0) o.warn?.(`exclude (or resources: { name: false }) names ${listed(unknownExcluded)}, which the database neither defines nor holds objects of (${defines}): a typo leaves the resource it meant in the backup`);
}

function tombstoneOf(a: Action): Fetched {
  return { ...a, kind: 'tombstone', record: { header: { key: a.entry.key, size: 0, deleted: true }, body: Buffer.alloc(0) } };
}

/**
 * The database's definitions at the end of a backup (`end`), which cover every record the backup
 * read (s3db keeps every schema version in s3db.json), plus the resources only `start` defines
 * (deleted while the backup ran: records of theirs may be in it).
 */
function laterDefinitions(start: unknown, end: unknown): unknown {
  if (end === null || typeof end !== 'object') return start;
  const before = (start as { resources?: Record<string, unknown> } | null)?.resources ?? {};
  const after = (end as { resources?: Record<string, unknown> }).resources ?? {};
  const gone = Object.keys(before).filter((name) => !(name in after));
  return gone.length === 0 ? end : { ...end, resources: { ...after, ...Object.fromEntries(gone.map((name) => [name, before[name]])) } };
}

async function readS3dbJson(db: DatabaseLike): Promise<unknown> {
  let text: string;
  try {
    text = (await bodyToBuffer((await db.client.getObject('s3db.json')).Body)).toString('utf8');
  } catch (err) {
    if (isNotFound(err)) return null;
    throw new BackupError('ERR_SOURCE_READ', `could not read s3db.json from the database: ${errorMessage(err)}`, { cause: err });
  }
  const damage = schemaDamage(text);
  if (damage !== null) {
    throw new BackupError(
      'ERR_SOURCE_READ',
      `the database's ${damage}: its schema is damaged, so no backup is taken (the good ones stay, retention does not run). Put it back before the application reconnects (s3db.js would replace it with an empty one): ${PUT_SCHEMA_BACK}`,
    );
  }
  return JSON.parse(text) as unknown;
}

/**
 * The database a backup is taken from, as the manifest records it (`path`: a file:// database's
 * directory; `endpoint`: a remote store's, without credentials or query, since one bucket name on
 * two stores is two databases).
 */
export function describeSource(db: DatabaseLike): Manifest['source'] {
  const client = db.client;
  const basePath = (client as { basePath?: unknown }).basePath;
  const endpoint = isLocalClient(client) ? null : storeEndpoint(client.config?.endpoint);
  return {
    s3dbVersion: s3dbVersionOf(db),
    client: client.constructor?.name ?? 'unknown',
    bucket: client.config?.bucket ?? client.bucket ?? null,
    keyPrefix: client.config?.keyPrefix ?? client.keyPrefix ?? null,
    ...(typeof basePath === 'string' ? { path: basePath } : {}),
    ...(endpoint !== null ? { endpoint } : {}),
  };
}

/** A store's endpoint as one spelling: scheme, host, port and path; never user, password or query. */
function storeEndpoint(endpoint: unknown): string | null {
  if (typeof endpoint !== 'string' || endpoint === '') return null;
  try {
    const url = new URL(endpoint);
    return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
  } catch {
    return null; // not a URL s3db.js could have used: the database is named by bucket and prefix alone
  }
}

/**
 * pending/<id>.json: which parts an unfinished backup has started, refreshed as parts start and
 * every HEARTBEAT_MS, so the next run can tell a crashed backup (stale heartbeat, or a dead pid on
 * this host) from a running one and delete its parts.
 */
export const HEARTBEAT_MS = 30_000;

export interface PendingState {
  id: string;
  type: BackupType;
  startedAt: string;
  heartbeatAt: string;
  host: string;
  pid: number;
  /** Where `pid` means something (lease/process-space.ts); absent in markers of earlier versions. */
  space?: string;
  parts: string[];
  deleting?: boolean;
}

class PendingRecord {
  private readonly state: PendingState;
  private readonly listed = new Set<string>();
  private saving: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly set: DestinationSet,
    id: string,
    type: BackupType,
    started: Date,
  ) {
    this.state = { id, type, startedAt: started.toISOString(), heartbeatAt: started.toISOString(), host: hostname(), pid: process.pid, space: processSpace(), parts: [] };
    this.timer = setInterval(() => void this.save().catch(() => undefined), HEARTBEAT_MS);
    this.timer.unref();
  }

  async addPart(path: string): Promise<void> {
    await this.addParts([path]);
  }

  /** Lists `paths` (parts to be written, or reserved: a path never written is simply absent at cleanup). */
  async addParts(paths: string[]): Promise<void> {
    for (const path of paths) {
      if (this.listed.has(path)) continue;
      this.listed.add(path);
      this.state.parts.push(path);
    }
    await this.save();
  }

  lists(path: string): boolean {
    return this.listed.has(path);
  }

  /**
   * Writes the marker as it is when the write starts. Writes run one after another (heartbeat and
   * part listings alike), so an older state never lands after a newer one.
   */
  save(): Promise<void> {
    const run = this.saving.then(async () => {
      this.state.heartbeatAt = new Date().toISOString();
      await this.set.write(paths.pending(this.state.id), Buffer.from(JSON.stringify(this.state)));
    });
    this.saving = run.catch(() => undefined);
    return run;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Removes the marker from the destinations that took part in the backup. */
  async remove(): Promise<void> {
    this.stop();
    await Promise.allSettled(this.set.writers.map((m) => m.delete([paths.pending(this.state.id)])));
  }
}

/**
 * The error of a backup stopped by its signal: ERR_ABORTED, or the reason's own code when the
 * signal says why (the backup lease taken over by another instance: ERR_LEASE_LOST), so a holder
 * that was paused past its lease's TTL (SIGSTOP, a VM pause) is told that, not a bare abort.
 */
function abortedBy(signal: AbortSignal, id: string, what: string): BackupError {
  const reason: unknown = signal.reason;
  if (reason instanceof BackupError && reason.code === 'ERR_LEASE_LOST') {
    return new BackupError('ERR_LEASE_LOST', `backup ${id} ${what}: ${reason.message}. Another instance took the backup lease over (this process was likely paused past the lease's TTL, or could not renew it); nothing of this backup was committed`, { cause: reason });
  }
  return new BackupError('ERR_ABORTED', `backup ${id} ${what}`);
}
