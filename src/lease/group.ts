/**
 * LeaseGroup: the lease of a set of destinations. It is taken at the FIRST destination that
 * answers (in the configured order); a destination that fails with an error (down, missing bucket,
 * unwritable directory) is passed over, so one broken destination never blocks backups that the
 * 'any' and 'priority' strategies would otherwise let through. Contention ('held', 'tick-done') at
 * a destination that answers is final: the group never looks further.
 *
 * Limit: instances that disagree on which destination is down may lock different ones; with every
 * destination up (the normal case) all instances use the first. Errors of every destination are
 * reported together when none answers.
 */
import type { Destination } from '../destinations/types.js';
import { BackupError, errorMessage } from '../errors.js';
import { Lease, type AcquireOptions, type AcquireResult, type LeaseOptions } from './lease.js';

export class LeaseGroup {
  private readonly leases: Lease[];
  private held: Lease | null = null;

  constructor(destinations: Destination[], options: LeaseOptions = {}) {
    this.leases = destinations.map((d) => new Lease(d, options));
  }

  async acquire(holderId: string, ttlMs: number, options: AcquireOptions = {}): Promise<AcquireResult> {
    const errors: string[] = [];
    const codes = new Set<string>();
    for (const lease of this.leases) {
      let result: AcquireResult;
      try {
        result = await lease.acquire(holderId, ttlMs, options);
      } catch (err) {
        errors.push(`${lease.destination.label}: ${errorMessage(err)}`);
        codes.add(err instanceof BackupError ? err.code : '');
        continue;
      }
      if (result.acquired) this.held = lease;
      return result;
    }
    // Every destination failed the same way (a full disk, a read-only mount): that code is the news.
    const [only] = codes;
    const code = codes.size === 1 && only?.startsWith('ERR_DESTINATION_') ? only : 'ERR_LEASE_UNAVAILABLE';
    throw new BackupError(code, `the backup lease could not be taken at any destination: ${errors.join('; ')}`);
  }

  async release(options: { completed?: boolean } = {}): Promise<boolean> {
    const lease = this.held;
    this.held = null;
    return lease ? lease.release(options) : false;
  }

  /** Aborts when the held lease is lost. */
  get signal(): AbortSignal {
    return (this.held ?? this.leases[0]!).signal;
  }

  assertHeld(): void {
    if (!this.held) throw new BackupError('ERR_LEASE_LOST', 'the backup lease is not held');
    this.held.assertHeld();
  }
}
