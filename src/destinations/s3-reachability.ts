/**
 * Reachability of one S3 destination's store: after a request found the store unreachable (its
 * connection refused, its host unknown or unreachable, no connection within connectionTimeoutMs:
 * after every retry), the destination's next requests fail at once with that error for
 * `holdMs`, rather than each spending the whole retry budget (8-15 s with the defaults) on a
 * store that is not there. Without it, a backup to two destinations with one down took ~4
 * minutes of planning (its catalog, key.json, lease and chain questions, one after the other:
 * walk-28 F3) and listBackups() ~40 s.
 *
 * Invariants:
 * - Only "cannot be reached" trips it (isUnreachable, s3-errors.ts); a reset, a timeout of a
 *   connected request, a 5xx or a client error never does: the store answered, and those are the
 *   retry strategy's.
 * - A request refused here is never sent, and fails with the error that tripped it (same code),
 *   so every caller treats it as the failure it already handles; its message says it was not sent.
 * - Any request that succeeds (one sent before the trip) clears it; after `holdMs` the next
 *   request is sent again, with its whole retry budget.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { errorMessage } from '../errors.js';
import { asSdk, isUnreachable } from './s3-errors.js';

/** How long a store found unreachable is not asked again. */
export const UNREACHABLE_HOLD_MS = 60_000;

export class Reachability {
  private down: { error: unknown; at: number } | null = null;
  /** Told each time the store is found unreachable (at most once per hold): the plugin logs it, so a wait is never silent. */
  onTrip: ((error: unknown, holdMs: number) => void) | null = null;

  constructor(
    private readonly holdMs = UNREACHABLE_HOLD_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The error a request gets instead of being sent, or null when it may be sent. */
  refusal(): Error | null {
    if (!this.down) return null;
    const since = this.now() - this.down.at;
    if (since >= this.holdMs) {
      this.down = null;
      return null;
    }
    const e = asSdk(this.down.error);
    const message = `${errorMessage(this.down.error)}; not sent: the store could not be reached ${Math.round(since / 1000)} s ago, and is asked again ${Math.ceil((this.holdMs - since) / 1000)} s from now`;
    return Object.assign(new Error(message), { name: e.name ?? 'Error', ...(e.code ? { code: e.code } : {}), $metadata: { attempts: 0 } });
  }

  /** A request's outcome, after its retries. */
  settled(err: unknown): void {
    if (err === null) this.down = null;
    else if (isUnreachable(err)) {
      const tripped = this.down === null;
      this.down = { error: err, at: this.now() };
      if (tripped) this.onTrip?.(err, this.holdMs);
    }
  }

  /** Puts this guard around every command `client` sends (its retries included). */
  guard(client: S3Client): void {
    client.middlewareStack.add(
      (next) => async (args) => {
        const refused = this.refusal();
        if (refused) throw refused;
        try {
          const out = await next(args);
          this.settled(null);
          return out;
        } catch (err) {
          this.settled(err);
          throw err;
        }
      },
      { step: 'initialize', name: 's3dbBackupReachability', priority: 'high' },
    );
  }
}
