/* SPDX-License-Identifier: Apache-2.0 */
/* test_spool_history.c - unit tests for the spool's history functions behind
 * `lineagent spool stats|replay|export` and retention: selection by time,
 * seq and lot (delivered only unless asked), paging in seq order, counts,
 * stats figures, delivery times, pruning that never touches undelivered
 * events, and the full-disk error being recognised (with a page limit
 * standing in for a full disk). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>

#include "spool_fixture.h"

/* 30 events: seq 1..30, time_ms = 1000 * seq, key LOT-A for odd seq and
 * LOT-B for even; seq 1..20 delivered at 50000 + 1000 * seq. */
static void fill(spool *sp)
{
    char id[32];
    assert_int_equal(spool_begin(sp), 0);
    for (int i = 1; i <= 30; i++) {
        uint64_t seq = spool_next_seq(sp);
        assert_int_equal(seq, (uint64_t)i);
        snprintf(id, sizeof id, "id-%d", i);
        uint8_t payload[4] = {(uint8_t)i, 1, 2, 3};
        spool_event ev = {.seq = seq, .event_id = id, .key = i % 2 ? "LOT-A" : "LOT-B", .type = "unit_written",
                          .time_ms = 1000LL * i, .payload = payload, .len = sizeof payload};
        assert_int_equal(spool_append_event(sp, &ev), 0);
    }
    assert_int_equal(spool_commit(sp), 0);
    for (uint64_t s = 1; s <= 20; s++) assert_int_equal(spool_mark_delivered(sp, s, 50000 + 1000 * (int64_t)s), 0);
}

typedef struct got {
    uint64_t seq[64];
    int64_t delivered[64];
    int n;
} got;

static int got_cb(void *ud, const spool_event *ev, int64_t delivered_ms)
{
    got *g = ud;
    char id[32];
    snprintf(id, sizeof id, "id-%llu", (unsigned long long)ev->seq);
    assert_string_equal(ev->event_id, id);
    assert_string_equal(ev->key, ev->seq % 2 ? "LOT-A" : "LOT-B");
    assert_int_equal(ev->len, 4);
    assert_int_equal(ev->payload[0], (uint8_t)ev->seq);
    g->delivered[g->n] = delivered_ms;
    g->seq[g->n++] = ev->seq;
    return 0;
}

/* Every page of a selection, paged by `page`. */
static void select_all(spool *sp, const spool_selection *sel, int page, got *g)
{
    memset(g, 0, sizeof *g);
    uint64_t after = 0;
    int n;
    while ((n = spool_select_page(sp, sel, after, page, got_cb, g)) == page) after = g->seq[g->n - 1];
    assert_true(n >= 0);
    for (int i = 1; i < g->n; i++) assert_true(g->seq[i] > g->seq[i - 1]);
}

static void test_select(void **state)
{
    fixture *f = *state;
    fill(f->sp);
    got g;

    spool_selection all = {.from_seq = 1};
    select_all(f->sp, &all, 7, &g);
    assert_int_equal(g.n, 20); /* delivered only */
    assert_int_equal(g.seq[0], 1);
    assert_int_equal(g.seq[19], 20);
    assert_int_equal(g.delivered[4], 55000);
    assert_int_equal(spool_select_count(f->sp, &all), 20);

    spool_selection pend = {.from_seq = 1, .include_pending = 1};
    select_all(f->sp, &pend, 1000, &g);
    assert_int_equal(g.n, 30);
    assert_int_equal(g.delivered[29], 0);

    spool_selection seqs = {.from_seq = 5, .until_seq = 9};
    select_all(f->sp, &seqs, 2, &g);
    assert_int_equal(g.n, 4);
    assert_int_equal(g.seq[0], 5);
    assert_int_equal(g.seq[3], 8);

    spool_selection times = {.since_ms = 3000, .until_ms = 6000};
    select_all(f->sp, &times, 100, &g);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.seq[0], 3);
    assert_int_equal(spool_select_count(f->sp, &times), 3);

    spool_selection lot = {.lot = "LOT-B"};
    select_all(f->sp, &lot, 3, &g);
    assert_int_equal(g.n, 10);
    for (int i = 0; i < g.n; i++) assert_int_equal(g.seq[i] % 2, 0);

    spool_selection lot_seq = {.lot = "LOT-A", .from_seq = 10};
    select_all(f->sp, &lot_seq, 100, &g);
    assert_int_equal(g.n, 5); /* 11 13 15 17 19 */
    assert_int_equal(g.seq[0], 11);

    spool_selection none = {.lot = "LOT-NONE"};
    assert_int_equal(spool_select_count(f->sp, &none), 0);
}

