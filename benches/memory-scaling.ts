/**
 * Memory benchmark (not a test): peak RSS of a backup and of a restore as the number of records
 * grows (10k, 100k, 1M by default). Each size runs in its own child process.
 *
 * The source is a generated s3db client: it answers listObjects (paged, 1000 keys, as S3 does) and
 * getObject from a deterministic generator, holding nothing, so what grows (or not) is this
 * package's memory alone. (s3db's memory:// and file:// clients hold every key in memory
 * themselves, which would hide the engine's behaviour.) The destination is a real directory; the
 * restore target is a generated client that checks and discards what it receives.
 *
 * Each child runs with the V8 heap capped at 128 MB (--max-old-space-size): completing at 1M records
 * is the proof that what the code holds does not grow with the database.
 *
 * `--body-kb N` gives every record a body of N KiB of one repeated letter: a database that
 * compresses 1000x, where a decoder that inflated all it was given would hold whole parts.
 *
 *   node --import tsx benches/memory-scaling.ts [--sizes 10000,100000,1000000] [--body-kb N] [--json]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '10000,100000,1000000' }, 'body-kb': { type: 'string', default: '0' }, json: { type: 'boolean', default: false }, child: { type: 'string' } } });
const bodyKb = Number(values['body-kb']);

interface Result {
  records: number;
  /** Peak of V8's own accounting (heapUsed + external) during backup / restore: what this code holds. */
  backupJsPeakMb: number;
  restoreJsPeakMb: number;
  backupSeconds: number;
  restoreSeconds: number;
  baselineMb: number;
  backupPeakMb: number;
  restorePeakMb: number;
  storedMb: number;
}

function record(i: number): { key: string; body: Buffer; metadata: Record<string, string> } {
  const id = `rec-${String(i).padStart(8, '0')}`;
  const note = bodyKb > 0 ? 'a'.repeat(bodyKb * 1024) : `order ${i} `.repeat(1 + (i % 12));
  const body = Buffer.from(JSON.stringify({ id, note }));
  return { key: `resource=orders/data/id=${id}`, body, metadata: { _v: '1', s: String(i % 7), t: String(i * 31) } };
}

class GeneratedClient {
  constructor(readonly total: number) {}
  async listObjects(params: { maxKeys?: number; continuationToken?: string | null }) {
    const start = params.continuationToken ? Number(params.continuationToken) : 0;
    const end = Math.min(this.total, start + (params.maxKeys ?? 1000));
    const Contents = [];
    for (let i = start; i < end; i++) {
      const r = record(i);
      Contents.push({ Key: r.key, Size: r.body.length, ETag: `"e${i}"`, LastModified: new Date(1_700_000_000_000) });
    }
    return { Contents, IsTruncated: end < this.total, NextContinuationToken: end < this.total ? String(end) : null };
  }
  async getObject(key: string) {
    const r = record(Number(key.slice(key.lastIndexOf('-') + 1)));
    return { Body: r.body, Metadata: r.metadata, ContentType: 'application/json' };
  }
  received = 0;
  async putObject(params: { key: string; body?: Buffer }) {
    const expected = record(Number(params.key.slice(params.key.lastIndexOf('-') + 1)));
    if (!params.body?.equals(expected.body)) throw new Error(`restored body of ${params.key} differs`);
    this.received++;
  }
  async deleteObjects() {}
}

async function child(records: number): Promise<void> {
  const { BackupPlugin } = await import('../src/index.js');
  const dir = mkdtempSync(path.join(tmpdir(), 'memscale-'));
  const listeners = { on() {}, emit() {} };
  const source = { client: new GeneratedClient(records), resources: {}, ...listeners };
  const plugin = new BackupPlugin({ schedule: false, config: { directory: dir }, encryption: { passphrase: 'bench', iterations: 100_000 }, lease: false });
  await plugin.install(source as never);
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  let jsPeak = 0;
  const js = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.external;
  };
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
    jsPeak = Math.max(jsPeak, js());
  }, 20);
  let t = Date.now();
  const backup = await plugin.createBackup();
  const backupSeconds = (Date.now() - t) / 1000;
  const backupPeak = peak;
  const backupJsPeak = jsPeak;
  global.gc?.();
  peak = process.memoryUsage().rss;
  jsPeak = js();
  const target = { client: new GeneratedClient(0), resources: {}, ...listeners };
  t = Date.now();
  await plugin.restore({ backupId: backup.id, destination: target as never, mode: 'merge' });
  const restoreSeconds = (Date.now() - t) / 1000;
  clearInterval(timer);
  if (target.client.received !== records) throw new Error(`restored ${target.client.received} of ${records}`);
  rmSync(dir, { recursive: true, force: true });
  const mb = (n: number) => Math.round((n / 1048576) * 10) / 10;
  const result: Result = { records, backupJsPeakMb: mb(backupJsPeak), restoreJsPeakMb: mb(jsPeak), backupSeconds, restoreSeconds, baselineMb: mb(baseline), backupPeakMb: mb(backupPeak), restorePeakMb: mb(peak), storedMb: mb(backup.size) };
  process.stdout.write(JSON.stringify(result));
}

if (values.child) {
  await child(Number(values.child));
} else {
  const results: Result[] = [];
  for (const n of values.sizes!.split(',').map(Number)) {
    // A fixed mmap threshold stops glibc from growing its heap for large freed Buffers (RSS that is
    // allocator slack, not memory in use); the JS columns are V8's own accounting either way.
    const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? '131072' };
    // The V8 heap is capped at 128 MB: a run that completes proves the heap stays bounded.
    const out = execFileSync(process.execPath, ['--max-old-space-size=128', '--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', String(n), '--body-kb', String(bodyKb)], { encoding: 'utf8', maxBuffer: 1 << 20, env });
    results.push(JSON.parse(out) as Result);
    if (!values.json) console.error(`done: ${n} records`);
  }
  if (values.json) console.log(JSON.stringify({ node: process.version, results }));
  else {
    console.log('records      backup s  restore s  baseline RSS MB  backup peak RSS / JS MB  restore peak RSS / JS MB  stored MB');
    for (const r of results) {
      console.log(
        `${String(r.records).padStart(9)}  ${r.backupSeconds.toFixed(1).padStart(8)}  ${r.restoreSeconds.toFixed(1).padStart(9)}  ${String(r.baselineMb).padStart(15)}  ${`${r.backupPeakMb} / ${r.backupJsPeakMb}`.padStart(23)}  ${`${r.restorePeakMb} / ${r.restoreJsPeakMb}`.padStart(24)}  ${String(r.storedMb).padStart(9)}`,
      );
    }
  }
}
