/* SPDX-License-Identifier: Apache-2.0 */
/* ts_store.c - a batch into PostgreSQL in one transaction (ts_store.h).
 *
 * Fast path, for a batch whose events are all new (the usual case): the
 * events are COPYed straight into the partitioned events table and their
 * decoded columns into ts_new (a temporary table of the batch's new events,
 * ON COMMIT DELETE ROWS). The events table's key refuses a duplicate (an
 * event re-sent or replayed, stored by an earlier batch or twice in this
 * one, or stored meanwhile by another instance): the transaction is then
 * rolled back and the batch stored the slow way. Slow path: the rows are
 * COPYed into staging tables, the events go on into the events table with
 * ON CONFLICT DO NOTHING, and only the rows that really went in are copied
 * to ts_new; staging rows are matched to new events by (topic, partition,
 * offset), which tells two copies of one event in the same batch apart.
 * Either way the query tables learn from ts_new alone, by the same
 * statements, so a re-sent event changes no count; the partitions' next
 * offsets are written last, in the same transaction. After a batch that held
 * duplicates the next one goes the slow way first (a replay is a run of
 * them); one without duplicates sends the next the fast way again. */
#include "ts_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_db.h"

#define TS_KEY_COLS "topic text, kafka_partition int, kafka_offset bigint"

/* The latest value of col among a group's rows matching cond (NULL when
 * none does). */
#define TS_LATEST(col, cond) "(array_agg(" col " ORDER BY time DESC) FILTER (WHERE " cond "))[1]"
/* On conflict: col takes the new value when the new row's tcol is set and
 * not older than the stored one. tcol itself is assigned last. */
#define TS_IF_NEWER(table, tcol, col)                                                                        \
    col " = CASE WHEN EXCLUDED." tcol " IS NOT NULL AND (" table "." tcol " IS NULL OR EXCLUDED." tcol       \
    " >= " table "." tcol ") THEN EXCLUDED." col " ELSE " table "." col " END"
#define TS_WRITTEN "type = 'unit_written'"
#define TS_COMPLETED "type = 'unit_completed'"

/* What the query tables learn from the new events of a batch, statement by
 * statement (the server logs and errors name the one). */
