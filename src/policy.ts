/**
 * BackupPolicy: makes backups happen on their own. Schedules (one Scheduler for the main schedule,
 * one per distinct per-resource schedule), event triggers on the database, and the fleet-wide
 * lease that lets only one instance run a given scheduled tick.
 *
 * Invariants:
 * - A tick never overlaps a running backup of its own schedule: it is skipped and reported
 *   (`plg:backup:skipped` with reason 'overlap' | 'missed' | 'restoring' | 'lease-held' | 'tick-done').
 *   A tick that comes while another backup runs (another schedule's, a manual or triggered one)
 *   waits for it in the plugin's queue: a per-resource schedule is never starved by a main backup
 *   that is nearly always running (at most one tick per schedule waits: the Scheduler skips the
 *   schedule's next ticks meanwhile).
 * - While a restore runs, scheduled ticks are skipped ('restoring'), and triggered backups wait
 *   for it to end (a backup of a half-restored database would pass as good).
 * - A trigger's payload is recorded in the manifest as JSON (functions and cycles dropped).
 * - stop() stops the timers and triggers (an event while stopped runs nothing: 'stopped') and
 *   waits for a running scheduled backup; start() resumes both; detach() removes listeners.
 * - A failed scheduled or triggered backup is tried again `retries` times, `retryDelayMs` later,
 *   doubled each time (plg:backup:retry), unless the failure is one a retry cannot mend (the
 *   configuration, the key, a cancellation), the plugin stops meanwhile (the wait ends at once),
 *   or the schedule's next tick comes first (that tick is the retry). One cancelled because a
 *   restore began to write into the database is taken again at once (it waits for the restore),
 *   up to MAX_AFTER_RESTORE times. While a trigger's retry waits, its events are covered by it
 *   ('coalesced'), and a second failing backup of that trigger is not retried apart.
 */
import { createHash } from 'node:crypto';
import type { BackupPlugin } from './plugin.js';
import type { NormalizedOptions, TriggerOption } from './options.js';
import type { DatabaseLike } from './engine/s3db.js';
import { errorMessage } from './errors.js';
import { redacted } from './redact.js';
import { defaultHolderId } from './lease/index.js';
import { LeaseGroup } from './lease/group.js';
import { MIN_PLUGIN_INTERVAL_MS, nextTick, parseSchedule, previousTick, Scheduler, type ParsedSchedule, type ScheduleInput, type TickContext } from './schedule/index.js';
import type { AutomaticOrigin } from './events.js';

/** Failures a retry cannot mend: the configuration, the key, a cancellation, another instance's backup, a path a file blocks. */
const NOT_RETRIED = new Set(['ERR_CANCELLED', 'ERR_ABORTED', 'ERR_INVALID_OPTION', 'ERR_UNKNOWN_RESOURCE', 'ERR_PASSPHRASE_REQUIRED', 'ERR_WRONG_PASSPHRASE', 'ERR_BAD_KEY_FILE', 'ERR_KEY_CONFLICT', 'ERR_NOT_INSTALLED', 'ERR_MANIFEST_VERSION', 'ERR_LEASE_HELD', 'ERR_HOOK_FAILED', 'ERR_DESTINATION_PATH']);

/** Backups cancelled by restores retaken in a row at most (restores that keep beginning mid-backup). */
export const MAX_AFTER_RESTORE = 3;

/** Resolves after `ms` or when `signal` aborts; the timer does not keep the process alive (as the schedules' own). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
  });
}

/** One schedule: its name in events and reasons, what it backs up, and its tick lease. */
interface JobSpec {
  name: string;
  /** Resources this schedule backs up (null = all but those with their own schedule). */
  include: string[] | null;
  /** Resources with their own schedule, left out of the main one. */
  excludeOwn: string[];
  leasePath: string;
}

/**
 * The tick lease of a per-resource schedule shared by `names`: apart from the main schedule's (a
 * resource may be named `main`), apart for names that read alike once made safe for a path (`a.b`,
 * `a_b`) or joined (a resource `a,b` and resources `a` + `b`), and short enough for a file name
 * however many and long the names (review-paths P5): a hash of the list stands for what is cut.
 */
