/* SPDX-License-Identifier: Apache-2.0 */
/* test_line.c - the line coordinator's transitions, driven for real: a
 * real spool in a temporary directory, sim stations from an INI
 * configuration, intake decisions built here (no MQTT), and assertions on
 * the trace events committed to the spool (decoded with protobuf-c) and on
 * the spool's lot and unit rows. Feeding is held with line_set_paused so
 * the tests decide how many boards are on the line at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "adapter_sim.h"
#include "clock.h"
#include "digest.h"
#include "event.h"
#include "line.h"
#include "spool_fixture.h"

#define LT_WAIT_MS 60000 /* ASan on two shared cores: generous */
#define LT_IMAGE_LEN 512

typedef struct lt_events {
    TraceEvent **ev;
    size_t n, cap;
} lt_events;

typedef struct lt {
    fixture *fx;
    config cfg;
    int have_cfg;
    spool *sp;
    line *ln;
    int answers, accepted;  /* answers the MES got (publish_result) */
    int wakeups;            /* events_committed calls */
    lt_events ev;
} lt;

/* ---- fixture --------------------------------------------------------- */

static void lt_publish_result(void *ud, const char *json)
{
    lt *t = ud;
    t->answers++;
    if (strstr(json, "\"accepted\":true")) t->accepted++;
}

static void lt_events_committed(void *ud) { ((lt *)ud)->wakeups++; }

static void lt_events_clear(lt_events *e)
{
    for (size_t i = 0; i < e->n; i++) lineagent__v1__trace_event__free_unpacked(e->ev[i], NULL);
    e->n = 0;
}

static int lt_setup(void **state)
{
    void *fx;
    if (setup(&fx)) return -1;
    lt *t = calloc(1, sizeof *t);
    t->fx = fx;
    *state = t;
    return 0;
}

static int lt_teardown(void **state)
{
    lt *t = *state;
    line_stop(t->ln);
    spool_close(t->sp);
    if (t->have_cfg) config_free(&t->cfg);
    lt_events_clear(&t->ev);
    free(t->ev.ev);
    void *fx = t->fx;
    free(t);
    return teardown(&fx);
}

static void lt_start_line(lt *t)
{
    static const line_hooks base = {lt_publish_result, lt_events_committed, NULL, NULL, NULL};
    line_hooks hooks = base;
    hooks.ud = t;
    char err[512] = "";
    t->ln = line_start(&t->cfg, t->sp, &hooks, err, sizeof err);
    if (!t->ln) fail_msg("line_start: %s", err);
}

/* Loads a configuration with the given [station] sections, opens the spool
 * and starts the line with feeding held. */
static void lt_start(lt *t, const char *stations)
{
    char path[160], err[512] = "";
    snprintf(path, sizeof path, "%s/agent.conf", t->fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "[agent]\nsite = plant1\nline = t1\nspool = %s\n"
            "[mqtt]\nuri = tcp://127.0.0.1:1\n"
            "[kafka]\nbootstrap.servers = embedded\n%s",
            t->fx->path, stations);
    fclose(f);
    if (config_load(&t->cfg, path, err, sizeof err) != 0) fail_msg("config_load: %s", err);
    t->have_cfg = 1;
    t->sp = open_ok(t->fx->path, NULL);
    lt_start_line(t);
    line_set_paused(t->ln, 1);
}

/* A process restart: the line stops with whatever is uncommitted, the spool
 * is reopened, a new line resumes from it. */
static void lt_restart(lt *t)
{
    line_stop(t->ln);
    t->ln = NULL;
    spool_close(t->sp);
    t->sp = open_ok(t->fx->path, NULL);
    lt_start_line(t);
}

/* An intake decision accepting revision rev of order "O-<lot>": its image is
 * derived from the version, and cached in the spool as the intake does. */
