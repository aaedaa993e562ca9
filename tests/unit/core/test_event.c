/* SPDX-License-Identifier: Apache-2.0 */
/* test_event.c - events are stamped, encoded and spooled so they decode back
 * intact, with fresh UUIDs and gap-free sequence numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "tmpdir.h"

typedef struct seen {
    int n;
    uint64_t seq[8];
    char type[8][32];
    char key[8][65];
    Lineagent__V1__TraceEvent *ev[8];
} seen;

static int collect(void *ud, const spool_event *e)
{
    seen *s = ud;
    s->seq[s->n] = e->seq;
    snprintf(s->type[s->n], sizeof s->type[0], "%s", e->type);
    snprintf(s->key[s->n], sizeof s->key[0], "%s", e->key);
    s->ev[s->n] = lineagent__v1__trace_event__unpack(NULL, e->len, e->payload);
    s->n++;
    return 0;
}

static void test_uuid7_format_order_and_uniqueness(void **state)
{
    char prev[37], id[37];
    int64_t t0 = clock_wall_ms();
    event_uuid7(prev, t0);
    assert_int_equal(strlen(prev), 36);
    assert_int_equal(prev[8], '-');
    assert_int_equal(prev[14], '7'); /* version 7 */
    assert_true(strchr("89ab", prev[19]) != NULL); /* RFC 9562 variant */
    /* The first 48 bits are the Unix time in ms. */
    char ts[13];
    memcpy(ts, prev, 8);
    memcpy(ts + 8, prev + 9, 4);
    ts[12] = 0;
    int64_t ms = (int64_t)strtoll(ts, NULL, 16);
    assert_int_equal(ms, t0);
    /* More ids than fit in one millisecond's counter: still increasing. */
    for (int i = 0; i < 10000; i++) {
        event_uuid7(id, t0 + i / 5000); /* 5000 ids per ms */
        assert_true(strcmp(id, prev) > 0);
        memcpy(prev, id, sizeof id);
    }
    event_uuid7(id, t0 - 1000); /* the clock stepped back */
    assert_true(strcmp(id, prev) > 0);
}

static void test_commit_stamps_and_round_trips(void **state)
{
    tmpdir tmp;
    char path[128];
    assert_int_equal(tmpdir_make(&tmp, "test_event"), 0);
    snprintf(path, sizeof path, "%s/spool.db", tmp.path);
    spool *sp;
    char err[256];
    spool_options so = {"FULL", 0};
    assert_int_equal(spool_open(&sp, path, &so, err, sizeof err), 0);

    assert_int_equal(spool_begin(sp), 0);
    TraceEvent ev = LINEAGENT__V1__TRACE_EVENT__INIT;
    Lineagent__V1__UnitWritten w = LINEAGENT__V1__UNIT_WRITTEN__INIT;
    ev.order_id = "WO-1";
    ev.lot_id = "LOT-7";
    ev.board_id = "LOT-7-B00001";
    ev.station = "prog1";
    w.version = "1.0.0";
    w.sha256 = "aa";
    w.readback_sha256 = "aa";
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_WRITTEN;
    ev.unit_written = &w;
    assert_int_equal(event_commit(sp, "S1", "L1", &ev), 0);
    TraceEvent rej = LINEAGENT__V1__TRACE_EVENT__INIT;
    Lineagent__V1__OrderRejected r = LINEAGENT__V1__ORDER_REJECTED__INIT;
    rej.order_id = "WO-2";
    r.reason = "quantity must be at least 1";
    rej.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_REJECTED;
    rej.order_rejected = &r;
    assert_int_equal(event_commit(sp, "S1", "L1", &rej), 0);
    assert_int_equal(spool_commit(sp), 0);

    seen s = {0};
    assert_int_equal(spool_pending_page(sp, 0, 10, collect, &s), 2);
    assert_int_equal(s.seq[0] + 1, s.seq[1]);
    assert_string_equal(s.type[0], "unit_written");
    assert_string_equal(s.type[1], "order_rejected");
    assert_string_equal(s.key[0], "LOT-7"); /* lot id keys a lot's events */
    assert_string_equal(s.key[1], "WO-2");  /* no lot: the order id */
    assert_non_null(s.ev[0]);
    assert_int_equal(s.ev[0]->seq, s.seq[0]);
    assert_string_equal(s.ev[0]->site, "S1");
    assert_string_equal(s.ev[0]->line, "L1");
    assert_int_equal(strlen(s.ev[0]->event_id), 36);
    assert_string_not_equal(s.ev[0]->event_id, s.ev[1]->event_id);
    assert_true(s.ev[0]->time_ms > 1700000000000LL);
    assert_int_equal(s.ev[0]->body_case, LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_WRITTEN);
    assert_string_equal(s.ev[0]->unit_written->version, "1.0.0");
    assert_string_equal(s.ev[1]->order_rejected->reason, "quantity must be at least 1");
    for (int i = 0; i < s.n; i++) lineagent__v1__trace_event__free_unpacked(s.ev[i], NULL);
    spool_close(sp);
    assert_int_equal(tmpdir_remove(&tmp), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid7_format_order_and_uniqueness),
        cmocka_unit_test(test_commit_stamps_and_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
