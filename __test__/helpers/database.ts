/**
 * Test databases on the real s3db.js: resources with secrets, timestamps, partitions, every
 * `behavior`, large bodies and raw plugin state; and an object-level snapshot (key, metadata,
 * content type, body hash) to prove two databases identical object for object.
 */
import { createHash } from 'node:crypto';
import { S3db } from 's3db.js';
import { bodyToBuffer, listObjects, type DatabaseLike } from '../../src/engine/s3db.js';

export const DB_PASSPHRASE = 'test-db-secret-passphrase';
export const BEHAVIORS = ['body-overflow', 'body-only', 'user-managed', 'enforce-limits', 'truncate-data'] as const;

export async function openDb(connectionString: string, plugins: unknown[] = []): Promise<S3db & DatabaseLike> {
  // s3db.js 21 reads the passphrase from `security` (a top-level `passphrase` is ignored).
  const db = new S3db({ connectionString, security: { passphrase: DB_PASSPHRASE }, logLevel: 'silent', plugins } as ConstructorParameters<typeof S3db>[0]);
  await db.connect();
  return db as S3db & DatabaseLike;
}

export interface SeedCounts {
  users: number;
  orders: number;
  perBehavior: number;
}

/** Fills `db` with deterministic data. Returns the ids it created per resource. */
export async function seedDatabase(db: S3db, counts: SeedCounts = { users: 60, orders: 80, perBehavior: 12 }): Promise<Record<string, string[]>> {
  const ids: Record<string, string[]> = {};
  const users = await db.createResource({
    name: 'users',
    attributes: { name: 'string', email: 'string', password: 'secret', plan: 'string', bio: 'string|optional' },
    timestamps: true,
    behavior: 'body-overflow',
    partitions: { byPlan: { fields: { plan: 'string' } } },
  });
  ids.users = [];
  for (let i = 0; i < counts.users; i++) {
    const id = `u${String(i).padStart(5, '0')}`;
    await users.insert({ id, name: `User ${i}`, email: `user${i}@example.com`, password: `pw-${i}`, plan: i % 3 === 0 ? 'pro' : 'free', bio: i % 10 === 0 ? 'x'.repeat(4000) : undefined });
    ids.users.push(id);
  }
  const orders = await db.createResource({
    name: 'orders',
    attributes: { userId: 'string', total: 'number', status: 'string', note: 'string|optional' },
    timestamps: true,
    behavior: 'body-only',
    partitions: { byStatus: { fields: { status: 'string' } } },
  });
  ids.orders = [];
  for (let i = 0; i < counts.orders; i++) {
    const id = `o${String(i).padStart(5, '0')}`;
    await orders.insert({ id, userId: `u${String(i % counts.users).padStart(5, '0')}`, total: i * 3.25, status: i % 2 ? 'completed' : 'pending', note: i % 7 === 0 ? 'n'.repeat(20_000) : undefined });
    ids.orders.push(id);
  }
  for (const behavior of BEHAVIORS) {
    const name = `b_${behavior.replace(/-/g, '_')}`;
    const r = await db.createResource({ name, attributes: { title: 'string', body: 'string|optional', token: 'secret|optional' }, behavior, timestamps: behavior !== 'user-managed' });
    ids[name] = [];
    for (let i = 0; i < counts.perBehavior; i++) {
      const id = `${name}-${i}`;
      await r.insert({ id, title: `T${i}`, body: i % 4 === 0 ? 'b'.repeat(1500) : `short ${i}`, token: `tok-${i}` });
      ids[name]!.push(id);
    }
  }
  // Plugin state as other plugins keep it: raw objects under plugin=<slug>/...
  await db.client.putObject({ key: 'plugin=audit/state.json', body: Buffer.from(JSON.stringify({ cursor: 42 })), contentType: 'application/json', metadata: { owner: 'audit' } });
  await db.client.putObject({ key: 'plugin=audit/blob.bin', body: Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256)), contentType: 'application/octet-stream' });
  return ids;
}

export interface ObjectSnapshot {
  key: string;
  metadata: Record<string, string>;
  contentType: string | null;
  size: number;
  sha256: string;
}

/** Every object of the database, sorted by key. */
export async function snapshot(db: DatabaseLike): Promise<ObjectSnapshot[]> {
  const out: ObjectSnapshot[] = [];
  for await (const entry of listObjects(db.client, { pageSize: 1000 })) {
    const res = await db.client.getObject(entry.key);
    const body = await bodyToBuffer(res.Body);
    out.push({
      key: entry.key,
      metadata: Object.fromEntries(Object.entries(res.Metadata ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))),
      contentType: res.ContentType ?? null,
      size: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
    });
  }
  return out;
}

/**
 * Metadata values another tool may store that s3db.js's client would not give back as stored
 * (review-fidelity F3): its reads decode `u:` `b:` `d:` `z:` `z85:` `null` `undefined`, its writes
 * encode again and compress dictionary words, and its dictionary lookup hits Object.prototype.
 */
