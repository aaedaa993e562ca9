/* SPDX-License-Identifier: Apache-2.0 */
/* ts_batch.c - records into COPY text (ts_batch.h). Each event becomes a
 * row of the events table (its envelope and its bytes) and a row of the wide
 * table of decoded columns (its envelope, then the body columns its type
 * fills, the rest NULL); its measurements become rows of their own. The SQL
 * in ts_store.c spreads the decoded rows into the query tables. */
#include "ts_batch.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef Lineagent__V1__TraceEvent TraceEvent;

/* Body columns: one table gives each its SQL name and type and its index. */
#define TS_BODY_COLUMNS(X)                                                                                       \
    X(VERSION, "version", "text") X(SHA256, "sha256", "text") X(READBACK, "readback", "text")                    \
    X(REVISION, "revision", "int") X(IMAGE_SIZE, "image_size", "bigint") X(PASSED, "passed", "boolean")        \
    X(PRODUCT, "product", "text") X(QUANTITY, "quantity", "int") X(STEP, "step", "text")                        \
    X(MODE, "mode", "text") X(DETAIL, "detail", "text") X(STATION_SITE, "station_site", "int")                  \
    X(OFFSET, "cal_offset", "float8") X(GAIN, "gain", "float8") X(RESIDUAL, "residual", "float8")              \
    X(POINTS, "points", "int") X(VERIFIED, "verified", "boolean") X(SERIAL, "serial", "text")                   \
    X(MACS, "macs", "text[]") X(DEVICE_ID, "device_id", "text") X(CERT, "cert", "text")                         \
    X(FROM_VERSION, "from_version", "text") X(TO_VERSION, "to_version", "text") X(LAST_OLD, "last_old", "text") \
    X(FIRST_NEW, "first_new", "text") X(FROM_REV, "from_rev", "int") X(TO_REV, "to_rev", "int")                \
    X(REP_PASSED, "rep_passed", "int") X(REP_FAILED, "rep_failed", "int")

#define TS_ENUM(id, name, type) B_##id,
enum { TS_BODY_COLUMNS(TS_ENUM) B_N };
#undef TS_ENUM

#define TS_ENVELOPE_COLUMNS(X)                                                                              \
    X("event_id", "text") X("time", "timestamptz") X("seq", "bigint") X("agent_key", "text")              \
    X("agent_instance_id", "text") X("site", "text") X("line", "text") X("station", "text")              \
    X("order_id", "text") X("lot_id", "text") X("board_id", "text") X("serial", "text") X("type", "text") \
    X("topic", "text") X("kafka_partition", "int")

/* The decoded columns (ts_stg and ts_new; ts_store.c makes the tables from
 * this): the envelope, then the body. */
const char *ts_batch_stg_columns(void)
{
#define TS_ENV_DECL(name, type) name " " type ", "
#define TS_DECL(id, name, type) ", b_" name " " type
    return TS_ENVELOPE_COLUMNS(TS_ENV_DECL) "kafka_offset bigint" TS_BODY_COLUMNS(TS_DECL);
#undef TS_DECL
#undef TS_ENV_DECL
}

/* The events table's columns in COPY order: the envelope and the bytes. */
const char *ts_batch_event_columns(void)
{
#define TS_ENV_NAME(name, type) name ", "
    return TS_ENVELOPE_COLUMNS(TS_ENV_NAME) "kafka_offset, payload";
#undef TS_ENV_NAME
}

typedef enum { V_NULL, V_STR, V_INT, V_DBL, V_BOOL, V_STRS } ts_vkind;
typedef struct ts_val {
    ts_vkind kind;
    const char *s;
    long long i;
    double d;
    char *const *strs;
    size_t n;
} ts_val;

/* ---- COPY text ---------------------------------------------------------- */

static void ts_buf_grow(ts_buf *b, size_t more)
{
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) abort(); /* a batch is bounded by batch_max; no memory left is fatal */
    b->p = p;
    b->cap = cap;
}

