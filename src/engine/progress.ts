/**
 * Progress reporting for backup, verify, restore and index repair: objects and bytes done, total when known
 * (an estimate from the previous backup counts as known), rate and ETA.
 *
 * Invariant: the callback runs at most once per `intervalMs` (default 1 s) plus once at the end, so
 * a listener can never slow a large backup down; a throwing listener is ignored. While work runs
 * through watching(), a spell of QUIET_INTERVALS intervals (30 s by default) without an object
 * done is told too (`idleMs`), and again as often as it lasts as long again: a store that stopped
 * answering shows as a wait, not as silence.
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
  /** Milliseconds since the last object was done (since the start before the first): 0 but in an event that tells a quiet spell. */
  idleMs: number;
  done: boolean;
}

/** A spell of this many intervals without an object done is told (a large object takes a while; a store that does not answer, longer). */
export const QUIET_INTERVALS = 30;

/** No ETA before this much time: the first event comes at the first object. */
const ETA_AFTER_MS = 1000;
/**
 * Nor before this share of the objects is done, unless ETA_SURE_MS passed: the first seconds
 * (listing, a key unlocked, connections opened) are slower than the rest, and a rate taken then
 * said "about 31 minutes left" of a backup done 20 s later (walk-30 F12).
 */
const ETA_AFTER_SHARE = 0.01;
const ETA_SURE_MS = 10_000;

export class ProgressMeter {
  private objects = 0;
  private bytes = 0;
  private readonly startedAt = Date.now();
  private lastEmit = 0;
  private lastDone = this.startedAt;

  constructor(
    private readonly id: string,
    private readonly phase: ProgressEvent['phase'],
    private readonly totalObjects: number | null,
    private readonly listener: ((event: ProgressEvent) => void) | undefined,
    private readonly intervalMs = 1000,
  ) {}

  private get quietMs(): number {
    return QUIET_INTERVALS * this.intervalMs;
  }

  /** `work()`, with an event each time it goes QUIET_INTERVALS intervals without an object done (the timer ends with it). */
  async watching<T>(work: () => Promise<T>): Promise<T> {
    if (!this.listener) return work();
    const timer = setInterval(() => {
      const now = Date.now();
      if (now - this.lastDone < this.quietMs || now - this.lastEmit < this.quietMs) return;
      this.lastEmit = now;
      this.emit(false, now - this.lastDone);
    }, Math.max(1, Math.min(this.quietMs / 4, 5000)));
    timer.unref();
    try {
      return await work();
    } finally {
      clearInterval(timer);
    }
  }

  add(objects: number, bytes: number): void {
    this.objects += objects;
    this.bytes += bytes;
    this.lastDone = Date.now();
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

  /** Whether the rate so far says something of what is left (see ETA_AFTER_SHARE). */
  private rateSettled(elapsedMs: number, total: number): boolean {
    return elapsedMs >= ETA_AFTER_MS && (this.objects >= total * ETA_AFTER_SHARE || elapsedMs >= ETA_SURE_MS);
  }

  private emit(done: boolean, idleMs = 0): void {
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
      etaSeconds: done ? 0 : total !== null && objectsPerSecond > 0 && this.rateSettled(elapsedMs, total) ? (total - this.objects) / objectsPerSecond : null,
      idleMs,
      done,
    };
    try {
      this.listener!(event);
    } catch {
      // a listener must never break the operation it watches
    }
  }
}
