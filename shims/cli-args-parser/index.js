// Dev-only stub (see package.json): s3db.js's CLI is never used by s3db-backup.
export function parseArgs() { throw new Error('cli-args-parser stub: s3db.js CLI is not available here'); }
export default { parseArgs };