static void ts_put(ts_buf *b, const char *s, size_t n)
{
    ts_buf_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void ts_buf_printf(ts_buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    ts_put(b, tmp, (size_t)n);
}

/* A text value with COPY's escapes (backslash, and the row and column
 * delimiters); the caller checked it is UTF-8 without NUL. */
static void ts_put_text(ts_buf *b, const char *s)
{
    size_t n = strlen(s);
    ts_buf_grow(b, 2 * n);
    char *o = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' || c == '\n' || c == '\r' || c == '\t') {
            *o++ = '\\';
            c = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : '\\';
        }
        *o++ = c;
    }
    b->len = (size_t)(o - b->p);
}

static void ts_tab(ts_buf *b) { ts_put(b, "\t", 1); }

/* float8 text PostgreSQL reads back: "nan", "-nan" and "inf" from printf
 * are not all accepted. */
static void ts_put_double(ts_buf *b, double d)
{
    if (isnan(d)) ts_put(b, "NaN", 3);
    else if (isinf(d)) ts_buf_printf(b, "%sInfinity", d < 0 ? "-" : "");
    else ts_buf_printf(b, "%.17g", d);
}

static void ts_put_time(ts_buf *b, int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char t[40];
    size_t n = strftime(t, sizeof t, "%Y-%m-%d %H:%M:%S", &tm);
    ts_put(b, t, n);
    ts_buf_printf(b, ".%03d+00", (int)(ms % 1000));
}

static void ts_put_bytea(ts_buf *b, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    ts_buf_grow(b, 3 + 2 * len);
    char *o = b->p + b->len;
    *o++ = '\\', *o++ = '\\', *o++ = 'x'; /* \x, its backslash escaped for COPY */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = ((const unsigned char *)data)[i];
        *o++ = hex[c >> 4];
        *o++ = hex[c & 15];
    }
    b->len = (size_t)(o - b->p);
}

/* A text[] literal: {"a","b"} with " and \ escaped inside elements, then the
 * whole escaped again for COPY. */
static void ts_put_text_array(ts_buf *b, char *const *v, size_t n)
{
    ts_buf lit = {0};
    ts_put(&lit, "{", 1);
    for (size_t i = 0; i < n; i++) {
        ts_put(&lit, i ? ",\"" : "\"", i ? 2 : 1);
        for (const char *s = v[i]; *s; s++) {
            if (*s == '"' || *s == '\\') ts_put(&lit, "\\", 1);
            ts_put(&lit, s, 1);
        }
        ts_put(&lit, "\"", 1);
    }
    ts_put(&lit, "}", 2); /* with its NUL, for ts_put_text */
    ts_put_text(b, lit.p);
    free(lit.p);
}

static void ts_put_val(ts_buf *b, const ts_val *v)
{
    switch (v->kind) {
    case V_NULL: ts_put(b, "\\N", 2); break;
    case V_STR: ts_put_text(b, v->s); break;
    case V_INT: ts_buf_printf(b, "%lld", v->i); break;
    case V_DBL: ts_put_double(b, v->d); break;
    case V_BOOL: ts_put(b, v->i ? "t" : "f", 1); break;
    case V_STRS: ts_put_text_array(b, v->strs, v->n); break;
    }
}

/* ---- events ------------------------------------------------------------- */

static void S_(ts_val *v, const char *s) { *v = (ts_val){.kind = V_STR, .s = s ? s : ""}; }
static void I_(ts_val *v, long long i) { *v = (ts_val){.kind = V_INT, .i = i}; }
static void D_(ts_val *v, double d) { *v = (ts_val){.kind = V_DBL, .d = d}; }
static void B_(ts_val *v, int x) { *v = (ts_val){.kind = V_BOOL, .i = x != 0}; }

/* "STEP_TEST" -> "test", as the agent's config and logs name steps. */
static void ts_step_name(int step, char *out, size_t len)
{
    const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value(&lineagent__v1__step__descriptor, step);
    const char *n = e ? e->name : "unknown";
    if (strncmp(n, "STEP_", 5) == 0) n += 5;
    size_t i = 0;
    for (; n[i] && i + 1 < len; i++) out[i] = (char)tolower((unsigned char)n[i]);
    out[i] = '\0';
}

