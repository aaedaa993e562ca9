#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A real Prometheus (Debian's prometheus) on a free loopback port scrapes the
# agent's /metrics every second while a lot of 200 boards runs; its HTTP API
# then answers sum(lineagent_units_total) with the units completed.
source "$(dirname "$0")/lib.sh"
for tool in prometheus curl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (deploy/deps.sh test installs it)"
done

start_mosquitto
start_kafka
HTTP_PORT=$(free_port)
PROM_PORT=$(free_port)
write_config "$T/agent.conf"
printf '[http]\nlisten = 127.0.0.1:%s\n' "$HTTP_PORT" >>"$T/agent.conf"
start_agent "$T/agent.conf"

cat >"$T/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: lineagent
    static_configs:
      - targets: ['127.0.0.1:$HTTP_PORT']
CONF
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prom" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$T/prometheus.log" 2>&1 &
PIDS+=($!)
wait_for 30 "prometheus ready" curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" -o /dev/null
query() { curl -s "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" | jq -r '.data.result[0].value[1] // empty'; }
up_is_1() { [ "$(query 'up{job="lineagent"}')" = 1 ]; }
wait_for 30 "prometheus scrapes the agent" up_is_1

make_firmware v1 1.0.0
QTY=200
publish -m "$(order_json WO-P 1 LOT-P $QTY 1.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-P completed" 120
units_seen() { [ "$(query 'sum(lineagent_units_total)')" = "$1" ]; }
wait_for 15 "sum(lineagent_units_total) = $QTY in Prometheus" units_seen $QTY
done_log=$(sed -n 's/.*lot LOT-P completed: \([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' "$AGENT_LOG")
[ "$(query 'sum(lineagent_units_total{outcome="passed"})')" = "${done_log% *}" ] || fail "passed units differ from the agent's ($done_log)"
[ "$(query 'lineagent_mqtt_connected')" = 1 ] || fail "lineagent_mqtt_connected is not 1 in Prometheus"
stop_agent
pass "Prometheus scraped the agent: sum(lineagent_units_total) = $QTY, passed = ${done_log% *}"
