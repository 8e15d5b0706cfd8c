/**
 * A store found unreachable is asked again only every few seconds (src/destinations/s3-reachability.ts):
 * the next requests of that S3 destination fail at once, with the same kind of error, instead of
 * each spending its whole retry budget (walk-28 F3: ~4 minutes of planning with one of two
 * destinations down), and the first answer of the store ends that (review-29 F1: a 60 s hold
 * outlived a store restart and lost a backup's lease).
 *
 * The S3 destination tests use a real closed port on loopback (a real refused connection), a real
 * HTTP server answering 404, and the test S3 server behind a TCP forwarder that stops and comes
 * back; they count the attempts the client really sends with a middleware of their own. The
 * Reachability unit tests feed it error objects shaped as @smithy/node-http-handler makes them,
 * and a clock of their own.
 */
import { createServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { S3Destination } from '../src/destinations/s3.js';
import { PROBE_INTERVAL_MS, Reachability } from '../src/destinations/s3-reachability.js';
import { BackupError } from '../src/errors.js';
import { Lease } from '../src/lease/lease.js';
import { deleteBucket, makeS3Client, s3Env } from './helpers/s3.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';

/** A loopback port nothing listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect' });

/** Counts the attempts `client` sends (after its retry middleware: one per try). */
function countAttempts(client: S3Client): { attempts: number } {
  const seen = { attempts: 0 };
  client.middlewareStack.add(
    (next) => async (args) => {
      seen.attempts++;
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'testAttemptCounter' },
  );
  return seen;
}

async function failure(p: Promise<unknown>): Promise<BackupError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BackupError);
  return err as BackupError;
}

describe('an S3 destination whose store cannot be reached', () => {
  it('spends its retries on the first request only: the next ones fail at once, saying so, with the same code and advice', async () => {
    const port = await closedPort();
    const dest = new S3Destination({ bucketName: 'unreachable', endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', credentials: { accessKeyId: 'k', secretAccessKey: 's' }, maxAttempts: 3 });
    const sent = countAttempts(dest.client);
    const first = await failure(dest.stat('manifests/a.json'));
    expect(sent.attempts).toBe(3);
    expect(first.code).toBe('ERR_DESTINATION_IO');
    expect(first.message).toMatch(/ECONNREFUSED.*the store cannot be reached: check config\.endpoint/);
    expect(first.message).not.toMatch(/not sent/);
    const later = [
      await failure(dest.stat('manifests/b.json')),
      await failure(dest.write('pending/x.json', Buffer.from('{}'))),
      await failure((async () => {
        for await (const _ of dest.list('manifests/')) void _;
      })()),
      await failure(dest.read('parts/p').then((s) => s.toArray())),
    ];
    expect(sent.attempts).toBe(3); // none of them sent
    for (const err of later) {
      expect(err.code).toBe('ERR_DESTINATION_IO');
      expect(err.message).toMatch(/ECONNREFUSED 127\.0\.0\.1:\d+; not sent: the store could not be reached \(since \d+ s\), it is asked again within 5 s \(the store cannot be reached: check config\.endpoint/);
    }
    await dest.close();
  });

  it('leaves a client the application passed in as it is: each of its requests is sent and retried', async () => {
    const port = await closedPort();
    const client = new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'k', secretAccessKey: 's' }, maxAttempts: 2 });
    const dest = new S3Destination({ bucketName: 'unreachable', client });
    const sent = countAttempts(client);
    await failure(dest.stat('manifests/a.json'));
    await failure(dest.stat('manifests/b.json'));
    expect(sent.attempts).toBe(4);
    expect(client.middlewareStack.identify().some((m) => m.includes('s3dbBackupReachability'))).toBe(false);
    client.destroy();
  });

  it('is asked again, with a whole retry budget, every few seconds; the first answer of the store, a 404 too, ends it', async () => {
    const port = await closedPort();
    let now = 1_000_000;
    const client = new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'k', secretAccessKey: 's' }, maxAttempts: 2 });
    new Reachability(PROBE_INTERVAL_MS, () => now).guard(client);
    const sent = countAttempts(client);
    const head = () => client.send(new HeadObjectCommand({ Bucket: 'b', Key: 'k' })).then(
      () => null,
      (e: unknown) => e as Error & { $metadata?: { httpStatusCode?: number } },
    );
    expect(String(await head())).toMatch(/ECONNREFUSED/);
    expect(sent.attempts).toBe(2);
    now += PROBE_INTERVAL_MS - 1;
    expect(String(await head())).toMatch(/not sent/);
    expect(sent.attempts).toBe(2);
    now += 1;
    const probe = await head(); // sent, with its retries, and refused again
    expect(String(probe)).toMatch(/ECONNREFUSED/);
    expect(String(probe)).not.toMatch(/not sent/);
    expect(sent.attempts).toBe(4);
    expect(String(await head())).toMatch(/not sent/); // the next probe comes PROBE_INTERVAL_MS after that one
    // the store comes back (here: an HTTP server on that port answering 404 to everything)
    const server = createHttpServer((req, res) => req.resume().on('end', () => res.writeHead(404).end()));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      now += PROBE_INTERVAL_MS;
      expect((await head())?.$metadata?.httpStatusCode).toBe(404); // the probe, answered
      expect((await head())?.$metadata?.httpStatusCode).toBe(404); // and the hold is over
      expect(sent.attempts).toBe(6);
    } finally {
      server.close();
      client.destroy();
    }
  });
});

