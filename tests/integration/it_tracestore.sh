#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tracestore end to end: a lot of 30 provisioned boards with the firmware
# changed mid-lot goes agent -> Kafka -> tracestore -> PostgreSQL, and the
# CLI's answers (lot, unit by serial and by board, recall scope) are checked
# against the events the agent emitted, read back with `lineagent trace`.
# Then: `lineagent spool replay` of the lot changes no count; undecodable
# records land in rejected_records while consumption goes on; field firmware
# reports give units a current version (`unit`, `find --current`);
# `sample-check` passes a clean sample and finds planted discrepancies;
# `audit` is clean, then finds a seq gap, a duplicate serial and MAC and the
# rejected records; the HTTPS API with its bearer token gives the CLI's
# answers, health and metrics, and refuses TLS 1.0 and 1.1.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pv_lib.sh"
source "$(dirname "$0")/ts_lib.sh"

write_pv_config "$T/pv.conf" 0
start_provisiond "$T/pv.conf"
start_mosquitto
start_kafka --topic "$TOPIC" --topic "$FIELD_TOPIC"
ts_setup
make_pki "$T/pki"
head -c 24 /dev/urandom | base64 >"$T/token"; chmod 600 "$T/token"
write_ts_config "$T/ts.conf" "[http]" "listen = 127.0.0.1:0" "tls_cert = $T/pki/server.pem" \
  "tls_key = $T/pki/server.key" "token_file = $T/token" "[tracestore]" "gap_timeout_s = 1"
