/**
 * Logical records: how a resource selected with `filter`, `fields` or `limit` is backed up and
 * restored. Such a backup is deliberately partial, so it cannot be an object-level copy:
 *
 * Backup: for each record object (`resource=<r>/data/id=<id>`, in key order) the record is read
 *   through s3db's resource API (`resource.get(id)`: decoded values, secrets decrypted), kept if
 *   `filter` matches (an object: every listed field equals the given value; a function: returns
 *   true), reduced to `id` + `fields` when `fields` is given, and stored as an archive record whose
 *   body is the record's JSON and whose header says `logical: true`. At most `limit` records are
 *   kept (the first ones in key order). Partition references and other objects of the resource are
 *   not stored: s3db rebuilds partition references when the records are written back.
 * Restore: each record is written through the resource API: `update(id, values)` when the record
 *   exists in the target (skipped in mode 'skip'), `insert(values)` when it does not. Records not
 *   in the backup are never deleted, whatever the mode: the backup chose to leave them out. Insert
 *   sets fresh createdAt/updatedAt and needs every required attribute (choose `fields` accordingly);
 *   a record s3db refuses is reported with its id and the reason.
 */
import { BackupError, errorMessage } from '../errors.js';
import type { ResourceSelection } from '../options.js';
import type { ArchiveRecord } from './archive.js';
import type { DatabaseLike, SourceEntry } from './s3db.js';

interface ResourceApi {
  get(id: string): Promise<Record<string, unknown>>;
  exists(id: string): Promise<boolean>;
  insert(values: Record<string, unknown>): Promise<unknown>;
  update(id: string, values: Record<string, unknown>): Promise<unknown>;
}

const RECORD_KEY = /^resource=([^/]+)\/data\/id=(.+)$/;

/** The record id of a record object's key, or null for other objects. */
export function recordIdOf(key: string): string | null {
  const m = RECORD_KEY.exec(key);
  return m ? m[2]! : null;
}

function resourceApi(db: DatabaseLike, name: string): ResourceApi {
  const r = db.resources[name] as Partial<ResourceApi> | undefined;
  if (!r || typeof r.get !== 'function' || typeof r.insert !== 'function') {
    throw new BackupError('ERR_RESOURCE_UNAVAILABLE', `resource '${name}' is not loaded in the database; selective (filter/fields/limit) backups and restores go through the resource API`);
  }
  return r as ResourceApi;
}

export function matches(record: Record<string, unknown>, filter: ResourceSelection['filter']): boolean {
  if (filter === undefined) return true;
  if (typeof filter === 'function') return filter(record) === true;
  return Object.entries(filter).every(([field, expected]) => JSON.stringify(record[field]) === JSON.stringify(expected));
}

export function project(record: Record<string, unknown>, fields: string[] | undefined): Record<string, unknown> {
  if (!fields) return record;
  const out: Record<string, unknown> = { id: record.id };
  for (const f of fields) if (f in record) out[f] = record[f];
  return out;
}

/** Reads, filters and projects the records of selected resources during a backup. */
export class LogicalReader {
  private readonly admitted = new Map<string, number>();

  constructor(
    private readonly db: DatabaseLike,
    private readonly selections: Record<string, ResourceSelection>,
  ) {}

  async fetch<A extends { entry: SourceEntry; group: string }>(action: A): Promise<(A & { record: ArchiveRecord }) | undefined> {
    const selection = this.selections[action.group]!;
    if (selection.limit !== undefined && (this.admitted.get(action.group) ?? 0) >= selection.limit) return undefined;
    const id = recordIdOf(action.entry.key)!;
    let record: Record<string, unknown>;
    try {
      record = await resourceApi(this.db, action.group).get(id);
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey' || /not found/i.test(errorMessage(err))) return undefined;
      throw new BackupError('ERR_SOURCE_READ', `could not read record ${id} of '${action.group}': ${errorMessage(err)}`, { cause: err });
    }
    if (!matches(record, selection.filter)) return undefined;
    const body = Buffer.from(JSON.stringify(project(record, selection.fields)), 'utf8');
    return { ...action, record: { header: { key: action.entry.key, size: body.length, contentType: 'application/json', logical: true, etag: action.entry.etag }, body } };
  }

  /** Counts a record into its resource's limit; false once the limit is reached (the record is dropped). */
  admit(group: string): boolean {
    const limit = this.selections[group]?.limit;
    const n = this.admitted.get(group) ?? 0;
    if (limit !== undefined && n >= limit) return false;
    this.admitted.set(group, n + 1);
    return true;
  }
}

/** Writes one logical record back through the resource API. Returns false when skipped. */
export async function restoreLogical(db: DatabaseLike, group: string, record: ArchiveRecord, mode: 'replace' | 'merge' | 'skip'): Promise<boolean> {
  const api = resourceApi(db, group);
  const values = JSON.parse(record.body.toString('utf8')) as Record<string, unknown>;
  const id = String(values.id);
  try {
    if (await api.exists(id)) {
      if (mode === 'skip') return false;
      const { id: _id, ...rest } = values;
      await api.update(id, rest);
    } else {
      await api.insert(values);
    }
    return true;
  } catch (err) {
    throw new BackupError('ERR_TARGET_WRITE', `could not restore record ${id} of '${group}' through the resource API: ${errorMessage(err)}`, { cause: err });
  }
}
