/* SPDX-License-Identifier: Apache-2.0 */
/* proto_json.c - protobuf-c message to proto3 JSON (jansson), generically from
 * the descriptors, so new fields and event types show up without code here.
 *
 * Deliberate deviations from the proto3 JSON mapping:
 * - int64/uint64 are JSON numbers, not strings: jq and the tests compare them
 *   as numbers, and jansson's integers are exact to 63 bits. Only a uint64
 *   above INT64_MAX, which json_int_t cannot hold, becomes the decimal string
 *   the mapping prescribes.
 * - Fields at their default value are printed (an option the mapping allows),
 *   so a reader sees "passed": false instead of having to know proto3 drops it.
 * - No special forms for well-known types or maps: our schemas use neither
 *   (a map would come out as an array of {key, value} entries).
 * Unknown fields (from a newer schema) are not printed. */
#include "proto_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *proto_json_base64(const void *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *in = data;
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? alphabet[v & 63] : '=';
    }
    json_t *s = json_stringn(out, o);
    free(out);
    return s;
}

static json_t *proto_json_uint64(uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX) return json_integer((json_int_t)v);
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return json_string(buf);
}

static json_t *proto_json_double(double v)
{
    /* JSON has no NaN or infinities; the mapping spells them as strings. */
    if (isnan(v)) return json_string("NaN");
    if (isinf(v)) return json_string(v > 0 ? "Infinity" : "-Infinity");
    return json_real(v);
}

/* One value of field f stored at p (the member itself, or an array element). */
static json_t *proto_json_value(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return proto_json_uint64(*(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT: return proto_json_double(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE: return proto_json_double(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        /* A number this schema does not know stays a number, as the mapping says. */
        return ev ? json_string(ev->name) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return json_string(s ? s : ""); /* NULL when not UTF-8 */
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        return proto_json_base64(b->data, b->len);
    }
    case PROTOBUF_C_TYPE_MESSAGE: return proto_json_from_message(*(ProtobufCMessage *const *)p);
    }
    return NULL;
}

/* Element size of a repeated field's array, as protobuf-c lays it out. */
static size_t proto_json_elem_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM: return 4;
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return 8;
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    }
    return 0;
}

static json_t *proto_json_repeated(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *msg)
{
    size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
    const char *elems = *(char *const *)((const char *)msg + f->offset);
    size_t size = proto_json_elem_size(f->type);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, proto_json_value(f, elems + i * size)) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* Whether a singular field is to be printed. */
static int proto_json_present(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *msg)
{
    const char *base = (const char *)msg;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING)
        return *(void *const *)(base + f->offset) != NULL;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) /* proto2 or proto3 `optional`: has_ flag */
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
    return 1; /* required, or proto3 implicit presence */
}

/* Sets obj[lowerCamelCase(name)] = v, taking v even on failure. protoc's
 * json_name rule: drop each '_' and upper-case the letter after it. */
static int proto_json_set(json_t *obj, const char *name, json_t *v)
{
    char buf[128];
    size_t len = strlen(name);
    char *key = len < sizeof buf ? buf : malloc(len + 1);
    if (!key) {
        json_decref(v);
        return -1;
    }
    size_t k = 0;
    int upper = 0;
    for (const char *c = name; *c; c++) {
        if (*c == '_') {
            upper = 1;
            continue;
        }
        key[k++] = upper && *c >= 'a' && *c <= 'z' ? (char)(*c - 'a' + 'A') : *c;
        upper = 0;
    }
    key[k] = '\0';
    int rc = json_object_set_new(obj, key, v);
    if (key != buf) free(key);
    return rc;
}

json_t *proto_json_from_message(const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    json_t *obj = json_object();
    for (unsigned i = 0; obj && i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        json_t *v;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) v = proto_json_repeated(f, msg);
        else if (proto_json_present(f, msg)) v = proto_json_value(f, (const char *)msg + f->offset);
        else continue;
        if (proto_json_set(obj, f->name, v) != 0) {
            json_decref(obj);
            obj = NULL;
        }
    }
    return obj;
}
