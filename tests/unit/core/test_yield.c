/* SPDX-License-Identifier: Apache-2.0 */
/* test_yield.c - the live yield folded from trace events: counts, yield and
 * rate, failures by step and mode, counts per firmware version across a
 * mid-lot revision, measurement statistics and Cpk, the completed lots kept,
 * every list bounded, and the replay point (yield_first_seq). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "order.h"
#include "yield.h"

#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */

static uint64_t seq;

static TraceEvent envelope(const char *lot, int64_t t)
{
    TraceEvent ev = LINEAGENT__V1__TRACE_EVENT__INIT;
    ev.seq = ++seq;
    ev.time_ms = t;
    ev.lot_id = (char *)lot;
    ev.order_id = (char *)"ORD-1";
    return ev;
}

static void lot_started(yield *y, const char *lot, uint32_t qty, const char *version, int64_t t)
{
    Lineagent__V1__FirmwareRelease fw = LINEAGENT__V1__FIRMWARE_RELEASE__INIT;
    fw.version = (char *)version;
    Lineagent__V1__LotStarted b = LINEAGENT__V1__LOT_STARTED__INIT;
    b.product = (char *)"PCB-A";
    b.quantity = qty;
    b.firmware = &fw;
    b.order_revision = 1;
    TraceEvent ev = envelope(lot, t);
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_LOT_STARTED;
    ev.lot_started = &b;
    assert_int_equal(yield_apply(y, &ev), 1);
}

static void revision(yield *y, const char *lot, uint32_t rev, uint32_t qty, const char *version, int64_t t)
{
    Lineagent__V1__FirmwareRelease fw = LINEAGENT__V1__FIRMWARE_RELEASE__INIT;
    fw.version = (char *)version;
    Lineagent__V1__OrderAccepted b = LINEAGENT__V1__ORDER_ACCEPTED__INIT;
    b.revision = rev;
    b.quantity = qty;
    b.firmware = &fw;
    TraceEvent ev = envelope(lot, t);
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_ACCEPTED;
    ev.order_accepted = &b;
    assert_int_equal(yield_apply(y, &ev), 1);
}

static void unit_failed(yield *y, const char *lot, Step step, const char *mode, int64_t t)
{
    Lineagent__V1__UnitFailed b = LINEAGENT__V1__UNIT_FAILED__INIT;
    b.step = step;
    b.failure_mode = (char *)mode;
    TraceEvent ev = envelope(lot, t);
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_FAILED;
    ev.unit_failed = &b;
    assert_int_equal(yield_apply(y, &ev), 1);
}

static void unit_completed(yield *y, const char *lot, int passed, const char *version, int64_t t)
{
    Lineagent__V1__UnitCompleted b = LINEAGENT__V1__UNIT_COMPLETED__INIT;
    b.passed = passed;
    b.firmware_version = (char *)version;
    TraceEvent ev = envelope(lot, t);
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_COMPLETED;
    ev.unit_completed = &b;
    assert_int_equal(yield_apply(y, &ev), 1);
}

static void unit_tested(yield *y, const char *lot, const char *name, double value, int64_t t)
{
    Lineagent__V1__Measurement m = LINEAGENT__V1__MEASUREMENT__INIT, *mp = &m;
    m.name = (char *)name;
    m.value = value;
    m.low = 3.0;
    m.high = 3.6;
    m.unit = (char *)"V";
    Lineagent__V1__UnitTested b = LINEAGENT__V1__UNIT_TESTED__INIT;
    b.n_measurements = 1;
    b.measurements = &mp;
    TraceEvent ev = envelope(lot, t);
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_TESTED;
    ev.unit_tested = &b;
    assert_int_equal(yield_apply(y, &ev), 1);
}

static void lot_completed(yield *y, const char *lot, int64_t t)
{
    Lineagent__V1__LotCompleted b = LINEAGENT__V1__LOT_COMPLETED__INIT;
    TraceEvent ev = envelope(lot, t);
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_LOT_COMPLETED;
    ev.lot_completed = &b;
    assert_int_equal(yield_apply(y, &ev), 1);
}

static json_t *doc(const yield *y, int64_t now, uint32_t in_progress)
{
    char *s = yield_json(y, "S1", "L1", now, in_progress);
    assert_non_null(s);
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    free(s);
    assert_non_null(j);
    return j;
}

