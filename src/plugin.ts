/**
 * BackupPlugin: the public class. A drop-in for s3db.js's own BackupPlugin (same class name, so it
 * is found as `db.plugins.backup`; same methods, hooks and events) that also speaks the seed
 * story's API (createBackup/listBackups/getBackup/deleteBackup/verifyBackup/restore({...})).
 *
 * It owns wiring only: options, destinations, keyring and catalog, the schedule/lease/trigger
 * policy, hooks, events and webhooks. Backup, restore, verify and retention logic live in
 * src/engine and src/retention.
 *
 * Invariants:
 * - One backup at a time per plugin: manual calls queue behind a running backup; a scheduled tick
 *   that finds one running is skipped and reported (`plg:backup:skipped`).
 * - Every outcome reaches the webhooks and events, including a destination that cannot be opened;
 *   a throwing webhook or hook is logged and never changes the outcome.
 * - Nothing is created inside the database: the catalog lives at the destination, so install() is
 *   safe before s3db.json is loaded (plugins passed to `new Database({ plugins })`).
 * - No passphrase or key ever reaches an event, error, log line or manifest.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import type { BackupPluginEvents } from './events.js';
import type { S3db } from 's3db.js';
import type { KeyFile, KeyHandle } from './codec/index.js';
import { implementationNotice } from './codec/options.js';
import { checkOptions, isBoolean, isString, oneOf, reservedResourceName, shown, type Check } from './method-options.js';
import { createDestinationSet, S3Destination } from './destinations/index.js';
import { overlapWithDatabase } from './destinations/overlap.js';
import type { DestinationSet } from './destinations/set.js';
import { BackupError, errorMessage, messageWithCauses, optionError } from './errors.js';
import { describeSource, HEARTBEAT_MS, runBackup } from './engine/backup.js';
import { readingParentIndex } from './engine/parent-index.js';
import { Catalog, explainPartsWithoutManifests, type Leftover, type RecoveryReport } from './engine/catalog.js';
import { repairIndexes } from './engine/index-repair.js';
import { indexAvailable, indexSource, INDEX_REPAIR_HINT } from './engine/stored.js';
import { Keyring } from './engine/keyring.js';
import { newBackupId, paths, PathTemplate } from './engine/layout.js';
import { InUse } from './engine/in-use.js';
import { checkSelections } from './engine/logical.js';
import { authProblem, unauthenticated } from './engine/manifest-auth.js';
import { unsealer } from './engine/sealed.js';
import { backupResources, describeSourceShort, sameSource, selectionKey, sourceKey, summarize, undefinedResources, type BackupSummary, type Manifest, type ManifestHead, type VerificationResult } from './engine/manifest.js';
import type { ProgressEvent } from './engine/progress.js';
import { definedResources, runRestore, selectGroups, type RestoreMode, type RestoreReport, type SourceFailure } from './engine/restore.js';
import { salvageRefusal } from './engine/salvage.js';
import { isLocalClient, type DatabaseLike } from './engine/s3db.js';
import { rawObjects } from './engine/raw-objects.js';
import { damagedManifestCopies, holdersOf, verifyManifest } from './engine/verify.js';
import { DEFAULT_HOOK_TIMEOUT_MS, normalizeOptions, type BackupPluginOptions, type NormalizedOptions } from './options.js';
import { defaultHolderId } from './lease/index.js';
import { LeaseGroup } from './lease/group.js';
import { BackupPolicy, MAX_AFTER_RESTORE } from './policy.js';
import { planRetention, validateRetentionPolicy, type RetentionBackup, type RetentionPlan } from './retention/index.js';
import { redactCredentials, redacted, redactedTarget } from './redact.js';
import { openDatabase, type OpenedDatabase } from './target.js';
import { restoreRequest } from './restore-request.js';
import { activityOf, databaseKey, restoresInto, type DatabaseActivity, type Reader } from './database-activity.js';

export interface CreateBackupOptions {
  type?: 'full' | 'incremental' | 'selective';
  reason?: string;
  metadata?: Record<string, unknown>;
  /** Resources to back up (default, also for null as s3db.js's docs write it: all, minus `exclude`). */
  resources?: string[] | null;
  /** Labels kept in the manifest, in plaintext (retention's `tags` rules keep backups carrying them). */
  tags?: string[];
  /** Stops the backup (cleanly, ERR_ABORTED), or its wait behind a running one. */
  signal?: AbortSignal;
}

/** What the plugin's own schedules and triggers add to createBackup()'s options. */
export interface AutomaticBackupOptions {
  /** The trigger or schedule that started this backup. */
  trigger?: { event: string; payload: unknown } | null;
  /** Called when the backup leaves the queue and starts. */
  onStart?: () => void;
  /** Resources left out besides the `exclude` option (the main schedule's, for resources with their own). */
  alsoExclude?: string[];
}

export interface BackupResult extends BackupSummary {
  /** What was backed up in one word: a resource name, 'all', or names joined by ','. */
  resource: string;
}

export interface RestoreOptions {
  backupId?: string;
  /** Where to restore: omitted/'production' = this plugin's database; a Database; a connection string; or a bare name (see README). */
  destination?: string | DatabaseLike;
  /** Resources to restore (default, also for null as s3db.js's docs write it: all the backup holds). */
  resources?: string[] | null;
  mode?: RestoreMode;
  verify?: boolean;
  dryRun?: boolean;
  /**
   * Restore a backup that is not encrypted although this plugin has a passphrase (taken before
   * encryption was turned on): nothing authenticates it, so it is refused without this.
   */
  allowPlaintext?: boolean;
  /**
   * Write every object of the backup, also those the database already holds in the backup's
   * version (default false: they are left in place and counted `unchanged` in the report).
   */
  rewriteUnchanged?: boolean;
  /**
   * Restore what a damaged backup still holds: a part damaged at every destination (found by the
   * verification, which salvage needs) is passed over, and the objects the backup's snapshot names
   * in it are left as the database has them (never written, never deleted) and named in the
   * report's `lost`. Anything else wrong with the backup (its index, its manifest, a part of its
   * database-level objects or of a filtered resource) is still refused. Default false.
   */
  salvage?: boolean;
}

/**
 * restore(backupId, options): s3db.js's dialect. `overwrite` is s3db.js's documented switch
 * ("overwrite existing data"): true is mode 'merge', false (and the default) is mode 'skip'.
 */
export interface S3dbRestoreOptions extends RestoreOptions {
  overwrite?: boolean;
}

export interface ListBackupsOptions {
  resource?: string;
  limit?: number;
  verified?: boolean;
  type?: 'full' | 'incremental';
  /** s3db.js docs: backups started at or after / before these times, and ids starting with `prefix`. */
  startDate?: Date | string;
  endDate?: Date | string;
  prefix?: string;
}

const LIST_CHECKS: Record<string, Check | null> = {
  resource: isString,
  limit: null,
  verified: isBoolean,
  type: oneOf('full', 'incremental'),
  startDate: null,
  endDate: null,
  prefix: isString,
};
/** createBackup's options (the plugin's own schedules and triggers add AutomaticBackupOptions: automaticBackup()). */
const CREATE_CHECKS: Record<string, Check | null> = {
  type: oneOf('full', 'incremental', 'selective'),
  reason: isString,
  metadata: (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return `must be an object of values stored with the backup, not ${shown(v)}`;
    try {
      JSON.stringify(v);
      return null;
    } catch (err) {
      return `cannot be stored as JSON (${errorMessage(err)})`;
    }
  },
  resources: (v) =>
    v === null ? null : Array.isArray(v) && v.length > 0 && v.every((r) => typeof r === 'string') ? reservedResourceName(v) : 'must be a non-empty array of resource names (or null: every resource)',
  tags: (v) => (Array.isArray(v) && v.every((t) => typeof t === 'string' && t.trim() !== '') ? null : "must be an array of non-empty strings, e.g. createBackup({ tags: ['pre-deploy'] })"),
  signal: (v) => (v instanceof AbortSignal ? null : `must be an AbortSignal (e.g. AbortSignal.timeout(ms)), not ${shown(v)}`),
};

function timeOption(name: string, value: Date | string | undefined): number | null {
  if (value === undefined) return null;
  const t = value instanceof Date ? value.getTime() : Date.parse(value);
  if (!Number.isFinite(t)) throw optionError(name, 'must be a Date or an ISO 8601 time');
  return t;
}

/** Which plugin's hook or webhook is running in the current async context (lets stop() called from one return at once). */
const insideUserCode = new AsyncLocalStorage<BackupPlugin>();

/** s3db.js's BackupPlugin hooks (options of the same names). */
type HookName = 'onBackupStart' | 'onBackupComplete' | 'onBackupError' | 'onRestoreStart' | 'onRestoreComplete' | 'onRestoreError';

/** The logger s3db.js hands its plugins (pino); typed from s3db.js so `db.usePlugin(new BackupPlugin())` type-checks. */
type S3dbPlugin = Parameters<S3db['usePlugin']>[0];
type Logger = NonNullable<S3dbPlugin['logger']>;
/** What s3db.js passes to install(): its Database. */
type S3dbDatabaseRef = Parameters<S3dbPlugin['install']>[0];

/**
 * The plugin's events, typed (src/events.ts), as overloads on an untyped EventEmitter: a generic
 * `EventEmitter<Map>` base needs @types/node >= 20.12, and with an older one (under skipLibCheck)
 * the class would lose `on()` altogether. Other names (`'error'`, s3db.js's own) keep working.
 */
export interface BackupPlugin {
  on<K extends keyof BackupPluginEvents>(event: K, listener: (...args: BackupPluginEvents[K]) => void): this;
  on(event: string | symbol, listener: (...args: never[]) => void): this;
  once<K extends keyof BackupPluginEvents>(event: K, listener: (...args: BackupPluginEvents[K]) => void): this;
  once(event: string | symbol, listener: (...args: never[]) => void): this;
  off<K extends keyof BackupPluginEvents>(event: K, listener: (...args: BackupPluginEvents[K]) => void): this;
  off(event: string | symbol, listener: (...args: never[]) => void): this;
  emit<K extends keyof BackupPluginEvents>(event: K, ...args: BackupPluginEvents[K]): boolean;
}

export class BackupPlugin extends EventEmitter {
  readonly name = 'BackupPlugin';
  slug = 'backup';
  instanceName?: string;
  database: DatabaseLike | null = null;
  /** Why the last install() refused the database (s3db.js registers the plugin all the same). */
  private installRefused: string | null = null;
  logger?: Logger;
  readonly options: Readonly<BackupPluginOptions>;
  readonly config: NormalizedOptions;
  readonly destinations: DestinationSet;
  private readonly catalog: Catalog;
  private readonly keyring: Keyring;
  private readonly template: PathTemplate;
  private readonly policy: BackupPolicy;
  private readonly lease: LeaseGroup | null;
  private queue: Promise<unknown> = Promise.resolve();
  /** Backups restores and verifications are reading: deletion leaves them alone meanwhile. */
  private readonly inUse = new InUse();
  private runningBackup: string | null = null;
  /** warnIfEncryptionDropped has spoken. */
  private warnedUnencrypted = false;
  /** warnIfOtherDatabases has spoken. */
  private warnedOtherDatabases = false;
  /** Aborted by stop(): scheduled and triggered backups still waiting for the lease give up (plg:backup:cancelled). */
  private halt = new AbortController();
  private statuses = new Map<string, StatusRecord>();

  constructor(options: BackupPluginOptions = {}) {
    super();
    const normalized = normalizeOptions(options);
    // The passphrase lives only inside the keyring (a #private field); config shows that one is set.
    this.keyring = new Keyring(normalized.passphrase, normalized.iterations);
    // Destination credentials live only in the destinations; config shows them redacted.
    this.config = Object.freeze({ ...normalized, passphrase: normalized.passphrase === null ? null : '[redacted]', destinations: redactCredentials(normalized.destinations) });
    if (this.config.retention) validateRetentionPolicy(this.config.retention);
    this.options = redactCredentials(options);
    // (null or false: none of its own, as left out: s3db.js hands its own)
    if (options.logger !== undefined && options.logger !== null && (options.logger as unknown) !== false) {
      const l = options.logger as unknown as Record<string, unknown>;
      const missing = ['info', 'warn', 'error'].filter((level) => typeof l?.[level] !== 'function');
      if (missing.length > 0) throw optionError('logger', `must have info, warn and error functions (missing: ${missing.join(', ')})`, 'Pass a pino-style logger, or leave logger out (s3db.js hands its own to plugins)');
      this.logger = options.logger as Logger;
    }
    this.template = new PathTemplate(pickTemplate(this.config));
    this.destinations = createDestinationSet(normalized.destinations, normalized.strategy);
    // a store that stops answering is said when it is found so, not left to minutes of silence (walk-28 F3)
    for (const member of this.destinations.members) {
      if (!(member instanceof S3Destination) || !member.reachability) continue;
      member.reachability.onTrip = (err, probeMs) =>
        this.log('warn', { destination: member.label }, `${member.label} could not be reached (${redacted(errorMessage(err))}) after its retries: until it answers, its requests fail at once but for one every ${probeMs / 1000} s, which asks it again`);
    }
    this.catalog = new Catalog(this.destinations, (message, backupId) => this.log('warn', { backupId }, message));
    this.keyring.consult(async () => (await this.catalog.list()).map((e) => e.manifest));
    this.lease = this.config.lease.enabled ? new LeaseGroup(this.destinations.members, { path: 'locks/backup.lease', ttlMs: this.config.lease.ttlMs }) : null;
    this.policy = new BackupPolicy(this, this.config);
  }

