/**
 * Repairing lost object indexes (recoverBackups(), after the manifests are back). A backup whose
 * index is missing, or has another size than recorded, is not restorable (the index drives the
 * restore plan), although every record is still in its parts. Per destination holding the backup,
 * the index a reader uses there (stored.ts indexRefAt: the manifest's, or a rebuilt one named by
 * `indexes/<id>.rebuilt.json`) is checked by size, and also by SHA-256 (read whole) where the
 * latest recorded verification of the backup failed (a same-size corrupt index is found only by
 * reading it; reading every index of every backup would cost as much as a verification of all of
 * them). A lacking one is put back:
 *
 * - copied: from another destination where it is whole (checked against its SHA-256 as it
 *   streams), with the reference naming it, if it is a rebuilt one;
 * - rebuilt, when no destination has it: derived from what the backup itself stores (FORMAT.md
 *   4.1): a full backup's index is one entry per record of its parts (tombstones excepted); an
 *   incremental's is its parent's index overlaid with its own parts: a record replaces the
 *   parent's entry, a tombstone removes it, and the parent's entries of a resource stored as
 *   logical records (filter/fields/limit) are dropped, as the backup dropped them. Backups are
 *   repaired oldest first, so a parent's index is back before its children need it.
 *
 * Then a quick verification (presence, sizes, SHA-256; with the chain the backup needs) is
 * recorded, replacing an earlier result that the lost index had failed (retention deletes backups
 * recorded as failing).
 *
 * Invariants:
 * - Manifests are never rewritten (processes cache them; copies at other destinations stay
 *   identical). A rebuilt index gets a new name per rebuild, is written whole first, and only then
 *   named by the reference (written at every destination holding the backup); a crash between the
 *   two leaves the backup as it was, and repair can run again. The index it replaces is deleted last.
 * - A rebuilt index is written only when it has exactly the number of entries the manifest records.
 * - Entries hold what the parts recorded: the key, the ETag and LastModified the source listed,
 *   and the stored size. For objects these are what the lost index held (an object rewritten while
 *   the backup read it aside: its stored size); for logical records the size is that of the stored
 *   JSON and LastModified is "" (the index held the object's; nothing compares them).
 * - Memory: one record and one parent entry at a time, streamed through the codec.
 * - An encrypted backup needs the passphrase; without it the backup is reported, never touched.
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { KeyHandle } from '../codec/index.js';
import { DestinationSet } from '../destinations/set.js';
import type { Destination } from '../destinations/types.js';
import { BackupError, errorMessage } from '../errors.js';
import type { ArchiveRecord } from './archive.js';
import type { Catalog } from './catalog.js';
import { groupOfKey, paths } from './layout.js';
import type { IndexEntry, Manifest } from './manifest.js';
import { EncodedSink } from './sink.js';
import { ProgressMeter, type ProgressEvent } from './progress.js';
import { mergeByKey } from './sorted-merge.js';
import { ChecksumTap, IndexLineWriter, indexAt, readIndex, readPartRecords, type IndexRef } from './stored.js';
import { holdersOf } from './verify.js';

export interface IndexRepair {
  id: string;
  action: 'copied' | 'rebuilt';
  /** Destinations the index was written to. */
  destinations: string[];
  /** The quick verification run afterwards, with the chain (recorded unless one begun later was; null: it could not run). */
  verified: boolean | null;
}

export interface IndexRepairReport {
  indexes: IndexRepair[];
  /** `lost`: the index could not be put back ('everywhere': no destination holds a good one, so the backup cannot be restored yet). */
  skipped: { id: string; path: string; destination: string; reason: string; lost?: 'everywhere' | 'here' }[];
}

export interface IndexRepairOptions {
  catalog: Catalog;
  set: DestinationSet;
  /** The key of an encrypted backup (throws ERR_PASSPHRASE_REQUIRED without a passphrase); null for a plain one. */
  keyFor: (manifest: Manifest) => Promise<KeyHandle | null>;
  /** Verifies (quick) and records the result, as verifyBackup() does; null when it could not run. */
  verify: (manifest: Manifest) => Promise<boolean | null>;
  /** Progress of a rebuild (phase 'repair'): records read from the parts. */
  onProgress?: (event: ProgressEvent) => void;
  /** Least time between two progress events (default 1 s). */
  progressIntervalMs?: number;
}

