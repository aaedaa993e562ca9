/* SPDX-License-Identifier: Apache-2.0 */
/* kafka_out.c - spool -> Kafka forwarder.
 *
 * Delivery contract: an event is marked delivered only from librdkafka's
 * delivery report, never on enqueue. The producer is idempotent, so
 * librdkafka itself retries transient errors without duplicates or
 * reordering; the application re-produces only what librdkafka reports as
 * failed (status NOT_PERSISTED or POSSIBLY_PERSISTED), and then restarts
 * from the oldest undelivered event so a lot's order is kept. What is in
 * flight is held below a high-water mark; during an outage the backlog stays
 * in the spool, not in memory.
 *
 * The spool records delivery as a watermark. Partitions acknowledge
 * independently, so acknowledgements above the lowest unacknowledged seq
 * are kept in an ack_window over a bounded run of seqs until the gap below
 * them closes; after a crash those are sent once more (same event_id),
 * never lost. */
#include "kafka_out.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ack_window.h"
#include "clock.h"
#include "kafka_embedded.h"
#include "kafka_record.h"
#include "log.h"
#include "metrics.h"
#include "spool.h"

#define KAFKA_PAGE 512
#define KAFKA_POLL_EVERY 64
/* Events read from the spool before they are produced, at most: reading a
 * run of rows and then producing them, rather than alternating row by row,
 * keeps SQLite's and librdkafka's code each in the CPU's instruction cache
 * for the run (callgrind: 34 instruction-cache misses per event
 * alternating, 5 in runs of 64), and costs a copy of each event. The bytes
 * bound keeps large events from growing the copy buffer past it. */
#define KAFKA_BATCH 64
#define KAFKA_BATCH_BYTES (256 * 1024)
/* Marking delivered is a transaction: at most this often while events are
 * in flight, including in the middle of a long backlog (at once when none
 * are). */
#define KAFKA_MARK_MS 50
/* Forwarding is background work: the line's stations must not wait for a
 * CPU behind a backlog drain. The forwarder and librdkafka's threads (which
 * inherit the nice value of the thread that creates the producer) run this
 * much nicer than the rest of the agent. */
#define KAFKA_NICE 5
/* Seqs produced ahead of the oldest unacknowledged one, at most: bounds the
 * bitmap (128 KiB) and what a crash may send twice. */
#define KAFKA_WINDOW (1u << 20)

struct kafka_out {
    const config *cfg;
    spool *sp;
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt; /* looked up once, not by name per message */
    kafka_embedded *embedded; /* bootstrap.servers = embedded */
    char *bootstrap;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_cond_t marked_cond; /* broadcast after each mark, for kafka_out_drain */
    int kicked, stopping;
    /* forwarder thread state */
    uint64_t cursor;      /* highest seq handed to librdkafka */
    int in_flight;
    int rewind;           /* a delivery failed: resend from the oldest pending */
    /* Events not delivered since the last report, reported once per round
     * of resending as a count and a range: a broker refusing a backlog, or
     * a stop with ten thousand events in flight, would otherwise write a
     * line per event. */
    uint64_t failed, failed_lo, failed_hi, purged;
    rd_kafka_resp_err_t failed_err;
    int failed_maybe;     /* some were POSSIBLY_PERSISTED */
    ack_window *acks;     /* its base - 1 is the watermark */
    uint64_t marked;      /* watermark as last written to the spool */
    int64_t marked_ms;
    atomic_int fatal;     /* idempotent producer hit a fatal error */
    atomic_llong beat_ms; /* monotonic ms of the forwarder loop's last turn */
    /* forwarder thread: the bytes of the events a ko_batch holds */
    char *held;
    size_t held_len, held_cap;
#ifdef LINEAGENT_FAULT_INJECTION
    const char *stall_file; /* $LINEAGENT_FAULT_FORWARDER_STALL */
#endif
};

