/**
 * One ordered listing of a large key space made of several listings at once: S3's ListObjectsV2
 * answers one page per round trip, so listing 100 million keys one page after another takes
 * hours however fast the rest is. The key space is cut into ranges as it is learnt, each listed
 * from its own `StartAfter`, and the pages are handed on in key order.
 *
 * How the ranges are cut: a range is (after, upTo] (keys k with after < k <= upTo; upTo null for
 * the end). When a page of a range comes back truncated, the listing has received `cutAfterPages`
 * pages, fewer than `maxRanges` ranges are open, and the cuts so far are within their budget
 * (`concurrency` + `cutsPerPage` per page received), the rest of that range, (last key listed,
 * upTo], is cut into ranges of about `pagesPerRange` pages (interpolatedPoints): the page's first
 * and last keys, read as numbers whose digits are the characters seen where keys vary, show how
 * far a page reaches, and the points are placed that far apart ahead. Sequential numbers, hex,
 * UUIDs and s3db.js's random ids all give ranges of about the size asked, so nearly every
 * request returns a full page (scale-31: halfway-to-'~' points fell in empty key space for digit
 * and hex ids, 2.4-4.9 requests a page and little gain); where the estimate is off (keys of
 * varying shapes), the budget bounds the empty ranges. Each range is listed under the prefix all
 * its keys share (sharedPrefix), so an empty one costs one request with an empty answer, and a
 * range's last page lists little past its end.
 *
 * Invariants:
 * - The ranges always cover (the last key handed on, end] exactly, in order, without overlap: a
 *   range is only ever cut at points strictly between its last listed key and its upTo, so every
 *   key lands in exactly one range, and a range's keys are handed on only after every earlier
 *   range's. The caller's order check (KeyCursor, mergeJoin) still sees a single sorted stream.
 * - Split points are printable ASCII after a prefix of a listed key (never one ending in half a
 *   surrogate pair), so they are valid keys to send as StartAfter and compare with S3's UTF-8
 *   byte order as compareKeys does.
 * - Memory is bounded: pages listed and not yet handed on, plus requests in flight, never pass
 *   `maxPages`, except that the range being handed on may always fetch its next page once it
 *   holds none (so the listing cannot stall waiting for itself).
 * - At most `concurrency` requests are in flight. When the consumer stops early (return or
 *   throw), no further request starts; those in flight finish and are dropped.
 * - A failed request fails the listing when the consumer next waits for a page (a later range's
 *   failure is not hidden behind an earlier one's success), and so does an answer that would
 *   repeat or lose keys unseen: keys at or before StartAfter, or an empty page that says more follow.
 */
import { compareKeys } from './sorted-merge.js';

export interface RangePage<T> {
  items: T[];
  /** More keys follow after the last one (S3's IsTruncated). */
  truncated: boolean;
}

export interface RangedListingOptions<T> {
  /**
   * One request: keys starting with `prefix` after `startAfter` (from the first when undefined),
   * in key order, a page at most. `prefix` is the options' own, or longer: what every key of the
   * range shares, so S3 stops at the prefix's end instead of listing past the range.
   */
  fetch(request: { startAfter: string | undefined; prefix: string }): Promise<RangePage<T>>;
  key(item: T): string;
  /** The prefix every key starts with: split points are cut after it. */
  prefix: string;
  /** Requests in flight at most. */
  concurrency: number;
  /** Pages held (listed, not yet handed on) plus requests in flight, at most (beyond the current range's). */
  maxPages: number;
  /** Open ranges at most: no range is cut once there are this many. */
  maxRanges: number;
  /**
   * Pages after which more keys follow that the listing receives before it cuts any range: a
   * listing this short is done before the requests that find where to cut would pay off (most of
   * them come back empty).
   */
  cutAfterPages: number;
  /** Pages each range cut is meant to hold (interpolatedPoints). */
  pagesPerRange: number;
  /** Ranges cut at most: `concurrency`, plus this many per page received (each range cut that turns out empty costs a request). */
  cutsPerPage: number;
}

interface Range<T> {
  /** Exclusive lower bound: the next request's StartAfter. */
  after: string | undefined;
  /** Inclusive upper bound; null for the end of the key space. */
  upTo: string | null;
  pages: T[][];
  fetching: boolean;
  /** No further request is needed. */
  done: boolean;
}

