/**
 * Verification of a committed (or about to be committed) backup.
 *
 * - 'quick': every part and the index are present at the destination with the manifest's size and
 *   SHA-256 (reads every stored byte, decodes nothing).
 * - 'full': as quick, and every byte is decoded: every segment's GCM tag checked (encrypted
 *   backups), every compressed stream decompressed to its end, every archive parsed, and the record
 *   counts compared with the manifest; then the index is checked against the parts, and against
 *   its parent's index (index-consistency.ts): what a restore relies on, found before it writes.
 *
 * Each destination that holds the backup is checked on its own and reported; the backup counts as
 * verified when every object is good at one destination at least (restore falls back per object).
 * Only what the stored bytes show makes a result `verified: false` (damage, or an index and parts
 * that disagree, though whole: the backup was written so); an object that no destination
 * could even read (access, I/O) throws ERR_VERIFY_INCOMPLETE instead (see DAMAGE_CODES). Once an
 * object could not be read at a destination, no other is started there (each would wait out the
 * same timeouts: ~12 min per part on an S3 store that stopped answering, days for a backup of
 * thousands of parts); the rest count as not read there.
 * `goodSources` tells restore, per part, which destination passed. The index checked at each
 * destination is the one readers use there (stored.ts indexRefAt: a rebuilt one, if any).
 */
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { KeyHandle } from '../codec/index.js';
import type { DestinationSet } from '../destinations/set.js';
import { readText, type Destination } from '../destinations/types.js';
import { BackupError, errorMessage } from '../errors.js';
import { readArchive } from './archive.js';
import { authProblem } from './manifest-auth.js';
import { parseManifest, type Manifest, type VerificationResult } from './manifest.js';
import { ProgressMeter, type ProgressEvent } from './progress.js';
import { codecOf, indexLineKeys, indexRefAt, indexSource, openDecoded, preferredFirst, readIndex, readIndexBatches, readLineBatches, readPartRecords, readRanged, ChecksumTap, INDEX_REPAIR_HINT, type IndexRef, type StoredRef } from './stored.js';
import { disagreements, exactProblems, IndexTally, PartTally, tallyIndex, type IndexKeys, type Problems } from './index-consistency.js';
import { paths } from './layout.js';

export interface VerifyOutcome {
  result: VerificationResult;
  /** Part path (and `indexSource(id)` for the index) -> label of a destination where it verified. */
  goodSources: Map<string, string>;
  /** Each object that failed at a destination, with why (not recorded: the result's error sums them up). */
  failures: { label: string; path: string; error: string }[];
  /**
   * The objects checked that no destination holds whole (part paths, and `indexSource(id)` for
   * the index): damaged everywhere, since one no destination could read throws instead. Every
   * object when the manifest itself failed its authentication (nothing it names was read).
   */
  missing: string[];
}

/** An incremental's parent, to join its index with: its key, and where its index verified (read there first). */
export interface ParentRef {
  manifest: Manifest;
  key: KeyHandle | null;
  indexAt?: string;
}

export interface VerifyOptions {
  level: 'quick' | 'full';
  /** Groups whose parts (and index entries, 'full') are checked; null or absent: all. */
  groups?: Set<string> | null;
  /**
   * 'full', for an incremental: its parent and the parent's key, when the parent verified (its
   * index is joined with this one's, index-consistency.ts rules 4 and 5); absent, entries naming other
   * backups are only checked to be of the chain.
   */
  parent?: ParentRef | null;
  concurrency?: number;
  onProgress?: (event: ProgressEvent) => void;
  /** Least time between two progress events (default 1 s). */
  progressIntervalMs?: number;
}

/**
 * The destinations of `set` that hold `manifest`'s backup: those its manifest names as written
 * ('ok'), and those it does not name at all that hold its manifest: the same store configured
 * under another spelling (an endpoint through another host name or proxy, a directory mounted at
 * another path), whose good copy a restore must not pass over (walk-28 F2: it failed as damaged
 * with the good copy configured). A destination added since, which lacks it, costs one stat.
 * All of them when none does. Found once per manifest object and set for HOLDERS_KEPT_MS (a
 * restore asks per part).
 */
