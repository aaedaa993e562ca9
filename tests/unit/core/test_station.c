/* test_fct.c - FCT, calibration and the test-first flow at the station:
 * the order's test items judged by the agent (limits replace the station's,
 * a missing item fails), the least-squares calibration fit and residual
 * limit with write-back verified, and a board failing TEST in a test-first
 * flow never written. Stations run the exec adapter with small scripts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "eol.h"
#include "firmware.h"
#include "order.h"
#include "station.h"

#define W LINEAGENT__V1__STEP__WRITE
#define V LINEAGENT__V1__STEP__VERIFY
#define T LINEAGENT__V1__STEP__TEST
#define C LINEAGENT__V1__STEP__CALIBRATE

static char dir[64];

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

static void test_end_of_line_check(void **state)
{
    char buf[256];
    eol_def all = {1, 1, 1};
    eol_unit good = {"1.1.0", "ab12", "1.1.0", "ab12", 1, 1, 1};
    assert_null(eol_check(&all, &good, buf, sizeof buf));
    eol_unit u = good;
    u.verified_version = "1.0.0"; /* an old image verified in it */
    assert_non_null(strstr(eol_check(&all, &u, buf, sizeof buf), "firmware_version: verified \"1.0.0\", release \"1.1.0\""));
    u = good;
    u.verified_sha256 = "";
    assert_true(strncmp(eol_check(&all, &u, buf, sizeof buf), "firmware_sha256:", 16) == 0);
    u = good;
    u.release_version = NULL; /* never bound to a release */
    assert_true(strncmp(eol_check(&all, &u, buf, sizeof buf), "firmware_version:", 17) == 0);
    u = good;
    u.provisioned = 0;
    assert_string_equal(eol_check(&all, &u, buf, sizeof buf), "provisioning: not present");
    u = good;
    u.calibrated = 0;
    assert_string_equal(eol_check(&all, &u, buf, sizeof buf), "calibration: not present");
    u = good;
    u.lock_verified = 0; /* every test passed, the debug port is open */
    assert_string_equal(eol_check(&all, &u, buf, sizeof buf), "lock: debug port lock not verified");
    eol_def none = {0, 0, 0}; /* what the flow does not promise is not asked */
    eol_unit bare = {"1.1.0", "ab12", "1.1.0", "ab12", 0, 0, 0};
    assert_null(eol_check(&none, &bare, buf, sizeof buf));
}

/* ---- the order's test items ------------------------------------------ */

#define ORDER_HEAD "{\"orderId\":\"WO-1\",\"revision\":1,\"lotId\":\"L1\",\"product\":\"P\",\"quantity\":2," \
    "\"firmware\":{\"version\":\"1.0.0\",\"sha256\":\"" \
    "0000000000000000000000000000000000000000000000000000000000000000\",\"url\":\"file:///x\",\"build\":\"PRODUCTION\"}," \
    "\"flow\":[\"WRITE\",\"VERIFY\",\"TEST\"]"

static const char *order_reason(const char *tail)
{
    static char reason[256];
    char buf[2048];
    snprintf(buf, sizeof buf, "%s%s}", ORDER_HEAD, tail);
    order_limits lim = {.max_quantity = 100};
    JobOrder *o = order_parse(buf, strlen(buf), reason, sizeof reason);
    if (o && order_validate(o, &lim, reason, sizeof reason) == 0) snprintf(reason, sizeof reason, "valid");
    order_free(o);
    return reason;
}

static void test_order_test_items_json(void **state)
{
    const char *j = ORDER_HEAD ",\"testItems\":[{\"name\":\"vbus\",\"low\":4.75,\"high\":5.25,\"unit\":\"V\"},"
                    "{\"name\":\"i_idle\",\"low\":\"-Infinity\",\"high\":0.05,\"unit\":\"A\"}],"
                    "\"testPlan\":{\"version\":\"FCT-3.2\",\"sha256\":\"" 
                    "abababababababababababababababababababababababababababababababab\"},\"calibrationMaxResidual\":0.02}";
    char reason[256];
    JobOrder *o = order_parse(j, strlen(j), reason, sizeof reason);
    assert_non_null(o);
    assert_int_equal(o->n_test_items, 2);
    assert_string_equal(o->test_items[0]->name, "vbus");
    assert_true(o->test_items[0]->low == 4.75 && o->test_items[0]->high == 5.25);
    assert_true(isinf(o->test_items[1]->low) && o->test_items[1]->low < 0);
    assert_string_equal(o->test_plan->version, "FCT-3.2");
    assert_true(o->calibration_max_residual == 0.02);
    order_limits lim = {.max_quantity = 100};
    assert_int_equal(order_validate(o, &lim, reason, sizeof reason), 0);
    order_free(o);

    assert_string_equal(order_reason(",\"testItems\":[{\"name\":\"vbus\",\"low\":5}]"),
                        "test_items[0] (vbus): low 5 must not exceed high 0");
    assert_non_null(strstr(order_reason(",\"testItems\":[{\"name\":\"a\",\"high\":1},{\"name\":\"a\",\"high\":2}]"),
                           "lists a twice"));
    assert_non_null(strstr(order_reason(",\"testItems\":[{\"name\":\"bad name\",\"high\":1}]"), "test_items[0].name"));
    assert_non_null(strstr(order_reason(",\"testItems\":[{\"name\":\"a\",\"high\":\"lots\"}]"), "testItems[0].high"));
    assert_non_null(strstr(order_reason(",\"testItems\":[{\"nmae\":\"a\"}]"), "nmae"));
    assert_non_null(strstr(order_reason(",\"testPlan\":{\"version\":\"1\",\"sha256\":\"ABC\"}"), "test_plan.sha256"));
    assert_non_null(strstr(order_reason(",\"calibrationMaxResidual\":-1"), "calibration_max_residual"));
    assert_string_equal(order_reason(",\"testItems\":[{\"name\":\"a\",\"low\":-1,\"high\":1}]"), "valid");
}

