/* SPDX-License-Identifier: Apache-2.0 */
/* test_metrics.c - the metric registry and its Prometheus text: counters,
 * gauges and alarms as rendered, station and site labels bounded and
 * registered once, failure modes capped into "other", label values escaped,
 * cumulative histogram buckets, and exact counts under concurrent adds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static char *render(void)
{
    size_t len = 0;
    char *s = metrics_render(&len);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    return s;
}

/* The value on the line that starts with series (name and labels), or -1. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    return -1;
}

static int reset(void **state)
{
    metrics_reset();
    return 0;
}

static void test_scalars_and_alarms(void **state)
{
    metrics_add(METRICS_EVENTS_DELIVERED, 7);
    metrics_add(METRICS_EVENTS_DELIVERED, 3);
    metrics_add(METRICS_KAFKA_ERRORS, 2);
    metrics_add(METRICS_ORDERS_ACCEPTED, 4);
    metrics_add(METRICS_ORDERS_REJECTED, 1);
    metrics_set(METRICS_EVENTS_SPOOLED, 120);
    metrics_set(METRICS_EVENTS_PENDING, 12);
    metrics_set(METRICS_OLDEST_PENDING_MS, 2500);
    metrics_set(METRICS_MQTT_CONNECTED, 1);
    metrics_set_alarm(METRICS_ALARM_SPOOL_BUSY, 1);
    metrics_set_alarm(METRICS_ALARM_FIXTURE_SITE_SUSPECT, 2);
    char *t = render();
    assert_true(value_of(t, "lineagent_events_delivered_total") == 10);
    assert_true(value_of(t, "lineagent_kafka_delivery_errors_total") == 2);
    assert_true(value_of(t, "lineagent_orders_total{result=\"accepted\"}") == 4);
    assert_true(value_of(t, "lineagent_orders_total{result=\"rejected\"}") == 1);
    assert_true(value_of(t, "lineagent_events_spooled_total") == 120);
    assert_true(value_of(t, "lineagent_events_pending") == 12);
    assert_true(value_of(t, "lineagent_oldest_pending_age_seconds") == 2.5);
    assert_true(value_of(t, "lineagent_mqtt_connected") == 1);
    /* every alarm has its gauge, 0 when down */
    const char *names[] = {"spool_full", "spool_busy", "spool_low_space", "spool_over_limit", "kafka_stalled",
                           "fixture_site_suspect", "firmware_corrupt"};
    const double want[] = {0, 1, 0, 0, 0, 2, 0};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char series[96];
        snprintf(series, sizeof series, "lineagent_alarm{alarm=\"%s\"}", names[i]);
        assert_true(value_of(t, series) == want[i]);
    }
    assert_non_null(strstr(t, "# TYPE lineagent_events_delivered_total counter\n"));
    assert_non_null(strstr(t, "# TYPE lineagent_events_pending gauge\n"));
    free(t);
    metrics_set_alarm(METRICS_ALARM_SPOOL_BUSY, 0);
    t = render();
    assert_true(value_of(t, "lineagent_alarm{alarm=\"spool_busy\"}") == 0);
    free(t);
}

static void test_stations_and_sites_bounded(void **state)
{
    int a = metrics_station("prog", 2);
    assert_int_equal(a, 0);
    assert_int_equal(metrics_station("prog", 2), a); /* idempotent by name */
    assert_int_equal(metrics_station_find("prog"), a);
    assert_int_equal(metrics_station_find("nope"), -1);
    metrics_unit(a, 0, 1);
    metrics_unit(a, 0, 1);
    metrics_unit(a, 1, 0);
    metrics_unit(a, 2, 1);  /* no site 2: ignored */
    metrics_unit(-1, 0, 1); /* unknown station: ignored */
    metrics_unit(99, 0, 1);
    char *t = render();
    assert_true(value_of(t, "lineagent_units_total{station=\"prog\",site=\"0\",outcome=\"passed\"}") == 2);
    assert_true(value_of(t, "lineagent_units_total{station=\"prog\",site=\"0\",outcome=\"failed\"}") == 0);
    assert_true(value_of(t, "lineagent_units_total{station=\"prog\",site=\"1\",outcome=\"failed\"}") == 1);
    assert_null(strstr(t, "site=\"2\""));
    free(t);
    for (int i = 1; i < METRICS_MAX_STATIONS; i++) {
        char name[32];
        snprintf(name, sizeof name, "st%d", i);
        assert_int_equal(metrics_station(name, 1), i);
    }
    assert_int_equal(metrics_station("one-too-many", 1), -1);
    assert_int_equal(metrics_station("prog", 2), 0); /* known names still resolve */
    assert_int_equal(metrics_station("big", METRICS_MAX_SITES + 10), -1);
}

static void test_sites_clamped(void **state)
{
    int s = metrics_station("gang", METRICS_MAX_SITES + 10);
    metrics_unit(s, METRICS_MAX_SITES - 1, 1);
    metrics_unit(s, METRICS_MAX_SITES, 1);
    char *t = render();
    char series[128];
    snprintf(series, sizeof series, "lineagent_units_total{station=\"gang\",site=\"%d\",outcome=\"passed\"}",
             METRICS_MAX_SITES - 1);
    assert_true(value_of(t, series) == 1);
    snprintf(series, sizeof series, "site=\"%d\"", METRICS_MAX_SITES);
    assert_null(strstr(t, series));
    free(t);
}

