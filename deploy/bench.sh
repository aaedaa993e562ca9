#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench.sh - builds in Release and runs every benchmark scenario against a
# real mosquitto, the mock Kafka cluster and provisiond on loopback, each
# figure beside a raw baseline measured in the same run on the same data
# (absolute figures drift on a shared machine; ratios much less). Medians
# over BENCH_REPEAT runs (default 3). Prints one table and writes
# build/bench/results.json and results.md.
# Usage: deploy/bench.sh [--smoke] [--no-build] [--only LIST]
#   --smoke     tiny sizes, one run: checks the harness, not the figures
#   --only      comma-separated scenarios to run, of: ingest, drain,
#               provision, line (with live data on and off), scrape, intake,
#               footprint, tracestore (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0 BUILD=1 ONLY=
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) SMOKE=1 ;; --no-build) BUILD=0 ;; --only) ONLY=${2:?--only needs a list}; shift ;;
    *) echo "usage: $0 [--smoke] [--no-build] [--only ingest,drain,provision,line,scrape,intake,footprint,tracestore]" >&2; exit 2 ;;
  esac
  shift
done
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
B=${LINEAGENT_BENCH_BUILD:-$ROOT/build/bench}
if [ $BUILD = 1 ]; then
  deploy/deps.sh test
  cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DLINEAGENT_SANITIZE=OFF >/dev/null
  cmake --build "$B" -j"$(nproc)" --target lineagent kafka_mock bench_spool bench_drain provisiond pv_load \
    tracestore ts_feed >/dev/null
fi
REPEAT=${BENCH_REPEAT:-3}
N_SPOOL=200000 N_DRAIN=1000000 N_LINE=100000 N_ORDERS=2000 N_PROV=10000
# tracestore: ingest topic, latency run, query sizes (events)
N_TS=1000000 N_TS_LAT=20000 N_TS_SMALL=100000 N_TS_LARGE=10000000
if [ $SMOKE = 1 ]; then
  REPEAT=1 N_SPOOL=5000 N_DRAIN=5000 N_LINE=500 N_ORDERS=50 N_PROV=200
  N_TS=5000 N_TS_LAT=300 N_TS_SMALL=3000 N_TS_LARGE=9000
fi
OUT=$B/results
mkdir -p "$OUT"
RAW=$OUT/raw.jsonl
: >"$RAW"

# The integration harness gives us mosquitto, kafka_mock, agents and cleanup;
# it and bench_provision.sh find the binaries by name.
export LINEAGENT_BIN=$B/lineagent KAFKA_MOCK_BIN=$B/tests/kafka_mock
export PROVISIOND_BIN=$B/services/provisiond/provisiond PV_LOAD_BIN=$B/tests/pv_load
source "$ROOT/tests/integration/lib.sh"
now() { date +%s.%N; }
report() { # scenario figure unit baseline target note
  jq -cn --arg s "$1" --argjson f "$2" --arg u "$3" --argjson b "$4" --arg t "$5" --arg n "$6" \
    '{scenario:$s, figure:$f, unit:$u, baseline:$b, ratio:(if $b > 0 then $f / $b else 0 end), target:$t, note:$n}' >>"$RAW"
}

echo "bench: $REPEAT run(s) per scenario; raw lines in $RAW" >&2
for r in $(seq "$REPEAT"); do
  if want ingest; then
    echo "bench: run $r: spool ingest" >&2
    d=$(mktemp -d "$T/spool.XXXX"); "$B/tests/bench/bench_spool" "$d" $N_SPOOL >>"$RAW"; rm -rf "$d"
  fi
  if want drain; then
    echo "bench: run $r: backlog drain" >&2
    d=$(mktemp -d "$T/drain.XXXX"); "$B/tests/bench/bench_drain" "$B/tests/kafka_mock" "$d" $N_DRAIN >>"$RAW"; rm -rf "$d"
  fi
  if want provision; then
    echo "bench: run $r: provisioning ($N_PROV units, 16 stations, plain HTTP and mTLS)" >&2
    bash tests/bench/bench_provision.sh $N_PROV 16 >>"$RAW"
  fi
done

start_mosquitto
start_kafka
make_firmware bench 1.0.0

