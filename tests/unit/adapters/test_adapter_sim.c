/* test_adapter_sim.c - the simulated station and the station worker: flash
 * write/read-back, failure injection, limit judging, route interlock, and no
 * step after a failure (rule W2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "firmware.h"
#include "station.h"

#define W LINEAGENT__V1__STEP__WRITE
#define V LINEAGENT__V1__STEP__VERIFY
#define T LINEAGENT__V1__STEP__TEST
#define L LINEAGENT__V1__STEP__LOCK

static const uint8_t image_a[] = "firmware image A, version 1.0.0";
static const uint8_t image_b[] = "firmware image B, version 1.1.0";

static void *sim_open_with(const char *fail_rate)
{
    kv_pair kv[] = {{"sim.fail_rate", (char *)fail_rate}, {"sim.boards_per_second", "1000"}};
    station_config st = {.name = "s1", .adapter = "sim", .keys = kv, .n_keys = 2};
    const adapter *ad = adapter_find("sim");
    void *state = NULL;
    char err[256];
    assert_non_null(ad);
    assert_int_equal(ad->open(&state, &st, err, sizeof err), 0);
    return state;
}

static adapter_image make_image(const uint8_t *data, size_t len, const char *version, char sha[65])
{
    digest_sha256_hex(data, len, sha);
    return (adapter_image){version, sha, data, len, 0};
}

static void test_board_ids_repeat_per_lot_and_index(void **state)
{
    const adapter *ad = adapter_find("sim");
    void *s = sim_open_with("0");
    char id[65];
    assert_int_equal(ad->load_board(s, "LOT-7", 0, id, sizeof id), 0);
    assert_string_equal(id, "LOT-7-B00001");
    assert_int_equal(ad->load_board(s, "LOT-7", 41, id, sizeof id), 0);
    assert_string_equal(id, "LOT-7-B00042");
    ad->close(s);
}

static void test_write_then_verify(void **state)
{
    const adapter *ad = adapter_find("sim");
    void *s = sim_open_with("0");
    char sha_a[65], sha_b[65];
    adapter_image a = make_image(image_a, sizeof image_a, "1.0.0", sha_a);
    adapter_image b = make_image(image_b, sizeof image_b, "1.1.0", sha_b);
    adapter_step_ctx ctx = {.station = "s1", .lot_id = "LOT", .board_id = "LOT-B-wv", .image = &a, NULL, NULL};
    adapter_result r = {0};
    ad->write(s, &ctx, &r);
    assert_true(r.passed);
    memset(&r, 0, sizeof r);
    ad->verify(s, &ctx, &r);
    assert_true(r.passed);
    assert_string_equal(r.readback_sha256, sha_a);
    /* a board holding A checked against B: the wrong image is caught */
    ctx.image = &b;
    memset(&r, 0, sizeof r);
    ad->verify(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "verify_mismatch");
    /* a board never written reads back blank */
    ctx.board_id = "LOT-B-never";
    memset(&r, 0, sizeof r);
    ad->verify(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "verify_blank");
    ad->close(s);
}

static void test_injected_write_fault_is_caught_by_verify(void **state)
{
    const adapter *ad = adapter_find("sim");
    void *s = sim_open_with("1");
    char sha[65];
    adapter_image a = make_image(image_a, sizeof image_a, "1.0.0", sha);
    adapter_step_ctx ctx = {.station = "s1", .lot_id = "LOT", .board_id = "LOT-B-flip", .image = &a, NULL, NULL};
    adapter_result r = {0};
    ad->write(s, &ctx, &r);
    assert_true(r.passed); /* the programmer does not notice */
    memset(&r, 0, sizeof r);
    ad->verify(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "verify_mismatch");
    assert_string_not_equal(r.readback_sha256, sha);
    ad->close(s);
}

