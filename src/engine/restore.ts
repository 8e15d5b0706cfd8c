/**
 * Restoring a backup (or an incremental chain) into an s3db database, object for object.
 *
 * Algorithm:
 *  1. Plan: merge-join the backup's sorted object index with the target's sorted listing, for the
 *     selected groups: which keys will be created, overwritten, left unchanged, skipped, deleted.
 *     A dry run stops here. What the listing showed under each index entry's key is kept in a
 *     temporary file, in index order (target-verdicts.ts), for the writes: the target's listing
 *     is read once before the writes whatever the chain's length.
 *  2. Write the version of each key the backup's index (its snapshot) names, from the chain
 *     member whose parts hold it; a version the snapshot lacks is not written (a warning counts
 *     them), and every version it names must be found where it says (ERR_INDEX_CORRUPT). The
 *     resources are read one chain member at a time (writeMembersInTurn); database-level objects
 *     and logical groups, which are few, by a merge of the members' sorted runs (writeGroup; a
 *     tombstone means "absent"). Objects are put back with their key, metadata, content type and
 *     body exactly as read, with bounded concurrency. A resource's object the target held in the
 *     backup's version when the plan listed it (same-version.ts) is left in place unless
 *     rewriteUnchanged. Mode 'skip' writes only keys the target lacked (a conditional write: a
 *     record the application creates meanwhile is kept); merge, over a partitioned resource,
 *     reads the records it overwrites first, to drop their old partition references.
 *  3. Mode 'replace': delete the target's keys in the restored groups that the backup lacks (a
 *     second listing, after the writes: records created during the restore go too, README). In
 *     that listing (a merge that left objects in place lists for it alone), the objects left in
 *     place that the application changed or deleted since the plan are found and written again,
 *     from the parts whose bounds (first and last key, recorded as step 2 read them) hold them.
 *  4. A whole-database replace (or a whole-database restore into a database without resources)
 *     writes the backup's s3db.json as it was; every other restore puts the restored resources'
 *     definitions into the target's s3db.json by mode (definitions.ts), keeping its other resources.
 *     Merge and skip between schemas that diverged are refused before step 2 (definitions.ts).
 *  5. Clear s3db.js's cache of the restored resources, and reload the target Database's resources
 *     whose definition changed, so it sees them without a reconnect (the others keep their
 *     Resource objects, hooks included; a warning names the rebuilt ones).
 *  6. Merge and skip: partition references follow the records (partition-refs.ts: every member's
 *     data objects first, drained, then the references; and after step 5).
 *
 * Guarantees: idempotent (running it again after a crash gives the same result); memory bounded
 * by one part reader, one index reader (with its verdicts: a 64 KiB buffer) and one listing page
 * for the resources, whatever the chain's length, besides two keys per part read (step 3's
 * bounds: ~1 MB for 8,000 parts) and the entries step 3 writes again (at most 100,000); for database-level objects, a part reader per chain member whose versions the
 * snapshot names (CHAIN_READ_AHEAD; mergeChain); + in-flight writes + one listing page (memory://:
 * s3db.js's whole listing; file://: one directory's names, file-listing.ts). Parts are read from the
 * destination that verified them, falling back to the next destination mid-part if one fails
 * (records are sorted, so the reader resumes after the last key it returned).
 */
import type { KeyHandle } from '../codec/index.js';
import type { DestinationSet } from '../destinations/set.js';
import { BackupError, conciseCause, errorMessage } from '../errors.js';
import { keptHeaders, type ArchiveRecord } from './archive.js';
import { DATABASE_GROUP, groupOfKey, resourceOfKey } from './layout.js';
import { sourceKey, undefinedResources, type IndexEntry, type Manifest, type PartEntry } from './manifest.js';
import { ProgressMeter, type ProgressEvent } from './progress.js';
import { restoreLogical } from './logical.js';
import { checkDefinitions, mergeDefinitions, writeBackupDefinitions } from './definitions.js';
import { BoundedWriter } from './bounded-writer.js';
import { isPartitionRef, PartitionRefs, recordIdOf, refRecordId } from './partition-refs.js';
import { clearResourceCaches, reloadResources } from './reload.js';
import { compareKeys, mergeByKey, ordered, type MergeSide } from './sorted-merge.js';
import { isBodyOf, objectWriter, type ObjectWriter } from './raw-objects.js';
import { bodyToBuffer, deleteKeys, hasObjects, isLocalClient, isNotFound, isPreconditionFailed, listObjects, readStoredMetadata, KeySample, unaddressable, UNADDRESSABLE, type DatabaseLike, type SourceEntry } from './s3db.js';
import { CHAIN_READ_AHEAD, indexSource, nextWholeIndex, preferredFirst, readIndex, readPartRecords } from './stored.js';
import { holdersOf, isDamage } from './verify.js';
import { sameVersion } from './same-version.js';
import { describeSource } from './backup.js';
import { countRebuilt, LostRanges, lostRangeOf, rebuildableRange, type LostRange } from './salvage.js';
import { TargetVerdicts, type PlannedEntry, type TargetHeld } from './target-verdicts.js';

export type RestoreMode = 'replace' | 'merge' | 'skip';

/**
 * Bytes of object bodies held by restore writes in flight at most (as FETCH_WINDOW_BYTES for a
 * backup's reads): `concurrency` writes of 50 MB records would hold 3.2 GB, and s3db.js's file://
 * client holds each body several times over while it writes it.
 */
export const WRITE_WINDOW_BYTES = 32 * 1024 * 1024;

export interface RestoreRunOptions {
  /** The chain, oldest (the full) first, the backup to restore last. */
  chain: Manifest[];
  keys: Map<string, KeyHandle | null>;
  set: DestinationSet;
  target: DatabaseLike;
  resources: string[] | null;
  mode: RestoreMode;
  dryRun: boolean;
  concurrency: number;
  pageSize: number;
  goodSources?: Map<string, string>;
  /** The target's s3db.json is the empty one s3db.js's connect() wrote for this restore: the backup's is counted as created, as its dry run counts it. */
  schemaFromConnect?: boolean;
  /**
   * Write every object of the backup, also those the target already holds in the backup's version
   * (default false: such objects are left in place and counted `unchanged`; see unchangedTest).
   */
  rewriteUnchanged?: boolean;
  /** Destination failures already seen (by verification); reads that fall back add theirs. */
  sourceFailures?: SourceFailure[];
  /** Salvage: paths of parts damaged at every destination, passed over (salvage.ts; only resources stored object by object). */
  lostParts?: ReadonlySet<string>;
  onProgress?: (event: ProgressEvent) => void;
  /** Least time between two progress events (default 1 s). */
  progressIntervalMs?: number;
}

/** A destination that could not serve (part of) the backup, and what was wrong. */
export interface SourceFailure {
  label: string;
  path: string | null;
  error: string;
}

export interface ResourceRestoreReport {
  name: string;
  /** Objects of the resource in the backup. */
  objects: number;
  /** Records of the resource in the backup. */
  records: number;
  created: number;
  overwritten: number;
  /**
   * Objects the target already held in the backup's version (same ETag, size and LastModified,
   * written before the backup that stored them began: same-version.ts), left in place rather than
   * written again (replace and merge; not with rewriteUnchanged).
   */
  unchanged: number;
  skipped: number;
  deleted: number;
  /**
   * Objects of the resource the target holds and the backup lacks, left as they are: a merge's or
   * skip's (records written since the backup, say), and those a replace does not delete (the
   * records a filtered backup's filter left out; plugin state the backup did not include; keys
   * s3db.js's client cannot address). Among a merge's, partition references that turn out stale
   * once the backup's records are written are deleted (partitionReferences counts them).
   */
  kept: number;
  /**
   * Salvage: objects of the backup not restored because the parts holding them are damaged at
   * every destination (the report's `lost` names them); left as the target has them. A dry run
   * cannot count them (its warnings name the parts): 0 there.
   */
  lost: number;
}

export interface RestoreReport {
  backupId: string;
  /** Where it was restored (set by the plugin; credentials hidden): a bare name shows the database it resolved to. */
  target?: string;
  chain: string[];
  mode: RestoreMode;
  dryRun: boolean;
  /**
   * Per resource: a dry run's plan; after a restore, what its writes did (created, overwritten,
   * unchanged, skipped, and a replace's deleted, as counted while writing; created is the plan's,
   * at most as many as were written), which can differ from the plan on a live database. `kept`
   * and logical (filtered) resources' rows are the plan's.
   */
  resources: ResourceRestoreReport[];
  /** s3db.js plugin dialect: per resource, records the database holds as the backup has them afterwards (written, or left in place unchanged; not those mode skip kept), and records in the backup. */
  restored: { name: string; recordsRestored: number; totalRecords: number }[];
  objectsWritten: number;
  objectsDeleted: number;
  bytesWritten: number;
  /**
   * Merge and skip, beyond the objects above: partition references deleted (stale ones: those an
   * overwritten record had and the backup's version of it has not, and those checks found) and
   * created (in partitions defined differently from the backup); replace, and any dry run (they
   * are found while writing): zeros.
   */
  partitionReferences: { deleted: number; created: number };
  /** Destinations that failed for some object (the restore used another one for it). */
  sourceFailures: SourceFailure[];
  /** Salvage: the parts damaged at every destination that were passed over (a dry run's too), in the chain's order. */
  passedOver: string[];
  /** Salvage: the objects not restored, per damaged run of parts (empty otherwise, and in a dry run). */
  lost: LostRange[];
  /** What a whole-database replace drops that the per-resource counts do not show (also in a dry run). */
  warnings: string[];
  durationMs: number;
  objectsPerSecond: number;
  bytesPerSecond: number;
}

