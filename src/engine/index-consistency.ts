/**
 * Whether a backup's object index and its own parts say the same thing: the last step of a full
 * verification. Each part and the index are checked against their SHA-256 on their own, so an
 * index that names a version no part holds, parts whose keys are out of order, or an entry naming
 * a backup outside the chain pass those checks (a writer's defect, or a plaintext manifest edited
 * with its parts); a restore relies on them agreeing and, before this check, found out only while
 * writing (restore.ts: ERR_INDEX_CORRUPT, ERR_KEY_ORDER).
 *
 * The rules, for backup M, per group checked (FORMAT.md 4, 4.1 and 5):
 *  1. M's parts of the group, in the manifest's order (`seq` order, as written; readers read
 *     them so), hold keys of that group, strictly ascending; so does M's index.
 *  2. Every key the index names M for is held by a record of M's parts, not a tombstone.
 *  3. No record of M's parts (a version or a tombstone) is of a key the index names another
 *     backup for, and no tombstone is of a key it names M for.
 *  4. Every entry naming another backup is M's parent's entry for that key and names the same
 *     backup; a full names only itself, a group stored as logical records (3.1) only M.
 *  5. An incremental by this release's writer (`keepsUndefinedHeaders`; 0.1.0's incrementals
 *     could drop keys without a trace) drops exactly the parent's keys it records deletions of,
 *     in a group not of logical records: a key dropped otherwise is an object missing from the
 *     backup, which a restore would leave out without a word.
 *  And the manifest lists each part once (a restore reads every entry of its part list).
 * Checked for every member of a chain, they give what a restore of any member needs (by
 * induction over 4): each version the index names is in the parts of the backup it names (2),
 * and no later member's parts hold a newer version or a deletion of it (3). A version M's parts
 * hold and its index lacks is allowed: the index wins, a restore leaves it out and counts it in a
 * warning (e.g. a deletion an earlier build missed).
 *
 * How: the keys each side holds are summed up as a count and an XOR of a 128-bit hash of each
 * (KeyDigest; the keys are strictly ascending on each side, so no side repeats one). When the keys the index names M
 * for are exactly M's versions, and its parent's keys it lacks exactly M's tombstones (none, for
 * a full or an incremental whose parent is not checked), rules 2, 3 and 5 hold. A group where
 * they differ (an earlier build's backup, or damage; rare) is checked exactly: its parts are read
 * again, joined with the index (exactProblems); rule 5 is told when that finds nothing else. A difference that keeps count and digest is a
 * 2^-128 chance: the check guards against defects and damage, not against whoever can already
 * rewrite a plaintext manifest (and a restore still stops at what it misses).
 *
 * Invariants: memory holds a digest per group and a part's first and last key per part, whatever
 * the backup's size. An encrypted backup's object keys (record ids, partition values) are never
 * named in what this reports: verification results are stored in plaintext.
 */
import { BackupError } from '../errors.js';
import type { ArchiveHeader } from './archive.js';
import { DATABASE_GROUP, groupOfKey } from './layout.js';
import type { IndexEntry, Manifest, PartEntry } from './manifest.js';
import { compareKeys, mergeByKey } from './sorted-merge.js';

/**
 * A set of keys as a count and an XOR of a 128-bit hash of each (each key added once: see the top
 * comment). The hash is cyrb128 (bryc, public domain): not cryptographic, a tenth of the cost of
 * SHA-256 per key (review verify-cost: hashing was most of this check's cost). It only has to
 * tell sets apart that differ by accident: sets that are equal always have equal digests, so a
 * weak hash could only miss a disagreement, which a restore still stops at.
 */
class KeyDigest {
  count = 0;
  private readonly xor = new Int32Array(4);

  add(key: string): void {
    let h1 = 1779033703;
    let h2 = 3144134277;
    let h3 = 1013904242;
    let h4 = 2773480762;
    for (let i = 0; i < key.length; i++) {
      const k = key.charCodeAt(i);
      h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
      h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
      h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
      h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
    }
    h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
    h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
    h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
    h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
    h1 ^= h2 ^ h3 ^ h4;
    h2 ^= h1;
    h3 ^= h1;
    h4 ^= h1;
    this.xor[0]! ^= h1;
    this.xor[1]! ^= h2;
    this.xor[2]! ^= h3;
    this.xor[3]! ^= h4;
    this.count++;
  }

  /** Adds the keys of `other` (disjoint from this set's). */
  absorb(other: KeyDigest): void {
    for (let i = 0; i < 4; i++) this.xor[i]! ^= other.xor[i]!;
    this.count += other.count;
  }

  equals(other: KeyDigest): boolean {
    return this.count === other.count && this.xor.every((v, i) => v === other.xor[i]);
  }
}

