#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A lot of 40 boards over 4 sim stations with the firmware changed mid-lot by
# a second order revision; then a clean SIGTERM stop. Checks what a Kafka
# consumer receives: counts, the one changeover and where it fell, the
# version each unit really got, and seq/event-id integrity.
source "$(dirname "$0")/lib.sh"

start_mosquitto
start_kafka
BPS=20 write_config "$T/agent.conf"
start_agent "$T/agent.conf"
start_results

make_firmware v1 1.0.0; SHA1=$FW_SHA; P1=$FW_PATH
make_firmware v2 1.1.0; SHA2=$FW_SHA; P2=$FW_PATH
QTY=40
publish -m "$(order_json WO-1 1 LOT-7 $QTY 1.0.0 "$SHA1" "$P1")"
sleep 0.8 # ~15 boards in at 20/s
publish -m "$(order_json WO-1 2 LOT-7 $QTY 1.1.0 "$SHA2" "$P2")"
wait_log "lot LOT-7 completed" 60
stop_agent
grep -q "every event acknowledged by Kafka" "$AGENT_LOG" || fail "clean stop did not flush the spool"
pass "SIGTERM: exit 0, spool flushed"

# results on MQTT
[ "$(jq -s 'map(select(.orderId=="WO-1" and .accepted)) | length' "$T/results.jsonl")" -eq 2 ] \
  || fail "expected both revisions accepted: $(cat "$T/results.jsonl")"
pass "orders/result: revisions 1 and 2 accepted"

# 1 order_accepted x2, lot_started, 40 x (unit_written, unit_tested, unit_calibrated, unit_locked, unit_completed),
# 1 changeover, lot_completed
consume $((2 + 1 + QTY * 5 + 1 + 1))
check_integrity
E=$T/events.jsonl
[ "$(count_type unit_completed)" -eq $QTY ] || fail "unit_completed: $(count_type unit_completed), want $QTY"
[ "$(count_type version_changeover)" -eq 1 ] || fail "want exactly one version_changeover, got $(count_type version_changeover)"
co=$(jq -c 'select(.type=="version_changeover") | .versionChangeover' "$E" | head -1)
[ "$(jq -r .fromVersion <<<"$co")" = 1.0.0 ] && [ "$(jq -r .toVersion <<<"$co")" = 1.1.0 ] || fail "changeover $co"
last_old=$(jq -r .lastBoardOld <<<"$co"); first_new=$(jq -r .firstBoardNew <<<"$co")
pass "one changeover 1.0.0 -> 1.1.0 between $last_old and $first_new"

# every unit's completed version is the version written and verified into it
mism=$(jq -s '
  (map(select(.type=="unit_written")) | map({key: .boardId, value: .unitWritten.version}) | from_entries) as $w
  | map(select(.type=="unit_completed")) | map(select(.unitCompleted.passed and .unitCompleted.firmwareVersion != $w[.boardId])) | length' "$E")
[ "$mism" -eq 0 ] || fail "$mism units report a version other than the one written"
n_old=$(jq -s 'map(select(.type=="unit_completed" and .unitCompleted.firmwareVersion=="1.0.0")) | length' "$E")
n_new=$(jq -s 'map(select(.type=="unit_completed" and .unitCompleted.firmwareVersion=="1.1.0")) | length' "$E")
[ "$n_old" -gt 0 ] && [ "$n_new" -gt 0 ] && [ $((n_old + n_new)) -eq $QTY ] || fail "per version: $n_old old, $n_new new"
# with one programming station boards are written in arrival order: all boards
# up to last_old carry 1.0.0, all from first_new carry 1.1.0
bad=$(jq -s --arg lo "$last_old" --arg fn "$first_new" '
  map(select(.type=="unit_written")) | map(select((.boardId <= $lo and .unitWritten.version != "1.0.0")
                                            or (.boardId >= $fn and .unitWritten.version != "1.1.0"))) | length' "$E")
[ "$bad" -eq 0 ] || fail "$bad boards on the wrong side of the changeover"
[[ "$first_new" > "$last_old" ]] || fail "first new board $first_new not after last old $last_old"
pass "units per version: 1.0.0=$n_old 1.1.0=$n_new, split exactly at the changeover"

# per-lot order: within the lot's partition, seq increases
jq -s -e 'map(select(.lotId=="LOT-7")) | group_by(.kafka.partition) | length == 1' "$E" >/dev/null \
  || fail "LOT-7 events spread over partitions"
jq -s -e 'map(select(.lotId=="LOT-7")) | sort_by(.kafka.offset) | map(.seq) as $s | $s == ($s | sort)' "$E" >/dev/null \
  || fail "LOT-7 events out of order in their partition"
pass "lot events on one partition, in seq order"

lc=$(jq -c 'select(.type=="lot_completed") | .lotCompleted' "$E")
[ "$(jq '.passed + .failed' <<<"$lc")" -eq $QTY ] || fail "lot_completed $lc"
jq -e -s 'map(select(.type=="unit_written")) | all(.unitWritten.readbackSha256 == .unitWritten.sha256)' "$E" >/dev/null \
  || fail "a unit_written whose read-back differs from the release"
[ "$(jq -r -s 'map(select(.type=="unit_written" and .unitWritten.version=="1.0.0"))[0].unitWritten.sha256' "$E")" = "$SHA1" ] \
  || fail "unit_written sha256 is not the order's"
pass "lot_completed $lc; every unit_written carries the verified read-back digest"
