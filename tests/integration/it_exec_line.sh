#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A whole line of exec stations only, against a real provisiond over mutual
# TLS: board ids from a fixture program (the board's physical id), write,
# verify (the agent compares the read-back), provision with a board-made key
# (CSR first, the identity on stdin, read back), test, calibrate and lock.
# Every event of every unit is checked; the same boards reworked in a second
# lot keep their identities; no private key reaches the spool, log or events.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pv_lib.sh"

make_pki "$T/pki"
write_pv_config "$T/pv.conf" 1
start_provisiond "$T/pv.conf"
start_mosquitto
start_kafka
P=$T/pki
mkdir -p "$T/boards"

# The fixture: a board id reader (boards arrive in a fixed order per lot,
# PHY-0001..), and one program for write, verify, test, calibrate and lock.
cat >"$T/board_id.sh" <<EOF2
#!/bin/bash
# board_id.sh LOT SITE: the next board's physical id
exec 9>>"$T/boards/.lock"; flock 9
n=\$(( \$(cat "$T/boards/.next.\$1" 2>/dev/null || echo 0) + 1 )); echo \$n >"$T/boards/.next.\$1"
printf 'PHY-%04d\n' \$n
EOF2
cat >"$T/fixture.sh" <<'EOF2'
#!/bin/bash
# fixture.sh STEP BOARD IMAGE OFFSET GAIN BOARDS
step=$1 board=$2 image=$3 boards=$6
mkdir -p "$boards/$board"
case $step in
  write) cp "$image" "$boards/$board/flash" ;;
  verify) echo "{\"readback_sha256\":\"$(sha256sum <"$boards/$board/flash" | cut -c1-64)\"}" ;;
  test) echo '{"name":"vbus","value":5.01,"unit":"V"}'; echo '{"name":"i_idle","value":0.021,"unit":"A"}' ;;
  calibrate) x=0; for y in 1 3 5 7; do echo "{\"reference\":$y,\"raw\":$x}"; x=$((x+1)); done ;;
  calibrate_write) echo "$4 $5" >"$boards/$board/cal"; read -r o g <"$boards/$board/cal"; echo "{\"offset\":$o,\"gain\":$g}" ;;
  lock) touch "$boards/$board/locked"; [ -e "$boards/$board/locked" ] && echo '{"lock_verified":true}' ;;
esac
EOF2
chmod 700 "$T/board_id.sh" "$T/fixture.sh"
ARGS="{step} {board_id} {image} {offset} {gain} $T/boards"
write_config "$T/agent.conf" \
  "$(printf '%s\n' "[provisioning]" "url = https://127.0.0.1:$PV_PORT" "ca_file = $P/tlsca.pem" \
       "cert_file = $P/station1.pem" "key_file = $P/station1.key" "timeout_ms = 5000" "retries = 2")" \
  "[station prog1]" "adapter = exec" "steps = write, verify" "exec.program = $T/fixture.sh" "exec.args = $ARGS" \
  "exec.board_id_program = $T/board_id.sh" \
  "[station prov1]" "adapter = exec" "steps = provision" "exec.program = $SRC/tests/tools/exec_provision_example.sh" \
  "exec.args = $T/boards {board_id} csr" "exec.provision_csr = true" "exec.timeout_ms = 20000" \
  "[station fct1]" "adapter = exec" "steps = test, calibrate, lock" "exec.program = $T/fixture.sh" "exec.args = $ARGS"
"$AGENT" check-config -c "$T/agent.conf" >/dev/null || fail "check-config"
start_agent "$T/agent.conf"
make_firmware v1 3.0.0
FLOW='["WRITE","VERIFY","PROVISION","TEST","CALIBRATE","LOCK"]'
ITEMS=',"testItems":[{"name":"vbus","low":4.75,"high":5.25,"unit":"V"},{"name":"i_idle","low":0,"high":0.05,"unit":"A"}]}'
order() { order_json "$1" 1 "$2" 4 3.0.0 "$FW_SHA" "$FW_PATH" "$FLOW" | sed "s/}\$/$ITEMS/"; }
publish -m "$(order WO-E1 LOT-E1)"
wait_log "lot LOT-E1 completed" 90
publish -m "$(order WO-E2 LOT-E2)" # the same four boards, reworked
wait_log "lot LOT-E2 completed" 90
stop_agent

# per lot: accepted, started, 4 x (written, provisioned, tested, calibrated, locked, completed), completed
consume $((2 * (3 + 4 * 6)))
check_integrity
E=$T/events.jsonl
# one agent instance id, a UUID, on every event
inst=$(jq -r .agentInstanceId "$E" | sort -u)
[ "$(wc -l <<<"$inst")" = 1 ] && [ "${#inst}" = 36 ] || fail "agent instance ids: $inst"
# lot_completed: counts per firmware version and the first-pass yield
jq -e -s --arg h "$FW_SHA" '[.[] | select(.type == "lot_completed" and .lotId == "LOT-E1")][0].lotCompleted
  | .versions == [{"version":"3.0.0","sha256":$h,"passed":4,"failed":0}] and .firstPassYield == 1' "$E" >/dev/null \
  || fail "LOT-E1 lot_completed: $(jq -c 'select(.type == "lot_completed")' "$E")"
# every board of LOT-E2 is a rework: none passed at its first attempt
jq -e -s '[.[] | select(.type == "lot_completed" and .lotId == "LOT-E2")][0].lotCompleted
  | .versions[0].passed == 4 and .firstPassYield == 0' "$E" >/dev/null \
  || fail "LOT-E2 lot_completed: $(jq -c 'select(.type == "lot_completed")' "$E")"
