/**
 * parseSchedule and Scheduler. Scheduling logic runs under vitest's fake timers (allowed by the
 * brief); one test at the end uses real time with a 200 ms interval.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BackupError } from '../src/errors.js';
import { BackupPlugin, type BackupPluginOptions } from '../src/index.js';
import { nextTick, parseSchedule, Scheduler, type SkipInfo, type TickContext } from '../src/schedule/index.js';

const at = (iso: string) => Date.parse(iso);

function refusal(value: unknown, options?: Parameters<typeof parseSchedule>[1]): BackupError {
  try {
    parseSchedule(value, options);
  } catch (err) {
    expect(err).toBeInstanceOf(BackupError);
    return err as BackupError;
  }
  throw new Error(`expected ${JSON.stringify(value)} to be refused`);
}

describe('parseSchedule', () => {
  it('maps the named schedules to UTC cron ticks (weekly = Monday 00:00)', () => {
    const from = at('2026-11-30T10:17:00Z'); // a Monday
    const next = (v: string) => new Date(nextTick(parseSchedule(v), from)!).toISOString();
    expect(next('hourly')).toBe('2026-11-30T11:00:00.000Z');
    expect(next('daily')).toBe('2026-12-01T00:00:00.000Z');
    expect(next('weekly')).toBe('2026-12-07T00:00:00.000Z');
    expect(next('monthly')).toBe('2026-12-01T00:00:00.000Z');
    expect(next('yearly')).toBe('2027-01-01T00:00:00.000Z');
    expect(next('Daily')).toBe('2026-12-01T00:00:00.000Z');
    expect(parseSchedule('weekly')).toEqual({ kind: 'cron', expression: '0 0 * * 1', timezone: 'UTC', description: 'weekly (0 0 * * 1 UTC)' });
    // croner's nickname keeps classic cron meaning (Sunday).
    expect(new Date(nextTick(parseSchedule('@weekly'), from)!).toISOString()).toBe('2026-12-06T00:00:00.000Z');
  });

  it('accepts cron expressions, with seconds, and a configurable time zone', () => {
    const from = at('2026-11-30T10:17:00Z');
    expect(new Date(nextTick(parseSchedule('0 */6 * * *'), from)!).toISOString()).toBe('2026-11-30T12:00:00.000Z');
    expect(new Date(nextTick(parseSchedule('*/20 * * * * *'), from)!).toISOString()).toBe('2026-11-30T10:17:20.000Z');
    const ny = parseSchedule('daily', { timezone: 'America/New_York' });
    expect(new Date(nextTick(ny, from)!).toISOString()).toBe('2026-12-01T05:00:00.000Z');
  });

  it('accepts milliseconds (number or digits), aligned to the epoch so a fleet agrees on ticks', () => {
    expect(parseSchedule(60_000)).toEqual({ kind: 'interval', intervalMs: 60_000, description: 'every 60000 ms' });
    expect(parseSchedule('60000')).toEqual(parseSchedule(60_000));
    expect(nextTick(parseSchedule(60_000), at('2026-11-30T10:17:42.123Z'))).toBe(at('2026-11-30T10:18:00Z'));
    expect(nextTick(parseSchedule(60_000), at('2026-11-30T10:18:00Z'))).toBe(at('2026-11-30T10:19:00Z'));
  });

  it('false and null disable scheduling', () => {
    expect(parseSchedule(false)).toEqual({ kind: 'disabled', description: 'disabled' });
    expect(parseSchedule(null).kind).toBe('disabled');
    expect(nextTick(parseSchedule(false), Date.now())).toBeNull();
  });

  it('refuses everything else with ERR_INVALID_OPTION naming the option', () => {
    for (const bad of ['every day', '61 * * * *', '', 50, 1.5, -1000, Number.NaN, {}, [], undefined, true, '0 0 30 2 *']) {
      const err = refusal(bad);
      expect(err.code).toBe('ERR_INVALID_OPTION');
      expect(err.message).toContain('"schedule"');
      expect(err.details.option).toBe('schedule');
    }
    expect(refusal(50).message).toContain('MILLISECONDS');
    expect(refusal('0 0 30 2 *').message).toContain('never fires');
    expect(refusal('sometimes', { option: 'resources.analytics.schedule' }).message).toContain('"resources.analytics.schedule"');
    expect(refusal('daily', { timezone: 'Mars/Olympus' }).message).toContain('unknown time zone "Mars/Olympus"');
    expect(refusal('daily', { timezone: 'Mars/Olympus' }).details.option).toBe('timezone');
  });

  it('the plugin names `timezone` for a bad time zone, and says a fractional interval is not a whole number', () => {
    const plugin = (o: BackupPluginOptions) => () => new BackupPlugin({ config: { directory: '/tmp/never-written' }, ...o });
    expect(plugin({ schedule: 'daily', timezone: 'Mars/Olympus' })).toThrow(/Invalid option "timezone": unknown time zone/);
    expect(plugin({ schedule: 1500.5 })).toThrow(/"schedule": 1500.5 is not a whole number of milliseconds/);
  });
});

