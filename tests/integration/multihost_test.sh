#!/usr/bin/env bash
# multihost_test.sh BIN_DIR: a whole Heka cell across "machines" (issue 9, point 3).
#
# Every machine is a network namespace this test creates, joined by veth pairs to a bridge that
# lives in a namespace of its own (hub), so no address and no packet touches the root namespace:
#
#   kdc  192.0.2.2    2001:db8::2     krb5kdc (not a Heka host)
#   db1  192.0.2.11   2001:db8::11    heka-bosserver: heka-dbserver   (members advertise IPv6)
#   db2  192.0.2.12   2001:db8::12    heka-bosserver: heka-dbserver
#   db3  192.0.2.13   2001:db8::13    heka-bosserver: heka-dbserver
#   fs1  192.0.2.21   2001:db8::21    heka-bosserver: heka-fileserver (advertises IPv4): root.cell
#   fs2  -            2001:db8::22    heka-bosserver: heka-fileserver, IPv6-only link: proj
#   c1   192.0.2.31   2001:db8::31    heka-bosserver: heka-cachemgr, own mount namespace
#   c2   192.0.2.32   2001:db8::32    heka-bosserver: heka-cachemgr, own mount namespace
#
# Each host has its own service key heka/<host> (bos and the server of that host share it, as on a
# real machine); krb5.conf has rdns = false. A link is cut by setting the bridge side of the
# host's veth pair down (its own end keeps its addresses), and restored by setting it up.
#
# Scenarios: (1) the cell comes up, alice writes on c1 and c2 reads; (2) the DB leader's link is
# cut: reads and writes (PTDB, VLDB, files) keep working; (3) c1's link is cut while a process on
# c1 is closing a file it wrote: after the link returns c1 works again without a remount, sees
# what c2 changed meanwhile, and every file whose close succeeded is on c2; (4) fs2's link is cut:
# clients get clear errors for fs2's volume only, fs1's volume keeps working, and fs2's volume
# works again when the link returns.
#
# Namespaces are named hkmh-<pid of this script>-<host>; they are all removed at exit (also on
# failure), and leftovers of earlier runs that were killed are removed at start.
# The DB members advertise (and every DB client names them by) their IPv6 addresses: fs2, on its
# IPv6-only link, must be able to follow the "not leader, try <advertised address>" hints too.
# Needs root (exits 77, "skipped", otherwise). HEKA_MH_KEEP=1 keeps the state directory (logs).
# shellcheck disable=SC2016  # '$M' is expanded by the client host's sh, not here
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

