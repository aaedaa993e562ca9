#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fixture-site health and <prefix>/stations/<name>. A tester whose one site
# fails every board: after [line] site_alarm_consecutive = 3 failures in a
# row at TEST the alarm fixture_site_suspect (station, site, step, mode,
# count) is on the retained status and in the log, and with
# site_alarm_action = pause the site takes no more boards once the
# coordinator has committed the third failure (the board the site already
# holds finishes: at most one more); the retained station document says
# paused with its counts, which stay put. An operator's
# <prefix>/command/site/resume clears it; the site loads again and, still
# failing, raises it again after three more; `lineagent site resume` clears
# that one (and refuses an unknown station or site). Then warn mode on a tester that
# fails one board in two at its second site (sites = 2, fail_rate 0.5 with
# consecutive = 2): alarms are raised and clear by themselves at a pass, and
# the lot completes.
source "$(dirname "$0")/lib.sh"
SHUTDOWN_MS=2000 # boards wait at the paused site; they resume at the next start

start_mosquitto
start_kafka
write_config "$T/agent.conf" "[line]" "site_alarm_consecutive = 3" "site_alarm_rate = 0" "site_alarm_action = pause" \
  "[station prog1]" "adapter = sim" "steps = write, verify, lock" "sim.boards_per_second = 200" \
  "[station fct1]" "adapter = sim" "steps = test" "sim.fail_rate = 1" "sim.step_ms = 200"
start_agent "$T/agent.conf"
record_topic "$PREFIX/stations/fct1" "$T/fct1.log"
start_status_log
make_firmware v1 1.0.0
publish -m "$(order_json WO-S 1 LOT-S 10 1.0.0 "$FW_SHA" "$FW_PATH" '["WRITE","VERIFY","TEST","LOCK"]')"

last() { tail -n1 "$1"; }
status_has_alarm() { last "$T/status.log" | jq -e '.alarms[] | select(.alarm == "fixture_site_suspect")' >/dev/null 2>&1; }
wait_log "ALARM fixture_site_suspect: station fct1 site 0: 3 boards failed in a row at TEST" 30
wait_for 10 "fixture_site_suspect on the status topic" status_has_alarm
a=$(last "$T/status.log" | jq -c '.alarms[] | select(.alarm == "fixture_site_suspect")')
[ "$(jq -r '"\(.station) \(.site) \(.step) \(.mode) \(.count) \(.paused)"' <<<"$a")" = "fct1 0 TEST limit_exceeded 3 true" ] ||
  fail "status alarm: $a"
pass "fixture_site_suspect raised after 3 failures in a row: $a"

fct1_failed() { last "$T/fct1.log" | jq '.sites[0].failed'; }
paused_doc() { last "$T/fct1.log" | jq -e '.state == "paused" and .sites[0].state == "paused" and .sites[0].suspect and .sites[0].consecutiveFailures >= 3' >/dev/null 2>&1; }
wait_for 5 "stations/fct1 paused" paused_doc
sleep 2 # the board the site held finishes; then nothing more
f1=$(fct1_failed)
[ "$f1" -ge 3 ] && [ "$f1" -le 4 ] || fail "paused at $f1 failed boards, not 3 (+ the one on the site)"
sleep 2
[ "$(fct1_failed)" = "$f1" ] || fail "a paused site went on: $f1 then $(fct1_failed) failed"
grep -q "lot LOT-S completed" "$AGENT_LOG" && fail "the lot completed through a paused site"
retained=$(mosquitto_sub -p "$MQTT_PORT" -t "$PREFIX/stations/fct1" -C 1 -W 5) || fail "stations/fct1 not retained"
jq -e '.station == "fct1" and (.sites | length) == 1 and .updatedAt != null' <<<"$retained" >/dev/null ||
  fail "retained station document: $retained"
prog=$(mosquitto_sub -p "$MQTT_PORT" -t "$PREFIX/stations/prog1" -C 1 -W 5) || fail "stations/prog1 not retained"
jq -e '.sites[0].passed >= 3 and .sites[0].failed == 0' <<<"$prog" >/dev/null || fail "stations/prog1: $prog"
pass "the paused site loads nothing; stations/fct1 and stations/prog1 retained: $(last "$T/fct1.log")"

