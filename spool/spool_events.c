/* SPDX-License-Identifier: Apache-2.0 */
/* spool_events.c - trace events in the spool: appending them inside the
 * caller's transaction, streaming the undelivered ones to the forwarder,
 * the delivery watermark, and the history behind `lineagent spool`
 * (stats, replay/export selection, retention). */
#include "spool_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const stmt_sql[ST_COUNT] = {
    [ST_EVENT_ADD] = "INSERT INTO events(seq, event_id, key, type, time_ms, payload)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_PENDING_PAGE] = "SELECT seq, event_id, key, type, time_ms, payload FROM events"
                        " WHERE seq > max(?1, " SPOOL_WATERMARK ") ORDER BY seq LIMIT ?2",
    [ST_WATERMARK_GET] = "SELECT " SPOOL_WATERMARK,
    /* Never back, and never past the last event handed out. */
    [ST_WATERMARK_SET] = "UPDATE meta SET value = ?1 WHERE name = 'delivered_upto' AND value < ?1"
                         " AND ?1 < (SELECT value FROM meta WHERE name = 'next_seq')",
    /* Within the same second the newest deliveries row moves up. */
    [ST_DELIVERY_MERGE] = "UPDATE deliveries SET upto_seq = ?1, delivered_ms = ?2"
                          " WHERE upto_seq = (SELECT max(upto_seq) FROM deliveries) AND delivered_ms / 1000 = ?2 / 1000",
    [ST_DELIVERY_ADD] = "INSERT INTO deliveries(upto_seq, delivered_ms) VALUES(?1, ?2)",
    [ST_PENDING_COUNT] = "SELECT count(*) FROM events WHERE seq > " SPOOL_WATERMARK,
    [ST_FIRST_PENDING] = "SELECT min(seq) FROM events WHERE seq > " SPOOL_WATERMARK,
};

static sqlite3_stmt *prep(spool *sp, enum spool_stmt id)
{
    return spool_prep(sp, id, stmt_sql[id]);
}

/* ---- events ---------------------------------------------------------- */

/* 0 outside a spool_begin transaction (seq starts at 1, so 0 is never valid). */
uint64_t spool_next_seq(spool *sp)
{
    if (!sp->in_txn) {
        spool_fail_msg(sp, "next_seq: no transaction is open");
        return 0;
    }
    return sp->next_seq++;
}

int spool_append_event(spool *sp, const spool_event *ev)
{
    if (!sp->in_txn) return spool_fail_msg(sp, "append_event: no transaction is open");
    /* Only a reserved seq keeps meta.next_seq ahead of every stored row. */
    if (ev->seq < sp->seq_base || ev->seq >= sp->next_seq)
        return spool_fail_msg(sp, "append_event: seq %llu was not reserved in this transaction",
                        (unsigned long long)ev->seq);
    sqlite3_stmt *st = prep(sp, ST_EVENT_ADD);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ev->seq);
    sqlite3_bind_text(st, 2, ev->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ev->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, ev->time_ms);
    spool_bind_blob(st, 6, ev->payload, ev->len);
    return spool_step_done(sp, st, "append_event");
}

/* An events row selected as (seq, event_id, key, type, time_ms, payload);
 * the pointers live until the statement steps again. */
static spool_event row_event(sqlite3_stmt *st)
{
    const void *payload = sqlite3_column_blob(st, 5);
    return (spool_event){
        .seq = (uint64_t)sqlite3_column_int64(st, 0),
        .event_id = (const char *)sqlite3_column_text(st, 1),
        .key = (const char *)sqlite3_column_text(st, 2),
        .type = (const char *)sqlite3_column_text(st, 3),
        .time_ms = sqlite3_column_int64(st, 4),
        .payload = payload ? payload : (const uint8_t *)"",
        .len = (size_t)sqlite3_column_bytes(st, 5),
    };
}

int spool_pending_page(spool *sp, uint64_t after_seq, int limit, spool_event_cb cb, void *ud)
{
    if (limit < 0) return spool_fail_msg(sp, "pending_page: negative limit %d", limit);
    sqlite3_stmt *st = prep(sp, ST_PENDING_PAGE);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)after_seq);
    sqlite3_bind_int(st, 2, limit);
    int visited = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        spool_event ev = row_event(st);
        visited++;
        if (cb(ud, &ev) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) visited = spool_fail(sp, "pending_page");
    sqlite3_reset(st);
    return visited;
}