line_config() { # line_config FILE on|off: 64 sim stations, zero step time; live data on or off
  local st=() i
  for i in $(seq 16); do
    st+=("[station prog$i]" "adapter = sim" "steps = write, verify" "sim.boards_per_second = 1000000000")
    st+=("[station fct$i]" "adapter = sim" "steps = test" "[station cal$i]" "adapter = sim" "steps = calibrate")
    st+=("[station lock$i]" "adapter = sim" "steps = lock")
  done
  [ "$2" = on ] && st+=("[http]" "listen = 127.0.0.1:$HTTP_PORT")
  write_config "$1" "${st[@]}"
  sed -i 's/^\[agent\]/[agent]\nmax_quantity = 10000000/' "$1"
  [ "$2" = on ] || sed -i 's/^\[mqtt\]/[mqtt]\nlive_topics = false/' "$1"
}
task_cpu() { # task_cpu PID [THREAD_NAME]: CPU seconds of the process, or of its threads so named
  local t s=0
  for t in /proc/"$1"/task/*; do
    [ -z "${2:-}" ] || [ "$(cat "$t/comm")" = "$2" ] || continue
    s=$((s + $(awk '{print $14 + $15}' "$t/stat")))
  done
  echo "$s / $(getconf CLK_TCK)" | bc -l
}
pctl() { sort -n | awk -v p="$1" '{v[NR] = $1} END {i = int(NR * p + 0.999999); if (i < 1) i = 1; print v[i] * 1000}'; }

# The line throughput with live data on (<prefix>/yield and the station
# topics published, [http] listen with /metrics scraped every second, as
# Prometheus would) and off ([mqtt] live_topics = false, no listener), in
# the order A B / B A alternately; each run's ratio is on / off.
HTTP_PORT=$(free_port)
N_SCRAPE=200
[ $SMOKE = 1 ] && N_SCRAPE=20
line_run() { # line_run RUN on|off: sets UPS (units/s); on: also reports latency and follower CPU
  local r=$1 mode=$2 t0 t1 flushed lat p50 p99 scraper=
  echo "bench: run $r: line throughput, live data $mode ($N_LINE boards, 64 stations)" >&2
  rm -f "$T"/spool.db*
  line_config "$T/line.conf" "$mode"
  start_agent "$T/line.conf"
  if [ "$mode" = on ]; then
    (while :; do curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/metrics"; sleep 1; done) & scraper=$!
    PIDS+=("$scraper")
  fi
  t0=$(now)
  publish -m "$(order_json "WO-L$r$mode" 1 "LOT-L$r$mode" $N_LINE 1.0.0 "$FW_SHA" "$FW_PATH")"
  wait_log "lot LOT-L$r$mode completed" 900
  CPU_S=$(task_cpu "$AGENT_PID")
  if [ "$mode" = on ]; then
    kill "$scraper"; wait "$scraper" 2>/dev/null || true
    # The follower thread behind the yield and the metrics runs in both
    # modes (it also feeds STATUS); its share of the agent's CPU is its cost.
    report "live follower CPU" "$(task_cpu "$AGENT_PID" la-live)" "s" "$(task_cpu "$AGENT_PID")" "-" \
      "CPU of the thread following the spool for yield and metrics (on and off alike); baseline = the whole agent's CPU for the lot"
  fi
  # SIGTERM now: the agent logs "spool flushed" once Kafka has acknowledged
  # every event (delivery reports), which is the end of this measurement.
  stop_agent
  flushed=$(grep -m1 "spool flushed" "$AGENT_LOG" | cut -d' ' -f1) || fail "line throughput: spool not flushed at stop"
  t1=$(date -d "$flushed" +%s.%N)
  UPS=$(echo "$N_LINE / ($t1 - $t0)" | bc -l)
  [ "$mode" = on ] || return 0
  lat=$(grep -o 'p50 [0-9]* us, p99 [0-9]* us' "$AGENT_LOG")
  p50=$(awk '{print $2}' <<<"$lat"); p99=$(awk '{print $5}' <<<"$lat")
  # Baseline: the bare producer's rate from the drain runs, as units of 6 events.
  bare=$(jq -s '[.[] | select(.scenario=="backlog drain") | .baseline] | sort | (.[length/2|floor] // 0) / 6' "$RAW")
  report "line throughput" "$UPS" "units/s" "$bare" ">= 5000/s" \
    "live data on; order in to every event acked; baseline = bare librdkafka produce rate / 6 events per unit"
  report "dispatch latency p50" "$p50" "us" 0 "-" "submit to adapter call, 64 stations"
  report "dispatch latency p99" "$p99" "us" 0 "< 1000 us" "submit to adapter call, 64 stations"
}
want line && for r in $(seq "$REPEAT"); do
  if [ $((r % 2)) = 1 ]; then line_run "$r" on; ups_on=$UPS cpu_on=$CPU_S; line_run "$r" off; ups_off=$UPS cpu_off=$CPU_S
  else line_run "$r" off; ups_off=$UPS cpu_off=$CPU_S; line_run "$r" on; ups_on=$UPS cpu_on=$CPU_S; fi
  report "line throughput, live data on/off" "$ups_on" "units/s" "$ups_off" ">= 0.95" \
    "pairs alternate on first, off first; on = yield and station topics, [http] listen, /metrics scraped every second; off = [mqtt] live_topics = false, no listener"
  # CPU moves less than wall time with other load on the machine.
  report "agent CPU per lot, live data on/off" "$cpu_on" "s" "$cpu_off" "<= 1.05" \
    "the agent's CPU (all threads) from start to the lot completed, on against off"
done

# The time of one /metrics scrape with 64 stations' series filled (a lot of
# 5,000 boards, fewer in the smoke run), outside any throughput clock.
scrape_run() {
  echo "bench: /metrics scrapes at 64 stations ($N_SCRAPE of /metrics and /healthz, alternated)" >&2
  rm -f "$T"/spool.db*
  line_config "$T/line.conf" on
  start_agent "$T/line.conf"
  local n=$((N_LINE < 5000 ? N_LINE : 5000))
  publish -m "$(order_json WO-SCRAPE 1 LOT-SCRAPE $n 1.0.0 "$FW_SHA" "$FW_PATH")"
  wait_log "lot LOT-SCRAPE completed" 900
  # One /metrics scrape with 64 stations' series filled, beside /healthz
  # on the same listener and keep-alive connection, alternated.
  local urls=() i
  for i in $(seq $N_SCRAPE); do
    urls+=(-o /dev/null "http://127.0.0.1:$HTTP_PORT/metrics" -o /dev/null "http://127.0.0.1:$HTTP_PORT/healthz")
  done
  curl -s -w '%{url_effective} %{time_total} %{size_download}\n' "${urls[@]}" >"$T/scrapes.txt"
  local bytes m50 m99 h50 h99
  bytes=$(awk '/metrics/ {print $3; exit}' "$T/scrapes.txt")
  m50=$(awk '/metrics/ {print $2}' "$T/scrapes.txt" | pctl 0.5); m99=$(awk '/metrics/ {print $2}' "$T/scrapes.txt" | pctl 0.99)
  h50=$(awk '/healthz/ {print $2}' "$T/scrapes.txt" | pctl 0.5); h99=$(awk '/healthz/ {print $2}' "$T/scrapes.txt" | pctl 0.99)
  report "/metrics scrape p50" "$m50" "ms" "$h50" "< 5 ms" "$N_SCRAPE scrapes at 64 stations ($bytes bytes), keep-alive; baseline = /healthz on the same listener"
  report "/metrics scrape p99" "$m99" "ms" "$h99" "< 5 ms" "$N_SCRAPE scrapes at 64 stations ($bytes bytes), keep-alive; baseline = /healthz on the same listener"
  stop_agent
}
want scrape && for r in $(seq "$REPEAT"); do scrape_run; done

want intake && echo "bench: order intake ($N_ORDERS orders)" >&2
want intake && for r in $(seq "$REPEAT"); do
  rm -f "$T"/spool.db*
  write_config "$T/intake.conf" "[station p]" "adapter = sim" "steps = write, verify, lock" "sim.boards_per_second = 1000000000"
  start_agent "$T/intake.conf"
  for i in $(seq $N_ORDERS); do
    order_json "WO-I$r-$i" 1 "LOT-I$r-$i" 1 1.0.0 "$FW_SHA" "$FW_PATH" '["WRITE","VERIFY","LOCK"]'; echo
  done >"$T/orders.txt"
  # baseline: mosquitto_sub receiving the same messages on another topic
  mosquitto_sub -p "$MQTT_PORT" -q 1 -t "bench/raw$r" -C $N_ORDERS >/dev/null & sub=$!
  sleep 0.3; t0=$(now)
  mosquitto_pub -p "$MQTT_PORT" -q 1 -t "bench/raw$r" -l <"$T/orders.txt"
  wait $sub; t1=$(now)
  mosquitto_sub -p "$MQTT_PORT" -q 1 -t "$PREFIX/orders/result" -C $N_ORDERS >"$T/res.txt" & sub=$!
  sleep 0.3; t2=$(now)
  mosquitto_pub -p "$MQTT_PORT" -q 1 -t "$PREFIX/orders" -l <"$T/orders.txt"
  wait $sub; t3=$(now)
  stop_agent
  acc=$(grep -c '"accepted":true' "$T/res.txt" || true)
  [ "$acc" -eq $N_ORDERS ] || fail "order intake: $acc of $N_ORDERS accepted"
  report "order intake" "$(echo "$N_ORDERS / ($t3 - $t2)" | bc -l)" "orders/s" "$(echo "$N_ORDERS / ($t1 - $t0)" | bc -l)" \
    "-" "QoS 1, accepted and durable (result received); baseline = mosquitto_sub receive rate"
done

want footprint && echo "bench: footprint" >&2
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
want footprint && for r in $(seq "$REPEAT"); do
  rm -f "$T"/spool.db*
  write_config "$T/idle.conf"
  t0=$(now)
  "$LINEAGENT_BIN" run -c "$T/idle.conf" >"$T/idle.log" 2>&1 & apid=$!
  PIDS+=("$apid")
  until grep -q "subscribed to" "$T/idle.log"; do sleep 0.002; done
  t1=$(now)
  mosquitto_pub -p "$MQTT_PORT" -r -q 1 -t bench/ready -m ready
  t2=$(now)
  mosquitto_sub -p "$MQTT_PORT" -q 1 -t bench/ready -C 1 >/dev/null
  t3=$(now)
  mosquitto_sub -p "$MQTT_PORT" -q 1 -t bench/idle >/dev/null & spid=$!
  PIDS+=("$spid")
  sleep 2
  c0=$(cpu_ticks $apid); s0=$(cpu_ticks $spid); sleep 5; c1=$(cpu_ticks $apid); s1=$(cpu_ticks $spid)
  report "start-up to ready" "$(echo "($t1 - $t0) * 1000" | bc -l)" "ms" "$(echo "($t3 - $t2) * 1000" | bc -l)" "< 200 ms" \
    "exec to MQTT subscribed; baseline = mosquitto_sub connect, subscribe, first message"
  report "idle RSS" "$(echo "$(rss_kb $apid) / 1024" | bc -l)" "MB" "$(echo "$(rss_kb $spid) / 1024" | bc -l)" "< 16 MB" \
    "2 s after start, Kafka connected; baseline = idle mosquitto_sub"
  report "idle CPU" "$(echo "($c1 - $c0) / 5" | bc -l)" "% of a core" "$(echo "($s1 - $s0) / 5" | bc -l)" "-" \
    "over 5 s idle; baseline = idle mosquitto_sub"
  kill $spid; kill -TERM $apid; wait $apid || true
done

# tracestore runs once (its 10M-event query database takes minutes to build),
# in its own script with its own PostgreSQL and mock cluster.
if want tracestore; then
  echo "bench: tracestore (ingest $N_TS, latency $N_TS_LAT at 1000/s, queries at $N_TS_SMALL and $N_TS_LARGE events)" >&2
  bash tests/bench/bench_tracestore.sh "$B" $N_TS $N_TS_LAT $N_TS_SMALL $N_TS_LARGE >>"$RAW"
fi

# One row per scenario: medians of figure, baseline and ratio. The ratio is
# the median of each run's own ratio (figure and baseline of the same run),
# not a ratio of medians taken from different runs.
jq -s 'group_by(.scenario) | map({scenario: .[0].scenario, unit: .[0].unit, target: .[0].target, note: .[0].note,
        runs: length, figure: (map(.figure) | sort | .[length/2|floor]),
        baseline: (map(.baseline) | sort | .[length/2|floor]),
        ratio: (if .[0].baseline > 0 then (map(.figure / .baseline) | sort | .[length/2|floor]) else null end)})' \
  "$RAW" >"$OUT/results.json"
{
  echo "| scenario | figure | baseline | ratio | target | note |"
  echo "|---|---|---|---|---|---|"
  jq -r '.[] | "| \(.scenario) | \(.figure | . * 10 | round / 10) \(.unit) | \(if .baseline > 0 then (.baseline | . * 10 | round / 10 | tostring) else "-" end) | \(if .ratio then (.ratio * 100 | round / 100 | tostring) else "-" end) | \(.target) | \(.note) |"' "$OUT/results.json"
} >"$OUT/results.md"
cp "$OUT/results.json" "$OUT/results.md" "$(dirname "$OUT")/" 2>/dev/null || true
echo
cat "$OUT/results.md"
echo
echo "written: $B/results.json $B/results.md (median of $REPEAT run(s) each)"
