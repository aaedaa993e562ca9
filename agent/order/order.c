/* SPDX-License-Identifier: Apache-2.0 */
/* order.c - decoding MES job orders (protobuf binary here, JSON in
 * order_json.c), checking the rules an order must meet before the line runs
 * it, and the step vocabulary the rest of the agent shares.
 *
 * Every JobOrder this module hands out is protobuf-c "unpacked" memory, so
 * order_free() can release any of them with free_unpacked. */
#include "order.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ORDER_ID_CHARSET "A-Za-z0-9._:/-"

JobOrder *order_parse(const void *payload, size_t len, char *reason, size_t reason_len)
{
    if (len > ORDER_MAX_PAYLOAD) {
        snprintf(reason, reason_len, "payload of %zu bytes exceeds the 1 MiB limit", len);
        return NULL;
    }
    const unsigned char *p = payload;
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
    /* protobuf-c decodes zero bytes as an all-default order; an empty
     * message is a publishing mistake, not an order. */
    if (i == len) {
        snprintf(reason, reason_len, "empty payload: expected a JobOrder (protobuf or JSON)");
        return NULL;
    }
    if (p[i] == '{') return order_parse_json(payload, len, reason, reason_len);
    JobOrder *o = lineagent__v1__job_order__unpack(NULL, len, payload);
    if (!o) snprintf(reason, reason_len, "malformed protobuf JobOrder (%zu bytes)", len);
    return o;
}

/* ---- validation -------------------------------------------------------- */

static int id_char_ok(unsigned char c, int allow_plus)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return 1;
    if (c == '+') return allow_plus;
    return c == '.' || c == '_' || c == ':' || c == '/' || c == '-';
}

/* Identifiers end up in database keys, topic names and log lines, hence the
 * small character set. The offending byte is shown in hex rather than echoed
 * so a reason never carries control characters into logs. */
static int check_id(const char *field, const char *v, int allow_plus, char *reason, size_t reason_len)
{
    if (!v || !*v) {
        snprintf(reason, reason_len, "%s missing", field);
        return -1;
    }
    size_t n = strlen(v);
    if (n > ORDER_ID_MAX) {
        snprintf(reason, reason_len, "%s is %zu characters long; the limit is %d", field, n, ORDER_ID_MAX);
        return -1;
    }
    /* A leading '-' would reach vendor programs' command lines as an option. */
    if (v[0] == '-') {
        snprintf(reason, reason_len, "%s must not start with '-'", field);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!id_char_ok((unsigned char)v[i], allow_plus)) {
            snprintf(reason, reason_len, "%s has a character outside [%s%s] at position %zu (byte 0x%02x)", field,
                     ORDER_ID_CHARSET, allow_plus ? "+" : "", i + 1, (unsigned char)v[i]);
            return -1;
        }
    return 0;
}

/* Lowercase only: the digest travels on as the release's identity (spool
 * cache key, read-back comparison in the adapters), where it is compared
 * byte for byte with computed lowercase digests. The schema says so too. */
static int check_sha256(const char *v, char *reason, size_t reason_len)
{
    if (!v || !*v) {
        snprintf(reason, reason_len, "firmware.sha256 missing");
        return -1;
    }
    size_t n = strlen(v);
    if (n != 64) {
        snprintf(reason, reason_len, "firmware.sha256 must be exactly 64 lowercase hex characters, not %zu", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            snprintf(reason, reason_len,
                     "firmware.sha256 must be 64 lowercase hex characters; position %zu is byte 0x%02x", i + 1,
                     (unsigned char)c);
            return -1;
        }
    }
    return 0;
}

static int check_url(const char *v, char *reason, size_t reason_len)
{
    if (!v || !*v) {
        snprintf(reason, reason_len, "firmware.url missing");
        return -1;
    }
    /* A URL is printable ASCII without blanks (RFC 3986); anything else is
     * garbage that would only confuse curl and the logs. */
    for (size_t i = 0; v[i]; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= 0x20 || c >= 0x7f) {
            snprintf(reason, reason_len, "firmware.url has a character not allowed in a URL at position %zu "
                     "(byte 0x%02x)", i + 1, c);
            return -1;
        }
    }
    size_t n = 0;
    while (v[n] && v[n] != ':' && v[n] != '/' && n < 32) n++;
    if (v[n] != ':' || n == 0) {
        snprintf(reason, reason_len, "firmware.url has no scheme (allowed: file:, http:, https:)");
        return -1;
    }
    static const char *const allowed[] = {"file", "http", "https"};
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (strlen(allowed[i]) == n && strncasecmp(v, allowed[i], n) == 0) return 0;
    snprintf(reason, reason_len, "firmware.url scheme \"%.*s:\" is not allowed (allowed: file:, http:, https:)",
             (int)n, v);
    return -1;
}

