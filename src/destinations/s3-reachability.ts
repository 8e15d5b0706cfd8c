/**
 * Reachability of one S3 destination's store: after a request found the store unreachable (its
 * connection refused, its host unknown or unreachable, no connection within connectionTimeoutMs:
 * after every retry), the destination's next requests fail at once with that error, rather than
 * each spending the whole retry budget (8-15 s with the defaults) on a store that is not there,
 * except one probe every `probeMs`: it is sent (with its retries), and the first request that gets
 * any answer from the store ends the hold. Without it, a backup to two destinations with one down
 * took ~4 minutes of planning (its catalog, key.json, lease and chain questions, one after the
 * other: walk-28 F3) and listBackups() ~40 s.
 *
 * Invariants:
 * - Only "cannot be reached" trips it (isUnreachable, s3-errors.ts); a reset, a timeout of a
 *   connected request, a 5xx or a client error never does: the store answered, and those are the
 *   retry strategy's.
 * - Any answer of the store ends it, success or not (a 404, a 403, a 503: the store is there), and
 *   so does any request that got through otherwise (a reset means something listens). A failure
 *   that says nothing about the store (the caller aborted, no credentials: nothing was asked) leaves
 *   it as it is (review-29b G5: an aborted probe ended it, and the next requests each spent their
 *   whole retry budget again).
 * - A request is never refused for longer than `probeMs` after the last one sent, even while a probe
 *   is still out (one that never gets an answer waits minutes for its socket timeout): the store is
 *   asked again every few seconds whatever happens, so a store back after a restart is found by the next
 *   request (a lease renewal, with a deadline of its own, is held back at most `probeMs`: review-29
 *   F1, where a 60 s hold outlived a 35 s restart and lost the backup's lease).
 * - Requests that were in flight when it tripped and then fail the same way do not extend it.
 * - A request refused here is never sent, and fails with the error that tripped it (same code),
 *   so every caller treats it as the failure it already handles; its message says it was not sent.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { errorMessage } from '../errors.js';
import { asSdk, httpStatus, isUnreachable } from './s3-errors.js';

/**
 * Whether a failed request got through to something at the store's address: an HTTP status, a
 * connection that was reset or timed out once made, a TLS handshake that met plain HTTP. An abort,
 * a missing credential or any other failure before or without a connection is not an answer.
 */
function answered(err: unknown): boolean {
  const e = asSdk(err);
  if (httpStatus(err) !== undefined) return true;
  if (['ECONNRESET', 'EPIPE', 'ECONNABORTED'].includes(e.code ?? '')) return true;
  const message = e.message ?? '';
  if (e.name === 'TimeoutError') return !isUnreachable(err); // a connected request that then got no answer in time
  return /socket hang up|wrong version number/i.test(message);
}

/** How long requests fail at once after the last one found the store unreachable, before the next is sent as a probe. */
export const PROBE_INTERVAL_MS = 5_000;

export class Reachability {
  /** Since when the store is held unreachable (`at`, with the error), and when the last request was sent to it. */
  private down: { error: unknown; at: number; lastSent: number } | null = null;
  /** Told each time the store is found unreachable after it answered: the plugin logs it, so a wait is never silent. */
  onTrip: ((error: unknown, probeMs: number) => void) | null = null;

  constructor(
    private readonly probeMs = PROBE_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Whether a request may be sent now: 'send' (the store is not held unreachable), 'probe' (it is,
   * and this request is the one that asks again), or the error it fails with instead.
   */
  admit(): 'send' | 'probe' | Error {
    const down = this.down;
    if (!down) return 'send';
    const now = this.now();
    // a new probe every probeMs, even while an earlier one is still out: a store that takes the
    // connection and never answers keeps a probe waiting for its socket timeout (minutes), and a
    // store back meanwhile must still be found (review-29b G1)
    if (now - down.lastSent >= this.probeMs) {
      down.lastSent = now;
      return 'probe';
    }
    const e = asSdk(down.error);
    const message = `${errorMessage(down.error)}; not sent: the store could not be reached (since ${Math.round((now - down.at) / 1000)} s), it is asked again within ${Math.ceil(this.probeMs / 1000)} s`;
    return Object.assign(new Error(message), { name: e.name ?? 'Error', ...(e.code ? { code: e.code } : {}), $metadata: { attempts: 0 } });
  }

  /** A sent request's outcome, after its retries (`err` null: it succeeded). */
  settled(err: unknown, probe: boolean): void {
    if (err !== null && isUnreachable(err)) {
      const now = this.now();
      if (!this.down) {
        this.down = { error: err, at: now, lastSent: now };
        this.onTrip?.(err, this.probeMs);
      } else if (probe) {
        this.down.lastSent = Math.max(this.down.lastSent, now); // the next probe comes probeMs after this one gave up
        this.down.error = err;
      }
      return;
    }
    // a success, or a failure the store (or something at its address) answered
    if (err === null || answered(err)) this.down = null;
  }

  /** Puts this guard around every command `client` sends (its retries included). */
  guard(client: S3Client): void {
    client.middlewareStack.add(
      (next) => async (args) => {
        const admitted = this.admit();
        if (admitted instanceof Error) throw admitted;
        try {
          const out = await next(args);
          this.settled(null, admitted === 'probe');
          return out;
        } catch (err) {
          this.settled(err, admitted === 'probe');
          throw err;
        }
      },
      { step: 'initialize', name: 's3dbBackupReachability', priority: 'high' },
    );
  }
}
