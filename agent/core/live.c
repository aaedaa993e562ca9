/* SPDX-License-Identifier: Apache-2.0 */
/* live.c - the follower thread behind <prefix>/yield and the event-derived
 * metrics (units, step failures, orders, events spooled). */
#include "live.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "log.h"
#include "metrics.h"
#include "yield.h"

#define LIVE_PAGE 512
#define LIVE_MIN_GAP_MS 500     /* at most twice a second */
#define LIVE_REFRESH_MS 5000    /* rate and inProgress move without events */
#define LIVE_CHECKPOINT_MS 5000 /* the checkpoint is a transaction of its own */
#define LIVE_DOCS_MAX 1024     /* station documents waiting: a bounded hand-off */
#define LIVE_NS "live"
#define LIVE_KEY "from_seq"

struct live {
    const config *cfg;
    spool *sp;            /* this thread's own connection */
    pthread_t thread;
    pthread_mutex_t lock; /* kicked, stopping, ml, y */
    pthread_cond_t cond;
    int kicked, stopping, started;
    mqtt_link *ml;
    yield *y;
    uint64_t cursor;       /* last seq read */
    uint64_t replayed_to;  /* events up to here were counted by an earlier run */
    uint64_t checkpoint;   /* as last written */
    int64_t checkpoint_ms; /* when */
    atomic_ullong seq;
    /* Documents handed over by other threads (the coordinator's station
     * documents), published by this thread in its next burst; one per
     * subtopic, the newest replacing an older one not yet sent. Under lock. */
    char *doc_topic[LIVE_DOCS_MAX], *doc_json[LIVE_DOCS_MAX];
    size_t n_docs;
};

/* Metrics count what this run commits, not what it replays. */
static void live_count(const TraceEvent *ev)
{
    switch (ev->body_case) {
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_COMPLETED:
        metrics_unit(metrics_station_find(ev->station ? ev->station : ""), ev->station_site,
                     ev->unit_completed->passed);
        break;
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_FAILED:
        metrics_step_failed(ev->unit_failed->step, ev->unit_failed->failure_mode ? ev->unit_failed->failure_mode : "");
        break;
    case LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_ACCEPTED: metrics_add(METRICS_ORDERS_ACCEPTED, 1); break;
    case LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_REJECTED: metrics_add(METRICS_ORDERS_REJECTED, 1); break;
    default: break;
    }
}

typedef struct live_read {
    live *lv;
    int changed;
} live_read;

static int live_on_event(void *ud, const spool_event *e, int64_t delivered_ms)
{
    live_read *r = ud;
    live *lv = r->lv;
    lv->cursor = e->seq;
    TraceEvent *ev = lineagent__v1__trace_event__unpack(NULL, e->len, e->payload);
    if (!ev) {
        log_warn("live: event seq %llu does not decode; skipped", (unsigned long long)e->seq);
        return 0;
    }
    pthread_mutex_lock(&lv->lock);
    r->changed |= yield_apply(lv->y, ev);
    pthread_mutex_unlock(&lv->lock);
    if (e->seq > lv->replayed_to) live_count(ev);
    lineagent__v1__trace_event__free_unpacked(ev, NULL);
    return 0;
}

/* Everything committed after the cursor; 1 when the yield changed, -1 on a
 * spool error. */
static int live_read_new(live *lv)
{
    spool_selection sel = {.include_pending = 1};
    live_read r = {lv, 0};
    int n;
    while ((n = spool_select_page(lv->sp, &sel, lv->cursor, LIVE_PAGE, live_on_event, &r)) == LIVE_PAGE) {
    }
    if (n < 0) {
        log_warn("live: cannot read the spool: %s", spool_errmsg(lv->sp));
        return -1;
    }
    atomic_store(&lv->seq, lv->cursor);
    metrics_set(METRICS_EVENTS_SPOOLED, (int64_t)lv->cursor);
    return r.changed;
}

static int live_count_unit(void *ud, const spool_unit *u)
{
    (*(uint32_t *)ud)++;
    return 0;
}

static int live_publish(live *lv, int64_t now_wall)
{
    uint32_t in_progress = 0;
    pthread_mutex_lock(&lv->lock);
    mqtt_link *ml = lv->ml;
    const char *cur = yield_current_lot(lv->y);
    char lot[SPOOL_ID_MAX] = "";
    if (cur) snprintf(lot, sizeof lot, "%s", cur);
    pthread_mutex_unlock(&lv->lock);
    if (!ml) return -1;
    if (lot[0]) spool_unit_list_in_progress(lv->sp, lot, live_count_unit, &in_progress);
    pthread_mutex_lock(&lv->lock);
    char *json = yield_json(lv->y, lv->cfg->site, lv->cfg->line, now_wall, in_progress);
    pthread_mutex_unlock(&lv->lock);
    int rc = json ? mqtt_link_publish_live(ml, "yield", json) : -1;
    free(json);
    return rc;
}

