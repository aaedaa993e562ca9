/* SPDX-License-Identifier: Apache-2.0 */
/* test_station.c - the station (core/station.c): its judgement of what an
 * adapter measured (the adapter's own limits, and the order's test items,
 * which replace the station's; a missing item fails), the least-squares
 * calibration fit and residual limit with write-back verified, the route
 * interlock, and its worker thread running a board's steps: no step after a
 * failure (rule W2, so a board failing TEST in a test-first flow is never
 * written), a board that skipped steps refused, gang sites independent.
 * Stations run the sim adapter, or the exec adapter with small scripts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "station.h"
#include "station_sink.h"
#include "tmpdir.h"

#define W LINEAGENT__V1__STEP__WRITE
#define V LINEAGENT__V1__STEP__VERIFY
#define T LINEAGENT__V1__STEP__TEST
#define C LINEAGENT__V1__STEP__CALIBRATE
#define L LINEAGENT__V1__STEP__LOCK

#define WAIT_MS 60000 /* for a station's boards to be done, under sanitizers on a busy machine */

static tmpdir tmp;
static const char *dir = tmp.path; /* the directory; "" outside setup..teardown */

static adapter_measurement item(const char *name, double low, double high, const char *unit)
{
    adapter_measurement m = {.low = low, .high = high};
    snprintf(m.name, sizeof m.name, "%s", name);
    snprintf(m.unit, sizeof m.unit, "%s", unit);
    return m;
}

static void measure(adapter_result *r, const char *name, double v, const char *unit)
{
    adapter_measurement *m = &r->measurements[r->n_measurements++];
    *m = item(name, -1e9, 1e9, unit); /* the station's own wide limits */
    m->value = v;
}

/* The keys of a sim station that fails every step (fail_rate "1") or none ("0"). */
static void sim_keys(kv_pair kv[2], const char *fail_rate)
{
    kv[0] = (kv_pair){"sim.fail_rate", (char *)fail_rate};
    kv[1] = (kv_pair){"sim.boards_per_second", "1000"};
}

/* The adapter of station s1, opened directly (no worker thread). */
static void *adapter_open_with(const char *name, uint32_t steps, kv_pair *kv, size_t n)
{
    station_config st = {.name = "s1", .adapter = (char *)name, .steps_mask = steps, .keys = kv, .n_keys = n};
    const adapter *ad = adapter_find(name);
    void *state = NULL;
    char err[256];
    assert_non_null(ad);
    assert_int_equal(ad->open(&state, &st, err, sizeof err), 0);
    return state;
}

static void *sim_open(const char *fail_rate)
{
    kv_pair kv[2];
    sim_keys(kv, fail_rate);
    return adapter_open_with("sim", 0, kv, 2);
}

/* ---- judging measurements ---------------------------------------------- */

static void test_measurements_are_judged_against_limits(void **state)
{
    const adapter *ad = adapter_find("sim");
    void *s = sim_open("1");
    adapter_step_ctx ctx = {.station = "s1", .lot_id = "LOT", .board_id = "LOT-B-t", .image = NULL, NULL, NULL};
    adapter_result r = {0};
    ad->test(s, &ctx, &r);
    assert_int_equal(station_judge(&r), -1);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "limit_exceeded");
    assert_non_null(strstr(r.detail, "vbus"));
    ad->close(s);
    s = sim_open("0");
    memset(&r, 0, sizeof r);
    ad->test(s, &ctx, &r);
    assert_int_equal(station_judge(&r), 0);
    assert_true(r.passed);
    assert_int_equal(r.n_measurements, 2);
    ad->close(s);
}

/* The limits the exec adapter read from a program's JSON lines
 * (adapters/test_adapter_exec.c) are the ones the station judges against. */
