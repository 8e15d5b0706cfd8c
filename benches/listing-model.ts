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
import { LIST_CONCURRENCY } from '../src/engine/s3db.js';
import { compareKeys } from '../src/engine/sorted-merge.js';
import { mulberry32 } from './corpus.js';

const { values } = parseArgs({ options: { keys: { type: 'string', default: '50000' }, latency: { type: 'string', default: '50' }, consume: { type: 'string', default: '5' } } });
const KEYS = Number(values.keys);
const LATENCY = Number(values.latency);
const CONSUME = Number(values.consume);
const PAGE = 1000;

const random = mulberry32(5);
const draw = (chars: string, n: number) => Array.from({ length: n }, () => chars[Math.floor(random() * chars.length)]).join('');
const NANOID = 'useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict';
const HEX = '0123456789abcdef';
const SHAPES: Record<string, (i: number) => string> = {
  's3db ids': () => `resource=events/data/id=${draw(NANOID, 22)}`,
  numbers: (i) => `resource=events/data/id=e${String(i).padStart(9, '0')}`,
  uuid: () => `resource=events/data/id=${draw(HEX, 8)}-${draw(HEX, 4)}-4${draw(HEX, 3)}-a${draw(HEX, 3)}-${draw(HEX, 12)}`,
  emails: () => `resource=users/data/id=${['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'][Math.floor(random() * 8)]}.${Math.floor(random() * 1e6)}@example.com`,
  layout: (i) => (i % 3 === 0 ? `resource=blobs/data/id=b${String(i).padStart(9, '0')}` : i % 3 === 1 ? `resource=events/data/id=${draw(NANOID, 22)}` : `resource=events/partition=byDay/day=2026-${String(1 + (i % 12)).padStart(2, '0')}-${String(1 + (i % 28)).padStart(2, '0')}/id=${draw(NANOID, 10)}`),
};

/** A ListObjectsV2 of `sorted` (Prefix, StartAfter, pages of PAGE keys), answered after LATENCY ms. */
function store(sorted: string[]) {
  let requests = 0;
  const fetch = async ({ startAfter, prefix }: { startAfter: string | undefined; prefix: string }) => {
    requests++;
    await new Promise((resolve) => setTimeout(resolve, LATENCY));
    const from = startAfter !== undefined && compareKeys(startAfter, prefix) > 0 ? startAfter : prefix;
    let lo = 0;
    for (let hi = sorted.length; lo < hi; ) {
      const mid = (lo + hi) >> 1;
      const order = compareKeys(sorted[mid]!, from);
      if (order < 0 || (order === 0 && from === startAfter)) lo = mid + 1;
      else hi = mid;
    }
    const items: string[] = [];
    for (let i = lo; i < sorted.length && items.length < PAGE && sorted[i]!.startsWith(prefix); i++) items.push(sorted[i]!);
    const next = sorted[lo + items.length];
    return { items, truncated: next !== undefined && next.startsWith(prefix) };
  };
  return { fetch, requests: () => requests };
}

async function list(sorted: string[], ranged: boolean): Promise<{ seconds: number; requests: number }> {
  const s = store(sorted);
  const t0 = performance.now();
  let listed = 0;
  const options = ranged
    ? { concurrency: LIST_CONCURRENCY, maxPages: 2 * LIST_CONCURRENCY, maxRanges: 4 * LIST_CONCURRENCY }
    : { concurrency: 1, maxPages: 1, maxRanges: 1 };
  for await (const page of listInRanges<string>({ prefix: 'app/db/', key: (k) => k, ...options, cutAfterPages: 4, pagesPerRange: 2, cutsPerPage: 0.5, fetch: s.fetch })) {
    listed += page.length;
    if (CONSUME > 0) await new Promise((resolve) => setTimeout(resolve, CONSUME));
  }
  if (listed !== sorted.length) throw new Error(`listed ${listed} keys of ${sorted.length}`);
  return { seconds: (performance.now() - t0) / 1000, requests: s.requests() };
}

console.log(`${KEYS} keys, pages of ${PAGE}, ${LATENCY} ms a request, ${CONSUME} ms a page in the consumer, ${LIST_CONCURRENCY} requests at once`);
for (const [shape, make] of Object.entries(SHAPES)) {
  const keys = new Set<string>();
  for (let i = 0; keys.size < KEYS; i++) keys.add(`app/db/${make(i)}`);
  const sorted = [...keys].sort(compareKeys);
  const one = await list(sorted, false);
  const ranged = await list(sorted, true);
  const pages = Math.ceil(KEYS / PAGE);
  console.log(`${shape.padEnd(9)} one page after another ${one.seconds.toFixed(2)} s, in ranges ${ranged.seconds.toFixed(2)} s (${(one.seconds / ranged.seconds).toFixed(2)}x), ${(ranged.requests / pages).toFixed(2)} requests a page`);
}
