/**
 * The command line's grammar: `s3db-backup <command> [id] [options]`, parsed with Node's own
 * `util.parseArgs` (no dependency; strict, so an unknown or misspelt option is refused, never
 * ignored). Invariant: a passphrase is never accepted as an argument (argv is visible to every
 * user of the machine in `ps`): only the name of an environment variable or a file holding it.
 */
import { parseArgs } from 'node:util';
import { knownHint } from '../known-names.js';
import { redactedTarget } from '../redact.js';

export const COMMANDS = ['list', 'show', 'verify', 'restore', 'recover', 'backup', 'rewrap'] as const;
export type CommandName = (typeof COMMANDS)[number];

export interface CliArgs {
  command: CommandName;
  /** The backup id of show, verify and restore. */
  id: string | null;
  directory: string | null;
  s3: string | null;
  endpoint: string | null;
  region: string | null;
  config: string | null;
  passphraseEnv: string | null;
  passphraseFile: string | null;
  newPassphraseEnv: string | null;
  newPassphraseFile: string | null;
  into: string | null;
  db: string | null;
  mode: 'replace' | 'merge' | 'skip';
  resources: string[] | null;
  level: 'quick' | 'full';
  type: 'full' | 'incremental';
  reason: string | null;
  limit: number | null;
  dryRun: boolean;
  noVerify: boolean;
  /** restore: a backup that is not encrypted although a passphrase is set. */
  allowPlaintext: boolean;
  /** restore: write the objects the database already holds in the backup's version too. */
  rewriteUnchanged: boolean;
  salvage: boolean;
  /** backup: take it unencrypted although the destination holds encrypted backups. */
  unencrypted: boolean;
  yes: boolean;
  json: boolean;
  verbose: boolean;
}

/** A mistake in the command line: printed with the usage, exit code 2. */
export class UsageError extends Error {}

export const USAGE = `Usage: s3db-backup <command> [options]

Commands:
  list                  the backups at the destination, newest first
  show <id>             one backup: resources, counts, destinations, verification
  verify <id>           check a backup (and the backups it needs); exit code 3 if it is damaged
  restore <id>          restore a backup into the database given by --into
  recover               put back lost or corrupt manifests and object indexes; exit code 3 if one
                        cannot be put back
  backup                take a backup of the database given by --db now
  rewrap                change the passphrase: key.json at every destination is wrapped again
                        (current passphrase as below, the new one from --new-passphrase-env/-file)

Where the backups are (one of them, or --config):
  --directory <path>          a filesystem destination
  --s3 <s3://bucket/prefix>   an S3 destination; credentials come from the AWS SDK's usual chain
                              (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles)
  --endpoint <url>            with --s3: an S3-compatible store (http://127.0.0.1:7480)
  --region <region>           with --s3 (default us-east-1)
  --config <file>             BackupPlugin options in a .json, .js or .mjs file (default export):
                              destinations, multi, encryption... Flags given as well win.

Passphrase of encrypted backups (never as an argument: argv is visible in ps):
  --passphrase-env <NAME>     the environment variable holding it (default: BACKUP_PASSPHRASE, if set)
  --passphrase-file <path>    a file holding it (one trailing newline is dropped)

restore:
  --into <connection string>  the database to restore into: file:///srv/db, s3://bucket/prefix,
                              http://host:port/bucket/prefix (credentials from AWS_ACCESS_KEY_ID and
                              AWS_SECRET_ACCESS_KEY: out of argv; or KEY:SECRET@ in the string)
  --mode replace|merge|skip   replace (default): each restored resource becomes exactly the backup;
                              merge: backup objects overwrite, others stay; skip: only missing objects
  --resources a,b             only these resources (a name holding a comma: a\\,b)
  --dry-run                   report what would be written and deleted; write nothing
  --rewrite-unchanged         also write the objects the database holds as the backup has them
                              (by default they are left in place and counted "unchanged")
  --salvage                   restore what a damaged backup still holds: parts damaged at every
                              destination are passed over, and their objects (named in the report)
                              left as the database has them; exit code 3 when some were
  --no-verify                 skip the full verification before the first write (not advised)
  --allow-plaintext           restore a backup that is not encrypted although a passphrase is set
                              (taken before encryption was turned on: nothing authenticates it)
  --yes                       write without asking (needed when stdin is not a terminal)
verify:
  --level quick|full          full (default): decode everything; quick: parts present, sizes, SHA-256
backup:
  --db <connection string>    the database to back up
  --type full|incremental     default full
  --resources a,b             only these resources (a name holding a comma: a\\,b)
  --reason <text>
  --unencrypted               take it without encryption although the destination holds encrypted
                              backups (without it, a missing passphrase is refused there)
list:
  --limit <n>                 at most n backups
rewrap:
  --new-passphrase-env <NAME> the environment variable holding the new passphrase
  --new-passphrase-file <path> a file holding it

Common:
  --json                      print the result as JSON on stdout (messages stay on stderr)
  --verbose                   print the plugin's info messages too
  -h, --help                  this text
  -V, --version               the version, and whether the native core or the JS codec runs here (and why)

Exit codes: 0 done, 1 failed (the error code and message are printed), 2 wrong command line,
3 verify found the backup damaged, recover could not put a manifest back, or restore --salvage
could not restore some objects (a dry run: will pass over damaged parts); 4 verify found a
damaged copy at one destination (the backup restores from another), or recover could not put a
manifest back at one destination while another holds it; 130/143/129 ended by Ctrl-C/SIGTERM/SIGHUP (a backup stopped cleanly
by the first one exits 1, ERR_ABORTED).`;

