/**
 * Retention durations: restic's calendar durations ("1y2m3d4h": years, MONTHS, days, hours; no
 * minutes) or a plain number of milliseconds, at least an hour (a small number is days or hours meant). Calendar parts are subtracted field by field in UTC
 * with JavaScript's Date.UTC normalisation, which matches Go's time.AddDate (31 March minus one
 * month is 3 March, as in restic). Pure, no I/O.
 */
import { BackupError } from '../errors.js';

export interface RetentionDuration {
  years: number;
  months: number;
  days: number;
  hours: number;
  /** Extra milliseconds (only for durations given as a number). */
  ms: number;
}

const PART = /(\d+)([ymdh])/gy;
const HOUR_MS = 3_600_000;

/** Parses `value` (restic duration string or milliseconds) or throws ERR_INVALID_RETENTION naming `option`. */
export function parseRetentionDuration(value: unknown, option: string): RetentionDuration {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0 || !Number.isInteger(value)) {
      throw durationError(option, `${String(value)} is not a whole, non-negative number of milliseconds`);
    }
    // `within: 7` meant as days is 7 ms: every backup but the newest falls outside it
    if (value > 0 && value < HOUR_MS) {
      throw durationError(option, `${value} is ${value} milliseconds (numbers are milliseconds, and a retention shorter than an hour is not one anybody means): write '${value}d' for days, '${value}h' for hours`);
    }
    return { years: 0, months: 0, days: 0, hours: 0, ms: value };
  }
  if (typeof value !== 'string' || value.trim() === '') {
    throw durationError(option, `expected milliseconds or a duration like '7d', got ${describe(value)}`);
  }
  const text = value.trim();
  const result: RetentionDuration = { years: 0, months: 0, days: 0, hours: 0, ms: 0 };
  PART.lastIndex = 0;
  let consumed = 0;
  let match: RegExpExecArray | null;
  while ((match = PART.exec(text)) !== null) {
    const n = Number(match[1]);
    if (match[2] === 'y') result.years += n;
    else if (match[2] === 'm') result.months += n;
    else if (match[2] === 'd') result.days += n;
    else result.hours += n;
    consumed = PART.lastIndex;
  }
  if (consumed !== text.length) {
    throw durationError(option, `'${text}' is not a duration`);
  }
  return result;
}

function durationError(option: string, problem: string): BackupError {
  return new BackupError(
    'ERR_INVALID_RETENTION',
    `Invalid option "${option}": ${problem}. Use milliseconds (e.g. 86400000) or restic's form: a number followed by y (years), m (MONTHS), d (days) or h (hours), e.g. '1y6m', '7d', '36h'`,
    { details: { option } },
  );
}

function describe(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'string' ? `'${value}'` : typeof value;
}

export function isZeroDuration(d: RetentionDuration): boolean {
  return d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0 && d.ms === 0;
}

/** `time` (epoch ms) minus `d`, calendar fields first (UTC, normalised like Go's AddDate), then hours and ms; -Infinity past Date's range. */
export function subtractDuration(time: number, d: RetentionDuration): number {
  const t = new Date(time);
  // setUTCFullYear (unlike Date.UTC) does not remap years 0..99, so absurd durations stay exact.
  const shifted = new Date(0);
  shifted.setUTCFullYear(t.getUTCFullYear() - d.years, t.getUTCMonth() - d.months, t.getUTCDate() - d.days);
  shifted.setUTCHours(t.getUTCHours(), t.getUTCMinutes(), t.getUTCSeconds(), t.getUTCMilliseconds());
  const cutoff = shifted.getTime() - d.hours * 3_600_000 - d.ms;
  // beyond Date's range (a "keep for ever" '300000y'): before every backup, never NaN, which
  // compares false with every time and would keep none
  return Number.isNaN(cutoff) ? Number.NEGATIVE_INFINITY : cutoff;
}

/** restic's Duration.String(): "1y2m3d4h" with zero parts omitted; millisecond durations read "<n>ms". */
export function formatDuration(d: RetentionDuration): string {
  let s = '';
  if (d.years) s += `${d.years}y`;
  if (d.months) s += `${d.months}m`;
  if (d.days) s += `${d.days}d`;
  if (d.hours) s += `${d.hours}h`;
  if (d.ms) s += `${d.ms}ms`;
  return s === '' ? '0h' : s;
}
