/**
 * Salvage: restoring what a damaged backup still holds (restore option `salvage`).
 *
 * A full verification before the restore finds the parts no destination holds whole. Salvage
 * passes over those parts of resources stored object by object, and nothing else: a backup whose
 * index is damaged everywhere, whose index and parts disagree, whose manifest fails its
 * authentication, or whose damaged part holds database-level objects (s3db.json) or a filtered
 * resource's records is refused as without salvage (`salvageRefusal`; a manifest that fails its
 * authentication is refused before any verification, plugin.ts trustedForRestore).
 *
 * Which objects a passed-over part held is found without it: a backup's parts of one group are in
 * key order and never share a key, so the part's objects are exactly the index entries that name
 * that backup, of that group, strictly between the last key read before the part and the first key
 * read after it (`LostRanges`: the bounds while the parts around it are read, the entries as the
 * restore's pass over the index goes past them unasked; no pass of its own). A key the snapshot
 * names a later backup for is that backup's version, and is restored: it is not lost.
 *
 * Invariant relied on by restore.ts: a lost object is never written and never deleted (replace
 * deletes only keys the index lacks, and a lost key is in the index), so the database keeps its own
 * version of it, if any; and so are a lost record's partition references (the backup's, in parts
 * that are whole, are not written; the database's, which the index may lack, not deleted): they
 * follow the version the database keeps. The references a damaged part held of records restored
 * from other parts are written back from their index entries (`rebuildableRange`), in the
 * restore's references sweep, once every lost record is known. Memory: the ids of the lost
 * records (`recordIds`).
 */
import { compareKeys } from './sorted-merge.js';
import { DATABASE_GROUP, groupOfKey } from './layout.js';
import { indexSource } from './stored.js';
import type { IndexEntry, Manifest, PartEntry } from './manifest.js';
import type { VerifyOutcome } from './verify.js';
import { isPartitionRef, recordIdOf, refRecordId } from './partition-refs.js';

/** Objects of one backup's group that a restore did not write: their parts are damaged everywhere. */
export interface LostRange {
  resource: string;
  /** The backup whose (damaged) parts held them. */
  backupId: string;
  parts: string[];
  /** The last key read before the parts (null: none), and the first after them (null: none); the lost keys lie between. */
  after: string | null;
  before: string | null;
  /** Index entries in the range: the objects not restored, and how many of them are records (`resource=<r>/data/id=<id>`). */
  objects: number;
  records: number;
  /**
   * Of `objects`, those the target holds in the backup's version (the test a restore leaves
   * `unchanged` objects by) when the restore listed it, so nothing of them is missing there;
   * counted only where a restore can tell (into the S3 database the backup was taken from), else 0.
   */
  intact: number;
  /** The first lost keys (up to LOST_KEYS_NAMED), in key order. */
  keys: string[];
  /**
   * Partition references the parts held of records restored from other parts, written back from
   * their index entries (`rebuildableRange`); not counted in `objects`, `intact` or `keys` (nor
   * are those a skip did not write, keeping the target's).
   */
  rebuilt: number;
}

/** Keys a lost range names at most (the count is exact either way). */
export const LOST_KEYS_NAMED = 100;

/**
 * Why a salvage restore refuses `manifest`, given the objects its (failed) verification found
 * damaged everywhere (`missing`); null when it can pass over every one of them: then `missing` are
 * the parts it passes over.
 */
export function salvageRefusal(manifest: Manifest, missing: VerifyOutcome['missing']): string | null {
  if (missing.length === 0) return `the index and the parts of backup ${manifest.id} disagree, so no part can be trusted to hold what the index says`;
  if (missing.includes(indexSource(manifest.id))) return `its object index is damaged at every destination: recoverBackups() puts it back (from its parts), then restore again`;
  for (const path of missing) {
    const part = manifest.parts.find((p) => p.path === path);
    if (!part) return `${path} is not one of its parts`;
    if (part.group === DATABASE_GROUP) return `part ${path} holds the database's own objects (s3db.json): restore an older backup, or this one's resources with \`resources: [...]\` into a database that defines them`;
    if (manifest.resources[part.group]?.logical) return `part ${path} holds records of the filtered resource '${part.group}': restore the other resources with \`resources: [...]\``;
  }
  return null;
}

