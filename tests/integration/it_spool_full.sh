#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Back-pressure when the spool cannot grow.
# A. Full disk: the spool on a real small filesystem (a tmpfs mounted with
#    size=, so SQLite gets a genuine ENOSPC -> SQLITE_FULL), Kafka down so
#    nothing drains. The agent must raise the alarm in the log and on the
#    retained status topic, stop loading boards, lose nothing committed,
#    and resume by itself when the filesystem is enlarged (remount).
# A2. [spool] min_free_bytes: the agent pauses before the disk is full.
# B. [spool] max_bytes: over the limit the same alarm and pause; under it
#    again (Kafka back, delivered events pruned) loading resumes.
# Needs root for mount; without it the test reports SKIP (exit 77).
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ] || ! command -v mount >/dev/null; then
  echo "SKIP: mounting a small tmpfs needs root"; exit 77
fi
mkdir -p "$T/disk"
mount -t tmpfs -o size=2m,mode=0700 lineagent-test "$T/disk" || { echo "SKIP: mount -t tmpfs refused"; exit 77; }
umount_disk() { umount "$T/disk" 2>/dev/null || true; }
on_exit() { # stop what uses the filesystem, unmount, then the usual cleanup with the test's status
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  umount_disk
  (exit $rc)
  cleanup
}
trap on_exit EXIT

start_mosquitto
start_kafka
BPS=400 STEP_MS=0 write_config "$T/agent.conf"
sed -i "s|^spool = .*|spool = $T/disk/spool.db|" "$T/agent.conf"
printf '[spool]\nmin_free_bytes = 0\n' >>"$T/agent.conf" # no early pause: let SQLite hit ENOSPC
start_status_log
kafka_cmd down all
start_agent "$T/agent.conf"
stats() { "$AGENT" spool stats -c "$T/agent.conf" 2>/dev/null | sed -n "s/^$1: \([0-9-]*\).*/\1/p"; }

make_firmware v1 1.0.0
QTY=400
publish -m "$(order_json WO-F 1 LOT-F $QTY 1.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "ALARM spool_full" 120
grep -q '"alarm":"spool_full"' "$T/status.log" || wait_for 10 "alarm on the status topic" grep -q '"alarm":"spool_full"' "$T/status.log"
pass "disk full: alarm in the log and on $PREFIX/status: $(grep -m1 spool_full "$T/status.log" | cut -c1-160)"
seq1=$(stats next_seq); sleep 3; seq2=$(stats next_seq)
[ -n "$seq1" ] && [ "$seq1" = "$seq2" ] || fail "spool still growing while full: next_seq $seq1 -> $seq2"
grep -q "lot LOT-F completed" "$AGENT_LOG" && fail "lot completed although the disk was full"
pass "no new boards while full: next_seq stays at $seq1 for 3s, $(df -k --output=used,size "$T/disk" | tail -1) KiB used"

mount -o remount,size=64m "$T/disk"
wait_log "the spool has space again" 30
wait_log "alarm cleared" 10
wait_for 10 "status back to plain online" sh -c "tail -n1 '$T/status.log' | grep -q -v alarm"
pass "space returned: resumed by itself, alarm cleared on the status topic"
wait_log "lot LOT-F completed" 180
kafka_cmd up all
SHUTDOWN_MS=60000
stop_agent
grep -q "every event acknowledged by Kafka" "$AGENT_LOG" || fail "backlog not drained"
consume $(($(stats next_seq) - 1)) # every event the spool ever numbered
check_integrity
jq -s -e 'map(select(.type == "unit_completed")) | group_by(.boardId) |
  (length == '$QTY') and all(map(.unitCompleted.passed) | unique | length == 1)' "$T/events.jsonl" >/dev/null ||
  fail "not every board has one outcome"
[ "$(count_type unit_completed)" -eq $QTY ] || fail "unit_completed $(count_type unit_completed) of $QTY"
for t in unit_written unit_tested unit_calibrated unit_locked; do
  n=$(jq -s --arg t $t 'map(select(.type == $t)) | unique_by(.boardId) | length' "$T/events.jsonl")
  [ "$n" -eq $QTY ] || fail "$t for $n of $QTY boards"