static json_int_t iget(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }
static double rget(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

static int setup(void **state)
{
    seq = 0;
    *state = yield_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    yield_free(*state);
    return 0;
}

static void test_empty(void **state)
{
    yield *y = *state;
    json_t *j = doc(y, T0, 0);
    assert_true(json_is_null(json_object_get(j, "lot")));
    assert_int_equal(json_array_size(json_object_get(j, "completed")), 0);
    assert_string_equal(json_string_value(json_object_get(j, "site")), "S1");
    json_decref(j);
    assert_null(yield_current_lot(y));
    assert_int_equal(yield_first_seq(y), 0);
    char line[128];
    yield_describe(y, line, sizeof line);
    assert_string_equal(line, "no lot in progress");
}

static void test_counts_failures_versions_rate(void **state)
{
    yield *y = *state;
    lot_started(y, "LOT-1", 10, "1.0.0", T0);
    json_t *j = doc(y, T0, 0);
    json_t *lot = json_object_get(j, "lot");
    assert_true(json_is_null(json_object_get(lot, "yield"))); /* before the first outcome */
    assert_true(json_is_null(json_object_get(lot, "unitsPerHour")));
    json_decref(j);
    for (int i = 0; i < 3; i++) unit_completed(y, "LOT-1", 1, "1.0.0", T0 + 1000 * (i + 1));
    unit_failed(y, "LOT-1", LINEAGENT__V1__STEP__VERIFY, "verify_mismatch", T0 + 4000);
    unit_completed(y, "LOT-1", 0, NULL, T0 + 4000); /* failed before verify: no version */
    revision(y, "LOT-1", 2, 12, "1.0.1", T0 + 5000);
    unit_completed(y, "LOT-1", 1, "1.0.1", T0 + 6000);
    unit_failed(y, "LOT-1", LINEAGENT__V1__STEP__TEST, "vdd_low", T0 + 7000);
    unit_completed(y, "LOT-1", 0, "1.0.1", T0 + 7000);
    unit_failed(y, "LOT-1", LINEAGENT__V1__STEP__TEST, "vdd_low", T0 + 8000);
    unit_completed(y, "LOT-1", 0, "1.0.1", T0 + 8000);
    assert_string_equal(yield_current_lot(y), "LOT-1");
    j = doc(y, T0 + 3600000 / 100, 2); /* 36 s after the start */
    lot = json_object_get(j, "lot");
    assert_string_equal(json_string_value(json_object_get(lot, "lotId")), "LOT-1");
    assert_string_equal(json_string_value(json_object_get(lot, "firmwareVersion")), "1.0.1");
    assert_int_equal(iget(lot, "revision"), 2);
    assert_int_equal(iget(lot, "quantity"), 12);
    assert_int_equal(iget(lot, "passed"), 4);
    assert_int_equal(iget(lot, "failed"), 3);
    assert_int_equal(iget(lot, "inProgress"), 2);
    assert_true(fabs(rget(lot, "yield") - 4.0 / 7) < 1e-6);
    assert_true(fabs(rget(lot, "firstPassYield") - 4.0 / 7) < 1e-6);
    assert_true(fabs(rget(lot, "unitsPerHour") - 700) < 1e-6); /* 7 units in 1/100 h */
    json_t *f = json_object_get(lot, "failures");
    assert_int_equal(json_array_size(f), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(f, 0), "mode")), "verify_mismatch");
    assert_int_equal(iget(json_array_get(f, 1), "count"), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(f, 1), "step")), "TEST");
    json_t *v = json_object_get(lot, "versions");
    assert_int_equal(json_array_size(v), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "version")), "1.0.0");
    assert_int_equal(iget(json_array_get(v, 0), "passed"), 3);
    assert_true(json_is_null(json_object_get(json_array_get(v, 1), "version")));
    assert_int_equal(iget(json_array_get(v, 1), "failed"), 1);
    assert_int_equal(iget(json_array_get(v, 2), "passed"), 1);
    assert_int_equal(iget(json_array_get(v, 2), "failed"), 2);
    json_decref(j);
    char line[128];
    yield_describe(y, line, sizeof line);
    assert_string_equal(line, "lot LOT-1: 7 of 12 done, yield 57.1%");
}