/* One short transaction: the watermark and, at most once a second, a new
 * deliveries row. */
int spool_mark_delivered(spool *sp, uint64_t upto_seq, int64_t now_ms)
{
    if (spool_require_autocommit(sp, "mark_delivered") < 0) return -1;
    if (spool_txn(sp, ST_BEGIN, "mark_delivered: begin") < 0) return -1;
    sqlite3_stmt *st = prep(sp, ST_WATERMARK_SET);
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)upto_seq);
    if (spool_step_done(sp, st, "mark_delivered") < 0) goto fail;
    if (sqlite3_changes(sp->db) == 1) {
        enum spool_stmt ids[2] = {ST_DELIVERY_MERGE, ST_DELIVERY_ADD};
        for (int i = 0; i < 2; i++) {
            if (!(st = prep(sp, ids[i]))) goto fail;
            sqlite3_bind_int64(st, 1, (sqlite3_int64)upto_seq);
            sqlite3_bind_int64(st, 2, now_ms);
            if (spool_step_done(sp, st, "mark_delivered: deliveries") < 0) goto fail;
            if (sqlite3_changes(sp->db) == 1) break;
        }
    }
    if (spool_txn(sp, ST_COMMIT, "mark_delivered: commit") < 0) goto fail;
    return 0;
fail:
    spool_rollback_quiet(sp);
    return -1;
}

/* Runs a one-row, one-integer query; NULL reads as 0. */
static int query_int(spool *sp, enum spool_stmt id, const char *what, int64_t *out)
{
    sqlite3_stmt *st = prep(sp, id);
    if (!st) return -1;
    int ret = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        ret = spool_fail(sp, what);
    sqlite3_reset(st);
    return ret;
}

/* -1 on error. */
int64_t spool_pending_count(spool *sp)
{
    int64_t n = 0;
    return query_int(sp, ST_PENDING_COUNT, "pending_count", &n) < 0 ? -1 : n;
}

int64_t spool_delivered_upto(spool *sp)
{
    int64_t seq = 0;
    return query_int(sp, ST_WATERMARK_GET, "delivered_upto", &seq) < 0 ? -1 : seq;
}

/* 0 on error as well; spool_errmsg tells them apart. */
uint64_t spool_first_pending(spool *sp)
{
    int64_t seq = 0;
    return query_int(sp, ST_FIRST_PENDING, "first_pending", &seq) < 0 ? 0 : (uint64_t)seq;
}

/* ---- history: stats, selection, retention ----------------------------
 * Ad hoc statements, prepared per call: these run seldom (tools, a prune
 * every few seconds) and their SQL depends on the selection. */

static int sql_int(spool *sp, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sp->db, sql, -1, &st, NULL) != SQLITE_OK) return spool_fail(sp, sql);
    int rc = sqlite3_step(st), ret = 0;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        ret = spool_fail(sp, sql);
    sqlite3_finalize(st);
    return ret;
}

int64_t spool_used_bytes(spool *sp)
{
    int64_t pages, free_pages, page_size;
    if (sql_int(sp, "PRAGMA page_count", &pages) < 0 || sql_int(sp, "PRAGMA freelist_count", &free_pages) < 0 ||
        sql_int(sp, "PRAGMA page_size", &page_size) < 0)
        return -1;
    return (pages - free_pages) * page_size;
}

int spool_get_stats(spool *sp, spool_stats *out)
{
    memset(out, 0, sizeof *out);
    int64_t pages, page_size, seq;
    out->pending = spool_pending_count(sp);
    if (out->pending < 0 ||
        sql_int(sp, "SELECT coalesce((SELECT time_ms FROM events WHERE seq > " SPOOL_WATERMARK " ORDER BY seq LIMIT 1), 0)",
                &out->oldest_pending_ms) < 0 ||
        sql_int(sp, "SELECT count(*) FROM events WHERE seq <= " SPOOL_WATERMARK, &out->delivered) < 0 ||
        sql_int(sp, "SELECT coalesce((SELECT delivered_ms FROM deliveries ORDER BY upto_seq DESC LIMIT 1), 0)", &out->last_delivered_ms) < 0 ||
        sql_int(sp, "SELECT value FROM meta WHERE name = 'next_seq'", &seq) < 0 ||
        sql_int(sp, "PRAGMA page_count", &pages) < 0 || sql_int(sp, "PRAGMA page_size", &page_size) < 0)
        return -1;
    out->next_seq = (uint64_t)seq;
    out->file_bytes = pages * page_size;
    out->used_bytes = spool_used_bytes(sp);
    return out->used_bytes < 0 ? -1 : 0;
}

