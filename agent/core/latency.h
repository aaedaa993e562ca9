/* SPDX-License-Identifier: Apache-2.0 */
/* latency.h - a fixed-size latency histogram (1 us buckets up to 1 ms, 1 ms
 * buckets up to 1 s) cheap enough to feed on every board dispatch. One
 * writer per histogram; merge to report. */
#ifndef LINEAGENT_LATENCY_H
#define LINEAGENT_LATENCY_H

#include <stdint.h>

#define LATENCY_BUCKETS 1000

typedef struct latency_hist {
    uint64_t n;
    uint32_t us[LATENCY_BUCKETS]; /* [i] counts i..i+1 us */
    uint32_t ms[LATENCY_BUCKETS]; /* [i] counts i..i+1 ms (i >= 1) */
    uint64_t over;                /* 1 s and more */
} latency_hist;

int64_t latency_now_ns(void); /* monotonic */
void latency_add(latency_hist *h, int64_t ns);
void latency_merge(latency_hist *dst, const latency_hist *src);
/* Upper edge of the bucket holding quantile q (0..1), in microseconds. */
double latency_quantile_us(const latency_hist *h, double q);

#endif
