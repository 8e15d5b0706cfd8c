/**
 * Runs tasks one at a time per key, in the order they were queued; tasks of different keys run
 * side by side. Used so that two restores into one database in this process wait for each other
 * (at once, their writes and deletes interleave and the result can be neither backup).
 *
 * Invariant: a task's failure never stops the ones queued after it, and a key is forgotten once
 * its last task has ended (the map holds only keys with work queued).
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const run = before.then(task);
    const tail = run.catch(() => undefined);
    this.tails.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