static void lt_post_order(lt *t, const char *lot, uint32_t rev, uint32_t qty, const char *version,
                          const char *flow)
{
    intake_decision *d = calloc(1, sizeof *d);
    d->image = malloc(LT_IMAGE_LEN);
    d->image_len = LT_IMAGE_LEN;
    for (size_t i = 0; i < LT_IMAGE_LEN; i++) d->image[i] = (uint8_t)(version[i % strlen(version)] + i);
    char sha[65], json[1024], reason[512] = "";
    digest_sha256_hex(d->image, d->image_len, sha);
    snprintf(json, sizeof json,
             "{\"orderId\":\"O-%s\",\"revision\":%u,\"lotId\":\"%s\",\"product\":\"PCBA-100\",\"quantity\":%u,"
             "\"firmware\":{\"version\":\"%s\",\"sha256\":\"%s\",\"url\":\"file:///fw.bin\",\"build\":\"PRODUCTION\"},"
             "\"flow\":%s}",
             lot, rev, lot, qty, version, sha, flow);
    d->order = order_parse_json(json, strlen(json), reason, sizeof reason);
    if (!d->order) fail_msg("order_parse_json: %s", reason);
    assert_int_equal(spool_firmware_put(t->sp, sha, d->image, d->image_len), 0);
    line_post_decision(t->ln, d);
}

/* ---- driving the line ------------------------------------------------ */

typedef int (*lt_pred)(lt *t, const void *arg);

static void lt_run_until(lt *t, lt_pred pred, const void *arg)
{
    int64_t deadline = clock_mono_ms() + LT_WAIT_MS;
    while (!pred(t, arg)) {
        assert_int_equal(line_step(t->ln, 20), 0);
        if (clock_mono_ms() > deadline) fail_msg("the line did not get there in %d ms", LT_WAIT_MS);
    }
}

static int lt_idle(lt *t, const void *arg)
{
    (void)arg;
    return line_in_flight(t->ln) == 0;
}

static int lt_lot_done(lt *t, const void *lot_id)
{
    spool_lot l;
    return spool_lot_get(t->sp, lot_id, &l) == 1 && !l.active;
}

/* Runs until the lot is complete and then until the line is empty, so that
 * anything the lot did not count would still show. */
static void lt_run_lot(lt *t, const char *lot_id)
{
    lt_run_until(t, lt_lot_done, lot_id);
    lt_run_until(t, lt_idle, NULL);
}

static int lt_count_in_progress_cb(void *ud, const spool_unit *u)
{
    (void)u;
    (*(int *)ud)++;
    return 0;
}

static int lt_in_progress(lt *t, const char *lot_id)
{
    int n = 0;
    assert_true(spool_unit_list_in_progress(t->sp, lot_id, lt_count_in_progress_cb, &n) >= 0);
    return n;
}

static int lt_has_unit_in_progress(lt *t, const void *lot_id) { return lt_in_progress(t, lot_id) > 0; }

static int lt_copy_board_cb(void *ud, const spool_unit *u)
{
    snprintf(ud, SPOOL_ID_MAX, "%s", u->board_id);
    return 0;
}

/* Commits the order just posted: the MES is told it was accepted; feeding
 * is held, so no board loads. */
static void lt_accept(lt *t)
{
    int answers = t->answers, accepted = t->accepted;
    assert_int_equal(line_step(t->ln, 1000), 0);
    assert_int_equal(t->answers, answers + 1);
    assert_int_equal(t->accepted, accepted + 1);
    assert_int_equal(line_in_flight(t->ln), 0);
}

/* Loads exactly one board (one station starts the flow, and a feed gives
 * each idle one a board) and holds feeding again. */
static void lt_feed_one(lt *t)
{
    line_set_paused(t->ln, 0);
    assert_int_equal(line_step(t->ln, 0), 0);
    line_set_paused(t->ln, 1);
    assert_int_equal(line_in_flight(t->ln), 1);
}

/* ---- reading the spool's events ------------------------------------- */

static int lt_collect_cb(void *ud, const spool_event *se)
{
    lt_events *e = ud;
    TraceEvent *ev = lineagent__v1__trace_event__unpack(NULL, se->len, se->payload);
    assert_non_null(ev);
    assert_string_equal(event_type(ev), se->type);
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 64;
        e->ev = realloc(e->ev, e->cap * sizeof *e->ev);
    }
    e->ev[e->n++] = ev;
    return 0;
}

