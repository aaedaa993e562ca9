/* SPDX-License-Identifier: Apache-2.0 */
/* ts_consumer.c - the consume-and-store loop (ts_consumer.h).
 *
 * Offsets live in PostgreSQL (consumer_offsets), written in the transaction
 * that stores the records before them; nothing is committed to Kafka. When
 * the group assigns partitions, each is started at its stored offset (the
 * beginning when none): whatever was read but not stored before a crash or
 * a rebalance is read again, and the event-id key makes the second store a
 * no-op. Committing to Kafka after the database commit instead would leave a
 * window (database committed, Kafka commit lost) that replays a batch; with
 * the event-id key that is harmless too, but rejected records and field
 * reports would need keys of their own, and the offset would be one more
 * thing that can fail separately.
 *
 * While the database is unreachable the assigned partitions are paused and
 * the batch is kept; it is retried with a doubling backoff up to
 * retry_max_ms, and consumption resumes by itself once it is stored. When
 * the database refuses the batch for its data (a record it cannot take
 * despite decoding), the batch is halved until the record it refuses stands
 * alone, and that one goes to rejected_records with the database's reason:
 * one bad record never stops the stream.
 *
 * Storing runs beside consuming: a full batch goes to the store thread
 * (ts_storer.c) and the next one fills meanwhile; the next is handed over
 * only once the previous is stored (or, not stored, has been retried here
 * until it was), so batches commit in order and at most two are in memory. */
#include "ts_consumer.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_audit.h"
#include "ts_batch.h"
#include "ts_db.h"
#include "ts_log.h"
#include "ts_metrics.h"
#include "ts_store.h"
#include "ts_storer.h"

typedef struct ts_consumer {
    const ts_config *cfg;
    volatile sig_atomic_t *stop;
    rd_kafka_t *rk;
    PGconn *db; /* offsets, gaps, and retrying a batch the store thread could not store */
    ts_storer *storer;
    ts_batch bufs[2];
    ts_batch *cur;      /* filling; the other one may be with the storer */
    ts_batch *retrying; /* being retried by ts_flush (a rebalance drops it) */
    int64_t batch_start_ms;
    int paused;
    int db_down_logged;
    int64_t next_gap_check_ms;
    long gaps_logged;
} ts_consumer;

static int64_t ts_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ts_db_lost(ts_consumer *c, const char *what, const char *err)
{
    ts_metrics_set_db_up(0);
    if (!c->db_down_logged) ts_error("PostgreSQL: %s: %s (pausing; retrying with backoff)", what, err);
    c->db_down_logged = 1;
    if (c->db && PQstatus(c->db) != CONNECTION_OK) {
        PQfinish(c->db);
        c->db = NULL;
    }
}

/* A connection with its staging tables, or NULL. */
static PGconn *ts_db(ts_consumer *c)
{
    if (c->db) return c->db;
    char err[512];
    c->db = ts_store_connect(c->cfg, err, sizeof err);
    if (!c->db) ts_db_lost(c, "connect", err);
    return c->db;
}

static void ts_db_ok(ts_consumer *c)
{
    if (c->db_down_logged) ts_info("PostgreSQL reachable again; resuming");
    c->db_down_logged = 0;
    ts_metrics_set_db_up(1);
}

