/**
 * Transform around a NativeEncoder/NativeDecoder. Input is batched to >= batchSize bytes
 * (threads x segment size, at least 1 MiB) and handed over as a list of chunks in one native
 * call (`writeChunks`: no join in JS), so the ~35 us napi async round trip is paid per MiB, not
 * per chunk.
 * Double buffering: while one native call runs, the next batch is gathered, so JS stream work
 * and native work overlap. Invariants: at most ONE native call is in flight per stream (calls
 * are serialized, which keeps output in order), and at most one more batch waits in `pending`:
 * the write callback of the chunk that completes a batch is held until the previous call ended.
 * Back-pressure on output is this class's own: a native call pushes its output after the write
 * that started it has returned, and Node's Transform holds a write only when that write itself
 * pushed, so without `whenRoom` a source slower than the codec would fill the readable side
 * without bound. A write callback is held while one batch or more of output waits for the
 * consumer, and released once the consumer has taken enough (checked after each `_read`), or by
 * a native failure. Releasing it while a batch still waits would be wrong twice over: Node's
 * Transform would then hold the write itself, until a `_read` that no push re-arms.
 * A decoder's output is its input times the compression ratio, so decoder batches shrink (down to
 * 64 KiB) as the observed ratio grows, aiming one call's output at `outputLimit(batchSize)` (4
 * batches, at most 16 MiB). That is an aim; the bound is the decoder's own: created with that
 * `outputLimit`, a native call stops once its output reaches it and says so with `more()`, and
 * the stream then makes calls with no input, each when there is room again, before it gives the
 * decoder more (none once the stream is destroyed). So data compressing far beyond JSON's 4-10x
 * (zeros, one record repeated) is inflated a limit at a time, never a whole part at once.
 * A call's output arrives as pieces, pushed in order: an encoder's sealed segments and a
 * decoder's gzip members each as a Buffer of their own (never joined; pieces under 64 KiB are).
 * Memory: about two batches of input, plus the output waiting for the consumer: a call starts
 * only when none is in flight and less than one batch (the readable high-water mark) waits, so
 * at most one batch plus one call's output: for a decoder the output limit (soft: a serial
 * inflater's last step may cross it by 32 KiB; a gzip member or segment comes whole). Native
 * errors become BackupError (same code). Chunks handed to native are never modified afterwards
 * (streams do not reuse them).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { toBackupError } from './errors.js';
import type { NativeCodec } from './native-binding.js';

export const MIN_NATIVE_BATCH = 1024 * 1024;
const MIN_DECODER_BATCH = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/** Most a native decoder call outputs, whatever the batch: a batch grows with the cores (threads x segment). */
export const MAX_OUTPUT_LIMIT = 16 * 1024 * 1024;

/**
 * The output limit of a native decoder whose stream batches `batchSize` bytes of input: 4 batches
 * (8 MiB at 2 threads), at most 16 MiB, so that the bound does not grow 4 MiB per core.
 */
export function outputLimit(batchSize: number): number {
  return Math.min(4 * batchSize, MAX_OUTPUT_LIMIT);
}

export class NativeCodecStream extends Transform {
  private pending: Buffer[] = [];
  private pendingLength = 0;
  /** Input bytes per native call; adapts to the output ratio when decoding. */
  private threshold: number;
  /** The native call in flight (never rejects: a failure is kept in `failure`). */
  private inflight: Promise<void> | null = null;
  private failure: Error | null = null;
  /**
   * What waits for room for output, in order: a write's continuation, `_flush`, or the call in
   * flight, between the calls it makes while the decoder has `more()` (a write can wait at the
   * same time as that call, hence a list).
   */
  private waiting: Array<() => void> = [];

  constructor(
    private readonly codec: NativeCodec,
    private readonly batchSize: number,
    private readonly context: { decoding: boolean; compression: string },
  ) {
    // Input stops once one batch of output waits for the consumer (`whenRoom`). With 16 KiB,
    // Node's default, it stopped as soon as one call's output waited (an encoder's is about batch /
    // ratio), so a slow consumer (an upload, a file) and the codec took turns instead of overlapping.
    super({ readableHighWaterMark: batchSize });
    // Decoders start small and grow with the observed ratio: the first call's output must not be
    // input x an unknown ratio (a 2 MiB batch of JSON lines can inflate to 70+ MB).
    this.threshold = context.decoding ? Math.min(batchSize, MIN_DECODER_BATCH) : batchSize;
  }

