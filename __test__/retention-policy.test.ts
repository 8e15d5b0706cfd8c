/**
 * planRetention / validateRetentionPolicy beyond restic: refusals, defaults, the simple policy,
 * failed / unverified / active backups, the newest-successful invariant, chain pinning, UTC keys.
 */
import { describe, expect, it } from 'vitest';
import { BackupError } from '../src/errors.js';
import { calendarKey, isoWeekKey, planRetention, validateRetentionPolicy, type RetentionBackup } from '../src/retention/index.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function refusal(fn: () => unknown): BackupError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BackupError);
    return err as BackupError;
  }
  throw new Error('expected a BackupError');
}

function ids(list: Array<{ id: string }>): string[] {
  return list.map((x) => x.id);
}

describe('validateRetentionPolicy', () => {
  it('refuses policies with no rule, naming retention', () => {
    for (const p of [{ policy: 'gfs' as const, hourly: 0, daily: 0 }, { policy: 'simple', count: 0 }, { policy: 'gfs', within: '0d' }, { policy: 'gfs', tags: [] }, { policy: 'gfs', daily: 0, weekly: 0, monthly: 0, yearly: 0 }]) {
      const err = refusal(() => validateRetentionPolicy(p));
      expect(err.code).toBe('ERR_INVALID_RETENTION');
      expect(err.message).toMatch(/"retention"/);
    }
  });

  it('refuses wrong types, unknown keys, typos, mixed families and bad durations, naming the key', () => {
    const cases: Array<[unknown, string]> = [
      [null, 'retention'],
      ['gfs', 'retention'],
      [{ policy: 'gfz', daily: 1 }, 'retention.policy'],
      [{ policy: 'gfs', dayly: 7 }, 'retention.dayly'],
      [{ policy: 'gfs', daily: 1.5 }, 'retention.daily'],
      [{ policy: 'gfs', daily: -2 }, 'retention.daily'],
      [{ policy: 'gfs', daily: '7' }, 'retention.daily'],
      [{ policy: 'gfs', count: 5 }, 'retention.count'],
      [{ policy: 'simple', daily: 5 }, 'retention.daily'],
      [{ count: 5, daily: 5 }, 'retention'],
      [{ policy: 'gfs', within: '7 days' }, 'retention.within'],
      [{ policy: 'gfs', within: '5s' }, 'retention.within'],
      [{ policy: 'simple', maxAge: -1 }, 'retention.maxAge'],
      [{ maxAge: 0 }, 'retention.maxAge'],
      [{ policy: 'gfs', daily: Infinity }, 'retention.daily'],
      [{ count: 3, maxAge: '0d' }, 'retention.maxAge'],
      [{ policy: 'gfs', tags: 'foo' }, 'retention.tags'],
      [{ policy: 'gfs', tags: [[]] }, 'retention.tags[0]'],
    ];
    for (const [policy, option] of cases) {
      const err = refusal(() => validateRetentionPolicy(policy));
      expect(err.code).toBe('ERR_INVALID_RETENTION');
      expect(err.details.option).toBe(option);
      expect(err.message).toContain(`"${option}"`);
    }
    expect(refusal(() => validateRetentionPolicy({ policy: 'gfs', daily: Infinity })).message).toContain('got Infinity'); // not "got null"
  });

  it("reads s3db.js's BackupPlugin's retention as it applied it: without a policy, daily/weekly/monthly/yearly (each left out at 7/4/12/3, {} too) keep every backup of the last `daily` days, one a week, a month and a year back that far", () => {
    const s3db = (extra: Record<string, string>) => ({ policy: 'gfs', last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0, tags: [], ...extra });
    // (one period more than written, an hour for daily: s3db.js's buckets of age reach that far back)
    expect(validateRetentionPolicy({})).toEqual(s3db({ within: '169h', withinWeekly: '35d', withinMonthly: '13m', withinYearly: '4y' }));
    expect(validateRetentionPolicy({ daily: 7 })).toEqual(validateRetentionPolicy({}));
    expect(validateRetentionPolicy({ daily: 30, weekly: 0 })).toEqual(s3db({ within: '721h', withinMonthly: '13m', withinYearly: '4y' }));
    expect(validateRetentionPolicy({ daily: 1e21, weekly: -1 })).toMatchObject({ within: '100000y', withinWeekly: '100000y' }); // past any date: every backup
    expect(validateRetentionPolicy({ daily: 7, weekly: null })).toEqual(validateRetentionPolicy({})); // null: not set
    const normalised = validateRetentionPolicy({ daily: 7 });
    expect(validateRetentionPolicy(normalised)).toEqual(normalised);
    // all zero keeps nothing: refused, as any such policy
    expect(refusal(() => validateRetentionPolicy({ daily: 0, weekly: 0, monthly: 0, yearly: 0 })).details.option).toBe('retention');
    // hourly backups for ten days: every one of the last 7 days is kept, as s3db.js kept them
    const now = Date.parse('2026-06-30T12:00:00Z');
    const hourly: RetentionBackup[] = Array.from({ length: 240 }, (_, i) => ({ id: `h${i}`, timestamp: now - i * HOUR }));
    const kept = ids(planRetention(hourly, { daily: 7 }, now).keep);
    expect(kept.slice(0, 168)).toEqual(hourly.slice(0, 168).map((b) => b.id));
    // the story's form, with a policy, is what you write (restic's reading)
    expect(validateRetentionPolicy({ policy: 'gfs', daily: 7 })).toEqual({ policy: 'gfs', last: 0, hourly: 0, daily: 7, weekly: 0, monthly: 0, yearly: 0, tags: [] });
    // any other key without a policy is not s3db.js's: restic's reading
    expect(validateRetentionPolicy({ daily: 7, hourly: 24 })).toEqual({ policy: 'gfs', last: 0, hourly: 24, daily: 7, weekly: 0, monthly: 0, yearly: 0, tags: [] });
    expect(refusal(() => validateRetentionPolicy({ daily: -5 })).details.option).toBe('retention.daily');
  });

  it('applies the seed defaults only when no rule is written; otherwise omitted rules are off', () => {
    expect(validateRetentionPolicy({ policy: 'gfs' })).toEqual({ policy: 'gfs', last: 0, hourly: 24, daily: 7, weekly: 4, monthly: 12, yearly: 0, tags: [] });
    expect(validateRetentionPolicy({ policy: 'simple' })).toEqual({ policy: 'simple', count: 10 });
    expect(validateRetentionPolicy({ policy: 'gfs', daily: 30 })).toEqual({ policy: 'gfs', last: 0, hourly: 0, daily: 30, weekly: 0, monthly: 0, yearly: 0, tags: [] });
    expect(validateRetentionPolicy({ count: 100 })).toEqual({ policy: 'simple', count: 100 });
    // simple: count keeps the story's default 10 beside maxAge (each has its own default in its table)
    expect(validateRetentionPolicy({ maxAge: '30d' })).toEqual({ policy: 'simple', count: 10, maxAge: '30d' });
    expect(validateRetentionPolicy({ count: 0, maxAge: '30d' })).toEqual({ policy: 'simple', count: 0, maxAge: '30d' });
    expect(validateRetentionPolicy({ hourly: 24, within: '2d' })).toMatchObject({ policy: 'gfs', hourly: 24, within: '2d' });
    expect(validateRetentionPolicy({ policy: 'gfs', tags: ['a,b', ['c']] }).policy === 'gfs' && validateRetentionPolicy({ policy: 'gfs', tags: ['a,b', ['c']] })).toMatchObject({ tags: [['a', 'b'], ['c']] });
  });

  it("reads null as not set: the story's table writes maxAge: null as the default", () => {
    expect(validateRetentionPolicy({ policy: 'simple', count: 10, maxAge: null })).toEqual({ policy: 'simple', count: 10 });
    expect(validateRetentionPolicy({ policy: 'simple', maxAge: null })).toEqual({ policy: 'simple', count: 10 });
    expect(validateRetentionPolicy({ policy: 'gfs', daily: 7, within: null })).toEqual({ policy: 'gfs', last: 0, hourly: 0, daily: 7, weekly: 0, monthly: 0, yearly: 0, tags: [] });
  });

  it('is idempotent: a normalised policy validates to itself', () => {
    for (const p of [{ policy: 'gfs' }, { count: 3, maxAge: 86_400_000 }, { policy: 'gfs', daily: 3, withinDaily: '1m', tags: ['x'] }]) {
      const once = validateRetentionPolicy(p);
      expect(validateRetentionPolicy(once)).toEqual(once);
    }
  });
});

