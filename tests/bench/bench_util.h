/* bench_util.h - what every benchmark shares: a monotonic clock, peak RSS,
 * sample TraceEvents, and one JSON result line per scenario on stdout, which
 * deploy/bench.sh collects into the results table. */
#ifndef LINEAGENT_BENCH_UTIL_H
#define LINEAGENT_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

double bench_now(void);     /* seconds, monotonic */
long bench_peak_rss_kb(void); /* VmHWM of this process */
/* Encodes a realistic unit_written event for board i into buf (malloc'ed). */
size_t bench_sample_event(uint64_t i, uint8_t **buf);
/* {"scenario":..,"figure":..,"unit":..,"baseline":..,"ratio":..,"target":..} */
void bench_report(const char *scenario, double figure, const char *unit, double baseline, const char *target,
                  const char *note);

#endif
