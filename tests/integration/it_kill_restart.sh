#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# SIGKILL the agent in the middle of a lot, restart it: the lot completes,
# no committed event is lost, undelivered ones are re-sent with their
# original event_id and seq, and no unit gets two outcomes.
source "$(dirname "$0")/lib.sh"

start_mosquitto
start_kafka
BPS=25 write_config "$T/agent.conf"
start_agent "$T/agent.conf"
make_firmware v1 2.0.0
QTY=40
publish -m "$(order_json WO-K 1 LOT-K $QTY 2.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-K started" 20
sleep 0.4
kafka_cmd down all # from here on events pile up undelivered in the spool
sleep 0.5
kill_agent
pass "killed with SIGKILL mid-lot, Kafka down, events undelivered"
# an order published while the agent is down waits in the persistent session
make_firmware v2 2.1.0
publish -m "$(order_json WO-K 2 LOT-K $QTY 2.1.0 "$FW_SHA" "$FW_PATH")"
start_agent "$T/agent.conf"
kafka_cmd up all
grep -q "resuming lot LOT-K" "$AGENT_LOG" || fail "restart did not resume the lot"
wait_log "order WO-K rev 2 revision accepted" 20
wait_log "lot LOT-K completed" 60
stop_agent
pass "restarted: lot resumed, order sent while down taken, lot completed"

consume $((2 + 1 + QTY * 5 + 1 + 1))
check_integrity
E=$T/events.jsonl
outcomes=$(jq -s 'map(select(.type=="unit_completed")) | unique_by(.eventId) | group_by(.boardId)
                  | map(length) | max' "$E")
[ "$outcomes" -eq 1 ] || fail "a unit was reported completed $outcomes times"
[ "$(jq -s 'map(select(.type=="unit_completed")) | unique_by(.boardId) | length' "$E")" -eq $QTY ] \
  || fail "not every board completed"
dups=$(jq -s 'length - (unique_by(.eventId) | length)' "$E")
pass "every one of $QTY boards has exactly one outcome; $dups re-sent duplicates (same id and seq)"
