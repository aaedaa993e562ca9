#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# provisiond on its own: mutual TLS refuses clients without a station
# certificate; 16 stations issue 10,000 units concurrently through the
# agent's provisioning client with zero duplicate serials, MACs, device ids or
# certificates; repeats return the same identity; malformed requests get a
# 4xx and write nothing; audit passes, and fails on a corrupted ledger.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pv_lib.sh"

make_pki "$T/pki"
write_pv_config "$T/pv.conf" 1
start_provisiond "$T/pv.conf"
URL="https://127.0.0.1:$PV_PORT"
P=$T/pki
TLS=(--cacert "$P/tlsca.pem")
STATION=("${TLS[@]}" --cert "$P/station1.pem" --key "$P/station1.key")
CLIENT=(--ca "$P/tlsca.pem" --cert "$P/station1.pem" --key "$P/station1.key")

# --- mTLS
code=$(curl -s -o /dev/null -w '%{http_code}' "${STATION[@]}" "$URL/v1/health")
[ "$code" = 200 ] || fail "station with a client certificate got $code"
body='{"product":"PCBA-100","board_id":"MTLS-1","lot_id":"L","order_id":"O","station":"station1/s"}'
for who in none rogue; do
  args=("${TLS[@]}")
  [ $who = rogue ] && args+=(--cert "$P/rogue.pem" --key "$P/rogue.key")
  code=$(curl -s -o "$T/mtls.out" -w '%{http_code}' "${args[@]}" -X POST -d "$body" "$URL/v1/units" || true)
  case "$code" in 2*) fail "client with $who certificate was served ($code)" ;; esac
  [ "$code" = 403 ] || [ "$code" = 000 ] || fail "client with $who certificate: unexpected $code"
done
[ "$(ledger_count units)" -eq 0 ] || fail "a refused client got a unit written"
if "$PV_LOAD" "$URL" 1 1 "$T/rogue.txt" --prefix ROGUE --ca "$P/tlsca.pem" --cert "$P/rogue.pem" \
  --key "$P/rogue.key" >"$T/rogue.out"; then fail "the agent's client with a rogue certificate was served"; fi
grep -q " 0 ok" "$T/rogue.out" || fail "rogue client not refused: $(cat "$T/rogue.out")"
grep -q "refused TLS client 127.0.0.1: no client certificate" "$PV_LOG" || fail "no log line for the missing certificate"
grep -q "refused TLS client 127.0.0.1: client certificate not issued by the station CA" "$PV_LOG" \
  || fail "no log line for the foreign CA's certificate"
pass "mTLS: no client certificate and a foreign CA's certificate are refused in the handshake, and logged; the station's is served"
if "$PV_LOAD" "$URL" 1 1 "$T/pin.txt" --prefix PIN --ca "$P/stationca.pem" --cert "$P/station1.pem" \
  --key "$P/station1.key" >"$T/pin.out"; then fail "the client accepted a server certificate its pinned CA did not issue"; fi
grep -q "1 unavailable" "$T/pin.out" || fail "pinning: $(cat "$T/pin.out")"
pass "the agent's client refuses a server whose certificate is not from the pinned CA"

# --- 16 stations, 10,000 units
N=${PV_UNITS:-10000}
"$PV_LOAD" "$URL" "$N" 16 "$T/issued.txt" "${CLIENT[@]}" | tee "$T/load.out" || fail "load run did not issue every unit"
[ "$(wc -l <"$T/issued.txt")" -eq "$N" ] || fail "expected $N identities"
for col in 2 3 4; do
  d=$(cut -d' ' -f$col "$T/issued.txt" | sort | uniq -d | wc -l)
  [ "$d" -eq 0 ] || fail "$d duplicate values in column $col (serial/device id/certificate)"
done
cut -d' ' -f5,6 "$T/issued.txt" | tr ' ' '\n' >"$T/macs.txt"
[ "$(sort "$T/macs.txt" | uniq -d | wc -l)" -eq 0 ] || fail "duplicate MACs"
[ "$(sort -u "$T/macs.txt" | wc -l)" -eq $((2 * N)) ] || fail "expected $((2 * N)) distinct MACs"
[ "$(ledger_count units)" -eq "$N" ] || fail "ledger holds $(ledger_count units) units, expected $N"
[ "$(sqlite3 "$T/ledger.db" 'SELECT count(DISTINCT cert_serial) FROM certs')" -eq "$N" ] || fail "certificate serials"
pass "$N units by 16 concurrent stations: zero duplicate serials, MACs, device ids, certificates"

