/**
 * Transform around a NativeEncoder/NativeDecoder. Input is batched to >= batchSize bytes
 * (threads x segment size, at least 1 MiB) before one native call, so the ~35 us napi async round
 * trip is paid per MiB, not per chunk. Exactly one native call is in flight per stream: the write
 * callback waits for it, and Node's Transform holds the callback while the readable side is full.
 * A decoder's output is its input times the compression ratio, so decoder batches shrink (down to
 * 64 KiB) as the observed ratio grows, keeping one call's output near 4 x batchSize.
 * Memory: about one batch of input plus its output. Native errors become BackupError (same code).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { toBackupError } from './errors.js';
import type { NativeCodec } from './native-binding.js';

export const MIN_NATIVE_BATCH = 1024 * 1024;
const MIN_DECODER_BATCH = 64 * 1024;

export class NativeCodecStream extends Transform {
  private pending: Buffer[] = [];
  private pendingLength = 0;
  /** Input bytes per native call; adapts to the output ratio when decoding. */
  private threshold: number;

  constructor(
    private readonly codec: NativeCodec,
    private readonly batchSize: number,
    private readonly context: { decoding: boolean; compression: string },
  ) {
    super();
    // Decoders start small and grow with the observed ratio: the first call's output must not be
    // input x an unknown ratio (a 2 MiB batch of JSON lines can inflate to 70+ MB).
    this.threshold = context.decoding ? Math.min(batchSize, MIN_DECODER_BATCH) : batchSize;
  }

  /** Decoders: size the next batch so that its output stays near 4 x batchSize. */
  private adapt(inBytes: number, outBytes: number): void {
    if (!this.context.decoding || inBytes === 0) return;
    const ratio = Math.max(1, outBytes / inBytes);
    const target = Math.floor((4 * this.batchSize) / ratio);
    this.threshold = Math.min(this.batchSize, Math.max(MIN_DECODER_BATCH, target));
  }

  private takeBatch(): Buffer {
    const batch = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingLength);
    this.pending = [];
    this.pendingLength = 0;
    return batch;
  }

  private emit_(out: Buffer): void {
    if (out.length > 0) this.push(out);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (chunk.length === 0) {
      callback();
      return;
    }
    this.pending.push(chunk);
    this.pendingLength += chunk.length;
    if (this.pendingLength < this.threshold) {
      callback();
      return;
    }
    const batch = this.takeBatch();
    this.codec.write(batch).then(
      (out) => {
        this.adapt(batch.length, out.length);
        this.emit_(out);
        callback();
      },
      (err: unknown) => callback(toBackupError(err, this.context)),
    );
  }

  override _flush(callback: TransformCallback): void {
    const run = async (): Promise<void> => {
      if (this.pendingLength > 0) this.emit_(await this.codec.write(this.takeBatch()));
      this.emit_(await this.codec.finish());
    };
    run().then(
      () => callback(),
      (err: unknown) => callback(toBackupError(err, this.context)),
    );
  }
}
