// mapOrdered: N tasks in flight pulling from one generator, results in input order whatever order
// they complete in (ranged reads, object fetches and restores all rely on it). Timers make later
// items finish first; a counter proves the bound on tasks in flight.
import { describe, expect, it } from 'vitest';
import { mapOrdered } from '../src/engine/s3db.js';

async function* count(n: number): AsyncIterable<number> {
  for (let i = 0; i < n; i++) yield i;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('mapOrdered', () => {
  it('keeps input order when later items complete first, and never runs more than `concurrency` at once', async () => {
    let running = 0;
    let peak = 0;
    const out: number[] = [];
    for await (const v of mapOrdered(count(24), 4, async (i) => {
      running++;
      peak = Math.max(peak, running);
      await sleep(4 * (8 - (i % 8))); // within each window the last item finishes first
      running--;
      return i * 10;
    })) out.push(v);
    expect(out).toEqual(Array.from({ length: 24 }, (_, i) => i * 10));
    expect(peak).toBe(4);
  });

  it('drops undefined results and rethrows the first failure in input order', async () => {
    const kept: number[] = [];
    for await (const v of mapOrdered(count(6), 3, async (i) => (i % 2 === 0 ? i : undefined))) kept.push(v);
    expect(kept).toEqual([0, 2, 4]);
    const seen: number[] = [];
    const failing = async () => {
      for await (const v of mapOrdered(count(6), 3, async (i) => {
        await sleep(i === 2 ? 1 : 20); // item 2 fails first in time, after 0 and 1 in order
        if (i >= 2) throw new Error(`item ${i} failed`);
        return i;
      })) seen.push(v);
    };
    await expect(failing()).rejects.toThrow('item 2 failed');
    expect(seen).toEqual([0, 1]);
  });
  it('with a byte budget, the weight of items in flight or held stays within it; one item heavier than the budget goes alone; order is kept', async () => {
    const weights = [10, 10, 10, 25, 5, 5, 100, 1, 1, 1, 30, 30];
    let inFlight = 0;
    let peak = 0;
    let heavyShared = false;
    const out: number[] = [];
    for await (const v of mapOrdered(count(weights.length), 64, async (i) => {
      inFlight += weights[i]!;
      if (weights[i]! > 40) heavyShared = inFlight !== weights[i];
      else peak = Math.max(peak, inFlight);
      await sleep(3 * (weights.length - i));
      return i;
    }, { weight: (i) => weights[i]!, budget: 40 })) {
      inFlight -= weights[v]!; // handed on: its bytes are the consumer's now
      out.push(v);
    }
    expect(out).toEqual(weights.map((_, i) => i));
    expect(peak).toBeLessThanOrEqual(40);
    expect(peak).toBeGreaterThan(30); // it does run several at once within the budget
    expect(heavyShared).toBe(false);
  });
  it('an item whose weight is not a number (a size a listing did not give) counts as 0 and does not switch the budget off for the others', async () => {
    const weights = [Number.NaN, 30, 30, 30];
    let inFlight = 0;
    let peak = 0;
    for await (const v of mapOrdered(count(weights.length), 64, async (i) => {
      inFlight += Number.isFinite(weights[i]) ? weights[i]! : 0;
      peak = Math.max(peak, inFlight);
      await sleep(5);
      return i;
    }, { weight: (i) => weights[i]!, budget: 40 })) {
      inFlight -= Number.isFinite(weights[v]) ? weights[v]! : 0;
    }
    expect(peak).toBeLessThanOrEqual(40);
  });
});
