/**
 * Resource definitions in the target's s3db.json when a restore does not put the backup's
 * s3db.json back whole (subset restores, and whole-database merge/skip into a database that has
 * resources). The target's other resources always stay.
 *
 * How s3db.js 21 reads a record: its values sit under short keys, numbers given to attributes by
 * the resource's schema registry (`mapping`; retired numbers are `burned`), and every record is
 * decoded with the resource's CURRENT definition, whatever version wrote it. s3db.js does not
 * always persist the registry when a version adds attributes (it numbers them again, in order, on
 * connect), so registries are compared as s3db.js builds them (its own Schema class), not as stored.
 *
 * Per restored resource:
 * - the target lacks it, or mode 'replace': the backup's definition (every record of the resource
 *   is then the backup's);
 * - mode 'merge' or 'skip' (records of both sides stay): the definition with the newer
 *   `currentVersion` (vN, highest N; the target's on a tie), plus the other side's versions it
 *   lacks, and a registry that keeps every short key the other side used reserved (burned), so an
 *   attribute added later never takes one of them. Limit (s3db.js 21): a plugin's registry is
 *   kept only while the definition has attributes of that plugin; s3db.js drops it on connect
 *   otherwise, so a plugin key is reserved only if the kept definition has that plugin. A plugin
 *   key is a hash of plugin and attribute name: the same attribute added again gets the same key
 *   and reads the restored values; only another attribute that hashes alike would misread them.
 * Invariant (merge, skip; checked by `checkDefinitions` before anything is written, dry run too):
 * no short key holds different attributes on the two sides, and no attribute has different base
 * types (`number` vs `string`); else the restore is refused (ERR_SCHEMA_CONFLICT): records of one
 * side would read wrong. Attributes of the other side that the kept definition does not declare,
 * or gives another short key (removed and added again), show under their short key, as s3db.js
 * shows removed attributes; a warning names them, and the target's partitions a kept backup
 * definition lacks.
 */
import { BackupError } from '../errors.js';
import type { Manifest } from './manifest.js';
import { partitionsOf } from './reload.js';
import { readStoredMetadata, readStoredMetadataVersion, writeStoredMetadata, type DatabaseLike } from './s3db.js';

type RestoreMode = 'replace' | 'merge' | 'skip';

interface Registry {
  nextIndex?: number;
  mapping?: Record<string, number>;
  burned?: { index: number; attribute?: string; burnedAt?: string; reason?: string }[];
}
interface PluginRegistry {
  mapping?: Record<string, string>;
  burned?: { key: string; attribute?: string; burnedAt?: string; reason?: string }[];
}
interface VersionDefinition {
  attributes?: Record<string, unknown>;
  timestamps?: boolean;
  allNestedObjectsOptional?: boolean;
  autoDecrypt?: boolean;
  map?: Record<string, string>;
}
type Definition = {
  currentVersion?: string;
  versions?: Record<string, VersionDefinition>;
  schemaRegistry?: Registry;
  pluginSchemaRegistry?: Record<string, PluginRegistry>;
} & Record<string, unknown>;
type S3dbJson = { resources?: Record<string, Definition> } & Record<string, unknown>;

/** What s3db.js's Schema class exposes about its short keys (s3db.js 21). */
interface SchemaLike {
  /** `hooks.beforeMap[attribute]`: how s3db.js encodes the attribute's values before storing them. */
  options: { hooks?: { beforeMap?: Record<string, unknown> } };
  getSchemaRegistry(): Registry | undefined;
  getPluginSchemaRegistry(): Record<string, PluginRegistry> | undefined;
  generateInitialRegistry(): { schemaRegistry: Registry; pluginSchemaRegistry: Record<string, PluginRegistry> };
  dispose?(): void;
}
type SchemaCtor = new (args: Record<string, unknown>) => SchemaLike;

/** A definition's registries as s3db.js builds them when it connects. */
interface Registries {
  user: Registry;
  plugins: Record<string, PluginRegistry>;
  /** Attribute -> how its values are encoded (s3db.js's beforeMap actions, as JSON). */
  encodings: Record<string, string>;
}

/**
 * Refuses a merge/skip restore whose short keys or encodings clash (ERR_SCHEMA_CONFLICT, naming
 * each clash); returns warnings for the other side's attributes that the kept definition does not
 * declare or keys differently, and the target's partitions a kept backup definition lacks.
 * Writes nothing.
 */
