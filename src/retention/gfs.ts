/**
 * restic `forget` semantics (internal/data/snapshot_policy.go), reimplemented as a pure function.
 *
 * Input: items sorted NEWEST FIRST (ties keep their input order, like restic's stable sort).
 * - Each count rule (last, hourly, daily, weekly, monthly, yearly) has a budget (N, or -1 for
 *   unlimited) and remembers the last bucket key it kept. Walking newest first, a rule keeps an
 *   item when the item's key differs from the rule's last kept key, and spends one unit. So the
 *   NEWEST item of each period is kept, counts cover the last N periods that HAVE an item, and all
 *   rules see every item (OR'ed, independent counters: one item can fill a daily and a weekly slot).
 * - The oldest item is kept by every rule that still has budget when it is reached ("oldest daily").
 * - `tags` rules keep every item carrying all tags of one list; they spend nothing.
 * - `within` keeps every item newer than latest - duration; `withinHourly` etc. keep the newest
 *   item per period inside that window (plus the oldest one, as above). "latest" is the newest
 *   item that is not after `now` (restic ignores snapshots from the future), not `now` itself.
 * Reasons use restic's words, with "snapshot" read as "backup".
 */
import { calendarKey, type CalendarUnit } from './calendar.js';
import { formatDuration, parseRetentionDuration, subtractDuration, type RetentionDuration } from './duration.js';
import type { NormalizedGfsPolicy } from './policy.js';

export interface GfsItem {
  /** Epoch milliseconds. */
  time: number;
  tags?: readonly string[];
}

export interface GfsDecision {
  keep: boolean;
  reasons: string[];
  /** Budgets left after this item, for rules with a budget (0 omitted, -1 = unlimited), as restic reports them. */
  counters: Record<string, number>;
}

type CountRule = 'last' | CalendarUnit;
const COUNT_RULES: readonly CountRule[] = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'];
const WITHIN_RULES: ReadonlyArray<[keyof NormalizedGfsPolicy, CalendarUnit]> = [
  ['withinHourly', 'hourly'],
  ['withinDaily', 'daily'],
  ['withinWeekly', 'weekly'],
  ['withinMonthly', 'monthly'],
  ['withinYearly', 'yearly'],
];

function hasTags(item: GfsItem, wanted: readonly string[]): boolean {
  const tags = item.tags ?? [];
  return wanted.every((t) => tags.includes(t));
}

/** Applies a normalised GFS policy to `items` (newest first). Returns one decision per item, same order. */
export function applyGfs(items: readonly GfsItem[], policy: NormalizedGfsPolicy, now: number): GfsDecision[] {
  if (items.length === 0) return [];
  let latest = Number.NEGATIVE_INFINITY;
  for (const item of items) if (item.time > latest && item.time <= now) latest = item.time;
  // all in the future: no latest (restic's zero time), so every within window reaches back past all

  const counts = COUNT_RULES.map((rule) => ({ rule, budget: policy[rule], last: Number.NaN }));
  const within = policy.within === undefined ? null : withinCutoff(policy.within, latest);
  const windows = WITHIN_RULES.flatMap(([key, unit]) => {
    const value = policy[key] as number | string | undefined;
    if (value === undefined) return [];
    const d = parseRetentionDuration(value, `retention.${String(key)}`);
    return [{ unit, label: `${unit} within ${formatDuration(d)}`, cutoff: subtractDuration(latest, d), last: Number.NaN }];
  });

  return items.map((item, nr) => {
    const reasons: string[] = [];
    const isOldest = nr === items.length - 1;
    for (const list of policy.tags) {
      if (hasTags(item, list)) reasons.push(`has tags [${list.join(', ')}]`);
    }
    if (within && item.time > within.cutoff) reasons.push(`within ${within.label}`);
    for (const c of counts) {
      if (c.budget === 0) continue;
      const key = c.rule === 'last' ? nr : calendarKey(c.rule, item.time);
      if (key !== c.last || isOldest) {
        reasons.push(key === c.last ? `oldest ${c.rule} backup` : `${c.rule} backup`);
        c.last = key;
        if (c.budget > 0) c.budget -= 1;
      }
    }
    for (const w of windows) {
      if (!(item.time > w.cutoff)) continue;
      const key = calendarKey(w.unit, item.time);
      if (key !== w.last || isOldest) {
        reasons.push(key === w.last ? `oldest ${w.label}` : w.label);
        w.last = key;
      }
    }
    const counters: Record<string, number> = {};
    for (const c of counts) if (c.budget !== 0) counters[c.rule] = c.budget;
    return { keep: reasons.length > 0, reasons, counters };
  });
}

function withinCutoff(value: number | string, latest: number): { cutoff: number; label: string } {
  const d: RetentionDuration = parseRetentionDuration(value, 'retention.within');
  return { cutoff: subtractDuration(latest, d), label: formatDuration(d) };
}
