/* SPDX-License-Identifier: Apache-2.0 */
/* ts_web.c - static files and the "Lines now" live feed (see ts_web.h).
 *
 * Cost is bounded whatever the number of pages: one LISTEN connection, one
 * lines query per refresh, refreshes at most TS_WEB_MIN_GAP_MS apart however
 * fast events arrive (and every TS_WEB_IDLE_REFRESH_MS without events, so a
 * line turns stale on screen), and at most TS_WEB_MAX_STREAMS open pages. */
#include "ts_web.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_db.h"
#include "ts_log.h"
#include "ts_query.h"

#define TS_WEB_MIN_GAP_MS 500
#define TS_WEB_IDLE_REFRESH_MS 10000
#define TS_WEB_KEEPALIVE_MS 15000
#define TS_WEB_MAX_STREAMS 64

struct ts_web {
    const ts_config *cfg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* snapshot replaced, or stopping */
    char *snapshot;         /* "event: lines\ndata: {...}\n\n", NULL until the first query */
    size_t snapshot_len;
    unsigned long generation;
    int streams, stopping;
};

/* One open page: what it has been sent, and the frame being sent. */
typedef struct ts_web_stream_state {
    ts_web *w;
    unsigned long generation; /* of the last frame taken */
    char *frame;
    size_t len, off;
} ts_web_stream_state;

const ts_web_asset *ts_web_find(const char *path)
{
    if (strcmp(path, "/") == 0) path = "/index.html";
    for (size_t i = 0; i < ts_web_n_assets; i++)
        if (strcmp(ts_web_assets[i].path, path) == 0) return &ts_web_assets[i];
    return NULL;
}

static long ts_web_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000;
}

static void ts_web_refresh(ts_web *w, PGconn *db)
{
    json_t *v = NULL;
    char err[512];
    if (ts_query_lines(db, w->cfg->http_stale_after_s, &v, err, sizeof err) != 0) {
        ts_warn("web: lines: %s", err);
        return;
    }
    char *doc = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!doc) return;
    size_t n = strlen(doc) + sizeof "event: lines\ndata: \n\n";
    char *frame = malloc(n);
    if (frame) snprintf(frame, n, "event: lines\ndata: %s\n\n", doc);
    free(doc);
    if (!frame) return;
    pthread_mutex_lock(&w->lock);
    free(w->snapshot);
    w->snapshot = frame;
    w->snapshot_len = strlen(frame);
    w->generation++;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

static int ts_web_stopping(ts_web *w)
{
    pthread_mutex_lock(&w->lock);
    int s = w->stopping;
    pthread_mutex_unlock(&w->lock);
    return s;
}

/* LISTENs for stored events and refreshes the snapshot, coalescing bursts;
 * reconnects after a second when the database goes away. */
static void *ts_web_main(void *arg)
{
    ts_web *w = arg;
    PGconn *db = NULL;
    long last = 0;
    int dirty = 1;
    while (!ts_web_stopping(w)) {
        if (!db || PQstatus(db) != CONNECTION_OK) {
            PQfinish(db);
            char err[512];
            db = ts_db_connect(w->cfg, err, sizeof err);
            if (!db || ts_db_exec(db, "LISTEN tracestore_stored", err, sizeof err)) {
                if (db) PQfinish(db);
                db = NULL;
                struct timespec s = {1, 0};
                nanosleep(&s, NULL);
                continue;
            }
            dirty = 1;
        }
        long now = ts_web_ms();
        if ((dirty && now - last >= TS_WEB_MIN_GAP_MS) || now - last >= TS_WEB_IDLE_REFRESH_MS) {
            ts_web_refresh(w, db);
            last = now;
            dirty = 0;
        }
        struct pollfd p = {.fd = PQsocket(db), .events = POLLIN};
        long wait = dirty ? TS_WEB_MIN_GAP_MS - (now - last) : 250;
        if (poll(&p, 1, (int)(wait > 0 ? wait : 0)) > 0 && PQconsumeInput(db)) {
            PGnotify *n;
            while ((n = PQnotifies(db))) {
                dirty = 1;
                PQfreemem(n);
            }
        }
    }
    PQfinish(db);
    return NULL;
}

ts_web *ts_web_start(const ts_config *cfg, char *err, size_t err_len)
{
    ts_web *w = calloc(1, sizeof *w);
    if (!w) return snprintf(err, err_len, "out of memory"), NULL;
    w->cfg = cfg;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->changed, NULL);
    if (pthread_create(&w->thread, NULL, ts_web_main, w) != 0) {
        snprintf(err, err_len, "web: cannot start a thread");
        pthread_cond_destroy(&w->changed);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

/* MHD's content reader: the rest of the current frame, else blocks until
 * the snapshot changes (a keep-alive comment every TS_WEB_KEEPALIVE_MS, so
 * proxies and the browser keep the stream open). */
static ssize_t ts_web_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    ts_web_stream_state *s = cls;
    ts_web *w = s->w;
    if (s->off == s->len) {
        free(s->frame);
        s->frame = NULL;
        s->off = s->len = 0;
        pthread_mutex_lock(&w->lock);
        if (!w->stopping && (!w->snapshot || w->generation == s->generation)) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += TS_WEB_KEEPALIVE_MS / 1000;
            pthread_cond_timedwait(&w->changed, &w->lock, &until);
        }
        if (w->stopping) {
            pthread_mutex_unlock(&w->lock);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (w->snapshot && w->generation != s->generation) {
            s->frame = strdup(w->snapshot);
            s->len = s->frame ? w->snapshot_len : 0;
            s->generation = w->generation;
        }
        pthread_mutex_unlock(&w->lock);
        if (!s->frame) {
            static const char keepalive[] = ": keep-alive\n\n";
            size_t n = sizeof keepalive - 1 < max ? sizeof keepalive - 1 : max;
            memcpy(buf, keepalive, n);
            return (ssize_t)n;
        }
    }
    size_t n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(buf, s->frame + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static void ts_web_stream_free(void *cls)
{
    ts_web_stream_state *s = cls;
    pthread_mutex_lock(&s->w->lock);
    s->w->streams--;
    pthread_mutex_unlock(&s->w->lock);
    free(s->frame);
    free(s);
}

struct MHD_Response *ts_web_stream(ts_web *w)
{
    ts_web_stream_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->w = w;
    pthread_mutex_lock(&w->lock);
    int full = w->streams >= TS_WEB_MAX_STREAMS || w->stopping;
    if (!full) w->streams++;
    pthread_mutex_unlock(&w->lock);
    if (full) {
        free(s);
        return NULL;
    }
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, ts_web_read, s,
                                                               ts_web_stream_free);
    if (!r) {
        ts_web_stream_free(s);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    return r;
}

void ts_web_stop(ts_web *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
}

void ts_web_free(ts_web *w)
{
    if (!w) return;
    pthread_cond_destroy(&w->changed);
    pthread_mutex_destroy(&w->lock);
    free(w->snapshot);
    free(w);
}
