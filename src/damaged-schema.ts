/**
 * s3db.js's connect() does not stop at a damaged s3db.json: it "heals" it and writes the result
 * back, and the definitions are gone. It starts from an empty schema when s3db.json is there but
 * its read fails for any reason (a file:// body whose .meta.json is torn, a 403, a reset
 * connection), or when it is not JSON (keeping the bytes as s3db.json.corrupted.<time>.backup
 * only in that case); and it drops, without a copy, a definition of the wrong shape (a resource
 * without versions, a current version without attributes; `resources` that is not an object).
 * Before the plugin or its command line connects to a database it opens itself, it checks
 * s3db.json the same way through the not yet connected client, so that a damaged schema is
 * reported instead of replaced behind the user's back (the runbook's lossless way back is to
 * write a backup's `manifest.s3dbJson` over it, which needs it still there).
 *
 * Invariant: what this calls damage is exactly what connect() would change by dropping a
 * definition (adding a missing version stamp or `lastUpdated` loses nothing and is not damage),
 * so a healthy database is never refused.
 */
import { conciseCause, errorMessage } from './errors.js';
import { bodyToBuffer, isNotFound, type DatabaseLike } from './engine/s3db.js';

/** A Database before connect(): s3db.js builds its client on demand. */
export interface UnconnectedDatabase {
  ensureClientInitialized?: () => Promise<void>;
  client?: DatabaseLike['client'];
}

/** Why the database's s3db.json is damaged, or null when it is fine or absent. */
export async function damagedSchema(db: UnconnectedDatabase): Promise<string | null> {
  await db.ensureClientInitialized?.();
  const client = db.client;
  if (!client) return null;
  // connect() asks exists() first (an error there fails connect() itself: nothing replaced)
  let present: boolean;
  try {
    present = typeof client.exists === 'function' ? await client.exists('s3db.json') : true;
  } catch {
    return null;
  }
  if (!present) return null;
  let text: string;
  try {
    text = (await bodyToBuffer((await client.getObject('s3db.json')).Body)).toString('utf8');
  } catch (err) {
    if (isNotFound(err) && typeof client.exists !== 'function') return null;
    return `s3db.json is there but could not be read (${conciseCause(errorMessage(err))})`;
  }
  return schemaDamage(text);
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const kind = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);

/**
 * Why this text is not an s3db.json that s3db.js keeps as it is (null when it is one). JSON.parse's
 * own message quotes the text: only its size is shown.
 */
export function schemaDamage(text: string): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return `s3db.json (${text.length} characters) is not valid JSON`;
  }
  if (!isObject(parsed)) return `s3db.json is ${kind(parsed)}, not an object`;
  const resources = parsed.resources;
  if (resources && !isObject(resources)) return `s3db.json's "resources" is ${kind(resources)}, not an object`;
  for (const [name, definition] of Object.entries(isObject(resources) ? resources : {})) {
    const why = definitionDamage(definition);
    if (why !== null) return `s3db.json's definition of resource '${name}' ${why}`;
  }
  return null;
}

/** What s3db.js's _healResourceStructure would drop or switch in one resource's definition. */
function definitionDamage(definition: unknown): string | null {
  if (!isObject(definition)) return `is ${kind(definition)}, not an object`;
  const versions = definition.versions;
  if (!isObject(versions) || Object.keys(versions).length === 0) return 'has no versions';
  const current = definition.currentVersion ? String(definition.currentVersion) : 'v1';
  const version = versions[current];
  if (!version) return `has no current version '${current}'`;
  if (typeof version !== 'object') return `has a current version '${current}' that is ${kind(version)}, not an object`;
  const attributes = (version as Json).attributes;
  if (!attributes || typeof attributes !== 'object') return `has no attributes in its current version '${current}'`;
  return null;
}

/**
 * How to put a damaged s3db.json back: every message that meets one says this (README runbook,
 * step 4). In the API's terms; the command line prints the two ways as its commands
 * (SCHEMA_WAYS_IN_COMMAND_TERMS, applied by cli/format.ts inCommandTerms).
 */
const SCHEMA_FROM_A_BACKUP = 's3db-backup show <id> --json prints it';
const WHOLE_DATABASE_RESTORE = "mode 'replace', no resources, not a dry run";
export const PUT_SCHEMA_BACK = `write the newest backup's manifest.s3dbJson as its s3db.json (no record changes; ${SCHEMA_FROM_A_BACKUP}), or restore the whole database (${WHOLE_DATABASE_RESTORE}), which also drops what was written since (README runbook, step 4)`;

/** PUT_SCHEMA_BACK's API terms, and the command line's words for them. */
export const SCHEMA_WAYS_IN_COMMAND_TERMS: [string, string][] = [
  [
    SCHEMA_FROM_A_BACKUP,
    "s3db-backup show <id> --json | jq -j .manifest.s3dbJson > s3db.json writes it to a file, with the --directory, --s3 or --config given here; copy that file over the database's s3db.json without connecting s3db.js to it",
  ],
  [WHOLE_DATABASE_RESTORE, 's3db-backup restore <id> --into <the database> --yes: --mode replace (the default), without --resources or --dry-run'],
];