export async function runRestore(o: RestoreRunOptions): Promise<RestoreReport> {
  const started = Date.now();
  o.sourceFailures ??= [];
  const target = o.chain[o.chain.length - 1]!;
  const groups = selectGroups(target, o.resources);
  const inScope = (key: string) => groups.has(groupOfKey(key));

  const logical = new Set([...groups].filter((g) => target.resources[g]?.logical));
  const passedOver = o.chain.flatMap((m) => m.parts.filter((p) => groups.has(p.group) && o.lostParts?.has(p.path))); // salvage
  const put = objectWriter(o.target.client, target.metadataAsStored === true);
  // A whole-database replace, or any whole-database restore into a database that defines no
  // resource yet (its stored s3db.json: another process may have defined some since this one
  // connected), puts s3db.json back as it was; otherwise definitions are merged (below), so a
  // merge keeps resources created after the backup.
  const defined = await definedResources(o.target);
  const verbatimSchema = !o.resources && (o.mode === 'replace' || defined.length === 0);
  const resourceGroups = [...groups].filter((g) => g !== DATABASE_GROUP);
  const definitionNames = o.resources ?? resourceGroups;
  if (defined.length === 0 && (o.resources || o.mode !== 'replace')) {
    // resources the backup holds can be restored from it (the warnings below say so); others cannot
    const inBackup = new Set([...Object.keys(target.resources), ...Object.keys((target.s3dbJson as { resources?: object } | null)?.resources ?? {})]);
    await refuseLostDefinitions(o.target, definitionNames, inBackup);
  }
  const definitionWarnings = verbatimSchema ? [] : await checkDefinitions(o.target, target, definitionNames, o.mode);
  // (verdicts: what the plan's listing found under each index entry; null in a dry run)
  const { rows: plan, named, verdicts, databaseDeletes, unreachable, unwritable } = await planFromWholeIndex(o, target, groups, logical);
  try {
    refuseHoldersOutsideChain(o.chain, named); // a dry run says it too
    const warnings = [
      ...definitionWarnings,
      ...unreachableWarning(unreachable),
      ...unwritableWarning(unwritable),
      ...restoreWarnings(o, target, databaseDeletes, defined),
      ...(await undefinedLeftOut(o, target, defined)),
      ...withoutDefinitions(target, groups, verbatimSchema ? [] : defined),
      ...keptOtherVersions(o, plan),
      ...(o.dryRun ? passedOverWarning(passedOver) : []),
    ];

    const tally: WriteTally = { objects: 0, bytes: 0, byGroup: new Map(), notInSnapshot: 0, lost: [], lostRecords: new Map(), rebuilt: [] };
    let objectsDeleted = 0;
    let partitionReferences = { deleted: 0, created: 0 };
    if (verdicts) {
      // the objects of the resources restored, not the whole backup's (walk-27 F1: "1 of 6,567, about 3h23m left", done at 4,065)
      const meter = new ProgressMeter(target.id, 'restore', [...plan.values()].reduce((n, r) => n + r.objects, 0), o.onProgress, o.progressIntervalMs);
      const refs = o.mode === 'replace' ? null : await PartitionRefs.open(o.target, target, resourceGroups.filter((g) => !logical.has(g)), o.mode);
      await ensureDefinitions(o.target, target, [...logical]);
      const run: RestoreRun = { o, target, logical, named, verdicts, verbatimSchema, refs, put, meter, tally, partBounds: new Map() };
      // database-level objects are few and spread over the whole key space: their own index pass
      // (read only when they are restored)
      const database = indexCursor(o, target, verdicts);
      try {
        // bodies held by writes in flight: at most WRITE_WINDOW_BYTES (one larger object goes alone)
        // (a spell with no object written is told: a store that stopped answering shows as a wait)
        await meter.watching(() => BoundedWriter.running(o.concurrency, WRITE_WINDOW_BYTES, async (writer) => {
          const ordered = orderGroups(groups);
          await writeMembersInTurn(run, ordered.filter((g) => g !== DATABASE_GROUP && !logical.has(g)), writer);
          for (const group of ordered.filter((g) => g === DATABASE_GROUP || logical.has(g))) {
            await writeGroup(run, group, writer, group === DATABASE_GROUP ? database : null);
          }
        }));
      } catch (err) {
        // (running() returned only once the writes in flight had landed or failed)
        refs?.close();
        if (tally.objects > 0) await clearResourceCaches(o.target, resourceGroups); // cached reads would hide the partly restored state
        throw partlyWritten(err, tally.objects);
      } finally {
        await database.close();
      }
      warnings.push(...lostWarnings(tally.lost), ...rebuiltWarnings(tally.rebuilt));
      if (tally.notInSnapshot > 0) {
        warnings.push(`${tally.notInSnapshot} objects held by the chain's parts are not in the backup's snapshot (deleted before it was taken) and were not restored`);
      }
      // a replace deletes what the backup lacks; a replace or merge that left objects in place writes again those changed since
      if (o.mode === 'replace' || (o.mode === 'merge' && [...tally.byGroup.values()].some((g) => g.unchanged > 0))) {
        const objectGroups = new Set(resourceGroups.filter((g) => !logical.has(g)));
        const deletes = o.mode === 'replace' ? (key: string) => replaceDeletes(target, logical, key) && !refOfLost(tally, key) : null;
        // (salvage: a lost object is never written; a reference written back from the index is checked as any other, and written back again)
        const damaged = [...tally.lost, ...tally.rebuilt];
        const fromIndex = (entry: IndexEntry) => damaged.length > 0 && lostRangeOf(damaged, entry) !== undefined && rebuildableRange(damaged, entry, tally.lostRecords.get(groupOfKey(entry.k))) !== null;
        // (a lost record's references are never written either: they follow the version the target keeps)
        const leftInPlace = (entry: IndexEntry) => objectGroups.has(groupOfKey(entry.k)) && (!lostRangeOf(damaged, entry) || fromIndex(entry)) && !refOfLost(tally, entry.k);
        try {
          // (a spell with no listing page or write done is told, as during the writes)
          await meter.watching(async () => {
            const swept = await sweepAfterWrites(run, inScope, deletes, leftInPlace);
            objectsDeleted = swept.deleted;
            if (swept.changed.length === 0) return;
            await BoundedWriter.running(o.concurrency, WRITE_WINDOW_BYTES, async (writer) => {
              const [references, others] = [swept.changed.filter(fromIndex), swept.changed.filter((e) => !fromIndex(e))];
              await writeMembersInTurn(run, orderGroups(new Set(others.map((e) => groupOfKey(e.k)))), writer, others);
              for (const entry of references) {
                outcomeOf(tally, groupOfKey(entry.k)).unchanged--;
                await writer.run(() => writeObject(run, groupOfKey(entry.k), referenceRecord(run.target, entry), true), 0);
              }
            });
            warnings.push(changedWarning(swept.changed, swept.changedCount));
          });
        } catch (err) {
          // (its listing or its writes: the target is partly restored, as after a failed write above; review-33b F2)
          refs?.close();
          await clearResourceCaches(o.target, resourceGroups);
          throw partlyWritten(err, tally.objects);
        }
      }
      if (!verbatimSchema) {
        // s3db.json, passed over by the writes: its definitions merged with the target's
        if (await mergeDefinitions(o.target, target, definitionNames, o.mode)) counted(tally, { header: { key: 's3db.json', size: 0 }, body: Buffer.alloc(0) });
        else outcomeOf(tally, DATABASE_GROUP).unchanged++;
      }
      meter.finish();
      const uncleared = await clearResourceCaches(o.target, resourceGroups);
      if (uncleared.length > 0) warnings.push(`the cache of ${uncleared.join(', ')} could not be cleared: reads may return pre-restore data until it expires`);
      const replaced = await reloadResources(o.target);
      if (replaced.length > 0) {
        warnings.push(`the restore changed the definition of ${replaced.join(', ')}: their Resource objects were rebuilt, so hooks, listeners and plugin wrappers registered on them are gone; register them again or reconnect the database`);
      }
      if (refs) {
        try {
          await refreshPartitionRefs(o, target, refs);
        } catch (err) {
          throw partlyWritten(err, tally.objects); // the objects are written: only references are left to check
        } finally {
          refs.close();
        }
        partitionReferences = { deleted: refs.deleted, created: refs.created };
      }
    }
    const durationMs = Math.max(1, Date.now() - started);
    const rows = [...plan.values()].map((r) => (o.dryRun || logical.has(r.name) ? r : carriedOut(r, tally.byGroup.get(r.name), o.mode, tally.lost)));
    const resources: ResourceRestoreReport[] = rows.map(({ skippedRecords: _skipped, skippedOther: _other, lostRecords: _lost, ...r }) => r);
    return {
      backupId: target.id,
      chain: o.chain.map((m) => m.id),
      mode: o.mode,
      dryRun: o.dryRun,
      resources,
      restored: rows
        .filter((r) => r.name !== DATABASE_GROUP)
        .map((r) => ({ name: r.name, recordsRestored: o.dryRun ? 0 : r.records - r.skippedRecords - r.lostRecords, totalRecords: r.records })),
      objectsWritten: tally.objects,
      objectsDeleted,
      bytesWritten: tally.bytes,
      partitionReferences,
      sourceFailures: o.sourceFailures,
      passedOver: passedOver.map((p) => p.path),
      lost: tally.lost,
      warnings,
      durationMs,
      objectsPerSecond: (tally.objects * 1000) / durationMs,
      bytesPerSecond: (tally.bytes * 1000) / durationMs,
    };
  } finally {
    await verdicts?.dispose(); // (null in a dry run)
  }
}

