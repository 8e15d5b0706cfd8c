/**
 * Child process for the multi-process lease tests: one real process competing for the lease of a
 * real filesystem destination. Run as `node --import tsx __test__/helpers/lease-worker.ts '<json>'`.
 * It prints "ready", waits for a "go" line on stdin (so all workers race at once), then:
 * - mode 'tick': acquire for `tick` (waiting while held); if acquired, log start/end around
 *   `workMs` of "backup" work and release({ completed: true }).
 * - mode 'serial': `rounds` times: acquire (waiting), log start/end around `workMs`, release.
 * - mode 'hold': acquire, report, then keep holding (renewing) until killed.
 * Results are JSON lines on stdout; start/end stamps are appended to `log` (one line per write).
 */
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { FilesystemDestination } from '../../src/destinations/filesystem.js';
import { Lease } from '../../src/lease/index.js';

interface Args {
  dir: string;
  id: string;
  mode: 'tick' | 'serial' | 'hold';
  ttlMs: number;
  workMs?: number;
  tick?: string;
  rounds?: number;
  log?: string;
  waitMs?: number;
  clockSkewMs?: number;
  /** Host name to record (default os.hostname()): another name makes this worker look remote. */
  host?: string;
}

const args = JSON.parse(process.argv[2]) as Args;
const out = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function work(lease: Lease, tick: string | null): Promise<void> {
  appendFileSync(args.log!, `${JSON.stringify({ event: 'start', id: args.id, tick, at: Date.now() })}\n`);
  await sleep(args.workMs ?? 100);
  lease.assertHeld();
  appendFileSync(args.log!, `${JSON.stringify({ event: 'end', id: args.id, tick, at: Date.now() })}\n`);
}

async function main(): Promise<void> {
  const destination = new FilesystemDestination({ directory: args.dir, fsync: false });
  const lost: unknown[] = [];
  const lease = new Lease(destination, { clockSkewMs: args.clockSkewMs ?? 0, host: args.host, onLost: (info) => lost.push(info) });
  out({ ready: true, id: args.id, pid: process.pid });
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) if (line.trim() === 'go') break;
  rl.close();

  if (args.mode === 'tick') {
    const result = await lease.acquire(args.id, args.ttlMs, { tick: args.tick, waitMs: args.waitMs ?? 30_000, pollMs: 25 });
    if (!result.acquired) {
      out({ id: args.id, outcome: result.reason, lastCompletedTick: result.reason === 'tick-done' ? result.lastCompletedTick : undefined });
      return;
    }
    await work(lease, args.tick ?? null);
    const released = await lease.release({ completed: true });
    out({ id: args.id, outcome: 'ran', released, lost, tookOverFrom: result.tookOverFrom ?? null, acquiredAt: Date.parse(result.record.acquiredAt!) });
  } else if (args.mode === 'serial') {
    let runs = 0;
    for (let i = 0; i < (args.rounds ?? 1); i++) {
      const result = await lease.acquire(args.id, args.ttlMs, { waitMs: args.waitMs ?? 60_000, pollMs: 10 });
      if (!result.acquired) throw new Error(`${args.id}: could not acquire (${result.reason})`);
      await work(lease, null);
      if (!(await lease.release())) throw new Error(`${args.id}: release failed`);
      runs++;
    }
    out({ id: args.id, outcome: 'done', runs, lost });
  } else {
    const result = await lease.acquire(args.id, args.ttlMs, { waitMs: args.waitMs ?? 30_000, pollMs: 25 });
    out({ id: args.id, outcome: result.acquired ? 'holding' : result.reason, record: result.acquired ? result.record : null });
    // Hold until SIGKILL; renewals keep the lease alive meanwhile.
    setInterval(() => undefined, 1_000);
  }
}

main().catch((err: unknown) => {
  out({ id: args.id, outcome: 'error', message: err instanceof Error ? err.message : String(err) });
  process.exitCode = 1;
});
