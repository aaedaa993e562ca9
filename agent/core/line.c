/* SPDX-License-Identifier: Apache-2.0 */
/* line.c - the line coordinator. Stations and the intake post results into
 * one queue; line_step() takes everything queued, applies it to the lots and
 * units, appends the trace events (built in line_events.c), and commits it
 * all in one transaction (group commit). Only after the commit does anything
 * leave: boards move to their next station, the MES gets its answer, the
 * forwarder is woken. A crash before the commit loses nothing that anyone
 * was told. */
#include "line.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "eol.h"
#include "line_int.h"
#include "log.h"
#include "lot_image.h"

typedef struct line_msg {
    station_result *sr; /* a station job's results, chained */
    intake_decision *d;
    char *resume_station; /* an operator's site resume */
    int resume_site;
    struct line_msg *next;
} line_msg;

/* What a transaction decided to do once it is durable. */
typedef struct line_after {
    unit **dispatch;
    size_t n_dispatch, cap_dispatch;
    char **results;
    size_t n_results, cap_results;
} line_after;

struct line {
    const config *cfg;
    spool *sp;
    line_emitter em;
    line_hooks hooks;
    station **stations;
    size_t n_stations;
    uint32_t caps; /* steps some station performs */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    line_msg *head, *tail;
    lot *lots; /* FIFO; the head is the running lot */
    unit *units;
    int feeding;
    int paused; /* back-pressure from the spool guard */
    int in_flight;
    line_after after;
    line_sites sites; /* fixture-site health, <prefix>/stations/<name> */
    unit **held; /* boards whose write waits for a changeover (lot_write_waits) */
    size_t n_held, cap_held;
};

/* ---- queue ----------------------------------------------------------- */

/* Appends m to the coordinator's queue and wakes it. */
static void line_push(line *ln, line_msg *m)
{
    pthread_mutex_lock(&ln->lock);
    if (ln->tail) ln->tail->next = m;
    else ln->head = m;
    ln->tail = m;
    pthread_cond_signal(&ln->cond);
    pthread_mutex_unlock(&ln->lock);
}

static void line_enqueue(line *ln, station_result *sr, intake_decision *d)
{
    line_msg *m = calloc(1, sizeof *m);
    m->sr = sr;
    m->d = d;
    line_push(ln, m);
}

static void line_post_station(void *ud, station_result *first, station_result *last)
{
    (void)last;
    line_enqueue(ud, first, NULL);
}

static void free_chain(station_result *r)
{
    for (station_result *next; r; r = next) {
        next = r->chain;
        free(r);
    }
}
void line_post_decision(line *ln, intake_decision *d) { line_enqueue(ln, NULL, d); }

void line_site_resume(line *ln, const char *name, int site)
{
    line_msg *m = calloc(1, sizeof *m);
    m->resume_station = strdup(name);
    m->resume_site = site;
    line_push(ln, m);
}

int line_site_alarms(line *ln, json_t *alarms) { return line_sites_alarms(&ln->sites, alarms); }

static line_msg *line_take_all(line *ln, int timeout_ms)
{
    pthread_mutex_lock(&ln->lock);
    if (!ln->head && timeout_ms > 0) {
        struct timespec ts = clock_deadline_ms(timeout_ms);
        pthread_cond_timedwait(&ln->cond, &ln->lock, &ts);
    }
    line_msg *all = ln->head;
    ln->head = ln->tail = NULL;
    pthread_mutex_unlock(&ln->lock);
    return all;
}

/* ---- releases, lots, units ------------------------------------------- */

static release *release_new(const JobOrder *o, uint8_t *image, size_t len)
{
    release *r = calloc(1, sizeof *r);
    r->refs = 1;
    r->revision = o->revision;
    snprintf(r->version, sizeof r->version, "%s", o->firmware->version);
    snprintf(r->sha256, sizeof r->sha256, "%s", o->firmware->sha256);
    r->data = image;
    r->img = (adapter_image){r->version, r->sha256, image, len, o->firmware->load_address};
    return r;
}

static release *release_ref(release *r)
{
    if (r) r->refs++;
    return r;
}

