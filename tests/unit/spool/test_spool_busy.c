/* SPDX-License-Identifier: Apache-2.0 */
/* test_spool_busy.c - the spool while another connection holds its write
 * lock past the busy timeout (the sqlite3 shell, a backup): every writer
 * reports SQLITE_BUSY as busy, not as a failure, nothing is written, a
 * handle still opens, and everything succeeds once the lock is released.
 * Also how firmware images are stored so that they never hold the lock for
 * long: in chunks committed one by one, the image visible only at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "spool_fixture.h"

static const char sha_a[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/* A second connection, as another process would open it, holding the
 * write lock until release(). */
static sqlite3 *hold_write_lock(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void release(sqlite3 *db)
{
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void assert_busy(spool *sp, int rc)
{
    assert_int_equal(rc, -1);
    if (!spool_error_is_busy(sp)) fail_msg("not reported as busy: %s", spool_errmsg(sp));
    assert_false(spool_error_is_full(sp));
}

static void test_every_writer_reports_busy(void **state)
{
    fixture *f = *state;
    spool_options so = {"FULL", 100}; /* 100 ms busy timeout */
    spool *sp = open_ok(f->path, &so);
    assert_int_equal(spool_busy_timeout_ms(sp), 100);
    append_batch(sp, 3, "a");
    sqlite3 *other = hold_write_lock(f->path);

    /* A handle opens on a current spool without the write lock. */
    spool *sp2 = open_ok(f->path, &so);
    assert_busy(sp, spool_begin(sp));        /* the coordinator's group commit */
    assert_busy(sp, spool_inbox_put(sp, 1, "o", 1, 1)); /* the intake */
    assert_busy(sp, spool_mark_delivered(sp, 2, 5000)); /* the forwarder */
    assert_busy(sp, spool_prune_delivered(sp, 1 << 30, 10)); /* the guard */
    assert_busy(sp2, spool_kv_put(sp2, "mqtt:x", "k", "v", 1)); /* MQTT persistence */
    assert_busy(sp2, spool_kv_del(sp2, "mqtt:x", "k"));
    assert_busy(sp2, spool_firmware_put(sp2, sha_a, (const uint8_t *)"img", 3));
    /* Reads go on meanwhile (WAL), and nothing was written. */
    assert_int_equal(spool_pending_count(sp), 3);
    assert_int_equal(spool_delivered_upto(sp), 0);
    spool_inbox_row row;
    assert_int_equal(spool_inbox_next(sp, 0, &row), 0);

    release(other);
    /* The same calls now succeed, on the same handles. */
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_commit(sp), 0);
    assert_int_equal(spool_inbox_put(sp, 1, "o", 1, 1), 0);
    assert_int_equal(spool_mark_delivered(sp, 2, 5000), 0);
    assert_int_equal(spool_delivered_upto(sp), 2);
    assert_int_equal(spool_kv_put(sp2, "mqtt:x", "k", "v", 1), 0);
    assert_int_equal(spool_firmware_put(sp2, sha_a, (const uint8_t *)"img", 3), 0);
    uint8_t *img;
    size_t len;
    assert_int_equal(spool_firmware_get(sp, sha_a, &img, &len), 1);
    assert_int_equal(len, 3);
    assert_memory_equal(img, "img", 3);
    free(img);
    assert_int_equal(spool_inbox_next(sp, 0, &row), 1);
    spool_inbox_row_free(&row);
    spool_close(sp2);
    spool_close(sp);
}

/* An error other than busy is not reported as busy. */
static void test_other_errors_not_busy(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    assert_int_equal(spool_mark_delivered(sp, 1, 1), 0); /* nothing to mark: no error */
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_begin(sp), -1); /* already open */
    assert_false(spool_error_is_busy(sp));
    spool_rollback(sp);
    spool_close(sp);
}

/* A large image is written in chunks, each its own transaction, and the
 * image is visible only once its row is written after the last chunk: a put
 * cut short (here by a full disk midway) leaves committed chunks behind and
 * no image. As one transaction it would have left nothing, having held the
 * write lock for the whole image. */
static void test_firmware_chunks_commit_separately(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    size_t big = 4 * 1024 * 1024 + 5;
    uint8_t *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++) data[i] = (uint8_t)(i * 13 + (i >> 12));
    spool_stats s;
    assert_int_equal(spool_get_stats(sp, &s), 0);
    /* Room for about 2 MiB more: the put fails with SQLITE_FULL midway. */
    assert_int_equal(spool_set_max_pages(sp, (int)(s.file_bytes / 4096) + 512), 0);
    assert_int_equal(spool_firmware_put(sp, sha_a, data, big), -1);
    assert_true(spool_error_is_full(sp));
    int64_t chunks = raw_int(f->path, "SELECT count(*) FROM firmware_chunk");
    assert_true(chunks >= 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM firmware"), 0);
    uint8_t *img = NULL;
    size_t len = 0;
    assert_int_equal(spool_firmware_get(sp, sha_a, &img, &len), 0);
    assert_null(img);

    /* With room again the same put completes, overwriting what was left. */
    assert_int_equal(spool_set_max_pages(sp, 1 << 30), 0);
    assert_int_equal(spool_firmware_put(sp, sha_a, data, big), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM firmware_chunk"), (int64_t)((big + 262143) / 262144));
    assert_int_equal(raw_int(f->path, "SELECT max(length(data)) FROM firmware_chunk"), 262144);
    assert_int_equal(spool_firmware_get(sp, sha_a, &img, &len), 1);
    assert_int_equal(len, big);
    assert_memory_equal(img, data, big);
    free(img);
    free(data);
    spool_close(sp);
}

/* A version 2 spool keeps its images whole in firmware.image: migrated to
 * the current version (5) they read as before. */
static void test_schema_2_images_read(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, NULL);
    spool_close(sp);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE firmware_chunk; ALTER TABLE firmware DROP COLUMN stored_ms;"
                                  " PRAGMA user_version = 2;"
                                  "INSERT INTO firmware VALUES('" /* sha_a */
                                  "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', x'0102030405');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    sp = open_ok(f->path, NULL);
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 5);
    uint8_t *img;
    size_t len;
    assert_int_equal(spool_firmware_get(sp, sha_a, &img, &len), 1);
    assert_int_equal(len, 5);
    assert_memory_equal(img, "\x01\x02\x03\x04\x05", 5);
    free(img);
    spool_close(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_writer_reports_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_errors_not_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_firmware_chunks_commit_separately, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_2_images_read, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
