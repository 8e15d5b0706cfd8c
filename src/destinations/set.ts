/**
 * DestinationSet: the engine's view of where backups go. One destination, or several (`driver:
 * 'multi'`) with a strategy:
 * - 'all'      every destination must store every object, else the backup fails;
 * - 'any'      the backup succeeds if at least one destination stores everything; per-destination
 *              status is recorded in the manifest;
 * - 'priority' the backup goes to the first destination (in the order given) that answers a probe
 *              when the backup starts; the others are not written.
 *
 * Invariants:
 * - Parts are encoded once and the same bytes are fanned out: every member that succeeds stores
 *   identical bytes (same sha256).
 * - Fan-out is paced by the slowest live member (each member has a bounded buffer, MEMBER_BUFFER):
 *   nothing buffers without bound. A member that fails is dropped from the rest of the backup.
 * - Reads try members in order and fall back to the next one on any failure of the consumer
 *   (missing object, wrong checksum, undecodable data); the error of each member is kept.
 */
import { drained } from '../streams.js';
import { PassThrough, type Readable } from 'node:stream';
import { BackupError, errorMessage, optionError } from '../errors.js';
import { failureAt, type Destination, type ObjectInfo, type WriteOptions, type WriteResult } from './types.js';

export type Strategy = 'all' | 'any' | 'priority';
export const STRATEGIES: readonly Strategy[] = ['all', 'any', 'priority'];
const MEMBER_BUFFER = 4 * 1024 * 1024;

export interface MemberResult {
  label: string;
  ok: boolean;
  result?: WriteResult;
  error?: string;
}

export class DestinationSet {
  readonly members: Destination[];
  readonly strategy: Strategy;
  /**
   * Members that failed during the current backup, with their error (see beginBackup). Reset when
   * a backup begins: one backup's failure is never recorded in the next one's manifest.
   */
  private failures = new Map<string, string>();
  private active: Destination[];

  constructor(members: Destination[], strategy: Strategy = 'all') {
    if (members.length === 0) throw optionError('destinations', 'must list at least one destination');
    if (!STRATEGIES.includes(strategy)) throw optionError('strategy', `"${String(strategy)}" is not one of ${STRATEGIES.join(', ')}`);
    const labels = new Set(members.map((m) => m.label));
    if (labels.size !== members.length) throw optionError('destinations', 'two destinations point at the same place');
    this.members = members;
    this.strategy = strategy;
    this.active = members;
  }

  get label(): string {
    return this.members.length === 1 ? this.members[0]!.label : `multi(${this.strategy}):[${this.members.map((m) => m.label).join(', ')}]`;
  }

  /** Labels of the members where `path` is (one stat each; a member that cannot answer counts as without it). */
  async holding(path: string): Promise<string[]> {
    const found = await Promise.all(this.members.map((m) => m.stat(path).catch(() => null)));
    return this.members.filter((_, i) => found[i]).map((m) => m.label);
  }

  /** Members that take part in the current backup. */
  get writers(): Destination[] {
    return this.active.filter((m) => !this.failures.has(m.label));
  }

  /**
   * Starts a backup: resets per-backup failures and, for 'priority', picks the first member that
   * can store a probe object. Throws when no member is usable.
   */
  async beginBackup(probePath: string): Promise<void> {
    this.failures = new Map();
    this.active = await this.plannedWriters(probePath);
  }

  /**
   * The members a backup begun now would write to: every member, or for 'priority' the first that
   * can store a probe object (throws ERR_NO_DESTINATION when none can). Changes nothing.
   */
  async plannedWriters(probePath: string): Promise<Destination[]> {
    if (this.strategy !== 'priority') return this.members;
    const errors: string[] = [];
    for (const member of this.members) {
      try {
        await member.write(probePath, Buffer.from('probe'));
        await member.delete([probePath]);
        return [member];
      } catch (err) {
        errors.push(failureAt(member.label, err));
      }
    }
    throw new BackupError('ERR_NO_DESTINATION', `no destination is usable (priority strategy): ${errors.join('; ')}`);
  }

  /** Per-member status of the current backup, for the manifest. */
  status(): { label: string; status: 'ok' | 'failed' | 'skipped'; error?: string }[] {
    return this.members.map((m) => {
      if (!this.active.includes(m)) return { label: m.label, status: 'skipped' };
      const error = this.failures.get(m.label);
      return error ? { label: m.label, status: 'failed', error } : { label: m.label, status: 'ok' };
    });
  }

  /**
   * Records that `member` failed the current backup (it is written to no more); throws when the
   * backup cannot go on without it ('all', or no member left).
   */
  markFailed(member: Destination, err: unknown): void {
    const message = errorMessage(err);
    this.failures.set(member.label, message);
    if (this.strategy === 'all' || this.writers.length === 0) {
      // A lone destination's own error already names it and says what to do.
      if (this.members.length === 1 && err instanceof BackupError) throw err;
      // keep a destination's own code (ERR_DESTINATION_FULL, _ACCESS, ...): alerts key on it
      const code = err instanceof BackupError && err.code.startsWith('ERR_DESTINATION_') ? err.code : 'ERR_DESTINATION_FAILED';
      const why = this.members.length > 1 && this.strategy === 'all' ? " (strategy 'all' needs every destination)" : '';
      throw new BackupError(code, `${member.label} failed: ${message}${why}`, { cause: err });
    }
  }

