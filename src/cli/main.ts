/**
 * `s3db-backup`, the command line: find, check and restore backups without writing a program
 * (the 3 AM runbook as commands), and take one now. It opens a BackupPlugin over the destination
 * (with `schedule: false`) on a scratch in-memory database, or on `--db` for `backup`, runs one
 * command, and exits: 0 done, 1 failed, 2 wrong command line or options, 3 verify found damage or
 * recover could not put a manifest back, 4 the same at one destination while another holds it whole,
 * 5 list could not list one of several destinations (the list shows what the others hold).
 *
 * Invariants: errors and warnings go to stderr with the error's code; `--json` prints exactly one
 * JSON document on stdout; nothing printed holds a passphrase or a connection string's
 * credentials (the plugin's messages are redacted at their source, BackupError).
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { activeImplementation, whyJs } from '../codec/options.js';
import type { S3db } from 's3db.js';
import { BackupPlugin } from '../plugin.js';
import { BackupError } from '../errors.js';
import { redacted, redactedTarget } from '../redact.js';
import { openedDatabaseOptions, unopenable } from '../target.js';
import { damagedSchema, PUT_SCHEMA_BACK, type UnconnectedDatabase } from '../damaged-schema.js';
import type { ProgressEvent } from '../engine/progress.js';
import { parseCli, USAGE, UsageError } from './args.js';
import { runCommand, EXIT_FAILED, type CommandIo } from './commands.js';
import { pluginOptions, readNewPassphrase, DEFAULT_PASSPHRASE_ENV, type CliLogger } from './plugin-options.js';
import type { BackupPluginOptions } from '../options.js';
import { ProgressDisplay } from './progress.js';
import { inCommandTerms } from './format.js';

export const EXIT_USAGE = 2;

export interface CliStreams {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
}

/** Runs one command line; resolves to the exit code. `progress`: where progress is shown (default: a display on `streams.stderr`). */
export async function main(argv: string[], env: NodeJS.ProcessEnv, streams: CliStreams, signal?: AbortSignal, progress: ProgressDisplay = new ProgressDisplay(streams.stderr)): Promise<number> {
  // the plugin's messages name its methods; a person here needs the commands (inCommandTerms)
  const say = (text: string) => streams.stderr.write(`${inCommandTerms(text)}\n`);
  let args: ReturnType<typeof parseCli>;
  try {
    args = parseCli(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    say(`s3db-backup: ${err.message}\nRun s3db-backup --help for the commands and options.`);
    return EXIT_USAGE;
  }
  if (args === 'help') {
    streams.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args === 'version') {
    streams.stdout.write(`${await versionLine()}\n`);
    return 0;
  }
  const noted: Noted = { unlisted: [], misplaced: [], manifestsLost: [] };
  const logger = cliLogger(
    args.verbose,
    (text) => {
      progress.stop();
      say(text);
    },
    noted,
  );
  let db: S3db | null = null;
  let plugin: BackupPlugin | null = null;
  try {
    const options = await pluginOptions(args, env, logger);
    const passphrases = args.command === 'rewrap' ? { current: passphraseOf(options), next: await readNewPassphrase(args, env) } : undefined;
    plugin = new BackupPlugin(options);
    plugin.on('plg:backup:progress', (e: ProgressEvent) => progress.update(e));
    // exitOnSignal: false, for the database (openedDatabaseOptions) and for the cron manager
    // s3db.js's file:// client shares: s3db.js would otherwise end the process with code 0 on
    // Ctrl-C, in the middle of a backup (run.ts decides what Ctrl-C does)
    const { getCronManager, S3db } = await loadS3db();
    getCronManager({ exitOnSignal: false, logLevel: 'silent' });
    db = new S3db(openedDatabaseOptions(args.db ?? `memory://s3db-backup-cli-${randomUUID()}`) as ConstructorParameters<typeof S3db>[0]);
    if (args.db !== null) await openSource(db, args.db);
    await db.connect().catch((err: unknown) => {
      throw sourceOpenError(err, args.db);
    });
    await db.usePlugin(plugin as unknown as Parameters<S3db['usePlugin']>[0]);
    const io: CommandIo = { out: args.json ? () => undefined : (text) => streams.stdout.write(`${inCommandTerms(text)}\n`), err: streams.stderr, stdin: streams.stdin, signal, ...noted, ...(passphrases ? { passphrases } : {}) };
    const { exitCode, result } = await runCommand(args, plugin, io);
    progress.stop();
    if (args.json) streams.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return exitCode;
  } catch (err) {
    progress.stop();
    if (err instanceof UsageError) {
      say(`s3db-backup: ${err.message}`);
      return EXIT_USAGE;
    }
    const code = err instanceof BackupError ? err.code : ((err as { code?: unknown }).code ?? 'ERR_UNEXPECTED');
    say(`s3db-backup: ${String(code)}: ${redacted(err instanceof Error ? err.message : String(err))}`);
    // (a message that already says what to do, as the keyring's "opens ... but not key.json", needs no generic hint)
    const hint = HINTS[String(code)];
    if (hint && !(err instanceof BackupError && err.details.explained === true)) say(hint);
    return code === 'ERR_INVALID_OPTION' ? EXIT_USAGE : EXIT_FAILED;
  } finally {
    await plugin?.uninstall().catch(() => undefined);
    await db?.disconnect().catch(() => undefined);
  }
}

/** The passphrase the options carry (the command put it there from its source), or null. */
function passphraseOf(options: BackupPluginOptions): string | null {
  const enc = options.encryption;
  return enc && typeof enc === 'object' && typeof enc.passphrase === 'string' ? enc.passphrase : null;
}

const HINTS: Record<string, string> = {
  ERR_PASSPHRASE_REQUIRED: `The backups are encrypted: put the passphrase in ${DEFAULT_PASSPHRASE_ENV} (or name another variable with --passphrase-env, or a file with --passphrase-file).`,
  ERR_WRONG_PASSPHRASE: "This passphrase does not open the backups' key. Check the variable holds the one these backups were made with (after s3db-backup rewrap: the new one); after a key rotation (key.json replaced and a new passphrase set), older backups need the old one.",
  ERR_LEASE_HELD: 'Another instance is backing up to this destination; wait for it, or stop it (runbook step 1).',
  ERR_BACKUP_NOT_FOUND: 'List the backups with: s3db-backup list (same destination flags).',
};

/** Destinations listBackups() warned about, by what it said: could not list them, they look like the wrong place, their manifests are gone. */
type Noted = Required<Pick<CommandIo, 'unlisted' | 'misplaced' | 'manifestsLost'>>;

/**
 * The plugin's log lines for a person: warnings and errors always, info with --verbose. A
 * destination listBackups() could not list (its warning's `unlisted` field), that looks like no
 * backup destination (`misplaced`) or holds parts without manifests (`manifestsLost`), is added
 * to `noted`.
 */
function cliLogger(verbose: boolean, print: (text: string) => void, noted: Noted): CliLogger {
  const quiet = () => undefined;
  const logger: CliLogger = {
    info: verbose ? (_o, msg) => print(`s3db-backup: ${msg}`) : quiet,
    warn: (o, msg) => {
      if (o.unlisted === true && typeof o.destination === 'string') noted.unlisted.push(o.destination);
      if (o.misplaced === true && typeof o.destination === 'string') noted.misplaced.push(o.destination);
      if (o.manifestsLost === true && typeof o.destination === 'string') noted.manifestsLost.push(o.destination);
      // a restore's warnings are printed with its report (WARNING: lines), not twice
      if (o.inReport === true) return;
      // the JS codec's reason is a paragraph, above every command's output: one line here (walk-30 F9)
      if (o.codec === 'js' && !verbose && !msg.includes('zstd')) msg = 'codec: the JS implementation runs, as the native core did not load (s3db-backup --version says why): backups and restores are several times slower';
      print(`s3db-backup: warning: ${msg}`);
    },
    error: (_o, msg) => print(`s3db-backup: error: ${msg}`),
    fatal: (_o, msg) => print(`s3db-backup: error: ${msg}`),
    debug: quiet,
    trace: quiet,
    child: () => logger,
  };
  return logger;
}

/** `s3db-backup --version`: this package's version and the codec that runs here (the native core, or the JS twin and why). */
async function versionLine(): Promise<string> {
  const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const codec = activeImplementation() === 'native' ? 'the native core (Rust)' : `the JS implementation, because ${whyJs()}`;
  return `s3db-backup ${version}; codec: ${codec}; Node ${process.versions.node}`;
}

/**
 * s3db.js, loaded when a command runs (`--help` and a wrong command line need none of it): one
 * that cannot be loaded is said in one line, not a stack trace (walk-30 F11).
 */
async function loadS3db(): Promise<typeof import('s3db.js')> {
  try {
    return await import('s3db.js');
  } catch (err) {
    throw new BackupError('ERR_S3DB_UNAVAILABLE', `s3db.js could not be loaded (${err instanceof Error ? err.message.split('\n')[0] : String(err)}): the command line needs s3db.js 21 installed beside s3db-backup (npm install s3db.js)`, { cause: err });
  }
}

/**
 * Checks `--db` before connecting: connect() would replace a damaged s3db.json with an empty one
 * (the backup would then lack every definition), or create an empty database where a typo points
 * (its empty "verified" backup would be the newest in the list). A store it cannot reach is worded
 * as restores word theirs: what to check, no s3db.js stack dump, no secret.
 */
async function openSource(db: S3db, connectionString: string): Promise<void> {
  const unconnected = db as unknown as UnconnectedDatabase;
  let damage: string | null;
  let present: boolean | undefined;
  try {
    damage = await damagedSchema(unconnected);
    present = damage !== null || (await unconnected.client?.exists?.('s3db.json'));
  } catch (err) {
    throw sourceOpenError(err, connectionString);
  }
  if (damage !== null) {
    throw new BackupError(
      'ERR_SOURCE_READ',
      `the database was not opened and no backup was taken: its ${damage}, and s3db.js would replace it with an empty one on connecting. Put it back first: ${PUT_SCHEMA_BACK}`,
    );
  }
  if (!present) throw new UsageError(`--db ${redacted(connectionString)}: there is no database there (no s3db.json); check the connection string. Nothing was created or backed up`);
}

function sourceOpenError(err: unknown, connectionString: string | null): unknown {
  if (err instanceof BackupError || err instanceof UsageError || connectionString === null) return err;
  return unopenable('ERR_SOURCE_OPEN', `--db ${redactedTarget(connectionString)}`, err, [connectionString]);
}
