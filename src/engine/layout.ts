/**
 * Where a backup's objects live at a destination (docs/FORMAT.md section 1), backup ids, and the
 * path template.
 *
 *   manifests/<id>.json        the manifest: the commit point (a backup exists iff it exists)
 *   indexes/<id>.index         codec stream of the sorted object index (JSON lines)
 *   indexes/<id>.rebuilt.json  names the index recoverBackups() rebuilt when that one was lost
 *   pending/<id>.json          written when a backup starts, removed when it commits or fails
 *   verifications/<id>.json    result of the latest on-demand verification
 *   key.json                   key file (encrypted backups; FORMAT.md 2.6)
 *   locks/backup.lease         fleet-wide lease
 *   data/<template>.<NNNNNN>   parts; NNNNNN numbers the parts of one backup, so paths never collide
 *   data/<template>.json       copy of the manifest, {resource} = "manifest" (recoverBackups() reads
 *                              it when manifests/ is lost); `.json` never collides with a part's suffix
 *
 * Invariants: every path is relative, '/'-separated and free of '..' segments; template values are
 * sanitised so a resource name can never add a segment; timestamps are UTC.
 */
import { createHash, randomBytes } from 'node:crypto';
import { GUARD_SUFFIX, TEMP_PREFIX } from '../destinations/filesystem.js';
import { optionError } from '../errors.js';

export const DEFAULT_PATH_TEMPLATE = '{year}/{month}/{day}/{id}/{resource}';
/** Group name used in paths and reports for objects outside any resource (s3db.json, plugin state). */
export const DATABASE_GROUP = '_database';
/** The {resource} value of the manifest copy's path. */
const MANIFEST_COPY_GROUP = 'manifest';
const TEMPLATE_VARS = ['timestamp', 'year', 'month', 'day', 'hour', 'resource', 'type', 'id'] as const;

export const paths = {
  manifest: (id: string) => `manifests/${id}.json`,
  manifestsPrefix: 'manifests/',
  index: (id: string) => `indexes/${id}.index`,
  /** Prefix of every file of backup `id` under indexes/: its index, a rebuilt one and its reference. */
  indexFiles: (id: string) => `indexes/${id}.`,
  /** Names the index rebuilt after the manifest's was lost (index-repair.ts; FORMAT.md 4.1). */
  indexRef: (id: string) => `indexes/${id}.rebuilt.json`,
  /** A rebuilt index: a new name per rebuild, so a rebuild never writes over the index in use. */
  rebuiltIndex: (id: string, at: Date) => `indexes/${id}.rebuilt-${compactTimestamp(at)}.index`,
  pending: (id: string) => `pending/${id}.json`,
  pendingPrefix: 'pending/',
  dataPrefix: 'data/',
  verification: (id: string) => `verifications/${id}.json`,
  verificationsPrefix: 'verifications/',
  keyFile: 'key.json',
  lease: 'locks/backup.lease',
};

/** Sortable, unique backup id: `<type>-<YYYYMMDDTHHMMSSmmmZ>-<6 hex>`. */
export function newBackupId(type: string, at: Date): string {
  return `${type}-${compactTimestamp(at)}-${randomBytes(3).toString('hex')}`;
}

/**
 * True for an id shaped like those of the BackupPlugin that ships with s3db.js
 * (`full-2024-01-15T14-30-00-123Z-k3j9x2`). Those backups cannot be restored by either plugin
 * (their record files were stored as UTF-8 text), so a restore of one is told so.
 */
export function isOriginalPluginId(id: string): boolean {
  return /^[a-z]+-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z-[a-z0-9]{1,8}$/.test(id);
}

/** ISO 8601 basic format (no ':'), safe in file names on every OS: 20240115T143000123Z. */
export function compactTimestamp(at: Date): string {
  return at.toISOString().replace(/[-:.]/g, '');
}

/** The s3db resource an object key belongs to, or null for database-level objects. */
export function resourceOfKey(key: string): string | null {
  if (!key.startsWith('resource=')) return null;
  const end = key.indexOf('/');
  return end === -1 ? null : key.slice('resource='.length, end);
}

/** The group (a resource, or DATABASE_GROUP) an object key belongs to: the group of its parts. */
export function groupOfKey(key: string): string {
  return resourceOfKey(key) ?? DATABASE_GROUP;
}

export class PathTemplate {
  readonly template: string;

