/* SPDX-License-Identifier: Apache-2.0 */
/* test_adapter_sim.c - the simulated station's adapter: board ids per lot
 * and index, flash write/read-back, failure injection caught by verify. Its
 * measurements judged, and the station worker running it, are in
 * core/test_station.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "adapter.h"
#include "digest.h"

static const uint8_t image_a[] = "firmware image A, version 1.0.0";
static const uint8_t image_b[] = "firmware image B, version 1.1.0";

static void *sim_open_with(const char *fail_rate)
{
    kv_pair kv[] = {{"sim.fail_rate", (char *)fail_rate}, {"sim.boards_per_second", "1000"}};
    station_config st = {.name = "s1", .adapter = "sim", .keys = kv, .n_keys = 2};
    const adapter *ad = adapter_find("sim");
    void *state = NULL;
    char err[256];
    assert_non_null(ad);
    assert_int_equal(ad->open(&state, &st, err, sizeof err), 0);
    return state;
}

static adapter_image make_image(const uint8_t *data, size_t len, const char *version, char sha[65])
{
    digest_sha256_hex(data, len, sha);
    return (adapter_image){version, sha, data, len, 0};
}

static void test_board_ids_repeat_per_lot_and_index(void **state)
{
    const adapter *ad = adapter_find("sim");
    void *s = sim_open_with("0");
    char id[65];
    assert_int_equal(ad->load_board(s, "LOT-7", 0, id, sizeof id), 0);
    assert_string_equal(id, "LOT-7-B00001");
    assert_int_equal(ad->load_board(s, "LOT-7", 41, id, sizeof id), 0);
    assert_string_equal(id, "LOT-7-B00042");
    ad->close(s);
}

static void test_write_then_verify(void **state)
{
    const adapter *ad = adapter_find("sim");
    void *s = sim_open_with("0");
    char sha_a[65], sha_b[65];
    adapter_image a = make_image(image_a, sizeof image_a, "1.0.0", sha_a);
    adapter_image b = make_image(image_b, sizeof image_b, "1.1.0", sha_b);
    adapter_step_ctx ctx = {.station = "s1", .lot_id = "LOT", .board_id = "LOT-B-wv", .image = &a, NULL, NULL};
    adapter_result r = {0};
    ad->write(s, &ctx, &r);
    assert_true(r.passed);
    memset(&r, 0, sizeof r);
    ad->verify(s, &ctx, &r);
    assert_true(r.passed);
    assert_string_equal(r.readback_sha256, sha_a);
    /* a board holding A checked against B: the wrong image is caught */
    ctx.image = &b;
    memset(&r, 0, sizeof r);
    ad->verify(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "verify_mismatch");
    /* a board never written reads back blank */
    ctx.board_id = "LOT-B-never";
    memset(&r, 0, sizeof r);
    ad->verify(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "verify_blank");
    ad->close(s);
}

static void test_injected_write_fault_is_caught_by_verify(void **state)
{
    const adapter *ad = adapter_find("sim");
    void *s = sim_open_with("1");
    char sha[65];
    adapter_image a = make_image(image_a, sizeof image_a, "1.0.0", sha);
    adapter_step_ctx ctx = {.station = "s1", .lot_id = "LOT", .board_id = "LOT-B-flip", .image = &a, NULL, NULL};
    adapter_result r = {0};
    ad->write(s, &ctx, &r);
    assert_true(r.passed); /* the programmer does not notice */
    memset(&r, 0, sizeof r);
    ad->verify(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "verify_mismatch");
    assert_string_not_equal(r.readback_sha256, sha);
    ad->close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_board_ids_repeat_per_lot_and_index),
        cmocka_unit_test(test_write_then_verify),
        cmocka_unit_test(test_injected_write_fault_is_caught_by_verify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
