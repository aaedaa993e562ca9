/* SPDX-License-Identifier: Apache-2.0 */
/* ts_batch.c - records into COPY rows (ts_batch.h). Each event becomes a
 * row of the events table (its envelope and its bytes), a row of the query
 * table its type feeds (a test's measurements as arrays in one), and facts for
 * the units, lots and seq runs, folded when the batch is complete
 * (ts_fold.c). Only new events are added: ts_store.c stores a batch with
 * duplicates by first finding its new events, then rebuilding the batch
 * from them. */
#include "ts_batch.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef Lineagent__V1__TraceEvent TraceEvent;

/* Every per-event table's rows start with the event's id, time and lot. */
#define TS_EVENT_COLS "event_id, time, lot_id, "
#define TS_UNIT_COLS TS_EVENT_COLS "board_id, "

static const char *const ts_copy_targets[TS_T_N] = {
    [TS_T_WRITES] = "unit_writes (" TS_UNIT_COLS "serial, order_revision, version, sha256, readback_sha256,"
                    " image_size, station)",
    [TS_T_OUTCOMES] = "unit_outcomes (" TS_UNIT_COLS "serial, passed, fw_version, fw_sha256, station)",
    [TS_T_TESTS] = "unit_tests (" TS_UNIT_COLS "serial, station, names, measured, lows, highs, units, passed)",
    [TS_T_CALIBRATIONS] = "calibrations (" TS_UNIT_COLS "station, \"offset\", gain, residual, points)",
    [TS_T_LOCKS] = "locks (" TS_UNIT_COLS "station, verified)",
    [TS_T_IDENTITIES] = "identities (" TS_UNIT_COLS "serial, macs, device_id, certificate_sha256, station, site, line)",
    [TS_T_FAILURES] = "failures (" TS_UNIT_COLS "serial, step, failure_mode, detail, station, station_site, site,"
                      " line)",
    [TS_T_CHANGEOVERS] = "changeovers (" TS_EVENT_COLS "order_id, from_version, to_version, last_old_board,"
                         " first_new_board, from_revision, to_revision, station)",
    [TS_T_REVISIONS] = "ts_revs (lot_id, revision, fw_version, fw_sha256, accepted_at)",
    [TS_T_UNITS] = "ts_units (" TS_FOLD_UNIT_COLUMNS ")",
    [TS_T_LOTS] = "ts_lots (" TS_FOLD_LOT_COLUMNS ")",
    [TS_T_SEQ] = "ts_seq (" TS_FOLD_SEQ_COLUMNS ")",
};

const char *ts_batch_copy_target(ts_table t) { return ts_copy_targets[t]; }

/* The events table's columns in COPY order: the envelope and the bytes. */
const char *ts_batch_event_columns(void)
{
    return "event_id, time, seq, agent_key, agent_instance_id, site, line, station, order_id, lot_id, board_id,"
           " serial, type, topic, kafka_partition, kafka_offset, payload";
}

/* ---- events ------------------------------------------------------------- */

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

/* Starts a row of table t with the event's id, time, lot (and board). */
static ts_buf *ts_row(ts_batch *b, ts_table t, const TraceEvent *ev)
{
    ts_buf *o = &b->rows[t];
    ts_copy_text(o, ev->event_id), ts_copy_time(o, ev->time_ms), ts_copy_text(o, ev->lot_id);
    if (t != TS_T_CHANGEOVERS) ts_copy_text(o, ev->board_id);
    return o;
}

/* A lot's order revision with its firmware, from lot_started or
 * order_accepted. */
static void ts_add_revision(ts_batch *b, const TraceEvent *ev, int32_t revision,
                            const Lineagent__V1__FirmwareRelease *fw)
{
    if (!fw || !ev->lot_id[0]) return;
    ts_buf *o = &b->rows[TS_T_REVISIONS];
    ts_copy_text(o, ev->lot_id), ts_copy_int(o, revision), ts_copy_text(o, fw->version);
    ts_copy_text(o, fw->sha256), ts_copy_time(o, ev->time_ms);
    ts_copy_end(o);
}