static const char *const ts_derive_sql[] = {
    "INSERT INTO unit_writes SELECT event_id, time, lot_id, board_id, serial, b_revision, b_version, b_sha256,"
    " b_readback, b_image_size, station FROM ts_new WHERE type = 'unit_written'",
    "INSERT INTO unit_outcomes SELECT event_id, time, lot_id, board_id, serial, b_passed, b_version, b_sha256,"
    " station FROM ts_new WHERE type = 'unit_completed'",
    "INSERT INTO measurements SELECT n.event_id, m.idx, n.time, n.lot_id, n.board_id, n.serial, n.station,"
    " m.name, m.value, m.low, m.high, m.unit, m.passed"
    " FROM ts_stg_meas m JOIN ts_new n USING (topic, kafka_partition, kafka_offset)",
    "INSERT INTO calibrations SELECT event_id, time, lot_id, board_id, station, b_cal_offset, b_gain, b_residual,"
    " b_points FROM ts_new WHERE type = 'unit_calibrated'",
    "INSERT INTO locks SELECT event_id, time, lot_id, board_id, station, b_verified FROM ts_new"
    " WHERE type = 'unit_locked'",
    "INSERT INTO identities SELECT event_id, time, lot_id, board_id, b_serial, b_macs, b_device_id, b_cert,"
    " station, site, line FROM ts_new WHERE type = 'unit_provisioned'",
    "INSERT INTO failures SELECT event_id, time, lot_id, board_id, serial, b_step, b_mode, b_detail, station,"
    " b_station_site, site, line FROM ts_new WHERE type = 'unit_failed'",
    "INSERT INTO changeovers SELECT event_id, time, lot_id, order_id, b_from_version, b_to_version, b_last_old,"
    " b_first_new, b_from_rev, b_to_rev, station FROM ts_new WHERE type = 'version_changeover'",
    /* lots: one upsert from every event of the lot in the batch; each fact
     * (product and quantity, start, completion) replaces the stored one
     * only when newer (or, for the start, earlier) */
    "INSERT INTO lots (lot_id, order_id, site, line, product, quantity, started_at, completed_at,"
    " reported_passed, reported_failed)"
    " SELECT lot_id, max(order_id), max(site), max(line),"
    " " TS_LATEST("b_product", "type IN ('lot_started', 'order_accepted')") ","
    " " TS_LATEST("b_quantity", "type IN ('lot_started', 'order_accepted')") ","
    " min(time) FILTER (WHERE type = 'lot_started'), max(time) FILTER (WHERE type = 'lot_completed'),"
    " " TS_LATEST("b_rep_passed", "type = 'lot_completed'") ","
    " " TS_LATEST("b_rep_failed", "type = 'lot_completed'")
    " FROM ts_new WHERE lot_id <> '' GROUP BY lot_id"
    " ON CONFLICT (lot_id) DO UPDATE SET"
    " product = coalesce(EXCLUDED.product, lots.product), quantity = coalesce(EXCLUDED.quantity, lots.quantity),"
    " started_at = least(lots.started_at, EXCLUDED.started_at),"
    " " TS_IF_NEWER("lots", "completed_at", "completed_at") ","
    " " TS_IF_NEWER("lots", "completed_at", "reported_passed") ","
    " " TS_IF_NEWER("lots", "completed_at", "reported_failed"),
    "INSERT INTO lot_revisions SELECT lot_id, b_revision, b_version, b_sha256, min(time) FROM ts_new"
    " WHERE type IN ('order_accepted', 'lot_started') AND lot_id <> '' AND b_version IS NOT NULL"
    " GROUP BY 1, 2, 3, 4 ON CONFLICT DO NOTHING",
    /* units: one upsert per board and lot: the serial once provisioned, the
     * latest write and the latest outcome (each replacing the stored one
     * only when newer); the latest of each kind picked by one sort
     * (DISTINCT ON) rather than an ordered aggregate per column */
    "WITH w AS (SELECT DISTINCT ON (lot_id, board_id) lot_id, board_id, b_revision, b_version, b_sha256,"
    "  b_readback, time, station FROM ts_new WHERE " TS_WRITTEN " ORDER BY lot_id, board_id, time DESC),"
    " c AS (SELECT DISTINCT ON (lot_id, board_id) lot_id, board_id, b_passed, time, b_version, b_sha256"
    "  FROM ts_new WHERE " TS_COMPLETED " ORDER BY lot_id, board_id, time DESC),"
    " a AS (SELECT lot_id, board_id, max(order_id) AS order_id, max(site) AS site, max(line) AS line,"
    "  coalesce(max(nullif(coalesce(b_serial, serial), '')), '') AS serial, min(time) AS first_seen,"
    "  max(time) AS last_seen FROM ts_new WHERE board_id <> '' GROUP BY lot_id, board_id)"
    " INSERT INTO units (lot_id, board_id, order_id, site, line, serial, order_revision, fw_version, fw_sha256,"
    " fw_readback_sha256, written_at, write_station, passed, completed_at, completed_version, completed_sha256,"
    " first_seen, last_seen)"
    " SELECT a.lot_id, a.board_id, a.order_id, a.site, a.line, a.serial,"
    " w.b_revision, w.b_version, w.b_sha256, w.b_readback, w.time, w.station,"
    " c.b_passed, c.time, c.b_version, c.b_sha256, a.first_seen, a.last_seen"
    " FROM a LEFT JOIN w USING (lot_id, board_id) LEFT JOIN c USING (lot_id, board_id)"
    " ON CONFLICT (lot_id, board_id) DO UPDATE SET"
    " serial = CASE WHEN EXCLUDED.serial <> '' THEN EXCLUDED.serial ELSE units.serial END,"
    " " TS_IF_NEWER("units", "written_at", "order_revision") ", " TS_IF_NEWER("units", "written_at", "fw_version") ","
    " " TS_IF_NEWER("units", "written_at", "fw_sha256") ", " TS_IF_NEWER("units", "written_at", "fw_readback_sha256") ","
    " " TS_IF_NEWER("units", "written_at", "write_station") ", " TS_IF_NEWER("units", "written_at", "written_at") ","
    " " TS_IF_NEWER("units", "completed_at", "passed") ", " TS_IF_NEWER("units", "completed_at", "completed_version") ","
    " " TS_IF_NEWER("units", "completed_at", "completed_sha256") ","
    " " TS_IF_NEWER("units", "completed_at", "completed_at") ","
    " first_seen = least(units.first_seen, EXCLUDED.first_seen),"
    " last_seen = greatest(units.last_seen, EXCLUDED.last_seen)",
    /* seq runs: lock the batch's agents in one order (two instances never
     * deadlock on them), add the batch's runs, merge each agent's runs */
    "SELECT count(pg_advisory_xact_lock(hashtext(agent_key))) FROM"
    " (SELECT DISTINCT agent_key FROM ts_new ORDER BY 1) a",
    "INSERT INTO seq_ranges SELECT agent_key, min(seq), max(seq), clock_timestamp() FROM"
    " (SELECT agent_key, seq, seq - row_number() OVER (PARTITION BY agent_key ORDER BY seq) AS run"
    "  FROM (SELECT DISTINCT agent_key, seq FROM ts_new) d) r GROUP BY agent_key, run",
    "WITH old AS (DELETE FROM seq_ranges r WHERE r.agent_key IN (SELECT agent_key FROM ts_new) RETURNING r.*),"
    " marked AS (SELECT *, CASE WHEN lo <= max(hi) OVER (PARTITION BY agent_key ORDER BY lo, hi"
    "  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) + 1 THEN 0 ELSE 1 END AS brk FROM old),"
    " grouped AS (SELECT *, sum(brk) OVER (PARTITION BY agent_key ORDER BY lo, hi) AS g FROM marked)"
    " INSERT INTO seq_ranges SELECT agent_key, min(lo), max(hi), min(first_seen) FROM grouped"
    " GROUP BY agent_key, g",
};

