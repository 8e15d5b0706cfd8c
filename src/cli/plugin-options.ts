/**
 * BackupPlugin options for one command-line run: the `--config` file's options (if any), the
 * destination flags over them, the passphrase from its source, and always `schedule: false` (a
 * command runs once; it never starts timers or triggers).
 *
 * Invariants: the passphrase is read from an environment variable or a file, never from argv,
 * and is never printed; an explicitly named source that is unset or empty is an error (a missing
 * secret must not turn into an unencrypted backup or a confusing "passphrase required").
 */
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BackupPluginOptions } from '../options.js';
import { UsageError, type CliArgs } from './args.js';

export const DEFAULT_PASSPHRASE_ENV = 'BACKUP_PASSPHRASE';

/** A pino-like logger: what the plugin logs goes to stderr (info only with --verbose). */
export interface CliLogger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
  debug(obj: Record<string, unknown>, msg: string): void;
  trace(obj: Record<string, unknown>, msg: string): void;
  fatal(obj: Record<string, unknown>, msg: string): void;
  child(): CliLogger;
}

export async function pluginOptions(args: CliArgs, env: NodeJS.ProcessEnv, logger: CliLogger): Promise<BackupPluginOptions> {
  const options: BackupPluginOptions = args.config ? await loadConfigFile(args.config) : {};
  if (args.directory !== null) setDestination(options, 'filesystem', { directory: path.resolve(args.directory) });
  if (args.s3 !== null) setDestination(options, 's3', s3Config(args));
  if (args.config === null && args.directory === null && args.s3 === null) {
    throw new UsageError('where are the backups? Give --directory <path>, --s3 <s3://bucket/prefix> or --config <file>');
  }
  const passphrase = await readPassphrase(args, env);
  if (passphrase !== null) {
    const given = options.encryption;
    const rest = given && typeof given === 'object' ? Object.fromEntries(Object.entries(given).filter(([k]) => k !== 'passphrase' && k !== 'key' && k !== 'enabled')) : {};
    options.encryption = { ...rest, passphrase };
  }
  return { ...options, schedule: false, logger };
}

function setDestination(options: BackupPluginOptions, driver: 'filesystem' | 's3', config: Record<string, unknown>): void {
  delete options.destinations;
  delete options.strategy;
  options.driver = driver;
  options.config = config;
}

/** `s3://bucket` is the plugin's default prefix (`backups/`); `s3://bucket/` the bucket's root; `s3://bucket/p` the prefix `p/`. */
function s3Config(args: CliArgs): Record<string, unknown> {
  const match = /^s3:\/\/([^/]+)(\/.*)?$/.exec(args.s3 ?? '');
  if (!match) throw new UsageError(`--s3 must look like s3://bucket/prefix (got '${args.s3 ?? ''}'); credentials come from the environment, not the URL`);
  const [, bucketName, rest] = match as unknown as [string, string, string | undefined];
  if (bucketName.includes('@') || bucketName.includes(':')) throw new UsageError('--s3 takes no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) instead');
  const config: Record<string, unknown> = { bucketName };
  if (rest !== undefined) config.prefix = rest.slice(1);
  if (args.endpoint !== null) config.endpoint = args.endpoint;
  if (args.region !== null) config.region = args.region;
  return config;
}

async function readPassphrase(args: CliArgs, env: NodeJS.ProcessEnv): Promise<string | null> {
  return passphraseFrom({ file: args.passphraseFile, envName: args.passphraseEnv, option: '--passphrase' }, env, DEFAULT_PASSPHRASE_ENV);
}

/** `rewrap`'s new passphrase: from --new-passphrase-env or --new-passphrase-file (no default variable). */
export async function readNewPassphrase(args: CliArgs, env: NodeJS.ProcessEnv): Promise<string> {
  const value = await passphraseFrom({ file: args.newPassphraseFile, envName: args.newPassphraseEnv, option: '--new-passphrase' }, env, null);
  if (value === null) throw new UsageError('rewrap needs the new passphrase: --new-passphrase-env NAME or --new-passphrase-file PATH');
  return value;
}

/** A passphrase from a file, or a named (else the default) environment variable; null when none is given. */
async function passphraseFrom(source: { file: string | null; envName: string | null; option: string }, env: NodeJS.ProcessEnv, defaultEnv: string | null): Promise<string | null> {
  if (source.file !== null) {
    let text: string;
    try {
      text = await readFile(source.file, 'utf8');
    } catch (err) {
      // the path is not echoed: a passphrase given where its file's path goes would be printed
      throw new UsageError(`the file given to ${source.option}-file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}; its path is not shown, in case it is the passphrase itself)`);
    }
    const passphrase = text.replace(/\r?\n$/, '');
    if (passphrase === '') throw new UsageError(`${source.option}-file ${source.file} is empty`);
    return passphrase;
  }
  const name = source.envName ?? defaultEnv;
  if (name === null) return null;
  // not echoed unless it is a variable's name: a passphrase given where its name goes would be printed
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new UsageError(`${source.option}-env takes the NAME of an environment variable (letters, digits, _), e.g. ${source.option}-env ${DEFAULT_PASSPHRASE_ENV}; what was given is not one (it is not shown, in case it is the passphrase itself)`);
  const value = env[name];
  if (value === undefined) {
    if (source.envName !== null) throw new UsageError(`${source.option}-env ${name}: the environment variable ${name} is not set`);
    return null;
  }
  if (value === '') {
    const orUnset = source.option === '--passphrase' ? ', or unset it for unencrypted backups' : '';
    throw new UsageError(`the environment variable ${name} is set but empty; set the passphrase in it${orUnset}`);
  }
  return value;
}

async function loadConfigFile(file: string): Promise<BackupPluginOptions> {
  const full = path.resolve(file);
  let loaded: unknown;
  try {
    loaded = file.endsWith('.json') ? JSON.parse(await readFile(full, 'utf8')) : ((await import(pathToFileURL(full).href)) as { default?: unknown }).default;
  } catch (err) {
    // JSON.parse quotes the text around the error, which may be a secret: only its position is shown
    const at = err instanceof SyntaxError ? /position \d+/.exec(err.message)?.[0] : undefined;
    const reason = err instanceof SyntaxError && file.endsWith('.json') ? `not valid JSON${at ? ` (${at})` : ''}` : (err as Error).message;
    throw new UsageError(`--config ${file} cannot be loaded: ${reason}`);
  }
  if (typeof loaded !== 'object' || loaded === null || Array.isArray(loaded)) {
    throw new UsageError(`--config ${file} must hold BackupPlugin options as an object (a .js/.mjs file: export default { ... })`);
  }
  return { ...(loaded as BackupPluginOptions) };
}
