/* SPDX-License-Identifier: Apache-2.0 */
/* ts_fold.c - a batch's facts folded into one row per unit, lot and run of
 * seq (ts_fold.h). Facts are sorted by their key, then each group gives one
 * row: for a unit its serial once provisioned, its latest write and latest
 * outcome, first and last seen; for a lot its latest order facts, its start
 * and completion; for an agent the runs of consecutive seq. "Latest" is by
 * event time: events of one board travel on one partition in order, but a
 * replay or a re-sent batch may bring an older one later, and the upserts in
 * ts_store.c apply the same rule against what is stored. */
#include "ts_fold.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef Lineagent__V1__TraceEvent TraceEvent;

#define TS_NONE SIZE_MAX /* a string fact not given */

enum { TS_F_OTHER, TS_F_WRITTEN, TS_F_COMPLETED, TS_F_ORDER, TS_F_LOT_DONE };

struct ts_unit_fact {
    size_t lot, board, order, site, line, serial; /* offsets into strs */
    size_t station, version, sha256, readback;    /* a write's, or an outcome's version and sha256 */
    int64_t time;
    int kind, passed;
    int32_t revision;
};

struct ts_lot_fact {
    size_t lot, order, site, line, product;
    int64_t time;
    int kind, started;
    int32_t quantity, passed, failed;
};

struct ts_seq_fact {
    size_t agent;
    uint64_t seq;
};

static size_t ts_str(ts_facts *f, const char *s)
{
    size_t at = f->strs.len;
    ts_buf_put(&f->strs, s ? s : "", strlen(s ? s : "") + 1);
    return at;
}

/* Room for one more element of an array of size bytes each. */
static void *ts_grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return p;
    *cap = *cap ? 2 * *cap : 1024;
    p = realloc(p, *cap * size);
    if (!p) abort(); /* bounded by batch_max */
    return p;
}

static void ts_unit_facts(ts_facts *f, const TraceEvent *ev)
{
    f->units = ts_grow(f->units, &f->cap_units, f->n_units, sizeof *f->units);
    ts_unit_fact *u = &f->units[f->n_units++];
    const char *serial = ev->body_case == LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_PROVISIONED
                             ? ev->unit_provisioned->serial
                             : ev->serial;
    *u = (ts_unit_fact){.lot = ts_str(f, ev->lot_id), .board = ts_str(f, ev->board_id),
                        .order = ts_str(f, ev->order_id), .site = ts_str(f, ev->site), .line = ts_str(f, ev->line),
                        .serial = serial && *serial ? ts_str(f, serial) : TS_NONE, .time = ev->time_ms,
                        .kind = TS_F_OTHER};
    if (ev->body_case == LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_WRITTEN) {
        const Lineagent__V1__UnitWritten *w = ev->unit_written;
        u->kind = TS_F_WRITTEN, u->revision = w->order_revision, u->station = ts_str(f, ev->station);
        u->version = ts_str(f, w->version), u->sha256 = ts_str(f, w->sha256);
        u->readback = ts_str(f, w->readback_sha256);
    } else if (ev->body_case == LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_COMPLETED) {
        const Lineagent__V1__UnitCompleted *c = ev->unit_completed;
        u->kind = TS_F_COMPLETED, u->passed = c->passed != 0;
        u->version = ts_str(f, c->firmware_version), u->sha256 = ts_str(f, c->firmware_sha256);
    }
}

