/**
 * Reads restore()'s two call forms into one request, refusing bad input before anything is read
 * (every refusal says nothing was restored):
 * - the story's: restore({ backupId, destination, resources, mode, verify, dryRun, allowPlaintext, rewriteUnchanged, salvage });
 * - s3db.js's: restore(backupId, { resources, mode, overwrite, ... }), whose defaults are s3db.js's:
 *   records that exist are kept (mode 'skip': s3db.js's restore inserts, and s3db.js refuses to
 *   insert over an existing id); `overwrite: true` is mode 'merge'.
 */
import { optionError } from './errors.js';
import type { RestoreMode } from './engine/restore.js';
import { checkOptions, isBoolean, isString, reservedResourceName, type Check } from './method-options.js';
import type { RestoreOptions, S3dbRestoreOptions } from './plugin.js';
import { refuseMisreadUrl } from './target.js';

export interface RestoreRequest {
  /** The options in the story's form (s3db.js's `overwrite` read into `mode`). */
  options: RestoreOptions;
  backupId: string;
  mode: RestoreMode;
  /** Called as s3db.js's plugin is: restore(backupId, options). */
  s3dbDialect: boolean;
}

export function restoreRequest(idOrOptions: string | RestoreOptions, maybeOptions?: S3dbRestoreOptions): RestoreRequest {
  const s3dbDialect = typeof idOrOptions === 'string';
  if (!s3dbDialect && maybeOptions !== undefined) {
    // restore({ backupId }, { dryRun: true }) would otherwise restore for real
    throw optionError('options', 'restore({ backupId, ... }) takes one argument (nothing was restored)', 'Put every option in that object, or call restore(backupId, { ... })');
  }
  checkOptions('restore', s3dbDialect ? maybeOptions : idOrOptions, s3dbDialect ? S3DB_RESTORE_CHECKS : RESTORE_CHECKS, RESTORE_HINTS, 'nothing was restored');
  if (s3dbDialect && maybeOptions?.backupId !== undefined && maybeOptions.backupId !== idOrOptions) {
    throw optionError('backupId', `names ${String(maybeOptions.backupId)}, and the first argument ${idOrOptions} (nothing was restored)`, 'Give the backup once');
  }
  const { overwrite, ...given } = s3dbDialect ? { ...maybeOptions } : { overwrite: undefined, ...(idOrOptions ?? {}) };
  const options: RestoreOptions = s3dbDialect ? { ...given, backupId: idOrOptions } : given;
  const backupId = options.backupId;
  if (typeof backupId !== 'string' || backupId === '') throw optionError('backupId', 'is required', 'Pick one from listBackups()');
  const mode = options.mode ?? restoreDefaultMode(s3dbDialect, overwrite);
  if (!['replace', 'merge', 'skip'].includes(mode)) throw optionError('mode', `"${String(mode)}" is not 'replace', 'merge' or 'skip'`);
  if (overwrite === false && mode !== 'skip') throw optionError('overwrite', `false asks to keep the records that exist, and mode '${mode}' writes over them (nothing was restored)`, "Give one of them: mode: 'skip' is overwrite: false");
  if (overwrite === true && mode === 'skip') throw optionError('overwrite', "true asks to write over the records that exist, and mode 'skip' keeps them (nothing was restored)", "Give one of them: mode: 'merge' is overwrite: true");
  if (options.resources != null && (!Array.isArray(options.resources) || options.resources.length === 0 || options.resources.some((r) => typeof r !== 'string'))) {
    throw optionError('resources', 'must be a non-empty array of resource names (or null or left out: every resource)');
  }
  // salvage learns which parts are damaged from the verification
  if (options.salvage === true && options.verify === false) throw optionError('salvage', 'needs the verification that finds the damaged parts, and verify is false (nothing was restored)', 'Leave verify out (or true)');
  const reserved = options.resources ? reservedResourceName(options.resources) : null;
  if (reserved) throw optionError('resources', `${reserved} (nothing was restored)`);
  // before anything is read: a connection string s3db.js would read as something else
  if (typeof options.destination === 'string' && options.destination.includes('://')) refuseMisreadUrl(options.destination, options.destination);
  return { options, backupId, mode, s3dbDialect };
}

/** Options restore() knows; a misspelt or foreign one must not be ignored (it could name the target). */
const RESTORE_CHECKS: Record<string, Check | null> = {
  backupId: isString,
  destination: null,
  resources: null,
  mode: null,
  verify: isBoolean,
  dryRun: isBoolean,
  allowPlaintext: isBoolean,
  rewriteUnchanged: isBoolean,
  salvage: isBoolean,
};
const S3DB_RESTORE_CHECKS: Record<string, Check | null> = { ...RESTORE_CHECKS, overwrite: isBoolean };

/** What a restore does without `mode`: the story's restore({...}) replaces, s3db.js's restore(id) keeps what exists. */
function restoreDefaultMode(s3dbDialect: boolean, overwrite: boolean | undefined): RestoreMode {
  if (!s3dbDialect) return 'replace';
  return overwrite === true ? 'merge' : 'skip';
}

const RESTORE_HINTS: Record<string, string> = {
  target: "Use destination: 'production', a Database, a connection string or a bare name",
  database: "Use destination: 'production', a Database, a connection string or a bare name",
  overwrite: "Use mode: 'replace' (the backup wins, other objects deleted), 'merge' or 'skip'",
  id: 'Use backupId',
};
