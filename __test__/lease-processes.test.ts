/**
 * The lease across several REAL processes on one real directory (node --import tsx
 * __test__/helpers/lease-worker.ts). Proves: exactly one process runs a given tick; holders never
 * overlap in time; a holder killed with SIGKILL loses the lease after its TTL and another process
 * takes over.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LeaseRecord } from '../src/lease/index.js';

const WORKER = fileURLToPath(new URL('./helpers/lease-worker.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Worker {
  child: ChildProcessWithoutNullStreams;
  lines: Array<Record<string, unknown>>;
  next(predicate: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

let dir: string;
const children: ChildProcessWithoutNullStreams[] = [];

function startWorker(args: Record<string, unknown>): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify({ dir, ...args })], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ predicate: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let buffer = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
      buffer = buffer.slice(nl + 1);
      lines.push(line);
      for (const w of waiters.splice(0)) {
        if (w.predicate(line)) w.resolve(line);
        else waiters.push(w);
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    next: (predicate) =>
      new Promise((resolve, reject) => {
        const found = lines.find(predicate);
        if (found) return resolve(found);
        waiters.push({ predicate, resolve });
        void exited.then((code) => setTimeout(() => reject(new Error(`worker exited (${code}) before the expected line; stderr: ${stderr}`)), 50));
      }),
  };
}

async function race(workers: Worker[]): Promise<Array<Record<string, unknown>>> {
  await Promise.all(workers.map((w) => w.next((l) => l.ready === true)));
  for (const w of workers) w.child.stdin.write('go\n');
  return Promise.all(workers.map((w) => w.next((l) => typeof l.outcome === 'string')));
}

function logEntries(file: string): Array<{ event: string; id: string; tick: string | null; at: number }> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function intervals(file: string): Array<{ id: string; start: number; end: number }> {
  const open = new Map<string, number>();
  const out: Array<{ id: string; start: number; end: number }> = [];
  for (const e of logEntries(file)) {
    if (e.event === 'start') {
      expect(open.has(e.id)).toBe(false);
      open.set(e.id, e.at);
    } else {
      out.push({ id: e.id, start: open.get(e.id)!, end: e.at });
      open.delete(e.id);
    }
  }
  expect(open.size).toBe(0);
  return out.sort((a, b) => a.start - b.start);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 's3db-backup-lease-mp-'));
});

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('lease across real processes', () => {
  it('four processes racing for the same tick: exactly one runs it, the others see it done', async () => {
    const log = join(dir, 'run.log');
    const tick = '2026-11-30T10:00:00.000Z';
    const workers = ['w1', 'w2', 'w3', 'w4'].map((id) => startWorker({ id, mode: 'tick', tick, ttlMs: 3_000, workMs: 400, log }));
    const results = await race(workers);
    const ran = results.filter((r) => r.outcome === 'ran');
    expect(ran).toHaveLength(1);
    expect(ran[0].released).toBe(true);
    expect(ran[0].lost).toEqual([]);
    expect(results.filter((r) => r.outcome === 'tick-done').map((r) => r.lastCompletedTick)).toEqual([tick, tick, tick]);
    const runs = logEntries(log).filter((e) => e.event === 'start');
    expect(runs).toEqual([expect.objectContaining({ id: ran[0].id, tick })]);

    // A latecomer for the same tick does not run it; the next tick runs.
    const late = startWorker({ id: 'late', mode: 'tick', tick, ttlMs: 3_000, workMs: 50, log });
    const [lateResult] = await race([late]);
    expect(lateResult).toMatchObject({ outcome: 'tick-done', lastCompletedTick: tick });
    const next = startWorker({ id: 'next', mode: 'tick', tick: '2026-11-30T11:00:00.000Z', ttlMs: 3_000, workMs: 50, log });
    const [nextResult] = await race([next]);
    expect(nextResult.outcome).toBe('ran');
    expect(logEntries(log).filter((e) => e.event === 'start').map((e) => e.tick)).toEqual([tick, '2026-11-30T11:00:00.000Z']);
  });

  it('three processes taking turns 4 times each: holders never overlap in time', async () => {
    const log = join(dir, 'serial.log');
    const workers = ['a', 'b', 'c'].map((id) => startWorker({ id, mode: 'serial', rounds: 4, ttlMs: 2_000, workMs: 80, log }));
    const results = await race(workers);
    for (const r of results) expect(r).toMatchObject({ outcome: 'done', runs: 4, lost: [] });
    const spans = intervals(log);
    expect(spans).toHaveLength(12);
    expect(new Set(spans.map((s) => s.id))).toEqual(new Set(['a', 'b', 'c']));
    for (let i = 1; i < spans.length; i++) {
      expect(spans[i].start, `${spans[i].id} started before ${spans[i - 1].id} ended`).toBeGreaterThanOrEqual(spans[i - 1].end);
    }
  });

  it('a holder on another host killed with SIGKILL loses the lease after its TTL; another process takes over', async () => {
    const ttlMs = 1_500;
    // The doomed holder records another host name: its pid means nothing here, only the TTL counts.
    const holder = startWorker({ id: 'doomed', mode: 'hold', ttlMs, log: join(dir, 'x.log'), host: 'some-other-host' });
    const [held] = await race([holder]);
    expect(held.outcome).toBe('holding');
    const leaseFile = join(dir, 'locks', 'backup.lease');
    const read = () => JSON.parse(readFileSync(leaseFile, 'utf8')) as LeaseRecord;
    // Let it renew at least twice first, so the takeover below is not just the first TTL running out.
    for (let i = 0; i < 200 && read().generation < 3; i++) await new Promise((r) => setTimeout(r, 25));
    expect(read()).toMatchObject({ holder: 'doomed' });
    expect(read().generation).toBeGreaterThanOrEqual(3);

    const successor = startWorker({ id: 'successor', mode: 'tick', tick: '2026-11-30T12:00:00.000Z', ttlMs, workMs: 50, log: join(dir, 'y.log'), waitMs: 20_000 });
    await successor.next((l) => l.ready === true);
    holder.child.kill('SIGKILL');
    await holder.exited;
    const lastSeen = read(); // the record the dead holder left behind
    expect(lastSeen.holder).toBe('doomed');
    successor.child.stdin.write('go\n');
    const result = await successor.next((l) => typeof l.outcome === 'string');
    expect(result.outcome).toBe('ran');
    const from = result.tookOverFrom as LeaseRecord;
    expect(from).toMatchObject({ holder: 'doomed', token: lastSeen.token });
    // Taken over only after the dead holder's lease had expired.
    expect(result.acquiredAt as number).toBeGreaterThan(Date.parse(from.expiresAt!));
    expect(read()).toMatchObject({ holder: null, lastCompletedTick: '2026-11-30T12:00:00.000Z', lastCompletedBy: 'successor' });
  });

  it('a holder on this host killed with SIGKILL is taken over at once, without waiting for its TTL', async () => {
    const ttlMs = 60_000;
    const holder = startWorker({ id: 'doomed-local', mode: 'hold', ttlMs, log: join(dir, 'l.log') });
    const [held] = await race([holder]);
    expect(held.outcome).toBe('holding');
    const successor = startWorker({ id: 'successor-local', mode: 'tick', tick: '2026-11-30T13:00:00.000Z', ttlMs, workMs: 50, log: join(dir, 'm.log'), waitMs: 20_000 });
    await successor.next((l) => l.ready === true);
    holder.child.kill('SIGKILL');
    await holder.exited;
    successor.child.stdin.write('go\n');
    const result = await successor.next((l) => typeof l.outcome === 'string');
    expect(result.outcome).toBe('ran');
    const from = result.tookOverFrom as LeaseRecord;
    expect(from).toMatchObject({ holder: 'doomed-local' });
    expect(result.acquiredAt as number).toBeLessThan(Date.parse(from.expiresAt!));
  });
});