static void test_exec_measurements_are_judged_against_their_limits(void **state)
{
    const char *prog = tmpdir_script(&tmp, "fct.sh",
                                     "echo '{\"name\":\"vbus\",\"value\":5.02,\"unit\":\"V\",\"low\":4.75,\"high\":5.25}'\n"
                                     "echo '{\"name\":\"i_idle\",\"value\":0.031,\"unit\":\"A\"}'");
    assert_non_null(prog);
    kv_pair kv[] = {{"exec.program", (char *)prog}};
    void *s = adapter_open_with("exec", 1u << T, kv, 1);
    adapter_step_ctx ctx = {.station = "s1", .lot_id = "LOT", .board_id = "B1", .image = NULL};
    adapter_result r = {0};
    adapter_find("exec")->test(s, &ctx, &r);
    assert_int_equal(r.n_measurements, 2);
    assert_int_equal(station_judge(&r), 0);
    r.measurements[0].value = 4.5;
    assert_int_equal(station_judge(&r), -1);
    assert_string_equal(r.failure_mode, "limit_exceeded");
    adapter_find("exec")->close(s);
}

static void test_order_items_judged_by_agent(void **state)
{
    adapter_measurement items[] = {item("vbus", 4.75, 5.25, "V"), item("i_idle", 0, 0.05, "A")};
    adapter_result r = {.passed = 1};
    measure(&r, "vbus", 5.01, "V");
    measure(&r, "i_idle", 0.02, "A");
    measure(&r, "extra", 7, "");
    assert_int_equal(station_judge_items(&r, items, 2), 0);
    assert_true(r.passed);
    assert_true(r.measurements[0].low == 4.75 && r.measurements[0].high == 5.25);

    /* inside the station's limits, outside the order's */
    adapter_result r2 = {.passed = 1};
    measure(&r2, "vbus", 5.4, "V");
    measure(&r2, "i_idle", 0.02, "A");
    assert_int_equal(station_judge_items(&r2, items, 2), -1);
    assert_false(r2.passed);
    assert_string_equal(r2.failure_mode, "limit_exceeded");
    assert_non_null(strstr(r2.detail, "vbus"));

    /* an item the station did not measure: failed, and recorded */
    adapter_result r3 = {.passed = 1};
    measure(&r3, "vbus", 5.0, "V");
    assert_int_equal(station_judge_items(&r3, items, 2), -1);
    assert_string_equal(r3.failure_mode, "measurement_missing");
    assert_non_null(strstr(r3.detail, "i_idle"));
    assert_int_equal(r3.n_measurements, 2);
    assert_string_equal(r3.measurements[1].name, "i_idle");
    assert_true(isnan(r3.measurements[1].value));

    /* the same number in another unit is not the same measurement */
    adapter_result r4 = {.passed = 1};
    measure(&r4, "vbus", 5000, "mV");
    measure(&r4, "i_idle", 0.02, "A");
    assert_int_equal(station_judge_items(&r4, items, 2), -1);
    assert_string_equal(r4.failure_mode, "unit_mismatch");
}

static void test_least_squares_fit(void **state)
{
    adapter_cal_point exact[] = {{1, 0}, {3, 1}, {5, 2}, {7, 3}}; /* reference = 2 * raw + 1 */
    double off, gain, res;
    assert_int_equal(station_fit(exact, 4, &off, &gain, &res), 0);
    assert_true(fabs(gain - 2) < 1e-12 && fabs(off - 1) < 1e-12 && res < 1e-12);
    adapter_cal_point noisy[] = {{0.0, 0.0}, {1.1, 1.0}, {1.9, 2.0}, {3.0, 3.0}};
    assert_int_equal(station_fit(noisy, 4, &off, &gain, &res), 0);
    assert_true(fabs(gain - 0.98) < 1e-9 && fabs(off - 0.03) < 1e-9);
    assert_true(fabs(res - 0.09) < 1e-9);
    adapter_cal_point same[] = {{1, 2}, {3, 2}};
    assert_int_equal(station_fit(same, 2, &off, &gain, &res), -1);
    assert_int_equal(station_fit(exact, 1, &off, &gain, &res), -1);
}