/**
 * The lost ranges of one backup's parts of one group, found while those parts are read in order:
 * `record` for every record read (of any part), `end` after the last.
 */
export class LostRanges {
  readonly ranges: LostRange[] = [];
  /** The ids of the lost records (`resource=<group>/data/id=<id>`): their partition references are left as the target has them too. */
  readonly recordIds = new Set<string>();
  private readonly position: Map<string, number>;
  /** The part the last record came from (-1: none yet), and that record's key. */
  private at = -1;
  private lastKey: string | null = null;

  constructor(
    private readonly backupId: string,
    private readonly group: string,
    private readonly parts: PartEntry[],
    private readonly lost: ReadonlySet<string>,
  ) {
    this.position = new Map(parts.map((p, i) => [p.path, i]));
  }

  record(part: PartEntry, key: string): void {
    const i = this.position.get(part.path)!;
    if (i !== this.at) this.close(this.parts.slice(this.at + 1, i), key);
    this.at = i;
    this.lastKey = key;
  }

  end(): void {
    this.close(this.parts.slice(this.at + 1), null);
    this.at = this.parts.length;
  }

  /**
   * An index entry the restore's pass went past without asking for it, in key order: one of a
   * range's objects when it names this backup and lies in the range (the range is known by then:
   * the key read after it is asked, or the group's end, only once `record` or `end` saw it).
   * `intact`: the target held the backup's version of it when the restore planned.
   */
  passed(entry: IndexEntry, intact: boolean): void {
    if (entry.b !== this.backupId || groupOfKey(entry.k) !== this.group) return;
    const range = this.ranges.find((r) => inRange(r, entry.k));
    if (!range) return;
    range.objects++;
    const id = recordIdOf(this.group, entry.k);
    if (id !== null) {
      range.records++;
      this.recordIds.add(id);
    }
    if (range.keys.length < LOST_KEYS_NAMED) range.keys.push(entry.k);
    if (intact) range.intact++;
  }

  private close(passed: PartEntry[], before: string | null): void {
    const parts = passed.filter((p) => this.lost.has(p.path)).map((p) => p.path);
    if (parts.length > 0) this.ranges.push({ resource: this.group, backupId: this.backupId, parts, after: this.lastKey, before, objects: 0, records: 0, intact: 0, keys: [], rebuilt: 0 });
  }
}

const inRange = (r: LostRange, key: string) => (r.after === null || compareKeys(key, r.after) > 0) && (r.before === null || compareKeys(key, r.before) < 0);

/** The range of `ranges` (any backup's, any group's) whose damaged parts held `entry`'s version, if any. */
export function lostRangeOf(ranges: readonly LostRange[], entry: IndexEntry): LostRange | undefined {
  return ranges.find((r) => r.backupId === entry.b && r.resource === groupOfKey(entry.k) && inRange(r, entry.k));
}

/**
 * The lost range of `ranges` (one backup's, one group's) holding `entry`, when `entry` is a
 * partition reference that can be written back without its part: s3db.js's reference is its key,
 * an empty body and the resource's version as `_v` metadata (all it writes), so an empty one whose
 * record is not lost is the backup's own (review-31b F1b: else the record restored from another
 * part is missing from that partition's listings). Null otherwise: a lost record's references
 * follow the version the database keeps; a non-empty object is not one s3db.js wrote.
 */
export function rebuildableRange(ranges: readonly LostRange[], entry: IndexEntry, lostRecords: ReadonlySet<string> | undefined): LostRange | null {
  if (entry.s !== 0 || !isPartitionRef(entry.k)) return null;
  const id = refRecordId(entry.k);
  if (id === null || lostRecords?.has(id)) return null;
  return lostRangeOf(ranges, entry) ?? null;
}

/**
 * `key` of `range`, a reference handled from the index, is no longer among its lost objects:
 * `restored` (written back, or found in place: `intact`) counts it rebuilt; otherwise a skip kept
 * the target's.
 */
export function countRebuilt(range: LostRange, key: string, { intact, restored }: { intact: boolean; restored: boolean }): void {
  range.objects--;
  if (restored) range.rebuilt++;
  if (intact) range.intact--;
  const named = range.keys.indexOf(key);
  if (named >= 0) range.keys.splice(named, 1);
}
