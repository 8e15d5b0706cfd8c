/**
 * The lease object's format: one small JSON document (see lease.ts for how it is used).
 * Invariants: encode/parse round-trip; unreadable content parses as null (treated as a free
 * lease); a record from a newer format version is refused with ERR_LEASE_FORMAT rather than
 * overwritten by an older instance.
 */
import { BackupError } from '../errors.js';

export const FORMAT_VERSION = 1;

export interface LeaseRecord {
  version: number;
  /** Holder id, or null when the lease is free. */
  holder: string | null;
  host?: string;
  pid?: number;
  /** Where `pid` means something (see process-space.ts). */
  space?: string;
  /** Random per acquisition: tells two acquisitions by the same holder id apart. */
  token?: string;
  acquiredAt?: string;
  renewedAt?: string;
  expiresAt?: string;
  /** The scheduled tick the holder is running (ISO), if any. */
  tick?: string | null;
  /** The latest scheduled tick whose backup completed (ISO). Never decreases. */
  lastCompletedTick?: string | null;
  lastCompletedBy?: string;
  releasedAt?: string;
  /** Incremented on every write. */
  generation: number;
}

export function encode(record: LeaseRecord): Buffer {
  return Buffer.from(`${JSON.stringify(record, null, 2)}\n`, 'utf8');
}

/** Parses a lease object. Unreadable content counts as a free lease (null holder); a newer format is refused. */
export function parse(raw: string, where: string): LeaseRecord | null {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object') return null;
  const r = value as Partial<LeaseRecord>;
  if (typeof r.version === 'number' && r.version > FORMAT_VERSION) {
    throw new BackupError('ERR_LEASE_FORMAT', `Lease ${where}: written by a newer s3db-backup (format ${r.version}); upgrade this instance`);
  }
  if (r.holder !== null && typeof r.holder !== 'string') return null;
  return { ...r, version: r.version ?? FORMAT_VERSION, holder: r.holder ?? null, generation: typeof r.generation === 'number' ? r.generation : 0 } as LeaseRecord;
}
