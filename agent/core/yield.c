/* SPDX-License-Identifier: Apache-2.0 */
/* yield.c - lot statistics folded from trace events, and their JSON.
 * Every list is bounded (lots, failure kinds, versions, measurements), so a
 * misbehaving adapter inventing failure modes cannot grow the document. */
#include "yield.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "order.h"

#define YIELD_MAX_LOTS (YIELD_KEEP_COMPLETED + 2)
#define YIELD_MAX_FAILURES 16
#define YIELD_MAX_VERSIONS 8
#define YIELD_MAX_MEASUREMENTS 32
#define YIELD_ID 65

typedef struct yield_failure {
    Step step;
    char mode[48];
    uint32_t count;
} yield_failure;

typedef struct yield_version {
    char version[YIELD_ID];
    uint32_t passed, failed;
} yield_version;

/* Welford's running mean and variance, plus the order's limits. */
typedef struct yield_meas {
    char name[YIELD_ID];
    char unit[16];
    double low, high;
    uint64_t n;
    double mean, m2, min, max;
} yield_meas;

typedef struct yield_lot {
    char lot_id[YIELD_ID], order_id[YIELD_ID], product[YIELD_ID], version[YIELD_ID];
    uint32_t revision, quantity, passed, failed;
    uint64_t first_seq;
    int64_t started_ms, completed_ms, last_unit_ms;
    int completed;
    yield_failure failures[YIELD_MAX_FAILURES];
    int n_failures;
    uint32_t other_failures;
    yield_version versions[YIELD_MAX_VERSIONS];
    int n_versions;
    uint32_t other_versions;
    yield_meas meas[YIELD_MAX_MEASUREMENTS];
    int n_meas;
} yield_lot;

struct yield {
    yield_lot *lots[YIELD_MAX_LOTS]; /* oldest first */
    int n_lots;
};

yield *yield_new(void) { return calloc(1, sizeof(yield)); }

void yield_free(yield *y)
{
    if (!y) return;
    for (int i = 0; i < y->n_lots; i++) free(y->lots[i]);
    free(y);
}

static yield_lot *yield_find(const yield *y, const char *lot_id)
{
    for (int i = y->n_lots - 1; lot_id && i >= 0; i--)
        if (strcmp(y->lots[i]->lot_id, lot_id) == 0) return y->lots[i];
    return NULL;
}

static void yield_drop(yield *y, int i)
{
    free(y->lots[i]);
    memmove(&y->lots[i], &y->lots[i + 1], (size_t)(y->n_lots - i - 1) * sizeof y->lots[0]);
    y->n_lots--;
}

/* Keeps the last YIELD_KEEP_COMPLETED completed lots and, with room set,
 * room for one more lot. */
static void yield_trim(yield *y, int room)
{
    int completed = 0;
    for (int i = y->n_lots - 1; i >= 0; i--)
        if (y->lots[i]->completed && ++completed > YIELD_KEEP_COMPLETED) yield_drop(y, i);
    if (room && y->n_lots == YIELD_MAX_LOTS) yield_drop(y, 0);
}

static void set_release(yield_lot *l, uint32_t revision, const Lineagent__V1__FirmwareRelease *fw)
{
    l->revision = revision;
    if (fw && fw->version) snprintf(l->version, sizeof l->version, "%s", fw->version);
}

static void on_lot_started(yield *y, const TraceEvent *ev)
{
    const Lineagent__V1__LotStarted *b = ev->lot_started;
    if (yield_find(y, ev->lot_id)) return; /* resumed lots emit nothing; a repeat changes nothing */
    yield_trim(y, 1);
    yield_lot *l = calloc(1, sizeof *l);
    snprintf(l->lot_id, sizeof l->lot_id, "%s", ev->lot_id);
    snprintf(l->order_id, sizeof l->order_id, "%s", ev->order_id);
    snprintf(l->product, sizeof l->product, "%s", b->product);
    l->quantity = b->quantity;
    l->first_seq = ev->seq;
    l->started_ms = ev->time_ms;
    set_release(l, b->order_revision, b->firmware);
    y->lots[y->n_lots++] = l;
}