const OPTIONS = {
  directory: { type: 'string' },
  s3: { type: 'string' },
  endpoint: { type: 'string' },
  region: { type: 'string' },
  config: { type: 'string' },
  'passphrase-env': { type: 'string' },
  'passphrase-file': { type: 'string' },
  'new-passphrase-env': { type: 'string' },
  'new-passphrase-file': { type: 'string' },
  into: { type: 'string' },
  db: { type: 'string' },
  mode: { type: 'string' },
  resources: { type: 'string' },
  level: { type: 'string' },
  type: { type: 'string' },
  reason: { type: 'string' },
  limit: { type: 'string' },
  'dry-run': { type: 'boolean' },
  'no-verify': { type: 'boolean' },
  'allow-plaintext': { type: 'boolean' },
  'rewrite-unchanged': { type: 'boolean' },
  salvage: { type: 'boolean' },
  unencrypted: { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;

/** Options that only some commands take: given to another, they are refused (they would be ignored). */
const ONLY_FOR: Record<string, readonly CommandName[]> = {
  into: ['restore'],
  mode: ['restore'],
  'dry-run': ['restore'],
  'no-verify': ['restore'],
  'allow-plaintext': ['restore'],
  'rewrite-unchanged': ['restore'],
  salvage: ['restore'],
  yes: ['restore'],
  level: ['verify'],
  db: ['backup'],
  type: ['backup'],
  reason: ['backup'],
  unencrypted: ['backup'],
  resources: ['restore', 'backup'],
  limit: ['list'],
  'new-passphrase-env': ['rewrap'],
  'new-passphrase-file': ['rewrap'],
};

/** Parses argv (without node and the script). Returns 'help' or 'version' when that was asked for. */
export function parseCli(argv: string[]): CliArgs | 'help' | 'version' {
  const passphraseArg = argv.find((a) => /^--(new-)?(passphrase|password|key)(=|$)/.test(a));
  if (passphraseArg) {
    throw new UsageError(`${passphraseArg.split('=')[0]} is not accepted: a passphrase on the command line is visible to every user in ps. Put it in an environment variable (--passphrase-env NAME, default BACKUP_PASSPHRASE) or a file (--passphrase-file PATH)`);
  }
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    // "Unknown option '--dirctory'. To specify a positional argument ...": the option, and the one it is a typo of
    const unknown = /^Unknown option '--([^'=]+)'/.exec((err as Error).message)?.[1];
    if (unknown !== undefined) throw new UsageError(`unknown option '--${unknown}'. ${knownHint(unknown, Object.keys(OPTIONS), 'Options', (o) => `--${o}`)}`);
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v.version) return 'version';
  const [command, id, ...rest] = parsed.positionals;
  if (command === undefined) throw new UsageError('no command given');
  if (!(COMMANDS as readonly string[]).includes(command)) throw new UsageError(`unknown command '${command}'. ${knownHint(command, COMMANDS, 'Commands')}`);
  const name = command as CommandName;
  const needsId = name === 'show' || name === 'verify' || name === 'restore';
  if (needsId && id === undefined) throw new UsageError(`${name} needs a backup id (s3db-backup list shows them)`);
  const extra = needsId ? rest : [id, ...rest].filter((x) => x !== undefined);
  if (extra.length > 0) throw new UsageError(`unexpected argument ${shownArgument(extra[0]!)} for ${name}`);
  for (const [option, commands] of Object.entries(ONLY_FOR)) {
    if (v[option as keyof typeof v] !== undefined && !commands.includes(name)) throw new UsageError(`--${option} is for ${commands.join(' and ')}, not ${name}`);
  }
  if (v.directory !== undefined && v.s3 !== undefined) throw new UsageError('give --directory or --s3, not both (several destinations: --config with driver multi)');
  // --directory "$BACKUP_DIR" with the variable unset would be the working directory
  if (v.directory !== undefined && v.directory.trim() === '') throw new UsageError('--directory is empty (an unset variable?): give the backups\' directory');
  if ((v.endpoint !== undefined || v.region !== undefined) && v.s3 === undefined) throw new UsageError('--endpoint and --region go with --s3');
  if (v['passphrase-env'] !== undefined && v['passphrase-file'] !== undefined) throw new UsageError('give --passphrase-env or --passphrase-file, not both');
  if (v['new-passphrase-env'] !== undefined && v['new-passphrase-file'] !== undefined) throw new UsageError('give --new-passphrase-env or --new-passphrase-file, not both');
  if (name === 'restore' && v.into === undefined) throw new UsageError('restore needs --into <connection string>: the database to restore into');
  if (name === 'backup' && v.db === undefined) throw new UsageError('backup needs --db <connection string>: the database to back up');
  for (const [option, value] of [['--into', v.into], ['--db', v.db]] as const) {
    if (value === undefined) continue;
    // (shown redacted: a forgotten scheme leaves KEY:SECRET@ where nothing else would hide it)
    if (!value.includes('://')) throw new UsageError(`${option} must be a connection string (file:///path, http://KEY:SECRET@host:port/bucket/prefix, s3://KEY:SECRET@bucket/prefix), got '${redactedTarget(value)}'`);
    // file://relative/path: s3db.js reads "relative" as the host and writes to /path
    if (/^file:\/\/[^/]/i.test(value)) throw new UsageError(`${option} ${redactedTarget(value)}: a file:// connection string takes an absolute path, file:///srv/db (three slashes)`);
    if (option === '--into' && /^memory:/i.test(value)) {
      throw new UsageError(`--into ${redactedTarget(value)}: a memory:// database lives inside this command, so what it restored would vanish when it exits. Restore into file:///path or an S3 store`);
    }
  }
  return {
    command: name,
    id: needsId ? (id as string).trim() : null, // ids hold no spaces: one pasted with a space still names its backup
    directory: v.directory ?? null,
    s3: v.s3 ?? null,
    endpoint: v.endpoint ?? null,
    region: v.region ?? null,
    config: v.config ?? null,
    passphraseEnv: v['passphrase-env'] ?? null,
    passphraseFile: v['passphrase-file'] ?? null,
    newPassphraseEnv: v['new-passphrase-env'] ?? null,
    newPassphraseFile: v['new-passphrase-file'] ?? null,
    into: v.into ?? null,
    db: v.db ?? null,
    mode: oneOf('--mode', v.mode, ['replace', 'merge', 'skip'] as const, 'replace'),
    resources: v.resources === undefined ? null : list('--resources', v.resources),
    level: oneOf('--level', v.level, ['full', 'quick'] as const, 'full'),
    type: oneOf('--type', v.type, ['full', 'incremental'] as const, 'full'),
    reason: v.reason ?? null,
    limit: v.limit === undefined ? null : positiveInteger('--limit', v.limit),
    dryRun: v['dry-run'] ?? false,
    noVerify: v['no-verify'] ?? false,
    allowPlaintext: v['allow-plaintext'] ?? false,
    rewriteUnchanged: v['rewrite-unchanged'] ?? false,
    salvage: v.salvage ?? false,
    unencrypted: v.unencrypted ?? false,
    yes: v.yes ?? false,
    json: v.json ?? false,
    verbose: v.verbose ?? false,
  };
}

function oneOf<T extends string>(option: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${option} must be one of ${allowed.join(', ')} (got '${value}')`);
}

/** Names separated by commas (a name holding one writes it `\,`), spaces around each dropped. */
function list(option: string, value: string): string[] {
  const names = value.split(/(?<!\\),/).map((s) => s.replace(/\\,/g, ',').trim());
  if (names.some((n) => n === '')) throw new UsageError(`${option} takes names separated by commas, without empty ones (got '${value}')`);
  return names;
}

function positiveInteger(option: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${option} must be a positive integer (got '${value}')`);
  return n;
}

/** A stray argument as an error shows it: a short lowercase word (a misplaced command) as it is, anything else not at all, in case it is a secret typed in the wrong place. */
export function shownArgument(arg: string): string {
  return /^[a-z]{1,12}$/.test(arg) ? `'${arg}'` : '(not shown, in case it is a secret typed in the wrong place)';
}
