/* SPDX-License-Identifier: Apache-2.0 */
/* line_events.c - the trace events of the line coordinator: each function
 * builds one event body from the lot or unit as line.c has left it and
 * appends it to the coordinator's open transaction. Decides nothing. */
#include <stdio.h>
#include <stdlib.h>

#include "line_int.h"
#include "log.h"

static void ev_init(TraceEvent *ev, const lot *l, const char *st_name, const char *board)
{
    lineagent__v1__trace_event__init(ev);
    ev->order_id = (char *)l->st.order_id;
    ev->lot_id = (char *)l->st.lot_id;
    if (st_name) ev->station = (char *)st_name;
    if (board) ev->board_id = (char *)board;
}

/* An event about a unit: every event of a provisioned unit carries its
 * serial; every one its fixture site, its latest step's duration and its
 * attempt. */
static void ev_init_unit(TraceEvent *ev, const unit *u, const char *st_name)
{
    ev_init(ev, u->lt, st_name, u->st.board_id);
    if (u->serial[0]) ev->serial = (char *)u->serial;
    ev->station_site = u->site;
    ev->step_duration_ms = u->step_ms;
    ev->attempt = u->st.attempt ? u->st.attempt : 1;
}

static int ev_commit(line_emitter *em, TraceEvent *ev)
{
    em->committed++;
    return event_commit(em->sp, em->site, em->line, ev);
}

int line_ev_order_accepted(line_emitter *em, const lot *l)
{
    const JobOrder *o = l->order;
    TraceEvent ev;
    Lineagent__V1__OrderAccepted b = LINEAGENT__V1__ORDER_ACCEPTED__INIT;
    ev_init(&ev, l, NULL, NULL);
    b.revision = o->revision;
    b.product = o->product;
    b.quantity = o->quantity;
    b.firmware = o->firmware;
    b.n_flow = o->n_flow;
    b.flow = o->flow;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_ACCEPTED;
    ev.order_accepted = &b;
    return ev_commit(em, &ev);
}

int line_ev_order_rejected(line_emitter *em, const JobOrder *o, const char *reason)
{
    TraceEvent ev;
    Lineagent__V1__OrderRejected b = LINEAGENT__V1__ORDER_REJECTED__INIT;
    lineagent__v1__trace_event__init(&ev);
    if (o) { /* ids echoed only when well formed */
        ev.order_id = (char *)order_id_or_empty(o->order_id);
        ev.lot_id = (char *)order_id_or_empty(o->lot_id);
        b.revision = o->revision;
    }
    b.reason = (char *)reason;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_REJECTED;
    ev.order_rejected = &b;
    return ev_commit(em, &ev);
}

int line_ev_lot_started(line_emitter *em, const lot *l)
{
    TraceEvent ev;
    Lineagent__V1__LotStarted b = LINEAGENT__V1__LOT_STARTED__INIT;
    ev_init(&ev, l, NULL, NULL);
    b.product = l->order->product;
    b.quantity = l->order->quantity;
    b.firmware = l->order->firmware;
    b.n_flow = l->order->n_flow;
    b.flow = l->order->flow;
    b.order_revision = l->order->revision;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_LOT_STARTED;
    ev.lot_started = &b;
    log_info("lot %s started: order %s rev %u, %u x %s, firmware %s", l->st.lot_id, l->st.order_id,
             l->order->revision, l->order->quantity, l->order->product, l->rel->version);
    return ev_commit(em, &ev);
}

#define LINE_EV_MAX_VERSIONS 64 /* releases reported per lot; each revision may name one */

typedef struct version_counts {
    spool_version_count vc[LINE_EV_MAX_VERSIONS];
    size_t n;
    uint32_t passed_first, finished;
} version_counts;

static int version_count_add(void *ud, const spool_version_count *vc)
{
    version_counts *v = ud;
    v->passed_first += vc->passed_first;
    v->finished += vc->passed + vc->failed;
    if (v->n < LINE_EV_MAX_VERSIONS) v->vc[v->n++] = *vc;
    return 0;
}