static void test_measurement_statistics(void **state)
{
    yield *y = *state;
    lot_started(y, "LOT-1", 4, "1.0.0", T0);
    const double v[] = {3.2, 3.3, 3.4, 3.3};
    for (int i = 0; i < 4; i++) unit_tested(y, "LOT-1", "vdd", v[i], T0 + i);
    unit_tested(y, "LOT-1", "vdd", NAN, T0 + 5); /* a missing measurement is no value */
    json_t *j = doc(y, T0 + 10, 0);
    json_t *m = json_array_get(json_object_get(json_object_get(j, "lot"), "measurements"), 0);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "unit")), "V");
    assert_int_equal(iget(m, "count"), 4);
    double mean = 3.3, sd = sqrt((0.01 + 0 + 0.01 + 0) / 3);
    assert_true(fabs(rget(m, "mean") - mean) < 1e-9);
    assert_true(fabs(rget(m, "stddev") - sd) < 1e-6);
    assert_true(fabs(rget(m, "min") - 3.2) < 1e-9);
    assert_true(fabs(rget(m, "max") - 3.4) < 1e-9);
    assert_true(fabs(rget(m, "cpk") - fmin(3.6 - mean, mean - 3.0) / (3 * sd)) < 1e-4);
    json_decref(j);
}

static void test_completed_lots_kept_and_first_seq(void **state)
{
    yield *y = *state;
    uint64_t first[YIELD_KEEP_COMPLETED + 2];
    char lot[16];
    for (int k = 0; k < YIELD_KEEP_COMPLETED + 2; k++) {
        snprintf(lot, sizeof lot, "LOT-%d", k);
        first[k] = seq + 1;
        lot_started(y, lot, 1, "1.0.0", T0 + k * 10000);
        unit_completed(y, lot, 1, "1.0.0", T0 + k * 10000 + 3600);
        lot_completed(y, lot, T0 + k * 10000 + 3600);
    }
    assert_null(yield_current_lot(y));
    json_t *j = doc(y, T0 + 100000, 0);
    json_t *c = json_object_get(j, "completed");
    assert_int_equal(json_array_size(c), YIELD_KEEP_COMPLETED); /* newest first */
    snprintf(lot, sizeof lot, "LOT-%d", YIELD_KEEP_COMPLETED + 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(c, 0), "lotId")), lot);
    assert_true(json_is_null(json_object_get(j, "lot")));
    /* a completed lot's rate runs until its completion, not until now */
    assert_true(fabs(rget(json_array_get(c, 0), "unitsPerHour") - 1000) < 1e-6);
    json_decref(j);
    assert_int_equal(yield_first_seq(y), first[2]); /* the oldest lot kept */
    /* events of a lot the document dropped change nothing */
    TraceEvent ev = envelope("LOT-0", T0);
    Lineagent__V1__UnitCompleted b = LINEAGENT__V1__UNIT_COMPLETED__INIT;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_COMPLETED;
    ev.unit_completed = &b;
    assert_int_equal(yield_apply(y, &ev), 0);
    /* a repeated lot_started (a resumed lot) changes nothing */
    lot_started(y, "LOT-4", 1, "9.9.9", T0);
    j = doc(y, T0 + 100000, 0);
    assert_int_equal(iget(json_array_get(json_object_get(j, "completed"), 0), "passed"), 1);
    json_decref(j);
}

static void test_lists_bounded(void **state)
{
    yield *y = *state;
    lot_started(y, "LOT-1", 1000, "1.0.0", T0);
    char s[32];
    for (int i = 0; i < 40; i++) {
        snprintf(s, sizeof s, "mode_%d", i);
        unit_failed(y, "LOT-1", LINEAGENT__V1__STEP__TEST, s, T0 + i);
        snprintf(s, sizeof s, "v%d", i);
        unit_completed(y, "LOT-1", 0, s, T0 + i);
        snprintf(s, sizeof s, "m%d", i);
        unit_tested(y, "LOT-1", s, 3.3, T0 + i);
    }
    json_t *j = doc(y, T0 + 100, 0);
    json_t *lot = json_object_get(j, "lot");
    json_t *f = json_object_get(lot, "failures");
    json_t *last = json_array_get(f, json_array_size(f) - 1);
    assert_true(json_array_size(f) < 40);
    assert_string_equal(json_string_value(json_object_get(last, "mode")), "other");
    json_int_t total = 0;
    for (size_t i = 0; i < json_array_size(f); i++) total += iget(json_array_get(f, i), "count");
    assert_int_equal(total, 40); /* nothing lost, only folded */
    assert_true(json_array_size(json_object_get(lot, "versions")) < 40);
    assert_true(json_array_size(json_object_get(lot, "measurements")) < 40);
    assert_int_equal(iget(lot, "failed"), 40);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counts_failures_versions_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_measurement_statistics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_completed_lots_kept_and_first_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lists_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
