/**
 * Scheduling for s3db-backup: `parseSchedule` validates the `schedule` option, `Scheduler` runs a
 * task on each tick without overlap and stops cleanly. See parse.ts and scheduler.ts for the
 * invariants; per-resource schedules are simply several Schedulers.
 */
export { parseSchedule, nextTick, previousTick, latestDueTick, NAMED_SCHEDULES, MIN_INTERVAL_MS, MIN_PLUGIN_INTERVAL_MS } from './parse.js';
export type { ParsedSchedule, ScheduleInput, ParseScheduleOptions } from './parse.js';
export { Scheduler } from './scheduler.js';
export type { TickContext, SkipInfo, SchedulerOptions, ScheduledTask } from './scheduler.js';
