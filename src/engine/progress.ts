/**
 * Progress reporting for backup, verify, restore and index repair: objects and bytes done, total when known
 * (an estimate from the previous backup counts as known), rate and ETA.
 *
 * Invariant: the callback runs at most once per `intervalMs` (default 1 s) plus once at the end, so
 * a listener can never slow a large backup down; a throwing listener is ignored.
 */
export interface ProgressEvent {
  id: string;
  /** 'repair': recoverBackups() reading a backup's parts to rebuild its index. */
  phase: 'backup' | 'verify' | 'restore' | 'repair';
  objects: number;
  bytes: number;
  /** Expected objects, when known or estimated (null otherwise). */
  totalObjects: number | null;
  elapsedMs: number;
  objectsPerSecond: number;
  bytesPerSecond: number;
  /** Seconds left, when a total is known and a second has passed (null before). */
  etaSeconds: number | null;
  done: boolean;
}

/** No ETA before this much time: the first event comes at the first object. */
const ETA_AFTER_MS = 1000;

export class ProgressMeter {
  private objects = 0;
  private bytes = 0;
  private readonly startedAt = Date.now();
  private lastEmit = 0;

  constructor(
    private readonly id: string,
    private readonly phase: ProgressEvent['phase'],
    private readonly totalObjects: number | null,
    private readonly listener: ((event: ProgressEvent) => void) | undefined,
    private readonly intervalMs = 1000,
  ) {}

  add(objects: number, bytes: number): void {
    this.objects += objects;
    this.bytes += bytes;
    if (!this.listener) return;
    const now = Date.now();
    if (now - this.lastEmit >= this.intervalMs) {
      this.lastEmit = now;
      this.emit(false);
    }
  }

  finish(): void {
    if (this.listener) this.emit(true);
  }

  private emit(done: boolean): void {
    const elapsedMs = Math.max(1, Date.now() - this.startedAt);
    const objectsPerSecond = (this.objects * 1000) / elapsedMs;
    const total = this.totalObjects === null ? null : Math.max(this.totalObjects, this.objects);
    const event: ProgressEvent = {
      id: this.id,
      phase: this.phase,
      objects: this.objects,
      bytes: this.bytes,
      totalObjects: done ? this.objects : total,
      elapsedMs,
      objectsPerSecond,
      bytesPerSecond: (this.bytes * 1000) / elapsedMs,
      // a rate measured over less than a second (the first event comes at the first object) says nothing of what is left
      etaSeconds: done ? 0 : total !== null && objectsPerSecond > 0 && elapsedMs >= ETA_AFTER_MS ? (total - this.objects) / objectsPerSecond : null,
      done,
    };
    try {
      this.listener!(event);
    } catch {
      // a listener must never break the operation it watches
    }
  }
}
