/**
 * The manifest: one JSON document per backup, written last. It is the commit point: a backup whose
 * manifest does not exist does not exist. It holds everything needed to list, verify and restore
 * the backup with nothing but the destination and the passphrase (docs/FORMAT.md section 1).
 *
 * Invariant: a manifest never holds key material. `encryption.keyFile` is the key file (a wrapped
 * master key: useless without the passphrase), kept so every backup stays self-contained.
 */
import { BackupError } from '../errors.js';
import { noteParsed } from './manifest-auth.js';
import { DATABASE_GROUP } from './layout.js';

export type BackupType = 'full' | 'incremental';
export type Compression = 'gzip' | 'brotli' | 'deflate' | 'zstd' | 'none';

export interface PartEntry {
  path: string;
  /** Resource name, or DATABASE_GROUP for database-level objects. */
  group: string;
  /** 1-based number of the part within its backup. */
  seq: number;
  /** Bytes stored at the destination. */
  size: number;
  /** Hex SHA-256 of the stored bytes. */
  sha256: string;
  /** Archive (plaintext) bytes before compression. */
  plainBytes: number;
  /** Records in the part, tombstones included. */
  objects: number;
  /** First and last object key in the part; null in encrypted backups (keys hold ids and partition values). */
  firstKey: string | null;
  lastKey: string | null;
}

export interface ResourceStats {
  /** Objects of the resource in this backup's snapshot (data, partition references, history...). */
  objects: number;
  /** Records: objects under resource=<r>/data/. */
  records: number;
  /** Objects whose bytes are stored in this backup (all for a full; new or changed for an incremental). */
  stored: number;
  /** Keys removed since the parent backup (incrementals). */
  deleted: number;
  /** Plaintext bytes stored for the resource in this backup. */
  bytes: number;
  /** True when the resource was selected with filter/fields/limit: its parts hold logical records. */
  logical?: boolean;
}

export interface VerificationResult {
  verified: boolean;
  level: 'quick' | 'full';
  /** When it ended; `startedAt` (recorded results only) when it began. */
  at: string;
  startedAt?: string;
  error: string | null;
  destinations: { label: string; verified: boolean; error: string | null }[];
  /**
   * verifyBackup() only, never recorded: copies found damaged at one destination while the backup
   * (or a backup of its chain) verifies from another, so one copy fewer stands behind it.
   */
  damagedCopies?: { backupId: string; label: string; error: string | null }[];
  /**
   * verifyBackup() only, never recorded: the backups of its chain that fail verification (it
   * needs them), oldest first; `destinations` then hold this backup's own verdict.
   */
  damagedChain?: string[];
}

export interface Manifest {
  format: 's3db-backup-manifest';
  /** 2 when `metadataAsStored` (a version-1 reader would restore such metadata changed), else 1. */
  version: 1 | 2;
  id: string;
  type: BackupType;
  /** Previous backup of the chain (incrementals), else null. */
  parentId: string | null;
  /** Ids from the chain's full backup to this one (a full: [id]). */
  chain: string[];
  status: 'completed';
  reason: string | null;
  metadata: Record<string, unknown>;
  trigger: { event: string; payload: unknown } | null;
  /** Labels the caller gave (createBackup({ tags })), for retention's tags rules; absent when none. */
  tags?: string[];
  startedAt: string;
  completedAt: string;
  durationMs: number;
  /** The database backed up; `path` (a file:// database's directory) only in manifests written since 0.2. */
  /**
   * The database: `path` is a file:// database's directory, `endpoint` a remote store's (scheme,
   * host, port; manifests written before FORMAT.md revision 7 lack it).
   */
  source: { s3dbVersion: string | null; client: string; bucket: string | null; keyPrefix: string | null; path?: string; endpoint?: string };
  codec: { compression: Compression; level: number | null; segmentSize: number; encrypted: boolean };
  encryption: { keyCheck: string; keyFile: unknown } | null;
  /** Resources selected for the backup, in snapshot order. */
  resources: Record<string, ResourceStats>;
  parts: PartEntry[];
  /** The index as written (a rebuilt one is named beside it, not here: stored.ts indexRefAt). */
  index: { path: string; size: number; sha256: string; entries: number };
  totals: { objects: number; records: number; stored: number; deleted: number; plainBytes: number; storedBytes: number; parts: number };
  /** The database's s3db.json at backup time (null if it had none). */
  s3dbJson: unknown;
  selection: {
    include: string[] | null;
    exclude: string[];
    includeMetadata: boolean;
    /** Resources stored as logical records, with the selection that was applied. */
    logical?: Record<string, { filter: unknown; fields: string[] | null; limit: number | null }>;
  };
  verification: VerificationResult | null;
  destinations: { label: string; status: 'ok' | 'failed' | 'skipped'; error?: string }[];
  /**
   * True since format revision 5: the stored objects keep headers whose stored value is the
   * string "undefined" (what s3db.js writes for an absent optional attribute). Absent in manifests
   * written before, whose objects lack those headers: an incremental is never built on a chain
   * holding such a backup (it would keep their header-less copies of unchanged objects).
   */
  keepsUndefinedHeaders?: true;
  /**
   * True since format revision 6: the archives keep each object's metadata values as stored
   * (s3db.js's `u:`/`b:`/`d:` encodings included), and a restore writes them back as they are.
   * Absent: as s3db.js's client decoded them (earlier revisions, and a client this package cannot
   * read past its codec), written back through the client, which encodes them again. One chain
   * holds one form: an incremental is never built on a chain of the other.
   */
  metadataAsStored?: true;
  /**
   * Path of this manifest's byte-identical copy beside the parts (written just before the
   * manifest; recoverBackups() puts it back when manifests/<id>.json is lost or corrupt).
   * Absent in manifests written before the copy existed.
   */
  copy?: string;
  /**
   * Encrypted backups: `reason`, `metadata` and the trigger's payload, sealed with the backup's
   * master key (sealed.ts); the plaintext fields then hold null, {} and a null payload.
   */
  sealed?: string;
  /**
   * Encrypted backups (FORMAT.md revision 8): the SHA-256 of this manifest without `auth`, sealed
   * with the backup's master key (manifest-auth.ts), so an edited manifest is detected. Last field.
   */
  auth?: string;
}