export async function checkDefinitions(db: DatabaseLike, manifest: Manifest, resources: string[], mode: RestoreMode): Promise<string[]> {
  const current = (await readStoredMetadata<S3dbJson>(db))?.resources ?? {}; // read first: a damaged s3db.json is refused before anything is written, in every mode
  if (mode === 'replace') return [];
  const backup = (manifest.s3dbJson as S3dbJson | null)?.resources ?? {};
  const conflicts: string[] = [];
  const warnings: string[] = [];
  for (const name of resources) {
    const fromBackup = backup[name];
    const existing = current[name];
    if (fromBackup === undefined || existing === undefined || sameJson(existing, fromBackup)) continue;
    const [mine, theirs] = [await registriesOf(name, existing), await registriesOf(name, fromBackup)];
    conflicts.push(...[...slotConflicts(theirs, mine), ...encodingConflicts(fromBackup, theirs, existing, mine)].map((c) => `${name}: ${c}`));
    const keptIsTarget = newer(existing, fromBackup) === existing;
    const [kept, other] = keptIsTarget ? [mine, theirs] : [theirs, mine];
    const [otherSide, keptSide] = keptIsTarget ? ["the backup's", "the target's"] : ["the target's", "the backup's newer"];
    const [keptKeys, otherKeys] = [shortKeys(kept), shortKeys(other)];
    const undeclared = [...otherKeys.keys()].filter((a) => !keptKeys.has(a));
    const moved = [...otherKeys].filter(([a, key]) => keptKeys.has(a) && keptKeys.get(a) !== key).map(([a]) => a);
    if (undeclared.length > 0 || moved.length > 0) {
      const what = [undeclared.length > 0 ? `attributes that ${keptSide} definition does not declare (${undeclared.sort().join(', ')})` : '', moved.length > 0 ? `attributes under other short keys than ${keptSide} definition gives them (${moved.sort().join(', ')}: removed and added again)` : ''];
      warnings.push(`${otherSide} records of ${name} carry ${what.filter(Boolean).join(' and ')}: read through the kept definition those values show under their short key (as s3db.js shows attributes removed by a schema change); nothing is lost in storage`);
    }
    const dropped = keptIsTarget ? [] : Object.keys(partitionsOf(existing)).filter((p) => !(p in partitionsOf(fromBackup)));
    if (dropped.length > 0) warnings.push(`the target's partitions ${dropped.sort().join(', ')} of ${name} are not in the backup's newer definition, which the restore keeps: they can no longer be listed until the application defines them again`);
  }
  if (conflicts.length > 0) {
    throw new BackupError(
      'ERR_SCHEMA_CONFLICT',
      `the backup's and the target's schemas of the same resource diverged, so after a '${mode}' restore records of one side would read under the other side's attribute names or encodings: ${conflicts.join('; ')}. Nothing was written. Restore these resources with mode 'replace' (the backup's records and definition), or into an empty database`,
      { details: { conflicts } },
    );
  }
  return warnings;
}

/** Times mergeDefinitions reads, merges and writes s3db.json again when another writer changed it meanwhile. */
const MERGE_ATTEMPTS = 5;

function changedMeanwhile(): BackupError {
  return new BackupError('ERR_TARGET_METADATA', `the target database's s3db.json changed ${MERGE_ATTEMPTS} times while the restore wrote its definitions into it; records were written, definitions were not: run the same restore again when the application is not defining resources`);
}

/**
 * Writes the definitions of `resources` into the target's s3db.json by mode; returns whether it
 * changed. The write is conditional on the version read: a resource the application defined
 * meanwhile is read and kept, never overwritten (ERR_TARGET_METADATA after MERGE_ATTEMPTS tries).
 */
export async function mergeDefinitions(db: DatabaseLike, manifest: Manifest, resources: string[], mode: RestoreMode): Promise<boolean> {
  const backupJson = manifest.s3dbJson as S3dbJson | null;
  if (!backupJson?.resources) return false;
  for (let attempt = 0; attempt < MERGE_ATTEMPTS; attempt++) {
    const stored = await readStoredMetadataVersion<S3dbJson>(db);
    const current: S3dbJson = stored.value ?? { ...backupJson, resources: {} };
    current.resources ??= {};
    let changed = false;
    for (const name of resources) {
      const fromBackup = backupJson.resources[name];
      if (fromBackup === undefined) continue;
      const existing = current.resources[name];
      const merged = existing === undefined || mode === 'replace' ? fromBackup : await mergedDefinition(name, existing, fromBackup);
      if (sameJson(merged, existing)) continue;
      current.resources[name] = merged;
      changed = true;
    }
    if (!changed) return false;
    if (await writeStoredMetadata(db, current, stored.etag, stored.value !== null, stored.text)) return true;
  }
  throw changedMeanwhile();
}

/**
 * A whole-database merge or skip into a database that defined no resource when the restore began:
 * writes the backup's s3db.json (`body`) as it is, plus the resources the target defines by the
 * time it is written (the application may have defined some meanwhile), conditionally on the
 * version read as mergeDefinitions does.
 */