static void release_unref(release *r)
{
    if (r && --r->refs == 0) {
        free(r->data);
        free(r);
    }
}

static lot *lot_find_order(line *ln, const char *order_id)
{
    for (lot *l = ln->lots; l; l = l->next)
        if (strcmp(l->st.order_id, order_id) == 0) return l;
    return NULL;
}

static void lot_set_order(lot *l, JobOrder *o, release *rel)
{
    order_free(l->order);
    release_unref(l->rel);
    l->order = o;
    l->rel = rel;
    l->n_flow = (int)(o->n_flow < STATION_MAX_FLOW ? o->n_flow : STATION_MAX_FLOW);
    for (int i = 0; i < l->n_flow; i++) l->flow[i] = o->flow[i];
}

static void lot_free(lot *l)
{
    order_free(l->order);
    release_unref(l->rel);
    free(l);
}

static void line_append_lot(line *ln, lot *l)
{
    lot **pp = &ln->lots;
    while (*pp) pp = &(*pp)->next;
    *pp = l;
}

static unit *unit_new(line *ln, lot *l, uint32_t idx)
{
    unit *u = calloc(1, sizeof *u);
    u->lt = l;
    l->units++;
    snprintf(u->st.lot_id, sizeof u->st.lot_id, "%s", l->st.lot_id);
    u->st.idx = idx;
    u->next = ln->units;
    if (ln->units) ln->units->prev = u;
    ln->units = u;
    ln->in_flight++;
    return u;
}

static void unit_free(line *ln, unit *u)
{
    for (size_t i = 0; i < ln->n_held; i++)
        if (ln->held[i] == u) ln->held[i] = NULL;
    if (u->prev) u->prev->next = u->next;
    else ln->units = u->next;
    if (u->next) u->next->prev = u->prev;
    ln->in_flight--;
    if (--u->lt->units == 0 && u->lt->completed) lot_free(u->lt);
    release_unref(u->rel);
    free(u);
}

/* The next lot in line becomes the running one. */
static int line_start_next_lot(line *ln)
{
    return ln->lots ? line_ev_lot_started(&ln->em, ln->lots) : 0;
}

static int lot_complete(line *ln, lot *l)
{
    l->st.active = 0;
    l->dirty = 0; /* written here: it leaves the lot list */
    if (line_ev_lot_completed(&ln->em, l) || spool_lot_put(ln->sp, &l->st)) return -1;
    lot **pp = &ln->lots;
    while (*pp != l) pp = &(*pp)->next;
    *pp = l->next;
    l->completed = 1;
    return line_start_next_lot(ln);
}

/* Commits the unit's outcome: exactly one unit_completed per unit. */
static int unit_finish(line *ln, unit *u, int passed, const char *st_name)
{
    lot *l = u->lt;
    u->st.state = passed ? SPOOL_UNIT_PASSED : SPOOL_UNIT_FAILED;
    u->finished = 1;
    u->writing = 0;
    if (passed) l->st.passed++;
    else l->st.failed++;
    l->dirty = 1;
    if (line_ev_unit_completed(&ln->em, u, st_name, passed) || spool_unit_put(ln->sp, &u->st)) return -1;
    if (l->st.passed + l->st.failed >= l->order->quantity) return lot_complete(ln, l);
    return 0;
}

/* ---- station results ------------------------------------------------- */

static int flow_has(const lot *l, Step s)
{
    for (int i = 0; i < l->n_flow; i++)
        if (l->flow[i] == s) return 1;
    return 0;
}

/* The end-of-line check's facts about a unit (eol.c judges them). */
static const char *unit_eol(const unit *u, char *buf, size_t n)
{
    const lot *l = u->lt;
    eol_def d = {flow_has(l, LINEAGENT__V1__STEP__PROVISION), flow_has(l, LINEAGENT__V1__STEP__CALIBRATE),
                 flow_has(l, LINEAGENT__V1__STEP__LOCK)};
    eol_unit e = {u->rel ? u->rel->version : NULL, u->rel ? u->rel->sha256 : NULL, u->verified_version,
                  u->verified_sha256, (u->st.steps_done & (1u << LINEAGENT__V1__STEP__PROVISION)) != 0,
                  u->calibrated, u->lock_verified};
    return eol_check(&d, &e, buf, n);
}