static void count_failure(yield_lot *l, Step step, const char *mode)
{
    for (int i = 0; i < l->n_failures; i++)
        if (l->failures[i].step == step && strcmp(l->failures[i].mode, mode) == 0) {
            l->failures[i].count++;
            return;
        }
    if (l->n_failures == YIELD_MAX_FAILURES) {
        l->other_failures++;
        return;
    }
    yield_failure *f = &l->failures[l->n_failures++];
    f->step = step;
    snprintf(f->mode, sizeof f->mode, "%s", mode);
    f->count = 1;
}

static void count_unit(yield_lot *l, const TraceEvent *ev)
{
    const Lineagent__V1__UnitCompleted *b = ev->unit_completed;
    if (b->passed) l->passed++;
    else l->failed++;
    l->last_unit_ms = ev->time_ms;
    const char *v = b->firmware_version ? b->firmware_version : ""; /* "": failed before verify */
    yield_version *pv = NULL;
    for (int i = 0; i < l->n_versions && !pv; i++)
        if (strcmp(l->versions[i].version, v) == 0) pv = &l->versions[i];
    if (!pv && l->n_versions < YIELD_MAX_VERSIONS) {
        pv = &l->versions[l->n_versions++];
        snprintf(pv->version, sizeof pv->version, "%s", v);
    }
    if (!pv) l->other_versions++;
    else if (b->passed) pv->passed++;
    else pv->failed++;
}

static void count_measurements(yield_lot *l, const Lineagent__V1__UnitTested *b)
{
    for (size_t k = 0; k < b->n_measurements; k++) {
        const Lineagent__V1__Measurement *m = b->measurements[k];
        if (!isfinite(m->value)) continue; /* a missing measurement is a failure, not a value */
        yield_meas *s = NULL;
        for (int i = 0; i < l->n_meas && !s; i++)
            if (strcmp(l->meas[i].name, m->name) == 0) s = &l->meas[i];
        if (!s && l->n_meas == YIELD_MAX_MEASUREMENTS) continue;
        if (!s) {
            s = &l->meas[l->n_meas++];
            snprintf(s->name, sizeof s->name, "%s", m->name);
            s->min = s->max = m->value;
        }
        snprintf(s->unit, sizeof s->unit, "%s", m->unit ? m->unit : "");
        s->low = m->low;
        s->high = m->high;
        s->n++;
        double d = m->value - s->mean;
        s->mean += d / (double)s->n;
        s->m2 += d * (m->value - s->mean);
        if (m->value < s->min) s->min = m->value;
        if (m->value > s->max) s->max = m->value;
    }
}

int yield_apply(yield *y, const TraceEvent *ev)
{
    if (ev->body_case == LINEAGENT__V1__TRACE_EVENT__BODY_LOT_STARTED) {
        on_lot_started(y, ev);
        return 1;
    }
    yield_lot *l = yield_find(y, ev->lot_id);
    if (!l) return 0;
    switch (ev->body_case) {
    case LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_ACCEPTED: /* a revision of the running lot */
        set_release(l, ev->order_accepted->revision, ev->order_accepted->firmware);
        l->quantity = ev->order_accepted->quantity;
        return 1;
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_FAILED:
        count_failure(l, ev->unit_failed->step, ev->unit_failed->failure_mode ? ev->unit_failed->failure_mode : "");
        return 1;
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_COMPLETED:
        count_unit(l, ev);
        return 1;
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_TESTED:
        count_measurements(l, ev->unit_tested);
        return 1;
    case LINEAGENT__V1__TRACE_EVENT__BODY_LOT_COMPLETED:
        l->completed = 1;
        l->completed_ms = ev->time_ms;
        yield_trim(y, 0);
        return 1;
    default:
        return 0;
    }
}

static json_t *ratio(uint32_t num, uint32_t den) { return den ? json_real((double)num / den) : json_null(); }

static json_t *time_or_null(int64_t ms)
{
    char buf[32];
    if (!ms) return json_null();
    clock_format_utc(ms, buf, sizeof buf);
    return json_string(buf);
}

