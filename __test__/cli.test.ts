// The `s3db-backup` command line against a real s3db.js file:// database and a filesystem
// destination. Most cases call the CLI's `main()` in this process with captured stdout/stderr
// (a child process costs seconds of start-up each); what only a process shows (exit codes through
// bin.ts, stdin that is not a terminal, Ctrl-C) runs as a real child process (`node --import tsx
// src/cli/bin.ts`, what `npm run cli` runs). Covered:
// backup, list, show, verify (and its exit code on real damage), restore (refused without --yes
// off a terminal, dry run writing nothing, then a real restore proved identical object for
// object), recover, Ctrl-C during a backup, and the passphrase: never taken from argv, never
// printed, its absence and a wrong one each explained.
import { spawn, type ChildProcess } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { parseCli } from '../src/cli/args.js';
import type { ProgressEvent } from '../src/engine/progress.js';
import { filesUnder } from './helpers/files.js';
import { openDb, seedDatabase, settled, snapshot, type ObjectSnapshot } from './helpers/database.js';
import { literal } from './helpers/text.js';
import { deleteBucket, makeBucket, makeS3Client, s3dbConnectionString, s3Env } from './helpers/s3.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PASSPHRASE = 'cli test passphrase 7f3a';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let work: string;
let backups: string;
let source: string;
let sourceObjects: ObjectSnapshot[];
let backupId: string;

function environment(overrides: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, BACKUP_PASSPHRASE: PASSPHRASE, ...overrides })) if (v !== undefined) env[k] = v;
  return env;
}

/** Starts the CLI as a real process; BACKUP_PASSPHRASE is the test's unless overridden (undefined removes it). */
function start(args: string[], envOverrides: Record<string, string | undefined> = {}): { child: ChildProcess; done: Promise<Run>; stderr: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args], { cwd: ROOT, env: environment(envOverrides), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done, stderr: () => stderr };
}

/** A stream that keeps what is written to it (not a terminal, as under a pipe). */
function captured(): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => text };
}

/** Runs the CLI's main() in this process (same code as the command, minus process start-up). */
async function cli(args: string[], envOverrides: Record<string, string | undefined> = {}, typed?: string): Promise<Run> {
  const out = captured();
  const err = captured();
  // `typed`: what a person types at a terminal (stdin then says it is one)
  const stdin = (typed === undefined ? Readable.from([]) : Object.assign(Readable.from([typed]), { isTTY: true })) as unknown as NodeJS.ReadStream;
  const code = await main(args, environment(envOverrides), { stdout: out.stream, stderr: err.stream, stdin });
  return { code, stdout: out.text(), stderr: err.text() };
}

/**
 * A --config file for `directory` whose `hook` writes a marker, then holds the command `holdMs`
 * there: long enough to be signalled at that point, deterministically. `started` resolves once
 * the marker is there.
 */
async function holdingConfig(name: string, directory: string, hook: 'onBackupStart' | 'onRestoreStart', holdMs: number): Promise<{ config: string; started: () => Promise<void> }> {
  const marker = path.join(work, `${name}-started`);
  const config = path.join(work, `${name}-held.mjs`);
  await writeFile(
    config,
    `import { writeFile } from 'node:fs/promises';
export default {
  driver: 'filesystem',
  config: { directory: ${JSON.stringify(directory)} },
  ${hook}: async () => { await writeFile(${JSON.stringify(marker)}, 'x'); await new Promise((r) => setTimeout(r, ${holdMs})); },
};
`,
  );
  const started = async () => {
    while (!(await readdir(work)).includes(path.basename(marker))) await new Promise((r) => setTimeout(r, 50));
  };
  return { config, started };
}

