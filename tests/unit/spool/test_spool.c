/* SPDX-License-Identifier: Apache-2.0 */
/* test_spool.c - unit tests for the SQLite spool: file safety (mode, refusing
 * foreign files untouched), gap-free sequence numbers across rollback, reopen
 * and several handles, group commit, delivery bookkeeping and the schema 1
 * migration. The resume state tables are in test_spool_state.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_fixture.h"

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static void side_path(char *out, size_t cap, const char *path, const char *suffix)
{
    snprintf(out, cap, "%s%s", path, suffix);
}

/* ---- events helpers ---------------------------------------------------- */

typedef struct collected {
    uint64_t seqs[4096];
    int n;
    int stop_after; /* 0: never stop early */
} collected;

static int collect_cb(void *ud, const spool_event *ev)
{
    collected *c = ud;
    uint8_t expect[300];
    size_t len = make_payload(ev->seq, expect);
    assert_int_equal(ev->len, len);
    assert_non_null(ev->payload);
    if (len) assert_memory_equal(ev->payload, expect, len);
    assert_string_equal(ev->key, "LOT-1");
    assert_string_equal(ev->type, "unit_written");
    assert_int_equal(ev->time_ms, 1000 + (int64_t)ev->seq);
    assert_non_null(strstr(ev->event_id, "-"));
    assert_true(c->n < 4096);
    c->seqs[c->n++] = ev->seq;
    return c->stop_after && c->n >= c->stop_after;
}

/* All pending seqs, paging 97 at a time. */
static void collect_all(spool *sp, collected *c)
{
    uint64_t after = 0;
    c->n = 0;
    for (;;) {
        int before = c->n;
        int got = spool_pending_page(sp, after, 97, collect_cb, c);
        assert_int_equal(got, c->n - before);
        if (got == 0) break;
        after = c->seqs[c->n - 1];
    }
}

static void assert_consecutive(const collected *c, uint64_t first, int n)
{
    assert_int_equal(c->n, n);
    for (int i = 0; i < n; i++) assert_int_equal(c->seqs[i], first + (uint64_t)i);
}

/* ---- file safety ------------------------------------------------------- */

