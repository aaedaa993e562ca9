#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tracestore under faults: two instances in one group share a 3-partition
# topic while 24,000 events (3 agents) arrive, 3,000 of them twice; one
# instance is SIGKILLed and restarted again and again, the other once, and
# PostgreSQL is stopped for a few seconds mid-stream. Afterwards every event
# is stored exactly once, the query tables hold exactly what the events say,
# no seq gap is left, and both instances stored and resumed by themselves.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ts_lib.sh"

start_kafka --topic "$TOPIC" --topic "$FIELD_TOPIC" --partitions 3
ts_setup
write_ts_config "$T/ts.conf" "[kafka]" "batch_max = 500"
N=24000 DUP=3000 AGENTS=3 LOT=40
start_tracestore "$T/ts.conf"; A=$TS_PID A_LOG=$TS_LOG
start_tracestore "$T/ts.conf"; B=$TS_PID

"$TS_FEED" --brokers "$BOOTSTRAP" events $N --agents $AGENTS --lot-size $LOT --rate 1500 --tag f >"$T/feed1.out" 2>&1 &
FEED=$!
PIDS+=("$FEED")
kills=0
for round in 1 2 3 4 5 6; do
  sleep 1.5
  kill -KILL "$B"; wait "$B" 2>/dev/null || true
  kills=$((kills + 1))
  # The outage comes after instance A's last restart (round 4), so the
  # instance that sees PostgreSQL go away lives to see it come back.
  if [ $round = 5 ]; then
    pg_stop; pg_stopped_at=$(stored_events 2>/dev/null || true)
    sleep 3
    pg_start
    pass "PostgreSQL stopped for 3 s and started again"
  fi
  if [ $round = 4 ]; then kill -KILL "$A"; wait "$A" 2>/dev/null || true; kills=$((kills + 1)); start_tracestore "$T/ts.conf"; A=$TS_PID; fi
  start_tracestore "$T/ts.conf"; B=$TS_PID
done
wait "$FEED" || fail "feeder: $(cat "$T/feed1.out")"
# the first DUP events again, as a producer retrying after a timeout would
"$TS_FEED" --brokers "$BOOTSTRAP" events $DUP --agents $AGENTS --lot-size $LOT --tag f >/dev/null || fail "re-send feeder"
pass "$kills SIGKILLs while $N events arrived, then $DUP of them re-sent"

wait_for 240 "every record read and stored" offsets_at "$TOPIC" $((N + DUP))
got=$(ts_sql "SELECT count(*) || ' ' || count(DISTINCT event_id) FROM events")
[ "$got" = "$N $N" ] || fail "events stored (rows, distinct ids): $got, want $N $N"
pass "every event stored exactly once: $N rows, $N ids, offsets at $((N + DUP))"

# What the query tables must hold, from the feed's shape: per agent, lots
# of one lot_started and LOT boards x (written, tested, completed).
per_agent=$((N / AGENTS)) per_lot=$((1 + 3 * LOT))
full_lots=$((per_agent / per_lot)) rest=$((per_agent % per_lot))
boards=$(( AGENTS * (full_lots * LOT + (rest > 0 ? (rest - 1 + 2) / 3 : 0)) ))
written=$(( AGENTS * (full_lots * LOT + (rest > 0 ? (rest - 1 + 2) / 3 : 0)) ))
tested=$(( AGENTS * (full_lots * LOT + (rest > 1 ? (rest - 2 + 2) / 3 : 0)) ))
completed=$(( AGENTS * (full_lots * LOT + (rest > 2 ? (rest - 3 + 2) / 3 : 0)) ))
want="$boards $written $((tested * 2)) $completed $completed"
got=$(ts_sql "SELECT (SELECT count(*) FROM units) || ' ' || (SELECT count(*) FROM unit_writes) || ' ' || (SELECT count(*) FROM measurements) || ' ' || (SELECT count(*) FROM unit_outcomes) || ' ' || (SELECT count(*) FROM units WHERE passed)")
[ "$got" = "$want" ] || fail "units writes measurements outcomes passed: $got, want $want"
ranges=$(ts_sql "SELECT string_agg(agent_key || ':' || lo || '-' || hi, ' ' ORDER BY agent_key) FROM seq_ranges")
[ "$ranges" = "f-agent-0000:1-$per_agent f-agent-0001:1-$per_agent f-agent-0002:1-$per_agent" ] || fail "seq runs: $ranges"
[ "$(ts_sql "SELECT count(*) FROM rejected_records")" -eq 0 ] || fail "records rejected"
pass "query tables: $got (units writes measurements outcomes passed); seq runs $ranges"

grep -q "PostgreSQL reachable again" "$T"/tracestore*.log || fail "no instance says it resumed after PostgreSQL came back"
stored_by=$(grep -l "assigned" "$T"/tracestore*.log | wc -l)
[ "$stored_by" -ge 2 ] || fail "only $stored_by instance(s) were assigned partitions"
stop_tracestore "$A"; stop_tracestore "$B"
pass "instances resumed by themselves after the outage; $stored_by instance runs were assigned partitions; clean stop"
