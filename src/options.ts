/**
 * BackupPlugin options: the seed story's option surface plus s3db.js's own BackupPlugin names,
 * validated once in the constructor. Every problem is a BackupError naming the option and what is
 * accepted; unknown options are refused (a typo must not silently disable a backup).
 *
 * Choices where the spec is vague (documented in README):
 * - `encryption`: see src/encryption-options.ts (a present but empty passphrase fails).
 * - `schedule: {}` (s3db.js dialect, which ignored it) means no timer; `{ cron }` or `{ interval }` set one;
 *   any other key (`{ daily: ... }`) is refused. Destination options: src/destinations/index.ts.
 * - `verify: true` means a full verification (decode every byte); `'quick'` checks sizes and checksums.
 * - `resources: { name: false }` excludes a resource; `true` or an object configures it. Resources not
 *   named are still backed up (never lose data by omission); `include: [...]` restricts to a list.
 * - A resource with its own `schedule` is backed up on that schedule only, not on the main one.
 */
import { normalizeDestinations } from './destinations/index.js';
import { encryptionOption, type EncryptionOption } from './encryption-options.js';
import { LEVELS } from './codec/format.js';
import { MIN_PLUGIN_INTERVAL_MS } from './schedule/parse.js';
import { optionError } from './errors.js';
import type { Compression } from './engine/manifest.js';
import { reservedResourceName } from './method-options.js';
import { MAX_THREADS } from './codec/options.js';
import { knownHint } from './known-names.js';

export type { EncryptionOption };

export type ScheduleValue = string | number | false;

export interface DestinationOption {
  driver: 'filesystem' | 's3';
  config?: Record<string, unknown>;
}

export interface ResourceSelection {
  filter?: Record<string, unknown> | ((record: Record<string, unknown>) => unknown);
  fields?: string[];
  limit?: number;
  schedule?: ScheduleValue;
}

export interface TriggerOption {
  event: string;
  /** 'selective' (the story's third type): a full backup of the plugin's selection (include/exclude), as createBackup({ type: 'selective' }) without resources. */
  type?: 'full' | 'incremental' | 'selective';
  reason?: string;
  condition?: (context: unknown) => boolean | Promise<boolean>;
}

export interface RetentionOption {
  policy?: 'gfs' | 'simple';
  [rule: string]: unknown;
}

/**
 * What the backup hooks get, as s3db.js's BackupHookContext names it: every call has the backup's
 * id; onBackupComplete adds type, size, duration and driverInfo (the destinations' statuses),
 * onBackupError the error. Typed so that a hook written against s3db.js's types compiles.
 */
export interface BackupHookContext {
  backupId: string;
  type?: string;
  error?: Error;
  size?: number;
  duration?: number;
  driverInfo?: unknown;
  [key: string]: unknown;
}
/** onBackupStart, onBackupComplete, onBackupError: (type, context). */
export type BackupHook = (type: string, context: BackupHookContext) => unknown;
/** onRestoreStart, onRestoreComplete, onRestoreError: (backupId, context). */
export type RestoreHook = (backupId: string, context: Record<string, unknown>) => unknown;

