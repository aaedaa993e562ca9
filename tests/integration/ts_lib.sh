# SPDX-License-Identifier: Apache-2.0
# ts_lib.sh - tracestore helpers for the integration tests, sourced after
# lib.sh: $TRACESTORE and $TS_FEED from TRACESTORE_BIN and TS_FEED_BIN, a private PostgreSQL
# (pg_lib.sh) with the schema migrated, tracestore instances as processes.
TRACESTORE=$(need_bin TRACESTORE_BIN)
TS_FEED=$(need_bin TS_FEED_BIN)
source "$(dirname "${BASH_SOURCE[0]}")/pg_lib.sh"
# set +e: under errexit the (exit $rc) of a failed test would end the trap before
# cleanup stops what the test started
trap 'rc=$?; set +e; pg_stop_quiet; (exit $rc); cleanup' EXIT
TOPIC=lineagent.trace.v1
FIELD_TOPIC=lineagent.field.v1

# ts_setup: PostgreSQL up, schema migrated, $T/ts.conf written for $BOOTSTRAP.
ts_setup() {
  pg_init "$T/pg" off
  write_ts_config "$T/ts.conf"
  "$TRACESTORE" migrate -c "$T/ts.conf" >"$T/migrate.out" 2>&1 || fail "migrate: $(cat "$T/migrate.out")"
}

write_ts_config() { # write_ts_config FILE [extra lines...]
  local file=$1; shift
  cat >"$file" <<CONF
[postgres]
conninfo = $PG_CONNINFO
password_file = $PG_PASSWORD_FILE
$([ -z "$PG_TLS_DIR" ] || printf 'sslrootcert = %s\nsslcert = %s\nsslkey = %s' "$PG_TLS_DIR/pgca.pem" \
  "$PG_TLS_DIR/tracestore.pem" "$PG_TLS_DIR/tracestore.key")
[kafka]
bootstrap.servers = $BOOTSTRAP
session.timeout.ms = 6000
heartbeat.interval.ms = 500
batch_wait_ms = ${TS_BATCH_WAIT_MS:-50}
[tracestore]
retry_max_ms = 1000
log_level = ${TS_LOG_LEVEL:-info}
CONF
  [ $# -eq 0 ] || printf '%s\n' "$@" >>"$file"
  chmod 600 "$file"
}

TS_RUN=0
start_tracestore() { # start_tracestore CONFIG: sets TS_PID and TS_LOG
  TS_RUN=$((TS_RUN + 1))
  TS_LOG="$T/tracestore$TS_RUN.log"
  "$TRACESTORE" run -c "$1" >"$TS_LOG" 2>&1 &
  TS_PID=$!
  PIDS+=("$TS_PID")
  wait_for 20 "tracestore consuming" grep -q "consuming" "$TS_LOG"
}

stop_tracestore() { # stop_tracestore PID: SIGTERM, expect exit 0
  kill -TERM "$1"
  local rc=0
  wait "$1" || rc=$?
  [ "$rc" -eq 0 ] || fail "tracestore exited $rc after SIGTERM"
}

ts_sql() { pg_psql -c "$1"; }
stored_events() { ts_sql "SELECT count(*) FROM events"; }
events_at_least() { [ "$(stored_events)" -ge "$1" ]; }
# offsets_at TOPIC N [GROUP]: the stored next offsets of TOPIC (of GROUP's
# only, when given) add up to N (all read)
offsets_at() {
  [ "$(ts_sql "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE topic = '$1'${3:+ AND group_id = '$3'}")" -eq "$2" ]
}
ts() { "$TRACESTORE" "$@" -c "$T/ts.conf"; }
