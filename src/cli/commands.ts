/**
 * What each command does, through the public BackupPlugin API (the CLI is a user of the plugin,
 * never a second implementation of it): list, show, verify, restore, recover, backup; and rewrap,
 * which rewrites key.json through the plugin's destinations (rewrap.ts).
 * Each returns its exit code and a JSON-able result; text for people goes to `out`, questions and
 * progress to `err`.
 *
 * Invariants: a restore that writes (not `--dry-run`) runs only after `--yes` or a "yes" typed at
 * a terminal; without a terminal and without `--yes` it is refused before anything is read.
 */
import { createInterface } from 'node:readline/promises';
import type { BackupPlugin, RestoreOptions } from '../plugin.js';
import { BackupError } from '../errors.js';
import { redactedTarget } from '../redact.js';
import type { CliArgs } from './args.js';
import { UsageError } from './args.js';
import { backupTable, bytes, count, duration, inCommandTerms, verdict } from './format.js';
import { rewrapAll } from './rewrap.js';
import { isOriginalPluginId, paths } from '../engine/layout.js';
import type { ResourceStats } from '../engine/manifest.js';
import type { ResourceRestoreReport } from '../engine/restore.js';
import { DEFAULT_PASSPHRASE_ENV } from './plugin-options.js';

export interface CommandIo {
  out: (text: string) => void;
  err: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  /** Aborted on Ctrl-C: a backup stops cleanly (what it wrote deleted, its lease released). */
  signal?: AbortSignal;
  /** Destinations that listBackups() could not list while others could (filled as it warns). */
  unlisted?: string[];
  /** Destinations where listBackups() found nothing and that cannot hold backups as given (a directory that does not exist, a folder inside a destination). */
  misplaced?: string[];
  /** Destinations where listBackups() found no manifest but backup parts. */
  manifestsLost?: string[];
  /** rewrap only: the passphrase that opens key.json now, and the one it is to open with. */
  passphrases?: { current: string | null; next: string };
}

export interface CommandResult {
  exitCode: number;
  result: unknown;
}

export const EXIT_FAILED = 1;
export const EXIT_DAMAGED = 3;
/** verify: the backup restores, but a copy of it (or of a backup of its chain) at one destination is damaged. */
export const EXIT_DEGRADED = 4;
/** list: a destination could not be listed while another could; the list is what the others hold. */
export const EXIT_PARTIAL = 5;

export async function runCommand(args: CliArgs, plugin: BackupPlugin, io: CommandIo): Promise<CommandResult> {
  switch (args.command) {
    case 'list':
      return list(args, plugin, io);
    case 'show':
      return show(args.id as string, plugin, io);
    case 'verify':
      return verify(args, plugin, io);
    case 'restore':
      return restore(args, plugin, io);
    case 'recover':
      return recover(plugin, io);
    case 'backup':
      return backup(args, plugin, io);
    case 'rewrap':
      return rewrap(plugin, io);
  }
}

async function list(args: CliArgs, plugin: BackupPlugin, io: CommandIo): Promise<CommandResult> {
  const backups = await plugin.listBackups(args.limit === null ? {} : { limit: args.limit });
  if (backups.length === 0) io.out(`no backups at ${describeDestinations(plugin)} (a wrong directory, bucket or prefix looks the same as none: check the warnings above)`);
  else io.out(backupTable(backups));
  const misplaced = [...new Set(io.misplaced ?? [])];
  if (backups.length === 0 && misplaced.length > 0) {
    // a script checking a destination sees it: an unmounted disk or a typo is not "no backups yet" (walk-30 F5)
    io.err.write(`s3db-backup: nothing listed, and ${misplaced.join(', ')} ${misplaced.length > 1 ? 'do' : 'does'} not look like the place backups are (the warning above says why)\n`);
    return { exitCode: EXIT_FAILED, result: backups };
  }
  const lost = [...new Set(io.manifestsLost ?? [])];
  if (backups.length === 0 && lost.length > 0) {
    io.err.write(`s3db-backup: nothing listed, but ${lost.join(', ')} ${lost.length > 1 ? 'hold' : 'holds'} backup parts without their manifests: s3db-backup recover puts them back\n`);
    return { exitCode: EXIT_DAMAGED, result: backups };
  }
  const unlisted = [...new Set(io.unlisted ?? [])];
  if (unlisted.length === 0) return { exitCode: 0, result: backups };
  // after the table too, which may have pushed the warning out of sight (and a script sees exit 5)
  const listed = plugin.destinations.members.map((m) => m.label).filter((label) => !unlisted.includes(label));
  io.err.write(`s3db-backup: the list is partial: ${unlisted.join(', ')} could not be listed (the warning above says why and what to check); it shows what ${listed.join(', ')} ${listed.length > 1 ? 'hold' : 'holds'}\n`);
  return { exitCode: EXIT_PARTIAL, result: backups };
}

