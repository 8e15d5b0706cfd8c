/**
 * s3db.js's connect() replaces an s3db.json that is not valid JSON with an empty one (keeping the
 * damaged bytes as s3db.json.corrupted.<time>.backup) and carries on, every resource undefined.
 * Before the plugin or its command line connects to a database it opens itself, it reads
 * s3db.json through the not yet connected client, so that a damaged schema is reported instead
 * of replaced behind the user's back (the runbook's lossless way back is to write a backup's
 * `manifest.s3dbJson` over it, which needs it still there or at least unreplaced by an empty one).
 */
import { bodyToBuffer, isNotFound, type DatabaseLike } from './engine/s3db.js';

/** A Database before connect(): s3db.js builds its client on demand. */
export interface UnconnectedDatabase {
  ensureClientInitialized?: () => Promise<void>;
  client?: DatabaseLike['client'];
}

/** Why the database's s3db.json is damaged (not valid JSON), or null when it is fine or absent. */
export async function damagedSchema(db: UnconnectedDatabase): Promise<string | null> {
  await db.ensureClientInitialized?.();
  const client = db.client;
  if (!client) return null;
  let text: string;
  try {
    text = (await bodyToBuffer((await client.getObject('s3db.json')).Body)).toString('utf8');
  } catch (err) {
    if (isNotFound(err)) return null;
    return null; // unreadable for another reason: connect() reports it
  }
  return schemaDamage(text);
}

/** Why this text is not a readable s3db.json (null when it parses). JSON.parse's own message quotes the text: only its size is shown. */
export function schemaDamage(text: string): string | null {
  try {
    JSON.parse(text);
    return null;
  } catch {
    return `s3db.json (${text.length} characters) is not valid JSON`;
  }
}

/** How to put a damaged s3db.json back: every message that meets one says this (README runbook, step 4). */
export const PUT_SCHEMA_BACK =
  "write the newest backup's manifest.s3dbJson as its s3db.json (no record changes; s3db-backup show <id> --json prints it), or restore the whole database (mode 'replace', no resources, not a dry run), which also drops what was written since (README runbook, step 4)";
