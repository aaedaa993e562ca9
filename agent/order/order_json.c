/* SPDX-License-Identifier: Apache-2.0 */
/* order_json.c - JobOrder from proto3 JSON (jansson), for MES systems that
 * publish JSON instead of protobuf.
 *
 * Decoding is driven by the protobuf-c descriptors, so the accepted keys are
 * exactly the schema's field names (lowerCamelCase, or snake_case as the
 * proto3 mapping also allows). Input is checked strictly and every error
 * names the field: an MES integrator reads these reasons, and a typo must not
 * become a silently missing field.
 *
 * The JSON is first decoded into a temporary message whose strings borrow
 * from the jansson tree; that is packed and unpacked so the caller gets
 * ordinary protobuf-c unpacked memory, freed like any other order. */
#include "order.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OJ_PATH_MAX 128

/* A user-supplied string made safe to quote in a reason: printable ASCII
 * only, cut at 40 characters. */
static const char *oj_quote(const char *s, char *buf, size_t buf_len)
{
    size_t o = 0;
    for (size_t i = 0; s[i] && o + 4 < buf_len; i++) {
        if (i == 40) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[o] = '\0';
    return buf;
}

static const char *oj_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a JSON value";
}

/* lowerCamelCase of a snake_case field name, as the proto3 mapping spells it. */
static void oj_camel(const char *name, char *out, size_t out_len)
{
    size_t o = 0;
    for (size_t i = 0; name[i] && o + 1 < out_len; i++) {
        if (name[i] == '_' && name[i + 1]) {
            out[o++] = (char)toupper((unsigned char)name[++i]);
        } else {
            out[o++] = name[i];
        }
    }
    out[o] = '\0';
}

static const ProtobufCFieldDescriptor *oj_field(const ProtobufCMessageDescriptor *d, const char *key)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        char camel[64];
        oj_camel(d->fields[i].name, camel, sizeof camel);
        if (strcmp(key, camel) == 0 || strcmp(key, d->fields[i].name) == 0) return &d->fields[i];
    }
    return NULL;
}

static void oj_unknown_field(const ProtobufCMessageDescriptor *d, const char *prefix, const char *key,
                             char *reason, size_t reason_len)
{
    char known[256] = "", q[48];
    size_t o = 0;
    for (unsigned i = 0; i < d->n_fields && o < sizeof known; i++) {
        char camel[64];
        oj_camel(d->fields[i].name, camel, sizeof camel);
        o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", i ? ", " : "", camel);
    }
    snprintf(reason, reason_len, "unknown field \"%s%s%s\" (known%s%s: %s)", prefix, *prefix ? "." : "",
             oj_quote(key, q, sizeof q), *prefix ? " in " : "", prefix, known);
}

/* proto3 JSON takes a uint32 as a number or as a decimal string. */
static int oj_uint32(const json_t *v, const char *path, uint32_t *out, char *reason, size_t reason_len)
{
    char q[48];
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < 0) {
            snprintf(reason, reason_len, "%s: %" JSON_INTEGER_FORMAT " is negative", path, x);
            return -1;
        }
        if (x > (json_int_t)UINT32_MAX) {
            snprintf(reason, reason_len, "%s: %" JSON_INTEGER_FORMAT " is larger than %u", path, x, UINT32_MAX);
            return -1;
        }
        *out = (uint32_t)x;
        return 0;
    }
    if (json_is_real(v)) {
        /* 5.0 and 5e3 are whole numbers in JSON's eyes; the mapping accepts them. */
        double x = json_real_value(v);
        if (x < 0) {
            snprintf(reason, reason_len, "%s: %g is negative", path, x);
            return -1;
        }
        if (x > (double)UINT32_MAX) {
            snprintf(reason, reason_len, "%s: %g is larger than %u", path, x, UINT32_MAX);
            return -1;
        }
        if (x != (double)(uint32_t)x) {
            snprintf(reason, reason_len, "%s: %g is not a whole number", path, x);
            return -1;
        }
        *out = (uint32_t)x;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = strspn(s, "0123456789");
        if (s[0] == '-' && s[1] && strspn(s + 1, "0123456789") == strlen(s + 1)) {
            snprintf(reason, reason_len, "%s: \"%s\" is negative", path, oj_quote(s, q, sizeof q));
            return -1;
        }
        if (n == 0 || s[n] != '\0') {
            snprintf(reason, reason_len, "%s: \"%s\" is not a decimal whole number", path, oj_quote(s, q, sizeof q));
            return -1;
        }
        errno = 0;
        unsigned long long x = strtoull(s, NULL, 10);
        if (errno == ERANGE || x > UINT32_MAX) {
            snprintf(reason, reason_len, "%s: \"%s\" is larger than %u", path, oj_quote(s, q, sizeof q), UINT32_MAX);
            return -1;
        }
        *out = (uint32_t)x;
        return 0;
    }
    snprintf(reason, reason_len, "%s: expected a whole number, got %s", path, oj_kind(v));
    return -1;
}