/* Every event committed so far, in seq order (nothing is delivered here). */
static lt_events *lt_events_read(lt *t)
{
    lt_events_clear(&t->ev);
    uint64_t after = 0;
    int n;
    while ((n = spool_pending_page(t->sp, after, 500, lt_collect_cb, &t->ev)) > 0) after = t->ev.ev[t->ev.n - 1]->seq;
    assert_int_equal(n, 0);
    for (size_t i = 1; i < t->ev.n; i++) assert_int_equal(t->ev.ev[i]->seq, t->ev.ev[i - 1]->seq + 1);
    return &t->ev;
}

static size_t lt_count(const lt_events *e, int body)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++) n += (int)e->ev[i]->body_case == body;
    return n;
}

/* The index of the first event with this body after index from (and for
 * this board, when board is given); -1 if none. */
static long lt_find(const lt_events *e, size_t from, int body, const char *board)
{
    for (size_t i = from; i < e->n; i++)
        if ((int)e->ev[i]->body_case == body && (!board || strcmp(e->ev[i]->board_id, board) == 0)) return (long)i;
    return -1;
}

/* The bodies of one board's events, in order, into out; their count. */
static size_t lt_board_bodies(const lt_events *e, const char *board, int *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n && n < max; i++)
        if (strcmp(e->ev[i]->board_id, board) == 0) out[n++] = (int)e->ev[i]->body_case;
    return n;
}

static spool_lot lt_lot(lt *t, const char *lot_id)
{
    spool_lot l;
    assert_int_equal(spool_lot_get(t->sp, lot_id, &l), 1);
    return l;
}

#define EV(x) LINEAGENT__V1__TRACE_EVENT__BODY_##x

/* The lot ended as it should: every board of it loaded and counted once,
 * one lot_completed as the last event with those counts, and the spool's
 * lot inactive with the same counts and no unit left in progress. */
static void lt_assert_lot_end(lt *t, const lt_events *e, const char *lot_id, uint32_t passed, uint32_t failed)
{
    const TraceEvent *last = e->ev[e->n - 1];
    assert_int_equal(last->body_case, EV(LOT_COMPLETED));
    assert_string_equal(last->lot_id, lot_id);
    assert_int_equal(lt_count(e, EV(LOT_COMPLETED)), 1);
    assert_int_equal(lt_count(e, EV(UNIT_COMPLETED)), passed + failed);
    assert_int_equal(last->lot_completed->quantity, passed + failed);
    assert_int_equal(last->lot_completed->passed, passed);
    assert_int_equal(last->lot_completed->failed, failed);
    /* per release: the counts add up to the lot's; every board here is at
     * its first attempt, so the first-pass yield is the pass rate */
    uint32_t vp = 0, vf = 0;
    for (size_t i = 0; i < last->lot_completed->n_versions; i++) {
        vp += last->lot_completed->versions[i]->passed;
        vf += last->lot_completed->versions[i]->failed;
    }
    assert_int_equal(vp, passed);
    assert_int_equal(vf, failed);
    assert_true(fabs(last->lot_completed->first_pass_yield - (double)passed / (passed + failed)) < 1e-9);
    /* every event carries the spool's agent instance id */
    const char *inst = spool_instance_id(t->sp);
    assert_int_equal(strlen(inst), 36);
    for (size_t i = 0; i < e->n; i++) assert_string_equal(e->ev[i]->agent_instance_id, inst);
    spool_lot l = lt_lot(t, lot_id);
    assert_int_equal(l.active, 0);
    assert_int_equal(l.loaded, passed + failed);
    assert_int_equal(l.passed, passed);
    assert_int_equal(l.failed, failed);
    assert_int_equal(lt_in_progress(t, lot_id), 0);
}

/* ---- the transitions ------------------------------------------------- */

/* A board's whole flow over four stations: every step's event in flow
 * order, then exactly one unit_completed carrying the verified firmware;
 * the lot is started once, completed once with the right counts, and the
 * spool holds it inactive with no unit left in progress. */
