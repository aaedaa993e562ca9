#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fault: Kafka fails while 1,000 boards run (two lots of 500). Produce
# requests fail with NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT and
# NOT_ENOUGH_REPLICAS (rd_kafka_mock_push_request_errors), then every broker
# goes down (rd_kafka_mock_broker_set_down) while production goes on, then
# comes back with more errors queued. Zero lost, order per lot kept, the
# backlog drains; the figures are printed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/faults.sh"

start_mosquitto
start_kafka
BPS=2000 STEP_MS=0 write_config "$T/agent.conf"
# One request in flight: the mock cluster does not check idempotent sequence
# numbers, so with pipelined requests a later batch can be stored while an
# earlier one got an injected error; librdkafka then counts the earlier one
# as acknowledged (a real broker answers OUT_OF_ORDER_SEQUENCE instead).
sed -i 's/^\[kafka\]$/[kafka]\nqueue_high_water = 200\nmax.in.flight.requests.per.connection = 1/' "$T/agent.conf"
start_agent "$T/agent.conf"
make_firmware v1 5.0.0
QTY=500
publish -m "$(order_json WO-K1 1 LOT-K1 $QTY 5.0.0 "$FW_SHA" "$FW_PATH")"
publish -m "$(order_json WO-K2 1 LOT-K2 $QTY 5.0.0 "$FW_SHA" "$FW_PATH")"
kafka_cmd error PRODUCE 15 6   # NOT_LEADER_FOR_PARTITION
kafka_cmd error PRODUCE 15 7   # REQUEST_TIMED_OUT
wait_log "lot LOT-K1 started" 30
sleep 0.5
kafka_cmd down all
t_down=$(date +%s.%N)
wait_log "lot LOT-K2 completed" 240
t_done=$(date +%s.%N)
peak=$(spool_field "$T/agent.conf" pending)
kafka_cmd error PRODUCE 15 19  # NOT_ENOUGH_REPLICAS, waiting for the brokers' return
kafka_cmd up all
t_up=$(date +%s.%N)
wait_for 120 "backlog drained" spool_field_is "$T/agent.conf" pending 0
t_drained=$(date +%s.%N)
total=$(($(spool_field "$T/agent.conf" next_seq) - 1))
awk -v total="$total" -v boards=$((2 * QTY)) -v down="$t_down" -v done_="$t_done" -v peak="$peak" \
  -v up="$t_up" -v drained="$t_drained" 'BEGIN {
    printf "figures: %d events for %d boards; Kafka down %.1fs while production went on; backlog at recovery %d events; drained in %.1fs (%.0f events/s)\n",
      total, boards, done_ - down, peak, drained - up, peak / (drained - up) }'
[ "$peak" -gt 0 ] || fail "no backlog built up while Kafka was down"
resent=$(events_sent_again)
[ "$resent" -gt 0 ] && echo "note: $resent events sent again after failed or withdrawn deliveries"
stop_agent
consume "$total"
check_integrity
check_duplicates
check_lot_order
check_units LOT-K1 $QTY
check_units LOT-K2 $QTY
pass "zero lost: $total of $total events in Kafka"