# --- repeats: the same boards again get the same identities, nothing new issued
"$PV_LOAD" "$URL" 200 4 "$T/again.txt" "${CLIENT[@]}" --server-keys >/dev/null || fail "repeat run failed"
if grep -vq "reused=1" "$T/again.txt"; then fail "a repeated request was not marked reused"; fi
join <(cut -d' ' -f1-3 "$T/issued.txt" | sort) <(cut -d' ' -f1-3 "$T/again.txt" | sort) >"$T/joined.txt"
[ "$(wc -l <"$T/joined.txt")" -eq 200 ] || fail "repeat join"
awk '$2 != $4 || $3 != $5 { bad++ } END { exit bad > 0 }' "$T/joined.txt" \
  || fail "a repeated request got a different serial or device id"
[ "$(ledger_count units)" -eq "$N" ] || fail "repeats burnt identifiers"
serial=$(head -1 "$T/again.txt" | cut -d' ' -f2)
curl -s "${STATION[@]}" "$URL/v1/units/$serial" | jq -e --arg s "$serial" '.serial == $s and .private_key == null' \
  >/dev/null || fail "GET /v1/units/{serial}"
pass "200 repeated requests: same serial and device id, marked reused, no identifier burnt; GET by serial works"

# --- malformed requests: 4xx with a reason, nothing written
before=$(ledger_count issuances)
expect() { # expect CODE BODY [CURL_ARGS...]
  local code want=$1 body=$2 rc=0
  shift 2
  : >"$T/resp.json"
  code=$(curl -s -o "$T/resp.json" -w '%{http_code}' "${STATION[@]}" "$@" -X POST --data-binary "$body" \
    "$URL/v1/units") || rc=$?
  [ "$code" = "$want" ] || fail "expected $want for ${body:0:60}, got $code (curl exit $rc): $(cat "$T/resp.json")"
  jq -e '.error | length > 0' "$T/resp.json" >/dev/null || fail "no reason with $code"
}
expect 400 '{"product":"PCBA-100",'
expect 400 '[1,2]'
expect 400 '{"product":"PCBA-100","board_id":"X1","lot_id":"L","order_id":"O"}'
expect 400 '{"product":"PCBA-100","board_id":"X 1","lot_id":"L","order_id":"O","station":"station1/s"}'
expect 400 '{"product":"PCBA-100","board_id":"X1","lot_id":"L","order_id":"O","station":"station1/s","extra":1}'
expect 404 '{"product":"NOPE","board_id":"X1","lot_id":"L","order_id":"O","station":"station1/s"}'
expect 400 '{"product":"PCBA-100","board_id":"X1","lot_id":"L","order_id":"O","station":"station1/s","csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}'
openssl req -new -newkey rsa:2048 -nodes -subj /CN=x -keyout "$T/rsa.key" -out "$T/rsa.csr" 2>/dev/null
expect 400 "$(jq -nc --rawfile c "$T/rsa.csr" '{product:"PCBA-100",board_id:"X1",lot_id:"L",order_id:"O",station:"station1/s",csr:$c}')"
head -c 40000 /dev/zero | tr '\0' 'a' >"$T/big.txt"
# The server answers 413 from the headers and closes; told to wait for
# "100 Continue", curl sends no body and reads the answer (otherwise it can
# meet the close while still sending).
expect 413 "@$T/big.txt" -H "Expect: 100-continue"
[ "$(ledger_count issuances)" -eq "$before" ] || fail "a malformed request wrote to the ledger"
pass "bad JSON, missing/unknown field, bad id, unknown product, bad CSR, RSA CSR, oversized body: 4xx, nothing written"

stop_provisiond
"$PROVISIOND" audit -c "$T/pv.conf" >"$T/audit.out" || { cat "$T/audit.out"; fail "audit failed on a good ledger"; }
pass "$(tail -1 "$T/audit.out")"

# --- a corrupted copy of the ledger fails the audit
corrupt() { # corrupt DESCRIPTION SQL
  cp "$T/ledger.db" "$T/bad.db"
  sed "s#^path = .*#path = $T/bad.db#" "$T/pv.conf" >"$T/bad.conf"
  sqlite3 "$T/bad.db" "$2"
  if "$PROVISIOND" audit -c "$T/bad.conf" >"$T/bad.out"; then fail "audit passed a ledger with $1"; fi
  grep -q '^FINDING' "$T/bad.out" || fail "audit named no finding for $1"
  pass "audit fails on $1: $(grep -m1 '^FINDING' "$T/bad.out")"
}
corrupt "a counter set back" "UPDATE counters SET next_seq = 5"
corrupt "a MAC range moved onto another unit's" \
  "UPDATE units SET mac_first = (SELECT mac_first FROM units WHERE id = 7) WHERE id = 8"
corrupt "a certificate swapped for another unit's" \
  "UPDATE certs SET pem = (SELECT pem FROM certs LIMIT 1 OFFSET 3) WHERE rowid = 10"
