#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fault: the MQTT broker restarts mid-lot, and orders are published while
# the agent is cut off from it. The broker keeps the agent's persistent
# session (persistence on); orders queued for it arrive after it
# reconnects; the agent resubscribes; the running lot goes on and nothing
# is lost. To cut the agent off deterministically the broker comes back
# first with only the MES listener (a second port), then with both.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/faults.sh"

start_mosquitto
MES_PORT=$(free_port)
broker() { # broker "LISTENER PORTS...": (re)start mosquitto with these listeners
  stop_mosquitto
  { for p in "$@"; do echo "listener $p 127.0.0.1"; done
    # as root mosquitto would drop to user mosquitto, who cannot write in $T
    printf 'user %s\nallow_anonymous true\npersistence true\npersistence_location %s/mosq/\n' "$(id -un)" "$T"; } >"$T/mosq2.conf"
  mosquitto -c "$T/mosq2.conf" >>"$T/mosquitto.log" 2>&1 &
  MOSQ_PID=$!
  PIDS+=("$MOSQ_PID")
  for p in "$@"; do wait_for 10 "mosquitto on $p" port_open "$p"; done
}
broker "$MQTT_PORT" "$MES_PORT"
start_kafka
BPS=40 STEP_MS=2 write_config "$T/agent.conf"
start_agent "$T/agent.conf"
make_firmware v1 2.0.0
QTY=150
publish -m "$(order_json WO-A 1 LOT-A $QTY 2.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-A started" 30
sleep 1
broker "$MES_PORT"           # restart; the agent's port stays closed
wait_log "connection to tcp://127.0.0.1:$MQTT_PORT lost" 10
pub_mes() { mosquitto_pub -p "$MES_PORT" -q 1 -t "$PREFIX/orders" "$@"; }
pub_mes -m "$(order_json WO-B 1 LOT-B 20 2.0.0 "$FW_SHA" "$FW_PATH")"
pub_mes -m "$(order_json WO-C 1 LOT-C 20 2.0.0 "$FW_SHA" "$FW_PATH")"
sleep 2
grep -q "order WO-B" "$AGENT_LOG" && fail "the agent saw WO-B although cut off"
pass "broker restarted; 2 orders published while the agent was cut off"
broker "$MQTT_PORT" "$MES_PORT" # restart again, now reachable
wait_for 60 "resubscribed" sh -c "[ \$(grep -c 'subscribed to' '$AGENT_LOG') -ge 2 ]"
wait_log "order WO-B rev 1 accepted" 30
wait_log "order WO-C rev 1 accepted" 30
pass "reconnected and resubscribed: orders sent while cut off arrived"
wait_log "lot LOT-C completed" 120
wait_for 60 "spool drained" spool_field_is "$T/agent.conf" pending 0
total=$(($(spool_field "$T/agent.conf" next_seq) - 1))
stop_agent
consume "$total"
check_integrity
check_duplicates
check_lot_order
check_units LOT-A $QTY
check_units LOT-B 20
check_units LOT-C 20
pass "figures: $total events; lot LOT-A ran through two broker restarts; $(grep -c 'connection to .* lost' "$AGENT_LOG") connection losses"