static int check_firmware(const Lineagent__V1__FirmwareRelease *fw, char *reason, size_t reason_len)
{
    if (!fw) {
        snprintf(reason, reason_len, "firmware missing: an order must name its firmware release");
        return -1;
    }
    if (check_id("firmware.version", fw->version, 1, reason, reason_len) != 0) return -1;
    if (check_sha256(fw->sha256, reason, reason_len) != 0) return -1;
    if (check_url(fw->url, reason, reason_len) != 0) return -1;
    switch (fw->build) {
    case LINEAGENT__V1__BUILD__PRODUCTION:
        return 0;
    case LINEAGENT__V1__BUILD__DEBUG:
        snprintf(reason, reason_len, "firmware build is DEBUG: a production order takes only a PRODUCTION build");
        return -1;
    case LINEAGENT__V1__BUILD__BUILD_UNSPECIFIED:
        snprintf(reason, reason_len, "firmware.build missing");
        return -1;
    default:
        /* proto3 enums are open: the wire may carry values we do not know. */
        snprintf(reason, reason_len, "firmware.build %d is not a known build", (int)fw->build);
        return -1;
    }
}

static int step_known(Step s)
{
    return protobuf_c_enum_descriptor_get_value(&lineagent__v1__step__descriptor, (int)s) != NULL;
}

/* Rules are checked one at a time in this order, so the reason names the
 * most basic problem first. */
static int check_flow(const JobOrder *o, char *reason, size_t reason_len)
{
    if (o->n_flow == 0) {
        snprintf(reason, reason_len, "flow is empty: an order must list its steps");
        return -1;
    }
    for (size_t i = 0; i < o->n_flow; i++) {
        if (o->flow[i] == LINEAGENT__V1__STEP__STEP_UNSPECIFIED) {
            snprintf(reason, reason_len, "flow[%zu] is STEP_UNSPECIFIED", i);
            return -1;
        }
        if (!step_known(o->flow[i])) {
            snprintf(reason, reason_len, "flow[%zu] is an unknown step (%d)", i, (int)o->flow[i]);
            return -1;
        }
    }
    for (size_t i = 1; i < o->n_flow; i++)
        for (size_t j = 0; j < i; j++)
            if (o->flow[i] == o->flow[j]) {
                snprintf(reason, reason_len, "flow lists %s twice (flow[%zu] and flow[%zu])",
                         order_step_name(o->flow[i]), j, i);
                return -1;
            }
    int w = order_flow_index(o, LINEAGENT__V1__STEP__WRITE);
    int v = order_flow_index(o, LINEAGENT__V1__STEP__VERIFY);
    int l = order_flow_index(o, LINEAGENT__V1__STEP__LOCK);
    if (w < 0) {
        /* The agent programs boards on the line (post-assembly or during
         * test); it has no mode for parts programmed before placement. */
        snprintf(reason, reason_len, "flow has no WRITE step: every order must program the firmware");
        return -1;
    }
    if (v >= 0 && v != w + 1) {
        snprintf(reason, reason_len, "flow: VERIFY (flow[%d]) must come right after WRITE (flow[%d])", v, w);
        return -1;
    }
    if (v < 0) {
        snprintf(reason, reason_len,
                 "flow: WRITE must be immediately followed by VERIFY (no write without read-back verification)");
        return -1;
    }
    if (l < 0 && o->firmware->build == LINEAGENT__V1__BUILD__PRODUCTION) {
        /* Rule R5: a unit cannot pass with an open debug port. */
        snprintf(reason, reason_len, "flow has no LOCK step: a PRODUCTION order must lock the debug port");
        return -1;
    }
    if (l >= 0 && l < v) {
        snprintf(reason, reason_len, "flow: LOCK (flow[%d]) must come after VERIFY (flow[%d])", l, v);
        return -1;
    }
    return 0;
}

