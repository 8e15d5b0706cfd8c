/**
 * Logical records: how a resource selected with `filter`, `fields` or `limit` is backed up and
 * restored. Such a backup is deliberately partial, so it cannot be an object-level copy:
 *
 * Backup: for each record object (`resource=<r>/data/id=<id>`, in key order) the record is read
 *   through s3db's resource API (`resource.get(id)`: decoded values, secrets decrypted; so an
 *   unencrypted backup refuses a resource whose kept attributes include a `secret`), kept if
 *   `filter` matches (an object: every listed field equals the given value; a function: returns
 *   true), reduced to `id` + `fields` when `fields` is given, and stored as an archive record whose
 *   body is the JSON of the record's own values (ownValues: not the fields get() adds) and whose
 *   header says `logical: true`. At most `limit` records are
 *   kept (the first ones in key order). Partition references and other objects of the resource are
 *   not stored: s3db rebuilds partition references when the records are written back.
 * Restore: each record is written through the resource API: when the record exists in the target
 *   (skipped in mode 'skip'), a whole record (no `fields`) replaces it (`replace(id, values)`, after
 *   deleting the partition references only the target's version gives, which replace leaves), so it
 *   is the backup's record and not a merge with the target's (review-30 F1: update() merges, and
 *   kept every attribute added since); a projection (`fields`) is merged into it (`update`: the
 *   attributes outside `fields` keep the target's values); `insert(values)` when it does not. Records not
 *   in the backup are never deleted, whatever the mode: the backup chose to leave them out. Insert
 *   sets fresh createdAt/updatedAt and needs every required attribute, so a backup whose `fields`
 *   leave out a required attribute the records have is refused (checked with s3db's own
 *   validator; at install for a loaded resource, else when its first record is read): it could
 *   not be restored into an empty database. A record
 *   s3db refuses at restore is reported with its id and the reason.
 */
import { BackupError, conciseCause, errorMessage, optionError } from '../errors.js';
import type { ResourceSelection } from '../options.js';
import type { ArchiveRecord } from './archive.js';
import { secretPaths } from './secrets.js';
import { deleteKeys, isNotFound, type DatabaseLike, type SourceEntry } from './s3db.js';

