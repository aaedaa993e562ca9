/* SPDX-License-Identifier: Apache-2.0 */
/* test_spool_prune.c - unit tests for the spool's housekeeping (schema 5):
 * completed lots with their units and orders pruned after the retention in
 * batches, each board's count of lots kept through it, images no active lot
 * uses pruned, a release's image purged on request and recorded, freed
 * pages returned (auto_vacuum = INCREMENTAL), and the migration from 4. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "spool_fixture.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* count(*) or another single integer through a connection of its own. */
static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
}

/* A lot with its order (naming image sha, NULL unknown) and units on the
 * given boards, each in state; committed. */
static void put_lot(spool *sp, const char *lot_id, int active, const char *sha, const char *const *boards,
                    int n, int state)
{
    char order[SPOOL_ID_MAX];
    snprintf(order, sizeof order, "ORD-%s", lot_id);
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_order_put(sp, order, 1, lot_id, sha, (const uint8_t *)"enc", 3), 0);
    spool_lot l = {.active = active, .loaded = (uint32_t)n};
    snprintf(l.lot_id, sizeof l.lot_id, "%s", lot_id);
    snprintf(l.order_id, sizeof l.order_id, "%s", order);
    assert_int_equal(spool_lot_put(sp, &l), 0);
    for (int i = 0; i < n; i++) {
        spool_unit u = {.idx = (uint32_t)i, .state = state};
        snprintf(u.lot_id, sizeof u.lot_id, "%s", lot_id);
        snprintf(u.board_id, sizeof u.board_id, "%s", boards[i]);
        if (sha) snprintf(u.sha256, sizeof u.sha256, "%s", sha);
        assert_int_equal(spool_unit_put(sp, &u), 0);
    }
    assert_int_equal(spool_commit(sp), 0);
}

static void put_image(spool *sp, const char *sha, size_t len)
{
    uint8_t *img = malloc(len);
    assert_non_null(img);
    fill_payload(len, img, len);
    assert_int_equal(spool_firmware_put(sp, sha, img, len), 0);
    free(img);
}

static void test_new_spool_incremental(void **state)
{
    fixture *f = *state;
    assert_int_equal(spool_auto_vacuum(f->sp), 2);
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 5);
}

/* Completed lots go after the retention, in batches: units first, then the
 * lot and its order. Active lots stay whatever their age; a board's count of
 * lots (its attempt) survives the pruning of its old units. */