static void test_create_mode_0600(void **state)
{
    fixture *f = *state;
    mode_t old = umask(0); /* the modes must not depend on the umask */
    spool *sp = open_ok(f->path, NULL);
    append_batch(sp, 1, "a"); /* the -wal and -shm files exist from the first write */
    umask(old);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char side[160];
    side_path(side, sizeof side, f->path, "-wal");
    assert_int_equal(stat(side, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    side_path(side, sizeof side, f->path, "-shm");
    assert_int_equal(stat(side, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    spool_close(sp);

    /* WAL mode, application_id and user_version are what a reader sees. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT application_id FROM pragma_application_id),"
                                        " (SELECT user_version FROM pragma_user_version),"
                                        " (SELECT journal_mode FROM pragma_journal_mode)",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(q, 0), 0x4C4E4147);
    assert_int_equal(sqlite3_column_int(q, 1), 5);
    assert_string_equal((const char *)sqlite3_column_text(q, 2), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

/* keep_wal: leave the changes in the WAL, not checkpointed into the file. */
static void make_foreign(const char *path, const char *extra_sql, int keep_wal)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (keep_wal) sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    char *msg = NULL;
    int rc = sqlite3_exec(db, extra_sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fail_msg("%s", msg);
    sqlite3_close(db);
}

/* Opens, expects refusal naming want, and checks the bytes did not change;
 * no_side: not even a -wal file may appear beside it. */
static void assert_refused_untouched(const char *path, const char *want, int no_side)
{
    size_t len0, len1;
    unsigned char *before = read_file(path, &len0);
    spool *sp = (spool *)0x1;
    char err[512] = "";
    assert_int_equal(spool_open(&sp, path, NULL, err, sizeof err), -1);
    assert_null(sp);
    if (!strstr(err, want)) fail_msg("error \"%s\" lacks \"%s\"", err, want);
    unsigned char *after = read_file(path, &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    free(before);
    free(after);
    if (no_side) {
        char side[600];
        side_path(side, sizeof side, path, "-wal");
        assert_false(exists(side));
        side_path(side, sizeof side, path, "-journal");
        assert_false(exists(side));
    }
}

static void test_foreign_sqlite_refused(void **state)
{
    fixture *f = *state;
    make_foreign(f->path, "CREATE TABLE parts(pn TEXT, qty INTEGER);"
                          "INSERT INTO parts VALUES('R1', 10), ('C7', 3);",
                 0);
    assert_refused_untouched(f->path, "is not a lineagent spool (application_id 0x00000000)", 1);
}

static void test_foreign_app_id_refused(void **state)
{
    fixture *f = *state;
    /* A WAL database of some other application, otherwise empty. */
    make_foreign(f->path, "PRAGMA journal_mode=WAL; PRAGMA application_id=0x12345678;", 0);
    assert_refused_untouched(f->path, "(application_id 0x12345678)", 1);
}

static void test_non_database_refused(void **state)
{
    fixture *f = *state;
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    uint32_t x = 2463534242u;
    for (int i = 0; i < 8192; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        fputc((int)(x & 0xff), fp);
    }
    fclose(fp);
    assert_refused_untouched(f->path, "file is not a database", 1);

    fp = fopen(f->path, "wb");
    assert_non_null(fp);
    fputs("hello, not a database\n", fp);
    fclose(fp);
    assert_refused_untouched(f->path, "file is not a database", 1);
}

static void test_newer_schema_refused(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    append_batch(sp, 3, "a");
    spool_close(sp);
    /* The newer version is only in the WAL: the check must see it there, and
     * our close must not checkpoint it into the file. */
    make_foreign(f->path, "PRAGMA user_version = 6;", 1);
    assert_refused_untouched(f->path, "schema version 6 is newer than supported", 0);
}

static void test_bad_synchronous_refused(void **state)
{
    fixture *f = *state;
    spool *sp = NULL;
    char err[256] = "";
    spool_options o = {.synchronous = "BOGUS"};
    assert_int_equal(spool_open(&sp, f->path, &o, err, sizeof err), -1);
    assert_null(sp);
    assert_non_null(strstr(err, "BOGUS"));
    assert_false(exists(f->path)); /* refused before anything was created */

    o.synchronous = "NORMAL";
    o.busy_timeout_ms = 100;
    sp = open_ok(f->path, &o);
    append_batch(sp, 3, "n");
    assert_int_equal(spool_pending_count(sp), 3);
    spool_close(sp);
}

static void test_empty_file_is_initialised(void **state)
{
    fixture *f = *state;
    FILE *fp = fopen(f->path, "wb"); /* as left by a crash right after creating it */
    assert_non_null(fp);
    fclose(fp);
    spool *sp = open_ok(f->path, NULL);
    assert_int_equal(append_batch(sp, 2, "a"), 1);
    spool_close(sp);
}

static void test_open_missing_dir_fails(void **state)
{
    fixture *f = *state;
    char path[200];
    snprintf(path, sizeof path, "%s/no/such/dir/spool.db", f->dir);
    spool *sp = NULL;
    char err[256] = "";
    assert_int_equal(spool_open(&sp, path, NULL, err, sizeof err), -1);
    assert_null(sp);
    assert_non_null(strstr(err, "No such file"));
}

/* ---- sequence numbers -------------------------------------------------- */

static void test_append_reopen_in_order(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    assert_int_equal(append_batch(sp, 1000, "a"), 1);
    spool_close(sp);

    sp = open_ok(f->path, NULL);
    collected *c = calloc(1, sizeof *c);
    assert_non_null(c);
    collect_all(sp, c);
    assert_consecutive(c, 1, 1000);
    assert_int_equal(spool_pending_count(sp), 1000);
    assert_int_equal(spool_first_pending(sp), 1);
    free(c);
    spool_close(sp);
}

static void test_seq_rollback_and_reopen(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    assert_int_equal(spool_next_seq(sp), 0); /* not inside a transaction */

    assert_int_equal(append_batch(sp, 3, "a"), 1);
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_next_seq(sp), 4);
    assert_int_equal(spool_next_seq(sp), 5);
    spool_rollback(sp);
    assert_int_equal(append_batch(sp, 2, "b"), 4); /* 4 and 5 handed back */

    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_next_seq(sp), 6);
    spool_rollback(sp);
    /* A transaction that reserves nothing leaves the counter alone. */
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_commit(sp), 0);
    spool_close(sp);

    sp = open_ok(f->path, NULL);
    assert_int_equal(append_batch(sp, 2, "c"), 6);
    collected *c = calloc(1, sizeof *c);
    assert_non_null(c);
    collect_all(sp, c);
    assert_consecutive(c, 1, 7);
    free(c);
    spool_close(sp);
}

static void test_seq_survives_pruning(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    append_batch(sp, 10, "a");
    assert_int_equal(spool_mark_delivered(sp, 10, 5000), 0);
    spool_close(sp);

    /* Whatever prunes delivered rows, seq must not start over. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM events", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    sp = open_ok(f->path, NULL);
    assert_int_equal(spool_pending_count(sp), 0);
    assert_int_equal(append_batch(sp, 1, "b"), 11);
    spool_close(sp);
}

static void test_two_handles_interleaved(void **state)
{
    fixture *f = *state;
    spool *a = open_ok(f->path, NULL), *b = open_ok(f->path, NULL);
    assert_int_equal(append_batch(a, 3, "a1"), 1);
    assert_int_equal(append_batch(b, 2, "b1"), 4);
    assert_int_equal(spool_begin(b), 0);
    assert_int_equal(spool_next_seq(b), 6);
    spool_rollback(b);
    assert_int_equal(append_batch(a, 1, "a2"), 6);
    assert_int_equal(append_batch(b, 4, "b2"), 7);
    assert_int_equal(append_batch(a, 2, "a3"), 11);

    collected *c = calloc(1, sizeof *c);
    assert_non_null(c);
    collect_all(b, c); /* b sees a's commits */
    assert_consecutive(c, 1, 12);
    free(c);
    spool_close(a);
    spool_close(b);
}

static void test_busy_leaves_handle_usable(void **state)
{
    fixture *f = *state;
    spool *a = open_ok(f->path, NULL);
    spool_options o = {.busy_timeout_ms = 50};
    spool *b = open_ok(f->path, &o);
    assert_int_equal(spool_begin(a), 0);
    assert_int_equal(spool_begin(b), -1); /* a holds the write lock */
    assert_non_null(strstr(spool_errmsg(b), "locked"));
    assert_int_equal(spool_next_seq(b), 0);
    assert_int_equal(spool_pending_count(b), 0); /* readers are not blocked */
    assert_int_equal(spool_next_seq(a), 1);
    spool_rollback(a);
    assert_int_equal(append_batch(b, 1, "b"), 1);
    spool_close(a);
    spool_close(b);
}

typedef struct worker {
    const char *path;
    int id;
} worker;

enum { WORKER_TXNS = 60, WORKER_EVENTS = 5 };

static void *worker_main(void *arg)
{
    worker *w = arg;
    spool *sp = NULL;
    char err[256];
    if (spool_open(&sp, w->path, NULL, err, sizeof err) != 0) return (void *)1;
    uintptr_t bad = 0;
    uint8_t payload[300];
    for (int t = 0; t < WORKER_TXNS && !bad; t++) {
        if (spool_begin(sp) != 0) {
            bad = 2;
            break;
        }
        for (int i = 0; i < WORKER_EVENTS; i++) {
            char id[64];
            uint64_t seq = spool_next_seq(sp);
            snprintf(id, sizeof id, "w%d-%d-%d", w->id, t, i);
            spool_event ev = {.seq = seq, .event_id = id, .key = "LOT-1", .type = "unit_written",
                              .time_ms = 1000 + (int64_t)seq, .payload = payload,
                              .len = make_payload(seq, payload)};
            if (spool_append_event(sp, &ev) != 0) bad = 3;
        }
        /* Every third transaction of worker 1 is abandoned. */
        if (w->id == 1 && t % 3 == 0)
            spool_rollback(sp);
        else if (spool_commit(sp) != 0)
            bad = 4;
    }
    spool_close(sp);
    return (void *)bad;
}

static void test_threads_no_gaps(void **state)
{
    fixture *f = *state;
    spool_close(open_ok(f->path, NULL));
    pthread_t th[2];
    worker w[2] = {{f->path, 0}, {f->path, 1}};
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    void *r[2];
    for (int i = 0; i < 2; i++) pthread_join(th[i], &r[i]); /* all, before any assert */
    for (int i = 0; i < 2; i++) assert_int_equal((uintptr_t)r[i], 0);
    spool *sp = open_ok(f->path, NULL);
    collected *c = calloc(1, sizeof *c);
    assert_non_null(c);
    collect_all(sp, c);
    int committed = (WORKER_TXNS + WORKER_TXNS - WORKER_TXNS / 3) * WORKER_EVENTS;
    assert_consecutive(c, 1, committed);
    free(c);
    spool_close(sp);
}

static void *opener_main(void *arg)
{
    spool *sp = NULL;
    char err[256];
    if (spool_open(&sp, arg, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "concurrent open: %s\n", err);
        return (void *)1;
    }
    spool_close(sp);
    return NULL;
}

/* The first open of a new file races to create the schema and to switch it
 * to WAL; repeated, because one round rarely hits the window. */
static void test_concurrent_open_of_new_file(void **state)
{
    fixture *f = *state;
    for (int round = 0; round < 50; round++) {
        char path[160];
        snprintf(path, sizeof path, "%s/race-%d.db", f->dir, round);
        pthread_t th[4];
        void *r[4];
        for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, opener_main, path), 0);
        for (int i = 0; i < 4; i++) pthread_join(th[i], &r[i]); /* all, before any assert */
        for (int i = 0; i < 4; i++) assert_null(r[i]);
        spool *sp = open_ok(path, NULL);
        assert_int_equal(append_batch(sp, 1, "x"), 1);
        spool_close(sp);
    }
}

/* ---- delivery ---------------------------------------------------------- */

static void test_mark_delivered(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    assert_int_equal(spool_pending_count(sp), 0);
    assert_int_equal(spool_first_pending(sp), 0);
    assert_int_equal(spool_delivered_upto(sp), 0);
    append_batch(sp, 10, "a");
    assert_int_equal(spool_pending_count(sp), 10);
    assert_int_equal(spool_first_pending(sp), 1);

    assert_int_equal(spool_mark_delivered(sp, 3, 7000), 0);
    assert_int_equal(spool_pending_count(sp), 7);
    assert_int_equal(spool_first_pending(sp), 4);
    assert_int_equal(spool_delivered_upto(sp), 3);
    /* The watermark never moves back, nor past the last event. */
    assert_int_equal(spool_mark_delivered(sp, 2, 7001), 0);
    assert_int_equal(spool_delivered_upto(sp), 3);
    assert_int_equal(spool_mark_delivered(sp, 42, 7001), 0);
    assert_int_equal(spool_delivered_upto(sp), 3);

    collected *c = calloc(1, sizeof *c);
    assert_non_null(c);
    collect_all(sp, c);
    assert_consecutive(c, 4, 7);

    /* Durable. */
    assert_int_equal(spool_mark_delivered(sp, 10, 7003), 0);
    spool_close(sp);
    sp = open_ok(f->path, NULL);
    assert_int_equal(spool_pending_count(sp), 0);
    assert_int_equal(spool_first_pending(sp), 0);
    assert_int_equal(spool_delivered_upto(sp), 10);
    c->n = 0;
    assert_int_equal(spool_pending_page(sp, 0, 100, collect_cb, c), 0);
    /* New events are pending above the watermark. */
    append_batch(sp, 2, "b");
    assert_int_equal(spool_pending_count(sp), 2);
    assert_int_equal(spool_first_pending(sp), 11);

    /* Not inside a caller's transaction: it commits on its own. */
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_mark_delivered(sp, 11, 1), -1);
    assert_non_null(strstr(spool_errmsg(sp), "mark_delivered"));
    spool_rollback(sp);
    free(c);
    spool_close(sp);
}

