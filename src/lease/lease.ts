/**
 * Fleet-wide lease: at most one instance at a time holds the backup lease of a destination, and a
 * scheduled tick is run by at most one instance, once.
 *
 * Design (one small JSON object, default `locks/backup.lease`, changed only by compare-and-swap):
 * - acquire: if the object is absent, createIfAbsent (O_EXCL/link on a filesystem, If-None-Match: *
 *   on S3). If it exists and is FREE (holder null) or EXPIRED (now > expiresAt + clockSkewMs), take
 *   it with replaceIfMatch on the tag observed when reading it; whoever loses the race re-reads and
 *   sees a live holder. A live holder means { acquired: false, reason: 'held' }.
 * - renew: every ttl/3 the holder pushes expiresAt forward with replaceIfMatch on its own tag. A
 *   failed compare (someone else's tag) means the lease was taken over: the holder is told through
 *   `onLost` and `signal` aborts, so the backup can stop before writing its manifest. If renewals
 *   keep failing with errors until expiresAt, the lease is declared lost as well.
 * - release: the holder swaps in a FREE record (holder null) with replaceIfMatch on its own tag; it
 *   never deletes the object. A plain delete after a stat check could remove a successor's lease
 *   if ours had expired in between; a compare-and-swap cannot. The object therefore persists.
 * - One run per tick: the record carries `lastCompletedTick` (ISO time of the latest scheduled tick
 *   whose backup completed). release({ completed: true }) raises it to the held tick. acquire with
 *   { tick } refuses with reason 'tick-done' when tick <= lastCompletedTick, so an instance whose
 *   timer fires late (or that takes over afterwards) never runs a finished tick again. Because the
 *   value lives in the lease object itself, reading it and taking the lease are one atomic step.
 *   A holder that dies mid-backup never records its tick, so a later taker may run it.
 * - A holder on the same host whose pid no longer exists is treated as expired at once.
 * - Clocks that disagree beyond clockSkewMs: a record this instance has seen unchanged (same tag)
 *   for longer than the holder's own TTL (expiresAt - renewedAt) plus clockSkewMs, by its own
 *   clock, is expired whatever its times say (a live holder rewrites it every ttl/3). So a host
 *   whose clock ran days ahead and then died cannot block the fleet until its expiresAt. A
 *   `lastCompletedTick` later than now + max(ttl, clockSkewMs) can only come from a clock ahead:
 *   it is ignored and dropped, so it does not mark every tick until then as done.
 * Limits (as for every lease without fencing tokens): a holder frozen longer than its TTL (SIGSTOP,
 * a VM pause) can wake up and write after a successor took over; it learns so at its next renewal.
 * Hosts need clocks within clockSkewMs of each other (NTP); choose ttlMs much larger than that.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { BackupError, errorMessage } from '../errors.js';
import { readText, type Destination } from '../destinations/types.js';
import { processSpace } from './process-space.js';
import { encode, FORMAT_VERSION, parse, type LeaseRecord } from './record.js';

export type { LeaseRecord } from './record.js';

export const DEFAULT_LEASE_PATH = 'locks/backup.lease';
export const DEFAULT_LEASE_TTL_MS = 60_000;
export const DEFAULT_CLOCK_SKEW_MS = 1_000;

export interface LeaseLostInfo {
  holder: string;
  reason: 'taken-over' | 'deleted' | 'expired';
  /** The record found instead of ours, when known. */
  current?: LeaseRecord | null;
  error?: unknown;
}

export interface LeaseOptions {
  /** Object path of the lease. Default 'locks/backup.lease'. */
  path?: string;
  /** Default TTL when acquire() is not given one. Default 60 s. */
  ttlMs?: number;
  /** Renewal period. Default ttl / 3. */
  renewIntervalMs?: number;
  /** An expired lease is taken over only when now > expiresAt + clockSkewMs. Default 1 s. */
  clockSkewMs?: number;
  /** Host name written into the record. Default os.hostname(). */
  host?: string;
  /** Called once when a held lease is lost (taken over, deleted, or could not be renewed in time). */
  onLost?: (info: LeaseLostInfo) => void;
}