/** What every manifest says of its backup but the part list and `s3dbJson` (catalog.ts ListedManifest). */
export type ManifestHead = Omit<Manifest, 'parts' | 's3dbJson'>;

/**
 * Which objects a backup covers, as a comparable string: the resources (include/exclude), whether
 * database-level objects were included, and which resources hold logical (filter/fields/limit)
 * records instead of objects. Backups with the same key form one series: an incremental only
 * builds on a parent of its series (a parent that covered other objects would leave wrong ones
 * in the snapshot), and retention counts each series on its own (a backup of one resource never
 * takes the slot of a whole-database backup).
 */
export function selectionKey(selection: { include: string[] | null; exclude: string[]; includeMetadata?: boolean; logical?: Record<string, unknown> }): string {
  return JSON.stringify({
    include: selection.include ? [...selection.include].sort() : null,
    exclude: [...selection.exclude].sort(),
    includeMetadata: selection.includeMetadata !== false,
    logical: Object.keys(selection.logical ?? {}).sort(),
  });
}

/**
 * Which database a backup was taken from, as a comparable string: the client kind, bucket and key
 * prefix. A file:// database's directory and a remote store's endpoint are left out (earlier
 * manifests lack them): `sameSource` compares them where both have them, and retention's
 * series add them (plugin.ts planSeries).
 */
export function sourceKey(source: Manifest['source']): string {
  // 'app', 'app/' and '/app' are one prefix to s3db.js (and no prefix is '' or null)
  return JSON.stringify([source.client, source.bucket, (source.keyPrefix ?? '').replace(/^\/+|\/+$/g, '')]);
}

/** Whether two backups come from the same database, as far as their manifests tell. */
export function sameSource(a: Manifest['source'], b: Manifest['source']): boolean {
  const agree = (x: string | undefined, y: string | undefined) => x === undefined || y === undefined || x === y;
  return sourceKey(a) === sourceKey(b) && agree(a.path, b.path) && agree(a.endpoint, b.endpoint);
}

/** A database as people name it: its directory, or bucket/prefix. */
export function describeSourceShort(source: Manifest['source']): string {
  if (source.path !== undefined) return `file://${source.path}`;
  const at = source.endpoint !== undefined ? ` at ${source.endpoint}` : '';
  return `${source.client.replace(/Client$/, '').toLowerCase()}://${source.bucket ?? '?'}${source.keyPrefix ? `/${source.keyPrefix}` : ''}${at}`;
}

/** One line of the object index (indexes/<id>.index), sorted by key. */
export interface IndexEntry {
  /** Object key. */
  k: string;
  /** ETag as the source listed it. */
  e: string;
  /** Size in bytes. */
  s: number;
  /**
   * LastModified as the source listed it. Part of change detection: s3db keeps record values in
   * S3 metadata, and a metadata-only rewrite changes neither the ETag (MD5 of the body) nor the size.
   */
  m: string;
  /** Id of the backup in the chain whose parts hold this version of the object. */
  b: string;
}