/* proto3 JSON takes a double as a number or as "NaN", "Infinity", "-Infinity". */
static int oj_double(const json_t *v, const char *path, double *out, char *reason, size_t reason_len)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s && !strcmp(s, "Infinity")) return *out = HUGE_VAL, 0;
    if (s && !strcmp(s, "-Infinity")) return *out = -HUGE_VAL, 0;
    if (s && !strcmp(s, "NaN")) return *out = NAN, 0;
    if (s) {
        char *end;
        errno = 0;
        double x = strtod(s, &end);
        if (!errno && end != s && !*end) return *out = x, 0;
    }
    snprintf(reason, reason_len, "%s: expected a number, got %s", path, oj_kind(v));
    return -1;
}

/* Value names are case-sensitive in proto3; accepting "write" as well costs
 * nothing and spares operators a round trip. Integers are taken as they are
 * (proto3 enums are open); order_validate judges unknown values. */
static int oj_enum(const json_t *v, const ProtobufCEnumDescriptor *d, const char *path, int *out, char *reason,
                   size_t reason_len)
{
    char kind[32], q[48];
    oj_camel(d->short_name, kind, sizeof kind);
    kind[0] = (char)tolower((unsigned char)kind[0]);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        for (unsigned i = 0; i < d->n_values; i++)
            if (strcasecmp(s, d->values[i].name) == 0) {
                *out = d->values[i].value;
                return 0;
            }
        char known[160] = "";
        size_t o = 0;
        for (unsigned i = 0; i < d->n_values && o < sizeof known; i++)
            if (d->values[i].value != 0) /* the zero value means "not set" */
                o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", o ? ", " : "", d->values[i].name);
        snprintf(reason, reason_len, "%s: unknown %s \"%s\" (known: %s)", path, kind, oj_quote(s, q, sizeof q),
                 known);
        return -1;
    }
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < INT32_MIN || x > INT32_MAX) {
            snprintf(reason, reason_len, "%s: %" JSON_INTEGER_FORMAT " is not a %s", path, x, kind);
            return -1;
        }
        *out = (int)x;
        return 0;
    }
    snprintf(reason, reason_len, "%s: expected a %s name, got %s", path, kind, oj_kind(v));
    return -1;
}

/* One singular value or one element of a repeated field, stored at dst. */
static int oj_scalar(const ProtobufCFieldDescriptor *f, const json_t *v, const char *path, void *dst,
                     char *reason, size_t reason_len)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(v)) {
            snprintf(reason, reason_len, "%s: expected a string, got %s", path, oj_kind(v));
            return -1;
        }
        /* Borrowed from the JSON tree, which outlives the temporary message. */
        *(const char **)dst = json_string_value(v);
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
        return oj_uint32(v, path, dst, reason, reason_len);
    case PROTOBUF_C_TYPE_ENUM:
        return oj_enum(v, f->descriptor, path, dst, reason, reason_len);
    case PROTOBUF_C_TYPE_DOUBLE:
        return oj_double(v, path, dst, reason, reason_len);
    default:
        /* The schema grew a type this decoder was never taught. */
        snprintf(reason, reason_len, "%s: this agent cannot read that field from JSON; send protobuf", path);
        return -1;
    }
}