async function show(id: string, plugin: BackupPlugin, io: CommandIo): Promise<CommandResult> {
  const backup = await plugin.getBackup(id);
  if (!backup) throw await notFound(id, plugin);
  const m = backup.manifest;
  const lines = [
    `backup      ${backup.id} (${backup.type}${m.parentId ? `, on ${m.parentId}` : ''})`,
    `taken       ${backup.timestamp} in ${duration(backup.durationMs)}${backup.reason ? `, reason: ${backup.reason}` : ''}`,
    `chain       ${m.chain.join(' -> ')}`,
    `stored      ${bytes(backup.size)} in this backup's own parts (${m.codec.compression}${backup.encrypted ? ', encrypted' : ''}); a restore of it gives ${count(backup.objects)} objects, ${count(backup.records)} records`,
    `verified    ${verdict(backup)}${backup.verification ? ` at ${backup.verification.at}` : ''}${backup.verification?.error ? `: ${backup.verification.error}` : ''}`,
    // the labels the backup was written to, which a moved or synced copy is no longer at
    `written to  ${m.destinations.map((d) => `${d.label} ${d.status}${d.error ? ` (${d.error})` : ''}`).join('; ')}`,
    ...(backup.tags.length > 0 ? [`tags        ${backup.tags.join(', ')}`] : []),
    ...(backup.undefinedResources.length > 0 ? [`WARNING     its s3db.json does not define ${backup.undefinedResources.join(', ')} (see the runbook, step 4)`] : []),
    'resources (records and objects: what a restore of it gives; objects = records, partition references and other keys):',
    ...Object.entries(m.resources).map(([name, r]) => `  ${name.padEnd(24)} ${count(r.records).padStart(10)} records ${count(r.objects).padStart(10)} objects  ${ownParts(backup.type, r)}${r.logical ? '  (selective: filter/fields/limit)' : ''}`),
  ];
  io.out(lines.join('\n'));
  return { exitCode: 0, result: backup };
}

/**
 * What a resource's own parts in this backup hold. The manifest counts objects, not records, in
 * `stored` and `deleted` (a deleted record is its data object and each partition reference;
 * a record whose partition value changed deletes one reference), and `bytes` are the bodies
 * stored in this backup alone: for an incremental, the new or changed objects only (docs/FORMAT.md).
 */
function ownParts(type: string, r: ResourceStats): string {
  if (type !== 'incremental') return `${bytes(r.bytes).padStart(10)} of object bodies`;
  return `this incremental: ${count(r.stored)} ${r.stored === 1 ? 'object' : 'objects'} stored (${bytes(r.bytes)} of bodies)${r.deleted ? `, ${count(r.deleted)} ${r.deleted === 1 ? 'object' : 'objects'} deleted since its parent` : ''}`;
}

