/**
 * Runs an ES module script in a child Node process at the repository's root (so it can import
 * './src/index.ts' through tsx), for what only a process shows: signals, uncaught exceptions,
 * exit codes. The script prints its result as JSON on its last stdout line; that is returned.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The JSON the script printed last; fails the test when the process did not exit with 0. */
export function runChildScript(script: string, env: Record<string, string> = {}): unknown {
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').pop() ?? 'null') as unknown;
}
