// What a user meets at 3 AM when things are broken: corrupt and missing parts, a wrong passphrase,
// a backup or restore killed with SIGKILL. Real files, real s3db.js, real child processes.
import { spawn } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import { openDb, seedDatabase, snapshot } from './helpers/database.js';
import { warnInto } from './helpers/logger.js';

const PASSPHRASE = 'correct horse battery staple';
let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'failures-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function plugin(directory: string, extra: Record<string, unknown> = {}): BackupPlugin {
  return new BackupPlugin({ schedule: false, config: { directory }, encryption: { passphrase: PASSPHRASE, iterations: 100_000 }, partSize: 64 * 1024, ...extra });
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

describe('damaged backups are refused and nothing is written', () => {
  let dir: string;
  let p: BackupPlugin;
  let id: string;
  let source: Awaited<ReturnType<typeof openDb>>;

  beforeAll(async () => {
    dir = path.join(work, 'damaged');
    source = await openDb(`memory://damaged-${process.pid}/db`);
    await seedDatabase(source, { users: 20, orders: 20, perBehavior: 2 });
    p = plugin(dir);
    await source.usePlugin(p);
    id = (await p.createBackup()).id;
  });

  async function freshTarget() {
    const target = await openDb(`memory://damaged-target-${process.pid}-${Math.random().toString(36).slice(2)}/db`);
    return { target, before: await snapshot(target) };
  }

  it('a flipped byte in a part: verify says which part and why; restore writes nothing', async () => {
    const manifest = (await p.getBackup(id))!.manifest;
    const part = manifest.parts[1]!;
    const file = path.join(dir, part.path);
    const original = await readFile(file);
    const damaged = Buffer.from(original);
    damaged[Math.floor(damaged.length / 2)]! ^= 0x40;
    await writeFile(file, damaged);
    try {
      const quick = await p.verifyBackup(id, { level: 'quick' });
      expect(quick.verified).toBe(false);
      expect(quick.error).toContain(part.path);
      expect(quick.error).toMatch(/SHA-256/);
      expect((await p.listBackups()).find((b) => b.id === id)!.verified).toBe(false);
      const { target, before } = await freshTarget();
      await expect(p.restore({ backupId: id, destination: target })).rejects.toMatchObject({ code: 'ERR_VERIFY_FAILED' });
      expect(await snapshot(target)).toEqual(before);
    } finally {
      await writeFile(file, original);
    }
    expect((await p.verifyBackup(id, { level: 'full' })).verified).toBe(true);
    expect((await p.listBackups()).find((b) => b.id === id)!.verified).toBe(true);
    // a quick check that passes after it leaves the full verdict recorded: the same bytes (walk-30 F7: "verified (quick)" replaced it)
    expect(await p.verifyBackup(id, { level: 'quick' })).toMatchObject({ verified: true, level: 'quick' });
    expect((await p.getBackup(id))!.verification).toMatchObject({ verified: true, level: 'full' });
  });

  it("a damaged part whose checksum was also forged: the edited manifest fails verification by its auth; without one (a manifest older than revision 8), full verification fails by the part's GCM tag", async () => {
    const manifest = (await p.getBackup(id))!.manifest;
    const part = manifest.parts[0]!;
    const file = path.join(dir, part.path);
    const original = await readFile(file);
    const damaged = Buffer.from(original);
    damaged[damaged.length - 40]! ^= 0x01;
    await writeFile(file, damaged);
    const manifestFile = path.join(dir, 'manifests', `${id}.json`);
    const manifestText = await readFile(manifestFile, 'utf8');
    const { createHash } = await import('node:crypto');
    const forgedText = manifestText.replace(part.sha256, createHash('sha256').update(damaged).digest('hex'));
    // the copy beside the parts too: an intact one would be used instead (manifest-auth.test.ts)
    const copyFile = path.join(dir, manifest.copy!);
    const copyText = await readFile(copyFile, 'utf8');
    await writeFile(manifestFile, forgedText);
    await writeFile(copyFile, forgedText);
    const forged = plugin(dir); // fresh catalog cache
    const { auth: _auth, ...unauthenticated } = JSON.parse(forgedText) as Record<string, unknown>;
    expect(_auth).toEqual(expect.any(String));
    try {
      for (const level of ['quick', 'full'] as const) expect((await forged.verifyBackup(id, { level })).error).toContain('cannot be trusted');
      for (const at of [manifestFile, copyFile]) await writeFile(at, JSON.stringify(unauthenticated, null, 1));
      const older = plugin(dir);
      expect((await older.verifyBackup(id, { level: 'quick' })).verified).toBe(true);
      const full = await older.verifyBackup(id, { level: 'full' });
      expect(full.verified).toBe(false);
      expect(full.error).toMatch(/failed authentication/);
    } finally {
      await writeFile(file, original);
      await writeFile(manifestFile, manifestText);
      await writeFile(copyFile, copyText);
      await plugin(dir).verifyBackup(id, { level: 'full' }); // a fresh catalog reads the original manifest
    }
  });

  it('a missing part: verify and restore name it; nothing is written', async () => {
    const manifest = (await p.getBackup(id))!.manifest;
    const part = manifest.parts[manifest.parts.length - 1]!;
    const file = path.join(dir, part.path);
    const original = await readFile(file);
    await unlink(file);
    try {
      const result = await p.verifyBackup(id, { level: 'quick' });
      expect(result.verified).toBe(false);
      expect(result.error).toContain(`${part.path} does not exist`);
      const { target, before } = await freshTarget();
      await expect(p.restore({ backupId: id, destination: target })).rejects.toThrow(part.path);
      expect(await snapshot(target)).toEqual(before);
    } finally {
      await writeFile(file, original);
    }
  });

  it('a wrong passphrase: a clear error before any data is read, nothing written; listing still works', async () => {
    const wrong = new BackupPlugin({ schedule: false, config: { directory: dir }, encryption: { passphrase: 'not the passphrase' } });
    const { target, before } = await freshTarget();
    await target.usePlugin(wrong);
    expect((await wrong.listBackups()).map((b) => b.id)).toContain(id);
    const err = (await wrong.restore({ backupId: id }).then(() => new Error("restore succeeded"), (e: unknown) => e)) as Error & { code: string };
    expect(err).toMatchObject({ code: 'ERR_WRONG_PASSPHRASE' });
    expect(err.message).toMatch(/Decryption failed: incorrect passphrase/);
    expect(err.message).not.toContain('not the passphrase');
    expect(await snapshot(target)).toEqual(before);
    const none = new BackupPlugin({ schedule: false, config: { directory: dir } });
    await target.usePlugin(none, 'backup2');
    await expect(none.restore({ backupId: id })).rejects.toMatchObject({ code: 'ERR_PASSPHRASE_REQUIRED' });
  });

  it('the passphrase appears nowhere: not in files, manifests, events or errors', async () => {
    const seen: string[] = [];
    const events = ['plg:backup:start', 'plg:backup:complete', 'plg:backup:error', 'plg:backup:progress', 'plg:backup:restore-start', 'plg:backup:restore-complete'] as const;
    for (const e of events) p.on(e, (payload: unknown) => seen.push(JSON.stringify(payload)));
    const b = await p.createBackup({ metadata: { note: 'x' } });
    await p.restore({ backupId: b.id, destination: (await freshTarget()).target });
    expect(seen.length).toBeGreaterThan(3);
    for (const s of seen) expect(s).not.toContain(PASSPHRASE);
    for (const file of await walk(dir)) expect((await readFile(file)).includes(Buffer.from(PASSPHRASE))).toBe(false);
    expect(JSON.stringify(p.options)).not.toContain(PASSPHRASE);
    expect(JSON.stringify(p.config)).not.toContain(PASSPHRASE);
    const { inspect } = await import('node:util');
    expect(inspect(p, { depth: 6, showHidden: true })).not.toContain(PASSPHRASE);
    for (const e of events) p.removeAllListeners(e);
  });

  it("a source error's cause keeps what failed, not what the library attached (s3db's `original` AWS error echoing a session token)", async () => {
    // Fault injection: AWS's SignatureDoesNotMatch as s3db.js's S3 client wraps it, which neither
    // memory:// nor RGW produce.
    const client = source.client as unknown as { getObject(key: string): Promise<unknown> };
    const get = client.getObject.bind(client);
    client.getObject = async () => {
      const original = Object.assign(new Error('The request signature we calculated does not match the signature you provided.'), {
        name: 'SignatureDoesNotMatch',
        CanonicalRequest: 'GET /db/s3db.json\nx-amz-security-token:SESSIONCANARY',
        $metadata: { httpStatusCode: 403 },
        $response: { headers: { 'x-amz-security-token': 'SESSIONCANARY' } },
      });
      throw Object.assign(new Error('Access denied for https://AKIAEXAMPLE:SECRETCANARY@s3.example/db'), { name: 'PermissionError', statusCode: 403, original });
    };
    const err = await p.createBackup().then(() => null, (e: unknown) => e as Error & { code: string; cause?: Error & { statusCode?: number } });
    client.getObject = get;
    expect(err?.code).toBe('ERR_SOURCE_READ');
    expect(err!.cause).toMatchObject({ name: 'PermissionError', statusCode: 403 });
    const { inspect } = await import('node:util');
    expect(inspect(err, { depth: 10, showHidden: true })).not.toMatch(/SESSIONCANARY|SECRETCANARY/);
  });
});