mosquitto_pub -p "$MQTT_PORT" -q 1 -t "$PREFIX/command/site/resume" -m '{"station":"fct1","site":0}'
wait_log "site resume: station fct1 site 0 by an operator: 1 alarm(s) cleared" 10
wait_for 30 "the alarm raised again after 3 more" bash -c "[ \$(grep -c 'ALARM fixture_site_suspect: station fct1 site 0: 3 boards failed in a row' '$AGENT_LOG') -ge 2 ]"
wait_for 5 "stations/fct1 paused again" paused_doc
sleep 2
f2=$(fct1_failed)
[ "$f2" -ge $((f1 + 3)) ] && [ "$f2" -le $((f1 + 4)) ] || fail "paused again at $f2 failed boards (first pause at $f1)"
a=$(last "$T/status.log" | jq -c '.alarms[] | select(.alarm == "fixture_site_suspect")')
[ "$(jq -r .count <<<"$a")" = 3 ] || fail "second alarm: $a"
pass "resume clears the alarm and loads the site again; 3 more failures raise it again"
# The same command from the command line, with the config's MQTT settings.
out=$("$AGENT" site resume --station fct1 --site 0 -c "$T/agent.conf") || fail "lineagent site resume exited $?"
[ "$out" = "published {\"station\":\"fct1\",\"site\":0} to $PREFIX/command/site/resume" ] || fail "site resume printed: $out"
wait_for 10 "the second resume" bash -c "[ \$(grep -c 'site resume: station fct1 site 0 by an operator: 1 alarm(s) cleared' '$AGENT_LOG') -ge 2 ]"
wait_for 10 "the site loading again after the CLI resume" bash -c "[ \$(tail -n1 '$T/fct1.log' | jq '.sites[0].failed') -gt $f2 ]"
pass "lineagent site resume --station fct1 --site 0 clears the alarm; the site loads again"
rc=0; "$AGENT" site resume --station nope -c "$T/agent.conf" 2>"$T/cli.err" || rc=$?
[ $rc -eq 2 ] && grep -q "has no station nope" "$T/cli.err" || fail "site resume of an unknown station: exit $rc, $(cat "$T/cli.err")"
rc=0; "$AGENT" site resume --station fct1 --site 1 -c "$T/agent.conf" 2>"$T/cli.err" || rc=$?
[ $rc -eq 2 ] && grep -q "station fct1 has sites 0..0 only" "$T/cli.err" || fail "site resume of site 1 of 1: exit $rc, $(cat "$T/cli.err")"
sed "s#^uri = .*#uri = tcp://127.0.0.1:$(free_port)#" "$T/agent.conf" >"$T/nobroker.conf"
rc=0; "$AGENT" site resume --station fct1 -c "$T/nobroker.conf" 2>"$T/cli.err" || rc=$?
[ $rc -eq 1 ] && grep -q "connecting to tcp://127.0.0.1" "$T/cli.err" || fail "site resume without a broker: exit $rc, $(cat "$T/cli.err")"
pass "site resume refuses an unknown station or site (exit 2) and reports a broker it cannot reach (exit 1)"
mosquitto_pub -p "$MQTT_PORT" -q 1 -t "$PREFIX/command/site/resume" -m '{"station":"nope"}'
wait_log "site resume: no station nope" 10
stop_agent
pass "an unknown station in a resume is logged and ignored"

# warn mode: raised and cleared by the site itself; the line never stops.
rm -f "$T/spool.db"* "$T/status.log" "$T/fct1.log"
write_config "$T/agent.conf" "[line]" "site_alarm_consecutive = 2" "site_alarm_rate = 0" "site_alarm_action = warn" \
  "[station prog1]" "adapter = sim" "steps = write, verify, lock" "sim.boards_per_second = 200" \
  "[station fct1]" "adapter = sim" "steps = test" "sites = 2" "sim.fail_rate = 0.5" "sim.seed = 3"
start_agent "$T/agent.conf"
publish -m "$(order_json WO-W 1 LOT-W 60 1.0.0 "$FW_SHA" "$FW_PATH" '["WRITE","VERIFY","TEST","LOCK"]')"
wait_log "lot LOT-W completed" 60
raised=$(grep -c "ALARM fixture_site_suspect" "$AGENT_LOG" || true)
cleared=$(grep -c "alarm fixture_site_suspect cleared: station fct1 site [01] passed a board" "$AGENT_LOG" || true)
[ "$raised" -ge 1 ] || fail "warn mode: no alarm in 60 boards failing one in two"
[ "$cleared" -ge $((raised - 2)) ] || fail "warn mode: $raised raised, only $cleared cleared"
grep -q "loads no more boards" "$AGENT_LOG" && fail "warn mode paused a site"
stop_agent
pass "warn mode: $raised raised, $cleared cleared by a pass, the lot of 60 completed"
