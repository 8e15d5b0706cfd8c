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
 *   `currentVersion` (vN, highest N; the backup's on a tie), plus the other side's versions it
 *   lacks, and a registry that keeps every short key the other side used reserved (burned), so an
 *   attribute added later never takes one of them.
 * Invariant (merge, skip; checked by `checkDefinitions` before anything is written, dry run too):
 * the two registries agree: no short key means different attributes, no attribute has two short
 * keys. Else the restore is refused (ERR_SCHEMA_CONFLICT): records of one side would read under the
 * other side's names. Attributes of the older side that the newer definition no longer declares
 * read back under their short key (a warning names them), as s3db.js does for removed attributes.
 */
import { BackupError } from '../errors.js';
import type { Manifest } from './manifest.js';
import { bodyToBuffer, isNotFound, type DatabaseLike } from './s3db.js';

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
  getSchemaRegistry(): Registry | undefined;
  getPluginSchemaRegistry(): Record<string, PluginRegistry> | undefined;
  generateInitialRegistry(): { schemaRegistry: Registry; pluginSchemaRegistry: Record<string, PluginRegistry> };
}
type SchemaCtor = new (args: Record<string, unknown>) => SchemaLike;

/** A definition's registries as s3db.js builds them when it connects. */
interface Registries {
  user: Registry;
  plugins: Record<string, PluginRegistry>;
}

/**
 * Refuses a merge/skip restore whose registries disagree (ERR_SCHEMA_CONFLICT, naming each clash);
 * returns warnings for attributes that the kept definition does not declare. Writes nothing.
 */
export async function checkDefinitions(db: DatabaseLike, manifest: Manifest, resources: string[], mode: RestoreMode): Promise<string[]> {
  if (mode === 'replace') return [];
  const backup = (manifest.s3dbJson as S3dbJson | null)?.resources ?? {};
  const current = (await readTargetJson(db))?.resources ?? {};
  const conflicts: string[] = [];
  const warnings: string[] = [];
  for (const name of resources) {
    const fromBackup = backup[name];
    const existing = current[name];
    if (fromBackup === undefined || existing === undefined || sameJson(existing, fromBackup)) continue;
    const [mine, theirs] = [await registriesOf(name, existing), await registriesOf(name, fromBackup)];
    conflicts.push(...registryConflicts(mine, theirs).map((c) => `${name}: ${c}`));
    const keptIsTarget = newer(existing, fromBackup) === existing;
    const [kept, other] = keptIsTarget ? [mine, theirs] : [theirs, mine];
    const undeclared = Object.keys(other.user.mapping ?? {}).filter((a) => !(a in (kept.user.mapping ?? {})));
    if (undeclared.length > 0) {
      const [otherSide, keptSide] = keptIsTarget ? ["the backup's", "the target's newer"] : ["the target's", "the backup's newer"];
      warnings.push(`${otherSide} records of ${name} carry attributes that ${keptSide} definition does not declare (${undeclared.sort().join(', ')}): read through it they show under their short key (as s3db.js shows attributes removed by a schema change); nothing is lost in storage`);
    }
  }
  if (conflicts.length > 0) {
    throw new BackupError(
      'ERR_SCHEMA_CONFLICT',
      `the backup's and the target's schemas of the same resource diverged, so after a '${mode}' restore records of one side would read under the other side's attribute names: ${conflicts.join('; ')}. Nothing was written. Restore these resources with mode 'replace' (the backup's records and definition), or into an empty database`,
      { details: { conflicts } },
    );
  }
  return warnings;
}

/** Writes the definitions of `resources` into the target's s3db.json by mode; returns whether it changed. */
export async function mergeDefinitions(db: DatabaseLike, manifest: Manifest, resources: string[], mode: RestoreMode): Promise<boolean> {
  const backupJson = manifest.s3dbJson as S3dbJson | null;
  if (!backupJson?.resources) return false;
  const current: S3dbJson = (await readTargetJson(db)) ?? { ...backupJson, resources: {} };
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
  await db.client.putObject({ key: 's3db.json', body: Buffer.from(JSON.stringify(current, null, 2)), contentType: 'application/json' });
  return true;
}

async function readTargetJson(db: DatabaseLike): Promise<S3dbJson | null> {
  try {
    const res = await db.client.getObject('s3db.json');
    return JSON.parse((await bodyToBuffer(res.Body)).toString('utf8')) as S3dbJson;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** The side whose definition merge and skip keep: the newer current version, the backup's on a tie. */
function newer(target: Definition, fromBackup: Definition): Definition {
  return versionNumber(target.currentVersion) > versionNumber(fromBackup.currentVersion) ? target : fromBackup;
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
  return { user: schema.getSchemaRegistry() ?? initial().schemaRegistry, plugins: schema.getPluginSchemaRegistry() ?? initial().pluginSchemaRegistry };
}

/** Clashes between two sides' short keys, in words ([] when they agree). */
function registryConflicts(target: Registries, fromBackup: Registries): string[] {
  const user = (r: Registries): Slots => ({
    mapping: Object.fromEntries(Object.entries(r.user.mapping ?? {}).map(([a, i]) => [a, String(i)])),
    burned: (r.user.burned ?? []).map((b) => ({ slot: String(b.index), attribute: b.attribute })),
  });
  const plugins = (r: Registries): Slots => ({
    mapping: Object.fromEntries(Object.entries(r.plugins).flatMap(([plugin, reg]) => Object.entries(reg.mapping ?? {}).map(([a, k]) => [`${plugin}:${a}`, k]))),
    burned: Object.entries(r.plugins).flatMap(([plugin, reg]) => (reg.burned ?? []).map((b) => ({ slot: b.key, attribute: b.attribute === undefined ? undefined : `${plugin}:${b.attribute}` }))),
  });
  return [...slotConflicts(user(fromBackup), user(target)), ...slotConflicts(plugins(fromBackup), plugins(target))];
}

interface Slots {
  /** attribute -> short key (user attributes: the registry number as text; plugin ones: `plugin:attr` -> key). */
  mapping: Record<string, string>;
  /** Retired short keys and the attribute they held. */
  burned: { slot: string; attribute: string | undefined }[];
}

function slotConflicts(backup: Slots, target: Slots): string[] {
  const holders = (s: Slots) => {
    const bySlot = new Map<string, string>();
    for (const b of s.burned) if (b.attribute !== undefined) bySlot.set(b.slot, b.attribute);
    for (const [attr, slot] of Object.entries(s.mapping)) bySlot.set(slot, attr);
    return bySlot;
  };
  const out: string[] = [];
  const targetHolders = holders(target);
  for (const [slot, attr] of holders(backup)) {
    const other = targetHolders.get(slot);
    if (other !== undefined && other !== attr) out.push(`short key ${slot} is '${attr}' in the backup and '${other}' in the target`);
  }
  for (const [attr, slot] of Object.entries(backup.mapping)) {
    const other = target.mapping[attr];
    if (other !== undefined && other !== slot) out.push(`'${attr}' has short key ${slot} in the backup and ${other} in the target`);
  }
  return out;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function versionNumber(version: string | undefined): number {
  const m = /^v(\d+)$/.exec(version ?? 'v1');
  return m ? Number(m[1]) : 0;
}
