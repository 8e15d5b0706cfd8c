/**
 * The S3 destination's retry strategy for `retryMode: 'standard'`: the SDK's standard retries
 * (throttling and transient errors: 500/502/503/504, resets, timeouts; never a client error),
 * without its client-wide retry quota, and with backoff that rides out a store restart.
 *
 * Why: the SDK's standard strategy shares one quota of 500 tokens per client and spends 5-10 per
 * retry, so the 16-64 requests a backup or listing has in flight used it up within a second of an
 * outage, and after that nothing was retried: an RGW restart of 2 s failed `listBackups()` after
 * 3 of 6 attempts and 122 ms of backoff (review-s3faults). A backup has nothing to protect by
 * giving up early; each request here gets its `maxAttempts`.
 *
 * Backoff: attempt n (1-based retry) waits between half and all of min(20 s, 250 ms x 2^n) (equal
 * jitter, so the total has a floor), and at least what a Retry-After header asks for (up to that
 * ceiling + 5 s): with the default 6 attempts a request rides out about 8-15 s of outage.
 * Invariant: the middleware that calls this waits the token's delay itself (RetryStrategyV2).
 */
const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 20_000;

/** What the SDK's retry middleware asks of a token (@smithy/types RetryToken). */
interface RetryToken {
  getRetryCount(): number;
  getRetryDelay(): number;
}

/** What the middleware passes on a failure (@smithy/types RetryErrorInfo). */
interface RetryErrorInfo {
  errorType: 'TRANSIENT' | 'THROTTLING' | 'SERVER_ERROR' | 'CLIENT_ERROR';
  retryAfterHint?: Date;
}

const token = (count: number, delay: number): RetryToken => ({ getRetryCount: () => count, getRetryDelay: () => delay });

export class PatientRetryStrategy {
  readonly mode = 'standard';

  constructor(private readonly attempts: number) {}

  async acquireInitialRetryToken(_scope: string): Promise<RetryToken> {
    return token(0, 0);
  }

  async refreshRetryTokenForRetry(previous: RetryToken, error: RetryErrorInfo): Promise<RetryToken> {
    const retry = previous.getRetryCount() + 1;
    if ((error.errorType !== 'TRANSIENT' && error.errorType !== 'THROTTLING') || retry >= this.attempts) {
      throw new Error('no retry left'); // the middleware throws the request's own error
    }
    const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** retry);
    let delay = ceiling / 2 + Math.random() * (ceiling / 2);
    if (error.retryAfterHint) delay = Math.max(delay, Math.min(error.retryAfterHint.getTime() - Date.now(), ceiling + 5_000));
    return token(retry, Math.round(delay));
  }

  /** Nothing to restore: there is no quota. */
  recordSuccess(_token: RetryToken): void {}

  async maxAttempts(): Promise<number> {
    return this.attempts;
  }
}