static void ts_pause(ts_consumer *c, int pause)
{
    if (c->paused == pause) return;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(c->rk, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts) {
        if (pause) rd_kafka_pause_partitions(c->rk, parts);
        else rd_kafka_resume_partitions(c->rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
    }
    c->paused = pause;
}

/* Sleeps ms while serving the consumer (rebalances; records that were
 * already fetched join the batch). */
static void ts_poll(ts_consumer *c, int ms);

static int ts_backoff(ts_consumer *c, int *ms)
{
    if (*c->stop) return -1;
    ts_poll(c, *ms);
    *ms = *ms * 2 > c->cfg->retry_max_ms ? (int)c->cfg->retry_max_ms : *ms * 2;
    return *c->stop ? -1 : 0;
}

static void ts_stored(ts_consumer *c, const ts_batch *b, const ts_store_result *res)
{
    ts_db_ok(c);
    ts_metrics_stored(res);
    for (size_t i = 0; i < b->n_pos; i++) {
        int64_t lo = -1, hi = -1;
        rd_kafka_get_watermark_offsets(c->rk, b->pos[i].topic, b->pos[i].partition, &lo, &hi);
        ts_metrics_partition(b->pos[i].topic, b->pos[i].partition, b->pos[i].next_offset, hi);
    }
    for (size_t i = 0; i < b->n_rejected; i++)
        ts_warn("rejected %s[%" PRId32 "]@%" PRId64 ": %s", b->rejected[i].topic, b->rejected[i].partition,
                b->rejected[i].offset, b->rejected[i].reason);
    ts_debug("stored %zu records: %" PRIu64 " new, %" PRIu64 " duplicate, %zu rejected", b->n_records, res->stored,
             res->duplicates, b->n_rejected);
}

/* Records [lo, hi) of b as a batch of their own (refused: the database is
 * known to refuse them already); a range the database refuses for its data
 * is halved until the record it refuses stands alone,
 * which is stored as rejected with the database's reason: a few dozen
 * transactions find one bad record among thousands. -1 (err set) on any
 * other failure: the caller retries the whole batch, and what was stored
 * here is stored again as a no-op. */
static int ts_isolate_range(ts_consumer *c, const ts_batch *b, size_t lo, size_t hi, int refused, char *err,
                            size_t err_len)
{
    ts_batch part = {0};
    const char *topic;
    const void *key, *value;
    for (size_t i = lo; i < hi; i++) {
        const ts_raw *r = &b->raw[i];
        ts_batch_raw(b, i, &topic, &key, &value);
        ts_batch_add(&part, topic, r->partition, r->offset, key, r->key_len, value, r->value_len, r->kind);
    }
    ts_store_result res;
    int rc = refused ? -1 : ts_store_flush(c->db, &part, c->cfg->group, &res, err, err_len);
    if (rc && ts_db_data_error(err)) {
        if (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            ts_batch_free(&part);
            rc = ts_isolate_range(c, b, lo, mid, 0, err, err_len);
            return rc ? rc : ts_isolate_range(c, b, mid, hi, 0, err, err_len);
        }
        const ts_raw *r = &b->raw[lo];
        char reason[600];
        snprintf(reason, sizeof reason, "refused by the database: %s", err);
        ts_batch_raw(b, lo, &topic, &key, &value);
        ts_batch_reset(&part);
        ts_batch_reject(&part, topic, r->partition, r->offset, key, r->key_len, value, r->value_len, reason);
        ts_batch_add_position(&part, topic, r->partition, r->offset);
        rc = ts_store_flush(c->db, &part, c->cfg->group, &res, err, err_len);
    }
    if (rc == 0) ts_stored(c, &part, &res);
    ts_batch_free(&part);
    return rc;
}

static int ts_isolate(ts_consumer *c, ts_batch *b, char *err, size_t err_len)
{
    ts_warn("the database refused a batch of %zu records (%s): finding the records it refuses", b->n_records, err);
    return ts_isolate_range(c, b, 0, b->n_raw, 1, err, err_len);
}

/* Stores b, retrying until it is stored, dropped by a rebalance or we are
 * told to stop (then it is simply not stored: its offsets are not either,
 * so it is read again next time). */
static void ts_flush(ts_consumer *c, ts_batch *b)
{
    int backoff = 100;
    while (b->n_records) {
        char err[512];
        ts_store_result res;
        PGconn *db = ts_db(c);
        int rc = db ? ts_store_flush(db, b, c->cfg->group, &res, err, sizeof err) : -1;
        if (rc == 0) ts_stored(c, b, &res);
        else if (db && ts_db_data_error(err)) rc = ts_isolate(c, b, err, sizeof err);
        if (rc == 0) {
            ts_batch_reset(b);
            ts_pause(c, 0);
            return;
        }
        ts_metrics_add(TS_M_DB_ERRORS, 1);
        if (db) ts_db_lost(c, "store", err);
        ts_pause(c, 1);
        if (ts_backoff(c, &backoff)) return;
    }
    ts_pause(c, 0);
}

/* Takes back the batch the store thread had. Stored: counted. Not stored:
 * retried here (ts_flush), or, from a rebalance callback (no polling
 * there), dropped: its offsets were not stored, so it is read again. */
static void ts_collect(ts_consumer *c, int in_callback)
{
    int rc;
    ts_store_result res;
    char err[512];
    ts_batch *b = ts_storer_wait(c->storer, &rc, &res, err, sizeof err);
    if (!b) return;
    if (rc == 0) {
        ts_stored(c, b, &res);
        ts_batch_reset(b);
        return;
    }
    ts_metrics_add(TS_M_DB_ERRORS, 1);
    if (in_callback || *c->stop) {
        ts_info("a batch of %zu records not stored (%s) is left to be read again", b->n_records, err);
        ts_batch_reset(b);
        return;
    }
    if (!ts_db_data_error(err)) ts_db_lost(c, "store", err);
    else if (ts_db(c) && ts_isolate(c, b, err, sizeof err) == 0) { /* refused for its data: straight to halving */
        ts_batch_reset(b);
        return;
    }
    c->retrying = b;
    ts_flush(c, b);
    c->retrying = NULL;
    ts_batch_reset(b); /* stored, or dropped by a rebalance or stop */
}

/* The filling batch goes to the store thread once the one before it is
 * stored; the other buffer fills meanwhile. */
static void ts_handoff(ts_consumer *c)
{
    ts_collect(c, 0);
    if (*c->stop || !c->cur->n_records) return;
    ts_storer_submit(c->storer, c->cur);
    c->cur = c->cur == &c->bufs[0] ? &c->bufs[1] : &c->bufs[0];
}

/* Records before the partition's low watermark are gone (Kafka's
 * retention deleted them before they were stored: an outage longer than the
 * retention, or tracestore deployed late). Kept in lost_records and logged,
 * never skipped silently; p->offset moves past them. 0, or -1 with err on a
 * database error. */
static int ts_check_lost(ts_consumer *c, PGconn *db, rd_kafka_topic_partition_t *p, int64_t stored, char *err,
                         size_t err_len)
{
    int64_t lo = -1, hi = -1, from = stored >= 0 ? stored : 0;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(c->rk, p->topic, p->partition, &lo, &hi, 5000);
    if (e) {
        ts_warn("kafka: %s[%" PRId32 "]: cannot read the oldest offset held (%s): records Kafka deleted before"
                " they were stored would go unnoticed",
                p->topic, p->partition, rd_kafka_err2str(e));
        return 0;
    }
    if (lo <= from) return 0;
    if (ts_store_lost(db, c->cfg->group, p->topic, p->partition, from, lo, stored < 0, err, err_len)) return -1;
    ts_metrics_add(TS_M_LOST, (uint64_t)(lo - from));
    if (stored < 0)
        ts_warn("kafka: %s[%" PRId32 "]: offsets %" PRId64 "..%" PRId64 " had expired before this group first read"
                " the partition: %" PRId64 " records never stored (lost_records)",
                p->topic, p->partition, from, lo - 1, lo - from);
    else
        ts_error("kafka: %s[%" PRId32 "]: offsets %" PRId64 "..%" PRId64 " were deleted by Kafka (retention) before"
                 " they were stored: %" PRId64 " records lost (lost_records, audit)",
                 p->topic, p->partition, from, lo - 1, lo - from);
    p->offset = lo;
    return 0;
}

/* Each assigned partition starts at its stored offset. Without the
 * database no offset is known: wait for it (the group's other members go
 * on meanwhile with their partitions). */
static void ts_assign(ts_consumer *c, rd_kafka_topic_partition_list_t *parts)
{
    int backoff = 100;
    ts_collect(c, 1); /* offsets read below include the batch in flight */
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        for (;;) {
            char err[512] = "";
            PGconn *db = ts_db(c);
            int64_t off = db ? ts_store_offset(db, c->cfg->group, p->topic, p->partition, err, sizeof err) : -2;
            if (off >= -1) p->offset = off >= 0 ? off : RD_KAFKA_OFFSET_BEGINNING;
            if (off >= -1 && ts_check_lost(c, db, p, off, err, sizeof err) == 0) {
                ts_db_ok(c);
                ts_metrics_partition(p->topic, p->partition, p->offset >= 0 ? p->offset : 0, -1);
                break;
            }
            if (db) ts_db_lost(c, "read offsets", err);
            if (*c->stop) return;
            /* Not ts_backoff: no polling from inside the rebalance callback. */
            struct timespec ts = {backoff / 1000, (backoff % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            backoff = backoff * 2 > c->cfg->retry_max_ms ? (int)c->cfg->retry_max_ms : backoff * 2;
        }
    }
    rd_kafka_assign(c->rk, parts);
    c->paused = 0;
    ts_metrics_add(TS_M_REBALANCES, 1);
    for (int i = 0; i < parts->cnt; i++)
        ts_info("assigned %s[%" PRId32 "] from offset %" PRId64 "%s", parts->elems[i].topic,
                parts->elems[i].partition, parts->elems[i].offset,
                parts->elems[i].offset == RD_KAFKA_OFFSET_BEGINNING ? " (beginning)" : "");
}

static void ts_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    ts_consumer *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        ts_assign(c, parts);
        return;
    }
    /* Revoked: the batch in flight finishes; what is not stored yet is
     * dropped, not stored late. Its offsets are not stored either, so the
     * next owner reads it again. */
    ts_collect(c, 1);
    if (c->retrying) ts_batch_reset(c->retrying);
    if (c->cur->n_records)
        ts_info("partitions revoked: %zu records not yet stored are left to the next owner", c->cur->n_records);
    ts_batch_reset(c->cur);
    rd_kafka_assign(rk, NULL);
    c->paused = 0;
}