export interface BackupPluginOptions {
  /** A string, checked when the plugin is made (s3db.js types it so: an options object in a variable widens it). */
  driver?: 'filesystem' | 's3' | 'multi' | (string & Record<never, never>);
  config?: Record<string, unknown>;
  destinations?: DestinationOption[];
  strategy?: 'all' | 'any' | 'priority';
  schedule?: ScheduleValue | { cron?: string; interval?: number; enabled?: boolean };
  timezone?: string;
  type?: 'full' | 'incremental' | 'selective';
  /** New full backup after this many incrementals (default 24). */
  maxChainLength?: number;
  compression?: Compression | false;
  level?: number;
  compressionLevel?: number;
  verify?: boolean | 'quick' | 'full';
  verification?: boolean;
  includeMetadata?: boolean;
  encryption?: EncryptionOption | null | false;
  retention?: RetentionOption | null;
  resources?: Record<string, boolean | ResourceSelection>;
  include?: string[] | null;
  exclude?: string[];
  triggers?: TriggerOption[] | null;
  webhooks?: { onSuccess?: (backup: unknown) => unknown; onFailure?: (error: Error) => unknown };
  onBackupStart?: BackupHook | null;
  onBackupComplete?: BackupHook | null;
  onBackupError?: BackupHook | null;
  onRestoreStart?: RestoreHook | null;
  onRestoreComplete?: RestoreHook | null;
  onRestoreError?: RestoreHook | null;
  partSize?: number;
  concurrency?: number;
  parallelism?: number;
  pageSize?: number;
  segmentSize?: number;
  threads?: number;
  lease?: boolean | { ttlMs?: number; waitMs?: number };
  staleAfterMs?: number;
  progressIntervalMs?: number;
  /** How long a hook or webhook is waited for before the backup or restore goes on without it. */
  hookTimeoutMs?: number;
  /** How many times a failed scheduled or triggered backup is tried again (0: never). */
  retries?: number;
  /** Wait before the first retry; doubled before each next one. */
  retryDelayMs?: number;
  pathTemplate?: string;
  /** Accepted for s3db.js compatibility and ignored (the catalog lives at the destination). */
  backupMetadataResource?: string;
  /** Accepted for s3db.js compatibility and ignored (nothing is staged on local disk). */
  tempDir?: string;
  /** s3db.js plugin-base options, accepted for compatibility and ignored (logLevel and logger set the logging). */
  verbose?: boolean;
  storage?: unknown;
  /** s3db.js's docs also give it as a boolean. */
  logLevel?: string | boolean;
  logger?: unknown;
  /** s3db.js's plugin base sets it (the database's client); this plugin has its own destinations. */
  client?: unknown;
  slug?: string;
  namespace?: string;
  /** s3db.js's base-Plugin alias of `namespace`. */
  instanceId?: string;
  customName?: string;
}

const KNOWN = new Set<string>([
  'driver', 'config', 'destinations', 'strategy', 'schedule', 'timezone', 'type', 'maxChainLength', 'compression', 'level',
  'compressionLevel', 'verify', 'verification', 'includeMetadata', 'encryption', 'retention', 'resources', 'include', 'exclude',
  'triggers', 'webhooks', 'onBackupStart', 'onBackupComplete', 'onBackupError', 'onRestoreStart', 'onRestoreComplete',
  'onRestoreError', 'partSize', 'concurrency', 'parallelism', 'pageSize', 'segmentSize', 'threads', 'lease', 'staleAfterMs',
  'progressIntervalMs', 'hookTimeoutMs', 'retries', 'retryDelayMs', 'pathTemplate', 'backupMetadataResource', 'tempDir', 'verbose', 'storage', 'logLevel', 'logger', 'client', 'slug', 'namespace', 'instanceId', 'customName',
]);
const SCHEDULE_KEYS = ['cron', 'interval', 'enabled'];
const HOOKS = ['onBackupStart', 'onBackupComplete', 'onBackupError', 'onRestoreStart', 'onRestoreComplete', 'onRestoreError'] as const;
/** A webhook that takes longer is left to finish on its own (see hookTimeoutMs). */
export const DEFAULT_HOOK_TIMEOUT_MS = 30_000;
/** A failed scheduled or triggered backup is tried again twice, 1 then 2 minutes later (before its schedule's next tick). */
const DEFAULT_RETRIES = 2;
const DEFAULT_RETRY_DELAY_MS = 60_000;
const MAX_RETRIES = 10;
const MAX_TIMER_MS = 2 ** 31 - 1;
const COMPRESSIONS: readonly Compression[] = ['gzip', 'brotli', 'deflate', 'zstd', 'none'];
const MiB = 1024 * 1024;

export interface NormalizedOptions {
  driver: 'filesystem' | 's3' | 'multi';
  destinations: DestinationOption[];
  strategy: 'all' | 'any' | 'priority';
  schedule: ScheduleValue;
  timezone: string;
  type: 'full' | 'incremental';
  maxChainLength: number;
  compression: Compression;
  level: number | null;
  verify: false | 'quick' | 'full';
  includeMetadata: boolean;
  passphrase: string | null;
  iterations: number;
  retention: RetentionOption | null;
  include: string[] | null;
  exclude: string[];
  selections: Record<string, ResourceSelection>;
  resourceSchedules: Record<string, ScheduleValue>;
  triggers: TriggerOption[];
  webhooks: { onSuccess?: (backup: unknown) => unknown; onFailure?: (error: Error) => unknown };
  partSize: number;
  /** null = by client: 64 for memory:// and file://, 32 for S3. */
  concurrency: number | null;
  pageSize: number | null;
  segmentSize: number;
  threads: number | undefined;
  lease: { enabled: boolean; ttlMs: number; waitMs: number };
  staleAfterMs: number;
  progressIntervalMs: number;
  hookTimeoutMs: number;
  retries: number;
  retryDelayMs: number;
  pathTemplate: string | undefined;
}