  /** Writes one object to every live member; returns the stored size and sha256 (same everywhere). */
  async write(path: string, body: Readable | Buffer, options: Pick<WriteOptions, 'bulk'> = {}): Promise<WriteResult> {
    const writers = this.writers;
    if (writers.length === 1) {
      try {
        return await writers[0]!.write(path, body, options);
      } catch (err) {
        this.markFailed(writers[0]!, err);
        throw err;
      }
    }
    if (Buffer.isBuffer(body)) return this.settle(path, await Promise.allSettled(writers.map((w) => w.write(path, body, options))), writers);
    return this.fanOut(path, body, writers, options);
  }

  /** Moves bulk objects into each live member's archive class, if it has one (Destination.archive). */
  async archive(paths: string[]): Promise<void> {
    for (const member of this.writers) {
      if (!member.archive) continue;
      try {
        await member.archive(paths);
      } catch (err) {
        this.markFailed(member, err);
      }
    }
  }

  private async fanOut(path: string, source: Readable, writers: Destination[], options: Pick<WriteOptions, 'bulk'>): Promise<WriteResult> {
    const live = new Map<Destination, PassThrough>();
    const outcomes = writers.map((w) => {
      const pipe = new PassThrough({ highWaterMark: MEMBER_BUFFER });
      // A failure reaches the caller through `done` (the member's write); destroying the pipe with
      // the error when the source fails must not also raise it as an uncaught 'error' event.
      pipe.on('error', () => undefined);
      live.set(w, pipe);
      const done = w.write(path, pipe, options);
      done.catch(() => {
        live.delete(w);
        pipe.destroy();
      });
      return done;
    });
    const allSettled = Promise.allSettled(outcomes);
    try {
      for await (const chunk of source) {
        const waits: Promise<unknown>[] = [];
        for (const pipe of live.values()) {
          if (!pipe.write(chunk)) waits.push(drained(pipe));
        }
        if (live.size === 0) break;
        if (waits.length > 0) await Promise.all(waits);
      }
      for (const pipe of live.values()) pipe.end();
    } catch (err) {
      for (const pipe of live.values()) pipe.destroy(err as Error);
      await allSettled;
      throw err;
    }
    return this.settle(path, await allSettled, writers);
  }

  private settle(path: string, settled: PromiseSettledResult<WriteResult>[], writers: Destination[]): WriteResult {
    let first: WriteResult | undefined;
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') {
        if (first && first.sha256 !== s.value.sha256) {
          this.markFailed(writers[i]!, new Error(`stored bytes of ${path} differ from ${writers[0]!.label}`));
        }
        first ??= s.value;
      } else {
        this.markFailed(writers[i]!, s.reason);
      }
    });
    if (!first) throw new BackupError('ERR_DESTINATION_FAILED', `every destination failed to store ${path}`);
    return first;
  }

  /**
   * Reads `path` from the first member (of `labels`, default all) for which `consume` succeeds.
   * `consume` must fully check what it reads (checksum, decoding); if it throws, the next member is
   * tried. Fails with ERR_ALL_DESTINATIONS_FAILED listing every member's error.
   */
  async readWithFallback<T>(path: string, consume: (stream: Readable, member: Destination) => Promise<T>, labels?: string[]): Promise<{ value: T; member: Destination; failures: { label: string; error: string }[] }> {
    const failures: { label: string; error: string; err: unknown }[] = [];
    for (const member of this.members) {
      if (labels && !labels.includes(member.label)) continue;
      try {
        const stream = await member.read(path);
        const value = await consume(stream, member);
        return { value, member, failures: failures.map(({ label, error }) => ({ label, error })) };
      } catch (err) {
        failures.push({ label: member.label, error: errorMessage(err), err });
      }
    }
    if (failures.length === 1) throw failures[0]!.err;
    throw new BackupError('ERR_ALL_DESTINATIONS_FAILED', `could not read ${path} from any destination: ${failures.map((f) => `${f.label}: ${f.error}`).join('; ')}`, {
      details: { failures: failures.map(({ label, error }) => ({ label, error })) },
    });
  }

  /**
   * Union of every member's objects under `prefix` (first member wins for duplicates), sorted.
   * A member that cannot be listed while another can is passed over and told to `unlisted`.
   */
  async listMerged(prefix: string, unlisted: (label: string, error: string) => void = () => undefined): Promise<(ObjectInfo & { labels: string[] })[]> {
    const byPath = new Map<string, ObjectInfo & { labels: string[] }>();
    const failures: { label: string; error: string }[] = [];
    const codes = new Set<string>();
    for (const member of this.members) {
      try {
        for await (const info of member.list(prefix)) {
          const seen = byPath.get(info.path);
          if (seen) seen.labels.push(member.label);
          else byPath.set(info.path, { ...info, labels: [member.label] });
        }
      } catch (err) {
        failures.push({ label: member.label, error: failureAt(member.label, err) });
        codes.add(err instanceof BackupError ? err.code : '');
      }
    }
    if (failures.length === this.members.length) {
      // every destination failed the same way (a missing bucket, denied access): that code is the news
      const only = codes.size === 1 ? [...codes][0] : undefined;
      throw new BackupError(only?.startsWith('ERR_DESTINATION_') ? only : 'ERR_DESTINATION_FAILED', `could not list any destination: ${failures.map((f) => f.error).join('; ')}`);
    }
    for (const f of failures) unlisted(f.label, f.error);
    return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** Deletes the paths from every member; a member that fails is reported, the others still run. */
  async delete(paths: string[]): Promise<void> {
    const settled = await Promise.allSettled(this.members.map((m) => m.delete(paths)));
    const errors = settled.flatMap((s, i) => (s.status === 'rejected' ? [failureAt(this.members[i]!.label, s.reason)] : []));
    if (errors.length > 0) throw new BackupError('ERR_DESTINATION_FAILED', `delete failed: ${errors.join('; ')}`);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.members.map((m) => m.close()));
  }
}
