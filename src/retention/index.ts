/**
 * Public entry of `s3db-backup/retention`: pure retention planning (no I/O), usable on its own.
 *
 *   import { planRetention, validateRetentionPolicy } from 's3db-backup/retention';
 *   const plan = planRetention(backups, { policy: 'gfs', hourly: 24, daily: 7, weekly: 4, monthly: 12 });
 *   // plan.keep: [{ id, reasons }], plan.remove: [{ id, reason }], newest first
 *
 * Semantics are restic `forget` (calendar keys in UTC, ISO weeks) plus backup-specific invariants
 * (failed/unverified backups, incremental chains, never the newest successful backup); see
 * docs/RETENTION.md.
 */
export { planRetention, toEpochMs, ACTIVE_STATUSES } from './plan.js';
export type { RetentionBackup, RetentionPlan } from './plan.js';
export { validateRetentionPolicy, DEFAULT_GFS, DEFAULT_SIMPLE_COUNT } from './policy.js';
export type {
  RetentionPolicy,
  GfsRetentionPolicy,
  SimpleRetentionPolicy,
  NormalizedRetentionPolicy,
  NormalizedGfsPolicy,
  NormalizedSimplePolicy,
  RetentionDurationInput,
} from './policy.js';
export { parseRetentionDuration, formatDuration } from './duration.js';
export type { RetentionDuration } from './duration.js';
export { calendarKey, isoWeekKey } from './calendar.js';
export type { CalendarUnit } from './calendar.js';