/** Problems kept word for word (the rest are counted). */
const KEPT_PROBLEMS = 3;

export class Problems {
  private readonly kept: string[] = [];
  private more = 0;

  add(problem: string): void {
    if (this.kept.length < KEPT_PROBLEMS) this.kept.push(problem);
    else this.more++;
  }

  addAll(other: Problems): void {
    for (const p of other.kept) this.add(p);
    this.more += other.more;
  }

  get empty(): boolean {
    return this.kept.length === 0;
  }

  toString(): string {
    return `${this.kept.join('; ')}${this.more > 0 ? ` (and ${this.more} more)` : ''}`;
  }
}

/** How a key is named in a problem: not at all in an encrypted backup. */
function namer(encrypted: boolean): (key: string) => string {
  return encrypted ? () => 'a key (not named: the backup is encrypted)' : (key) => JSON.stringify(key);
}

/** What one part's records hold (rule 1 within the part; its keys summed up for rules 2 and 3). */
export class PartTally {
  readonly live = new KeyDigest();
  readonly dead = new KeyDigest();
  first: string | null = null;
  last: string | null = null;
  /** A record not after the one before it (rule 1): the part cannot be read in order again (stored.ts readPartRecords). */
  unordered = false;
  readonly problems = new Problems();
  private readonly name: (key: string) => string;

  constructor(
    /** `at`: its place in the manifest's part list, the order readers read a group's parts in. */
    readonly part: Pick<PartEntry, 'path' | 'group'> & { at: number },
    encrypted: boolean,
  ) {
    this.name = namer(encrypted);
  }

  add(header: Pick<ArchiveHeader, 'key' | 'deleted'>): void {
    const key = header.key;
    if (groupOfKey(key) !== this.part.group) {
      this.problems.add(`part ${this.part.path} of '${this.part.group}' holds ${this.name(key)}, of ${groupOfKey(key) === DATABASE_GROUP ? 'the database-level objects' : `'${groupOfKey(key)}'`}`);
    }
    if (this.last !== null && compareKeys(this.last, key) >= 0) {
      this.unordered = true;
      this.problems.add(`part ${this.part.path} holds ${this.name(key)} after ${this.name(this.last)} (not in key order)`);
    }
    this.first ??= key;
    this.last = key;
    (header.deleted ? this.dead : this.live).add(key);
  }
}

/** What M's index holds, joined with its parent's (rule 4, the index's order; its keys summed up for rules 2 and 3). */
export class IndexTally {
  /** Whether `dropped` is known: a full (it drops nothing), or an incremental joined with its parent's index. */
  constructor(readonly parentChecked: boolean) {}
  /** Per group: keys the index names M for. */
  readonly named = new Map<string, KeyDigest>();
  /** Per group: the parent's keys M's index lacks. */
  readonly dropped = new Map<string, KeyDigest>();
  /** Entries read (the caller compares them with the manifest's count). */
  entries = 0;
  readonly problems = new Problems();
}

/** A side of the index join out of key order: told as a problem, not thrown out of tallyIndex. */
class OutOfOrder extends Error {}

/** `iterator` as an iterable that a for-await leaving early does not close. */
function unclosable<T>(iterator: AsyncIterator<T>): AsyncIterable<T> {
  return { [Symbol.asyncIterator]: () => ({ next: () => iterator.next() }) };
}

/** What the join reads of an index entry: its key and the backup holding its version. */
export type IndexKeys = Pick<IndexEntry, 'k' | 'b'>;

export interface ParentIndex {
  id: string;
  /** Its entries, a decoded chunk's worth at a time (stored.ts readIndexBatches). */
  batches: AsyncIterable<IndexKeys[]>;
}

/**
 * Reads all of `own` (M's index, in its order, a chunk's worth of entries at a time) and joins it
 * with `parent`'s index: null for a full, or for an incremental whose parent is not checked (its
 * own verification failed): then rule 4 is only "names a backup of the chain", and the parent's
 * keys M drops are not known. Entries of groups not in `groups` (null: all) are passed over.
 * Errors reading either index are thrown; a problem of order or naming is told in the tally.
 * The join itself is synchronous within a chunk: it costs a few microseconds per entry, where an
 * async step per entry cost several times that (review verify-cost).
 */
