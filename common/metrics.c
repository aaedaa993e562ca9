/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.c - the process's metric registry and its Prometheus rendering.
 * Every value is an atomic bumped with relaxed ordering; names and label
 * sets are written once, under reg_lock, before the count that publishes
 * them is released, so readers (the renderer, lookups) never lock. */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_NAME_MAX 65
#define METRICS_MODE_MAX 48

/* Step duration buckets, seconds: a probe exchange to a long flash erase. */
static const double metrics_buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,     2.5,  5,     10,   30,  60};
#define METRICS_N_BUCKETS (sizeof metrics_buckets / sizeof metrics_buckets[0])

typedef struct metrics_hist {
    atomic_uint_fast64_t bucket[METRICS_N_BUCKETS + 1]; /* not cumulative; last = +Inf */
    atomic_uint_fast64_t sum_ns;
} metrics_hist;

typedef struct metrics_station_slot {
    char name[METRICS_NAME_MAX];
    uint32_t sites;
    atomic_uint_fast64_t units[METRICS_MAX_SITES][2]; /* [site][passed] */
    metrics_hist steps[METRICS_MAX_STEPS];
} metrics_station_slot;

typedef struct metrics_failure {
    int step;
    char mode[METRICS_MODE_MAX];
    atomic_uint_fast64_t n;
} metrics_failure;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint_fast64_t counters[METRICS_N_COUNTERS];
static atomic_int_fast64_t gauges[METRICS_N_GAUGES];
static atomic_int_fast64_t alarms[METRICS_N_ALARMS];
static metrics_station_slot stations[METRICS_MAX_STATIONS];
static atomic_int n_stations;
static char step_names[METRICS_MAX_STEPS][16];
static metrics_failure failures[METRICS_MAX_FAILURES + 1]; /* the last: mode "other" */
static atomic_int n_failures;

static const char *const alarm_names[METRICS_N_ALARMS] = {
    "spool_full", "spool_busy", "spool_low_space", "spool_over_limit", "kafka_stalled", "fixture_site_suspect",
    "firmware_corrupt"};

void metrics_add(enum metrics_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}

void metrics_set(enum metrics_gauge g, int64_t v) { atomic_store_explicit(&gauges[g], v, memory_order_relaxed); }

void metrics_set_alarm(enum metrics_alarm a, int64_t raised)
{
    atomic_store_explicit(&alarms[a], raised, memory_order_relaxed);
}

