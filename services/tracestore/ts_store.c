/* SPDX-License-Identifier: Apache-2.0 */
/* ts_store.c - a batch into PostgreSQL in one transaction (ts_store.h).
 *
 * Fast path, for a batch whose events are all new (the usual case): the
 * events are COPYed straight into the partitioned events table, and the
 * rows ts_batch.c made for the query tables straight into theirs; units,
 * lots, lot revisions and seq runs, which merge with what is stored, go
 * through a temporary table each and one upsert. The events table's key
 * refuses a duplicate (an event re-sent or replayed, stored by an earlier
 * batch or twice in this one, or stored meanwhile by another instance): the
 * transaction is then rolled back and the batch stored the slow way: its
 * events go through a staging table into the events table with ON CONFLICT
 * DO NOTHING, which returns the (topic, partition, offset) of those that
 * really went in; the batch is rebuilt from those records alone and its
 * query-table rows stored as on the fast path. Either way a re-sent event
 * changes no count. The partitions' next offsets are written last, in the
 * same transaction. After a batch that held duplicates the next one goes the
 * slow way first (a replay is a run of them); one without duplicates sends
 * the next the fast way again. */
#include "ts_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_db.h"

/* On conflict: col takes the new value when the new row's tcol is set and
 * not older than the stored one. tcol itself is assigned last. */
#define TS_IF_NEWER(table, tcol, col)                                                                        \
    col " = CASE WHEN EXCLUDED." tcol " IS NOT NULL AND (" table "." tcol " IS NULL OR EXCLUDED." tcol       \
    " >= " table "." tcol ") THEN EXCLUDED." col " ELSE " table "." col " END"

/* The statement that merges a temporary table's rows (folded per unit, lot
 * or agent by ts_fold.c) into its query table. */
