/* event.c - stamping, encoding and spooling traceability events. */
#include "event.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void event_uuid4(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) abort(); /* no entropy: ids could repeat */
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
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