export function holdersOf(manifest: Pick<Manifest, 'id' | 'destinations'>, set: DestinationSet): Promise<Destination[]> {
  let bySet = holdersFound.get(manifest);
  if (!bySet) holdersFound.set(manifest, (bySet = new WeakMap()));
  let found = bySet.get(set);
  if (!found || Date.now() - found.at > HOLDERS_KEPT_MS) bySet.set(set, (found = { at: Date.now(), holders: findHolders(manifest, set) }));
  return found.holders;
}

const HOLDERS_KEPT_MS = 60_000;
const holdersFound = new WeakMap<object, WeakMap<DestinationSet, { at: number; holders: Promise<Destination[]> }>>();

async function findHolders(manifest: Pick<Manifest, 'id' | 'destinations'>, set: DestinationSet): Promise<Destination[]> {
  const named = new Set(manifest.destinations.map((d) => d.label));
  const ok = new Set(manifest.destinations.filter((d) => d.status === 'ok').map((d) => d.label));
  const holders: Destination[] = [];
  for (const member of set.members) {
    if (ok.has(member.label)) holders.push(member);
    else if (!named.has(member.label) && (await member.stat(paths.manifest(manifest.id)).catch(() => null))) holders.push(member);
  }
  return holders.length > 0 ? holders : set.members;
}

/**
 * Destinations where the manifest itself, or its copy beside the parts (what recoverBackups() puts
 * a lost or corrupt manifest back from), is missing, unreadable, or not this backup's manifest:
 * one copy fewer stands behind the backup there, though it still verifies and restores from
 * another. (A backup written before copies existed is checked for its manifest alone.)
 * `authentic`, given when the manifest verified is authenticated: each copy is judged by its own
 * authentication too (one edited at one destination names the same parts, other definitions).
 */
export async function damagedManifestCopies(
  manifest: Manifest,
  set: DestinationSet,
  authentic: ((copy: Manifest) => Promise<boolean>) | null = null,
): Promise<{ label: string; error: string }[]> {
  // the manifest itself at each destination that holds the backup (one was read: the others may differ), then its copy
  // what recoverBackups() does: it puts back what is missing or unreadable, never a readable
  // manifest or copy of this backup that differs (it cannot tell which of two was edited)
  const objects = [
    { path: paths.manifest(manifest.id), name: 'manifest', differs: 'differs from the one verified', mend: 'recoverBackups() puts it back from the copy beside the parts there', edited: 'delete it, and recoverBackups() puts it back from the copy beside the parts there' },
    ...(manifest.copy
      ? [{ path: manifest.copy, name: 'manifest copy', differs: "is not this backup's manifest", mend: 'recoverBackups() writes it back from the manifest there', edited: 'delete it, and recoverBackups() writes it back from the manifest there' }]
      : []),
  ];
  const out: { label: string; error: string }[] = [];
  for (const o of objects) {
    for (const member of await holdersOf(manifest, set)) {
      let problem: string | null = null;
      let edited = false;
      try {
        if (!(await member.stat(o.path))) problem = 'is missing';
        else {
          const copy = parseManifest(await readText(member, o.path), `${o.path} at ${member.label}`);
          edited = copy.id === manifest.id;
          if (!sameBackup(copy, manifest)) problem = o.differs;
          else if (authentic && !(await authentic(copy))) problem = 'does not authenticate under the backup\'s key (edited after its backup wrote it)';
        }
      } catch (err) {
        problem = `cannot be read (${errorMessage(err)})`;
      }
      if (problem) out.push({ label: member.label, error: `its ${o.name} ${o.path} ${problem}: ${edited ? o.edited : o.mend}` });
    }
  }
  return out;
}

/** Whether `other` describes the same backup, part for part, as `manifest`. */
function sameBackup(other: Partial<Manifest>, manifest: Manifest): boolean {
  return other.id === manifest.id && JSON.stringify(other.parts) === JSON.stringify(manifest.parts);
}

