/**
 * restic's 40 reference cases (BSD-2-Clause, copyright restic authors; see
 * __test__/fixtures/restic-retention/README.md). Each case is checked twice:
 * - the rule layer (applyGfs) must reproduce restic exactly: kept snapshots, their reasons
 *   ("snapshot" read as "backup") and the counters left after each one;
 * - the public planRetention must keep the same backups, except that it also keeps the newest
 *   backup when restic would not (our invariant; only the tag-only policies 18-20 hit it).
 * Policy 0 (no rule) must be refused.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { planRetention, validateRetentionPolicy, type RetentionBackup } from '../src/retention/index.js';
import { applyGfs } from '../src/retention/gfs.js';
import { BackupError } from '../src/errors.js';

const dir = fileURLToPath(new URL('./fixtures/restic-retention/', import.meta.url));

interface Snapshot {
  time: string;
  tags: string[] | null;
  paths: string[] | null;
}
interface Fixture {
  keep: Snapshot[] | null;
  reasons?: Array<{ snapshot: Snapshot; matches: string[]; counters: Record<string, number> }>;
}

const POLICIES: Array<Record<string, unknown>> = [
  {},
  { last: 10 },
  { last: 15 },
  { last: 99 },
  { last: 200 },
  { hourly: 20 },
  { daily: 3 },
  { daily: 10 },
  { daily: 30 },
  { last: 5, daily: 5 },
  { last: 2, daily: 10 },
  { weekly: 2 },
  { weekly: 4 },
  { daily: 3, weekly: 4 },
  { monthly: 6 },
  { daily: 2, weekly: 2, monthly: 6 },
  { yearly: 10 },
  { daily: 7, weekly: 2, monthly: 3, yearly: 10 },
  { tags: [['foo']] },
  { tags: [['foo', 'bar']] },
  { tags: [['foo'], ['bar']] },
  { within: '1d' },
  { within: '2d' },
  { within: '7d' },
  { within: '1m' },
  { within: '1m14d' },
  { within: '1y1d1m' },
  { within: '13d23h' },
  { within: '2m2h' },
  { within: '1y2m3d3h' },
  { withinHourly: '1y2m3d3h' },
  { withinDaily: '1y2m3d3h' },
  { withinWeekly: '1y2m3d3h' },
  { withinMonthly: '1y2m3d3h' },
  { withinYearly: '1y2m3d3h' },
  { within: '1h', withinHourly: '1d', withinDaily: '7d', withinWeekly: '1m', withinMonthly: '1y', withinYearly: '9999y' },
  { last: -1 },
  { last: -1, hourly: -1 },
  { hourly: -1 },
  { daily: 3, weekly: 2, monthly: -1, yearly: -1 },
];

const input: Snapshot[] = JSON.parse(readFileSync(join(dir, 'input.json'), 'utf8'));
// Ids are positions in restic's input list; the three identical 2015-10-22 snapshots stay distinct.
const backups: RetentionBackup[] = input.map((s, i) => ({ id: `s${i}`, timestamp: s.time, tags: s.tags ?? undefined }));
const NOW = Date.parse('2026-01-01T00:00:00Z'); // later than every snapshot, as restic's "now" was

function load(n: number): Fixture {
  return JSON.parse(readFileSync(join(dir, `policy_keep_snapshots_${n}`), 'utf8'));
}

/** Matches fixture snapshots to input ids by time, paths and tags (identical ones are consumed in input order). */
function expectedIds(fixture: Fixture): string[] {
  const used = new Set<string>();
  return (fixture.keep ?? []).map((snap) => {
    const t = Date.parse(snap.time);
    const idx = input.findIndex((s, i) => !used.has(`s${i}`) && Date.parse(s.time.replace(' ', 'T') + 'Z') === t && JSON.stringify(s.paths) === JSON.stringify(snap.paths ?? null) && JSON.stringify(s.tags) === JSON.stringify(snap.tags ?? null));
    expect(idx, `fixture snapshot ${snap.time} exists in input.json`).toBeGreaterThanOrEqual(0);
    used.add(`s${idx}`);
    return `s${idx}`;
  });
}

describe("restic's 40 reference retention cases", () => {
  it('has the 40 fixtures and the 103-snapshot input', () => {
    expect(input).toHaveLength(103);
    for (let n = 0; n < 40; n++) expect(load(n)).toHaveProperty('keep');
  });

  it('policy 0 (no rule) is refused and plans nothing', () => {
    expect(load(0).keep).toBeNull();
    for (const p of [{ policy: 'gfs', daily: 0 }, { policy: 'simple', count: 0 }]) {
      let caught: unknown;
      try {
        planRetention(backups, p, NOW);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(BackupError);
      expect((caught as BackupError).code).toBe('ERR_INVALID_RETENTION');
    }
  });

  for (let n = 1; n < 40; n++) {
    it(`policy ${n}: ${JSON.stringify(POLICIES[n])}`, () => {
      const fixture = load(n);
      const ids = expectedIds(fixture);
      // restic's reading is policy 'gfs' written out (without it, daily/weekly/monthly/yearly
      // alone are s3db.js's BackupPlugin's reading: the ones left out get its defaults)
      const restic = { policy: 'gfs', ...POLICIES[n] };
      const policy = validateRetentionPolicy(restic);
      if (policy.policy !== 'gfs') throw new Error('fixture policies are GFS');

      // Rule layer: exact reasons and counters, in restic's newest-first order.
      const sorted = backups
        .map((b, index) => ({ id: b.id, time: Date.parse(String(b.timestamp).replace(' ', 'T') + 'Z'), tags: b.tags, index }))
        .sort((a, b) => b.time - a.time || a.index - b.index);
      const decisions = applyGfs(sorted, policy, NOW);
      const kept = sorted.filter((_, i) => decisions[i].keep);
      expect(kept.map((k) => k.id)).toEqual(ids);
      const keptDecisions = decisions.filter((d) => d.keep);
      const want = fixture.reasons ?? [];
      expect(keptDecisions).toHaveLength(want.length);
      keptDecisions.forEach((d, i) => {
        expect(d.reasons).toEqual(want[i].matches.map((m) => m.replace(/ snapshot$/, ' backup')));
        expect(d.counters).toEqual(want[i].counters);
      });

      // Public planner: same set, plus the newest backup (always kept) when restic drops it.
      const plan = planRetention(backups, restic, NOW);
      const newest = sorted[0].id;
      const expectedKeep = ids.includes(newest) ? ids : [newest, ...ids];
      expect(plan.keep.map((k) => k.id)).toEqual(expectedKeep);
      expect(plan.keep.length + plan.remove.length).toBe(103);
      if (!ids.includes(newest)) expect(plan.keep[0].reasons).toEqual(['newest successful backup (always kept)']);
      const byId = new Map(plan.keep.map((k) => [k.id, k.reasons]));
      ids.forEach((id, i) => expect(byId.get(id)).toEqual(want[i].matches.map((m) => m.replace(/ snapshot$/, ' backup'))));
      for (const r of plan.remove) expect(ids).not.toContain(r.id);
    });
  }
});