/** Per group, per chain member: how many versions the snapshot names in that member's parts. */
type VersionsNamed = Map<string, Map<string, number>>;

function countVersion(counts: VersionsNamed, group: string, member: string): void {
  const members = counts.get(group) ?? counts.set(group, new Map()).get(group)!;
  members.set(member, (members.get(member) ?? 0) + 1);
}

/** What the restore's writes have done so far (each count is raised as a write lands). */
interface WriteTally {
  objects: number;
  bytes: number;
  /** What the writes did, per group: the report's rows after a real run (the plan's may differ: the database is live). */
  byGroup: Map<string, GroupOutcome>;
  /**
   * Versions the chain's parts hold that the snapshot lacks and no deletion explains. A resource's
   * member is joined with no other member, so any later member that deleted something of the
   * group could explain it (review-s22 F2); writeGroup's merge of all members sees their
   * deletions, so only a later member it does not read could.
   */
  notInSnapshot: number;
  /** Salvage: the objects of parts passed over (counted as the index pass goes past them). */
  lost: LostRange[];
  /** Salvage: per group, the ids of the lost records, whose partition references are left as the target has them. */
  lostRecords: Map<string, Set<string>>;
  /** Salvage: the runs of damaged parts some of whose partition references were written back. */
  rebuilt: LostRange[];
}

interface GroupOutcome {
  written: number;
  /** Left in place: the target held the backup's version (unchangedTest). */
  unchanged: number;
  /** Skip: the target's own kept (or a backup reference its record's values do not give). */
  skipped: number;
  skippedRecords: number;
  deleted: number;
}

function outcomeOf(tally: WriteTally, group: string): GroupOutcome {
  let outcome = tally.byGroup.get(group);
  if (!outcome) tally.byGroup.set(group, (outcome = { written: 0, unchanged: 0, skipped: 0, skippedRecords: 0, deleted: 0 }));
  return outcome;
}

/** `record` was written. */
function counted(tally: WriteTally, record: ArchiveRecord): void {
  tally.objects++;
  tally.bytes += record.body.length;
  outcomeOf(tally, groupOfKey(record.header.key)).written++;
}

/** Skip kept the target's object at `key` instead of writing the backup's. */
function skipped(tally: WriteTally, key: string): void {
  const outcome = outcomeOf(tally, groupOfKey(key));
  outcome.skipped++;
  if (isRecord(key)) outcome.skippedRecords++;
}

/**
 * A plan row as the writes carried it out: objects written, left unchanged, skipped and (replace)
 * deleted as counted while writing. Which written ones the target lacked is the plan's (at most
 * as many as were written); the rest count as overwritten. Logical groups keep the plan's row.
 */
function carriedOut(row: PlanRow, outcome: GroupOutcome | undefined, mode: RestoreMode, lost: LostRange[]): PlanRow {
  const done = outcome ?? { written: 0, unchanged: 0, skipped: 0, skippedRecords: 0, deleted: 0 };
  const created = Math.min(row.created, done.written);
  const ofGroup = lost.filter((l) => l.resource === row.name);
  const lostObjects = ofGroup.reduce((n, l) => n + l.objects, 0);
  const lostRecords = ofGroup.reduce((n, l) => n + l.records, 0);
  return { ...row, created, overwritten: done.written - created, unchanged: done.unchanged, skipped: done.skipped, skippedRecords: done.skippedRecords, deleted: mode === 'replace' ? done.deleted : row.deleted, lost: lostObjects, lostRecords };
}

/** A cursor over the backup's index (its snapshot), from its start, each entry with what the plan found the target holding under its key. */
function indexCursor(o: RestoreRunOptions, target: Manifest, verdicts: TargetVerdicts): KeyCursor<PlannedEntry> {
  return new KeyCursor({ items: verdicts.alongside(indexOf(o, target)), key: (e) => e.entry.k, name: 'the backup index' });
}

/** What writing each group needs from the restore: the same for the whole run. */
interface RestoreRun {
  o: RestoreRunOptions;
  target: Manifest;
  logical: Set<string>;
  named: VersionsNamed;
  /** What the plan's listing found the target holding under each index entry's key: the write passes do not list it again. */
  verdicts: TargetVerdicts;
  verbatimSchema: boolean;
  refs: PartitionRefs | null;
  put: ObjectWriter;
  meter: ProgressMeter;
  tally: WriteTally;
  /** The first and last key read from each part (its bounds: parts hold their keys in order), for the rewrite after the writes (a replace's or merge's) of objects changed meanwhile. */
  partBounds: Map<string, { first: string; last: string }>;
}

/** The chain's parts and the backup's index disagree (never restored silently): `what` says how, beginning with the key or group. */
function indexCorrupt(what: string): BackupError {
  return new BackupError('ERR_INDEX_CORRUPT', `${what}: its parts or index are not what its backups wrote (damage, or a part put there from another backup). Restore another backup`);
}

/** A version the chain's parts hold under `key`, from member `from`, that the index names `entry.b` for. */
function otherHolder(target: Manifest, key: string, named: string, from: string): BackupError {
  return indexCorrupt(`${key}: backup ${target.id}'s index says its version is stored by ${named}, but the newest the chain's parts hold is ${from}'s`);
}

/**
 * Every version the index names is stored by a member of the chain: one named elsewhere would be
 * read by no restore (replace reads the chain's members one by one), so nothing is written then.
 */
function refuseHoldersOutsideChain(chain: Manifest[], named: VersionsNamed): void {
  const members = new Set(chain.map((m) => m.id));
  const target = chain[chain.length - 1]!;
  for (const [group, holders] of named) {
    for (const [id, count] of holders) {
      if (!members.has(id)) throw indexCorrupt(`${group}: backup ${target.id}'s index names ${count} versions stored by ${id}, which is not in its chain (${[...members].join(', ')})`);
    }
  }
}

/** After a group is written: every version the index names for it was found where it says. */
function checkAllFound(run: RestoreRun, group: string, found: number, member?: string): void {
  const named = run.named.get(group);
  const expected = member === undefined ? [...(named?.values() ?? [])].reduce((a, b) => a + b, 0) : (named?.get(member) ?? 0);
  if (found === expected) return;
  const where = member === undefined ? "the chain's parts" : `the parts of ${member}`;
  throw indexCorrupt(`${group}: backup ${run.target.id}'s index names ${expected} versions${member === undefined ? '' : ` stored by ${member}`}, and ${where} hold ${found} of them`);
}

/**
 * Writes the newest version of each of `group`'s objects the snapshot names, through `writer`, in
 * key order: database-level objects and logical groups (few objects, a merge of the chain's sorted
 * runs; a tombstone means "absent"). `snapshot` is the index's cursor for the group's keys (null
 * for a logical group, which has no index entries).
 */
async function writeGroup(run: RestoreRun, group: string, writer: BoundedWriter, snapshot: KeyCursor<PlannedEntry> | null): Promise<void> {
  const { o, target, meter, tally } = run;
  let found = 0;
  for await (const { record, from, maybeDeletedLater } of mergeChain(o, group, run.logical.has(group), run.named.get(group) ?? new Map())) {
    const key = record.header.key;
    const entry = snapshot ? ((await snapshot.find(key))?.entry ?? null) : null;
    if (snapshot && !entry) {
      if (!maybeDeletedLater) tally.notInSnapshot++;
      continue;
    }
    // The snapshot names the backup whose parts hold each object's version: a newest version
    // from another one means parts that are not what the backups wrote (never restored silently).
    if (entry && entry.b !== from) throw otherHolder(target, key, entry.b, from);
    found++;
    if (group === DATABASE_GROUP && key === 's3db.json' && !run.verbatimSchema) continue;
    if (unaddressable(o.target.client, key)) continue; // planRestore warned
    if (record.header.logical) {
      await writer.run(async () => {
        if (await restoreLogical(o.target, group, record, o.mode, !run.target.selection.logical?.[group]?.fields)) counted(tally, record);
        meter.add(1, record.body.length);
      }, record.body.length);
      continue;
    }
    await writer.run(() => writeObject(run, group, record, null), record.body.length);
  }
  if (snapshot) checkAllFound(run, group, found);
}

/**
 * Writes one object of the backup by mode (false: skip kept the target's). `listed`: whether the target held the key when the
 * restore's plan listed it (a resource's objects), or null (then skip asks the store).
 */
