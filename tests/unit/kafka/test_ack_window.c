/* SPDX-License-Identifier: Apache-2.0 */
/* test_ack_window.c - unit tests for the forwarder's acknowledgement
 * window: the base (watermark + 1) moves only over contiguous acknowledged
 * seqs whatever order they arrive in, repeated or stale acknowledgements
 * change nothing, nothing beyond the window may be sent, and the ring is
 * reused correctly over many windows' worth of seqs. A base moved over an
 * unacknowledged seq would mark an event delivered that Kafka never had. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "ack_window.h"

static void test_in_order_and_out_of_order(void **state)
{
    ack_window *w = ack_window_new(101, 64);
    assert_non_null(w);
    assert_int_equal(ack_window_base(w), 101);
    assert_true(ack_window_is_acked(w, 100)); /* below the base */
    assert_false(ack_window_is_acked(w, 101));
    ack_window_ack(w, 103);
    ack_window_ack(w, 102);
    assert_int_equal(ack_window_base(w), 101); /* 101 still missing */
    assert_true(ack_window_is_acked(w, 102));
    assert_true(ack_window_is_acked(w, 103));
    assert_false(ack_window_is_acked(w, 104));
    ack_window_ack(w, 101);
    assert_int_equal(ack_window_base(w), 104);
    ack_window_ack(w, 104);
    assert_int_equal(ack_window_base(w), 105);
    ack_window_free(w);
}

static void test_repeated_and_stale_acks(void **state)
{
    ack_window *w = ack_window_new(1, 64);
    ack_window_ack(w, 1);
    ack_window_ack(w, 1); /* a resend acknowledged twice */
    assert_int_equal(ack_window_base(w), 2);
    ack_window_ack(w, 5);
    ack_window_ack(w, 5);
    assert_int_equal(ack_window_base(w), 2);
    ack_window_ack(w, 2);
    ack_window_ack(w, 3);
    assert_int_equal(ack_window_base(w), 4);
    ack_window_ack(w, 4);
    assert_int_equal(ack_window_base(w), 6);
    ack_window_free(w);
}

static void test_room(void **state)
{
    ack_window *w = ack_window_new(10, 16);
    assert_true(ack_window_has_room(w, 25));
    assert_false(ack_window_has_room(w, 26));
    ack_window_ack(w, 26); /* out of the window: ignored, not wrapped onto 10 */
    assert_false(ack_window_is_acked(w, 10));
    assert_int_equal(ack_window_base(w), 10);
    ack_window_ack(w, 10);
    assert_true(ack_window_has_room(w, 26));
    ack_window_free(w);
}

/* Four "partitions" acknowledging interleaved, each in its own order,
 * over 100 windows' worth of seqs: the base is always the lowest seq not
 * yet acknowledged. */
static void test_ring_reuse(void **state)
{
    enum { SIZE = 64, N = 6400 };
    ack_window *w = ack_window_new(1, SIZE);
    uint8_t *acked = calloc(N + 2, 1);
    assert_non_null(acked);
    uint64_t sent = 0;
    unsigned rnd = 12345;
    while (ack_window_base(w) <= N) {
        while (sent < N && ack_window_has_room(w, sent + 1)) sent++;
        /* acknowledge one sent, unacknowledged seq, chosen at random */
        uint64_t lo = ack_window_base(w), span = sent - lo + 1;
        rnd = rnd * 1103515245u + 12345u;
        uint64_t s = lo + (rnd >> 8) % span;
        while (acked[s]) s = s == sent ? lo : s + 1;
        acked[s] = 1;
        ack_window_ack(w, s);
        uint64_t want = lo;
        while (want <= N && acked[want]) want++;
        assert_int_equal(ack_window_base(w), want);
        for (uint64_t q = want; q <= sent; q++) assert_int_equal(ack_window_is_acked(w, q), acked[q]);
    }
    assert_int_equal(ack_window_base(w), N + 1);
    free(acked);
    ack_window_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_and_out_of_order),
        cmocka_unit_test(test_repeated_and_stale_acks),
        cmocka_unit_test(test_room),
        cmocka_unit_test(test_ring_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
