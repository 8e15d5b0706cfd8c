/**
 * Repairing lost object indexes (recoverBackups(), after the manifests are back): a backup whose
 * index is missing, or has another size than its manifest records, at every destination that holds
 * the backup is not restorable (the index drives the restore plan), although every record is still
 * in its parts. This module puts the index back:
 *
 * - copied: when another destination holding the backup has the index with the recorded size, its
 *   bytes are copied (checked against the manifest's SHA-256 as they stream; nothing else changes);
 * - rebuilt: otherwise the index is derived from what the backup itself stores (FORMAT.md 4):
 *   a full backup's index is one entry per record of its parts (tombstones excepted); an
 *   incremental's is its parent's index overlaid with its own parts: a record replaces the parent's
 *   entry, a tombstone removes it, and the parent's entries of a resource stored as logical
 *   records (filter/fields/limit) are dropped, as the backup dropped them. Backups are repaired
 *   oldest first, so a parent's index is back before its children need it.
 *
 * Invariants:
 * - A rebuilt index is written only when it has exactly the number of entries the manifest
 *   records; then the manifest (its copy first, then manifests/<id>.json, the same bytes) gets
 *   the new index's path, size and SHA-256 and `index.rebuiltAt`. The rebuilt index goes to the
 *   other of two paths (layout.ts rebuiltIndex), never over the one the manifest names, so a crash
 *   between the index and the manifest leaves the backup as it was, and repair can run again.
 * - Entries hold what the parts recorded: the key, the ETag and LastModified the source listed,
 *   and the stored size (a logical record has no LastModified: ""). They can differ from the lost
 *   index only for an object rewritten while it was read, whose next incremental then stores it
 *   again (a changed ETag), as it would have.
 * - Memory: one record and one parent entry at a time, streamed through the codec.
 * - An encrypted backup needs the passphrase; without it the backup is reported, never touched.
 */
import { pipeline } from 'node:stream/promises';
import type { KeyHandle } from '../codec/index.js';
import { DestinationSet } from '../destinations/set.js';
import type { Destination } from '../destinations/types.js';
import { BackupError, errorMessage } from '../errors.js';
import type { ArchiveRecord } from './archive.js';
import type { Catalog } from './catalog.js';
import { DATABASE_GROUP, paths, resourceOfKey } from './layout.js';
import type { IndexEntry, Manifest } from './manifest.js';
import { EncodedSink } from './sink.js';
import { mergeByKey } from './sorted-merge.js';
import { ChecksumTap, IndexLineWriter, readIndex, readPartRecords } from './stored.js';
import { holdersOf } from './verify.js';

export interface IndexRepair {
  id: string;
  action: 'copied' | 'rebuilt';
  /** Destinations the index was written to. */
  destinations: string[];
}

export interface IndexRepairReport {
  indexes: IndexRepair[];
  skipped: { id: string; path: string; destination: string; reason: string }[];
}

export interface IndexRepairOptions {
  catalog: Catalog;
  set: DestinationSet;
  /** The key of an encrypted backup (throws ERR_PASSPHRASE_REQUIRED without a passphrase); null for a plain one. */
  keyFor: (manifest: Manifest) => Promise<KeyHandle | null>;
}

