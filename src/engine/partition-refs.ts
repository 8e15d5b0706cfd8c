/**
 * Partition references during and after a merge or skip restore.
 *
 * s3db.js lists a partition by its reference objects, `resource=<r>/partition=<p>/<field>=<value>
 * .../id=<id>` (empty bodies; the record's values live in its data object). A restore copies the
 * backup's references with its records. That is exact for a replace (the target's other
 * references are deleted), but not when records of both sides stay:
 * - merge overwrites a record that changed partition since the backup: the target's reference
 *   under the newer value would stay (the record listed twice);
 * - skip keeps the target's record but would write the backup's reference under the old value;
 * - a partition defined differently on the two sides (added, removed or changed after the backup)
 *   has no, or wrongly shaped, references for one side's records ("drifted").
 *
 * What is done (references are derived data: deleting a stale one loses nothing, rewriting a
 * correct one is idempotent; data objects are never touched here):
 * - merge, while writing (overwrite()): before a record the target has is overwritten, the
 *   references its values give (the target's definition at that moment) that the backup's
 *   version of it will not have are deleted (all of them in partitions defined otherwise in the
 *   backup). A record whose values in a partition defined alike on both sides did not change
 *   keeps its reference there throughout, so the application's partition queries keep finding it
 *   while the merge runs. The backup's own references come later in key order (`data/` sorts
 *   before `partition=`; the caller drains the group's data writes before writing them) and are
 *   written as any object: a record that moved joins its new partition then.
 * - skip, while writing: a backup reference the target lacks is written only if the record as it
 *   now stands gives exactly that key (partition defined alike on both sides); otherwise it is
 *   written and its partition checked afterwards.
 * - afterwards (from the final s3db.json): every reference of a partition that
 *   drifted from the backup's definition, or was left unchecked by skip, is checked (record read,
 *   reference deleted unless it is the key the record's values give), and every backup record gets
 *   its keys in the drifted partitions.
 * Cost: merge reads each backup record the target has once more (and decodes the backup's version
 * of it, in memory); skip reads the record of each backup reference the target lacks; drifted
 * partitions read one record per reference and per backup record. A reference whose record does
 * not exist is left alone. Failures propagate.
 */
import { metadataDecode } from 's3db.js/concerns/metadata-encoding';
import { BackupError, conciseCause, errorMessage } from '../errors.js';
import type { ArchiveRecord } from './archive.js';
import { BoundedWriter } from './bounded-writer.js';
import type { Manifest } from './manifest.js';
import { buildResource, partitionsOf, type ResourceDefinition } from './reload.js';
import { deleteKeys, hasObjects, isNotFound, listObjects, readStoredMetadata, type DatabaseLike } from './s3db.js';

type RecordData = Record<string, unknown>;
type PartitionDefs = Record<string, unknown>;
interface PartitionedResource {
  version?: string;
  config?: { partitions?: PartitionDefs };
  get(id: string): Promise<RecordData>;
  getPartitionKey(o: { partitionName: string; id: string; data: RecordData }): string | null;
  dispose?(): void;
  /** s3db.js 21's decoder of a record's stored object (what get() does after its GET); absent elsewhere. */
  hydrateClientObject?(id: string, stored: StoredObject): Promise<RecordData>;
}
/** What s3db.js's hydrateObject reads of a GetObject answer. */
interface StoredObject {
  Metadata: Record<string, string | null | undefined>;
  ContentLength: number;
  ContentType?: string;
  Body: { transformToByteArray(): Promise<Uint8Array> };
}

const REF = /^resource=([^/]+)\/partition=([^/]+)\/.+\/id=(.+)$/s;
const DELETE_BATCH = 1000;

export class PartitionRefs {
  deleted = 0;
  created = 0;
  private pendingDeletes: string[] = [];
  /** group -> partitions to check after the restore (skip wrote references it could not check). */
  private readonly unchecked = new Map<string, Set<string>>();
  /** Groups with records in the target but no stored definition (s3db.json damaged): every reference is checked afterwards. */
  private readonly undefinedBefore: Set<string>;
  /** The target's resources as its s3db.json defines them after the restore (set by checkAfter). */
  private after = new Map<string, PartitionedResource>();
  /** Record reads in flight, by `<group>/<id>` (see read()). */
  private readonly reading = new Map<string, Promise<RecordData | null>>();

