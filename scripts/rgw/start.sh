#!/usr/bin/env bash
# Starts a throw-away one-node Ceph cluster with a RADOS Gateway on loopback for the S3 tests:
# 1 monitor, 1 OSD on memstore (data in RAM), radosgw (beast) on 127.0.0.1:$S3_PORT.
#
# Invariants:
# - Loopback only; no authentication inside the cluster (auth none); S3 itself uses fixed test keys.
# - Idempotent: if an RGW started from the same data dir already answers on the port, it is reused
#   and nothing is restarted. Otherwise the data dir is wiped and a fresh cluster is built.
# - Concurrent callers are serialised with flock, so two test runs never wipe each other's cluster.
# - On success it writes $RGW_DIR/env (S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION) and
#   prints it. Every daemon's pid is in $RGW_DIR/run/*.pid; stop.sh kills them.
#
# Environment: S3_PORT (7480), RGW_DIR (/tmp/s3db-backup-rgw), RGW_MON_PORT (S3_PORT + 9300 = 16780),
# RGW_MEMSTORE_BYTES (4 GiB cap; RAM is used only as objects are written).
set -euo pipefail

S3_PORT="${S3_PORT:-7480}"
RGW_DIR="${RGW_DIR:-/tmp/s3db-backup-rgw}"
MON_PORT="${RGW_MON_PORT:-$((S3_PORT + 9300))}"
MEMSTORE_BYTES="${RGW_MEMSTORE_BYTES:-4294967296}"
ACCESS_KEY="s3dbbackuptestkey"
SECRET_KEY="s3dbbackuptestsecret0123456789"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY=/usr/bin/python3
T0=$(date +%s.%N)

log() { printf 'rgw start: %s (%.1fs)\n' "$*" "$(echo "$(date +%s.%N) - $T0" | bc)" >&2; }
die() { echo "rgw start: ERROR: $*" >&2; exit 1; }

for bin in radosgw ceph-mon ceph-osd radosgw-admin monmaptool ceph-authtool; do
  command -v "$bin" >/dev/null 2>&1 || die "$bin is not installed; run scripts/rgw/install.sh first"
done
command -v bc >/dev/null 2>&1 || log() { echo "rgw start: $*" >&2; }

s3_answers() {
  # an anonymous GET / on RGW answers 200 with an empty ListAllMyBuckets result
  curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:${S3_PORT}/" 2>/dev/null | grep -q '^[0-9][0-9][0-9]$' &&
    curl -s -m 2 "http://127.0.0.1:${S3_PORT}/" 2>/dev/null | grep -q 'ListAllMyBucketsResult\|AccessDenied\|<Error>'
}

# ---- serialise concurrent starts ----------------------------------------------------------
exec 9>"${RGW_DIR%/}.lock"
flock 9  # daemons below are started with 9>&- so they do not inherit (and hold) the lock

if [ -f "$RGW_DIR/env" ] && [ "$(grep -c "127.0.0.1:${S3_PORT}\$" "$RGW_DIR/env" || true)" = 1 ] && s3_answers; then
  log "reusing the RGW already running on 127.0.0.1:${S3_PORT}"
  cat "$RGW_DIR/env"
  exit 0
fi
if s3_answers; then
  die "something already answers on 127.0.0.1:${S3_PORT} but it was not started from ${RGW_DIR}; stop it or set S3_PORT"
fi

# ---- fresh cluster --------------------------------------------------------------------------
if [ -d "$RGW_DIR/run" ]; then RGW_DIR="$RGW_DIR" "$HERE/stop.sh" >/dev/null 2>&1 || true; fi
rm -rf "$RGW_DIR"
mkdir -p "$RGW_DIR"/{mon,osd,run,log,rgw}
FSID=$(cat /proc/sys/kernel/random/uuid)
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
CONF="$RGW_DIR/ceph.conf"

