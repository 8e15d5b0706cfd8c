/**
 * The ranged listing (src/engine/ranged-listing.ts listInRanges) against a model of ListObjectsV2
 * in memory: Prefix, StartAfter, a page size, UTF-8 key order, answers coming back in random
 * order, and pages cut short while IsTruncated (S3's API allows both). Hundreds of random
 * databases (keys that are prefixes of others, one huge resource beside tiny ones, non-ASCII and
 * astral characters) and option sets: every key under the prefix comes once, in order, with no
 * more requests in flight than allowed and some requests narrowed under a range's shared prefix;
 * a consumer that stops early starts no more requests. The model is not a fake of a part under
 * test: RGW cannot be made to answer out of order or cut pages on demand (ranged-listing.test.ts
 * runs the same listing against RGW). From review-ranges (it kills mutations M7 and M17 there,
 * which the RGW tests let pass).
 */
import { describe, expect, it } from 'vitest';
import { listInRanges } from '../src/engine/ranged-listing.js';
import { compareKeys } from '../src/engine/sorted-merge.js';
import { mulberry32 } from '../benches/corpus.js';
import { keysOfShapes, modelStore } from '../benches/model-store.js';
import { RANGED_LISTING } from '../src/engine/s3db.js';

const ALPHABET = ['a', 'b', 'O', 'W', 'g', 'p', 'w', 's', 'k', '~', ' ', '\x01', 'é', '\uE000', '\uFFFF', '😀', '😁', '🙂', '0', '/', '=', '\x7f', '_', '`', 'h', 'H', '8', 'z', 'A', 'Z', '-', 'o'];

describe('listInRanges over a model store', () => {
  it('lists exactly the keys under the prefix, in order, for any page size, short pages and answer order; bounded', async () => {
    let narrowed = 0; // requests under a longer prefix than the listing's (a range's shared prefix)
    for (let run = 0; run < 400; run++) {
      const random = mulberry32(1000 + run);
      const word = (n: number) => Array.from({ length: 1 + Math.floor(random() * n) }, () => ALPHABET[Math.floor(random() * ALPHABET.length)]).join('');
      const prefix = ['app/db/', 'p/', 'x😀/'][run % 3]!;
      const keys = new Set<string>(['app/db', 'app/db~', 'p0', 'x😀0']);
      const n = 5 + Math.floor(random() * 200);
      const skewed = random() < 0.5; // one huge resource beside tiny ones
      while (keys.size < n) {
        const w = skewed && random() < 0.8 ? `resource=big/id=${word(5)}` : word(5);
        keys.add(prefix + w);
        if (random() < 0.3) keys.add(prefix + w + word(2)); // keys that are prefixes of others
      }
      const sorted = [...keys].sort(compareKeys);
      const pageSize = 1 + Math.floor(random() * 6);
      const short = random() < 0.5;
      const o = { concurrency: 1 + Math.floor(random() * 8), maxPages: 1 + Math.floor(random() * 16), maxRanges: 1 + Math.floor(random() * 32), cutAfterPages: 1 + Math.floor(random() * 3), pagesPerRange: 0.2 + random() * 3, cutsPerPage: random() * 2 };
      let inFlight = 0;
      let maxInFlight = 0;
      const listing = listInRanges<string>({
        ...o,
        prefix,
        key: (k) => k,
        fetch: async ({ startAfter, prefix: within }) => {
          expect(() => encodeURIComponent(within)).not.toThrow(); // no lone surrogate: the SDK could not send it
          if (startAfter !== undefined) expect(() => encodeURIComponent(startAfter)).not.toThrow();
          if (within.length > prefix.length) narrowed++;
          maxInFlight = Math.max(maxInFlight, ++inFlight);
          for (let i = Math.floor(random() * 4); i > 0; i--) await new Promise((resolve) => setImmediate(resolve)); // answers out of order
          inFlight--;
          const after = sorted.filter((k) => k.startsWith(within) && (startAfter === undefined || compareKeys(k, startAfter) > 0));
          const take = short && after.length > pageSize && random() < 0.3 ? 1 + Math.floor(random() * pageSize) : pageSize;
          return { items: after.slice(0, take), truncated: after.length > take };
        },
      });
      const listed: string[] = [];
      for await (const page of listing) {
        expect(page.length).toBeGreaterThan(0);
        listed.push(...page);
      }
      const context = JSON.stringify({ run, prefix, pageSize, short, ...o });
      expect(listed, context).toEqual(sorted.filter((k) => k.startsWith(prefix)));
      expect(maxInFlight, context).toBeLessThanOrEqual(o.concurrency);
    }
    expect(narrowed).toBeGreaterThan(0);
  }, 120_000);
});

describe('listInRanges with the options s3db.ts lists S3 with', () => {
  it('lists in parallel with about one request a page for the key shapes databases have (scale-31: 2.4-4.9 requests a page for digit and hex ids)', async () => {
    const PAGE = 100;
    for (const [shape, sorted] of Object.entries(keysOfShapes(30_000))) {
      const store = modelStore(sorted, PAGE, 1);
      let listed = 0;
      for await (const page of listInRanges<string>({ prefix: 'app/db/', key: (k) => k, ...RANGED_LISTING, fetch: (r) => store.fetch(r) })) {
        listed += page.length;
        await new Promise((resolve) => setImmediate(resolve)); // a consumer that works on each page
      }
      expect(listed).toBe(sorted.length);
      const pages = sorted.length / PAGE;
      // (1.2-1.35 a page when measured; the earlier cuts took 2.4-4.9)
      expect({ shape, ok: store.requests <= 1.5 * pages + RANGED_LISTING.concurrency, requests: store.requests, pages }).toMatchObject({ shape, ok: true });
      expect({ shape, parallel: store.maxInFlight >= 4 }).toEqual({ shape, parallel: true });
    }
  });
});

describe('listInRanges stops for good', () => {
  it('starts no request once its consumer has stopped (return), and drops the answers in flight', async () => {
    const keys = Array.from({ length: 5000 }, (_, i) => `db/id=${String(i * 7919 % 100000).padStart(6, '0')}`).sort(compareKeys);
    let started = 0;
    let inFlight = 0;
    const listing = listInRanges<string>({
      prefix: 'db/', key: (k) => k, concurrency: 8, maxPages: 16, maxRanges: 32, cutAfterPages: 2, pagesPerRange: 2, cutsPerPage: 0.5,
      fetch: async ({ startAfter, prefix }) => {
        started++;
        inFlight++;
        await new Promise((resolve) => setTimeout(resolve, 20));
        inFlight--;
        const after = keys.filter((k) => k.startsWith(prefix) && (startAfter === undefined || compareKeys(k, startAfter) > 0));
        return { items: after.slice(0, 10), truncated: after.length > 10 };
      },
    })[Symbol.asyncIterator]();
    await listing.next();
    await listing.next();
    await listing.next();
    await listing.return(undefined);
    const atStop = started;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(inFlight).toBe(0);
    expect(started).toBe(atStop);
  });
});
