/**
 * EncodedSink: writes a stream of items (archive records, index lines) through the codec to one
 * object of a DestinationSet:  head (items -> bytes) -> encoder (compress, encrypt) -> set.write.
 *
 * Invariants:
 * - write() resolves only when the pipeline has room (back-pressure end to end), so memory stays
 *   about the head's buffer + the encoder's batch + the destination's buffer.
 * - A failure anywhere (encoder, destination) rejects the next write() or close(); nothing hangs.
 * - close() resolves with the destination's WriteResult only after the object is durably stored.
 */
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createEncoder, type CodecOptions } from '../codec/index.js';
import { drained } from '../streams.js';
import type { DestinationSet } from '../destinations/set.js';
import type { WriteResult } from '../destinations/types.js';

export class EncodedSink<T> {
  private readonly stored: Promise<WriteResult>;
  private failed: unknown = null;

  constructor(
    set: DestinationSet,
    readonly path: string,
    private readonly head: Transform,
    codec: CodecOptions,
    /** `bulk`: the object is a backup part (WriteOptions.bulk). */
    options: { bulk?: boolean } = {},
  ) {
    const encoder = createEncoder(codec);
    pipeline(head, encoder).catch((err: unknown) => {
      this.failed ??= err;
    });
    this.stored = set.write(path, encoder, options).catch((err: unknown) => {
      this.failed ??= err;
      head.destroy(err as Error);
      throw err;
    });
    this.stored.catch(() => undefined); // observed by close()
  }

  async write(item: T): Promise<void> {
    if (this.failed) throw this.failed;
    if (!this.head.write(item)) {
      await drained(this.head); // a failure anywhere destroys the head, which ends the wait too
      if (this.failed) throw this.failed;
    }
  }

  async close(): Promise<WriteResult> {
    if (this.failed) throw this.failed;
    this.head.end();
    return await this.stored;
  }

  /**
   * Abandons the object: the destination write fails and removes what it had written (a temp file,
   * a multipart upload). Resolves once it did, or after `waitMs` at most (a failure path never
   * hangs on a destination that does not answer); a sink already closed is left as it is.
   */
  async abort(reason: Error, waitMs = 30_000): Promise<void> {
    this.failed ??= reason;
    this.head.destroy(reason);
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, waitMs);
      timer.unref();
    });
    await Promise.race([this.stored.then(() => undefined, () => undefined), gaveUp]);
    clearTimeout(timer);
  }
}