export async function verifyManifest(manifest: Manifest, set: DestinationSet, key: KeyHandle | null, options: VerifyOptions): Promise<VerifyOutcome> {
  // An edited manifest could point at other parts that all verify: it fails before any part is read.
  const forged = key ? await authProblem(manifest, key) : null;
  if (forged) {
    return {
      result: { verified: false, level: options.level, at: new Date().toISOString(), error: forged, destinations: (await holdersOf(manifest, set)).map((m) => ({ label: m.label, verified: false, error: forged })) },
      goodSources: new Map(),
      failures: [],
      missing: [...manifest.parts.filter((p) => options.groups == null || options.groups.has(p.group)).map((p) => p.path), indexSource(manifest.id)],
    };
  }
  const groups = options.groups ?? null;
  const parts = manifest.parts.filter((p) => groups === null || groups.has(p.group)).map((p) => ({ ...p, records: p.objects, id: p.path, at: manifest.parts.indexOf(p) }));
  // The index may be a rebuilt one at some destinations (indexRefAt): it is one object, whatever its path.
  const INDEX = indexSource(manifest.id);
  const ids = [...parts.map((p) => p.id), INDEX];
  const meter = new ProgressMeter(manifest.id, 'verify', ids.length, options.onProgress, options.progressIntervalMs);
  const goodSources = new Map<string, string>();
  const destinations: VerificationResult['destinations'] = [];
  // Objects that could not be read for a reason other than their bytes (access, I/O, network):
  // where (`at`), and, when not asked for there, the earlier request that failed (`after`).
  // Every destination that could not read it is kept (review-29 F6: the last one only was named).
  const unreadable = new Map<string, { path: string; err: unknown; at: string; after?: string }[]>();
  const cannotRead = (id: string, entry: { path: string; err: unknown; at: string; after?: string }) => unreadable.set(id, [...(unreadable.get(id) ?? []), entry]);
  const failures: VerifyOutcome['failures'] = [];
  // `${label} ${path}` of the failures that are damage (the stored bytes), not a read that failed
  const damagedAt = new Set<string>();
  // 'full': what each object held, from the first destination where it verified (the same bytes everywhere it does)
  const partTallies: PartTally[] = [];
  let indexTally: IndexTally | null = null;
  const check: CheckContext = { set, manifest, key, level: options.level, groups, parent: options.parent ?? null };
  for (const member of await holdersOf(manifest, set)) {
    const errors: { path: string; message: string }[] = [];
    // A reference that cannot be read says nothing about the index: that destination's index is unchecked.
    let index: IndexRef | null = null;
    // the first request this destination failed (an object, or the look for a rebuilt index), and how
    let unreachable: { what: string; err: unknown } | null = null;
    try {
      index = await indexRefAt(member, manifest);
    } catch (err) {
      // the reference to a rebuilt index is asked for before the index: named as what it is (walk-28 F6)
      const what = `the look for a rebuilt index of ${manifest.index.path} (${paths.indexRef(manifest.id)}, there only if one was made)`;
      cannotRead(INDEX, { path: manifest.index.path, err, at: member.label, after: what });
      errors.push({ path: paths.indexRef(manifest.id), message: `${paths.indexRef(manifest.id)} at ${member.label}: ${errorMessage(err)}` });
      if (!isDamage(err)) unreachable = { what, err };
    }
    const objects = index ? [...parts, { ...index, records: null, id: INDEX }] : parts;
    await pool(objects, options.concurrency ?? 2, async (ref) => {
      if (unreachable !== null) {
        cannotRead(ref.id, { path: ref.path, err: unreachable.err, at: member.label, after: unreachable.what });
        meter.add(1, ref.size);
        return;
      }
      try {
        const tally = await checkObject(check, member, ref);
        if (!goodSources.has(ref.id)) {
          goodSources.set(ref.id, member.label);
          if (tally instanceof IndexTally) indexTally = tally;
          else if (tally) partTallies.push(tally);
        }
      } catch (err) {
        if (!isDamage(err)) {
          cannotRead(ref.id, { path: ref.path, err, at: member.label });
          unreachable ??= { what: ref.path, err };
        }
        // Every error names the object it is about (codec errors alone say only "segment 0 ...").
        const message = errorMessage(err);
        errors.push({ path: ref.path, message: message.includes(ref.path) ? message : `${ref.path} at ${member.label}: ${message}` });
        if (isDamage(err)) damagedAt.add(`${member.label} ${ref.path}`);
      }
      meter.add(1, ref.size);
    });
    // in the backup's order, not as the reads settled: the same message every run
    const order = new Map(objects.map((ref, i) => [ref.path, i]));
    errors.sort((x, y) => (order.get(x.path) ?? -1) - (order.get(y.path) ?? -1));
    for (const e of errors) failures.push({ label: member.label, path: e.path, error: e.message });
    // the others, damaged or not read (an I/O failure says nothing about the bytes: review-29b G6)
    const rest = errors.slice(1);
    const more = [true, false]
      .map((damaged) => rest.filter((e) => damagedAt.has(`${member.label} ${e.path}`) === damaged).map((e) => e.path))
      .map((list, i) => (list.length === 0 ? '' : `and ${list.length} more ${i === 0 ? 'damaged' : 'not read'}: ${list.join(', ')}`))
      .filter(Boolean);
    const error = errors.length === 0 ? null : `${errors[0]!.message}${more.length > 0 ? ` (${more.join('; ')})` : ''}`;
    destinations.push({ label: member.label, verified: error === null, error });
  }
  meter.finish();
  const missing = ids.filter((id) => !goodSources.has(id));
  // Not one good copy, and at least one copy that could not be read: nothing is known about its
  // bytes, so this is thrown (and recorded nowhere) rather than reported as damage.
  const unknown = missing.map((id) => unreadable.get(id)).find((u) => u !== undefined);
  if (unknown) {
    const path = unknown[0]!.path;
    const where = unknown.map((u) => u.at);
    // what was not asked for, said once when it is the same everywhere; each failure after its destination's label, once
    const notAsked = (u: (typeof unknown)[number]) => (u.after && u.after !== u.path ? u.after : null);
    const sameNotAsked = where.length > 1 && unknown.every((u) => notAsked(u) !== null && notAsked(u) === notAsked(unknown[0]!));
    const how =
      (sameNotAsked ? `not asked for: ${notAsked(unknown[0]!)} failed there before: ` : '') +
      unknown
        .map((u) => {
          const message = errorMessage(u.err);
          const failure = where.length > 1 && message.startsWith(`${u.at}: `) ? message.slice(u.at.length + 2) : message;
          const before = !sameNotAsked && notAsked(u) ? `not asked for: ${notAsked(u)} failed there before, ` : '';
          return where.length > 1 ? `${u.at}: ${before}${failure}` : `${before}${failure}`;
        })
        .join('; ');
    // the copies that were read and found damaged: then waiting for those destinations is the only way (walk-28 F6)
    const damaged = failures.filter((f) => f.path === path && damagedAt.has(`${f.label} ${f.path}`) && !where.includes(f.label));
    const elsewhere = damaged.length === 0 ? '' : `; the ${damaged.length > 1 ? 'copies' : 'copy'} at ${damaged.map((f) => f.label).join(', ')} ${damaged.length > 1 ? 'fail' : 'fails'} (${damaged.map((f) => f.error).join('; ')}), so only ${where.join(' or ')} may hold a good one`;
    throw new BackupError(
      'ERR_VERIFY_INCOMPLETE',
      `could not verify backup ${manifest.id}: ${path} could not be read at ${where.join(', ')} (${how})${elsewhere}; nothing was recorded (a restore it ran for wrote nothing): once ${where.length > 1 ? 'one of them' : where[0]} can be read, run the same verification or restore again`,
      { cause: unknown[0]!.err },
    );
  }
  let error = missing.length === 0 ? null : destinations.map((d) => d.error).filter(Boolean).join('; ') || `${missing.length} objects failed`;
  if (missing.includes(INDEX)) error += `; ${INDEX_REPAIR_HINT}`;
  // Every object verified (whole, somewhere): do the index and the parts say the same?
  const disagree = missing.length === 0 && indexTally ? await consistencyProblems(check, partTallies, indexTally, goodSources) : null;
  if (disagree) error = `the index and the parts of backup ${manifest.id} disagree: ${disagree}. Its objects are as its backup wrote them, so nothing mends it: restore another backup (a restore of this one stops)`;
  return {
    result: { verified: error === null, level: options.level, at: new Date().toISOString(), error, destinations },
    goodSources,
    failures,
    missing,
  };
}

