// Records written while a backup reads them are in it in their old or their new version, never a
// mix (README "Writes during a backup"). On file://, s3db.js's storage reads an object's metadata
// file and then its body file, while a write renames the body into place first: a read between
// the two got the old metadata with the new body (review-consistency F1). Real s3db.js, a real
// file:// database, real concurrent writers; each backup is restored and every record checked.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackupPlugin } from '../src/index.js';
import { openDb } from './helpers/database.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'writes-during-backup-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

type Notes = { update(id: string, v: object): Promise<unknown>; insert(v: object): Promise<unknown>; get(id: string): Promise<{ v: number; payload: string }> };
/** Larger than the metadata limit: body-overflow puts it in the body, `v` stays in the metadata. */
const payloadOf = (v: number) => `v${v}:`.repeat(400);

describe('a file:// database written to while it is backed up', () => {
  it('every record of every backup restores as one version (its v and its payload from the same write)', async () => {
    const db = await openDb(`file://${path.join(work, 'db')}`);
    const notes = (await db.createResource({ name: 'notes', behavior: 'body-overflow', attributes: { v: 'number', payload: 'string' } })) as unknown as Notes;
    const ids = Array.from({ length: 30 }, (_, i) => `n${String(i).padStart(3, '0')}`);
    for (const id of ids) await notes.insert({ id, v: 0, payload: payloadOf(0) });
    const p = new BackupPlugin({ schedule: false, config: { directory: path.join(work, 'backups') }, concurrency: 8 });
    await db.usePlugin(p);
    let writing = true;
    let v = 0;
    const writer = async () => {
      while (writing) {
        const n = ++v;
        await notes.update(ids[n % ids.length]!, { v: n, payload: payloadOf(n) });
      }
    };
    const writers = [writer(), writer(), writer()];
    const backups: string[] = [];
    try {
      for (let i = 0; i < 6; i++) backups.push((await p.createBackup()).id);
    } finally {
      writing = false;
      await Promise.all(writers);
    }
    const mixed: string[] = [];
    for (const id of backups) {
      const into = await openDb(`memory://writes-during-backup-${process.pid}-${id}/db`);
      await p.restore({ backupId: id, destination: into });
      const restored = into.resources.notes as unknown as Notes;
      for (const note of ids) {
        const r = await restored.get(note);
        if (r.payload !== payloadOf(r.v)) mixed.push(`${id} ${note}: v=${r.v}, payload of ${r.payload.slice(0, r.payload.indexOf(':'))}`);
      }
    }
    expect(v).toBeGreaterThan(100); // the writers did write during the backups
    expect(mixed).toEqual([]);
    await p.stop();
  }, 120_000);
});
