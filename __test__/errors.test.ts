// BackupError, the one chokepoint for what failures show: its message hides connection-string
// credentials, and its cause is reduced to what says what failed, whatever the cause is (odd
// objects included: the constructor must never throw and lose the real error).
import { describe, expect, it } from 'vitest';
import { BackupError, conciseCause } from '../src/errors.js';

describe('BackupError', () => {
  it('keeps a cause that says what failed and drops what a library attached', () => {
    const cause = Object.assign(new Error('denied for s3://AKIA:SECRETX@bucket'), { name: 'AccessDenied', code: 'AccessDenied', $metadata: { httpStatusCode: 403 }, original: { token: 'SECRETX' }, path: '/srv/x' });
    const e = new BackupError('ERR_X', 'could not read s3://AKIA:SECRETX@bucket/key', { cause });
    expect(e.message).toBe('could not read s3://***@bucket/key');
    expect(e.cause).toMatchObject({ name: 'AccessDenied', code: 'AccessDenied', $metadata: { httpStatusCode: 403 }, path: '/srv/x' });
    expect(JSON.stringify(e.cause) + String((e.cause as Error).stack) + (e.cause as Error).message).not.toContain('SECRETX');
    expect((e.cause as { original?: unknown }).original).toBeUndefined();
  });

  it("keeps the application's own error as it is (a start hook's), but reduces a library's that came through it (review-s20 6)", () => {
    class QuiesceTimeout extends Error {
      readonly retryAfterMs = 5_000;
    }
    const own = new QuiesceTimeout('writers still busy');
    expect(new BackupError('ERR_HOOK_FAILED', 'm', { applicationCause: own }).cause).toBe(own);
    const aws = Object.assign(new Error('The request signature we calculated does not match'), { name: 'SignatureDoesNotMatch', $metadata: { httpStatusCode: 403 }, $response: { headers: { authorization: 'AWS4-HMAC-SHA256 Credential=AKIA/SECRETX' } } });
    const kept = new BackupError('ERR_HOOK_FAILED', 'm', { applicationCause: aws }).cause as Error & { $response?: unknown };
    expect(kept).not.toBe(aws);
    expect(kept).toMatchObject({ name: 'SignatureDoesNotMatch', $metadata: { httpStatusCode: 403 } });
    expect(kept.$response).toBeUndefined();
    expect(JSON.stringify(kept) + String(kept.stack)).not.toContain('SECRETX');
  });

  it('never throws on an odd cause', () => {
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const throwingName = new Error('x');
    Object.defineProperty(throwingName, 'name', { get: () => { throw new Error('getter'); } });
    const odd: unknown[] = [Object.create(null), { toString: () => { throw new Error('no'); } }, revoked.proxy, throwingName, Object.assign(new Error(), { message: 42 }), 'text', 7, null];
    for (const cause of odd) expect(() => new BackupError('ERR_X', 'm', { cause })).not.toThrow();
  });
});

describe('conciseCause', () => {
  it("keeps the first line of s3db.js's error chains, and says what its circuit breaker's words mean wherever they come (an open, a write, a read)", () => {
    expect(conciseCause('Unknown error: socket hang up | Code: ECONNRESET | Stack: Error: at x')).toBe('socket hang up');
    // what a restore's write met after the store had stopped answering for ~4 min (stall-probe F1)
    const said = conciseCause('Unknown error: Circuit breaker OPEN for 10.0.0.5 | Code: undefined | Stack: Error: Circuit breaker OPEN for 10.0.0.5');
    expect(said).toBe(
      "Circuit breaker OPEN for 10.0.0.5 (nothing answered at 10.0.0.5: s3db.js's client stops sending there once 5 requests in a row could not connect or went unanswered; check the host and port of the connection string, and that the store is up and answering)",
    );
    // what opening a database met when the store stopped answering (stall-probe: 4 x 30 s)
    expect(conciseCause('Task 1733221234567-x timed out after 30000ms')).toBe('Task 1733221234567-x timed out after 30000ms (s3db.js stopped waiting for the store to answer: check that it is up and answering)');
  });
});

describe('what a hook or webhook failure says (review-29 F4)', () => {
  it("adds a system error's message from the causes, and of any other cause only its code: a wrapped error quoting a webhook URL with its secret adds nothing", async () => {
    const { messageWithCauses } = await import('../src/errors.js');
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED', syscall: 'connect' });
    expect(messageWithCauses(new TypeError('fetch failed', { cause: refused }))).toBe('fetch failed (connect ECONNREFUSED 127.0.0.1:9)');
    expect(messageWithCauses(new TypeError('fetch failed', { cause: Object.assign(new Error('unable to verify the first certificate'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }) }))).toBe('fetch failed (unable to verify the first certificate)');
    expect(messageWithCauses(new TypeError('fetch failed', { cause: new Error('bad port') }))).toBe('fetch failed (bad port)'); // review-29b G4
    const wrapped = new Error('could not post the backup report', { cause: new Error('request to https://hooks.slack.com/services/T0AAAA/B0BBBB/xoxsecretTOKEN123 failed, reason: connect ECONNREFUSED', { cause: refused }) });
    expect(messageWithCauses(wrapped)).toBe('could not post the backup report (connect ECONNREFUSED 127.0.0.1:9)');
    const coded = new Error('could not post', { cause: Object.assign(new Error('GET https://h.example/hook/SECRET9 failed'), { code: 'E_HOOK' }) });
    expect(messageWithCauses(coded)).toBe('could not post (E_HOOK)');
  });

  it('redacts the query parameters that carry secrets in webhook and presigned URLs', async () => {
    const { redacted } = await import('../src/redact.js');
    const url = 'GET https://api.example.com/hook?access_token=S1&api_key=S2&X-Amz-Signature=S3&sig=S4&X-Amz-Credential=S5&page=2 failed';
    expect(redacted(url)).toBe('GET https://api.example.com/hook?access_token=***&api_key=***&X-Amz-Signature=***&sig=***&X-Amz-Credential=***&page=2 failed');
    expect(redacted('https://app.example/cb#access_token=S6&state=1')).toBe('https://app.example/cb#access_token=***&state=1');
    // names that only contain those letters are left (review-29b G3)
    expect(redacted('/search?design=blue&assignee=me&monkey=1&sortKey=id&pageToken=p2')).toBe('/search?design=blue&assignee=me&monkey=1&sortKey=id&pageToken=p2');
    expect(redacted('?secretAccessKey=S7&accessKeyId=A1&token=S8&session_token=S9')).toBe('?secretAccessKey=***&accessKeyId=***&token=***&session_token=***');
  });
});
