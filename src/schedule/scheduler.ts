/**
 * Scheduler: fires a task on every tick of one schedule (see parse.ts), never overlapping.
 *
 * Invariants:
 * - At most one run at a time. A tick that comes while the previous run is still going is NOT
 *   queued and NOT run later: it is reported through `onSkip({ reason: 'overlap' })`.
 * - Each tick is run at most once. When the process was asleep or blocked past several ticks,
 *   only the latest due tick runs; the ones passed over are reported once via
 *   `onSkip({ reason: 'missed', count })`.
 * - The task gets `{ tick, tickId, signal }`: `tick` is the SCHEDULED time (identical on every
 *   instance, so it can key a fleet-wide lease), `signal` aborts when `stop({ abort: true })` is
 *   called.
 * - `stop()` clears the timer at once and resolves when the running task (if any) has settled;
 *   it never rejects. Called from inside the task itself, it returns without waiting (no deadlock). A task's error never escapes: it goes to `onError` (or a process warning).
 * - Timers are chunked below setTimeout's 24.8-day limit and re-checked on wake, so a timer that
 *   fires early never runs a tick before its time.
 * Several Schedulers (e.g. one per resource) are independent of each other.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { parseSchedule, nextTick, latestDueTick, type ParsedSchedule, type ScheduleInput } from './parse.js';

export interface TickContext {
  /** The scheduled time of this tick (not the time the timer actually fired). */
  tick: Date;
  /** tick.toISOString(): a stable identity for the tick across a fleet. */
  tickId: string;
  /** Aborted when the scheduler is stopped with { abort: true }. */
  signal: AbortSignal;
}

export interface SkipInfo {
  reason: 'overlap' | 'missed';
  /** The tick that was not run (for 'missed': the first one passed over). */
  tick: Date;
  /** How many ticks this report covers (1 for 'overlap'). */
  count: number;
  /** For 'overlap': the tick whose run was still going. */
  runningTick?: Date;
}

export interface SchedulerOptions {
  /** Time zone for cron and named schedules when `schedule` is not already parsed. Default 'UTC'. */
  timezone?: string;
  /** Option name for error messages when parsing. Default 'schedule'. */
  option?: string;
  onSkip?: (info: SkipInfo) => void;
  /** Called with the task's error (thrown or rejected). Without it, errors become process warnings. */
  onError?: (error: unknown, context: TickContext) => void;
  /** Let the process exit while the scheduler waits (timer.unref()). Default false: a started scheduler keeps the process alive until stop(). */
  unref?: boolean;
}

export type ScheduledTask = (context: TickContext) => unknown;

const MAX_TIMER_MS = 2_147_483_647;
/** Which scheduler's task is running in the current async context (lets stop() called from inside the task return without deadlocking). */
const insideTask = new AsyncLocalStorage<Scheduler>();

interface Run {
  tick: number;
  controller: AbortController;
  done: Promise<void>;
}

export class Scheduler {
  readonly schedule: ParsedSchedule;
  private readonly task: ScheduledTask;
  private readonly options: SchedulerOptions;
  private timer: NodeJS.Timeout | null = null;
  private dueAt: number | null = null;
  /** The last tick that was run, skipped or passed over: ticks at or before it never run. */
  private lastTick = Number.NEGATIVE_INFINITY;
  private current: Run | null = null;
  private started = false;

  constructor(schedule: ScheduleInput | ParsedSchedule, task: ScheduledTask, options: SchedulerOptions = {}) {
    if (typeof task !== 'function') throw new TypeError('Scheduler: task must be a function');
    this.schedule = isParsed(schedule) ? schedule : parseSchedule(schedule, { timezone: options.timezone, option: options.option });
    this.task = task;
    this.options = options;
  }

  /** Starts waiting for the next tick (ticks before now are not run). Idempotent. */
  start(): this {
    if (this.started) return this;
    this.started = true;
    this.lastTick = Math.max(this.lastTick, Date.now());
    this.arm();
    return this;
  }

  /** True while a task run is in progress. */
  get running(): boolean {
    return this.current !== null;
  }

  /** The scheduled time of the run in progress, or null. */
  get runningTick(): Date | null {
    return this.current ? new Date(this.current.tick) : null;
  }

  /** When the next tick fires; null before start(), after stop(), or when the schedule is disabled or exhausted. */
  nextRun(): Date | null {
    return this.started && this.dueAt !== null ? new Date(this.dueAt) : null;
  }

  /**
   * Cancels the timer and waits for the running task, if any. With { abort: true } the task's
   * signal is aborted first (with `reason`), so a cooperative task finishes early. Never rejects.
   * The scheduler can be started again afterwards.
   */
  async stop(options: { abort?: boolean; reason?: unknown } = {}): Promise<void> {
    this.started = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.dueAt = null;
    const run = this.current;
    if (!run) return;
    if (options.abort) run.controller.abort(options.reason ?? new Error('scheduler stopped'));
    if (insideTask.getStore() === this) return; // called by the task itself: waiting would deadlock
    await run.done;
  }

  private arm(): void {
    if (!this.started) return;
    const next = nextTick(this.schedule, Math.max(this.lastTick, Date.now()));
    this.dueAt = next;
    if (next === null) return;
    this.setTimer(next);
  }

  private setTimer(due: number): void {
    const delay = Math.min(Math.max(due - Date.now(), 0), MAX_TIMER_MS);
    this.timer = setTimeout(() => this.onTimer(), delay);
    if (this.options.unref) this.timer.unref();
  }

  private onTimer(): void {
    this.timer = null;
    if (!this.started || this.dueAt === null) return;
    const now = Date.now();
    if (now < this.dueAt) {
      this.setTimer(this.dueAt); // early wake-up or a chunk of a long wait
      return;
    }
    const previous = this.lastTick;
    const due = latestDueTick(this.schedule, previous, now) ?? { tick: this.dueAt, passed: 0 };
    this.lastTick = due.tick;
    if (due.passed > 0) {
      const firstMissed = nextTick(this.schedule, previous) ?? due.tick;
      this.report({ reason: 'missed', tick: new Date(firstMissed), count: due.passed });
    }
    this.fire(due.tick);
    this.arm();
  }

  private fire(tick: number): void {
    if (this.current) {
      this.report({ reason: 'overlap', tick: new Date(tick), count: 1, runningTick: new Date(this.current.tick) });
      return;
    }
    const controller = new AbortController();
    const context: TickContext = { tick: new Date(tick), tickId: new Date(tick).toISOString(), signal: controller.signal };
    const run: Run = { tick, controller, done: Promise.resolve() };
    this.current = run;
    run.done = (async () => {
      try {
        await insideTask.run(this, () => this.task(context));
      } catch (err) {
        this.fail(err, context);
      } finally {
        if (this.current === run) this.current = null;
      }
    })();
  }

  private report(info: SkipInfo): void {
    try {
      this.options.onSkip?.(info);
    } catch (err) {
      process.emitWarning(`s3db-backup scheduler: onSkip threw: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private fail(err: unknown, context: TickContext): void {
    if (this.options.onError) {
      try {
        this.options.onError(err, context);
        return;
      } catch (inner) {
        err = inner;
      }
    }
    process.emitWarning(`s3db-backup scheduler: run for tick ${context.tickId} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function isParsed(value: unknown): value is ParsedSchedule {
  return typeof value === 'object' && value !== null && 'kind' in value && 'description' in value;
}
