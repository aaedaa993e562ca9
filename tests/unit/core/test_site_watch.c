/* SPDX-License-Identifier: Apache-2.0 */
/* test_site_watch.c - the fixture_site_suspect rules: failures in a row on
 * one step (a failure at another step starts the run over), the failure
 * rate over a full window, warn mode clearing at a pass, pause mode held
 * until resumed, and the station document's states. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "site_watch.h"

#define TEST_STEP LINEAGENT__V1__STEP__TEST
#define WRITE_STEP LINEAGENT__V1__STEP__WRITE

static site_watch *sw_new(int consecutive, double rate, int window, int pause)
{
    static const char *const names[] = {"prog", "fct"};
    static const uint32_t sites[] = {1, 2};
    site_watch_conf c = {consecutive, rate, window, pause};
    return site_watch_new(&c, 2, names, sites);
}

static json_t *station_doc(site_watch *w, size_t st, const char *const *boards)
{
    char *s = site_watch_station_json(w, st, boards, 1767225600000LL);
    assert_non_null(s);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(j);
    return j;
}

static void test_run_on_one_step_warn_clears_at_pass(void **state)
{
    site_watch *w = sw_new(3, 0, 10, 0);
    assert_int_equal(site_watch_board(w, 1, 1, 0, TEST_STEP, "vdd_low"), SITE_WATCH_SAME);
    assert_int_equal(site_watch_board(w, 1, 1, 0, WRITE_STEP, "verify_mismatch"), SITE_WATCH_SAME); /* run restarts */
    assert_int_equal(site_watch_board(w, 1, 1, 0, TEST_STEP, "vdd_low"), SITE_WATCH_SAME);
    assert_int_equal(site_watch_board(w, 1, 0, 0, TEST_STEP, "vdd_low"), SITE_WATCH_SAME); /* another site */
    assert_int_equal(site_watch_board(w, 1, 1, 0, TEST_STEP, "vdd_low"), SITE_WATCH_SAME);
    assert_int_equal(site_watch_board(w, 1, 1, 0, TEST_STEP, "vdd_high"), SITE_WATCH_RAISED);
    assert_int_equal(site_watch_raised(w), 1);
    assert_false(site_watch_paused(w, 1, 1)); /* warn */
    assert_int_equal(site_watch_board(w, 1, 1, 0, TEST_STEP, "vdd_low"), SITE_WATCH_SAME); /* already up */
    json_t *alarms = json_array();
    site_watch_alarms_json(w, alarms);
    assert_int_equal(json_array_size(alarms), 1);
    json_t *a = json_array_get(alarms, 0);
    assert_string_equal(json_string_value(json_object_get(a, "station")), "fct");
    assert_int_equal(json_integer_value(json_object_get(a, "site")), 1);
    assert_string_equal(json_string_value(json_object_get(a, "step")), "TEST");
    assert_string_equal(json_string_value(json_object_get(a, "mode")), "vdd_low");
    assert_int_equal(json_integer_value(json_object_get(a, "count")), 3);
    json_decref(alarms);
    json_t *d = station_doc(w, 1, NULL);
    assert_string_equal(json_string_value(json_object_get(d, "state")), "faulted");
    json_decref(d);
    assert_int_equal(site_watch_board(w, 1, 1, 1, 0, NULL), SITE_WATCH_CLEARED);
    assert_int_equal(site_watch_raised(w), 0);
    site_watch_free(w);
}

static void test_rate_over_full_window(void **state)
{
    site_watch *w = sw_new(0, 0.5, 4, 0);
    /* F P F P: 2 of 4 is not over 0.5 */
    int seq[] = {0, 1, 0, 1};
    for (int i = 0; i < 4; i++)
        assert_int_equal(site_watch_board(w, 0, 0, seq[i], TEST_STEP, "x"), SITE_WATCH_SAME);
    /* the window slides: P F P F, then F P F F = 3 of 4 */
    assert_int_equal(site_watch_board(w, 0, 0, 0, TEST_STEP, "x"), SITE_WATCH_SAME);
    assert_int_equal(site_watch_board(w, 0, 0, 0, TEST_STEP, "x"), SITE_WATCH_RAISED);
    char detail[256];
    site_watch_describe(w, 0, 0, detail, sizeof detail);
    assert_string_equal(detail, "station prog site 0: 3 of its last 4 boards failed, the last at TEST (x)");
    site_watch_free(w);
    /* a window not yet full never judges the rate */
    w = sw_new(0, 0.5, 4, 0);
    for (int i = 0; i < 3; i++) assert_int_equal(site_watch_board(w, 0, 0, 0, TEST_STEP, "x"), SITE_WATCH_SAME);
    assert_int_equal(site_watch_board(w, 0, 0, 0, TEST_STEP, "x"), SITE_WATCH_RAISED);
    site_watch_free(w);
}

static void test_pause_until_resumed(void **state)
{
    site_watch *w = sw_new(2, 0, 10, 1);
    site_watch_board(w, 1, 0, 0, TEST_STEP, "x");
    assert_int_equal(site_watch_board(w, 1, 0, 0, TEST_STEP, "x"), SITE_WATCH_RAISED);
    assert_true(site_watch_paused(w, 1, 0));
    assert_false(site_watch_paused(w, 1, 1));
    assert_int_equal(site_watch_board(w, 1, 0, 1, 0, NULL), SITE_WATCH_SAME); /* a pass does not clear it */
    assert_true(site_watch_paused(w, 1, 0));
    const char *boards[] = {"", "B7"};
    json_t *d = station_doc(w, 1, boards);
    assert_string_equal(json_string_value(json_object_get(d, "state")), "paused");
    json_t *s0 = json_array_get(json_object_get(d, "sites"), 0), *s1 = json_array_get(json_object_get(d, "sites"), 1);
    assert_string_equal(json_string_value(json_object_get(s0, "state")), "paused");
    assert_int_equal(json_integer_value(json_object_get(s0, "failed")), 2);
    assert_int_equal(json_integer_value(json_object_get(s0, "passed")), 1);
    assert_string_equal(json_string_value(json_object_get(s1, "state")), "busy");
    assert_string_equal(json_string_value(json_object_get(s1, "board")), "B7");
    json_decref(d);
    assert_int_equal(site_watch_find(w, "fct"), 1);
    assert_int_equal(site_watch_find(w, "nope"), -1);
    assert_int_equal(site_watch_resume(w, 1, -1), 1);
    assert_false(site_watch_paused(w, 1, 0));
    assert_int_equal(site_watch_board(w, 1, 0, 0, TEST_STEP, "x"), SITE_WATCH_SAME); /* the run starts over */
    d = station_doc(w, 1, NULL);
    assert_string_equal(json_string_value(json_object_get(d, "state")), "idle");
    json_decref(d);
    assert_int_equal(site_watch_board(w, 5, 0, 0, TEST_STEP, "x"), SITE_WATCH_SAME); /* out of range */
    assert_int_equal(site_watch_board(w, 1, 2, 0, TEST_STEP, "x"), SITE_WATCH_SAME);
    site_watch_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_on_one_step_warn_clears_at_pass),
        cmocka_unit_test(test_rate_over_full_window),
        cmocka_unit_test(test_pause_until_resumed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
