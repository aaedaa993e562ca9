#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The agent as a service: deploy/*.service pass `systemd-analyze verify`
# (ExecStart pointed at this build); under a $NOTIFY_SOCKET the agent and
# provisiond send READY=1, the agent STATUS with lot, yield and backlog and a
# WATCHDOG=1 heartbeat at half of $WATCHDOG_USEC, which goes on with Kafka
# down and stops while the forwarder's loop is stuck (test-only fault
# injection) and comes back when it turns again; started as root it warns,
# and with [agent] user it runs as that user after binding its listener.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pv_lib.sh"
for tool in systemd-analyze socat; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (deploy/deps.sh test installs it)"
done
[ "$(id -u)" -eq 0 ] || fail "this test must run as root (it checks the root warning and the drop to [agent] user)"

# ---- units -------------------------------------------------------------
mkdir -p "$T/units"
for u in lineagent provisiond; do
  sed -e "s#ExecStart=/usr/bin/lineagent#ExecStart=$AGENT#" -e "s#ExecStart=/usr/bin/provisiond#ExecStart=$PROVISIOND#" \
    "$SRC/deploy/$u.service" >"$T/units/$u.service"
  grep -q '^Type=notify' "$T/units/$u.service" || fail "$u.service is not Type=notify"
  systemd-analyze verify "$T/units/$u.service" >"$T/verify.out" 2>&1 || { cat "$T/verify.out"; fail "systemd-analyze verify $u.service"; }
  [ -s "$T/verify.out" ] && { cat "$T/verify.out"; fail "systemd-analyze verify $u.service complained"; }
  score=$(systemd-analyze security --offline=true "$T/units/$u.service" 2>/dev/null | sed -n 's/.*exposure level for .*: \([0-9.]*\) .*/\1/p')
  awk -v s="$score" 'BEGIN {exit !(s != "" && s < 2.5)}' || fail "$u.service exposure $score, want under 2.5"
  pass "$u.service: systemd-analyze verify clean, exposure $score"
done

# ---- sd_notify ---------------------------------------------------------
notify_sink() { # notify_sink NAME: every datagram on $T/NAME.sock into $T/NAME.notify
  socat -u "UNIX-RECV:$T/$1.sock" "OPEN:$T/$1.notify,creat,append" &
  PIDS+=($!)
  wait_for 5 "$1 notify socket" test -S "$T/$1.sock"
}
start_mosquitto
start_kafka
HTTP_PORT=$(free_port)
BPS=10 write_config "$T/agent.conf" # 30 boards take 3 s: STATUS shows the lot
printf '[http]\nlisten = 127.0.0.1:%s\n' "$HTTP_PORT" >>"$T/agent.conf"
notify_sink agent
LINEAGENT_FAULT_FORWARDER_STALL=$T/stall NOTIFY_SOCKET=$T/agent.sock WATCHDOG_USEC=2000000 start_agent "$T/agent.conf"
grep -q "fault injection compiled in" "$AGENT_LOG" \
  || fail "this agent has no fault injection: build with -DLINEAGENT_FAULT_INJECTION=ON (deploy/test.sh does)"
grep -q "running as root: the packaged service runs as user lineagent" "$AGENT_LOG" || fail "no root warning"
pass "started as root without [agent] user: warned"
wait_for 5 "READY=1" grep -q 'READY=1' "$T/agent.notify"
make_firmware v1 1.0.0
publish -m "$(order_json WO-S 1 LOT-S 30 1.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-S completed" 60
b0=$(grep -o 'WATCHDOG=1' "$T/agent.notify" | wc -l)
sleep 3
beats=$(( $(grep -o 'WATCHDOG=1' "$T/agent.notify" | wc -l) - b0 ))
[ "$beats" -ge 2 ] && [ "$beats" -le 4 ] || fail "$beats watchdog heartbeats in 3 s, want one a second (WATCHDOG_USEC 2 s)"
grep -aq 'STATUS=lot LOT-S: [0-9]* of 30 done, yield [0-9.]*%; backlog [0-9]* events' "$T/agent.notify" \
  || fail "no STATUS with lot, yield and backlog: $(tr '\n' ' ' <"$T/agent.notify" | tail -c 300)"
