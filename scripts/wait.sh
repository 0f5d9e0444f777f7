# Waiting for a condition with a deadline, for scripts and shell tests: source this file.

# wait_until SECONDS CMD...: polls CMD (every 0.1 s) until it succeeds; returns 1 if it has not
# after SECONDS.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# wait_exit SECONDS PID: waits until process PID has exited; returns 1 if it has not after
# SECONDS.
wait_exit() {
  timeout "$1" tail --pid="$2" -f /dev/null
}
