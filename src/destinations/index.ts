/**
 * Destination options, and the DestinationSet a plugin writes to. Each destination validates its
 * own config in its constructor, so a bad option fails when the plugin is created.
 *
 * s3db.js's own BackupPlugin spelled some of these differently; `normalizeDestinations` maps its
 * names onto ours (or refuses with a message saying what to write), never silently ignoring one:
 * - multi: `config: { destinations | drivers, strategy, concurrency }` (s3db's docs say `drivers`,
 *   its code `destinations`; `concurrency` capped parallel uploads: here every destination is
 *   written at once, paced by the slowest, so it is validated and has nothing more to do).
 * - filesystem / s3 `config.path` with template variables ('./backups/{date}/'): the part before
 *   the first variable's segment is the directory (filesystem) or key prefix (s3); the rest becomes
 *   the plugin's pathTemplate ({date} -> {year}-{month}-{day}, {backupId} -> {id}; {id} is appended
 *   when absent, as s3db.js put the backup id in every file name). Variables with no equivalent
 *   ({time}) are refused with what to use instead.
 * - s3 without a bucket: s3db.js fell back to the database's own bucket and client; here the S3
 *   destination is built in the plugin's constructor, before any database is known, so it is refused
 *   with what to add.
 */
import { optionError } from '../errors.js';
import { FilesystemDestination, type FilesystemDestinationConfig } from './filesystem.js';
import { S3Destination, type S3DestinationConfig } from './s3.js';
import { DestinationSet, STRATEGIES, type Strategy } from './set.js';
import type { Destination } from './types.js';
import { knownHint } from '../known-names.js';

export interface DestinationSpec {
  driver: 'filesystem' | 's3';
  config?: Record<string, unknown>;
}

const FILESYSTEM_KEYS = ['directory', 'path', 'pathTemplate', 'fsync', 'permissions', 'directoryPermissions'];
const MULTI_CONFIG_KEYS = ['destinations', 'drivers', 'strategy', 'concurrency'];
/** s3db.js path variables and ours; null = no equivalent (the value says what to use). */
const S3DB_PATH_VARS: Record<string, string | null> = {
  date: '{year}-{month}-{day}',
  year: '{year}',
  month: '{month}',
  day: '{day}',
  backupId: '{id}',
  type: '{type}',
  time: null,
};

export interface DestinationOptionsInput {
  driver: 'filesystem' | 's3' | 'multi';
  config?: unknown;
  destinations?: unknown;
  strategy?: unknown;
  pathTemplate?: string;
}

/** Validates the destination part of the plugin options and returns the specs and strategy. */
export function normalizeDestinations(o: DestinationOptionsInput): { destinations: DestinationSpec[]; strategy: Strategy } {
  if (o.driver !== 'multi') {
    if (o.destinations !== undefined) throw optionError('destinations', `is only used with driver 'multi' (driver is '${o.driver}')`);
    const config = plainObject('config', o.config ?? {});
    if (o.pathTemplate !== undefined && config.pathTemplate === undefined && !hasTemplatePath(config)) config.pathTemplate = o.pathTemplate;
    const strategy = o.strategy === undefined ? 'all' : strategyOf('strategy', o.strategy);
    return { destinations: [destinationSpec('config', o.driver, config, o.pathTemplate)], strategy };
  }
  const multi = plainObject('config', o.config ?? {});
  for (const key of Object.keys(multi)) {
    if (!MULTI_CONFIG_KEYS.includes(key)) throw optionError(`config.${key}`, "is not a multi option", `${knownHint(key, MULTI_CONFIG_KEYS)} (each destination's own settings go in its config)`);
  }
  const lists = (
    [
      ['destinations', o.destinations],
      ['config.destinations', multi.destinations],
      ['config.drivers', multi.drivers],
    ] as const
  ).filter(([, v]) => v !== undefined);
  if (lists.length > 1) throw optionError(lists[1]![0], `and "${lists[0]![0]}" both list destinations`, 'Give the list once');
  const [listName, list] = lists[0] ?? ['destinations', undefined];
  if (!Array.isArray(list) || list.length === 0) throw optionError(listName, "driver 'multi' needs a non-empty array of { driver, config }");
  if (o.strategy !== undefined && multi.strategy !== undefined && o.strategy !== multi.strategy) {
    throw optionError('config.strategy', `and "strategy" differ (${JSON.stringify(multi.strategy)} and ${JSON.stringify(o.strategy)})`, 'Give the strategy once');
  }
  const strategy = strategyOf(o.strategy !== undefined ? 'strategy' : 'config.strategy', o.strategy ?? multi.strategy ?? 'all');
  if (multi.concurrency !== undefined && (!Number.isInteger(multi.concurrency) || (multi.concurrency as number) < 1)) {
    throw optionError('config.concurrency', `${String(multi.concurrency)} is not a positive integer`);
  }
  const destinations = list.map((d: unknown, i) => {
    const name = `${listName}[${i}]`;
    if (typeof d !== 'object' || d === null || Array.isArray(d)) throw optionError(name, 'must be { driver, config }');
    const { driver, config, ...rest } = d as { driver?: unknown; config?: unknown };
    if (Object.keys(rest).length > 0) throw optionError(`${name}.${Object.keys(rest)[0]}`, 'is not a destination field', 'A destination is { driver, config }');
    if (driver !== 'filesystem' && driver !== 's3') throw optionError(`${name}.driver`, `${JSON.stringify(driver)} is not one of 'filesystem', 's3'`);
    return destinationSpec(`${name}.config`, driver, plainObject(`${name}.config`, config ?? {}), o.pathTemplate);
  });
  return { destinations, strategy };
}