static void test_prune_lots(void **state)
{
    fixture *f = *state;
    spool *sp = f->sp;
    const char *const old[] = {"B1", "B2", "B3"}, *const running[] = {"B4"};
    put_lot(sp, "L1", 0, SHA_A, old, 3, SPOOL_UNIT_PASSED);
    put_lot(sp, "L2", 1, SHA_A, running, 1, SPOOL_UNIT_IN_PROGRESS);
    assert_int_equal(spool_unit_earlier_lots(sp, "B1", "L3"), 1);

    /* Completed just now: within any retention. */
    assert_int_equal(spool_prune_lots(sp, now_ms() - 3600 * 1000, 100), 0);
    spool_lot got;
    assert_int_equal(spool_lot_get(sp, "L1", &got), 1);

    int64_t before = now_ms() + 1000;
    assert_int_equal(spool_prune_lots(sp, before, 2), 2); /* two units of L1 */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM units WHERE lot_id = 'L1'"), 1);
    assert_int_equal(spool_lot_get(sp, "L1", &got), 1);
    assert_int_equal(spool_prune_lots(sp, before, 2), 3); /* the last unit, then the lot and its order */
    assert_int_equal(spool_prune_lots(sp, before, 2), 0);
    assert_int_equal(spool_lot_get(sp, "L1", &got), 0);
    uint32_t rev;
    uint8_t *enc;
    size_t len;
    assert_int_equal(spool_order_get(sp, "ORD-L1", &rev, &enc, &len), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM units WHERE lot_id = 'L1'"), 0);

    /* The active lot is whole. */
    assert_int_equal(spool_lot_get(sp, "L2", &got), 1);
    assert_int_equal(got.active, 1);
    assert_int_equal(spool_order_get(sp, "ORD-L2", &rev, &enc, &len), 1);
    free(enc);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM units WHERE lot_id = 'L2'"), 1);

    /* B1 went through L1, pruned: in L3 it is still its second attempt. */
    assert_int_equal(spool_unit_earlier_lots(sp, "B1", "L3"), 1);
    const char *const again[] = {"B1"};
    put_lot(sp, "L3", 1, SHA_A, again, 1, SPOOL_UNIT_IN_PROGRESS);
    assert_int_equal(spool_unit_earlier_lots(sp, "B1", "L3"), 1); /* its own row is not earlier */
    assert_int_equal(spool_unit_earlier_lots(sp, "B1", "L4"), 2);
    assert_int_equal(spool_unit_earlier_lots(sp, "B9", "L3"), 0);
}

/* Images: an old one no active lot uses goes (row and chunks); the one an
 * active lot's order names, one a unit of an active lot is still bound to
 * (written before a changeover) and a recently stored one stay. */
static void test_prune_firmware(void **state)
{
    fixture *f = *state;
    spool *sp = f->sp;
    put_image(sp, SHA_A, 1000);
    put_image(sp, SHA_B, 600 * 1024); /* three chunks */
    put_image(sp, SHA_C, 1000);
    const char *const b[] = {"B1"};
    put_lot(sp, "L1", 0, SHA_B, b, 1, SPOOL_UNIT_PASSED); /* completed: uses nothing */
    put_lot(sp, "L2", 1, SHA_A, NULL, 0, 0);
    /* L2's unit bound to C before the order moved on to A */
    spool_unit u = {.lot_id = "L2", .board_id = "B2", .sha256 = SHA_C};
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_unit_put(sp, &u), 0);
    assert_int_equal(spool_commit(sp), 0);

    char sha[65];
    assert_int_equal(spool_prune_firmware(sp, now_ms() - 60 * 1000, sha), 0); /* all stored just now */
    int64_t before = now_ms() + 1000;
    assert_int_equal(spool_prune_firmware(sp, before, sha), 1);
    assert_string_equal(sha, SHA_B);
    assert_int_equal(spool_prune_firmware(sp, before, sha), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM firmware_chunk WHERE sha256 = '" SHA_B "'"), 0);
    uint8_t *img;
    size_t len;
    assert_int_equal(spool_firmware_get(sp, SHA_B, &img, &len), 0);
    assert_int_equal(spool_firmware_get(sp, SHA_A, &img, &len), 1);
    free(img);
    assert_int_equal(spool_firmware_get(sp, SHA_C, &img, &len), 1);
    free(img);

    /* Storing an image again starts its retention again. */
    char lot[SPOOL_ID_MAX];
    assert_int_equal(spool_firmware_user(sp, SHA_B, lot), 0);
    put_image(sp, SHA_B, 10);
    assert_int_equal(spool_prune_firmware(sp, now_ms() - 60 * 1000, sha), 0);

    /* An active lot whose order's image is unknown keeps every image. */
    put_lot(sp, "L3", 1, NULL, NULL, 0, 0);
    assert_int_equal(spool_firmware_user(sp, SHA_B, lot), 1);
    assert_string_equal(lot, "L3");
    assert_int_equal(spool_prune_firmware(sp, now_ms() + 1000, sha), 0);
}

static int purge_cb(void *ud, const spool_purge_record *r)
{
    spool_purge_record *out = ud;
    while (out->sha256[0]) out++;
    *out = *r;
    return 0;
}

/* purge-firmware: refused while an active lot uses the image; otherwise the
 * image goes with all its chunks, and the purge is recorded. */
static void test_purge(void **state)
{
    fixture *f = *state;
    spool *sp = f->sp;
    put_image(sp, SHA_A, 1000);
    put_image(sp, SHA_B, 600 * 1024);
    put_lot(sp, "L2", 1, SHA_A, NULL, 0, 0);
    char lot[SPOOL_ID_MAX];
    int64_t bytes = -1, t0 = now_ms();
    assert_int_equal(spool_firmware_purge(sp, SHA_A, "1.0.0", t0, lot, &bytes), 1);
    assert_string_equal(lot, "L2");
    uint8_t *img;
    size_t len;
    assert_int_equal(spool_firmware_get(sp, SHA_A, &img, &len), 1);
    free(img);

    assert_int_equal(spool_firmware_purge(sp, SHA_B, "2.0.0", t0, lot, &bytes), 0);
    assert_int_equal(bytes, 600 * 1024);
    assert_int_equal(spool_firmware_get(sp, SHA_B, &img, &len), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM firmware_chunk WHERE sha256 = '" SHA_B "'"), 0);
    /* Again: nothing left, recorded all the same. */
    assert_int_equal(spool_firmware_purge(sp, SHA_B, "2.0.0", t0 + 1, lot, &bytes), 0);
    assert_int_equal(bytes, 0);
    assert_int_equal(spool_firmware_purge(sp, "not-a-sha", "x", t0, lot, &bytes), -1);

    spool_purge_record recs[4] = {0};
    assert_int_equal(spool_firmware_purges(sp, purge_cb, recs), 2);
    assert_string_equal(recs[0].sha256, SHA_B);
    assert_string_equal(recs[0].version, "2.0.0");
    assert_int_equal(recs[0].purged_ms, t0);
    assert_int_equal(recs[0].bytes, 600 * 1024);
    assert_int_equal(recs[1].bytes, 0);
}

/* Freed pages go back to the file system in batches; a spool without
 * auto_vacuum keeps them until the documented VACUUM switches it. */
static void test_vacuum(void **state)
{
    fixture *f = *state;
    spool *sp = f->sp;
    put_image(sp, SHA_B, 2 * 1024 * 1024);
    spool_stats s0, s1;
    assert_int_equal(spool_get_stats(sp, &s0), 0);
    char lot[SPOOL_ID_MAX];
    int64_t bytes;
    assert_int_equal(spool_firmware_purge(sp, SHA_B, "2.0.0", now_ms(), lot, &bytes), 0);
    int pages = spool_vacuum_step(sp, 100);
    assert_int_equal(pages, 100); /* a batch at most */
    int total = pages, n;
    while ((n = spool_vacuum_step(sp, 100)) > 0) total += n;
    assert_int_equal(n, 0);
    assert_int_equal(spool_get_stats(sp, &s1), 0);
    assert_true(s0.file_bytes - s1.file_bytes >= 2 * 1024 * 1024);
    assert_true(total * 4096 >= 2 * 1024 * 1024);
    spool_close(sp);
    f->sp = NULL;

    /* A spool of before schema 5: no auto_vacuum, nothing returned. */
    raw_exec(f->path, "PRAGMA auto_vacuum = NONE; VACUUM;");
    sp = f->sp = open_ok(f->path, NULL);
    assert_int_equal(spool_auto_vacuum(sp), 0);
    put_image(sp, SHA_B, 100 * 1024);
    assert_int_equal(spool_firmware_purge(sp, SHA_B, "2.0.0", now_ms(), lot, &bytes), 0);
    assert_int_equal(spool_vacuum_step(sp, 100), 0);
    spool_close(sp);
    f->sp = NULL;
    /* deploy/README.md's one-off switch, with the agent stopped. */
    raw_exec(f->path, "PRAGMA auto_vacuum = INCREMENTAL; VACUUM;");
    sp = f->sp = open_ok(f->path, NULL);
    assert_int_equal(spool_auto_vacuum(sp), 2);
}

/* Schema 4 to 5: each board's count of lots from the units kept, completed
 * lots pruned from the upgrade on, and an active lot whose order's image
 * the spool cannot tell keeps every image. */
static void test_migrate_from_4(void **state)
{
    fixture *f = *state;
    spool *sp = f->sp;
    put_image(sp, SHA_B, 1000);
    const char *const b[] = {"B1", "B2"};
    put_lot(sp, "L1", 0, SHA_B, b, 2, SPOOL_UNIT_PASSED);
    put_lot(sp, "L2", 1, SHA_A, NULL, 0, 0);
    spool_close(sp);
    f->sp = NULL;
    raw_exec(f->path, "DROP TRIGGER units_board_lots; DROP TABLE board_lots; DROP TABLE firmware_purges;"
                      " ALTER TABLE lots DROP COLUMN completed_ms; ALTER TABLE orders DROP COLUMN fw_sha256;"
                      " ALTER TABLE firmware DROP COLUMN stored_ms; PRAGMA user_version = 4;");
    sp = f->sp = open_ok(f->path, NULL);
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 5);
    assert_int_equal(spool_unit_earlier_lots(sp, "B1", "L9"), 1);
    assert_int_equal(spool_unit_earlier_lots(sp, "B1", "L1"), 0);
    char lot[SPOOL_ID_MAX], sha[65];
    assert_int_equal(spool_firmware_user(sp, SHA_B, lot), 1);
    assert_string_equal(lot, "L2");
    assert_int_equal(spool_prune_firmware(sp, now_ms() + 1000, sha), 0);
    assert_int_equal(spool_prune_lots(sp, now_ms() - 60 * 1000, 100), 0); /* retention runs from the upgrade */
    assert_int_equal(spool_prune_lots(sp, now_ms() + 1000, 100), 4);    /* 2 units, the order, the lot */
    /* New units count from here on. */
    const char *const again[] = {"B1"};
    put_lot(sp, "L3", 1, SHA_A, again, 1, SPOOL_UNIT_IN_PROGRESS);
    assert_int_equal(spool_unit_earlier_lots(sp, "B1", "L9"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_spool_incremental, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_prune_lots, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_prune_firmware, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_vacuum, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_4, setup_open, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