export function resourceTickLeasePath(names: string[]): string {
  const joined = names.join(',');
  const safe = joined.replace(/[^A-Za-z0-9_-]/g, '_');
  // The name earlier versions gave it, wherever that was short and unambiguous: an instance not
  // yet upgraded takes the same lease, so one tick still runs once.
  if (safe.length <= 64 && !names.some((n) => n.includes(','))) {
    return `locks/tick-resources-${safe}${safe === joined ? '' : `-${createHash('sha256').update(joined).digest('hex').slice(0, 8)}`}.lease`;
  }
  return `locks/tick-resources-${safe.slice(0, 64)}-${createHash('sha256').update(JSON.stringify(names)).digest('hex').slice(0, 12)}.lease`;
}

interface ScheduledJob {
  scheduler: Scheduler;
  /** Resources this schedule backs up (null = all but those with their own schedule). */
  include: string[] | null;
  name: string;
}

export class BackupPolicy {
  private jobs: ScheduledJob[] = [];
  private listeners: { event: string; fn: (...args: unknown[]) => void }[] = [];
  private database: DatabaseLike | null = null;
  private paused = 0;
  /** Resolved when the last running restore ends. */
  private resumed: { promise: Promise<void>; resolve: () => void } | null = null;
  /** Set by stop(), cleared by start(): triggers fire no backup while stopped. */
  private stopped = false;
  /** Aborted by stop(): ends the waits between retries. */
  private halting = new AbortController();
  /** Triggers whose failed backup waits for its retry (see withRetries). */
  private readonly retryWaits = new Set<TriggerOption>();
  /** Triggers with a backup queued that has not started yet (more of their events add nothing), with the trigger record it will store: the latest event's payload. */
  private readonly queuedTriggers = new Map<TriggerOption, { event: string; payload: unknown }>();
  private readonly leases = new Map<string, LeaseGroup>();
  /** Catch-ups of ticks missed while no instance ran (see catchUp), awaited by stop(). */
  private readonly catchUps = new Set<Promise<void>>();

  constructor(
    private readonly plugin: BackupPlugin,
    private readonly config: NormalizedOptions,
  ) {
    // Validate schedules now, so a bad one fails in the constructor with the option's name.
    parseSchedule(config.schedule as ScheduleInput, { timezone: config.timezone, option: 'schedule', minIntervalMs: MIN_PLUGIN_INTERVAL_MS });
    for (const [name, schedule] of Object.entries(config.resourceSchedules)) {
      parseSchedule(schedule as ScheduleInput, { timezone: config.timezone, option: `resources.${name}.schedule`, minIntervalMs: MIN_PLUGIN_INTERVAL_MS });
    }
  }

  attach(database: DatabaseLike): void {
    this.database = database;
    for (const trigger of this.config.triggers) {
      const fn = (...args: unknown[]) => void this.onTrigger(trigger, args[0]);
      database.on(trigger.event, fn);
      this.listeners.push({ event: trigger.event, fn });
    }
  }

  detach(): void {
    const db = this.database;
    if (db) {
      for (const { event, fn } of this.listeners) (db.off ?? db.removeListener)?.call(db, event, fn);
    }
    this.listeners = [];
    this.database = null;
  }

  start(): void {
    this.stopped = false;
    if (this.halting.signal.aborted) this.halting = new AbortController();
    if (this.jobs.length > 0) return;
    const own = Object.keys(this.config.resourceSchedules);
    const groups = new Map<string, string[]>();
    for (const [name, schedule] of Object.entries(this.config.resourceSchedules)) {
      const key = JSON.stringify(schedule);
      groups.set(key, [...(groups.get(key) ?? []), name]);
    }
    const mainInclude = own.length === 0 ? this.config.include : null;
    this.addJob(this.config.schedule, { name: 'main', include: mainInclude, excludeOwn: own, leasePath: 'locks/tick-main.lease' });
    for (const [key, names] of groups) {
      const name = names.join(',');
      this.addJob(JSON.parse(key) as ScheduleInput, { name, include: names, excludeOwn: [], leasePath: resourceTickLeasePath(names) });
    }
  }

