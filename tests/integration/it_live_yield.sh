#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Live line data: the HTTP listener's /healthz, /readyz and /metrics, and the
# retained <prefix>/yield. A lot of 500 boards with failures, the agent
# killed (SIGKILL) in the middle and restarted: the final retained yield and
# the scraped unit counts agree exactly with what a Kafka consumer receives,
# the yield is rebuilt from the spool after the restart (not reset), and it
# is published at most twice a second.
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || fail "curl is not installed (deploy/deps.sh test installs it)"

start_mosquitto
start_kafka
HTTP_PORT=$(free_port)
# Failures at two steps: the writer's (caught by verify) and the tester's.
write_config "$T/agent.conf" "[station prog1]" "adapter = sim" "steps = write, verify" "sim.boards_per_second = 80" \
  "sim.fail_rate = 0.02" "[station fct1]" "adapter = sim" "steps = test" "sim.fail_rate = 0.05" "sim.seed = 7" \
  "[station cal1]" "adapter = sim" "steps = calibrate" "[station lock1]" "adapter = sim" "steps = lock" \
  "[http]" "listen = 127.0.0.1:$HTTP_PORT"
start_agent "$T/agent.conf"
http() { curl -s -o "$T/http.body" -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT$1"; }
[ "$(http /healthz)" = 200 ] || fail "/healthz: $(cat "$T/http.body")"
wait_for 10 "/readyz ready" bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$HTTP_PORT/readyz)\" = 200 ]"
pass "/healthz 200, /readyz 200 once subscribed"

# Every yield document with its arrival time (Unix seconds, ns precision).
stdbuf -oL mosquitto_sub -p "$MQTT_PORT" -t "$PREFIX/yield" -F '%U %p' >"$T/yield.log" 2>/dev/null &
PIDS+=($!)
last_yield() { tail -n1 "$T/yield.log" | cut -d' ' -f2-; }
units_done_at_least() { last_yield | jq -n -e "input | .lot.passed + .lot.failed >= $1" >/dev/null 2>&1; }
make_firmware v1 1.0.0
QTY=500
publish -m "$(order_json WO-Y 1 LOT-Y $QTY 1.0.0 "$FW_SHA" "$FW_PATH")"
wait_for 60 "150 boards done" units_done_at_least 150
kill_agent
before=$(last_yield | jq '.lot.passed + .lot.failed')
n_kill=$(wc -l <"$T/yield.log")
start_agent "$T/agent.conf"
grep -q "yield rebuilt from the spool" "$AGENT_LOG" || fail "no rebuild logged after the restart"
wait_log "lot LOT-Y completed" 120
sleep 1.5 # the last document goes out within a second of the commit
final=$(last_yield)
curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$T/metrics.txt"
stop_agent

consume_all() { # every event of the lot (a restart may send some twice: de-duplicated by id)
  "$AGENT" trace --brokers "$BOOTSTRAP" --format jsonl --idle-ms 2000 --timeout-ms 60000 >"$T/events.jsonl" 2>"$T/trace.err" \
    || { cat "$T/trace.err"; fail "trace consumer failed"; }
}
consume_all
k_passed=$(jq -s 'map(select(.type=="unit_completed" and .unitCompleted.passed)) | unique_by(.eventId) | length' "$T/events.jsonl")
k_failed=$(jq -s 'map(select(.type=="unit_completed" and (.unitCompleted.passed|not))) | unique_by(.eventId) | length' "$T/events.jsonl")
[ $((k_passed + k_failed)) -eq $QTY ] || fail "Kafka has $k_passed + $k_failed unit_completed, want $QTY"
[ "$k_failed" -gt 0 ] || fail "no failed units: the test needs failures"
lot=$(jq -c '.completed[0]' <<<"$final")
[ "$(jq -r .lotId <<<"$lot")" = LOT-Y ] || fail "final yield does not list LOT-Y as completed: $final"
[ "$(jq .passed <<<"$lot")" -eq "$k_passed" ] && [ "$(jq .failed <<<"$lot")" -eq "$k_failed" ] \
  || fail "yield says $(jq -c '{passed,failed}' <<<"$lot"), Kafka $k_passed passed $k_failed failed"