static void test_board_flow_in_order(void **state)
{
    lt *t = *state;
    lt_start(t, "[station fct]\nadapter = sim\nsteps = test\nsim.boards_per_second = 1000\nsim.step_ms = 30\n"
                "[station prog]\nadapter = sim\nsteps = write, verify\nsites = 2\n"
                "[station cal]\nadapter = sim\nsteps = calibrate\n"
                "[station lock]\nadapter = sim\nsteps = lock\n");
    lt_post_order(t, "FLOW", 1, 3, "1.0.0", "[\"TEST\",\"WRITE\",\"VERIFY\",\"CALIBRATE\",\"LOCK\"]");
    lt_accept(t);
    line_set_paused(t->ln, 0);
    lt_run_lot(t, "FLOW");

    lt_events *e = lt_events_read(t);
    assert_true(e->n >= 2);
    assert_int_equal(e->ev[0]->body_case, EV(ORDER_ACCEPTED));
    assert_int_equal(e->ev[1]->body_case, EV(LOT_STARTED));
    assert_int_equal(lt_count(e, EV(LOT_STARTED)), 1);
    assert_int_equal(lt_count(e, EV(UNIT_FAILED)), 0);
    lt_assert_lot_end(t, e, "FLOW", 3, 0);
    const char *sha = e->ev[1]->lot_started->firmware->sha256;

    static const int want[] = {EV(UNIT_TESTED), EV(UNIT_WRITTEN), EV(UNIT_CALIBRATED), EV(UNIT_LOCKED),
                               EV(UNIT_COMPLETED)};
    for (long i = -1; (i = lt_find(e, (size_t)(i + 1), EV(UNIT_COMPLETED), NULL)) >= 0;) {
        const char *board = e->ev[i]->board_id;
        int got[16];
        size_t n = lt_board_bodies(e, board, got, 16);
        assert_int_equal(n, sizeof want / sizeof *want);
        for (size_t k = 0; k < n; k++) assert_int_equal(got[k], want[k]);
        const TraceEvent *w = e->ev[lt_find(e, 0, EV(UNIT_WRITTEN), board)];
        assert_string_equal(w->unit_written->version, "1.0.0");
        assert_string_equal(w->unit_written->sha256, sha);
        assert_string_equal(w->unit_written->readback_sha256, sha);
        assert_string_equal(w->unit_written->write_station, "prog");
        assert_int_equal(w->unit_written->order_revision, 1);
        assert_int_equal(w->unit_written->image_size, LT_IMAGE_LEN);
        assert_string_equal(w->unit_written->verify_method, "sha256");
        assert_string_equal(w->unit_written->serial, ""); /* not provisioned */
        assert_true(w->station_site < 2);
        assert_int_equal(w->attempt, 1);
        /* the tester's step takes sim.step_ms; its event says so */
        const TraceEvent *ts = e->ev[lt_find(e, 0, EV(UNIT_TESTED), board)];
        assert_true(ts->step_duration_ms >= 30);
        assert_true(ts->step_duration_ms < 30000);
        assert_int_equal(ts->station_site, 0);
        assert_true(e->ev[lt_find(e, 0, EV(UNIT_LOCKED), board)]->unit_locked->verified);
        const TraceEvent *c = e->ev[i];
        assert_true(c->unit_completed->passed);
        assert_string_equal(c->station, "lock");
        assert_string_equal(c->unit_completed->firmware_version, "1.0.0");
        assert_string_equal(c->unit_completed->firmware_sha256, sha);
    }

    assert_string_equal(lt_lot(t, "FLOW").written_version, "1.0.0");
    assert_true(t->wakeups > 0);
}

/* Calibration channels: the sim board reports raw points per named channel
 * (sim.cal_channels), the agent fits each; unit_calibrated lists the
 * channels with their coefficients and points, and its single-channel
 * fields (1-4) repeat the first channel's for old consumers. */