  private addJob(schedule: ScheduleInput, job: JobSpec): void {
    const name = job.name;
    const parsed = parseSchedule(schedule, { timezone: this.config.timezone });
    if (parsed.kind === 'disabled') return;
    const scheduler = new Scheduler(parsed, (ctx) => this.onTick(ctx, job, parsed), {
      unref: true,
      onSkip: (info) => this.plugin.emit('plg:backup:skipped', { schedule: name, reason: info.reason, tick: info.tick.toISOString(), count: info.count }),
      onError: (err) => {
        if ((err as { code?: string }).code !== 'ERR_CANCELLED') this.plugin.log('warn', { schedule: name, err: errorMessage(err) }, 'scheduled backup failed');
      },
    });
    this.jobs.push({ scheduler, include: job.include, name });
    scheduler.start();
    if (parsed.kind === 'cron' && this.config.lease.enabled) {
      const catchUp = this.catchUp(parsed, job).catch((err: unknown) => {
        if ((err as { code?: string }).code !== 'ERR_CANCELLED') this.plugin.log('warn', { schedule: name, err: errorMessage(err) }, 'catch-up of a missed scheduled backup failed');
      });
      this.catchUps.add(catchUp);
      void catchUp.finally(() => this.catchUps.delete(catchUp));
    }
  }

  /**
   * A cron tick that fell while no instance of the fleet ran (a single 'daily' instance redeployed
   * across midnight) is run once at start: when the schedule's tick lease records an earlier
   * completed tick than the latest one due. Nothing recorded (a first start) runs nothing; the
   * tick lease keeps it to one instance (another may have run it meanwhile: 'tick-done').
   * Interval schedules are left out: their next tick is at most one interval away.
   */
  private async catchUp(parsed: ParsedSchedule, job: JobSpec): Promise<void> {
    const name = job.name;
    const due = previousTick(parsed, Date.now());
    if (due === null) return;
    const last = await this.leaseFor(job.leasePath).lastCompletedTick();
    if (last === null || Date.parse(last) >= due || this.stopped) return;
    const tick = new Date(due);
    this.plugin.log('info', { schedule: name, tick: tick.toISOString(), lastCompleted: last }, `schedule ${name}: tick ${tick.toISOString()} passed while no instance ran (last completed: ${last}); taking it now`);
    // never aborted: stop() waits for it, as it waits for a scheduled run
    await this.onTick({ tick, tickId: tick.toISOString(), signal: new AbortController().signal }, job, parsed);
  }

