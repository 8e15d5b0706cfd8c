// Backups written by release 0.1.0 restore with this version, object for object. The fixture
// (__test__/fixtures/backups-0.1.0, its README says how it was made) was written by 0.1.0's own
// native core from a real file:// s3db.js 21.6.2 database: a gzip full and an incremental on it,
// encrypted with a passphrase, and a plain brotli full; expected.json holds the exact objects each
// must restore. Also: what this version does on top of such a chain (its next backup is a full:
// 0.1.0 left headers stored as "undefined" out), and what `recoverBackups()` says of a 0.1.0
// backup whose manifest is lost (0.1.0 kept no copy of it to put back).
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import { openDb, snapshot, type ObjectSnapshot } from './helpers/database.js';
import { warnInto } from './helpers/logger.js';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'backups-0.1.0');

interface Expected {
  passphrase: string;
  backups: Record<string, { destination: string; type: string; chain: string[]; objects: { key: string; contentType: string | null; metadata: Record<string, string>; body: string }[] }>;
}

let work: string;
let expected: Expected;
let seq = 0;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'compat-010-'));
  expected = JSON.parse(await readFile(path.join(FIXTURE, 'expected.json'), 'utf8')) as Expected;
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A copy of one of the fixture's destinations (this version records verifications there). */
async function destinationCopy(name: string): Promise<string> {
  const dir = path.join(work, `${name}-${++seq}`);
  await cp(path.join(FIXTURE, name), dir, { recursive: true });
  return dir;
}

function pluginFor(directory: string, warnings: string[] = []): BackupPlugin {
  const encrypted = directory.includes('gzip-enc');
  return new BackupPlugin({ schedule: false, config: { directory }, logger: warnInto(warnings), ...(encrypted ? { encryption: { passphrase: expected.passphrase } } : {}) });
}

function asSnapshot(o: Expected['backups'][string]['objects'][number]): ObjectSnapshot {
  const body = Buffer.from(o.body, 'base64');
  return { key: o.key, metadata: Object.fromEntries(Object.entries(o.metadata).sort(([a], [b]) => (a < b ? -1 : 1))), contentType: o.contentType, size: body.length, sha256: createHash('sha256').update(body).digest('hex') };
}

describe('backups written by s3db-backup 0.1.0', () => {
  it('are listed, verify, and restore (a whole chain too) exactly into an empty database', async () => {
    const ids = Object.keys(expected.backups);
    expect(ids).toHaveLength(3);
    for (const id of ids) {
      const want = expected.backups[id]!;
      const host = await openDb(`memory://compat-host-${process.pid}-${++seq}/db`);
      const p = pluginFor(await destinationCopy(want.destination));
      await host.usePlugin(p);
      expect((await p.listBackups()).map((b) => b.id)).toContain(id);
      expect((await p.verifyBackup(id, { level: 'full' })).verified).toBe(true);
      const into = await openDb(`file://${path.join(work, `restored-${++seq}`)}`);
      const report = await p.restore({ backupId: id, destination: into });
      expect(report.chain).toEqual(want.chain);
      expect(await snapshot(into)).toEqual(want.objects.map(asSnapshot));
      await p.stop();
      await into.disconnect();
      await host.disconnect();
    }
  }, 120_000);

  it("this version's next backup on a 0.1.0 chain is a full, said in a warning (0.1.0 left headers stored as \"undefined\" out of its backups)", async () => {
    // 0.1.0's manifests record no database directory, so any file:// database with its bucket and
    // prefix is their source: an incremental would be built on them
    const db = await openDb(`file://${path.join(work, `next-${++seq}`)}`);
    await db.createResource({ name: 'notes', attributes: { text: 'string', tag: 'string|optional' } });
    await (db.resources.notes as unknown as { insert(v: object): Promise<unknown> }).insert({ id: 'n1', text: 'no tag' });
    const warnings: string[] = [];
    const p = pluginFor(await destinationCopy('gzip-enc'), warnings);
    await db.usePlugin(p);
    const next = await p.createBackup({ type: 'incremental' });
    expect(next.type).toBe('full');
    expect(warnings).toContainEqual(expect.stringMatching(/the next backup is a full one: .*written by an s3db-backup older than 0\.2, which left headers stored as "undefined"/));
    expect((await p.createBackup({ type: 'incremental' })).type).toBe('incremental'); // on this version's full
    await p.stop();
    await db.disconnect();
  }, 60_000);

  it('recoverBackups() says a lost 0.1.0 manifest cannot be put back (0.1.0 kept no copy), instead of reporting nothing to do', async () => {
    const dir = await destinationCopy('gzip-enc');
    const [full, incremental] = expected.backups[Object.keys(expected.backups).find((id) => expected.backups[id]!.type === 'incremental')!]!.chain;
    await rm(path.join(dir, 'manifests', `${incremental}.json`));
    const host = await openDb(`memory://compat-recover-${process.pid}-${++seq}/db`);
    const p = pluginFor(dir);
    await host.usePlugin(p);
    const report = await p.recoverBackups();
    expect(report.recovered).toEqual([]);
    expect(report.skipped).toEqual([
      expect.objectContaining({ id: incremental, path: `manifests/${incremental}.json`, lost: 'everywhere', reason: expect.stringContaining('no copy of it is beside the backup\'s parts (lost with it, or never written: s3db-backup 0.1.0 wrote none), so it cannot be put back') }),
    ]);
    expect((await p.listBackups()).map((b) => b.id)).toEqual([full]);
    await p.stop();
    await host.disconnect();
  }, 60_000);
});
