/* event.c - stamping, encoding and spooling traceability events. */
#include "event.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* RAND_bytes costs a provider lookup per call, more than the 16 bytes
 * themselves: draw randomness in blocks, one pool per thread. */
#define EVENT_RAND_POOL 4096

void event_uuid4(char out[37])
{
    static _Thread_local unsigned char pool[EVENT_RAND_POOL];
    static _Thread_local size_t used = EVENT_RAND_POOL;
    static const char hex[] = "0123456789abcdef";
    if (used + 16 > EVENT_RAND_POOL) {
        if (RAND_bytes(pool, sizeof pool) != 1) abort(); /* no entropy: ids could repeat */
        used = 0;
    }
    unsigned char *b = pool + used;
    used += 16;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = 0;
}

int64_t event_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
    event_uuid4(id);
    ev->event_id = id;
    ev->seq = spool_next_seq(sp);
    ev->time_ms = event_now_ms();
    ev->site = (char *)site;
    ev->line = (char *)line;
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
