#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A lot resumed after a restart re-hashes its cached image first (rule R1):
# with the image's chunks corrupted in the spool while the agent was down,
# no board is written with it. When the release URL cannot give the image
# again, the lot is held: the log says ALARM firmware_corrupt, the retained
# status carries the alarm, no unit_written follows. At the next start, with
# the URL back, the image is fetched again and the lot completes with it.
source "$(dirname "$0")/lib.sh"

start_mosquitto
start_kafka
BPS=4 STEP_MS=0 write_config "$T/agent.conf"
HTTP_PORT=$(free_port)
printf '[http]\nlisten = 127.0.0.1:%s\n' "$HTTP_PORT" >>"$T/agent.conf"
start_agent "$T/agent.conf"
make_firmware r 3.0.0
QTY=12
publish -m "$(order_json WO-R 1 LOT-R $QTY 3.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-R started" 20
sleep 1
stop_agent
seq0=$(sqlite3 "$T/spool.db" "SELECT max(seq) FROM events")
pass "stopped mid-lot (event seq $seq0)"

# down: every chunk of the cached image zeroed, the release URL gone
sqlite3 "$T/spool.db" "UPDATE firmware_chunk SET data = zeroblob(length(data)) WHERE sha256 = '$FW_SHA'" >/dev/null
mv "$FW_PATH" "$FW_PATH.away"
start_status_log
start_agent "$T/agent.conf"
start_results
wait_log "ALARM firmware_corrupt: lot LOT-R held, not resumed, no board written" 20
grep -q "lot LOT-R: cached firmware ${FW_SHA:0:16}... re-hashes to" "$AGENT_LOG" || fail "corrupt image not named in the log"
wait_for 10 "firmware_corrupt on the status topic" \
  grep -q '"alarm":"firmware_corrupt".*"lot_id":"LOT-R"' "$T/status.log"
curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | grep -q '^lineagent_alarm{alarm="firmware_corrupt"} 1$' \
  || fail "lineagent_alarm{alarm=\"firmware_corrupt\"} is not 1"
sleep 2 # boards would have been written by now
grep -q "resuming lot LOT-R" "$AGENT_LOG" && fail "LOT-R resumed with a corrupt image"
n=$(sqlite3 "$T/spool.db" "SELECT count(*) FROM events WHERE type = 'unit_written' AND seq > $seq0")
[ "$n" -eq 0 ] || fail "$n unit_written after the restart with a corrupt image"
[ "$(sqlite3 "$T/spool.db" "SELECT count(*) FROM firmware_chunk WHERE sha256 = '$FW_SHA'")" -eq 0 ] \
  || fail "corrupt chunks still in the spool"
pass "corrupt cached image: lot held, alarm on the status topic, no board written, corrupt chunks deleted"
# a revision of the held lot's order (its image at another URL) is refused,
# not taken for a new lot starting again at board 1
publish -m "$(order_json WO-R 2 LOT-R $QTY 3.0.0 "$FW_SHA" "$FW_PATH.away")"
wait_for 20 "result of WO-R rev 2" results_at_least 1
r=$(head -1 "$T/results.jsonl")
[ "$(jq -r .accepted <<<"$r")" = false ] && jq -r .reason <<<"$r" | grep -q "lot held: firmware_corrupt" \
  || fail "revision of a held lot: $r"
stop_agent
[ "$(sqlite3 "$T/spool.db" "SELECT count(*) FROM events WHERE type = 'unit_written' AND seq > $seq0")" -eq 0 ] \
  || fail "unit_written while the lot was held"
pass "revision of the held lot refused: $(jq -r .reason <<<"$r")"
# intake fetched the revision's image into the spool; corrupt it again, so
# the next start must find it corrupt once more
sqlite3 "$T/spool.db" "UPDATE firmware_chunk SET data = zeroblob(length(data)) WHERE sha256 = '$FW_SHA'" >/dev/null

# the URL back: fetched again at the next start, re-hashed, the lot completes
mv "$FW_PATH.away" "$FW_PATH"
start_agent "$T/agent.conf"
grep -q "lot LOT-R: firmware ${FW_SHA:0:16}... fetched again and re-hashed; resuming with it" "$AGENT_LOG" \
  || fail "image not fetched again"
grep -q "resuming lot LOT-R" "$AGENT_LOG" || fail "LOT-R not resumed"
wait_log "lot LOT-R completed" 60
curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | grep -q '^lineagent_alarm{alarm="firmware_corrupt"} 0$' \
  || fail "firmware_corrupt gauge still up after the lot resumed"
[ "$(sqlite3 "$T/spool.db" "SELECT hex(data) FROM firmware_chunk WHERE sha256 = '$FW_SHA' ORDER BY idx" | tr -d '\n')" \
  = "$(od -An -v -tx1 "$FW_PATH" | tr -d ' \n' | tr a-f A-F)" ] || fail "spool's chunks are not the image again"
stop_agent
pass "fetched again at the next start; LOT-R completed"

consume "$(sqlite3 "$T/spool.db" "SELECT max(seq) FROM events")"
check_integrity
E=$T/events.jsonl
bad=$(jq -s --arg s "$FW_SHA" 'map(select(.type == "unit_written") | select(.unitWritten.readbackSha256 != $s)) | length' "$E")
[ "$bad" -eq 0 ] || fail "$bad unit_written read back another image"
[ "$(jq -s 'map(select(.type == "unit_completed")) | unique_by(.boardId) | length' "$E")" -eq $QTY ] \
  || fail "not every board completed"
pass "every unit_written read back $FW_SHA; all $QTY boards completed"