static size_t oj_scalar_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_UINT32: return sizeof(uint32_t);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    default: return 0;
    }
}

/* Frees what oj_message allocated inside msg (arrays, sub-messages), not msg
 * itself and not the strings, which belong to the JSON tree. */
static void oj_release(ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        void *member = (char *)msg + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(void **)member) {
                ProtobufCMessage **arr = *(ProtobufCMessage ***)member;
                size_t n = *(size_t *)((char *)msg + f->quantifier_offset);
                for (size_t k = 0; k < n; k++)
                    if (arr[k]) {
                        oj_release(arr[k]);
                        free(arr[k]);
                    }
            }
            free(*(void **)member);
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage **)member) {
            oj_release(*(ProtobufCMessage **)member);
            free(*(ProtobufCMessage **)member);
        }
    }
}

static int oj_message(const json_t *obj, ProtobufCMessage *msg, const char *prefix, char *reason,
                      size_t reason_len);

static int oj_member(const ProtobufCFieldDescriptor *f, const json_t *v, ProtobufCMessage *msg, const char *path,
                     char *reason, size_t reason_len)
{
    void *member = (char *)msg + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t elem = oj_scalar_size(f->type);
        if (!elem) {
            snprintf(reason, reason_len, "%s: this agent cannot read that field from JSON; send protobuf", path);
            return -1;
        }
        if (!json_is_array(v)) {
            snprintf(reason, reason_len, "%s: expected an array, got %s", path, oj_kind(v));
            return -1;
        }
        size_t n = json_array_size(v);
        char *arr = calloc(n ? n : 1, elem);
        if (!arr) {
            snprintf(reason, reason_len, "out of memory decoding %s", path);
            return -1;
        }
        *(void **)member = arr; /* owned by msg from here on, for oj_release */
        *(size_t *)((char *)msg + f->quantifier_offset) = n;
        for (size_t i = 0; i < n; i++) {
            char epath[OJ_PATH_MAX + 24]; /* path, "[", 20 digits, "]" */
            snprintf(epath, sizeof epath, "%s[%zu]", path, i);
            const json_t *e = json_array_get(v, i);
            if (json_is_null(e)) {
                snprintf(reason, reason_len, "%s: null is not allowed in a list", epath);
                return -1;
            }
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (!json_is_object(e)) {
                    snprintf(reason, reason_len, "%s: expected an object, got %s", epath, oj_kind(e));
                    return -1;
                }
                const ProtobufCMessageDescriptor *sd = f->descriptor;
                ProtobufCMessage *sub = calloc(1, sd->sizeof_message);
                if (!sub) {
                    snprintf(reason, reason_len, "out of memory decoding %s", epath);
                    return -1;
                }
                sd->message_init(sub);
                ((ProtobufCMessage **)arr)[i] = sub;
                if (oj_message(e, sub, epath, reason, reason_len) != 0) return -1;
                continue;
            }
            if (oj_scalar(f, e, epath, arr + i * elem, reason, reason_len) != 0) return -1;
        }
        return 0;
    }
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && f->type != PROTOBUF_C_TYPE_MESSAGE && oj_scalar_size(f->type)) {
        /* A scalar in a oneof (a limit's presence): its case is this field. */
        *(uint32_t *)((char *)msg + f->quantifier_offset) = f->id;
        return oj_scalar(f, v, path, member, reason, reason_len);
    }
    if (f->label != PROTOBUF_C_LABEL_NONE) {
        /* proto3 `optional` or a oneof of messages: presence this decoder does not set. */
        snprintf(reason, reason_len, "%s: this agent cannot read that field from JSON; send protobuf", path);
        return -1;
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        if (!json_is_object(v)) {
            snprintf(reason, reason_len, "%s: expected an object, got %s", path, oj_kind(v));
            return -1;
        }
        const ProtobufCMessageDescriptor *sd = f->descriptor;
        ProtobufCMessage *sub = malloc(sd->sizeof_message);
        if (!sub) {
            snprintf(reason, reason_len, "out of memory decoding %s", path);
            return -1;
        }
        sd->message_init(sub);
        *(ProtobufCMessage **)member = sub;
        return oj_message(v, sub, path, reason, reason_len);
    }
    return oj_scalar(f, v, path, member, reason, reason_len);
}

