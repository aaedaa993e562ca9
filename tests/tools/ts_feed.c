/* SPDX-License-Identifier: Apache-2.0 */
/* ts_feed.c - produces records for the tracestore tests and benchmark:
 *
 *   ts_feed --brokers B [--topic T] events N [--agents A] [--lot-size L]
 *           [--rate R] [--stamp-now 1] [--skip-seq S] [--first-seq S] [--tag X]
 *       N synthetic trace events as a line agent makes them: per lot a
 *       lot_started, per board unit_written, unit_tested (two measurements)
 *       and unit_completed; A agents interleaved, each with its own
 *       agent_instance_id and seq from --first-seq (default 1). Ids derive
 *       from (tag, agent, seq), so running it again re-sends the same
 *       events (their times are fixed too). --rate R: R events/s.
 *       --stamp-now 1: each event's time is its send time (latency).
 *       --time-offset-ms D: times shifted by D (same ids, other times: a
 *       producer bug tracestore must survive).
 *       --skip-seq S: agent 0's seq S is never sent (a gap).
 *   ts_feed --brokers B [--topic T] garbage
 *       the bad records tracestore must reject: random bytes, an event
 *       without event_id, one without a known body, one with a bad time.
 *   ts_feed --brokers B --topic T field SERIAL VERSION SHA256 TIME_MS SOURCE
 *       one FieldFirmwareReport.
 *
 * Waits for every delivery report; exit 1 if any record was not delivered.
 * Prints "produced N" on stdout. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <librdkafka/rdkafka.h>

#include "lineagent/v1/field_firmware.pb-c.h"
#include "lineagent/v1/trace_event.pb-c.h"

static long ts_feed_failed;

static void ts_feed_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err) ts_feed_failed++;
}

static int64_t ts_feed_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void ts_feed_send(rd_kafka_t *rk, const char *topic, const char *key, const void *buf, size_t len)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                                  RD_KAFKA_V_VALUE((void *)buf, len),
                                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (e) {
                fprintf(stderr, "ts_feed: produce: %s\n", rd_kafka_err2str(e));
                exit(1);
            }
            return;
        }
        rd_kafka_poll(rk, 10);
    }
}

static void ts_feed_event(rd_kafka_t *rk, const char *topic, Lineagent__V1__TraceEvent *ev)
{
    size_t len = lineagent__v1__trace_event__get_packed_size(ev);
    uint8_t *buf = malloc(len ? len : 1);
    lineagent__v1__trace_event__pack(ev, buf);
    ts_feed_send(rk, topic, ev->lot_id, buf, len);
    free(buf);
}

typedef struct ts_feed_opts {
    long n, agents, lot_size, rate, skip_seq, first_seq, stamp_now, time_offset_ms;
    const char *tag;
} ts_feed_opts;

/* Event k of an agent's stream (k from 0): lot_started, then 3 per board. */
static void ts_feed_one(rd_kafka_t *rk, const char *topic, const ts_feed_opts *o, long agent, long k,
                        int64_t time_ms)
{
    long per_lot = 1 + 3 * o->lot_size;
    long lot = k / per_lot, in_lot = k % per_lot, board = in_lot ? (in_lot - 1) / 3 : 0;
    char instance[64], event_id[96], lot_id[64], board_id[96], serial[96];
    uint64_t seq = (uint64_t)(o->first_seq + k);
    snprintf(instance, sizeof instance, "%s-agent-%04ld", o->tag, agent);
    snprintf(event_id, sizeof event_id, "%s-%012" PRIu64, instance, seq);
    snprintf(lot_id, sizeof lot_id, "%s-A%ld-LOT%06ld", o->tag, agent, lot);
    snprintf(board_id, sizeof board_id, "%s-B%05ld", lot_id, board);
    snprintf(serial, sizeof serial, "SN-%s-A%ld-%06ld-%05ld", o->tag, agent, lot, board);
    const char *version = lot % 2 ? "2.0.0" : "1.0.0";
    const char *sha = lot % 2 ? "bbbb" : "aaaa";
    Lineagent__V1__TraceEvent ev = LINEAGENT__V1__TRACE_EVENT__INIT;
    ev.event_id = event_id, ev.seq = seq, ev.time_ms = time_ms, ev.site = "S1";
    char line[32];
    snprintf(line, sizeof line, "L%ld", agent);
    ev.line = line, ev.order_id = "WO-FEED", ev.lot_id = lot_id, ev.agent_instance_id = instance;
    Lineagent__V1__LotStarted ls = LINEAGENT__V1__LOT_STARTED__INIT;
    Lineagent__V1__FirmwareRelease fw = LINEAGENT__V1__FIRMWARE_RELEASE__INIT;
    Lineagent__V1__UnitWritten uw = LINEAGENT__V1__UNIT_WRITTEN__INIT;
    Lineagent__V1__UnitTested ut = LINEAGENT__V1__UNIT_TESTED__INIT;
    Lineagent__V1__Measurement m[2] = {LINEAGENT__V1__MEASUREMENT__INIT, LINEAGENT__V1__MEASUREMENT__INIT};
    Lineagent__V1__Measurement *mp[2] = {&m[0], &m[1]};
    Lineagent__V1__UnitCompleted uc = LINEAGENT__V1__UNIT_COMPLETED__INIT;
    if (in_lot == 0) {
        fw.version = (char *)version, fw.sha256 = (char *)sha;
        ls.product = "PCBA-100", ls.quantity = (uint32_t)o->lot_size, ls.firmware = &fw, ls.order_revision = 1;
        ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_LOT_STARTED, ev.lot_started = &ls;
    } else {
        ev.board_id = board_id, ev.serial = serial;
        switch ((in_lot - 1) % 3) {
        case 0:
            ev.station = "prog1";
            uw.version = (char *)version, uw.sha256 = (char *)sha, uw.readback_sha256 = (char *)sha;
            uw.order_revision = 1, uw.write_station = "prog1", uw.image_size = 65536;
            ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_WRITTEN, ev.unit_written = &uw;
            break;
        case 1:
            ev.station = "fct1";
            m[0].name = "vcc", m[0].value = 3.3, m[0].low = 3.2, m[0].high = 3.4, m[0].unit = "V", m[0].passed = 1;
            m[1].name = "idle_current", m[1].value = 0.012, m[1].low = 0, m[1].high = 0.02, m[1].unit = "A";
            m[1].passed = 1;
            ut.passed = 1, ut.n_measurements = 2, ut.measurements = mp;
            ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_TESTED, ev.unit_tested = &ut;
            break;
        default:
            ev.station = "lock1";
            uc.firmware_version = (char *)version, uc.firmware_sha256 = (char *)sha, uc.passed = 1;
            ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_COMPLETED, ev.unit_completed = &uc;
            break;
        }
    }
    if (!(agent == 0 && (long)seq == o->skip_seq)) ts_feed_event(rk, topic, &ev);
}

