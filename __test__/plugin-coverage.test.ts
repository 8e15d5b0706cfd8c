// BackupPlugin behaviours that nothing else pinned, on the real s3db.js (memory://) and real
// filesystem destinations: the compression each option really stores (every part and the index
// decode with the matching standard decoder and with no other; s3db.js's own plugin silently
// always wrote gzip), the level reaching the stream, pathTemplate rendering of every variable,
// the default destination ./backups relative to the process's cwd (a child process), what
// includeMetadata keeps, and s3db.js's option aliases (verification, parallelism,
// encryption: { key }, schedule objects). Every backup here is restored and compared object for
// object with its source.
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin, type BackupPluginOptions, type Manifest } from '../src/index.js';
import { createDecoder } from '../src/codec/index.js';
import { resourceTickLeasePath } from '../src/policy.js';
import { hookStore, openDb, seededCopies, snapshot } from './helpers/database.js';
import { filesUnder } from './helpers/files.js';

const SMALL = { users: 5, orders: 5, perBehavior: 1 };
let work: string;
let seq = 0;
const bucket = (name: string) => `memory://cov-${name}-${process.pid}-${++seq}/db`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'plugin-coverage-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const copySeeded = seededCopies(SMALL, () => bucket('template'));
const seeded = (name: string) => copySeeded(bucket(name));

function plugin(directory: string, extra: BackupPluginOptions = {}): BackupPlugin {
  return new BackupPlugin({ schedule: false, config: { directory }, lease: { ttlMs: 5_000 }, ...extra });
}

/** Restoring backup `id` into a new, empty database gives `expected`, object for object. */
async function restoresExactly(p: BackupPlugin, id: string, expected: Awaited<ReturnType<typeof snapshot>>): Promise<void> {
  const target = await openDb(bucket('restore'));
  await p.restore({ backupId: id, destination: target });
  expect(await snapshot(target)).toEqual(expected);
}

type Decoding = 'gzip' | 'deflate' | 'brotli' | 'zstd' | 'none';
const hasZstdCli = spawnSync('zstd', ['--version']).status === 0;

async function zstdWithCodec(stored: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(Readable.from([stored]), createDecoder({ compression: 'zstd' }), new Writable({ write: (c: Buffer, _e, cb) => void (chunks.push(c), cb()) }));
  return Buffer.concat(chunks);
}

