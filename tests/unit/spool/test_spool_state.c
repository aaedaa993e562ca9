/* SPDX-License-Identifier: Apache-2.0 */
/* test_spool_state.c - unit tests for the spool's resume state: the inbox
 * of raw MES payloads, content-addressed firmware images, order revisions,
 * and lot and unit rows with their listings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "spool_fixture.h"

/* ---- inbox, firmware, orders ------------------------------------------- */

static void test_inbox(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    spool_inbox_row row;
    assert_int_equal(spool_inbox_next(sp, 0, &row), 0);

    assert_int_equal(spool_inbox_put(sp, 100, "{\"order\":1}", 11, 11), 0);
    assert_int_equal(spool_inbox_put(sp, 200, NULL, 0, 5u * 1024 * 1024), 0); /* oversize */
    assert_int_equal(spool_inbox_put(sp, 300, "", 0, 0), 0);                  /* empty */
    spool_close(sp);

    sp = open_ok(f->path, NULL);
    assert_int_equal(spool_inbox_next(sp, 0, &row), 1);
    assert_int_equal(row.received_ms, 100);
    assert_int_equal(row.len, 11);
    assert_int_equal(row.original_len, 11);
    assert_memory_equal(row.payload, "{\"order\":1}", 11);
    int64_t first = row.id;
    spool_inbox_row_free(&row);
    assert_null(row.payload);

    assert_int_equal(spool_inbox_next(sp, first, &row), 1);
    assert_int_equal(row.received_ms, 200);
    assert_null(row.payload);
    assert_int_equal(row.len, 0);
    assert_int_equal(row.original_len, 5u * 1024 * 1024);
    int64_t second = row.id;
    spool_inbox_row_free(&row);

    assert_int_equal(spool_inbox_next(sp, second, &row), 1);
    assert_int_equal(row.received_ms, 300);
    assert_non_null(row.payload); /* empty, but not refused */
    assert_int_equal(row.len, 0);
    int64_t third = row.id;
    spool_inbox_row_free(&row);
    assert_int_equal(spool_inbox_next(sp, third, &row), 0);

    /* Deletes ride in the caller's transaction: a rollback keeps the row. */
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_inbox_delete(sp, first), 0);
    assert_int_equal(spool_inbox_put(sp, 400, "x", 1, 1), -1); /* must commit on its own */
    spool_rollback(sp);
    assert_int_equal(spool_inbox_next(sp, 0, &row), 1);
    assert_int_equal(row.id, first);
    spool_inbox_row_free(&row);

    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_inbox_delete(sp, first), 0);
    assert_int_equal(spool_inbox_delete(sp, third), 0);
    assert_int_equal(spool_commit(sp), 0);
    assert_int_equal(spool_inbox_next(sp, 0, &row), 1);
    assert_int_equal(row.id, second);
    spool_inbox_row_free(&row);

    /* Ids are never reused, even after the newest row was deleted. */
    assert_int_equal(spool_inbox_put(sp, 500, "y", 1, 1), 0);
    assert_int_equal(spool_inbox_next(sp, second, &row), 1);
    assert_true(row.id > third);
    spool_inbox_row_free(&row);
    spool_close(sp);
}

