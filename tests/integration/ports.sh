# SPDX-License-Identifier: Apache-2.0
# ports.sh - free_port: a free loopback TCP port for a server a test starts.
# Sourced by lib.sh and pg_lib.sh, not run.
# Ports come from below the kernel's ephemeral range: a port inside it can be
# the local end of another process's outgoing connection, which a connect
# probe reports as free but a server cannot bind (CI saw mosquitto die so).
# Tests run in parallel, so a port found free can still be taken before the
# server binds it: servers that can say "Address already in use" are retried
# on another port by their start functions.
free_port() {
  local low=32768 p
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  [ "$low" -gt 12000 ] || { echo "FAIL: ephemeral ports start at $low; no room below for test servers" >&2; exit 1; }
  for _ in $(seq 100); do
    p=$((10000 + RANDOM % (low - 10000)))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "FAIL: no free loopback port below $low" >&2; exit 1
}
