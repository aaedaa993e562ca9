/* SPDX-License-Identifier: Apache-2.0 */
/* ts_schema.c - the database schema as versioned migrations, oldest first;
 * ts_db.c applies those not yet in schema_migrations, each in its own
 * transaction. Never edit a released migration: add the next one.
 * Documented in README.md ("Schema"). */
#include "ts_schema.h"

const ts_migration ts_migrations[] = {
    {1, "events, query tables, offsets, rejected records, seq ranges",
     /* Raw events: the protobuf bytes plus decoded columns, partitioned by
      * month of the event's time so retention drops a partition. The key
      * holds the partition column, as PostgreSQL requires: an event's time is
      * part of its bytes, so a re-sent or replayed event has the same key. */
     "CREATE TABLE events ("
     " event_id text NOT NULL, time timestamptz NOT NULL, seq bigint NOT NULL,"
     " agent_key text NOT NULL, agent_instance_id text NOT NULL,"
     " site text NOT NULL, line text NOT NULL, station text NOT NULL,"
     " order_id text NOT NULL, lot_id text NOT NULL, board_id text NOT NULL, serial text NOT NULL,"
     " type text NOT NULL, topic text NOT NULL, kafka_partition int NOT NULL, kafka_offset bigint NOT NULL,"
     " stored_at timestamptz NOT NULL DEFAULT clock_timestamp(), payload bytea NOT NULL,"
     " PRIMARY KEY (event_id, time)) PARTITION BY RANGE (time);"
     /* Creates the month's partition of a time unless it exists; concurrent
      * instances serialise on an advisory lock only when one is missing. */
     "CREATE FUNCTION ts_ensure_month(t timestamptz) RETURNS void LANGUAGE plpgsql AS $$"
     " DECLARE m timestamptz := date_trunc('month', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';"
     " n text := 'events_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM');"
     " BEGIN"
     "  IF to_regclass(n) IS NOT NULL THEN RETURN; END IF;"
     "  PERFORM pg_advisory_xact_lock(hashtext('tracestore.partitions'));"
     "  IF to_regclass(n) IS NOT NULL THEN RETURN; END IF;"
     "  EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',"
     "                 n, m, m + interval '1 month');"
     " EXCEPTION WHEN duplicate_table THEN NULL;" /* made meanwhile by another instance */
     " END $$;"
     "CREATE TABLE units ("
     " lot_id text NOT NULL, board_id text NOT NULL, order_id text NOT NULL, site text NOT NULL,"
     " line text NOT NULL, serial text NOT NULL DEFAULT '', order_revision int,"
     " fw_version text, fw_sha256 text, fw_readback_sha256 text, written_at timestamptz, write_station text,"
     " passed boolean, completed_at timestamptz, completed_version text, completed_sha256 text,"
     " first_seen timestamptz NOT NULL, last_seen timestamptz NOT NULL,"
     " PRIMARY KEY (lot_id, board_id));"
     "CREATE INDEX units_board ON units (board_id);"
     "CREATE INDEX units_serial ON units (serial);"
     "CREATE INDEX units_fw ON units (fw_version);"
     "CREATE TABLE lots ("
     " lot_id text PRIMARY KEY, order_id text NOT NULL, product text, quantity int,"
     " site text NOT NULL, line text NOT NULL, started_at timestamptz, completed_at timestamptz,"
     " reported_passed int, reported_failed int);"
     "CREATE TABLE lot_revisions ("
     " lot_id text NOT NULL, revision int NOT NULL, fw_version text NOT NULL, fw_sha256 text NOT NULL,"
     " accepted_at timestamptz NOT NULL, PRIMARY KEY (lot_id, revision));"
     "CREATE TABLE changeovers ("
     " event_id text PRIMARY KEY, time timestamptz NOT NULL, lot_id text NOT NULL, order_id text NOT NULL,"
     " from_version text NOT NULL, to_version text NOT NULL, last_old_board text NOT NULL,"
     " first_new_board text NOT NULL, from_revision int NOT NULL, to_revision int NOT NULL, station text NOT NULL);"
     "CREATE INDEX changeovers_lot ON changeovers (lot_id);"
     "CREATE TABLE unit_writes ("
     " event_id text PRIMARY KEY, time timestamptz NOT NULL, lot_id text NOT NULL, board_id text NOT NULL,"
     " serial text NOT NULL, order_revision int NOT NULL, version text NOT NULL, sha256 text NOT NULL,"
     " readback_sha256 text NOT NULL, image_size bigint NOT NULL, station text NOT NULL);"
     "CREATE INDEX unit_writes_board ON unit_writes (board_id);"
     "CREATE TABLE unit_outcomes ("
     " event_id text PRIMARY KEY, time timestamptz NOT NULL, lot_id text NOT NULL, board_id text NOT NULL,"
     " serial text NOT NULL, passed boolean NOT NULL, fw_version text NOT NULL, fw_sha256 text NOT NULL,"
     " station text NOT NULL);"
     "CREATE INDEX unit_outcomes_board ON unit_outcomes (board_id);"
     "CREATE INDEX unit_outcomes_lot ON unit_outcomes (lot_id);"
     "CREATE TABLE measurements ("
     " event_id text NOT NULL, idx int NOT NULL, time timestamptz NOT NULL, lot_id text NOT NULL,"
     " board_id text NOT NULL, serial text NOT NULL, station text NOT NULL, name text NOT NULL,"
     " value float8 NOT NULL, low float8 NOT NULL, high float8 NOT NULL, unit text NOT NULL,"
     " passed boolean NOT NULL, PRIMARY KEY (event_id, idx));"
     "CREATE INDEX measurements_board ON measurements (board_id);"
     "CREATE TABLE calibrations ("
     " event_id text PRIMARY KEY, time timestamptz NOT NULL, lot_id text NOT NULL, board_id text NOT NULL,"
     " station text NOT NULL, \"offset\" float8 NOT NULL, gain float8 NOT NULL, residual float8 NOT NULL,"
     " points int NOT NULL);"
     "CREATE INDEX calibrations_board ON calibrations (board_id);"
     "CREATE TABLE locks ("
     " event_id text PRIMARY KEY, time timestamptz NOT NULL, lot_id text NOT NULL, board_id text NOT NULL,"
     " station text NOT NULL, verified boolean NOT NULL);"
     "CREATE INDEX locks_board ON locks (board_id);"
     "CREATE TABLE identities ("
     " event_id text PRIMARY KEY, time timestamptz NOT NULL, lot_id text NOT NULL, board_id text NOT NULL,"
     " serial text NOT NULL, macs text[] NOT NULL, device_id text NOT NULL, certificate_sha256 text NOT NULL,"
     " station text NOT NULL, site text NOT NULL, line text NOT NULL);"
     "CREATE INDEX identities_board ON identities (board_id);"
     "CREATE INDEX identities_serial ON identities (serial);"
     "CREATE TABLE failures ("
     " event_id text PRIMARY KEY, time timestamptz NOT NULL, lot_id text NOT NULL, board_id text NOT NULL,"
     " serial text NOT NULL, step text NOT NULL, failure_mode text NOT NULL, detail text NOT NULL,"
     " station text NOT NULL, station_site int NOT NULL, site text NOT NULL, line text NOT NULL);"
     "CREATE INDEX failures_board ON failures (board_id);"
     "CREATE INDEX failures_lot ON failures (lot_id);"
     /* Field firmware: every report, and each serial's latest. */
     "CREATE TABLE field_firmware_reports ("
     " serial text NOT NULL, time timestamptz NOT NULL, version text NOT NULL, sha256 text NOT NULL,"
     " source text NOT NULL, topic text NOT NULL, kafka_partition int NOT NULL, kafka_offset bigint NOT NULL,"
     " stored_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (serial, time, version, sha256));"
     "CREATE TABLE field_firmware ("
     " serial text PRIMARY KEY, version text NOT NULL, sha256 text NOT NULL, time timestamptz NOT NULL,"
     " source text NOT NULL);"
     "CREATE INDEX field_firmware_version ON field_firmware (version);"
     "CREATE TABLE rejected_records ("
     " topic text NOT NULL, kafka_partition int NOT NULL, kafka_offset bigint NOT NULL, reason text NOT NULL,"
     " key bytea, value bytea, rejected_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
     " PRIMARY KEY (topic, kafka_partition, kafka_offset));"
     /* The next offset to read per partition, written in the transaction
      * that stores the records before it: the offset and the rows commit
      * together or not at all. */
     "CREATE TABLE consumer_offsets ("
     " group_id text NOT NULL, topic text NOT NULL, kafka_partition int NOT NULL, next_offset bigint NOT NULL,"
     " updated_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (group_id, topic, kafka_partition));"
     /* Per agent, the runs of seq stored so far, merged as they meet; two
      * runs with a hole between them are a gap, first_seen of the later run
      * says since when. */
     "CREATE TABLE seq_ranges ("
     " agent_key text NOT NULL, lo bigint NOT NULL, hi bigint NOT NULL, first_seen timestamptz NOT NULL);"
     "CREATE INDEX seq_ranges_agent ON seq_ranges (agent_key, lo);"},
    {2, "indexes for the web page: lines' latest lots, a lot's measurements, units by MAC or device id",
     "CREATE INDEX lots_line ON lots (site, line, started_at DESC);"
     "CREATE INDEX measurements_lot ON measurements (lot_id, name);"
     "CREATE INDEX identities_macs ON identities USING gin (macs);"
     "CREATE INDEX identities_device ON identities (device_id);"},
    {3, "per-unit tables keyed by (lot, board, event): one index each; measurements as one row per test",
     /* Every answer reads these tables by lot and board (a unit) or by lot
      * (a lot's failures, tests); one unique index on (lot_id,
      * board_id, event_id) serves both and still refuses an event id stored
      * twice for a unit (README.md, "Exactly once in effect"). Fewer
      * indexes to maintain is most of the ingest's cost (README.md,
      * "Benchmark"). */
     "ALTER TABLE unit_writes DROP CONSTRAINT unit_writes_pkey;"
     "DROP INDEX unit_writes_board;"
     "CREATE UNIQUE INDEX unit_writes_unit ON unit_writes (lot_id, board_id, event_id);"
     "ALTER TABLE unit_outcomes DROP CONSTRAINT unit_outcomes_pkey;"
     "DROP INDEX unit_outcomes_board;"
     "DROP INDEX unit_outcomes_lot;"
     "CREATE UNIQUE INDEX unit_outcomes_unit ON unit_outcomes (lot_id, board_id, event_id);"
     "ALTER TABLE calibrations DROP CONSTRAINT calibrations_pkey;"
     "DROP INDEX calibrations_board;"
     "CREATE UNIQUE INDEX calibrations_unit ON calibrations (lot_id, board_id, event_id);"
     "ALTER TABLE locks DROP CONSTRAINT locks_pkey;"
     "DROP INDEX locks_board;"
     "CREATE UNIQUE INDEX locks_unit ON locks (lot_id, board_id, event_id);"
     "ALTER TABLE identities DROP CONSTRAINT identities_pkey;"
     "DROP INDEX identities_board;"
     "CREATE UNIQUE INDEX identities_unit ON identities (lot_id, board_id, event_id);"
     "ALTER TABLE failures DROP CONSTRAINT failures_pkey;"
     "DROP INDEX failures_board;"
     "DROP INDEX failures_lot;"
     "CREATE UNIQUE INDEX failures_unit ON failures (lot_id, board_id, event_id);"
     /* A functional test records tens of measurements; a row (and an index
      * entry) per measurement repeated the test's event id, lot, board,
      * serial, station and time in each. unit_tests holds one row per test
      * with each field of its measurements as an array, and the view
      * measurements gives plain SQL the columns of the table it replaces
      * (idx from 0, in the test's order). */
     "CREATE TABLE unit_tests ("
     " event_id text NOT NULL, time timestamptz NOT NULL, lot_id text NOT NULL, board_id text NOT NULL,"
     " serial text NOT NULL, station text NOT NULL, names text[] NOT NULL, measured float8[] NOT NULL,"
     " lows float8[] NOT NULL, highs float8[] NOT NULL, units text[] NOT NULL, passed boolean[] NOT NULL);"
     "INSERT INTO unit_tests SELECT event_id, min(time), min(lot_id), min(board_id), min(serial), min(station),"
     " array_agg(name ORDER BY idx), array_agg(value ORDER BY idx), array_agg(low ORDER BY idx),"
     " array_agg(high ORDER BY idx), array_agg(unit ORDER BY idx), array_agg(passed ORDER BY idx)"
     " FROM measurements GROUP BY event_id;"
     "DROP TABLE measurements;"
     "CREATE UNIQUE INDEX unit_tests_unit ON unit_tests (lot_id, board_id, event_id);"
     "CREATE VIEW measurements AS SELECT t.event_id, (m.idx - 1)::int AS idx, t.time, t.lot_id, t.board_id,"
     " t.serial, t.station, m.name, m.value, m.low, m.high, m.unit, m.passed"
     " FROM unit_tests t, unnest(t.names, t.measured, t.lows, t.highs, t.units, t.passed)"
     " WITH ORDINALITY AS m(name, value, low, high, unit, passed, idx);"},
    {4, "records Kafka deleted before they were stored",
     /* Offsets [from_offset, to_offset) of a partition that were gone
      * (retention) when the group came to read them; before_first_read: the
      * group had never stored anything of the partition (tracestore
      * deployed after the topic's oldest records expired). */
     "CREATE TABLE lost_records ("
     " group_id text NOT NULL, topic text NOT NULL, kafka_partition int NOT NULL, from_offset bigint NOT NULL,"
     " to_offset bigint NOT NULL, before_first_read boolean NOT NULL,"
     " detected_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
     " PRIMARY KEY (group_id, topic, kafka_partition, from_offset));"},
};

const int ts_n_migrations = (int)(sizeof ts_migrations / sizeof ts_migrations[0]);
