// Dev-only shim (see package.json): everything from recker 1.0.56, plus createRedDbClient.
export * from 'recker-real';
export function createRedDbClient() {
  throw new Error('createRedDbClient is not available in the s3db-backup development shim of recker');
}