  /** Next scheduled run of each schedule. */
  nextRuns(): { schedule: string; at: Date | null }[] {
    return this.jobs.map((j) => ({ schedule: j.name, at: j.scheduler.nextRun() }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.halting.abort();
    const jobs = this.jobs;
    this.jobs = [];
    await Promise.all(jobs.map((j) => j.scheduler.stop()));
    await Promise.all([...this.catchUps]);
  }

  /** Restores running: scheduled ticks are skipped and triggered backups wait meanwhile. */
  pauseScheduled(paused: boolean): void {
    if (paused && this.paused++ === 0) {
      let resolve: () => void = () => undefined;
      const promise = new Promise<void>((r) => (resolve = r));
      this.resumed = { promise, resolve };
    }
    if (!paused && --this.paused === 0) {
      this.resumed?.resolve();
      this.resumed = null;
    }
  }

  /**
   * Runs `backup`, and again after a failure worth a retry (see the top comment). The failure of
   * each try has been reported already (events, hooks, webhooks); the last one is thrown.
   */
  private async withRetries<T>(backup: () => Promise<T>, o: { about: AutomaticOrigin; nextTickAt: () => number | null; signal?: AbortSignal; trigger?: TriggerOption }): Promise<T> {
    let afterRestore = 0;
    let retry = 0; // failures retried so far (a cancellation by a restore is not one)
    for (;;) {
      try {
        return await backup();
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (code === 'ERR_CANCELLED' && (err as { details?: { byRestore?: unknown } }).details?.byRestore === true && !this.stopped && !o.signal?.aborted && afterRestore < MAX_AFTER_RESTORE) {
          afterRestore++;
          this.plugin.emit('plg:backup:retry', { ...o.about, retry: afterRestore, of: MAX_AFTER_RESTORE, delayMs: 0, code, error: errorMessage(err) });
          continue; // taken again at once: it waits for the restore
        }
        if (o.trigger && this.retryWaits.has(o.trigger)) throw err; // the retry that waits covers this one
        const delayMs = this.config.retryDelayMs * 2 ** retry;
        const next = o.nextTickAt();
        // another instance's backup (ERR_LEASE_HELD) covers a schedule's tick, but not an event:
        // it began before the event, so it does not hold what the trigger asked for (walk-29 F-C)
        const unmendable = NOT_RETRIED.has(code) && !(o.trigger && code === 'ERR_LEASE_HELD');
        if (retry >= this.config.retries || unmendable || this.stopped || o.signal?.aborted || (next !== null && Date.now() + delayMs >= next)) throw err;
        this.plugin.log('warn', { ...o.about, code, err: errorMessage(err) }, `backup failed; retry ${retry + 1} of ${this.config.retries} in ${Math.round(delayMs / 1000)} s`);
        this.plugin.emit('plg:backup:retry', { ...o.about, retry: retry + 1, of: this.config.retries, delayMs, code, error: errorMessage(err) });
        if (o.trigger) this.retryWaits.add(o.trigger);
        try {
          await pause(delayMs, o.signal ? AbortSignal.any([o.signal, this.halting.signal]) : this.halting.signal);
        } finally {
          if (o.trigger) this.retryWaits.delete(o.trigger);
        }
        if (this.stopped || o.signal?.aborted) throw err;
        retry++;
      }
    }
  }

  private async onTick(ctx: TickContext, job: JobSpec, parsed: ParsedSchedule): Promise<void> {
    const { name, include, excludeOwn } = job;
    const skip = (reason: string): void => {
      this.plugin.emit('plg:backup:skipped', { schedule: name, reason, tick: ctx.tickId, count: 1 });
    };
    if (this.paused > 0) return skip('restoring');
    // The main schedule leaves out the resources with their own schedule by excluding them (not by
    // listing the others), so a resource created later joins it and its selection series stays one.
    const backup = () =>
      this.plugin.automaticBackup({
        type: this.config.type,
        reason: `scheduled (${name})`,
        resources: include ?? undefined,
        alsoExclude: excludeOwn,
        trigger: { event: 'schedule', payload: { schedule: name, tick: ctx.tickId } },
        signal: ctx.signal,
      });
    const retried = { about: { schedule: name, tick: ctx.tickId }, nextTickAt: () => nextTick(parsed, Date.now()), signal: ctx.signal };
    if (!this.config.lease.enabled) {
      await this.withRetries(backup, retried);
      return;
    }
    // One tick lease per schedule records which tick ran (so one instance runs each tick, once);
    // the backup itself then takes the plugin's backup lease, which excludes every other backup.
    // Taking the tick lease is part of each try: a destination down at the tick is retried too.
    const lease = this.leaseFor(job.leasePath);
    await this.withRetries(async () => {
      let got: Awaited<ReturnType<LeaseGroup['acquire']>>;
      try {
        got = await lease.acquire(defaultHolderId(), this.config.lease.ttlMs, { tick: ctx.tick });
      } catch (err) {
        // no destination answers: a failed scheduled backup, reported like any other
        throw await this.plugin.reportFailure(this.config.type, `scheduled-${ctx.tickId}`, err);
      }
      if (!got.acquired) return skip(got.reason === 'held' ? 'lease-held' : 'tick-done');
      let completed = false;
      try {
        await backup();
        completed = true;
      } finally {
        await lease.release({ completed });
      }
    }, retried);
  }

  private leaseFor(path: string): LeaseGroup {
    let lease = this.leases.get(path);
    if (!lease) {
      lease = new LeaseGroup(this.plugin.destinations.members, { path, ttlMs: this.config.lease.ttlMs });
      this.leases.set(path, lease);
    }
    return lease;
  }

  private async onTrigger(trigger: TriggerOption, context: unknown): Promise<void> {
    if (this.stopped) {
      this.plugin.emit('plg:backup:skipped', { trigger: trigger.event, reason: 'stopped', count: 1 });
      return;
    }
    try {
      if (trigger.condition && !(await trigger.condition(context))) return;
    } catch (err) {
      // told where monitoring looks, not only in the log: a broken condition drops every event (walk-29 F-E)
      const error = redacted(errorMessage(err));
      this.plugin.log('warn', { event: trigger.event, err: error }, `the condition of the trigger on '${trigger.event}' threw (${error}); no backup for this event: fix the condition (is the event emitted with the context it reads?)`);
      this.plugin.emit('plg:backup:skipped', { trigger: trigger.event, reason: 'condition-error', error, count: 1 });
      return;
    }
    // A burst of events (e.g. one per deleted batch) must not queue one backup each: while a
    // backup of this trigger waits its turn, its further events are covered by it (it has not read
    // anything yet), and it records the latest event's payload (walk-29 N3: the first's, so a
    // deploy of v2.0.1 coalesced behind v2.0.0's was named nowhere); once it has started, the next
    // event queues a new one. Two triggers on one event are separate (they may differ in type or condition).
    const queued = this.queuedTriggers.get(trigger);
    if (queued || this.retryWaits.has(trigger)) {
      if (queued) queued.payload = jsonSafe(context);
      this.plugin.emit('plg:backup:skipped', { trigger: trigger.event, reason: 'coalesced', count: 1 });
      return;
    }
    const mine = { event: trigger.event, payload: jsonSafe(context) };
    const done = () => {
      if (this.queuedTriggers.get(trigger) === mine) this.queuedTriggers.delete(trigger);
    };
    this.queuedTriggers.set(trigger, mine);
    try {
      while (this.resumed) await this.resumed.promise;
      if (this.stopped) {
        this.plugin.emit('plg:backup:skipped', { trigger: trigger.event, reason: 'stopped', count: 1 });
        return;
      }
      await this.withRetries(
        () =>
          this.plugin.automaticBackup({
            type: trigger.type ?? 'full',
            reason: trigger.reason ?? `triggered by ${trigger.event}`,
            trigger: mine,
            onStart: done,
          }),
        { about: { trigger: trigger.event }, nextTickAt: () => null, trigger },
      );
    } catch (err) {
      // the failure already reached hooks, events and webhooks (a cancellation: plg:backup:cancelled)
      if ((err as { code?: string }).code !== 'ERR_CANCELLED') this.plugin.log('warn', { event: trigger.event, err: errorMessage(err) }, 'triggered backup failed');
    } finally {
      done();
    }
  }
}

/** Largest trigger payload (JSON) a manifest keeps; a larger one is replaced by a note of its size. */
const MAX_PAYLOAD_BYTES = 64 * 1024;

/**
 * The JSON a manifest keeps of a trigger's payload: plain data only. An instance of a class (an
 * s3db Resource or Database, a client: they hold connection strings and the database's
 * passphrase) becomes "[ClassName]"; functions and cycles are dropped; Dates and Buffers keep their
 * JSON form. Over MAX_PAYLOAD_BYTES, a note of the size (a bulk event can carry every record).
 */
function jsonSafe(value: unknown): unknown {
  try {
    const seen = new WeakSet<object>();
    const text = JSON.stringify(value ?? null, (_key: string, v: unknown) => {
      if (typeof v === 'function' || typeof v === 'bigint' || typeof v === 'symbol') return undefined;
      if (typeof v !== 'object' || v === null) return v;
      if (seen.has(v)) return undefined;
      seen.add(v);
      const proto = Object.getPrototypeOf(v) as object | null;
      if (Array.isArray(v) || proto === Object.prototype || proto === null) return v;
      // toJSON already ran for Date and Buffer (v is then a string / a plain object)
      return `[${(v as { constructor?: { name?: string } }).constructor?.name || 'object'}]`;
    });
    if (text === undefined) return null;
    if (Buffer.byteLength(text) > MAX_PAYLOAD_BYTES) return `[payload of ${Buffer.byteLength(text)} bytes left out: over ${MAX_PAYLOAD_BYTES}]`;
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}
