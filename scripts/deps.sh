# Sourced by ./run-tests and ./heka-local: the Debian 12 packages Heka needs, and a function
# that installs the missing ones (apt-get as root, else through sudo).
HEKA_PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libkrb5-dev krb5-kdc krb5-admin-server krb5-user
  libssl-dev libboost-dev libprotobuf-dev protobuf-compiler
  libspdlog-dev libfmt-dev libtomlplusplus-dev
  libraft-dev libuv1-dev libsqlite3-dev sqlite3
  libgtest-dev libgmock-dev
  clang libclang-rt-14-dev faketime
  libfuse3-dev fuse3
  python3 python3-cryptography
)

heka_install_packages() {
  local missing=() p
  for p in "${HEKA_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  echo "installing Debian packages: ${missing[*]}"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}