  // ---- s3db.js plugin lifecycle -------------------------------------------------------------

  setInstanceName(name: string): void {
    this.instanceName = name;
  }

  async install(database: S3dbDatabaseRef | DatabaseLike): Promise<void> {
    const db = database as unknown as DatabaseLike;
    if (typeof db?.client?.listObjects !== 'function' || typeof db.on !== 'function') {
      throw new BackupError('ERR_NOT_INSTALLED', 'BackupPlugin.install() needs an s3db.js Database (with a client); use db.usePlugin(plugin)');
    }
    try {
      await checkSelections(db, this.config.selections, this.keyring.enabled);
      this.refuseOverlap(db, (i) => (this.config.driver === 'multi' ? `destinations[${i}].config` : 'config'), 'would be backed up as part of it (each backup storing every earlier one), and a whole-database restore would delete them');
    } catch (err) {
      this.installRefused = errorMessage(err);
      throw err;
    }
    this.installRefused = null;
    const codec = implementationNotice(this.config.compression);
    this.log(codec.level, { codec: codec.implementation }, codec.message);
    if (this.keyring.endsWithNewline) {
      this.log('warn', {}, 'encryption.passphrase ends with a newline (read from a file as it is?): it is part of the passphrase, while the command line drops a newline at the end of a --passphrase-file (and "$(cat file)" drops every one), so a file holding this passphrase would not open these backups there. Trim it, or give the command line the same value through --passphrase-env');
    }
    if (this.config.staleAfterMs < 2 * HEARTBEAT_MS) {
      // (not refused: tests and one-instance setups use short values on purpose)
      this.log('warn', { staleAfterMs: this.config.staleAfterMs }, `staleAfterMs is ${this.config.staleAfterMs} ms (milliseconds), under two heartbeats of a running backup (${2 * HEARTBEAT_MS} ms): another instance could take a backup still running on another host for a crash's leftovers and delete its parts. The default is 15 minutes`);
    }
    if (this.config.hookTimeoutMs < 1000) {
      // (not refused, as staleAfterMs: a test may want a hook cut short)
      this.log('warn', { hookTimeoutMs: this.config.hookTimeoutMs }, `hookTimeoutMs is ${this.config.hookTimeoutMs} ms (milliseconds), under a second: an onBackupStart or onRestoreStart hook still running after it refuses its backup or restore (ERR_HOOK_FAILED), and other hooks and webhooks are left running. The default is ${DEFAULT_HOOK_TIMEOUT_MS / 1000} seconds`);
    }
    this.database = db;
    provideGetPlugin(db);
    this.policy.attach(db);
  }

  async start(): Promise<void> {
    if (this.halt.signal.aborted) this.halt = new AbortController();
    this.policy.start();
  }

  /**
   * Stops timers and triggers, cancels scheduled or triggered backups that are still waiting for
   * the lease (plg:backup:cancelled), and waits for a running backup to finish.
   */
  async stop(): Promise<void> {
    this.halt.abort();
    // Called from a hook or webhook of this plugin (inside the backup the queue waits for), waiting
    // would last until hookTimeoutMs: for that backup, for a tick queued behind it, or for the
    // cron catch-up it is. The timers stop at once all the same; the backup ends on its own.
    if (insideUserCode.getStore() === this) {
      this.policy.stop().catch((err: unknown) => this.log('warn', { err: errorMessage(err) }, 'stopping the schedules failed'));
      return;
    }
    await this.policy.stop();
    await this.queue.catch(() => undefined);
  }

  async uninstall(): Promise<void> {
    await this.stop();
    this.policy.detach();
    await this.destinations.close();
    this.database = null;
  }

  // ---- seed API -----------------------------------------------------------------------------

  /** Takes a backup now. Queues behind a running one (here, or on another instance: see the lease). */
  async createBackup(options: CreateBackupOptions = {}): Promise<BackupResult> {
    checkOptions('createBackup', options, CREATE_CHECKS);
    return this.automaticBackup(options);
  }

