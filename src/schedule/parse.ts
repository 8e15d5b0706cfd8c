/**
 * Schedule parsing: turns the `schedule` option into a ParsedSchedule and computes tick times.
 *
 * Accepted values (anything else is a BackupError ERR_INVALID_OPTION naming `schedule`):
 * - false or null: no scheduled backups.
 * - 'hourly' (minute 0), 'daily' (00:00), 'weekly' (MONDAY 00:00, the start of an ISO week, so it
 *   lines up with GFS weekly buckets), 'monthly' (1st, 00:00), 'yearly' / 'annually' (1 Jan 00:00),
 *   all in the schedule's time zone (UTC unless configured). Case-insensitive.
 * - A cron expression (5 fields, or 6 with seconds), evaluated by croner, including croner's
 *   nicknames ('@daily', '@weekly' = SUNDAY as in classic cron, ...).
 * - A number of milliseconds (or a string of digits), at least 100. Interval ticks are aligned to
 *   the Unix epoch (tick k is at k * interval ms UTC), so every instance of a fleet agrees on which
 *   tick is which - the fleet-wide lease relies on that.
 *
 * Invariant: nextTick(schedule, t) is strictly after t, and every instance computes the same ticks
 * for the same schedule (a tick's identity is its scheduled time).
 */
import { Cron } from 'croner';
import { BackupError } from '../errors.js';

export type ScheduleInput = 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly' | string | number | false | null;

export type ParsedSchedule =
  | { kind: 'disabled'; description: string }
  | { kind: 'cron'; expression: string; timezone: string; description: string }
  | { kind: 'interval'; intervalMs: number; description: string };

export interface ParseScheduleOptions {
  /** IANA time zone for cron and named schedules. Default 'UTC'. */
  timezone?: string;
  /** Option name used in error messages. Default 'schedule' (e.g. 'resources.analytics.schedule'). */
  option?: string;
  /** Shortest interval accepted (and named in errors). Default MIN_INTERVAL_MS. */
  minIntervalMs?: number;
}

/** The shortest interval a Scheduler takes. */
export const MIN_INTERVAL_MS = 100;
/** The shortest interval the plugin's `schedule` options take (its policy passes it as minIntervalMs). */
export const MIN_PLUGIN_INTERVAL_MS = 1000;

export const NAMED_SCHEDULES: Readonly<Record<string, string>> = {
  hourly: '0 * * * *',
  daily: '0 0 * * *',
  weekly: '0 0 * * 1',
  monthly: '0 0 1 * *',
  yearly: '0 0 1 1 *',
  annually: '0 0 1 1 *',
};

function scheduleError(option: string, problem: string, minIntervalMs = MIN_INTERVAL_MS): BackupError {
  return new BackupError(
    'ERR_INVALID_OPTION',
    `Invalid option "${option}": ${problem}. Use 'hourly', 'daily', 'weekly', 'monthly', 'yearly', a cron expression like '0 */6 * * *', a number of milliseconds (>= ${minIntervalMs}), or false to disable`,
    { details: { option } },
  );
}

/** The plugin's `timezone` option (every schedule uses it): its errors name it, not the schedule. */
function checkTimezone(timezone: unknown): string {
  const option = 'timezone';
  if (typeof timezone !== 'string' || timezone === '') throw scheduleError(option, 'the time zone must be an IANA name such as "UTC" or "Europe/Berlin"');
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw new BackupError('ERR_INVALID_OPTION', `Invalid option "${option}": unknown time zone "${timezone}". Use an IANA name such as "UTC" or "Europe/Berlin"`, { details: { option } });
  }
  return timezone;
}