/* The station documents handed over since the last burst, sent in one
 * go; one Paho refuses goes back, unless a newer one came meanwhile. */
static void live_publish_docs(live *lv)
{
    pthread_mutex_lock(&lv->lock);
    mqtt_link *ml = lv->ml;
    size_t n = ml ? lv->n_docs : 0;
    char *topic[LIVE_DOCS_MAX], *json[LIVE_DOCS_MAX];
    memcpy(topic, lv->doc_topic, n * sizeof *topic);
    memcpy(json, lv->doc_json, n * sizeof *json);
    memmove(lv->doc_topic, lv->doc_topic + n, (lv->n_docs - n) * sizeof *topic);
    memmove(lv->doc_json, lv->doc_json + n, (lv->n_docs - n) * sizeof *json);
    lv->n_docs -= n;
    pthread_mutex_unlock(&lv->lock);
    for (size_t i = 0; i < n; i++) {
        if (mqtt_link_publish_live(ml, topic[i], json[i]) != 0) {
            pthread_mutex_lock(&lv->lock);
            size_t k = 0;
            while (k < lv->n_docs && strcmp(lv->doc_topic[k], topic[i]) != 0) k++;
            if (k == lv->n_docs && k < LIVE_DOCS_MAX) {
                lv->doc_topic[k] = topic[i];
                lv->doc_json[k] = json[i];
                lv->n_docs++;
                topic[i] = json[i] = NULL;
            }
            pthread_mutex_unlock(&lv->lock);
        }
        free(topic[i]);
        free(json[i]);
    }
}

int live_offer(live *lv, const char *subtopic, const char *json)
{
    int rc = 0;
    pthread_mutex_lock(&lv->lock);
    size_t i = 0;
    while (i < lv->n_docs && strcmp(lv->doc_topic[i], subtopic) != 0) i++;
    char *copy = strdup(json);
    if (!copy) {
        rc = -1;
    } else if (i < lv->n_docs) {
        free(lv->doc_json[i]);
        lv->doc_json[i] = copy;
    } else if (lv->n_docs < LIVE_DOCS_MAX && (lv->doc_topic[i] = strdup(subtopic))) {
        lv->doc_json[i] = copy;
        if (lv->n_docs++ == 0) pthread_cond_signal(&lv->cond); /* its wait ends at the next burst */
    } else {
        free(copy);
        rc = -1;
    }
    pthread_mutex_unlock(&lv->lock);
    return rc;
}

/* The replay start a restart would need now: never after the first event
 * of a lot the document holds, nor after an event not yet read. */
static void live_checkpoint(live *lv, int64_t now_ms, int force)
{
    pthread_mutex_lock(&lv->lock);
    uint64_t first = yield_first_seq(lv->y);
    pthread_mutex_unlock(&lv->lock);
    uint64_t from = first ? first : lv->cursor + 1;
    if (from == lv->checkpoint || (!force && now_ms - lv->checkpoint_ms < LIVE_CHECKPOINT_MS)) return;
    char v[24];
    int n = snprintf(v, sizeof v, "%llu", (unsigned long long)from);
    lv->checkpoint_ms = now_ms; /* a failure (disk full) is tried again later, not every turn */
    if (spool_kv_put(lv->sp, LIVE_NS, LIVE_KEY, v, (size_t)n) != 0) {
        log_warn("live: cannot write the yield checkpoint: %s", spool_errmsg(lv->sp));
        return;
    }
    lv->checkpoint = from;
}

static void *live_main(void *arg)
{
    live *lv = arg;
    int dirty = 1;
    int64_t next_pub = 0, last_pub = 0;
    pthread_mutex_lock(&lv->lock);
    while (!lv->stopping) {
        int64_t now = clock_mono_ms();
        int64_t wake = dirty || lv->n_docs ? next_pub : last_pub + LIVE_REFRESH_MS;
        if (!lv->kicked && wake > now) {
            struct timespec ts = clock_deadline_ms(wake - now);
            pthread_cond_timedwait(&lv->cond, &lv->lock, &ts);
            if (lv->stopping) break;
        }
        lv->kicked = 0;
        int docs = lv->n_docs > 0;
        pthread_mutex_unlock(&lv->lock);
        if (live_read_new(lv) > 0) dirty = 1;
        now = clock_mono_ms();
        if (now - last_pub >= LIVE_REFRESH_MS) dirty = 1;
        if ((dirty || docs) && now >= next_pub) { /* one burst: the yield and the station documents */
            if (dirty && live_publish(lv, clock_wall_ms()) == 0) {
                dirty = 0;
                last_pub = now;
            }
            live_publish_docs(lv);
            next_pub = now + LIVE_MIN_GAP_MS;
        }
        live_checkpoint(lv, now, 0);
        pthread_mutex_lock(&lv->lock);
    }
    pthread_mutex_unlock(&lv->lock);
    return NULL;
}