describe('planRetention input handling', () => {
  it('refuses bad backup lists with ERR_INVALID_RETENTION_INPUT', () => {
    const policy = { count: 1 };
    expect(refusal(() => planRetention([{ id: '', timestamp: 1 }], policy)).code).toBe('ERR_INVALID_RETENTION_INPUT');
    expect(refusal(() => planRetention([{ id: 'a', timestamp: 'yesterday' }], policy)).code).toBe('ERR_INVALID_RETENTION_INPUT');
    // a day its month lacks is refused, not rolled over into the next month (review-retention 4)
    for (const impossible of ['2026-02-30 10:00', '2025-02-29', '2026-04-31T00:00:00Z', '+002026-02-30T00:00:00Z']) {
      expect(refusal(() => planRetention([{ id: 'a', timestamp: impossible }], policy)).code).toBe('ERR_INVALID_RETENTION_INPUT');
    }
    for (const leapDay of ['2024-02-29 10:00', '0000-02-29T00:00:00Z', '+002024-02-29T00:00:00Z']) {
      expect(planRetention([{ id: 'a', timestamp: leapDay }], policy, '+003000-01-01T00:00:00Z').keep.map((k) => k.id)).toEqual(['a']);
    }
    expect(refusal(() => planRetention([{ id: 'a', timestamp: 1 }, { id: 'a', timestamp: 2 }], policy)).message).toContain('repeats id "a"');
    expect(refusal(() => planRetention([], policy, 'not a time')).code).toBe('ERR_INVALID_RETENTION_INPUT');
  });

  it('reads Date, epoch ms, ISO with zone, and zone-less strings as UTC', () => {
    const plan = planRetention(
      [
        { id: 'date', timestamp: new Date('2026-03-01T23:30:00Z') },
        { id: 'ms', timestamp: Date.parse('2026-03-02T23:30:00Z') },
        { id: 'offset', timestamp: '2026-03-04T01:30:00+02:00' }, // 2026-03-03T23:30Z
        { id: 'naive', timestamp: '2026-03-04 23:30:00' },
      ],
      { policy: 'gfs', daily: -1 },
    );
    expect(ids(plan.keep)).toEqual(['naive', 'offset', 'ms', 'date']);
  });

  it('uses UTC calendar keys whatever the host time zone, and ISO weeks', () => {
    // 23:30 UTC on 31 Dec is still 31 Dec (not 1 Jan as in UTC+1 local time).
    expect(calendarKey('daily', Date.parse('2026-12-31T23:30:00Z'))).toBe(20261231);
    expect(calendarKey('hourly', Date.parse('2026-12-31T23:30:00Z'))).toBe(2026123123);
    expect(calendarKey('monthly', Date.parse('2026-12-31T23:30:00Z'))).toBe(202612);
    // ISO weeks: Monday 29 Dec 2025 is 2026-W01; Sunday 3 Jan 2027 is 2026-W53; 1 Jan 2027 (Fri) too.
    expect(isoWeekKey(Date.parse('2025-12-29T00:00:00Z'))).toBe(202601);
    expect(isoWeekKey(Date.parse('2025-12-28T23:59:59Z'))).toBe(202552);
    expect(isoWeekKey(Date.parse('2027-01-03T12:00:00Z'))).toBe(202653);
    expect(isoWeekKey(Date.parse('2027-01-04T00:00:00Z'))).toBe(202701);
    expect(isoWeekKey(Date.parse('2021-01-01T00:00:00Z'))).toBe(202053);
  });
});

