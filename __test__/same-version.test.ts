/**
 * The rule incrementals keep a version by and restores leave one in place by
 * (src/engine/same-version.ts), on the stamps a store lists: whole seconds (AWS S3) and
 * milliseconds (Ceph RGW, file://), local and remote. A pure function: its callers are tested
 * end to end on RGW and file:// (restore-unchanged, engine-incremental); these pin the clock
 * arithmetic that RGW's millisecond stamps do not reach (review-unch M1-M3), and which version a
 * backup records for what it read after listing (versionRead; end to end: restore-unchanged's
 * rollback tests).
 */
import { describe, expect, it } from 'vitest';
import { sameVersion, versionRead } from '../src/engine/same-version.js';
import type { IndexEntry } from '../src/engine/manifest.js';
import type { SourceEntry } from '../src/engine/s3db.js';

const at = (iso: string) => Date.parse(iso);
const entry = (m: string): IndexEntry => ({ k: 'resource=a/data/id=1', e: 'd41d8cd98f00b204e9800998ecf8427e', s: 0, m, b: 'full-1' });
const listed = (m: string, change: Partial<SourceEntry> = {}): SourceEntry => ({ key: 'resource=a/data/id=1', etag: 'd41d8cd98f00b204e9800998ecf8427e', size: 0, lastModified: m, ...change });

describe('sameVersion', () => {
  it('needs ETag, size and LastModified all equal', () => {
    const m = '2026-12-03T10:00:00.123Z';
    const since = { since: at('2026-12-03T11:00:00.000Z'), remote: true };
    expect(sameVersion(entry(m), listed(m), since)).toBe(true);
    expect(sameVersion(entry(m), listed(m, { etag: '0cc175b9c0f1b6a831c399e269772661' }), since)).toBe(false);
    expect(sameVersion(entry(m), listed(m, { size: 1 }), since)).toBe(false);
    expect(sameVersion(entry(m), listed('2026-12-03T10:00:00.124Z'), since)).toBe(false);
    expect(sameVersion(entry(''), listed(''), since)).toBe(false);
    expect(sameVersion({ ...entry(m), e: '' }, listed(m, { etag: '' }), since)).toBe(false);
  });

  it('a millisecond stamp: trusted only strictly before the start', () => {
    const m = '2026-12-03T10:00:00.123Z';
    for (const remote of [true, false]) {
      expect(sameVersion(entry(m), listed(m), { since: at(m) + 1, remote })).toBe(true);
      expect(sameVersion(entry(m), listed(m), { since: at(m), remote })).toBe(false); // written in the very millisecond the backup began
    }
  });

  it('a whole-second stamp: its second must end before the start, and on a remote store 60 s of clock skew more', () => {
    const m = '2026-12-03T10:00:00.000Z';
    // local: the second [10:00:00, 10:00:01) must be over
    expect(sameVersion(entry(m), listed(m), { since: at(m) + 999, remote: false })).toBe(false);
    expect(sameVersion(entry(m), listed(m), { since: at(m) + 1000, remote: false })).toBe(true);
    // remote: the store's clock may be up to a minute off this host's
    expect(sameVersion(entry(m), listed(m), { since: at(m) + 1000, remote: true })).toBe(false);
    expect(sameVersion(entry(m), listed(m), { since: at(m) + 60_999, remote: true })).toBe(false);
    expect(sameVersion(entry(m), listed(m), { since: at(m) + 61_000, remote: true })).toBe(true);
  });

  it('a start that is not a time trusts nothing', () => {
    const m = '2026-12-03T10:00:00.123Z';
    expect(sameVersion(entry(m), listed(m), { since: Number.NaN, remote: true })).toBe(false);
  });
});