static void ko_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kafka_out *ko = opaque;
    uint64_t seq = (uint64_t)(uintptr_t)m->_private;
    ko->in_flight--;
    if (!m->err || rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_PERSISTED) {
        ack_window_ack(ko->acks, seq);
        metrics_add(METRICS_EVENTS_DELIVERED, 1);
        return;
    }
    /* NOT_PERSISTED or POSSIBLY_PERSISTED: send again (a possible duplicate
     * carries the same event_id, which consumers de-duplicate on). */
    ko->rewind = 1;
    if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        ko->purged++; /* by us: at stop, or with a producer being replaced */
        return;
    }
    metrics_add(METRICS_KAFKA_ERRORS, 1);
    if (ko->failed++ == 0) {
        ko->failed_lo = ko->failed_hi = seq;
        ko->failed_err = m->err;
    }
    if (seq < ko->failed_lo) ko->failed_lo = seq;
    if (seq > ko->failed_hi) ko->failed_hi = seq;
    if (rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED) ko->failed_maybe = 1;
}

/* then: what becomes of them, for the log line. */
static void ko_report_undelivered(kafka_out *ko, const char *then)
{
    if (ko->failed)
        log_warn("kafka: %llu events not delivered (seq %llu..%llu, %s; first error: %s); %s",
                 (unsigned long long)ko->failed, (unsigned long long)ko->failed_lo,
                 (unsigned long long)ko->failed_hi, ko->failed_maybe ? "some possibly persisted" : "not persisted",
                 rd_kafka_err2str(ko->failed_err), then);
    if (ko->purged)
        log_info("kafka: %llu events in flight were withdrawn before Kafka acknowledged them; %s",
                 (unsigned long long)ko->purged, then);
    ko->failed = ko->purged = 0;
    ko->failed_maybe = 0;
}

static void ko_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_out *ko = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof why);
        log_error("kafka: fatal producer error: %s; recreating the producer", why);
        atomic_store(&ko->fatal, 1);
        return;
    }
    log_warn("kafka: %s", reason);
}

static void ko_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    log_msg(level <= 3 ? LL_ERROR : level <= 5 ? LL_WARN : LL_DEBUG, "librdkafka %s: %s", fac, buf);
}

static int ko_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t err_len)
{
    if (rd_kafka_conf_set(conf, k, v, err, err_len) != RD_KAFKA_CONF_OK) return -1;
    return 0;
}

/* Lowers this thread's priority only (Linux: nice is per thread),
 * relative to whatever the agent was started with. */
static void ko_nice(void)
{
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, tid); /* -1 is a valid value */
    if ((nice == -1 && errno) || setpriority(PRIO_PROCESS, tid, nice + KAFKA_NICE) != 0)
        log_warn("kafka: cannot lower the forwarder's priority: %s", strerror(errno));
}

/* Creates ko->rk and its topic handle ko->rkt; 0 or -1 with err set. */
static int ko_producer_open(kafka_out *ko, char *err, size_t err_len)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Defaults the delivery contract rests on; config may add, not weaken. */
    if (ko_set(conf, "enable.idempotence", "true", err, err_len) ||
        ko_set(conf, "message.timeout.ms", "0", err, err_len) || /* retry until delivered */
        ko_set(conf, "linger.ms", "5", err, err_len))
        goto fail;
    for (size_t i = 0; i < ko->cfg->n_kafka_props; i++) {
        const kv_pair *kv = &ko->cfg->kafka_props[i];
        const char *v = strcmp(kv->key, "bootstrap.servers") == 0 ? ko->bootstrap : kv->value;
        if (strcmp(kv->key, "enable.idempotence") == 0 && strcmp(kv->value, "true") != 0) {
            snprintf(err, err_len, "[kafka] enable.idempotence may not be turned off");
            goto fail;
        }
        if (ko_set(conf, kv->key, v, err, err_len)) goto fail;
    }
    rd_kafka_conf_set_opaque(conf, ko);
    rd_kafka_conf_set_dr_msg_cb(conf, ko_dr_cb);
    rd_kafka_conf_set_error_cb(conf, ko_error_cb);
    rd_kafka_conf_set_log_cb(conf, ko_log_cb);
    ko->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, err_len);
    if (!ko->rk) goto fail; /* conf is still ours; on success it belongs to rk */
    if (!(ko->rkt = rd_kafka_topic_new(ko->rk, ko->cfg->kafka_topic, NULL))) {
        snprintf(err, err_len, "topic %s: %s", ko->cfg->kafka_topic, rd_kafka_err2str(rd_kafka_last_error()));
        rd_kafka_destroy(ko->rk);
        ko->rk = NULL;
        return -1;
    }
    return 0;