async function verify(args: CliArgs, plugin: BackupPlugin, io: CommandIo): Promise<CommandResult> {
  const id = args.id as string;
  if (!(await plugin.getBackup(id))) throw await notFound(id, plugin);
  const result = await plugin.verifyBackup(id, { level: args.level });
  const damagedCopies = result.damagedCopies ?? [];
  if (result.verified && damagedCopies.length > 0) {
    io.out(`backup ${id}: verified (${result.level}) from the good copies, but NOT at every destination:`);
    for (const c of damagedCopies) io.out(`  the copy of ${c.backupId} at ${c.label} is DAMAGED: ${c.error ?? ''}`);
    io.out(
      plugin.destinations.members.length > 1
        ? 'A restore reads the good copies. To have every copy again: s3db-backup recover puts back a damaged or missing object index (from the good destination) or manifest copy; for a damaged part, take a new full backup, or copy the file from the good destination.'
        : 'A restore reads the good copies. To have every copy again: s3db-backup recover puts back a damaged or missing object index or manifest copy; for a damaged part, take a new full backup.',
    );
    return { exitCode: EXIT_DEGRADED, result };
  }
  if (result.verified) io.out(`backup ${id}: verified (${result.level}) at every destination that holds it`);
  else {
    io.out(`backup ${id}: DAMAGED (${result.level}): ${result.error ?? 'see the destinations below'}`);
    const chain = result.damagedChain ?? [];
    // with a damaged chain, the lines below are this backup's own parts, not the backups it needs
    for (const d of result.destinations) io.out(`  ${d.label}: ${chain.length > 0 ? 'its own parts ' : ''}${d.verified ? 'ok' : `failed: ${d.error ?? ''}`}`);
    io.out(
      chain.length > 0
        ? `It cannot be restored whole while ${chain.join(', ')} ${chain.length > 1 ? 'are' : 'is'} damaged, nor can any backup built on ${chain[0]}: pick a backup of another chain (s3db-backup list: a full backup taken after ${chain[0]}, or one before it), restore only undamaged resources (--resources), or another destination, or restore all it still holds (restore --salvage; runbook step 5).`
        : 'Pick an older backup (s3db-backup list), restore only undamaged resources (--resources), or another destination, or restore all it still holds (restore --salvage; runbook step 5).',
    );
  }
  return { exitCode: result.verified ? 0 : EXIT_DAMAGED, result };
}

async function restore(args: CliArgs, plugin: BackupPlugin, io: CommandIo): Promise<CommandResult> {
  const id = args.id as string;
  const into = args.into as string;
  if (!(await plugin.getBackup(id))) throw await notFound(id, plugin);
  const options = { backupId: id, destination: into, mode: args.mode, ...(args.resources ? { resources: args.resources } : {}), ...(args.allowPlaintext ? { allowPlaintext: true } : {}), ...(args.rewriteUnchanged ? { rewriteUnchanged: true } : {}), ...(args.salvage ? { salvage: true } : {}) };
  if (!args.dryRun && !args.yes) {
    if (!io.stdin.isTTY) throw new UsageError('a restore writes to the database: add --yes to run it without a terminal (or --dry-run to see what it would do)');
    // what the target holds and would lose is shown before the question (a plan, not verified yet)
    io.err.write(`${inCommandTerms((await previewLines(plugin, options, into, !args.resources && args.mode === 'replace')).join('\n'))}\n`);
    await confirm(io, `Restore backup ${id} into ${redactedTarget(into)} as above (mode ${args.mode}${args.resources ? `, resources ${args.resources.join(',')}` : ', the whole database'})?`);
  }
  const report = await plugin.restore({ ...options, dryRun: args.dryRun, verify: !args.noVerify });
  io.out(reportLines(report, into).join('\n'));
  // a salvage that lost objects did not restore everything (a dry run: will pass over parts): a script must not read it as done
  return { exitCode: (report.dryRun ? report.passedOver.length : report.lost.length) > 0 ? EXIT_DAMAGED : 0, result: report };
}

/**
 * The plan shown before the question. A dry run does not open a database whose s3db.json is
 * damaged (connecting would rewrite it), so there is no plan for the one restore that mends it, a
 * whole-database replace: that is said, and the question still asked.
 */
async function previewLines(plugin: BackupPlugin, options: RestoreOptions & { backupId: string }, into: string, wholeReplace: boolean): Promise<string[]> {
  try {
    // (unverified: the restore verifies; salvage needs the verification, so the preview plans without it and says so: review-33b F7)
    const { salvage, ...plan } = options;
    const lines = reportLines(await plugin.restore({ ...plan, dryRun: true, verify: false }), into);
    return salvage ? [...lines, 'with --salvage: the restore verifies the whole backup first and passes over the parts it finds damaged at every destination, leaving their objects as the target has them; it names them when it ends (exit 3)'] : lines;
  } catch (err) {
    if (!wholeReplace || !(err instanceof BackupError) || err.code !== 'ERR_TARGET_METADATA') throw err;
    return [`no plan: the target's s3db.json is damaged, and a dry run does not open such a database (${err.message}); this whole-database replace puts the backup's s3db.json back, with every object of the backup, and deletes what the backup lacks (the copy s3db.js makes of a corrupt s3db.json, s3db.json.corrupted.*, included: copy it aside first if you want it)`];
  }
}

