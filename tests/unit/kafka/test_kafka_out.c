/* SPDX-License-Identifier: Apache-2.0 */
/* test_kafka_out.c - the forwarder against librdkafka's mock cluster: a
 * backlog is delivered whole, and the delivery watermark advances while it
 * drains, not only at its end (delivery reports keep room in librdkafka's
 * queue, so the loop that reads the backlog may not return for a million
 * events; if it does not mark as it goes, a crash mid-drain resends it all
 * and `spool stats` shows no progress). Events not delivered - refused by
 * the broker or by the producer, or in flight at a stop - are sent again
 * and logged as one line per round, a round a second, not one per event. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "kafka_out.h"
#include "log.h"
#include "spool_fixture.h"

#define BACKLOG 150000

#define TOPIC "lineagent.trace.v1"

/* props: room for at least 2, the ones set here */
static config forwarder_config(const char *path, kv_pair *props, const char *bootstrap)
{
    props[0] = (kv_pair){"bootstrap.servers", (char *)bootstrap};
    props[1] = (kv_pair){"acks", "all"};
    config cfg = {0};
    cfg.spool_path = (char *)path;
    cfg.spool_synchronous = "FULL";
    cfg.kafka_topic = TOPIC;
    cfg.kafka_queue_high_water = 10000;
    cfg.kafka_props = props;
    cfg.n_kafka_props = 2;
    return cfg;
}

static kafka_out *start_ok(const config *cfg)
{
    char err[512] = "";
    kafka_out *ko = kafka_out_start(cfg, err, sizeof err);
    if (!ko) fail_msg("kafka_out_start: %s", err);
    return ko;
}

/* The log goes to stderr: while captured, to a file the test reads back. */
typedef struct capture {
    char path[160];
    int saved_fd;
} capture;

static void capture_begin(capture *c, const fixture *f)
{
    snprintf(c->path, sizeof c->path, "%s/stderr.log", f->dir);
    fflush(stderr);
    c->saved_fd = dup(2);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(c->saved_fd >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
}

static void capture_end(capture *c)
{
    fflush(stderr);
    dup2(c->saved_fd, 2);
    close(c->saved_fd);
}

/* The number of captured lines containing needle. */
static int capture_count(const capture *c, const char *needle)
{
    FILE *fp = fopen(c->path, "r");
    assert_non_null(fp);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, fp))
        if (strstr(line, needle)) n++;
    fclose(fp);
    return n;
}

static void test_backlog_marked_while_draining(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, &(spool_options){"NORMAL", 0});
    append_batch(sp, BACKLOG, "k");
    kv_pair props[2];
    config cfg = forwarder_config(f->path, props, "embedded");
    kafka_out *ko = start_ok(&cfg);

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

/* A mock cluster of the test's own, for faults the embedded one cannot be
 * asked for. */
typedef struct test_mock {
    rd_kafka_t *host;
    rd_kafka_mock_cluster_t *mc;
} test_mock;

static void test_mock_start(test_mock *m)
{
    char err[512];
    m->host = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof err);
    assert_non_null(m->host);
    m->mc = rd_kafka_mock_cluster_new(m->host, 1);
    assert_non_null(m->mc);
    rd_kafka_mock_topic_create(m->mc, TOPIC, 4, 1);
}

static void test_mock_stop(test_mock *m)
{
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->host);
}

/* A stop while Kafka is away withdraws what librdkafka holds: one line
 * says how many, none per event, and the next start sends them. */
