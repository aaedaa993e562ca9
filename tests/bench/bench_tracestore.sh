#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench_tracestore.sh - tracestore's benchmark scenarios, one JSON result
# line each on stdout (deploy/bench.sh tabulates them):
#   ingest       events stored per second from a topic of N_INGEST events
#                beside a raw COPY of the same rows (from a file, into a
#                table with the events table's key) in the same run;
#   latency      event time to row queryable, p99, at 1,000 events/s;
#   unit / lot   query p99 over HTTP (the server's own connection, one
#                indexed statement each) with N_LARGE events stored, beside
#                the same queries with N_SMALL (cost must not grow).
# Usage: bench_tracestore.sh BUILD_DIR N_INGEST N_LATENCY N_SMALL N_LARGE
# To iterate on the ingest alone: TS_BENCH_INGEST_ONLY=1 stops after it;
# TS_BENCH_PG_LOG=FILE logs every statement's duration
# (log_min_duration_statement = 0) during the ingest and copies the server
# log to FILE.
set -euo pipefail
B=$1 N_INGEST=$2 N_LATENCY=$3 N_SMALL=$4 N_LARGE=$5
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
set -- "$B/lineagent" "$B/tests/kafka_mock"
source "$ROOT/tests/integration/lib.sh"
exec 3>&1 1>&2 # results on fd 3; everything else is commentary
TRACESTORE=$B/services/tracestore/tracestore
TS_FEED=$B/tests/ts_feed
source "$ROOT/tests/integration/pg_lib.sh"
# set +e: under errexit the (exit $rc) of a failed test would end the trap before
# cleanup stops what the test started
trap 'rc=$?; set +e; pg_stop_quiet; (exit $rc); cleanup' EXIT
report() { # scenario figure unit baseline target note
  jq -cn --arg s "$1" --argjson f "$2" --arg u "$3" --argjson b "$4" --arg t "$5" --arg n "$6" \
    '{scenario:$s, figure:$f, unit:$u, baseline:$b, ratio:(if $b > 0 then $f / $b else 0 end), target:$t, note:$n}' >&3
}
now() { date +%s.%N; }

# librdkafka's mock cluster keeps about 5 MB a partition and drops older
# records (a first run with 4 partitions found only the last ~23,000 events
# of each): 128 partitions and lots of 100 boards spread a million events
# (about 200 bytes each on the wire) at about 1.6 MB a partition.
start_kafka --partitions 128
pg_init "$T/pg" on
conf() { # conf FILE DBNAME TOPIC [extra lines]
  local f=$1 db=$2 topic=$3; shift 3
  printf '%s\n' "[postgres]" "conninfo = ${PG_CONNINFO/dbname=tracestore/dbname=$db}" "password_file = $PG_PASSWORD_FILE" \
    "[kafka]" "bootstrap.servers = $BOOTSTRAP" "topic = $topic" "field_topic =" "$@" >"$f"
  chmod 600 "$f"
}
sql() { PGPASSFILE=$PG_DIR/pgpass psql -h 127.0.0.1 -p "$PG_PORT" -U tracestore -d "${DB:-tracestore}" -XAtq -v ON_ERROR_STOP=1 "$@"; }
conf "$T/ts.conf" tracestore lineagent.trace.v1 ${TS_BENCH_CONF:+"$TS_BENCH_CONF"}
"$TRACESTORE" migrate -c "$T/ts.conf" >/dev/null

# --- ingest: the topic is filled first, then tracestore drains it
echo "bench: tracestore ingest: producing $N_INGEST events" >&2
"$TS_FEED" --brokers "$BOOTSTRAP" events "$N_INGEST" --agents 4 --lot-size 100 --tag b >/dev/null
if [ -n "${TS_BENCH_PG_LOG:-}" ]; then
  sql -d postgres -c "ALTER SYSTEM SET log_min_duration_statement = 0" -c "SELECT pg_reload_conf()" >/dev/null