export function parseManifest(text: string, where: string): Manifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BackupError('ERR_MANIFEST_CORRUPT', `manifest ${where} is not valid JSON: recoverBackups() puts it back from the copy the backup keeps beside its parts (README runbook, step 2); until then use another backup or destination`, { cause: err });
  }
  const m = value as Partial<Manifest>;
  const version = (m as { version?: unknown } | null)?.version;
  if (m?.format === 's3db-backup-manifest' && typeof version === 'number' && version > 2) {
    throw new BackupError('ERR_MANIFEST_VERSION', `manifest ${where} was written by a newer s3db-backup (manifest format version ${version}; this one reads versions 1 and 2): upgrade s3db-backup to list or restore it. It is left as it is`);
  }
  if (m?.format !== 's3db-backup-manifest' || (m.version !== 1 && m.version !== 2) || typeof m.id !== 'string' || !Array.isArray(m.parts) || !m.index) {
    throw new BackupError('ERR_MANIFEST_CORRUPT', `manifest ${where} is not an s3db-backup manifest (version 1 or 2)`);
  }
  if (m.auth !== undefined) noteParsed(m);
  return m as Manifest;
}

/** The part of a manifest that listBackups shows (small, no part list). */
export interface BackupSummary {
  id: string;
  type: BackupType;
  /** When the backup started (the point in time it captures), ISO 8601. */
  timestamp: string;
  startedAt: string;
  completedAt: string;
  durationMs: number;
  status: 'completed';
  parentId: string | null;
  reason: string | null;
  metadata: Record<string, unknown>;
  tags: string[];
  /** Names of the resources in the backup (not `_database`, the group of database-level objects, which every backup holds). */
  resources: string[];
  /**
   * Resources whose objects this backup holds but whose definitions its s3db.json lacks (s3db.js
   * had replaced a corrupt s3db.json): a restore of this backup alone leaves their records
   * unreadable to s3db.js. Normally empty.
   */
  undefinedResources: string[];
  /** Bytes stored at the destination (parts + index). */
  size: number;
  objects: number;
  records: number;
  compression: Compression;
  encrypted: boolean;
  verified: boolean;
  verification: VerificationResult | null;
  destinations: Manifest['destinations'];
  /** The database the backup was taken from (several databases pointed at one destination tell apart by it). */
  source: Manifest['source'];
  /** s3db.js dialect names of the same facts (its listBackups() items carry them). */
  createdAt: string;
  duration: number;
  checksum: string;
  compressed: boolean;
  driverInfo: Manifest['destinations'];
  error: null;
  /**
   * Destinations the backup was stored at (its `destinations` say ok) whose listing now lacks its
   * manifest (lost there: recoverBackups() puts it back from another); absent when none.
   */
  manifestMissingAt?: string[];
  /**
   * With several destinations, all of which answered: those whose listing holds the backup, when
   * another does not and its manifest was not lost there (manifestMissingAt): the backup was never
   * stored there (failed then, or taken under another configuration). Not for a destination the
   * backup skipped by design ('priority'). Absent otherwise.
   */
  onlyAt?: string[];
}

/** The resources an s3db.json defines (none when it is missing or not an object). */
export function definedResources(s3dbJson: unknown): string[] {
  const resources = (s3dbJson as { resources?: unknown } | null)?.resources;
  return resources && typeof resources === 'object' ? Object.keys(resources) : [];
}

/**
 * Resources whose objects the backup holds while its s3db.json does not define them: after s3db.js
 * replaced a corrupt s3db.json with an empty one (it does so when it connects), or with none at
 * all. Restored from this backup alone, their records cannot be read by s3db.js; such a backup
 * never counts as good for retention (plugin.ts planSeries), so the backups that still define
 * them are kept.
 */
export function undefinedResources(m: Manifest): string[] {
  const defined = new Set(definedResources(m.s3dbJson));
  return Object.entries(m.resources)
    .filter(([name, stats]) => name !== DATABASE_GROUP && stats.objects > 0 && !defined.has(name))
    .map(([name]) => name);
}

/** The resources a backup holds (not DATABASE_GROUP, the group of its database-level objects). */
export function backupResources(m: Manifest): string[] {
  return Object.keys(m.resources).filter((r) => r !== DATABASE_GROUP);
}

export function summarize(m: Manifest, latestVerification?: VerificationResult | null): BackupSummary {
  const verification = latestVerification ?? m.verification;
  return {
    id: m.id,
    type: m.type,
    timestamp: m.startedAt,
    startedAt: m.startedAt,
    completedAt: m.completedAt,
    durationMs: m.durationMs,
    status: m.status,
    parentId: m.parentId,
    reason: m.reason,
    metadata: m.metadata,
    tags: m.tags ?? [],
    resources: backupResources(m),
    undefinedResources: undefinedResources(m),
    size: m.totals.storedBytes,
    objects: m.totals.objects,
    records: m.totals.records,
    compression: m.codec.compression,
    encrypted: m.codec.encrypted,
    verified: verification?.verified === true,
    verification: verification ?? null,
    destinations: m.destinations,
    source: m.source,
    createdAt: m.startedAt,
    duration: m.durationMs,
    checksum: m.index.sha256,
    compressed: m.codec.compression !== 'none',
    driverInfo: m.destinations,
    error: null,
  };
}
