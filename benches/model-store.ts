/**
 * A ListObjectsV2 in memory, for the ranged listing's model test (__test__/ranged-model.test.ts)
 * and benchmark (benches/listing-model.ts), and the key shapes both list: sorted keys answered by
 * Prefix and StartAfter in pages of `pageSize`, after `answerAfterMs` (a store's round trip; the
 * model does not slow down with requests in flight, as a remote S3 does not). Counts requests and
 * the most in flight at once.
 */
import { compareKeys } from '../src/engine/sorted-merge.js';
import { mulberry32 } from './corpus.js';

export interface ModelStore {
  fetch(request: { startAfter: string | undefined; prefix: string }): Promise<{ items: string[]; truncated: boolean }>;
  readonly requests: number;
  readonly maxInFlight: number;
}

export function modelStore(sorted: readonly string[], pageSize: number, answerAfterMs: number): ModelStore {
  let requests = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  return {
    get requests() {
      return requests;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    async fetch({ startAfter, prefix }) {
      requests++;
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, answerAfterMs));
      inFlight--;
      // (binary search: the first key under `prefix` after `startAfter`)
      const from = startAfter !== undefined && compareKeys(startAfter, prefix) > 0 ? startAfter : prefix;
      let lo = 0;
      for (let hi = sorted.length; lo < hi; ) {
        const mid = (lo + hi) >> 1;
        const order = compareKeys(sorted[mid]!, from);
        if (order < 0 || (order === 0 && from === startAfter)) lo = mid + 1;
        else hi = mid;
      }
      const items: string[] = [];
      for (let i = lo; i < sorted.length && items.length < pageSize && sorted[i]!.startsWith(prefix); i++) items.push(sorted[i]!);
      const next = sorted[lo + items.length];
      return { items, truncated: next !== undefined && next.startsWith(prefix) };
    },
  };
}

/** `count` distinct keys under `prefix` of each shape of ids databases have, sorted (seeded: the same every run). */
export function keysOfShapes(count: number, prefix = 'app/db/'): Record<string, string[]> {
  const random = mulberry32(21);
  const draw = (chars: string, n: number) => Array.from({ length: n }, () => chars[Math.floor(random() * chars.length)]).join('');
  const NANOID = 'useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict';
  const HEX = '0123456789abcdef';
  const shapes: Record<string, (i: number) => string> = {
    "s3db.js's ids": () => `resource=users/data/id=${draw(NANOID, 22)}`,
    numbers: (i) => `resource=events/data/id=e${String(i).padStart(9, '0')}`,
    hex: () => `resource=events/data/id=${draw(HEX, 32)}`,
    uuid: () => `resource=events/data/id=${draw(HEX, 8)}-${draw(HEX, 4)}-4${draw(HEX, 3)}-a${draw(HEX, 3)}-${draw(HEX, 12)}`,
    'e-mail-like': () => `resource=users/data/id=${['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'][Math.floor(random() * 8)]}.${Math.floor(random() * 1e6)}@example.com`,
    // resources, partition references and sequential ids side by side
    layout: (i) => (i % 3 === 0 ? `resource=blobs/data/id=b${String(i).padStart(9, '0')}` : i % 3 === 1 ? `resource=events/data/id=${draw(NANOID, 22)}` : `resource=events/partition=byDay/day=2026-${String(1 + (i % 12)).padStart(2, '0')}-${String(1 + (i % 28)).padStart(2, '0')}/id=${draw(NANOID, 10)}`),
  };
  const out: Record<string, string[]> = {};
  for (const [shape, make] of Object.entries(shapes)) {
    const keys = new Set<string>();
    for (let i = 0; keys.size < count; i++) keys.add(`${prefix}${make(i)}`);
    out[shape] = [...keys].sort(compareKeys);
  }
  return out;
}
