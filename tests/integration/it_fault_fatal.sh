#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fault: the idempotent producer hits a fatal error mid-lot. The mock broker
# answers a Produce request with OUT_OF_ORDER_SEQUENCE_NUMBER, which
# librdkafka's idempotent producer treats as fatal (sequence
# desynchronisation). The forwarder must destroy and recreate the producer
# and resend from the oldest undelivered event: nothing lost, nothing
# reordered within a lot. Injected twice, in two lots.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/faults.sh"

start_mosquitto
start_kafka
BPS=150 STEP_MS=1 write_config "$T/agent.conf"
start_agent "$T/agent.conf"
make_firmware v1 4.0.0
QTY=200
publish -m "$(order_json WO-F1 1 LOT-F1 $QTY 4.0.0 "$FW_SHA" "$FW_PATH")"
publish -m "$(order_json WO-F2 1 LOT-F2 $QTY 4.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-F1 started" 30
sleep 0.5
kafka_cmd error PRODUCE 1 45 # OUT_OF_ORDER_SEQUENCE_NUMBER
wait_for 30 "first fatal error" grep -q "fatal producer error" "$AGENT_LOG"
wait_log "lot LOT-F2 started" 60
sleep 0.5
kafka_cmd error PRODUCE 1 45
wait_for 30 "second fatal error" sh -c "[ \$(grep -c 'fatal producer error' '$AGENT_LOG') -ge 2 ]"
wait_log "lot LOT-F2 completed" 60
wait_for 60 "spool drained" spool_field_is "$T/agent.conf" pending 0
total=$(($(spool_field "$T/agent.conf" next_seq) - 1))
stop_agent
fatal=$(grep -c "fatal producer error" "$AGENT_LOG")
resends=$(events_sent_again)
grep -q "cannot recreate producer" "$AGENT_LOG" && fail "producer recreation failed"
pass "$fatal fatal idempotent-producer errors, producer recreated each time; $resends events sent again"
consume "$total"
check_integrity
check_duplicates
check_lot_order
check_units LOT-F1 $QTY
check_units LOT-F2 $QTY
dup_range=$(jq -s -c 'group_by(.eventId) | map(select(length > 1) | .[0].seq) | [min, max, length]' "$T/events.jsonl")
grep -n "fatal producer error\|events not delivered\|were withdrawn" "$AGENT_LOG" | cut -c1-160
pass "figures: $total events, all in Kafka after $fatal producer recreations; duplicated seqs [min, max, count]: $dup_range"