pass "final retained yield = Kafka: $k_passed passed, $k_failed failed (restart at $before done)"
k_fail_modes=$(jq -s -c 'map(select(.type=="unit_failed")) | unique_by(.eventId) | group_by(.unitFailed.failureMode) | map({mode: .[0].unitFailed.failureMode, count: length}) | sort_by(.mode)' "$T/events.jsonl")
y_fail_modes=$(jq -c '.failures | group_by(.mode) | map({mode: .[0].mode, count: (map(.count) | add)}) | sort_by(.mode)' <<<"$lot")
[ "$k_fail_modes" = "$y_fail_modes" ] || fail "failures: yield $y_fail_modes, Kafka $k_fail_modes"
jq -e '(.yield - (.passed / (.passed + .failed)) | fabs) < 1e-6 and .quantity == 500 and .product == "PCBA-100" and .firmwareVersion == "1.0.0" and (.versions | map(.passed + .failed) | add == 500) and ([.versions[] | select(.version == "1.0.0")] | length == 1) and all(.versions[]; .version == "1.0.0" or (.version == null and .passed == 0)) and .unitsPerHour > 0' <<<"$lot" >/dev/null \
  || fail "yield fields: $lot"
pass "failures by step and mode match Kafka: $y_fail_modes"

# The lot in progress carried per-measurement statistics (the sim's TEST measures).
mid=$(grep -m1 '"passed":[1-9]' "$T/yield.log" | cut -d' ' -f2-)
jq -e '.lot.measurements | length > 0 and all(.count > 0 and .min <= .mean and .mean <= .max and .stddev >= 0)' <<<"$mid" >/dev/null \
  || fail "no measurement statistics in the lot in progress: $mid"
pass "measurement statistics on the lot in progress: $(jq -c '.lot.measurements[0] | {name,count,mean,cpk}' <<<"$mid")"