static long ts_feed_events(rd_kafka_t *rk, const char *topic, const ts_feed_opts *o)
{
    int64_t t0 = ts_feed_now_ms(), base = 1767225600000LL; /* 2026-01-01 */
    for (long i = 0; i < o->n; i++) {
        if (o->rate > 0) {
            int64_t due = t0 + i * 1000 / o->rate;
            while (ts_feed_now_ms() < due) rd_kafka_poll(rk, (int)(due - ts_feed_now_ms()));
        }
        /* fixed times unless asked: a re-run re-sends identical events */
        int64_t when = o->stamp_now ? ts_feed_now_ms() : base + i + o->time_offset_ms;
        ts_feed_one(rk, topic, o, i % o->agents, i / o->agents, when);
        rd_kafka_poll(rk, 0);
    }
    return o->n - (o->skip_seq > 0);
}

static long ts_feed_garbage(rd_kafka_t *rk, const char *topic)
{
    const char junk[] = "\xff\xff\xff\xff not a protobuf";
    ts_feed_send(rk, topic, "junk", junk, sizeof junk - 1);
    Lineagent__V1__TraceEvent ev = LINEAGENT__V1__TRACE_EVENT__INIT;
    Lineagent__V1__UnitLocked ul = LINEAGENT__V1__UNIT_LOCKED__INIT;
    ev.seq = 1, ev.time_ms = ts_feed_now_ms(), ev.lot_id = "GARBAGE";
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_LOCKED, ev.unit_locked = &ul;
    ts_feed_event(rk, topic, &ev); /* no event_id */
    ev.event_id = "garbage-no-body";
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY__NOT_SET;
    ts_feed_event(rk, topic, &ev);
    ev.event_id = "garbage-bad-time";
    ev.time_ms = 1;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_LOCKED;
    ts_feed_event(rk, topic, &ev);
    return 4;
}

