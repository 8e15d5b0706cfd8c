/**
 * Retention policy validation and normalisation (pure). Turns what a user writes into one explicit
 * policy object, or throws BackupError ERR_INVALID_RETENTION naming the offending `retention.*` key.
 *
 * Rules (documented in docs/RETENTION.md):
 * - `policy` is 'gfs' or 'simple'. Without `policy`, the keys decide: count/maxAge mean simple
 *   (the seed's `{ count: 100 }`), GFS keys mean gfs; mixing both families is refused.
 * - GFS defaults only when NO rule key is written: `{ policy: 'gfs' }` is hourly 24, daily 7,
 *   weekly 4, monthly 12 (the seed's defaults table). As soon as one rule key is written, every
 *   omitted rule is off (0) - what you write is what you get, exactly like restic forget.
 * - Without `policy`, only daily/weekly/monthly/yearly keys (or none: `{}`) are s3db.js's
 *   BackupPlugin's reading (s3dbReading): each one left out is its default (daily 7, weekly 4,
 *   monthly 12, yearly 3), and `daily` keeps every backup of those days, as it did.
 * - Simple: `count` is 10 unless written (the seed's table gives count and maxAge a default each:
 *   10 and none), so `{ maxAge }` keeps the newest 10 too; `{ count: 0, maxAge }` is maxAge alone.
 * - Counts are whole numbers >= -1 (-1 unlimited, 0 off). Durations: see duration.ts.
 * - A policy whose rules are all off is refused (restic refuses an empty policy too).
 * - Unknown keys are refused (a typo like `dayly` must not silently delete backups).
 * - The normalised policy is itself a valid input: validating it again returns an equal object.
 */
import { BackupError } from '../errors.js';
import { isZeroDuration, parseRetentionDuration } from './duration.js';
import { knownHint } from '../known-names.js';

/** A rule duration: milliseconds, or restic's calendar form '1y2m3d4h' (m = MONTHS). */
export type RetentionDurationInput = number | string;

export interface GfsRetentionPolicy {
  policy?: 'gfs';
  /** Keep the newest N backups. */
  last?: number;
  /** Keep the newest backup of each of the last N hours (UTC) that have a backup. */
  hourly?: number;
  daily?: number;
  /** ISO weeks, Monday to Sunday, UTC. */
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** Keep every backup newer than (newest backup - within). */
  within?: RetentionDurationInput;
  /** Keep the newest backup of every hour inside (newest backup - withinHourly). */
  withinHourly?: RetentionDurationInput;
  withinDaily?: RetentionDurationInput;
  withinWeekly?: RetentionDurationInput;
  withinMonthly?: RetentionDurationInput;
  withinYearly?: RetentionDurationInput;
  /**
   * Keep every backup carrying a tag set (restic --keep-tag). Each entry is one rule: a string
   * 'foo' (or 'foo,bar' = both) or an array ['foo', 'bar'] meaning "has all of these".
   */
  tags?: Array<string | string[]>;
}

export interface SimpleRetentionPolicy {
  policy?: 'simple';
  /** Keep the newest N successful backups (-1 = all). */
  count?: number;
  /** Also keep every successful backup younger than this (ms or '30d'), measured from `now`. */
  maxAge?: RetentionDurationInput;
}

export type RetentionPolicy = GfsRetentionPolicy | SimpleRetentionPolicy;

export interface NormalizedGfsPolicy {
  policy: 'gfs';
  last: number;
  hourly: number;
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
  within?: RetentionDurationInput;
  withinHourly?: RetentionDurationInput;
  withinDaily?: RetentionDurationInput;
  withinWeekly?: RetentionDurationInput;
  withinMonthly?: RetentionDurationInput;
  withinYearly?: RetentionDurationInput;
  tags: string[][];
}

export interface NormalizedSimplePolicy {
  policy: 'simple';
  count: number;
  maxAge?: RetentionDurationInput;
}

export type NormalizedRetentionPolicy = NormalizedGfsPolicy | NormalizedSimplePolicy;

export const GFS_COUNT_KEYS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export const GFS_WITHIN_KEYS = ['within', 'withinHourly', 'withinDaily', 'withinWeekly', 'withinMonthly', 'withinYearly'] as const;
const GFS_KEYS: readonly string[] = [...GFS_COUNT_KEYS, ...GFS_WITHIN_KEYS, 'tags'];
const SIMPLE_KEYS: readonly string[] = ['count', 'maxAge'];

/** The seed's defaults table, applied only when a policy names no rule at all. */
export const DEFAULT_GFS = { hourly: 24, daily: 7, weekly: 4, monthly: 12 } as const;
export const DEFAULT_SIMPLE_COUNT = 10;

