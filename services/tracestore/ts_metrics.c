/* SPDX-License-Identifier: Apache-2.0 */
/* ts_metrics.c - counters and lag table (ts_metrics.h). Counters are
 * atomics; the small partition table takes a mutex. */
#include "ts_metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TS_MAX_PARTITIONS 1024

static _Atomic uint64_t ts_counters[TS_M_N];
static atomic_int ts_db_up;

static const struct {
    const char *name, *help;
} ts_metric_info[TS_M_N] = {
    [TS_M_CONSUMED] = {"tracestore_records_consumed_total", "Kafka records read"},
    [TS_M_STORED] = {"tracestore_events_stored_total", "trace events newly stored"},
    [TS_M_DUPLICATES] = {"tracestore_events_duplicate_total", "trace events already stored (re-sent or replayed)"},
    [TS_M_REJECTED] = {"tracestore_records_rejected_total", "records stored in rejected_records"},
    [TS_M_FIELD] = {"tracestore_field_reports_stored_total", "field firmware reports newly stored"},
    [TS_M_BATCHES] = {"tracestore_batches_total", "database transactions committed"},
    [TS_M_DB_ERRORS] = {"tracestore_db_errors_total", "failed attempts to store a batch"},
    [TS_M_REBALANCES] = {"tracestore_rebalances_total", "partition assignments received"},
    [TS_M_LOST] = {"tracestore_records_lost_total", "records Kafka deleted (retention) before tracestore stored them"},
};

typedef struct ts_part {
    char topic[128];
    int32_t partition;
    int64_t next_offset, high;
} ts_part;

static pthread_mutex_t ts_parts_lock = PTHREAD_MUTEX_INITIALIZER;
static ts_part ts_parts[TS_MAX_PARTITIONS];
static int ts_n_parts;

void ts_metrics_add(ts_metric m, uint64_t n) { atomic_fetch_add(&ts_counters[m], n); }
uint64_t ts_metrics_get(ts_metric m) { return atomic_load(&ts_counters[m]); }
void ts_metrics_set_db_up(int up) { atomic_store(&ts_db_up, up); }
int ts_metrics_db_up(void) { return atomic_load(&ts_db_up); }

void ts_metrics_stored(const ts_store_result *r)
{
    ts_metrics_add(TS_M_STORED, r->stored);
    ts_metrics_add(TS_M_DUPLICATES, r->duplicates);
    ts_metrics_add(TS_M_REJECTED, r->rejected);
    ts_metrics_add(TS_M_FIELD, r->field_stored);
    ts_metrics_add(TS_M_BATCHES, 1);
}

void ts_metrics_partition(const char *topic, int32_t partition, int64_t next_offset, int64_t high)
{
    pthread_mutex_lock(&ts_parts_lock);
    int i = 0;
    while (i < ts_n_parts && (ts_parts[i].partition != partition || strcmp(ts_parts[i].topic, topic))) i++;
    if (i == ts_n_parts && ts_n_parts < TS_MAX_PARTITIONS) {
        snprintf(ts_parts[i].topic, sizeof ts_parts[i].topic, "%s", topic);
        ts_parts[i].partition = partition;
        ts_n_parts++;
    }
    if (i < ts_n_parts) {
        ts_parts[i].next_offset = next_offset;
        if (high >= 0) ts_parts[i].high = high;
    }
    pthread_mutex_unlock(&ts_parts_lock);
}

typedef struct ts_text {
    char *p;
    size_t len, cap;
} ts_text;

static void ts_text_add(ts_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ts_text_add(ts_text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n >= 0 && t->p && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = (t->cap + (size_t)n + 1) * 2;
        char *p = realloc(t->p, t->cap);
        if (!p) abort();
        t->p = p;
    }
}

char *ts_metrics_render(long gaps)
{
    ts_text t = {0};
    for (int m = 0; m < TS_M_N; m++)
        ts_text_add(&t, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", ts_metric_info[m].name,
                    ts_metric_info[m].help, ts_metric_info[m].name, ts_metric_info[m].name, ts_metrics_get(m));
    ts_text_add(&t, "# HELP tracestore_db_up 1 when the last database operation succeeded\n"
                    "# TYPE tracestore_db_up gauge\ntracestore_db_up %d\n", ts_metrics_db_up());
    ts_text_add(&t, "# HELP tracestore_seq_gaps seq gaps open longer than gap_timeout_s (-1: unknown)\n"
                    "# TYPE tracestore_seq_gaps gauge\ntracestore_seq_gaps %ld\n", gaps);
    ts_text_add(&t, "# HELP tracestore_partition_lag records between the stored offset and the high watermark\n"
                    "# TYPE tracestore_partition_lag gauge\n");
    pthread_mutex_lock(&ts_parts_lock);
    for (int i = 0; i < ts_n_parts; i++) {
        int64_t lag = ts_parts[i].high - ts_parts[i].next_offset;
        ts_text_add(&t, "tracestore_partition_lag{topic=\"%s\",partition=\"%" PRId32 "\"} %" PRId64 "\n",
                    ts_parts[i].topic, ts_parts[i].partition, lag > 0 ? lag : 0);
    }
    pthread_mutex_unlock(&ts_parts_lock);
    return t.p;
}
