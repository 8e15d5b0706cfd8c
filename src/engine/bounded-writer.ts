/**
 * Bounded concurrency for restore writes and checks: at most `limit` tasks in flight, and at most
 * `budget` bytes held by them (each task's `weight`: the body it writes; one heavier than the
 * budget runs alone), so memory stays bounded by bytes, not by `limit` x the largest object.
 * Invariants: the first failure is kept and thrown by the next run()/drain(), so a caller never
 * goes on writing after a failed write; and a writer exists only inside running(), which returns
 * or throws only once every task it ran has ended, so no write lands after a failure was reported
 * (a restore run again at once would race them; a process exiting on the error would cut them off).
 */
export class BoundedWriter {
  private readonly inFlight = new Map<Promise<void>, number>();
  private weight = 0;
  private failure: unknown = null;

  private constructor(
    private readonly limit: number,
    private readonly budget: number,
  ) {}

  /**
   * Runs `feed` with a new writer, then waits for its tasks: the first failure (of `feed` or of a
   * task) is thrown, after every task in flight has ended.
   */
  static async running<T>(limit: number, budget: number, feed: (writer: BoundedWriter) => Promise<T>): Promise<T> {
    const writer = new BoundedWriter(limit, budget);
    try {
      const result = await feed(writer);
      await writer.drain();
      return result;
    } finally {
      await writer.settle();
    }
  }

  async run(task: () => Promise<unknown>, weight = 0): Promise<void> {
    if (this.failure) throw this.failure;
    while (this.inFlight.size >= this.limit || (this.inFlight.size > 0 && this.weight + weight > this.budget)) await Promise.race(this.inFlight.keys());
    if (this.failure) throw this.failure;
    const p: Promise<void> = task()
      .then(() => undefined)
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => {
        this.weight -= weight;
        this.inFlight.delete(p);
      });
    this.weight += weight;
    this.inFlight.set(p, weight);
  }

  async drain(): Promise<void> {
    await Promise.all(this.inFlight.keys());
    if (this.failure) throw this.failure;
  }

  /** Waits for every task in flight to end, never throwing (their failures are kept, as above). */
  private async settle(): Promise<void> {
    await Promise.allSettled(this.inFlight.keys());
  }
}