static int on_step_passed(line *ln, unit *u, const char *st_name, Step s, const adapter_result *res,
                          int64_t done_ns)
{
    lot *l = u->lt;
    switch (s) {
    case LINEAGENT__V1__STEP__WRITE:
        snprintf(u->write_station, sizeof u->write_station, "%s", st_name);
        u->write_ns = done_ns;
        return 0;
    case LINEAGENT__V1__STEP__VERIFY: {
        snprintf(u->verified_version, sizeof u->verified_version, "%s", u->rel->version);
        snprintf(u->verified_sha256, sizeof u->verified_sha256, "%s", u->rel->sha256);
        if (line_ev_unit_written(&ln->em, u, st_name, res)) return -1;
        u->writing = 0;
        changeover co;
        l->dirty = 1;
        /* Sites verify out of order: of one version, the last board is the
         * one written last, not the one verified last. */
        if (l->st.written_revision && strcmp(u->rel->version, l->st.written_version) == 0 &&
            u->write_ns < l->last_write_ns)
            return 0;
        l->last_write_ns = u->write_ns;
        if (!changeover_note_write(&l->st, u->rel->revision, u->rel->version, u->st.board_id, &co)) return 0;
        return line_ev_changeover(&ln->em, u, st_name, &co);
    }
    case LINEAGENT__V1__STEP__PROVISION:
        snprintf(u->serial, sizeof u->serial, "%s", res->serial);
        return line_ev_unit_provisioned(&ln->em, u, st_name, res);
    case LINEAGENT__V1__STEP__CALIBRATE:
        u->calibrated = 1;
        return line_ev_unit_calibrated(&ln->em, u, st_name, res);
    case LINEAGENT__V1__STEP__LOCK:
        u->lock_verified = res->lock_verified;
        return line_ev_unit_locked(&ln->em, u, st_name, res);
    default:
        return 0;
    }
}

static int on_step(line *ln, unit *u, const station_result *r)
{
    const char *st_name = station_name(r->st);
    if (u->finished) return 0;
    u->site = r->site;
    u->step_ms = r->duration_ms;
    if (r->step == LINEAGENT__V1__STEP__TEST && r->res.n_measurements &&
        line_ev_unit_tested(&ln->em, u, st_name, &r->res))
        return -1;
    if (r->res.passed) {
        u->st.steps_done |= 1u << r->step;
        /* Only the unit's outcome is persisted: a restart runs an unfinished
         * board's flow again from its first step. */
        return on_step_passed(ln, u, st_name, r->step, &r->res, r->done_ns);
    }
    if (line_ev_unit_failed(&ln->em, u, st_name, r->step, r->res.failure_mode, r->res.detail)) return -1;
    line_sites_outcome(&ln->sites, r->st, r->site, 0, r->step, r->res.failure_mode);
    return unit_finish(ln, u, 0, st_name);
}

static void after_dispatch(line *ln, unit *u)
{
    line_after *a = &ln->after;
    if (a->n_dispatch == a->cap_dispatch) {
        a->cap_dispatch = a->cap_dispatch ? a->cap_dispatch * 2 : 64;
        a->dispatch = realloc(a->dispatch, a->cap_dispatch * sizeof *a->dispatch);
    }
    a->dispatch[a->n_dispatch++] = u;
}

