/**
 * Backups that a restore or a verification of this process is reading right now. Deletion
 * (deleteBackup, retention) leaves them alone while they are read: a backup must not vanish under
 * the restore that needs it, which would leave the target half written.
 *
 * Invariants:
 * - Readers pin every backup they read (a backup's whole chain, `manifest.chain`) and release the
 *   pin in a `finally`; pins count, so two readers of one backup both hold it.
 * - The scope is this process. Deleting in another process is kept out of a restore by the runbook
 *   (stop the schedule of every instance first), not by this.
 */
export class InUse {
  private readonly counts = new Map<string, number>();

  /** Pins `ids` until the returned function is called (calling it again does nothing). */
  pin(ids: readonly string[]): () => void {
    const pinned = [...new Set(ids)];
    for (const id of pinned) this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const id of pinned) {
        const n = (this.counts.get(id) ?? 1) - 1;
        if (n > 0) this.counts.set(id, n);
        else this.counts.delete(id);
      }
    };
  }

  has(id: string): boolean {
    return this.counts.has(id);
  }
}
