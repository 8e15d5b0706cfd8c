/**
 * JS twin decoder: (with a key) SegmentOpener, then node:zlib decompression. Plaintext reaches the
 * decompressor only after its segment's tag verified. Verified data is fed to zlib in 64 KiB
 * pieces, one at a time, and zlib's output honours this stream's back-pressure (ZlibStage pauses
 * while `push` answers false, `_read` resumes it), so data that compresses 1000x cannot fill
 * memory while the consumer waits. Gzip data also passes a GzipMemberScanner, which refuses a cut
 * between self-sized members.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { BackupError } from '../../errors.js';
import { streamErrors } from '../errors.js';
import { keyMaterial } from '../key.js';
import type { ResolvedCodecOptions } from '../types.js';
import { GzipMemberScanner } from './gzip-members.js';
import { SegmentOpener } from './opener.js';
import { createDecompressor, ZlibStage, type ZlibCodec } from './zlib-stage.js';

const FEED = 64 * 1024;

export class JsDecoder extends Transform {
  private readonly stage: ZlibStage | null;
  private readonly opener: SegmentOpener | null;
  private readonly compression: string;
  private readonly members: GzipMemberScanner | null;

  constructor(o: ResolvedCodecOptions) {
    super();
    this.compression = o.compression;
    this.members = o.compression === 'gzip' ? new GzipMemberScanner() : null;
    this.opener = o.key ? new SegmentOpener(keyMaterial(o.key), o.compression) : null;
    this.stage =
      o.compression === 'none'
        ? null
        : new ZlibStage(createDecompressor(o.compression as ZlibCodec), (data) => this.push(data));
  }

  /** Opener errors are already BackupErrors; anything else came from zlib: corrupt compressed data. */
  private fail(err: unknown): Error {
    if (err instanceof BackupError) return err;
    return streamErrors.decompress(this.compression, err);
  }

  private async feed(pieces: Buffer[]): Promise<void> {
    for (const piece of pieces) {
      if (this.stage === null) {
        this.push(piece);
        continue;
      }
      this.members?.scan(piece);
      for (let offset = 0; offset < piece.length; offset += FEED) {
        await this.stage.write(piece.subarray(offset, Math.min(piece.length, offset + FEED)));
      }
    }
  }

  override _read(size: number): void {
    this.stage?.resume();
    super._read(size);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let pieces: Buffer[];
    try {
      pieces = this.opener === null ? [chunk] : this.opener.push(chunk);
    } catch (err) {
      callback(this.fail(err));
      return;
    }
    this.feed(pieces).then(
      () => callback(),
      (err: unknown) => callback(this.fail(err)),
    );
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.opener?.end();
    } catch (err) {
      callback(this.fail(err));
      return;
    }
    const done = this.stage === null ? Promise.resolve() : this.stage.end();
    done.then(
      () => {
        const cut = this.members?.truncation() ?? null;
        callback(cut === null ? undefined : this.fail(streamErrors.decompress(this.compression, new Error(cut))));
      },
      (err: unknown) => callback(this.fail(err)),
    );
  }

  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    this.stage?.destroy();
    callback(err);
  }
}
