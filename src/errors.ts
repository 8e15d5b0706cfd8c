/**
 * The one error type of s3db-backup. Every failure a user can cause or meet (bad option, wrong
 * passphrase, corrupt part, destination down) is a BackupError with a stable `code` and a message
 * that names the option or object and says what to do. Invariant: messages, `details` and `cause`
 * never contain a passphrase or key material; a message has connection-string credentials hidden
 * and a cause is reduced to what says what failed (safeCause), so a library's error quoted or
 * kept here cannot carry credentials through it. The one cause kept as it is: an error the
 * application's own code threw (a start hook's: `applicationCause`), which is the caller's.
 */
import { redacted } from './redact.js';

export class BackupError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, options: { cause?: unknown; applicationCause?: unknown; details?: Record<string, unknown> } = {}) {
    const cause = options.applicationCause !== undefined ? applicationsOwn(options.applicationCause) : options.cause === undefined ? undefined : safeCause(options.cause);
    super(redacted(message), cause === undefined ? undefined : { cause });
    this.name = 'BackupError';
    this.code = code;
    this.details = options.details ?? {};
  }
}

/**
 * An error the application threw, kept as it is unless it is a library's that came through it
 * (an AWS SDK error holds the signed request in `$response`, s3db.js's keeps the AWS error as
 * `original`): that one is reduced as any cause.
 */
function applicationsOwn(err: unknown): unknown {
  if (typeof err !== 'object' || err === null) return err;
  const e = err as Record<string, unknown>;
  return '$metadata' in e || '$response' in e || 'original' in e ? safeCause(err) : err;
}

/** Fields of a cause that say what failed and are kept: codes, status, the file an fs error names. */
const CAUSE_FIELDS = ['code', 'Code', 'errno', 'syscall', 'path', 'statusCode', '$fault', '$metadata', 'StorageClass'] as const;

/**
 * The error a BackupError keeps as its cause: another BackupError as it is; any other error as a
 * plain Error with its name, its message (credentials hidden) and CAUSE_FIELDS, its own cause
 * likewise. What else a library attaches is left out: an AWS signature error echoes the signed
 * request (session token included), s3db.js keeps the whole AWS error as `original`, an SDK
 * error holds the raw `$response`.
 */
function safeCause(cause: unknown, depth = 0): unknown {
  if (typeof cause !== 'object' || cause === null) return cause;
  try {
    return cause instanceof BackupError ? cause : reducedCause(cause, depth);
  } catch {
    return new Error('(an error whose properties could not be read)'); // a throwing getter, a revoked proxy
  }
}

function reducedCause(cause: object, depth: number): Error {
  const source = cause as Record<string, unknown> & { name?: unknown; cause?: unknown };
  const safe = new Error(redacted(String(errorMessage(cause) ?? '')), source.cause !== undefined && depth < 3 ? { cause: safeCause(source.cause, depth + 1) } : undefined);
  safe.name = typeof source.name === 'string' ? source.name : 'Error';
  if (typeof source.stack === 'string') safe.stack = redacted(source.stack);
  for (const field of CAUSE_FIELDS) {
    const value = source[field];
    if (value !== undefined) (safe as unknown as Record<string, unknown>)[field] = typeof value === 'string' ? redacted(value) : field === '$metadata' && typeof value === 'object' ? { ...value } : value;
  }
  return safe;
}

/** Error for an invalid plugin or destination option: names the option and what is accepted. */
export function optionError(option: string, problem: string, hint?: string): BackupError {
  return new BackupError('ERR_INVALID_OPTION', `Invalid option "${option}": ${problem}${hint ? `. ${hint}` : ''}`, {
    details: { option },
  });
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * `err`'s message followed by what its causes (at most `depth` levels) say of the network: "fetch
 * failed (connect ECONNREFUSED 127.0.0.1:9)". Node's fetch says why only in `cause`. A cause's
 * message is added when it is a system error's (a syscall and a host) or quotes no URL ("bad
 * port"); of another, only its code: an application's wrapped error may quote a webhook URL with
 * its secret in the path (review-29 F4, review-29b G4).
 */
export function messageWithCauses(err: unknown, depth = 2): string {
  let text = errorMessage(err);
  let cause = err instanceof Error ? err.cause : undefined;
  for (let i = 0; i < depth && cause !== undefined && cause !== null; i++) {
    const { code, syscall } = cause as { code?: unknown; syscall?: unknown };
    const said = errorMessage(cause);
    // a message that quotes no URL is added as it is ("bad port"), another only by its code
    const more = typeof syscall === 'string' || !/[a-z][a-z0-9+.-]*:\/\//i.test(said) ? said : typeof code === 'string' ? code : '';
    if (more !== '' && !text.includes(more)) text += ` (${more})`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return text;
}

/**
 * s3db.js's connection errors carry " | Code: ... | Stack: ..." chains: keep the first line of
 * reason (of a message already without credentials). Its HTTP handler's "Circuit breaker OPEN for
 * <host>" is what a store that refuses connections or stopped answering ends as (after ~14 s, or
 * ~4 min of timed-out requests), and its operation pool's "Task <id> timed out after <n>ms" what
 * one that stopped answering while a database is opened does: each gets what it means and what
 * to check.
 */
export function conciseCause(text: string): string {
  const message = text.split(/ \| (?:Code|Stack):/)[0]!.replace(/^(?:Unknown error: )+/, '');
  const line = message.length > 300 ? `${message.slice(0, 300)}...` : message;
  if (/\bTask \S+ timed out after \d+ms\b/.test(line)) return `${line} (s3db.js stopped waiting for the store to answer: check that it is up and answering)`;
  const unanswered = /Circuit breaker OPEN for (\S+)/.exec(line);
  if (!unanswered) return line;
  return `${line} (nothing answered at ${unanswered[1]}: s3db.js's client stops sending there once 5 requests in a row could not connect or went unanswered; check the host and port of the connection string, and that the store is up and answering)`;
}