static void test_calibration_channels_in_events(void **state)
{
    lt *t = *state;
    lt_start(t, "[station prog]\nadapter = sim\nsteps = write, verify\nsim.boards_per_second = 1000\n"
                "[station cal]\nadapter = sim\nsteps = calibrate\nsim.cal_channels = vbus, vref\n"
                "[station lock]\nadapter = sim\nsteps = lock\n");
    lt_post_order(t, "CALCH", 1, 2, "1.0.0", "[\"WRITE\",\"VERIFY\",\"CALIBRATE\",\"LOCK\"]");
    lt_accept(t);
    line_set_paused(t->ln, 0);
    lt_run_lot(t, "CALCH");
    lt_events *e = lt_events_read(t);
    lt_assert_lot_end(t, e, "CALCH", 2, 0);
    assert_int_equal(lt_count(e, EV(UNIT_CALIBRATED)), 2);
    for (long i = -1; (i = lt_find(e, (size_t)(i + 1), EV(UNIT_CALIBRATED), NULL)) >= 0;) {
        const Lineagent__V1__UnitCalibrated *c = e->ev[i]->unit_calibrated;
        assert_string_equal(e->ev[i]->station, "cal");
        assert_int_equal(c->n_channels, 2);
        assert_string_equal(c->channels[0]->name, "vbus");
        assert_string_equal(c->channels[1]->name, "vref");
        for (size_t k = 0; k < c->n_channels; k++) {
            const Lineagent__V1__CalibrationChannel *ch = c->channels[k];
            assert_int_equal(ch->n_points, 4);
            assert_true(fabs(ch->gain - 1) < 0.01 && fabs(ch->offset) < 0.011 && ch->residual < 1e-9);
            for (size_t p = 0; p < ch->n_points; p++) /* the agent's fit maps each raw reading to its reference */
                assert_true(fabs(ch->gain * ch->points[p]->raw + ch->offset - ch->points[p]->reference) < 1e-9);
            assert_true(fabs(ch->points[3]->reference - 3.0 * (double)(k + 1)) < 1e-12);
        }
        assert_true(c->channels[0]->gain != c->channels[1]->gain); /* fitted one by one */
        assert_true(c->offset == c->channels[0]->offset && c->gain == c->channels[0]->gain);
        assert_true(c->residual == c->channels[0]->residual);
        assert_int_equal(c->points, 4);
    }
}

/* A failed step ends the unit: unit_failed names the step and mode, the
 * outcome is a failed unit_completed, and no later step runs (rule W2): the
 * write corrupts every image, so VERIFY fails and LOCK never happens. */
static void test_step_failure_ends_unit(void **state)
{
    lt *t = *state;
    lt_start(t, "[station prog]\nadapter = sim\nsteps = write, verify\nsim.fail_rate = 1\n"
                "sim.boards_per_second = 1000\n"
                "[station lock]\nadapter = sim\nsteps = lock\n");
    lt_post_order(t, "FAIL", 1, 2, "1.0.0", "[\"WRITE\",\"VERIFY\",\"LOCK\"]");
    lt_accept(t);
    line_set_paused(t->ln, 0);
    lt_run_lot(t, "FAIL");

    lt_events *e = lt_events_read(t);
    assert_int_equal(lt_count(e, EV(UNIT_FAILED)), 2);
    assert_int_equal(lt_count(e, EV(UNIT_WRITTEN)), 0);
    assert_int_equal(lt_count(e, EV(UNIT_LOCKED)), 0);
    for (long i = -1; (i = lt_find(e, (size_t)(i + 1), EV(UNIT_FAILED), NULL)) >= 0;) {
        const TraceEvent *f = e->ev[i];
        assert_int_equal(f->unit_failed->step, LINEAGENT__V1__STEP__VERIFY);
        assert_string_equal(f->unit_failed->failure_mode, "verify_mismatch");
        assert_string_equal(f->station, "prog");
        int got[16];
        assert_int_equal(lt_board_bodies(e, f->board_id, got, 16), 2);
        assert_int_equal(got[0], EV(UNIT_FAILED));
        assert_int_equal(got[1], EV(UNIT_COMPLETED));
        const TraceEvent *c = e->ev[lt_find(e, (size_t)i, EV(UNIT_COMPLETED), f->board_id)];
        assert_false(c->unit_completed->passed);
        assert_string_equal(c->unit_completed->firmware_version, "");
    }
    lt_assert_lot_end(t, e, "FAIL", 0, 2);
}

/* A revision with another firmware mid-lot (rule R4): boards written before
 * it keep the old release, boards after it take the new one, and exactly
 * one version_changeover names the last old and the first new board. */
