#!/usr/bin/env bash
# tracestore end to end: a lot of 30 provisioned boards with the firmware
# changed mid-lot goes agent -> Kafka -> tracestore -> PostgreSQL, and the
# CLI's answers (lot, unit by serial and by board, recall scope) are checked
# against the events the agent emitted, read back with `lineagent trace`.
# Then: `lineagent spool replay` of the lot changes no count; undecodable
# records land in rejected_records while consumption goes on; field firmware
# reports give units a current version (`unit`, `find --current`); and
# `sample-check` passes a clean sample and finds planted discrepancies.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pv_lib.sh"
source "$(dirname "$0")/ts_lib.sh"

write_pv_config "$T/pv.conf" 0
start_provisiond "$T/pv.conf"
start_mosquitto
start_kafka --topic "$TOPIC" --topic "$FIELD_TOPIC"
ts_setup
start_tracestore "$T/ts.conf"

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
