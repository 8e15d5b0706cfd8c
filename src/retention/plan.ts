/**
 * planRetention: decides which backups to keep and which to delete (pure, no I/O, deterministic).
 *
 * Invariants (docs/RETENTION.md explains each with examples):
 * 1. Only SUCCESSFUL backups (status undefined or 'completed', and verified !== false) are seen by
 *    the policy rules, so failed or unverified backups never fill a GFS slot or a count.
 * 2. Active backups (status 'running' | 'in_progress' | 'in-progress' | 'pending' | 'started') are
 *    never removed: a writer still owns them. Marking crashed ones 'failed' is the engine's job.
 * 3. Failed backups: only the newest one is kept, and only while no successful backup is newer
 *    (it explains the current failure); all others are removed. Unverified backups (verified ===
 *    false) likewise, and besides: an unverified backup is kept as long as the rules would keep it
 *    were it successful (a second pass of the rules over successful and unverified backups
 *    together), because verification failing on one part leaves the rest of it restorable. So a
 *    damaged backup is removed no earlier than it would be were every unverified backup good
 *    (they are judged together, which keeps a run of them bounded), and never takes a good one's
 *    slot.
 * 4. The newest successful backup is always kept, whatever the policy says.
 * 5. Chains: every kept backup pins its ancestors (its `chain`, else parentId recursively), so a
 *    kept incremental keeps its full and every incremental between them, also when one of them is
 *    missing from the list (its manifest lost: it may come back). Pinned backups do not count for
 *    the rules.
 * 6. Output lists are ordered newest first; ties keep input order. Every backup appears exactly once.
 */
import { BackupError } from '../errors.js';
import { parseRetentionDuration, subtractDuration, formatDuration } from './duration.js';
import { applyGfs } from './gfs.js';
import { validateRetentionPolicy, type NormalizedRetentionPolicy, type NormalizedSimplePolicy } from './policy.js';

export interface RetentionBackup {
  id: string;
  /** Date, epoch milliseconds, or an ISO string (a string without zone is read as UTC). */
  timestamp: Date | string | number;
  /** 'full' | 'incremental' | ... (informative; chains follow parentId). */
  type?: string;
  /** The backup this one is based on (incremental chains). */
  parentId?: string | null;
  /**
   * Ids from the chain's full backup to this one (a manifest's `chain`). When given, every one is
   * pinned, also past a member missing from the list; else parentId links are followed.
   */
  chain?: readonly string[];
  /** 'completed' (or undefined) = successful; 'running' etc. = active; anything else = failed. */
  status?: string;
  /** false = verification failed. */
  verified?: boolean;
  tags?: readonly string[];
}

export interface RetentionPlan {
  keep: Array<{ id: string; reasons: string[] }>;
  remove: Array<{ id: string; reason: string }>;
  /** Problems that do not stop the plan, e.g. an incremental whose parent is missing. */
  warnings: string[];
  /** The normalised policy the plan applied. */
  policy: NormalizedRetentionPolicy;
}

export const ACTIVE_STATUSES: readonly string[] = ['running', 'in_progress', 'in-progress', 'pending', 'started'];

type Kind = 'successful' | 'active' | 'failed' | 'unverified';

interface Entry {
  id: string;
  time: number;
  index: number;
  kind: Kind;
  backup: RetentionBackup;
  reasons: string[];
  removeReason?: string;
}

function inputError(problem: string, index: number): BackupError {
  return new BackupError('ERR_INVALID_RETENTION_INPUT', `planRetention: backups[${index}] ${problem}`, { details: { index } });
}

const NAIVE_ISO = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$/;

/** Epoch ms of a timestamp; strings without a zone are UTC (never the host's local time). */
export function toEpochMs(value: Date | string | number): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'number') return value;
  if (typeof value === 'string') {
    const text = value.trim();
    // Date.parse rolls an impossible day over ('2026-02-30' is 2 March): such a date is unparseable
    if (!calendarDateExists(text)) return Number.NaN;
    if (NAIVE_ISO.test(text)) return Date.parse(text.length === 10 ? `${text}T00:00:00Z` : `${text.replace(' ', 'T')}Z`);
    return Date.parse(text);
  }
  return Number.NaN;
}

/** False for a string that starts with an ISO date whose day its month lacks (2026-02-30, 2025-02-29, +002026-02-30). */
function calendarDateExists(text: string): boolean {
  const ymd = /^([+-]\d{6}|\d{4})-(\d{2})-(\d{2})/.exec(text);
  if (!ymd) return true;
  const [year, month, day] = [Number(ymd[1]), Number(ymd[2]), Number(ymd[3])];
  const lastDay = new Date(0);
  lastDay.setUTCFullYear(year, month, 0); // (Date.UTC would read years 0-99 as 1900-1999)
  return month >= 1 && month <= 12 && day >= 1 && day <= lastDay.getUTCDate();
}

function classify(b: RetentionBackup): Kind {
  const status = b.status;
  if (status !== undefined && status !== 'completed') return ACTIVE_STATUSES.includes(status) ? 'active' : 'failed';
  return b.verified === false ? 'unverified' : 'successful';
}