interface ResourceApi {
  /** s3db's validator (absent in other versions): a missing required attribute is `{ type: 'required', field }`. */
  validate?(data: Record<string, unknown>): Promise<{ isValid: boolean; errors?: { type?: string; field?: string }[] }>;
  get(id: string): Promise<Record<string, unknown>>;
  exists(id: string): Promise<boolean>;
  insert(values: Record<string, unknown>): Promise<unknown>;
  /** Merges `values` into the stored record (deeply for nested objects): what the record lacks stays. */
  update(id: string, values: Record<string, unknown>): Promise<unknown>;
  /** Writes the record as `values` alone; leaves the partition references of the values it replaced. */
  replace?(id: string, values: Record<string, unknown>): Promise<unknown>;
  config?: { partitions?: Record<string, unknown> };
  /** The declared attributes (top-level names). */
  attributes?: Record<string, unknown>;
  getPartitionKey?(o: { partitionName: string; id: string; data: Record<string, unknown> }): string | null;
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

/**
 * When the plugin is installed: refuses a selection of a loaded resource that its backups would
 * refuse (`fields` leaving out a required attribute, as LogicalReader.checkRestorable does; a
 * secret kept in an unencrypted backup, as LogicalReader.refuseSecrets does), so the mistake shows
 * when the application starts rather than at its first backup. Resources defined later are checked
 * by the backup.
 */
export async function checkSelections(db: DatabaseLike, selections: Record<string, ResourceSelection>, encrypted: boolean): Promise<void> {
  for (const [group, selection] of Object.entries(selections)) {
    const api = db.resources[group] as (Partial<ResourceApi> & { attributes?: Record<string, unknown> }) | undefined;
    if (!api) continue;
    if (!encrypted) {
      const refusal = secretsRefusal(group, api.attributes, selection.fields, 'Nothing was backed up');
      if (refusal) throw refusal;
    }
    if (!selection.fields || typeof api.validate !== 'function') continue;
    const dropped = requiredLeftOut(await api.validate({}), (field) => !selection.fields!.includes(field));
    if (dropped.length > 0) throw fieldsError(group, dropped, 'Nothing was backed up');
  }
}

/** The required attributes s3db's validator missed (`{ type: 'required', field }` errors) that `leftOut` says `fields` dropped. */
function requiredLeftOut(verdict: Awaited<ReturnType<NonNullable<ResourceApi['validate']>>>, leftOut: (field: string) => boolean): string[] {
  return [...new Set((verdict.errors ?? []).filter((e) => e.type === 'required' && e.field !== undefined && leftOut(e.field)).map((e) => e.field!))];
}

function fieldsError(group: string, dropped: string[], outcome: string): BackupError {
  const names = dropped.map((f) => `'${f}'`).join(', ');
  return optionError(
    `resources.${group}.fields`,
    `leaves out ${names}, which resource '${group}' requires`,
    `A restore into a database without these records inserts them through s3db's resource API, which refuses a record without ${names}: add ${dropped.length > 1 ? 'them' : 'it'} to fields (or make the attribute optional). ${outcome}`,
  );
}

/**
 * The refusal of an unencrypted backup that would keep secret attributes of `group` (all of them,
 * or those `fields` keeps), or null. s3db.js stores them encrypted with the database's passphrase,
 * but the resource API decrypts them, and a logical record is that API's view: in a backup without
 * encryption they would lie in cleartext at the destination.
 */
function secretsRefusal(group: string, attributes: Record<string, unknown> | undefined, fields: string[] | undefined, outcome: string): BackupError | null {
  const kept = secretPaths(attributes ?? {}, '').filter((p) => !fields || fields.includes(p.split('.')[0]!));
  if (kept.length === 0) return null;
  const names = kept.map((p) => `'${p}'`).join(', ');
  return optionError(
    `resources.${group}`,
    `would store ${names} of '${group}' decrypted: a backup with filter, fields or limit reads records through s3db's resource API, which decrypts secret attributes, and this backup is not encrypted`,
    `Set encryption (a passphrase), leave ${names} out of fields, or back '${group}' up whole (no filter, fields or limit: its objects are copied as stored, secrets still encrypted). ${outcome}`,
  );
}

/** Whether `record` is selected: a function's result is read as truthy, as Array.prototype.filter reads it. */
export function matches(record: Record<string, unknown>, filter: ResourceSelection['filter'], group: string): boolean {
  if (filter === undefined) return true;
  if (typeof filter === 'function') {
    const kept: unknown = filter(record);
    if (typeof (kept as { then?: unknown } | null)?.then === 'function') {
      throw optionError(`resources.${group}.filter`, 'returned a Promise: it must decide synchronously (true to keep the record)');
    }
    return Boolean(kept);
  }
  return Object.entries(filter).every(([field, expected]) => JSON.stringify(record[field]) === JSON.stringify(expected));
}

/**
 * The record's own values: s3db.js's get() adds what it knows of the stored object (`_etag`,
 * `_lastModified`, `_contentLength`, `_v`, `_definitionHash`, ...; `-etag` and the like where an S3
 * store renamed `_` metadata keys), which are not values. Written back, they landed in the record's
 * metadata: ~350 bytes more per record, an `enforce-limits` record near 2 KB refused, a
 * `truncate-data` one that hung s3db.js (review-30b G1). A declared attribute is kept whatever its name.
 */
export function ownValues(record: Record<string, unknown>, attributes: Record<string, unknown> | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => !(k.startsWith('_') || k.startsWith('-')) || (attributes !== undefined && Object.hasOwn(attributes, k))));
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
  private readonly checked = new Set<string>();
  private readonly screened = new Set<string>();

  constructor(
    private readonly db: DatabaseLike,
    private readonly selections: Record<string, ResourceSelection>,
    /** Whether the backup is encrypted: logical records hold secrets decrypted (see refuseSecrets). */
    private readonly encrypted: boolean,
  ) {}

  async fetch<A extends { entry: SourceEntry; group: string }>(action: A): Promise<(A & { record: ArchiveRecord }) | undefined> {
    const selection = this.selections[action.group]!;
    if (selection.limit !== undefined && (this.admitted.get(action.group) ?? 0) >= selection.limit) return undefined;
    const id = recordIdOf(action.entry.key)!;
    let record: Record<string, unknown>;
    try {
      record = await resourceApi(this.db, action.group).get(id);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw new BackupError('ERR_SOURCE_READ', `could not read record ${id} of '${action.group}': ${errorMessage(err)}`, { cause: err });
    }
    if (!matches(record, selection.filter, action.group)) return undefined;
    const projected = project(ownValues(record, resourceApi(this.db, action.group).attributes), selection.fields);
    if (!this.screened.has(action.group)) this.refuseSecrets(action.group);
    await this.checkRestorable(action.group, record, projected);
    const body = Buffer.from(JSON.stringify(projected), 'utf8');
    return { ...action, record: { header: { key: action.entry.key, size: body.length, contentType: 'application/json', logical: true, etag: action.entry.etag }, body } };
  }

  /** Once per resource, unencrypted backups only: refuses to store secret attributes in cleartext (secretsRefusal). */
  private refuseSecrets(group: string): void {
    this.screened.add(group);
    if (this.encrypted) return;
    const attributes = (this.db.resources[group] as { attributes?: Record<string, unknown> } | undefined)?.attributes;
    const refusal = secretsRefusal(group, attributes, this.selections[group]?.fields, 'The backup was not written');
    if (refusal) throw refusal;
  }

  /**
   * Once per resource with `fields`: the attributes that s3db requires and that `fields` dropped
   * from a record that had them. Such a backup could not be inserted back into an empty database,
   * so it is refused now rather than discovered at 3 AM.
   */
  private async checkRestorable(group: string, record: Record<string, unknown>, projected: Record<string, unknown>): Promise<void> {
    const fields = this.selections[group]?.fields;
    if (!fields || this.checked.has(group)) return;
    this.checked.add(group);
    const api = resourceApi(this.db, group);
    if (typeof api.validate !== 'function') return;
    const { id: _id, ...values } = projected;
    const dropped = requiredLeftOut(await api.validate(values), (field) => field in record && !(field in projected));
    if (dropped.length > 0) throw fieldsError(group, dropped, 'The backup was not written');
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

/**
 * Writes one logical record back through the resource API. Returns false when skipped. `whole`:
 * the backup holds whole records (no `fields`), so an existing record becomes exactly the backup's.
 */
export async function restoreLogical(db: DatabaseLike, group: string, record: ArchiveRecord, mode: 'replace' | 'merge' | 'skip', whole: boolean): Promise<boolean> {
  const api = resourceApi(db, group);
  // (backups taken before 0.2 hold s3db.js's internal fields too: left out here as well)
  const values = ownValues(JSON.parse(record.body.toString('utf8')) as Record<string, unknown>, api.attributes);
  const id = String(values.id);
  const { id: _id, ...rest } = values;
  const overwrite = () => (whole ? replaceRecord(db, api, group, id, values) : api.update(id, rest));
  try {
    if (await api.exists(id)) {
      if (mode === 'skip') return false;
      await overwrite();
    } else {
      try {
        await api.insert(values);
      } catch (err) {
        // inserted meanwhile (the application writes during the restore): skip keeps it, the others overwrite it
        if (!(await api.exists(id).catch(() => false))) throw err;
        if (mode === 'skip') return false;
        await overwrite();
      }
    }
    return true;
  } catch (err) {
    throw new BackupError('ERR_TARGET_WRITE', `could not restore record ${id} of '${group}' through the resource API: ${conciseCause(errorMessage(err))}`, { cause: err });
  }
}

/**
 * Makes record `id` exactly `values`: deletes the partition references the stored version has and
 * `values` has not (s3db.js's replace writes the new ones and leaves those), then replaces it.
 * Deleted before the write, as PartitionRefs.overwrite does: a crash between leaves the record out
 * of a listing until the same restore runs again, never listed under a value it no longer has.
 */
async function replaceRecord(db: DatabaseLike, api: ResourceApi, group: string, id: string, values: Record<string, unknown>): Promise<void> {
  const { id: _id, ...rest } = values;
  if (typeof api.replace !== 'function') {
    await api.update(id, rest); // (an s3db.js without replace: the best it can do)
    return;
  }
  const partitions = Object.keys(api.config?.partitions ?? {});
  if (partitions.length > 0 && typeof api.getPartitionKey === 'function') {
    const keysOf = (data: Record<string, unknown>) => partitions.map((partitionName) => api.getPartitionKey!({ partitionName, id, data })).filter((k): k is string => typeof k === 'string');
    const incoming = new Set(keysOf(values));
    // (deleted meanwhile by the application: it has no references left, and replace writes it again, as where there are no partitions)
    const current = await api.get(id).catch((err: unknown) => {
      if (isNotFound(err)) return null;
      throw err;
    });
    const stale = current === null ? [] : keysOf(current).filter((k) => !incoming.has(k));
    await deleteKeys(db.client, stale, `the partition references of ${group} record ${id} (before replacing it)`);
  }
  await api.replace(id, rest);
}