static void test_failures_capped_and_escaped(void **state)
{
    metrics_name_step(3, "test");
    metrics_step_failed(3, "vdd_low");
    metrics_step_failed(3, "vdd_low");
    metrics_step_failed(3, "say \"hi\"\\\n");
    for (int i = 0; i < METRICS_MAX_FAILURES + 5; i++) {
        char mode[32];
        snprintf(mode, sizeof mode, "m%d", i);
        metrics_step_failed(1, mode);
    }
    char *t = render();
    assert_true(value_of(t, "lineagent_step_failures_total{step=\"test\",mode=\"vdd_low\"}") == 2);
    assert_true(value_of(t, "lineagent_step_failures_total{step=\"test\",mode=\"say \\\"hi\\\"\\\\\\n\"}") == 1);
    assert_true(value_of(t, "lineagent_step_failures_total{step=\"unspecified\",mode=\"m0\"}") == 1);
    /* 64 pairs in all: vdd_low, the quoted one, m0..m61; the rest are "other" */
    char series[96];
    snprintf(series, sizeof series, "lineagent_step_failures_total{step=\"unspecified\",mode=\"m%d\"}",
             METRICS_MAX_FAILURES - 3);
    assert_true(value_of(t, series) == 1);
    snprintf(series, sizeof series, "mode=\"m%d\"", METRICS_MAX_FAILURES - 2);
    assert_null(strstr(t, series));
    assert_true(value_of(t, "lineagent_step_failures_total{step=\"any\",mode=\"other\"}") == 7);
    free(t);
}

static void test_histogram_cumulative(void **state)
{
    int s = metrics_station("fct", 1);
    metrics_name_step(3, "test");
    metrics_step_time(s, 3, 500000);       /* 0.5 ms */
    metrics_step_time(s, 3, 20000000);     /* 20 ms */
    metrics_step_time(s, 3, 120000000000); /* 120 s: +Inf only */
    metrics_step_time(s, 3, -1);           /* ignored */
    metrics_step_time(s, 9, 1000);         /* no such step: ignored */
    char *t = render();
    const char *p = "lineagent_step_duration_seconds_bucket{station=\"fct\",step=\"test\",le=";
    char series[160];
    snprintf(series, sizeof series, "%s\"0.001\"}", p);
    assert_true(value_of(t, series) == 1);
    snprintf(series, sizeof series, "%s\"0.01\"}", p);
    assert_true(value_of(t, series) == 1);
    snprintf(series, sizeof series, "%s\"0.025\"}", p);
    assert_true(value_of(t, series) == 2);
    snprintf(series, sizeof series, "%s\"60\"}", p);
    assert_true(value_of(t, series) == 2);
    snprintf(series, sizeof series, "%s\"+Inf\"}", p);
    assert_true(value_of(t, series) == 3);
    assert_true(value_of(t, "lineagent_step_duration_seconds_count{station=\"fct\",step=\"test\"}") == 3);
    double sum = value_of(t, "lineagent_step_duration_seconds_sum{station=\"fct\",step=\"test\"}");
    assert_true(sum > 120.0204 && sum < 120.0206);
    assert_null(strstr(t, "step=\"write\"")); /* a step never run has no series */
    free(t);
}

#define ADDERS 4
#define ADDS 50000

static void *adder(void *arg)
{
    int s = *(int *)arg;
    for (int i = 0; i < ADDS; i++) {
        metrics_unit(s, (uint32_t)(i & 1), 1);
        metrics_add(METRICS_EVENTS_DELIVERED, 1);
        if (i % 1000 == 0) metrics_step_failed(2, i % 2000 ? "a" : "b");
    }
    return NULL;
}

static void test_concurrent_adds_exact(void **state)
{
    int s = metrics_station("busy", 2);
    pthread_t th[ADDERS];
    for (int i = 0; i < ADDERS; i++) assert_int_equal(pthread_create(&th[i], NULL, adder, &s), 0);
    for (int k = 0; k < 20; k++) free(render()); /* scrapes meanwhile */
    for (int i = 0; i < ADDERS; i++) pthread_join(th[i], NULL);
    char *t = render();
    assert_true(value_of(t, "lineagent_units_total{station=\"busy\",site=\"0\",outcome=\"passed\"}") ==
                ADDERS * ADDS / 2);
    assert_true(value_of(t, "lineagent_units_total{station=\"busy\",site=\"1\",outcome=\"passed\"}") ==
                ADDERS * ADDS / 2);
    assert_true(value_of(t, "lineagent_events_delivered_total") == ADDERS * ADDS);
    assert_true(value_of(t, "lineagent_step_failures_total{step=\"unspecified\",mode=\"b\"}") == ADDERS * 25);
    assert_true(value_of(t, "lineagent_step_failures_total{step=\"unspecified\",mode=\"a\"}") == ADDERS * 25);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_scalars_and_alarms, reset),
        cmocka_unit_test_setup(test_stations_and_sites_bounded, reset),
        cmocka_unit_test_setup(test_sites_clamped, reset),
        cmocka_unit_test_setup(test_failures_capped_and_escaped, reset),
        cmocka_unit_test_setup(test_histogram_cumulative, reset),
        cmocka_unit_test_setup(test_concurrent_adds_exact, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