export async function writeBackupDefinitions(db: DatabaseLike, body: Buffer): Promise<void> {
  const backupJson = JSON.parse(body.toString('utf8')) as S3dbJson;
  for (let attempt = 0; attempt < MERGE_ATTEMPTS; attempt++) {
    const stored = await readStoredMetadataVersion<S3dbJson>(db).catch((err: unknown) => {
      // a corrupt s3db.json defines nothing to keep: the backup's replaces it (the runbook's repair)
      if (err instanceof BackupError && err.code === 'ERR_TARGET_METADATA') return null;
      throw err;
    });
    if (stored === null) {
      await writeStoredMetadata(db, backupJson, null, true);
      return;
    }
    const added = Object.entries(stored.value?.resources ?? {}).filter(([name]) => !(name in (backupJson.resources ?? {})));
    const value = added.length === 0 ? backupJson : { ...backupJson, resources: { ...backupJson.resources, ...Object.fromEntries(added) } };
    if (await writeStoredMetadata(db, value, stored.etag, stored.value !== null, stored.text)) return;
  }
  throw changedMeanwhile();
}

/**
 * The side whose definition merge and skip keep: the newer current version; the target's on a tie
 * (version numbers say nothing about lineage after a rollback: on a tie the running application's
 * definition stays).
 */
function newer(target: Definition, fromBackup: Definition): Definition {
  return versionNumber(target.currentVersion) >= versionNumber(fromBackup.currentVersion) ? target : fromBackup;
}


/** The newer definition, plus the other's versions it lacks, its registries keeping the other's short keys reserved. */
async function mergedDefinition(name: string, target: Definition, fromBackup: Definition): Promise<Definition> {
  if (sameJson(target, fromBackup)) return target;
  const winner = newer(target, fromBackup);
  const other = winner === target ? fromBackup : target;
  const [kept, reserved] = [await registriesOf(name, winner), await registriesOf(name, other)];
  return {
    ...winner,
    versions: { ...(other.versions ?? {}), ...(winner.versions ?? {}) },
    schemaRegistry: reserving(kept.user, reserved.user),
    pluginSchemaRegistry: reservingPlugins(kept.plugins, reserved.plugins),
  };
}

/** `kept` plus a burned entry for each short key `other` uses that `kept` does not; nextIndex above all of them. */
function reserving(kept: Registry, other: Registry): Registry {
  const burned = [...(kept.burned ?? [])];
  const taken = new Set([...Object.values(kept.mapping ?? {}), ...burned.map((b) => b.index)]);
  const now = new Date().toISOString();
  for (const [attribute, index] of [...Object.entries(other.mapping ?? {}), ...(other.burned ?? []).map((b) => [b.attribute ?? '', b.index] as const)]) {
    if (taken.has(index)) continue;
    taken.add(index);
    burned.push({ index, attribute, burnedAt: now, reason: 'restored records use it' });
  }
  const used = [...taken].filter(Number.isFinite);
  const nextIndex = Math.max(kept.nextIndex ?? 0, other.nextIndex ?? 0, used.length > 0 ? Math.max(...used) + 1 : 0);
  return { ...kept, nextIndex, mapping: { ...(kept.mapping ?? {}) }, burned };
}

function reservingPlugins(kept: Record<string, PluginRegistry>, other: Record<string, PluginRegistry>): Record<string, PluginRegistry> {
  const out: Record<string, PluginRegistry> = { ...kept };
  const now = new Date().toISOString();
  for (const [plugin, theirs] of Object.entries(other)) {
    const mine = out[plugin] ?? { mapping: {}, burned: [] };
    const burned = [...(mine.burned ?? [])];
    const taken = new Set([...Object.values(mine.mapping ?? {}), ...burned.map((b) => b.key)]);
    for (const [attribute, key] of [...Object.entries(theirs.mapping ?? {}), ...(theirs.burned ?? []).map((b) => [b.attribute ?? '', b.key] as const)]) {
      if (taken.has(key)) continue;
      taken.add(key);
      burned.push({ key, attribute, burnedAt: now, reason: 'restored records use it' });
    }
    out[plugin] = { ...mine, burned };
  }
  return out;
}