static void test_stop_with_events_held_logs_one_line(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, &(spool_options){"NORMAL", 0});
    append_batch(sp, BACKLOG, "k");
    test_mock m;
    test_mock_start(&m);
    kv_pair props[2];
    config cfg = forwarder_config(f->path, props, rd_kafka_mock_cluster_bootstraps(m.mc));
    kafka_out *ko = start_ok(&cfg);
    int64_t upto = 0;
    for (int ms = 0; ms < 60000 && upto == 0; ms++) {
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
        upto = spool_delivered_upto(sp);
    }
    assert_true(upto > 0);
    rd_kafka_mock_broker_set_down(m.mc, 1);
    nanosleep(&(struct timespec){.tv_nsec = 300000000}, NULL); /* the forwarder fills its window */
    capture c;
    capture_begin(&c, f);
    log_set_level(LL_INFO);
    kafka_out_stop(ko);
    log_set_level(LL_WARN);
    capture_end(&c);
    assert_int_equal(capture_count(&c, "not delivered"), 0);
    assert_int_equal(capture_count(&c, "were withdrawn before Kafka acknowledged them"), 1);
    int64_t left = spool_pending_count(sp);
    assert_true(left > 0 && left < BACKLOG);

    rd_kafka_mock_broker_set_up(m.mc, 1);
    ko = start_ok(&cfg);
    assert_int_equal(kafka_out_drain(ko, sp, 60000), 0);
    assert_int_equal(spool_delivered_upto(sp), BACKLOG);
    kafka_out_stop(ko);
    test_mock_stop(&m);
    spool_close(sp);
}

/* The broker refuses three Produce requests outright (an ACL, say): their
 * events come back failed, are reported in at most one line per request,
 * and are all delivered once the broker accepts them. */
