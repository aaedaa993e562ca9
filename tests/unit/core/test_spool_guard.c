/* SPDX-License-Identifier: Apache-2.0 */
/* test_spool_guard.c - the running agent's spool housekeeping against a real
 * spool: within the retention nothing goes; past it a completed lot goes
 * with its units and order, an image no active lot uses goes with all its
 * chunks and its pages are returned to the file system, while the active
 * lot, its image and every board's attempt count stay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <time.h>

#include "spool_fixture.h"
#include "spool_guard.h"

#define SHA_OLD "0000000000000000000000000000000000000000000000000000000000000001"
#define SHA_NEW "0000000000000000000000000000000000000000000000000000000000000002"

static void put_image(spool *sp, const char *sha, size_t len)
{
    uint8_t *img = calloc(1, len);
    assert_non_null(img);
    fill_payload(len, img, len);
    assert_int_equal(spool_firmware_put(sp, sha, img, len), 0);
    free(img);
}

static void put_lot(spool *sp, const char *lot_id, const char *order_id, int active, const char *sha,
                    const char *board, int state)
{
    assert_int_equal(spool_begin(sp), 0);
    assert_int_equal(spool_order_put(sp, order_id, 1, lot_id, sha, (const uint8_t *)"o", 1), 0);
    spool_lot l = {.active = active, .loaded = 1};
    snprintf(l.lot_id, sizeof l.lot_id, "%s", lot_id);
    snprintf(l.order_id, sizeof l.order_id, "%s", order_id);
    assert_int_equal(spool_lot_put(sp, &l), 0);
    spool_unit u = {.state = state};
    snprintf(u.lot_id, sizeof u.lot_id, "%s", lot_id);
    snprintf(u.board_id, sizeof u.board_id, "%s", board);
    snprintf(u.sha256, sizeof u.sha256, "%s", sha);
    assert_int_equal(spool_unit_put(sp, &u), 0);
    assert_int_equal(spool_commit(sp), 0);
}

static void test_housekeeping(void **state)
{
    fixture *f = *state;
    spool *sp = f->sp;
    put_image(sp, SHA_OLD, 3 * 1024 * 1024);
    put_image(sp, SHA_NEW, 1000);
    put_lot(sp, "LOT-OLD", "WO-OLD", 0, SHA_OLD, "B1", SPOOL_UNIT_PASSED);
    put_lot(sp, "LOT-NEW", "WO-NEW", 1, SHA_NEW, "B2", SPOOL_UNIT_IN_PROGRESS);

    config cfg = {.spool_path = f->path, .spool_retention_ms = 3600 * 1000};
    spool_guard g;
    spool_guard_init(&g, &cfg);
    spool_guard_tick(&g, sp);
    spool_lot lot;
    uint8_t *img;
    size_t len;
    assert_int_equal(spool_lot_get(sp, "LOT-OLD", &lot), 1);
    assert_int_equal(spool_firmware_get(sp, SHA_OLD, &img, &len), 1);
    free(img);
    spool_stats s0, s1;
    assert_int_equal(spool_get_stats(sp, &s0), 0);

    /* The retention has passed for everything stored so far. */
    cfg.spool_retention_ms = 0;
    nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000}, NULL);
    g.next_ms = 0;
    spool_guard_tick(&g, sp);
    assert_int_equal(spool_lot_get(sp, "LOT-OLD", &lot), 0);
    uint32_t rev;
    uint8_t *enc;
    assert_int_equal(spool_order_get(sp, "WO-OLD", &rev, &enc, &len), 0);
    assert_int_equal(spool_firmware_get(sp, SHA_OLD, &img, &len), 0);
    assert_int_equal(g.pruned_lot_rows, 3); /* unit, lot, order */
    assert_int_equal(g.pruned_images, 1);
    assert_true(g.vacuumed_pages * 4096 >= 3 * 1024 * 1024);
    assert_int_equal(spool_get_stats(sp, &s1), 0);
    assert_true(s0.file_bytes - s1.file_bytes >= 3 * 1024 * 1024);

    /* The active lot, its order and image stay; B1 was in a lot before. */
    assert_int_equal(spool_lot_get(sp, "LOT-NEW", &lot), 1);
    assert_int_equal(spool_order_get(sp, "WO-NEW", &rev, &enc, &len), 1);
    free(enc);
    assert_int_equal(spool_firmware_get(sp, SHA_NEW, &img, &len), 1);
    free(img);
    assert_int_equal(spool_unit_earlier_lots(sp, "B1", "LOT-NEW"), 1);
    assert_int_equal(spool_unit_earlier_lots(sp, "B2", "LOT-NEW"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_housekeeping, setup_open, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
