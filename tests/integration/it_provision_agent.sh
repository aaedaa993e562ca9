#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent's PROVISION step against a real provisiond over mutual TLS:
# every board gets a unique identity written and read back, unit_provisioned
# carries serial, MACs, device id and certificate fingerprint, and every later
# event of the unit carries the serial. Killing the agent between issuance and
# the write, then restarting, reuses the identity. No private key material in
# the spool, the log or the Kafka stream. With the server down the units fail
# with provision_unavailable, with an unknown product provision_refused, and
# the lot goes on.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pv_lib.sh"

make_pki "$T/pki"
write_pv_config "$T/pv.conf" 1
start_provisiond "$T/pv.conf"
start_mosquitto
start_kafka
P=$T/pki
prov_section() { # prov_section PORT
  printf '%s\n' "[provisioning]" "url = https://127.0.0.1:$1" "ca_file = $P/tlsca.pem" \
    "cert_file = $P/station1.pem" "key_file = $P/station1.key" "timeout_ms = 2000" "retries = 2"
}
stations() { # stations PROVISION_STEP_MS SERVER_KEYS
  printf '%s\n' "[station prog1]" "adapter = sim" "steps = write, verify" "sim.boards_per_second = 40" \
    "[station prov1]" "adapter = sim" "steps = provision" "sim.step_ms = $1" "sim.server_keys = $2" \
    "[station prov2]" "adapter = sim" "steps = provision" "sim.step_ms = $1" "sim.server_keys = $2" \
    "[station fct1]" "adapter = sim" "steps = test" "[station lock1]" "adapter = sim" "steps = lock"
}
write_config "$T/agent.conf" "$(prov_section "$PV_PORT")" "$(stations 0 0)"
"$AGENT" check-config -c "$T/agent.conf" >"$T/check.out" || fail "check-config: $(cat "$T/check.out")"
grep -q "^\[provisioning\]" "$T/check.out" || fail "check-config does not show [provisioning]"
start_agent "$T/agent.conf"
make_firmware v1 3.0.0
FLOW='["WRITE","VERIFY","PROVISION","TEST","LOCK"]'
EXPECT=0

# --- a lot of 20 with board-made keys (CSR)
publish -m "$(order_json WO-P 1 LOT-P 20 3.0.0 "$FW_SHA" "$FW_PATH" "$FLOW")"
wait_log "lot LOT-P completed" 60
EXPECT=$((EXPECT + 1 + 1 + 20 * 5 + 1)) # accepted, started, 20 x (written, provisioned, tested, locked, completed), completed

# --- a lot of 6 whose boards cannot make keys: the server generates them
stop_agent
write_config "$T/agent.conf" "$(prov_section "$PV_PORT")" "$(stations 0 1)"
start_agent "$T/agent.conf"
publish -m "$(order_json WO-S 1 LOT-S 6 3.0.0 "$FW_SHA" "$FW_PATH" "$FLOW")"
wait_log "lot LOT-S completed" 60
EXPECT=$((EXPECT + 3 + 6 * 5))

# --- provisioned before it is written (a rework flow): unit_written knows the serial
publish -m "$(order_json WO-F 1 LOT-F 3 3.0.0 "$FW_SHA" "$FW_PATH" '["PROVISION","WRITE","VERIFY","TEST","LOCK"]')"
wait_log "lot LOT-F completed" 60
EXPECT=$((EXPECT + 3 + 3 * 5))

# --- kill between issuance and write, then restart
stop_agent
write_config "$T/agent.conf" "$(prov_section "$PV_PORT")" "$(stations 2500 0)"
start_agent "$T/agent.conf"
publish -m "$(order_json WO-K 1 LOT-K 2 3.0.0 "$FW_SHA" "$FW_PATH" "$FLOW")"
wait_log "LOT-K-B00001: identity .* issued, writing it" 30
killed_serial=$(sed -n 's/.*board LOT-K-B00001: identity \([^ ]*\) issued.*/\1/p' "$AGENT_LOG" | head -1)
kill_agent
[ "$(sqlite3 "$T/ledger.db" "SELECT serial FROM units WHERE board_id='LOT-K-B00001'")" = "$killed_serial" ] \
  || fail "ledger does not hold $killed_serial for the killed board"