# After the restart the documents continue from the spool, never from zero.
back=$(cut -d' ' -f2- "$T/yield.log" | jq -s '[.[] | select(.lot.lotId == "LOT-Y") | .lot.passed + .lot.failed]
  | . as $d | [range(1; length) | select($d[.] < $d[. - 1])] | length')
[ "$back" -eq 0 ] || fail "the yield went backwards $back times (reset after the restart?)"
pass "yield never went backwards across the restart ($(wc -l <"$T/yield.log") documents)"

# At most twice a second within a run: the agent spaces documents 500 ms
# apart, so any 2 s holds at most 5 of them; the subscriber stamps their
# arrival, which scheduling (ASan, shared cores) moves by a few hundred ms but
# cannot multiply. A document per commit would put dozens in 2 s. The
# restarted agent's first document may follow the killed one's last sooner.
crowded=$(awk -v k="$n_kill" '{t[NR] = $1} END {
  for (i = 1; i <= NR; i++) { n = 0
    for (j = i; j <= NR && t[j] - t[i] < 2.0; j++) if (!(i <= k && j > k)) n++
    if (n > 5) bad++ }
  print bad + 0 }' "$T/yield.log")
[ "$crowded" -eq 0 ] || fail "$crowded 2-second windows hold more than 5 yield documents"
pass "yield published at most twice a second"

# Within a second of the commit: the document showing the lot completed
# arrives less than 1 s after the agent logged the completion (just before
# committing it).
t_done=$(date -d "$(grep -m1 'lot LOT-Y completed' "$AGENT_LOG" | cut -d' ' -f1)" +%s.%N)
t_doc=$(cut -d' ' -f2- "$T/yield.log" | jq -r 'select(.completed[0].lotId == "LOT-Y") | input_line_number' | head -1)
t_doc=$(sed -n "${t_doc}p" "$T/yield.log" | cut -d' ' -f1)
awk -v a="$t_done" -v b="$t_doc" 'BEGIN {exit !(b - a < 1.0 && b >= a)}' \
  || fail "the completed lot was published $(awk -v a="$t_done" -v b="$t_doc" 'BEGIN {print b - a}') s after its commit"
pass "the completion was published $(awk -v a="$t_done" -v b="$t_doc" 'BEGIN {printf "%.0f", (b - a) * 1000}') ms after the commit"

# Prometheus text: units by station and site add up to the units this run committed.
grep -q '^# TYPE lineagent_units_total counter' "$T/metrics.txt" || fail "/metrics lacks lineagent_units_total"
m_units=$(awk '/^lineagent_units_total\{/ {s += $2} END {print s+0}' "$T/metrics.txt")
replayed=$(sed -n 's/.*yield rebuilt from the spool, events [0-9]*\.\.\([0-9]*\).*/\1/p' "$AGENT_LOG")
k_after=$(jq -s --argjson r "$replayed" 'map(select(.type=="unit_completed" and .seq > $r)) | unique_by(.eventId) | length' "$T/events.jsonl")
[ "$m_units" -eq "$k_after" ] || fail "/metrics units_total $m_units, Kafka has $k_after units committed by the restarted agent"
grep -q '^lineagent_step_duration_seconds_bucket{station="fct1",step="TEST",le="+Inf"}' "$T/metrics.txt" || fail "no step duration histogram"
grep -q '^lineagent_mqtt_connected 1' "$T/metrics.txt" || fail "mqtt_connected is not 1"
grep -q '^lineagent_orders_total{result="accepted"}' "$T/metrics.txt" || fail "no orders_total"
if grep -E '^lineagent_[a-z_]+\{[^}]*(board|serial)' "$T/metrics.txt"; then fail "a board id or serial as a label"; fi
pass "/metrics: units_total $m_units = Kafka's units since the restart (replayed events not counted twice)"

# [mqtt] live_topics = false: a lot runs, its result is published, and
# neither <prefix>/yield nor <prefix>/stations/<name> is (a line of its own,
# so nothing retained from above answers).
P2=lineagent/$SITE/L2
write_config "$T/quiet.conf" "[station prog1]" "adapter = sim" "steps = write, verify" "sim.boards_per_second = 200" \
  "[station fct1]" "adapter = sim" "steps = test" "sim.fail_rate = 0.2" "sim.seed = 3" \
  "[station lock1]" "adapter = sim" "steps = lock"
sed -i -e "s/^line = .*/line = L2/" -e "s#^spool = .*#spool = $T/quiet.db#" -e 's/^\[mqtt\]/[mqtt]\nlive_topics = false/' "$T/quiet.conf"
stdbuf -oL mosquitto_sub -p "$MQTT_PORT" -t "$P2/#" -F '%t' >"$T/quiet.topics" 2>/dev/null &
PIDS+=($!)
start_agent "$T/quiet.conf"
mosquitto_pub -p "$MQTT_PORT" -q 1 -t "$P2/orders" -m "$(order_json WO-Q 1 LOT-Q 20 1.0.0 "$FW_SHA" "$FW_PATH" '["WRITE","VERIFY","TEST","LOCK"]')"
wait_log "lot LOT-Q completed" 60
sleep 1.5 # past the follower's next publication, had there been one
stop_agent
grep -qx "$P2/orders/result" "$T/quiet.topics" || fail "live_topics = false: no order result on $P2 ($(sort -u "$T/quiet.topics" | tr '\n' ' '))"
grep -qx "$P2/status" "$T/quiet.topics" || fail "live_topics = false: no status on $P2"
if grep -E "^$P2/(yield|stations/)" "$T/quiet.topics"; then fail "live_topics = false, yet live documents were published"; fi
pass "live_topics = false: order result and status published, no yield or station documents"