static void ts_lot_facts(ts_facts *f, const TraceEvent *ev)
{
    f->lots = ts_grow(f->lots, &f->cap_lots, f->n_lots, sizeof *f->lots);
    ts_lot_fact *l = &f->lots[f->n_lots++];
    *l = (ts_lot_fact){.lot = ts_str(f, ev->lot_id), .order = ts_str(f, ev->order_id), .site = ts_str(f, ev->site),
                       .line = ts_str(f, ev->line), .product = TS_NONE, .time = ev->time_ms, .kind = TS_F_OTHER};
    switch (ev->body_case) {
    case LINEAGENT__V1__TRACE_EVENT__BODY_LOT_STARTED:
        l->kind = TS_F_ORDER, l->started = 1;
        l->product = ts_str(f, ev->lot_started->product), l->quantity = ev->lot_started->quantity;
        break;
    case LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_ACCEPTED:
        l->kind = TS_F_ORDER;
        l->product = ts_str(f, ev->order_accepted->product), l->quantity = ev->order_accepted->quantity;
        break;
    case LINEAGENT__V1__TRACE_EVENT__BODY_LOT_COMPLETED:
        l->kind = TS_F_LOT_DONE;
        l->passed = ev->lot_completed->passed, l->failed = ev->lot_completed->failed;
        break;
    default: break;
    }
}

void ts_facts_add(ts_facts *f, const TraceEvent *ev, const char *agent_key)
{
    f->seqs = ts_grow(f->seqs, &f->cap_seqs, f->n_seqs, sizeof *f->seqs);
    f->seqs[f->n_seqs++] = (ts_seq_fact){ts_str(f, agent_key), ev->seq};
    if (ev->board_id[0]) ts_unit_facts(f, ev);
    if (ev->lot_id[0]) ts_lot_facts(f, ev);
}

/* ---- folding ------------------------------------------------------------ */

static int ts_cmp_unit(const void *a, const void *b, void *strs)
{
    const ts_unit_fact *x = a, *y = b;
    const char *s = strs;
    int c = strcmp(s + x->lot, s + y->lot);
    return c ? c : strcmp(s + x->board, s + y->board);
}

static int ts_cmp_lot(const void *a, const void *b, void *strs)
{
    const ts_lot_fact *x = a, *y = b;
    return strcmp((const char *)strs + x->lot, (const char *)strs + y->lot);
}