fail:
    rd_kafka_conf_destroy(conf);
    return -1;
}

static void ko_producer_close(kafka_out *ko)
{
    rd_kafka_topic_destroy(ko->rkt);
    rd_kafka_destroy(ko->rk);
    ko->rkt = NULL;
    ko->rk = NULL;
}

/* An event read from the spool and not yet produced; its strings and
 * payload are copied to ko->held, since SQLite's row is gone at the next
 * step. Offsets, as the buffer may move when it grows. */
typedef struct ko_held_event {
    uint64_t seq;
    int64_t time_ms;
    size_t event_id, key, type, payload; /* offsets into ko->held */
    size_t event_id_len, key_len, type_len, len;
    int acked; /* acknowledged before a resend: only moves the cursor */
} ko_held_event;

typedef struct ko_batch {
    kafka_out *ko;
    int stop;
    int n;
    ko_held_event ev[KAFKA_BATCH];
} ko_batch;

/* Hands one event to librdkafka: 0, or -1 when it is refused for now. */
static int ko_produce(kafka_out *ko, const ko_held_event *h)
{
    const char *b = ko->held;
    kafka_record r = {.key = b + h->key, .type = b + h->type, .event_id = b + h->event_id,
                      .key_len = h->key_len, .type_len = h->type_len, .event_id_len = h->event_id_len,
                      .value = b + h->payload, .value_len = h->len, .time_ms = h->time_ms, .seq = h->seq};
    rd_kafka_resp_err_t e = kafka_record_produce(ko->rk, ko->rkt, &r);
    if (e) {
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            /* Refused before sending (unknown topic, message too large):
             * tried again after the pause, as a failed delivery is. */
            log_warn("kafka: produce seq %llu: %s", (unsigned long long)h->seq, rd_kafka_err2str(e));
            ko->rewind = 1;
        }
        return -1;
    }
    /* Serve delivery reports as we go, as a bare producer loop does: the
     * messages they free are reused while still in cache, rather than ten
     * thousand freed and allocated again in bursts. */
    if (++ko->in_flight % KAFKA_POLL_EVERY == 0) rd_kafka_poll(ko->rk, 0);
    return 0;
}

/* Produces the held events in seq order. The cursor follows each one
 * handed over; after a refusal the rest are dropped, to be read again, and
 * reading stops. */
static void ko_batch_flush(ko_batch *bt)
{
    kafka_out *ko = bt->ko;
    for (int i = 0; i < bt->n; i++) {
        if (!bt->ev[i].acked && ko_produce(ko, &bt->ev[i]) != 0) {
            bt->stop = 1;
            break;
        }
        ko->cursor = bt->ev[i].seq;
    }
    bt->n = 0;
    ko->held_len = 0;
}

/* Room for need more bytes in ko->held; 0, or -1 out of memory. */
static int ko_held_reserve(kafka_out *ko, size_t need)
{
    if (ko->held_len + need <= ko->held_cap) return 0;
    size_t cap = ko->held_cap ? ko->held_cap : 16384;
    while (cap < ko->held_len + need) cap *= 2;
    char *b = realloc(ko->held, cap);
    if (!b) return -1;
    ko->held = b;
    ko->held_cap = cap;
    return 0;
}

static size_t ko_held_copy(kafka_out *ko, const void *p, size_t n)
{
    size_t at = ko->held_len;
    memcpy(ko->held + at, p, n);
    ko->held_len += n;
    return at;
}

/* spool_pending_page's callback: holds the event, producing the batch when
 * it is full; 1 stops the page. */