/** The registries s3db.js builds from `def` when it connects (its Schema class, from the current version). */
async function registriesOf(name: string, def: Definition): Promise<Registries> {
  const { Schema } = (await import('s3db.js/lite')) as unknown as { Schema: SchemaCtor };
  const version = def.versions?.[def.currentVersion ?? 'v1'] ?? {};
  const attributes = { ...(version.attributes ?? {}) };
  if (version.timestamps) {
    attributes.createdAt ??= 'datetime|optional';
    attributes.updatedAt ??= 'datetime|optional';
  }
  const schema = new Schema({
    name,
    attributes,
    version: Number((def.currentVersion ?? 'v1').replace(/^v/i, '')) || 1,
    options: { allNestedObjectsOptional: version.allNestedObjectsOptional ?? true, autoEncrypt: true, autoDecrypt: version.autoDecrypt ?? true },
    map: version.map,
    schemaRegistry: def.schemaRegistry,
    pluginSchemaRegistry: def.pluginSchemaRegistry,
  });
  const initial = () => schema.generateInitialRegistry();
  const user = schema.getSchemaRegistry() ?? initial().schemaRegistry;
  const beforeMap = schema.options.hooks?.beforeMap ?? {};
  const encodings = Object.fromEntries(Object.keys(user.mapping ?? {}).map((a) => [a, JSON.stringify(beforeMap[a] ?? [])]));
  const plugins = schema.getPluginSchemaRegistry() ?? initial().pluginSchemaRegistry;
  schema.dispose?.(); // releases its validator cache entry
  return { user, plugins, encodings };
}

/** Short keys that hold different attributes on the two sides, in words ([] when none). */
function slotConflicts(fromBackup: Registries, target: Registries): string[] {
  const out: string[] = [];
  const targetHolders = holders(target);
  for (const [slot, attr] of holders(fromBackup)) {
    const other = targetHolders.get(slot);
    if (other !== undefined && other !== attr) out.push(`short key ${slot.replace(/^#/, '')} is '${attr}' in the backup and '${other}' in the target`);
  }
  return out;
}

/** Attribute -> its short key, of the attributes a registry maps (a plugin's as `attr (plugin name)`). */
function shortKeys(r: Registries): Map<string, string> {
  const out = new Map<string, string>();
  for (const [attr, index] of Object.entries(r.user.mapping ?? {})) out.set(attr, `#${index}`);
  for (const [plugin, reg] of Object.entries(r.plugins)) for (const [attr, key] of Object.entries(reg.mapping ?? {})) out.set(`${attr} (plugin ${plugin})`, key);
  return out;
}

/** Short key -> attribute it holds or held (user keys as `#<number>`, plugin keys as they are, `plugin:attr`). */
function holders(r: Registries): Map<string, string> {
  const bySlot = new Map<string, string>();
  for (const b of r.user.burned ?? []) if (b.attribute !== undefined) bySlot.set(`#${b.index}`, b.attribute);
  for (const [attr, index] of Object.entries(r.user.mapping ?? {})) bySlot.set(`#${index}`, attr);
  for (const [plugin, reg] of Object.entries(r.plugins)) {
    for (const b of reg.burned ?? []) if (b.attribute !== undefined) bySlot.set(b.key, `${plugin}:${b.attribute}`);
    for (const [attr, key] of Object.entries(reg.mapping ?? {})) bySlot.set(key, `${plugin}:${attr}`);
  }
  return bySlot;
}

/**
 * Attributes declared on both sides whose values s3db.js encodes differently (`number` vs `string`,
 * `string` vs `secret`, integer vs decimal), or that hold a secret or password on one side only;
 * `string` vs `email` or `url` encode alike and pass.
 */
function encodingConflicts(fromBackup: Definition, theirs: Registries, target: Definition, mine: Registries): string[] {
  const [backupRules, targetRules] = [attributeRules(fromBackup), attributeRules(target)];
  const sensitive = (rule: string | undefined) => /^(secret|password)/.test(rule ?? '');
  return Object.keys(mine.encodings)
    .filter((a) => a in theirs.encodings && (theirs.encodings[a] !== mine.encodings[a] || sensitive(backupRules.get(a)) !== sensitive(targetRules.get(a))))
    .map((a) => `'${a}' is stored differently: '${backupRules.get(a) ?? '?'}' in the backup and '${targetRules.get(a) ?? '?'}' in the target`);
}

/** Attribute path -> its rule in a definition's current version (`number|optional`; an object rule's `type`), for messages. */
function attributeRules(def: Definition): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (attrs: Record<string, unknown>, prefix: string) => {
    for (const [name, rule] of Object.entries(attrs)) {
      if (name.startsWith('$$')) continue;
      const path = prefix + name;
      if (typeof rule === 'string') out.set(path, rule.trim());
      else if (rule && typeof rule === 'object' && typeof (rule as { type?: unknown }).type === 'string') out.set(path, (rule as { type: string }).type.trim());
      else if (rule && typeof rule === 'object') walk(rule as Record<string, unknown>, `${path}.`);
    }
  };
  walk(def.versions?.[def.currentVersion ?? 'v1']?.attributes ?? {}, '');
  return out;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function versionNumber(version: string | undefined): number {
  const m = /^v(\d+)$/.exec(version ?? 'v1');
  return m ? Number(m[1]) : 0;
}