static void test_changeover_binds_boards(void **state)
{
    lt *t = *state;
    lt_start(t, "[station prog]\nadapter = sim\nsteps = write, verify\nsim.boards_per_second = 1000\n");
    lt_post_order(t, "CHG", 1, 4, "1.0.0", "[\"WRITE\",\"VERIFY\"]");
    lt_accept(t);
    for (int i = 0; i < 2; i++) {
        lt_feed_one(t);
        lt_run_until(t, lt_idle, NULL);
    }
    lt_events *e = lt_events_read(t);
    assert_int_equal(lt_count(e, EV(UNIT_COMPLETED)), 2);
    size_t before = e->n;
    char old_last[SPOOL_ID_MAX] = "";
    for (long i = -1; (i = lt_find(e, (size_t)(i + 1), EV(UNIT_WRITTEN), NULL)) >= 0;)
        snprintf(old_last, sizeof old_last, "%s", e->ev[i]->board_id);

    lt_post_order(t, "CHG", 2, 4, "2.0.0", "[\"WRITE\",\"VERIFY\"]");
    lt_accept(t);
    line_set_paused(t->ln, 0);
    lt_run_lot(t, "CHG");

    e = lt_events_read(t);
    assert_int_equal(lt_count(e, EV(LOT_STARTED)), 1);
    assert_int_equal(lt_count(e, EV(UNIT_WRITTEN)), 4);
    assert_int_equal(lt_count(e, EV(VERSION_CHANGEOVER)), 1);
    for (size_t i = 0; i < e->n; i++) {
        if (e->ev[i]->body_case != EV(UNIT_WRITTEN)) continue;
        const Lineagent__V1__UnitWritten *w = e->ev[i]->unit_written;
        assert_string_equal(w->version, i < before ? "1.0.0" : "2.0.0");
        assert_int_equal(w->order_revision, i < before ? 1 : 2);
        const TraceEvent *c = e->ev[lt_find(e, i, EV(UNIT_COMPLETED), e->ev[i]->board_id)];
        assert_string_equal(c->unit_completed->firmware_version, w->version);
        assert_string_equal(c->unit_completed->firmware_sha256, w->sha256);
    }
    long first_new = lt_find(e, before, EV(UNIT_WRITTEN), NULL);
    long co = lt_find(e, 0, EV(VERSION_CHANGEOVER), NULL);
    assert_int_equal(co, first_new + 1); /* committed with the first new write */
    const Lineagent__V1__VersionChangeover *c = e->ev[co]->version_changeover;
    assert_string_equal(c->from_version, "1.0.0");
    assert_string_equal(c->to_version, "2.0.0");
    assert_int_equal(c->from_revision, 1);
    assert_int_equal(c->to_revision, 2);
    assert_string_equal(c->last_board_old, old_last);
    assert_string_equal(c->first_board_new, e->ev[first_new]->board_id);
    lt_assert_lot_end(t, e, "CHG", 4, 0);
    const Lineagent__V1__LotCompleted *lc = e->ev[e->n - 1]->lot_completed;
    assert_int_equal(lc->n_versions, 2); /* in the order first bound */
    assert_string_equal(lc->versions[0]->version, "1.0.0");
    assert_int_equal(lc->versions[0]->passed, 2);
    assert_string_equal(lc->versions[1]->version, "2.0.0");
    assert_string_equal(lc->versions[1]->sha256, e->ev[first_new]->unit_written->sha256);
    assert_int_equal(lc->versions[1]->passed, 2);
    spool_lot l = lt_lot(t, "CHG");
    assert_string_equal(l.written_version, "2.0.0");
    assert_int_equal(l.written_revision, 2);
}

static int lt_passed_at_least(lt *t, const void *arg)
{
    spool_lot l;
    return spool_lot_get(t->sp, "GANG", &l) == 1 && l.passed >= *(const uint32_t *)arg;
}

/* The changeover with gang sites (rule R4): four sites with random step
 * times finish out of order, and the firmware changes mid-lot. By write
 * order (the simulated flash's), every board written before the boundary
 * got the old image and every one after it the new; exactly one
 * version_changeover names the last old and the first new board of that
 * order, and each unit_written's version is its side's. */