export interface AcquireOptions {
  /** The scheduled tick this acquisition is for (Date, epoch ms or ISO). Enables the one-run-per-tick rule. */
  tick?: Date | number | string;
  /** Keep trying while the lease is held by someone else, up to this many ms. Default 0 (one attempt). */
  waitMs?: number;
  /** Poll period while waiting. Default min(1000, ttl / 4). */
  pollMs?: number;
  signal?: AbortSignal;
}

export type AcquireResult =
  | { acquired: true; record: LeaseRecord; tookOverFrom?: LeaseRecord }
  | { acquired: false; reason: 'held'; holder: LeaseRecord }
  | { acquired: false; reason: 'tick-done'; lastCompletedTick: string; record: LeaseRecord };

interface Held {
  holderId: string;
  etag: string;
  record: LeaseRecord;
  ttlMs: number;
  expiresAtMs: number;
  tickMs: number | null;
  controller: AbortController;
  timer: NodeJS.Timeout | null;
  lost: boolean;
  lostReason?: LeaseLostInfo['reason'];
  /** The renewal in flight, if any: release() waits for it so both never race on the tag. */
  inflight: Promise<void> | null;
}

type Observed = { etag: string; record: LeaseRecord | null; raw: string } | null;

/** A unique-enough holder id: host, pid and a random suffix. */
export function defaultHolderId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

function toMs(value: Date | number | string): number {
  const ms = value instanceof Date ? value.getTime() : typeof value === 'number' ? value : Date.parse(value);
  if (!Number.isFinite(ms)) throw new BackupError('ERR_LEASE_TICK', `Lease: tick ${String(value)} is not a valid time`);
  return ms;
}

/**
 * A holder on this very host (and pid namespace: process-space.ts) whose process is gone cannot
 * renew: its lease is as good as expired (restic treats its local stale locks the same way).
 * Holders elsewhere wait for the TTL.
 */
function holderIsDeadHere(record: LeaseRecord, host: string): boolean {
  if (record.host !== host || record.space !== processSpace() || !Number.isInteger(record.pid) || !record.pid || record.pid === process.pid) return false;
  try {
    process.kill(record.pid, 0);
    return false;
  } catch (err) {
    return (err as { code?: string }).code === 'ESRCH';
  }
}

/**
 * Resolves after `ms`, or at once when `signal` aborts (never rejects). The abort listener is
 * removed when the time is up: the signal (the plugin's, alive until stop()) outlives many sleeps.
 */
