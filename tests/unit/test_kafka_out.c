/* test_kafka_out.c - the forwarder against the embedded mock cluster: a
 * backlog is delivered whole, and the delivery watermark advances while it
 * drains, not only at its end (delivery reports keep room in librdkafka's
 * queue, so the loop that reads the backlog may not return for a million
 * events; if it does not mark as it goes, a crash mid-drain resends it all
 * and `spool stats` shows no progress). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <time.h>

#include "config.h"
#include "kafka_out.h"
#include "log.h"
#include "spool_fixture.h"

#define BACKLOG 150000

static void test_backlog_marked_while_draining(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, &(spool_options){"NORMAL", 0});
    append_batch(sp, BACKLOG, "k");
    config cfg = {0};
    config_kv props[] = {{"bootstrap.servers", "embedded"}, {"acks", "all"}};
    cfg.spool_path = f->path;
    cfg.spool_synchronous = "FULL";
    cfg.kafka_topic = "lineagent.trace.v1";
    cfg.kafka_queue_high_water = 10000;
    cfg.kafka_props = props;
    cfg.n_kafka_props = 2;
    char err[512] = "";
    kafka_out *ko = kafka_out_start(&cfg, err, sizeof err);
    if (!ko) fail_msg("kafka_out_start: %s", err);

    int64_t upto = 0, last = 0, midway = 0; /* distinct watermarks short of the end */
    for (int ms = 0; ms < 120000 && upto < BACKLOG; ms++) {
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
        upto = spool_delivered_upto(sp);
        assert_true(upto >= 0);
        if (upto != last && upto < BACKLOG) midway++;
        last = upto;
    }
    assert_int_equal(upto, BACKLOG);
    assert_int_equal(kafka_out_drain(ko, sp, 1000), 0);
    /* marks every 50 ms at most; the drain takes several of those */
    if (midway < 2) fail_msg("the watermark moved %lld times before the end of the drain", (long long)midway);
    kafka_out_stop(ko);
    spool_close(sp);
}

int main(void)
{
    log_set_level(LL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backlog_marked_while_draining, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