/** A destination holding the backup, and the index its readers use (stored.ts indexAt). */
interface Holding {
  member: Destination;
  ref: IndexRef;
}

/** Repairs the index of every committed backup that lacks it at a destination holding it. */
export async function repairIndexes(o: IndexRepairOptions): Promise<IndexRepairReport> {
  const report: IndexRepairReport = { indexes: [], skipped: [] };
  const manifests = (await o.catalog.list()).map((e) => e.manifest);
  manifests.sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : a.id < b.id ? -1 : 1));
  for (const manifest of manifests) {
    const good: Holding[] = [];
    const lacking: Holding[] = [];
    let unchecked: string | null = null;
    const suspects = await failedAt(o.catalog, manifest.id);
    for (const member of await holdersOf(manifest, o.set)) {
      try {
        const { ref, lacking: bySize } = await indexAt(member, manifest);
        const why = bySize ?? (suspects.has(member.label) ? await damageOf(member, ref) : null);
        (why === null ? good : lacking).push({ member, ref });
      } catch (err) {
        unchecked ??= `${member.label}: ${errorMessage(err)}`;
      }
    }
    if (lacking.length === 0) continue;
    const listed = manifest;
    const skip = (reason: string, lost?: 'everywhere' | 'here') => {
      for (const { member, ref } of lacking) report.skipped.push({ id: manifest.id, path: ref.path, destination: member.label, reason, ...(lost ? { lost } : {}) });
    };
    try {
      // the whole manifest (listings hold no part list): one backup at a time, memory bounded
      const manifest = await o.catalog.require(listed.id);
      let action: IndexRepair['action'];
      if (good.length > 0) {
        await copyIndex(manifest, good[0]!, lacking);
        action = 'copied';
      } else if (unchecked !== null) {
        skip(`the index is missing or damaged here and ${unchecked} could not be checked; run recoverBackups() again when it answers`);
        continue;
      } else {
        await rebuildIndex(o, manifest, lacking);
        action = 'rebuilt';
      }
      report.indexes.push({ id: manifest.id, action, destinations: lacking.map((h) => h.member.label), verified: await o.verify(manifest) });
    } catch (err) {
      skip(`the index is missing or damaged and could not be put back: ${errorMessage(err)}`, good.length > 0 ? 'here' : 'everywhere');
    }
  }
  return report;
}

/** Labels of the destinations where the latest recorded verification of `id` failed. */
async function failedAt(catalog: Catalog, id: string): Promise<Set<string>> {
  const latest = await catalog.latestVerification(id);
  return new Set((latest?.destinations ?? []).filter((d) => !d.verified).map((d) => d.label));
}

/**
 * Reads the index `ref` at `member` whole: null when it has its recorded SHA-256, else what is
 * wrong with it. Errors that say nothing about its bytes (access, I/O) are thrown: unchecked.
 */
async function damageOf(member: Destination, ref: IndexRef): Promise<string | null> {
  const discard = new Writable({ write: (_chunk: Buffer, _enc, cb) => cb() });
  try {
    await pipeline(await member.read(ref.path), new ChecksumTap(ref, member.label), discard);
    return null;
  } catch (err) {
    if (err instanceof BackupError && (err.code === 'ERR_PART_CHECKSUM' || err.code === 'ERR_PART_SIZE')) return err.message;
    throw err;
  }
}

/** Copies `from`'s index to each of `to`, with the reference naming it if it is a rebuilt one. */
async function copyIndex(manifest: Manifest, from: Holding, to: Holding[]): Promise<void> {
  const rebuilt = from.ref.path !== manifest.index.path;
  for (const { member, ref: replaced } of to) {
    const tap = new ChecksumTap(from.ref, from.member.label);
    const written = member.write(from.ref.path, tap).catch((err: unknown) => {
      tap.destroy(err as Error);
      throw err;
    });
    await Promise.all([pipeline(await from.member.read(from.ref.path), tap), written]);
    // a reference naming a lost rebuilt index goes, or names the copied one
    if (rebuilt) await member.write(paths.indexRef(manifest.id), referenceBody(manifest, from.ref));
    else await member.delete([paths.indexRef(manifest.id)]);
    if (replaced.path !== from.ref.path) await member.delete([replaced.path]);
  }
}