function describePolicy(p: NormalizedRetentionPolicy): string {
  if (p.policy === 'simple') {
    const parts = [];
    if (p.count !== 0) parts.push(`count ${p.count}`);
    if (p.maxAge !== undefined) parts.push(`maxAge ${formatDuration(parseRetentionDuration(p.maxAge, 'retention.maxAge'))}`);
    return `simple (${parts.join(', ')})`;
  }
  const parts: string[] = [];
  for (const k of ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) if (p[k] !== 0) parts.push(`${k} ${p[k]}`);
  for (const k of ['within', 'withinHourly', 'withinDaily', 'withinWeekly', 'withinMonthly', 'withinYearly'] as const) {
    const v = p[k];
    if (v !== undefined) parts.push(`${k} ${formatDuration(parseRetentionDuration(v, `retention.${k}`))}`);
  }
  if (p.tags.length > 0) parts.push(`tags ${p.tags.map((t) => `[${t.join(', ')}]`).join(' ')}`);
  return `gfs (${parts.join(', ')})`;
}

function applySimple(entries: readonly Entry[], policy: NormalizedSimplePolicy, now: number): string[][] {
  const cutoff = policy.maxAge === undefined ? null : subtractDuration(now, parseRetentionDuration(policy.maxAge, 'retention.maxAge'));
  const ageLabel = policy.maxAge === undefined ? '' : formatDuration(parseRetentionDuration(policy.maxAge, 'retention.maxAge'));
  return entries.map((e, i) => {
    const reasons: string[] = [];
    if (policy.count === -1 || i < policy.count) reasons.push(`newest ${policy.count === -1 ? 'all' : policy.count} (#${i + 1})`);
    if (cutoff !== null && e.time > cutoff) reasons.push(`younger than maxAge ${ageLabel}`);
    return reasons;
  });
}

/** The reasons the policy's rules give each of `entries` (newest first), seen as the only backups there are. */
function applyRules(entries: readonly Entry[], policy: NormalizedRetentionPolicy, now: number): string[][] {
  if (policy.policy === 'simple') return applySimple(entries, policy, now);
  return applyGfs(entries.map((e) => ({ time: e.time, tags: e.backup.tags })), policy, now).map((d) => d.reasons);
}

/**
 * Plans retention for `backups` under `policy` (validated with validateRetentionPolicy).
 * `now` (default: the current time) is used by simple `maxAge`, and caps "latest" for GFS `within`
 * rules (backups dated after `now` are kept by the rules but do not move the window).
 */
export function planRetention(backups: readonly RetentionBackup[], policy: unknown, now: Date | number | string = Date.now()): RetentionPlan {
  const normalized = validateRetentionPolicy(policy);
  const nowMs = toEpochMs(now);
  if (!Number.isFinite(nowMs)) throw new BackupError('ERR_INVALID_RETENTION_INPUT', `planRetention: now (${String(now)}) is not a valid time`);
  if (!Array.isArray(backups)) throw new BackupError('ERR_INVALID_RETENTION_INPUT', 'planRetention: backups must be an array');

  const byId = new Map<string, Entry>();
  const entries: Entry[] = backups.map((backup, index) => {
    if (backup === null || typeof backup !== 'object') throw inputError('is not an object', index);
    if (typeof backup.id !== 'string' || backup.id === '') throw inputError('has no string id', index);
    if (byId.has(backup.id)) throw inputError(`repeats id "${backup.id}"`, index);
    const time = toEpochMs(backup.timestamp);
    if (!Number.isFinite(time)) throw inputError(`("${backup.id}") has an invalid timestamp ${JSON.stringify(backup.timestamp)}`, index);
    const entry: Entry = { id: backup.id, time, index, kind: classify(backup), backup, reasons: [] };
    byId.set(entry.id, entry);
    return entry;
  });
  entries.sort((a, b) => b.time - a.time || a.index - b.index);

  const successful = entries.filter((e) => e.kind === 'successful');
  const newestSuccess = successful[0];
  const label = describePolicy(normalized);

  // 1. Policy rules over successful backups only.
  applyRules(successful, normalized, nowMs).forEach((reasons, i) => successful[i].reasons.push(...reasons));
  for (const e of successful) if (e.reasons.length === 0) e.removeReason = `not kept by any rule of ${label}`;

  // 1b. Unverified backups stay as long as the rules would keep them were they successful.
  if (entries.some((e) => e.kind === 'unverified')) {
    const completed = entries.filter((e) => e.kind === 'successful' || e.kind === 'unverified');
    applyRules(completed, normalized, nowMs).forEach((reasons, i) => {
      const e = completed[i];
      if (e.kind === 'unverified' && reasons.length > 0) e.reasons.push(`unverified, kept as long as a good backup would be: ${reasons.join(', ')}`);
    });
  }

  // 2. The newest successful backup is always kept.
  if (newestSuccess && newestSuccess.reasons.length === 0) {
    newestSuccess.reasons.push('newest successful backup (always kept)');
    delete newestSuccess.removeReason;
  }

  // 3. Active, failed and unverified backups.
  let newestFailedSeen = false;
  let newestUnverifiedSeen = false;
  for (const e of entries) {
    if (e.kind === 'active') {
      e.reasons.push(`status '${e.backup.status}': still being written, never pruned`);
    } else if (e.kind === 'failed' || e.kind === 'unverified') {
      const what = e.kind === 'failed' ? `failed backup (status '${e.backup.status}')` : 'unverified backup (verified: false)';
      const first = e.kind === 'failed' ? !newestFailedSeen : !newestUnverifiedSeen;
      if (e.kind === 'failed') newestFailedSeen = true;
      else newestUnverifiedSeen = true;
      if (e.reasons.length > 0) {
        // kept by the rules (1b)
      } else if (newestSuccess && newestSuccess.time >= e.time) {
        e.removeReason = `${what}, superseded by successful backup ${newestSuccess.id}${e.kind === 'unverified' ? ` and not kept by any rule of ${label} were it good` : ''}`;
      } else if (!first) {
        e.removeReason = `${what}, a newer ${e.kind} backup is kept instead`;
      } else {
        e.reasons.push(`newest ${e.kind} backup, kept until a newer successful backup exists`);
      }
    }
  }

  // 4. Chains: every kept backup pins its ancestors.
  const warnings: string[] = [];
  for (const e of entries) {
    if (e.reasons.length === 0 || e.reasons[0].startsWith('needed by')) continue;
    pinAncestors(e, byId, warnings);
  }
  // 4b. ... and so does every backup kept so, to a closure: a walk above stops at the first
  // ancestor kept by the rules, or at a hole, while a backup past them may hold a `chain` that
  // reaches further (an incremental without one, on one with it; a parent kept whose parentId
  // walk ends at a lost manifest that the chain of its child lists past).
  const pending = entries.filter((e) => e.reasons.length > 0);
  while (pending.length > 0) {
    const e = pending.pop()!;
    for (const parent of ancestorsOf(e, byId, warnOnce(warnings))) {
      if (parent.reasons.length > 0) continue;
      parent.reasons.push(`needed by ${e.id} (chain)`);
      delete parent.removeReason;
      pending.push(parent);
    }
  }

  const keep: RetentionPlan['keep'] = [];
  const remove: RetentionPlan['remove'] = [];
  for (const e of entries) {
    if (e.reasons.length > 0) keep.push({ id: e.id, reasons: e.reasons });
    else remove.push({ id: e.id, reason: e.removeReason ?? `not kept by any rule of ${label}` });
  }
  return { keep, remove, warnings, policy: normalized };
}