/** Parses a `schedule` option. Throws BackupError ERR_INVALID_OPTION (naming the option) when invalid. */
export function parseSchedule(value: unknown, options: ParseScheduleOptions = {}): ParsedSchedule {
  const option = options.option ?? 'schedule';
  const min = options.minIntervalMs ?? MIN_INTERVAL_MS;
  const fail = (problem: string) => scheduleError(option, problem, min);
  const timezone = checkTimezone(options.timezone ?? 'UTC');
  if (value === false || value === null) return { kind: 'disabled', description: 'disabled' };
  if (typeof value === 'string' && /^\d+$/.test(value.trim())) value = Number(value.trim());
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || !Number.isInteger(value)) throw fail(`${value} is not a whole number of milliseconds`);
    if (value < min) throw fail(`${value} ms is too short (the value is in MILLISECONDS, e.g. 60000 for one minute)`);
    return { kind: 'interval', intervalMs: value, description: `every ${value} ms` };
  }
  if (typeof value !== 'string' || value.trim() === '') {
    throw fail(`got ${value === undefined ? 'undefined' : Array.isArray(value) ? 'an array' : typeof value === 'string' ? 'an empty string' : typeof value}`);
  }
  const text = value.trim();
  const named = NAMED_SCHEDULES[text.toLowerCase()];
  const expression = named ?? text;
  let cron: Cron;
  try {
    cron = new Cron(expression, { timezone, paused: true });
  } catch (err) {
    throw fail(`'${text}' is not a valid cron expression (${err instanceof Error ? err.message : String(err)})`);
  }
  const first = cron.nextRun(new Date());
  cron.stop();
  if (first === null) throw fail(`'${text}' never fires`);
  return { kind: 'cron', expression, timezone, description: named ? `${text.toLowerCase()} (${expression} ${timezone})` : `cron '${expression}' (${timezone})` };
}

/** The first tick strictly after `after` (epoch ms), or null when the schedule is disabled or never fires again. */
export function nextTick(schedule: ParsedSchedule, after: number | Date): number | null {
  const t = typeof after === 'number' ? after : after.getTime();
  if (schedule.kind === 'disabled') return null;
  if (schedule.kind === 'interval') return (Math.floor(t / schedule.intervalMs) + 1) * schedule.intervalMs;
  const cron = new Cron(schedule.expression, { timezone: schedule.timezone, paused: true });
  try {
    const next = cron.nextRun(new Date(t));
    return next === null ? null : next.getTime();
  } finally {
    cron.stop();
  }
}

/** The latest tick at or before `at`, or null when there is none (a disabled schedule). */
export function previousTick(schedule: ParsedSchedule, at: number): number | null {
  if (schedule.kind === 'disabled') return null;
  if (schedule.kind === 'interval') return Math.floor(at / schedule.intervalMs) * schedule.intervalMs;
  const cron = new Cron(schedule.expression, { timezone: schedule.timezone, paused: true });
  try {
    return cron.previousRuns(1, new Date(at + 1))[0]?.getTime() ?? null;
  } finally {
    cron.stop();
  }
}

/** The latest tick at or before `at` that is strictly after `after`, plus how many ticks in (after, at] were passed over. */
export function latestDueTick(schedule: ParsedSchedule, after: number, at: number): { tick: number; passed: number } | null {
  if (schedule.kind === 'disabled') return null;
  if (schedule.kind === 'interval') {
    const last = Math.floor(at / schedule.intervalMs) * schedule.intervalMs;
    if (last <= after) return null;
    const first = (Math.floor(after / schedule.intervalMs) + 1) * schedule.intervalMs;
    return { tick: last, passed: (last - first) / schedule.intervalMs };
  }
  const cron = new Cron(schedule.expression, { timezone: schedule.timezone, paused: true });
  try {
    let tick: number | null = null;
    let passed = -1;
    let cursor = after;
    for (;;) {
      const next = cron.nextRun(new Date(cursor));
      if (next === null || next.getTime() > at) break;
      tick = next.getTime();
      cursor = tick;
      passed += 1;
      if (passed > 10_000) {
        // A very long sleep with a seconds-level cron: jump to the end instead of walking every tick.
        const prev = cron.previousRuns(1, new Date(at + 1));
        if (prev.length > 0 && prev[0].getTime() > tick) tick = prev[0].getTime();
        break;
      }
    }
    return tick === null ? null : { tick, passed: Math.max(passed, 0) };
  } finally {
    cron.stop();
  }
}
