#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# demo.sh - the main job end to end on the embedded defaults: a real
# mosquitto on a free loopback port, the agent with its embedded Kafka mock
# cluster, provisiond (the provisioning server, plain HTTP on loopback), a
# 50-board lot over 5 simulated stations with a firmware change mid-lot and
# every board provisioned with a serial, MACs and a certificate, a
# traceability summary read back from Kafka by a consumer, the ledger audit,
# and tracestore (a private PostgreSQL of its own, as user postgres when run
# as root) answering from the database: the lot with its changeover, one
# unit by serial and the recall scope of the old release.
# It ends by printing the URL of tracestore's web page; with --keep, the
# database, tracestore and its page stay up until Ctrl-C, for a person to open.
# Stops everything it started; exits non-zero if any step fails.
# Usage: deploy/demo.sh [--keep]
set -euo pipefail
KEEP=0
case "${1:-}" in
  --keep) KEEP=1 ;;
  "") ;;
  *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
ROOT=$PWD

deploy/deps.sh demo
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DLINEAGENT_TESTS=OFF >/dev/null
cmake --build build/demo -j"$(nproc)" >/dev/null
AGENT=$ROOT/build/demo/lineagent
PROVISIOND=$ROOT/build/demo/services/provisiond/provisiond
TRACESTORE=$ROOT/build/demo/services/tracestore/tracestore

W=$(mktemp -d /tmp/lineagent-demo.XXXXXX)
PIDS=()
source "$ROOT/tests/integration/pg_lib.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg_stop_quiet
}
trap cleanup EXIT
say() { printf '\n== %s\n' "$*"; }
wait_log() { # wait_log PATTERN SECONDS
  for _ in $(seq $(($2 * 10))); do grep -q -- "$1" "$W/agent.log" && return 0; sleep 0.1; done
  echo "demo: timed out waiting for: $1" >&2; tail -20 "$W/agent.log" >&2; exit 1
}