int metrics_station_find(const char *name)
{
    int n = atomic_load_explicit(&n_stations, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (strcmp(stations[i].name, name) == 0) return i;
    return -1;
}

int metrics_station(const char *name, uint32_t sites)
{
    pthread_mutex_lock(&reg_lock);
    int i = metrics_station_find(name);
    if (i < 0 && atomic_load(&n_stations) < METRICS_MAX_STATIONS) {
        i = atomic_load(&n_stations);
        snprintf(stations[i].name, sizeof stations[i].name, "%s", name);
        stations[i].sites = sites < 1 ? 1 : sites > METRICS_MAX_SITES ? METRICS_MAX_SITES : sites;
        atomic_store_explicit(&n_stations, i + 1, memory_order_release);
    }
    pthread_mutex_unlock(&reg_lock);
    return i;
}

void metrics_name_step(int step, const char *name)
{
    if (step < 0 || step >= METRICS_MAX_STEPS) return;
    pthread_mutex_lock(&reg_lock);
    snprintf(step_names[step], sizeof step_names[step], "%s", name);
    pthread_mutex_unlock(&reg_lock);
}

static metrics_station_slot *station_slot(int station)
{
    return station >= 0 && station < atomic_load_explicit(&n_stations, memory_order_acquire) ? &stations[station]
                                                                                              : NULL;
}

void metrics_unit(int station, uint32_t site, int passed)
{
    metrics_station_slot *s = station_slot(station);
    if (s && site < s->sites) atomic_fetch_add_explicit(&s->units[site][passed ? 1 : 0], 1, memory_order_relaxed);
}

void metrics_step_time(int station, int step, int64_t ns)
{
    metrics_station_slot *s = station_slot(station);
    if (!s || step < 0 || step >= METRICS_MAX_STEPS || ns < 0) return;
    double secs = (double)ns / 1e9;
    size_t b = 0;
    while (b < METRICS_N_BUCKETS && secs > metrics_buckets[b]) b++;
    atomic_fetch_add_explicit(&s->steps[step].bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->steps[step].sum_ns, (uint64_t)ns, memory_order_relaxed);
}

static metrics_failure *failure_find(int n, int step, const char *mode)
{
    for (int i = 0; i < n; i++)
        if (failures[i].step == step && strcmp(failures[i].mode, mode) == 0) return &failures[i];
    return NULL;
}

void metrics_step_failed(int step, const char *mode)
{
    metrics_failure *f = failure_find(atomic_load_explicit(&n_failures, memory_order_acquire), step, mode);
    if (!f) {
        pthread_mutex_lock(&reg_lock);
        int n = atomic_load(&n_failures);
        if (!(f = failure_find(n, step, mode))) {
            if (n < METRICS_MAX_FAILURES) {
                f = &failures[n];
                f->step = step;
                snprintf(f->mode, sizeof f->mode, "%s", mode);
                atomic_store_explicit(&n_failures, n + 1, memory_order_release);
            } else {
                f = &failures[METRICS_MAX_FAILURES]; /* bounded: the rest are "other" */
            }
        }
        pthread_mutex_unlock(&reg_lock);
    }
    atomic_fetch_add_explicit(&f->n, 1, memory_order_relaxed);
}

static uint64_t ld(atomic_uint_fast64_t *v) { return atomic_load_explicit(v, memory_order_relaxed); }

static const char *step_label(int step) { return step_names[step][0] ? step_names[step] : "unspecified"; }

/* A label value as the text format wants it: backslash, quote and newline
 * escaped (station names come from the config, failure modes from adapters). */
static const char *esc(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (; *in && o + 3 < n; in++) {
        if (*in == '\\' || *in == '"' || *in == '\n') out[o++] = '\\';
        out[o++] = *in == '\n' ? 'n' : *in;
    }
    out[o] = 0;
    return out;
}

static void render_stations(FILE *f, int n)
{
    fputs("# HELP lineagent_units_total Units whose outcome was committed, by the station and fixture site that "
          "decided it.\n# TYPE lineagent_units_total counter\n",
          f);
    char name[2 * METRICS_NAME_MAX];
    for (int i = 0; i < n; i++)
        for (uint32_t k = 0; k < stations[i].sites; k++)
            for (int p = 1; p >= 0; p--)
                fprintf(f, "lineagent_units_total{station=\"%s\",site=\"%u\",outcome=\"%s\"} %llu\n",
                        esc(stations[i].name, name, sizeof name), k, p ? "passed" : "failed",
                        (unsigned long long)ld(&stations[i].units[k][p]));
    fputs("# HELP lineagent_step_duration_seconds Time the station's adapter took for a step.\n"
          "# TYPE lineagent_step_duration_seconds histogram\n",
          f);
    for (int i = 0; i < n; i++)
        for (int s = 0; s < METRICS_MAX_STEPS; s++) {
            esc(stations[i].name, name, sizeof name);
            metrics_hist *h = &stations[i].steps[s];
            uint64_t cum = 0;
            uint64_t counts[METRICS_N_BUCKETS + 1];
            for (size_t b = 0; b <= METRICS_N_BUCKETS; b++) cum += counts[b] = ld(&h->bucket[b]);
            if (!cum) continue; /* a step the station never ran */
            const char *lbl = step_label(s);
            cum = 0;
            for (size_t b = 0; b <= METRICS_N_BUCKETS; b++) {
                cum += counts[b];
                char le[24];
                if (b < METRICS_N_BUCKETS) snprintf(le, sizeof le, "%g", metrics_buckets[b]);
                else snprintf(le, sizeof le, "+Inf");
                fprintf(f, "lineagent_step_duration_seconds_bucket{station=\"%s\",step=\"%s\",le=\"%s\"} %llu\n",
                        name, lbl, le, (unsigned long long)cum);
            }
            fprintf(f, "lineagent_step_duration_seconds_sum{station=\"%s\",step=\"%s\"} %.6f\n", name, lbl, (double)ld(&h->sum_ns) / 1e9);
            fprintf(f, "lineagent_step_duration_seconds_count{station=\"%s\",step=\"%s\"} %llu\n", name,
                    lbl, (unsigned long long)cum);
        }
}

static void render_failures(FILE *f)
{
    fputs("# HELP lineagent_step_failures_total Failed steps by step and failure mode.\n"
          "# TYPE lineagent_step_failures_total counter\n",
          f);
    int n = atomic_load_explicit(&n_failures, memory_order_acquire);
    char mode[2 * METRICS_MODE_MAX];
    for (int i = 0; i < n; i++)
        fprintf(f, "lineagent_step_failures_total{step=\"%s\",mode=\"%s\"} %llu\n", step_label(failures[i].step),
                esc(failures[i].mode, mode, sizeof mode), (unsigned long long)ld(&failures[i].n));
    uint64_t other = ld(&failures[METRICS_MAX_FAILURES].n);
    if (other) fprintf(f, "lineagent_step_failures_total{step=\"any\",mode=\"other\"} %llu\n", (unsigned long long)other);
}

static void render_scalar(FILE *f, const char *name, const char *type, const char *help, long long v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type, name, v);
}