/* A spool of schema version 1 flagged every delivered row; opening it
 * migrates to the watermark in place: the delivered prefix stays delivered
 * with its times, the rest is pending, and nothing is lost. */
typedef struct seq_list {
    uint64_t *seqs;
    size_t *n;
} seq_list;

static int seq_cb(void *ud, const spool_event *ev)
{
    seq_list *l = ud;
    l->seqs[(*l->n)++] = ev->seq;
    return 0;
}

static void test_migrates_v1(void **state)
{
    fixture *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
                     "INSERT INTO meta VALUES('next_seq', 7);"
                     "CREATE TABLE events(seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,"
                     " key TEXT NOT NULL, type TEXT NOT NULL, time_ms INTEGER NOT NULL, payload BLOB NOT NULL,"
                     " delivered_ms INTEGER);"
                     "CREATE INDEX events_pending ON events(seq) WHERE delivered_ms IS NULL;"
                     "INSERT INTO events VALUES(1, 'e1', 'L', 't', 1, x'01', 5000), (2, 'e2', 'L', 't', 2, x'02', 5000),"
                     " (3, 'e3', 'L', 't', 3, x'03', 9000), (4, 'e4', 'L', 't', 4, x'04', NULL),"
                     " (5, 'e5', 'L', 't', 5, x'05', 9500), (6, 'e6', 'L', 't', 6, x'06', NULL);"
                     "PRAGMA application_id = 0x4C4E4147; PRAGMA user_version = 1;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    spool *sp = open_ok(f->path, NULL);
    assert_int_equal(spool_delivered_upto(sp), 3);
    assert_int_equal(spool_pending_count(sp), 3); /* 4, 6, and 5 once more */
    spool_stats st;
    assert_int_equal(spool_get_stats(sp, &st), 0);
    assert_int_equal(st.delivered, 3);
    assert_int_equal(st.last_delivered_ms, 9000);
    assert_int_equal(st.next_seq, 7);
    uint64_t seqs[8];
    size_t n = 0;
    assert_int_equal(spool_pending_page(sp, 0, 8, seq_cb, &(seq_list){seqs, &n}), 3);
    assert_int_equal(seqs[0], 4);
    assert_int_equal(seqs[2], 6);
    spool_close(sp);
    /* Opened again: already current, untouched. */
    sp = open_ok(f->path, NULL);
    assert_int_equal(spool_delivered_upto(sp), 3);
    spool_close(sp);
}

