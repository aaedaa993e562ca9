/* SPDX-License-Identifier: Apache-2.0 */
/* ts_decode.c - record decoding and checking (ts_decode.h). Strings are
 * checked by walking the message descriptors, so fields added to the schema
 * are covered without code here. */
#include "ts_decode.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define TS_ID_MAX 128 /* event ids are UUIDs; anything longer is not ours */

/* Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF),
 * and no NUL: PostgreSQL text refuses both. */
static int ts_utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned min;
        if ((c & 0xe0) == 0xc0) k = 1, min = 0x80, c &= 0x1f;
        else if ((c & 0xf0) == 0xe0) k = 2, min = 0x800, c &= 0x0f;
        else if ((c & 0xf8) == 0xf0) k = 3, min = 0x10000, c &= 0x07;
        else return 0;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xc0) != 0x80) return 0;
            c = (c << 6) | (s[i + j] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
        i += k + 1;
    }
    return 1;
}

/* Every string field, in nested messages and repeated fields too. protobuf-c
 * hands strings out as C strings: one with an embedded NUL arrives shortened,
 * which PostgreSQL accepts. */
static int ts_strings_ok(const ProtobufCMessage *m, char *bad, size_t bad_len)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *base = (const char *)m + f->offset;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)((const char *)m + f->quantifier_offset);
            if (which != f->id) continue;
        }
        size_t count = 1;
        const void *const *items = (const void *const *)base;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            count = *(const size_t *)((const char *)m + f->quantifier_offset);
            items = *(const void *const *const *)base;
        }
        for (size_t j = 0; j < count; j++) {
            const void *v = items[j];
            if (f->type == PROTOBUF_C_TYPE_STRING && v && !ts_utf8_ok(v, strlen(v))) {
                snprintf(bad, bad_len, "field %s is not valid UTF-8", f->name);
                return 0;
            }
            if (f->type == PROTOBUF_C_TYPE_MESSAGE && v && !ts_strings_ok(v, bad, bad_len)) return 0;
        }
    }
    return 1;
}

static const char *ts_body_name(const Lineagent__V1__TraceEvent *ev)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&lineagent__v1__trace_event__descriptor, ev->body_case);
    return f ? f->name : NULL;
}

static int ts_fail(char *reason, size_t len, const char *why)
{
    snprintf(reason, len, "%s", why);
    return -1;
}

int ts_decode_record(const void *buf, size_t len, ts_rec_kind kind, ts_decoded *out, char *reason,
                     size_t reason_len)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    char bad[160];
    if (!buf || len == 0) return ts_fail(reason, reason_len, "empty value");
    if (kind == TS_REC_FIELD) {
        out->ff = lineagent__v1__field_firmware_report__unpack(NULL, len, buf);
        if (!out->ff) return ts_fail(reason, reason_len, "undecodable: not a FieldFirmwareReport");
        out->type = "field_firmware";
        const char *why = NULL;
        if (!out->ff->serial[0] || strlen(out->ff->serial) > TS_ID_MAX) why = "missing or overlong serial";
        else if (!out->ff->version[0]) why = "missing version";
        else if (out->ff->time_ms < TS_TIME_MIN_MS || out->ff->time_ms >= TS_TIME_MAX_MS) why = "time out of range";
        else if (!ts_strings_ok(&out->ff->base, bad, sizeof bad)) why = bad;
        if (why) {
            ts_decoded_free(out);
            return ts_fail(reason, reason_len, why);
        }
        return 0;
    }
    out->ev = lineagent__v1__trace_event__unpack(NULL, len, buf);
    if (!out->ev) return ts_fail(reason, reason_len, "undecodable: not a TraceEvent");
    const Lineagent__V1__TraceEvent *ev = out->ev;
    const char *why = NULL;
    out->type = ts_body_name(ev);
    if (!ev->event_id[0]) why = "missing event_id";
    else if (strlen(ev->event_id) > TS_ID_MAX) why = "overlong event_id";
    else if (!out->type) why = "unknown or missing event type";
    else if (ev->time_ms < TS_TIME_MIN_MS || ev->time_ms >= TS_TIME_MAX_MS) why = "time out of range";
    else if (ev->seq == 0 || ev->seq > INT64_MAX) why = "seq out of range";
    else if (!ts_strings_ok(&ev->base, bad, sizeof bad)) why = bad;
    if (why) {
        ts_decoded_free(out);
        return ts_fail(reason, reason_len, why);
    }
    return 0;
}

void ts_decoded_free(ts_decoded *d)
{
    if (d->ev) lineagent__v1__trace_event__free_unpacked(d->ev, NULL);
    if (d->ff) lineagent__v1__field_firmware_report__free_unpacked(d->ff, NULL);
    d->ev = NULL;
    d->ff = NULL;
}
