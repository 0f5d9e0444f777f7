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
trap './heka-local down --purge >/dev/null 2>&1 || true; rm -f /tmp/heka-local-smoke-alice.ccache' EXIT
./heka-local down --purge >/dev/null 2>&1 || true
./heka-local up
eval "$(./heka-local env)"
# Outside the state directory: it outlives a `down --purge`, as a user's ticket does.
export KRB5CCNAME=FILE:/tmp/heka-local-smoke-alice.ccache
kinit alice <"$HEKA_LOCAL_DIR/alice.password" >/dev/null
# A child process: the cache manager reads KRB5CCNAME from the environment a process started with.
sh -c "echo written by alice > $HEKA_LOCAL_MOUNT/demo/smoke.txt" || fail "alice cannot write"
[[ $(sh -c "cat $HEKA_LOCAL_MOUNT/demo/smoke.txt") == "written by alice" ]] || fail "alice cannot read"
grep -q Welcome "$HEKA_LOCAL_MOUNT/demo/WELCOME" || fail "no welcome file"
# The demo's encrypted volume: alice's file reads back, and no file server holds its plaintext.
marker="smoke-secret-$RANDOM$RANDOM"
sh -c "echo $marker > $HEKA_LOCAL_MOUNT/demo/private/secret.txt" || fail "alice cannot write in demo/private"
[[ $(sh -c "cat $HEKA_LOCAL_MOUNT/demo/private/secret.txt") == "$marker" ]] || fail "alice cannot read demo/private"
KRB5CCNAME=FILE:$HEKA_LOCAL_DIR/admin.ccache heka vos examine -id private -cell demo | grep -q "encrypted, key fingerprint" ||
  fail "vos examine does not show demo's private volume as encrypted"
if grep -r -a -q "$marker" "$HEKA_LOCAL_DIR"/fs1 "$HEKA_LOCAL_DIR"/fs2; then
  fail "plaintext of the encrypted volume on a file server"
fi
# An administrator's first steps: a new volume, mounted, used at once (three DB servers here,
# so the member the cache manager asks may not have the new volume yet).
as_admin() { KRB5CCNAME=FILE:$HEKA_LOCAL_DIR/admin.ccache heka "$@"; }
for n in 1 2 3; do
  dir=$HEKA_LOCAL_MOUNT/demo/smoke$n
  as_admin vos create -server "127.0.0.1:$HEKA_LOCAL_FS_PORT" -partition "$HEKA_LOCAL_DIR/fs1/vicepa" \
    -name "smoke$n" -cell demo >/dev/null || fail "vos create smoke$n"
  as_admin fs mkmount -dir "$dir" -vol "smoke$n" || fail "fs mkmount smoke$n"
  as_admin fs setacl -dir "$dir" -acl alice rlidwk || fail "the new mount point $dir cannot be used at once"
  sh -c "echo $n > $dir/f" || fail "alice cannot write in the new volume smoke$n"
done
KRB5CCNAME=FILE:$HEKA_LOCAL_DIR/admin.ccache heka bos status -server 127.0.0.1:$HEKA_LOCAL_BOS_PORT |
  grep -c "running normally" | grep -qx 5 || fail "bos does not report its five servers running"
# A second up, as a user would run it again (no ticket of theirs in the environment).
env -u KRB5CCNAME ./heka-local up >/dev/null || fail "a second up is not harmless"
# The realm made again from nothing: alice's ticket from the old one is refused with EACCES
# (not EIO), and a new kinit works at once.
./heka-local down --purge >/dev/null
./heka-local up >/dev/null
out=$(sh -c "cat $HEKA_LOCAL_MOUNT/demo/WELCOME" 2>&1) && fail "a ticket from the old realm was accepted"
[[ $out == *"Permission denied"* ]] || fail "a ticket from the old realm: $out (want Permission denied)"
kinit alice <"$HEKA_LOCAL_DIR/alice.password" >/dev/null
sh -c "cat $HEKA_LOCAL_MOUNT/demo/WELCOME" | grep -q Welcome || fail "a new kinit did not work at once"
./heka-local down --purge
rm -f /tmp/heka-local-smoke-alice.ccache
trap - EXIT
if pgrep -f "$HEKA_LOCAL_DIR" >/dev/null; then fail "processes remain: $(pgrep -af "$HEKA_LOCAL_DIR")"; fi
if grep -q " $HEKA_LOCAL_MOUNT " /proc/mounts; then fail "$HEKA_LOCAL_MOUNT is still mounted"; fi
echo "heka-local smoke: up, write and read as alice (also in the encrypted volume), bos status, a re-made realm, down: ok"
