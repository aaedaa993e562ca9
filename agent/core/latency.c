/* SPDX-License-Identifier: Apache-2.0 */
/* latency.c - the dispatch latency histogram (see latency.h). */
#include "latency.h"

#include <time.h>

int64_t latency_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void latency_add(latency_hist *h, int64_t ns)
{
    int64_t us = ns < 0 ? 0 : ns / 1000;
    h->n++;
    if (us < LATENCY_BUCKETS) h->us[us]++;
    else if (us / 1000 < LATENCY_BUCKETS) h->ms[us / 1000]++;
    else h->over++;
}

void latency_merge(latency_hist *dst, const latency_hist *src)
{
    dst->n += src->n;
    dst->over += src->over;
    for (int i = 0; i < LATENCY_BUCKETS; i++) {
        dst->us[i] += src->us[i];
        dst->ms[i] += src->ms[i];
    }
}

double latency_quantile_us(const latency_hist *h, double q)
{
    if (!h->n) return 0;
    uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
    for (int i = 0; i < LATENCY_BUCKETS; i++)
        if ((seen += h->us[i]) > want) return i + 1;
    for (int i = 1; i < LATENCY_BUCKETS; i++)
        if ((seen += h->ms[i]) > want) return (i + 1) * 1000.0;
    return 1e6;
}