[[ $# -eq 1 ]] || { echo "usage: $0 BIN_DIR" >&2; exit 2; }
bin=$(cd "$1" && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
source "$top/scripts/wait.sh"
realm_sh=$top/scripts/heka-realm.sh
start_time=$SECONDS

say() { printf '[multihost %3ds] %s\n' $((SECONDS - start_time)) "$*"; }
fail() {
  printf '[multihost %3ds] FAILED: %s\n' $((SECONDS - start_time)) "$*" >&2
  exit 1
}

if ((EUID != 0)); then
  echo "multihost: skipped: needs root (network namespaces, FUSE mounts)"
  exit 77  # ctest: SKIP_RETURN_CODE
fi
for tool in ip nsenter unshare krb5kdc kdb5_util kinit timeout; do
  command -v "$tool" >/dev/null || fail "missing tool: $tool"
done
for b in heka heka-dbserver heka-fileserver heka-bosserver heka-cachemgr; do
  [[ -x $bin/$b ]] || fail "missing $bin/$b (build it first)"
done

readonly tag=hkmh-$$
readonly prefix=$tag-
readonly realm=HKMH$$.TEST
readonly hub=${prefix}hub
readonly hosts=(kdc db1 db2 db3 fs1 fs2 c1 c2)
declare -A v4=([kdc]=192.0.2.2 [db1]=192.0.2.11 [db2]=192.0.2.12 [db3]=192.0.2.13
  [fs1]=192.0.2.21 [c1]=192.0.2.31 [c2]=192.0.2.32)
declare -A v6=([kdc]=2001:db8::2 [db1]=2001:db8::11 [db2]=2001:db8::12 [db3]=2001:db8::13
  [fs1]=2001:db8::21 [fs2]=2001:db8::22 [c1]=2001:db8::31 [c2]=2001:db8::32)
w=

# ---- Cleanup: ours at exit, and leftovers of killed runs at start. ---------------------------

# kill_netns_procs NS: every process still in namespace NS (only processes this test started
# live there), SIGTERM first, then SIGKILL.
kill_netns_procs() {
  local ns=$1 pids n
  mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
  ((${#pids[@]})) || return 0
  kill "${pids[@]}" 2>/dev/null || true
  no_pids() { [[ -z $(ip netns pids "$ns" 2>/dev/null) ]]; }
  wait_until 5 no_pids && return 0
  kill -9 "${pids[@]}" 2>/dev/null || true
}

# stop_pid PID: SIGTERM, wait up to 15 s (bos stops its instances first), then SIGKILL.
stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  wait_exit 15 "$pid" && return 0
  kill -9 "$pid" 2>/dev/null || true
}

remove_leftovers() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^hkmh-[0-9]+-' || true); do
    pid=${ns#hkmh-}
    pid=${pid%%-*}
    # A run that is still going (another ctest, say) keeps its namespaces.
    if kill -0 "$pid" 2>/dev/null && grep -q multihost_test "/proc/$pid/cmdline" 2>/dev/null; then
      continue
    fi
    kill_netns_procs "$ns"
    ip netns del "$ns" 2>/dev/null || true
  done
  local d
  for d in /tmp/hkmh-[0-9]*.??????; do
    [[ -d $d ]] || continue
    pid=${d#/tmp/hkmh-}
    pid=${pid%%.*}
    [[ $pid =~ ^[0-9]+$ ]] || continue
    kill -0 "$pid" 2>/dev/null && grep -q multihost_test "/proc/$pid/cmdline" 2>/dev/null && continue
    rm -rf "$d"
  done
}

dump_logs() {
  [[ -n $w && -d $w ]] || return 0
  local f
  for f in "$w"/*/*.log "$w"/*/bos/logs/*.log "$w"/*/*.out "$w"/*.err; do
    [[ -s $f ]] || continue
    echo "---- ${f#"$w"/} (last 25 lines) ----" >&2
    tail -25 "$f" >&2
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  ((rc == 0)) || dump_logs
  exec 7>&- 2>/dev/null
  local h
  # Clients first (the cache managers unmount), then the servers, then the KDC.
  for h in c1 c2 fs1 fs2 db1 db2 db3 kdc; do
    [[ -n $w && -s $w/$h/pid ]] && stop_pid "$(<"$w/$h/pid")"
  done
  for h in "${hosts[@]}" hub; do
    kill_netns_procs "$prefix$h"
    ip netns del "$prefix$h" 2>/dev/null
  done
  if ip netns list | grep -q "^$prefix"; then
    echo "multihost: namespaces left: $(ip netns list | grep "^$prefix")" >&2
    rc=1
  fi
  if [[ -n $w && -d $w ]]; then
    if [[ ${HEKA_MH_KEEP:-} == 1 ]]; then echo "multihost: state kept in $w" >&2; else rm -rf "$w"; fi
  fi
  say "done (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

remove_leftovers
w=$(mktemp -d "/tmp/$tag.XXXXXX")
chmod 755 "$w"

# ---- Helpers. --------------------------------------------------------------------------------

# wait_for SECONDS WHAT CMD...: polls CMD until it succeeds; fails the test after SECONDS.
wait_for() {
  local limit=$1 what=$2
  shift 2
  wait_until "$limit" "$@" || fail "timed out after ${limit}s waiting for $what"
}

krb5conf() { [[ -n ${v4[$1]:-} ]] && echo "$w/krb5.conf" || echo "$w/krb5-v6.conf"; }

# in_ns HOST CMD...: runs CMD on HOST's network (a fresh mount namespace: no /heka there).
in_ns() {
  local h=$1
  shift
  ip netns exec "$prefix$h" env KRB5_CONFIG="$(krb5conf "$h")" KRB5RCACHEDIR="$w/$h" \
    KRB5CCNAME="FILE:$w/$h/default.ccache" "$@"
}

# as_admin CMD...: `heka CMD` as the provider administrator, on c2's network.
as_admin() {
  ip netns exec "${prefix}c2" env KRB5_CONFIG="$w/krb5.conf" KRB5CCNAME="FILE:$w/admin.ccache" \
    HEKA_DBSERVERS="$dbservers" timeout -k 5 120 "$bin/heka" "$@"
}

# on CLIENT USER CMD...: runs CMD on client host CLIENT (its network and mount namespace, where
# its cache manager mounted $w/CLIENT/heka) as a process of USER (alice or admin): the cache
# manager uses the KRB5CCNAME this process starts with. Bounded: nothing may hang forever.
on() {
  local c=$1 u=$2
  shift 2
  timeout -k 5 150 nsenter -t "$(<"$w/$c/pid")" -m -n -- env KRB5_CONFIG="$w/krb5.conf" \
    KRB5CCNAME="FILE:$w/$u.ccache" HEKA_CACHEMGR_SOCKET="$w/$c/cachemgr.sock" "$@"
}

# sh_on CLIENT USER SCRIPT: sh -c SCRIPT on CLIENT as USER, with $M = that client's /heka/demo.
sh_on() {
  local c=$1 u=$2
  on "$c" "$u" env M="$w/$c/heka/demo" sh -c "$3"
}

# expect_content CLIENT FILE TEXT: FILE (relative to the cell's root) reads TEXT on CLIENT.
expect_content() {
  local got
  got=$(sh_on "$1" alice "cat \"\$M/$2\"" 2>&1) || fail "$1: cat $2 failed: $got"
  [[ $got == "$3" ]] || fail "$1: $2 holds '$got', want '$3'"
}

# write_file CLIENT FILE TEXT: alice writes TEXT into FILE on CLIENT (the shell reports close's
# error through its exit status).
write_file() {
  local out
  out=$(sh_on "$1" alice "printf '%s' '$3' > \"\$M/$2\"" 2>&1) || fail "$1: writing $2 failed: $out"
}

# lap_start / lap WHAT: says how long WHAT took (since the previous lap), in milliseconds.
lap_start() { lap_t=${EPOCHREALTIME/./}; }
lap() {
  local now=${EPOCHREALTIME/./}
  say "    $1: $(((now - lap_t) / 1000)) ms"
  lap_t=$now
}

# link_down HOST / link_up HOST: the bridge side of HOST's veth pair (HOST's own end keeps its
# addresses; it only loses its carrier, as with a pulled cable).
link_down() { ip -n "$hub" link set "$1-br" down; }
link_up() { ip -n "$hub" link set "$1-br" up; }

tcp_open() { in_ns "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; }

# mount_id CLIENT: the kernel's id of CLIENT's Heka mount (a remount changes it).
mount_id() {
  nsenter -t "$(<"$w/$1/pid")" -m -- awk -v m="$w/$1/heka" '$5 == m {print $1}' /proc/self/mountinfo
}

# ---- The network. ----------------------------------------------------------------------------

say "network: namespaces $prefix{hub,$(IFS=,; echo "${hosts[*]}")}; state in $w"
ip netns add "$hub"
ip -n "$hub" link set lo up
ip -n "$hub" link add br0 type bridge mcast_snooping 0
ip -n "$hub" link set br0 up
for h in "${hosts[@]}"; do
  ip netns add "$prefix$h"
  ip -n "$prefix$h" link set lo up
  # Created directly inside the two namespaces: no link ever exists in the root namespace.
  ip -n "$hub" link add "$h-br" type veth peer name eth0 netns "$prefix$h"
  ip -n "$hub" link set "$h-br" master br0 up
  [[ -n ${v4[$h]:-} ]] && ip -n "$prefix$h" addr add "${v4[$h]}/24" dev eth0
  ip -n "$prefix$h" addr add "${v6[$h]}/64" dev eth0 nodad
  ip -n "$prefix$h" link set eth0 up
  mkdir -p "$w/$h"
done
[[ -z $(ip -n "${prefix}fs2" -4 addr show dev eth0) ]] || fail "fs2's link has an IPv4 address"

# ---- Kerberos. -------------------------------------------------------------------------------

say "KDC for $realm on kdc (192.0.2.2:88, [2001:db8::2]:88)"
write_krb5_conf() {
  cat >"$1" <<EOF
[libdefaults]
  default_realm = $realm
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1

[realms]
  $realm = {
    kdc = $2
  }
EOF
}
kdcdir=$w/kdc/realm
mkdir -p "$kdcdir"
chmod 700 "$kdcdir"
write_krb5_conf "$w/krb5.conf" "192.0.2.2:88"
write_krb5_conf "$w/krb5-v6.conf" "[2001:db8::2]:88"
cp "$w/krb5.conf" "$kdcdir/krb5.conf"
# The same realm configuration as scripts/heka-realm.sh, listening on port 88 of every address
# of the kdc namespace; heka-realm.sh then adds the principals.
cat >"$kdcdir/kdc.conf" <<EOF
[kdcdefaults]
  kdc_listen = 88
  kdc_tcp_listen = 88

[realms]
  $realm = {
    database_name = $kdcdir/principal
    key_stash_file = $kdcdir/stash
    acl_file = $kdcdir/kadm5.acl
    max_life = 1d
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }

[logging]
  kdc = FILE:$w/kdc/kdc.log
EOF
: >"$kdcdir/kadm5.acl"
printf '%s\n' "$realm" >"$kdcdir/realm"
KRB5_CONFIG=$kdcdir/krb5.conf KRB5_KDC_PROFILE=$kdcdir/kdc.conf \
  kdb5_util -r "$realm" create -s -P "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  >"$w/kdc/kdb5_util.out" 2>&1 || fail "kdb5_util create: $(cat "$w/kdc/kdb5_util.out")"
ip netns exec "${prefix}kdc" env KRB5_CONFIG="$kdcdir/krb5.conf" KRB5_KDC_PROFILE="$kdcdir/kdc.conf" \
  krb5kdc -n -r "$realm" </dev/null >"$w/kdc/kdc.out" 2>&1 &
echo $! >"$w/kdc/pid"
wait_for 20 "the KDC on 192.0.2.2:88 (from c2)" tcp_open c2 192.0.2.2 88
wait_for 20 "the KDC on [2001:db8::2]:88 (from fs2)" tcp_open fs2 2001:db8::2 88

for h in db1 db2 db3 fs1 fs2 c1 c2; do
  "$realm_sh" addservice "$kdcdir" "heka/$h" "$w/$h/heka.keytab"
done
for u in alice admin; do
  pw=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
  "$realm_sh" addprinc "$kdcdir" "$u" "$pw"
  # kinit over the bridge, from c2's network.
  in_ns c2 kinit -c "FILE:$w/$u.ccache" "$u@$realm" <<<"$pw" >"$w/kinit-$u.out" 2>&1 ||
    fail "kinit $u from c2: $(cat "$w/kinit-$u.out")"
done
chmod 644 "$w/krb5.conf" "$w/krb5-v6.conf"

# ---- Configs and bosservers. -----------------------------------------------------------------

dbservers=
for i in 1 2 3; do dbservers+="${dbservers:+,}[${v6[db$i]}]:7003=heka/db$i@$realm"; done

# bos_config HOST LISTEN: the start of HOST's bosserver.toml.
bos_config() {
  printf 'provider_admins = ["admin@%s"]\n\n[bos]\nlisten = ["%s"]\n' "$realm" "$2"
  printf 'principal = "heka/%s@%s"\nkeytab = "%s"\nstate_dir = "%s"\n' "$1" "$realm" "$w/$1/heka.keytab" "$w/$1/bos"
}

for i in 1 2 3; do
  h=db$i
  mkdir -p "$w/$h/data"
  {
    printf 'provider_admins = ["admin@%s"]\n\n[member]\nid = %d\n' "$realm" "$i"
    printf 'address = "[%s]:7003"\n' "${v6[$h]}"
    printf 'principal = "heka/%s@%s"\nkeytab = "%s"\ndata_dir = "%s"\n' "$h" "$realm" "$w/$h/heka.keytab" "$w/$h/data"
    for j in 1 2 3; do
      printf '\n[[peers]]\nid = %d\naddress = "[%s]:7003"\nprincipal = "heka/db%d@%s"\n' "$j" "${v6[db$j]}" "$j" "$realm"
    done
  } >"$w/$h/dbserver.toml"
  {
    bos_config "$h" "${v4[$h]}:7300"
    printf '\n[[instance]]\nname = "db"\ncommand = ["%s", "--config", "%s", "--bootstrap", "--log", "%s"]\n' \
      "$bin/heka-dbserver" "$w/$h/dbserver.toml" "$w/$h/dbserver.log"
  } >"$w/$h/bosserver.toml"
done

declare -A fs_addr=([fs1]="${v4[fs1]}:7000" [fs2]="[${v6[fs2]}]:7000")
declare -A bos_addr=([db1]="${v4[db1]}:7300" [db2]="${v4[db2]}:7300" [db3]="${v4[db3]}:7300"
  [fs1]="${v4[fs1]}:7300" [fs2]="[${v6[fs2]}]:7300" [c1]="${v4[c1]}:7300" [c2]="${v4[c2]}:7300")
for h in fs1 fs2; do
  mkdir -p "$w/$h/state" "$w/$h/vicepa"
  {
    printf 'provider_admins = ["admin@%s"]\n\n[server]\nadvertise = ["%s"]\n' "$realm" "${fs_addr[$h]}"
    printf 'principal = "heka/%s@%s"\nkeytab = "%s"\n' "$h" "$realm" "$w/$h/heka.keytab"
    printf 'state_dir = "%s"\npartitions = ["%s"]\ndbservers = "%s"\n' "$w/$h/state" "$w/$h/vicepa" "$dbservers"
  } >"$w/$h/fileserver.toml"
  {
    bos_config "$h" "${bos_addr[$h]}"
    printf '\n[[instance]]\nname = "fs"\ntype = "fs"\ncommand = ["%s", "--config", "%s", "--log", "%s"]\n' \
      "$bin/heka-fileserver" "$w/$h/fileserver.toml" "$w/$h/fileserver.log"
    printf 'salvage_command = ["%s", "--config", "%s", "--salvage"]\n' "$bin/heka-fileserver" "$w/$h/fileserver.toml"
  } >"$w/$h/bosserver.toml"
done

for h in c1 c2; do
  mkdir -p "$w/$h/heka" "$w/$h/cm"
  {
    printf '[cachemgr]\nmountpoint = "%s"\ndbservers = "%s"\ncells = ["demo"]\n' "$w/$h/heka" "$dbservers"
    printf 'keytab = "%s"\nprincipal = "heka/%s@%s"\nstate_dir = "%s"\n' "$w/$h/heka.keytab" "$h" "$realm" "$w/$h/cm"
    printf 'control_socket = "%s"\n' "$w/$h/cachemgr.sock"
  } >"$w/$h/cachemgr.toml"
  {
    bos_config "$h" "${bos_addr[$h]}"
    printf '\n[[instance]]\nname = "cachemgr"\ncommand = ["%s", "--config", "%s", "--log", "%s"]\n' \
      "$bin/heka-cachemgr" "$w/$h/cachemgr.toml" "$w/$h/cachemgr.log"
  } >"$w/$h/bosserver.toml"
done

# start_bos HOST [unshare -m ...]: HOST's heka-bosserver, in HOST's network namespace (a client
# host's also in a mount namespace of its own, where its cache manager mounts). `ip netns exec`,
# `unshare` (without --fork) and `env` all exec, so $! is the bosserver itself.
start_bos() {
  local h=$1
  shift
  ip netns exec "$prefix$h" "$@" env KRB5_CONFIG="$(krb5conf "$h")" KRB5RCACHEDIR="$w/$h" \
    KRB5CCNAME="FILE:$w/$h/default.ccache" KRB5_KTNAME="FILE:$w/$h/heka.keytab" \
    "$bin/heka-bosserver" --config "$w/$h/bosserver.toml" --log "$w/$h/bos.log" \
    </dev/null >"$w/$h/bos.out" 2>&1 &
  echo $! >"$w/$h/pid"
}
is_bos() { [[ $(cat "/proc/$(<"$w/$1/pid")/comm" 2>/dev/null) == heka-bosserver ]]; }

say "starting heka-bosserver on db1 db2 db3 fs1 fs2"
for h in db1 db2 db3 fs1 fs2; do start_bos "$h"; done
for h in db1 db2 db3 fs1 fs2; do wait_for 10 "$h's heka-bosserver" is_bos "$h"; done

leader() { as_admin db status -format json 2>/dev/null | grep -o '"address":"[^"]*","role":"leader"' | cut -d'"' -f4; }
has_leader() { [[ -n $(leader) ]]; }
wait_for 60 "a DB leader" has_leader
say "DB leader: $(leader)"

# ---- (1) The cell across the hosts. ----------------------------------------------------------

as_admin cell create -name demo -realm "$realm" >/dev/null || fail "cell create"
as_admin pts createuser -name "alice@$realm" -cell demo >/dev/null || fail "pts createuser alice"
as_admin pts createuser -name "admin@$realm" -cell demo >/dev/null || fail "pts createuser admin"
as_admin pts adduser -user admin -group system:administrators -cell demo >/dev/null || fail "pts adduser"
registered() { grep -q "registered in the VLDB" "$w/$1/fileserver.log" 2>/dev/null; }
wait_for 60 "fs1 to register in the VLDB" registered fs1
wait_for 60 "fs2 (IPv6 only) to register in the VLDB" registered fs2
as_admin vos create -server "${fs_addr[fs1]}" -partition "$w/fs1/vicepa" -name root.cell -cell demo >/dev/null ||
  fail "vos create root.cell on fs1"
as_admin vos create -server "${fs_addr[fs2]}" -partition "$w/fs2/vicepa" -name proj -cell demo >/dev/null ||
  fail "vos create proj on fs2 ([2001:db8::22]:7000)"

say "starting heka-bosserver + heka-cachemgr on c1 c2"
mounted() { [[ -n $(mount_id "$1") ]]; }
for h in c1 c2; do start_bos "$h" unshare -m --propagation private; done
for h in c1 c2; do
  wait_for 10 "$h's heka-bosserver" is_bos "$h"
  wait_for 30 "$h's cache manager to mount $w/$h/heka" mounted "$h"
done
for h in c1 c2; do
  grep -q " $w/$h/heka " /proc/mounts && fail "$h's mount is visible in the root namespace"
done

out=$(on c1 admin "$bin/heka" fs setacl -dir "$w/c1/heka/demo" -acl system:authuser rl alice rlidwk 2>&1) ||
  fail "fs setacl on demo: $out"
out=$(on c1 admin "$bin/heka" fs mkmount -dir "$w/c1/heka/demo/proj" -vol proj 2>&1) || fail "fs mkmount proj: $out"
out=$(on c1 admin "$bin/heka" fs setacl -dir "$w/c1/heka/demo/proj" -acl system:authuser rl alice rlidwk 2>&1) ||
  fail "fs setacl on proj: $out"
where=$(on c2 alice "$bin/heka" fs whereis -path "$w/c2/heka/demo/proj" 2>&1) || fail "fs whereis proj on c2: $where"
[[ $where == *2001:db8::22* ]] || fail "proj is not on fs2: $where"

write_file c1 hello.txt "hello from c1"
expect_content c2 hello.txt "hello from c1"
write_file c1 proj/p1.txt "proj one"
expect_content c2 proj/p1.txt "proj one"
write_file c2 shared.txt "shared v1"
expect_content c1 shared.txt "shared v1"
for h in db1 db2 db3 fs1 fs2 c1 c2; do
  st=$(as_admin bos status -server "${bos_addr[$h]}" -principal "heka/$h@$realm" 2>&1) || fail "bos status on $h: $st"
  [[ $st == *"running normally"* ]] || fail "bos on $h does not report its instance running: $st"
done
say "(1) ok: cell up on 7 hosts; alice wrote on c1 and read on c2 (fs1 over IPv4, fs2 over IPv6)"

# ---- (2) A DB host's link cut. ---------------------------------------------------------------

lead=$(leader)
dbcut=
for i in 1 2 3; do [[ $lead == "[${v6[db$i]}]:7003" ]] && dbcut=db$i; done
[[ -n $dbcut ]] || fail "leader $lead is none of the members"
say "(2) cutting the DB leader $dbcut's link"
link_down "$dbcut"
t0=$SECONDS
lap_start
# At once: fs1 registers the new volume in the VLDB through the connection it holds to the
# leader that just went silent, and must go on to the other members.
out=$(as_admin vos create -server "${fs_addr[fs1]}" -partition "$w/fs1/vicepa" -name dbcut -cell demo 2>&1) ||
  fail "vos create with $dbcut cut: $out"
lap "vos create dbcut"
out=$(as_admin pts createuser -name "bob@$realm" -cell demo 2>&1) || fail "pts createuser with $dbcut cut: $out"
lap "pts createuser bob"
out=$(as_admin pts examine -nameorid bob -cell demo 2>&1) || fail "pts examine with $dbcut cut: $out"
[[ $out == *bob* ]] || fail "pts examine bob: $out"
lap "pts examine bob"
out=$(on c2 admin "$bin/heka" fs mkmount -dir "$w/c2/heka/demo/dbcut" -vol dbcut 2>&1) || fail "fs mkmount with $dbcut cut: $out"
lap "fs mkmount dbcut (c2)"
out=$(on c2 admin "$bin/heka" fs setacl -dir "$w/c2/heka/demo/dbcut" -acl alice rlidwk 2>&1) || fail "fs setacl: $out"
lap "fs setacl dbcut (c2)"
write_file c1 dbcut/in-new-volume.txt "written while $dbcut was cut"
lap "c1 writes a file in dbcut"
expect_content c2 dbcut/in-new-volume.txt "written while $dbcut was cut"
lap "c2 reads it"
write_file c2 while-db-cut.txt "db cut"
lap "c2 writes a file in root.cell"
expect_content c1 while-db-cut.txt "db cut"
lap "c1 reads it"
expect_content c1 proj/p1.txt "proj one"
lap "c1 reads proj/p1.txt"
new_leader=$(leader)
[[ -n $new_leader && $new_leader != "$lead" ]] || fail "no new DB leader while $dbcut is cut (leader: '$new_leader')"
say "    new leader $new_leader; restoring $dbcut's link after $((SECONDS - t0))s"
link_up "$dbcut"
# Back in the cluster: it answers status again and has applied what was written meanwhile.
caught_up() {
  local st
  st=$(as_admin db status -format json 2>/dev/null) || return 1
  [[ $st != *unreachable* ]] || return 1
  [[ $(grep -o '"applied":[0-9]*' <<<"$st" | sort -u | wc -l) -eq 1 ]]
}
wait_for 60 "$dbcut to answer again and catch up" caught_up
out=$(as_admin pts examine -nameorid bob -cell demo 2>&1) || fail "pts examine after restoring $dbcut: $out"
say "(2) ok: PTDB/VLDB writes and reads, a new volume, file I/O while the DB leader was cut; it caught up"

# ---- (3) c1's link cut while c1 closes a file. -----------------------------------------------

write_file c1 before-cut.txt "closed before the cut"
expect_content c1 shared.txt "shared v1"  # c1 holds it (with a callback)
mid_before=$(mount_id c1)
say "(3) a writer on c1 opens during.txt and writes; then c1's link is cut; then it closes"
mkfifo "$w/fifo"
# nsenter and env exec: $! is dd itself (its /proc entry shows what it is doing).
nsenter -t "$(<"$w/c1/pid")" -m -n -- env KRB5_CONFIG="$w/krb5.conf" KRB5CCNAME="FILE:$w/alice.ccache" \
  dd if="$w/fifo" of="$w/c1/heka/demo/during.txt" bs=64k 2>"$w/dd.err" &
dd_pid=$!
exec 7>"$w/fifo"
printf 'part one\n' >&7
wrote() { [[ $(awk '/^wchar/ {print $2}' "/proc/$dd_pid/io" 2>/dev/null) -ge 9 ]]; }
wait_for 30 "the writer to write its first part" wrote
[[ $(cat "/proc/$dd_pid/comm") == dd ]] || fail "pid $dd_pid is not dd"
dead_peers() { grep -c "connection from .* (${v4[c1]}:[0-9]*) closed: unavailable: peer not responding" "$w/fs1/fileserver.log" || true; }
dead_before=$(dead_peers)
link_down c1
t0=$SECONDS
printf 'part two\n' >&7
exec 7>&-
# Either close(2) is under way (syscall 3 on x86-64, 57 on aarch64) or it has already returned.
dd_alive() { [[ -r /proc/$dd_pid/stat && $(awk '{print $3}' "/proc/$dd_pid/stat") != Z ]]; }
closing() {
  dd_alive || return 0
  local nr
  nr=$(cut -d' ' -f1 "/proc/$dd_pid/syscall" 2>/dev/null)
  [[ $nr == 3 || $nr == 57 ]]
}
wait_for 30 "the writer on c1 to close its file" closing
# Meanwhile the rest of the cell works: c2 changes a file c1 holds (c1 misses the callback break).
write_file c2 shared.txt "shared v2, written while c1 was cut off"
expect_content c2 hello.txt "hello from c1"
# The link stays cut until fs1 has given c1 up (its connections from c1 fall silent and close),
# or the close has returned.
fs1_gave_up() { ! dd_alive || (($(dead_peers) > dead_before)); }
wait_for 60 "fs1 to close its connections from c1, or the writer's close to return" fs1_gave_up
cut_for=$((SECONDS - t0))
dd_alive && state="still in close" || state="done"
say "    restoring c1's link after ${cut_for}s (writer: $state)"
link_up c1
t1=$SECONDS
dd_gone() { ! dd_alive; }
wait_for 120 "the writer's close on c1 to return after the link came back" dd_gone
dd_rc=0
wait "$dd_pid" || dd_rc=$?
say "    the writer's close returned $((SECONDS - t1))s after the link came back: exit $dd_rc $(tail -1 "$w/dd.err" | tr -d '\n')"
# c1 works again, on the same mount: a new file, and what c2 wrote meanwhile.
wait_for 60 "c1 to write again after its link returned" sh_on c1 alice 'printf after > "$M/after-cut.txt"'
[[ $(mount_id c1) == "$mid_before" ]] || fail "c1's mount changed (was $mid_before, now $(mount_id c1))"
expect_content c2 after-cut.txt "after"
expect_content c1 shared.txt "shared v2, written while c1 was cut off"
expect_content c2 before-cut.txt "closed before the cut"
expect_content c2 hello.txt "hello from c1"
if ((dd_rc == 0)); then
  expect_content c2 during.txt $'part one\npart two'
  expect_content c1 during.txt $'part one\npart two'
else
  grep -Eq 'Input/output error|Connection timed out|No route to host|Network is unreachable' "$w/dd.err" ||
    fail "the writer's close failed without a clear message: $(cat "$w/dd.err")"
fi
say "(3) ok: c1 recovered without a remount (mount $mid_before); closed files are on c2"

# ---- (4) fs2's link cut. ---------------------------------------------------------------------

write_file c1 proj/p2.txt "proj two, never read on c2"
expect_content c2 proj/p1.txt "proj one"
say "(4) cutting fs2's link"
link_down fs2
t0=$SECONDS
# A file c2 never read: the read fails with a clear error within a bounded time.
if out=$(sh_on c2 alice 'cat "$M/proj/p2.txt"' 2>&1); then fail "reading proj/p2.txt with fs2 cut gave '$out'"; fi
t_read=$((SECONDS - t0))
[[ $out == *"Input/output error"* || $out == *"Connection timed out"* || $out == *"No route to host"* ]] ||
  fail "reading proj/p2.txt with fs2 cut: unclear error '$out'"
((t_read <= 60)) || fail "reading proj/p2.txt with fs2 cut took ${t_read}s"
say "    reading fs2's file failed after ${t_read}s: $out"
t0=$SECONDS
if out=$(sh_on c2 alice 'printf x > "$M/proj/new.txt"' 2>&1); then fail "writing proj/new.txt with fs2 cut succeeded"; fi
t_write=$((SECONDS - t0))
[[ $out == *"Input/output error"* || $out == *"Connection timed out"* || $out == *"No route to host"* ]] ||
  fail "writing proj/new.txt with fs2 cut: unclear error '$out'"
((t_write <= 60)) || fail "writing proj/new.txt with fs2 cut took ${t_write}s"
say "    writing into fs2's volume failed after ${t_write}s: $out"
# fs1's volume is not affected.
write_file c2 during-fs2-cut.txt "fs1 works"
expect_content c1 during-fs2-cut.txt "fs1 works"
expect_content c1 hello.txt "hello from c1"
say "    restoring fs2's link"
link_up fs2
reads_p2() { [[ $(sh_on c2 alice 'cat "$M/proj/p2.txt"' 2>/dev/null) == "proj two, never read on c2" ]]; }
wait_for 60 "c2 to read fs2's file again" reads_p2
write_file c2 proj/p3.txt "after fs2 returned"
expect_content c1 proj/p3.txt "after fs2 returned"
expect_content c1 proj/p1.txt "proj one"
[[ $(mount_id c1) == "$mid_before" ]] || fail "c1's mount changed"
say "(4) ok: fs2's volume gave clear errors only while cut, fs1's kept working"

say "all scenarios passed"
