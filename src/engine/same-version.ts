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
 * versioning), nor where the listing is a file's claim (file://): restore.ts unchangedTest.
 *
 * A backup reads each object after listing it, so the version it stores may be a later one than
 * the version listed. `versionRead` gives what its index records then: the listed version only
 * when the read is that version, else the read's own ETag, size and Last-Modified. Recording the
 * listing instead, an object rewritten between the listing and the read, then rolled back with
 * its stamp kept (S3 versioning, a file system snapshot), would pass for the version the backup
 * holds: an incremental would keep the later version for it and a restore leave it in place. What
 * is recorded for such a read never passes here against that backup's start: a later version was
 * written after the backup began, so its own stamp is not safely before it.
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

/** An object's version as a GET returned it: its ETag header, the body's length, its Last-Modified. */
export interface ReadVersion {
  etag: string | undefined;
  size: number;
  lastModified: Date | string | undefined;
}

/**
 * The version a backup records for an object it listed as `listed` and then read as `read`.
 *
 * Invariant: the listed entry only when the read is that version: the same ETag, and a
 * Last-Modified no later than the listed stamp. A later version was written after the listing saw
 * the listed one, so its stamp is later: S3 answers a GET with whole seconds (the listed stamp's
 * second, for the listed version), file:// with the write time its metadata file records (which
 * the listed stamp includes: file-listing.ts listedStamp), memory:// with the listed stamp itself.
 * A client whose read gives a later stamp for the version listed has every object stored again by
 * every incremental (review-read F1: file times alone, before listedStamp). Left undetected: a
 * rewrite keeping the body (an s3db.js metadata-only update) in the same second as the listed
 * version on an S3 store that lists milliseconds; on one that lists whole seconds sameVersion
 * never trusts such a stamp. Otherwise the read's own ETag, size and stamp ('' when the read gave
 * none).
 */
export function versionRead(listed: SourceEntry, read: ReadVersion): SourceEntry {
  const etag = (read.etag ?? '').replace(/"/g, '');
  const stamp = read.lastModified === undefined ? Number.NaN : new Date(read.lastModified).getTime();
  if (etag !== '' && etag === listed.etag && stamp <= Date.parse(listed.lastModified)) return listed;
  return { key: listed.key, etag, size: read.size, lastModified: Number.isFinite(stamp) ? new Date(stamp).toISOString() : '' };
}

export function sameVersion(recorded: IndexEntry, now: SourceEntry, clock: VersionClock): boolean {
  if (now.etag === '' || now.lastModified === '' || recorded.e !== now.etag || recorded.s !== now.size || recorded.m !== now.lastModified) return false;
  const written = Date.parse(recorded.m);
  if (!Number.isFinite(written)) return false;
  // A whole-second stamp covers the next 999 ms too; a remote store's clock may also differ from ours.
  if (written % 1000 === 0) return written + 1000 + (clock.remote ? CLOCK_SKEW_MS : 0) <= clock.since;
  return written < clock.since;
}