/* Field reports: every new report, and each serial's latest. */
static const char ts_field_sql[] =
    "WITH ins AS (INSERT INTO field_firmware_reports (serial, time, version, sha256, source, topic,"
    " kafka_partition, kafka_offset) SELECT * FROM ts_stg_field ON CONFLICT DO NOTHING RETURNING *)"
    " INSERT INTO field_firmware SELECT DISTINCT ON (serial) serial, version, sha256, time, source FROM ins"
    " ORDER BY serial, time DESC ON CONFLICT (serial) DO UPDATE SET version = EXCLUDED.version,"
    " sha256 = EXCLUDED.sha256, time = EXCLUDED.time, source = EXCLUDED.source"
    " WHERE field_firmware.time <= EXCLUDED.time";

int ts_store_prepare(PGconn *db, char *err, size_t err_len)
{
    char sql[8192];
    snprintf(sql, sizeof sql,
             "CREATE TEMP TABLE ts_stg (%s) ON COMMIT DELETE ROWS;"
             "CREATE TEMP TABLE ts_new (LIKE ts_stg) ON COMMIT DELETE ROWS;"
             "CREATE TEMP TABLE ts_stg_ev ON COMMIT DELETE ROWS AS SELECT %s FROM events WITH NO DATA;"
             "CREATE TEMP TABLE ts_stg_meas (" TS_KEY_COLS ", idx int, name text, value float8, low float8,"
             " high float8, unit text, passed boolean) ON COMMIT DELETE ROWS;"
             "CREATE TEMP TABLE ts_stg_field (serial text, time timestamptz, version text, sha256 text,"
             " source text, " TS_KEY_COLS ") ON COMMIT DELETE ROWS;",
             ts_batch_stg_columns(), ts_batch_event_columns());
    return ts_db_exec(db, sql, err, err_len);
}

static int ts_copy(PGconn *db, const char *table, const ts_buf *data, char *err, size_t err_len)
{
    if (!data->len) return 0;
    char sql[512];
    snprintf(sql, sizeof sql, "COPY %s FROM STDIN", table);
    PGresult *r = PQexec(db, sql);
    int ok = PQresultStatus(r) == PGRES_COPY_IN;
    if (!ok) ts_db_error(db, r, err, err_len);
    PQclear(r);
    if (!ok) return -1;
    if (PQputCopyData(db, data->p, (int)data->len) != 1 || PQputCopyEnd(db, NULL) != 1) {
        ts_db_error(db, NULL, err, err_len);
        ok = 0;
    }
    while ((r = PQgetResult(db))) {
        if (ok && PQresultStatus(r) != PGRES_COMMAND_OK) {
            ts_db_error(db, r, err, err_len);
            ok = 0;
        }
        PQclear(r);
    }
    return ok ? 0 : -1;
}