pass "agent: READY=1, $beats WATCHDOG=1 in 3 s, STATUS with lot/yield/backlog"

# ---- the heartbeat needs the forwarder's loop turning --------------------
# count_in SECONDS PATTERN: datagram fields matching PATTERN that arrive in
# the next SECONDS.
count_in() {
  local n0
  n0=$(grep -ao "$2" "$T/agent.notify" | wc -l)
  sleep "$1"
  echo $(($(grep -ao "$2" "$T/agent.notify" | wc -l) - n0))
}
# Kafka unreachable is not a stuck forwarder: its loop keeps turning.
kafka_cmd down all
beats=$(count_in 4 'WATCHDOG=1')
kafka_cmd up all
[ "$beats" -ge 3 ] || fail "$beats heartbeats in 4 s with Kafka down, want one a second (the forwarder's loop turns)"
pass "Kafka down: $beats WATCHDOG=1 in 4 s"
# A stuck forwarder (its loop no longer turning; test builds stall it while
# $T/stall exists): no heartbeat once its last turn is 10 s old, while the
# main loop goes on sending STATUS; the heartbeat resumes when it turns again.
touch "$T/stall"
wait_log "fault injection: the forwarder's loop stalls" 5
sleep 11.5
beats=$(count_in 4 'WATCHDOG=1')
statuses=$(count_in 3 'STATUS=')
[ "$beats" -eq 0 ] || fail "$beats heartbeats 11.5-15.5 s into a forwarder stall, want none"
[ "$statuses" -ge 2 ] || fail "$statuses STATUS in 3 s during the stall, want one a second (the main loop turns)"
kill -0 "$AGENT_PID" || fail "the agent died during the stall"
rm "$T/stall"
wait_log "fault injection: the forwarder's loop turns again" 5
wait_for 3 "a heartbeat after the stall" bash -c "tail -c 2000 '$T/agent.notify' | grep -aq 'WATCHDOG=1'"
beats=$(count_in 3 'WATCHDOG=1')
[ "$beats" -ge 2 ] || fail "$beats heartbeats in 3 s after the stall, want one a second"
pass "forwarder stalled: no WATCHDOG=1 from 11.5 s on ($statuses STATUS in 3 s); turning again: $beats in 3 s"
stop_agent
grep -q 'STOPPING=1' "$T/agent.notify" || fail "no STOPPING=1"
pass "agent: STOPPING=1"

make_pki "$T/pki"
write_pv_config "$T/pv.conf" 0
notify_sink pv
NOTIFY_SOCKET=$T/pv.sock "$PROVISIOND" serve -c "$T/pv.conf" 2>"$T/pv.log" &
PV_PID=$!
PIDS+=("$PV_PID")
wait_for 10 "provisiond READY=1" grep -q 'READY=1' "$T/pv.notify"
kill -TERM "$PV_PID"; wait "$PV_PID" || true
pass "provisiond: READY=1"

# ---- [agent] user --------------------------------------------------------
# nobody needs a spool directory of its own and a way through $T.
chmod 711 "$T"
mkdir -p "$T/nobody" && chown nobody "$T/nobody"
sed -i "s#^spool = .*#spool = $T/nobody/spool.db\nuser = nobody#" "$T/agent.conf"
start_agent "$T/agent.conf"
uid=$(awk '/^Uid:/ {print $2 $3 $4 $5}' "/proc/$AGENT_PID/status")
nob=$(id -u nobody)
[ "$uid" = "$nob$nob$nob$nob" ] || fail "agent uids $uid, want nobody's ($nob) everywhere"
grep -q "running as user nobody" "$AGENT_LOG" || fail "no log of the drop"
grep -q "running as root" "$AGENT_LOG" && fail "warned about root although it dropped"
[ "$(stat -c %U "$T/nobody/spool.db")" = nobody ] || fail "spool created as $(stat -c %U "$T/nobody/spool.db")"
[ "$(curl -s "http://127.0.0.1:$HTTP_PORT/healthz")" = ok ] || fail "listener bound before the drop does not answer"
publish -m "$(order_json WO-N 1 LOT-N 10 1.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-N completed" 60
stop_agent
pass "[agent] user = nobody: every uid is nobody's, spool owned by nobody, listener answers, lot completes"
