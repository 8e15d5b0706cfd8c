/**
 * Human-readable text for the command line: sizes, counts, durations, and the backup list table.
 * Pure functions of their input; nothing here reads a secret (summaries carry none).
 */
import { describeSourceShort, type BackupSummary } from '../engine/manifest.js';
import { SCHEMA_WAYS_IN_COMMAND_TERMS } from '../damaged-schema.js';

export function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${Math.round(n)} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** What a backup's verification says, in one word or phrase. */
export function verdict(b: BackupSummary): string {
  if (b.verified) return `verified (${b.verification?.level ?? 'full'})`;
  if (b.verification === null) return 'not verified';
  if (!b.verification.verified) return 'DAMAGED';
  return 'needs a damaged or missing backup';
}

/** "copy damaged at <label>" for each destination whose copy the latest verification found damaged. */
function damagedCopies(b: BackupSummary): string[] {
  const damaged = (b.verification?.destinations ?? []).filter((d) => !d.verified).map((d) => d.label);
  return damaged.length > 0 ? [`copy damaged at ${damaged.join(', ')}`] : [];
}

/**
 * The backup list. A `database` column appears when the backups come from more than one database
 * (a configuration copied from another environment, a typo in `backup --db`): nothing else tells
 * their backups apart. Notes: a schema lacking resources, a manifest lost at a destination, a
 * backup held at some destinations only, a damaged copy beside a good one, tags (which retention's
 * `tags` rule keeps).
 */
export function backupTable(backups: BackupSummary[]): string {
  const databases = new Set(backups.map((b) => describeSourceShort(b.source)));
  const several = databases.size > 1;
  const rows = backups.map((b) => [
    ...(several ? [describeSourceShort(b.source)] : []),
    b.id,
    b.type,
    b.timestamp.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    bytes(b.size),
    count(b.objects),
    b.encrypted ? 'yes' : 'no',
    verdict(b),
    [
      ...(b.undefinedResources.length > 0 ? [`schema lacks ${b.undefinedResources.join(',')}`] : []),
      ...(b.manifestMissingAt ? [`manifest missing at ${b.manifestMissingAt.join(', ')}`] : []),
      ...(b.onlyAt ? [`only at ${b.onlyAt.join(', ')}`] : []),
      // a backup that verified from one copy while another is damaged (verify exits 4 on it)
      ...(b.verified ? damagedCopies(b) : []),
      ...(b.tags.length > 0 ? [`tags: ${b.tags.join(', ')}`] : []),
    ].join('; '),
  ]);
  const header = [...(several ? ['database'] : []), 'id', 'type', 'taken (UTC)', 'size', 'objects', 'encrypted', 'verification', 'notes'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

/**
 * The plugin's messages name its methods (`recoverBackups()`) and options (`mode 'replace'`); a
 * person at the command line needs the command that does the same. Only methods with a command
 * are translated, the ways back from a damaged s3db.json (damaged-schema.ts), and the advice to
 * check an option the command line sets by a flag.
 */
const COMMAND_OF: [RegExp | string, string][] = [
  [/\brecoverBackups\(\)/g, 's3db-backup recover'],
  [/\bverifyBackup\(\)/g, 's3db-backup verify'],
  [/\blistBackups\(\)/g, 's3db-backup list'],
  [/\brestore with salvage\b/g, 'restore with --salvage'],
  // options the command line sets otherwise (walk-33 F5)
  [/\bcheck config\.directory\b/g, 'check --directory'],
  [/\bcheck encryption\.passphrase\b/g, 'check the passphrase given (--passphrase-env or --passphrase-file; BACKUP_PASSPHRASE by default)'],
  ...SCHEMA_WAYS_IN_COMMAND_TERMS,
];

export function inCommandTerms(text: string): string {
  return COMMAND_OF.reduce((t, [api, command]) => (typeof api === 'string' ? t.replaceAll(api, command) : t.replace(api, command)), text);
}
