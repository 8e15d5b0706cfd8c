/**
 * Which processes a pid can be checked against: "same host name" is not enough, since containers
 * in Kubernetes `hostNetwork` pods or Docker `--network host`/`--uts host` share a host name but
 * each has its own pid namespace, where pid 42 is another process (or none). A pid recorded by a
 * lease or pending marker is only checked with `process.kill(pid, 0)` when the record's space
 * equals ours: host name + the boot id + the pid namespace (Linux `/proc`). Where `/proc` does not
 * tell (other systems), the space is the host name alone, as before.
 *
 * Invariant: a record without a space (written by an earlier version) never matches, so its holder
 * is only considered gone when its TTL or heartbeat runs out.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

let cached: string | null = null;

export function processSpace(): string {
  if (cached === null) cached = [hostname(), read(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()), read(() => readlinkSync('/proc/self/ns/pid'))].filter(Boolean).join(' ');
  return cached;
}

function read(f: () => string): string {
  try {
    return f();
  } catch {
    return '';
  }
}