/** The standard decoder of each format (FORMAT.md 2.1); zstd by the zstd CLI when installed. */
const decoders: Record<Decoding, (b: Buffer) => Buffer | Promise<Buffer>> = {
  gzip: (b) => gunzipSync(b),
  deflate: (b) => inflateSync(b),
  brotli: (b) => brotliDecompressSync(b),
  zstd: (b) => {
    // the zstd CLI also decodes gzip (built with zlib), so the RFC 8878 frame magic is checked first
    if (b.length < 4 || b.readUInt32LE(0) !== 0xfd2fb528) throw new Error('not a zstd frame');
    if (!hasZstdCli) return zstdWithCodec(b);
    const r = spawnSync('zstd', ['-d', '-c', '-q'], { input: b, maxBuffer: 256 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`zstd -d: ${r.stderr.toString()}`);
    return r.stdout;
  },
  none: (b) => b,
};

/** True when `decoding` turns `stored` into plaintext that starts as expected (decoders may throw or return garbage). */
async function decodesAs(decoding: Decoding, stored: Buffer, prefix: string): Promise<boolean> {
  try {
    const plain = await decoders[decoding](stored);
    return plain.subarray(0, prefix.length).toString('latin1') === prefix;
  } catch {
    return false;
  }
}

describe('compression: what the plugin really stores', () => {
  const cases: { option: BackupPluginOptions['compression']; level?: number; stored: Decoding; header?: (first: Buffer) => void }[] = [
    // gzip XFL (byte 8) is 4 at level 1 and 2 at level 9; zlib's FLEVEL (bits 6-7 of byte 1) 0 at level 1, 3 at 7-9
    { option: 'gzip', level: 1, stored: 'gzip', header: (b) => expect(b[8]).toBe(4) },
    { option: 'gzip', level: 9, stored: 'gzip', header: (b) => expect(b[8]).toBe(2) },
    { option: 'deflate', level: 1, stored: 'deflate', header: (b) => expect(b[1]! >> 6).toBe(0) },
    { option: 'deflate', level: 9, stored: 'deflate', header: (b) => expect(b[1]! >> 6).toBe(3) },
    { option: 'brotli', level: 9, stored: 'brotli' },
    { option: 'zstd', level: 19, stored: 'zstd' },
    { option: 'none', stored: 'none' },
    { option: false, stored: 'none' },
  ];
  for (const c of cases) {
    it(`compression: ${JSON.stringify(c.option)}${c.level === undefined ? '' : `, level ${c.level}`} stores ${c.stored}, decodable by its standard decoder only, and restores`, async () => {
      const dir = path.join(work, `codec-${String(c.option)}-${c.level ?? 'default'}`);
      const db = await seeded(`codec-${String(c.option)}`);
      const p = plugin(dir, { compression: c.option, ...(c.level === undefined ? {} : { level: c.level }) });
      await db.usePlugin(p);
      const before = await snapshot(db);
      const backup = await p.createBackup();
      expect(backup.compression).toBe(c.stored);
      expect(backup.encrypted).toBe(false);
      const manifest = (await p.getBackup(backup.id))!.manifest;
      expect(manifest.codec).toMatchObject({ compression: c.stored, encrypted: false, level: c.level ?? null });
      expect(manifest.parts.length).toBeGreaterThan(1);
      const stored: [string, string][] = [...manifest.parts.map((part) => [part.path, 'S3DBARC1'] as [string, string]), [manifest.index.path, '{"k":']];
      for (const [rel, prefix] of stored) {
        const bytes = await readFile(path.join(dir, rel));
        for (const decoding of Object.keys(decoders) as Decoding[]) {
          expect(await decodesAs(decoding, bytes, prefix), `${rel} decoded as ${decoding}`).toBe(decoding === c.stored);
        }
        c.header?.(bytes);
      }
      await restoresExactly(p, backup.id, before);
      await p.stop();
    });
  }
});

/** The template rendered from the manifest, independently of src/engine/layout.ts. */
function render(template: string, m: Manifest, group: string): string {
  const iso = m.startedAt;
  const values: Record<string, string> = {
    timestamp: iso.replace(/[-:.]/g, ''),
    year: iso.slice(0, 4),
    month: iso.slice(5, 7),
    day: iso.slice(8, 10),
    hour: iso.slice(11, 13),
    resource: group,
    type: m.type,
    id: m.id,
  };
  return template.replace(/\{([a-z]+)\}/g, (_, v: string) => values[v]!);
}

describe('pathTemplate', () => {
  const templates: [string, BackupPluginOptions][] = [
    ['every variable, top level', { pathTemplate: '{type}/{year}/{month}/{day}/h{hour}/{timestamp}_{id}/{resource}' }],
    ["the seed story's, in the destination config", { config: { pathTemplate: '{year}/{month}/{resource}-{timestamp}.backup.gz' } }],
  ];
  for (const [i, [what, option]] of templates.entries()) {
    it(`${what}: parts and the manifest copy land at the rendered paths, nowhere else, and restore`, async () => {
      const dir = path.join(work, `template-${i}`);
      const template = (option.pathTemplate ?? option.config?.pathTemplate) as string;
      const db = await seeded('template');
      const p = plugin(dir, { ...option, config: { directory: dir, ...(option.config ?? {}) } });
      await db.usePlugin(p);
      const before = await snapshot(db);
      const backup = await p.createBackup();
      const manifest = (await p.getBackup(backup.id))!.manifest;
      expect(manifest.startedAt).toBe(backup.timestamp);
      const expected = manifest.parts.map((part) => `data/${render(template, manifest, part.group)}.${String(part.seq).padStart(6, '0')}`);
      expect(manifest.parts.map((part) => part.path)).toEqual(expected);
      expect(new Set(manifest.parts.map((part) => part.group))).toEqual(new Set(['_database', ...Object.keys(db.resources)]));
      // the rendered values themselves: `{timestamp}` is ISO basic, the id is in the path when asked for
      expect(expected[0]).toContain(manifest.startedAt.replace(/[-:.]/g, ''));
      expect(manifest.startedAt.replace(/[-:.]/g, '')).toMatch(/^\d{8}T\d{9}Z$/);
      if (template.includes('{id}')) expect(expected.every((e) => e.includes(`_${backup.id}/`))).toBe(true);
      // ... and the manifest's copy, rendered with {resource} = manifest
      const copy = `data/${render(template, manifest, 'manifest')}.json`;
      expect(manifest.copy).toBe(copy);
      expect((await filesUnder(dir)).filter((f) => f.startsWith('data/'))).toEqual([...expected, copy].sort());
      await restoresExactly(p, backup.id, before);
      await p.stop();
    });
  }
});

describe('paths and names (review-paths)', () => {
  it('a template a destination could not store or would mistake for its own files is refused at construction (review-paths P3, P4, P4b)', () => {
    for (const pathTemplate of ['a\\b/{id}', 'a\u0001b/{id}', '{id}/\ufffe', '{id}/x\ud800', '.s3db-backup-tmp-x/{id}', '{id}/.s3db-backup-tmp-{resource}', '{id}.cas/{resource}']) {
      expect(() => new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'refused') }, pathTemplate }), pathTemplate).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining('"pathTemplate"') }));
    }
    expect(() => new BackupPlugin({ schedule: false, driver: 's3', config: { bucketName: 'my-backups', prefix: 'bk\u0001/' } })).toThrow(expect.objectContaining({ message: expect.stringContaining('"config.prefix"') }));
  });

  it('a template with a segment too long for a file name once rendered is refused at construction, naming the segment; one at the limit backs up its longest names to a filesystem destination and restores (walk-29 F-B: every backup failed as an I/O fault, retried)', async () => {
    expect(() => new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'refused') }, pathTemplate: '{date}/{id}' })).toThrow(/unknown variable \{date\}.*\{date\} is s3db\.js's config\.path variable: write \{year\}-\{month\}-\{day\}/);
    const refused = ['x'.repeat(256) + '/{id}', '{id}/' + '\u00e9'.repeat(128), '{id}/' + 'n'.repeat(81) + '-{resource}', '{id}/{resource}-' + 'z'.repeat(200)];
    for (const pathTemplate of refused) {
      expect(() => new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'refused') }, pathTemplate }), pathTemplate.slice(0, 20)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringMatching(/"pathTemplate".*its segment ".*" can be \d+ bytes once rendered, more than a filesystem destination takes for (a folder name|the file name of a part)/) }),
      );
    }
    // the last segment at its limit: 79 bytes, a dash and a resource name cut to 120 are 200
    const dir = path.join(work, 'template-at-limit');
    const db = await openDb(bucket('template-at-limit'));
    const name = `r${'y'.repeat(239)}`;
    await (await db.createResource({ name, attributes: { v: 'string' } })).insert({ id: 'a', v: 'long' });
    const p = plugin(dir, { pathTemplate: `${'f'.repeat(255)}/{id}/${'n'.repeat(79)}-{resource}` });
    await db.usePlugin(p);
    const before = await snapshot(db);
    const backup = await p.createBackup();
    const part = (await p.getBackup(backup.id))!.manifest.parts.find((x) => x.group === name)!;
    expect(Buffer.byteLength(path.posix.basename(part.path))).toBe(200 + '.000001'.length);
    await restoresExactly(p, backup.id, before);
    await p.stop();
  });

  it('a resource name of 240 characters (s3db.js takes up to 246 on file://) backs up to a filesystem destination and restores; its part name is cut, with a hash of the whole', async () => {
    const dir = path.join(work, 'long-name');
    const db = await openDb(bucket('long-name'));
    const name = `r${'x'.repeat(239)}`;
    await (await db.createResource({ name, attributes: { v: 'string' } })).insert({ id: 'a', v: 'long' });
    const p = plugin(dir);
    await db.usePlugin(p);
    const before = await snapshot(db);
    const backup = await p.createBackup();
    const part = (await p.getBackup(backup.id))!.manifest.parts.find((x) => x.group === name)!;
    expect(path.posix.basename(part.path).length).toBeLessThan(140);
    await restoresExactly(p, backup.id, before);
    await p.stop();
  });

  it("a per-resource schedule's tick lease has a short file name however many and long its resources' names, and one of its own for a resource named 'a,b' beside resources 'a' and 'b' (review-paths P5)", () => {
    const many = Array.from({ length: 12 }, (_, i) => `customer_records_partition_${String(i).padStart(2, '0')}`);
    expect(path.posix.basename(resourceTickLeasePath(many)).length).toBeLessThan(120);
    expect(resourceTickLeasePath(['a,b'])).not.toBe(resourceTickLeasePath(['a', 'b']));
    // the names earlier versions gave, where short and unambiguous: an instance not upgraded takes the same lease
    expect(resourceTickLeasePath(['users'])).toBe('locks/tick-resources-users.lease');
    expect(resourceTickLeasePath(['a.b'])).toBe(`locks/tick-resources-a_b-${createHash('sha256').update('a.b').digest('hex').slice(0, 8)}.lease`);
    expect(resourceTickLeasePath(['a', 'b'])).toBe(`locks/tick-resources-a_b-${createHash('sha256').update('a,b').digest('hex').slice(0, 8)}.lease`);
  });

  it("a database nested inside another's keys (its s3db.json under the outer prefix) is named in a warning when the outer one is backed up: a whole restore of the outer one would revert it", async () => {
    const name = `nested-${process.pid}-${++seq}`;
    const outer = await openDb(`memory://${name}/app`);
    await (await outer.createResource({ name: 'users', attributes: { v: 'string' } })).insert({ id: 'o1', v: 'outer' });
    const inner = await openDb(`memory://${name}/app/tenant`);
    await (await inner.createResource({ name: 'users', attributes: { v: 'string' } })).insert({ id: 'i1', v: 'inner' });
    const warnings: string[] = [];
    const p = plugin(path.join(work, 'nested'), { logger: { warn: (_o: unknown, m: string) => void warnings.push(m), info() {}, error() {} } });
    await outer.usePlugin(p);
    await p.createBackup();
    expect(warnings).toContainEqual(expect.stringMatching(/another s3db\.js database or s3db-backup destination lives inside this database's keys \("tenant\/"\)/));
    await p.stop();
  });

  it('a leftover marker that cannot be processed (a path the destination refuses) is told and passed over: the next crash leftovers there are still cleaned', async () => {
    const dir = path.join(work, 'poisoned');
    const db = await seeded('poisoned');
    const warnings: string[] = [];
    const p = plugin(dir, { staleAfterMs: 1, logger: { warn: (_o: unknown, m: string) => void warnings.push(m), info() {}, error() {} } });
    await db.usePlugin(p);
    await p.createBackup();
    // as a crash of an older version, whose template held a backslash, and a later crash, left them
    const marker = (id: string, parts: string[]) => JSON.stringify({ id, type: 'full', startedAt: new Date(0).toISOString(), heartbeatAt: new Date(0).toISOString(), host: 'gone', pid: 1, parts });
    await mkdir(path.join(dir, 'pending'), { recursive: true });
    await writeFile(path.join(dir, 'pending', 'full-19700101T000000000Z-000001.json'), marker('full-19700101T000000000Z-000001', ['data/a\\b/users.000001']));
    const leftover = 'data/1970/01/01/full-19700101T000000000Z-000002/users.000001';
    await mkdir(path.dirname(path.join(dir, leftover)), { recursive: true });
    await writeFile(path.join(dir, leftover), 'part of a backup that died');
    await writeFile(path.join(dir, 'pending', 'full-19700101T000000000Z-000002.json'), marker('full-19700101T000000000Z-000002', [leftover]));
    await p.createBackup();
    const files = await filesUnder(dir);
    expect(files).not.toContain(leftover);
    expect(files).not.toContain('pending/full-19700101T000000000Z-000002.json');
    expect(warnings).toContainEqual(expect.stringContaining('could not clean up the leftovers of backup full-19700101T000000000Z-000001'));
    await p.stop();
  });
});