async function writeObject(run: RestoreRun, group: string, record: ArchiveRecord, listed: boolean | null): Promise<boolean> {
  const { o, refs, put, meter, tally } = run;
  const key = record.header.key;
  // (skip: an s3db.json that defines no resource is an empty shell from connect(), not data to keep)
  const emptyShell = run.verbatimSchema && key === 's3db.json';
  const present = listed ?? (o.mode === 'skip' && !emptyShell ? await exists(o.target, key) : true);
  if ((o.mode === 'skip' && !emptyShell && present) || (refs && o.mode === 'skip' && isPartitionRef(key) && !(await refs.shouldWriteRef(key)))) {
    skipped(tally, key);
    return false;
  }
  if (emptyShell && o.mode !== 'replace') {
    // the application may define resources while the restore runs: kept, not overwritten
    await writeBackupDefinitions(o.target, record.body);
  } else {
    // skip: a key the application writes after the listing above is its own, not overwritten
    const write = () => putRecord(o.target, put, record, o.mode === 'skip' && !emptyShell);
    if (!(refs && isRecord(key) && present ? await refs.overwrite(group, record, write) : await write())) {
      skipped(tally, key);
      return false;
    }
  }
  counted(tally, record);
  meter.add(1, record.body.length);
  return true;
}

/**
 * The resource groups (`groups`, in key order), one chain member at a time, oldest first: each
 * member's parts of each group it holds versions of, joined with one pass over the index, give
 * the versions the index names that member for; a version a later member holds, or one the
 * snapshot lacks (deleted, e.g. by a deletion an earlier build missed: it must not come back), is
 * passed over. Memory holds one member's part reader, one index reader and one page of the
 * target's listing whatever the chain's length (a merge of all members' runs held a reader per
 * member: ~14 MB each, CHAIN_READ_AHEAD). Each member's keys are disjoint from the others', so
 * any member order writes the same database.
 * - Each member pass reads the index again (about 60 bytes per object, against the parts' whole
 *   records).
 * - Which keys the target holds, and which in the backup's version, is the plan's listing, read
 *   beside the index (run.verdicts): no member lists the target again (scale-31: a listing per
 *   member cost a 500 GB database's whole listing per incremental). The plan lists before any
 *   write, so it never shows a write of this restore as the target's.
 * - Merge and skip settle a group's partition references after every one of its data objects
 *   (partition-refs.ts): every member's data objects first, then, drained, the references: the
 *   parts the first sweep saw references in are read a second time (a group's references sort
 *   after its data objects, `resource=<r>/data/` < `resource=<r>/partition=`, so they fill parts
 *   of their own but for the one where the data objects end).
 * - A replace settles no references, and deletes what the backup lacks only after every write.
 */
async function writeMembersInTurn(run: RestoreRun, groups: string[], writer: BoundedWriter, only?: readonly IndexEntry[]): Promise<void> {
  const { o, target, tally } = run;
  const position = new Map(o.chain.map((m, i) => [m.id, i]));
  const found = new Map<string, number>(); // `${member}/${group}`: versions found where the index says
  const withRefs = new Set<string>(); // paths of the parts the data sweep saw partition references in
  const lostParts = o.lostParts ?? new Set<string>();
  // (salvage: every lost record is known before the first reference is written, so its references are left)
  const sweeps: ('all' | 'data' | 'references')[] = !only && (run.refs || lostParts.size > 0) ? ['data', 'references'] : ['all'];
  // a rewrite (`only`): the parts whose bounds hold one of its keys (the member the index names for it), no other
  const rewrite = only ? rewriteParts(run, only) : null;
  // the parts of `member` a sweep reads for `group`: the references sweep only those holding some
  const partsOf = (sweep: 'all' | 'data' | 'references', member: Manifest, group: string) =>
    member.parts.filter((p) => p.group === group && (sweep !== 'references' || withRefs.has(p.path)) && (!rewrite || (rewrite.parts.has(p.path) && !lostParts.has(p.path))));
  for (const sweep of sweeps) {
    if (sweep === 'references') await writer.drain(); // the data objects (and merge's deletions of old references) settled
    for (const [at, member] of o.chain.entries()) {
      // salvage: the references sweep also writes back the references the damaged parts held (after every lost record is known)
      const rebuilding = (g: string) => (sweep === 'references' ? tally.lost.filter((r) => r.backupId === member.id && r.resource === g) : []);
      const holding = groups.filter((g) => run.named.get(g)?.has(member.id) && (partsOf(sweep, member, g).length > 0 || rebuilding(g).length > 0));
      if (holding.length === 0) continue;
      const snapshot = indexCursor(o, target, run.verdicts);
      try {
        for (const group of holding) {
          // a version the snapshot lacks was deleted by a later member, or is a sign of damage
          const maybeDeletedLater = o.chain.slice(at + 1).some((later) => later.resources[group]?.deleted !== 0);
          // salvage: parts damaged everywhere are passed over, their keys found from the parts around them (the first sweep reads all the group's parts)
          const parts = partsOf(sweep, member, group);
          const lost = !rewrite && sweep !== 'references' && parts.some((p) => lostParts.has(p.path)) ? new LostRanges(member.id, group, parts, lostParts) : null;
          const lostRefs = rebuilding(group);
          // (the target holds a lost object intact where the plan found the backup's version: the test unchanged objects pass)
          if (lost) snapshot.onPassed((p) => lost.passed(p.entry, p.held === 'same'));
          else if (lostRefs.length > 0) snapshot.onPassed((p) => rebuildReference(run, writer, group, lostRefs, p, () => found.set(`${member.id}/${group}`, (found.get(`${member.id}/${group}`) ?? 0) + 1)));
          try {
            for await (const { part, record } of partRecords(o, member, parts.filter((p) => !lostParts.has(p.path)))) {
              const key = record.header.key;
              lost?.record(part, key);
              if (rewrite) {
                if (!rewrite.keys.has(key)) continue;
              } else {
                const bounds = run.partBounds.get(part.path);
                if (bounds) bounds.last = key;
                else run.partBounds.set(part.path, { first: key, last: key });
              }
              if (sweep !== 'all' && isPartitionRef(key) !== (sweep === 'references')) {
                if (sweep === 'data') withRefs.add(part.path);
                continue;
              }
              const planned = await snapshot.find(key);
              if (!planned) {
                if (!record.header.deleted && !maybeDeletedLater) tally.notInSnapshot++;
                continue;
              }
              const { entry, held, at: indexAt } = planned;
              const holder = position.get(entry.b)!; // (every holder is in the chain: refuseHoldersOutsideChain)
              if (holder > at) continue; // a later member holds its newer version
              // the index names an older member: parts newer than the index says
              if (holder < at) throw otherHolder(target, key, entry.b, member.id);
              if (record.header.deleted) throw indexCorrupt(`${key}: backup ${target.id}'s index names a version stored by ${member.id}, whose parts hold its deletion`);
              found.set(`${member.id}/${group}`, (found.get(`${member.id}/${group}`) ?? 0) + 1);
              if (unaddressable(o.target.client, key)) continue; // planRestore warned
              if (refOfLost(tally, key)) continue; // a lost record's references stay as the target has them
              if (rewrite) {
                // left in place by the first writes, as the plan found it, since changed by the application
                outcomeOf(tally, group).unchanged--;
                await writer.run(() => writeObject(run, group, record, true), record.body.length);
                continue;
              }
              if (held === 'same' && holdsListedBody(entry, record)) {
                run.meter.add(1, 0); // the target holds this very version (planRestore counted it unchanged)
                outcomeOf(tally, group).unchanged++;
                continue;
              }
              if (held === 'same') await run.verdicts.written(indexAt); // (not left in place after all: its ETag is not its body's MD5)
              await writer.run(() => writeObject(run, group, record, held !== 'absent'), record.body.length);
            }
            // the group's entries after its last key read: passed over by asking past the group's end
            // ('0' follows '/': after every key of the group, before the next group's)
            if (lostRefs.length > 0) await snapshot.find(`resource=${group}0`);
            if (lost) {
              lost.end();
              await snapshot.find(`resource=${group}0`);
              // (a run whose every object a later backup holds lost nothing)
              tally.lost.push(...lost.ranges.filter((r) => r.objects > 0));
              const ids = tally.lostRecords.get(group) ?? tally.lostRecords.set(group, new Set()).get(group)!;
              for (const id of lost.recordIds) ids.add(id);
            }
          } finally {
            snapshot.onPassed(null);
          }
        }
      } finally {
        await snapshot.close();
      }
    }
  }
  if (rewrite) return; // (the first writes checked every version against the index)
  // the versions in passed-over parts count as found where the index says: they are what those parts held (a run of none was dropped)
  // (and the references among them the references sweep handled from the index were counted as found then)
  for (const l of tally.lost) found.set(`${l.backupId}/${l.resource}`, (found.get(`${l.backupId}/${l.resource}`) ?? 0) + l.objects);
  tally.rebuilt = tally.lost.filter((l) => l.rebuilt > 0);
  tally.lost = tally.lost.filter((l) => l.objects > 0); // (a run of references only, all written back, lost nothing)
  for (const group of groups) for (const member of run.named.get(group)?.keys() ?? []) checkAllFound(run, group, found.get(`${member}/${group}`) ?? 0, member);
}

/**
 * A restore of some resources leaves the others' definitions as the target has them. Names the
 * backup's other resources that the target's s3db.json does not define although their objects are
 * there (s3db.js replaced a corrupt s3db.json, or it was lost): unreadable until defined again.
 */
async function undefinedLeftOut(o: RestoreRunOptions, target: Manifest, defined: string[]): Promise<string[]> {
  if (!o.resources) return [];
  const left: string[] = [];
  for (const name of Object.keys(target.resources)) {
    if (name === DATABASE_GROUP || o.resources.includes(name) || defined.includes(name)) continue;
    if (await hasObjects(o.target.client, `resource=${name}/`)) left.push(name);
  }
  if (left.length === 0) return [];
  return [
    `the target's s3db.json does not define ${left.map((n) => `'${n}'`).join(', ')}, whose objects are in the database (s3db.js replaces a corrupt s3db.json when it connects): s3db.js cannot read them until they are defined again. Restore them too (resources: [${left.map((n) => `'${n}'`).join(', ')}]) or the whole database, which puts their definitions back`,
  ];
}