  /**
   * @internal createBackup() with the options only the plugin's schedules and triggers give
   * (`trigger`, `onStart`, `alsoExclude`), unchecked.
   */
  async automaticBackup(options: CreateBackupOptions & AutomaticBackupOptions): Promise<BackupResult> {
    // stop() cancels this backup if it is still waiting for another instance's lease then; one
    // asked for after stop() (a stopped plugin used by hand) is not cancelled by it.
    const stopped = this.halt.signal.aborted ? undefined : this.halt.signal;
    const signal = options.signal;
    if (!signal) return this.serialized(() => this.takeBackup(options, stopped));
    // The caller's signal also ends the wait behind this plugin's running backup (which may take
    // hours): the backup never starts, so it is not reported as a failure. Once started, the
    // backup itself answers the signal (it stops cleanly: ERR_ABORTED, reported as a failure).
    let started = false;
    let abandoned = false;
    const queued = this.serialized(() => {
      if (abandoned) return Promise.resolve(null);
      started = true;
      return this.takeBackup(options, stopped);
    });
    return new Promise<BackupResult>((resolve, reject) => {
      const onAbort = () => {
        if (started) return;
        abandoned = true;
        reject(new BackupError('ERR_ABORTED', 'the backup was aborted through its signal before it started (it waited for a running backup of this plugin, or the signal was aborted already); it did not run'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) onAbort();
      queued.then(
        (result) => (result === null ? undefined : resolve(result)),
        (err: unknown) => reject(err),
      ).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Runs `fn` after every earlier backup/prune/delete of this plugin. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Takes the destination's backup lease (no other instance backs up, prunes or deletes meanwhile).
   * `cancel.stopped` (the plugin's stop()) and `cancel.signal` (the caller's) end the wait for
   * another instance's lease: nothing has been written yet, so the backup just does not run.
   */
  private async acquireLease(cancel: { stopped?: AbortSignal; signal?: AbortSignal } = {}): Promise<LeaseGroup | null> {
    const lease = this.lease;
    if (!lease) return null;
    const signals = [cancel.stopped, cancel.signal].filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    const got = await lease.acquire(defaultHolderId(), this.config.lease.ttlMs, { waitMs: this.config.lease.waitMs, ...(signal ? { signal } : {}) });
    if (!got.acquired && cancel.signal?.aborted) {
      throw new BackupError('ERR_ABORTED', 'the backup was aborted through its signal while it waited for the backup lease; it did not run');
    }
    if (!got.acquired && cancel.stopped?.aborted) {
      throw new BackupError('ERR_CANCELLED', 'the plugin was stopped while this backup waited for the backup lease; it did not run');
    }
    if (!got.acquired) {
      const holder = got.reason === 'held' ? `${got.holder.holder ?? 'another instance'}` : 'another instance';
      throw new BackupError('ERR_LEASE_HELD', `${holder} holds the backup lease of ${this.destinations.label} (waited ${Math.round(this.config.lease.waitMs / 1000)} s); try again when its backup has finished`);
    }
    return lease;
  }

  /**
   * Runs `fn` under the backup lease. `freesSpace` (a deletion): when the lease cannot be taken
   * because a destination is full, `fn` runs without it, since deleting is the way out of a full
   * disk and no backup can write there meanwhile (one writing elsewhere on a chain this deletes is
   * refused at its commit: ERR_CHAIN_BROKEN).
   */
  private async withLease<T>(fn: () => Promise<T>, options: { freesSpace?: boolean } = {}): Promise<T> {
    let lease: LeaseGroup | null;
    try {
      lease = await this.acquireLease();
    } catch (err) {
      if (!options.freesSpace || !(err instanceof BackupError) || err.code !== 'ERR_DESTINATION_FULL') throw err;
      this.log('warn', { code: err.code }, `the backup lease could not be taken (${err.message}); deleting without it, since deleting frees the space and no backup can write there meanwhile`);
      return fn();
    }
    try {
      return await fn();
    } finally {
      await lease?.release();
    }
  }

  /** When each schedule (the main one, per-resource ones) fires next; empty with `schedule: false`. */
  nextRuns(): { schedule: string; at: Date | null }[] {
    return this.policy.nextRuns();
  }

  /** True while a backup runs (scheduled ticks are skipped meanwhile). */
  get busy(): boolean {
    return this.runningBackup !== null;
  }

  /** True when no destination holds any object at all (a listing that fails counts as holding some). */
  private async destinationsHoldNothing(): Promise<boolean> {
    const holds = await Promise.all(
      this.destinations.members.map(async (member) => {
        try {
          for await (const _ of member.list('')) return true;
          return false;
        } catch {
          return true;
        }
      }),
    );
    return !holds.includes(true);
  }

  /** Backups at the destination(s), newest first. */
  async listBackups(options: ListBackupsOptions = {}): Promise<BackupSummary[]> {
    // a mistyped filter would list nothing, which at 3 AM reads as "no backups"
    checkOptions('listBackups', options, LIST_CHECKS);
    const { entries, unreadable, unlisted } = await this.catalog.survey();
    for (const u of unlisted) {
      // `unlisted`: the command line's list exits 5 on it (a partial list)
      this.log('warn', { destination: u.label, err: u.error, unlisted: true }, `a destination could not be listed (${u.error}): the backups shown are those the others hold, and each one's status at ${u.label} is what was stored at backup time, not what it holds now`);
    }
    // A backup whose chain holds one recorded as failing verification, one whose manifest is
    // missing or unreadable, or one never verified is not `verified`, whatever its own last
    // verification said. (Retention counts only the recorded failure: a lost manifest may come back.)
    const verifications = new Map(entries.map((e) => [e.manifest.id, e.summary.verification]));
    const missing = new Set<string>();
    const unsealer = this.unsealer();
    let list = await Promise.all(
      entries.map(async (e) => {
        const problem = chainProblem(e.manifest, verifications, true);
        if (problem?.kind === 'missing') missing.add(e.manifest.chain.find((id) => !verifications.has(id))!);
        const shown = await unsealer(e.manifest);
        const summary = { ...e.summary, reason: shown.reason, metadata: shown.metadata };
        return problem ? { ...summary, verified: false } : summary;
      }),
    );
    const lostAt = new Map<string, string[]>();
    for (const b of list) for (const label of b.manifestMissingAt ?? []) lostAt.set(label, [...(lostAt.get(label) ?? []), b.id]);
    for (const [label, ids] of lostAt) {
      this.log('warn', { destination: label, backups: ids }, `the manifests of ${ids.length} backup${ids.length > 1 ? 's' : ''} stored at ${label} are missing there (${ids.slice(0, 3).join(', ')}${ids.length > 3 ? ', ...' : ''}): listed from the other destinations; recoverBackups() puts them back`);
    }
    for (const id of missing) {
      this.log('warn', { backupId: id }, `backups that need ${id} are listed as not verified: its manifest is missing or unreadable (recoverBackups() puts a lost manifest back from its copy beside the parts, or says why it cannot)`);
    }
    for (const bad of unreadable) {
      const hint = bad.error.includes('written by a newer s3db-backup') ? '' : '; recoverBackups() puts a lost or corrupt one back from its copy';
      this.log('warn', { backupId: bad.id, err: bad.error }, `backup ${bad.id} is left out of the list: its manifest cannot be read (${bad.error})${hint}`);
      this.emit('plg:backup:unreadable', bad);
    }
    if (list.length === 0 && unreadable.length === 0) {
      // "No backups" and "wrong place" look alike; say so when the place itself is wrong, and
      // when parts are there without manifests.
      for (const member of this.destinations.members) {
        // the place itself looks wrong (misplaced), or holds parts whose manifests are gone
        // (manifestsLost): the command line's list exits 1, or 3, on them
        const misplaced = (await member.explainEmpty?.().catch(() => null)) ?? null;
        const parts = misplaced === null ? await explainPartsWithoutManifests(member).catch(() => null) : null;
        const why = misplaced?.why ?? parts?.why;
        if (why) this.log('warn', { destination: member.label, misplaced: misplaced?.certain === true, manifestsLost: parts?.manifestsLost === true }, `no backups listed: ${why}`);
      }
    }
    if (options.resource !== undefined) list = list.filter((b) => b.resources.includes(options.resource!));
    if (options.verified !== undefined) list = list.filter((b) => b.verified === options.verified);
    if (options.type !== undefined) list = list.filter((b) => b.type === options.type);
    const from = timeOption('startDate', options.startDate);
    const to = timeOption('endDate', options.endDate);
    if (from !== null) list = list.filter((b) => Date.parse(b.timestamp) >= from);
    if (to !== null) list = list.filter((b) => Date.parse(b.timestamp) <= to);
    if (options.prefix !== undefined) list = list.filter((b) => b.id.startsWith(options.prefix!));
    if (options.limit !== undefined) {
      if (!Number.isInteger(options.limit) || options.limit < 0) throw optionError('limit', 'must be a non-negative integer');
      list = list.slice(0, options.limit);
    }
    // the caller's own copies: what it does to them never reaches the catalog's (retention reads `tags`)
    return structuredClone(list);
  }

  /** One backup: its summary plus the manifest's details (per-resource counts, parts, s3db.json). */
  async getBackup(id: string): Promise<(BackupSummary & { manifest: Manifest }) | null> {
    if (typeof id !== 'string') throw optionError('backupId', `must be a backup id (a string), not ${shown(id)}`, 'Pick one from listBackups()');
    const stored = await this.catalog.get(id, { confirm: true });
    if (!stored) return null;
    const manifest = await this.unsealer()(stored);
    const summary = summarize(manifest, await this.catalog.latestVerification(id));
    // As in listBackups(): a backup of its chain recorded as failing, or missing, makes it not `verified`.
    const verifications = new Map([[id, summary.verification]]);
    for (const ancestor of manifest.chain.filter((c) => c !== id)) {
      const m = await this.catalog.get(ancestor).catch(() => null);
      if (m) verifications.set(ancestor, summarize(m, await this.catalog.latestVerification(ancestor)).verification);
    }
    return structuredClone({ ...summary, verified: summary.verified && chainProblem(manifest, verifications, true) === null, manifest });
  }

  /** Shows encrypted backups' sealed fields when this plugin's passphrase opens their key (sealed.ts). */
  private unsealer(): <M extends ManifestHead>(m: M) => Promise<M> {
    if (!this.keyring.enabled) return async (m) => m;
    return unsealer(
      (m) => this.keyring.keyForManifest(m, this.destinations),
      (m, message) => this.log('warn', { backupId: m.id }, message),
    );
  }

  /** Deletes a backup. Refuses one that incrementals depend on unless `force` (which deletes them too). */
  async deleteBackup(id: string, options: { force?: boolean } = {}): Promise<{ deleted: string[] }> {
    // force deletes the incrementals built on it too: only `true` means it
    checkOptions('deleteBackup', options, { force: isBoolean }, {}, 'nothing was deleted');
    return this.serialized(() =>
      this.withLease(async () => {
        // a deletion of this id that died midway is finished here (its manifest is already gone)
        if ((await this.finishLeftovers()).some((l) => l.id === id) && !(await this.catalog.get(id))) return { deleted: [id] };
        return this.deleteNow(id, options);
      }, { freesSpace: true }),
    );
  }

  /**
   * Finishes what crashed runs left (catalog.cleanupLeftovers): the parts of unfinished backups
   * once stale, and deletions that died midway, at once; so a delete or prune run again after a
   * crash frees the space, not only the next backup. Never throws. Returns what it cleaned; a
   * deletion finished here is logged (the backup was still listed).
   */
  private async finishLeftovers(): Promise<Leftover[]> {
    const failed = (message: string) => this.log('warn', {}, `cleanup of leftovers: ${message}`);
    const completed = (message: string) => this.log('info', {}, `cleanup of leftovers: ${message}`);
    const done = await this.catalog.cleanupLeftovers(this.config.staleAfterMs, (ids) => this.inUse.claim(ids), failed, completed).catch((err: unknown) => {
      this.log('warn', { err: errorMessage(err) }, 'cleanup of leftovers failed');
      return [];
    });
    for (const l of done) if (l.deletion) this.log('info', { backupId: l.id }, `finished deleting backup ${l.id}, whose deletion (by retention or deleteBackup()) had been cut short`);
    return done;
  }

  private async deleteNow(id: string, options: { force?: boolean }): Promise<{ deleted: string[] }> {
    const manifest = await this.catalog.require(id);
    const dependents = await this.catalog.dependentsOf(id);
    if (dependents.length > 0 && !options.force) {
      throw new BackupError('ERR_BACKUP_HAS_DEPENDENTS', `backup ${id} is needed by incremental backups ${dependents.join(', ')}; delete them first or pass { force: true } to delete them all`);
    }
    const release = this.inUse.claim([id, ...dependents]);
    if (!release) {
      const busy = [id, ...dependents].filter((b) => this.inUse.has(b));
      throw new BackupError('ERR_BACKUP_IN_USE', `backup ${busy.join(', ')} is being read by a restore or verification of this plugin; nothing was deleted: delete it once that ends`);
    }
    const deleted: string[] = [];
    try {
      for (const dep of dependents.reverse()) {
        const m = await this.catalog.get(dep);
        if (m) {
          await this.catalog.remove(m);
          deleted.push(dep);
        }
      }
      await this.catalog.remove(manifest);
      deleted.push(id);
    } finally {
      release();
    }
    this.emit('plg:backup:deleted', { ids: deleted });
    return { deleted };
  }

  /**
   * Verifies a backup now ('quick': sizes and checksums; 'full': decode everything), with every
   * backup its restore needs (an incremental's chain), and records the result.
   * Only what the stored data shows is recorded: a missing or wrong passphrase, an unreachable
   * destination and the like are thrown and recorded nowhere, because a recorded failure makes a
   * backup unverified, which retention then removes.
   */
  async verifyBackup(id: string, options: { level?: 'quick' | 'full' } = {}): Promise<VerificationResult> {
    checkOptions('verifyBackup', options, { level: null });
    const level = options.level ?? 'full';
    if (level !== 'quick' && level !== 'full') throw optionError('level', `"${String(level)}" is not 'quick' or 'full'`);
    const { manifest, release } = await this.pinned(id);
    try {
      const started = Date.now();
      const { result, own } = await this.verifyChain(manifest, level, started);
      if (own && (await this.catalog.recordVerification(id, own, started)) === 'superseded') {
        this.log('info', { backupId: id }, `a verification of ${id} that began after this one stays recorded (this one: verified=${String(own.verified)})`);
      }
      this.emit('plg:backup:verified', { id, ...result });
      return result;
    } finally {
      release();
    }
  }

  /**
   * Backup `id`'s manifest, read with the backup pinned first and then its whole chain (in-use.ts:
   * deletion leaves them alone, and a backup being deleted is refused); call `release` when done.
   */
  private async pinned(id: string): Promise<{ manifest: Manifest; release: () => void }> {
    const releaseId = this.inUse.pin([id]);
    try {
      const manifest = await this.catalog.require(id);
      const releaseChain = this.inUse.pin(manifest.chain);
      return { manifest, release: () => (releaseId(), releaseChain()) };
    } catch (err) {
      releaseId();
      throw err;
    }
  }

  /**
   * `manifest`'s chain, full first, with each encrypted member's key (`withKeys`; else none).
   * A member whose manifest does not authenticate under its key, has no `auth` (stripped, or
   * written before revision 8), whose key cannot be had from it (an edited key check), or, with a
   * passphrase set, is not encrypted, is replaced by a copy that authenticates, held by another
   * destination or beside the parts (catalog.trustedCopy): a manifest edited at one destination of
   * several does not cost the backup; damagedManifestCopies names the edited one. Where no copy
   * authenticates, the one read stays, for verification and restores to refuse or warn about
   * (`unauthentic` remembers it, so an older backup's copies are read once per process).
   * Callers pinned `manifest.chain`; a replaced manifest keeps its id, and a chain it changes is
   * pinned here until `release`.
   */
  private async authenticChain(manifest: Manifest, withKeys: boolean): Promise<{ chain: Manifest[]; keys: Map<string, KeyHandle | null>; release: () => void }> {
    const keyOf = async (m: Manifest): Promise<KeyHandle | null> => (m.encryption && withKeys ? this.keyring.keyForManifest(m, this.destinations) : null);
    const trusted = async (m: Manifest): Promise<boolean> => {
      const key = await keyOf(m).catch(() => null);
      return key !== null && m.auth !== undefined && (await authProblem(m, key)) === null;
    };
    const pins: (() => void)[] = [];
    for (let round = 0; ; round++) {
      const chain = await this.catalog.chainOf(manifest);
      const keys = new Map<string, KeyHandle | null>();
      let replaced: Manifest | null = null;
      for (const m of chain) {
        let key: KeyHandle | null;
        try {
          key = await keyOf(m);
        } catch (err) {
          // (an edited key check or key file in this copy: another may hold the backup's own)
          if (!this.unauthentic.has(m.id) && (replaced = await this.catalog.trustedCopy(m.id, trusted))) break;
          throw err;
        }
        keys.set(m.id, key);
        const suspect = key ? m.auth === undefined || (await authProblem(m, key)) !== null : withKeys && this.keyring.enabled && !m.encryption;
        if (!suspect || this.unauthentic.has(m.id)) continue;
        if ((replaced = await this.catalog.trustedCopy(m.id, trusted))) break;
        if (m.auth === undefined) this.unauthentic.add(m.id); // (an edited one is looked for again: it may be put back)
      }
      // each round replaces one more member by an authentic manifest, which is never replaced again
      if (!replaced || round > chain.length) return { chain, keys, release: () => pins.forEach((release) => release()) };
      if (replaced.id === manifest.id) {
        manifest = replaced;
        pins.push(this.inUse.pin(manifest.chain));
      }
    }
  }

  /**
   * Verifies `manifest` with its chain: `result` is its verdict with the chain it needs (what a
   * restore of it would meet), `own` the verdict of its own data. Each backup of the chain before
   * it gets its own verdict recorded as well: verifying an incremental is how a damaged full
   * behind it is found, and recoverBackups() repairs an index where the damaged backup's own
   * record names it.
   * Invariant: a record holds a backup's OWN verdict, never one derived from its chain. Readers
   * (listBackups, getBackup, retention: chainFailed) combine the chain's records when they read,
   * so a repaired and re-verified ancestor clears its dependents at once; a derived failure stored
   * on a dependent would outlive the repair and let retention delete a restorable backup.
   * A chain with a missing member (ERR_CHAIN_BROKEN) records nothing (`own` null): a lost
   * manifest may come back with recoverBackups().
   */
  /** Backups with no copy that authenticates (authenticChain): not looked for again by this process. */
  private readonly unauthentic = new Set<string>();

  private async verifyChain(manifest: Manifest, level: 'quick' | 'full', started: number): Promise<{ result: VerificationResult; own: VerificationResult | null }> {
    let authentic: Awaited<ReturnType<BackupPlugin['authenticChain']>>;
    try {
      // quick decodes nothing, but with a passphrase set it checks it (and the manifests' authentication)
      authentic = await this.authenticChain(manifest, level === 'full' || this.keyring.enabled);
    } catch (err) {
      if (!(err instanceof BackupError && err.code === 'ERR_CHAIN_BROKEN')) throw err;
      return { result: { verified: false, level, at: new Date().toISOString(), error: err.message, destinations: [] }, own: null };
    }
    const { chain, keys } = authentic;
    const ancestorErrors: string[] = [];
    const damagedChain: string[] = [];
    const damagedCopies: NonNullable<VerificationResult['damagedCopies']> = [];
    // where the previous member's index verified: its child's index is joined with it, read there first
    let indexAt: string | undefined;
    try {
      for (const [at, m] of chain.entries()) {
        const untrusted = unauthenticated(m, this.keyring.enabled);
        if (untrusted) this.log('warn', { backupId: m.id }, `verification of ${manifest.id}: ${untrusted}`);
        // its index is joined with its parent's where the parent verified (else entries naming other backups are checked less)
        const parent = at > 0 && !damagedChain.includes(chain[at - 1]!.id) ? { manifest: chain[at - 1]!, key: keys.get(chain[at - 1]!.id) ?? null, indexAt } : null;
        const { result: own, goodSources } = await verifyManifest(m, this.destinations, keys.get(m.id) ?? null, { level, parent, ...this.reporting });
        indexAt = goodSources.get(indexSource(m.id));
        for (const d of own.destinations) {
          // Verified overall (each object is good somewhere) while one copy is damaged: redundancy is lost.
          if (own.verified && !d.verified) {
            this.log('warn', { backupId: m.id, destination: d.label, err: d.error }, `backup ${m.id} verifies from another destination, but its copy at ${d.label} is damaged`);
            damagedCopies.push({ backupId: m.id, label: d.label, error: d.error });
          }
        }
        const key = keys.get(m.id) ?? null;
        // a copy is judged by its own authentication where the one verified has it (another destination's may be edited)
        const judge = key && m.auth !== undefined ? async (c: Manifest) => c.auth !== undefined && (await authProblem(c, key)) === null : null;
        for (const c of await damagedManifestCopies(m, this.destinations, judge)) {
          this.log('warn', { backupId: m.id, destination: c.label }, `backup ${m.id} at ${c.label}: ${c.error}`);
          damagedCopies.push({ backupId: m.id, label: c.label, error: c.error });
        }
        const verdict: VerificationResult =
          ancestorErrors.length === 0 ? own : { ...own, verified: false, error: [...ancestorErrors, ...(own.error ? [own.error] : [])].join('; '), damagedChain };
        if (m.id === manifest.id) return { result: damagedCopies.length > 0 ? { ...verdict, damagedCopies } : verdict, own };
        await this.catalog.recordVerification(m.id, own, started);
        if (!own.verified) {
          ancestorErrors.push(`it needs ${m.id}, which fails verification: ${own.error}`);
          damagedChain.push(m.id);
        }
      }
      throw new Error(`internal: backup ${manifest.id} is not in its own chain`);
    } finally {
      authentic.release();
    }
  }

  /**
   * What the user should check about where a restore of `manifest` wrote (or, dry, would write):
   * a location with no s3db.json, or this plugin's own database when the backup is another's.
   */
  private async targetWarnings(report: RestoreReport, opened: OpenedDatabase, manifest: Manifest): Promise<string[]> {
    const warnings: string[] = [];
    if (opened.absent) {
      // no s3db.json: a new location, or a database whose s3db.json alone was lost
      const held = report.resources.reduce((n, r) => n + r.overwritten + r.unchanged + r.skipped + r.deleted + r.kept, 0);
      warnings.push(
        held === 0
          ? `there is no database at ${opened.location} yet: this restore would create it there (check the location)`
          : `there is no s3db.json at ${opened.location}, though it holds objects of the backup's resources (${held} of them would be overwritten, left as they are, kept or deleted): a database whose schema was lost (README runbook step 4), or not the location you meant`,
      );
    }
    // Into this plugin's own database, a backup of another one while the destination also holds
    // this one's: most likely a configuration copied from another environment. (A database
    // restored after a disaster has no backups of its own yet: no warning there.) Or into an
    // in-memory database, a backup of another one: most likely the scratch database of the
    // runbook's step 2, restored into when production was meant (its data goes with the process).
    const here = describeSource(opened.db);
    if (opened.db === this.database && !sameSource(manifest.source, here)) {
      if (here.client === 'MemoryClient' && manifest.source.client !== 'MemoryClient') {
        warnings.push(`backup ${manifest.id} was taken from ${describeSourceShort(manifest.source)}, and this restore ${report.dryRun ? 'would write' : 'wrote'} into this plugin's own database, ${describeSourceShort(here)}, which lives in this process's memory: to restore the database the backup came from, give its connection string as destination`);
      } else if ((await this.catalog.list()).some((e) => sameSource(e.manifest.source, here))) {
        warnings.push(`backup ${manifest.id} was taken from another database (${describeSourceShort(manifest.source)}) than this plugin's (${describeSourceShort(here)}), whose own backups are at this destination too: check it is the one you meant to restore (listBackups() items have a source)`);
      }
    }
    return warnings;
  }

  /**
   * Refuses a chain a restore must not trust (nothing restored), or returns the warnings for one
   * it trusts less: a manifest whose authentication tag fails (checked with or without `verify`:
   * an edited manifest could name other parts that all verify), and, with a passphrase set, a
   * plaintext backup (it may have been put in place of an encrypted one) unless `allowPlaintext`.
   */
  private async trustedForRestore(chain: Manifest[], keys: Map<string, KeyHandle | null>, allowPlaintext: boolean): Promise<string[]> {
    for (const m of chain) {
      const forged = keys.get(m.id) ? await authProblem(m, keys.get(m.id)!) : null;
      if (forged) throw new BackupError('ERR_VERIFY_FAILED', `backup ${m.id} failed verification, nothing was restored: ${forged}`);
    }
    const plaintext = this.keyring.enabled ? chain.find((m) => !m.encryption) : undefined;
    if (plaintext && !allowPlaintext) {
      throw new BackupError(
        'ERR_NOT_ENCRYPTED',
        `backup ${plaintext.id} is not encrypted, while this plugin has a passphrase: nothing authenticates it, so whoever can write to the destination could have put it there in place of an encrypted one. Nothing was restored. If it was taken before encryption was turned on, restore it with allowPlaintext: true (command line: --allow-plaintext)`,
      );
    }
    return chain.map((m) => unauthenticated(m, this.keyring.enabled)).filter((w): w is string => w !== null);
  }

  /**
   * A full verification of the parts a restore of `resources` (null: all) will read, of every
   * member of the chain, before anything is written (ERR_VERIFY_FAILED otherwise): where each part
   * was found whole (the restore reads it there), and the destinations that failed on the way.
   */
  private async verifiedForRestore(
    chain: Manifest[],
    keys: Map<string, KeyHandle | null>,
    resources: string[] | null,
    salvage: boolean,
  ): Promise<{ goodSources: Map<string, string>; sourceFailures: SourceFailure[]; lostParts: Set<string> }> {
    const goodSources = new Map<string, string>();
    const sourceFailures: SourceFailure[] = [];
    const lostParts = new Set<string>();
    const started = Date.now();
    const groups = resources ? new Set(resources) : null;
    for (const [at, m] of chain.entries()) {
      // (each member before it verified: a failure throws below)
      const parent = at > 0 ? { manifest: chain[at - 1]!, key: keys.get(chain[at - 1]!.id) ?? null, indexAt: goodSources.get(indexSource(chain[at - 1]!.id)) } : null;
      const outcome = await verifyManifest(m, this.destinations, keys.get(m.id) ?? null, { level: 'full', groups, parent, ...this.reporting });
      // What this verification found is recorded as verifyBackup() records it, so that
      // listBackups() and recoverBackups() know of damage a restore found (the runbook's
      // "restore failed, run recoverBackups()"): always when it read every part; a selective
      // restore read only some, so only its failure is recorded (a success would claim the rest).
      if (!groups || !outcome.result.verified) await this.catalog.recordVerification(m.id, outcome.result, started);
      if (!outcome.result.verified) {
        const refusal = salvageRefusal(m, outcome.missing);
        if (!salvage || refusal !== null) {
          const how = salvage ? ` (salvage passes over damaged parts of resources only: ${refusal})` : refusal === null ? '. To restore what it still holds, restore with salvage' : '';
          throw new BackupError('ERR_VERIFY_FAILED', `backup ${m.id} failed verification, nothing was restored: ${outcome.result.error}${how}`);
        }
        for (const path of outcome.missing) lostParts.add(path);
      }
      for (const [path, label] of outcome.goodSources) goodSources.set(path, label);
      // (a part passed over is the report's `passedOver` and `lost`: no other copy was read for it)
      sourceFailures.push(...outcome.failures.filter((f) => !lostParts.has(f.path)));
    }
    return { goodSources, sourceFailures, lostParts };
  }

  /**
   * Restores a backup. Seed dialect: restore({ backupId, destination, resources, mode, verify, dryRun });
   * s3db.js dialect: restore(backupId, { resources, mode, overwrite }), whose defaults are s3db.js's:
   * records that exist are kept (mode 'skip': s3db.js's restore inserts, and s3db.js refuses to
   * insert over an existing id), and a 'replace' replaces the resources the backup holds, leaving
   * the others and their definitions alone (s3db.js's replaces resource by resource).
   */
  async restore(idOrOptions: string | RestoreOptions, maybeOptions?: S3dbRestoreOptions): Promise<RestoreReport> {
    const { options, backupId, mode, s3dbDialect } = restoreRequest(idOrOptions, maybeOptions);
    const publicOptions = { destination: describeTarget(options.destination), resources: options.resources ?? null, mode, dryRun: options.dryRun ?? false, verify: options.verify ?? true };
    // s3db.js passes the restore options themselves; `options` is kept for existing listeners.
    let opened: Awaited<ReturnType<typeof openDatabase>> | null = null;
    let release = (): void => undefined;
    let releaseGate = (): void => undefined;
    this.policy.pauseScheduled(true);
    try {
      await this.callHook('onRestoreStart', backupId, { ...publicOptions, options: publicOptions });
      this.emit('plg:backup:restore-start', { id: backupId, options: publicOptions });
      const held = await this.pinned(backupId);
      release = held.release;
      const authentic = await this.authenticChain(held.manifest, true);
      release = () => (held.release(), authentic.release());
      const { chain, keys } = authentic;
      const manifest = chain[chain.length - 1]!;
      const trustWarnings = await this.trustedForRestore(chain, keys, options.allowPlaintext === true);
      const requested = options.resources ?? null;
      selectGroups(manifest, requested); // a name the backup lacks is said now, not after the chain was read to verify it (walk-30 F4)
      // the overlap is checked before s3db.js's connect() writes anything there (an empty s3db.json)
      const overlapCheck = (db: DatabaseLike) => this.refuseOverlap(db, () => 'destination', 'would be written over or deleted by this restore', 'Restore into another database (a location outside the backups)');
      const openTarget = () => openDatabase(options.destination, this.database, { replacesSchema: !(options.dryRun ?? false) && mode === 'replace' && !requested, dryRun: options.dryRun ?? false, beforeConnect: overlapCheck });
      // A dry run writes nothing, so it opens the target first: one it cannot open (a damaged
      // s3db.json, a bucket that does not exist) is said at once, not after the whole backup was
      // verified. A restore opens it after: a damaged backup writes nothing, not even the empty
      // s3db.json s3db.js's connect() leaves where there is none.
      if (options.dryRun) opened = await openTarget();
      const { goodSources, sourceFailures, lostParts } =
        options.verify ?? true ? await this.verifiedForRestore(chain, keys, requested, options.salvage === true) : { goodSources: undefined, sourceFailures: [], lostParts: new Set<string>() };
      opened ??= await openTarget();
      const { db: target, schemaFromConnect } = opened;
      const narrowed = s3dbDialect && mode === 'replace' && !requested ? await s3dbReplaceScope(target, manifest, options.dryRun ?? false) : null;
      const resources = narrowed?.resources ?? requested;
      const intoKey = databaseKey(target);
      if (!(options.dryRun ?? false)) {
        // backups of this database (by any plugin of this process) wait, and the ones reading it stop
        const activity = activityOf(intoKey);
        releaseGate = activity.gate.hold();
        await this.cancelReaders(activity, backupId);
      }
      const restoreNow = () => runRestore({
        chain,
        keys,
        set: this.destinations,
        target,
        resources,
        mode,
        dryRun: options.dryRun ?? false,
        concurrency: this.concurrencyFor(target),
        pageSize: this.pageSizeFor(target),
        goodSources,
        sourceFailures,
        lostParts,
        schemaFromConnect,
        rewriteUnchanged: options.rewriteUnchanged ?? false,
        ...this.reporting,
      });
      const ran = options.dryRun ? await restoreNow() : await restoresInto.run(intoKey, restoreNow);
      releaseGate(); // written: a backup asked for by onRestoreComplete reads the restored database
      const report: RestoreReport = { ...ran, target: opened.location };
      report.warnings.push(...trustWarnings, ...(narrowed ? [narrowed.note] : []));
      report.warnings.push(...(await this.targetWarnings(report, opened, manifest)));
      // inReport: a caller that prints the report (the command line) need not print these twice
      for (const warning of report.warnings) this.log('warn', { backupId, dryRun: report.dryRun, inReport: true }, `restore of ${backupId}: ${warning}`);
      await this.callHook('onRestoreComplete', backupId, { restored: report.restored, report });
      this.emit('plg:backup:restore-complete', { id: backupId, restored: report.restored, report });
      return report;
    } catch (err) {
      releaseGate(); // before the hook: a backup it asks for must not wait for this restore
      let error = asBackupError(err, 'ERR_RESTORE_FAILED', `restore of ${backupId} failed`);
      // a restore lists no database but its target: a listing that failed is the target's
      if (error.code === 'ERR_SOURCE_READ') error = new BackupError('ERR_TARGET_OPEN', `could not read the restore destination ${opened?.location ?? describeTarget(options.destination)}: ${error.message}`, { cause: error });
      await this.callHook('onRestoreError', backupId, { error });
      this.emit('plg:backup:restore-error', { id: backupId, error: error.message, code: error.code });
      throw error;
    } finally {
      release();
      releaseGate();
      this.policy.pauseScheduled(false);
      await opened?.close();
    }
  }

  /**
   * Resolves once no restore writes into the database; waiting ends with ERR_ABORTED when the
   * caller's signal aborts, and ERR_CANCELLED when the plugin stops (`stopped`), as the lease wait.
   */
  private async passGate(activity: DatabaseActivity, stopped: AbortSignal | undefined, signal: AbortSignal | undefined): Promise<void> {
    while (activity.gate.closed) {
      if (signal?.aborted) throw new BackupError('ERR_ABORTED', 'the backup was aborted through its signal while it waited for a restore into the database to end; it did not run');
      if (stopped?.aborted) throw new BackupError('ERR_CANCELLED', 'the plugin was stopped while this backup waited for a restore into the database to end; it did not run');
      const ends = [signal, stopped].filter((s): s is AbortSignal => s !== undefined);
      await new Promise<void>((resolve) => {
        const done = () => {
          for (const s of ends) s.removeEventListener('abort', done);
          resolve();
        };
        for (const s of ends) s.addEventListener('abort', done, { once: true });
        void activity.gate.passed().then(done);
      });
    }
  }

  /**
   * A restore is about to write into a database: a backup reading it now would hold part of it
   * from before the restore and part from after, and be listed as the newest good backup. Each is
   * cancelled (plg:backup:cancelled; older backups are untouched; a scheduled or triggered one is
   * taken again after the restore: see policy.ts) and its end awaited, except from inside one of
   * this plugin's hooks (the backup may be waiting for that hook).
   */
  private async cancelReaders(activity: DatabaseActivity, restoring: string): Promise<void> {
    const readers = [...activity.readers];
    for (const reader of readers) {
      reader.cancel.abort(`a restore of ${restoring} into this database began while this backup read it; it was cancelled so that no backup holds a half-restored database (a scheduled or triggered one is taken again after the restore, up to ${MAX_AFTER_RESTORE} times in a row)`);
    }
    if (insideUserCode.getStore() !== this) await Promise.all(readers.map((r) => r.ended));
  }

  /** Applies the retention policy now. With dryRun, reports what it would delete and why. */
  async prune(options: { dryRun?: boolean } = {}): Promise<RetentionPlan & { deleted: string[] }> {
    // a misspelt dry run would delete for real
    checkOptions('prune', options, { dryRun: isBoolean }, { dryrun: 'Use dryRun: true', dry: 'Use dryRun: true', dryRUN: 'Use dryRun: true' }, 'nothing was deleted');
    return this.serialized(() =>
      this.withLease(async () => {
        // a deletion cut short and finished now counts as deleted by this prune (it was listed)
        const finished = options.dryRun ? [] : (await this.finishLeftovers()).filter((l) => l.deletion).map((l) => l.id);
        const result = await this.pruneNow(options);
        return finished.length === 0 ? result : { ...result, deleted: [...new Set([...finished, ...result.deleted])] };
      }, { freesSpace: true }),
    );
  }

  /**
   * `justTaken`: the backup this prune follows, which it never removes (with its chain): its
   * timestamp is older than backups dated after it only when a clock stepped back, and removing
   * it would lose the newest data, just reported as backed up.
   */
  private async pruneNow(options: { dryRun?: boolean; justTaken?: string }): Promise<RetentionPlan & { deleted: string[] }> {
    if (!this.config.retention) throw new BackupError('ERR_NO_RETENTION', 'no retention policy is configured; set the retention option');
    const { entries: list, unlisted } = await this.catalog.survey();
    for (const u of unlisted) {
      this.log('warn', { destination: u.label, err: u.error, dryRun: options.dryRun ?? false }, `a destination could not be listed (${u.error}): retention applies to the backups the others hold, and what it removes stays at ${u.label} until a prune after it answers again`);
    }
    const listed = list.map((e) => e.manifest);
    let plan = keepAlso(planSeries(list, this.config.retention), (id) => this.inUse.has(id), listed, 'being read by a restore or verification');
    if (options.justTaken !== undefined && plan.remove.some((r) => r.id === options.justTaken)) {
      const newer = list.find((e) => e.manifest.id !== options.justTaken)?.manifest;
      this.log('warn', { backupId: options.justTaken }, `backup ${options.justTaken}, just taken, is dated before backups listed as newer${newer ? ` (${newer.id}, started ${newer.startedAt})` : ''}: a clock stepped back, or one that ran fast? Retention keeps it (and its chain) this time; check the clocks of the hosts that take backups`);
      plan = keepAlso(plan, (id) => id === options.justTaken, listed, 'just taken by the backup this prune follows');
    }
    if (!options.dryRun) for (const w of plan.warnings) this.log('warn', {}, `retention: ${w}`);
    const deleted: string[] = [];
    if (!options.dryRun) {
      const removable = new Set(plan.remove.map((r) => r.id));
      // children before parents (a longer chain first: a child's chain is its parent's and itself;
      // timestamps can say otherwise after a clock stepped back), so a crash midway never leaves a
      // listed incremental without its parent: planRetention never removes a backup a kept one
      // needs, and a backup kept here because it is being read keeps its chain the same way (`held`)
      const held = new Set<string>();
      for (const { manifest } of [...list].sort((a, b) => b.manifest.chain.length - a.manifest.chain.length)) {
        if (!removable.has(manifest.id) || held.has(manifest.id)) continue;
        // a restore or verification that began since the plan was made keeps it (it reads it)
        const release = this.inUse.claim([manifest.id]);
        if (!release) {
          for (const id of manifest.chain) held.add(id);
          continue;
        }
        try {
          await this.catalog.remove(await this.catalog.require(manifest.id)); // the whole manifest: its parts
        } finally {
          release();
        }
        deleted.push(manifest.id);
      }
      if (deleted.length > 0) this.emit('plg:backup:pruned', { deleted, kept: plan.keep.map((k) => k.id) });
    }
    return { ...plan, deleted };
  }

  /**
   * Puts back manifests that were lost or corrupted at a destination, from the copy each backup
   * keeps beside its parts (docs/FORMAT.md 1), after checking that its parts are all there with
   * their recorded sizes; then object indexes that are missing or truncated (or corrupt where
   * the backup's latest recorded verification failed), copied from another destination or
   * rebuilt from the parts (engine/index-repair.ts; an encrypted backup needs the passphrase).
   * Run verifyBackup() on what it recovered.
   */
  async recoverBackups(): Promise<RecoveryReport> {
    // A location that holds nothing (a mistyped directory, bucket or prefix) has nothing to put
    // back: said as such, and nothing is written there (the lease would create it)
    if (await this.destinationsHoldNothing()) {
      for (const member of this.destinations.members) {
        const why = (await member.explainEmpty?.().catch(() => null))?.why ?? null;
        this.log('warn', { destination: member.label }, `nothing to recover at ${member.label}: it holds no backup, nor any part, index or key file of one${why ? ` (${why})` : ' (check the directory, bucket and prefix)'}`);
      }
      return { recovered: [], indexes: [], skipped: [], empty: true };
    }
    return this.serialized(() =>
      this.withLease(async () => {
        const manifests = await this.catalog.recover(this.config.staleAfterMs);
        for (const s of manifests.skipped) {
          const what = s.lost !== undefined ? `the manifest of backup ${s.id ?? '?'} at ${s.destination} cannot be put back` : `manifest copy ${s.path} at ${s.destination} not used`;
          this.log('warn', { backupId: s.id, path: s.path, destination: s.destination }, `${what}: ${s.reason}`);
        }
        for (const d of manifests.damaged) {
          this.log('warn', { backupId: d.id, destination: d.destination }, `the manifest of backup ${d.id} was put back at ${d.destination} although ${d.damage}: its other resources can be restored (resources: [...], the command line's --resources); a verification records the damage, so it no longer counts for retention's rules (it is kept as long as a good backup would be): restore what you need from it`);
        }
        const indexes = await repairIndexes({
          catalog: this.catalog,
          set: this.destinations,
          keyFor: async (m) => (m.encryption ? await this.keyring.keyForManifest(m, this.destinations) : null),
          // recorded as verifyBackup() records it: with the chain the backup needs
          verify: async (m) => {
            try {
              return (await this.verifyBackup(m.id, { level: 'quick' })).verified;
            } catch (err) {
              this.log('warn', { backupId: m.id, err: errorMessage(err) }, `the index of backup ${m.id} was put back, but verifying it failed: ${errorMessage(err)}; run verifyBackup() on it`);
              return null;
            }
          },
          ...this.reporting,
        });
        for (const s of indexes.skipped) {
          this.log('warn', { backupId: s.id, path: s.path, destination: s.destination }, `the index of backup ${s.id} at ${s.destination} was not put back: ${s.reason}`);
        }
        // A backup put back with damaged parts gets its damage recorded (quick: sizes and checksums).
        for (const id of new Set(manifests.damaged.map((d) => d.id))) {
          await this.verifyBackup(id, { level: 'quick' }).catch((err: unknown) => this.log('warn', { backupId: id, err: errorMessage(err) }, `verifying backup ${id} after putting its manifest back failed: ${errorMessage(err)}`));
        }
        const embedded = (await this.catalog.list()).find((e) => e.manifest.encryption)?.manifest.encryption?.keyFile ?? null;
        const keyFiles = await this.keyring.mendKeyFiles(this.destinations, embedded as KeyFile | null);
        for (const m of keyFiles.mended) this.log('info', { destination: m.destination }, `key.json at ${m.destination} was unreadable: written back from ${m.from}`);
        for (const l of keyFiles.left) this.log('warn', { destination: l.destination }, `key.json at ${l.destination} was not put back: ${l.reason}; no backup is written there until it is`);
        const report: RecoveryReport = {
          recovered: manifests.recovered,
          indexes: indexes.indexes,
          skipped: [...manifests.skipped, ...indexes.skipped],
          ...(manifests.copies ? { copies: manifests.copies } : {}),
          ...(keyFiles.mended.length + keyFiles.left.length > 0 ? { keyFiles } : {}),
        };
        for (const c of report.copies ?? []) this.log('info', { backupId: c.id, destination: c.destination }, `the manifest copy of backup ${c.id} beside its parts at ${c.destination} was missing or damaged: written back from its manifest`);
        if (report.recovered.length > 0) {
          this.log('info', { ids: report.recovered }, `recovered the manifests of ${report.recovered.length} backup(s); run verifyBackup() on them`);
        }
        for (const r of report.indexes) {
          const verdict = r.verified === null ? 'not verified' : `a quick verification says verified=${String(r.verified)}`;
          this.log('info', { backupId: r.id, destinations: r.destinations }, `the object index of backup ${r.id} was ${r.action === 'copied' ? 'copied from another destination' : 'rebuilt from its parts'} (${r.destinations.join(', ')}); ${verdict}`);
        }
        if (report.recovered.length > 0 || report.indexes.length > 0 || report.copies || keyFiles.mended.length > 0) this.emit('plg:backup:recovered', report);
        return report;
      }),
    );
  }

  // ---- s3db.js dialect ----------------------------------------------------------------------

  /** s3db.js: backup(type, { resources, metadata }) -> { id, type, size, duration, checksum, driverInfo }. */
  async backup(type: 'full' | 'incremental' = 'full', options: { resources?: string[] | null; metadata?: Record<string, unknown>; reason?: string; tags?: string[] } = {}): Promise<BackupResult> {
    checkOptions('backup', options, { resources: null, metadata: CREATE_CHECKS.metadata!, reason: isString, tags: CREATE_CHECKS.tags! }, { compression: 'Compression is set once, in the plugin options (every part of a backup uses one codec)' });
    return this.createBackup({ type, resources: options.resources, metadata: options.metadata, reason: options.reason, ...(options.tags ? { tags: options.tags } : {}) });
  }

  /** s3db.js docs: cleanupBackups() applies the retention policy (= prune()). */
  async cleanupBackups(...args: unknown[]): Promise<RetentionPlan & { deleted: string[]; count: number }> {
    // it deletes: an argument meant as a dry run must not be dropped
    if (args.some((a) => a !== undefined)) throw optionError('options', 'cleanupBackups() takes no options: it applies the retention policy now', 'For a dry run, call prune({ dryRun: true })');
    const result = await this.prune();
    return { ...result, count: result.deleted.length }; // s3db.js's docs read `cleaned.count`
  }

  /** s3db.js: status of a backup known to this process or to the destination, or null. */
  async getBackupStatus(id: string): Promise<StatusRecord | null> {
    if (typeof id !== 'string') throw optionError('backupId', `must be a backup id (a string), not ${shown(id)}`, 'Pick one from listBackups()');
    const known = this.statuses.get(id);
    // a completed backup may have been deleted since, by another process too
    if (known && known.status !== 'completed') return known;
    const manifest = await this.catalog.get(id, { confirm: true });
    if (!manifest) this.statuses.delete(id);
    return manifest ? (known ?? statusFromManifest(manifest)) : null;
  }

  // ---- internals ----------------------------------------------------------------------------

  /** Runs one backup now; the caller serializes (see serialized()). */
  private async takeBackup(options: CreateBackupOptions & AutomaticBackupOptions, stopped?: AbortSignal): Promise<BackupResult> {
    options.onStart?.();
    // A scheduled or triggered backup that was still queued when the plugin stopped does not run.
    const automatic = options.trigger !== undefined && options.trigger !== null;
    if (automatic && this.halt.signal.aborted) {
      const reason = 'the plugin was stopped while this backup was queued; it did not run';
      this.emit('plg:backup:cancelled', { id: null, type: options.type ?? this.config.type, reason });
      throw new BackupError('ERR_CANCELLED', reason);
    }
    const db = this.requireDatabase();
    const requested = options.type ?? this.config.type;
    if (!['full', 'incremental', 'selective'].includes(requested)) throw optionError('type', `"${String(requested)}" is not 'full', 'incremental' or 'selective'`);
    const include = options.resources ?? this.config.include;
    if (options.resources != null && (!Array.isArray(options.resources) || options.resources.some((r) => typeof r !== 'string'))) {
      throw optionError('resources', 'must be an array of resource names (or null or left out: every resource)');
    }
    const started = Date.now();
    const exclude = options.resources ? [] : [...new Set([...this.config.exclude, ...(options.alsoExclude ?? [])])];
    const type = requested === 'incremental' ? 'incremental' : 'full';
    // The id announced by start/onBackupStart is the backup's id (s3db.js listeners pair start and
    // complete by id). Its type part says what the backup will be: an incremental with no parent
    // (or at the chain limit) is a full, so that is looked up first, without the lease; it is
    // decided again under the lease, and only if another instance changed the answer meanwhile
    // does the backup get another id.
    this.runningBackup = `starting-${started}`; // busy from the first await on (ticks meanwhile are skipped)
    let expected: 'full' | 'incremental' = type;
    if (type === 'incremental') {
      const parent = await this.parentFor(include, exclude, true).catch(() => undefined);
      if (parent === null) expected = 'full';
    }
    let id = newBackupId(expected, new Date(started));
    this.runningBackup = id;
    const status: StatusRecord = { id, type: expected, timestamp: new Date(started).toISOString(), resources: include ?? [], size: 0, compressed: this.config.compression !== 'none', encrypted: this.keyring.enabled, checksum: null, status: 'in_progress', error: null, duration: 0, createdAt: new Date(started).toISOString(), updatedAt: new Date(started).toISOString(), s3db_version: null, driverInfo: null };
    let lease: LeaseGroup | null = null;
    try {
      // a restore writing into the database is waited for before the lease too, not holding it meanwhile
      const activity = activityOf(databaseKey(db));
      await this.passGate(activity, stopped, options.signal);
      lease = await this.acquireLease({ ...(stopped ? { stopped } : {}), ...(options.signal ? { signal: options.signal } : {}) });
      await this.finishLeftovers();
      const parent = type === 'incremental' ? await this.parentFor(include, exclude) : null;
      // its index is read where its latest verification found everything whole (a copy damaged at
      // the first destination, same size, would fail every incremental at the end of its index)
      const parentIndexAt = parent ? (await this.catalog.latestVerification(parent.id))?.destinations.find((d) => d.verified)?.label : undefined;
      if ((parent ? 'incremental' : 'full') !== expected) {
        expected = parent ? 'incremental' : 'full';
        id = newBackupId(expected, new Date(started));
        Object.assign(status, { id, type: expected });
      }
      // The start hook runs once nothing but it stands between it and the reading (the lease is
      // held, restores were waited for): a hook that quiesces the application's writers must not
      // hold them while this backup waits for another instance's (review-schedule).
      await this.callHook('onBackupStart', expected, { backupId: id });
      this.emit('plg:backup:start', { id, type: expected });
      if (!this.keyring.enabled) await this.warnIfEncryptionDropped(id);
      await this.warnIfOtherDatabases(db);
      const embeddedKeyFile = this.keyring.enabled ? (await this.catalog.list()).find((e) => e.manifest.encryption)?.manifest.encryption?.keyFile : null;
      // A restore writing into the database (by any plugin of this process): this backup reads it
      // once the restore has written (a restore's own hooks run after that: no deadlock). The gate
      // is looked at again after the await, synchronously: a restore may have closed it meanwhile.
      do await this.passGate(activity, stopped, options.signal);
      while (activity.gate.closed);
      // from here to the reader's registration, no await: a restore that begins sees it
      const cancel = new AbortController();
      const signal = AbortSignal.any([cancel.signal, ...(options.signal ? [options.signal] : []), ...(lease ? [lease.signal] : [])]);
      const warn = (message: string) => this.log('warn', { backupId: id }, message);
      // a copy of the parent's index that fails to read is passed over: the backup is planned again
      // (parent-index.ts), unless the plugin was stopped meanwhile (stop() waits for this backup)
      const fallback = { parent, set: this.destinations, signal: stopped ? AbortSignal.any([signal, stopped]) : signal, warn, record: (parentId: string, result: VerificationResult) => this.catalog.recordVerification(parentId, result, started) };
      const reading = readingParentIndex(fallback, (indexReading) => runBackup({
        id,
        db,
        set: this.destinations,
        keyring: this.keyring,
        embeddedKeyFile,
        warn,
        type,
        parentIndexAt: indexReading.preferred ?? parentIndexAt,
        parentIndexPassOver: indexReading.passOver,
        parent,
        reason: options.reason ?? null,
        metadata: options.metadata ?? {},
        tags: options.tags ?? [],
        trigger: options.trigger ?? null,
        include,
        selections: this.config.selections,
        // an explicit resource list is explicit: the plugin-level exclude does not cut it down
        exclude,
        includeMetadata: this.config.includeMetadata,
        compression: this.config.compression,
        level: this.config.level,
        segmentSize: this.config.segmentSize,
        threads: this.config.threads,
        partSize: this.config.partSize,
        concurrency: this.concurrencyFor(db),
        pageSize: this.pageSizeFor(db),
        template: this.template,
        verify: this.config.verify,
        verifyBackup: async (m, level, parent) => {
          const key = m.encryption && level === 'full' ? await this.keyring.keyForManifest(m, this.destinations) : null;
          return (await verifyManifest(m, this.destinations, key, { level, parent, ...this.reporting })).result;
        },
        signal,
        beforeCommit: () => lease?.assertHeld(),
        ...this.reporting,
      }));
      const reader: Reader = { cancel, ended: reading.then(() => undefined, () => undefined) };
      activity.readers.add(reader);
      let manifest: Manifest;
      try {
        manifest = await reading;
      } catch (err) {
        if (cancel.signal.aborted) throw new BackupError('ERR_CANCELLED', String(cancel.signal.reason), { cause: err, details: { byRestore: true } });
        throw err;
      } finally {
        activity.readers.delete(reader);
      }
      await this.warnIfDefinitionsMissing(manifest);
      const result = toResult(manifest);
      Object.assign(status, statusFromManifest(manifest));
      this.statuses.set(manifest.id, status);
      const failedAt = manifest.destinations.filter((d) => d.status === 'failed').map((d) => d.label);
      if (this.config.retention && failedAt.length > 0) {
        // 'any': this backup is not at every destination; pruning now would take the older backups
        // from the destination that failed too, leaving it none (its last copy of the data).
        this.log('warn', { backupId: manifest.id, destinations: failedAt }, `retention did not run after backup ${manifest.id}: it failed at ${failedAt.join(', ')}, and pruning would remove the older backups that destination still holds. It runs again after a backup stored at every destination (or prune() now)`);
      } else if (this.config.retention) {
        await this.pruneNow({ justTaken: manifest.id }).catch((err: unknown) => this.log('warn', { err: errorMessage(err) }, 'retention after backup failed'));
      }
      // The hooks and webhooks after it need no lease: one that hangs (up to hookTimeoutMs) must
      // not hold off every other instance's backups meanwhile.
      this.runningBackup = null;
      await lease?.release();
      lease = null;
      await this.callHook('onBackupComplete', manifest.type, { backupId: manifest.id, type: manifest.type, size: result.size, duration: result.duration, driverInfo: result.driverInfo });
      this.emit('plg:backup:complete', { id: manifest.id, type: manifest.type, size: result.size, duration: result.duration, driverInfo: result.driverInfo, verified: result.verified });
      await this.callWebhook('onSuccess', result);
      return result;
    } catch (err) {
      const error = asBackupError(err, 'ERR_BACKUP_FAILED', 'backup failed');
      if (error.code === 'ERR_CANCELLED') {
        Object.assign(status, { status: 'cancelled', error: error.message, duration: Date.now() - started, updatedAt: new Date().toISOString() });
        this.statuses.set(id, status);
        this.emit('plg:backup:cancelled', { id, type: expected, reason: error.message });
        throw error;
      }
      Object.assign(status, { status: 'failed', error: error.message, duration: Date.now() - started, updatedAt: new Date().toISOString() });
      this.statuses.set(id, status);
      this.runningBackup = null;
      await lease?.release();
      lease = null;
      await this.reportFailure(expected, id, error);
      throw error;
    } finally {
      this.runningBackup = null;
      await lease?.release();
    }
  }

  /**
   * A backup that holds objects of resources its s3db.json does not define (s3db.js replaced a
   * corrupt s3db.json with an empty one) is said loudly: a restore of it alone leaves them
   * unreadable, and retention does not count it as good (planSeries) so the backups that still
   * define them are kept.
   */
  private async warnIfDefinitionsMissing(m: Manifest): Promise<void> {
    const missing = undefinedResources(m);
    if (missing.length === 0) return;
    const names = missing.map((n) => `'${n}'`).join(', ');
    const holder = (await this.catalog.list().catch(() => [])).find((e) => e.manifest.id !== m.id && missing.every((n) => e.manifest.definedResources.includes(n)))?.manifest.id;
    this.log(
      'warn',
      { backupId: m.id, undefinedResources: missing },
      `backup ${m.id} holds objects of ${names} but not their definitions: the database's s3db.json does not define them (when it connects, s3db.js replaces an s3db.json it cannot read or parse with an empty one, keeping a parsed-but-invalid one's bytes as s3db.json.corrupted.*, and drops without a copy a definition of the wrong shape). s3db.js cannot read those records until they are defined again: ` +
        (holder ? `backup ${holder} is the newest that defines them: restore the whole database from it (mode: 'replace'), then this backup with mode: 'merge' (the command line's --mode); or ` : 'no backup here defines them; ') +
        'define the resources again with the same attributes. Retention does not count this backup as good meanwhile, so the backups that define them are kept',
    );
  }

  /** @internal Every failed backup goes through here: the hook, the event, the webhook. */
  async reportFailure(type: string, id: string, err: unknown): Promise<BackupError> {
    const error = asBackupError(err, 'ERR_BACKUP_FAILED', 'backup failed');
    await this.callHook('onBackupError', type, { backupId: id, error });
    this.emit('plg:backup:error', { id, type, error: error.message, code: error.code });
    await this.callWebhook('onFailure', error);
    return error;
  }

  /**
   * The parent of the next incremental: the newest backup of the same selection series, unless its
   * chain is too long, broken, or holds a backup recorded as failing verification (building on it
   * would give backups that look fine and cannot be restored), its index is lost, it is encrypted
   * and encryption is off, or a destination written to lacks its chain: then null, i.e. a full backup.
   * `quiet`: a first look before the lease (to name the backup), which the look under the lease
   * repeats; only that one logs.
   */
  private async parentFor(include: string[] | null, exclude: string[], quiet = false): Promise<Manifest | null> {
    const warn = (id: string, why: string) => (quiet ? undefined : this.log('warn', { backupId: id }, `the next backup is a full one: ${why}`));
    const wanted = selectionKey({ include, exclude, includeMetadata: this.config.includeMetadata, logical: this.config.selections });
    const list = await this.catalog.list();
    // only a backup of this database: another one pointed at the same destination is not a parent
    const here = describeSource(this.requireDatabase());
    // A parent's manifest must name the same store: one without an endpoint (written before they were
    // recorded) may be another store's database of the same bucket and prefix, so the first backup
    // after the upgrade is a full one.
    const sameStore = (m: ManifestHead) => here.endpoint === undefined || m.source.endpoint === here.endpoint;
    const newest = list.find((e) => selectionKey(e.manifest.selection) === wanted && sameSource(e.manifest.source, here) && sameStore(e.manifest))?.manifest;
    if (!newest) return null;
    if (newest.chain.length > this.config.maxChainLength) return null;
    const writtenBefore = newest.chain.filter((id) => {
      const member = list.find((e) => e.manifest.id === id)?.manifest;
      return member !== undefined && member.keepsUndefinedHeaders !== true; // (a missing one is chainProblem's, below)
    });
    if (writtenBefore.length > 0) {
      return warn(newest.id, `${writtenBefore.join(', ')} of the chain of ${newest.id} ${writtenBefore.length > 1 ? 'were' : 'was'} written by an s3db-backup older than 0.2, which left headers stored as "undefined" (absent optional attributes) out of its backups; an incremental would keep those copies of unchanged objects`) ?? null;
    }
    // One chain holds one form of metadata (manifest.ts): an upgrade from the decoded form starts a full.
    const asStored = rawObjects(this.requireDatabase().client) !== null;
    const otherForm = newest.chain.filter((id) => {
      const member = list.find((e) => e.manifest.id === id)?.manifest;
      return member !== undefined && (member.metadataAsStored === true) !== asStored;
    });
    if (otherForm.length > 0) {
      const how = asStored ? "as s3db.js's client decodes them (an s3db-backup older than 0.2, or another kind of client)" : 'as stored, which this database\'s client cannot write back as they are';
      return warn(newest.id, `${otherForm.join(', ')} of the chain of ${newest.id} ${otherForm.length > 1 ? 'keep' : 'keeps'} object metadata ${how}; an incremental would mix both forms`) ?? null;
    }
    const bad = chainProblem(newest, new Map(list.map((e) => [e.manifest.id, e.summary.verification])));
    if (bad) return warn(newest.id, `the chain of ${newest.id} ${bad.text}`) ?? null;
    // An incremental is planned against its parent's object index: without it, every incremental would fail.
    if (!(await indexAvailable(await holdersOf(newest, this.destinations), newest))) {
      return warn(newest.id, `the object index of ${newest.id} is missing (${INDEX_REPAIR_HINT})`) ?? null;
    }
    if (newest.codec.encrypted && !this.keyring.enabled) {
      // Encryption turned off: the parent's index cannot be read without the passphrase.
      return warn(newest.id, `${newest.id} is encrypted and encryption is now off, so its object index cannot be read`) ?? null;
    }
    if (this.keyring.enabled) {
      const why = await this.keyChangeSince(newest);
      if (why) return warn(newest.id, why) ?? null;
    }
    const lacking = await this.membersLackingChain(newest, quiet);
    if (lacking.length > 0) {
      // Written there, the incremental would depend on backups that destination does not hold.
      return warn(newest.id, `${lacking.join(', ')} ${lacking.length > 1 ? 'do' : 'does'} not hold every backup of the chain of ${newest.id} (a replaced or emptied destination)`) ?? null;
    }
    return this.catalog.require(newest.id); // the whole manifest (the listing's has no part list)
  }

  /**
   * Why an encrypted incremental must not build on `parent`, or null. Encryption turned on: most
   * objects would stay in the plaintext parent at the destination for as long as the chain is
   * kept. The key rotated (key.json moved away and a new passphrase set, README runbook step 6):
   * the new passphrase cannot open the parent's index, and new backups should not need the old key.
   */
  private async keyChangeSince(parent: ManifestHead): Promise<string | null> {
    if (!parent.encryption) return `${parent.id} is not encrypted and encryption is now on: an incremental on it would leave most of the data in plaintext at the destination for as long as the chain is kept`;
    const opens = await this.keyring.keyForManifest(parent, this.destinations).then(
      () => true,
      (err: unknown) => {
        if (err instanceof BackupError && err.code === 'ERR_WRONG_PASSPHRASE') return false;
        throw err;
      },
    );
    const current = await this.keyring.currentKeyCheck(this.destinations);
    // the same key in key.json: no rotation, a wrong passphrase (refused by the key lookup that follows)
    if (!opens && current === parent.encryption.keyCheck) return null;
    if (!opens) return `the passphrase does not open the key of ${parent.id}: the key was rotated (key.json replaced and a new passphrase set)`;
    if (current !== null && current !== parent.encryption.keyCheck) return `${parent.id} was made under another master key than the one in key.json now (the key was rotated)`;
    return null;
  }

  /**
   * Refuses a database whose keys hold a destination's backups (or that lies inside one): the
   * backups `consequence`. `option` names what to change for the i-th destination.
   */
  private refuseOverlap(db: DatabaseLike, option: (i: number) => string, consequence: string, hint = 'Put the backups in another bucket or directory, or under a prefix outside the database'): void {
    const source = describeSource(db);
    this.destinations.members.forEach((member, i) => {
      const overlap = overlapWithDatabase(member, source);
      if (overlap) throw optionError(option(i), `${overlap}: the backups ${consequence}`, hint);
    });
  }

  /**
   * Logs, once per plugin, that an unencrypted backup goes where encrypted ones are: the encryption
   * option was most likely dropped by mistake (an unset environment variable, a config change).
   */
  private async warnIfEncryptionDropped(id: string): Promise<void> {
    if (this.warnedUnencrypted) return;
    // key.json is there wherever encrypted backups were written: one request, not a listing, per backup
    if ((await this.destinations.holding(paths.keyFile)).length === 0) return;
    const encrypted = (await this.catalog.list()).find((e) => e.manifest.encryption);
    if (!encrypted) return;
    this.warnedUnencrypted = true;
    this.log('warn', { backupId: id }, `backup ${id} is not encrypted, while ${encrypted.manifest.id} at the same destination is: its data will lie in plaintext there. Check the encryption option (an unset environment variable?)`);
  }

  /**
   * Logs, once per plugin (looked at its first backup), that the destination also holds backups of another database (a config
   * copied from another environment): they are never a parent of this database's incrementals and
   * retention counts each database on its own, but listBackups() shows both (`source` tells them
   * apart), so "restore the newest" could pick the other database's.
   */
  private async warnIfOtherDatabases(db: DatabaseLike): Promise<void> {
    // looked at once, at the plugin's first backup: a listing per backup cost a stat per backup of
    // the catalog each time (10 s per backup at 2,000 backups on S3; review-scale2 F5)
    if (this.warnedOtherDatabases) return;
    this.warnedOtherDatabases = true;
    const here = describeSource(db);
    const others = [...new Set((await this.catalog.list()).filter((e) => !sameSource(e.manifest.source, here)).map((e) => describeSourceShort(e.manifest.source)))];
    if (others.length === 0) return;
    this.log('warn', { databases: others }, `the destination also holds backups of ${others.length === 1 ? 'another database' : `${others.length} other databases`} (${others.join(', ')}) besides this one (${describeSourceShort(here)}): a database moved (restored elsewhere), a configuration copied from another environment, or this database reached through another spelling of its endpoint (localhost and 127.0.0.1 are two)? Their backups are never a parent of this one's and retention counts them apart, but listBackups() lists both (each item's source says which); give each database its own directory or prefix`);
  }

  /**
   * Destinations the next backup writes to that lack a manifest of `m`'s chain: every member for
   * 'all' and 'any'; for 'priority', the one it would fail over to now (a probe write).
   * A destination that does not answer is not counted (walk-28 F3: with one of two destinations
   * down, every backup was a full, each after minutes of asking it about every backup of the
   * chain): the backup will most likely fail there too and go to the others, which hold the chain;
   * once it answers again, it lacks this backup and the next one is a full. It is asked about the
   * chain until its first failure, not once per backup. A refusal (ERR_DESTINATION_ACCESS: S3
   * answers 403 for a missing object without s3:ListBucket) is an answer: counted as lacking, as
   * the commit's own check (assertChainPresent) would refuse the incremental there (review-md R3).
   */
  private async membersLackingChain(m: ManifestHead, quiet = false): Promise<string[]> {
    const set = this.destinations;
    if (set.members.length < 2) return [];
    const writers = await set.plannedWriters(paths.pending(`${m.id}.plan.probe`)).catch(() => set.members);
    const lacking: string[] = [];
    for (const member of writers) {
      for (const id of m.chain) {
        const held = await member.stat(paths.manifest(id)).then(
          (info) => info !== null,
          (err: unknown) => {
            if (err instanceof BackupError && err.code === 'ERR_DESTINATION_ACCESS') return false;
            if (!quiet) this.log('warn', { destination: member.label, backupId: id }, `could not ask ${member.label} whether it holds ${id} (${errorMessage(err)}): the backup is planned as an incremental on the destinations that answer; if that one takes it, check it with verifyBackup(), and once it answers again and lacks a backup of the chain, the next backup is a full`);
            return null;
          },
        );
        if (held === true) continue;
        if (held === false) lacking.push(member.label);
        break;
      }
    }
    return lacking;
  }

  private pageSizeFor(_db: DatabaseLike): number {
    return this.config.pageSize ?? 1000;
  }

  /** Objects read or written at once: local clients (memory://, file://) take more than a remote S3. */
  private concurrencyFor(db: DatabaseLike): number {
    return this.config.concurrency ?? (isLocalClient(db.client) ? 64 : 32);
  }

  private progress(event: ProgressEvent): void {
    this.emit('plg:backup:progress', event);
  }

  /** An operation's progress: its events as plg:backup:progress, at most one per `progressIntervalMs`. */
  private get reporting(): { onProgress: (event: ProgressEvent) => void; progressIntervalMs: number } {
    return { onProgress: (e) => this.progress(e), progressIntervalMs: this.config.progressIntervalMs };
  }

  private requireDatabase(): DatabaseLike {
    if (!this.database && this.installRefused !== null) {
      // s3db.js keeps a plugin whose install failed in db.plugins: that failure is the news
      throw new BackupError('ERR_NOT_INSTALLED', `BackupPlugin is not installed: usePlugin() refused the database (${this.installRefused}). Fix that, then call \`await db.usePlugin(plugin)\` again`);
    }
    if (!this.database) {
      throw new BackupError('ERR_NOT_INSTALLED', 'BackupPlugin is not installed on a database: call `await db.usePlugin(plugin)` after `await db.connect()` (s3db.js 21 does not install a plugin registered before connect), or pass it in `new Database({ plugins: [plugin] })` and connect()');
    }
    return this.database;
  }

  /**
   * s3db.js's six hooks, called as s3db.js calls them: `(type or backup id, context)`. The two start
   * hooks gate their operation, as in s3db.js: a throw refuses it (ERR_HOOK_FAILED), and so does
   * not finishing within hookTimeoutMs, since a hook that quiesces writers must be done before
   * anything is read. An error of the other four is logged and emitted (plg:backup:hook-error):
   * the backup is stored, or the restore done, whatever they do.
   */
  private async callHook(name: HookName, first: string, context: Record<string, unknown>): Promise<void> {
    // every backup hook's context has backupId (BackupHookContext); a restore hook's is s3db.js's options
    const hook = this.options[name] as ((first: string, context: Record<string, unknown>) => unknown) | null | undefined;
    if (typeof hook === 'function') await this.callUser(`${name} hook`, { hook: name }, () => hook(first, context));
  }

  private async callWebhook(name: 'onSuccess' | 'onFailure', payload: unknown): Promise<void> {
    const hook = this.config.webhooks[name] as ((p: unknown) => unknown) | undefined;
    if (hook) await this.callUser(`webhook ${name}`, { webhook: name }, () => hook(payload));
  }

  /**
   * Runs a user hook or webhook. Throws only for a start hook (callHook); otherwise an error is
   * logged (redacted: it may quote a URL with credentials) and emitted (plg:backup:webhook-error,
   * plg:backup:hook-error). Waits at most hookTimeoutMs: a hook that has not settled by then is
   * left running, unobserved but for a later error, so a webhook whose server never answers cannot
   * hold the backup lease, the schedule and stop() for good.
   */
  private async callUser(what: string, source: { webhook: 'onSuccess' | 'onFailure' } | { hook: HookName }, run: () => unknown): Promise<void> {
    const gate = 'hook' in source && (source.hook === 'onBackupStart' || source.hook === 'onRestoreStart');
    const operation = 'hook' in source && source.hook === 'onRestoreStart' ? 'restore' : 'backup';
    const emitError = (error: string) => {
      if ('webhook' in source) this.emit('plg:backup:webhook-error', { webhook: source.webhook, error });
      else this.emit('plg:backup:hook-error', { hook: source.hook, error });
    };
    const failed = (err: unknown, late: boolean) => {
      // with its causes: a webhook's fetch says only "fetch failed", its cause why (walk-29 F-F)
      const message = redacted(messageWithCauses(err));
      // the hook's own error is the cause, as thrown: the application may branch on its class
      if (gate && !late) throw new BackupError('ERR_HOOK_FAILED', `${what} threw: ${message}; the ${operation} was not started (a start hook that throws refuses it, as with s3db.js's plugin)`, { applicationCause: err });
      this.log('warn', { hook: what, err: message }, `${what} threw${late ? ' after its time was up' : ''}; ignored`);
      emitError(message);
    };
    let outcome: Promise<{ ok: true } | { ok: false; error: unknown }>;
    try {
      outcome = Promise.resolve(insideUserCode.run(this, run)).then(
        () => ({ ok: true as const }),
        (error: unknown) => ({ ok: false as const, error }),
      );
    } catch (err) {
      failed(err, false);
      return;
    }
    const ms = this.config.hookTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeUp = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ms);
    });
    const first = await Promise.race([outcome, timeUp]);
    clearTimeout(timer);
    if (first === null) {
      void outcome.then((o) => (o.ok ? undefined : failed(o.error, true)));
      if (gate) throw new BackupError('ERR_HOOK_FAILED', `${what} did not finish within ${ms} ms: the ${operation} was not started, so that nothing is read while the hook may still be at work (hookTimeoutMs sets the wait)`);
      this.log('warn', { hook: what, timeoutMs: ms }, `${what} did not finish within ${ms} ms; going on without it (it keeps running; hookTimeoutMs sets the wait)`);
      emitError(`did not finish within ${ms} ms`);
      return;
    }
    if (!first.ok) failed(first.error, false);
  }

  /**
   * Calls every listener of `event`, each on its own: one that throws (or returns a promise that
   * rejects) is logged and never changes what emitted it (a backup stored stays a success, a
   * failure still reaches `onFailure`, a trigger's event never becomes an unhandled rejection),
   * and the listeners after it still run. 'error' keeps EventEmitter's meaning.
   */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error') return super.emit(event, ...args);
    const listeners = this.rawListeners(event) as ((...a: unknown[]) => unknown)[];
    const report = (err: unknown) => {
      try {
        this.log('error', { event: String(event), err: errorMessage(err) }, `a listener of ${String(event)} threw (ignored: listeners never change what the plugin does): ${errorMessage(err)}`);
      } catch {
        // a logger that throws: nothing more can be said
      }
    };
    for (const listener of listeners) {
      try {
        const returned = listener.apply(this, args);
        if (returned instanceof Promise) returned.catch(report);
      } catch (err) {
        report(err);
      }
    }
    return listeners.length > 0;
  }

  /** @internal */
  log(level: 'warn' | 'error' | 'info', obj: Record<string, unknown>, msg: string): void {
    const logger = this.logger;
    try {
      if (logger) logger[level](obj, msg);
      else if (level !== 'info') console.warn(`[s3db-backup] ${msg}`, JSON.stringify(obj));
    } catch (err) {
      // a log sink that fails must not fail the backup or restore that logs
      if (level !== 'info') console.warn(`[s3db-backup] ${msg} (the logger threw: ${errorMessage(err)})`);
    }
  }
}

interface StatusRecord {
  id: string;
  type: 'full' | 'incremental';
  timestamp: string;
  resources: string[];
  size: number;
  compressed: boolean;
  encrypted: boolean;
  checksum: string | null;
  status: 'in_progress' | 'completed' | 'failed' | 'cancelled';
  error: string | null;
  duration: number;
  createdAt: string;
  /** When this record last changed (s3db.js's metadata records have it): start, then end. */
  updatedAt: string;
  /** The s3db.js version of the database backed up (null while running, or when unknown). */
  s3db_version: string | null;
  /** Per destination: `{ label, status, error? }` (null while running). */
  driverInfo: Manifest['destinations'] | null;
}

function statusFromManifest(m: Manifest): StatusRecord {
  return {
    id: m.id,
    type: m.type,
    timestamp: m.startedAt,
    resources: backupResources(m),
    size: m.totals.storedBytes,
    compressed: m.codec.compression !== 'none',
    encrypted: m.codec.encrypted,
    checksum: m.index.sha256,
    status: 'completed',
    error: null,
    duration: m.durationMs,
    createdAt: m.startedAt,
    updatedAt: m.completedAt,
    s3db_version: m.source.s3dbVersion,
    driverInfo: m.destinations,
  };
}

function toResult(m: Manifest): BackupResult {
  const summary = summarize(m);
  return { ...summary, resource: resourceLabel(m) };
}

/**
 * One word for "what was backed up" (the story's webhook tags use `backup.resource`): the
 * resource's name when the backup selected exactly one, otherwise 'all' for a whole database
 * (every resource, or all but excluded ones) and the names joined by ',' for a list.
 */
function resourceLabel(m: Manifest): string {
  const include = m.selection.include;
  if (include === null || include === undefined) return 'all';
  return include.length === 1 ? include[0]! : [...include].sort().join(',');
}

/**
 * s3db.js's replace goes resource by resource: called in its form without `resources`, into a
 * database that defines resources the backup lacks (created since), only the backup's are
 * replaced, with a note that says so (null: the whole database is, as the story's
 * restore({ backupId }) does, other plugins' state included: nothing the backup lacks is defined
 * there, a new, emptied or damaged database).
 */
async function s3dbReplaceScope(target: DatabaseLike, manifest: Manifest, dryRun: boolean): Promise<{ resources: string[]; note: string } | null> {
  const held = backupResources(manifest);
  const others = (await definedResources(target)).filter((r) => !held.includes(r));
  if (others.length === 0) return null;
  return {
    resources: held,
    note: `the database defines resources this backup lacks (${others.map((r) => `'${r}'`).join(', ')}): as with s3db.js's plugin, only the backup's resources ${dryRun ? 'would be' : 'were'} replaced, and those are kept with their definitions, as are the database's other objects (other plugins' state); restore({ backupId }) replaces the whole database`,
  };
}

/**
 * s3db.js documents `db.getPlugin(name)`, but 21.x has no such method; the story's recovery code
 * calls it. Installing the plugin adds it when it is missing (never replaces one s3db provides):
 * it returns the plugin registered under that name, or null.
 */
function provideGetPlugin(db: DatabaseLike): void {
  const target = db as unknown as { getPlugin?: unknown; plugins?: Record<string, unknown> };
  if (typeof target.getPlugin === 'function') return;
  Object.defineProperty(target, 'getPlugin', {
    value: (name: string): unknown => target.plugins?.[name] ?? null,
    configurable: true,
    writable: true,
    enumerable: false,
  });
}

/**
 * Retention per selection series (see selectionKey): each series is planned on its own, so the
 * story's per-resource schedules keep their own GFS slots. A backup counts as unverified when
 * any backup of its chain is recorded as failing verification (it cannot be restored).
 */
function planSeries(list: { manifest: ManifestHead; summary: BackupSummary }[], policy: unknown): RetentionPlan {
  const verifications = new Map(list.map((e) => [e.manifest.id, e.summary.verification]));
  const series = new Map<string, RetentionBackup[]>();
  for (const { manifest, summary } of list) {
    // Only a recorded verification failure: a missing or unreadable chain member may come back
    // (recoverBackups()), and the backups that need it must still be there when it does.
    const chainBad = chainFailed(manifest, verifications);
    // one series per selection and per database (several databases at one destination never share
    // slots; file:// ones by directory, remote ones by endpoint: earlier manifests lack them, and
    // form series of their own, whose backups are kept rather than counted with another's)
    const key = selectionKey(manifest.selection) + sourceKey(manifest.source) + JSON.stringify([manifest.source.path ?? null, manifest.source.endpoint ?? null]);
    if (!series.has(key)) series.set(key, []);
    series.get(key)!.push({
      id: manifest.id,
      timestamp: manifest.startedAt,
      type: manifest.type,
      parentId: manifest.parentId,
      chain: manifest.chain,
      status: manifest.status,
      tags: manifest.tags ?? [],
      // a backup without the definitions of resources it holds (undefinedResources) is not good either
      verified: chainBad || summary.undefinedResources.length > 0 ? false : summary.verification ? summary.verified : undefined,
    });
  }
  const plans = [...series.values()].map((backups) => planRetention(backups, policy));
  const order = new Map(list.map((e, i) => [e.manifest.id, i]));
  const byListOrder = (a: { id: string }, b: { id: string }) => order.get(a.id)! - order.get(b.id)!;
  const plan: RetentionPlan = {
    keep: plans.flatMap((p) => p.keep).sort(byListOrder),
    remove: plans.flatMap((p) => p.remove).sort(byListOrder),
    warnings: plans.flatMap((p) => p.warnings),
    policy: plans[0]?.policy ?? validateRetentionPolicy(policy),
  };
  // A chain can cross series: the first incremental after an upgrade builds on a parent whose
  // manifest lacks what the series key has since gained (a directory, an endpoint), and that
  // series may go on (an instance not yet upgraded). A kept backup keeps its chain, in any series.
  const kept = new Set(plan.keep.map((k) => k.id));
  return keepAlso(plan, (id) => kept.has(id), list.map((e) => e.manifest), 'needed by the chain of a kept backup of another series');
}

/**
 * `plan` with the backups `wanted` says, and the chains they need, moved to keep with reason
 * `why` (`listed`: the catalog, in its order).
 */
function keepAlso(plan: RetentionPlan, wanted: (id: string) => boolean, listed: ManifestHead[], why: string): RetentionPlan {
  const read = new Set(listed.filter((m) => wanted(m.id)).flatMap((m) => m.chain));
  const held = plan.remove.filter((r) => read.has(r.id));
  if (held.length === 0) return plan;
  const position = new Map(listed.map((m, i) => [m.id, i]));
  const keep = [...plan.keep, ...held.map((r) => ({ id: r.id, reasons: [`${why} (else: ${r.reason})`] }))];
  keep.sort((a, b) => position.get(a.id)! - position.get(b.id)!);
  return { ...plan, keep, remove: plan.remove.filter((r) => !read.has(r.id)) };
}

/** Whether `m`'s chain holds a backup recorded as failing verification (it cannot be restored). */
function chainFailed(m: Pick<Manifest, 'id' | 'chain'>, verifications: Map<string, VerificationResult | null>): boolean {
  return chainProblem(m, verifications)?.kind === 'failed';
}

/**
 * Why `m`'s chain cannot be relied on, or null: a backup recorded as failing verification
 * (looked for first, anywhere in the chain: retention goes by it), one missing from
 * `verifications` (missing or unreadable), and with `strict` (what listings call `verified`) an
 * ancestor never verified (taken with `verify: false`: a restore would find its damage first).
 */
function chainProblem(m: Pick<Manifest, 'id' | 'chain'>, verifications: Map<string, VerificationResult | null>, strict = false): { kind: 'missing' | 'failed' | 'unverified'; text: string } | null {
  const failed = m.chain.find((id) => verifications.get(id)?.verified === false);
  if (failed !== undefined) return { kind: 'failed', text: `holds ${failed}, which failed verification` };
  const missing = m.chain.find((id) => !verifications.has(id));
  if (missing !== undefined) return { kind: 'missing', text: `needs ${missing}, which is missing or unreadable` };
  const unverified = strict ? m.chain.find((id) => id !== m.id && verifications.get(id)?.verified !== true) : undefined;
  if (unverified !== undefined) return { kind: 'unverified', text: `needs ${unverified}, which was never verified` };
  return null;
}

function pickTemplate(config: NormalizedOptions): string | undefined {
  const templates = new Set(config.destinations.map((d) => d.config?.pathTemplate).filter((t): t is string => typeof t === 'string'));
  if (config.pathTemplate) templates.add(config.pathTemplate);
  if (templates.size > 1) throw optionError('pathTemplate', 'differs between destinations', 'Parts are encoded once and stored at the same path everywhere; use one template');
  return [...templates][0];
}

function describeTarget(destination: RestoreOptions['destination']): string {
  if (destination === undefined) return 'production';
  if (typeof destination === 'string') return redactedTarget(destination);
  return 'database instance';
}

function asBackupError(err: unknown, code: string, what: string): BackupError {
  if (err instanceof BackupError) return err;
  return new BackupError(code, `${what}: ${errorMessage(err)}`, { cause: err });
}

/** A copy of the options safe to expose: the passphrase is replaced. */