static void test_pending_page_paging(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    append_batch(sp, 27, "a");
    assert_int_equal(spool_mark_delivered(sp, 2, 1), 0);

    collected *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(spool_pending_page(sp, 0, 10, collect_cb, c), 10); /* skips 1, 2 */
    assert_consecutive(c, 3, 10);
    c->n = 0;
    assert_int_equal(spool_pending_page(sp, 12, 10, collect_cb, c), 10);
    assert_consecutive(c, 13, 10);
    c->n = 0;
    assert_int_equal(spool_pending_page(sp, 22, 10, collect_cb, c), 5);
    assert_consecutive(c, 23, 5);
    c->n = 0;
    assert_int_equal(spool_pending_page(sp, 27, 10, collect_cb, c), 0);
    assert_int_equal(spool_pending_page(sp, 0, 0, collect_cb, c), 0);
    assert_int_equal(spool_pending_page(sp, 0, -1, collect_cb, c), -1);

    /* The callback stops early; the count includes the event it stopped on. */
    c->n = 0;
    c->stop_after = 4;
    assert_int_equal(spool_pending_page(sp, 5, 10, collect_cb, c), 4);
    assert_consecutive(c, 6, 4);
    /* And the statement was reset: the next page starts afresh. */
    c->n = 0;
    c->stop_after = 0;
    assert_int_equal(spool_pending_page(sp, 20, 3, collect_cb, c), 3);
    assert_consecutive(c, 21, 3);
    free(c);
    spool_close(sp);
}