port=""
for _ in $(seq 100); do
  p=$((20000 + RANDOM % 40000))
  (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { port=$p; break; }
done
[ -n "$port" ] || { echo "demo: no free port" >&2; exit 1; }

say "mosquitto on 127.0.0.1:$port"
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$W/mosquitto.conf"
mosquitto -c "$W/mosquitto.conf" >"$W/mosquitto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

say "provisiond: a trial factory CA, a ledger, plain HTTP on 127.0.0.1"
cat >"$W/provisiond.conf" <<CONF
[server]
listen = 127.0.0.1:0
[ledger]
path = $W/ledger.db
[ca]
cert = $W/factory-ca.pem
key = $W/factory-ca.key
[product PCBA-100]
serial_format = {product}-{yy}{ww}-{seq:06}
mac_first = 02:00:5e:10:00:00
mac_last = 02:00:5e:10:ff:ff
macs_per_unit = 2
cert_days = 3650
factory_code = F01
CONF
"$PROVISIOND" init-ca -c "$W/provisiond.conf" | sed 's/^/  /'
"$PROVISIOND" serve -c "$W/provisiond.conf" >"$W/provisiond.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -qs "listening on" "$W/provisiond.log" && break; sleep 0.1; done
PV_PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$W/provisiond.log")
[ -n "$PV_PORT" ] || { echo "demo: provisiond did not start" >&2; cat "$W/provisiond.log" >&2; exit 1; }
echo "  provisiond at http://127.0.0.1:$PV_PORT"

say "firmware releases 1.0.0 and 1.1.0"
for v in 1.0.0 1.1.0; do
  { head -c 131072 /dev/urandom; printf 'PCBA-100 firmware %s' "$v"; } >"$W/fw-$v.bin"
  echo "  $W/fw-$v.bin  sha256 $(sha256sum "$W/fw-$v.bin" | cut -c1-16)..."
done

HTTP_PORT=$((port + 1))
(echo >"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null && HTTP_PORT=0 # taken: let the agent pick one
cat >"$W/lineagent.conf" <<CONF
[agent]
site = demo
line = smt1
spool = $W/spool.db
[firmware]
allowed_urls = file://$W/
[mqtt]
uri = tcp://127.0.0.1:$port
[kafka]
bootstrap.servers = embedded
[provisioning]
url = http://127.0.0.1:$PV_PORT
[station prog1]
adapter = sim
steps = write, verify
sim.boards_per_second = 10
sim.fail_rate = 0.04
sim.step_ms = 20
[station prov1]
adapter = sim
steps = provision
sim.step_ms = 15
[station fct1]
adapter = sim
steps = test
sim.fail_rate = 0.06
sim.step_ms = 40
sim.seed = 7
[station cal1]
adapter = sim
steps = calibrate
sim.fail_rate = 0.02
sim.step_ms = 10
sim.seed = 11
[station lock1]
adapter = sim
steps = lock
sim.step_ms = 10
[http]
listen = 127.0.0.1:$HTTP_PORT
CONF

say "lineagent with the embedded Kafka (5 stations: prog1 write+verify, prov1 provision, fct1 test, cal1 calibrate, lock1 lock)"
"$AGENT" run -c "$W/lineagent.conf" >"$W/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
wait_log "subscribed to" 20
BOOTSTRAP=$(sed -n 's/.*embedded mock cluster at \([^ ]*\).*/\1/p' "$W/agent.log" | head -1)
echo "  embedded Kafka at $BOOTSTRAP"

say "PostgreSQL (private, 127.0.0.1) and tracestore consuming the trace topic into it"
pg_init "$W/pg"
echo "  PostgreSQL on 127.0.0.1:$PG_PORT, data in $W/pg"
TS_PORT=8480 # the page's usual port; taken: let tracestore pick one
(echo >"/dev/tcp/127.0.0.1/$TS_PORT") 2>/dev/null && TS_PORT=0
cat >"$W/tracestore.conf" <<CONF
[postgres]
conninfo = $PG_CONNINFO
password_file = $PG_PASSWORD_FILE
[kafka]
bootstrap.servers = $BOOTSTRAP
field_topic =
[http]
listen = 127.0.0.1:$TS_PORT
CONF
chmod 600 "$W/tracestore.conf"
ts() { "$TRACESTORE" "$@" -c "$W/tracestore.conf"; }
ts migrate | sed 's/^/  /'
"$TRACESTORE" run -c "$W/tracestore.conf" >"$W/tracestore.log" 2>&1 &
TS_PID=$!
PIDS+=("$TS_PID")
for _ in $(seq 100); do grep -qs "http: listening" "$W/tracestore.log" && break; sleep 0.1; done
echo "  $(grep -o 'http: listening on .*' "$W/tracestore.log")"
TS_URL=http://$(sed -n 's/.*http: listening on \([0-9.]*:[0-9]*\).*/\1/p' "$W/tracestore.log" | head -1)
stdbuf -oL mosquitto_sub -p "$port" -q 1 -t 'lineagent/demo/smt1/orders/result' >"$W/results.jsonl" &
PIDS+=($!)
sleep 0.3

order() { # order REVISION VERSION
  local sha; sha=$(sha256sum "$W/fw-$2.bin" | cut -d' ' -f1)
  printf '{"orderId":"WO-1001","revision":%s,"lotId":"LOT-2026-0042","product":"PCBA-100","quantity":50,"firmware":{"version":"%s","sha256":"%s","url":"file://%s","build":"PRODUCTION"},"flow":["WRITE","VERIFY","PROVISION","TEST","CALIBRATE","LOCK"]}' \
    "$1" "$2" "$sha" "$W/fw-$2.bin"
}
say "MES publishes order WO-1001 rev 1: lot LOT-2026-0042, 50 x PCBA-100, firmware 1.0.0"
mosquitto_pub -p "$port" -q 1 -t lineagent/demo/smt1/orders -m "$(order 1 1.0.0)"
wait_log "lot LOT-2026-0042 started" 20
sleep 2.5
say "MES publishes rev 2 mid-lot: firmware 1.1.0 for every board not yet written"
mosquitto_pub -p "$port" -q 1 -t lineagent/demo/smt1/orders -m "$(order 2 1.1.0)"
wait_log "lot LOT-2026-0042 completed" 60
echo "  order results on lineagent/demo/smt1/orders/result:"
sed 's/^/    /' "$W/results.jsonl"

sleep 1 # the yield goes out within a second of the last commit
say "retained live yield on lineagent/demo/smt1/yield (what a dashboard subscribes to)"
mosquitto_sub -p "$port" -t lineagent/demo/smt1/yield -C 1 -W 5 | jq -c '.completed[0] | {lotId, passed, failed, yield, unitsPerHour, failures, versions}' | sed 's/^/  /'
HTTP_PORT=$(sed -n 's/.*http: .* (port \([0-9]*\)).*/\1/p' "$W/agent.log" | head -1)
say "curl http://127.0.0.1:$HTTP_PORT/metrics (Prometheus), the unit and failure counters"
curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep -E '^lineagent_(units_total|step_failures_total|events_)' | grep -v ' 0$' | sed 's/^/  /'

say "traceability summary, read back from Kafka by a consumer"
"$AGENT" trace --brokers "$BOOTSTRAP" --format summary --expect 200 --idle-ms 1500

say "tracestore: waiting until the database holds the whole lot"
for _ in $(seq 300); do
  ts lot LOT-2026-0042 --json 2>/dev/null | jq -e '.completedAt != null' >/dev/null && break
  sleep 0.1
done
ts lot LOT-2026-0042 --json | jq -e '.completedAt != null' >/dev/null || { echo "demo: tracestore did not store the lot" >&2; tail "$W/tracestore.log" >&2; exit 1; }

say "SIGTERM: the agent finishes, flushes its spool and exits"
kill -TERM "$AGENT_PID"
rc=0; wait "$AGENT_PID" || rc=$?
grep -E "spool flushed|stopped cleanly" "$W/agent.log" | sed 's/^/  /'
[ "$rc" -eq 0 ] || { echo "demo: agent exited $rc" >&2; exit 1; }

say "provisiond audit of the issuance ledger"
"$PROVISIOND" audit -c "$W/provisiond.conf" | sed 's/^/  /'
say "tracestore lot LOT-2026-0042: units per firmware version and the changeover"
ts lot LOT-2026-0042 | sed 's/^/  /'
serial=$(ts find --firmware 1.0.0 --json | jq -r '[.units[] | select(.serial != "")][0].serial')
say "tracestore unit $serial: which firmware is in this unit (R3)"
ts unit "$serial" | sed 's/^/  /'
say "tracestore find --firmware 1.0.0: the recall scope of the old release"
ts find --firmware 1.0.0 --json | jq -r '"  \(.count) units carry 1.0.0:", (.units[] | "    \(.serial)  \(.boardId)  \(.lot)  passed \(.passed)")'
echo
echo "demo OK. Agent log, config and spool, provisiond ledger, tracestore config and database: $W"
echo "The plant's web page (Lines now, the lot, units, recall scope, audit): $TS_URL/"
if [ "$KEEP" -eq 1 ]; then
  echo "--keep: PostgreSQL and tracestore stay up; open $TS_URL/#/lot/LOT-2026-0042 and press Ctrl-C to stop."
  trap 'echo; echo "demo: stopping"; exit 0' INT TERM
  while kill -0 "$TS_PID" 2>/dev/null; do sleep 1; done
fi