/** A restore's report (or a dry run's plan) as lines: per resource its objects, then notes and warnings. */
function reportLines(report: Awaited<ReturnType<BackupPlugin['restore']>>, into: string): string[] {
  return [
    `${report.dryRun ? 'dry run: nothing written. ' : ''}backup ${report.backupId} (chain ${report.chain.join(' -> ')}) ${report.dryRun ? 'would be restored' : 'restored'} into ${report.target ?? redactedTarget(into)}, mode ${report.mode}`,
    ...report.resources.map((r) => `  ${r.name.padEnd(24)} ${count(r.records).padStart(10)} records, ${count(r.objects)} objects: ${count(r.created)} created, ${count(r.overwritten)} overwritten, ${count(r.unchanged)} unchanged, ${count(r.skipped)} skipped, ${count(r.deleted)} deleted, ${count(r.kept)} kept${r.lost > 0 ? `, ${count(r.lost)} LOST (damaged parts)` : ''}`),
    report.dryRun ? planTotals(report.resources) : `${count(report.objectsWritten)} objects (${bytes(report.bytesWritten)}) written, ${count(report.objectsDeleted)} deleted in ${duration(report.durationMs)}`,
    // merge and skip settle partition references besides the objects (walk-27: a merge that removed a stale one said "0 deleted")
    ...(report.partitionReferences.deleted + report.partitionReferences.created === 0
      ? []
      : [`partition references: ${count(report.partitionReferences.deleted)} deleted (stale: of records whose partition values the backup's version changes, or in partitions defined otherwise than in the backup), ${count(report.partitionReferences.created)} created`]),
    ...report.sourceFailures.map((f) => `note: ${f.path ?? 'a copy'} at ${f.label} could not be used (${f.error}); the restore read another destination's copy`),
    ...report.warnings.map((w) => `WARNING: ${w}`),
  ];
}

/** A dry run's plan summed over its resources (walk-27: a plan of many resources had no totals). */
function planTotals(rows: ResourceRestoreReport[]): string {
  const sum = (field: 'created' | 'overwritten' | 'unchanged' | 'skipped' | 'deleted' | 'kept') => rows.reduce((n, r) => n + r[field], 0);
  const [created, overwritten, unchanged, skipped, kept] = [sum('created'), sum('overwritten'), sum('unchanged'), sum('skipped'), sum('kept')];
  return `in all: ${count(created + overwritten)} objects would be written (${count(created)} created, ${count(overwritten)} overwritten), ${count(sum('deleted'))} deleted, ${count(unchanged + skipped + kept)} left as they are (${count(unchanged)} unchanged, ${count(skipped)} skipped, ${count(kept)} kept)`;
}

async function recover(plugin: BackupPlugin, io: CommandIo): Promise<CommandResult> {
  const report = await plugin.recoverBackups();
  if (report.empty) {
    io.out(`no backups at ${describeDestinations(plugin)}, nor anything of one: nothing to put back (a wrong directory, bucket or prefix? check the warnings above)`);
    return { exitCode: 1, result: report };
  }
  const lost = (where: 'everywhere' | 'here') => report.skipped.some((s) => s.lost === where);
  const lines = [
    report.recovered.length > 0 ? `manifests put back: ${report.recovered.join(', ')}` : lost('everywhere') || lost('here') ? 'no manifest was put back' : 'no manifest needed putting back',
    ...report.indexes.map((i) => `index of ${i.id} ${i.action} at ${i.destinations.join(', ')}${i.verified === false ? ' (its verification failed)' : ''}`),
    ...(report.copies ?? []).map((c) => `manifest copy of ${c.id} written back at ${c.destination}`),
    ...(report.keyFiles?.mended ?? []).map((k) => `key.json written back at ${k.destination} (it was unreadable) from ${k.from}`),
    ...report.skipped.map((s) => `${s.lost ? 'not put back' : 'not used'}: ${s.path} at ${s.destination}: ${s.reason}`),
    ...(report.keyFiles?.left ?? []).map((k) => `not put back: key.json at ${k.destination}: ${k.reason}`),
  ];
  io.out(lines.join('\n'));
  // like verify: 3 when a backup cannot be restored, 4 when a destination lacks what another holds
  // (or refuses every backup: a key.json left unreadable)
  const degraded = lost('here') || (report.keyFiles?.left.length ?? 0) > 0;
  return { exitCode: lost('everywhere') ? EXIT_DAMAGED : degraded ? EXIT_DEGRADED : 0, result: report };
}

