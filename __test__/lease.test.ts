/**
 * Lease over a real FilesystemDestination in one process: acquire/held/release, renewals, the
 * one-run-per-tick rule, takeover of an expired lease left by a dead holder (the stale record is
 * written the way a crashed process leaves it), and loss detection when another party replaces
 * the lease object behind the holder's back (simulates a successor after a stall).
 */
import { spawnSync } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FilesystemDestination } from '../src/destinations/filesystem.js';
import { BackupError } from '../src/errors.js';
import { Lease, type LeaseLostInfo, type LeaseRecord } from '../src/lease/index.js';
import { LeaseGroup } from '../src/lease/group.js';
import { processSpace } from '../src/lease/process-space.js';

let dir: string;
let destination: FilesystemDestination;
const leases: Lease[] = [];

function lease(options: ConstructorParameters<typeof Lease>[1] = {}): Lease {
  const l = new Lease(destination, { clockSkewMs: 0, ...options });
  leases.push(l);
  return l;
}

function onDisk(): LeaseRecord {
  return JSON.parse(readFileSync(join(dir, 'locks', 'backup.lease'), 'utf8')) as LeaseRecord;
}

/**
 * Writes a successor's record over the lease object the way a successor does: a compare-and-swap
 * on the tag it read. A plain write could race the holder's renewal in flight (its own
 * compare-and-swap) and be overwritten by it, so that no takeover is ever seen.
 */
async function takeOver(record: LeaseRecord, at: FilesystemDestination = destination): Promise<void> {
  for (;;) {
    const seen = await at.stat('locks/backup.lease');
    if (seen?.etag !== undefined && (await at.replaceIfMatch('locks/backup.lease', Buffer.from(JSON.stringify(record)), seen.etag)).replaced) return;
  }
}

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 's3db-backup-lease-'));
  destination = new FilesystemDestination({ directory: dir, fsync: false });
});

afterEach(async () => {
  for (const l of leases.splice(0)) await l.release();
  rmSync(dir, { recursive: true, force: true });
});

