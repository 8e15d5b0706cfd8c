/**
 * Codec options: every invalid option fails at creation with ERR_INVALID_OPTION naming it;
 * defaults; `compression: false`; implementation selection ('auto', and S3DB_BACKUP_NATIVE=0
 * forcing the JS twin, checked in a fresh child process so module state cannot hide a bug).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { activeImplementation, createDecoder, createEncoder, nativeAvailable, type CodecOptions } from '../src/codec/index.js';
import { JsEncoder } from '../src/codec/js/encoder.js';
import { NativeCodecStream } from '../src/codec/native-stream.js';
import { bindingProblem, nativeBinding, NATIVE_API } from '../src/codec/native-binding.js';
import { concat, jsonLines, runToBuffer } from './helpers/corpus.js';
import { TEST_KEY } from './helpers/codec-impls.js';
import * as zlib from 'node:zlib';

describe('codec options', () => {
  const invalid: Array<[string, unknown]> = [
    ['compression', { compression: 'lz4' }],
    ['compression', { compression: true }],
    ['level', { compression: 'gzip', level: 0 }],
    ['level', { compression: 'gzip', level: 10 }],
    ['level', { compression: 'brotli', level: 12 }],
    ['level', { compression: 'zstd', level: 23, implementation: 'native' }],
    ['level', { level: 2.5 }],
    ['threads', { threads: 0 }],
    ['threads', { threads: 1.5 }],
    ['segmentSize', { segmentSize: 1023 }],
    ['segmentSize', { segmentSize: 16 * 1024 * 1024 + 1 }],
    ['implementation', { implementation: 'wasm' }],
    ['key', { key: 'not-a-key' }],
    ['key', { key: Buffer.alloc(33) }],
    ['testSalt', { testSalt: Buffer.alloc(31) }],
    ['testNoncePrefix', { testNoncePrefix: Buffer.alloc(12) }],
    ['compresion', { compresion: 'gzip' }],
  ];
  for (const [option, opts] of invalid) {
    it(`rejects ${JSON.stringify(opts, (_k, v: { type?: string; data?: unknown[] }) => (v?.type === 'Buffer' ? `<${v.data?.length} bytes>` : v))} naming "${option}"`, () => {
      for (const create of [createEncoder, createDecoder]) {
        let caught: unknown = null;
        try {
          create(opts as CodecOptions);
        } catch (err) {
          caught = err;
        }
        expect(caught).toMatchObject({ name: 'BackupError', code: 'ERR_INVALID_OPTION' });
        expect((caught as Error).message).toContain(`"${option}"`);
      }
    });
  }

  it('accepts the limits: segmentSize 1024 and 16 MiB, brotli level 0, gzip 1 and 9', () => {
    for (const opts of [{ segmentSize: 1024 }, { segmentSize: 16 * 1024 * 1024 }, { compression: 'brotli', level: 0 }, { level: 1 }, { level: 9 }] as CodecOptions[]) {
      expect(() => createEncoder({ ...opts, implementation: 'js' })).not.toThrow();
    }
  });

  it('defaults to gzip; compression false means none', async () => {
    const input = concat(jsonLines(10_000));
    const gz = await runToBuffer([input], createEncoder({ implementation: 'js' }));
    expect(zlib.gunzipSync(gz).equals(input)).toBe(true);
    const plain = await runToBuffer([input], createEncoder({ compression: false, implementation: 'js' }));
    expect(plain.equals(input)).toBe(true);
    const enc = await runToBuffer([input], createEncoder({ compression: false, key: TEST_KEY, implementation: 'js' }));
    expect(enc[10]).toBe(0);
    expect(enc.readUInt32BE(12)).toBe(1024 * 1024); // default segment size in the header
  });

  it("'auto' picks the native core when it loads; explicit choices are honoured", () => {
    expect(nativeAvailable()).toBe(true);
    expect(activeImplementation()).toBe('native');
    expect(createEncoder()).toBeInstanceOf(NativeCodecStream);
    expect(createEncoder({ implementation: 'js' })).toBeInstanceOf(JsEncoder);
    expect(createDecoder({ implementation: 'native' })).toBeInstanceOf(NativeCodecStream);
  });

  it('an addon built from other sources is refused at load with "rebuild it", not used', () => {
    const real = nativeBinding();
    expect(real, 'native core must load (npm run build:native)').not.toBeNull();
    expect(bindingProblem(real, 'native/index.js')).toBeNull();
    expect(real?.nativeApi()).toBe(NATIVE_API);
    // Fakes stand for stale binaries (a real one cannot be produced on demand here): before API 2
    // there was no nativeApi() and stream calls resolved to one Buffer instead of Buffer[]; an
    // API 2 decoder ignores outputLimit (its output per call is unbounded) and has no more(); an API 3
    // stream has no close().
    const stale = { ...real, nativeApi: undefined };
    expect(bindingProblem(stale, 'native/index.js')).toMatch(/native API 1.*rebuild it with `npm run build:native`/);
    expect(bindingProblem({ ...real, nativeApi: () => 3 }, 'x')).toMatch(/native API 3.*rebuild it/);
    expect(bindingProblem({ ...real, nativeApi: () => 5 }, 'x')).toMatch(/native API 5/);
    expect(bindingProblem({}, 'x')).toBe('x does not export the s3db-backup native API');
  });

  it('S3DB_BACKUP_NATIVE=0 forces the JS twin for auto (fresh process)', () => {
    const script = [
      "const c = await import('./src/codec/index.ts');",
      "const { JsEncoder } = await import('./src/codec/js/encoder.ts');",
      'console.log(JSON.stringify({ active: c.activeImplementation(), js: c.createEncoder() instanceof JsEncoder, native: c.nativeAvailable() }));',
      "try { c.createEncoder({ compression: 'zstd' }); console.log('no error'); } catch (e) { console.log(e.code); }",
    ].join('\n');
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, S3DB_BACKUP_NATIVE: '0' },
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    const [json, zstd] = run.stdout.trim().split('\n');
    expect(JSON.parse(json)).toEqual({ active: 'js', js: true, native: true });
    expect(zstd).toBe('ERR_CODEC_UNAVAILABLE');
  });
});
