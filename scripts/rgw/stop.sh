#!/usr/bin/env bash
# Stops the test Ceph cluster started by start.sh (radosgw, OSD, monitor: every pid file in
# $RGW_DIR/run) and deletes its data dir. Kills only the processes whose pids start.sh recorded.
set -uo pipefail
RGW_DIR="${RGW_DIR:-/tmp/s3db-backup-rgw}"
[ -d "$RGW_DIR/run" ] || { echo "rgw stop: nothing to stop in $RGW_DIR"; exit 0; }
pids=()
for f in "$RGW_DIR"/run/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && pids+=("$pid")
done
# radosgw first, then OSD, then monitor (reverse start order); the glob order is mon/osd/rgw
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for _ in $(seq 1 50); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null; done
rm -rf "$RGW_DIR"
echo "rgw stop: stopped ${#pids[@]} daemon(s), removed $RGW_DIR"
