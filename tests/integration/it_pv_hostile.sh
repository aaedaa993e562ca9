#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# provisiond against hostile peers: TLS below 1.2, no client certificate, a
# foreign CA's, a station certificate without the station key usage and a
# device certificate of the factory CA are all refused in the handshake with
# a log line naming why; a station may only speak for its certificate's
# subject; a 10^12-byte Content-Length gets 413 on its headers; slow-loris
# clients (raw TCP and TLS sending a byte every half second) and a flood of
# idle connections are cut off by the per-address limit and the request
# deadline, while stations on another address keep being served.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pv_lib.sh"

make_pki "$T/pki"
P=$T/pki
# A station-CA certificate for a server, not a station (no clientAuth).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=noeku" \
  -keyout "$P/noeku.key" -out "$P/noeku.csr" 2>/dev/null
printf 'extendedKeyUsage=serverAuth\n' >"$P/noeku.ext"
openssl x509 -req -in "$P/noeku.csr" -CA "$P/stationca.pem" -CAkey "$P/stationca.key" -CAcreateserial -days 30 \
  -extfile "$P/noeku.ext" -out "$P/noeku.pem" 2>/dev/null
write_pv_config "$T/pv.conf" 1
# client_ca trusts the factory CA too (a bundle set up carelessly): device
# certificates chain, and must still not pass as stations.
cat "$P/stationca.pem" "$T/factory-ca.pem" >"$P/clients.pem"
sed -i "s#^client_ca = .*#client_ca = $P/clients.pem\nmax_connections = 16\nmax_connections_per_ip = 4\nrequest_timeout = 3#" \
  "$T/pv.conf"
start_provisiond "$T/pv.conf"
URL="https://127.0.0.1:$PV_PORT"
STATION=(--cacert "$P/tlsca.pem" --cert "$P/station1.pem" --key "$P/station1.key")
unit() { # unit BOARD STATION: the request body
  printf '{"product":"PCBA-100","board_id":"%s","lot_id":"L","order_id":"O","station":"%s"}' "$1" "$2"
}

# --- TLS 1.2 is the floor
tls_floor "$PV_PORT" "$P/tlsca.pem" -cert "$P/station1.pem" -key "$P/station1.key"
pass "TLS 1.0 and 1.1 handshakes fail where the same client's TLS 1.2 handshake succeeds"

# ...and the agent's provisioning client will not speak TLS 1.1 either: a
# server offering only TLS 1.1 (RSA key exchange, so no signature algorithm
# stands in the way) is refused on the version.
openssl req -new -newkey rsa:2048 -nodes -subj "/CN=old" -keyout "$P/old.key" -out "$P/old.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$P/old.ext"
openssl x509 -req -in "$P/old.csr" -CA "$P/tlsca.pem" -CAkey "$P/tlsca.key" -CAcreateserial -days 30 \
  -extfile "$P/old.ext" -out "$P/old.pem" 2>/dev/null
OLD_PORT=$(free_port)
openssl s_server -accept "127.0.0.1:$OLD_PORT" -tls1_1 -cipher 'AES128-SHA:@SECLEVEL=0' -cert "$P/old.pem" \
  -key "$P/old.key" -quiet </dev/null >"$T/s_server.log" 2>&1 &
PIDS+=($!)
wait_for 10 "TLS 1.1 server" port_open "$OLD_PORT"
if "$PV_LOAD" "https://127.0.0.1:$OLD_PORT" 1 1 "$T/old.txt" --prefix OLD --ca "$P/tlsca.pem" \
  --cert "$P/station1.pem" --key "$P/station1.key" >"$T/old.out" 2>&1; then fail "provisioning client spoke TLS 1.1"; fi
grep -qiE "protocol version|unsupported protocol" "$T/old.out" "$T/s_server.log" \
  || fail "TLS 1.1 refusal for another reason: $(cat "$T/old.out" "$T/s_server.log")"
pass "the provisioning client refuses a TLS 1.1-only server: $(grep -m1 -ohiE '[^:]*(protocol version|unsupported protocol)[^:]*' "$T/old.out" "$T/s_server.log")"

# --- certificates refused in the handshake, each with its reason logged
device=$(curl -sf "${STATION[@]}" -X POST --data-binary "$(unit DEV-1 station1)" "$URL/v1/units") \
  || fail "issuing a device identity failed"