static void test_interlock(void **state)
{
    Step flow[] = {T, W, V, L};
    uint32_t t = 1u << T, tw = t | 1u << W, twv = tw | 1u << V;
    assert_true(station_interlock_ok(flow, 4, 0, 0));
    assert_false(station_interlock_ok(flow, 4, 1, 0));   /* untested board may not be written */
    assert_true(station_interlock_ok(flow, 4, 1, t));
    assert_false(station_interlock_ok(flow, 4, 3, tw));  /* unverified board may not be locked */
    assert_true(station_interlock_ok(flow, 4, 3, twv));
}

/* ---- through the station worker thread: sim ---------------------------- */

static const uint8_t img_data[] = "image";
static char img_sha[65];
static adapter_image img;

static void run_job(const char *fail_rate, station_job *job, station_sink *c)
{
    kv_pair kv[2];
    sim_keys(kv, fail_rate);
    station_config cs = {.name = "st", .adapter = "sim", .steps_mask = 1u << W | 1u << V | 1u << T | 1u << L,
                         .keys = kv, .n_keys = 2};
    char err[256];
    station_sink_init(c);
    station *st = station_start(&cs, station_sink_post, c, err, sizeof err);
    assert_non_null(st);
    station_submit(st, job);
    station_sink_wait(c, 1, 5000);
    station_stop(st, NULL);
    assert_int_equal(c->done, 1);
}

static void test_station_loads_and_runs_its_steps(void **state)
{
    station_job job = {.load = 1, .lot_id = "LOT-9", .idx = 2, .flow = {W, V, T}, .n_flow = 3, .image = &img};
    station_sink c;
    run_job("0", &job, &c);
    assert_int_equal(c.n, 5); /* loaded, 3 steps, done */
    assert_int_equal(c.r[0]->kind, STATION_LOADED);
    assert_string_equal(c.r[0]->board_id, "LOT-9-B00003");
    assert_int_equal(c.r[1]->step, W);
    assert_int_equal(c.r[2]->step, V);
    assert_true(c.r[2]->res.passed);
    assert_int_equal(c.r[3]->step, T);
    assert_int_equal(c.r[4]->kind, STATION_DONE);
    assert_int_equal(c.r[4]->next, 3);
    assert_false(c.r[4]->failed);
    station_sink_free(&c);
}

static void test_station_stops_at_first_failure(void **state)
{
    /* test-first: a board failing TEST is never written */
    station_job job = {.board_id = "LOT-9-B00001", .lot_id = "LOT-9", .flow = {T, W, V}, .n_flow = 3, .image = &img};
    station_sink c;
    run_job("1", &job, &c);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.r[0]->step, T);
    assert_false(c.r[0]->res.passed);
    assert_int_equal(c.r[1]->kind, STATION_DONE);
    assert_true(c.r[1]->failed);
    assert_int_equal(c.r[1]->next, 0);
    station_sink_free(&c);
}

static void test_station_refuses_board_that_skipped_steps(void **state)
{
    station_job job = {.board_id = "LOT-9-B00002", .lot_id = "LOT-9", .flow = {W, V, L}, .n_flow = 3, .from = 2,
                       .steps_done = 1u << W, .image = &img};
    station_sink c;
    run_job("0", &job, &c);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.r[0]->step, L);
    assert_string_equal(c.r[0]->res.failure_mode, "route_interlock");
    assert_true(c.r[1]->failed);
    station_sink_free(&c);
}

/* ---- through the station worker thread: exec --------------------------- */

static char prog[128];

static station *start_exec(station_sink *k, uint32_t steps)
{
    kv_pair kv[] = {{"exec.program", prog}, {"exec.args", "{step} {board_id} {image} {offset} {gain} {channel}"}};
    station_config cfg = {.name = "fct1", .adapter = "exec", .steps_mask = steps, .keys = kv, .n_keys = 2};
    station_sink_init(k);
    char err[256];
    station *st = station_start(&cfg, station_sink_post, k, err, sizeof err);
    assert_non_null(st);
    return st;
}

static station_job job(const char *board, const Step *flow, int n)
{
    station_job j = {.n_flow = n, .image = &img};
    snprintf(j.board_id, sizeof j.board_id, "%s", board);
    snprintf(j.lot_id, sizeof j.lot_id, "LOT");
    memcpy(j.flow, flow, (size_t)n * sizeof *flow);
    return j;
}

