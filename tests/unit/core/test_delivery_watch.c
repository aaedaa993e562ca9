/* SPDX-License-Identifier: Apache-2.0 */
/* test_delivery_watch.c - the kafka_stalled decision against a real spool:
 * raised only after the oldest undelivered event has stood still for the
 * configured time, cleared as soon as it moves, never for an empty spool,
 * and timed from when events began to wait, not from the last delivery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "delivery_watch.h"
#include "spool_fixture.h"

#define STALL_MS 5000

static spool *open_spool(void **state)
{
    fixture *f = *state;
    spool_options so = {"NORMAL", 0};
    return open_ok(f->path, &so);
}

/* Ticks once a second from `from` to `to` (ms, inclusive); the number of
 * ticks that changed the decision. */
static int tick_through(delivery_watch *w, spool *sp, int64_t from, int64_t to)
{
    int changes = 0;
    for (int64_t t = from; t <= to; t += 1000) changes += delivery_watch_tick(w, sp, t);
    return changes;
}

static void test_raised_after_stall_cleared_when_deliveries_move(void **state)
{
    spool *sp = open_spool(state);
    delivery_watch w;
    delivery_watch_init(&w, STALL_MS);
    append_batch(sp, 10, "ev");
    assert_int_equal(tick_through(&w, sp, 0, 4000), 0);
    assert_false(w.stalled);
    assert_int_equal(delivery_watch_tick(&w, sp, 5000), 1);
    assert_true(w.stalled);
    char detail[300];
    delivery_watch_describe(&w, detail, sizeof detail);
    /* seq 1 is the oldest undelivered; its time is 1000 + 1 ms */
    assert_non_null(strstr(detail, "past seq 1 (event time 1970-01-01T00:00:01Z)"));

    assert_int_equal(spool_mark_delivered(sp, 3, 1), 0);
    assert_int_equal(delivery_watch_tick(&w, sp, 6000), 1);
    assert_false(w.stalled);
    assert_int_equal(w.first_seq, 4);
    /* stuck again at seq 4: raised STALL_MS after it became the oldest */
    assert_int_equal(tick_through(&w, sp, 7000, 10000), 0);
    assert_int_equal(delivery_watch_tick(&w, sp, 11000), 1);
    assert_true(w.stalled);

    assert_int_equal(spool_mark_delivered(sp, 10, 2), 0);
    assert_int_equal(delivery_watch_tick(&w, sp, 12000), 1);
    assert_false(w.stalled);
    assert_int_equal(tick_through(&w, sp, 13000, 60000), 0);
    spool_close(sp);
}

static void test_empty_spool_never_raises(void **state)
{
    spool *sp = open_spool(state);
    delivery_watch w;
    delivery_watch_init(&w, STALL_MS);
    assert_int_equal(tick_through(&w, sp, 0, 120000), 0);
    assert_false(w.stalled);
    spool_close(sp);
}

/* After an idle hour the first new event is not late at once: the time
 * counts from when it began to wait. */
static void test_timed_from_when_events_began_to_wait(void **state)
{
    spool *sp = open_spool(state);
    delivery_watch w;
    delivery_watch_init(&w, STALL_MS);
    append_batch(sp, 2, "early");
    assert_int_equal(spool_mark_delivered(sp, 2, 1), 0);
    assert_int_equal(tick_through(&w, sp, 0, 3600000), 0);
    append_batch(sp, 1, "late");
    assert_int_equal(tick_through(&w, sp, 3601000, 3605000), 0);
    assert_int_equal(delivery_watch_tick(&w, sp, 3606000), 1);
    assert_true(w.stalled);
    assert_int_equal(w.first_seq, 3);
    spool_close(sp);
}

/* Looks at most once a second: a tick within the second reads nothing. */
static void test_looks_once_a_second(void **state)
{
    spool *sp = open_spool(state);
    delivery_watch w;
    delivery_watch_init(&w, STALL_MS);
    assert_int_equal(delivery_watch_tick(&w, sp, 0), 0);
    append_batch(sp, 1, "ev");
    delivery_watch_tick(&w, sp, 999);
    assert_int_equal(w.first_seq, 0);
    delivery_watch_tick(&w, sp, 1000);
    assert_int_equal(w.first_seq, 1);
    spool_close(sp);
}

static void test_zero_never_raises(void **state)
{
    spool *sp = open_spool(state);
    delivery_watch w;
    delivery_watch_init(&w, 0);
    append_batch(sp, 5, "ev");
    assert_int_equal(tick_through(&w, sp, 0, 600000), 0);
    assert_false(w.stalled);
    spool_close(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_raised_after_stall_cleared_when_deliveries_move, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_spool_never_raises, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timed_from_when_events_began_to_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_looks_once_a_second, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_never_raises, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
