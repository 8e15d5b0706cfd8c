/**
 * Options of the S3 destination and their validation. Every bad value fails at construction with
 * ERR_INVALID_OPTION naming the option (`config.<name>`) and what is accepted. Credentials are never
 * echoed in messages.
 *
 * Defaults: region 'us-east-1', prefix 'backups/', partSize 16 MiB (min 5 MiB), queueSize 4,
 * maxAttempts 6 with the SDK's 'standard' retry mode; checksum settings 'WHEN_REQUIRED' when an
 * `endpoint` is set (S3-compatible stores often reject the SDK's streaming checksum trailers), and
 * the SDK's own defaults for AWS. `bucket` and `path` are accepted as aliases of `bucketName` and
 * `prefix` (the option names of s3db.js's own BackupPlugin S3 driver).
 */
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { redactedTarget } from '../redact.js';
import { optionError } from '../errors.js';
import { knownHint } from '../known-names.js';

export const S3_STORAGE_CLASSES = [
  'STANDARD',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER_IR',
  'GLACIER',
  'DEEP_ARCHIVE',
] as const;
export type S3StorageClass = (typeof S3_STORAGE_CLASSES)[number];

type S3Credentials = NonNullable<S3ClientConfig['credentials']>;
type ChecksumMode = 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
const MIB = 1024 * 1024;
const MIN_PART = 5 * MIB;
const MAX_PART = 5 * 1024 * MIB;

export interface S3DestinationConfig {
  /** Bucket to store backups in (required; must exist). Alias: `bucket`. */
  bucketName?: string;
  bucket?: string;
  /** Key prefix for every object, default 'backups/' ('' = bucket root). Alias: `path`. */
  prefix?: string;
  path?: string;
  /** Default 'us-east-1' (or the SDK's region when a `client` is passed). */
  region?: string;
  storageClass?: S3StorageClass;
  serverSideEncryption?: 'AES256' | 'aws:kms';
  /** KMS key id/ARN for serverSideEncryption 'aws:kms' (omit to use the bucket's AWS-managed key). */
  kmsKeyId?: string;
  /** S3-compatible endpoint, e.g. 'http://127.0.0.1:7480'. */
  endpoint?: string;
  /** Path-style URLs (bucket in the path); default true when `endpoint` is set. */
  forcePathStyle?: boolean;
  /** Static keys or a provider; default: the SDK's credential chain (env, profile, SSO, IMDS...). */
  credentials?: S3Credentials;
  requestChecksumCalculation?: ChecksumMode;
  responseChecksumValidation?: ChecksumMode;
  /** Total attempts per request, including the first (default 6). */
  maxAttempts?: number;
  /** SDK retry mode: 'standard' (default) or 'adaptive' (client-side rate limiting on throttling). */
  retryMode?: 'standard' | 'adaptive';
  /** Multipart part size in bytes (default 16 MiB, 5 MiB..5 GiB). Memory is about partSize x queueSize. */
  partSize?: number;
  /** Parts uploaded in parallel per write (default 4). */
  queueSize?: number;
  /** TCP connect timeout (default 10 s) and socket idle timeout (default 120 s). */
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Use this S3Client instead of building one (its own region/endpoint/retry settings apply). */
  client?: S3Client;
}

export interface ResolvedS3Config {
  bucketName: string;
  prefix: string;
  region: string;
  storageClass?: S3StorageClass;
  serverSideEncryption?: 'AES256' | 'aws:kms';
  kmsKeyId?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  credentials?: S3Credentials;
  requestChecksumCalculation?: ChecksumMode;
  responseChecksumValidation?: ChecksumMode;
  maxAttempts: number;
  retryMode: 'standard' | 'adaptive';
  partSize: number;
  queueSize: number;
  connectionTimeoutMs: number;
  requestTimeoutMs: number;
}

