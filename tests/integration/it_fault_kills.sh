#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fault: SIGKILL the agent at 50 random moments of a running lot (starting
# up, loading boards, committing, draining to Kafka) and restart it each
# time. At the end: every board has all its events in Kafka, every event_id
# the spool numbered is there, duplicates are only re-sends of the same
# event_id, seq has no gap, no board has two outcomes, the lot completes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/faults.sh"

KILLS=${KILLS:-50}
start_mosquitto
start_kafka
BPS=25 STEP_MS=2 write_config "$T/agent.conf"
start_agent "$T/agent.conf"
make_firmware v1 7.0.0
QTY=500
publish -m "$(order_json WO-X 1 LOT-X $QTY 7.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-X started" 30
RANDOM=$$
kill_agent
t0=$(date +%s)
for i in $(seq "$KILLS"); do
  # a backlog for the later kills to interrupt while it drains
  [ "$i" -eq $((KILLS / 3)) ] && kafka_cmd down all
  [ "$i" -eq $((KILLS / 2)) ] && kafka_cmd up all
  AGENT_RUN=$((AGENT_RUN + 1))
  AGENT_LOG="$T/agent$AGENT_RUN.log"
  "$AGENT" run -c "$T/agent.conf" >"$AGENT_LOG" 2>&1 &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  # 50..1000 ms: some kills land in start-up, most in production or a drain
  sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.3f", 0.05 + (r % 950) / 1000 }')"
  kill -KILL "$AGENT_PID"
  wait "$AGENT_PID" 2>/dev/null || true
done
t1=$(date +%s)
resumed=$(grep -l "resuming lot LOT-X" "$T"/agent*.log | wc -l)
sent_again=$(grep -h "resuming lot LOT-X" "$AGENT_LOG" || echo "-")
pass "$KILLS SIGKILLs in $((t1 - t0))s; $resumed runs resumed the lot (last kill at: ${sent_again#*resuming })"
start_agent "$T/agent.conf"
wait_for 120 "lot LOT-X completed" sh -c "grep -q 'lot LOT-X completed' '$T'/agent*.log"
wait_for 60 "spool drained" spool_field_is "$T/agent.conf" pending 0
total=$(($(spool_field "$T/agent.conf" next_seq) - 1))
stop_agent
consume "$total"
check_integrity
check_duplicates
check_lot_order
check_units LOT-X $QTY
restarted=$(jq -s 'map(select(.type == "unit_written")) | length - (unique_by(.boardId) | length)' "$T/events.jsonl")
pass "figures: $total events committed, all in Kafka; $restarted boards re-written after a kill (flow restarted)"