async function rebuildIndex(o: IndexRepairOptions, manifest: Manifest, holders: Holding[]): Promise<void> {
  const key = await o.keyFor(manifest);
  let parentIndex: AsyncIterable<IndexEntry> = none();
  if (manifest.parentId !== null) {
    const parent = await o.catalog.get(manifest.parentId);
    if (!parent) throw new BackupError('ERR_CHAIN_BROKEN', `its parent ${manifest.parentId} no longer exists, so an incremental's index cannot be rebuilt`);
    parentIndex = readIndex(o.set, parent, parent.encryption ? await o.keyFor(parent) : null);
  }
  const members = holders.map((h) => h.member);
  const target = new DestinationSet(members, 'all');
  const at = new Date();
  const path = paths.rebuiltIndex(manifest.id, at);
  const codec = { compression: manifest.codec.compression, level: manifest.codec.level ?? undefined, key: key ?? undefined, segmentSize: manifest.codec.segmentSize };
  const sink = new EncodedSink<IndexEntry>(target, path, new IndexLineWriter(), codec);
  const meter = new ProgressMeter(manifest.id, 'repair', manifest.parts.reduce((n, p) => n + p.objects, 0), o.onProgress, o.progressIntervalMs);
  let entries = 0;
  try {
    for await (const entry of rebuiltEntries(manifest, parentIndex, recordsOf(manifest, members, key, meter))) {
      await sink.write(entry);
      entries++;
    }
    if (entries !== manifest.index.entries) {
      throw new BackupError('ERR_INDEX_CORRUPT', `the parts give ${entries} index entries, the manifest records ${manifest.index.entries}; nothing was written`);
    }
  } catch (err) {
    await sink.abort(err instanceof Error ? err : new Error(String(err)));
    await target.delete([path]).catch(() => undefined); // whatever a destination kept of it
    throw err;
  }
  const stored = await sink.close();
  meter.finish();
  await target.write(paths.indexRef(manifest.id), referenceBody(manifest, { path, size: stored.size, sha256: stored.sha256, entries, rebuiltAt: at.toISOString() }));
  // the lost or damaged index each destination used before, no longer named
  for (const { member, ref } of holders) await member.delete([ref.path]).catch(() => undefined);
}

/** `indexes/<id>.rebuilt.json` (FORMAT.md 4.1). */
function referenceBody(manifest: Manifest, ref: IndexRef): Buffer {
  return Buffer.from(JSON.stringify({ format: 's3db-backup-index-ref', version: 1, id: manifest.id, ...ref }, null, 1));
}

/** The backup's records, part after part: parts are cut from one key-ordered stream, so this is key order. */
async function* recordsOf(manifest: Manifest, holders: Destination[], key: KeyHandle | null, meter: ProgressMeter): AsyncIterable<ArchiveRecord> {
  for (const part of [...manifest.parts].sort((a, b) => a.seq - b.seq)) {
    for await (const record of readPartRecords(holders, manifest, part, key)) {
      meter.add(1, record.body.length);
      yield record;
    }
  }
}

/** The index as the backup wrote it: the parent's entries overlaid with this backup's records. */
async function* rebuiltEntries(manifest: Manifest, parentIndex: AsyncIterable<IndexEntry>, records: AsyncIterable<ArchiveRecord>): AsyncIterable<IndexEntry> {
  const logical = new Set(Object.keys(manifest.selection.logical ?? {}));
  const steps = mergeByKey<IndexEntry, ArchiveRecord>(
    { items: parentIndex, key: (e) => e.k, name: `the index of ${String(manifest.parentId)}` },
    { items: records, key: (r) => r.header.key, name: `the parts of ${manifest.id}` },
  );
  for await (const { key, left: inherited, right: record } of steps) {
    if (record) {
      if (record.header.deleted) continue;
      const h = record.header;
      yield { k: h.key, e: h.etag ?? '', s: h.size, m: h.lastModified ?? '', b: manifest.id };
    } else if (inherited && !logical.has(groupOfKey(key))) {
      yield inherited;
    }
  }
}

async function* none<T>(): AsyncIterable<T> {}
