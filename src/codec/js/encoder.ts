/**
 * JS twin encoder: node:zlib compression, then (with a key) SegmentSealer. One Transform; the
 * write callback waits until zlib has consumed the chunk, and Node's Transform holds it further
 * while the readable side is full, so memory stays bounded by one segment plus zlib's buffers.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { toBackupError } from '../errors.js';
import { keyMaterial } from '../key.js';
import type { ResolvedCodecOptions } from '../types.js';
import { SegmentSealer } from './sealer.js';
import { createCompressor, ZlibStage, type ZlibCodec } from './zlib-stage.js';

export class JsEncoder extends Transform {
  private readonly stage: ZlibStage | null;
  private readonly sealer: SegmentSealer | null;
  private readonly compression: string;

  constructor(o: ResolvedCodecOptions) {
    super();
    this.compression = o.compression;
    this.sealer = o.key
      ? new SegmentSealer({
          master: keyMaterial(o.key),
          compression: o.compression,
          segmentSize: o.segmentSize,
          testSalt: o.testSalt,
          testNoncePrefix: o.testNoncePrefix,
        })
      : null;
    this.stage =
      o.compression === 'none'
        ? null
        : new ZlibStage(createCompressor(o.compression as ZlibCodec, o.level), (data) => {
            this.emitCompressed(data); // an encoder's output is about its input / the ratio: no pause
            return true;
          });
  }

  private emitCompressed(data: Buffer): void {
    if (this.sealer === null) {
      this.push(data);
      return;
    }
    for (const piece of this.sealer.push(data)) this.push(piece);
  }

  private fail(err: unknown): Error {
    return toBackupError(err, { decoding: false, compression: this.compression });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.stage === null) {
      try {
        this.emitCompressed(chunk);
        callback();
      } catch (err) {
        callback(this.fail(err));
      }
      return;
    }
    this.stage.write(chunk).then(
      () => callback(),
      (err: unknown) => callback(this.fail(err)),
    );
  }

  override _flush(callback: TransformCallback): void {
    const done = this.stage === null ? Promise.resolve() : this.stage.end();
    done.then(
      () => {
        try {
          if (this.sealer !== null) for (const piece of this.sealer.finish()) this.push(piece);
          callback();
        } catch (err) {
          callback(this.fail(err));
        }
      },
      (err: unknown) => callback(this.fail(err)),
    );
  }

  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    this.stage?.destroy();
    callback(err);
  }
}
