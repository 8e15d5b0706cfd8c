/**
 * A store found unreachable is not asked again for a while (src/destinations/s3-reachability.ts):
 * the next requests of that S3 destination fail at once, with the same kind of error, instead of
 * each spending its whole retry budget (walk-28 F3: ~4 minutes of planning with one of two
 * destinations down).
 *
 * The S3 destination tests use a real closed port on loopback (a real refused connection: no S3
 * server needed) and count the attempts the client really sends with a middleware of their own.
 * The Reachability unit tests feed it error objects shaped as @smithy/node-http-handler makes them,
 * and a clock of their own, as a minute cannot be waited for in a test.
 */
import { createServer } from 'node:net';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { S3Destination } from '../src/destinations/s3.js';
import { Reachability, UNREACHABLE_HOLD_MS } from '../src/destinations/s3-reachability.js';
import { BackupError } from '../src/errors.js';

/** A loopback port nothing listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

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
      expect(err.message).toMatch(/ECONNREFUSED 127\.0\.0\.1:\d+; not sent: the store could not be reached \d+ s ago, and is asked again \d+ s from now \(the store cannot be reached: check config\.endpoint/);
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

  it('is asked again, with a whole retry budget, once the hold has passed', async () => {
    const port = await closedPort();
    let now = 1_000_000;
    const client = new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'k', secretAccessKey: 's' }, maxAttempts: 2 });
    new Reachability(UNREACHABLE_HOLD_MS, () => now).guard(client);
    const sent = countAttempts(client);
    const head = () => client.send(new HeadObjectCommand({ Bucket: 'b', Key: 'k' })).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(String(await head())).toMatch(/ECONNREFUSED/);
    expect(sent.attempts).toBe(2);
    now += UNREACHABLE_HOLD_MS - 1;
    expect(String(await head())).toMatch(/not sent/);
    expect(sent.attempts).toBe(2);
    now += 1;
    const again = await head();
    expect(String(again)).toMatch(/ECONNREFUSED/);
    expect(String(again)).not.toMatch(/not sent/);
    expect(sent.attempts).toBe(4);
    client.destroy();
  });
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
      r.settled(err);
      const refusal = r.refusal();
      expect(refusal?.message, err.message).toContain(`${err.message}; not sent`);
      expect((refusal as { code?: string }).code).toBe((err as { code?: string }).code);
      expect(refusal?.name).toBe(err.name);
    }
    for (const err of passes) {
      const r = new Reachability(1000, () => 0);
      r.settled(err);
      expect(r.refusal(), err.message).toBeNull();
    }
  });

  it('is cleared by any request that succeeds (one sent before the store was found unreachable)', () => {
    const r = new Reachability(1000, () => 0);
    r.settled(refused());
    expect(r.refusal()).not.toBeNull();
    r.settled(null);
    expect(r.refusal()).toBeNull();
  });
});
