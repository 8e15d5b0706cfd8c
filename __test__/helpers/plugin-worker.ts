/**
 * Child process for the fleet tests: one real application instance with a BackupPlugin on a shared
 * file:// database and a shared filesystem backup directory.
 * Run as `node --import tsx __test__/helpers/plugin-worker.ts '<json args>'`. Messages are JSON
 * lines on stdout.
 * - mode 'fleet': installs the plugin with `schedule` and reports every plg:backup:complete,
 *   plg:backup:error and plg:backup:skipped; prints { ready } once the plugin runs; on a "stop"
 *   line on stdin it calls plugin.stop() (waits for a running backup), prints { stopped } and exits.
 * - mode 'freeze': on a "go" line, takes a manual backup and, at its first progress event (parts
 *   and the pending marker are written, the backup lease is held), prints { frozen: id } and blocks
 *   its thread for good (Atomics.wait) - an instance stuck mid-backup, to be killed with SIGKILL.
 *   The freeze only picks the moment; the crash itself is a real SIGKILL of a real process.
 * - mode 'stoppable': takes a backup (lease of `ttlMs`, waiting for it up to a minute) on each "go"
 *   line and reports { complete } or { error, code }; exits on "exit". With `pauseMs`, the first
 *   backup prints { midBackup: id } at its first progress event and blocks its thread that long:
 *   a window in which the test stops the process for real (SIGSTOP), not a simulated freeze.
 */
import { createInterface } from 'node:readline';
import { BackupPlugin } from '../../src/index.js';
import { openDb } from './database.js';

interface Args {
  mode: 'fleet' | 'freeze' | 'stoppable';
  name: string;
  db: string;
  dir: string;
  schedule?: number;
  ttlMs?: number;
  pauseMs?: number;
}

const args = JSON.parse(process.argv[2]!) as Args;
const out = (value: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ worker: args.name, pid: process.pid, at: Date.now(), ...value })}\n`);

async function lines(wanted: string): Promise<void> {
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) if (line.trim() === wanted) break;
  rl.close();
}

async function main(): Promise<void> {
  const db = await openDb(args.db);
  if (args.mode === 'fleet') {
    const plugin = new BackupPlugin({ schedule: args.schedule ?? 2000, config: { directory: args.dir }, lease: { ttlMs: args.ttlMs ?? 5_000 }, verify: 'quick' });
    plugin.on('plg:backup:complete', (e: { id: string }) => out({ type: 'complete', id: e.id }));
    plugin.on('plg:backup:error', (e: { id: string; error: string; code: string }) => out({ type: 'error', id: e.id, error: e.error, code: e.code }));
    plugin.on('plg:backup:skipped', (e) => out({ type: 'skipped', reason: e.reason, tick: 'tick' in e ? e.tick : null, count: e.count }));
    await db.usePlugin(plugin);
    out({ type: 'ready' });
    await lines('stop');
    await plugin.stop();
    out({ type: 'stopped' });
    await db.disconnect();
    process.exit(0);
  }
  if (args.mode === 'stoppable') {
    const plugin = new BackupPlugin({ schedule: false, config: { directory: args.dir }, lease: { ttlMs: args.ttlMs ?? 3_000, waitMs: 60_000 }, progressIntervalMs: 1 });
    let paused = !args.pauseMs;
    plugin.on('plg:backup:progress', (e: { id: string; phase: string; objects: number; done: boolean }) => {
      if (paused || e.phase !== 'backup' || e.done || e.objects < 1) return;
      paused = true;
      out({ type: 'mid-backup', id: e.id });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, args.pauseMs);
    });
    await db.usePlugin(plugin);
    out({ type: 'ready' });
    const rl = createInterface({ input: process.stdin });
    for await (const line of rl) {
      if (line.trim() === 'exit') break;
      if (line.trim() !== 'go') continue;
      try {
        out({ type: 'complete', id: (await plugin.createBackup()).id });
      } catch (err) {
        out({ type: 'error', code: (err as { code?: string }).code, error: err instanceof Error ? err.message : String(err) });
      }
    }
    rl.close();
    await plugin.stop();
    await db.disconnect();
    process.exit(0);
  }
  const plugin = new BackupPlugin({ schedule: false, config: { directory: args.dir }, progressIntervalMs: 1 });
  plugin.on('plg:backup:progress', (e: { id: string; phase: string; objects: number; done: boolean }) => {
    if (e.phase !== 'backup' || e.done || e.objects < 1) return;
    out({ type: 'frozen', id: e.id }); // stdout to a pipe is synchronous on Linux: written before we block
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  });
  await db.usePlugin(plugin);
  out({ type: 'ready' });
  await lines('go');
  await plugin.createBackup({ reason: 'will be killed' });
  out({ type: 'completed-unexpectedly' });
}

main().catch((err: unknown) => {
  out({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