static const char sha_a[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
static const char sha_a_upper[] = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
static const char sha_b[] = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

/* Rows of firmware_chunk under a digest, counted by a connection of its own. */
static int chunk_rows(const char *path, const char *sha)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM firmware_chunk WHERE sha256 = ?1", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, sha, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_firmware(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    uint8_t *img = (uint8_t *)0x1;
    size_t len = 99;
    assert_int_equal(spool_firmware_get(sp, sha_a, &img, &len), 0);
    assert_null(img);

    size_t big = 3 * 1024 * 1024 + 17;
    uint8_t *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++) data[i] = (uint8_t)(i * 7);
    assert_int_equal(spool_firmware_put(sp, sha_a, data, big), 0); /* outside a transaction */
    assert_int_equal(spool_firmware_put(sp, sha_a, data, big), 0); /* again: no-op */

    /* Inside a transaction it is part of it. */
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_firmware_put(sp, sha_b, data, 10), 0);
    spool_rollback(sp);
    assert_int_equal(spool_firmware_get(sp, sha_b, &img, &len), 0);
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_firmware_put(sp, sha_b, data, 10), 0);
    assert_int_equal(spool_commit(sp), 0);

    assert_int_equal(spool_firmware_put(sp, "ABC", data, 1), -1);
    assert_int_equal(spool_firmware_put(sp, NULL, data, 1), -1);
    assert_non_null(strstr(spool_errmsg(sp), "SHA-256"));
    /* Upper case names the same image: no second copy, and found either way. */
    assert_int_equal(spool_firmware_put(sp, sha_a_upper, data, 1), 0);
    spool_close(sp);

    sp = open_ok(f->path, NULL);
    assert_int_equal(spool_firmware_get(sp, sha_a_upper, &img, &len), 1);
    assert_int_equal(len, big); /* the first image under that hash, not the 1-byte put */
    assert_memory_equal(img, data, big);
    free(img);
    assert_int_equal(spool_firmware_get(sp, "zz", &img, &len), 0);
    assert_int_equal(spool_firmware_get(sp, sha_b, &img, &len), 1);
    assert_int_equal(len, 10);
    assert_memory_equal(img, data, 10);
    free(img);

    /* Deleting an image removes its row and every chunk, and no other's. */
    assert_int_equal(spool_firmware_delete(sp, sha_a_upper), 0);
    assert_int_equal(spool_firmware_get(sp, sha_a, &img, &len), 0);
    assert_int_equal(chunk_rows(f->path, sha_a), 0);
    assert_int_equal(chunk_rows(f->path, sha_b), 1);
    assert_int_equal(spool_firmware_put(sp, sha_a, data, big), 0); /* stored again, whole */
    assert_int_equal(spool_firmware_get(sp, sha_a, &img, &len), 1);
    assert_int_equal(len, big);
    assert_memory_equal(img, data, big);
    free(img);
    free(data);
    spool_close(sp);
}

static void test_order_upsert(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    uint32_t rev = 0;
    uint8_t *enc = NULL;
    size_t len = 0;
    assert_int_equal(spool_order_get(sp, "ORD-1", &rev, &enc, &len), 0);

    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_order_put(sp, "ORD-1", 1, "LOT-1", NULL, (const uint8_t *)"rev1", 4), 0);
    assert_int_equal(spool_order_put(sp, "ORD-2", 7, "LOT-2", NULL, (const uint8_t *)"other", 5), 0);
    assert_int_equal(spool_commit(sp), 0);
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_order_put(sp, "ORD-1", 2, "LOT-1", NULL, (const uint8_t *)"revision2", 9), 0);
    assert_int_equal(spool_commit(sp), 0);
    spool_close(sp);

    sp = open_ok(f->path, NULL);
    assert_int_equal(spool_order_get(sp, "ORD-1", &rev, &enc, &len), 1);
    assert_int_equal(rev, 2);
    assert_int_equal(len, 9);
    assert_memory_equal(enc, "revision2", 9);
    free(enc);
    assert_int_equal(spool_order_get(sp, "ORD-2", &rev, &enc, &len), 1);
    assert_int_equal(rev, 7);
    assert_memory_equal(enc, "other", 5);
    free(enc);

    /* Rolled back upserts leave the stored revision. */
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_order_put(sp, "ORD-2", 8, "LOT-2", NULL, (const uint8_t *)"x", 1), 0);
    spool_rollback(sp);
    assert_int_equal(spool_order_get(sp, "ORD-2", &rev, &enc, &len), 1);
    assert_int_equal(rev, 7);
    free(enc);
    spool_close(sp);
}

