#!/usr/bin/env bash
# Installs Debian's Ceph RADOS Gateway and the two daemons a one-node test cluster needs
# (radosgw, ceph-mon, ceph-osd; ceph-common comes with them), plus curl and util-linux for start.sh. Idempotent: does nothing when the
# binaries are already present, and runs `apt-get update` only when the package lists are missing
# or the first install attempt cannot find the packages. Needs root (or sudo) and an apt mirror.
set -euo pipefail

need=()
for bin in radosgw ceph-mon ceph-osd ceph radosgw-admin ceph-authtool monmaptool curl flock; do
  command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
if [ ${#need[@]} -eq 0 ]; then
  echo "rgw install: radosgw, ceph-mon and ceph-osd are already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# curl and flock (util-linux) are used by start.sh
PKGS=(radosgw ceph-mon ceph-osd ceph-common curl util-linux)

if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
  $SUDO apt-get update -q
fi
if ! $SUDO apt-get install -y -q --no-install-recommends "${PKGS[@]}"; then
  # stale package lists: refresh once and retry
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${PKGS[@]}"
fi
echo "rgw install: done ($(radosgw --version 2>/dev/null | head -n1))"