const run = promisify(execFile);

describe('defaults and includeMetadata', () => {
  it('new BackupPlugin() with no options writes to ./backups of the process cwd (child process)', async () => {
    const cwd = await mkdtemp(path.join(work, 'cwd-'));
    const script = path.join(cwd, 'default-destination.mts');
    await writeFile(
      script,
      `import { BackupPlugin } from ${JSON.stringify(pathToFileURL(path.resolve('src/index.ts')).href)};
       import { openDb } from ${JSON.stringify(pathToFileURL(path.resolve('__test__/helpers/database.ts')).href)};
       const db = await openDb(${JSON.stringify(bucket('default-dest'))});
       const users = await db.createResource({ name: 'users', attributes: { name: 'string' } });
       await users.insert({ id: 'a', name: 'Ada' });
       const plugin = new BackupPlugin();
       await db.usePlugin(plugin);
       const b = await plugin.createBackup();
       process.stdout.write(JSON.stringify({ id: b.id, label: plugin.destinations.label, cwd: process.cwd() }));
       await plugin.stop();
       process.exit(0);`,
    );
    const tsx = pathToFileURL(path.resolve('node_modules/tsx/dist/loader.mjs')).href;
    const { stdout } = await run(process.execPath, ['--import', tsx, script], { cwd, timeout: 90_000 }).catch((err: { stderr?: string }) => {
      throw new Error(`child failed: ${err.stderr ?? String(err)}`);
    });
    const out = JSON.parse(stdout) as { id: string; label: string; cwd: string };
    expect(out.label).toBe(`filesystem:${path.join(cwd, 'backups')}`);
    const stored = await filesUnder(path.join(cwd, 'backups'));
    expect(stored).toContain(`manifests/${out.id}.json`);
    expect(stored.some((f) => f.startsWith('data/') && f.includes(out.id))).toBe(true);
    const manifest = JSON.parse(await readFile(path.join(cwd, 'backups', 'manifests', `${out.id}.json`), 'utf8')) as Manifest;
    expect(manifest.codec.compression).toBe('gzip'); // the documented default
    expect(manifest.verification?.verified).toBe(true);
    expect(await filesUnder(path.resolve('backups'))).not.toContain(`manifests/${out.id}.json`); // not the test runner's cwd
  });

  for (const includeMetadata of [false, true]) {
    it(`includeMetadata: ${includeMetadata} ${includeMetadata ? 'keeps' : 'leaves out'} plugin state (plugin=...), s3db.json always kept`, async () => {
      const dir = path.join(work, `meta-${includeMetadata}`);
      const db = await seeded(`meta-${includeMetadata}`);
      const p = plugin(dir, { includeMetadata });
      await db.usePlugin(p);
      const before = await snapshot(db);
      expect(before.filter((o) => o.key.startsWith('plugin=')).length).toBe(2);
      const backup = await p.createBackup();
      const manifest = (await p.getBackup(backup.id))!.manifest;
      expect(manifest.selection.includeMetadata).toBe(includeMetadata);
      expect(manifest.resources._database!.objects).toBe(includeMetadata ? 3 : 1);
      const target = await openDb(bucket('meta-dst'));
      await p.restore({ backupId: backup.id, destination: target });
      const expected = includeMetadata ? before : before.filter((o) => !o.key.startsWith('plugin='));
      expect(await snapshot(target)).toEqual(expected);
      expect((await snapshot(target)).some((o) => o.key === 's3db.json')).toBe(true);
      // A whole-database replace over the live database: plugin state the backup left out is not
      // the backup's to delete; with includeMetadata it is put back exactly.
      const report = await p.restore({ backupId: backup.id, mode: 'replace' });
      expect(report.objectsDeleted).toBe(0);
      expect(await snapshot(db)).toEqual(before);
      await p.stop();
    });
  }
});

