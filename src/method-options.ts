/**
 * Checks of the options objects the plugin's methods take (prune, deleteBackup, listBackups,
 * verifyBackup, createBackup, restore): an object or nothing, only known keys, each value of its
 * kind. A misspelt `dryRun` or a `force: 'false'` must never be read as "no dry run" or "force":
 * those delete backups. Every refusal is ERR_INVALID_OPTION naming the option, before anything runs.
 * Invariant: an option left `undefined` is the default, as if absent.
 */
import { DATABASE_GROUP } from './engine/layout.js';
import { optionError } from './errors.js';
import { knownHint } from './known-names.js';

/** Why `value` is not acceptable for its option, or null. */
export type Check = (value: unknown) => string | null;

export const isBoolean: Check = (v) => (typeof v === 'boolean' ? null : `must be true or false, not ${shown(v)}`);
export const isString: Check = (v) => (typeof v === 'string' ? null : `must be a string, not ${shown(v)}`);
export const oneOf =
  (...values: string[]): Check =>
  (v) =>
    values.includes(v as string) ? null : `must be ${values.map((x) => `'${x}'`).join(' or ')}, not ${shown(v)}`;

/**
 * Throws ERR_INVALID_OPTION unless `options` is undefined or a plain object whose keys are all in
 * `spec` with values its checks accept (a key whose check is null is checked by the method itself).
 */
export function checkOptions(method: string, options: unknown, spec: Record<string, Check | null>, hints: Record<string, string> = {}, outcome = ''): void {
  if (options === undefined) return;
  const then = outcome ? ` (${outcome})` : '';
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw optionError('options', `${method}() takes an options object, not ${shown(options)}${then}`, `Known options: ${Object.keys(spec).join(', ')}`);
  }
  for (const [name, value] of Object.entries(options)) {
    if (!Object.hasOwn(spec, name)) throw optionError(name, `is not a ${method}() option${then}`, hints[name] ?? knownHint(name, Object.keys(spec)));
    const problem = value === undefined ? null : (spec[name]?.(value) ?? null);
    if (problem) throw optionError(name, `${problem}${then}`);
  }
}

/**
 * Why a list of resource names cannot select resources alone, or null: the group of a backup's
 * database-level objects (s3db.json, other keys) is named DATABASE_GROUP (`_database`),
 * which s3db.js also takes as a resource name (review-paths P7).
 */
export function reservedResourceName(names: readonly unknown[]): string | null {
  return names.includes(DATABASE_GROUP)
    ? "names _database, which is also the name under which a backup keeps the database's own objects (s3db.json and other keys): a selection of it would mix them. Back that resource up and restore it with the whole database, or rename it"
    : null;
}

/** A value as an error message shows it: its kind, and a number or boolean itself (a string never: it may be a secret). */
export function shown(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${String(v)}`;
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'symbol') return 'a symbol';
  return typeof v === 'object' ? `an object (${(v as object).constructor?.name ?? 'Object'})` : typeof v;
}
