// The package as npm ships it, used the way a user does. `npm pack` of a copy of the sources
// (whose prepack builds dist/) gives the tarball; it is extracted as node_modules/s3db-backup of a consumer folder placed
// inside the repository's node_modules, so that the consumer's other dependencies (s3db.js, the
// AWS SDK) resolve as an installed app's would, and nothing of the clone (src/, the local .node)
// is reachable from it. The native core is not in the tarball (it comes from the per-platform
// packages a release publishes), so the JS twin runs, as in a tarball-only install. Checked: the
// tarball's contents against what its code imports; an ESM app backing up and restoring through
// every entry point; `require()` from CommonJS; the installed command.
import { execFileSync, spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PASSPHRASE = 'package test passphrase 51c2';

let work: string;
/** The consumer app's folder; the package is its node_modules/s3db-backup. */
let app: string;
let pkg: string;
let packed: string[];

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'package-'));
  // packed from a copy of what the package is made of: prepack rebuilds dist/, which must not race
  // another run in this checkout
  const source = path.join(work, 'source');
  for (const f of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'CHANGELOG.md', 'src', 'bin', 'docs', 'native']) {
    await cp(path.join(ROOT, f), path.join(source, f), { recursive: true, filter: (p) => !p.endsWith('.node') });
  }
  await symlink(path.join(ROOT, 'node_modules'), path.join(source, 'node_modules'), 'dir');
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: source, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const [report] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
  packed = report!.files.map((f) => f.path);
  app = path.join(ROOT, 'node_modules', `.package-test-${process.pid}`);
  pkg = path.join(app, 'node_modules', 's3db-backup');
  await mkdir(pkg, { recursive: true });
  execFileSync('tar', ['-xzf', path.join(work, report!.filename), '-C', pkg, '--strip-components=1']);
}, 300_000); // (npm pack builds dist/ with tsc: minutes beside other suites on 2 cores)
afterAll(async () => {
  if (app) await rm(app, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

function node(args: string[], env: Record<string, string> = {}) {
  const run = spawnSync(process.execPath, args, { cwd: app, env: { ...process.env, S3DB_BACKUP_NATIVE: '', BACKUP_PASSPHRASE: PASSPHRASE, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('the packed package', () => {
  it('holds every file its code loads, and nothing of the clone (tests, sources, binaries)', async () => {
    for (const f of ['package.json', 'README.md', 'bin/s3db-backup.js', 'native/index.cjs', 'native/index.d.ts', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/bin.js']) expect(packed).toContain(f);
    expect(packed.filter((f) => /^(src|__test__|crates|scripts|\.tmp)\/|\.node$/.test(f))).toEqual([]);
    // every relative import of the compiled code (and of the command) is in the tarball
    const missing: string[] = [];
    for (const file of packed.filter((f) => f.endsWith('.js'))) {
      const text = await readFile(path.join(pkg, file), 'utf8');
      for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec!));
        if (!packed.includes(target)) missing.push(`${file} -> ${spec}`);
      }
    }
    const loader = await readFile(path.join(pkg, 'dist', 'codec', 'native-binding.js'), 'utf8');
    const loaderPath = /'(\.\.\/\.\.\/native\/[^']+)'/.exec(loader)?.[1];
    expect(loaderPath).toBeDefined();
    if (!packed.includes(path.posix.normalize(path.posix.join('dist/codec', loaderPath!)))) missing.push(`dist/codec/native-binding.js -> ${loaderPath}`);
    expect(missing).toEqual([]);
    // stack traces point at sources a user has: the maps carry them
    const map = JSON.parse(await readFile(path.join(pkg, 'dist', 'errors.js.map'), 'utf8')) as { sourcesContent?: string[] };
    expect(map.sourcesContent?.[0]).toContain('BackupError');
  });

  it('an ESM app backs up and restores through the package, its codec and retention entry points', async () => {
    await writeFile(
      path.join(app, 'app.mjs'),
      `import { BackupPlugin } from 's3db-backup';
import { activeImplementation, createEncoder } from 's3db-backup/codec';
import { planRetention } from 's3db-backup/retention';
import { S3db } from 's3db.js';
const db = new S3db({ connectionString: 'memory://package-test/db', logLevel: 'silent' });
await db.connect();
const users = await db.createResource({ name: 'users', attributes: { name: 'string' } });
await users.insert({ id: 'u1', name: 'Ada' });
const plugin = new BackupPlugin({ schedule: false, config: { directory: process.env.DEST }, encryption: { passphrase: process.env.BACKUP_PASSPHRASE }, logger: { info() {}, warn() {}, error() {} } });
await db.usePlugin(plugin);
const backup = await plugin.createBackup({ type: 'full' });
await users.delete('u1');
await plugin.restore(backup.id);
const back = await users.get('u1');
console.log(JSON.stringify({ name: back.name, implementation: activeImplementation(), encoder: typeof createEncoder, retention: typeof planRetention, verified: backup.verified }));
await plugin.stop();
process.exit(0);
`,
    );
    const run = node(['app.mjs'], { DEST: path.join(work, 'backups') });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout.trim().split('\n').pop()!)).toEqual({ name: 'Ada', implementation: 'js', encoder: 'function', retention: 'function', verified: true });
  }, 150_000);

  it('CommonJS can require() it where Node loads ES modules from require() (no top-level await in the package)', async () => {
    await writeFile(
      path.join(app, 'app.cjs'),
      `try {
  const { BackupPlugin } = require('s3db-backup');
  const codec = require('s3db-backup/codec');
  console.log(JSON.stringify({ plugin: typeof BackupPlugin, codec: typeof codec.createDecoder }));
} catch (err) {
  console.log(JSON.stringify({ error: err.code }));
}
`,
    );
    const run = node(['app.cjs']);
    expect(run.status, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, string>;
    // Node 20.19+ and 22.12+ load ES modules from require(); older ones refuse every ES module
    const requireModule = (process.features as { require_module?: boolean }).require_module === true;
    expect(result).toEqual(requireModule ? { plugin: 'function', codec: 'function' } : { error: 'ERR_REQUIRE_ESM' });
  }, 60_000);

  it("a strict TypeScript app type-checks against the package's declarations: typed event payloads, exactOptionalPropertyTypes", async () => {
    const dir = path.join(app, 'typed');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    await writeFile(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, exactOptionalPropertyTypes: true, skipLibCheck: true, noEmit: true, types: ['node'] }, files: ['app.ts'] }),
    );
    await writeFile(
      path.join(dir, 'app.ts'),
      `import { S3db } from 's3db.js';
import { BackupPlugin, type RestoreReport, type VerificationResult } from 's3db-backup';
import { createEncoder } from 's3db-backup/codec';
import { planRetention } from 's3db-backup/retention';

// README's quick start: the passphrase from the environment (unset is refused at run time)
const plugin = new BackupPlugin({ schedule: 'daily', config: { directory: '/var/backups/db' }, encryption: { enabled: true, passphrase: process.env.BACKUP_PASSPHRASE } });
const db = new S3db({ connectionString: 'memory://typed/db', plugins: [new BackupPlugin({ schedule: false })] });
await db.usePlugin(plugin);
plugin.on('plg:backup:complete', (e) => {
  const id: string = e.id;
  const verified: boolean = e.verified;
  void id, verified;
});
plugin.on('plg:backup:restore-complete', (e) => {
  const report: RestoreReport = e.report;
  void report;
});
plugin.on('plg:backup:verified', (e) => {
  const result: VerificationResult = e;
  void result;
});
plugin.on('plg:backup:progress', (e) => void e.objects.toFixed());
// a payload is typed, not any: a property no event carries does not compile
// @ts-expect-error
plugin.on('plg:backup:error', (e) => e.nonexistent);
// other events (EventEmitter's own) still take listeners
plugin.on('error', (err: Error) => void err.message);
void createEncoder, planRetention;
`,
    );
    const tsc = node([path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(dir, 'tsconfig.json')]);
    expect(`${tsc.stdout}${tsc.stderr}`).toBe('');
    expect(tsc.status).toBe(0);
    // typed by overloads, not by a generic EventEmitter<...> base, which @types/node before 20.12
    // lacks (under skipLibCheck the class would lose on() there)
    expect(await readFile(path.join(pkg, 'dist', 'plugin.d.ts'), 'utf8')).not.toMatch(/extends EventEmitter</);
  }, 60_000);

  it('a CommonJS TypeScript app with the default (node10) module resolution finds the types of every entry point', async () => {
    const dir = path.join(app, 'typed-cjs');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'commonjs', strict: true, skipLibCheck: true, noEmit: true, types: ['node'] }, files: ['app.ts'] }));
    await writeFile(
      path.join(dir, 'app.ts'),
      `import type { BackupPlugin } from 's3db-backup';
import type { CodecOptions } from 's3db-backup/codec';
import type { RetentionPlan } from 's3db-backup/retention';
export type Used = [BackupPlugin, CodecOptions, RetentionPlan];
`,
    );
    const tsc = node([path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(dir, 'tsconfig.json')]);
    expect(`${tsc.stdout}${tsc.stderr}`).toBe('');
    expect(tsc.status).toBe(0);
  }, 60_000);

  it('the installed command runs: --help, and list of the backups the app took', async () => {
    const bin = path.join(pkg, 'bin', 's3db-backup.js');
    const help = node([bin, '--help']);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('restore');
    const listed = node([bin, 'list', '--directory', path.join(work, 'backups'), '--json']);
    expect(listed.status, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { type: string; encrypted: boolean }[]).map((b) => [b.type, b.encrypted])).toEqual([['full', true]]);
    expect(await readdir(path.join(work, 'backups'))).toContain('manifests');
  }, 60_000);
});
