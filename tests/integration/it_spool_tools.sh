#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lineagent spool stats|export|replay` and retention, against a real agent:
# a lot delivered to Kafka; stats show the figures; export selects by lot,
# seq and time and matches what Kafka holds; replay re-publishes the lot to
# another topic with the same key, headers, event_id and seq, in order;
# then with a short retention delivered events are pruned from the running
# agent while undelivered ones (Kafka down) are kept, and so are the lots and
# the image; last, purge-firmware removes a release's image beside the
# running agent and records it, and refuses while an active lot uses it.
source "$(dirname "$0")/lib.sh"
command -v script >/dev/null || fail "script (bsdutils) is not installed"

start_mosquitto
start_kafka
BPS=200 STEP_MS=1 write_config "$T/agent.conf"
printf '[spool]\nretention = 1h\n' >>"$T/agent.conf"
start_agent "$T/agent.conf"
make_firmware v1 1.0.0
QTY=20
TOTAL=$((1 + 1 + QTY * 5 + 1))
publish -m "$(order_json WO-R 1 LOT-R $QTY 1.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-R completed" 60
stats() { "$AGENT" spool stats -c "$T/agent.conf"; }
field() { stats | sed -n "s/^$1: \([0-9-]*\).*/\1/p"; }
field_is() { [ "$(field "$1")" = "$2" ]; } # for wait_for, which runs it again each time
wait_for 30 "every event delivered" field_is pending 0
out=$(stats)
echo "$out"
[ "$(field delivered_kept)" -eq $TOTAL ] || fail "delivered_kept $(field delivered_kept), want $TOTAL"
[ "$(field next_seq)" -eq $((TOTAL + 1)) ] || fail "next_seq $(field next_seq)"
grep -q '^last_delivery: 20[0-9][0-9]-' <<<"$out" || fail "no last delivery time"
grep -q '^oldest_pending: - ' <<<"$out" || fail "oldest pending shown with nothing pending"
pass "stats on a running agent: $TOTAL delivered kept, 0 pending"

consume $TOTAL
check_integrity

# export: the lot's events, as Kafka has them
"$AGENT" spool export -c "$T/agent.conf" --lot LOT-R --format jsonl >"$T/export.jsonl" 2>"$T/export.err" ||
  fail "export: $(cat "$T/export.err")"
n_lot=$(jq -s 'map(select(.kafka.key == "LOT-R")) | length' "$T/events.jsonl")
[ "$(wc -l <"$T/export.jsonl")" -eq "$n_lot" ] || fail "export has $(wc -l <"$T/export.jsonl") lines, Kafka $n_lot"
jq -s -e --slurpfile k "$T/events.jsonl" \
  '(map([.seq, .eventId, .type]) | sort) == ($k | map(select(.kafka.key == "LOT-R")) | map([.seq, .eventId, .type]) | sort)' \
  "$T/export.jsonl" >/dev/null || fail "export differs from what Kafka holds"
jq -e -s 'all(.spool.key == "LOT-R" and (.spool.deliveredMs > 0))' "$T/export.jsonl" >/dev/null ||
  fail "export lacks spool key/deliveredMs"
jq -s -e 'map(.seq) == (map(.seq) | sort)' "$T/export.jsonl" >/dev/null || fail "export not in seq order"
pass "export --lot LOT-R: $n_lot events, identical to Kafka's (seq, event_id, type)"

n=$("$AGENT" spool export -c "$T/agent.conf" --from-seq 10 --to-seq 20 | wc -l)
[ "$n" -eq 10 ] || fail "export --from-seq 10 --to-seq 20 gave $n"
n=$("$AGENT" spool export -c "$T/agent.conf" --since 10m | wc -l)
[ "$n" -eq $TOTAL ] || fail "export --since 10m gave $n of $TOTAL"
n=$("$AGENT" spool export -c "$T/agent.conf" --since "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)" | wc -l)
[ "$n" -eq 0 ] || fail "export --since in an hour gave $n"
pass "export by seq range, by age and by ISO time"

rc=0; "$AGENT" spool replay -c "$T/agent.conf" >/dev/null 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && grep -q "give --since" "$T/err" || fail "replay without a selection: rc $rc $(cat "$T/err")"
rc=0; "$AGENT" spool export -c "$T/agent.conf" --since yesterdayish 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && grep -q "unreadable time" "$T/err" || fail "bad time: rc $rc"
rc=0; "$AGENT" spool stats -c "$T/nope.conf" 2>"$T/err" || rc=$?
[ $rc -eq 2 ] || fail "missing config: rc $rc"
pass "usage errors exit 2 with a reason"

# replay the lot to another topic while the agent runs
"$AGENT" spool replay -c "$T/agent.conf" --lot LOT-R --topic replay.v1 2>"$T/replay.err" ||
  fail "replay: $(cat "$T/replay.err")"
cat "$T/replay.err"
grep -q "$n_lot of $n_lot selected events acknowledged" "$T/replay.err" || fail "replay summary"
"$AGENT" trace --brokers "$BOOTSTRAP" --topic replay.v1 --format jsonl --expect "$n_lot" --idle-ms 1500 \
  --timeout-ms 30000 >"$T/replayed.jsonl" 2>"$T/trace2.err" || fail "replayed events not read back"
[ "$(wc -l <"$T/replayed.jsonl")" -eq "$n_lot" ] || fail "replayed $(wc -l <"$T/replayed.jsonl") records, want $n_lot"
jq -s -e --slurpfile k "$T/events.jsonl" \
  '(map([.seq, .eventId, .type, .kafka.key, .kafka.headers.event_id, .kafka.headers.event_type, .kafka.timestamp]) | sort) ==
   ($k | map(select(.kafka.key == "LOT-R")) | map([.seq, .eventId, .type, .kafka.key, .kafka.headers.event_id, .kafka.headers.event_type, .kafka.timestamp]) | sort)' \
  "$T/replayed.jsonl" >/dev/null || fail "replayed events differ from the originals (key, headers or record timestamp)"