  constructor(template: string = DEFAULT_PATH_TEMPLATE) {
    if (typeof template !== 'string' || template.trim() === '') {
      throw optionError('pathTemplate', 'must be a non-empty string', `Use variables ${TEMPLATE_VARS.map((v) => `{${v}}`).join(' ')}`);
    }
    const unknown = [...template.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]).filter((v) => !(TEMPLATE_VARS as readonly string[]).includes(v!));
    if (unknown.length > 0) {
      // {date} is what s3db.js's config.path takes (walk-29 N4)
      const date = unknown[0] === 'date' ? '; {date} is s3db.js\'s config.path variable: write {year}-{month}-{day}' : '';
      throw optionError('pathTemplate', `unknown variable {${unknown[0]}}`, `Known: ${TEMPLATE_VARS.map((v) => `{${v}}`).join(' ')}${date}`);
    }
    if (!template.includes('{id}') && !template.includes('{timestamp}')) {
      throw optionError('pathTemplate', `"${template}" has neither {id} nor {timestamp}, so two backups would overwrite each other`, 'Add {id} or {timestamp}');
    }
    if (template.startsWith('/') || template.split('/').some((s) => s === '..' || s === '.' || s === '')) {
      throw optionError('pathTemplate', `"${template}" must be a relative path without "..", "." or empty segments`, 'It may not escape the backup directory');
    }
    // Characters no destination takes in a path (a backup would fail, leaving a marker no cleanup
    // can process), or that S3's XML cannot carry (parts written, never deletable): review-paths P3, P4.
    const bad = /[\\\u0000-\u001f\u007f-\u009f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.exec(template);
    if (bad) {
      throw optionError('pathTemplate', `holds the character U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}, which a destination cannot store in a path (a backslash, a control character, or one XML cannot carry)`, "Use '/' to separate folders, and printable characters");
    }
    // Names a filesystem destination keeps for itself: its cleanup would take such parts for leftovers (P4b).
    const reserved = template.split('/').find((s) => s.startsWith(TEMP_PREFIX) || s.endsWith(GUARD_SUFFIX));
    if (reserved !== undefined) {
      throw optionError('pathTemplate', `has the segment "${reserved}": names starting with ${TEMP_PREFIX} or ending with ${GUARD_SUFFIX} are a filesystem destination's temporary and guard files`, 'Name it otherwise');
    }
    this.template = template.includes('{resource}') ? template : `${template}/{resource}`;
    // a segment too long for a file name failed every backup as an I/O fault, retried (walk-29 F-B)
    const segments = this.template.split('/');
    segments.forEach((segment, i) => {
      const last = i === segments.length - 1;
      const limit = last ? FILE_NAME_MAX - PART_SUFFIX_MAX - TEMP_NAME_OVERHEAD : FILE_NAME_MAX;
      const longest = Buffer.byteLength(segment.replace(/\{[a-z]+\}/g, '')) + [...segment.matchAll(/\{([a-z]+)\}/g)].reduce((n, m) => n + VAR_MAX[m[1] as (typeof TEMPLATE_VARS)[number]], 0);
      if (longest > limit) {
        throw optionError(
          'pathTemplate',
          `its segment "${segment}" can be ${longest} bytes once rendered, more than a filesystem destination takes for ${last ? `the file name of a part (${limit} bytes: 255, less the part number and the temporary name it is written under)` : `a folder name (${limit} bytes)`}`,
          `Shorten it, or split it into folders with "/" (the longest values: {resource} ${VAR_MAX.resource} bytes, {id} ${VAR_MAX.id}, {timestamp} ${VAR_MAX.timestamp})`,
        );
      }
    });
  }

  /** Path of part number `seq` (1-based) of `group` in backup `id`. */
  partPath(vars: { id: string; type: string; at: Date; group: string }, seq: number): string {
    return `data/${this.render(vars)}.${String(seq).padStart(6, '0')}`;
  }

  /** Path of the copy of backup `id`'s manifest, beside its parts (a part path never ends in `.json`). */
  manifestCopyPath(vars: { id: string; type: string; at: Date }): string {
    return `data/${this.render({ ...vars, group: MANIFEST_COPY_GROUP })}.json`;
  }

  private render(vars: { id: string; type: string; at: Date; group: string }): string {
    const iso = vars.at.toISOString();
    const values: Record<(typeof TEMPLATE_VARS)[number], string> = {
      timestamp: compactTimestamp(vars.at),
      year: iso.slice(0, 4),
      month: iso.slice(5, 7),
      day: iso.slice(8, 10),
      hour: iso.slice(11, 13),
      resource: sanitize(vars.group),
      type: sanitize(vars.type),
      id: sanitize(vars.id),
    };
    return this.template.replace(/\{([a-z]+)\}/g, (_, name: (typeof TEMPLATE_VARS)[number]) => values[name]);
  }
}

/**
 * Keeps a value to one safe path segment, at most SEGMENT_MAX characters: a longer one (a resource
 * name of 205+ characters, which s3db.js accepts) keeps its start and a hash of the whole, so a
 * filesystem destination's temporary name for it stays under 255 bytes (review-paths P6).
 */
function sanitize(value: string): string {
  const cleaned = value.replace(/[^A-Za-z0-9._=-]/g, '_').replace(/^\.+/, '_');
  if (cleaned.length > SEGMENT_MAX) return `${cleaned.slice(0, SEGMENT_MAX - 17)}-${createHash('sha256').update(value).digest('hex').slice(0, 16)}`;
  return cleaned === '' ? '_' : cleaned;
}

const SEGMENT_MAX = 120;

/** Bytes in a file name (ext4, XFS, APFS, NTFS in UTF-16 units). */
const FILE_NAME_MAX = 255;
/** `.NNNNNN` after a part's name (more digits past a million parts), or `.json` after the manifest copy's. */
const PART_SUFFIX_MAX = 8;
/** What a filesystem destination puts before a name while it writes it: `${TEMP_PREFIX}<8 hex>-<pid>-<12 hex>-` (filesystem.ts tempPathFor). */
const TEMP_NAME_OVERHEAD = TEMP_PREFIX.length + 8 + 1 + 7 + 1 + 12 + 1;
/** The longest value of each variable, rendered: {id} is `incremental-<timestamp>-<6 hex>`; a resource name is cut to SEGMENT_MAX. */
const VAR_MAX: Record<(typeof TEMPLATE_VARS)[number], number> = { timestamp: 19, year: 4, month: 2, day: 2, hour: 2, resource: SEGMENT_MAX, type: 'incremental'.length, id: 'incremental'.length + 1 + 19 + 1 + 6 };