static int on_station_result(line *ln, station_result *r)
{
    unit *u = r->unit;
    lot *l = u->lt;
    switch (r->kind) {
    case STATION_LOADED:
        snprintf(u->st.board_id, sizeof u->st.board_id, "%s", r->board_id);
        /* A board id seen in earlier lots is a rework: its n-th attempt. */
        int earlier = spool_unit_earlier_lots(ln->sp, u->st.board_id, l->st.lot_id);
        if (earlier < 0) return -1;
        u->st.attempt = 1 + (uint32_t)earlier;
        l->loading--;
        l->taken++;
        if (l->st.loaded < u->st.idx + 1) l->st.loaded = u->st.idx + 1;
        l->dirty = 1;
        return spool_unit_put(ln->sp, &u->st);
    case STATION_STEP:
        return on_step(ln, u, r);
    case STATION_DONE:
        if (!r->failed && u->st.board_id[0] && !u->finished)
            line_sites_outcome(&ln->sites, r->st, r->site, 1, LINEAGENT__V1__STEP__STEP_UNSPECIFIED, NULL);
        if (u->finished) {
        } else if (!u->st.board_id[0]) { /* the load itself gave up (stopping) */
            l->loading--;
        } else if (r->failed) {
            /* refused without a step result: cannot happen with station.c, but a
             * board must never vanish without an outcome */
            if (line_ev_unit_failed(&ln->em, u, station_name(r->st), LINEAGENT__V1__STEP__STEP_UNSPECIFIED,
                                    "station_error", "station gave up on the board") ||
                unit_finish(ln, u, 0, station_name(r->st)))
                return -1;
        } else if (r->next >= l->n_flow) {
            char why[256];
            const char *eol = unit_eol(u, why, sizeof why);
            if (eol && line_ev_unit_failed(&ln->em, u, station_name(r->st), LINEAGENT__V1__STEP__STEP_UNSPECIFIED,
                                           "end_of_line_mismatch", eol))
                return -1;
            if (unit_finish(ln, u, !eol, station_name(r->st))) return -1;
        } else {
            u->flow_pos = r->next;
            after_dispatch(ln, u);
            return 0;
        }
        unit_free(ln, u);
        return 0;
    }
    return 0;
}

/* ---- order decisions ------------------------------------------------- */

static void after_result(line *ln, const JobOrder *o, int accepted, const char *reason)
{
    json_t *j = json_pack("{s:s, s:i, s:b, s:s, s:s}", "orderId", order_id_or_empty(o ? o->order_id : NULL),
                          "revision", o ? (json_int_t)o->revision : 0, "accepted", accepted, "reason", reason,
                          "lotId", order_id_or_empty(o ? o->lot_id : NULL));
    line_after *a = &ln->after;
    if (a->n_results == a->cap_results) {
        a->cap_results = a->cap_results ? a->cap_results * 2 : 8;
        a->results = realloc(a->results, a->cap_results * sizeof *a->results);
    }
    a->results[a->n_results++] = json_dumps(j, JSON_COMPACT);
    json_decref(j);
}

static int reject_order(line *ln, intake_decision *d, const char *reason)
{
    after_result(ln, d->order, 0, reason);
    return line_ev_order_rejected(&ln->em, d->order, reason);
}

/* Why the line cannot take this order (revision rules, routing), or NULL. */
static const char *order_conflict(line *ln, const JobOrder *o, lot *l, char *buf, size_t n)
{
    for (size_t i = 0; i < o->n_flow; i++) {
        if (o->flow[i] == LINEAGENT__V1__STEP__PROVISION && !ln->cfg->prov_url)
            return snprintf(buf, n, "flow includes PROVISION but no provisioning server is configured"), buf;
        if (!(ln->caps & (1u << o->flow[i])))
            return snprintf(buf, n, "no station on this line performs %s", order_step_name(o->flow[i])), buf;
    }
    uint32_t have = 0;
    uint8_t *enc = NULL;
    size_t len = 0;
    int known = spool_order_get(ln->sp, o->order_id, &have, &enc, &len);
    free(enc);
    if (known == 1 && o->revision <= have)
        return snprintf(buf, n, "revision %u ignored: revision %u of order %s is already in effect", o->revision,
                        have, o->order_id), buf;
    if (known == 1 && !l)
        return snprintf(buf, n, "order %s is already complete (or its lot held: firmware_corrupt); revision %u "
                        "cannot change it", o->order_id, o->revision), buf;
    if (!l) {
        spool_lot other;
        if (spool_lot_get(ln->sp, o->lot_id, &other) == 1)
            return snprintf(buf, n, "lot %s already belongs to order %s", o->lot_id, other.order_id), buf;
        return NULL;
    }
    if (strcmp(o->lot_id, l->st.lot_id) != 0)
        return snprintf(buf, n, "revision %u changes the lot id from %s to %s", o->revision, l->st.lot_id,
                        o->lot_id), buf;
    if (strcmp(o->product, l->order->product) != 0)
        return snprintf(buf, n, "revision %u changes the product from %s to %s", o->revision, l->order->product,
                        o->product), buf;
    if (o->n_flow != l->order->n_flow || memcmp(o->flow, l->order->flow, o->n_flow * sizeof *o->flow) != 0)
        return snprintf(buf, n, "revision %u changes the flow of a running lot", o->revision), buf;
    if (o->quantity < l->taken + l->loading)
        return snprintf(buf, n, "quantity %u is below the %u boards already on the line", o->quantity,
                        l->taken + l->loading), buf;
    return NULL;
}