/* ---- lots and units ---------------------------------------------------- */

static spool_lot lot_of(const char *id, const char *order, int active, uint32_t loaded)
{
    spool_lot l;
    memset(&l, 0, sizeof l);
    snprintf(l.lot_id, sizeof l.lot_id, "%s", id);
    snprintf(l.order_id, sizeof l.order_id, "%s", order);
    l.active = active;
    l.loaded = loaded;
    return l;
}

typedef struct lot_list {
    spool_lot lots[8];
    int n;
} lot_list;

static int lot_cb(void *ud, const spool_lot *lot)
{
    lot_list *l = ud;
    assert_true(l->n < 8);
    l->lots[l->n++] = *lot;
    return 0;
}

static void test_lots(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    spool_lot got;
    assert_int_equal(spool_lot_get(sp, "LOT-B", &got), 0);

    assert_int_equal(spool_begin(sp), 0);
    spool_lot b = lot_of("LOT-B", "ORD-B", 1, 0), a = lot_of("LOT-A", "ORD-A", 1, 0),
              c = lot_of("LOT-C", "ORD-C", 0, 5);
    assert_int_equal(spool_lot_put(sp, &b), 0);
    assert_int_equal(spool_lot_put(sp, &a), 0);
    assert_int_equal(spool_lot_put(sp, &c), 0);
    assert_int_equal(spool_commit(sp), 0);

    /* An update (even of every field) keeps the lot's place in line. */
    b.loaded = 12;
    b.passed = 10;
    b.failed = 1;
    b.written_revision = 3;
    memset(b.written_version, 'v', sizeof b.written_version); /* no NUL: cut to 64 */
    snprintf(b.last_written_board, sizeof b.last_written_board, "%s",
             "BRD-012345678901234567890123456789012345678901234567890123456789");
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_lot_put(sp, &b), 0);
    assert_int_equal(spool_commit(sp), 0);
    spool_close(sp);

    sp = open_ok(f->path, NULL);
    assert_int_equal(spool_lot_get(sp, "LOT-B", &got), 1);
    assert_string_equal(got.lot_id, "LOT-B");
    assert_string_equal(got.order_id, "ORD-B");
    assert_int_equal(got.active, 1);
    assert_int_equal(got.loaded, 12);
    assert_int_equal(got.passed, 10);
    assert_int_equal(got.failed, 1);
    assert_int_equal(got.written_revision, 3);
    assert_int_equal(strlen(got.written_version), SPOOL_ID_MAX - 1);
    assert_int_equal(strspn(got.written_version, "v"), SPOOL_ID_MAX - 1);
    assert_string_equal(got.last_written_board, b.last_written_board);

    lot_list l = {.n = 0};
    assert_int_equal(spool_lot_list_active(sp, lot_cb, &l), 2);
    assert_string_equal(l.lots[0].lot_id, "LOT-B"); /* oldest first, not by name */
    assert_string_equal(l.lots[1].lot_id, "LOT-A");

    /* Completing a lot takes it off the active list; a new one joins at the end. */
    assert_int_equal(spool_begin(sp), 0);
    b.active = 0;
    spool_lot d = lot_of("LOT-0", "ORD-0", 1, 0);
    assert_int_equal(spool_lot_put(sp, &b), 0);
    assert_int_equal(spool_lot_put(sp, &d), 0);
    assert_int_equal(spool_commit(sp), 0);
    l.n = 0;
    assert_int_equal(spool_lot_list_active(sp, lot_cb, &l), 2);
    assert_string_equal(l.lots[0].lot_id, "LOT-A");
    assert_string_equal(l.lots[1].lot_id, "LOT-0");
    assert_int_equal(spool_lot_get(sp, "LOT-C", &got), 1);
    assert_int_equal(got.active, 0);
    assert_int_equal(got.loaded, 5);
    spool_close(sp);
}

typedef struct unit_list {
    spool_unit units[8];
    int n;
} unit_list;

