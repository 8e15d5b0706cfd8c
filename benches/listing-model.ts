/**
 * Listing benchmark against a model store (not a test): the ranged listing of
 * src/engine/ranged-listing.ts, with the options src/engine/s3db.ts lists S3 with, over keys held
 * in memory and answered after `--latency` ms each, as a remote S3 answers: the round trip
 * dominates and the store does not slow down with requests in flight (what benches/listing.ts
 * cannot show on a 2-core machine whose RGW shares the CPU with the client). A consumer takes
 * `--consume` ms per page. Prints, per key shape, the requests per page and the time against one
 * page after another (the same store, one request at a time), measured in the same run.
 *
 *   node --import tsx benches/listing-model.ts [--keys 50000] [--latency 50] [--consume 5]
 */
import { parseArgs } from 'node:util';
import { listInRanges } from '../src/engine/ranged-listing.js';
import { LIST_CONCURRENCY, RANGED_LISTING } from '../src/engine/s3db.js';
import { keysOfShapes, modelStore } from './model-store.js';

const { values } = parseArgs({ options: { keys: { type: 'string', default: '50000' }, latency: { type: 'string', default: '50' }, consume: { type: 'string', default: '5' } } });
const KEYS = Number(values.keys);
const LATENCY = Number(values.latency);
const CONSUME = Number(values.consume);
const PAGE = 1000;

async function list(sorted: string[], ranged: boolean): Promise<{ seconds: number; requests: number }> {
  const s = modelStore(sorted, PAGE, LATENCY);
  const t0 = performance.now();
  let listed = 0;
  // one page after another: as s3db.ts lists without ranges
  const options = ranged ? RANGED_LISTING : { ...RANGED_LISTING, concurrency: 1, maxPages: 1, maxRanges: 1 };
  for await (const page of listInRanges<string>({ prefix: 'app/db/', key: (k) => k, ...options, fetch: (r) => s.fetch(r) })) {
    listed += page.length;
    if (CONSUME > 0) await new Promise((resolve) => setTimeout(resolve, CONSUME));
  }
  if (listed !== sorted.length) throw new Error(`listed ${listed} keys of ${sorted.length}`);
  return { seconds: (performance.now() - t0) / 1000, requests: s.requests };
}

console.log(`${KEYS} keys, pages of ${PAGE}, ${LATENCY} ms a request, ${CONSUME} ms a page in the consumer, ${LIST_CONCURRENCY} requests at once`);
for (const [shape, sorted] of Object.entries(keysOfShapes(KEYS))) {
  const one = await list(sorted, false);
  const ranged = await list(sorted, true);
  const pages = Math.ceil(KEYS / PAGE);
  console.log(`${shape.padEnd(13)} one page after another ${one.seconds.toFixed(2)} s, in ranges ${ranged.seconds.toFixed(2)} s (${(one.seconds / ranged.seconds).toFixed(2)}x), ${(ranged.requests / pages).toFixed(2)} requests a page`);
}
