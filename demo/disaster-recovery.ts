/**
 * `npm run demo`: the 3 AM story, end to end, on an embedded s3db database (file://), no cloud account.
 *
 *  1. Builds a realistic database: users (secret passwords, timestamps, partitions), orders,
 *     events with large bodies, api keys (secrets). Records are created through s3db.js itself
 *     (in memory, where it is fast) and written to the file:// database object for object.
 *  2. Takes an encrypted, compressed, verified backup to ./backups.
 *  3. Corrupts the database: s3db.json overwritten with garbage, a few thousand records deleted.
 *  4. Lists the backups (from the destination alone), restores into a FRESH database, and proves it
 *     equal to the pre-disaster database object for object (key, metadata, content type, body).
 *  5. Prints timings: backup time, restore time (the RTO), sizes.
 *
 * Options: --records N (default 100000), --keep (leave ./demo-data in place).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { S3db } from 's3db.js';
import { BackupPlugin } from '../src/index.js';
import { mulberry32 } from '../benches/corpus.js';
import { activeImplementation, nativeVersion } from '../src/codec/index.js';
import { unitOf } from '../src/cli/progress.js';
import type { ProgressEvent } from '../src/engine/progress.js';
import { bodyToBuffer, listObjects, mapOrdered, type DatabaseLike } from '../src/engine/s3db.js';

const { values } = parseArgs({ options: { records: { type: 'string', default: '100000' }, keep: { type: 'boolean', default: false } } });
const RECORDS = Number(values.records);
if (!Number.isInteger(RECORDS) || RECORDS < 100) throw new Error('--records must be an integer >= 100');

const root = path.resolve('demo-data');
const backups = path.resolve('backups');
const productionUrl = `file://${path.join(root, 'production')}`;
const restoredUrl = `file://${path.join(root, 'restored')}`;
const fingerprintFile = path.join(root, 'pre-disaster.fingerprints');
const DB_PASSPHRASE = 'demo-database-secret';
const BACKUP_PASSPHRASE = process.env.BACKUP_PASSPHRASE ?? 'demo-backup-passphrase (set BACKUP_PASSPHRASE in real life)';

const t0 = Date.now();
const say = (msg: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${msg}`);
const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

async function open(url: string): Promise<S3db & DatabaseLike> {
  const db = new S3db({ connectionString: url, security: { passphrase: DB_PASSPHRASE }, logLevel: 'silent' } as ConstructorParameters<typeof S3db>[0]);
  await db.connect();
  return db as S3db & DatabaseLike;
}

async function buildDatabase(): Promise<void> {
  const rand = mulberry32(42);
  const mem = await open(`memory://demo-build-${process.pid}/app`);
  const users = await mem.createResource({
    name: 'users',
    attributes: { name: 'string', email: 'string', plan: 'string', country: 'string', bio: 'string|optional' },
    timestamps: true,
    partitions: { byPlan: { fields: { plan: 'string' } } },
  });
  const orders = await mem.createResource({ name: 'orders', attributes: { userId: 'string', total: 'number', status: 'string', items: 'number' } });
  const events = await mem.createResource({ name: 'events', attributes: { type: 'string', payload: 'string' }, timestamps: true, behavior: 'body-overflow' });
  const apiKeys = await mem.createResource({ name: 'apiKeys', attributes: { owner: 'string', secret: 'secret', scope: 'string' }, timestamps: true });
  const nUsers = Math.round(RECORDS * 0.1);
  const nEvents = Math.round(RECORDS * 0.05);
  const nKeys = Math.min(200, Math.round(RECORDS * 0.002));
  const nOrders = RECORDS - nUsers - nEvents - nKeys;
  const plans = ['free', 'pro', 'team', 'enterprise'];
  const countries = ['BR', 'US', 'DE', 'JP', 'IN', 'FR'];
  const batch = async (n: number, make: (i: number) => Record<string, unknown>, into: { insertMany(items: unknown[]): Promise<unknown> }) => {
    for (let start = 0; start < n; start += 5000) await into.insertMany(Array.from({ length: Math.min(5000, n - start) }, (_, k) => make(start + k)));
  };
  await batch(nUsers, (i) => ({ id: `user-${i}`, name: `User ${i}`, email: `user${i}@taskflow.example`, plan: plans[Math.floor(rand() * 4)], country: countries[i % 6], bio: i % 20 === 0 ? 'Loves project management. '.repeat(60) : undefined }), users);
  await batch(nOrders, (i) => ({ id: `order-${i}`, userId: `user-${Math.floor(rand() * nUsers)}`, total: Math.round(rand() * 100000) / 100, status: rand() < 0.8 ? 'completed' : 'pending', items: 1 + Math.floor(rand() * 9) }), orders);
  await batch(nEvents, (i) => ({ id: `event-${i}`, type: ['login', 'task.created', 'task.done', 'comment'][i % 4], payload: JSON.stringify({ n: i, text: 'Lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(4 + (i % 40)) }) }), events);
  for (let i = 0; i < nKeys; i++) await apiKeys.insert({ id: `key-${i}`, owner: `user-${i}`, secret: `sk_live_${createHash('sha256').update(String(i)).digest('hex')}`, scope: 'read:write' });
  say(`created ${RECORDS.toLocaleString()} records through s3db.js (users ${nUsers}, orders ${nOrders}, events ${nEvents}, apiKeys ${nKeys})`);

  const production = await open(productionUrl);
  const keys: string[] = [];
  for await (const e of listObjects(mem.client)) keys.push(e.key);
  // Fingerprint every object as it is written: the proof at the end compares the restored
  // database with exactly what production held before the disaster.
  const prints = new Array<string>(keys.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < keys.length) {
        const i = next++;
        const key = keys[i]!;
        const o = await mem.client.getObject(key);
        const body = await bodyToBuffer(o.Body);
        // fingerprint first: s3db's putObject may rewrite the metadata object it is handed
        prints[i] = `${key}\t${fingerprintOf(o.Metadata, o.ContentType, body)}`;
        await production.client.putObject({ key, metadata: { ...o.Metadata }, body, contentType: o.ContentType });
      }
    }),
  );
  await writeFile(fingerprintFile, `${prints.join('\n')}\n`);
  say(`wrote ${keys.length.toLocaleString()} objects to the file:// production database`);
  await production.disconnect();
  await mem.disconnect();
}

/** sha256 over an object's metadata (sorted), content type and body. */
function fingerprintOf(metadata: Record<string, string> | undefined, contentType: string | undefined, body: Buffer): string {
  // An S3 object cannot hold an undefined metadata value (s3db's memory client keeps the key, stores drop it)
  const meta = Object.entries(metadata ?? {})
    .filter(([, v]) => v !== undefined && v !== null)
    .sort(([x], [y]) => (x < y ? -1 : 1));
  return createHash('sha256').update(JSON.stringify([meta, contentType ?? null])).update(body).digest('hex');
}