for lot in LOT-E1 LOT-E2; do
  for n in 1 2 3 4; do
    b=$(printf 'PHY-%04d' $n)
    u() { jq -c --arg l "$lot" --arg b "$b" --arg t "$1" 'select(.lotId==$l and .boardId==$b and .type==$t)' "$E" | head -1; }
    w=$(u unit_written) p=$(u unit_provisioned) t=$(u unit_tested) c=$(u unit_calibrated) k=$(u unit_locked) d=$(u unit_completed)
    [ "$(jq -r .unitWritten.readbackSha256 <<<"$w")" = "$FW_SHA" ] || fail "$lot $b unit_written: $w"
    serial=$(jq -r .unitProvisioned.serial <<<"$p")
    [ -n "$serial" ] && [ "$serial" != null ] || fail "$lot $b unit_provisioned: $p"
    row=$(sqlite3 -separator ' ' "$T/ledger.db" "SELECT serial, device_id FROM units WHERE board_id='$b'")
    [ "$row" = "$serial $(jq -r .unitProvisioned.deviceId <<<"$p")" ] || fail "$lot $b: ledger has $row, event $p"
    if [ "$lot" = LOT-E2 ]; then # the board holds the certificate of its latest key
      cert=$(openssl x509 -in "$T/boards/$b/cert.pem" -outform DER | sha256sum | cut -c1-64)
      [ "$(jq -r .unitProvisioned.certificateSha256 <<<"$p")" = "$cert" ] || fail "$lot $b certificate: $p"
    fi
    [ "$(jq -r '.unitProvisioned.macs | length' <<<"$p")" = 2 ] || fail "$lot $b MACs: $p"
    # the server's facts about the identity: factory code, issue time, certificate serial, and
    # whether it was issued before (the rework)
    reused=false; [ "$lot" = LOT-E2 ] && reused=true
    row=$(sqlite3 -separator ' ' "$T/ledger.db" "SELECT factory_code FROM units WHERE board_id='$b'")
    jq -e --arg fc "$row" --argjson r $reused '.unitProvisioned.factoryCode == $fc and (.unitProvisioned.issuedAt | test("^[0-9]{4}-"))
      and (.unitProvisioned.certificateSerial | length > 0) and ((.unitProvisioned.reused // false) == $r)' <<<"$p" >/dev/null \
      || fail "$lot $b unit_provisioned facts (factory code $row, reused $reused): $p"
    jq -e '.unitWritten.verifyMethod == "sha256"' <<<"$w" >/dev/null || fail "$lot $b verify method: $w"
    # every unit event: the fixture site and the step's duration (a program run takes some ms)
    for ev in "$w" "$p" "$t" "$k"; do
      jq -e '(.stationSite // 0) == 0 and .stepDurationMs > 0' <<<"$ev" >/dev/null || fail "$lot $b site/duration: $ev"
    done
    # the rework is the board's second attempt, on every one of its events
    attempt=1; [ "$lot" = LOT-E2 ] && attempt=2
    for ev in "$w" "$p" "$t" "$c" "$k" "$d"; do
      [ "$(jq -r .attempt <<<"$ev")" = $attempt ] || fail "$lot $b attempt is not $attempt: $ev"
    done
    [ "$(openssl x509 -in "$T/boards/$b/cert.pem" -noout -pubkey)" = "$(openssl pkey -in "$T/boards/$b/key.pem" -pubout)" ] \
      || fail "$lot $b: the certificate is not for the board's own key"
    jq -e '.unitTested.passed and (.unitTested.measurements | length == 2)' <<<"$t" >/dev/null || fail "$lot $b tested: $t"
    jq -e '(.unitCalibrated.gain - 2 | fabs) < 1e-9 and (.unitCalibrated.offset - 1 | fabs) < 1e-9 and .unitCalibrated.points == 4' \
      <<<"$c" >/dev/null || fail "$lot $b calibrated: $c"
    [ "$(jq -r .unitLocked.verified <<<"$k")" = true ] || fail "$lot $b locked: $k"
    jq -e --arg s "$serial" --arg h "$FW_SHA" '.unitCompleted.passed and .serial == $s and .unitCompleted.firmwareSha256 == $h' \
      <<<"$d" >/dev/null || fail "$lot $b completed: $d"
    for ty in unit_tested unit_calibrated unit_locked unit_completed; do
      [ "$(jq -r .serial <<<"$(u $ty)")" = "$serial" ] || fail "$lot $b $ty without serial $serial"
    done
    eval "serial_${lot//-/_}_$n=\$serial cert_${lot//-/_}_$n=$(jq -r .unitProvisioned.certificateSha256 <<<"$p")"
  done
done
for n in 1 2 3 4; do
  a=serial_LOT_E1_$n b=serial_LOT_E2_$n
  [ "${!a}" = "${!b}" ] || fail "PHY-000$n reworked got a new identity: ${!a} then ${!b}"
  # the board made a new key in the rework: a new certificate for the same identity
  a=cert_LOT_E1_$n b=cert_LOT_E2_$n
  [ "${!a}" != "${!b}" ] || fail "PHY-000$n: same certificate for a new key"
  [ "$(sqlite3 "$T/ledger.db" "SELECT count(*) FROM certs WHERE serial='$(eval echo \$serial_LOT_E2_$n)'")" = 2 ] \
    || fail "PHY-000$n: ledger does not hold both certificates"
done
[ "$(ledger_count units)" = 4 ] || fail "ledger: $(ledger_count units) units for 4 physical boards"
pass "8 units (4 boards, twice) through exec stations: read-back verified by the agent, board-made keys certified, identities read back, tested, calibrated, locked; reworked boards kept their identities"

grep -rl "PRIVATE KEY" "$T"/spool.db* "$AGENT_LOG" "$E" 2>/dev/null && fail "private key material in the spool, log or events"
pass "no private key in the spool, the log or the events"