export function normalizeOptions(input: BackupPluginOptions = {}): NormalizedOptions {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw optionError('options', 'must be an object');
  for (const name of Object.keys(input)) {
    if (!KNOWN.has(name)) throw optionError(name, 'is not a BackupPlugin option', knownHint(name, [...KNOWN], 'Known options'));
  }
  const o = input;
  hooks(o);
  const driver = oneOf('driver', o.driver ?? 'filesystem', ['filesystem', 's3', 'multi'] as const);
  const { destinations, strategy } = normalizeDestinations({ driver, config: o.config, destinations: o.destinations, strategy: o.strategy, pathTemplate: o.pathTemplate });

  // s3db.js's plugin-base options: no effect here, but a value of the wrong kind is a mistake said now
  for (const name of ['backupMetadataResource', 'tempDir', 'slug', 'namespace', 'instanceId', 'customName'] as const) {
    if (o[name] !== undefined && typeof o[name] !== 'string') throw optionError(name, `must be a string (accepted for s3db.js's sake; it has no effect here), not ${typeof o[name]}`);
  }
  if (o.logLevel !== undefined && typeof o.logLevel !== 'string' && typeof o.logLevel !== 'boolean') {
    throw optionError('logLevel', `must be a string or a boolean (accepted for s3db.js's sake; it has no effect here), not ${typeof o.logLevel}`);
  }
  if (o.client !== undefined && (o.client === null || typeof o.client !== 'object')) {
    throw optionError('client', `must be s3db.js's client object (accepted for s3db.js's sake; it has no effect here: destinations are configured by driver and config), not ${o.client === null ? 'null' : typeof o.client}`);
  }
  if (o.verbose !== undefined) boolean('verbose', o.verbose);
  // s3db.js's names beside the story's: both given, they must agree (which one wins is a guess)
  for (const [ours, theirs] of [['level', 'compressionLevel'], ['verify', 'verification'], ['concurrency', 'parallelism']] as const) {
    const same = (a: unknown, b: unknown) => a === b || (ours === 'verify' && (a === true ? 'full' : a) === (b === true ? 'full' : b));
    if (o[ours] !== undefined && o[theirs] !== undefined && !same(o[ours], o[theirs])) {
      throw optionError(theirs, `is ${JSON.stringify(o[theirs])} and "${ours}" ${JSON.stringify(o[ours])}: they are one option (${theirs} is s3db.js's name for it)`, 'Give one of them');
    }
  }
  const compression: Compression = o.compression === false ? 'none' : oneOf('compression', o.compression ?? 'gzip', COMPRESSIONS);
  const level = o.level ?? o.compressionLevel ?? null;
  const range = LEVELS[compression];
  if (level !== null && compression !== 'none' && (typeof level !== 'number' || !Number.isInteger(level) || level < range.min || level > range.max)) {
    throw optionError(o.level !== undefined ? 'level' : 'compressionLevel', `${JSON.stringify(level)} is not a ${compression} level`, `Use an integer from ${range.min} to ${range.max} (${compression}; default ${range.default})`);
  }

  const verifyRaw = o.verify ?? o.verification ?? true;
  const verify = verifyRaw === true ? 'full' : verifyRaw === false ? false : oneOf(o.verify !== undefined ? 'verify' : 'verification', verifyRaw, ['quick', 'full'] as const); // (named as written)

  const { passphrase, iterations } = encryptionOption(o.encryption);

  const type = o.type === 'selective' ? 'full' : oneOf('type', o.type ?? 'full', ['full', 'incremental'] as const);
  const include = o.include === undefined || o.include === null ? null : stringList('include', o.include);
  const exclude = o.exclude === undefined ? [] : stringList('exclude', o.exclude);
  const selections: Record<string, ResourceSelection> = {};
  const resourceSchedules: Record<string, ScheduleValue> = {};
  if (o.resources !== undefined) {
    if (typeof o.resources !== 'object' || o.resources === null || Array.isArray(o.resources)) {
      throw optionError('resources', 'must be an object like { users: true, sessions: false, orders: { filter } }');
    }
    for (const [name, value] of Object.entries(o.resources)) {
      if (value === false) exclude.push(name);
      else if (value === true) continue;
      else if (isPlainObject(value)) {
        // a misspelt key (schedul, filtr) would back the resource up whole on the main schedule
        for (const key of Object.keys(value)) {
          if (!['filter', 'fields', 'limit', 'schedule'].includes(key)) throw optionError(`resources.${name}.${key}`, 'is not a resource option', knownHint(key, ['filter', 'fields', 'limit', 'schedule']));
        }
        const { filter, fields, limit, schedule } = value as { filter?: unknown; fields?: unknown; limit?: unknown; schedule?: unknown };
        // (an array or a Buffer as filter matched no record: a backup of nothing, "verified")
        if (filter !== undefined && typeof filter !== 'function' && !isPlainObject(filter)) {
          throw optionError(`resources.${name}.filter`, 'must be an object of field values or a function of the record', "e.g. { status: 'active' } or (record) => record.status === 'active'");
        }
        if (fields !== undefined) stringList(`resources.${name}.fields`, fields);
        if (limit !== undefined && (!Number.isInteger(limit) || (limit as number) < 1)) throw optionError(`resources.${name}.limit`, 'must be a positive integer');
        if (schedule !== undefined) {
          const own = scheduleValue(`resources.${name}.schedule`, schedule);
          // A resource with its own schedule is left out of the main one: with no timer of its own
          // (an empty `schedule:` in a config file is null) it would never be backed up on schedule.
          if (own === false) {
            throw optionError(`resources.${name}.schedule`, `turns off ${name}'s own timer, which would leave ${name} out of every scheduled backup`, `To back ${name} up with the main schedule, leave schedule out; to never back it up, write resources: { ${name}: false }`);
          }
          resourceSchedules[name] = own;
        }
        if (filter !== undefined || fields !== undefined || limit !== undefined) selections[name] = { filter, fields, limit } as ResourceSelection;
      } else throw optionError(`resources.${name}`, 'must be true, false or { filter, fields, limit, schedule }');
    }
  }

  const reserved = reservedResourceName([...(include ?? []), ...Object.keys(selections), ...Object.keys(resourceSchedules)]);
  if (reserved) throw optionError(include?.includes('_database') ? 'include' : 'resources._database', reserved);
  // a selection of nothing would store an empty backup, "verified", at every tick
  if (include?.length === 0) throw optionError('include', 'is empty: it selects no resource, so every backup would hold nothing', 'Leave include out (or null) to back up every resource');
  const dropped = include?.filter((r) => exclude.includes(r)) ?? [];
  if (dropped.length > 0) {
    throw optionError('exclude', `leaves out ${dropped.join(', ')}, which include selects (or resources: { ${dropped[0]}: false })`, 'Name each resource in one of them');
  }
  return {
    driver,
    destinations,
    strategy,
    schedule: scheduleValue('schedule', o.schedule === undefined ? 'daily' : o.schedule),
    timezone: o.timezone === undefined ? 'UTC' : nonEmptyString('timezone', o.timezone, "an IANA time zone such as 'Europe/Berlin'"),
    type,
    maxChainLength: positiveInt('maxChainLength', o.maxChainLength ?? 24),
    compression,
    level,
    verify,
    includeMetadata: boolean('includeMetadata', o.includeMetadata ?? true),
    passphrase,
    iterations,
    retention: o.retention ?? null,
    include,
    exclude,
    selections,
    resourceSchedules,
    triggers: triggers(o.triggers),
    webhooks: webhooks(o.webhooks),
    partSize: sized('partSize', o.partSize ?? 64 * MiB, MiB / 1024, 4096 * MiB),
    concurrency: o.concurrency === undefined && o.parallelism === undefined ? null : positiveInt(o.concurrency !== undefined ? 'concurrency' : 'parallelism', o.concurrency ?? o.parallelism),
    pageSize: o.pageSize === undefined ? null : positiveInt('pageSize', o.pageSize),
    segmentSize: sized('segmentSize', o.segmentSize ?? MiB, 1024, 16 * MiB),
    // the codec's own limit, checked here so a backup does not fail on it at its first tick
    threads: o.threads === undefined ? undefined : atMost('threads', positiveInt('threads', o.threads), MAX_THREADS),
    lease: leaseOption(o.lease),
    staleAfterMs: positiveInt('staleAfterMs', o.staleAfterMs ?? 15 * 60_000),
    progressIntervalMs: positiveInt('progressIntervalMs', o.progressIntervalMs ?? 1000),
    hookTimeoutMs: timerMs('hookTimeoutMs', o.hookTimeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS),
    retries: retriesOption(o.retries ?? DEFAULT_RETRIES),
    retryDelayMs: timerMs('retryDelayMs', o.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS),
    pathTemplate: o.pathTemplate,
  };
}

