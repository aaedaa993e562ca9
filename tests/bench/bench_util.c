/* SPDX-License-Identifier: Apache-2.0 */
/* bench_util.c - shared benchmark helpers (see bench_util.h). */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"


double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long bench_peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

void bench_board_id(uint64_t i, char board[64])
{
    snprintf(board, 64, "LOT-BENCH-B%07llu", (unsigned long long)i);
}

void bench_sample_fill(TraceEvent *ev, Lineagent__V1__UnitWritten *w, const char *board)
{
    lineagent__v1__trace_event__init(ev);
    lineagent__v1__unit_written__init(w);
    ev->station = "prog1";
    ev->order_id = "WO-BENCH";
    ev->lot_id = "LOT-BENCH";
    ev->board_id = (char *)board;
    w->version = "1.4.2";
    w->sha256 = "9f2c1e4b5a6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7f8";
    w->readback_sha256 = w->sha256;
    w->order_revision = 1;
    w->write_station = "prog1";
    w->image_size = 262144;
    ev->body_case = LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_WRITTEN;
    ev->unit_written = w;
}

size_t bench_sample_event(uint64_t i, uint8_t **buf)
{
    char board[64], id[37];
    TraceEvent ev;
    Lineagent__V1__UnitWritten w;
    bench_board_id(i, board);
    bench_sample_fill(&ev, &w, board);
    event_uuid7(id, clock_wall_ms());
    ev.event_id = id;
    ev.seq = i + 1;
    ev.time_ms = clock_wall_ms();
    ev.site = "plant1";
    ev.line = "smt3";
    size_t len = lineagent__v1__trace_event__get_packed_size(&ev);
    *buf = malloc(len);
    lineagent__v1__trace_event__pack(&ev, *buf);
    return len;
}

void bench_samples_make(bench_samples *s, int n)
{
    s->n = n;
    s->payload = malloc((size_t)n * sizeof *s->payload);
    s->len = malloc((size_t)n * sizeof *s->len);
    s->ids = malloc((size_t)n * sizeof *s->ids);
    for (int i = 0; i < n; i++) {
        s->len[i] = bench_sample_event((uint64_t)i, &s->payload[i]);
        event_uuid7(s->ids[i], clock_wall_ms());
    }
}

void bench_samples_free(bench_samples *s)
{
    for (int i = 0; i < s->n; i++) free(s->payload[i]);
    free(s->payload);
    free(s->len);
    free(s->ids);
}

void bench_report(const char *scenario, double figure, const char *unit, double baseline, const char *target,
                  const char *note)
{
    printf("{\"scenario\":\"%s\",\"figure\":%.1f,\"unit\":\"%s\",\"baseline\":%.1f,\"ratio\":%.3f,"
           "\"target\":\"%s\",\"note\":\"%s\"}\n",
           scenario, figure, unit, baseline, baseline > 0 ? figure / baseline : 0.0, target, note ? note : "");
    fflush(stdout);
}

double bench_rate_of_runs(const double *rates, int n)
{
    double t = 0;
    for (int i = 0; i < n; i++) t += 1 / rates[i];
    return n / t;
}