static void test_stats(void **state)
{
    fixture *f = *state;
    spool_stats s;
    assert_int_equal(spool_get_stats(f->sp, &s), 0);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.oldest_pending_ms, 0);
    assert_int_equal(s.last_delivered_ms, 0);
    assert_int_equal(s.next_seq, 1);
    fill(f->sp);
    assert_int_equal(spool_get_stats(f->sp, &s), 0);
    assert_int_equal(s.pending, 10);
    assert_int_equal(s.oldest_pending_ms, 21000);
    assert_int_equal(s.delivered, 20);
    assert_int_equal(s.last_delivered_ms, 70000);
    assert_int_equal(s.next_seq, 31);
    assert_true(s.file_bytes > 0);
    assert_true(s.used_bytes > 0 && s.used_bytes <= s.file_bytes);
    assert_int_equal(spool_used_bytes(f->sp), s.used_bytes);
}

static void test_prune(void **state)
{
    fixture *f = *state;
    fill(f->sp);
    /* delivered before 60500: seq 1..10, in batches of 4 */
    assert_int_equal(spool_prune_delivered(f->sp, 60500, 4), 4);
    assert_int_equal(spool_prune_delivered(f->sp, 60500, 4), 4);
    assert_int_equal(spool_prune_delivered(f->sp, 60500, 4), 2);
    assert_int_equal(spool_prune_delivered(f->sp, 60500, 4), 0);
    spool_selection all = {.from_seq = 1, .include_pending = 1};
    assert_int_equal(spool_select_count(f->sp, &all), 20);
    /* everything delivered, however old: undelivered stay */
    assert_int_equal(spool_prune_delivered(f->sp, INT64_MAX, 1000), 10);
    assert_int_equal(spool_pending_count(f->sp), 10);
    assert_int_equal(spool_first_pending(f->sp), 21);
    assert_int_equal(spool_select_count(f->sp, &all), 10);
    /* seq carries on after pruning */
    assert_int_equal(spool_begin(f->sp), 0);
    assert_int_equal(spool_next_seq(f->sp), 31);
    spool_rollback(f->sp);
    /* not inside a caller's transaction */
    assert_int_equal(spool_begin(f->sp), 0);
    assert_int_equal(spool_prune_delivered(f->sp, INT64_MAX, 10), -1);
    spool_rollback(f->sp);
}

/* Deliveries within one second share a row, whose time is the latest of
 * them: an event's delivery time is never earlier than its acknowledgement,
 * and pruning keeps the rows that still describe an event, plus the newest. */