done
dups=$(jq -s 'length - (unique_by(.eventId) | length)' "$T/events.jsonl")
redone=$(jq -s 'unique_by(.eventId) | length - '$((3 + QTY * 5))'' "$T/events.jsonl")
pass "full disk ridden out: all $QTY boards with all their events, $dups re-sent duplicates (same event_id), $redone step events of boards whose flow restarted after the pause"
umount_disk

# A2. Something else fills the spool's filesystem while a lot runs: with
#     min_free_bytes the agent pauses on its own check (once a second)
#     before SQLite runs out of room, and resumes when the space is freed.
mount -t tmpfs -o size=24m,mode=0700 lineagent-test "$T/disk"
sed -i 's/^min_free_bytes = 0$/min_free_bytes = 4M/' "$T/agent.conf"
kafka_cmd down all
BPS=30 STEP_MS=1 SHUTDOWN_MS=2000 write_config "$T/slow.conf" # Kafka stays down: do not wait for a drain
sed -i "s|^spool = .*|spool = $T/disk/spool.db|" "$T/slow.conf"
printf '[spool]\nmin_free_bytes = 4M\n' >>"$T/slow.conf"
start_agent "$T/slow.conf"
QTY2=150
publish -m "$(order_json WO-L 1 LOT-L $QTY2 1.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "lot LOT-L started" 30
sleep 1
avail_k=$(df -k --output=avail "$T/disk" | tail -1)
dd if=/dev/zero of="$T/disk/ballast" bs=1024 count=$((avail_k - 2048)) status=none 2>/dev/null || true
wait_log "ALARM spool_low_space" 10
wait_for 10 "low-space alarm on the status topic" grep -q '"alarm":"spool_low_space"' "$T/status.log"
sleep 1; s1=$(stats next_seq); sleep 2; s2=$(stats next_seq)
[ "$s1" = "$s2" ] || fail "boards still loaded with low space: next_seq $s1 -> $s2"
pass "filesystem filled by another writer: alarm spool_low_space, loading paused at seq $s1, $(df -k --output=avail "$T/disk" | tail -1) KiB left"
rm -f "$T/disk/ballast"
wait_log "alarm cleared" 30
wait_log "lot LOT-L completed" 120
"$AGENT" spool export -c "$T/slow.conf" --lot LOT-L --pending >"$T/lot-l.jsonl" 2>/dev/null
n=$(jq -s 'map(select(.type == "unit_completed")) | unique_by(.boardId) | length' "$T/lot-l.jsonl")
[ "$n" -eq $QTY2 ] || fail "LOT-L: $n of $QTY2 boards completed"
full=$(grep -c "ALARM spool_full" "$AGENT_LOG" || true)
pass "space freed: resumed by itself, all $QTY2 boards completed once; SQLITE_FULL hit $full times meanwhile"
stop_agent
umount_disk

# B. max_bytes
rm -f "$T"/spool.db*
sed -i "s|^spool = .*|spool = $T/spool.db|; /^min_free_bytes/d" "$T/agent.conf"
printf 'max_bytes = 1M\nretention = 1s\n' >>"$T/agent.conf"
kafka_cmd down all
start_agent "$T/agent.conf"
publish -m "$(order_json WO-M 1 LOT-M 2000 1.0.0 "$FW_SHA" "$FW_PATH")"
wait_log "ALARM spool_over_limit" 120
wait_for 10 "over-limit alarm on the status topic" grep -q '"alarm":"spool_over_limit"' "$T/status.log"
sleep 2; s1=$(stats next_seq); sleep 2; s2=$(stats next_seq)
[ "$s1" = "$s2" ] || fail "boards still loaded over max_bytes: next_seq $s1 -> $s2"
pass "over max_bytes: alarm, loading paused at seq $s1 ($(stats pending) pending, nothing dropped)"
kafka_cmd up all
wait_log "alarm cleared: spool uses" 120
pass "Kafka back, delivered events pruned: under the limit, loading resumed"

stop_agent