static int on_decision(line *ln, intake_decision *d)
{
    int rc;
    char buf[512];
    const char *why = d->reason[0] ? d->reason : NULL;
    lot *l = d->order ? lot_find_order(ln, d->order->order_id) : NULL;
    if (!why) why = order_conflict(ln, d->order, l, buf, sizeof buf);
    if (why) {
        rc = reject_order(ln, d, why);
    } else {
        JobOrder *o = d->order;
        release *rel = release_new(o, d->image, d->image_len);
        d->order = NULL;
        d->image = NULL;
        size_t len = lineagent__v1__job_order__get_packed_size(o);
        uint8_t *enc = malloc(len ? len : 1);
        lineagent__v1__job_order__pack(o, enc);
        rc = spool_order_put(ln->sp, o->order_id, o->revision, o->lot_id, o->firmware->sha256, enc, len);
        free(enc);
        int is_new = !l;
        if (is_new) {
            l = calloc(1, sizeof *l);
            snprintf(l->st.lot_id, sizeof l->st.lot_id, "%s", o->lot_id);
            snprintf(l->st.order_id, sizeof l->st.order_id, "%s", o->order_id);
            l->st.active = 1;
            line_append_lot(ln, l);
        }
        lot_set_order(l, o, rel);
        char msg[256];
        snprintf(msg, sizeof msg, "%s: lot %s, %u boards, firmware %s", is_new ? "accepted" : "revision accepted",
                 o->lot_id, o->quantity, o->firmware->version);
        log_info("order %s rev %u %s", o->order_id, o->revision, msg);
        after_result(ln, o, 1, msg);
        rc = rc || line_ev_order_accepted(&ln->em, l) || spool_lot_put(ln->sp, &l->st);
        if (!rc && is_new && ln->lots == l) rc = line_ev_lot_started(&ln->em, l);
    }
    return rc || spool_inbox_delete(ln->sp, d->inbox_id) ? -1 : 0;
}

/* ---- dispatch -------------------------------------------------------- */

static station *line_pick_station(line *ln, Step s)
{
    station *best = NULL;
    int best_load = 0;
    for (size_t i = 0; i < ln->n_stations; i++) {
        if (!(station_steps(ln->stations[i]) & (1u << s))) continue;
        /* a station whose every site is paused comes last */
        int load = station_load(ln->stations[i]) + (station_sites_active(ln->stations[i]) ? 0 : 1000000);
        if (!best || load < best_load) {
            best = ln->stations[i];
            best_load = load;
        }
    }
    return best;
}

/* 1 when the job a station would run from flow position from writes. */
static int job_writes(const lot *l, int from, station *st)
{
    for (int i = from; i < l->n_flow && (station_steps(st) & (1u << l->flow[i])); i++)
        if (l->flow[i] == LINEAGENT__V1__STEP__WRITE) return 1;
    return 0;
}

/* Write order is the changeover's boundary (rule R4). While a lot changes
 * release, a board's write waits: every write of the other version already
 * handed out ends first (verified, or its unit failed), then the first
 * write of the new version runs alone, until it is verified. Gang sites
 * finishing out of order would otherwise write boards old, new, old, and
 * the boards named by version_changeover would not be the boundary. */
static int lot_write_waits(line *ln, const lot *l)
{
    int writing = 0, other = l->st.written_revision && strcmp(l->st.written_version, l->rel->version) != 0;
    for (const unit *u = ln->units; u; u = u->next)
        if (u->lt == l && u->writing) {
            writing++;
            if (u->rel && strcmp(u->rel->version, l->rel->version) != 0) other = 1;
        }
    return other && writing;
}

