/* mono_time.h - milliseconds on the monotonic clock, for deadlines, timeouts
 * and "how long since": unlike the wall clock it never jumps back when NTP
 * or an operator sets the time. */
#ifndef LINEAGENT_MONO_TIME_H
#define LINEAGENT_MONO_TIME_H

#include <stdint.h>
#include <time.h>

static inline int64_t mono_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
