# SPDX-License-Identifier: Apache-2.0
# lib.sh - shared harness for the integration tests: starts a real mosquitto
# and the mock Kafka cluster (tests/tools/kafka_mock) on free loopback ports,
# runs lineagent as a separate process, publishes orders with mosquitto_pub
# and reads Kafka back with `lineagent trace`. Sourced, not run.
# Every test gets: $AGENT $KAFKA_MOCK, $T (scratch dir), and cleanup of
# everything it started. Binaries come by name from the environment, never
# by position: tests/CMakeLists.txt sets LINEAGENT_BIN, KAFKA_MOCK_BIN,
# PROVISIOND_BIN, PV_LOAD_BIN and GDB_FAULT_PROXY_BIN for every test; by hand,
#   LINEAGENT_BIN=build/test/agent/lineagent KAFKA_MOCK_BIN=build/test/tests/kafka_mock \
#     bash tests/integration/it_cli.sh
set -euo pipefail

# need_bin VAR: the absolute path of the executable named by environment
# variable VAR; fails the test, saying which variable, when it is unset or
# names nothing executable.
need_bin() {
  local path=${!1:-}
  if [ -z "$path" ]; then
    echo "FAIL: $1 is not set: this test needs it (ctest sets it; by hand, $1=path/to/binary)" >&2
    exit 1
  fi
  [ -x "$path" ] || { echo "FAIL: $1=$path is not an executable file" >&2; exit 1; }
  readlink -f "$path"
}

AGENT=$(need_bin LINEAGENT_BIN)
KAFKA_MOCK=$(need_bin KAFKA_MOCK_BIN)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
T=$(mktemp -d /tmp/lineagent-it.XXXXXX)
SITE=S1
LINE=L1
PREFIX="lineagent/$SITE/$LINE"
PIDS=()

for tool in mosquitto mosquitto_pub mosquitto_sub jq; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (deploy/deps.sh test installs it)"; exit 1; }
done

cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  exec 9>&- 2>/dev/null || true
  wait 2>/dev/null || true
  if [ $rc -ne 0 ]; then
    echo "---- agent log (last 60 lines) ----"; tail -n 60 "$T"/agent*.log 2>/dev/null || true
    echo "---- kept $T for inspection"
  else
    rm -rf "$T"
  fi
}
trap cleanup EXIT
# A command that ends the test by errexit says which, where no fail() did
# (top level only: without errtrace, functions and $(...) are not traced).
trap 'echo "FAIL: line $LINENO exited $?: $BASH_COMMAND" >&2' ERR

fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "ok: $*"; }

# shellcheck source=ports.sh
. "$SRC/tests/integration/ports.sh"

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 10))); do "$@" && return 0; sleep 0.1; done
  fail "timed out after ${secs}s waiting for $what"
}

port_open() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

MQTT_PORT=""
# start_mosquitto: a broker on $MQTT_PORT, or on a free port when unset;
# a port taken between the pick and the bind is replaced, a few times.
start_mosquitto() {
  local fixed=$MQTT_PORT try
  mkdir -p "$T/mosq"
  for try in 1 2 3 4 5; do
    MQTT_PORT=${fixed:-$(free_port)}
    cat >"$T/mosq.conf" <<CONF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $T/mosq/
# The default (1000) silently drops QoS 1 messages queued for a slow or
# absent client; orders must never be dropped.
max_queued_messages 0
# Started as root, mosquitto drops to user "mosquitto", which cannot write
# its persistence into this private directory; keep it as the caller.
user $(id -un)
CONF
    : >"$T/mosquitto.log"
    mosquitto -c "$T/mosq.conf" >>"$T/mosquitto.log" 2>&1 &
    MOSQ_PID=$!
    local _
    for _ in $(seq 100); do
      port_open "$MQTT_PORT" && { PIDS+=("$MOSQ_PID"); return 0; }
      kill -0 "$MOSQ_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$MOSQ_PID" 2>/dev/null || true
    wait "$MOSQ_PID" 2>/dev/null || true
    if [ -n "$fixed" ] || [ "$try" -eq 5 ] || ! grep -q "Address already in use" "$T/mosquitto.log"; then
      tail -n 20 "$T/mosquitto.log"
      fail "mosquitto did not start on $MQTT_PORT"
    fi
  done
}