static void line_dispatch_to(line *ln, unit *u, int load, station *st)
{
    lot *l = u->lt;
    if (job_writes(l, u->flow_pos, st)) {
        if (!load && lot_write_waits(ln, l)) {
            if (ln->n_held == ln->cap_held) {
                ln->cap_held = ln->cap_held ? ln->cap_held * 2 : 16;
                ln->held = realloc(ln->held, ln->cap_held * sizeof *ln->held);
            }
            ln->held[ln->n_held++] = u;
            return;
        }
        u->writing = 1;
    }
    station_job job = {.unit = u, .load = load, .idx = u->st.idx, .n_flow = l->n_flow, .from = u->flow_pos,
                       .steps_done = u->st.steps_done};
    snprintf(job.lot_id, sizeof job.lot_id, "%s", l->st.lot_id);
    snprintf(job.board_id, sizeof job.board_id, "%s", u->st.board_id);
    snprintf(job.serial, sizeof job.serial, "%s", u->serial);
    snprintf(job.product, sizeof job.product, "%s", l->order->product);
    snprintf(job.order_id, sizeof job.order_id, "%s", l->st.order_id);
    memcpy(job.flow, l->flow, sizeof job.flow);
    /* The release is bound when the job that writes is handed out: boards
     * not yet written then take the newest revision, in dispatch order. */
    for (int i = u->flow_pos; i < l->n_flow && (station_steps(st) & (1u << l->flow[i])); i++)
        if (l->flow[i] == LINEAGENT__V1__STEP__WRITE) {
            release_unref(u->rel);
            u->rel = release_ref(l->rel);
            u->st.revision = u->rel->revision;
            snprintf(u->st.version, sizeof u->st.version, "%s", u->rel->version);
            snprintf(u->st.sha256, sizeof u->st.sha256, "%s", u->rel->sha256);
        }
    job.image = u->rel ? &u->rel->img : NULL;
    const JobOrder *o = l->order;
    for (size_t i = 0; i < o->n_test_items && job.n_limits < ADAPTER_MAX_MEASUREMENTS; i++) {
        adapter_measurement *m = &job.limits[job.n_limits++];
        snprintf(m->name, sizeof m->name, "%s", o->test_items[i]->name);
        snprintf(m->unit, sizeof m->unit, "%s", o->test_items[i]->unit);
        m->low = o->test_items[i]->low;
        m->high = o->test_items[i]->high;
    }
    job.cal_max_residual = o->calibration_max_residual;
    station_submit(st, &job);
}

static void line_dispatch(line *ln, unit *u)
{
    line_dispatch_to(ln, u, 0, line_pick_station(ln, u->lt->flow[u->flow_pos]));
}

/* Every station that starts the flow loads a board on each of its idle
 * sites (a gang station's nests load in parallel), so arrivals run in
 * parallel rather than one per commit. Arrival indices are handed out here;
 * a load lost in a crash leaves a gap in them, never a missing board, since
 * the lot counts the boards it has taken, not the highest index. */
static void line_feed(line *ln)
{
    lot *l = ln->lots;
    if (!ln->feeding || ln->paused || !l) return;
    for (size_t i = 0; i < ln->n_stations; i++) {
        station *st = ln->stations[i];
        if (!(station_steps(st) & (1u << l->flow[0]))) continue;
        /* Idle sites counted once: sites finish meanwhile, and a feed
         * gives each idle one board. lot_write_waits is asked again after
         * each load: the first write of a new release runs alone. */
        for (int idle = station_sites_active(st) - station_load(st);
             idle > 0 && l->taken + l->loading < l->order->quantity && !(job_writes(l, 0, st) && lot_write_waits(ln, l));
             idle--) {
            unit *u = unit_new(ln, l, l->next_idx++);
            l->loading++;
            line_dispatch_to(ln, u, 1, st);
        }
    }
}

/* ---- the step -------------------------------------------------------- */

