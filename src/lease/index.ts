/**
 * Fleet-wide backup lease over any Destination (see lease.ts for the design and its limits).
 */
export { Lease, defaultHolderId, DEFAULT_LEASE_PATH, DEFAULT_LEASE_TTL_MS, DEFAULT_CLOCK_SKEW_MS } from './lease.js';
export type { LeaseRecord, LeaseLostInfo, LeaseOptions, AcquireOptions, AcquireResult } from './lease.js';