export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export class Lease {
  readonly destination: Destination;
  /** The lease record's tag as this instance first saw it, and when (by its own clock): see isExpired. */
  private sighting: { etag: string; at: number } | null = null;
  readonly path: string;
  private readonly options: LeaseOptions;
  private held: Held | null = null;
  private lastController: AbortController = new AbortController();
  /**
   * Token of this instance's own record whose release() could not be written (a full or failing
   * destination). Nobody else holds that lease, so this instance takes it back at once instead of
   * waiting out its TTL; other instances still wait for it to expire.
   */
  private unreleasedToken: string | null = null;

  constructor(destination: Destination, options: LeaseOptions = {}) {
    this.destination = destination;
    this.path = options.path ?? DEFAULT_LEASE_PATH;
    const ttl = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    if (!Number.isInteger(ttl) || ttl < 100) throw new BackupError('ERR_INVALID_OPTION', `Invalid option "lease.ttlMs": ${ttl} must be a whole number of milliseconds >= 100`, { details: { option: 'lease.ttlMs' } });
    if (options.clockSkewMs !== undefined && (!Number.isFinite(options.clockSkewMs) || options.clockSkewMs < 0)) {
      throw new BackupError('ERR_INVALID_OPTION', 'Invalid option "lease.clockSkewMs": must be >= 0', { details: { option: 'lease.clockSkewMs' } });
    }
    this.options = options;
  }

  /** Why the current acquisition was lost ('taken-over': another holder's record is there), or null while it is not. */
  get lossReason(): LeaseLostInfo['reason'] | null {
    return this.held?.lost ? (this.held.lostReason ?? null) : null;
  }

  /** True while this instance holds the lease and has not lost it. */
  get isHeld(): boolean {
    return this.held !== null && !this.held.lost;
  }

  /** Aborts when the current (or last) acquisition is lost; pass it to the backup's streams. */
  get signal(): AbortSignal {
    return this.held ? this.held.controller.signal : this.lastController.signal;
  }

  /** The record as this holder last wrote it (null when not holding). */
  get record(): LeaseRecord | null {
    return this.held ? { ...this.held.record } : null;
  }

  /** Throws BackupError ERR_LEASE_LOST unless the lease is held and, as far as this process knows, unexpired. */
  assertHeld(): void {
    const h = this.held;
    if (!h) throw new BackupError('ERR_LEASE_LOST', `Lease ${this.where()}: not held`);
    if (h.lost) throw new BackupError('ERR_LEASE_LOST', `Lease ${this.where()}: lost by ${h.holderId} (another instance took it over)`);
    if (Date.now() > h.expiresAtMs) throw new BackupError('ERR_LEASE_LOST', `Lease ${this.where()}: held by ${h.holderId} but expired at ${new Date(h.expiresAtMs).toISOString()} without renewal`);
  }

  /** Reads the current lease record (null when absent). For status displays and tests. */
  async read(): Promise<LeaseRecord | null> {
    return (await this.observe())?.record ?? null;
  }

  /** The latest scheduled tick recorded as completed here (one from a clock far ahead is ignored), or null. */
  async lastCompletedTick(): Promise<string | null> {
    return this.believableTick((await this.read())?.lastCompletedTick ?? null, this.options.ttlMs ?? DEFAULT_LEASE_TTL_MS);
  }

  /**
   * Tries to take the lease for `holderId` for `ttlMs`. Never throws for contention: returns
   * { acquired: false, reason: 'held' | 'tick-done' }. Throws BackupError for destination errors,
   * for an unknown lease format, or when this instance already holds the lease.
   */
  async acquire(holderId: string, ttlMs: number = this.options.ttlMs ?? DEFAULT_LEASE_TTL_MS, options: AcquireOptions = {}): Promise<AcquireResult> {
    if (typeof holderId !== 'string' || holderId === '') throw new BackupError('ERR_LEASE_HOLDER', 'Lease: holderId must be a non-empty string');
    if (!Number.isInteger(ttlMs) || ttlMs < 100) throw new BackupError('ERR_INVALID_OPTION', `Lease: ttlMs ${ttlMs} must be a whole number of milliseconds >= 100`);
    if (this.held) throw new BackupError('ERR_LEASE_STATE', `Lease ${this.where()}: already held by ${this.held.holderId}; release() it first`);
    const tickMs = options.tick === undefined ? null : toMs(options.tick);
    const deadline = Date.now() + (options.waitMs ?? 0);
    const pollMs = options.pollMs ?? Math.min(1_000, Math.floor(ttlMs / 4));
    for (;;) {
      const result = await this.tryAcquire(holderId, ttlMs, tickMs);
      if (result.acquired || result.reason === 'tick-done') return result;
      if (Date.now() + pollMs > deadline || options.signal?.aborted) return result;
      await sleep(pollMs, options.signal);
    }
  }

  /**
   * Releases the lease: swaps in a free record if it is still ours. With { completed: true } and a
   * tick, records the tick as completed. Returns false if the lease was not ours any more (or the
   * destination failed; the lease then expires after its TTL). Never throws.
   */
  async release(options: { completed?: boolean } = {}): Promise<boolean> {
    const h = this.held;
    if (!h) return false;
    this.stopRenewing(h);
    this.held = null;
    this.lastController = h.controller;
    if (h.inflight) await h.inflight.catch(() => undefined);
    if (h.lost) return false;
    const prev = h.record;
    const completedTick =
      options.completed && h.tickMs !== null ? new Date(Math.max(h.tickMs, prev.lastCompletedTick ? Date.parse(prev.lastCompletedTick) : Number.NEGATIVE_INFINITY)).toISOString() : prev.lastCompletedTick ?? null;
    const body: LeaseRecord = {
      version: FORMAT_VERSION,
      holder: null,
      releasedAt: new Date().toISOString(),
      lastCompletedTick: completedTick,
      lastCompletedBy: options.completed && h.tickMs !== null ? h.holderId : prev.lastCompletedBy,
      generation: prev.generation + 1,
    };
    if (body.lastCompletedBy === undefined) delete body.lastCompletedBy;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const r = await this.destination.replaceIfMatch(this.path, encode(body), h.etag);
        if (r.replaced) return true;
        const info = await this.destination.stat(this.path);
        if (!info || info.etag !== h.etag) return false; // not ours any more
      } catch {
        // transient: retry a few times, then let the TTL expire it
      }
      await sleep(50 * (attempt + 1));
    }
    this.unreleasedToken = prev.token ?? null;
    return false;
  }

  private where(): string {
    return `${this.destination.label}/${this.path}`;
  }

  private async observe(): Promise<Observed> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const before = await this.destination.stat(this.path);
      if (!before) return null;
      let raw: string;
      try {
        raw = await readText(this.destination, this.path);
      } catch (err) {
        if (err instanceof BackupError && err.code === 'ERR_DESTINATION_NOT_FOUND') continue;
        throw err;
      }
      const after = await this.destination.stat(this.path);
      if (!after || after.etag !== before.etag) continue; // changed while reading
      if (after.etag === undefined) throw new BackupError('ERR_LEASE_UNSUPPORTED', `Lease ${this.where()}: the destination returned no tag for the lease object, so compare-and-swap is impossible`);
      return { etag: after.etag, record: parse(raw, this.where()), raw };
    }
    throw new BackupError('ERR_LEASE_BUSY', `Lease ${this.where()}: the lease object kept changing while being read`);
  }

  private async tryAcquire(holderId: string, ttlMs: number, tickMs: number | null): Promise<AcquireResult> {
    let last: LeaseRecord | null = null;
    for (let attempt = 0; attempt < 5; attempt++) {
      const seen = await this.observe();
      const prev = seen?.record ?? null;
      if (prev) last = prev;
      const completedTick = this.believableTick(prev?.lastCompletedTick ?? null, ttlMs);
      if (prev && tickMs !== null && completedTick && tickMs <= Date.parse(completedTick)) {
        return { acquired: false, reason: 'tick-done', lastCompletedTick: completedTick, record: prev };
      }
      const ownUnreleased = prev !== null && this.unreleasedToken !== null && prev.token === this.unreleasedToken;
      if (prev && seen && prev.holder !== null && !ownUnreleased && !this.isExpired(prev, seen.etag)) return { acquired: false, reason: 'held', holder: prev };
      const now = Date.now();
      const record: LeaseRecord = {
        version: FORMAT_VERSION,
        holder: holderId,
        host: this.options.host ?? hostname(),
        pid: process.pid,
        space: processSpace(),
        token: randomBytes(8).toString('hex'),
        acquiredAt: new Date(now).toISOString(),
        renewedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + ttlMs).toISOString(),
        tick: tickMs === null ? null : new Date(tickMs).toISOString(),
        lastCompletedTick: completedTick,
        generation: (prev?.generation ?? 0) + 1,
      };
      if (prev?.lastCompletedBy) record.lastCompletedBy = prev.lastCompletedBy;
      const result = seen ? await this.destination.replaceIfMatch(this.path, encode(record), seen.etag) : await this.destination.createIfAbsent(this.path, encode(record));
      const ok = 'created' in result ? result.created : result.replaced;
      if (!ok) continue; // someone else moved first: look again
      const etag = result.etag ?? (await this.destination.stat(this.path))?.etag;
      if (etag === undefined) throw new BackupError('ERR_LEASE_UNSUPPORTED', `Lease ${this.where()}: the destination returned no tag after writing the lease`);
      this.unreleasedToken = null;
      this.hold({ holderId, etag, record, ttlMs, expiresAtMs: now + ttlMs, tickMs, controller: new AbortController(), timer: null, lost: false, inflight: null });
      const tookOver = prev && prev.holder !== null ? prev : undefined;
      return tookOver ? { acquired: true, record: { ...record }, tookOverFrom: tookOver } : { acquired: true, record: { ...record } };
    }
    // Lost five races in a row: someone is actively holding it.
    return { acquired: false, reason: 'held', holder: last ?? { version: FORMAT_VERSION, holder: 'unknown', generation: 0 } };
  }

  private isExpired(record: LeaseRecord, etag: string): boolean {
    if (holderIsDeadHere(record, this.options.host ?? hostname())) return true;
    const expires = record.expiresAt ? Date.parse(record.expiresAt) : Number.NaN;
    if (!Number.isFinite(expires)) return true;
    const skew = this.options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
    if (Date.now() > expires + skew) return true;
    // Not expired by its own times; unchanged for longer than its TTL by this clock, it is all the same.
    if (this.sighting?.etag !== etag) this.sighting = { etag, at: Date.now() };
    const renewed = record.renewedAt ? Date.parse(record.renewedAt) : Number.NaN;
    const ttl = Number.isFinite(renewed) && expires > renewed ? expires - renewed : (this.options.ttlMs ?? DEFAULT_LEASE_TTL_MS);
    return Date.now() - this.sighting.at > ttl + skew;
  }

  /** `lastCompletedTick`, unless it lies further ahead than any clock within clockSkewMs could put it (then null). */
  private believableTick(tick: string | null, ttlMs: number): string | null {
    if (!tick) return null;
    return Date.parse(tick) > Date.now() + Math.max(ttlMs, this.options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS) ? null : tick;
  }

  private hold(h: Held): void {
    this.held = h;
    this.scheduleRenewal(h, this.options.renewIntervalMs ?? Math.max(10, Math.floor(h.ttlMs / 3)));
  }

  private scheduleRenewal(h: Held, delay: number): void {
    h.timer = setTimeout(() => void this.renew(h), delay);
    h.timer.unref();
  }

  private stopRenewing(h: Held): void {
    if (h.timer) clearTimeout(h.timer);
    h.timer = null;
  }

  private renew(h: Held): Promise<void> {
    h.timer = null;
    if (this.held !== h || h.lost) return Promise.resolve();
    const run = this.renewOnce(h).finally(() => {
      if (h.inflight === run) h.inflight = null;
    });
    h.inflight = run;
    return run;
  }

  private async renewOnce(h: Held): Promise<void> {
    const now = Date.now();
    const record: LeaseRecord = { ...h.record, renewedAt: new Date(now).toISOString(), expiresAt: new Date(now + h.ttlMs).toISOString(), generation: h.record.generation + 1 };
    const interval = this.options.renewIntervalMs ?? Math.max(10, Math.floor(h.ttlMs / 3));
    try {
      const r = await this.destination.replaceIfMatch(this.path, encode(record), h.etag);
      if (r.replaced) {
        // Record the new tag even if release() started meanwhile: it waits for us and needs it.
        h.etag = r.etag ?? (await this.destination.stat(this.path))?.etag ?? h.etag;
        h.record = record;
        h.expiresAtMs = now + h.ttlMs;
        if (this.held === h) this.scheduleRenewal(h, interval);
        return;
      }
      const seen = await this.observe().catch(() => undefined);
      if (seen && seen.record && seen.record.holder === h.holderId && seen.record.token === h.record.token) {
        // Our own record under a tag we did not see (e.g. an earlier write that reported an error
        // but landed): still ours, adopt it.
        h.etag = seen.etag;
        h.record = seen.record;
        if (seen.record.expiresAt) h.expiresAtMs = Date.parse(seen.record.expiresAt);
        if (this.held === h) this.scheduleRenewal(h, 10);
        return;
      }
      if (this.held !== h) return;
      if (seen === undefined || (seen !== null && seen.etag === h.etag)) {
        // The compare could not run (busy guard, read error): still ours, try again soon.
        return this.retryOrExpire(h, interval);
      }
      this.markLost(h, { holder: h.holderId, reason: seen === null ? 'deleted' : 'taken-over', current: seen?.record ?? null });
    } catch (error) {
      if (this.held !== h) return;
      this.retryOrExpire(h, interval, error);
    }
  }

  private retryOrExpire(h: Held, interval: number, error?: unknown): void {
    if (Date.now() >= h.expiresAtMs) {
      this.markLost(h, { holder: h.holderId, reason: 'expired', error });
      return;
    }
    this.scheduleRenewal(h, Math.max(10, Math.min(interval, Math.floor((h.expiresAtMs - Date.now()) / 2))));
  }

  private markLost(h: Held, info: LeaseLostInfo): void {
    if (h.lost) return;
    h.lost = true;
    h.lostReason = info.reason;
    this.stopRenewing(h);
    const reason = new BackupError('ERR_LEASE_LOST', `Lease ${this.where()}: lost by ${h.holderId} (${info.reason})${info.error ? `: ${errorMessage(info.error)}` : ''}`);
    h.controller.abort(reason);
    try {
      this.options.onLost?.(info);
    } catch (err) {
      process.emitWarning(`s3db-backup lease: onLost threw: ${errorMessage(err)}`);
    }
  }
}
