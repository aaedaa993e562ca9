#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench_provision.sh - issuances per second through the agent's provisioning
# client (agent/provision_client.c via tests/tools/pv_load: keep-alive, one
# client per station thread) against provisiond signing a CSR per unit with
# ECDSA P-256, over plain HTTP on loopback and over mutual TLS. Prints one
# benchmark result line per mode on stdout (bench_util.h; deploy/bench.sh
# collects them), each beside bare OpenSSL X509_sign of an issued certificate
# on every core, measured in the same run; progress and CPU per issuance of
# client and server on stderr. Fails when an issuance fails or the audit
# finds anything.
# usage: PROVISIOND_BIN=... PV_LOAD_BIN=... bench_provision.sh [UNITS] [CLIENTS]
set -euo pipefail
for v in PROVISIOND_BIN PV_LOAD_BIN; do
  [ -x "${!v:-}" ] || { echo "bench_provision: $v must name the built binary (now: '${!v:-}')" >&2; exit 2; }
done
PROVISIOND=$(readlink -f "$PROVISIOND_BIN")
PV_LOAD=$(readlink -f "$PV_LOAD_BIN")
N=${1:-10000}
C=${2:-16}
W=$(mktemp -d /tmp/bench-provision.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT

(cd "$W"
 for ca in tlsca stationca; do
   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$ca" \
     -keyout $ca.key -out $ca.pem 2>/dev/null
 done
 for c in server:tlsca:subjectAltName=IP:127.0.0.1 station:stationca:extendedKeyUsage=clientAuth; do
   IFS=: read -r name ca ext <<<"$c"
   openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
     -keyout $name.key -out $name.csr 2>/dev/null
   echo "$ext" >$name.ext
   openssl x509 -req -in $name.csr -CA $ca.pem -CAkey $ca.key -CAcreateserial -days 2 -extfile $name.ext \
     -out $name.pem 2>/dev/null
 done)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # run MODE(plain|mtls) SCENARIO
  local mode=$1 scenario=$2 tls=""
  rm -f "$W"/ledger.db*
  [ "$mode" = mtls ] && tls="tls_cert = $W/server.pem
tls_key = $W/server.key
client_ca = $W/stationca.pem"
  cat >"$W/pv.conf" <<CONF
[server]
listen = 127.0.0.1:0
$tls
[ledger]
path = $W/ledger.db
[ca]
cert = $W/ca.pem
key = $W/ca.key
[product BENCH]
serial_format = B{seq:08}
mac_first = 02:00:00:00:00:00
mac_last = 02:00:00:ff:ff:ff
macs_per_unit = 2
factory_code = F01
CONF
  [ -f "$W/ca.pem" ] || "$PROVISIOND" init-ca -c "$W/pv.conf" >/dev/null
  "$PROVISIOND" serve -c "$W/pv.conf" 2>"$W/serve.log" &
  PID=$!
  for _ in $(seq 200); do grep -qs "listening on" "$W/serve.log" && break; sleep 0.1; done
  local port
  port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$W/serve.log")
  [ -n "$port" ] || { echo "bench_provision: provisiond did not start:" >&2; cat "$W/serve.log" >&2; exit 1; }
  local args=() scheme=http
  [ "$mode" = mtls ] && { scheme=https; args=(--ca "$W/tlsca.pem" --cert "$W/station.pem" --key "$W/station.key"); }
  echo "bench_provision: $mode: $N units, $C keep-alive clients, CSRs made beforehand (the board makes them on a line)" >&2
  # The server's CPU from its start on: idle until the first request.
  "$PV_LOAD" "$scheme://127.0.0.1:$port" "$N" "$C" "$W/out.txt" --product BENCH --pregen "${args[@]}" \
    --bench "$scenario" >"$W/load.out" || { cat "$W/load.out" >&2; exit 1; }
  local ticks
  ticks=$(cpu_ticks "$PID")
  grep -v '^{' "$W/load.out" | sed 's/^/bench_provision: /' >&2
  echo "bench_provision: server CPU $((ticks * 1000000 / $(getconf CLK_TCK) / N)) us per issuance" >&2
  grep '^{' "$W/load.out"
  kill "$PID"; wait "$PID" || true; PID=""
  "$PROVISIOND" audit -c "$W/pv.conf" >"$W/audit.out" || { cat "$W/audit.out" >&2; exit 1; }
}
echo "bench_provision: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
run plain "provisioning, plain HTTP"
run mtls "provisioning, mTLS"
