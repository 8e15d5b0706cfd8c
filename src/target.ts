/**
 * Resolves a restore's `destination` to a live s3db Database:
 * - omitted, 'production' or 'self': the plugin's own database;
 * - a Database instance (anything with a `client`): that database;
 * - a connection string ('memory://...', 'file:///...', 's3://...', 'http(s)://KEY:SECRET@host/bucket/prefix'):
 *   a new database on it, connected for the restore and disconnected after;
 * - a bare name such as 'test-restore': the database with that BUCKET name on the same storage and
 *   with the same credentials and key prefix as the plugin's database (memory://<name>/<prefix>,
 *   a sibling directory <name> for file://, bucket <name> for S3). This matches the seed's drill,
 *   which restores to 'disaster-recovery-test' and then opens `new S3db({ bucketName: 'disaster-recovery-test' })`.
 *
 * A database opened here gets the plugin database's `security` (passphrase), see connect().
 * Invariant: a database this module opened is disconnected by close(); one it was given is not.
 */
import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BackupError, conciseCause, errorMessage, optionError } from './errors.js';
import { redacted, redactedTarget } from './redact.js';
import { MISSING_BUCKET, missingBucket, type DatabaseLike } from './engine/s3db.js';
import { damagedSchema, PUT_SCHEMA_BACK, type UnconnectedDatabase } from './damaged-schema.js';

export interface OpenedDatabase {
  db: DatabaseLike;
  /** Where the restore writes, for its report (credentials hidden): a bare name's derived connection string. */
  location: string;
  /** A dry run's target with no database there yet (not connected: see openDatabase). */
  absent?: boolean;
  /** There was no s3db.json there: the empty one in it now is s3db.js's connect()'s, not the database's. */
  schemaFromConnect?: boolean;
  close(): Promise<void>;
}

/** `text` (an error's message) with `destination` in it shown as redactedTarget shows it, then `redacted`. */
function withoutTarget(text: string, destination: string): string {
  return redacted(destination === '' ? text : text.split(destination).join(redactedTarget(destination)));
}

function locationOf(db: DatabaseLike, fallback: string): string {
  const cs = (db as { connectionString?: string }).connectionString ?? db.client.connectionString;
  return typeof cs === 'string' ? redactedTarget(cs) : fallback;
}

const SELF_NAMES = new Set(['production', 'self']);

/**
 * `replacesSchema`: the restore writes the backup's whole s3db.json (a whole-database replace, not
 * a dry run). Otherwise a database opened here whose s3db.json is damaged is refused before
 * s3db.js's connect() can replace it with an empty one (damaged-schema.ts).
 * `dryRun`: a location without an s3db.json is not connected (s3db.js's connect() would create the
 * database there: a directory for file://), only read through its client, which writes nothing.
 * `beforeConnect` is called with every database returned other than `own` (a given Database
 * instance too), before anything is written there; what it throws is thrown as it is.
 */
export async function openDatabase(
  destination: string | DatabaseLike | undefined,
  own: DatabaseLike | null,
  options: { replacesSchema: boolean; dryRun?: boolean; beforeConnect?: (db: DatabaseLike) => void } = { replacesSchema: false },
): Promise<OpenedDatabase> {
  if (destination === undefined || (typeof destination === 'string' && SELF_NAMES.has(destination))) {
    if (!own) throw new BackupError('ERR_NOT_INSTALLED', 'restore into this database needs the plugin installed on one; or pass destination (a Database or connection string)');
    return { db: own, location: `this plugin's database (${locationOf(own, 'no connection string')})`, close: async () => undefined };
  }
  if (typeof destination === 'object' && destination !== null && 'client' in destination) {
    if (destination !== own) options.beforeConnect?.(destination);
    return { db: destination, location: `a Database instance (${locationOf(destination, 'no connection string')})`, close: async () => undefined };
  }
  if (typeof destination !== 'string' || destination.trim() === '') {
    throw optionError('destination', 'must be a Database, a connection string or a bucket name');
  }
  const connectionString = destination.includes('://') ? destination : siblingConnectionString(destination, own);
  const { db, absent, schemaFromConnect } = await connect(connectionString, destination, own, options);
  return {
    db,
    location: redactedTarget(connectionString),
    absent,
    schemaFromConnect,
    close: async () => {
      await db.disconnect?.().catch(() => undefined);
    },
  };
}