export async function tallyIndex(manifest: Manifest, own: AsyncIterable<IndexKeys[]>, parent: ParentIndex | null, groups: Set<string> | null): Promise<IndexTally> {
  const tally = new IndexTally(parent !== null || manifest.chain.length === 1);
  const name = namer(Boolean(manifest.encryption));
  const logical = (g: string) => isLogical(manifest, g);
  const inScope = (g: string) => groups === null || groups.has(g);
  const digest = (map: Map<string, KeyDigest>, g: string) => map.get(g) ?? map.set(g, new KeyDigest()).get(g)!;
  const chain = new Set(manifest.chain);
  const theirs = parent ? parent.batches[Symbol.asyncIterator]() : null;
  let held: IndexKeys[] = []; // the parent's current chunk, from `at`
  let at = 0;
  let previous: string | null = null; // the parent's last key taken
  /** The parent's next entry, or null at its end (awaits only to read its next chunk). */
  const head = async (): Promise<IndexKeys | null> => {
    while (at >= held.length) {
      const next = theirs ? await theirs.next() : { done: true as const, value: undefined };
      if (next.done) return null;
      held = next.value;
      at = 0;
    }
    return held[at]!;
  };
  /** Takes the parent's head (checked to be after the one before). */
  const take = (entry: IndexKeys): void => {
    if (previous !== null && compareKeys(previous, entry.k) >= 0) throw outOfOrder(`the index of its parent ${parent!.id}`, previous, entry.k);
    previous = entry.k;
    at++;
  };
  const dropped = (entry: IndexKeys): void => {
    const group = groupOfKey(entry.k);
    if (inScope(group) && !logical(group)) digest(tally.dropped, group).add(entry.k);
  };
  const outOfOrder = (side: string, before: string, after: string) => new OutOfOrder(`${side} is not in key order${manifest.encryption ? '' : ` (${name(after)} after ${name(before)})`}`);
  let last: string | null = null; // M's last key
  let joining = true; // until a key out of order: then the rest is only counted
  try {
    for await (const batch of own) {
      tally.entries += batch.length;
      if (!joining) continue;
      try {
        for (const entry of batch) {
          const key = entry.k;
          if (last !== null && compareKeys(last, key) >= 0) throw outOfOrder(`the index of ${manifest.id}`, last, key);
          last = key;
          let before: IndexKeys | null = null;
          for (let p = at < held.length ? held[at]! : await head(); p !== null; p = at < held.length ? held[at]! : await head()) {
            const order = compareKeys(p.k, key);
            if (order > 0) break;
            take(p);
            if (order === 0) {
              before = p;
              break;
            }
            dropped(p);
          }
          const group = groupOfKey(key);
          if (!inScope(group)) continue;
          if (entry.b === manifest.id) {
            digest(tally.named, group).add(key);
            continue;
          }
          if (logical(group)) tally.problems.add(`its index names ${entry.b} for ${name(key)} of '${group}', which it stores as logical records (each of them names ${manifest.id})`);
          else if (!chain.has(entry.b)) tally.problems.add(`its index names ${entry.b} for ${name(key)}, which is not in its chain (${manifest.chain.join(', ')})`);
          else if (parent && before?.b !== entry.b) {
            tally.problems.add(`its index names ${entry.b} for ${name(key)}, where the index of its parent ${parent.id} ${before ? `names ${before.b}` : 'has no entry'}`);
          }
        }
      } catch (err) {
        if (!(err instanceof OutOfOrder)) throw err;
        tally.problems.add(err.message);
        joining = false;
      }
    }
    // the parent's keys after M's last
    if (joining) {
      try {
        for (let p = await head(); p !== null; p = await head()) {
          take(p);
          dropped(p);
        }
      } catch (err) {
        if (!(err instanceof OutOfOrder)) throw err;
        tally.problems.add(err.message);
      }
    }
  } finally {
    await theirs?.return?.();
  }
  return tally;
}

/** A group whose summed-up keys differ: checked exactly (exactProblems), then told as `droppedUnrecorded` says. */
export interface InexactGroup {
  group: string;
  /**
   * Set when the parent's keys M's index drops are not M's deletions, where M's writer drops
   * exactly those (rule 5: an incremental by this release's writer, its parent checked, a group
   * not of logical records): what to tell when the exact check finds nothing else.
   */
  droppedUnrecorded: string | null;
}

/** Whether M stores `group` as logical records (3.1), by its record or its selection (a selection that admitted none). */
export function isLogical(manifest: Manifest, group: string): boolean {
  return manifest.resources[group]?.logical === true || Object.hasOwn(manifest.selection?.logical ?? {}, group);
}

/**
 * Rule 1 across parts, the manifest's part list (a part listed twice is read twice by a restore),
 * and the summed-up check of rules 2, 3 and 5, for the groups checked, from every part's tally
 * (each checked part once, from a destination where it verified) and the index's; their own
 * problems (rules 1 and 4) included. `inexact`: the groups to check with exactProblems.
 */