describe("s3db.js's option aliases", () => {
  it('verification: false commits unverified; verification: true verifies fully', async () => {
    const db = await seeded('verification');
    for (const verification of [false, true]) {
      const p = plugin(path.join(work, `verification-${verification}`), { verification });
      await db.usePlugin(p, `backup${String(verification)}`);
      const b = await p.createBackup();
      expect(b.verified).toBe(verification);
      const m = (await p.getBackup(b.id))!.manifest;
      if (verification) expect(m.verification).toMatchObject({ verified: true, level: 'full' });
      else expect(m.verification).toBeNull();
      await p.stop();
    }
  });

  it('parallelism: 3 bounds the objects read at once to 3', async () => {
    const db = await seeded('parallelism');
    const p = plugin(path.join(work, 'parallelism'), { parallelism: 3 });
    await db.usePlugin(p);
    // A pass-through spy on the real store (every call reaches s3db.js's storage) that counts reads
    // in flight; it holds each read 10 ms first, as a remote store would, so reads can overlap at all.
    let inFlight = 0;
    let most = 0;
    const unhook = hookStore(db, {
      get: async (_key, read) => {
        most = Math.max(most, ++inFlight);
        try {
          await sleep(10);
          return await read();
        } finally {
          inFlight--;
        }
      },
    });
    const before = await snapshot(db);
    most = 0;
    const b = await p.createBackup();
    expect(b.objects).toBeGreaterThan(10);
    expect(most).toBe(3); // the default (64 on memory://) would read all of them at once
    unhook();
    await restoresExactly(p, b.id, before);
    await p.stop();
  });

  it('encryption: { key } is the passphrase: encrypted parts, restorable with { passphrase } of the same value', async () => {
    const KEY = 's3db-style-key-value-9f8e7d';
    const dir = path.join(work, 'enc-key');
    const db = await seeded('enc-key');
    const p = plugin(dir, { encryption: { key: KEY, iterations: 100_000 } });
    await db.usePlugin(p);
    const before = await snapshot(db);
    const b = await p.createBackup();
    expect(b.encrypted).toBe(true);
    expect(JSON.stringify(p.options)).not.toContain(KEY);
    const m = (await p.getBackup(b.id))!.manifest;
    expect(m.encryption?.keyFile).toBeTruthy();
    const part = await readFile(path.join(dir, m.parts[0]!.path));
    expect(part.subarray(0, 8).toString('latin1')).toBe('S3DBBKUP');
    expect(await decodesAs('gzip', part, 'S3DBARC1')).toBe(false);
    await p.stop();
    const byPassphrase = plugin(dir, { encryption: { passphrase: KEY } });
    await restoresExactly(byPassphrase, b.id, before);
    const wrong = plugin(dir, { encryption: { passphrase: `${KEY}-not` } });
    await expect(wrong.restore({ backupId: b.id, destination: await openDb(bucket('enc-wrong')) })).rejects.toMatchObject({ code: 'ERR_WRONG_PASSPHRASE' });
  });

  // nextRuns(): when each schedule fires next (empty with no timer).
  const nextRuns = (p: BackupPlugin) => p.nextRuns();

  it('schedule: {} means no timer (s3db.js ignored it); { cron, enabled: false } too; the default is daily', async () => {
    const db = await seeded('sched-off');
    for (const schedule of [{}, { cron: '* * * * * *', enabled: false }]) {
      const p = new BackupPlugin({ schedule, config: { directory: path.join(work, 'sched-off') } });
      expect(p.config.schedule).toBe(false);
      await db.usePlugin(p, `off${seq++}`);
      await p.start();
      expect(nextRuns(p)).toEqual([]);
      await p.stop();
    }
    const daily = new BackupPlugin({ config: { directory: path.join(work, 'sched-off') } });
    await db.usePlugin(daily, 'daily');
    await daily.start();
    const runs = nextRuns(daily);
    expect(runs).toHaveLength(1);
    expect(runs[0]!.at!.toISOString()).toMatch(/T00:00:00\.000Z$/);
    await daily.stop();
  });

  for (const [what, schedule, expected] of [
    ['{ cron } (with seconds)', { cron: '* * * * * *' }, '* * * * * *'],
    ['{ interval }', { interval: 1000 }, 1000],
  ] as const) {
    it(`schedule: ${what} sets the timer: the next run is within a second and a scheduled backup happens`, async () => {
      const dir = path.join(work, `sched-${String(expected).replace(/\W/g, '')}`);
      const db = await seeded('sched-on');
      const p = plugin(dir, { schedule });
      expect(p.config.schedule).toBe(expected);
      const done: string[] = [];
      p.on('plg:backup:complete', (e: { id: string }) => done.push(e.id));
      await db.usePlugin(p);
      const runs = nextRuns(p);
      expect(runs).toHaveLength(1);
      const wait = runs[0]!.at!.getTime() - Date.now();
      expect(wait).toBeLessThanOrEqual(1000);
      expect(runs[0]!.at!.getTime() % 1000).toBe(0);
      const deadline = Date.now() + 15_000;
      while (done.length === 0 && Date.now() < deadline) await sleep(50);
      await p.stop();
      expect(done.length).toBeGreaterThanOrEqual(1);
      const m = (await p.getBackup(done[0]!))!.manifest;
      expect(m.trigger).toMatchObject({ event: 'schedule', payload: { schedule: 'main' } });
    }, 30_000);
  }
});