function siblingConnectionString(name: string, own: DatabaseLike | null): string {
  if (!/^[a-z0-9][a-z0-9.-]{1,62}$/.test(name)) {
    throw optionError('destination', `"${redactedTarget(name)}" is not a valid bucket name`, 'Use a connection string for anything else');
  }
  const base = (own as { connectionString?: string } | null)?.connectionString ?? own?.client.connectionString;
  if (!base) throw optionError('destination', `cannot derive a database named "${name}": the plugin's database has no connection string`, 'Pass a connection string or a Database instance');
  const url = new URL(base);
  if (url.protocol === 'file:') {
    const dir = fileURLToPath(url);
    return pathToFileURL(path.join(path.dirname(dir), name)).toString();
  }
  if (url.protocol === 'memory:' || url.protocol === 's3:') {
    url.host = name;
    return url.toString();
  }
  // http(s)://KEY:SECRET@host:port/bucket/prefix: the bucket is the first path segment
  const segments = url.pathname.split('/').filter(Boolean);
  segments[0] = name;
  url.pathname = `/${segments.join('/')}`;
  return url.toString();
}

/**
 * A database s3db.js could not open, as `code`: its reason in one line with what to check
 * (openHint), without s3db.js's stack dump; the connection strings (`spelt`: each way it was
 * written) are shown redacted, in the message and the cause (s3db.js's own error quotes them).
 */
export function unopenable(code: string, what: string, err: unknown, spelt: string[]): BackupError {
  const hide = (text: string) => spelt.reduce(withoutTarget, text);
  const cause = Object.assign(new Error(hide(errorMessage(err))), { name: err instanceof Error ? err.name : 'Error' });
  const reason = conciseCause(hide(errorMessage(err)));
  // s3db.js says a missing bucket as what it was doing ("Failed to save plugin data"): the cause keeps it
  if (missingBucket(err)) return new BackupError(code, `could not open ${what}: ${MISSING_BUCKET}`, { cause });
  return new BackupError(code, `could not open ${what}: ${reason}${openHint(reason)}`, { cause });
}

/**
 * What to check when access is denied, which s3db.js words least helpfully (its text is kept
 * before it), and which some stores, Ceph RGW among them, also answer for a bucket that does not
 * exist. (A store that does not answer, or a host with no address, ends as s3db.js's circuit
 * breaker's words, which conciseCause explains wherever they come.)
 */
export function openHint(reason: string): string {
  if (/\baccess denied\b/i.test(reason)) {
    return " (check the key and secret in the connection string, with '/' and '+' in them URL-encoded, and that the bucket exists: some stores answer a missing bucket with access denied)";
  }
  return '';
}

/**
 * Connection strings s3db.js would read as something else than meant: a file:// one with a host
 * (a relative path), and an s3:// one whose host, which names an AWS bucket
 * (s3://KEY:SECRET@bucket/prefix), has a port or is an IP address (never a bucket name): it meant
 * another store, and s3db.js would spend ~20 s trying AWS before failing with a message that
 * names neither.
 */
export function refuseMisreadUrl(connectionString: string, shown: string): void {
  let url: URL;
  try {
    url = new URL(connectionString);
  } catch {
    return; // s3db.js says what is wrong with it
  }
  // file://relative/path: s3db.js reads "relative" as a host and writes under the working directory
  if (url.protocol === 'file:' && url.host !== '' && url.host !== '.') {
    throw optionError('destination', `${redactedTarget(shown)} has a host (${url.host}) where a file:// connection string takes an absolute path`, 'Write file:///srv/db (three slashes); nothing was restored');
  }
  if (url.protocol !== 's3:' || (url.port === '' && !/^\d{1,3}(\.\d{1,3}){3}$/.test(url.hostname))) return;
  throw optionError(
    'destination',
    `${redactedTarget(shown)} names ${url.host} as an AWS bucket (in an s3:// connection string a bucket follows the credentials)`,
    `For a store at ${url.host}, begin it with http:// (https:// for TLS) in place of s3://, the rest unchanged; nothing was restored`,
  );
}

/**
 * Failures s3db.js's operation pool may retry in a database opened here: transient ones only.
 * Its default retries every failure, a missing key or bucket included, three times with backoff:
 * ~7 s per absent key, ~18 s to open an empty S3 prefix, ~15 s to say a bucket does not exist.
 * (Its HTTP handler beneath retries refused connections and 5xx itself.)
 */
