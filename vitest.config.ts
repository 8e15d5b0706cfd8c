import { defineConfig } from 'vitest/config';

// Tests run real s3db.js, real files, real child processes and (for S3 suites) a real Ceph RGW.
// Suites are files in __test__/; long ones set their own timeouts.
export default defineConfig({
  test: {
    include: ['__test__/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 2,
    globalSetup: ['__test__/global-setup.ts'],
  },
});