describe('within rules and now', () => {
  it('measure within from the newest backup that is not in the future', () => {
    const now = Date.parse('2026-06-30T12:00:00Z');
    const backups: RetentionBackup[] = [
      { id: 'future', timestamp: now + 10 * DAY }, // a clock gone wrong on some host
      { id: 'new', timestamp: now - DAY },
      { id: 'mid', timestamp: now - 2 * DAY - HOUR },
      { id: 'old', timestamp: now - 5 * DAY },
    ];
    // Window: newest non-future backup (now - 1 day) minus 2 days; 'future' is newer, so kept too.
    const plan = planRetention(backups, { policy: 'gfs', within: '2d' }, now);
    expect(plan.keep.map((k) => [k.id, k.reasons])).toEqual([
      ['future', ['within 2d']],
      ['new', ['within 2d']],
      ['mid', ['within 2d']],
    ]);
    // Measured from the newest backup, not from now: a long pause does not empty the window.
    const later = planRetention(backups.slice(1), { policy: 'gfs', within: '2d' }, now + 365 * DAY);
    expect(later.keep.map((k) => k.id)).toEqual(['new', 'mid']);
  });

  it('every backup dated after now (a clock gone wrong): within keeps them all, as restic does (no latest backup: the window reaches back past all)', () => {
    const now = Date.parse('2026-12-02T00:00:00Z');
    const future: RetentionBackup[] = Array.from({ length: 6 }, (_, i) => ({ id: `f${5 - i}`, timestamp: Date.parse('2030-01-01T00:00:00Z') + (5 - i) * HOUR }));
    expect(ids(planRetention(future, { policy: 'gfs', within: '2h' }, now).keep)).toEqual(['f5', 'f4', 'f3', 'f2', 'f1', 'f0']);
  });

  it('a duration beyond the range of dates ("keep for ever": 300000y) keeps every backup, in maxAge and in within', () => {
    const now = Date.parse('2026-06-30T12:00:00Z');
    const backups: RetentionBackup[] = Array.from({ length: 5 }, (_, i) => ({ id: `b${i}`, timestamp: now - i * 400 * DAY }));
    for (const policy of [{ count: 1, maxAge: '300000y' }, { policy: 'gfs', within: '300000y' }, { policy: 'gfs', withinDaily: '99999999y' }]) {
      expect(planRetention(backups, policy, now).remove).toEqual([]);
    }
  });
});