const noSecret = (r: Run) => expect(`${r.stdout}${r.stderr}`).not.toContain(PASSPHRASE);

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'cli-'));
  backups = path.join(work, 'backups');
  source = `file://${path.join(work, 'source')}`;
  const db = await openDb(source);
  await seedDatabase(db, { users: 12, orders: 10, perBehavior: 2 });
  sourceObjects = await settled(db);
  await db.disconnect();
}, 120_000);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('s3db-backup command line', () => {
  it('explains a wrong command line with exit code 2, and never takes a passphrase as an argument', async () => {
    const help = await start(['--help']).done;
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: s3db-backup <command>');
    const version = await cli(['--version']);
    expect(version).toMatchObject({ code: 0, stdout: `s3db-backup ${JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')).version}; codec: the native core (Rust); Node ${process.versions.node}\n` });
    // without s3db.js, --help still works and a command says what is missing in a line (walk-30 F11: a stack trace)
    const withoutS3db = { NODE_OPTIONS: `--import ${path.join(ROOT, '__test__/helpers/no-s3db.mjs')}` };
    expect((await start(['--help'], withoutS3db).done).stdout).toContain('Usage: s3db-backup <command>');
    const missing = await start(['list', '--directory', backups], withoutS3db).done;
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("s3db.js could not be loaded (Cannot find package 's3db.js' imported from the command line): the command line needs s3db.js 21 installed beside s3db-backup (npm install s3db.js)");
    expect(missing.stderr).not.toMatch(/^\s+at /m);
    const unknown = await cli(['lsit', '--directory', backups]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'lsit'. Did you mean 'list'? Commands: list, show,");
    const misspelt = await cli(['list', '--dirctory', backups]);
    expect(misspelt.code).toBe(2);
    expect(misspelt.stderr).toContain("unknown option '--dirctory'. Did you mean '--directory'? Options: --directory, --s3,");
    const argv = await cli(['list', '--directory', backups, '--passphrase', 'hunter2-on-argv']);
    expect(argv.code).toBe(2);
    expect(argv.stderr).toContain('--passphrase is not accepted');
    expect(argv.stderr).toContain('BACKUP_PASSPHRASE');
    expect(argv.stderr).not.toContain('hunter2-on-argv');
    const nowhere = await cli(['list']);
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toContain('Give --directory <path>, --s3 <s3://bucket/prefix> or --config <file>');
    const misplaced = await cli(['list', '--directory', backups, '--into', 'file:///tmp/x']);
    expect(misplaced.code).toBe(2);
    expect(misplaced.stderr).toContain('--into is for restore, not list');
    const unset = await cli(['list', '--directory', backups, '--passphrase-env', 'NO_SUCH_VARIABLE_HERE']);
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain('NO_SUCH_VARIABLE_HERE is not set');
    // the passphrase itself given where its variable's name or its file's path goes: never echoed
    for (const option of ['--passphrase-env', '--passphrase-file']) {
      const slip = await cli(['list', '--directory', backups, option, PASSPHRASE]);
      expect(slip.code).toBe(2);
      expect(slip.stderr).toContain('it is the passphrase itself');
      noSecret(slip);
    }
  }, 60_000);

  it('takes an encrypted backup of --db, then lists and shows it; the passphrase is never printed', async () => {
    const taken = await cli(['backup', '--db', source, '--directory', backups, '--reason', 'before the migration']);
    expect(taken.code, taken.stderr).toBe(0);
    expect(taken.stdout).toMatch(/^backup full-\S+ \(full\) taken: .* verified$/m);
    noSecret(taken);
    const listed = await cli(['list', '--directory', backups, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const items = JSON.parse(listed.stdout) as { id: string; encrypted: boolean; verified: boolean; reason: string; records: number }[];
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ encrypted: true, verified: true, reason: 'before the migration' });
    backupId = items[0]!.id;
    expect(items[0]!.records).toBe(12 + 10 + 5 * 2);
    const table = await cli(['list', '--directory', backups]);
    expect(table.stdout).toMatch(new RegExp(`^${backupId}\\s+full\\s+.*\\s+yes\\s+verified \\(full\\)`, 'm'));
    const shown = await cli(['show', backupId, '--directory', backups]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('reason: before the migration');
    expect(shown.stdout).toMatch(/^stored\s+\S+ \S+ in this backup's own parts \(gzip, encrypted\); a restore of it gives [\d,]+ objects, [\d,]+ records$/m);
    expect(shown.stdout).toMatch(/^ {2}users\s+12 records/m);
    // where the backup was written (a moved or synced copy is read from elsewhere)
    expect(shown.stdout).toMatch(new RegExp(`^written to\\s+filesystem:${literal(backups)} ok$`, 'm'));
    expect(shown.stdout).toMatch(/^ {2}orders\s+10 records/m);
    for (const r of [listed, table, shown]) noSecret(r);
    const missing = await cli(['show', 'full-20200101T000000000Z-000000', '--directory', backups]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ERR_BACKUP_NOT_FOUND');
    // an id of s3db.js's own BackupPlugin (pasted by a user switching over) is said to be one (walk-33 F3: the CLI said only "not here")
    const original = await cli(['restore', 'full-2024-01-15T14-30-00-123Z-k3j9x2', '--directory', backups, '--into', `file://${path.join(work, 'never')}`, '--dry-run']);
    expect(original.code).toBe(1);
    expect(original.stderr).toContain("backup 'full-2024-01-15T14-30-00-123Z-k3j9x2' is not at filesystem:");
    expect(original.stderr).toContain("its id is one of s3db.js's own BackupPlugin, whose backups no plugin can restore");
    // a truncated id is answered with the ids it begins; one pasted with a space still works
    const truncated = await cli(['verify', backupId.slice(0, 20), '--directory', backups]);
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toContain(`did you mean ${backupId}?`);
    const spaced = await cli(['show', `${backupId} `, '--directory', backups]);
    expect(spaced.code, spaced.stderr).toBe(0);
  }, 120_000);

  it("a merge says how many partition references it deleted and created besides the objects (walk-27: a merge that removed a stale reference said '0 deleted')", async () => {
    const into = `file://${path.join(work, 'merged')}`;
    const first = await cli(['restore', backupId, '--directory', backups, '--into', into, '--yes']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).not.toContain('partition references:'); // a replace settles none
    // two records moved to another plan since the backup: the merge deletes their references under it
    const moveTwo = async () => {
      const db = await openDb(into);
      for (const id of ['u00001', 'u00004']) await (db.resources.users as unknown as { update(id: string, v: object): Promise<unknown> }).update(id, { plan: 'pro' });
    };
    await moveTwo();
    const merged = await cli(['restore', backupId, '--directory', backups, '--into', into, '--mode', 'merge', '--yes', '--json']);
    expect(merged.code, merged.stderr).toBe(0);
    const report = JSON.parse(merged.stdout) as { partitionReferences: { deleted: number; created: number } };
    expect(report.partitionReferences).toEqual({ deleted: 2, created: 0 });
    await moveTwo();
    const text = await cli(['restore', backupId, '--directory', backups, '--into', into, '--mode', 'merge', '--yes']);
    expect(text.stdout).toMatch(/^partition references: 2 deleted \(.*\), 0 created$/m);
    // nothing moved since: nothing to settle, no line
    const again = await cli(['restore', backupId, '--directory', backups, '--into', into, '--mode', 'merge', '--yes']);
    expect(again.stdout).not.toContain('partition references:');
  }, 120_000);

  it("a merge's dry run counts the target's objects the backup lacks as kept, and sums its plan (walk-27: no totals, no word of what a merge keeps)", async () => {
    const into = `file://${path.join(work, 'kept')}`;
    const first = await cli(['restore', backupId, '--directory', backups, '--into', into, '--yes']);
    expect(first.code, first.stderr).toBe(0);
    const db = await openDb(into);
    // written after the backup: its data object and its references in byPlan and the two partitions timestamps add
    await (db.resources.users as unknown as { insert(v: object): Promise<unknown> }).insert({ id: 'u99999', name: 'new', email: 'new@example.com', password: 'pw', plan: 'pro' });
    const plan = await cli(['restore', backupId, '--directory', backups, '--into', into, '--mode', 'merge', '--dry-run', '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    const rows = (JSON.parse(plan.stdout) as { resources: { name: string; created: number; overwritten: number; unchanged: number; skipped: number; deleted: number; kept: number }[] }).resources;
    expect(Object.fromEntries(rows.map((r) => [r.name, r.kept]))).toEqual(Object.fromEntries(rows.map((r) => [r.name, r.name === 'users' ? 4 : 0])));
    const written = rows.reduce((n, r) => n + r.created + r.overwritten, 0);
    expect(written).toBeGreaterThan(0);
    const text = await cli(['restore', backupId, '--directory', backups, '--into', into, '--mode', 'merge', '--dry-run']);
    expect(text.stdout).toMatch(/^ +users +.* 0 deleted, 4 kept$/m);
    expect(text.stdout).toMatch(new RegExp(`^in all: ${written.toLocaleString('en-US')} objects would be written \\(0 created, ${written.toLocaleString('en-US')} overwritten\\), 0 deleted, 4 left as they are \\(0 unchanged, 0 skipped, 4 kept\\)$`, 'm'));
    // a replace deletes them instead
    const replace = await cli(['restore', backupId, '--directory', backups, '--into', into, '--dry-run', '--json']);
    expect((JSON.parse(replace.stdout) as { resources: { name: string; deleted: number; kept: number }[] }).resources.find((r) => r.name === 'users')).toMatchObject({ deleted: 4, kept: 0 });
  }, 120_000);

  it("show says what each number of a resource's line is: the records and objects a restore gives, then an incremental's own parts (objects stored, their bodies' bytes, objects deleted since its parent: a record deleted and a partition reference moved are objects, not records; runbook3am F1)", async () => {
    const dir = path.join(work, 'show-counts');
    await cp(path.join(work, 'source'), dir, { recursive: true });
    const dest = path.join(work, 'show-counts-backups');
    const full = await cli(['backup', '--db', `file://${dir}`, '--directory', dest, '--type', 'full', '--json']);
    expect(full.code, full.stderr).toBe(0);
    const db = await openDb(`file://${dir}`);
    const before = (await snapshot(db)).map((o) => o.key).filter((k) => k.startsWith('resource=orders/'));
    const orders = db.resources.orders as unknown as { update(id: string, v: object): Promise<unknown>; delete(id: string): Promise<unknown> };
    await orders.update('o00000', { status: 'completed' }); // pending -> completed: its byStatus reference moves
    await orders.delete('o00001'); // its data object and its partition references (byStatus, and s3db.js's timestamp ones)
    const after = new Set((await settled(db)).map((o) => o.key));
    await db.disconnect();
    const gone = before.filter((k) => !after.has(k)).length;
    expect(gone).toBeGreaterThan(2); // one record deleted, yet more objects
    const incremental = await cli(['backup', '--db', `file://${dir}`, '--directory', dest, '--type', 'incremental', '--json']);
    expect(incremental.code, incremental.stderr).toBe(0);
    const shown = await cli(['show', (JSON.parse(incremental.stdout) as { id: string }).id, '--directory', dest]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('resources (records and objects: what a restore of it gives; objects = records, partition references and other keys):');
    // one record deleted: `gone` objects, said as objects (the line said "5 deleted since parent")
    expect(shown.stdout).toMatch(new RegExp(`^ {2}orders\\s+9 records\\s+[\\d,]+ objects {2}this incremental: [\\d,]+ objects? stored \\(\\S+ \\S+ of bodies\\), ${gone} objects deleted since its parent$`, 'm'));
    expect(shown.stdout).toMatch(/^ {2}users\s+12 records\s+[\d,]+ objects {2}this incremental: 0 objects stored \(0 B of bodies\)$/m);
    expect(shown.stdout).not.toMatch(/\d deleted since parent/);
    const ofFull = await cli(['show', (JSON.parse(full.stdout) as { id: string }).id, '--directory', dest]);
    expect(ofFull.stdout).toMatch(/^ {2}orders\s+10 records\s+[\d,]+ objects\s+\S+ \S+ of object bodies$/m);
  }, 120_000);

  it('restores only with --yes off a terminal; a dry run writes nothing; the restore is identical to the source', async () => {
    const target = path.join(work, 'restored');
    const into = `file://${target}`;
    const refused = await start(['restore', backupId, '--directory', backups, '--into', into]).done;
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('add --yes');
    expect(await filesUnder(target).catch(() => [])).toEqual([]);

    const dry = await cli(['restore', backupId, '--directory', backups, '--into', into, '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout) as { dryRun: boolean; resources: { name: string; created: number }[] };
    expect(plan.dryRun).toBe(true);
    expect(plan.resources.find((r) => r.name === 'users')?.created).toBe(sourceObjects.filter((o) => o.key.startsWith('resource=users/')).length);
    expect((await filesUnder(target).catch(() => [] as string[])).filter((f) => f.includes('resource='))).toEqual([]);

    const restored = await cli(['restore', backupId, '--directory', backups, '--into', into, '--yes']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toContain(`restored into ${into}, mode replace`);
    noSecret(restored);
    const db = await openDb(into);
    expect(await snapshot(db)).toEqual(sourceObjects);
    await db.disconnect();
  }, 120_000);

  it('a dry run into the S3 database the backup was taken from, unchanged since, counts its objects "unchanged" (left in place); --rewrite-unchanged counts them "overwritten"', async () => {
    const admin = makeS3Client();
    const bucket = await makeBucket(admin, 'cli-unchanged');
    const url = s3dbConnectionString(bucket, 'db');
    const db = await openDb(url);
    const notes = await db.createResource({ name: 'notes', attributes: { v: 'number' } });
    for (let i = 0; i < 6; i++) await notes.insert({ id: `n${i}`, v: i });
    await db.disconnect();
    const dest = path.join(work, 'unchanged-backups');
    const taken = await cli(['backup', '--db', url, '--directory', dest, '--json']);
    expect(taken.code, taken.stderr).toBe(0);
    const { id } = JSON.parse(taken.stdout) as { id: string };
    const left = await cli(['restore', id, '--directory', dest, '--into', url, '--dry-run']);
    expect(left.code, left.stderr).toBe(0);
    expect(left.stdout).toMatch(/notes +6 records, 6 objects: 0 created, 0 overwritten, 6 unchanged, 0 skipped, 0 deleted/);
    const all = await cli(['restore', id, '--directory', dest, '--into', url, '--dry-run', '--rewrite-unchanged']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/notes +6 records, 6 objects: 0 created, 6 overwritten, 0 unchanged, 0 skipped, 0 deleted/);
    expect((await cli(['list', '--directory', dest, '--rewrite-unchanged'])).code).toBe(2); // a restore option only
    await deleteBucket(admin, bucket);
  }, 120_000);

  it('a backup that is not encrypted, restored with a passphrase set, is refused (nothing authenticates it) unless --allow-plaintext', async () => {
    const plain = path.join(work, 'plain-backups');
    const made = await cli(['backup', '--db', source, '--directory', plain, '--json'], { BACKUP_PASSPHRASE: undefined });
    expect(made.code, made.stderr).toBe(0);
    const id = (JSON.parse(made.stdout) as { id: string }).id;
    const into = `file://${path.join(work, 'plain-restored')}`;
    const refused = await cli(['restore', id, '--directory', plain, '--into', into, '--yes']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('ERR_NOT_ENCRYPTED');
    expect(refused.stderr).toContain('--allow-plaintext');
    const allowed = await cli(['restore', id, '--directory', plain, '--into', into, '--yes', '--allow-plaintext']);
    expect(allowed.code, allowed.stderr).toBe(0);
    const db = await openDb(into);
    expect(await snapshot(db)).toEqual(sourceObjects);
    await db.disconnect();
  }, 120_000);

  it('at a terminal, the question comes after the plan: what would be created, overwritten and deleted, and what the target would lose', async () => {
    const otherDir = path.join(work, 'unrelated-db');
    const other = await openDb(`file://${otherDir}`);
    await other.createResource({ name: 'events', attributes: { kind: 'string' } });
    await (other.resources.events as unknown as { insert(v: object): Promise<unknown> }).insert({ id: 'e1', kind: 'deploy' });
    const before = await snapshot(other);
    await other.disconnect();
    const into = `file://${otherDir}`;
    const declined = await cli(['restore', backupId, '--directory', backups, '--into', into], {}, 'no\n');
    expect(declined.code).toBe(2);
    expect(declined.stderr).toContain('dry run: nothing written.');
    expect(declined.stderr).toMatch(/users\s+12 records, \d+ objects: \d+ created, 0 overwritten/);
    expect(declined.stderr).toContain("resources the backup does not define are dropped from s3db.json (their objects stay, unreferenced): events; restore with resources: [...] (the command line's --resources) to keep them");
    expect(declined.stderr).toContain('as above');
    const reopened = await openDb(into);
    expect(await snapshot(reopened)).toEqual(before); // nothing written
    await reopened.disconnect();
    const confirmed = await cli(['restore', backupId, '--directory', backups, '--into', into], {}, 'yes\n');
    expect(confirmed.code, confirmed.stderr).toBe(0);
    // each warning once: with the report (the plan's on stderr, the restore's on stdout), not again as a log line
    const dropped = 'resources the backup does not define are dropped';
    expect(confirmed.stdout.split(dropped).length - 1).toBe(1);
    expect(confirmed.stderr.split(dropped).length - 1).toBe(1);
    expect(confirmed.stdout).toContain(`restored into ${into}, mode replace`);
  }, 60_000);

  it("at a terminal, the whole-database replace that mends a damaged s3db.json (runbook step 4) is asked without a plan (a dry run cannot open that database) and restores", async () => {
    const damagedDir = path.join(work, 'damaged-target');
    await cp(source.slice('file://'.length), damagedDir, { recursive: true });
    await writeFile(path.join(damagedDir, 's3db.json'), '{nope');
    const into = `file://${damagedDir}`;
    const restored = await cli(['restore', backupId, '--directory', backups, '--into', into], {}, 'yes\n');
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stderr).toContain("no plan: the target's s3db.json is damaged, and a dry run does not open such a database");
    expect(restored.stderr).toContain("this whole-database replace puts the backup's s3db.json back");
    const db = await openDb(into);
    expect((await snapshot(db)).filter((o) => !o.key.startsWith('s3db.json.corrupted'))).toEqual(sourceObjects);
    await db.disconnect();
  }, 60_000);

  it("a restore refused for a damaged s3db.json gives the way back in the command line's terms (the ready command, --mode replace without --resources or --dry-run); the plugin's error keeps the API's terms (runbook3am F3)", async () => {
    const damagedDir = path.join(work, 'damaged-target-terms');
    await cp(source.slice('file://'.length), damagedDir, { recursive: true });
    await writeFile(path.join(damagedDir, 's3db.json'), '{nope');
    const into = `file://${damagedDir}`;
    for (const extra of [['--dry-run'], ['--resources', 'orders', '--yes']]) {
      const refused = await cli(['restore', backupId, '--directory', backups, '--into', into, ...extra]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('ERR_TARGET_METADATA');
      expect(refused.stderr).toContain('s3db-backup show <id> --json | jq -j .manifest.s3dbJson > s3db.json');
      expect(refused.stderr).toContain('s3db-backup restore <id> --into <the database> --yes: --mode replace (the default), without --resources or --dry-run');
      expect(refused.stderr).not.toContain("mode 'replace'");
    }
    expect(await readFile(path.join(damagedDir, 's3db.json'), 'utf8')).toBe('{nope'); // nothing written
    // a program calling the plugin gets the API's terms
    const { BackupPlugin } = await import('../src/index.js');
    const plugin = new BackupPlugin({ schedule: false, driver: 'filesystem', config: { directory: backups }, encryption: { passphrase: PASSPHRASE } });
    const db = await openDb(`memory://cli-terms-${process.pid}/db`);
    await db.usePlugin(plugin);
    await expect(plugin.restore({ backupId, destination: into, dryRun: true })).rejects.toMatchObject({
      code: 'ERR_TARGET_METADATA',
      message: expect.stringContaining("(no record changes; s3db-backup show <id> --json prints it), or restore the whole database (mode 'replace', no resources, not a dry run)"),
    });
    await plugin.uninstall();
    await db.disconnect();
  }, 60_000);

  it('says what to do when the passphrase is missing or wrong, and reads it from a file', async () => {
    const into = `file://${path.join(work, 'restored-2')}`;
    const none = await cli(['restore', backupId, '--directory', backups, '--into', into, '--yes'], { BACKUP_PASSPHRASE: undefined });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('ERR_PASSPHRASE_REQUIRED');
    expect(none.stderr).toContain('put the passphrase in BACKUP_PASSPHRASE');
    const wrong = await cli(['verify', backupId, '--directory', backups], { BACKUP_PASSPHRASE: 'not-the-passphrase-9c1' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('ERR_WRONG_PASSPHRASE');
    expect(wrong.stderr).toContain('does not open the backup');
    expect(wrong.stderr).not.toContain('not-the-passphrase-9c1');
    // in the command line's terms: its flags, not the API's option names (walk-33 F5)
    expect(wrong.stderr).toContain('check the passphrase given (--passphrase-env or --passphrase-file; BACKUP_PASSPHRASE by default)');
    expect(wrong.stderr).not.toContain('encryption.passphrase');
    const file = path.join(work, 'passphrase.txt');
    await writeFile(file, `${PASSPHRASE}\n`, { mode: 0o600 });
    const fromFile = await cli(['verify', backupId, '--directory', backups, '--passphrase-file', file], { BACKUP_PASSPHRASE: undefined });
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(fromFile.stdout).toContain(`backup ${backupId}: verified (full)`);
  }, 120_000);

  it('verify exits 3 and names the damage; recover puts lost manifests back', async () => {
    const copy = path.join(work, 'backups-damaged');
    await cp(backups, copy, { recursive: true });
    const part = (await filesUnder(copy)).find((f) => f.startsWith('data/') && path.basename(f).startsWith('users.'));
    expect(part).toBeDefined();
    const bytes = await readFile(path.join(copy, part!));
    bytes[bytes.length >> 1] ^= 0xff;
    await writeFile(path.join(copy, part!), bytes);
    const damaged = await cli(['verify', backupId, '--directory', copy]);
    expect(damaged.code).toBe(3);
    expect(damaged.stdout).toContain(`backup ${backupId}: DAMAGED (full)`);
    expect(damaged.stdout).toContain(path.basename(part!));
    expect(damaged.stdout).toContain('or restore all it still holds (restore --salvage; runbook step 5)');
    // a restore refuses it and says how to restore the rest; --salvage does, names what it lost, and exits 3
    const refused = await cli(['restore', backupId, '--directory', copy, '--into', `file://${path.join(work, 'salvaged')}`, '--yes']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('To restore what it still holds, restore with --salvage');
    const salvaged = await cli(['restore', backupId, '--directory', copy, '--into', `file://${path.join(work, 'salvaged')}`, '--yes', '--salvage']);
    expect(salvaged.code, salvaged.stderr).toBe(3);
    expect(salvaged.stdout).toMatch(/^ {2}users\s+12 records, .* LOST \(damaged parts\)$/m);
    expect(salvaged.stdout).toMatch(/^WARNING: salvage: \d+ objects of users \(\d+ records\) were not restored/m);
    expect(salvaged.stdout).toContain(path.basename(part!));
    // at a terminal, without --yes: the plan, the salvage note, the question; answered, the same salvage (review-33b F7: refused before the question)
    const asked = await cli(['restore', backupId, '--directory', copy, '--into', `file://${path.join(work, 'salvaged-asked')}`, '--salvage'], {}, 'yes\n');
    expect(asked.code, asked.stderr).toBe(3);
    expect(asked.stderr).toContain('with --salvage: the restore verifies the whole backup first and passes over the parts it finds damaged');
    expect(asked.stdout).toMatch(/^WARNING: salvage: \d+ objects of users \(\d+ records\) were not restored/m);
    // an incremental on a full whose part is damaged: its own parts are good, the backup it needs
    // is not; no "older backup" advice, since every older one is that full (review-runbook 6)
    const chained = path.join(work, 'backups-chain');
    const ids: string[] = [];
    for (const type of ['full', 'incremental']) {
      const taken = await cli(['backup', '--db', source, '--directory', chained, '--type', type, '--json']);
      expect(taken.code, taken.stderr).toBe(0);
      ids.push((JSON.parse(taken.stdout) as { id: string; type: string }).id);
    }
    const [full, incremental] = ids as [string, string];
    expect(incremental).toMatch(/^incremental-/);
    const fullPart = (await filesUnder(chained)).find((f) => f.startsWith('data/') && f.includes(full) && path.basename(f).startsWith('users.'));
    const fullBytes = await readFile(path.join(chained, fullPart!));
    fullBytes[fullBytes.length >> 1] ^= 0xff;
    await writeFile(path.join(chained, fullPart!), fullBytes);
    const chain = await cli(['verify', incremental, '--directory', chained]);
    expect(chain.code).toBe(3);
    expect(chain.stdout).toContain(`backup ${incremental}: DAMAGED (full): it needs ${full}, which fails verification`);
    expect(chain.stdout).toContain(`filesystem:${chained}: its own parts ok`);
    expect(chain.stdout).toContain(`It cannot be restored whole while ${full} is damaged, nor can any backup built on ${full}: pick a backup of another chain`);
    expect(chain.stdout).not.toContain('Pick an older backup');

    const lost = path.join(work, 'backups-lost-manifests');
    await cp(backups, lost, { recursive: true });
    await rm(path.join(lost, 'manifests'), { recursive: true });
    const empty = await cli(['list', '--directory', lost, '--json']);
    expect(JSON.parse(empty.stdout)).toEqual([]);
    expect(empty.code).toBe(3); // damage, as verify's: a health check does not pass (walk-30 F5)
    // the plugin's hint names its method; the command line names the command
    const hinted = await cli(['list', '--directory', lost]);
    expect(hinted.stderr).toContain('s3db-backup recover puts them back');
    expect(hinted.stderr).not.toContain('recoverBackups()');
    const recovered = await cli(['recover', '--directory', lost]);
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(recovered.stdout).toContain(`manifests put back: ${backupId}`);
    const back = await cli(['list', '--directory', lost, '--json']);
    expect((JSON.parse(back.stdout) as { id: string }[]).map((b) => b.id)).toEqual([backupId]);

    // a mistyped directory: nothing to put back, said as such (exit 1), and nothing written there,
    // so that list still says it does not exist (review-runbook 2)
    const typo = path.join(work, 'bakcups');
    const nothing = await cli(['recover', '--directory', typo]);
    expect(nothing.code).toBe(1);
    expect(nothing.stdout).toContain(`no backups at filesystem:${typo}, nor anything of one: nothing to put back`);
    expect(nothing.stderr).toContain(`${typo} does not exist (no backup was ever written there): check --directory`);
    await expect(stat(typo)).rejects.toMatchObject({ code: 'ENOENT' });
    // and list there exits 1, so a health check on an unmounted disk or a typo does not pass (walk-30 F5)
    const listedThere = await cli(['list', '--directory', typo]);
    expect(listedThere.code).toBe(1);
    expect(listedThere.stderr).toContain(`nothing listed, and filesystem:${typo} does not look like the place backups are (the warning above says why)`);
    // a directory beside ones that hold backups may be a new database's: said, exit 0 (review-30b G2)
    const beside = await cli(['list', '--directory', work]);
    expect(beside.code, beside.stderr).toBe(0);
    expect(beside.stderr).toMatch(/ (do|does): if (it|one of them) holds this database's, set config\.directory to it \(a new database's directory looks the same until its first backup\)/);
    // while an empty directory is only empty: no backups yet
    const fresh = path.join(work, 'backups-none-yet');
    await mkdir(fresh);
    expect(await cli(['list', '--directory', fresh])).toMatchObject({ code: 0 });

    // a manifest lost with its copy cannot be put back: said, and exit 3 (as verify's damage)
    const gone = path.join(work, 'backups-lost-with-copy');
    await cp(backups, gone, { recursive: true });
    await rm(path.join(gone, 'manifests'), { recursive: true });
    for (const f of (await filesUnder(gone)).filter((f) => f.startsWith('data/') && f.endsWith('/manifest.json'))) await rm(path.join(gone, f));
    const unrecoverable = await cli(['recover', '--directory', gone]);
    expect(unrecoverable.code).toBe(3);
    expect(unrecoverable.stdout).toContain('no manifest was put back');
    expect(unrecoverable.stdout).toContain(`not put back: manifests/${backupId}.json at filesystem:${gone}: the manifest is missing here and no copy of it is beside the backup's parts`);

    // an index that cannot be rebuilt (a wrong passphrase: its parts cannot be read) is not put back: exit 3 too
    const noIndex = path.join(work, 'backups-lost-index');
    await cp(backups, noIndex, { recursive: true });
    for (const f of (await filesUnder(noIndex)).filter((f) => f.startsWith('indexes/'))) await rm(path.join(noIndex, f));
    const wrongKey = await cli(['recover', '--directory', noIndex], { BACKUP_PASSPHRASE: 'not-the-passphrase-4e2' });
    expect(wrongKey.code).toBe(3);
    expect(wrongKey.stdout).toContain(`not put back: indexes/${backupId}.index`);
    const rebuilt = await cli(['recover', '--directory', noIndex]);
    expect(rebuilt.code, rebuilt.stdout).toBe(0);
    expect(rebuilt.stdout).toContain(`index of ${backupId} rebuilt`);
  }, 120_000);

  it('rewrap changes the passphrase at every destination: the backups open with the new one and new backups go on; a wrong current passphrase writes nothing', async () => {
    const dir = path.join(work, 'backups-rewrap');
    await cp(backups, dir, { recursive: true });
    const keyFile = path.join(dir, 'key.json');
    const before = await readFile(keyFile, 'utf8');
    const NEW = 'the new passphrase 91c2';
    const wrong = await cli(['rewrap', '--directory', dir, '--new-passphrase-env', 'NEW_PASS'], { BACKUP_PASSPHRASE: 'not-it-7d1', NEW_PASS: NEW });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('ERR_WRONG_PASSPHRASE');
    expect(await readFile(keyFile, 'utf8')).toBe(before);
    const missing = await cli(['rewrap', '--directory', dir]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--new-passphrase-env NAME or --new-passphrase-file PATH');
    const empty = await cli(['rewrap', '--directory', dir, '--new-passphrase-env', 'NEW_PASS'], { NEW_PASS: '' });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('the environment variable NEW_PASS is set but empty; set the passphrase in it');
    expect(empty.stderr).not.toContain('unencrypted'); // a rewrap has no unencrypted choice
    const done = await cli(['rewrap', '--directory', dir, '--new-passphrase-env', 'NEW_PASS'], { NEW_PASS: NEW });
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain(`key.json rewrapped at filesystem:${dir}`);
    expect(`${done.stdout}${done.stderr}`).not.toContain(NEW);
    noSecret(done);
    expect(JSON.parse(await readFile(keyFile, 'utf8')).keyCheck).toBe(JSON.parse(before).keyCheck); // same master key
    const verified = await cli(['verify', backupId, '--directory', dir], { BACKUP_PASSPHRASE: NEW });
    expect(verified.code, verified.stderr).toBe(0);
    const next = await cli(['backup', '--db', source, '--directory', dir, '--type', 'incremental'], { BACKUP_PASSPHRASE: NEW });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stdout).toMatch(/\(incremental\) taken/);
  }, 60_000);

  it('a rewrap killed between destinations (key.json new at one, old at the other) is finished by running it again; it never lowers the PBKDF2 count', async () => {
    const { BackupPlugin } = await import('../src/index.js');
    const { rewrapAll } = await import('../src/cli/rewrap.js');
    const { rewrapKeyFile, unlockKeyFile } = await import('../src/codec/index.js');
    const [d0, d1] = [path.join(work, 'split-0'), path.join(work, 'split-1')];
    const multi = (passphrase: string, iterations: number) =>
      new BackupPlugin({ schedule: false, driver: 'multi', destinations: [{ driver: 'filesystem', config: { directory: d0 } }, { driver: 'filesystem', config: { directory: d1 } }], encryption: { passphrase, iterations } });
    const db = await openDb(`memory://cli-split-${process.pid}/db`);
    await seedDatabase(db, { users: 2, orders: 2, perBehavior: 1 });
    const maker = multi('old passphrase A1', 200_000);
    await db.usePlugin(maker);
    const backup = await maker.createBackup();
    await maker.uninstall();
    // the state a kill -9 leaves after the first destination: d0 rewrapped, d1 not
    const first = path.join(d0, 'key.json');
    await writeFile(first, JSON.stringify(await rewrapKeyFile(await readFile(first, 'utf8'), 'old passphrase A1', 'new passphrase B2', { iterations: 200_000 }), null, 2));
    const report = await rewrapAll(multi('old passphrase A1', 100_000), 'old passphrase A1', 'new passphrase B2');
    expect(report).toEqual({ rewrapped: [`filesystem:${d1}`], alreadyNew: [`filesystem:${d0}`], withoutKeyFile: [] });
    // the wrapping the interrupted run wrote is the one d1 gets: one salt, unwrapped once (review-29b G6)
    expect(await readFile(path.join(d1, 'key.json'), 'utf8')).toBe(await readFile(first, 'utf8'));
    for (const dir of [d0, d1]) {
      const keyFile = JSON.parse(await readFile(path.join(dir, 'key.json'), 'utf8')) as { kdf: { iterations: number } };
      await unlockKeyFile(keyFile as never, 'new passphrase B2');
      expect(keyFile.kdf.iterations).toBe(200_000); // configured 100,000 is lower than the key file's own
    }
    const reader = multi('new passphrase B2', 100_000);
    expect((await reader.verifyBackup(backup.id, { level: 'full' })).verified).toBe(true);
    await expect(rewrapAll(reader, 'new passphrase B2', 'new passphrase B2')).rejects.toMatchObject({ message: expect.stringContaining('nothing to rewrap') });
    await expect(rewrapAll(reader, 'wrong passphrase C3', 'another passphrase D4')).rejects.toMatchObject({ code: 'ERR_WRONG_PASSPHRASE', message: expect.stringContaining(`key.json at filesystem:${d0} opens with neither`) });
    await db.disconnect();
  }, 60_000);

  it('backup --db of a database whose s3db.json is damaged takes no backup and leaves the file as it is (s3db.js would replace it on connecting)', async () => {
    const damagedDir = path.join(work, 'source-damaged');
    await cp(path.join(work, 'source'), damagedDir, { recursive: true });
    const schema = (await filesUnder(damagedDir)).find((f) => path.basename(f) === 's3db.json')!;
    await writeFile(path.join(damagedDir, schema), '{ "version": "1", "resources": { trunc');
    const before = await filesUnder(damagedDir);
    const run = await cli(['backup', '--db', `file://${damagedDir}`, '--directory', path.join(work, 'backups-of-damaged')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('ERR_SOURCE_READ');
    expect(run.stderr).toContain("write the newest backup's manifest.s3dbJson as its s3db.json");
    expect(await filesUnder(damagedDir)).toEqual(before); // no s3db.json.corrupted.* copy
    expect(await readFile(path.join(damagedDir, schema), 'utf8')).toBe('{ "version": "1", "resources": { trunc');
  }, 60_000);

  it('sizes and rates print as a person reads them (a rate under 1 kB/s is whole bytes, not a float)', async () => {
    const { bytes } = await import('../src/cli/format.js');
    expect(bytes(245.54455445544554)).toBe('246 B');
    expect(bytes(0)).toBe('0 B');
    expect(bytes(1500)).toBe('1.50 kB');
    expect(bytes(123_456_789)).toBe('123.5 MB');
  });

  it('3 AM slips are refused before anything is written: no passphrase next to encrypted backups, a --db where no database is, a relative file:// path', async () => {
    const dir = path.join(work, 'backups-slips');
    await cp(backups, dir, { recursive: true });
    const before = await filesUnder(dir);
    // BACKUP_PASSPHRASE lost (sudo, a new shell): no plaintext backup next to the encrypted ones
    const plain = await cli(['backup', '--db', source, '--directory', dir, '--type', 'incremental'], { BACKUP_PASSPHRASE: undefined });
    expect(plain.code).toBe(2);
    expect(plain.stderr).toContain('holds encrypted backups (key.json) and no passphrase was given (BACKUP_PASSPHRASE is not set');
    expect(plain.stderr).toContain('--unencrypted');
    expect(await filesUnder(dir)).toEqual(before);
    const asked = await cli(['backup', '--db', source, '--directory', dir, '--unencrypted'], { BACKUP_PASSPHRASE: undefined });
    expect(asked.code, asked.stderr).toBe(0);
    // backups of two databases at one destination: the list says which is which
    const otherDir = path.join(work, 'other-db');
    const other = await openDb(`file://${otherDir}`);
    await seedDatabase(other, { users: 1, orders: 1, perBehavior: 1 });
    await other.disconnect();
    expect((await cli(['backup', '--db', `file://${otherDir}`, '--directory', dir])).code).toBe(0);
    const listed = await cli(['list', '--directory', dir]);
    expect(listed.stdout.split('\n')[0]).toMatch(/^database\s+id\s+type/);
    expect(listed.stdout).toContain(`file://${otherDir}`);
    // a typo in --db: nothing created there, nothing backed up
    const typo = path.join(work, 'sourec');
    const nowhere = await cli(['backup', '--db', `file://${typo}`, '--directory', dir]);
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toContain('there is no database there (no s3db.json)');
    expect(await readdir(work)).not.toContain('sourec');
    // file://relative: s3db.js would write to /relative
    const relative = await cli(['restore', backupId, '--directory', dir, '--into', 'file://scratch-rel', '--yes']);
    expect(relative.code).toBe(2);
    expect(relative.stderr).toContain('a file:// connection string takes an absolute path');
  }, 60_000);

  it('a secret typed in the wrong place is never echoed: an --into or --db without its scheme, a stray argument, an id; --into memory:// is refused (it would vanish with the command)', async () => {
    const secret = 'Pz-9xQ!secretKey42';
    for (const args of [
      ['restore', backupId, '--directory', backups, '--into', `AKIAEXAMPLE:${secret}@bucket/prefix`, '--yes'],
      ['backup', '--db', `AKIAEXAMPLE:${secret}@bucket/prefix`, '--directory', backups],
      ['list', '--directory', backups, secret],
      ['show', secret, '--directory', backups],
    ]) {
      const run = await cli(args);
      expect(run.code, run.stderr).not.toBe(0);
      expect(`${run.stdout}${run.stderr}`).not.toContain('secretKey42');
    }
    expect((await cli(['list', '--directory', backups, 'prune'])).stderr).toContain("unexpected argument 'prune' for list");
    const memory = await cli(['restore', backupId, '--directory', backups, '--into', 'memory://scratch/db', '--yes']);
    expect(memory.code).toBe(2);
    expect(memory.stderr).toContain('what it restored would vanish when it exits');
  });

  it("an --db that nothing answers at says what to check (the host and port), with our code and no s3db.js stack dump or secret; an empty --directory is refused", async () => {
    const unreachable = await cli(['backup', '--db', 'http://AKIAEXAMPLE:Pz-9xQ!unreachable42@127.0.0.1:1/bucket/db', '--directory', path.join(work, 'unreachable'), '--unencrypted']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/ERR_SOURCE_OPEN: could not open --db http:\/\/\*\*\*@127\.0\.0\.1:1\/bucket\/db: .*check the host and port/);
    expect(unreachable.stderr).not.toMatch(/Stack:|unreachable42/);
    const empty = await cli(['list', '--directory', '']);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('--directory is empty');
  }, 60_000);

  it("--resources names a resource holding a comma as 'a\\,b' (s3db.js takes such names), spaces around each name dropped (review-paths P10)", () => {
    const args = parseCli(['restore', 'some-id', '--directory', '/srv/backups', '--into', 'file:///srv/db', '--resources', 'a\\,b, orders']);
    expect(typeof args === 'object' && args.resources).toEqual(['a,b', 'orders']);
  });

  it('verify of a backup whose copy at one of two destinations is damaged says so and exits 4 (it restores from the other)', async () => {
    const [d0, d1] = [path.join(work, 'two-0'), path.join(work, 'two-1')];
    const config = path.join(work, 'two.json');
    await writeFile(config, JSON.stringify({ driver: 'multi', destinations: [{ driver: 'filesystem', config: { directory: d0 } }, { driver: 'filesystem', config: { directory: d1 } }] }));
    const taken = await cli(['backup', '--db', source, '--config', config, '--json']);
    expect(taken.code, taken.stderr).toBe(0);
    const id = (JSON.parse(taken.stdout) as { id: string }).id;
    const part = (await filesUnder(d0)).find((f) => f.startsWith('data/') && /\.\d{6}$/.test(f))!;
    const bytesOf = await readFile(path.join(d0, part));
    bytesOf[Math.floor(bytesOf.length / 2)]! ^= 0xff;
    await writeFile(path.join(d0, part), bytesOf);
    const checked = await cli(['verify', id, '--config', config]);
    expect(checked.code).toBe(4);
    expect(checked.stdout).toContain('from the good copies, but NOT at every destination');
    expect(checked.stdout).toContain(`at filesystem:${d0} is DAMAGED`);
    expect(checked.stdout).not.toContain('at every destination that holds it');
    expect(checked.stdout).toContain('for a damaged part, take a new full backup, or copy the file from the good destination');
    // a restore reads the good copy and says, in words, which one it could not use
    const restored = await cli(['restore', id, '--config', config, '--into', `file://${path.join(work, 'two-restored')}`, '--yes']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toContain(`note: ${part} at filesystem:${d0} could not be used (`);
    expect(restored.stdout).not.toContain('{"label"');
    // list says what verify found, and which backups are at one destination only, and their tags (walk-28 F7)
    const alone = await cli(['backup', '--db', source, '--directory', d1, '--json']);
    expect(alone.code, alone.stderr).toBe(0);
    const aloneId = (JSON.parse(alone.stdout) as { id: string }).id;
    const db = await openDb(source);
    const { BackupPlugin } = await import('../src/index.js');
    const tagging = new BackupPlugin({ schedule: false, driver: 'multi', destinations: [{ driver: 'filesystem', config: { directory: d0 } }, { driver: 'filesystem', config: { directory: d1 } }], encryption: { passphrase: PASSPHRASE }, logger: { warn() {}, info() {}, error() {} } } as never);
    await db.usePlugin(tagging);
    const tagged = await tagging.createBackup({ tags: ['pre-deploy', 'keep'] });
    await tagging.stop();
    await db.disconnect();
    const listed = await cli(['list', '--config', config]);
    expect(listed.code, listed.stderr).toBe(0);
    const row = (backupId: string) => listed.stdout.split('\n').find((line) => line.startsWith(backupId)) ?? '';
    expect(row(id)).toMatch(new RegExp(`verified \\(full\\)\\s+copy damaged at filesystem:${literal(d0)}$`));
    expect(row(aloneId)).toMatch(new RegExp(`only at filesystem:${literal(d1)}$`));
    expect(row(tagged.id)).toMatch(/verified \(full\)\s+tags: pre-deploy, keep$/);
  }, 60_000);

  it('list of two destinations, one of which cannot be listed (no S3 credentials in the environment; a broken directory), shows what the other holds, says what to check, and exits 5 (runbook3am F4)', async () => {
    const env = s3Env();
    const bucket = await makeBucket(makeS3Client(), 'cli-list');
    const dir = path.join(work, 'list-partial');
    const s3 = { driver: 's3', config: { bucketName: bucket, prefix: 'backups/', endpoint: env.endpoint, region: env.region, maxAttempts: 2 } };
    const withKeys = path.join(work, 'list-partial-keys.json');
    await writeFile(withKeys, JSON.stringify({ driver: 'multi', destinations: [{ driver: 'filesystem', config: { directory: dir } }, { ...s3, config: { ...s3.config, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } } }] }));
    const taken = await cli(['backup', '--db', source, '--config', withKeys, '--json']);
    expect(taken.code, taken.stderr).toBe(0);
    const id = (JSON.parse(taken.stdout) as { id: string }).id;
    // as deployed: the S3 credentials come from the environment, and this shell has none
    const deployed = path.join(work, 'list-partial.json');
    await writeFile(deployed, JSON.stringify({ driver: 'multi', destinations: [{ driver: 'filesystem', config: { directory: dir } }, s3] }));
    const nowhere = path.join(work, 'no-aws-files');
    const noCredentials = { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined, AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: nowhere, AWS_SHARED_CREDENTIALS_FILE: nowhere };
    const partial = await start(['list', '--config', deployed], noCredentials).done;
    expect(partial.code, partial.stderr).toBe(5);
    expect(partial.stdout).toMatch(new RegExp(`^${id}\\s+full\\s`, 'm'));
    expect(partial.stderr).toContain(`a destination could not be listed (s3://${bucket}/backups/`);
    expect(partial.stderr).toContain('no credentials');
    expect(partial.stderr).toContain('set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE');
    expect(partial.stderr).toMatch(new RegExp(`the list is partial: s3://${bucket}/backups/ at \\S+ could not be listed .*it shows what filesystem:${literal(dir)} holds`));
    const json = await start(['list', '--config', deployed, '--json'], noCredentials).done;
    expect(json.code).toBe(5);
    expect((JSON.parse(json.stdout) as { id: string }[]).map((b) => b.id)).toEqual([id]);
    // with them set, both answer: exit 0
    const whole = await start(['list', '--config', deployed], { ...noCredentials, AWS_ACCESS_KEY_ID: env.accessKeyId, AWS_SECRET_ACCESS_KEY: env.secretAccessKey }).done;
    expect(whole.code, whole.stderr).toBe(0);
    expect(whole.stderr).not.toContain('could not be listed');
    // a directory whose manifests/ cannot be read (a link that leads nowhere): the path to check
    const broken = path.join(work, 'list-broken');
    await mkdir(broken, { recursive: true });
    await symlink('manifests', path.join(broken, 'manifests')); // ELOOP
    const twoDirs = path.join(work, 'list-two-dirs.json');
    await writeFile(twoDirs, JSON.stringify({ driver: 'multi', destinations: [{ driver: 'filesystem', config: { directory: dir } }, { driver: 'filesystem', config: { directory: broken } }] }));
    const fsPartial = await cli(['list', '--config', twoDirs]);
    expect(fsPartial.code, fsPartial.stderr).toBe(5);
    expect(fsPartial.stdout).toContain(id);
    expect(fsPartial.stderr).toContain(`check the path ${broken}`);
    // one destination alone that cannot be listed is a failure, as before
    const alone = await cli(['list', '--directory', broken]);
    expect(alone.code).toBe(1);
  }, 120_000);

  it('SIGTERM (kill, timeout, docker stop) ends a restore as Ctrl-C does: exit 143, with what to do', async () => {
    const { config, started } = await holdingConfig('restore', backups, 'onRestoreStart', 20_000);
    const run = start(['restore', backupId, '--config', config, '--into', `file://${path.join(work, 'restored-term')}`, '--yes']);
    await started();
    run.child.kill('SIGTERM');
    const ended = await run.done;
    expect(ended.code).toBe(143);
    expect(ended.stderr).toContain('restore interrupted: the database may be partly restored. Run the same command again');
  }, 60_000);

  it('a first Ctrl-C stops a backup cleanly: nothing is committed and the destination stays usable', async () => {
    const dest = path.join(work, 'backups-interrupted');
    const { config, started } = await holdingConfig('backup', dest, 'onBackupStart', 3_000);
    const run = start(['backup', '--db', source, '--config', config]);
    await started();
    run.child.kill('SIGINT');
    const stopped = await run.done;
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain('stopping the backup cleanly');
    expect(stopped.stderr).toContain('ERR_ABORTED');
    const none = await cli(['list', '--directory', dest, '--json']);
    expect(JSON.parse(none.stdout)).toEqual([]);
    // its lease was released: the next backup runs at once, and is the only one listed
    const next = await start(['backup', '--db', source, '--config', config]).done;
    expect(next.code, next.stderr).toBe(0);
    const after = await cli(['list', '--directory', dest, '--json']);
    expect((JSON.parse(after.stdout) as unknown[]).length).toBe(1);
  }, 120_000);
});

describe('progress on stderr', () => {
  /** What ProgressDisplay writes to a stream that is not a terminal (a log file, CI). */
  async function shown(events: Partial<ProgressEvent>[], then?: 'interrupted'): Promise<string> {
    const { ProgressDisplay } = await import('../src/cli/progress.js');
    let out = '';
    const stream = Object.assign(new Writable({ write: (chunk, _enc, done) => ((out += String(chunk)), done()) }), { isTTY: false }) as unknown as NodeJS.WriteStream;
    const display = new ProgressDisplay(stream);
    const base: ProgressEvent = { id: 'b', phase: 'restore', objects: 0, bytes: 0, totalObjects: 1551, elapsedMs: 1, objectsPerSecond: 0, bytesPerSecond: 0, etaSeconds: null, idleMs: 0, done: false };
    for (const e of events) display.update({ ...base, ...e });
    if (then === 'interrupted') display.interrupted();
    return out;
  }

  it('interrupted, it says how far the phase under way had got, which the last line (up to 10 s old) may not', async () => {
    const lines = (await shown([{ objects: 1 }, { objects: 400 }, { objects: 977 }], 'interrupted')).trim().split('\n');
    expect(lines[0]).toMatch(/^restore: 1 of 1,551 objects/);
    expect(lines[1]).toBe('restore: at least 977 of 1,551 objects done when interrupted');
    expect(lines).toHaveLength(2);
    // nothing to add once the phase said it was done, or before any progress
    expect(await shown([{ objects: 1551, done: true }], 'interrupted')).not.toContain('interrupted');
    expect(await shown([], 'interrupted')).toBe('');
  });

  it("a verification's line counts the backup's files it read, not database objects (walk-27 F2: 'verify: 6 of 6 objects' beside 6,567)", async () => {
    expect(await shown([{ phase: 'verify', objects: 6, totalObjects: 6, done: true }])).toMatch(/^verify: 6 of 6 backup files, .*\(done\)\n$/);
  });

  it('Ctrl-C in the middle of a restore: the command says how far it had got before what to do', async () => {
    // a database of 1,500 objects: its restore into file:// takes seconds, Ctrl-C comes at its first progress line
    const from = `file://${path.join(work, 'many')}`;
    const db = await openDb(from);
    const notes = await db.createResource({ name: 'notes', attributes: { text: 'string' } });
    for (let i = 0; i < 1500; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => notes.insert({ id: `n${i + j}`, text: `note ${i + j}` })));
    await db.disconnect();
    const dest = path.join(work, 'backups-many');
    const taken = await start(['backup', '--db', from, '--directory', dest, '--json']).done;
    expect(taken.code, taken.stderr).toBe(0);
    const id = (JSON.parse(taken.stdout) as { id: string }).id;
    const run = start(['restore', id, '--directory', dest, '--into', `file://${path.join(work, 'many-restored')}`, '--yes', '--no-verify']);
    while (!/^restore: /m.test(run.stderr())) await new Promise((r) => setTimeout(r, 10));
    run.child.kill('SIGINT');
    const ended = await run.done;
    expect(ended.code).toBe(130);
    expect(ended.stderr).toMatch(/restore: at least [\d,]+ of 1,50\d objects done when interrupted\n\nrestore interrupted: the database may be partly restored/);
    expect(ended.stderr).toContain('remove the *.tmp.* files'); // the target is a file:// database
  }, 120_000);

  it('a quiet spell gets its own line, saying how long and what may cause it, and the work going on again is said at once (not held back as the every-10-s lines are)', async () => {
    const out = await shown([{ objects: 1 }, { objects: 1, idleMs: 60_000 }, { objects: 2 }]);
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^restore: 1 of 1,551 objects/);
    expect(lines[1]).toBe('restore: no object done for 1m00s (1 of 1,551 so far): a large object, or a store (the database or the backup destination) slow to answer or not answering; it goes on, or ends in an error naming what failed');
    expect(lines[2]).toMatch(/^restore: 2 of 1,551 objects/); // work going on again is said at once
    expect(lines).toHaveLength(3);
  });
});
