#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Records Kafka deleted before tracestore stored them are reported, never
# skipped silently. tracestore stores a first stretch of a 1-partition
# topic and stops; while it is down more is produced than the broker keeps
# (librdkafka's mock cluster holds about 5 MB a partition), so the oldest
# records it had not stored are gone when it comes back. Afterwards every
# offset of the partition is either stored or in lost_records, the loss is
# logged, counted in /metrics and an audit finding; a group that never
# read the topic records what had expired before it as such, and the audit
# does not count that against the plant.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ts_lib.sh"

start_kafka --topic "$TOPIC" --topic "$FIELD_TOPIC" --partitions 1
ts_setup
write_ts_config "$T/ts.conf" "[http]" "listen = 127.0.0.1:0"
FIRST=1000 MORE=60000

start_tracestore "$T/ts.conf"
"$TS_FEED" --brokers "$BOOTSTRAP" events $FIRST --lot-size 50 --tag a >/dev/null || fail "ts_feed first"
wait_for 60 "the first $FIRST events" offsets_at "$TOPIC" $FIRST
stop_tracestore "$TS_PID"
"$TS_FEED" --brokers "$BOOTSTRAP" events $MORE --lot-size 50 --tag b >/dev/null || fail "ts_feed more"
pass "stored $FIRST events, stopped; $MORE more produced meanwhile"

start_tracestore "$T/ts.conf"
wait_for 120 "every offset stored or lost" offsets_at "$TOPIC" $((FIRST + MORE))
read -r from to first_read <<<"$(ts_sql "SELECT from_offset, to_offset, before_first_read FROM lost_records WHERE topic = '$TOPIC'" | tr '|' ' ')"
[ -n "${from:-}" ] || fail "nothing in lost_records: the broker kept everything? stored $(stored_events) of $((FIRST + MORE))"
[ "$from" -eq $FIRST ] || fail "lost range starts at $from, want $FIRST (the first offset not stored)"
[ "$first_read" = f ] || fail "before_first_read = $first_read for a partition the group had read"
stored=$(stored_events)
[ $((stored + to - from)) -eq $((FIRST + MORE)) ] \
  || fail "stored $stored + lost $((to - from)) != produced $((FIRST + MORE)): something went missing unreported"
grep -q "offsets $from\.\.$((to - 1)) were deleted by Kafka (retention) before they were stored: $((to - from)) records lost" "$TS_LOG" \
  || fail "the loss is not logged: $(grep -i lost "$TS_LOG")"
port=$(sed -n 's/.*http: listening on [0-9.]*:\([0-9]*\).*/\1/p' "$TS_LOG" | head -1)
curl -fsS "http://127.0.0.1:$port/metrics" | grep -qx "tracestore_records_lost_total $((to - from))" \
  || fail "/metrics: $(curl -fsS "http://127.0.0.1:$port/metrics" | grep lost)"
rc=0; ts audit --json >"$T/audit.json" || rc=$?
[ "$rc" -eq 1 ] || fail "audit exit $rc, want 1 (findings)"
jq -e --argjson f "$from" --argjson t "$((to - 1))" \
  '[.findings[] | select(.kind == "records_lost" and .fromOffset == $f and .toOffset == $t)] | length == 1' \
  "$T/audit.json" >/dev/null || fail "audit: $(cat "$T/audit.json")"
pass "offsets $from..$((to - 1)) ($((to - from)) records) lost while tracestore was down: in lost_records, logged, /metrics, audit; the other $stored stored"

# A restart finds the partition's offset past the loss: not reported twice.
stop_tracestore "$TS_PID"
start_tracestore "$T/ts.conf"
sleep 2
[ "$(ts_sql "SELECT count(*) FROM lost_records")" -eq 1 ] || fail "the loss was recorded again on restart"
! grep -q "records lost" "$TS_LOG" || fail "the loss was logged again on restart"
stop_tracestore "$TS_PID"

# A new group on the same topic: what expired before it ever read the
# partition is recorded as such, and is no audit finding.
write_ts_config "$T/late.conf" "[kafka]" "group = late-group"
start_tracestore "$T/late.conf"
wait_for 60 "the late group at the end" offsets_at "$TOPIC" $((FIRST + MORE)) late-group
[ "$(ts_sql "SELECT before_first_read FROM lost_records WHERE group_id = 'late-group' AND from_offset = 0")" = t ] \
  || fail "late group: $(ts_sql "SELECT * FROM lost_records")"
grep -q "had expired before this group first read the partition" "$TS_LOG" || fail "late group: not logged"
[ "$(jq '[.findings[] | select(.kind == "records_lost")] | length' <(ts audit --json || true))" -eq 1 ] \
  || fail "the late group's expired records counted as an audit finding"
stop_tracestore "$TS_PID"
pass "a group reading the topic late: offsets 0..$((to - 1)) recorded as expired before its first read, logged, not an audit finding"