static int lines(const char *name)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static int setup(void **state)
{
    if (tmpdir_make(&tmp, "test-station") != 0) return -1;
    digest_sha256_hex(img_data, sizeof img_data, img_sha);
    img = (adapter_image){"1.0.0", img_sha, img_data, sizeof img_data, 0};
    /* test: B-bad fails; write: counted; calibrate: y = 2x + 1 (one point off
     * by 0.5 for B-noisy); calibrate_write: echoes what it was given, except for
     * B-stuck whose memory keeps the old gain. */
    char body[2048];
    snprintf(body, sizeof body,
             "case $1 in\n"
             " test) [ \"$2\" = B-bad ] && { echo '{\"name\":\"vbus\",\"value\":4.1,\"unit\":\"V\"}'; exit 1; }\n"
             "       echo '{\"name\":\"vbus\",\"value\":5.0,\"unit\":\"V\"}';;\n"
             " write) echo \"$2\" >> %s/writes;;\n"
             " verify) echo \"{\\\"readback_sha256\\\":\\\"$(sha256sum < \"$3\" | cut -c1-64)\\\"}\";;\n"
             " calibrate) vref='[-0.2,0],[0.3,1],[0.8,2]'; [ \"$2\" = B-chnoisy ] && vref='[0,0],[1.5,1],[2,2]'\n"
             "   case $2 in B-ch|B-chnoisy) echo \"{\\\"channels\\\":[{\\\"name\\\":\\\"vbus\\\",\\\"points\\\":"
             "[[1,0],[3,1],[5,2]]},{\\\"name\\\":\\\"vref\\\",\\\"points\\\":[$vref]}]}\"; exit 0;;\n"
             "   B-chbad) echo '{\"channels\":[{\"name\":\"vbus\",\"points\":[[1,0,9],[3,1]]}]}'; exit 0;; esac\n"
             "   ys='1 3 5 7'; [ \"$2\" = B-noisy ] && ys='1 3 5.5 7'; x=0\n"
             "   for y in $ys; do echo \"{\\\"reference\\\":$y,\\\"raw\\\":$x}\"; x=$((x+1)); done;;\n"
             " calibrate_write) g=$5; [ \"$2\" = B-stuck ] && g=1; echo \"{\\\"offset\\\":$4,\\\"gain\\\":$g}\"\n"
             "   if [ -n \"$6\" ]; then echo \"$2 $6 $4 $5\" >> %s/chwrites; else echo \"$2\" >> %s/calwrites; fi;;\n"
             "esac; exit 0",
             dir, dir, dir);
    const char *path = tmpdir_script(&tmp, "station.sh", body);
    if (!path) return -1;
    snprintf(prog, sizeof prog, "%s", path);
    return 0;
}

static int teardown(void **state) { return tmpdir_remove(&tmp); }

static void test_test_first_never_writes_failed_board(void **state)
{
    station_sink k;
    station *st = start_exec(&k, 1u << T | 1u << W | 1u << V);
    Step flow[] = {T, W, V};
    station_job a = job("B-good", flow, 3), b = job("B-bad", flow, 3), c = job("B-good2", flow, 3);
    station_submit(st, &a);
    station_submit(st, &b);
    station_submit(st, &c);
    assert_int_equal(station_sink_wait(&k, 3, WAIT_MS), 3);
    station_stop(st, NULL);
    assert_int_equal(lines("writes"), 2); /* B-good and B-good2 only */
    const station_result *t = station_sink_step(&k, "B-bad", T);
    assert_non_null(t);
    assert_false(t->res.passed);
    assert_string_equal(t->res.failure_mode, "exit_status");
    assert_int_equal(t->res.n_measurements, 1); /* the failing record is kept */
    assert_null(station_sink_step(&k, "B-bad", W));
    assert_true(station_sink_step(&k, "B-good2", V)->res.passed);
    station_sink_free(&k);
}