static int unit_cb(void *ud, const spool_unit *unit)
{
    unit_list *l = ud;
    assert_true(l->n < 8);
    l->units[l->n++] = *unit;
    return 0;
}

static int unit_stop_cb(void *ud, const spool_unit *unit)
{
    unit_cb(ud, unit);
    return 1;
}

static spool_unit unit_of(const char *lot, const char *board, uint32_t idx, int st)
{
    spool_unit u;
    memset(&u, 0, sizeof u);
    snprintf(u.lot_id, sizeof u.lot_id, "%s", lot);
    snprintf(u.board_id, sizeof u.board_id, "%s", board);
    u.idx = idx;
    u.state = st;
    return u;
}

static void test_units(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    assert_int_equal(spool_begin(sp), 0);
    spool_unit u2 = unit_of("LOT-A", "B-2", 2, SPOOL_UNIT_IN_PROGRESS);
    spool_unit u0 = unit_of("LOT-A", "B-0", 0, SPOOL_UNIT_IN_PROGRESS);
    spool_unit u1 = unit_of("LOT-A", "B-1", 1, SPOOL_UNIT_PASSED);
    spool_unit u3 = unit_of("LOT-A", "B-3", 3, SPOOL_UNIT_IN_PROGRESS);
    spool_unit other = unit_of("LOT-B", "B-9", 0, SPOOL_UNIT_IN_PROGRESS);
    u2.steps_done = 0x5;
    u2.revision = 4;
    snprintf(u2.version, sizeof u2.version, "2.1.0");
    snprintf(u2.sha256, sizeof u2.sha256, "%s", sha_a);
    assert_int_equal(spool_unit_put(sp, &u2), 0);
    assert_int_equal(spool_unit_put(sp, &u0), 0);
    assert_int_equal(spool_unit_put(sp, &u1), 0);
    assert_int_equal(spool_unit_put(sp, &u3), 0);
    assert_int_equal(spool_unit_put(sp, &other), 0);
    spool_unit bad = unit_of("LOT-A", "B-X", 9, 7);
    assert_int_equal(spool_unit_put(sp, &bad), -1);
    assert_int_equal(spool_commit(sp), 0);

    /* B-3 fails: it leaves the in-progress list. */
    assert_int_equal(spool_begin(sp), 0);
    u3.state = SPOOL_UNIT_FAILED;
    assert_int_equal(spool_unit_put(sp, &u3), 0);
    assert_int_equal(spool_commit(sp), 0);
    spool_close(sp);

    sp = open_ok(f->path, NULL);
    unit_list l = {.n = 0};
    assert_int_equal(spool_unit_list_in_progress(sp, "LOT-A", unit_cb, &l), 2);
    assert_string_equal(l.units[0].board_id, "B-0");
    assert_int_equal(l.units[0].idx, 0);
    assert_string_equal(l.units[1].board_id, "B-2");
    assert_string_equal(l.units[1].lot_id, "LOT-A");
    assert_int_equal(l.units[1].idx, 2);
    assert_int_equal(l.units[1].state, SPOOL_UNIT_IN_PROGRESS);
    assert_int_equal(l.units[1].steps_done, 0x5);
    assert_int_equal(l.units[1].revision, 4);
    assert_string_equal(l.units[1].version, "2.1.0");
    assert_string_equal(l.units[1].sha256, sha_a);

    l.n = 0;
    assert_int_equal(spool_unit_list_in_progress(sp, "LOT-A", unit_stop_cb, &l), 1);
    l.n = 0;
    assert_int_equal(spool_unit_list_in_progress(sp, "LOT-Z", unit_cb, &l), 0);
    spool_close(sp);
}

/* The agent instance id: a UUID v4 drawn when the spool is created, the same
 * on every open, another for another spool; a schema 3 spool gets one (and
 * the units' attempt column) when schema 4 opens it. */