describe('simple policy', () => {
  const now = Date.parse('2026-06-30T12:00:00Z');
  const daily: RetentionBackup[] = Array.from({ length: 20 }, (_, i) => ({ id: `d${i}`, timestamp: now - i * DAY - HOUR }));

  it('count keeps the newest N successful backups', () => {
    const plan = planRetention(daily, { count: 5 }, now);
    expect(ids(plan.keep)).toEqual(['d0', 'd1', 'd2', 'd3', 'd4']);
    expect(plan.keep[4].reasons).toEqual(['newest 5 (#5)']);
    expect(plan.remove).toHaveLength(15);
    expect(plan.remove[0].reason).toBe('not kept by any rule of simple (count 5)');
  });

  it('count and maxAge combine with OR: kept if among the newest N or younger than maxAge', () => {
    // 10 days keeps d0..d9 (younger than 10 days); count 3 adds nothing more.
    expect(ids(planRetention(daily, { count: 3, maxAge: 10 * DAY }, now).keep)).toEqual(daily.slice(0, 10).map((b) => b.id));
    // maxAge 2 days keeps d0, d1; count 4 keeps d0..d3 even though d2, d3 are older.
    const plan = planRetention(daily, { count: 4, maxAge: '2d' }, now);
    expect(ids(plan.keep)).toEqual(['d0', 'd1', 'd2', 'd3']);
    expect(plan.keep[0].reasons).toEqual(['newest 4 (#1)', 'younger than maxAge 2d']);
    expect(plan.keep[3].reasons).toEqual(['newest 4 (#4)']);
  });

  it('after a pause longer than maxAge, maxAge keeps the newest 10 (count is not written: its default), and maxAge alone (count: 0) still the newest successful backup', () => {
    const old: RetentionBackup[] = Array.from({ length: 12 }, (_, i) => ({ id: `o${i}`, timestamp: now - (40 + i) * DAY }));
    const plan = planRetention(old, { policy: 'simple', maxAge: '7d' }, now);
    expect(ids(plan.keep)).toEqual(ids(old.slice(0, 10)));
    expect(ids(plan.remove)).toEqual(['o10', 'o11']);
    const alone = planRetention(old, { count: 0, maxAge: '7d' }, now);
    expect(alone.keep).toEqual([{ id: 'o0', reasons: ['newest successful backup (always kept)'] }]);
  });

  it('count -1 keeps every successful backup', () => {
    expect(planRetention(daily, { count: -1 }, now).remove).toEqual([]);
  });
});

