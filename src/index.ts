/**
 * s3db-backup: a BackupPlugin for s3db.js that never loses data.
 *
 *   import { BackupPlugin } from 's3db-backup';
 *   await db.usePlugin(new BackupPlugin({ encryption: { passphrase: process.env.BACKUP_PASSPHRASE } }));
 *
 * Sub-modules: 's3db-backup/codec' (stream format), 's3db-backup/retention' (planRetention).
 */
export { BackupPlugin } from './plugin.js';
export type { BackupResult, CreateBackupOptions, ListBackupsOptions, RestoreOptions, S3dbRestoreOptions } from './plugin.js';
export type { BackupHook, BackupHookContext, BackupPluginOptions, RestoreHook } from './options.js';
export type { BackupSummary, Manifest, VerificationResult } from './engine/manifest.js';
export type { RestoreReport } from './engine/restore.js';
export type { RecoveryReport } from './engine/catalog.js';
export type { IndexRepair } from './engine/index-repair.js';
export type { ProgressEvent } from './engine/progress.js';
export type { BackupPluginEvents, FailureEvent, AutomaticOrigin } from './events.js';
export { BackupError } from './errors.js';
export { FilesystemDestination } from './destinations/filesystem.js';
export { planRetention } from './retention/index.js';