/* ---- a station running the exec adapter ------------------------------ */

typedef struct sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    station_result *r[64];
    int n, done;
} sink;

static void sink_post(void *ud, station_result *first, station_result *last)
{
    sink *k = ud;
    pthread_mutex_lock(&k->mu);
    for (station_result *r = first, *next; r; r = next) {
        next = r->chain;
        if (k->n < 64) k->r[k->n++] = r;
        else free(r);
    }
    if (last->kind == STATION_DONE) k->done++;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

static void sink_wait(sink *k, int done)
{
    pthread_mutex_lock(&k->mu);
    while (k->done < done) pthread_cond_wait(&k->cv, &k->mu);
    pthread_mutex_unlock(&k->mu);
}

static void sink_free(sink *k)
{
    for (int i = 0; i < k->n; i++) free(k->r[i]);
}

/* The step result for a board, or NULL. */
static const station_result *sink_step(sink *k, const char *board, Step s)
{
    for (int i = 0; i < k->n; i++)
        if (k->r[i]->kind == STATION_STEP && k->r[i]->step == s && !strcmp(k->r[i]->board_id, board)) return k->r[i];
    return NULL;
}

static const char *prog;

static station *start_exec(sink *k, uint32_t steps)
{
    kv_pair kv[] = {{"exec.program", (char *)prog}, {"exec.args", "{step} {board_id} {image} {offset} {gain}"}};
    station_config cfg = {.name = "fct1", .adapter = "exec", .steps_mask = steps, .keys = kv, .n_keys = 2};
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    char err[256];
    station *st = station_start(&cfg, sink_post, k, err, sizeof err);
    assert_non_null(st);
    return st;
}

static const uint8_t img_data[] = "image";
static char img_sha[65];
static adapter_image img;

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
    snprintf(dir, sizeof dir, "/tmp/test-fct-XXXXXX");
    assert_non_null(mkdtemp(dir));
    digest_sha256_hex(img_data, sizeof img_data, img_sha);
    img = (adapter_image){"1.0.0", img_sha, img_data, sizeof img_data, 0};
    static char path[128];
    snprintf(path, sizeof path, "%s/station.sh", dir);
    FILE *f = fopen(path, "w");
    /* test: B-bad fails; write: counted; calibrate: y = 2x + 1 (one point off
     * by 0.5 for B-noisy); calibrate_write: echoes what it was given, except for
     * B-stuck whose memory keeps the old gain. */
    fprintf(f, "#!/bin/bash\n"
               "case $1 in\n"
               " test) [ \"$2\" = B-bad ] && { echo '{\"name\":\"vbus\",\"value\":4.1,\"unit\":\"V\"}'; exit 1; }\n"
               "       echo '{\"name\":\"vbus\",\"value\":5.0,\"unit\":\"V\"}';;\n"
               " write) echo \"$2\" >> %s/writes;;\n"
               " verify) ;;\n"
               " calibrate) ys='1 3 5 7'; [ \"$2\" = B-noisy ] && ys='1 3 5.5 7'; x=0\n"
               "   for y in $ys; do echo \"{\\\"reference\\\":$y,\\\"raw\\\":$x}\"; x=$((x+1)); done;;\n"
               " calibrate_write) g=$5; [ \"$2\" = B-stuck ] && g=1; echo \"{\\\"offset\\\":$4,\\\"gain\\\":$g}\"; echo \"$2\" >> %s/calwrites;;\n"
               "esac; exit 0\n",
            dir, dir);
    fclose(f);
    chmod(path, 0700);
    prog = path;
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_test_first_never_writes_failed_board(void **state)
{
    sink k = {0};
    station *st = start_exec(&k, 1u << T | 1u << W | 1u << V);
    Step flow[] = {T, W, V};
    station_job a = job("B-good", flow, 3), b = job("B-bad", flow, 3), c = job("B-good2", flow, 3);
    station_submit(st, &a);
    station_submit(st, &b);
    station_submit(st, &c);
    sink_wait(&k, 3);
    station_stop(st, NULL);
    assert_int_equal(lines("writes"), 2); /* B-good and B-good2 only */
    const station_result *t = sink_step(&k, "B-bad", T);
    assert_non_null(t);
    assert_false(t->res.passed);
    assert_string_equal(t->res.failure_mode, "exit_status");
    assert_int_equal(t->res.n_measurements, 1); /* the failing record is kept */
    assert_null(sink_step(&k, "B-bad", W));
    assert_true(sink_step(&k, "B-good2", V)->res.passed);
    sink_free(&k);
}

static void test_order_limits_at_station(void **state)
{
    sink k = {0};
    station *st = start_exec(&k, 1u << T | 1u << W | 1u << V);
    Step flow[] = {T, W, V};
    station_job a = job("B-lim", flow, 3);
    a.limits[0] = item("vbus", 4.9, 5.1, "V");
    a.limits[1] = item("vref", 3.2, 3.4, "V");
    a.n_limits = 2;
    station_submit(st, &a);
    sink_wait(&k, 1);
    station_stop(st, NULL);
    const station_result *t = sink_step(&k, "B-lim", T);
    assert_false(t->res.passed);
    assert_string_equal(t->res.failure_mode, "measurement_missing");
    assert_null(sink_step(&k, "B-lim", W)); /* not written after a failed test */
    sink_free(&k);
}

static void test_calibration_fit_write_readback(void **state)
{
    sink k = {0};
    station *st = start_exec(&k, 1u << C);
    Step flow[] = {C};
    station_job a = job("B-cal", flow, 1), b = job("B-noisy", flow, 1), c = job("B-stuck", flow, 1);
    a.cal_max_residual = b.cal_max_residual = c.cal_max_residual = 0.1;
    station_submit(st, &a);
    station_submit(st, &b);
    station_submit(st, &c);
    sink_wait(&k, 3);
    station_stop(st, NULL);
    const station_result *r = sink_step(&k, "B-cal", C);
    assert_true(r->res.passed);
    assert_true(fabs(r->res.cal_gain - 2) < 1e-9 && fabs(r->res.cal_offset - 1) < 1e-9);
    assert_int_equal(r->res.n_cal_points, 4);
    r = sink_step(&k, "B-noisy", C);
    assert_false(r->res.passed);
    assert_string_equal(r->res.failure_mode, "calibration_residual");
    r = sink_step(&k, "B-stuck", C);
    assert_false(r->res.passed);
    assert_string_equal(r->res.failure_mode, "calibration_readback_mismatch");
    assert_int_equal(lines("calwrites"), 2); /* not for a failed fit */
    sink_free(&k);
}

/* Two sites: one board hangs on site 0 while site 1 runs the rest. */
static void test_gang_sites_run_independently(void **state)
{
    char path[128];
    snprintf(path, sizeof path, "%s/gang.sh", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "#!/bin/bash\n[ \"$2\" = B-slow ] && sleep 1.5\necho \"$2 $3\" >> %s/order\n", dir);
    fclose(f);
    chmod(path, 0700);
    kv_pair kv[] = {{"exec.program", path}, {"exec.args", "{step} {board_id} {site}"}};
    station_config cfg = {.name = "gang", .adapter = "exec", .steps_mask = 1u << T, .keys = kv, .n_keys = 2,
                          .sites = 2};
    sink k = {0};
    pthread_mutex_init(&k.mu, NULL);
    pthread_cond_init(&k.cv, NULL);
    char err[256];
    station *st = station_start(&cfg, sink_post, &k, err, sizeof err);
    assert_non_null(st);
    Step flow[] = {T};
    const char *boards[] = {"B-slow", "B-2", "B-3", "B-4"};
    for (int i = 0; i < 4; i++) {
        station_job j = job(boards[i], flow, 1);
        station_submit(st, &j);
        usleep(50000); /* B-slow is taken first */
    }
    sink_wait(&k, 4);
    station_stop(st, NULL);
    snprintf(path, sizeof path, "%s/order", dir);
    FILE *o = fopen(path, "r");
    char line[4][64];
    for (int i = 0; i < 4; i++) assert_non_null(fgets(line[i], sizeof line[i], o));
    fclose(o);
    uint32_t slow = sink_step(&k, "B-slow", T)->site;
    char want[32];
    for (int i = 0; i < 3; i++) { /* the other site went on meanwhile */
        snprintf(want, sizeof want, "%s %u\n", boards[i + 1], 1 - slow);
        assert_string_equal(line[i], want);
        assert_int_equal(sink_step(&k, boards[i + 1], T)->site, 1 - slow);
    }
    snprintf(want, sizeof want, "B-slow %u\n", slow);
    assert_string_equal(line[3], want);
    sink_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_items_judged_by_agent),
        cmocka_unit_test(test_least_squares_fit),
        cmocka_unit_test(test_end_of_line_check),
        cmocka_unit_test(test_order_test_items_json),
        cmocka_unit_test(test_test_first_never_writes_failed_board),
        cmocka_unit_test(test_order_limits_at_station),
        cmocka_unit_test(test_calibration_fit_write_readback),
        cmocka_unit_test(test_gang_sites_run_independently),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