pass "killed the agent after $killed_serial was issued for LOT-K-B00001, before it was written"
write_config "$T/agent.conf" "$(prov_section "$PV_PORT")" "$(stations 0 0)"
start_agent "$T/agent.conf"
wait_log "lot LOT-K completed" 60
EXPECT=$((EXPECT + 3 + 2 * 5))

# --- server down: provision_unavailable; unknown product: provision_refused
stop_provisiond
publish -m "$(order_json WO-D 1 LOT-D 2 3.0.0 "$FW_SHA" "$FW_PATH" "$FLOW")"
wait_log "lot LOT-D completed" 60
start_provisiond "$T/pv.conf" # new port: the agent's config still names the old one for LOT-D only
stop_agent
write_config "$T/agent.conf" "$(prov_section "$PV_PORT")" "$(stations 0 0)"
start_agent "$T/agent.conf"
publish -m "$(order_json WO-R 1 LOT-R 2 3.0.0 "$FW_SHA" "$FW_PATH" "$FLOW" | sed 's/"PCBA-100"/"PCBA-999"/')"
wait_log "lot LOT-R completed" 60
stop_agent
EXPECT=$((EXPECT + 2 * (3 + 2 * 3))) # accepted, started, 2 x (written, failed, completed), completed

consume "$EXPECT"
check_integrity
E=$T/events.jsonl
jq -s 'unique_by(.eventId)' "$E" >"$T/ev.json"

# unit_provisioned: one per good board, unique serials/device ids/MACs, fingerprints
for lot in LOT-P LOT-S LOT-K; do
  n=$(jq --arg l "$lot" 'map(select(.lotId==$l and .type=="unit_provisioned")) | length' "$T/ev.json")
  want=$(jq -n --arg l "$lot" '{"LOT-P":20,"LOT-S":6,"LOT-K":2}[$l]')
  [ "$n" -eq "$want" ] || fail "$lot: $n unit_provisioned, expected $want"
done
jq -e 'map(select(.type=="unit_provisioned") | .unitProvisioned)
       | (map(.serial) | unique | length) == length and (map(.deviceId) | unique | length) == length
         and (map(.macs[]) | unique | length) == 2 * length
         and all(.certificateSha256 | test("^[0-9a-f]{64}$"))' "$T/ev.json" >/dev/null \
  || fail "unit_provisioned: duplicate identifiers or bad fingerprint"
# the event's serial is the body's, and every later event of the unit carries it
jq -e 'map(select(.type=="unit_provisioned")) | all(.serial == .unitProvisioned.serial)' "$T/ev.json" >/dev/null \
  || fail "unit_provisioned event lacks its serial"
jq -e '[group_by(.boardId)[] | select(any(.type=="unit_provisioned"))
        | (map(select(.type=="unit_provisioned"))[-1].serial) as $s
        | map(select(.type=="unit_tested" or .type=="unit_locked" or .type=="unit_completed"))
        | all(.serial == $s)] | all' "$T/ev.json" >/dev/null || fail "a later event of a unit lacks its serial"
# unit_written carries the serial when the unit was provisioned first, none when not yet
jq -e '[group_by(.boardId)[] | select(.[0].lotId == "LOT-F")
        | (map(select(.type=="unit_provisioned"))[0].unitProvisioned.serial) as $s
        | map(select(.type=="unit_written"))[0] | .unitWritten.serial == $s and $s != null and $s != ""]
       | length == 3 and all' "$T/ev.json" >/dev/null \
  || fail "LOT-F: unit_written lacks the serial issued before it: $(jq -c 'map(select(.lotId=="LOT-F" and .type=="unit_written") | .unitWritten)' "$T/ev.json")"