static void test_changeover_gang_sites(void **state)
{
    lt *t = *state;
    /* Boards arrive about as fast as four sites take them, so a few are in
     * flight at the prog station (bound to a release) when the order
     * changes, and none waits long in its queue. */
    lt_start(t, "[station fct]\nadapter = sim\nsteps = test\nsim.boards_per_second = 100\n"
                "[station prog]\nadapter = sim\nsteps = write, verify\nsites = 4\nsim.step_ms = 2\n"
                "sim.step_jitter_ms = 25\nsim.seed = 11\n");
    enum { QTY = 40 };
    lt_post_order(t, "GANG", 1, QTY, "1.0.0", "[\"TEST\",\"WRITE\",\"VERIFY\"]");
    lt_accept(t);
    line_set_paused(t->ln, 0);
    uint32_t some = 12;
    lt_run_until(t, lt_passed_at_least, &some);
    lt_post_order(t, "GANG", 2, QTY, "2.0.0", "[\"TEST\",\"WRITE\",\"VERIFY\"]");
    lt_run_lot(t, "GANG");

    lt_events *e = lt_events_read(t);
    assert_int_equal(lt_count(e, EV(UNIT_WRITTEN)), QTY);
    assert_int_equal(lt_count(e, EV(VERSION_CHANGEOVER)), 1);
    const char *old_sha = e->ev[lt_find(e, 0, EV(LOT_STARTED), NULL)]->lot_started->firmware->sha256;
    static adapter_sim_write w[2 * QTY];
    size_t n = adapter_sim_writes("GANG-", w, 2 * QTY);
    assert_int_equal(n, QTY); /* each board written once */
    size_t k = 0;
    while (k < n && strcmp(w[k].sha256, old_sha) == 0) k++;
    assert_true(k > 0 && k < n);
    for (size_t i = 0; i < n; i++) {
        const TraceEvent *uw = e->ev[lt_find(e, 0, EV(UNIT_WRITTEN), w[i].board_id)];
        assert_string_equal(uw->unit_written->version, i < k ? "1.0.0" : "2.0.0");
        assert_string_equal(uw->unit_written->sha256, w[i].sha256);
        if (i >= k) assert_string_not_equal(w[i].sha256, old_sha);
    }
    const Lineagent__V1__VersionChangeover *c = e->ev[lt_find(e, 0, EV(VERSION_CHANGEOVER), NULL)]->version_changeover;
    assert_string_equal(c->from_version, "1.0.0");
    assert_string_equal(c->to_version, "2.0.0");
    assert_string_equal(c->last_board_old, w[k - 1].board_id);
    assert_string_equal(c->first_board_new, w[k].board_id);
    lt_assert_lot_end(t, e, "GANG", QTY, 0);
}

/* A gang station that starts the flow loads a board on each of its sites
 * at once: with two sites, boards are written two at a time (their write
 * steps overlap in time), not one after another with a site idle. */
static void test_gang_first_station_loads_every_site(void **state)
{
    lt *t = *state;
    lt_start(t, "[station prog]\nadapter = sim\nsteps = write, verify\nsites = 2\nsim.boards_per_second = 1000\n"
                "sim.step_ms = 150\n");
    enum { QTY = 4 };
    lt_post_order(t, "NEST", 1, QTY, "1.0.0", "[\"WRITE\",\"VERIFY\"]");
    lt_accept(t);
    line_set_paused(t->ln, 0);
    lt_run_lot(t, "NEST");

    lt_events *e = lt_events_read(t);
    assert_int_equal(lt_count(e, EV(UNIT_WRITTEN)), QTY);
    int per_site[2] = {0, 0}, overlaps = 0;
    for (long i = -1; (i = lt_find(e, (size_t)(i + 1), EV(UNIT_WRITTEN), NULL)) >= 0;) {
        const TraceEvent *a = e->ev[i];
        assert_true(a->station_site < 2);
        per_site[a->station_site]++;
        for (long j = i; (j = lt_find(e, (size_t)(j + 1), EV(UNIT_WRITTEN), NULL)) >= 0;) {
            const TraceEvent *b = e->ev[j];
            /* each write step spans [time_ms - step_duration_ms, time_ms] */
            if (a->station_site != b->station_site && b->time_ms - (int64_t)b->step_duration_ms < a->time_ms &&
                a->time_ms - (int64_t)a->step_duration_ms < b->time_ms)
                overlaps++;
        }
    }
    assert_true(per_site[0] >= 1 && per_site[1] >= 1);
    assert_true(overlaps >= 1);
    lt_assert_lot_end(t, e, "NEST", QTY, 0);
}

/* The line stops with one board done and one mid-flow (loaded and
 * committed at the tester, its write not committed); a new line on the
 * reopened spool resumes the lot: the board mid-flow runs again and
 * completes once, no board is lost or counted twice, and lot_completed
 * counts every board once. */