static json_t *meas_json(const yield_meas *s)
{
    double sd = s->n > 1 ? sqrt(s->m2 / (double)(s->n - 1)) : 0;
    /* Cpk: distance from the mean to the nearer limit in units of 3 sigma. */
    json_t *cpk = sd > 0 ? json_real(fmin(s->high - s->mean, s->mean - s->low) / (3 * sd)) : json_null();
    return json_pack("{s:s, s:s, s:f, s:f, s:I, s:f, s:f, s:f, s:f, s:o}", "name", s->name, "unit", s->unit, "low",
                     s->low, "high", s->high, "count", (json_int_t)s->n, "mean", s->mean, "stddev", sd, "min", s->min,
                     "max", s->max, "cpk", cpk);
}

static json_t *lot_json(const yield_lot *l, int64_t now_ms, uint32_t in_progress)
{
    uint32_t done = l->passed + l->failed;
    int64_t until = l->completed ? l->completed_ms : now_ms;
    double hours = (double)(until - l->started_ms) / 3600000.0;
    json_t *failures = json_array(), *versions = json_array(), *meas = json_array();
    for (int i = 0; i < l->n_failures; i++)
        json_array_append_new(failures, json_pack("{s:s, s:s, s:i}", "step", order_step_name(l->failures[i].step),
                                                  "mode", l->failures[i].mode, "count", l->failures[i].count));
    if (l->other_failures)
        json_array_append_new(failures, json_pack("{s:s, s:s, s:i}", "step", "any", "mode", "other", "count",
                                                  l->other_failures));
    for (int i = 0; i < l->n_versions; i++)
        json_array_append_new(versions, json_pack("{s:o, s:i, s:i}", "version",
                                                  l->versions[i].version[0] ? json_string(l->versions[i].version)
                                                                            : json_null(),
                                                  "passed", l->versions[i].passed, "failed", l->versions[i].failed));
    for (int i = 0; !l->completed && i < l->n_meas; i++) json_array_append_new(meas, meas_json(&l->meas[i]));
    return json_pack("{s:s, s:s, s:i, s:s, s:s, s:i, s:o, s:o, s:i, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "lotId", l->lot_id, "orderId", l->order_id, "revision", l->revision, "product", l->product,
                     "firmwareVersion", l->version, "quantity", l->quantity, "started", time_or_null(l->started_ms),
                     "completed", time_or_null(l->completed ? l->completed_ms : 0), "inProgress",
                     l->completed ? 0 : in_progress, "passed", l->passed, "failed", l->failed, "yield",
                     ratio(l->passed, done), "firstPassYield", ratio(l->passed, done), "unitsPerHour",
                     hours > 0 && done ? json_real(done / hours) : json_null(), "failures", failures, "versions",
                     versions, "measurements", meas);
}

static const yield_lot *yield_current(const yield *y)
{
    for (int i = y->n_lots - 1; i >= 0; i--)
        if (!y->lots[i]->completed) return y->lots[i];
    return NULL;
}

const char *yield_current_lot(const yield *y)
{
    const yield_lot *l = yield_current(y);
    return l ? l->lot_id : NULL;
}

char *yield_json(const yield *y, const char *site, const char *line, int64_t now_ms, uint32_t in_progress)
{
    const yield_lot *cur = yield_current(y);
    json_t *completed = json_array();
    for (int i = y->n_lots - 1; i >= 0; i--)
        if (y->lots[i]->completed) json_array_append_new(completed, lot_json(y->lots[i], now_ms, 0));
    json_t *doc = json_pack("{s:s, s:s, s:o, s:o, s:o}", "site", site, "line", line, "lot",
                            cur ? lot_json(cur, now_ms, in_progress) : json_null(), "completed", completed,
                            "updatedAt", time_or_null(now_ms));
    char *s = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(doc);
    return s;
}

void yield_describe(const yield *y, char *buf, size_t len)
{
    const yield_lot *l = yield_current(y);
    if (!l) {
        snprintf(buf, len, "no lot in progress");
        return;
    }
    uint32_t done = l->passed + l->failed;
    snprintf(buf, len, "lot %s: %u of %u done, yield %.1f%%", l->lot_id, done, l->quantity,
             done ? 100.0 * l->passed / done : 0.0);
}

uint64_t yield_first_seq(const yield *y) { return y->n_lots ? y->lots[0]->first_seq : 0; }
