/**
 * The rule incrementals keep a version by and restores leave one in place by
 * (src/engine/same-version.ts), on the stamps a store lists: whole seconds (AWS S3) and
 * milliseconds (Ceph RGW, file://), local and remote. A pure function: its callers are tested
 * end to end on RGW and file:// (restore-unchanged, engine-incremental); these pin the clock
 * arithmetic that RGW's millisecond stamps do not reach (review-unch M1-M3).
 */
import { describe, expect, it } from 'vitest';
import { sameVersion } from '../src/engine/same-version.js';
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