  private constructor(
    private readonly db: DatabaseLike,
    private readonly mode: 'merge' | 'skip',
    /** The target's resources as its s3db.json defines them before the restore, by group (those it defines). */
    private readonly before: Map<string, PartitionedResource>,
    private readonly backupPartitions: Map<string, PartitionDefs>,
    private readonly groups: string[],
    undefinedBefore: Set<string>,
    /** The backup keeps metadata as stored (its manifest's metadataAsStored): values in s3db.js's client encoding. */
    private readonly asStored: boolean,
  ) {
    this.undefinedBefore = undefinedBefore;
  }

  /**
   * Call before writing. Records are read through Resource objects built from the target's
   * s3db.json as stored (not the restoring process's own, which may be older than another
   * process's changes), detached: no cache, no plugin wrappers.
   */
  static async open(db: DatabaseLike, backup: Manifest, groups: string[], mode: 'merge' | 'skip'): Promise<PartitionRefs> {
    const defs = (backup.s3dbJson as { resources?: Record<string, ResourceDefinition> } | null)?.resources ?? {};
    const backupPartitions = new Map<string, PartitionDefs>();
    for (const group of groups) backupPartitions.set(group, partitionsOf(defs[group]));
    const before = await storedResources(db, groups);
    const undefinedBefore = new Set<string>();
    for (const group of groups) {
      if (before.has(group)) continue;
      // its old references cannot be read now: all are checked after the restore
      if (await hasObjects(db.client, `resource=${group}/`)) undefinedBefore.add(group);
    }
    return new PartitionRefs(db, mode, before, backupPartitions, groups, undefinedBefore, backup.metadataAsStored === true);
  }

  /** Merge: whether overwriting a record of `group` reads it first (the target defines partitions for it: overwrite()). */
  overwriteReads(group: string): boolean {
    const resource = this.before.get(group);
    return this.mode === 'merge' && resource !== undefined && Object.keys(partitionDefs(resource)).length > 0;
  }

  /** Releases the detached Resource objects (their schemas hold validator cache entries). */
  close(): void {
    for (const r of [...this.before.values(), ...this.after.values()]) r.dispose?.();
  }

  /**
   * Merge: overwrites the target's version of the record data object `record` through `write`
   * (returns what `write` does). BEFORE the write, the references the target's version gives
   * (read with the target's definition) that the backup's version will not have are deleted: a
   * crash after the write then leaves no stale reference, since run again, the restore reads the
   * record as it then stands (old or already the backup's) and deletes what that version has and
   * the backup's lacks. A reference both versions have stays: the record stays listed there.
   * The backup's version is decoded from the archive with s3db.js's own decoder. Nothing is
   * written from that decoding: a decoding that went wrong (s3db.js changed, or a version the
   * target's definition reads otherwise) can only delete a reference the references sweep writes
   * back, or, if it coincides with the target's old value, keep one. When it cannot decode at all,
   * every reference of the target's version is deleted (the record rejoins its partitions at the
   * sweep, as with no decoding at all).
   */
  async overwrite(group: string, record: ArchiveRecord, write: () => Promise<boolean>): Promise<boolean> {
    const resource = this.before.get(group);
    const id = recordIdOf(group, record.header.key);
    const names = resource ? Object.keys(partitionDefs(resource)) : [];
    if (this.mode !== 'merge' || !resource || id === null || names.length === 0) return write();
    const old = await this.read(resource, group, id);
    const oldKeys = old === null ? [] : partitionKeys(resource, names, id, old);
    const incoming = oldKeys.length === 0 ? null : await decodeStored(resource, id, record, this.asStored);
    const alike = names.filter((p) => sameJson(partitionDefs(resource)[p], this.backupPartitions.get(group)?.[p]));
    const newKeys = incoming === null ? [] : partitionKeys(resource, alike, id, incoming);
    const stale = oldKeys.filter((k) => !newKeys.includes(k));
    if (stale.length > 0) {
      await deleteKeys(this.db.client, stale, `the partition references of ${group} record ${id} (before overwriting it)`);
      this.deleted += stale.length;
    }
    return write();
  }