describe('Lease', () => {
  it('creates the lease object with holder, host, pid, times and tick; a second instance sees it held', async () => {
    const a = lease({ host: 'host-a' });
    const before = Date.now();
    const r = await a.acquire('a', 10_000, { tick: '2026-11-30T10:00:00Z' });
    expect(r.acquired).toBe(true);
    const rec = onDisk();
    expect(rec).toMatchObject({ version: 1, holder: 'a', host: 'host-a', pid: process.pid, tick: '2026-11-30T10:00:00.000Z', lastCompletedTick: null, generation: 1 });
    expect(Date.parse(rec.expiresAt!) - Date.parse(rec.acquiredAt!)).toBe(10_000);
    expect(Date.parse(rec.acquiredAt!)).toBeGreaterThanOrEqual(before);
    expect(a.isHeld).toBe(true);
    expect(() => a.assertHeld()).not.toThrow();

    const b = lease();
    const rb = await b.acquire('b', 10_000);
    expect(rb).toMatchObject({ acquired: false, reason: 'held', holder: { holder: 'a' } });
    await expect(a.acquire('a', 10_000)).rejects.toMatchObject({ code: 'ERR_LEASE_STATE' });
  });

  it('release frees the lease (object kept, holder null) and lets the next holder in', async () => {
    const a = lease();
    await a.acquire('a', 10_000);
    expect(await a.release()).toBe(true);
    expect(a.isHeld).toBe(false);
    expect(() => a.assertHeld()).toThrow(BackupError);
    expect(onDisk()).toMatchObject({ holder: null, lastCompletedTick: null, generation: 2 });
    expect(await a.release()).toBe(false); // nothing held
    const b = lease();
    const rb = await b.acquire('b', 10_000);
    expect(rb.acquired).toBe(true);
    expect(rb.acquired && rb.tookOverFrom).toBeUndefined();
  });

  it('renews while held: expiresAt moves forward every ttl/3', async () => {
    const a = lease();
    await a.acquire('a', 600);
    const first = onDisk();
    await until(() => onDisk().generation >= 4, 'three renewals');
    const later = onDisk();
    expect(later.holder).toBe('a');
    expect(later.token).toBe(first.token);
    expect(Date.parse(later.expiresAt!)).toBeGreaterThan(Date.parse(first.expiresAt!));
    expect(Date.parse(later.renewedAt!)).toBeGreaterThan(Date.parse(first.renewedAt!));
    // Renewals kept it alive well past the first expiry: another instance still sees it held.
    await until(() => Date.now() > Date.parse(first.expiresAt!) + 50, 'the original expiry to pass');
    expect(await lease().acquire('b', 600)).toMatchObject({ acquired: false, reason: 'held' });
  });

  it('one run per tick: a completed tick is refused to everyone afterwards; later ticks run', async () => {
    const T = '2026-11-30T10:00:00.000Z';
    const a = lease();
    expect((await a.acquire('a', 10_000, { tick: T })).acquired).toBe(true);
    expect(await a.release({ completed: true })).toBe(true);
    expect(onDisk()).toMatchObject({ holder: null, lastCompletedTick: T, lastCompletedBy: 'a' });

    const b = lease();
    expect(await b.acquire('b', 10_000, { tick: T })).toMatchObject({ acquired: false, reason: 'tick-done', lastCompletedTick: T });
    expect(await b.acquire('b', 10_000, { tick: Date.parse(T) - 3_600_000 })).toMatchObject({ acquired: false, reason: 'tick-done' });
    // Manual backups (no tick) are not affected by the tick rule.
    expect((await b.acquire('b', 10_000)).acquired).toBe(true);
    await b.release({ completed: true });
    expect(onDisk().lastCompletedTick).toBe(T); // a manual run records no tick
    // The next tick runs; a failed run (completed: false) leaves the tick retryable.
    const T2 = '2026-11-30T11:00:00.000Z';
    expect((await b.acquire('b', 10_000, { tick: T2 })).acquired).toBe(true);
    await b.release({ completed: false });
    expect(onDisk().lastCompletedTick).toBe(T);
    expect((await a.acquire('a', 10_000, { tick: new Date(T2) })).acquired).toBe(true);
    await a.release({ completed: true });
    expect(onDisk().lastCompletedTick).toBe(T2);
  });

  it('a tick already completed is refused even while someone else holds the lease', async () => {
    const T = '2026-11-30T10:00:00.000Z';
    const a = lease();
    await a.acquire('a', 10_000, { tick: T });
    await a.release({ completed: true });
    await a.acquire('a', 10_000, { tick: '2026-11-30T11:00:00Z' });
    expect(await lease().acquire('b', 10_000, { tick: T })).toMatchObject({ acquired: false, reason: 'tick-done' });
  });

  it('takes over a lease whose holder died (expired), keeping lastCompletedTick', async () => {
    // The state a killed holder leaves: its record, expired, never released.
    const dead: LeaseRecord = {
      version: 1,
      holder: 'dead',
      host: 'gone',
      pid: 1,
      acquiredAt: new Date(Date.now() - 120_000).toISOString(),
      expiresAt: new Date(Date.now() - 60_000).toISOString(),
      tick: '2026-11-30T10:00:00.000Z',
      lastCompletedTick: '2026-11-30T09:00:00.000Z',
      generation: 7,
    };
    expect((await destination.createIfAbsent('locks/backup.lease', Buffer.from(JSON.stringify(dead)))).created).toBe(true);
    const b = lease();
    const r = await b.acquire('b', 10_000, { tick: '2026-11-30T10:00:00Z' });
    expect(r.acquired).toBe(true);
    expect(r.acquired && r.tookOverFrom).toMatchObject({ holder: 'dead', tick: '2026-11-30T10:00:00.000Z' });
    expect(onDisk()).toMatchObject({ holder: 'b', lastCompletedTick: '2026-11-30T09:00:00.000Z', generation: 8 });
  });

  it('a dead holder whose clock ran 30 days ahead blocks others only for its TTL (by their clock), not 30 days', async () => {
    // The record such a host leaves: renewed and expiring 30 days from now, 400 ms TTL, never renewed again.
    const ahead = Date.now() + 30 * 86_400_000;
    const record: LeaseRecord = {
      version: 1,
      holder: 'future-host',
      host: 'another-host',
      pid: 1,
      acquiredAt: new Date(ahead).toISOString(),
      renewedAt: new Date(ahead).toISOString(),
      expiresAt: new Date(ahead + 400).toISOString(),
      tick: null,
      lastCompletedTick: null,
      generation: 3,
    };
    expect((await destination.createIfAbsent('locks/backup.lease', Buffer.from(JSON.stringify(record)))).created).toBe(true);
    const b = lease();
    expect(await b.acquire('b', 10_000)).toMatchObject({ acquired: false, reason: 'held' });
    const r = await b.acquire('b', 10_000, { waitMs: 5_000, pollMs: 100 });
    expect(r.acquired).toBe(true);
    expect(r.acquired && r.tookOverFrom).toMatchObject({ holder: 'future-host' });
  });

  it('a lastCompletedTick 30 days ahead (written by a host whose clock ran ahead) does not mark the ticks until then as done, and is dropped', async () => {
    const future = new Date(Date.now() + 30 * 86_400_000).toISOString();
    const record: LeaseRecord = { version: 1, holder: null, releasedAt: future, lastCompletedTick: future, generation: 5 };
    expect((await destination.createIfAbsent('locks/backup.lease', Buffer.from(JSON.stringify(record)))).created).toBe(true);
    const tick = new Date(Date.now() - 1_000).toISOString();
    const a = lease();
    const r = await a.acquire('a', 10_000, { tick });
    expect(r.acquired).toBe(true);
    await a.release({ completed: true });
    expect(onDisk().lastCompletedTick).toBe(tick);
    expect(await lease().acquire('b', 10_000, { tick })).toMatchObject({ acquired: false, reason: 'tick-done' });
  });

  it('a holder with this host name but another pid namespace (a container) is never judged by its pid', async () => {
    // The record a holder in another container with the same host name writes (hostNetwork pods,
    // docker --uts host): its pid means nothing here. Written by hand: pid namespaces cannot be
    // given distinct pids that are free here on demand.
    const exited = spawnSync(process.execPath, ['-e', '0']).pid!; // a pid with no process here
    const unexpired = { version: 1, holder: 'container-b', host: hostname(), pid: exited, expiresAt: new Date(Date.now() + 60_000).toISOString(), generation: 1 };
    await destination.createIfAbsent('locks/backup.lease', Buffer.from(JSON.stringify({ ...unexpired, space: `${processSpace()}-other` })));
    expect(await lease().acquire('a', 10_000)).toMatchObject({ acquired: false, reason: 'held' });
    // The same record from this pid namespace: that process is gone, so the lease is free at once.
    await destination.delete(['locks/backup.lease']);
    await destination.createIfAbsent('locks/backup.lease', Buffer.from(JSON.stringify({ ...unexpired, space: processSpace() })));
    expect((await lease().acquire('a', 10_000)).acquired).toBe(true);
  });

  it('does not take over an unexpired lease, and honours clockSkewMs', async () => {
    const record: LeaseRecord = { version: 1, holder: 'other', expiresAt: new Date(Date.now() - 200).toISOString(), generation: 1 };
    await destination.createIfAbsent('locks/backup.lease', Buffer.from(JSON.stringify(record)));
    // Expired 200 ms ago but within a 5 s skew allowance: still held.
    expect(await lease({ clockSkewMs: 5_000 }).acquire('b', 10_000)).toMatchObject({ acquired: false, reason: 'held' });
    expect((await lease({ clockSkewMs: 0 }).acquire('c', 10_000)).acquired).toBe(true);
  });

  it('waits for a busy lease when asked (waitMs) and gets it after release', async () => {
    const a = lease();
    await a.acquire('a', 10_000);
    setTimeout(() => void a.release(), 300);
    const r = await lease().acquire('b', 10_000, { waitMs: 10_000, pollMs: 20 });
    expect(r.acquired).toBe(true);
  });

  it('waiting with a signal (the plugin\'s, alive until stop()) leaves no abort listener behind, however many polls it took', async () => {
    const a = lease();
    await a.acquire('a', 10_000);
    const plugin = new AbortController();
    setTimeout(() => void a.release(), 300);
    const r = await lease().acquire('b', 10_000, { waitMs: 10_000, pollMs: 20, signal: plugin.signal });
    expect(r.acquired).toBe(true);
    expect(getEventListeners(plugin.signal, 'abort')).toHaveLength(0);
  });

  it('detects a lost lease at the next renewal: onLost, aborted signal, assertHeld throws, release leaves the successor alone', async () => {
    const lost: LeaseLostInfo[] = [];
    const a = lease({ onLost: (info) => lost.push(info) });
    await a.acquire('a', 600);
    // A successor's record replaces ours (what a takeover after a stall of the holder looks like).
    const successor: LeaseRecord = { version: 1, holder: 'successor', expiresAt: new Date(Date.now() + 60_000).toISOString(), generation: 99 };
    await takeOver(successor);
    await until(() => lost.length > 0, 'loss detection');
    expect(lost[0]).toMatchObject({ holder: 'a', reason: 'taken-over', current: { holder: 'successor' } });
    expect(a.signal.aborted).toBe(true);
    expect((a.signal.reason as BackupError).code).toBe('ERR_LEASE_LOST');
    expect(() => a.assertHeld()).toThrow(/lost by a/);
    expect(await a.release({ completed: true })).toBe(false);
    expect(onDisk()).toMatchObject({ holder: 'successor', generation: 99 });
  });

  it('a group held at two destinations is not lost when one of them goes away (its writes fail on their own), but is when another holder takes it over at either', async () => {
    const second = mkdtempSync(join(tmpdir(), 's3db-backup-lease-b-'));
    try {
      const b = new FilesystemDestination({ directory: second, fsync: false });
      const group = new LeaseGroup([destination, b], { ttlMs: 300, clockSkewMs: 0 });
      expect((await group.acquire('g', 300)).acquired).toBe(true);
      // the second destination disappears (an unmount): renewals there fail until its record expires
      rmSync(second, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 900));
      expect(group.signal.aborted).toBe(false);
      expect(() => group.assertHeld()).not.toThrow();
      // another holder's record at the destination still there: a takeover, the group is lost
      const successor: LeaseRecord = { version: 1, holder: 'successor', expiresAt: new Date(Date.now() + 60_000).toISOString(), generation: 99 };
      await takeOver(successor);
      await until(() => group.signal.aborted, 'the takeover');
      expect((group.signal.reason as BackupError).message).toContain('taken-over');
      expect(() => group.assertHeld()).toThrow(/taken-over/);
      await group.release();
    } finally {
      rmSync(second, { recursive: true, force: true });
    }
  });

  it('treats an unreadable lease object as free, and refuses a newer format', async () => {
    await destination.createIfAbsent('locks/backup.lease', Buffer.from('not json'));
    expect((await lease().acquire('a', 10_000)).acquired).toBe(true);
    await leases[0].release();
    const other = new Lease(destination, { path: 'locks/v2.lease' });
    await destination.createIfAbsent('locks/v2.lease', Buffer.from(JSON.stringify({ version: 2, holder: null, generation: 1 })));
    await expect(other.acquire('a', 10_000)).rejects.toMatchObject({ code: 'ERR_LEASE_FORMAT' });
  });

  it('release never races a renewal in flight (renewing every 5 ms, 40 acquire/release cycles)', async () => {
    const a = lease({ renewIntervalMs: 5 });
    for (let i = 0; i < 40; i++) {
      expect((await a.acquire('a', 5_000)).acquired).toBe(true);
      await new Promise((r) => setTimeout(r, i % 7)); // let renewals start at varying moments
      expect(await a.release({ completed: false })).toBe(true);
      expect(onDisk().holder).toBeNull();
    }
  });

  it("a release that could not be written (full disk) leaves the lease to its TTL for others, but this instance takes it back at once", async () => {
    // Fault injection: a write that fails on demand, as a full disk does; every other call is the
    // real filesystem destination.
    let failWrites = false;
    const failing = new Proxy(destination, {
      get(target, name, receiver) {
        if (name === 'replaceIfMatch') {
          return (...args: Parameters<FilesystemDestination['replaceIfMatch']>) => {
            if (failWrites) return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }));
            return target.replaceIfMatch(...args);
          };
        }
        const value = Reflect.get(target, name, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const mine = new Lease(failing, { clockSkewMs: 0, ttlMs: 60_000 });
    leases.push(mine);
    expect((await mine.acquire('me')).acquired).toBe(true);
    failWrites = true;
    expect(await mine.release()).toBe(false);
    failWrites = false;
    expect(onDisk().holder).toBe('me'); // still on disk, unexpired
    const other = lease({ ttlMs: 60_000 });
    expect(await other.acquire('other')).toMatchObject({ acquired: false, reason: 'held' });
    const again = await mine.acquire('me-again'); // no 60 s wait: the record is this instance's own
    expect(again).toMatchObject({ acquired: true, tookOverFrom: expect.objectContaining({ holder: 'me' }) });
    expect(await mine.release()).toBe(true);
    expect((await other.acquire('other')).acquired).toBe(true);
  });

  it('refuses bad arguments', async () => {
    expect(() => new Lease(destination, { ttlMs: 5 })).toThrow(/lease.ttlMs/);
    await expect(lease().acquire('', 1_000)).rejects.toMatchObject({ code: 'ERR_LEASE_HOLDER' });
    await expect(lease().acquire('a', 1_000, { tick: 'noon' })).rejects.toMatchObject({ code: 'ERR_LEASE_TICK' });
  });
});
