/**
 * Resource definitions in the target's s3db.json when a restore does not put the backup's
 * s3db.json back whole (subset restores, and whole-database merge/skip into a database that has
 * resources). The target's other resources always stay.
 *
 * Per restored resource:
 * - the target lacks it: the backup's definition;
 * - mode 'replace': the backup's definition (every record of the resource is now the backup's);
 * - mode 'skip': the target's definition stays;
 * - mode 'merge': records of both sides stay, so the definition with the newer `currentVersion`
 *   (vN, highest N; the backup's on a tie), with its registry, plus the other side's versions it
 *   lacks. Limit: s3db.js 21 decodes every record with the current version's attribute map, so
 *   when the two sides' schemas DIVERGED (different attributes under the same short keys) records
 *   of the losing side read wrong; replace restores are exact.
 */
import type { Manifest } from './manifest.js';
import { bodyToBuffer, isNotFound, type DatabaseLike } from './s3db.js';

type Definition = { currentVersion?: string; versions?: Record<string, unknown> } & Record<string, unknown>;

/** Writes the merged definitions of `resources` into the target's s3db.json; returns whether it changed. */
export async function mergeDefinitions(db: DatabaseLike, manifest: Manifest, resources: string[], mode: 'replace' | 'merge' | 'skip'): Promise<boolean> {
  const backupJson = manifest.s3dbJson as { resources?: Record<string, Definition> } | null;
  if (!backupJson?.resources) return false;
  let current: { resources?: Record<string, Definition> } & Record<string, unknown>;
  try {
    const res = await db.client.getObject('s3db.json');
    current = JSON.parse((await bodyToBuffer(res.Body)).toString('utf8')) as typeof current;
  } catch (err) {
    if (!isNotFound(err)) throw err;
    current = { ...(backupJson as Record<string, unknown>), resources: {} };
  }
  current.resources ??= {};
  let changed = false;
  for (const name of resources) {
    const fromBackup = backupJson.resources[name];
    const existing = current.resources[name];
    if (fromBackup === undefined || (mode === 'skip' && existing !== undefined)) continue;
    const merged = existing === undefined || mode === 'replace' ? fromBackup : mergedDefinition(existing, fromBackup);
    if (JSON.stringify(merged) === JSON.stringify(existing)) continue;
    current.resources[name] = merged;
    changed = true;
  }
  if (!changed) return false;
  await db.client.putObject({ key: 's3db.json', body: Buffer.from(JSON.stringify(current, null, 2)), contentType: 'application/json' });
  return true;
}

/** The definition with the newer current version (the backup's on a tie), plus the other's versions it lacks. */
function mergedDefinition(target: Definition, fromBackup: Definition): Definition {
  const base = versionNumber(target.currentVersion) > versionNumber(fromBackup.currentVersion) ? target : fromBackup;
  const other = base === target ? fromBackup : target;
  return { ...base, versions: { ...(other.versions ?? {}), ...(base.versions ?? {}) } };
}

function versionNumber(version: string | undefined): number {
  const m = /^v(\d+)$/.exec(version ?? 'v1');
  return m ? Number(m[1]) : 0;
}