export function disagreements(manifest: Manifest, parts: PartTally[], index: IndexTally, groups: Set<string> | null): { problems: Problems; inexact: InexactGroup[] } {
  const problems = new Problems();
  problems.addAll(index.problems);
  const name = namer(Boolean(manifest.encryption));
  const listed = new Set<string>();
  for (const p of manifest.parts) {
    if (groups !== null && !groups.has(p.group)) continue;
    if (listed.has(p.path)) problems.add(`its manifest lists part ${p.path} more than once (a restore would read it again)`);
    listed.add(p.path);
  }
  const byGroup = new Map<string, PartTally[]>();
  for (const p of [...parts].sort((a, b) => a.part.at - b.part.at)) {
    problems.addAll(p.problems);
    byGroup.set(p.part.group, [...(byGroup.get(p.part.group) ?? []), p]);
  }
  const inexact: InexactGroup[] = [];
  const checked = new Set([...byGroup.keys(), ...index.named.keys(), ...index.dropped.keys()].filter((g) => groups === null || groups.has(g)));
  for (const group of [...checked].sort()) {
    const live = new KeyDigest();
    const dead = new KeyDigest();
    let previous: PartTally | null = null;
    for (const p of byGroup.get(group) ?? []) {
      live.absorb(p.live);
      dead.absorb(p.dead);
      if (p.first === null) continue;
      if (previous && compareKeys(previous.last!, p.first) >= 0) {
        problems.add(`part ${p.part.path} begins with ${name(p.first)}, not after ${name(previous.last!)}, where part ${previous.part.path} ends (parts out of key order)`);
      }
      previous = p;
    }
    const dropped = index.parentChecked ? (index.dropped.get(group) ?? new KeyDigest()) : new KeyDigest();
    const unrecorded = !dropped.equals(dead) && index.parentChecked && manifest.chain.length > 1 && !isLogical(manifest, group) && manifest.keepsUndefinedHeaders === true;
    if (!(index.named.get(group) ?? new KeyDigest()).equals(live) || !dropped.equals(dead)) {
      inexact.push({
        group,
        droppedUnrecorded: unrecorded
          ? `'${group}': its index drops ${dropped.count} of its parent's objects, and its parts record ${dead.count} deletions${dropped.count === dead.count ? ' (not the same keys)' : ''}: an object dropped without its deletion is missing from the backup, and a restore would leave it out without a word`
          : null,
      });
    }
  }
  return { problems, inexact };
}

/**
 * Rules 2 and 3 for `group`, exactly: its records (M's parts of the group, in the manifest's order) joined
 * with M's index. Read errors are thrown.
 */
export async function exactProblems(manifest: Manifest, group: string, records: AsyncIterable<Pick<ArchiveHeader, 'key' | 'deleted'>>, index: AsyncIterable<IndexEntry>): Promise<Problems> {
  const problems = new Problems();
  const name = namer(Boolean(manifest.encryption));
  let named = 0;
  let found = 0;
  // the join may stop early (a key out of order): both sides are closed here, whatever happens
  const entries = ofGroup(index, group)[Symbol.asyncIterator]();
  const held = records[Symbol.asyncIterator]();
  try {
    const steps = mergeByKey<IndexEntry, Pick<ArchiveHeader, 'key' | 'deleted'>>(
      { items: unclosable(entries), key: (e) => e.k, name: `the index of ${manifest.id}` },
      { items: unclosable(held), key: (r) => r.key, name: `its parts of '${group}'` },
    );
    for await (const { key, left: entry, right: record } of steps) {
      if (entry?.b === manifest.id) named++;
      if (!entry || !record) continue; // (a version the index lacks is not restored: the index wins)
      if (entry.b !== manifest.id) problems.add(`its index names ${entry.b} for ${name(key)}, and its own parts hold ${record.deleted ? 'its deletion' : 'a version of it'}`);
      else if (record.deleted) problems.add(`its index names it for ${name(key)}, and its parts hold its deletion`);
      else found++;
    }
  } catch (err) {
    if (!(err instanceof BackupError && err.code === 'ERR_KEY_ORDER')) throw err;
    problems.add(`${err.message.startsWith('its parts') ? `its parts of '${group}' are` : 'its index is'} not in key order`);
    return problems;
  } finally {
    await Promise.all([entries.return?.(), held.return?.()]);
  }
  if (found !== named) problems.add(`'${group}': its index names ${named} objects stored by ${manifest.id}, and its parts hold ${found} of them`);
  return problems;
}

async function* ofGroup(index: AsyncIterable<IndexEntry>, group: string): AsyncIterable<IndexEntry> {
  for await (const entry of index) if (groupOfKey(entry.k) === group) yield entry;
}