/**
 * Errors that say something about the stored bytes themselves (missing, wrong size or checksum,
 * failed authentication, undecodable, wrong count). Anything else (permissions, I/O, network,
 * an unknown failure) says nothing about the backup and must never mark it damaged: retention
 * deletes backups recorded as failing verification.
 */
const DAMAGE_CODES = new Set([
  'ERR_PART_SIZE', 'ERR_PART_CHECKSUM', 'ERR_PART_COUNT', 'ERR_INDEX_CORRUPT', 'ERR_DESTINATION_NOT_FOUND', 'ERR_DESTINATION_RANGE',
  'ERR_ARCHIVE_CORRUPT', 'ERR_ARCHIVE_TRUNCATED', 'ERR_BAD_HEADER', 'ERR_BAD_SEGMENT_LENGTH', 'ERR_COMPRESSION_MISMATCH', 'ERR_DECOMPRESS',
  'ERR_HEADER_TAMPERED', 'ERR_NOT_ENCRYPTED_STREAM', 'ERR_SEGMENT_AUTH', 'ERR_SEGMENT_ORDER', 'ERR_TRAILING_DATA', 'ERR_TRUNCATED',
  'ERR_TRUNCATED_HEADER', 'ERR_TRUNCATED_SEGMENT', 'ERR_UNSUPPORTED_VERSION', 'ERR_WRONG_KEY', 'ERR_STREAM_TOO_LONG',
]);