static void line_after_commit(line *ln)
{
    line_after *a = &ln->after;
    /* Boards held for a changeover go first, in order; they may wait again. */
    size_t n_held = ln->n_held;
    unit **held = ln->held;
    ln->held = NULL;
    ln->n_held = ln->cap_held = 0;
    for (size_t i = 0; i < n_held; i++)
        if (held[i]) line_dispatch(ln, held[i]);
    free(held);
    for (size_t i = 0; i < a->n_dispatch; i++) line_dispatch(ln, a->dispatch[i]);
    for (size_t i = 0; i < a->n_results; i++) {
        if (ln->hooks.publish_result) ln->hooks.publish_result(ln->hooks.ud, a->results[i]);
        free(a->results[i]);
    }
    if (ln->em.committed && ln->hooks.events_committed) ln->hooks.events_committed(ln->hooks.ud);
    a->n_dispatch = a->n_results = 0;
    ln->em.committed = 0;
    if (ln->sites.changed && ln->hooks.sites_changed) ln->hooks.sites_changed(ln->hooks.ud);
    ln->sites.changed = 0;
    line_feed(ln);
    line_sites_publish(&ln->sites);
}

int line_step(line *ln, int timeout_ms)
{
    line_msg *all = line_take_all(ln, timeout_ms);
    if (!all) {
        line_feed(ln);
        line_sites_publish(&ln->sites);
        return 0;
    }
    int rc = spool_begin(ln->sp);
    if (rc && spool_error_is_busy(ln->sp)) {
        /* Another connection holds the write lock: nothing is applied yet,
         * so the batch goes back to the head of the queue, in order, for
         * the next step. No board moves on, no one is told. */
        line_msg *last = all;
        while (last->next) last = last->next;
        pthread_mutex_lock(&ln->lock);
        last->next = ln->head;
        ln->head = all;
        if (!ln->tail) ln->tail = last;
        pthread_mutex_unlock(&ln->lock);
        return LINE_BUSY;
    }
    int n = 0;
    for (line_msg *m = all, *next; m; m = next) {
        next = m->next;
        for (station_result *r = m->sr; r && !rc; r = r->chain, n++) rc = on_station_result(ln, r);
        if (m->d && !rc) {
            rc = on_decision(ln, m->d);
            n++;
        }
        if (m->resume_station && !rc) line_sites_resume(&ln->sites, m->resume_station, m->resume_site);
        free(m->resume_station);
        free_chain(m->sr);
        intake_decision_free(m->d);
        free(m);
    }
    for (lot *l = ln->lots; l && !rc; l = l->next)
        if (l->dirty) {
            rc = spool_lot_put(ln->sp, &l->st);
            l->dirty = 0;
        }
    if (!rc) rc = spool_commit(ln->sp);
    if (rc) {
        log_error("spool commit of %d results failed: %s", n, spool_errmsg(ln->sp));
        spool_rollback(ln->sp);
        return -1;
    }
    line_after_commit(ln);
    return 0;
}

/* ---- start, resume, stop -------------------------------------------- */

typedef struct resume_ctx {
    line *ln;
    lot *l;
} resume_ctx;

static int resume_unit(void *ud, const spool_unit *su)
{
    resume_ctx *rc = ud;
    line *ln = rc->ln;
    unit *u = unit_new(ln, rc->l, su->idx);
    u->st = *su;
    rc->l->taken++;
    /* The board restarts its flow: whatever happened after the last commit
     * is unknown, and rewriting the bound image is harmless. */
    u->st.steps_done = 0;
    after_dispatch(ln, u);
    return 0;
}

