/* SPDX-License-Identifier: Apache-2.0 */
/* delivery_watch.c - the kafka_stalled decision (see delivery_watch.h).
 * Progress is judged by the lowest undelivered seq rather than by the
 * forwarder's own view: it covers a broker that is down, an event Kafka
 * keeps refusing (the watermark cannot pass it), and a forwarder that is
 * stuck, with one indexed row read a second. */
#include "delivery_watch.h"

#include <stdio.h>

#include "clock.h"

void delivery_watch_init(delivery_watch *w, int64_t stall_ms)
{
    *w = (delivery_watch){.stall_ms = stall_ms};
}

typedef struct first_event {
    uint64_t seq;
    int64_t time_ms;
} first_event;

static int delivery_watch_take_first(void *ud, const spool_event *ev)
{
    first_event *f = ud;
    f->seq = ev->seq;
    f->time_ms = ev->time_ms;
    return 1;
}

int delivery_watch_tick(delivery_watch *w, spool *sp, int64_t now_ms)
{
    if (now_ms < w->next_ms) return 0;
    w->next_ms = now_ms + 1000;
    first_event f = {0, 0};
    if (spool_pending_page(sp, 0, 1, delivery_watch_take_first, &f) < 0) return 0;
    int was = w->stalled;
    if (f.seq != w->first_seq) {
        /* Moved, or events wait again after none did: the clock starts
         * now, not at the last delivery an idle hour ago. */
        w->first_seq = f.seq;
        w->first_time_ms = f.time_ms;
        w->since_ms = now_ms;
        w->since_wall_ms = clock_wall_ms();
        w->stalled = 0;
    } else if (f.seq && w->stall_ms && now_ms - w->since_ms >= w->stall_ms) {
        w->stalled = 1;
    }
    return was != w->stalled;
}

void delivery_watch_describe(const delivery_watch *w, char *buf, size_t len)
{
    char when[32], since[32];
    clock_format_utc(w->first_time_ms, when, sizeof when);
    clock_format_utc(w->since_wall_ms, since, sizeof since);
    snprintf(buf, len, "no delivery to Kafka has moved past seq %llu (event time %s) since %s; it and every later"
             " event wait in the spool",
             (unsigned long long)w->first_seq, when, since);
}
