/**
 * Bounded concurrency for restore writes and checks: at most `limit` tasks in flight, memory
 * bounded by what they hold. Invariant: the first failure is kept and thrown by the next
 * run()/drain(), so a caller never goes on writing after a failed write.
 */
/** Runs tasks with at most `limit` in flight; the first failure is thrown by the next run()/drain(). */
export class BoundedWriter {
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown = null;

  constructor(private readonly limit: number) {}

  async run(task: () => Promise<void>): Promise<void> {
    if (this.failure) throw this.failure;
    while (this.inFlight.size >= this.limit) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
    const p: Promise<void> = task()
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  async drain(): Promise<void> {
    await Promise.all(this.inFlight);
    if (this.failure) throw this.failure;
  }
}
