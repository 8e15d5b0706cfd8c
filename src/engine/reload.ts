/**
 * After a restore, make a live s3db Database see the restored resources without a reconnect.
 *
 * s3db.js builds its Resource objects from s3db.json once, in connect(); calling connect() again
 * would re-install every plugin. This mirrors the resource-building part of s3db.js 21's
 * DatabaseConnection.connect(): read s3db.json, set savedMetadata, and rebuild each Resource whose
 * definition changed from its current version's definition (hooks and plugin wrappers on the old
 * instance are not carried over; unchanged resources keep their instance).
 *
 * clearResourceCaches() empties s3db.js's CachePlugin caches of restored resources (the restore
 * writes behind them).
 *
 * Invariant: only touches objects that look like an s3db Database (they have `_resourcesMap`);
 * anything else is left alone.
 */
import { BackupError, errorMessage } from '../errors.js';
import { bodyToBuffer, isNotFound, type DatabaseLike } from './s3db.js';

interface VersionDefinition {
  attributes?: unknown;
  behavior?: string;
  timestamps?: boolean;
  partitions?: unknown;
  paranoid?: boolean;
  allNestedObjectsOptional?: boolean;
  autoDecrypt?: boolean;
  asyncEvents?: boolean;
  map?: unknown;
  idGenerator?: unknown;
  idSize?: number;
}

export interface ResourceDefinition {
  currentVersion?: string;
  versions?: Record<string, VersionDefinition>;
  partitions?: unknown;
  schemaRegistry?: unknown;
  pluginSchemaRegistry?: unknown;
}

type ResourceCtor = new (config: Record<string, unknown>) => { dispose?: () => void };

/**
 * Returns the names of resources whose live Resource object was replaced because the restore
 * changed their definition (hooks, listeners and plugin wrappers on those are gone). A resource
 * whose definition is unchanged keeps its object, and with it everything registered on it.
 */
export async function reloadResources(db: DatabaseLike): Promise<string[]> {
  const map = db._resourcesMap;
  if (!map) return [];
  const before = (db.savedMetadata as { resources?: Record<string, unknown> } | undefined)?.resources ?? {};
  let metadata: { resources?: Record<string, ResourceDefinition> };
  try {
    const res = await db.client.getObject('s3db.json');
    metadata = JSON.parse((await bodyToBuffer(res.Body)).toString('utf8')) as typeof metadata;
  } catch (err) {
    if (isNotFound(err)) return [];
    throw new BackupError('ERR_RELOAD', `restored data is in place, but s3db.json could not be reloaded (${errorMessage(err)}); reconnect the database`, { cause: err });
  }
  db.savedMetadata = metadata;
  const definitions = metadata.resources ?? {};
  for (const name of Object.keys(map)) {
    if (!(name in definitions)) {
      (map[name] as { dispose?: () => void }).dispose?.();
      delete map[name];
    }
  }
  const replaced: string[] = [];
  for (const [name, def] of Object.entries(definitions)) {
    if (map[name] && before[name] !== undefined && comparable(before[name]) === comparable(def)) continue;
    const previous = map[name] as { dispose?: () => void } | undefined;
    const built = await buildResource(db, name, def, true);
    if (!built) continue;
    map[name] = built;
    if (previous) replaced.push(name);
    previous?.dispose?.();
  }
  return replaced;
}

/**
 * A Resource object for `name` built from its s3db.json definition as s3db.js 21's connect()
 * builds it, on the database's client and security. `live`: registered to observe the database
 * (what reloadResources installs); otherwise detached, for reading records as stored (no events,
 * no plugin wrappers, no cache). Null when the definition has no current version.
 */
export async function buildResource(db: DatabaseLike, name: string, def: ResourceDefinition, live: boolean): Promise<object | null> {
  const version = def.currentVersion ?? 'v1';
  const v = def.versions?.[version];
  if (!v) return null;
  const { Resource } = (await import('s3db.js/lite')) as unknown as { Resource: ResourceCtor };
  const options = db as DatabaseLike & Record<string, unknown>;
  let idGenerator: unknown;
  let idSize = v.idSize ?? 22;
  if (typeof v.idGenerator === 'number') {
    idGenerator = v.idGenerator;
    idSize = v.idSize ?? v.idGenerator;
  }
  const partitions = partitionsOf(def);
  const resource = new Resource({
    name,
    client: db.client,
    database: db,
    version,
    attributes: v.attributes,
    behavior: v.behavior ?? 'user-managed',
    security: options.security,
    observers: live ? [db] : [],
    cache: live ? options.cache : false,
    timestamps: v.timestamps ?? false,
    partitions,
    paranoid: v.paranoid ?? true,
    allNestedObjectsOptional: v.allNestedObjectsOptional ?? true,
    autoDecrypt: v.autoDecrypt ?? true,
    asyncEvents: v.asyncEvents ?? true,
    hooks: {},
    versioningEnabled: options.versioningEnabled,
    strictValidation: options.strictValidation,
    map: v.map,
    idGenerator,
    idSize,
    schemaRegistry: def.schemaRegistry,
    pluginSchemaRegistry: def.pluginSchemaRegistry,
  });
  if (live) (db.client as { ensureResourceIndexes?: (name: string, partitions: unknown) => void }).ensureResourceIndexes?.(name, partitions);
  return resource;
}

/** A definition's partitions as s3db.js builds its Resource from them (the definition's own, else its current version's). */
export function partitionsOf(def: ResourceDefinition | undefined): Record<string, unknown> {
  const own = def?.partitions as Record<string, unknown> | undefined;
  return own ?? (def?.versions?.[def.currentVersion ?? 'v1']?.partitions as Record<string, unknown> | undefined) ?? {};
}

/** A definition as JSON without the hook summaries s3db.js writes into s3db.json (they describe the live instance, not the schema). */
function comparable(def: unknown): string {
  return JSON.stringify(def, (key, value: unknown) => (key === 'hooks' ? undefined : value));
}

type Cached = {
  cache?: { clearAll?: () => Promise<void> };
  cacheInstances?: Record<string, { clear?: (prefix: string) => Promise<void> } | null>;
};

/**
 * Empties what s3db.js's CachePlugin holds for `resources` (the restore wrote their objects
 * through the client, behind the cache): a kept Resource object would otherwise keep serving the
 * data the restore replaced. Returns the resources whose cache could not be cleared.
 */
export async function clearResourceCaches(db: DatabaseLike, resources: string[]): Promise<string[]> {
  const failed: string[] = [];
  for (const name of resources) {
    const resource = (db.resources as Record<string, Cached> | undefined)?.[name];
    if (!resource) continue;
    try {
      await resource.cache?.clearAll?.();
      for (const driver of Object.values(resource.cacheInstances ?? {})) await driver?.clear?.(`resource=${name}`);
    } catch {
      failed.push(name);
    }
  }
  return failed;
}