static void test_order_limits_at_station(void **state)
{
    station_sink k;
    station *st = start_exec(&k, 1u << T | 1u << W | 1u << V);
    Step flow[] = {T, W, V};
    station_job a = job("B-lim", flow, 3);
    a.limits[0] = item("vbus", 4.9, 5.1, "V");
    a.limits[1] = item("vref", 3.2, 3.4, "V");
    a.n_limits = 2;
    station_submit(st, &a);
    assert_int_equal(station_sink_wait(&k, 1, WAIT_MS), 1);
    station_stop(st, NULL);
    const station_result *t = station_sink_step(&k, "B-lim", T);
    assert_false(t->res.passed);
    assert_string_equal(t->res.failure_mode, "measurement_missing");
    assert_null(station_sink_step(&k, "B-lim", W)); /* not written after a failed test */
    station_sink_free(&k);
}

static void test_calibration_fit_write_readback(void **state)
{
    station_sink k;
    station *st = start_exec(&k, 1u << C);
    Step flow[] = {C};
    station_job a = job("B-cal", flow, 1), b = job("B-noisy", flow, 1), c = job("B-stuck", flow, 1);
    a.cal_max_residual = b.cal_max_residual = c.cal_max_residual = 0.1;
    station_submit(st, &a);
    station_submit(st, &b);
    station_submit(st, &c);
    assert_int_equal(station_sink_wait(&k, 3, WAIT_MS), 3);
    station_stop(st, NULL);
    const station_result *r = station_sink_step(&k, "B-cal", C);
    assert_true(r->res.passed);
    assert_true(fabs(r->res.cal_gain - 2) < 1e-9 && fabs(r->res.cal_offset - 1) < 1e-9);
    assert_int_equal(r->res.n_cal_points, 4);
    r = station_sink_step(&k, "B-noisy", C);
    assert_false(r->res.passed);
    assert_string_equal(r->res.failure_mode, "calibration_residual");
    r = station_sink_step(&k, "B-stuck", C);
    assert_false(r->res.passed);
    assert_string_equal(r->res.failure_mode, "calibration_readback_mismatch");
    assert_int_equal(lines("calwrites"), 2); /* not for a failed fit */
    station_sink_free(&k);
}

/* Named calibration channels: each fitted on its own, written with its
 * name, the first repeated in the single-channel fields; a channel off its
 * line fails the unit naming it, before anything is written; a malformed
 * report is an error. */
static void test_calibration_channels(void **state)
{
    station_sink k;
    station *st = start_exec(&k, 1u << C);
    Step flow[] = {C};
    station_job a = job("B-ch", flow, 1), b = job("B-chnoisy", flow, 1), c = job("B-chbad", flow, 1);
    a.cal_max_residual = b.cal_max_residual = c.cal_max_residual = 0.1;
    station_submit(st, &a);
    station_submit(st, &b);
    station_submit(st, &c);
    assert_int_equal(station_sink_wait(&k, 3, WAIT_MS), 3);
    station_stop(st, NULL);
    const station_result *r = station_sink_step(&k, "B-ch", C);
    assert_true(r->res.passed);
    assert_int_equal(r->res.n_cal_channels, 2);
    const adapter_cal_channel *v = &r->res.cal_channels[0], *f = &r->res.cal_channels[1];
    assert_string_equal(v->name, "vbus");
    assert_int_equal(v->n_points, 3);
    assert_true(fabs(v->gain - 2) < 1e-9 && fabs(v->offset - 1) < 1e-9 && v->residual < 1e-9);
    assert_string_equal(f->name, "vref");
    assert_true(fabs(f->points[2].reference - 0.8) < 1e-12 && fabs(f->points[2].raw - 2) < 1e-12);
    assert_true(fabs(f->gain - 0.5) < 1e-9 && fabs(f->offset + 0.2) < 1e-9 && f->residual < 1e-9);
    /* old consumers: the single-channel fields are the first channel's */
    assert_true(fabs(r->res.cal_gain - 2) < 1e-9 && fabs(r->res.cal_offset - 1) < 1e-9);
    assert_int_equal(r->res.n_cal_points, 3);
    r = station_sink_step(&k, "B-chnoisy", C);
    assert_false(r->res.passed);
    assert_string_equal(r->res.failure_mode, "calibration_residual");
    assert_non_null(strstr(r->res.detail, "channel vref"));
    r = station_sink_step(&k, "B-chbad", C);
    assert_false(r->res.passed);
    assert_string_equal(r->res.failure_mode, "calibration_failed");
    /* each channel of B-ch written with its name and its own coefficients; none of the failed boards */
    char p[128], l1[128] = "", l2[128] = "";
    snprintf(p, sizeof p, "%s/chwrites", dir);
    FILE *fp = fopen(p, "r");
    assert_non_null(fp);
    assert_non_null(fgets(l1, sizeof l1, fp));
    assert_non_null(fgets(l2, sizeof l2, fp));
    assert_null(fgets(p, sizeof p, fp));
    fclose(fp);
    assert_int_equal(strncmp(l1, "B-ch vbus 1", 11), 0);
    assert_int_equal(strncmp(l2, "B-ch vref -0.2", 14), 0);
    assert_non_null(strstr(l2, " 0.5"));
    station_sink_free(&k);
}