  /** Skip, backup reference `key` that the target lacks: whether to write it. */
  async shouldWriteRef(key: string): Promise<boolean> {
    const ref = parseRef(key);
    const resource = ref && this.before.get(ref.group);
    if (this.mode !== 'skip' || !ref || !resource) return true; // a resource the target lacked (all its records are the backup's) or cannot read (checked afterwards)
    const current = partitionDefs(resource)[ref.partition];
    if (current === undefined || !sameJson(current, this.backupPartitions.get(ref.group)?.[ref.partition])) {
      let set = this.unchecked.get(ref.group);
      if (!set) this.unchecked.set(ref.group, (set = new Set()));
      set.add(ref.partition);
      return true;
    }
    const data = await this.read(resource, ref.group, ref.id);
    return data !== null && resource.getPartitionKey({ partitionName: ref.partition, id: ref.id, data }) === key;
  }

  /** Deletes the stale references queued by the checks. */
  async flush(): Promise<void> {
    while (this.pendingDeletes.length > 0) {
      const batch = this.pendingDeletes.splice(0, DELETE_BATCH);
      await deleteKeys(this.db.client, batch, `${batch.length} stale partition references (partition listings may be wrong until the restore is run again)`);
      this.deleted += batch.length;
    }
  }

  /**
   * After the restore's writes, definition merge and reload: checks every reference of the
   * partitions that drifted or that skip left unchecked; returns the groups whose backup records
   * need references in drifted partitions (then call createRefs per record).
   */
  async checkAfter(pageSize: number, concurrency: number): Promise<Map<string, string[]>> {
    this.after = await storedResources(this.db, this.groups);
    const drifted = new Map<string, string[]>();
    await BoundedWriter.running(concurrency, Number.POSITIVE_INFINITY, async (pool) => {
      for (const group of this.groups) {
        const resource = this.after.get(group);
        if (!resource) continue;
        const final = partitionDefs(resource);
        const backup = this.backupPartitions.get(group) ?? {};
        const changed = Object.keys(final).filter((p) => !sameJson(final[p], backup[p]));
        if (changed.length > 0) drifted.set(group, changed);
        const unchecked = this.undefinedBefore.has(group) ? Object.keys(final) : [...(this.unchecked.get(group) ?? [])].filter((p) => p in final);
        const toCheck = new Set([...changed, ...unchecked]);
        for (const partition of toCheck) {
          for await (const entry of listObjects(this.db.client, { prefix: `resource=${group}/partition=${partition}/`, pageSize })) {
            await pool.run(() => this.check(resource, entry.key));
          }
        }
      }
    });
    await this.flush();
    return drifted;
  }

  /** Writes record `id`'s references in `partitions` of `group` (final definition). */
  async createRefs(group: string, id: string, partitions: string[]): Promise<void> {
    const resource = this.after.get(group);
    const data = resource && (await this.read(resource, group, id));
    if (!resource || !data) return;
    for (const partitionName of partitions) {
      const key = resource.getPartitionKey({ partitionName, id, data });
      if (key === null) continue;
      try {
        await this.db.client.putObject({ key, metadata: { _v: String(resource.version ?? 'v1') }, body: Buffer.alloc(0) });
      } catch (err) {
        throw refreshError(`could not write partition reference ${key}`, err);
      }
      this.created++;
    }
  }

  /** Deletes reference `key` unless it is the key its record's current values give. */
  private async check(resource: PartitionedResource, key: string): Promise<void> {
    const ref = parseRef(key);
    if (!ref) return;
    const data = await this.read(resource, ref.group, ref.id);
    if (data === null || resource.getPartitionKey({ partitionName: ref.partition, id: ref.id, data }) === key) return;
    this.pendingDeletes.push(key);
    if (this.pendingDeletes.length >= DELETE_BATCH) await this.flush();
  }

  /**
   * Reads record `id` of `group`. Concurrent reads of one record (its references in several
   * partitions, checked in parallel) share one request: s3db.js's S3 client coalesces identical
   * GETs in flight into one response, whose body can be read only once, so two resource.get() of
   * one record at once fail with "The stream has already been transformed".
   */
  private read(resource: PartitionedResource, group: string, id: string): Promise<RecordData | null> {
    const key = `${group}/${id}`;
    let pending = this.reading.get(key);
    if (!pending) {
      pending = this.readOnce(resource, group, id).finally(() => this.reading.delete(key));
      this.reading.set(key, pending);
    }
    return pending;
  }