static void test_instance_id(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    char id[37];
    snprintf(id, sizeof id, "%s", spool_instance_id(sp));
    assert_int_equal(strlen(id), 36);
    assert_int_equal(id[8], '-');
    assert_int_equal(id[14], '4');
    assert_non_null(strchr("89ab", id[19]));
    spool_close(sp);
    sp = open_ok(f->path, NULL);
    assert_string_equal(spool_instance_id(sp), id);
    spool_close(sp);

    char other[200];
    snprintf(other, sizeof other, "%s.other", f->path);
    sp = open_ok(other, NULL);
    assert_string_not_equal(spool_instance_id(sp), id);
    spool_close(sp);

    /* Back to schema 3: no instance id, no attempt column. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP INDEX units_board; ALTER TABLE units DROP COLUMN attempt;"
                                      " DELETE FROM kv WHERE ns = 'spool'; PRAGMA user_version = 3;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    sp = open_ok(other, NULL);
    assert_int_equal(strlen(spool_instance_id(sp)), 36);
    assert_string_not_equal(spool_instance_id(sp), id);
    spool_unit u = {.lot_id = "L1", .board_id = "B1", .state = SPOOL_UNIT_PASSED, .attempt = 2};
    assert_int_equal(spool_unit_put(sp, &u), 0);
    assert_int_equal(spool_unit_earlier_lots(sp, "B1", "L2"), 1);
    assert_int_equal(spool_unit_earlier_lots(sp, "B1", "L1"), 0);
    spool_close(sp);
    unlink(other);
}

/* Per release, in the order first bound: passed, failed and passed at the
 * first attempt; units still in progress are not counted. */
static int versions_cb(void *ud, const spool_version_count *vc)
{
    spool_version_count *out = ud;
    size_t i = 0;
    while (out[i].version[0] || out[i].passed || out[i].failed) i++;
    out[i] = *vc;
    if (!vc->version[0]) snprintf(out[i].version, sizeof out[i].version, "-"); /* mark the slot used */
    return 0;
}

static void test_unit_versions(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    spool_unit us[] = {
        {.lot_id = "L", .board_id = "a", .idx = 0, .state = SPOOL_UNIT_PASSED, .version = "1.0", .sha256 = "h1"},
        {.lot_id = "L", .board_id = "b", .idx = 1, .state = SPOOL_UNIT_FAILED, .version = "1.0", .sha256 = "h1"},
        {.lot_id = "L", .board_id = "c", .idx = 2, .state = SPOOL_UNIT_PASSED, .version = "2.0", .sha256 = "h2",
         .attempt = 2},
        {.lot_id = "L", .board_id = "d", .idx = 3, .state = SPOOL_UNIT_FAILED},
        {.lot_id = "L", .board_id = "e", .idx = 4, .state = SPOOL_UNIT_IN_PROGRESS, .version = "2.0", .sha256 = "h2"},
        {.lot_id = "M", .board_id = "a", .idx = 0, .state = SPOOL_UNIT_PASSED, .version = "9.0", .sha256 = "h9"},
    };
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) assert_int_equal(spool_unit_put(sp, &us[i]), 0);
    spool_version_count got[8];
    memset(got, 0, sizeof got);
    assert_int_equal(spool_unit_versions(sp, "L", versions_cb, got), 3);
    assert_string_equal(got[0].version, "1.0");
    assert_string_equal(got[0].sha256, "h1");
    assert_int_equal(got[0].passed, 1);
    assert_int_equal(got[0].failed, 1);
    assert_int_equal(got[0].passed_first, 1);
    assert_string_equal(got[1].version, "2.0");
    assert_int_equal(got[1].passed, 1);
    assert_int_equal(got[1].failed, 0);
    assert_int_equal(got[1].passed_first, 0); /* a rework */
    assert_string_equal(got[2].version, "-");
    assert_int_equal(got[2].failed, 1);
    spool_close(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_firmware, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_upsert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_units, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instance_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unit_versions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
