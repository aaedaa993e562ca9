/* SPDX-License-Identifier: Apache-2.0 */
/* station_sink.c - the unit tests' collector of station results
 * (station_sink.h). */
#include "station_sink.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

void station_sink_init(station_sink *k)
{
    memset(k, 0, sizeof *k);
    pthread_mutex_init(&k->mu, NULL);
}

void station_sink_post(void *ud, station_result *first, station_result *last)
{
    station_sink *k = ud;
    pthread_mutex_lock(&k->mu);
    for (station_result *r = first, *next; r; r = next) {
        next = r->chain;
        if (k->n < STATION_SINK_MAX) k->r[k->n++] = r;
        else free(r);
    }
    if (last->kind == STATION_DONE) k->done++;
    pthread_mutex_unlock(&k->mu);
}

int station_sink_wait(station_sink *k, int done, int timeout_ms)
{
    int64_t until = clock_mono_ms() + timeout_ms;
    pthread_mutex_lock(&k->mu);
    while (k->done < done && clock_mono_ms() < until) {
        pthread_mutex_unlock(&k->mu);
        usleep(2000);
        pthread_mutex_lock(&k->mu);
    }
    int got = k->done;
    pthread_mutex_unlock(&k->mu);
    return got;
}

const station_result *station_sink_step(const station_sink *k, const char *board, Step s)
{
    for (int i = 0; i < k->n; i++)
        if (k->r[i]->kind == STATION_STEP && k->r[i]->step == s && !strcmp(k->r[i]->board_id, board)) return k->r[i];
    return NULL;
}

void station_sink_free(station_sink *k)
{
    for (int i = 0; i < k->n; i++) free(k->r[i]);
    pthread_mutex_destroy(&k->mu);
}