function warnOnce(warnings: string[]): (msg: string) => void {
  return (msg) => void (warnings.includes(msg) ? undefined : warnings.push(msg));
}

function pinAncestors(start: Entry, byId: Map<string, Entry>, warnings: string[]): void {
  const warn = warnOnce(warnings);
  const reason = `needed by ${start.id} (chain)`;
  for (const parent of ancestorsOf(start, byId, warn)) {
    if (parent.reasons.length > 0 && !parent.reasons[0].startsWith('needed by')) {
      // Already kept on its own: its own pass pins the rest of the chain.
      parent.reasons.push(reason);
      return;
    }
    if (!parent.reasons.includes(reason)) parent.reasons.push(reason);
    delete parent.removeReason;
  }
}

/**
 * The listed backups `start` needs, nearest first: by its `chain` where given, past members
 * missing from the list (a lost manifest may come back: the backups on both sides of the hole
 * must still be there when it does); else by following parentId to the first one missing.
 */
function ancestorsOf(start: Entry, byId: Map<string, Entry>, warn: (msg: string) => void): Entry[] {
  const chain = start.backup.chain;
  if (chain && chain.length > 0) {
    const out: Entry[] = [];
    for (const id of [...chain].reverse()) {
      if (id === start.id) continue;
      const member = byId.get(id);
      if (member) out.push(member);
      else warn(`backup ${start.id} needs ${id}, which is not in the list (a lost or unreadable manifest? recoverBackups() puts one back from its copy): the rest of its chain is kept`);
    }
    return out;
  }
  const out: Entry[] = [];
  const seen = new Set<string>([start.id]);
  for (let child = start; ; ) {
    const parentId = child.backup.parentId;
    if (parentId === undefined || parentId === null || parentId === '') {
      if (child.backup.type === 'incremental' && child === start) warn(`incremental backup ${child.id} has no parentId: its chain cannot be pinned`);
      return out;
    }
    const parent = byId.get(parentId);
    if (!parent) {
      warn(`backup ${child.id} needs ${parentId}, which is not in the list (a lost or unreadable manifest? recoverBackups() puts one back from its copy; if it was deleted, ${child.id} cannot be restored)`);
      return out;
    }
    if (seen.has(parent.id)) {
      // named by the loop's least id, so that walks from any of its members warn once
      const path = [start, ...out].map((e) => e.id);
      const loop = path.slice(path.indexOf(parent.id));
      warn(`backup chain through ${loop.reduce((a, b) => (b < a ? b : a))} loops back on itself`);
      return out;
    }
    seen.add(parent.id);
    out.push(parent);
    child = parent;
  }
}
