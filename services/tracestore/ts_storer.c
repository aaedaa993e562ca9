/* SPDX-License-Identifier: Apache-2.0 */
/* ts_storer.c - the store thread (ts_storer.h). */
#include "ts_storer.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


struct ts_storer {
    const ts_config *cfg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    ts_batch *batch; /* in flight, or done and not yet collected */
    int busy, quit;
    int rc;
    ts_store_result res;
    char err[512];
    PGconn *db; /* the thread's own */
};

/* One attempt; a connection found broken is dropped for the next. */
static int ts_storer_store(ts_storer *s, ts_batch *b, ts_store_result *res, char *err, size_t err_len)
{
    if (!s->db && !(s->db = ts_store_connect(s->cfg, err, err_len))) return -1;
    int rc = ts_store_flush(s->db, b, s->cfg->group, res, err, err_len);
    if (rc && PQstatus(s->db) != CONNECTION_OK) {
        PQfinish(s->db);
        s->db = NULL;
    }
    return rc;
}

static void *ts_storer_main(void *arg)
{
    ts_storer *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->quit && !s->busy) pthread_cond_wait(&s->cond, &s->lock);
        if (!s->busy) break; /* quit, nothing in flight */
        ts_batch *b = s->batch;
        pthread_mutex_unlock(&s->lock);
        ts_store_result res;
        char err[512] = "";
        int rc = ts_storer_store(s, b, &res, err, sizeof err);
        pthread_mutex_lock(&s->lock);
        s->rc = rc, s->res = res;
        memcpy(s->err, err, sizeof err);
        s->busy = 0;
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

ts_storer *ts_storer_start(const ts_config *cfg)
{
    ts_storer *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cfg = cfg;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (pthread_create(&s->thread, NULL, ts_storer_main, s)) {
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        free(s);
        return NULL;
    }
    return s;
}

void ts_storer_submit(ts_storer *s, ts_batch *b)
{
    pthread_mutex_lock(&s->lock);
    s->batch = b;
    s->busy = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

ts_batch *ts_storer_wait(ts_storer *s, int *rc, ts_store_result *res, char *err, size_t err_len)
{
    pthread_mutex_lock(&s->lock);
    while (s->busy) pthread_cond_wait(&s->cond, &s->lock);
    ts_batch *b = s->batch;
    s->batch = NULL;
    *rc = s->rc, *res = s->res;
    snprintf(err, err_len, "%s", s->err);
    pthread_mutex_unlock(&s->lock);
    return b;
}

int ts_storer_busy(ts_storer *s)
{
    pthread_mutex_lock(&s->lock);
    int busy = s->busy;
    pthread_mutex_unlock(&s->lock);
    return busy;
}

void ts_storer_stop(ts_storer *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->quit = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    if (s->db) PQfinish(s->db);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}
