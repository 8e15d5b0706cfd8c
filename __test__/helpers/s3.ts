/**
 * Test helpers for the real S3 server (Ceph RGW started by __test__/global-setup.ts or by CI):
 * endpoint and keys, an S3 client factory, unique buckets, multipart-upload listing, emptying
 * buckets, and an s3db.js Database that lives on RGW.
 *
 * Invariant: when no S3 server is available, `s3Env()` THROWS (with the reason from global setup,
 * e.g. "run scripts/rgw/install.sh"), so S3 suites fail loudly instead of skipping.
 *
 * s3db.js on RGW: its built-in HTTP handler (recker, substituted here by 1.0.56) fails DeleteObject
 * against RGW (it rejects status 204), so `createS3Database` hands s3db a client built on
 * @aws-sdk/client-s3: `new S3db({ client: new S3dbClient({ connectionString, AwsS3Client }) })`,
 * where `S3db` and `S3Client` (here `S3dbClient`) come from 's3db.js/lite' and `AwsS3Client` is an
 * @aws-sdk/client-s3 S3Client INSTANCE. The connection string is
 * `http://KEY:SECRET@127.0.0.1:PORT/<bucket>/<prefix>` (path style); s3db does not create buckets.
 */
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  AbortMultipartUploadCommand,
  S3Client,
  type MultipartUpload,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { S3db, S3Client as S3dbClient } from 's3db.js/lite';
import { inject } from 'vitest';
import type { S3TestEnv } from '../global-setup.js';

export type { S3TestEnv };

/** Endpoint and keys of the test S3 server; throws a clear error when there is none. */
export function s3Env(): S3TestEnv {
  const provided = inject('s3');
  if (provided?.endpoint) return provided;
  if (process.env.S3_ENDPOINT) {
    return {
      endpoint: process.env.S3_ENDPOINT,
      accessKeyId: process.env.S3_ACCESS_KEY ?? '',
      secretAccessKey: process.env.S3_SECRET_KEY ?? '',
      region: process.env.S3_REGION ?? 'us-east-1',
    };
  }
  throw new Error(
    inject('s3Unavailable') ??
      'No S3 server for the S3 tests: run scripts/rgw/install.sh (then vitest starts Ceph RGW itself), ' +
        'or set S3_ENDPOINT/S3_ACCESS_KEY/S3_SECRET_KEY.',
  );
}

/** An @aws-sdk/client-s3 client for the test server (path style, checksums only when required). */
export function makeS3Client(overrides: Partial<S3ClientConfig> = {}): S3Client {
  const env = s3Env();
  return new S3Client({
    endpoint: env.endpoint,
    region: env.region,
    forcePathStyle: true,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...overrides,
  });
}

/** Creates a bucket with a unique name (lower case, S3-valid) and returns the name. */
export async function makeBucket(client: S3Client, stem = 't'): Promise<string> {
  const name = `${stem}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`.toLowerCase();
  await client.send(new CreateBucketCommand({ Bucket: name }));
  return name;
}

/** Every incomplete multipart upload in the bucket under `prefix` (all pages). */
export async function listMultipartUploads(client: S3Client, bucket: string, prefix = ''): Promise<MultipartUpload[]> {
  const uploads: MultipartUpload[] = [];
  let KeyMarker: string | undefined;
  let UploadIdMarker: string | undefined;
  for (;;) {
    const page = await client.send(
      new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix || undefined, KeyMarker, UploadIdMarker }),
    );
    uploads.push(...(page.Uploads ?? []));
    if (!page.IsTruncated) return uploads;
    KeyMarker = page.NextKeyMarker;
    UploadIdMarker = page.NextUploadIdMarker;
  }
}

/** Every key in the bucket under `prefix` (all pages). */
export async function listKeys(client: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  for (;;) {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken }),
    );
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    if (!page.IsTruncated) return keys;
    ContinuationToken = page.NextContinuationToken;
  }
}

/** Aborts every multipart upload, deletes every object, then the bucket itself. */
export async function deleteBucket(client: S3Client, bucket: string): Promise<void> {
  for (const u of await listMultipartUploads(client, bucket)) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
  }
  const keys = await listKeys(client, bucket);
  for (let i = 0; i < keys.length; i += 1000) {
    await client.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
      }),
    );
  }
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}

/** The s3db.js connection string of `bucket`/`prefix` on the test server (or at `endpoint`, another spelling of it). */
export function s3dbConnectionString(bucket: string, prefix = '', endpoint = s3Env().endpoint): string {
  const env = s3Env();
  const url = new URL(endpoint);
  const auth = `${encodeURIComponent(env.accessKeyId)}:${encodeURIComponent(env.secretAccessKey)}`;
  const path = [bucket, prefix.replace(/^\/+|\/+$/g, '')].filter(Boolean).join('/');
  return `${url.protocol}//${auth}@${url.host}/${path}`;
}

export type S3Database = InstanceType<typeof S3db>;

/**
 * A connected s3db.js Database stored in `bucket` (which must exist) under `prefix`, talking to RGW
 * through an @aws-sdk/client-s3 client (see the top comment for why; `aws`, when a test watches its
 * requests). Call `db.disconnect()` after.
 */
export async function createS3Database(bucket: string, prefix = '', overrides: Partial<S3ClientConfig> = {}, aws: S3Client = makeS3Client(overrides)): Promise<S3Database> {
  const connectionString = s3dbConnectionString(bucket, prefix, typeof overrides.endpoint === 'string' ? overrides.endpoint : undefined);
  const client = new S3dbClient({ connectionString, AwsS3Client: aws, logLevel: 'warn' });
  // s3db's S3Client declares putObject as Promise<unknown> while Database wants its Client type:
  // a typing gap inside s3db.js (the same object is what s3db builds for itself), hence the cast.
  type DbClient = NonNullable<ConstructorParameters<typeof S3db>[0]>['client'];
  const db = new S3db({ client: client as unknown as DbClient, logLevel: 'warn' });
  await db.connect();
  return db;
}