describe('failed, unverified and active backups', () => {
  const t = (h: number) => Date.parse('2026-05-01T00:00:00Z') + h * HOUR;

  it('never count as kept backups for the rules', () => {
    const backups: RetentionBackup[] = [
      { id: 'f3', timestamp: t(5), status: 'failed' },
      { id: 'ok2', timestamp: t(4), status: 'completed', verified: true },
      { id: 'u', timestamp: t(3), status: 'completed', verified: false },
      { id: 'f1', timestamp: t(2), status: 'failed' },
      { id: 'ok1', timestamp: t(1) },
      { id: 'ok0', timestamp: t(0) },
    ];
    const plan = planRetention(backups, { policy: 'gfs', last: 2 }, t(6));
    // last 2 = the two newest SUCCESSFUL ones (ok1 is kept although u is newer); f3 is kept only as
    // the newest failure after the newest success. u stays as long as a good backup would (it may
    // restore in part), without taking ok1's slot.
    expect(ids(plan.keep)).toEqual(['f3', 'ok2', 'u', 'ok1']);
    expect(plan.keep[0].reasons).toEqual(['newest failed backup, kept until a newer successful backup exists']);
    expect(plan.keep[2].reasons).toEqual(['unverified, kept as long as a good backup would be: last backup']);
    expect(plan.remove).toEqual([
      { id: 'f1', reason: "failed backup (status 'failed'), superseded by successful backup ok2" },
      { id: 'ok0', reason: 'not kept by any rule of gfs (last 2)' },
    ]);
    // one more good backup: u would now be third of the newest, so it goes like a good one would
    const later = planRetention([{ id: 'ok3', timestamp: t(6) }, ...backups], { policy: 'gfs', last: 2 }, t(7));
    expect(ids(later.keep)).toEqual(['ok3', 'ok2']);
    expect(later.remove.find((r) => r.id === 'u')).toEqual({ id: 'u', reason: 'unverified backup (verified: false), superseded by successful backup ok3 and not kept by any rule of gfs (last 2) were it good' });
  });

  it('an unverified backup holds on to its GFS slot while a good one takes the slot too, and pins its chain', () => {
    const day = (d: number, h: number) => Date.parse('2026-05-01T00:00:00Z') + d * 24 * HOUR + h * HOUR;
    const backups: RetentionBackup[] = [
      { id: 'd3', timestamp: day(3, 12), type: 'full' },
      { id: 'd2-late', timestamp: day(2, 20), type: 'incremental', parentId: 'd2-full', verified: false },
      { id: 'd2-full', timestamp: day(2, 8), type: 'full', verified: false },
      { id: 'd2-early', timestamp: day(2, 1), type: 'full' },
      { id: 'd1', timestamp: day(1, 12), type: 'full' },
      { id: 'd0', timestamp: day(0, 12), type: 'full' },
    ];
    const plan = planRetention(backups, { policy: 'gfs', daily: 3 }, day(4, 0));
    // good ones: d3, d2-early, d1 hold the three daily slots; d2-late would hold day 2's slot were it good
    expect(ids(plan.keep)).toEqual(['d3', 'd2-late', 'd2-full', 'd2-early', 'd1']);
    expect(plan.keep.find((k) => k.id === 'd2-full')!.reasons).toEqual(['needed by d2-late (chain)']);
    expect(ids(plan.remove)).toEqual(['d0']);
    // four days on, day 2 is out of every window: the damaged chain goes with the good backup of its day
    const after = planRetention([{ id: 'd6', timestamp: day(6, 12) }, { id: 'd5', timestamp: day(5, 12) }, { id: 'd4', timestamp: day(4, 12) }, ...backups], { policy: 'gfs', daily: 3 }, day(7, 0));
    expect(ids(after.keep)).toEqual(['d6', 'd5', 'd4']);
  });

  it('a newer successful backup removes the kept failure; only the newest failure survives a losing streak', () => {
    const streak: RetentionBackup[] = [
      { id: 'ok', timestamp: t(0) },
      ...Array.from({ length: 5 }, (_, i) => ({ id: `fail${i + 1}`, timestamp: t(i + 1), status: 'error' })),
      { id: 'unv', timestamp: t(7), verified: false },
    ];
    const plan = planRetention(streak, { count: 1 }, t(8));
    expect(ids(plan.keep)).toEqual(['unv', 'fail5', 'ok']);
    expect(ids(plan.remove)).toEqual(['fail4', 'fail3', 'fail2', 'fail1']);
    expect(plan.remove[0].reason).toBe("failed backup (status 'error'), a newer failed backup is kept instead");
    const after = planRetention([...streak, { id: 'ok2', timestamp: t(9) }], { count: 1 }, t(10));
    expect(ids(after.keep)).toEqual(['ok2']);
  });

  it('leaves active (running) backups alone and pins what they build on', () => {
    const backups: RetentionBackup[] = [
      { id: 'run', timestamp: t(3), status: 'running', type: 'incremental', parentId: 'full0' },
      { id: 'ok1', timestamp: t(2), type: 'full' },
      { id: 'full0', timestamp: t(1), type: 'full' },
    ];
    const plan = planRetention(backups, { count: 1 }, t(4));
    expect(plan.keep).toEqual([
      { id: 'run', reasons: ["status 'running': still being written, never pruned"] },
      { id: 'ok1', reasons: ['newest 1 (#1)'] },
      { id: 'full0', reasons: ['needed by run (chain)'] },
    ]);
  });

  it('never deletes the newest successful backup, even when no rule selects it', () => {
    const plan = planRetention([{ id: 'x', timestamp: t(1), tags: [] }, { id: 'y', timestamp: t(0), tags: ['release'] }], { policy: 'gfs', tags: ['release'] }, t(2));
    expect(plan.keep).toEqual([
      { id: 'x', reasons: ['newest successful backup (always kept)'] },
      { id: 'y', reasons: ['has tags [release]'] },
    ]);
  });
});

