/**
 * Full outer merge-join of two streams sorted by key (code-point order, as S3 lists): one step
 * per distinct key, with the item of each side that has it. Used where a backup index meets a
 * listing (incremental planning, restore planning); memory is one item per side.
 * Invariant relied on: each side is strictly ascending; a side that is not fails with
 * ERR_KEY_ORDER naming it, instead of producing a wrong plan.
 */
import { BackupError } from '../errors.js';

export interface MergeSide<T> {
  items: AsyncIterable<T>;
  key: (item: T) => string;
  /** Named in the ERR_KEY_ORDER message, e.g. "the database client". */
  name: string;
}

export interface MergeStep<L, R> {
  key: string;
  left?: L;
  right?: R;
}

/**
 * Key order: code points, which is UTF-8 byte order, the order S3 lists keys in. JS `<` compares
 * UTF-16 code units instead, which differs once keys mix U+E000..U+FFFF (e.g. fullwidth letters)
 * with characters above U+FFFF (e.g. emoji, written as surrogates D800..DFFF): every comparison of
 * object keys in this package goes through here.
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    // a surrogate stands for a code point above U+FFFF: after every other UTF-16 unit
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

export async function* mergeByKey<L, R>(left: MergeSide<L>, right: MergeSide<R>): AsyncIterable<MergeStep<L, R>> {
  const a = ordered(left)[Symbol.asyncIterator]();
  const b = ordered(right)[Symbol.asyncIterator]();
  let x = await a.next();
  let y = await b.next();
  while (!x.done || !y.done) {
    const kx = x.done ? null : left.key(x.value);
    const ky = y.done ? null : right.key(y.value);
    const order = kx === null || ky === null ? 0 : compareKeys(kx, ky);
    if (ky !== null && (kx === null || order > 0)) {
      yield { key: ky, right: y.value as R };
      y = await b.next();
    } else if (kx !== null && (ky === null || order < 0)) {
      yield { key: kx, left: x.value as L };
      x = await a.next();
    } else {
      yield { key: kx as string, left: x.value as L, right: y.value as R };
      x = await a.next();
      y = await b.next();
    }
  }
}

/** `side`'s items, failing with ERR_KEY_ORDER (naming the side) at the first one not strictly after its predecessor. */
export async function* ordered<T>(side: MergeSide<T>): AsyncIterable<T> {
  let previous: string | null = null;
  for await (const item of side.items) {
    const key = side.key(item);
    if (previous !== null && compareKeys(previous, key) >= 0) {
      throw new BackupError('ERR_KEY_ORDER', `${side.name} listed "${key}" after "${previous}": listings must be sorted by key for exact incremental backups and restores`);
    }
    previous = key;
    yield item;
  }
}