fi
"$TRACESTORE" run -c "$T/ts.conf" >"$T/ingest.log" 2>&1 &
TS=$!
PIDS+=("$TS")
read_so_far() { sql -c "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets"; }
all_read() { [ "$(read_so_far)" -ge "$1" ]; }
# From the first batch committed (start-up and the group join left out) to
# the last; the first batch's records are not counted.
wait_for 120 "tracestore's first batch" all_read 1
t0=$(now); first=$(read_so_far)
wait_for 3600 "tracestore to store $N_INGEST events" all_read "$N_INGEST"
t1=$(now)
stored=$(sql -c "SELECT count(*) FROM events")
[ "$stored" -eq "$N_INGEST" ] || fail "ingest: $stored of $N_INGEST stored"
rate=$(echo "($N_INGEST - $first) / ($t1 - $t0)" | bc -l)
[ "$first" -lt "$N_INGEST" ] || rate=0 # one batch took it all (smoke sizes): no rate to speak of
cols="event_id, time, seq, agent_key, agent_instance_id, site, line, station, order_id, lot_id, board_id, serial, type, topic, kafka_partition, kafka_offset, stored_at, payload"
sql -c "\\copy (SELECT $cols FROM events) TO '$T/events.copy'"
sql -c "CREATE TABLE bench_copy (LIKE events INCLUDING DEFAULTS INCLUDING INDEXES)" 2>/dev/null \
  || sql -c "CREATE TABLE bench_copy AS SELECT * FROM events WITH NO DATA; ALTER TABLE bench_copy ADD PRIMARY KEY (event_id, time)"
t0=$(now); sql -c "\\copy bench_copy ($cols) FROM '$T/events.copy'"; t1=$(now)
raw=$(echo "$N_INGEST / ($t1 - $t0)" | bc -l)
report "tracestore ingest" "$rate" "events/s" "$raw" ">= 50000/s, ratio >= 0.5" \
  "$N_INGEST events from Kafka into events + query tables, batch_max as configured (default 20,000); baseline = psql \\\\copy of the same rows into a table with the same key"
sql -c "DROP TABLE bench_copy"
rm -f "$T/events.copy"
# The same run against every row tracestore wrote, not the events' alone:
# each query table copied out and back into a twin with its indexes (one
# COPY each, plain inserts where tracestore upserts), the times added to
# the events' COPY above.
t_all=$(echo "$t1 - $t0" | bc -l)
for tb in units lots lot_revisions unit_writes unit_outcomes unit_tests calibrations locks identities failures \
  changeovers seq_ranges; do
  sql -c "\\copy $tb TO '$T/$tb.copy'"
  sql -c "CREATE TABLE bench_$tb (LIKE $tb INCLUDING DEFAULTS INCLUDING INDEXES)"
  t0=$(now); sql -c "\\copy bench_$tb FROM '$T/$tb.copy'"; t1=$(now)
  t_all=$(echo "$t_all + $t1 - $t0" | bc -l)
  sql -c "DROP TABLE bench_$tb"
  rm -f "$T/$tb.copy"
done
report "tracestore ingest, every row" "$rate" "events/s" "$(echo "$N_INGEST / $t_all" | bc -l)" "-" \
  "the same ingest; baseline = psql \\\\copy of every row it stored (events and each query table, with their indexes), one COPY per table, times added"
if [ -n "${TS_BENCH_PG_LOG:-}" ]; then
  sql -d postgres -c "ALTER SYSTEM RESET log_min_duration_statement" -c "SELECT pg_reload_conf()" >/dev/null
  cp "$PG_DIR/server.log" "$TS_BENCH_PG_LOG"
fi
[ -z "${TS_BENCH_INGEST_ONLY:-}" ] || { kill -TERM "$TS"; wait "$TS" || true; exit 0; }

# --- latency at 1,000 events/s: event time (the agent's commit) to row stored
echo "bench: tracestore latency: $N_LATENCY events at 1000/s" >&2
"$TS_FEED" --brokers "$BOOTSTRAP" events "$N_LATENCY" --rate 1000 --stamp-now 1 --tag lat --lot-size 1000 >/dev/null
wait_for 120 "the latency events" all_read $((N_INGEST + N_LATENCY))
p99=$(sql -c "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - time) * 1000) FROM events WHERE agent_key LIKE 'lat-%'")
p50=$(sql -c "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - time) * 1000) FROM events WHERE agent_key LIKE 'lat-%'")
report "tracestore latency p99" "$p99" "ms" 0 "< 500 ms" "event time to row inserted (commit follows within the batch), 1,000 events/s, batch_wait_ms 100; p50 $(printf %.1f "$p50") ms"
kill -TERM "$TS"; wait "$TS" || true

