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

export async function* mergeByKey<L, R>(left: MergeSide<L>, right: MergeSide<R>): AsyncIterable<MergeStep<L, R>> {
  const a = ordered(left)[Symbol.asyncIterator]();
  const b = ordered(right)[Symbol.asyncIterator]();
  let x = await a.next();
  let y = await b.next();
  while (!x.done || !y.done) {
    const kx = x.done ? null : left.key(x.value);
    const ky = y.done ? null : right.key(y.value);
    if (ky !== null && (kx === null || ky < kx)) {
      yield { key: ky, right: y.value as R };
      y = await b.next();
    } else if (kx !== null && (ky === null || kx < ky)) {
      yield { key: kx, left: x.value as L };
      x = await a.next();
    } else {
      yield { key: kx as string, left: x.value as L, right: y.value as R };
      x = await a.next();
      y = await b.next();
    }
  }
}

/** Passes `side`'s items through, failing at the first one not strictly after its predecessor. */
async function* ordered<T>(side: MergeSide<T>): AsyncIterable<T> {
  let previous: string | null = null;
  for await (const item of side.items) {
    const key = side.key(item);
    if (previous !== null && !(previous < key)) {
      throw new BackupError('ERR_KEY_ORDER', `${side.name} listed "${key}" after "${previous}": listings must be sorted by key for exact incremental backups and restores`);
    }
    previous = key;
    yield item;
  }
}
