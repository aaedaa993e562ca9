/* SPDX-License-Identifier: Apache-2.0 */
/* ts_metrics.h - the consumer's counters and per-partition lag, written by
 * the consumer thread and read by the HTTP thread for /metrics. */
#ifndef TS_METRICS_H
#define TS_METRICS_H

#include <stdint.h>

#include "ts_store.h"

typedef enum {
    TS_M_CONSUMED,     /* records read from Kafka */
    TS_M_STORED,       /* events newly stored */
    TS_M_DUPLICATES,   /* events already stored (re-sent, replayed) */
    TS_M_REJECTED,     /* records in rejected_records */
    TS_M_FIELD,        /* field firmware reports newly stored */
    TS_M_BATCHES,      /* committed transactions */
    TS_M_DB_ERRORS,    /* failed store attempts */
    TS_M_REBALANCES,   /* partition assignments received */
    TS_M_LOST,         /* records Kafka deleted before they were stored */
    TS_M_N
} ts_metric;

void ts_metrics_add(ts_metric m, uint64_t n);
uint64_t ts_metrics_get(ts_metric m);
void ts_metrics_stored(const ts_store_result *r);

void ts_metrics_set_db_up(int up);
int ts_metrics_db_up(void);

/* Where a partition stands: next offset to store and the broker's high
 * watermark; lag is their difference. */
void ts_metrics_partition(const char *topic, int32_t partition, int64_t next_offset, int64_t high);

/* Prometheus text exposition of everything above plus the open seq gaps
 * (gaps < 0: unknown, database unreachable) into a malloc'd string. */
char *ts_metrics_render(long gaps);

#endif