static void test_refused_requests_reported_per_round(void **state)
{
    fixture *f = *state;
    enum { EVENTS = 20000, REFUSED = 3 };
    spool *sp = open_ok(f->path, &(spool_options){"NORMAL", 0});
    append_batch(sp, EVENTS, "k");
    test_mock m;
    test_mock_start(&m);
    rd_kafka_mock_push_request_errors(m.mc, 0 /* ApiKey Produce */, REFUSED,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    kv_pair props[2];
    config cfg = forwarder_config(f->path, props, rd_kafka_mock_cluster_bootstraps(m.mc));
    capture c;
    capture_begin(&c, f);
    kafka_out *ko = start_ok(&cfg);
    int64_t left = kafka_out_drain(ko, sp, 60000);
    kafka_out_stop(ko);
    capture_end(&c);
    int reports = capture_count(&c, "not delivered");
    assert_int_equal(left, 0);
    assert_int_equal(spool_delivered_upto(sp), EVENTS);
    if (reports < 1 || reports > REFUSED) fail_msg("%d log lines for %d refused requests", reports, REFUSED);
    test_mock_stop(&m);
    spool_close(sp);
}

/* An event the producer refuses outright (larger than message.max.bytes
 * allows) holds the spool up behind it, is never skipped (nothing is lost)
 * and is tried again once a second, not in a loop that fills the log. */
static void test_refused_event_retried_once_a_second(void **state)
{
    fixture *f = *state;
    spool *sp = open_ok(f->path, &(spool_options){"NORMAL", 0});
    append_batch(sp, 10, "before");
    assert_int_equal(append_sized(sp, "big", 2000), 11);
    append_batch(sp, 10, "after");
    kv_pair props[3];
    config cfg = forwarder_config(f->path, props, "embedded");
    props[2] = (kv_pair){"message.max.bytes", "1000"};
    cfg.n_kafka_props = 3;
    capture c;
    capture_begin(&c, f);
    int64_t t0 = clock_mono_ms();
    kafka_out *ko = start_ok(&cfg);
    for (int i = 0; i < 30; i++) {
        kafka_out_kick(ko); /* as a busy line does at every commit */
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    }
    kafka_out_stop(ko);
    double s = (double)(clock_mono_ms() - t0) / 1e3;
    capture_end(&c);
    int lines = capture_count(&c, "kafka: produce seq 11: ");
    assert_int_equal(spool_delivered_upto(sp), 10);
    assert_int_equal(spool_pending_count(sp), 11);
    /* one try at once, then one a second; a slow machine stretches the run */
    if (lines < 2 || lines > (int)s + 2) fail_msg("%d log lines in %.1f s for one refused event", lines, s);
    spool_close(sp);
}

/* Reads TOPIC from the start until n records have come (or 30 s have
 * passed), and then for one more second, so that a record sent twice shows;
 * calls check on each. The number read. */
static int consume(const char *bootstrap, int n, void (*check)(const rd_kafka_message_t *, void *), void *ud)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", "test_kafka_out", err, sizeof err), RD_KAFKA_CONF_OK);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(c);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(4);
    for (int p = 0; p < 4; p++)
        rd_kafka_topic_partition_list_add(parts, TOPIC, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(c, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);
    int got = 0;
    time_t t0 = time(NULL), done = 0;
    while (!done || time(NULL) - done < 1) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (m && !m->err) {
            check(m, ud);
            got++;
        }
        if (m) rd_kafka_message_destroy(m);
        if (!done && (got >= n || time(NULL) - t0 >= 30)) done = time(NULL);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return got;
}

typedef struct order_check {
    uint64_t last_seq;
    size_t big_len;
} order_check;

static void check_record(const rd_kafka_message_t *m, void *ud)
{
    order_check *oc = ud;
    const void *id;
    size_t id_len;
    rd_kafka_headers_t *hdrs;
    assert_int_equal(rd_kafka_message_headers(m, &hdrs), 0);
    assert_int_equal(rd_kafka_header_get_last(hdrs, "event_id", &id, &id_len), 0);
    char idstr[64];
    snprintf(idstr, sizeof idstr, "%.*s", (int)id_len, (const char *)id);
    const char *dash = strchr(idstr, '-');
    assert_non_null(dash);
    uint64_t seq = strtoull(dash + 1, NULL, 10);
    if (seq != oc->last_seq + 1)
        fail_msg("record for seq %llu after seq %llu", (unsigned long long)seq, (unsigned long long)oc->last_seq);
    oc->last_seq = seq;
    const void *type;
    size_t type_len;
    assert_int_equal(rd_kafka_header_get_last(hdrs, "event_type", &type, &type_len), 0);
    assert_int_equal(type_len, strlen("unit_written"));
    assert_memory_equal(type, "unit_written", type_len);
    assert_int_equal(m->key_len, 5);
    assert_memory_equal(m->key, "LOT-1", 5);
    assert_int_equal(rd_kafka_message_timestamp(m, NULL), 1000 + (int64_t)seq);
    static uint8_t want[400000];
    size_t len = oc->big_len;
    if (strncmp(idstr, "big-", 4) == 0)
        fill_payload(seq, want, len);
    else
        len = make_payload(seq, want);
    assert_int_equal(m->len, len);
    if (len) assert_memory_equal(m->payload, want, len);
}

/* What a consumer receives: every event once, in seq order, with its own
 * key, headers, timestamp and payload - also when librdkafka's queue
 * refuses events partway through a run read from the spool (a queue
 * smaller than the run), and when events larger than the run's byte bound
 * come between small ones. */
static void test_every_event_delivered_once_in_order(void **state)
{
    fixture *f = *state;
    enum { ROUNDS = 6, SMALL = 499, BIG = 300000 };
    spool *sp = open_ok(f->path, &(spool_options){"NORMAL", 0});
    for (int r = 0; r < ROUNDS; r++) {
        append_batch(sp, SMALL, "e");
        append_sized(sp, "big", BIG);
    }
    append_batch(sp, SMALL, "e");
    int events = ROUNDS * (SMALL + 1) + SMALL;
    test_mock m;
    test_mock_start(&m);
    kv_pair props[3];
    config cfg = forwarder_config(f->path, props, rd_kafka_mock_cluster_bootstraps(m.mc));
    props[2] = (kv_pair){"queue.buffering.max.messages", "50"};
    cfg.n_kafka_props = 3;
    kafka_out *ko = start_ok(&cfg);
    assert_int_equal(kafka_out_drain(ko, sp, 60000), 0);
    kafka_out_stop(ko);
    order_check oc = {0, BIG};
    assert_int_equal(consume(rd_kafka_mock_cluster_bootstraps(m.mc), events, check_record, &oc), events);
    assert_int_equal(oc.last_seq, events);
    test_mock_stop(&m);
    spool_close(sp);
}

int main(void)
{
    log_set_level(LL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backlog_marked_while_draining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_events_held_logs_one_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_requests_reported_per_round, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_event_retried_once_a_second, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_event_delivered_once_in_order, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