/* Fills msg (initialised, empty) from obj; prefix is the JSON path of obj
 * ("" at the top) for reasons. On error msg may be partly filled. */
static int oj_message(const json_t *obj, ProtobufCMessage *msg, const char *prefix, char *reason,
                      size_t reason_len)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    /* Which key set each field: "orderId" and "order_id" together would
     * leave one of them silently ignored. */
    const char **seen = calloc(d->n_fields ? d->n_fields : 1, sizeof *seen);
    if (!seen) {
        snprintf(reason, reason_len, "out of memory decoding JobOrder");
        return -1;
    }
    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        const ProtobufCFieldDescriptor *f = oj_field(d, key);
        if (!f) {
            oj_unknown_field(d, prefix, key, reason, reason_len);
            rc = -1;
            break;
        }
        char path[OJ_PATH_MAX];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
        if (json_is_null(v)) continue; /* the mapping's way of saying "absent" */
        size_t idx = (size_t)(f - d->fields);
        if (seen[idx]) {
            snprintf(reason, reason_len, "%s%s%s given twice (as \"%s\" and \"%s\")", prefix, *prefix ? "." : "",
                     f->name, seen[idx], key);
            rc = -1;
            break;
        }
        seen[idx] = key;
        if (oj_member(f, v, msg, path, reason, reason_len) != 0) {
            rc = -1;
            break;
        }
    }
    free(seen);
    return rc;
}

JobOrder *order_parse_ids(const void *payload, size_t len)
{
    json_t *root = json_loadb(payload, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    JobOrder tmp = LINEAGENT__V1__JOB_ORDER__INIT;
    const char *id = json_string_value(json_object_get(root, "orderId"));
    const char *lot = json_string_value(json_object_get(root, "lotId"));
    json_t *rev = json_object_get(root, "revision");
    if (!id) id = json_string_value(json_object_get(root, "order_id"));
    if (!lot) lot = json_string_value(json_object_get(root, "lot_id"));
    tmp.order_id = (char *)order_id_or_empty(id);
    tmp.lot_id = (char *)order_id_or_empty(lot);
    if (json_is_integer(rev) && json_integer_value(rev) > 0 && json_integer_value(rev) <= UINT32_MAX)
        tmp.revision = (uint32_t)json_integer_value(rev);
    JobOrder *o = NULL;
    if (*tmp.order_id || *tmp.lot_id || tmp.revision) {
        size_t n = lineagent__v1__job_order__get_packed_size(&tmp);
        uint8_t *buf = malloc(n ? n : 1);
        if (buf) {
            lineagent__v1__job_order__pack(&tmp, buf);
            o = lineagent__v1__job_order__unpack(NULL, n, buf);
            free(buf);
        }
    }
    json_decref(root);
    return o;
}

JobOrder *order_parse_json(const char *json, size_t len, char *reason, size_t reason_len)
{
    json_error_t err;
    /* Duplicate keys are refused: which one wins would be a parser detail. */
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        snprintf(reason, reason_len, "malformed JSON JobOrder at line %d, column %d: %s", err.line, err.column,
                 err.text);
        return NULL;
    }
    JobOrder *o = NULL;
    if (!json_is_object(root)) {
        snprintf(reason, reason_len, "JSON JobOrder must be an object, got %s", oj_kind(root));
        json_decref(root);
        return NULL;
    }
    JobOrder tmp = LINEAGENT__V1__JOB_ORDER__INIT;
    if (oj_message(root, &tmp.base, "", reason, reason_len) == 0) {
        size_t n = lineagent__v1__job_order__get_packed_size(&tmp);
        uint8_t *buf = malloc(n ? n : 1);
        if (buf) {
            lineagent__v1__job_order__pack(&tmp, buf);
            o = lineagent__v1__job_order__unpack(NULL, n, buf);
            free(buf);
        }
        if (!o) snprintf(reason, reason_len, "out of memory decoding JobOrder");
    }
    oj_release(&tmp.base);
    json_decref(root);
    return o;
}