export function isDamage(err: unknown): boolean {
  return err instanceof BackupError && DAMAGE_CODES.has(err.code);
}

/** What checking one object needs, the same for a whole verification. */
interface CheckContext {
  set: DestinationSet;
  manifest: Manifest;
  key: KeyHandle | null;
  level: 'quick' | 'full';
  groups: Set<string> | null;
  parent: ParentRef | null;
}

/** Checks one part or the index at `member`; 'full' returns what it held (index-consistency.ts). */
async function checkObject(c: CheckContext, member: Destination, ref: StoredRef & { records: number | null; group?: string; at?: number }): Promise<PartTally | IndexTally | null> {
  const { manifest } = c;
  const stored = readRanged(member, ref);
  if (c.level === 'quick') {
    await pipeline(stored, new ChecksumTap(ref, member.label), discard());
    return null;
  }
  const decoded = openDecoded(stored, ref, member.label, codecOf(manifest, c.key));
  if (ref.records === null) {
    const where = `${ref.path} at ${member.label}`;
    const parent = c.parent ? { id: c.parent.manifest.id, batches: parentEntries(c.set, c.parent) } : null;
    let tally: IndexTally;
    try {
      tally = await tallyIndex(manifest, indexEntries(decoded, where), parent, c.groups);
    } catch (err) {
      if (!(parent && err instanceof BackupError && err.code === 'ERR_PARENT_INDEX')) throw err;
      // The parent's index verified, yet could not be read now (at the destination where it did,
      // or any other): this index is checked as when the parent is not (its entries naming other
      // backups only checked to be of the chain), rather than made to look unreadable here.
      tally = await tallyIndex(manifest, indexEntries(openDecoded(readRanged(member, ref), ref, member.label, codecOf(manifest, c.key)), where), null, c.groups);
    }
    if (tally.entries !== manifest.index.entries) {
      throw new BackupError('ERR_INDEX_CORRUPT', `${ref.path} at ${member.label} has ${tally.entries} index entries, the manifest says ${manifest.index.entries}`);
    }
    return tally;
  }
  const tally = new PartTally({ path: ref.path, group: ref.group!, at: ref.at! }, Boolean(manifest.encryption));
  let records = 0;
  for await (const record of readArchive(decoded, `${ref.path} at ${member.label}`)) {
    records++;
    tally.add(record.header);
  }
  if (records !== ref.records) {
    throw new BackupError('ERR_PART_COUNT', `${ref.path} at ${member.label} holds ${records} objects, the manifest says ${ref.records}`);
  }
  return tally;
}

