/**
 * An incremental's read of its parent's object index, and what a copy of it that fails costs.
 *
 * Planning merge-joins the parent's index with the database listing as both stream (backup.ts
 * planActions), so a copy found damaged, at its end (its SHA-256) or midway (a line out of order
 * or not an entry, a stream that does not decode), has already steered the plan: the incremental
 * is planned again, whole, from the next destination whose copy is read whole first and passes
 * its SHA-256 (readingParentIndex). When every copy is damaged, the parent cannot be restored as
 * it is either: that is recorded as its latest verification (the verdict a quick verification
 * would reach: its bytes are not the ones written), so the next backup is a full one,
 * listBackups() shows the parent failing, and recoverBackups() puts its index back (index-repair.ts
 * reads an index whole where the latest verification failed). An index whose bytes ARE the ones
 * written (its SHA-256 passes) yet out of order or not entries was written so: every copy holds
 * it, nothing mends it, and it is recorded as a full verification would record it.
 *
 * Invariants:
 * - An attempt that fails has tried to delete what it wrote (runBackup) before the next begins;
 *   if it could not, none begins (its pending marker, left, has the next backup's cleanup do it).
 *   Every attempt has the id the caller announced.
 * - Each destination's copy fails at most one attempt: later attempts pass over it.
 * - Only what a copy's bytes show is recorded: a copy that could not be read (the store did not
 *   answer, at any step) makes the backup fail without a record, as verification does
 *   (ERR_VERIFY_INCOMPLETE); the next incremental tries again.
 * - An encrypted parent's object keys are never in what is recorded or logged (described()).
 */
import type { KeyHandle } from '../codec/index.js';
import type { DestinationSet } from '../destinations/set.js';
import type { Destination } from '../destinations/types.js';
import { BackupError, errorMessage } from '../errors.js';
import type { IndexEntry, Manifest, VerificationResult } from './manifest.js';
import type { RecordOutcome } from './catalog.js';
import { ordered } from './sorted-merge.js';
import { indexCopyFault, nextWholeIndex, readIndex, INDEX_REPAIR_HINT } from './stored.js';
import { holdersOf, isDamage } from './verify.js';

/** How one destination's copy of the parent's index failed. */
export interface ParentIndexFailure {
  label: string;
  error: string;
  /**
   * 'damaged': its bytes are not the ones written; 'as-written': they are (its SHA-256 passes),
   * yet its lines are out of order or not entries; 'unread': it could not be read, which says
   * nothing of the copy.
   */
  kind: 'damaged' | 'as-written' | 'unread';
}

/**
 * The parent's index as planning reads it: from `set`'s members but those in `passOver`
 * (`preferred` first), in strict key order. A failure once a copy is open is an ERR_PARENT_INDEX
 * whose details hold a ParentIndexFailure (`parentIndex`); `opened` hears where the copy is read.
 */
export async function* parentIndexEntries(
  set: DestinationSet,
  parent: Manifest,
  key: KeyHandle | null,
  reading: { preferred: string | undefined; passOver: readonly string[]; opened: (label: string) => void },
): AsyncIterable<IndexEntry> {
  let at: Destination | null = null;
  const from = { members: set.members.filter((m) => !reading.passOver.includes(m.label)) };
  const entries = readIndex(from, parent, key, {
    preferred: reading.preferred,
    opened: (label) => {
      at = from.members.find((m) => m.label === label) ?? null;
      reading.opened(label);
    },
  });
  try {
    yield* ordered({ items: entries, key: (e) => e.k, name: `the object index of ${parent.id} (the parent backup)` });
  } catch (err) {
    const member = at as Destination | null;
    if (member === null) throw new BackupError('ERR_PARENT_INDEX', `the object index of ${parent.id}, which this incremental is planned against, could not be read: ${errorMessage(err)}`, { cause: err });
    const failure: ParentIndexFailure = { label: member.label, error: described(err, Boolean(parent.encryption)), kind: await kindOf(err, member, parent) };
    throw new BackupError('ERR_PARENT_INDEX', `the object index of ${parent.id}, which this incremental is planned against, could not be read at ${member.label}: ${failure.error}`, { cause: err, details: { parentIndex: failure } });
  }
}

/** Lines out of order or not entries (or not as many as recorded: stored.ts indexEntry, readIndexBatches): the bytes may yet be as written. */
function aboutLines(err: unknown): boolean {
  return err instanceof BackupError && (err.code === 'ERR_KEY_ORDER' || err.code === 'ERR_INDEX_CORRUPT');
}

/** What a failed read of `member`'s copy says of it; lines that fail are told apart by reading the copy whole against its SHA-256. */
async function kindOf(err: unknown, member: Destination, parent: Manifest): Promise<ParentIndexFailure['kind']> {
  if (aboutLines(err)) {
    const copy = await indexCopyFault(member, parent);
    return copy === null ? 'as-written' : copy.kind;
  }
  return isDamage(err) ? 'damaged' : 'unread';
}

/**
 * What a failed read says. Of an encrypted backup's index, without the object keys the order
 * check quotes: it may be recorded (verifications/<id>.json is plaintext) and logged. (A line that
 * is not an entry is told without its text: stored.ts indexEntry.)
 */
function described(err: unknown, encrypted: boolean): string {
  if (encrypted && err instanceof BackupError && err.code === 'ERR_KEY_ORDER') return 'its entries are not in key order';
  return errorMessage(err);
}