/* The row of the query table the event's type feeds, if any. */
static void ts_add_rows(ts_batch *b, const TraceEvent *ev)
{
    ts_buf *o;
    switch (ev->body_case) {
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_WRITTEN: {
        const Lineagent__V1__UnitWritten *w = ev->unit_written;
        o = ts_row(b, TS_T_WRITES, ev);
        ts_copy_text(o, ev->serial), ts_copy_int(o, w->order_revision), ts_copy_text(o, w->version);
        ts_copy_text(o, w->sha256), ts_copy_text(o, w->readback_sha256), ts_copy_int(o, (int64_t)w->image_size);
        ts_copy_text(o, ev->station);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_COMPLETED: {
        const Lineagent__V1__UnitCompleted *c = ev->unit_completed;
        o = ts_row(b, TS_T_OUTCOMES, ev);
        ts_copy_text(o, ev->serial), ts_copy_bool(o, c->passed), ts_copy_text(o, c->firmware_version);
        ts_copy_text(o, c->firmware_sha256), ts_copy_text(o, ev->station);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_TESTED: {
        /* One row per test, each field of its measurements an array: a row
         * and an index entry per test rather than per measurement. */
        Lineagent__V1__Measurement *const *m = ev->unit_tested->measurements;
        size_t n = ev->unit_tested->n_measurements, i;
        o = ts_row(b, TS_T_TESTS, ev);
        ts_copy_text(o, ev->serial), ts_copy_text(o, ev->station);
        ts_copy_array_open(o);
        for (i = 0; i < n; i++) ts_copy_array_text(o, i, m[i]->name);
        ts_copy_array_close(o), ts_copy_array_open(o);
        for (i = 0; i < n; i++) ts_copy_array_double(o, i, m[i]->value);
        ts_copy_array_close(o), ts_copy_array_open(o);
        for (i = 0; i < n; i++) ts_copy_array_double(o, i, m[i]->low);
        ts_copy_array_close(o), ts_copy_array_open(o);
        for (i = 0; i < n; i++) ts_copy_array_double(o, i, m[i]->high);
        ts_copy_array_close(o), ts_copy_array_open(o);
        for (i = 0; i < n; i++) ts_copy_array_text(o, i, m[i]->unit);
        ts_copy_array_close(o), ts_copy_array_open(o);
        for (i = 0; i < n; i++) ts_copy_array_bool(o, i, m[i]->passed);
        ts_copy_array_close(o);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_FAILED: {
        const Lineagent__V1__UnitFailed *f = ev->unit_failed;
        char step[32];
        ts_step_name(f->step, step, sizeof step);
        o = ts_row(b, TS_T_FAILURES, ev);
        ts_copy_text(o, ev->serial), ts_copy_text(o, step), ts_copy_text(o, f->failure_mode);
        ts_copy_text(o, f->detail), ts_copy_text(o, ev->station), ts_copy_int(o, f->station_site);
        ts_copy_text(o, ev->site), ts_copy_text(o, ev->line);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_CALIBRATED: {
        const Lineagent__V1__UnitCalibrated *c = ev->unit_calibrated;
        o = ts_row(b, TS_T_CALIBRATIONS, ev);
        ts_copy_text(o, ev->station), ts_copy_double(o, c->offset), ts_copy_double(o, c->gain);
        ts_copy_double(o, c->residual), ts_copy_int(o, c->points);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_LOCKED:
        o = ts_row(b, TS_T_LOCKS, ev);
        ts_copy_text(o, ev->station), ts_copy_bool(o, ev->unit_locked->verified);
        break;
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_PROVISIONED: {
        const Lineagent__V1__UnitProvisioned *p = ev->unit_provisioned;
        o = ts_row(b, TS_T_IDENTITIES, ev);
        ts_copy_text(o, p->serial), ts_copy_text_array(o, p->macs, p->n_macs), ts_copy_text(o, p->device_id);
        ts_copy_text(o, p->certificate_sha256), ts_copy_text(o, ev->station), ts_copy_text(o, ev->site);
        ts_copy_text(o, ev->line);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_VERSION_CHANGEOVER: {
        const Lineagent__V1__VersionChangeover *c = ev->version_changeover;
        o = ts_row(b, TS_T_CHANGEOVERS, ev);
        ts_copy_text(o, ev->order_id), ts_copy_text(o, c->from_version), ts_copy_text(o, c->to_version);
        ts_copy_text(o, c->last_board_old), ts_copy_text(o, c->first_board_new), ts_copy_int(o, c->from_revision);
        ts_copy_int(o, c->to_revision), ts_copy_text(o, ev->station);
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_LOT_STARTED:
        ts_add_revision(b, ev, ev->lot_started->order_revision, ev->lot_started->firmware);
        return;
    case LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_ACCEPTED:
        ts_add_revision(b, ev, ev->order_accepted->revision, ev->order_accepted->firmware);
        return;
    default: return;
    }
    ts_copy_end(o);
}

static void ts_add_event(ts_batch *b, const ts_decoded *d, const char *topic, int32_t partition, int64_t offset,
                         const void *value, size_t value_len)
{
    const TraceEvent *ev = d->ev;
    char agent_key[512];
    if (ev->agent_instance_id[0]) snprintf(agent_key, sizeof agent_key, "%s", ev->agent_instance_id);
    else snprintf(agent_key, sizeof agent_key, "%s/%s", ev->site, ev->line);
    ts_buf *e = &b->event_rows;
    ts_copy_text(e, ev->event_id), ts_copy_time(e, ev->time_ms);
    ts_buf_printf(e, "%" PRIu64 "\t", ev->seq);
    const char *texts[] = {agent_key,  ev->agent_instance_id, ev->site,   ev->line, ev->station, ev->order_id,
                           ev->lot_id, ev->board_id,          ev->serial, d->type,  topic};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) ts_copy_text(e, texts[i]);
    ts_copy_int(e, partition), ts_copy_int(e, offset), ts_copy_bytea(e, value, value_len);
    ts_copy_end(e);
    b->n_events++;
    ts_add_rows(b, ev);
    ts_facts_add(&b->facts, ev, agent_key);
}

static void ts_add_field(ts_batch *b, const Lineagent__V1__FieldFirmwareReport *f, const char *topic,
                         int32_t partition, int64_t offset)
{
    ts_buf *o = &b->field;
    ts_copy_text(o, f->serial), ts_copy_time(o, f->time_ms);
    const char *texts[] = {f->version, f->sha256, f->source, topic};
    for (size_t i = 0; i < 4; i++) ts_copy_text(o, texts[i]);
    ts_copy_int(o, partition), ts_copy_int(o, offset);
    ts_copy_end(o);
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
    if (n) ts_buf_put(a, p, n);
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
    b->folded = 0;
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

void ts_batch_fold(ts_batch *b)
{
    if (b->folded) return;
    b->rows[TS_T_UNITS].len = b->rows[TS_T_LOTS].len = b->rows[TS_T_SEQ].len = 0;
    ts_fold_rows(&b->facts, &b->rows[TS_T_UNITS], &b->rows[TS_T_LOTS], &b->rows[TS_T_SEQ]);
    b->folded = 1;
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
    b->event_rows.len = b->field.len = 0;
    for (int t = 0; t < TS_T_N; t++) b->rows[t].len = 0;
    ts_facts_reset(&b->facts);
    b->folded = 0;
    b->n_records = b->n_events = b->n_field = 0;
}

void ts_batch_free(ts_batch *b)
{
    ts_batch_reset(b);
    ts_buf_free(&b->event_rows);
    for (int t = 0; t < TS_T_N; t++) ts_buf_free(&b->rows[t]);
    ts_buf_free(&b->field);
    ts_facts_free(&b->facts);
    free(b->rejected);
    free(b->pos);
    free(b->raw);
    free(b->raw_bytes.p);
    free(b->months);
    memset(b, 0, sizeof *b);
}
