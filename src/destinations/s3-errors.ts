/**
 * Maps AWS SDK errors of the S3 destination to BackupError with stable codes and messages that
 * name the destination, the operation and the object (never credentials):
 * ERR_ABORTED, ERR_DESTINATION_NO_BUCKET, ERR_DESTINATION_NOT_FOUND, ERR_DESTINATION_ACCESS,
 * ERR_DESTINATION_RANGE, ERR_DESTINATION_CHANGED, ERR_ARCHIVED_OBJECT, ERR_DESTINATION_IO. Where the
 * cause says what to check (credentials, endpoint, bucket), the message says it.
 */
import { BackupError, errorMessage } from '../errors.js';

export interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  StorageClass?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

export const asSdk = (err: unknown): SdkError => (typeof err === 'object' && err !== null ? (err as SdkError) : {});
export const httpStatus = (err: unknown): number | undefined => asSdk(err).$metadata?.httpStatusCode;

/**
 * The store could not be reached at all (no connection: refused, host unknown or unreachable, none
 * within connectionTimeoutMs), as opposed to a store that answered or dropped a connection.
 */
export function isUnreachable(err: unknown): boolean {
  const e = asSdk(err);
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'].includes(e.code ?? '')) return true;
  // smithy's connection timeout, or the kernel's (a client without one: "connect ETIMEDOUT", review-30b G5)
  return (e.name === 'TimeoutError' || e.code === 'ETIMEDOUT') && /did not establish a connection|connect ETIMEDOUT/.test(e.message ?? '');
}

export interface ErrorContext {
  label: string;
  bucket: string;
}

/** A BackupError for a failed `op` ("write", "read", ...) on `relative`. */
export function s3Error(ctx: ErrorContext, err: unknown, op: string, relative: string, forced?: 'ERR_ABORTED'): BackupError {
  if (err instanceof BackupError) return err;
  const e = asSdk(err);
  const code = httpStatus(err);
  if (forced === 'ERR_ABORTED' || e.name === 'AbortError') {
    return new BackupError('ERR_ABORTED', `${ctx.label}: ${op} of ${relative} was aborted`, { cause: err });
  }
  if (e.name === 'NoSuchBucket') {
    return new BackupError('ERR_DESTINATION_NO_BUCKET', `${ctx.label}: bucket "${ctx.bucket}" does not exist; create it or fix config.bucketName`, { cause: err });
  }
  if (code === 404 || e.name === 'NoSuchKey' || e.name === 'NotFound') {
    return new BackupError('ERR_DESTINATION_NOT_FOUND', `${ctx.label}: ${relative} does not exist`, { cause: err, details: { path: relative } });
  }
  // the SDK's chain found none (no AWS_ACCESS_KEY_ID, no profile, no instance role): said before any request was sent
  if (e.name === 'CredentialsProviderError') {
    return new BackupError(
      'ERR_DESTINATION_ACCESS',
      `${ctx.label}: could not ${op} ${relative}: no credentials (${errorMessage(err)}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (the SDK's chain), or config.credentials`,
      { cause: err },
    );
  }
  if (code === 403 || e.name === 'AccessDenied' || e.name === 'InvalidAccessKeyId' || e.name === 'SignatureDoesNotMatch') {
    return new BackupError(
      'ERR_DESTINATION_ACCESS',
      `${ctx.label}: access denied to ${op} ${relative} (${e.name && e.name !== 'Unknown' ? e.name : `HTTP ${code ?? 403}, no error code: the answer to a HEAD request has no body, so a wrong secret key, an unknown access key and a missing permission look alike`}); check config.credentials (or, without it, the SDK's chain: AWS_ACCESS_KEY_ID, the profile, the instance role) and the IAM policy (docs/S3.md lists the permissions)`,
      { cause: err },
    );
  }
  if (e.name === 'NotImplemented' || code === 501) {
    return new BackupError('ERR_DESTINATION_IO', `${ctx.label}: the server does not implement ${op} (NotImplemented) for ${relative}`, { cause: err });
  }
  // the store cannot be reached at all: most often a wrong config.endpoint (host, port, http/https)
  const hint = isUnreachable(err) || /wrong version number/i.test(errorMessage(err)) ? ' (the store cannot be reached: check config.endpoint, its host, port and http/https, and that the store is up)' : '';
  return new BackupError('ERR_DESTINATION_IO', `${ctx.label}: could not ${op} ${relative}: ${e.name ?? ''} ${errorMessage(err)}${hint}`.replace(/ +/g, ' '), {
    cause: err,
  });
}

/**
 * A BackupError for a failed GET. Archived objects (InvalidObjectState) become ERR_ARCHIVED_OBJECT
 * naming the storage class (from the error, else from `storageClassOf`) and how to restore.
 */
export async function s3ReadError(
  ctx: ErrorContext,
  err: unknown,
  relative: string,
  storageClassOf: () => Promise<string | undefined>,
): Promise<BackupError> {
  const e = asSdk(err);
  if (e.name === 'InvalidObjectState' || (httpStatus(err) === 403 && /InvalidObjectState/.test(e.message ?? ''))) {
    const cls = e.StorageClass ?? (await storageClassOf().catch(() => undefined)) ?? 'an archive storage class';
    return new BackupError(
      'ERR_ARCHIVED_OBJECT',
      `${ctx.label}: ${relative} is in ${cls} and must be restored before it can be read: ` +
        `call requestRestore('${relative}', days, tier) on this destination (S3 RestoreObject) or ` +
        `"aws s3api restore-object", then retry once the restore is done (hours; DEEP_ARCHIVE up to 48 h)`,
      { cause: err, details: { path: relative, storageClass: cls } },
    );
  }
  if (httpStatus(err) === 416) {
    return new BackupError('ERR_DESTINATION_RANGE', `${ctx.label}: the requested byte range is outside ${relative}`, { cause: err });
  }
  if (httpStatus(err) === 412) {
    return new BackupError('ERR_DESTINATION_CHANGED', `${ctx.label}: ${relative} was replaced while it was being read; read it again`, { cause: err });
  }
  return s3Error(ctx, err, 'read', relative);
}
