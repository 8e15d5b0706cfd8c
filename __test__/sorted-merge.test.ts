// mergeByKey: the full outer merge-join behind incremental planning and restore planning. Keys
// compare by code point (as S3 lists them), every key of both sides comes out once, in order, and
// a side that is not strictly ascending fails with ERR_KEY_ORDER naming that side.
import { describe, expect, it } from 'vitest';
import { compareKeys, mergeByKey, type MergeStep } from '../src/engine/sorted-merge.js';

async function* from(items: string[]): AsyncIterable<string> {
  for (const i of items) yield i;
}

async function merge(left: string[], right: string[]): Promise<Array<MergeStep<string, string>>> {
  const out: Array<MergeStep<string, string>> = [];
  const steps = mergeByKey({ items: from(left), key: (k) => k, name: 'the left side' }, { items: from(right), key: (k) => k, name: 'the right side' });
  for await (const s of steps) out.push(s);
  return out;
}

describe('mergeByKey', () => {
  it('yields every key once, in code-point order, with the item of each side that has it', async () => {
    // code point order: 'B' (0x42) < 'Z' (0x5a) < 'a' < 'c' < 'd' < 'e' (localeCompare would put 'a' before 'B')
    expect(await merge(['Z', 'a', 'c', 'd'], ['B', 'c', 'e'])).toEqual([
      { key: 'B', right: 'B' },
      { key: 'Z', left: 'Z' },
      { key: 'a', left: 'a' },
      { key: 'c', left: 'c', right: 'c' },
      { key: 'd', left: 'd' },
      { key: 'e', right: 'e' },
    ]);
  });

  it('either side may be empty', async () => {
    expect(await merge([], ['x', 'y'])).toEqual([{ key: 'x', right: 'x' }, { key: 'y', right: 'y' }]);
    expect(await merge(['x'], [])).toEqual([{ key: 'x', left: 'x' }]);
    expect(await merge([], [])).toEqual([]);
  });

  it('a side out of order or with a repeated key fails with ERR_KEY_ORDER naming that side', async () => {
    await expect(merge(['a', 'c', 'b'], ['a'])).rejects.toMatchObject({ code: 'ERR_KEY_ORDER', message: expect.stringContaining('the left side listed "b" after "c"') });
    await expect(merge(['a'], ['a', 'a'])).rejects.toMatchObject({ code: 'ERR_KEY_ORDER', message: expect.stringContaining('the right side listed "a" after "a"') });
  });

  it("accepts S3's order where UTF-16 order differs: U+E000..U+FFFF before characters above U+FFFF", async () => {
    // S3 lists by UTF-8 bytes: 'Ｔ' (U+FF34, EF BC B4) before '😀' (U+1F600, F0 9F 98 80); JS `<` says the opposite
    const s3Order = ['city=Ｔokyo', 'city=😀ville'];
    expect('city=😀ville' < 'city=Ｔokyo').toBe(true);
    expect(await merge(s3Order, ['city=😀ville'])).toEqual([
      { key: 'city=Ｔokyo', left: 'city=Ｔokyo' },
      { key: 'city=😀ville', left: 'city=😀ville', right: 'city=😀ville' },
    ]);
  });
});

describe('compareKeys', () => {
  it('orders like the UTF-8 bytes of the keys (as S3 lists them), for BMP, private-use, fullwidth and astral characters', () => {
    const alphabet = ['a', 'Z', '/', '=', 'é', '\u00ff', '\u0800', '\ud7ff', '\ue000', 'Ｔ', '\uffff', '😀', '𝄞', '\u{10ffff}'];
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % alphabet.length;
    const keys = Array.from({ length: 400 }, () => Array.from({ length: 1 + (next() % 6) }, () => alphabet[next()]).join(''));
    const byBytes = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
    expect([...keys].sort(compareKeys)).toEqual(byBytes);
    for (const a of keys.slice(0, 40)) for (const b of keys.slice(0, 40)) expect(Math.sign(compareKeys(a, b))).toBe(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  });
});
