/**
 * Partition references after a merge or skip restore.
 *
 * s3db.js lists a partition by its reference objects, `resource=<r>/partition=<p>/<field>=<value>
 * .../id=<id>` (empty bodies; the record's values live in its data object). A restore copies the
 * backup's references with its records, which is exact for a replace (the target's other
 * references are deleted) but not when records of both sides stay:
 * - merge overwrites a record that changed partition since the backup: the target's reference
 *   under the newer value stays, so the record is listed in two partitions ("stale");
 * - a partition the target defines differently from the backup (added or changed after it) has
 *   no, or wrongly shaped, references for the backup's records ("drifted").
 *
 * So, after the restore's writes and definition merge (the live Resource has the final
 * definition): a reference is checked, i.e. its record read and the reference deleted unless it is
 * exactly the key the record's current values give, when it belongs to a drifted partition, or
 * (merge) when the backup's snapshot lacks it. Then every record of the backup gets its key in each
 * drifted partition. References are derived data (no values): deleting a stale one loses nothing,
 * and rewriting a correct one is idempotent. A reference whose record does not exist is left alone
 * (not the restore's to judge). Failures propagate (s3db's own reference writes only warn).
 */
import { BackupError, errorMessage } from '../errors.js';
import type { Manifest } from './manifest.js';
import { isNotFound, type DatabaseLike } from './s3db.js';

type RecordData = Record<string, unknown>;
interface PartitionedResource {
  version?: string;
  config?: { partitions?: Record<string, unknown> };
  get(id: string): Promise<RecordData>;
  getPartitionKey(o: { partitionName: string; id: string; data: RecordData }): string | null;
}

interface Covered {
  resource: PartitionedResource;
  /** Partitions whose live definition differs from the backup's (or that the backup lacks). */
  drifted: Set<string>;
}

const REF = /^resource=([^/]+)\/partition=([^/]+)\/.+\/id=(.+)$/s;
const DELETE_BATCH = 1000;

export class PartitionRefresher {
  private pendingDeletes: string[] = [];
  deleted = 0;
  created = 0;

  private constructor(
    private readonly db: DatabaseLike,
    private readonly mode: 'merge' | 'skip',
    private readonly covered: Map<string, Covered>,
  ) {}

  /** Null when no restored resource of the live target has partitions (nothing to do). */
  static open(db: DatabaseLike, backup: Manifest, groups: string[], mode: 'merge' | 'skip'): PartitionRefresher | null {
    const backupDefs = (backup.s3dbJson as { resources?: Record<string, BackupDefinition> } | null)?.resources ?? {};
    const covered = new Map<string, Covered>();
    for (const group of groups) {
      const resource = (db.resources as Record<string, PartitionedResource | undefined>)[group];
      const live = resource?.config?.partitions ?? {};
      if (!resource || typeof resource.getPartitionKey !== 'function' || Object.keys(live).length === 0) continue;
      const before = partitionsOf(backupDefs[group]);
      const drifted = new Set(Object.keys(live).filter((p) => JSON.stringify(live[p]) !== JSON.stringify(before[p])));
      covered.set(group, { resource, drifted });
    }
    return covered.size > 0 ? new PartitionRefresher(db, mode, covered) : null;
  }

  /** Whether `key` (in the target) must be checked; `inSnapshot`: the backup's index has it. */
  needsCheck(key: string, inSnapshot: boolean): boolean {
    const ref = parseRef(key);
    const group = ref && this.covered.get(ref.group);
    if (!ref || !group || !(ref.partition in (group.resource.config?.partitions ?? {}))) return false;
    return group.drifted.has(ref.partition) || (this.mode === 'merge' && !inSnapshot);
  }

  /** Deletes `key` unless it is the reference its record's current values give. */
  async check(key: string): Promise<void> {
    const ref = parseRef(key)!;
    const { resource } = this.covered.get(ref.group)!;
    const data = await this.read(resource, ref.group, ref.id);
    if (data === null || resource.getPartitionKey({ partitionName: ref.partition, id: ref.id, data }) === key) return;
    this.pendingDeletes.push(key);
    if (this.pendingDeletes.length >= DELETE_BATCH) await this.flush();
  }

  /** Groups with drifted partitions: their backup records need references created. */
  driftedGroups(): string[] {
    return [...this.covered].filter(([, c]) => c.drifted.size > 0).map(([g]) => g);
  }

  /** Writes record `id`'s references in the drifted partitions of `group`. */
  async createRefs(group: string, id: string): Promise<void> {
    const { resource, drifted } = this.covered.get(group)!;
    const data = await this.read(resource, group, id);
    if (data === null) return;
    for (const partitionName of drifted) {
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

  async flush(): Promise<void> {
    if (this.pendingDeletes.length === 0) return;
    const batch = this.pendingDeletes;
    this.pendingDeletes = [];
    try {
      await this.db.client.deleteObjects(batch);
    } catch (err) {
      throw refreshError(`could not delete ${batch.length} stale partition references`, err);
    }
    this.deleted += batch.length;
  }

  private async read(resource: PartitionedResource, group: string, id: string): Promise<RecordData | null> {
    try {
      return await resource.get(id);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw refreshError(`could not read ${group} record ${id} to check its partition references`, err);
    }
  }
}

/** The record id of a data key of `group` (`resource=<group>/data/id=<id>`), else null. */
export function recordIdOf(group: string, key: string): string | null {
  const prefix = `resource=${group}/data/id=`;
  return key.startsWith(prefix) ? key.slice(prefix.length) : null;
}

type BackupDefinition = { currentVersion?: string; partitions?: Record<string, unknown>; versions?: Record<string, { partitions?: Record<string, unknown> }> };

/** A definition's partitions as s3db.js builds the Resource from it (reload.ts does the same). */
function partitionsOf(def: BackupDefinition | undefined): Record<string, unknown> {
  return def?.partitions ?? def?.versions?.[def.currentVersion ?? 'v1']?.partitions ?? {};
}

function parseRef(key: string): { group: string; partition: string; id: string } | null {
  const m = REF.exec(key);
  return m ? { group: m[1]!, partition: m[2]!, id: m[3]! } : null;
}

function refreshError(what: string, err: unknown): BackupError {
  return new BackupError('ERR_TARGET_WRITE', `the restored records are in place, but ${what}: ${errorMessage(err)}; partition listings may be wrong until the same restore is run again (restores are idempotent)`, { cause: err });
}