int line_ev_lot_completed(line_emitter *em, const lot *l)
{
    version_counts *v = calloc(1, sizeof *v);
    if (!v || spool_unit_versions(em->sp, l->st.lot_id, version_count_add, v) < 0) {
        free(v);
        return -1;
    }
    Lineagent__V1__VersionCount vcs[LINE_EV_MAX_VERSIONS], *vp[LINE_EV_MAX_VERSIONS];
    for (size_t i = 0; i < v->n; i++) {
        lineagent__v1__version_count__init(&vcs[i]);
        vcs[i].version = v->vc[i].version;
        vcs[i].sha256 = v->vc[i].sha256;
        vcs[i].passed = v->vc[i].passed;
        vcs[i].failed = v->vc[i].failed;
        vp[i] = &vcs[i];
    }
    TraceEvent ev;
    Lineagent__V1__LotCompleted b = LINEAGENT__V1__LOT_COMPLETED__INIT;
    ev_init(&ev, l, NULL, NULL);
    b.quantity = l->order->quantity;
    b.passed = l->st.passed;
    b.failed = l->st.failed;
    b.n_versions = v->n;
    b.versions = vp;
    b.first_pass_yield = v->finished ? (double)v->passed_first / v->finished : 0;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_LOT_COMPLETED;
    ev.lot_completed = &b;
    log_info("lot %s completed: %u passed, %u failed of %u, first-pass yield %.1f%%", l->st.lot_id, l->st.passed,
             l->st.failed, l->order->quantity, 100 * b.first_pass_yield);
    int rc = ev_commit(em, &ev);
    free(v);
    return rc;
}

int line_ev_unit_tested(line_emitter *em, const unit *u, const char *st_name, const adapter_result *res)
{
    Lineagent__V1__Measurement ms[ADAPTER_MAX_MEASUREMENTS], *mp[ADAPTER_MAX_MEASUREMENTS];
    for (int i = 0; i < res->n_measurements; i++) {
        const adapter_measurement *m = &res->measurements[i];
        lineagent__v1__measurement__init(&ms[i]);
        ms[i].name = (char *)m->name;
        ms[i].value = m->value;
        ms[i].low = m->low;
        ms[i].high = m->high;
        ms[i].unit = (char *)m->unit;
        ms[i].passed = m->value >= m->low && m->value <= m->high;
        mp[i] = &ms[i];
    }
    Lineagent__V1__UnitTested b = LINEAGENT__V1__UNIT_TESTED__INIT;
    b.passed = res->passed;
    b.n_measurements = (size_t)res->n_measurements;
    b.measurements = mp;
    b.test_plan = u->lt->order->test_plan;
    TraceEvent ev;
    ev_init_unit(&ev, u, st_name);
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_TESTED;
    ev.unit_tested = &b;
    return ev_commit(em, &ev);
}

int line_ev_unit_written(line_emitter *em, const unit *u, const char *st_name, const adapter_result *res)
{
    TraceEvent ev;
    Lineagent__V1__UnitWritten b = LINEAGENT__V1__UNIT_WRITTEN__INIT;
    ev_init_unit(&ev, u, st_name);
    b.version = u->rel->version;
    b.sha256 = u->rel->sha256;
    b.readback_sha256 = (char *)res->readback_sha256;
    b.verify_method = (char *)res->verify_method;
    if (res->readback_crc != ADAPTER_CRC_NONE) b.readback_crc32 = res->readback_crc32;
    b.serial = (char *)u->serial;
    b.order_revision = u->rel->revision;
    b.write_station = (char *)u->write_station;
    b.image_size = u->rel->img.len;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_WRITTEN;
    ev.unit_written = &b;
    return ev_commit(em, &ev);
}

int line_ev_changeover(line_emitter *em, const unit *u, const char *st_name, const changeover *co)
{
    TraceEvent ev;
    Lineagent__V1__VersionChangeover c = LINEAGENT__V1__VERSION_CHANGEOVER__INIT;
    c.from_version = (char *)co->from_version;
    c.to_version = (char *)co->to_version;
    c.last_board_old = (char *)co->last_board_old;
    c.first_board_new = (char *)co->first_board_new;
    c.from_revision = co->from_revision;
    c.to_revision = co->to_revision;
    ev_init_unit(&ev, u, st_name);
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_VERSION_CHANGEOVER;
    ev.version_changeover = &c;
    log_info("lot %s: firmware changeover %s -> %s after board %s, first new board %s", u->lt->st.lot_id,
             co->from_version, co->to_version, co->last_board_old, co->first_board_new);
    return ev_commit(em, &ev);
}

int line_ev_unit_provisioned(line_emitter *em, const unit *u, const char *st_name, const adapter_result *res)
{
    TraceEvent ev;
    Lineagent__V1__UnitProvisioned b = LINEAGENT__V1__UNIT_PROVISIONED__INIT;
    char *macs[ADAPTER_MAX_MACS];
    ev_init_unit(&ev, u, st_name);
    b.serial = (char *)u->serial;
    b.device_id = (char *)res->device_id;
    b.certificate_sha256 = (char *)res->cert_sha256;
    b.factory_code = (char *)res->factory_code;
    b.issued_at = (char *)res->issued_at;
    b.certificate_serial = (char *)res->cert_serial;
    b.reused = res->identity_reused;
    for (int i = 0; i < res->n_macs && i < ADAPTER_MAX_MACS; i++) macs[i] = (char *)res->macs[i];
    b.n_macs = (size_t)(res->n_macs < ADAPTER_MAX_MACS ? res->n_macs : ADAPTER_MAX_MACS);
    b.macs = macs;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_PROVISIONED;
    ev.unit_provisioned = &b;
    return ev_commit(em, &ev);
}

