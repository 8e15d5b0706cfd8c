/**
 * vitest globalSetup: makes a real S3 server (Ceph RGW on loopback) available to the S3 suites.
 *
 * - S3_ENDPOINT already set (CI ran scripts/rgw/start.sh and exported its env file): use it as is,
 *   never stop it.
 * - Otherwise, if radosgw is installed: run scripts/rgw/start.sh (~3 s; it reuses an RGW that is
 *   already running from the same data dir) and stop it at teardown only if a vitest run started it
 *   and no other vitest run still uses it (users register a pid file under $RGW_DIR/users/).
 * - radosgw not installed: nothing starts; `s3Unavailable` carries the reason, and every S3 suite
 *   FAILS with it (see __test__/helpers/s3.ts `s3Env`), telling the user to run scripts/rgw/install.sh.
 *
 * The endpoint and keys reach the test workers twice: through `provide` (read with `inject`) and
 * through process.env, which the forked workers inherit.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

export interface S3TestEnv {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    s3: S3TestEnv | null;
    s3Unavailable: string | null;
  }
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RGW_DIR = process.env.RGW_DIR ?? '/tmp/s3db-backup-rgw';
const OWNER_MARK = join(RGW_DIR, 'started-by-vitest');
const USERS_DIR = join(RGW_DIR, 'users');

function radosgwInstalled(): boolean {
  return ['radosgw', 'ceph-mon', 'ceph-osd'].every(
    (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0,
  );
}

function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function exportEnv(env: S3TestEnv): void {
  process.env.S3_ENDPOINT = env.endpoint;
  process.env.S3_ACCESS_KEY = env.accessKeyId;
  process.env.S3_SECRET_KEY = env.secretAccessKey;
  process.env.S3_REGION = env.region;
}

export default function setup(project: TestProject): (() => void) | undefined {
  const preset = process.env.S3_ENDPOINT;
  if (preset) {
    const env: S3TestEnv = {
      endpoint: preset,
      accessKeyId: process.env.S3_ACCESS_KEY ?? '',
      secretAccessKey: process.env.S3_SECRET_KEY ?? '',
      region: process.env.S3_REGION ?? 'us-east-1',
    };
    project.provide('s3', env);
    project.provide('s3Unavailable', null);
    return undefined;
  }
  if (!radosgwInstalled()) {
    project.provide('s3', null);
    project.provide(
      's3Unavailable',
      'Ceph RGW (radosgw) is not installed, so the S3 suites cannot run: run `scripts/rgw/install.sh` once ' +
        '(needs apt and root), or set S3_ENDPOINT/S3_ACCESS_KEY/S3_SECRET_KEY to a running S3 server.',
    );
    return undefined;
  }

  const result = spawnSync('bash', [join(ROOT, 'scripts/rgw/start.sh')], {
    encoding: 'utf8',
    env: { ...process.env, RGW_DIR },
    timeout: 180_000,
  });
  if (result.status !== 0) {
    // Fail the S3 suites loudly with the script's own explanation; other suites still run.
    project.provide('s3', null);
    project.provide('s3Unavailable', `scripts/rgw/start.sh failed (exit ${result.status}): ${result.stderr.trim()}`);
    return undefined;
  }
  const reused = /reusing the RGW/.test(result.stderr);
  if (!reused) writeFileSync(OWNER_MARK, `${process.pid}\n`);
  const vars = parseEnvFile(result.stdout);
  const env: S3TestEnv = {
    endpoint: vars.S3_ENDPOINT ?? '',
    accessKeyId: vars.S3_ACCESS_KEY ?? '',
    secretAccessKey: vars.S3_SECRET_KEY ?? '',
    region: vars.S3_REGION ?? 'us-east-1',
  };
  exportEnv(env);
  project.provide('s3', env);
  project.provide('s3Unavailable', null);
  mkdirSync(USERS_DIR, { recursive: true });
  const me = join(USERS_DIR, String(process.pid));
  writeFileSync(me, '');

  return () => {
    rmSync(me, { force: true });
    if (!existsSync(OWNER_MARK)) return; // started by CI or by hand: not ours to stop
    const others = existsSync(USERS_DIR)
      ? readdirSync(USERS_DIR).filter((name) => {
          const pid = Number(name);
          if (Number.isInteger(pid) && alive(pid)) return true;
          rmSync(join(USERS_DIR, name), { force: true });
          return false;
        })
      : [];
    if (others.length > 0) return; // another vitest run still uses this RGW; the last one stops it
    execFileSync('bash', [join(ROOT, 'scripts/rgw/stop.sh')], { env: { ...process.env, RGW_DIR }, stdio: 'ignore' });
  };
}