/** The ParentIndexFailure an error carries, if it is a failed read of the parent's index at a destination. */
function failureOf(err: unknown): ParentIndexFailure | null {
  if (!(err instanceof BackupError && err.code === 'ERR_PARENT_INDEX')) return null;
  return (err.details.parentIndex as ParentIndexFailure | undefined) ?? null;
}

export interface ParentIndexFallback {
  parent: Manifest | null;
  set: DestinationSet;
  signal?: AbortSignal | undefined;
  warn?: ((message: string) => void) | undefined;
  /** Records `result` as the parent's latest verification (Catalog.recordVerification). */
  record: (backupId: string, result: VerificationResult) => Promise<RecordOutcome>;
}

/** Which destinations' copies an attempt passes over, and which it reads first. */
export interface ParentIndexReading {
  passOver: string[];
  preferred?: string;
}

/**
 * Runs `attempt` (a whole backup) until it succeeds, or fails otherwise than reading the parent's
 * index, or no other destination's copy passes its SHA-256 (each is read whole before the backup
 * is planned again on it: a failed attempt costs a whole backup). Then records what every copy's
 * bytes showed, if they all showed it, and says what the next backup does.
 */
export async function readingParentIndex(o: ParentIndexFallback, attempt: (reading: ParentIndexReading) => Promise<Manifest>): Promise<Manifest> {
  const failures: ParentIndexFailure[] = [];
  let preferred: string | undefined;
  for (;;) {
    try {
      return await attempt({ passOver: failures.map((f) => f.label), ...(preferred ? { preferred } : {}) });
    } catch (err) {
      const failure = failureOf(err);
      // (an attempt that could not delete what it wrote leaves it to the next backup's cleanup: none again now;
      // and a copy fails one attempt at most, so there are never more attempts than destinations)
      if (!failure || !o.parent || o.signal?.aborted || (err as BackupError).details.leftovers === true || failures.length >= o.set.members.length) throw err;
      const parent = o.parent;
      failures.push(failure);
      if (failure.kind === 'as-written') throw await asWritten(o, parent, failure, err);
      const next = await nextWholeIndex((await holdersOf(parent, o.set)).filter((m) => !failures.some((f) => f.label === m.label)), parent);
      failures.push(...next.faults);
      preferred = next.at;
      if (o.signal?.aborted) throw err;
      if (preferred) {
        const mends = failure.kind === 'damaged' ? `. verifyBackup('${parent.id}') records the damaged copy, and recoverBackups() then puts it back` : '';
        o.warn?.(`the object index of ${parent.id}, which this incremental is planned against, could not be read at ${failure.label} (${failure.error}): planning it again from the start, reading the index at ${preferred}, where it is whole${mends}`);
        continue;
      }
      throw await noCopyLeft(o, parent, failures, err);
    }
  }
}

/** Every copy failed: recorded when each one's bytes are damaged; otherwise (one could not be read) nothing is. */
async function noCopyLeft(o: ParentIndexFallback, parent: Manifest, failures: ParentIndexFailure[], cause: unknown): Promise<BackupError> {
  const told = failures.map((f) => `${f.label}: ${f.error}`).join('; ');
  if (failures.some((f) => f.kind !== 'damaged')) {
    return new BackupError(
      'ERR_PARENT_INDEX',
      `the object index of ${parent.id}, which this incremental is planned against, could be read whole at no destination (${told}). Nothing was recorded, since a copy that could not be read may be whole: the next incremental tries again; verifyBackup('${parent.id}') once every destination answers says which copies are damaged`,
      { cause, details: { parentIndexFailures: failures } },
    );
  }
  const error = `its object index is damaged at every destination holding it (${told}): found by an incremental backup planned against it`;
  const recorded = await o.record(parent.id, { verified: false, level: 'quick', at: new Date().toISOString(), error, destinations: failures.map((f) => ({ label: f.label, verified: false, error: f.error })) });
  return new BackupError(
    'ERR_PARENT_INDEX',
    `the object index of ${parent.id}, which this incremental is planned against, is damaged wherever it is stored (${told}). ${nextBackup(parent, recorded)}; ${INDEX_REPAIR_HINT}`,
    { cause, details: { parentIndexFailures: failures } },
  );
}

/** The index is as written (its SHA-256 passes) and yet cannot be followed: every copy holds the same; recorded as a full verification records a disagreement. */
async function asWritten(o: ParentIndexFallback, parent: Manifest, failure: ParentIndexFailure, cause: unknown): Promise<BackupError> {
  const error = `the index of backup ${parent.id} is not one a restore can follow, as written (its SHA-256 matches the manifest's; ${failure.error}). Its objects are as its backup wrote them, so nothing mends it: restore another backup (a restore of this one stops)`;
  const recorded = await o.record(parent.id, { verified: false, level: 'full', at: new Date().toISOString(), error, destinations: [{ label: failure.label, verified: false, error: failure.error }] });
  return new BackupError('ERR_PARENT_INDEX', `${parent.id} cannot be built on: ${error}. ${nextBackup(parent, recorded)}`, { cause, details: { parentIndexFailures: [failure] } });
}

function nextBackup(parent: Manifest, recorded: RecordOutcome): string {
  // ('kept' is a passing result's: this records a failure)
  if (recorded === 'recorded' || recorded === 'kept') return `${parent.id} is now recorded as failing verification, so the next backup will be a full one`;
  if (recorded === 'superseded') return `A verification of ${parent.id} begun since is recorded instead, and decides what the next backup builds on`;
  return `This could not be recorded at any destination (logged), so the next incremental will meet it again: verifyBackup('${parent.id}') records it once a destination takes writes`;
}