static long ts_feed_field(rd_kafka_t *rk, const char *topic, char **a)
{
    Lineagent__V1__FieldFirmwareReport r = LINEAGENT__V1__FIELD_FIRMWARE_REPORT__INIT;
    r.serial = a[0], r.version = a[1], r.sha256 = a[2], r.time_ms = strtoll(a[3], NULL, 10), r.source = a[4];
    size_t len = lineagent__v1__field_firmware_report__get_packed_size(&r);
    uint8_t *buf = malloc(len);
    lineagent__v1__field_firmware_report__pack(&r, buf);
    ts_feed_send(rk, topic, r.serial, buf, len);
    free(buf);
    return 1;
}

static int ts_feed_usage(void)
{
    fprintf(stderr, "usage: ts_feed --brokers B [--topic T] events N [--agents A] [--lot-size L] [--rate R]\n"
                    "               [--stamp-now 1] [--time-offset-ms D] [--skip-seq S] [--first-seq S] [--tag X]\n"
                    "       ts_feed --brokers B [--topic T] garbage\n"
                    "       ts_feed --brokers B --topic T field SERIAL VERSION SHA256 TIME_MS SOURCE\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *topic = "lineagent.trace.v1";
    ts_feed_opts o = {.agents = 1, .lot_size = 100, .first_seq = 1, .tag = "feed"};
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--brokers") == 0) brokers = argv[i + 1];
        else if (strcmp(argv[i], "--topic") == 0) topic = argv[i + 1];
        else return ts_feed_usage();
    }
    if (!brokers || i >= argc) return ts_feed_usage();
    const char *mode = argv[i++];
    if (strcmp(mode, "events") == 0) {
        if (i >= argc) return ts_feed_usage();
        o.n = atol(argv[i++]);
        for (; i + 1 < argc; i += 2) {
            long v = atol(argv[i + 1]);
            if (strcmp(argv[i], "--agents") == 0) o.agents = v > 0 ? v : 1;
            else if (strcmp(argv[i], "--lot-size") == 0) o.lot_size = v > 0 ? v : 1;
            else if (strcmp(argv[i], "--rate") == 0) o.rate = v;
            else if (strcmp(argv[i], "--skip-seq") == 0) o.skip_seq = v;
            else if (strcmp(argv[i], "--stamp-now") == 0) o.stamp_now = v;
            else if (strcmp(argv[i], "--time-offset-ms") == 0) o.time_offset_ms = v;
            else if (strcmp(argv[i], "--first-seq") == 0) o.first_seq = v > 0 ? v : 1;
            else if (strcmp(argv[i], "--tag") == 0) o.tag = argv[i + 1];
            else return ts_feed_usage();
        }
        if (i != argc) return ts_feed_usage();
    } else if (strcmp(mode, "field") == 0 ? argc - i != 5 : strcmp(mode, "garbage") != 0 || i != argc) {
        return ts_feed_usage();
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[][2] = {{"bootstrap.servers", brokers}, {"enable.idempotence", "true"}, {"linger.ms", "5"},
                           {"queue.buffering.max.messages", "200000"}, {"batch.num.messages", "10000"}};
    for (size_t k = 0; k < sizeof kv / sizeof *kv; k++)
        if (rd_kafka_conf_set(conf, kv[k][0], kv[k][1], err, sizeof err) != RD_KAFKA_CONF_OK) {
            fprintf(stderr, "ts_feed: %s\n", err);
            return 1;
        }
    rd_kafka_conf_set_dr_msg_cb(conf, ts_feed_dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "ts_feed: %s\n", err);
        return 1;
    }
    long n = strcmp(mode, "events") == 0 ? ts_feed_events(rk, topic, &o)
             : strcmp(mode, "garbage") == 0 ? ts_feed_garbage(rk, topic)
                                            : ts_feed_field(rk, topic, argv + i);
    rd_kafka_flush(rk, 120000);
    long left = rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    if (left || ts_feed_failed) {
        fprintf(stderr, "ts_feed: %ld records not delivered\n", left + ts_feed_failed);
        return 1;
    }
    printf("produced %ld\n", n);
    return 0;
}