async function fingerprint(db: DatabaseLike, key: string): Promise<string> {
  const o = await db.client.getObject(key);
  return fingerprintOf(o.Metadata, o.ContentType, await bodyToBuffer(o.Body));
}

/** "key<TAB>fingerprint" for every object, in key order, 64 reads in flight. */
function fingerprints(db: DatabaseLike): AsyncIterable<string> {
  return mapOrdered(listObjects(db.client), 64, async (e) => `${e.key}\t${await fingerprint(db, e.key)}`);
}

/** Compares a database with a fingerprint file, object for object. */
async function compareWith(db: DatabaseLike, file: string): Promise<{ objects: number; differences: string[] }> {
  const differences: string[] = [];
  const lines = createInterface({ input: createReadStream(file) })[Symbol.asyncIterator]();
  let objects = 0;
  for await (const actual of fingerprints(db)) {
    const line = await lines.next();
    const key = actual.split('\t')[0];
    if (line.done) {
      differences.push(`extra object ${key}`);
      break;
    }
    if (line.value.split('\t')[0] !== key) {
      differences.push(`expected ${line.value.split('\t')[0]}, found ${key}`);
      break;
    }
    if (line.value !== actual) differences.push(`content differs: ${key}`);
    objects++;
    if (differences.length > 10) break;
  }
  const rest = await lines.next();
  if (!rest.done) differences.push(`missing object ${rest.value.split('\t')[0]}`);
  return { objects, differences };
}

