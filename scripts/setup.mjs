#!/usr/bin/env node
// One-step, idempotent set-up for a fresh clone (run by `npm test`, `npm run demo`, `npm run bench`):
// 1. installs npm dependencies when node_modules is missing or older than package-lock.json;
// 2. builds the native core (Rust, napi-rs) when its binary is missing or older than any Rust source.
// Without cargo it says so and continues: the codec then runs on its JS twin (slower, same format).
// Invariants: plain Node only (no dependency), so it runs before anything is installed; it writes
// only to stderr, so `npm run bench -- --json` prints nothing but the JSON document on stdout.
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd) => execSync(cmd, { cwd: root, stdio: ['ignore', 2, 2], env: process.env });
const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

function newestUnder(dir, filter) {
  let newest = 0;
  if (!existsSync(dir)) return 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'target') newest = Math.max(newest, newestUnder(p, filter));
    } else if (filter(entry.name)) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

const lock = join(root, 'package-lock.json');
const installed = join(root, 'node_modules', '.package-lock.json');
if (!existsSync(installed) || mtime(installed) < mtime(lock)) {
  console.error('[setup] installing npm dependencies');
  run('npm install --no-audit --no-fund');
}

const binary = join(root, 'native', `s3db-backup.${process.platform}-${process.arch}${process.platform === 'linux' ? '-gnu' : ''}.node`);
const sources = Math.max(
  newestUnder(join(root, 'crates'), (n) => n.endsWith('.rs') || n === 'Cargo.toml' || n === 'build.rs'),
  mtime(join(root, 'Cargo.toml')),
  mtime(join(root, 'Cargo.lock')),
);
if (mtime(binary) < sources) {
  let cargo = true;
  try {
    execSync('cargo --version', { stdio: 'ignore' });
  } catch {
    cargo = false;
  }
  if (cargo) {
    console.error('[setup] building the native core (cargo, release; the first build takes a few minutes)');
    run('npm run build:native');
  } else {
    console.warn('[setup] cargo not found: the native core is not built; the JS codec is used (set up Rust from https://rustup.rs for full speed)');
  }
}
