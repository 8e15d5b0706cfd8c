/**
 * One ordered listing of a large key space made of several listings at once: S3's ListObjectsV2
 * answers one page per round trip, so listing 100 million keys one page after another takes
 * hours however fast the rest is. The key space is cut into ranges as it is learnt, each listed
 * from its own `StartAfter`, and the pages are handed on in key order.
 *
 * How the ranges are cut: a range is (after, upTo] (keys k with after < k <= upTo; upTo null for
 * the end). When a page of a range comes back truncated, the listing has received `cutAfterPages`
 * pages, and fewer than `maxRanges` ranges are open, the rest of that range, (last key listed,
 * upTo], is cut at split points (splitPoints): for each position from where the last key and
 * upTo first differ to where the page's first and last keys first differ, the point halfway
 * between the last key's character there and the largest one (`fanOut` points, evenly spaced, at
 * the last of those positions). So one page is enough to reach the level where the keys vary (an
 * s3db.js id after `resource=<r>/data/id=`) without knowing the layout. Each range is listed
 * under the prefix all its keys share (sharedPrefix), so an empty one costs one request with an
 * empty answer, and a range's last page lists little past its end.
 *
 * Invariants:
 * - The ranges always cover (the last key handed on, end] exactly, in order, without overlap: a
 *   range is only ever cut at points strictly between its last listed key and its upTo, so every
 *   key lands in exactly one range, and a range's keys are handed on only after every earlier
 *   range's. The caller's order check (KeyCursor, mergeJoin) still sees a single sorted stream.
 * - Split points are printable ASCII after a prefix of a listed key, so they are valid keys to
 *   send as StartAfter and compare with S3's UTF-8 byte order as compareKeys does.
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
  /** Ranges the rest of a range is cut into where its page shows the keys vary (splitPoints). */
  fanOut: number;
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
    if (!range.done && ++received >= o.cutAfterPages) cutRest(range, o.key(items[0]!));
  };

  /** Cuts what is left of `range` (after its last key listed) into ranges, as far as there is room. */
  const cutRest = (range: Range<T>, first: string) => {
    const room = o.maxRanges - ranges.filter((r) => !r.done).length;
    if (room <= 0) return;
    // coarsest (largest) first: those are kept when there is no room for all
    const points = splitPoints(o.prefix, first, range.after!, range.upTo, o.fanOut).slice(0, room).sort(compareKeys);
    if (points.length === 0) return;
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

const LOWEST = 0x20; // ' ': the smallest character a split point uses
const END = 0x7f; // past '~': stands for "any larger character"

/**
 * Keys strictly between `last` and `upTo` (null: the end) at which to cut (last, upTo], coarsest
 * first: at each position from where `last` and `upTo` first differ up to where `first` and
 * `last` (one page's first and last keys) first differ, `last`'s characters before it followed by
 * the character halfway between `last`'s there and the largest (or `upTo`'s, at the first
 * position); at that last position, where the page shows the keys vary, `fanOut` characters
 * evenly spaced instead of one, so the rest of the range is listed `fanOut` ways at once from the
 * next round trip on. Positions where the characters are not printable ASCII give no point. All
 * keys start with `prefix`, and so do the points.
 */
export function splitPoints(prefix: string, first: string, last: string, upTo: string | null, fanOut = 1): string[] {
  if (upTo !== null && compareKeys(last, upTo) >= 0) return []; // (last, upTo] is empty: a point past upTo would overlap the next range (review-ranges F1)
  const from = Math.max(prefix.length, upTo === null ? 0 : commonLength(last, upTo));
  const to = Math.min(commonLength(first, last), last.length);
  const points: string[] = [];
  for (let at = from; at <= to; at++) {
    const own = at < last.length ? last.charCodeAt(at) : LOWEST - 1;
    let bound = upTo !== null && at === from && at < upTo.length ? upTo.charCodeAt(at) : END;
    if (bound > END) bound = END;
    if (own < LOWEST - 1 || own >= END) continue;
    if (at > 0 && isHighSurrogate(last.charCodeAt(at - 1))) continue;
    const ways = at === to ? Math.max(1, fanOut) : 1;
    let previous = own;
    for (let i = 1; i <= ways; i++) {
      const cut = own + Math.floor(((bound - own) * i) / (ways + 1));
      if (cut <= previous || cut >= bound || cut < LOWEST) continue;
      previous = cut;
      points.push(last.slice(0, at) + String.fromCharCode(cut));
    }
  }
  return points;
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