static int ts_cmp_seq(const void *a, const void *b, void *strs)
{
    const ts_seq_fact *x = a, *y = b;
    int c = strcmp((const char *)strs + x->agent, (const char *)strs + y->agent);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Whether fact time t is the latest so far (best is -1 before the first). */
#define TS_LATER(t, best, arr) ((best) < 0 || (t) >= (arr)[best].time)

static void ts_fold_units(ts_facts *f, ts_buf *o)
{
    const char *s = f->strs.p;
    if (f->n_units > 1) qsort_r(f->units, f->n_units, sizeof *f->units, ts_cmp_unit, (void *)s);
    for (size_t i = 0, j; i < f->n_units; i = j) {
        const ts_unit_fact *u = f->units;
        long latest = -1, w = -1, c = -1, serial = -1;
        int64_t first = INT64_MAX, last = INT64_MIN;
        for (j = i; j < f->n_units && ts_cmp_unit(&u[i], &u[j], (void *)s) == 0; j++) {
            if (u[j].time < first) first = u[j].time;
            if (u[j].time > last) last = u[j].time;
            if (TS_LATER(u[j].time, latest, u)) latest = (long)j;
            if (u[j].serial != TS_NONE && TS_LATER(u[j].time, serial, u)) serial = (long)j;
            if (u[j].kind == TS_F_WRITTEN && TS_LATER(u[j].time, w, u)) w = (long)j;
            if (u[j].kind == TS_F_COMPLETED && TS_LATER(u[j].time, c, u)) c = (long)j;
        }
        const ts_unit_fact *l = &u[latest];
        ts_copy_text(o, s + l->lot), ts_copy_text(o, s + l->board), ts_copy_text(o, s + l->order);
        ts_copy_text(o, s + l->site), ts_copy_text(o, s + l->line);
        ts_copy_text(o, serial >= 0 ? s + u[serial].serial : "");
        if (w >= 0) {
            ts_copy_int(o, u[w].revision), ts_copy_text(o, s + u[w].version), ts_copy_text(o, s + u[w].sha256);
            ts_copy_text(o, s + u[w].readback), ts_copy_time(o, u[w].time), ts_copy_text(o, s + u[w].station);
        } else {
            for (int k = 0; k < 6; k++) ts_copy_null(o);
        }
        if (c >= 0) {
            ts_copy_bool(o, u[c].passed), ts_copy_time(o, u[c].time), ts_copy_text(o, s + u[c].version);
            ts_copy_text(o, s + u[c].sha256);
        } else {
            for (int k = 0; k < 4; k++) ts_copy_null(o);
        }
        ts_copy_time(o, first), ts_copy_time(o, last);
        ts_copy_end(o);
    }
}

static void ts_fold_lots(ts_facts *f, ts_buf *o)
{
    const char *s = f->strs.p;
    if (f->n_lots > 1) qsort_r(f->lots, f->n_lots, sizeof *f->lots, ts_cmp_lot, (void *)s);
    for (size_t i = 0, j; i < f->n_lots; i = j) {
        const ts_lot_fact *l = f->lots;
        long latest = -1, order = -1, done = -1;
        int64_t started = INT64_MAX;
        for (j = i; j < f->n_lots && strcmp(s + l[i].lot, s + l[j].lot) == 0; j++) {
            if (TS_LATER(l[j].time, latest, l)) latest = (long)j;
            if (l[j].kind == TS_F_ORDER && TS_LATER(l[j].time, order, l)) order = (long)j;
            if (l[j].kind == TS_F_LOT_DONE && TS_LATER(l[j].time, done, l)) done = (long)j;
            if (l[j].started && l[j].time < started) started = l[j].time;
        }
        const ts_lot_fact *x = &l[latest];
        ts_copy_text(o, s + x->lot), ts_copy_text(o, s + x->order), ts_copy_text(o, s + x->site);
        ts_copy_text(o, s + x->line);
        if (order >= 0) ts_copy_text(o, s + l[order].product), ts_copy_int(o, l[order].quantity);
        else ts_copy_null(o), ts_copy_null(o);
        if (started != INT64_MAX) ts_copy_time(o, started);
        else ts_copy_null(o);
        if (done >= 0) ts_copy_time(o, l[done].time), ts_copy_int(o, l[done].passed), ts_copy_int(o, l[done].failed);
        else ts_copy_null(o), ts_copy_null(o), ts_copy_null(o);
        ts_copy_end(o);
    }
}

/* Runs of consecutive seq per agent (a seq twice, re-sent, is one). */
static void ts_fold_seq(ts_facts *f, ts_buf *o)
{
    const char *s = f->strs.p;
    if (f->n_seqs > 1) qsort_r(f->seqs, f->n_seqs, sizeof *f->seqs, ts_cmp_seq, (void *)s);
    for (size_t i = 0, j; i < f->n_seqs; i = j) {
        const ts_seq_fact *q = f->seqs;
        uint64_t hi = q[i].seq;
        for (j = i + 1; j < f->n_seqs && strcmp(s + q[i].agent, s + q[j].agent) == 0 && q[j].seq <= hi + 1; j++)
            hi = q[j].seq;
        ts_copy_text(o, s + q[i].agent), ts_copy_int(o, (int64_t)q[i].seq), ts_copy_int(o, (int64_t)hi);
        ts_copy_end(o);
    }
}

void ts_fold_rows(ts_facts *f, ts_buf *units, ts_buf *lots, ts_buf *seq)
{
    ts_fold_units(f, units);
    ts_fold_lots(f, lots);
    ts_fold_seq(f, seq);
}

void ts_facts_reset(ts_facts *f) { f->strs.len = f->n_units = f->n_lots = f->n_seqs = 0; }

void ts_facts_free(ts_facts *f)
{
    ts_buf_free(&f->strs);
    free(f->units);
    free(f->lots);
    free(f->seqs);
    memset(f, 0, sizeof *f);
}
