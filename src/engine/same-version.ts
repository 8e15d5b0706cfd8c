/**
 * Whether an object as a listing shows it now is the very version a backup recorded in its index.
 * Incremental backups rely on it to keep a version instead of storing it again, and restores to
 * leave a version in place instead of writing it again.
 *
 * Invariant: true only when ETag, size AND LastModified are all equal, and that LastModified is
 * safely before `since`, a time the recorded version's backup had started by. ETag and size alone
 * would miss s3db's metadata-only updates (same body), so LastModified must change on every
 * rewrite, which only holds at the store's clock resolution: AWS S3 lists whole seconds, so a
 * metadata-only rewrite in the same second as the version the backup read looks unchanged. As git
 * does with racily-clean files, a version whose LastModified is not safely before `since` is never
 * trusted: a whole-second stamp must end (plus CLOCK_SKEW_MS for a remote store) before `since`; a
 * millisecond stamp must precede it. Every write with that stamp then happened before the backup
 * began, and any later write carries a later stamp, in the same object's history on a store whose
 * stamps only move forward: not in another database, nor after a rollback that keeps stamps (S3
 * versioning), nor where the listing is a file's claim (file://): restore.ts unchangedTest. The
 * recorded entry is what the backup listed; what it stored was read just after (restore.ts
 * holdsListedBody).
 */
import type { IndexEntry } from './manifest.js';
import type { SourceEntry } from './s3db.js';

/** `since`: ms, this host's clock; `remote`: the store's clock is not this host's (an S3 store). */
export interface VersionClock {
  since: number;
  remote: boolean;
}

/** Clock difference allowed between this host and a remote store when trusting whole-second stamps. */
const CLOCK_SKEW_MS = 60_000;

export function sameVersion(recorded: IndexEntry, now: SourceEntry, clock: VersionClock): boolean {
  if (now.etag === '' || now.lastModified === '' || recorded.e !== now.etag || recorded.s !== now.size || recorded.m !== now.lastModified) return false;
  const written = Date.parse(recorded.m);
  if (!Number.isFinite(written)) return false;
  // A whole-second stamp covers the next 999 ms too; a remote store's clock may also differ from ours.
  if (written % 1000 === 0) return written + 1000 + (clock.remote ? CLOCK_SKEW_MS : 0) <= clock.since;
  return written < clock.since;
}