static void ts_take(ts_consumer *c, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            ts_warn("kafka: %s", rd_kafka_message_errstr(m));
        return;
    }
    const char *topic = rd_kafka_topic_name(m->rkt);
    ts_rec_kind kind = strcmp(topic, c->cfg->topic) == 0 ? TS_REC_TRACE : TS_REC_FIELD;
    if (!c->cur->n_records) c->batch_start_ms = ts_now_ms();
    ts_batch_add(c->cur, topic, m->partition, m->offset, m->key, m->key_len, m->payload, m->len, kind);
    ts_metrics_add(TS_M_CONSUMED, 1);
}

static void ts_poll(ts_consumer *c, int ms)
{
    int64_t until = ts_now_ms() + ms;
    for (int64_t left = ms; left > 0; left = until - ts_now_ms()) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, (int)left);
        if (m) {
            ts_take(c, m);
            rd_kafka_message_destroy(m);
        }
        if (*c->stop) return;
    }
}

/* Logs the seq gaps open too long whenever their number changes (every
 * instance of the group sees the same table; each logs). */
static void ts_check_gaps(ts_consumer *c)
{
    int64_t now = ts_now_ms();
    if (now < c->next_gap_check_ms || !c->db) return;
    long every = c->cfg->gap_timeout_s / 2;
    c->next_gap_check_ms = now + 1000 * (every < 1 ? 1 : every > 30 ? 30 : every);
    char err[512];
    json_t *list = NULL;
    long n = ts_audit_gaps(c->db, c->cfg->gap_timeout_s, &list, err, sizeof err);
    if (n >= 0 && n != c->gaps_logged) {
        char *text = json_dumps(list, JSON_COMPACT);
        if (n) ts_warn("%ld seq gap(s) open longer than %lds (events the agents sent never arrived): %s", n,
                       c->cfg->gap_timeout_s, text ? text : "");
        else ts_info("every seq gap is closed");
        free(text);
        c->gaps_logged = n;
    }
    json_decref(list);
}

