/* SPDX-License-Identifier: Apache-2.0 */
/* station_sink.h - a station's post callback for unit tests: collects every
 * result a station posts (station_start's post), in arrival order, so a
 * test can wait for boards to be done and then look at their steps. */
#ifndef LINEAGENT_TEST_STATION_SINK_H
#define LINEAGENT_TEST_STATION_SINK_H

#include <pthread.h>

#include "station.h"

#define STATION_SINK_MAX 64 /* results kept; later ones are freed */

typedef struct station_sink {
    pthread_mutex_t mu;
    station_result *r[STATION_SINK_MAX];
    int n;    /* results kept in r */
    int done; /* STATION_DONE results seen */
} station_sink;

void station_sink_init(station_sink *k);

/* The post callback: station_start(cfg, station_sink_post, k, ...). */
void station_sink_post(void *ud, station_result *first, station_result *last);

/* Waits (polling) until done boards are done or timeout_ms has passed on the
 * monotonic clock; the number of boards done then. */
int station_sink_wait(station_sink *k, int done, int timeout_ms);

/* The STATION_STEP result of step s for board, or NULL. */
const station_result *station_sink_step(const station_sink *k, const char *board, Step s);

/* Frees the results kept and the sink's lock. */
void station_sink_free(station_sink *k);

#endif
