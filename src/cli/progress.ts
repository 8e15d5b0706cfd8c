/**
 * Shows the plugin's `plg:backup:progress` events on stderr: a progress bar on a terminal
 * (cli-progress, a well-kept library that redraws in place and handles terminal width), and on
 * anything else (a log file, CI, `ssh ... | tee`) one plain line per phase at most every 10 s, plus
 * its last. A quiet spell (an event with `idleMs`: no object done for 30 s, and every 30 s after)
 * gets a line of its own in both, saying how long and what may cause it. Invariant: it only ever
 * writes to stderr, so `--json` output on stdout stays parseable.
 */
import cliProgress from 'cli-progress';
import type { ProgressEvent } from '../engine/progress.js';
import { bytes, count, duration } from './format.js';

const LINE_EVERY_MS = 10_000;

export class ProgressDisplay {
  private bar: cliProgress.SingleBar | null = null;
  private phase: string | null = null;
  private lastLine = 0;
  private last: ProgressEvent | null = null;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  update(e: ProgressEvent): void {
    this.last = e;
    if (e.idleMs > 0) this.writeQuiet(e);
    else if (this.stream.isTTY) this.drawBar(e);
    else this.writeLine(e);
  }

  /** Ends a bar in progress (before an error or the result is printed). */
  stop(): void {
    this.bar?.stop();
    this.bar = null;
    this.phase = null;
  }

  /**
   * On Ctrl-C (or SIGTERM): ends a bar in progress and says how far the phase under way had got,
   * which the last line, written up to 10 s before, may not (walk-unch F3: "1 of 9,051" after
   * about 4,000 were written). The plugin's events come at most every progressIntervalMs: "at least".
   */
  interrupted(): void {
    const e = this.last;
    this.stop();
    if (e === null || e.done) return;
    const of = e.totalObjects === null ? '' : ` of ${count(e.totalObjects)}`;
    this.stream.write(`${e.phase}: at least ${count(e.objects)}${of} ${unitOf(e)} done when interrupted\n`);
  }

  private drawBar(e: ProgressEvent): void {
    const payload = { phase: e.phase.padEnd(7), unit: unitOf(e), data: bytes(e.bytes), rate: `${bytes(e.bytesPerSecond)}/s`, left: e.etaSeconds === null ? '?' : duration(e.etaSeconds * 1000) };
    const total = Math.max(e.totalObjects ?? 0, e.objects, 1);
    if (this.phase !== e.phase || this.bar === null) {
      this.stop();
      this.bar = new cliProgress.SingleBar(
        { stream: this.stream, format: '{phase} [{bar}] {value}/{total} {unit} | {data} | {rate} | {left} left', hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, e.objects, payload);
      this.phase = e.phase;
    }
    this.bar.setTotal(total);
    this.bar.update(e.objects, payload);
    if (e.done) this.stop();
  }

  /** Said as it is, on a line of its own (a bar in progress ends there; the next event draws a new one). */
  private writeQuiet(e: ProgressEvent): void {
    this.stop();
    this.lastLine = Date.now();
    const of = e.totalObjects === null ? '' : ` of ${count(e.totalObjects)}`;
    this.stream.write(`${e.phase}: no object done for ${duration(e.idleMs)} (${count(e.objects)}${of} so far): a large object, or a store (the database or the backup destination) slow to answer or not answering; it goes on, or ends in an error naming what failed\n`);
  }

  private writeLine(e: ProgressEvent): void {
    const now = Date.now();
    if (!e.done && this.phase === e.phase && now - this.lastLine < LINE_EVERY_MS) return;
    this.phase = e.done ? null : e.phase;
    this.lastLine = now;
    const of = e.totalObjects === null ? '' : ` of ${count(e.totalObjects)}`;
    const left = e.done || e.etaSeconds === null ? '' : `, about ${duration(e.etaSeconds * 1000)} left`;
    this.stream.write(`${e.phase}: ${count(e.objects)}${of} ${unitOf(e)}, ${bytes(e.bytes)}, ${bytes(e.bytesPerSecond)}/s${left}${e.done ? ' (done)' : ''}\n`);
  }
}

/** What a phase counts: a verification reads the backup's own files (parts and index), the others database objects (walk-27 F2: "verify: 6 of 6 objects" beside 6,567). */
export function unitOf(e: Pick<ProgressEvent, 'phase'>): string {
  return e.phase === 'verify' ? 'backup files' : 'objects';
}
