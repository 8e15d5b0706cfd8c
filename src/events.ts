/**
 * The plugin's events and what each one carries: the map behind `BackupPlugin`'s typed `on`,
 * `once`, `off` and `emit` overloads (plugin.ts), so that a listener's argument is typed where it
 * is written and every `emit` is checked against it. README "Events" describes them in words.
 * Invariant: no payload holds a passphrase, a key or a connection string's credentials (messages
 * come from BackupError, redacted at its source).
 */
import type { Manifest, VerificationResult } from './engine/manifest.js';
import type { RestoreReport } from './engine/restore.js';
import type { RecoveryReport } from './engine/catalog.js';
import type { ProgressEvent } from './engine/progress.js';

/** A backup's failure or a restore's, as events carry it: the message and the BackupError code. */
export interface FailureEvent {
  id: string;
  error: string;
  code: string;
}

/** Which schedule tick or trigger event an automatic backup came from. */
export type AutomaticOrigin = { schedule: string; tick: string } | { trigger: string };

export interface BackupPluginEvents {
  'plg:backup:start': [{ id: string; type: 'full' | 'incremental' }];
  'plg:backup:complete': [{ id: string; type: 'full' | 'incremental'; size: number; duration: number; driverInfo: Manifest['destinations'] | null; verified: boolean }];
  'plg:backup:error': [FailureEvent & { type: string }];
  /** A backup that will not run or was stopped: queued when the plugin stopped (`id` null), or cancelled by a restore into its database. */
  'plg:backup:cancelled': [{ id: string | null; type: string; reason: string }];
  'plg:backup:retry': [AutomaticOrigin & { retry: number; of: number; delayMs: number; code: string; error: string }];
  /** A tick or trigger that ran no backup: `overlap`, `restoring`, `stopped`, `coalesced`, `missed`... */
  'plg:backup:skipped': [({ schedule: string; tick: string } | { trigger: string }) & { reason: string; count: number; error?: string }];
  'plg:backup:progress': [ProgressEvent];
  'plg:backup:restore-start': [{ id: string; options: { destination: string | null; resources: string[] | null; mode: string; dryRun: boolean; verify: boolean } }];
  'plg:backup:restore-complete': [{ id: string; restored: RestoreReport['restored']; report: RestoreReport }];
  'plg:backup:restore-error': [FailureEvent];
  'plg:backup:verified': [{ id: string } & VerificationResult];
  'plg:backup:pruned': [{ deleted: string[]; kept: string[] }];
  'plg:backup:deleted': [{ ids: string[] }];
  /** A backup left out of listBackups(): its manifest is corrupt, of a newer format, archived or unreadable. */
  'plg:backup:unreadable': [{ id: string; error: string }];
  'plg:backup:recovered': [RecoveryReport];
  'plg:backup:webhook-error': [{ webhook: string; error: string }];
  /** A hook other than onBackupStart/onRestoreStart threw or outlived hookTimeoutMs (those two refuse their operation instead; a late rejection of theirs lands here). */
  'plg:backup:hook-error': [{ hook: string; error: string }];
}