/* Test items: a name the events can carry, a real interval, each name once. */
static int check_test_items(const JobOrder *o, char *reason, size_t reason_len)
{
    /* The count first: the duplicate check below is quadratic. */
    if (o->n_test_items > 64) {
        snprintf(reason, reason_len, "%zu test items; the limit is 64", o->n_test_items);
        return -1;
    }
    for (size_t i = 0; i < o->n_test_items; i++) {
        const Lineagent__V1__TestItem *t = o->test_items[i];
        char field[48];
        snprintf(field, sizeof field, "test_items[%zu].name", i);
        if (check_id(field, t->name, 0, reason, reason_len) != 0) return -1;
        if (strlen(t->name) > 31) {
            snprintf(reason, reason_len, "%s is longer than 31 characters", field);
            return -1;
        }
        if (t->unit && strlen(t->unit) > 15) {
            snprintf(reason, reason_len, "test_items[%zu].unit is longer than 15 characters", i);
            return -1;
        }
        int has_low = t->low_limit_case == LINEAGENT__V1__TEST_ITEM__LOW_LIMIT_LOW;
        int has_high = t->high_limit_case == LINEAGENT__V1__TEST_ITEM__HIGH_LIMIT_HIGH;
        if (!has_low || !has_high) {
            snprintf(reason, reason_len, "test_items[%zu] (%s): %s limit missing; an item needs both", i, t->name,
                     !has_low ? "low" : "high");
            return -1;
        }
        if (isnan(t->low) || isnan(t->high) || t->low > t->high) {
            snprintf(reason, reason_len, "test_items[%zu] (%s): low %g must not exceed high %g", i, t->name, t->low,
                     t->high);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->test_items[j]->name, t->name) == 0) {
                snprintf(reason, reason_len, "test_items lists %s twice", t->name);
                return -1;
            }
    }
    if (o->n_test_items && order_flow_index(o, LINEAGENT__V1__STEP__TEST) < 0) {
        snprintf(reason, reason_len, "test_items given but the flow has no TEST step");
        return -1;
    }
    if (o->test_plan && (!o->test_plan->version || !*o->test_plan->version)) {
        snprintf(reason, reason_len, "test_plan.version missing");
        return -1;
    }
    if (o->test_plan && o->test_plan->sha256 && *o->test_plan->sha256) {
        const char *h = o->test_plan->sha256;
        if (strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64) {
            snprintf(reason, reason_len, "test_plan.sha256 must be 64 lowercase hex characters");
            return -1;
        }
    }
    if (isnan(o->calibration_max_residual) || o->calibration_max_residual < 0) {
        snprintf(reason, reason_len, "calibration_max_residual must be 0 (no limit) or positive");
        return -1;
    }
    return 0;
}

const char *order_id_or_empty(const char *v)
{
    char r[160];
    return v && check_id("id", v, 0, r, sizeof r) == 0 ? v : "";
}

int order_validate(const JobOrder *o, const order_limits *lim, char *reason, size_t reason_len)
{
    if (check_id("order_id", o->order_id, 0, reason, reason_len) != 0) return -1;
    if (check_id("lot_id", o->lot_id, 0, reason, reason_len) != 0) return -1;
    if (check_id("product", o->product, 0, reason, reason_len) != 0) return -1;
    if (o->revision < 1) {
        snprintf(reason, reason_len, "revision must be at least 1");
        return -1;
    }
    if (o->quantity < 1) {
        snprintf(reason, reason_len, "quantity must be at least 1");
        return -1;
    }
    if (o->quantity > lim->max_quantity) {
        snprintf(reason, reason_len, "quantity %u exceeds the line limit of %u", o->quantity, lim->max_quantity);
        return -1;
    }
    if (check_firmware(o->firmware, reason, reason_len) != 0) return -1;
    if (check_flow(o, reason, reason_len) != 0) return -1;
    return check_test_items(o, reason, reason_len);
}

/* ---- copies and the step vocabulary ---------------------------------- */

JobOrder *order_dup(const JobOrder *o)
{
    size_t n = lineagent__v1__job_order__get_packed_size(o);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return NULL;
    lineagent__v1__job_order__pack(o, buf);
    JobOrder *copy = lineagent__v1__job_order__unpack(NULL, n, buf);
    free(buf);
    return copy;
}

void order_free(JobOrder *o)
{
    if (o) lineagent__v1__job_order__free_unpacked(o, NULL);
}

const char *order_step_name(Step s)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&lineagent__v1__step__descriptor, (int)s);
    return v ? v->name : "STEP_UNSPECIFIED";
}

int order_step_parse(const char *name, Step *out)
{
    const ProtobufCEnumDescriptor *d = &lineagent__v1__step__descriptor;
    for (unsigned i = 0; i < d->n_values; i++)
        if (strcasecmp(name, d->values[i].name) == 0) {
            *out = (Step)d->values[i].value;
            return 0;
        }
    return -1;
}

int order_flow_index(const JobOrder *o, Step s)
{
    for (size_t i = 0; i < o->n_flow; i++)
        if (o->flow[i] == s) return (int)i;
    return -1;
}
