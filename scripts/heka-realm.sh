#!/usr/bin/env bash
# heka-realm.sh: a throw-away MIT Kerberos realm on loopback for the local demo (./heka-local).
# The same configuration as the tests' TestRealm (tests/support/test_realm.cc).
#
#   heka-realm.sh start DIR [REALM] [PORT]    create the realm in DIR if needed, start krb5kdc
#   heka-realm.sh stop DIR                    stop the KDC started from DIR
#   heka-realm.sh addprinc DIR NAME PASSWORD  add a user principal
#   heka-realm.sh addservice DIR NAME KEYTAB  add a service principal, write its key to KEYTAB
#   heka-realm.sh env DIR                     print `export KRB5_CONFIG=...` lines for eval
#
# REALM defaults to HEKA.TEST and PORT to 8888 (both are only used when DIR is new).
set -euo pipefail

readonly PROG=${0##*/}
export PATH="$PATH:/usr/sbin:/sbin:/usr/local/sbin"

die() {
  echo "$PROG: $*" >&2
  exit 1
}

usage() {
  sed -n 's/^#   \(heka-realm\.sh \)/usage: \1/p' "$0" >&2
  exit 2
}

# abs DIR: DIR as an absolute path (DIR need not exist yet).
abs() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}

use_realm() {
  local dir=$1
  [[ -f $dir/krb5.conf && -f $dir/kdc.conf && -f $dir/realm ]] ||
    die "no realm in $dir (run: $PROG start $dir)"
  export KRB5_CONFIG=$dir/krb5.conf KRB5_KDC_PROFILE=$dir/kdc.conf
  REALM=$(<"$dir/realm")
}

# run CMD...: runs CMD quietly; on failure prints its output and exits.
run() {
  local out
  if ! out=$("$@" 2>&1); then
    die "\`$*\` failed: ${out//$'\n'/ }"
  fi
}

# kadmin QUERY: runs one kadmin.local query. kadmin.local -q exits 0 even when the query fails,
# so its stderr, apart from the "No policy specified" notice, counts as the error.
kadmin() {
  local err
  if ! err=$(kadmin.local -r "$REALM" -q "$1" 2>&1 >/dev/null); then
    die "kadmin.local -q '$1' failed: ${err//$'\n'/ }"
  fi
  err=$(grep -v -e '^No policy specified for ' -e '^$' <<<"$err" || true)
  [[ -z $err ]] || die "kadmin.local -q '$1': ${err//$'\n'/ }"
}

kdc_running() {
  local dir=$1 pid
  [[ -s $dir/kdc.pid ]] || return 1
  pid=$(<"$dir/kdc.pid")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == krb5kdc ]]
}

write_configs() {
  local dir=$1 realm=$2 port=$3
  cat >"$dir/krb5.conf" <<EOF
[libdefaults]
  default_realm = $realm
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1

[realms]
  $realm = {
    kdc = 127.0.0.1:$port
  }
EOF
  cat >"$dir/kdc.conf" <<EOF
[kdcdefaults]
  kdc_listen = 127.0.0.1:$port
  kdc_tcp_listen = 127.0.0.1:$port

[realms]
  $realm = {
    database_name = $dir/principal
    key_stash_file = $dir/stash
    acl_file = $dir/kadm5.acl
    max_life = 1d
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }

[logging]
  kdc = FILE:$dir/kdc.log
EOF
  : >"$dir/kadm5.acl"
  printf '%s\n' "$realm" >"$dir/realm"
}

# wait_for DESCRIPTION COMMAND...: polls COMMAND every 0.1 s for up to 10 s.
wait_for() {
  local what=$1
  shift
  local i
  for ((i = 0; i < 100; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  die "timed out waiting for $what"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_start() {
  [[ $# -ge 1 && $# -le 3 ]] || usage
  local dir realm port
  dir=$(abs "$1")
  if [[ -f $dir/realm ]]; then
    realm=$(<"$dir/realm")
    port=$(sed -n 's/^ *kdc_tcp_listen = 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/kdc.conf")
    [[ -z ${2:-} || $2 == "$realm" ]] || die "$dir already holds realm $realm, not $2"
    [[ -z ${3:-} || $3 == "$port" ]] || die "$dir already uses port $port, not $3"
  else
    realm=${2:-HEKA.TEST}
    port=${3:-8888}
    [[ $port =~ ^[0-9]+$ ]] || die "bad port: $port"
    mkdir -p "$dir"
    chmod 700 "$dir"
    write_configs "$dir" "$realm" "$port"
  fi
  kdc_running "$dir" && return 0
  use_realm "$dir"
  if [[ ! -f $dir/principal ]]; then
    local master
    master=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    run kdb5_util -r "$REALM" create -s -P "$master"
  fi
  port_open "$port" && die "port $port on 127.0.0.1 is already in use"
  rm -f "$dir/kdc.pid"
  run krb5kdc -r "$REALM" -P "$dir/kdc.pid"
  wait_for "krb5kdc to listen on 127.0.0.1:$port (see $dir/kdc.log)" port_open "$port"
  wait_for "krb5kdc to write $dir/kdc.pid" kdc_running "$dir"
}

cmd_stop() {
  [[ $# -eq 1 ]] || usage
  local dir pid
  dir=$(abs "$1")
  if ! kdc_running "$dir"; then
    rm -f "$dir/kdc.pid"
    return 0
  fi
  pid=$(<"$dir/kdc.pid")
  kill "$pid"
  wait_for "krb5kdc (pid $pid) to exit" eval "! kill -0 $pid 2>/dev/null"
  rm -f "$dir/kdc.pid"
}

cmd_addprinc() {
  [[ $# -eq 3 ]] || usage
  local dir
  dir=$(abs "$1")
  use_realm "$dir"
  [[ $3 != *'"'* ]] || die "passwords cannot contain '\"'"
  kadmin "addprinc -pw \"$3\" $2"
}

cmd_addservice() {
  [[ $# -eq 3 ]] || usage
  local dir keytab
  dir=$(abs "$1")
  keytab=$(abs "$3")
  use_realm "$dir"
  kadmin "addprinc -randkey $2"
  kadmin "ktadd -k FILE:$keytab $2"
}

cmd_env() {
  [[ $# -eq 1 ]] || usage
  local dir
  dir=$(abs "$1")
  use_realm "$dir"
  printf 'export KRB5_CONFIG=%q\n' "$KRB5_CONFIG"
  printf 'export KRB5_KDC_PROFILE=%q\n' "$KRB5_KDC_PROFILE"
}

main() {
  [[ $# -ge 1 ]] || usage
  local sub=$1
  shift
  case $sub in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    addprinc) cmd_addprinc "$@" ;;
    addservice) cmd_addservice "$@" ;;
    env) cmd_env "$@" ;;
    -h | --help | help) usage ;;
    *) die "unknown subcommand: $sub (try: start, stop, addprinc, addservice, env)" ;;
  esac
}

main "$@"