jq -e 'map(select(.lotId=="LOT-P" and .type=="unit_written") | .unitWritten.serial // "") | all(. == "")' "$T/ev.json" >/dev/null \
  || fail "LOT-P: unit_written carries a serial issued after the write"
# the fingerprint is the SHA-256 of the certificate the ledger issued
s1=$(jq -r 'map(select(.type=="unit_provisioned" and .boardId=="LOT-P-B00001"))[0].unitProvisioned' "$T/ev.json")
sqlite3 "$T/ledger.db" "SELECT pem FROM certs c JOIN units u USING(cert_serial) WHERE u.board_id='LOT-P-B00001'" \
  | openssl x509 -outform DER | sha256sum | cut -d' ' -f1 >"$T/fp"
[ "$(jq -r .certificateSha256 <<<"$s1")" = "$(cat "$T/fp")" ] || fail "certificate fingerprint differs from the ledger's"
pass "28 units provisioned: unique serials, device ids, MACs; fingerprint matches the ledger; serial on every later event"

# the killed board: same serial after the restart, no identifier burnt
got=$(jq -r 'map(select(.type=="unit_provisioned" and .boardId=="LOT-K-B00001"))[-1].serial' "$T/ev.json")
[ "$got" = "$killed_serial" ] || fail "after the restart LOT-K-B00001 got $got, not $killed_serial"
[ "$(sqlite3 "$T/ledger.db" "SELECT count(*) FROM units WHERE lot_id='LOT-K'")" -eq 2 ] || fail "LOT-K burnt serials"
grep -q "LOT-K-B00001: identity $killed_serial issued (again)" "$T"/agent*.log || fail "no reuse logged"
pass "restart after a kill between issuance and write reused $killed_serial; ledger holds 2 units for 2 boards"

# failures
jq -e 'map(select(.lotId=="LOT-D" and .type=="unit_failed") | .unitFailed) | length == 2
       and all(.failureMode == "provision_unavailable" and (.detail | length > 0))' "$T/ev.json" >/dev/null \
  || fail "LOT-D: expected 2 provision_unavailable: $(jq -c 'map(select(.lotId=="LOT-D" and .type=="unit_failed"))' "$T/ev.json")"
jq -e 'map(select(.lotId=="LOT-R" and .type=="unit_failed") | .unitFailed) | length == 2
       and all(.failureMode == "provision_refused" and (.detail | test("unknown product")))' "$T/ev.json" >/dev/null \
  || fail "LOT-R: expected 2 provision_refused with the reason"
jq -e 'map(select((.lotId=="LOT-D" or .lotId=="LOT-R") and .type=="lot_completed")) | length == 2' "$T/ev.json" >/dev/null \
  || fail "a lot with provisioning failures did not complete"
pass "server down: provision_unavailable after retries; unknown product: provision_refused with the reason; lots complete"

# no private key material anywhere the agent writes
for f in "$T"/spool.db* "$T"/agent*.log "$E"; do
  [ -f "$f" ] || continue
  if grep -aq "PRIVATE KEY" "$f"; then fail "PEM private key material in $f"; fi
  # DER of an EC P-256 private key (PKCS#8 and SEC1 headers)
  if LC_ALL=C grep -aqP '\x30\x81\x87\x02\x01\x00\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01' "$f"; then
    fail "PKCS#8 EC key bytes in $f"
  fi
  if LC_ALL=C grep -aqP '\x30[\x6b\x77]\x02\x01\x01\x04\x20' "$f"; then fail "SEC1 EC key bytes in $f"; fi
done
[ "$(sqlite3 "$T/ledger.db" "SELECT count(*) FROM issuances WHERE lot_id='LOT-S'")" -eq 6 ] \
  || fail "server-generated keys were not exercised"
pass "no private key (PEM or DER) in the spool, the agent logs or the Kafka stream; 6 server-made keys passed through"

"$PROVISIOND" audit -c "$T/pv.conf" >"$T/audit.out" || { cat "$T/audit.out"; fail "audit failed"; }
pass "$(tail -1 "$T/audit.out")"