describe('Scheduler (fake timers)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function deferred(): { promise: Promise<void>; resolve: () => void } {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  }

  it('runs once per tick with the scheduled time as tick identity', async () => {
    vi.useFakeTimers({ now: at('2026-11-30T10:00:00.250Z') });
    const ticks: string[] = [];
    const s = new Scheduler(1000, (ctx) => {
      ticks.push(ctx.tickId);
      expect(ctx.tick.toISOString()).toBe(ctx.tickId);
      expect(ctx.signal.aborted).toBe(false);
    });
    expect(s.nextRun()).toBeNull(); // not started yet
    s.start();
    expect(s.nextRun()?.toISOString()).toBe('2026-11-30T10:00:01.000Z');
    await vi.advanceTimersByTimeAsync(3_000);
    expect(ticks).toEqual(['2026-11-30T10:00:01.000Z', '2026-11-30T10:00:02.000Z', '2026-11-30T10:00:03.000Z']);
    expect(s.nextRun()?.toISOString()).toBe('2026-11-30T10:00:04.000Z');
    await s.stop();
    expect(s.nextRun()).toBeNull();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(ticks).toHaveLength(3);
  });

  it('never overlaps: a tick during a run is skipped and reported, not queued', async () => {
    vi.useFakeTimers({ now: at('2026-11-30T10:00:00Z') });
    const skips: SkipInfo[] = [];
    const runs: string[] = [];
    let active = 0;
    const s = new Scheduler(
      1000,
      async (ctx) => {
        active += 1;
        expect(active).toBe(1);
        runs.push(ctx.tickId);
        await new Promise((r) => setTimeout(r, 2_500)); // longer than two intervals
        active -= 1;
      },
      { onSkip: (info) => skips.push(info) },
    ).start();
    await vi.advanceTimersByTimeAsync(4_000);
    // Run at :01 lasts until :03.5, so :02 and :03 are skipped; :04 runs.
    expect(runs).toEqual(['2026-11-30T10:00:01.000Z', '2026-11-30T10:00:04.000Z']);
    expect(skips).toEqual([
      { reason: 'overlap', tick: new Date('2026-11-30T10:00:02Z'), count: 1, runningTick: new Date('2026-11-30T10:00:01Z') },
      { reason: 'overlap', tick: new Date('2026-11-30T10:00:03Z'), count: 1, runningTick: new Date('2026-11-30T10:00:01Z') },
    ]);
    expect(s.running).toBe(true);
    expect(s.runningTick?.toISOString()).toBe('2026-11-30T10:00:04.000Z');
    const stopped = s.stop();
    await vi.advanceTimersByTimeAsync(2_500);
    await stopped;
    expect(s.running).toBe(false);
    expect(runs).toHaveLength(2);
  });

  it('stop() waits for the running task and cancels future ticks', async () => {
    vi.useFakeTimers({ now: at('2026-11-30T10:00:00Z') });
    const gate = deferred();
    let finished = false;
    const s = new Scheduler('hourly', async () => {
      await gate.promise;
      finished = true;
    }).start();
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(s.running).toBe(true);
    let stopDone = false;
    const stopping = s.stop().then(() => (stopDone = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(stopDone).toBe(false); // still waiting for the task
    gate.resolve();
    await stopping;
    expect(finished).toBe(true);
    expect(stopDone).toBe(true);
  });

  it('stop({ abort: true }) aborts the signal so a cooperative task ends early', async () => {
    vi.useFakeTimers({ now: at('2026-11-30T10:00:00Z') });
    let seen: TickContext | undefined;
    let reason: unknown;
    const s = new Scheduler('*/5 * * * * *', (ctx) => {
      seen = ctx;
      return new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => ((reason = ctx.signal.reason), resolve())));
    }).start();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(seen?.tickId).toBe('2026-11-30T10:00:05.000Z');
    await s.stop({ abort: true, reason: new Error('shutting down') });
    expect(seen?.signal.aborted).toBe(true);
    expect((reason as Error).message).toBe('shutting down');
  });

  it('after a long stall, runs only the latest due tick and reports the ones passed over', async () => {
    vi.useFakeTimers({ now: at('2026-11-30T10:00:00Z') });
    const runs: string[] = [];
    const skips: SkipInfo[] = [];
    const s = new Scheduler(60_000, (ctx) => void runs.push(ctx.tickId), { onSkip: (i) => skips.push(i) }).start();
    // The clock jumps 10.5 minutes while no timer could fire (a suspended laptop or a blocked loop).
    // (Fake timers keep the pending timer's delay, so it fires 60 s later, at 10:11:30.)
    vi.setSystemTime(at('2026-11-30T10:10:30Z'));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(runs).toEqual(['2026-11-30T10:11:00.000Z']);
    expect(skips).toEqual([{ reason: 'missed', tick: new Date('2026-11-30T10:01:00Z'), count: 10 }]);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(runs).toEqual(['2026-11-30T10:11:00.000Z', '2026-11-30T10:12:00.000Z']);
    await s.stop();
  });

  it('waits past the 24.8-day setTimeout limit and fires a yearly schedule exactly once on time', async () => {
    vi.useFakeTimers({ now: at('2026-03-01T00:00:00Z') });
    const runs: string[] = [];
    const s = new Scheduler('yearly', (ctx) => void runs.push(ctx.tickId)).start();
    expect(s.nextRun()?.toISOString()).toBe('2027-01-01T00:00:00.000Z');
    await vi.advanceTimersByTimeAsync(at('2026-12-31T23:59:59Z') - Date.now());
    expect(runs).toEqual([]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runs).toEqual(['2027-01-01T00:00:00.000Z']);
    expect(s.nextRun()?.toISOString()).toBe('2028-01-01T00:00:00.000Z');
    await s.stop();
  });

  it('stop() called from inside the running task returns instead of deadlocking', async () => {
    vi.useFakeTimers({ now: at('2026-11-30T10:00:00Z') });
    let s!: Scheduler;
    let stoppedInside = false;
    s = new Scheduler(1000, async () => {
      await s.stop();
      stoppedInside = true;
    }).start();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(stoppedInside).toBe(true);
    expect(s.running).toBe(false);
    expect(s.nextRun()).toBeNull();
  });

  it('routes task errors to onError and keeps running', async () => {
    vi.useFakeTimers({ now: at('2026-11-30T10:00:00Z') });
    const errors: string[] = [];
    let n = 0;
    const s = new Scheduler(
      1000,
      async () => {
        n += 1;
        if (n === 1) throw new Error('boom');
      },
      { onError: (err, ctx) => errors.push(`${ctx.tickId}: ${(err as Error).message}`) },
    ).start();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(errors).toEqual(['2026-11-30T10:00:01.000Z: boom']);
    expect(n).toBe(2);
    await s.stop();
  });

  it('several schedulers (per-resource schedules) run independently', async () => {
    vi.useFakeTimers({ now: at('2026-11-30T22:30:00Z') });
    const log: string[] = [];
    const users = new Scheduler('hourly', (c) => void log.push(`users ${c.tickId}`)).start();
    const analytics = new Scheduler('daily', (c) => void log.push(`analytics ${c.tickId}`)).start();
    await vi.advanceTimersByTimeAsync(2 * 3_600_000);
    expect(log.sort()).toEqual(['analytics 2026-12-01T00:00:00.000Z', 'users 2026-11-30T23:00:00.000Z', 'users 2026-12-01T00:00:00.000Z']);
    await Promise.all([users.stop(), analytics.stop()]);
  });

  it('a disabled schedule never fires', async () => {
    vi.useFakeTimers({ now: at('2026-11-30T10:00:00Z') });
    let ran = false;
    const s = new Scheduler(false, () => void (ran = true)).start();
    expect(s.nextRun()).toBeNull();
    await vi.advanceTimersByTimeAsync(365 * 86_400_000);
    expect(ran).toBe(false);
    await s.stop();
  });
});

describe('Scheduler (real time)', () => {
  it('fires every 200 ms on epoch-aligned ticks, never early, never overlapping, and stops', async () => {
    const runs: Array<{ tick: number; started: number }> = [];
    let active = 0;
    let overlapped = false;
    let resolveThird!: () => void;
    const third = new Promise<void>((r) => (resolveThird = r));
    const s = new Scheduler(200, async (ctx) => {
      active += 1;
      if (active > 1) overlapped = true;
      runs.push({ tick: ctx.tick.getTime(), started: Date.now() });
      await new Promise((r) => setTimeout(r, 30));
      active -= 1;
      if (runs.length === 3) resolveThird();
    }).start();
    await third;
    await s.stop();
    const count = runs.length;
    expect(overlapped).toBe(false);
    for (const r of runs) {
      expect(r.tick % 200).toBe(0);
      expect(r.started).toBeGreaterThanOrEqual(r.tick);
    }
    for (let i = 1; i < runs.length; i++) expect(runs[i].tick).toBeGreaterThan(runs[i - 1].tick);
    await new Promise((r) => setTimeout(r, 500));
    expect(runs).toHaveLength(count); // nothing after stop()
  });
});
