/**
 * Backups edited by hand, as damage, a bad copy or an earlier build's defect could leave them:
 * an uncompressed, unencrypted backup's index (plain JSON lines), part or manifest rewritten, with the
 * manifest's size, checksum and entry count to match, so that every object still verifies on its
 * own; an index rotted in place (same size, so only reading it finds it). And the small users
 * database the edits are made on, and a way to watch (or fail) a plugin's reads.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { ArchiveWriter, readArchive, type ArchiveRecord } from '../../src/engine/archive.js';
import type { BackupPlugin } from '../../src/index.js';
import { openDb } from './database.js';

export type UsersApi = {
  insert(v: Record<string, unknown>): Promise<unknown>;
  update(id: string, v: Record<string, unknown>): Promise<unknown>;
  delete(id: string): Promise<unknown>;
};

/** A stored manifest as JSON (only what the edits touch is typed). */
export interface StoredManifest {
  index: { path: string; size: number; sha256: string; entries: number };
  parts: { path: string; group: string; seq: number; size: number; sha256: string; objects: number }[];
  [field: string]: unknown;
}

/** Rewrites backup `backupId`'s manifest at the file:// destination `dir` through `edit`. */
export async function editManifest(dir: string, backupId: string, edit: (manifest: StoredManifest) => void): Promise<void> {
  const manifestFile = path.join(dir, 'manifests', `${backupId}.json`);
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as StoredManifest;
  edit(manifest);
  await writeFile(manifestFile, JSON.stringify(manifest));
}

/** Rewrites the index of an uncompressed, unencrypted backup through `edit`, the manifest to match. */
export async function editIndex(dir: string, backupId: string, edit: (lines: string[]) => string[]): Promise<void> {
  const manifest = JSON.parse(await readFile(path.join(dir, 'manifests', `${backupId}.json`), 'utf8')) as StoredManifest;
  const lines = edit((await readFile(path.join(dir, manifest.index.path), 'utf8')).split('\n').filter(Boolean));
  const index = Buffer.from(`${lines.join('\n')}\n`);
  await writeFile(path.join(dir, manifest.index.path), index);
  await editManifest(dir, backupId, (m) => Object.assign(m.index, { size: index.length, sha256: createHash('sha256').update(index).digest('hex'), entries: lines.length }));
}

/**
 * Rewrites the records of an uncompressed, unencrypted backup's part `seq` of `group` through
 * `edit`, the manifest to match (size, checksum, object count).
 */
export async function editPart(dir: string, backupId: string, group: string, seq: number, edit: (records: ArchiveRecord[]) => ArchiveRecord[]): Promise<void> {
  const manifest = JSON.parse(await readFile(path.join(dir, 'manifests', `${backupId}.json`), 'utf8')) as StoredManifest;
  const part = manifest.parts.find((p) => p.group === group && p.seq === seq)!;
  const records: ArchiveRecord[] = [];
  for await (const record of readArchive(Readable.from([await readFile(path.join(dir, part.path))]), part.path)) records.push(record);
  const edited = edit(records);
  const stored = await buffer(Readable.from(edited, { objectMode: true }).pipe(new ArchiveWriter()));
  await writeFile(path.join(dir, part.path), stored);
  await editManifest(dir, backupId, (m) => Object.assign(m.parts.find((p) => p.path === part.path)!, { size: stored.length, sha256: createHash('sha256').update(stored).digest('hex'), objects: edited.length }));
}

/**
 * A memory database whose one resource, users ({ name }), holds `ids` (a count: u0, u1, ...;
 * zero-padded to two digits from 10 on, so that they sort as they count), each named by `nameOf`.
 */
export async function usersDatabase(label: string, ids: number | string[], nameOf: (id: string) => string = (id) => id.replace('u', 'n')) {
  const db = await openDb(`memory://${label}-${process.pid}/db`);
  const users = (await db.createResource({ name: 'users', attributes: { name: 'string' } })) as unknown as UsersApi;
  const list = typeof ids === 'number' ? Array.from({ length: ids }, (_, i) => `u${ids > 10 ? String(i).padStart(2, '0') : i}`) : ids;
  for (const id of list) await users.insert({ id, name: nameOf(id) });
  return { db, users };
}

/** The path of backup `id`'s index at the filesystem destination `dir`, as its manifest names it. */
export async function indexPathOf(dir: string, id: string): Promise<string> {
  return (JSON.parse(await readFile(path.join(dir, 'manifests', `${id}.json`), 'utf8')) as StoredManifest).index.path;
}

/** Bit rot in the middle of backup `id`'s stored index at `dir`, whatever its codec: one bit flipped, the size unchanged. */
export async function rotStoredIndex(dir: string, id: string): Promise<void> {
  const file = path.join(dir, await indexPathOf(dir, id));
  const bytes = await readFile(file);
  bytes[bytes.length >> 1] ^= 0x10;
  await writeFile(file, bytes);
}

/** Bit rot in an uncompressed, unencrypted backup `id`'s index at `dir`: same size, another key (u3 read as u4). */
export async function rotIndex(dir: string, id: string): Promise<void> {
  const file = path.join(dir, await indexPathOf(dir, id));
  const bytes = await readFile(file);
  bytes[bytes.indexOf('id=u3') + 4] = '4'.charCodeAt(0);
  await writeFile(file, bytes);
}

/**
 * Observes (and, where a test says so, fails) the reads `plugin`'s first destination serves:
 * `hook` gets each path and the read to make. A fault injected here is one a real destination
 * cannot produce on demand.
 */
export function onReads(plugin: BackupPlugin, hook: (at: string, read: () => Promise<unknown>) => Promise<unknown>): void {
  const destination = plugin.destinations.members[0] as unknown as { read(at: string, range?: unknown): Promise<unknown> };
  const read = destination.read.bind(destination);
  destination.read = (at, range) => hook(at, () => read(at, range));
}