static const char *const ts_merge_sql[TS_T_N] = {
    [TS_T_REVISIONS] = "INSERT INTO lot_revisions SELECT lot_id, revision, fw_version, fw_sha256, min(accepted_at)"
                       " FROM ts_revs GROUP BY 1, 2, 3, 4 ON CONFLICT DO NOTHING",
    /* units: the serial once provisioned, the latest write and the latest
     * outcome, each replacing the stored one only when newer */
    [TS_T_UNITS] =
        "INSERT INTO units (" TS_FOLD_UNIT_COLUMNS ") SELECT " TS_FOLD_UNIT_COLUMNS " FROM ts_units"
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
    /* lots: product and quantity, start, completion, each replacing the
     * stored one only when newer (or, for the start, earlier) */
    [TS_T_LOTS] = "INSERT INTO lots (" TS_FOLD_LOT_COLUMNS ") SELECT " TS_FOLD_LOT_COLUMNS " FROM ts_lots"
                  " ON CONFLICT (lot_id) DO UPDATE SET"
                  " product = coalesce(EXCLUDED.product, lots.product),"
                  " quantity = coalesce(EXCLUDED.quantity, lots.quantity),"
                  " started_at = least(lots.started_at, EXCLUDED.started_at),"
                  " " TS_IF_NEWER("lots", "completed_at", "completed_at") ","
                  " " TS_IF_NEWER("lots", "completed_at", "reported_passed") ","
                  " " TS_IF_NEWER("lots", "completed_at", "reported_failed"),
    /* seq runs: lock the batch's agents in one order (two instances never
     * deadlock on them), add the batch's runs, merge each agent's runs */
    [TS_T_SEQ] =
        "SELECT count(pg_advisory_xact_lock(hashtext(agent_key))) FROM"
        " (SELECT DISTINCT agent_key FROM ts_seq ORDER BY 1) a;"
        "INSERT INTO seq_ranges SELECT agent_key, lo, hi, clock_timestamp() FROM ts_seq;"
        "WITH old AS (DELETE FROM seq_ranges r WHERE r.agent_key IN (SELECT agent_key FROM ts_seq) RETURNING r.*),"
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

PGconn *ts_store_connect(const ts_config *cfg, char *err, size_t err_len)
{
    PGconn *db = ts_db_connect(cfg, err, err_len);
    char sql[2048];
    snprintf(sql, sizeof sql,
             "CREATE TEMP TABLE ts_stg_ev ON COMMIT DELETE ROWS AS SELECT %s FROM events WITH NO DATA;"
             "CREATE TEMP TABLE ts_units (LIKE units) ON COMMIT DELETE ROWS;"
             "CREATE TEMP TABLE ts_lots (LIKE lots) ON COMMIT DELETE ROWS;"
             "CREATE TEMP TABLE ts_revs (LIKE lot_revisions) ON COMMIT DELETE ROWS;"
             "CREATE TEMP TABLE ts_seq (agent_key text, lo bigint, hi bigint) ON COMMIT DELETE ROWS;"
             "CREATE TEMP TABLE ts_stg_field (serial text, time timestamptz, version text, sha256 text,"
             " source text, topic text, kafka_partition int, kafka_offset bigint) ON COMMIT DELETE ROWS;",
             ts_batch_event_columns());
    if (db && ts_db_exec(db, sql, err, err_len)) {
        PQfinish(db);
        db = NULL;
    }
    return db;
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

/* A partition's next offset only moves forward: an instance that lost the
 * partition mid-batch (a zombie after a rebalance) must not move it back. */
#define TS_OFFSET_ADVANCE                                                                                   \
    " ON CONFLICT (group_id, topic, kafka_partition) DO UPDATE"                                            \
    " SET next_offset = greatest(consumer_offsets.next_offset, EXCLUDED.next_offset),"                     \
    " updated_at = clock_timestamp()"

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
    int rc = ts_exec_params(db,
                            "INSERT INTO consumer_offsets (group_id, topic, kafka_partition, next_offset)"
                            " SELECT $1, unnest($2::text[]), unnest($3::int[]), unnest($4::bigint[])" TS_OFFSET_ADVANCE,
                            4, vals, NULL, NULL, NULL, err, err_len);
    free(topics.p), free(parts.p), free(offs.p);
    return rc;
}

/* The query tables' rows of b's events (all new): straight, then merged. */
static int ts_store_rows(PGconn *db, ts_batch *b, char *err, size_t err_len)
{
    ts_batch_fold(b);
    for (int t = 0; t < TS_T_N; t++)
        if (ts_copy(db, ts_batch_copy_target((ts_table)t), &b->rows[t], err, err_len)) return -1;
    for (int t = 0; t < TS_T_N; t++)
        if (ts_merge_sql[t] && b->rows[t].len && ts_db_exec(db, ts_merge_sql[t], err, err_len)) return -1;
    return 0;
}

/* A record's place in its topic: what RETURNING gives back of a new event. */
typedef struct ts_place {
    const char *topic;
    int32_t partition;
    int64_t offset;
} ts_place;

static int ts_cmp_place(const void *a, const void *b)
{
    const ts_place *x = a, *y = b;
    if (x->partition != y->partition) return x->partition < y->partition ? -1 : 1;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return strcmp(x->topic, y->topic);
}

/* The slow path's second half: b rebuilt from the records of the events
 * that went in (new, sorted by place), their rows stored. */
static int ts_store_new_rows(PGconn *db, const ts_batch *b, ts_place *new, size_t n_new, char *err, size_t err_len)
{
    qsort(new, n_new, sizeof *new, ts_cmp_place);
    ts_batch sub = {0};
    for (size_t i = 0; i < b->n_raw; i++) {
        const ts_raw *r = &b->raw[i];
        const char *topic;
        const void *key, *value;
        ts_batch_raw(b, i, &topic, &key, &value);
        ts_place p = {topic, r->partition, r->offset};
        if (r->kind == TS_REC_TRACE && bsearch(&p, new, n_new, sizeof *new, ts_cmp_place))
            ts_batch_add(&sub, topic, r->partition, r->offset, key, r->key_len, value, r->value_len, r->kind);
    }
    int rc = ts_store_rows(db, &sub, err, err_len);
    ts_batch_free(&sub);
    return rc;
}

/* The batch's events into the events table and the query tables' rows of
 * those new; res->stored. fast: straight, refused whole (SQLSTATE 23505) by
 * a duplicate; else through the staging table. */
static int ts_store_events(PGconn *db, ts_batch *b, int fast, ts_store_result *res, char *err, size_t err_len)
{
    char sql[1024];
    if (fast) {
        snprintf(sql, sizeof sql, "events (%s)", ts_batch_event_columns());
        if (ts_copy(db, sql, &b->event_rows, err, err_len) || ts_store_rows(db, b, err, err_len)) return -1;
        res->stored = b->n_events;
        return 0;
    }
    if (ts_copy(db, "ts_stg_ev", &b->event_rows, err, err_len)) return -1;
    snprintf(sql, sizeof sql,
             "INSERT INTO events (%s) SELECT * FROM ts_stg_ev ON CONFLICT DO NOTHING"
             " RETURNING topic, kafka_partition, kafka_offset",
             ts_batch_event_columns());
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ts_db_error(db, r, err, err_len);
        PQclear(r);
        return -1;
    }
    size_t n = (size_t)PQntuples(r);
    ts_place *new = malloc((n ? n : 1) * sizeof *new);
    if (!new) abort();
    for (size_t i = 0; i < n; i++)
        new[i] = (ts_place){PQgetvalue(r, (int)i, 0), (int32_t)strtol(PQgetvalue(r, (int)i, 1), NULL, 10),
                            strtoll(PQgetvalue(r, (int)i, 2), NULL, 10)};
    int rc = n ? ts_store_new_rows(db, b, new, n, err, err_len) : 0;
    free(new);
    PQclear(r);
    res->stored = n;
    return rc;
}

static int ts_store_txn(PGconn *db, ts_batch *b, const char *group, int fast, ts_store_result *res, char *err,
                        size_t err_len)
{
    if (ts_copy(db, "ts_stg_field", &b->field, err, err_len)) return -1;
    if (b->n_events) {
        if (ts_store_events(db, b, fast, res, err, err_len)) return -1;
        res->duplicates = b->n_events - res->stored;
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
static int ts_store_once(PGconn *db, ts_batch *b, const char *group, int fast, ts_store_result *res,
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

int ts_store_flush(PGconn *db, ts_batch *b, const char *group, ts_store_result *res, char *err,
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

int ts_store_lost(PGconn *db, const char *group, const char *topic, int32_t partition, int64_t from, int64_t to,
                  int first_read, char *err, size_t err_len)
{
    char part[16], lo[24], hi[24];
    snprintf(part, sizeof part, "%" PRId32, partition);
    snprintf(lo, sizeof lo, "%" PRId64, from);
    snprintf(hi, sizeof hi, "%" PRId64, to);
    const char *vals[] = {group, topic, part, lo, hi, first_read ? "t" : "f"};
    return ts_exec_params(db,
                          "WITH l AS (INSERT INTO lost_records (group_id, topic, kafka_partition, from_offset,"
                          " to_offset, before_first_read) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING)"
                          " INSERT INTO consumer_offsets (group_id, topic, kafka_partition, next_offset)"
                          " VALUES ($1, $2, $3, $5)" TS_OFFSET_ADVANCE,
                          6, vals, NULL, NULL, NULL, err, err_len);
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