cat >"$CONF" <<CONF
[global]
fsid = $FSID
mon host = [v1:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
keyring = $RGW_DIR/keyring
run dir = $RGW_DIR/run
admin socket = $RGW_DIR/run/\$name.asok
pid file = $RGW_DIR/run/\$name.pid
log file = $RGW_DIR/log/\$name.log
log to stderr = false
err to stderr = false
mon cluster log file = $RGW_DIR/log/cluster.log
crash dir = $RGW_DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
paxos propose interval = 0.01
paxos min wait = 0.001
mon osd beacon grace = 30
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd crush update on start = false
osd class update on start = false
mgr initial modules =
[mon]
mon data = $RGW_DIR/mon
mon initial members = a
[osd]
osd data = $RGW_DIR/osd
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
osd max object name len = 460
osd max object namespace len = 64
osd op num shards = 1
osd op num threads per shard = 2
[client]
rgw frontends = beast endpoint=127.0.0.1:$S3_PORT
rgw data = $RGW_DIR/rgw
rgw dns name = 127.0.0.1
rgw enable usage log = false
rgw thread pool size = 64
# server-side encryption over plain loopback HTTP, with a fixed test key for aws:kms key id
# "s3db-backup-test-key" (the "testing" KMS backend: for tests only, never in production)
rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = s3db-backup-test-key=c3RhdGljLXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY=
CONF
touch "$RGW_DIR/keyring"

# ---- monitor --------------------------------------------------------------------------------
monmaptool --create --fsid "$FSID" --addv a "[v1:127.0.0.1:$MON_PORT]" "$RGW_DIR/monmap" >/dev/null
ceph-authtool --create-keyring "$RGW_DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$RGW_DIR/monmap" --keyring "$RGW_DIR/mon.keyring"
timeout 60 ceph-mon -c "$CONF" -i a 9>&- || die "ceph-mon did not start; see $RGW_DIR/log/mon.a.log"
log "monitor started"

# ---- OSD (memstore) -------------------------------------------------------------------------
timeout 120 "$PY" "$HERE/mon-commands.py" "$CONF" "osd new uuid=$OSD_UUID id=0" >/dev/null || die "osd new did not finish in 2 min"
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$RGW_DIR/log/osd-mkfs.log" 2>&1 ||
  die "ceph-osd --mkfs failed: $(tail -n 5 "$RGW_DIR/log/osd-mkfs.log")"
# add the OSD to the crush map by hand (crush update on start is off: it races with the monmap)
timeout 120 "$PY" "$HERE/mon-commands.py" "$CONF" "osd crush add id=0 weight=1.0 args=root=default" >/dev/null || die "osd crush add did not finish in 2 min"
timeout 60 ceph-osd -c "$CONF" -i 0 9>&- || die "ceph-osd did not start; see $RGW_DIR/log/osd.0.log"
log "osd started"

# ---- pools (pre-created, or the first bucket and upload each stall ~2 s) --------------------
POOLS=(.rgw.root default.rgw.control default.rgw.meta default.rgw.log default.rgw.buckets.index
  default.rgw.buckets.data default.rgw.buckets.non-ec)
CMDS=()
for p in "${POOLS[@]}"; do
  CMDS+=("osd pool create pool=$p pg_num=8 pgp_num=8")
  CMDS+=("osd pool application enable pool=$p app=rgw")
done
timeout 180 "$PY" "$HERE/mon-commands.py" "$CONF" "${CMDS[@]}" >/dev/null || die "creating the RGW pools did not finish in 3 min (a monitor that went away?); see $RGW_DIR/log/"
log "pools created"

# ---- zone placement: extra storage classes; S3 user (radosgw-admin works without radosgw) ----
admin() {
  local out i
  for i in $(seq 1 20); do
    if out=$(radosgw-admin -c "$CONF" "$@" 2>&1); then printf '%s' "$out"; return 0; fi
    sleep 0.3
  done
  die "radosgw-admin $* failed: $out"
}
# the first radosgw-admin call that opens the store creates the default zonegroup and zone
admin user create --uid=s3db-backup-test --display-name="s3db-backup tests" \
  --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
CLASSES="STANDARD_IA ONEZONE_IA INTELLIGENT_TIERING GLACIER_IR GLACIER DEEP_ARCHIVE"
admin zonegroup get --rgw-zonegroup=default >"$RGW_DIR/zonegroup.json"
"$PY" - "$RGW_DIR/zonegroup.json" $CLASSES <<'PY'
import json, sys
path, classes = sys.argv[1], sys.argv[2:]
zg = json.load(open(path))
for t in zg['placement_targets']:
    if t['name'] == 'default-placement':
        t['storage_classes'] = sorted(set(t.get('storage_classes', [])) | {'STANDARD', *classes})
json.dump(zg, open(path, 'w'))
PY
admin zonegroup set --rgw-zonegroup=default --infile "$RGW_DIR/zonegroup.json" >/dev/null
admin zone get --rgw-zone=default >"$RGW_DIR/zone.json"
"$PY" - "$RGW_DIR/zone.json" $CLASSES <<'PY'
import json, sys
path, classes = sys.argv[1], sys.argv[2:]
zone = json.load(open(path))
for p in zone['placement_pools']:
    if p['key'] == 'default-placement':
        sc = p['val'].setdefault('storage_classes', {})
        for c in classes:
            sc[c] = {'data_pool': 'default.rgw.buckets.data'}
json.dump(zone, open(path, 'w'))
PY
admin zone set --rgw-zone=default --infile "$RGW_DIR/zone.json" >/dev/null
log "storage classes and S3 user configured"

# ---- radosgw ----------------------------------------------------------------------------------
timeout 60 radosgw -c "$CONF" -n client.rgw.a --rgw-frontends="beast endpoint=127.0.0.1:$S3_PORT" 9>&- ||
  die "radosgw did not start; see $RGW_DIR/log/client.rgw.a.log"
for i in $(seq 1 300); do
  s3_answers && break
  [ "$i" = 300 ] && die "radosgw does not answer on 127.0.0.1:${S3_PORT} after 60 s; see $RGW_DIR/log"
  sleep 0.2
done

cat >"$RGW_DIR/env" <<ENV
S3_ENDPOINT=http://127.0.0.1:${S3_PORT}
S3_ACCESS_KEY=${ACCESS_KEY}
S3_SECRET_KEY=${SECRET_KEY}
S3_REGION=us-east-1
ENV
log "radosgw answers on 127.0.0.1:${S3_PORT}"
cat "$RGW_DIR/env"
