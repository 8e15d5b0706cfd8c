/**
 * Whether a destination lies inside a database's own keys, or the database inside it. Backups
 * written there would be listed as the database's objects (each backup storing every earlier one),
 * and a whole-database restore, which deletes the objects the backup lacks, would delete the
 * backups. Compared: an S3 destination's bucket and prefix against an S3 database's bucket and key
 * prefix; a filesystem destination's directory against a file:// database's directory. Anything
 * else (memory://, different kinds) cannot overlap.
 */
import * as path from 'node:path';
import type { Manifest } from '../engine/manifest.js';
import { keyFolder } from '../engine/s3db.js';
import { FilesystemDestination } from './filesystem.js';
import { S3Destination } from './s3.js';
import type { Destination } from './types.js';

const LOCAL_CLIENTS = new Set(['MemoryClient', 'FileSystemClient']);

/** How `member` and the database of `source` overlap (for a message), or null when they do not. */
export function overlapWithDatabase(member: Destination, source: Manifest['source']): string | null {
  if (member instanceof S3Destination && !LOCAL_CLIENTS.has(source.client) && source.bucket === member.bucket) {
    const db = folder(keyFolder(source.keyPrefix ?? ''));
    const backups = folder(member.prefix);
    if (backups.startsWith(db) || db.startsWith(backups)) {
      return `${member.label} lies ${backups.startsWith(db) ? 'inside' : 'around'} the database's keys (bucket ${source.bucket}, prefix '${db}')`;
    }
  }
  if (member instanceof FilesystemDestination && source.path !== undefined) {
    const db = path.resolve(source.path);
    const inside = (dir: string, of: string) => dir === of || dir.startsWith(of.endsWith(path.sep) ? of : of + path.sep);
    if (inside(member.root, db) || inside(db, member.root)) {
      return `${member.label} lies ${inside(member.root, db) ? 'inside' : 'around'} the database's directory ${db}`;
    }
  }
  return null;
}

/** A key prefix as a folder: '' (the bucket's root) or ending in one '/'. */
function folder(prefix: string): string {
  const trimmed = prefix.replace(/^\/+/, '').replace(/\/+$/, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}