function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw optionError(name, `${JSON.stringify(value)} is not one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
  }
  return value as T;
}

function stringList(name: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw optionError(name, 'must be an array of resource names');
  return [...(value as string[])];
}

function positiveInt(name: string, value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 1) throw optionError(name, `${JSON.stringify(value) ?? String(value)} is not a positive integer`);
  return value as number;
}

function retriesOption(value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > MAX_RETRIES) {
    throw optionError('retries', `${JSON.stringify(value) ?? String(value)} is not a whole number from 0 to ${MAX_RETRIES}`, '0 turns retries off');
  }
  return value as number;
}

/** A positive whole number of milliseconds that a Node timer can hold (a longer one fires at once). */
function atMost(name: string, n: number, max: number): number {
  if (n > max) throw optionError(name, `${n} is more than ${max}`, `Use 1 to ${max}`);
  return n;
}

function timerMs(name: string, value: unknown): number {
  const n = positiveInt(name, value);
  if (n > MAX_TIMER_MS) throw optionError(name, `${n} ms is longer than a timer can wait`, `Use at most ${MAX_TIMER_MS} (about 24.8 days)`);
  return n;
}

function boolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw optionError(name, `${JSON.stringify(value) ?? String(value)} is not true or false`);
  return value;
}

function nonEmptyString(name: string, value: unknown, example: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw optionError(name, `${JSON.stringify(value) ?? String(value)} is not a string`, `Use ${example}`);
  return value;
}

function hooks(o: BackupPluginOptions): void {
  for (const name of HOOKS) {
    const hook = o[name];
    if (hook !== undefined && hook !== null && typeof hook !== 'function') throw optionError(name, 'must be a function (type or backupId, context) => void');
  }
}

function sized(name: string, value: unknown, min: number, max: number): number {
  const n = positiveInt(name, value);
  if (n < min || n > max) throw optionError(name, `${n} bytes is outside ${min}..${max}`);
  return n;
}

function scheduleValue(name: string, value: unknown): ScheduleValue {
  if (value === false || value === null) return false;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw optionError(name, `${value} is not a whole number of milliseconds`, `Use at least ${MIN_PLUGIN_INTERVAL_MS} ms, a name (hourly, daily, weekly, monthly) or a cron expression`);
    if (value < MIN_PLUGIN_INTERVAL_MS) throw optionError(name, `${value} ms is too short`, `Use at least ${MIN_PLUGIN_INTERVAL_MS} ms, a name (hourly, daily, weekly, monthly) or a cron expression`);
    return value;
  }
  if (typeof value === 'string' && value.trim() !== '') return value.trim();
  if (isPlainObject(value)) {
    const v = value as { cron?: unknown; interval?: unknown; enabled?: unknown };
    for (const [key, field] of Object.entries(v)) {
      if (!SCHEDULE_KEYS.includes(key)) throw optionError(`${name}.${key}`, 'is not a schedule field', `A schedule object is {} (no timer), { cron: '0 2 * * *' } or { interval: 3600000 }, optionally with enabled; or write ${name}: 'daily'`);
      // { cron: process.env.BACKUP_CRON } with the variable unset would turn backups off in silence
      if ((key === 'cron' || key === 'interval') && (field === undefined || field === null)) throw optionError(`${name}.${key}`, `is ${String(field)} (an unset environment variable?)`, `Set it, or write ${name}: false to turn the timer off`);
    }
    if (v.enabled !== undefined && typeof v.enabled !== 'boolean') throw optionError(`${name}.enabled`, 'must be true or false');
    if (v.cron !== undefined && v.interval !== undefined) throw optionError(name, 'has both cron and interval', 'Give one');
    if (v.enabled === false) return false;
    if (v.cron !== undefined) return scheduleValue(`${name}.cron`, v.cron);
    if (v.interval !== undefined) return scheduleValue(`${name}.interval`, v.interval);
    if (v.enabled === true) throw optionError(`${name}.enabled`, 'is true but neither cron nor interval is set', `Add cron or interval, or write ${name}: 'daily'`);
    return false;
  }
  throw optionError(name, `${JSON.stringify(value)} is not a schedule`, "Use 'hourly', 'daily', 'weekly', 'monthly', a cron expression, milliseconds, or false");
}

const TRIGGER_KEYS = new Set(['event', 'type', 'reason', 'condition']);

function triggers(value: unknown): TriggerOption[] {
  if (value === undefined || value === null) return []; // null: none, as webhooks: null (walk-29 N2)
  if (!Array.isArray(value)) throw optionError('triggers', 'must be an array of { event, type, reason, condition }');
  return value.map((t, i) => {
    const trigger = t as TriggerOption;
    if (typeof trigger?.event !== 'string' || trigger.event === '') throw optionError(`triggers[${i}].event`, 'must be a non-empty event name');
    if (trigger.type !== undefined) oneOf(`triggers[${i}].type`, trigger.type, ['full', 'incremental', 'selective'] as const);
    if (trigger.condition !== undefined && typeof trigger.condition !== 'function') throw optionError(`triggers[${i}].condition`, 'must be a function (context) => boolean');
    if (trigger.reason !== undefined && typeof trigger.reason !== 'string') throw optionError(`triggers[${i}].reason`, 'must be a string (the backup\'s reason)');
    for (const key of Object.keys(trigger)) {
      if (!TRIGGER_KEYS.has(key)) throw optionError(`triggers[${i}].${key}`, 'is not a trigger field', 'A trigger is { event, type, reason, condition }');
    }
    return { ...trigger };
  });
}

function webhooks(value: unknown): NormalizedOptions['webhooks'] {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw optionError('webhooks', 'must be an object of functions', 'e.g. webhooks: { onSuccess: (backup) => fetch(url, ...), onFailure: (error) => ... }');
  }
  const w = value as NormalizedOptions['webhooks'];
  for (const name of ['onSuccess', 'onFailure'] as const) {
    if (w[name] !== undefined && typeof w[name] !== 'function') throw optionError(`webhooks.${name}`, 'must be a function');
  }
  for (const name of Object.keys(w)) if (name !== 'onSuccess' && name !== 'onFailure') throw optionError(`webhooks.${name}`, 'is not a webhook', 'Use onSuccess and onFailure');
  return { onSuccess: w.onSuccess, onFailure: w.onFailure };
}

function leaseOption(value: unknown): NormalizedOptions['lease'] {
  const defaults = { enabled: true, ttlMs: 60_000, waitMs: 10 * 60_000 };
  if (value === undefined || value === true) return defaults;
  if (value === false) return { ...defaults, enabled: false };
  if (typeof value === 'object' && value !== null) {
    const v = value as { ttlMs?: number; waitMs?: number };
    for (const key of Object.keys(v)) if (key !== 'ttlMs' && key !== 'waitMs') throw optionError(`lease.${key}`, 'is not a lease option', 'Use { ttlMs, waitMs }');
    // (its renewals every ttlMs / 3 are timers: longer than a timer can wait, they would fire at once, again and again)
    return { enabled: true, ttlMs: timerMs('lease.ttlMs', v.ttlMs ?? defaults.ttlMs), waitMs: v.waitMs === 0 ? 0 : positiveInt('lease.waitMs', v.waitMs ?? defaults.waitMs) };
  }
  throw optionError('lease', 'must be true, false or { ttlMs, waitMs }');
}

/** An object literal (or Object.create(null)): not an array, Buffer, Date, Map or class instance. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}