describe('a lease on an S3 destination whose store restarts', () => {
  it('is kept when the store is back before the lease expires: its renewals are sent again (review-29 F1: a 60 s hold refused them until the lease was lost)', async () => {
    const env = s3Env();
    const admin = makeS3Client();
    const bucket = `reach-lease-${Date.now().toString(36)}`;
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    const proxy = await startTcpProxy(env.endpoint);
    const dest = new S3Destination({ bucketName: bucket, endpoint: proxy.url, region: env.region, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey }, maxAttempts: 2 });
    let lost: unknown = null;
    const lease = new Lease(dest, { ttlMs: 12_000, onLost: (info) => (lost = info) });
    try {
      expect((await lease.acquire('restart-test', 12_000)).acquired).toBe(true);
      await sleep(1_000);
      await proxy.down(); // a renewal (every 4 s) meets the store down and trips the guard
      await sleep(6_000);
      await proxy.up();
      await sleep(8_000); // past the lease's first deadline, had no renewal got through
      expect(lost).toBeNull();
      expect(await lease.release()).toBe(true);
    } finally {
      await proxy.close();
      await dest.close();
      await deleteBucket(admin, bucket);
      admin.destroy();
    }
  }, 60_000);
});

describe('Reachability', () => {
  it('is tripped only by a store that cannot be reached (refused, unknown or unreachable host, no connection in time), not by one that answered or dropped a connection', () => {
    const trips = [
      refused(),
      Object.assign(new Error('getaddrinfo ENOTFOUND s3.example.invalid'), { code: 'ENOTFOUND' }),
      Object.assign(new Error('getaddrinfo EAI_AGAIN s3.example'), { code: 'EAI_AGAIN' }),
      Object.assign(new Error('connect EHOSTUNREACH 10.0.0.9:443'), { code: 'EHOSTUNREACH' }),
      Object.assign(new Error('connect ENETUNREACH 10.0.0.9:443'), { code: 'ENETUNREACH' }),
      Object.assign(new Error('@smithy/node-http-handler - the request socket did not establish a connection with the server within the configured timeout of 5000 ms.'), { name: 'TimeoutError' }),
      Object.assign(new Error('connect ETIMEDOUT 10.0.0.9:443'), { name: 'TimeoutError', code: 'ETIMEDOUT' }), // the kernel's, without a connection timeout (review-30b G5)
    ];
    const passes = [
      Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }),
      Object.assign(new Error('@smithy/node-http-handler - the request socket timed out after 30000 ms of inactivity (configured by client requestHandler).'), { name: 'TimeoutError' }),
      Object.assign(new Error('Please reduce your request rate.'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } }),
      Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }),
    ];
    for (const err of trips) {
      const r = new Reachability(1000, () => 0);
      r.settled(err, false);
      const refusal = r.admit() as Error;
      expect(refusal.message, err.message).toContain(`${err.message}; not sent`);
      expect((refusal as { code?: string }).code).toBe((err as { code?: string }).code);
      expect(refusal.name).toBe(err.name);
    }
    for (const err of passes) {
      const r = new Reachability(1000, () => 0);
      r.settled(err, false);
      expect(r.admit(), err.message).toBe('send');
      r.settled(refused(), false);
      r.settled(err, false); // and each of them ends a hold: something answered
      expect(r.admit(), err.message).toBe('send');
    }
  });

  it('is cleared by any request that succeeds or is answered (one sent before the store was found unreachable)', () => {
    for (const outcome of [null, Object.assign(new Error('NotFound'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } })]) {
      const r = new Reachability(1000, () => 0);
      r.settled(refused(), false);
      expect(r.admit()).toBeInstanceOf(Error);
      r.settled(outcome, false);
      expect(r.admit()).toBe('send');
    }
  });

  it('is kept by a request that failed without asking the store: aborted, no credentials (review-29b G5)', () => {
    const silent = [
      Object.assign(new Error('Request aborted'), { name: 'AbortError' }),
      Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }),
    ];
    for (const err of silent) {
      let now = 0;
      const r = new Reachability(5_000, () => now);
      r.settled(refused(), false);
      now = 5_000;
      expect(r.admit()).toBe('probe');
      r.settled(err, true);
      now = 6_000;
      expect(r.admit(), err.name).toBeInstanceOf(Error); // still held: nothing was answered
      now = 10_000;
      expect(r.admit(), err.name).toBe('probe'); // and asked again on time
      r.settled(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), true);
      expect(r.admit(), err.name).toBe('send'); // something listens
    }
  });

  it('is not extended by requests that were in flight when it tripped; a probe is sent every probeMs, even while one is still out (review-29 F5, review-29b G1)', () => {
    let now = 0;
    const r = new Reachability(5_000, () => now);
    r.settled(refused(), false); // trips at 0
    now = 4_000;
    r.settled(refused(), false); // one sent before the trip gives up now: no new wait
    now = 5_000;
    expect(r.admit()).toBe('probe');
    expect(r.admit()).toBeInstanceOf(Error); // the others fail at once
    now = 10_000;
    expect(r.admit()).toBe('probe'); // the first has no answer yet (a store that took the connection and hangs): another goes
    now = 17_000;
    r.settled(refused(), true); // the probe gave up after its retries
    now = 21_999;
    expect(r.admit()).toBeInstanceOf(Error);
    now = 22_000;
    expect(r.admit()).toBe('probe');
  });
});
