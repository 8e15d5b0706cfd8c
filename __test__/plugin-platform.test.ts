// A platform without a prebuilt native core (a Docker image whose libc or CPU has no binary, or
// node_modules installed for another platform): the plugin still backs up and restores with the
// JS twin, and says so once at install, with the reason and what it costs. Checked in a child
// process running a copy of the package whose native/ holds the generated loader but no `.node`
// binary: a real failed load, not a flag. The same install on this machine names the native core.
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import { PREBUILT } from '../src/codec/native-binding.js';
import { openDb, seedDatabase } from './helpers/database.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'plugin-platform-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/**
 * A copy of the package without a loadable native binary (none, or `binary` in its place, as a
 * truncated download or an image's wrong libc leaves it); node_modules is the repository's.
 */
async function packageWithoutBinary(name: string, binary?: string): Promise<string> {
  const pkg = path.join(work, name);
  await cp(path.join(ROOT, 'src'), path.join(pkg, 'src'), { recursive: true });
  await cp(path.join(ROOT, '__test__', 'helpers'), path.join(pkg, '__test__', 'helpers'), { recursive: true });
  for (const f of ['package.json', 'tsconfig.json']) await cp(path.join(ROOT, f), path.join(pkg, f));
  await cp(path.join(ROOT, 'native'), path.join(pkg, 'native'), { recursive: true, filter: (src) => !src.endsWith('.node') });
  await symlink(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'), 'dir');
  expect((await readdir(path.join(pkg, 'native'))).filter((f) => f.endsWith('.node'))).toEqual([]);
  if (binary !== undefined) await writeFile(path.join(pkg, 'native', BINARY), binary);
  return pkg;
}

/** The file napi-rs's loader looks for next to it on this machine. */
const BINARY = `s3db-backup.${process.platform}-${process.arch}-gnu.node`;

function runChild(pkg: string, env: Record<string, string> = {}, preload: string[] = []) {
  const run = spawnSync(process.execPath, [...preload, '--import', 'tsx', '--input-type=module', '-e', CHILD], {
    cwd: pkg,
    env: { ...process.env, DEST: path.join(pkg, 'dest'), S3DB_BACKUP_NATIVE: '', ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as { native: boolean; active: string; same: boolean; zstdError: string | null; logs: [string, string][] };
}

const CHILD = `
const { BackupPlugin } = await import('./src/index.ts');
const codec = await import('./src/codec/index.ts');
const { openDb, seedDatabase, snapshot } = await import('./__test__/helpers/database.ts');
const logs = [];
const logger = { info: (o, m) => logs.push(['info', m]), warn: (o, m) => logs.push(['warn', m]), error: (o, m) => logs.push(['error', m]) };
const db = await openDb('memory://platform-' + process.pid + '/db');
await seedDatabase(db, { users: 5, orders: 8, perBehavior: 1 });
const before = await snapshot(db);
const p = new BackupPlugin({ schedule: false, config: { directory: process.env.DEST }, encryption: { passphrase: 'correct horse battery' }, logger });
await db.usePlugin(p);
const b = await p.backup('full');
await db.resources.orders.deleteMany((await db.resources.orders.listIds()).slice(0, 3));
await p.restore({ backupId: b.id });
const same = JSON.stringify(await snapshot(db)) === JSON.stringify(before);
const zstd = new BackupPlugin({ schedule: false, compression: 'zstd', config: { directory: process.env.DEST + '-zstd' }, logger });
await db.usePlugin(zstd, 'zstd');
const zstdError = await zstd.backup('full').then(() => null, (e) => e.code);
console.log(JSON.stringify({ native: codec.nativeAvailable(), active: codec.activeImplementation(), same, zstdError, logs: logs.filter(([, m]) => m.startsWith('codec:')) }));
process.exit(0);
`;

describe('platforms without a prebuilt native core', () => {
  it('a missing binary: backups and restores run on the JS twin, and install warns once with the load error and the cost; zstd fails clearly', async () => {
    const out = runChild(await packageWithoutBinary('missing'));
    expect(out).toMatchObject({ native: false, active: 'js', same: true, zstdError: 'ERR_CODEC_UNAVAILABLE' });
    expect(out.logs).toHaveLength(2); // one per installed plugin
    const [level, message] = out.logs[0]!;
    expect(level).toBe('warn');
    expect(message).toMatch(/JS implementation .* the native core did not load \(.+\).*several times slower.*Platforms and Docker/);
    // what is missing, not napi-rs's generic advice about an npm bug
    expect(message).toContain(`no binary for this platform: its package @s3db-backup/native-${process.platform}-${process.arch}-gnu is not installed`);
    expect(message).not.toContain('npm has a bug');
    expect(message).not.toContain('correct horse');
    expect(out.logs[1]![0]).toBe('warn');
    expect(out.logs[1]![1]).toContain("compression 'zstd' needs the native core, so backups fail with ERR_CODEC_UNAVAILABLE");
    // the command line says it in one line above each command's output, --verbose and --version say why (walk-30 F9)
    const pkg = path.join(work, 'missing');
    const command = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args], { cwd: pkg, env: { ...process.env, S3DB_BACKUP_NATIVE: '', BACKUP_PASSPHRASE: 'correct horse battery' }, encoding: 'utf8', timeout: 60_000 });
    const listed = command('list', '--directory', path.join(pkg, 'dest'));
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stderr).toContain('s3db-backup: warning: codec: the JS implementation runs, as the native core did not load (s3db-backup --version says why): backups and restores are several times slower\n');
    expect(listed.stderr).not.toContain('is not installed');
    expect(command('list', '--directory', path.join(pkg, 'dest'), '--verbose').stderr).toContain(`its package @s3db-backup/native-${process.platform}-${process.arch}-gnu is not installed`);
    const version = command('--version');
    expect(version.stdout).toMatch(new RegExp(`^s3db-backup \\d+\\.\\d+\\.\\d+; codec: the JS implementation, because the native core did not load \\(.*is not installed.*\\); Node ${process.versions.node}\\n$`, 's'));
  }, 150_000);

  it('a binary that is there but cannot load: the warning quotes why, naming the file (not an npm bug)', async () => {
    const out = runChild(await packageWithoutBinary('broken', 'not an ELF file\n'));
    expect(out).toMatchObject({ native: false, active: 'js', same: true });
    const [level, message] = out.logs[0]!;
    expect(level).toBe('warn');
    expect(message).toMatch(new RegExp(`its binary is there but cannot be loaded: \\S*${BINARY.replace(/\./g, '\\.')}: (file too short|invalid ELF header)`));
    expect(message).not.toContain('npm has a bug');
  }, 150_000);

  it('a platform no binary is published for says so and names the published ones (process.arch is made riscv64 before anything loads: this machine is x64, so no real such platform is at hand)', async () => {
    const out = runChild(await packageWithoutBinary('riscv'), {}, ['--import', "data:text/javascript,Object.defineProperty(process,'arch',{value:'riscv64'})"]);
    expect(out).toMatchObject({ native: false, active: 'js', same: true });
    expect(out.logs[0]![1]).toContain(`the native core did not load (no prebuilt binary exists for this platform (${process.platform}-riscv64-gnu; prebuilt: ${PREBUILT.join(', ')}))`);
  }, 150_000);

  it('S3DB_BACKUP_NATIVE=0 is given as the reason, as information, even where no binary is there', async () => {
    const out = runChild(await packageWithoutBinary('forced'), { S3DB_BACKUP_NATIVE: '0' });
    expect(out).toMatchObject({ native: false, active: 'js', same: true });
    expect(out.logs[0]).toEqual(['info', expect.stringContaining('runs because S3DB_BACKUP_NATIVE=0 is set')]);
  }, 150_000);

  it('the published platforms named in messages are the packages of npm/ (one per napi target)', async () => {
    expect([...PREBUILT].sort()).toEqual((await readdir(path.join(ROOT, 'npm'))).sort());
  });

  it('where the binary loads, install says the native core runs (info, not a warning)', async () => {
    const logs: [string, string][] = [];
    const logger = { info: (_o: unknown, m: string) => void logs.push(['info', m]), warn: (_o: unknown, m: string) => void logs.push(['warn', m]), error() {} };
    const db = await openDb(`memory://platform-native-${process.pid}/db`);
    await seedDatabase(db, { users: 2, orders: 2, perBehavior: 1 });
    const p = new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'native') }, logger });
    await db.usePlugin(p);
    expect(logs).toEqual([['info', 'codec: the native core (Rust, all cores) compresses and encrypts']]);
    await p.stop();
  });
});