/** One destination's config with s3db.js's spellings mapped (see the top comment). */
function destinationSpec(name: string, driver: 'filesystem' | 's3', input: Record<string, unknown>, topTemplate: string | undefined): DestinationSpec {
  const config = { ...input };
  if (driver === 'filesystem') {
    for (const key of Object.keys(config)) {
      if (!FILESYSTEM_KEYS.includes(key)) throw optionError(`${name}.${key}`, 'is not a filesystem destination option', knownHint(key, FILESYSTEM_KEYS));
    }
  } else if (config.bucketName === undefined && config.bucket === undefined) {
    throw optionError(
      `${name}.bucketName`,
      "is required: unlike s3db.js's own plugin, s3db-backup does not fall back to the database's bucket and client",
      `Add ${name}.bucketName (an existing bucket) and either ${name}.client (an @aws-sdk/client-s3 S3Client) or ${name}.credentials with ${name}.region (and ${name}.endpoint for an S3-compatible store)`,
    );
  }
  if (config.path === undefined) return { driver, config };
  const place = driver === 'filesystem' ? 'directory' : 'prefix';
  if (config[place] !== undefined) throw optionError(`${name}.path`, `and "${name}.${place}" are both set`, `Use one: 'path' is s3db.js's name for the ${place}`);
  const split = splitS3dbPath(`${name}.path`, config.path);
  if (split.template === null) {
    if (driver === 'filesystem') {
      delete config.path;
      config.directory = split.base;
    }
    return { driver, config };
  }
  const other = config.pathTemplate ?? topTemplate;
  if (other !== undefined && other !== split.template) {
    throw optionError(`${name}.path`, `has template variables and pathTemplate is also set`, `Use one: "${name}.path" maps to pathTemplate "${split.template}"`);
  }
  delete config.path;
  config[place] = driver === 's3' ? (split.base === '.' ? '' : split.base.replace(/^\.\//, '')) : split.base;
  config.pathTemplate = split.template;
  return { driver, config };
}

function hasTemplatePath(config: Record<string, unknown>): boolean {
  return typeof config.path === 'string' && config.path.includes('{');
}

/** Splits s3db.js's `path` ('./backups/{date}/') into a base and one of our path templates. */
export function splitS3dbPath(name: string, value: unknown): { base: string; template: string | null } {
  if (typeof value !== 'string' || value.trim() === '') throw optionError(name, 'must be a non-empty path', "e.g. '/mnt/backups' or './backups/{date}/'");
  const brace = value.indexOf('{');
  if (brace < 0) return { base: value, template: null };
  const slash = value.lastIndexOf('/', brace);
  const base = slash < 0 ? '.' : slash === 0 ? '/' : value.slice(0, slash);
  const segments = value.slice(slash + 1).split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '.' || s === '..')) throw optionError(name, `"${value}" has "." or ".." after its first template variable`, 'Put the whole directory before the first {variable}');
  const template = segments
    .join('/')
    .replace(/\{([^}]*)\}/g, (_, variable: string) => {
      const ours = S3DB_PATH_VARS[variable];
      if (ours === undefined) throw optionError(name, `unknown template variable {${variable}}`, `s3db.js variables that map here: ${Object.keys(S3DB_PATH_VARS).filter((v) => S3DB_PATH_VARS[v]).map((v) => `{${v}}`).join(' ')}`);
      if (ours === null) throw optionError(name, `template variable {${variable}} has no equivalent here`, 'Set pathTemplate instead, with {timestamp} (e.g. 20261130T174625969Z) or {hour}, and {year} {month} {day} {id} {type} {resource}');
      return ours;
    });
  return { base, template: template.includes('{id}') ? template : `${template}/{id}` };
}

function plainObject(name: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw optionError(name, 'must be an object');
  return { ...(value as Record<string, unknown>) };
}

function strategyOf(name: string, value: unknown): Strategy {
  if (typeof value !== 'string' || !(STRATEGIES as readonly string[]).includes(value)) {
    throw optionError(name, `${JSON.stringify(value)} is not one of ${STRATEGIES.map((s) => `'${s}'`).join(', ')}`);
  }
  return value as Strategy;
}

/** `pathTemplate` is the plugin's (parts have one path everywhere); the rest is the destination's. */
export function createDestination(spec: DestinationSpec): Destination {
  const { pathTemplate: _template, ...rest } = destinationSpec('config', spec.driver, spec.config ?? {}, undefined).config ?? {};
  if (spec.driver === 's3') return new S3Destination(rest as S3DestinationConfig);
  return new FilesystemDestination(rest as FilesystemDestinationConfig);
}

export function createDestinationSet(specs: DestinationSpec[], strategy: Strategy): DestinationSet {
  return new DestinationSet(specs.map(createDestination), strategy);
}

export { DestinationSet, FilesystemDestination, S3Destination };
export type { Destination, Strategy };
