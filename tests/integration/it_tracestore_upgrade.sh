#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A database written by an older tracestore is upgraded in place and its
# records answer as before. The schema is taken to migration 2 (the last
# before the per-unit tables were re-keyed and measurements became one row
# per test), filled with a lot as that version stored it, then migrated to
# current: every row is still there, the measurements view gives back the
# old table's rows, and `unit` and `lot` answer from the moved data. Also:
# `run` refuses a schema that is not current, and migrations only go forward.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ts_lib.sh"

BOOTSTRAP=127.0.0.1:9 # no Kafka: nothing here consumes
pg_init "$T/pg" off
write_ts_config "$T/ts.conf"
out=$(ts migrate --to 2) || fail "migrate --to 2: $out"
[ "$out" = "schema at migration 2 (2 migrations applied now)" ] || fail "migrate --to 2 said: $out"
[ "$(ts_sql "SELECT max(version) FROM schema_migrations")" = 2 ] || fail "schema not at 2 after --to 2"

rc=0; out=$("$TRACESTORE" run -c "$T/ts.conf" 2>&1) || rc=$?
[ "$rc" -eq 3 ] && grep -q "schema is not current" <<<"$out" || fail "run on schema 2: exit $rc, $out"
pass "run refuses a schema at migration 2"

# A lot as tracestore stored it at migration 2: two boards on 1.0.0, B2
# failing its test; measurements one row each (idx from 0).
ts_sql "
SELECT ts_ensure_month('2026-03-02T08:00:00Z');
INSERT INTO events (event_id, time, seq, agent_key, agent_instance_id, site, line, station, order_id, lot_id,
                    board_id, serial, type, topic, kafka_partition, kafka_offset, payload)
VALUES ('e-w1', '2026-03-02T08:00:01Z', 1, 'S1/L1', 'i1', 'S1', 'L1', 'prog1', 'WO-U', 'LOT-U', 'B1', 'SN-1',
        'unit_written', 'lineagent.trace.v1', 0, 0, '\x0a01'::bytea);
INSERT INTO lots VALUES ('LOT-U', 'WO-U', 'PCBA-100', 2, 'S1', 'L1', '2026-03-02T08:00:00Z', '2026-03-02T08:10:00Z', 1, 1);
INSERT INTO lot_revisions VALUES ('LOT-U', 1, '1.0.0', 'aa11', '2026-03-02T08:00:00Z');
INSERT INTO units VALUES
 ('LOT-U', 'B1', 'WO-U', 'S1', 'L1', 'SN-1', 1, '1.0.0', 'aa11', 'aa11', '2026-03-02T08:00:01Z', 'prog1',
  true, '2026-03-02T08:00:09Z', '1.0.0', 'aa11', '2026-03-02T08:00:01Z', '2026-03-02T08:00:09Z'),
 ('LOT-U', 'B2', 'WO-U', 'S1', 'L1', 'SN-2', 1, '1.0.0', 'aa11', 'aa11', '2026-03-02T08:01:01Z', 'prog1',
  false, '2026-03-02T08:01:09Z', '1.0.0', 'aa11', '2026-03-02T08:01:01Z', '2026-03-02T08:01:09Z');
INSERT INTO unit_writes VALUES
 ('e-w1', '2026-03-02T08:00:01Z', 'LOT-U', 'B1', 'SN-1', 1, '1.0.0', 'aa11', 'aa11', 4096, 'prog1'),
 ('e-w2', '2026-03-02T08:01:01Z', 'LOT-U', 'B2', 'SN-2', 1, '1.0.0', 'aa11', 'aa11', 4096, 'prog1');
INSERT INTO unit_outcomes VALUES
 ('e-o1', '2026-03-02T08:00:09Z', 'LOT-U', 'B1', 'SN-1', true, '1.0.0', 'aa11', 'lock1'),
 ('e-o2', '2026-03-02T08:01:09Z', 'LOT-U', 'B2', 'SN-2', false, '1.0.0', 'aa11', 'fct1');
INSERT INTO measurements VALUES
 ('e-t1', 0, '2026-03-02T08:00:03Z', 'LOT-U', 'B1', 'SN-1', 'fct1', 'vcc_3v3', 3.31, 3.2, 3.4, 'V', true),
 ('e-t1', 1, '2026-03-02T08:00:03Z', 'LOT-U', 'B1', 'SN-1', 'fct1', 'i_idle', 0.012, 0.005, 0.02, 'A', true),
 ('e-t1', 2, '2026-03-02T08:00:03Z', 'LOT-U', 'B1', 'SN-1', 'fct1', 'xtal_ppm', -3.5, -20, 20, 'ppm', true),
 ('e-t2', 0, '2026-03-02T08:01:03Z', 'LOT-U', 'B2', 'SN-2', 'fct1', 'vcc_3v3', 3.52, 3.2, 3.4, 'V', false),
 ('e-t2', 1, '2026-03-02T08:01:03Z', 'LOT-U', 'B2', 'SN-2', 'fct1', 'i_idle', 0.011, 0.005, 0.02, 'A', true);
