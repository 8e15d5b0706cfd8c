/**
 * LeaseGroup: the lease of a set of destinations. It is taken at EVERY destination that answers,
 * one after another in the order of their labels (not the configured order), and held at all of
 * them until released. So two instances that share a destination always meet at it, whatever
 * order they list their destinations in and whichever others they list besides: a rolling deploy
 * that reorders or adds destinations never lets an old and a new instance back up (and prune) at
 * once. The fixed order also means two instances never each hold what the other waits for.
 *
 * - A destination that fails with an error (down, missing bucket, unwritable directory) is passed
 *   over, so one broken destination never blocks backups that the 'any' and 'priority' strategies
 *   would otherwise let through; at least one must be taken. Errors of every destination are
 *   reported together when none answers.
 * - Contention ('held', 'tick-done') at any destination that answers gives up the ones taken so
 *   far and is the result; with `waitMs` the whole group is tried again until it expires.
 * - Held, the group is lost (`signal` aborts, assertHeld throws) when another holder took it over
 *   at any destination, or when it is lost at every one. A destination where it could no longer
 *   be renewed (down, unmounted: 'expired' or 'deleted') is that destination failing, which the
 *   backup's writes there report and its strategy ('any', 'priority') may go on without.
 * Limit: instances that disagree on which destination is down may share no lease.
 */
import { failureAt, type Destination } from '../destinations/types.js';
import { BackupError } from '../errors.js';
import { Lease, sleep, type AcquireOptions, type AcquireResult, type LeaseOptions } from './lease.js';

export class LeaseGroup {
  private readonly leases: Lease[];
  private held: Lease[] = [];
  /** Aborted when the lease held now is lost as a whole (see the top comment). */
  private lost = new AbortController();

  constructor(destinations: Destination[], options: LeaseOptions = {}) {
    this.leases = [...destinations].sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0)).map((d) => new Lease(d, options));
  }

  async acquire(holderId: string, ttlMs: number, options: AcquireOptions = {}): Promise<AcquireResult> {
    const deadline = Date.now() + (options.waitMs ?? 0);
    const pollMs = options.pollMs ?? Math.min(1_000, Math.floor(ttlMs / 4));
    for (;;) {
      const result = await this.acquireAll(holderId, ttlMs, options.tick);
      if (result.acquired || result.reason === 'tick-done') return result;
      if (Date.now() + pollMs > deadline || options.signal?.aborted) return result;
      await sleep(pollMs, options.signal);
    }
  }

  private async acquireAll(holderId: string, ttlMs: number, tick: AcquireOptions['tick']): Promise<AcquireResult> {
    const errors: string[] = [];
    const codes = new Set<string>();
    let first: AcquireResult | null = null;
    for (const lease of this.leases) {
      let result: AcquireResult;
      try {
        result = await lease.acquire(holderId, ttlMs, tick === undefined ? {} : { tick });
      } catch (err) {
        errors.push(failureAt(lease.destination.label, err));
        codes.add(err instanceof BackupError ? err.code : '');
        continue;
      }
      if (!result.acquired) {
        await this.release();
        return result;
      }
      this.held.push(lease);
      first ??= result;
    }
    if (first) {
      this.watchLosses();
      return first;
    }
    // Every destination failed the same way (a full disk, a read-only mount): that code is the news.
    const [only] = codes;
    const code = codes.size === 1 && only?.startsWith('ERR_DESTINATION_') ? only : 'ERR_LEASE_UNAVAILABLE';
    throw new BackupError(code, `the backup lease could not be taken at any destination: ${errors.join('; ')}`);
  }

  /** The latest tick recorded as completed at any destination that answers, or null. */
  async lastCompletedTick(): Promise<string | null> {
    const ticks = await Promise.all(this.leases.map((l) => l.lastCompletedTick().catch(() => null)));
    return ticks.reduce<string | null>((max, t) => (t !== null && (max === null || Date.parse(t) > Date.parse(max)) ? t : max), null);
  }

  /** Releases the lease everywhere it is held; true when every release was written. */
  async release(options: { completed?: boolean } = {}): Promise<boolean> {
    const held = this.held;
    this.held = [];
    const released = await Promise.all(held.map((lease) => lease.release(options)));
    return released.length > 0 && released.every(Boolean);
  }

  private watchLosses(): void {
    const lost = new AbortController();
    this.lost = lost;
    const held = this.held;
    for (const lease of held) {
      lease.signal.addEventListener(
        'abort',
        () => {
          if (lease.lossReason === 'taken-over' || held.every((l) => l.signal.aborted)) lost.abort(lease.signal.reason);
        },
        { once: true },
      );
    }
  }

  /** Aborts when the lease held now is lost: taken over at any destination, or lost at every one. */
  get signal(): AbortSignal {
    return this.lost.signal;
  }

  assertHeld(): void {
    if (this.held.length === 0) throw new BackupError('ERR_LEASE_LOST', 'the backup lease is not held');
    if (this.lost.signal.aborted) throw this.lost.signal.reason;
    let last: unknown = null;
    let holding = 0;
    for (const lease of this.held) {
      try {
        lease.assertHeld();
        holding += 1;
      } catch (err) {
        // lost or expired at this destination only: that destination is failing, not the lease
        if (lease.lossReason === 'taken-over') throw err;
        last = err;
      }
    }
    if (holding === 0) throw last;
  }
}
