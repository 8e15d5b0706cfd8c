/**
 * What this process is doing to each database, by database: not by plugin instance, nor by the
 * Database object (a restore given a connection string opens an object of its own for the
 * database the plugin backs up). A restore writing into a database closes its gate and cancels
 * the backups reading it; a backup passes the gate before it starts reading and is a reader until
 * its reading ends. Restores into one database run one at a time.
 *
 * Invariants: a database is named by where it is (see databaseKey), so two spellings of one
 * database are one key; a backup registers as a reader with no await between its last look at
 * the gate and registering, so a restore that closes the gate either holds it back or sees it to
 * cancel.
 */
import { realpathSync } from 'node:fs';
import * as path from 'node:path';
import { describeSource } from './engine/backup.js';
import type { DatabaseLike } from './engine/s3db.js';
import { Gate } from './gate.js';
import { KeyedQueue } from './keyed-queue.js';

export interface Reader {
  cancel: AbortController;
  /** Settles when the reading ends, however it ends. */
  ended: Promise<void>;
}

export interface DatabaseActivity {
  /** Closed while a restore writes into the database. */
  readonly gate: Gate;
  /** Backups reading the database now. */
  readonly readers: Set<Reader>;
}

const activities = new Map<string, DatabaseActivity>();

/** Restores into one database, by any plugin of this process, one at a time. */
export const restoresInto = new KeyedQueue();

/**
 * Where a database is, as one key whatever the spelling of its connection string: the key
 * prefix as s3db.js's client uses it (joined to keys with path.join: '//' and '.' segments
 * vanish), a file:// directory with its symlinks resolved, and a remote store's endpoint (one
 * bucket name on two stores is two databases).
 */
export function databaseKey(db: DatabaseLike): string {
  const source = describeSource(db);
  const prefix = path.posix.normalize(`/${source.keyPrefix ?? ''}/`).replace(/^\/+|\/+$/g, '');
  return JSON.stringify([source.client, source.bucket, prefix, source.endpoint ?? null, source.path === undefined ? null : realDirectory(source.path)]);
}

/** A directory with its symlinks resolved (as far as it exists: a restore may create the rest). */
function realDirectory(dir: string): string {
  const full = path.resolve(dir);
  try {
    return realpathSync(full);
  } catch {
    const parent = path.dirname(full);
    return parent === full ? full : path.join(realDirectory(parent), path.basename(full));
  }
}

export function activityOf(key: string): DatabaseActivity {
  let activity = activities.get(key);
  if (!activity) activities.set(key, (activity = { gate: new Gate(), readers: new Set() }));
  return activity;
}
