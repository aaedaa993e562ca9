/* SPDX-License-Identifier: Apache-2.0 */
/* delivery_watch.h - notices when Kafka stops taking the spool's events:
 * the lowest undelivered event has not moved for [kafka] stall_alarm while
 * events wait. The line goes on (the spool is there for that); the alarm
 * tells plant IT that traceability is not reaching the central database.
 * It decides; the agent logs and publishes the alarm. Main thread only. */
#ifndef LINEAGENT_DELIVERY_WATCH_H
#define LINEAGENT_DELIVERY_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "spool.h"

typedef struct delivery_watch {
    int64_t stall_ms;      /* 0: never raise */
    int64_t next_ms;       /* next look (monotonic ms) */
    uint64_t first_seq;    /* lowest undelivered seq at the last look, 0 none */
    int64_t first_time_ms; /* that event's time (wall clock) */
    int64_t since_ms;      /* monotonic ms since which first_seq has not moved */
    int64_t since_wall_ms; /* the same moment on the wall clock, for people */
    int stalled;
} delivery_watch;

void delivery_watch_init(delivery_watch *w, int64_t stall_ms);
/* At most once a second (now_ms: monotonic): looks at the lowest
 * undelivered event. stalled is raised when it has been the same one for
 * stall_ms, and cleared as soon as it moves or none is left. Returns 1 when
 * stalled changed, 0 otherwise (also when the spool cannot be read: the
 * last decision stands). */
int delivery_watch_tick(delivery_watch *w, spool *sp, int64_t now_ms);
/* The alarm's detail: the event deliveries are stuck at, its time, and for
 * how long. */
void delivery_watch_describe(const delivery_watch *w, char *buf, size_t len);

#endif