/**
 * What index-consistency.ts finds wrong between the backup's index and its parts (null: nothing),
 * with the groups whose summed-up keys differ checked exactly: their parts read again, from where
 * they verified, joined with the index. A read that fails then says nothing about the backup:
 * ERR_VERIFY_INCOMPLETE, as for any object that could not be read.
 */
async function consistencyProblems(c: CheckContext, parts: PartTally[], index: IndexTally, goodSources: Map<string, string>): Promise<string | null> {
  const { manifest, set, key } = c;
  const { problems, inexact } = disagreements(manifest, parts, index, c.groups);
  for (const { group, droppedUnrecorded } of inexact) {
    // a part of it out of key order fails it already, and cannot be read again in order
    if (parts.some((p) => p.part.group === group && p.unordered)) continue;
    const records = async function* () {
      for (const part of manifest.parts.filter((p) => p.group === group)) {
        const holders = preferredFirst(await holdersOf(manifest, set), goodSources.get(part.path));
        for await (const record of readPartRecords(holders, manifest, part, key)) yield record.header;
      }
    };
    let exact: Problems;
    try {
      exact = await exactProblems(manifest, group, records(), readIndex(set, manifest, key, { preferred: goodSources.get(indexSource(manifest.id)) }));
    } catch (err) {
      throw new BackupError('ERR_VERIFY_INCOMPLETE', `could not verify backup ${manifest.id}: reading its parts of '${group}' again, to check them against its index, failed (${errorMessage(err)}); nothing was recorded (a restore it ran for wrote nothing): once the destination can be read, run the same verification or restore again`, { cause: err });
    }
    problems.addAll(exact);
    if (exact.empty && droppedUnrecorded) problems.add(droppedUnrecorded);
  }
  return problems.empty ? null : problems.toString();
}

/** The keys and holders of an index being verified, a decoded chunk's worth at a time (a line that is not an entry is damage: ERR_INDEX_CORRUPT). */
async function* indexEntries(decoded: Readable, where: string): AsyncIterable<IndexKeys[]> {
  for await (const lines of readLineBatches(decoded)) {
    const entries: IndexKeys[] = [];
    for (const line of lines) {
      if (line === '') continue;
      let entry: IndexKeys;
      try {
        entry = indexLineKeys(line);
      } catch {
        throw new BackupError('ERR_INDEX_CORRUPT', `${where} holds a line that is not an index entry`);
      }
      if (typeof entry.k !== 'string' || typeof entry.b !== 'string') throw new BackupError('ERR_INDEX_CORRUPT', `${where} holds a line that is not an index entry`);
      entries.push(entry);
    }
    yield entries;
  }
}

/**
 * The parent's index, to join with, read first where it verified: a failure to read it says
 * nothing about the backup being verified (checkObject then checks without it).
 */
async function* parentEntries(set: DestinationSet, parent: ParentRef): AsyncIterable<IndexKeys[]> {
  try {
    yield* readIndexBatches(set, parent.manifest, parent.key, { preferred: parent.indexAt }, indexLineKeys);
  } catch (err) {
    throw new BackupError('ERR_PARENT_INDEX', `the index of its parent ${parent.manifest.id}, to check its own against, could not be read: ${errorMessage(err)}`, { cause: err });
  }
}

function discard(): Writable {
  return new Writable({ write: (_chunk, _enc, cb) => cb() });
}

/** Runs `fn` over `items` with at most `concurrency` at once. */
export async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  });
  await Promise.all(workers);
}