static void test_resume_after_restart(void **state)
{
    lt *t = *state;
    lt_start(t, "[station fct]\nadapter = sim\nsteps = test\nsim.boards_per_second = 1000\n"
                "[station prog]\nadapter = sim\nsteps = write, verify\n");
    lt_post_order(t, "RES", 1, 4, "1.0.0", "[\"TEST\",\"WRITE\",\"VERIFY\"]");
    lt_accept(t);
    lt_feed_one(t);
    lt_run_until(t, lt_idle, NULL);
    lt_feed_one(t);
    lt_run_until(t, lt_has_unit_in_progress, "RES");
    spool_lot l = lt_lot(t, "RES");
    assert_int_equal(l.loaded, 2);
    assert_int_equal(l.passed, 1);
    assert_int_equal(lt_in_progress(t, "RES"), 1);
    char mid[SPOOL_ID_MAX] = "";
    assert_int_equal(spool_unit_list_in_progress(t->sp, "RES", lt_copy_board_cb, mid), 1);
    size_t before = lt_events_read(t)->n;
    assert_int_equal(lt_find(&t->ev, 0, EV(UNIT_COMPLETED), mid), -1);

    lt_restart(t);
    lt_run_lot(t, "RES");

    lt_events *e = lt_events_read(t);
    assert_int_equal(lt_count(e, EV(LOT_STARTED)), 1);
    for (long i = -1; (i = lt_find(e, (size_t)(i + 1), EV(UNIT_COMPLETED), NULL)) >= 0;) {
        assert_true(e->ev[i]->unit_completed->passed);
        for (long j = i + 1; (j = lt_find(e, (size_t)j, EV(UNIT_COMPLETED), NULL)) >= 0; j++)
            assert_string_not_equal(e->ev[i]->board_id, e->ev[j]->board_id);
    }
    /* the board that was mid-flow ran again and completed, under its own id */
    assert_true(lt_find(e, before, EV(UNIT_COMPLETED), mid) >= 0);
    lt_assert_lot_end(t, e, "RES", 4, 0);
}

/* The end-of-line check (rule E2) judges a unit that passed every step.
 * Its flow writes without a read-back (the intake refuses such an order;
 * the coordinator does not rely on that), so the unit's verified firmware
 * is not its release: end_of_line_mismatch, and the unit counts as failed. */
static void test_end_of_line_mismatch_fails_unit(void **state)
{
    lt *t = *state;
    lt_start(t, "[station prog]\nadapter = sim\nsteps = write, test\nsim.boards_per_second = 1000\n");
    lt_post_order(t, "EOL", 1, 1, "1.0.0", "[\"WRITE\",\"TEST\"]");
    lt_accept(t);
    line_set_paused(t->ln, 0);
    lt_run_lot(t, "EOL");

    lt_events *e = lt_events_read(t);
    long tested = lt_find(e, 0, EV(UNIT_TESTED), NULL);
    assert_true(tested >= 0);
    assert_true(e->ev[tested]->unit_tested->passed);
    const char *board = e->ev[tested]->board_id;
    int got[16];
    assert_int_equal(lt_board_bodies(e, board, got, 16), 3);
    assert_int_equal(got[1], EV(UNIT_FAILED));
    assert_int_equal(got[2], EV(UNIT_COMPLETED));
    const Lineagent__V1__UnitFailed *f = e->ev[lt_find(e, 0, EV(UNIT_FAILED), board)]->unit_failed;
    assert_int_equal(f->step, LINEAGENT__V1__STEP__STEP_UNSPECIFIED);
    assert_string_equal(f->failure_mode, "end_of_line_mismatch");
    assert_non_null(strstr(f->detail, "firmware_version"));
    assert_false(e->ev[lt_find(e, 0, EV(UNIT_COMPLETED), board)]->unit_completed->passed);
    lt_assert_lot_end(t, e, "EOL", 0, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_board_flow_in_order, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_calibration_channels_in_events, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_step_failure_ends_unit, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_changeover_binds_boards, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_changeover_gang_sites, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_gang_first_station_loads_every_site, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_resume_after_restart, lt_setup, lt_teardown),
        cmocka_unit_test_setup_teardown(test_end_of_line_mismatch_fails_unit, lt_setup, lt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