stop_mosquitto() { kill "$MOSQ_PID"; wait "$MOSQ_PID" 2>/dev/null || true; }

# The mock cluster reads commands (down/up/quit) from fd 9; arguments go to
# kafka_mock (e.g. --topic T --partitions P).
start_kafka() {
  mkfifo "$T/kafka.ctl"
  "$KAFKA_MOCK" "$@" <"$T/kafka.ctl" >"$T/kafka.out" 2>"$T/kafka.err" &
  PIDS+=($!)
  exec 9>"$T/kafka.ctl"
  wait_for 10 "kafka_mock bootstrap" grep -q '^bootstrap=' "$T/kafka.out"
  BOOTSTRAP=$(sed -n 's/^bootstrap=//p' "$T/kafka.out")
}
kafka_cmd() { echo "$*" >&9; }

# write_config FILE [extra station sections...]: a 4-station line by default.
write_config() {
  local file=$1; shift
  cat >"$file" <<CONF
[agent]
site = $SITE
line = $LINE
spool = $T/spool.db
log_level = ${LOG_LEVEL:-info}
shutdown_timeout_ms = ${SHUTDOWN_MS:-15000}
[mqtt]
uri = tcp://127.0.0.1:$MQTT_PORT
[kafka]
bootstrap.servers = $BOOTSTRAP
[firmware]
allowed_urls = ${ALLOWED_URLS:-file://$T/}
CONF
  if [ $# -gt 0 ]; then printf '%s\n' "$@" >>"$file"; else
    cat >>"$file" <<CONF
[station prog1]
adapter = sim
steps = write, verify
sim.boards_per_second = ${BPS:-40}
[station fct1]
adapter = sim
steps = test
sim.step_ms = ${STEP_MS:-5}
[station cal1]
adapter = sim
steps = calibrate
[station lock1]
adapter = sim
steps = lock
CONF
  fi
}

AGENT_RUN=0
start_agent() { # start_agent CONFIG
  AGENT_RUN=$((AGENT_RUN + 1))
  AGENT_LOG="$T/agent$AGENT_RUN.log"
  "$AGENT" run -c "$1" >"$AGENT_LOG" 2>&1 &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  wait_for 20 "agent ready" grep -q "running: site" "$AGENT_LOG"
  wait_for 20 "agent subscribed" grep -q "subscribed" "$AGENT_LOG"
}

stop_agent() { # SIGTERM, expect exit 0
  kill -TERM "$AGENT_PID"
  local rc=0
  wait "$AGENT_PID" || rc=$?
  [ "$rc" -eq 0 ] || fail "agent exited $rc after SIGTERM"
}

kill_agent() { kill -KILL "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; }

record_topic() { # record_topic TOPIC FILE: every message on TOPIC, one per line
  stdbuf -oL mosquitto_sub -p "$MQTT_PORT" -q 1 -t "$1" >"$2" 2>/dev/null &
  PIDS+=($!)
}
start_results() { record_topic "$PREFIX/orders/result" "$T/results.jsonl"; sleep 0.3; }
# The retained status and each change of it, one JSON per line.
start_status_log() { record_topic "$PREFIX/status" "$T/status.log"; }

publish() { mosquitto_pub -p "$MQTT_PORT" -q 1 -t "$PREFIX/orders" "$@"; }

# make_firmware NAME VERSION: writes an image and sets FW_PATH/FW_SHA
make_firmware() {
  FW_PATH="$T/fw-$1.bin"
  head -c 65536 /dev/urandom >"$FW_PATH"
  printf 'lineagent-test-firmware %s' "$2" >>"$FW_PATH"
  FW_SHA=$(sha256sum "$FW_PATH" | cut -d' ' -f1)
}

order_json() { # order_json ORDER REV LOT QTY VERSION SHA PATH [FLOW_JSON]
  printf '{"orderId":"%s","revision":%s,"lotId":"%s","product":"PCBA-100","quantity":%s,"firmware":{"version":"%s","sha256":"%s","url":"file://%s","build":"PRODUCTION"},"flow":%s}' \
    "$1" "$2" "$3" "$4" "$5" "$6" "$7" "${8:-[\"WRITE\",\"VERIFY\",\"TEST\",\"CALIBRATE\",\"LOCK\"]}"
}

wait_log() { wait_for "${2:-60}" "log: $1" grep -q -- "$1" "$AGENT_LOG"; }

# consume EXPECTED: every event on the topic, one JSON line each, into $T/events.jsonl
consume() {
  "$AGENT" trace --brokers "$BOOTSTRAP" --format jsonl --expect "$1" --idle-ms 1500 --timeout-ms 60000 \
    >"$T/events.jsonl" 2>"$T/trace.err" || { cat "$T/trace.err"; fail "trace consumer did not get $1 events"; }
}

# Integrity every test checks: unique event ids per seq, no seq gaps, and a
# re-sent event identical in id and seq.
check_integrity() {
  local f=$T/events.jsonl
  local distinct_seq gaps ids_per_seq seqs_per_id
  distinct_seq=$(jq -s 'map(.seq) | unique | length' "$f")
  gaps=$(jq -s 'map(.seq) | unique | (max - min + 1) - length' "$f")
  [ "$gaps" -eq 0 ] || fail "$gaps seq gaps in $distinct_seq events"
  [ "$(jq -s 'map(.seq) | unique | min' "$f")" -eq 1 ] || fail "seq does not start at 1"
  ids_per_seq=$(jq -s 'group_by(.seq) | map(map(.eventId) | unique | length) | max' "$f")
  [ "$ids_per_seq" -eq 1 ] || fail "a seq carries different event ids"
  seqs_per_id=$(jq -s 'group_by(.eventId) | map(map(.seq) | unique | length) | max' "$f")
  [ "$seqs_per_id" -eq 1 ] || fail "an event id carries different seqs"
  pass "integrity: $distinct_seq events, seq 1..$distinct_seq without gaps, ids stable"
}

results_at_least() { [ "$(wc -l <"$T/results.jsonl")" -ge "$1" ]; }

count_type() { jq -s --arg t "$1" 'map(select(.type == $t)) | unique_by(.eventId) | length' "$T/events.jsonl"; }

# A test PKI, in the current directory, on P-256 keys valid 30 days:
# pki_ca NAME makes a self-signed CA (NAME.pem, NAME.key); pki_issue NAME CA
# EXTENSION a certificate NAME.pem for CN=NAME signed by CA, with EXTENSION
# (an openssl extension line, e.g. "extendedKeyUsage=clientAuth").
pki_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.pem" 2>/dev/null
}
pki_issue() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 30 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}

# tls_floor PORT CAFILE [openssl s_client options...]: TLS 1.2 is the floor
# of the server on 127.0.0.1:PORT: a TLS 1.0 and a TLS 1.1 handshake fail
# where the same client's TLS 1.2 handshake succeeds. The old versions are
# offered at security level 0, since OpenSSL 3 leaves them out above it and
# the client would refuse them itself; so it is the server that refuses.
tls_floor() {
  local port=$1 ca=$2 out v
  shift 2
  for v in -tls1 -tls1_1 -tls1_2; do
    out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$ca" "$@" "$v" \
      -cipher DEFAULT@SECLEVEL=0 2>&1 || true)
    if [ "$v" = -tls1_2 ]; then
      grep -q "TLSv1.2, Cipher is ECDHE" <<<"$out" || fail "the same client with TLS 1.2 failed: $out"
    else
      ! grep -q "no protocols available" <<<"$out" || fail "the client did not even offer $v: $out"
      grep -q "Cipher is (NONE)" <<<"$out" || fail "a $v handshake succeeded: $out"
    fi
  done
}