function fail(option: string, problem: string, hint?: string): BackupError {
  return new BackupError('ERR_INVALID_RETENTION', `Invalid option "${option}": ${problem}${hint ? `. ${hint}` : ''}`, {
    details: { option },
  });
}

function readCount(raw: Record<string, unknown>, key: string): number {
  const value = raw[key];
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < -1) {
    // (String: JSON.stringify says null for Infinity and NaN)
    throw fail(`retention.${key}`, `expected a whole number >= -1, got ${typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? typeof value)}`, '0 turns the rule off and -1 keeps without limit');
  }
  return value;
}

function readDuration(raw: Record<string, unknown>, key: string): RetentionDurationInput | undefined {
  const value = raw[key];
  if (value === undefined) return undefined;
  const parsed = parseRetentionDuration(value, `retention.${key}`);
  if (isZeroDuration(parsed)) return undefined;
  return typeof value === 'string' ? value.trim() : (value as number);
}

function readTags(value: unknown): string[][] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw fail('retention.tags', 'expected an array of tag rules', "e.g. tags: ['release', ['monthly', 'audited']]");
  return value.map((entry, i) => {
    const list = typeof entry === 'string' ? entry.split(',') : entry;
    if (!Array.isArray(list) || list.length === 0) throw fail(`retention.tags[${i}]`, 'expected a tag or a non-empty array of tags');
    return list.map((tag: unknown) => {
      if (typeof tag !== 'string' || tag.trim() === '') throw fail(`retention.tags[${i}]`, 'tags must be non-empty strings');
      return tag.trim();
    });
  });
}

/** The keys s3db.js's BackupPlugin took (no `policy`), and what it filled in for each one left out. */
const S3DB_DEFAULTS = { daily: 7, weekly: 4, monthly: 12, yearly: 3 } as const;
const S3DB_KEYS: readonly string[] = Object.keys(S3DB_DEFAULTS);

/**
 * s3db.js's BackupPlugin's retention (no `policy`; daily/weekly/monthly/yearly, each left out at
 * its default, `{}` included), as it applied it: every backup younger than `daily` days, one a week
 * back to `weekly` weeks, one a month back to `monthly` months, one a year back to `yearly` years.
 * In restic's terms: `within`, `withinWeekly`, `withinMonthly`, `withinYearly` (measured from the
 * newest backup, not from now, so a pause in backups keeps more, never less).
 */
function s3dbReading(raw: Record<string, unknown>): NormalizedGfsPolicy {
  const count = (key: keyof typeof S3DB_DEFAULTS) => (raw[key] === undefined ? S3DB_DEFAULTS[key] : readCount(raw, key));
  // -1 (no limit), or a span past any date, reaches back past every backup
  const span = (n: number, unit: 'h' | 'd' | 'm' | 'y', per = 1, extra = 0) => (n === -1 || n * per > 1_000_000 ? '100000y' : `${n * per + extra}${unit}`);
  const out: NormalizedGfsPolicy = { policy: 'gfs', last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0, tags: [] };
  const [daily, weekly, monthly, yearly] = [count('daily'), count('weekly'), count('monthly'), count('yearly')];
  // One period more than written (an hour for `daily`): s3db.js kept one backup per period-long
  // bucket of age, up to that many whole periods old, which reaches further back than the same
  // number of calendar periods counted from the newest backup (review-s17b: {monthly: 3} kept an
  // 87-day-old backup there, 58 days here).
  if (daily !== 0) out.within = span(daily, 'h', 24, 1);
  const more = (n: number) => (n === -1 ? -1 : n + 1);
  if (weekly !== 0) out.withinWeekly = span(more(weekly), 'd', 7);
  if (monthly !== 0) out.withinMonthly = span(more(monthly), 'm');
  if (yearly !== 0) out.withinYearly = span(more(yearly), 'y');
  if (daily === 0 && weekly === 0 && monthly === 0 && yearly === 0) {
    throw fail('retention', 'every rule is 0, so the policy would keep nothing', 'Leave `retention` out to never prune, or keep one rule above 0');
  }
  return out;
}

/**
 * Validates a retention policy and returns its explicit, normalised form. Throws BackupError
 * ERR_INVALID_RETENTION (naming the key) for anything that is not a usable policy. Call it when the
 * plugin is constructed so configuration mistakes surface before the first backup.
 */