  private async readOnce(resource: PartitionedResource, group: string, id: string): Promise<RecordData | null> {
    try {
      return await resource.get(id);
    } catch (err) {
      if (isNotFound(err)) return null;
      // A record read but not decoded (a RangeError "Invalid time value", a TypeError) is no
      // passing failure: the target's stored definition does not read its own record (s3db.js 21
      // maps a redefined resource's attributes one way live and another from s3db.json), so the
      // same restore would fail again. Only a replace needs no reading of the target's records.
      if (err instanceof RangeError || err instanceof TypeError || err instanceof SyntaxError) {
        throw new BackupError(
          'ERR_TARGET_WRITE',
          `s3db.js cannot decode ${group} record ${id} in the target with the definition its s3db.json holds (${errorMessage(err)}): s3db.js itself cannot read it, and a ${this.mode} restore must read it to keep partition references right. Running the same restore again fails the same way. Fix ${group}'s definition in the target (define it as its records were written), or leave ${group} out of the restore (resources: [...], the command line's --resources); a replace (mode 'replace') reads none of the target's records, but deletes what the backup lacks, records written since it was taken included`,
          { cause: err },
        );
      }
      throw refreshError(`could not read ${group} record ${id} to check its partition references`, err);
    }
  }
}

/** The keys record `id` with values `data` has in `partitions` of `resource` (a partition whose fields it lacks gives none). */
function partitionKeys(resource: PartitionedResource, partitions: string[], id: string, data: RecordData): string[] {
  return partitions.map((partitionName) => resource.getPartitionKey({ partitionName, id, data })).filter((k): k is string => k !== null);
}

/**
 * The record the backup's stored object `record` holds, decoded as resource.get() would decode it
 * once written (s3db.js's own decoder, fed the object from memory: no request), or null when it
 * cannot be: the caller then assumes nothing of its partition values.
 */
async function decodeStored(resource: PartitionedResource, id: string, record: ArchiveRecord, asStored: boolean): Promise<RecordData | null> {
  if (typeof resource.hydrateClientObject !== 'function') return null;
  const { header, body } = record;
  // the decoder takes metadata as s3db.js's client gives it: decoded (u:, b:, d: values), as
  // objectWriter decodes it for a client's write (review-f0 F1: 'u:Espa%C3%B1a' is not 'España')
  const metadata = Object.fromEntries(Object.entries(header.metadata ?? {}).map(([k, v]) => [k, asStored ? (metadataDecode(v) as string | null | undefined) : v]));
  const stored: StoredObject = { Metadata: metadata, ContentLength: body.length, ContentType: header.contentType, Body: { transformToByteArray: () => Promise.resolve(body) } };
  try {
    return await resource.hydrateClientObject(id, stored);
  } catch {
    return null; // (a version the target's definition does not decode: handled as undecoded, see overwrite())
  }
}

/** The record id of a data key of `group` (`resource=<group>/data/id=<id>`), else null. */
export function recordIdOf(group: string, key: string): string | null {
  const prefix = `resource=${group}/data/id=`;
  return key.startsWith(prefix) ? key.slice(prefix.length) : null;
}

/** The id of the record partition reference `key` points at (null: not a reference). */
export function refRecordId(key: string): string | null {
  return parseRef(key)?.id ?? null;
}

/** Whether `key` is a partition reference (written after its group's data objects). */
export function isPartitionRef(key: string): boolean {
  return REF.test(key);
}

/** Detached Resource objects for `groups` from the target's s3db.json as stored (groups it does not define are left out). */
async function storedResources(db: DatabaseLike, groups: string[]): Promise<Map<string, PartitionedResource>> {
  let defs: Record<string, ResourceDefinition> = {};
  try {
    defs = (await readStoredMetadata<{ resources?: Record<string, ResourceDefinition> }>(db))?.resources ?? {};
  } catch (err) {
    if (!(err instanceof BackupError && err.code === 'ERR_TARGET_METADATA')) throw err; // unreadable: it defines nothing (a whole-database restore writes it)
  }
  const out = new Map<string, PartitionedResource>();
  for (const group of groups) {
    const def = defs[group];
    const resource = def && ((await buildResource(db, group, def, false)) as PartitionedResource | null);
    if (resource) out.set(group, resource);
  }
  return out;
}

function partitionDefs(resource: PartitionedResource): PartitionDefs {
  return resource.config?.partitions ?? {};
}

function parseRef(key: string): { group: string; partition: string; id: string } | null {
  const m = REF.exec(key);
  return m ? { group: m[1]!, partition: m[2]!, id: m[3]! } : null;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function refreshError(what: string, err: unknown): BackupError {
  return new BackupError('ERR_TARGET_WRITE', `${what}: ${conciseCause(errorMessage(err))}; partition listings may be wrong until the same restore is run again (restores are idempotent)`, { cause: err });
}
