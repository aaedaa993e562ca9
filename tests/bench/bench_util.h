/* SPDX-License-Identifier: Apache-2.0 */
/* bench_util.h - what every benchmark shares: a monotonic clock, peak RSS,
 * sample TraceEvents, and one JSON result line per scenario on stdout, which
 * deploy/bench.sh collects into the results table. */
#ifndef LINEAGENT_BENCH_UTIL_H
#define LINEAGENT_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

double bench_now(void);     /* seconds, monotonic */
long bench_peak_rss_kb(void); /* VmHWM of this process */
/* Scenario and baseline run in the order A B B A (or A B B A A B B A), each
 * on the same amount of work, so a machine that drifts (page cache
 * write-back of the previous run, a neighbour) costs both about alike. The
 * rate over n equal runs: total work / total time. */
double bench_rate_of_runs(const double *rates, int n);
#include "event.h"

/* Board i's id, as a line names its boards. */
void bench_board_id(uint64_t i, char board[64]);
/* A realistic unit_written event for board (a bench_board_id); w is the
 * caller's storage. Envelope ids and seq are left to the caller. */
void bench_sample_fill(TraceEvent *ev, Lineagent__V1__UnitWritten *w, const char *board);
/* The same, encoded with a fresh event_id and seq i + 1 (malloc'ed). */
size_t bench_sample_event(uint64_t i, uint8_t **buf);

/* n encoded sample events with their event ids, for the raw baselines. */
typedef struct bench_samples {
    int n;
    uint8_t **payload;
    size_t *len;
    char (*ids)[37];
} bench_samples;
void bench_samples_make(bench_samples *s, int n);
void bench_samples_free(bench_samples *s);
/* {"scenario":..,"figure":..,"unit":..,"baseline":..,"ratio":..,"target":..} */
void bench_report(const char *scenario, double figure, const char *unit, double baseline, const char *target,
                  const char *note);

#endif