export function validateRetentionPolicy(policy: unknown): NormalizedRetentionPolicy {
  if (policy === null || typeof policy !== 'object' || Array.isArray(policy)) {
    throw fail('retention', `expected an object, got ${policy === null ? 'null' : Array.isArray(policy) ? 'an array' : typeof policy}`, "e.g. { policy: 'gfs', hourly: 24, daily: 7 } or { policy: 'simple', count: 10 }");
  }
  // null is "not set", as undefined (the story's table gives null as maxAge's default)
  const raw = Object.fromEntries(Object.entries(policy).filter(([, v]) => v !== null)) as Record<string, unknown>;
  const keys = Object.keys(raw).filter((k) => k !== 'policy' && raw[k] !== undefined);
  let kind = raw.policy;
  if (kind !== undefined && kind !== 'gfs' && kind !== 'simple') {
    throw fail('retention.policy', `unknown policy ${JSON.stringify(kind)}`, "Use 'gfs' or 'simple'");
  }
  for (const key of keys) {
    if (!GFS_KEYS.includes(key) && !SIMPLE_KEYS.includes(key)) {
      throw fail(`retention.${key}`, 'unknown key', knownHint(key, ['policy', ...SIMPLE_KEYS, ...GFS_KEYS], 'Known keys'));
    }
  }
  const gfsKeys = keys.filter((k) => GFS_KEYS.includes(k));
  const simpleKeys = keys.filter((k) => SIMPLE_KEYS.includes(k));
  if (kind === undefined) {
    if (gfsKeys.length > 0 && simpleKeys.length > 0) {
      throw fail('retention', `mixes simple keys (${simpleKeys.join(', ')}) with GFS keys (${gfsKeys.join(', ')})`, "Pick one: policy 'simple' (count, maxAge) or 'gfs' (last, hourly, daily, weekly, monthly, yearly, within*, tags)");
    }
    if (keys.every((k) => S3DB_KEYS.includes(k))) return s3dbReading(raw);
    kind = simpleKeys.length > 0 ? 'simple' : 'gfs';
  }
  if (kind === 'gfs') {
    if (simpleKeys.length > 0) {
      throw fail(`retention.${simpleKeys[0]}`, "belongs to policy 'simple'", "With policy 'gfs' use `last` for a plain count and `within` for an age");
    }
    if (gfsKeys.length === 0) {
      return { policy: 'gfs', last: 0, hourly: DEFAULT_GFS.hourly, daily: DEFAULT_GFS.daily, weekly: DEFAULT_GFS.weekly, monthly: DEFAULT_GFS.monthly, yearly: 0, tags: [] };
    }
    const out: NormalizedGfsPolicy = {
      policy: 'gfs',
      last: readCount(raw, 'last'),
      hourly: readCount(raw, 'hourly'),
      daily: readCount(raw, 'daily'),
      weekly: readCount(raw, 'weekly'),
      monthly: readCount(raw, 'monthly'),
      yearly: readCount(raw, 'yearly'),
      tags: readTags(raw.tags),
    };
    for (const key of GFS_WITHIN_KEYS) {
      const d = readDuration(raw, key);
      if (d !== undefined) out[key] = d;
    }
    const hasRule = GFS_COUNT_KEYS.some((k) => out[k] !== 0) || GFS_WITHIN_KEYS.some((k) => out[k] !== undefined) || out.tags.length > 0;
    if (!hasRule) {
      throw fail('retention', 'every rule of the GFS policy is 0 or empty, so it would keep nothing', 'Set at least one of last, hourly, daily, weekly, monthly, yearly, within*, tags (or omit `retention` to never prune)');
    }
    return out;
  }
  if (gfsKeys.length > 0) {
    throw fail(`retention.${gfsKeys[0]}`, "belongs to policy 'gfs'", "With policy 'simple' use count and maxAge");
  }
  if (simpleKeys.length === 0) return { policy: 'simple', count: DEFAULT_SIMPLE_COUNT };
  // count keeps the story's default 10 beside a maxAge (its table gives each its own default): with
  // count 0, the first backup after a pause longer than maxAge would leave that backup alone
  // (kopia#3758); `count: 0` written says so
  const out: NormalizedSimplePolicy = { policy: 'simple', count: raw.count === undefined ? DEFAULT_SIMPLE_COUNT : readCount(raw, 'count') };
  if (raw.maxAge !== undefined && isZeroDuration(parseRetentionDuration(raw.maxAge, 'retention.maxAge'))) {
    throw fail('retention.maxAge', 'an age of 0 keeps no backup by age', "Leave maxAge out, or give an age such as '30d' (or milliseconds)");
  }
  const maxAge = readDuration(raw, 'maxAge');
  if (maxAge !== undefined) out.maxAge = maxAge;
  if (out.count === 0 && out.maxAge === undefined) {
    throw fail('retention', 'count is 0 and there is no maxAge, so the policy would keep nothing', 'Set count >= 1 (or -1 for all) and/or maxAge');
  }
  return out;
}
