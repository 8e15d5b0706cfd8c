/**
 * Long simulated timelines: years of hourly backups, pruned after every backup exactly as the
 * plugin does (plan on what is left, delete `remove`). The kept set must equal, at checkpoints and
 * at the end, an independent computation from the full history (newest backup of each of the last
 * N periods that have a backup, per rule, plus restic's oldest-backup rule), and the final counts
 * are checked against numbers worked out by hand in the comments.
 */
import { describe, expect, it } from 'vitest';
import { calendarKey, planRetention, type CalendarUnit, type RetentionBackup } from '../src/retention/index.js';

const HOUR = 3_600_000;

interface Sim {
  id: string;
  time: number;
  status?: string;
  parentId?: string;
  type?: string;
}

/** Independent expectation: union over rules of the newest backup of each of the last N periods (+ oldest rule). */
function expectedKept(history: Sim[], rules: Partial<Record<CalendarUnit, number>>): Set<string> {
  const ok = history.filter((b) => b.status === undefined || b.status === 'completed');
  const keep = new Set<string>();
  if (ok.length === 0) return keep;
  const oldest = ok.reduce((a, b) => (b.time < a.time ? b : a));
  for (const [unit, n] of Object.entries(rules) as Array<[CalendarUnit, number]>) {
    const newestPerPeriod = new Map<number, Sim>();
    for (const b of ok) {
      const key = calendarKey(unit, b.time);
      const cur = newestPerPeriod.get(key);
      if (!cur || b.time > cur.time) newestPerPeriod.set(key, b);
    }
    const periods = [...newestPerPeriod.keys()].sort((a, b) => b - a);
    for (const p of n === -1 ? periods : periods.slice(0, n)) keep.add(newestPerPeriod.get(p)!.id);
    if (n === -1 || periods.length < n) keep.add(oldest.id);
  }
  return keep;
}

/** Runs `hours` hourly backups from `start`, pruning after each; returns the survivors. */
function simulate(
  start: number,
  hours: number,
  policy: Record<string, unknown>,
  opts: { skip?: (t: number) => boolean; fail?: (t: number) => boolean; fullEvery?: number; check?: (i: number, kept: Sim[], history: Sim[]) => void } = {},
): { kept: Sim[]; history: Sim[] } {
  let kept: Sim[] = [];
  const history: Sim[] = [];
  let previous: Sim | undefined;
  let sinceFull = 0;
  for (let i = 0; i < hours; i++) {
    const time = start + i * HOUR;
    if (opts.skip?.(time)) continue;
    const failed = opts.fail?.(time) ?? false;
    const b: Sim = { id: `b${i}`, time, status: failed ? 'failed' : 'completed' };
    if (opts.fullEvery && !failed) {
      if (previous && sinceFull < opts.fullEvery - 1) {
        b.type = 'incremental';
        b.parentId = previous.id;
        sinceFull += 1;
      } else {
        b.type = 'full';
        sinceFull = 0;
      }
      previous = b;
    }
    history.push(b);
    kept.push(b);
    const plan = planRetention(
      kept.map((k): RetentionBackup => ({ id: k.id, timestamp: k.time, status: k.status, type: k.type, parentId: k.parentId })),
      policy,
      time + 60_000,
    );
    const removed = new Set(plan.remove.map((r) => r.id));
    expect(plan.keep.length + removed.size).toBe(kept.length);
    kept = kept.filter((k) => !removed.has(k.id));
    opts.check?.(i, kept, history);
  }
  return { kept, history };
}

const SEED = { policy: 'gfs', hourly: 24, daily: 7, weekly: 4, monthly: 12 } as const;
const START = Date.parse('2024-01-01T00:30:00Z');
const THREE_YEARS = (Date.parse('2026-12-31T23:30:00Z') - START) / HOUR + 1; // 26304 hourly backups