jq -r .certificate <<<"$device" >"$P/device.pem"
jq -r .private_key <<<"$device" >"$P/device.key"
refused() { # refused WHO LOGTEXT CURL-ARGS...
  local who=$1 text=$2 code
  shift 2
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$P/tlsca.pem" "$@" "$URL/v1/health" || true)
  [ "$code" = 000 ] || fail "$who: served ($code)"
  wait_for 5 "log line for $who" grep -q "refused TLS client 127.0.0.1: $text" "$PV_LOG"
}
refused "no certificate" "no client certificate"
refused "foreign CA" "client certificate not issued by the station CA" --cert "$P/rogue.pem" --key "$P/rogue.key"
refused "no clientAuth" "client certificate lacks the station extended key usage 1.3.6.1.5.5.7.3.2" \
  --cert "$P/noeku.pem" --key "$P/noeku.key"
refused "device certificate" "a device certificate of the factory CA is not a station certificate" \
  --cert "$P/device.pem" --key "$P/device.key"
pass "no certificate, a foreign CA's, one without clientAuth, a factory device certificate: refused and logged"

# --- a station speaks for its certificate's subject only
code=$(curl -s -o "$T/r.json" -w '%{http_code}' "${STATION[@]}" -X POST --data-binary "$(unit B-1 station2/p1)" \
  "$URL/v1/units")
[ "$code" = 403 ] || fail "station1's certificate spoke for station2: $code $(cat "$T/r.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' "${STATION[@]}" -X POST --data-binary "$(unit B-1 station1/p1)" \
  "$URL/v1/units")
[ "$code" = 201 ] || fail "station1/p1 with station1's certificate: $code"
[ "$(sqlite3 "$T/ledger.db" "SELECT station FROM units WHERE board_id='B-1'")" = station1/p1 ] || fail "station recorded"
pass "station1's certificate may issue as station1/p1, not as station2/p1 (403)"

# --- 10^12 bytes announced: 413 on the headers, before any body
start=$(date +%s%N)
ans=$( (printf 'POST /v1/units HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
  printf 'Content-Length: 1000000000000\r\n\r\n'; sleep 2) | timeout 10 openssl s_client -quiet \
  -connect "127.0.0.1:$PV_PORT" -CAfile "$P/tlsca.pem" -cert "$P/station1.pem" -key "$P/station1.key" 2>/dev/null \
  | head -1 || true)
grep -q "413" <<<"$ans" || fail "Content-Length 10^12: $ans"
pass "Content-Length 10^12: '${ans%$'\r'}' on the headers ($(( ($(date +%s%N) - start) / 1000000 )) ms, incl. the 2 s pipe)"

# --- slow-loris and idle floods from 127.0.0.1; stations on 127.0.0.2
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
for i in 1 2; do # TLS, a station's certificate, the headers a byte every 0.5 s (20 s in all)
  ( s=$(date +%s%N)
    (printf 'POST /v1/units HTTP/1.1\r\n'; for _ in $(seq 40); do printf 'X'; sleep 0.5; done) 2>/dev/null \
      | timeout 30 openssl s_client -quiet -connect "127.0.0.1:$PV_PORT" -CAfile "$P/tlsca.pem" \
        -cert "$P/station1.pem" -key "$P/station1.key" >/dev/null 2>&1 || true
    ms "$s" >>"$T/held_tls.txt" ) &
done
sleep 1
for i in $(seq 24); do # raw TCP: connect and send nothing
  ( s=$(date +%s%N)
    if exec 3<>"/dev/tcp/127.0.0.1/$PV_PORT"; then timeout 30 cat <&3 >/dev/null 2>&1 || true; fi
    ms "$s" >>"$T/held_tcp.txt" ) &
done
served=0
for i in $(seq 30); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --interface 127.0.0.2 "${STATION[@]}" -X POST \
    --data-binary "$(unit H-$i station1/p2)" "$URL/v1/units" || true)
  [ "$code" = 201 ] && served=$((served + 1))
  sleep 0.2
done
wait_for 30 "every hostile connection to end" test "$(cat "$T"/held_*.txt 2>/dev/null | wc -l)" -ge 26
[ "$served" -eq 30 ] || fail "only $served of 30 station requests were served during the attack"
max_tcp=$(sort -n "$T/held_tcp.txt" | tail -1)
max_tls=$(sort -n "$T/held_tls.txt" | tail -1)
[ "$max_tcp" -le 5000 ] || fail "a raw TCP connection was held ${max_tcp} ms (request_timeout = 3 s)"
[ "$max_tls" -le 5000 ] || fail "a TLS slow-loris was held ${max_tls} ms (request_timeout = 3 s)"
grep -q "refused a connection from 127.0.0.1: 4 open, max_connections_per_ip = 4" "$PV_LOG" \
  || fail "no per-address refusal logged"
grep -q "closed the connection from 127.0.0.1: no complete request within 3 s" "$PV_LOG" || fail "no deadline logged"
pass "24 idle TCP + 2 TLS slow-loris clients: cut off after at most ${max_tcp}/${max_tls} ms; 30/30 station requests served meanwhile"
stop_provisiond
