# SPDX-License-Identifier: Apache-2.0
# pv_lib.sh - provisiond helpers for the integration tests, sourced after
# lib.sh: $PROVISIOND and $PV_LOAD (need_bin: PROVISIOND_BIN, PV_LOAD_BIN), a
# test PKI made with the openssl command line, a server started on a free
# loopback port.
PROVISIOND=$(need_bin PROVISIOND_BIN)
PV_LOAD=$(need_bin PV_LOAD_BIN)
for tool in openssl sqlite3 curl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (deploy/deps.sh test installs it)"
done

# make_pki DIR: a TLS CA with a server certificate for 127.0.0.1, a station CA
# with one station certificate, and a rogue CA with a certificate of its own.
make_pki() {
  local d=$1
  mkdir -p "$d"
  (
    cd "$d"
    pki_ca tlsca; pki_ca stationca; pki_ca rogueca
    pki_issue server tlsca "subjectAltName=IP:127.0.0.1,DNS:localhost"
    pki_issue station1 stationca "extendedKeyUsage=clientAuth"
    pki_issue rogue rogueca "extendedKeyUsage=clientAuth"
    chmod 600 ./*.key
  )
}

# write_pv_config FILE TLS(0|1) [MAC_LAST]: one product PCBA-100, 2 MACs a unit.
write_pv_config() {
  local file=$1 tls=$2 last=${3:-02:00:5e:ff:ff:ff}
  {
    echo "[server]"
    echo "listen = 127.0.0.1:0"
    if [ "$tls" = 1 ]; then
      echo "tls_cert = $T/pki/server.pem"
      echo "tls_key = $T/pki/server.key"
      echo "client_ca = $T/pki/stationca.pem"
    fi
    echo "[ledger]"
    echo "path = $T/ledger.db"
    echo "[ca]"
    echo "cert = $T/factory-ca.pem"
    echo "key = $T/factory-ca.key"
    echo "[product PCBA-100]"
    echo "serial_format = {product}-{yy}{ww}-{seq:06}"
    echo "mac_first = 02:00:5e:00:00:00"
    echo "mac_last = $last"
    echo "macs_per_unit = 2"
    echo "cert_days = 365"
    echo "factory_code = F01"
  } >"$file"
  [ -f "$T/factory-ca.pem" ] || "$PROVISIOND" init-ca -c "$file" >/dev/null || fail "init-ca failed"
}

PV_RUN=0
start_provisiond() { # start_provisiond CONFIG: sets PV_PORT, PV_PID, PV_LOG
  PV_RUN=$((PV_RUN + 1))
  PV_LOG="$T/provisiond$PV_RUN.log"
  "$PROVISIOND" serve -c "$1" >"$PV_LOG" 2>&1 &
  PV_PID=$!
  PIDS+=("$PV_PID")
  wait_for 10 "provisiond listening" grep -qs "listening on" "$PV_LOG"
  PV_PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$PV_LOG")
}

stop_provisiond() {
  kill -TERM "$PV_PID"
  local rc=0
  wait "$PV_PID" || rc=$?
  [ "$rc" -eq 0 ] || fail "provisiond exited $rc after SIGTERM"
}

ledger_count() { sqlite3 "$T/ledger.db" "SELECT count(*) FROM $1"; }