/**
 * Resources restored from a backup whose s3db.json did not define them (taken after s3db.js had
 * replaced a corrupt one), and that the target does not define either: their records are written
 * but unreadable to s3db.js until the resources are defined again.
 */
function withoutDefinitions(target: Manifest, groups: Set<string>, targetDefines: string[]): string[] {
  const left = undefinedResources(target).filter((name) => groups.has(name) && !targetDefines.includes(name));
  if (left.length === 0) return [];
  const names = left.map((n) => `'${n}'`).join(', ');
  return [
    `backup ${target.id} holds objects of ${names} but not their definitions (its s3db.json lacked them: s3db.js had replaced a corrupt one): they are restored, yet s3db.js cannot read them until they are defined again. An older backup whose undefinedResources (listBackups()) does not name them holds the definitions: restore the whole database from it (mode: 'replace'), then this backup with mode: 'merge' (the command line's --mode); or define the resources again with the same attributes`,
  ];
}

/** The resources the database's stored s3db.json defines (none when it is missing or unreadable JSON: a replace puts it back). */
export async function definedResources(db: DatabaseLike): Promise<string[]> {
  try {
    return Object.keys((await readStoredMetadata<{ resources?: Record<string, unknown> }>(db))?.resources ?? {});
  } catch (err) {
    if (err instanceof BackupError && err.code === 'ERR_TARGET_METADATA') return [];
    throw err;
  }
}

/** A failure after some objects were written says so: the target is partly restored (nothing was written otherwise). */
function partlyWritten(err: unknown, written: number): unknown {
  if (written === 0 || !(err instanceof BackupError)) return err;
  // (met only without verification, which refuses such a backup before anything is written:
  // the same restore run again would stop at the same place)
  if (err.code === 'ERR_INDEX_CORRUPT' || err.code === 'ERR_KEY_ORDER') return new BackupError(err.code, `${err.message} (${written} objects were already written from it: the target is partly restored; restore another backup into it, mode 'replace')`, { cause: err });
  return new BackupError(err.code, `${err.message} (${written} objects were already written: the target is partly restored; fix the cause and run the same restore again, restores are idempotent; with verify, the default, a damaged backup is found before anything is written)`, { cause: err });
}

/** The groups a restore of `resources` (null: all) reads from `manifest`; a name the backup lacks is refused (ERR_RESOURCE_NOT_IN_BACKUP). */
export function selectGroups(manifest: Manifest, resources: string[] | null): Set<string> {
  const available = Object.keys(manifest.resources);
  if (!resources) return new Set(available.length > 0 ? available : [DATABASE_GROUP]);
  for (const name of resources) {
    if (name === DATABASE_GROUP || !available.includes(name)) {
      const list = available.filter((n) => n !== DATABASE_GROUP);
      throw new BackupError('ERR_RESOURCE_NOT_IN_BACKUP', `Resource '${name}' does not exist in backup ${manifest.id}; it has: ${list.map((r) => `'${r}'`).join(', ') || '(no resources)'}`, {
        details: { resource: name, available: list },
      });
    }
  }
  return new Set(resources);
}

/**
 * Resource groups in the order of their keys (`resource=<name>/`, code points: the index's order,
 * which lets one index pass follow them), then database-level objects (s3db.json) last, so a
 * crash leaves the old schema with new data, never the reverse.
 */
function orderGroups(groups: Set<string>): string[] {
  const prefix = (g: string) => `resource=${g}/`;
  return [...groups].sort((a, b) => (a === DATABASE_GROUP ? 1 : b === DATABASE_GROUP ? -1 : compareKeys(prefix(a), prefix(b))));
}

/** Membership in a stream sorted by key (code-point order; one out of order is ERR_KEY_ORDER), asked in ascending order. */
class KeyCursor<T> {
  private readonly items: AsyncIterator<T>;
  private readonly keyOf: (item: T) => string;
  private readonly name: string;
  private head: IteratorResult<T> | null = null;
  /** The head was returned by find(): passing it later is not passing it unasked. */
  private headFound = false;
  private asked: string | null = null;
  private passedHook: ((item: T) => void | Promise<void>) | null = null;

  constructor(side: MergeSide<T>) {
    this.items = ordered(side)[Symbol.asyncIterator]();
    this.keyOf = side.key;
    this.name = side.name;
  }

  /** Keys must be asked in ascending order (items before `key` are passed for good). */
  async has(key: string): Promise<boolean> {
    return (await this.find(key)) !== null;
  }

  /**
   * The item of `key`, or null (asked in ascending order, as `has`). A key asked before the last
   * one could only be answered "absent" (the items before were passed): ERR_KEY_ORDER instead.
   */
  async find(key: string): Promise<T | null> {
    if (this.asked !== null && compareKeys(key, this.asked) < 0) {
      throw new BackupError('ERR_KEY_ORDER', `"${key}" was looked up in ${this.name} after "${this.asked}": the backup's parts do not hold their keys in order (damage, or a manifest that lists its parts out of order). Restore another backup`);
    }
    this.asked = key;
    for (;;) {
      this.head ??= await this.items.next();
      if (this.head.done) return null;
      const order = compareKeys(this.keyOf(this.head.value), key);
      if (order === 0) {
        this.headFound = true;
        return this.head.value;
      }
      if (order > 0) return null;
      if (this.passedHook && !this.headFound) await this.passedHook(this.head.value);
      this.head = null;
      this.headFound = false;
    }
  }

  /** Calls `hook` with each item find() passes over without it being asked, awaiting it (null: none). */
  onPassed(hook: ((item: T) => void | Promise<void>) | null): void {
    this.passedHook = hook;
  }

  async close(): Promise<void> {
    await this.items.return?.();
  }
}

/** A resource's plan: the report's row, with the records skip keeps (`skippedRecords`) and among them those not in the backup's version (`skippedOther`). */
type PlanRow = ResourceRestoreReport & { skippedRecords: number; skippedOther: number; lostRecords: number };

/** Database-level objects named in a warning at most (the count is in the report either way). */
const NAMED_DELETES = 10;

/** What a restore will do (planRestore). */
interface RestorePlan {
  /** Per resource: the objects created, overwritten, left unchanged, skipped and deleted. */
  rows: Map<string, PlanRow>;
  /** Per group and chain member, the versions the snapshot names in its parts (members not named are never read). */
  named: VersionsNamed;
  databaseDeletes: string[];
  unreachable: KeySample;
  unwritable: KeySample;
}

/**
 * What a restore will do, from one pass over the backup's index joined with the target's listing;
 * into `verdicts` (not in a dry run), what the listing showed under each index entry's key, for
 * the writes.
 */
async function planRestore(
  o: RestoreRunOptions,
  target: Manifest,
  groups: Set<string>,
  logical: Set<string>,
  verdicts: TargetVerdicts | null,
  opened?: (label: string) => void,
): Promise<RestorePlan> {
  const rows = new Map<string, PlanRow>();
  const named: VersionsNamed = new Map();
  const databaseDeletes: string[] = [];
  const unreachable = new KeySample();
  const unwritable = new KeySample();
  for (const name of orderGroups(groups)) rows.set(name, { name, objects: 0, records: 0, created: 0, overwritten: 0, unchanged: 0, skipped: 0, deleted: 0, kept: 0, lost: 0, skippedRecords: 0, skippedOther: 0, lostRecords: 0 });
  const inScope = (key: string) => groups.has(groupOfKey(key));
  const leaves = unchangedTest(o);
  const asBackedUp = o.mode === 'skip' && fromThisDatabase(o) ? (entry: IndexEntry, existing: SourceEntry) => entry.e === existing.etag && entry.s === existing.size && entry.m === existing.lastModified : null;
  const steps = mergeByKey<IndexEntry, SourceEntry>({ items: plannedIndex(o, target, opened), key: (e) => e.k, name: 'the backup index' }, { items: listObjects(o.target.client, { pageSize: o.pageSize }), key: (e) => e.key, name: 'the target listing' });
  for await (const { key, left: entry, right: listed } of steps) {
    if (!inScope(key)) {
      if (entry) await verdicts?.add('absent'); // (never asked: its group is not restored)
      continue;
    }
    const existing = key === 's3db.json' && o.schemaFromConnect ? undefined : listed;
    const r = rows.get(groupOfKey(key))!;
    const record = isRecord(key);
    let held: TargetHeld = existing ? 'other' : 'absent';
    if (entry) countVersion(named, r.name, entry.b);
    if (entry && unaddressable(o.target.client, key)) {
      unwritable.add(key);
      if (existing && o.mode === 'replace') unreachable.add(key);
    } else if (entry) {
      r.objects++;
      if (record) r.records++;
      if (!existing) r.created++;
      else if (o.mode === 'skip') {
        r.skipped++;
        if (record) r.skippedRecords++;
        if (record && !asBackedUp?.(entry, existing)) r.skippedOther++;
      } else if (leaves && r.name !== DATABASE_GROUP && !logical.has(r.name) && leaves(entry, existing)) {
        r.unchanged++;
        held = 'same';
      } else r.overwritten++;
    } else if (o.mode === 'replace' && replaceDeletes(target, logical, key)) {
      if (unaddressable(o.target.client, key)) {
        unreachable.add(key); // left in place, with a warning
        r.kept++;
      } else {
        r.deleted++;
        if (r.name === DATABASE_GROUP && databaseDeletes.length < NAMED_DELETES) databaseDeletes.push(key);
      }
    } else r.kept++;
    if (entry) await verdicts?.add(held);
  }
  return { rows, named, databaseDeletes, unreachable, unwritable };
}