static int reenter_cb(void *ud, const spool_event *ev)
{
    spool *sp = ud;
    (void)ev;
    assert_int_equal(spool_pending_page(sp, 0, 1, reenter_cb, sp), -1);
    assert_non_null(strstr(spool_errmsg(sp), "re-entrant"));
    return 0;
}

static void test_errors_leave_handle_usable(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    assert_int_equal(spool_commit(sp), -1);
    assert_non_null(strstr(spool_errmsg(sp), "no transaction"));

    spool_event ev = {.event_id = "dup", .key = "k", .type = "t", .payload = NULL, .len = 0};
    ev.seq = 1;
    assert_int_equal(spool_append_event(sp, &ev), -1); /* outside a transaction */

    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_begin(sp), -1);
    assert_non_null(strstr(spool_errmsg(sp), "already open"));
    ev.seq = 1; /* not reserved yet */
    assert_int_equal(spool_append_event(sp, &ev), -1);
    assert_non_null(strstr(spool_errmsg(sp), "not reserved"));
    ev.seq = spool_next_seq(sp);
    assert_int_equal(spool_append_event(sp, &ev), 0); /* empty payload is fine */
    ev.seq = spool_next_seq(sp);
    assert_int_equal(spool_append_event(sp, &ev), -1); /* duplicate event_id */
    assert_non_null(strstr(spool_errmsg(sp), "UNIQUE"));
    assert_int_equal(spool_commit(sp), 0); /* the failed statement alone is undone */
    spool_close(sp);

    sp = open_ok(f->path, NULL);
    assert_int_equal(spool_pending_count(sp), 1);
    /* The seq given to the failed append was committed as used, so the next
     * one is 3: the caller committing after a failed append chose that. */
    assert_int_equal(append_batch(sp, 1, "after"), 3);
    assert_int_equal(spool_pending_page(sp, 0, 1, reenter_cb, sp), 1);
    spool_close(sp);
}