char *metrics_render(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) return NULL;
    render_stations(f, atomic_load_explicit(&n_stations, memory_order_acquire));
    render_failures(f);
    render_scalar(f, "lineagent_events_spooled_total", "counter", "Trace events committed to the spool.",
                  (long long)atomic_load(&gauges[METRICS_EVENTS_SPOOLED]));
    render_scalar(f, "lineagent_events_delivered_total", "counter", "Trace events acknowledged by Kafka.",
                  (long long)ld(&counters[METRICS_EVENTS_DELIVERED]));
    render_scalar(f, "lineagent_events_pending", "gauge", "Events from the oldest one Kafka has not acknowledged on.",
                  (long long)atomic_load(&gauges[METRICS_EVENTS_PENDING]));
    fprintf(f, "# HELP lineagent_oldest_pending_age_seconds Age of the oldest event Kafka has not acknowledged (0: "
               "none).\n# TYPE lineagent_oldest_pending_age_seconds gauge\nlineagent_oldest_pending_age_seconds "
               "%.3f\n",
            (double)atomic_load(&gauges[METRICS_OLDEST_PENDING_MS]) / 1000.0);
    render_scalar(f, "lineagent_kafka_delivery_errors_total", "counter",
                  "Delivery reports with an error (the event is sent again).",
                  (long long)ld(&counters[METRICS_KAFKA_ERRORS]));
    render_scalar(f, "lineagent_mqtt_connected", "gauge", "1 while connected to the MQTT broker.",
                  (long long)atomic_load(&gauges[METRICS_MQTT_CONNECTED]));
    fputs("# HELP lineagent_orders_total Order decisions committed.\n# TYPE lineagent_orders_total counter\n", f);
    fprintf(f, "lineagent_orders_total{result=\"accepted\"} %llu\nlineagent_orders_total{result=\"rejected\"} %llu\n",
            (unsigned long long)ld(&counters[METRICS_ORDERS_ACCEPTED]),
            (unsigned long long)ld(&counters[METRICS_ORDERS_REJECTED]));
    fputs("# HELP lineagent_alarm Alarms raised now, by alarm.\n# TYPE lineagent_alarm gauge\n", f);
    for (int a = 0; a < METRICS_N_ALARMS; a++)
        fprintf(f, "lineagent_alarm{alarm=\"%s\"} %lld\n", alarm_names[a], (long long)atomic_load(&alarms[a]));
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&reg_lock);
    memset(counters, 0, sizeof counters);
    memset(gauges, 0, sizeof gauges);
    memset(alarms, 0, sizeof alarms);
    memset(stations, 0, sizeof stations);
    memset(step_names, 0, sizeof step_names);
    memset(failures, 0, sizeof failures);
    atomic_store(&n_stations, 0);
    atomic_store(&n_failures, 0);
    pthread_mutex_unlock(&reg_lock);
}