jq -s -e 'sort_by(.kafka.offset) | map(.seq) as $s | $s == ($s | sort)' "$T/replayed.jsonl" >/dev/null ||
  fail "replayed lot out of order"
# on a terminal it shows progress (script(1) gives it one), elsewhere not
script -qec "'$AGENT' spool replay -c '$T/agent.conf' --from-seq 1 --topic replay2.v1" /dev/null >"$T/tty.out" ||
  fail "replay on a tty: $(cat "$T/tty.out")"
grep -q $'\rspool replay: [0-9]*/'"$TOTAL"' sent' "$T/tty.out" || fail "no progress on a terminal: $(cat -v "$T/tty.out")"
grep -q $'\r' "$T/replay.err" && fail "progress written when not on a terminal"
[ "$(field pending)" -eq 0 ] && [ "$(field delivered_kept)" -eq $TOTAL ] || fail "replay changed the spool"
pass "replay --lot: $n_lot events with original key, headers, event_id and seq, in order; progress only on a terminal; spool unchanged"
stop_agent

# retention: short, from the running agent; undelivered never pruned
sed -i 's/^retention = 1h/retention = 2s/' "$T/agent.conf"
start_agent "$T/agent.conf"
wait_for 20 "delivered events pruned" field_is delivered_kept 0
[ "$(field next_seq)" -eq $((TOTAL + 1)) ] || fail "next_seq moved after pruning"
pass "retention 2s: all $TOTAL delivered events pruned by the running agent"
kafka_cmd down all
publish -m "$(order_json WO-S 1 LOT-S 5 1.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-S completed" 60
sleep 4
P=$((1 + 1 + 5 * 5 + 1))
[ "$(field pending)" -eq $P ] || fail "pending $(field pending), want $P: undelivered events were pruned?"
pass "Kafka down 4s > retention: $P undelivered events kept"
kafka_cmd up all
wait_for 60 "backlog delivered" field_is pending 0
wait_for 20 "delivered backlog pruned" field_is delivered_kept 0
pass "after recovery the backlog was delivered, then pruned"
stop_agent
[ "$(sqlite3 "$T/spool.db" "SELECT count(*) FROM lots")" -eq 0 ] || fail "completed lots not pruned"
[ "$(sqlite3 "$T/spool.db" "SELECT count(*) FROM firmware")" -eq 0 ] || fail "unused image not pruned"
pass "retention 2s: completed lots, their units and orders, and the unused image pruned"

# purge-firmware: v2's lot completes, v3's keeps running
sed -i 's/^retention = 2s/retention = 1h/' "$T/agent.conf"
start_agent "$T/agent.conf"
make_firmware v2 2.0.0
SHA2=$FW_SHA
publish -m "$(order_json WO-P2 1 LOT-P2 3 2.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-P2 completed" 60
make_firmware v3 3.0.0
SHA3=$FW_SHA
publish -m "$(order_json WO-P3 1 LOT-P3 10000 3.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "order WO-P3 rev 1 accepted" 60
rc=0; "$AGENT" spool purge-firmware -c "$T/agent.conf" --version 3.0.0 2>"$T/purge.err" || rc=$?
[ $rc -eq 1 ] && grep -q "refused: active lot LOT-P3 uses it" "$T/purge.err" || fail "purge of a running lot's image: rc $rc $(cat "$T/purge.err")"
[ "$(sqlite3 "$T/spool.db" "SELECT count(*) FROM firmware WHERE sha256 = '$SHA3'")" -eq 1 ] || fail "refused purge removed the image"
pass "purge-firmware refuses while active lot LOT-P3 uses 3.0.0"
[ "$(sqlite3 "$T/spool.db" "SELECT count(*) FROM firmware_chunk WHERE sha256 = '$SHA2'")" -gt 0 ] || fail "no chunks of 2.0.0 before the purge"
"$AGENT" spool purge-firmware -c "$T/agent.conf" --version 2.0.0 2>"$T/purge.err" || fail "purge: $(cat "$T/purge.err")"
cat "$T/purge.err"
grep -Eq "firmware 2\.0\.0 sha256 $SHA2 removed from .* at 20[0-9-]+T[0-9:]+Z \(6[0-9]+ bytes" "$T/purge.err" || fail "purge log line"
[ "$(sqlite3 "$T/spool.db" "SELECT count(*) FROM firmware WHERE sha256 = '$SHA2'") $(sqlite3 "$T/spool.db" "SELECT count(*) FROM firmware_chunk WHERE sha256 = '$SHA2'")" = "0 0" ] ||
  fail "image 2.0.0 still in the spool"
[ "$(sqlite3 -separator ' ' "$T/spool.db" "SELECT sha256, version, bytes > 65536, purged_ms > 0 FROM firmware_purges")" = "$SHA2 2.0.0 1 1" ] ||
  fail "purge not recorded: $(sqlite3 "$T/spool.db" "SELECT * FROM firmware_purges")"
rc=0; "$AGENT" spool purge-firmware -c "$T/agent.conf" --version 9.9.9 2>"$T/purge.err" || rc=$?
[ $rc -eq 1 ] && grep -q "no release 9.9.9" "$T/purge.err" || fail "unknown version: rc $rc"
rc=0; "$AGENT" spool purge-firmware -c "$T/agent.conf" 2>"$T/purge.err" || rc=$?
[ $rc -eq 2 ] || fail "purge without --version: rc $rc"
pass "purge-firmware --version 2.0.0 beside the running agent: image and chunks gone, recorded with time, version, sha256"
stop_agent