int line_ev_unit_calibrated(line_emitter *em, const unit *u, const char *st_name, const adapter_result *res)
{
    TraceEvent ev;
    Lineagent__V1__UnitCalibrated b = LINEAGENT__V1__UNIT_CALIBRATED__INIT;
    ev_init_unit(&ev, u, st_name);
    b.offset = res->cal_offset;
    b.gain = res->cal_gain;
    b.residual = res->cal_residual;
    b.points = (uint32_t)res->n_cal_points;
    /* named channels, each with its points (fields 1-4 are the first's) */
    Lineagent__V1__CalibrationChannel ch[ADAPTER_MAX_CAL_CHANNELS], *chp[ADAPTER_MAX_CAL_CHANNELS];
    Lineagent__V1__CalibrationPoint pt[ADAPTER_MAX_CAL_CHANNELS][ADAPTER_MAX_CAL_POINTS];
    Lineagent__V1__CalibrationPoint *ptp[ADAPTER_MAX_CAL_CHANNELS][ADAPTER_MAX_CAL_POINTS];
    int n = res->n_cal_channels < ADAPTER_MAX_CAL_CHANNELS ? res->n_cal_channels : ADAPTER_MAX_CAL_CHANNELS;
    for (int i = 0; i < n; i++) {
        const adapter_cal_channel *c = &res->cal_channels[i];
        lineagent__v1__calibration_channel__init(&ch[i]);
        ch[i].name = (char *)c->name;
        ch[i].offset = c->offset;
        ch[i].gain = c->gain;
        ch[i].residual = c->residual;
        int np = c->n_points < ADAPTER_MAX_CAL_POINTS ? c->n_points : ADAPTER_MAX_CAL_POINTS;
        for (int k = 0; k < np; k++) {
            lineagent__v1__calibration_point__init(&pt[i][k]);
            pt[i][k].reference = c->points[k].reference;
            pt[i][k].raw = c->points[k].raw;
            ptp[i][k] = &pt[i][k];
        }
        ch[i].n_points = (size_t)np;
        ch[i].points = ptp[i];
        chp[i] = &ch[i];
    }
    b.n_channels = (size_t)n;
    b.channels = chp;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_CALIBRATED;
    ev.unit_calibrated = &b;
    return ev_commit(em, &ev);
}

int line_ev_unit_locked(line_emitter *em, const unit *u, const char *st_name, const adapter_result *res)
{
    TraceEvent ev;
    Lineagent__V1__UnitLocked b = LINEAGENT__V1__UNIT_LOCKED__INIT;
    ev_init_unit(&ev, u, st_name);
    b.verified = res->lock_verified;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_LOCKED;
    ev.unit_locked = &b;
    return ev_commit(em, &ev);
}

int line_ev_unit_failed(line_emitter *em, const unit *u, const char *st_name, Step step, const char *mode,
                        const char *detail)
{
    TraceEvent ev;
    Lineagent__V1__UnitFailed b = LINEAGENT__V1__UNIT_FAILED__INIT;
    ev_init_unit(&ev, u, st_name);
    b.step = step;
    b.failure_mode = (char *)mode;
    b.detail = (char *)detail;
    b.station_site = u->site;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_FAILED;
    ev.unit_failed = &b;
    log_info("unit %s failed %s at %s: %s (%s)", u->st.board_id, order_step_name(step), st_name, mode, detail);
    return ev_commit(em, &ev);
}

/* Exactly one per unit: its outcome and the firmware verified in it. */
int line_ev_unit_completed(line_emitter *em, const unit *u, const char *st_name, int passed)
{
    TraceEvent ev;
    Lineagent__V1__UnitCompleted b = LINEAGENT__V1__UNIT_COMPLETED__INIT;
    ev_init_unit(&ev, u, st_name);
    b.passed = passed;
    b.firmware_version = (char *)u->verified_version;
    b.firmware_sha256 = (char *)u->verified_sha256;
    ev.body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_COMPLETED;
    ev.unit_completed = &b;
    return ev_commit(em, &ev);
}