static int resume_lot(void *ud, const spool_lot *sl)
{
    line *ln = ud;
    uint32_t rev;
    uint8_t *enc = NULL, *image = NULL;
    size_t len, image_len;
    if (spool_order_get(ln->sp, sl->order_id, &rev, &enc, &len) != 1) {
        log_error("spool: lot %s has no order %s; not resumed", sl->lot_id, sl->order_id);
        return 0;
    }
    JobOrder *o = lineagent__v1__job_order__unpack(NULL, len, enc);
    free(enc);
    char why[500]; /* the image re-hashed first (rule R1); a corrupt one is fetched again or the lot held */
    if (lot_image_load(ln->sp, ln->cfg, o, sl->lot_id, &image, &image_len, why, sizeof why) != 0) {
        lot_image_hold(ln->sites.held_lots, sl->lot_id, why);
        order_free(o);
        return 0;
    }
    lot *l = calloc(1, sizeof *l);
    l->st = *sl;
    l->next_idx = sl->loaded;
    l->taken = sl->passed + sl->failed; /* plus each unit resumed below */
    lot_set_order(l, o, release_new(o, image, image_len));
    line_append_lot(ln, l);
    log_info("resuming lot %s (order %s rev %u): %u of %u loaded, %u passed, %u failed", sl->lot_id, sl->order_id,
             rev, sl->loaded, o->quantity, sl->passed, sl->failed);
    resume_ctx rc = {ln, l};
    return spool_unit_list_in_progress(ln->sp, sl->lot_id, resume_unit, &rc) < 0 ? -1 : 0;
}

line *line_start(const config *cfg, spool *sp, const line_hooks *hooks, char *err, size_t err_len)
{
    line *ln = calloc(1, sizeof *ln);
    ln->cfg = cfg;
    ln->sp = sp;
    ln->em = (line_emitter){sp, cfg->site, cfg->line, 0};
    ln->hooks = *hooks;
    ln->feeding = 1;
    pthread_mutex_init(&ln->lock, NULL);
    pthread_cond_init(&ln->cond, NULL);
    ln->stations = calloc(cfg->n_stations, sizeof *ln->stations);
    for (size_t i = 0; i < cfg->n_stations; i++) {
        ln->stations[i] = station_start(&cfg->stations[i], line_post_station, ln, err, err_len);
        if (ln->stations[i] && station_enable_provisioning(ln->stations[i], cfg, err, err_len)) {
            station_stop(ln->stations[i], NULL);
            ln->stations[i] = NULL;
        }
        if (!ln->stations[i]) {
            line_stop(ln);
            return NULL;
        }
        ln->n_stations++;
        ln->caps |= cfg->stations[i].steps_mask;
    }
    line_sites_init(&ln->sites, cfg, ln->stations, ln->n_stations, hooks);
    if (spool_lot_list_active(sp, resume_lot, ln) < 0) {
        snprintf(err, err_len, "cannot resume lots from the spool: %s", spool_errmsg(sp));
        line_stop(ln);
        return NULL;
    }
    line_after_commit(ln);
    return ln;
}

int line_held_lots(line *ln) { return (int)json_array_size(ln->sites.held_lots); }
void line_stop_feeding(line *ln) { ln->feeding = 0; }
void line_set_paused(line *ln, int paused) { ln->paused = paused; }
int line_in_flight(line *ln) { return ln->in_flight; }

void line_stop(line *ln)
{
    if (!ln) return;
    latency_hist *lat = calloc(1, sizeof *lat);
    for (size_t i = 0; i < ln->n_stations; i++) station_stop(ln->stations[i], lat);
    if (lat->n)
        log_info("dispatch latency over %llu jobs: p50 %.0f us, p99 %.0f us", (unsigned long long)lat->n,
                 latency_quantile_us(lat, 0.5), latency_quantile_us(lat, 0.99));
    free(lat);
    free(ln->stations);
    /* Results still queued are not committed: the spool keeps the last
     * durable state, which a restart resumes from. */
    for (line_msg *m = ln->head, *next; m; m = next) {
        next = m->next;
        free_chain(m->sr);
        intake_decision_free(m->d);
        free(m->resume_station);
        free(m);
    }
    line_sites_free(&ln->sites);
    while (ln->units) unit_free(ln, ln->units);
    for (lot *l = ln->lots, *next; l; l = next) {
        next = l->next;
        lot_free(l);
    }
    free(ln->after.dispatch);
    free(ln->held);
    for (size_t i = 0; i < ln->after.n_results; i++) free(ln->after.results[i]);
    free(ln->after.results);
    pthread_mutex_destroy(&ln->lock);
    pthread_cond_destroy(&ln->cond);
    free(ln);
}
