#!/usr/bin/env bash
# The README's first command, end to end, as CI checks it: `./heka-local up` on this machine,
# alice writes and reads a file under the mount, bos reports its servers, `./heka-local down`,
# and then no process of it and no mount may remain. Own ports, state dir and mount point,
# so it never touches a cell someone runs on the default ones. Needs root (the mount).
set -euo pipefail
cd "$(dirname "$0")/.."
export HEKA_LOCAL_DIR=/var/tmp/heka-local-smoke HEKA_LOCAL_MOUNT=/tmp/heka-local-smoke-mnt
export HEKA_LOCAL_KDC_PORT=28888 HEKA_LOCAL_DB_PORT=27101 HEKA_LOCAL_FS_PORT=27201
export HEKA_LOCAL_BOS_PORT=27301
fail() {
  echo "heka-local smoke: $*" >&2
  exit 1
}
trap './heka-local down --purge >/dev/null 2>&1 || true' EXIT
./heka-local down --purge >/dev/null 2>&1 || true
./heka-local up
eval "$(./heka-local env)"
export KRB5CCNAME=FILE:$HEKA_LOCAL_DIR/smoke-alice.ccache
kinit alice <"$HEKA_LOCAL_DIR/alice.password" >/dev/null
# A child process: the cache manager reads KRB5CCNAME from the environment a process started with.
sh -c "echo written by alice > $HEKA_LOCAL_MOUNT/demo/smoke.txt" || fail "alice cannot write"
[[ $(sh -c "cat $HEKA_LOCAL_MOUNT/demo/smoke.txt") == "written by alice" ]] || fail "alice cannot read"
grep -q Welcome "$HEKA_LOCAL_MOUNT/demo/WELCOME" || fail "no welcome file"
KRB5CCNAME=FILE:$HEKA_LOCAL_DIR/admin.ccache heka bos status -server 127.0.0.1:$HEKA_LOCAL_BOS_PORT |
  grep -c "running normally" | grep -qx 5 || fail "bos does not report its five servers running"
./heka-local up >/dev/null || fail "a second up is not harmless"
./heka-local down --purge
trap - EXIT
if pgrep -f "$HEKA_LOCAL_DIR" >/dev/null; then fail "processes remain: $(pgrep -af "$HEKA_LOCAL_DIR")"; fi
if grep -q " $HEKA_LOCAL_MOUNT " /proc/mounts; then fail "$HEKA_LOCAL_MOUNT is still mounted"; fi
echo "heka-local smoke: up, write and read as alice, bos status, down: ok"