/* WHERE clause for a selection; parameters ?1..?6 are bound by bind_sel. */
#define SEL_WHERE                                                                      \
    " WHERE seq > ?1 AND (?2 OR seq <= " SPOOL_WATERMARK ") AND (?3 = 0 OR time_ms >= ?3)" \
    " AND (?4 = 0 OR time_ms < ?4) AND (?5 = 0 OR seq >= ?5) AND (?6 = 0 OR seq < ?6)"   \
    " AND (?7 IS NULL OR key = ?7)"

static void bind_sel(sqlite3_stmt *st, const spool_selection *sel, uint64_t after_seq)
{
    sqlite3_bind_int64(st, 1, (sqlite3_int64)after_seq);
    sqlite3_bind_int(st, 2, sel->include_pending != 0);
    sqlite3_bind_int64(st, 3, sel->since_ms);
    sqlite3_bind_int64(st, 4, sel->until_ms);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)sel->from_seq);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)sel->until_seq);
    if (sel->lot) sqlite3_bind_text(st, 7, sel->lot, -1, SQLITE_STATIC);
}

int spool_select_page(spool *sp, const spool_selection *sel, uint64_t after_seq, int limit,
                      spool_history_cb cb, void *ud)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sp->db,
                           "SELECT seq, event_id, key, type, time_ms, payload,"
                           " coalesce((SELECT delivered_ms FROM deliveries WHERE upto_seq >= seq"
                           " ORDER BY upto_seq LIMIT 1), 0)"
                           " FROM events" SEL_WHERE " ORDER BY seq LIMIT ?8",
                           -1, &st, NULL) != SQLITE_OK)
        return spool_fail(sp, "select_page");
    bind_sel(st, sel, after_seq);
    sqlite3_bind_int(st, 8, limit);
    int visited = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        spool_event ev = row_event(st);
        visited++;
        if (cb(ud, &ev, sqlite3_column_int64(st, 6)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) visited = spool_fail(sp, "select_page");
    sqlite3_finalize(st);
    return visited;
}

int64_t spool_select_count(spool *sp, const spool_selection *sel)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(sp->db, "SELECT count(*) FROM events" SEL_WHERE, -1, &st, NULL) != SQLITE_OK)
        return spool_fail(sp, "select_count");
    bind_sel(st, sel, 0);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : spool_fail(sp, "select_count");
    sqlite3_finalize(st);
    return n;
}

int spool_prune_delivered(spool *sp, int64_t before_ms, int batch)
{
    if (spool_require_autocommit(sp, "prune_delivered") < 0) return -1;
    /* The batch keeps the write lock short so the line's commits are not
     * held up. Expired events are a prefix of the spool: everything up to
     * the highest watermark recorded before before_ms, looked for among the
     * batch oldest deliveries rows (each covers at least one event), not in
     * a scan of days of them every second. deliveries rows below the oldest
     * event left describe nothing any more; the newest is kept for
     * last_delivered_ms. */
    static const char *const sql[2] = {
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= (SELECT coalesce(max(upto_seq), 0)"
        " FROM (SELECT upto_seq, delivered_ms FROM deliveries ORDER BY upto_seq LIMIT ?2)"
        " WHERE delivered_ms < ?1) ORDER BY seq LIMIT ?2)",
        "DELETE FROM deliveries WHERE upto_seq < (SELECT max(upto_seq) FROM deliveries)"
        " AND upto_seq < coalesce((SELECT min(seq) FROM events), " SPOOL_WATERMARK " + 1)",
    };
    if (spool_txn(sp, ST_BEGIN, "prune_delivered: begin") < 0) return -1;
    int n = 0;
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(sp->db, sql[i], -1, &st, NULL) != SQLITE_OK) {
            spool_fail(sp, "prune_delivered");
            goto fail;
        }
        sqlite3_bind_int64(st, 1, before_ms);
        sqlite3_bind_int(st, 2, batch);
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) spool_fail(sp, "prune_delivered");
        if (i == 0) n = sqlite3_changes(sp->db);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) goto fail;
    }
    if (spool_txn(sp, ST_COMMIT, "prune_delivered: commit") < 0) goto fail;
    return n;
fail:
    spool_rollback_quiet(sp);
    return -1;
}