static rd_kafka_t *ts_kafka_new(ts_consumer *c)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const ts_config *cfg = c->cfg;
    /* librdkafka's 500 ms would be most of the latency budget (event to
     * row queryable) on a quiet topic; the config may say otherwise. */
    int bad = rd_kafka_conf_set(conf, "fetch.wait.max.ms", "50", err, sizeof err) != RD_KAFKA_CONF_OK;
    for (int i = 0; i < cfg->n_rdkafka && !bad; i++)
        bad = rd_kafka_conf_set(conf, cfg->rdkafka[i].key, cfg->rdkafka[i].value, err, sizeof err) !=
              RD_KAFKA_CONF_OK;
    const char *fixed[][2] = {{"group.id", cfg->group}, {"enable.auto.commit", "false"},
                              {"enable.auto.offset.store", "false"}, {"auto.offset.reset", "earliest"}};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed && !bad; i++)
        bad = rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], err, sizeof err) != RD_KAFKA_CONF_OK;
    if (bad) {
        ts_error("kafka configuration: %s", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, ts_rebalance);
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        ts_error("kafka: %s", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (strcmp(rd_kafka_rebalance_protocol(rk) ? rd_kafka_rebalance_protocol(rk) : "", "COOPERATIVE") == 0) {
        ts_error("kafka: cooperative rebalancing is not supported (set partition.assignment.strategy to range or "
                 "roundrobin)");
        rd_kafka_destroy(rk);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

int ts_consumer_run(const ts_config *cfg, volatile sig_atomic_t *stop)
{
    ts_consumer c = {.cfg = cfg, .stop = stop};
    c.cur = &c.bufs[0];
    c.storer = ts_storer_start(cfg);
    if (!c.storer) {
        ts_error("cannot start the store thread");
        return 1;
    }
    c.rk = ts_kafka_new(&c);
    if (!c.rk) {
        ts_storer_stop(c.storer);
        return 1;
    }
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(topics, cfg->topic, RD_KAFKA_PARTITION_UA);
    if (cfg->field_topic && cfg->field_topic[0])
        rd_kafka_topic_partition_list_add(topics, cfg->field_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c.rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        ts_error("kafka subscribe: %s", rd_kafka_err2str(err));
        rd_kafka_destroy(c.rk);
        ts_storer_stop(c.storer);
        return 1;
    }
    ts_info("consuming %s%s%s as group %s", cfg->topic, cfg->field_topic && cfg->field_topic[0] ? " and " : "",
            cfg->field_topic ? cfg->field_topic : "", cfg->group);
    ts_db(&c); /* an early error message when the database is not there */
    while (!*stop) {
        int wait = 200;
        if (c.cur->n_records) {
            int64_t left = c.batch_start_ms + cfg->batch_wait_ms - ts_now_ms();
            wait = left > 0 ? (int)left : 0;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c.rk, wait);
        if (m) {
            ts_take(&c, m);
            rd_kafka_message_destroy(m);
        }
        if (c.cur->n_records &&
            ((long)c.cur->n_records >= cfg->batch_max || ts_now_ms() - c.batch_start_ms >= cfg->batch_wait_ms))
            ts_handoff(&c);
        else if (!ts_storer_busy(c.storer))
            ts_collect(&c, 0); /* a stored batch counts (metrics, lag) as soon as it is seen done */
        ts_check_gaps(&c);
    }
    /* The batch in flight finishes, and one last try for what was read; not
     * stored, it is read again later. */
    ts_collect(&c, 1);
    if (c.cur->n_records) {
        char e[512];
        ts_store_result res;
        if (ts_db(&c) && ts_store_flush(c.db, c.cur, cfg->group, &res, e, sizeof e) == 0) {
            ts_metrics_stored(&res);
            ts_batch_reset(c.cur);
        }
    }
    rd_kafka_consumer_close(c.rk); /* its revoke callback still uses the storer */
    rd_kafka_destroy(c.rk);
    ts_storer_stop(c.storer);
    ts_batch_free(&c.bufs[0]);
    ts_batch_free(&c.bufs[1]);
    if (c.db) PQfinish(c.db);
    ts_info("stopped");
    return 0;
}
