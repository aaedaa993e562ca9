#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Kafka down for a whole lot: production goes on into the spool, the alarm
# kafka_stalled goes up on the status topic and clears when the brokers
# return; the backlog drains in order and nothing is missing.
source "$(dirname "$0")/lib.sh"

start_mosquitto
start_kafka
BPS=50 write_config "$T/agent.conf"
sed -i 's/^\[kafka\]$/[kafka]\nstall_alarm = 2s/' "$T/agent.conf"
start_status_log
start_agent "$T/agent.conf"
kafka_cmd down all
make_firmware v1 3.0.0
QTY=30
publish -m "$(order_json WO-O 1 LOT-O $QTY 3.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-O completed" 60
pass "lot completed with Kafka down"
wait_log "ALARM kafka_stalled" 30
wait_for 10 "kafka_stalled on the status topic" grep -q '"alarm":"kafka_stalled"' "$T/status.log"
jq -e -s 'map(select(.alarm == "kafka_stalled")) | .[0] | .paused == false and (.detail | test("past seq 1 "))' \
  "$T/status.log" >/dev/null || fail "kafka_stalled status: $(grep -m1 kafka_stalled "$T/status.log")"
pass "alarm kafka_stalled in the log and on the status topic, line not paused: $(grep -m1 kafka_stalled "$T/status.log" | cut -c1-200)"
kafka_cmd up all
wait_log "alarm kafka_stalled cleared" 30
wait_for 10 "status back to plain online" sh -c "tail -n1 '$T/status.log' | grep -q -v alarm"
pass "Kafka back: alarm cleared on the status topic"
# drained: stop cleanly only once every event is acknowledged
SHUTDOWN_MS=30000
stop_agent
grep -q "every event acknowledged by Kafka" "$AGENT_LOG" || fail "backlog not drained after Kafka returned"
pass "backlog drained after recovery"
consume $((1 + 1 + QTY * 5 + 1))
check_integrity
[ "$(count_type unit_completed)" -eq $QTY ] || fail "unit_completed $(count_type unit_completed) of $QTY"
jq -s -e 'map(select(.lotId=="LOT-O")) | sort_by(.kafka.offset) | map(.seq) as $s | $s == ($s | sort)' \
  "$T/events.jsonl" >/dev/null || fail "lot events out of order after the drain"
pass "all $QTY units in Kafka, lot order kept"
# Replayed late, yet each record carries the time its event happened.
jq -s -e 'length > 0 and all(.kafka.timestamp == (.timeMs | tonumber))' "$T/events.jsonl" >/dev/null \
  || fail "Kafka record timestamps are not the events' times"
pass "Kafka record timestamps are the events' times, not the replay's"