export const STORED_VALUES = ['u:abc', 'u:%C3%A9', 'u:%E9', 'b:aGVsbG8=', 'b:!!!', 'b:/w==', 'd:q', 'd:', 'z:xyz', 'z85:abcde', 'application/json', 'processing', 'https://example.com/x', 'constructor', 'toString', '__proto__', 'null', 'undefined', 'plain text'];

/** What s3db.js's memory:// and file:// clients keep objects in: read and written past the client's metadata codec. */
interface LocalStore {
  storage: {
    get(fullKey: string): Promise<{ Metadata?: Record<string, string> }>;
    put(fullKey: string, params: { body: Buffer; metadata: Record<string, string>; contentType?: string }): Promise<unknown>;
  };
  _applyKeyPrefix(key: string): string;
}

/** Stores an object with `metadata` exactly as given, as another tool writing to the store would. */
export async function putStored(db: DatabaseLike, key: string, metadata: Record<string, string>, body = Buffer.from(key)): Promise<void> {
  const local = db.client as unknown as LocalStore;
  await local.storage.put(local._applyKeyPrefix(key), { body, metadata, contentType: 'application/octet-stream' });
}

/** Every object's metadata exactly as stored (not as s3db.js's client decodes it), by key. */
export async function storedMetadataOf(db: DatabaseLike): Promise<Record<string, Record<string, string>>> {
  const local = db.client as unknown as LocalStore;
  const out: Record<string, Record<string, string>> = {};
  for await (const entry of listObjects(db.client, { pageSize: 1000 })) out[entry.key] = { ...(await local.storage.get(local._applyKeyPrefix(entry.key))).Metadata };
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * s3db.js updates partition references in the background after update() resolves
 * (asyncPartitions), so a test waits until two consecutive snapshots agree before it backs up.
 */
export async function settled(db: DatabaseLike): Promise<ObjectSnapshot[]> {
  let previous = await snapshot(db);
  for (let i = 0; i < 100; i++) {
    await sleep(100);
    const current = await snapshot(db);
    if (JSON.stringify(current) === JSON.stringify(previous)) return current;
    previous = current;
  }
  throw new Error('the source database never settled');
}

/**
 * Seeding costs a PBKDF2 per secret insert, so a test file seeds ONE template database (lazily,
 * at `templateConnection()`) and each test gets its own physical copy of it: every object with
 * its metadata as s3db.js wrote them, opened as a new real s3db.js Database that loads its
 * resources from the copied s3db.json. Returns the copier: `copy(connectionString)`.
 */
export function seededCopies(counts: SeedCounts, templateConnection: () => string): (connectionString: string) => Promise<S3db & DatabaseLike> {
  let template: (S3db & DatabaseLike) | null = null;
  return async (connectionString) => {
    if (!template) {
      template = await openDb(templateConnection());
      await seedDatabase(template, counts);
      await settled(template);
    }
    const target = await openDb(connectionString);
    for await (const entry of listObjects(template.client, { pageSize: 1000 })) {
      const res = await template.client.getObject(entry.key);
      const metadata = Object.fromEntries(Object.entries(res.Metadata ?? {}).filter(([, v]) => v !== undefined && v !== null));
      await target.client.putObject({ key: entry.key, body: await bodyToBuffer(res.Body), metadata, contentType: res.ContentType });
    }
    return openDb(connectionString);
  };
}

/**
 * Fault injection where backups read objects and restores write them: the storage of s3db.js's
 * memory:// and file:// clients, under the client (they go past its metadata codec, raw-objects.ts).
 * A hook gets the key relative to the database's prefix and the call to make (or not). The
 * database's own reads and writes pass through the hooks too. Returns the function that puts the
 * storage back.
 */
export function hookStore(db: DatabaseLike, hooks: { get?: (key: string, read: () => Promise<unknown>) => Promise<unknown>; put?: (key: string, write: () => Promise<unknown>) => Promise<unknown> }): () => void {
  const client = db.client as unknown as { storage: { get(fullKey: string): Promise<unknown>; put(fullKey: string, params: unknown): Promise<unknown> }; _stripKeyPrefix(fullKey: string): string };
  const { storage } = client;
  const get = storage.get.bind(storage);
  const put = storage.put.bind(storage);
  if (hooks.get) storage.get = (fullKey) => hooks.get!(client._stripKeyPrefix(fullKey), () => get(fullKey));
  if (hooks.put) storage.put = (fullKey, params) => hooks.put!(client._stripKeyPrefix(fullKey), () => put(fullKey, params));
  return () => {
    storage.get = get;
    storage.put = put;
  };
}

/**
 * Fault injection (a real store cannot be made to fail on demand): makes every write of `key` to
 * `db`'s store fail, as a dropped connection would. Returns the function that puts the store back.
 */
export function failWritesOf(db: DatabaseLike, key: string): () => void {
  return hookStore(db, {
    put: (k, write) => {
      if (k === key) return Promise.reject(new Error(`injected: connection reset writing ${key}`));
      return write();
    },
  });
}
