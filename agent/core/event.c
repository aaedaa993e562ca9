/* SPDX-License-Identifier: Apache-2.0 */
/* event.c - stamping, encoding and spooling traceability events. */
#include "event.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"

/* RAND_bytes costs a provider lookup per call, more than the 16 bytes
 * themselves: draw randomness in blocks, one pool per thread. */
#define EVENT_RAND_POOL 4096

/* Time-ordered ids (UUID version 7, RFC 9562): the spool's unique index on
 * event_id then grows at its right edge, as seq does. Random ids put every
 * insert on a different index page, and each commit wrote about ten times
 * the rows' own size to the WAL. The 12 bits after the millisecond count
 * within it (RFC 9562 method 1, starting at a random value below 2048), so
 * one thread's ids strictly increase; 62 random bits keep them unique. */
void event_uuid7(char out[37], int64_t now_ms)
{
    static _Thread_local unsigned char pool[EVENT_RAND_POOL];
    static _Thread_local size_t used = EVENT_RAND_POOL;
    static _Thread_local uint64_t last_ms;
    static _Thread_local unsigned counter;
    static const char hex[] = "0123456789abcdef";
    if (used + 16 > EVENT_RAND_POOL) {
        if (RAND_bytes(pool, sizeof pool) != 1) abort(); /* no entropy: ids could repeat */
        used = 0;
    }
    unsigned char *b = pool + used;
    used += 16;
    uint64_t ms = (uint64_t)now_ms;
    if (ms > last_ms) {
        last_ms = ms;
        counter = (unsigned)(b[6] << 8 | b[7]) & 0x7ff;
    } else if (++counter > 0xfff) { /* clock went back, or 4096 ids in one ms */
        last_ms++;
        counter = 0;
    }
    for (int i = 0; i < 6; i++) b[i] = (unsigned char)(last_ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | counter >> 8);
    b[7] = (unsigned char)counter;
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = 0;
}

const char *event_type(const TraceEvent *ev)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&lineagent__v1__trace_event__descriptor, (unsigned)ev->body_case);
    return f ? f->name : "unknown";
}

int event_commit(spool *sp, const char *site, const char *line, TraceEvent *ev)
{
    char id[37];
    uint8_t stack_buf[1024];
    ev->time_ms = clock_wall_ms();
    event_uuid7(id, ev->time_ms); /* the id's time is the event's */
    ev->event_id = id;
    ev->seq = spool_next_seq(sp);
    ev->site = (char *)site;
    ev->line = (char *)line;
    ev->agent_instance_id = (char *)spool_instance_id(sp);
    size_t len = lineagent__v1__trace_event__get_packed_size(ev);
    uint8_t *buf = len <= sizeof stack_buf ? stack_buf : malloc(len);
    if (!buf) return -1;
    lineagent__v1__trace_event__pack(ev, buf);
    const char *key = ev->lot_id && *ev->lot_id ? ev->lot_id : ev->order_id;
    spool_event se = {.seq = ev->seq, .event_id = id, .key = key ? key : "", .type = event_type(ev),
                      .time_ms = ev->time_ms, .payload = buf, .len = len};
    int rc = spool_append_event(sp, &se);
    if (buf != stack_buf) free(buf);
    ev->event_id = (char *)protobuf_c_empty_string; /* id lived on this stack frame */
    return rc;
}
