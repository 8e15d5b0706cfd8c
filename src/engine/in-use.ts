/**
 * Backups that a restore or a verification of one plugin is reading, and backups that plugin is
 * deleting. Deletion (deleteBackup, retention) leaves a read backup alone, and a read does not
 * start on a backup being deleted: a backup must not vanish under the restore that needs it,
 * which would leave the target half written.
 *
 * Invariants:
 * - Readers pin a backup by id before reading its manifest, then its whole chain
 *   (`manifest.chain`), and release the pin in a `finally`; pins count, so two readers of one
 *   backup both hold it.
 * - Deleters claim a backup (`claim`) right before removing it and release the claim after. Both
 *   `pin` and `claim` check the other side and record their own with no await in between (JS runs
 *   them atomically), so a backup is never pinned and claimed at once.
 * - The scope is one plugin instance. Another instance, in this process or another, is kept out
 *   of a restore by the runbook (stop the schedule of every instance first), not by this.
 */
import { BackupError } from '../errors.js';

export class InUse {
  private readonly pins = new Map<string, number>();
  private readonly claims = new Set<string>();

  /**
   * Pins `ids` until the returned function is called (calling it again does nothing). Throws
   * ERR_BACKUP_NOT_FOUND, pinning nothing, when one of them is being deleted.
   */
  pin(ids: readonly string[]): () => void {
    const pinned = [...new Set(ids)];
    const deleting = pinned.filter((id) => this.claims.has(id));
    if (deleting.length > 0) {
      throw new BackupError('ERR_BACKUP_NOT_FOUND', `backup ${deleting.join(', ')} is being deleted (by deleteBackup() or retention); pick another one from listBackups()`);
    }
    for (const id of pinned) this.pins.set(id, (this.pins.get(id) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const id of pinned) {
        const n = (this.pins.get(id) ?? 1) - 1;
        if (n > 0) this.pins.set(id, n);
        else this.pins.delete(id);
      }
    };
  }

  /** Whether a restore or verification is reading `id`. */
  has(id: string): boolean {
    return this.pins.has(id);
  }

  /**
   * Claims `ids` for deletion until the returned function is called; false (claiming nothing)
   * when one of them is pinned.
   */
  claim(ids: readonly string[]): (() => void) | false {
    if (ids.some((id) => this.pins.has(id))) return false;
    for (const id of ids) this.claims.add(id);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const id of ids) this.claims.delete(id);
    };
  }
}