static void test_measurements_are_judged_against_limits(void **state)
{
    const adapter *ad = adapter_find("sim");
    void *s = sim_open_with("1");
    adapter_step_ctx ctx = {.station = "s1", .lot_id = "LOT", .board_id = "LOT-B-t", .image = NULL, NULL, NULL};
    adapter_result r = {0};
    ad->test(s, &ctx, &r);
    assert_int_equal(station_judge(&r), -1);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "limit_exceeded");
    assert_non_null(strstr(r.detail, "vbus"));
    ad->close(s);
    s = sim_open_with("0");
    memset(&r, 0, sizeof r);
    ad->test(s, &ctx, &r);
    assert_int_equal(station_judge(&r), 0);
    assert_true(r.passed);
    assert_int_equal(r.n_measurements, 2);
    ad->close(s);
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

/* ---- through the station worker thread -------------------------------- */

typedef struct collected {
    pthread_mutex_t lock;
    station_result *r[16];
    int n, done;
} collected;

static void collect(void *ud, station_result *first, station_result *last)
{
    collected *c = ud;
    pthread_mutex_lock(&c->lock);
    for (station_result *r = first, *next; r; r = next) {
        next = r->chain;
        if (c->n < 16) c->r[c->n++] = r;
        else free(r);
    }
    if (last->kind == STATION_DONE) c->done++;
    pthread_mutex_unlock(&c->lock);
}

static void run_job(const char *fail_rate, station_job *job, collected *c)
{
    kv_pair kv[] = {{"sim.fail_rate", (char *)fail_rate}, {"sim.boards_per_second", "1000"}};
    station_config cs = {.name = "st", .adapter = "sim", .steps_mask = 1u << W | 1u << V | 1u << T | 1u << L,
                         .keys = kv, .n_keys = 2};
    char err[256];
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    station *st = station_start(&cs, collect, c, err, sizeof err);
    assert_non_null(st);
    station_submit(st, job);
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&c->lock);
        int done = c->done;
        pthread_mutex_unlock(&c->lock);
        if (done) break;
        usleep(10000);
    }
    station_stop(st, NULL);
    assert_int_equal(c->done, 1);
}

static void free_collected(collected *c)
{
    for (int i = 0; i < c->n; i++) free(c->r[i]);
    pthread_mutex_destroy(&c->lock);
}

static void test_station_loads_and_runs_its_steps(void **state)
{
    char sha[65];
    adapter_image a = make_image(image_a, sizeof image_a, "1.0.0", sha);
    station_job job = {.load = 1, .lot_id = "LOT-9", .idx = 2, .flow = {W, V, T}, .n_flow = 3, .image = &a};
    collected c;
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
    free_collected(&c);
}

static void test_station_stops_at_first_failure(void **state)
{
    /* test-first: a board failing TEST is never written */
    char sha[65];
    adapter_image a = make_image(image_a, sizeof image_a, "1.0.0", sha);
    station_job job = {.board_id = "LOT-9-B00001", .lot_id = "LOT-9", .flow = {T, W, V}, .n_flow = 3, .image = &a};
    collected c;
    run_job("1", &job, &c);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.r[0]->step, T);
    assert_false(c.r[0]->res.passed);
    assert_int_equal(c.r[1]->kind, STATION_DONE);
    assert_true(c.r[1]->failed);
    assert_int_equal(c.r[1]->next, 0);
    free_collected(&c);
}

static void test_station_refuses_board_that_skipped_steps(void **state)
{
    char sha[65];
    adapter_image a = make_image(image_a, sizeof image_a, "1.0.0", sha);
    station_job job = {.board_id = "LOT-9-B00002", .lot_id = "LOT-9", .flow = {W, V, L}, .n_flow = 3, .from = 2,
                       .steps_done = 1u << W, .image = &a};
    collected c;
    run_job("0", &job, &c);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.r[0]->step, L);
    assert_string_equal(c.r[0]->res.failure_mode, "route_interlock");
    assert_true(c.r[1]->failed);
    free_collected(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_board_ids_repeat_per_lot_and_index),
        cmocka_unit_test(test_write_then_verify),
        cmocka_unit_test(test_injected_write_fault_is_caught_by_verify),
        cmocka_unit_test(test_measurements_are_judged_against_limits),
        cmocka_unit_test(test_interlock),
        cmocka_unit_test(test_station_loads_and_runs_its_steps),
        cmocka_unit_test(test_station_stops_at_first_failure),
        cmocka_unit_test(test_station_refuses_board_that_skipped_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