const TRANSIENT_ERRORS = ['NetworkingError', 'TimeoutError', 'RequestTimeout', 'ServiceUnavailable', 'SlowDown', 'RequestLimitExceeded', 'InternalError', 'ThrottlingException'];

/**
 * s3db.js's constructor options for a database this package opens itself (a restore's connection
 * string here, the CLI's `--db`): silent, signals left to the application (s3db.js's default ends
 * the process with code 0 on SIGINT/SIGTERM), and transient failures alone retried. Its HTTP
 * handler stays s3db.js's own (recker): the AWS SDK's, tried, kept a connection per record read
 * with an empty body (s3db.js does not drain it) and stalled a skip restore after 50 of them
 * (review-s3target). `executorPool` settings in the connection string's query are not read
 * (s3db.js merges these over them).
 */
export function openedDatabaseOptions(connectionString: string): Record<string, unknown> {
  return { connectionString, logLevel: 'silent', exitOnSignal: false, executorPool: { retryableErrors: TRANSIENT_ERRORS } };
}

/**
 * Opens a database for the restore with the plugin database's `security` (its passphrase): records
 * restored through the resource API (filter/fields resources) are encrypted by s3db with it, and
 * s3db's default passphrase would make their secrets unreadable to the application.
 */
async function connect(
  connectionString: string,
  shown: string,
  own: DatabaseLike | null,
  { replacesSchema, dryRun = false, beforeConnect }: { replacesSchema: boolean; dryRun?: boolean; beforeConnect?: (db: DatabaseLike) => void },
): Promise<{ db: DatabaseLike; absent: boolean; schemaFromConnect: boolean }> {
  const safe = redactedTarget(shown);
  const security = (own as { security?: unknown } | null)?.security;
  // The cause is rebuilt from the redacted message: s3db.js's own error quotes the connection string.
  const openError = (err: unknown): BackupError => unopenable('ERR_TARGET_OPEN', `the restore destination ${safe}`, err, [connectionString, shown]);
  refuseMisreadUrl(connectionString, shown);
  let db: DatabaseLike & UnconnectedDatabase;
  try {
    const { S3db } = (await import('s3db.js')) as unknown as { S3db: new (o: Record<string, unknown>) => DatabaseLike & UnconnectedDatabase };
    db = new S3db({ ...openedDatabaseOptions(connectionString), ...(security ? { security } : {}) });
    await db.ensureClientInitialized?.();
  } catch (err) {
    throw openError(err);
  }
  beforeConnect?.(db); // its refusal as it is, before anything is written there
  let damage: string | null;
  try {
    damage = replacesSchema ? null : await damagedSchema(db);
    const schemaThere = (await db.client.exists?.('s3db.json')) ?? true;
    if (damage === null && dryRun && !schemaThere) {
      // s3db.js's file client, asked to list a directory that does not exist, lists its parent's
      // objects (as '../<sibling>/...'), which are not this database's: they are left out, and
      // where the directory does not exist, not listed at all (a walk of the parent reads every
      // object's metadata there: a database beside it of millions of records). (This database was
      // opened for this restore alone; its client is never connected.)
      const client = db.client;
      const basePath = (client as { basePath?: unknown }).basePath;
      const missingDirectory = typeof basePath === 'string' && (await stat(basePath).then(() => false, () => true));
      const listObjects: typeof client.listObjects = async (params) => {
        if (missingDirectory) return { Contents: [], IsTruncated: false };
        const page = await client.listObjects(params);
        return { ...page, Contents: (page.Contents ?? []).filter((o) => !String(o.Key ?? '').startsWith('../')) };
      };
      db.client = Object.assign(Object.create(client) as typeof client, { listObjects });
      return { db, absent: true, schemaFromConnect: false };
    }
    if (damage === null) {
      await db.connect!(); // writes an empty s3db.json where there was none
      return { db, absent: false, schemaFromConnect: !schemaThere };
    }
  } catch (err) {
    throw openError(err);
  }
  throw new BackupError(
    'ERR_TARGET_METADATA',
    `the restore destination ${safe} was not opened: its ${damage}, and s3db.js would replace it with an empty one on connecting. Put its schema back first: ${PUT_SCHEMA_BACK}`,
  );
}
