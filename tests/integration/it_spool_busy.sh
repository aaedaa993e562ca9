#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A busy spool: another process (the sqlite3 shell) takes the spool's write
# lock mid-lot and keeps it for several busy timeouts. The agent must stay
# up, hold the line (nothing committed, nobody told), raise spool_busy in the
# log and on the retained status topic with how long it has lasted, and
# resume by itself once the lock is released: the lot completes with every
# event on Kafka exactly once.
source "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || { echo "FAIL: sqlite3 is not installed (deploy/deps.sh test installs it)"; exit 1; }

start_mosquitto
start_kafka
BPS=20 STEP_MS=5 write_config "$T/agent.conf"
start_status_log
start_agent "$T/agent.conf"
stats() { "$AGENT" spool stats -c "$T/agent.conf" 2>/dev/null | sed -n "s/^$1: \([0-9-]*\).*/\1/p"; }

make_firmware v1 1.0.0
QTY=60
publish -m "$(order_json WO-B 1 LOT-B $QTY 1.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-B started" 30
wait_for 30 "boards under way" sh -c "[ \"\$(\"$AGENT\" spool stats -c '$T/agent.conf' 2>/dev/null | sed -n 's/^next_seq: \([0-9]*\).*/\1/p')\" -gt 40 ]"

# The sqlite3 shell holds BEGIN IMMEDIATE until COMMIT arrives on its stdin.
mkfifo "$T/sql.fifo"
sqlite3 "$T/spool.db" <"$T/sql.fifo" >"$T/sqlite3.out" 2>&1 &
SQLITE_PID=$!
PIDS+=("$SQLITE_PID")
exec 7>"$T/sql.fifo"
printf '.timeout 10000\nBEGIN IMMEDIATE;\nSELECT %s;\n' "'lock held'" >&7
wait_for 15 "sqlite3 holds the write lock" grep -q "lock held" "$T/sqlite3.out"
held_at=$(date +%s)

wait_log "ALARM spool_busy" 30
wait_for 10 "spool_busy on the status topic" grep -q '"alarm":"spool_busy"' "$T/status.log"
grep '"alarm":"spool_busy"' "$T/status.log" | tail -n1 | jq -e '.paused == true' >/dev/null ||
  fail "status does not say paused: $(grep spool_busy "$T/status.log" | tail -n1)"
pass "lock held elsewhere: alarm in the log and on $PREFIX/status: $(grep -m1 spool_busy "$T/status.log" | cut -c1-200)"

s1=$(stats next_seq); sleep 6; s2=$(stats next_seq)
[ -n "$s1" ] && [ "$s1" = "$s2" ] || fail "spool written while another process holds its lock: next_seq $s1 -> $s2"
kill -0 "$AGENT_PID" 2>/dev/null || fail "the agent exited while the spool was busy"
grep -q "lot LOT-B completed" "$AGENT_LOG" && fail "lot completed although the spool was locked"
wait_for 15 "the alarm tells how long" sh -c "grep spool_busy '$T/status.log' | tail -n1 | grep -Eq 'for ([1-9][0-9]+|[5-9]) s'"
pass "agent up, nothing committed for 6 s at next_seq $s1; status: $(grep spool_busy "$T/status.log" | tail -n1 | jq -r .detail | cut -c1-120)"

printf 'COMMIT;\n.quit\n' >&7
exec 7>&-
wait "$SQLITE_PID" || fail "sqlite3 exited with an error: $(cat "$T/sqlite3.out")"
held=$(($(date +%s) - held_at))
wait_log "alarm spool_busy cleared" 30
wait_for 10 "status back to plain online" sh -c "tail -n1 '$T/status.log' | grep -q -v alarm"
pass "lock released after ${held}s: resumed by itself, alarm cleared on the status topic"

wait_log "lot LOT-B completed" 120
stop_agent
grep -q "every event acknowledged by Kafka" "$AGENT_LOG" || fail "backlog not drained"
n=$(($(stats next_seq) - 1))
consume "$n"
check_integrity
dups=$(jq -s 'length - (unique_by(.eventId) | length)' "$T/events.jsonl")
[ "$dups" -eq 0 ] || fail "$dups events on Kafka more than once"
[ "$(jq -s 'length' "$T/events.jsonl")" -eq "$n" ] || fail "$(jq -s length "$T/events.jsonl") events on Kafka, $n in the spool"
[ "$(count_type unit_completed)" -eq $QTY ] || fail "unit_completed $(count_type unit_completed) of $QTY"
jq -s -e 'map(select(.type == "unit_completed")) | group_by(.boardId) | (length == '$QTY') and all(length == 1)' \
  "$T/events.jsonl" >/dev/null || fail "not every board has exactly one outcome"
for t in unit_written unit_tested unit_calibrated unit_locked; do
  m=$(jq -s --arg t $t 'map(select(.type == $t)) | length' "$T/events.jsonl")
  [ "$m" -eq $QTY ] || fail "$t $m times for $QTY boards"
done
pass "busy spool ridden out: all $QTY boards, each step event once, all $n events on Kafka exactly once"