/**
 * The test for a resource's objects that a restore leaves in place, or null when every object is
 * written: the target's object as listed is the version the index names (sameVersion), checked
 * against the start of the chain member that stored it, and in a storage class s3db.js reads
 * directly. Only where the listing can tell (review-unch):
 * - the target is the database the backup was taken from, as the manifest names it (client,
 *   endpoint as written, bucket, prefix): another database's objects may list alike (an s3db.js
 *   record whose values fit in metadata has an empty body, so only LastModified tells two apart);
 * - on S3: a file:// database lists the ETag its .meta.json claims and file mtimes, which damage
 *   below s3db.js (a disk error, a copy keeping times) leaves as they were; memory:// likewise.
 * Not with `rewriteUnchanged`, nor in mode 'skip' (it keeps every object the target holds).
 * Database-level objects and logical groups are always written (writeGroup). The write phase also
 * checks the body it holds (holdsListedBody).
 */
function unchangedTest(o: RestoreRunOptions): ((entry: IndexEntry, existing: SourceEntry) => boolean) | null {
  if (o.mode === 'skip' || o.rewriteUnchanged === true || isLocalClient(o.target.client) || !fromThisDatabase(o)) return null;
  const began = new Map(o.chain.map((m) => [m.id, Date.parse(m.startedAt)]));
  // (a member without a start, NaN, trusts nothing)
  return (entry, existing) => DIRECTLY_READABLE.has(existing.storageClass ?? 'STANDARD') && sameVersion(entry, existing, { since: began.get(entry.b) ?? Number.NaN, remote: true });
}

/** Whether the restore writes into the database the backup was taken from (the manifest's `source`). */
function fromThisDatabase(o: RestoreRunOptions): boolean {
  const from = o.chain[o.chain.length - 1]!.source;
  const into = describeSource(o.target);
  return sourceKey(from) === sourceKey(into) && from.endpoint === into.endpoint && from.path === into.path;
}

/**
 * Skip keeps the records the target holds, damaged or not: a restore "from the backup" that left
 * them as they are says so, with how many and where, and what puts the backup's versions back
 * (walk-30 F1: a skip restore after corruption kept the corrupted records without a word). In the
 * database the backup was taken from, the records still in the version it holds (same ETag, size
 * and LastModified) are not counted; a record written since counts whatever it holds, a restore's
 * rewrite of the same values too (review-30b G3: the wording says so).
 */
function keptOtherVersions(o: RestoreRunOptions, plan: Map<string, PlanRow>): string[] {
  if (o.mode !== 'skip') return [];
  const rows = [...plan.values()].filter((r) => r.skippedOther > 0);
  if (rows.length === 0) return [];
  const total = rows.reduce((n, r) => n + r.skippedOther, 0);
  const where = rows.map((r) => `${r.name}: ${r.skippedOther}`).join(', ');
  const records = `${total} record${total === 1 ? '' : 's'}`;
  const what = fromThisDatabase(o)
    ? `${records} written since the backup read ${total === 1 ? 'it' : 'them'} (${where}: changed, damaged, or put back by a restore; their listing does not tell which)`
    : `${records} the database already holds (${where}; it is not the database the backup was taken from, so whether they differ from the backup's is not known)`;
  return [`mode 'skip' ${o.dryRun ? 'would keep' : 'kept'} ${what}; restore with mode 'replace' (or 'merge', which keeps records the backup lacks) to put the backup's versions back`];
}

/**
 * S3 storage classes whose objects a GET returns at once. A lifecycle rule moving objects to
 * GLACIER or DEEP_ARCHIVE keeps their ETag and LastModified, and s3db.js can no longer read them:
 * they are written again. (INTELLIGENT_TIERING's archive tiers show only to a HEAD: written too.)
 */