/* Runs a statement with text parameters; its affected row count in *rows. */
static int ts_exec_params(PGconn *db, const char *sql, int n, const char *const *vals, const int *lens,
                          const int *binary, uint64_t *rows, char *err, size_t err_len)
{
    PGresult *r = PQexecParams(db, sql, n, NULL, vals, lens, binary, 0);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (ok && rows) *rows = strtoull(PQcmdTuples(r), NULL, 10);
    if (!ok) ts_db_error(db, r, err, err_len);
    PQclear(r);
    return ok ? 0 : -1;
}

static int ts_store_rejected(PGconn *db, const ts_rejected *r, char *err, size_t err_len)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%" PRId32, r->partition);
    snprintf(off, sizeof off, "%" PRId64, r->offset);
    const char *vals[] = {r->topic, part, off, r->reason, r->key, r->value};
    int lens[] = {0, 0, 0, 0, (int)r->key_len, (int)r->value_len};
    int bin[] = {0, 0, 0, 0, 1, 1};
    return ts_exec_params(db,
                          "INSERT INTO rejected_records (topic, kafka_partition, kafka_offset, reason, key, value)"
                          " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                          6, vals, lens, bin, NULL, err, err_len);
}

/* Every partition's next offset in one statement (a batch may span a
 * hundred partitions). */
static int ts_store_offsets(PGconn *db, const ts_batch *b, const char *group, char *err, size_t err_len)
{
    if (!b->n_pos) return 0;
    ts_buf topics = {0}, parts = {0}, offs = {0};
    for (size_t i = 0; i < b->n_pos; i++) {
        ts_buf_printf(&topics, "%s\"", i ? "," : "{");
        for (const char *c = b->pos[i].topic; *c; c++) /* Kafka topic names are [a-zA-Z0-9._-] */
            ts_buf_printf(&topics, "%c", *c);
        ts_buf_printf(&topics, "\"");
        ts_buf_printf(&parts, "%s%" PRId32, i ? "," : "{", b->pos[i].partition);
        ts_buf_printf(&offs, "%s%" PRId64, i ? "," : "{", b->pos[i].next_offset);
    }
    ts_buf_printf(&topics, "}%c", 0), ts_buf_printf(&parts, "}%c", 0), ts_buf_printf(&offs, "}%c", 0);
    const char *vals[] = {group, topics.p, parts.p, offs.p};
    /* GREATEST: an instance that lost the partition mid-batch (a zombie
     * after a rebalance) must not move the offset back. */
    int rc = ts_exec_params(db,
                            "INSERT INTO consumer_offsets (group_id, topic, kafka_partition, next_offset)"
                            " SELECT $1, unnest($2::text[]), unnest($3::int[]), unnest($4::bigint[])"
                            " ON CONFLICT (group_id, topic, kafka_partition) DO UPDATE"
                            " SET next_offset = greatest(consumer_offsets.next_offset, EXCLUDED.next_offset),"
                            " updated_at = clock_timestamp()",
                            4, vals, NULL, NULL, NULL, err, err_len);
    free(topics.p), free(parts.p), free(offs.p);
    return rc;
}

/* The batch's events into the events table, their decoded columns of those
 * new into ts_new; res->stored. fast: straight, refused whole (SQLSTATE
 * 23505) by a duplicate; else through the staging tables. */
static int ts_store_events(PGconn *db, const ts_batch *b, int fast, ts_store_result *res, char *err,
                           size_t err_len)
{
    char sql[1024];
    if (fast) {
        snprintf(sql, sizeof sql, "events (%s)", ts_batch_event_columns());
        if (ts_copy(db, sql, &b->event_rows, err, err_len) || ts_copy(db, "ts_new", &b->events, err, err_len))
            return -1;
        res->stored = b->n_events;
        return 0;
    }
    if (ts_copy(db, "ts_stg_ev", &b->event_rows, err, err_len) || ts_copy(db, "ts_stg", &b->events, err, err_len))
        return -1;
    snprintf(sql, sizeof sql,
             "WITH ins AS (INSERT INTO events (%s) SELECT * FROM ts_stg_ev"
             " ON CONFLICT DO NOTHING RETURNING topic, kafka_partition, kafka_offset)"
             " INSERT INTO ts_new SELECT s.* FROM ts_stg s JOIN ins USING (topic, kafka_partition, kafka_offset)",
             ts_batch_event_columns());
    return ts_exec_params(db, sql, 0, NULL, NULL, NULL, &res->stored, err, err_len);
}

