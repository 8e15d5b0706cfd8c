// Placeholder owned by the S3 helper: starts Ceph RGW for the S3 suites (being written now).
export default async function setup(): Promise<void> {}