async function backup(args: CliArgs, plugin: BackupPlugin, io: CommandIo): Promise<CommandResult> {
  // A passphrase variable missing at 3 AM (sudo, a new shell) must not turn into plaintext next to
  // encrypted backups: refused unless asked for
  if (plugin.config.passphrase === null && !args.unencrypted) {
    const encrypted = await plugin.destinations.holding(paths.keyFile);
    if (encrypted.length > 0) {
      throw new UsageError(`${encrypted.join(', ')} holds encrypted backups (key.json) and no passphrase was given (${DEFAULT_PASSPHRASE_ENV} is not set, nor --passphrase-env/--passphrase-file): set it, or add --unencrypted to take this backup without encryption`);
    }
  }
  const result = await plugin.createBackup({ type: args.type, reason: args.reason ?? 'command line', ...(args.resources ? { resources: args.resources } : {}), ...(io.signal ? { signal: io.signal } : {}) });
  io.out(`backup ${result.id} (${result.type}) taken: ${bytes(result.size)} in ${duration(result.duration)}, ${result.verified ? 'verified' : 'not verified'}`);
  return { exitCode: 0, result };
}

async function rewrap(plugin: BackupPlugin, io: CommandIo): Promise<CommandResult> {
  const current = io.passphrases?.current ?? null;
  if (current === null || io.passphrases === undefined) throw new UsageError(`rewrap needs the current passphrase too (BACKUP_PASSPHRASE, --passphrase-env or --passphrase-file)`);
  const report = await rewrapAll(plugin, current, io.passphrases.next);
  io.out(
    [
      `key.json rewrapped at ${report.rewrapped.join(', ') || 'no destination'}${report.alreadyNew.length > 0 ? ` (already opening with the new passphrase at ${report.alreadyNew.join(', ')}: rewrapped by an earlier run, finished or cut short)` : ''}${report.withoutKeyFile.length > 0 ? ` (none at ${report.withoutKeyFile.join(', ')})` : ''}.`,
      'Set the new passphrase in every instance now: from here on key.json opens only with it, and so do all the backups (same master key).',
      'The old passphrase still opens the key file each older manifest embeds: to revoke a leaked passphrase, rotate the key instead (README runbook, step 6).',
    ].join('\n'),
  );
  return { exitCode: 0, result: report };
}

async function confirm(io: CommandIo, question: string): Promise<void> {
  const rl = createInterface({ input: io.stdin, output: io.err });
  try {
    const answer = await rl.question(`${question} Type yes to go on: `);
    if (answer.trim().toLowerCase() !== 'yes') throw new UsageError('restore not confirmed; nothing was written');
  } finally {
    rl.close();
  }
}

/** The backup is not there; the ids that begin with, or contain, what was typed are named (a truncated or mistyped id at 3 AM). */
async function notFound(id: string, plugin: BackupPlugin): Promise<BackupError> {
  const ids = (await plugin.listBackups().catch(() => [])).map((b) => b.id);
  const near = [...ids.filter((b) => b.startsWith(id)), ...ids.filter((b) => !b.startsWith(id) && b.includes(id))].slice(0, 3);
  // an id of s3db.js's own BackupPlugin (a user switching over pastes one): said so, as the API says it (walk-33 F3)
  const original = near.length === 0 && isOriginalPluginId(id) ? ": its id is one of s3db.js's own BackupPlugin, whose backups no plugin can restore (they stored records as text, which damaged them; README \"Switching from s3db.js's BackupPlugin\")" : '';
  const hint = near.length > 0 ? `; did you mean ${near.join(' or ')}?` : `${original} (s3db-backup list shows the backups there)`;
  // an id is shown when it looks like one (or the start of one): anything else may be a secret typed in the wrong place
  const shown = /^[A-Za-z0-9._-]+$/.test(id) && (near.length > 0 || /^(full|incremental)-/.test(id) || original !== '') ? `'${id}'` : '(the id given: not shown, in case it is a secret typed in the wrong place)';
  return new BackupError('ERR_BACKUP_NOT_FOUND', `backup ${shown} is not at ${describeDestinations(plugin)}${hint}`);
}

function describeDestinations(plugin: BackupPlugin): string {
  return plugin.destinations.members.map((m) => m.label).join(', ');
}