static int ts_store_txn(PGconn *db, const ts_batch *b, const char *group, int fast, ts_store_result *res,
                        char *err, size_t err_len)
{
    if (ts_copy(db, "ts_stg_meas", &b->meas, err, err_len) || ts_copy(db, "ts_stg_field", &b->field, err, err_len))
        return -1;
    if (b->n_events) {
        if (ts_store_events(db, b, fast, res, err, err_len)) return -1;
        res->duplicates = b->n_events - res->stored;
        for (size_t i = 0; res->stored && i < sizeof ts_derive_sql / sizeof *ts_derive_sql; i++)
            if (ts_db_exec(db, ts_derive_sql[i], err, err_len)) return -1;
        /* Delivered at commit, to every listener (the web page's live feed,
         * in this instance or another): nothing is announced before it is
         * stored, and a rolled-back batch announces nothing. */
        if (res->stored && ts_db_exec(db, "NOTIFY tracestore_stored", err, err_len)) return -1;
    }
    if (b->n_field && ts_exec_params(db, ts_field_sql, 0, NULL, NULL, NULL, &res->field_stored, err, err_len))
        return -1;
    for (size_t i = 0; i < b->n_rejected; i++)
        if (ts_store_rejected(db, &b->rejected[i], err, err_len)) return -1;
    res->rejected = b->n_rejected;
    return ts_store_offsets(db, b, group, err, err_len);
}

/* The months' partitions, each created and committed on its own before the
 * batch's transaction, so no batch holds the partition lock for long. */
static int ts_store_months(PGconn *db, const ts_batch *b, char *err, size_t err_len)
{
    for (size_t i = 0; i < b->n_months; i++) {
        char year[16], month[16];
        snprintf(year, sizeof year, "%d", (int)(b->months[i] / 12));
        snprintf(month, sizeof month, "%d", (int)(b->months[i] % 12) + 1);
        const char *vals[] = {year, month};
        if (ts_exec_params(db, "SELECT ts_ensure_month(make_timestamptz($1, $2, 1, 0, 0, 0, 'UTC'))", 2, vals,
                           NULL, NULL, NULL, err, err_len))
            return -1;
    }
    return 0;
}

/* One transaction, fast or slow; rolled back on error. */
static int ts_store_once(PGconn *db, const ts_batch *b, const char *group, int fast, ts_store_result *res,
                         char *err, size_t err_len)
{
    memset(res, 0, sizeof *res);
    if (ts_db_exec(db, "BEGIN", err, err_len)) return -1;
    if (ts_store_txn(db, b, group, fast, res, err, err_len) == 0 && ts_db_exec(db, "COMMIT", err, err_len) == 0)
        return 0;
    char ignored[64];
    ts_db_exec(db, "ROLLBACK", ignored, sizeof ignored);
    memset(res, 0, sizeof *res);
    return -1;
}

/* Whether the last batch stored held duplicates: the next goes the slow way. */
static int ts_last_had_duplicates;

int ts_store_flush(PGconn *db, const ts_batch *b, const char *group, ts_store_result *res, char *err,
                   size_t err_len)
{
    memset(res, 0, sizeof *res);
    if (ts_store_months(db, b, err, err_len)) return -1;
    int rc = -1;
    if (!ts_last_had_duplicates && b->n_events) {
        rc = ts_store_once(db, b, group, 1, res, err, err_len);
        /* A duplicate (or any row the database refuses: the slow path
         * finds out which); any other error is the caller's to retry. */
        if (rc && !ts_db_data_error(err)) return -1;
    }
    if (rc) rc = ts_store_once(db, b, group, 0, res, err, err_len);
    if (rc == 0) ts_last_had_duplicates = res->duplicates > 0;
    return rc;
}

int64_t ts_store_offset(PGconn *db, const char *group, const char *topic, int32_t partition, char *err,
                        size_t err_len)
{
    char part[16];
    snprintf(part, sizeof part, "%" PRId32, partition);
    const char *vals[] = {group, topic, part};
    PGresult *r = PQexecParams(db,
                               "SELECT next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2"
                               " AND kafka_partition = $3",
                               3, NULL, vals, NULL, NULL, 0);
    int64_t off = -2;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) off = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    else ts_db_error(db, r, err, err_len);
    PQclear(r);
    return off;
}
