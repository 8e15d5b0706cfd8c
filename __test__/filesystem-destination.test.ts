// The filesystem destination on real files: atomic writes, ranges, listing, exclusive create,
// compare-and-swap, path escapes refused, temp files of a crashed writer invisible and cleaned.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FilesystemDestination } from '../src/destinations/filesystem.js';
import { readText } from '../src/destinations/types.js';
import { processSpace } from '../src/lease/process-space.js';

async function fresh(): Promise<FilesystemDestination> {
  return new FilesystemDestination({ directory: await mkdtemp(path.join(tmpdir(), 'fsdest-')) });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('FilesystemDestination', () => {
  it('writes streams atomically and reports size and sha256 of the stored bytes', async () => {
    const d = await fresh();
    const data = Buffer.alloc(3 * 1024 * 1024 + 7, 'abc');
    const res = await d.write('a/b/c.part', Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
    expect(res.size).toBe(data.length);
    expect(res.sha256).toBe(createHash('sha256').update(data).digest('hex'));
    expect((await readAll(await d.read('a/b/c.part'))).equals(data)).toBe(true);
    expect((await readAll(await d.read('a/b/c.part', { start: 10, end: 19 }))).equals(data.subarray(10, 20))).toBe(true);
    expect((await d.stat('a/b/c.part'))?.size).toBe(data.length);
    expect(await d.stat('a/b/missing')).toBeNull();
  });

  it('two writers of one directory that each remove it when they leave it empty (instances without the lease: pending/) never fail each other', async () => {
    const a = await fresh();
    const b = new FilesystemDestination({ directory: a.root, fsync: false });
    const failures: string[] = [];
    // each writes its marker and deletes it (which removes pending/ when empty), 300 times, at once
    const writer = async (d: FilesystemDestination, name: string) => {
      for (let i = 0; i < 300; i++) {
        try {
          await d.write(`pending/${name}-${i}.json`, Buffer.from('{}'));
          await d.delete([`pending/${name}-${i}.json`]);
        } catch (err) {
          failures.push(`${name} ${i}: ${(err as Error).message}`);
        }
      }
    };
    await Promise.all([writer(a, 'a'), writer(b, 'b'), writer(a, 'c'), writer(b, 'd')]);
    expect(failures).toEqual([]);
  });

  it('a failed write leaves no object and no temp file', async () => {
    const d = await fresh();
    const failing = new Readable({
      read() {
        this.push(Buffer.alloc(1000));
        this.destroy(new Error('source broke'));
      },
    });
    await expect(d.write('x/y.part', failing)).rejects.toThrow(/source broke/);
    expect(await d.stat('x/y.part')).toBeNull();
    expect(await readdir(path.join(d.root, 'x'))).toEqual([]);
  });

  it('lists recursively, sorted, filtered by prefix, hiding temp files', async () => {
    const d = await fresh();
    for (const p of ['m/2.json', 'm/1.json', 'data/2024/a.1', 'data/2024/a.2', 'data/2025/b.1', 'mx.json']) await d.write(p, Buffer.from(p));
    await writeFile(path.join(d.root, 'm', '.s3db-backup-tmp-123-abc-3.json'), 'partial');
    const list = async (prefix: string) => {
      const out: string[] = [];
      for await (const o of d.list(prefix)) out.push(o.path);
      return out;
    };
    expect(await list('m/')).toEqual(['m/1.json', 'm/2.json']);
    expect(await list('data/')).toEqual(['data/2024/a.1', 'data/2024/a.2', 'data/2025/b.1']);
    expect(await list('data/2024/a.')).toEqual(['data/2024/a.1', 'data/2024/a.2']);
    expect(await list('m')).toEqual(['m/1.json', 'm/2.json', 'mx.json']);
    expect(await list('nothing/')).toEqual([]);
    expect(await d.cleanupTempFiles(0)).toBe(1);
  });

  it("cleanupTempFiles removes a dead writer's temp file at once only from this process space; another container's waits for its age", async () => {
    const d = await fresh();
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // a pid with no process here
    const tag = (space: string) => createHash('sha256').update(space).digest('hex').slice(0, 8);
    await mkdir(path.join(d.root, 'data', 'a'), { recursive: true });
    await mkdir(path.join(d.root, 'data', 'b'), { recursive: true });
    // Temp names as a writer makes them (prefix, process-space tag, pid); the other container's
    // space is made up: pid namespaces cannot be given free pids on demand.
    await writeFile(path.join(d.root, 'data', 'a', `.s3db-backup-tmp-${tag(processSpace())}-${dead}-aaaa-p.000001`), 'crashed here');
    await writeFile(path.join(d.root, 'data', 'b', `.s3db-backup-tmp-${tag(`${processSpace()}-other`)}-${dead}-bbbb-p.000001`), 'live elsewhere');
    expect(await d.cleanupTempFiles(60 * 60_000)).toBe(1);
    expect(await readdir(path.join(d.root, 'data'))).toEqual(['b']); // the emptied directory went too
    expect(await readdir(path.join(d.root, 'data', 'b'))).toHaveLength(1);
    expect(await d.cleanupTempFiles(0)).toBe(1); // once old enough, it goes as well
  });

  it('refuses paths that escape the directory', async () => {
    const d = await fresh();
    for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'a//b', './a']) {
      await expect(d.write(bad, Buffer.from('x'))).rejects.toMatchObject({ code: 'ERR_DESTINATION_PATH' });
    }
  });

  it('createIfAbsent is exclusive and replaceIfMatch is a compare-and-swap', async () => {
    const d = await fresh();
    const first = await d.createIfAbsent('locks/l', Buffer.from('one'));
    expect(first.created).toBe(true);
    expect((await d.createIfAbsent('locks/l', Buffer.from('two'))).created).toBe(false);
    expect(await readText(d, 'locks/l')).toBe('one');
    expect((await d.replaceIfMatch('locks/l', Buffer.from('bad'), 'not-the-tag')).replaced).toBe(false);
    const swapped = await d.replaceIfMatch('locks/l', Buffer.from('three'), first.etag!);
    expect(swapped.replaced).toBe(true);
    expect(swapped.etag).not.toBe(first.etag);
    expect((await d.replaceIfMatch('locks/l', Buffer.from('four'), first.etag!)).replaced).toBe(false);
    expect(await readText(d, 'locks/l')).toBe('three');
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => d.replaceIfMatch('locks/l', Buffer.from(`r${i}`), swapped.etag!)));
    expect(results.filter((r) => r.replaced)).toHaveLength(1);
  });

  it("a compare-and-swap guard left by a killed process of this process space is broken at once (it waited 30 s); a live taker's is not", async () => {
    const d = await fresh();
    const root = (d as unknown as { root: string }).root;
    const first = await d.createIfAbsent('locks/l', Buffer.from('one'));
    const space = createHash('sha256').update(processSpace()).digest('hex').slice(0, 8);
    const dead = spawnSync(process.execPath, ['-e', '0']).pid; // ran and exited
    // the guard as a process killed inside replaceIfMatch leaves it (fresh mtime: not stale by age)
    await writeFile(path.join(root, 'locks', 'l.cas'), `${space}-${dead}`);
    const swapped = await d.replaceIfMatch('locks/l', Buffer.from('two'), first.etag!);
    expect(swapped.replaced).toBe(true);
    expect(await readText(d, 'locks/l')).toBe('two');
    // a guard whose taker runs (this process) is waited for, not broken: the swap gives up
    await writeFile(path.join(root, 'locks', 'l.cas'), `${space}-${process.pid}`);
    expect((await d.replaceIfMatch('locks/l', Buffer.from('three'), swapped.etag!)).replaced).toBe(false);
    expect(await readdir(path.join(root, 'locks'))).toContain('l.cas');
    expect(await readText(d, 'locks/l')).toBe('two');
  });

  it('a process killed at any instant of its compare-and-swaps never leaves a guard that names no taker (an empty one held every other process off for 30 s)', async () => {
    const d = await fresh();
    const root = (d as unknown as { root: string }).root;
    await d.createIfAbsent('locks/l', Buffer.from('0'));
    const guard = path.join(root, 'locks', 'l.cas');
    // a real process swapping the object in a loop, killed (SIGKILL) at a random instant, again and again
    const child = `
      const { FilesystemDestination } = await import('./src/destinations/filesystem.ts');
      const d = new FilesystemDestination({ directory: process.argv[1], fsync: false });
      console.log('ready');
      for (let i = 0; ; i++) { const s = await d.stat('locks/l'); if (s) await d.replaceIfMatch('locks/l', Buffer.from(String(i)), s.etag); }
    `;
    const left: string[] = [];
    for (let kill = 0; kill < 24; kill++) {
      const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child, root], { cwd: path.resolve(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => p.stdout.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 60));
      p.kill('SIGKILL');
      await once(p, 'exit');
      if (existsSync(guard)) left.push(readFileSync(guard, 'utf8'));
      // (a guard naming the dead taker is broken at once by the next swap, as the test above shows)
      const s = await d.stat('locks/l');
      expect((await d.replaceIfMatch('locks/l', Buffer.from('parent'), s!.etag!)).replaced).toBe(true);
    }
    expect(left.filter((taker) => !/^[0-9a-f]{8}-\d+$/.test(taker))).toEqual([]);
  }, 120_000);

  it('a missing object is ERR_DESTINATION_NOT_FOUND naming the path; delete ignores missing ones', async () => {
    const d = await fresh();
    await expect(d.read('nope.json')).rejects.toMatchObject({ code: 'ERR_DESTINATION_NOT_FOUND', message: expect.stringContaining('nope.json') });
    await d.write('k/a', Buffer.from('1'));
    await d.delete(['k/a', 'k/b']);
    expect(await d.stat('k/a')).toBeNull();
    expect(await readdir(d.root)).toEqual([]);
  });
  it('a file where a directory of the path must be: ERR_DESTINATION_PATH saying so (not a raw ENOTDIR)', async () => {
    const d = await fresh();
    await d.write('data', Buffer.from('a file, not a directory'));
    await expect(d.write('data/2026/part.000001', Buffer.from('x'))).rejects.toMatchObject({
      code: 'ERR_DESTINATION_PATH',
      message: expect.stringMatching(/data\/2026\/part.000001: a file stands where a directory of its path must be .*move that file away/),
    });
    await expect(d.createIfAbsent('data/lease', Buffer.from('x'))).rejects.toMatchObject({ code: 'ERR_DESTINATION_PATH' });
    // a path under it is not there, for delete as for stat (a prune deleting parts never written there stopped)
    expect(await d.stat('data/2026/part.000001')).toBeNull();
    await d.delete(['data/2026/part.000001']);
    expect(await readText(d, 'data')).toBe('a file, not a directory');
  });

  it('a device out of inodes is ERR_DESTINATION_FULL, a read-only one says read-only (real tmpfs mounts; needs root, as CI has)', () => {
    // A private mount namespace: the tmpfs mounts vanish with the child, whatever happens.
    const script = `
      set -e
      dir=$(mktemp -d)
      mount -t tmpfs -o size=1m,nr_inodes=16 tmpfs "$dir"
      mkdir "$dir/backups"
      i=0; while touch "$dir/filler$i" 2>/dev/null; do i=$((i+1)); done
      node --import tsx --input-type=module -e "
        const { FilesystemDestination } = await import('./src/destinations/filesystem.ts');
        const d = new FilesystemDestination({ directory: process.argv[1] + '/backups' });
        try { await d.write('data/0/part', Buffer.from('x')); console.log('{}'); } catch (e) { console.log(JSON.stringify({ full: [e.code, e.message] })); }
      " "$dir"
      rm "$dir"/filler*
      mount -o remount,ro "$dir"
      node --import tsx --input-type=module -e "
        const { FilesystemDestination } = await import('./src/destinations/filesystem.ts');
        const d = new FilesystemDestination({ directory: process.argv[1] + '/backups' });
        try { await d.write('data/0/again', Buffer.from('x')); console.log('{}'); } catch (e) { console.log(JSON.stringify({ ro: [e.code, e.message] })); }
      " "$dir"
    `;
    const run = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8', timeout: 60_000 });
    expect(run.status, `this test mounts a tmpfs in a private mount namespace and needs root: ${run.stderr}`).toBe(0);
    const [full, ro] = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, [string, string]>);
    expect(full!.full![0]).toBe('ERR_DESTINATION_FULL');
    expect(full!.full![1]).toMatch(/no space left on the device \(no free inodes\).*free space or move the backup directory/);
    expect(ro!.ro![0]).toBe('ERR_DESTINATION_ACCESS');
    expect(ro!.ro![1]).toMatch(/the file system is read-only.*remount it read-write/);
  });

  it('a full destination: deleteBackup() and prune() free it although the lease cannot be written, and the failed lease write leaves no guard behind (real tmpfs; needs root, as CI has)', () => {
    const script = `
      set -e
      dir=$(mktemp -d)
      mount -t tmpfs -o size=4m tmpfs "$dir"
      node --import tsx --input-type=module -e "
        import { writeFileSync, existsSync, rmSync } from 'node:fs';
        const { S3db } = await import('s3db.js');
        const { BackupPlugin } = await import('./src/index.ts');
        const dir = process.argv[1];
        const db = new S3db({ connectionString: 'memory://full-dest/db', logLevel: 'silent' });
        await db.connect();
        await db.createResource({ name: 'notes', attributes: { text: 'string' } });
        for (let i = 0; i < 20; i++) await db.resources.notes.insert({ id: 'n' + i, text: 'note ' + i });
        const p = new BackupPlugin({ schedule: false, config: { directory: dir + '/backups' }, logger: { warn() {}, info() {}, error() {} } });
        await db.usePlugin(p);
        const ids = [];
        for (let i = 0; i < 3; i++) ids.push((await p.createBackup()).id);
        let n = 0;
        try { for (;;) writeFileSync(dir + '/filler' + n++, Buffer.alloc(256 * 1024, 1)); } catch (e) { if (e.code !== 'ENOSPC') throw e; }
        const refused = await p.createBackup().then(() => null, (e) => e.code);
        const guardLeft = existsSync(dir + '/backups/locks/backup.lease.cas');
        const deleted = (await p.deleteBackup(ids[0])).deleted;
        const q = new BackupPlugin({ schedule: false, config: { directory: dir + '/backups' }, retention: { count: 1 }, logger: { warn() {}, info() {}, error() {} } });
        await db.usePlugin(q, 'pruner');
        const prunedIds = (await q.prune()).deleted;
        for (let i = 0; i < n; i++) rmSync(dir + '/filler' + i, { force: true });
        const started = Date.now();
        const after = (await p.createBackup()).id;
        console.log(JSON.stringify({ refused, guardLeft, deleted, prunedIds, ids, listed: (await p.listBackups()).map((b) => b.id), after, waitedMs: Date.now() - started }));
        await p.stop(); await q.stop();
      " "$dir"
    `;
    const run = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8', timeout: 120_000 });
    expect(run.status, `this test mounts a tmpfs in a private mount namespace and needs root: ${run.stderr}`).toBe(0);
    const out = JSON.parse(run.stdout.trim().split('\n').pop()!) as { refused: string; guardLeft: boolean; deleted: string[]; prunedIds: string[]; ids: string[]; listed: string[]; after: string; waitedMs: number };
    expect(out.refused).toBe('ERR_DESTINATION_FULL');
    expect(out.guardLeft).toBe(false);
    expect(out.deleted).toEqual([out.ids[0]]);
    expect(out.prunedIds).toEqual([out.ids[1]]);
    expect(out.listed).toEqual([out.after, out.ids[2]]);
  });
});