/** Starts a child that runs `code` (ESM TypeScript); resolves with the child once `ready` appears. */
function child(file: string): ReturnType<typeof spawn> {
  return spawn(process.execPath, ['--import', 'tsx', file], { cwd: path.resolve('.'), stdio: ['ignore', 'pipe', 'pipe'] });
}

async function waitFor(check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('condition not reached');
}

describe('crashes', () => {
  it('kill -9 in the middle of a backup: the next run lists no such backup, cleans up and succeeds', async () => {
    const dir = path.join(work, 'crash-backup');
    const srcDir = path.join(work, 'crash-src');
    const db = await openDb(`file://${srcDir}`);
    // raw objects with incompressible bodies: enough bytes that the backup takes a while
    const { randomBytes } = await import('node:crypto');
    await Promise.all(Array.from({ length: 200 }, (_, i) => db.client.putObject({ key: `resource=blobs/data/id=${String(i).padStart(4, '0')}`, body: randomBytes(32 * 1024), metadata: { n: String(i) } })));
    await db.disconnect();
    const script = path.join(work, 'crash-backup.mts');
    await writeFile(
      script,
      `import { BackupPlugin } from ${JSON.stringify(path.resolve('src/index.ts'))};
       import { openDb } from ${JSON.stringify(path.resolve('__test__/helpers/database.ts'))};
       const db = await openDb(${JSON.stringify(`file://${srcDir}`)});
       const p = new BackupPlugin({ schedule: false, config: { directory: ${JSON.stringify(dir)} }, partSize: 256 * 1024, concurrency: 1, verify: true });
       await db.usePlugin(p);
       await p.createBackup({ reason: 'will be killed' });
       console.log('finished');`,
    );
    const proc = child(script);
    let output = '';
    proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor(async () => (await walk(path.join(dir, 'data'))).length >= 3);
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
    expect(output).not.toContain('finished');
    const pending = await readdir(path.join(dir, 'pending'));
    expect(pending.length).toBe(1);
    const killedId = pending[0]!.replace(/\.json$/, '');

    const db2 = await openDb(`file://${srcDir}`);
    const p = new BackupPlugin({ schedule: false, config: { directory: dir }, partSize: 256 * 1024 });
    await db2.usePlugin(p);
    expect(await p.listBackups()).toEqual([]);
    const ok = await p.createBackup();
    expect(ok.verified).toBe(true);
    expect((await p.listBackups()).map((b) => b.id)).toEqual([ok.id]);
    const files = await walk(dir);
    expect(files.filter((f) => f.includes(killedId))).toEqual([]);
    // nor its directory (the killed writer's temp file kept it from being removed with the parts)
    const dirs = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => path.join(e.parentPath, e.name));
    expect(dirs.filter((d) => d.includes(killedId))).toEqual([]);
    expect(files.filter((f) => path.basename(f).startsWith('.s3db-backup-tmp-'))).toEqual([]);
    expect(await readdir(path.join(dir, 'pending')).catch(() => [])).toEqual([]);
    await p.stop();
    await db2.disconnect();
  });

  it('kill -9 in the middle of a restore: running it again gives the exact result', async () => {
    const dir = path.join(work, 'crash-restore');
    const srcDir = path.join(work, 'crash-restore-src');
    const dstDir = path.join(work, 'crash-restore-dst');
    const src = await openDb(`file://${srcDir}`);
    await seedDatabase(src, { users: 10, orders: 10, perBehavior: 2 });
    const { randomBytes } = await import('node:crypto');
    await Promise.all(Array.from({ length: 300 }, (_, i) => src.client.putObject({ key: `resource=blobs/data/id=${String(i).padStart(4, '0')}`, body: randomBytes(32 * 1024) })));
    const p = plugin(dir);
    await src.usePlugin(p);
    const { id } = await p.createBackup();
    const expected = await snapshot(src);
    const dst = await openDb(`file://${dstDir}`);
    await seedDatabase(dst, { users: 3, orders: 3, perBehavior: 1 }); // something to replace
    await dst.disconnect();

    const script = path.join(work, 'crash-restore.mts');
    await writeFile(
      script,
      `import { BackupPlugin } from ${JSON.stringify(path.resolve('src/index.ts'))};
       import { openDb } from ${JSON.stringify(path.resolve('__test__/helpers/database.ts'))};
       const db = await openDb(${JSON.stringify(`file://${dstDir}`)});
       const p = new BackupPlugin({ schedule: false, config: { directory: ${JSON.stringify(dir)} }, encryption: { passphrase: ${JSON.stringify(PASSPHRASE)} }, concurrency: 1 });
       await db.usePlugin(p);
       await p.restore({ backupId: ${JSON.stringify(id)}, verify: false });
       console.log('finished');`,
    );
    const proc = child(script);
    let output = '';
    proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor(async () => (await walk(path.join(dstDir, 'resource=blobs'))).length >= 40);
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
    expect(output).not.toContain('finished');

    const dst2 = await openDb(`file://${dstDir}`);
    const again = plugin(dir);
    await dst2.usePlugin(again);
    await again.restore({ backupId: id });
    expect(await snapshot(dst2)).toEqual(expected);
    await dst2.disconnect();
  });
});

describe('manual verification after the fact', () => {
  it('listBackups shows the verification stored by verifyBackup', async () => {
    const dir = path.join(work, 'verify-later');
    const db = await openDb(`memory://verify-later-${process.pid}/db`);
    await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
    const p = plugin(dir, { verify: false });
    await db.usePlugin(p);
    const b = await p.createBackup();
    expect(b.verified).toBe(false);
    expect(b.verification).toBeNull();
    const r = await p.verifyBackup(b.id);
    expect(r).toMatchObject({ verified: true, level: 'full', error: null });
    const listed = (await p.listBackups({ verified: true })).map((x) => x.id);
    expect(listed).toEqual([b.id]);
    const handle = await open(path.join(dir, 'verifications', `${b.id}.json`), 'r');
    await handle.close();
  });
});

describe('a destination that fails, then recovers', () => {
  // The fault is real: a file where the backup needs its `data/` directory (mkdir fails).
  const blockData = (dir: string) => writeFile(path.join(dir, 'data'), 'not a directory');
  const unblockData = (dir: string) => unlink(path.join(dir, 'data'));

  it("one backup's failure is not recorded in the next one's manifest (single destination)", async () => {
    const dir = path.join(work, 'recovers-single');
    const db = await openDb(`memory://recovers-single-${process.pid}/db`);
    await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
    const p = plugin(dir);
    await db.usePlugin(p);
    await p.createBackup(); // makes the directory tree
    await rm(path.join(dir, 'data'), { recursive: true });
    await blockData(dir);
    const failure = await p.createBackup().then(() => null, (e: Error & { code: string }) => e);
    expect(failure?.code).toMatch(/^ERR_DESTINATION_/);
    expect(failure!.message).not.toContain("strategy 'all'"); // one destination: no strategy talk
    await unblockData(dir);
    const next = await p.createBackup();
    expect(next.driverInfo).toEqual([{ label: expect.any(String), status: 'ok' }]);
    expect((await p.getBackup(next.id))?.destinations).toEqual([{ label: expect.any(String), status: 'ok' }]);
  });

  it("multi 'any': a destination that failed in one backup and stored the next one whole is read again when the other is lost", async () => {
    const [a, b] = [path.join(work, 'recovers-a'), path.join(work, 'recovers-b')];
    const db = await openDb(`memory://recovers-multi-${process.pid}/db`);
    await seedDatabase(db, { users: 4, orders: 4, perBehavior: 1 });
    const destinations = [{ driver: 'filesystem', config: { directory: b } }, { driver: 'filesystem', config: { directory: a } }];
    const p = plugin(a, { driver: 'multi', config: { strategy: 'any', destinations } });
    await db.usePlugin(p);
    await p.createBackup();
    await rm(path.join(b, 'data'), { recursive: true });
    await blockData(b);
    const degraded = await p.createBackup();
    expect(degraded.driverInfo?.map((d) => d.status)).toEqual(['failed', 'ok']);
    await unblockData(b);
    const whole = await p.createBackup();
    expect(whole.driverInfo?.map((d) => d.status)).toEqual(['ok', 'ok']);
    const expected = await snapshot(db);
    // Destination A is lost; B holds every byte of `whole` and must be read.
    await rm(a, { recursive: true });
    const target = await openDb(`memory://recovers-target-${process.pid}/db`);
    const reader = plugin(a, { driver: 'multi', config: { strategy: 'any', destinations } });
    await target.usePlugin(reader);
    await reader.restore({ backupId: whole.id });
    expect(await snapshot(target)).toEqual(expected);
  });
});

describe("retention after a backup that missed a destination ('any')", () => {
  it('does not run: the destination that failed keeps its older backups until a backup lands everywhere again', async () => {
    const [a, b] = [path.join(work, 'anyret-a'), path.join(work, 'anyret-b')];
    const db = await openDb(`memory://anyret-${process.pid}/db`);
    await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
    const warnings: string[] = [];
    const destinations = [{ driver: 'filesystem', config: { directory: b } }, { driver: 'filesystem', config: { directory: a } }];
    const p = plugin(a, { driver: 'multi', config: { strategy: 'any', destinations }, retention: { policy: 'simple', count: 1 }, logger: warnInto(warnings) });
    await db.usePlugin(p);
    const first = await p.createBackup();
    await rm(path.join(b, 'data'), { recursive: true });
    await writeFile(path.join(b, 'data'), 'a file where the data directory was'); // B fails (a real mkdir failure)
    const degraded = await p.createBackup();
    expect(degraded.driverInfo?.map((d) => d.status)).toEqual(['failed', 'ok']);
    expect(warnings.some((w) => w.startsWith(`retention did not run after backup ${degraded.id}`))).toBe(true);
    expect(await readdir(path.join(b, 'manifests'))).toContain(`${first.id}.json`); // B's only backup is still there
    await unlink(path.join(b, 'data'));
    const whole = await p.createBackup();
    expect(whole.driverInfo?.map((d) => d.status)).toEqual(['ok', 'ok']);
    expect((await p.listBackups()).map((x) => x.id)).toEqual([whole.id]); // retention ran again: count 1
  });
});

describe('a torn object left by a crash in a file:// target', () => {
  it("a skip restore run again writes over an object whose body a crash left without its .meta.json (unreadable), and keeps readable ones", async () => {
    const dir = path.join(work, 'torn');
    const source = await openDb(`memory://torn-${process.pid}/db`);
    await seedDatabase(source, { users: 4, orders: 6, perBehavior: 1 });
    const p = plugin(dir);
    await source.usePlugin(p);
    const b = await p.createBackup();
    const expected = await snapshot(source);
    const targetDir = path.join(work, 'torn-target');
    const target = await openDb(`file://${targetDir}`);
    const r = plugin(dir);
    await target.usePlugin(r);
    await r.restore({ backupId: b.id, mode: 'skip' });
    // s3db's file client writes a body, then its .meta.json: a crash in between leaves the body
    // alone, which reads as missing but refuses a conditional (If-None-Match) write.
    const metas = (await walk(targetDir)).filter((f) => f.includes('resource=orders') && f.includes('/data/') && f.endsWith('.meta.json'));
    expect(metas.length).toBe(6);
    for (const meta of metas.slice(0, 2)) await unlink(meta);
    await writeFile(metas[2]!, ''); // cut short: its rename landed, its bytes did not (no fsync)
    type Orders = { get(id: string): Promise<unknown>; count(): Promise<number> };
    expect(await (target.resources.orders as unknown as Orders).count()).toBe(3);
    const report = await r.restore({ backupId: b.id, mode: 'skip' });
    expect(report.restored.find((x) => x.name === 'orders')).toMatchObject({ recordsRestored: 3 });
    const reader = await openDb(`file://${targetDir}`);
    expect(await (reader.resources.orders as unknown as Orders).count()).toBe(6);
    const comparable = (s: Awaited<ReturnType<typeof snapshot>>) => s.filter((o) => o.key.startsWith('resource=orders/'));
    expect(comparable(await snapshot(reader))).toEqual(comparable(expected));
  });
});

describe('a deletion that died midway', () => {
  // The state a deleteBackup() killed after its manifest went leaves behind: its "deleting"
  // marker and its parts, no manifest. Made by the plugin's own deletion, stopped there by a fault
  // injected at the parts' delete (a kill at that instant cannot be had on demand).
  async function killedDeletion(name: string) {
    const dir = path.join(work, name);
    const db = await openDb(`memory://${name}-${process.pid}/db`);
    await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
    const p = plugin(dir, { retention: { policy: 'simple', count: 5 } });
    await db.usePlugin(p);
    const b = await p.createBackup();
    const member = (p as unknown as { destinations: { members: { delete(paths: string[]): Promise<void> }[] } }).destinations.members[0]!;
    member.delete = async (paths: string[]) => {
      if (paths.some((f) => f.startsWith('data/'))) throw new Error('killed');
      return Object.getPrototypeOf(member).delete.call(member, paths);
    };
    await expect(p.deleteBackup(b.id)).rejects.toThrow();
    expect(await readdir(path.join(dir, 'pending'))).toEqual([`${b.id}.json`]);
    expect(await readdir(path.join(dir, 'manifests')).catch(() => [])).toEqual([]);
    const fresh = plugin(dir, { retention: { policy: 'simple', count: 5 } }); // a new process
    await db.usePlugin(fresh, `fresh-${name}`);
    const partsLeft = async () => (await walk(path.join(dir, 'data'))).filter((f) => f.includes(b.id)).length;
    expect(await partsLeft()).toBeGreaterThan(0);
    return { id: b.id, fresh, partsLeft };
  }

  it('deleteBackup() run again finishes it and frees the space (it said "not found" and left the parts)', async () => {
    const { id, fresh, partsLeft } = await killedDeletion('redelete');
    await expect(fresh.deleteBackup(id)).resolves.toEqual({ deleted: [id] });
    expect(await partsLeft()).toBe(0);
    await expect(fresh.deleteBackup(id)).rejects.toMatchObject({ code: 'ERR_BACKUP_NOT_FOUND' }); // once done, it is gone
  });

  it('prune() finishes it too, and reports it in `deleted`', async () => {
    const { id, fresh, partsLeft } = await killedDeletion('reprune');
    expect((await fresh.prune()).deleted).toEqual([id]);
    expect(await partsLeft()).toBe(0);
  });

  it('killed before its manifest went (the backup still listed): prune() finishes it, reports it in `deleted`, and logs it', async () => {
    const dir = path.join(work, 'reprune-listed');
    const db = await openDb(`memory://reprune-listed-${process.pid}/db`);
    await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
    const p = plugin(dir);
    await db.usePlugin(p);
    const b = await p.createBackup();
    const kept = await p.createBackup();
    // fault injection: the deletion dies at the manifest's delete, after its "deleting" marker
    const member = (p as unknown as { destinations: { members: { delete(paths: string[]): Promise<void> }[] } }).destinations.members[0]!;
    member.delete = async (paths: string[]) => {
      if (paths.some((f) => f.startsWith('manifests/'))) throw new Error('killed');
      return Object.getPrototypeOf(member).delete.call(member, paths);
    };
    await expect(p.deleteBackup(b.id)).rejects.toThrow();
    const infos: string[] = [];
    const fresh = plugin(dir, { retention: { policy: 'simple', count: -1 }, logger: { warn() {}, error() {}, info: (_o: unknown, m: string) => void infos.push(m) } as never });
    await db.usePlugin(fresh, 'fresh-reprune-listed');
    expect((await fresh.listBackups()).map((x) => x.id).sort()).toEqual([b.id, kept.id].sort());
    expect((await fresh.prune()).deleted).toEqual([b.id]);
    expect((await fresh.listBackups()).map((x) => x.id)).toEqual([kept.id]);
    expect(infos).toContainEqual(expect.stringContaining(`finished deleting backup ${b.id}, whose deletion (by retention or deleteBackup()) had been cut short`));
  });
});

describe('a damaged s3db.json in the source', () => {
  it('no backup is taken, and the error says how to put it back; done as it says, backups go on', async () => {
    const db = await openDb(`memory://bad-schema-${process.pid}/db`);
    await seedDatabase(db, { users: 3, orders: 3, perBehavior: 1 });
    const p = plugin(path.join(work, 'bad-schema'));
    await db.usePlugin(p);
    const good = await p.createBackup();
    await db.client.putObject({ key: 's3db.json', body: Buffer.from('{ "resources": { garbage'), contentType: 'application/json' });
    const err = await p.createBackup().then(() => null, (e: Error & { code: string }) => e);
    expect(err?.code).toBe('ERR_SOURCE_READ');
    expect(err!.message).toMatch(/s3db\.json \(\d+ characters\) is not valid JSON: .*no backup is taken.*manifest\.s3dbJson as its s3db\.json/);
    expect(err!.message).not.toContain('garbage'); // the damaged text is never quoted
    expect((await p.listBackups()).map((b) => b.id)).toEqual([good.id]);
    // what the message says to do
    const schema = (await p.getBackup(good.id))!.manifest.s3dbJson;
    await db.client.putObject({ key: 's3db.json', body: Buffer.from(JSON.stringify(schema)), contentType: 'application/json' });
    const next = await p.createBackup();
    expect((await p.listBackups())[0]!.undefinedResources).toEqual([]);
    expect((await p.listBackups()).map((b) => b.id)).toEqual([next.id, good.id]);
  });
});