describe('incremental chains', () => {
  // full F0 (day 0) <- i1 <- i2 <- i3 ; full F1 (day 4) <- j1 <- j2
  const at = (d: number) => Date.parse('2026-01-29T12:00:00Z') + d * DAY;
  const chain: RetentionBackup[] = [
    { id: 'F0', timestamp: at(0), type: 'full' },
    { id: 'i1', timestamp: at(1), type: 'incremental', parentId: 'F0' },
    { id: 'i2', timestamp: at(2), type: 'incremental', parentId: 'i1' },
    { id: 'i3', timestamp: at(3), type: 'incremental', parentId: 'i2' },
    { id: 'F1', timestamp: at(4), type: 'full' },
    { id: 'j1', timestamp: at(5), type: 'incremental', parentId: 'F1' },
    { id: 'j2', timestamp: at(6), type: 'incremental', parentId: 'j1' },
  ];

  it('a kept incremental pins its full and every incremental between them', () => {
    const plan = planRetention(chain, { count: 1 }, at(7));
    expect(plan.keep).toEqual([
      { id: 'j2', reasons: ['newest 1 (#1)'] },
      { id: 'j1', reasons: ['needed by j2 (chain)'] },
      { id: 'F1', reasons: ['needed by j2 (chain)'] },
    ]);
    expect(ids(plan.remove)).toEqual(['i3', 'i2', 'i1', 'F0']);
  });

  it('keeping an old incremental by GFS keeps its whole chain; pinned backups use no rule slot', () => {
    // F0..i3 fall in ISO week 2026-W05 (Thu 29 Jan - Sun 1 Feb), F1..j2 in 2026-W06.
    expect(isoWeekKey(at(3))).toBe(202605);
    expect(isoWeekKey(at(4))).toBe(202606);
    const plan = planRetention(chain, { policy: 'gfs', last: 2, weekly: 2 }, at(7));
    expect(plan.keep).toEqual([
      { id: 'j2', reasons: ['last backup', 'weekly backup'] },
      { id: 'j1', reasons: ['last backup', 'needed by j2 (chain)'] },
      { id: 'F1', reasons: ['needed by j1 (chain)'] }, // j2's walk stops at j1, which is kept on its own
      { id: 'i3', reasons: ['weekly backup'] },
      { id: 'i2', reasons: ['needed by i3 (chain)'] },
      { id: 'i1', reasons: ['needed by i3 (chain)'] },
      { id: 'F0', reasons: ['needed by i3 (chain)'] },
    ]);
    expect(plan.remove).toEqual([]);
    // Without the weekly rule the old chain goes, the new one stays whole.
    const lastOnly = planRetention(chain, { policy: 'gfs', last: 1 }, at(7));
    expect(ids(lastOnly.keep)).toEqual(['j2', 'j1', 'F1']);
    expect(ids(lastOnly.remove)).toEqual(['i3', 'i2', 'i1', 'F0']);
  });

  it('warns about broken chains instead of failing the plan', () => {
    const plan = planRetention(
      [
        { id: 'orphan', timestamp: at(2), type: 'incremental', parentId: 'gone' },
        { id: 'noparent', timestamp: at(1), type: 'incremental' },
      ],
      { count: 2 },
      at(3),
    );
    expect(ids(plan.keep)).toEqual(['orphan', 'noparent']);
    expect(plan.warnings).toEqual([
      'backup orphan needs gone, which is not in the list (a lost or unreadable manifest? recoverBackups() puts one back from its copy; if it was deleted, orphan cannot be restored)',
      'incremental backup noparent has no parentId: its chain cannot be pinned',
    ]);
  });

  it('pins chains to a closure: a backup kept only as a chain member pins its own chain, and a walk that stops at a backup kept by the rules still reaches past its hole (review-retention 1)', () => {
    // i3 (no chain) is kept by the rule and pins i2 by parentId; the walk ends at i1, missing;
    // i2's own chain names f, before the hole
    const childWithout: RetentionBackup[] = [
      { id: 'f', timestamp: at(0), type: 'full' },
      { id: 'i2', timestamp: at(2), type: 'incremental', parentId: 'i1', chain: ['f', 'i1', 'i2'] },
      { id: 'i3', timestamp: at(3), type: 'incremental', parentId: 'i2' },
    ];
    const a = planRetention(childWithout, { count: 1 }, at(4));
    expect(a.keep).toEqual([
      { id: 'i3', reasons: ['newest 1 (#1)'] },
      { id: 'i2', reasons: ['needed by i3 (chain)'] },
      { id: 'f', reasons: ['needed by i2 (chain)'] },
    ]);
    expect(a.remove).toEqual([]);
    // i3's chain names f; i2 is kept by the rule, and its own walk (parentId) ends at the hole
    const parentWithout: RetentionBackup[] = [
      { id: 'f', timestamp: at(0), type: 'full' },
      { id: 'i2', timestamp: at(2), type: 'incremental', parentId: 'i1' },
      { id: 'i3', timestamp: at(3), type: 'incremental', parentId: 'i2', chain: ['f', 'i1', 'i2', 'i3'] },
    ];
    const c = planRetention(parentWithout, { count: 2 }, at(4));
    expect(ids(c.keep)).toEqual(['i3', 'i2', 'f']);
    expect(c.keep.find((k) => k.id === 'f')!.reasons).toEqual(['needed by i3 (chain)']);
    expect(c.remove).toEqual([]);
    // two rounds of it (mutation-check): r (no chain) pins p; p's chain reaches x past the hole h;
    // x has no chain, and only its parentId names the full y
    const twoRounds: RetentionBackup[] = [
      { id: 'y', timestamp: at(0), type: 'full' },
      { id: 'x', timestamp: at(1), type: 'incremental', parentId: 'y' },
      { id: 'p', timestamp: at(3), type: 'incremental', parentId: 'h', chain: ['x', 'h', 'p'] },
      { id: 'r', timestamp: at(4), type: 'incremental', parentId: 'p' },
    ];
    const d = planRetention(twoRounds, { count: 1 }, at(5));
    expect(ids(d.keep)).toEqual(['r', 'p', 'x', 'y']);
    expect(d.remove).toEqual([]);
  });

  it("pins a kept incremental's whole chain (its manifest's chain) also past a member missing from the list (a lost manifest may come back), and says so", () => {
    const chain = ['f', 'i1', 'i2', 'i3'];
    const backups: RetentionBackup[] = [
      { id: 'i3', timestamp: at(3), type: 'incremental', parentId: 'i2', chain },
      // i2 is missing: its manifest is lost or unreadable
      { id: 'i1', timestamp: at(1), type: 'incremental', parentId: 'f', chain: chain.slice(0, 2) },
      { id: 'f', timestamp: at(0), type: 'full', parentId: null, chain: chain.slice(0, 1) },
    ];
    const plan = planRetention(backups, { count: 1 }, at(4));
    expect(ids(plan.keep)).toEqual(['i3', 'i1', 'f']);
    expect(plan.remove).toEqual([]);
    expect(plan.warnings).toEqual([expect.stringContaining('backup i3 needs i2, which is not in the list (a lost or unreadable manifest?')]);
  });

  it('survives a parentId loop', () => {
    const plan = planRetention(
      [
        { id: 'a', timestamp: at(1), parentId: 'b' },
        { id: 'b', timestamp: at(0), parentId: 'a' },
      ],
      { count: 1 },
      at(2),
    );
    expect(ids(plan.keep)).toEqual(['a', 'b']);
    expect(plan.warnings).toEqual(['backup chain through a loops back on itself']);
  });
});
