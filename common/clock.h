/* SPDX-License-Identifier: Apache-2.0 */
/* clock.h - the two clocks the project reads. The monotonic clock is for
 * deadlines, timeouts and "how long since": unlike the wall clock it never
 * jumps back when NTP or an operator sets the time. The wall clock is for
 * what is recorded: event times, retention cut-offs. */
#ifndef LINEAGENT_CLOCK_H
#define LINEAGENT_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds on the monotonic clock (inline: it sits on hot paths). */
static inline int64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The CLOCK_REALTIME time ms milliseconds from now: the absolute deadline
 * pthread_cond_timedwait takes, as condition variables use that clock. */
struct timespec clock_deadline_ms(int64_t ms);

/* Wall-clock time in Unix milliseconds. */
int64_t clock_wall_ms(void);
/* A wall time (Unix ms) as UTC to the second, "2026-11-25T02:31:00Z";
 * "-" for 0 (none). n: 21 or more. */
void clock_format_utc(int64_t ms, char *buf, size_t n);

#endif