/* Replays from the checkpoint; without one (a new spool) starts at the
 * end, as nothing before it belongs to a lot the document would show. */
static int live_replay(live *lv, char *err, size_t err_len)
{
    spool_stats st;
    uint8_t *v = NULL;
    size_t len = 0;
    int have = spool_kv_get(lv->sp, LIVE_NS, LIVE_KEY, &v, &len);
    if (have < 0 || spool_get_stats(lv->sp, &st) != 0) {
        snprintf(err, err_len, "live: cannot read the spool: %s", spool_errmsg(lv->sp));
        free(v);
        return -1;
    }
    lv->replayed_to = st.next_seq ? st.next_seq - 1 : 0;
    uint64_t from = lv->replayed_to + 1;
    if (have == 1) {
        char buf[24] = "";
        memcpy(buf, v, len < sizeof buf - 1 ? len : sizeof buf - 1);
        from = strtoull(buf, NULL, 10);
    }
    free(v);
    lv->cursor = from ? from - 1 : 0;
    if (live_read_new(lv) < 0) {
        snprintf(err, err_len, "live: cannot replay the spool: %s", spool_errmsg(lv->sp));
        return -1;
    }
    if (have == 1) log_info("live: yield rebuilt from the spool, events %llu..%llu", (unsigned long long)from,
                            (unsigned long long)lv->replayed_to);
    return 0;
}

live *live_start(const config *cfg, const spool_options *so, char *err, size_t err_len)
{
    live *lv = calloc(1, sizeof *lv);
    lv->cfg = cfg;
    lv->y = yield_new();
    pthread_mutex_init(&lv->lock, NULL);
    pthread_cond_init(&lv->cond, NULL);
    if (spool_open(&lv->sp, cfg->spool_path, so, err, err_len) != 0 || live_replay(lv, err, err_len) != 0) {
        live_stop(lv);
        return NULL;
    }
    live_checkpoint(lv, clock_mono_ms(), 1);
    if (pthread_create(&lv->thread, NULL, live_main, lv) != 0) {
        snprintf(err, err_len, "live: cannot start its thread");
        live_stop(lv);
        return NULL;
    }
    pthread_setname_np(lv->thread, "la-live"); /* for top -H and the benchmark's CPU split */
    lv->started = 1;
    return lv;
}

void live_attach(live *lv, mqtt_link *ml)
{
    pthread_mutex_lock(&lv->lock);
    lv->ml = ml;
    lv->kicked = 1;
    pthread_cond_signal(&lv->cond);
    pthread_mutex_unlock(&lv->lock);
}

void live_kick(live *lv)
{
    pthread_mutex_lock(&lv->lock);
    lv->kicked = 1;
    pthread_cond_signal(&lv->cond);
    pthread_mutex_unlock(&lv->lock);
}

uint64_t live_seq(live *lv) { return atomic_load(&lv->seq); }

void live_describe(live *lv, char *buf, size_t len)
{
    pthread_mutex_lock(&lv->lock);
    yield_describe(lv->y, buf, len);
    pthread_mutex_unlock(&lv->lock);
}

void live_stop(live *lv)
{
    if (!lv) return;
    if (lv->started) {
        pthread_mutex_lock(&lv->lock);
        lv->stopping = 1;
        pthread_cond_signal(&lv->cond);
        pthread_mutex_unlock(&lv->lock);
        pthread_join(lv->thread, NULL);
        live_read_new(lv); /* the last commits: published and checkpointed */
        live_publish(lv, clock_wall_ms());
        live_publish_docs(lv);
        live_checkpoint(lv, clock_mono_ms(), 1);
    }
    for (size_t i = 0; i < lv->n_docs; i++) {
        free(lv->doc_topic[i]);
        free(lv->doc_json[i]);
    }
    spool_close(lv->sp);
    yield_free(lv->y);
    pthread_mutex_destroy(&lv->lock);
    pthread_cond_destroy(&lv->cond);
    free(lv);
}