static int ko_batch_add(void *ud, const spool_event *ev)
{
    ko_batch *bt = ud;
    kafka_out *ko = bt->ko;
    if (!ack_window_has_room(ko->acks, ev->seq)) {
        bt->stop = 1;
        return 1;
    }
    ko_held_event h = {.seq = ev->seq, .acked = ack_window_is_acked(ko->acks, ev->seq)};
    if (!h.acked) {
        h.time_ms = ev->time_ms;
        h.event_id_len = strlen(ev->event_id);
        h.key_len = strlen(ev->key);
        h.type_len = strlen(ev->type);
        h.len = ev->len;
        size_t need = h.event_id_len + h.key_len + h.type_len + h.len;
        if (bt->n && ko->held_len + need > KAFKA_BATCH_BYTES) ko_batch_flush(bt);
        if (bt->stop) return 1;
        if (ko_held_reserve(ko, need) != 0) {
            /* Read again next round, when memory may be free. */
            log_error("kafka: out of memory holding seq %llu (%zu bytes)", (unsigned long long)ev->seq, need);
            bt->stop = 1;
            return 1;
        }
        h.event_id = ko_held_copy(ko, ev->event_id, h.event_id_len);
        h.key = ko_held_copy(ko, ev->key, h.key_len);
        h.type = ko_held_copy(ko, ev->type, h.type_len);
        h.payload = ko_held_copy(ko, ev->payload, h.len);
    }
    bt->ev[bt->n++] = h;
    if (bt->n == KAFKA_BATCH) ko_batch_flush(bt);
    return bt->stop;
}

/* force: mark now, even within KAFKA_MARK_MS of the last mark (at stop). */
static void ko_mark(kafka_out *ko, int force)
{
    uint64_t upto = ack_window_base(ko->acks) - 1;
    int64_t now = clock_wall_ms();
    if (upto == ko->marked) return;
    if (!force && ko->in_flight && now - ko->marked_ms < KAFKA_MARK_MS) return;
    ko->marked_ms = now;
    /* Not marked means sent again after a restart: a duplicate, never a
     * loss. The next mark tries again. */
    if (spool_mark_delivered(ko->sp, upto, now) == 0) {
        ko->marked = upto;
        pthread_mutex_lock(&ko->lock);
        pthread_cond_broadcast(&ko->marked_cond);
        pthread_mutex_unlock(&ko->lock);
    } else
        log_error("kafka: marking events up to seq %llu delivered: %s", (unsigned long long)upto,
                  spool_errmsg(ko->sp));
}

static void ko_fill(kafka_out *ko)
{
    int room = ko->cfg->kafka_queue_high_water - ko->in_flight;
    while (room > 0) {
        ko_batch bt = {.ko = ko};
        int n = spool_pending_page(ko->sp, ko->cursor, room < KAFKA_PAGE ? room : KAFKA_PAGE, ko_batch_add, &bt);
        ko_batch_flush(&bt); /* the page's last events, or those held before a stop */
        if (n < 0) log_error("kafka: reading the spool: %s", spool_errmsg(ko->sp));
        if (n > 0) log_debug("kafka: %d events handed to librdkafka, up to seq %llu", n, (unsigned long long)ko->cursor);
        if (n <= 0 || bt.stop) return;
        /* Delivery reports keep room free through a whole backlog, so this
         * loop may not return for a million events: mark as it goes. */
        ko_mark(ko, 0);
        room = ko->cfg->kafka_queue_high_water - ko->in_flight;
        if (n < KAFKA_PAGE) return;
    }
}

/* Waits on c (ko->lock held) for at most ms. */
static void ko_wait(kafka_out *ko, pthread_cond_t *c, long ms)
{
    struct timespec ts = clock_deadline_ms(ms);
    pthread_cond_timedwait(c, &ko->lock, &ts);
}

/* Withdraws every message librdkafka holds and serves their delivery
 * reports, so the count logged is the count withdrawn: purges of requests
 * in flight complete on librdkafka's broker thread, and one poll may come
 * too early for them (bounded: 1 s). */