static void ts_body_values(const TraceEvent *ev, ts_val *v, char *step, size_t step_len)
{
    switch (ev->body_case) {
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_WRITTEN: {
        const Lineagent__V1__UnitWritten *w = ev->unit_written;
        S_(&v[B_VERSION], w->version), S_(&v[B_SHA256], w->sha256), S_(&v[B_READBACK], w->readback_sha256);
        I_(&v[B_REVISION], w->order_revision), I_(&v[B_IMAGE_SIZE], (long long)w->image_size);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_COMPLETED: {
        const Lineagent__V1__UnitCompleted *c = ev->unit_completed;
        S_(&v[B_VERSION], c->firmware_version), S_(&v[B_SHA256], c->firmware_sha256), B_(&v[B_PASSED], c->passed);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_TESTED: B_(&v[B_PASSED], ev->unit_tested->passed); break;
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_FAILED: {
        const Lineagent__V1__UnitFailed *f = ev->unit_failed;
        ts_step_name(f->step, step, step_len);
        S_(&v[B_STEP], step), S_(&v[B_MODE], f->failure_mode), S_(&v[B_DETAIL], f->detail);
        I_(&v[B_STATION_SITE], f->station_site);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_CALIBRATED: {
        const Lineagent__V1__UnitCalibrated *c = ev->unit_calibrated;
        D_(&v[B_OFFSET], c->offset), D_(&v[B_GAIN], c->gain), D_(&v[B_RESIDUAL], c->residual);
        I_(&v[B_POINTS], c->points);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_LOCKED: B_(&v[B_VERIFIED], ev->unit_locked->verified); break;
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_PROVISIONED: {
        const Lineagent__V1__UnitProvisioned *p = ev->unit_provisioned;
        S_(&v[B_SERIAL], p->serial), S_(&v[B_DEVICE_ID], p->device_id), S_(&v[B_CERT], p->certificate_sha256);
        v[B_MACS] = (ts_val){.kind = V_STRS, .strs = p->macs, .n = p->n_macs};
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_VERSION_CHANGEOVER: {
        const Lineagent__V1__VersionChangeover *c = ev->version_changeover;
        S_(&v[B_FROM_VERSION], c->from_version), S_(&v[B_TO_VERSION], c->to_version);
        S_(&v[B_LAST_OLD], c->last_board_old), S_(&v[B_FIRST_NEW], c->first_board_new);
        I_(&v[B_FROM_REV], c->from_revision), I_(&v[B_TO_REV], c->to_revision);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_LOT_STARTED: {
        const Lineagent__V1__LotStarted *l = ev->lot_started;
        S_(&v[B_PRODUCT], l->product), I_(&v[B_QUANTITY], l->quantity), I_(&v[B_REVISION], l->order_revision);
        if (l->firmware) S_(&v[B_VERSION], l->firmware->version), S_(&v[B_SHA256], l->firmware->sha256);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_ACCEPTED: {
        const Lineagent__V1__OrderAccepted *a = ev->order_accepted;
        S_(&v[B_PRODUCT], a->product), I_(&v[B_QUANTITY], a->quantity), I_(&v[B_REVISION], a->revision);
        if (a->firmware) S_(&v[B_VERSION], a->firmware->version), S_(&v[B_SHA256], a->firmware->sha256);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_REJECTED:
        I_(&v[B_REVISION], ev->order_rejected->revision), S_(&v[B_DETAIL], ev->order_rejected->reason);
        break;
    case LINEAGENT__V1__TRACE_EVENT__BODY_LOT_COMPLETED: {
        const Lineagent__V1__LotCompleted *c = ev->lot_completed;
        I_(&v[B_QUANTITY], c->quantity), I_(&v[B_REP_PASSED], c->passed), I_(&v[B_REP_FAILED], c->failed);
        break;
    }
    default: break;
    }
}

static void ts_add_event(ts_batch *b, const ts_decoded *d, const char *topic, int32_t partition, int64_t offset,
                         const void *value, size_t value_len)
{
    const TraceEvent *ev = d->ev;
    ts_buf *o = &b->events;
    char agent_key[512];
    if (ev->agent_instance_id[0]) snprintf(agent_key, sizeof agent_key, "%s", ev->agent_instance_id);
    else snprintf(agent_key, sizeof agent_key, "%s/%s", ev->site, ev->line);
    size_t start = o->len;
    ts_put_text(o, ev->event_id);
    ts_tab(o), ts_put_time(o, ev->time_ms);
    ts_tab(o), ts_buf_printf(o, "%" PRIu64, ev->seq);
    const char *texts[] = {agent_key,    ev->agent_instance_id, ev->site,   ev->line,   ev->station, ev->order_id,
                           ev->lot_id,   ev->board_id,          ev->serial, d->type,    topic};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) ts_tab(o), ts_put_text(o, texts[i]);
    ts_tab(o), ts_buf_printf(o, "%" PRId32 "\t%" PRId64, partition, offset);
    /* The same envelope starts the events table's row, which ends with the
     * bytes. */
    ts_buf *e = &b->event_rows;
    ts_put(e, o->p + start, o->len - start);
    ts_tab(e), ts_put_bytea(e, value, value_len);
    ts_put(e, "\n", 1);
    ts_val v[B_N] = {0};
    char step[32];
    ts_body_values(ev, v, step, sizeof step);
    for (int i = 0; i < B_N; i++) ts_tab(o), ts_put_val(o, &v[i]);
    ts_put(o, "\n", 1);
    b->n_events++;

    if (ev->body_case != LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_TESTED) return;
    for (size_t i = 0; i < ev->unit_tested->n_measurements; i++) {
        const Lineagent__V1__Measurement *m = ev->unit_tested->measurements[i];
        ts_buf *q = &b->meas;
        ts_put_text(q, topic);
        ts_buf_printf(q, "\t%" PRId32 "\t%" PRId64 "\t%zu\t", partition, offset, i);
        ts_put_text(q, m->name);
        ts_tab(q), ts_put_double(q, m->value);
        ts_tab(q), ts_put_double(q, m->low);
        ts_tab(q), ts_put_double(q, m->high);
        ts_tab(q), ts_put_text(q, m->unit);
        ts_put(q, m->passed ? "\tt\n" : "\tf\n", 3);
        b->n_meas++;
    }
}

static void ts_add_field(ts_batch *b, const Lineagent__V1__FieldFirmwareReport *f, const char *topic,
                         int32_t partition, int64_t offset)
{
    ts_buf *o = &b->field;
    ts_put_text(o, f->serial);
    ts_tab(o), ts_put_time(o, f->time_ms);
    const char *texts[] = {f->version, f->sha256, f->source, topic};
    for (size_t i = 0; i < 4; i++) ts_tab(o), ts_put_text(o, texts[i]);
    ts_buf_printf(o, "\t%" PRId32 "\t%" PRId64 "\n", partition, offset);
    b->n_field++;
}

static void *ts_dup(const void *p, size_t n)
{
    if (!p) return NULL;
    void *c = malloc(n ? n : 1);
    if (c) memcpy(c, p, n);
    return c;
}

void ts_batch_add_position(ts_batch *b, const char *topic, int32_t partition, int64_t offset)
{
    for (size_t i = 0; i < b->n_pos; i++)
        if (b->pos[i].partition == partition && strcmp(b->pos[i].topic, topic) == 0) {
            if (offset + 1 > b->pos[i].next_offset) b->pos[i].next_offset = offset + 1;
            return;
        }
    b->pos = realloc(b->pos, (b->n_pos + 1) * sizeof *b->pos);
    b->pos[b->n_pos++] = (ts_pos){strdup(topic), partition, offset + 1};
}

static size_t ts_arena(ts_buf *a, const void *p, size_t n)
{
    size_t at = a->len;
    if (n) ts_put(a, p, n);
    return at;
}

static void ts_note_month(ts_batch *b, int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    int32_t m = (tm.tm_year + 1900) * 12 + tm.tm_mon;
    for (size_t i = 0; i < b->n_months; i++)
        if (b->months[i] == m) return;
    b->months = realloc(b->months, (b->n_months + 1) * sizeof *b->months);
    b->months[b->n_months++] = m;
}

void ts_batch_reject(ts_batch *b, const char *topic, int32_t partition, int64_t offset, const void *key,
                     size_t key_len, const void *value, size_t value_len, const char *reason)
{
    b->rejected = realloc(b->rejected, (b->n_rejected + 1) * sizeof *b->rejected);
    b->rejected[b->n_rejected++] = (ts_rejected){strdup(topic), strdup(reason), partition, offset,
                                                 ts_dup(key, key_len), ts_dup(value, value_len), key_len,
                                                 value_len};
}

void ts_batch_raw(const ts_batch *b, size_t i, const char **topic, const void **key, const void **value)
{
    const ts_raw *r = &b->raw[i];
    *topic = b->raw_bytes.p + r->topic;
    *key = r->has_key ? b->raw_bytes.p + r->key : NULL;
    *value = b->raw_bytes.p + r->value;
}

void ts_batch_add(ts_batch *b, const char *topic, int32_t partition, int64_t offset, const void *key,
                  size_t key_len, const void *value, size_t value_len, ts_rec_kind kind)
{
    if (b->n_raw == b->cap_raw) {
        b->cap_raw = b->cap_raw ? 2 * b->cap_raw : 1024;
        b->raw = realloc(b->raw, b->cap_raw * sizeof *b->raw);
    }
    ts_raw *r = &b->raw[b->n_raw++];
    *r = (ts_raw){.key_len = key_len, .value_len = value_len, .has_key = key != NULL, .partition = partition,
                  .offset = offset, .kind = kind};
    r->topic = ts_arena(&b->raw_bytes, topic, strlen(topic) + 1);
    r->key = ts_arena(&b->raw_bytes, key, key ? key_len : 0);
    r->value = ts_arena(&b->raw_bytes, value, value ? value_len : 0);
    ts_decoded d;
    char reason[200];
    b->n_records++;
    ts_batch_add_position(b, topic, partition, offset);
    if (ts_decode_record(value, value_len, kind, &d, reason, sizeof reason) != 0) {
        ts_batch_reject(b, topic, partition, offset, key, key_len, value, value_len, reason);
        return;
    }
    if (kind == TS_REC_TRACE) {
        ts_add_event(b, &d, topic, partition, offset, value, value_len);
        ts_note_month(b, d.ev->time_ms);
    } else
        ts_add_field(b, d.ff, topic, partition, offset);
    ts_decoded_free(&d);
}

void ts_batch_reset(ts_batch *b)
{
    for (size_t i = 0; i < b->n_rejected; i++) {
        free(b->rejected[i].topic);
        free(b->rejected[i].reason);
        free(b->rejected[i].key);
        free(b->rejected[i].value);
    }
    for (size_t i = 0; i < b->n_pos; i++) free(b->pos[i].topic);
    b->n_rejected = b->n_pos = b->n_raw = b->n_months = 0;
    b->raw_bytes.len = 0;
    b->events.len = b->event_rows.len = b->meas.len = b->field.len = 0;
    b->n_records = b->n_events = b->n_meas = b->n_field = 0;
}

void ts_batch_free(ts_batch *b)
{
    ts_batch_reset(b);
    free(b->events.p);
    free(b->event_rows.p);
    free(b->meas.p);
    free(b->field.p);
    free(b->rejected);
    free(b->pos);
    free(b->raw);
    free(b->raw_bytes.p);
    free(b->months);
    memset(b, 0, sizeof *b);
}