  /** Decoders: size the next batch so that its output comes near the output limit (an aim). */
  private adapt(inBytes: number, outBytes: number): void {
    // A call with no output (a segment or member not yet complete) says nothing about the ratio.
    if (!this.context.decoding || inBytes === 0 || outBytes === 0) return;
    const ratio = Math.max(1, outBytes / inBytes);
    const target = Math.floor(outputLimit(this.batchSize) / ratio);
    this.threshold = Math.min(this.batchSize, Math.max(MIN_DECODER_BATCH, target));
  }

  private takeBatch(): Buffer[] {
    const batch = this.pending;
    this.pending = [];
    this.pendingLength = 0;
    return batch;
  }

  /**
   * Starts one native call, then, while the decoder has `more()`, makes `again` (a call with no
   * input) each time there is room, all as the one call in flight. The caller guarantees that
   * none is in flight.
   */
  private start(call: () => Promise<Buffer[]>, inBytes: number, again: () => Promise<Buffer[]>): void {
    const run = async (): Promise<void> => {
      let outBytes = 0;
      let pieces = await call();
      for (;;) {
        for (const piece of pieces) {
          outBytes += piece.length;
          this.push(piece);
        }
        if (!this.codec.more()) break;
        await this.room();
        if (this.destroyed) return; // nobody will read the rest: stop inflating it
        pieces = await again();
      }
      this.adapt(inBytes, outBytes);
    };
    this.inflight = run().catch((err: unknown) => {
      this.failure = toBackupError(err, this.context);
      this.release(); // held writes learn of the failure now, not when the consumer reads
    });
  }

  /** Runs `next` now if less than one batch of output waits, else once the consumer reads. */
  private whenRoom(next: () => void): void {
    if (this.failure || this.readableLength < this.readableHighWaterMark) {
      next();
      return;
    }
    this.waiting.push(next);
    // Readable calls `_read` again only after a push since its last `_read` call; an empty push
    // is that signal (it adds nothing), so the consumer's next read reaches `_read` and releases us.
    this.push(EMPTY);
  }

  private room(): Promise<void> {
    return new Promise((resolve) => this.whenRoom(resolve));
  }

  /** Runs what waits now, whatever the room (a failure: the write reports it). */
  private release(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const next of waiting) next();
  }

  override _read(size: number): void {
    super._read(size);
    // Readable calls this as the consumer is about to take a chunk, not after: look once it has.
    if (this.waiting.length > 0) process.nextTick(() => this.retry());
  }

  /** What waits runs, in order, if there is room now; else it stays held (and `_read` is re-armed). */
  private retry(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const next of waiting) this.whenRoom(next);
  }

  /** Resolves once no native call is in flight; rejects with the first native failure. */
  private async settle(): Promise<void> {
    if (this.inflight) await this.inflight;
    this.inflight = null;
    if (this.failure) throw this.failure;
  }

  private startBatch(): void {
    const inBytes = this.pendingLength;
    const batch = this.takeBatch();
    this.start(
      () => (batch.length === 1 ? this.codec.write(batch[0]) : this.codec.writeChunks(batch)),
      inBytes,
      () => this.codec.write(EMPTY),
    );
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.failure) {
      callback(this.failure);
      return;
    }
    if (chunk.length > 0) {
      this.pending.push(chunk);
      this.pendingLength += chunk.length;
    }
    this.whenRoom(() => this.proceed(callback));
  }

  /** The rest of a write, once there is room for output: maybe start a call, then take more input. */
  private proceed(callback: TransformCallback): void {
    if (this.failure) {
      callback(this.failure);
      return;
    }
    if (this.pendingLength < this.threshold) {
      callback();
      return;
    }
    if (!this.inflight) {
      this.startBatch();
      callback();
      return;
    }
    // A full batch waits for the call in flight (and for room for its output); only then is more
    // input accepted.
    this.settle().then(
      () =>
        this.whenRoom(() => {
          if (this.failure) return callback(this.failure);
          this.startBatch();
          callback();
        }),
      (err: unknown) => callback(err as Error),
    );
  }

  override _flush(callback: TransformCallback): void {
    const run = async (): Promise<void> => {
      await this.settle();
      if (this.pendingLength > 0) {
        await this.room();
        this.startBatch();
        await this.settle();
      }
      await this.room();
      this.start(() => this.codec.finish(), 0, () => this.codec.finish());
      await this.settle();
    };
    run().then(
      () => {
        this.codec.close();
        callback();
      },
      (err: unknown) => {
        this.codec.close();
        callback(err as Error);
      },
    );
  }

  /**
   * The native stream is freed here too, for a stream destroyed before its end (a reader that
   * stopped early, a failure): its buffers and threads went only with a garbage collection, and
   * a chain restore or a verification leaves dozens of them behind (review chain-memory).
   * (`close()` waits for a call in flight: the Rust side frees the stream when that call ends.)
   */
  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.codec.close();
    callback(err);
  }
}