/* Two sites: one board hangs on site 0 while site 1 runs the rest. */
static void test_gang_sites_run_independently(void **state)
{
    char body[256], path[128];
    snprintf(body, sizeof body, "[ \"$2\" = B-slow ] && sleep 1.5\necho \"$2 $3\" >> %s/order", dir);
    snprintf(path, sizeof path, "%s", tmpdir_script(&tmp, "gang.sh", body));
    kv_pair kv[] = {{"exec.program", path}, {"exec.args", "{step} {board_id} {site}"}};
    station_config cfg = {.name = "gang", .adapter = "exec", .steps_mask = 1u << T, .keys = kv, .n_keys = 2,
                          .sites = 2};
    station_sink k;
    station_sink_init(&k);
    char err[256];
    station *st = station_start(&cfg, station_sink_post, &k, err, sizeof err);
    assert_non_null(st);
    Step flow[] = {T};
    const char *boards[] = {"B-slow", "B-2", "B-3", "B-4"};
    for (int i = 0; i < 4; i++) {
        station_job j = job(boards[i], flow, 1);
        station_submit(st, &j);
        usleep(50000); /* B-slow is taken first */
    }
    assert_int_equal(station_sink_wait(&k, 4, WAIT_MS), 4);
    station_stop(st, NULL);
    snprintf(path, sizeof path, "%s/order", dir);
    FILE *o = fopen(path, "r");
    char line[4][64];
    for (int i = 0; i < 4; i++) assert_non_null(fgets(line[i], sizeof line[i], o));
    fclose(o);
    uint32_t slow = station_sink_step(&k, "B-slow", T)->site;
    char want[32];
    for (int i = 0; i < 3; i++) { /* the other site went on meanwhile */
        snprintf(want, sizeof want, "%s %u\n", boards[i + 1], 1 - slow);
        assert_string_equal(line[i], want);
        assert_int_equal(station_sink_step(&k, boards[i + 1], T)->site, 1 - slow);
    }
    snprintf(want, sizeof want, "B-slow %u\n", slow);
    assert_string_equal(line[3], want);
    station_sink_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_measurements_are_judged_against_limits),
        cmocka_unit_test(test_exec_measurements_are_judged_against_their_limits),
        cmocka_unit_test(test_order_items_judged_by_agent),
        cmocka_unit_test(test_least_squares_fit),
        cmocka_unit_test(test_interlock),
        cmocka_unit_test(test_station_loads_and_runs_its_steps),
        cmocka_unit_test(test_station_stops_at_first_failure),
        cmocka_unit_test(test_station_refuses_board_that_skipped_steps),
        cmocka_unit_test(test_test_first_never_writes_failed_board),
        cmocka_unit_test(test_order_limits_at_station),
        cmocka_unit_test(test_calibration_fit_write_readback),
        cmocka_unit_test(test_calibration_channels),
        cmocka_unit_test(test_gang_sites_run_independently),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