describe('versionRead: the version a backup records for an object it listed, then read', () => {
  const EMPTY = 'd41d8cd98f00b204e9800998ecf8427e';
  const OTHER = '0cc175b9c0f1b6a831c399e269772661';
  const key = 'resource=a/data/id=1';

  it('the listed version when the read has its ETag and a stamp no later than the listed one', () => {
    // S3: a GET gives the listed millisecond stamp's second (HTTP dates are whole seconds)
    const ms = listed('2026-12-03T10:00:00.123Z');
    expect(versionRead(ms, { etag: `"${EMPTY}"`, size: 0, lastModified: new Date('2026-12-03T10:00:00.000Z') })).toBe(ms);
    // AWS S3 lists whole seconds: the same stamp
    const s = listed('2026-12-03T10:00:00.000Z');
    expect(versionRead(s, { etag: EMPTY, size: 0, lastModified: new Date('2026-12-03T10:00:00.000Z') })).toBe(s);
    // file://: the write time its .meta.json records (what a read gives), which the listed stamp covers
    expect(versionRead(ms, { etag: EMPTY, size: 0, lastModified: '2026-12-03T09:59:59.990Z' })).toBe(ms);
    // kept as listed, size included (s3db.js's file client lists the size on disk, compressed or not)
    expect(versionRead(listed('2026-12-03T10:00:00.123Z', { size: 40 }), { etag: EMPTY, size: 0, lastModified: '2026-12-03T10:00:00.000Z' }).size).toBe(40);
  });

  it("a read of a later version (another body, or a stamp past the listed one's second) records the read's ETag, size and stamp", () => {
    const m = listed('2026-12-03T10:00:00.123Z');
    // a new body, whatever its stamp
    expect(versionRead(m, { etag: `"${OTHER}"`, size: 1, lastModified: new Date('2026-12-03T10:00:00.000Z') })).toEqual({ key, etag: OTHER, size: 1, lastModified: '2026-12-03T10:00:00.000Z' });
    // the same body with new metadata, a second later
    expect(versionRead(m, { etag: EMPTY, size: 0, lastModified: new Date('2026-12-03T10:00:01.000Z') })).toEqual({ key, etag: EMPTY, size: 0, lastModified: '2026-12-03T10:00:01.000Z' });
    // file:// and memory://: a write begun after the listing, a millisecond later
    expect(versionRead(m, { etag: EMPTY, size: 0, lastModified: '2026-12-03T10:00:00.124Z' })).toEqual({ key, etag: EMPTY, size: 0, lastModified: '2026-12-03T10:00:00.124Z' });
  });

  it('a read that cannot be compared with the listing records what it can of the read, never the listing', () => {
    const m = listed('2026-12-03T10:00:00.123Z');
    expect(versionRead(m, { etag: EMPTY, size: 0, lastModified: undefined })).toEqual({ key, etag: EMPTY, size: 0, lastModified: '' });
    expect(versionRead(m, { etag: undefined, size: 0, lastModified: new Date('2026-12-03T10:00:00.000Z') })).toEqual({ key, etag: '', size: 0, lastModified: '2026-12-03T10:00:00.000Z' });
    expect(versionRead(listed(''), { etag: EMPTY, size: 0, lastModified: new Date('2026-12-03T10:00:00.000Z') })).toEqual({ key, etag: EMPTY, size: 0, lastModified: '2026-12-03T10:00:00.000Z' });
  });

  it('what it records for a later version is never taken for the listed one, nor trusted as written before the backup that read it', () => {
    const m = '2026-12-03T10:00:00.123Z';
    const began = at('2026-12-03T10:00:00.500Z'); // the listing and the read came after
    const recorded = versionRead(listed(m), { etag: EMPTY, size: 0, lastModified: new Date('2026-12-03T10:00:01.000Z') });
    const asEntry: IndexEntry = { k: recorded.key, e: recorded.etag, s: recorded.size, m: recorded.lastModified, b: 'full-1' };
    // the listed version back (a rollback that keeps stamps): not the version the backup holds
    expect(sameVersion(asEntry, listed(m), { since: began, remote: true })).toBe(false);
    // the later version as a store listing whole seconds shows it: written after the backup began
    expect(sameVersion(asEntry, listed('2026-12-03T10:00:01.000Z'), { since: began, remote: true })).toBe(false);
    expect(sameVersion(asEntry, listed('2026-12-03T10:00:01.000Z'), { since: began, remote: false })).toBe(false);
  });
});