/* A transaction is all or nothing to other handles: none of its events is
 * visible before the commit, all of them after (throughput is measured by
 * bench_spool, not asserted here). */
static void test_group_commit_atomic(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL), *reader = open_ok(f->path, NULL);
    enum { BATCH = 1000, BATCHES = 4 };
    uint8_t payload[200];
    memset(payload, 0x5a, sizeof payload);
    for (int b = 0; b < BATCHES; b++) {
        assert_int_equal(spool_begin(sp), 0);
        for (int i = 0; i < BATCH; i++) {
            char id[40];
            uint64_t seq = spool_next_seq(sp);
            snprintf(id, sizeof id, "00000000-0000-4000-8000-%012llu", (unsigned long long)seq);
            spool_event ev = {.seq = seq, .event_id = id, .key = "LOT-0001", .type = "unit_passed",
                              .time_ms = 1, .payload = payload, .len = sizeof payload};
            assert_int_equal(spool_append_event(sp, &ev), 0);
        }
        assert_int_equal(spool_pending_count(reader), b * BATCH);
        assert_int_equal(spool_commit(sp), 0);
        assert_int_equal(spool_pending_count(reader), (b + 1) * BATCH);
    }
    spool_close(reader);
    spool_close(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_mode_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_sqlite_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_app_id_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_database_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_synchronous_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file_is_initialised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_missing_dir_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_reopen_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_rollback_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_survives_pruning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_interleaved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_leaves_handle_usable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_no_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_open_of_new_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_page_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_leave_handle_usable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_atomic, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