static void ko_withdraw_all(kafka_out *ko)
{
    rd_kafka_purge(ko->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 50 && ko->in_flight > 0; i++) rd_kafka_poll(ko->rk, 20);
}

static void ko_recreate(kafka_out *ko)
{
    /* Outstanding messages die with the old producer; nothing was marked
     * for them, so they are resent from the spool in order. */
    ko_withdraw_all(ko);
    ko_producer_close(ko);
    char err[512];
    while (ko_producer_open(ko, err, sizeof err) != 0) {
        log_error("kafka: cannot recreate producer: %s", err);
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
    atomic_store(&ko->fatal, 0);
    ko->in_flight = 0;
    ko->rewind = 1;
}

#ifdef LINEAGENT_FAULT_INJECTION
/* Test builds only (-DLINEAGENT_FAULT_INJECTION=ON, as deploy/test.sh
 * builds): while the file $LINEAGENT_FAULT_FORWARDER_STALL names exists, the
 * forwarder's loop does not turn, as a thread caught in a deadlock or an
 * endless call would not; it_service checks the watchdog heartbeat stops. */
static void ko_fault_stall(kafka_out *ko)
{
    if (!ko->stall_file || access(ko->stall_file, F_OK) != 0) return;
    log_warn("fault injection: the forwarder's loop stalls while %s exists", ko->stall_file);
    while (access(ko->stall_file, F_OK) == 0) nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
    log_warn("fault injection: the forwarder's loop turns again");
}
#else
static void ko_fault_stall(kafka_out *ko) { (void)ko; }
#endif

static void *ko_main(void *arg)
{
    kafka_out *ko = arg;
    ko_nice();
    for (;;) {
        atomic_store(&ko->beat_ms, clock_mono_ms());
        ko_fault_stall(ko);
        if (atomic_load(&ko->fatal)) ko_recreate(ko);
        if (ko->rewind && ko->in_flight == 0) {
            /* Pause before resending so a permanent error (e.g. an ACL)
             * costs a log line a second, not a busy loop. */
            uint64_t from = ack_window_base(ko->acks); /* still: nothing is in flight */
            char then[64];
            snprintf(then, sizeof then, "sending again from seq %llu in 1 s", (unsigned long long)from);
            ko_report_undelivered(ko, then);
            struct timespec pause = {1, 0};
            nanosleep(&pause, NULL);
            ko->cursor = from - 1;
            ko->rewind = 0;
        }
        if (!ko->rewind) ko_fill(ko);
        rd_kafka_poll(ko->rk, ko->in_flight ? 20 : 0);
        ko_mark(ko, 0);
        pthread_mutex_lock(&ko->lock);
        if (ko->stopping) {
            pthread_mutex_unlock(&ko->lock);
            break;
        }
        if (!ko->in_flight && !ko->kicked) ko_wait(ko, &ko->cond, 100);
        ko->kicked = 0;
        pthread_mutex_unlock(&ko->lock);
    }
    return NULL;
}

typedef struct ko_create_args {
    kafka_out *ko;
    char *err;
    size_t err_len;
} ko_create_args;

/* Creates the producer from a thread of nice KAFKA_NICE, so that the
 * threads librdkafka starts inherit it. */
static void *ko_create_niced(void *arg)
{
    ko_create_args *a = arg;
    ko_nice();
    ko_producer_open(a->ko, a->err, a->err_len);
    return NULL;
}

kafka_out *kafka_out_start(const config *cfg, char *err, size_t err_len)
{
    kafka_out *ko = calloc(1, sizeof *ko);
    ko->cfg = cfg;
    pthread_mutex_init(&ko->lock, NULL);
    pthread_cond_init(&ko->cond, NULL);
    pthread_cond_init(&ko->marked_cond, NULL);
    const char *bs = config_kafka_get(cfg, "bootstrap.servers");
    if (strcmp(bs, "embedded") == 0) {
        if (!(ko->embedded = kafka_embedded_start(cfg->kafka_topic, err, err_len))) goto fail;
        ko->bootstrap = strdup(kafka_embedded_bootstrap(ko->embedded));
    } else {
        ko->bootstrap = strdup(bs);
    }
    /* This handle only reads events and writes marks. A mark lost to a power
     * cut means events sent once more, never lost, so marks need not wait
     * for an fsync (WAL with synchronous=NORMAL: durable against a crash of
     * the process, and made durable by the next commit of the agent's own
     * handle or checkpoint). */
    spool_options so = {"NORMAL", 0};
    if (spool_open(&ko->sp, cfg->spool_path, &so, err, err_len)) goto fail;
    int64_t upto = spool_delivered_upto(ko->sp);
    if (upto < 0) {
        snprintf(err, err_len, "reading the spool: %s", spool_errmsg(ko->sp));
        goto fail;
    }
    ko->marked = ko->cursor = (uint64_t)upto;
    if (!(ko->acks = ack_window_new(ko->marked + 1, KAFKA_WINDOW))) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    ko_create_args ca = {ko, err, err_len};
    pthread_t creator;
    if (pthread_create(&creator, NULL, ko_create_niced, &ca) != 0) {
        snprintf(err, err_len, "cannot start a thread");
        goto fail;
    }
    pthread_join(creator, NULL);
    if (!ko->rk) goto fail;
    atomic_store(&ko->beat_ms, clock_mono_ms());
#ifdef LINEAGENT_FAULT_INJECTION
    if ((ko->stall_file = getenv("LINEAGENT_FAULT_FORWARDER_STALL")))
        log_warn("fault injection compiled in: the forwarder stalls while %s exists", ko->stall_file);
#endif
    pthread_create(&ko->thread, NULL, ko_main, ko);
    pthread_setname_np(ko->thread, "la-forwarder"); /* for top -H and perf */
    return ko;
fail:
    if (ko->sp) spool_close(ko->sp);
    ack_window_free(ko->acks);
    kafka_embedded_stop(ko->embedded);
    free(ko->bootstrap);
    free(ko);
    return NULL;
}

void kafka_out_kick(kafka_out *ko)
{
    pthread_mutex_lock(&ko->lock);
    ko->kicked = 1;
    pthread_cond_signal(&ko->cond);
    pthread_mutex_unlock(&ko->lock);
}

int kafka_out_alive(kafka_out *ko, int64_t now_ms, int64_t max_age_ms)
{
    return now_ms - atomic_load(&ko->beat_ms) <= max_age_ms;
}

int64_t kafka_out_drain(kafka_out *ko, spool *sp, int timeout_ms)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        kafka_out_kick(ko);
        /* The lowest pending seq is one index probe; counting a backlog of
         * a million rows every poll would cost more than the drain itself. */
        if (spool_first_pending(sp) == 0) return 0;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= timeout_ms) return spool_pending_count(sp);
        /* Woken by the forwarder's next mark; the timeout covers a mark
         * made between the probe and the wait. */
        pthread_mutex_lock(&ko->lock);
        ko_wait(ko, &ko->marked_cond, 20);
        pthread_mutex_unlock(&ko->lock);
    }
}

const char *kafka_out_embedded_bootstrap(const kafka_out *ko) { return ko->embedded ? ko->bootstrap : NULL; }

void kafka_out_stop(kafka_out *ko)
{
    if (!ko) return;
    pthread_mutex_lock(&ko->lock);
    ko->stopping = 1;
    pthread_cond_signal(&ko->cond);
    pthread_mutex_unlock(&ko->lock);
    pthread_join(ko->thread, NULL);
    /* Undelivered messages stay undelivered in the spool; purge rather than
     * wait, the next start sends them again. */
    ko_withdraw_all(ko);
    ko_report_undelivered(ko, "they stay in the spool and are sent at the next start");
    ko_mark(ko, 1);
    ko_producer_close(ko);
    spool_close(ko->sp);
    kafka_embedded_stop(ko->embedded);
    free(ko->bootstrap);
    ack_window_free(ko->acks);
    free(ko->held);
    pthread_mutex_destroy(&ko->lock);
    pthread_cond_destroy(&ko->cond);
    pthread_cond_destroy(&ko->marked_cond);
    free(ko);
}