function positiveInt(name: string, value: unknown, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw optionError(`config.${name}`, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw optionError(`config.${name}`, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

const KNOWN_KEYS = [
  'bucketName', 'bucket', 'prefix', 'path', 'region', 'storageClass', 'serverSideEncryption', 'kmsKeyId',
  'endpoint', 'forcePathStyle', 'credentials', 'requestChecksumCalculation', 'responseChecksumValidation',
  'maxAttempts', 'retryMode', 'partSize', 'queueSize', 'connectionTimeoutMs', 'requestTimeoutMs', 'client',
];

export function normalizeS3Config(input: S3DestinationConfig): ResolvedS3Config {
  if (typeof input !== 'object' || input === null) {
    throw optionError('config', 'the S3 destination needs a config object', "e.g. { bucketName: 'my-backups' }");
  }
  for (const key of Object.keys(input)) {
    if (!KNOWN_KEYS.includes(key)) throw optionError(`config.${key}`, 'is not an S3 destination option', knownHint(key, KNOWN_KEYS));
  }
  const bucketName = input.bucketName ?? input.bucket;
  if (typeof bucketName !== 'string' || !/^[a-z0-9][a-z0-9.\-_]{1,253}[a-z0-9]$/i.test(bucketName)) {
    // a connection string pasted here may hold credentials
    const shown = typeof bucketName === 'string' ? redactedTarget(bucketName) : bucketName;
    throw optionError('config.bucketName', `must be an S3 bucket name, got ${JSON.stringify(shown)}`, "e.g. bucketName: 'my-backups'");
  }
  let prefix = input.prefix ?? input.path ?? 'backups/';
  if (typeof prefix !== 'string') throw optionError('config.prefix', 'must be a string', "e.g. 'backups/' or '' for the bucket root");
  prefix = prefix.replace(/^\/+/, '');
  if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
  if (prefix.split('/').some((s) => s === '..' || s === '.')) {
    throw optionError('config.prefix', `must not contain "." or ".." segments, got ${JSON.stringify(prefix)}`);
  }
  // S3's XML cannot carry these in a key: parts would be written and never deletable (review-paths P3)
  if (/[\u0000-\u001f\u007f-\u009f\ufffe\uffff]/.test(prefix)) throw optionError('config.prefix', 'holds a control character, which S3 cannot list or delete in a key', 'Use printable characters');
  const region = input.region ?? 'us-east-1';
  if (typeof region !== 'string' || region === '') throw optionError('config.region', 'must be a non-empty string', "e.g. 'eu-west-1'");

  const storageClass = oneOf('storageClass', input.storageClass, S3_STORAGE_CLASSES);
  const serverSideEncryption = oneOf('serverSideEncryption', input.serverSideEncryption, ['AES256', 'aws:kms'] as const);
  if (input.kmsKeyId !== undefined) {
    if (typeof input.kmsKeyId !== 'string' || input.kmsKeyId === '') throw optionError('config.kmsKeyId', 'must be a KMS key id or ARN');
    if (serverSideEncryption !== 'aws:kms') {
      throw optionError('config.kmsKeyId', "is only used with serverSideEncryption 'aws:kms'", "set serverSideEncryption: 'aws:kms' or remove kmsKeyId");
    }
  }

  let endpoint: string | undefined;
  if (input.endpoint !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(String(input.endpoint));
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw optionError('config.endpoint', 'must be an http(s) URL', "e.g. 'https://s3.eu-central-1.wasabisys.com' or 'http://127.0.0.1:7480'");
    }
    if (url.username || url.password) {
      throw optionError('config.endpoint', 'must not contain credentials', 'pass them in config.credentials');
    }
    if (url.pathname !== '/' || url.search !== '') {
      // the SDK would put the bucket after it, and the store answer "no such bucket"
      throw optionError('config.endpoint', `must be the store's address only, without a path (got ${JSON.stringify(url.pathname + url.search)})`, `e.g. '${url.origin}'; the bucket goes in config.bucketName, a key prefix in config.prefix`);
    }
    endpoint = url.toString().replace(/\/$/, '');
  }
  if (input.forcePathStyle !== undefined && typeof input.forcePathStyle !== 'boolean') {
    throw optionError('config.forcePathStyle', 'must be true or false');
  }
  const creds = input.credentials;
  if (creds !== undefined && typeof creds !== 'function') {
    const c = creds as { accessKeyId?: unknown; secretAccessKey?: unknown } | null;
    if (typeof c !== 'object' || c === null || typeof c.accessKeyId !== 'string' || typeof c.secretAccessKey !== 'string') {
      throw optionError('config.credentials', 'must be { accessKeyId, secretAccessKey, sessionToken? } or a credential provider function');
    }
  }
  const checksumDefault: ChecksumMode | undefined = endpoint ? 'WHEN_REQUIRED' : undefined;
  const modes = ['WHEN_SUPPORTED', 'WHEN_REQUIRED'] as const;
  const requestChecksumCalculation = oneOf('requestChecksumCalculation', input.requestChecksumCalculation, modes) ?? checksumDefault;
  const responseChecksumValidation = oneOf('responseChecksumValidation', input.responseChecksumValidation, modes) ?? checksumDefault;

  if (input.client !== undefined && (typeof input.client !== 'object' || input.client === null || typeof input.client.send !== 'function')) {
    throw optionError('config.client', 'must be an S3Client from @aws-sdk/client-s3');
  }

  return {
    bucketName,
    prefix,
    region,
    storageClass,
    serverSideEncryption,
    kmsKeyId: input.kmsKeyId,
    endpoint,
    forcePathStyle: input.forcePathStyle ?? (endpoint ? true : undefined),
    credentials: creds,
    requestChecksumCalculation,
    responseChecksumValidation,
    maxAttempts: positiveInt('maxAttempts', input.maxAttempts, 6, 1, 20),
    retryMode: oneOf('retryMode', input.retryMode, ['standard', 'adaptive'] as const) ?? 'standard',
    partSize: positiveInt('partSize', input.partSize, 16 * MIB, MIN_PART, MAX_PART),
    queueSize: positiveInt('queueSize', input.queueSize, 4, 1, 64),
    connectionTimeoutMs: positiveInt('connectionTimeoutMs', input.connectionTimeoutMs, 10_000),
    requestTimeoutMs: positiveInt('requestTimeoutMs', input.requestTimeoutMs, 120_000),
  };
}