INSERT INTO calibrations VALUES ('e-c1', '2026-03-02T08:00:05Z', 'LOT-U', 'B1', 'cal1', 0.25, 1.002, 0.001, 5);
INSERT INTO locks VALUES ('e-l1', '2026-03-02T08:00:08Z', 'LOT-U', 'B1', 'lock1', true);
INSERT INTO identities VALUES ('e-p1', '2026-03-02T08:00:02Z', 'LOT-U', 'B1', 'SN-1', '{02:00:00:00:00:01}',
 'dev-1', 'cc22', 'prog1', 'S1', 'L1');
INSERT INTO failures VALUES ('e-f2', '2026-03-02T08:01:04Z', 'LOT-U', 'B2', 'SN-2', 'test', 'limit', 'vcc_3v3 3.52 > 3.4',
 'fct1', 0, 'S1', 'L1');" >/dev/null

counts="SELECT concat_ws(' ', (SELECT count(*) FROM events), (SELECT count(*) FROM units),
 (SELECT count(*) FROM unit_writes), (SELECT count(*) FROM unit_outcomes), (SELECT count(*) FROM calibrations),
 (SELECT count(*) FROM locks), (SELECT count(*) FROM identities), (SELECT count(*) FROM failures))"
rows="SELECT event_id, idx, time, lot_id, board_id, serial, station, name, value, low, high, unit, passed
 FROM measurements ORDER BY event_id, idx"
before_counts=$(ts_sql "$counts")
before_rows=$(ts_sql "$rows")
[ "$before_counts" = "1 2 2 2 1 1 1 1" ] || fail "schema-2 data not as written: $before_counts"

out=$(ts migrate) || fail "migrate: $out"
[ "$(ts_sql "SELECT max(version) FROM schema_migrations")" -gt 2 ] || fail "migrate left the schema at 2"
latest=$(ts_sql "SELECT max(version) FROM schema_migrations")
[ "$out" = "schema current ($((latest - 2)) migrations applied now)" ] || fail "migrate said: $out"
[ "$(ts_sql "$counts")" = "$before_counts" ] || fail "rows after migrating: $(ts_sql "$counts"), before: $before_counts"
[ "$(ts_sql "$rows")" = "$before_rows" ] || fail "measurements after migrating differ:
$(diff <(echo "$before_rows") <(ts_sql "$rows"))"
[ "$(ts_sql "SELECT count(*) FROM unit_tests")" = 2 ] || fail "unit_tests: want one row per test (2)"
[ "$(ts_sql "SELECT relkind FROM pg_class WHERE relname = 'measurements'")" = v ] || fail "measurements is not a view"
pass "migrated 2 -> $latest: every row kept, the measurements view equals the old table ($(wc -l <<<"$before_rows") rows)"

ts unit SN-1 --json >"$T/u1.json" || fail "unit SN-1 after migrating"
got=$(jq -c '[.serial, .boardId, .lot, .firmware.version, .passed, [.measurements[] | .name, .value, .low, .high]]' "$T/u1.json")
want='["SN-1","B1","LOT-U","1.0.0",true,["vcc_3v3",3.31,3.2,3.4,"i_idle",0.012,0.005,0.02,"xtal_ppm",-3.5,-20,20]]'
[ "$got" = "$want" ] || fail "unit SN-1: $got, want $want"
[ "$(jq -c '[(.calibrations | length), (.locks | length), .identities[0].macs]' "$T/u1.json")" = '[1,1,["02:00:00:00:00:01"]]' ] \
  || fail "unit SN-1 calibration/lock/identity: $(jq -c '[.calibrations, .locks, .identities]' "$T/u1.json")"
ts unit B2 --json >"$T/u2.json" || fail "unit B2 after migrating"
got=$(jq -c '[.serial, .passed, [.measurements[] | .passed], [.failures[] | .failureMode]]' "$T/u2.json")
[ "$got" = '["SN-2",false,[false,true],["limit"]]' ] || fail "unit B2: $got"
got=$(ts lot LOT-U --json | jq -c '[.units, .passed, .failed, .versions]')
[ "$got" = '[2,1,1,{"1.0.0":2}]' ] || fail "lot LOT-U: $got"
pass "unit and lot answer from the migrated rows"

rc=0; out=$(ts migrate --to 2 2>&1) || rc=$?
[ "$rc" -eq 3 ] && grep -q "only go forward" <<<"$out" || fail "migrate --to 2 on a newer schema: exit $rc, $out"
rc=0; out=$(ts migrate --to 99 2>&1) || rc=$?
[ "$rc" -eq 3 ] && grep -q "no migration 99" <<<"$out" || fail "migrate --to 99: exit $rc, $out"
rc=0; out=$(ts migrate --to two 2>&1) || rc=$?
[ "$rc" -eq 2 ] || fail "migrate --to two: exit $rc, $out"
out=$(ts migrate) && [ "$out" = "schema current (0 migrations applied now)" ] || fail "migrate again: $out"
pass "migrations go forward only; --to checked; migrating a current schema changes nothing"
pg_stop
