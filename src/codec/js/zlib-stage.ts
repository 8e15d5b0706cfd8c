/**
 * JS twin: node:zlib compressors/decompressors for each codec, and ZlibStage, which drives one zlib
 * stream as an awaitable stage: write() resolves when zlib has consumed the chunk, end() when all
 * output has been emitted. Output goes to a synchronous sink in order. Invariants: at most one
 * write is outstanding, so zlib's input stays bounded; a sink that answers false (its consumer is
 * full) pauses the zlib stream until `resume()`, and node:zlib then stops inflating mid-chunk once
 * its own readable buffer is full, so output stays bounded however well the data compresses (a
 * 64 KiB chunk of zeros is 60+ MiB); the first zlib error rejects every later call.
 */
import * as zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import type { Compression } from '../types.js';

const CHUNK = 64 * 1024;

export type ZlibCodec = Exclude<Compression, 'none' | 'zstd'>;

export function createCompressor(codec: ZlibCodec, level: number): Transform {
  switch (codec) {
    case 'gzip':
      return zlib.createGzip({ level, chunkSize: CHUNK });
    case 'deflate':
      return zlib.createDeflate({ level, chunkSize: CHUNK });
    case 'brotli':
      return zlib.createBrotliCompress({ chunkSize: CHUNK, params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level } });
  }
}

export function createDecompressor(codec: ZlibCodec): Transform {
  switch (codec) {
    case 'gzip':
      return zlib.createGunzip({ chunkSize: CHUNK });
    case 'deflate':
      return zlib.createInflate({ chunkSize: CHUNK });
    case 'brotli':
      return zlib.createBrotliDecompress({ chunkSize: CHUNK });
  }
}

export class ZlibStage {
  private error: unknown = null;
  private readonly waiters = new Set<(err: unknown) => void>();

  /** `sink` answers whether it wants more now (false: the stage pauses until `resume()`). */
  constructor(
    private readonly stream: Transform,
    sink: (data: Buffer) => boolean,
  ) {
    stream.on('data', (data: Buffer) => {
      if (this.error !== null) return;
      try {
        if (!sink(data)) stream.pause();
      } catch (err) {
        this.fail(err);
      }
    });
    stream.on('error', (err) => this.fail(err));
  }

  /** Feeds one chunk; resolves once zlib has processed it. */
  write(chunk: Buffer): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    return new Promise<void>((resolve, reject) => {
      this.waiters.add(reject);
      this.stream.write(chunk, (err) => {
        this.waiters.delete(reject);
        if (this.error !== null) reject(this.error);
        else if (err) reject(err);
        else resolve();
      });
    });
  }

  /** Finishes the zlib stream; resolves after its last output went to the sink. */
  end(): Promise<void> {
    if (this.error !== null) return Promise.reject(this.error);
    return new Promise<void>((resolve, reject) => {
      this.waiters.add(reject);
      this.stream.once('end', () => {
        this.waiters.delete(reject);
        if (this.error !== null) reject(this.error);
        else resolve();
      });
      this.stream.end();
    });
  }

  /** The sink's consumer wants more again: output flows (and zlib inflates) again. */
  resume(): void {
    if (this.error === null && this.stream.isPaused()) this.stream.resume();
  }

  destroy(): void {
    this.stream.destroy();
  }

  private fail(err: unknown): void {
    if (this.error !== null) return;
    this.error = err;
    for (const reject of this.waiters) reject(err);
    this.waiters.clear();
    this.stream.destroy();
  }
}
