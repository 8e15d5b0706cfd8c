/**
 * An incremental's read of its parent's object index, and what a copy of it that fails costs.
 *
 * Planning merge-joins the parent's index with the database listing as both stream (backup.ts
 * planActions), so a copy found damaged, at its end (its SHA-256) or midway (a line out of order
 * or not JSON, a stream that does not decode), has already steered the plan: the incremental is
 * planned again, whole, from the next destination holding the index (readingParentIndex). When
 * every copy read was damaged, the parent cannot be restored as it is either: that is recorded as
 * its latest verification (the verdict a verification would reach: its bytes are not the ones
 * written), so the next backup is a full one, listBackups() shows the parent failing, and
 * recoverBackups() puts its index back (index-repair.ts reads an index whole where the latest
 * verification failed).
 *
 * Invariants:
 * - An attempt that fails has deleted what it wrote (runBackup) before the next begins, or none
 *   begins (its pending marker, left, has the next backup's cleanup delete it); every attempt has
 *   the id the caller announced.
 * - Each destination's copy is read by one attempt at most: an attempt passes over those that failed before.
 * - A copy that could not be read (the store did not answer) is passed over, never recorded as damage.
 */
import type { KeyHandle } from '../codec/index.js';
import type { DestinationSet } from '../destinations/set.js';
import { BackupError, errorMessage } from '../errors.js';
import type { IndexEntry, Manifest, VerificationResult } from './manifest.js';
import { ordered } from './sorted-merge.js';
import { indexAvailable, readIndex, INDEX_REPAIR_HINT } from './stored.js';
import { holdersOf, isDamage } from './verify.js';

/** Why a read of the parent's index failed at one destination (in the details of an ERR_PARENT_INDEX). */
export interface ParentIndexFailure {
  label: string;
  error: string;
  /** The copy's bytes are not the ones written (see isDamage), as opposed to a read that failed. */
  damaged: boolean;
}

/**
 * The parent's index as planning reads it: from `set`'s members but those in `passOver`
 * (`preferred` first), in strict key order. A failure once a copy is open is an ERR_PARENT_INDEX
 * whose details hold a ParentIndexFailure; `opened` hears where the copy is read.
 */
export async function* parentIndexEntries(
  set: DestinationSet,
  parent: Manifest,
  key: KeyHandle | null,
  reading: { preferred: string | undefined; passOver: readonly string[]; opened: (label: string) => void },
): AsyncIterable<IndexEntry> {
  let at: string | null = null;
  const from = { members: set.members.filter((m) => !reading.passOver.includes(m.label)) };
  const entries = readIndex(from, parent, key, { preferred: reading.preferred, opened: (label) => ((at = label), reading.opened(label)) });
  try {
    yield* ordered({ items: entries, key: (e) => e.k, name: `the object index of ${parent.id} (the parent backup)` });
  } catch (err) {
    if (at === null) throw err; // no copy was open (none left with its recorded size): nothing to pass over
    const outOfOrder = err instanceof BackupError && err.code === 'ERR_KEY_ORDER';
    const failure: ParentIndexFailure = { label: at, error: described(err, outOfOrder, Boolean(parent.encryption)), damaged: isDamage(err) || outOfOrder || err instanceof SyntaxError };
    throw new BackupError('ERR_PARENT_INDEX', `the object index of ${parent.id}, which this incremental is planned against, could not be read at ${at}: ${failure.error}`, { cause: err, details: { parentIndex: failure } });
  }
}

/**
 * What a failed read says. Of an encrypted backup's index, without the object keys an order
 * check or JSON.parse quotes: it may be recorded (verifications/<id>.json is plaintext).
 */
function described(err: unknown, outOfOrder: boolean, encrypted: boolean): string {
  if (encrypted && outOfOrder) return 'its entries are not in key order';
  if (encrypted && err instanceof SyntaxError) return 'a line of it is not an index entry';
  return errorMessage(err);
}

/** The ParentIndexFailure an error carries, if it is a failed read of the parent's index. */
function failureOf(err: unknown): ParentIndexFailure | null {
  if (!(err instanceof BackupError && err.code === 'ERR_PARENT_INDEX')) return null;
  return (err.details.parentIndex as ParentIndexFailure | undefined) ?? null;
}

export interface ParentIndexFallback {
  parent: Manifest | null;
  set: DestinationSet;
  signal?: AbortSignal | undefined;
  warn?: ((message: string) => void) | undefined;
  /** Records `result` as the parent's latest verification, unless one begun later is (Catalog.recordVerification). */
  record: (backupId: string, result: VerificationResult) => Promise<boolean>;
}

/**
 * Runs `attempt` (a whole backup, given the destinations whose copy of the parent's index it
 * must pass over) until it succeeds, or fails otherwise than reading that index, or no other
 * destination holds the index whole: then, when every copy read was damaged, records the parent
 * as failing verification and says the next backup is a full one.
 */
export async function readingParentIndex(o: ParentIndexFallback, attempt: (passOver: string[]) => Promise<Manifest>): Promise<Manifest> {
  const failures: ParentIndexFailure[] = [];
  for (;;) {
    try {
      return await attempt(failures.map((f) => f.label));
    } catch (err) {
      const failure = failureOf(err);
      // (an attempt that could not delete what it wrote leaves it to the next backup's cleanup: none again now)
      if (!failure || !o.parent || o.signal?.aborted || (err as BackupError).details.leftovers === true) throw err;
      failures.push(failure);
      const parent = o.parent;
      const others = holdersOf(parent, o.set).filter((m) => !failures.some((f) => f.label === m.label));
      if (others.length > 0 && (await indexAvailable(others, parent))) {
        o.warn?.(`the object index of ${parent.id}, which this incremental is planned against, could not be read at ${failure.label} (${failure.error}): planning it again, reading the index at ${others.map((m) => m.label).join(' or ')}. ${failure.damaged ? `verifyBackup('${parent.id}') records the damaged copy, and recoverBackups() then puts it back` : ''}`.trimEnd());
        continue;
      }
      if (!failures.every((f) => f.damaged)) throw err;
      // (a holder not read had no copy with its recorded size: damaged there too, for a verification)
      const destinations = holdersOf(parent, o.set).map((m) => {
        const read = failures.find((f) => f.label === m.label);
        return { label: m.label, verified: false, error: read?.error ?? `its object index is missing at ${m.label} or has another size than written` };
      });
      const error = `its object index is damaged at ${destinations.map((d) => `${d.label} (${d.error})`).join('; ')}: found by an incremental backup planned against it`;
      const recorded = await o.record(parent.id, { verified: false, level: 'quick', at: new Date().toISOString(), error, destinations });
      throw new BackupError(
        'ERR_PARENT_INDEX',
        `the object index of ${parent.id}, which this incremental is planned against, is damaged wherever it is stored (${destinations.map((d) => `${d.label}: ${d.error}`).join('; ')}). ${recorded ? `${parent.id} is now recorded as failing verification, so the next backup will be a full one` : `A verification of ${parent.id} begun since is recorded instead and decides what the next backup builds on`}; ${INDEX_REPAIR_HINT}`,
        { cause: err, details: { parentIndex: failures } },
      );
    }
  }
}