describe('three years of hourly backups, pruned after each one', () => {
  it("the seed's GFS policy (24/7/4/12) keeps exactly 43 at the end, and the expected set all along", () => {
    let checks = 0;
    const { kept, history } = simulate(START, THREE_YEARS, SEED, {
      check: (i, keptNow, hist) => {
        if (i % 997 !== 0) return;
        checks++;
        expect(new Set(keptNow.map((k) => k.id))).toEqual(expectedKept(hist, { hourly: 24, daily: 7, weekly: 4, monthly: 12 }));
      },
    });
    expect(history).toHaveLength(26304);
    expect(checks).toBeGreaterThan(20);
    // End: Thu 2026-12-31 23:30. hourly 24 = all of 31 Dec; daily 7 adds 25..30 Dec 23:30 (6);
    // weekly 4: W53 (31 Dec) and W52 (27 Dec) are already kept, W51 (20 Dec) and W50 (13 Dec) add 2;
    // monthly 12: Dec is kept, Jan..Nov 2026 month-ends add 11. 24 + 6 + 2 + 11 = 43.
    expect(kept).toHaveLength(43);
    expect(new Set(kept.map((k) => k.id))).toEqual(expectedKept(history, { hourly: 24, daily: 7, weekly: 4, monthly: 12 }));
    const iso = kept.map((k) => new Date(k.time).toISOString());
    expect(iso).toContain('2026-01-31T23:30:00.000Z');
    expect(iso).not.toContain('2025-12-31T23:30:00.000Z');
    // Pruning after every backup gives the same result as one plan over the whole history.
    const once = planRetention(history.map((h) => ({ id: h.id, timestamp: h.time })), SEED, history.at(-1)!.time + 60_000);
    expect(once.keep.map((k) => k.id).sort()).toEqual(kept.map((k) => k.id).sort());
  });

  it('with yearly 5 the oldest backup survives as "oldest yearly" (46 kept)', () => {
    const policy = { ...SEED, yearly: 5 };
    const { kept, history } = simulate(START, THREE_YEARS, policy);
    // 43 as above + yearly 2025-12-31 23:30 and 2024-12-31 23:30 (2), and only 3 of the 5 yearly
    // slots are used, so the very first backup (2024-01-01 00:30) is kept by the oldest rule: 46.
    expect(kept).toHaveLength(46);
    expect(new Set(kept.map((k) => k.id))).toEqual(expectedKept(history, { hourly: 24, daily: 7, weekly: 4, monthly: 12, yearly: 5 }));
    expect(kept.some((k) => k.time === START)).toBe(true);
  });
});

describe('a year with outages and failures', () => {
  it('gaps do not use up counts, failures never fill a slot, and the expected set holds', () => {
    const start = Date.parse('2025-03-01T00:15:00Z');
    const outage = (t: number) => t >= Date.parse('2025-07-10T00:00:00Z') && t < Date.parse('2025-08-20T00:00:00Z');
    // Every 7th backup fails, and the last 30 hours of the run fail too.
    const end = start + 365 * 24 * HOUR;
    const fail = (t: number) => Math.round((t - start) / HOUR) % 7 === 3 || t > end - 30 * HOUR;
    const rules = { hourly: 12, daily: 10, weekly: 6, monthly: 6 };
    const { kept, history } = simulate(start, 365 * 24, { policy: 'gfs', ...rules }, {
      skip: outage,
      fail,
      check: (i, keptNow, hist) => {
        if (i % 613 !== 0) return;
        const want = expectedKept(hist, rules);
        const newestFailure = [...hist].reverse().find((h) => h.status === 'failed');
        const newestOk = [...hist].reverse().find((h) => h.status === 'completed');
        if (newestFailure && newestOk && newestFailure.time > newestOk.time) want.add(newestFailure.id);
        expect(new Set(keptNow.map((k) => k.id))).toEqual(want);
      },
    });
    const ok = kept.filter((k) => k.status === 'completed');
    const failed = kept.filter((k) => k.status === 'failed');
    // The run ends with 30 failed hours: only the newest failure is kept, beside the successes.
    expect(failed).toHaveLength(1);
    expect(failed[0].time).toBe(history.at(-1)!.time);
    expect(new Set(ok.map((k) => k.id))).toEqual(expectedKept(history, rules));
    // The newest successful backup is 30 hours old and is still kept.
    const newestOk = [...history].reverse().find((h) => h.status === 'completed')!;
    expect(ok.map((k) => k.id)).toContain(newestOk.id);
    // Monthly 6 reaches back over the 41-day outage: 6 distinct months with backups.
    const months = new Set(ok.map((k) => calendarKey('monthly', k.time)));
    expect(months.size).toBe(6);
    expect(ok.length).toBe(expectedKept(history, rules).size);
  });
});

describe('incremental chains over two months', () => {
  it('a full every 24 backups: every kept incremental has its whole chain, nothing else survives', () => {
    const start = Date.parse('2026-01-01T00:00:00Z');
    const rules = { hourly: 6, daily: 3, weekly: 2 };
    const { kept, history } = simulate(start, 60 * 24, { policy: 'gfs', ...rules }, { fullEvery: 24 });
    const byId = new Map(history.map((h) => [h.id, h]));
    // Expected: rule-kept backups plus the closure over parentId.
    const want = expectedKept(history, rules);
    for (const id of [...want]) {
      let p = byId.get(id)!.parentId;
      while (p) {
        want.add(p);
        p = byId.get(p)!.parentId;
      }
    }
    expect(new Set(kept.map((k) => k.id))).toEqual(want);
    // Chains run 00:00 (full) .. 23:00. The run ends Sun 1 Mar 23:00: hourly 6 and daily 3 keep
    // backups of 1 Mar, 28 Feb, 27 Feb; weekly 2 keeps 1 Mar (W09) and Sun 22 Feb 23:00 (W08).
    // Each of those 23:00 backups pins its whole day: 4 days x 24 = 96.
    for (const k of kept) if (k.parentId) expect(kept.map((x) => x.id)).toContain(k.parentId);
    expect(kept).toHaveLength(96);
  });
});