# --- queries at N_SMALL and N_LARGE events: rows made in SQL in the shape
# tracestore stores (lots of 1,000 boards; written, tested with 2
# measurements, completed), queried over HTTP on the server's connection.
sql -c "CREATE DATABASE tsq" -d postgres
DB=tsq
conf "$T/q.conf" tsq tracestore.bench.none "[http]" "listen = 127.0.0.1:0"
"$TRACESTORE" migrate -c "$T/q.conf" >/dev/null
sql -c "SELECT ts_ensure_month(m) FROM generate_series('2025-01-01'::timestamptz, '2027-12-01', '1 month') m" >/dev/null
generate() { # generate FIRST_BOARD LAST_BOARD: 3 events per board
  sql <<SQL >/dev/null
SET synchronous_commit = off;
CREATE TEMP TABLE g AS SELECT b, 'QLOT-' || (b / 1000) AS lot, 'QLOT-' || (b / 1000) || '-B' || b AS board,
  'QSN-' || b AS serial, timestamptz '2025-01-01' + b * interval '9 seconds' AS t,
  CASE WHEN (b / 1000) % 2 = 0 THEN '1.0.0' ELSE '1.1.0' END AS v FROM generate_series($1, $2) b;
INSERT INTO events SELECT board || '-' || k, t + k * interval '1 ms', b * 3 + k, 'q', 'q', 'S1', 'L1', 'st', 'WO', lot, board, serial,
  (ARRAY['unit_written', 'unit_tested', 'unit_completed'])[k + 1], 'q', 0, b * 3 + k, t, '\x00' FROM g, generate_series(0, 2) k;
INSERT INTO lots (lot_id, order_id, product, quantity, site, line, started_at) SELECT DISTINCT lot, 'WO', 'PCBA-100', 1000, 'S1', 'L1', min(t) OVER (PARTITION BY lot) FROM g ON CONFLICT DO NOTHING;
INSERT INTO unit_writes SELECT board || '-0', t, lot, board, serial, 1, v, 'aa', 'aa', 65536, 'prog1' FROM g;
INSERT INTO unit_tests SELECT board || '-1', t, lot, board, serial, 'fct1', '{m0,m1}', '{3.3,3.3}', '{3.2,3.2}', '{3.4,3.4}', '{V,V}', '{t,t}' FROM g;
INSERT INTO unit_outcomes SELECT board || '-2', t, lot, board, serial, b % 50 <> 0, v, 'aa', 'lock1' FROM g;
INSERT INTO units SELECT lot, board, 'WO', 'S1', 'L1', serial, 1, v, 'aa', 'aa', t, 'prog1', b % 50 <> 0, t, v, 'aa', t, t FROM g;
INSERT INTO failures SELECT board || '-f', t, lot, board, serial, 'test', 'limit', 'vcc', 'fct1', 0, 'S1', 'L1' FROM g WHERE b % 50 = 0;
ANALYZE;
SQL
}
"$TRACESTORE" run -c "$T/q.conf" >"$T/q.log" 2>&1 &
QS=$!
PIDS+=("$QS")
wait_for 20 "the query server" grep -q "http: listening" "$T/q.log"
QPORT=$(sed -n 's/.*http: listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$T/q.log")
p99_of() { # p99_of PATH_PREFIX ID_PREFIX COUNT MAX_ID: p99 in ms of GETs of random ids
  local args=() i
  for i in $(seq "$3"); do args+=(-o /dev/null "http://127.0.0.1:$QPORT$1$2$(((RANDOM * 32768 + RANDOM) % $4))"); done
  curl -s -f -w '%{time_total}\n' "${args[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int(NR * 0.99 + 0.999)] * 1000}'
}
boards_small=$((N_SMALL / 3)) boards_large=$((N_LARGE / 3))
lots_small=$((boards_small / 1000)) lots_large=$((boards_large / 1000)) # whole lots only: every id asked exists
[ $lots_small -ge 1 ] || lots_small=1
generate 0 $((boards_small - 1))
echo "bench: tracestore queries at $N_SMALL events" >&2
u_small=$(p99_of /v1/units/ QSN- 300 "$boards_small"); l_small=$(p99_of /v1/lots/ QLOT- 300 $lots_small)
step=1500000
for ((from = boards_small; from < boards_large; from += step)); do
  to=$((from + step - 1)); [ $to -lt $boards_large ] || to=$((boards_large - 1))
  echo "bench: generating boards $from..$to of $boards_large" >&2
  generate $from $to
done
echo "bench: tracestore queries at $N_LARGE events ($(sql -c "SELECT count(*) FROM events") stored)" >&2
u_large=$(p99_of /v1/units/ QSN- 300 "$boards_large"); l_large=$(p99_of /v1/lots/ QLOT- 300 $lots_large)
report "tracestore unit p99" "$u_large" "ms" "$u_small" "< 10 ms" "GET /v1/units/SERIAL at $N_LARGE events; baseline = same at $N_SMALL"
report "tracestore lot p99" "$l_large" "ms" "$l_small" "< 10 ms" "GET /v1/lots/LOT (1,000 units) at $N_LARGE events; baseline = same at $N_SMALL"
kill -TERM "$QS"; wait "$QS" || true