static void test_delivery_times(void **state)
{
    fixture *f = *state;
    fill(f->sp); /* 21..30 pending */
    assert_int_equal(spool_mark_delivered(f->sp, 23, 80100), 0);
    assert_int_equal(spool_mark_delivered(f->sp, 25, 80900), 0);
    assert_int_equal(spool_mark_delivered(f->sp, 27, 81000), 0);
    got g;
    spool_selection from21 = {.from_seq = 21};
    select_all(f->sp, &from21, 100, &g);
    assert_int_equal(g.n, 7);
    assert_int_equal(g.delivered[0], 80900); /* 21..25: one row */
    assert_int_equal(g.delivered[4], 80900);
    assert_int_equal(g.delivered[5], 81000);
    while (spool_prune_delivered(f->sp, 80950, 3) > 0) {
    }
    spool_selection all = {.from_seq = 1, .include_pending = 1};
    select_all(f->sp, &all, 100, &g);
    assert_int_equal(g.n, 5); /* 26..30 */
    assert_int_equal(g.seq[0], 26);
    assert_int_equal(g.delivered[0], 81000);
    assert_int_equal(g.delivered[2], 0);
    assert_int_equal(spool_prune_delivered(f->sp, INT64_MAX, 100), 2);
    spool_stats s;
    assert_int_equal(spool_get_stats(f->sp, &s), 0);
    assert_int_equal(s.last_delivered_ms, 81000);
    assert_int_equal(s.delivered, 0);
    assert_int_equal(s.pending, 3);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM deliveries", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A full disk as SQLite reports it: SQLITE_FULL, here from a page limit on
 * a second connection. The failed transaction leaves what was committed
 * intact and the handle usable once there is room again. */
static void test_full_is_recognised(void **state)
{
    fixture *f = *state;
    fill(f->sp);
    spool_stats s;
    assert_int_equal(spool_get_stats(f->sp, &s), 0);
    spool *sp2;
    char err[256];
    assert_int_equal(spool_open(&sp2, f->path, NULL, err, sizeof err), 0);
    assert_int_equal(spool_set_max_pages(sp2, (int)(s.file_bytes / 4096) + 2), 0);
    uint8_t *big = calloc(1, 64 * 1024);
    assert_non_null(big);
    assert_int_equal(spool_begin(sp2), 0);
    int rc = 0;
    for (int i = 0; i < 64 && rc == 0; i++) {
        char id[32];
        snprintf(id, sizeof id, "big-%d", i);
        spool_event ev = {.seq = spool_next_seq(sp2), .event_id = id, .key = "LOT-A", .type = "x",
                          .time_ms = 1, .payload = big, .len = 64 * 1024};
        rc = spool_append_event(sp2, &ev);
    }
    if (rc == 0) rc = spool_commit(sp2);
    else spool_rollback(sp2);
    assert_int_equal(rc, -1);
    assert_true(spool_error_is_full(sp2));
    assert_non_null(strstr(spool_errmsg(sp2), "full"));
    /* nothing committed was touched, and seq has no gap */
    assert_int_equal(spool_pending_count(f->sp), 10);
    assert_int_equal(spool_get_stats(f->sp, &s), 0);
    assert_int_equal(s.next_seq, 31);
    /* another error is not "full" */
    assert_int_equal(spool_begin(sp2), 0);
    assert_int_equal(spool_begin(sp2), -1);
    assert_false(spool_error_is_full(sp2));
    spool_rollback(sp2);
    spool_close(sp2);
    /* room again: the same write commits */
    assert_int_equal(spool_kv_put(f->sp, "t", "k", big, 64 * 1024), 0);
    free(big);
}

/* The child's side: a fresh process (exec'ed, so no SQLite state inherited
 * from us) opens the file, counts pending events and closes; closing may
 * checkpoint and delete the WAL if it believes it is the last connection. */
static int child_count_pending(const char *path)
{
    sqlite3 *db;
    long long n = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db,
                               "SELECT count(*) FROM events"
                               " WHERE seq > (SELECT value FROM meta WHERE name = 'delivered_upto')",
                               -1, &st, NULL) ==
                SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    printf("%lld\n", n);
    return 0;
}

/* Pending count as another process (say `lineagent spool stats`) sees it. */
static int64_t pending_seen_by_child(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/proc/%d/exe --count-pending %s", (int)getpid(), path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    long long n = -2;
    assert_int_equal(fscanf(p, "%lld", &n), 1);
    assert_int_equal(pclose(p), 0);
    return n;
}

/* A second handle opened in this process must not drop the locks the first
 * one holds (POSIX locks die with any close() of the file): else another
 * process's close deletes the WAL under us and later commits are lost to
 * everyone else. */
static void test_second_handle_keeps_locks(void **state)
{
    fixture *f = *state;
    fill(f->sp);
    spool *sp2;
    char err[256];
    assert_int_equal(spool_open(&sp2, f->path, NULL, err, sizeof err), 0);
    assert_int_equal(pending_seen_by_child(f->path), 10);
    assert_int_equal(spool_mark_delivered(f->sp, 21, 99999), 0);
    assert_int_equal(spool_pending_count(f->sp), 9);
    assert_int_equal(pending_seen_by_child(f->path), 9);
    spool_close(sp2);
    assert_int_equal(spool_mark_delivered(f->sp, 22, 99999), 0);
    assert_int_equal(pending_seen_by_child(f->path), 8);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--count-pending") == 0) return child_count_pending(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_select, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_times, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_full_is_recognised, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_second_handle_keeps_locks, setup_open, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
