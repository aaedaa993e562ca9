#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent to Mosquitto over TLS with client certificates: a broker
# listener with require_certificate takes the agent's certificate and a lot
# runs through it; a broker certificate from another CA, no client
# certificate, and a broker that offers only TLS 1.1 are each refused, with
# a log line saying why. (The test tools publish on a plain loopback
# listener of the same broker.)
source "$(dirname "$0")/lib.sh"

P=$T/pki
mkdir -p "$P"
(
  cd "$P"
  pki_ca mqttca; pki_ca rogueca
  pki_issue broker mqttca "subjectAltName=IP:127.0.0.1"
  pki_issue agent mqttca "extendedKeyUsage=clientAuth"
  pki_issue fake rogueca "subjectAltName=IP:127.0.0.1"
  chmod 600 ./*.key
)

MQTT_PORT=$(free_port)
TLS_PORT=$(free_port)
FAKE_PORT=$(free_port)
OLD_PORT=$(free_port)
mkdir -p "$T/mosq"
tls_listener() { # tls_listener PORT CERT [extra lines...]
  printf '%s\n' "listener $1 127.0.0.1" "cafile $P/mqttca.pem" "certfile $P/$2.pem" "keyfile $P/$2.key" \
    "require_certificate true"
  shift 2
  printf '%s\n' "$@"
}
{
  echo "per_listener_settings false"
  echo "allow_anonymous true"
  echo "persistence false"
  echo "max_queued_messages 0"
  echo "user $(id -un)"
  echo "listener $MQTT_PORT 127.0.0.1"
  tls_listener "$TLS_PORT" broker
  tls_listener "$FAKE_PORT" fake
} >"$T/mosq.conf"
mosquitto -c "$T/mosq.conf" >>"$T/mosquitto.log" 2>&1 &
PIDS+=($!)
wait_for 10 "mosquitto" port_open "$TLS_PORT"
start_kafka
# A "broker" that speaks TLS 1.1 only (mosquitto's tls_version is a minimum),
# with an RSA certificate and RSA key exchange: no signature algorithm the
# client could object to, so the protocol version is all that is left.
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=old" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$P/old.key" -out "$P/old.pem" 2>/dev/null
openssl s_server -accept "127.0.0.1:$OLD_PORT" -tls1_1 -cipher 'AES128-SHA:@SECLEVEL=0' -cert "$P/old.pem" \
  -key "$P/old.key" -quiet </dev/null >"$T/s_server.log" 2>&1 &
PIDS+=($!)
wait_for 10 "TLS 1.1 server" port_open "$OLD_PORT"

tls_config() { # tls_config PORT CA [CERT]
  BPS=100 STEP_MS=0 write_config "$T/agent.conf"
  local lines="uri = ssl://127.0.0.1:$1\nca_file = $P/$2.pem"
  [ -n "${3:-}" ] && lines="$lines\ncert_file = $P/$3.pem\nkey_file = $P/$3.key"
  sed -i "s#^uri = .*#$lines#" "$T/agent.conf"
}
# refused PORT CA CERT PATTERN WHAT: the agent never subscribes and logs why
refused() {
  tls_config "$1" "$2" "$3"
  AGENT_RUN=$((AGENT_RUN + 1))
  AGENT_LOG="$T/agent$AGENT_RUN.log"
  "$AGENT" run -c "$T/agent.conf" >"$AGENT_LOG" 2>&1 &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  wait_for 20 "log line for $5" grep -qiE -- "$4" "$AGENT_LOG"
  ! grep -q "subscribed" "$AGENT_LOG" || fail "$5: the agent subscribed"
  stop_agent
  pass "$5: refused; the agent logs \"$(grep -m1 -iE -- "$4" "$AGENT_LOG" | sed 's/^.*mqtt: //')\""
}

# --- the good case: a lot runs over the TLS link
tls_config "$TLS_PORT" mqttca agent
start_agent "$T/agent.conf"
start_results
make_firmware v1 1.0.0
publish -m "$(order_json WO-T 1 LOT-T 5 1.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-T completed" 60
stop_agent
pass "agent on ssl:// with its client certificate (require_certificate): lot LOT-T completed"

refused "$FAKE_PORT" mqttca agent "TLS:.*certificate verify failed" "broker certificate from another CA"
refused "$TLS_PORT" mqttca "" "failed: .*no client certificate configured" "no client certificate"
grep -qiE "peer did not return a certificate|certificate required" "$T/mosquitto.log" \
  || fail "mosquitto did not log the missing client certificate"
refused "$OLD_PORT" old agent "TLS:.*(handshake failure|unsupported protocol|no protocols available|protocol version)" \
  "a broker offering TLS 1.1 only"
grep -q "no shared cipher" "$T/s_server.log" || fail "the TLS 1.1 server saw no TLS 1.2-only offer: $(cat "$T/s_server.log")"