/** Repairs the index of every committed backup that lacks it at a destination holding it. */
export async function repairIndexes(o: IndexRepairOptions): Promise<IndexRepairReport> {
  const report: IndexRepairReport = { indexes: [], skipped: [] };
  const manifests = (await o.catalog.list()).map((e) => e.manifest);
  manifests.sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : a.id < b.id ? -1 : 1));
  for (const manifest of manifests) {
    const holders = holdersOf(manifest, o.set);
    const good: Destination[] = [];
    const lacking: Destination[] = [];
    let unchecked: string | null = null;
    for (const member of holders) {
      try {
        const info = await member.stat(manifest.index.path);
        (info?.size === manifest.index.size ? good : lacking).push(member);
      } catch (err) {
        unchecked ??= `${member.label}: ${errorMessage(err)}`;
      }
    }
    if (lacking.length === 0) continue;
    const skip = (reason: string) => {
      for (const member of lacking) report.skipped.push({ id: manifest.id, path: manifest.index.path, destination: member.label, reason });
    };
    try {
      if (good.length > 0) {
        await copyIndex(manifest, good[0]!, lacking);
        report.indexes.push({ id: manifest.id, action: 'copied', destinations: lacking.map((m) => m.label) });
      } else if (unchecked !== null) {
        skip(`the index is missing here and ${unchecked} could not be checked; run recoverBackups() again when it answers`);
      } else {
        await rebuildIndex(o, manifest, holders);
        report.indexes.push({ id: manifest.id, action: 'rebuilt', destinations: holders.map((m) => m.label) });
      }
    } catch (err) {
      skip(`the index is missing or damaged and could not be put back: ${errorMessage(err)}`);
    }
  }
  return report;
}

/** Copies the index from `from` to each of `to`; a copy whose bytes fail the manifest's checksum is not kept. */
async function copyIndex(manifest: Manifest, from: Destination, to: Destination[]): Promise<void> {
  for (const member of to) {
    const tap = new ChecksumTap(manifest.index, from.label);
    const source = await from.read(manifest.index.path);
    await Promise.all([pipeline(source, tap), member.write(manifest.index.path, tap)]);
  }
}

async function rebuildIndex(o: IndexRepairOptions, manifest: Manifest, holders: Destination[]): Promise<void> {
  const key = await o.keyFor(manifest);
  let parentIndex: AsyncIterable<IndexEntry> = none();
  if (manifest.parentId !== null) {
    const parent = await o.catalog.get(manifest.parentId);
    if (!parent) throw new BackupError('ERR_CHAIN_BROKEN', `its parent ${manifest.parentId} no longer exists, so an incremental's index cannot be rebuilt`);
    parentIndex = readIndex(o.set, parent, parent.encryption ? await o.keyFor(parent) : null);
  }
  const target = new DestinationSet(holders, 'all');
  const path = paths.rebuiltIndex(manifest.id, manifest.index.path);
  const codec = { compression: manifest.codec.compression, level: manifest.codec.level ?? undefined, key: key ?? undefined, segmentSize: manifest.codec.segmentSize };
  const sink = new EncodedSink<IndexEntry>(target, path, new IndexLineWriter(), codec);
  let entries = 0;
  try {
    for await (const entry of rebuiltEntries(manifest, parentIndex, recordsOf(manifest, holders, key))) {
      await sink.write(entry);
      entries++;
    }
    if (entries !== manifest.index.entries) {
      throw new BackupError('ERR_INDEX_CORRUPT', `the parts give ${entries} index entries, the manifest records ${manifest.index.entries}; nothing was written`);
    }
  } catch (err) {
    await sink.abort(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
  const stored = await sink.close();
  const repaired: Manifest = { ...manifest, index: { path, size: stored.size, sha256: stored.sha256, entries, rebuiltAt: new Date().toISOString() } };
  await o.catalog.rewrite(repaired, holders);
  await target.delete([manifest.index.path]).catch(() => undefined); // the damaged one, if any; no longer named
}

/** The backup's records, part after part: parts are cut from one key-ordered stream, so this is key order. */
async function* recordsOf(manifest: Manifest, holders: Destination[], key: KeyHandle | null): AsyncIterable<ArchiveRecord> {
  for (const part of [...manifest.parts].sort((a, b) => a.seq - b.seq)) yield* readPartRecords(holders, manifest, part, key);
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
    } else if (inherited && !logical.has(resourceOfKey(key) ?? DATABASE_GROUP)) {
      yield inherited;
    }
  }
}

async function* none<T>(): AsyncIterable<T> {}
