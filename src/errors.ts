/**
 * The one error type of s3db-backup. Every failure a user can cause or meet (bad option, wrong
 * passphrase, corrupt part, destination down) is a BackupError with a stable `code` and a message
 * that names the option or object and says what to do. Invariant: messages, `details` and `cause`
 * never contain a passphrase or key material.
 */
export class BackupError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BackupError';
    this.code = code;
    this.details = options.details ?? {};
  }
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