start_tracestore "$T/ts.conf"
HTTP_PORT=$(sed -n 's/.*http: listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$TS_LOG")
[ -n "$HTTP_PORT" ] || fail "tracestore does not say where it listens"
api() { curl -sS --cacert "$T/pki/tlsca.pem" -H "Authorization: Bearer $(cat "$T/token")" "https://127.0.0.1:$HTTP_PORT$1"; }

stations=("[station prog1]" "adapter = sim" "steps = write, verify" "sim.boards_per_second = 20"
  "[station prov1]" "adapter = sim" "steps = provision"
  "[station fct1]" "adapter = sim" "steps = test" "sim.fail_rate = 0.15" "sim.seed = 3"
  "[station cal1]" "adapter = sim" "steps = calibrate" "[station lock1]" "adapter = sim" "steps = lock")
write_config "$T/agent.conf" "[provisioning]" "url = http://127.0.0.1:$PV_PORT" "${stations[@]}"
start_agent "$T/agent.conf"
make_firmware v1 1.0.0; SHA1=$FW_SHA; P1=$FW_PATH
make_firmware v2 1.1.0; SHA2=$FW_SHA; P2=$FW_PATH
QTY=30 LOT=LOT-7
FLOW='["WRITE","VERIFY","PROVISION","TEST","CALIBRATE","LOCK"]'
publish -m "$(order_json WO-1 1 $LOT $QTY 1.0.0 "$SHA1" "$P1" "$FLOW")"
sleep 0.6
publish -m "$(order_json WO-1 2 $LOT $QTY 1.1.0 "$SHA2" "$P2" "$FLOW")"
wait_log "lot $LOT completed" 90
stop_agent

# What the agent emitted: at least accepted x2, started, written+provisioned+tested x QTY, completed.
consume $((3 + QTY * 4 + 1))
check_integrity
E=$T/events.jsonl
N=$(jq -s 'map(.eventId) | unique | length' "$E")
wait_for 60 "tracestore to store all $N events" offsets_at "$TOPIC" "$N"
[ "$(stored_events)" -eq "$N" ] || fail "stored $(stored_events) events, the agent emitted $N"
pass "stored every event once: $N"

# --- the lot against the events
ts lot $LOT --json >"$T/lot.json" || fail "tracestore lot failed"
want_units=$(jq -s --arg l $LOT 'map(select(.lotId == $l and (.boardId // "") != "")) | map(.boardId) | unique | length' "$E")
want_passed=$(jq -s 'map(select(.type == "unit_completed" and .unitCompleted.passed)) | length' "$E")
want_failed=$(jq -s 'map(select(.type == "unit_completed" and (.unitCompleted.passed | not))) | length' "$E")
want_versions=$(jq -S -s 'map(select(.type == "unit_written")) | group_by(.unitWritten.version) | map({key: .[0].unitWritten.version, value: length}) | from_entries' "$E")
got=$(jq -c '[.units, .passed, .failed]' "$T/lot.json")
[ "$got" = "[$want_units,$want_passed,$want_failed]" ] || fail "lot units/passed/failed $got, want [$want_units,$want_passed,$want_failed]"
[ "$want_failed" -gt 0 ] || fail "the seeded test failures did not happen: the test proves less than it claims"
[ "$(jq -S .versions "$T/lot.json")" = "$want_versions" ] || fail "lot versions $(jq -c .versions "$T/lot.json"), want $want_versions"
co=$(jq -c 'select(.type == "version_changeover") | .versionChangeover' "$E")
[ -n "$co" ] || fail "the agent emitted no changeover"
got_co=$(jq -c '.changeovers | map({fromVersion, toVersion, lastOldBoard, firstNewBoard})' "$T/lot.json")
want_co=$(jq -c '[{fromVersion, toVersion, lastOldBoard: .lastBoardOld, firstNewBoard: .firstBoardNew}]' <<<"$co")
[ "$got_co" = "$want_co" ] || fail "lot changeovers $got_co, want $want_co"
[ "$(jq -c '[.orderRevisions[] | .version]' "$T/lot.json")" = '["1.0.0","1.1.0"]' ] || fail "order revisions $(jq -c .orderRevisions "$T/lot.json")"
pass "lot: $want_units units, $want_passed passed, $want_failed failed, versions $(jq -c .versions "$T/lot.json"), changeover $got_co"

# --- one unit of each version, by serial and by board id
for v in 1.0.0 1.1.0; do
  ev=$(jq -c --arg v $v 'select(.type == "unit_provisioned" and .serial != null)' "$E" \
    | jq -c -s --arg v $v --slurpfile all "$E" '
        map(. as $p | select(any($all[]; .type == "unit_written" and .boardId == $p.boardId and .unitWritten.version == $v)))[0]')
  [ "$ev" != null ] || fail "no provisioned unit with $v"
  serial=$(jq -r .unitProvisioned.serial <<<"$ev"); board=$(jq -r .boardId <<<"$ev")
  ts unit "$serial" --json >"$T/unit.json" || fail "tracestore unit $serial failed"
  w=$(jq -c --arg b "$board" 'select(.type == "unit_written" and .boardId == $b) | .unitWritten' "$E" | tail -1)
  c=$(jq -c --arg b "$board" 'select(.type == "unit_completed" and .boardId == $b) | .unitCompleted' "$E")
  got=$(jq -c '[.serial, .boardId, .lot, .firmware.version, .firmware.sha256, .passed]' "$T/unit.json")
  want=$(jq -c -n --arg s "$serial" --arg b "$board" --arg l $LOT --argjson w "$w" --argjson c "$c" \
    '[$s, $b, $l, $w.version, $w.sha256, $c.passed]')
  [ "$got" = "$want" ] || fail "unit $serial: $got, want $want"
  nm=$(jq -s --arg b "$board" 'map(select(.type == "unit_tested" and .boardId == $b) | .unitTested.measurements | length) | add // 0' "$E")
  [ "$(jq '.measurements | length' "$T/unit.json")" -eq "$nm" ] || fail "unit $serial: $(jq '.measurements | length' "$T/unit.json") measurements, want $nm"
  [ "$(jq -c '.identities[0].macs' "$T/unit.json")" = "$(jq -c .unitProvisioned.macs <<<"$ev")" ] || fail "unit $serial: MACs differ"
  ts unit "$board" --json | jq -e --arg s "$serial" '.serial == $s' >/dev/null || fail "unit by board id $board"
  pass "unit $serial ($board): firmware $v ${got}, $nm measurements, identity"
done
ts unit NO-SUCH-UNIT --json >/dev/null 2>&1 && fail "unit NO-SUCH-UNIT answered"

# --- recall scope of each release
for v in 1.0.0 1.1.0; do
  want=$(jq -c -s --arg v $v 'map(select(.type == "unit_written" and .unitWritten.version == $v) | .boardId) | unique' "$E")
  got=$(ts find --firmware $v --json | jq -c '[.units[].boardId] | unique')
  [ "$got" = "$want" ] || fail "find --firmware $v: $got, want $want"
  pass "find --firmware $v: $(jq length <<<"$got") units, the boards written with it"
done
ts find --firmware 1.0.0 --product OTHER --json | jq -e '.count == 0' >/dev/null || fail "find --product OTHER found units"

# --- the same answers over HTTPS
api "/v1/lots/$LOT" | jq -S 'del(.completedAt, .startedAt)' >"$T/lot.http"
jq -S 'del(.completedAt, .startedAt)' "$T/lot.json" | diff - "$T/lot.http" >/dev/null || fail "GET /v1/lots/$LOT differs from tracestore lot"
api "/v1/units/$serial" | jq -e --arg s "$serial" '.serial == $s and .firmware.version == "1.1.0"' >/dev/null || fail "GET /v1/units/$serial"
[ "$(api "/v1/firmware/1.0.0/units" | jq -c '[.units[].boardId] | unique')" = "$(ts find --firmware 1.0.0 --json | jq -c '[.units[].boardId] | unique')" ] \
  || fail "GET /v1/firmware/1.0.0/units differs from find"
api /v1/health | jq -e '.status == "ok" and .database' >/dev/null || fail "health: $(api /v1/health)"
code() { curl -s -o /dev/null -w '%{http_code}' --cacert "$T/pki/tlsca.pem" "$@"; }
[ "$(code "https://127.0.0.1:$HTTP_PORT/v1/health")" = 401 ] || fail "no token: not 401"
[ "$(code -H "Authorization: Bearer wrong" "https://127.0.0.1:$HTTP_PORT/v1/health")" = 401 ] || fail "wrong token: not 401"
[ "$(code -H "Authorization: Bearer $(cat "$T/token")" "https://127.0.0.1:$HTTP_PORT/v1/units/NOPE")" = 404 ] || fail "unknown unit: not 404"
[ "$(code -H "Authorization: Bearer $(cat "$T/token")" "https://127.0.0.1:$HTTP_PORT/v1/nothing")" = 404 ] || fail "unknown path: not 404"
[ "$(code -X POST -H "Authorization: Bearer $(cat "$T/token")" "https://127.0.0.1:$HTTP_PORT/v1/health")" = 405 ] || fail "POST: not 405"
api /metrics | grep -q "^tracestore_events_stored_total $N$" || fail "metrics: $(api /metrics | grep stored)"
pass "HTTPS API: lot, unit, firmware scope as the CLI; health; 401 without the token, 404, 405; /metrics"
tls_floor "$HTTP_PORT" "$T/pki/tlsca.pem"
pass "HTTPS API: TLS 1.0 and 1.1 handshakes fail where the same client's TLS 1.2 handshake succeeds"
# The web page: the same token, given once at login, then as a cookie.
[ "$(code "https://127.0.0.1:$HTTP_PORT/")" = 401 ] || fail "page without token: not 401"
[ "$(code -G --data-urlencode "token=wrong" "https://127.0.0.1:$HTTP_PORT/")" = 401 ] || fail "wrong login: not 401"
[ "$(code -c "$T/jar" -G --data-urlencode "token=$(cat "$T/token")" "https://127.0.0.1:$HTTP_PORT/")" = 303 ] \
  || fail "login: not 303"
grep -q tracestore_token "$T/jar" || fail "login set no cookie"
[ "$(code -b "$T/jar" "https://127.0.0.1:$HTTP_PORT/")" = 200 ] || fail "page with the cookie: not 200"
[ "$(code -b "$T/jar" "https://127.0.0.1:$HTTP_PORT/v1/lines")" = 200 ] || fail "API with the cookie: not 200"
pass "web page: 401 without the token, login sets an HttpOnly cookie that the page and API accept"

# --- sample check: three passed units as inspection would read them
ts audit --json >"$T/audit.json" || fail "audit of a clean lot: $(cat "$T/audit.json")"
pass "audit: consistent"
echo "serial,firmware_version,macs,device_id,m:$(ts unit "$serial" --json | jq -r '.measurements[0].name')" >"$T/sample.csv"
for b in $(jq -r -s 'map(select(.type == "unit_completed" and .unitCompleted.passed) | .boardId)[0:3][]' "$E"); do
  ts unit "$b" --json | jq -r '[.serial, .firmware.version, (.identities[-1].macs | join(";")), .identities[-1].deviceId,
    (.measurements[0] | (.low + .high) / 2)] | join(",")' >>"$T/sample.csv"
done
ts sample-check --lot $LOT --file "$T/sample.csv" --json >"$T/sample.out" || fail "clean sample: $(cat "$T/sample.out")"
jq -e '.passed and .rows == 3' "$T/sample.out" >/dev/null || fail "clean sample: $(cat "$T/sample.out")"
awk -F, 'NR == 3 { $2 = "9.9.9" } NR == 4 { $3 = "02:00:5e:99:99:99" } NR == 4 { $5 = 1e9 } 1' OFS=, "$T/sample.csv" >"$T/planted.csv"
echo "NO-SUCH-SERIAL,,,," >>"$T/planted.csv"
rc=0; ts sample-check --lot $LOT --file "$T/planted.csv" --json >"$T/planted.out" || rc=$?
[ $rc -eq 1 ] || fail "planted sample: exit $rc: $(cat "$T/planted.out")"
[ "$(jq -c '[.discrepancies[] | [.line, .field]]' "$T/planted.out")" = "[[3,\"firmware_version\"],[4,\"macs\"],[4,\"$(head -1 "$T/sample.csv" | cut -d, -f5)\"],[5,\"serial\"]]" ] \
  || fail "planted discrepancies: $(jq -c .discrepancies "$T/planted.out")"
pass "sample-check: clean sample of 3 passes; version, MAC, measurement and unknown serial planted: all 4 found"

# --- field firmware: the OTA server reports what two units run now
"$TS_FEED" --brokers "$BOOTSTRAP" --topic "$FIELD_TOPIC" field "$serial" 2.0.0 cafe 1767225600000 ota-1 >/dev/null || fail "ts_feed field"
"$TS_FEED" --brokers "$BOOTSTRAP" --topic "$FIELD_TOPIC" field "$serial" 1.9.0 beef 1767225500000 ota-1 >/dev/null || fail "ts_feed field"
wait_for 30 "the field reports" offsets_at "$FIELD_TOPIC" 2
ts unit "$serial" --json | jq -e '.fieldFirmware.version == "2.0.0" and .firmware.version == "1.1.0"' >/dev/null \
  || fail "unit $serial field firmware: $(ts unit "$serial" --json | jq -c .fieldFirmware)"
[ "$(ts find --firmware 2.0.0 --current --json | jq -c '[.units[].serial]')" = "[\"$serial\"]" ] || fail "find --current 2.0.0"
ts find --firmware 1.1.0 --json | jq -e --arg s "$serial" 'any(.units[]; .serial == $s)' >/dev/null || fail "factory scope lost the unit"
pass "field firmware: $serial runs 2.0.0 (the older 1.9.0 report arrived later and did not win), factory 1.1.0"

# --- replay of the lot changes no count
before=$(ts_sql "SELECT (SELECT count(*) FROM events) || ' ' || (SELECT count(*) FROM measurements) || ' ' || (SELECT count(*) FROM unit_writes) || ' ' || (SELECT count(*) FROM units)")
"$AGENT" spool replay -c "$T/agent.conf" --lot $LOT --brokers "$BOOTSTRAP" 2>"$T/replay.err" || fail "replay: $(cat "$T/replay.err")"
R=$(sed -n 's/.*spool replay: \([0-9]*\) of .*acknowledged.*/\1/p' "$T/replay.err")
[ "${R:-0}" -gt 0 ] || fail "replay sent nothing: $(cat "$T/replay.err")"
wait_for 60 "tracestore to read the $R replayed records" offsets_at "$TOPIC" $((N + R))
after=$(ts_sql "SELECT (SELECT count(*) FROM events) || ' ' || (SELECT count(*) FROM measurements) || ' ' || (SELECT count(*) FROM unit_writes) || ' ' || (SELECT count(*) FROM units)")
[ "$before" = "$after" ] || fail "replay changed counts (events measurements writes units): $before -> $after"
ts lot $LOT --json | jq -c '[.units, .passed, .failed, .versions]' | grep -qF "[$want_units,$want_passed,$want_failed," || fail "lot changed by replay"
pass "spool replay of $R events: counts unchanged ($after)"

# --- bad records are kept aside, consumption goes on
"$TS_FEED" --brokers "$BOOTSTRAP" garbage >/dev/null || fail "ts_feed garbage"
"$TS_FEED" --brokers "$BOOTSTRAP" events 7 --lot-size 2 --tag after >/dev/null || fail "ts_feed events"
wait_for 60 "the 4 bad and 7 good records" offsets_at "$TOPIC" $((N + R + 11))
rej=$(ts_sql "SELECT string_agg(reason, '; ' ORDER BY reason) FROM rejected_records")
[ "$(ts_sql "SELECT count(*) FROM rejected_records WHERE topic = '$TOPIC'")" -eq 4 ] || fail "rejected: $rej"
for why in "undecodable" "missing event_id" "unknown or missing event type" "time out of range"; do
  grep -q "$why" <<<"$rej" || fail "no rejection for \"$why\" in: $rej"
done
[ "$(stored_events)" -eq $((N + 7)) ] || fail "the good records after the bad ones were not all stored"
pass "4 bad records in rejected_records ($rej); the 7 after them stored"

# --- records that decode but the database refuses: the same 7 event ids with
# other times clash in the query tables; the batch is halved until each
# stands alone, and each unit event is rejected. (The lot_started among them clashes with nothing: the events
# table's key is (event_id, time), so it is stored a second time. Agents
# re-send identical bytes; see services/tracestore/README.md.)
"$TS_FEED" --brokers "$BOOTSTRAP" events 7 --lot-size 2 --tag after --time-offset-ms 5000 >/dev/null || fail "ts_feed clash"
"$TS_FEED" --brokers "$BOOTSTRAP" events 2 --lot-size 2 --tag last >/dev/null || fail "ts_feed last"
wait_for 60 "the clashing records and the 2 after them" offsets_at "$TOPIC" $((N + R + 11 + 9))
[ "$(ts_sql "SELECT count(*) FROM rejected_records WHERE reason LIKE 'refused by the database:%'")" -eq 6 ] \
  || fail "refused: $(ts_sql "SELECT kafka_offset, reason FROM rejected_records")"
[ "$(stored_events)" -eq $((N + 7 + 1 + 2)) ] || fail "after the refused batch: $(stored_events) events stored, want $((N + 10))"
grep -q "refused a batch" "$TS_LOG" || fail "the refused batch is not logged"
pass "6 records the database refused (same ids, other times) rejected with its reason; the 2 after them stored"

# --- audit findings: a seq gap, a serial and a MAC on two boards, the rejected records
"$TS_FEED" --brokers "$BOOTSTRAP" events 6 --lot-size 2 --tag gap --skip-seq 3 >/dev/null || fail "ts_feed gap"
wait_for 30 "the gap events" events_at_least $((N + 10 + 5))
dup=$(jq -r -s 'map(select(.type == "unit_provisioned"))[0] | [.unitProvisioned.serial, .unitProvisioned.macs[0]] | join(" ")' "$E")
# Planted in SQL: the agent and provisiond prevent this; the audit must still see it.
ts_sql "INSERT INTO identities VALUES ('planted', now(), 'LOT-X', 'LOT-X-B1', '${dup% *}', ARRAY['${dup#* }'], 'd', 'c', 'prov9', 'S2', 'L9')" >/dev/null
sleep 1.2 # gap_timeout_s = 1
rc=0; ts audit --json >"$T/audit.json" || rc=$?
[ $rc -eq 1 ] || fail "audit exit $rc with findings"
kinds=$(jq -c '[.findings[].kind] | group_by(.) | map({(.[0]): length}) | add' "$T/audit.json")
# and the last boards of the gap and last feeds, stamped 2026-01-01, long
# past unit_timeout_s without an outcome
[ "$kinds" = '{"mac_on_two_boards":1,"rejected_record":10,"seq_gap":1,"serial_on_two_boards":1,"unit_without_outcome":2}' ] \
  || fail "audit findings $kinds"
[ "$(jq -c '[.findings[] | select(.kind == "unit_without_outcome") | .boardId] | sort' "$T/audit.json")" \
  = '["gap-A0-LOT000000-B00001","last-A0-LOT000000-B00000"]' ] \
  || fail "units without outcome: $(jq -c '.findings[] | select(.kind == "unit_without_outcome")' "$T/audit.json")"
jq -e '.findings[] | select(.kind == "seq_gap") | .fromSeq == 3 and .toSeq == 3 and .agent == "gap-agent-0000"' "$T/audit.json" >/dev/null \
  || fail "gap finding $(jq -c '.findings[] | select(.kind == "seq_gap")' "$T/audit.json")"
wait_for 10 "the gap in the log" grep -q "seq gap(s) open longer" "$TS_LOG"
api /metrics | grep -q '^tracestore_seq_gaps 1$' || fail "metrics gaps: $(api /metrics | grep gaps)"
pass "audit: $kinds; the gap is logged and in /metrics"

# --- retention: a month of raw events dropped whole; the answers stay
"$TS_FEED" --brokers "$BOOTSTRAP" events 10 --lot-size 5 --tag old --time-offset-ms -31536000000 >/dev/null \
  || fail "ts_feed old"
wait_for 30 "the 2025-01 events" events_at_least $((N + 10 + 5 + 10))
before=$(stored_events)
ts prune --before 2025-02 --json >"$T/prune.json" || fail "prune dry run: $(cat "$T/prune.json")"
jq -e '.dropped == false and .partitions == [{"name": "events_2025_01", "month": "2025-01", "rows": 10}]' \
  "$T/prune.json" >/dev/null || fail "prune dry run: $(cat "$T/prune.json")"
[ "$(stored_events)" -eq "$before" ] || fail "the dry run dropped something"
ts prune --before 2025-02 --yes --json >"$T/prune.json" || fail "prune: $(cat "$T/prune.json")"
jq -e '.dropped and (.partitions | length) == 1' "$T/prune.json" >/dev/null || fail "prune: $(cat "$T/prune.json")"
[ "$(stored_events)" -eq $((before - 10)) ] || fail "prune: $(stored_events) events left, want $((before - 10))"
[ "$(ts_sql "SELECT to_regclass('events_2025_01') IS NULL")" = t ] || fail "events_2025_01 still there"
ts unit old-A0-LOT000000-B00000 --json | jq -e '.firmware.version != null' >/dev/null \
  || fail "the pruned month's unit lost its answer"
rc=0; ts prune --before 2999-01 --yes >/dev/null 2>"$T/prune.err" || rc=$?
[ $rc -eq 2 ] && grep -q "later than the current month" "$T/prune.err" || fail "prune of the current month: exit $rc, $(cat "$T/prune.err")"
rc=0; ts prune --before 2025-13 >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "prune --before 2025-13: exit $rc"
pass "prune: a dry run lists events_2025_01 (10 rows) and drops nothing; --yes drops it, its unit still answers; the current month and a bad month refused"

# --- configuration errors name file and line
printf '[postgres]\nconninfo = x\n[kafka]\nbatch_max = 0\n' >"$T/bad.conf"
ts_err=$("$TRACESTORE" config -c "$T/bad.conf" 2>&1) && fail "batch_max = 0 accepted"
grep -q "bad.conf:4: \[kafka\] batch_max: must be a whole number in 1..100000" <<<"$ts_err" || fail "config error: $ts_err"
printf '[http]\nlisten = 0.0.0.0:8080\n' >"$T/bad.conf"
ts_err=$("$TRACESTORE" config -c "$T/bad.conf" 2>&1) && fail "plain HTTP off loopback accepted"
grep -q "tls_cert, tls_key and token_file are required" <<<"$ts_err" || fail "config error: $ts_err"
stop_tracestore "$TS_PID"
pass "config errors with file:line; SIGTERM: exit 0"