/** The listing's pages, in key order, each non-empty. */
export async function* listInRanges<T>(o: RangedListingOptions<T>): AsyncGenerator<T[]> {
  const ranges: Range<T>[] = [{ after: undefined, upTo: null, pages: [], fetching: false, done: false }];
  let inFlight = 0;
  let held = 0;
  let received = 0;
  let cuts = 0;
  const alphabet = new Alphabet();
  let failure: { error: unknown } | null = null;
  let stopped = false;
  let wake: (() => void) | null = null;
  const changed = () => {
    const w = wake;
    wake = null;
    w?.();
  };

  const start = (range: Range<T>) => {
    range.fetching = true;
    inFlight++;
    o.fetch({ startAfter: range.after, prefix: sharedPrefix(o.prefix, range) }).then(
      (page) => {
        inFlight--;
        range.fetching = false;
        if (stopped) return;
        try {
          took(range, page);
        } catch (error) {
          failure ??= { error };
          changed();
          return;
        }
        // an empty range ahead of the one being handed on goes at once: it counts as open no more
        if (range.done && range.pages.length === 0 && range !== ranges[0]) ranges.splice(ranges.indexOf(range), 1);
        if (!failure) pump(); // listing goes on while the consumer works on a page
        changed();
      },
      (error: unknown) => {
        inFlight--;
        range.fetching = false;
        failure ??= { error };
        changed();
      },
    );
  };

  /** A page of `range`: its keys within the range are held for the consumer; the rest of the range may be cut. */
  const took = (range: Range<T>, page: RangePage<T>) => {
    let items = page.items;
    // a store that ignored StartAfter would hand out keys twice; one that says more follow after
    // an empty page leaves nothing to continue from: either would lose or repeat keys unseen
    if (range.after !== undefined && items.length > 0 && compareKeys(o.key(items[0]!), range.after) <= 0) {
      throw new Error('the store answered a listing from a key (ListObjectsV2 StartAfter) with keys before it: it does not support StartAfter, or a client, proxy or cache between answered with another request\'s page');
    }
    if (items.length === 0 && page.truncated) throw new Error('the store answered a listing page with no keys that says more follow (IsTruncated): nothing to continue from');
    const upTo = range.upTo;
    if (upTo !== null) {
      const past = items.findIndex((item) => compareKeys(o.key(item), upTo) > 0);
      if (past >= 0) items = items.slice(0, past); // the next range lists those
      // its bound reached: passed, or listed itself (a page of one key equal to a split point)
      if (past >= 0 || (items.length > 0 && compareKeys(o.key(items[items.length - 1]!), upTo) === 0)) range.done = true;
    }
    if (!page.truncated || items.length === 0) range.done = true;
    if (items.length === 0) return;
    range.pages.push(items);
    held++;
    range.after = o.key(items[items.length - 1]!);
    if (items.length > 1) {
      const first = o.key(items[0]!);
      const varies = commonLength(first, range.after);
      for (const item of items) alphabet.add(o.key(item), varies);
    }
    if (!range.done && ++received >= o.cutAfterPages) cutRest(range, o.key(items[0]!), items.length);
  };

  /** Cuts what is left of `range` (after its last key listed, a page of `n` keys from `first`) into ranges, as far as there is room. */
  const cutRest = (range: Range<T>, first: string, n: number) => {
    const budget = o.concurrency + Math.floor(received * o.cutsPerPage) - cuts;
    const room = Math.min(budget, o.maxRanges - ranges.filter((r) => !r.done).length);
    if (room <= 0) return;
    const points = interpolatedPoints(o.prefix, alphabet, first, range.after!, n, range.upTo, o.pagesPerRange, room);
    if (points.length === 0) return;
    cuts += points.length;
    // (after, p1], (p1, p2], ..., (pk, upTo]
    const added = points.map((point, i) => ({ after: point, upTo: points[i + 1] ?? range.upTo, pages: [], fetching: false, done: false }));
    range.upTo = points[0]!;
    ranges.splice(ranges.indexOf(range) + 1, 0, ...added);
  };

  const pump = () => {
    for (const range of ranges) {
      if (inFlight >= o.concurrency) return;
      if (range.fetching || range.done) continue;
      const awaited = range === ranges[0] && range.pages.length === 0; // what the consumer waits for
      if (!awaited && held + inFlight >= o.maxPages) return;
      start(range);
    }
  };

  try {
    for (;;) {
      const failed = failure as { error: unknown } | null; // (set by the requests' callbacks)
      if (failed) throw failed.error;
      const current = ranges[0];
      if (!current) return;
      if (current.pages.length > 0) {
        const page = current.pages.shift()!;
        held--;
        pump();
        yield page;
        continue;
      }
      if (current.done && !current.fetching) {
        ranges.shift();
        continue;
      }
      pump();
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    stopped = true;
  }
}

/**
 * What every key of `range` starts with: a key k with after < k <= upTo starts with the common
 * prefix of `after` and `upTo` (were it to differ from it first at some character, k would sort
 * before `after` or after `upTo`).
 */
function sharedPrefix(prefix: string, range: { after: string | undefined; upTo: string | null }): string {
  if (range.after === undefined || range.upTo === null) return prefix;
  const shared = range.after.slice(0, commonLength(range.after, range.upTo));
  if (shared.length > prefix.length && !isHighSurrogate(shared.charCodeAt(shared.length - 1))) return shared;
  return prefix;
}

function commonLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/** Characters of a key after the page's common prefix that its coordinate reads (a double holds about this many of base ~65). */
const FRACTION_DIGITS = 8;

/** S3's longest key, in UTF-8 bytes: a point past it would be refused as a StartAfter (review-33). */
const MAX_KEY_BYTES = 1024;

/** The printable ASCII characters seen where listed keys vary: the digits of interpolatedPoints' coordinates. */
export class Alphabet {
  private readonly seen = new Array<boolean>(128).fill(false);
  private ranks: number[] | null = null;
  private chars: string[] = [];

  add(key: string, from: number): void {
    for (let i = from; i < key.length; i++) {
      const c = key.charCodeAt(i);
      if (c >= 0x20 && c < 0x7f && !this.seen[c]) {
        this.seen[c] = true;
        this.ranks = null;
      }
    }
  }

  /** 1 + the rank of the largest character seen at or below `code` (0: below them all, or the key's end). */
  value(code: number | undefined): number {
    this.index();
    if (code === undefined) return 0;
    return this.ranks![Math.min(code, 127)]!;
  }

  /** The rank (0-based) of a character seen, or -1. */
  rankOf(code: number): number {
    this.index();
    return code < 128 && this.seen[code] ? this.ranks![code]! - 1 : -1;
  }

  char(value: number): string {
    this.index();
    return this.chars[value - 1]!;
  }

  get base(): number {
    this.index();
    return this.chars.length + 1;
  }

  private index(): void {
    if (this.ranks) return;
    this.ranks = [];
    this.chars = [];
    let rank = 0;
    for (let c = 0; c < 128; c++) {
      if (this.seen[c]) {
        this.chars.push(String.fromCharCode(c));
        rank++;
      }
      this.ranks.push(rank);
    }
  }
}

/**
 * Up to `count` keys after `last` (and before `upTo`) at which to cut the rest of a range into
 * ranges of about `pagesEach` pages each. A page's first and last keys (`n` keys) show how far one
 * page reaches: read after their common prefix (position `at`) as numbers whose digits are the
 * characters seen where keys vary (alphabet; 0: the key's end), they are `span` apart. The points
 * are `last` plus multiples of pagesEach x span, carried into the characters before `at` as in
 * an addition (a page that ran through "e0000000".."e0000999" puts the next point in "e0002..."),
 * but never through one the alphabet lacks (a separator, such as the '/' or '=' of s3db.js's
 * layout: what follows it is not known).
 */
export function interpolatedPoints(prefix: string, alphabet: Alphabet, first: string, last: string, n: number, upTo: string | null, pagesEach: number, count: number): string[] {
  const at = Math.max(prefix.length, commonLength(first, last));
  const bound = Math.max(prefix.length, upTo === null ? 0 : commonLength(last, upTo));
  const base = alphabet.base; // digits at and after `at`: 0 (the key's end) and the alphabet
  const radix = base - 1; // digits before `at`: the alphabet
  if (radix < 2 || (at > 0 && isHighSurrogate(last.charCodeAt(at - 1)))) return [];
  const fraction = (key: string) => {
    let x = 0;
    for (let i = FRACTION_DIGITS - 1; i >= 0; i--) x = x / base + alphabet.value(at + i < key.length ? key.charCodeAt(at + i) : undefined);
    return x;
  };
  const from = fraction(last);
  const step = ((from - fraction(first)) * n * pagesEach) / Math.max(1, n - 1);
  if (!(step > 0)) return [];
  const points: string[] = [];
  let previous = last;
  for (let k = 1; k <= count; k++) {
    let y = from + k * step;
    let carry = Math.floor(y / base);
    y -= carry * base;
    let head = last.slice(0, at);
    // the carry into the characters before `at`, from the last of them up
    for (let j = at - 1; carry > 0; j--) {
      if (j < bound) return points; // past the range's end
      const rank = alphabet.rankOf(head.charCodeAt(j));
      if (rank < 0) return points; // a character the alphabet lacks: what follows it is not known
      const sum = rank + carry;
      head = head.slice(0, j) + alphabet.char(1 + (sum % radix)) + head.slice(j + 1);
      carry = Math.floor(sum / radix);
    }
    let point = head;
    for (let i = 0; i < FRACTION_DIGITS; i++) {
      const digit = Math.floor(y);
      if (digit === 0) break; // the key's end
      point += alphabet.char(digit);
      y = (y - digit) * base;
    }
    if (compareKeys(point, previous) <= 0) continue;
    if (upTo !== null && compareKeys(point, upTo) >= 0) break;
    if (Buffer.byteLength(point) > MAX_KEY_BYTES) break; // (keys this long are left to one listing)
    points.push(point);
    previous = point;
  }
  return points;
}