const DIRECTLY_READABLE = new Set(['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'REDUCED_REDUNDANCY', 'GLACIER_IR', 'EXPRESS_ONEZONE']);

/**
 * The version read from the backup's parts has the body the index's ETag (a plain MD5) and size
 * describe. An index written before FORMAT.md revision 11 holds what the backup listed, and the
 * part what it read just after: an object rewritten between the two is stored as read under the
 * listed stamp, so a database rolled back to the listed version (S3 versioning, a file system
 * snapshot) would list as the index says while the backup holds the later write. (Since, the
 * index records such a read as read: same-version.ts versionRead.) A later write that changed
 * only metadata passes this check (README: rewriteUnchanged after a rollback).
 */
function holdsListedBody(entry: IndexEntry, record: ArchiveRecord): boolean {
  return record.body.length === entry.s && isBodyOf(record.body, entry.e);
}

/**
 * Objects of the backup under keys s3db.js's client cannot address are not written: the write
 * would land on the key it normalises to, a record's or s3db.json (backups before 0.2 could hold
 * such a copy, read through that normalisation).
 */
function unwritableWarning(keys: KeySample): string[] {
  if (keys.count === 0) return [];
  return [`${keys.count} objects of the backup are not restored: ${UNADDRESSABLE}; writing them would overwrite the objects their keys normalise to: ${keys}`];
}

/** A replace leaves the target's objects under keys s3db.js's client cannot address (see unaddressable). */
function unreachableWarning(keys: KeySample): string[] {
  if (keys.count === 0) return [];
  return [`${keys.count} objects the backup does not have are left in place: ${UNADDRESSABLE}, so it cannot delete them: ${keys}; delete them with that tool or the S3 console`];
}

/**
 * What a replace does beyond "the backup's objects": database-level objects it deletes (e.g.
 * s3db.js's copy of a corrupt s3db.json) and resources the target defines that the backup's
 * s3db.json does not (their definitions go, their objects stay, unreferenced).
 */
function restoreWarnings(o: RestoreRunOptions, target: Manifest, databaseDeletes: string[], targetResources: string[]): string[] {
  const warnings: string[] = [];
  if (o.mode !== 'replace' || o.resources) return warnings;
  if (databaseDeletes.length > 0) {
    warnings.push(`database-level objects the backup does not have are deleted: ${databaseDeletes.join(', ')}${databaseDeletes.length === NAMED_DELETES ? ', ...' : ''}`);
  }
  const inBackup = (target.s3dbJson as { resources?: Record<string, unknown> } | null)?.resources ?? {};
  const newer = targetResources.filter((r) => !(r in inBackup)).sort();
  if (newer.length > 0) {
    warnings.push(`resources the backup does not define are dropped from s3db.json (their objects stay, unreferenced): ${newer.join(', ')}; restore with resources: [...] (the command line's --resources) to keep them`);
  }
  return warnings;
}

/** A dry run of a salvage: the parts it will pass over (which of their objects are lost is found only by reading the parts around them). */
function passedOverWarning(passed: PartEntry[]): string[] {
  if (passed.length === 0) return [];
  const objects = passed.reduce((n, p) => n + p.objects, 0);
  return [`salvage: ${passed.length} damaged parts will be passed over (${passed.map((p) => p.path).join(', ')}); the objects they hold (at most ${objects}, fewer where a later backup of the chain holds a newer version) will not be restored and are left as the target has them; the restore names them`];
}

/** A salvage's objects not restored, per damaged run of parts. */
function lostWarnings(lost: LostRange[]): string[] {
  return lost.map((l) => {
    const between = `${l.after === null ? 'the start' : JSON.stringify(l.after)} and ${l.before === null ? 'the end' : JSON.stringify(l.before)}`;
    const named = l.keys.length === 0 ? '' : `: ${l.keys.slice(0, 10).map((k) => JSON.stringify(k)).join(', ')}${l.objects > 10 ? ', ...' : ''}`;
    const rebuilt = l.rebuilt > 0 ? ` (besides ${l.rebuilt} partition references of restored records, written back from the backup's index)` : '';
    return `salvage: ${l.objects} objects of ${l.resource} (${l.records} records) were not restored${rebuilt}, their part${l.parts.length > 1 ? 's' : ''} ${l.parts.join(', ')} of backup ${l.backupId} being damaged at every destination: the keys of ${l.resource} between ${between} that backup stores${named}. They are left as the target has them${l.intact > 0 ? ` (${l.intact} of them as the backup has them: nothing of those is missing)` : ''}: restore ${l.intact > 0 ? 'the others' : 'them'} from another backup`;
  });
}

/** A salvage's damaged runs that lost nothing but references, all written back (the others' warnings count theirs). */
function rebuiltWarnings(rebuilt: LostRange[]): string[] {
  return rebuilt
    .filter((l) => l.objects === 0)
    .map((l) => `salvage: ${l.rebuilt} partition references of ${l.resource} in the part${l.parts.length > 1 ? 's' : ''} ${l.parts.join(', ')} of backup ${l.backupId}, damaged at every destination, were written back from the backup's index (a reference is its key and an empty body); nothing else of ${l.parts.length > 1 ? 'them' : 'it'} was lost`);
}

/**
 * Salvage, the references sweep: an index entry it passes over (in its order, after every data
 * object) that a damaged part of `ranges` held and that can be written back (rebuildableRange) is
 * written as a reference: by mode as any object of the backup, left where the plan found it.
 */
async function rebuildReference(run: RestoreRun, writer: BoundedWriter, group: string, ranges: readonly LostRange[], { entry, held }: PlannedEntry, found: () => void): Promise<void> {
  const range = rebuildableRange(ranges, entry, run.tally.lostRecords.get(group));
  if (!range || unaddressable(run.o.target.client, entry.k)) return; // (planRestore warned of the latter)
  found();
  if (held === 'same') {
    countRebuilt(range, entry.k, { intact: true, restored: true });
    run.meter.add(1, 0);
    outcomeOf(run.tally, group).unchanged++;
    return;
  }
  if (run.o.mode === 'skip') {
    // skip may keep the target's instead (its record gives another key): then it is neither lost nor written back (review-33b F3)
    const wrote = await writeObject(run, group, referenceRecord(run.target, entry), held !== 'absent');
    countRebuilt(range, entry.k, { intact: false, restored: wrote });
    return;
  }
  countRebuilt(range, entry.k, { intact: false, restored: true });
  await writer.run(() => writeObject(run, group, referenceRecord(run.target, entry), held !== 'absent'), 0);
}

/** A partition reference as s3db.js writes one, from its index entry: its key, an empty body, and `backup`'s current version of its resource ('v1' when it names none) as `_v`. */
function referenceRecord(backup: Manifest, entry: IndexEntry): ArchiveRecord {
  const defs = (backup.s3dbJson as { resources?: Record<string, { currentVersion?: unknown }> } | null)?.resources;
  const version = defs?.[groupOfKey(entry.k)]?.currentVersion;
  return { header: { key: entry.k, size: 0, metadata: { _v: typeof version === 'string' ? version : 'v1' } }, body: Buffer.alloc(0) };
}

/** Salvage: `key` is a partition reference of a lost record (left as the target has it, never written or deleted). */
function refOfLost(tally: WriteTally, key: string): boolean {
  if (tally.lostRecords.size === 0 || !isPartitionRef(key)) return false;
  const id = refRecordId(key);
  return id !== null && tally.lostRecords.get(groupOfKey(key))?.has(id) === true;
}

/**
 * Whether a replace deletes `key` (in scope, absent from the backup): not in a logical (filtered)
 * resource, which holds only the records its filter chose; and not a database-level object other
 * than s3db.json when the backup left those out (includeMetadata: false: plugin state was not
 * backed up, so it is not the backup's to remove).
 */
function replaceDeletes(backup: Manifest, logical: Set<string>, key: string): boolean {
  const group = groupOfKey(key);
  if (logical.has(group)) return false;
  return !(group === DATABASE_GROUP && key !== 's3db.json' && backup.selection.includeMetadata === false);
}

function isRecord(key: string): boolean {
  return /^resource=[^/]+\/data\//.test(key);
}

/**
 * Refuses a restore that writes only some definitions (`defining`) into a database whose s3db.json
 * defines no resource while it holds objects of one the backup does not have (`inBackup`): its
 * definition was lost (s3db.js's connect() writes an empty s3db.json where it finds none, e.g.
 * after a write on a full disk failed) and no restore of this backup can bring it back, so
 * writing these would make that final. (Resources the backup holds: the restore warns to restore
 * them too.) A whole-database replace is not asked.
 */
async function refuseLostDefinitions(db: DatabaseLike, defining: string[], inBackup: Set<string>): Promise<void> {
  for await (const o of listObjects(db.client, { prefix: 'resource=' })) {
    const name = resourceOfKey(o.key);
    if (name === null || inBackup.has(name)) continue;
    throw new BackupError(
      'ERR_TARGET_METADATA',
      `the target database's s3db.json defines no resource, yet it holds objects of ${name} (${o.key}), which this backup does not have: its definition was lost (s3db.js writes an empty s3db.json where it finds none, e.g. after a failed write on a full disk), and this restore would write only ${defining.length > 0 ? [...defining].sort().join(', ') : 'none'}, making that final. Nothing was written. Put s3db.json back first (the copy a failed restore saved and named, or a backup's manifest s3dbJson: README runbook, step 4)`,
    );
  }
}

/** Sorted index (with the plan's verdicts) x sorted target listing -> one step per key in scope. */
async function* mergeJoin(index: AsyncIterable<PlannedEntry>, listing: AsyncIterable<SourceEntry>, inScope: (key: string) => boolean): AsyncIterable<{ planned?: PlannedEntry; existing?: SourceEntry }> {
  const steps = mergeByKey<PlannedEntry, SourceEntry>({ items: index, key: (e) => e.entry.k, name: 'the backup index' }, { items: listing, key: (e) => e.key, name: 'the target listing' });
  for await (const step of steps) {
    if (inScope(step.key)) yield { planned: step.left, existing: step.right };
  }
}

/**
 * Records of `group` at the chain's target point (database-level objects and logical groups:
 * writeGroup): newest version per key, tombstones dropped, each with the backup whose parts hold
 * it. A logical (filtered) group is read from the target backup alone: each backup stores its
 * whole selection. Otherwise only the members in `holders` are read
 * (those whose versions the snapshot names, planRestore): a member every one of whose versions a
 * later one replaced or deleted is never opened (each open member holds ~15 MB of decoder and
 * stream buffers, so a chain whose incrementals rewrite everything cost that per member; the
 * parts read are still checked against their SHA-256 in the authenticated manifest).
 */
async function* mergeChain(o: RestoreRunOptions, group: string, logical: boolean, holders: ReadonlyMap<string, number>): AsyncIterable<{ record: ArchiveRecord; from: string; maybeDeletedLater: boolean }> {
  const newestFirst = [...o.chain].reverse();
  const members = logical ? [o.chain[o.chain.length - 1]!] : newestFirst.filter((m) => holders.has(m.id));
  // a version the snapshot lacks may have been deleted by a tombstone in a member not read (one
  // newer, holding tombstones of the group): it is then no sign of damage (see the caller)
  const maybeDeletedLater = members.map((m) => !logical && newestFirst.slice(0, newestFirst.indexOf(m)).some((later) => !holders.has(later.id) && later.resources[group]?.deleted !== 0));
  const runs = members.map((m) => recordsOf(o, m, group)[Symbol.asyncIterator]());
  const heads = await Promise.all(runs.map((r) => r.next()));
  for (;;) {
    let min: string | null = null;
    for (const h of heads) if (!h.done && (min === null || compareKeys(h.value.header.key, min) < 0)) min = h.value.header.key;
    if (min === null) return;
    let winner: { record: ArchiveRecord; from: string; maybeDeletedLater: boolean } | null = null;
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i]!;
      if (!h.done && h.value.header.key === min) {
        winner ??= { record: h.value, from: members[i]!.id, maybeDeletedLater: maybeDeletedLater[i]! }; // runs are newest first: the first match is the newest version
        heads[i] = await runs[i]!.next();
      }
    }
    if (winner && !winner.record.header.deleted) yield winner;
  }
}

/** One backup's records of `group`, part after part, resuming at another destination on failure. */
async function* recordsOf(o: RestoreRunOptions, manifest: Manifest, group: string): AsyncIterable<ArchiveRecord> {
  for await (const { record } of partRecords(o, manifest, manifest.parts.filter((p) => p.group === group))) yield record;
}

/** One backup's records of `parts` (in order), each with its part, resuming at another destination on failure. */
async function* partRecords(o: RestoreRunOptions, manifest: Manifest, parts: PartEntry[]): AsyncIterable<{ part: PartEntry; record: ArchiveRecord }> {
  const key = o.keys.get(manifest.id) ?? null;
  for (const part of parts) for await (const record of readPart(o, manifest, part, key)) yield { part, record };
}

/**
 * The backup's index as planning reads it, before anything is written: a copy found damaged (a
 * restore without verification meets it here; planFromWholeIndex then tries the next one) says
 * so, and what mends it.
 */
async function* plannedIndex(o: RestoreRunOptions, manifest: Manifest, opened?: (label: string) => void): AsyncIterable<IndexEntry> {
  try {
    yield* ordered({ items: indexOf(o, manifest, opened), key: (e) => e.k, name: `the object index of ${manifest.id}` });
  } catch (err) {
    if (!(err instanceof BackupError && (isDamage(err) || err.code === 'ERR_KEY_ORDER'))) throw err;
    throw new BackupError(err.code, `${err.message}. Nothing was written. verifyBackup('${manifest.id}') records the damage, and recoverBackups() then puts the index back (from another destination or the backup's parts)`, { cause: err, details: { indexCopyFailed: true } });
  }
}

/** The backup's index, read where verification found it whole (if it ran), or where planning did (planFromWholeIndex). */
function indexOf(o: RestoreRunOptions, manifest: Manifest, opened?: (label: string) => void): AsyncIterable<IndexEntry> {
  return readIndex(o.set, manifest, o.keys.get(manifest.id) ?? null, { preferred: o.goodSources?.get(indexSource(manifest.id)), ...(opened ? { opened } : {}) });
}

/**
 * planRestore, planned again from the next destination whose copy of the index passes its
 * SHA-256 (read whole first) when the copy it read turns out damaged: a restore without
 * verification meets such a copy here, before anything is written. The restore then reads the
 * index where planning did (goodSources), and reports the damaged copy in its sourceFailures.
 */