async function main(): Promise<void> {
  console.log(`s3db-backup demo: ${RECORDS.toLocaleString()} records, codec ${activeImplementation()}${nativeVersion() ? ` (native core ${nativeVersion()})` : ''}\n`);
  await rm(root, { recursive: true, force: true });
  await rm(backups, { recursive: true, force: true });
  await mkdir(root, { recursive: true });

  say('1. building the production database (file://demo-data/production)');
  await buildDatabase();

  say('2. hourly backup runs: full, gzip, AES-256-GCM, verified, to ./backups');
  const production = await open(productionUrl);
  const plugin = new BackupPlugin({
    driver: 'filesystem',
    config: { directory: backups },
    schedule: false,
    compression: 'gzip',
    encryption: { enabled: true, passphrase: BACKUP_PASSPHRASE },
    verify: true,
    retention: { policy: 'gfs', hourly: 24, daily: 7, weekly: 4, monthly: 12 },
  });
  showProgress(plugin);
  await production.usePlugin(plugin);
  const backupStart = Date.now();
  const backup = await plugin.createBackup({ reason: 'hourly', metadata: { app: 'taskflow', records: RECORDS } });
  const backupMs = Date.now() - backupStart;
  say(`   backup ${backup.id}: ${backup.objects.toLocaleString()} objects, ${backup.records.toLocaleString()} records, ${mb(backup.size)} stored, verified=${backup.verified}, ${(backupMs / 1000).toFixed(1)} s`);
  await plugin.stop();
  await production.disconnect();

  say('3. 2:47 AM: corruption. s3db.json is garbage and 2,000 orders are gone');
  const broken = await open(productionUrl);
  await broken.client.putObject({ key: 's3db.json', body: Buffer.from('{"version": "1", "resources": {"users": {"currentVer'), contentType: 'application/json' });
  const victims: string[] = [];
  for await (const e of listObjects(broken.client, { prefix: 'resource=orders/' })) if (victims.length < 2000) victims.push(e.key);
  await broken.client.deleteObjects(victims);
  await broken.disconnect();

  say('4. 3:05 AM: a fresh plugin (nothing shared with the first one), an empty database, the destination and the passphrase');
  const fresh = await open(restoredUrl);
  const recovery = new BackupPlugin({ config: { directory: backups }, schedule: false, encryption: { passphrase: BACKUP_PASSPHRASE } });
  showProgress(recovery);
  await fresh.usePlugin(recovery);
  const list = await recovery.listBackups({ limit: 24 });
  for (const b of list) say(`   found ${b.id}  ${b.timestamp}  ${b.type}  ${mb(b.size)}  verified=${b.verified}`);
  const good = list.find((b) => b.verified)!;
  const restoreStart = Date.now();
  const report = await recovery.restore({ backupId: good.id, destination: 'production', verify: true });
  const restoreMs = Date.now() - restoreStart;
  const users = fresh.resources.users as unknown as { count(): Promise<number>; get(id: string): Promise<{ email: string }> };
  const keys = fresh.resources.apiKeys as unknown as { get(id: string): Promise<{ secret: string }> };
  say(`   restored ${report.objectsWritten.toLocaleString()} objects in ${(restoreMs / 1000).toFixed(1)} s (${Math.round(report.objectsPerSecond).toLocaleString()} objects/s)`);
  say(`   users.count() = ${(await users.count()).toLocaleString()}; apiKeys secret decrypts: ${(await keys.get('key-0')).secret.slice(0, 16)}...`);

  say('5. proving the restored database equal to the pre-disaster one, object for object');
  const { objects, differences } = await compareWith(fresh, fingerprintFile);
  await writeFile(path.join(root, 'report.json'), JSON.stringify({ backup, restore: report, backupMs, restoreMs, objects, differences }, null, 2));
  console.log('');
  if (differences.length > 0) {
    console.log(`FAILED: ${differences.length} differences, e.g. ${differences.slice(0, 3).join('; ')}`);
    process.exitCode = 1;
  } else {
    console.log(`OK: ${objects.toLocaleString()} objects identical (keys, metadata, content types, bodies).`);
  }
  console.log(`Backup: ${(backupMs / 1000).toFixed(1)} s for ${backup.records.toLocaleString()} records, ${mb(backup.size)} stored (encrypted, gzip).`);
  console.log(`Restore (RTO): ${(restoreMs / 1000).toFixed(1)} s, verification included.`);
  console.log(`Total: ${((Date.now() - t0) / 1000).toFixed(1)} s. Report: demo-data/report.json`);
  await recovery.stop();
  await fresh.disconnect();
  if (!values.keep) await rm(root, { recursive: true, force: true });
}

/** Prints a plugin's progress (backup, verify, restore) at most every 5 s. */
function showProgress(plugin: BackupPlugin): void {
  let last = 0;
  plugin.on('plg:backup:progress', (p: ProgressEvent) => {
    if (Date.now() - last > 5000) {
      last = Date.now();
      say(`   ${p.phase}: ${p.objects.toLocaleString()} ${unitOf(p)} (${Math.round(p.objectsPerSecond).toLocaleString()}/s)`);
    }
  });
}

await main();
