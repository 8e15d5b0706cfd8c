/**
 * What this process is doing to each database, by database: not by plugin instance, nor by the
 * Database object (a restore given a connection string opens an object of its own for the
 * database the plugin backs up). A restore writing into a database closes its gate and cancels
 * the backups reading it; a backup passes the gate before it starts reading and is a reader until
 * its reading ends. Restores into one database run one at a time.
 *
 * Invariants: a database is named by where it is (client kind, bucket, key prefix without its
 * slashes, a file:// directory resolved), so two spellings of one database are one key; a
 * backup registers as a reader with no await between passing the gate and registering, so a
 * restore that closes the gate either holds it back or sees it to cancel.
 */
import * as path from 'node:path';
import { describeSource } from './engine/backup.js';
import type { DatabaseLike } from './engine/s3db.js';
import { sourceKey } from './engine/manifest.js';
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

/** Where a database is, as one key whatever the spelling of its connection string. */
export function databaseKey(db: DatabaseLike): string {
  const source = describeSource(db);
  return JSON.stringify([sourceKey(source), source.path === undefined ? null : path.resolve(source.path)]);
}

export function activityOf(key: string): DatabaseActivity {
  let activity = activities.get(key);
  if (!activity) activities.set(key, (activity = { gate: new Gate(), readers: new Set() }));
  return activity;
}