async function planFromWholeIndex(o: RestoreRunOptions, target: Manifest, groups: Set<string>, logical: Set<string>): Promise<RestorePlan & { verdicts: TargetVerdicts | null }> {
  const failed: string[] = [];
  for (;;) {
    let at: string | undefined;
    const verdicts = o.dryRun ? null : await TargetVerdicts.create(`the object index of ${target.id}`);
    try {
      const plan = await planRestore(o, target, groups, logical, verdicts, (label) => (at = label));
      await verdicts?.finish();
      return { ...plan, verdicts };
    } catch (err) {
      await verdicts?.dispose();
      // (only the index's own failures: the target's listing out of order is not the copy's)
      if (at === undefined || !(err instanceof BackupError && err.details.indexCopyFailed === true)) throw err;
      failed.push(at);
      const { at: next, faults } = await nextWholeIndex((await holdersOf(target, o.set)).filter((m) => !failed.includes(m.label)), target);
      failed.push(...faults.map((f) => f.label));
      if (next === undefined) throw err;
      o.sourceFailures?.push({ label: at, path: target.index.path, error: errorMessage(err.cause ?? err) });
      (o.goodSources ??= new Map()).set(indexSource(target.id), next);
    }
  }
}

async function* readPart(o: RestoreRunOptions, manifest: Manifest, part: PartEntry, key: KeyHandle | null): AsyncIterable<ArchiveRecord> {
  const holders = await holdersOf(manifest, o.set);
  const readAhead = o.chain.length > 1 ? CHAIN_READ_AHEAD : undefined;
  yield* readPartRecords(preferredFirst(holders, o.goodSources?.get(part.path)), manifest, part, key, (label, error) => o.sourceFailures?.push({ label, path: part.path, error }), readAhead);
}

async function exists(db: DatabaseLike, key: string): Promise<boolean> {
  if (typeof db.client.exists === 'function') return db.client.exists(key);
  try {
    await db.client.getObject(key);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/**
 * True when the key can be read (not when only its body exists: see putRecord). On a local client
 * (file://) any read failure means a torn object (a body without, or with a cut, .meta.json: its
 * metadata is written without fsync); on a remote one only NotFound does, since a 403 or 5xx must
 * not lead to an overwrite.
 */
async function readable(db: DatabaseLike, key: string): Promise<boolean> {
  try {
    await bodyToBuffer((await db.client.getObject(key)).Body); // rare: only after a refused skip write
    return true;
  } catch (err) {
    if (isNotFound(err) || isLocalClient(db.client)) return false;
    throw new BackupError('ERR_TARGET_WRITE', `could not tell whether ${key} exists in the target database: ${conciseCause(errorMessage(err))}; run the restore again once the target is readable`, { cause: err });
  }
}

/** Puts `record` back; with `onlyIfAbsent`, only where the key does not exist (false when it does). */
async function putRecord(db: DatabaseLike, put: ObjectWriter, record: ArchiveRecord, onlyIfAbsent = false): Promise<boolean> {
  const h = record.header;
  try {
    await put({ key: h.key, metadata: h.metadata ?? {}, body: record.body, contentType: h.contentType, contentEncoding: h.contentEncoding, headers: keptHeaders(h), ...(onlyIfAbsent ? { ifNoneMatch: '*' } : {}) });
    return true;
  } catch (err) {
    if (onlyIfAbsent && isPreconditionFailed(err)) {
      // The key is taken: by the application (its record is kept), or by a torn write that a
      // crash left, which nobody can read: s3db's file:// client writes a body and then its
      // .meta.json, and a body alone refuses If-None-Match yet reads as missing. That is written over.
      if (await readable(db, h.key)) return false;
      return putRecord(db, put, record, false);
    }
    throw new BackupError('ERR_TARGET_WRITE', `could not write ${h.key} to the target database: ${conciseCause(errorMessage(err))}; run the restore again once the target is writable (restores are idempotent)`, { cause: err });
  }
}

/** Objects a rewrite after the writes takes at most (the count beyond is told: the restore is to be run again). */
const REWRITE_AT_MOST = 100_000;

/**
 * A replace's or merge's pass after its writes: one listing of the target beside the index and
 * the plan's verdicts (`inScope`: the groups restored). A replace deletes the target's objects
 * the backup lacks (`deletes`; null: none). Both find the objects the writes left in place because
 * the plan found them as backed up (`leftInPlace` of a 'same' verdict) that no longer are:
 * changed or deleted by the application since the plan listed them (review-33 F1: each chain
 * member's pass listed the target again before, so a change before it was written over; the first
 * REWRITE_AT_MOST, in key order, and how many in all), for writeMembersInTurn to write again.
 */
async function sweepAfterWrites(
  run: RestoreRun,
  inScope: (key: string) => boolean,
  deletes: ((key: string) => boolean) | null,
  leftInPlace: (entry: IndexEntry) => boolean,
): Promise<{ deleted: number; changed: IndexEntry[]; changedCount: number }> {
  const { o, target, tally } = run;
  const stillSame = unchangedTest(o); // (null: nothing was left in place)
  let deleted = 0;
  let batch: string[] = [];
  const changed: IndexEntry[] = [];
  let changedCount = 0;
  const flush = async () => {
    await deleteKeys(o.target.client, batch, `${batch.length} objects the backup does not have`);
    deleted += batch.length;
    for (const key of batch) outcomeOf(tally, groupOfKey(key)).deleted++;
    batch = [];
  };
  // The listing is re-read page by page while deleting behind it; collect a page's worth first.
  // An unaddressable key is left (planRestore warned): deleting it through s3db.js's client would
  // delete the key it normalises to, which may be one of the backup's just restored.
  for await (const { planned, existing } of mergeJoin(run.verdicts.alongside(indexOf(o, target)), listObjects(o.target.client, { pageSize: o.pageSize }), inScope)) {
    if (!planned) {
      if (existing && deletes?.(existing.key) && !unaddressable(o.target.client, existing.key)) {
        batch.push(existing.key);
        if (batch.length >= 1000) await flush();
      }
    } else if (stillSame && planned.held === 'same' && leftInPlace(planned.entry) && !(existing && stillSame(planned.entry, existing))) {
      changedCount++;
      if (changed.length < REWRITE_AT_MOST) changed.push(planned.entry);
    }
  }
  await flush();
  return { deleted, changed, changedCount };
}

/** A rewrite of `changed` (in key order): their keys, and the parts holding them (each key's version is in the parts of the member the index names, between a part's bounds). */
function rewriteParts(run: RestoreRun, changed: readonly IndexEntry[]): { keys: Set<string>; parts: Set<string> } {
  // each member's keys, in key order (as `changed` is): a part holds one if the first at or after its first key is at or before its last
  const keysOf = new Map<string, string[]>();
  for (const e of changed) (keysOf.get(e.b) ?? keysOf.set(e.b, []).get(e.b)!).push(e.k);
  const parts = new Set<string>();
  for (const member of run.o.chain) {
    const keys = keysOf.get(member.id);
    if (!keys) continue;
    for (const part of member.parts) {
      const bounds = run.partBounds.get(part.path);
      if (!bounds) continue;
      const at = firstAtOrAfter(keys, bounds.first);
      if (at < keys.length && compareKeys(keys[at]!, bounds.last) <= 0) parts.add(part.path);
    }
  }
  return { keys: new Set(changed.map((e) => e.k)), parts };
}

/** The index of the first of `sorted` (in key order) at or after `key` (sorted.length: none). */
function firstAtOrAfter(sorted: readonly string[], key: string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (compareKeys(sorted[mid]!, key) < 0) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** The objects a restore wrote again, having left them in place as backed up before the application changed them. */
function changedWarning(changed: readonly IndexEntry[], count: number): string {
  const named = changed.slice(0, 5).map((e) => JSON.stringify(e.k)).join(', ');
  const more = count > changed.length ? `; ${count - changed.length} more were changed than one restore writes again (${REWRITE_AT_MOST}): stop the application's writes and run the restore again` : '';
  return `${count} objects the restore found as backed up, and left in place, were changed or deleted while the restore ran, by the application or a plugin of the database (${named}${count > 5 ? ', ...' : ''}): ${changed.length} of them were written again from the backup${more}`;
}

/**
 * After a merge/skip's writes, definition merge and reload: references of drifted (or unchecked)
 * partitions are checked, then one index pass gives every backup record its keys in the drifted ones.
 */
async function refreshPartitionRefs(o: RestoreRunOptions, target: Manifest, refs: PartitionRefs): Promise<void> {
  const drifted = await refs.checkAfter(o.pageSize, o.concurrency);
  if (drifted.size === 0) return;
  await BoundedWriter.running(o.concurrency, Number.POSITIVE_INFINITY, async (writer) => {
    for await (const entry of indexOf(o, target)) {
      const group = groupOfKey(entry.k);
      const partitions = drifted.get(group);
      const id = partitions ? recordIdOf(group, entry.k) : null;
      if (partitions && id !== null) await writer.run(() => refs.createRefs(group, id, partitions));
    }
  });
}

/** Logical records are written through the resource API: their resources must exist in the target first. */
async function ensureDefinitions(db: DatabaseLike, manifest: Manifest, groups: string[]): Promise<void> {
  const missing = groups.filter((g) => !(g in db.resources));
  if (missing.length === 0) return;
  await mergeDefinitions(db, manifest, missing, 'replace');
  await reloadResources(db);
}
